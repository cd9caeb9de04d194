//! The asymmetric mechanisms on AWS-LC (`aws-lc-rs`), built with the `aws-lc` cargo feature.
//! RustCrypto (`rsa.rs`, `ec.rs`, `eddsa.rs`) stays the default; with the feature,
//! `mechanism::asym_signer` and `asym_cipher` come here for RSA, P-256 and Ed25519 keys, and
//! ECDH's shared secret too (the `#[cfg(feature = "aws-lc")]` lines in `mod.rs` and `ec.rs`).
//!
//! Each entry point first builds the RustCrypto operation: that checks the mechanism, its
//! parameters and the key exactly as the default build does, so every error path returns the
//! same `CK_RV`, and it is what runs the cases left to RustCrypto:
//!
//! - `CKM_RSA_PKCS` decryption: AWS-LC reports a bad PKCS #1 v1.5 padding as an error (found
//!   in constant time, but an error), where RustCrypto's implicit rejection returns a
//!   pseudo-random message (`docs/security.md`);
//! - `CKM_RSA_X_509` (raw RSA) in all four directions: aws-lc-rs has no raw RSA;
//! - SHA-1 RSA signing (`CKM_SHA1_RSA_PKCS`, `CKM_SHA1_RSA_PKCS_PSS`, `CKM_RSA_PKCS` on a
//!   SHA-1 DigestInfo) and SHA-1 PSS verification: aws-lc-rs signs with SHA-2 only;
//! - `CKM_RSA_PKCS` signing or verification of anything but a SHA-1/2 DigestInfo (aws-lc-rs
//!   signs a digest, to which it adds the same DigestInfo, so the signature is the same);
//! - RSA keys AWS-LC refuses but RustCrypto takes (none known: both limit e to 33 bits);
//! - Ed25519 verification, and key generation of every type: AWS-LC is no faster there
//!   (measured with `examples/asym_speed.rs`; `docs/performance.md`).
//!
//! Parsed AWS-LC keys are kept on the key object (`Object::prepared`), built once per object.

pub(crate) mod ec;
pub(crate) mod eddsa;
pub(crate) mod rsa;

use aws_lc_rs::digest;

use super::keys::HashAlg;

/// The aws-lc-rs digest algorithm of a `HashAlg`.
fn digest_alg(hash: HashAlg) -> &'static digest::Algorithm {
    match hash {
        HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &digest::SHA256,
        HashAlg::Sha384 => &digest::SHA384,
        HashAlg::Sha512 => &digest::SHA512,
    }
}

/// A digest computed here (or given by the caller), as aws-lc-rs takes it.
fn import_digest(hash: HashAlg, value: &[u8]) -> Option<digest::Digest> {
    digest::Digest::import_less_safe(value, digest_alg(hash)).ok()
}

/// AWS-LC against RustCrypto: what one makes, the other takes.
#[cfg(test)]
mod tests {
    use cryptoki_sys::*;

    use super::super::keys::fixtures::*;
    use super::super::keys::tests::{private_object, public_of};
    use super::super::{self as mechanism, Mechanism, MechanismParam, RsaOaepParams, RsaPssParams};
    use crate::object::Object;

    type Make = fn(&Mechanism, &Object, bool) -> crate::error::Result<Box<dyn mechanism::Signer>>;

    fn sign(make: Make, m: &Mechanism, key: &Object, data: &[u8]) -> Vec<u8> {
        let mut s = make(m, key, true).unwrap();
        s.update(data).unwrap();
        s.sign().unwrap()
    }

    fn verify(make: Make, m: &Mechanism, key: &Object, data: &[u8], sig: &[u8]) -> crate::error::Result<()> {
        let mut v = make(m, key, false)?;
        v.update(data)?;
        v.verify(sig)
    }

    fn both_ways(aws: Make, rust: Make, m: &Mechanism, private: &Object, public: &Object, data: &[u8]) {
        let ours = sign(aws, m, private, data);
        verify(rust, m, public, data, &ours).unwrap();
        verify(aws, m, public, data, &ours).unwrap();
        let theirs = sign(rust, m, private, data);
        verify(aws, m, public, data, &theirs).unwrap();
        let mut bad = theirs.clone();
        bad[5] ^= 1;
        assert_eq!(verify(aws, m, public, data, &bad).unwrap_err().rv(), CKR_SIGNATURE_INVALID);
    }

    #[test]
    fn rsa_signatures_interoperate() {
        let private = private_object(RSA_PKCS8);
        let public = public_of(&private);
        let plain = |kind| Mechanism::new(kind, MechanismParam::None);
        let pss = |kind, hash, mgf, salt_len| {
            Mechanism::new(kind, MechanismParam::RsaPss(RsaPssParams { hash, mgf, salt_len }))
        };
        for m in [
            plain(CKM_SHA1_RSA_PKCS),
            plain(CKM_SHA256_RSA_PKCS),
            plain(CKM_SHA384_RSA_PKCS),
            plain(CKM_SHA512_RSA_PKCS),
            plain(CKM_RSA_X_509),
            pss(CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, CKG_MGF1_SHA1, 20),
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32),
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 0),
            pss(CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384, 100),
            pss(CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, CKG_MGF1_SHA512, 64),
        ] {
            both_ways(super::rsa::signer, super::super::rsa::signer, &m, &private, &public, b"interop");
        }
        // The raw mechanisms on a digest or DigestInfo of each hash, and on other data.
        for (hash, mgf, alg, prefix) in [
            (CKM_SHA_1, CKG_MGF1_SHA1, super::HashAlg::Sha1, "3021300906052b0e03021a05000414"),
            (CKM_SHA256, CKG_MGF1_SHA256, super::HashAlg::Sha256, "3031300d060960864801650304020105000420"),
            (CKM_SHA384, CKG_MGF1_SHA384, super::HashAlg::Sha384, "3041300d060960864801650304020205000430"),
            (CKM_SHA512, CKG_MGF1_SHA512, super::HashAlg::Sha512, "3051300d060960864801650304020305000440"),
        ] {
            let digest = alg.digest(b"raw");
            let m = pss(CKM_RSA_PKCS_PSS, hash, mgf, alg.len());
            both_ways(super::rsa::signer, super::super::rsa::signer, &m, &private, &public, &digest);
            let mut info = hex(prefix);
            info.extend_from_slice(&digest);
            // PKCS #1 v1.5 is deterministic: the same signature either way.
            let m = plain(CKM_RSA_PKCS);
            assert_eq!(sign(super::rsa::signer, &m, &private, &info), sign(super::super::rsa::signer, &m, &private, &info));
            both_ways(super::rsa::signer, super::super::rsa::signer, &m, &private, &public, &info);
        }
        both_ways(super::rsa::signer, super::super::rsa::signer, &plain(CKM_RSA_PKCS), &private, &public, b"no DigestInfo");
        // One verification key per algorithm is kept on the object; PSS salts are made once.
        assert!(std::ptr::eq(super::rsa::pss_algorithms(super::HashAlg::Sha256, 7).unwrap().1, super::rsa::pss_algorithms(super::HashAlg::Sha256, 7).unwrap().1));
    }

    #[test]
    fn rsa_encryption_interoperates() {
        let private = private_object(RSA_PKCS8);
        let public = public_of(&private);
        let run = |c: &mut Box<dyn mechanism::Cipher>, data: &[u8]| {
            let mut out = c.update(data)?;
            out.extend_from_slice(&c.finish()?);
            Ok::<_, crate::error::Error>(out)
        };
        let mut mechanisms = vec![Mechanism::new(CKM_RSA_PKCS, MechanismParam::None)];
        for (hash, mgf) in [(CKM_SHA_1, CKG_MGF1_SHA1), (CKM_SHA256, CKG_MGF1_SHA256), (CKM_SHA512, CKG_MGF1_SHA512)] {
            for label in [&b""[..], b"label"] {
                let p = RsaOaepParams { hash, mgf, label: label.to_vec() };
                mechanisms.push(Mechanism::new(CKM_RSA_PKCS_OAEP, MechanismParam::RsaOaep(p)));
            }
        }
        for m in &mechanisms {
            for (enc, dec) in [
                (super::rsa::cipher as fn(&_, &_, _) -> _, super::super::rsa::cipher as fn(&_, &_, _) -> _),
                (super::super::rsa::cipher, super::rsa::cipher),
            ] {
                let ct = run(&mut enc(m, &public, true).unwrap(), b"secret").unwrap();
                assert_eq!(ct.len(), 256);
                assert_eq!(run(&mut dec(m, &private, false).unwrap(), &ct).unwrap().as_slice(), b"secret");
            }
        }
    }

    #[test]
    fn p256_interoperates() {
        let private = private_object(EC_A_PKCS8);
        let public = public_of(&private);
        for kind in [CKM_ECDSA_SHA1, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512] {
            let m = Mechanism::new(kind, MechanismParam::None);
            both_ways(super::ec::signer, super::super::ec::signer, &m, &private, &public, b"interop");
        }
        let m = Mechanism::new(CKM_ECDSA, MechanismParam::None);
        for digest in [&[7u8; 20][..], &[7u8; 32], &[7u8; 64]] {
            both_ways(super::ec::signer, super::super::ec::signer, &m, &private, &public, digest);
        }
        // Random nonces: two signatures of the same data differ.
        let m = Mechanism::new(CKM_ECDSA_SHA256, MechanismParam::None);
        assert_ne!(sign(super::ec::signer, &m, &private, b"x"), sign(super::ec::signer, &m, &private, b"x"));
    }

    #[test]
    fn ed25519_matches() {
        let mut private = crate::mechanism::keys::tests::key_object(
            CKO_PRIVATE_KEY,
            CKK_EC_EDWARDS,
            &[(CKA_EC_PARAMS, super::super::keys::ED25519_PARAMS), (CKA_VALUE, &[3u8; 32])],
        );
        super::super::keys::complete_key(&mut private).unwrap();
        let public = public_of(&private);
        let m = Mechanism::new(CKM_EDDSA, MechanismParam::None);
        for data in [&b""[..], b"interop", &[9u8; 1000]] {
            let ours = sign(super::eddsa::signer, &m, &private, data);
            assert_eq!(ours, sign(super::super::eddsa::signer, &m, &private, data));
            both_ways(super::eddsa::signer, super::super::eddsa::signer, &m, &private, &public, data);
        }
    }
}

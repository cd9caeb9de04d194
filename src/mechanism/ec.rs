//! P-256 mechanisms: ECDSA (`CKM_ECDSA`, `CKM_ECDSA_SHA*`) and ECDH (`CKM_ECDH1_DERIVE`), on
//! the `p256` crate. Signatures are r ‖ s, 32 bytes each; signing uses RFC 6979 deterministic
//! nonces, so it needs no randomness and gives the RFC's test vectors. (With the `aws-lc`
//! feature, `aws_lc::ec` signs instead, with random nonces.)

use cryptoki_sys::*;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use zeroize::Zeroizing;

use super::keys::{self, HashAlg, Hasher};
use super::{Mechanism, MechanismParam, Secret, Signer};
use crate::error::{rv, Result};
use crate::object::Object;

/// Bytes of the P-256 group order n.
const N_LEN: usize = 32;

enum Key {
    Signing(p256::ecdsa::SigningKey),
    Verifying(p256::ecdsa::VerifyingKey),
}

enum Input {
    /// `CKM_ECDSA`: the caller's hash.
    Buffer(Secret),
    Hash(Hasher),
}

struct EcdsaSigner {
    key: Key,
    input: Input,
}

/// The hash as ECDSA uses it on P-256: the leftmost 256 bits when longer (FIPS 186-5 §6.4.1,
/// PKCS#11 "truncation is done by the token"), left-padded with zeros when shorter, which is
/// the same integer.
pub(super) fn field_hash(hash: &[u8]) -> [u8; N_LEN] {
    let mut z = [0u8; N_LEN];
    if hash.len() >= N_LEN {
        z.copy_from_slice(&hash[..N_LEN]);
    } else {
        z[N_LEN - hash.len()..].copy_from_slice(hash);
    }
    z
}

pub fn signer(mechanism: &Mechanism, key: &Object, sign: bool) -> Result<Box<dyn Signer>> {
    mechanism.no_param()?;
    let input = match mechanism.kind {
        CKM_ECDSA => Input::Buffer(Zeroizing::new(Vec::new())),
        CKM_ECDSA_SHA1 => Input::Hash(HashAlg::Sha1.hasher()),
        CKM_ECDSA_SHA256 => Input::Hash(HashAlg::Sha256.hasher()),
        CKM_ECDSA_SHA384 => Input::Hash(HashAlg::Sha384.hasher()),
        CKM_ECDSA_SHA512 => Input::Hash(HashAlg::Sha512.hasher()),
        _ => return Err(rv(CKR_MECHANISM_INVALID)),
    };
    let key = if sign {
        if key.class() != CKO_PRIVATE_KEY {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        }
        // Making a signing key computes its public point: do it once per key object.
        Key::Signing(key.prepared(|k| Ok(p256::ecdsa::SigningKey::from(keys::p256_private(k)?)))?)
    } else {
        Key::Verifying(key.prepared(|k| Ok(p256::ecdsa::VerifyingKey::from(keys::p256_public(k)?)))?)
    };
    Ok(Box::new(EcdsaSigner { key, input }))
}

impl EcdsaSigner {
    fn digest(&self) -> [u8; N_LEN] {
        match &self.input {
            Input::Buffer(b) => field_hash(b),
            Input::Hash(h) => field_hash(&h.finish()),
        }
    }
}

/// r ‖ s from a signature of even length up to 64 bytes, each half left-padded to 32 bytes
/// (PKCS#11 3.0 §2.3.1 lets verifiers receive shorter halves).
pub(super) fn parse_signature(signature: &[u8]) -> Result<[u8; 2 * N_LEN]> {
    let half = signature.len() / 2;
    if signature.is_empty() || !signature.len().is_multiple_of(2) || half > N_LEN {
        return Err(rv(CKR_SIGNATURE_LEN_RANGE));
    }
    let mut out = [0u8; 2 * N_LEN];
    out[N_LEN - half..N_LEN].copy_from_slice(&signature[..half]);
    out[2 * N_LEN - half..].copy_from_slice(&signature[half..]);
    Ok(out)
}

impl Signer for EcdsaSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.input {
            Input::Buffer(b) => b.extend_from_slice(data),
            Input::Hash(h) => h.update(data),
        }
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        let Key::Signing(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        let signature: p256::ecdsa::Signature =
            key.sign_prehash(&self.digest()).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
        Ok(signature.to_bytes().to_vec())
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        let bytes = parse_signature(signature)?;
        let signature = p256::ecdsa::Signature::from_slice(&bytes).map_err(|_| rv(CKR_SIGNATURE_INVALID))?;
        let verifying = match &self.key {
            Key::Signing(k) => k.verifying_key(),
            Key::Verifying(k) => k,
        };
        verifying
            .verify_prehash(&self.digest(), &signature)
            .map_err(|_| rv(CKR_SIGNATURE_INVALID))
    }
}

/// `CKM_ECDH1_DERIVE` with a P-256 private key: the shared x-coordinate Z, through the KDF.
/// `out_len` is the length of the key to make; with `CKD_NULL` a shorter key keeps the last
/// bytes of Z ("the truncation removes bytes from the leading end"), and with an X9.63 KDF
/// it is required.
pub fn derive(mechanism: &Mechanism, key: &Object, out_len: Option<usize>) -> Result<Secret> {
    if mechanism.kind != CKM_ECDH1_DERIVE {
        return Err(rv(CKR_MECHANISM_INVALID));
    }
    let MechanismParam::Ecdh1Derive(params) = &mechanism.param else {
        return Err(rv(CKR_MECHANISM_PARAM_INVALID));
    };
    let kdf = match params.kdf {
        CKD_NULL => {
            if !params.shared_data.is_empty() {
                return Err(rv(CKR_MECHANISM_PARAM_INVALID));
            }
            None
        }
        CKD_SHA1_KDF => Some(HashAlg::Sha1),
        CKD_SHA256_KDF => Some(HashAlg::Sha256),
        CKD_SHA384_KDF => Some(HashAlg::Sha384),
        CKD_SHA512_KDF => Some(HashAlg::Sha512),
        _ => return Err(rv(CKR_MECHANISM_PARAM_INVALID)),
    };
    if key.class() != CKO_PRIVATE_KEY {
        return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
    }
    let secret = keys::p256_private(key)?;
    let peer = keys::p256_point(&params.public_data).ok_or(rv(CKR_MECHANISM_PARAM_INVALID))?;
    #[cfg(feature = "aws-lc")]
    let z = super::aws_lc::ec::shared_secret(key, &secret, &peer)?;
    #[cfg(not(feature = "aws-lc"))]
    let z = Zeroizing::new(p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine()).raw_secret_bytes().to_vec());
    match kdf {
        None => {
            let len = out_len.unwrap_or(z.len());
            if len == 0 || len > z.len() {
                return Err(rv(CKR_KEY_SIZE_RANGE));
            }
            Ok(Zeroizing::new(z[z.len() - len..].to_vec()))
        }
        Some(hash) => {
            let len = out_len.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
            if len == 0 {
                return Err(rv(CKR_KEY_SIZE_RANGE));
            }
            Ok(x963_kdf(hash, &z, &params.shared_data, len))
        }
    }
}

/// ANSI X9.63 KDF: Hash(Z ‖ counter ‖ SharedInfo) for counter = 1, 2, … (32-bit big-endian),
/// concatenated and cut to `len` bytes.
fn x963_kdf(hash: HashAlg, z: &[u8], shared_info: &[u8], len: usize) -> Secret {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.len()));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut h = hash.hasher();
        h.update(z);
        h.update(&counter.to_be_bytes());
        h.update(shared_info);
        out.extend_from_slice(&Zeroizing::new(h.finish()));
        counter += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::keys::fixtures::*;
    use crate::mechanism::keys::tests::{key_object, private_object, public_of};
    use crate::mechanism::keys::P256_PARAMS;
    use crate::mechanism::{asym_signer, derive as derive_key, Ecdh1DeriveParams};

    fn err<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    fn plain(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism::new(kind, MechanismParam::None)
    }

    /// RFC 6979 A.2.5: the P-256 key.
    fn rfc6979_key() -> (Object, Object) {
        let x = hex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
        let mut private = key_object(CKO_PRIVATE_KEY, CKK_EC, &[(CKA_EC_PARAMS, P256_PARAMS), (CKA_VALUE, &x)]);
        keys::complete_key(&mut private).unwrap();
        let public = public_of(&private);
        let ux = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";
        let uy = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
        assert_eq!(public.get(CKA_EC_POINT).unwrap(), keys::der_octet_string(&hex(&format!("04{ux}{uy}"))).as_slice());
        (private, public)
    }

    fn sign(m: &Mechanism, key: &Object, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let mut s = asym_signer(m, key, true)?;
        for p in parts {
            s.update(p)?;
        }
        s.sign()
    }

    fn verify(m: &Mechanism, key: &Object, data: &[u8], sig: &[u8]) -> Result<()> {
        let mut v = asym_signer(m, key, false)?;
        v.update(data)?;
        v.verify(sig)
    }

    /// A signature `made` of `data` is `expected` with RFC 6979 nonces (RustCrypto); with the
    /// `aws-lc` feature nonces are random, so there it must verify instead.
    fn same_signature(made: Vec<u8>, expected: &[u8], m: &Mechanism, public: &Object, data: &[u8]) {
        if cfg!(feature = "aws-lc") {
            assert_eq!(made.len(), 64);
            verify(m, public, data, &made).unwrap();
        } else {
            assert_eq!(made, expected);
        }
    }

    #[test]
    fn rfc6979_sha256() {
        let (private, public) = rfc6979_key();
        for (msg, sig) in [
            (&b"sample"[..], "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"),
            (b"test", "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"),
        ] {
            let sig = hex(sig);
            let m = plain(CKM_ECDSA_SHA256);
            same_signature(sign(&m, &private, &[msg]).unwrap(), &sig, &m, &public, msg);
            // Multi-part, and CKM_ECDSA on the digest, give the same.
            same_signature(sign(&m, &private, &[&msg[..2], &msg[2..]]).unwrap(), &sig, &m, &public, msg);
            let digest = HashAlg::Sha256.digest(msg);
            let raw = plain(CKM_ECDSA);
            same_signature(sign(&raw, &private, &[&digest]).unwrap(), &sig, &raw, &public, &digest);
            verify(&plain(CKM_ECDSA_SHA256), &public, msg, &sig).unwrap();
            verify(&plain(CKM_ECDSA), &public, &digest, &sig).unwrap();
        }
    }

    #[test]
    fn long_hashes_are_truncated() {
        let (private, public) = rfc6979_key();
        // p256's answer for a SHA-384 prehash of "test" (its nonce comes from HMAC-SHA-256).
        let expected = hex("ebde85f1539af67e70dd7a8a6afeeb332aa7f08f01ebb6ab6e04e2a62d2fef75871af45800daddf55619b005a601a7a84f544260f1d2625b2ef5aa7a4f4dd76f");
        let m = plain(CKM_ECDSA_SHA384);
        same_signature(sign(&m, &private, &[b"test"]).unwrap(), &expected, &m, &public, b"test");
        let digest = HashAlg::Sha384.digest(b"test");
        same_signature(sign(&plain(CKM_ECDSA), &private, &[&digest]).unwrap(), &expected, &plain(CKM_ECDSA), &public, &digest);
        verify(&m, &public, b"test", &expected).unwrap();
        // Only the leftmost 256 bits count.
        let mut digest = HashAlg::Sha384.digest(b"test");
        digest[40] ^= 1;
        verify(&plain(CKM_ECDSA), &public, &digest, &expected).unwrap();

        // FIPS 186-4 SigVer (P-256, SHA-384) through CKM_ECDSA with the 48-byte hash.
        let mut point = vec![4u8];
        point.extend(hex("e0e7b99bc62d8dd67883e39ed9fa0657789c5ff556cc1fd8dd1e2a55e9e3f243"));
        point.extend(hex("63fbfd0232b95578075c903a4dbf85ad58f8350516e1ec89b0ee1f5e1362da69"));
        let mut fips = key_object(CKO_PUBLIC_KEY, CKK_EC, &[(CKA_EC_PARAMS, P256_PARAMS), (CKA_EC_POINT, &point)]);
        keys::complete_key(&mut fips).unwrap();
        let sig = hex("f5087878e212b703578f5c66f434883f3ef414dc23e2e8d8ab6a8d159ed5ad83306b4c6c20213707982dffbb30fba99b96e792163dd59dbe606e734328dd7c8a");
        let hash = hex("d9c83b92fa0979f4a5ddbd8dd22ab9377801c3c31bf50f932ace0d2146e2574da0d5552dbed4b18836280e9f94558ea6");
        verify(&plain(CKM_ECDSA), &fips, &hash, &sig).unwrap();
        assert_eq!(err(verify(&plain(CKM_ECDSA), &fips, &hash[1..], &sig)), CKR_SIGNATURE_INVALID);

        // Short hashes are left-padded (SHA-1, 20 bytes).
        let sig = sign(&plain(CKM_ECDSA_SHA1), &private, &[b"sha1"]).unwrap();
        let digest = HashAlg::Sha1.digest(b"sha1");
        verify(&plain(CKM_ECDSA), &public, &digest, &sig).unwrap();
        let mut padded = vec![0u8; 12];
        padded.extend_from_slice(&digest);
        verify(&plain(CKM_ECDSA), &public, &padded, &sig).unwrap();
    }

    #[test]
    fn all_hashes_round_trip() {
        let private = private_object(EC_A_PKCS8);
        let public = public_of(&private);
        for kind in [CKM_ECDSA_SHA1, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512] {
            let sig = sign(&plain(kind), &private, &[b"message"]).unwrap();
            assert_eq!(sig.len(), 64);
            verify(&plain(kind), &public, b"message", &sig).unwrap();
            // A private key object verifies too.
            verify(&plain(kind), &private, b"message", &sig).unwrap();
            assert_eq!(err(verify(&plain(kind), &public, b"massage", &sig)), CKR_SIGNATURE_INVALID);
        }
    }

    #[test]
    fn signature_shapes() {
        let (private, public) = rfc6979_key();
        let m = plain(CKM_ECDSA_SHA256);
        let sig = sign(&m, &private, &[b"sample"]).unwrap();
        let mut bad = sig.clone();
        bad[63] ^= 1;
        assert_eq!(err(verify(&m, &public, b"sample", &bad)), CKR_SIGNATURE_INVALID);
        // r = 0, s = 0, r ≥ n are values, not lengths.
        assert_eq!(err(verify(&m, &public, b"sample", &[0u8; 64])), CKR_SIGNATURE_INVALID);
        assert_eq!(err(verify(&m, &public, b"sample", &[0xffu8; 64])), CKR_SIGNATURE_INVALID);
        for len in [0usize, 1, 63, 65, 66, 128] {
            assert_eq!(err(verify(&m, &public, b"sample", &vec![1u8; len])), CKR_SIGNATURE_LEN_RANGE, "len {len}");
        }
        // Shorter even lengths carry left-trimmed halves.
        assert_eq!(parse_signature(&[1, 2]).unwrap()[31], 1);
        assert_eq!(parse_signature(&[1, 2]).unwrap()[63], 2);
        assert_eq!(parse_signature(&sig).unwrap().as_slice(), sig.as_slice());
        // Only private keys sign; no parameters.
        assert_eq!(err(asym_signer(&m, &public, true)), CKR_KEY_TYPE_INCONSISTENT);
        let with_param = Mechanism::new(CKM_ECDSA, MechanismParam::Bytes(vec![1]));
        assert_eq!(err(asym_signer(&with_param, &private, true)), CKR_MECHANISM_PARAM_INVALID);
    }

    fn ecdh(kdf: CK_EC_KDF_TYPE, shared: &[u8], public: &[u8]) -> Mechanism {
        Mechanism::new(
            CKM_ECDH1_DERIVE,
            MechanismParam::Ecdh1Derive(Ecdh1DeriveParams { kdf, shared_data: shared.to_vec(), public_data: public.to_vec() }),
        )
    }

    #[test]
    fn ecdh_matches_openssl() {
        let a = private_object(EC_A_PKCS8);
        let spki = hex(EC_B_SPKI);
        let b_point = &spki[spki.len() - 65..];
        let z = hex(ECDH_Z);
        // Raw or DER peer point.
        for point in [b_point.to_vec(), keys::der_octet_string(b_point)] {
            assert_eq!(derive_key(&ecdh(CKD_NULL, b"", &point), &a, None).unwrap().as_slice(), z.as_slice());
            assert_eq!(derive_key(&ecdh(CKD_NULL, b"", &point), &a, Some(32)).unwrap().as_slice(), z.as_slice());
        }
        // Shorter keys keep the trailing bytes.
        assert_eq!(derive_key(&ecdh(CKD_NULL, b"", b_point), &a, Some(16)).unwrap().as_slice(), &z[16..]);
        assert_eq!(err(derive_key(&ecdh(CKD_NULL, b"", b_point), &a, Some(33))), CKR_KEY_SIZE_RANGE);
        // ANSI X9.63 KDF with SHA-256 over two blocks.
        let k = derive_key(&ecdh(CKD_SHA256_KDF, b"shared", b_point), &a, Some(48)).unwrap();
        assert_eq!(k.as_slice(), hex(ECDH_X963_SHA256_48).as_slice());
        let k = derive_key(&ecdh(CKD_SHA256_KDF, b"shared", b_point), &a, Some(16)).unwrap();
        assert_eq!(k.as_slice(), &hex(ECDH_X963_SHA256_48)[..16]);
        for kdf in [CKD_SHA1_KDF, CKD_SHA384_KDF, CKD_SHA512_KDF] {
            assert_eq!(derive_key(&ecdh(kdf, b"", b_point), &a, Some(24)).unwrap().len(), 24);
        }
        assert_eq!(err(derive_key(&ecdh(CKD_SHA256_KDF, b"", b_point), &a, None)), CKR_TEMPLATE_INCOMPLETE);
    }

    #[test]
    fn ecdh_both_ways_and_errors() {
        let empty = crate::object::AttributeTemplate::new();
        let params = crate::object::AttributeTemplate::new().with(CKA_EC_PARAMS, P256_PARAMS);
        let gen = plain(CKM_EC_KEY_PAIR_GEN);
        let one = keys::generate_key_pair(&gen, &params, &empty).unwrap();
        let two = keys::generate_key_pair(&gen, &params, &empty).unwrap();
        let object = |t: &crate::object::AttributeTemplate| {
            let mut o = key_object(CKO_PRIVATE_KEY, CKK_EC, &[]);
            for (ty, v) in t.iter() {
                o.set(ty, v.to_vec());
            }
            o
        };
        let (a, b) = (object(&one.private), object(&two.private));
        let a_point = one.public.get(CKA_EC_POINT).unwrap();
        let b_point = two.public.get(CKA_EC_POINT).unwrap();
        let ab = derive_key(&ecdh(CKD_NULL, b"", b_point), &a, None).unwrap();
        let ba = derive_key(&ecdh(CKD_NULL, b"", a_point), &b, None).unwrap();
        assert_eq!(ab, ba);

        let mut off = b_point.to_vec();
        off[30] ^= 1;
        let bad = [
            ecdh(CKD_NULL, b"", &off),
            ecdh(CKD_NULL, b"", &b_point[..40]),
            ecdh(CKD_NULL, b"", b""),
            ecdh(CKD_NULL, b"data", b_point),
            ecdh(CKD_SHA224_KDF, b"", b_point),
            ecdh(CKD_SHA256_KDF_SP800, b"", b_point),
            plain(CKM_ECDH1_DERIVE),
        ];
        for m in bad {
            assert_eq!(err(derive_key(&m, &a, Some(16))), CKR_MECHANISM_PARAM_INVALID, "{m:?}");
        }
        // The identity (SEC1 0x00) is not a public key.
        assert_eq!(err(derive_key(&ecdh(CKD_NULL, b"", &[0]), &a, None)), CKR_MECHANISM_PARAM_INVALID);
        // A public key object cannot derive.
        let public = public_of(&a);
        assert_eq!(err(derive_key(&ecdh(CKD_NULL, b"", b_point), &public, None)), CKR_KEY_TYPE_INCONSISTENT);
    }
}

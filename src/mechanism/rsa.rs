//! RSA mechanisms: PKCS #1 v1.5 (`CKM_RSA_PKCS`, `CKM_SHA*_RSA_PKCS`), PSS
//! (`CKM_RSA_PKCS_PSS`, `CKM_SHA*_RSA_PKCS_PSS`), OAEP (`CKM_RSA_PKCS_OAEP`) and raw RSA
//! (`CKM_RSA_X_509`), on the `rsa` crate. Private-key operations are blinded and
//! constant-time in the crate; PKCS #1 v1.5 decryption uses its implicit rejection, so a bad
//! padding yields a pseudo-random message rather than an error.

use cryptoki_sys::*;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss};
use zeroize::Zeroizing;

use super::keys::{self, with_hash, HashAlg, Hasher, SysRng};
use super::{Cipher, Mechanism, MechanismParam, Secret, Signer};
use crate::error::{rv, Result};
use crate::object::Object;

enum Key {
    Private(Box<rsa::PrivateKey>),
    Public(rsa::PublicKey),
}

impl Key {
    fn load(object: &Object, private: bool) -> Result<Self> {
        if private {
            if object.class() != CKO_PRIVATE_KEY {
                return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
            }
            Ok(Key::Private(Box::new(keys::rsa_private(object)?)))
        } else {
            Ok(Key::Public(keys::rsa_public(object)?))
        }
    }

    fn public(&self) -> &rsa::PublicKey {
        match self {
            Key::Private(k) => k.as_public_key(),
            Key::Public(k) => k,
        }
    }

    fn private(&self) -> Result<&rsa::PrivateKey> {
        match self {
            Key::Private(k) => Ok(k),
            Key::Public(_) => Err(rv(CKR_KEY_TYPE_INCONSISTENT)),
        }
    }

    /// k: the modulus length in bytes.
    fn size(&self) -> usize {
        self.public().size()
    }
}

// ---------------------------------------------------------------------------------------------
// Raw RSA (hazmat)

/// The integer of `input` (at most k bytes), which must be below the modulus.
fn representative(key: &rsa::PublicKey, input: &[u8]) -> Option<Zeroizing<BoxedUint>> {
    if input.len() > key.size() {
        return None;
    }
    let v = Zeroizing::new(BoxedUint::from_be_slice(input, key.n_bits_precision()).ok()?);
    (*v < *key.n().as_ref()).then_some(v)
}

/// I2OSP(v, k).
fn octets(v: &BoxedUint, k: usize) -> Secret {
    let full = Zeroizing::new(v.to_be_bytes());
    let mut out = Zeroizing::new(vec![0u8; k]);
    let n = full.len().min(k);
    out[k - n..].copy_from_slice(&full[full.len() - n..]);
    out
}

fn raw_public(key: &rsa::PublicKey, input: &[u8], bad: CK_RV) -> Result<Secret> {
    let m = representative(key, input).ok_or(rv(bad))?;
    let c = rsa::hazmat::rsa_encrypt(key, &m).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
    Ok(octets(&c, key.size()))
}

fn raw_private(key: &rsa::PrivateKey, input: &[u8], bad: CK_RV) -> Result<Secret> {
    let c = representative(key.as_public_key(), input).ok_or(rv(bad))?;
    let m = Zeroizing::new(
        rsa::hazmat::rsa_decrypt_and_check(key, Some(&mut SysRng), &c).map_err(|_| rv(CKR_FUNCTION_FAILED))?,
    );
    Ok(octets(&m, key.size()))
}

// ---------------------------------------------------------------------------------------------
// Signatures

#[derive(Clone, Copy)]
enum SignScheme {
    /// `CKM_RSA_PKCS`: the caller's DigestInfo, PKCS #1 v1.5 padded.
    Pkcs1Raw,
    /// `CKM_SHA*_RSA_PKCS`.
    Pkcs1(HashAlg),
    /// `CKM_RSA_X_509`.
    X509,
    /// `CKM_RSA_PKCS_PSS` (`prehashed`) and `CKM_SHA*_RSA_PKCS_PSS`.
    Pss { hash: HashAlg, salt: usize, prehashed: bool },
}

enum Input {
    Buffer(Secret),
    Hash(Hasher),
}

struct RsaSigner {
    key: Key,
    scheme: SignScheme,
    input: Input,
}

fn hashing_mechanism(kind: CK_MECHANISM_TYPE) -> Option<(HashAlg, bool)> {
    Some(match kind {
        CKM_SHA1_RSA_PKCS => (HashAlg::Sha1, false),
        CKM_SHA256_RSA_PKCS => (HashAlg::Sha256, false),
        CKM_SHA384_RSA_PKCS => (HashAlg::Sha384, false),
        CKM_SHA512_RSA_PKCS => (HashAlg::Sha512, false),
        CKM_SHA1_RSA_PKCS_PSS => (HashAlg::Sha1, true),
        CKM_SHA256_RSA_PKCS_PSS => (HashAlg::Sha256, true),
        CKM_SHA384_RSA_PKCS_PSS => (HashAlg::Sha384, true),
        CKM_SHA512_RSA_PKCS_PSS => (HashAlg::Sha512, true),
        _ => return None,
    })
}

/// The PSS parameters: hash and MGF1 of the same hash (and, for the hashing variants, the
/// mechanism's hash), a salt that fits the modulus.
fn pss_params(mechanism: &Mechanism, fixed: Option<HashAlg>, key: &Key) -> Result<(HashAlg, usize)> {
    let MechanismParam::RsaPss(p) = &mechanism.param else {
        return Err(rv(CKR_MECHANISM_PARAM_INVALID));
    };
    let hash = HashAlg::from_mechanism(p.hash).ok_or(rv(CKR_MECHANISM_PARAM_INVALID))?;
    if HashAlg::from_mgf(p.mgf) != Some(hash) || fixed.is_some_and(|f| f != hash) {
        return Err(rv(CKR_MECHANISM_PARAM_INVALID));
    }
    // emLen = ceil((modBits - 1) / 8); the salt must leave room for the hash and two bytes.
    let em_len = (key.public().n().bit_width() as usize - 1).div_ceil(8);
    // (`sLen` is the caller's: compared without an addition that could wrap.)
    if p.salt_len > em_len.saturating_sub(hash.len() + 2) {
        return Err(rv(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok((hash, p.salt_len))
}

pub fn signer(mechanism: &Mechanism, key: &Object, sign: bool) -> Result<Box<dyn Signer>> {
    let key = Key::load(key, sign)?;
    let scheme = match mechanism.kind {
        CKM_RSA_PKCS => {
            mechanism.no_param()?;
            SignScheme::Pkcs1Raw
        }
        CKM_RSA_X_509 => {
            mechanism.no_param()?;
            SignScheme::X509
        }
        CKM_RSA_PKCS_PSS => {
            let (hash, salt) = pss_params(mechanism, None, &key)?;
            SignScheme::Pss { hash, salt, prehashed: true }
        }
        kind => match hashing_mechanism(kind) {
            Some((hash, false)) => {
                mechanism.no_param()?;
                SignScheme::Pkcs1(hash)
            }
            Some((hash, true)) => {
                let (hash, salt) = pss_params(mechanism, Some(hash), &key)?;
                SignScheme::Pss { hash, salt, prehashed: false }
            }
            None => return Err(rv(CKR_MECHANISM_INVALID)),
        },
    };
    let input = match scheme {
        SignScheme::Pkcs1(hash) | SignScheme::Pss { hash, prehashed: false, .. } => Input::Hash(hash.hasher()),
        _ => Input::Buffer(Zeroizing::new(Vec::new())),
    };
    Ok(Box::new(RsaSigner { key, scheme, input }))
}

impl RsaSigner {
    /// What the scheme signs: the buffered data, or the digest of the data.
    fn message(&self) -> Result<Secret> {
        let k = self.key.size();
        let m = match &self.input {
            Input::Buffer(b) => b.clone(),
            Input::Hash(h) => Zeroizing::new(h.finish()),
        };
        let ok = match self.scheme {
            SignScheme::Pkcs1Raw => m.len() + 11 <= k,
            SignScheme::X509 => m.len() <= k,
            SignScheme::Pss { hash, .. } => m.len() == hash.len(),
            SignScheme::Pkcs1(_) => true,
        };
        if ok {
            Ok(m)
        } else {
            Err(rv(CKR_DATA_LEN_RANGE))
        }
    }
}

impl Signer for RsaSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.input {
            Input::Buffer(b) => b.extend_from_slice(data),
            Input::Hash(h) => h.update(data),
        }
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        let m = self.message()?;
        let key = self.key.private()?;
        let failed = |_| rv(CKR_FUNCTION_FAILED);
        match self.scheme {
            SignScheme::Pkcs1Raw => key.sign_with_rng(&mut SysRng, Pkcs1v15Sign::new_unprefixed(), &m).map_err(failed),
            SignScheme::Pkcs1(hash) => {
                with_hash!(hash, D => key.sign_with_rng(&mut SysRng, Pkcs1v15Sign::new::<D>(), &m).map_err(failed))
            }
            SignScheme::Pss { hash, salt, .. } => {
                with_hash!(hash, D => key.sign_with_rng(&mut SysRng, Pss::<D>::new_with_salt(salt), &m).map_err(failed))
            }
            SignScheme::X509 => {
                // Raw RSA: the data, left-padded to k bytes, must be below the modulus.
                Ok(raw_private(key, &m, CKR_DATA_INVALID)?.to_vec())
            }
        }
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        let key = self.key.public();
        if signature.len() != key.size() {
            return Err(rv(CKR_SIGNATURE_LEN_RANGE));
        }
        let m = self.message()?;
        let result = match self.scheme {
            SignScheme::Pkcs1Raw => key.verify(Pkcs1v15Sign::new_unprefixed(), &m, signature).is_ok(),
            SignScheme::Pkcs1(hash) => with_hash!(hash, D => key.verify(Pkcs1v15Sign::new::<D>(), &m, signature).is_ok()),
            SignScheme::Pss { hash, salt, .. } => {
                with_hash!(hash, D => key.verify(Pss::<D>::new_with_salt(salt), &m, signature).is_ok())
            }
            SignScheme::X509 => match raw_public(key, signature, CKR_SIGNATURE_INVALID) {
                Ok(recovered) => {
                    let mut expected = vec![0u8; key.size() - m.len()];
                    expected.extend_from_slice(&m);
                    recovered.as_slice() == expected.as_slice()
                }
                Err(_) => false,
            },
        };
        if result {
            Ok(())
        } else {
            Err(rv(CKR_SIGNATURE_INVALID))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encryption

#[derive(Clone)]
enum CipherScheme {
    Pkcs1,
    /// `mgf` may differ from `hash`: PKCS#11 allows any pair, and some platforms pair
    /// SHA-256 with MGF1-SHA-1 (Java's and Android's `OAEPWithSHA-256AndMGF1Padding`).
    Oaep { hash: HashAlg, mgf: HashAlg, label: Vec<u8> },
    X509,
}

struct RsaCipher {
    key: Key,
    scheme: CipherScheme,
    encrypt: bool,
    input: Secret,
}

pub fn cipher(mechanism: &Mechanism, key: &Object, encrypt: bool) -> Result<Box<dyn Cipher>> {
    let key = Key::load(key, !encrypt)?;
    let scheme = match mechanism.kind {
        CKM_RSA_PKCS => {
            mechanism.no_param()?;
            CipherScheme::Pkcs1
        }
        CKM_RSA_X_509 => {
            mechanism.no_param()?;
            CipherScheme::X509
        }
        CKM_RSA_PKCS_OAEP => {
            let MechanismParam::RsaOaep(p) = &mechanism.param else {
                return Err(rv(CKR_MECHANISM_PARAM_INVALID));
            };
            let hash = HashAlg::from_mechanism(p.hash).ok_or(rv(CKR_MECHANISM_PARAM_INVALID))?;
            let mgf = HashAlg::from_mgf(p.mgf).ok_or(rv(CKR_MECHANISM_PARAM_INVALID))?;
            if key.size() < 2 * hash.len() + 2 {
                return Err(rv(CKR_KEY_SIZE_RANGE));
            }
            CipherScheme::Oaep { hash, mgf, label: p.label.clone() }
        }
        _ => return Err(rv(CKR_MECHANISM_INVALID)),
    };
    Ok(Box::new(RsaCipher { key, scheme, encrypt, input: Zeroizing::new(Vec::new()) }))
}

impl RsaCipher {
    fn encrypt(&self) -> Result<Secret> {
        let key = self.key.public();
        let k = key.size();
        let m = &self.input;
        let max = match &self.scheme {
            CipherScheme::Pkcs1 => k - 11,
            CipherScheme::Oaep { hash, .. } => k - 2 * hash.len() - 2,
            CipherScheme::X509 => k,
        };
        if m.len() > max {
            return Err(rv(CKR_DATA_LEN_RANGE));
        }
        let failed = |_| rv(CKR_FUNCTION_FAILED);
        let c = match &self.scheme {
            CipherScheme::Pkcs1 => key.encrypt(&mut SysRng, Pkcs1v15Encrypt, m).map_err(failed)?,
            CipherScheme::Oaep { hash, mgf, label } => with_hash!(*hash, D => with_hash!(*mgf, M => key
                .encrypt(&mut SysRng, Oaep::<D, M>::new_with_mgf_hash_and_label(label.as_slice()), m)
                .map_err(failed)?)),
            CipherScheme::X509 => return raw_public(key, m, CKR_DATA_INVALID),
        };
        Ok(Zeroizing::new(c))
    }

    fn decrypt(&self) -> Result<Secret> {
        let key = self.key.private()?;
        if self.input.len() != key.size() {
            return Err(rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        let c = &self.input;
        // One error for every failure: nothing about the padding may leak.
        let invalid = |_| rv(CKR_ENCRYPTED_DATA_INVALID);
        let m = match &self.scheme {
            CipherScheme::Pkcs1 => key.decrypt_blinded(&mut SysRng, Pkcs1v15Encrypt, c).map_err(invalid)?,
            CipherScheme::Oaep { hash, mgf, label } => with_hash!(*hash, D => with_hash!(*mgf, M => key
                .decrypt_blinded(&mut SysRng, Oaep::<D, M>::new_with_mgf_hash_and_label(label.as_slice()), c)
                .map_err(invalid)?)),
            CipherScheme::X509 => return raw_private(key, c, CKR_ENCRYPTED_DATA_INVALID),
        };
        Ok(Zeroizing::new(m))
    }
}

impl Cipher for RsaCipher {
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        self.input.extend_from_slice(input);
        Ok(Zeroizing::new(Vec::new()))
    }

    fn finish(&mut self) -> Result<Secret> {
        if self.encrypt {
            self.encrypt()
        } else {
            self.decrypt()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::mechanism::keys::fixtures::*;
    use crate::mechanism::keys::tests::{private_object, public_of};
    use crate::mechanism::{asym_cipher, asym_signer, RsaOaepParams, RsaPssParams};

    /// The OpenSSL-made 2048-bit key of the fixtures, as a private and a public key object.
    fn pair() -> &'static (Object, Object) {
        static PAIR: OnceLock<(Object, Object)> = OnceLock::new();
        PAIR.get_or_init(|| {
            let private = private_object(RSA_PKCS8);
            let public = public_of(&private);
            (private, public)
        })
    }

    fn err<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    fn plain(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism::new(kind, MechanismParam::None)
    }

    fn pss(kind: CK_MECHANISM_TYPE, hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, salt_len: usize) -> Mechanism {
        Mechanism::new(kind, MechanismParam::RsaPss(RsaPssParams { hash, mgf, salt_len }))
    }

    fn oaep(hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, label: &[u8]) -> Mechanism {
        Mechanism::new(CKM_RSA_PKCS_OAEP, MechanismParam::RsaOaep(RsaOaepParams { hash, mgf, label: label.to_vec() }))
    }

    fn sign(m: &Mechanism, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let mut s = asym_signer(m, &pair().0, true)?;
        for p in parts {
            s.update(p)?;
        }
        s.sign()
    }

    fn verify(m: &Mechanism, data: &[u8], sig: &[u8]) -> Result<()> {
        let mut v = asym_signer(m, &pair().1, false)?;
        v.update(data)?;
        v.verify(sig)
    }

    fn run(cipher: &mut Box<dyn Cipher>, data: &[u8]) -> Result<Secret> {
        let mut out = cipher.update(data)?;
        out.extend_from_slice(&cipher.finish()?);
        Ok(out)
    }

    fn encrypt(m: &Mechanism, data: &[u8]) -> Result<Secret> {
        run(&mut asym_cipher(m, &pair().1, true)?, data)
    }

    fn decrypt(m: &Mechanism, data: &[u8]) -> Result<Secret> {
        run(&mut asym_cipher(m, &pair().0, false)?, data)
    }

    #[test]
    fn pkcs1_sha256_matches_openssl() {
        let m = plain(CKM_SHA256_RSA_PKCS);
        let openssl = hex(RSA_SIG_SHA256);
        verify(&m, MESSAGE, &openssl).unwrap();
        // PKCS #1 v1.5 is deterministic: keyfront's signature is OpenSSL's, in one part or many.
        assert_eq!(sign(&m, &[MESSAGE]).unwrap(), openssl);
        assert_eq!(sign(&m, &[b"key", b"", b"front"]).unwrap(), openssl);
        // The same through CKM_RSA_PKCS with the caller's DigestInfo.
        let mut digest_info = hex("3031300d060960864801650304020105000420");
        digest_info.extend_from_slice(&keys::HashAlg::Sha256.digest(MESSAGE));
        assert_eq!(sign(&plain(CKM_RSA_PKCS), &[&digest_info]).unwrap(), openssl);
        verify(&plain(CKM_RSA_PKCS), &digest_info, &openssl).unwrap();

        let mut bad = openssl.clone();
        bad[100] ^= 1;
        assert_eq!(err(verify(&m, MESSAGE, &bad)), CKR_SIGNATURE_INVALID);
        assert_eq!(err(verify(&m, b"other", &openssl)), CKR_SIGNATURE_INVALID);
        assert_eq!(err(verify(&m, MESSAGE, &openssl[1..])), CKR_SIGNATURE_LEN_RANGE);
        let mut long = openssl.clone();
        long.push(0);
        assert_eq!(err(verify(&m, MESSAGE, &long)), CKR_SIGNATURE_LEN_RANGE);
    }

    #[test]
    fn pkcs1_hashes_round_trip() {
        for kind in [CKM_SHA1_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS] {
            let sig = sign(&plain(kind), &[b"data"]).unwrap();
            assert_eq!(sig.len(), 256);
            verify(&plain(kind), b"data", &sig).unwrap();
            assert_eq!(err(verify(&plain(CKM_SHA256_RSA_PKCS), b"data", &sig)), CKR_SIGNATURE_INVALID);
        }
        // CKM_RSA_PKCS signs at most k - 11 bytes.
        let m = plain(CKM_RSA_PKCS);
        let sig = sign(&m, &[&[7u8; 245]]).unwrap();
        verify(&m, &[7u8; 245], &sig).unwrap();
        assert_eq!(err(sign(&m, &[&[7u8; 246]])), CKR_DATA_LEN_RANGE);
        // Parameters are refused.
        let with_param = Mechanism::new(CKM_SHA256_RSA_PKCS, MechanismParam::Bytes(vec![0]));
        assert_eq!(err(asym_signer(&with_param, &pair().0, true)), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn pss_matches_openssl() {
        let openssl = hex(RSA_SIG_PSS_SHA256);
        let hashed = pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32);
        verify(&hashed, MESSAGE, &openssl).unwrap();
        let raw = pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32);
        let digest = keys::HashAlg::Sha256.digest(MESSAGE);
        verify(&raw, &digest, &openssl).unwrap();
        // The salt length is checked.
        let other_salt = pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 20);
        assert_eq!(err(verify(&other_salt, MESSAGE, &openssl)), CKR_SIGNATURE_INVALID);

        // Round trips: multi-part hashing variants, the raw mechanism on a digest.
        for (kind, hash, mgf, alg) in [
            (CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, CKG_MGF1_SHA1, keys::HashAlg::Sha1),
            (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, keys::HashAlg::Sha256),
            (CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384, keys::HashAlg::Sha384),
            (CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, CKG_MGF1_SHA512, keys::HashAlg::Sha512),
        ] {
            for salt in [0, alg.len()] {
                let m = pss(kind, hash, mgf, salt);
                let sig = sign(&m, &[b"multi", b"part"]).unwrap();
                verify(&m, b"multipart", &sig).unwrap();
                let r = pss(CKM_RSA_PKCS_PSS, hash, mgf, salt);
                verify(&r, &alg.digest(b"multipart"), &sig).unwrap();
                let sig = sign(&r, &[&alg.digest(b"raw")]).unwrap();
                verify(&m, b"raw", &sig).unwrap();
            }
        }
        // The largest salt: emLen - hLen - 2 = 256 - 32 - 2.
        let m = pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 222);
        let sig = sign(&m, &[b"x"]).unwrap();
        verify(&m, b"x", &sig).unwrap();
    }

    #[test]
    fn pss_parameter_errors() {
        let key = &pair().0;
        let bad = [
            plain(CKM_RSA_PKCS_PSS),
            plain(CKM_SHA256_RSA_PKCS_PSS),
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA1, 32),
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384, 32),
            pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA512, 32),
            pss(CKM_RSA_PKCS_PSS, CKM_SHA224, CKG_MGF1_SHA224, 28),
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 223),
            // A salt length near 2^64 (a CK_ULONG the caller chose) must not wrap the check.
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, usize::MAX - 20),
            Mechanism::new(CKM_RSA_PKCS_PSS, MechanismParam::RsaOaep(RsaOaepParams { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, label: vec![] })),
        ];
        for m in bad {
            assert_eq!(err(asym_signer(&m, key, true)), CKR_MECHANISM_PARAM_INVALID, "{m:?}");
        }
        // CKM_RSA_PKCS_PSS takes a digest of the parameters' hash.
        let raw = pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32);
        assert_eq!(err(sign(&raw, &[&[1u8; 20]])), CKR_DATA_LEN_RANGE);
        assert_eq!(err(sign(&raw, &[&[1u8; 48]])), CKR_DATA_LEN_RANGE);
        let sig = sign(&raw, &[&[1u8; 32]]).unwrap();
        assert_eq!(err(verify(&raw, &[1u8; 31], &sig)), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn oaep_matches_openssl() {
        let m = oaep(CKM_SHA256, CKG_MGF1_SHA256, b"label");
        assert_eq!(decrypt(&m, &hex(RSA_CT_OAEP_SHA256)).unwrap().as_slice(), MESSAGE);
        // Another label, another hash: the same failure.
        for other in [oaep(CKM_SHA256, CKG_MGF1_SHA256, b""), oaep(CKM_SHA_1, CKG_MGF1_SHA1, b"label")] {
            assert_eq!(err(decrypt(&other, &hex(RSA_CT_OAEP_SHA256))), CKR_ENCRYPTED_DATA_INVALID);
        }
        for (hash, mgf, max) in [
            (CKM_SHA_1, CKG_MGF1_SHA1, 214),
            (CKM_SHA256, CKG_MGF1_SHA256, 190),
            (CKM_SHA384, CKG_MGF1_SHA384, 158),
            (CKM_SHA512, CKG_MGF1_SHA512, 126),
        ] {
            for label in [&b""[..], b"a label"] {
                let m = oaep(hash, mgf, label);
                let data = vec![0x5au8; max];
                let ct = encrypt(&m, &data).unwrap();
                assert_eq!(ct.len(), 256);
                assert_eq!(decrypt(&m, &ct).unwrap().as_slice(), data.as_slice());
                assert_eq!(err(encrypt(&m, &vec![0u8; max + 1])), CKR_DATA_LEN_RANGE);
                let mut bad = ct.clone();
                bad[10] ^= 0x80;
                assert_eq!(err(decrypt(&m, &bad)), CKR_ENCRYPTED_DATA_INVALID);
                assert_eq!(err(decrypt(&m, &ct[1..])), CKR_ENCRYPTED_DATA_LEN_RANGE);
            }
        }
        // MGF1 of another hash than the label's: its own scheme, not interchangeable.
        let mixed = oaep(CKM_SHA256, CKG_MGF1_SHA1, b"");
        let ct = encrypt(&mixed, MESSAGE).unwrap();
        assert_eq!(decrypt(&mixed, &ct).unwrap().as_slice(), MESSAGE);
        assert_eq!(err(decrypt(&oaep(CKM_SHA256, CKG_MGF1_SHA256, b""), &ct)), CKR_ENCRYPTED_DATA_INVALID);
        assert_eq!(err(decrypt(&oaep(CKM_SHA_1, CKG_MGF1_SHA1, b""), &ct)), CKR_ENCRYPTED_DATA_INVALID);
        let key = &pair().1;
        for m in [
            oaep(CKM_SHA224, CKG_MGF1_SHA224, b""),
            oaep(CKM_SHA256, CKG_MGF1_SHA224, b""),
            oaep(CKM_SHA256, 0x77, b""),
            plain(CKM_RSA_PKCS_OAEP),
        ] {
            assert_eq!(err(asym_cipher(&m, key, true)), CKR_MECHANISM_PARAM_INVALID, "{m:?}");
        }
    }

    #[test]
    fn pkcs1_encryption() {
        let m = plain(CKM_RSA_PKCS);
        assert_eq!(decrypt(&m, &hex(RSA_CT_PKCS1)).unwrap().as_slice(), MESSAGE);
        let ct = encrypt(&m, &[9u8; 245]).unwrap();
        assert_eq!(decrypt(&m, &ct).unwrap().as_slice(), &[9u8; 245][..]);
        assert_eq!(encrypt(&m, b"").map(|c| c.len()).unwrap(), 256);
        assert_eq!(err(encrypt(&m, &[9u8; 246])), CKR_DATA_LEN_RANGE);
        // A tampered ciphertext is implicitly rejected: a stable pseudo-random message, no error.
        let mut bad = hex(RSA_CT_PKCS1);
        bad[0] ^= 1;
        let first = decrypt(&m, &bad).unwrap();
        assert_ne!(first.as_slice(), MESSAGE);
        assert_eq!(decrypt(&m, &bad).unwrap(), first);
        assert_eq!(err(decrypt(&m, &bad[1..])), CKR_ENCRYPTED_DATA_LEN_RANGE);
        // A ciphertext at or above the modulus.
        assert_eq!(err(decrypt(&m, &[0xffu8; 256])), CKR_ENCRYPTED_DATA_INVALID);
        // Encryption with the private half uses its public part; decryption needs the private one.
        let mut c = asym_cipher(&m, &pair().0, true).unwrap();
        assert_eq!(run(&mut c, b"x").unwrap().len(), 256);
        assert_eq!(err(asym_cipher(&m, &pair().1, false)), CKR_KEY_TYPE_INCONSISTENT);
    }

    #[test]
    fn raw_rsa() {
        let m = plain(CKM_RSA_X_509);
        // Decrypting a PKCS #1 v1.5 ciphertext raw shows the padding block: 00 02 … 00 message.
        let block = decrypt(&m, &hex(RSA_CT_PKCS1)).unwrap();
        assert_eq!(block.len(), 256);
        assert_eq!(&block[..2], &[0, 2]);
        assert!(block.ends_with(&[&[0u8][..], MESSAGE].concat()));
        // Short input is left-padded; encrypt and decrypt invert each other.
        let ct = encrypt(&m, b"\x01short").unwrap();
        let mut expected = vec![0u8; 250];
        expected.extend_from_slice(b"\x01short");
        assert_eq!(decrypt(&m, &ct).unwrap().as_slice(), expected.as_slice());
        // Values at or above the modulus.
        assert_eq!(err(encrypt(&m, &[0xffu8; 256])), CKR_DATA_INVALID);
        assert_eq!(err(encrypt(&m, &[1u8; 257])), CKR_DATA_LEN_RANGE);
        assert_eq!(err(decrypt(&m, &[0xffu8; 256])), CKR_ENCRYPTED_DATA_INVALID);
        assert_eq!(err(decrypt(&m, &[1u8; 255])), CKR_ENCRYPTED_DATA_LEN_RANGE);
        // Raw signatures: RSASP1 of the left-padded data, which RSAVP1 recovers.
        let sig = sign(&m, &[b"raw data"]).unwrap();
        verify(&m, b"raw data", &sig).unwrap();
        assert_eq!(err(verify(&m, b"raw datb", &sig)), CKR_SIGNATURE_INVALID);
        assert_eq!(err(verify(&m, b"raw data", &[0xffu8; 256])), CKR_SIGNATURE_INVALID);
        assert_eq!(err(sign(&m, &[&[0xffu8; 256]])), CKR_DATA_INVALID);
        // The raw signature of a PKCS #1 v1.5 block is the PKCS #1 v1.5 signature.
        let mut digest_info = hex("3031300d060960864801650304020105000420");
        digest_info.extend_from_slice(&keys::HashAlg::Sha256.digest(MESSAGE));
        let mut em = vec![0u8, 1];
        em.extend(std::iter::repeat_n(0xffu8, 256 - 3 - digest_info.len()));
        em.push(0);
        em.extend_from_slice(&digest_info);
        assert_eq!(sign(&m, &[&em]).unwrap(), hex(RSA_SIG_SHA256));
    }

    #[test]
    fn key_class_checks() {
        let (private, public) = pair();
        let m = plain(CKM_SHA256_RSA_PKCS);
        assert_eq!(err(asym_signer(&m, public, true)), CKR_KEY_TYPE_INCONSISTENT);
        // A private key object can verify.
        let sig = sign(&m, &[b"v"]).unwrap();
        let mut v = asym_signer(&m, private, false).unwrap();
        v.update(b"v").unwrap();
        v.verify(&sig).unwrap();
        // Signing twice from one state gives the same (deterministic) signature.
        let mut s = asym_signer(&m, private, true).unwrap();
        s.update(b"v").unwrap();
        assert_eq!(s.sign().unwrap(), sig);
        assert_eq!(s.sign().unwrap(), sig);
    }
}

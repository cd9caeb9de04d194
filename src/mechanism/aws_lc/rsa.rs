//! RSA on AWS-LC: PKCS #1 v1.5 and PSS signatures with SHA-2 (SHA-1 verification of PKCS #1
//! v1.5 too), OAEP both ways, and PKCS #1 v1.5 encryption.
//! The rest runs on RustCrypto (`super::super::rsa`): see `super` for the list and why.
//! AWS-LC's private-key operations are blinded and constant-time; OAEP decryption fails with
//! one error whatever was wrong.

use std::sync::Arc;

use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384,
    OAEP_SHA512_MGF1SHA512,
};
use aws_lc_rs::signature::{
    self, ParsedPublicKey, RsaKeyPair, RsaParameters, RsaPssSaltLength, RsaPublicKeyComponents, RsaSignatureEncoding,
};
use cryptoki_sys::*;
use parking_lot::RwLock;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use super::super::keys::{self, HashAlg, Hasher};
use super::super::{rsa as rust_crypto, Cipher, Mechanism, MechanismParam, Secret, Signer};
use super::import_digest;
use crate::error::{rv, Result};
use crate::object::Object;

// ---------------------------------------------------------------------------------------------
// Keys, parsed once per key object

/// The AWS-LC signing key of a private key object; `None` if AWS-LC refused the key.
#[derive(Clone)]
struct SigningKey(Option<Arc<RsaKeyPair>>);

/// The AWS-LC decryption key of a private key object; `None` if AWS-LC refused the key.
#[derive(Clone)]
struct DecryptingKey(Option<Arc<PrivateDecryptingKey>>);

/// The public half of a public or private key object, as AWS-LC uses it.
struct PublicKeys {
    components: RsaPublicKeyComponents<Vec<u8>>,
    /// k, the modulus length in bytes.
    size: usize,
    encrypting: PublicEncryptingKey,
    /// Verification keys by algorithm (the address of its `'static` parameters): aws-lc-rs
    /// binds a parsed key to one algorithm, and the parsed key keeps its Montgomery context.
    verifying: RwLock<Vec<(usize, ParsedPublicKey)>>,
}

/// `None` if AWS-LC refused the key.
#[derive(Clone)]
struct PublicKey(Option<Arc<PublicKeys>>);

/// At most this many verification keys are kept per key object (one per mechanism and PSS
/// salt length used with it); past that they are made for each operation.
const VERIFYING_KEYS: usize = 8;

fn signing_key(object: &Object) -> Result<Option<Arc<RsaKeyPair>>> {
    let key = object.prepared(|o| {
        let der = keys::private_key_to_pkcs8(o)?;
        Ok(SigningKey(RsaKeyPair::from_pkcs8(&der).ok().map(Arc::new)))
    })?;
    Ok(key.0)
}

fn decrypting_key(object: &Object) -> Result<Option<Arc<PrivateDecryptingKey>>> {
    let key = object.prepared(|o| {
        let der = keys::private_key_to_pkcs8(o)?;
        Ok(DecryptingKey(PrivateDecryptingKey::from_pkcs8(&der).ok().map(Arc::new)))
    })?;
    Ok(key.0)
}

fn public_key(object: &Object) -> Result<Option<Arc<PublicKeys>>> {
    let key = object.prepared(|o| {
        let key = keys::rsa_public(o)?;
        let n = keys::trim_be(&key.n_bytes()).to_vec();
        let e = keys::trim_be(&key.e_bytes()).to_vec();
        // AWS-LC takes exponents of at most 33 bits (as RustCrypto does); anything else stays
        // on RustCrypto.
        if e.len() > 5 {
            return Ok(PublicKey(None));
        }
        let components = RsaPublicKeyComponents { n, e };
        let encrypting: std::result::Result<PublicEncryptingKey, _> = components.clone().try_into();
        Ok(PublicKey(encrypting.ok().map(|encrypting| {
            Arc::new(PublicKeys {
                size: components.n.len(),
                components,
                encrypting,
                verifying: RwLock::new(Vec::new()),
            })
        })))
    })?;
    Ok(key.0)
}

impl PublicKeys {
    fn verifier(&self, params: &'static RsaParameters) -> Option<ParsedPublicKey> {
        let id = params as *const RsaParameters as usize;
        if let Some((_, key)) = self.verifying.read().iter().find(|(a, _)| *a == id) {
            return Some(key.clone());
        }
        let key = self.components.to_parsed_public_key(params).ok()?;
        let mut verifying = self.verifying.write();
        if verifying.len() < VERIFYING_KEYS && !verifying.iter().any(|(a, _)| *a == id) {
            verifying.push((id, key.clone()));
        }
        Some(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Algorithms: aws-lc-rs takes them as `'static` references.

static PKCS1_SHA256: RsaSignatureEncoding = signature::RSA_PKCS1_SHA256;
static PKCS1_SHA384: RsaSignatureEncoding = signature::RSA_PKCS1_SHA384;
static PKCS1_SHA512: RsaSignatureEncoding = signature::RSA_PKCS1_SHA512;
static VERIFY_PKCS1_SHA1: RsaParameters = signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY;
static VERIFY_PKCS1_SHA256: RsaParameters = signature::RSA_PKCS1_2048_8192_SHA256;
static VERIFY_PKCS1_SHA384: RsaParameters = signature::RSA_PKCS1_2048_8192_SHA384;
static VERIFY_PKCS1_SHA512: RsaParameters = signature::RSA_PKCS1_2048_8192_SHA512;
// PSS with the salt as long as the hash (aws-lc-rs's default).
static PSS_SHA256: RsaSignatureEncoding = signature::RSA_PSS_SHA256;
static PSS_SHA384: RsaSignatureEncoding = signature::RSA_PSS_SHA384;
static PSS_SHA512: RsaSignatureEncoding = signature::RSA_PSS_SHA512;
static VERIFY_PSS_SHA256: RsaParameters = signature::RSA_PSS_2048_8192_SHA256;
static VERIFY_PSS_SHA384: RsaParameters = signature::RSA_PSS_2048_8192_SHA384;
static VERIFY_PSS_SHA512: RsaParameters = signature::RSA_PSS_2048_8192_SHA512;

pub(super) type PssAlgorithms = (&'static RsaSignatureEncoding, &'static RsaParameters);

/// PSS with other salt lengths, made when first used and kept for the life of the process:
/// at most three hashes × the salts that fit an 8192-bit modulus (≤ 1,022), a few dozen
/// bytes each.
static OTHER_SALTS: RwLock<Vec<(HashAlg, usize, PssAlgorithms)>> = RwLock::new(Vec::new());

fn pkcs1(hash: HashAlg) -> Option<(Option<&'static RsaSignatureEncoding>, &'static RsaParameters)> {
    Some(match hash {
        HashAlg::Sha1 => (None, &VERIFY_PKCS1_SHA1),
        HashAlg::Sha256 => (Some(&PKCS1_SHA256), &VERIFY_PKCS1_SHA256),
        HashAlg::Sha384 => (Some(&PKCS1_SHA384), &VERIFY_PKCS1_SHA384),
        HashAlg::Sha512 => (Some(&PKCS1_SHA512), &VERIFY_PKCS1_SHA512),
    })
}

pub(super) fn pss_algorithms(hash: HashAlg, salt: usize) -> Option<PssAlgorithms> {
    let (sign, verify) = match hash {
        HashAlg::Sha1 => return None,
        HashAlg::Sha256 => (&PSS_SHA256, &VERIFY_PSS_SHA256),
        HashAlg::Sha384 => (&PSS_SHA384, &VERIFY_PSS_SHA384),
        HashAlg::Sha512 => (&PSS_SHA512, &VERIFY_PSS_SHA512),
    };
    if salt == hash.len() {
        return Some((sign, verify));
    }
    if let Some((_, _, found)) = OTHER_SALTS.read().iter().find(|(h, s, _)| *h == hash && *s == salt) {
        return Some(*found);
    }
    let mut table = OTHER_SALTS.write();
    if let Some((_, _, found)) = table.iter().find(|(h, s, _)| *h == hash && *s == salt) {
        return Some(*found);
    }
    let length = RsaPssSaltLength::Custom(u16::try_from(salt).ok()?);
    let (sign, verify) = match hash {
        HashAlg::Sha256 => (signature::RSA_PSS_SHA256, signature::RSA_PSS_2048_8192_SHA256),
        HashAlg::Sha384 => (signature::RSA_PSS_SHA384, signature::RSA_PSS_2048_8192_SHA384),
        _ => (signature::RSA_PSS_SHA512, signature::RSA_PSS_2048_8192_SHA512),
    };
    let made: PssAlgorithms = (
        Box::leak(Box::new(sign.with_pss_salt_length(length))),
        Box::leak(Box::new(verify.with_pss_salt_length(length))),
    );
    table.push((hash, salt, made));
    Some(made)
}

/// The DigestInfo prefixes (DER, NULL parameters) of PKCS #1 v1.5 signatures, RFC 8017 §9.2.
const DIGEST_INFO: [(HashAlg, &[u8]); 4] = [
    (HashAlg::Sha1, b"\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14"),
    (HashAlg::Sha256, b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"),
    (HashAlg::Sha384, b"\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30"),
    (HashAlg::Sha512, b"\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40"),
];

/// The hash and digest of a `CKM_RSA_PKCS` input that is exactly a DigestInfo: AWS-LC pads
/// the same DigestInfo around the digest, so the signature is the same.
fn digest_info(data: &[u8]) -> Option<(HashAlg, &[u8])> {
    DIGEST_INFO.iter().find_map(|(hash, prefix)| {
        (data.len() == prefix.len() + hash.len() && data.starts_with(prefix)).then(|| (*hash, &data[prefix.len()..]))
    })
}

// ---------------------------------------------------------------------------------------------
// Signatures

#[derive(Clone, Copy)]
enum Scheme {
    /// `CKM_RSA_PKCS`: the caller's DigestInfo.
    Pkcs1Raw,
    /// `CKM_SHA*_RSA_PKCS`.
    Pkcs1(HashAlg),
    /// `CKM_RSA_PKCS_PSS` (`prehashed`) and `CKM_SHA*_RSA_PKCS_PSS`.
    Pss { hash: HashAlg, salt: usize, prehashed: bool },
}

fn scheme(mechanism: &Mechanism) -> Option<Scheme> {
    let hashed = |hash| Some(Scheme::Pkcs1(hash));
    let pss = |prehashed| {
        let MechanismParam::RsaPss(p) = &mechanism.param else {
            return None;
        };
        Some(Scheme::Pss { hash: HashAlg::from_mechanism(p.hash)?, salt: p.salt_len, prehashed })
    };
    match mechanism.kind {
        CKM_RSA_PKCS => Some(Scheme::Pkcs1Raw),
        CKM_SHA1_RSA_PKCS => hashed(HashAlg::Sha1),
        CKM_SHA256_RSA_PKCS => hashed(HashAlg::Sha256),
        CKM_SHA384_RSA_PKCS => hashed(HashAlg::Sha384),
        CKM_SHA512_RSA_PKCS => hashed(HashAlg::Sha512),
        CKM_RSA_PKCS_PSS => pss(true),
        CKM_SHA1_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS | CKM_SHA384_RSA_PKCS_PSS | CKM_SHA512_RSA_PKCS_PSS => {
            pss(false)
        }
        _ => None,
    }
}

enum Key {
    Private(Arc<RsaKeyPair>),
    Public(Arc<PublicKeys>),
}

enum Input {
    Buffer(Secret),
    Hash(Hasher),
}

struct RsaSigner {
    key: Key,
    scheme: Scheme,
    input: Input,
    /// For the buffered schemes: the RustCrypto operation, fed the same data, for inputs
    /// AWS-LC does not take (a `CKM_RSA_PKCS` input that is no SHA-2 DigestInfo, a digest of
    /// the wrong length). It then also gives the same errors.
    fallback: Option<Box<dyn Signer>>,
}

/// `rsa::signer` with the work done by AWS-LC where it can.
pub(crate) fn signer(mechanism: &Mechanism, key: &Object, sign: bool) -> Result<Box<dyn Signer>> {
    // Checks the mechanism, its parameters and the key as the default build does.
    let fallback = rust_crypto::signer(mechanism, key, sign)?;
    let Some(scheme) = scheme(mechanism) else {
        return Ok(fallback); // CKM_RSA_X_509
    };
    let supported = match scheme {
        Scheme::Pkcs1Raw => true,
        Scheme::Pkcs1(hash) => !sign || hash != HashAlg::Sha1,
        Scheme::Pss { hash, .. } => hash != HashAlg::Sha1,
    };
    if !supported {
        return Ok(fallback);
    }
    let key = if sign { signing_key(key)?.map(Key::Private) } else { public_key(key)?.map(Key::Public) };
    let Some(key) = key else {
        return Ok(fallback);
    };
    let (input, fallback) = match scheme {
        Scheme::Pkcs1(hash) | Scheme::Pss { hash, prehashed: false, .. } => (Input::Hash(hash.hasher()), None),
        _ => (Input::Buffer(Zeroizing::new(Vec::new())), Some(fallback)),
    };
    Ok(Box::new(RsaSigner { key, scheme, input, fallback }))
}

impl RsaSigner {
    /// The digest to sign and the algorithms for it; `None` where RustCrypto has to do it.
    fn digest(
        &self,
    ) -> Option<(aws_lc_rs::digest::Digest, Option<&'static RsaSignatureEncoding>, &'static RsaParameters)> {
        match (&self.input, self.scheme) {
            (Input::Hash(h), Scheme::Pkcs1(hash)) => {
                let (sign, verify) = pkcs1(hash)?;
                Some((import_digest(hash, &Zeroizing::new(h.finish()))?, sign, verify))
            }
            (Input::Hash(h), Scheme::Pss { hash, salt, .. }) => {
                let (sign, verify) = pss_algorithms(hash, salt)?;
                Some((import_digest(hash, &Zeroizing::new(h.finish()))?, Some(sign), verify))
            }
            (Input::Buffer(b), Scheme::Pkcs1Raw) => {
                let (hash, digest) = digest_info(b)?;
                let (sign, verify) = pkcs1(hash)?;
                Some((import_digest(hash, digest)?, sign, verify))
            }
            (Input::Buffer(b), Scheme::Pss { hash, salt, prehashed: true }) => {
                let (sign, verify) = pss_algorithms(hash, salt)?;
                Some((import_digest(hash, b)?, Some(sign), verify))
            }
            _ => None,
        }
    }

    fn fallback(&mut self) -> Result<&mut Box<dyn Signer>> {
        self.fallback.as_mut().ok_or(rv(CKR_GENERAL_ERROR))
    }
}

impl Signer for RsaSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.input {
            Input::Buffer(b) => b.extend_from_slice(data),
            Input::Hash(h) => h.update(data),
        }
        if let Some(f) = &mut self.fallback {
            f.update(data)?;
        }
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        let Key::Private(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        let Some((digest, Some(encoding), _)) = self.digest() else {
            return self.fallback()?.sign();
        };
        let mut signature = vec![0u8; key.public_modulus_len()];
        key.sign_digest(encoding, &digest, &mut signature).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
        Ok(signature)
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        let Key::Public(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        if signature.len() != key.size {
            return Err(rv(CKR_SIGNATURE_LEN_RANGE));
        }
        let Some((digest, _, params)) = self.digest() else {
            return self.fallback()?.verify(signature);
        };
        let verifier = key.verifier(params).ok_or(rv(CKR_GENERAL_ERROR))?;
        verifier.verify_digest_sig(&digest, signature).map_err(|_| rv(CKR_SIGNATURE_INVALID))
    }
}

// ---------------------------------------------------------------------------------------------
// Encryption

enum CipherKey {
    /// `CKM_RSA_PKCS` encryption.
    Pkcs1(Arc<PublicKeys>),
    OaepEncrypt(Arc<PublicKeys>),
    OaepDecrypt(Arc<PrivateDecryptingKey>),
}

struct RsaCipher {
    key: CipherKey,
    /// OAEP's hash and label.
    oaep: Option<(HashAlg, Vec<u8>)>,
    input: Secret,
}

fn oaep_algorithm(hash: HashAlg) -> &'static OaepAlgorithm {
    match hash {
        HashAlg::Sha1 => &OAEP_SHA1_MGF1SHA1,
        HashAlg::Sha256 => &OAEP_SHA256_MGF1SHA256,
        HashAlg::Sha384 => &OAEP_SHA384_MGF1SHA384,
        HashAlg::Sha512 => &OAEP_SHA512_MGF1SHA512,
    }
}

/// `rsa::cipher` with the work done by AWS-LC where it can: OAEP with MGF1 of its own hash,
/// and PKCS #1 v1.5
/// encryption. `CKM_RSA_PKCS` decryption stays on RustCrypto for its implicit rejection,
/// `CKM_RSA_X_509` because aws-lc-rs has no raw RSA.
pub(crate) fn cipher(mechanism: &Mechanism, key: &Object, encrypt: bool) -> Result<Box<dyn Cipher>> {
    let fallback = rust_crypto::cipher(mechanism, key, encrypt)?;
    let oaep = match (&mechanism.param, mechanism.kind) {
        (_, CKM_RSA_PKCS) if encrypt => None,
        // aws-lc-rs pairs each hash with MGF1 of the same hash only.
        (MechanismParam::RsaOaep(p), CKM_RSA_PKCS_OAEP) => match HashAlg::from_mechanism(p.hash) {
            Some(hash) if HashAlg::from_mgf(p.mgf) == Some(hash) => Some((hash, p.label.clone())),
            _ => return Ok(fallback),
        },
        _ => return Ok(fallback),
    };
    let key = match (encrypt, &oaep) {
        (true, None) => public_key(key)?.map(CipherKey::Pkcs1),
        (true, Some(_)) => public_key(key)?.map(CipherKey::OaepEncrypt),
        (false, _) => decrypting_key(key)?.map(CipherKey::OaepDecrypt),
    };
    match key {
        Some(key) => Ok(Box::new(RsaCipher { key, oaep, input: Zeroizing::new(Vec::new()) })),
        None => Ok(fallback),
    }
}

impl RsaCipher {
    fn label(&self) -> Option<&[u8]> {
        self.oaep.as_ref().map(|(_, label)| label.as_slice()).filter(|l| !l.is_empty())
    }

    fn encrypt(&self, key: &PublicKeys) -> Result<Secret> {
        let k = key.size;
        let max = match &self.oaep {
            None => k - 11,
            Some((hash, _)) => k - 2 * hash.len() - 2,
        };
        if self.input.len() > max {
            return Err(rv(CKR_DATA_LEN_RANGE));
        }
        let failed = |_| rv(CKR_FUNCTION_FAILED);
        let mut out = vec![0u8; k];
        let n = match &self.oaep {
            None => {
                let key = Pkcs1PublicEncryptingKey::new(key.encrypting.clone()).map_err(failed)?;
                key.encrypt(&self.input, &mut out).map_err(failed)?.len()
            }
            Some((hash, _)) => {
                let key = OaepPublicEncryptingKey::new(key.encrypting.clone()).map_err(failed)?;
                key.encrypt(oaep_algorithm(*hash), &self.input, &mut out, self.label()).map_err(failed)?.len()
            }
        };
        out.truncate(n);
        Ok(Zeroizing::new(out))
    }

    fn decrypt(&self, key: &PrivateDecryptingKey) -> Result<Secret> {
        if self.input.len() != key.key_size_bytes() {
            return Err(rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        let Some((hash, _)) = &self.oaep else {
            return Err(rv(CKR_GENERAL_ERROR));
        };
        // One error for every failure: nothing about the padding may leak.
        let invalid = |_| rv(CKR_ENCRYPTED_DATA_INVALID);
        let key = OaepPrivateDecryptingKey::new(key.clone()).map_err(invalid)?;
        let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
        let n = key.decrypt(oaep_algorithm(*hash), &self.input, &mut out, self.label()).map_err(invalid)?.len();
        out.truncate(n);
        Ok(out)
    }
}

impl Cipher for RsaCipher {
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        self.input.extend_from_slice(input);
        Ok(Zeroizing::new(Vec::new()))
    }

    fn finish(&mut self) -> Result<Secret> {
        match &self.key {
            CipherKey::Pkcs1(key) | CipherKey::OaepEncrypt(key) => self.encrypt(key),
            CipherKey::OaepDecrypt(key) => self.decrypt(key),
        }
    }
}

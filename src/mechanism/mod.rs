//! Mechanisms: what each one is, its parameters as typed values, and the objects that carry
//! out an operation. One file per family; the core only sees the traits below and the
//! `MECHANISMS` table.

pub mod aes;
pub mod digest;
pub mod hmac;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{rv, Result};

/// Parameters of `CKM_AES_GCM`, already copied out of the caller's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AesGcmParams {
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub tag_bits: usize,
}

/// Parameters of `CKM_AES_CTR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AesCtrParams {
    pub counter_bits: usize,
    pub counter_block: [u8; 16],
}

/// Parameters of `CKM_RSA_PKCS_PSS` and `CKM_SHA*_RSA_PKCS_PSS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPssParams {
    /// The digest mechanism (`CKM_SHA256`…).
    pub hash: CK_MECHANISM_TYPE,
    /// `CKG_MGF1_SHA256`…
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub salt_len: usize,
}

/// Parameters of `CKM_RSA_PKCS_OAEP` (source `CKZ_DATA_SPECIFIED`, checked by the ABI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaOaepParams {
    pub hash: CK_MECHANISM_TYPE,
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub label: Vec<u8>,
}

/// Parameters of `CKM_ECDH1_DERIVE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ecdh1DeriveParams {
    /// `CKD_NULL` or `CKD_SHA256_KDF`…
    pub kdf: CK_EC_KDF_TYPE,
    pub shared_data: Vec<u8>,
    /// The peer's public point: raw (uncompressed) or DER OCTET STRING.
    pub public_data: Vec<u8>,
}

/// Parameters of `CKM_EDDSA` (absent means pure Ed25519).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EddsaParams {
    pub prehash: bool,
    pub context: Vec<u8>,
}

/// A mechanism's parameter, typed by the ABI layer from `pParameter`/`ulParameterLen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MechanismParam {
    None,
    /// A plain byte string: an IV (`CKM_AES_CBC*`), or an IV for key wrap.
    Bytes(Vec<u8>),
    Gcm(AesGcmParams),
    Ctr(AesCtrParams),
    RsaPss(RsaPssParams),
    RsaOaep(RsaOaepParams),
    Ecdh1Derive(Ecdh1DeriveParams),
    Eddsa(EddsaParams),
}

/// A mechanism with its parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mechanism {
    pub kind: CK_MECHANISM_TYPE,
    pub param: MechanismParam,
}

impl Mechanism {
    pub fn new(kind: CK_MECHANISM_TYPE, param: MechanismParam) -> Self {
        Self { kind, param }
    }

    /// The parameter as bytes; a missing parameter is an empty slice.
    pub fn param_bytes(&self) -> Result<&[u8]> {
        match &self.param {
            MechanismParam::None => Ok(&[]),
            MechanismParam::Bytes(b) => Ok(b),
            _ => Err(rv(CKR_MECHANISM_PARAM_INVALID)),
        }
    }

    pub fn no_param(&self) -> Result<()> {
        match &self.param {
            MechanismParam::None => Ok(()),
            MechanismParam::Bytes(b) if b.is_empty() => Ok(()),
            _ => Err(rv(CKR_MECHANISM_PARAM_INVALID)),
        }
    }
}

/// Output that may be key material or plaintext: wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// An encryption or decryption in progress. Single-part calls are `update` then `finish`.
pub trait Cipher: Send {
    /// Consumes `input`, returning what output is ready.
    fn update(&mut self, input: &[u8]) -> Result<Secret>;
    /// Ends the operation and returns the rest of the output (e.g. the GCM tag, the last
    /// padded block). Errors here are `CKR_ENCRYPTED_DATA_INVALID`, `CKR_DATA_LEN_RANGE`…
    fn finish(&mut self) -> Result<Secret>;
}

/// A MAC or signature in progress.
pub trait Signer: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn sign(&mut self) -> Result<Vec<u8>>;
    /// `CKR_SIGNATURE_LEN_RANGE` for a wrong length, `CKR_SIGNATURE_INVALID` for a wrong value.
    fn verify(&mut self, signature: &[u8]) -> Result<()>;
}

/// A digest in progress.
pub trait Digester: Send {
    fn update(&mut self, data: &[u8]);
    fn finish(&mut self) -> Vec<u8>;
}

/// One row of the mechanism table: what `C_GetMechanismInfo` reports, and the key types an
/// operation with it accepts.
pub struct MechanismEntry {
    pub kind: CK_MECHANISM_TYPE,
    pub min_key: CK_ULONG,
    pub max_key: CK_ULONG,
    pub flags: CK_FLAGS,
    pub key_types: &'static [CK_KEY_TYPE],
}

const ENC: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const WRAP: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;
const AES: &[CK_KEY_TYPE] = &[CKK_AES];
const HMAC_KEYS256: &[CK_KEY_TYPE] = &[CKK_GENERIC_SECRET, CKK_SHA256_HMAC];
const HMAC_KEYS384: &[CK_KEY_TYPE] = &[CKK_GENERIC_SECRET, CKK_SHA384_HMAC];
const HMAC_KEYS512: &[CK_KEY_TYPE] = &[CKK_GENERIC_SECRET, CKK_SHA512_HMAC];

const fn m(
    kind: CK_MECHANISM_TYPE,
    min_key: CK_ULONG,
    max_key: CK_ULONG,
    flags: CK_FLAGS,
    key_types: &'static [CK_KEY_TYPE],
) -> MechanismEntry {
    MechanismEntry { kind, min_key, max_key, flags, key_types }
}

/// Every mechanism keyfront offers. AES sizes are in bytes, generic secret sizes in bits,
/// HMAC key sizes in bytes, as PKCS#11 3.0 §6 says for each.
pub static MECHANISMS: &[MechanismEntry] = &[
    m(CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE, AES),
    m(CKM_AES_ECB, 16, 32, ENC | WRAP, AES),
    m(CKM_AES_CBC, 16, 32, ENC | WRAP, AES),
    m(CKM_AES_CBC_PAD, 16, 32, ENC | WRAP, AES),
    m(CKM_AES_CTR, 16, 32, ENC, AES),
    m(CKM_AES_GCM, 16, 32, ENC | WRAP, AES),
    m(CKM_AES_KEY_WRAP, 16, 32, ENC | WRAP, AES),
    m(CKM_AES_KEY_WRAP_PAD, 16, 32, ENC | WRAP, AES),
    m(CKM_AES_KEY_WRAP_KWP, 16, 32, ENC | WRAP, AES),
    m(CKM_GENERIC_SECRET_KEY_GEN, 8, 8 * 1024 * 8, CKF_GENERATE, &[CKK_GENERIC_SECRET]),
    m(CKM_SHA_1, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA256, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA384, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA512, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA256_HMAC, 1, 1024, CKF_SIGN | CKF_VERIFY, HMAC_KEYS256),
    m(CKM_SHA384_HMAC, 1, 1024, CKF_SIGN | CKF_VERIFY, HMAC_KEYS384),
    m(CKM_SHA512_HMAC, 1, 1024, CKF_SIGN | CKF_VERIFY, HMAC_KEYS512),
];

pub fn entry(kind: CK_MECHANISM_TYPE) -> Result<&'static MechanismEntry> {
    MECHANISMS.iter().find(|e| e.kind == kind).ok_or(rv(CKR_MECHANISM_INVALID))
}

/// Starts an encryption (`encrypt` true) or decryption with a secret key's value.
pub fn cipher(mechanism: &Mechanism, key: &[u8], encrypt: bool) -> Result<Box<dyn Cipher>> {
    aes::cipher(mechanism, key, encrypt)
}

/// Starts a MAC with a secret key's value.
pub fn signer(mechanism: &Mechanism, key: &[u8]) -> Result<Box<dyn Signer>> {
    hmac::signer(mechanism, key)
}

pub fn digester(mechanism: &Mechanism) -> Result<Box<dyn Digester>> {
    digest::digester(mechanism)
}

// ---- PLACEHOLDERS (core integration compiles against these until the asymmetric mechanism
// files land; the asymmetric-mechanism work replaces this whole block) ----
pub struct KeyPairParts {
    pub public: crate::object::AttributeTemplate,
    pub private: crate::object::AttributeTemplate,
}
pub fn generate_key_pair(_m: &Mechanism, _p: &crate::object::AttributeTemplate, _q: &crate::object::AttributeTemplate) -> Result<KeyPairParts> {
    Err(rv(CKR_MECHANISM_INVALID))
}
pub fn asym_signer(_m: &Mechanism, _k: &crate::object::Object, _s: bool) -> Result<Box<dyn Signer>> {
    Err(rv(CKR_MECHANISM_INVALID))
}
pub fn asym_cipher(_m: &Mechanism, _k: &crate::object::Object, _e: bool) -> Result<Box<dyn Cipher>> {
    Err(rv(CKR_MECHANISM_INVALID))
}
pub fn derive(_m: &Mechanism, _k: &crate::object::Object, _l: Option<usize>) -> Result<Secret> {
    Err(rv(CKR_MECHANISM_INVALID))
}
pub fn complete_key(_o: &mut crate::object::Object) -> Result<()> {
    Err(rv(CKR_ATTRIBUTE_VALUE_INVALID))
}
pub fn private_key_to_pkcs8(_k: &crate::object::Object) -> Result<Secret> {
    Err(rv(CKR_KEY_NOT_WRAPPABLE))
}
pub fn private_key_from_pkcs8(_d: &[u8]) -> Result<(CK_KEY_TYPE, crate::object::AttributeTemplate)> {
    Err(rv(CKR_WRAPPED_KEY_INVALID))
}
pub fn is_asymmetric(_t: CK_KEY_TYPE) -> bool {
    false
}
// ---- END PLACEHOLDERS ----

//! Mechanisms: what each one is, its parameters as typed values, and the objects that carry
//! out an operation. One file per family; the core only sees the traits below and the
//! `MECHANISMS` table.

pub mod aes;
#[cfg(feature = "aws-lc")]
mod aws_lc;
pub mod digest;
pub mod ec;
pub mod eddsa;
pub mod hmac;
pub mod keys;
pub mod rsa;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{rv, Result};
use crate::object::{AttributeTemplate, Object};

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

    /// The whole operation on one input (`C_Encrypt`/`C_Decrypt`). A backend whose token
    /// takes some mechanisms in one call only (RSA) overrides it.
    fn once(&mut self, input: &[u8]) -> Result<Secret> {
        let mut first = self.update(input)?;
        let rest = self.finish()?;
        if first.is_empty() {
            return Ok(rest);
        }
        first.extend_from_slice(&rest);
        Ok(first)
    }

    /// The exact length `once` would return for `input_len` bytes, when the mechanism knows
    /// it without doing the work (GCM: the input plus the tag). Knowing it lets `C_Encrypt`
    /// answer a length query without encrypting, and then encrypt straight into the
    /// caller's buffer with `once_into`: no second buffer, no copy, nothing to wipe.
    fn once_len(&self, _input_len: usize) -> Option<usize> {
        None
    }

    /// `once` writing into `out`, which is exactly `once_len(input.len())` bytes long.
    /// `input` is read in full before `out` is written.
    fn once_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<()> {
        let result = self.once(input)?;
        out.copy_from_slice(&result);
        Ok(())
    }
}

/// A MAC or signature in progress.
pub trait Signer: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn sign(&mut self) -> Result<Vec<u8>>;
    /// `CKR_SIGNATURE_LEN_RANGE` for a wrong length, `CKR_SIGNATURE_INVALID` for a wrong value.
    fn verify(&mut self, signature: &[u8]) -> Result<()>;

    /// `C_Sign` on one input; a backend whose token signs in one call only overrides it.
    fn sign_once(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)?;
        self.sign()
    }

    /// `C_Verify` on one input.
    fn verify_once(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        self.update(data)?;
        self.verify(signature)
    }
}

/// A digest in progress.
pub trait Digester: Send {
    fn update(&mut self, data: &[u8]);
    fn finish(&mut self) -> Vec<u8>;
}

/// One row of the mechanism table: what `C_GetMechanismInfo` reports, and the key types an
/// operation with it accepts.
#[derive(Clone, Copy)]
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
const SIGN: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const RSA: &[CK_KEY_TYPE] = &[CKK_RSA];
const EC: &[CK_KEY_TYPE] = &[CKK_EC];
const EDWARDS: &[CK_KEY_TYPE] = &[CKK_EC_EDWARDS];
/// P-256 named by OID, points uncompressed (PKCS#11 3.0 §2.3, Table 31).
const EC_CAPS: CK_FLAGS = CKF_EC_F_P | CKF_EC_OID | CKF_EC_UNCOMPRESS;
/// edwards25519 named by OID or by curve name.
const EDWARDS_CAPS: CK_FLAGS = CKF_EC_F_P | CKF_EC_OID | CKF_EC_CURVENAME;
const RSA_MIN: CK_ULONG = keys::RSA_MIN_BITS as CK_ULONG;
const RSA_MAX: CK_ULONG = keys::RSA_MAX_BITS as CK_ULONG;
/// The longest generic secret (HMAC) key, in bytes: what the HMAC mechanisms take and what
/// `CKM_GENERIC_SECRET_KEY_GEN` makes.
const HMAC_MAX: CK_ULONG = hmac::MAX_KEY_LEN as CK_ULONG;

const fn m(
    kind: CK_MECHANISM_TYPE,
    min_key: CK_ULONG,
    max_key: CK_ULONG,
    flags: CK_FLAGS,
    key_types: &'static [CK_KEY_TYPE],
) -> MechanismEntry {
    MechanismEntry { kind, min_key, max_key, flags, key_types }
}

/// Every mechanism keyfront offers. AES sizes are in bytes and `CKM_GENERIC_SECRET_KEY_GEN`
/// sizes in bits, as PKCS#11 3.0 says for each; for HMAC it names no unit, and sizes are in
/// bytes as SoftHSM2 reports them (and as the HMAC keys' `CKA_VALUE_LEN` counts). RSA sizes
/// are modulus bits, EC and EdDSA sizes the bits of the curve's field (256 for P-256, 255
/// for edwards25519).
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
    m(CKM_GENERIC_SECRET_KEY_GEN, 8, HMAC_MAX * 8, CKF_GENERATE, &[CKK_GENERIC_SECRET]),
    m(CKM_SHA_1, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA256, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA384, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA512, 0, 0, CKF_DIGEST, &[]),
    m(CKM_SHA256_HMAC, 1, HMAC_MAX, SIGN, HMAC_KEYS256),
    m(CKM_SHA384_HMAC, 1, HMAC_MAX, SIGN, HMAC_KEYS384),
    m(CKM_SHA512_HMAC, 1, HMAC_MAX, SIGN, HMAC_KEYS512),
    m(CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 4096, CKF_GENERATE_KEY_PAIR, RSA),
    m(CKM_RSA_PKCS, RSA_MIN, RSA_MAX, ENC | SIGN | WRAP, RSA),
    m(CKM_RSA_X_509, RSA_MIN, RSA_MAX, ENC | SIGN, RSA),
    m(CKM_RSA_PKCS_OAEP, RSA_MIN, RSA_MAX, ENC | WRAP, RSA),
    m(CKM_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA1_RSA_PKCS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA256_RSA_PKCS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA384_RSA_PKCS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA512_RSA_PKCS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA1_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA256_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA384_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_SHA512_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SIGN, RSA),
    m(CKM_EC_KEY_PAIR_GEN, 256, 256, CKF_GENERATE_KEY_PAIR | EC_CAPS, EC),
    m(CKM_ECDSA, 256, 256, SIGN | EC_CAPS, EC),
    m(CKM_ECDSA_SHA1, 256, 256, SIGN | EC_CAPS, EC),
    m(CKM_ECDSA_SHA256, 256, 256, SIGN | EC_CAPS, EC),
    m(CKM_ECDSA_SHA384, 256, 256, SIGN | EC_CAPS, EC),
    m(CKM_ECDSA_SHA512, 256, 256, SIGN | EC_CAPS, EC),
    m(CKM_ECDH1_DERIVE, 256, 256, CKF_DERIVE | EC_CAPS, EC),
    m(CKM_EC_EDWARDS_KEY_PAIR_GEN, 255, 255, CKF_GENERATE_KEY_PAIR | EDWARDS_CAPS, EDWARDS),
    m(CKM_EDDSA, 255, 255, SIGN | EDWARDS_CAPS, EDWARDS),
];

/// keyfront's vendor mechanism (include/keyfront.h): encrypt, decrypt, wrap or unwrap with a
/// secret key that stays in a key service; the ciphertext is the service's own blob. No local
/// key can do it, so soft slots do not offer it.
pub const CKM_KEYFRONT_KMS_WRAP: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x4b46_0001;

/// The cloud slots' own mechanism, in the table's form.
pub static SERVICE_MECHANISMS: &[MechanismEntry] = &[m(CKM_KEYFRONT_KMS_WRAP, 32, 32, ENC | WRAP, AES)];

pub fn entry(kind: CK_MECHANISM_TYPE) -> Result<&'static MechanismEntry> {
    MECHANISMS.iter().chain(SERVICE_MECHANISMS).find(|e| e.kind == kind).ok_or(rv(CKR_MECHANISM_INVALID))
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


// ---------------------------------------------------------------------------------------------
// Asymmetric keys (RSA, P-256, Ed25519): dispatch on the key's CKA_KEY_TYPE.

/// Key attributes made by a key-pair generation: the key-type-specific ones only
/// (`CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`, `CKA_MODULUS_BITS`… / `CKA_EC_PARAMS`,
/// `CKA_EC_POINT` / `CKA_VALUE`…), plus `CKA_PUBLIC_KEY_INFO` on both halves. They take
/// precedence over the templates' values for the same types (e.g. `CKA_EC_PARAMS` given as
/// the curve name comes back as the OID, `CKA_PUBLIC_EXPONENT` without leading zeros).
pub struct KeyPairParts {
    pub public: AttributeTemplate,
    pub private: AttributeTemplate,
}

pub use keys::{complete_key, generated_key_type, is_asymmetric, private_key_from_pkcs8, private_key_to_pkcs8};

/// Generates a key pair with `CKM_RSA_PKCS_KEY_PAIR_GEN`, `CKM_EC_KEY_PAIR_GEN` or
/// `CKM_EC_EDWARDS_KEY_PAIR_GEN`. Reads `CKA_MODULUS_BITS`/`CKA_PUBLIC_EXPONENT` or
/// `CKA_EC_PARAMS` from the public template.
pub fn generate_key_pair(
    mechanism: &Mechanism,
    public_template: &AttributeTemplate,
    private_template: &AttributeTemplate,
) -> Result<KeyPairParts> {
    keys::generate_key_pair(mechanism, public_template, private_template)
}

// The implementations of the asymmetric mechanisms: RustCrypto, or AWS-LC with the `aws-lc`
// feature (which hands to RustCrypto what it cannot do; see `aws_lc`).
#[cfg(feature = "aws-lc")]
use aws_lc::{ec as ec_impl, eddsa as eddsa_impl, rsa as rsa_impl};
#[cfg(not(feature = "aws-lc"))]
use {ec as ec_impl, eddsa as eddsa_impl, rsa as rsa_impl};

/// The table row of `mechanism` if it offers `function` with keys of `key`'s type.
fn asym_entry(mechanism: &Mechanism, key: &Object, function: CK_FLAGS) -> Result<CK_KEY_TYPE> {
    let row = entry(mechanism.kind)?;
    if row.flags & function == 0 {
        return Err(rv(CKR_MECHANISM_INVALID));
    }
    let key_type = key.key_type().ok_or(rv(CKR_KEY_TYPE_INCONSISTENT))?;
    if !row.key_types.contains(&key_type) || !matches!(key.class(), CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
        return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
    }
    Ok(key_type)
}

/// Starts a signature (`sign`: with a private key object) or a verification (with a public
/// key object, or a private one). `key` carries all the object's attributes.
pub fn asym_signer(mechanism: &Mechanism, key: &Object, sign: bool) -> Result<Box<dyn Signer>> {
    let function = if sign { CKF_SIGN } else { CKF_VERIFY };
    match asym_entry(mechanism, key, function)? {
        CKK_RSA => rsa_impl::signer(mechanism, key, sign),
        CKK_EC => ec_impl::signer(mechanism, key, sign),
        CKK_EC_EDWARDS => eddsa_impl::signer(mechanism, key, sign),
        _ => Err(rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// Starts an RSA encryption (`encrypt`: with a public key object, or a private one) or a
/// decryption (with a private key object). Also the primitive behind wrap and unwrap.
pub fn asym_cipher(mechanism: &Mechanism, key: &Object, encrypt: bool) -> Result<Box<dyn Cipher>> {
    let function = if encrypt { CKF_ENCRYPT | CKF_WRAP } else { CKF_DECRYPT | CKF_UNWRAP };
    match asym_entry(mechanism, key, function)? {
        CKK_RSA => rsa_impl::cipher(mechanism, key, encrypt),
        _ => Err(rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// `CKM_ECDH1_DERIVE` with a P-256 private key object: the new key's value, `out_len` bytes
/// (the template's `CKA_VALUE_LEN`, or the key type's fixed length; `None` means the raw
/// 32-byte secret and is refused by the hashing KDFs).
pub fn derive(mechanism: &Mechanism, key: &Object, out_len: Option<usize>) -> Result<Secret> {
    // A key derivation function can stretch to any length; a key cannot be that long.
    if out_len.is_some_and(|l| l == 0 || l > 64 * 1024) {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    match asym_entry(mechanism, key, CKF_DERIVE)? {
        CKK_EC => ec::derive(mechanism, key, out_len),
        _ => Err(rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// The length of a signature, ciphertext or (largest) plaintext of an asymmetric operation
/// with this key, for answering a length query without running the operation.
pub fn asym_output_len(key: &Object) -> Result<usize> {
    keys::output_len(key)
}

/// Mechanisms PKCS#11 allows only as single-part operations (`C_Sign`, `C_Encrypt`…, not
/// the `…Update` forms). `CKM_EDDSA` and the hashing signatures are multi-part. The AES key
/// wraps are single-part too: "The mechanisms support only single-part operations, single
/// part wrapping and unwrapping, and single-part encryption and decryption" (PKCS#11 3.0,
/// AES Key Wrap).
pub fn is_single_part_only(kind: CK_MECHANISM_TYPE) -> bool {
    matches!(
        kind,
        CKM_RSA_PKCS
            | CKM_RSA_X_509
            | CKM_RSA_PKCS_OAEP
            | CKM_RSA_PKCS_PSS
            | CKM_ECDSA
            | CKM_AES_KEY_WRAP
            | CKM_AES_KEY_WRAP_PAD
            | CKM_AES_KEY_WRAP_KWP
    )
}

#[cfg(test)]
mod asym_tests {
    use super::*;
    use crate::mechanism::keys::fixtures::*;
    use crate::mechanism::keys::tests::{private_object, public_of};

    fn err<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    #[test]
    fn table_is_consistent() {
        for (i, e) in MECHANISMS.iter().enumerate() {
            assert!(MECHANISMS[i + 1..].iter().all(|o| o.kind != e.kind), "{:#x} listed twice", e.kind);
            assert!(e.min_key <= e.max_key);
        }
        for kind in [CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN] {
            let e = entry(kind).unwrap();
            assert_eq!(e.key_types, &[generated_key_type(kind).unwrap()][..]);
            assert!(e.flags & CKF_GENERATE_KEY_PAIR != 0);
        }
        assert_eq!((entry(CKM_EDDSA).unwrap().min_key, entry(CKM_EDDSA).unwrap().max_key), (255, 255));
        assert_eq!(entry(CKM_ECDSA).unwrap().min_key, 256);
        // One longest generic secret key: HMAC takes in bytes what key generation makes in bits.
        let gen = entry(CKM_GENERIC_SECRET_KEY_GEN).unwrap();
        assert_eq!((gen.min_key, gen.max_key), (8, 8 * hmac::MAX_KEY_LEN as CK_ULONG));
        for kind in [CKM_SHA256_HMAC, CKM_SHA384_HMAC, CKM_SHA512_HMAC] {
            let e = entry(kind).unwrap();
            assert_eq!((e.min_key, e.max_key), (1, hmac::MAX_KEY_LEN as CK_ULONG), "0x{kind:x}");
        }
    }

    #[test]
    fn dispatch_checks_key_types_and_functions() {
        let rsa = private_object(RSA_PKCS8);
        let ec = private_object(EC_A_PKCS8);
        let none = |kind| Mechanism::new(kind, MechanismParam::None);
        // An RSA mechanism with an EC key and the other way round.
        assert_eq!(err(asym_signer(&none(CKM_SHA256_RSA_PKCS), &ec, true)), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(err(asym_signer(&none(CKM_ECDSA), &rsa, true)), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(err(asym_signer(&none(CKM_EDDSA), &ec, true)), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(err(asym_cipher(&none(CKM_RSA_PKCS), &ec, true)), CKR_KEY_TYPE_INCONSISTENT);
        // A mechanism without the function.
        assert_eq!(err(asym_signer(&none(CKM_RSA_PKCS_OAEP), &rsa, true)), CKR_MECHANISM_INVALID);
        assert_eq!(err(asym_cipher(&none(CKM_SHA256_RSA_PKCS), &rsa, true)), CKR_MECHANISM_INVALID);
        assert_eq!(err(asym_cipher(&none(CKM_ECDSA), &ec, true)), CKR_MECHANISM_INVALID);
        assert_eq!(err(derive(&none(CKM_ECDSA), &ec, None)), CKR_MECHANISM_INVALID);
        assert_eq!(err(asym_signer(&none(CKM_AES_CBC), &rsa, true)), CKR_MECHANISM_INVALID);
        assert_eq!(err(asym_signer(&none(0x8000_1234), &rsa, true)), CKR_MECHANISM_INVALID);
        // Output lengths for length queries.
        assert_eq!(asym_output_len(&rsa).unwrap(), 256);
        assert_eq!(asym_output_len(&public_of(&ec)).unwrap(), 64);
        assert!(is_single_part_only(CKM_RSA_PKCS) && !is_single_part_only(CKM_EDDSA));
        for kind in [CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_KWP] {
            assert!(is_single_part_only(kind), "0x{kind:x}");
        }
        for kind in [CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_CTR, CKM_AES_GCM, CKM_SHA256_HMAC, CKM_SHA256] {
            assert!(!is_single_part_only(kind), "0x{kind:x}");
        }
    }
}

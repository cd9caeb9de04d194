//! Asymmetric key material: reading RSA, P-256 and Ed25519 keys out of an object's attributes
//! (one function per key type, so a cache can sit there later), checking and normalising
//! imported keys, generating key pairs, and the DER forms keys travel in (PKCS#8
//! PrivateKeyInfo, SubjectPublicKeyInfo, the DER OCTET STRING of `CKA_EC_POINT`).
//!
//! Attribute layouts follow PKCS#11 3.0 §2.1–2.3: big integers big-endian without leading
//! zeros; `CKA_EC_PARAMS` a DER OID (P-256: 1.2.840.10045.3.1.7, Ed25519: 1.3.101.112);
//! `CKA_EC_POINT` a DER OCTET STRING holding the uncompressed SEC1 point or the 32 bytes of
//! the Ed25519 key; `CKA_VALUE` the 32-byte P-256 scalar or the 32-byte Ed25519 seed.

use cryptoki_sys::*;
use der::{Decode, Encode};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::BoxedUint;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::{KeyPairParts, Mechanism, Secret};
use crate::error::{rv, Result};
use crate::object::{encode_ulong, AttributeTemplate, Object};

// ---------------------------------------------------------------------------------------------
// Randomness

/// The operating system's generator (`getrandom`) as the `rand_core` RNG the RustCrypto crates
/// take. Failures surface as errors, never panics.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SysRng;

impl rand_core::TryRng for SysRng {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> std::result::Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> std::result::Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Self::Error> {
        getrandom::fill(dst)
    }
}

impl rand_core::TryCryptoRng for SysRng {}

pub(crate) fn random_secret(len: usize) -> Result<Secret> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut out).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Hashes used by the signature mechanisms and the ECDH KDFs

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// From a digest mechanism (`CKM_SHA256`…), as in `CK_RSA_PKCS_PSS_PARAMS.hashAlg`.
    pub(crate) fn from_mechanism(kind: CK_MECHANISM_TYPE) -> Option<Self> {
        Some(match kind {
            CKM_SHA_1 => Self::Sha1,
            CKM_SHA256 => Self::Sha256,
            CKM_SHA384 => Self::Sha384,
            CKM_SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    /// From an MGF1 generator (`CKG_MGF1_SHA256`…).
    pub(crate) fn from_mgf(mgf: CK_RSA_PKCS_MGF_TYPE) -> Option<Self> {
        Some(match mgf {
            CKG_MGF1_SHA1 => Self::Sha1,
            CKG_MGF1_SHA256 => Self::Sha256,
            CKG_MGF1_SHA384 => Self::Sha384,
            CKG_MGF1_SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    pub(crate) fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    pub(crate) fn hasher(self) -> Hasher {
        use sha2::Digest;
        match self {
            Self::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Self::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Self::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Self::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    #[cfg(test)]
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

/// A running hash; `finish` works on a copy, so it may be called again.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    pub(crate) fn finish(&self) -> Vec<u8> {
        use sha2::Digest;
        match self.clone() {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Runs `$body` with `$d` a type alias for the digest named by a `HashAlg`.
macro_rules! with_hash {
    ($alg:expr, $d:ident => $body:expr) => {
        match $alg {
            $crate::mechanism::keys::HashAlg::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            $crate::mechanism::keys::HashAlg::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            $crate::mechanism::keys::HashAlg::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            $crate::mechanism::keys::HashAlg::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
        }
    };
}
pub(crate) use with_hash;

// ---------------------------------------------------------------------------------------------
// Small DER helpers

/// DER of the P-256 curve OID 1.2.840.10045.3.1.7 (prime256v1 / secp256r1).
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the Ed25519 OID 1.3.101.112 (RFC 8410 id-Ed25519).
pub const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER PrintableString "edwards25519" (the curveName choice of PKCS#11 3.0).
pub const ED25519_NAME_PARAMS: &[u8] = b"\x13\x0cedwards25519";

/// DER OCTET STRING around `content`.
pub(crate) fn der_octet_string(content: &[u8]) -> Vec<u8> {
    der_tlv(0x04, content)
}

/// A DER element: `tag`, definite length (up to 64 KiB), `content`.
pub(crate) fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        debug_assert!(len < 0x10000);
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// The content of a DER OCTET STRING that makes up all of `der`, if it is one.
pub(crate) fn parse_octet_string(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x04 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        l if l < 0x80 => (l as usize, rest),
        0x81 => {
            let (&l, rest) = rest.split_first()?;
            if l < 0x80 {
                return None; // not minimal
            }
            (l as usize, rest)
        }
        0x82 => {
            if rest.len() < 2 || rest[0] == 0 {
                return None;
            }
            (((rest[0] as usize) << 8) | rest[1] as usize, &rest[2..])
        }
        _ => return None,
    };
    (rest.len() == len).then_some(rest)
}

/// Big-endian bytes without leading zeros (the PKCS#11 big-integer form).
pub(crate) fn trim_be(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn uint_bytes(v: &BoxedUint) -> Secret {
    let full = Zeroizing::new(v.to_be_bytes());
    Zeroizing::new(trim_be(&full).to_vec())
}

// ---------------------------------------------------------------------------------------------
// Curves

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    Ed25519,
}

/// Why `CKA_EC_PARAMS` was refused: a well-formed choice naming a curve keyfront does not
/// offer, or bytes that are not a Parameters value at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamsError {
    Unsupported,
    Malformed,
}

/// Reads `CKA_EC_PARAMS`: the P-256 OID, the Ed25519 OID or the curve name "edwards25519".
pub(crate) fn parse_ec_params(params: &[u8]) -> std::result::Result<Curve, ParamsError> {
    if params == P256_PARAMS {
        return Ok(Curve::P256);
    }
    if params == ED25519_PARAMS || params == ED25519_NAME_PARAMS {
        return Ok(Curve::Ed25519);
    }
    match params.first() {
        // oId
        Some(0x06) => <der::asn1::ObjectIdentifier>::from_der(params)
            .map(|_| Err(ParamsError::Unsupported))
            .unwrap_or(Err(ParamsError::Malformed)),
        // curveName
        Some(0x13) => der::asn1::PrintableStringRef::from_der(params)
            .map(|_| Err(ParamsError::Unsupported))
            .unwrap_or(Err(ParamsError::Malformed)),
        // ecParameters (explicit): a SEQUENCE; keyfront only takes named curves.
        Some(0x30) => der::asn1::AnyRef::from_der(params)
            .map(|_| Err(ParamsError::Unsupported))
            .unwrap_or(Err(ParamsError::Malformed)),
        _ => Err(ParamsError::Malformed),
    }
}

/// The curve of a key object's `CKA_EC_PARAMS`, checked against its key type.
fn object_curve(params: Option<&[u8]>, key_type: CK_KEY_TYPE) -> Result<Curve> {
    let params = params.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
    let curve = parse_ec_params(params).map_err(|e| match e {
        ParamsError::Unsupported => rv(CKR_CURVE_NOT_SUPPORTED),
        ParamsError::Malformed => rv(CKR_ATTRIBUTE_VALUE_INVALID),
    })?;
    match (key_type, curve) {
        (CKK_EC, Curve::P256) | (CKK_EC_EDWARDS, Curve::Ed25519) => Ok(curve),
        _ => Err(rv(CKR_CURVE_NOT_SUPPORTED)),
    }
}

// ---------------------------------------------------------------------------------------------
// Key types

/// RSA moduli keyfront accepts for import and use, in bits.
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 8192;
/// RSA moduli `CKM_RSA_PKCS_KEY_PAIR_GEN` makes.
pub const RSA_GEN_BITS: [usize; 3] = [2048, 3072, 4096];

pub fn is_asymmetric(key_type: CK_KEY_TYPE) -> bool {
    matches!(key_type, CKK_RSA | CKK_EC | CKK_EC_EDWARDS)
}

fn required(object: &Object, ty: CK_ATTRIBUTE_TYPE) -> Result<&[u8]> {
    match object.get(ty) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(rv(CKR_TEMPLATE_INCOMPLETE)),
    }
}

fn present(object: &Object, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    object.get(ty).filter(|v| !v.is_empty())
}

// --- RSA ---

fn rsa_public_parts(object: &Object) -> Result<(BoxedUint, BoxedUint)> {
    let n = trim_be(required(object, CKA_MODULUS)?);
    let e = trim_be(required(object, CKA_PUBLIC_EXPONENT)?);
    let bits = n.len() * 8;
    if n.is_empty() || e.is_empty() || bits > RSA_MAX_BITS + 8 || e.len() > 8 {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let n = BoxedUint::from_be_slice(n, bits as u32).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
    let e = BoxedUint::from_be_slice(e, 64).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
    Ok((n, e))
}

fn rsa_check_size(bits: usize) -> Result<()> {
    if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(rv(CKR_ATTRIBUTE_VALUE_INVALID))
    }
}

/// The RSA public key of a public or private key object (`CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`).
pub(crate) fn rsa_public(object: &Object) -> Result<rsa::PublicKey> {
    object.prepared(parse_rsa_public)
}

fn parse_rsa_public(object: &Object) -> Result<rsa::PublicKey> {
    let (n, e) = rsa_public_parts(object)?;
    let key = rsa::PublicKey::new(n, e).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
    rsa_check_size(key.n().bit_width() as usize)?;
    Ok(key)
}

/// The RSA private key of a private key object: `CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`,
/// `CKA_PRIVATE_EXPONENT`, and the primes if present (recovered from d otherwise).
pub(crate) fn rsa_private(object: &Object) -> Result<rsa::PrivateKey> {
    object.prepared(parse_rsa_private)
}

fn parse_rsa_private(object: &Object) -> Result<rsa::PrivateKey> {
    let (n, e) = rsa_public_parts(object)?;
    let precision = n.bits_precision();
    let secret = |ty| -> Result<Option<BoxedUint>> {
        match present(object, ty) {
            None => Ok(None),
            Some(v) => {
                let v = trim_be(v);
                if v.len() * 8 > precision as usize {
                    return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
                }
                BoxedUint::from_be_slice(v, precision).map(Some).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))
            }
        }
    };
    let d = secret(CKA_PRIVATE_EXPONENT)?.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
    let primes = match (secret(CKA_PRIME_1)?, secret(CKA_PRIME_2)?) {
        (Some(p), Some(q)) => vec![p, q],
        (None, None) => Vec::new(),
        _ => return Err(rv(CKR_TEMPLATE_INCOMPLETE)),
    };
    let key = rsa::PrivateKey::from_components(n, e, d, primes).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
    rsa_check_size(key.n().bit_width() as usize)?;
    Ok(key)
}

fn rsa_public_attrs(key: &rsa::PublicKey) -> Result<AttributeTemplate> {
    let mut t = AttributeTemplate::new();
    t.push(CKA_MODULUS, key.n_bytes().to_vec());
    t.push(CKA_PUBLIC_EXPONENT, key.e_bytes().to_vec());
    t.push(CKA_MODULUS_BITS, encode_ulong(key.n().bit_width() as CK_ULONG));
    t.push(CKA_PUBLIC_KEY_INFO, rsa_spki(key)?);
    Ok(t)
}

fn rsa_private_attrs(key: &rsa::PrivateKey) -> Result<AttributeTemplate> {
    let primes = key.primes();
    if primes.len() != 2 {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let qinv = key.crt_coefficient().ok_or(rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
    let mut t = AttributeTemplate::new();
    t.push(CKA_MODULUS, key.n_bytes().to_vec());
    t.push(CKA_PUBLIC_EXPONENT, key.e_bytes().to_vec());
    t.attrs.push((CKA_PRIVATE_EXPONENT, uint_bytes(key.d())));
    t.attrs.push((CKA_PRIME_1, uint_bytes(&primes[0])));
    t.attrs.push((CKA_PRIME_2, uint_bytes(&primes[1])));
    t.attrs.push((CKA_EXPONENT_1, uint_bytes(key.dp().ok_or(rv(CKR_ATTRIBUTE_VALUE_INVALID))?)));
    t.attrs.push((CKA_EXPONENT_2, uint_bytes(key.dq().ok_or(rv(CKR_ATTRIBUTE_VALUE_INVALID))?)));
    t.attrs.push((CKA_COEFFICIENT, uint_bytes(&qinv)));
    t.push(CKA_PUBLIC_KEY_INFO, rsa_spki(key.as_public_key())?);
    Ok(t)
}

fn rsa_spki(key: &rsa::PublicKey) -> Result<Vec<u8>> {
    use spki::EncodePublicKey;
    Ok(key.to_public_key_der().map_err(|_| rv(CKR_GENERAL_ERROR))?.as_bytes().to_vec())
}

// --- P-256 ---

/// An EC point given raw (SEC1, uncompressed or compressed) or as a DER OCTET STRING.
pub(crate) fn p256_point(bytes: &[u8]) -> Option<p256::PublicKey> {
    let raw = match bytes {
        [0x04, ..] if bytes.len() == 65 => bytes,
        [0x02 | 0x03, ..] if bytes.len() == 33 => bytes,
        _ => parse_octet_string(bytes)?,
    };
    p256::PublicKey::from_sec1_bytes(raw).ok()
}

fn p256_point_der(key: &p256::PublicKey) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToSec1Point;
    der_octet_string(key.to_sec1_point(false).as_bytes())
}

fn p256_spki(key: &p256::PublicKey) -> Result<Vec<u8>> {
    use spki::EncodePublicKey;
    Ok(key.to_public_key_der().map_err(|_| rv(CKR_GENERAL_ERROR))?.as_bytes().to_vec())
}

/// The P-256 public key of a public key object (`CKA_EC_PARAMS`, `CKA_EC_POINT`) or of a
/// private key object (derived from `CKA_VALUE`).
pub(crate) fn p256_public(object: &Object) -> Result<p256::PublicKey> {
    if object.class() == CKO_PRIVATE_KEY {
        return Ok(p256_private(object)?.public_key());
    }
    object_curve(object.get(CKA_EC_PARAMS), CKK_EC)?;
    p256_point(required(object, CKA_EC_POINT)?).ok_or(rv(CKR_ATTRIBUTE_VALUE_INVALID))
}

/// The P-256 secret key of a private key object (`CKA_EC_PARAMS`, `CKA_VALUE`).
pub(crate) fn p256_private(object: &Object) -> Result<p256::SecretKey> {
    object_curve(object.get(CKA_EC_PARAMS), CKK_EC)?;
    let value = trim_be(required(object, CKA_VALUE)?);
    if value.len() > 32 {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let mut scalar = Zeroizing::new([0u8; 32]);
    scalar[32 - value.len()..].copy_from_slice(value);
    p256::SecretKey::from_slice(&scalar[..]).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))
}

fn p256_scalar(key: &p256::SecretKey) -> Secret {
    let mut bytes = key.to_bytes();
    let out = Zeroizing::new(bytes.to_vec());
    bytes.as_mut_slice().zeroize();
    out
}

fn p256_public_attrs(key: &p256::PublicKey) -> Result<AttributeTemplate> {
    Ok(AttributeTemplate::new()
        .with(CKA_EC_PARAMS, P256_PARAMS)
        .with(CKA_EC_POINT, p256_point_der(key))
        .with(CKA_PUBLIC_KEY_INFO, p256_spki(key)?))
}

fn p256_private_attrs(key: &p256::SecretKey) -> Result<AttributeTemplate> {
    let mut t = AttributeTemplate::new().with(CKA_EC_PARAMS, P256_PARAMS);
    t.attrs.push((CKA_VALUE, p256_scalar(key)));
    t.push(CKA_PUBLIC_KEY_INFO, p256_spki(&key.public_key())?);
    Ok(t)
}

// --- Ed25519 ---

/// An Ed25519 public key given raw (32 bytes) or as a DER OCTET STRING.
pub(crate) fn ed25519_point(bytes: &[u8]) -> Option<ed25519_dalek::VerifyingKey> {
    let raw = if bytes.len() == 32 { bytes } else { parse_octet_string(bytes)? };
    let raw: &[u8; 32] = raw.try_into().ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(raw).ok()
}

fn ed25519_spki(key: &ed25519_dalek::VerifyingKey) -> Result<Vec<u8>> {
    use spki::EncodePublicKey;
    Ok(key.to_public_key_der().map_err(|_| rv(CKR_GENERAL_ERROR))?.as_bytes().to_vec())
}

/// The Ed25519 public key of a public key object (`CKA_EC_POINT`) or of a private key object.
pub(crate) fn ed25519_public(object: &Object) -> Result<ed25519_dalek::VerifyingKey> {
    if object.class() == CKO_PRIVATE_KEY {
        return Ok(ed25519_private(object)?.verifying_key());
    }
    object_curve(object.get(CKA_EC_PARAMS), CKK_EC_EDWARDS)?;
    ed25519_point(required(object, CKA_EC_POINT)?).ok_or(rv(CKR_ATTRIBUTE_VALUE_INVALID))
}

/// The Ed25519 signing key of a private key object (`CKA_VALUE`, the 32-byte seed).
pub(crate) fn ed25519_private(object: &Object) -> Result<ed25519_dalek::SigningKey> {
    object_curve(object.get(CKA_EC_PARAMS), CKK_EC_EDWARDS)?;
    let seed: &[u8; 32] = required(object, CKA_VALUE)?.try_into().map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(seed))
}

fn ed25519_public_attrs(key: &ed25519_dalek::VerifyingKey) -> Result<AttributeTemplate> {
    Ok(AttributeTemplate::new()
        .with(CKA_EC_PARAMS, ED25519_PARAMS)
        .with(CKA_EC_POINT, der_octet_string(key.as_bytes()))
        .with(CKA_PUBLIC_KEY_INFO, ed25519_spki(key)?))
}

fn ed25519_private_attrs(key: &ed25519_dalek::SigningKey) -> Result<AttributeTemplate> {
    let mut t = AttributeTemplate::new().with(CKA_EC_PARAMS, ED25519_PARAMS);
    t.attrs.push((CKA_VALUE, Zeroizing::new(key.as_bytes().to_vec())));
    t.push(CKA_PUBLIC_KEY_INFO, ed25519_spki(&key.verifying_key())?);
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// Import: C_CreateObject / C_UnwrapKey

/// Validates a public or private key object's components for its key type and writes back
/// their normalised forms and the derived attributes (`CKA_MODULUS_BITS`, the CRT values,
/// `CKA_PUBLIC_KEY_INFO`…). Derived attributes the caller supplied must agree.
pub fn complete_key(object: &mut Object) -> Result<()> {
    let class = object.class();
    if !matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
        return Ok(());
    }
    let key_type = object.key_type().ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
    let private = class == CKO_PRIVATE_KEY;
    let normal = match (key_type, private) {
        (CKK_RSA, false) => rsa_public_attrs(&rsa_public(object)?)?,
        (CKK_RSA, true) => {
            let key = rsa_private(object)?;
            let attrs = rsa_private_attrs(&key)?;
            // CRT values the caller gave must be the key's own.
            for ty in [CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT] {
                if let Some(given) = present(object, ty) {
                    let ours = attrs.get(ty).unwrap_or_default();
                    if !bool::from(trim_be(given).ct_eq(ours)) {
                        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
                    }
                }
            }
            attrs
        }
        (CKK_EC, false) => p256_public_attrs(&p256_public(object)?)?,
        (CKK_EC, true) => p256_private_attrs(&p256_private(object)?)?,
        (CKK_EC_EDWARDS, false) => ed25519_public_attrs(&ed25519_public(object)?)?,
        (CKK_EC_EDWARDS, true) => ed25519_private_attrs(&ed25519_private(object)?)?,
        _ => return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID)),
    };
    for (ty, value) in normal.iter() {
        let derived = matches!(ty, CKA_MODULUS_BITS | CKA_PUBLIC_KEY_INFO);
        if derived {
            if let Some(given) = present(object, ty) {
                if given != value {
                    return Err(rv(CKR_TEMPLATE_INCONSISTENT));
                }
            }
        }
        object.set(ty, value.to_vec());
    }
    Ok(())
}

/// The key type and public-key attributes (`CKA_MODULUS`… or `CKA_EC_PARAMS`, `CKA_EC_POINT`,
/// and `CKA_PUBLIC_KEY_INFO`) of a DER SubjectPublicKeyInfo, as a key service reports it.
pub fn public_key_from_spki(der: &[u8]) -> Result<(CK_KEY_TYPE, AttributeTemplate)> {
    use spki::DecodePublicKey;
    if let Ok(key) = p256::PublicKey::from_public_key_der(der) {
        return Ok((CKK_EC, p256_public_attrs(&key)?));
    }
    if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
        return Ok((CKK_EC_EDWARDS, ed25519_public_attrs(&key)?));
    }
    if let Ok(key) = rsa::PublicKey::from_public_key_der(der) {
        rsa_check_size(key.n().bit_width() as usize)?;
        return Ok((CKK_RSA, rsa_public_attrs(&key)?));
    }
    Err(rv(CKR_DEVICE_ERROR))
}

/// Checks that `params` (`CKA_EC_PARAMS`) names the curve keys of `key_type` use here.
pub fn check_curve(params: Option<&[u8]>, key_type: CK_KEY_TYPE) -> Result<()> {
    object_curve(params, key_type).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Key-pair generation

/// A new P-256 key: its scalar and public point (AWS-LC's generation with the `aws-lc`
/// feature).
#[cfg(not(feature = "aws-lc"))]
fn generate_p256() -> Result<(Secret, p256::PublicKey)> {
    use p256::elliptic_curve::Generate;
    let key = p256::SecretKey::try_generate_from_rng(&mut SysRng).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
    Ok((p256_scalar(&key), key.public_key()))
}

#[cfg(feature = "aws-lc")]
fn generate_p256() -> Result<(Secret, p256::PublicKey)> {
    let (scalar, point) = super::aws_lc::ec::generate()?;
    let public = p256::PublicKey::from_sec1_bytes(&point).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
    Ok((scalar, public))
}

/// The key type a key-pair generation mechanism makes.
pub fn generated_key_type(kind: CK_MECHANISM_TYPE) -> Option<CK_KEY_TYPE> {
    match kind {
        CKM_RSA_PKCS_KEY_PAIR_GEN => Some(CKK_RSA),
        CKM_EC_KEY_PAIR_GEN => Some(CKK_EC),
        CKM_EC_EDWARDS_KEY_PAIR_GEN => Some(CKK_EC_EDWARDS),
        _ => None,
    }
}

fn generation_curve(params: &[u8]) -> Result<Curve> {
    parse_ec_params(params).map_err(|e| match e {
        ParamsError::Unsupported => rv(CKR_CURVE_NOT_SUPPORTED),
        ParamsError::Malformed => rv(CKR_DOMAIN_PARAMS_INVALID),
    })
}

/// `CKA_EC_PARAMS` of a generation: from the public template (required unless `default`),
/// and if the private template names one too, the same curve.
fn generation_params(
    public: &AttributeTemplate,
    private: &AttributeTemplate,
    want: Curve,
    default: bool,
) -> Result<()> {
    let curve = match public.get(CKA_EC_PARAMS) {
        Some(p) => generation_curve(p)?,
        None if default => want,
        None => return Err(rv(CKR_TEMPLATE_INCOMPLETE)),
    };
    if curve != want {
        return Err(rv(CKR_CURVE_NOT_SUPPORTED));
    }
    if let Some(p) = private.get(CKA_EC_PARAMS) {
        if generation_curve(p)? != want {
            return Err(rv(CKR_TEMPLATE_INCONSISTENT));
        }
    }
    Ok(())
}

pub fn generate_key_pair(
    mechanism: &Mechanism,
    public_template: &AttributeTemplate,
    private_template: &AttributeTemplate,
) -> Result<KeyPairParts> {
    mechanism.no_param()?;
    // The mechanism makes the key material: templates may not bring any.
    let material: &[CK_ATTRIBUTE_TYPE] = &[
        CKA_MODULUS,
        CKA_PRIVATE_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
        CKA_COEFFICIENT,
        CKA_EC_POINT,
        CKA_VALUE,
    ];
    if material.iter().any(|ty| public_template.contains(*ty) || private_template.contains(*ty)) {
        return Err(rv(CKR_TEMPLATE_INCONSISTENT));
    }
    match mechanism.kind {
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            let bits = public_template.get_ulong(CKA_MODULUS_BITS)?.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))? as usize;
            if !RSA_GEN_BITS.contains(&bits) {
                return Err(rv(CKR_KEY_SIZE_RANGE));
            }
            let e = match public_template.get(CKA_PUBLIC_EXPONENT) {
                None => 65537u64,
                Some(e) => {
                    let e = trim_be(e);
                    if e.is_empty() || e.len() > 8 {
                        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
                    }
                    let e = e.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
                    if e < 3 || e % 2 == 0 || e > rsa::PublicKey::MAX_PUB_EXPONENT {
                        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
                    }
                    e
                }
            };
            let key = rsa::PrivateKey::new_with_exp(&mut SysRng, bits, BoxedUint::from(e))
                .map_err(|_| rv(CKR_FUNCTION_FAILED))?;
            if key.n().bit_width() as usize != bits {
                return Err(rv(CKR_FUNCTION_FAILED));
            }
            let mut public = rsa_public_attrs(key.as_public_key())?;
            // Echo the caller's spelling of the exponent (e.g. with a leading zero) so the
            // template and the generated values agree; `complete_key` stores it trimmed.
            if let Some(given) = public_template.get(CKA_PUBLIC_EXPONENT) {
                for (ty, v) in public.attrs.iter_mut() {
                    if *ty == CKA_PUBLIC_EXPONENT {
                        *v = Zeroizing::new(given.to_vec());
                    }
                }
            }
            Ok(KeyPairParts { public, private: rsa_private_attrs(&key)? })
        }
        CKM_EC_KEY_PAIR_GEN => {
            generation_params(public_template, private_template, Curve::P256, false)?;
            let (scalar, point) = generate_p256()?;
            // One scalar multiplication for both halves.
            let public = p256_public_attrs(&point)?;
            let mut private = AttributeTemplate::new().with(CKA_EC_PARAMS, P256_PARAMS);
            private.attrs.push((CKA_VALUE, scalar));
            private.push(CKA_PUBLIC_KEY_INFO, public.get(CKA_PUBLIC_KEY_INFO).unwrap_or_default().to_vec());
            Ok(KeyPairParts { public, private })
        }
        CKM_EC_EDWARDS_KEY_PAIR_GEN => {
            generation_params(public_template, private_template, Curve::Ed25519, true)?;
            let seed = random_secret(32)?;
            let seed: &[u8; 32] = seed.as_slice().try_into().map_err(|_| rv(CKR_GENERAL_ERROR))?;
            let key = ed25519_dalek::SigningKey::from_bytes(seed);
            Ok(KeyPairParts {
                public: ed25519_public_attrs(&key.verifying_key())?,
                private: ed25519_private_attrs(&key)?,
            })
        }
        _ => Err(rv(CKR_MECHANISM_INVALID)),
    }
}

// ---------------------------------------------------------------------------------------------
// PKCS#8

const RSA_OID: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_OID: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256_OID: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ED25519_OID: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.101.112");

fn invalid<E>(_: E) -> crate::error::Error {
    rv(CKR_WRAPPED_KEY_INVALID)
}

fn document(doc: pkcs8::SecretDocument) -> Secret {
    Zeroizing::new(doc.as_bytes().to_vec())
}

/// The DER PrivateKeyInfo (PKCS#8 v1) of a private key object, for wrapping.
pub fn private_key_to_pkcs8(key: &Object) -> Result<Secret> {
    use pkcs8::EncodePrivateKey;
    if key.class() != CKO_PRIVATE_KEY {
        return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
    }
    let failed = |_| rv(CKR_GENERAL_ERROR);
    match key.key_type() {
        Some(CKK_RSA) => Ok(document(rsa_private(key)?.to_pkcs8_der().map_err(failed)?)),
        Some(CKK_EC) => Ok(document(p256_private(key)?.to_pkcs8_der().map_err(failed)?)),
        Some(CKK_EC_EDWARDS) => {
            let signing = ed25519_private(key)?;
            let pair = ed25519_dalek::pkcs8::KeypairBytes { secret_key: signing.to_bytes(), public_key: None };
            Ok(document(pair.to_pkcs8_der().map_err(failed)?))
        }
        _ => Err(rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// Reads a DER PrivateKeyInfo (RSA, P-256 or Ed25519) into the key type and the private key
/// attributes (components, `CKA_EC_PARAMS`, derived CRT values and `CKA_PUBLIC_KEY_INFO`).
pub fn private_key_from_pkcs8(der: &[u8]) -> Result<(CK_KEY_TYPE, AttributeTemplate)> {
    use pkcs8::DecodePrivateKey;
    let info = pkcs8::PrivateKeyInfoRef::try_from(der).map_err(invalid)?;
    // Nothing may follow the structure (unwrapping with a padding mechanism strips padding).
    if info.to_der().map_err(invalid)?.len() != der.len() {
        return Err(rv(CKR_WRAPPED_KEY_INVALID));
    }
    match info.algorithm.oid {
        RSA_OID => {
            let key = rsa::PrivateKey::from_pkcs8_der(der).map_err(invalid)?;
            let bits = key.n().bit_width() as usize;
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err(rv(CKR_KEY_SIZE_RANGE));
            }
            Ok((CKK_RSA, rsa_private_attrs(&key)?))
        }
        EC_OID => {
            match info.algorithm.parameters_oid() {
                Ok(P256_OID) => {}
                Ok(_) => return Err(rv(CKR_CURVE_NOT_SUPPORTED)),
                Err(_) => return Err(rv(CKR_WRAPPED_KEY_INVALID)),
            }
            let key = p256::SecretKey::from_pkcs8_der(der).map_err(invalid)?;
            Ok((CKK_EC, p256_private_attrs(&key)?))
        }
        ED25519_OID => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(invalid)?;
            Ok((CKK_EC_EDWARDS, ed25519_private_attrs(&key)?))
        }
        _ => Err(rv(CKR_WRAPPED_KEY_INVALID)),
    }
}

/// The output size of an operation with this key: the modulus length for RSA (signatures,
/// ciphertexts, the largest plaintext), 64 for ECDSA P-256 and Ed25519 signatures.
pub fn output_len(key: &Object) -> Result<usize> {
    match key.key_type() {
        Some(CKK_RSA) => Ok(trim_be(required(key, CKA_MODULUS)?).len()),
        Some(CKK_EC) | Some(CKK_EC_EDWARDS) => Ok(64),
        _ => Err(rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    // Known answers made with OpenSSL 3.0 (commands beside each).

    pub const MESSAGE: &[u8] = b"keyfront";

    /// openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl pkcs8 -topk8 -nocrypt -outform DER
    pub const RSA_PKCS8: &str = concat!(
        "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100c5aca441365f55def984",
        "2f8ea2ca73b74d09cde813d0cea0078636eb3a71917fbec8776732c7810a74813b5865a6047f9cb87ddadea8e4d59148",
        "febab05a7e004dee3bce0cacdb99feff7882ab54eed1b1e55f7e12cc05217f386d154bd2dc852b253534f4ac662bee7d",
        "b22c01a34097cf6af1e2edea6c3a565c34c63f1a685a89f485a070e06d5d3e4f2f0fea137cb6079fbb4db4dd4d551964",
        "527a89ab5edf26f08a9c08e66b598b28a0936123806f86422d5d40eae23afa5e42073161461fce827ac2e207b7e5e7f1",
        "3d0b58bce33b880d2c44533b378dc844aecd81076d2ecd2ab56c86d77d3849db5a2daf0a4c9c0d624e94fd5a45962c8a",
        "523a6a50656f020301000102820100205729526555134fffce46c23fd3a93b428bdeed0ac7929e9a4c8a3ca6f05607d5",
        "3752adb1759ecb8e99bc135a220a175f6a7710c6caa6bc62e0d33d739a8285db3a25a7b03edc4e256ae23fad4c9fd147",
        "ee73d69a630303381f610811c285adf5e14858b47510e19175c2ca320465b8d09db9c5a650c049dfbf85d4da15cb1f9c",
        "88e4979251cfb7e203db1b9fb18ac9fb55feaf6820a5b22ca14027d022d5d116659d6672e3ec17d8fd25e66030d43e1d",
        "e53884461110d8fbf79480809356ca649d7aa014dde384fbaaab7d74615758bdb1785dde718b3d7f0a6013a8edeee30a",
        "f41166920644868ef8031acf8789f2bcd17db77b99ffca5a592c9389fa9b3102818100efb8d15ca6d39264f610315f3e",
        "64b7fb9d93e1e91ec6a5a5371befaa4667ecfe85ee4e73592f40f23f6997eea5d016cb7ae09022476f3121c9dfe7a1f9",
        "e54f2c049c45dff3e1c87ea649421bec22040a7419acb76869e1ca7850c28b5d7fac92dd74068b74b22d631d7f3a1c2e",
        "e6f20fd81870276fa987c8f565b650f1b69f3102818100d318e4ecaa29b6590571a3f7281a73dd461c1db5340c9f9afa",
        "14ab116bb499e8334e81cb8a41ea857b1995d510ea63828f3307da0b7d45070a519328768627a43272439abae9575774",
        "47f5c66dbc6971414b4ed3eca265140aa1f14fac16ea77c8c9163cf256d12afdab4aa5a685a18201c04fce805c353538",
        "0bb041cc56669f028180479fa3c617fe2cc64792acfdb509a8c2dfe0f8658b91749a796dba5cd8ae626be59e3f084dc4",
        "45965b85f424149ca8c2e112c95dc4941f4ce62124f70b500d28acb3f858a2687a5c04d8ec8ca52fc09f52f2fcdccbb0",
        "9f0abc89fca661282d6ab009e38eb52e2b4b6adbc183fc2b7a756b6e59cc1e9bbb7b3a7eca4b42fcfa7102818100c5bc",
        "82ebc175732eae2fc5e4457789e2d2c2917d643512e86bab22971de9bd6549721798de786243088d6dd17897e600ad3c",
        "a2f5375fef61e9e381d21c3c0c33fd61153c822b033a935cb8b757a16eafbcf6daef1eb0fbb7ab4208b595c09d7ef8e0",
        "8be92923f3a8ae975e440ed90bf1a8cc48b5697d7605d4eaf5fe9c76ae8702818100e86fc471c0e90af34d405f48c824",
        "4e9d2c03029dc0fe701502c8a822bd8404b0b3858caebc9c922ae16e30f8d91e9d70fbfa1d04cbf4e64e94ed4f9261ca",
        "d281559796e983847a585477c8a40453bc7414030f95145beb344d9068b4b60e207dc8bda54afcacf66fd0427fb78be3",
        "95c15e2828753cf632f5369425bd5e4e3916",
    );

    /// openssl pkey -pubout -outform DER of RSA_PKCS8
    pub const RSA_SPKI: &str = concat!(
        "30820122300d06092a864886f70d01010105000382010f003082010a0282010100c5aca441365f55def9842f8ea2ca73",
        "b74d09cde813d0cea0078636eb3a71917fbec8776732c7810a74813b5865a6047f9cb87ddadea8e4d59148febab05a7e",
        "004dee3bce0cacdb99feff7882ab54eed1b1e55f7e12cc05217f386d154bd2dc852b253534f4ac662bee7db22c01a340",
        "97cf6af1e2edea6c3a565c34c63f1a685a89f485a070e06d5d3e4f2f0fea137cb6079fbb4db4dd4d551964527a89ab5e",
        "df26f08a9c08e66b598b28a0936123806f86422d5d40eae23afa5e42073161461fce827ac2e207b7e5e7f13d0b58bce3",
        "3b880d2c44533b378dc844aecd81076d2ecd2ab56c86d77d3849db5a2daf0a4c9c0d624e94fd5a45962c8a523a6a5065",
        "6f0203010001",
    );

    /// openssl dgst -sha256 -sign, message MESSAGE
    pub const RSA_SIG_SHA256: &str = concat!(
        "30c238c63030403f4f08c5353e9cc3a5ba27c4b31af0c12109f124cdbacbea1d028da2dbf6bb1086721c7f781f952bff",
        "327f7dcaea4dad9b08a92db06b4f2ed0b8bec40c466efd7589d5297da194fc92e25c4a552ab4bfc342a4ffe2c8e61adc",
        "fc95355cb73b7c15f61a40d007c7a1744f8ca9dbc0f705a87ac563ceac13ff5c6e8472949379cd627a6dcb2084434a0d",
        "e5214f26788b903395a129e6d2fbb2a0ab87f0862564f60482ab5371f7f02b726c36b8efc958efa7b1d9183e449175a4",
        "72aed65036fe1021709c5a27e8ed1cf2f0c3403d8363f2a62083d60d03a320a4d425d7034898b6823983806bb168bd55",
        "b4949a8c85c922ef9681870cc1338dbb",
    );

    /// openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32
    pub const RSA_SIG_PSS_SHA256: &str = concat!(
        "5ac36af6c13f7b135fd404363fec7e3327e500d4c08828d60662150e33b994ce18f5e85d787c390ed489302724c36eaa",
        "bf2039253bf3b647f34d4f12881c373ef7dbe0ed276317f858304edd93fc4ec991fd0379acaa3f7fc1705fe5e5c5a3f7",
        "762e7405f60fef8179486ee37db08d44b2ab74ecfb8aea3e8514b2b4e0f53cd72007ffb6bc80f19690f52a42f30e9fa1",
        "8a6855a2abae55d90e3601ea06410bd244a296429f8f0e4ac8c31895d7c571d5fd49716ef8c6b53a48e04152ab5c8847",
        "1726cd0ad2528710f1e0883de515108baa1ff0cb3786d6fcd006bb4a889428d309f4c560a72792a7aed1837a5a8e987d",
        "adfcd0a9eb63d9ae95e2cda7d69db064",
    );

    /// openssl pkeyutl -encrypt, OAEP SHA-256/MGF1-SHA-256, label "label"
    pub const RSA_CT_OAEP_SHA256: &str = concat!(
        "b016059cdc8301a0f78caf170a150bf123bcea26994d808e79ef4f8ce9e9394c278fccda660f4ef1ff15da696f8a07ab",
        "ad3b6153846a48d40971f50f8a005cf613fc39eb299bbbb0bf775a30b8c9af0b52405a9a9beffc0f2b6462af970e620b",
        "fda23c0a41ae930354e476f55a08d78b96f647fab7a5c816efc84b9e83956616617c4173f34813aa677c8afe187423e3",
        "1ae656ed776c119bebe77640924ddc2d10f515a8bd34540d9e8c08024837ad28df9ba0e9f7fc7534aa6e378e1de03b5f",
        "ce7fda78a6b9811ea006c471e31b7938db707993d458339c185898dbebc0775706bda690b4a9375950b72fd1e2d8350d",
        "21de615cdbbbca16b2a3e34c49147e43",
    );

    /// openssl pkeyutl -encrypt, rsa_padding_mode:pkcs1
    pub const RSA_CT_PKCS1: &str = concat!(
        "6f785482779e0585c16f39ad8a9a1e3d11ce78e5c3159e4a82e4f61f78608869315da99626f6fa84f4a13c22e07ea770",
        "493ccd916febf4d7c8b4b70532e6271a294c4c90ea4f43be025a43c9267ab085d1f859ab1f1f4d4e6aa688ac2b1ece66",
        "acb2c56d9238b6359ae758e9bdeca15a684edd0b89b0be0b12d20356e72ab198ce80337c5a179621eea941b5f07e323f",
        "3ede83476d641df511893dce656f4204125f2762bc9b650c049816b3b8351e5f476c22aacac76c7ee31605f0caaa3008",
        "ed89bd0103f57d5422be7cf61a66aa1fe19d28901191aa1cdc0645fe7355c37af89cd549a1676ef1c786c2f3d5000e91",
        "ae69ab85baec8e18c548ce905b9588bf",
    );

    /// openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkcs8 -topk8 -nocrypt
    pub const EC_A_PKCS8: &str = concat!(
        "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104205bb1c5589cddf22566cedc3f",
        "00cec9b99400d82363bd0306c0f047170824a1ada14403420004e3fac213fd7b6e2dbb51c69b8bbdf026174ea3db6cca",
        "83b4c2f9727f26968df9785d02b99201f68ebf2b3c1ff55e6993472ad2edb4019024b225d5158884bd45",
    );

    /// the peer's public key (openssl pkey -pubout)
    pub const EC_B_SPKI: &str = concat!(
        "3059301306072a8648ce3d020106082a8648ce3d03010703420004b287fa0aef35cb757db266a8df2c898dba22fa174b",
        "0e3c10be12e4444ed26b36fb0ae9b4721c8fc6daa8d7722ade6320776a1285bbb34078a78209dbfd895c43",
    );

    /// openssl pkeyutl -derive -inkey EC_A -peerkey EC_B
    pub const ECDH_Z: &str = "0429c49452abe4f88ea3fbe796c54e9351499f5579ca18405d21ac21ca616c16";

    /// ANSI X9.63 KDF with SHA-256 of ECDH_Z, shared info "shared", 48 bytes (Python hashlib).
    pub const ECDH_X963_SHA256_48: &str = "90f21e248edbb789a19a306d311bc36936bbb6d2648c45bc9ea285f5652aef4c3cb9341837d34d7c3bffe62ee1777a46";

    /// Lower-case hex to bytes.
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::mechanism::MechanismParam;
    use crate::object::decode_ulong;

    /// A key object of `class` and `key_type` with the given attributes.
    pub(crate) fn key_object(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, attrs: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> Object {
        let mut o = Object::new();
        o.set_ulong(CKA_CLASS, class);
        o.set_ulong(CKA_KEY_TYPE, key_type);
        for (ty, v) in attrs {
            o.set(*ty, v.to_vec());
        }
        o
    }

    /// A completed object from a template of components.
    pub(crate) fn object_from(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, t: &AttributeTemplate) -> Object {
        let mut o = key_object(class, key_type, &[]);
        for (ty, v) in t.iter() {
            o.set(ty, v.to_vec());
        }
        complete_key(&mut o).unwrap();
        o
    }

    /// The private key object of a PKCS#8 fixture.
    pub(crate) fn private_object(pkcs8_hex: &str) -> Object {
        let (key_type, t) = private_key_from_pkcs8(&hex(pkcs8_hex)).unwrap();
        object_from(CKO_PRIVATE_KEY, key_type, &t)
    }

    /// The public key object matching a private key object.
    pub(crate) fn public_of(private: &Object) -> Object {
        let key_type = private.key_type().unwrap();
        let types: &[CK_ATTRIBUTE_TYPE] = match key_type {
            CKK_RSA => &[CKA_MODULUS, CKA_PUBLIC_EXPONENT],
            CKK_EC => &[CKA_EC_PARAMS],
            _ => &[CKA_EC_PARAMS],
        };
        let mut o = key_object(CKO_PUBLIC_KEY, key_type, &[]);
        for ty in types {
            o.set(*ty, private.get(*ty).unwrap().to_vec());
        }
        match key_type {
            CKK_EC => o.set(CKA_EC_POINT, p256_point_der(&p256_private(private).unwrap().public_key())),
            CKK_EC_EDWARDS => o.set(CKA_EC_POINT, der_octet_string(ed25519_private(private).unwrap().verifying_key().as_bytes())),
            _ => {}
        }
        complete_key(&mut o).unwrap();
        o
    }

    fn err<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    fn mech(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism::new(kind, MechanismParam::None)
    }

    #[test]
    fn rng_fills() {
        use rand_core::TryRng;
        let mut a = [0u8; 32];
        SysRng.try_fill_bytes(&mut a).unwrap();
        assert_ne!(a, [0u8; 32]);
        assert_eq!(random_secret(7).unwrap().len(), 7);
    }

    #[test]
    fn octet_strings() {
        for len in [0usize, 1, 32, 65, 127, 128, 255, 256, 1000] {
            let content = vec![0xabu8; len];
            let der = der_octet_string(&content);
            assert_eq!(parse_octet_string(&der), Some(content.as_slice()), "len {len}");
        }
        assert_eq!(parse_octet_string(&[0x04, 0x02, 1]), None);
        assert_eq!(parse_octet_string(&[0x04, 0x01, 1, 2]), None);
        assert_eq!(parse_octet_string(&[0x04, 0x81, 0x01, 1]), None, "non-minimal length");
        assert_eq!(parse_octet_string(&[0x03, 0x01, 1]), None);
    }

    #[test]
    fn ec_params() {
        assert_eq!(parse_ec_params(P256_PARAMS), Ok(Curve::P256));
        assert_eq!(parse_ec_params(ED25519_PARAMS), Ok(Curve::Ed25519));
        assert_eq!(parse_ec_params(ED25519_NAME_PARAMS), Ok(Curve::Ed25519));
        // secp384r1, a curve name keyfront does not offer, explicit parameters.
        assert_eq!(parse_ec_params(&hex("06052b81040022")), Err(ParamsError::Unsupported));
        assert_eq!(parse_ec_params(b"\x13\x0aedwards448"), Err(ParamsError::Unsupported));
        assert_eq!(parse_ec_params(&hex("3003020101")), Err(ParamsError::Unsupported));
        for bad in [&b""[..], &hex("06082a8648ce3d0301"), &hex("05000000"), &hex("06")] {
            assert_eq!(parse_ec_params(bad), Err(ParamsError::Malformed), "{bad:02x?}");
        }
    }

    #[test]
    fn rsa_components_match_openssl() {
        // OpenSSL's own CRT values, from the same PKCS#8 document.
        let der = hex(RSA_PKCS8);
        let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
        let theirs = rsa::pkcs1::RsaPrivateKeyRef::from_der(info.private_key.as_bytes()).unwrap();
        let (key_type, t) = private_key_from_pkcs8(&der).unwrap();
        assert_eq!(key_type, CKK_RSA);
        for (ty, v) in [
            (CKA_MODULUS, theirs.modulus.as_bytes()),
            (CKA_PUBLIC_EXPONENT, theirs.public_exponent.as_bytes()),
            (CKA_PRIVATE_EXPONENT, theirs.private_exponent.as_bytes()),
            (CKA_PRIME_1, theirs.prime1.as_bytes()),
            (CKA_PRIME_2, theirs.prime2.as_bytes()),
            (CKA_EXPONENT_1, theirs.exponent1.as_bytes()),
            (CKA_EXPONENT_2, theirs.exponent2.as_bytes()),
            (CKA_COEFFICIENT, theirs.coefficient.as_bytes()),
        ] {
            assert_eq!(t.get(ty), Some(trim_be(v)), "attribute {ty:#x}");
        }
        assert_eq!(t.get(CKA_PUBLIC_KEY_INFO), Some(hex(RSA_SPKI).as_slice()));

        // Import with n, e, d only: the primes and CRT values are computed.
        let bare = key_object(
            CKO_PRIVATE_KEY,
            CKK_RSA,
            &[
                (CKA_MODULUS, theirs.modulus.as_bytes()),
                (CKA_PUBLIC_EXPONENT, theirs.public_exponent.as_bytes()),
                (CKA_PRIVATE_EXPONENT, theirs.private_exponent.as_bytes()),
            ],
        );
        let mut completed = bare.clone();
        complete_key(&mut completed).unwrap();
        for ty in [CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT, CKA_PUBLIC_KEY_INFO] {
            assert_eq!(completed.get(ty), t.get(ty), "attribute {ty:#x}");
        }
        // Primes recovered from d may come in either order; their product is the modulus.
        assert!(completed.contains(CKA_PRIME_1) && completed.contains(CKA_PRIME_2));

        // With the primes but without CRT values.
        let mut with_primes = bare.clone();
        with_primes.set(CKA_PRIME_1, theirs.prime1.as_bytes().to_vec());
        with_primes.set(CKA_PRIME_2, theirs.prime2.as_bytes().to_vec());
        complete_key(&mut with_primes).unwrap();
        for ty in [CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT] {
            assert_eq!(with_primes.get(ty), t.get(ty), "attribute {ty:#x}");
        }

        // A wrong CRT value, a wrong d, a lone prime.
        let mut wrong = with_primes.clone();
        let mut c = theirs.coefficient.as_bytes().to_vec();
        c[5] ^= 1;
        wrong.set(CKA_COEFFICIENT, c);
        assert_eq!(err(complete_key(&mut wrong)), CKR_ATTRIBUTE_VALUE_INVALID);
        let mut wrong = bare.clone();
        let mut d = theirs.private_exponent.as_bytes().to_vec();
        d[10] ^= 1;
        wrong.set(CKA_PRIVATE_EXPONENT, d);
        assert_eq!(err(complete_key(&mut wrong)), CKR_ATTRIBUTE_VALUE_INVALID);
        let mut lone = bare.clone();
        lone.set(CKA_PRIME_1, theirs.prime1.as_bytes().to_vec());
        assert_eq!(err(complete_key(&mut lone)), CKR_TEMPLATE_INCOMPLETE);
        let mut missing = bare.clone();
        missing.remove(CKA_PRIVATE_EXPONENT);
        assert_eq!(err(complete_key(&mut missing)), CKR_TEMPLATE_INCOMPLETE);
    }

    #[test]
    fn rsa_public_import() {
        let private = private_object(RSA_PKCS8);
        let n = private.get(CKA_MODULUS).unwrap();
        // A leading zero on the modulus is accepted and removed.
        let mut padded = vec![0u8];
        padded.extend_from_slice(n);
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_RSA, &[(CKA_MODULUS, &padded), (CKA_PUBLIC_EXPONENT, &[0, 1, 0, 1])]);
        complete_key(&mut o).unwrap();
        assert_eq!(o.get(CKA_MODULUS), Some(n));
        assert_eq!(o.get(CKA_PUBLIC_EXPONENT), Some(&[1u8, 0, 1][..]));
        assert_eq!(decode_ulong(o.get(CKA_MODULUS_BITS).unwrap()).unwrap(), 2048);
        assert_eq!(o.get(CKA_PUBLIC_KEY_INFO), Some(hex(RSA_SPKI).as_slice()));
        // A stated size must be right.
        let mut o2 = o.clone();
        o2.set_ulong(CKA_MODULUS_BITS, 4096);
        assert_eq!(err(complete_key(&mut o2)), CKR_TEMPLATE_INCONSISTENT);
        // Even modulus, even exponent, too small, missing.
        let mut even = n.to_vec();
        *even.last_mut().unwrap() &= 0xfe;
        for (m, e) in [(&even[..], &[1u8, 0, 1][..]), (n, &[1, 0, 0][..]), (&n[..128], &[1, 0, 1][..])] {
            let mut o = key_object(CKO_PUBLIC_KEY, CKK_RSA, &[(CKA_MODULUS, m), (CKA_PUBLIC_EXPONENT, e)]);
            assert_eq!(err(complete_key(&mut o)), CKR_ATTRIBUTE_VALUE_INVALID);
        }
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_RSA, &[(CKA_MODULUS, n)]);
        assert_eq!(err(complete_key(&mut o)), CKR_TEMPLATE_INCOMPLETE);
    }

    #[test]
    fn ec_import() {
        let private = private_object(EC_A_PKCS8);
        assert_eq!(private.get(CKA_EC_PARAMS), Some(P256_PARAMS));
        assert_eq!(private.get(CKA_VALUE).unwrap().len(), 32);
        let spki = hex(EC_B_SPKI);
        let raw = &spki[spki.len() - 65..];
        // The SPKI is the point under a fixed P-256 prefix.
        assert_eq!(&spki[..spki.len() - 65], &hex("3059301306072a8648ce3d020106082a8648ce3d030107034200")[..]);
        let der = der_octet_string(raw);
        for point in [raw, &der[..]] {
            let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC, &[(CKA_EC_PARAMS, P256_PARAMS), (CKA_EC_POINT, point)]);
            complete_key(&mut o).unwrap();
            assert_eq!(o.get(CKA_EC_POINT), Some(der.as_slice()));
            assert_eq!(o.get(CKA_PUBLIC_KEY_INFO), Some(spki.as_slice()));
        }
        // Compressed points are accepted and stored uncompressed.
        let mut compressed = vec![0x02 | (raw[64] & 1)];
        compressed.extend_from_slice(&raw[1..33]);
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC, &[(CKA_EC_PARAMS, P256_PARAMS), (CKA_EC_POINT, &compressed)]);
        complete_key(&mut o).unwrap();
        assert_eq!(o.get(CKA_EC_POINT), Some(der.as_slice()));

        // A point off the curve, the wrong curve, malformed parameters, missing parts.
        let mut off = raw.to_vec();
        off[40] ^= 1;
        let secp384 = hex("06052b81040022");
        let truncated_oid = hex("0603");
        let cases: Vec<(&[u8], &[u8], CK_RV)> = vec![
            (P256_PARAMS, &off, CKR_ATTRIBUTE_VALUE_INVALID),
            (P256_PARAMS, &raw[..64], CKR_ATTRIBUTE_VALUE_INVALID),
            (&secp384, raw, CKR_CURVE_NOT_SUPPORTED),
            (ED25519_PARAMS, raw, CKR_CURVE_NOT_SUPPORTED),
            (&truncated_oid, raw, CKR_ATTRIBUTE_VALUE_INVALID),
        ];
        for (params, point, code) in cases {
            let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC, &[(CKA_EC_PARAMS, params), (CKA_EC_POINT, point)]);
            assert_eq!(err(complete_key(&mut o)), code);
        }
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC, &[(CKA_EC_POINT, raw)]);
        assert_eq!(err(complete_key(&mut o)), CKR_TEMPLATE_INCOMPLETE);

        // A private value given without its leading zeros is padded back to 32 bytes.
        let mut scalar = [0u8; 32];
        scalar[31] = 7;
        let mut o = key_object(CKO_PRIVATE_KEY, CKK_EC, &[(CKA_EC_PARAMS, P256_PARAMS), (CKA_VALUE, &[7])]);
        complete_key(&mut o).unwrap();
        assert_eq!(o.get(CKA_VALUE), Some(&scalar[..]));
        // Zero and the group order are not private keys.
        let order = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        for bad in [&[0u8; 32][..], &order] {
            let mut o = key_object(CKO_PRIVATE_KEY, CKK_EC, &[(CKA_EC_PARAMS, P256_PARAMS), (CKA_VALUE, bad)]);
            assert_eq!(err(complete_key(&mut o)), CKR_ATTRIBUTE_VALUE_INVALID);
        }
    }

    #[test]
    fn ed25519_import() {
        // RFC 8032 §7.1 test 1.
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        // OpenSSL's SubjectPublicKeyInfo for it.
        let spki = hex("302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let der = der_octet_string(&public);
        for params in [ED25519_PARAMS, ED25519_NAME_PARAMS] {
            for point in [&public[..], &der[..]] {
                let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, params), (CKA_EC_POINT, point)]);
                complete_key(&mut o).unwrap();
                assert_eq!(o.get(CKA_EC_PARAMS), Some(ED25519_PARAMS));
                assert_eq!(o.get(CKA_EC_POINT), Some(der.as_slice()));
                assert_eq!(o.get(CKA_PUBLIC_KEY_INFO), Some(spki.as_slice()));
            }
        }
        let mut o = key_object(CKO_PRIVATE_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, ED25519_NAME_PARAMS), (CKA_VALUE, &seed)]);
        complete_key(&mut o).unwrap();
        assert_eq!(o.get(CKA_EC_PARAMS), Some(ED25519_PARAMS));
        assert_eq!(o.get(CKA_PUBLIC_KEY_INFO), Some(spki.as_slice()));

        let mut o = key_object(CKO_PRIVATE_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, ED25519_PARAMS), (CKA_VALUE, &seed[1..])]);
        assert_eq!(err(complete_key(&mut o)), CKR_ATTRIBUTE_VALUE_INVALID);
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, P256_PARAMS), (CKA_EC_POINT, &public)]);
        assert_eq!(err(complete_key(&mut o)), CKR_CURVE_NOT_SUPPORTED);
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, b"\x13\x0aedwards448"), (CKA_EC_POINT, &public)]);
        assert_eq!(err(complete_key(&mut o)), CKR_CURVE_NOT_SUPPORTED);
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, ED25519_PARAMS), (CKA_EC_POINT, &public[..31])]);
        assert_eq!(err(complete_key(&mut o)), CKR_ATTRIBUTE_VALUE_INVALID);
    }

    #[test]
    fn unsupported_key_types_and_classes() {
        let mut o = key_object(CKO_PUBLIC_KEY, CKK_DSA, &[]);
        assert_eq!(err(complete_key(&mut o)), CKR_ATTRIBUTE_VALUE_INVALID);
        let mut secret = key_object(CKO_SECRET_KEY, CKK_AES, &[(CKA_VALUE, &[0u8; 16])]);
        complete_key(&mut secret).unwrap();
        assert!(is_asymmetric(CKK_RSA) && is_asymmetric(CKK_EC) && is_asymmetric(CKK_EC_EDWARDS));
        assert!(!is_asymmetric(CKK_AES) && !is_asymmetric(CKK_EC_MONTGOMERY));
    }

    #[test]
    fn pkcs8_round_trips() {
        // RSA and P-256 from OpenSSL: export gives back a document that imports to the same key.
        for fixture in [RSA_PKCS8, EC_A_PKCS8] {
            let key = private_object(fixture);
            let der = private_key_to_pkcs8(&key).unwrap();
            let (key_type, t) = private_key_from_pkcs8(&der).unwrap();
            assert_eq!(Some(key_type), key.key_type());
            for (ty, v) in t.iter() {
                assert_eq!(key.get(ty), Some(v), "attribute {ty:#x}");
            }
        }
        // RSA's export is OpenSSL's document byte for byte (both DER of the same PKCS#1 key).
        assert_eq!(private_key_to_pkcs8(&private_object(RSA_PKCS8)).unwrap().as_slice(), hex(RSA_PKCS8).as_slice());

        // Ed25519 exports as the RFC 8410 v1 document OpenSSL writes.
        let ed_pkcs8 = hex("302e020100300506032b6570042204209d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let (key_type, t) = private_key_from_pkcs8(&ed_pkcs8).unwrap();
        assert_eq!(key_type, CKK_EC_EDWARDS);
        let key = object_from(CKO_PRIVATE_KEY, key_type, &t);
        assert_eq!(private_key_to_pkcs8(&key).unwrap().as_slice(), ed_pkcs8.as_slice());
        assert_eq!(key.get(CKA_EC_PARAMS), Some(ED25519_PARAMS));

        // Garbage, truncation, trailing bytes, unknown algorithms.
        let mut trailing = ed_pkcs8.clone();
        trailing.push(0);
        let mut wrong_alg = ed_pkcs8.clone();
        wrong_alg[13] = 0x71; // 1.3.101.113, Ed448
        for bad in [&b""[..], b"garbage", &ed_pkcs8[..20], &trailing, &wrong_alg] {
            assert_eq!(err(private_key_from_pkcs8(bad)), CKR_WRAPPED_KEY_INVALID);
        }
        // An EC key on a curve keyfront does not offer.
        let mut p384ish = hex(EC_A_PKCS8);
        let at = p384ish.windows(P256_PARAMS.len()).position(|w| w == P256_PARAMS).unwrap();
        p384ish[at + P256_PARAMS.len() - 1] = 0x08; // 1.2.840.10045.3.1.8
        assert_eq!(err(private_key_from_pkcs8(&p384ish)), CKR_CURVE_NOT_SUPPORTED);
        // Only private keys export.
        let public = public_of(&private_object(EC_A_PKCS8));
        assert_eq!(err(private_key_to_pkcs8(&public)), CKR_KEY_TYPE_INCONSISTENT);
    }

    fn ulong(v: CK_ULONG) -> Vec<u8> {
        encode_ulong(v)
    }

    #[test]
    fn ec_and_ed25519_generation() {
        let empty = AttributeTemplate::new();
        let p256 = AttributeTemplate::new().with(CKA_EC_PARAMS, P256_PARAMS);
        let parts = generate_key_pair(&mech(CKM_EC_KEY_PAIR_GEN), &p256, &empty).unwrap();
        let private = object_from(CKO_PRIVATE_KEY, CKK_EC, &parts.private);
        let public = object_from(CKO_PUBLIC_KEY, CKK_EC, &parts.public);
        assert_eq!(public.get(CKA_EC_POINT).unwrap().len(), 67);
        assert_eq!(public.get(CKA_PUBLIC_KEY_INFO), private.get(CKA_PUBLIC_KEY_INFO));
        assert_eq!(public.get(CKA_EC_POINT), public_of(&private).get(CKA_EC_POINT));

        for params in [None, Some(ED25519_PARAMS), Some(ED25519_NAME_PARAMS)] {
            let t = match params {
                Some(p) => AttributeTemplate::new().with(CKA_EC_PARAMS, p),
                None => AttributeTemplate::new(),
            };
            let parts = generate_key_pair(&mech(CKM_EC_EDWARDS_KEY_PAIR_GEN), &t, &empty).unwrap();
            assert_eq!(parts.public.get(CKA_EC_PARAMS), Some(ED25519_PARAMS));
            let private = object_from(CKO_PRIVATE_KEY, CKK_EC_EDWARDS, &parts.private);
            let public = object_from(CKO_PUBLIC_KEY, CKK_EC_EDWARDS, &parts.public);
            assert_eq!(public.get(CKA_EC_POINT), public_of(&private).get(CKA_EC_POINT));
        }

        let secp384 = AttributeTemplate::new().with(CKA_EC_PARAMS, hex("06052b81040022"));
        let garbage = AttributeTemplate::new().with(CKA_EC_PARAMS, vec![1, 2, 3]);
        let ed = AttributeTemplate::new().with(CKA_EC_PARAMS, ED25519_PARAMS);
        let value = AttributeTemplate::new().with(CKA_VALUE, vec![1; 32]);
        let cases = [
            (CKM_EC_KEY_PAIR_GEN, &empty, &empty, CKR_TEMPLATE_INCOMPLETE),
            (CKM_EC_KEY_PAIR_GEN, &secp384, &empty, CKR_CURVE_NOT_SUPPORTED),
            (CKM_EC_KEY_PAIR_GEN, &garbage, &empty, CKR_DOMAIN_PARAMS_INVALID),
            (CKM_EC_KEY_PAIR_GEN, &ed, &empty, CKR_CURVE_NOT_SUPPORTED),
            (CKM_EC_KEY_PAIR_GEN, &p256, &ed, CKR_TEMPLATE_INCONSISTENT),
            (CKM_EC_KEY_PAIR_GEN, &p256, &value, CKR_TEMPLATE_INCONSISTENT),
            (CKM_EC_EDWARDS_KEY_PAIR_GEN, &p256, &empty, CKR_CURVE_NOT_SUPPORTED),
            (CKM_EC_EDWARDS_KEY_PAIR_GEN, &garbage, &empty, CKR_DOMAIN_PARAMS_INVALID),
            (CKM_ECDSA, &p256, &empty, CKR_MECHANISM_INVALID),
        ];
        for (kind, public, private, code) in cases {
            assert_eq!(err(generate_key_pair(&mech(kind), public, private)), code, "{kind:#x}");
        }
        let with_param = Mechanism::new(CKM_EC_KEY_PAIR_GEN, MechanismParam::Bytes(vec![1]));
        assert_eq!(err(generate_key_pair(&with_param, &p256, &empty)), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn rsa_generation_checks() {
        let empty = AttributeTemplate::new();
        let gen = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
        let bits = |b| AttributeTemplate::new().with(CKA_MODULUS_BITS, ulong(b));
        assert_eq!(err(generate_key_pair(&gen, &empty, &empty)), CKR_TEMPLATE_INCOMPLETE);
        assert_eq!(err(generate_key_pair(&gen, &bits(1024), &empty)), CKR_KEY_SIZE_RANGE);
        assert_eq!(err(generate_key_pair(&gen, &bits(2056), &empty)), CKR_KEY_SIZE_RANGE);
        assert_eq!(err(generate_key_pair(&gen, &empty.clone().with(CKA_MODULUS_BITS, vec![1]), &empty)), CKR_ATTRIBUTE_VALUE_INVALID);
        for e in [&[1u8, 0, 0][..], &[1], &[], &[0, 0], &[1; 9]] {
            let t = bits(2048).with(CKA_PUBLIC_EXPONENT, e.to_vec());
            assert_eq!(err(generate_key_pair(&gen, &t, &empty)), CKR_ATTRIBUTE_VALUE_INVALID, "{e:?}");
        }
    }

    #[test]
    fn rsa_generation() {
        let t = AttributeTemplate::new().with(CKA_MODULUS_BITS, ulong(2048)).with(CKA_PUBLIC_EXPONENT, vec![0, 1, 0, 1]);
        let parts = generate_key_pair(&mech(CKM_RSA_PKCS_KEY_PAIR_GEN), &t, &AttributeTemplate::new()).unwrap();
        let public = object_from(CKO_PUBLIC_KEY, CKK_RSA, &parts.public);
        let private = object_from(CKO_PRIVATE_KEY, CKK_RSA, &parts.private);
        assert_eq!(parts.public.get(CKA_MODULUS_BITS), Some(ulong(2048).as_slice()));
        assert_eq!(parts.public.get(CKA_PUBLIC_EXPONENT), Some(&[0u8, 1, 0, 1][..]));
        assert_eq!(public.get(CKA_MODULUS).unwrap().len(), 256);
        assert_eq!(public.get(CKA_PUBLIC_EXPONENT), Some(&[1u8, 0, 1][..]));
        assert_eq!(public.get(CKA_PUBLIC_KEY_INFO), private.get(CKA_PUBLIC_KEY_INFO));
        for ty in [CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT] {
            assert!(parts.private.get(ty).is_some_and(|v| !v.is_empty() && v[0] != 0), "attribute {ty:#x}");
        }
        // The pair works: PKCS #1 v1.5 sign with one half, verify with the other.
        let m = mech(CKM_SHA256_RSA_PKCS);
        let mut s = crate::mechanism::asym_signer(&m, &private, true).unwrap();
        s.update(b"pair").unwrap();
        let sig = s.sign().unwrap();
        let mut v = crate::mechanism::asym_signer(&m, &public, false).unwrap();
        v.update(b"pair").unwrap();
        v.verify(&sig).unwrap();
        assert_eq!(output_len(&public).unwrap(), 256);
    }
}

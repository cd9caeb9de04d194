//! At-rest protection of the soft token: a random token key seals every secret attribute,
//! and is itself wrapped under keys derived from the user and SO PINs.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use cryptoki_sys::*;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{rv, Error, Result};

const NONCE_LEN: usize = 12;
const SALT_LEN: usize = 16;
const WRAP_FORMAT: u8 = 1;

/// The PBKDF2 cost used when a slot does not say otherwise (OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256).
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
/// The least a configuration may ask for; tests use it to stay fast.
pub const MIN_KDF_ITERATIONS: u32 = 1_000;
/// The most (several seconds per login): a larger count in a token file is damage, not a
/// setting, and would stall `C_Login` for hours.
pub const MAX_KDF_ITERATIONS: u32 = 20_000_000;

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| Error::Internal(format!("OS random generator: {e}")))?;
    Ok(out)
}

/// The key that seals every secret attribute of one token. Lives in memory only while a user
/// or the SO is logged in, and is wiped when dropped.
pub struct TokenKey(Zeroizing<[u8; 32]>);

impl TokenKey {
    pub fn generate() -> Result<Self> {
        Ok(Self(Zeroizing::new(random_bytes::<32>()?)))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_ref()).expect("32-byte key")
    }

    /// Seals one attribute value. The AAD names the object and the attribute, so a sealed
    /// value copied into another row does not open.
    pub fn seal(&self, object_uid: &[u8], ty: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let aad = attribute_aad(object_uid, ty);
        let sealed = self
            .cipher()
            .encrypt(&nonce.into(), Payload { msg: value, aad: &aad })
            .map_err(|_| Error::Internal("sealing an attribute failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed attribute value; a failure means the file was altered or corrupted.
    pub fn open(&self, object_uid: &[u8], ty: CK_ATTRIBUTE_TYPE, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(Error::Internal("sealed attribute too short".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let aad = attribute_aad(object_uid, ty);
        self.cipher()
            .decrypt(&nonce.into(), Payload { msg: body, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| Error::Internal(format!("sealed attribute 0x{ty:x} does not open: token file altered?")))
    }

    /// Wraps this key under a PIN: `format ‖ iterations ‖ salt ‖ nonce ‖ ciphertext+tag`.
    /// `role` binds the blob to the user or the SO.
    pub fn wrap_under_pin(&self, pin: &[u8], iterations: u32, role: &[u8]) -> Result<Vec<u8>> {
        let salt = random_bytes::<SALT_LEN>()?;
        let nonce = random_bytes::<NONCE_LEN>()?;
        let kek = derive_kek(pin, &salt, iterations);
        let cipher = Aes256Gcm::new_from_slice(kek.as_ref()).expect("32-byte key");
        let aad = wrap_aad(role);
        let body = cipher
            .encrypt(&nonce.into(), Payload { msg: self.0.as_ref(), aad: &aad })
            .map_err(|_| Error::Internal("wrapping the token key failed".into()))?;
        let mut out = vec![WRAP_FORMAT];
        out.extend_from_slice(&iterations.to_le_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Unwraps the key with a PIN. A wrong PIN fails the AEAD tag check, which compares in
    /// constant time; it returns `CKR_PIN_INCORRECT`.
    pub fn unwrap_with_pin(blob: &[u8], pin: &[u8], role: &[u8]) -> Result<Self> {
        const HEAD: usize = 1 + 4 + SALT_LEN + NONCE_LEN;
        if blob.len() != HEAD + 32 + 16 || blob[0] != WRAP_FORMAT {
            return Err(Error::Internal("wrapped token key has an unknown format".into()));
        }
        let iterations = u32::from_le_bytes(blob[1..5].try_into().expect("4 bytes"));
        if !(MIN_KDF_ITERATIONS..=MAX_KDF_ITERATIONS).contains(&iterations) {
            return Err(Error::Internal(format!("wrapped token key asks for {iterations} KDF iterations: token file damaged?")));
        }
        let salt = &blob[5..5 + SALT_LEN];
        let nonce: [u8; NONCE_LEN] = blob[5 + SALT_LEN..HEAD].try_into().expect("12 bytes");
        let kek = derive_kek(pin, salt, iterations);
        let cipher = Aes256Gcm::new_from_slice(kek.as_ref()).expect("32-byte key");
        let aad = wrap_aad(role);
        let key = Zeroizing::new(
            cipher
                .decrypt(&nonce.into(), Payload { msg: &blob[HEAD..], aad: &aad })
                .map_err(|_| rv(CKR_PIN_INCORRECT))?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&key);
        Ok(Self(out))
    }
}

impl Clone for TokenKey {
    fn clone(&self) -> Self {
        Self(Zeroizing::new(*self.0))
    }
}

fn derive_kek(pin: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut kek = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(pin, salt, iterations.max(1), kek.as_mut());
    kek
}

fn attribute_aad(object_uid: &[u8], ty: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    let mut aad = b"keyfront attribute v1".to_vec();
    aad.extend_from_slice(object_uid);
    // Eight bytes wherever CK_ULONG is narrower: the AAD is part of the file format.
    #[allow(clippy::unnecessary_cast)]
    aad.extend_from_slice(&(ty as u64).to_le_bytes());
    aad
}

fn wrap_aad(role: &[u8]) -> Vec<u8> {
    let mut aad = b"keyfront token key v1 ".to_vec();
    aad.extend_from_slice(role);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_wrap_round_trip_and_wrong_pin() {
        let key = TokenKey::generate().unwrap();
        let blob = key.wrap_under_pin(b"1234", 1000, b"user").unwrap();
        let mut damaged = blob.clone();
        damaged[4] = 0xff;
        assert_eq!(TokenKey::unwrap_with_pin(&damaged, b"1234", b"user").err().unwrap().rv(), CKR_GENERAL_ERROR);
        let back = TokenKey::unwrap_with_pin(&blob, b"1234", b"user").unwrap();
        assert_eq!(*back.0, *key.0);
        assert_eq!(TokenKey::unwrap_with_pin(&blob, b"1235", b"user").err().unwrap().rv(), CKR_PIN_INCORRECT);
        // A user blob is not an SO blob.
        assert!(TokenKey::unwrap_with_pin(&blob, b"1234", b"so").is_err());
    }

    #[test]
    fn sealed_values_are_bound_to_object_and_attribute() {
        let key = TokenKey::generate().unwrap();
        let sealed = key.seal(b"uid-1", CKA_VALUE, b"secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open(b"uid-1", CKA_VALUE, &sealed).unwrap().as_slice(), b"secret");
        assert!(key.open(b"uid-2", CKA_VALUE, &sealed).is_err());
        assert!(key.open(b"uid-1", CKA_PRIME_1, &sealed).is_err());
    }
}

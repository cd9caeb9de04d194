//! Cloud slots: keys that live in a key service (AWS KMS, Vault Transit). The private or
//! secret half never leaves the service; `CloudToken` shows each key as PKCS#11 objects,
//! forwards the private-key operations, and leaves public-key operations and session keys
//! to the core's local code.

mod certificate;
pub mod http;
mod ops;
pub mod service;
mod token;

pub use token::CloudToken;
pub use service::{ecdsa_der_to_raw, Hash, KeyService, KeySpec, NewKey, RemoteKey, Signing};

/// A service for unit tests of parameter checks that must refuse before any request.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::error::{rv, Result};
    use cryptoki_sys::CKR_DEVICE_ERROR;
    use zeroize::Zeroizing;

    pub struct Unused;

    impl KeyService for Unused {
        fn describe(&self) -> String {
            "unused".into()
        }
        fn list_keys(&self) -> Result<Vec<RemoteKey>> {
            Err(rv(CKR_DEVICE_ERROR))
        }
        fn sign(&self, _: &RemoteKey, _: Signing, _: &[u8]) -> Result<Vec<u8>> {
            Err(rv(CKR_DEVICE_ERROR))
        }
        fn decrypt_oaep(&self, _: &RemoteKey, _: Hash, _: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
            Err(rv(CKR_DEVICE_ERROR))
        }
        fn wrap(&self, _: &RemoteKey, _: &[u8]) -> Result<Vec<u8>> {
            Err(rv(CKR_DEVICE_ERROR))
        }
        fn unwrap(&self, _: &RemoteKey, _: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
            Err(rv(CKR_DEVICE_ERROR))
        }
        fn create_key(&self, _: &NewKey) -> Result<RemoteKey> {
            Err(rv(CKR_DEVICE_ERROR))
        }
        fn delete_key(&self, _: &RemoteKey) -> Result<()> {
            Err(rv(CKR_DEVICE_ERROR))
        }
    }
}

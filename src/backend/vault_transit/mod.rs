//! PLACEHOLDER until the service code lands: every call refuses.

use zeroize::Zeroizing;

use crate::backend::cloud::{Hash, KeyService, NewKey, RemoteKey, Signing};
use crate::config::VaultSlotConfig;
use crate::error::{Error, Result};

pub struct VaultTransit;

impl VaultTransit {
    pub fn new(_config: &VaultSlotConfig) -> Result<Self> {
        Err(Error::Config("vault_transit slots are not built yet".into()))
    }
}

impl KeyService for VaultTransit {
    fn describe(&self) -> String {
        "vault_transit".into()
    }
    fn list_keys(&self) -> Result<Vec<RemoteKey>> {
        unreachable!()
    }
    fn sign(&self, _key: &RemoteKey, _how: Signing, _input: &[u8]) -> Result<Vec<u8>> {
        unreachable!()
    }
    fn decrypt_oaep(&self, _key: &RemoteKey, _hash: Hash, _ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        unreachable!()
    }
    fn wrap(&self, _key: &RemoteKey, _plaintext: &[u8]) -> Result<Vec<u8>> {
        unreachable!()
    }
    fn unwrap(&self, _key: &RemoteKey, _blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        unreachable!()
    }
    fn create_key(&self, _request: &NewKey) -> Result<RemoteKey> {
        unreachable!()
    }
    fn delete_key(&self, _key: &RemoteKey) -> Result<()> {
        unreachable!()
    }
}

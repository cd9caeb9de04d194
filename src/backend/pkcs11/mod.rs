//! Forwarding slots: a token of another PKCS#11 module behind keyfront's slots and policy.
//! (Skeleton: the forwarding itself is being written.)

use cryptoki_sys::*;

use super::{Backend, ObjectId, TokenInfo, UserType};
use crate::config::Pkcs11SlotConfig;
use crate::error::{rv, Error, Result};
use crate::object::{AttributeTemplate, Object};

pub struct Pkcs11Token {}

impl Pkcs11Token {
    /// Loads the vendor module and finds the configured token.
    pub fn open(config: &Pkcs11SlotConfig, _label: &str) -> Result<Self> {
        Err(Error::Config(format!("{}: forwarding slots are not available in this build", config.module.display())))
    }
}

impl Backend for Pkcs11Token {
    fn token_info(&self) -> Result<TokenInfo> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn init_token(&self, _so_pin: &[u8], _label: &str) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn init_pin(&self, _pin: &[u8]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn set_pin(&self, _user: UserType, _old_pin: &[u8], _new_pin: &[u8]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn login(&self, _user: UserType, _pin: &[u8]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn verify_user_pin(&self, _pin: &[u8]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn logout(&self) {}
    fn generation(&self) -> Result<u64> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn create_object(&self, _object: &Object) -> Result<ObjectId> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn read_object(&self, _id: ObjectId, _with_secrets: bool) -> Result<Object> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn update_object(&self, _id: ObjectId, _object: &Object, _changed: &[CK_ATTRIBUTE_TYPE]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn destroy_object(&self, _id: ObjectId) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn find_objects(&self, _template: &AttributeTemplate, _include_private: bool) -> Result<Vec<ObjectId>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
}

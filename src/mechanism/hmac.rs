// placeholder until the mechanism helper delivers this file
use super::*;
use crate::error::{rv, Result};
#[allow(unused)]
pub fn cipher(_m: &Mechanism, _k: &[u8], _e: bool) -> Result<Box<dyn Cipher>> { Err(rv(cryptoki_sys::CKR_MECHANISM_INVALID)) }
#[allow(unused)]
pub fn check_value(_k: &[u8]) -> Result<[u8; 3]> { Err(rv(cryptoki_sys::CKR_MECHANISM_INVALID)) }
#[allow(unused)]
pub fn signer(_m: &Mechanism, _k: &[u8]) -> Result<Box<dyn Signer>> { Err(rv(cryptoki_sys::CKR_MECHANISM_INVALID)) }
#[allow(unused)]
pub fn digester(_m: &Mechanism) -> Result<Box<dyn Digester>> { Err(rv(cryptoki_sys::CKR_MECHANISM_INVALID)) }

//! keyfront's typed mechanism parameters turned back into a `CK_MECHANISM` with its C
//! parameter struct, laid out as PKCS#11 3.0 says, owned for as long as the call needs it.

use std::ffi::c_void;
use std::ptr;

use cryptoki_sys::*;

use crate::error::{rv, Result};
use crate::mechanism::{Mechanism, MechanismParam};

/// A `CK_MECHANISM` and everything its parameter points to. The parameter structs and byte
/// strings live in boxes and vectors, whose heap addresses do not change when this value
/// moves, so the pointers in `mech` stay valid for as long as it lives.
pub struct RawMechanism {
    mech: CK_MECHANISM,
    _hold: Hold,
}

#[allow(dead_code)] // the fields only keep memory alive
enum Hold {
    None,
    Bytes(Vec<u8>),
    Gcm(Box<CK_GCM_PARAMS>, Vec<u8>, Vec<u8>),
    Ctr(Box<CK_AES_CTR_PARAMS>),
    Pss(Box<CK_RSA_PKCS_PSS_PARAMS>),
    Oaep(Box<CK_RSA_PKCS_OAEP_PARAMS>, Vec<u8>),
    Ecdh(Box<CK_ECDH1_DERIVE_PARAMS>, Vec<u8>, Vec<u8>),
    Eddsa(Box<CK_EDDSA_PARAMS>, Vec<u8>),
}

/// A pointer to `v`'s bytes, NULL when empty (vendors tell "no data" by NULL and 0).
fn data_ptr(v: &mut [u8]) -> *mut u8 {
    if v.is_empty() {
        ptr::null_mut()
    } else {
        v.as_mut_ptr()
    }
}

fn boxed<T>(b: &mut T) -> (*mut c_void, CK_ULONG) {
    (b as *mut T as *mut c_void, std::mem::size_of::<T>() as CK_ULONG)
}

impl RawMechanism {
    pub fn new(m: &Mechanism) -> Result<Self> {
        let (hold, (param, len)) = match &m.param {
            MechanismParam::None => (Hold::None, (ptr::null_mut(), 0)),
            MechanismParam::Bytes(b) => {
                let mut b = b.clone();
                let p = (data_ptr(&mut b) as *mut c_void, b.len() as CK_ULONG);
                (Hold::Bytes(b), p)
            }
            MechanismParam::Gcm(g) => {
                // SoftHSM2 crashes on a NULL IV, and PKCS#11 asks for at least one byte.
                if g.iv.is_empty() {
                    return Err(rv(CKR_MECHANISM_PARAM_INVALID));
                }
                let (mut iv, mut aad) = (g.iv.clone(), g.aad.clone());
                let mut params = Box::new(CK_GCM_PARAMS {
                    pIv: data_ptr(&mut iv),
                    ulIvLen: iv.len() as CK_ULONG,
                    ulIvBits: (iv.len() * 8) as CK_ULONG,
                    pAAD: data_ptr(&mut aad),
                    ulAADLen: aad.len() as CK_ULONG,
                    ulTagBits: g.tag_bits as CK_ULONG,
                });
                let p = boxed(&mut *params);
                (Hold::Gcm(params, iv, aad), p)
            }
            MechanismParam::Ctr(c) => {
                let mut params =
                    Box::new(CK_AES_CTR_PARAMS { ulCounterBits: c.counter_bits as CK_ULONG, cb: c.counter_block });
                let p = boxed(&mut *params);
                (Hold::Ctr(params), p)
            }
            MechanismParam::RsaPss(s) => {
                let mut params =
                    Box::new(CK_RSA_PKCS_PSS_PARAMS { hashAlg: s.hash, mgf: s.mgf, sLen: s.salt_len as CK_ULONG });
                let p = boxed(&mut *params);
                (Hold::Pss(params), p)
            }
            MechanismParam::RsaOaep(o) => {
                let mut label = o.label.clone();
                let mut params = Box::new(CK_RSA_PKCS_OAEP_PARAMS {
                    hashAlg: o.hash,
                    mgf: o.mgf,
                    source: CKZ_DATA_SPECIFIED,
                    pSourceData: data_ptr(&mut label) as *mut c_void,
                    ulSourceDataLen: label.len() as CK_ULONG,
                });
                let p = boxed(&mut *params);
                (Hold::Oaep(params, label), p)
            }
            MechanismParam::Ecdh1Derive(e) => {
                let (mut shared, mut public) = (e.shared_data.clone(), e.public_data.clone());
                let mut params = Box::new(CK_ECDH1_DERIVE_PARAMS {
                    kdf: e.kdf,
                    ulSharedDataLen: shared.len() as CK_ULONG,
                    pSharedData: data_ptr(&mut shared),
                    ulPublicDataLen: public.len() as CK_ULONG,
                    pPublicData: data_ptr(&mut public),
                });
                let p = boxed(&mut *params);
                (Hold::Ecdh(params, shared, public), p)
            }
            MechanismParam::Eddsa(e) => {
                let mut context = e.context.clone();
                let mut params = Box::new(CK_EDDSA_PARAMS {
                    phFlag: if e.prehash { CK_TRUE } else { CK_FALSE },
                    ulContextDataLen: context.len() as CK_ULONG,
                    pContextData: data_ptr(&mut context),
                });
                let p = boxed(&mut *params);
                (Hold::Eddsa(params, context), p)
            }
        };
        Ok(Self { mech: CK_MECHANISM { mechanism: m.kind, pParameter: param, ulParameterLen: len }, _hold: hold })
    }

    /// The mechanism for a vendor call; valid while `self` lives.
    pub fn as_ptr(&mut self) -> *mut CK_MECHANISM {
        &mut self.mech
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::{AesGcmParams, RsaOaepParams};

    #[test]
    fn gcm_params_are_laid_out_with_iv_bits() {
        let m = Mechanism::new(
            CKM_AES_GCM,
            MechanismParam::Gcm(AesGcmParams { iv: vec![1; 12], aad: vec![], tag_bits: 128 }),
        );
        let mut raw = RawMechanism::new(&m).unwrap();
        let moved = std::mem::replace(&mut raw, RawMechanism::new(&Mechanism::new(CKM_AES_ECB, MechanismParam::None)).unwrap());
        let mut raw = moved;
        // SAFETY: the pointers were built by `RawMechanism::new` and live in `raw`.
        unsafe {
            let m = &*raw.as_ptr();
            assert_eq!(m.ulParameterLen as usize, std::mem::size_of::<CK_GCM_PARAMS>());
            let g = &*(m.pParameter as *const CK_GCM_PARAMS);
            assert_eq!((g.ulIvLen, g.ulIvBits, g.ulAADLen, g.ulTagBits), (12, 96, 0, 128));
            assert!(g.pAAD.is_null());
            assert_eq!(std::slice::from_raw_parts(g.pIv, 12), &[1; 12]);
        }
        let empty_iv = Mechanism::new(CKM_AES_GCM, MechanismParam::Gcm(AesGcmParams { iv: vec![], aad: vec![], tag_bits: 128 }));
        assert!(RawMechanism::new(&empty_iv).is_err());
    }

    #[test]
    fn oaep_label_is_data_specified() {
        let m = Mechanism::new(
            CKM_RSA_PKCS_OAEP,
            MechanismParam::RsaOaep(RsaOaepParams { hash: CKM_SHA_1, mgf: CKG_MGF1_SHA1, label: b"abc".to_vec() }),
        );
        let mut raw = RawMechanism::new(&m).unwrap();
        // SAFETY: as above.
        unsafe {
            let o = &*((*raw.as_ptr()).pParameter as *const CK_RSA_PKCS_OAEP_PARAMS);
            assert_eq!((o.source, o.ulSourceDataLen), (CKZ_DATA_SPECIFIED, 3));
            assert_eq!(std::slice::from_raw_parts(o.pSourceData as *const u8, 3), b"abc");
        }
    }
}

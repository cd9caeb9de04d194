//! Turning C arguments into Rust values. Each helper checks for NULL and bad lengths first;
//! callers are `ck_fn!` bodies, which hold the caller's promise that non-NULL pointers are
//! valid for their lengths.

use std::mem::size_of;

use cryptoki_sys::*;

use crate::core::Output;
use crate::error::{rv, Error, Result};
use crate::mechanism::{
    AesCtrParams, AesGcmParams, Ecdh1DeriveParams, EddsaParams, Mechanism, MechanismParam, RsaOaepParams, RsaPssParams,
};
use crate::object::AttributeTemplate;

/// Input bytes: NULL is allowed only with length 0.
pub unsafe fn bytes<'a>(ptr: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(rv(CKR_ARGUMENTS_BAD)) };
    }
    Ok(std::slice::from_raw_parts(ptr, len as usize))
}

/// Bytes inside a mechanism parameter: a bad pointer there is a bad parameter.
unsafe fn param_bytes(ptr: *const u8, len: CK_ULONG) -> Result<Vec<u8>> {
    bytes(ptr, len).map(<[u8]>::to_vec).map_err(|_| rv(CKR_MECHANISM_PARAM_INVALID))
}

/// A required output pointer.
pub unsafe fn out<'a, T>(ptr: *mut T) -> Result<&'a mut T> {
    ptr.as_mut().ok_or(rv(CKR_ARGUMENTS_BAD))
}

/// An output buffer with its in/out length: NULL buffer asks for the length.
pub unsafe fn output<'a>(ptr: *mut u8, len: *mut CK_ULONG) -> Result<Output<'a>> {
    let len = *out(len)?;
    if ptr.is_null() {
        return Ok(Output::Query);
    }
    Ok(Output::Into(std::slice::from_raw_parts_mut(ptr, len as usize)))
}

/// Writes the length of a produced output, also when the buffer was too small.
pub unsafe fn set_len(len: *mut CK_ULONG, result: Result<usize>) -> Result<()> {
    match result {
        Ok(n) => {
            *out(len)? = n as CK_ULONG;
            Ok(())
        }
        Err(Error::BufferTooSmall(n)) => {
            *out(len)? = n as CK_ULONG;
            Err(Error::BufferTooSmall(n))
        }
        Err(e) => Err(e),
    }
}

/// Writes a list of items with the PKCS#11 length protocol.
pub unsafe fn write_list<T: Copy>(items: &[T], ptr: *mut T, count: *mut CK_ULONG) -> Result<()> {
    let count = out(count)?;
    let room = *count as usize;
    *count = items.len() as CK_ULONG;
    if ptr.is_null() {
        return Ok(());
    }
    if room < items.len() {
        return Err(rv(CKR_BUFFER_TOO_SMALL));
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), ptr, items.len());
    Ok(())
}

/// A caller's attribute template, copied.
pub unsafe fn template(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<AttributeTemplate> {
    if ptr.is_null() {
        return if count == 0 { Ok(AttributeTemplate::new()) } else { Err(rv(CKR_ARGUMENTS_BAD)) };
    }
    let mut template = AttributeTemplate::new();
    for attr in std::slice::from_raw_parts(ptr, count as usize) {
        if attr.ulValueLen == CK_UNAVAILABLE_INFORMATION {
            return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        let value = bytes(attr.pValue as *const u8, attr.ulValueLen)?;
        template.push(attr.type_, value.to_vec());
    }
    Ok(template)
}

/// The old `CK_GCM_PARAMS`, from before `ulIvBits` was added; some callers still pass it.
#[repr(C)]
struct GcmParamsWithoutIvBits {
    p_iv: *mut u8,
    iv_len: CK_ULONG,
    p_aad: *mut u8,
    aad_len: CK_ULONG,
    tag_bits: CK_ULONG,
}

/// A mechanism with its parameter, typed per mechanism.
pub unsafe fn mechanism(ptr: *const CK_MECHANISM) -> Result<Mechanism> {
    let m = ptr.as_ref().ok_or(rv(CKR_ARGUMENTS_BAD))?;
    let (p, len) = (m.pParameter, m.ulParameterLen as usize);
    let param = match m.mechanism {
        _ if p.is_null() && len == 0 => MechanismParam::None,
        _ if p.is_null() => return Err(rv(CKR_MECHANISM_PARAM_INVALID)),
        CKM_AES_GCM if len == size_of::<CK_GCM_PARAMS>() => {
            let g = &*(p as *const CK_GCM_PARAMS);
            MechanismParam::Gcm(AesGcmParams {
                iv: param_bytes(g.pIv, g.ulIvLen)?,
                aad: param_bytes(g.pAAD, g.ulAADLen)?,
                tag_bits: g.ulTagBits as usize,
            })
        }
        CKM_AES_GCM if len == size_of::<GcmParamsWithoutIvBits>() => {
            let g = &*(p as *const GcmParamsWithoutIvBits);
            MechanismParam::Gcm(AesGcmParams {
                iv: param_bytes(g.p_iv, g.iv_len)?,
                aad: param_bytes(g.p_aad, g.aad_len)?,
                tag_bits: g.tag_bits as usize,
            })
        }
        CKM_AES_GCM => return Err(rv(CKR_MECHANISM_PARAM_INVALID)),
        CKM_AES_CTR if len == size_of::<CK_AES_CTR_PARAMS>() => {
            let c = &*(p as *const CK_AES_CTR_PARAMS);
            MechanismParam::Ctr(AesCtrParams { counter_bits: c.ulCounterBits as usize, counter_block: c.cb })
        }
        CKM_AES_CTR => return Err(rv(CKR_MECHANISM_PARAM_INVALID)),
        CKM_RSA_PKCS_PSS | CKM_SHA1_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            let p = typed::<CK_RSA_PKCS_PSS_PARAMS>(p, len)?;
            MechanismParam::RsaPss(RsaPssParams { hash: p.hashAlg, mgf: p.mgf, salt_len: p.sLen as usize })
        }
        CKM_RSA_PKCS_OAEP => {
            let p = typed::<CK_RSA_PKCS_OAEP_PARAMS>(p, len)?;
            let label = match p.source {
                CKZ_DATA_SPECIFIED => param_bytes(p.pSourceData as *const u8, p.ulSourceDataLen)?,
                // Some callers leave the source type 0 with no label.
                0 if p.ulSourceDataLen == 0 => Vec::new(),
                _ => return Err(rv(CKR_MECHANISM_PARAM_INVALID)),
            };
            MechanismParam::RsaOaep(RsaOaepParams { hash: p.hashAlg, mgf: p.mgf, label })
        }
        CKM_ECDH1_DERIVE => {
            let p = typed::<CK_ECDH1_DERIVE_PARAMS>(p, len)?;
            MechanismParam::Ecdh1Derive(Ecdh1DeriveParams {
                kdf: p.kdf,
                shared_data: param_bytes(p.pSharedData, p.ulSharedDataLen)?,
                public_data: param_bytes(p.pPublicData, p.ulPublicDataLen)?,
            })
        }
        CKM_EDDSA => {
            let p = typed::<CK_EDDSA_PARAMS>(p, len)?;
            MechanismParam::Eddsa(EddsaParams {
                prehash: p.phFlag != CK_FALSE,
                context: param_bytes(p.pContextData, p.ulContextDataLen)?,
            })
        }
        _ => MechanismParam::Bytes(param_bytes(p as *const u8, len as CK_ULONG)?),
    };
    Ok(Mechanism::new(m.mechanism, param))
}

/// A fixed-layout parameter struct; any other length is a bad parameter.
unsafe fn typed<'a, T>(p: *mut std::ffi::c_void, len: usize) -> Result<&'a T> {
    if len != size_of::<T>() {
        return Err(rv(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(&*(p as *const T))
}

/// A blank-padded fixed-size text field (labels) as a trimmed string.
pub unsafe fn padded_text(ptr: *const u8, len: usize) -> Result<String> {
    let raw = bytes(ptr, len as CK_ULONG)?;
    if ptr.is_null() {
        return Err(rv(CKR_ARGUMENTS_BAD));
    }
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Ok(String::from_utf8_lossy(&raw[..end]).trim_end().to_string())
}

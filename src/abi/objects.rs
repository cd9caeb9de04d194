//! Object functions.

use cryptoki_sys::*;

use super::args::{out, template};
use super::ck_fn;
use crate::core::{module, AttrRead};
use crate::error::rv;

ck_fn! {
    fn C_CreateObject(hSession: CK_SESSION_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG, phObject: *mut CK_OBJECT_HANDLE) {
        let target = out(phObject)?;
        let template = template(pTemplate, ulCount)?;
        *target = module()?.create_object(hSession, &template)?;
        Ok(())
    }

    fn C_CopyObject(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulCount: CK_ULONG,
        phNewObject: *mut CK_OBJECT_HANDLE,
    ) {
        let target = out(phNewObject)?;
        let template = template(pTemplate, ulCount)?;
        *target = module()?.copy_object(hSession, hObject, &template)?;
        Ok(())
    }

    fn C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE) {
        module()?.destroy_object(hSession, hObject)
    }

    fn C_GetObjectSize(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pulSize: *mut CK_ULONG) {
        let target = out(pulSize)?;
        *target = module()?.get_object_size(hSession, hObject)? as CK_ULONG;
        Ok(())
    }

    fn C_GetAttributeValue(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) {
        if pTemplate.is_null() && ulCount > 0 {
            return Err(rv(CKR_ARGUMENTS_BAD));
        }
        let attrs: &mut [CK_ATTRIBUTE] = if ulCount == 0 { &mut [] } else { std::slice::from_raw_parts_mut(pTemplate, ulCount as usize) };
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let reads = module()?.get_attributes(hSession, hObject, &types)?;
        // Every attribute is answered; the call reports the last problem met (§5.7).
        let mut result = CKR_OK;
        for (attr, read) in attrs.iter_mut().zip(reads) {
            match read {
                AttrRead::Invalid => {
                    attr.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = CKR_ATTRIBUTE_TYPE_INVALID;
                }
                AttrRead::Sensitive => {
                    attr.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = CKR_ATTRIBUTE_SENSITIVE;
                }
                AttrRead::Value(v) if attr.pValue.is_null() => attr.ulValueLen = v.len() as CK_ULONG,
                AttrRead::Value(v) if (attr.ulValueLen as usize) < v.len() => {
                    attr.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = CKR_BUFFER_TOO_SMALL;
                }
                AttrRead::Value(v) => {
                    std::ptr::copy_nonoverlapping(v.as_ptr(), attr.pValue as *mut u8, v.len());
                    attr.ulValueLen = v.len() as CK_ULONG;
                }
            }
        }
        if result == CKR_OK { Ok(()) } else { Err(rv(result)) }
    }

    fn C_SetAttributeValue(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) {
        let template = template(pTemplate, ulCount)?;
        module()?.set_attributes(hSession, hObject, &template)
    }

    fn C_FindObjectsInit(hSession: CK_SESSION_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) {
        let template = template(pTemplate, ulCount)?;
        module()?.find_init(hSession, &template)
    }

    fn C_FindObjects(hSession: CK_SESSION_HANDLE, phObject: *mut CK_OBJECT_HANDLE, ulMaxObjectCount: CK_ULONG, pulObjectCount: *mut CK_ULONG) {
        let count = out(pulObjectCount)?;
        if phObject.is_null() && ulMaxObjectCount > 0 {
            return Err(rv(CKR_ARGUMENTS_BAD));
        }
        let found = module()?.find_next(hSession, ulMaxObjectCount as usize)?;
        if !found.is_empty() {
            std::ptr::copy_nonoverlapping(found.as_ptr(), phObject, found.len());
        }
        *count = found.len() as CK_ULONG;
        Ok(())
    }

    fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) {
        module()?.find_final(hSession)
    }
}

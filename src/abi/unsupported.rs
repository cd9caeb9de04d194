//! Functions keyfront does not offer yet: they exist, as PKCS#11 3.0 requires of every
//! function in the list, and answer `CKR_FUNCTION_NOT_SUPPORTED` for a valid session.

use cryptoki_sys::*;

use super::ck_fn;
use crate::core::module;
use crate::error::rv;

ck_fn! {
    fn C_GetOperationState(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_SetOperationState(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: CK_ULONG, _arg4: CK_OBJECT_HANDLE, _arg5: CK_OBJECT_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_SignRecoverInit(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_MECHANISM, _arg3: CK_OBJECT_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_SignRecover(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_VerifyRecoverInit(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_MECHANISM, _arg3: CK_OBJECT_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_VerifyRecover(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_DigestEncryptUpdate(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_DecryptDigestUpdate(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_SignEncryptUpdate(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_DecryptVerifyUpdate(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_BYTE, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageEncryptInit(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_MECHANISM, _arg3: CK_OBJECT_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_EncryptMessage(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: CK_ULONG, _arg8: *mut CK_BYTE, _arg9: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_EncryptMessageBegin(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_EncryptMessageNext(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: *mut CK_ULONG, _arg8: CK_FLAGS) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageDecryptInit(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_MECHANISM, _arg3: CK_OBJECT_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_DecryptMessage(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: CK_ULONG, _arg8: *mut CK_BYTE, _arg9: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_DecryptMessageBegin(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_DecryptMessageNext(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: *mut CK_ULONG, _arg8: CK_FLAGS) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageSignInit(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_MECHANISM, _arg3: CK_OBJECT_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_SignMessage(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_SignMessageBegin(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_SignMessageNext(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: *mut CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageVerifyInit(_arg1: CK_SESSION_HANDLE, _arg2: *mut CK_MECHANISM, _arg3: CK_OBJECT_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_VerifyMessage(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_VerifyMessageBegin(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_VerifyMessageNext(_arg1: CK_SESSION_HANDLE, _arg2: *mut std::ffi::c_void, _arg3: CK_ULONG, _arg4: *mut CK_BYTE, _arg5: CK_ULONG, _arg6: *mut CK_BYTE, _arg7: CK_ULONG) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageEncryptFinal(_arg1: CK_SESSION_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageDecryptFinal(_arg1: CK_SESSION_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageSignFinal(_arg1: CK_SESSION_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_MessageVerifyFinal(_arg1: CK_SESSION_HANDLE) {
        module()?.sessions.get(_arg1)?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
}

//! Slots, tokens, sessions and login.

use cryptoki_sys::*;

use super::args::{bytes, out, padded_text, write_list};
use super::ck_fn;
use super::general::LIBRARY_VERSION;
use crate::core::{module, padded};
use crate::error::rv;

ck_fn! {
    fn C_GetSlotList(_tokenPresent: CK_BBOOL, pSlotList: *mut CK_SLOT_ID, pulCount: *mut CK_ULONG) {
        write_list(&module()?.slot_ids(), pSlotList, pulCount)
    }

    fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) {
        let module = module()?;
        let slot = module.slot(slotID)?;
        *out(pInfo)? = CK_SLOT_INFO {
            slotDescription: padded(&slot.description),
            manufacturerID: padded("keyfront"),
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: LIBRARY_VERSION,
            firmwareVersion: LIBRARY_VERSION,
        };
        Ok(())
    }

    fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) {
        let target = out(pInfo)?;
        let status = module()?.token_status(slotID)?;
        let info = &status.info;
        *target = CK_TOKEN_INFO {
            label: padded(&info.label),
            manufacturerID: padded(&info.manufacturer),
            model: padded(&info.model),
            serialNumber: padded(&info.serial),
            flags: info.flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: status.sessions as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: status.rw_sessions as CK_ULONG,
            ulMaxPinLen: info.max_pin_len as CK_ULONG,
            ulMinPinLen: info.min_pin_len as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: info.hardware_version,
            firmwareVersion: info.firmware_version,
            utcTime: [b' '; 16],
        };
        Ok(())
    }

    fn C_GetMechanismList(slotID: CK_SLOT_ID, pMechanismList: *mut CK_MECHANISM_TYPE, pulCount: *mut CK_ULONG) {
        write_list(&module()?.mechanism_list(slotID)?, pMechanismList, pulCount)
    }

    fn C_GetMechanismInfo(slotID: CK_SLOT_ID, type_: CK_MECHANISM_TYPE, pInfo: *mut CK_MECHANISM_INFO) {
        let target = out(pInfo)?;
        let entry = module()?.mechanism_info(slotID, type_)?;
        *target = CK_MECHANISM_INFO { ulMinKeySize: entry.min_key, ulMaxKeySize: entry.max_key, flags: entry.flags };
        Ok(())
    }

    fn C_InitToken(slotID: CK_SLOT_ID, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG, pLabel: *mut CK_UTF8CHAR) {
        let pin = bytes(pPin, ulPinLen)?;
        let label = padded_text(pLabel, 32)?;
        module()?.init_token(slotID, pin, &label)
    }

    fn C_InitPIN(hSession: CK_SESSION_HANDLE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) {
        module()?.init_pin(hSession, bytes(pPin, ulPinLen)?)
    }

    fn C_SetPIN(
        hSession: CK_SESSION_HANDLE,
        pOldPin: *mut CK_UTF8CHAR,
        ulOldLen: CK_ULONG,
        pNewPin: *mut CK_UTF8CHAR,
        ulNewLen: CK_ULONG,
    ) {
        module()?.set_pin(hSession, bytes(pOldPin, ulOldLen)?, bytes(pNewPin, ulNewLen)?)
    }

    fn C_OpenSession(
        slotID: CK_SLOT_ID,
        flags: CK_FLAGS,
        _pApplication: CK_VOID_PTR,
        _Notify: CK_NOTIFY,
        phSession: *mut CK_SESSION_HANDLE,
    ) {
        let target = out(phSession)?;
        *target = module()?.open_session(slotID, flags)?;
        Ok(())
    }

    fn C_CloseSession(hSession: CK_SESSION_HANDLE) {
        module()?.close_session(hSession)
    }

    fn C_CloseAllSessions(slotID: CK_SLOT_ID) {
        module()?.close_all_sessions(slotID)
    }

    fn C_GetSessionInfo(hSession: CK_SESSION_HANDLE, pInfo: *mut CK_SESSION_INFO) {
        let target = out(pInfo)?;
        let status = module()?.session_status(hSession)?;
        *target = CK_SESSION_INFO { slotID: status.slot_id, state: status.state, flags: status.flags, ulDeviceError: 0 };
        Ok(())
    }

    fn C_Login(hSession: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) {
        module()?.login(hSession, userType, bytes(pPin, ulPinLen)?)
    }

    fn C_LoginUser(
        hSession: CK_SESSION_HANDLE,
        userType: CK_USER_TYPE,
        pPin: *mut CK_UTF8CHAR,
        ulPinLen: CK_ULONG,
        _pUsername: *mut CK_UTF8CHAR,
        _ulUsernameLen: CK_ULONG,
    ) {
        // Tokens without user names ignore the name (PKCS#11 3.0 §5.6).
        module()?.login(hSession, userType, bytes(pPin, ulPinLen)?)
    }

    fn C_Logout(hSession: CK_SESSION_HANDLE) {
        module()?.logout(hSession)
    }

    fn C_WaitForSlotEvent(_flags: CK_FLAGS, _pSlot: *mut CK_SLOT_ID, _pReserved: CK_VOID_PTR) {
        module()?;
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) {
        module()?.sessions.get(hSession)?;
        Err(rv(CKR_FUNCTION_NOT_PARALLEL))
    }

    fn C_CancelFunction(hSession: CK_SESSION_HANDLE) {
        module()?.sessions.get(hSession)?;
        Err(rv(CKR_FUNCTION_NOT_PARALLEL))
    }
}

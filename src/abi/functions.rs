//! The function lists handed out by `C_GetFunctionList` and `C_GetInterface`.

use cryptoki_sys::*;

use super::crypto::*;
use super::general::*;
use super::objects::*;
use super::token::*;
use super::unsupported::*;

/// Both function lists from one list of names: the 3.0 list is the 2.40 list plus the
/// functions PKCS#11 3.0 added.
macro_rules! function_lists {
    ([$($common:ident),* $(,)?], [$($added:ident),* $(,)?]) => {
        pub static FUNCTION_LIST_2_40: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
            version: CK_VERSION { major: 2, minor: 40 },
            $($common: Some($common),)*
        };

        pub static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
            version: CK_VERSION { major: 3, minor: 0 },
            $($common: Some($common),)*
            $($added: Some($added),)*
        };
    };
}

function_lists!(
    [
        C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo,
        C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN,
        C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState,
        C_SetOperationState, C_Login, C_Logout, C_CreateObject, C_CopyObject, C_DestroyObject,
        C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit,
        C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate,
        C_EncryptFinal, C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit,
        C_Digest, C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate,
        C_SignFinal, C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate,
        C_VerifyFinal, C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate,
        C_DecryptDigestUpdate, C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey,
        C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey, C_SeedRandom, C_GenerateRandom,
        C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent
    ],
    [
        C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel, C_MessageEncryptInit,
        C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext, C_MessageEncryptFinal,
        C_MessageDecryptInit, C_DecryptMessage, C_DecryptMessageBegin, C_DecryptMessageNext,
        C_MessageDecryptFinal, C_MessageSignInit, C_SignMessage, C_SignMessageBegin,
        C_SignMessageNext, C_MessageSignFinal, C_MessageVerifyInit, C_VerifyMessage,
        C_VerifyMessageBegin, C_VerifyMessageNext, C_MessageVerifyFinal
    ]
);

/// The interfaces offered, newest first: a NULL name or version in `C_GetInterface` picks the
/// first. Never 3.2: its longer function list is not filled.
pub const INTERFACE_VERSIONS: [(u8, u8); 2] = [(3, 0), (2, 40)];

const fn interfaces() -> [CK_INTERFACE; 2] {
    [
        CK_INTERFACE {
            pInterfaceName: c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut std::ffi::c_void,
            flags: 0,
        },
        CK_INTERFACE {
            pInterfaceName: c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTION_LIST_2_40 as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
            flags: 0,
        },
    ]
}

/// What `C_GetInterfaceList` copies out.
pub struct InterfaceList(pub [CK_INTERFACE; 2]);

// SAFETY: the pointers refer to immutable statics and are only read, so sharing them between
// threads is sound.
unsafe impl Sync for InterfaceList {}

pub static INTERFACE_LIST: InterfaceList = InterfaceList(interfaces());

/// The structures `C_GetInterface` points its caller at. They live in writable memory because
/// some consumers write into them (OpenSC's pkcs11-spy swaps in its own function list);
/// keyfront itself never reads them back.
pub struct HandedOut(std::cell::UnsafeCell<[CK_INTERFACE; 2]>);

// SAFETY: keyfront only forms pointers into the cell and never reads or writes through
// them, so no access of its own can race with a caller's write.
unsafe impl Sync for HandedOut {}

static HANDED_OUT: HandedOut = HandedOut(std::cell::UnsafeCell::new(interfaces()));

/// A pointer to the handed-out interface `index` of `INTERFACE_VERSIONS`.
pub fn handed_out(index: usize) -> *mut CK_INTERFACE {
    (HANDED_OUT.0.get() as *mut CK_INTERFACE).wrapping_add(index.min(INTERFACE_VERSIONS.len() - 1))
}

//! Module life cycle and discovery: `C_Initialize`, `C_Finalize`, `C_GetInfo` and the
//! function lists.

use cryptoki_sys::*;

use super::args::{out, write_list};
use super::ck_fn;
use super::functions::{handed_out, FUNCTION_LIST_2_40, INTERFACE_LIST, INTERFACE_VERSIONS};
use crate::core::{self, padded};
use crate::error::rv;

extern "C" fn after_fork_in_child() {
    core::note_fork();
}

/// Registers the fork handler once per process image.
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handler is a plain function of this library that only increments an
        // atomic; glibc's pthread_atfork ties it to this DSO and drops it if we are unloaded.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        if rc != 0 {
            tracing::warn!("pthread_atfork failed ({rc}): a forked child must not reuse this module");
        }
    });
}

/// `KEYFRONT_NO_CORE_DUMPS=1`: the process stops being dumpable (`PR_SET_DUMPABLE` 0), so
/// a crash leaves no core file with key material in it. Opt-in, because it is a property of
/// the whole host process (it also stops ptrace by other processes of the same user).
/// Per-allocation `MADV_DONTDUMP` cannot cover keys spread over the heaps of the crypto
/// crates (docs/security.md).
fn keep_out_of_core_dumps() {
    if std::env::var("KEYFRONT_NO_CORE_DUMPS").is_ok_and(|v| v == "1") {
        // SAFETY: prctl with PR_SET_DUMPABLE takes plain integers and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!("KEYFRONT_NO_CORE_DUMPS: prctl(PR_SET_DUMPABLE) failed: {}", std::io::Error::last_os_error());
        }
    }
}

pub use crate::LIBRARY_VERSION;

ck_fn! {
    fn C_Initialize(pInitArgs: *mut std::ffi::c_void) {
        if let Some(args) = (pInitArgs as *const CK_C_INITIALIZE_ARGS).as_ref() {
            let callbacks = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            if callbacks.iter().any(|&c| c) && !callbacks.iter().all(|&c| c) {
                return Err(rv(CKR_ARGUMENTS_BAD));
            }
            // keyfront locks with the OS's primitives; application callbacks alone cannot be
            // honoured. `pReserved` is ignored: some consumers pass non-NULL there.
            if callbacks[0] && args.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(rv(CKR_CANT_LOCK));
            }
        }
        watch_forks();
        keep_out_of_core_dumps();
        core::initialize()
    }

    fn C_Finalize(pReserved: *mut std::ffi::c_void) {
        if !pReserved.is_null() {
            return Err(rv(CKR_ARGUMENTS_BAD));
        }
        core::finalize()
    }

    fn C_GetInfo(pInfo: *mut CK_INFO) {
        core::module()?;
        *out(pInfo)? = CK_INFO {
            cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
            manufacturerID: padded("keyfront"),
            flags: 0,
            libraryDescription: padded("keyfront PKCS#11 provider"),
            libraryVersion: LIBRARY_VERSION,
        };
        Ok(())
    }

    fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) {
        *out(ppFunctionList)? = &FUNCTION_LIST_2_40 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        Ok(())
    }

    fn C_GetInterfaceList(pInterfacesList: *mut CK_INTERFACE, pulCount: *mut CK_ULONG) {
        write_list(&INTERFACE_LIST.0, pInterfacesList, pulCount)
    }

    fn C_GetInterface(
        pInterfaceName: *mut CK_UTF8CHAR,
        pVersion: *mut CK_VERSION,
        ppInterface: *mut *mut CK_INTERFACE,
        flags: CK_FLAGS,
    ) {
        let target = out(ppInterface)?;
        if !pInterfaceName.is_null() {
            let name = std::ffi::CStr::from_ptr(pInterfaceName as *const std::ffi::c_char);
            if name.to_bytes() != b"PKCS 11" {
                return Err(rv(CKR_ARGUMENTS_BAD));
            }
        }
        let wanted = pVersion.as_ref().map(|v| (v.major, v.minor));
        // No interface has flags, so any request for one fails.
        let found = INTERFACE_VERSIONS.iter().position(|&v| wanted.is_none_or(|w| w == v) && flags == 0);
        match found {
            Some(index) => {
                *target = handed_out(index);
                Ok(())
            }
            None => Err(rv(CKR_ARGUMENTS_BAD)),
        }
    }
}

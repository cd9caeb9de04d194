//! Loading and unloading the module again and again in one process, as hosts do that open a
//! module per use (p11-kit's proxy, pkcs11-tool, language bindings): nothing of one load may
//! stay behind in the next. keyfront's logger is process-global (the `tracing` dispatcher, an
//! open `KEYFRONT_LOG_FILE`); the module is linked `-z nodelete` so that `dlclose` leaves it
//! mapped and the next load reuses that logger instead of leaking it and opening another.
mod common;
use common::*;

use std::ptr;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

/// dlopen, then in a thread of its own `C_Initialize`, a call that opens the token, a call
/// that logs, `C_Finalize`; dlclose once the thread has ended. (glibc does not unmap a library
/// while a live thread holds thread-local values of it with destructors: the calls run in a
/// thread that ends first, as in a host whose worker threads come and go.)
fn cycle() {
    // SAFETY (test): loads keyfront, whose initialisers are sound to run.
    let lib = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("dlopen module");
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    assert_rv(unsafe { lib.C_GetFunctionList(&mut list) }, CKR_OK);
    let f = unsafe { *list };
    std::thread::spawn(move || unsafe {
        assert_rv(f.C_Initialize.unwrap()(ptr::null_mut()), CKR_OK);
        let mut info: CK_TOKEN_INFO = std::mem::zeroed();
        assert_rv(f.C_GetTokenInfo.unwrap()(7, &mut info), CKR_OK);
        // Logged at warn: a slot that does not exist.
        assert_rv(f.C_GetTokenInfo.unwrap()(99, &mut info), CKR_SLOT_ID_INVALID);
        assert_rv(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK);
    })
    .join()
    .expect("calls in a thread");
    drop(lib);
}

#[test]
fn unloading_and_loading_again_keeps_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyfront.toml");
    std::fs::write(&config, slot_toml(&dir.path().join("t.db"), "unload", Some(7))).unwrap();
    std::env::set_var("KEYFRONT_CONFIG", &config);
    let log = dir.path().join("keyfront.log");
    std::env::set_var("KEYFRONT_LOG_FILE", &log);
    std::env::set_var("KEYFRONT_LOG", "debug");

    cycle();
    let after_first = open_descriptors();
    for _ in 0..4 {
        cycle();
    }
    assert_eq!(open_descriptors(), after_first, "each load and unload left descriptors open (a log file?)");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.lines().count() >= 5, "every load logs to the one log file:\n{logged}");
}

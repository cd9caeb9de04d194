//! What C_Initialize makes of its CK_C_INITIALIZE_ARGS: keyfront always locks with the OS's
//! primitives, so the application's mutex functions alone cannot be honoured, and
//! `pReserved` is ignored. Each test initialises and finalises the module itself (the
//! module's state is per process), so they run one at a time (LOCK), apart from the fixture
//! of the other test binaries, on a soft slot whatever KEYFRONT_TEST_BACKEND says.
mod common;
use common::*;

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::new(());

/// Serialises the tests, gives each a one-slot configuration, and finalises the module when
/// the test ends, even on panic.
struct Serial {
    _guard: MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
}

fn serial() -> Serial {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    ck!(C_Finalize, ptr::null_mut());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyfront.toml");
    std::fs::write(&config, slot_toml(&dir.path().join("t.db"), "init-args", Some(1))).unwrap();
    std::env::set_var("KEYFRONT_CONFIG", &config);
    Serial { _guard: guard, _dir: dir }
}

impl Drop for Serial {
    fn drop(&mut self) {
        ck!(C_Finalize, ptr::null_mut());
    }
}

fn initialized() -> bool {
    let mut i = CK_INFO::default();
    match ck!(C_GetInfo, &mut i) {
        CKR_OK => true,
        CKR_CRYPTOKI_NOT_INITIALIZED => false,
        other => panic!("C_GetInfo: {}", rv_name(other)),
    }
}

/// How often any of the application's mutex functions was called.
static MUTEX_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn create_mutex(m: *mut *mut c_void) -> CK_RV {
    MUTEX_CALLS.fetch_add(1, Ordering::SeqCst);
    *m = ptr::dangling_mut::<c_void>();
    CKR_OK
}

unsafe extern "C" fn other_mutex_fn(_m: *mut c_void) -> CK_RV {
    MUTEX_CALLS.fetch_add(1, Ordering::SeqCst);
    CKR_OK
}

fn with_mutex_fns(flags: CK_FLAGS) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: Some(create_mutex),
        DestroyMutex: Some(other_mutex_fn),
        LockMutex: Some(other_mutex_fn),
        UnlockMutex: Some(other_mutex_fn),
        flags,
        pReserved: ptr::null_mut(),
    }
}

fn initialize(args: &mut CK_C_INITIALIZE_ARGS) -> CK_RV {
    ck!(C_Initialize, args as *mut CK_C_INITIALIZE_ARGS as *mut c_void)
}

/// PKCS#11 3.0, C_Initialize: with the four mutex functions and no CKF_OS_LOCKING_OK the
/// library must use the application's functions; keyfront cannot, so CKR_CANT_LOCK. With
/// CKF_OS_LOCKING_OK it may use either, and uses the OS's: the application's are never called.
#[test]
fn mutex_functions_need_os_locking_ok() {
    let _s = serial();
    MUTEX_CALLS.store(0, Ordering::SeqCst);
    assert_rv(initialize(&mut with_mutex_fns(0)), CKR_CANT_LOCK);
    assert!(!initialized(), "CKR_CANT_LOCK left the module initialised");

    assert_rv(initialize(&mut with_mutex_fns(CKF_OS_LOCKING_OK)), CKR_OK);
    assert!(initialized());
    let s = open(1, true).unwrap();
    assert_eq!(random(s, 16).unwrap().len(), 16);
    close(s).unwrap();
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
    assert_eq!(MUTEX_CALLS.load(Ordering::SeqCst), 0, "the application's mutex functions were called");
    assert!(!initialized());
}

/// `pReserved` "must be NULL_PTR" says the specification; keyfront ignores it instead,
/// because consumers do pass something there: pkcs11-provider hands its
/// `pkcs11-module-init-args` setting (an NSS-style configuration string) to the module.
#[test]
fn reserved_pointer_is_ignored() {
    let _s = serial();
    let mut nss_style = *b"configdir='sql:/nonexistent' certPrefix='' keyPrefix='' secmod='secmod.db' flags=readOnly\0";
    for flags in [0, CKF_OS_LOCKING_OK] {
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags,
            pReserved: nss_style.as_mut_ptr() as *mut c_void,
        };
        assert_rv(initialize(&mut args), CKR_OK);
        assert!(initialized());
        assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
    }
    // With the mutex functions too: the locking rule above decides, not pReserved.
    let mut args = CK_C_INITIALIZE_ARGS { pReserved: nss_style.as_mut_ptr() as *mut c_void, ..with_mutex_fns(0) };
    assert_rv(initialize(&mut args), CKR_CANT_LOCK);
    let mut args = CK_C_INITIALIZE_ARGS { pReserved: nss_style.as_mut_ptr() as *mut c_void, ..with_mutex_fns(CKF_OS_LOCKING_OK) };
    assert_rv(initialize(&mut args), CKR_OK);
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
}

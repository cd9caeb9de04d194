//! fork(): the child re-initialises the module (with and without C_Finalize first) and sees
//! the token's objects. The only test of its binary, so no other test thread is running
//! when it forks.
mod common;
use common::*;

use std::ptr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum Variant {
    InitializeOnly,
    FinalizeThenInitialize,
}

/// What each step of the child checks; the child exits with the number of the failed step.
const STEPS: &[&str] = &[
    "ok",
    "first C_Initialize (or C_Finalize + C_Initialize) in the child",
    "second C_Initialize in the child must be CKR_CRYPTOKI_ALREADY_INITIALIZED",
    "C_OpenSession",
    "the new session must be public (the parent's login is not inherited)",
    "public token object created before fork must be found",
    "user login",
    "private token key created before fork must be found",
    "the key must encrypt as in the parent",
    "creating a token object in the child",
    "C_Finalize",
];

fn child(slot: CK_SLOT_ID, variant: Variant, expected_ct: &[u8]) -> i32 {
    let step = |n: i32, ok: bool| if ok { Ok(()) } else { Err(n) };
    let run = || -> Result<(), i32> {
        match variant {
            Variant::InitializeOnly => step(1, ck!(C_Initialize, ptr::null_mut()) == CKR_OK)?,
            Variant::FinalizeThenInitialize => {
                let f = ck!(C_Finalize, ptr::null_mut());
                step(1, f == CKR_OK || f == CKR_CRYPTOKI_NOT_INITIALIZED)?;
                step(1, ck!(C_Initialize, ptr::null_mut()) == CKR_OK)?;
            }
        }
        step(2, ck!(C_Initialize, ptr::null_mut()) == CKR_CRYPTOKI_ALREADY_INITIALIZED)?;
        let s = open(slot, true).map_err(|_| 3)?;
        step(4, session_info(s).map(|i| i.state) == Ok(CKS_RW_PUBLIC_SESSION))?;
        step(5, find(s, &[av(CKA_LABEL, "before-fork")]).map(|v| v.len()) == Ok(1))?;
        login(s, CKU_USER, USER_PIN).map_err(|_| 6)?;
        let keys = find(s, &[av(CKA_LABEL, "fork-key")]).map_err(|_| 7)?;
        step(7, keys.len() == 1)?;
        let ct = encrypt(s, &Mech::new(CKM_AES_ECB), keys[0], &[1; 16]).map_err(|_| 8)?;
        step(8, ct == expected_ct)?;
        create(s, &data_tmpl("from-child", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).map_err(|_| 9)?;
        step(10, ck!(C_Finalize, ptr::null_mut()) == CKR_OK)?;
        Ok(())
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(())) => 0,
        Ok(Err(n)) => n,
        Err(_) => 99,
    }
}

/// Forks, runs `f` in the child, and returns the child's exit code (`limit` at most).
fn fork_and(limit: Duration, f: impl FnOnce() -> i32) -> i32 {
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = f();
        unsafe { libc::_exit(code) };
    }
    let start = Instant::now();
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(libc::WIFEXITED(status), "child died abnormally (status {status:#x})");
            return libc::WEXITSTATUS(status);
        }
        if start.elapsed() > limit {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("child hung for {limit:?} (deadlock after fork?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forked_child_reinitializes_and_sees_token_objects() {
    let slot = fx().token();
    let s = user_session(slot);
    create(s, &data_tmpl("before-fork", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).unwrap();
    let k = aes_key(s, &[7; 16], &[ab(CKA_TOKEN, true), av(CKA_LABEL, "fork-key")]);
    let ct = encrypt(s, &Mech::new(CKM_AES_ECB), k, &[1; 16]).unwrap();
    // Leave an operation active in the parent at fork time, too.
    digest_init(s, CKM_SHA256).unwrap();

    for variant in [Variant::InitializeOnly, Variant::FinalizeThenInitialize] {
        let code = fork_and(Duration::from_secs(60), || child(slot, variant, &ct));
        let what = STEPS.get(code as usize).copied().unwrap_or("panic in child");
        assert_eq!(code, 0, "{variant:?}: child failed at step {code}: {what}");
    }

    // The parent is unaffected and sees what the children created.
    assert_eq!(state(s), CKS_RW_USER_FUNCTIONS);
    digest_update(s, b"abc").unwrap();
    assert_eq!(digest_final(s).unwrap(), hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_eq!(find_label(s, "from-child").len(), 2);
    assert_eq!(encrypt(s, &Mech::new(CKM_AES_ECB), k, &[1; 16]).unwrap(), ct);
    close(s).unwrap();

    // KEYFRONT_NO_CORE_DUMPS=1 makes the process undumpable at C_Initialize (checked in a
    // child, so this process keeps its core dumps); without it nothing changes.
    let dumpable = || unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    assert_eq!(dumpable(), 1, "the test process starts dumpable");
    let code = fork_and(Duration::from_secs(60), || {
        std::env::set_var("KEYFRONT_NO_CORE_DUMPS", "1");
        let _ = ck!(C_Finalize, ptr::null_mut());
        if ck!(C_Initialize, ptr::null_mut()) != CKR_OK {
            return 1;
        }
        if dumpable() != 0 {
            return 2;
        }
        let _ = ck!(C_Finalize, ptr::null_mut());
        0
    });
    assert_eq!(code, 0, "KEYFRONT_NO_CORE_DUMPS child: 1 = C_Initialize failed, 2 = still dumpable");
    assert_eq!(dumpable(), 1, "the C_Initialize in this process left it dumpable");

    fork_while_another_thread_initializes(slot);
}

/// fork() while another thread of the parent is inside C_Initialize or C_Finalize (which
/// hold the module's change lock nearly all the time in this loop): every child still
/// initialises, reads the token and finalises. (Part of the one test of this binary: it
/// finalises the module under the parent's feet.)
fn fork_while_another_thread_initializes(slot: CK_SLOT_ID) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicUsize::new(0));
    let busy = {
        let (stop, cycles) = (stop.clone(), cycles.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = ck!(C_Finalize, ptr::null_mut());
                assert_rv(ck!(C_Initialize, ptr::null_mut()), CKR_OK);
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while cycles.load(Ordering::Relaxed) < 10 {
        std::thread::sleep(Duration::from_millis(1));
    }
    for round in 0..20 {
        let code = fork_and(Duration::from_secs(10), || {
            if ck!(C_Initialize, ptr::null_mut()) != CKR_OK {
                return 1;
            }
            if token_info(slot).is_err() {
                return 2;
            }
            if ck!(C_Finalize, ptr::null_mut()) != CKR_OK {
                return 3;
            }
            0
        });
        assert_eq!(code, 0, "round {round}: child failed (1 = C_Initialize, 2 = C_GetTokenInfo, 3 = C_Finalize)");
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    assert!(cycles.load(Ordering::Relaxed) > 20, "the other thread kept initialising");
}

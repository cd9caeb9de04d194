//! Two processes on one token file. The test binary re-executes one of its own tests as the
//! second process (`run_child`); the parent stays initialised throughout.
mod common;
use common::*;

const CHILD_KEY: [u8; 16] = *b"child-made-key!!";
const NEW_PIN: &[u8] = b"unlocked-user-pin";

fn ecb(s: CK_SESSION_HANDLE, k: CK_OBJECT_HANDLE) -> Vec<u8> {
    encrypt(s, &Mech::new(CKM_AES_ECB), k, &[0x10; 16]).unwrap()
}

fn finalize_child() {
    assert_rv(ck!(C_Finalize, std::ptr::null_mut()), CKR_OK);
}

#[test]
fn two_processes_share_one_token_file() {
    if let Some(role) = child_role() {
        let slot = child_slot();
        fx();
        match role.as_str() {
            "create" => {
                let s = user_session(slot);
                assert_eq!(find_label(s, "from-parent").len(), 0);
                create(s, &data_tmpl("from-child", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).unwrap();
                aes_key(s, &CHILD_KEY, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "child-key")]);
            }
            "check" => {
                let s = open(slot, false).unwrap();
                assert_eq!(state(s), CKS_RO_PUBLIC_SESSION, "the parent's login leaked into this process");
                assert!(find_label(s, "parent-session-obj").is_empty(), "another process's session object is visible");
                assert_eq!(find_label(s, "from-parent").len(), 1, "child does not see the parent's object");
                assert!(find_label(s, "from-child").is_empty(), "child still sees an object the parent destroyed");
                let i = token_info(slot).unwrap();
                assert_eq!(trimmed(&i.label), "test");
                // Change what the parent holds handles to.
                let w = user_session(slot);
                let p = find_label(w, "from-parent");
                set_attrs(w, p[0], &[av(CKA_LABEL, "renamed-by-child")]).unwrap();
                destroy(w, find_label(w, "destroy-me")[0]).unwrap();
            }
            r => panic!("unknown role {r}"),
        }
        finalize_child();
        return child_done(&role);
    }

    let slot = fx().token();
    let s = user_session(slot);
    assert!(find_label(s, "from-child").is_empty());
    run_child("two_processes_share_one_token_file", slot, "create");

    // Without re-initialising, a new search sees the child's objects.
    assert_eq!(find_label(s, "from-child").len(), 1, "parent does not see the child's public object");
    let keys = find_label(s, "child-key");
    assert_eq!(keys.len(), 1, "parent does not see the child's private key");
    let mine = aes_key(s, &CHILD_KEY, &[]);
    assert_eq!(ecb(s, keys[0]), ecb(s, mine), "the child's key has another value in the parent");

    create(s, &data_tmpl("from-parent", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).unwrap();
    create(s, &data_tmpl("parent-session-obj", &[ab(CKA_PRIVATE, false)])).unwrap();
    let from_parent = find_label(s, "from-parent")[0];
    let doomed = create(s, &data_tmpl("destroy-me", &[ab(CKA_TOKEN, true)])).unwrap();
    destroy(s, find_label(s, "from-child")[0]).unwrap();
    run_child("two_processes_share_one_token_file", slot, "check");
    // The child's changes show through the parent's existing handles (no stale cache).
    assert_eq!(get_attr(s, from_parent, CKA_LABEL).unwrap(), b"renamed-by-child");
    assert_eq!(find_label(s, "renamed-by-child"), vec![from_parent]);
    expect_rv(get_attr(s, doomed, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    assert!(find_label(s, "destroy-me").is_empty());
    close(s).unwrap();
}

#[test]
fn token_initialised_by_another_process() {
    if let Some(role) = child_role() {
        let slot = child_slot();
        fx();
        assert_eq!(role, "init");
        init_token(slot, SO_PIN, "child-initialised").unwrap();
        let s = open(slot, true).unwrap();
        login(s, CKU_SO, SO_PIN).unwrap();
        init_pin(s, b"child-user-pin").unwrap();
        close(s).unwrap();
        finalize_child();
        return child_done(&role);
    }
    let slot = fx().slot();
    assert_eq!(token_flags(slot) & CKF_TOKEN_INITIALIZED, 0);
    run_child("token_initialised_by_another_process", slot, "init");
    let ti = token_info(slot).unwrap();
    assert_eq!(trimmed(&ti.label), "child-initialised");
    assert_ne!(ti.flags & CKF_TOKEN_INITIALIZED, 0);
    assert_ne!(ti.flags & CKF_USER_PIN_INITIALIZED, 0);
    let s = open(slot, true).unwrap();
    login(s, CKU_USER, b"child-user-pin").unwrap();
    create(s, &data_tmpl("after-remote-init", &[ab(CKA_TOKEN, true)])).unwrap();
    close(s).unwrap();
}

#[test]
fn lockout_holds_across_processes() {
    if let Some(role) = child_role() {
        let slot = child_slot();
        fx();
        let s = open(slot, true).unwrap();
        match role.as_str() {
            "fail" => {
                let f = token_flags(slot);
                assert_ne!(f & CKF_USER_PIN_COUNT_LOW, 0, "the parent's failures are not counted here");
                for i in 0..4 {
                    expect_rv(login(s, CKU_USER, format!("child-wrong-{i}").as_bytes()), CKR_PIN_INCORRECT);
                }
                assert_ne!(token_flags(slot) & CKF_USER_PIN_FINAL_TRY, 0, "9 failures in total: FINAL_TRY");
                expect_one_of(login(s, CKU_USER, b"child-wrong-last"), &[CKR_PIN_INCORRECT, CKR_PIN_LOCKED]);
                assert_ne!(token_flags(slot) & CKF_USER_PIN_LOCKED, 0);
                expect_rv(login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED);
            }
            "unlocked" => {
                let f = token_flags(slot);
                assert_eq!(f & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW), 0);
                expect_rv(login(s, CKU_USER, USER_PIN), CKR_PIN_INCORRECT);
                login(s, CKU_USER, NEW_PIN).unwrap();
            }
            r => panic!("unknown role {r}"),
        }
        close(s).unwrap();
        finalize_child();
        return child_done(&role);
    }

    let slot = fx().token();
    let s = open(slot, true).unwrap();
    for i in 0..5 {
        expect_rv(login(s, CKU_USER, format!("parent-wrong-{i}").as_bytes()), CKR_PIN_INCORRECT);
    }
    run_child("lockout_holds_across_processes", slot, "fail");
    assert_ne!(token_flags(slot) & CKF_USER_PIN_LOCKED, 0, "parent does not see the lockout");
    expect_rv(login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED);

    login(s, CKU_SO, SO_PIN).unwrap();
    init_pin(s, NEW_PIN).unwrap();
    logout(s).unwrap();
    run_child("lockout_holds_across_processes", slot, "unlocked");
    login(s, CKU_USER, NEW_PIN).unwrap();
    close(s).unwrap();
}

/// Another process re-initialises the token while this one is logged in: the token key this
/// process holds is discarded, with everything sealed under it. At its next use of the token
/// this process is logged out (as at C_Logout): nothing is sealed under the old key, and the
/// new token's private objects stay hidden until it logs in with the new PIN.
#[test]
fn reinitialised_by_another_process_while_logged_in() {
    if let Some(role) = child_role() {
        let slot = child_slot();
        fx();
        init_token(slot, SO_PIN, "reinitialised").unwrap();
        let s = open(slot, true).unwrap();
        login(s, CKU_SO, SO_PIN).unwrap();
        init_pin(s, NEW_PIN).unwrap();
        logout(s).unwrap();
        login(s, CKU_USER, NEW_PIN).unwrap();
        let secret = [ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true), av(CKA_VALUE, b"the new token's secret")];
        create(s, &data_tmpl(&format!("secret-{role}"), &secret)).unwrap();
        close(s).unwrap();
        finalize_child();
        return child_done(&role);
    }
    let test = "reinitialised_by_another_process_while_logged_in";
    let slot = fx().token();
    let s = user_session(slot);
    let old_key = aes_key(s, &CHILD_KEY, &[ab(CKA_TOKEN, true)]);
    ecb(s, old_key);

    // The first use after the re-initialisation is a write.
    run_child(test, slot, "write-first");
    assert_eq!(state(s), CKS_RW_USER_FUNCTIONS, "nothing has told this process yet");
    let stale = aes_tmpl(&CHILD_KEY, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "sealed-under-old-key")]);
    expect_rv(create(s, &stale), CKR_USER_NOT_LOGGED_IN);
    assert_eq!(state(s), CKS_RW_PUBLIC_SESSION, "the lost login still counts");
    expect_rv(encrypt_init(s, &Mech::new(CKM_AES_ECB), old_key), CKR_KEY_HANDLE_INVALID);
    assert!(find(s, &[]).unwrap().is_empty(), "the new token's private object is visible");
    expect_rv(login(s, CKU_USER, USER_PIN), CKR_PIN_INCORRECT);
    login(s, CKU_USER, NEW_PIN).unwrap();
    assert_eq!(find_label(s, "secret-write-first").len(), 1);
    assert!(find_label(s, "sealed-under-old-key").is_empty());

    // The first use is a search.
    let before = find_label(s, "secret-write-first")[0];
    run_child(test, slot, "search-first");
    assert!(find(s, &[]).unwrap().is_empty(), "the new token's private object is visible");
    assert_eq!(state(s), CKS_RW_PUBLIC_SESSION);
    expect_rv(get_attr(s, before, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    login(s, CKU_USER, NEW_PIN).unwrap();
    let found = find_label(s, "secret-search-first");
    assert_eq!(found.len(), 1);
    assert_eq!(get_attr(s, found[0], CKA_VALUE).unwrap(), b"the new token's secret");
    close(s).unwrap();
}

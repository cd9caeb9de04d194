//! Object management: create/copy/destroy, attributes, find, key policy attributes.
mod common;
use common::*;

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::ptr;

const BLOCK: [u8; 16] = [0x5a; 16];

fn label_of(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> String {
    String::from_utf8(get_attr(s, o, CKA_LABEL).unwrap()).unwrap()
}

fn set(v: Vec<CK_OBJECT_HANDLE>) -> BTreeSet<CK_OBJECT_HANDLE> {
    v.into_iter().collect()
}

/// The code a call returned, CKR_OK included.
fn code_of<T>(r: R<T>) -> CK_RV {
    match r {
        Ok(_) => CKR_OK,
        Err(Ck(code)) => code,
    }
}

/// What a template adds for a secret key that a test wants sensitive by default: nothing
/// on keyfront's soft token, whose default it is; `CKA_SENSITIVE = true` on SoftHSM2, whose
/// secret keys are not sensitive unless the template says so (create_data_and_secret_keys
/// checks both defaults).
fn sensitive_by_default() -> Vec<Attr> {
    if backend().is_soft() {
        vec![]
    } else {
        vec![ab(CKA_SENSITIVE, true)]
    }
}

#[test]
fn session_and_token_objects() {
    let slot = fx().token();
    let s1 = user_session(slot);
    let s2 = open(slot, true).unwrap();
    let sess = create(s1, &data_tmpl("sess", &[])).unwrap();
    let tok = create(s1, &data_tmpl("tok", &[ab(CKA_TOKEN, true)])).unwrap();
    assert!(!get_bool(s1, sess, CKA_TOKEN).unwrap(), "CKA_TOKEN defaults to false");
    assert!(get_bool(s1, tok, CKA_TOKEN).unwrap());
    assert_eq!(find_label(s2, "sess"), vec![sess], "session objects are visible to the application's other sessions");
    assert_eq!(find_label(s2, "tok"), vec![tok]);

    close(s1).unwrap();
    expect_rv(get_attr(s2, sess, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    assert!(find_label(s2, "sess").is_empty(), "session object outlived its session");
    assert_eq!(find_label(s2, "tok"), vec![tok]);

    let ro = open(slot, false).unwrap();
    expect_rv(create(ro, &data_tmpl("ro-tok", &[ab(CKA_TOKEN, true)])), CKR_SESSION_READ_ONLY);
    let ro_sess = create(ro, &data_tmpl("ro-sess", &[])).expect("session object in an RO session");
    expect_rv(destroy(ro, tok), CKR_SESSION_READ_ONLY);
    expect_rv(set_attrs(ro, tok, &[av(CKA_LABEL, "renamed")]), CKR_SESSION_READ_ONLY);
    expect_rv(copy(ro, ro_sess, &[ab(CKA_TOKEN, true)]), CKR_SESSION_READ_ONLY);
    destroy(ro, ro_sess).unwrap();
    assert_eq!(label_of(ro, tok), "tok");
}

/// C_Logout (PKCS#11 3.0 §5.6): the application's handles to private objects become
/// invalid, and stay so after a new login (the objects are found again under new handles);
/// private session objects are destroyed, whichever of the application's sessions made
/// them. Public objects keep their handles.
#[test]
fn private_objects_need_login() {
    let slot = fx().token();
    let s = user_session(slot);
    let other = open(slot, true).unwrap();
    let private = create(s, &data_tmpl("priv", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true)])).unwrap();
    let public = create(s, &data_tmpl("pub", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).unwrap();
    let key = aes_key(s, &[1; 16], &[ab(CKA_TOKEN, true), av(CKA_LABEL, "key")]);
    assert!(get_bool(s, key, CKA_PRIVATE).unwrap(), "secret keys are private by default");
    let sess_priv = create(other, &data_tmpl("sess-priv", &[ab(CKA_PRIVATE, true)])).unwrap();
    let sess_pub = create(other, &data_tmpl("sess-pub", &[ab(CKA_PRIVATE, false)])).unwrap();
    let ecb = Mech::new(CKM_AES_ECB);
    let want = encrypt(s, &ecb, key, &BLOCK).unwrap();
    // A search begun while logged in, and never read.
    assert_rv(ck!(C_FindObjectsInit, other, ptr::null_mut(), 0), CKR_OK);
    logout(s).unwrap();

    let mut buf = [CK_INVALID_HANDLE; 16];
    let mut n = 0;
    assert_rv(ck!(C_FindObjects, other, buf.as_mut_ptr(), 16, &mut n), CKR_OK);
    // On a forwarding slot too: keyfront forgets the handles the vendor invalidated.
    assert_eq!(set(buf[..n as usize].to_vec()), set(vec![public, sess_pub]), "the search hands out no invalidated handle");
    assert_rv(ck!(C_FindObjectsFinal, other), CKR_OK);
    assert_eq!(set(find(s, &[]).unwrap()), set(vec![public, sess_pub]), "only the public objects are visible");
    assert!(find_label(s, "priv").is_empty());
    for h in [private, key, sess_priv] {
        expect_rv(get_attr(s, h, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    }
    expect_rv(encrypt_init(s, &ecb, key), CKR_KEY_HANDLE_INVALID);
    assert_eq!((label_of(s, public), label_of(other, sess_pub)), ("pub".into(), "sess-pub".into()));
    expect_rv(create(s, &data_tmpl("x", &[ab(CKA_PRIVATE, true)])), CKR_USER_NOT_LOGGED_IN);
    expect_rv(create(s, &aes_tmpl(&[1; 16], &[])), CKR_USER_NOT_LOGGED_IN);

    login(s, CKU_USER, USER_PIN).unwrap();
    for h in [private, key, sess_priv] {
        expect_rv(get_attr(s, h, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    }
    expect_rv(encrypt_init(s, &ecb, key), CKR_KEY_HANDLE_INVALID);
    let found = set(find(s, &[]).unwrap());
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.contains(&public) && found.contains(&sess_pub), "public objects keep their handles: {found:?}");
    assert!(find_label(s, "sess-priv").is_empty(), "a private session object outlived C_Logout");
    let (again_priv, again_key) = (find_label(s, "priv"), find_label(s, "key"));
    assert_eq!((again_priv.len(), again_key.len()), (1, 1));
    assert!(again_priv[0] != private && again_key[0] != key, "a private object came back under its old handle");
    assert_eq!(label_of(s, again_priv[0]), "priv");
    assert_eq!(encrypt(s, &ecb, again_key[0], &BLOCK).unwrap(), want);
    close(other).unwrap();
    close(s).unwrap();
}

/// An operation begun with a private key before C_Logout: PKCS#11 leaves it to the token
/// whether it goes on. keyfront lets it finish, as SoftHSM2 does (the key's handle is
/// invalid from the logout on all the same).
#[test]
fn operation_begun_before_logout_finishes() {
    let slot = fx().token();
    let s = user_session(slot);
    let ecb = Mech::new(CKM_AES_ECB);
    let key = aes_key(s, &[9; 16], &[ab(CKA_TOKEN, true)]);
    let want = encrypt(s, &ecb, key, &BLOCK).unwrap();
    encrypt_init(s, &ecb, key).unwrap();
    logout(s).unwrap();
    let got = two_call(|o, l| ck!(C_Encrypt, s, BLOCK.as_ptr() as *mut u8, BLOCK.len() as CK_ULONG, o, l)).unwrap();
    assert_eq!(got, want);
    expect_rv(encrypt_init(s, &ecb, key), CKR_KEY_HANDLE_INVALID);
    close(s).unwrap();
}

/// Closing the application's last session on a token logs it out (PKCS#11 3.0 §5.6,
/// C_CloseSession): the handles of private token objects go as at C_Logout, and the
/// closed sessions' objects are gone.
#[test]
fn closing_last_session_logs_out() {
    let slot = fx().token();
    let s = user_session(slot);
    let private = create(s, &data_tmpl("priv", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true)])).unwrap();
    let public = create(s, &data_tmpl("pub", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).unwrap();
    let sess_priv = create(s, &data_tmpl("sess-priv", &[ab(CKA_PRIVATE, true)])).unwrap();
    close(s).unwrap();

    let s = open(slot, true).unwrap();
    assert_eq!(state(s), CKS_RW_PUBLIC_SESSION);
    login(s, CKU_USER, USER_PIN).unwrap();
    for h in [private, sess_priv] {
        expect_rv(get_attr(s, h, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    }
    assert!(find_label(s, "sess-priv").is_empty());
    let again = find_label(s, "priv");
    assert!(again.len() == 1 && again[0] != private, "{again:?} (was {private})");
    if backend().is_soft() {
        assert_eq!(find_label(s, "pub"), vec![public], "a public token object keeps its handle");
    } else {
        // SoftHSM2 forgets every object handle of a slot when its last session closes, which
        // PKCS#11 allows (a handle is only promised for as long as a session is open).
        skip_note("SoftHSM2 gives public token objects new handles after the last session closed");
        assert_eq!(find_label(s, "pub").len(), 1);
    }
    close(s).unwrap();
}

#[test]
fn create_data_and_secret_keys() {
    let s = user_session(fx().token());
    let d = create(s, &data_tmpl("d1", &[av(CKA_APPLICATION, "app"), av(CKA_VALUE, b"\x00\x01payload")])).unwrap();
    assert_eq!(get_ulong(s, d, CKA_CLASS).unwrap(), CKO_DATA);
    assert_eq!(get_attr(s, d, CKA_VALUE).unwrap(), b"\x00\x01payload");
    assert_eq!(get_attr(s, d, CKA_APPLICATION).unwrap(), b"app");
    assert!(!get_bool(s, d, CKA_TOKEN).unwrap());

    for len in [16usize, 24, 32] {
        let v: Vec<u8> = (0..len as u8).collect();
        let k = aes_key(s, &v, &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]);
        assert_eq!(get_ulong(s, k, CKA_CLASS).unwrap(), CKO_SECRET_KEY);
        assert_eq!(get_ulong(s, k, CKA_KEY_TYPE).unwrap(), CKK_AES);
        assert_eq!(get_ulong(s, k, CKA_VALUE_LEN).unwrap(), len as CK_ULONG);
        assert_eq!(get_attr(s, k, CKA_VALUE).unwrap(), v);
    }
    let g = create(s, &generic_tmpl(&[7; 20], &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)])).unwrap();
    assert_eq!(get_ulong(s, g, CKA_KEY_TYPE).unwrap(), CKK_GENERIC_SECRET);
    assert_eq!(get_ulong(s, g, CKA_VALUE_LEN).unwrap(), 20);
    assert_eq!(get_attr(s, g, CKA_VALUE).unwrap(), vec![7; 20]);

    // Defaults, for an imported and for a generated key. SoftHSM2's differ in one: its
    // secret keys are not sensitive unless the template says so.
    let imported = aes_key(s, &[2; 16], &[]);
    let generated = gen_aes(s, 16, &[]).unwrap();
    for k in [imported, generated] {
        for (attr, want) in [
            (CKA_SENSITIVE, backend().is_soft()), (CKA_EXTRACTABLE, false), (CKA_PRIVATE, true), (CKA_TOKEN, false),
            (CKA_ENCRYPT, true), (CKA_DECRYPT, true), (CKA_SIGN, true), (CKA_VERIFY, true),
            (CKA_WRAP, true), (CKA_UNWRAP, true), (CKA_DERIVE, false),
            (CKA_MODIFIABLE, true), (CKA_COPYABLE, true), (CKA_DESTROYABLE, true),
        ] {
            assert_eq!(get_bool(s, k, attr).unwrap(), want, "default of attribute 0x{attr:x} (key {k})");
        }
    }
    close(s).unwrap();
}

/// CKA_UNIQUE_ID (new in 3.0): generated by the token for every object, distinct, read-only.
#[test]
fn unique_id_attribute() {
    let slot = fx().token();
    let s = user_session(slot);
    let d = create(s, &data_tmpl("u1", &[])).unwrap();
    let k = aes_key(s, &[1; 16], &[]);
    if backend().is_forwarded() {
        // SoftHSM2 2.6.1 (PKCS#11 2.40) does not know CKA_UNIQUE_ID, and says so.
        skip_note("SoftHSM2 2.6.1 has no CKA_UNIQUE_ID: CKR_ATTRIBUTE_TYPE_INVALID checked instead");
        for h in [d, k] {
            expect_rv(get_attr(s, h, CKA_UNIQUE_ID), CKR_ATTRIBUTE_TYPE_INVALID);
        }
        let vs = vendor_session(slot);
        let t = aes_tmpl(&[1; 16], &[av(CKA_UNIQUE_ID, "mine")]);
        let mismatch = same_as_vendor("create with CKA_UNIQUE_ID", (s, create(s, &t)), (vs, vendor_create(vs, &t)));
        assert_eq!(mismatch, None);
        assert_rv(unsafe { vendor().C_CloseSession.unwrap()(vs) }, CKR_OK);
        close(s).unwrap();
        return;
    }
    let u1 = get_attr(s, d, CKA_UNIQUE_ID).unwrap();
    let u2 = get_attr(s, k, CKA_UNIQUE_ID).unwrap();
    assert!(!u1.is_empty() && u1 != u2, "CKA_UNIQUE_ID {u1:?} / {u2:?}");
    let c = copy(s, k, &[]).unwrap();
    assert_ne!(get_attr(s, c, CKA_UNIQUE_ID).unwrap(), u2, "a copy gets its own CKA_UNIQUE_ID");
    expect_rv(set_attrs(s, d, &[av(CKA_UNIQUE_ID, "other")]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(create(s, &aes_tmpl(&[1; 16], &[av(CKA_UNIQUE_ID, "mine")])), CKR_ATTRIBUTE_READ_ONLY);
    close(s).unwrap();
}

#[test]
fn create_template_errors() {
    let slot = fx().token();
    let s = user_session(slot);
    let sk = au(CKA_CLASS, CKO_SECRET_KEY);
    let aes = au(CKA_KEY_TYPE, CKK_AES);
    let v16 = av(CKA_VALUE, [0u8; 16]);
    if backend().is_soft() {
        expect_rv(create(s, &[sk.clone(), aes.clone()]), CKR_TEMPLATE_INCOMPLETE);
        expect_rv(create(s, &[aes.clone(), v16.clone()]), CKR_TEMPLATE_INCOMPLETE);
        expect_rv(create(s, &[sk.clone(), v16.clone()]), CKR_TEMPLATE_INCOMPLETE);
        for n in [0usize, 1, 8, 15, 17, 31, 33, 64] {
            expect_rv(create(s, &aes_tmpl(&vec![1u8; n], &[])), CKR_ATTRIBUTE_VALUE_INVALID);
        }
        // Malformed values: CK_BBOOL must be one byte, CK_ULONG must be sizeof(CK_ULONG).
        expect_rv(create(s, &aes_tmpl(&[1; 16], &[(CKA_TOKEN, vec![1, 0])])), CKR_ATTRIBUTE_VALUE_INVALID);
        expect_rv(create(s, &aes_tmpl(&[1; 16], &[(CKA_SENSITIVE, vec![])])), CKR_ATTRIBUTE_VALUE_INVALID);
        expect_rv(create(s, &aes_tmpl(&[1; 16], &[(CKA_KEY_TYPE, vec![0x1f, 0, 0, 0])])), CKR_ATTRIBUTE_VALUE_INVALID);
        // Attributes only the token sets.
        expect_rv(create(s, &aes_tmpl(&[1; 16], &[ab(CKA_LOCAL, true)])), CKR_ATTRIBUTE_READ_ONLY);
        for bad in [ab(CKA_ALWAYS_SENSITIVE, true), ab(CKA_NEVER_EXTRACTABLE, true), au(CKA_KEY_GEN_MECHANISM, CKM_AES_KEY_GEN)] {
            expect_one_of(create(s, &aes_tmpl(&[1; 16], &[bad])), &[CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT]);
        }
        // CKA_VALUE_LEN must not be given with C_CreateObject (PKCS#11 3.0 §6.7.2,
        // footnote 2), whether it agrees with CKA_VALUE or not.
        for len in [16, 32] {
            expect_rv(create(s, &aes_tmpl(&[1; 16], &[au(CKA_VALUE_LEN, len)])), CKR_ATTRIBUTE_READ_ONLY);
            expect_rv(create(s, &generic_tmpl(&[1; 16], &[au(CKA_VALUE_LEN, len)])), CKR_ATTRIBUTE_READ_ONLY);
        }
        // CKA_ID is not an attribute of data objects.
        expect_one_of(create(s, &data_tmpl("d", &[av(CKA_ID, [1])])), &[CKR_ATTRIBUTE_TYPE_INVALID, CKR_TEMPLATE_INCONSISTENT]);
        expect_rv(create(s, &aes_tmpl(&[1; 16], &[av(CKA_VENDOR_DEFINED | 0x4242, b"?")])), CKR_ATTRIBUTE_TYPE_INVALID);
        // Key type / class inconsistent with the generation mechanism.
        expect_rv(gen_aes(s, 16, &[au(CKA_KEY_TYPE, CKK_GENERIC_SECRET)]), CKR_TEMPLATE_INCONSISTENT);
        expect_rv(gen_aes(s, 16, &[au(CKA_CLASS, CKO_DATA)]), CKR_TEMPLATE_INCONSISTENT);
        expect_rv(gen_key(s, &Mech::new(CKM_AES_KEY_GEN), &[]), CKR_TEMPLATE_INCOMPLETE);
        expect_rv(gen_key(s, &Mech::new(CKM_GENERIC_SECRET_KEY_GEN), &[]), CKR_TEMPLATE_INCOMPLETE);
    } else {
        create_errors_like_vendor(slot, s);
    }

    let ro = open(slot, false).unwrap();
    expect_rv(create(ro, &aes_tmpl(&[1; 16], &[ab(CKA_TOKEN, true)])), CKR_SESSION_READ_ONLY);
    expect_rv(gen_aes(ro, 16, &[ab(CKA_TOKEN, true)]), CKR_SESSION_READ_ONLY);
    close(ro).unwrap();

    let mut h = 0;
    assert_rv(ck!(C_CreateObject, s, ptr::null_mut(), 1, &mut h), CKR_ARGUMENTS_BAD);
    // A NULL value pointer with a non-zero length must be refused, not dereferenced.
    let mut t = [
        CK_ATTRIBUTE { type_: CKA_CLASS, pValue: &CKO_DATA as *const _ as *mut c_void, ulValueLen: 8 },
        CK_ATTRIBUTE { type_: CKA_LABEL, pValue: ptr::null_mut(), ulValueLen: 16 },
    ];
    let rv = ck!(C_CreateObject, s, t.as_mut_ptr(), 2, &mut h);
    assert!(rv == CKR_ARGUMENTS_BAD || rv == CKR_ATTRIBUTE_VALUE_INVALID, "NULL pValue with length 16: {}", rv_name(rv));
    // Nothing above left an object behind.
    assert!(find(s, &[]).unwrap().is_empty());
    close(s).unwrap();
}

/// create_template_errors on a forwarding slot: attribute rules are the vendor's there, so
/// each template must get what SoftHSM2 itself answers (it is laxer: AES values of any
/// length, CKA_ID on data objects…). SoftHSM2 leaves an empty session object behind after
/// most failed C_CreateObject calls, directly as through keyfront, until its session closes:
/// the cases run in sessions of their own, and `outer` must see nothing of them after.
fn create_errors_like_vendor(slot: CK_SLOT_ID, outer: CK_SESSION_HANDLE) {
    skip_note("template rules are SoftHSM2's: every case compared with SoftHSM2's own answer");
    let sk = au(CKA_CLASS, CKO_SECRET_KEY);
    let aes = au(CKA_KEY_TYPE, CKK_AES);
    let v16 = av(CKA_VALUE, [0u8; 16]);
    let s = open(slot, true).unwrap();
    let vs = vendor_session(slot);
    let mut cases: Vec<(String, Vec<Attr>)> = vec![
        ("class+type".into(), vec![sk.clone(), aes.clone()]),
        ("type+value".into(), vec![aes.clone(), v16.clone()]),
        ("class+value".into(), vec![sk.clone(), v16.clone()]),
    ];
    for n in [0usize, 1, 8, 15, 17, 31, 33, 64] {
        cases.push((format!("AES value of {n} bytes"), aes_tmpl(&vec![1u8; n], &[])));
    }
    for (what, extra) in [
        ("2-byte CKA_TOKEN", (CKA_TOKEN, vec![1, 0])),
        ("empty CKA_SENSITIVE", (CKA_SENSITIVE, vec![])),
        ("4-byte CKA_KEY_TYPE", (CKA_KEY_TYPE, vec![0x1f, 0, 0, 0])),
        ("CKA_LOCAL", ab(CKA_LOCAL, true)),
        ("CKA_ALWAYS_SENSITIVE", ab(CKA_ALWAYS_SENSITIVE, true)),
        ("CKA_NEVER_EXTRACTABLE", ab(CKA_NEVER_EXTRACTABLE, true)),
        ("CKA_KEY_GEN_MECHANISM", au(CKA_KEY_GEN_MECHANISM, CKM_AES_KEY_GEN)),
        ("CKA_VALUE_LEN", au(CKA_VALUE_LEN, 32)),
        ("vendor-defined attribute", av(CKA_VENDOR_DEFINED | 0x4242, b"?")),
    ] {
        cases.push((what.into(), aes_tmpl(&[1; 16], &[extra])));
    }
    cases.push(("CKA_ID on a data object".into(), data_tmpl("d", &[av(CKA_ID, [1])])));
    let mut mismatches: Vec<String> =
        cases.iter().filter_map(|(what, t)| same_as_vendor(what, (s, create(s, t)), (vs, vendor_create(vs, t)))).collect();
    let (aes_gen, generic_gen) = (Mech::new(CKM_AES_KEY_GEN), Mech::new(CKM_GENERIC_SECRET_KEY_GEN));
    let v16 = au(CKA_VALUE_LEN, 16);
    for (what, m, t) in [
        ("generate AES as CKK_GENERIC_SECRET", &aes_gen, vec![v16.clone(), au(CKA_KEY_TYPE, CKK_GENERIC_SECRET)]),
        ("generate AES as CKO_DATA", &aes_gen, vec![v16.clone(), au(CKA_CLASS, CKO_DATA)]),
        ("generate AES without CKA_VALUE_LEN", &aes_gen, vec![]),
        ("generate generic secret without CKA_VALUE_LEN", &generic_gen, vec![]),
    ] {
        mismatches.extend(same_as_vendor(what, (s, gen_key(s, m, &t)), (vs, vendor_gen_key(vs, m, &t))));
    }
    assert!(mismatches.is_empty(), "C_CreateObject answers differ:\n{}", mismatches.join("\n"));
    assert_rv(unsafe { vendor().C_CloseSession.unwrap()(vs) }, CKR_OK);
    close(s).unwrap();
    assert!(find(outer, &[]).unwrap().is_empty(), "objects outlived the session they were made in");
}

#[test]
fn copy_object() {
    let slot = fx().token();
    let s = user_session(slot);
    let v = [0x11u8; 32];
    let k = aes_key(s, &v, &[av(CKA_LABEL, "orig"), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]);
    let c = copy(s, k, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "copy")]).unwrap();
    assert_ne!(c, k);
    assert_eq!((label_of(s, k), label_of(s, c)), ("orig".into(), "copy".into()));
    assert_eq!((get_bool(s, k, CKA_TOKEN).unwrap(), get_bool(s, c, CKA_TOKEN).unwrap()), (false, true));
    assert_eq!(get_attr(s, c, CKA_VALUE).unwrap(), v);
    assert_eq!(find_label(s, "copy"), vec![c]);
    let ecb = Mech::new(CKM_AES_ECB);
    assert_eq!(encrypt(s, &ecb, c, &BLOCK).unwrap(), encrypt(s, &ecb, k, &BLOCK).unwrap());

    // A copy may tighten SENSITIVE / EXTRACTABLE; then it was never "always sensitive".
    let tight = copy(s, k, &[ab(CKA_SENSITIVE, true), ab(CKA_EXTRACTABLE, false)]).unwrap();
    expect_rv(get_attr(s, tight, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    assert!(!get_bool(s, tight, CKA_NEVER_EXTRACTABLE).unwrap());
    assert!(!get_bool(s, tight, CKA_ALWAYS_SENSITIVE).unwrap());
    // ... but not loosen them.
    let sens = aes_key(s, &v, &sensitive_by_default());
    expect_rv(copy(s, sens, &[ab(CKA_SENSITIVE, false)]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(copy(s, sens, &[ab(CKA_EXTRACTABLE, true)]), CKR_ATTRIBUTE_READ_ONLY);
    expect_one_of(copy(s, k, &[au(CKA_CLASS, CKO_DATA)]), &[CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT]);
    let nocopy = aes_key(s, &v, &[ab(CKA_COPYABLE, false)]);
    expect_rv(copy(s, nocopy, &[]), CKR_ACTION_PROHIBITED);
    expect_rv(copy(s, 0xdead_beef, &[]), CKR_OBJECT_HANDLE_INVALID);

    let d = create(s, &data_tmpl("data", &[])).unwrap();
    let d2 = copy(s, d, &[av(CKA_LABEL, "data-copy")]).unwrap();
    assert_eq!(get_attr(s, d2, CKA_VALUE).unwrap(), b"data");
    close(s).unwrap();
}

/// A public (CKA_PRIVATE false) token key's value is sealed like every key value on
/// keyfront's soft token, and with nobody logged in this process cannot open it: whatever
/// needs the value says so (CKR_USER_NOT_LOGGED_IN) rather than act on the key without it.
/// A copy made then was once stored without CKA_VALUE, unusable for good. SoftHSM2 keeps
/// the values of public objects in clear and serves them without a login.
#[test]
fn public_token_key_value_needs_login() {
    let slot = fx().token();
    let s = user_session(slot);
    let ecb = Mech::new(CKM_AES_ECB);
    let value = [0x42u8; 16];
    let public = [ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)];
    let k = aes_key(s, &value, &merge(public.to_vec(), &[av(CKA_LABEL, "pub-key")]));
    let want = encrypt(s, &ecb, k, &BLOCK).unwrap();
    logout(s).unwrap();
    let wrapping = aes_key(s, &[7; 16], &[ab(CKA_PRIVATE, false), ab(CKA_WRAP, true)]);

    let by_value = [au(CKA_CLASS, CKO_SECRET_KEY), av(CKA_VALUE, value)];
    let found_by_value = if backend().is_soft() { vec![] } else { vec![k] };
    assert_eq!(find(s, &by_value).unwrap(), found_by_value, "find by the sealed value, logged out");
    let not_logged_in = by_backend(CKR_USER_NOT_LOGGED_IN, CKR_OK);
    // A token copy (the bug: an RW public session), and a session copy.
    for template in [vec![], vec![ab(CKA_TOKEN, false)]] {
        match copy(s, k, &template) {
            Err(Ck(code)) => assert_rv(code, not_logged_in),
            Ok(c) => {
                assert_rv(CKR_OK, not_logged_in);
                assert_eq!(encrypt(s, &ecb, c, &BLOCK).unwrap(), want, "SoftHSM2's copy made logged out");
                destroy(s, c).unwrap();
            }
        }
    }
    assert_eq!(find_label(s, "pub-key"), vec![k], "a failed copy left a token object behind");
    assert_rv(code_of(encrypt(s, &ecb, k, &BLOCK).map(|ct| assert_eq!(ct, want))), not_logged_in);
    assert_rv(code_of(wrap(s, &Mech::new(CKM_AES_KEY_WRAP), wrapping, k)), not_logged_in);
    // C_GetAttributeValue has no CKR_USER_NOT_LOGGED_IN: the value is unavailable, the rest
    // is read as usual.
    match get_attr(s, k, CKA_VALUE) {
        Ok(v) if backend().is_forwarded() => assert_eq!(v, value),
        other => expect_rv(other, CKR_ATTRIBUTE_SENSITIVE),
    }
    assert_eq!(label_of(s, k), "pub-key");
    digest_init(s, CKM_SHA256).unwrap();
    // Not a code C_DigestKey has: the value cannot be digested now (keyfront digests locally,
    // and cannot read a forwarded token's key at all).
    assert_rv(ck!(C_DigestKey, s, k), CKR_KEY_INDIGESTIBLE);

    login(s, CKU_USER, USER_PIN).unwrap();
    let c = copy(s, k, &[av(CKA_LABEL, "pub-copy")]).unwrap();
    assert_eq!(get_attr(s, c, CKA_VALUE).unwrap(), value);
    assert_eq!(encrypt(s, &ecb, c, &BLOCK).unwrap(), want);
    assert_eq!(set(find(s, &by_value).unwrap()), set(vec![k, c]));
    close(s).unwrap();
}

#[test]
fn destroy_object() {
    let s = user_session(fx().token());
    let k = aes_key(s, &[4; 16], &[ab(CKA_TOKEN, true), av(CKA_LABEL, "doomed")]);
    destroy(s, k).unwrap();
    expect_rv(get_attr(s, k, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    expect_rv(destroy(s, k), CKR_OBJECT_HANDLE_INVALID);
    assert!(find_label(s, "doomed").is_empty());
    expect_rv(encrypt_init(s, &Mech::new(CKM_AES_ECB), k), CKR_KEY_HANDLE_INVALID);

    let keep = create(s, &data_tmpl("keep", &[ab(CKA_DESTROYABLE, false)])).unwrap();
    expect_rv(destroy(s, keep), CKR_ACTION_PROHIBITED);
    assert_eq!(find_label(s, "keep"), vec![keep]);
    close(s).unwrap();
}

/// Raw C_GetAttributeValue on a caller-built template.
fn get_raw(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: &mut [CK_ATTRIBUTE]) -> CK_RV {
    ck!(C_GetAttributeValue, s, o, t.as_mut_ptr(), t.len() as CK_ULONG)
}

fn attr(t: CK_ATTRIBUTE_TYPE, buf: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: if buf.is_empty() { ptr::null_mut() } else { buf.as_mut_ptr() as *mut c_void },
        ulValueLen: buf.len() as CK_ULONG,
    }
}

#[test]
fn get_attribute_value_rules() {
    let s = user_session(fx().token());
    let d = create(s, &data_tmpl("hello", &[])).unwrap();

    let mut t = [attr(CKA_LABEL, &mut [])];
    assert_rv(get_raw(s, d, &mut t), CKR_OK);
    assert_eq!(t[0].ulValueLen, 5, "length query");
    let mut small = [0u8; 2];
    let mut t = [attr(CKA_LABEL, &mut small)];
    assert_rv(get_raw(s, d, &mut t), CKR_BUFFER_TOO_SMALL);
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    let mut big = [0u8; 64];
    let mut t = [attr(CKA_LABEL, &mut big)];
    assert_rv(get_raw(s, d, &mut t), CKR_OK);
    assert_eq!(&big[..t[0].ulValueLen as usize], b"hello");

    let mut t = [attr(CKA_VENDOR_DEFINED | 0x4242, &mut [])];
    assert_rv(get_raw(s, d, &mut t), CKR_ATTRIBUTE_TYPE_INVALID);
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    expect_rv(get_attr(s, d, CKA_KEY_TYPE), CKR_ATTRIBUTE_TYPE_INVALID);

    let k = aes_key(s, &[3; 16], &merge(sensitive_by_default(), &[ab(CKA_EXTRACTABLE, true)]));
    let mut t = [attr(CKA_VALUE, &mut [])];
    assert_rv(get_raw(s, k, &mut t), CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    // Every attribute is processed even when one is sensitive.
    let (mut l, mut v, mut c) = ([0u8; 16], [0u8; 32], [0u8; 8]);
    let mut t = [attr(CKA_LABEL, &mut l), attr(CKA_VALUE, &mut v), attr(CKA_CLASS, &mut c)];
    assert_rv(get_raw(s, k, &mut t), CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(v, [0u8; 32], "bytes written into the buffer of a sensitive attribute");
    assert_eq!(t[2].ulValueLen as usize, std::mem::size_of::<CK_ULONG>());
    assert_eq!(CK_ULONG::from_ne_bytes(c), CKO_SECRET_KEY);
    // ... and when one has an unknown type.
    let mut c = [0u8; 8];
    let mut t = [attr(CKA_VENDOR_DEFINED | 1, &mut []), attr(CKA_CLASS, &mut c)];
    assert_rv(get_raw(s, d, &mut t), CKR_ATTRIBUTE_TYPE_INVALID);
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(CK_ULONG::from_ne_bytes(c), CKO_DATA);

    let plain = aes_key(s, &[3; 16], &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]);
    assert_eq!(get_attr(s, plain, CKA_VALUE).unwrap(), vec![3; 16], "non-sensitive extractable value is readable");
    // Not sensitive but not extractable either: still not revealed.
    let stuck = aes_key(s, &[3; 16], &[ab(CKA_SENSITIVE, false)]);
    expect_rv(get_attr(s, stuck, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    expect_rv(get_attr(s, 0xdead_beef, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    assert_rv(ck!(C_GetAttributeValue, s, d, ptr::null_mut(), 1), CKR_ARGUMENTS_BAD);
    close(s).unwrap();
}

#[test]
fn set_attribute_value_rules() {
    let s = user_session(fx().token());
    let k = aes_key(s, &[5; 16], &merge(sensitive_by_default(), &[av(CKA_LABEL, "before")]));
    set_attrs(s, k, &[av(CKA_LABEL, "after")]).unwrap();
    assert_eq!(label_of(s, k), "after");
    set_attrs(s, k, &[av(CKA_ID, [1, 2, 3]), ab(CKA_ENCRYPT, false)]).unwrap();
    assert_eq!(get_attr(s, k, CKA_ID).unwrap(), vec![1, 2, 3]);
    assert!(!get_bool(s, k, CKA_ENCRYPT).unwrap());

    expect_rv(set_attrs(s, k, &[au(CKA_CLASS, CKO_DATA)]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(set_attrs(s, k, &[au(CKA_KEY_TYPE, CKK_GENERIC_SECRET)]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(set_attrs(s, k, &[av(CKA_VALUE, [6; 16])]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(set_attrs(s, k, &[ab(CKA_SENSITIVE, false)]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(set_attrs(s, k, &[ab(CKA_EXTRACTABLE, true)]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(set_attrs(s, k, &[ab(CKA_LOCAL, true)]), CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(set_attrs(s, k, &[av(CKA_VENDOR_DEFINED | 0x4242, b"?")]), CKR_ATTRIBUTE_TYPE_INVALID);
    expect_rv(set_attrs(s, k, &[(CKA_DECRYPT, vec![1, 1])]), CKR_ATTRIBUTE_VALUE_INVALID);
    assert!(get_bool(s, k, CKA_SENSITIVE).unwrap());
    assert!(!get_bool(s, k, CKA_EXTRACTABLE).unwrap());

    let loose = aes_key(s, &[5; 16], &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]);
    set_attrs(s, loose, &[ab(CKA_SENSITIVE, true)]).unwrap();
    set_attrs(s, loose, &[ab(CKA_EXTRACTABLE, false)]).unwrap();
    assert!(!get_bool(s, loose, CKA_ALWAYS_SENSITIVE).unwrap());
    assert!(!get_bool(s, loose, CKA_NEVER_EXTRACTABLE).unwrap());
    expect_rv(get_attr(s, loose, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    expect_rv(set_attrs(s, loose, &[ab(CKA_SENSITIVE, false)]), CKR_ATTRIBUTE_READ_ONLY);

    let fixed = aes_key(s, &[5; 16], &[ab(CKA_MODIFIABLE, false), av(CKA_LABEL, "fixed")]);
    expect_rv(set_attrs(s, fixed, &[av(CKA_LABEL, "changed")]), CKR_ACTION_PROHIBITED);
    assert_eq!(label_of(s, fixed), "fixed");
    expect_rv(set_attrs(s, 0xdead_beef, &[av(CKA_LABEL, "x")]), CKR_OBJECT_HANDLE_INVALID);
    close(s).unwrap();
}

#[test]
fn object_size() {
    let s = user_session(fx().token());
    let d = create(s, &data_tmpl("sized", &[])).unwrap();
    let mut n: CK_ULONG = 0;
    assert_rv(ck!(C_GetObjectSize, s, d, &mut n), CKR_OK);
    assert!(n > 0, "object size 0");
    assert_rv(ck!(C_GetObjectSize, s, 0xdead_beef, &mut n), CKR_OBJECT_HANDLE_INVALID);
    assert_rv(ck!(C_GetObjectSize, s, d, ptr::null_mut()), CKR_ARGUMENTS_BAD);
    close(s).unwrap();
}

#[test]
fn find_with_templates() {
    let slot = fx().token();
    let s = user_session(slot);
    let tok = [ab(CKA_TOKEN, true)];
    let private = ab(CKA_PRIVATE, true);
    let d_alpha = create(s, &data_tmpl("alpha", &[tok[0].clone(), private.clone()])).unwrap();
    let d_alpha2 = create(s, &data_tmpl("alpha2", &[private])).unwrap();
    let k_alpha = aes_key(s, &[1; 16], &[av(CKA_LABEL, "alpha"), av(CKA_ID, [1])]);
    let k_gamma = aes_key(s, &[1; 16], &[av(CKA_LABEL, "gamma"), av(CKA_ID, [1]), ab(CKA_TOKEN, true)]);
    let g_beta = create(s, &generic_tmpl(&[2; 16], &[av(CKA_LABEL, "beta"), av(CKA_ID, [3]), ab(CKA_TOKEN, true)])).unwrap();
    let d_beta = create(s, &data_tmpl("beta", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).unwrap();
    let all = set(vec![d_alpha, d_alpha2, k_alpha, k_gamma, g_beta, d_beta]);

    let q = |a: &[Attr]| set(find(s, a).unwrap());
    assert_eq!(q(&[]), all, "empty template finds every visible object");
    assert_eq!(q(&[au(CKA_CLASS, CKO_DATA)]), set(vec![d_alpha, d_alpha2, d_beta]));
    assert_eq!(q(&[au(CKA_CLASS, CKO_SECRET_KEY)]), set(vec![k_alpha, k_gamma, g_beta]));
    assert_eq!(q(&[av(CKA_LABEL, "alpha")]), set(vec![d_alpha, k_alpha]), "labels match exactly");
    assert_eq!(q(&[av(CKA_LABEL, "alph")]), set(vec![]), "no prefix matching");
    assert_eq!(q(&[av(CKA_ID, [1])]), set(vec![k_alpha, k_gamma]));
    assert_eq!(q(&[av(CKA_ID, [1]), ab(CKA_TOKEN, true)]), set(vec![k_gamma]));
    assert_eq!(q(&[av(CKA_ID, [3]), au(CKA_CLASS, CKO_SECRET_KEY)]), set(vec![g_beta]));
    assert_eq!(q(&[av(CKA_ID, [1, 0])]), set(vec![]), "ids match exactly");
    assert_eq!(q(&[ab(CKA_TOKEN, true)]), set(vec![d_alpha, k_gamma, g_beta, d_beta]));
    assert_eq!(q(&[ab(CKA_TOKEN, false)]), set(vec![d_alpha2, k_alpha]));
    assert_eq!(q(&[au(CKA_KEY_TYPE, CKK_AES)]), set(vec![k_alpha, k_gamma]));
    assert_eq!(q(&[au(CKA_KEY_TYPE, CKK_AES), av(CKA_LABEL, "gamma")]), set(vec![k_gamma]));
    assert_eq!(q(&[av(CKA_LABEL, "nope")]), set(vec![]));
    assert_eq!(q(&[ab(CKA_PRIVATE, false)]), set(vec![d_beta]));
    for h in q(&[av(CKA_LABEL, "beta")]) {
        assert_eq!(label_of(s, h), "beta", "found handles are usable");
    }

    let mut buf = [0; 4];
    let mut n = 0;
    assert_rv(ck!(C_FindObjects, s, buf.as_mut_ptr(), 4, &mut n), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(ck!(C_FindObjectsFinal, s), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(ck!(C_FindObjectsInit, s, ptr::null_mut(), 0), CKR_OK);
    assert_rv(ck!(C_FindObjectsInit, s, ptr::null_mut(), 0), CKR_OPERATION_ACTIVE);
    assert_rv(ck!(C_FindObjects, s, buf.as_mut_ptr(), 4, ptr::null_mut()), CKR_ARGUMENTS_BAD);
    assert_rv(ck!(C_FindObjectsFinal, s), CKR_OK);
    assert_eq!(q(&[]), all, "a new search works after C_FindObjectsFinal");
    close(s).unwrap();
}

/// Find by an attribute the store keeps sealed (CKA_VALUE of a private token key): it is
/// compared once opened, while logged in; logged out the key is not visible at all. An
/// attribute type no object has (a vendor's) matches nothing, alone or with others.
#[test]
fn find_by_sealed_value_and_unknown_type() {
    let slot = fx().token();
    let s = user_session(slot);
    let value = [0x3cu8; 32];
    let k = aes_key(s, &value, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "sealed-find")]);
    aes_key(s, &[0x3d; 32], &[ab(CKA_TOKEN, true), av(CKA_LABEL, "sealed-other")]);
    aes_key(s, &value, &[av(CKA_LABEL, "session-same-value")]);
    let by_value = [av(CKA_VALUE, value), ab(CKA_TOKEN, true)];
    assert_eq!(find(s, &by_value).unwrap(), vec![k]);
    assert_eq!(find(s, &[au(CKA_CLASS, CKO_SECRET_KEY), av(CKA_VALUE, value), av(CKA_LABEL, "sealed-find")]).unwrap(), vec![k]);
    assert_eq!(find(s, &[av(CKA_VALUE, value)]).unwrap().len(), 2, "the session key of the same value");
    assert!(find(s, &[av(CKA_VALUE, &value[..16]), ab(CKA_TOKEN, true)]).unwrap().is_empty(), "no prefix matching");
    let vendor = av(CKA_VENDOR_DEFINED | 0x4242, b"?");
    assert!(find(s, std::slice::from_ref(&vendor)).unwrap().is_empty());
    assert!(find(s, &[au(CKA_CLASS, CKO_SECRET_KEY), vendor.clone()]).unwrap().is_empty());
    assert!(find(s, &[(CKA_VENDOR_DEFINED | 0x4242, vec![])]).unwrap().is_empty(), "an empty value of an unknown type");

    logout(s).unwrap();
    assert!(find(s, &by_value).unwrap().is_empty(), "a private key found while logged out");
    assert!(find_label(s, "sealed-find").is_empty());
    login(s, CKU_USER, USER_PIN).unwrap();
    let again = find(s, &by_value).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(label_of(s, again[0]), "sealed-find");
    close(s).unwrap();
}

/// A data object made from its class alone: CKA_APPLICATION, CKA_OBJECT_ID and CKA_VALUE
/// empty (PKCS#11 3.0 §4.5). Whether it is private by default is the token's choice: on
/// keyfront's soft token only keys are, SoftHSM2 makes every object private unless told.
#[test]
fn data_object_defaults() {
    let s = user_session(fx().token());
    let d = create(s, &[au(CKA_CLASS, CKO_DATA)]).unwrap();
    for ty in [CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE, CKA_LABEL] {
        assert_eq!(get_attr(s, d, ty).unwrap(), Vec::<u8>::new(), "attribute 0x{ty:x}");
    }
    assert_eq!(get_bool(s, d, CKA_PRIVATE).unwrap(), backend().is_forwarded());
    for (ty, want) in [(CKA_TOKEN, false), (CKA_MODIFIABLE, true), (CKA_COPYABLE, true), (CKA_DESTROYABLE, true)] {
        assert_eq!(get_bool(s, d, ty).unwrap(), want, "attribute 0x{ty:x}");
    }
    close(s).unwrap();
}

/// C_CopyObject with a template attribute the object's class does not have, or nobody has.
#[test]
fn copy_with_invalid_attribute_type() {
    let s = user_session(fx().token());
    let k = aes_key(s, &[6; 16], &[av(CKA_LABEL, "copy-src")]);
    let d = create(s, &data_tmpl("copy-data", &[])).unwrap();
    expect_rv(copy(s, k, &[av(CKA_VENDOR_DEFINED | 0x4242, b"?")]), CKR_ATTRIBUTE_TYPE_INVALID);
    expect_rv(copy(s, d, &[av(CKA_VENDOR_DEFINED | 0x4242, b"?")]), CKR_ATTRIBUTE_TYPE_INVALID);
    expect_rv(copy(s, k, &[av(CKA_LABEL, "renamed"), (CKA_VENDOR_DEFINED | 1, vec![])]), CKR_ATTRIBUTE_TYPE_INVALID);
    assert_eq!(find(s, &[]).unwrap().len(), 2, "a failed copy left an object behind");
    assert!(find_label(s, "renamed").is_empty());
    close(s).unwrap();
}

/// CKA_VALUE in a C_GenerateKey template: the token makes the value. keyfront answers
/// CKR_TEMPLATE_INCONSISTENT, as for every key component given to C_GenerateKeyPair,
/// C_UnwrapKey or C_DeriveKey (the template contradicts what the function contributes,
/// PKCS#11 3.0 §4.1.1); SoftHSM2 reads the attribute table's footnote 4 ("must not be
/// specified when generated") as read-only.
#[test]
fn generate_key_with_value() {
    let s = user_session(fx().token());
    let want = by_backend(CKR_TEMPLATE_INCONSISTENT, CKR_ATTRIBUTE_READ_ONLY);
    expect_rv(gen_aes(s, 16, &[av(CKA_VALUE, [1; 16])]), want);
    expect_rv(gen_key(s, &Mech::new(CKM_GENERIC_SECRET_KEY_GEN), &[au(CKA_VALUE_LEN, 16), av(CKA_VALUE, [1; 16])]), want);
    if backend().is_soft() {
        assert!(find(s, &[]).unwrap().is_empty(), "a failed generation left an object behind");
    } else {
        skip_note("SoftHSM2 leaves an empty session object behind after a failed C_GenerateKey");
    }
    close(s).unwrap();
}

#[test]
fn generated_vs_created_key_attributes() {
    let s = user_session(fx().token());
    let check = |k, local, mech: CK_ULONG, always_sensitive, never_extractable| {
        assert_eq!(get_bool(s, k, CKA_LOCAL).unwrap(), local, "CKA_LOCAL");
        assert_eq!(get_ulong(s, k, CKA_KEY_GEN_MECHANISM).unwrap(), mech, "CKA_KEY_GEN_MECHANISM");
        assert_eq!(get_bool(s, k, CKA_ALWAYS_SENSITIVE).unwrap(), always_sensitive, "CKA_ALWAYS_SENSITIVE");
        assert_eq!(get_bool(s, k, CKA_NEVER_EXTRACTABLE).unwrap(), never_extractable, "CKA_NEVER_EXTRACTABLE");
    };
    let g = gen_aes(s, 32, &sensitive_by_default()).unwrap();
    check(g, true, CKM_AES_KEY_GEN, true, true);
    let c = aes_key(s, &[8; 32], &[]);
    check(c, false, CK_UNAVAILABLE_INFORMATION, false, false);
    let g2 = gen_aes(s, 16, &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]).unwrap();
    check(g2, true, CKM_AES_KEY_GEN, false, false);
    set_attrs(s, g2, &[ab(CKA_SENSITIVE, true), ab(CKA_EXTRACTABLE, false)]).unwrap();
    check(g2, true, CKM_AES_KEY_GEN, false, false);
    let gg = gen_key(s, &Mech::new(CKM_GENERIC_SECRET_KEY_GEN), &merge(sensitive_by_default(), &[au(CKA_VALUE_LEN, 24)])).unwrap();
    check(gg, true, CKM_GENERIC_SECRET_KEY_GEN, true, true);
    assert_eq!(get_ulong(s, gg, CKA_KEY_TYPE).unwrap(), CKK_GENERIC_SECRET);
    assert_eq!(get_ulong(s, gg, CKA_VALUE_LEN).unwrap(), 24);
    close(s).unwrap();
}

#[test]
fn allowed_mechanisms_enforced() {
    let s = user_session(fx().token());
    let allowed = mechs_attr(&[CKM_AES_GCM, CKM_AES_CBC_PAD]);
    let k = aes_key(s, &[3; 16], std::slice::from_ref(&allowed));
    let got = get_attr(s, k, CKA_ALLOWED_MECHANISMS).unwrap();
    if backend().is_soft() {
        assert_eq!(got, allowed.1);
    } else {
        // SoftHSM2 keeps the list as a set: it comes back sorted.
        skip_note("SoftHSM2 returns CKA_ALLOWED_MECHANISMS sorted: compared as a set");
        assert_eq!(got, mechs_attr(&[CKM_AES_CBC_PAD, CKM_AES_GCM]).1);
    }
    encrypt(s, &Mech::gcm(&[0; 12], b"", 128), k, b"ok").unwrap();
    encrypt(s, &Mech::bytes(CKM_AES_CBC_PAD, &[0; 16]), k, b"ok").unwrap();
    expect_rv(encrypt_init(s, &Mech::new(CKM_AES_ECB), k), CKR_MECHANISM_INVALID);
    expect_rv(encrypt_init(s, &Mech::ctr(128, &[0; 16]), k), CKR_MECHANISM_INVALID);
    expect_rv(decrypt_init(s, &Mech::new(CKM_AES_ECB), k), CKR_MECHANISM_INVALID);
    let target = aes_key(s, &[4; 16], &[ab(CKA_EXTRACTABLE, true)]);
    expect_rv(wrap(s, &Mech::new(CKM_AES_KEY_WRAP), k, target), CKR_MECHANISM_INVALID);
    // The failed inits left no operation active.
    encrypt(s, &Mech::gcm(&[0; 12], b"", 128), k, b"still ok").unwrap();
    close(s).unwrap();
}

#[test]
fn key_usage_and_type_checks() {
    let s = user_session(fx().token());
    let ecb = Mech::new(CKM_AES_ECB);
    let noenc = aes_key(s, &[1; 16], &[ab(CKA_ENCRYPT, false)]);
    expect_rv(encrypt_init(s, &ecb, noenc), CKR_KEY_FUNCTION_NOT_PERMITTED);
    let ct = decrypt(s, &ecb, noenc, &BLOCK).expect("decrypt is still allowed");
    assert_eq!(ct.len(), 16);
    let nodec = aes_key(s, &[1; 16], &[ab(CKA_DECRYPT, false)]);
    expect_rv(decrypt_init(s, &ecb, nodec), CKR_KEY_FUNCTION_NOT_PERMITTED);
    set_attrs(s, noenc, &[ab(CKA_ENCRYPT, true)]).unwrap();
    assert_eq!(encrypt(s, &ecb, noenc, &BLOCK).unwrap(), encrypt(s, &ecb, nodec, &BLOCK).unwrap());

    let hmac = Mech::new(CKM_SHA256_HMAC);
    let nosign = create(s, &generic_tmpl(b"Jefe", &[ab(CKA_SIGN, false)])).unwrap();
    expect_rv(sign_init(s, &hmac, nosign), CKR_KEY_FUNCTION_NOT_PERMITTED);
    let noverify = create(s, &generic_tmpl(b"Jefe", &[ab(CKA_VERIFY, false)])).unwrap();
    expect_rv(verify_init(s, &hmac, noverify), CKR_KEY_FUNCTION_NOT_PERMITTED);

    let generic = create(s, &generic_tmpl(&[1; 16], &[])).unwrap();
    expect_rv(encrypt_init(s, &ecb, generic), CKR_KEY_TYPE_INCONSISTENT);
    expect_rv(encrypt_init(s, &Mech::gcm(&[0; 12], b"", 128), generic), CKR_KEY_TYPE_INCONSISTENT);
    expect_rv(decrypt_init(s, &Mech::bytes(CKM_AES_CBC, &[0; 16]), generic), CKR_KEY_TYPE_INCONSISTENT);

    let data = create(s, &data_tmpl("not-a-key", &[])).unwrap();
    if backend().is_soft() {
        expect_one_of(encrypt_init(s, &ecb, data), &[CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT]);
    } else {
        // SoftHSM2 looks for CKA_ENCRYPT first, which a data object lacks.
        expect_rv(encrypt_init(s, &ecb, data), CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    expect_rv(encrypt_init(s, &ecb, 0xdead_beef), CKR_KEY_HANDLE_INVALID);
    // SoftHSM2 has CKM_DES3_CBC, and refuses the AES key for it.
    let des3_rv = if backend().is_soft() { CKR_MECHANISM_INVALID } else { CKR_KEY_TYPE_INCONSISTENT };
    expect_rv(encrypt_init(s, &Mech::new(CKM_DES3_CBC), nodec), des3_rv);
    expect_rv(encrypt_init(s, &Mech::new(CKM_SHA256), nodec), CKR_MECHANISM_INVALID);
    // None of the failures left an operation active.
    encrypt(s, &ecb, nodec, &BLOCK).unwrap();
    close(s).unwrap();
}

#[test]
fn invalid_object_handles() {
    let slot = fx().token();
    let s = user_session(slot);
    let gone = create(s, &data_tmpl("gone", &[])).unwrap();
    destroy(s, gone).unwrap();
    // A handle of another token is not valid in this token's session.
    let other = fx().token();
    let o = user_session(other);
    let foreign = create(o, &data_tmpl("foreign", &[])).unwrap();
    for h in [CK_INVALID_HANDLE, 0xdead_beef, gone, foreign] {
        expect_rv(get_attr(s, h, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
        expect_rv(set_attrs(s, h, &[av(CKA_LABEL, "x")]), CKR_OBJECT_HANDLE_INVALID);
        expect_rv(copy(s, h, &[]), CKR_OBJECT_HANDLE_INVALID);
        expect_rv(destroy(s, h), CKR_OBJECT_HANDLE_INVALID);
        let mut n = 0;
        assert_rv(ck!(C_GetObjectSize, s, h, &mut n), CKR_OBJECT_HANDLE_INVALID);
    }
    assert_eq!(label_of(o, foreign), "foreign", "foreign object untouched");
    close(s).unwrap();
    close(o).unwrap();
}

//! C_Initialize / C_Finalize life cycle, configuration, persistence across re-initialisation,
//! and what the SQLite token file holds. Each test initialises and finalises the module
//! itself, so the tests of this binary run one at a time (LOCK).
mod common;
use common::*;

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use cryptoki::error::{Error, RvError};
use cryptoki::slot::Slot;

static LOCK: Mutex<()> = Mutex::new(());

/// Serialises the tests and finalises the module when the test ends, even on panic.
struct Serial(#[allow(dead_code)] MutexGuard<'static, ()>);

fn serial() -> Serial {
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // A previous test that panicked may have left it initialised.
    ck!(C_Finalize, ptr::null_mut());
    Serial(g)
}

impl Drop for Serial {
    fn drop(&mut self) {
        ck!(C_Finalize, ptr::null_mut());
    }
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("keyfront.toml");
    std::fs::write(&p, body).unwrap();
    std::env::set_var("KEYFRONT_CONFIG", &p);
    p
}

fn one_slot(dir: &Path, id: CK_SLOT_ID) -> PathBuf {
    let db = dir.join("token.db");
    write_config(dir, &slot_toml(&db, "lifecycle", Some(id)));
    db
}

fn get_info() -> CK_RV {
    let mut i = CK_INFO::default();
    ck!(C_GetInfo, &mut i)
}

unsafe extern "C" fn create_mutex(_m: *mut *mut c_void) -> CK_RV {
    CKR_OK
}

#[test]
fn initialize_finalize_rules() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    one_slot(dir.path(), 3);

    // Before C_Initialize: only C_GetFunctionList (used by funcs()) works.
    assert_rv(get_info(), CKR_CRYPTOKI_NOT_INITIALIZED);
    let mut n: CK_ULONG = 0;
    assert_rv(ck!(C_GetSlotList, CK_FALSE, ptr::null_mut(), &mut n), CKR_CRYPTOKI_NOT_INITIALIZED);
    let mut h = 0;
    assert_rv(ck!(C_OpenSession, 3, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut h), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_rv(ck!(C_CloseAllSessions, 3), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);

    let p11 = load_and_init();
    match p11.initialize(init_args()) {
        Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        other => panic!("second C_Initialize: expected CKR_CRYPTOKI_ALREADY_INITIALIZED, got {other:?}"),
    }
    assert_rv(ck!(C_Initialize, ptr::null_mut()), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    assert_rv(get_info(), CKR_OK);
    let s = open(3, false).unwrap();
    let mut reserved = 0u8;
    assert_rv(ck!(C_Finalize, &mut reserved as *mut u8 as *mut c_void), CKR_ARGUMENTS_BAD);
    assert_rv(get_info(), CKR_OK);
    p11.finalize().expect("C_Finalize");
    assert_rv(get_info(), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);

    // Initialise again, now with NULL arguments; sessions of the previous run are gone.
    assert_rv(ck!(C_Initialize, ptr::null_mut()), CKR_OK);
    assert_rv(get_info(), CKR_OK);
    expect_rv(session_info(s), CKR_SESSION_HANDLE_INVALID);
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
}

/// CK_C_INITIALIZE_ARGS with some but not all mutex functions is CKR_ARGUMENTS_BAD (PKCS#11
/// 3.0, C_Initialize). (A non-NULL pReserved is not checked: some modules take options there.)
#[test]
fn initialize_rejects_malformed_args() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    one_slot(dir.path(), 3);
    let base = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: ptr::null_mut(),
    };
    let cases = [
        ("only CreateMutex set", CK_C_INITIALIZE_ARGS { CreateMutex: Some(create_mutex), ..base }),
        ("only CreateMutex set, no flags", CK_C_INITIALIZE_ARGS { CreateMutex: Some(create_mutex), flags: 0, ..base }),
    ];
    let mut failures = vec![];
    for (what, mut args) in cases {
        let rv = ck!(C_Initialize, &mut args as *mut _ as *mut c_void);
        if rv != CKR_ARGUMENTS_BAD {
            failures.push(format!("{what}: expected CKR_ARGUMENTS_BAD, got {}", rv_name(rv)));
        }
        if get_info() != CKR_CRYPTOKI_NOT_INITIALIZED {
            ck!(C_Finalize, ptr::null_mut());
        }
    }
    // Well-formed: no mutex functions, with or without CKF_OS_LOCKING_OK.
    for flags in [0, CKF_OS_LOCKING_OK] {
        let mut args = CK_C_INITIALIZE_ARGS { flags, ..base };
        assert_rv(ck!(C_Initialize, &mut args as *mut _ as *mut c_void), CKR_OK);
        assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn token_objects_persist_across_reinitialization() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    one_slot(dir.path(), 5);
    let value: Vec<u8> = (100..132).collect();
    let block = [0x77u8; 16];
    let ecb = Mech::new(CKM_AES_ECB);
    let new_pin: &[u8] = b"changed-user-pin";

    let p11 = load_and_init();
    setup_token(5, "persisted");
    let serial_no = token_info(5).unwrap().serialNumber;
    let s = user_session(5);
    let k = aes_key(s, &value, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "tok-key")]);
    let g = gen_aes(s, 16, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "gen-key")]).unwrap();
    create(s, &data_tmpl("tok-data", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)])).unwrap();
    create(s, &data_tmpl("sess-data", &[ab(CKA_PRIVATE, false)])).unwrap();
    let gone = create(s, &data_tmpl("destroyed", &[ab(CKA_TOKEN, true)])).unwrap();
    destroy(s, gone).unwrap();
    let renamed = create(s, &data_tmpl("old-name", &[ab(CKA_TOKEN, true)])).unwrap();
    set_attrs(s, renamed, &[av(CKA_LABEL, "new-name")]).unwrap();
    let ct_k = encrypt(s, &ecb, k, &block).unwrap();
    let ct_g = encrypt(s, &ecb, g, &block).unwrap();
    set_pin(s, USER_PIN, new_pin).unwrap();
    p11.finalize().unwrap();

    let p11 = load_and_init();
    let ti = token_info(5).unwrap();
    assert_eq!(trimmed(&ti.label), "persisted");
    assert_eq!(ti.serialNumber, serial_no);
    assert_eq!(ti.flags & (CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED), CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED);
    let r = open(5, false).unwrap();
    assert_eq!(find_label(r, "tok-data").len(), 1, "public token object lost");
    assert!(find_label(r, "sess-data").is_empty(), "session object survived C_Finalize");
    assert!(find_label(r, "tok-key").is_empty(), "private object visible before login");
    expect_rv(login(r, CKU_USER, USER_PIN), CKR_PIN_INCORRECT);
    login(r, CKU_USER, new_pin).expect("changed PIN persisted");
    assert!(find_label(r, "destroyed").is_empty(), "destroyed object came back");
    assert!(find_label(r, "old-name").is_empty());
    assert_eq!(find_label(r, "new-name").len(), 1, "attribute change lost");
    let k2 = find_label(r, "tok-key");
    let g2 = find_label(r, "gen-key");
    assert_eq!((k2.len(), g2.len()), (1, 1));
    let (k2, g2) = (k2[0], g2[0]);
    assert_eq!(encrypt(r, &ecb, k2, &block).unwrap(), ct_k, "imported key value changed");
    assert_eq!(encrypt(r, &ecb, g2, &block).unwrap(), ct_g, "generated key value changed");
    expect_rv(get_attr(r, k2, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    assert!(get_bool(r, g2, CKA_LOCAL).unwrap() && get_bool(r, g2, CKA_ALWAYS_SENSITIVE).unwrap());
    assert_eq!(get_ulong(r, g2, CKA_KEY_GEN_MECHANISM).unwrap(), CKM_AES_KEY_GEN);
    assert!(!get_bool(r, k2, CKA_LOCAL).unwrap());
    assert_eq!(get_ulong(r, k2, CKA_VALUE_LEN).unwrap(), 32);
    p11.finalize().unwrap();
}

fn read_if_exists(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

#[test]
fn token_file_holds_no_plaintext_secrets() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = one_slot(dir.path(), 9);
    let p11 = load_and_init();
    setup_token(9, "at-rest");
    let s = user_session(9);
    let value = random(s, 32).unwrap();
    let hmac_value = random(s, 48).unwrap();
    aes_key(s, &value, &[ab(CKA_TOKEN, true), ab(CKA_SENSITIVE, true), av(CKA_LABEL, "at-rest-key")]);
    create(s, &generic_tmpl(&hmac_value, &[ab(CKA_TOKEN, true)])).unwrap();
    // Asymmetric private keys imported from components this test knows: made as
    // extractable session pairs, read, and created again on the token.
    let (rsa, rsa_secrets) = known_private_key(s, &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN), &[au(CKA_MODULUS_BITS, 2048), av(CKA_PUBLIC_EXPONENT, [1, 0, 1])], CKK_RSA, &[CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT]);
    let (ec, ec_secrets) = known_private_key(s, &Mech::new(CKM_EC_KEY_PAIR_GEN), &[av(CKA_EC_PARAMS, hex("06082a8648ce3d030107"))], CKK_EC, &[CKA_EC_PARAMS, CKA_VALUE]);
    let data_value = random(s, 40).unwrap();
    create(s, &data_tmpl("private-data", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true), av(CKA_VALUE, &data_value)])).unwrap();
    // The token keys work: what is scanned for below is what they hold.
    for (key, mech) in [(rsa, Mech::new(CKM_SHA256_RSA_PKCS)), (ec, Mech::new(CKM_ECDSA_SHA256))] {
        sign(s, &mech, key, b"at rest").unwrap();
    }
    close(s).unwrap();
    p11.finalize().unwrap();

    let main = std::fs::read(&db).expect("token file exists after use");
    assert!(main.starts_with(b"SQLite format 3\0"), "{} is not an SQLite database", db.display());
    let mut files = vec![(db.clone(), main)];
    for suffix in ["-wal", "-journal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Some(b) = read_if_exists(&p) {
            files.push((p, b));
        }
    }
    for (path, bytes) in &files {
        let mut secrets = vec![("AES key", &value[..]), ("HMAC key", &hmac_value[..]), ("private data object", &data_value[..])];
        secrets.extend(rsa_secrets.iter().map(|(what, v)| (*what, &v[..])));
        secrets.extend(ec_secrets.iter().map(|(what, v)| (*what, &v[..])));
        for (what, secret) in secrets {
            for w in secret.windows(8) {
                assert!(!contains(bytes, w), "8 bytes of the {what} value appear in {}", path.display());
            }
        }
        for (what, pin) in [("SO PIN", SO_PIN), ("user PIN", USER_PIN)] {
            assert!(!contains(bytes, pin), "the {what} appears in {}", path.display());
        }
    }
}

/// A token private key of `key_type` made from the components of a generated session pair
/// (`components`, read while extractable); also the secret components, by name, to look for.
fn known_private_key(
    s: CK_SESSION_HANDLE,
    mech: &Mech,
    public: &[Attr],
    key_type: CK_KEY_TYPE,
    components: &[CK_ATTRIBUTE_TYPE],
) -> (CK_OBJECT_HANDLE, Vec<(&'static str, Vec<u8>)>) {
    let loose = [ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)];
    let (_, private) = gen_key_pair(s, mech, public, &loose).unwrap();
    let mut tmpl = vec![au(CKA_CLASS, CKO_PRIVATE_KEY), au(CKA_KEY_TYPE, key_type), ab(CKA_TOKEN, true), ab(CKA_SIGN, true)];
    let mut secrets = vec![];
    for &ty in components {
        let v = get_attr(s, private, ty).unwrap();
        let name = match ty {
            CKA_PRIVATE_EXPONENT => "RSA private exponent",
            CKA_PRIME_1 => "RSA prime 1",
            CKA_PRIME_2 => "RSA prime 2",
            CKA_VALUE => "EC private value",
            _ => "",
        };
        if !name.is_empty() {
            secrets.push((name, v.clone()));
        }
        tmpl.push((ty, v));
    }
    (create(s, &tmpl).unwrap(), secrets)
}

/// The iteration count of each wrapping of the token key (meta `so_wrap`, `user_wrap`: a
/// format byte, then the count little-endian). Only for a file the module has closed.
fn kdf_iterations(db: &Path) -> (u32, Option<u32>) {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let count = |name: &str| -> Option<u32> {
        let blob: Option<Vec<u8>> = conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0)).ok();
        blob.map(|b| u32::from_le_bytes(b[1..5].try_into().unwrap()))
    };
    (count("so_wrap").expect("an SO wrapping"), count("user_wrap"))
}

/// The PBKDF2 cost is kept with each PIN's wrapping of the token key: a changed
/// `pin_kdf_iterations` applies to the PINs set from then on (C_InitToken, C_InitPIN,
/// C_SetPIN), and PINs set before still log in. 600,000 when the slot does not say.
#[test]
fn kdf_cost_is_stored_per_pin() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("token.db");
    let configure = |iterations: Option<u32>| {
        let line = iterations.map(|n| format!("pin_kdf_iterations = {n}\n")).unwrap_or_default();
        write_config(dir.path(), &slot_toml(&db, "kdf", Some(4)).replace("pin_kdf_iterations = 1000\n", &line));
    };
    configure(Some(2000));
    let p11 = load_and_init();
    setup_token(4, "kdf");
    p11.finalize().unwrap();
    assert_eq!(kdf_iterations(&db), (2000, Some(2000)));

    configure(Some(3000));
    let p11 = load_and_init();
    let s = open(4, true).unwrap();
    login(s, CKU_USER, USER_PIN).expect("a PIN set under the old count");
    set_pin(s, USER_PIN, b"user-pin-3000").unwrap();
    logout(s).unwrap();
    login(s, CKU_SO, SO_PIN).expect("the SO PIN under the old count");
    logout(s).unwrap();
    login(s, CKU_USER, b"user-pin-3000").unwrap();
    close(s).unwrap();
    p11.finalize().unwrap();
    assert_eq!(kdf_iterations(&db), (2000, Some(3000)), "only the changed PIN takes the new count");

    let p11 = load_and_init();
    init_token(4, SO_PIN, "kdf").unwrap();
    let s = open(4, true).unwrap();
    login(s, CKU_SO, SO_PIN).unwrap();
    init_pin(s, USER_PIN).unwrap();
    close(s).unwrap();
    p11.finalize().unwrap();
    assert_eq!(kdf_iterations(&db), (3000, Some(3000)));

    configure(None);
    let p11 = load_and_init();
    init_token(4, SO_PIN, "kdf").unwrap();
    p11.finalize().unwrap();
    assert_eq!(kdf_iterations(&db), (600_000, None), "the default count (re-initialisation drops the user PIN)");
}

#[test]
fn bad_configuration_fails_initialize() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    for body in [
        "this is [[ not toml".to_string(),
        format!("[[slot]]\nkind = \"hsm-that-does-not-exist\"\npath = {db:?}\nlabel = \"x\"\n"),
        "[[slot]]\nkind = 42\n".to_string(),
    ] {
        write_config(dir.path(), &body);
        assert_rv(ck!(C_Initialize, ptr::null_mut()), CKR_GENERAL_ERROR);
        assert_rv(get_info(), CKR_CRYPTOKI_NOT_INITIALIZED);
    }
    std::env::set_var("KEYFRONT_CONFIG", dir.path().join("missing.toml"));
    let rv = ck!(C_Initialize, ptr::null_mut());
    assert_ne!(rv, CKR_OK, "a missing configuration file must not initialise");
    assert_rv(get_info(), CKR_CRYPTOKI_NOT_INITIALIZED);
    // A good configuration still works afterwards.
    one_slot(dir.path(), 1);
    assert_rv(ck!(C_Initialize, ptr::null_mut()), CKR_OK);
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
}

#[test]
fn default_configuration_uses_data_dir() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    std::env::remove_var("KEYFRONT_CONFIG");
    std::env::set_var("KEYFRONT_DATA_DIR", dir.path());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let p11 = load_and_init();
        let slots: Vec<u64> = p11.get_all_slots().unwrap().iter().map(Slot::id).collect();
        assert_eq!(slots, vec![0]);
        setup_token(0, "default");
        let s = user_session(0);
        create(s, &data_tmpl("in-default", &[ab(CKA_TOKEN, true)])).unwrap();
        p11.finalize().unwrap();
        assert!(dir.path().join("soft.db").exists(), "$KEYFRONT_DATA_DIR/soft.db not created");
        let p11 = load_and_init();
        let s = user_session(0);
        assert_eq!(find_label(s, "in-default").len(), 1);
        p11.finalize().unwrap();
    }));
    std::env::remove_var("KEYFRONT_DATA_DIR");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn slot_ids_default_to_position() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(
        d,
        &[
            slot_toml(&d.join("a.db"), "first", None),
            slot_toml(&d.join("b.db"), "second", Some(7)),
            slot_toml(&d.join("c.db"), "third", None),
        ]
        .concat(),
    );
    let p11 = load_and_init();
    let ids: BTreeSet<u64> = p11.get_all_slots().unwrap().iter().map(Slot::id).collect();
    assert_eq!(ids, BTreeSet::from([0, 7, 2]));
    for (id, label) in [(0, "first"), (7, "second"), (2, "third")] {
        let info = p11.get_slot_info(Slot::try_from(id).unwrap()).unwrap();
        assert_eq!(info.slot_description(), label);
        assert_eq!(trimmed(&token_info(id).unwrap().label), label);
    }
    // Tokens are independent files.
    setup_token(7, "only seven");
    assert_eq!(token_flags(0) & CKF_TOKEN_INITIALIZED, 0);
    assert_eq!(token_flags(2) & CKF_TOKEN_INITIALIZED, 0);
    p11.finalize().unwrap();
}

/// `rsa_pkcs1v15_decrypt = false` turns off PKCS#1 v1.5 decryption and unwrapping on that
/// slot only; encryption and signing with CKM_RSA_PKCS stay.
#[test]
fn slot_can_refuse_pkcs1v15_decryption() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let strict = slot_toml(&d.join("a.db"), "strict", Some(1)).replace("\n\n", "\nrsa_pkcs1v15_decrypt = false\n\n");
    write_config(d, &[strict, slot_toml(&d.join("b.db"), "default", Some(2))].concat());
    let p11 = load_and_init();
    let flags = |slot: CK_SLOT_ID| {
        let mut info = CK_MECHANISM_INFO::default();
        assert_rv(ck!(C_GetMechanismInfo, slot, CKM_RSA_PKCS, &mut info), CKR_OK);
        info.flags
    };
    assert_eq!(flags(1) & (CKF_DECRYPT | CKF_UNWRAP), 0);
    assert_ne!(flags(1) & (CKF_ENCRYPT | CKF_SIGN | CKF_VERIFY), 0);
    assert_eq!(flags(2) & (CKF_DECRYPT | CKF_UNWRAP), CKF_DECRYPT | CKF_UNWRAP);
    for slot in [1, 2] {
        setup_token(slot, "t");
    }
    // The mechanism is refused before the key is even looked at.
    let strict_session = user_session(1);
    let default_session = user_session(2);
    let decrypt_init = |s| Mech::new(CKM_RSA_PKCS).with(|m| ck!(C_DecryptInit, s, m, 0xdead));
    assert_rv(decrypt_init(strict_session), CKR_MECHANISM_INVALID);
    assert_rv(decrypt_init(default_session), CKR_KEY_HANDLE_INVALID);
    let encrypt_init = Mech::new(CKM_RSA_PKCS).with(|m| ck!(C_EncryptInit, strict_session, m, 0xdead));
    assert_rv(encrypt_init, CKR_KEY_HANDLE_INVALID);
    p11.finalize().unwrap();
}

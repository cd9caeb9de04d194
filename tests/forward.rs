//! Forwarding slots: keyfront in front of real PKCS#11 tokens, SoftHSM2 and NSS softokn,
//! driven through the built module's C ABI next to a soft slot.
//!
//! One module per test binary: the configuration has a soft slot and one forwarded slot per
//! test that needs a token of its own (login state is per token), so tests run in parallel.
//! Missing Debian packages (softhsm2, libnss3, libnss3-tools) are installed when running as
//! root; a vendor that still cannot be found skips its tests with the reason printed.
//!
//! The vendor is also made to lose its state: its sessions closed under keyfront (keyfront
//! reconnects and logs in again), and, in a child process, its token deleted and created
//! again (a clean error, then recovery through `C_Finalize`/`C_Initialize`).
mod common;
use common::*;

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::sync::OnceLock;

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const NSS: &str = "/usr/lib/x86_64-linux-gnu/libsoftokn3.so";
const VENDOR_SO_PIN: &str = "vendor-so-1234";
const VENDOR_PIN: &str = "vendor-user-1234";
const P256: &str = "06082a8648ce3d030107";

const SOFT: CK_SLOT_ID = 0;
/// SoftHSM2 token "fwd": the basics.
const FWD: CK_SLOT_ID = 1;
/// SoftHSM2 token "fwd-strict": allow list and deny_extractable.
const STRICT: CK_SLOT_ID = 2;
/// NSS softokn's database token.
const NSS_SLOT: CK_SLOT_ID = 3;
/// SoftHSM2 token "fwd-kill": sessions pulled from under keyfront.
const KILL: CK_SLOT_ID = 4;
/// A token label SoftHSM2 does not have: the slot is left out.
const MISSING: CK_SLOT_ID = 5;
/// SoftHSM2 token "fwd-cross": handles used in the wrong slot.
const CROSS: CK_SLOT_ID = 6;
/// SoftHSM2 token "fwd-pool": many threads, few vendor sessions.
const POOL: CK_SLOT_ID = 8;
const POOL_MAX_SESSIONS: usize = 3;
/// SoftHSM2 token "fwd-init": initialised again through keyfront.
const INIT: CK_SLOT_ID = 9;
/// SoftHSM2 token "fwd-nopkcs1" with `rsa_pkcs1v15_decrypt = false`.
const NO_PKCS1: CK_SLOT_ID = 10;
/// A soft slot with `rsa_pkcs1v15_decrypt = false`, beside it for comparison.
const SOFT_NO_PKCS1: CK_SLOT_ID = 11;

const STRICT_ALLOW: &[CK_MECHANISM_TYPE] = &[CKM_AES_KEY_GEN, CKM_AES_GCM, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA];

// ---------------------------------------------------------------------------------------------
// Fixture

struct Fwd {
    dir: PathBuf,
    softhsm_conf: PathBuf,
    /// Why NSS is not configured, if it is not.
    nss_missing: Option<String>,
}

/// `path` exists, or is made to by installing Debian package `package` (as root).
fn ensure(path: &str, package: &str) -> Result<(), String> {
    if Path::new(path).exists() {
        return Ok(());
    }
    let root = unsafe { libc::geteuid() } == 0;
    if !root || Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!("{path} not found and cannot install {package} (not root, or no apt-get)"));
    }
    eprintln!("forward: installing {package} for {path}");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).output();
        install();
    }
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!("{path} not found after installing {package}"))
    }
}

fn softhsm_util(conf: &Path, args: &[&str]) -> String {
    let out = Command::new("softhsm2-util").args(args).env("SOFTHSM2_CONF", conf).output().expect("run softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn new_token(conf: &Path, label: &str) {
    softhsm_util(conf, &["--init-token", "--free", "--label", label, "--so-pin", VENDOR_SO_PIN, "--pin", VENDOR_PIN]);
}

fn pkcs11_slot(id: CK_SLOT_ID, module: &str, token: &str, extra: &str) -> String {
    format!(
        "[[slot]]\nkind = \"pkcs11\"\nid = {id}\nlabel = \"forwarded {token}\"\nmodule = {module:?}\ntoken_label = {token:?}\nretry_attempts = 3\nretry_delay_ms = 20\n{extra}\n"
    )
}

static FWD_FX: OnceLock<Option<Fwd>> = OnceLock::new();
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Removes the fixture's directory at exit, unless `KF_FWD_KEEP` is set (to read the logs:
/// `keyfront.log` there).
extern "C" fn remove_dir() {
    if let Some(dir) = DIR.get() {
        if std::env::var_os("KF_FWD_KEEP").is_some() {
            eprintln!("forward: kept {}", dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The module initialised with the forwarding configuration; `None` (tests skip) when
/// SoftHSM2 cannot be had.
fn fwd() -> Option<&'static Fwd> {
    FWD_FX
        .get_or_init(|| {
            if let Err(why) = ensure(SOFTHSM, "softhsm2") {
                eprintln!("skipped: {why}");
                return None;
            }
            let dir = tempfile::tempdir().expect("tempdir").keep();
            let tokens = dir.join("tokens");
            std::fs::create_dir_all(&tokens).unwrap();
            let softhsm_conf = dir.join("softhsm2.conf");
            std::fs::write(
                &softhsm_conf,
                format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
            )
            .unwrap();
            std::env::set_var("SOFTHSM2_CONF", &softhsm_conf);
            for label in ["fwd", "fwd-strict", "fwd-kill", "fwd-cross", "fwd-pool", "fwd-init", "fwd-nopkcs1"] {
                new_token(&softhsm_conf, label);
            }
            let mut config = slot_toml(&dir.join("soft.db"), "soft", Some(SOFT));
            config += &pkcs11_slot(FWD, SOFTHSM, "fwd", "");
            let allow: Vec<String> = STRICT_ALLOW.iter().map(|m| format!("\"0x{m:x}\"")).collect();
            config += &pkcs11_slot(
                STRICT,
                SOFTHSM,
                "fwd-strict",
                &format!("deny_extractable = true\nallow = [{}]\n", allow.join(", ")),
            );
            config += &pkcs11_slot(KILL, SOFTHSM, "fwd-kill", "max_sessions = 3\n");
            config += &pkcs11_slot(MISSING, SOFTHSM, "no-such-token", "");
            config += &pkcs11_slot(CROSS, SOFTHSM, "fwd-cross", "");
            config += &pkcs11_slot(INIT, SOFTHSM, "fwd-init", "");
            config += &pkcs11_slot(POOL, SOFTHSM, "fwd-pool", &format!("max_sessions = {POOL_MAX_SESSIONS}\n"));
            config += &pkcs11_slot(NO_PKCS1, SOFTHSM, "fwd-nopkcs1", "rsa_pkcs1v15_decrypt = false\n");
            config += &slot_toml(&dir.join("soft-nopkcs1.db"), "soft-nopkcs1", Some(SOFT_NO_PKCS1))
                .replace("\n\n", "\nrsa_pkcs1v15_decrypt = false\n\n");
            let nss_missing = match nss_db(&dir) {
                Ok(init) => {
                    config += &pkcs11_slot(NSS_SLOT, NSS, "NSS Certificate DB", &format!("init_args = {init:?}\n"));
                    None
                }
                Err(why) => Some(why),
            };
            let path = dir.join("keyfront.toml");
            std::fs::write(&path, config).unwrap();
            std::env::set_var("KEYFRONT_CONFIG", &path);
            std::env::set_var("KEYFRONT_LOG", "info");
            std::env::set_var("KEYFRONT_LOG_FILE", dir.join("keyfront.log"));
            DIR.set(dir.clone()).unwrap();
            // SAFETY (test): registers a plain function.
            unsafe { libc::atexit(remove_dir) };
            let p11 = load_and_init();
            setup_token(SOFT, "soft");
            setup_token(SOFT_NO_PKCS1, "soft-nopkcs1");
            // Never finalised: statics are not dropped (the vendor is finalised with the
            // process).
            std::mem::forget(p11);
            Some(Fwd { dir, softhsm_conf, nss_missing })
        })
        .as_ref()
}

/// An NSS database with an empty password; its init string.
fn nss_db(dir: &Path) -> Result<String, String> {
    ensure(NSS, "libnss3")?;
    ensure("/usr/bin/certutil", "libnss3-tools")?;
    let db = dir.join("nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let out = Command::new("certutil")
        .args(["-N", "-d", &format!("sql:{}", db.display()), "--empty-password"])
        .output()
        .map_err(|e| format!("certutil: {e}"))?;
    if !out.status.success() {
        return Err(format!("certutil -N failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(format!("configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=", db.display()))
}

macro_rules! fixture {
    () => {
        match fwd() {
            Some(f) => f,
            None => return,
        }
    };
}

fn vendor_login(slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let s = open(slot, true).unwrap();
    match login(s, CKU_USER, VENDOR_PIN.as_bytes()) {
        Ok(()) | Err(Ck(CKR_USER_ALREADY_LOGGED_IN)) => {}
        Err(e) => panic!("login to forwarded slot {slot}: {e:?}"),
    }
    s
}

fn mechanisms(slot: CK_SLOT_ID) -> Vec<CK_MECHANISM_TYPE> {
    let mut n: CK_ULONG = 0;
    rv(ck!(C_GetMechanismList, slot, ptr::null_mut(), &mut n)).unwrap();
    let mut list = vec![0; n as usize];
    rv(ck!(C_GetMechanismList, slot, list.as_mut_ptr(), &mut n)).unwrap();
    list.truncate(n as usize);
    list
}

fn mechanism_info(slot: CK_SLOT_ID, m: CK_MECHANISM_TYPE) -> R<CK_MECHANISM_INFO> {
    let mut info = CK_MECHANISM_INFO::default();
    rv(ck!(C_GetMechanismInfo, slot, m, &mut info))?;
    Ok(info)
}

fn slot_list() -> Vec<CK_SLOT_ID> {
    let mut n: CK_ULONG = 0;
    rv(ck!(C_GetSlotList, CK_TRUE, ptr::null_mut(), &mut n)).unwrap();
    let mut list = vec![0; n as usize];
    rv(ck!(C_GetSlotList, CK_TRUE, list.as_mut_ptr(), &mut n)).unwrap();
    list.truncate(n as usize);
    list
}

/// A session AES-256 key generated on the token (sensitive, encrypt/decrypt/wrap).
fn vendor_aes(s: CK_SESSION_HANDLE, label: &str, extra: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    gen_aes(
        s,
        32,
        &merge(
            vec![
                ab(CKA_TOKEN, false),
                ab(CKA_SENSITIVE, true),
                ab(CKA_ENCRYPT, true),
                ab(CKA_DECRYPT, true),
                av(CKA_LABEL, label),
            ],
            extra,
        ),
    )
}

fn rsa_pair(s: CK_SESSION_HANDLE, label: &str) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    gen_key_pair(
        s,
        &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &[
            ab(CKA_TOKEN, false),
            au(CKA_MODULUS_BITS, 2048),
            av(CKA_PUBLIC_EXPONENT, [1, 0, 1]),
            ab(CKA_VERIFY, true),
            ab(CKA_ENCRYPT, true),
            av(CKA_LABEL, label),
        ],
        &[ab(CKA_TOKEN, false), ab(CKA_SIGN, true), ab(CKA_DECRYPT, true), ab(CKA_SENSITIVE, true), av(CKA_LABEL, label)],
    )
    .expect("RSA key pair")
}

fn ec_pair(s: CK_SESSION_HANDLE, label: &str, private_extra: &[Attr]) -> R<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    gen_key_pair(
        s,
        &Mech::new(CKM_EC_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, false), av(CKA_EC_PARAMS, hex(P256)), ab(CKA_VERIFY, true), av(CKA_LABEL, label)],
        &merge(vec![ab(CKA_TOKEN, false), ab(CKA_SIGN, true), ab(CKA_SENSITIVE, true), av(CKA_LABEL, label)], private_extra),
    )
}

/// `CK_RSA_PKCS_PSS_PARAMS` / `CK_RSA_PKCS_OAEP_PARAMS` (no label) as parameter bytes.
fn ulongs(v: &[CK_ULONG]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn slots_and_token_info_come_from_the_vendor() {
    let f = fixture!();
    let slots = slot_list();
    for id in [SOFT, FWD, STRICT, KILL, CROSS] {
        assert!(slots.contains(&id), "slot {id} missing from {slots:?}");
    }
    assert!(!slots.contains(&MISSING), "a slot whose vendor token does not exist is left out: {slots:?}");
    assert_eq!(slots.contains(&NSS_SLOT), f.nss_missing.is_none());

    let info = token_info(FWD).unwrap();
    assert_eq!(trimmed(&info.label), "fwd");
    assert_eq!(trimmed(&info.model), "SoftHSM v2");
    // The serial SoftHSM2 gave the token.
    let shown = softhsm_util(&f.softhsm_conf, &["--show-slots"]);
    let serial = trimmed(&info.serialNumber);
    assert!(serial.len() == 16 && shown.contains(&serial), "serial {serial:?} not in\n{shown}");
    assert!(info.flags & CKF_TOKEN_INITIALIZED != 0 && info.flags & CKF_USER_PIN_INITIALIZED != 0);
    assert_eq!(trimmed(&token_info(STRICT).unwrap().label), "fwd-strict");

    let mechs = mechanisms(FWD);
    for m in [CKM_AES_KEY_GEN, CKM_AES_GCM, CKM_AES_CBC_PAD, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_ECDSA, CKM_SHA256_RSA_PKCS] {
        assert!(mechs.contains(&m), "mechanism {m:#x} missing from the forwarded list");
    }
    let gcm = mechanism_info(FWD, CKM_AES_GCM).unwrap();
    assert!(gcm.flags & CKF_ENCRYPT != 0 && gcm.ulMaxKeySize >= 32, "SoftHSM2's own GCM info: {gcm:?}");
}

#[test]
fn softhsm_keys_and_operations() {
    fixture!();
    let s = vendor_login(FWD);
    assert_eq!(state(s), CKS_RW_USER_FUNCTIONS);

    // AES: GCM single-part, CBC-PAD multi-part both ways.
    let key = vendor_aes(s, "fwd-aes", &[]).unwrap();
    let gcm = Mech::gcm(&[9; 12], b"header", 128);
    let ct = encrypt(s, &gcm, key, b"forwarded plaintext").unwrap();
    assert_eq!(ct.len(), 19 + 16);
    assert_eq!(decrypt(s, &gcm, key, &ct).unwrap(), b"forwarded plaintext");
    let mut bad = ct.clone();
    bad[0] ^= 1;
    expect_one_of(decrypt(s, &gcm, key, &bad), &[CKR_ENCRYPTED_DATA_INVALID, CKR_GENERAL_ERROR]);
    let cbc = Mech::bytes(CKM_AES_CBC_PAD, &[5; 16]);
    let data: Vec<u8> = (0..100u8).collect();
    let ct = encrypt_parts(s, &cbc, key, &chunks(&data, ODD)).unwrap();
    assert_eq!(ct.len(), 112);
    assert_eq!(encrypt(s, &cbc, key, &data).unwrap(), ct);
    assert_eq!(decrypt_parts(s, &cbc, key, &chunks(&ct, ODD)).unwrap(), data);
    // An operation abandoned half-way does not block the next one.
    encrypt_init(s, &cbc, key).unwrap();
    two_call(|o, l| ck!(C_EncryptUpdate, s, data.as_ptr() as *mut u8, 20, o, l)).unwrap();
    // SAFETY (test): keyfront exports C_SessionCancel (PKCS#11 3.0).
    assert_rv(unsafe { lib().C_SessionCancel(s, CKF_ENCRYPT) }, CKR_OK);
    assert_eq!(encrypt(s, &cbc, key, &data).unwrap(), ct);

    // Attributes: readable ones, the secret value refused by the vendor, unknown types.
    assert_eq!(get_attr(s, key, CKA_LABEL).unwrap(), b"fwd-aes");
    assert_eq!(get_ulong(s, key, CKA_VALUE_LEN).unwrap(), 32);
    expect_rv(get_attr(s, key, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    expect_rv(get_attr(s, key, 0x7fff_0042), CKR_ATTRIBUTE_TYPE_INVALID);

    // RSA: PKCS#1 v1.5 with SHA-256 single- and multi-part, PSS, OAEP (SHA-1: SoftHSM2).
    let (rpub, rpriv) = rsa_pair(s, "fwd-rsa");
    let msg = b"a message signed by the vendor token";
    let sha256_rsa = Mech::new(CKM_SHA256_RSA_PKCS);
    let sig = sign(s, &sha256_rsa, rpriv, msg).unwrap();
    assert_eq!(sig.len(), 256);
    assert_eq!(sign_parts(s, &sha256_rsa, rpriv, &chunks(msg, ODD)).unwrap(), sig);
    verify(s, &sha256_rsa, rpub, msg, &sig).unwrap();
    verify_parts(s, &sha256_rsa, rpub, &chunks(msg, ODD), &sig).unwrap();
    let mut bad = sig.clone();
    bad[7] ^= 0x40;
    expect_rv(verify(s, &sha256_rsa, rpub, msg, &bad), CKR_SIGNATURE_INVALID);
    let pss = Mech::bytes(CKM_SHA256_RSA_PKCS_PSS, &ulongs(&[CKM_SHA256, CKG_MGF1_SHA256, 32]));
    let pss_sig = sign(s, &pss, rpriv, msg).unwrap();
    verify(s, &pss, rpub, msg, &pss_sig).unwrap();
    let oaep = Mech::bytes(CKM_RSA_PKCS_OAEP, &ulongs(&[CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, 0, 0]));
    let ct = encrypt(s, &oaep, rpub, b"secret").unwrap();
    assert_eq!(decrypt(s, &oaep, rpriv, &ct).unwrap(), b"secret");
    assert!(!get_attr(s, rpub, CKA_MODULUS).unwrap().is_empty());

    // EC P-256: raw ECDSA over a digest (SoftHSM2 has no CKM_ECDSA_SHA256).
    let (epub, epriv) = ec_pair(s, "fwd-ec", &[]).unwrap();
    let digest = digest(s, CKM_SHA256, msg).unwrap();
    let ecdsa = Mech::new(CKM_ECDSA);
    let sig = sign(s, &ecdsa, epriv, &digest).unwrap();
    assert_eq!(sig.len(), 64);
    verify(s, &ecdsa, epub, &digest, &sig).unwrap();
    expect_rv(verify(s, &ecdsa, epub, &[0u8; 32], &sig), CKR_SIGNATURE_INVALID);

    // Find: by label, by class; a token object persists and is found from another session.
    assert_eq!(find(s, &[av(CKA_LABEL, "fwd-aes")]).unwrap(), vec![key]);
    let rsa_found = find(s, &[av(CKA_LABEL, "fwd-rsa")]).unwrap();
    assert!(rsa_found.contains(&rpub) && rsa_found.contains(&rpriv) && rsa_found.len() == 2);
    let token_data = create(s, &data_tmpl("fwd-data", &[ab(CKA_TOKEN, true)])).unwrap();
    let s2 = open(FWD, false).unwrap();
    assert_eq!(find(s2, &[av(CKA_LABEL, "fwd-data")]).unwrap(), vec![token_data]);
    assert_eq!(get_attr(s2, token_data, CKA_VALUE).unwrap(), b"data");
    // A read-only session may not destroy a token object; the read-write one may.
    expect_rv(destroy(s2, token_data), CKR_SESSION_READ_ONLY);
    destroy(s, token_data).unwrap();
    assert!(find(s2, &[av(CKA_LABEL, "fwd-data")]).unwrap().is_empty());
    close(s2).unwrap();

    // Wrap and unwrap through the vendor.
    let wrapping = vendor_aes(s, "fwd-kek", &[ab(CKA_WRAP, true), ab(CKA_UNWRAP, true)]).unwrap();
    let movable = vendor_aes(s, "fwd-movable", &[ab(CKA_EXTRACTABLE, true)]).unwrap();
    let wrapped = wrap(s, &Mech::new(CKM_AES_KEY_WRAP), wrapping, movable).unwrap();
    assert_eq!(wrapped.len(), 40);
    let unwrapped = unwrap(
        s,
        &Mech::new(CKM_AES_KEY_WRAP),
        wrapping,
        &wrapped,
        &[au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_AES), ab(CKA_TOKEN, false), ab(CKA_ENCRYPT, true), ab(CKA_DECRYPT, true)],
    )
    .unwrap();
    let ecb = Mech::new(CKM_AES_ECB);
    assert_eq!(encrypt(s, &ecb, unwrapped, &[1; 16]).unwrap(), encrypt(s, &ecb, movable, &[1; 16]).unwrap());

    // Session objects go with their session.
    let s3 = open(FWD, true).unwrap();
    let short_lived = vendor_aes(s3, "fwd-short", &[]).unwrap();
    assert_eq!(find(s, &[av(CKA_LABEL, "fwd-short")]).unwrap(), vec![short_lived]);
    close(s3).unwrap();
    assert!(find(s, &[av(CKA_LABEL, "fwd-short")]).unwrap().is_empty());
    close(s).unwrap();
}

#[test]
fn handles_do_not_cross_slots() {
    fixture!();
    let s = vendor_login(CROSS);
    let key = vendor_aes(s, "cross-aes", &[]).unwrap();
    let data = create(s, &data_tmpl("cross-data", &[])).unwrap();
    let soft = open(SOFT, true).unwrap();
    expect_rv(get_attr(soft, data, CKA_LABEL), CKR_OBJECT_HANDLE_INVALID);
    expect_rv(destroy(soft, data), CKR_OBJECT_HANDLE_INVALID);
    expect_rv(set_attrs(soft, data, &[av(CKA_LABEL, "x")]), CKR_OBJECT_HANDLE_INVALID);
    expect_one_of(encrypt_init(soft, &Mech::gcm(&[1; 12], b"", 128), key), &[CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID]);
    // And still fine in their own slot.
    assert_eq!(get_attr(s, data, CKA_LABEL).unwrap(), b"cross-data");
    close(soft).unwrap();
    close(s).unwrap();
}

#[test]
fn allow_list_and_deny_extractable() {
    fixture!();
    let mechs = mechanisms(STRICT);
    let mut sorted = mechs.clone();
    sorted.sort();
    let mut want = STRICT_ALLOW.to_vec();
    want.sort();
    assert_eq!(sorted, want, "the slot offers exactly the allowed mechanisms the vendor has");
    assert!(!mechs.contains(&CKM_AES_CBC));
    expect_rv(mechanism_info(STRICT, CKM_AES_CBC), CKR_MECHANISM_INVALID);
    mechanism_info(STRICT, CKM_AES_GCM).unwrap();

    let s = vendor_login(STRICT);
    // Made without saying: not extractable, whatever the vendor's default.
    let key = vendor_aes(s, "strict-aes", &[]).unwrap();
    assert!(!get_bool(s, key, CKA_EXTRACTABLE).unwrap());
    // A mechanism outside the list never reaches the vendor.
    expect_rv(encrypt_init(s, &Mech::bytes(CKM_AES_CBC, &[0; 16]), key), CKR_MECHANISM_INVALID);
    expect_rv(gen_key(s, &Mech::new(CKM_GENERIC_SECRET_KEY_GEN), &[au(CKA_VALUE_LEN, 32)]), CKR_MECHANISM_INVALID);
    let gcm = Mech::gcm(&[2; 12], b"", 128);
    let ct = encrypt(s, &gcm, key, b"allowed").unwrap();
    assert_eq!(decrypt(s, &gcm, key, &ct).unwrap(), b"allowed");

    // Extractable private and secret keys are refused, however they would come about.
    expect_rv(vendor_aes(s, "strict-x", &[ab(CKA_EXTRACTABLE, true)]), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_rv(set_attrs(s, key, &[ab(CKA_EXTRACTABLE, true)]), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_rv(copy(s, key, &[ab(CKA_EXTRACTABLE, true)]), CKR_ATTRIBUTE_VALUE_INVALID);
    let copied = copy(s, key, &[av(CKA_LABEL, "strict-copy")]).unwrap();
    assert!(!get_bool(s, copied, CKA_EXTRACTABLE).unwrap());
    expect_rv(create(s, &aes_tmpl(&[7; 32], &[ab(CKA_EXTRACTABLE, true)])), CKR_ATTRIBUTE_VALUE_INVALID);
    let imported = create(s, &aes_tmpl(&[7; 32], &[ab(CKA_TOKEN, false)])).unwrap();
    assert!(!get_bool(s, imported, CKA_EXTRACTABLE).unwrap());
    expect_rv(ec_pair(s, "strict-ec-x", &[ab(CKA_EXTRACTABLE, true)]), CKR_ATTRIBUTE_VALUE_INVALID);
    let (epub, epriv) = ec_pair(s, "strict-ec", &[]).unwrap();
    assert!(!get_bool(s, epriv, CKA_EXTRACTABLE).unwrap());
    let sig = sign(s, &Mech::new(CKM_ECDSA), epriv, &[3; 32]).unwrap();
    verify(s, &Mech::new(CKM_ECDSA), epub, &[3; 32], &sig).unwrap();
    // Other objects are not keys: untouched.
    let data = create(s, &data_tmpl("strict-data", &[])).unwrap();
    set_attrs(s, data, &[av(CKA_LABEL, "strict-data-2")]).unwrap();
    close(s).unwrap();
}

/// `rsa_pkcs1v15_decrypt = false` holds on a forwarded slot as on a soft one: the vendor's
/// PKCS#1 v1.5 decryption (SoftHSM2 answers bad padding with an error: an oracle) and raw
/// RSA private-key operations are never reached; OAEP, signing and encryption stay.
#[test]
fn pkcs1v15_decryption_refused_by_slot_policy() {
    fixture!();
    let pkcs1 = Mech::new(CKM_RSA_PKCS);
    let raw = Mech::new(CKM_RSA_X_509);
    let oaep = Mech::bytes(CKM_RSA_PKCS_OAEP, &ulongs(&[CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, 0, 0]));
    let secret = [au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_GENERIC_SECRET), ab(CKA_TOKEN, false)];
    for (slot, s) in [(NO_PKCS1, vendor_login(NO_PKCS1)), (SOFT_NO_PKCS1, user_session(SOFT_NO_PKCS1))] {
        let info = mechanism_info(slot, CKM_RSA_PKCS).unwrap();
        assert_eq!(info.flags & (CKF_DECRYPT | CKF_UNWRAP), 0, "slot {slot}: {:#x}", info.flags);
        let kept = CKF_ENCRYPT | CKF_SIGN | CKF_VERIFY;
        assert_eq!(info.flags & kept, kept, "slot {slot}: {:#x}", info.flags);
        let info = mechanism_info(slot, CKM_RSA_X_509).unwrap();
        assert_eq!(info.flags & (CKF_DECRYPT | CKF_UNWRAP | CKF_SIGN), 0, "slot {slot}: {:#x}", info.flags);
        assert_ne!(info.flags & CKF_ENCRYPT, 0, "slot {slot}: {:#x}", info.flags);

        let (public, private) = rsa_pair(s, "nopkcs1");
        let ct = encrypt(s, &pkcs1, public, b"a padding oracle").unwrap();
        expect_rv(decrypt_init(s, &pkcs1, private), CKR_MECHANISM_INVALID);
        expect_rv(decrypt_init(s, &raw, private), CKR_MECHANISM_INVALID);
        expect_rv(sign_init(s, &raw, private), CKR_MECHANISM_INVALID);
        expect_rv(unwrap(s, &pkcs1, private, &ct, &secret), CKR_MECHANISM_INVALID);
        expect_rv(unwrap(s, &raw, private, &ct, &secret), CKR_MECHANISM_INVALID);
        // The refusals left nothing active.
        let ct = encrypt(s, &oaep, public, b"fine").unwrap();
        assert_eq!(decrypt(s, &oaep, private, &ct).unwrap(), b"fine");
        let sha256_rsa = Mech::new(CKM_SHA256_RSA_PKCS);
        let sig = sign(s, &sha256_rsa, private, b"signed").unwrap();
        verify(s, &sha256_rsa, public, b"signed", &sig).unwrap();
        close(s).unwrap();
    }
    // The same vendor token behind a slot with the default policy decrypts.
    let s = vendor_login(FWD);
    assert_eq!(mechanism_info(FWD, CKM_RSA_PKCS).unwrap().flags & CKF_DECRYPT, CKF_DECRYPT);
    let (public, private) = rsa_pair(s, "pkcs1");
    let ct = encrypt(s, &pkcs1, public, b"allowed here").unwrap();
    assert_eq!(decrypt(s, &pkcs1, private, &ct).unwrap(), b"allowed here");
    close(s).unwrap();
}

#[test]
fn nss_softokn_basics() {
    let f = fixture!();
    if let Some(why) = &f.nss_missing {
        eprintln!("skipped: NSS softokn: {why}");
        return;
    }
    let info = token_info(NSS_SLOT).unwrap();
    assert_eq!(trimmed(&info.label), "NSS Certificate DB");
    assert_eq!(trimmed(&info.model), "NSS 3");
    let s = open(NSS_SLOT, true).unwrap();
    // The database has an empty password.
    login(s, CKU_USER, b"").unwrap();
    assert_eq!(state(s), CKS_RW_USER_FUNCTIONS);

    let key = vendor_aes(s, "nss-aes", &[]).unwrap();
    let gcm = Mech::gcm(&[4; 12], b"aad", 128);
    let ct = encrypt(s, &gcm, key, b"through NSS").unwrap();
    assert_eq!(ct.len(), 11 + 16);
    assert_eq!(decrypt(s, &gcm, key, &ct).unwrap(), b"through NSS");
    let cbc = Mech::bytes(CKM_AES_CBC_PAD, &[6; 16]);
    let data: Vec<u8> = (0..50u8).collect();
    let ct = encrypt_parts(s, &cbc, key, &chunks(&data, ODD)).unwrap();
    assert_eq!(decrypt(s, &cbc, key, &ct).unwrap(), data);
    expect_rv(get_attr(s, key, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(find(s, &[av(CKA_LABEL, "nss-aes")]).unwrap(), vec![key]);

    let (epub, epriv) = ec_pair(s, "nss-ec", &[]).unwrap();
    let ecdsa = Mech::new(CKM_ECDSA_SHA256);
    let sig = sign(s, &ecdsa, epriv, b"nss message").unwrap();
    verify(s, &ecdsa, epub, b"nss message", &sig).unwrap();
    verify_parts(s, &ecdsa, epub, &chunks(b"nss message", ODD), &sig).unwrap();
    expect_rv(verify(s, &ecdsa, epub, b"other message", &sig), CKR_SIGNATURE_INVALID);

    let (rpub, rpriv) = rsa_pair(s, "nss-rsa");
    let sha256_rsa = Mech::new(CKM_SHA256_RSA_PKCS);
    let sig = sign(s, &sha256_rsa, rpriv, b"nss rsa").unwrap();
    verify(s, &sha256_rsa, rpub, b"nss rsa", &sig).unwrap();
    let oaep = Mech::bytes(CKM_RSA_PKCS_OAEP, &ulongs(&[CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, 0, 0]));
    let ct = encrypt(s, &oaep, rpub, b"oaep").unwrap();
    assert_eq!(decrypt(s, &oaep, rpriv, &ct).unwrap(), b"oaep");
    logout(s).unwrap();
    close(s).unwrap();
}

#[test]
fn token_and_pins_managed_through_keyfront() {
    fixture!();
    let s = vendor_login(INIT);
    let old = create(s, &data_tmpl("init-old", &[ab(CKA_TOKEN, true)])).unwrap();
    assert_eq!(find(s, &[av(CKA_LABEL, "init-old")]).unwrap(), vec![old]);
    // C_InitToken wants no session: keyfront's, then its own vendor sessions, are closed.
    expect_rv(init_token(INIT, VENDOR_SO_PIN.as_bytes(), "fwd-init"), CKR_SESSION_EXISTS);
    close(s).unwrap();
    expect_rv(init_token(INIT, b"wrong-so-pin", "fwd-init"), CKR_PIN_INCORRECT);
    init_token(INIT, VENDOR_SO_PIN.as_bytes(), "fwd-init").unwrap();
    let info = token_info(INIT).unwrap();
    assert_eq!(trimmed(&info.label), "fwd-init");
    assert_eq!(info.flags & CKF_USER_PIN_INITIALIZED, 0, "a new token has no user PIN yet");

    let s = open(INIT, true).unwrap();
    login(s, CKU_SO, VENDOR_SO_PIN.as_bytes()).unwrap();
    assert_eq!(state(s), CKS_RW_SO_FUNCTIONS);
    init_pin(s, b"first-user-pin").unwrap();
    logout(s).unwrap();
    assert!(token_flags(INIT) & CKF_USER_PIN_INITIALIZED != 0);
    expect_rv(login(s, CKU_USER, VENDOR_PIN.as_bytes()), CKR_PIN_INCORRECT);
    login(s, CKU_USER, b"first-user-pin").unwrap();
    assert!(find(s, &[av(CKA_LABEL, "init-old")]).unwrap().is_empty(), "the old token's objects are gone");
    set_pin(s, b"first-user-pin", b"second-user-pin").unwrap();
    logout(s).unwrap();
    expect_rv(login(s, CKU_USER, b"first-user-pin"), CKR_PIN_INCORRECT);
    login(s, CKU_USER, b"second-user-pin").unwrap();
    close(s).unwrap();
}

#[test]
fn ecdh_and_eddsa_parameters_reach_the_vendor() {
    fixture!();
    let s = vendor_login(FWD);
    let derive_pair = |label: &str| {
        gen_key_pair(
            s,
            &Mech::new(CKM_EC_KEY_PAIR_GEN),
            &[ab(CKA_TOKEN, false), av(CKA_EC_PARAMS, hex(P256)), av(CKA_LABEL, label)],
            &[ab(CKA_TOKEN, false), ab(CKA_DERIVE, true), ab(CKA_SENSITIVE, true), av(CKA_LABEL, label)],
        )
        .expect("EC key pair for ECDH")
    };
    let (apub, apriv) = derive_pair("ecdh-a");
    let (bpub, bpriv) = derive_pair("ecdh-b");
    let derive = |private: CK_OBJECT_HANDLE, peer_public: CK_OBJECT_HANDLE| -> CK_OBJECT_HANDLE {
        let point = get_attr(s, peer_public, CKA_EC_POINT).unwrap();
        let mut params = CK_ECDH1_DERIVE_PARAMS {
            kdf: CKD_NULL,
            ulSharedDataLen: 0,
            pSharedData: ptr::null_mut(),
            ulPublicDataLen: point.len() as CK_ULONG,
            pPublicData: point.as_ptr() as *mut u8,
        };
        let mut m = CK_MECHANISM {
            mechanism: CKM_ECDH1_DERIVE,
            pParameter: &mut params as *mut _ as *mut c_void,
            ulParameterLen: std::mem::size_of::<CK_ECDH1_DERIVE_PARAMS>() as CK_ULONG,
        };
        let template = [
            au(CKA_CLASS, CKO_SECRET_KEY),
            au(CKA_KEY_TYPE, CKK_AES),
            au(CKA_VALUE_LEN, 32),
            ab(CKA_TOKEN, false),
            ab(CKA_ENCRYPT, true),
        ];
        let mut t: Vec<CK_ATTRIBUTE> = template
            .iter()
            .map(|(ty, v)| CK_ATTRIBUTE { type_: *ty, pValue: v.as_ptr() as *mut c_void, ulValueLen: v.len() as CK_ULONG })
            .collect();
        let mut h = CK_INVALID_HANDLE;
        assert_rv(ck!(C_DeriveKey, s, &mut m, private, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h), CKR_OK);
        h
    };
    let ab_key = derive(apriv, bpub);
    let ba_key = derive(bpriv, apub);
    let ecb = Mech::new(CKM_AES_ECB);
    assert_eq!(encrypt(s, &ecb, ab_key, &[9; 16]).unwrap(), encrypt(s, &ecb, ba_key, &[9; 16]).unwrap(), "both sides derive one secret");

    if !mechanisms(FWD).contains(&CKM_EC_EDWARDS_KEY_PAIR_GEN) {
        eprintln!("skipped EdDSA: the vendor does not offer CKM_EC_EDWARDS_KEY_PAIR_GEN");
        close(s).unwrap();
        return;
    }
    let (epub, epriv) = gen_key_pair(
        s,
        &Mech::new(CKM_EC_EDWARDS_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, false), av(CKA_EC_PARAMS, hex("06032b6570")), ab(CKA_VERIFY, true)],
        &[ab(CKA_TOKEN, false), ab(CKA_SIGN, true), ab(CKA_SENSITIVE, true)],
    )
    .unwrap();
    let sig = sign(s, &Mech::new(CKM_EDDSA), epriv, b"edwards").unwrap();
    assert_eq!(sig.len(), 64);
    verify(s, &Mech::new(CKM_EDDSA), epub, b"edwards", &sig).unwrap();
    expect_rv(verify(s, &Mech::new(CKM_EDDSA), epub, b"edward", &sig), CKR_SIGNATURE_INVALID);
    close(s).unwrap();
}

#[test]
fn context_specific_login_reaches_the_vendor() {
    fixture!();
    let s = vendor_login(CROSS);
    let (epub, epriv) = ec_pair(s, "always-auth", &[ab(CKA_ALWAYS_AUTHENTICATE, true)]).unwrap();
    assert!(get_bool(s, epriv, CKA_ALWAYS_AUTHENTICATE).unwrap());
    let ecdsa = Mech::new(CKM_ECDSA);
    let digest = [0x33u8; 32];
    // Without the context login the vendor refuses to sign.
    sign_init(s, &ecdsa, epriv).unwrap();
    let unauthorised = two_call(|o, l| ck!(C_Sign, s, digest.as_ptr() as *mut u8, 32, o, l));
    expect_rv(unauthorised, CKR_USER_NOT_LOGGED_IN);
    // The vendor checks the PIN on the session of the operation.
    sign_init(s, &ecdsa, epriv).unwrap();
    expect_rv(login(s, CKU_CONTEXT_SPECIFIC, b"wrong-pin"), CKR_PIN_INCORRECT);
    login(s, CKU_CONTEXT_SPECIFIC, VENDOR_PIN.as_bytes()).unwrap();
    let sig = two_call(|o, l| ck!(C_Sign, s, digest.as_ptr() as *mut u8, 32, o, l)).unwrap();
    verify(s, &ecdsa, epub, &digest, &sig).unwrap();
    // No operation: nothing to log in for.
    expect_one_of(login(s, CKU_CONTEXT_SPECIFIC, VENDOR_PIN.as_bytes()), &[CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN]);
    close(s).unwrap();
}

#[test]
fn many_threads_share_few_vendor_sessions() {
    fixture!();
    let s = vendor_login(POOL);
    let token = [ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true)];
    let aes = gen_aes(s, 32, &merge(vec![ab(CKA_ENCRYPT, true), ab(CKA_DECRYPT, true), av(CKA_LABEL, "pool-aes")], &token)).unwrap();
    let (epub, epriv) = gen_key_pair(
        s,
        &Mech::new(CKM_EC_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), av(CKA_EC_PARAMS, hex(P256)), ab(CKA_VERIFY, true), av(CKA_LABEL, "pool-ec")],
        &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true), ab(CKA_SIGN, true), av(CKA_LABEL, "pool-ec")],
    )
    .unwrap();
    // Six application sessions on six threads, more than the slot's vendor sessions: each
    // operation holds a vendor session only while it runs.
    let threads: Vec<_> = (0..6u8)
        .map(|t| {
            std::thread::spawn(move || {
                let s = open(POOL, false).unwrap();
                for i in 0..15u8 {
                    let gcm = Mech::gcm(&[t, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], &[t], 128);
                    let msg = [t, i, 42];
                    let ct = encrypt(s, &gcm, aes, &msg).unwrap();
                    assert_eq!(decrypt(s, &gcm, aes, &ct).unwrap(), msg);
                    let digest = [t ^ i; 32];
                    let sig = sign(s, &Mech::new(CKM_ECDSA), epriv, &digest).unwrap();
                    verify(s, &Mech::new(CKM_ECDSA), epub, &digest, &sig).unwrap();
                    assert_eq!(find(s, &[av(CKA_LABEL, "pool-aes")]).unwrap(), vec![aes]);
                }
                close(s).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker thread");
    }
    // What the vendor has open for the token: at most max_sessions (the pool may go one over
    // to never be without a session). SoftHSM2 does not count sessions in its token info,
    // but its session handles are small numbers shared with object handles: probe them.
    let vendor_slot = softhsm_slot_of("fwd-pool");
    let open_sessions = (1..20_000)
        .filter(|&h| {
            let mut info = CK_SESSION_INFO::default();
            let code = unsafe { softhsm_direct().C_GetSessionInfo.unwrap()(h, &mut info) };
            code == CKR_OK && info.slotID == vendor_slot
        })
        .count();
    assert!((1..=POOL_MAX_SESSIONS + 1).contains(&open_sessions), "{open_sessions} vendor sessions open");
    close(s).unwrap();
}

/// SoftHSM2's own function list, in this process: the same loaded instance keyfront uses.
fn softhsm_direct() -> &'static CK_FUNCTION_LIST {
    static F: OnceLock<CK_FUNCTION_LIST> = OnceLock::new();
    F.get_or_init(|| {
        // SAFETY (test): SoftHSM2 is already loaded and initialised by keyfront.
        let lib = unsafe { cryptoki_sys::Pkcs11::new(SOFTHSM) }.expect("dlopen SoftHSM2");
        let mut p: *mut CK_FUNCTION_LIST = ptr::null_mut();
        assert_rv(unsafe { lib.C_GetFunctionList(&mut p) }, CKR_OK);
        let list = unsafe { *p };
        std::mem::forget(lib);
        list
    })
}

/// The SoftHSM2 slot holding the token labelled `label`.
fn softhsm_slot_of(label: &str) -> CK_SLOT_ID {
    let f = softhsm_direct();
    let mut n: CK_ULONG = 0;
    assert_rv(unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, ptr::null_mut(), &mut n) }, CKR_OK);
    let mut slots = vec![0; n as usize];
    assert_rv(unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, slots.as_mut_ptr(), &mut n) }, CKR_OK);
    for slot in slots {
        let mut info = CK_TOKEN_INFO::default();
        if unsafe { f.C_GetTokenInfo.unwrap()(slot, &mut info) } == CKR_OK && trimmed(&info.label) == label {
            return slot;
        }
    }
    panic!("no SoftHSM2 token {label}");
}

#[test]
fn vendor_sessions_pulled_from_under_keyfront() {
    fixture!();
    let s = vendor_login(KILL);
    let gcm = Mech::gcm(&[8; 12], b"", 128);
    let token_key = gen_aes(
        s,
        32,
        &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true), ab(CKA_ENCRYPT, true), ab(CKA_DECRYPT, true), av(CKA_LABEL, "kill-key")],
    )
    .unwrap();
    let ct = encrypt(s, &gcm, token_key, b"before").unwrap();
    encrypt_init(s, &gcm, token_key).unwrap();

    // Every vendor session of the token closed behind keyfront's back: the vendor logs out
    // and (SoftHSM2) forgets its object handles.
    let vendor_slot = softhsm_slot_of("fwd-kill");
    assert_rv(unsafe { softhsm_direct().C_CloseAllSessions.unwrap()(vendor_slot) }, CKR_OK);

    // The operation begun before ends with the vendor's clean error, not a crash; keyfront's
    // session and login state stay.
    let pending = two_call(|o, l| ck!(C_Encrypt, s, b"x".as_ptr() as *mut u8, 1, o, l));
    expect_one_of(pending, &[CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID]);
    assert_eq!(state(s), CKS_RW_USER_FUNCTIONS);
    // keyfront reopened its vendor sessions and logged in again: the private token key is
    // found (under a new handle, as the vendor renumbered it) and works.
    let found = find(s, &[av(CKA_LABEL, "kill-key")]).unwrap();
    assert_eq!(found.len(), 1, "private key found again after the reconnect");
    let key = found[0];
    assert_eq!(decrypt(s, &gcm, key, &ct).unwrap(), b"before");

    // Again, twice in a row, now with only idempotent calls in between: retried.
    for _ in 0..2 {
        assert_rv(unsafe { softhsm_direct().C_CloseAllSessions.unwrap()(vendor_slot) }, CKR_OK);
        let found = find(s, &[av(CKA_LABEL, "kill-key")]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(decrypt(s, &gcm, found[0], &ct).unwrap(), b"before");
    }
    assert_eq!(trimmed(&token_info(KILL).unwrap().label), "fwd-kill");
    let found = find(s, &[av(CKA_LABEL, "kill-key")]).unwrap();
    destroy(s, found[0]).unwrap();
    close(s).unwrap();
}

/// The token deleted and created again by `softhsm2-util` while keyfront runs (in a child
/// process, which may finalise and initialise the module): a clean error from the vendor,
/// and the new token in use after `C_Finalize`/`C_Initialize`.
#[test]
fn vendor_token_replaced() {
    if std::env::var_os("KF_FWD_CHILD").is_some() {
        return replaced_child();
    }
    let f = fixture!();
    new_token(&f.softhsm_conf, "fwd-replace");
    run_alone(f, "vendor_token_replaced", &pkcs11_slot(7, SOFTHSM, "fwd-replace", ""));
}

/// Runs test `test` of this binary in a process of its own (where it may finalise the
/// module, or fork) with configuration `config`, and checks that it got to its end.
fn run_alone(f: &Fwd, test: &str, config: &str) {
    let path = f.dir.join(format!("{test}.toml"));
    std::fs::write(&path, config).unwrap();
    let log = f.dir.join(format!("{test}.log"));
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("KF_FWD_CHILD", "1")
        .env("KEYFRONT_CONFIG", &path)
        .env("SOFTHSM2_CONF", &f.softhsm_conf)
        .env("KEYFRONT_LOG", "info")
        .env("KEYFRONT_LOG_FILE", &log)
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| l.contains("after the token was replaced")) {
        println!("child: {line}");
    }
    assert!(
        out.status.success() && stdout.contains("KF_FWD_CHILD_DONE"),
        "child failed ({}):\n{stdout}\n{}\n--- keyfront log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn replaced_child() {
    let conf = PathBuf::from(std::env::var_os("SOFTHSM2_CONF").expect("SOFTHSM2_CONF"));
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: ptr::null_mut(),
    };
    assert_rv(ck!(C_Initialize, &mut args as *mut _ as *mut c_void), CKR_OK);
    let before = trimmed(&token_info(7).unwrap().serialNumber);
    let s = vendor_login(7);
    let old = create(s, &data_tmpl("replace-old", &[ab(CKA_TOKEN, true)])).unwrap();

    softhsm_util(&conf, &["--delete-token", "--token", "fwd-replace"]);
    new_token(&conf, "fwd-replace");

    // The vendor's own answer for a token gone from under it (SoftHSM2 2.6.1 says
    // CKR_GENERAL_ERROR, and does not see the new token until initialised again): an error,
    // passed on unchanged, nothing worse.
    let r = token_info(7).map(|_| ());
    println!("token info after the token was replaced: {r:?}");
    let r = get_attr(s, old, CKA_LABEL);
    println!("old object after the token was replaced: {r:?}");
    assert!(r.is_err(), "the old token's object is gone");
    let r = create(s, &data_tmpl("replace-lost", &[ab(CKA_TOKEN, true)]));
    println!("create after the token was replaced: {r:?}");
    assert!(r.is_err());

    // The application starts over: keyfront finalises the vendor and loads it afresh, and
    // the slot finds the new token by its label.
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
    assert_rv(ck!(C_Initialize, &mut args as *mut _ as *mut c_void), CKR_OK);
    let after = trimmed(&token_info(7).unwrap().serialNumber);
    assert_ne!(before, after, "a new token, with a new serial");
    let s = vendor_login(7);
    assert!(find(s, &[av(CKA_LABEL, "replace-old")]).unwrap().is_empty());
    let key = vendor_aes(s, "replace-aes", &[]).unwrap();
    let gcm = Mech::gcm(&[1; 12], b"", 128);
    let ct = encrypt(s, &gcm, key, b"new token").unwrap();
    assert_eq!(decrypt(s, &gcm, key, &ct).unwrap(), b"new token");
    close(s).unwrap();
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
    println!("KF_FWD_CHILD_DONE");
}

/// fork() after the forwarded slot was used: the child initialises keyfront again, which
/// finalises and initialises its own copy of the vendor module, and uses the token.
#[test]
fn forked_child_forwards_too() {
    if std::env::var_os("KF_FWD_CHILD").is_some() {
        return fork_child();
    }
    let f = fixture!();
    new_token(&f.softhsm_conf, "fwd-fork");
    run_alone(f, "forked_child_forwards_too", &pkcs11_slot(10, SOFTHSM, "fwd-fork", ""));
}

fn fork_child() {
    assert_rv(ck!(C_Initialize, ptr::null_mut()), CKR_OK);
    let s = vendor_login(10);
    let key = gen_aes(s, 32, &[ab(CKA_TOKEN, true), ab(CKA_ENCRYPT, true), av(CKA_LABEL, "fork-key")]).unwrap();
    let expected = encrypt(s, &Mech::new(CKM_AES_ECB), key, &[5; 16]).unwrap();
    // SAFETY (test): this process runs this test alone; the child only calls the module and
    // exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let run = || -> Result<(), i32> {
            let check = |n: i32, ok: bool| if ok { Ok(()) } else { Err(n) };
            check(1, ck!(C_Initialize, ptr::null_mut()) == CKR_OK)?;
            let s = open(10, true).map_err(|_| 2)?;
            login(s, CKU_USER, VENDOR_PIN.as_bytes()).map_err(|_| 3)?;
            let keys = find(s, &[av(CKA_LABEL, "fork-key")]).map_err(|_| 4)?;
            check(5, keys.len() == 1)?;
            let ct = encrypt(s, &Mech::new(CKM_AES_ECB), keys[0], &[5; 16]).map_err(|_| 6)?;
            check(7, ct == expected)?;
            check(8, ck!(C_Finalize, ptr::null_mut()) == CKR_OK)?;
            Ok(())
        };
        let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(())) => 0,
            Ok(Err(n)) => n,
            Err(_) => 99,
        };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "forked child failed at step {}", libc::WEXITSTATUS(status));
    // The parent's own sessions are untouched.
    assert_eq!(encrypt(s, &Mech::new(CKM_AES_ECB), key, &[5; 16]).unwrap(), expected);
    close(s).unwrap();
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
    println!("KF_FWD_CHILD_DONE");
}

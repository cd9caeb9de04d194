//! Shared helpers for the integration tests.
//!
//! Every test binary drives the built `libkeyfront.so` through its C ABI. The module is loaded
//! and initialised once per binary (`fx()`), via the `cryptoki` crate, with a generated
//! configuration holding many soft slots; each test takes its own slot (`fx().slot()` /
//! `fx().token()`) so tests can run in parallel. Return codes are checked through a thin raw
//! layer over the module's `CK_FUNCTION_LIST` (`ck!`, `R<T>`), because most of what the
//! tests assert (length queries, `CKR_BUFFER_TOO_SMALL`, exact error codes) is not reachable
//! through cryptoki's high-level wrappers.
#![allow(dead_code)]

use std::ffi::c_void;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::Rv;
pub use cryptoki_sys::*;

// ---------------------------------------------------------------------------------------------
// Module loading

/// `KEYFRONT_MODULE` overrides; otherwise look next to the test executable (target/debug/deps).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYFRONT_MODULE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("exe dir");
    // `cargo test` refreshes only the copy in deps/; a `cargo build` copy beside it may be
    // older: take the newest.
    [deps.join("../libkeyfront.so"), deps.join("libkeyfront.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("libkeyfront.so not found near {}; set KEYFRONT_MODULE", deps.display()))
}

struct Lib(cryptoki_sys::Pkcs11);
// SAFETY: the struct only holds the library handle and plain function pointers.
unsafe impl Sync for Lib {}
unsafe impl Send for Lib {}

/// The module opened with dlopen (same handle, hence same state, as cryptoki's). Never closed.
pub fn lib() -> &'static cryptoki_sys::Pkcs11 {
    static LIB: OnceLock<Lib> = OnceLock::new();
    &LIB.get_or_init(|| Lib(unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("dlopen module")))
        .0
}

/// The module's 2.40 function list from `C_GetFunctionList` (usable before `C_Initialize`).
pub fn funcs() -> &'static CK_FUNCTION_LIST {
    static F: OnceLock<CK_FUNCTION_LIST> = OnceLock::new();
    F.get_or_init(|| unsafe {
        let mut p: *mut CK_FUNCTION_LIST = ptr::null_mut();
        assert_rv(lib().C_GetFunctionList(&mut p), CKR_OK);
        assert!(!p.is_null(), "C_GetFunctionList returned NULL");
        *p
    })
}

/// Calls a function of the module's function list: `ck!(C_Logout, h)` returns the `CK_RV`.
macro_rules! ck {
    ($f:ident $(, $a:expr)* $(,)?) => {{
        let f = $crate::common::funcs().$f.expect(concat!(stringify!($f), " is NULL in the function list"));
        #[allow(unused_unsafe)]
        let r = unsafe { f($($a),*) };
        r
    }};
}
#[allow(unused_imports)]
pub(crate) use ck;

// ---------------------------------------------------------------------------------------------
// Return codes

/// A non-OK `CK_RV`, printed with its name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ck(pub CK_RV);

pub fn rv_name(rv: CK_RV) -> String {
    match Rv::from(rv) {
        Rv::Ok => "CKR_OK".into(),
        Rv::Error(e) => format!("{e:?}(0x{rv:x})"),
    }
}

impl fmt::Debug for Ck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&rv_name(self.0))
    }
}

pub type R<T> = Result<T, Ck>;

pub fn rv(code: CK_RV) -> R<()> {
    if code == CKR_OK { Ok(()) } else { Err(Ck(code)) }
}

#[track_caller]
pub fn assert_rv(got: CK_RV, want: CK_RV) {
    assert!(got == want, "expected {}, got {}", rv_name(want), rv_name(got));
}

#[track_caller]
pub fn expect_rv<T: fmt::Debug>(r: R<T>, want: CK_RV) {
    match r {
        Err(Ck(got)) if got == want => {}
        other => panic!("expected {}, got {other:?}", rv_name(want)),
    }
}

#[track_caller]
pub fn expect_one_of<T: fmt::Debug>(r: R<T>, wants: &[CK_RV]) {
    match r {
        Err(Ck(got)) if wants.contains(&got) => {}
        other => panic!(
            "expected one of {:?}, got {other:?}",
            wants.iter().map(|w| rv_name(*w)).collect::<Vec<_>>()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture: one initialised module per test binary, many soft slots

pub const SO_PIN: &[u8] = b"so-secret-1";
pub const USER_PIN: &[u8] = b"user-secret-1";
pub const N_SLOTS: usize = 40;

pub struct SlotCfg {
    pub id: CK_SLOT_ID,
    pub path: PathBuf,
    pub label: String,
}

pub struct Fx {
    pub p11: Pkcs11,
    pub config: PathBuf,
    pub slots: Vec<SlotCfg>,
    next: AtomicUsize,
    _dir: Option<tempfile::TempDir>,
}

/// One `[[slot]]` table; `id: None` leaves the id to the module (position in the list).
pub fn slot_toml(path: &Path, label: &str, id: Option<CK_SLOT_ID>) -> String {
    let mut s = format!("[[slot]]\nkind = \"soft\"\npath = {:?}\nlabel = {:?}\npin_kdf_iterations = 1000\n", path, label);
    if let Some(id) = id {
        s += &format!("id = {id}\n");
    }
    s + "\n"
}

pub fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

/// Loads the module with cryptoki and calls `C_Initialize` (OS locking).
pub fn load_and_init() -> Pkcs11 {
    let p11 = Pkcs11::new(module_path()).expect("load module with cryptoki");
    p11.initialize(init_args()).expect("C_Initialize");
    p11
}

static FX: OnceLock<Fx> = OnceLock::new();

pub fn fx() -> &'static Fx {
    FX.get_or_init(Fx::new)
}

extern "C" fn remove_fixture_dir() {
    if let Some(dir) = FX.get().and_then(|f| f._dir.as_ref()) {
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

impl Fx {
    fn new() -> Fx {
        // A child process re-executed by `run_child` uses its parent's configuration.
        if let Ok(cfg) = std::env::var("KF_CHILD_CONFIG") {
            std::env::set_var("KEYFRONT_CONFIG", &cfg);
            return Fx { p11: load_and_init(), config: cfg.into(), slots: vec![], next: AtomicUsize::new(0), _dir: None };
        }
        if SOFT_ONLY.contains(&env!("CARGO_CRATE_NAME")) && !matches!(std::env::var("KEYFRONT_TEST_BACKEND").as_deref(), Err(_) | Ok("") | Ok("soft")) {
            skip_note("this binary tests keyfront's soft token (or builds its own slots): KEYFRONT_TEST_BACKEND ignored");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let slots: Vec<SlotCfg> = (0..N_SLOTS)
            .map(|i| SlotCfg {
                id: 100 + 3 * i as CK_SLOT_ID,
                path: dir.path().join(format!("t{i}.db")),
                label: format!("slot-{i}"),
            })
            .collect();
        let toml: String = match backend() {
            Backend::Soft => slots.iter().map(|s| slot_toml(&s.path, &s.label, Some(s.id))).collect(),
            Backend::SoftHsm2 => softhsm2_slots(dir.path(), &slots),
        };
        let config = dir.path().join("keyfront.toml");
        std::fs::write(&config, toml).expect("write config");
        std::env::set_var("KEYFRONT_CONFIG", &config);
        // Statics are never dropped, so remove the directory when the process exits.
        unsafe { libc::atexit(remove_fixture_dir) };
        Fx { p11: load_and_init(), config, slots, next: AtomicUsize::new(0), _dir: Some(dir) }
    }

    /// A slot no other test uses; its token is not initialised (soft backend), or initialised
    /// by softhsm2-util with SO_PIN and USER_PIN (SoftHSM2 has no token before that).
    pub fn slot(&self) -> CK_SLOT_ID {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        assert!(i < self.slots.len(), "more tests than slots: raise N_SLOTS");
        self.slots[i].id
    }

    pub fn cfg(&self, id: CK_SLOT_ID) -> &SlotCfg {
        self.slots.iter().find(|s| s.id == id).expect("configured slot")
    }

    /// A slot of its own with an initialised token (label "test", SO_PIN) and user PIN USER_PIN.
    pub fn token(&self) -> CK_SLOT_ID {
        let slot = self.slot();
        setup_token(slot, "test");
        slot
    }
}

// ---------------------------------------------------------------------------------------------
// Backend switch: KEYFRONT_TEST_BACKEND=soft (default) or softhsm2

/// What the fixture's slots are: keyfront soft slots, or forwarding slots (`kind = "pkcs11"`)
/// in front of one SoftHSM2 token each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Soft,
    SoftHsm2,
}

impl Backend {
    pub fn is_soft(self) -> bool {
        self == Backend::Soft
    }
    pub fn is_forwarded(self) -> bool {
        !self.is_soft()
    }
}

/// Test binaries about keyfront's soft token itself (its files, crash and fault handling,
/// processes sharing a token file, fork) or about forwarding (tests/forward.rs builds its
/// own slots): they run soft slots whatever KEYFRONT_TEST_BACKEND says.
const SOFT_ONLY: &[&str] = &["crash", "faults", "fork", "load", "multiprocess", "forward"];

pub fn backend() -> Backend {
    if SOFT_ONLY.contains(&env!("CARGO_CRATE_NAME")) {
        return Backend::Soft;
    }
    match std::env::var("KEYFRONT_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("soft") => Backend::Soft,
        Ok("softhsm2") => Backend::SoftHsm2,
        Ok(other) => panic!("KEYFRONT_TEST_BACKEND={other:?}: want soft or softhsm2"),
    }
}

/// Notes (on stderr, and counted by grepping `KF_SKIP_NOTE`) that a part of a test is not run
/// on this backend, and why.
#[track_caller]
pub fn skip_note(why: &str) {
    let at = std::panic::Location::caller();
    let name = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("KF_SKIP_NOTE {name} ({}:{}) [{:?}]: {why}", at.file(), at.line(), backend());
}

pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The code a call must return: `soft` on keyfront's soft token, `softhsm2` through a
/// forwarding slot, where it is SoftHSM2's own code passed on unchanged (for the cases the
/// specification leaves to the token, or where SoftHSM2 answers with another code).
pub fn by_backend(soft: CK_RV, softhsm2: CK_RV) -> CK_RV {
    if backend().is_soft() {
        soft
    } else {
        softhsm2
    }
}

/// SoftHSM2's own function list (forwarded backend only), for comparing what keyfront
/// passes on with what the vendor says: the same loaded and initialised instance keyfront
/// forwards to (`dlopen` of the same path gives the same handle).
pub fn vendor() -> &'static CK_FUNCTION_LIST {
    assert!(backend().is_forwarded(), "vendor(): the soft backend has no vendor module");
    static F: OnceLock<CK_FUNCTION_LIST> = OnceLock::new();
    F.get_or_init(|| {
        fx();
        let lib = unsafe { cryptoki_sys::Pkcs11::new(SOFTHSM2_MODULE) }.expect("dlopen SoftHSM2");
        let mut p: *mut CK_FUNCTION_LIST = ptr::null_mut();
        assert_rv(unsafe { lib.C_GetFunctionList(&mut p) }, CKR_OK);
        let list = unsafe { *p };
        std::mem::forget(lib);
        list
    })
}

/// The SoftHSM2 slot behind keyfront slot `slot` (forwarded backend): the one whose token
/// has the serial number keyfront reports.
pub fn vendor_slot(slot: CK_SLOT_ID) -> CK_SLOT_ID {
    let serial = token_info(slot).expect("C_GetTokenInfo").serialNumber;
    let f = vendor();
    let mut n: CK_ULONG = 0;
    assert_rv(unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, ptr::null_mut(), &mut n) }, CKR_OK);
    let mut slots = vec![0; n as usize];
    assert_rv(unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, slots.as_mut_ptr(), &mut n) }, CKR_OK);
    slots.truncate(n as usize);
    slots
        .into_iter()
        .find(|&v| {
            let mut info = CK_TOKEN_INFO::default();
            let code = unsafe { f.C_GetTokenInfo.unwrap()(v, &mut info) };
            code == CKR_OK && info.serialNumber == serial
        })
        .unwrap_or_else(|| panic!("no SoftHSM2 token with serial {:?}", trimmed(&serial)))
}

/// Creates one SoftHSM2 token per slot (label = the slot's label, SO PIN and user PIN as
/// `setup_token` sets them) under `dir/softhsm`, sets `SOFTHSM2_CONF`, and returns the
/// `[[slot]] kind = "pkcs11"` tables forwarding to them (same ids; tokens chosen by serial
/// number, because a test's C_InitToken relabels the token).
fn softhsm2_slots(dir: &Path, slots: &[SlotCfg]) -> String {
    assert!(
        Path::new(SOFTHSM2_MODULE).exists(),
        "KEYFRONT_TEST_BACKEND=softhsm2 needs {SOFTHSM2_MODULE} (apt-get install softhsm2)"
    );
    let tokens = dir.join("softhsm");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()))
        .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let util = |args: &[&str]| -> String {
        let out = Command::new("softhsm2-util").args(args).env("SOFTHSM2_CONF", &conf).output().expect("run softhsm2-util");
        assert!(
            out.status.success(),
            "softhsm2-util {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let so = std::str::from_utf8(SO_PIN).unwrap();
    let user = std::str::from_utf8(USER_PIN).unwrap();
    for s in slots {
        util(&["--init-token", "--free", "--label", &s.label, "--so-pin", so, "--pin", user]);
    }
    // label -> serial, from --show-slots
    let shown = util(&["--show-slots"]);
    let mut serials = std::collections::HashMap::new();
    let mut serial = String::new();
    for line in shown.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Serial number:") {
            serial = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("Label:") {
            if !serial.is_empty() {
                serials.insert(v.trim().to_string(), serial.clone());
            }
        }
    }
    slots
        .iter()
        .map(|s| {
            let serial = serials.get(&s.label).unwrap_or_else(|| panic!("no SoftHSM2 token {:?} in:\n{shown}", s.label));
            format!(
                "[[slot]]\nkind = \"pkcs11\"\nid = {}\nlabel = {:?}\nmodule = {SOFTHSM2_MODULE:?}\nserial = {serial:?}\n\n",
                s.id, s.label
            )
        })
        .collect()
}

/// An RW session of SoftHSM2's own on the token behind keyfront slot `slot` (forwarded
/// backend). Login state is per application, so it is logged in as keyfront's sessions are.
pub fn vendor_session(slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let mut h = CK_INVALID_HANDLE;
    let code = unsafe {
        vendor().C_OpenSession.unwrap()(vendor_slot(slot), CKF_SERIAL_SESSION | CKF_RW_SESSION, ptr::null_mut(), None, &mut h)
    };
    assert_rv(code, CKR_OK);
    h
}

/// SoftHSM2's own C_CreateObject on a `vendor_session`.
pub fn vendor_create(vs: CK_SESSION_HANDLE, a: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    let mut t = raw_tmpl(a);
    let mut h = CK_INVALID_HANDLE;
    rv(unsafe { vendor().C_CreateObject.unwrap()(vs, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h) })?;
    Ok(h)
}

/// SoftHSM2's own C_GenerateKey on a `vendor_session`.
pub fn vendor_gen_key(vs: CK_SESSION_HANDLE, m: &Mech, a: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    let mut t = raw_tmpl(a);
    let mut h = CK_INVALID_HANDLE;
    m.with(|mp| rv(unsafe { vendor().C_GenerateKey.unwrap()(vs, mp, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h) }))?;
    Ok(h)
}

/// `what` got the same result through keyfront (`ours`, on keyfront session `s`) as from
/// SoftHSM2 directly (`theirs`, on vendor session `vs`): both made an object (both are
/// destroyed again) or both failed with the same code. A mismatch is described, not panicked
/// on, so that a test can list every one.
pub fn same_as_vendor(
    what: &str,
    (s, ours): (CK_SESSION_HANDLE, R<CK_OBJECT_HANDLE>),
    (vs, theirs): (CK_SESSION_HANDLE, R<CK_OBJECT_HANDLE>),
) -> Option<String> {
    if let Ok(h) = ours {
        destroy(s, h).expect("destroy keyfront's object");
    }
    if let Ok(h) = theirs {
        assert_rv(unsafe { vendor().C_DestroyObject.unwrap()(vs, h) }, CKR_OK);
    }
    match (ours, theirs) {
        (Ok(_), Ok(_)) => None,
        (Err(a), Err(b)) if a == b => None,
        (a, b) => Some(format!("{what}: keyfront {:?}, SoftHSM2 {:?}", a.map(drop), b.map(drop))),
    }
}

/// C_InitToken + C_InitPIN on `slot`; leaves no session open.
pub fn setup_token(slot: CK_SLOT_ID, label: &str) {
    init_token(slot, SO_PIN, label).expect("C_InitToken");
    let s = open(slot, true).unwrap();
    login(s, CKU_SO, SO_PIN).expect("SO login");
    init_pin(s, USER_PIN).expect("C_InitPIN");
    logout(s).unwrap();
    close(s).unwrap();
}

/// An RW session on `slot` with the user logged in.
pub fn user_session(slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let s = open(slot, true).unwrap();
    match login(s, CKU_USER, USER_PIN) {
        Ok(()) | Err(Ck(CKR_USER_ALREADY_LOGGED_IN)) => {}
        Err(e) => panic!("user login: {e:?}"),
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Child processes: the test binary re-executes one of its own tests

/// In a child started by `run_child`: its role.
pub fn child_role() -> Option<String> {
    std::env::var("KF_CHILD_ROLE").ok()
}

pub fn child_slot() -> CK_SLOT_ID {
    std::env::var("KF_CHILD_SLOT").expect("KF_CHILD_SLOT").parse().unwrap()
}

pub const CHILD_DONE: &str = "KF_CHILD_DONE";

/// Runs test `test` of this binary in a new process with the parent's configuration; the child
/// must print `KF_CHILD_DONE <role>` at the end (so a filtered-out test cannot pass silently).
pub fn run_child(test: &str, slot: CK_SLOT_ID, role: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("KF_CHILD_CONFIG", &fx().config)
        .env("KF_CHILD_SLOT", slot.to_string())
        .env("KF_CHILD_ROLE", role)
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("{CHILD_DONE} {role}")),
        "child {test}/{role} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

pub fn child_done(role: &str) {
    println!("{CHILD_DONE} {role}");
}

// ---------------------------------------------------------------------------------------------
// Templates

pub type Attr = (CK_ATTRIBUTE_TYPE, Vec<u8>);

pub fn ab(t: CK_ATTRIBUTE_TYPE, v: bool) -> Attr {
    (t, vec![if v { CK_TRUE } else { CK_FALSE }])
}
pub fn au(t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Attr {
    (t, v.to_ne_bytes().to_vec())
}
pub fn av(t: CK_ATTRIBUTE_TYPE, v: impl AsRef<[u8]>) -> Attr {
    (t, v.as_ref().to_vec())
}
pub fn mechs_attr(m: &[CK_MECHANISM_TYPE]) -> Attr {
    (CKA_ALLOWED_MECHANISMS, m.iter().flat_map(|x| x.to_ne_bytes()).collect())
}

/// `base` with every attribute of `extra` replacing (or added to) the one of the same type.
pub fn merge(base: Vec<Attr>, extra: &[Attr]) -> Vec<Attr> {
    let mut out: Vec<Attr> = base.into_iter().filter(|(t, _)| !extra.iter().any(|(e, _)| e == t)).collect();
    out.extend(extra.iter().cloned());
    out
}

fn raw_tmpl(a: &[Attr]) -> Vec<CK_ATTRIBUTE> {
    a.iter()
        .map(|(t, v)| CK_ATTRIBUTE { type_: *t, pValue: v.as_ptr() as *mut c_void, ulValueLen: v.len() as CK_ULONG })
        .collect()
}

/// Session secret key template for CKK_AES with `value`, then `extra` merged in.
pub fn aes_tmpl(value: &[u8], extra: &[Attr]) -> Vec<Attr> {
    merge(
        vec![au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_AES), av(CKA_VALUE, value)],
        extra,
    )
}

pub fn generic_tmpl(value: &[u8], extra: &[Attr]) -> Vec<Attr> {
    merge(
        vec![au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_GENERIC_SECRET), av(CKA_VALUE, value)],
        extra,
    )
}

pub fn data_tmpl(label: &str, extra: &[Attr]) -> Vec<Attr> {
    merge(vec![au(CKA_CLASS, CKO_DATA), av(CKA_LABEL, label), av(CKA_VALUE, b"data")], extra)
}

/// Imports an AES key (session object unless `extra` says otherwise).
pub fn aes_key(s: CK_SESSION_HANDLE, value: &[u8], extra: &[Attr]) -> CK_OBJECT_HANDLE {
    create(s, &aes_tmpl(value, extra)).expect("create AES key")
}

/// Generates an AES key of `len` bytes.
pub fn gen_aes(s: CK_SESSION_HANDLE, len: CK_ULONG, extra: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    gen_key(s, &Mech::new(CKM_AES_KEY_GEN), &merge(vec![au(CKA_VALUE_LEN, len)], extra))
}

// ---------------------------------------------------------------------------------------------
// Mechanisms

pub enum Param {
    None,
    Bytes(Vec<u8>),
    Gcm { iv: Vec<u8>, aad: Vec<u8>, tag_bits: CK_ULONG },
    Ctr { bits: CK_ULONG, cb: [u8; 16] },
}

pub struct Mech {
    pub ty: CK_MECHANISM_TYPE,
    pub param: Param,
}

impl Mech {
    pub fn new(ty: CK_MECHANISM_TYPE) -> Mech {
        Mech { ty, param: Param::None }
    }
    pub fn bytes(ty: CK_MECHANISM_TYPE, p: &[u8]) -> Mech {
        Mech { ty, param: Param::Bytes(p.to_vec()) }
    }
    pub fn gcm(iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> Mech {
        Mech { ty: CKM_AES_GCM, param: Param::Gcm { iv: iv.to_vec(), aad: aad.to_vec(), tag_bits } }
    }
    pub fn ctr(bits: CK_ULONG, cb: &[u8]) -> Mech {
        Mech { ty: CKM_AES_CTR, param: Param::Ctr { bits, cb: cb.try_into().expect("16-byte counter block") } }
    }

    /// Calls `f` with a `CK_MECHANISM` whose parameter points into `self`.
    pub fn with<T>(&self, f: impl FnOnce(*mut CK_MECHANISM) -> T) -> T {
        let mut m = CK_MECHANISM { mechanism: self.ty, pParameter: ptr::null_mut(), ulParameterLen: 0 };
        match &self.param {
            Param::None => f(&mut m),
            Param::Bytes(b) => {
                m.pParameter = b.as_ptr() as *mut c_void;
                m.ulParameterLen = b.len() as CK_ULONG;
                f(&mut m)
            }
            Param::Gcm { iv, aad, tag_bits } => {
                let mut p = CK_GCM_PARAMS {
                    pIv: iv.as_ptr() as *mut u8,
                    ulIvLen: iv.len() as CK_ULONG,
                    ulIvBits: (iv.len() * 8) as CK_ULONG,
                    pAAD: aad.as_ptr() as *mut u8,
                    ulAADLen: aad.len() as CK_ULONG,
                    ulTagBits: *tag_bits,
                };
                m.pParameter = &mut p as *mut _ as *mut c_void;
                m.ulParameterLen = std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG;
                f(&mut m)
            }
            Param::Ctr { bits, cb } => {
                let mut p = CK_AES_CTR_PARAMS { ulCounterBits: *bits, cb: *cb };
                m.pParameter = &mut p as *mut _ as *mut c_void;
                m.ulParameterLen = std::mem::size_of::<CK_AES_CTR_PARAMS>() as CK_ULONG;
                f(&mut m)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw calls returning R<T>

pub fn open(slot: CK_SLOT_ID, rw: bool) -> R<CK_SESSION_HANDLE> {
    let mut h = CK_INVALID_HANDLE;
    let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
    rv(ck!(C_OpenSession, slot, flags, ptr::null_mut(), None, &mut h))?;
    Ok(h)
}
pub fn close(s: CK_SESSION_HANDLE) -> R<()> {
    rv(ck!(C_CloseSession, s))
}
pub fn close_all(slot: CK_SLOT_ID) -> R<()> {
    rv(ck!(C_CloseAllSessions, slot))
}
pub fn login(s: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> R<()> {
    rv(ck!(C_Login, s, user, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG))
}
pub fn logout(s: CK_SESSION_HANDLE) -> R<()> {
    rv(ck!(C_Logout, s))
}
pub fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    out[..s.len()].copy_from_slice(s.as_bytes());
    out
}
pub fn init_token(slot: CK_SLOT_ID, so_pin: &[u8], label: &str) -> R<()> {
    let mut l = padded::<32>(label);
    rv(ck!(C_InitToken, slot, so_pin.as_ptr() as *mut u8, so_pin.len() as CK_ULONG, l.as_mut_ptr()))
}
pub fn init_pin(s: CK_SESSION_HANDLE, pin: &[u8]) -> R<()> {
    rv(ck!(C_InitPIN, s, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG))
}
pub fn set_pin(s: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> R<()> {
    rv(ck!(C_SetPIN, s, old.as_ptr() as *mut u8, old.len() as CK_ULONG, new.as_ptr() as *mut u8, new.len() as CK_ULONG))
}
pub fn session_info(s: CK_SESSION_HANDLE) -> R<CK_SESSION_INFO> {
    let mut i = CK_SESSION_INFO::default();
    rv(ck!(C_GetSessionInfo, s, &mut i))?;
    Ok(i)
}
pub fn state(s: CK_SESSION_HANDLE) -> CK_STATE {
    session_info(s).expect("C_GetSessionInfo").state
}
pub fn token_info(slot: CK_SLOT_ID) -> R<CK_TOKEN_INFO> {
    let mut i = CK_TOKEN_INFO::default();
    rv(ck!(C_GetTokenInfo, slot, &mut i))?;
    Ok(i)
}
pub fn token_flags(slot: CK_SLOT_ID) -> CK_FLAGS {
    token_info(slot).expect("C_GetTokenInfo").flags
}
pub fn trimmed(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end_matches(' ').to_string()
}

pub fn create(s: CK_SESSION_HANDLE, a: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    let mut t = raw_tmpl(a);
    let mut h = CK_INVALID_HANDLE;
    rv(ck!(C_CreateObject, s, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h))?;
    Ok(h)
}
pub fn copy(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, a: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    let mut t = raw_tmpl(a);
    let mut h = CK_INVALID_HANDLE;
    rv(ck!(C_CopyObject, s, o, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h))?;
    Ok(h)
}
pub fn destroy(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> R<()> {
    rv(ck!(C_DestroyObject, s, o))
}
/// C_FindObjectsInit / C_FindObjects (3 at a time) / C_FindObjectsFinal.
pub fn find(s: CK_SESSION_HANDLE, a: &[Attr]) -> R<Vec<CK_OBJECT_HANDLE>> {
    let mut t = raw_tmpl(a);
    rv(ck!(C_FindObjectsInit, s, t.as_mut_ptr(), t.len() as CK_ULONG))?;
    let mut all = vec![];
    loop {
        let mut buf = [CK_INVALID_HANDLE; 3];
        let mut n: CK_ULONG = 0;
        rv(ck!(C_FindObjects, s, buf.as_mut_ptr(), 3, &mut n))?;
        assert!(n <= 3, "C_FindObjects returned {n} > max 3");
        all.extend_from_slice(&buf[..n as usize]);
        if n == 0 {
            break;
        }
    }
    rv(ck!(C_FindObjectsFinal, s))?;
    Ok(all)
}
pub fn find_label(s: CK_SESSION_HANDLE, label: &str) -> Vec<CK_OBJECT_HANDLE> {
    find(s, &[av(CKA_LABEL, label)]).expect("find by label")
}
/// One attribute: length query with NULL, then fetch.
pub fn get_attr(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> R<Vec<u8>> {
    let mut a = CK_ATTRIBUTE { type_: t, pValue: ptr::null_mut(), ulValueLen: 0 };
    rv(ck!(C_GetAttributeValue, s, o, &mut a, 1))?;
    assert_ne!(a.ulValueLen, CK_UNAVAILABLE_INFORMATION, "CKR_OK with CK_UNAVAILABLE_INFORMATION for 0x{t:x}");
    let mut buf = vec![0u8; a.ulValueLen as usize];
    a.pValue = buf.as_mut_ptr() as *mut c_void;
    rv(ck!(C_GetAttributeValue, s, o, &mut a, 1))?;
    buf.truncate(a.ulValueLen as usize);
    Ok(buf)
}
pub fn get_bool(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> R<bool> {
    let v = get_attr(s, o, t)?;
    assert_eq!(v.len(), 1, "CK_BBOOL attribute 0x{t:x} has length {}", v.len());
    Ok(v[0] != 0)
}
pub fn get_ulong(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> R<CK_ULONG> {
    let v = get_attr(s, o, t)?;
    Ok(CK_ULONG::from_ne_bytes(v.as_slice().try_into().expect("CK_ULONG attribute length")))
}
pub fn set_attrs(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, a: &[Attr]) -> R<()> {
    let mut t = raw_tmpl(a);
    rv(ck!(C_SetAttributeValue, s, o, t.as_mut_ptr(), t.len() as CK_ULONG))
}
/// `C_GenerateKeyPair`: (public, private).
pub fn gen_key_pair(s: CK_SESSION_HANDLE, m: &Mech, public: &[Attr], private: &[Attr]) -> R<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let (mut pt, mut qt) = (raw_tmpl(public), raw_tmpl(private));
    let (mut hp, mut hq) = (CK_INVALID_HANDLE, CK_INVALID_HANDLE);
    m.with(|mp| rv(ck!(C_GenerateKeyPair, s, mp, pt.as_mut_ptr(), pt.len() as CK_ULONG, qt.as_mut_ptr(), qt.len() as CK_ULONG, &mut hp, &mut hq)))?;
    Ok((hp, hq))
}
pub fn gen_key(s: CK_SESSION_HANDLE, m: &Mech, a: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    let mut t = raw_tmpl(a);
    let mut h = CK_INVALID_HANDLE;
    m.with(|mp| rv(ck!(C_GenerateKey, s, mp, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h)))?;
    Ok(h)
}

/// The single-part "length query, then call" convention for C_Encrypt, C_Sign, ...
/// `call(out, &mut len)` is made twice: with NULL, then with a buffer of the returned length.
pub fn two_call(mut call: impl FnMut(*mut u8, *mut CK_ULONG) -> CK_RV) -> R<Vec<u8>> {
    let mut len: CK_ULONG = 0;
    rv(call(ptr::null_mut(), &mut len))?;
    let mut out = vec![0u8; len as usize];
    rv(call(out.as_mut_ptr(), &mut len))?;
    assert!(len as usize <= out.len(), "second call reports more data ({len}) than the first ({})", out.len());
    out.truncate(len as usize);
    Ok(out)
}

pub fn encrypt_init(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE) -> R<()> {
    m.with(|mp| rv(ck!(C_EncryptInit, s, mp, k)))
}
pub fn decrypt_init(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE) -> R<()> {
    m.with(|mp| rv(ck!(C_DecryptInit, s, mp, k)))
}
pub fn encrypt(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, data: &[u8]) -> R<Vec<u8>> {
    encrypt_init(s, m, k)?;
    two_call(|o, l| ck!(C_Encrypt, s, data.as_ptr() as *mut u8, data.len() as CK_ULONG, o, l))
}
pub fn decrypt(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, data: &[u8]) -> R<Vec<u8>> {
    decrypt_init(s, m, k)?;
    two_call(|o, l| ck!(C_Decrypt, s, data.as_ptr() as *mut u8, data.len() as CK_ULONG, o, l))
}
/// Multi-part: C_EncryptInit, C_EncryptUpdate per chunk, C_EncryptFinal (each with a length query).
pub fn encrypt_parts(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, chunks: &[&[u8]]) -> R<Vec<u8>> {
    encrypt_init(s, m, k)?;
    let mut out = vec![];
    for c in chunks {
        out.extend(two_call(|o, l| ck!(C_EncryptUpdate, s, c.as_ptr() as *mut u8, c.len() as CK_ULONG, o, l))?);
    }
    out.extend(two_call(|o, l| ck!(C_EncryptFinal, s, o, l))?);
    Ok(out)
}
pub fn decrypt_parts(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, chunks: &[&[u8]]) -> R<Vec<u8>> {
    decrypt_init(s, m, k)?;
    let mut out = vec![];
    for c in chunks {
        out.extend(two_call(|o, l| ck!(C_DecryptUpdate, s, c.as_ptr() as *mut u8, c.len() as CK_ULONG, o, l))?);
    }
    out.extend(two_call(|o, l| ck!(C_DecryptFinal, s, o, l))?);
    Ok(out)
}
/// Splits `data` into chunks of the given sizes (cycled) — odd sizes exercise buffering.
pub fn chunks<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = vec![];
    let mut rest = data;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}
pub const ODD: &[usize] = &[1, 7, 16, 0, 17, 3, 31];

pub fn digest_init(s: CK_SESSION_HANDLE, m: CK_MECHANISM_TYPE) -> R<()> {
    Mech::new(m).with(|mp| rv(ck!(C_DigestInit, s, mp)))
}
pub fn digest(s: CK_SESSION_HANDLE, m: CK_MECHANISM_TYPE, data: &[u8]) -> R<Vec<u8>> {
    digest_init(s, m)?;
    two_call(|o, l| ck!(C_Digest, s, data.as_ptr() as *mut u8, data.len() as CK_ULONG, o, l))
}
pub fn digest_update(s: CK_SESSION_HANDLE, data: &[u8]) -> R<()> {
    rv(ck!(C_DigestUpdate, s, data.as_ptr() as *mut u8, data.len() as CK_ULONG))
}
pub fn digest_final(s: CK_SESSION_HANDLE) -> R<Vec<u8>> {
    two_call(|o, l| ck!(C_DigestFinal, s, o, l))
}
pub fn digest_parts(s: CK_SESSION_HANDLE, m: CK_MECHANISM_TYPE, chunks: &[&[u8]]) -> R<Vec<u8>> {
    digest_init(s, m)?;
    for c in chunks {
        digest_update(s, c)?;
    }
    digest_final(s)
}

pub fn sign_init(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE) -> R<()> {
    m.with(|mp| rv(ck!(C_SignInit, s, mp, k)))
}
pub fn verify_init(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE) -> R<()> {
    m.with(|mp| rv(ck!(C_VerifyInit, s, mp, k)))
}
pub fn sign(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, data: &[u8]) -> R<Vec<u8>> {
    sign_init(s, m, k)?;
    two_call(|o, l| ck!(C_Sign, s, data.as_ptr() as *mut u8, data.len() as CK_ULONG, o, l))
}
pub fn sign_parts(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, chunks: &[&[u8]]) -> R<Vec<u8>> {
    sign_init(s, m, k)?;
    for c in chunks {
        rv(ck!(C_SignUpdate, s, c.as_ptr() as *mut u8, c.len() as CK_ULONG))?;
    }
    two_call(|o, l| ck!(C_SignFinal, s, o, l))
}
pub fn verify(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, data: &[u8], sig: &[u8]) -> R<()> {
    verify_init(s, m, k)?;
    rv(ck!(C_Verify, s, data.as_ptr() as *mut u8, data.len() as CK_ULONG, sig.as_ptr() as *mut u8, sig.len() as CK_ULONG))
}
pub fn verify_parts(s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE, chunks: &[&[u8]], sig: &[u8]) -> R<()> {
    verify_init(s, m, k)?;
    for c in chunks {
        rv(ck!(C_VerifyUpdate, s, c.as_ptr() as *mut u8, c.len() as CK_ULONG))?;
    }
    rv(ck!(C_VerifyFinal, s, sig.as_ptr() as *mut u8, sig.len() as CK_ULONG))
}

pub fn wrap(s: CK_SESSION_HANDLE, m: &Mech, wk: CK_OBJECT_HANDLE, k: CK_OBJECT_HANDLE) -> R<Vec<u8>> {
    m.with(|mp| two_call(|o, l| ck!(C_WrapKey, s, mp, wk, k, o, l)))
}
pub fn unwrap(s: CK_SESSION_HANDLE, m: &Mech, uk: CK_OBJECT_HANDLE, wrapped: &[u8], a: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    let mut t = raw_tmpl(a);
    let mut h = CK_INVALID_HANDLE;
    m.with(|mp| {
        rv(ck!(C_UnwrapKey, s, mp, uk, wrapped.as_ptr() as *mut u8, wrapped.len() as CK_ULONG, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h))
    })?;
    Ok(h)
}

pub fn random(s: CK_SESSION_HANDLE, n: usize) -> R<Vec<u8>> {
    let mut out = vec![0u8; n];
    rv(ck!(C_GenerateRandom, s, out.as_mut_ptr(), n as CK_ULONG))?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Misc

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// True if `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Child processes with more control (crash, load and fault tests)

/// The command `run_child` would run, not yet started: the caller may add environment,
/// pipes or a `pre_exec` hook, then spawn it and check it with `assert_child_ok`.
pub fn child_command(test: &str, slot: CK_SLOT_ID, role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("KF_CHILD_CONFIG", &fx().config)
        .env("KF_CHILD_SLOT", slot.to_string())
        .env("KF_CHILD_ROLE", role);
    c
}

/// Panics with the child's output unless it exited 0 and printed `KF_CHILD_DONE <role>`.
#[track_caller]
pub fn assert_child_ok(out: &std::process::Output, test: &str, role: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("{CHILD_DONE} {role}")),
        "child {test}/{role} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// A small xorshift generator: the tests need unpredictable choices, not cryptographic ones.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the OS; the seed is returned so that a failure can report it.
    pub fn from_os() -> Rng {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("getrandom");
        Rng::seeded(u64::from_ne_bytes(b))
    }
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in `lo..hi` (hi exclusive, hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `PRAGMA integrity_check` on a token file, opened read-only with the test binary's own
/// SQLite. Never call it on a file the module has open in this process: two SQLite copies in
/// one process do not see each other's POSIX locks.
pub fn integrity_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()));
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .unwrap_or_else(|e| panic!("integrity_check on {}: {e}", db.display()));
    rows.join("\n")
}

// ---------------------------------------------------------------------------------------------
// One direction of a cipher, raw

/// The encrypt (`Cipher(true)`) or decrypt (`Cipher(false)`) calls, with the code each
/// returns and the length it reports: for tests that check each step of an operation.
#[derive(Clone, Copy)]
pub struct Cipher(pub bool);

impl Cipher {
    pub fn init(self, s: CK_SESSION_HANDLE, m: &Mech, k: CK_OBJECT_HANDLE) -> R<()> {
        if self.0 { encrypt_init(s, m, k) } else { decrypt_init(s, m, k) }
    }
    /// `C_EncryptUpdate`/`C_DecryptUpdate`; `out: None` asks for the length only.
    pub fn update(self, s: CK_SESSION_HANDLE, input: &[u8], out: Option<&mut [u8]>) -> (CK_RV, usize) {
        let f = if self.0 { funcs().C_EncryptUpdate } else { funcs().C_DecryptUpdate }.unwrap();
        let (p, mut l) = out_buf(out);
        (unsafe { f(s, input.as_ptr() as *mut u8, input.len() as CK_ULONG, p, &mut l) }, l as usize)
    }
    /// `C_Encrypt`/`C_Decrypt`.
    pub fn once(self, s: CK_SESSION_HANDLE, input: &[u8], out: Option<&mut [u8]>) -> (CK_RV, usize) {
        let f = if self.0 { funcs().C_Encrypt } else { funcs().C_Decrypt }.unwrap();
        let (p, mut l) = out_buf(out);
        (unsafe { f(s, input.as_ptr() as *mut u8, input.len() as CK_ULONG, p, &mut l) }, l as usize)
    }
    /// `C_EncryptFinal`/`C_DecryptFinal`.
    pub fn fin(self, s: CK_SESSION_HANDLE, out: Option<&mut [u8]>) -> (CK_RV, usize) {
        let f = if self.0 { funcs().C_EncryptFinal } else { funcs().C_DecryptFinal }.unwrap();
        let (p, mut l) = out_buf(out);
        (unsafe { f(s, p, &mut l) }, l as usize)
    }
}

fn out_buf(out: Option<&mut [u8]>) -> (*mut u8, CK_ULONG) {
    match out {
        Some(b) => (b.as_mut_ptr(), b.len() as CK_ULONG),
        None => (ptr::null_mut(), 0),
    }
}

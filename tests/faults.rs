//! Faults of the medium under a soft token, produced for real in child processes:
//!
//! - a read-only token: the token directory bind-mounted read-only in a private mount
//!   namespace (root's chmod would not stop root), and an immutable file (`chattr +i`);
//! - a full disk: a 1 MiB tmpfs mounted in a private mount namespace, filled up; and the file
//!   size limit (`RLIMIT_FSIZE`, SIGXFSZ ignored);
//! - a damaged token file: a page overwritten with random bytes, a few random bytes in the
//!   middle, a garbage header, truncations;
//! - a locked PIN across a restart of the module.
//!
//! Each scenario has its own directory and configuration (slot 1); the faulty process is a
//! re-execution of this test binary. The mount namespace tricks need CAP_SYS_ADMIN (the tests
//! run as root here); `KEYFRONT_FAULTS_NO_MOUNT=1` skips those scenarios elsewhere.
mod common;
use common::*;

use std::ffi::CString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::ptr;

const SLOT: CK_SLOT_ID = 1;
const PUB_VALUE: &[u8] = b"public data object value, stored in clear";
const PRIV_VALUE: &[u8] = b"private data object value, sealed in the file";
const KEY_VALUE: [u8; 32] = *b"0123456789abcdef0123456789ABCDEF";
const NEW_PIN: &[u8] = b"another-user-pin";

struct Scenario {
    dir: tempfile::TempDir,
    /// The token's own directory: what gets mounted read-only or replaced by a tmpfs.
    tokdir: PathBuf,
    db: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

fn scenario() -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let tokdir = dir.path().join("tok");
    std::fs::create_dir(&tokdir).unwrap();
    let db = tokdir.join("token.db");
    let config = dir.path().join("keyfront.toml");
    std::fs::write(&config, slot_toml(&db, "faults", Some(SLOT))).unwrap();
    let log = dir.path().join("keyfront.log");
    Scenario { dir, tokdir, db, config, log }
}

impl Scenario {
    /// This binary's test `test` as role `role`, on this scenario's configuration and log.
    fn child(&self, test: &str, role: &str) -> Command {
        let mut c = child_command(test, SLOT, role);
        c.env("KF_CHILD_CONFIG", &self.config).env("KEYFRONT_LOG_FILE", &self.log).env("KEYFRONT_LOG", "info");
        c
    }
    fn run(&self, test: &str, role: &str) -> Output {
        let out = self.child(test, role).output().expect("spawn child");
        assert_child_ok(&out, test, role);
        out
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn mounts_allowed() -> bool {
    if std::env::var_os("KEYFRONT_FAULTS_NO_MOUNT").is_some() {
        println!("KEYFRONT_FAULTS_NO_MOUNT set: scenario skipped");
        return false;
    }
    true
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn os_err(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e} (needs CAP_SYS_ADMIN; KEYFRONT_FAULTS_NO_MOUNT=1 skips)"))
}

/// In the forked child before exec: a private mount namespace (nothing leaks to the host).
/// (The source and type of a bind or propagation mount are ignored; "none" rather than NULL
/// keeps valgrind quiet.)
unsafe fn private_mount_ns() -> std::io::Result<()> {
    if libc::unshare(libc::CLONE_NEWNS) != 0 {
        return Err(os_err("unshare(CLONE_NEWNS)"));
    }
    if libc::mount(c"none".as_ptr(), c"/".as_ptr(), c"none".as_ptr(), libc::MS_REC | libc::MS_PRIVATE, ptr::null()) != 0 {
        return Err(os_err("mount --make-rprivate /"));
    }
    Ok(())
}

/// `cmd` runs with `dir` bind-mounted read-only over itself.
fn with_read_only_dir(cmd: &mut Command, dir: &Path) {
    let d = cstr(dir);
    unsafe {
        cmd.pre_exec(move || {
            private_mount_ns()?;
            if libc::mount(d.as_ptr(), d.as_ptr(), c"none".as_ptr(), libc::MS_BIND, ptr::null()) != 0 {
                return Err(os_err("mount --bind"));
            }
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
            if libc::mount(c"none".as_ptr(), d.as_ptr(), c"none".as_ptr(), flags, ptr::null()) != 0 {
                return Err(os_err("mount -o remount,bind,ro"));
            }
            Ok(())
        });
    }
}

/// `cmd` runs with a fresh tmpfs of `size` mounted on `dir`.
fn with_tmpfs(cmd: &mut Command, dir: &Path, size: &str) {
    let d = cstr(dir);
    let opts = CString::new(format!("size={size},mode=0700")).unwrap();
    unsafe {
        cmd.pre_exec(move || {
            private_mount_ns()?;
            if libc::mount(c"tmpfs".as_ptr(), d.as_ptr(), c"tmpfs".as_ptr(), 0, opts.as_ptr().cast()) != 0 {
                return Err(os_err("mount -t tmpfs"));
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Token contents written by `populate` and checked by `check_contents`

fn populate() {
    setup_token(SLOT, "faults");
    let s = user_session(SLOT);
    create(s, &data_tmpl("pub-data", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false), av(CKA_VALUE, PUB_VALUE)])).unwrap();
    create(s, &data_tmpl("priv-data", &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true), av(CKA_VALUE, PRIV_VALUE)])).unwrap();
    aes_key(
        s,
        &KEY_VALUE,
        &[ab(CKA_TOKEN, true), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true), av(CKA_LABEL, "aes-key")],
    );
    close(s).unwrap();
}

fn one(s: CK_SESSION_HANDLE, label: &str) -> Result<CK_OBJECT_HANDLE, String> {
    match find(s, &[av(CKA_LABEL, label)]) {
        Ok(h) if h.len() == 1 => Ok(h[0]),
        Ok(h) => Err(format!("{label}: found {} objects", h.len())),
        Err(e) => Err(format!("find {label}: {e:?}")),
    }
}

fn value_is(s: CK_SESSION_HANDLE, label: &str, want: &[u8]) -> Result<(), String> {
    let h = one(s, label)?;
    match get_attr(s, h, CKA_VALUE) {
        Ok(v) if v == want => Ok(()),
        Ok(v) => Err(format!("{label}: CKA_VALUE differs ({} bytes)", v.len())),
        Err(e) => Err(format!("{label}: CKA_VALUE: {e:?}")),
    }
}

/// What `populate` stored, read in `s` (the user logged in): failures as text.
fn check_contents(s: CK_SESSION_HANDLE) -> Vec<String> {
    let mut errors = vec![];
    for (label, v) in [("pub-data", PUB_VALUE), ("priv-data", PRIV_VALUE), ("aes-key", &KEY_VALUE[..])] {
        if let Err(e) = value_is(s, label, v) {
            errors.push(e);
        }
    }
    // The stored key encrypts as the same key imported as a session object.
    if let Ok(k) = one(s, "aes-key") {
        let block = [0x5au8; 16];
        let ecb = Mech::new(CKM_AES_ECB);
        match (encrypt(s, &ecb, k, &block), create(s, &aes_tmpl(&KEY_VALUE, &[]))) {
            (Ok(a), Ok(sk)) => {
                if encrypt(s, &ecb, sk, &block).ok() != Some(a) {
                    errors.push("aes-key encrypts differently from its value".into());
                }
                let _ = destroy(s, sk);
            }
            (a, b) => errors.push(format!("aes-key: encrypt {:?}, session key import {:?}", a.err(), b.err())),
        }
    }
    errors
}

fn reinitialize() {
    assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
    assert_rv(ck!(C_Initialize, ptr::null_mut()), CKR_OK);
}

// ---------------------------------------------------------------------------------------------
// Read-only token

/// In the child: the token file cannot be written. Reads (with a login) must work, every
/// write must fail with CKR_TOKEN_WRITE_PROTECTED and change nothing.
fn read_only_checks() {
    let mut errors: Vec<String> = vec![];
    let mut note = |what: String| errors.push(what);
    let wp = CKR_TOKEN_WRITE_PROTECTED;
    match token_info(SLOT) {
        Ok(i) => println!("KF_FAULT read-only token flags 0x{:x} (CKF_WRITE_PROTECTED {})", i.flags, i.flags & CKF_WRITE_PROTECTED != 0),
        Err(e) => note(format!("C_GetTokenInfo: {e:?}")),
    }
    let r = open(SLOT, false).unwrap_or_else(|e| panic!("read-only session on a read-only token: {e:?}"));
    if let Err(e) = value_is(r, "pub-data", PUB_VALUE) {
        note(format!("public read without login: {e}"));
    }
    let rw = match open(SLOT, true) {
        Ok(h) => Some(h),
        Err(Ck(CKR_TOKEN_WRITE_PROTECTED)) => None,
        Err(e) => {
            note(format!("C_OpenSession(RW): expected CKR_OK or CKR_TOKEN_WRITE_PROTECTED, got {e:?}"));
            None
        }
    };
    let s = rw.unwrap_or(r);
    let logged_in = match login(s, CKU_USER, USER_PIN) {
        Ok(()) => {
            for e in check_contents(s) {
                note(format!("read after login: {e}"));
            }
            true
        }
        Err(e) => {
            note(format!("C_Login(CKU_USER) on a read-only token: expected CKR_OK, got {e:?}"));
            false
        }
    };
    if let Some(s) = rw {
        // Public objects only, so that every write is allowed without a login too.
        let public = [ab(CKA_TOKEN, true), ab(CKA_PRIVATE, false)];
        let want = |what: &str, got: R<()>, note: &mut dyn FnMut(String)| {
            if got != Err(Ck(wp)) {
                note(format!("{what}: expected {}, got {got:?}", rv_name(wp)));
            }
        };
        want("C_CreateObject(token data)", create(s, &data_tmpl("new", &public)).map(drop), &mut note);
        want("C_GenerateKey(token AES)", gen_aes(s, 16, &public).map(drop), &mut note);
        match one(s, "pub-data") {
            Ok(h) => {
                want("C_SetAttributeValue(CKA_LABEL)", set_attrs(s, h, &[av(CKA_LABEL, "renamed")]), &mut note);
                want("C_CopyObject", copy(s, h, &[av(CKA_LABEL, "copied")]).map(drop), &mut note);
                want("C_DestroyObject", destroy(s, h), &mut note);
            }
            Err(e) => note(e),
        }
        want("C_SetPIN", set_pin(s, USER_PIN, NEW_PIN), &mut note);
        // Session objects do not touch the file.
        if let Err(e) = create(s, &data_tmpl("session-obj", &[ab(CKA_PRIVATE, false)])) {
            note(format!("session object on a read-only token: {e:?}"));
        }
    }
    // Nothing changed: 3 token objects, 1 of them public.
    let want_n = if logged_in { 3 } else { 1 };
    match find(r, &[ab(CKA_TOKEN, true)]) {
        Ok(all) if all.len() == want_n => {}
        Ok(all) => note(format!("{} token objects after the failed writes ({want_n} expected)", all.len())),
        Err(e) => note(format!("find all: {e:?}")),
    }
    if let Err(e) = value_is(r, "pub-data", PUB_VALUE) {
        note(format!("public read after the failed writes: {e}"));
    }
    let log = std::fs::read_to_string(std::env::var("KEYFRONT_LOG_FILE").unwrap()).unwrap_or_default();
    if !errors.is_empty() {
        errors.push(format!("keyfront log:\n{}", log.trim_end()));
    }
    println!("KF_FAULT read-only failures: {}", errors.len().saturating_sub(1));
    assert!(errors.is_empty(), "read-only token:\n{}", errors.join("\n"));
}

#[test]
fn read_only_mount() {
    const T: &str = "read_only_mount";
    if let Some(role) = child_role() {
        fx();
        match role.as_str() {
            "populate" => populate(),
            "ro" => read_only_checks(),
            "check" => {
                let s = user_session(SLOT);
                let e = check_contents(s);
                assert!(e.is_empty(), "{e:?}");
            }
            r => panic!("unknown role {r}"),
        }
        assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
        return child_done(&role);
    }
    if !mounts_allowed() {
        return;
    }
    let sc = scenario();
    sc.run(T, "populate");
    let files: Vec<String> = std::fs::read_dir(&sc.tokdir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    println!("KF_FAULT token directory before the read-only mount: {files:?}");
    let mut c = sc.child(T, "ro");
    with_read_only_dir(&mut c, &sc.tokdir);
    let out = c.output().expect("spawn child in a private mount namespace");
    println!("{}", String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("KF_FAULT")).collect::<Vec<_>>().join("\n"));
    assert_child_ok(&out, T, "ro");
    sc.run(T, "check");
    assert_eq!(integrity_check(&sc.db), "ok");
}

/// Removes the immutable flag when the test ends, so that the directory can be removed.
struct Immutable(PathBuf);
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn immutable_file() {
    const T: &str = "immutable_file";
    if let Some(role) = child_role() {
        fx();
        match role.as_str() {
            "populate" => populate(),
            "ro" => read_only_checks(),
            r => panic!("unknown role {r}"),
        }
        assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
        return child_done(&role);
    }
    let sc = scenario();
    sc.run(T, "populate");
    match Command::new("chattr").arg("+i").arg(&sc.db).status() {
        Ok(st) if st.success() => {}
        other => {
            println!("chattr +i not possible here ({other:?}): scenario skipped");
            return;
        }
    }
    let guard = Immutable(sc.db.clone());
    let out = sc.child(T, "ro").output().expect("spawn child");
    println!("{}", String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("KF_FAULT")).collect::<Vec<_>>().join("\n"));
    drop(guard);
    assert_child_ok(&out, T, "ro");
    assert_eq!(integrity_check(&sc.db), "ok");
}

// ---------------------------------------------------------------------------------------------
// Full disk

/// Writes until one fails; every failure must be CKR_DEVICE_MEMORY or CKR_DEVICE_ERROR, and
/// every write that returned CKR_OK must still be there afterwards. Returns the labels and
/// values of the data objects stored.
fn write_until_full(s: CK_SESSION_HANDLE, fill: impl Fn()) -> Vec<(String, Vec<u8>)> {
    let ok_rvs = [CKR_DEVICE_MEMORY, CKR_DEVICE_ERROR];
    let mut rng = Rng::seeded(7);
    let mut stored = vec![];
    let mut failures: Vec<String> = vec![];
    fill();
    for i in 0..400 {
        let label = format!("full-{i}");
        let value = rng.bytes(8192);
        let r = create(s, &data_tmpl(&label, &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, i % 2 == 0), av(CKA_VALUE, &value)]));
        match r {
            Ok(_) => stored.push((label, value)),
            Err(Ck(rv)) if ok_rvs.contains(&rv) => failures.push(format!("C_CreateObject: {}", rv_name(rv))),
            Err(e) => panic!("C_CreateObject on a full disk: expected CKR_DEVICE_MEMORY or CKR_DEVICE_ERROR, got {e:?}"),
        }
        if failures.len() >= 3 {
            break;
        }
    }
    assert!(!failures.is_empty(), "400 writes of 8 KiB and the disk is never full");
    // Other kinds of write on the full disk.
    let pub_h = one(s, "pub-data").unwrap();
    let others: Vec<(&str, R<()>)> = vec![
        ("C_GenerateKey", gen_aes(s, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "full-gen")]).map(drop)),
        ("C_SetAttributeValue", set_attrs(s, pub_h, &[av(CKA_LABEL, "pub-data-renamed")])),
        ("C_SetPIN", set_pin(s, USER_PIN, NEW_PIN)),
    ];
    let mut pin_changed = false;
    let mut renamed = false;
    let mut gen = false;
    for (what, r) in others {
        match r {
            Ok(()) => {
                pin_changed |= what == "C_SetPIN";
                renamed |= what == "C_SetAttributeValue";
                gen |= what == "C_GenerateKey";
            }
            Err(Ck(rv)) if ok_rvs.contains(&rv) => failures.push(format!("{what}: {}", rv_name(rv))),
            Err(e) => panic!("{what} on a full disk: expected CKR_DEVICE_MEMORY or CKR_DEVICE_ERROR, got {e:?}"),
        }
    }
    // Undo what succeeded, so that the checks below see the populated state.
    if renamed {
        let _ = set_attrs(s, pub_h, &[av(CKA_LABEL, "pub-data")]);
    }
    if gen {
        stored.push(("full-gen".into(), vec![]));
    }
    if pin_changed {
        let _ = set_pin(s, NEW_PIN, USER_PIN);
    }
    println!("KF_FAULT full disk: {} writes stored, then: {}", stored.len(), failures.join(", "));
    stored
}

fn stored_errors(s: CK_SESSION_HANDLE, stored: &[(String, Vec<u8>)], when: &str) -> Vec<String> {
    let mut errors = check_contents(s);
    for (label, value) in stored {
        let r = if value.is_empty() { one(s, label).map(drop) } else { value_is(s, label, value) };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    errors.into_iter().map(|e| format!("{when}: {e}")).collect()
}

fn check_stored(s: CK_SESSION_HANDLE, stored: &[(String, Vec<u8>)], when: &str) {
    let errors = stored_errors(s, stored, when);
    assert!(errors.is_empty(), "stored data lost or unreadable:\n{}", errors.join("\n"));
}

#[test]
fn full_disk_tmpfs() {
    const T: &str = "full_disk_tmpfs";
    if let Some(role) = child_role() {
        fx();
        assert_eq!(role, "full");
        let dir = PathBuf::from(std::env::var("KF_FAULT_DIR").unwrap());
        populate();
        let s = user_session(SLOT);
        let filler = dir.join("filler");
        let stored = write_until_full(s, || {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            for chunk in [65536usize, 4096, 512, 1] {
                while f.write_all(&vec![0u8; chunk]).is_ok() {}
            }
            let _ = f.sync_all();
        });
        check_stored(s, &stored, "on the full disk, same session");
        // Restart the module on the still full disk (checkpoints may fail; nothing may be lost,
        // and reading needs no space).
        reinitialize();
        let mut errors: Vec<String> = vec![];
        let s = open(SLOT, true).unwrap();
        match login(s, CKU_USER, USER_PIN) {
            Ok(()) => errors.extend(stored_errors(s, &stored, "on the full disk, after C_Finalize/C_Initialize")),
            Err(e) => {
                errors.push(format!("C_Login(CKU_USER) on the full disk after a restart: expected CKR_OK, got {e:?}"));
                if let Err(e) = value_is(s, "pub-data", PUB_VALUE) {
                    errors.push(format!("public read on the full disk after a restart: {e}"));
                }
            }
        }
        // Space again: writes work again, and everything is there.
        std::fs::remove_file(&filler).unwrap();
        let s = user_session(SLOT);
        create(s, &data_tmpl("after-space-freed", &[ab(CKA_TOKEN, true)])).expect("write after space was freed");
        reinitialize();
        let s = user_session(SLOT);
        errors.extend(stored_errors(s, &stored, "after space was freed and a restart"));
        assert_eq!(find_label(s, "after-space-freed").len(), 1);
        assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
        let ic = integrity_check(&dir.join("token.db"));
        assert_eq!(ic, "ok", "integrity_check after the full disk");
        if !errors.is_empty() {
            let log = std::fs::read_to_string(std::env::var("KEYFRONT_LOG_FILE").unwrap()).unwrap_or_default();
            panic!("full disk:\n{}\nkeyfront log:\n{}", errors.join("\n"), log.trim_end());
        }
        return child_done(&role);
    }
    if !mounts_allowed() {
        return;
    }
    let sc = scenario();
    let mut c = sc.child(T, "full");
    c.env("KF_FAULT_DIR", &sc.tokdir);
    with_tmpfs(&mut c, &sc.tokdir, "1m");
    let out = c.output().expect("spawn child with a tmpfs");
    println!("{}", String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("KF_FAULT")).collect::<Vec<_>>().join("\n"));
    assert_child_ok(&out, T, "full");
}

#[test]
fn file_size_limit() {
    const T: &str = "file_size_limit";
    if let Some(role) = child_role() {
        fx();
        match role.as_str() {
            "populate" => populate(),
            "limited" => {
                let s = user_session(SLOT);
                let stored = write_until_full(s, || {});
                check_stored(s, &stored, "over RLIMIT_FSIZE, same session");
                reinitialize();
                let s = user_session(SLOT);
                check_stored(s, &stored, "over RLIMIT_FSIZE, after C_Finalize/C_Initialize");
                // Hand the list to the unlimited process that checks again.
                let list: String = stored.iter().map(|(l, v)| format!("{l} {}\n", to_hex(v))).collect();
                std::fs::write(std::env::var("KF_FAULT_LIST").unwrap(), list).unwrap();
            }
            "check" => {
                let list = std::fs::read_to_string(std::env::var("KF_FAULT_LIST").unwrap()).unwrap();
                let stored: Vec<(String, Vec<u8>)> = list
                    .lines()
                    .map(|l| {
                        let (a, b) = l.split_once(' ').unwrap_or((l, ""));
                        (a.to_string(), hex(b))
                    })
                    .collect();
                let s = user_session(SLOT);
                check_stored(s, &stored, "in a new process without the limit");
                create(s, &data_tmpl("after-limit", &[ab(CKA_TOKEN, true)])).expect("write without the limit");
            }
            r => panic!("unknown role {r}"),
        }
        assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
        return child_done(&role);
    }
    let sc = scenario();
    sc.run(T, "populate");
    let limit = std::fs::metadata(&sc.db).unwrap().len() + 256 * 1024;
    let list = sc.dir.path().join("stored");
    let mut c = sc.child(T, "limited");
    c.env("KF_FAULT_LIST", &list);
    unsafe {
        c.pre_exec(move || {
            // Writing past the limit then fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let r = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.output().expect("spawn child with RLIMIT_FSIZE");
    println!("{}", String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("KF_FAULT")).collect::<Vec<_>>().join("\n"));
    assert_child_ok(&out, T, "limited");
    let out = sc.child(T, "check").env("KF_FAULT_LIST", &list).output().unwrap();
    assert_child_ok(&out, T, "check");
    assert_eq!(integrity_check(&sc.db), "ok");
}

// ---------------------------------------------------------------------------------------------
// Damaged token file

/// In the child: C_Initialize, C_GetTokenInfo, C_OpenSession, C_Login, then read every object.
/// Nothing is asserted here: the parent judges what was printed (and that we did not crash).
fn probe() {
    let mut steps: Vec<(&str, String)> = vec![];
    let name = |rv: CK_RV| format!("0x{rv:x}/{}", rv_name(rv).split('(').next().unwrap_or(""));
    'run: {
        let rv = ck!(C_Initialize, ptr::null_mut());
        steps.push(("C_Initialize", name(rv)));
        if rv != CKR_OK {
            break 'run;
        }
        let mut ti = CK_TOKEN_INFO::default();
        let rv = ck!(C_GetTokenInfo, SLOT, &mut ti);
        steps.push(("C_GetTokenInfo", name(rv)));
        if rv != CKR_OK {
            break 'run;
        }
        let s = match open(SLOT, true) {
            Ok(s) => {
                steps.push(("C_OpenSession", name(CKR_OK)));
                s
            }
            Err(Ck(rv)) => {
                steps.push(("C_OpenSession", name(rv)));
                break 'run;
            }
        };
        let rv = login(s, CKU_USER, USER_PIN).err().map_or(CKR_OK, |e| e.0);
        steps.push(("C_Login", name(rv)));
        if rv != CKR_OK {
            break 'run;
        }
        let e = check_contents(s);
        steps.push(("read", if e.is_empty() { name(CKR_OK) } else { e.join("; ").replace(' ', "_") }));
    }
    println!("KF_PROBE {}", steps.iter().map(|(a, b)| format!("{a}={b}")).collect::<Vec<_>>().join(" "));
}

/// What a damaged file may answer: the call fails cleanly with a code saying the device or the
/// token is broken. (A damaged wrapped PIN key is indistinguishable from a wrong PIN.)
const CLEAN: &[CK_RV] = &[
    CKR_DEVICE_ERROR,
    CKR_GENERAL_ERROR,
    CKR_TOKEN_NOT_RECOGNIZED,
    CKR_TOKEN_NOT_PRESENT,
    CKR_DEVICE_REMOVED,
    CKR_PIN_INCORRECT,
];

/// The code of a probe result `0x30/DeviceError`; None for a read result.
fn rv_code(r: &str) -> Option<CK_RV> {
    r.strip_prefix("0x").and_then(|h| CK_RV::from_str_radix(h.split('/').next()?, 16).ok())
}

#[test]
fn damaged_token_file() {
    const T: &str = "damaged_token_file";
    if let Some(role) = child_role() {
        match role.as_str() {
            "populate" => {
                fx();
                populate();
                assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
            }
            "probe" => {
                // Not fx(): its C_Initialize must not fail the child before the probe runs.
                std::env::set_var("KEYFRONT_CONFIG", std::env::var("KF_CHILD_CONFIG").unwrap());
                probe();
            }
            r => panic!("unknown role {r}"),
        }
        return child_done(&role);
    }
    let base = scenario();
    base.run(T, "populate");
    let good = std::fs::read(&base.db).unwrap();
    assert!(!Path::new(&format!("{}-wal", base.db.display())).exists(), "the WAL was not checkpointed at C_Finalize");
    let len = good.len();
    let page = 4096;
    let pages = len / page;
    assert!(pages >= 4, "token file of {len} bytes: too small to damage its middle");
    let mut rng = Rng::seeded(0x5eed);
    let mut variants: Vec<(&str, Vec<u8>)> = vec![];
    let mut v = good.clone();
    let mid = (pages / 2) * page;
    v[mid..mid + page].copy_from_slice(&rng.bytes(page));
    variants.push(("page in the middle overwritten with random bytes", v));
    for k in 0..pages {
        if k == 0 {
            continue;
        }
        let mut v = good.clone();
        let at = k * page + 8;
        v[at..at + 64].copy_from_slice(&rng.bytes(64));
        variants.push(("64 random bytes after a page header", v));
    }
    let mut v = good.clone();
    v[..100].copy_from_slice(&rng.bytes(100));
    variants.push(("database header overwritten", v));
    variants.push(("truncated to half (page boundary)", good[..mid].to_vec()));
    variants.push(("truncated mid-page", good[..mid + 1000].to_vec()));
    variants.push(("truncated to 100 bytes", good[..100].to_vec()));

    let mut failures = vec![];
    let mut summary = vec![];
    for (i, (what, bytes)) in variants.iter().enumerate() {
        let sc = scenario();
        std::fs::write(&sc.db, bytes).unwrap();
        let out = sc.child(T, "probe").output().expect("spawn probe");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("variant {i} ({what})");
        if let Some(sig) = out.status.signal() {
            failures.push(format!("{what}: the process died of signal {sig}:\n{stderr}"));
            continue;
        }
        let Some(line) = stdout.lines().find_map(|l| l.find("KF_PROBE ").map(|i| l[i + 9..].to_string())) else {
            failures.push(format!("{what}: no probe result ({}):\n{stdout}\n{stderr}", out.status));
            continue;
        };
        summary.push(format!("{what}: {line}"));
        let steps: Vec<(&str, &str)> = line.split(' ').filter_map(|w| w.split_once('=')).collect();
        let failed = steps.iter().find(|(_, r)| rv_code(r) != Some(CKR_OK));
        match failed {
            None => {} // The damage hit nothing the probe reads: the data was intact.
            Some((step, r)) if *step == "read" => failures.push(format!("{what}: reads succeed but return wrong data: {r}")),
            Some((step, r)) => {
                if !rv_code(r).is_some_and(|c| CLEAN.contains(&c)) {
                    failures.push(format!("{what}: {step} returned {r}, not a clean error"));
                }
                let log = sc.log_text();
                if !log.contains(&sc.db.display().to_string()) {
                    failures.push(format!(
                        "{what}: {step} failed with {r} but the log does not name {}; log:\n{}",
                        sc.db.display(),
                        log.trim_end()
                    ));
                }
            }
        }
    }
    println!("{}", summary.join("\n"));
    assert!(failures.is_empty(), "{} of {} damaged files handled badly:\n{}", failures.len(), variants.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// PIN lock-out across a restart

#[test]
fn lockout_survives_restart() {
    const T: &str = "lockout_survives_restart";
    if let Some(role) = child_role() {
        fx();
        if role == "lock" {
            setup_token(SLOT, "lockout");
        }
        let s = open(SLOT, true).unwrap();
        match role.as_str() {
            "lock" => {
                for i in 0..9 {
                    expect_rv(login(s, CKU_USER, format!("wrong-{i}").as_bytes()), CKR_PIN_INCORRECT);
                }
                expect_one_of(login(s, CKU_USER, b"wrong-last"), &[CKR_PIN_INCORRECT, CKR_PIN_LOCKED]);
                reinitialize();
                assert_ne!(token_flags(SLOT) & CKF_USER_PIN_LOCKED, 0, "lock-out lost at C_Finalize/C_Initialize");
                let s = open(SLOT, true).unwrap();
                expect_rv(login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED);
            }
            "locked" => {
                assert_ne!(token_flags(SLOT) & CKF_USER_PIN_LOCKED, 0, "lock-out lost in a new process");
                expect_rv(login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED);
                login(s, CKU_SO, SO_PIN).unwrap();
            }
            r => panic!("unknown role {r}"),
        }
        assert_rv(ck!(C_Finalize, ptr::null_mut()), CKR_OK);
        return child_done(&role);
    }
    let sc = scenario();
    sc.run(T, "lock");
    sc.run(T, "locked");
}

//! Crash consistency: a writer process loops over token writes and journals every one that
//! returned CKR_OK; the parent kills it with SIGKILL at a random moment, then checks that the
//! token file holds exactly what the journal says must be there.
//!
//! The journal (one line per event, fsync'd before the next call) is the model:
//!
//! ```text
//! begin gen L LEN | begin create L PRIVATE HEX | begin copy L SRC | begin rename OLD NEW
//! begin destroy L | begin setpin OLD NEW | begin initpin OLD NEW
//! ok [HEX]        the pending call returned CKR_OK (HEX: a generated key's value)
//! no              the verifier found that the pending call did not happen
//! ```
//!
//! A `begin` with no `ok` after it is the call in flight when the writer was killed (or whose
//! CKR_OK was not journaled yet): it may or may not have happened, but entirely or not at all.
//! Every `ok` call must hold. The verifier, a fresh process, checks that, then writes what it
//! found (`ok`/`no`) so that the next writer starts from an exact model.
//!
//! `KEYFRONT_CRASH_ITERATIONS` sets the number of kills (default 20).
mod common;
use common::*;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TEST: &str = "crash_consistency";
const PIN_A: &[u8] = USER_PIN;
const PIN_B: &[u8] = b"user-secret-2";
const READY: &str = "KF_WRITER_READY";

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Data { private: bool },
    Key { len: usize },
}

#[derive(Clone, Debug)]
struct Obj {
    kind: Kind,
    value: Vec<u8>,
}

#[derive(Clone, Debug)]
enum Op {
    Gen { label: String, len: usize },
    Create { label: String, private: bool, value: Vec<u8> },
    Copy { label: String, src: String },
    Rename { old: String, new: String },
    Destroy { label: String },
    SetPin { old: String, new: String },
    InitPin { old: String, new: String },
}

impl Op {
    fn line(&self) -> String {
        match self {
            Op::Gen { label, len } => format!("begin gen {label} {len}"),
            Op::Create { label, private, value } => format!("begin create {label} {} {}", *private as u8, to_hex(value)),
            Op::Copy { label, src } => format!("begin copy {label} {src}"),
            Op::Rename { old, new } => format!("begin rename {old} {new}"),
            Op::Destroy { label } => format!("begin destroy {label}"),
            Op::SetPin { old, new } => format!("begin setpin {old} {new}"),
            Op::InitPin { old, new } => format!("begin initpin {old} {new}"),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Op::Gen { .. } => "gen",
            Op::Create { .. } => "create",
            Op::Copy { .. } => "copy",
            Op::Rename { .. } => "rename",
            Op::Destroy { .. } => "destroy",
            Op::SetPin { .. } => "setpin",
            Op::InitPin { .. } => "initpin",
        }
    }
}

/// What the journal says must exist.
#[derive(Debug)]
struct Model {
    objects: BTreeMap<String, Obj>,
    pin: String,
    pending: Option<Op>,
    oks: usize,
}

impl Model {
    fn load(path: &Path) -> Model {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut m = Model {
            objects: BTreeMap::new(),
            pin: String::from_utf8(PIN_A.to_vec()).unwrap(),
            pending: None,
            oks: 0,
        };
        // A line cut short by the kill has no newline: it is ignored (and removed by the verifier).
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        for (n, line) in complete.lines().enumerate() {
            let w: Vec<&str> = line.split(' ').collect();
            let bad = || -> &str { bad_line(n, line) };
            match w[0] {
                "begin" => {
                    assert!(m.pending.is_none(), "journal line {}: begin while {:?} pending", n + 1, m.pending);
                    let s = |i: usize| w.get(i).copied().unwrap_or_else(bad).to_string();
                    m.pending = Some(match s(1).as_str() {
                        "gen" => Op::Gen { label: s(2), len: s(3).parse().unwrap() },
                        "create" => Op::Create { label: s(2), private: s(3) == "1", value: hex(&s(4)) },
                        "copy" => Op::Copy { label: s(2), src: s(3) },
                        "rename" => Op::Rename { old: s(2), new: s(3) },
                        "destroy" => Op::Destroy { label: s(2) },
                        "setpin" => Op::SetPin { old: s(2), new: s(3) },
                        "initpin" => Op::InitPin { old: s(2), new: s(3) },
                        _ => bad_line(n, line),
                    });
                }
                "ok" => {
                    let op = m.pending.take().unwrap_or_else(|| panic!("journal line {}: ok with nothing pending", n + 1));
                    m.apply(&op, w.get(1).map(|h| hex(h)));
                    m.oks += 1;
                }
                "no" => {
                    m.pending.take().unwrap_or_else(|| panic!("journal line {}: no with nothing pending", n + 1));
                }
                _ => bad_line(n, line),
            }
        }
        m
    }

    fn apply(&mut self, op: &Op, gen_value: Option<Vec<u8>>) {
        match op.clone() {
            Op::Gen { label, len } => {
                let value = gen_value.expect("ok line of a gen carries the value");
                assert_eq!(value.len(), len);
                self.objects.insert(label, Obj { kind: Kind::Key { len }, value });
            }
            Op::Create { label, private, value } => {
                self.objects.insert(label, Obj { kind: Kind::Data { private }, value });
            }
            Op::Copy { label, src } => {
                let o = self.objects[&src].clone();
                self.objects.insert(label, o);
            }
            Op::Rename { old, new } => {
                let o = self.objects.remove(&old).expect("renamed object in model");
                self.objects.insert(new, o);
            }
            Op::Destroy { label } => {
                self.objects.remove(&label).expect("destroyed object in model");
            }
            Op::SetPin { new, .. } | Op::InitPin { new, .. } => self.pin = new,
        }
    }
}

fn bad_line(n: usize, line: &str) -> ! {
    panic!("journal line {}: {line:?}", n + 1)
}

fn fail(what: &str, e: Ck) -> ! {
    panic!("writer: {what} failed: {e:?}")
}

struct Journal(std::fs::File);

impl Journal {
    fn open(path: &Path) -> Journal {
        Journal(std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open journal"))
    }
    fn log(&mut self, line: &str) {
        self.0.write_all(format!("{line}\n").as_bytes()).expect("write journal");
        self.0.sync_data().expect("fsync journal");
    }
}

fn journal_path() -> PathBuf {
    PathBuf::from(std::env::var("KF_CRASH_JOURNAL").expect("KF_CRASH_JOURNAL"))
}

// ---------------------------------------------------------------------------------------------
// Writer

fn writer(slot: CK_SLOT_ID) {
    let iter: u64 = std::env::var("KF_CRASH_ITER").unwrap().parse().unwrap();
    let path = journal_path();
    let mut model = Model::load(&path);
    assert!(model.pending.is_none(), "writer started with an unresolved call: {:?}", model.pending);
    let mut journal = Journal::open(&path);
    let mut rng = Rng::from_os();
    let s = open(slot, true).unwrap();
    login(s, CKU_USER, model.pin.as_bytes()).unwrap_or_else(|e| panic!("writer login with {}: {e:?}", model.pin));
    let mut handles: HashMap<String, CK_OBJECT_HANDLE> = HashMap::new();
    let mut n = 0u64;
    println!("{READY}");
    std::io::stdout().flush().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        n += 1;
        let fresh = format!("w{iter}-{n}");
        let labels: Vec<String> = model.objects.keys().cloned().collect();
        let pick = |rng: &mut Rng| labels[rng.range(0, labels.len() as u64) as usize].clone();
        let size = labels.len() as u64;
        // Weights: creation while small, destruction once large.
        let weights: [u64; 7] = match size {
            0 => [15, 25, 0, 0, 0, 8, 4],
            1..=40 => [15, 25, 10, 15, 10, 8, 4],
            _ => [5, 5, 5, 15, 40, 8, 4],
        };
        let total: u64 = weights.iter().sum();
        let mut r = rng.range(0, total);
        let mut choice = 0;
        while r >= weights[choice] {
            r -= weights[choice];
            choice += 1;
        }
        let other_pin = |pin: &str| -> String {
            let b = if pin.as_bytes() == PIN_A { PIN_B } else { PIN_A };
            String::from_utf8(b.to_vec()).unwrap()
        };
        let op = match choice {
            0 => Op::Gen { label: fresh, len: if rng.next().is_multiple_of(2) { 16 } else { 32 } },
            1 => {
                let len = rng.range(1, 3000) as usize;
                Op::Create { label: fresh, private: rng.next().is_multiple_of(2), value: rng.bytes(len) }
            }
            2 => Op::Copy { label: fresh, src: pick(&mut rng) },
            3 => Op::Rename { old: pick(&mut rng), new: fresh },
            4 => Op::Destroy { label: pick(&mut rng) },
            5 => Op::SetPin { old: model.pin.clone(), new: other_pin(&model.pin) },
            _ => Op::InitPin { old: model.pin.clone(), new: other_pin(&model.pin) },
        };
        let mut handle = |label: &str| -> CK_OBJECT_HANDLE {
            *handles.entry(label.to_string()).or_insert_with(|| {
                let h = find_label(s, label);
                assert_eq!(h.len(), 1, "writer: {label} found {} times", h.len());
                h[0]
            })
        };
        if let Op::InitPin { .. } = op {
            // C_InitPIN needs the SO logged in: the user logs out first.
            logout(s).unwrap();
            login(s, CKU_SO, SO_PIN).unwrap();
        }
        // Source handles are looked up before the intent is journaled: only the call itself
        // is in flight.
        let target = match &op {
            Op::Copy { src, .. } => Some(handle(src)),
            Op::Rename { old, .. } => Some(handle(old)),
            Op::Destroy { label } => Some(handle(label)),
            _ => None,
        };
        journal.log(&op.line());
        let what = format!("{op:?}");
        let mut ok_extra = String::new();
        match &op {
            Op::Gen { label, len } => {
                let h = gen_aes(
                    s,
                    *len as CK_ULONG,
                    &[
                        ab(CKA_TOKEN, true),
                        ab(CKA_PRIVATE, true),
                        ab(CKA_SENSITIVE, false),
                        ab(CKA_EXTRACTABLE, true),
                        av(CKA_LABEL, label),
                    ],
                )
                .unwrap_or_else(|e| fail(&what, e));
                let v = get_attr(s, h, CKA_VALUE).unwrap_or_else(|e| fail(&what, e));
                ok_extra = format!(" {}", to_hex(&v));
                handles.insert(label.clone(), h);
            }
            Op::Create { label, private, value } => {
                let h = create(s, &data_tmpl(label, &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, *private), av(CKA_VALUE, value)]))
                    .unwrap_or_else(|e| fail(&what, e));
                handles.insert(label.clone(), h);
            }
            Op::Copy { label, .. } => {
                let h = copy(s, target.unwrap(), &[av(CKA_LABEL, label)]).unwrap_or_else(|e| fail(&what, e));
                handles.insert(label.clone(), h);
            }
            Op::Rename { old, new } => {
                set_attrs(s, target.unwrap(), &[av(CKA_LABEL, new)]).unwrap_or_else(|e| fail(&what, e));
                handles.remove(old);
                handles.insert(new.clone(), target.unwrap());
            }
            Op::Destroy { label } => {
                destroy(s, target.unwrap()).unwrap_or_else(|e| fail(&what, e));
                handles.remove(label);
            }
            Op::SetPin { old, new } => set_pin(s, old.as_bytes(), new.as_bytes()).unwrap_or_else(|e| fail(&what, e)),
            Op::InitPin { new, .. } => init_pin(s, new.as_bytes()).unwrap_or_else(|e| fail(&what, e)),
        }
        journal.log(&format!("ok{ok_extra}"));
        model.apply(&op, (!ok_extra.is_empty()).then(|| hex(ok_extra.trim())));
        if let Op::InitPin { new, .. } = &op {
            logout(s).unwrap();
            login(s, CKU_USER, new.as_bytes()).unwrap_or_else(|e| panic!("writer: user login after InitPIN: {e:?}"));
            handles.clear();
        }
    }
    panic!("writer was not killed within 60 s");
}

// ---------------------------------------------------------------------------------------------
// Verifier (a fresh process after each kill)

/// Checks that `h` is the object `o` describes; `label` for messages.
fn check_obj(s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE, label: &str, o: &Obj) -> Result<(), String> {
    let get = |t| get_attr(s, h, t).map_err(|e| format!("{label}: C_GetAttributeValue(0x{t:x}): {e:?}"));
    let ulong = |t| -> Result<CK_ULONG, String> { Ok(CK_ULONG::from_ne_bytes(get(t)?.as_slice().try_into().unwrap())) };
    if get(CKA_TOKEN)? != [CK_TRUE] {
        return Err(format!("{label}: CKA_TOKEN is not true"));
    }
    match o.kind {
        Kind::Data { private } => {
            if ulong(CKA_CLASS)? != CKO_DATA {
                return Err(format!("{label}: class is not CKO_DATA"));
            }
            if get(CKA_PRIVATE)? != [private as u8] {
                return Err(format!("{label}: CKA_PRIVATE is not {private}"));
            }
        }
        Kind::Key { len } => {
            if ulong(CKA_CLASS)? != CKO_SECRET_KEY || ulong(CKA_KEY_TYPE)? != CKK_AES {
                return Err(format!("{label}: not a CKK_AES secret key"));
            }
            if ulong(CKA_VALUE_LEN)? != len as CK_ULONG {
                return Err(format!("{label}: CKA_VALUE_LEN is not {len}"));
            }
        }
    }
    let v = get(CKA_VALUE)?;
    if v != o.value {
        return Err(format!("{label}: CKA_VALUE differs ({} bytes, journaled {} bytes)", v.len(), o.value.len()));
    }
    Ok(())
}

fn verifier(slot: CK_SLOT_ID) {
    let path = journal_path();
    // Drop a journal line cut short by the kill, so that what we append starts a line.
    let text = std::fs::read(&path).unwrap_or_default();
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < text.len() {
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(keep as u64).unwrap();
    }
    let model = Model::load(&path);
    let mut errors: Vec<String> = vec![];

    let ti = token_info(slot).unwrap_or_else(|e| panic!("C_GetTokenInfo after the kill: {e:?}"));
    let want = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
    assert_eq!(ti.flags & want, want, "token flags after the kill: 0x{:x}", ti.flags);
    assert_eq!(ti.flags & (CKF_USER_PIN_LOCKED | CKF_SO_PIN_LOCKED), 0, "a PIN is locked after the kill");
    let s = open(slot, true).unwrap_or_else(|e| panic!("C_OpenSession after the kill: {e:?}"));
    login(s, CKU_SO, SO_PIN).unwrap_or_else(|e| panic!("SO login after the kill: {e:?}"));
    logout(s).unwrap();

    // The user PIN: the journaled one, or for a PIN change in flight the old or the new one.
    let mut happened: Option<bool> = None;
    let mut ok_value: Option<Vec<u8>> = None;
    match &model.pending {
        Some(Op::SetPin { old, new } | Op::InitPin { old, new }) => {
            if login(s, CKU_USER, new.as_bytes()).is_ok() {
                happened = Some(true);
            } else {
                login(s, CKU_USER, old.as_bytes())
                    .unwrap_or_else(|e| panic!("neither the new nor the old user PIN of the PIN change in flight works: {e:?}"));
                happened = Some(false);
            }
        }
        _ => login(s, CKU_USER, model.pin.as_bytes())
            .unwrap_or_else(|e| panic!("the journaled user PIN {} does not work: {e:?}", model.pin)),
    }

    // Every token object, by label.
    let all = find(s, &[]).unwrap_or_else(|e| panic!("C_FindObjects after the kill: {e:?}"));
    let mut by_label: BTreeMap<String, Vec<CK_OBJECT_HANDLE>> = BTreeMap::new();
    for h in &all {
        let l = get_attr(s, *h, CKA_LABEL).unwrap_or_else(|e| panic!("CKA_LABEL of handle {h}: {e:?}"));
        by_label.entry(String::from_utf8_lossy(&l).into_owned()).or_default().push(*h);
    }
    let count = |l: &str| by_label.get(l).map_or(0, Vec::len);

    // The labels the pending call may add or remove.
    let mut in_flight: Vec<String> = vec![];
    match model.pending.clone() {
        Some(Op::Gen { label, len }) => {
            in_flight.push(label.clone());
            match count(&label) {
                0 => happened = Some(false),
                1 => {
                    let h = by_label[&label][0];
                    let v = get_attr(s, h, CKA_VALUE).unwrap();
                    let o = Obj { kind: Kind::Key { len }, value: v.clone() };
                    if let Err(e) = check_obj(s, h, &label, &o) {
                        errors.push(format!("key generated in flight: {e}"));
                    }
                    happened = Some(true);
                    ok_value = Some(v);
                }
                n => errors.push(format!("key generated in flight: {label} exists {n} times")),
            }
        }
        Some(Op::Create { label, private, value }) => {
            in_flight.push(label.clone());
            match count(&label) {
                0 => happened = Some(false),
                1 => {
                    if let Err(e) = check_obj(s, by_label[&label][0], &label, &Obj { kind: Kind::Data { private }, value }) {
                        errors.push(format!("object created in flight: {e}"));
                    }
                    happened = Some(true);
                }
                n => errors.push(format!("object created in flight: {label} exists {n} times")),
            }
        }
        Some(Op::Copy { label, src }) => {
            in_flight.push(label.clone());
            match count(&label) {
                0 => happened = Some(false),
                1 => {
                    if let Err(e) = check_obj(s, by_label[&label][0], &label, &model.objects[&src]) {
                        errors.push(format!("copy in flight: {e}"));
                    }
                    happened = Some(true);
                }
                n => errors.push(format!("copy in flight: {label} exists {n} times")),
            }
        }
        Some(Op::Rename { old, new }) => {
            in_flight.push(old.clone());
            in_flight.push(new.clone());
            match (count(&old), count(&new)) {
                (1, 0) => happened = Some(false),
                (0, 1) => happened = Some(true),
                (a, b) => errors.push(format!("rename in flight {old} → {new}: old label {a} times, new label {b} times")),
            }
            let h = by_label.get(&old).or(by_label.get(&new)).and_then(|v| v.first());
            if let (Some(h), Some(o)) = (h, model.objects.get(&old)) {
                if let Err(e) = check_obj(s, *h, &old, o) {
                    errors.push(format!("object renamed in flight: {e}"));
                }
            }
        }
        Some(Op::Destroy { label }) => {
            in_flight.push(label.clone());
            match count(&label) {
                0 => happened = Some(true),
                1 => {
                    if let Err(e) = check_obj(s, by_label[&label][0], &label, &model.objects[&label]) {
                        errors.push(format!("object destroyed in flight, still there: {e}"));
                    }
                    happened = Some(false);
                }
                n => errors.push(format!("destroy in flight: {label} exists {n} times")),
            }
        }
        Some(Op::SetPin { .. } | Op::InitPin { .. }) | None => {}
    }

    // Everything journaled is there, byte for byte; nothing else is.
    for (label, o) in &model.objects {
        if in_flight.contains(label) {
            continue;
        }
        match by_label.get(label).map(Vec::as_slice) {
            Some([h]) => {
                if let Err(e) = check_obj(s, *h, label, o) {
                    errors.push(e);
                }
            }
            Some(hs) => errors.push(format!("{label} exists {} times", hs.len())),
            None => errors.push(format!("{label} ({:?}, {} bytes) is journaled but missing", o.kind, o.value.len())),
        }
    }
    for (label, hs) in &by_label {
        if !model.objects.contains_key(label) && !in_flight.contains(label) {
            errors.push(format!("{label} ({} objects) exists but the journal does not account for it", hs.len()));
        }
    }
    assert!(errors.is_empty(), "after the kill (pending call {:?}):\n{}", model.pending, errors.join("\n"));

    // Resolve the pending call, so that the journal is exact again.
    let pending = model.pending.as_ref().map_or("none", Op::name);
    if model.pending.is_some() {
        let happened = happened.expect("outcome of the pending call");
        let mut j = Journal::open(&path);
        match (happened, &ok_value) {
            (true, Some(v)) => j.log(&format!("ok {}", to_hex(v))),
            (true, None) => j.log("ok"),
            (false, _) => j.log("no"),
        }
    }
    let after = Model::load(&path);
    println!(
        "KF_VERIFY pending={pending} happened={} objects={} oks={}",
        happened.map_or("-", |h| if h { "yes" } else { "no" }),
        after.objects.len(),
        after.oks
    );
    close(s).unwrap();
    assert_rv(ck!(C_Finalize, std::ptr::null_mut()), CKR_OK);
}

// ---------------------------------------------------------------------------------------------
// Parent

fn iterations() -> usize {
    std::env::var("KEYFRONT_CRASH_ITERATIONS").ok().map_or(20, |v| v.parse().expect("KEYFRONT_CRASH_ITERATIONS"))
}

#[test]
fn crash_consistency() {
    if let Some(role) = child_role() {
        let slot = child_slot();
        fx();
        match role.as_str() {
            "setup" => {
                setup_token(slot, "crash");
                assert_rv(ck!(C_Finalize, std::ptr::null_mut()), CKR_OK);
            }
            "writer" => writer(slot),
            "verify" => verifier(slot),
            r => panic!("unknown role {r}"),
        }
        return child_done(&role);
    }

    // The parent never opens the token itself: every open after a kill is a fresh process's.
    let slot = fx().slot();
    let db = fx().cfg(slot).path.clone();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    run_child(TEST, slot, "setup");

    let iters = iterations();
    let mut rng = Rng::from_os();
    let start = Instant::now();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut last = String::new();
    for i in 0..iters {
        let mut child = child_command(TEST, slot, "writer")
            .env("KF_CRASH_JOURNAL", &journal)
            .env("KF_CRASH_ITER", i.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn writer");
        // Wait until the writer is logged in, then let it write for 5–200 ms.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 || line.contains(READY) {
                break;
            }
            seen += &line;
        }
        std::thread::sleep(Duration::from_millis(rng.range(5, 201)));
        if let Some(status) = child.try_wait().unwrap() {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut rest);
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            panic!("iteration {i}: the writer ended on its own ({status}):\n--- stdout\n{seen}{rest}\n--- stderr\n{err}");
        }
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        child.wait().unwrap();

        // The file as the kill left it (WAL included), before any keyfront opens it again.
        let ic = integrity_check(&db);
        assert_eq!(ic, "ok", "iteration {i}: PRAGMA integrity_check right after the kill");

        let v = child_command(TEST, slot, "verify").env("KF_CRASH_JOURNAL", &journal).output().expect("spawn verifier");
        assert_child_ok(&v, TEST, "verify");
        let stdout = String::from_utf8_lossy(&v.stdout);
        let line = stdout.lines().find_map(|l| l.find("KF_VERIFY").map(|i| &l[i..])).expect("verifier summary").to_string();
        let field = |k: &str| line.split(' ').find_map(|w| w.strip_prefix(k)).unwrap_or("?").to_string();
        *outcomes.entry(format!("{}:{}", field("pending="), field("happened="))).or_default() += 1;
        last = line;

        let ic = integrity_check(&db);
        assert_eq!(ic, "ok", "iteration {i}: PRAGMA integrity_check after the verifier");
    }
    let elapsed = start.elapsed();
    println!("crash: {iters} kills in {:.1} s; last: {last}", elapsed.as_secs_f64());
    println!("crash: call in flight at the kill (pending:happened) → count: {outcomes:?}");
}

//! Eight threads, each with its own session on one token, doing AES-GCM and key generation;
//! and a token write held up at the token file, which must hold up no one else.
mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const ROUNDS: usize = 30;
const TOKEN_KEY_EVERY: usize = 10;

/// Whether the workers make token keys too. SoftHSM2 2.6's file object store fails token
/// object creation now and then (CKR_GENERAL_ERROR) while other sessions search the token
/// (reproduced against SoftHSM2 directly, without keyfront): on a forwarded slot the workers
/// make session keys only.
fn token_keys() -> bool {
    backend().is_soft()
}

struct Sample {
    iv: Vec<u8>,
    aad: Vec<u8>,
    pt: Vec<u8>,
    ct: Vec<u8>,
}

fn worker(slot: CK_SLOT_ID, t: usize, shared: CK_OBJECT_HANDLE) -> Vec<Sample> {
    let s = open(slot, true).unwrap();
    assert_eq!(state(s), CKS_RW_USER_FUNCTIONS, "thread {t}: new session is not logged in");
    let mut out = vec![];
    for i in 0..ROUNDS {
        let token = token_keys() && i % TOKEN_KEY_EVERY == 0;
        let label = if token { "thread-token-key".to_string() } else { format!("t{t}-k{i}") };
        let k = gen_aes(s, [16, 24, 32][i % 3], &[ab(CKA_TOKEN, token), av(CKA_LABEL, &label)])
            .unwrap_or_else(|e| panic!("thread {t} round {i}: keygen {e:?}"));
        let pt = random(s, 1 + (i * 37 + t * 11) % 300).unwrap();
        let iv = random(s, 12).unwrap();
        let aad = format!("thread {t} round {i}").into_bytes();
        let m = Mech::gcm(&iv, &aad, 128);

        let ct = encrypt(s, &m, k, &pt).unwrap_or_else(|e| panic!("thread {t} round {i}: encrypt {e:?}"));
        assert_eq!(ct.len(), pt.len() + 16);
        assert_eq!(decrypt(s, &m, k, &ct).unwrap(), pt, "thread {t} round {i}");
        assert_eq!(decrypt_parts(s, &m, k, &chunks(&ct, ODD)).unwrap(), pt, "thread {t} round {i} multi-part");

        let ct = encrypt_parts(s, &m, shared, &chunks(&pt, ODD)).unwrap();
        assert_eq!(decrypt(s, &m, shared, &ct).unwrap(), pt, "thread {t} round {i} shared key");
        if !token {
            assert_eq!(find_label(s, &label), vec![k]);
            destroy(s, k).unwrap();
        }
        out.push(Sample { iv, aad, pt, ct });
    }
    close(s).unwrap();
    out
}

#[test]
fn eight_threads_gcm_and_keygen() {
    let slot = fx().token();
    let main = user_session(slot);
    if !token_keys() {
        skip_note("SoftHSM2 2.6 fails concurrent token object creation (CKR_GENERAL_ERROR): session keys only");
    }
    let shared = gen_aes(main, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "shared")]).unwrap();

    let samples: Vec<Vec<Sample>> = thread::scope(|sc| {
        let handles: Vec<_> = (0..THREADS).map(|t| sc.spawn(move || worker(slot, t, shared))).collect();
        handles.into_iter().map(|h| h.join().expect("worker thread panicked")).collect()
    });

    // Every ciphertext made under the shared key in any thread decrypts in the main session.
    for (t, list) in samples.iter().enumerate() {
        assert_eq!(list.len(), ROUNDS);
        for (i, x) in list.iter().enumerate() {
            let m = Mech::gcm(&x.iv, &x.aad, 128);
            assert_eq!(decrypt(main, &m, shared, &x.ct).unwrap(), x.pt, "thread {t} sample {i}");
        }
    }
    let token_keys_made = token_keys();
    let token_keys = find_label(main, "thread-token-key");
    assert_eq!(token_keys.len(), if token_keys_made { THREADS * ROUNDS.div_ceil(TOKEN_KEY_EVERY) } else { 0 });
    let distinct: std::collections::BTreeSet<_> = token_keys.iter().collect();
    assert_eq!(distinct.len(), token_keys.len(), "duplicate object handles");
    // Session keys were all destroyed again; only the shared and token keys remain.
    assert_eq!(find(main, &[au(CKA_CLASS, CKO_SECRET_KEY)]).unwrap().len(), token_keys.len() + 1);
    close(main).unwrap();
}

const HOLD_WRITER_LOCK: &str = "hold-writer-lock";

/// The child's side of `a_blocked_token_write_holds_up_no_one_else`: takes the token file's
/// write lock with a SQLite connection of its own (`BEGIN IMMEDIATE`, as the module's writes
/// do), says so, and keeps it until a line arrives on stdin. It never loads the module: two
/// SQLite copies in one process would not see each other's locks.
fn hold_writer_lock() {
    let db = std::env::var("KF_TOKEN_DB").expect("KF_TOKEN_DB");
    let conn = rusqlite::Connection::open(&db).expect("open the token file");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
    println!("LOCKED");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    child_done(HOLD_WRITER_LOCK);
}

/// The child holding the lock; killed if the test fails before it lets go.
struct LockHolder(Child);

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether thread `tid` of this process is asleep in `nanosleep`/`clock_nanosleep` (what
/// SQLite's busy handler waits in between attempts at a lock), per /proc.
fn sleeping(tid: libc::pid_t) -> bool {
    let Ok(line) = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) else { return false };
    let nr: i64 = line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(-1);
    nr == libc::SYS_nanosleep || nr == libc::SYS_clock_nanosleep
}

/// No lock of the module's is held across a write to a token file. Another process takes
/// the token file's write lock; a thread then generates a token key (CKA_TOKEN true), whose
/// write waits for that lock inside C_GenerateKey (it is seen asleep in SQLite's busy
/// handler, and cannot finish while the other process holds on). Meanwhile other sessions on
/// the same token encrypt with AES-GCM (with a token key and a session key), digest, draw
/// random bytes, generate session keys and find objects; all of it must complete while the
/// writer is provably still waiting. A module-wide (or token-wide) lock held across the write
/// would keep them waiting until the lock is released, which happens only after they are
/// done: the test then fails at its deadline (set well inside the module's 30-second busy
/// timeout) instead of passing.
#[test]
fn a_blocked_token_write_holds_up_no_one_else() {
    if child_role().as_deref() == Some(HOLD_WRITER_LOCK) {
        return hold_writer_lock();
    }
    if backend().is_forwarded() {
        skip_note("the token file and its lock are keyfront's soft token's; SoftHSM2 stores objects its own way");
        return;
    }
    let slot = fx().token();
    let main = user_session(slot);
    let token_key = gen_aes(main, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "before the lock")]).unwrap();

    let mut child = child_command("a_blocked_token_write_holds_up_no_one_else", slot, HOLD_WRITER_LOCK)
        .env("KF_TOKEN_DB", &fx().cfg(slot).path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the lock holder");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut holder = LockHolder(child);
    let mut line = String::new();
    while !line.contains("LOCKED") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the lock holder exited before taking the lock");
    }

    let (tid_tx, tid_rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        let s = open(slot, true).unwrap();
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let made = gen_aes(s, 16, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "written while locked")]);
        (s, made)
    });
    let tid = tid_rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sleeping(tid) {
        assert!(!writer.is_finished(), "the token write finished while another process held the file's write lock");
        assert!(Instant::now() < deadline, "the token write never waited for the lock");
        thread::sleep(Duration::from_millis(1));
    }

    let (done_tx, done_rx) = mpsc::channel();
    let others = thread::spawn(move || {
        let s = open(slot, false).unwrap();
        let m = Mech::gcm(&[1; 12], b"aad", 128);
        let ct = encrypt(s, &m, token_key, b"while a write waits").unwrap();
        assert_eq!(decrypt(s, &m, token_key, &ct).unwrap(), b"while a write waits");
        assert_eq!(digest(s, CKM_SHA256, b"abc").unwrap().len(), 32);
        assert_eq!(random(s, 32).unwrap().len(), 32);
        let w = open(slot, true).unwrap();
        let session_key = gen_aes(w, 32, &[ab(CKA_TOKEN, false)]).unwrap();
        let ct = encrypt(w, &m, session_key, b"session key").unwrap();
        assert_eq!(decrypt(w, &m, session_key, &ct).unwrap(), b"session key");
        assert_eq!(find_label(s, "before the lock"), vec![token_key]);
        done_tx.send(()).unwrap();
    });
    let waited = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    assert!(
        waited.is_ok(),
        "other sessions' operations did not complete while a token write waited for the file's lock: a lock is held across the write"
    );
    others.join().expect("the other sessions' operations");
    assert!(!writer.is_finished(), "the writer must still be waiting: the other process still holds the lock");

    // Let go: the write goes through.
    writeln!(holder.0.stdin.as_mut().unwrap(), "release").unwrap();
    let (s, made) = writer.join().expect("writer thread");
    let k = made.expect("the token key, once the lock is free");
    assert!(get_bool(s, k, CKA_TOKEN).unwrap());
    assert_eq!(find_label(main, "written while locked"), vec![k]);
    let status = holder.0.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success() && rest.contains(&format!("{CHILD_DONE} {HOLD_WRITER_LOCK}")), "lock holder: {status}\n{rest}");
    close(s).unwrap();
    close(main).unwrap();
}

//! Multi-process load on one token: 4 processes × 2 threads, each doing a random mix of
//! HMAC-SHA256 and AES-GCM with two shared token keys, AES token key generation, find by
//! label and destruction of its own keys, for `KEYFRONT_LOAD_SECONDS` (default 5). Lock waits
//! between processes are keyfront's business: no call may fail, and in the end the token holds
//! exactly the keys created and not destroyed. A watchdog fails the test if it has not finished
//! after the run time + 60 s.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TEST: &str = "multi_process_load";
const PROCS: usize = 4;
const THREADS: usize = 2;
const HMAC_LABEL: &str = "load-shared-hmac";
const AES_LABEL: &str = "load-shared-aes";
const MESSAGE: &[u8] = b"the same message in every process";

fn seconds() -> u64 {
    std::env::var("KEYFRONT_LOAD_SECONDS").ok().map_or(5, |v| v.parse().expect("KEYFRONT_LOAD_SECONDS"))
}

#[derive(Default, Debug)]
struct Counts {
    hmac: u64,
    gcm: u64,
    gen: u64,
    find: u64,
    destroy: u64,
    /// "operation: what went wrong" → how often.
    errors: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.hmac += o.hmac;
        self.gcm += o.gcm;
        self.gen += o.gen;
        self.find += o.find;
        self.destroy += o.destroy;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
    fn ops(&self) -> u64 {
        self.hmac + self.gcm + self.gen + self.find + self.destroy
    }
    fn err(&mut self, what: &str, e: impl std::fmt::Debug) {
        *self.errors.entry(format!("{what}: {e:?}")).or_default() += 1;
    }
}

fn worker(slot: CK_SLOT_ID, p: usize, t: usize, want_mac: &[u8], run: Duration) -> Counts {
    let mut c = Counts::default();
    let mut rng = Rng::from_os();
    let s = open(slot, true).unwrap();
    let hk = find_label(s, HMAC_LABEL);
    let ak = find_label(s, AES_LABEL);
    assert_eq!((hk.len(), ak.len()), (1, 1), "process {p} does not find the shared keys");
    let (hk, ak) = (hk[0], ak[0]);
    let mut mine: Vec<(String, CK_OBJECT_HANDLE)> = vec![];
    let mut gone: Vec<String> = vec![];
    let mut n = 0u64;
    // The clock starts when this worker is ready (process start-up is slow under valgrind).
    let deadline = Instant::now() + run;
    while Instant::now() < deadline {
        match rng.range(0, 100) {
            0..=19 => match sign(s, &Mech::new(CKM_SHA256_HMAC), hk, MESSAGE) {
                Ok(mac) if mac == want_mac => c.hmac += 1,
                Ok(_) => c.err("hmac", "MAC differs from the parent's"),
                Err(e) => c.err("hmac", e),
            },
            20..=39 => {
                let iv = rng.bytes(12);
                let n = rng.range(0, 200) as usize;
                let data = rng.bytes(n);
                let m = Mech::gcm(&iv, b"aad", 128);
                match encrypt(s, &m, ak, &data).and_then(|ct| decrypt(s, &m, ak, &ct)) {
                    Ok(pt) if pt == data => c.gcm += 1,
                    Ok(_) => c.err("gcm", "decryption differs from the plaintext"),
                    Err(e) => c.err("gcm", e),
                }
            }
            40..=64 => {
                n += 1;
                let label = format!("load-p{p}-t{t}-{n}");
                match gen_aes(s, 16, &[ab(CKA_TOKEN, true), av(CKA_LABEL, &label)]) {
                    Ok(h) => {
                        c.gen += 1;
                        mine.push((label, h));
                    }
                    Err(e) => c.err("keygen", e),
                }
            }
            65..=84 => {
                // A shared key, one of our own keys, or one we destroyed.
                let (label, want) = match rng.range(0, 3) {
                    1 if !mine.is_empty() => {
                        let (l, h) = &mine[rng.range(0, mine.len() as u64) as usize];
                        (l.clone(), vec![*h])
                    }
                    2 if !gone.is_empty() => (gone[rng.range(0, gone.len() as u64) as usize].clone(), vec![]),
                    _ => (HMAC_LABEL.to_string(), vec![hk]),
                };
                match find(s, &[av(CKA_LABEL, &label)]) {
                    Ok(found) if found == want => c.find += 1,
                    Ok(found) => c.err("find", format!("{label}: found {found:?}, expected {want:?}")),
                    Err(e) => c.err("find", e),
                }
            }
            _ => {
                if mine.is_empty() {
                    continue;
                }
                let (label, h) = mine.swap_remove(rng.range(0, mine.len() as u64) as usize);
                match destroy(s, h) {
                    Ok(()) => {
                        c.destroy += 1;
                        gone.push(label);
                    }
                    Err(e) => {
                        c.err("destroy", e);
                        mine.push((label, h));
                    }
                }
            }
        }
    }
    close(s).unwrap();
    c
}

fn child(slot: CK_SLOT_ID, p: usize) {
    let want_mac = hex(&std::env::var("KF_LOAD_MAC").unwrap());
    let run = Duration::from_secs(seconds());
    let s = user_session(slot);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let want_mac = want_mac.clone();
            std::thread::spawn(move || worker(slot, p, t, &want_mac, run))
        })
        .collect();
    let mut total = Counts::default();
    for w in workers {
        total.add(&w.join().expect("worker thread panicked"));
    }
    close(s).unwrap();
    println!(
        "KF_LOAD p={p} hmac={} gcm={} gen={} find={} destroy={} errors={}",
        total.hmac,
        total.gcm,
        total.gen,
        total.find,
        total.destroy,
        total.errors.iter().map(|(k, v)| format!("[{k} ×{v}]")).collect::<String>()
    );
    assert_rv(ck!(C_Finalize, std::ptr::null_mut()), CKR_OK);
}

fn parse(line: &str) -> Counts {
    let get = |k: &str| -> u64 {
        line.split(' ').find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{k} in {line}"))
    };
    let mut c = Counts { hmac: get("hmac="), gcm: get("gcm="), gen: get("gen="), find: get("find="), destroy: get("destroy="), ..Default::default() };
    let errors = line.split_once("errors=").map_or("", |(_, e)| e);
    if !errors.is_empty() {
        c.errors.insert(errors.to_string(), 1);
    }
    c
}

#[test]
fn multi_process_load() {
    if let Some(role) = child_role() {
        let slot = child_slot();
        fx();
        let p: usize = role.strip_prefix("load-").expect("role load-N").parse().unwrap();
        child(slot, p);
        return child_done(&role);
    }

    let secs = seconds();
    let pids: Arc<Mutex<Vec<u32>>> = Arc::default();
    {
        let pids = pids.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs + 60));
            eprintln!("multi_process_load: not finished after {} s: watchdog kills the children and fails", secs + 60);
            for pid in pids.lock().unwrap().iter() {
                unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
            }
            std::process::exit(101);
        });
    }

    let slot = fx().token();
    let s = user_session(slot);
    let hmac_value: Vec<u8> = (0..32).collect();
    let hk = create(s, &generic_tmpl(&hmac_value, &[ab(CKA_TOKEN, true), ab(CKA_SIGN, true), av(CKA_LABEL, HMAC_LABEL)])).unwrap();
    aes_key(s, &[7u8; 32], &[ab(CKA_TOKEN, true), av(CKA_LABEL, AES_LABEL)]);
    let mac = sign(s, &Mech::new(CKM_SHA256_HMAC), hk, MESSAGE).unwrap();

    let start = Instant::now();
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            let role = format!("load-{p}");
            let child = child_command(TEST, slot, &role)
                .env("KF_LOAD_MAC", to_hex(&mac))
                .env("KEYFRONT_LOAD_SECONDS", secs.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn load child");
            pids.lock().unwrap().push(child.id());
            (role, std::thread::spawn(move || child.wait_with_output()))
        })
        .collect();
    let mut total = Counts::default();
    let mut report = vec![];
    for (role, h) in children {
        let out = h.join().unwrap().expect("wait for load child");
        assert_child_ok(&out, TEST, &role);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find_map(|l| l.find("KF_LOAD ").map(|i| l[i..].to_string())).expect("load summary");
        total.add(&parse(&line));
        report.push(line);
    }
    let elapsed = start.elapsed();
    for l in &report {
        println!("{l}");
    }
    println!(
        "load: {PROCS} processes × {THREADS} threads, {:.1} s: {} operations ({:.0}/s): hmac {} gcm {} keygen {} find {} destroy {}",
        elapsed.as_secs_f64(),
        total.ops(),
        total.ops() as f64 / elapsed.as_secs_f64(),
        total.hmac,
        total.gcm,
        total.gen,
        total.find,
        total.destroy
    );
    assert!(total.errors.is_empty(), "calls failed under load:\n{}", report.join("\n"));
    assert!(total.hmac > 0 && total.gcm > 0 && total.gen > 0 && total.find > 0, "an operation never ran: {total:?}");

    let all = find(s, &[]).unwrap();
    let want = 2 + total.gen - total.destroy;
    assert_eq!(all.len() as u64, want, "token objects after the load: 2 shared + {} generated − {} destroyed", total.gen, total.destroy);
    close(s).unwrap();
}

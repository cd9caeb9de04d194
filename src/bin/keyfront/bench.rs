//! `keyfront bench`: times PKCS#11 modules side by side, through their C ABI.
//!
//! Each module named with `--module NAME=PATH` is loaded with the `cryptoki` crate (its own
//! `dlopen`), given a fresh token in a temporary directory (keyfront through `KEYFRONT_CONFIG`,
//! SoftHSM2 through `SOFTHSM2_CONF`; both variables are set, per module, before that module's
//! `C_Initialize`), and then every case runs in turns: module A, B, A, B … for `--rounds`
//! rounds, with 1 and 2 threads (one session per thread). The table reports the median of the
//! rounds. The raw RustCrypto crates are timed for the symmetric cases as the pseudo-module
//! `raw-crate`: the ceiling a module built on them can reach.
//!
//! CPU time is each worker thread's `CLOCK_THREAD_CPUTIME_ID` (through the `cpu-time` crate, so
//! this file has no `unsafe`), summed over the threads: time a module spends on threads of its
//! own is not counted.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;

const TOKEN_LABEL: &str = "keyfront-bench";
const SO_PIN: &str = "bench-so-pin-1234";
const USER_PIN: &str = "bench-user-pin-1234";
/// DER of the OID of P-256 (prime256v1), the `CKA_EC_PARAMS` of the EC keys.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the OID id-Ed25519 (1.3.101.112).
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER PrintableString "edwards25519", the other `CKA_EC_PARAMS` form PKCS#11 3.0 allows.
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A module to time, as NAME=PATH; repeat for each. The first is the reference for ratios.
    #[arg(long = "module", value_name = "NAME=PATH", required = true)]
    modules: Vec<String>,
    /// Rounds of every case (modules take turns within a round); the table shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds each case runs per module, thread count and round.
    #[arg(long, default_value_t = 1.0)]
    seconds_per_case: f64,
    /// Thread counts to run each case with (one session per thread), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Run only the cases whose id contains one of these comma-separated strings (see --list).
    #[arg(long = "case", value_name = "PATTERN", value_delimiter = ',')]
    cases: Vec<String>,
    /// Every case once, for a tiny time: checks that each case produces a number. Exits
    /// non-zero if a case failed (a mechanism the module does not offer is n/a, not a failure).
    #[arg(long)]
    smoke: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep keyfront's default PIN key-derivation cost instead of 1,000 iterations.
    #[arg(long)]
    keep_kdf: bool,
    /// Token objects present for the find and C_Initialize cases (default 10000; 100 with --smoke).
    #[arg(long)]
    objects: Option<usize>,
    /// Do not time the raw RustCrypto crates.
    #[arg(long)]
    no_raw: bool,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
}

// ---------------------------------------------------------------------------------------------
// Cases

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum C {
    GcmEnc64,
    GcmEnc4k,
    GcmEnc1m,
    GcmDec4k,
    Kw,
    Kwp,
    EcdsaSign,
    EcdsaVerify,
    EcdsaSha256,
    EdSign,
    EdVerify,
    RsaPkcs1Sign,
    RsaPssSign,
    RsaOaepEnc,
    RsaOaepDec,
    P256Gen,
    AesGenToken,
    Random,
    OpenClose,
    Digest,
    Find,
    InitOpen,
    FirstInfo,
    Login,
    FirstFind,
}

struct Case {
    c: C,
    id: &'static str,
    what: &'static str,
    /// Bytes processed per operation, for MB/s (0: not a throughput case).
    bytes: usize,
}

const CASES: &[Case] = &[
    Case {
        c: C::GcmEnc64,
        id: "aes-gcm-enc-64",
        what: "AES-256-GCM encrypt 64 B (C_EncryptInit+C_Encrypt, fresh IV)",
        bytes: 64,
    },
    Case { c: C::GcmEnc4k, id: "aes-gcm-enc-4k", what: "AES-256-GCM encrypt 4 KiB", bytes: 4096 },
    Case { c: C::GcmEnc1m, id: "aes-gcm-enc-1m", what: "AES-256-GCM encrypt 1 MiB", bytes: 1 << 20 },
    Case { c: C::GcmDec4k, id: "aes-gcm-dec-4k", what: "AES-256-GCM decrypt 4 KiB", bytes: 4096 },
    Case { c: C::Kw, id: "aes-kw-wrap", what: "C_WrapKey AES-256 key with CKM_AES_KEY_WRAP (RFC 3394)", bytes: 0 },
    Case { c: C::Kwp, id: "aes-kwp-wrap", what: "C_WrapKey AES-256 key with CKM_AES_KEY_WRAP_PAD (0x210A)", bytes: 0 },
    Case { c: C::EcdsaSign, id: "ecdsa-p256-sign", what: "CKM_ECDSA P-256 sign of a 32-byte digest", bytes: 0 },
    Case { c: C::EcdsaVerify, id: "ecdsa-p256-verify", what: "CKM_ECDSA P-256 verify of a 32-byte digest", bytes: 0 },
    Case { c: C::EcdsaSha256, id: "ecdsa-sha256-sign-4k", what: "CKM_ECDSA_SHA256 P-256 sign of 4 KiB", bytes: 4096 },
    Case { c: C::EdSign, id: "ed25519-sign", what: "CKM_EDDSA Ed25519 sign of 64 B", bytes: 0 },
    Case { c: C::EdVerify, id: "ed25519-verify", what: "CKM_EDDSA Ed25519 verify of 64 B", bytes: 0 },
    Case {
        c: C::RsaPkcs1Sign,
        id: "rsa2048-pkcs1-sha256-sign",
        what: "CKM_SHA256_RSA_PKCS RSA-2048 sign of 64 B",
        bytes: 0,
    },
    Case {
        c: C::RsaPssSign,
        id: "rsa2048-pss-sha256-sign",
        what: "CKM_SHA256_RSA_PKCS_PSS RSA-2048 sign of 64 B (MGF1-SHA256, salt 32)",
        bytes: 0,
    },
    Case {
        c: C::RsaOaepEnc,
        id: "rsa2048-oaep-sha256-enc",
        what: "CKM_RSA_PKCS_OAEP (SHA-256) RSA-2048 encrypt of 32 B",
        bytes: 0,
    },
    Case {
        c: C::RsaOaepDec,
        id: "rsa2048-oaep-sha256-dec",
        what: "CKM_RSA_PKCS_OAEP (SHA-256) RSA-2048 decrypt of 32 B",
        bytes: 0,
    },
    Case { c: C::P256Gen, id: "p256-keypair-gen", what: "C_GenerateKeyPair P-256 (session objects)", bytes: 0 },
    Case {
        c: C::AesGenToken,
        id: "aes256-keygen-token",
        what: "C_GenerateKey AES-256 as a token object (stored)",
        bytes: 0,
    },
    Case { c: C::Random, id: "random-32", what: "C_GenerateRandom 32 B", bytes: 0 },
    Case { c: C::OpenClose, id: "session-open-close", what: "C_OpenSession + C_CloseSession", bytes: 0 },
    Case { c: C::Digest, id: "sha256-digest-4k", what: "C_DigestInit+C_Digest SHA-256 of 4 KiB", bytes: 4096 },
    Case {
        c: C::Find,
        id: "find-object",
        what: "C_FindObjectsInit+C_FindObjects+C_FindObjectsFinal of one label among N token objects",
        bytes: 0,
    },
    Case {
        c: C::InitOpen,
        id: "initialize-open",
        what: "C_Initialize + C_OpenSession with N token objects (C_Finalize not timed)",
        bytes: 0,
    },
    Case {
        c: C::FirstInfo,
        id: "first-token-info",
        what: "the first C_GetTokenInfo after C_Initialize + C_OpenSession (the first read of the token)",
        bytes: 0,
    },
    Case { c: C::Login, id: "login", what: "C_Login (user) right after that C_GetTokenInfo", bytes: 0 },
    Case {
        c: C::FirstFind,
        id: "first-find",
        what: "first C_FindObjects* of one label after C_Initialize + C_OpenSession + C_Login",
        bytes: 0,
    },
];

fn is_lifecycle(c: C) -> bool {
    matches!(c, C::InitOpen | C::FirstInfo | C::Login | C::FirstFind)
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// CPU time used by the calling thread, in seconds (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Option<f64> {
    cpu_time::ThreadTime::try_now().ok().map(|t| t.as_duration().as_secs_f64())
}

/// A thread's calls, wall seconds and CPU seconds.
type ThreadResult = Result<(u64, f64, Option<f64>), String>;

#[derive(Clone, Copy, Debug)]
struct Sample {
    ops: u64,
    /// Wall time of the slowest thread.
    wall: f64,
    /// CPU time summed over the threads (NaN if unknown).
    cpu: f64,
}

impl Sample {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.wall
    }
    fn cpu_us_per_op(&self) -> f64 {
        self.cpu / self.ops as f64 * 1e6
    }
}

/// Runs `op` on `threads` threads for `secs` each (at least one call per thread). `init` makes a
/// thread's state (a session) before the clock starts; `done` tears it down after it stops.
fn measure<S, I, O, D>(threads: usize, secs: f64, init: I, op: O, done: D) -> Result<Sample, String>
where
    I: Fn(usize) -> Result<S, String> + Sync,
    O: Fn(&mut S, u64) -> Result<(), String> + Sync,
    D: Fn(S) + Sync,
{
    let barrier = Barrier::new(threads);
    let dur = Duration::from_secs_f64(secs);
    let results: Vec<ThreadResult> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, init, op, done) = (&barrier, &init, &op, &done);
                sc.spawn(move || {
                    let state = init(t);
                    barrier.wait();
                    let mut state = state?;
                    let c0 = thread_cpu();
                    let t0 = Instant::now();
                    let mut n: u64 = 0;
                    let mut next_check: u64 = 1;
                    let mut failure = None;
                    loop {
                        if let Err(e) = op(&mut state, n) {
                            failure = Some(e);
                            break;
                        }
                        n += 1;
                        if n >= next_check {
                            let el = t0.elapsed();
                            if el >= dur {
                                break;
                            }
                            // Read the clock about every 0.2 ms, not after every fast call.
                            let per_op = el.as_secs_f64() / n as f64;
                            next_check = n + ((0.0002 / per_op.max(1e-9)) as u64).clamp(1, 1 << 16);
                        }
                    }
                    let wall = t0.elapsed().as_secs_f64();
                    let cpu = match (c0, thread_cpu()) {
                        (Some(a), Some(b)) => Some(b - a),
                        _ => None,
                    };
                    done(state);
                    match failure {
                        Some(e) => Err(e),
                        None => Ok((n, wall, cpu)),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into()))).collect()
    });
    let mut s = Sample { ops: 0, wall: 0.0, cpu: 0.0 };
    for r in results {
        let (n, wall, cpu) = r?;
        s.ops += n;
        s.wall = s.wall.max(wall);
        s.cpu += cpu.unwrap_or(f64::NAN);
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Modules

fn pin(p: &str) -> AuthPin {
    AuthPin::from(p)
}

fn ck(e: CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("{f:?}: {rv:?}"),
        other => other.to_string(),
    }
}

/// True for the errors that mean "this module does not offer that": reported as n/a.
fn unsupported(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::FunctionNotSupported
                | RvError::CurveNotSupported
                | RvError::DomainParamsInvalid
                | RvError::KeySizeRange,
            _
        )
    )
}

/// A failed preparation: n/a (the module lacks it) or an error.
#[derive(Clone, Debug)]
enum Fail {
    Na(String),
    Err(String),
}

impl Fail {
    fn text(&self) -> &str {
        match self {
            Fail::Na(s) | Fail::Err(s) => s,
        }
    }
}

fn fail(e: CkError) -> Fail {
    if unsupported(&e) {
        Fail::Na(ck(e))
    } else {
        Fail::Err(ck(e))
    }
}

type Pair = (ObjectHandle, ObjectHandle);

#[derive(Default)]
struct Keys {
    aes: Option<Result<ObjectHandle, Fail>>,
    target: Option<Result<ObjectHandle, Fail>>,
    ec: Option<Result<Pair, Fail>>,
    ed: Option<Result<Pair, Fail>>,
    rsa: Option<Result<Pair, Fail>>,
    objects: Option<Result<usize, Fail>>,
}

struct Module {
    name: String,
    path: PathBuf,
    dir: PathBuf,
    ctx: Pkcs11,
    slot: Slot,
    /// Logged in as the user; kept open so that every session of the run is logged in.
    setup: Option<Session>,
    mechs: HashSet<CK_MECHANISM_TYPE>,
    info: String,
    keys: Keys,
}

/// Points both modules' configuration variables at `dir` (read by their `C_Initialize`).
fn set_env(dir: &Path) {
    std::env::set_var("KEYFRONT_CONFIG", dir.join("keyfront.toml"));
    std::env::set_var("SOFTHSM2_CONF", dir.join("softhsm2.conf"));
}

fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

fn find_slot(ctx: &Pkcs11) -> Result<Slot, String> {
    for s in ctx.get_slots_with_initialized_token().map_err(ck)? {
        if ctx.get_token_info(s).map_err(ck)?.label().trim_end() == TOKEN_LABEL {
            return Ok(s);
        }
    }
    Err(format!("no token labelled {TOKEN_LABEL} after C_InitToken"))
}

impl Module {
    fn open(name: &str, path: &Path, dir: PathBuf, keep_kdf: bool) -> Result<Module, String> {
        std::fs::create_dir_all(dir.join("softhsm-tokens")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let kdf = if keep_kdf { String::new() } else { "pin_kdf_iterations = 1000\n".into() };
        let kf = format!(
            "[[slot]]\nkind = \"soft\"\npath = \"{}\"\nlabel = \"bench\"\n{kdf}",
            dir.join("keyfront-token.db").display()
        );
        let sh = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            dir.join("softhsm-tokens").display()
        );
        std::fs::write(dir.join("keyfront.toml"), kf).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("softhsm2.conf"), sh).map_err(|e| e.to_string())?;
        set_env(&dir);

        let ctx = Pkcs11::new(path).map_err(|e| format!("loading {}: {}", path.display(), ck(e)))?;
        ctx.initialize(init_args()).map_err(ck)?;
        let li = ctx.get_library_info().map_err(ck)?;
        let info =
            format!("{} / {} {}", li.manufacturer_id().trim(), li.library_description().trim(), li.library_version());
        let first = *ctx.get_slots_with_token().map_err(ck)?.first().ok_or("the module shows no slot with a token")?;
        ctx.init_token(first, &pin(SO_PIN), TOKEN_LABEL).map_err(|e| format!("C_InitToken: {}", ck(e)))?;
        // SoftHSM2 gives an initialised token a new slot id: look it up by label.
        let slot = find_slot(&ctx)?;
        let s = ctx.open_rw_session(slot).map_err(ck)?;
        s.login(UserType::So, Some(&pin(SO_PIN))).map_err(ck)?;
        s.init_pin(&pin(USER_PIN)).map_err(ck)?;
        s.logout().map_err(ck)?;
        s.login(UserType::User, Some(&pin(USER_PIN))).map_err(ck)?;
        let mechs = ctx.get_mechanism_list(slot).map_err(ck)?.iter().map(|m| **m).collect();
        Ok(Module {
            name: name.into(),
            path: path.into(),
            dir,
            ctx,
            slot,
            setup: Some(s),
            mechs,
            info,
            keys: Keys::default(),
        })
    }

    fn s(&self) -> &Session {
        self.setup.as_ref().expect("setup session")
    }

    fn need(&self, m: CK_MECHANISM_TYPE, name: &str) -> Result<(), Fail> {
        if self.mechs.contains(&m) {
            Ok(())
        } else {
            Err(Fail::Na(format!("module lists no {name}")))
        }
    }

    fn aes_key(&mut self) -> Result<ObjectHandle, Fail> {
        if self.keys.aes.is_none() {
            let r = self.need(CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN").and_then(|_| {
                self.s()
                    .generate_key(
                        &Mechanism::AesKeyGen,
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::AES),
                            Attribute::Token(false),
                            Attribute::ValueLen(32.into()),
                            Attribute::Encrypt(true),
                            Attribute::Decrypt(true),
                            Attribute::Wrap(true),
                            Attribute::Unwrap(true),
                        ],
                    )
                    .map_err(fail)
            });
            self.keys.aes = Some(r);
        }
        self.keys.aes.clone().unwrap()
    }

    /// An extractable AES-256 key, the key that the wrap cases wrap.
    fn target_key(&mut self) -> Result<ObjectHandle, Fail> {
        if self.keys.target.is_none() {
            let r = self.need(CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN").and_then(|_| {
                self.s()
                    .generate_key(
                        &Mechanism::AesKeyGen,
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::AES),
                            Attribute::Token(false),
                            Attribute::ValueLen(32.into()),
                            Attribute::Extractable(true),
                            Attribute::Sensitive(false),
                        ],
                    )
                    .map_err(fail)
            });
            self.keys.target = Some(r);
        }
        self.keys.target.clone().unwrap()
    }

    fn ec_pair(&mut self, gen: CK_MECHANISM_TYPE, params: &[&[u8]]) -> Result<Pair, Fail> {
        let (mech, name) = if gen == CKM_EC_KEY_PAIR_GEN {
            (Mechanism::EccKeyPairGen, "CKM_EC_KEY_PAIR_GEN")
        } else {
            (Mechanism::EccEdwardsKeyPairGen, "CKM_EC_EDWARDS_KEY_PAIR_GEN")
        };
        self.need(gen, name)?;
        let mut last = Fail::Na("no curve parameters".into());
        for p in params {
            let r = self.s().generate_key_pair(
                &mech,
                &[Attribute::Token(false), Attribute::EcParams(p.to_vec()), Attribute::Verify(true)],
                &[Attribute::Token(false), Attribute::Private(true), Attribute::Sensitive(true), Attribute::Sign(true)],
            );
            match r {
                Ok(pair) => return Ok(pair),
                Err(e) => last = fail(e),
            }
        }
        Err(last)
    }

    fn ec(&mut self) -> Result<Pair, Fail> {
        if self.keys.ec.is_none() {
            self.keys.ec = Some(self.ec_pair(CKM_EC_KEY_PAIR_GEN, &[P256_PARAMS]));
        }
        self.keys.ec.clone().unwrap()
    }

    fn ed(&mut self) -> Result<Pair, Fail> {
        if self.keys.ed.is_none() {
            self.keys.ed = Some(self.ec_pair(CKM_EC_EDWARDS_KEY_PAIR_GEN, &[ED25519_OID, ED25519_NAME]));
        }
        self.keys.ed.clone().unwrap()
    }

    fn rsa(&mut self) -> Result<Pair, Fail> {
        if self.keys.rsa.is_none() {
            let r = self.need(CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN").and_then(|_| {
                self.s()
                    .generate_key_pair(
                        &Mechanism::RsaPkcsKeyPairGen,
                        &[
                            Attribute::Token(false),
                            Attribute::ModulusBits(2048.into()),
                            Attribute::PublicExponent(vec![1, 0, 1]),
                            Attribute::Verify(true),
                            Attribute::Encrypt(true),
                        ],
                        &[
                            Attribute::Token(false),
                            Attribute::Private(true),
                            Attribute::Sensitive(true),
                            Attribute::Sign(true),
                            Attribute::Decrypt(true),
                        ],
                    )
                    .map_err(fail)
            });
            self.keys.rsa = Some(r);
        }
        self.keys.rsa.clone().unwrap()
    }

    /// Creates `n` token data objects with distinct labels (once).
    fn objects(&mut self, n: usize) -> Result<usize, Fail> {
        if self.keys.objects.is_none() {
            eprintln!("bench: {}: creating {n} token objects …", self.name);
            let t0 = Instant::now();
            let mut r = Ok(n);
            for i in 0..n {
                let made = self.s().create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Label(obj_label(i)),
                    Attribute::Application(b"keyfront-bench".to_vec()),
                    Attribute::Value(vec![0x5a; 32]),
                ]);
                if let Err(e) = made {
                    r = Err(Fail::Err(format!("creating object {i}: {}", ck(e))));
                    break;
                }
            }
            let el = t0.elapsed().as_secs_f64();
            eprintln!("bench: {}: {n} token objects in {el:.1} s ({:.0}/s)", self.name, n as f64 / el);
            self.keys.objects = Some(r);
        }
        self.keys.objects.clone().unwrap()
    }
}

fn obj_label(i: usize) -> Vec<u8> {
    format!("bench-object-{i:06}").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Operations

/// A worker thread's state: its own session.
struct W {
    s: Session,
    tid: u64,
    /// Objects the timed calls made, destroyed after the clock stops.
    made: Vec<ObjectHandle>,
}

type Op = Box<dyn Fn(&mut W, u64) -> Result<(), CkError> + Send + Sync>;

/// A way to run a case on a module, and what to say about it if it is not the case as named.
struct Variant {
    op: Op,
    note: Option<String>,
}

fn v(op: Op) -> Variant {
    Variant { op, note: None }
}

fn noted(op: Op, note: &str) -> Variant {
    Variant { op, note: Some(note.into()) }
}

/// A fresh 96-bit IV for each call: thread number and call number.
fn iv(w: &W, i: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[..4].copy_from_slice(&(w.tid as u32).to_be_bytes());
    iv[4..].copy_from_slice(&i.to_be_bytes());
    iv
}

fn gcm_encrypt(w: &W, key: ObjectHandle, i: u64, data: &[u8]) -> Result<Vec<u8>, CkError> {
    let mut iv = iv(w, i);
    let params = GcmParams::new(&mut iv, &[], 128.into())?;
    w.s.encrypt(&Mechanism::AesGcm(params), key, data)
}

fn pss() -> PkcsPssParams {
    PkcsPssParams { hash_alg: MechanismType::SHA256, mgf: PkcsMgfType::MGF1_SHA256, s_len: 32.into() }
}

fn oaep(sha256: bool) -> Mechanism<'static> {
    let (h, m) = if sha256 {
        (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256)
    } else {
        (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1)
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(h, m, PkcsOaepSource::empty()))
}

const OAEP_SHA1_NOTE: &str = "OAEP with SHA-1 and MGF1-SHA1: the module refused OAEP-SHA256";

/// The ways to run case `c` on module `m`, best first; each is tried once before timing.
fn variants(m: &mut Module, c: C, nobj: usize) -> Result<Vec<Variant>, Fail> {
    let digest32 = vec![0x42u8; 32];
    let msg64 = vec![0x17u8; 64];
    let data4k = vec![0x5au8; 4096];
    Ok(match c {
        C::GcmEnc64 | C::GcmEnc4k | C::GcmEnc1m => {
            m.need(CKM_AES_GCM, "CKM_AES_GCM")?;
            let key = m.aes_key()?;
            let data = vec![0x33u8; CASES.iter().find(|x| x.c == c).unwrap().bytes];
            vec![v(Box::new(move |w, i| gcm_encrypt(w, key, i, &data).map(drop)))]
        }
        C::GcmDec4k => {
            m.need(CKM_AES_GCM, "CKM_AES_GCM")?;
            let key = m.aes_key()?;
            let mut iv0 = [7u8; 12];
            let params = GcmParams::new(&mut iv0, &[], 128.into()).map_err(fail)?;
            let ct = m.s().encrypt(&Mechanism::AesGcm(params), key, &data4k).map_err(fail)?;
            vec![v(Box::new(move |w, _| {
                let mut iv = [7u8; 12];
                let params = GcmParams::new(&mut iv, &[], 128.into())?;
                w.s.decrypt(&Mechanism::AesGcm(params), key, &ct).map(drop)
            }))]
        }
        C::Kw | C::Kwp => {
            let (mt, name) = if c == C::Kw {
                (CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP")
            } else {
                (CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD")
            };
            m.need(mt, name)?;
            let key = m.aes_key()?;
            let target = m.target_key()?;
            let op: Op = Box::new(move |w, _| {
                let mech = if mt == CKM_AES_KEY_WRAP { Mechanism::AesKeyWrap } else { Mechanism::AesKeyWrapPad };
                w.s.wrap_key(&mech, key, target).map(drop)
            });
            if c == C::Kwp {
                vec![noted(
                    op,
                    "CKM_AES_KEY_WRAP_PAD (0x210A): cryptoki 0.12 cannot name CKM_AES_KEY_WRAP_KWP (0x210B)",
                )]
            } else {
                vec![v(op)]
            }
        }
        C::EcdsaSign => {
            m.need(CKM_ECDSA, "CKM_ECDSA")?;
            let (_, prv) = m.ec()?;
            vec![v(Box::new(move |w, _| w.s.sign(&Mechanism::Ecdsa, prv, &digest32).map(drop)))]
        }
        C::EcdsaVerify => {
            m.need(CKM_ECDSA, "CKM_ECDSA")?;
            let (public, prv) = m.ec()?;
            let sig = m.s().sign(&Mechanism::Ecdsa, prv, &digest32).map_err(fail)?;
            vec![v(Box::new(move |w, _| w.s.verify(&Mechanism::Ecdsa, public, &digest32, &sig)))]
        }
        C::EcdsaSha256 => {
            m.need(CKM_ECDSA, "CKM_ECDSA")?;
            let (_, prv) = m.ec()?;
            let mut out = Vec::new();
            if m.mechs.contains(&CKM_ECDSA_SHA256) {
                let d = data4k.clone();
                out.push(v(Box::new(move |w, _| w.s.sign(&Mechanism::EcdsaSha256, prv, &d).map(drop))));
            }
            m.need(CKM_SHA256, "CKM_SHA256")?;
            let note = if out.is_empty() {
                "no CKM_ECDSA_SHA256: C_Digest SHA-256 then CKM_ECDSA sign"
            } else {
                "CKM_ECDSA_SHA256 failed: C_Digest SHA-256 then CKM_ECDSA sign"
            };
            out.push(noted(
                Box::new(move |w, _| {
                    let h = w.s.digest(&Mechanism::Sha256, &data4k)?;
                    w.s.sign(&Mechanism::Ecdsa, prv, &h).map(drop)
                }),
                note,
            ));
            out
        }
        C::EdSign => {
            m.need(CKM_EDDSA, "CKM_EDDSA")?;
            let (_, prv) = m.ed()?;
            vec![v(Box::new(move |w, _| {
                w.s.sign(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), prv, &msg64).map(drop)
            }))]
        }
        C::EdVerify => {
            m.need(CKM_EDDSA, "CKM_EDDSA")?;
            let (public, prv) = m.ed()?;
            let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
            let sig = m.s().sign(&mech, prv, &msg64).map_err(fail)?;
            vec![v(Box::new(move |w, _| {
                w.s.verify(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), public, &msg64, &sig)
            }))]
        }
        C::RsaPkcs1Sign => {
            m.need(CKM_SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS")?;
            let (_, prv) = m.rsa()?;
            vec![v(Box::new(move |w, _| w.s.sign(&Mechanism::Sha256RsaPkcs, prv, &msg64).map(drop)))]
        }
        C::RsaPssSign => {
            m.need(CKM_SHA256_RSA_PKCS_PSS, "CKM_SHA256_RSA_PKCS_PSS")?;
            let (_, prv) = m.rsa()?;
            vec![v(Box::new(move |w, _| w.s.sign(&Mechanism::Sha256RsaPkcsPss(pss()), prv, &msg64).map(drop)))]
        }
        C::RsaOaepEnc => {
            m.need(CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP")?;
            let (public, _) = m.rsa()?;
            let (d1, d2) = (digest32.clone(), digest32);
            vec![
                v(Box::new(move |w, _| w.s.encrypt(&oaep(true), public, &d1).map(drop))),
                noted(Box::new(move |w, _| w.s.encrypt(&oaep(false), public, &d2).map(drop)), OAEP_SHA1_NOTE),
            ]
        }
        C::RsaOaepDec => {
            m.need(CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP")?;
            let (public, prv) = m.rsa()?;
            let mut out = Vec::new();
            for sha256 in [true, false] {
                match m.s().encrypt(&oaep(sha256), public, &digest32) {
                    Ok(ct) => {
                        let op: Op = Box::new(move |w, _| w.s.decrypt(&oaep(sha256), prv, &ct).map(drop));
                        out.push(if sha256 { v(op) } else { noted(op, OAEP_SHA1_NOTE) });
                    }
                    Err(e) if out.is_empty() && !sha256 => return Err(fail(e)),
                    Err(_) => {}
                }
            }
            out
        }
        C::P256Gen => {
            m.need(CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN")?;
            vec![v(Box::new(move |w, _| {
                let (a, b) = w.s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &[Attribute::Token(false), Attribute::EcParams(P256_PARAMS.to_vec()), Attribute::Verify(true)],
                    &[
                        Attribute::Token(false),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Sign(true),
                    ],
                )?;
                w.made.extend([a, b]);
                Ok(())
            }))]
        }
        C::AesGenToken => {
            m.need(CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN")?;
            vec![v(Box::new(move |w, _| {
                let k = w.s.generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::ValueLen(32.into()),
                        Attribute::Encrypt(true),
                        Attribute::Decrypt(true),
                    ],
                )?;
                w.made.push(k);
                Ok(())
            }))]
        }
        C::Random => vec![v(Box::new(move |w, _| {
            let mut b = [0u8; 32];
            w.s.generate_random_slice(&mut b)
        }))],
        C::OpenClose => {
            let (ctx, slot) = (m.ctx.clone(), m.slot);
            vec![v(Box::new(move |_, _| ctx.open_ro_session(slot)?.close()))]
        }
        C::Digest => {
            m.need(CKM_SHA256, "CKM_SHA256")?;
            vec![v(Box::new(move |w, _| w.s.digest(&Mechanism::Sha256, &data4k).map(drop)))]
        }
        C::Find => {
            let n = m.objects(nobj)?;
            vec![v(Box::new(move |w, i| {
                // A different label each call, spread over the whole set.
                let k = ((i.wrapping_mul(7919) + w.tid * 104_729) % n as u64) as usize;
                let found = w.s.find_objects(&[Attribute::Label(obj_label(k))])?;
                if found.len() != 1 {
                    return Err(CkError::Pkcs11(RvError::GeneralError, cryptoki::context::Function::FindObjects));
                }
                Ok(())
            }))]
        }
        C::InitOpen | C::FirstInfo | C::Login | C::FirstFind => unreachable!("lifecycle cases are timed apart"),
    })
}

/// Tries each variant once in a fresh session and keeps the first that works.
fn probe(m: &Module, vars: Vec<Variant>) -> Result<Variant, Fail> {
    let mut last = Fail::Na("nothing to run".into());
    for var in vars {
        let s = m.ctx.open_rw_session(m.slot).map_err(fail)?;
        let mut w = W { s, tid: 999, made: Vec::new() };
        let r = (var.op)(&mut w, 0);
        cleanup(&mut w);
        match r {
            Ok(()) => return Ok(var),
            Err(e) => last = fail(e),
        }
    }
    Err(last)
}

fn cleanup(w: &mut W) {
    for h in w.made.drain(..) {
        let _ = w.s.destroy_object(h);
    }
}

fn run_module_case(m: &Module, op: &Op, threads: usize, secs: f64) -> Result<Sample, String> {
    let (ctx, slot) = (&m.ctx, m.slot);
    measure(
        threads,
        secs,
        |t| ctx.open_rw_session(slot).map(|s| W { s, tid: t as u64, made: Vec::new() }).map_err(ck),
        |w, i| op(w, i).map_err(ck),
        |mut w| cleanup(&mut w),
    )
}

// ---------------------------------------------------------------------------------------------
// The raw crates: the ceiling for the symmetric cases

type RawOp = Box<dyn Fn(u64, u64) + Send + Sync>;

fn raw_op(c: C) -> Option<RawOp> {
    use aes_gcm::aead::Aead;
    use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
    let key = [0x11u8; 32];
    let gcm = |bytes: usize| -> RawOp {
        let cipher = Aes256Gcm::new(&key.into());
        let data = vec![0x33u8; bytes];
        Box::new(move |t, i| {
            let mut iv = [0u8; 12];
            iv[..4].copy_from_slice(&(t as u32).to_be_bytes());
            iv[4..].copy_from_slice(&i.to_be_bytes());
            let ct = cipher.encrypt(&Nonce::from(iv), data.as_slice()).expect("encrypt");
            std::hint::black_box(ct);
        })
    };
    Some(match c {
        C::GcmEnc64 => gcm(64),
        C::GcmEnc4k => gcm(4096),
        C::GcmEnc1m => gcm(1 << 20),
        C::GcmDec4k => {
            let cipher = Aes256Gcm::new(&key.into());
            let nonce = Nonce::from([7u8; 12]);
            let ct = cipher.encrypt(&nonce, [0x5au8; 4096].as_slice()).expect("encrypt");
            Box::new(move |_, _| {
                std::hint::black_box(cipher.decrypt(&nonce, ct.as_slice()).expect("decrypt"));
            })
        }
        C::Kw => {
            let kw = aes_kw::KwAes256::new(&key.into());
            Box::new(move |_, _| {
                let mut out = [0u8; 40];
                kw.wrap_key(&[0x22u8; 32], &mut out).expect("wrap");
                std::hint::black_box(out);
            })
        }
        C::Digest => Box::new(|_, _| {
            use sha2::Digest;
            std::hint::black_box(sha2::Sha256::digest([0x5au8; 4096]));
        }),
        _ => return None,
    })
}

fn run_raw(op: &RawOp, threads: usize, secs: f64) -> Result<Sample, String> {
    measure(
        threads,
        secs,
        |t| Ok(t as u64),
        |t, i| {
            op(*t, i);
            Ok(())
        },
        |_| {},
    )
}

// ---------------------------------------------------------------------------------------------
// C_Initialize / C_Login cycles

/// One cycle, four timings: `C_Initialize`+`C_OpenSession`, then the first `C_GetTokenInfo`
/// (every application asks before it logs in; a module that opens its store lazily reads it
/// here first), then `C_Login`, then the first `C_FindObjects*` of one label (what a lazily
/// loading module defers); finalises after.
fn lifecycle_once(m: &Module, label: &[u8]) -> Result<[Sample; 4], String> {
    set_env(&m.dir);
    let mut marks = vec![(Instant::now(), thread_cpu().unwrap_or(f64::NAN))];
    let mut mark = || marks.push((Instant::now(), thread_cpu().unwrap_or(f64::NAN)));
    m.ctx.initialize(init_args()).map_err(ck)?;
    let r = (|| {
        let s = m.ctx.open_ro_session(m.slot).map_err(ck)?;
        mark();
        m.ctx.get_token_info(m.slot).map_err(ck)?;
        mark();
        s.login(UserType::User, Some(&pin(USER_PIN))).map_err(ck)?;
        mark();
        let found = s.find_objects(&[Attribute::Label(label.to_vec())]).map_err(ck)?;
        mark();
        if found.len() != 1 {
            return Err(format!("first find: {} objects found, expected 1", found.len()));
        }
        Ok(())
    })();
    m.ctx.clone().finalize().map_err(ck)?;
    r?;
    let d = |i: usize| Sample {
        ops: 1,
        wall: (marks[i + 1].0 - marks[i].0).as_secs_f64(),
        cpu: marks[i + 1].1 - marks[i].1,
    };
    Ok([d(0), d(1), d(2), d(3)])
}

/// Repeats the cycle for about `secs` (at least twice) and adds the samples up.
fn lifecycle(m: &Module, secs: f64, nobj: usize) -> Result<[Sample; 4], String> {
    let start = Instant::now();
    let mut sum = [Sample { ops: 0, wall: 0.0, cpu: 0.0 }; 4];
    let label = obj_label(nobj / 2);
    while sum[0].ops < 2 || start.elapsed().as_secs_f64() < secs {
        let x = lifecycle_once(m, &label)?;
        for (a, b) in sum.iter_mut().zip(x) {
            *a = Sample { ops: a.ops + 1, wall: a.wall + b.wall, cpu: a.cpu + b.cpu };
        }
        if sum[0].ops >= 200 {
            break;
        }
    }
    Ok(sum)
}

// ---------------------------------------------------------------------------------------------
// Results

const RAW: &str = "raw-crate";

struct Row {
    case: usize,
    module: String,
    threads: usize,
    note: Option<String>,
    /// Samples of the rounds, or why there are none.
    samples: Vec<Sample>,
    failed: Option<Fail>,
}

impl Row {
    fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        let mut xs: Vec<f64> = self.samples.iter().map(f).collect();
        xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        match xs.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => xs[n / 2],
            n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
        }
    }
    fn ops(&self) -> f64 {
        self.median(Sample::ops_per_s)
    }
    fn cpu(&self) -> f64 {
        self.median(Sample::cpu_us_per_op)
    }
    /// (max − min) / median of ops/s over the rounds, in percent.
    fn spread(&self) -> f64 {
        let xs: Vec<f64> = self.samples.iter().map(Sample::ops_per_s).collect();
        let max = xs.iter().cloned().fold(f64::MIN, f64::max);
        let min = xs.iter().cloned().fold(f64::MAX, f64::min);
        (max - min) / self.ops() * 100.0
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x >= 1000.0 {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        "null".into()
    }
}

struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
    date: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    // Civil date (UTC) from the Unix time, so no date crate is needed.
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    Machine {
        nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu,
        kernel,
        date: format!("{y:04}-{mo:02}-{d:02}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The command

pub fn run(mut a: BenchArgs) -> Result<bool, String> {
    if a.list {
        for c in CASES {
            println!("{:<28} {}", c.id, c.what);
        }
        return Ok(true);
    }
    if a.smoke {
        a.rounds = 1;
        a.seconds_per_case = a.seconds_per_case.min(0.05);
    }
    let nobj = a.objects.unwrap_or(if a.smoke { 100 } else { 10_000 });
    if a.rounds == 0 || a.threads.is_empty() || a.threads.contains(&0) || a.seconds_per_case.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err("--rounds, --threads and --seconds-per-case must be positive".into());
    }
    let selected: Vec<usize> = (0..CASES.len())
        .filter(|&i| a.cases.is_empty() || a.cases.iter().any(|p| CASES[i].id.contains(p.as_str())))
        .collect();
    if selected.is_empty() {
        return Err("no case matches --case (see --list)".into());
    }
    let mut specs = Vec::new();
    for spec in &a.modules {
        let (name, path) = spec.split_once('=').ok_or_else(|| format!("--module {spec}: expected NAME=PATH"))?;
        if name.is_empty() || name == RAW || specs.iter().any(|(n, _): &(String, PathBuf)| n == name) {
            return Err(format!("--module {spec}: the name must be non-empty, unique and not {RAW}"));
        }
        specs.push((name.to_string(), PathBuf::from(path)));
    }

    let base = std::env::temp_dir().join(format!("keyfront-bench-{}", std::process::id()));
    let mut mods = Vec::new();
    for (i, (name, path)) in specs.iter().enumerate() {
        let m = Module::open(name, path, base.join(format!("{i}-{name}")), a.keep_kdf)
            .map_err(|e| format!("module {name} ({}): {e}", path.display()))?;
        eprintln!("bench: {name}: {} ({}), slot {}", m.info, m.path.display(), m.slot);
        mods.push(m);
    }
    let result = run_loaded(&a, &selected, nobj, &mut mods);
    for m in &mut mods {
        if let Some(s) = m.setup.take() {
            drop(s);
            let _ = m.ctx.clone().finalize();
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    result
}

fn run_loaded(a: &BenchArgs, selected: &[usize], nobj: usize, mods: &mut [Module]) -> Result<bool, String> {
    let mut rows: Vec<Row> = Vec::new();
    let row_index = |rows: &Vec<Row>, case: usize, module: &str, threads: usize| {
        rows.iter().position(|r| r.case == case && r.module == module && r.threads == threads)
    };

    // Prepare each case on each module (keys, objects) and try it once.
    let mut ops: Vec<Vec<Option<Variant>>> = Vec::new();
    for m in mods.iter_mut() {
        let mut per = Vec::new();
        for (ci, case) in CASES.iter().enumerate() {
            let c = case.c;
            if !selected.contains(&ci) || is_lifecycle(c) {
                per.push(None);
                continue;
            }
            let r = variants(m, c, nobj).and_then(|vs| probe(m, vs));
            let (note, failed, op) = match r {
                Ok(var) => (var.note.clone(), None, Some(var)),
                Err(f) => (None, Some(f), None),
            };
            for &t in &a.threads {
                rows.push(Row {
                    case: ci,
                    module: m.name.clone(),
                    threads: t,
                    note: note.clone(),
                    samples: vec![],
                    failed: failed.clone(),
                });
            }
            per.push(op);
        }
        // The lifecycle cases run with the N objects present.
        for (ci, case) in CASES.iter().enumerate() {
            if selected.contains(&ci) && is_lifecycle(case.c) {
                let failed = m.objects(nobj).err();
                rows.push(Row { case: ci, module: m.name.clone(), threads: 1, note: None, samples: vec![], failed });
            }
        }
        ops.push(per);
    }
    let raw: Vec<Option<RawOp>> = (0..CASES.len())
        .map(|ci| if a.no_raw || !selected.contains(&ci) { None } else { raw_op(CASES[ci].c) })
        .collect();
    for (ci, r) in raw.iter().enumerate() {
        if r.is_some() {
            for &t in &a.threads {
                rows.push(Row { case: ci, module: RAW.into(), threads: t, note: None, samples: vec![], failed: None });
            }
        }
    }

    // The rounds: every case, every thread count, the modules in turn.
    let secs = a.seconds_per_case;
    for round in 0..a.rounds {
        for &ci in selected {
            if is_lifecycle(CASES[ci].c) {
                continue;
            }
            for &t in &a.threads {
                for (mi, m) in mods.iter().enumerate() {
                    let Some(var) = &ops[mi][ci] else { continue };
                    let ri = row_index(&rows, ci, &m.name, t).expect("row");
                    if rows[ri].failed.is_some() {
                        continue;
                    }
                    match run_module_case(m, &var.op, t, secs) {
                        Ok(s) => {
                            eprintln!(
                                "bench: round {}/{} {:<26} {:<10} {}t {:>12} ops/s",
                                round + 1,
                                a.rounds,
                                CASES[ci].id,
                                m.name,
                                t,
                                fmt_num(s.ops_per_s())
                            );
                            rows[ri].samples.push(s);
                        }
                        Err(e) => rows[ri].failed = Some(Fail::Err(e)),
                    }
                }
                if let Some(op) = &raw[ci] {
                    let ri = row_index(&rows, ci, RAW, t).expect("row");
                    match run_raw(op, t, secs) {
                        Ok(s) => rows[ri].samples.push(s),
                        Err(e) => rows[ri].failed = Some(Fail::Err(e)),
                    }
                }
            }
        }
    }

    // C_Initialize / C_Login: finalise every module, then cycle them in turns.
    let life: Vec<usize> = selected.iter().copied().filter(|&ci| is_lifecycle(CASES[ci].c)).collect();
    if !life.is_empty() {
        for m in mods.iter_mut() {
            if let Some(s) = m.setup.take() {
                drop(s);
                m.ctx.clone().finalize().map_err(ck)?;
            }
        }
        let mut usable: Vec<bool> = mods.iter().map(|m| m.keys.objects.as_ref().is_some_and(|r| r.is_ok())).collect();
        // One untimed cycle first: warms the caches and checks that the slot id is stable.
        for (mi, m) in mods.iter_mut().enumerate() {
            if !usable[mi] {
                continue;
            }
            set_env(&m.dir);
            let r = m.ctx.initialize(init_args()).map_err(ck).and_then(|_| {
                let s = find_slot(&m.ctx);
                let _ = m.ctx.clone().finalize();
                s
            });
            match r {
                Ok(slot) => m.slot = slot,
                Err(e) => {
                    usable[mi] = false;
                    for &ci in &life {
                        let ri = row_index(&rows, ci, &m.name, 1).expect("row");
                        rows[ri].failed = Some(Fail::Err(e.clone()));
                    }
                }
            }
        }
        for round in 0..a.rounds {
            for (mi, m) in mods.iter().enumerate() {
                if !usable[mi] {
                    continue;
                }
                let r = lifecycle(m, secs, nobj);
                for &ci in &life {
                    let ri = row_index(&rows, ci, &m.name, 1).expect("row");
                    match &r {
                        Ok(four) => {
                            let s = match CASES[ci].c {
                                C::InitOpen => four[0],
                                C::FirstInfo => four[1],
                                C::Login => four[2],
                                _ => four[3],
                            };
                            eprintln!(
                                "bench: round {}/{} {:<26} {:<10} 1t {:>12} ops/s",
                                round + 1,
                                a.rounds,
                                CASES[ci].id,
                                m.name,
                                fmt_num(s.ops_per_s())
                            );
                            rows[ri].samples.push(s);
                        }
                        Err(e) => rows[ri].failed = Some(Fail::Err(e.clone())),
                    }
                }
            }
        }
    }

    // Output.
    rows.sort_by_key(|r| {
        let mi = mods.iter().position(|m| m.name == r.module).unwrap_or(mods.len());
        (selected.iter().position(|&c| c == r.case), r.threads, mi)
    });
    let mach = machine();
    let reference = mods.first().map(|m| m.name.clone()).unwrap_or_default();
    let ratio = |r: &Row| -> f64 {
        match row_index(&rows, r.case, &reference, r.threads) {
            Some(i) if rows[i].failed.is_none() && !rows[i].samples.is_empty() => r.ops() / rows[i].ops(),
            _ => f64::NAN,
        }
    };

    let mut out = String::new();
    let _ =
        writeln!(out, "keyfront bench — {} — {} cores, {} (Linux {})\n", mach.date, mach.nproc, mach.cpu, mach.kernel);
    let _ = writeln!(
        out,
        "{} round(s) of {} s per case; median of the rounds; N = {nobj} token objects; PIN KDF {}\n",
        a.rounds,
        secs,
        if a.keep_kdf { "keyfront default" } else { "keyfront 1,000 iterations" }
    );
    for m in mods.iter() {
        let _ = writeln!(out, "- `{}`: {} — `{}`", m.name, m.info, m.path.display());
    }
    if raw.iter().any(|r| r.is_some()) {
        let _ = writeln!(out, "- `{RAW}`: the RustCrypto crates called directly (aes-gcm, aes-kw, sha2), no PKCS#11");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| case | module | thr | ops/s | MB/s | × {reference} | CPU µs/op | spread | note |");
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|---|");
    let mut errors = 0;
    let mut notes: Vec<String> = Vec::new();
    let mut note_ref = |n: &str| -> String {
        let i = notes.iter().position(|x| x == n).unwrap_or_else(|| {
            notes.push(n.to_string());
            notes.len() - 1
        });
        format!("[{}]", i + 1)
    };
    let mut last_case = usize::MAX;
    for r in &rows {
        let case = &CASES[r.case];
        let label = if r.case != last_case { case.id.to_string() } else { String::new() };
        last_case = r.case;
        match &r.failed {
            Some(f) => {
                let (what, why) = match f {
                    Fail::Na(s) => ("n/a", s.clone()),
                    Fail::Err(s) => {
                        errors += 1;
                        ("error", s.clone())
                    }
                };
                let _ =
                    writeln!(out, "| {label} | {} | {} | {what} | | | | | {} |", r.module, r.threads, note_ref(&why));
            }
            None => {
                let ops = r.ops();
                let mb = if case.bytes > 0 { fmt_num(ops * case.bytes as f64 / 1e6) } else { String::new() };
                let note = r.note.as_deref().map(&mut note_ref).unwrap_or_default();
                let spread = if r.samples.len() > 1 { format!("{:.0}%", r.spread()) } else { String::new() };
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {} | {mb} | {} | {} | {spread} | {note} |",
                    r.module,
                    r.threads,
                    fmt_num(ops),
                    fmt_num(ratio(r)),
                    fmt_num(r.cpu())
                );
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out);
        for (i, n) in notes.iter().enumerate() {
            let _ = writeln!(out, "{}. {n}", i + 1);
        }
    }
    print!("{out}");

    if let Some(path) = &a.json {
        let mut j = String::new();
        let _ = write!(
            j,
            "{{\n  \"date\": {},\n  \"machine\": {{\"nproc\": {}, \"cpu\": {}, \"kernel\": {}}},\n",
            json_str(&mach.date),
            mach.nproc,
            json_str(&mach.cpu),
            json_str(&mach.kernel)
        );
        let _ = write!(
            j,
            "  \"settings\": {{\"rounds\": {}, \"seconds_per_case\": {}, \"threads\": {:?}, \"objects\": {nobj}, \"keep_kdf\": {}, \"smoke\": {}}},",
            a.rounds,
            json_num(secs),
            a.threads,
            a.keep_kdf,
            a.smoke
        );
        let _ = write!(j, "\n  \"reference\": {},\n  \"modules\": [", json_str(&reference));
        for (i, m) in mods.iter().enumerate() {
            let _ = write!(
                j,
                "{}\n    {{\"name\": {}, \"path\": {}, \"library\": {}}}",
                if i > 0 { "," } else { "" },
                json_str(&m.name),
                json_str(&m.path.display().to_string()),
                json_str(&m.info)
            );
        }
        let _ = write!(j, "\n  ],\n  \"results\": [");
        for (i, r) in rows.iter().enumerate() {
            let case = &CASES[r.case];
            let (status, reason) = match &r.failed {
                None => ("ok", None),
                Some(f @ Fail::Na(_)) => ("n/a", Some(f.text())),
                Some(f) => ("error", Some(f.text())),
            };
            let ok = r.failed.is_none();
            let ops = if ok { r.ops() } else { f64::NAN };
            let samples: Vec<String> = r
                .samples
                .iter()
                .map(|s| {
                    format!("{{\"ops\": {}, \"wall_s\": {}, \"cpu_s\": {}}}", s.ops, json_num(s.wall), json_num(s.cpu))
                })
                .collect();
            let _ = write!(
                j,
                "{}\n    {{\"case\": {}, \"what\": {}, \"module\": {}, \"threads\": {}, \"bytes\": {}, \"status\": {}, \"reason\": {}, \"note\": {}, \"ops_per_s\": {}, \"mb_per_s\": {}, \"ratio\": {}, \"cpu_us_per_op\": {}, \"samples\": [{}]}}",
                if i > 0 { "," } else { "" },
                json_str(case.id),
                json_str(case.what),
                json_str(&r.module),
                r.threads,
                case.bytes,
                json_str(status),
                reason.map(json_str).unwrap_or_else(|| "null".into()),
                r.note.as_deref().map(json_str).unwrap_or_else(|| "null".into()),
                json_num(ops),
                if case.bytes > 0 { json_num(ops * case.bytes as f64 / 1e6) } else { "null".into() },
                if ok { json_num(ratio(r)) } else { "null".into() },
                if ok { json_num(r.cpu()) } else { "null".into() },
                samples.join(", ")
            );
        }
        let _ = writeln!(j, "\n  ]\n}}");
        std::fs::write(path, j).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    if errors > 0 {
        eprintln!("bench: {errors} row(s) failed");
    }
    Ok(errors == 0 || !a.smoke)
}

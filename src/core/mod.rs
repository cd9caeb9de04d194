//! The module's state and every PKCS#11 operation in Rust terms. `src/abi` turns C calls
//! into calls on [`Module`]; the core checks sessions, login state and object policy, and
//! reaches keys only through [`crate::backend::Backend`].

mod crypto;
mod objects;
mod remote;
mod session;
mod slot;
mod token;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use cryptoki_sys::*;
use arc_swap::ArcSwapOption;

use crate::config::{self, SlotKind};
use crate::error::{rv, Result};
use crate::backend::aws_kms::AwsKms;
use crate::backend::cloud::CloudToken;
use crate::backend::vault_transit::VaultTransit;
use crate::backend::pkcs11::Pkcs11Token;
use crate::backend::soft::{SoftConfig, SoftToken};
use crate::backend::Backend;

pub use crypto::Output;
pub use crate::object::AttrRead;
pub use objects::ObjectTable;
pub use session::{Session, SessionTable};
pub use slot::{Slot, SlotPolicy, TokenStatus};
pub use token::SessionStatus;

/// Everything one `C_Initialize` set up, until `C_Finalize`.
pub struct Module {
    /// The fork generation it was initialised in: a forked child must initialise afresh.
    forks: u64,
    pub slots: Vec<Slot>,
    pub sessions: SessionTable,
    pub objects: ObjectTable,
}

/// The module of the current `C_Initialize`. Every call reads it; reading an `ArcSwap`
/// writes nothing shared (no lock word, no reference count), so threads on different
/// cores do not slow each other down here. `C_Initialize` and `C_Finalize` hold
/// [`ModuleChange`] while they replace it.
static MODULE: ArcSwapOption<Module> = ArcSwapOption::const_empty();

/// Whether a `C_Initialize` or `C_Finalize` is replacing the module. A flag, not a `Mutex`:
/// when a parent thread holds it at the moment another thread forks, the holder does not
/// exist in the child, so [`note_fork`] releases it there, or the child's own
/// `C_Initialize` would wait forever (Python's multiprocessing and pkcs11-provider fork
/// from processes whose other threads use the module).
static MODULE_CHANGING: AtomicBool = AtomicBool::new(false);

/// Holds [`MODULE_CHANGING`] until dropped.
struct ModuleChange;

impl ModuleChange {
    fn lock() -> ModuleChange {
        // Taken twice per C_Initialize/C_Finalize pair: spinning briefly, then sleeping, is
        // enough, and needs nothing a fork could leave held.
        let mut tries = 0u32;
        while MODULE_CHANGING.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            tries += 1;
            if tries < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
        ModuleChange
    }
}

impl Drop for ModuleChange {
    fn drop(&mut self) {
        MODULE_CHANGING.store(false, Ordering::Release);
    }
}

/// The module for one call; it stays alive while this is held, even across a `C_Finalize`.
pub struct ModuleRef(arc_swap::Guard<Option<Arc<Module>>>);

impl std::ops::Deref for ModuleRef {
    type Target = Module;
    fn deref(&self) -> &Module {
        self.0.as_deref().expect("module() checked it is there")
    }
}

/// How many times this process is a forked child of the one that loaded keyfront. Asking
/// the kernel for the process id on every call costs more than most operations.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// Called in the child right after `fork()` (the ABI layer registers it with
/// `pthread_atfork`): only atomic stores, as a fork handler must be.
pub fn note_fork() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    MODULE_CHANGING.store(false, Ordering::Release);
}

/// Where a forked child keeps the module state it inherited: never dropped (that would close
/// the parent's connections), but still reachable. Lock-free, since a lock could have been
/// held by a parent thread at the moment of the fork.
static INHERITED: std::sync::atomic::AtomicPtr<Module> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

fn park_inherited(module: Arc<Module>) {
    // An older parked state (from a fork of a fork) stays allocated, as the one parked now.
    let _older = INHERITED.swap(Arc::into_raw(module) as *mut Module, Ordering::AcqRel);
}

fn forks() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

/// The initialised module, or `CKR_CRYPTOKI_NOT_INITIALIZED` (also in a forked child that
/// has not called `C_Initialize` itself).
pub fn module() -> Result<ModuleRef> {
    let current = MODULE.load();
    match &*current {
        Some(m) if m.forks == forks() => Ok(ModuleRef(current)),
        _ => Err(rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

pub fn initialize() -> Result<()> {
    crate::logging::init();
    let _changing = ModuleChange::lock();
    if let Some(m) = MODULE.load().as_ref() {
        if m.forks == forks() {
            return Err(rv(CKR_CRYPTOKI_ALREADY_INITIALIZED));
        }
        // Inherited across fork(): its connections and locks belong to the parent, so it is
        // neither used nor dropped here, only kept reachable.
        if let Some(inherited) = MODULE.swap(None) {
            park_inherited(inherited);
        }
    }
    // A bad configuration is logged once, by the ABI layer, with the file and line.
    let slots = config::load()?;
    let mut built = Vec::new();
    for cfg in slots {
        let backend: Box<dyn Backend> = match &cfg.kind {
            SlotKind::Soft { path, kdf_iterations } => Box::new(SoftToken::new(SoftConfig {
                path: path.clone(),
                label: cfg.label.clone(),
                kdf_iterations: *kdf_iterations,
            })),
            // A vendor module that cannot be loaded, or has no such token, costs its slot
            // only, not the whole module.
            SlotKind::Pkcs11(forward) => match Pkcs11Token::open(forward, &cfg.label) {
                Ok(token) => Box::new(token),
                Err(e) => {
                    tracing::error!("slot {}: left out: {e}", cfg.id);
                    continue;
                }
            },
            // Built without a request to the service: C_Initialize stays fast and works
            // while the service is unreachable.
            SlotKind::AwsKms(aws) => match AwsKms::new(aws) {
                Ok(service) => Box::new(CloudToken::new(&cfg.label, Arc::new(service), &aws.cloud)),
                Err(e) => {
                    tracing::error!("slot {}: left out: {e}", cfg.id);
                    continue;
                }
            },
            SlotKind::VaultTransit(vault) => match VaultTransit::new(vault) {
                Ok(service) => Box::new(CloudToken::new(&cfg.label, Arc::new(service), &vault.cloud)),
                Err(e) => {
                    tracing::error!("slot {}: left out: {e}", cfg.id);
                    continue;
                }
            },
        };
        built.push(Slot::new(cfg.id, cfg.label.clone(), backend, cfg.policy.clone()));
    }
    let slots = built;
    MODULE.store(Some(Arc::new(Module {
        forks: forks(),
        slots,
        sessions: SessionTable::default(),
        objects: ObjectTable::default(),
    })));
    Ok(())
}

pub fn finalize() -> Result<()> {
    let _changing = ModuleChange::lock();
    match MODULE.swap(None) {
        Some(m) if m.forks == forks() => {
            for slot in &m.slots {
                slot.logout_all();
            }
            Ok(())
        }
        Some(m) => {
            park_inherited(m);
            Err(rv(CKR_CRYPTOKI_NOT_INITIALIZED))
        }
        None => Err(rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

impl Module {
    pub fn slot(&self, id: CK_SLOT_ID) -> Result<&Slot> {
        self.slots.iter().find(|s| s.id == id).ok_or(rv(CKR_SLOT_ID_INVALID))
    }
}

/// A map keyed by handles. Handles are small integers keyfront hands out itself, so a
/// multiply-and-mix hash is enough and much cheaper than SipHash on every call.
pub(crate) type HandleMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<HandleHasher>>;

#[derive(Default)]
pub(crate) struct HandleHasher(u64);

impl std::hash::Hasher for HandleHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Copies `text` into a blank-padded fixed field, cut at a character boundary.
pub fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = text.len().min(N);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&text.as_bytes()[..end]);
    out
}

/// A text listing of the configured slots, for `keyfront slots`.
pub fn list_slots() -> Result<String> {
    initialize()?;
    let listing = module().map(|m| {
        let mut text = String::new();
        for slot in &m.slots {
            text.push_str(&format!("slot {}: {}\n", slot.id, slot.description));
            match slot.backend.token_info() {
                Ok(info) => {
                    let initialized = info.flags & CKF_TOKEN_INITIALIZED != 0;
                    let user_pin = info.flags & CKF_USER_PIN_INITIALIZED != 0;
                    let locked = info.flags & CKF_USER_PIN_LOCKED != 0;
                    text.push_str(&format!(
                        "  token: {:?} model {:?} serial {}\n  initialized: {initialized}, user PIN set: {user_pin}, user PIN locked: {locked}\n",
                        info.label, info.model, info.serial
                    ));
                }
                Err(e) => text.push_str(&format!("  token unavailable: {e}\n")),
            }
        }
        text
    });
    finalize()?;
    listing
}

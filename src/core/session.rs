//! Sessions: each has its own lock and its own operation state, so threads working in
//! different sessions never wait on each other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cryptoki_sys::*;

use super::HandleMap;
use parking_lot::{Mutex, RwLock};

use crate::error::{rv, Result};
use crate::mechanism::{Cipher, Digester, Secret, Signer};

/// An operation in progress with the output it has computed but not yet handed over (the
/// caller asked for the length first, or gave too small a buffer).
pub struct Pending<T> {
    pub op: T,
    pub output: Option<Secret>,
    /// The mechanism takes its input in one call only (`C_Sign`, not `C_SignUpdate`).
    pub single_part: bool,
    /// Input came with an `…Update` call (or `C_DigestKey`): only the `…Final` call may end
    /// the operation now, not a single-part one.
    pub multi_part: bool,
    /// The key is CKA_ALWAYS_AUTHENTICATE: `C_Login(CKU_CONTEXT_SPECIFIC)` must come before
    /// the operation may produce anything.
    pub needs_context_login: bool,
}

impl<T> Pending<T> {
    pub fn new(op: T) -> Self {
        Self { op, output: None, single_part: false, multi_part: false, needs_context_login: false }
    }
}

pub struct Session {
    pub handle: CK_SESSION_HANDLE,
    pub slot_id: CK_SLOT_ID,
    pub read_write: bool,
    pub encrypt: Option<Pending<Box<dyn Cipher>>>,
    pub decrypt: Option<Pending<Box<dyn Cipher>>>,
    pub digest: Option<Pending<Box<dyn Digester>>>,
    pub sign: Option<Pending<Box<dyn Signer>>>,
    pub verify: Option<Pending<Box<dyn Signer>>>,
    /// Handles found by `C_FindObjectsInit`, handed out by `C_FindObjects`.
    pub find: Option<std::vec::IntoIter<CK_OBJECT_HANDLE>>,
    /// A `C_WrapKey` result the caller has not taken yet (it asked for the length, or gave
    /// too small a buffer): the same call again gets it without wrapping again, which for a
    /// cloud slot is a request to the service.
    pub wrapped: Option<WrappedKey>,
}

/// See `Session::wrapped`.
pub struct WrappedKey {
    pub mechanism: crate::mechanism::Mechanism,
    pub wrapping: CK_OBJECT_HANDLE,
    pub key: CK_OBJECT_HANDLE,
    pub blob: Secret,
}

impl Session {
    /// The sign or decrypt operation waiting for a context-specific login, if any.
    pub fn awaiting_context_login(&mut self) -> Option<&mut bool> {
        let sign = self.sign.as_mut().map(|p| &mut p.needs_context_login);
        let decrypt = self.decrypt.as_mut().map(|p| &mut p.needs_context_login);
        sign.into_iter().chain(decrypt).find(|needed| **needed)
    }
}

pub type SessionRef = Arc<Mutex<Session>>;

/// Sessions in shards by handle, each lock on a cache line of its own: threads working in
/// different sessions take different locks, so a lookup on one core does not invalidate
/// the lock word in another core's cache (with one table-wide lock, that traffic was most
/// of what two threads doing small operations cost each other).
#[derive(Default)]
pub struct SessionTable {
    next: AtomicU64,
    shards: [Shard; SHARDS],
}

const SHARDS: usize = 16;

#[derive(Default)]
#[repr(align(128))]
struct Shard(RwLock<HandleMap<CK_SESSION_HANDLE, (SessionSummary, SessionRef)>>);

/// What the table knows of a session without locking it.
#[derive(Clone, Copy)]
pub struct SessionSummary {
    pub slot_id: CK_SLOT_ID,
    pub read_write: bool,
}

impl SessionTable {
    pub fn open(&self, slot_id: CK_SLOT_ID, read_write: bool) -> CK_SESSION_HANDLE {
        let handle = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session {
            handle,
            slot_id,
            read_write,
            encrypt: None,
            decrypt: None,
            digest: None,
            sign: None,
            verify: None,
            find: None,
            wrapped: None,
        };
        self.shard(handle)
            .write()
            .insert(handle, (SessionSummary { slot_id, read_write }, Arc::new(Mutex::new(session))));
        handle
    }

    fn shard(&self, handle: CK_SESSION_HANDLE) -> &RwLock<HandleMap<CK_SESSION_HANDLE, (SessionSummary, SessionRef)>> {
        &self.shards[handle as usize % SHARDS].0
    }

    pub fn get(&self, handle: CK_SESSION_HANDLE) -> Result<SessionRef> {
        self.shard(handle).read().get(&handle).map(|(_, s)| s.clone()).ok_or(rv(CKR_SESSION_HANDLE_INVALID))
    }

    pub fn close(&self, handle: CK_SESSION_HANDLE) -> Result<CK_SLOT_ID> {
        let (summary, _) = self.shard(handle).write().remove(&handle).ok_or(rv(CKR_SESSION_HANDLE_INVALID))?;
        Ok(summary.slot_id)
    }

    /// Sessions open on a slot, read-write or not.
    pub fn on_slot(&self, slot_id: CK_SLOT_ID) -> Vec<(CK_SESSION_HANDLE, SessionSummary)> {
        let mut found = Vec::new();
        for shard in &self.shards {
            let sessions = shard.0.read();
            let on_slot = sessions.iter().filter(|(_, (summary, _))| summary.slot_id == slot_id);
            found.extend(on_slot.map(|(h, (summary, _))| (*h, *summary)));
        }
        found
    }
}

//! Operations carried out by the vendor: a `Cipher` or `Signer` that holds the vendor
//! session tied to the keyfront session, and calls the vendor's update/final or single-part
//! functions on it.

use std::sync::Arc;

use cryptoki_sys::*;

use super::mechanism::RawMechanism;
use super::session::{is_lost, Link, Tied, TiedRef};
use crate::error::{rv, Error, Result};
use crate::mechanism::{Cipher, Mechanism, Secret, Signer};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpKind {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
}

impl OpKind {
    fn init_name(self) -> &'static str {
        match self {
            OpKind::Encrypt => "C_EncryptInit",
            OpKind::Decrypt => "C_DecryptInit",
            OpKind::Sign => "C_SignInit",
            OpKind::Verify => "C_VerifyInit",
        }
    }

    fn cancel_flag(self) -> CK_FLAGS {
        match self {
            OpKind::Encrypt => CKF_ENCRYPT,
            OpKind::Decrypt => CKF_DECRYPT,
            OpKind::Sign => CKF_SIGN,
            OpKind::Verify => CKF_VERIFY,
        }
    }
}

const KINDS: [OpKind; 4] = [OpKind::Encrypt, OpKind::Decrypt, OpKind::Sign, OpKind::Verify];

/// What `start` did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Started {
    Yes,
    /// The vendor session keeps an operation that nothing could end (`terminate`), and no
    /// operation of keyfront's runs on it: the session is of no more use for operations.
    Stuck,
}

/// Starts `kind` at the vendor on `session`. `alone`: no other operation of keyfront's runs
/// on the session, so an operation the vendor still has there is a leftover (one it kept
/// after an error that should have ended it): it is ended, whatever its kind (most vendors,
/// SoftHSM2 among them, run one operation at a time and refuse any other with
/// `CKR_OPERATION_ACTIVE`), and the start tried once more.
pub fn start(
    link: &Link,
    session: CK_SESSION_HANDLE,
    kind: OpKind,
    mechanism: &Mechanism,
    key: CK_OBJECT_HANDLE,
    alone: bool,
) -> Result<Started> {
    let mut raw = RawMechanism::new(mechanism)?;
    let init = |raw: &mut RawMechanism| match kind {
        OpKind::Encrypt => link.vendor.encrypt_init(session, raw, key),
        OpKind::Decrypt => link.vendor.decrypt_init(session, raw, key),
        OpKind::Sign => link.vendor.sign_init(session, raw, key),
        OpKind::Verify => link.vendor.verify_init(session, raw, key),
    };
    match init(&mut raw) {
        Err(Error::Rv(CKR_OPERATION_ACTIVE)) if alone => {
            tracing::debug!(slot = %link.name, call = kind.init_name(), "vendor operation still active; ending it");
            for leftover in KINDS {
                terminate(link, session, leftover);
            }
            match init(&mut raw) {
                Ok(()) => Ok(Started::Yes),
                Err(Error::Rv(CKR_OPERATION_ACTIVE)) => Ok(Started::Stuck),
                Err(e) => Err(e),
            }
        }
        other => other.map(|()| Started::Yes),
    }
}

/// Ends an operation of `kind` on `session` whatever state it is in (it does nothing to a
/// session without one). `C_SessionCancel` if the vendor has it; else, PKCS#11 2.40 having no
/// call for it, the final call and then the single-part call on empty input: an operation
/// ends with its final call or with an error (§5.2), and whichever call it takes ends it,
/// the other finding none (`CKR_OPERATION_NOT_INITIALIZED`). Both are made because vendors
/// do not all end an operation on every error: SoftHSM2 keeps an RSA encryption after
/// `C_EncryptUpdate` and `C_EncryptFinal` answered `CKR_FUNCTION_NOT_SUPPORTED`, and ends it
/// only with `C_Encrypt`.
pub fn terminate(link: &Link, session: CK_SESSION_HANDLE, kind: OpKind) {
    let vendor = &link.vendor;
    if vendor.has_session_cancel() && vendor.session_cancel(session, kind.cancel_flag()).is_ok() {
        return;
    }
    let _ = match kind {
        OpKind::Encrypt => vendor.encrypt_final(session).map(drop),
        OpKind::Decrypt => vendor.decrypt_final(session).map(drop),
        OpKind::Sign => vendor.sign_final(session).map(drop),
        OpKind::Verify => vendor.verify_final(session, &[]),
    };
    let _ = match kind {
        OpKind::Encrypt => vendor.encrypt(session, &[]).map(drop),
        OpKind::Decrypt => vendor.decrypt(session, &[]).map(drop),
        OpKind::Sign => vendor.sign(session, &[]).map(drop),
        OpKind::Verify => vendor.verify(session, &[], &[]),
    };
}

/// An operation running at the vendor.
pub struct RemoteOp {
    link: Arc<Link>,
    tied: TiedRef,
    /// The generation of the tied vendor session the operation was started on.
    generation: u64,
    kind: OpKind,
    mechanism: Mechanism,
    key: CK_OBJECT_HANDLE,
    /// Input was given with an update call.
    started: bool,
    /// The vendor still has the operation.
    active: bool,
    /// The operation counts in `Tied::pins` of its generation.
    pinned: bool,
    /// The most input bytes a call may pass on (`with_input_limit`).
    input_limit: Option<usize>,
}

/// Refuses input longer than `limit` before the vendor sees it.
fn within(limit: Option<usize>, input: &[u8]) -> Result<()> {
    match limit {
        Some(max) if input.len() > max => Err(rv(CKR_DATA_LEN_RANGE)),
        _ => Ok(()),
    }
}

/// Ends an operation's hold on its vendor session, which goes back to the pool if nothing
/// else holds it. A pin of an earlier generation went with that session.
fn unpin(link: &Link, pinned: &mut bool, generation: u64, tied: &mut Tied) {
    if std::mem::take(pinned) && tied.generation == generation && tied.pins > 0 {
        tied.pins -= 1;
        link.release_if_idle(tied);
    }
}

impl RemoteOp {
    pub fn new(link: Arc<Link>, tied: TiedRef, generation: u64, kind: OpKind, mechanism: Mechanism, key: CK_OBJECT_HANDLE) -> Self {
        Self { link, tied, generation, kind, mechanism, key, started: false, active: true, pinned: true, input_limit: None }
    }

    /// Input (data to encrypt, sign or verify) longer than `limit` bytes is refused with
    /// `CKR_DATA_LEN_RANGE` and never reaches the vendor, which ends the operation.
    pub fn with_input_limit(mut self, limit: Option<usize>) -> Self {
        self.input_limit = limit;
        self
    }

    /// A step of a multi-part operation, on the session it was started on; an error ends it
    /// (the vendor ended it too). Not retried: the vendor's state is gone with its session.
    fn step<T>(&mut self, call: &str, ends: bool, f: impl FnOnce(&Link, CK_SESSION_HANDLE) -> Result<T>) -> Result<T> {
        if !self.active {
            return Err(rv(CKR_OPERATION_NOT_INITIALIZED));
        }
        let mut tied = self.tied.lock();
        let session = match tied.handle {
            Some(h) if tied.generation == self.generation => h,
            _ => {
                self.active = false;
                self.pinned = false;
                return Err(rv(tied.lost));
            }
        };
        let result = f(&self.link, session);
        if let Err(e) = &result {
            self.link.log_failure(call, e);
            self.active = false;
            match e {
                Error::Rv(code) if is_lost(*code) => {
                    self.link.close_tied(&mut tied, *code);
                    self.link.note_loss();
                }
                // The error ended the operation, or should have: see `terminate`.
                _ => terminate(&self.link, session, self.kind),
            }
        } else if ends {
            self.active = false;
        }
        if !self.active {
            unpin(&self.link, &mut self.pinned, self.generation, &mut tied);
        }
        result
    }

    /// A single-part call (`C_Encrypt`, `C_Sign`…) that ends the operation. If the vendor
    /// lost the session, the operation is started again on a new one and the call retried:
    /// nothing of it had happened at the vendor yet.
    fn once<T>(&mut self, call: &str, mut f: impl FnMut(&Link, CK_SESSION_HANDLE) -> Result<T>) -> Result<T> {
        if !self.active {
            return Err(rv(CKR_OPERATION_NOT_INITIALIZED));
        }
        if self.started {
            // A single-part call cannot finish a multi-part operation; the core refuses it
            // first, with the same code, and ends the operation.
            self.active = false;
            return Err(rv(CKR_OPERATION_NOT_INITIALIZED));
        }
        self.active = false;
        let link = self.link.clone();
        let mut tied = self.tied.lock();
        let mut attempt = 0;
        let result = loop {
            let result: Result<T> = 'attempt: {
                // On a vendor session other than the one the operation began on (that one was
                // lost), begin it again.
                let fresh = tied.handle.is_none() || tied.generation != self.generation;
                if fresh {
                    self.pinned = false;
                }
                let session = match link.ensure_open(&mut tied) {
                    Ok(s) => s,
                    Err(e) => break 'attempt Err(e),
                };
                if fresh {
                    // A session new to this operation: nothing of keyfront's runs on it.
                    match start(&link, session, self.kind, &self.mechanism, self.key, tied.pins == 0) {
                        Ok(Started::Yes) => {}
                        Ok(Started::Stuck) => break 'attempt Err(rv(CKR_OPERATION_ACTIVE)),
                        Err(e) => break 'attempt Err(e),
                    }
                    tied.pins += 1;
                    self.pinned = true;
                    self.generation = tied.generation;
                }
                f(&link, session)
            };
            let Err(e) = result else { break result };
            link.log_failure(call, &e);
            let Error::Rv(code) = e else { break Err(e) };
            if !is_lost(code) {
                // The error ended the operation, or should have: see `terminate`.
                if let Some(session) = tied.handle.filter(|_| self.pinned && tied.generation == self.generation) {
                    terminate(&link, session, self.kind);
                }
                break Err(e);
            }
            link.close_tied(&mut tied, code);
            link.note_loss();
            if attempt >= link.retry_attempts() {
                break Err(e);
            }
            attempt += 1;
            link.back_off(call, attempt, code);
        };
        unpin(&link, &mut self.pinned, self.generation, &mut tied);
        if !self.pinned {
            // A session taken for a new start that failed holds nothing.
            link.release_if_idle(&mut tied);
        }
        result
    }
}

impl Drop for RemoteOp {
    /// An operation dropped before it ended (cancelled, or its session closed) is ended at
    /// the vendor too, or the next one on that session would find it still active.
    fn drop(&mut self) {
        let mut tied = self.tied.lock();
        if self.active {
            if let Some(session) = tied.handle.filter(|_| tied.generation == self.generation) {
                terminate(&self.link, session, self.kind);
            }
        }
        unpin(&self.link, &mut self.pinned, self.generation, &mut tied);
    }
}

impl Cipher for RemoteOp {
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        self.started = true;
        match self.kind {
            OpKind::Encrypt => {
                let limit = self.input_limit;
                self.step("C_EncryptUpdate", false, |l, s| within(limit, input).and_then(|()| l.vendor.encrypt_update(s, input)))
            }
            OpKind::Decrypt => self.step("C_DecryptUpdate", false, |l, s| l.vendor.decrypt_update(s, input)),
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }

    fn finish(&mut self) -> Result<Secret> {
        match self.kind {
            OpKind::Encrypt => self.step("C_EncryptFinal", true, |l, s| l.vendor.encrypt_final(s)),
            OpKind::Decrypt => self.step("C_DecryptFinal", true, |l, s| l.vendor.decrypt_final(s)),
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }

    fn once(&mut self, input: &[u8]) -> Result<Secret> {
        match self.kind {
            OpKind::Encrypt => {
                let limit = self.input_limit;
                RemoteOp::once(self, "C_Encrypt", |l, s| within(limit, input).and_then(|()| l.vendor.encrypt(s, input)))
            }
            OpKind::Decrypt => RemoteOp::once(self, "C_Decrypt", |l, s| l.vendor.decrypt(s, input)),
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }
}

impl Signer for RemoteOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.started = true;
        let limit = self.input_limit;
        match self.kind {
            OpKind::Sign => self.step("C_SignUpdate", false, |l, s| within(limit, data).and_then(|()| l.vendor.sign_update(s, data))),
            OpKind::Verify => self.step("C_VerifyUpdate", false, |l, s| within(limit, data).and_then(|()| l.vendor.verify_update(s, data))),
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        match self.kind {
            OpKind::Sign => self.step("C_SignFinal", true, |l, s| l.vendor.sign_final(s)),
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        match self.kind {
            OpKind::Verify => self.step("C_VerifyFinal", true, |l, s| l.vendor.verify_final(s, signature)),
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }

    fn sign_once(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        match self.kind {
            OpKind::Sign => {
                let limit = self.input_limit;
                RemoteOp::once(self, "C_Sign", |l, s| within(limit, data).and_then(|()| l.vendor.sign(s, data)))
            }
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }

    fn verify_once(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        match self.kind {
            OpKind::Verify => {
                let limit = self.input_limit;
                RemoteOp::once(self, "C_Verify", |l, s| within(limit, data).and_then(|()| l.vendor.verify(s, data, signature)))
            }
            _ => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }
}

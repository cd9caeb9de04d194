//! Vendor sessions. Each keyfront session that runs an operation or makes an object gets a
//! vendor session of its own ("tied"), because the vendor keeps operation state and session
//! objects per session; calls without such state (find, attributes, login…) borrow one from
//! a small pool. Login state is per application in PKCS#11, so a login on any vendor session
//! holds for all of them, as long as one stays open; sessions opened after the vendor lost
//! them log in again with the kept PIN.
//!
//! Locks: the pool's and the tied map's are never held across a vendor call; a tied
//! session's own lock is (vendor sessions are single-threaded), and a pooled session is
//! used by one thread at a time because it is taken out of the pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use parking_lot::{Condvar, Mutex, MutexGuard};
use zeroize::Zeroizing;

use super::module::Vendor;
use crate::backend::UserType;
use crate::error::{rv, rv_name, Error, Result};

/// How long a call waits for a vendor session when all `max_sessions` are busy; then it
/// fails with `CKR_DEVICE_MEMORY` (a return code every function may give).
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Return codes after which the vendor session (or the token behind it) is gone: reopen the
/// session, log in again, and retry the call if it is idempotent.
pub fn is_lost(code: CK_RV) -> bool {
    matches!(
        code,
        CKR_DEVICE_REMOVED | CKR_TOKEN_NOT_PRESENT | CKR_SESSION_HANDLE_INVALID | CKR_SESSION_CLOSED | CKR_DEVICE_ERROR
    )
}

fn lost_code(e: &Error) -> Option<CK_RV> {
    match e {
        Error::Rv(code) if is_lost(*code) => Some(*code),
        _ => None,
    }
}

/// The vendor session tied to one keyfront session while an operation runs on it or it holds
/// session objects; otherwise it goes back to the pool.
pub struct Tied {
    pub handle: Option<CK_SESSION_HANDLE>,
    /// Changes whenever `handle` is replaced: an operation begun under another generation is
    /// gone.
    pub generation: u64,
    /// Why the last vendor session was dropped (what an operation on it then reports).
    pub lost: CK_RV,
    /// `Link::losses` when the session was last known to be alive.
    checked: u64,
    /// Operations running on the session.
    pub pins: usize,
    /// Session objects were made in it: it stays until keyfront's session closes.
    pub owns_objects: bool,
}

pub type TiedRef = Arc<Mutex<Tied>>;

#[derive(Default)]
struct Pool {
    /// Idle sessions with `Link::losses` when each was last known to be alive.
    idle: Vec<(CK_SESSION_HANDLE, u64)>,
    /// Pooled sessions open, idle or lent out.
    pooled: usize,
    /// Tied sessions open.
    tied: usize,
}

/// The connection to one vendor token.
pub struct Link {
    pub vendor: Arc<Vendor>,
    pub slot: CK_SLOT_ID,
    /// The keyfront slot's label, for logs.
    pub name: String,
    max_sessions: usize,
    retry_attempts: u32,
    retry_delay: Duration,
    pool: Mutex<Pool>,
    pool_changed: Condvar,
    tied: Mutex<HashMap<CK_SESSION_HANDLE, TiedRef>>,
    /// Who is logged in, with the PIN to log in again after the vendor lost its sessions.
    login: Mutex<Option<(CK_USER_TYPE, Zeroizing<Vec<u8>>)>>,
    /// Counts the times the vendor was seen to lose a session: a tied session not used since
    /// is checked before its next call (if the vendor lost one session it likely lost all).
    losses: AtomicU64,
}

pub fn user_code(user: UserType) -> CK_USER_TYPE {
    match user {
        UserType::So => CKU_SO,
        UserType::User => CKU_USER,
    }
}

impl Link {
    pub fn new(
        vendor: Arc<Vendor>,
        slot: CK_SLOT_ID,
        name: String,
        max_sessions: usize,
        retry_attempts: u32,
        retry_delay_ms: u64,
    ) -> Self {
        Self {
            vendor,
            slot,
            name,
            max_sessions: max_sessions.max(1),
            retry_attempts,
            retry_delay: Duration::from_millis(retry_delay_ms),
            pool: Mutex::new(Pool::default()),
            pool_changed: Condvar::new(),
            tied: Mutex::new(HashMap::new()),
            login: Mutex::new(None),
            losses: AtomicU64::new(0),
        }
    }

    /// Logs a failed vendor call; lost sessions and devices at warning level.
    pub fn log_failure(&self, call: &str, e: &Error) {
        match e {
            Error::Rv(code) if is_lost(*code) => {
                tracing::warn!(slot = %self.name, vendor_call = call, vendor_rv = %rv_name(*code), "vendor lost the session or device")
            }
            _ => tracing::debug!(slot = %self.name, vendor_call = call, error = %e, "vendor call failed"),
        }
    }

    /// Waits before retry `attempt` (1, 2, …): `retry_delay_ms`, doubled at each retry.
    pub fn back_off(&self, call: &str, attempt: u32, code: CK_RV) {
        tracing::warn!(
            slot = %self.name,
            vendor_call = call,
            vendor_rv = %rv_name(code),
            attempt,
            of = self.retry_attempts,
            "retrying after reconnecting"
        );
        std::thread::sleep(self.retry_delay * (1u32 << attempt.saturating_sub(1).min(10)));
    }

    pub fn retry_attempts(&self) -> u32 {
        self.retry_attempts
    }

    // ---- login state ---------------------------------------------------------------------

    pub fn set_login(&self, state: Option<(CK_USER_TYPE, Zeroizing<Vec<u8>>)>) {
        *self.login.lock() = state;
    }

    pub fn login_user(&self) -> Option<CK_USER_TYPE> {
        self.login.lock().as_ref().map(|(u, _)| *u)
    }

    /// Replaces the kept PIN of `user` if that user is the one logged in.
    pub fn update_pin(&self, user: CK_USER_TYPE, pin: &[u8]) {
        if let Some((u, kept)) = self.login.lock().as_mut() {
            if *u == user {
                *kept = Zeroizing::new(pin.to_vec());
            }
        }
    }

    /// Logs `session` in again if keyfront's user is logged in and the vendor has forgotten
    /// it (all its sessions were closed). A failure is logged, not returned: the call that
    /// follows gets the vendor's own answer (`CKR_USER_NOT_LOGGED_IN`…).
    fn restore_login(&self, session: CK_SESSION_HANDLE) {
        let Some((user, pin)) = self.login.lock().clone() else { return };
        let logged_in = match self.vendor.session_info(session) {
            Ok(info) => match user {
                CKU_SO => info.state == CKS_RW_SO_FUNCTIONS,
                _ => matches!(info.state, CKS_RW_USER_FUNCTIONS | CKS_RO_USER_FUNCTIONS),
            },
            Err(_) => false,
        };
        if logged_in {
            return;
        }
        match self.vendor.login(session, user, &pin) {
            Ok(()) | Err(Error::Rv(CKR_USER_ALREADY_LOGGED_IN)) => {
                tracing::info!(slot = %self.name, "logged in again to the vendor token")
            }
            Err(e) => tracing::warn!(slot = %self.name, error = %e, "could not log in again to the vendor token"),
        }
    }

    fn open_vendor_session(&self) -> Result<CK_SESSION_HANDLE> {
        let session = self.vendor.open_session(self.slot).inspect_err(|e| self.log_failure("C_OpenSession", e))?;
        self.restore_login(session);
        Ok(session)
    }

    fn close_vendor_session(&self, session: CK_SESSION_HANDLE) {
        if let Err(e) = self.vendor.close_session(session) {
            tracing::debug!(slot = %self.name, error = %e, "vendor C_CloseSession");
        }
    }

    // ---- the pool ------------------------------------------------------------------------

    /// A pooled session for this thread alone until `give_back` or `discard`. An idle
    /// session not used since the vendor lost one is checked first.
    fn lease(&self) -> Result<CK_SESSION_HANDLE> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut pool = self.pool.lock();
        loop {
            if let Some((session, checked)) = pool.idle.pop() {
                if checked == self.losses.load(Ordering::Acquire) {
                    return Ok(session);
                }
                drop(pool);
                match self.vendor.session_info(session) {
                    Err(Error::Rv(code)) if is_lost(code) => {
                        tracing::info!(slot = %self.name, vendor_rv = %rv_name(code), "replacing a lost vendor session");
                        self.discard(session);
                    }
                    _ => return Ok(session),
                }
                pool = self.pool.lock();
                continue;
            }
            // The pool may go one over `max_sessions` so that it is never without a session
            // while every other one is tied; never further, however sessions move between
            // the pool and tied operations.
            let open = pool.pooled + pool.tied;
            if open < self.max_sessions || (pool.pooled == 0 && open <= self.max_sessions) {
                pool.pooled += 1;
                drop(pool);
                return self.open_vendor_session().inspect_err(|_| {
                    self.pool.lock().pooled -= 1;
                    self.pool_changed.notify_all();
                });
            }
            if self.pool_changed.wait_until(&mut pool, deadline).timed_out() {
                tracing::warn!(slot = %self.name, max_sessions = self.max_sessions, "every vendor session is busy");
                return Err(rv(CKR_DEVICE_MEMORY));
            }
        }
    }

    fn give_back(&self, session: CK_SESSION_HANDLE) {
        let checked = self.losses.load(Ordering::Acquire);
        self.pool.lock().idle.push((session, checked));
        self.pool_changed.notify_one();
    }

    fn discard(&self, session: CK_SESSION_HANDLE) {
        self.pool.lock().pooled -= 1;
        self.pool_changed.notify_all();
        self.close_vendor_session(session);
    }

    /// The vendor lost a session: the others are checked before their next use (if it lost
    /// one it may have lost all). Not closed: some vendors (SoftHSM2) forget every object
    /// handle, and the login, when an application's last session closes.
    pub fn note_loss(&self) {
        self.losses.fetch_add(1, Ordering::AcqRel);
    }

    /// Opens a pooled session if none is open, so that one always is (see `ensure_open`).
    pub fn keep_one_open(&self) -> Result<()> {
        let session = self.lease()?;
        self.give_back(session);
        Ok(())
    }

    /// The idle pooled sessions (for tests that pull them from under the slot).
    #[cfg(test)]
    pub fn idle_sessions(&self) -> Vec<CK_SESSION_HANDLE> {
        self.pool.lock().idle.iter().map(|(s, _)| *s).collect()
    }

    /// Closes the idle pooled sessions.
    fn drain_idle(&self) {
        let idle = {
            let mut pool = self.pool.lock();
            let idle = std::mem::take(&mut pool.idle);
            pool.pooled -= idle.len();
            idle
        };
        self.pool_changed.notify_all();
        for (session, _) in idle {
            self.close_vendor_session(session);
        }
    }

    /// Runs `f` on a pooled session. When the vendor lost the session, it is replaced and,
    /// if `idempotent`, `f` is retried up to `retry_attempts` times.
    pub fn pooled<T>(&self, call: &str, idempotent: bool, mut f: impl FnMut(CK_SESSION_HANDLE) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            let result = self.lease().and_then(|mut session| {
                let mut result = f(session);
                if matches!(result, Err(Error::Rv(CKR_OPERATION_ACTIVE))) {
                    // No operation of keyfront's ever runs on a pooled session: the vendor
                    // kept one that should have ended (see `ops::terminate`). It refused the
                    // call, which is made again on a new session in place of that one.
                    tracing::info!(slot = %self.name, call, "pooled vendor session keeps an operation; replacing it");
                    if let Ok(new) = self.open_vendor_session() {
                        self.close_vendor_session(std::mem::replace(&mut session, new));
                        result = f(session);
                    }
                }
                match result.as_ref().err().and_then(lost_code) {
                    Some(_) => self.discard(session),
                    None => self.give_back(session),
                }
                result
            });
            match result {
                Err(e) => {
                    self.log_failure(call, &e);
                    match lost_code(&e) {
                        Some(code) => {
                            self.note_loss();
                            if idempotent && attempt < self.retry_attempts {
                                attempt += 1;
                                self.back_off(call, attempt, code);
                                continue;
                            }
                            return Err(e);
                        }
                        None => return Err(e),
                    }
                }
                ok => return ok,
            }
        }
    }

    /// Runs a call that needs no session (token info, mechanism list), retrying it when the
    /// token was lost for a moment, if `idempotent`.
    pub fn sessionless<T>(&self, call: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match f() {
                Err(e) => {
                    self.log_failure(call, &e);
                    match lost_code(&e) {
                        Some(code) if attempt < self.retry_attempts => {
                            attempt += 1;
                            self.back_off(call, attempt, code);
                        }
                        _ => return Err(e),
                    }
                }
                ok => return ok,
            }
        }
    }

    // ---- tied sessions -------------------------------------------------------------------

    /// The tied entry of keyfront session `session` (with no vendor session yet).
    pub fn tied(&self, session: CK_SESSION_HANDLE) -> TiedRef {
        self.tied
            .lock()
            .entry(session)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Tied {
                    handle: None,
                    generation: 0,
                    lost: CKR_OPERATION_NOT_INITIALIZED,
                    checked: 0,
                    pins: 0,
                    owns_objects: false,
                }))
            })
            .clone()
    }

    /// The tied entry if the keyfront session has one.
    pub fn tied_if_any(&self, session: CK_SESSION_HANDLE) -> Option<TiedRef> {
        self.tied.lock().get(&session).cloned()
    }

    /// The vendor session of `tied`, taken now if it has none: an idle pooled session, or a
    /// new one while fewer than `max_sessions` are open, or else the first to come back
    /// (`CKR_DEVICE_MEMORY` after a wait, when every vendor session is held by operations
    /// or session objects).
    pub fn ensure_open(&self, tied: &mut Tied) -> Result<CK_SESSION_HANDLE> {
        let losses = self.losses.load(Ordering::Acquire);
        if let Some(h) = tied.handle {
            if tied.checked == losses {
                return Ok(h);
            }
            match self.vendor.session_info(h) {
                Err(Error::Rv(code)) if is_lost(code) => {
                    tracing::info!(slot = %self.name, vendor_rv = %rv_name(code), "replacing a lost vendor session");
                    self.close_tied(tied, code);
                }
                _ => {
                    tied.checked = losses;
                    return Ok(h);
                }
            }
        }
        let deadline = Instant::now() + POOL_WAIT;
        let mut pool = self.pool.lock();
        let taken = loop {
            if let Some((idle, checked)) = pool.idle.pop() {
                pool.pooled -= 1;
                pool.tied += 1;
                if checked == losses {
                    break Some(idle);
                }
                drop(pool);
                match self.vendor.session_info(idle) {
                    Err(Error::Rv(code)) if is_lost(code) => {
                        tracing::info!(slot = %self.name, vendor_rv = %rv_name(code), "replacing a lost vendor session");
                        self.close_vendor_session(idle);
                        pool = self.pool.lock();
                        pool.tied -= 1;
                        continue;
                    }
                    _ => {
                        pool = self.pool.lock();
                        break Some(idle);
                    }
                }
            }
            if pool.pooled + pool.tied < self.max_sessions {
                pool.tied += 1;
                break None;
            }
            if self.pool_changed.wait_until(&mut pool, deadline).timed_out() {
                tracing::warn!(slot = %self.name, max_sessions = self.max_sessions, "every vendor session is held by an operation or session objects");
                return Err(rv(CKR_DEVICE_MEMORY));
            }
        };
        drop(pool);
        let opened = match taken {
            Some(h) => Ok(h),
            None => self.open_vendor_session(),
        };
        match opened {
            Ok(h) => {
                tied.handle = Some(h);
                tied.generation += 1;
                tied.checked = losses;
                tied.pins = 0;
                Ok(h)
            }
            Err(e) => {
                self.pool.lock().tied -= 1;
                self.pool_changed.notify_all();
                Err(e)
            }
        }
    }

    /// Swaps the vendor session of `tied` for a new one: the old one keeps an operation
    /// that could not be ended (see `ops::start`). The new one is opened before the old one
    /// closes, so the vendor never sees the application's last session close (SoftHSM2 would
    /// drop the login and every object handle); the count of sessions stays.
    pub fn renew_tied(&self, tied: &mut Tied) -> Result<CK_SESSION_HANDLE> {
        let Some(old) = tied.handle else { return self.ensure_open(tied) };
        let new = self.open_vendor_session()?;
        tied.handle = Some(new);
        tied.generation += 1;
        tied.pins = 0;
        tied.checked = self.losses.load(Ordering::Acquire);
        self.close_vendor_session(old);
        Ok(new)
    }

    /// Drops the vendor session of `tied`, lost or no longer wanted; its operations and
    /// session objects go with it.
    pub fn close_tied(&self, tied: &mut Tied, why: CK_RV) {
        if let Some(h) = tied.handle.take() {
            tied.lost = why;
            tied.generation += 1;
            tied.pins = 0;
            tied.owns_objects = false;
            self.pool.lock().tied -= 1;
            self.pool_changed.notify_all();
            self.close_vendor_session(h);
        }
    }

    /// Gives the vendor session of `tied` back to the pool when nothing keeps it: no
    /// operation runs on it and no session object was made in it.
    pub fn release_if_idle(&self, tied: &mut Tied) {
        if tied.pins > 0 || tied.owns_objects {
            return;
        }
        if let Some(h) = tied.handle.take() {
            tied.lost = CKR_OPERATION_NOT_INITIALIZED;
            tied.generation += 1;
            {
                let mut pool = self.pool.lock();
                pool.tied -= 1;
                pool.pooled += 1;
                pool.idle.push((h, tied.checked));
            }
            self.pool_changed.notify_one();
        }
    }

    /// Runs `f` on the vendor session of `guard` (taken if needed), with the same reconnect
    /// and retry rules as `pooled`, and returns the generation of the session it ran on.
    /// After a failure the session goes back to the pool unless something holds it; after
    /// success the caller pins it or lets it go (`release_if_idle`).
    pub fn on_tied_locked<T>(
        &self,
        guard: &mut MutexGuard<'_, Tied>,
        call: &str,
        idempotent: bool,
        mut f: impl FnMut(CK_SESSION_HANDLE) -> Result<T>,
    ) -> Result<(T, u64)> {
        let mut attempt = 0;
        loop {
            let result = self.ensure_open(guard).and_then(&mut f);
            match result {
                Ok(v) => return Ok((v, guard.generation)),
                Err(e) => {
                    self.log_failure(call, &e);
                    let Some(code) = lost_code(&e) else {
                        self.release_if_idle(guard);
                        return Err(e);
                    };
                    self.close_tied(guard, code);
                    self.note_loss();
                    if idempotent && attempt < self.retry_attempts {
                        attempt += 1;
                        self.back_off(call, attempt, code);
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Makes an object with `f`: a session object in the vendor session tied to keyfront
    /// session `session` (it must live as long as that session, and the vendor destroys it
    /// with its session), a token object (`token`) in a pooled one. Not retried.
    pub fn make_object(
        &self,
        session: CK_SESSION_HANDLE,
        call: &str,
        token: bool,
        mut f: impl FnMut(CK_SESSION_HANDLE) -> Result<(CK_OBJECT_HANDLE, Option<CK_OBJECT_HANDLE>)>,
    ) -> Result<(CK_OBJECT_HANDLE, Option<CK_OBJECT_HANDLE>)> {
        if token {
            return self.pooled(call, false, f);
        }
        let tied = self.tied(session);
        let mut guard = tied.lock();
        let (made, _) = self.on_tied_locked(&mut guard, call, false, &mut f)?;
        guard.owns_objects = true;
        Ok(made)
    }

    /// Keyfront closed `session`: close its vendor session (destroying the session objects
    /// made in it, as PKCS#11 has it).
    pub fn session_closed(&self, session: CK_SESSION_HANDLE) {
        let Some(tied) = self.tied.lock().remove(&session) else { return };
        let mut guard = tied.lock();
        if guard.handle.is_none() {
            return;
        }
        guard.pins = 0;
        if !guard.owns_objects {
            self.release_if_idle(&mut guard);
            return;
        }
        // Not the application's last vendor session: that would cost the login and, on
        // some vendors, every object handle.
        if let Err(e) = self.keep_one_open() {
            tracing::debug!(slot = %self.name, error = %e, "no pooled vendor session");
        }
        self.close_tied(&mut guard, CKR_SESSION_CLOSED);
    }

    /// Closes every vendor session (before `C_InitToken`, and when the slot goes away).
    pub fn close_all(&self) {
        let tied: Vec<TiedRef> = self.tied.lock().drain().map(|(_, t)| t).collect();
        for t in tied {
            let mut guard = t.lock();
            self.close_tied(&mut guard, CKR_SESSION_CLOSED);
        }
        self.drain_idle();
    }
}

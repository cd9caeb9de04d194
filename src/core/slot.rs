//! A slot: one backend, and the login state this process holds on its token.

use cryptoki_sys::*;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::backend::{Backend, TokenInfo, UserType};
use crate::error::{rv, Result};

/// Who is logged in to a token, for all sessions of this process (PKCS#11 §5.1.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LoginState {
    Public,
    User,
    So,
}

pub struct Slot {
    pub id: CK_SLOT_ID,
    pub description: String,
    pub backend: Box<dyn Backend>,
    /// Held while the login state changes (a login holds it through the PIN check).
    changing_login: Mutex<()>,
    /// The login state (a `LoginState` as u8): read by every operation with an atomic load,
    /// where a lock's read count would be written by every thread on every call.
    login: AtomicU8,
    /// Changes at every login and logout, so cached objects read under another login state
    /// are not reused.
    login_epoch: std::sync::atomic::AtomicU64,
    /// Sessions open on this slot (counted before a session is added to the table and after
    /// it left it, so never fewer than the table holds): closing the last one logs out.
    open_sessions: AtomicUsize,
    /// The mechanisms this slot offers, fixed when the module is initialised.
    pub mechanisms: Vec<CK_MECHANISM_TYPE>,
    pub policy: SlotPolicy,
}

/// What a slot's configuration allows beyond the token's own rules.
#[derive(Clone, Debug)]
pub struct SlotPolicy {
    /// `CKM_RSA_PKCS` decryption and unwrapping (and raw RSA private-key operations).
    /// keyfront's is constant-time with implicit rejection, but the scheme is a padding
    /// oracle by design, and a vendor behind a forwarding slot may not even reject
    /// implicitly: a slot may refuse it.
    pub rsa_pkcs1v15_decrypt: bool,
}

impl SlotPolicy {
    /// The functions of `kind` this policy turns off, whichever backend would do them.
    pub fn refused_flags(&self, kind: CK_MECHANISM_TYPE) -> CK_FLAGS {
        match kind {
            // Raw RSA hands back the whole decrypted block, padding included: an application
            // that checks PKCS#1 v1.5 padding itself rebuilds the oracle, so the switch covers
            // the raw private-key operation (decrypt, unwrap and its signing twin) too.
            // A vendor behind a forwarding slot may offer PKCS#1 v1.5 decryption under
            // other names too (ISO 9796 and TPM 1.1 wrapping decrypt with the same padding).
            CKM_RSA_PKCS | CKM_RSA_9796 | CKM_RSA_PKCS_TPM_1_1 if !self.rsa_pkcs1v15_decrypt => CKF_DECRYPT | CKF_UNWRAP,
            CKM_RSA_X_509 if !self.rsa_pkcs1v15_decrypt => CKF_DECRYPT | CKF_UNWRAP | CKF_SIGN,
            _ => 0,
        }
    }
}

impl Default for SlotPolicy {
    fn default() -> Self {
        Self { rsa_pkcs1v15_decrypt: true }
    }
}

/// Token info with the session counts the core keeps.
pub struct TokenStatus {
    pub info: TokenInfo,
    pub sessions: usize,
    pub rw_sessions: usize,
}

impl Slot {
    pub fn new(id: CK_SLOT_ID, description: String, backend: Box<dyn Backend>, policy: SlotPolicy) -> Self {
        let offered = backend.mechanisms();
        // A remote token reports its own mechanisms; a local one uses keyfront's table.
        let mechanisms = if backend.is_remote() {
            // Digests run in keyfront even on a remote slot: offer only those it has.
            let digest_only = |kind: &CK_MECHANISM_TYPE| {
                backend.remote_mechanism_info(*kind).is_ok_and(|info| info.flags & !CKF_DIGEST == 0 && info.flags & CKF_DIGEST != 0)
            };
            offered.into_iter().filter(|k| !digest_only(k) || crate::mechanism::digest::digest_len(*k).is_some()).collect()
        } else {
            let known = crate::mechanism::MECHANISMS.iter().chain(crate::mechanism::SERVICE_MECHANISMS);
            known.map(|m| m.kind).filter(|k| offered.contains(k)).collect()
        };
        Self {
            id,
            description,
            backend,
            changing_login: Mutex::new(()),
            login: AtomicU8::new(LoginState::Public as u8),
            open_sessions: AtomicUsize::new(0),
            login_epoch: std::sync::atomic::AtomicU64::new(0),
            mechanisms,
            policy,
        }
    }

    /// Counts a session about to be opened.
    pub fn session_opening(&self) {
        self.open_sessions.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a session closed; true when it was the last one.
    pub fn session_closed(&self) -> bool {
        self.open_sessions.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn login_epoch(&self) -> u64 {
        self.login_epoch.load(Ordering::Acquire)
    }

    /// Sets the state; the caller holds `changing_login`.
    fn set_login(&self, new: LoginState) {
        self.login.store(new as u8, Ordering::Release);
        self.login_epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn login_state(&self) -> LoginState {
        match self.login.load(Ordering::Acquire) {
            x if x == LoginState::User as u8 => LoginState::User,
            x if x == LoginState::So as u8 => LoginState::So,
            _ => LoginState::Public,
        }
    }

    pub fn user_logged_in(&self) -> bool {
        self.login_state() == LoginState::User
    }

    /// Logs in; the caller has checked the session rules.
    pub fn login(&self, user: UserType, pin: &[u8]) -> Result<()> {
        let _changing = self.changing_login.lock();
        let wanted = match user {
            UserType::User => LoginState::User,
            UserType::So => LoginState::So,
        };
        match self.login_state() {
            LoginState::Public => {}
            s if s == wanted => return Err(rv(CKR_USER_ALREADY_LOGGED_IN)),
            _ => return Err(rv(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
        }
        self.backend.login(user, pin)?;
        self.set_login(wanted);
        Ok(())
    }

    /// Logs out; `after` runs before the login state may change again (a login in another
    /// thread then finds what `after` left).
    pub fn logout(&self, after: impl FnOnce()) -> Result<()> {
        let _changing = self.changing_login.lock();
        if self.login_state() == LoginState::Public {
            return Err(rv(CKR_USER_NOT_LOGGED_IN));
        }
        self.backend.logout();
        self.set_login(LoginState::Public);
        after();
        Ok(())
    }

    /// Ends the login current at `epoch` if it still is: the backend found it gone (another
    /// process re-initialised the token, discarding the key it held). `after` as for
    /// [`Slot::logout`]; false if the login had changed meanwhile.
    pub fn end_lost_login(&self, epoch: u64, after: impl FnOnce()) -> bool {
        let _changing = self.changing_login.lock();
        if self.login_epoch() != epoch || self.login_state() == LoginState::Public {
            return false;
        }
        self.backend.logout();
        self.set_login(LoginState::Public);
        after();
        true
    }

    /// Ends any login (`C_Finalize`, `C_InitToken`: every object handle goes anyway).
    pub fn logout_all(&self) {
        self.logout_all_then(|| {});
    }

    /// Ends any login, as when the last session closes; `after` as for [`Slot::logout`], run
    /// only if someone was logged in.
    pub fn logout_all_then(&self, after: impl FnOnce()) {
        let _changing = self.changing_login.lock();
        if self.login_state() != LoginState::Public {
            self.backend.logout();
            self.set_login(LoginState::Public);
            after();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1v15_switch_refuses_every_decrypting_rsa_mechanism_but_oaep() {
        let strict = SlotPolicy { rsa_pkcs1v15_decrypt: false };
        for kind in [CKM_RSA_PKCS, CKM_RSA_9796, CKM_RSA_PKCS_TPM_1_1] {
            assert_eq!(strict.refused_flags(kind), CKF_DECRYPT | CKF_UNWRAP, "0x{kind:x}");
        }
        assert_eq!(strict.refused_flags(CKM_RSA_X_509), CKF_DECRYPT | CKF_UNWRAP | CKF_SIGN);
        for kind in [CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS, CKM_AES_GCM] {
            assert_eq!(strict.refused_flags(kind), 0, "0x{kind:x}");
        }
        let default = SlotPolicy::default();
        for kind in [CKM_RSA_PKCS, CKM_RSA_9796, CKM_RSA_PKCS_TPM_1_1, CKM_RSA_X_509] {
            assert_eq!(default.refused_flags(kind), 0, "0x{kind:x}");
        }
    }
}

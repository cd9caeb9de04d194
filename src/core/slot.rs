//! A slot: one backend, and the login state this process holds on its token.

use cryptoki_sys::*;
use parking_lot::RwLock;

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
    login: RwLock<LoginState>,
}

/// Token info with the session counts the core keeps.
pub struct TokenStatus {
    pub info: TokenInfo,
    pub sessions: usize,
    pub rw_sessions: usize,
}

impl Slot {
    pub fn new(id: CK_SLOT_ID, description: String, backend: Box<dyn Backend>) -> Self {
        Self { id, description, backend, login: RwLock::new(LoginState::Public) }
    }

    pub fn login_state(&self) -> LoginState {
        *self.login.read()
    }

    pub fn user_logged_in(&self) -> bool {
        self.login_state() == LoginState::User
    }

    /// Logs in; the caller has checked the session rules.
    pub fn login(&self, user: UserType, pin: &[u8]) -> Result<()> {
        let mut state = self.login.write();
        let wanted = match user {
            UserType::User => LoginState::User,
            UserType::So => LoginState::So,
        };
        match *state {
            LoginState::Public => {}
            s if s == wanted => return Err(rv(CKR_USER_ALREADY_LOGGED_IN)),
            _ => return Err(rv(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
        }
        self.backend.login(user, pin)?;
        *state = wanted;
        Ok(())
    }

    pub fn logout(&self) -> Result<()> {
        let mut state = self.login.write();
        if *state == LoginState::Public {
            return Err(rv(CKR_USER_NOT_LOGGED_IN));
        }
        self.backend.logout();
        *state = LoginState::Public;
        Ok(())
    }

    /// Ends any login, as when the last session closes.
    pub fn logout_all(&self) {
        let mut state = self.login.write();
        if *state != LoginState::Public {
            self.backend.logout();
            *state = LoginState::Public;
        }
    }
}

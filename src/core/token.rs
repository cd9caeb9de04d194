//! Slot, token, session and login functions.

use cryptoki_sys::*;

use super::slot::{LoginState, Slot, TokenStatus};
use super::Module;
use crate::backend::UserType;
use crate::error::{rv, Result};
use crate::mechanism::{self, MechanismEntry};

/// What `C_GetSessionInfo` reports.
pub struct SessionStatus {
    pub slot_id: CK_SLOT_ID,
    pub state: CK_STATE,
    pub flags: CK_FLAGS,
}

impl Module {
    pub fn slot_ids(&self) -> Vec<CK_SLOT_ID> {
        self.slots.iter().map(|s| s.id).collect()
    }

    pub fn token_status(&self, slot_id: CK_SLOT_ID) -> Result<TokenStatus> {
        let slot = self.slot(slot_id)?;
        let info = slot.backend.token_info()?;
        let sessions = self.sessions.on_slot(slot_id);
        Ok(TokenStatus {
            info,
            sessions: sessions.len(),
            rw_sessions: sessions.iter().filter(|(_, s)| s.read_write).count(),
        })
    }

    pub fn mechanism_list(&self, slot_id: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
        Ok(self.slot(slot_id)?.mechanisms.clone())
    }

    /// What a slot offers for one mechanism: the table's row, less what the slot's
    /// configuration turns off.
    pub fn mechanism_info(&self, slot_id: CK_SLOT_ID, kind: CK_MECHANISM_TYPE) -> Result<MechanismEntry> {
        let slot = self.slot(slot_id)?;
        if !slot.mechanisms.contains(&kind) {
            return Err(rv(CKR_MECHANISM_INVALID));
        }
        let mut entry = if slot.backend.is_remote() { Self::remote_mechanism_info(slot, kind)? } else { *mechanism::entry(kind)? };
        entry.flags &= !slot.policy.refused_flags(kind);
        Ok(entry)
    }

    pub fn init_token(&self, slot_id: CK_SLOT_ID, so_pin: &[u8], label: &str) -> Result<()> {
        let slot = self.slot(slot_id)?;
        if !self.sessions.on_slot(slot_id).is_empty() {
            return Err(rv(CKR_SESSION_EXISTS));
        }
        slot.backend.init_token(so_pin, label)?;
        slot.logout_all();
        self.objects.drop_slot(slot_id);
        Ok(())
    }

    pub fn open_session(&self, slot_id: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        let slot = self.slot(slot_id)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(rv(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
        }
        let read_write = flags & CKF_RW_SESSION != 0;
        if !read_write && slot.login_state() == LoginState::So {
            return Err(rv(CKR_SESSION_READ_WRITE_SO_EXISTS));
        }
        slot.session_opening();
        Ok(self.sessions.open(slot_id, read_write))
    }

    pub fn close_session(&self, handle: CK_SESSION_HANDLE) -> Result<()> {
        let slot_id = self.sessions.close(handle)?;
        let remote = self.objects.drop_session_objects(handle);
        self.remote_session_closed(handle, slot_id, remote);
        let slot = self.slot(slot_id)?;
        // A counter, not a scan of the session table: threads opening and closing sessions
        // would all read every shard of it.
        if slot.session_closed() {
            slot.logout_all_then(|| self.forget_private_objects(slot));
        }
        Ok(())
    }

    pub fn close_all_sessions(&self, slot_id: CK_SLOT_ID) -> Result<()> {
        let slot = self.slot(slot_id)?;
        for (handle, _) in self.sessions.on_slot(slot_id) {
            // A concurrent C_CloseSession may have closed it already.
            if self.sessions.close(handle).is_ok() {
                slot.session_closed();
                let remote = self.objects.drop_session_objects(handle);
                self.remote_session_closed(handle, slot_id, remote);
            }
        }
        slot.logout_all_then(|| self.forget_private_objects(slot));
        Ok(())
    }

    pub fn session_status(&self, handle: CK_SESSION_HANDLE) -> Result<SessionStatus> {
        let session = self.sessions.get(handle)?;
        let (slot_id, read_write) = {
            let s = session.lock();
            (s.slot_id, s.read_write)
        };
        let state = match (self.slot(slot_id)?.login_state(), read_write) {
            (LoginState::Public, false) => CKS_RO_PUBLIC_SESSION,
            (LoginState::Public, true) => CKS_RW_PUBLIC_SESSION,
            (LoginState::User, false) => CKS_RO_USER_FUNCTIONS,
            (LoginState::User, true) => CKS_RW_USER_FUNCTIONS,
            (LoginState::So, _) => CKS_RW_SO_FUNCTIONS,
        };
        let mut flags = CKF_SERIAL_SESSION;
        if read_write {
            flags |= CKF_RW_SESSION;
        }
        Ok(SessionStatus { slot_id, state, flags })
    }

    fn session_slot(&self, handle: CK_SESSION_HANDLE) -> Result<(&Slot, bool)> {
        let session = self.sessions.get(handle)?;
        let s = session.lock();
        Ok((self.slot(s.slot_id)?, s.read_write))
    }

    pub fn login(&self, handle: CK_SESSION_HANDLE, user_type: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let (slot, _) = self.session_slot(handle)?;
        let user = match user_type {
            CKU_SO => UserType::So,
            CKU_USER => UserType::User,
            CKU_CONTEXT_SPECIFIC => {
                // Re-authentication for the operation of a CKA_ALWAYS_AUTHENTICATE key.
                if !slot.user_logged_in() {
                    return Err(rv(CKR_USER_NOT_LOGGED_IN));
                }
                if slot.backend.is_remote() {
                    // The token keeps the operation, and knows whether it waits for this.
                    return slot.backend.remote_context_login(handle, pin);
                }
                let session = self.sessions.get(handle)?;
                let mut session = session.lock();
                let Some(needed) = session.awaiting_context_login() else {
                    return Err(rv(CKR_OPERATION_NOT_INITIALIZED));
                };
                slot.backend.verify_user_pin(pin)?;
                *needed = false;
                return Ok(());
            }
            _ => return Err(rv(CKR_USER_TYPE_INVALID)),
        };
        if user == UserType::So && self.sessions.on_slot(slot.id).iter().any(|(_, s)| !s.read_write) {
            return Err(rv(CKR_SESSION_READ_ONLY_EXISTS));
        }
        slot.login(user, pin)
    }

    pub fn logout(&self, handle: CK_SESSION_HANDLE) -> Result<()> {
        let (slot, _) = self.session_slot(handle)?;
        slot.logout(|| self.forget_private_objects(slot))?;
        Ok(())
    }

    pub fn init_pin(&self, handle: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
        let (slot, read_write) = self.session_slot(handle)?;
        if slot.login_state() != LoginState::So || !read_write {
            return Err(rv(CKR_USER_NOT_LOGGED_IN));
        }
        let epoch = slot.login_epoch();
        slot.backend.init_pin(pin).inspect_err(|e| self.check_login_lost(slot, epoch, e))
    }

    pub fn set_pin(&self, handle: CK_SESSION_HANDLE, old_pin: &[u8], new_pin: &[u8]) -> Result<()> {
        let (slot, read_write) = self.session_slot(handle)?;
        if !read_write {
            return Err(rv(CKR_SESSION_READ_ONLY));
        }
        let user = match slot.login_state() {
            LoginState::So => UserType::So,
            _ => UserType::User,
        };
        slot.backend.set_pin(user, old_pin, new_pin)
    }
}

//! The paths for slots whose backend keeps its objects and carries out operations itself (a
//! forwarded PKCS#11 token). keyfront still owns sessions, handles and login state, checks
//! what the session may do, and applies the slot's mechanism list; the backend's own rules
//! and return codes apply to the rest.

use cryptoki_sys::*;

use super::session::{Pending, Session};
use super::slot::Slot;
use super::Module;
use crate::backend::ObjectId;
use crate::error::{rv, Result};
use crate::mechanism::{MechanismEntry, Mechanism};
use crate::object::{decode_bool, AttrRead, AttributeTemplate};

impl Module {
    /// `CKA_TOKEN` of a remote object.
    fn remote_is_token(&self, session: &Session, slot: &Slot, id: ObjectId) -> Result<bool> {
        match slot.backend.remote_get_attributes(session.handle, id, &[CKA_TOKEN])?.pop() {
            Some(AttrRead::Value(v)) => decode_bool(&v),
            _ => Ok(false),
        }
    }

    /// A handle for an object the backend just made for `session`; session objects are
    /// recorded so they go when the session closes.
    fn remote_new_handle(&self, session: &Session, slot: &Slot, id: ObjectId) -> Result<CK_OBJECT_HANDLE> {
        let owner = if self.remote_is_token(session, slot, id)? { None } else { Some(session.handle) };
        Ok(self.objects.remote_handle(slot.id, id, owner))
    }

    /// A read-only session may not create or change token objects, whatever the backend's own
    /// session allows.
    fn check_remote_template(session: &Session, template: &AttributeTemplate) -> Result<()> {
        if !session.read_write && template.get_bool(CKA_TOKEN)? == Some(true) {
            return Err(rv(CKR_SESSION_READ_ONLY));
        }
        Ok(())
    }

    pub(super) fn check_remote_writable(&self, session: &Session, slot: &Slot, id: ObjectId) -> Result<()> {
        if !session.read_write && self.remote_is_token(session, slot, id)? {
            return Err(rv(CKR_SESSION_READ_ONLY));
        }
        Ok(())
    }

    pub(super) fn remote_create(&self, session: &Session, slot: &Slot, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        Self::check_remote_template(session, template)?;
        let id = slot.backend.remote_create(session.handle, template)?;
        self.remote_new_handle(session, slot, id)
    }

    pub(super) fn remote_copy(&self, session: &Session, slot: &Slot, id: ObjectId, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        Self::check_remote_template(session, template)?;
        let copy = slot.backend.remote_copy(session.handle, id, template)?;
        self.remote_new_handle(session, slot, copy)
    }

    pub(super) fn remote_destroy(&self, session: &Session, handle: CK_OBJECT_HANDLE, id: ObjectId) -> Result<()> {
        let slot = self.slot(session.slot_id)?;
        self.check_remote_writable(session, slot, id)?;
        slot.backend.destroy_object(id)?;
        self.objects.forget_handle(handle);
        Ok(())
    }

    /// Destroys the remote session objects a closing session made, and lets the backend end
    /// what it tied to the session.
    pub(super) fn remote_session_closed(&self, handle: CK_SESSION_HANDLE, slot_id: CK_SLOT_ID, owned: Vec<(CK_SLOT_ID, ObjectId)>) {
        for (slot, id) in owned {
            if let Ok(slot) = self.slot(slot) {
                // Already gone with the backend's own session is as good as destroyed.
                let _ = slot.backend.destroy_object(id);
            }
        }
        if let Ok(slot) = self.slot(slot_id) {
            slot.backend.remote_session_closed(handle);
        }
    }

    /// The mechanism's row for a remote slot: the token's own information.
    pub(super) fn remote_mechanism_info(slot: &Slot, kind: CK_MECHANISM_TYPE) -> Result<MechanismEntry> {
        let info = slot.backend.remote_mechanism_info(kind)?;
        Ok(MechanismEntry { kind, min_key: info.ulMinKeySize, max_key: info.ulMaxKeySize, flags: info.flags, key_types: &[] })
    }

    /// Starts a cipher or signer on a remote key, if `key` is one.
    pub(super) fn remote_key(&self, session: &Session, key: CK_OBJECT_HANDLE) -> Result<Option<ObjectId>> {
        self.objects.remote(session.slot_id, key).map_err(|e| match e.rv() {
            CKR_OBJECT_HANDLE_INVALID => rv(CKR_KEY_HANDLE_INVALID),
            _ => e,
        })
    }

    pub(super) fn remote_cipher_init(&self, session: &mut Session, mechanism: &Mechanism, key: ObjectId, encrypt: bool) -> Result<()> {
        let slot = self.slot(session.slot_id)?;
        let cipher = slot.backend.remote_cipher(session.handle, mechanism, key, encrypt)?;
        let target = if encrypt { &mut session.encrypt } else { &mut session.decrypt };
        *target = Some(Pending::new(cipher));
        Ok(())
    }

    pub(super) fn remote_signer_init(&self, session: &mut Session, mechanism: &Mechanism, key: ObjectId, sign: bool) -> Result<()> {
        let slot = self.slot(session.slot_id)?;
        let signer = slot.backend.remote_signer(session.handle, mechanism, key, sign)?;
        let target = if sign { &mut session.sign } else { &mut session.verify };
        *target = Some(Pending::new(signer));
        Ok(())
    }

    pub(super) fn remote_generate_key(&self, session: &Session, slot: &Slot, mechanism: &Mechanism, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        Self::check_remote_template(session, template)?;
        let id = slot.backend.remote_generate_key(session.handle, mechanism, template)?;
        self.remote_new_handle(session, slot, id)
    }

    pub(super) fn remote_generate_key_pair(
        &self,
        session: &Session,
        slot: &Slot,
        mechanism: &Mechanism,
        public: &AttributeTemplate,
        private: &AttributeTemplate,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        Self::check_remote_template(session, public)?;
        Self::check_remote_template(session, private)?;
        let (public_id, private_id) = slot.backend.remote_generate_key_pair(session.handle, mechanism, public, private)?;
        Ok((self.remote_new_handle(session, slot, public_id)?, self.remote_new_handle(session, slot, private_id)?))
    }

    pub(super) fn remote_unwrap(
        &self,
        session: &Session,
        slot: &Slot,
        mechanism: &Mechanism,
        unwrapping: ObjectId,
        wrapped: &[u8],
        template: &AttributeTemplate,
    ) -> Result<CK_OBJECT_HANDLE> {
        Self::check_remote_template(session, template)?;
        let id = slot.backend.remote_unwrap(session.handle, mechanism, unwrapping, wrapped, template)?;
        self.remote_new_handle(session, slot, id)
    }

    pub(super) fn remote_derive(&self, session: &Session, slot: &Slot, mechanism: &Mechanism, base: ObjectId, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        Self::check_remote_template(session, template)?;
        let id = slot.backend.remote_derive(session.handle, mechanism, base, template)?;
        self.remote_new_handle(session, slot, id)
    }
}

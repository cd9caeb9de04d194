//! Forwarding slots: a token of another PKCS#11 module (an HSM's, SoftHSM2, NSS softokn)
//! behind keyfront's slots and policy. keyfront keeps sessions, handles and login state as
//! for any slot; objects, attribute rules and cryptography are the vendor's. What keyfront
//! adds: the mechanism allow list, `deny_extractable`, and reconnecting when the vendor
//! loses its sessions.
//!
//! `module` loads the vendor and wraps its function list, `session` keeps vendor sessions
//! (one tied to each keyfront session that needs one, plus a pool), `ops` carries out
//! operations, `mechanism` lays out mechanism parameters.

mod mechanism;
mod module;
mod ops;
mod session;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::{Backend, ObjectId, TokenInfo, UserType};
use crate::config::Pkcs11SlotConfig;
use crate::error::{rv, Error, Result};
use crate::mechanism::{Cipher, Mechanism, Signer};
use crate::object::{AttrRead, AttributeTemplate, Object};
use mechanism::RawMechanism;
use module::Vendor;
use ops::{OpKind, RemoteOp, Started};
use session::{user_code, Link};

/// Objects found per `C_FindObjects` call.
const FIND_BATCH: usize = 64;

/// Attributes whose value is an array of `CK_ATTRIBUTE`s with pointers of their own: not
/// forwarded (keyfront's templates carry plain bytes).
const NESTED_TEMPLATES: &[CK_ATTRIBUTE_TYPE] = &[CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE];

pub struct Pkcs11Token {
    link: Arc<Link>,
    /// Mechanisms offered; empty means all the vendor offers.
    allow: Vec<CK_MECHANISM_TYPE>,
    deny_extractable: bool,
    /// Changes at every write through this slot.
    generation: AtomicU64,
}

/// A blank-padded PKCS#11 text field as a string, without the padding.
fn field(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end_matches([' ', '\0']).to_string()
}

fn handle(id: ObjectId) -> Result<CK_OBJECT_HANDLE> {
    CK_OBJECT_HANDLE::try_from(id).map_err(|_| rv(CKR_OBJECT_HANDLE_INVALID))
}

fn object_id(h: CK_OBJECT_HANDLE) -> ObjectId {
    h as ObjectId
}

/// The template makes a token object (`CKA_TOKEN` defaults to false).
fn is_token(template: &AttributeTemplate) -> Result<bool> {
    Ok(template.get_bool(CKA_TOKEN)?.unwrap_or(false))
}

fn check_template(template: &AttributeTemplate) -> Result<()> {
    if let Some((ty, _)) = template.iter().find(|(ty, _)| NESTED_TEMPLATES.contains(ty)) {
        tracing::debug!(attribute = ty, "nested attribute templates are not forwarded");
        return Err(rv(CKR_ATTRIBUTE_TYPE_INVALID));
    }
    Ok(())
}

impl Pkcs11Token {
    /// Loads the vendor module and finds the configured token.
    pub fn open(config: &Pkcs11SlotConfig, label: &str) -> Result<Self> {
        let vendor = Vendor::load(&config.module, config.init_args.as_deref())?;
        let slot = find_token(&vendor, config)?;
        let info = vendor.token_info(slot)?;
        tracing::info!(
            slot = %label,
            module = %vendor.path.display(),
            vendor_slot = slot,
            token = %field(&info.label),
            serial = %field(&info.serialNumber),
            "forwarding to vendor token"
        );
        let link = Link::new(
            vendor,
            slot,
            label.to_string(),
            config.max_sessions,
            config.retry_attempts,
            config.retry_delay_ms,
        );
        // One vendor session stays open from now on (see `Link::keep_one_open`).
        link.keep_one_open()?;
        Ok(Self {
            link: Arc::new(link),
            allow: config.allow.clone(),
            deny_extractable: config.deny_extractable,
            generation: AtomicU64::new(1),
        })
    }

    fn wrote(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The allow list: a mechanism outside it is refused before the vendor sees it.
    fn allowed(&self, kind: CK_MECHANISM_TYPE) -> Result<()> {
        if self.allow.is_empty() || self.allow.contains(&kind) {
            Ok(())
        } else {
            tracing::debug!(slot = %self.link.name, mechanism = kind, "mechanism not in the slot's allow list");
            Err(rv(CKR_MECHANISM_INVALID))
        }
    }

    /// `deny_extractable` for a template that makes (`creating`) or changes an object of
    /// class `class` (`None`: not known, not a key). Refuses `CKA_EXTRACTABLE = true` on
    /// private and secret keys; when making one without it, adds `CKA_EXTRACTABLE = false`,
    /// so a vendor default of true cannot slip through.
    fn key_policy<'t>(
        &self,
        template: &'t AttributeTemplate,
        class: Option<CK_OBJECT_CLASS>,
        creating: bool,
    ) -> Result<Cow<'t, AttributeTemplate>> {
        check_template(template)?;
        if !self.deny_extractable {
            return Ok(Cow::Borrowed(template));
        }
        if !matches!(class, Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY)) {
            return Ok(Cow::Borrowed(template));
        }
        match template.get_bool(CKA_EXTRACTABLE)? {
            Some(true) => {
                tracing::info!(slot = %self.link.name, "refused an extractable key (deny_extractable)");
                Err(rv(CKR_ATTRIBUTE_VALUE_INVALID))
            }
            Some(false) => Ok(Cow::Borrowed(template)),
            None if creating => {
                let mut forced = template.clone();
                forced.push(CKA_EXTRACTABLE, vec![CK_FALSE]);
                Ok(Cow::Owned(forced))
            }
            None => Ok(Cow::Borrowed(template)),
        }
    }

    fn template_class(template: &AttributeTemplate) -> Result<Option<CK_OBJECT_CLASS>> {
        template.get_ulong(CKA_CLASS)
    }

    /// An object's `CKA_CLASS` as the vendor says.
    fn object_class(&self, session: CK_SESSION_HANDLE, id: ObjectId) -> Result<Option<CK_OBJECT_CLASS>> {
        let read = self.remote_get_attributes(session, id, &[CKA_CLASS])?;
        Ok(match read.first() {
            Some(AttrRead::Value(v)) => crate::object::decode_ulong(v).ok(),
            _ => None,
        })
    }

    /// `C_GetAttributeValue` with the two-pass length protocol, attribute by attribute
    /// results. A value that grows between the passes starts it again.
    fn read_attributes(&self, session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, types: &[CK_ATTRIBUTE_TYPE]) -> Result<Vec<AttrRead>> {
        let vendor = &self.link.vendor;
        // Nested templates are not read (see NESTED_TEMPLATES).
        let asked: Vec<usize> = (0..types.len()).filter(|i| !NESTED_TEMPLATES.contains(&types[*i])).collect();
        let asked_types: Vec<CK_ATTRIBUTE_TYPE> = asked.iter().map(|i| types[*i]).collect();
        for _ in 0..3 {
            let mut none: Vec<Option<Zeroizing<Vec<u8>>>> = vec![None; asked_types.len()];
            let (code, lens) = vendor.get_attributes(session, object, &asked_types, &mut none)?;
            if !matches!(code, CKR_OK | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID) {
                return Err(Error::Rv(code));
            }
            let unavailable: Vec<usize> = (0..lens.len()).filter(|i| lens[*i] == CK_UNAVAILABLE_INFORMATION).collect();
            // Which reason goes with each unavailable attribute: the return code says it when
            // only one is unavailable; otherwise each is asked on its own.
            let mut reasons = vec![CKR_OK; lens.len()];
            for &i in &unavailable {
                reasons[i] = if unavailable.len() == 1 && code != CKR_OK {
                    code
                } else {
                    let mut one = [None];
                    vendor.get_attributes(session, object, &asked_types[i..=i], &mut one)?.0
                };
            }
            let mut buffers: Vec<Option<Zeroizing<Vec<u8>>>> = lens
                .iter()
                .map(|&len| (len != CK_UNAVAILABLE_INFORMATION).then(|| Zeroizing::new(vec![0u8; len as usize])))
                .collect();
            let wanted: Vec<usize> = (0..lens.len()).filter(|i| buffers[*i].is_some()).collect();
            if !wanted.is_empty() {
                let wanted_types: Vec<CK_ATTRIBUTE_TYPE> = wanted.iter().map(|i| asked_types[*i]).collect();
                let mut wanted_buffers: Vec<Option<Zeroizing<Vec<u8>>>> = wanted.iter().map(|i| buffers[*i].take()).collect();
                let (code2, lens2) = vendor.get_attributes(session, object, &wanted_types, &mut wanted_buffers)?;
                match code2 {
                    CKR_OK => {}
                    // Changed between the two passes.
                    CKR_BUFFER_TOO_SMALL | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID => continue,
                    other => return Err(Error::Rv(other)),
                }
                for ((i, mut buffer), len) in wanted.iter().zip(wanted_buffers).zip(lens2) {
                    if let Some(b) = buffer.as_mut() {
                        let n = (len as usize).min(b.len());
                        b.truncate(n);
                    }
                    buffers[*i] = buffer;
                }
            }
            let mut out: Vec<AttrRead> = (0..types.len()).map(|_| AttrRead::Invalid).collect();
            for (k, i) in asked.iter().enumerate() {
                out[*i] = match buffers[k].take() {
                    Some(value) => AttrRead::Value(value),
                    None if reasons[k] == CKR_ATTRIBUTE_SENSITIVE => AttrRead::Sensitive,
                    None => AttrRead::Invalid,
                };
            }
            return Ok(out);
        }
        Err(rv(CKR_GENERAL_ERROR))
    }

    fn start_op(&self, session: CK_SESSION_HANDLE, kind: OpKind, mechanism: &Mechanism, key: ObjectId) -> Result<RemoteOp> {
        self.allowed(mechanism.kind)?;
        let key = handle(key)?;
        let link = &self.link;
        let call = match kind {
            OpKind::Encrypt => "C_EncryptInit",
            OpKind::Decrypt => "C_DecryptInit",
            OpKind::Sign => "C_SignInit",
            OpKind::Verify => "C_VerifyInit",
        };
        let tied = link.tied(session);
        let mut guard = tied.lock();
        let alone = guard.pins == 0;
        let (started, mut generation) =
            link.on_tied_locked(&mut guard, call, true, |s| ops::start(link, s, kind, mechanism, key, alone))?;
        if started == Started::Stuck {
            // The vendor session keeps an operation that nothing ended. One that holds
            // session objects must stay (they would go with it); another is swapped for a
            // new session.
            if guard.owns_objects {
                link.release_if_idle(&mut guard);
                return Err(rv(CKR_OPERATION_ACTIVE));
            }
            tracing::info!(slot = %link.name, call, "vendor session keeps an operation that could not be ended; replacing it");
            let renewed = link.renew_tied(&mut guard).and_then(|s| ops::start(link, s, kind, mechanism, key, true));
            match renewed {
                Ok(Started::Yes) => generation = guard.generation,
                other => {
                    link.release_if_idle(&mut guard);
                    other?;
                    return Err(rv(CKR_OPERATION_ACTIVE));
                }
            }
        }
        // Held by the operation until it ends.
        guard.pins += 1;
        drop(guard);
        let op = RemoteOp::new(self.link.clone(), tied, generation, kind, mechanism.clone(), key);
        Ok(op.with_input_limit(self.input_limit(session, kind, mechanism.kind, key)))
    }

    /// The most input an operation may pass on to the vendor. Raw RSA (`CKM_RSA_X_509`) takes
    /// at most the modulus's length; SoftHSM2 2.6 does not check, and makes the whole
    /// process exit when asked to encrypt, sign or verify more (it pads the input to the
    /// modulus's length with an unsigned count that underflows).
    fn input_limit(&self, session: CK_SESSION_HANDLE, kind: OpKind, mechanism: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE) -> Option<usize> {
        if mechanism != CKM_RSA_X_509 || kind == OpKind::Decrypt {
            return None;
        }
        match self.remote_get_attributes(session, object_id(key), &[CKA_MODULUS]).ok()?.first() {
            Some(AttrRead::Value(n)) => Some(n.iter().skip_while(|&&b| b == 0).count()),
            _ => None,
        }
    }
}

/// The vendor slot whose token the configuration names: by label, else serial, else slot id,
/// else the first slot with a token.
fn find_token(vendor: &Vendor, config: &Pkcs11SlotConfig) -> Result<CK_SLOT_ID> {
    let module = vendor.path.display();
    let slots = vendor
        .slot_list()
        .map_err(|e| Error::Config(format!("{module}: C_GetSlotList failed: {e}")))?;
    let tokens: Vec<(CK_SLOT_ID, CK_TOKEN_INFO)> =
        slots.iter().filter_map(|&s| vendor.token_info(s).ok().map(|info| (s, info))).collect();
    let describe = || {
        tokens
            .iter()
            .map(|(s, t)| format!("slot {s}: {:?} serial {:?}", field(&t.label), field(&t.serialNumber)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let found = if let Some(label) = &config.token_label {
        let wanted = label.trim();
        tokens.iter().find(|(_, t)| field(&t.label).trim() == wanted).map(|(s, _)| *s).ok_or_else(|| {
            Error::Config(format!("{module}: no token labelled {wanted:?} (tokens: {})", describe()))
        })?
    } else if let Some(serial) = &config.serial {
        let wanted = serial.trim();
        tokens.iter().find(|(_, t)| field(&t.serialNumber).trim() == wanted).map(|(s, _)| *s).ok_or_else(|| {
            Error::Config(format!("{module}: no token with serial {wanted:?} (tokens: {})", describe()))
        })?
    } else if let Some(id) = config.slot_id {
        tokens.iter().find(|(s, _)| *s == id).map(|(s, _)| *s).ok_or_else(|| {
            Error::Config(format!("{module}: no token in slot {id} (tokens: {})", describe()))
        })?
    } else {
        tokens.first().map(|(s, _)| *s).ok_or_else(|| Error::Config(format!("{module}: no slot has a token")))?
    };
    Ok(found)
}

impl Drop for Pkcs11Token {
    fn drop(&mut self) {
        // Operations still held elsewhere keep the module loaded, but their sessions end
        // here; the vendor is finalised when the last user of the module lets it go.
        self.link.close_all();
        self.link.set_login(None);
    }
}

impl Backend for Pkcs11Token {
    fn token_info(&self) -> Result<TokenInfo> {
        let link = &self.link;
        let info = link.sessionless("C_GetTokenInfo", || link.vendor.token_info(link.slot))?;
        Ok(TokenInfo {
            label: field(&info.label),
            manufacturer: field(&info.manufacturerID),
            hardware_version: info.hardwareVersion,
            firmware_version: info.firmwareVersion,
            model: field(&info.model),
            serial: field(&info.serialNumber),
            flags: info.flags,
            min_pin_len: info.ulMinPinLen as usize,
            max_pin_len: info.ulMaxPinLen as usize,
        })
    }

    fn mechanisms(&self) -> Vec<CK_MECHANISM_TYPE> {
        let link = &self.link;
        match link.sessionless("C_GetMechanismList", || link.vendor.mechanism_list(link.slot)) {
            Ok(list) => list.into_iter().filter(|m| self.allow.is_empty() || self.allow.contains(m)).collect(),
            Err(e) => {
                tracing::error!(slot = %link.name, error = %e, "cannot read the vendor's mechanisms");
                Vec::new()
            }
        }
    }

    fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()> {
        // C_InitToken wants no session open on the token.
        self.link.close_all();
        self.link.set_login(None);
        let padded = crate::core::padded::<32>(label);
        let result = self.link.vendor.init_token(self.link.slot, so_pin, &padded);
        if let Err(e) = &result {
            self.link.log_failure("C_InitToken", e);
        }
        self.wrote();
        result
    }

    fn init_pin(&self, pin: &[u8]) -> Result<()> {
        let link = &self.link;
        link.pooled("C_InitPIN", false, |s| link.vendor.init_pin(s, pin))
    }

    fn set_pin(&self, user: UserType, old_pin: &[u8], new_pin: &[u8]) -> Result<()> {
        let link = &self.link;
        link.pooled("C_SetPIN", false, |s| link.vendor.set_pin(s, old_pin, new_pin))?;
        link.update_pin(user_code(user), new_pin);
        Ok(())
    }

    fn login(&self, user: UserType, pin: &[u8]) -> Result<()> {
        let link = &self.link;
        let code = user_code(user);
        link.pooled("C_Login", true, |s| match link.vendor.login(s, code, pin) {
            // Logged in already through another user of the module in this process.
            Err(Error::Rv(CKR_USER_ALREADY_LOGGED_IN)) => Ok(()),
            other => other,
        })?;
        link.set_login(Some((code, Zeroizing::new(pin.to_vec()))));
        Ok(())
    }

    fn verify_user_pin(&self, _pin: &[u8]) -> Result<()> {
        // The vendor checks a context-specific login on the session of the operation:
        // see `remote_context_login`.
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn logout(&self) {
        let link = &self.link;
        if link.login_user().is_none() {
            return;
        }
        link.set_login(None);
        match link.pooled("C_Logout", false, |s| link.vendor.logout(s)) {
            Ok(()) | Err(Error::Rv(CKR_USER_NOT_LOGGED_IN)) => {}
            Err(e) => tracing::warn!(slot = %link.name, error = %e, "vendor C_Logout failed"),
        }
    }

    fn generation(&self) -> Result<u64> {
        Ok(self.generation.load(Ordering::Acquire))
    }

    // The core reaches a remote token's objects through the remote_* methods only.
    fn create_object(&self, _object: &Object) -> Result<ObjectId> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn read_object(&self, _id: ObjectId, _with_secrets: bool) -> Result<Object> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn update_object(&self, _id: ObjectId, _object: &Object, _changed: &[CK_ATTRIBUTE_TYPE]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
    fn find_objects(&self, _template: &AttributeTemplate, _include_private: bool) -> Result<Vec<ObjectId>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn destroy_object(&self, id: ObjectId) -> Result<()> {
        let object = handle(id)?;
        let link = &self.link;
        let result = link.pooled("C_DestroyObject", false, |s| link.vendor.destroy_object(s, object));
        self.wrote();
        result
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn remote_mechanism_info(&self, kind: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
        self.allowed(kind)?;
        let link = &self.link;
        link.sessionless("C_GetMechanismInfo", || link.vendor.mechanism_info(link.slot, kind))
    }

    fn remote_session_closed(&self, session: CK_SESSION_HANDLE) {
        self.link.session_closed(session);
    }

    fn remote_context_login(&self, session: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
        let link = &self.link;
        let Some(tied) = link.tied_if_any(session) else { return Err(rv(CKR_OPERATION_NOT_INITIALIZED)) };
        let guard = tied.lock();
        let Some(s) = guard.handle else { return Err(rv(CKR_OPERATION_NOT_INITIALIZED)) };
        link.vendor.login(s, CKU_CONTEXT_SPECIFIC, pin).inspect_err(|e| link.log_failure("C_Login", e))
    }

    fn remote_create(&self, session: CK_SESSION_HANDLE, template: &AttributeTemplate) -> Result<ObjectId> {
        let template = self.key_policy(template, Self::template_class(template)?, true)?;
        let link = &self.link;
        let token = is_token(&template)?;
        let result = link.make_object(session, "C_CreateObject", token, |s| Ok((link.vendor.create_object(s, &template)?, None)));
        self.wrote();
        result.map(|(h, _)| object_id(h))
    }

    fn remote_copy(&self, session: CK_SESSION_HANDLE, id: ObjectId, template: &AttributeTemplate) -> Result<ObjectId> {
        let object = handle(id)?;
        // A copy keeps the original's attributes unless the template says otherwise: only an
        // extractable original needs CKA_EXTRACTABLE = false added (vendors refuse "changing"
        // it to the value it has, SoftHSM2 with CKR_ATTRIBUTE_READ_ONLY); a copy of a token
        // object is one.
        let read = self.remote_get_attributes(session, id, &[CKA_CLASS, CKA_EXTRACTABLE, CKA_TOKEN])?;
        let flag = |r: &AttrRead| matches!(r, AttrRead::Value(v) if v.first() == Some(&CK_TRUE));
        let class = match &read[0] {
            AttrRead::Value(v) => crate::object::decode_ulong(v).ok(),
            _ => None,
        };
        let template = self.key_policy(template, class, flag(&read[1]))?;
        let token = template.get_bool(CKA_TOKEN)?.unwrap_or(flag(&read[2]));
        let link = &self.link;
        let result = link.make_object(session, "C_CopyObject", token, |s| Ok((link.vendor.copy_object(s, object, &template)?, None)));
        self.wrote();
        result.map(|(h, _)| object_id(h))
    }

    fn remote_get_attributes(&self, _session: CK_SESSION_HANDLE, id: ObjectId, types: &[CK_ATTRIBUTE_TYPE]) -> Result<Vec<AttrRead>> {
        let object = handle(id)?;
        self.link.pooled("C_GetAttributeValue", true, |s| self.read_attributes(s, object, types))
    }

    fn remote_set_attributes(&self, session: CK_SESSION_HANDLE, id: ObjectId, template: &AttributeTemplate) -> Result<()> {
        let object = handle(id)?;
        // The class is only needed to judge CKA_EXTRACTABLE = true.
        let class = if self.deny_extractable && template.get_bool(CKA_EXTRACTABLE)? == Some(true) {
            self.object_class(session, id)?
        } else {
            None
        };
        let template = self.key_policy(template, class, false)?;
        let link = &self.link;
        let result = link.pooled("C_SetAttributeValue", false, |s| link.vendor.set_attributes(s, object, &template));
        self.wrote();
        result
    }

    fn remote_object_size(&self, _session: CK_SESSION_HANDLE, id: ObjectId) -> Result<usize> {
        let object = handle(id)?;
        let link = &self.link;
        link.pooled("C_GetObjectSize", true, |s| link.vendor.object_size(s, object)).map(|n| n as usize)
    }

    fn remote_find(&self, _session: CK_SESSION_HANDLE, template: &AttributeTemplate) -> Result<Vec<ObjectId>> {
        check_template(template)?;
        let link = &self.link;
        link.pooled("C_FindObjects", true, |s| {
            link.vendor.find_init(s, template)?;
            let mut found = Vec::new();
            let result = loop {
                match link.vendor.find(s, FIND_BATCH) {
                    Ok(batch) if batch.is_empty() => break Ok(()),
                    Ok(batch) => found.extend(batch.into_iter().map(object_id)),
                    Err(e) => break Err(e),
                }
            };
            let ended = link.vendor.find_final(s);
            result?;
            ended?;
            Ok(found)
        })
    }

    fn remote_cipher(&self, session: CK_SESSION_HANDLE, mechanism: &Mechanism, key: ObjectId, encrypt: bool) -> Result<Box<dyn Cipher>> {
        let kind = if encrypt { OpKind::Encrypt } else { OpKind::Decrypt };
        Ok(Box::new(self.start_op(session, kind, mechanism, key)?))
    }

    fn remote_signer(&self, session: CK_SESSION_HANDLE, mechanism: &Mechanism, key: ObjectId, sign: bool) -> Result<Box<dyn Signer>> {
        let kind = if sign { OpKind::Sign } else { OpKind::Verify };
        Ok(Box::new(self.start_op(session, kind, mechanism, key)?))
    }

    fn remote_generate_key(&self, session: CK_SESSION_HANDLE, mechanism: &Mechanism, template: &AttributeTemplate) -> Result<ObjectId> {
        self.allowed(mechanism.kind)?;
        let template = self.key_policy(template, Some(CKO_SECRET_KEY), true)?;
        let mut raw = RawMechanism::new(mechanism)?;
        let link = &self.link;
        let token = is_token(&template)?;
        let result = link.make_object(session, "C_GenerateKey", token, |s| Ok((link.vendor.generate_key(s, &mut raw, &template)?, None)));
        self.wrote();
        result.map(|(h, _)| object_id(h))
    }

    fn remote_generate_key_pair(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        public: &AttributeTemplate,
        private: &AttributeTemplate,
    ) -> Result<(ObjectId, ObjectId)> {
        self.allowed(mechanism.kind)?;
        check_template(public)?;
        let private = self.key_policy(private, Some(CKO_PRIVATE_KEY), true)?;
        let mut raw = RawMechanism::new(mechanism)?;
        let link = &self.link;
        let token = is_token(public)? && is_token(&private)?;
        let result = link.make_object(session, "C_GenerateKeyPair", token, |s| {
            let (public, private) = link.vendor.generate_key_pair(s, &mut raw, public, &private)?;
            Ok((public, Some(private)))
        });
        self.wrote();
        let (public, private) = result?;
        Ok((object_id(public), object_id(private.unwrap_or(CK_INVALID_HANDLE))))
    }

    fn remote_wrap(&self, _session: CK_SESSION_HANDLE, mechanism: &Mechanism, wrapping: ObjectId, key: ObjectId) -> Result<Vec<u8>> {
        self.allowed(mechanism.kind)?;
        let (wrapping, key) = (handle(wrapping)?, handle(key)?);
        let mut raw = RawMechanism::new(mechanism)?;
        let link = &self.link;
        link.pooled("C_WrapKey", true, |s| link.vendor.wrap_key(s, &mut raw, wrapping, key))
    }

    fn remote_unwrap(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        unwrapping: ObjectId,
        wrapped: &[u8],
        template: &AttributeTemplate,
    ) -> Result<ObjectId> {
        self.allowed(mechanism.kind)?;
        let unwrapping = handle(unwrapping)?;
        let class = Self::template_class(template)?.unwrap_or(CKO_SECRET_KEY);
        let template = self.key_policy(template, Some(class), true)?;
        let mut raw = RawMechanism::new(mechanism)?;
        let link = &self.link;
        let token = is_token(&template)?;
        let result = link.make_object(session, "C_UnwrapKey", token, |s| {
            Ok((link.vendor.unwrap_key(s, &mut raw, unwrapping, wrapped, &template)?, None))
        });
        self.wrote();
        result.map(|(h, _)| object_id(h))
    }

    fn remote_derive(&self, session: CK_SESSION_HANDLE, mechanism: &Mechanism, base: ObjectId, template: &AttributeTemplate) -> Result<ObjectId> {
        self.allowed(mechanism.kind)?;
        let base = handle(base)?;
        let class = Self::template_class(template)?.unwrap_or(CKO_SECRET_KEY);
        let template = self.key_policy(template, Some(class), true)?;
        let mut raw = RawMechanism::new(mechanism)?;
        let link = &self.link;
        let token = is_token(&template)?;
        let result = link.make_object(session, "C_DeriveKey", token, |s| Ok((link.vendor.derive_key(s, &mut raw, base, &template)?, None)));
        self.wrote();
        result.map(|(h, _)| object_id(h))
    }
}

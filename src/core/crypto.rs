//! Cryptographic operations: key checks at `*Init`, the operation state in the session, and
//! PKCS#11's output-length protocol in one place (`deliver`).

use cryptoki_sys::*;
use zeroize::{Zeroize, Zeroizing};

use super::objects::Found;
use super::session::{Pending, Session, WrappedKey};
use super::Module;
use crate::backend::ObjectId;
use crate::error::{rv, Error, Result};
use crate::mechanism::{self, Mechanism, Secret};
use crate::object::policy::{self, Origin};
use crate::object::{encode_ulong, AttributeTemplate};

/// Where the caller wants output: only its length (a NULL buffer), or into a buffer.
pub enum Output<'a> {
    Query,
    Into(&'a mut [u8]),
}

/// Hands `data` to the caller per PKCS#11 §5.2. Returns the length and whether the data was
/// delivered (so the operation may move on).
fn deliver(data: &[u8], out: Output<'_>) -> Result<(usize, bool)> {
    match out {
        Output::Query => Ok((data.len(), false)),
        Output::Into(buf) if buf.len() < data.len() => Err(Error::BufferTooSmall(data.len())),
        Output::Into(buf) => {
            buf[..data.len()].copy_from_slice(data);
            Ok((data.len(), true))
        }
    }
}

/// Runs one step of an operation held in `slot`: computes its output once (kept while the
/// caller asks for the length or retries with a bigger buffer), then delivers it. A failure,
/// or delivery of a final step, ends the operation.
fn step<T>(
    slot: &mut Option<Pending<T>>,
    out: Output<'_>,
    last: bool,
    compute: impl FnOnce(&mut T) -> Result<Secret>,
) -> Result<usize> {
    let pending = slot.as_mut().ok_or(rv(CKR_OPERATION_NOT_INITIALIZED))?;
    if pending.output.is_none() {
        match compute(&mut pending.op) {
            Ok(data) => pending.output = Some(data),
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        }
    }
    let data = pending.output.as_ref().expect("output computed above");
    let (len, delivered) = deliver(data, out)?;
    if delivered {
        if let Some(mut output) = pending.output.take() {
            wipe(&mut output);
        }
        if last {
            *slot = None;
        }
    }
    Ok(len)
}

/// The output length of a `C_Encrypt`/`C_Decrypt` that can skip `step`'s kept output: the
/// cipher knows the length in advance, nothing is kept from an earlier call, and the
/// caller's buffers do not overlap (an in-place call goes through a buffer of our own, as
/// writing the output would overwrite input not yet read).
fn direct_len(slot: &Option<Pending<Box<dyn mechanism::Cipher>>>, input: &[u8], out: &Output<'_>) -> Option<usize> {
    let pending = slot.as_ref()?;
    if pending.output.is_some() {
        return None;
    }
    if let Output::Into(buf) = out {
        let (a, b) = (input.as_ptr_range(), buf.as_ptr_range());
        if a.start < b.end && b.start < a.end {
            return None;
        }
    }
    pending.op.once_len(input.len())
}

/// `C_Encrypt`/`C_Decrypt` of `len` bytes straight into the caller's buffer, with the same
/// length protocol as `deliver`: a query or too small a buffer keeps the operation.
fn once_direct(slot: &mut Option<Pending<Box<dyn mechanism::Cipher>>>, input: &[u8], out: Output<'_>, len: usize) -> Result<usize> {
    let buf = match out {
        Output::Query => return Ok(len),
        Output::Into(buf) if buf.len() < len => return Err(Error::BufferTooSmall(len)),
        Output::Into(buf) => &mut buf[..len],
    };
    let mut pending = slot.take().expect("direct_len saw an operation");
    let result = pending.op.once_into(input, buf);
    if result.is_err() {
        // Whatever a failed step left there (ciphertext, for GCM) is not output.
        buf.zeroize();
    }
    result.map(|()| len)
}

/// Wipes a buffer before it is dropped. `Zeroizing<Vec<u8>>` alone wipes byte by byte with
/// volatile writes, which costs more than encrypting the buffer; zeroize's slice path is a
/// `memset` behind an optimisation barrier.
fn wipe(buf: &mut Secret) {
    buf.as_mut_slice().zeroize();
    buf.clear();
}



/// The longest secret `C_DeriveKey` makes, in bytes: the longest generic secret key, which
/// is also the longest HMAC key and the most `CKM_GENERIC_SECRET_KEY_GEN` makes.
const MAX_DERIVED_LEN: usize = mechanism::hmac::MAX_KEY_LEN;

/// Which call of an operation `with_operation` runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// `C_Encrypt`, `C_Sign`…: the whole operation in one call.
    Once,
    /// `C_EncryptUpdate`, `C_SignUpdate`…
    Update,
    /// `C_EncryptFinal`, `C_SignFinal`…
    Final,
}

/// Which attribute of a key permits which use.
#[derive(Clone, Copy)]
enum KeyUse {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    Wrap,
    Unwrap,
    Derive,
}

impl KeyUse {
    fn attribute(self) -> CK_ATTRIBUTE_TYPE {
        match self {
            KeyUse::Encrypt => CKA_ENCRYPT,
            KeyUse::Decrypt => CKA_DECRYPT,
            KeyUse::Sign => CKA_SIGN,
            KeyUse::Verify => CKA_VERIFY,
            KeyUse::Wrap => CKA_WRAP,
            KeyUse::Unwrap => CKA_UNWRAP,
            KeyUse::Derive => CKA_DERIVE,
        }
    }

    fn mechanism_flag(self) -> CK_FLAGS {
        match self {
            KeyUse::Encrypt => CKF_ENCRYPT,
            KeyUse::Decrypt => CKF_DECRYPT,
            KeyUse::Sign => CKF_SIGN,
            KeyUse::Verify => CKF_VERIFY,
            KeyUse::Wrap => CKF_WRAP,
            KeyUse::Unwrap => CKF_UNWRAP,
            KeyUse::Derive => CKF_DERIVE,
        }
    }

    /// The key class each use needs: asymmetric operations use the public half for
    /// encrypt/verify/wrap and the private half for decrypt/sign/unwrap/derive.
    fn class_fits(self, class: CK_OBJECT_CLASS) -> bool {
        match class {
            CKO_SECRET_KEY => true,
            CKO_PUBLIC_KEY => matches!(self, KeyUse::Encrypt | KeyUse::Verify | KeyUse::Wrap),
            CKO_PRIVATE_KEY => matches!(self, KeyUse::Decrypt | KeyUse::Sign | KeyUse::Unwrap | KeyUse::Derive),
            _ => false,
        }
    }
}

impl Module {
    fn check_mechanism(&self, session: &Session, mechanism: &Mechanism, flag: CK_FLAGS) -> Result<mechanism::MechanismEntry> {
        let entry = self.mechanism_info(session.slot_id, mechanism.kind)?;
        if entry.flags & flag == 0 {
            return Err(rv(CKR_MECHANISM_INVALID));
        }
        Ok(entry)
    }

    /// Finds a key for `use_` with `mechanism` and checks every rule of the key's policy;
    /// returns the key with its secret value.
    fn usable_key(&self, session: &Session, handle: CK_OBJECT_HANDLE, mechanism: &Mechanism, use_: KeyUse) -> Result<Found> {
        let entry = self.check_mechanism(session, mechanism, use_.mechanism_flag())?;
        let found = self.find_object(session, handle, true).map_err(|e| match e.rv() {
            CKR_OBJECT_HANDLE_INVALID => rv(CKR_KEY_HANDLE_INVALID),
            _ => e,
        })?;
        let key = &found.object;
        if !matches!(key.class(), CKO_SECRET_KEY | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
            return Err(rv(CKR_KEY_HANDLE_INVALID));
        }
        if !key.key_type().is_some_and(|t| entry.key_types.contains(&t)) || !use_.class_fits(key.class()) {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        }
        if let Some(allowed) = key.allowed_mechanisms() {
            if !allowed.contains(&mechanism.kind) {
                return Err(rv(CKR_MECHANISM_INVALID));
            }
        }
        if !key.flag(use_.attribute()) {
            return Err(rv(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        if !has_key_material(key) && self.service_key(session, &found).is_none() {
            // The value is sealed and this process holds no token key.
            return Err(rv(CKR_USER_NOT_LOGGED_IN));
        }
        Ok(found)
    }

    /// The backend's id of `found` when the key's secret half stays in a key service.
    fn service_key(&self, session: &Session, found: &Found) -> Option<ObjectId> {
        let id = found.token_id()?;
        let slot = self.slot(session.slot_id).ok()?;
        slot.backend.is_service_key(id).then_some(id)
    }

    /// Starts a cipher with `found`: in its key service, or locally.
    fn key_cipher(&self, session: &Session, found: &Found, mechanism: &Mechanism, encrypt: bool) -> Result<Box<dyn mechanism::Cipher>> {
        match self.service_key(session, found) {
            Some(id) => self.slot(session.slot_id)?.backend.service_cipher(id, mechanism, encrypt),
            None => start_cipher(mechanism, &found.object, encrypt),
        }
    }

    fn with_session<T>(&self, handle: CK_SESSION_HANDLE, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let session = self.sessions.get(handle)?;
        let mut session = session.lock();
        f(&mut session)
    }

    /// Runs one step of the operation `which` picks: refused while it waits for a context
    /// login, and refused (ending the operation) for `…Update` calls of single-part
    /// mechanisms and for a single-part call after an `…Update`.
    fn with_operation<T, O>(
        &self,
        handle: CK_SESSION_HANDLE,
        which: impl FnOnce(&mut Session) -> &mut Option<Pending<O>>,
        call: Call,
        f: impl FnOnce(&mut Option<Pending<O>>) -> Result<T>,
    ) -> Result<T> {
        self.with_session(handle, |session| {
            let slot = which(session);
            let pending = slot.as_mut().ok_or(rv(CKR_OPERATION_NOT_INITIALIZED))?;
            if pending.needs_context_login {
                return Err(rv(CKR_USER_NOT_LOGGED_IN));
            }
            match call {
                Call::Update if pending.single_part => {
                    *slot = None;
                    return Err(rv(CKR_FUNCTION_NOT_SUPPORTED));
                }
                Call::Update => pending.multi_part = true,
                Call::Once => check_single_part(slot)?,
                Call::Final => {}
            }
            f(slot)
        })
    }

    pub fn cipher_init(&self, handle: CK_SESSION_HANDLE, mechanism: &Mechanism, key: CK_OBJECT_HANDLE, encrypt: bool) -> Result<()> {
        self.with_session(handle, |session| {
            let active = if encrypt { &session.encrypt } else { &session.decrypt };
            if active.is_some() {
                return Err(rv(CKR_OPERATION_ACTIVE));
            }
            let use_ = if encrypt { KeyUse::Encrypt } else { KeyUse::Decrypt };
            self.check_mechanism(session, mechanism, use_.mechanism_flag())?;
            if let Some(id) = self.remote_key(session, key)? {
                return self.remote_cipher_init(session, mechanism, id, encrypt);
            }
            let found = self.usable_key(session, key, mechanism, use_)?;
            let mut pending = Pending::new(self.key_cipher(session, &found, mechanism, encrypt)?);
            pending.single_part = mechanism::is_single_part_only(mechanism.kind);
            pending.needs_context_login = !encrypt && found.object.flag(CKA_ALWAYS_AUTHENTICATE);
            let slot = if encrypt { &mut session.encrypt } else { &mut session.decrypt };
            *slot = Some(pending);
            Ok(())
        })
    }

    /// `C_Encrypt`/`C_Decrypt`.
    pub fn cipher_once(&self, handle: CK_SESSION_HANDLE, encrypt: bool, input: &[u8], out: Output<'_>) -> Result<usize> {
        self.with_operation(handle, |s| cipher_slot(s, encrypt), Call::Once, |slot| {
            if let Some(len) = direct_len(slot, input, &out) {
                return once_direct(slot, input, out, len);
            }
            step(slot, out, true, |c| c.once(input))
        })
    }

    /// `C_EncryptUpdate`/`C_DecryptUpdate`.
    pub fn cipher_update(&self, handle: CK_SESSION_HANDLE, encrypt: bool, input: &[u8], out: Output<'_>) -> Result<usize> {
        self.with_operation(handle, |s| cipher_slot(s, encrypt), Call::Update, |slot| step(slot, out, false, |c| c.update(input)))
    }

    /// `C_EncryptFinal`/`C_DecryptFinal`.
    pub fn cipher_final(&self, handle: CK_SESSION_HANDLE, encrypt: bool, out: Output<'_>) -> Result<usize> {
        self.with_operation(handle, |s| cipher_slot(s, encrypt), Call::Final, |slot| step(slot, out, true, |c| c.finish()))
    }

    pub fn digest_init(&self, handle: CK_SESSION_HANDLE, mechanism: &Mechanism) -> Result<()> {
        self.with_session(handle, |session| {
            if session.digest.is_some() {
                return Err(rv(CKR_OPERATION_ACTIVE));
            }
            self.check_mechanism(session, mechanism, CKF_DIGEST)?;
            session.digest = Some(Pending::new(mechanism::digester(mechanism)?));
            Ok(())
        })
    }

    pub fn digest_once(&self, handle: CK_SESSION_HANDLE, input: &[u8], out: Output<'_>) -> Result<usize> {
        self.with_session(handle, |session| {
            check_single_part(&mut session.digest)?;
            step(&mut session.digest, out, true, |d| {
                d.update(input);
                Ok(Zeroizing::new(d.finish()))
            })
        })
    }

    pub fn digest_update(&self, handle: CK_SESSION_HANDLE, input: &[u8]) -> Result<()> {
        self.with_session(handle, |session| {
            let pending = session.digest.as_mut().ok_or(rv(CKR_OPERATION_NOT_INITIALIZED))?;
            pending.multi_part = true;
            pending.op.update(input);
            Ok(())
        })
    }

    /// `C_DigestKey`: digests a secret key's value, if the key may be revealed at all.
    pub fn digest_key(&self, handle: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<()> {
        self.with_session(handle, |session| {
            if session.digest.is_none() {
                return Err(rv(CKR_OPERATION_NOT_INITIALIZED));
            }
            if self.remote_key(session, key)?.is_some() {
                // The token keeps the value; keyfront digests locally and cannot read it.
                session.digest = None;
                return Err(rv(CKR_KEY_INDIGESTIBLE));
            }
            let found = self.find_object(session, key, true).map_err(|e| match e.rv() {
                CKR_OBJECT_HANDLE_INVALID => rv(CKR_KEY_HANDLE_INVALID),
                // A public token key's sealed value, while this process holds no token key:
                // not a code C_DigestKey may return; the value cannot be digested.
                CKR_USER_NOT_LOGGED_IN => rv(CKR_KEY_INDIGESTIBLE),
                _ => e,
            });
            let found = match found {
                Ok(f) => f,
                Err(e) => {
                    session.digest = None;
                    return Err(e);
                }
            };
            let object = &found.object;
            let digestible = object.class() == CKO_SECRET_KEY && policy::is_readable(object, CKA_VALUE);
            match object.get(CKA_VALUE) {
                Some(value) if digestible => {
                    let pending = session.digest.as_mut().expect("checked above");
                    pending.multi_part = true;
                    pending.op.update(value);
                    Ok(())
                }
                _ => {
                    session.digest = None;
                    Err(rv(CKR_KEY_INDIGESTIBLE))
                }
            }
        })
    }

    pub fn digest_final(&self, handle: CK_SESSION_HANDLE, out: Output<'_>) -> Result<usize> {
        self.with_session(handle, |session| step(&mut session.digest, out, true, |d| Ok(Zeroizing::new(d.finish()))))
    }

    pub fn sign_init(&self, handle: CK_SESSION_HANDLE, mechanism: &Mechanism, key: CK_OBJECT_HANDLE, sign: bool) -> Result<()> {
        self.with_session(handle, |session| {
            let active = if sign { &session.sign } else { &session.verify };
            if active.is_some() {
                return Err(rv(CKR_OPERATION_ACTIVE));
            }
            let use_ = if sign { KeyUse::Sign } else { KeyUse::Verify };
            self.check_mechanism(session, mechanism, use_.mechanism_flag())?;
            if let Some(id) = self.remote_key(session, key)? {
                return self.remote_signer_init(session, mechanism, id, sign);
            }
            let found = self.usable_key(session, key, mechanism, use_)?;
            let service = self.service_key(session, &found);
            let signer = if let Some(id) = service.filter(|_| sign) {
                self.slot(session.slot_id)?.backend.service_signer(id, mechanism)?
            } else if found.object.class() == CKO_SECRET_KEY {
                mechanism::signer(mechanism, found.object.get(CKA_VALUE).unwrap_or_default())?
            } else {
                mechanism::asym_signer(mechanism, &found.object, sign)?
            };
            let mut pending = Pending::new(signer);
            pending.single_part = mechanism::is_single_part_only(mechanism.kind);
            pending.needs_context_login = sign && found.object.flag(CKA_ALWAYS_AUTHENTICATE);
            let slot = if sign { &mut session.sign } else { &mut session.verify };
            *slot = Some(pending);
            Ok(())
        })
    }

    pub fn sign_once(&self, handle: CK_SESSION_HANDLE, data: &[u8], out: Output<'_>) -> Result<usize> {
        self.with_operation(handle, |s| &mut s.sign, Call::Once, |slot| {
            step(slot, out, true, |s| Ok(Zeroizing::new(s.sign_once(data)?)))
        })
    }

    /// `C_SignUpdate` (`sign` true) or `C_VerifyUpdate`. A failure ends the operation.
    pub fn sign_update(&self, handle: CK_SESSION_HANDLE, sign: bool, data: &[u8]) -> Result<()> {
        self.with_operation(handle, |s| signer_slot(s, sign), Call::Update, |slot| {
            let pending = slot.as_mut().ok_or(rv(CKR_OPERATION_NOT_INITIALIZED))?;
            let result = pending.op.update(data);
            if result.is_err() {
                *slot = None;
            }
            result
        })
    }

    pub fn sign_final(&self, handle: CK_SESSION_HANDLE, out: Output<'_>) -> Result<usize> {
        self.with_operation(handle, |s| &mut s.sign, Call::Final, |slot| step(slot, out, true, |s| Ok(Zeroizing::new(s.sign()?))))
    }

    /// `C_Verify` (with `data`) or `C_VerifyFinal` (without): always ends the operation.
    pub fn verify(&self, handle: CK_SESSION_HANDLE, data: Option<&[u8]>, signature: &[u8]) -> Result<()> {
        self.with_session(handle, |session| {
            let mut pending = session.verify.take().ok_or(rv(CKR_OPERATION_NOT_INITIALIZED))?;
            match data {
                // C_Verify cannot end what C_VerifyUpdate began; the operation ends all the same.
                Some(_) if pending.multi_part => Err(rv(CKR_OPERATION_NOT_INITIALIZED)),
                Some(data) => pending.op.verify_once(data, signature),
                None => pending.op.verify(signature),
            }
        })
    }

    pub fn generate_key(&self, handle: CK_SESSION_HANDLE, mechanism: &Mechanism, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        self.with_session(handle, |session| {
            let entry = self.check_mechanism(session, mechanism, CKF_GENERATE)?;
            let slot = self.slot(session.slot_id)?;
            if slot.backend.is_remote() {
                return self.remote_generate_key(session, slot, mechanism, template);
            }
            // Service keys are token objects, and private.
            if slot.backend.keys_in_service() && template.get_bool(CKA_TOKEN)? == Some(true) {
                self.check_writable(session, slot, true, true)?;
            }
            if let Some(made) = slot.backend.service_generate_key(mechanism, template) {
                return Ok(self.objects.token_handle(slot.id, made?));
            }
            mechanism.no_param()?;
            let key_type = entry.key_types.first().copied().ok_or(rv(CKR_MECHANISM_INVALID))?;
            let len = template.get_ulong(CKA_VALUE_LEN)?.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))? as usize;
            let len_ok = match key_type {
                CKK_AES => matches!(len, 16 | 24 | 32),
                _ => (1..=(entry.max_key as usize / 8)).contains(&len),
            };
            if !len_ok {
                return Err(rv(CKR_KEY_SIZE_RANGE));
            }
            let mut value = Zeroizing::new(vec![0u8; len]);
            getrandom::fill(&mut value).map_err(|e| Error::Internal(format!("OS random generator: {e}")))?;
            let implied = AttributeTemplate::new()
                .with(CKA_CLASS, encode_ulong(CKO_SECRET_KEY))
                .with(CKA_KEY_TYPE, encode_ulong(key_type))
                .with(CKA_KEY_GEN_MECHANISM, encode_ulong(mechanism.kind))
                .with(CKA_VALUE, value.to_vec());
            let slot = self.slot(session.slot_id)?;
            let caller = policy::Caller { is_so: slot.login_state() == super::slot::LoginState::So };
            let object = policy::new_object(template, Origin::Generate, &implied, caller)?;
            self.store_object(session, object)
        })
    }

    pub fn generate_key_pair(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        public_template: &AttributeTemplate,
        private_template: &AttributeTemplate,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        self.with_session(handle, |session| {
            let entry = self.check_mechanism(session, mechanism, CKF_GENERATE_KEY_PAIR)?;
            let slot = self.slot(session.slot_id)?;
            if slot.backend.is_remote() {
                return self.remote_generate_key_pair(session, slot, mechanism, public_template, private_template);
            }
            if slot.backend.keys_in_service() && private_template.get_bool(CKA_TOKEN)? == Some(true) {
                self.check_writable(session, slot, true, true)?;
            }
            if let Some(made) = slot.backend.service_generate_key_pair(mechanism, public_template, private_template) {
                let (public, private) = made?;
                return Ok((self.objects.token_handle(slot.id, public), self.objects.token_handle(slot.id, private)));
            }
            let key_type = entry.key_types.first().copied().ok_or(rv(CKR_MECHANISM_INVALID))?;
            let parts = mechanism::generate_key_pair(mechanism, public_template, private_template)?;
            let slot = self.slot(session.slot_id)?;
            let caller = policy::Caller { is_so: slot.login_state() == super::slot::LoginState::So };
            let common = |class| {
                AttributeTemplate::new()
                    .with(CKA_CLASS, encode_ulong(class))
                    .with(CKA_KEY_TYPE, encode_ulong(key_type))
                    .with(CKA_KEY_GEN_MECHANISM, encode_ulong(mechanism.kind))
            };
            let mut implied_public = common(CKO_PUBLIC_KEY);
            implied_public.attrs.extend(parts.public.attrs.iter().cloned());
            let mut implied_private = common(CKO_PRIVATE_KEY);
            implied_private.attrs.extend(parts.private.attrs.iter().cloned());
            let mut public = policy::new_object(&without_curve_params(public_template), Origin::Generate, &implied_public, caller)?;
            let mut private = policy::new_object(&without_curve_params(private_template), Origin::Generate, &implied_private, caller)?;
            // Both halves carry one CKA_ID: the caller's, or one derived from the public key.
            let id = match (public.get(CKA_ID), private.get(CKA_ID)) {
                (Some(p), _) if !p.is_empty() => p.to_vec(),
                (_, Some(p)) if !p.is_empty() => p.to_vec(),
                _ => {
                    use sha1::Digest;
                    sha1::Sha1::digest(public.get(CKA_PUBLIC_KEY_INFO).unwrap_or_default()).to_vec()
                }
            };
            if public.get(CKA_ID).is_none_or(<[u8]>::is_empty) {
                public.set(CKA_ID, id.clone());
            }
            if private.get(CKA_ID).is_none_or(<[u8]>::is_empty) {
                private.set(CKA_ID, id);
            }
            let public_handle = self.store_object(session, public)?;
            match self.store_object(session, private) {
                Ok(private_handle) => Ok((public_handle, private_handle)),
                Err(e) => {
                    // Leave no half pair behind.
                    let _ = self.remove_object(session, public_handle);
                    Err(e)
                }
            }
        })
    }

    pub fn derive_key(&self, handle: CK_SESSION_HANDLE, mechanism: &Mechanism, base: CK_OBJECT_HANDLE, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        self.with_session(handle, |session| {
            self.check_mechanism(session, mechanism, CKF_DERIVE)?;
            if let Some(id) = self.remote_key(session, base)? {
                return self.remote_derive(session, self.slot(session.slot_id)?, mechanism, id, template);
            }
            let base = self.usable_key(session, base, mechanism, KeyUse::Derive)?;
            let len = template.get_ulong(CKA_VALUE_LEN)?.map(|l| l as usize);
            // A derived secret is a key: bound it like generated secrets are.
            if len.is_some_and(|l| l == 0 || l > MAX_DERIVED_LEN) {
                return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            let len = match (template.get_ulong(CKA_KEY_TYPE)?, len) {
                (Some(CKK_AES), None) => Some(32),
                (_, len) => len,
            };
            let value = mechanism::derive(mechanism, &base.object, len)?;
            let implied = AttributeTemplate::new().with(CKA_CLASS, encode_ulong(CKO_SECRET_KEY)).with(CKA_VALUE, value.to_vec());
            let template = AttributeTemplate {
                attrs: template.attrs.iter().filter(|(ty, _)| *ty != CKA_VALUE_LEN).cloned().collect(),
            };
            let slot = self.slot(session.slot_id)?;
            let caller = policy::Caller { is_so: slot.login_state() == super::slot::LoginState::So };
            let object = policy::new_object(&template, Origin::Derive, &implied, caller)?;
            self.store_object(session, object)
        })
    }

    pub fn wrap_key(&self, handle: CK_SESSION_HANDLE, mechanism: &Mechanism, wrapping: CK_OBJECT_HANDLE, key: CK_OBJECT_HANDLE, out: Output<'_>) -> Result<usize> {
        self.with_session(handle, |session| {
            let slot = self.slot(session.slot_id)?;
            if slot.backend.is_remote() {
                self.check_mechanism(session, mechanism, CKF_WRAP)?;
                let handle_error = |invalid| move |e: Error| if e.rv() == CKR_OBJECT_HANDLE_INVALID { rv(invalid) } else { e };
                let wrapping = self
                    .objects
                    .remote(slot.id, wrapping)
                    .map_err(handle_error(CKR_WRAPPING_KEY_HANDLE_INVALID))?
                    .ok_or(rv(CKR_WRAPPING_KEY_HANDLE_INVALID))?;
                let key = self.objects.remote(slot.id, key).map_err(handle_error(CKR_KEY_HANDLE_INVALID))?.ok_or(rv(CKR_KEY_HANDLE_INVALID))?;
                let wrapped = slot.backend.remote_wrap(session.handle, mechanism, wrapping, key)?;
                return Ok(deliver(&wrapped, out)?.0);
            }
            // The result of the same call that asked for the length.
            if let Some(kept) = session.wrapped.take() {
                if kept.mechanism == *mechanism && kept.wrapping == wrapping && kept.key == key {
                    return match deliver(&kept.blob, out) {
                        Ok((len, true)) => Ok(len),
                        other => {
                            session.wrapped = Some(kept);
                            other.map(|(len, _)| len)
                        }
                    };
                }
            }
            let (wrapping_handle, key_handle) = (wrapping, key);
            let wrapping = self.usable_key(session, wrapping, mechanism, KeyUse::Wrap).map_err(|e| match e.rv() {
                CKR_KEY_HANDLE_INVALID => rv(CKR_WRAPPING_KEY_HANDLE_INVALID),
                CKR_KEY_TYPE_INCONSISTENT => rv(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
                _ => e,
            })?;
            let target = self.find_object(session, key, true).map_err(|e| match e.rv() {
                CKR_OBJECT_HANDLE_INVALID => rv(CKR_KEY_HANDLE_INVALID),
                _ => e,
            })?;
            let target = &target.object;
            let zero_padded = mechanism::aes::wraps_zero_padded(mechanism.kind);
            // AES-ECB and AES-CBC wrap secret keys only: a zero-padded PKCS#8 blob would not
            // read back.
            if !matches!(target.class(), CKO_SECRET_KEY | CKO_PRIVATE_KEY) || (zero_padded && target.class() != CKO_SECRET_KEY) {
                return Err(rv(CKR_KEY_NOT_WRAPPABLE));
            }
            if !target.flag(CKA_EXTRACTABLE) {
                return Err(rv(CKR_KEY_UNEXTRACTABLE));
            }
            if target.flag(CKA_WRAP_WITH_TRUSTED) && !wrapping.object.flag(CKA_TRUSTED) {
                return Err(rv(CKR_KEY_NOT_WRAPPABLE));
            }
            if !has_key_material(target) {
                return Err(rv(CKR_USER_NOT_LOGGED_IN));
            }
            // Secret keys wrap as their value, private keys as a PKCS#8 PrivateKeyInfo.
            let value = match target.class() {
                CKO_SECRET_KEY if zero_padded => mechanism::aes::zero_padded(target.get(CKA_VALUE).unwrap_or_default()),
                CKO_SECRET_KEY => Zeroizing::new(target.get(CKA_VALUE).unwrap_or_default().to_vec()),
                _ => mechanism::private_key_to_pkcs8(target)?,
            };
            let mut cipher = self.key_cipher(session, &wrapping, mechanism, true)?;
            let wrapped = cipher.once(&value).map_err(wrap_error)?;
            match deliver(&wrapped, out) {
                Ok((len, true)) => Ok(len),
                other => {
                    session.wrapped =
                        Some(WrappedKey { mechanism: mechanism.clone(), wrapping: wrapping_handle, key: key_handle, blob: wrapped });
                    other.map(|(len, _)| len)
                }
            }
        })
    }

    pub fn unwrap_key(&self, handle: CK_SESSION_HANDLE, mechanism: &Mechanism, unwrapping: CK_OBJECT_HANDLE, wrapped: &[u8], template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        self.with_session(handle, |session| {
            self.check_mechanism(session, mechanism, CKF_UNWRAP)?;
            let remote = self.remote_key(session, unwrapping).map_err(|e| match e.rv() {
                CKR_KEY_HANDLE_INVALID => rv(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
                _ => e,
            })?;
            if let Some(id) = remote {
                return self.remote_unwrap(session, self.slot(session.slot_id)?, mechanism, id, wrapped, template);
            }
            let unwrapping = self.usable_key(session, unwrapping, mechanism, KeyUse::Unwrap).map_err(|e| match e.rv() {
                CKR_KEY_HANDLE_INVALID => rv(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
                CKR_KEY_TYPE_INCONSISTENT => rv(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
                _ => e,
            })?;
            let class = template.get_ulong(CKA_CLASS)?.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
            // AES-ECB and AES-CBC unwrap to the key's value zero-padded to whole blocks, cut
            // to the template's CKA_VALUE_LEN "if it has one" (PKCS#11 3.0): without it the
            // whole decrypted value is the key (a 24-byte AES key then comes back as 32
            // bytes: the padding does not tell). They unwrap secret keys only.
            let cut_to = match (mechanism::aes::wraps_zero_padded(mechanism.kind), class) {
                (false, _) => None,
                (true, CKO_SECRET_KEY) => template.get_ulong(CKA_VALUE_LEN)?.map(|len| len as usize),
                (true, _) => return Err(rv(CKR_TEMPLATE_INCONSISTENT)),
            };
            let mut cipher = self.key_cipher(session, &unwrapping, mechanism, false)?;
            let mut value = cipher.once(wrapped).map_err(unwrap_error)?;
            if let Some(len) = cut_to {
                if len > value.len() {
                    // Too short for the key the template describes.
                    return Err(rv(CKR_WRAPPED_KEY_LEN_RANGE));
                }
                value.truncate(len);
            }
            let implied = match class {
                CKO_SECRET_KEY => {
                    let key_type = template.get_ulong(CKA_KEY_TYPE)?.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
                    // A value no key of that type has (an AES key of 20 bytes) is "recognizably
                    // not a wrapped key of the proper type": CKR_WRAPPED_KEY_INVALID. A length
                    // the template named itself is the template's to answer for.
                    let fits = match key_type {
                        CKK_AES => matches!(value.len(), 16 | 24 | 32),
                        _ => !value.is_empty(),
                    };
                    if cut_to.is_none() && !fits {
                        return Err(rv(CKR_WRAPPED_KEY_INVALID));
                    }
                    AttributeTemplate::new().with(CKA_VALUE, value.to_vec())
                }
                CKO_PRIVATE_KEY => {
                    let (key_type, parts) = mechanism::private_key_from_pkcs8(&value)?;
                    parts.with(CKA_KEY_TYPE, encode_ulong(key_type))
                }
                _ => return Err(rv(CKR_TEMPLATE_INCONSISTENT)),
            };
            let slot = self.slot(session.slot_id)?;
            let caller = policy::Caller { is_so: slot.login_state() == super::slot::LoginState::So };
            let object = policy::new_object(&without_curve_params(template), Origin::Unwrap, &implied, caller)?;
            self.store_object(session, object)
        })
    }

    pub fn generate_random(&self, handle: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
        self.sessions.get(handle)?;
        getrandom::fill(out).map_err(|e| Error::Internal(format!("OS random generator: {e}")))
    }

    pub fn seed_random(&self, handle: CK_SESSION_HANDLE) -> Result<()> {
        self.sessions.get(handle)?;
        // The OS generator takes no seed from applications.
        Err(rv(CKR_RANDOM_SEED_NOT_SUPPORTED))
    }
}

fn cipher_slot(session: &mut Session, encrypt: bool) -> &mut Option<Pending<Box<dyn mechanism::Cipher>>> {
    if encrypt {
        &mut session.encrypt
    } else {
        &mut session.decrypt
    }
}

fn signer_slot(session: &mut Session, sign: bool) -> &mut Option<Pending<Box<dyn mechanism::Signer>>> {
    if sign {
        &mut session.sign
    } else {
        &mut session.verify
    }
}

/// A single-part call (`C_Encrypt`, `C_Digest`, `C_Sign`…) on an operation that an `…Update`
/// call already fed: PKCS#11 says the single-part call "cannot be used to terminate a
/// multi-part operation". As SoftHSM2 does for `C_Sign` and `C_Verify`, it is refused with
/// `CKR_OPERATION_NOT_INITIALIZED` (there is no single-part operation to run) and the
/// operation ends, as SoftHSM2 ends it and as any error but `CKR_BUFFER_TOO_SMALL` does.
fn check_single_part<T>(slot: &mut Option<Pending<T>>) -> Result<()> {
    if slot.as_ref().is_some_and(|p| p.multi_part) {
        *slot = None;
        return Err(rv(CKR_OPERATION_NOT_INITIALIZED));
    }
    Ok(())
}

/// A template without CKA_EC_PARAMS: generation and unwrapping report the curve in its
/// canonical form, and the caller may have named it another accepted way.
fn without_curve_params(template: &AttributeTemplate) -> AttributeTemplate {
    AttributeTemplate { attrs: template.attrs.iter().filter(|(ty, _)| *ty != CKA_EC_PARAMS).cloned().collect() }
}

/// Starts a cipher with a secret key's value or an asymmetric key's components.
fn start_cipher(mechanism: &Mechanism, key: &crate::object::Object, encrypt: bool) -> Result<Box<dyn mechanism::Cipher>> {
    if key.class() == CKO_SECRET_KEY {
        mechanism::aes::cipher_for_key(mechanism, key, encrypt)
    } else {
        mechanism::asym_cipher(mechanism, key, encrypt)
    }
}

/// Whether the secret part of a key was read (it is sealed when no token key is held).
fn has_key_material(key: &crate::object::Object) -> bool {
    match (key.class(), key.key_type()) {
        (CKO_PUBLIC_KEY, _) => true,
        (CKO_PRIVATE_KEY, Some(CKK_RSA)) => key.contains(CKA_PRIVATE_EXPONENT),
        _ => key.contains(CKA_VALUE),
    }
}

fn wrap_error(e: Error) -> Error {
    match e.rv() {
        CKR_DATA_LEN_RANGE => rv(CKR_KEY_SIZE_RANGE),
        _ => e,
    }
}

fn unwrap_error(e: Error) -> Error {
    match e.rv() {
        CKR_ENCRYPTED_DATA_INVALID => rv(CKR_WRAPPED_KEY_INVALID),
        CKR_ENCRYPTED_DATA_LEN_RANGE => rv(CKR_WRAPPED_KEY_LEN_RANGE),
        _ => e,
    }
}

impl Module {
    /// `C_SessionCancel`: ends the operations named by `flags`.
    pub fn cancel(&self, handle: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
        self.with_session(handle, |s| {
            if flags & CKF_ENCRYPT != 0 {
                s.encrypt = None;
            }
            if flags & CKF_DECRYPT != 0 {
                s.decrypt = None;
            }
            if flags & CKF_DIGEST != 0 {
                s.digest = None;
            }
            if flags & CKF_SIGN != 0 {
                s.sign = None;
            }
            if flags & CKF_VERIFY != 0 {
                s.verify = None;
            }
            if flags & CKF_FIND_OBJECTS != 0 {
                s.find = None;
            }
            Ok(())
        })
    }
}

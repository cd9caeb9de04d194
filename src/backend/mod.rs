//! The one interface between the core and the places keys live. The core decides *whether*
//! something is allowed (sessions, login state, object policy); a backend decides *how* it is
//! stored and, later, how a remote key is used.

pub mod aws_kms;
pub mod cloud;
pub mod pkcs11;
pub mod vault_transit;
pub mod soft;

use cryptoki_sys::*;

use crate::error::{rv, Result};
use crate::mechanism::{Cipher, Mechanism, Signer};
use crate::object::{AttrRead, AttributeTemplate, Object};

/// A backend's own name for a token object. Never shown to applications: the core hands out
/// its own handles.
pub type ObjectId = i64;

/// Who logs in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UserType {
    So,
    User,
}

/// What `C_GetTokenInfo` shows, as the backend knows it.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub label: String,
    /// `manufacturerID`: keyfront's own tokens say "keyfront", a forwarded one its vendor's.
    pub manufacturer: String,
    /// Hardware and firmware versions; keyfront's own tokens give the library's version.
    pub hardware_version: CK_VERSION,
    pub firmware_version: CK_VERSION,
    pub model: String,
    pub serial: String,
    /// Token flags from the backend (initialised, PIN state…); the core adds session counts.
    pub flags: CK_FLAGS,
    pub min_pin_len: usize,
    pub max_pin_len: usize,
}

pub trait Backend: Send + Sync {
    fn token_info(&self) -> Result<TokenInfo>;

    /// The mechanisms this token can carry out; the core intersects with its own table.
    fn mechanisms(&self) -> Vec<CK_MECHANISM_TYPE> {
        crate::mechanism::MECHANISMS.iter().map(|m| m.kind).collect()
    }

    /// Initialises (or re-initialises, destroying every object) the token.
    fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()>;
    /// Sets the user PIN; the SO is logged in. Unlocks a locked user PIN.
    fn init_pin(&self, pin: &[u8]) -> Result<()>;
    fn set_pin(&self, user: UserType, old_pin: &[u8], new_pin: &[u8]) -> Result<()>;
    fn login(&self, user: UserType, pin: &[u8]) -> Result<()>;
    /// Checks the user PIN without changing the login state (`CKU_CONTEXT_SPECIFIC`).
    fn verify_user_pin(&self, pin: &[u8]) -> Result<()>;
    fn logout(&self);

    /// A number that changes whenever a token object may have changed, in this process or
    /// another; the core reuses what it read while it stays the same.
    fn generation(&self) -> Result<u64>;

    fn create_object(&self, object: &Object) -> Result<ObjectId>;
    /// Reads an object. Secret attributes are included only with `with_secrets`, which needs
    /// a login.
    fn read_object(&self, id: ObjectId, with_secrets: bool) -> Result<Object>;
    /// Writes the attributes `changed` of `object` back.
    fn update_object(&self, id: ObjectId, object: &Object, changed: &[CK_ATTRIBUTE_TYPE]) -> Result<()>;
    fn destroy_object(&self, id: ObjectId) -> Result<()>;
    /// Token objects matching `template`, private ones only when `include_private`.
    fn find_objects(&self, template: &AttributeTemplate, include_private: bool) -> Result<Vec<ObjectId>>;

    // ---- Backends whose keys stay in a key service (cloud slots) -----------------------
    //
    // Their token objects are ordinary to the core (found, read, policy-checked) except that
    // a private or secret key holds no key material: the backend carries out the operations
    // that need it. Public keys and session objects work locally as on any slot.

    /// Whether the token's keys are made and kept by a key service.
    fn keys_in_service(&self) -> bool {
        false
    }

    /// Whether token object `id` is a key whose secret half the backend uses on the core's
    /// behalf (`service_signer`, `service_cipher`).
    fn is_service_key(&self, _id: ObjectId) -> bool {
        false
    }

    fn service_signer(&self, _id: ObjectId, _mechanism: &Mechanism) -> Result<Box<dyn Signer>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    /// Decryption with a held private key; encryption and decryption (also for wrapping and
    /// unwrapping) with a held secret key.
    fn service_cipher(&self, _id: ObjectId, _mechanism: &Mechanism, _encrypt: bool) -> Result<Box<dyn Cipher>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    /// `C_GenerateKey` of a key the service makes (token keys on a cloud slot); `None`: the
    /// core makes the key itself.
    fn service_generate_key(&self, _mechanism: &Mechanism, _template: &AttributeTemplate) -> Option<Result<ObjectId>> {
        None
    }

    /// `C_GenerateKeyPair` in the service: (public, private) object ids; `None` as above.
    fn service_generate_key_pair(
        &self,
        _mechanism: &Mechanism,
        _public: &AttributeTemplate,
        _private: &AttributeTemplate,
    ) -> Option<Result<(ObjectId, ObjectId)>> {
        None
    }

    // ---- Backends that keep their objects and carry out operations themselves ----------
    //
    // A forwarded PKCS#11 token answers `true` to `is_remote` and implements the methods
    // below. The core then keeps sessions, handles and login state as for any slot, applies
    // keyfront's own policy (the mechanism allow list, argument checks), and leaves objects,
    // attribute rules and cryptography to the backend. `session` is keyfront's session
    // handle, so the backend can tie it to a session of its own. `ObjectId`s from these
    // methods may name session objects too.

    fn is_remote(&self) -> bool {
        false
    }

    /// `C_GetMechanismInfo` as the token reports it.
    fn remote_mechanism_info(&self, _kind: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    /// Keyfront's session `session` was closed: end whatever the backend tied to it.
    fn remote_session_closed(&self, _session: CK_SESSION_HANDLE) {}

    /// `C_Login(CKU_CONTEXT_SPECIFIC)` for the operation in progress on `session`: the token
    /// checks the PIN on the session of that operation (instead of `verify_user_pin`).
    fn remote_context_login(&self, _session: CK_SESSION_HANDLE, _pin: &[u8]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_create(&self, _session: CK_SESSION_HANDLE, _template: &AttributeTemplate) -> Result<ObjectId> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_copy(&self, _session: CK_SESSION_HANDLE, _id: ObjectId, _template: &AttributeTemplate) -> Result<ObjectId> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_get_attributes(&self, _session: CK_SESSION_HANDLE, _id: ObjectId, _types: &[CK_ATTRIBUTE_TYPE]) -> Result<Vec<AttrRead>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_set_attributes(&self, _session: CK_SESSION_HANDLE, _id: ObjectId, _template: &AttributeTemplate) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_object_size(&self, _session: CK_SESSION_HANDLE, _id: ObjectId) -> Result<usize> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_find(&self, _session: CK_SESSION_HANDLE, _template: &AttributeTemplate) -> Result<Vec<ObjectId>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_cipher(&self, _session: CK_SESSION_HANDLE, _mechanism: &Mechanism, _key: ObjectId, _encrypt: bool) -> Result<Box<dyn Cipher>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_signer(&self, _session: CK_SESSION_HANDLE, _mechanism: &Mechanism, _key: ObjectId, _sign: bool) -> Result<Box<dyn Signer>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_generate_key(&self, _session: CK_SESSION_HANDLE, _mechanism: &Mechanism, _template: &AttributeTemplate) -> Result<ObjectId> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_generate_key_pair(
        &self,
        _session: CK_SESSION_HANDLE,
        _mechanism: &Mechanism,
        _public: &AttributeTemplate,
        _private: &AttributeTemplate,
    ) -> Result<(ObjectId, ObjectId)> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_wrap(&self, _session: CK_SESSION_HANDLE, _mechanism: &Mechanism, _wrapping: ObjectId, _key: ObjectId) -> Result<Vec<u8>> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_unwrap(
        &self,
        _session: CK_SESSION_HANDLE,
        _mechanism: &Mechanism,
        _unwrapping: ObjectId,
        _wrapped: &[u8],
        _template: &AttributeTemplate,
    ) -> Result<ObjectId> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn remote_derive(&self, _session: CK_SESSION_HANDLE, _mechanism: &Mechanism, _base: ObjectId, _template: &AttributeTemplate) -> Result<ObjectId> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
}

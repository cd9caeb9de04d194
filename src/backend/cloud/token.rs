//! `CloudToken`: a slot whose token objects are the keys of a key service. The key list and
//! public keys are cached for `refresh_interval_s`; every object is built from that cache, so
//! finding and reading objects costs no request within the interval. Session objects (data
//! keys unwrapped from the service) stay with the core like on any slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use parking_lot::{Mutex, RwLock};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::certificate;
use super::ops::{ServiceCipher, ServiceSigner};
use super::service::{KeyService, KeySpec, NewKey, RemoteKey};
use crate::backend::{Backend, ObjectId, TokenInfo, UserType};
use crate::config::CloudSlotConfig;
use crate::error::{rv, Result};
use crate::mechanism::{Cipher, Mechanism, Signer};
use crate::object::{AttributeTemplate, Object};

/// Which object of a key an `ObjectId` names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Half {
    /// The private key of an asymmetric key, or the secret key of a symmetric one.
    Held,
    /// The public key object of an asymmetric key.
    Public,
    /// A self-signed certificate of a signing key (`certificates = true`).
    Certificate,
}

/// A key reference, version and half: what one `ObjectId` names.
type ObjectName = (String, Option<u32>, Half);

/// `ObjectId`s both ways: they stay the same for a key across refreshes (handles the core gave
/// out keep naming the same key); id N is `names[N - 1]`.
#[derive(Default)]
struct ObjectIds {
    by_name: HashMap<ObjectName, ObjectId>,
    names: Vec<ObjectName>,
}

/// The key list as last fetched.
#[derive(Default)]
struct KeyList {
    keys: Vec<RemoteKey>,
    fetched: Option<Instant>,
}

pub struct CloudToken {
    label: String,
    service: Arc<dyn KeyService>,
    pin_sha256: Option<[u8; 32]>,
    refresh_interval: Duration,
    list: RwLock<Arc<KeyList>>,
    /// Held by the one thread fetching the list; the others keep using the old one.
    refreshing: Mutex<()>,
    ids: Mutex<ObjectIds>,
    /// Changes whenever the key list changed: the core rereads objects then.
    generation: AtomicU64,
    /// Counts the keys this token made or removed: a list fetched while one was made is not
    /// taken as fresh (it may lack the new key).
    changes: AtomicU64,
    /// Keys this token made in the last `RECENT`: kept in fetched lists that lack them yet
    /// (a service's listing may lag behind its creates: AWS KMS is eventually consistent).
    recent: Mutex<Vec<(RemoteKey, Instant)>>,
    /// Whether signing keys show a certificate object, and the certificates made so far.
    certificates: bool,
    made_certificates: Mutex<HashMap<KeyVersion, Arc<Vec<u8>>>>,
}

/// A key's name and version in its service (`None`: the key has no versions).
type KeyVersion = (String, Option<u32>);

const RECENT: Duration = Duration::from_secs(120);

impl CloudToken {
    pub fn new(label: &str, service: Arc<dyn KeyService>, config: &CloudSlotConfig) -> Self {
        CloudToken {
            label: label.to_string(),
            service,
            pin_sha256: config.pin_sha256,
            refresh_interval: Duration::from_secs(config.refresh_interval_s),
            list: RwLock::new(Arc::new(KeyList::default())),
            refreshing: Mutex::new(()),
            ids: Mutex::new(ObjectIds::default()),
            generation: AtomicU64::new(1),
            changes: AtomicU64::new(0),
            recent: Mutex::new(Vec::new()),
            certificates: config.certificates,
            made_certificates: Mutex::new(HashMap::new()),
        }
    }

    /// The key list, fetched again when older than the refresh interval. While one thread
    /// fetches, others use the list they have; a failed fetch keeps the old list (logged) if
    /// there is one, so a service that is down for a moment does not make keys vanish.
    fn keys(&self) -> Result<Arc<KeyList>> {
        let current = self.list.read().clone();
        let fresh = current.fetched.is_some_and(|at| at.elapsed() < self.refresh_interval);
        if fresh {
            return Ok(current);
        }
        let _guard = match self.refreshing.try_lock() {
            Some(g) => g,
            None if current.fetched.is_some() => return Ok(current),
            None => self.refreshing.lock(),
        };
        // Another thread may have fetched while this one waited.
        let latest = self.list.read().clone();
        if latest.fetched.is_some_and(|at| at.elapsed() < self.refresh_interval) {
            return Ok(latest);
        }
        let changes = self.changes.load(Ordering::Acquire);
        match self.service.list_keys() {
            Ok(keys) => Ok(self.replace_list(keys, changes)),
            Err(e) if latest.fetched.is_some() => {
                tracing::warn!(slot = %self.label, service = %self.service.describe(), "key list not refreshed, using the last one: {e}");
                Ok(latest)
            }
            Err(e) => Err(e),
        }
    }

    /// Installs a fetched list; `changes` is the count of this token's own changes when the
    /// fetch began. A list that may predate one of them is used, but fetched again next time.
    fn replace_list(&self, mut keys: Vec<RemoteKey>, changes: u64) -> Arc<KeyList> {
        {
            let mut recent = self.recent.lock();
            recent.retain(|(_, at)| at.elapsed() < RECENT);
            for (made, _) in recent.iter() {
                if !keys.iter().any(|k| k.key_ref == made.key_ref && k.version == made.version) {
                    keys.push(made.clone());
                }
            }
        }
        let mut list = self.list.write();
        if list.keys != keys {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        let current = self.changes.load(Ordering::Acquire) == changes;
        let new = Arc::new(KeyList { keys, fetched: current.then(Instant::now) });
        *list = new.clone();
        new
    }

    /// This token made a key (`Ok`) or removed one (`Err`): the cached list shows a new key at
    /// once, and is fetched again before its next use.
    fn changed(&self, key: std::result::Result<&RemoteKey, &RemoteKey>) {
        let made = key.ok();
        self.changes.fetch_add(1, Ordering::AcqRel);
        let mut list = self.list.write();
        let mut keys = list.keys.clone();
        if let Err(gone) = key {
            keys.retain(|k| k.key_ref != gone.key_ref);
        }
        {
            let mut recent = self.recent.lock();
            match key {
                Ok(made) => recent.push((made.clone(), Instant::now())),
                Err(gone) => recent.retain(|(k, _)| k.key_ref != gone.key_ref),
            }
        }
        if let Some(key) = made {
            keys.retain(|k| !(k.key_ref == key.key_ref && k.version == key.version));
            keys.push(key.clone());
        }
        *list = Arc::new(KeyList { keys, fetched: None });
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn object_id(&self, key: &RemoteKey, half: Half) -> ObjectId {
        let mut ids = self.ids.lock();
        let name = (key.key_ref.clone(), key.version, half);
        if let Some(id) = ids.by_name.get(&name) {
            return *id;
        }
        ids.names.push(name.clone());
        let id = ids.names.len() as ObjectId;
        ids.by_name.insert(name, id);
        id
    }

    /// What `id` names: key reference, version and half.
    fn name_of(&self, id: ObjectId) -> Result<ObjectName> {
        let index = usize::try_from(id).ok().and_then(|i| i.checked_sub(1)).ok_or(rv(CKR_OBJECT_HANDLE_INVALID))?;
        self.ids.lock().names.get(index).cloned().ok_or(rv(CKR_OBJECT_HANDLE_INVALID))
    }

    /// The key and half an `ObjectId` names, in the current list.
    fn lookup(&self, id: ObjectId) -> Result<(RemoteKey, Half)> {
        let (key_ref, version, half) = self.name_of(id)?;
        let list = self.keys()?;
        let key = list
            .keys
            .iter()
            .find(|k| k.key_ref == key_ref && k.version == version)
            .cloned()
            .ok_or(rv(CKR_OBJECT_HANDLE_INVALID))?;
        Ok((key, half))
    }

    fn held_key(&self, id: ObjectId) -> Result<RemoteKey> {
        match self.lookup(id)? {
            (key, Half::Held) => Ok(key),
            // Public keys work locally; the core never asks the service for them.
            (_, Half::Public | Half::Certificate) => Err(rv(CKR_KEY_TYPE_INCONSISTENT)),
        }
    }

    /// The objects of a key: the held half (private or secret key) and, for an asymmetric
    /// key, the public key, and its certificate where the slot shows them.
    fn halves(&self, key: &RemoteKey) -> &'static [Half] {
        match key.spec {
            KeySpec::Aes256 => &[Half::Held],
            _ if self.certificates && certificate::applies(key) => &[Half::Held, Half::Public, Half::Certificate],
            _ => &[Half::Held, Half::Public],
        }
    }

    /// The self-signed certificate of `key`, made once (one signature in the service).
    fn certificate_of(&self, key: &RemoteKey) -> Result<Arc<Vec<u8>>> {
        let slot = (key.key_ref.clone(), key.version);
        if let Some(made) = self.made_certificates.lock().get(&slot) {
            return Ok(made.clone());
        }
        let der = certificate::self_signed(self.service.as_ref(), key)?.ok_or(rv(CKR_OBJECT_HANDLE_INVALID))?;
        let der = Arc::new(der);
        self.made_certificates.lock().insert(slot, der.clone());
        Ok(der)
    }

    /// The object `id` names; a certificate with its value only when `with_value` (making
    /// it may take a request).
    fn object(&self, key: &RemoteKey, half: Half, with_value: bool) -> Result<Object> {
        match half {
            Half::Certificate => {
                let value = if with_value { self.certificate_of(key)?.to_vec() } else { Vec::new() };
                Ok(certificate_object(key, value))
            }
            _ => key_object(key, half),
        }
    }
}

/// The certificate object of a key: the attributes PKCS#11 gives an X.509 certificate, with
/// the key's `CKA_ID` and `CKA_LABEL` (what Java pairs keys and certificates by).
fn certificate_object(key: &RemoteKey, value: Vec<u8>) -> Object {
    let mut o = Object::new();
    o.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    o.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    o.set_bool(CKA_TOKEN, true);
    o.set_bool(CKA_PRIVATE, false);
    o.set_bool(CKA_MODIFIABLE, false);
    o.set_bool(CKA_COPYABLE, false);
    // Destroying the key destroys it; it cannot go alone.
    o.set_bool(CKA_DESTROYABLE, false);
    o.set_bool(CKA_TRUSTED, false);
    o.set_ulong(CKA_CERTIFICATE_CATEGORY, CK_CERTIFICATE_CATEGORY_UNSPECIFIED);
    o.set_ulong(CKA_JAVA_MIDP_SECURITY_DOMAIN, 0);
    o.set_ulong(CKA_NAME_HASH_ALGORITHM, CKM_SHA_1);
    o.set(CKA_LABEL, key.label.as_bytes().to_vec());
    o.set(CKA_ID, key.id.clone());
    let name = certificate::subject(&key.label);
    o.set(CKA_SUBJECT, name.clone());
    o.set(CKA_ISSUER, name);
    o.set(CKA_SERIAL_NUMBER, certificate::serial_number(key));
    o.set(CKA_VALUE, value);
    for ty in [CKA_URL, CKA_HASH_OF_SUBJECT_PUBLIC_KEY, CKA_HASH_OF_ISSUER_PUBLIC_KEY, CKA_START_DATE, CKA_END_DATE] {
        o.set(ty, Vec::new());
    }
    o.set(CKA_UNIQUE_ID, format!("{}:{}:c", key.key_ref, key.version.unwrap_or(0)).into_bytes());
    o
}

/// The PKCS#11 object for one half of a service key. Every attribute is the token's: the
/// object can be neither changed nor copied, and the held half never reveals a secret.
fn key_object(key: &RemoteKey, half: Half) -> Result<Object> {
    let mut o = Object::new();
    let class = match (key.spec, half) {
        (KeySpec::Aes256, _) => CKO_SECRET_KEY,
        (_, Half::Held) => CKO_PRIVATE_KEY,
        (_, Half::Public) => CKO_PUBLIC_KEY,
        (_, Half::Certificate) => return Ok(certificate_object(key, Vec::new())),
    };
    o.set_ulong(CKA_CLASS, class);
    o.set_bool(CKA_TOKEN, true);
    o.set_bool(CKA_PRIVATE, class != CKO_PUBLIC_KEY);
    o.set_bool(CKA_MODIFIABLE, false);
    o.set_bool(CKA_COPYABLE, false);
    o.set_bool(CKA_DESTROYABLE, true);
    o.set(CKA_LABEL, key.label.as_bytes().to_vec());
    o.set(CKA_ID, key.id.clone());
    o.set(CKA_START_DATE, Vec::new());
    o.set(CKA_END_DATE, Vec::new());
    o.set_bool(CKA_DERIVE, false);
    // Made in the service; by which mechanism it does not say.
    o.set_bool(CKA_LOCAL, true);
    o.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
    o.set(CKA_UNIQUE_ID, format!("{}:{}:{}", key.key_ref, key.version.unwrap_or(0), if half == Half::Held { "h" } else { "p" }).into_bytes());
    let usable = key.enabled;
    if class == CKO_SECRET_KEY {
        o.set_ulong(CKA_KEY_TYPE, CKK_AES);
        o.set_ulong(CKA_VALUE_LEN, 32);
        for ty in [CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP] {
            o.set_bool(ty, usable && key.decrypt);
        }
        for ty in [CKA_SIGN, CKA_VERIFY, CKA_TRUSTED, CKA_WRAP_WITH_TRUSTED, CKA_EXTRACTABLE] {
            o.set_bool(ty, false);
        }
        for ty in [CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE] {
            o.set_bool(ty, true);
        }
        return Ok(o);
    }
    let spki = key.public_key_der.as_deref().ok_or_else(|| crate::error::Error::Service {
        rv: CKR_DEVICE_ERROR,
        message: format!("key {}: the service gave no public key", key.key_ref),
    })?;
    let (key_type, public) = crate::mechanism::keys::public_key_from_spki(spki)?;
    o.set_ulong(CKA_KEY_TYPE, key_type);
    o.set(CKA_SUBJECT, Vec::new());
    for (ty, value) in public.iter() {
        // A private key object carries the public values PKCS#11 lists for its type.
        if class == CKO_PRIVATE_KEY && !crate::object::policy::is_valid_attribute(class, ty) {
            continue;
        }
        o.set(ty, value.to_vec());
    }
    if class == CKO_PRIVATE_KEY {
        o.set_bool(CKA_SIGN, usable && key.sign);
        o.set_bool(CKA_DECRYPT, usable && key.decrypt);
        for ty in [CKA_SIGN_RECOVER, CKA_UNWRAP, CKA_EXTRACTABLE, CKA_WRAP_WITH_TRUSTED, CKA_ALWAYS_AUTHENTICATE] {
            o.set_bool(ty, false);
        }
        for ty in [CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE] {
            o.set_bool(ty, true);
        }
    } else {
        o.set_bool(CKA_VERIFY, key.sign);
        o.set_bool(CKA_ENCRYPT, key.decrypt);
        for ty in [CKA_VERIFY_RECOVER, CKA_WRAP, CKA_TRUSTED] {
            o.set_bool(ty, false);
        }
    }
    Ok(o)
}

/// What the service should make for a `C_GenerateKey`/`C_GenerateKeyPair` template.
fn new_key_request(mechanism: &Mechanism, public: &AttributeTemplate, private: &AttributeTemplate) -> Result<NewKey> {
    let spec = match mechanism.kind {
        CKM_AES_KEY_GEN => match private.get_ulong(CKA_VALUE_LEN)? {
            Some(32) | None => KeySpec::Aes256,
            Some(_) => return Err(rv(CKR_KEY_SIZE_RANGE)),
        },
        CKM_EC_KEY_PAIR_GEN => {
            crate::mechanism::keys::check_curve(public.get(CKA_EC_PARAMS).or(private.get(CKA_EC_PARAMS)), CKK_EC)?;
            KeySpec::EcP256
        }
        CKM_EC_EDWARDS_KEY_PAIR_GEN => {
            crate::mechanism::keys::check_curve(public.get(CKA_EC_PARAMS).or(private.get(CKA_EC_PARAMS)), CKK_EC_EDWARDS)?;
            KeySpec::Ed25519
        }
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            let bits = public.get_ulong(CKA_MODULUS_BITS)?.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
            if !matches!(bits, 2048 | 3072 | 4096) {
                return Err(rv(CKR_KEY_SIZE_RANGE));
            }
            if let Some(e) = public.get(CKA_PUBLIC_EXPONENT) {
                let trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
                if trimmed != [1, 0, 1] {
                    // The services make keys with e = 65537 only.
                    return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
                }
            }
            KeySpec::Rsa(bits as u32)
        }
        _ => return Err(rv(CKR_MECHANISM_INVALID)),
    };
    // A service key is never extractable and always sensitive.
    for template in [public, private] {
        if template.get_bool(CKA_EXTRACTABLE)? == Some(true) || template.get_bool(CKA_SENSITIVE)? == Some(false) {
            return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
        }
    }
    let wants = |ty| -> Result<bool> { Ok(private.get_bool(ty)? == Some(true) || public.get_bool(ty)? == Some(true)) };
    let sign = match spec {
        KeySpec::EcP256 | KeySpec::Ed25519 => true,
        KeySpec::Aes256 => false,
        // RSA keys are for signing unless the template asks for decryption only.
        KeySpec::Rsa(_) => wants(CKA_SIGN)? || wants(CKA_VERIFY)? || !(wants(CKA_DECRYPT)? || wants(CKA_ENCRYPT)?),
    };
    let label = private.get(CKA_LABEL).or(public.get(CKA_LABEL)).filter(|l| !l.is_empty());
    let label = match label {
        Some(l) => Some(String::from_utf8(l.to_vec()).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?),
        None => None,
    };
    Ok(NewKey { spec, sign, label })
}

impl Backend for CloudToken {
    fn token_info(&self) -> Result<TokenInfo> {
        Ok(TokenInfo {
            manufacturer: "keyfront".into(),
            hardware_version: crate::LIBRARY_VERSION,
            firmware_version: crate::LIBRARY_VERSION,
            label: self.label.clone(),
            model: "cloud KMS".into(),
            serial: {
                let digest = sha2::Sha256::digest(self.service.describe().as_bytes());
                digest[..8].iter().map(|b| format!("{b:02x}")).collect()
            },
            flags: CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_RNG,
            min_pin_len: 0,
            max_pin_len: 255,
        })
    }

    fn mechanisms(&self) -> Vec<CK_MECHANISM_TYPE> {
        crate::mechanism::MECHANISMS.iter().chain(crate::mechanism::SERVICE_MECHANISMS).map(|m| m.kind).collect()
    }

    fn init_token(&self, _so_pin: &[u8], _label: &str) -> Result<()> {
        // The service's keys are not keyfront's to erase.
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn init_pin(&self, _pin: &[u8]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn set_pin(&self, _user: UserType, _old_pin: &[u8], _new_pin: &[u8]) -> Result<()> {
        // The PIN is the slot's `pin_sha256`, changed in the configuration.
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }

    fn login(&self, _user: UserType, pin: &[u8]) -> Result<()> {
        self.verify_user_pin(pin)
    }

    fn verify_user_pin(&self, pin: &[u8]) -> Result<()> {
        match &self.pin_sha256 {
            None => Ok(()),
            Some(want) => {
                let got = sha2::Sha256::digest(pin);
                if bool::from(got.as_slice().ct_eq(want)) {
                    Ok(())
                } else {
                    Err(rv(CKR_PIN_INCORRECT))
                }
            }
        }
    }

    fn logout(&self) {}

    fn generation(&self) -> Result<u64> {
        self.keys()?;
        Ok(self.generation.load(Ordering::Acquire))
    }

    fn create_object(&self, _object: &Object) -> Result<ObjectId> {
        // Keys are made by the service (C_GenerateKey/C_GenerateKeyPair), never imported;
        // session objects stay with the core.
        Err(rv(CKR_ATTRIBUTE_VALUE_INVALID))
    }

    fn read_object(&self, id: ObjectId, _with_secrets: bool) -> Result<Object> {
        let (key, half) = self.lookup(id)?;
        self.object(&key, half, true)
    }

    fn update_object(&self, _id: ObjectId, _object: &Object, _changed: &[CK_ATTRIBUTE_TYPE]) -> Result<()> {
        Err(rv(CKR_ACTION_PROHIBITED))
    }

    fn destroy_object(&self, id: ObjectId) -> Result<()> {
        let (key, half) = self.lookup(id)?;
        if half == Half::Certificate {
            return Err(rv(CKR_ACTION_PROHIBITED));
        }
        self.service.delete_key(&key)?;
        self.changed(Err(&key));
        Ok(())
    }

    fn find_objects(&self, template: &AttributeTemplate, include_private: bool) -> Result<Vec<ObjectId>> {
        let list = self.keys()?;
        let mut found = Vec::new();
        // Certificates are matched without their value (it takes a signature to make) unless
        // the template asks for one.
        let with_value = template.contains(CKA_VALUE);
        for key in &list.keys {
            for &half in self.halves(key) {
                let object = match self.object(key, half, with_value) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(slot = %self.label, key = %key.key_ref, "key left out: {e}");
                        continue;
                    }
                };
                if (include_private || !object.is_private()) && object.matches(template) {
                    found.push(self.object_id(key, half));
                }
            }
        }
        Ok(found)
    }

    fn keys_in_service(&self) -> bool {
        true
    }

    fn is_service_key(&self, id: ObjectId) -> bool {
        // The core found the object already: which half it is needs no key list.
        matches!(self.name_of(id), Ok((_, _, Half::Held)))
    }

    fn service_signer(&self, id: ObjectId, mechanism: &Mechanism) -> Result<Box<dyn Signer>> {
        let key = self.held_key(id)?;
        Ok(Box::new(ServiceSigner::new(self.service.clone(), key, mechanism)?))
    }

    fn service_cipher(&self, id: ObjectId, mechanism: &Mechanism, encrypt: bool) -> Result<Box<dyn Cipher>> {
        let key = self.held_key(id)?;
        Ok(Box::new(ServiceCipher::new(self.service.clone(), key, mechanism, encrypt)?))
    }

    fn service_generate_key(&self, mechanism: &Mechanism, template: &AttributeTemplate) -> Option<Result<ObjectId>> {
        match template.get_bool(CKA_TOKEN) {
            Ok(Some(true)) => {}
            Ok(_) => return None,
            Err(e) => return Some(Err(e)),
        }
        Some((|| {
            mechanism.no_param()?;
            let request = new_key_request(mechanism, &AttributeTemplate::new(), template)?;
            let key = self.service.create_key(&request)?;
            self.changed(Ok(&key));
            Ok(self.object_id(&key, Half::Held))
        })())
    }

    fn service_generate_key_pair(
        &self,
        mechanism: &Mechanism,
        public: &AttributeTemplate,
        private: &AttributeTemplate,
    ) -> Option<Result<(ObjectId, ObjectId)>> {
        match private.get_bool(CKA_TOKEN) {
            Ok(Some(true)) => {}
            Ok(_) => return None,
            Err(e) => return Some(Err(e)),
        }
        Some((|| {
            let request = new_key_request(mechanism, public, private)?;
            let key = self.service.create_key(&request)?;
            self.changed(Ok(&key));
            Ok((self.object_id(&key, Half::Public), self.object_id(&key, Half::Held)))
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::encode_ulong;

    fn ec_key() -> RemoteKey {
        use p256::elliptic_curve::Generate;
        use spki::EncodePublicKey;
        let secret = p256::SecretKey::generate();
        let spki = secret.public_key().to_public_key_der().unwrap().as_bytes().to_vec();
        RemoteKey {
            key_ref: "k1".into(),
            version: None,
            label: "signer".into(),
            id: vec![0xab; 16],
            spec: KeySpec::EcP256,
            sign: true,
            decrypt: false,
            enabled: true,
            public_key_der: Some(spki),
        }
    }

    #[test]
    fn a_private_key_object_reveals_nothing_secret() {
        let o = key_object(&ec_key(), Half::Held).unwrap();
        assert_eq!(o.class(), CKO_PRIVATE_KEY);
        assert!(o.flag(CKA_SENSITIVE) && !o.flag(CKA_EXTRACTABLE) && o.flag(CKA_SIGN) && o.flag(CKA_PRIVATE));
        assert!(o.get(CKA_VALUE).is_none());
        assert!(o.get(CKA_EC_PARAMS).is_some() && o.get(CKA_PUBLIC_KEY_INFO).is_some());
        let p = key_object(&ec_key(), Half::Public).unwrap();
        assert_eq!(p.class(), CKO_PUBLIC_KEY);
        assert!(p.get(CKA_EC_POINT).is_some() && p.flag(CKA_VERIFY) && !p.flag(CKA_PRIVATE));
    }

    #[test]
    fn a_disabled_key_cannot_be_used() {
        let mut key = ec_key();
        key.enabled = false;
        assert!(!key_object(&key, Half::Held).unwrap().flag(CKA_SIGN));
    }

    #[test]
    fn key_requests_follow_the_template() {
        let rsa = Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN, crate::mechanism::MechanismParam::None);
        let public = AttributeTemplate::new().with(CKA_MODULUS_BITS, encode_ulong(3072));
        let private = AttributeTemplate::new().with(CKA_DECRYPT, crate::object::encode_bool(true)).with(CKA_LABEL, b"dec".to_vec());
        let request = new_key_request(&rsa, &public, &private).unwrap();
        assert_eq!((request.spec, request.sign, request.label.as_deref()), (KeySpec::Rsa(3072), false, Some("dec")));
        let signing = new_key_request(&rsa, &public, &AttributeTemplate::new()).unwrap();
        assert!(signing.sign);
        let odd = AttributeTemplate::new().with(CKA_MODULUS_BITS, encode_ulong(1024));
        assert_eq!(new_key_request(&rsa, &odd, &private).err().map(|e| e.rv()), Some(CKR_KEY_SIZE_RANGE));
        let e3 = public.clone().with(CKA_PUBLIC_EXPONENT, vec![3]);
        assert_eq!(new_key_request(&rsa, &e3, &private).err().map(|e| e.rv()), Some(CKR_ATTRIBUTE_VALUE_INVALID));
        let extractable = private.clone().with(CKA_EXTRACTABLE, crate::object::encode_bool(true));
        assert_eq!(new_key_request(&rsa, &public, &extractable).err().map(|e| e.rv()), Some(CKR_ATTRIBUTE_VALUE_INVALID));
        let ec = Mechanism::new(CKM_EC_KEY_PAIR_GEN, crate::mechanism::MechanismParam::None);
        assert_eq!(new_key_request(&ec, &AttributeTemplate::new(), &private).err().map(|e| e.rv()), Some(CKR_TEMPLATE_INCOMPLETE));
    }
}

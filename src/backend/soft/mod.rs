//! The soft token: objects in an SQLite file, secret attributes sealed under a token key that
//! only a PIN unlocks. Every read goes to the file, so several processes sharing one token see
//! each other's changes at once.

mod seal;
mod store;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cryptoki_sys::*;
use parking_lot::RwLock;
use rusqlite::{params, params_from_iter, Connection};

use super::{Backend, ObjectId, TokenInfo, UserType};
use crate::error::{rv, Error, Result};
use crate::object::policy::{is_secret_component, must_seal};
use crate::object::{AttributeTemplate, Object};
pub use seal::{DEFAULT_KDF_ITERATIONS, MAX_KDF_ITERATIONS, MIN_KDF_ITERATIONS};
use seal::{random_bytes, TokenKey};
use store::{meta_delete, meta_get, meta_set, Store};

/// Consecutive wrong PINs after which a PIN is locked.
pub const MAX_PIN_FAILURES: i64 = 10;
pub const MIN_PIN_LEN: usize = 4;
pub const MAX_PIN_LEN: usize = 255;

/// What a soft slot is configured with.
#[derive(Clone, Debug)]
pub struct SoftConfig {
    pub path: PathBuf,
    /// Shown as the token label until `C_InitToken` sets one.
    pub label: String,
    pub kdf_iterations: u32,
}

pub struct SoftToken {
    config: SoftConfig,
    /// Opened on first use, so `C_Initialize` does no I/O.
    store: OnceLock<Store>,
    /// Present while a user or the SO is logged in in this process.
    token_key: RwLock<Option<Arc<Login>>>,
}

/// This process's login to the token: the token key, and which one it is. Another process
/// may re-initialise the token meanwhile, discarding that key: what was sealed under it is
/// gone, and nothing may be sealed under it any more.
struct Login {
    key: TokenKey,
    /// meta `key_id` when the key was unwrapped; `None` for a token initialised before
    /// keyfront kept one (a re-initialisation then sets one, which differs).
    key_id: Option<Vec<u8>>,
    /// The token generation at which `key_id` was last found current (`u64::MAX`: never).
    checked: AtomicU64,
}

fn role(user: UserType) -> (&'static str, &'static str, &'static [u8]) {
    match user {
        UserType::User => ("user_wrap", "user_failures", b"user"),
        UserType::So => ("so_wrap", "so_failures", b"so"),
    }
}

impl SoftToken {
    pub fn new(config: SoftConfig) -> Self {
        Self { config, store: OnceLock::new(), token_key: RwLock::new(None) }
    }

    /// The token key of this process's login, if it still is the token's: the token's
    /// identity is read again whenever the token changed. A login whose key was discarded
    /// ends here: every use of it fails with `CKR_USER_NOT_LOGGED_IN` from now on.
    fn current_key(&self) -> Result<Option<TokenKey>> {
        let Some(login) = self.token_key.read().clone() else { return Ok(None) };
        let store = self.store()?;
        let generation = store.generation()?;
        if login.checked.load(Ordering::Acquire) == generation {
            return Ok(Some(login.key.clone()));
        }
        let key_id: Option<Vec<u8>> = meta_get(&*store.conn()?, "key_id")?;
        if self.still_current(&login, key_id) {
            login.checked.store(generation, Ordering::Release);
            Ok(Some(login.key.clone()))
        } else {
            Ok(None)
        }
    }

    /// The token key of this process's login, checked against the token inside a write
    /// transaction: nothing is sealed under a key another process has discarded.
    fn key_in(&self, tx: &Connection) -> Result<TokenKey> {
        let login = self.token_key.read().clone().ok_or(rv(CKR_USER_NOT_LOGGED_IN))?;
        if self.still_current(&login, meta_get(tx, "key_id")?) {
            Ok(login.key.clone())
        } else {
            Err(rv(CKR_USER_NOT_LOGGED_IN))
        }
    }

    /// Whether `login` holds the token's key (`key_id` as the token has it now); if not, the
    /// login ends.
    fn still_current(&self, login: &Arc<Login>, key_id: Option<Vec<u8>>) -> bool {
        if key_id == login.key_id {
            return true;
        }
        let mut held = self.token_key.write();
        if held.as_ref().is_some_and(|h| Arc::ptr_eq(h, login)) {
            *held = None;
            tracing::warn!(token = %self.config.path.display(), "token re-initialised by another process: this process's login ended");
        }
        false
    }

    fn store(&self) -> Result<&Store> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let opened = Store::open(&self.config.path)?;
        {
            let conn = opened.conn()?;
            if meta_get::<String>(&conn, "serial")?.is_none() {
                let serial: String = random_bytes::<8>()?.iter().map(|b| format!("{b:02x}")).collect();
                // Two processes may race to create the file; the first serial wins.
                conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('serial', ?1)", params![serial])?;
            }
        }
        // Another thread may have opened it meanwhile; either store is equally good.
        let _ = self.store.set(opened);
        Ok(self.store.get().expect("store just set"))
    }

    fn key(&self) -> Result<TokenKey> {
        self.current_key()?.ok_or(rv(CKR_USER_NOT_LOGGED_IN))
    }

    fn check_pin_len(pin: &[u8]) -> Result<()> {
        if (MIN_PIN_LEN..=MAX_PIN_LEN).contains(&pin.len()) {
            Ok(())
        } else {
            Err(rv(CKR_PIN_LEN_RANGE))
        }
    }

    /// Unwraps the token key with `pin`, counting failures in the file so that the lock-out
    /// holds across processes. The attempt is counted before the slow KDF and forgiven after
    /// it succeeds, so parallel guesses cannot run past the limit.
    fn unlock(&self, user: UserType, pin: &[u8]) -> Result<(TokenKey, Option<Vec<u8>>)> {
        let store = self.store()?;
        let (wrap_name, failures_name, role) = role(user);
        let reserve = store.write(|tx| {
            let blob: Option<Vec<u8>> = meta_get(tx, wrap_name)?;
            let failures: i64 = meta_get(tx, failures_name)?.unwrap_or(0);
            if blob.is_some() && failures < MAX_PIN_FAILURES {
                meta_set(tx, failures_name, failures + 1)?;
            }
            // Read with the wrapped key, so the two belong to one initialisation.
            let key_id: Option<Vec<u8>> = meta_get(tx, "key_id")?;
            Ok((blob, failures, key_id))
        });
        // A token that cannot be written (read-only file, full disk) cannot count attempts
        // either; its keys stay usable.
        let (blob, attempt, key_id) = match reserve {
            Err(e) if matches!(e.rv(), CKR_TOKEN_WRITE_PROTECTED | CKR_DEVICE_MEMORY) => {
                let conn = store.conn()?;
                let tx = conn.unchecked_transaction()?;
                let blob: Option<Vec<u8>> = meta_get(&tx, wrap_name)?;
                (blob, meta_get(&tx, failures_name)?.unwrap_or(0), meta_get(&tx, "key_id")?)
            }
            other => other?,
        };
        let Some(blob) = blob else {
            return Err(rv(match user {
                UserType::User => CKR_USER_PIN_NOT_INITIALIZED,
                UserType::So => CKR_TOKEN_NOT_RECOGNIZED,
            }));
        };
        if attempt >= MAX_PIN_FAILURES {
            return Err(rv(CKR_PIN_LOCKED));
        }
        // The slow KDF runs with no lock held.
        let result = TokenKey::unwrap_with_pin(&blob, pin, role);
        match &result {
            Ok(_) => {
                if let Err(e) = store.write(|tx| meta_set(tx, failures_name, 0i64)) {
                    tracing::warn!(token = %self.config.path.display(), "cannot reset the failed-login counter: {e}");
                }
            }
            Err(e) if e.rv() == CKR_PIN_INCORRECT => {
                tracing::info!(token = %self.config.path.display(), ?user, "wrong PIN");
            }
            Err(_) => {}
        }
        result.map(|key| (key, key_id))
    }

    fn load(&self, conn: &Connection, id: ObjectId, with_secrets: bool) -> Result<Object> {
        let (uid, private): (Vec<u8>, bool) = conn
            .query_row("SELECT uid, private FROM objects WHERE id = ?1", params![id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => rv(CKR_OBJECT_HANDLE_INVALID),
                e => e.into(),
            })?;
        // A private object is this process's to read only with the token's current key
        // (the core hides it from a process logged out); a login that lost its key must not
        // read the private objects of whoever re-initialised the token.
        let key = if with_secrets || private { self.current_key()? } else { None };
        if private && key.is_none() {
            return Err(rv(CKR_USER_NOT_LOGGED_IN));
        }
        let mut stmt = conn.prepare_cached("SELECT type, value, sealed FROM attributes WHERE object_id = ?1")?;
        let mut rows = stmt.query(params![id])?;
        // Sealed values are opened only when asked for. Asked for without the token key
        // (nobody logged in in this process), the read fails rather than leave them out: a
        // caller that wanted them would otherwise act on an object without its key value
        // (a copy stored without CKA_VALUE, say).
        let key = if with_secrets { key } else { None };
        let mut object = Object::new();
        while let Some(row) = rows.next()? {
            let ty = row.get::<_, i64>(0)? as CK_ATTRIBUTE_TYPE;
            let sealed: bool = row.get(2)?;
            let value = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            if !sealed {
                object.set(ty, value.to_vec());
            } else if let Some(key) = &key {
                let opened = key.open(&uid, ty, value)?;
                object.set(ty, opened.to_vec());
            } else if with_secrets {
                return Err(rv(CKR_USER_NOT_LOGGED_IN));
            }
        }
        Ok(object)
    }

    fn insert_attributes(&self, tx: &Connection, id: ObjectId, uid: &[u8], object: &Object, types: &[CK_ATTRIBUTE_TYPE]) -> Result<()> {
        // A private object is written only under the token's current login, sealed or not.
        let mut key: Option<TokenKey> = if object.is_private() { Some(self.key_in(tx)?) } else { None };
        let mut stmt = tx.prepare_cached(
            "INSERT INTO attributes (object_id, type, value, sealed) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(object_id, type) DO UPDATE SET value = excluded.value, sealed = excluded.sealed",
        )?;
        for &ty in types {
            let Some(value) = object.get(ty) else { continue };
            if must_seal(object, ty) {
                if key.is_none() {
                    key = Some(self.key_in(tx)?);
                }
                let sealed = key.as_ref().expect("key set above").seal(uid, ty, value)?;
                stmt.execute(params![id, ty as i64, sealed, true])?;
            } else {
                stmt.execute(params![id, ty as i64, value, false])?;
            }
        }
        Ok(())
    }
}

impl Backend for SoftToken {
    fn token_info(&self) -> Result<TokenInfo> {
        let store = self.store()?;
        let conn = store.conn()?;
        let serial: String = meta_get(&conn, "serial")?.unwrap_or_default();
        let label: Option<String> = meta_get(&conn, "label")?;
        let initialized = meta_get::<Vec<u8>>(&conn, "so_wrap")?.is_some();
        let user_pin = meta_get::<Vec<u8>>(&conn, "user_wrap")?.is_some();
        let user_failures: i64 = meta_get(&conn, "user_failures")?.unwrap_or(0);
        let so_failures: i64 = meta_get(&conn, "so_failures")?.unwrap_or(0);
        let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED;
        if store.is_read_only() {
            flags |= CKF_WRITE_PROTECTED;
        }
        if initialized {
            flags |= CKF_TOKEN_INITIALIZED;
        }
        if user_pin {
            flags |= CKF_USER_PIN_INITIALIZED;
        }
        flags |= pin_flags(user_failures, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
        flags |= pin_flags(so_failures, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
        Ok(TokenInfo {
            manufacturer: "keyfront".into(),
            hardware_version: crate::LIBRARY_VERSION,
            firmware_version: crate::LIBRARY_VERSION,
            label: label.unwrap_or_else(|| self.config.label.clone()),
            model: "soft token".into(),
            serial,
            flags,
            min_pin_len: MIN_PIN_LEN,
            max_pin_len: MAX_PIN_LEN,
        })
    }

    fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()> {
        Self::check_pin_len(so_pin)?;
        let store = self.store()?;
        let initialized = meta_get::<Vec<u8>>(&*store.conn()?, "so_wrap")?.is_some();
        if initialized {
            self.unlock(UserType::So, so_pin)?;
        }
        let key = TokenKey::generate()?;
        let so_wrap = key.wrap_under_pin(so_pin, self.config.kdf_iterations, b"so")?;
        // Names this token key: a process still logged in under the one discarded here sees
        // the change and ends its login.
        let key_id = random_bytes::<16>()?;
        store.write(|tx| {
            tx.execute("DELETE FROM objects", [])?;
            meta_set(tx, "so_wrap", so_wrap)?;
            meta_set(tx, "key_id", key_id.as_slice())?;
            meta_delete(tx, "user_wrap")?;
            meta_set(tx, "label", label.trim_end().to_string())?;
            meta_set(tx, "so_failures", 0i64)?;
            meta_set(tx, "user_failures", 0i64)?;
            Ok(())
        })?;
        *self.token_key.write() = None;
        tracing::info!(token = %store.path().display(), "token initialised");
        Ok(())
    }

    fn init_pin(&self, pin: &[u8]) -> Result<()> {
        Self::check_pin_len(pin)?;
        let key = self.key()?;
        let wrapped = key.wrap_under_pin(pin, self.config.kdf_iterations, b"user")?;
        self.store()?.write(|tx| {
            // Re-initialised by another process during the KDF: the wrapped key is not the
            // token's any more.
            self.key_in(tx)?;
            meta_set(tx, "user_wrap", wrapped)?;
            meta_set(tx, "user_failures", 0i64)
        })
    }

    fn set_pin(&self, user: UserType, old_pin: &[u8], new_pin: &[u8]) -> Result<()> {
        Self::check_pin_len(new_pin)?;
        let (key, key_id) = self.unlock(user, old_pin)?;
        let (wrap_name, failures_name, role) = role(user);
        let wrapped = key.wrap_under_pin(new_pin, self.config.kdf_iterations, role)?;
        self.store()?.write(|tx| {
            // Re-initialised by another process during the KDF: the old PIN is not the
            // token's PIN any more, and the key it opened is not the token's key.
            if meta_get::<Vec<u8>>(tx, "key_id")? != key_id {
                return Err(rv(CKR_PIN_INCORRECT));
            }
            meta_set(tx, wrap_name, wrapped)?;
            meta_set(tx, failures_name, 0i64)
        })
    }

    fn login(&self, user: UserType, pin: &[u8]) -> Result<()> {
        let (key, key_id) = self.unlock(user, pin)?;
        *self.token_key.write() = Some(Arc::new(Login { key, key_id, checked: AtomicU64::new(u64::MAX) }));
        Ok(())
    }

    fn verify_user_pin(&self, pin: &[u8]) -> Result<()> {
        self.unlock(UserType::User, pin).map(drop)
    }

    fn logout(&self) {
        *self.token_key.write() = None;
    }

    fn generation(&self) -> Result<u64> {
        self.store()?.generation()
    }

    fn create_object(&self, object: &Object) -> Result<ObjectId> {
        let uid = random_bytes::<16>()?;
        let types: Vec<CK_ATTRIBUTE_TYPE> = object.iter().map(|(t, _)| t).collect();
        self.store()?.write(|tx| {
            tx.execute("INSERT INTO objects (uid, private) VALUES (?1, ?2)", params![uid.as_slice(), object.is_private()])?;
            let id = tx.last_insert_rowid();
            self.insert_attributes(tx, id, &uid, object, &types)?;
            Ok(id)
        })
    }

    fn read_object(&self, id: ObjectId, with_secrets: bool) -> Result<Object> {
        let conn = self.store()?.conn()?;
        self.load(&conn, id, with_secrets)
    }

    fn update_object(&self, id: ObjectId, object: &Object, changed: &[CK_ATTRIBUTE_TYPE]) -> Result<()> {
        self.store()?.write(|tx| {
            let uid: Vec<u8> = tx
                .query_row("SELECT uid FROM objects WHERE id = ?1", params![id], |r| r.get(0))
                .map_err(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => rv(CKR_OBJECT_HANDLE_INVALID),
                    e => Error::from(e),
                })?;
            self.insert_attributes(tx, id, &uid, object, changed)
        })
    }

    fn destroy_object(&self, id: ObjectId) -> Result<()> {
        let deleted = self.store()?.write(|tx| Ok(tx.execute("DELETE FROM objects WHERE id = ?1", params![id])?))?;
        if deleted == 0 {
            return Err(rv(CKR_OBJECT_HANDLE_INVALID));
        }
        Ok(())
    }

    fn find_objects(&self, template: &AttributeTemplate, include_private: bool) -> Result<Vec<ObjectId>> {
        // Attributes that may be sealed cannot be matched in SQL: those are compared after
        // opening the candidates.
        let (sealable, indexed): (Vec<_>, Vec<_>) =
            template.iter().partition(|(ty, _)| is_secret_component(CKO_SECRET_KEY, *ty) || *ty == CKA_VALUE);
        if include_private && self.current_key()?.is_none() {
            // The core counts this process logged in, but its login lost its key (another
            // process re-initialised the token): it says so, and ends the login.
            return Err(rv(CKR_USER_NOT_LOGGED_IN));
        }
        let (sql, values) = finder_query(include_private, &indexed);
        let conn = self.store()?.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let ids: Vec<ObjectId> = stmt.query_map(params_from_iter(values), |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        if sealable.is_empty() {
            return Ok(ids);
        }
        let rest: AttributeTemplate = AttributeTemplate { attrs: sealable.iter().map(|(t, v)| (*t, v.to_vec().into())).collect() };
        let mut found = Vec::new();
        for id in ids {
            let object = match self.load(&conn, id, true) {
                Ok(o) => o,
                // Destroyed meanwhile, or sealed values this process cannot open: a value
                // that cannot be read does not match.
                Err(e) if matches!(e.rv(), CKR_OBJECT_HANDLE_INVALID | CKR_USER_NOT_LOGGED_IN) => continue,
                Err(e) => return Err(e),
            };
            if object.matches(&rest) {
                found.push(id);
            }
        }
        Ok(found)
    }
}

/// The SQL that finds the objects whose unsealed attributes match `indexed`, with its
/// parameters: one lookup in `attributes_by_value` per attribute.
fn finder_query(include_private: bool, indexed: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("SELECT id FROM objects WHERE (private = 0 OR ?1)");
    let mut values: Vec<rusqlite::types::Value> = vec![include_private.into()];
    if !indexed.is_empty() {
        sql.push_str(" AND id IN (");
        for (i, (ty, value)) in indexed.iter().enumerate() {
            if i > 0 {
                sql.push_str(" INTERSECT ");
            }
            sql.push_str(&format!(
                "SELECT object_id FROM attributes WHERE type = ?{} AND value = ?{} AND sealed = 0",
                values.len() + 1,
                values.len() + 2
            ));
            values.push((*ty as i64).into());
            values.push(value.to_vec().into());
        }
        sql.push(')');
    }
    sql.push_str(" ORDER BY id");
    (sql, values)
}

fn pin_flags(failures: i64, low: CK_FLAGS, final_try: CK_FLAGS, locked: CK_FLAGS) -> CK_FLAGS {
    match failures {
        0 => 0,
        f if f >= MAX_PIN_FAILURES => locked,
        f if f == MAX_PIN_FAILURES - 1 => low | final_try,
        _ => low,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(path: &std::path::Path) -> SoftToken {
        SoftToken::new(SoftConfig { path: path.to_path_buf(), label: "t".into(), kdf_iterations: MIN_KDF_ITERATIONS })
    }

    /// Initialises the token with `so_pin`, sets `user_pin` and logs the user in.
    fn initialise_and_log_in(t: &SoftToken, user_pin: &[u8]) {
        t.init_token(b"so-pin", "t").unwrap();
        t.login(UserType::So, b"so-pin").unwrap();
        t.init_pin(user_pin).unwrap();
        t.logout();
        t.login(UserType::User, user_pin).unwrap();
    }

    fn private_data(value: &[u8]) -> Object {
        let mut o = Object::new();
        o.set_ulong(CKA_CLASS, CKO_DATA);
        o.set_bool(CKA_TOKEN, true);
        o.set_bool(CKA_PRIVATE, true);
        o.set(CKA_VALUE, value.to_vec());
        o
    }

    /// Two handles on one file stand for two processes: when one re-initialises the token,
    /// the other's login ends at its next use of the token key, and nothing more is sealed
    /// under the discarded key or read with it.
    #[test]
    fn login_ends_when_another_process_reinitialises() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (mine, other) = (token(&path), token(&path));
        initialise_and_log_in(&mine, b"user-pin");
        let old = mine.create_object(&private_data(b"old secret")).unwrap();
        assert_eq!(mine.read_object(old, true).unwrap().get(CKA_VALUE), Some(&b"old secret"[..]));
        assert_eq!(mine.find_objects(&AttributeTemplate::new(), true).unwrap(), vec![old]);

        initialise_and_log_in(&other, b"new-user-pin");
        let theirs = other.create_object(&private_data(b"new secret")).unwrap();

        // A write checks the key inside its transaction, at once.
        assert_eq!(mine.create_object(&private_data(b"sealed under the old key")).err().unwrap().rv(), CKR_USER_NOT_LOGGED_IN);
        assert!(mine.token_key.read().is_none(), "the login did not end");
        assert_eq!(mine.find_objects(&AttributeTemplate::new(), true).err().unwrap().rv(), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(mine.find_objects(&AttributeTemplate::new(), false).unwrap(), Vec::<ObjectId>::new());
        assert_eq!(mine.read_object(theirs, false).err().unwrap().rv(), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(mine.read_object(old, false).err().unwrap().rv(), CKR_OBJECT_HANDLE_INVALID);
        assert_eq!(mine.init_pin(b"stale-pin").err().unwrap().rv(), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(other.find_objects(&AttributeTemplate::new(), true).unwrap(), vec![theirs]);
        assert_eq!(other.read_object(theirs, true).unwrap().get(CKA_VALUE), Some(&b"new secret"[..]));

        // Logging in again with the new PIN works; the old one is gone.
        assert_eq!(mine.login(UserType::User, b"user-pin").err().unwrap().rv(), CKR_PIN_INCORRECT);
        mine.login(UserType::User, b"new-user-pin").unwrap();
        assert_eq!(mine.read_object(theirs, true).unwrap().get(CKA_VALUE), Some(&b"new secret"[..]));
    }

    /// A read notices the change too, once the token's generation moved on for this process
    /// (within `GENERATION_RECHECK` of the other's write).
    #[test]
    fn reads_notice_reinitialisation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (mine, other) = (token(&path), token(&path));
        initialise_and_log_in(&mine, b"user-pin");
        assert!(mine.current_key().unwrap().is_some());
        other.init_token(b"so-pin", "t").unwrap();
        std::thread::sleep(store::GENERATION_RECHECK * 3);
        assert!(mine.current_key().unwrap().is_none(), "a discarded key is still in use");
        assert!(mine.token_key.read().is_none());
    }

    /// Every unsealed attribute of a find template is one lookup in `attributes_by_value`,
    /// never a scan of the attributes table (which grows with every object's every
    /// attribute).
    #[test]
    fn finder_uses_the_value_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let conn = store.conn().unwrap();
        let (label, id, class) = (b"label".to_vec(), vec![1u8], crate::object::encode_ulong(CKO_SECRET_KEY));
        let templates: [&[(CK_ATTRIBUTE_TYPE, &[u8])]; 3] =
            [&[(CKA_LABEL, &label)], &[(CKA_LABEL, &label), (CKA_ID, &id)], &[(CKA_CLASS, &class), (CKA_LABEL, &label), (CKA_ID, &id)]];
        for indexed in templates {
            let (sql, values) = finder_query(true, indexed);
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> =
                stmt.query_map(params_from_iter(values), |r| r.get(3)).unwrap().collect::<rusqlite::Result<_>>().unwrap();
            let lookups = plan.iter().filter(|d| d.starts_with("SEARCH attributes USING") && d.contains("INDEX attributes_by_value")).count();
            assert_eq!(lookups, indexed.len(), "{plan:#?}");
            assert!(!plan.iter().any(|d| d.starts_with("SCAN attributes")), "{plan:#?}");
        }
    }
}

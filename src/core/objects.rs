//! Object handles and the object functions. Session objects live here in memory; token
//! objects live in the slot's backend and get a handle the first time they are seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cryptoki_sys::*;

use super::HandleMap;
use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::{Mutex, RwLock};

use super::slot::{LoginState, Slot};
use super::{Module, Session};
use crate::backend::ObjectId;
use crate::error::{rv, Result};
use crate::mechanism::aes;
use crate::object::policy::{self, Caller, Origin};
use crate::object::{AttrRead, AttributeTemplate, Object};

#[derive(Clone)]
enum Location {
    // Every key operation reads these; `ArcSwap` reads write nothing shared, so threads
    // using one key do not contend here.
    Session { owner: CK_SESSION_HANDLE, object: Arc<ArcSwap<Object>> },
    Token { id: ObjectId, cache: Arc<ArcSwapOption<CachedObject>> },
    /// An object a remote backend keeps (token or session object); `owner` is the keyfront
    /// session that created it, when it is a session object.
    Remote { id: ObjectId, owner: Option<CK_SESSION_HANDLE> },
}

/// A token object as last read, reused while the token reports no change and the login
/// state is the same: key operations then need no read from the store.
struct CachedObject {
    generation: u64,
    login_epoch: u64,
    with_secrets: bool,
    object: Arc<Object>,
}

#[derive(Clone)]
struct Entry {
    slot_id: CK_SLOT_ID,
    location: Location,
}

/// A lock whose reads are spread over per-thread shards: every key operation looks its key
/// up in the object table, and threads sharing a key would otherwise all write the one
/// lock word. Writes (objects made and destroyed) take every shard. A panic while it is
/// held is caught at the ABI; the table stays usable, so poisoning is ignored.
#[derive(Default)]
struct ReadMostly<T>(crossbeam_utils::sync::ShardedLock<T>);

impl<T> ReadMostly<T> {
    fn read(&self) -> crossbeam_utils::sync::ShardedLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> crossbeam_utils::sync::ShardedLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
pub struct ObjectTable {
    next: AtomicU64,
    entries: ReadMostly<HandleMap<CK_OBJECT_HANDLE, Entry>>,
    token_handles: RwLock<HandleMap<(CK_SLOT_ID, ObjectId), CK_OBJECT_HANDLE>>,
    /// The session objects each session made, so closing a session does not scan every
    /// handle (a process that found 10,000 token objects holds 10,000 handles).
    owned: Mutex<HandleMap<CK_SESSION_HANDLE, Vec<CK_OBJECT_HANDLE>>>,
}

impl ObjectTable {
    fn allocate(&self) -> CK_OBJECT_HANDLE {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn token_handle(&self, slot_id: CK_SLOT_ID, id: ObjectId) -> CK_OBJECT_HANDLE {
        if let Some(h) = self.token_handles.read().get(&(slot_id, id)) {
            return *h;
        }
        let mut handles = self.token_handles.write();
        if let Some(h) = handles.get(&(slot_id, id)) {
            return *h;
        }
        let handle = self.allocate();
        handles.insert((slot_id, id), handle);
        let location = Location::Token { id, cache: Arc::new(ArcSwapOption::empty()) };
        self.entries.write().insert(handle, Entry { slot_id, location });
        handle
    }

    /// The handle of a remote backend's object, made on first sight.
    pub(super) fn remote_handle(&self, slot_id: CK_SLOT_ID, id: ObjectId, owner: Option<CK_SESSION_HANDLE>) -> CK_OBJECT_HANDLE {
        if let Some(h) = self.token_handles.read().get(&(slot_id, id)) {
            return *h;
        }
        let mut handles = self.token_handles.write();
        if let Some(h) = handles.get(&(slot_id, id)) {
            return *h;
        }
        let handle = self.allocate();
        handles.insert((slot_id, id), handle);
        self.entries.write().insert(handle, Entry { slot_id, location: Location::Remote { id, owner } });
        if let Some(owner) = owner {
            self.owned.lock().entry(owner).or_default().push(handle);
        }
        handle
    }

    /// The remote object behind `handle`, if it is one on `slot_id`.
    pub(super) fn remote(&self, slot_id: CK_SLOT_ID, handle: CK_OBJECT_HANDLE) -> Result<Option<ObjectId>> {
        // Read in place: every key operation asks, and a copy of the entry would write the
        // reference counts of its object.
        match self.entries.read().get(&handle) {
            None => Err(rv(CKR_OBJECT_HANDLE_INVALID)),
            Some(e) if e.slot_id != slot_id => Err(rv(CKR_OBJECT_HANDLE_INVALID)),
            Some(Entry { location: Location::Remote { id, .. }, .. }) => Ok(Some(*id)),
            Some(_) => Ok(None),
        }
    }

    pub(super) fn forget_handle(&self, handle: CK_OBJECT_HANDLE) {
        self.forget(handle);
    }

    fn add_session_object(&self, slot_id: CK_SLOT_ID, owner: CK_SESSION_HANDLE, object: Object) -> CK_OBJECT_HANDLE {
        let handle = self.allocate();
        let location = Location::Session { owner, object: Arc::new(ArcSwap::from_pointee(object)) };
        self.entries.write().insert(handle, Entry { slot_id, location });
        self.owned.lock().entry(owner).or_default().push(handle);
        handle
    }

    /// Where the object behind `handle` is, if it is on `slot_id`: a session object is
    /// read on the spot, without copying the entry (whose reference counts all threads
    /// using the object would share).
    fn locate(&self, handle: CK_OBJECT_HANDLE, slot_id: CK_SLOT_ID) -> Result<Located> {
        let entries = self.entries.read();
        match entries.get(&handle) {
            Some(e) if e.slot_id == slot_id => Ok(match &e.location {
                Location::Session { object, .. } => Located::Session(object.load_full()),
                Location::Token { id, .. } => Located::Token(*id),
                Location::Remote { .. } => Located::Remote,
            }),
            _ => Err(rv(CKR_OBJECT_HANDLE_INVALID)),
        }
    }

    /// A token object's cached value if `fresh` accepts it; otherwise its cache, to fill.
    fn cached(&self, handle: CK_OBJECT_HANDLE, fresh: impl Fn(&CachedObject) -> bool) -> Result<Cached> {
        let entries = self.entries.read();
        match entries.get(&handle).map(|e| &e.location) {
            Some(Location::Token { cache, .. }) => Ok(match &*cache.load() {
                Some(c) if fresh(c) => Cached::Fresh(c.object.clone()),
                _ => Cached::Stale(cache.clone()),
            }),
            _ => Err(rv(CKR_OBJECT_HANDLE_INVALID)),
        }
    }

    /// A session object's cell, to replace its value.
    fn session_cell(&self, handle: CK_OBJECT_HANDLE) -> Option<Arc<ArcSwap<Object>>> {
        match self.entries.read().get(&handle).map(|e| &e.location) {
            Some(Location::Session { object, .. }) => Some(object.clone()),
            _ => None,
        }
    }

    fn forget(&self, handle: CK_OBJECT_HANDLE) {
        // Lock order, everywhere both are held: `token_handles`, then `entries`.
        let mut handles = self.token_handles.write();
        let removed = self.entries.write().remove(&handle);
        if let Some(Entry { slot_id, location: Location::Token { id, .. } | Location::Remote { id, .. } }) = removed {
            handles.remove(&(slot_id, id));
        }
    }

    /// Drops the session objects a closing session created.
    /// Remote session objects are only forgotten here; the caller destroys them in their
    /// backend (returned as slot and id).
    pub fn drop_session_objects(&self, owner: CK_SESSION_HANDLE) -> Vec<(CK_SLOT_ID, ObjectId)> {
        let Some(handles) = self.owned.lock().remove(&owner) else { return Vec::new() };
        let mut token_handles = self.token_handles.write();
        let mut entries = self.entries.write();
        let mut remote = Vec::new();
        for handle in handles {
            match entries.get(&handle).map(|e| (e.slot_id, &e.location)) {
                Some((_, Location::Session { owner: o, .. })) if *o == owner => {
                    entries.remove(&handle);
                }
                Some((slot_id, Location::Remote { id, owner: Some(o) })) if *o == owner => {
                    let key = (slot_id, *id);
                    entries.remove(&handle);
                    token_handles.remove(&key);
                    remote.push(key);
                }
                // Destroyed already.
                _ => {}
            }
        }
        remote
    }

    /// Forgets what was read from a slot's token, secrets included (at logout).
    pub fn clear_cache(&self, slot_id: CK_SLOT_ID) {
        for entry in self.entries.read().values() {
            if let (true, Location::Token { cache, .. }) = (entry.slot_id == slot_id, &entry.location) {
                cache.store(None);
            }
        }
    }

    /// The slot's token handles, each with whether its object is private where the cache
    /// knows (an object's CKA_PRIVATE never changes, so any cached read tells).
    fn token_entries(&self, slot_id: CK_SLOT_ID) -> Vec<(CK_OBJECT_HANDLE, ObjectId, Option<bool>)> {
        let entries = self.entries.read();
        let on_slot = entries.iter().filter(|(_, e)| e.slot_id == slot_id);
        on_slot
            .filter_map(|(h, e)| match &e.location {
                Location::Token { id, cache } => Some((*h, *id, cache.load().as_ref().map(|c| c.object.is_private()))),
                _ => None,
            })
            .collect()
    }

    /// The slot's handles to objects a remote backend keeps.
    fn remote_entries(&self, slot_id: CK_SLOT_ID) -> Vec<(CK_OBJECT_HANDLE, ObjectId)> {
        let entries = self.entries.read();
        let on_slot = entries.iter().filter(|(_, e)| e.slot_id == slot_id);
        on_slot
            .filter_map(|(h, e)| match &e.location {
                Location::Remote { id, .. } => Some((*h, *id)),
                _ => None,
            })
            .collect()
    }

    /// Destroys the private session objects made on a slot (those in this process's memory;
    /// a remote token destroys its own at its logout).
    fn drop_private_session_objects(&self, slot_id: CK_SLOT_ID) {
        self.entries.write().retain(|_, e| {
            e.slot_id != slot_id || !matches!(&e.location, Location::Session { object, .. } if object.load().is_private())
        });
    }

    /// Forgets these handles: they are invalid from now on, and the objects get new ones
    /// when found again.
    fn forget_all(&self, handles: &[CK_OBJECT_HANDLE]) {
        // Lock order, everywhere both are held: `token_handles`, then `entries`.
        let mut token_handles = self.token_handles.write();
        let mut entries = self.entries.write();
        for handle in handles {
            if let Some(Entry { slot_id, location: Location::Token { id, .. } | Location::Remote { id, .. } }) = entries.remove(handle) {
                token_handles.remove(&(slot_id, id));
            }
        }
    }

    /// Whether `handle` still names an object (for handles a search found earlier).
    fn is_live(&self, handle: CK_OBJECT_HANDLE) -> bool {
        self.entries.read().contains_key(&handle)
    }

    /// Drops every session object and token handle of a slot (after `C_InitToken`).
    pub fn drop_slot(&self, slot_id: CK_SLOT_ID) {
        self.entries.write().retain(|_, e| e.slot_id != slot_id);
        self.token_handles.write().retain(|(s, _), _| *s != slot_id);
    }
}


/// What `ObjectTable::cached` found: the object, or the cache to fill.
enum Cached {
    Fresh(Arc<Object>),
    Stale(Arc<ArcSwapOption<CachedObject>>),
}

/// What `ObjectTable::locate` found.
enum Located {
    Session(Arc<Object>),
    Token(ObjectId),
    Remote,
}

/// An object found by handle, visible to the session that asked.
pub(super) struct Found {
    handle: CK_OBJECT_HANDLE,
    /// The backend's id, for a token object.
    token: Option<ObjectId>,
    pub object: Arc<Object>,
}

impl Found {
    pub fn is_token(&self) -> bool {
        self.token.is_some()
    }

    /// The backend's id of a token object.
    pub fn token_id(&self) -> Option<ObjectId> {
        self.token
    }
}

impl Module {
    fn caller(slot: &Slot) -> Caller {
        Caller { is_so: slot.login_state() == LoginState::So }
    }

    /// Looks an object up for `session`; invisible and foreign objects are
    /// `CKR_OBJECT_HANDLE_INVALID`. Secret attributes are read only with `with_secrets`.
    pub(super) fn find_object(&self, session: &Session, handle: CK_OBJECT_HANDLE, with_secrets: bool) -> Result<Found> {
        let slot = self.slot(session.slot_id)?;
        let epoch = slot.login_epoch();
        let (token, object) = match self.objects.locate(handle, session.slot_id)? {
            Located::Session(object) => (None, object),
            Located::Token(id) => match self.read_token_object(slot, handle, id, with_secrets) {
                Ok(o) => (Some(id), o),
                Err(e) if e.rv() == CKR_OBJECT_HANDLE_INVALID => {
                    // Destroyed by another process.
                    self.objects.forget(handle);
                    return Err(e);
                }
                Err(e) if e.rv() == CKR_USER_NOT_LOGGED_IN => {
                    // The backend holds no login that opens this object: a private object
                    // (invisible then), or sealed values of a public one (that needs a login).
                    self.check_login_lost(slot, epoch, &e);
                    if !with_secrets {
                        return Err(rv(CKR_OBJECT_HANDLE_INVALID));
                    }
                    return match self.read_token_object(slot, handle, id, false) {
                        Ok(object) if !object.is_private() => Err(e),
                        Ok(_) => Err(rv(CKR_OBJECT_HANDLE_INVALID)),
                        Err(again) if again.rv() == CKR_USER_NOT_LOGGED_IN => Err(rv(CKR_OBJECT_HANDLE_INVALID)),
                        Err(again) => Err(again),
                    };
                }
                Err(e) => return Err(e),
            },
            // Remote objects are never read here: the remote paths take them first.
            Located::Remote => return Err(rv(CKR_FUNCTION_NOT_SUPPORTED)),
        };
        if object.is_private() && !slot.user_logged_in() {
            return Err(rv(CKR_OBJECT_HANDLE_INVALID));
        }
        Ok(Found { handle, token, object })
    }

    /// A token object as cached while the token has not changed and the login state is the
    /// same; else read from the backend. Two threads missing at once both read; either
    /// result is current.
    fn read_token_object(&self, slot: &Slot, handle: CK_OBJECT_HANDLE, id: ObjectId, with_secrets: bool) -> Result<Arc<Object>> {
        let generation = slot.backend.generation()?;
        let login_epoch = slot.login_epoch();
        let fresh = |c: &CachedObject| c.generation == generation && c.login_epoch == login_epoch && (c.with_secrets || !with_secrets);
        let cache = match self.objects.cached(handle, fresh)? {
            Cached::Fresh(object) => return Ok(object),
            Cached::Stale(cache) => cache,
        };
        let object = Arc::new(slot.backend.read_object(id, with_secrets)?);
        cache.store(Some(Arc::new(CachedObject { generation, login_epoch, with_secrets, object: object.clone() })));
        Ok(object)
    }

    /// What a logout does to objects (PKCS#11 3.0 §5.6, C_Logout): the private session
    /// objects are destroyed, and the handles of private token objects become invalid for
    /// good (a new login finds the objects under new handles). Public objects keep theirs.
    /// Runs while the slot's login state cannot change. The token objects read under the
    /// login are dropped from the cache too.
    pub(super) fn forget_private_objects(&self, slot: &Slot) {
        if slot.backend.is_remote() {
            self.forget_remote_private_objects(slot);
        } else {
            self.forget_local_private_objects(slot);
        }
        // After the local pass: it reads which objects are private from the cache.
        self.objects.clear_cache(slot.id);
    }

    fn forget_local_private_objects(&self, slot: &Slot) {
        self.objects.drop_private_session_objects(slot.id);
        // The handles are listed before the token is asked which objects are public: every
        // listed object existed before the question, so a public one is in the answer.
        let tokens = self.objects.token_entries(slot.id);
        let public: Option<std::collections::HashSet<ObjectId>> = if tokens.iter().all(|(_, _, private)| private.is_some()) {
            Some(Default::default())
        } else {
            match slot.backend.find_objects(&AttributeTemplate::new(), false) {
                Ok(ids) => Some(ids.into_iter().collect()),
                Err(e) => {
                    tracing::warn!(slot = slot.id, "public objects not listed at logout, read one by one: {e}");
                    None
                }
            }
        };
        let private = |id: ObjectId| match &public {
            Some(public) => !public.contains(&id),
            // Unreadable counts as private: an invalid handle is found again, a private
            // object's handle must not outlive the login.
            None => slot.backend.read_object(id, false).map_or(true, |o| o.is_private()),
        };
        let doomed: Vec<CK_OBJECT_HANDLE> = tokens
            .into_iter()
            .filter(|&(_, id, known)| known.unwrap_or_else(|| private(id)))
            .map(|(handle, _, _)| handle)
            .collect();
        self.objects.forget_all(&doomed);
    }

    /// A forwarded token invalidated its own handles to private objects and destroyed its
    /// private session objects at its C_Logout; keyfront's handles to them go too, or a vendor
    /// that reuses handle numbers would let one reach another object later. Asked after the
    /// vendor's logout: an object it no longer shows, or shows as private, is forgotten.
    fn forget_remote_private_objects(&self, slot: &Slot) {
        let public = |id: ObjectId| match slot.backend.remote_get_attributes(CK_INVALID_HANDLE, id, &[CKA_PRIVATE]) {
            Ok(read) => matches!(read.as_slice(), [AttrRead::Value(v)] if v.as_slice() == [CK_FALSE]),
            Err(_) => false,
        };
        let doomed: Vec<CK_OBJECT_HANDLE> =
            self.objects.remote_entries(slot.id).into_iter().filter(|&(_, id)| !public(id)).map(|(handle, _)| handle).collect();
        self.objects.forget_all(&doomed);
    }

    /// After a backend answered `e`: `CKR_USER_NOT_LOGGED_IN` while this process is logged
    /// in means the soft token's key was discarded under it (another process re-initialised
    /// the token). The login current at `epoch` then ends as at C_Logout, so the sessions
    /// say so and private handles go. Key services and forwarded tokens have their own
    /// reasons for that code, and keep their logins.
    pub(super) fn check_login_lost(&self, slot: &Slot, epoch: u64, e: &crate::error::Error) {
        if e.rv() != CKR_USER_NOT_LOGGED_IN || slot.login_state() == LoginState::Public {
            return;
        }
        if slot.backend.is_remote() || slot.backend.keys_in_service() {
            return;
        }
        if slot.end_lost_login(epoch, || self.forget_private_objects(slot)) {
            tracing::warn!(slot = slot.id, "the token was re-initialised elsewhere: logged out");
        }
    }

    /// Checks the session may write an object with these properties.
    pub(super) fn check_writable(&self, session: &Session, slot: &Slot, token: bool, private: bool) -> Result<()> {
        if token && !session.read_write {
            return Err(rv(CKR_SESSION_READ_ONLY));
        }
        if private && !slot.user_logged_in() {
            return Err(rv(CKR_USER_NOT_LOGGED_IN));
        }
        Ok(())
    }

    /// Stores a new object built by the policy, on the token or in the session.
    pub(super) fn store_object(&self, session: &Session, mut object: Object) -> Result<CK_OBJECT_HANDLE> {
        let slot = self.slot(session.slot_id)?;
        self.check_writable(session, slot, object.is_token(), object.is_private())?;
        add_check_value(&mut object)?;
        // CKA_UNIQUE_ID (PKCS#11 3.0): assigned by the token, never reused.
        let mut uid = [0u8; 16];
        getrandom::fill(&mut uid).map_err(|e| crate::error::Error::Internal(format!("OS random generator: {e}")))?;
        object.set(CKA_UNIQUE_ID, uid.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes());
        if object.is_token() {
            let epoch = slot.login_epoch();
            let id = slot.backend.create_object(&object).inspect_err(|e| self.check_login_lost(slot, epoch, e))?;
            Ok(self.objects.token_handle(slot.id, id))
        } else {
            Ok(self.objects.add_session_object(slot.id, session.handle, object))
        }
    }

    pub fn create_object(&self, session: CK_SESSION_HANDLE, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        let session = self.sessions.get(session)?;
        let session = session.lock();
        let slot = self.slot(session.slot_id)?;
        if slot.backend.is_remote() {
            return self.remote_create(&session, slot, template);
        }
        let object = policy::new_object(template, Origin::Create, &AttributeTemplate::new(), Self::caller(slot))?;
        self.store_object(&session, object)
    }

    pub fn copy_object(&self, session: CK_SESSION_HANDLE, handle: CK_OBJECT_HANDLE, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        let session = self.sessions.get(session)?;
        let session = session.lock();
        let slot = self.slot(session.slot_id)?;
        if let Some(id) = self.objects.remote(slot.id, handle)? {
            return self.remote_copy(&session, slot, id, template);
        }
        let found = self.find_object(&session, handle, true)?;
        let copy = policy::copy_object(&found.object, template, Self::caller(slot))?;
        self.store_object(&session, copy)
    }

    pub fn destroy_object(&self, session: CK_SESSION_HANDLE, handle: CK_OBJECT_HANDLE) -> Result<()> {
        let session = self.sessions.get(session)?;
        let session = session.lock();
        if let Some(id) = self.objects.remote(session.slot_id, handle)? {
            return self.remote_destroy(&session, handle, id);
        }
        let found = self.find_object(&session, handle, false)?;
        if found.object.contains(CKA_DESTROYABLE) && !found.object.flag(CKA_DESTROYABLE) {
            return Err(rv(CKR_ACTION_PROHIBITED));
        }
        self.remove_object(&session, handle)
    }

    /// Removes an object the session may write.
    pub(super) fn remove_object(&self, session: &Session, handle: CK_OBJECT_HANDLE) -> Result<()> {
        let slot = self.slot(session.slot_id)?;
        let found = self.find_object(session, handle, false)?;
        self.check_writable(session, slot, found.is_token(), found.object.is_private())?;
        if let Some(id) = found.token {
            slot.backend.destroy_object(id)?;
        }
        self.objects.forget(found.handle);
        Ok(())
    }

    pub fn get_object_size(&self, session: CK_SESSION_HANDLE, handle: CK_OBJECT_HANDLE) -> Result<usize> {
        let session = self.sessions.get(session)?;
        let session = session.lock();
        if let Some(id) = self.objects.remote(session.slot_id, handle)? {
            return self.slot(session.slot_id)?.backend.remote_object_size(session.handle, id);
        }
        Ok(self.find_object(&session, handle, false)?.object.size())
    }

    pub fn get_attributes(&self, session: CK_SESSION_HANDLE, handle: CK_OBJECT_HANDLE, types: &[CK_ATTRIBUTE_TYPE]) -> Result<Vec<AttrRead>> {
        let session = self.sessions.get(session)?;
        let session = session.lock();
        if let Some(id) = self.objects.remote(session.slot_id, handle)? {
            return self.slot(session.slot_id)?.backend.remote_get_attributes(session.handle, id, types);
        }
        let mut found = self.find_object(&session, handle, false)?;
        let class = found.object.class();
        let wants_secret = types
            .iter()
            .any(|&t| policy::must_seal(&found.object, t) && policy::is_readable(&found.object, t));
        if wants_secret && found.is_token() {
            match self.find_object(&session, handle, true) {
                Ok(opened) => found = opened,
                // Not a code C_GetAttributeValue may return: the sealed values are reported
                // as unavailable below, the others as usual.
                Err(e) if e.rv() == CKR_USER_NOT_LOGGED_IN => {}
                Err(e) => return Err(e),
            }
        }
        let object = &found.object;
        Ok(types
            .iter()
            .map(|&ty| {
                if !policy::is_readable(object, ty) {
                    AttrRead::Sensitive
                } else if let Some(v) = object.get(ty) {
                    AttrRead::Value(v.to_vec().into())
                } else if policy::is_valid_attribute(class, ty) && policy::must_seal(object, ty) {
                    // Sealed and this process cannot open it: treat as sensitive.
                    AttrRead::Sensitive
                } else {
                    AttrRead::Invalid
                }
            })
            .collect())
    }

    pub fn set_attributes(&self, session: CK_SESSION_HANDLE, handle: CK_OBJECT_HANDLE, template: &AttributeTemplate) -> Result<()> {
        let session = self.sessions.get(session)?;
        let session = session.lock();
        let slot = self.slot(session.slot_id)?;
        if let Some(id) = self.objects.remote(slot.id, handle)? {
            self.check_remote_writable(&session, slot, id)?;
            return slot.backend.remote_set_attributes(session.handle, id, template);
        }
        let epoch = slot.login_epoch();
        let found = self.find_object(&session, handle, false)?;
        self.check_writable(&session, slot, found.is_token(), found.object.is_private())?;
        let changed = policy::set_attributes(&found.object, template, Self::caller(slot))?;
        match found.token {
            None => {
                // Session objects hold their secrets in memory; keep them.
                let cell = self.objects.session_cell(handle).ok_or(rv(CKR_OBJECT_HANDLE_INVALID))?;
                cell.rcu(|stored| {
                    let mut updated = Object::clone(stored);
                    for (ty, value) in template.iter() {
                        updated.set(ty, value.to_vec());
                    }
                    updated
                });
            }
            Some(id) => {
                let types: Vec<_> = template.iter().map(|(t, _)| t).collect();
                slot.backend.update_object(id, &changed, &types).inspect_err(|e| self.check_login_lost(slot, epoch, e))?;
            }
        }
        Ok(())
    }

    pub fn find_init(&self, session: CK_SESSION_HANDLE, template: &AttributeTemplate) -> Result<()> {
        let session = self.sessions.get(session)?;
        let mut session = session.lock();
        if session.find.is_some() {
            return Err(rv(CKR_OPERATION_ACTIVE));
        }
        policy::check_find_template(template)?;
        let slot = self.slot(session.slot_id)?;
        if slot.backend.is_remote() {
            let ids = slot.backend.remote_find(session.handle, template)?;
            session.find = Some(ids.into_iter().map(|id| self.objects.remote_handle(slot.id, id, None)).collect::<Vec<_>>().into_iter());
            return Ok(());
        }
        let epoch = slot.login_epoch();
        let token_ids = match slot.backend.find_objects(template, slot.user_logged_in()) {
            Err(e) if e.rv() == CKR_USER_NOT_LOGGED_IN => {
                // The login was lost under this process: the search is a public one.
                self.check_login_lost(slot, epoch, &e);
                slot.backend.find_objects(template, false)?
            }
            other => other?,
        };
        let user = slot.user_logged_in();
        let mut handles: Vec<CK_OBJECT_HANDLE> = {
            let entries = self.objects.entries.read();
            entries
                .iter()
                .filter(|(_, e)| e.slot_id == slot.id)
                .filter_map(|(h, e)| match &e.location {
                    Location::Session { object, .. } => {
                        let o = object.load();
                        ((user || !o.is_private()) && o.matches(template)).then_some(*h)
                    }
                    Location::Token { .. } | Location::Remote { .. } => None,
                })
                .collect()
        };
        handles.sort_unstable();
        for id in token_ids {
            handles.push(self.objects.token_handle(slot.id, id));
        }
        session.find = Some(handles.into_iter());
        Ok(())
    }

    pub fn find_next(&self, session: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let session = self.sessions.get(session)?;
        let mut session = session.lock();
        let found = session.find.as_mut().ok_or(rv(CKR_OPERATION_NOT_INITIALIZED))?;
        // A logout since the search began invalidated the handles of private objects.
        Ok(found.filter(|h| self.objects.is_live(*h)).take(max).collect())
    }

    pub fn find_final(&self, session: CK_SESSION_HANDLE) -> Result<()> {
        let session = self.sessions.get(session)?;
        let mut session = session.lock();
        session.find.take().ok_or(rv(CKR_OPERATION_NOT_INITIALIZED))?;
        Ok(())
    }
}

/// CKA_CHECK_VALUE of a secret key (PKCS#11 3.0 §6.7.2, §6.8.1): computed by the token; a
/// template may ask for none with an empty value, or give one, which must be right.
fn add_check_value(object: &mut Object) -> Result<()> {
    if object.class() != CKO_SECRET_KEY {
        return Ok(());
    }
    let Some(value) = object.get(CKA_VALUE) else { return Ok(()) };
    let computed = match object.key_type() {
        Some(CKK_AES) => aes::check_value(value)?.to_vec(),
        _ => {
            use sha1::Digest;
            sha1::Sha1::digest(value)[..3].to_vec()
        }
    };
    match object.get(CKA_CHECK_VALUE) {
        Some([]) => {}
        Some(given) if given != computed.as_slice() => return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID)),
        _ => object.set(CKA_CHECK_VALUE, computed),
    }
    Ok(())
}

//! The vendor module: loaded with `dlopen`, initialised once per process however many slots
//! forward to it, finalised when the last slot using it is dropped. Every vendor call goes
//! through a safe method here; each turns a `CK_RV` other than `CKR_OK` into
//! `Error::Rv(rv)` unchanged.

use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Weak};

use cryptoki_sys::*;
use parking_lot::Mutex;
use zeroize::Zeroizing;

use super::mechanism::RawMechanism;
use crate::error::{rv, rv_name, Error, Result};
use crate::object::AttributeTemplate;

/// One loaded and initialised vendor module.
pub struct Vendor {
    /// Kept loaded while any slot uses it (and, `RTLD_NODELETE`, after: a vendor's own
    /// threads or atexit handlers must not outlive its code).
    _lib: libloading::os::unix::Library,
    list: CK_FUNCTION_LIST,
    /// `C_SessionCancel` from the vendor's 3.0 interface, when it has one.
    session_cancel: CK_C_SessionCancel,
    pub path: PathBuf,
    /// What `pReserved` pointed to; the vendor may keep the pointer, so it lives as long as
    /// the module is initialised.
    init_args: Option<CString>,
    /// False when the vendor was already initialised by someone else in this process: then
    /// it is not ours to finalise.
    initialized_by_us: bool,
    pid: u32,
}

/// Modules loaded in this process, by canonical path: two slots on tokens of the same module
/// share one initialisation (a second `C_Initialize` would fail, and the first slot's
/// `C_Finalize` would pull the module from under the other).
struct Loaded {
    path: PathBuf,
    pid: u32,
    initialized_by_us: bool,
    vendor: Weak<Vendor>,
}

static LOADED: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

fn check(code: CK_RV) -> Result<()> {
    if code == CKR_OK {
        Ok(())
    } else {
        Err(Error::Rv(code))
    }
}

/// The function `$name` of the vendor's list, or `CKR_FUNCTION_NOT_SUPPORTED`.
macro_rules! func {
    ($self:ident, $name:ident) => {
        $self.list.$name.ok_or(Error::Rv(CKR_FUNCTION_NOT_SUPPORTED))?
    };
}

/// What an empty input points to: some vendors (SoftHSM2) refuse a NULL pointer even with
/// length 0.
static EMPTY: [u8; 1] = [0];

/// A template as `CK_ATTRIBUTE`s pointing into `template` (which the caller keeps alive and
/// unchanged for the call; vendors only read input templates).
fn raw_template(template: &AttributeTemplate) -> Vec<CK_ATTRIBUTE> {
    template
        .iter()
        .map(|(ty, value)| CK_ATTRIBUTE { type_: ty, pValue: in_ptr(value) as *mut c_void, ulValueLen: value.len() as CK_ULONG })
        .collect()
}

/// A pointer for an input byte string (never written by the vendor).
fn in_ptr(data: &[u8]) -> *mut u8 {
    if data.is_empty() {
        EMPTY.as_ptr() as *mut u8
    } else {
        data.as_ptr() as *mut u8
    }
}

/// Room beyond the input that a symmetric cipher's output may need (padding, tag).
const SLACK: usize = 64;

/// The PKCS#11 output convention: `call(NULL, &len)` for the length, then `call(buf, &len)`,
/// with a buffer of at least `at_least` bytes: NSS softokn under-reports AES-GCM lengths,
/// and ends the operation when the buffer then is too small. A vendor that answers
/// `CKR_BUFFER_TOO_SMALL` anyway gets the length it then names, a few times.
fn two_pass(at_least: usize, mut call: impl FnMut(*mut u8, &mut CK_ULONG) -> CK_RV) -> Result<Zeroizing<Vec<u8>>> {
    let mut len: CK_ULONG = 0;
    check(call(ptr::null_mut(), &mut len))?;
    len = len.max(at_least as CK_ULONG);
    for _ in 0..3 {
        let mut out = Zeroizing::new(vec![0u8; len as usize]);
        // An empty buffer still needs a non-NULL pointer, or it would be a second query.
        let mut one = [0u8; 1];
        let p = if out.is_empty() { one.as_mut_ptr() } else { out.as_mut_ptr() };
        let mut got = len;
        match call(p, &mut got) {
            CKR_OK => {
                let n = (got as usize).min(out.len());
                out.truncate(n);
                return Ok(out);
            }
            CKR_BUFFER_TOO_SMALL if got > len => len = got,
            CKR_BUFFER_TOO_SMALL => len = len.saturating_mul(2).max(16),
            other => return Err(Error::Rv(other)),
        }
    }
    Err(rv(CKR_BUFFER_TOO_SMALL))
}

impl Vendor {
    /// The module at `path`, loaded and initialised with `init_args` in `pReserved`, or
    /// the instance already loaded in this process.
    pub fn load(path: &Path, init_args: Option<&str>) -> Result<Arc<Vendor>> {
        let canonical = std::fs::canonicalize(path)
            .map_err(|e| Error::Config(format!("{}: cannot load vendor module: {e}", path.display())))?;
        let pid = std::process::id();
        loop {
            let mut loaded = LOADED.lock();
            // Entries of another process were inherited across fork(): that process's module
            // state is not ours.
            let mut after_fork = false;
            loaded.retain(|l| {
                if l.pid != pid && l.path == canonical {
                    after_fork |= l.initialized_by_us;
                    false
                } else {
                    true
                }
            });
            if let Some(entry) = loaded.iter().find(|l| l.path == canonical) {
                match entry.vendor.upgrade() {
                    Some(vendor) => {
                        if vendor.init_args.as_ref().map(|c| c.to_bytes()) != init_args.map(str::as_bytes) {
                            return Err(Error::Config(format!(
                                "{}: already loaded with other init_args; one process initialises a module once",
                                path.display()
                            )));
                        }
                        return Ok(vendor);
                    }
                    None => {
                        // Its last user is finalising it right now; wait for that to end.
                        drop(loaded);
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        continue;
                    }
                }
            }
            let vendor = Arc::new(Self::load_new(&canonical, init_args, after_fork)?);
            loaded.push(Loaded {
                path: canonical,
                pid,
                initialized_by_us: vendor.initialized_by_us,
                vendor: Arc::downgrade(&vendor),
            });
            return Ok(vendor);
        }
    }

    fn load_new(path: &Path, init_args: Option<&str>, after_fork: bool) -> Result<Vendor> {
        let shown = path.display();
        // RTLD_DEEPBIND: the vendor's own `C_*` symbols win over keyfront's, which have the
        // same names (a module loaded RTLD_GLOBAL would otherwise bind the vendor's function
        // list to keyfront's functions). RTLD_NODELETE: never unmapped.
        let flags = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND | libc::RTLD_NODELETE;
        // SAFETY: loading a PKCS#11 module runs its initialisers; that is what the
        // configuration asks for, and the path names a module the administrator chose.
        let lib = unsafe { libloading::os::unix::Library::open(Some(path), flags) }
            .map_err(|e| Error::Config(format!("{shown}: cannot load vendor module: {e}")))?;
        // SAFETY: `C_GetFunctionList` has this signature in every PKCS#11 version.
        let get_list: libloading::os::unix::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
            unsafe { lib.get(b"C_GetFunctionList\0") }
                .map_err(|e| Error::Config(format!("{shown}: no C_GetFunctionList: {e}")))?;
        let mut list_ptr: *mut CK_FUNCTION_LIST = ptr::null_mut();
        // SAFETY: the out pointer is valid; the vendor fills it with its static list.
        let code = unsafe { get_list(&mut list_ptr) };
        if code != CKR_OK || list_ptr.is_null() {
            return Err(Error::Config(format!("{shown}: C_GetFunctionList failed: {}", rv_name(code))));
        }
        // SAFETY: a non-NULL list from C_GetFunctionList is a valid 2.x function list (at
        // least that large) for the life of the loaded module; it is copied out here.
        let list = unsafe { *list_ptr };
        if list.version.major < 2 {
            return Err(Error::Config(format!(
                "{shown}: function list version {}.{} is not PKCS#11 2 or later",
                list.version.major, list.version.minor
            )));
        }
        let session_cancel = Self::session_cancel_of(&lib);

        let init_args = init_args
            .map(|s| CString::new(s).map_err(|_| Error::Config(format!("{shown}: init_args contains a NUL byte"))))
            .transpose()?;
        let initialize = list.C_Initialize.ok_or_else(|| Error::Config(format!("{shown}: no C_Initialize")))?;
        if after_fork {
            // A child of a process that had initialised the module: start afresh, as
            // PKCS#11 asks of a forked child.
            if let Some(finalize) = list.C_Finalize {
                // SAFETY: C_Finalize takes NULL; the module is loaded.
                let code = unsafe { finalize(ptr::null_mut()) };
                tracing::debug!(module = %shown, rv = %rv_name(code), "C_Finalize in a forked child");
            }
        }
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: init_args.as_ref().map_or(ptr::null_mut(), |c| c.as_ptr() as *mut c_void),
        };
        // SAFETY: `args` is valid for the call; `pReserved` points to a NUL-terminated
        // string kept alive in the returned `Vendor` for as long as the module is initialised.
        let code = unsafe { initialize(&mut args as *mut _ as *mut c_void) };
        let initialized_by_us = match code {
            CKR_OK => true,
            CKR_CRYPTOKI_ALREADY_INITIALIZED => {
                tracing::info!(module = %shown, "vendor module already initialised in this process; sharing it");
                false
            }
            other => {
                return Err(Error::Config(format!("{shown}: C_Initialize failed: {}", rv_name(other))));
            }
        };
        tracing::info!(
            module = %shown,
            version = %format!("{}.{}", list.version.major, list.version.minor),
            session_cancel = session_cancel.is_some(),
            "vendor module loaded"
        );
        Ok(Vendor {
            _lib: lib,
            list,
            session_cancel,
            path: path.to_path_buf(),
            init_args,
            initialized_by_us,
            pid: std::process::id(),
        })
    }

    /// `C_SessionCancel` of the vendor's "PKCS 11" 3.x interface, if it offers one.
    fn session_cancel_of(lib: &libloading::os::unix::Library) -> CK_C_SessionCancel {
        // SAFETY: `C_GetInterface` has this signature (PKCS#11 3.0 §5.4).
        let get_interface: libloading::os::unix::Symbol<
            unsafe extern "C" fn(*mut CK_UTF8CHAR, *mut CK_VERSION, *mut *mut CK_INTERFACE, CK_FLAGS) -> CK_RV,
        > = unsafe { lib.get(b"C_GetInterface\0") }.ok()?;
        let mut name = *b"PKCS 11\0";
        let mut version = CK_VERSION { major: 3, minor: 0 };
        let mut interface: *mut CK_INTERFACE = ptr::null_mut();
        // SAFETY: name and version are valid for the call, the out pointer too.
        let code = unsafe { get_interface(name.as_mut_ptr(), &mut version, &mut interface, 0) };
        if code != CKR_OK || interface.is_null() {
            return None;
        }
        // SAFETY: a non-NULL interface returned with CKR_OK points to the vendor's static
        // interface, whose function list starts with its CK_VERSION.
        let list = unsafe { (*interface).pFunctionList } as *const CK_FUNCTION_LIST_3_0;
        if list.is_null() {
            return None;
        }
        // SAFETY: as above; the version says the list is a 3.x list, which has
        // C_SessionCancel at this offset (3.2 lists extend the 3.0 layout).
        unsafe {
            if (*list).version.major != 3 {
                return None;
            }
            (*list).C_SessionCancel
        }
    }

    pub fn has_session_cancel(&self) -> bool {
        self.session_cancel.is_some()
    }

    // ---- slots and tokens ---------------------------------------------------------------

    pub fn slot_list(&self) -> Result<Vec<CK_SLOT_ID>> {
        let f = func!(self, C_GetSlotList);
        for _ in 0..3 {
            let mut count: CK_ULONG = 0;
            // SAFETY: NULL list asks for the count; the count pointer is valid.
            check(unsafe { f(CK_TRUE, ptr::null_mut(), &mut count) })?;
            let mut slots = vec![0 as CK_SLOT_ID; count as usize];
            // SAFETY: `slots` holds `count` entries.
            match unsafe { f(CK_TRUE, slots.as_mut_ptr(), &mut count) } {
                CKR_OK => {
                    slots.truncate(count as usize);
                    return Ok(slots);
                }
                // A token arrived between the two calls.
                CKR_BUFFER_TOO_SMALL => continue,
                other => return Err(Error::Rv(other)),
            }
        }
        Err(rv(CKR_BUFFER_TOO_SMALL))
    }

    pub fn token_info(&self, slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
        let f = func!(self, C_GetTokenInfo);
        let mut info = CK_TOKEN_INFO::default();
        // SAFETY: `info` is a valid CK_TOKEN_INFO for the vendor to fill.
        check(unsafe { f(slot, &mut info) })?;
        Ok(info)
    }

    pub fn mechanism_list(&self, slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
        let f = func!(self, C_GetMechanismList);
        for _ in 0..3 {
            let mut count: CK_ULONG = 0;
            // SAFETY: NULL list asks for the count.
            check(unsafe { f(slot, ptr::null_mut(), &mut count) })?;
            let mut list = vec![0 as CK_MECHANISM_TYPE; count as usize];
            // SAFETY: `list` holds `count` entries.
            match unsafe { f(slot, list.as_mut_ptr(), &mut count) } {
                CKR_OK => {
                    list.truncate(count as usize);
                    return Ok(list);
                }
                CKR_BUFFER_TOO_SMALL => continue,
                other => return Err(Error::Rv(other)),
            }
        }
        Err(rv(CKR_BUFFER_TOO_SMALL))
    }

    pub fn mechanism_info(&self, slot: CK_SLOT_ID, kind: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
        let f = func!(self, C_GetMechanismInfo);
        let mut info = CK_MECHANISM_INFO::default();
        // SAFETY: `info` is valid for the vendor to fill.
        check(unsafe { f(slot, kind, &mut info) })?;
        Ok(info)
    }

    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], label: &[u8; 32]) -> Result<()> {
        let f = func!(self, C_InitToken);
        let mut label = *label;
        // SAFETY: the PIN is valid for its length; the label is 32 bytes.
        check(unsafe { f(slot, in_ptr(so_pin), so_pin.len() as CK_ULONG, label.as_mut_ptr()) })
    }

    // ---- sessions and login -------------------------------------------------------------

    /// A read-write serial session (read-only on a write-protected token).
    pub fn open_session(&self, slot: CK_SLOT_ID) -> Result<CK_SESSION_HANDLE> {
        let f = func!(self, C_OpenSession);
        let mut handle: CK_SESSION_HANDLE = CK_INVALID_HANDLE;
        // SAFETY: no notification callback; the out pointer is valid.
        let code = unsafe { f(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, ptr::null_mut(), None, &mut handle) };
        if code == CKR_TOKEN_WRITE_PROTECTED {
            // SAFETY: as above.
            check(unsafe { f(slot, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut handle) })?;
            return Ok(handle);
        }
        check(code)?;
        Ok(handle)
    }

    pub fn close_session(&self, session: CK_SESSION_HANDLE) -> Result<()> {
        let f = func!(self, C_CloseSession);
        // SAFETY: plain value arguments.
        check(unsafe { f(session) })
    }

    /// `C_CloseAllSessions`: what the tests use to pull the sessions from under a slot.
    #[cfg(test)]
    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> Result<()> {
        let f = func!(self, C_CloseAllSessions);
        // SAFETY: plain value arguments.
        check(unsafe { f(slot) })
    }

    pub fn session_info(&self, session: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
        let f = func!(self, C_GetSessionInfo);
        let mut info = CK_SESSION_INFO::default();
        // SAFETY: `info` is valid for the vendor to fill.
        check(unsafe { f(session, &mut info) })?;
        Ok(info)
    }

    pub fn login(&self, session: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let f = func!(self, C_Login);
        // SAFETY: the PIN is valid for its length.
        check(unsafe { f(session, user, in_ptr(pin), pin.len() as CK_ULONG) })
    }

    pub fn logout(&self, session: CK_SESSION_HANDLE) -> Result<()> {
        let f = func!(self, C_Logout);
        // SAFETY: plain value arguments.
        check(unsafe { f(session) })
    }

    pub fn init_pin(&self, session: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
        let f = func!(self, C_InitPIN);
        // SAFETY: the PIN is valid for its length.
        check(unsafe { f(session, in_ptr(pin), pin.len() as CK_ULONG) })
    }

    pub fn set_pin(&self, session: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
        let f = func!(self, C_SetPIN);
        // SAFETY: both PINs are valid for their lengths.
        check(unsafe { f(session, in_ptr(old), old.len() as CK_ULONG, in_ptr(new), new.len() as CK_ULONG) })
    }

    // ---- objects ------------------------------------------------------------------------

    pub fn create_object(&self, session: CK_SESSION_HANDLE, template: &AttributeTemplate) -> Result<CK_OBJECT_HANDLE> {
        let f = func!(self, C_CreateObject);
        let mut raw = raw_template(template);
        let mut handle = CK_INVALID_HANDLE;
        // SAFETY: `raw` points into `template`, alive for the call.
        check(unsafe { f(session, raw.as_mut_ptr(), raw.len() as CK_ULONG, &mut handle) })?;
        Ok(handle)
    }

    pub fn copy_object(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: &AttributeTemplate,
    ) -> Result<CK_OBJECT_HANDLE> {
        let f = func!(self, C_CopyObject);
        let mut raw = raw_template(template);
        let mut handle = CK_INVALID_HANDLE;
        // SAFETY: `raw` points into `template`, alive for the call.
        check(unsafe { f(session, object, raw.as_mut_ptr(), raw.len() as CK_ULONG, &mut handle) })?;
        Ok(handle)
    }

    pub fn destroy_object(&self, session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
        let f = func!(self, C_DestroyObject);
        // SAFETY: plain value arguments.
        check(unsafe { f(session, object) })
    }

    pub fn object_size(&self, session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<CK_ULONG> {
        let f = func!(self, C_GetObjectSize);
        let mut size: CK_ULONG = 0;
        // SAFETY: the out pointer is valid.
        check(unsafe { f(session, object, &mut size) })?;
        Ok(size)
    }

    /// `C_GetAttributeValue` for `types`: with `buffers[i]` `None` the length of attribute
    /// `i` is asked for, with `Some` its value is read into the buffer. Returns the vendor's
    /// return code (several are meaningful here) and the length it reported per attribute.
    pub fn get_attributes(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
        buffers: &mut [Option<Zeroizing<Vec<u8>>>],
    ) -> Result<(CK_RV, Vec<CK_ULONG>)> {
        let f = func!(self, C_GetAttributeValue);
        debug_assert_eq!(types.len(), buffers.len());
        let mut raw: Vec<CK_ATTRIBUTE> = types
            .iter()
            .zip(buffers.iter_mut())
            .map(|(ty, buf)| match buf {
                Some(b) => CK_ATTRIBUTE {
                    type_: *ty,
                    pValue: if b.is_empty() { ptr::null_mut() } else { b.as_mut_ptr() as *mut c_void },
                    ulValueLen: b.len() as CK_ULONG,
                },
                None => CK_ATTRIBUTE { type_: *ty, pValue: ptr::null_mut(), ulValueLen: 0 },
            })
            .collect();
        // SAFETY: every non-NULL pValue points to a buffer of ulValueLen bytes owned by
        // `buffers`, alive and not otherwise borrowed for the call.
        let code = unsafe { f(session, object, raw.as_mut_ptr(), raw.len() as CK_ULONG) };
        Ok((code, raw.iter().map(|a| a.ulValueLen).collect()))
    }

    pub fn set_attributes(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: &AttributeTemplate,
    ) -> Result<()> {
        let f = func!(self, C_SetAttributeValue);
        let mut raw = raw_template(template);
        // SAFETY: `raw` points into `template`, alive for the call.
        check(unsafe { f(session, object, raw.as_mut_ptr(), raw.len() as CK_ULONG) })
    }

    pub fn find_init(&self, session: CK_SESSION_HANDLE, template: &AttributeTemplate) -> Result<()> {
        let f = func!(self, C_FindObjectsInit);
        let mut raw = raw_template(template);
        let p = if raw.is_empty() { ptr::null_mut() } else { raw.as_mut_ptr() };
        // SAFETY: `raw` points into `template`, alive for the call (NULL when empty).
        check(unsafe { f(session, p, raw.len() as CK_ULONG) })
    }

    pub fn find(&self, session: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let f = func!(self, C_FindObjects);
        let mut found = vec![CK_INVALID_HANDLE; max];
        let mut count: CK_ULONG = 0;
        // SAFETY: `found` holds `max` entries.
        check(unsafe { f(session, found.as_mut_ptr(), max as CK_ULONG, &mut count) })?;
        found.truncate((count as usize).min(max));
        Ok(found)
    }

    pub fn find_final(&self, session: CK_SESSION_HANDLE) -> Result<()> {
        let f = func!(self, C_FindObjectsFinal);
        // SAFETY: plain value arguments.
        check(unsafe { f(session) })
    }

    // ---- operations ---------------------------------------------------------------------

    pub fn encrypt_init(&self, s: CK_SESSION_HANDLE, m: &mut RawMechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
        let f = func!(self, C_EncryptInit);
        // SAFETY: the mechanism and its parameter live in `m` for the call.
        check(unsafe { f(s, m.as_ptr(), key) })
    }

    pub fn decrypt_init(&self, s: CK_SESSION_HANDLE, m: &mut RawMechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
        let f = func!(self, C_DecryptInit);
        // SAFETY: the mechanism and its parameter live in `m` for the call.
        check(unsafe { f(s, m.as_ptr(), key) })
    }

    pub fn sign_init(&self, s: CK_SESSION_HANDLE, m: &mut RawMechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
        let f = func!(self, C_SignInit);
        // SAFETY: the mechanism and its parameter live in `m` for the call.
        check(unsafe { f(s, m.as_ptr(), key) })
    }

    pub fn verify_init(&self, s: CK_SESSION_HANDLE, m: &mut RawMechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
        let f = func!(self, C_VerifyInit);
        // SAFETY: the mechanism and its parameter live in `m` for the call.
        check(unsafe { f(s, m.as_ptr(), key) })
    }

    pub fn encrypt(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let f = func!(self, C_Encrypt);
        // SAFETY: input valid for its length; `two_pass` hands a valid output buffer and length.
        two_pass(data.len() + SLACK, |out, len| unsafe { f(s, in_ptr(data), data.len() as CK_ULONG, out, len) })
    }

    pub fn decrypt(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let f = func!(self, C_Decrypt);
        // SAFETY: as for `encrypt`.
        two_pass(data.len() + SLACK, |out, len| unsafe { f(s, in_ptr(data), data.len() as CK_ULONG, out, len) })
    }

    pub fn encrypt_update(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let f = func!(self, C_EncryptUpdate);
        // SAFETY: as for `encrypt`.
        two_pass(data.len() + SLACK, |out, len| unsafe { f(s, in_ptr(data), data.len() as CK_ULONG, out, len) })
    }

    pub fn decrypt_update(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let f = func!(self, C_DecryptUpdate);
        // SAFETY: as for `encrypt`.
        two_pass(data.len() + SLACK, |out, len| unsafe { f(s, in_ptr(data), data.len() as CK_ULONG, out, len) })
    }

    pub fn encrypt_final(&self, s: CK_SESSION_HANDLE) -> Result<Zeroizing<Vec<u8>>> {
        let f = func!(self, C_EncryptFinal);
        // SAFETY: `two_pass` hands a valid output buffer and length.
        two_pass(SLACK, |out, len| unsafe { f(s, out, len) })
    }

    pub fn decrypt_final(&self, s: CK_SESSION_HANDLE) -> Result<Zeroizing<Vec<u8>>> {
        let f = func!(self, C_DecryptFinal);
        // SAFETY: `two_pass` hands a valid output buffer and length.
        two_pass(SLACK, |out, len| unsafe { f(s, out, len) })
    }

    pub fn sign(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>> {
        let f = func!(self, C_Sign);
        // SAFETY: as for `encrypt`.
        two_pass(SLACK, |out, len| unsafe { f(s, in_ptr(data), data.len() as CK_ULONG, out, len) }).map(|v| v.to_vec())
    }

    pub fn sign_update(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let f = func!(self, C_SignUpdate);
        // SAFETY: input valid for its length.
        check(unsafe { f(s, in_ptr(data), data.len() as CK_ULONG) })
    }

    pub fn sign_final(&self, s: CK_SESSION_HANDLE) -> Result<Vec<u8>> {
        let f = func!(self, C_SignFinal);
        // SAFETY: `two_pass` hands a valid output buffer and length.
        two_pass(SLACK, |out, len| unsafe { f(s, out, len) }).map(|v| v.to_vec())
    }

    pub fn verify(&self, s: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
        let f = func!(self, C_Verify);
        // SAFETY: inputs valid for their lengths.
        check(unsafe { f(s, in_ptr(data), data.len() as CK_ULONG, in_ptr(signature), signature.len() as CK_ULONG) })
    }

    pub fn verify_update(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let f = func!(self, C_VerifyUpdate);
        // SAFETY: input valid for its length.
        check(unsafe { f(s, in_ptr(data), data.len() as CK_ULONG) })
    }

    pub fn verify_final(&self, s: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
        let f = func!(self, C_VerifyFinal);
        // SAFETY: input valid for its length.
        check(unsafe { f(s, in_ptr(signature), signature.len() as CK_ULONG) })
    }

    /// `C_SessionCancel` (3.0) for the operations in `flags`; `CKR_FUNCTION_NOT_SUPPORTED`
    /// when the vendor has no 3.0 interface.
    pub fn session_cancel(&self, s: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
        let f = self.session_cancel.ok_or(Error::Rv(CKR_FUNCTION_NOT_SUPPORTED))?;
        // SAFETY: plain value arguments.
        check(unsafe { f(s, flags) })
    }

    // ---- keys ---------------------------------------------------------------------------

    pub fn generate_key(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut RawMechanism,
        template: &AttributeTemplate,
    ) -> Result<CK_OBJECT_HANDLE> {
        let f = func!(self, C_GenerateKey);
        let mut raw = raw_template(template);
        let mut handle = CK_INVALID_HANDLE;
        // SAFETY: mechanism and template live for the call; out pointer valid.
        check(unsafe { f(s, m.as_ptr(), raw.as_mut_ptr(), raw.len() as CK_ULONG, &mut handle) })?;
        Ok(handle)
    }

    pub fn generate_key_pair(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut RawMechanism,
        public: &AttributeTemplate,
        private: &AttributeTemplate,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let f = func!(self, C_GenerateKeyPair);
        let mut raw_public = raw_template(public);
        let mut raw_private = raw_template(private);
        let (mut public_handle, mut private_handle) = (CK_INVALID_HANDLE, CK_INVALID_HANDLE);
        // SAFETY: mechanism and templates live for the call; out pointers valid.
        check(unsafe {
            f(
                s,
                m.as_ptr(),
                raw_public.as_mut_ptr(),
                raw_public.len() as CK_ULONG,
                raw_private.as_mut_ptr(),
                raw_private.len() as CK_ULONG,
                &mut public_handle,
                &mut private_handle,
            )
        })?;
        Ok((public_handle, private_handle))
    }

    pub fn wrap_key(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut RawMechanism,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<Vec<u8>> {
        let f = func!(self, C_WrapKey);
        let mech = m.as_ptr();
        // SAFETY: the mechanism lives in `m` for both calls; `two_pass` hands a valid buffer.
        two_pass(SLACK, |out, len| unsafe { f(s, mech, wrapping, key, out, len) }).map(|v| v.to_vec())
    }

    pub fn unwrap_key(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut RawMechanism,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &AttributeTemplate,
    ) -> Result<CK_OBJECT_HANDLE> {
        let f = func!(self, C_UnwrapKey);
        let mut raw = raw_template(template);
        let mut handle = CK_INVALID_HANDLE;
        // SAFETY: mechanism, wrapped bytes and template live for the call.
        check(unsafe {
            f(
                s,
                m.as_ptr(),
                unwrapping,
                in_ptr(wrapped),
                wrapped.len() as CK_ULONG,
                raw.as_mut_ptr(),
                raw.len() as CK_ULONG,
                &mut handle,
            )
        })?;
        Ok(handle)
    }

    pub fn derive_key(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut RawMechanism,
        base: CK_OBJECT_HANDLE,
        template: &AttributeTemplate,
    ) -> Result<CK_OBJECT_HANDLE> {
        let f = func!(self, C_DeriveKey);
        let mut raw = raw_template(template);
        let mut handle = CK_INVALID_HANDLE;
        // SAFETY: mechanism and template live for the call.
        check(unsafe { f(s, m.as_ptr(), base, raw.as_mut_ptr(), raw.len() as CK_ULONG, &mut handle) })?;
        Ok(handle)
    }
}

impl Drop for Vendor {
    fn drop(&mut self) {
        // Held while finalising, so that `load` of the same module waits for it to end.
        let mut loaded = LOADED.lock();
        if self.initialized_by_us && self.pid == std::process::id() {
            if let Some(finalize) = self.list.C_Finalize {
                // SAFETY: C_Finalize takes NULL; no session of ours is in use any more (this
                // is the last reference to the module).
                let code = unsafe { finalize(ptr::null_mut()) };
                if code != CKR_OK {
                    tracing::warn!(module = %self.path.display(), rv = %rv_name(code), "vendor C_Finalize failed");
                } else {
                    tracing::debug!(module = %self.path.display(), "vendor module finalised");
                }
            }
        }
        let pid = std::process::id();
        loaded.retain(|l| !(l.path == self.path && l.pid == pid && l.vendor.strong_count() == 0));
    }
}

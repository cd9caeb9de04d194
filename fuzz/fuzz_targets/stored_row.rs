//! A soft token file whose rows are fuzzed. Once per process a real token is made through the
//! module (initialised, user PIN set, the fixture keys and a data object stored as token
//! objects) and its SQLite file kept in memory. Each input starts from a copy of that file,
//! changes rows with plain SQL (attribute values, types and sealed flags, object rows, meta
//! values such as the wrapped token keys, failure counters and label, the schema version),
//! then opens it through the module: `C_Initialize`, token info, a session, user login,
//! find, every attribute of every object, and an operation with each key; `C_Finalize` at the
//! end. Every call must return a CK_RV; `C_Initialize` and `C_Finalize` must succeed.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;
use rusqlite::types::Value;
use rusqlite::{params, Connection};

const META_NAMES: &[&str] = &["serial", "label", "so_wrap", "user_wrap", "so_failures", "user_failures", "generation"];

#[derive(Arbitrary, Debug, Clone)]
enum SqlValue {
    Null,
    Int(i64),
    SmallInt(i8),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl SqlValue {
    fn value(&self) -> Value {
        match self {
            SqlValue::Null => Value::Null,
            SqlValue::Int(i) => Value::Integer(*i),
            SqlValue::SmallInt(i) => Value::Integer(*i as i64),
            SqlValue::Real(r) => Value::Real(*r),
            SqlValue::Text(t) => Value::Text(t.clone()),
            SqlValue::Blob(b) => Value::Blob(b.clone()),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum MetaName {
    Known(u8),
    Other(String),
}

impl MetaName {
    fn get(&self) -> String {
        match self {
            MetaName::Known(i) => META_NAMES[*i as usize % META_NAMES.len()].to_string(),
            MetaName::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Edit {
    AttrValue { row: u16, value: SqlValue },
    /// XOR one byte of a stored value (a sealed value then fails its tag, a plain one
    /// changes).
    AttrFlip { row: u16, at: u16, xor: u8 },
    AttrTruncate { row: u16, len: u16 },
    AttrType { row: u16, ty: AttrType },
    AttrSealed { row: u16, sealed: SqlValue },
    AttrDelete { row: u16 },
    AttrInsert { object: u8, ty: AttrType, value: SqlValue, sealed: bool },
    /// Moves a row to another object (a sealed value is bound to its object's uid).
    AttrMove { row: u16, object: u8 },
    ObjectUid { object: u8, uid: SqlValue },
    ObjectPrivate { object: u8, private: SqlValue },
    ObjectDelete { object: u8 },
    Meta { name: MetaName, value: SqlValue },
    MetaFlip { name: u8, at: u16, xor: u8 },
    MetaDelete { name: u8 },
    UserVersion(i8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    edits: Vec<Edit>,
    /// Log in as the SO instead of the user.
    so: bool,
    /// Which key pairs to use besides the secret keys: 1 RSA, 2 P-256, 4 Ed25519.
    operations: u8,
}

struct Base {
    dir: PathBuf,
    db: PathBuf,
    file: Vec<u8>,
    rows: Vec<(i64, i64)>,
    objects: Vec<i64>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        keyfront_linked();
        let dir = scratch_dir("stored_row");
        let db = dir.join("token.db");
        configure(&dir, &db);
        unsafe {
            check("C_Initialize", ck::C_Initialize(std::ptr::null_mut()));
            let session = init_token_and_login();
            import_keys(session, true);
            must_create(
                session,
                "data object",
                &[
                    (CKA_CLASS, ulong(CKO_DATA)),
                    (CKA_TOKEN, flag(true)),
                    (CKA_PRIVATE, flag(false)),
                    (CKA_LABEL, b"data".to_vec()),
                    (CKA_APPLICATION, b"fuzz".to_vec()),
                    (CKA_VALUE, b"some data".to_vec()),
                ],
            );
            check("C_Finalize", ck::C_Finalize(std::ptr::null_mut()));
        }
        // Everything in the main file, no -wal left.
        let conn = Connection::open(&db).expect("open base token");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
        let rows = conn
            .prepare("SELECT object_id, type FROM attributes ORDER BY object_id, type")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>())
            .expect("list attributes");
        let objects = conn
            .prepare("SELECT id FROM objects ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>())
            .expect("list objects");
        drop(conn);
        let file = std::fs::read(&db).expect("read base token");
        assert!(!rows.is_empty() && !objects.is_empty());
        Base { dir, db, file, rows, objects }
    })
}

/// Writes the base file under the token's name (a new inode; no -wal, no -shm).
fn restore(b: &Base) {
    for suffix in ["-wal", "-shm"] {
        let mut p = b.db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let tmp = b.dir.join("token.db.new");
    std::fs::write(&tmp, &b.file).expect("write token copy");
    std::fs::rename(&tmp, &b.db).expect("rename token copy");
}

fn edit(conn: &Connection, b: &Base, e: &Edit) -> rusqlite::Result<()> {
    let row = |i: &u16| b.rows[*i as usize % b.rows.len()];
    let object = |i: &u8| b.objects[*i as usize % b.objects.len()];
    let meta = |i: &u8| META_NAMES[*i as usize % META_NAMES.len()];
    let flip = |v: Option<Vec<u8>>, at: &u16, xor: &u8| {
        v.map(|mut v| {
            if !v.is_empty() {
                let i = *at as usize % v.len();
                v[i] ^= xor;
            }
            v
        })
    };
    match e {
        Edit::AttrValue { row: r, value } => {
            let (o, t) = row(r);
            conn.execute("UPDATE attributes SET value = ?1 WHERE object_id = ?2 AND type = ?3", params![value.value(), o, t])?;
        }
        Edit::AttrFlip { row: r, at, xor } => {
            let (o, t) = row(r);
            let v: Option<Vec<u8>> = conn
                .query_row("SELECT value FROM attributes WHERE object_id = ?1 AND type = ?2", params![o, t], |r| r.get(0))
                .ok();
            if let Some(v) = flip(v, at, xor) {
                conn.execute("UPDATE attributes SET value = ?1 WHERE object_id = ?2 AND type = ?3", params![v, o, t])?;
            }
        }
        Edit::AttrTruncate { row: r, len } => {
            let (o, t) = row(r);
            conn.execute(
                "UPDATE attributes SET value = substr(value, 1, ?1) WHERE object_id = ?2 AND type = ?3",
                params![*len as i64, o, t],
            )?;
        }
        Edit::AttrType { row: r, ty } => {
            let (o, t) = row(r);
            conn.execute("UPDATE attributes SET type = ?1 WHERE object_id = ?2 AND type = ?3", params![ty.get() as i64, o, t])?;
        }
        Edit::AttrSealed { row: r, sealed } => {
            let (o, t) = row(r);
            conn.execute("UPDATE attributes SET sealed = ?1 WHERE object_id = ?2 AND type = ?3", params![sealed.value(), o, t])?;
        }
        Edit::AttrDelete { row: r } => {
            let (o, t) = row(r);
            conn.execute("DELETE FROM attributes WHERE object_id = ?1 AND type = ?2", params![o, t])?;
        }
        Edit::AttrInsert { object: i, ty, value, sealed } => {
            conn.execute(
                "INSERT OR REPLACE INTO attributes (object_id, type, value, sealed) VALUES (?1, ?2, ?3, ?4)",
                params![object(i), ty.get() as i64, value.value(), sealed],
            )?;
        }
        Edit::AttrMove { row: r, object: i } => {
            let (o, t) = row(r);
            conn.execute(
                "UPDATE OR REPLACE attributes SET object_id = ?1 WHERE object_id = ?2 AND type = ?3",
                params![object(i), o, t],
            )?;
        }
        Edit::ObjectUid { object: i, uid } => {
            conn.execute("UPDATE objects SET uid = ?1 WHERE id = ?2", params![uid.value(), object(i)])?;
        }
        Edit::ObjectPrivate { object: i, private } => {
            conn.execute("UPDATE objects SET private = ?1 WHERE id = ?2", params![private.value(), object(i)])?;
        }
        Edit::ObjectDelete { object: i } => {
            conn.execute("DELETE FROM objects WHERE id = ?1", params![object(i)])?;
        }
        Edit::Meta { name, value } => {
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name.get(), value.value()],
            )?;
        }
        Edit::MetaFlip { name, at, xor } => {
            let v: Option<Vec<u8>> =
                conn.query_row("SELECT CAST(value AS BLOB) FROM meta WHERE name = ?1", params![meta(name)], |r| r.get(0)).ok();
            if let Some(v) = flip(v, at, xor) {
                conn.execute("UPDATE meta SET value = ?1 WHERE name = ?2", params![v, meta(name)])?;
            }
        }
        Edit::MetaDelete { name } => {
            conn.execute("DELETE FROM meta WHERE name = ?1", params![meta(name)])?;
        }
        Edit::UserVersion(v) => {
            conn.pragma_update(None, "user_version", *v as i64)?;
        }
    }
    Ok(())
}

/// Attributes read from every object found.
const READ_TYPES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS, CKA_KEY_TYPE, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_ID, CKA_VALUE, CKA_VALUE_LEN, CKA_SENSITIVE,
    CKA_EXTRACTABLE, CKA_LOCAL, CKA_MODULUS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
    CKA_EC_PARAMS, CKA_EC_POINT, CKA_PUBLIC_KEY_INFO, CKA_ALLOWED_MECHANISMS, CKA_UNIQUE_ID, CKA_APPLICATION,
    CKA_CHECK_VALUE, CKA_START_DATE,
];

/// `C_GetAttributeValue` for all of `READ_TYPES` at once with the length protocol (a
/// sensitive or invalid attribute makes the call fail but the others are still filled);
/// the readable values.
fn read_all(s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> Vec<Option<Vec<u8>>> {
    let mut attrs: Vec<CK_ATTRIBUTE> =
        READ_TYPES.iter().map(|ty| CK_ATTRIBUTE { type_: *ty, pValue: std::ptr::null_mut(), ulValueLen: 0 }).collect();
    let rv = unsafe { ck::C_GetAttributeValue(s, h, attrs.as_mut_ptr(), attrs.len() as CK_ULONG) };
    if !matches!(rv, CKR_OK | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID) {
        return vec![None; READ_TYPES.len()];
    }
    let mut values: Vec<Option<Vec<u8>>> = attrs
        .iter()
        .map(|a| {
            if a.ulValueLen == CK_UNAVAILABLE_INFORMATION {
                return None;
            }
            assert!(a.ulValueLen < 1 << 24, "attribute {:#x} claims {} bytes", a.type_, a.ulValueLen);
            Some(vec![0u8; a.ulValueLen as usize])
        })
        .collect();
    for (a, v) in attrs.iter_mut().zip(values.iter_mut()) {
        if let Some(v) = v {
            a.pValue = v.as_mut_ptr() as *mut _;
        }
    }
    let wanted: Vec<CK_ULONG> = attrs.iter().map(|a| a.ulValueLen).collect();
    unsafe { ck::C_GetAttributeValue(s, h, attrs.as_mut_ptr(), attrs.len() as CK_ULONG) };
    for ((a, v), want) in attrs.iter().zip(values.iter_mut()).zip(wanted) {
        match v {
            Some(buf) if a.ulValueLen != CK_UNAVAILABLE_INFORMATION => {
                assert!(a.ulValueLen <= want, "attribute {:#x} grew from {want} to {} bytes", a.type_, a.ulValueLen);
                buf.truncate(a.ulValueLen as usize);
            }
            _ => *v = None,
        }
    }
    values
}

fn find(s: CK_SESSION_HANDLE, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Vec<CK_OBJECT_HANDLE> {
    let mut t = CTemplate::new(template);
    let mut found = vec![0; 64];
    let mut count: CK_ULONG = 0;
    unsafe {
        if ck::C_FindObjectsInit(s, t.ptr(), t.len()) != CKR_OK {
            return Vec::new();
        }
        let rv = ck::C_FindObjects(s, found.as_mut_ptr(), found.len() as CK_ULONG, &mut count);
        ck::C_FindObjectsFinal(s);
        if rv != CKR_OK {
            return Vec::new();
        }
    }
    assert!(count as usize <= found.len());
    found.truncate(count as usize);
    found
}

/// One operation with a key, picked by its class and type.
fn use_key(s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE, class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE) {
    let mut iv = [0u8; 12];
    let mut gcm = CK_GCM_PARAMS { pIv: iv.as_mut_ptr(), ulIvLen: 12, ulIvBits: 96, pAAD: std::ptr::null_mut(), ulAADLen: 0, ulTagBits: 128 };
    let (kind, param, len): (CK_MECHANISM_TYPE, *mut std::ffi::c_void, usize) = match (class, key_type) {
        (CKO_SECRET_KEY, CKK_AES) => (CKM_AES_GCM, &mut gcm as *mut _ as *mut _, std::mem::size_of::<CK_GCM_PARAMS>()),
        (CKO_SECRET_KEY, _) => (CKM_SHA256_HMAC, std::ptr::null_mut(), 0),
        (_, CKK_RSA) if class == CKO_PUBLIC_KEY => (CKM_RSA_PKCS, std::ptr::null_mut(), 0),
        (_, CKK_RSA) => (CKM_SHA256_RSA_PKCS, std::ptr::null_mut(), 0),
        (_, CKK_EC) => (CKM_ECDSA_SHA256, std::ptr::null_mut(), 0),
        (_, CKK_EC_EDWARDS) => (CKM_EDDSA, std::ptr::null_mut(), 0),
        _ => return,
    };
    let mut m = CK_MECHANISM { mechanism: kind, pParameter: param, ulParameterLen: len as CK_ULONG };
    let mut data = *b"stored row fuzz";
    let mut out = vec![0u8; 1024];
    let mut out_len = out.len() as CK_ULONG;
    unsafe {
        match (class, kind) {
            (CKO_SECRET_KEY, CKM_AES_GCM) | (CKO_PUBLIC_KEY, CKM_RSA_PKCS) => {
                if ck::C_EncryptInit(s, &mut m, h) == CKR_OK {
                    ck::C_Encrypt(s, data.as_mut_ptr(), data.len() as CK_ULONG, out.as_mut_ptr(), &mut out_len);
                }
            }
            (CKO_PUBLIC_KEY, _) => {
                if ck::C_VerifyInit(s, &mut m, h) == CKR_OK {
                    ck::C_Verify(s, data.as_mut_ptr(), data.len() as CK_ULONG, out.as_mut_ptr(), 64);
                }
            }
            _ => {
                if ck::C_SignInit(s, &mut m, h) == CKR_OK {
                    ck::C_Sign(s, data.as_mut_ptr(), data.len() as CK_ULONG, out.as_mut_ptr(), &mut out_len);
                }
            }
        }
        ck::C_SessionCancel(s, ALL_OPERATIONS);
    }
}

fuzz_target!(|input: Input| {
    let b = base();
    restore(b);
    {
        let conn = Connection::open(&b.db).expect("open token copy");
        for e in &input.edits {
            // Edits the schema refuses (NULL values, duplicate keys) are skipped.
            let result = edit(&conn, b, e);
            debug!("{e:?}: {result:?}");
        }
    }
    unsafe {
        check("C_Initialize", ck::C_Initialize(std::ptr::null_mut()));
        let mut info: CK_TOKEN_INFO = std::mem::zeroed();
        ck::C_GetTokenInfo(0, &mut info);
        let mut session = 0;
        if ck::C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, std::ptr::null_mut(), None, &mut session) == CKR_OK {
            let (user, pin) = if input.so { (CKU_SO, SO_PIN) } else { (CKU_USER, USER_PIN) };
            let rv = ck::C_Login(session, user, pin.as_ptr() as *mut _, pin.len() as CK_ULONG);
            debug!("C_Login: {}", keyfront::names::rv_name(rv));
            let mut handles = find(session, &[]);
            handles.extend(find(session, &[(CKA_VALUE, (0u8..32).collect())]));
            handles.extend(find(session, &[(CKA_CLASS, ulong(CKO_SECRET_KEY)), (CKA_LABEL, b"aes".to_vec())]));
            debug!("found {} objects", handles.len());
            for &h in &handles {
                let mut size = 0;
                ck::C_GetObjectSize(session, h, &mut size);
                let values = read_all(session, h);
                let ulong_of = |i: usize| {
                    values[i].as_deref().and_then(|v| v.try_into().ok()).map(CK_ULONG::from_ne_bytes)
                };
                if let (Some(class), Some(key_type)) = (ulong_of(0), ulong_of(1)) {
                    // Secret keys always; the slower asymmetric ones when the input asks.
                    let bit = match key_type {
                        CKK_RSA => 1,
                        CKK_EC => 2,
                        CKK_EC_EDWARDS => 4,
                        _ => 0,
                    };
                    if bit == 0 || input.operations & bit != 0 {
                        use_key(session, h, class, key_type);
                    }
                }
            }
            ck::C_Logout(session);
            ck::C_CloseAllSessions(0);
        }
        check("C_Finalize", ck::C_Finalize(std::ptr::null_mut()));
    }
});

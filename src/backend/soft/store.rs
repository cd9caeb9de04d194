//! The soft token's SQLite file: schema, migrations, and a small pool of connections so
//! readers in several threads do not queue behind one another. Every change is one
//! `BEGIN IMMEDIATE` transaction; WAL with `synchronous=FULL` makes a committed change survive
//! power loss.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// The newest schema this build reads and writes.
const SCHEMA_VERSION: i64 = 1;

/// Each migration takes the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
     CREATE TABLE objects (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         uid BLOB NOT NULL UNIQUE,
         private INTEGER NOT NULL
     );
     CREATE TABLE attributes (
         object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
         type INTEGER NOT NULL,
         value BLOB NOT NULL,
         sealed INTEGER NOT NULL,
         PRIMARY KEY (object_id, type)
     ) WITHOUT ROWID;
     CREATE INDEX attributes_by_value ON attributes(type, value) WHERE sealed = 0;",
];

/// Lock waits between processes: long enough that contention never surfaces as an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_SIZE: usize = 8;

/// How stale this process's view of another process's writes may be.
pub const GENERATION_RECHECK: Duration = Duration::from_millis(10);

pub struct Store {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    local_writes: AtomicU64,
    /// The persisted generation as last read, and when (nanoseconds since `epoch`; 0: never).
    persisted: AtomicU64,
    checked_at: AtomicU64,
    epoch: Instant,
    rechecking: Mutex<()>,
    /// Opened read-only as immutable, because the medium cannot be written.
    immutable: AtomicBool,
    /// Opened without write access (the file's mode or the medium).
    read_only: AtomicBool,
}

/// A pooled connection, returned to the pool when dropped.
pub struct PooledConnection<'a> {
    store: &'a Store,
    conn: Option<Connection>,
}

impl std::ops::Deref for PooledConnection<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl std::ops::DerefMut for PooledConnection<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Drop for PooledConnection<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.store.idle.lock();
            if idle.len() < POOL_SIZE {
                idle.push(conn);
            }
        }
    }
}

impl Store {
    /// Opens (creating if needed) the token file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        create_private(path)?;
        let store = Store {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            local_writes: AtomicU64::new(0),
            persisted: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
            epoch: Instant::now(),
            rechecking: Mutex::new(()),
            immutable: AtomicBool::new(false),
            read_only: AtomicBool::new(false),
        };
        let open_migrated = |store: &Store| store.connect().and_then(|mut conn| migrate(&mut conn).map(|()| conn));
        let opened = match open_migrated(&store) {
            // On a read-only file system SQLite cannot create the WAL index: read the file as
            // immutable instead (nobody can change it there).
            Err(Error::Store(e)) if read_only_medium(&e) => {
                tracing::warn!(file = %path.display(), "token file is on a read-only medium: opened read-only");
                store.immutable.store(true, Ordering::Release);
                open_migrated(&store)
            }
            other => other,
        };
        let conn = opened.map_err(|e| {
            tracing::error!(file = %path.display(), "token file cannot be opened: {e}");
            e
        });
        store.idle.lock().push(conn?);
        Ok(store)
    }

    fn connect(&self) -> Result<Connection> {
        if self.immutable.load(Ordering::Acquire) {
            let uri = format!("file:{}?immutable=1", uri_path(&self.path));
            let conn = Connection::open_with_flags(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| {
            self.read_only.store(true, Ordering::Release);
            Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Destroyed objects and replaced wrapped keys are overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        Ok(conn)
    }

    pub fn conn(&self) -> Result<PooledConnection<'_>> {
        let pooled = self.idle.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        Ok(PooledConnection { store: self, conn: Some(conn) })
    }

    /// Runs `f` in one write transaction; nothing of it is kept unless it returns `Ok`.
    /// Every committed write moves the token's generation on (see [`Store::generation`]).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('generation', 1)
             ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [],
        )?;
        tx.commit()?;
        self.local_writes.fetch_add(1, Ordering::AcqRel);
        Ok(out)
    }

    /// A number that changes with every write: at once for writes of this process, and
    /// within `GENERATION_RECHECK` for writes of other processes, so that a hot key is not
    /// re-read from the file on every operation. Lock-free on the fast path: one thread at a
    /// time re-reads the persisted value while the others use the last one.
    pub fn generation(&self) -> Result<u64> {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let due = now.saturating_sub(self.checked_at.load(Ordering::Acquire)) >= GENERATION_RECHECK.as_nanos() as u64;
        if due {
            if let Some(_guard) = self.rechecking.try_lock() {
                let conn = self.conn()?;
                let persisted: i64 = meta_get(&conn, "generation")?.unwrap_or(0);
                self.persisted.store(persisted as u64, Ordering::Release);
                self.checked_at.store(now.max(1), Ordering::Release);
            }
        }
        Ok(self.persisted.load(Ordering::Acquire).wrapping_add(self.local_writes.load(Ordering::Acquire)))
    }

    /// Whether writes are impossible (`CKF_WRITE_PROTECTED`).
    pub fn is_read_only(&self) -> bool {
        self.immutable.load(Ordering::Acquire) || self.read_only.load(Ordering::Acquire)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the token's directory (0700) and file (0600) if they do not exist yet; SQLite
/// gives its -wal and -shm files the same mode as the database file.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |what: &Path, e: std::io::Error| Error::Config(format!("cannot create {}: {e}", what.display()));
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| fail(dir, e))?;
        }
    }
    if !path.exists() {
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            // Another process created it first.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(path, e)),
        }
    }
    Ok(())
}

/// SQLite's way of saying the medium cannot be written to at all.
fn read_only_medium(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi::ErrorCode;
    matches!(e.sqlite_error_code(), Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly))
}

/// A path for an SQLite `file:` URI: the characters URIs give a meaning are escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Checks the file's structure once per process before it is trusted: a damaged file is then
/// a clean error naming it, not wrong answers later.
fn check_structure(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let problems: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(Error::Rv(cryptoki_sys::CKR_DEVICE_ERROR)).inspect_err(|_| {
        tracing::error!("token file is damaged: {}", problems.join("; "));
    })
}

fn migrate(conn: &mut Connection) -> Result<()> {
    check_structure(conn)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Internal(format!(
            "token file has schema {version}, newer than this keyfront ({SCHEMA_VERSION})"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!("token file is not in WAL mode ({mode})");
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated while we waited for the lock.
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for step in MIGRATIONS.iter().skip(current as usize) {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Reads a `meta` value.
pub fn meta_get<T: rusqlite::types::FromSql>(conn: &Connection, name: &str) -> Result<Option<T>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = ?1", params![name], |r| r.get(0))
        .optional()?)
}

pub fn meta_set(conn: &Connection, name: &str, value: impl rusqlite::ToSql) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

pub fn meta_delete(conn: &Connection, name: &str) -> Result<()> {
    conn.execute("DELETE FROM meta WHERE name = ?1", params![name])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn user_version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    fn schema_objects(conn: &Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    const CURRENT_SCHEMA: [&str; 4] = ["table attributes", "index attributes_by_value", "table meta", "table objects"];

    /// A new file gets the whole schema and WAL mode; the mode is kept in the file (header
    /// bytes 18 and 19 are 2 in WAL mode), so every later connection, in any process, uses it.
    #[test]
    fn fresh_file_is_wal_at_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        let conn = store.conn().unwrap();
        assert_eq!(user_version(&conn), SCHEMA_VERSION);
        assert_eq!(schema_objects(&conn), CURRENT_SCHEMA);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let header = std::fs::read(&path).unwrap();
        assert_eq!((header[18], header[19]), (2, 2), "file format versions in the header");
        let fresh = store.connect().unwrap();
        let mode: String = fresh.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal", "a new connection");
    }

    /// A file from a newer keyfront is left alone: its layout may mean something this build
    /// would get wrong.
    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let err = Store::open(&path).err().expect("a newer schema opened");
        assert_eq!(err.rv(), cryptoki_sys::CKR_GENERAL_ERROR);
        let text = err.to_string();
        assert!(text.contains(&format!("schema {}, newer than this keyfront ({SCHEMA_VERSION})", SCHEMA_VERSION + 1)), "{text}");
        let conn = Connection::open(&path).unwrap();
        assert_eq!(user_version(&conn), SCHEMA_VERSION + 1);
        assert!(schema_objects(&conn).is_empty(), "the file was changed: {:?}", schema_objects(&conn));
    }

    /// A file at the current version is opened as it is, objects kept (no step runs again).
    #[test]
    fn current_schema_is_not_migrated_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                tx.execute("INSERT INTO objects (uid, private) VALUES (x'01', 0)", [])?;
                meta_set(tx, "label", "kept")
            })
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let conn = store.conn().unwrap();
        assert_eq!(user_version(&conn), SCHEMA_VERSION);
        let objects: i64 = conn.query_row("SELECT count(*) FROM objects", [], |r| r.get(0)).unwrap();
        assert_eq!(objects, 1);
        assert_eq!(meta_get::<String>(&conn, "label").unwrap().as_deref(), Some("kept"));
    }

    /// Two openers of one new file (two processes starting at once, here two threads with
    /// connections of their own): both succeed, and the schema is made once.
    #[test]
    fn two_stores_open_one_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        for round in 0..5 {
            let path = path.with_extension(format!("{round}.db"));
            let barrier = Arc::new(Barrier::new(2));
            let openers: Vec<_> = (0..2)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let store = Store::open(&path)?;
                        store.write(|tx| meta_set(tx, "opened", 1))
                    })
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
            let conn = Connection::open(&path).unwrap();
            assert_eq!(user_version(&conn), SCHEMA_VERSION);
            assert_eq!(schema_objects(&conn), CURRENT_SCHEMA);
            assert_eq!(meta_get::<i64>(&conn, "generation").unwrap(), Some(2), "both writes kept");
        }
    }
}

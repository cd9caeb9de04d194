//! The one error type of the core. Every failure carries the `CK_RV` it becomes at the ABI,
//! and sometimes context for the log; `src/abi` maps it in one place (`Error::rv`).

use cryptoki_sys::*;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PKCS#11 return code with nothing more to say.
    #[error("{}", rv_name(*.0))]
    Rv(CK_RV),
    /// An output buffer is too small; the caller is told the length it needs.
    #[error("buffer too small: {0} bytes needed")]
    BufferTooSmall(usize),
    /// The token file could not be read or written.
    #[error("token store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The configuration file is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// A key service (a cloud KMS) failed or refused; `message` says which and what it said,
    /// for the log.
    #[error("{message}")]
    Service { rv: CK_RV, message: String },
    /// Anything unexpected, with what we know of it.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The return code the application sees.
    pub fn rv(&self) -> CK_RV {
        match self {
            Error::Rv(rv) => *rv,
            Error::BufferTooSmall(_) => CKR_BUFFER_TOO_SMALL,
            Error::Store(e) => store_rv(e),
            Error::Service { rv, .. } => *rv,
            Error::Config(_) | Error::Internal(_) => CKR_GENERAL_ERROR,
        }
    }
}

impl From<CK_RV> for Error {
    fn from(rv: CK_RV) -> Self {
        Error::Rv(rv)
    }
}

/// SQLite failures are device errors to the caller, except the ones that say what happened
/// to the medium in PKCS#11's own words.
fn store_rv(e: &rusqlite::Error) -> CK_RV {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => CKR_TOKEN_WRITE_PROTECTED,
        Some(ErrorCode::DiskFull) | Some(ErrorCode::OutOfMemory) => CKR_DEVICE_MEMORY,
        _ => CKR_DEVICE_ERROR,
    }
}

/// Shorthand used throughout the core: `return Err(rv(CKR_…))`.
pub fn rv(code: CK_RV) -> Error {
    Error::Rv(code)
}

pub use crate::names::rv_name;

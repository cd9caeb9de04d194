//! keyfront: a PKCS#11 3.0 provider. See `docs/` for users; for readers of the code the
//! layers are `abi` (the C boundary) → `core` (sessions, login, policy, operations) →
//! `backend` (where keys live), with `object` (attribute rules) and `mechanism` (crypto) on
//! the side.

/// The version `C_GetInfo` reports, and keyfront's own tokens as their hardware and firmware
/// versions.
pub const LIBRARY_VERSION: cryptoki_sys::CK_VERSION = cryptoki_sys::CK_VERSION { major: 0, minor: 1 };

pub mod abi;
pub mod backend;
pub mod config;
pub mod core;
pub mod error;
pub mod logging;
pub mod mechanism;
pub mod names;
pub mod object;

//! keyfront: a PKCS#11 3.0 provider. See `docs/` for users; for readers of the code the
//! layers are `abi` (the C boundary) → `core` (sessions, login, policy, operations) →
//! `backend` (where keys live), with `object` (attribute rules) and `mechanism` (crypto) on
//! the side.

pub mod abi;
pub mod backend;
pub mod config;
pub mod core;
pub mod error;
pub mod logging;
pub mod mechanism;
pub mod names;
pub mod object;

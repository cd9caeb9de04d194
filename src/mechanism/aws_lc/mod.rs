//! The asymmetric mechanisms on AWS-LC (`aws-lc-rs`), built with the `aws-lc` cargo feature.
//! RustCrypto (`rsa.rs`, `ec.rs`, `eddsa.rs`) stays the default; with the feature,
//! `mechanism::asym_signer`/`asym_cipher`, ECDH's shared secret and RSA key generation come
//! here instead (the `#[cfg(feature = "aws-lc")]` lines in `mod.rs`, `ec.rs` and `keys.rs`).
//!
//! Each entry point first builds the RustCrypto operation: that checks the mechanism, its
//! parameters and the key exactly as the default build does, so every error path returns the
//! same `CK_RV`, and it is what runs the cases aws-lc-rs's safe API cannot do:
//!
//! - `CKM_RSA_PKCS` decryption: AWS-LC reports a bad PKCS #1 v1.5 padding as an error (in
//!   constant time, but an error), where RustCrypto's implicit rejection returns a
//!   pseudo-random message (`docs/security.md`);
//! - `CKM_RSA_X_509` (raw RSA) in all four directions: aws-lc-rs has no raw RSA;
//! - SHA-1 RSA signing (`CKM_SHA1_RSA_PKCS`, `CKM_SHA1_RSA_PKCS_PSS`, and `CKM_RSA_PKCS` on a
//!   SHA-1 DigestInfo) and SHA-1 PSS verification: aws-lc-rs only signs with SHA-2;
//! - `CKM_RSA_PKCS` signing or verification of anything but a SHA-256/384/512 DigestInfo
//!   (which aws-lc-rs signs as a digest: the same PKCS #1 v1.5 block);
//! - RSA keys AWS-LC refuses but RustCrypto takes (a public exponent over 33 bits), and key
//!   generation with a public exponent other than 65537.
//!
//! Parsed AWS-LC keys are kept on the key object (`Object::prepared`), built once per object.

pub(crate) mod ec;
pub(crate) mod eddsa;
pub(crate) mod rsa;

use aws_lc_rs::digest;

use super::keys::HashAlg;

/// The aws-lc-rs digest algorithm of a `HashAlg`.
fn digest_alg(hash: HashAlg) -> &'static digest::Algorithm {
    match hash {
        HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &digest::SHA256,
        HashAlg::Sha384 => &digest::SHA384,
        HashAlg::Sha512 => &digest::SHA512,
    }
}

/// A digest computed here (or given by the caller), as aws-lc-rs takes it.
fn import_digest(hash: HashAlg, value: &[u8]) -> Option<digest::Digest> {
    digest::Digest::import_less_safe(value, digest_alg(hash)).ok()
}

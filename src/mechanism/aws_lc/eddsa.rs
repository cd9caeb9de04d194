//! `CKM_EDDSA` (pure Ed25519) on AWS-LC. Like the RustCrypto build it buffers the message,
//! and signatures are the same (Ed25519 is deterministic); verification refuses S ≥ L.

use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, ParsedPublicKey, ED25519};
use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::super::eddsa as rust_crypto;
use super::super::keys;
use super::super::{Mechanism, Secret, Signer};
use crate::error::{rv, Result};
use crate::object::Object;

const SIGNATURE_LEN: usize = 64;

/// The AWS-LC signing key of a private key object.
#[derive(Clone)]
struct SigningKey(Arc<Ed25519KeyPair>);

/// The AWS-LC verification key of a public key object, or of a private key object's public
/// key.
#[derive(Clone)]
struct VerifyingKey(Arc<ParsedPublicKey>);

enum Key {
    Signing(Arc<Ed25519KeyPair>),
    Verifying(Arc<ParsedPublicKey>),
}

struct EddsaSigner {
    key: Key,
    message: Secret,
}

/// `eddsa::signer` on AWS-LC.
pub(crate) fn signer(mechanism: &Mechanism, key: &Object, sign: bool) -> Result<Box<dyn Signer>> {
    // Checks the mechanism, its parameters and the key as the default build does.
    rust_crypto::signer(mechanism, key, sign)?;
    let key = if sign {
        let key = key.prepared(|o| {
            let seed = keys::ed25519_private(o)?.to_bytes();
            let pair = Ed25519KeyPair::from_seed_unchecked(&Zeroizing::new(seed)[..])
                .map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
            Ok(SigningKey(Arc::new(pair)))
        })?;
        Key::Signing(key.0)
    } else {
        let key = key.prepared(|o| {
            let public = keys::ed25519_public(o)?;
            let key = ParsedPublicKey::new(&ED25519, public.as_bytes()).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
            Ok(VerifyingKey(Arc::new(key)))
        })?;
        Key::Verifying(key.0)
    };
    Ok(Box::new(EddsaSigner { key, message: Zeroizing::new(Vec::new()) }))
}

impl Signer for EddsaSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.message.extend_from_slice(data);
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        let Key::Signing(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        let signature = key.try_sign(&self.message).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
        Ok(signature.as_ref().to_vec())
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != SIGNATURE_LEN {
            return Err(rv(CKR_SIGNATURE_LEN_RANGE));
        }
        let Key::Verifying(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        key.verify_sig(&self.message, signature).map_err(|_| rv(CKR_SIGNATURE_INVALID))
    }
}

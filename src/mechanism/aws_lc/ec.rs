//! P-256 on AWS-LC: ECDSA signatures and verification, and the ECDH shared secret.
//!
//! One difference from the RustCrypto build: AWS-LC's ECDSA nonces are random (drawn from
//! its DRBG with the key and digest mixed in), not RFC 6979's deterministic ones, so signing
//! the same data twice gives two different valid signatures.

use std::sync::Arc;

use aws_lc_rs::agreement;
use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    EcdsaKeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use cryptoki_sys::*;
use p256::elliptic_curve::sec1::ToSec1Point;
use zeroize::Zeroizing;

use super::super::ec::{self as rust_crypto, field_hash, parse_signature};
use super::super::keys::{self, HashAlg, Hasher};
use super::super::{Mechanism, Secret, Signer};
use crate::error::{rv, Result};
use crate::object::Object;

/// The AWS-LC signing key of a private key object.
#[derive(Clone)]
struct SigningKey(Arc<EcdsaKeyPair>);

/// The AWS-LC verification key of a public key object, or of a private key object's public
/// point.
#[derive(Clone)]
struct VerifyingKey(Arc<ParsedPublicKey>);

/// The AWS-LC ECDH key of a private key object.
#[derive(Clone)]
struct AgreementKey(Arc<agreement::PrivateKey>);

fn uncompressed(point: &p256::PublicKey) -> Vec<u8> {
    point.to_sec1_point(false).as_bytes().to_vec()
}

fn scalar(secret: &p256::SecretKey) -> Secret {
    Zeroizing::new(secret.to_bytes().to_vec())
}

fn signing_key(object: &Object) -> Result<Arc<EcdsaKeyPair>> {
    let key = object.prepared(|o| {
        let secret = keys::p256_private(o)?;
        let public = uncompressed(&secret.public_key());
        let pair =
            EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &scalar(&secret), &public)
                .map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
        Ok(SigningKey(Arc::new(pair)))
    })?;
    Ok(key.0)
}

fn verifying_key(object: &Object) -> Result<Arc<ParsedPublicKey>> {
    let key = object.prepared(|o| {
        let point = uncompressed(&keys::p256_public(o)?);
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
        Ok(VerifyingKey(Arc::new(key)))
    })?;
    Ok(key.0)
}

enum Key {
    Signing(Arc<EcdsaKeyPair>),
    Verifying(Arc<ParsedPublicKey>),
}

enum Input {
    /// `CKM_ECDSA`: the caller's hash.
    Buffer(Secret),
    Hash(Hasher),
}

struct EcdsaSigner {
    key: Key,
    input: Input,
}

/// `ec::signer` on AWS-LC.
pub(crate) fn signer(mechanism: &Mechanism, key: &Object, sign: bool) -> Result<Box<dyn Signer>> {
    // Checks the mechanism, its parameters and the key as the default build does.
    rust_crypto::signer(mechanism, key, sign)?;
    let input = match mechanism.kind {
        CKM_ECDSA_SHA1 => Input::Hash(HashAlg::Sha1.hasher()),
        CKM_ECDSA_SHA256 => Input::Hash(HashAlg::Sha256.hasher()),
        CKM_ECDSA_SHA384 => Input::Hash(HashAlg::Sha384.hasher()),
        CKM_ECDSA_SHA512 => Input::Hash(HashAlg::Sha512.hasher()),
        _ => Input::Buffer(Zeroizing::new(Vec::new())),
    };
    let key = if sign { Key::Signing(signing_key(key)?) } else { Key::Verifying(verifying_key(key)?) };
    Ok(Box::new(EcdsaSigner { key, input }))
}

impl EcdsaSigner {
    /// The hash as ECDSA on P-256 takes it (32 bytes), as a "SHA-256" digest for aws-lc-rs:
    /// ECDSA only uses the digest's value, which `field_hash` has already cut to the order's
    /// length.
    fn digest(&self) -> Result<digest::Digest> {
        let z = match &self.input {
            Input::Buffer(b) => field_hash(b),
            Input::Hash(h) => field_hash(&h.finish()),
        };
        digest::Digest::import_less_safe(&z, &digest::SHA256).map_err(|_| rv(CKR_GENERAL_ERROR))
    }
}

impl Signer for EcdsaSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.input {
            Input::Buffer(b) => b.extend_from_slice(data),
            Input::Hash(h) => h.update(data),
        }
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        let Key::Signing(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        let signature = key.sign_digest(&self.digest()?).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
        Ok(signature.as_ref().to_vec())
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        let bytes = parse_signature(signature)?;
        let Key::Verifying(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        key.verify_digest_sig(&self.digest()?, &bytes).map_err(|_| rv(CKR_SIGNATURE_INVALID))
    }
}

/// A new P-256 key pair from AWS-LC: the private scalar and the public point (uncompressed
/// SEC1), about five times faster than the RustCrypto generation.
pub(crate) fn generate() -> Result<(Secret, Vec<u8>)> {
    use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
    let private = agreement::PrivateKey::generate(&agreement::ECDH_P256).map_err(|_| rv(CKR_FUNCTION_FAILED))?;
    let scalar: EcPrivateKeyBin<'static> = private.as_be_bytes().map_err(|_| rv(CKR_FUNCTION_FAILED))?;
    let public = private.compute_public_key().map_err(|_| rv(CKR_FUNCTION_FAILED))?;
    Ok((Zeroizing::new(scalar.as_ref().to_vec()), public.as_ref().to_vec()))
}

/// ECDH's shared x-coordinate Z of a P-256 private key object (whose scalar `secret` the
/// caller has read) and a checked peer point.
pub(crate) fn shared_secret(key: &Object, secret: &p256::SecretKey, peer: &p256::PublicKey) -> Result<Secret> {
    let private = key.prepared(|_| {
        let private = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &scalar(secret))
            .map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
        Ok(AgreementKey(Arc::new(private)))
    })?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, uncompressed(peer));
    agreement::agree(&private.0, peer, rv(CKR_MECHANISM_PARAM_INVALID), |z| Ok(Zeroizing::new(z.to_vec())))
}

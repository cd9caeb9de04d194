//! What a key service (AWS KMS, Vault Transit…) must do for a cloud slot. `CloudToken` turns
//! these few calls into PKCS#11 objects and operations; each service folder implements them
//! over its own HTTP API.

use zeroize::Zeroizing;

use crate::error::Result;

/// The kinds of key a cloud slot shows.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum KeySpec {
    EcP256,
    /// RSA with this many modulus bits.
    Rsa(u32),
    Ed25519,
    /// A symmetric AES-256 key that never leaves the service (wraps data keys).
    Aes256,
}

/// A hash named by a signing or OAEP mechanism.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The digest's length in bytes (a length, not a collection: there is no "empty").
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// How the service signs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signing {
    /// ECDSA over a digest made with this hash; the service gets the digest.
    Ecdsa(Hash),
    /// RSASSA-PKCS1-v1_5 over a digest; the service gets the digest and builds the DigestInfo.
    RsaPkcs1(Hash),
    /// RSASSA-PSS over a digest, MGF1 with the same hash, salt length = hash length.
    RsaPss(Hash),
    /// Pure Ed25519; the service gets the whole message.
    Ed25519,
}

/// One key (one version of a key, for services that version them) as the service reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteKey {
    /// The service's own reference for requests: an AWS key id or ARN, a Vault key name.
    pub key_ref: String,
    /// The version this object stands for (Vault); `None` where the service does not version
    /// keys or uses the current one.
    pub version: Option<u32>,
    /// `CKA_LABEL`: the alias or name (with the version and a "latest" mark where versioned).
    pub label: String,
    /// `CKA_ID`: stable for the key (and version), derived from the service's key id.
    pub id: Vec<u8>,
    pub spec: KeySpec,
    /// The key can sign (asymmetric) …
    pub sign: bool,
    /// … or decrypt (RSA OAEP; for `Aes256`: encrypt and decrypt, i.e. wrap and unwrap).
    pub decrypt: bool,
    /// Disabled keys are shown but refuse to work (`CKR_KEY_FUNCTION_NOT_PERMITTED`).
    pub enabled: bool,
    /// DER SubjectPublicKeyInfo of an asymmetric key (GetPublicKey / the transit public key).
    pub public_key_der: Option<Vec<u8>>,
}

/// What `C_GenerateKey`/`C_GenerateKeyPair` asks the service to make.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub spec: KeySpec,
    /// Sign/verify key (`CKA_SIGN`), else an encryption key (`CKA_DECRYPT`); ignored for AES.
    pub sign: bool,
    /// The alias (AWS, `alias/` added by the service code) or key name (Vault), from
    /// `CKA_LABEL`; `None` lets the service code pick a unique name.
    pub label: Option<String>,
}

/// One key service. Every call is blocking and may take a network round trip; the caller
/// holds no lock of the module while it runs. Failures come back as `Error::Service` with
/// the `CK_RV` they mean (`service_error` builds them):
/// unreachable/timeouts → `CKR_DEVICE_ERROR`; denied → `CKR_FUNCTION_FAILED`;
/// bad credentials → `CKR_USER_NOT_LOGGED_IN`; disabled key → `CKR_KEY_FUNCTION_NOT_PERMITTED`;
/// a ciphertext the service rejects → `CKR_ENCRYPTED_DATA_INVALID`; a missing key →
/// `CKR_KEY_HANDLE_INVALID`.
pub trait KeyService: Send + Sync {
    /// For logs: which service, where (e.g. "aws-kms us-east-1", "vault http://…/transit").
    fn describe(&self) -> String;

    /// Every key the slot shows (after the slot's filters), with its public key.
    fn list_keys(&self) -> Result<Vec<RemoteKey>>;

    /// Signs. `input` is the digest for ECDSA and RSA (already hashed with the `Hash` named),
    /// the whole message for Ed25519. Returns the PKCS#11 form: r‖s (32+32 bytes) for ECDSA
    /// (`ecdsa_der_to_raw` converts the service's DER), the RSA signature, 64 bytes Ed25519.
    fn sign(&self, key: &RemoteKey, how: Signing, input: &[u8]) -> Result<Vec<u8>>;

    /// RSA-OAEP decryption with MGF1 over the same hash and an empty label.
    fn decrypt_oaep(&self, key: &RemoteKey, hash: Hash, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>>;

    /// Encrypts `plaintext` (a data key, or small data) under an `Aes256` service key; the
    /// result is the service's own blob, opaque to keyfront.
    fn wrap(&self, key: &RemoteKey, plaintext: &[u8]) -> Result<Vec<u8>>;

    /// Decrypts a blob made by `wrap`.
    fn unwrap(&self, key: &RemoteKey, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>>;

    /// Creates a key; returns it as `list_keys` would (the newest version for Vault).
    fn create_key(&self, request: &NewKey) -> Result<RemoteKey>;

    /// Disables and schedules the deletion of a key (AWS: the shortest window, 7 days), or
    /// deletes it (Vault, after allowing deletion). For a versioned key, the whole key.
    fn delete_key(&self, key: &RemoteKey) -> Result<()>;
}

/// Converts an ASN.1 DER ECDSA signature (SEQUENCE of two INTEGERs) to the fixed-length r‖s
/// PKCS#11 returns, each half `half_len` bytes (32 for P-256).
pub fn ecdsa_der_to_raw(der: &[u8], half_len: usize) -> Result<Vec<u8>> {
    use crate::error::{rv, Error};
    use cryptoki_sys::CKR_DEVICE_ERROR;
    let bad = || Error::Service { rv: CKR_DEVICE_ERROR, message: "the service returned a malformed ECDSA signature".into() };
    let sig = p256::ecdsa::Signature::from_der(der).map_err(|_| bad())?;
    let raw = sig.to_bytes();
    if half_len != 32 || raw.len() != 64 {
        return Err(rv(CKR_DEVICE_ERROR));
    }
    Ok(raw.to_vec())
}

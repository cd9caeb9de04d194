//! Transit keys as keyfront shows them: key names, the key read (`GET keys/NAME`) turned into
//! one `RemoteKey` per usable version, public keys as DER, and the `vault:vN:` strings of
//! signatures and ciphertexts.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cryptoki_sys::*;
use serde_json::Value;

use crate::backend::cloud::{Hash, KeySpec, RemoteKey};
use crate::error::{Error, Result};

/// Whether `name` is a key name Vault accepts as one path segment (its `GenericNameRegex`:
/// word characters, with `-` and `.` inside), so it can go into a URL as it is.
pub(super) fn valid_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| word(c) || c == '-' || c == '.')
        && word(bytes[0] as char)
        && word(bytes[bytes.len() - 1] as char)
}

/// Longer names are refused for new keys (Vault has no limit of its own; URLs and labels do).
pub(super) const MAX_NAME_LEN: usize = 128;

/// The transit key type of a key spec keyfront makes.
pub(super) fn vault_type(spec: KeySpec) -> Option<&'static str> {
    Some(match spec {
        KeySpec::EcP256 => "ecdsa-p256",
        KeySpec::Ed25519 => "ed25519",
        KeySpec::Rsa(2048) => "rsa-2048",
        KeySpec::Rsa(3072) => "rsa-3072",
        KeySpec::Rsa(4096) => "rsa-4096",
        KeySpec::Aes256 => "aes256-gcm96",
        KeySpec::Rsa(_) => return None,
    })
}

/// The key spec of a transit key type; `None` for the types a slot does not show
/// (aes128-gcm96, chacha20-poly1305, ecdsa-p384/p521, hmac, …).
pub(super) fn spec_of(vault_type: &str) -> Option<KeySpec> {
    Some(match vault_type {
        "ecdsa-p256" => KeySpec::EcP256,
        "ed25519" => KeySpec::Ed25519,
        "rsa-2048" => KeySpec::Rsa(2048),
        "rsa-3072" => KeySpec::Rsa(3072),
        "rsa-4096" => KeySpec::Rsa(4096),
        "aes256-gcm96" => KeySpec::Aes256,
        _ => return None,
    })
}

/// The hash segment of a `sign/NAME/HASH` path.
pub(super) fn hash_path(hash: Hash) -> Result<&'static str> {
    match hash {
        Hash::Sha256 => Ok("sha2-256"),
        Hash::Sha384 => Ok("sha2-384"),
        Hash::Sha512 => Ok("sha2-512"),
        Hash::Sha1 => Err(Error::Rv(CKR_MECHANISM_INVALID)),
    }
}

/// What a key read says, as far as keyfront uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyInfo {
    pub name: String,
    pub vault_type: String,
    pub latest_version: u32,
    pub min_decryption_version: u32,
    pub min_encryption_version: u32,
    pub min_available_version: u32,
    /// Derived keys need a context with every request: not shown.
    pub derived: bool,
    /// OpenBao's soft deletion: the key is kept but refuses every operation.
    pub soft_deleted: bool,
    /// Version → the `public_key` string (PEM, or base64 for Ed25519); empty for AES.
    pub public_keys: BTreeMap<u32, String>,
    /// The versions the read lists (`keys`), public key or not.
    pub versions: BTreeSet<u32>,
}

fn bad_reply(what: &str) -> Error {
    Error::Service { rv: CKR_DEVICE_ERROR, message: format!("vault transit: unexpected reply: {what}") }
}

fn uint(data: &Value, field: &str) -> Result<u32> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad_reply(&format!("`{field}` is not a version number"))),
    }
}

/// Parses the `data` of `GET keys/NAME` (also what OpenBao's `POST keys/NAME` returns).
pub(super) fn parse_key_info(data: &Value) -> Result<KeyInfo> {
    let name = data.get("name").and_then(Value::as_str).ok_or_else(|| bad_reply("key without a name"))?;
    let vault_type = data.get("type").and_then(Value::as_str).ok_or_else(|| bad_reply("key without a type"))?;
    let mut public_keys = BTreeMap::new();
    let mut versions = BTreeSet::new();
    if let Some(keys) = data.get("keys").and_then(Value::as_object) {
        for (version, entry) in keys {
            let Ok(version) = version.parse::<u32>() else {
                return Err(bad_reply("key version that is not a number"));
            };
            versions.insert(version);
            // Asymmetric keys: {"public_key": …, …}; symmetric ones: a creation time.
            if let Some(public) = entry.get("public_key").and_then(Value::as_str) {
                public_keys.insert(version, public.to_string());
            }
        }
    }
    Ok(KeyInfo {
        name: name.to_string(),
        vault_type: vault_type.to_string(),
        latest_version: uint(data, "latest_version")?,
        min_decryption_version: uint(data, "min_decryption_version")?,
        min_encryption_version: uint(data, "min_encryption_version")?,
        min_available_version: uint(data, "min_available_version")?,
        derived: data.get("derived").and_then(Value::as_bool).unwrap_or(false),
        soft_deleted: data.get("soft_deleted").and_then(Value::as_bool).unwrap_or(false),
        public_keys,
        versions,
    })
}

/// `CKA_ID` of one version: "NAME:vN".
pub(super) fn object_id(name: &str, version: u32) -> Vec<u8> {
    format!("{name}:v{version}").into_bytes()
}

/// `CKA_LABEL` of one version: the bare name for the newest (what `pkcs11-tool --label`
/// users type), "NAME vN" for the older ones.
pub(super) fn object_label(name: &str, version: u32, latest: u32) -> String {
    if version == latest {
        name.to_string()
    } else {
        format!("{name} v{version}")
    }
}

/// The objects a key stands for: one per version the read lists, from the oldest that still
/// decrypts (`min_decryption_version`, or the oldest kept after a trim) to the newest. Versions whose
/// public key is missing or malformed are left out, with a log line; keys of other types,
/// derived keys, and names that cannot be used as a path give nothing.
pub(super) fn remote_keys(info: &KeyInfo) -> Vec<RemoteKey> {
    let Some(spec) = spec_of(&info.vault_type) else {
        tracing::debug!(key = %info.name, r#type = %info.vault_type, "vault transit: key type not shown");
        return Vec::new();
    };
    if info.derived {
        tracing::info!(key = %info.name, "vault transit: derived key (needs a context per request) not shown");
        return Vec::new();
    }
    if !valid_name(&info.name) {
        tracing::info!(key = %info.name, "vault transit: key name not usable in a request path; not shown");
        return Vec::new();
    }
    let first = info.min_decryption_version.max(info.min_available_version).max(1);
    let mut out = Vec::new();
    if first > info.latest_version {
        return out;
    }
    // Only the versions the read lists: a `latest_version` far above them (a broken or
    // hostile reply) must not make billions of objects.
    for &version in info.versions.range(first..=info.latest_version) {
        let public_key_der = if spec == KeySpec::Aes256 {
            None
        } else {
            let Some(text) = info.public_keys.get(&version) else {
                tracing::warn!(key = %info.name, version, "vault transit: no public key for this version; not shown");
                continue;
            };
            match public_key_der(spec, text) {
                Ok(der) => Some(der),
                Err(e) => {
                    tracing::warn!(key = %info.name, version, "vault transit: public key not usable ({e}); not shown");
                    continue;
                }
            }
        };
        let may_sign = info.min_encryption_version == 0 || version >= info.min_encryption_version;
        out.push(RemoteKey {
            key_ref: info.name.clone(),
            version: Some(version),
            label: object_label(&info.name, version, info.latest_version),
            id: object_id(&info.name, version),
            spec,
            sign: spec != KeySpec::Aes256 && may_sign,
            decrypt: matches!(spec, KeySpec::Rsa(_) | KeySpec::Aes256),
            enabled: !info.soft_deleted,
            public_key_der,
        });
    }
    out
}

/// The DER SubjectPublicKeyInfo of a version's `public_key`: PEM for ECDSA and RSA, the raw
/// 32 bytes in base64 for Ed25519. Checked against the key's spec.
pub(super) fn public_key_der(spec: KeySpec, text: &str) -> Result<Vec<u8>> {
    use spki::{DecodePublicKey, EncodePublicKey};
    let malformed = |what: &str| bad_reply(&format!("public key: {what}"));
    match spec {
        KeySpec::Ed25519 => {
            let raw = STANDARD.decode(text.trim()).map_err(|_| malformed("not base64"))?;
            let raw: [u8; 32] = raw.try_into().map_err(|_| malformed("Ed25519 key not 32 bytes"))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| malformed("not an Ed25519 point"))?;
            Ok(key.to_public_key_der().map_err(|_| malformed("cannot encode"))?.as_bytes().to_vec())
        }
        KeySpec::EcP256 => {
            let der = pem_body(text, "PUBLIC KEY").ok_or_else(|| malformed("not a PEM public key"))?;
            p256::PublicKey::from_public_key_der(&der).map_err(|_| malformed("not a P-256 key"))?;
            Ok(der)
        }
        KeySpec::Rsa(bits) => {
            use rsa::traits::PublicKeyParts;
            let der = pem_body(text, "PUBLIC KEY").ok_or_else(|| malformed("not a PEM public key"))?;
            let key = rsa::PublicKey::from_public_key_der(&der).map_err(|_| malformed("not an RSA key"))?;
            if key.n().bit_width() != bits {
                return Err(malformed(&format!("RSA modulus of {} bits, not {bits}", key.n().bit_width())));
            }
            Ok(der)
        }
        KeySpec::Aes256 => Err(malformed("AES keys have none")),
    }
}

/// The decoded body of the one PEM block labelled `label`.
pub(super) fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let base64: String = pem[start..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(base64).ok().filter(|der| !der.is_empty())
}

/// Splits Vault's "vault:vN:PAYLOAD" into N and PAYLOAD.
pub(super) fn split_vault_string(s: &str) -> Option<(u32, &str)> {
    let rest = s.strip_prefix("vault:v")?;
    let (version, payload) = rest.split_once(':')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version: u32 = version.parse().ok()?;
    (version > 0).then_some((version, payload))
}

/// The raw signature of a "vault:vN:BASE64" signature made with `version`.
pub(super) fn decode_signature(s: &str, version: u32) -> Result<Vec<u8>> {
    let (got, payload) = split_vault_string(s).ok_or_else(|| bad_reply("signature not of the form vault:vN:…"))?;
    if got != version {
        return Err(bad_reply(&format!("signature made with version {got}, not {version}")));
    }
    STANDARD.decode(payload).map_err(|_| bad_reply("signature not base64"))
}

/// Whether `blob` has the form of a transit ciphertext ("vault:vN:" then base64), checked
/// before it is sent: anything else is not a blob `wrap` made.
pub(super) fn looks_like_ciphertext(blob: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(blob).ok()?;
    let (_, payload) = split_vault_string(text)?;
    let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
    (!payload.is_empty() && payload.bytes().all(base64)).then_some(text)
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    // From OpenBao 2.7.2 (`GET transit/keys/…` of keys it made).
    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQoy3kP70y89b6Pzq/emmtBf267eW\nT0+t8n6WTcrhU0b93WLppkwgsqh1dxD5ljTlQxg8Bci9YqobwVCqpRZGJg==\n-----END PUBLIC KEY-----\n";
    const RSA2048_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvDxNalSZf/9fiB/th09A\n9bBOdizXjkiDcGG1vAXo1MVmlhWWRSSSpLKzP2psPk8gf7NOrHwUkO9fIudhJvlf\n0fFeDOH7in+BucI1NlS2CxTkGRlL9BJZPnhIjanuIM9PSLQdYLWOpk6zFJoM3nq0\nog49jzsdKL2Wvny4ABok+xmZec/OFEmNlg8MLc8mlVgHgEHcgCMyZZKej2vWxB+q\npY3+kCfA86R4e++U97cBHGZ6icRMI5stEZOS3JtavvYq35nLxZOn+BigW5iE928B\nF5bXwKk7xuusSyY3hNx/mKrnHpvL2gIn+l3DK2oHEcNlWrGrSlqIc2xT7Ab8D3gP\nIQIDAQAB\n-----END PUBLIC KEY-----\n";
    const ED25519_B64: &str = "NC0FPKeVeRln6jXYsWNC2AHYDAFpIzaG0HRHotNcSeU=";

    #[test]
    fn key_names_are_one_path_segment() {
        for good in ["a", "k1", "my-key", "a.b-c_d", "_x_", "Z9"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a/b", "../x", "..", ".a", "a.", "-a", "a-", "a b", "ключ", "a%2F", "a?b", "a:v1"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name(&"a".repeat(MAX_NAME_LEN)));
        assert!(!valid_name(&"a".repeat(MAX_NAME_LEN + 1)));
    }

    #[test]
    fn types_both_ways() {
        for spec in [KeySpec::EcP256, KeySpec::Ed25519, KeySpec::Rsa(2048), KeySpec::Rsa(3072), KeySpec::Rsa(4096), KeySpec::Aes256] {
            assert_eq!(spec_of(vault_type(spec).unwrap()), Some(spec));
        }
        assert_eq!(vault_type(KeySpec::Rsa(1024)), None);
        for other in ["aes128-gcm96", "chacha20-poly1305", "ecdsa-p384", "ecdsa-p521", "hmac", "managed_key"] {
            assert_eq!(spec_of(other), None);
        }
        assert_eq!(hash_path(Hash::Sha384).unwrap(), "sha2-384");
        assert_eq!(hash_path(Hash::Sha1).unwrap_err().rv(), CKR_MECHANISM_INVALID);
    }

    #[test]
    fn pem_and_raw_public_keys_become_spki() {
        use spki::DecodePublicKey;
        let der = public_key_der(KeySpec::EcP256, P256_PEM).unwrap();
        assert_eq!(der.len(), 91);
        assert!(p256::PublicKey::from_public_key_der(&der).is_ok());
        let der = public_key_der(KeySpec::Rsa(2048), RSA2048_PEM).unwrap();
        assert!(rsa::PublicKey::from_public_key_der(&der).is_ok());
        let der = public_key_der(KeySpec::Ed25519, ED25519_B64).unwrap();
        assert_eq!(der.len(), 44);
        assert_eq!(&der[..12], &[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
        assert_eq!(&der[12..], STANDARD.decode(ED25519_B64).unwrap().as_slice());
    }

    #[test]
    fn public_keys_that_do_not_fit_the_spec_are_refused() {
        assert!(public_key_der(KeySpec::Rsa(3072), RSA2048_PEM).is_err());
        assert!(public_key_der(KeySpec::EcP256, RSA2048_PEM).is_err());
        assert!(public_key_der(KeySpec::Rsa(2048), P256_PEM).is_err());
        assert!(public_key_der(KeySpec::Ed25519, "AAAA").is_err());
        assert!(public_key_der(KeySpec::EcP256, "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----").is_err());
        assert!(public_key_der(KeySpec::EcP256, "").is_err());
        assert!(pem_body(P256_PEM, "CERTIFICATE").is_none());
    }

    fn ecdsa_key(latest: u32, min_decryption: u32, min_encryption: u32) -> Value {
        let keys: serde_json::Map<String, Value> =
            (1..=latest).map(|v| (v.to_string(), json!({"name": "P-256", "public_key": P256_PEM, "creation_time": "…"}))).collect();
        json!({
            "name": "signer", "type": "ecdsa-p256", "keys": keys, "latest_version": latest,
            "min_decryption_version": min_decryption, "min_encryption_version": min_encryption,
            "min_available_version": 0, "derived": false, "soft_deleted": false, "deletion_allowed": false,
        })
    }

    #[test]
    fn each_version_is_an_object_and_the_newest_has_the_bare_name() {
        let info = parse_key_info(&ecdsa_key(3, 2, 0)).unwrap();
        let keys = remote_keys(&info);
        assert_eq!(keys.len(), 2, "version 1 is below min_decryption_version");
        assert_eq!(keys[0].version, Some(2));
        assert_eq!(keys[0].label, "signer v2");
        assert_eq!(keys[0].id, b"signer:v2");
        assert_eq!(keys[1].version, Some(3));
        assert_eq!(keys[1].label, "signer");
        assert_eq!(keys[1].id, b"signer:v3");
        for k in &keys {
            assert_eq!(k.key_ref, "signer");
            assert_eq!(k.spec, KeySpec::EcP256);
            assert!(k.sign && !k.decrypt && k.enabled);
            assert_eq!(k.public_key_der.as_ref().unwrap().len(), 91);
        }
    }

    #[test]
    fn versions_below_min_encryption_verify_but_do_not_sign() {
        let keys = remote_keys(&parse_key_info(&ecdsa_key(3, 1, 3)).unwrap());
        assert_eq!(keys.iter().map(|k| k.sign).collect::<Vec<_>>(), [false, false, true]);
    }

    #[test]
    fn soft_deleted_keys_are_shown_disabled() {
        let mut data = ecdsa_key(1, 1, 0);
        data["soft_deleted"] = json!(true);
        let keys = remote_keys(&parse_key_info(&data).unwrap());
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].enabled);
    }

    #[test]
    fn aes_rsa_and_ed25519_keys() {
        let aes = json!({"name": "wrapper", "type": "aes256-gcm96", "keys": {"1": 1795479287, "2": 1795479300},
            "latest_version": 2, "min_decryption_version": 1, "min_encryption_version": 0, "min_available_version": 0});
        let keys = remote_keys(&parse_key_info(&aes).unwrap());
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k.decrypt && !k.sign && k.public_key_der.is_none() && k.spec == KeySpec::Aes256));
        assert_eq!(keys[1].label, "wrapper");

        let rsa = json!({"name": "r", "type": "rsa-2048", "keys": {"1": {"public_key": RSA2048_PEM}},
            "latest_version": 1, "min_decryption_version": 1});
        let keys = remote_keys(&parse_key_info(&rsa).unwrap());
        assert!(keys[0].sign && keys[0].decrypt);
        assert_eq!(keys[0].spec, KeySpec::Rsa(2048));

        let ed = json!({"name": "e", "type": "ed25519", "keys": {"1": {"public_key": ED25519_B64}},
            "latest_version": 1, "min_decryption_version": 1});
        let keys = remote_keys(&parse_key_info(&ed).unwrap());
        assert!(keys[0].sign && !keys[0].decrypt);
        assert_eq!(keys[0].public_key_der.as_ref().unwrap().len(), 44);
    }

    #[test]
    fn keys_not_shown() {
        let other = json!({"name": "p384", "type": "ecdsa-p384", "latest_version": 1, "min_decryption_version": 1});
        assert!(remote_keys(&parse_key_info(&other).unwrap()).is_empty());
        let derived = json!({"name": "d", "type": "ed25519", "derived": true, "keys": {"1": {"public_key": ED25519_B64}},
            "latest_version": 1, "min_decryption_version": 1});
        assert!(remote_keys(&parse_key_info(&derived).unwrap()).is_empty());
        // A version with a broken public key is left out; the others stay.
        let mut data = ecdsa_key(2, 1, 0);
        data["keys"]["1"]["public_key"] = json!("garbage");
        let keys = remote_keys(&parse_key_info(&data).unwrap());
        assert_eq!(keys.iter().map(|k| k.version).collect::<Vec<_>>(), [Some(2)]);
        assert!(parse_key_info(&json!({"type": "ed25519"})).is_err());
        assert!(parse_key_info(&json!({"name": "x", "type": "ed25519", "latest_version": "one"})).is_err());
    }

    /// A read with `latest_version` 4294967295 made an object for every version up to it:
    /// out of memory for an AES key, a loop of four billion turns for the others (the
    /// `service_replies` fuzz target, seeds `vault-list-huge-latest-*`).
    #[test]
    fn only_listed_versions_become_objects() {
        let mut data = ecdsa_key(2, 1, 0);
        data["latest_version"] = json!(u32::MAX);
        let keys = remote_keys(&parse_key_info(&data).unwrap());
        assert_eq!(keys.iter().map(|k| k.version).collect::<Vec<_>>(), [Some(1), Some(2)]);
        assert_eq!(keys[1].label, "signer v2", "the newest is the one the read names");
        let aes = json!({"name": "w", "type": "aes256-gcm96", "keys": {"1": 1795479287}, "latest_version": u32::MAX,
            "min_decryption_version": 1});
        assert_eq!(remote_keys(&parse_key_info(&aes).unwrap()).len(), 1);
        // Listed versions outside [min_decryption_version, latest_version] stay out.
        let aes = json!({"name": "w", "type": "aes256-gcm96", "keys": {"1": 1, "2": 2, "3": 3, "9": 9}, "latest_version": 3,
            "min_decryption_version": 2});
        assert_eq!(remote_keys(&parse_key_info(&aes).unwrap()).iter().map(|k| k.version).collect::<Vec<_>>(), [Some(2), Some(3)]);
        let aes = json!({"name": "w", "type": "aes256-gcm96", "keys": {"1": 1}, "latest_version": 1, "min_decryption_version": 5});
        assert!(remote_keys(&parse_key_info(&aes).unwrap()).is_empty());
    }

    #[test]
    fn vault_strings() {
        assert_eq!(split_vault_string("vault:v12:abc"), Some((12, "abc")));
        assert_eq!(split_vault_string("vault:v1:"), Some((1, "")));
        for bad in ["vault:v0:abc", "vault:vx:abc", "vault:v:abc", "vault:v1", "v1:abc", "vault:v-1:a", "vault:v+1:a"] {
            assert_eq!(split_vault_string(bad), None, "{bad}");
        }
        assert_eq!(decode_signature("vault:v2:AQID", 2).unwrap(), vec![1, 2, 3]);
        assert!(decode_signature("vault:v1:AQID", 2).is_err());
        assert!(decode_signature("vault:v2:!!", 2).is_err());
        assert!(decode_signature("AQID", 2).is_err());
        assert!(looks_like_ciphertext(b"vault:v1:jPVOXQAsc1fUknQI7yLE+/=").is_some());
        for bad in [&b"vault:v1:"[..], b"vault:v1:a b", b"garbage", b"vault:v1:\xff", b"VAULT:v1:AAAA"] {
            assert!(looks_like_ciphertext(bad).is_none());
        }
        assert_eq!(object_id("k", 3), b"k:v3");
        assert_eq!(object_label("k", 3, 3), "k");
        assert_eq!(object_label("k", 2, 3), "k v2");
    }
}

//! The pure half of showing KMS keys: which keys keyfront can use, their labels and ids,
//! the slot's filters, and the names and parameters of requests.

use cryptoki_sys::*;
use serde_json::Value;

use crate::backend::cloud::{Hash, KeySpec, NewKey, Signing};
use crate::error::{Error, Result};

/// What DescribeKey says of a key, the parts keyfront reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub key_id: String,
    pub key_spec: String,
    pub key_usage: String,
    pub key_state: String,
    pub key_manager: String,
}

impl Metadata {
    /// From a `KeyMetadata` object (DescribeKey, CreateKey).
    pub fn from_json(m: &Value) -> Option<Metadata> {
        let s = |name: &str| m.get(name).and_then(Value::as_str).unwrap_or("").to_string();
        let key_spec = match s("KeySpec") {
            spec if spec.is_empty() => s("CustomerMasterKeySpec"),
            spec => spec,
        };
        let key_id = s("KeyId");
        (!key_id.is_empty()).then(|| Metadata {
            key_id,
            key_spec,
            key_usage: s("KeyUsage"),
            key_state: s("KeyState"),
            key_manager: s("KeyManager"),
        })
    }

    /// The key as keyfront shows it: (spec, sign, decrypt, enabled), or `None` for keys it
    /// does not show: AWS-managed keys, keys being deleted or without key material, and
    /// kinds it cannot use (HMAC, key agreement, other curves, SM2…).
    pub fn usable(&self) -> Option<(KeySpec, bool, bool, bool)> {
        if self.key_manager == "AWS" {
            return None;
        }
        let enabled = match self.key_state.as_str() {
            "Enabled" => true,
            "PendingDeletion" | "PendingReplicaDeletion" | "PendingImport" | "Creating" => return None,
            // Disabled, Unavailable (custom key store disconnected), Updating.
            _ => false,
        };
        let (spec, sign, decrypt) = match (self.key_spec.as_str(), self.key_usage.as_str()) {
            ("ECC_NIST_P256", "SIGN_VERIFY") => (KeySpec::EcP256, true, false),
            ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY") => (KeySpec::Ed25519, true, false),
            ("RSA_2048" | "RSA_3072" | "RSA_4096", usage @ ("SIGN_VERIFY" | "ENCRYPT_DECRYPT")) => {
                let bits = self.key_spec[4..].parse().ok()?;
                (KeySpec::Rsa(bits), usage == "SIGN_VERIFY", usage == "ENCRYPT_DECRYPT")
            }
            ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT") => (KeySpec::Aes256, false, true),
            _ => return None,
        };
        Some((spec, sign, decrypt, enabled))
    }
}

/// `CKA_ID` of a key: the key id's UUID as 16 bytes, or the id's own bytes when it is not a
/// UUID (multi-Region keys: `mrk-…`).
pub fn key_id_bytes(key_id: &str) -> Vec<u8> {
    let hex: String = key_id.chars().filter(|c| *c != '-').collect();
    let uuid_shape = key_id.len() == 36 && [8, 13, 18, 23].iter().all(|&i| key_id.as_bytes()[i] == b'-');
    if uuid_shape && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex checked")).collect()
    } else {
        key_id.as_bytes().to_vec()
    }
}

/// The slot's alias prefix in the service's form (`alias/…`), from the configured value
/// with or without `alias/`.
pub fn alias_prefix(configured: Option<&str>) -> Option<String> {
    let p = configured?.trim();
    if p.is_empty() || p == "alias/" {
        return None;
    }
    Some(if p.starts_with("alias/") { p.to_string() } else { format!("alias/{p}") })
}

/// The alias naming a key in this slot: the first (in sort order) of its aliases that starts
/// with the prefix, or with no prefix the first of all; `None` with a prefix means the slot
/// does not show the key. AWS's own aliases (`alias/aws/…`) never name a key.
pub fn choose_alias<'a>(aliases: &'a [String], prefix: Option<&str>) -> Option<&'a str> {
    aliases
        .iter()
        .filter(|a| !a.starts_with("alias/aws/"))
        .filter(|a| prefix.is_none_or(|p| a.starts_with(p)))
        .min()
        .map(String::as_str)
}

/// `CKA_LABEL`: the alias without `alias/`, else the key id.
pub fn label_of(alias: Option<&str>, key_id: &str) -> String {
    match alias {
        Some(a) => a.strip_prefix("alias/").unwrap_or(a).to_string(),
        None => key_id.to_string(),
    }
}

/// Whether ListResourceTags' `Tags` hold the tag `key` = `value`.
pub fn has_tag(tags: &Value, key: &str, value: &str) -> bool {
    tags.as_array().is_some_and(|tags| {
        tags.iter().any(|t| t.get("TagKey").and_then(Value::as_str) == Some(key) && t.get("TagValue").and_then(Value::as_str) == Some(value))
    })
}

/// The alias a new key gets from its label (`CKA_LABEL`): `alias/` + the label, with the
/// slot's prefix put in front when the label does not start with it. `None`: no label and no
/// prefix, the key stays unnamed (its label is its key id). With a prefix and no label, the
/// alias is the prefix + the key id (given later; see `alias_for_unnamed`).
pub fn alias_for_label(label: Option<&str>, prefix: Option<&str>) -> Result<Option<String>> {
    let Some(label) = label.map(str::trim).filter(|l| !l.is_empty()) else { return Ok(None) };
    let name = label.strip_prefix("alias/").unwrap_or(label);
    let alias = match prefix {
        Some(p) if !format!("alias/{name}").starts_with(p) => format!("{p}{name}"),
        _ => format!("alias/{name}"),
    };
    check_alias(&alias)?;
    Ok(Some(alias))
}

/// The alias of a key made without a label in a slot that has a prefix.
pub fn alias_for_unnamed(prefix: &str, key_id: &str) -> String {
    format!("{prefix}{key_id}")
}

/// KMS's rules for alias names: `alias/` then 1–250 of `A-Za-z0-9/_-`, not `alias/aws/`.
pub fn check_alias(alias: &str) -> Result<()> {
    let name = alias.strip_prefix("alias/").unwrap_or("");
    let ok = !name.is_empty()
        && alias.len() <= 256
        && !alias.starts_with("alias/aws/")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Service {
            rv: CKR_ATTRIBUTE_VALUE_INVALID,
            message: format!(
                "aws-kms: `{alias}` cannot be a KMS alias: a label may hold only letters, digits, '/', '_' and '-' \
                 (at most 250), and may not start with aws/"
            ),
        })
    }
}

/// CreateKey's `KeySpec` and `KeyUsage` for a new key.
pub fn create_spec(request: &NewKey) -> Result<(&'static str, &'static str)> {
    Ok(match request.spec {
        KeySpec::Aes256 => ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        KeySpec::EcP256 => ("ECC_NIST_P256", "SIGN_VERIFY"),
        KeySpec::Ed25519 => ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
        KeySpec::Rsa(bits) => {
            let spec = match bits {
                2048 => "RSA_2048",
                3072 => "RSA_3072",
                4096 => "RSA_4096",
                _ => {
                    return Err(Error::Service {
                        rv: CKR_KEY_SIZE_RANGE,
                        message: format!("aws-kms: RSA keys are 2048, 3072 or 4096 bits, not {bits}"),
                    })
                }
            };
            (spec, if request.sign { "SIGN_VERIFY" } else { "ENCRYPT_DECRYPT" })
        }
    })
}

fn refuse(rv: CK_RV, message: String) -> Error {
    Error::Service { rv, message: format!("aws-kms: {message}") }
}

/// How Sign is called for a key and a mechanism: (SigningAlgorithm, MessageType, Message).
///
/// ECDSA on P-256: KMS offers only ECDSA_SHA_256 for this curve, and wants a 32-byte digest.
/// ECDSA uses the leftmost bits of the digest, as many as the curve order has (FIPS 186-5
/// 6.4.1), so a SHA-384 or SHA-512 digest signs as its first 32 bytes: the signature is the
/// one ECDSA-with-SHA-384/512 on P-256 makes.
pub fn sign_request(spec: KeySpec, how: Signing, input: &[u8]) -> Result<(&'static str, &'static str, Vec<u8>)> {
    let digest_len = |h: Hash| {
        if input.len() == h.len() {
            Ok(())
        } else {
            Err(refuse(CKR_DATA_LEN_RANGE, format!("a {:?} digest is {} bytes, not {}", h, h.len(), input.len())))
        }
    };
    let no_sha1 = || refuse(CKR_MECHANISM_INVALID, "KMS does not sign with SHA-1".into());
    let wrong_key = |what: &str| refuse(CKR_KEY_TYPE_INCONSISTENT, format!("{what} needs another kind of key than {spec:?}"));
    match how {
        Signing::Ed25519 => {
            if spec != KeySpec::Ed25519 {
                return Err(refuse(CKR_MECHANISM_INVALID, format!("Ed25519 signing with a {spec:?} key")));
            }
            if input.is_empty() || input.len() > 4096 {
                return Err(refuse(CKR_DATA_LEN_RANGE, format!("KMS signs messages of 1 to 4096 bytes, not {}", input.len())));
            }
            Ok(("ED25519_SHA_512", "RAW", input.to_vec()))
        }
        Signing::Ecdsa(h) => {
            if spec != KeySpec::EcP256 {
                return Err(wrong_key("ECDSA"));
            }
            if h == Hash::Sha1 {
                return Err(no_sha1());
            }
            digest_len(h)?;
            Ok(("ECDSA_SHA_256", "DIGEST", input[..32].to_vec()))
        }
        Signing::RsaPkcs1(h) | Signing::RsaPss(h) => {
            if !matches!(spec, KeySpec::Rsa(_)) {
                return Err(wrong_key("RSA signing"));
            }
            let pss = matches!(how, Signing::RsaPss(_));
            let algorithm = match (pss, h) {
                (_, Hash::Sha1) => return Err(no_sha1()),
                (false, Hash::Sha256) => "RSASSA_PKCS1_V1_5_SHA_256",
                (false, Hash::Sha384) => "RSASSA_PKCS1_V1_5_SHA_384",
                (false, Hash::Sha512) => "RSASSA_PKCS1_V1_5_SHA_512",
                (true, Hash::Sha256) => "RSASSA_PSS_SHA_256",
                (true, Hash::Sha384) => "RSASSA_PSS_SHA_384",
                (true, Hash::Sha512) => "RSASSA_PSS_SHA_512",
            };
            digest_len(h)?;
            Ok((algorithm, "DIGEST", input.to_vec()))
        }
    }
}

/// Decrypt's `EncryptionAlgorithm` for RSA-OAEP with this hash.
pub fn oaep_algorithm(hash: Hash) -> Result<&'static str> {
    match hash {
        Hash::Sha1 => Ok("RSAES_OAEP_SHA_1"),
        Hash::Sha256 => Ok("RSAES_OAEP_SHA_256"),
        other => Err(refuse(CKR_MECHANISM_PARAM_INVALID, format!("KMS does RSA-OAEP with SHA-1 or SHA-256, not {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(spec: &str, usage: &str, state: &str, manager: &str) -> Metadata {
        Metadata::from_json(&json!({"KeyId": "k", "KeySpec": spec, "KeyUsage": usage, "KeyState": state, "KeyManager": manager})).unwrap()
    }

    #[test]
    fn which_keys_are_shown() {
        let shown = |spec, usage, state| meta(spec, usage, state, "CUSTOMER").usable();
        assert_eq!(shown("ECC_NIST_P256", "SIGN_VERIFY", "Enabled"), Some((KeySpec::EcP256, true, false, true)));
        assert_eq!(shown("RSA_3072", "ENCRYPT_DECRYPT", "Enabled"), Some((KeySpec::Rsa(3072), false, true, true)));
        assert_eq!(shown("RSA_4096", "SIGN_VERIFY", "Disabled"), Some((KeySpec::Rsa(4096), true, false, false)));
        assert_eq!(shown("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled"), Some((KeySpec::Aes256, false, true, true)));
        assert_eq!(shown("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "Enabled"), Some((KeySpec::Ed25519, true, false, true)));
        assert_eq!(shown("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "PendingDeletion"), None);
        assert_eq!(shown("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "PendingImport"), None);
        assert_eq!(shown("ECC_NIST_P384", "SIGN_VERIFY", "Enabled"), None);
        assert_eq!(shown("ECC_NIST_P256", "KEY_AGREEMENT", "Enabled"), None);
        assert_eq!(shown("HMAC_256", "GENERATE_VERIFY_MAC", "Enabled"), None);
        assert_eq!(shown("RSA_2048", "GENERATE_VERIFY_MAC", "Enabled"), None);
        assert_eq!(meta("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled", "AWS").usable(), None);
        // Old replies name the spec CustomerMasterKeySpec.
        let old = Metadata::from_json(&json!({"KeyId": "k", "CustomerMasterKeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY", "KeyState": "Enabled"})).unwrap();
        assert_eq!(old.usable(), Some((KeySpec::Rsa(2048), true, false, true)));
    }

    #[test]
    fn ids() {
        assert_eq!(
            key_id_bytes("1234abcd-12ab-34cd-56ef-1234567890ab"),
            vec![0x12, 0x34, 0xab, 0xcd, 0x12, 0xab, 0x34, 0xcd, 0x56, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab]
        );
        assert_eq!(key_id_bytes("mrk-1234abcd12ab34cd56ef1234567890ab"), b"mrk-1234abcd12ab34cd56ef1234567890ab".to_vec());
        assert_eq!(key_id_bytes("1234abcd-12ab-34cd-56ef-1234567890zz"), b"1234abcd-12ab-34cd-56ef-1234567890zz".to_vec());
    }

    #[test]
    fn aliases_and_labels() {
        assert_eq!(alias_prefix(Some("app-")).as_deref(), Some("alias/app-"));
        assert_eq!(alias_prefix(Some("alias/app-")).as_deref(), Some("alias/app-"));
        assert_eq!(alias_prefix(Some("")), None);
        let aliases: Vec<String> = ["alias/zeta", "alias/app-b", "alias/app-a", "alias/aws/ebs"].iter().map(|s| s.to_string()).collect();
        assert_eq!(choose_alias(&aliases, None), Some("alias/app-a"));
        assert_eq!(choose_alias(&aliases, Some("alias/app-")), Some("alias/app-a"));
        assert_eq!(choose_alias(&aliases, Some("alias/other-")), None);
        assert_eq!(choose_alias(&["alias/aws/ebs".to_string()], None), None);
        assert_eq!(label_of(Some("alias/app-a"), "id"), "app-a");
        assert_eq!(label_of(None, "1234"), "1234");
    }

    #[test]
    fn tags() {
        let tags = json!([{"TagKey": "team", "TagValue": "pki"}, {"TagKey": "env", "TagValue": "prod"}]);
        assert!(has_tag(&tags, "env", "prod"));
        assert!(!has_tag(&tags, "env", "dev"));
        assert!(!has_tag(&json!(null), "env", "prod"));
    }

    #[test]
    fn aliases_of_new_keys() {
        assert_eq!(alias_for_label(Some("signer"), None).unwrap().as_deref(), Some("alias/signer"));
        assert_eq!(alias_for_label(Some("alias/signer"), None).unwrap().as_deref(), Some("alias/signer"));
        assert_eq!(alias_for_label(Some("signer"), Some("alias/app-")).unwrap().as_deref(), Some("alias/app-signer"));
        assert_eq!(alias_for_label(Some("app-signer"), Some("alias/app-")).unwrap().as_deref(), Some("alias/app-signer"));
        assert_eq!(alias_for_label(None, Some("alias/app-")).unwrap(), None);
        assert_eq!(alias_for_label(Some("  "), None).unwrap(), None);
        assert_eq!(alias_for_label(Some("my key"), None).unwrap_err().rv(), CKR_ATTRIBUTE_VALUE_INVALID);
        assert_eq!(alias_for_label(Some("aws/ebs"), None).unwrap_err().rv(), CKR_ATTRIBUTE_VALUE_INVALID);
        assert_eq!(alias_for_label(Some(&"x".repeat(251)), None).unwrap_err().rv(), CKR_ATTRIBUTE_VALUE_INVALID);
        assert_eq!(alias_for_unnamed("alias/app-", "k1"), "alias/app-k1");
    }

    #[test]
    fn create_specs() {
        let new = |spec, sign| NewKey { spec, sign, label: None };
        assert_eq!(create_spec(&new(KeySpec::Aes256, true)).unwrap(), ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"));
        assert_eq!(create_spec(&new(KeySpec::Rsa(3072), true)).unwrap(), ("RSA_3072", "SIGN_VERIFY"));
        assert_eq!(create_spec(&new(KeySpec::Rsa(2048), false)).unwrap(), ("RSA_2048", "ENCRYPT_DECRYPT"));
        assert_eq!(create_spec(&new(KeySpec::EcP256, true)).unwrap(), ("ECC_NIST_P256", "SIGN_VERIFY"));
        assert_eq!(create_spec(&new(KeySpec::Ed25519, true)).unwrap(), ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"));
        assert_eq!(create_spec(&new(KeySpec::Rsa(1024), true)).unwrap_err().rv(), CKR_KEY_SIZE_RANGE);
    }

    #[test]
    fn signing_requests() {
        let d = |n| vec![7u8; n];
        assert_eq!(sign_request(KeySpec::EcP256, Signing::Ecdsa(Hash::Sha256), &d(32)).unwrap(), ("ECDSA_SHA_256", "DIGEST", d(32)));
        // SHA-384/512 digests are cut to the curve's 32 bytes.
        let long: Vec<u8> = (0..64).collect();
        assert_eq!(sign_request(KeySpec::EcP256, Signing::Ecdsa(Hash::Sha512), &long).unwrap().2, long[..32].to_vec());
        assert_eq!(sign_request(KeySpec::EcP256, Signing::Ecdsa(Hash::Sha1), &d(20)).unwrap_err().rv(), CKR_MECHANISM_INVALID);
        assert_eq!(sign_request(KeySpec::EcP256, Signing::Ecdsa(Hash::Sha256), &d(31)).unwrap_err().rv(), CKR_DATA_LEN_RANGE);
        assert_eq!(sign_request(KeySpec::Rsa(2048), Signing::RsaPkcs1(Hash::Sha384), &d(48)).unwrap().0, "RSASSA_PKCS1_V1_5_SHA_384");
        assert_eq!(sign_request(KeySpec::Rsa(2048), Signing::RsaPss(Hash::Sha512), &d(64)).unwrap().0, "RSASSA_PSS_SHA_512");
        assert_eq!(sign_request(KeySpec::Rsa(2048), Signing::RsaPss(Hash::Sha1), &d(20)).unwrap_err().rv(), CKR_MECHANISM_INVALID);
        assert_eq!(sign_request(KeySpec::Rsa(2048), Signing::RsaPkcs1(Hash::Sha256), &d(48)).unwrap_err().rv(), CKR_DATA_LEN_RANGE);
        assert_eq!(sign_request(KeySpec::EcP256, Signing::RsaPkcs1(Hash::Sha256), &d(32)).unwrap_err().rv(), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(sign_request(KeySpec::Rsa(2048), Signing::Ecdsa(Hash::Sha256), &d(32)).unwrap_err().rv(), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(sign_request(KeySpec::EcP256, Signing::Ed25519, b"m").unwrap_err().rv(), CKR_MECHANISM_INVALID);
        assert_eq!(sign_request(KeySpec::Ed25519, Signing::Ed25519, b"msg").unwrap(), ("ED25519_SHA_512", "RAW", b"msg".to_vec()));
        assert_eq!(sign_request(KeySpec::Ed25519, Signing::Ed25519, &d(4097)).unwrap_err().rv(), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn oaep() {
        assert_eq!(oaep_algorithm(Hash::Sha1).unwrap(), "RSAES_OAEP_SHA_1");
        assert_eq!(oaep_algorithm(Hash::Sha256).unwrap(), "RSAES_OAEP_SHA_256");
        assert_eq!(oaep_algorithm(Hash::Sha384).unwrap_err().rv(), CKR_MECHANISM_PARAM_INVALID);
    }
}

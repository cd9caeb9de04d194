//! HashiCorp Vault / OpenBao Transit as a cloud slot's key service: every transit key of a
//! supported type, one object per usable version, signing, RSA-OAEP decryption and AES
//! wrapping done by Vault over its HTTP API (docs/backends.md, "Vault Transit slots").

mod api;
mod errors;
mod keys;
#[cfg(test)]
mod tests;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cryptoki_sys::*;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::backend::cloud::{ecdsa_der_to_raw, Hash, KeyService, KeySpec, NewKey, RemoteKey, Signing};
use crate::config::VaultSlotConfig;
use crate::error::{Error, Result};
use api::Api;
use errors::Op;
use keys::KeyInfo;

pub struct VaultTransit {
    api: Api,
}

impl VaultTransit {
    /// Reads the configuration and the token source; sends nothing (`C_Initialize` stays
    /// fast and works with Vault down). A missing token is logged here, and every call then
    /// fails with `CKR_USER_NOT_LOGGED_IN`.
    pub fn new(config: &VaultSlotConfig) -> Result<Self> {
        Ok(VaultTransit { api: Api::new(config)? })
    }

    fn service_error(&self, rv: CK_RV, what: &str) -> Error {
        Error::Service { rv, message: format!("{}: {what}", self.api.name) }
    }

    /// The key's name, checked again before it goes into a URL.
    fn name<'a>(&self, key: &'a RemoteKey) -> Result<&'a str> {
        if keys::valid_name(&key.key_ref) {
            Ok(&key.key_ref)
        } else {
            Err(self.service_error(CKR_KEY_HANDLE_INVALID, &format!("{:?} is not a transit key name", key.key_ref)))
        }
    }

    /// `GET keys/NAME`; `None` when there is no such key.
    fn read_key(&self, name: &str) -> Result<Option<KeyInfo>> {
        let call = format!("ReadKey {name}");
        let reply = self.api.get(&call, &format!("keys/{name}"))?;
        if reply.status == 404 {
            let e = self.api.failure(&call, Op::Read, &reply);
            return if e.rv() == CKR_KEY_HANDLE_INVALID { Ok(None) } else { Err(e) };
        }
        keys::parse_key_info(&self.api.data(&call, Op::Read, reply)?).map(Some)
    }

    /// The version a key object stands for (the newest when it names none).
    fn version(&self, key: &RemoteKey) -> Result<u32> {
        match key.version {
            Some(v) => Ok(v),
            None => {
                let name = self.name(key)?;
                let info = self.read_key(name)?.ok_or_else(|| self.service_error(CKR_KEY_HANDLE_INVALID, &format!("no key {name}")))?;
                Ok(info.latest_version)
            }
        }
    }

    fn require(&self, key: &RemoteKey, ok: bool) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(self.service_error(CKR_KEY_TYPE_INCONSISTENT, &format!("{} is a {:?} key", key.key_ref, key.spec)))
        }
    }

    /// A string member of a successful reply's `data`.
    fn string_field(&self, call: &str, data: &mut Value, field: &str) -> Result<String> {
        match data.get_mut(field).map(Value::take) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.service_error(CKR_DEVICE_ERROR, &format!("{call}: reply without `{field}`"))),
        }
    }

    /// `POST decrypt/NAME` of a "vault:vN:…" ciphertext; the plaintext never sits in an
    /// unwiped buffer of ours.
    fn decrypt(&self, call: &str, name: &str, ciphertext: &str) -> Result<Zeroizing<Vec<u8>>> {
        let mut reply = self.api.post(call, &format!("decrypt/{name}"), &json!({ "ciphertext": ciphertext }))?;
        if !reply.is_success() {
            return Err(self.api.failure(call, Op::Decrypt, &reply));
        }
        let body = Zeroizing::new(std::mem::take(&mut reply.body));
        let mut value: Value =
            serde_json::from_slice(&body).map_err(|_| self.service_error(CKR_DEVICE_ERROR, &format!("{call}: reply is not JSON")))?;
        let encoded = match value.pointer_mut("/data/plaintext").map(Value::take) {
            Some(Value::String(s)) => Zeroizing::new(s),
            _ => return Err(self.service_error(CKR_DEVICE_ERROR, &format!("{call}: reply without a plaintext"))),
        };
        let plaintext = STANDARD
            .decode(encoded.as_bytes())
            .map_err(|_| self.service_error(CKR_DEVICE_ERROR, &format!("{call}: plaintext is not base64")))?;
        Ok(Zeroizing::new(plaintext))
    }

    /// The key as `list_keys` shows it, newest version.
    fn newest(&self, info: &KeyInfo) -> Result<RemoteKey> {
        keys::remote_keys(info)
            .into_iter()
            .find(|k| k.version == Some(info.latest_version))
            .ok_or_else(|| self.service_error(CKR_DEVICE_ERROR, &format!("key {} came back unusable", info.name)))
    }
}

impl KeyService for VaultTransit {
    fn describe(&self) -> String {
        self.api.name.clone()
    }

    fn list_keys(&self) -> Result<Vec<RemoteKey>> {
        let call = "ListKeys";
        let reply = self.api.get(call, "keys?list=true")?;
        if reply.status == 404 {
            // `{"errors":[]}`: no key yet. Anything else (no such mount) is an error.
            let e = self.api.failure(call, Op::List, &reply);
            return if e.rv() == CKR_KEY_HANDLE_INVALID { Ok(Vec::new()) } else { Err(e) };
        }
        let data = self.api.data(call, Op::List, reply)?;
        let names: Vec<&str> =
            data.get("keys").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let mut out = Vec::new();
        for name in names {
            if !keys::valid_name(name) {
                tracing::info!(service = %self.api.name, key = name, "vault transit: key name not usable in a request path; not shown");
                continue;
            }
            match self.read_key(name) {
                Ok(Some(info)) => out.extend(keys::remote_keys(&info)),
                Ok(None) => {} // deleted since the list
                Err(e) if e.rv() == CKR_FUNCTION_FAILED => {
                    // Listed but not readable (a policy without `read` on it): not shown.
                    tracing::warn!(service = %self.api.name, key = name, "vault transit: key not shown: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn sign(&self, key: &RemoteKey, how: Signing, input: &[u8]) -> Result<Vec<u8>> {
        let name = self.name(key)?;
        let version = self.version(key)?;
        let digest = |hash: Hash| -> Result<&'static str> {
            let path = keys::hash_path(hash)?;
            if input.len() != hash.len() {
                return Err(Error::Rv(CKR_DATA_LEN_RANGE));
            }
            Ok(path)
        };
        let b64 = STANDARD.encode(input);
        let (path, body) = match how {
            Signing::Ecdsa(hash) => {
                self.require(key, key.spec == KeySpec::EcP256)?;
                let h = digest(hash)?;
                let body = json!({"input": b64, "prehashed": true, "key_version": version, "marshaling_algorithm": "asn1"});
                (format!("sign/{name}/{h}"), body)
            }
            Signing::RsaPkcs1(hash) => {
                self.require(key, matches!(key.spec, KeySpec::Rsa(_)))?;
                let h = digest(hash)?;
                let body = json!({"input": b64, "prehashed": true, "key_version": version, "signature_algorithm": "pkcs1v15"});
                (format!("sign/{name}/{h}"), body)
            }
            Signing::RsaPss(hash) => {
                self.require(key, matches!(key.spec, KeySpec::Rsa(_)))?;
                let h = digest(hash)?;
                // Vault's PSS salt defaults to the largest that fits; PKCS#11 callers expect
                // the hash length.
                let body =
                    json!({"input": b64, "prehashed": true, "key_version": version, "signature_algorithm": "pss", "salt_length": "hash"});
                (format!("sign/{name}/{h}"), body)
            }
            Signing::Ed25519 => {
                self.require(key, key.spec == KeySpec::Ed25519)?;
                (format!("sign/{name}"), json!({"input": b64, "key_version": version}))
            }
        };
        let call = format!("Sign {name} v{version}");
        let reply = self.api.post(&call, &path, &body)?;
        let mut data = self.api.data(&call, Op::Sign, reply)?;
        let signature = keys::decode_signature(&self.string_field(&call, &mut data, "signature")?, version)?;
        match how {
            Signing::Ecdsa(_) => ecdsa_der_to_raw(&signature, 32),
            Signing::Ed25519 if signature.len() != 64 => {
                Err(self.service_error(CKR_DEVICE_ERROR, &format!("{call}: Ed25519 signature not 64 bytes")))
            }
            _ => Ok(signature),
        }
    }

    fn decrypt_oaep(&self, key: &RemoteKey, hash: Hash, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let name = self.name(key)?;
        let KeySpec::Rsa(bits) = key.spec else {
            return Err(self.service_error(CKR_KEY_TYPE_INCONSISTENT, &format!("{name} is not an RSA key")));
        };
        // Transit decrypts OAEP with SHA-256 (label hash and MGF1) and nothing else.
        if hash != Hash::Sha256 {
            return Err(self.service_error(CKR_MECHANISM_PARAM_INVALID, "Vault Transit does RSA-OAEP with SHA-256 only"));
        }
        if ciphertext.len() != bits as usize / 8 {
            return Err(Error::Rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        let version = self.version(key)?;
        let ciphertext = format!("vault:v{version}:{}", STANDARD.encode(ciphertext));
        self.decrypt(&format!("Decrypt {name} v{version}"), name, &ciphertext)
    }

    fn wrap(&self, key: &RemoteKey, plaintext: &[u8]) -> Result<Vec<u8>> {
        let name = self.name(key)?;
        self.require(key, key.spec == KeySpec::Aes256)?;
        let version = self.version(key)?;
        // `encrypt/` creates a key that does not exist ("upsert") when the token may: look
        // first, so a key deleted behind a cached object is not made anew.
        match self.read_key(name)? {
            Some(info) if keys::spec_of(&info.vault_type) == Some(KeySpec::Aes256) && !info.derived => {}
            Some(info) => {
                return Err(self.service_error(CKR_KEY_HANDLE_INVALID, &format!("{name} is now a {} key", info.vault_type)));
            }
            None => return Err(self.service_error(CKR_KEY_HANDLE_INVALID, &format!("no key {name}"))),
        }
        let call = format!("Encrypt {name} v{version}");
        let mut body = json!({"plaintext": STANDARD.encode(plaintext), "key_version": version});
        let sent = self.api.post(&call, &format!("encrypt/{name}"), &body);
        if let Some(Value::String(encoded)) = body.get_mut("plaintext").map(Value::take) {
            drop(Zeroizing::new(encoded));
        }
        let reply = sent?;
        let mut data = self.api.data(&call, Op::Encrypt, reply)?;
        let ciphertext = self.string_field(&call, &mut data, "ciphertext")?;
        if keys::looks_like_ciphertext(ciphertext.as_bytes()).is_none() {
            return Err(self.service_error(CKR_DEVICE_ERROR, &format!("{call}: the ciphertext is not of the form vault:vN:…")));
        }
        Ok(ciphertext.into_bytes())
    }

    fn unwrap(&self, key: &RemoteKey, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let name = self.name(key)?;
        self.require(key, key.spec == KeySpec::Aes256)?;
        // Any version of the key decrypts: a blob made before a rotation still unwraps
        // under the newest object.
        let Some(ciphertext) = keys::looks_like_ciphertext(blob) else {
            return Err(self.service_error(CKR_ENCRYPTED_DATA_INVALID, "not a transit ciphertext (vault:vN:…)"));
        };
        self.decrypt(&format!("Decrypt {name}"), name, ciphertext)
    }

    fn create_key(&self, request: &NewKey) -> Result<RemoteKey> {
        let Some(vault_type) = keys::vault_type(request.spec) else {
            return Err(self.service_error(CKR_KEY_SIZE_RANGE, &format!("Vault Transit has no {:?} keys", request.spec)));
        };
        if matches!(request.spec, KeySpec::EcP256 | KeySpec::Ed25519) && !request.sign {
            return Err(self.service_error(CKR_TEMPLATE_INCONSISTENT, "transit EC and Ed25519 keys only sign"));
        }
        let name = match &request.label {
            Some(label) if keys::valid_name(label) => label.clone(),
            Some(label) => {
                return Err(self.service_error(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    &format!(
                        "{label:?} cannot be a transit key name: letters, digits, `_`, and `-` or `.` inside, at most {} characters",
                        keys::MAX_NAME_LEN
                    ),
                ))
            }
            None => unique_name()?,
        };
        // `POST keys/NAME` on a key that exists does nothing and succeeds: refuse it here.
        if self.read_key(&name)?.is_some() {
            return Err(self.service_error(CKR_ATTRIBUTE_VALUE_INVALID, &format!("a key named {name} exists already")));
        }
        let call = format!("CreateKey {name}");
        let reply = self.api.post(&call, &format!("keys/{name}"), &json!({ "type": vault_type }))?;
        if !reply.is_success() {
            return Err(self.api.failure(&call, Op::Create, &reply));
        }
        // OpenBao answers with the key as a read shows it; Vault versions answer 204 and no
        // body: read it then.
        let info = match self.api.data(&call, Op::Create, reply) {
            Ok(data) => keys::parse_key_info(&data)?,
            Err(_) => {
                self.read_key(&name)?.ok_or_else(|| self.service_error(CKR_DEVICE_ERROR, &format!("{call}: key gone after creation")))?
            }
        };
        if keys::spec_of(&info.vault_type) != Some(request.spec) {
            return Err(self.service_error(CKR_DEVICE_ERROR, &format!("{call}: made a {} key", info.vault_type)));
        }
        tracing::info!(service = %self.api.name, key = %name, r#type = vault_type, "vault transit: key created");
        self.newest(&info)
    }

    fn delete_key(&self, key: &RemoteKey) -> Result<()> {
        let name = self.name(key)?;
        let call = format!("AllowDeletion {name}");
        let reply = self.api.post(&call, &format!("keys/{name}/config"), &json!({"deletion_allowed": true}))?;
        if !reply.is_success() {
            return Err(self.api.failure(&call, Op::Delete, &reply));
        }
        let call = format!("DeleteKey {name}");
        let reply = self.api.delete(&call, &format!("keys/{name}"))?;
        if !reply.is_success() {
            return Err(self.api.failure(&call, Op::Delete, &reply));
        }
        tracing::info!(service = %self.api.name, key = %name, "vault transit: key deleted (every version)");
        Ok(())
    }
}

/// "keyfront-" and 16 random hex digits.
fn unique_name() -> Result<String> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| Error::Internal(format!("OS random generator: {e}")))?;
    Ok(format!("keyfront-{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

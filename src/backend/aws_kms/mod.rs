//! AWS KMS as a key service for cloud slots: the KMS JSON API over the cloud slots' blocking
//! HTTP client, signed with SigV4. `new` only reads configuration and credentials (no
//! network); each `KeyService` call makes the KMS requests it needs.
//!
//! - `credentials`: the credentials chain (environment, profile files, web identity, IMDSv2).
//! - `api`: request signing, sending with retries, error codes.
//! - `keys`: which keys are shown and how requests are shaped (pure functions).

mod api;
mod credentials;
mod keys;
#[cfg(test)]
mod tests;

/// The parsers of what an AWS KMS slot reads from disk and from the credential services (the
/// shared credentials/config files, STS and instance-metadata replies), for the fuzz targets
/// in `fuzz/`. Not an API: nothing else uses it, and it may change with them.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::credentials::{find_source, parse_ini, parse_time, xml_text, Provider, Source, WebIdentity};
}

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cryptoki_sys::*;
use parking_lot::Mutex;
use serde_json::{json, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::backend::cloud::http::{HttpClient, RetryPolicy};
use crate::backend::cloud::{ecdsa_der_to_raw, Hash, KeyService, KeySpec, NewKey, RemoteKey, Signing};
use crate::config::AwsKmsSlotConfig;
use crate::error::{Error, Result};
use api::{error_name, Api};
use credentials::{find_source, process_env, Env, Provider, Source};
use keys::Metadata;

/// The shortest deletion window KMS allows, in days; `delete_key` always uses it.
pub const DELETION_WINDOW_DAYS: u32 = 7;
/// The most KMS encrypts in one Encrypt call.
const MAX_PLAINTEXT: usize = 4096;
/// The largest ciphertext blob Decrypt takes.
const MAX_CIPHERTEXT: usize = 6144;
/// How many DescribeKey/GetPublicKey/ListResourceTags requests run at once while listing.
const LIST_WORKERS: usize = 4;
/// The most pages one listing reads (ListKeys pages hold up to 1000 keys).
const MAX_PAGES: usize = 1000;

pub struct AwsKms {
    api: Api,
    /// `alias/…` form of the slot's `alias_prefix`.
    alias_prefix: Option<String>,
    tag: Option<(String, String)>,
    /// Public keys by key id: they never change, so each is fetched once.
    public_keys: Mutex<HashMap<String, Vec<u8>>>,
}

impl AwsKms {
    pub fn new(config: &AwsKmsSlotConfig) -> Result<Self> {
        Self::with_env(config, &process_env)
    }

    /// `new` with another environment (tests).
    fn with_env(config: &AwsKmsSlotConfig, env: Env) -> Result<Self> {
        let source = find_source(env, config.profile.as_deref(), &config.region);
        match &source {
            Source::Nothing(why) => tracing::warn!("aws-kms {}: no AWS credentials; every call will fail: {why}", config.region),
            other => tracing::info!("aws-kms {}: credentials from {}", config.region, other.describe()),
        }
        Self::with_source(config, source)
    }

    fn with_source(config: &AwsKmsSlotConfig, source: Source) -> Result<Self> {
        if config.region.is_empty() {
            return Err(Error::Config("aws-kms: no region".into()));
        }
        let url = config.endpoint.clone().unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", config.region));
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::Config(format!("aws-kms: endpoint {url} is not an http(s) URL")));
        }
        let cloud = &config.cloud;
        let policy = RetryPolicy::new(cloud.retry_attempts, cloud.timeout_ms);
        let http = HttpClient::new("aws-kms", cloud.ca_file.as_deref(), policy)?;
        let credentials = Provider::new(source, cloud.timeout_ms);
        Ok(AwsKms {
            api: Api { http, url, region: config.region.clone(), credentials },
            alias_prefix: keys::alias_prefix(config.alias_prefix.as_deref()),
            tag: config.tag.clone(),
            public_keys: Mutex::new(HashMap::new()),
        })
    }

    fn call(&self, op: &str, request: Value, idempotent: bool) -> Result<Value> {
        self.api.call(op, &request, idempotent)
    }

    /// Every page of a listing call: `field`'s items of each page, following `NextMarker`.
    /// A marker seen before, or more than `MAX_PAGES` pages, ends the listing with an error
    /// rather than a loop (LocalStack restarts from the first page on a marker it does not
    /// know).
    fn paged(&self, op: &str, request: Value, field: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut request = request;
        let mut markers = std::collections::HashSet::new();
        loop {
            let mut page = self.call(op, request.clone(), true)?;
            if let Some(Value::Array(found)) = page.get_mut(field).map(Value::take) {
                items.extend(found);
            }
            match page.get("NextMarker").and_then(Value::as_str) {
                Some(marker) if page.get("Truncated").and_then(Value::as_bool) == Some(true) => {
                    if !markers.insert(marker.to_string()) || markers.len() > MAX_PAGES {
                        return Err(Error::Service { rv: CKR_DEVICE_ERROR, message: format!("aws-kms {op}: the pages do not end") });
                    }
                    request["Marker"] = json!(marker);
                }
                _ => return Ok(items),
            }
        }
    }

    /// Alias names by target key id.
    fn aliases(&self, key_id: Option<&str>) -> Result<HashMap<String, Vec<String>>> {
        let mut request = json!({"Limit": 100});
        if let Some(id) = key_id {
            request["KeyId"] = json!(id);
        }
        let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
        for alias in self.paged("ListAliases", request, "Aliases")? {
            if let (Some(name), Some(target)) = (alias.get("AliasName").and_then(Value::as_str), alias.get("TargetKeyId").and_then(Value::as_str)) {
                by_key.entry(target.to_string()).or_default().push(name.to_string());
            }
        }
        Ok(by_key)
    }

    fn describe_key(&self, key_id: &str) -> Result<Metadata> {
        let reply = self.call("DescribeKey", json!({"KeyId": key_id}), true)?;
        reply.get("KeyMetadata").and_then(Metadata::from_json).ok_or_else(|| malformed("DescribeKey", "KeyMetadata"))
    }

    fn public_key(&self, key_id: &str) -> Result<Vec<u8>> {
        if let Some(der) = self.public_keys.lock().get(key_id) {
            return Ok(der.clone());
        }
        let reply = self.call("GetPublicKey", json!({"KeyId": key_id}), true)?;
        let der = decode(&reply, "GetPublicKey", "PublicKey")?;
        self.public_keys.lock().insert(key_id.to_string(), der.clone());
        Ok(der)
    }

    fn tagged(&self, key_id: &str, key: &str, value: &str) -> Result<bool> {
        let tags = self.paged("ListResourceTags", json!({"KeyId": key_id, "Limit": 50}), "Tags")?;
        Ok(keys::has_tag(&Value::Array(tags), key, value))
    }

    /// The `RemoteKey` of a described key, or `None` when the slot does not show it (kind,
    /// state, and with `check_tag` the tag filter).
    fn remote_key(&self, meta: &Metadata, alias: Option<&str>, check_tag: bool) -> Result<Option<RemoteKey>> {
        let Some((spec, sign, decrypt, enabled)) = meta.usable() else { return Ok(None) };
        if let (Some((k, v)), true) = (&self.tag, check_tag) {
            if !self.tagged(&meta.key_id, k, v)? {
                return Ok(None);
            }
        }
        let public_key_der = match spec {
            KeySpec::Aes256 => None,
            _ => match self.public_key(&meta.key_id) {
                Ok(der) => Some(der),
                // AWS gives no public key of a disabled key; one fetched while it was
                // enabled is cached, else the key cannot be shown.
                Err(e) if !enabled && matches!(error_name(&e), Some("DisabledException" | "KMSInvalidStateException")) => {
                    tracing::debug!("aws-kms: disabled key {} left out of the list: {e}", meta.key_id);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Some(RemoteKey {
            key_ref: meta.key_id.clone(),
            version: None,
            label: keys::label_of(alias, &meta.key_id),
            id: keys::key_id_bytes(&meta.key_id),
            spec,
            sign,
            decrypt,
            enabled,
            public_key_der,
        }))
    }

    /// Describes one listed key and makes its `RemoteKey`. A key that vanished since the
    /// listing, or whose key policy keeps this caller out, is left out rather than failing
    /// the whole list.
    fn list_one(&self, key_id: &str, alias: Option<&str>) -> Result<Option<RemoteKey>> {
        let outcome = self.describe_key(key_id).and_then(|meta| self.remote_key(&meta, alias, true));
        match outcome {
            Err(e) if matches!(error_name(&e), Some("NotFoundException" | "AccessDeniedException")) => {
                tracing::debug!("aws-kms: key {key_id} left out of the list: {e}");
                Ok(None)
            }
            other => other,
        }
    }

    /// Retries a call on a key just made while KMS does not know it yet (KMS is eventually
    /// consistent: a new key may be "not found" for a moment).
    fn on_new_key<T>(&self, mut call: impl FnMut() -> Result<T>) -> Result<T> {
        let mut pause = Duration::from_millis(100);
        for _ in 0..5 {
            match call() {
                Err(e) if error_name(&e) == Some("NotFoundException") => std::thread::sleep(pause),
                other => return other,
            }
            pause *= 2;
        }
        call()
    }

    fn schedule_deletion(&self, key_id: &str) -> Result<()> {
        let request = json!({"KeyId": key_id, "PendingWindowInDays": DELETION_WINDOW_DAYS});
        match self.call("ScheduleKeyDeletion", request, true) {
            Ok(_) => Ok(()),
            // A retried request, or a second delete: already pending deletion is done.
            Err(e) if error_name(&e) == Some("KMSInvalidStateException") => match self.describe_key(key_id) {
                Ok(meta) if meta.key_state == "PendingDeletion" => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

impl KeyService for AwsKms {
    fn describe(&self) -> String {
        let default = format!("https://kms.{}.amazonaws.com", self.api.region);
        if self.api.url == default {
            format!("aws-kms {}", self.api.region)
        } else {
            format!("aws-kms {} ({})", self.api.region, self.api.url)
        }
    }

    fn list_keys(&self) -> Result<Vec<RemoteKey>> {
        let key_ids: Vec<String> = self
            .paged("ListKeys", json!({"Limit": 1000}), "Keys")?
            .iter()
            .filter_map(|k| k.get("KeyId").and_then(Value::as_str).map(String::from))
            .collect();
        let aliases = self.aliases(None)?;
        let prefix = self.alias_prefix.as_deref();
        // The alias filter costs nothing: apply it before describing anything.
        let candidates: Vec<(String, Option<String>)> = key_ids
            .into_iter()
            .filter_map(|id| {
                let alias = keys::choose_alias(aliases.get(&id).map(Vec::as_slice).unwrap_or(&[]), prefix).map(String::from);
                (prefix.is_none() || alias.is_some()).then_some((id, alias))
            })
            .collect();
        let mut found = parallel(&candidates, LIST_WORKERS, |(id, alias)| self.list_one(id, alias.as_deref()))?;
        found.sort_by(|a, b| (&a.label, &a.key_ref).cmp(&(&b.label, &b.key_ref)));
        Ok(found)
    }

    fn sign(&self, key: &RemoteKey, how: Signing, input: &[u8]) -> Result<Vec<u8>> {
        if !key.sign {
            return Err(Error::Service { rv: CKR_KEY_FUNCTION_NOT_PERMITTED, message: format!("aws-kms: key {} does not sign", key.key_ref) });
        }
        let (algorithm, message_type, message) = keys::sign_request(key.spec, how, input)?;
        let request = json!({
            "KeyId": key.key_ref,
            "Message": B64.encode(&message),
            "MessageType": message_type,
            "SigningAlgorithm": algorithm,
        });
        let reply = self.call("Sign", request, true)?;
        let signature = decode(&reply, "Sign", "Signature")?;
        match how {
            Signing::Ecdsa(_) => ecdsa_der_to_raw(&signature, 32),
            Signing::Ed25519 if signature.len() != 64 => Err(malformed("Sign", "64-byte Ed25519 Signature")),
            _ => Ok(signature),
        }
    }

    fn decrypt_oaep(&self, key: &RemoteKey, hash: Hash, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let algorithm = keys::oaep_algorithm(hash)?;
        let KeySpec::Rsa(bits) = key.spec else {
            return Err(Error::Service { rv: CKR_KEY_TYPE_INCONSISTENT, message: format!("aws-kms: key {} is not RSA", key.key_ref) });
        };
        if !key.decrypt {
            return Err(Error::Service { rv: CKR_KEY_FUNCTION_NOT_PERMITTED, message: format!("aws-kms: key {} does not decrypt", key.key_ref) });
        }
        if ciphertext.len() != bits as usize / 8 {
            return Err(Error::Service {
                rv: CKR_ENCRYPTED_DATA_LEN_RANGE,
                message: format!("aws-kms: an RSA-{bits} ciphertext is {} bytes, not {}", bits / 8, ciphertext.len()),
            });
        }
        let request = json!({"KeyId": key.key_ref, "CiphertextBlob": B64.encode(ciphertext), "EncryptionAlgorithm": algorithm});
        let reply = self.call("Decrypt", request, true)?;
        plaintext_of(reply)
    }

    fn wrap(&self, key: &RemoteKey, plaintext: &[u8]) -> Result<Vec<u8>> {
        symmetric(key)?;
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(Error::Service {
                rv: CKR_DATA_LEN_RANGE,
                message: format!("aws-kms: Encrypt takes 1 to {MAX_PLAINTEXT} bytes, not {}", plaintext.len()),
            });
        }
        let mut request = json!({
            "KeyId": key.key_ref,
            "Plaintext": B64.encode(plaintext),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        });
        let outcome = self.api.call("Encrypt", &request, true);
        if let Some(Value::String(s)) = request.get_mut("Plaintext") {
            s.zeroize();
        }
        decode(&outcome?, "Encrypt", "CiphertextBlob")
    }

    fn unwrap(&self, key: &RemoteKey, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        symmetric(key)?;
        if blob.is_empty() || blob.len() > MAX_CIPHERTEXT {
            return Err(Error::Service {
                rv: CKR_ENCRYPTED_DATA_LEN_RANGE,
                message: format!("aws-kms: Decrypt takes blobs of 1 to {MAX_CIPHERTEXT} bytes, not {}", blob.len()),
            });
        }
        let request = json!({"KeyId": key.key_ref, "CiphertextBlob": B64.encode(blob), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"});
        let reply = self.call("Decrypt", request, true)?;
        plaintext_of(reply)
    }

    fn create_key(&self, request: &NewKey) -> Result<RemoteKey> {
        let (key_spec, key_usage) = keys::create_spec(request)?;
        let prefix = self.alias_prefix.as_deref();
        // Check the alias before anything is made.
        let alias = keys::alias_for_label(request.label.as_deref(), prefix)?;
        let mut create = json!({"KeySpec": key_spec, "KeyUsage": key_usage, "Description": "created by keyfront"});
        if let Some((k, v)) = &self.tag {
            // Without the slot's tag the new key would not show in this slot.
            create["Tags"] = json!([{"TagKey": k, "TagValue": v}]);
        }
        // Not idempotent: a lost CreateKey is not sent again (it could make a second key).
        let reply = self.call("CreateKey", create, false).map_err(|e| match (request.spec, &e) {
            (KeySpec::Ed25519, Error::Service { message, .. })
                if matches!(error_name(&e), Some("ValidationException" | "UnsupportedOperationException")) =>
            {
                Error::Service { rv: CKR_MECHANISM_INVALID, message: format!("{message} (this KMS has no Ed25519 keys)") }
            }
            _ => e,
        })?;
        let meta = reply.get("KeyMetadata").and_then(Metadata::from_json).ok_or_else(|| malformed("CreateKey", "KeyMetadata"))?;
        let not_asked = || Error::Service {
            rv: CKR_DEVICE_ERROR,
            message: format!("aws-kms: the new key {} is not a {key_spec} {key_usage} key", meta.key_id),
        };
        // What the reply says was made must be what was asked for (the caller gets objects of
        // that kind); the public key is checked against it below.
        match meta.usable() {
            Some((spec, sign, _, _)) if spec == request.spec && (spec == KeySpec::Aes256 || sign == request.sign) => {}
            _ => return Err(not_asked()),
        }
        let alias = alias.or_else(|| prefix.map(|p| keys::alias_for_unnamed(p, &meta.key_id)));
        if let Some(alias) = &alias {
            let made = self.on_new_key(|| self.call("CreateAlias", json!({"AliasName": alias, "TargetKeyId": meta.key_id}), false));
            if let Err(e) = made {
                // An unnamed key would not show in a prefixed slot, and the caller asked for
                // that name: take the key back.
                if let Err(undo) = self.schedule_deletion(&meta.key_id) {
                    tracing::warn!("aws-kms: key {} made but not named, and its deletion failed: {undo}", meta.key_id);
                }
                return Err(e);
            }
        }
        // Made with the slot's tag: no need to ask for it.
        let key = self.on_new_key(|| self.remote_key(&meta, alias.as_deref(), false))?;
        key.ok_or_else(not_asked)
    }

    fn delete_key(&self, key: &RemoteKey) -> Result<()> {
        self.schedule_deletion(&key.key_ref)?;
        // Free the key's names in this slot for new keys; failing that is only logged (the
        // key is already gone from the slot).
        let aliases = match self.aliases(Some(&key.key_ref)) {
            Ok(by_key) => by_key.into_values().flatten().collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!("aws-kms: key {} scheduled for deletion; listing its aliases failed: {e}", key.key_ref);
                return Ok(());
            }
        };
        let prefix = self.alias_prefix.as_deref();
        for alias in aliases.iter().filter(|a| !a.starts_with("alias/aws/") && prefix.is_none_or(|p| a.starts_with(p))) {
            match self.call("DeleteAlias", json!({"AliasName": alias}), true) {
                Ok(_) => {}
                Err(e) if error_name(&e) == Some("NotFoundException") => {}
                Err(e) => tracing::warn!("aws-kms: key {} scheduled for deletion; deleting its alias {alias} failed: {e}", key.key_ref),
            }
        }
        Ok(())
    }
}

/// Runs `f` over `items` on up to `workers` threads; the results in any order, the first
/// error if any.
fn parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> Result<Option<R>> + Sync) -> Result<Vec<R>> {
    if items.len() <= 1 || workers <= 1 {
        return items.iter().filter_map(|i| f(i).transpose()).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<R>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { return Ok(mine) };
                        if let Some(r) = f(item)? {
                            mine.push(r);
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Internal("aws-kms: a listing thread panicked".into())))).collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

fn symmetric(key: &RemoteKey) -> Result<()> {
    if key.spec != KeySpec::Aes256 {
        return Err(Error::Service { rv: CKR_KEY_TYPE_INCONSISTENT, message: format!("aws-kms: key {} is not a symmetric key", key.key_ref) });
    }
    if !key.decrypt {
        return Err(Error::Service { rv: CKR_KEY_FUNCTION_NOT_PERMITTED, message: format!("aws-kms: key {} does not encrypt", key.key_ref) });
    }
    Ok(())
}

fn malformed(op: &str, what: &str) -> Error {
    Error::Service { rv: CKR_DEVICE_ERROR, message: format!("aws-kms {op}: no valid {what} in the reply") }
}

/// A base64 field of a reply, decoded.
fn decode(reply: &Value, op: &str, field: &str) -> Result<Vec<u8>> {
    reply.get(field).and_then(Value::as_str).and_then(|s| B64.decode(s).ok()).ok_or_else(|| malformed(op, field))
}

/// Decrypt's `Plaintext`, decoded; the reply's copy is wiped.
fn plaintext_of(mut reply: Value) -> Result<Zeroizing<Vec<u8>>> {
    let Some(Value::String(encoded)) = reply.get_mut("Plaintext") else { return Err(malformed("Decrypt", "Plaintext")) };
    let encoded = Zeroizing::new(std::mem::take(encoded));
    let mut out = Zeroizing::new(Vec::with_capacity(encoded.len()));
    B64.decode_vec(encoded.as_bytes(), &mut out).map_err(|_| malformed("Decrypt", "Plaintext"))?;
    Ok(out)
}

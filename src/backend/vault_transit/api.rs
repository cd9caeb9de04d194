//! Requests to one transit mount: the token and namespace headers, the URL, and a failed
//! reply turned into an `Error::Service` with the `CK_RV` it means.

use std::path::PathBuf;

use cryptoki_sys::*;
use serde_json::Value;
use ureq::http;
use zeroize::Zeroizing;

use super::errors::{self, Op};
use crate::backend::cloud::http::{HttpClient, Reply, Request, RetryPolicy};
use crate::config::VaultSlotConfig;
use crate::error::{Error, Result};

/// Where the token comes from.
enum TokenSource {
    /// Read at every request, so a token that Vault Agent (or anyone) renews in the file is
    /// picked up without a restart.
    File(PathBuf),
    /// `VAULT_TOKEN` as it was at `C_Initialize`.
    Env(Option<Zeroizing<String>>),
}

pub(super) struct Api {
    http: HttpClient,
    /// `{address}/v1/{mount}`.
    base: String,
    /// `{address}/v1`, for `auth/token/lookup-self`.
    root: String,
    namespace: Option<String>,
    token: TokenSource,
    /// For logs and error messages: "vault-transit http://…/v1/transit".
    pub(super) name: String,
}

impl Api {
    /// Builds the client; reads the token source but sends nothing.
    pub(super) fn new(config: &VaultSlotConfig) -> Result<Self> {
        let address = config.address.trim_end_matches('/');
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(Error::Config(format!("vault-transit: address {address:?} must start with http:// or https://")));
        }
        let mount = match config.mount.trim_matches('/') {
            "" => "transit",
            mount => mount,
        };
        if mount.split('/').any(|segment| !super::keys::valid_name(segment)) {
            return Err(Error::Config(format!("vault-transit: mount {mount:?} is not a mount path")));
        }
        let namespace = config.namespace.as_deref().map(|n| n.trim_matches('/').to_string()).filter(|n| !n.is_empty());
        let mut name = format!("vault-transit {address}/v1/{mount}");
        if let Some(ns) = &namespace {
            name.push_str(&format!(" (namespace {ns})"));
        }
        let policy = RetryPolicy::new(config.cloud.retry_attempts, config.cloud.timeout_ms);
        let http = HttpClient::new("vault-transit", config.cloud.ca_file.as_deref(), policy)?;
        let token = match &config.token_file {
            Some(path) => {
                if let Err(e) = read_token_file(path) {
                    tracing::warn!(service = %name, "{}: every call will fail with CKR_USER_NOT_LOGGED_IN until it is fixed", e);
                }
                TokenSource::File(path.clone())
            }
            None => {
                let token = std::env::var("VAULT_TOKEN").ok().map(|t| Zeroizing::new(t.trim().to_string())).filter(|t| !t.is_empty());
                if token.is_none() {
                    tracing::warn!(
                        service = %name,
                        "no Vault token: neither `token_file` nor VAULT_TOKEN is set; every call will fail with CKR_USER_NOT_LOGGED_IN"
                    );
                }
                TokenSource::Env(token)
            }
        };
        Ok(Api { http, base: format!("{address}/v1/{mount}"), root: format!("{address}/v1"), namespace, token, name })
    }

    fn token(&self) -> Result<Zeroizing<String>> {
        let missing = |why: String| Error::Service { rv: CKR_USER_NOT_LOGGED_IN, message: format!("{}: {why}", self.name) };
        match &self.token {
            TokenSource::File(path) => read_token_file(path).map_err(missing),
            TokenSource::Env(Some(token)) => Ok(token.clone()),
            TokenSource::Env(None) => Err(missing("no Vault token: set `token_file` in the slot or VAULT_TOKEN".into())),
        }
    }

    fn build(&self, method: &http::Method, url: &str, token: &str, body: &[u8]) -> Result<Request> {
        let mut token = http::HeaderValue::from_str(token).map_err(|_| Error::Service {
            rv: CKR_USER_NOT_LOGGED_IN,
            message: format!("{}: the Vault token has characters not allowed in an HTTP header", self.name),
        })?;
        token.set_sensitive(true);
        let mut builder = http::Request::builder().method(method.clone()).uri(url).header("X-Vault-Token", token);
        if let Some(ns) = &self.namespace {
            builder = builder.header("X-Vault-Namespace", ns.as_str());
        }
        if !body.is_empty() {
            builder = builder.header("Content-Type", "application/json");
        }
        builder
            .body(body.to_vec())
            .map_err(|e| Error::Service { rv: CKR_GENERAL_ERROR, message: format!("{}: cannot build a request to {url}: {e}", self.name) })
    }

    /// Sends one request to `{base}/{path}` (or `{address}/v1/{path}` when `below_mount` is
    /// false) and returns the reply, whatever its status.
    fn send(&self, call: &str, method: http::Method, path: &str, below_mount: bool, body: &[u8]) -> Result<Reply> {
        let token = self.token()?;
        let url = format!("{}/{path}", if below_mount { &self.base } else { &self.root });
        // Every call here is safe to repeat: reads, sign, encrypt and decrypt change nothing,
        // and a create or config write done twice leaves the same key. Only DELETE is not.
        let idempotent = method != http::Method::DELETE;
        self.http.send(call, idempotent, || self.build(&method, &url, &token, body), errors::retryable)
    }

    pub(super) fn get(&self, call: &str, path: &str) -> Result<Reply> {
        self.send(call, http::Method::GET, path, true, &[])
    }

    pub(super) fn post(&self, call: &str, path: &str, body: &Value) -> Result<Reply> {
        let body = Zeroizing::new(serde_json::to_vec(body).map_err(|e| Error::Internal(format!("vault request body: {e}")))?);
        self.send(call, http::Method::POST, path, true, &body)
    }

    pub(super) fn delete(&self, call: &str, path: &str) -> Result<Reply> {
        self.send(call, http::Method::DELETE, path, true, &[])
    }

    /// The `data` object of a successful reply; a failed one becomes its error.
    pub(super) fn data(&self, call: &str, op: Op, reply: Reply) -> Result<Value> {
        if !reply.is_success() {
            return Err(self.failure(call, op, &reply));
        }
        if let Some(warning) = errors::ignored_parameters(&reply.body) {
            // An older server than this code knows, which did something else than asked.
            return Err(Error::Service { rv: CKR_FUNCTION_FAILED, message: format!("{} {call}: {warning}", self.name) });
        }
        let mut value: Value = serde_json::from_slice(&reply.body).map_err(|_| Error::Service {
            rv: CKR_DEVICE_ERROR,
            message: format!("{} {call}: reply is not JSON: {}", self.name, reply.text()),
        })?;
        match value.get_mut("data").map(Value::take) {
            Some(data @ Value::Object(_)) => Ok(data),
            _ => Err(Error::Service { rv: CKR_DEVICE_ERROR, message: format!("{} {call}: reply without data", self.name) }),
        }
    }

    /// The error a failed reply means. A 403 is Vault's answer both to a token it does not
    /// know (bad, expired, revoked) and to a policy that does not allow the path; the token's
    /// own `auth/token/lookup-self` (which the `default` policy allows every token) tells
    /// them apart.
    pub(super) fn failure(&self, call: &str, op: Op, reply: &Reply) -> Error {
        let what = errors::describe(reply);
        let rv = match reply.status {
            403 => self.forbidden_rv(),
            status => errors::classify(op, status, &reply.body),
        };
        let mut message = format!("{} {call}: {what}", self.name);
        match rv {
            CKR_USER_NOT_LOGGED_IN => message.push_str(" (the Vault token is not valid: expired, revoked or wrong)"),
            CKR_FUNCTION_FAILED if reply.status == 403 => message.push_str(" (the token's policies do not allow this)"),
            CKR_DEVICE_ERROR if reply.status == 404 => message.push_str(" (check the slot's address, mount and namespace)"),
            _ => {}
        }
        tracing::debug!(service = %self.name, call, status = reply.status, rv, "vault transit call failed: {what}");
        Error::Service { rv, message }
    }

    fn forbidden_rv(&self) -> CK_RV {
        match self.send("LookupSelf", http::Method::GET, "auth/token/lookup-self", false, &[]) {
            Ok(reply) if reply.is_success() => CKR_FUNCTION_FAILED,
            Ok(reply) if reply.status == 403 || reply.status == 401 => CKR_USER_NOT_LOGGED_IN,
            // Can't tell (a token without the default policy, the server gone): the policy.
            _ => CKR_FUNCTION_FAILED,
        }
    }
}

fn read_token_file(path: &std::path::Path) -> std::result::Result<Zeroizing<String>, String> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("token_file {}: {e}", path.display()))?);
    let token = Zeroizing::new(text.trim().to_string());
    if token.is_empty() {
        return Err(format!("token_file {} is empty", path.display()));
    }
    Ok(token)
}

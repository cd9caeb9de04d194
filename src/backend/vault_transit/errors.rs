//! What Vault's error replies mean in PKCS#11 terms. Vault answers most failures with a
//! status and a JSON `{"errors": ["…"]}` list; the status alone is not enough (a missing key
//! is a 400 on `sign/`, a 404 on `keys/`; a bad RSA ciphertext is a 500), so the messages,
//! as OpenBao 2.7 and Vault word them, decide.

use cryptoki_sys::*;

use crate::backend::cloud::http::{is_throttled_or_5xx, Reply};

/// The kind of call that failed: the same message can mean different things.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Op {
    List,
    Read,
    Sign,
    /// `decrypt/` (RSA-OAEP, or an unwrap under an AES key): a rejected ciphertext is the
    /// caller's data.
    Decrypt,
    Encrypt,
    Create,
    Delete,
}

/// The messages of an error reply, with go-multierror's "1 error occurred:\n\t* …" framing
/// taken off.
pub(super) fn messages(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(list) = value.get("errors").and_then(|e| e.as_array()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for message in list.iter().filter_map(|m| m.as_str()) {
        let items: Vec<&str> = message.lines().filter_map(|l| l.trim_start().strip_prefix("* ")).collect();
        if items.is_empty() {
            out.push(message.trim().to_string());
        } else {
            out.extend(items.iter().map(|i| i.trim().to_string()));
        }
    }
    out
}

/// Whether the reply had an `errors` member at all (Vault's 404 for a missing key or an empty
/// list is `{"errors":[]}`; a route that does not exist names itself).
pub(super) fn has_error_list(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.get("errors").is_some_and(|e| e.is_array()))
}

fn any(messages: &[String], needles: &[&str]) -> bool {
    messages.iter().any(|m| {
        let m = m.to_ascii_lowercase();
        needles.iter().any(|n| m.contains(n))
    })
}

/// The route itself is missing: no such mount, no such namespace.
fn no_route(messages: &[String]) -> bool {
    any(messages, &["no handler for route", "namespace not found", "unsupported path"])
}

/// 500s that are Vault's answer to this request, not a passing failure: sending it again
/// gets the same answer.
fn deterministic_500(messages: &[String]) -> bool {
    any(
        messages,
        &[
            "soft-deleted",
            "requested version",
            "disallowed by policy",
            "less than the minimum",
            "failed to rsa decrypt",
            "decryption error",
            "not supported for key",
            "unsupported",
        ],
    )
}

/// The retry rule given to `HttpClient::send`: throttling and server-side failures (a sealed
/// or standby Vault answers 503), except the 500s Vault gives for a request it will never do.
pub(super) fn retryable(reply: &Reply) -> bool {
    if !is_throttled_or_5xx(reply) || reply.status == 501 {
        return false;
    }
    !(reply.status == 500 && deterministic_500(&messages(&reply.body)))
}

/// The return code of a failed call (not 403: whether that is the token or the policy takes
/// another request, see `Api::failure`).
pub(super) fn classify(op: Op, status: u16, body: &[u8]) -> CK_RV {
    let msgs = messages(body);
    if status == 401 {
        return CKR_USER_NOT_LOGGED_IN;
    }
    if status == 404 && no_route(&msgs) {
        return CKR_DEVICE_ERROR;
    }
    if any(&msgs, &["soft-deleted", "disallowed by policy", "less than the minimum"]) {
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    }
    if status == 404 || any(&msgs, &["not found", "could be found", "higher than the latest key version"]) {
        return CKR_KEY_HANDLE_INVALID;
    }
    if op == Op::Decrypt
        && (status == 400 || status == 500)
        && any(&msgs, &["ciphertext", "decrypt", "message authentication failed", "could not decode"])
    {
        return CKR_ENCRYPTED_DATA_INVALID;
    }
    if status == 429 || status >= 500 {
        return CKR_DEVICE_ERROR;
    }
    CKR_FUNCTION_FAILED
}

/// The errors of a reply for a log line or an error message: "HTTP 400: signing key not
/// found".
pub(super) fn describe(reply: &Reply) -> String {
    let msgs = messages(&reply.body);
    if msgs.is_empty() {
        if has_error_list(&reply.body) || reply.body.is_empty() {
            format!("HTTP {}", reply.status)
        } else {
            format!("HTTP {}: {}", reply.status, reply.text())
        }
    } else {
        format!("HTTP {}: {}", reply.status, msgs.join("; "))
    }
}

/// Where a reply's `warnings` say Vault ignored a parameter: such a server is older than
/// this code (e.g. no `salt_length`) and would have done something else than asked.
pub(super) fn ignored_parameters(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    value.get("warnings")?.as_array()?.iter().filter_map(|w| w.as_str()).find(|w| w.contains("unrecognized parameters")).map(str::to_string)
}

#[cfg(test)]
mod unit {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply { status, body: body.as_bytes().to_vec().into() }
    }

    #[test]
    fn messages_lose_the_multierror_framing() {
        let body = br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        assert_eq!(messages(body), vec!["permission denied"]);
        let body = br#"{"errors":["2 errors occurred:\n\t* one\n\t* two\n\n"]}"#;
        assert_eq!(messages(body), vec!["one", "two"]);
        assert_eq!(messages(br#"{"errors":["signing key not found"]}"#), vec!["signing key not found"]);
        assert!(messages(br#"{"errors":[]}"#).is_empty());
        assert!(messages(b"<html>").is_empty());
    }

    #[test]
    fn missing_keys_are_invalid_handles_whatever_the_status() {
        assert_eq!(classify(Op::Read, 404, br#"{"errors":[]}"#), CKR_KEY_HANDLE_INVALID);
        assert_eq!(classify(Op::Sign, 400, br#"{"errors":["signing key not found"]}"#), CKR_KEY_HANDLE_INVALID);
        assert_eq!(classify(Op::Decrypt, 400, br#"{"errors":["encryption key not found"]}"#), CKR_KEY_HANDLE_INVALID);
        assert_eq!(classify(Op::Delete, 400, br#"{"errors":["no existing key named k could be found"]}"#), CKR_KEY_HANDLE_INVALID);
        assert_eq!(
            classify(Op::Delete, 400, br#"{"errors":["error deleting policy k: could not delete key; not found"]}"#),
            CKR_KEY_HANDLE_INVALID
        );
        let body = br#"{"errors":["1 error occurred:\n\t* requested version for signing is higher than the latest key version\n\n"]}"#;
        assert_eq!(classify(Op::Sign, 500, body), CKR_KEY_HANDLE_INVALID);
    }

    #[test]
    fn a_missing_mount_or_namespace_is_a_device_error() {
        let body = br#"{"errors":["no handler for route \"nomount/keys/x\". route entry not found."]}"#;
        assert_eq!(classify(Op::Read, 404, body), CKR_DEVICE_ERROR);
        assert_eq!(classify(Op::List, 404, br#"{"errors":["namespace not found"]}"#), CKR_DEVICE_ERROR);
    }

    #[test]
    fn rejected_ciphertexts_are_the_callers_data() {
        for body in [
            r#"{"errors":["cipher: message authentication failed"]}"#,
            r#"{"errors":["invalid ciphertext: could not decode base64"]}"#,
            r#"{"errors":["invalid ciphertext: version is too new"]}"#,
            r#"{"errors":["invalid ciphertext: no prefix"]}"#,
        ] {
            assert_eq!(classify(Op::Decrypt, 400, body.as_bytes()), CKR_ENCRYPTED_DATA_INVALID, "{body}");
        }
        let rsa = br#"{"errors":["1 error occurred:\n\t* failed to RSA decrypt the ciphertext: crypto/rsa: decryption error\n\n"]}"#;
        assert_eq!(classify(Op::Decrypt, 500, rsa), CKR_ENCRYPTED_DATA_INVALID);
        // The same words from another call are not about the caller's ciphertext.
        assert_eq!(classify(Op::Sign, 400, br#"{"errors":["invalid ciphertext"]}"#), CKR_FUNCTION_FAILED);
    }

    #[test]
    fn soft_deleted_and_too_old_versions_refuse_to_work() {
        let body = br#"{"errors":["1 error occurred:\n\t* refusing to use soft-deleted key\n\n"]}"#;
        assert_eq!(classify(Op::Sign, 500, body), CKR_KEY_FUNCTION_NOT_PERMITTED);
        let body = br#"{"errors":["ciphertext or signature version is disallowed by policy (too old)"]}"#;
        assert_eq!(classify(Op::Decrypt, 400, body), CKR_KEY_FUNCTION_NOT_PERMITTED);
    }

    #[test]
    fn other_failures() {
        assert_eq!(classify(Op::Sign, 400, br#"{"errors":["key type aes256-gcm96 does not support signing"]}"#), CKR_FUNCTION_FAILED);
        assert_eq!(classify(Op::List, 503, br#"{"errors":["Vault is sealed"]}"#), CKR_DEVICE_ERROR);
        assert_eq!(classify(Op::List, 429, b""), CKR_DEVICE_ERROR);
        assert_eq!(classify(Op::List, 401, b""), CKR_USER_NOT_LOGGED_IN);
    }

    #[test]
    fn only_passing_failures_are_retried() {
        assert!(retryable(&reply(503, r#"{"errors":["Vault is sealed"]}"#)));
        assert!(retryable(&reply(429, "")));
        assert!(retryable(&reply(500, r#"{"errors":["storage: connection reset"]}"#)));
        assert!(retryable(&reply(502, "bad gateway")));
        assert!(!retryable(&reply(
            500,
            r#"{"errors":["1 error occurred:\n\t* failed to RSA decrypt the ciphertext: crypto/rsa: decryption error\n\n"]}"#
        )));
        assert!(!retryable(&reply(500, r#"{"errors":["1 error occurred:\n\t* refusing to use soft-deleted key\n\n"]}"#)));
        assert!(!retryable(&reply(501, "")));
        assert!(!retryable(&reply(400, r#"{"errors":["signing key not found"]}"#)));
    }

    #[test]
    fn descriptions_and_warnings() {
        assert_eq!(describe(&reply(400, r#"{"errors":["signing key not found"]}"#)), "HTTP 400: signing key not found");
        assert_eq!(describe(&reply(404, r#"{"errors":[]}"#)), "HTTP 404");
        assert_eq!(describe(&reply(502, "bad gateway")), "HTTP 502: bad gateway");
        let body = br#"{"data":{},"warnings":["Endpoint ignored these unrecognized parameters: [salt_length]"]}"#;
        assert!(ignored_parameters(body).unwrap().contains("salt_length"));
        assert_eq!(ignored_parameters(br#"{"data":{},"warnings":null}"#), None);
    }
}

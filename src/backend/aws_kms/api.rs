//! The KMS wire protocol: JSON 1.1 requests (`POST /`, `X-Amz-Target: TrentService.<Op>`)
//! signed with SigV4 for the service `kms`, sent through the cloud slots' `HttpClient`, and
//! the service's errors turned into the `CK_RV` they mean.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use cryptoki_sys::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::credentials::Provider;
use crate::backend::cloud::http::{is_throttled_or_5xx, HttpClient, Reply, Request};
use crate::error::{Error, Result};

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

pub struct Api {
    pub http: HttpClient,
    /// The endpoint, without a trailing slash.
    pub url: String,
    pub region: String,
    pub credentials: Provider,
}

impl Api {
    /// Calls `op` with `request`; returns the reply's JSON (an empty object for an empty body).
    /// Both bodies are wiped afterwards: some carry plaintext (Encrypt's request, Decrypt's
    /// reply). `idempotent`: whether a request that may have been lost is sent again.
    pub fn call(&self, op: &str, request: &Value, idempotent: bool) -> Result<Value> {
        let body = Zeroizing::new(serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?);
        let payload_hash = hex(&Sha256::digest(&body[..]));
        let target = format!("TrentService.{op}");
        let mut reply = self.http.send(
            op,
            idempotent,
            || {
                let credentials = self.credentials.get()?;
                kms_request(&self.url, &target, &body, &payload_hash, &credentials, &self.region, SystemTime::now())
            },
            retryable,
        )?;
        let outcome = if reply.is_success() {
            if reply.body.iter().all(u8::is_ascii_whitespace) {
                Ok(Value::Object(Default::default()))
            } else {
                serde_json::from_slice(&reply.body).map_err(|e| Error::Service {
                    rv: CKR_DEVICE_ERROR,
                    message: format!("aws-kms {op}: the reply is not JSON: {e}"),
                })
            }
        } else {
            Err(reply_error(op, &reply))
        };
        reply.body.zeroize();
        outcome
    }
}

/// Builds the signed KMS request for one attempt.
pub fn kms_request(
    url: &str,
    target: &str,
    body: &[u8],
    payload_hash: &str,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Request> {
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", target)];
    signed_post(&format!("{url}/"), &headers, body, payload_hash, credentials, region, "kms", time)
}

/// A POST request with `headers` and `body`, signed with SigV4 in the `Authorization` header
/// (plus `X-Amz-Date` and, for temporary credentials, `X-Amz-Security-Token`). The body is
/// signed through its precomputed SHA-256 (`payload_hash`, lowercase hex), so the signer never
/// sees (or logs) the body itself.
#[allow(clippy::too_many_arguments)]
pub fn signed_post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    payload_hash: &str,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Request> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::Internal(format!("aws-kms: {what}: {e}"));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| bad("signing parameters", &e))?
        .into();
    let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Precomputed(payload_hash.to_string()))
        .map_err(|e| bad("request to sign", &e))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| bad("signing", &e))?.into_parts();
    let mut builder = ureq::http::Request::post(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(body.to_vec()).map_err(|e| bad("request", &e))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The service's error name and message from an error reply's body:
/// `{"__type": "com.amazonaws.kms#NotFoundException", "message": "…"}` → ("NotFoundException", "…").
pub fn error_of(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let raw = v.get("__type")?.as_str()?;
    let name = raw.rsplit('#').next().unwrap_or(raw).split(':').next().unwrap_or(raw).trim().to_string();
    let message = v.get("message").or_else(|| v.get("Message")).and_then(Value::as_str).unwrap_or("").to_string();
    Some((name, message))
}

/// Throttling names the AWS SDKs retry (their "standard" retry mode list).
fn is_throttling(name: &str) -> bool {
    matches!(
        name,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "TransactionInProgressException"
            | "RequestLimitExceeded"
            | "BandwidthLimitExceeded"
            | "LimitExceededException"
            | "RequestThrottled"
            | "SlowDown"
            | "PriorRequestNotComplete"
            | "EC2ThrottledException"
    )
}

/// Whether a reply is worth another attempt: 429, 5xx, or a 400 that says "throttled".
pub fn retryable(reply: &Reply) -> bool {
    is_throttled_or_5xx(reply) || (reply.status == 400 && error_of(&reply.body).is_some_and(|(name, _)| is_throttling(&name)))
}

/// The `CK_RV` of a KMS error. The rule for names not listed: a 4xx reply means the service
/// understood the request and refused it (retrying will not help, the service is fine), so
/// the function failed (`CKR_FUNCTION_FAILED`); a 5xx reply, or one that is not a KMS error
/// at all (a proxy's page, a wrong endpoint), means the device is not working
/// (`CKR_DEVICE_ERROR`).
pub fn error_rv(name: &str, status: u16) -> CK_RV {
    match name {
        "AccessDeniedException" => CKR_FUNCTION_FAILED,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "RequestExpired" => CKR_USER_NOT_LOGGED_IN,
        "DisabledException" | "KMSInvalidStateException" | "InvalidKeyUsageException" => CKR_KEY_FUNCTION_NOT_PERMITTED,
        "NotFoundException" | "InvalidArnException" => CKR_KEY_HANDLE_INVALID,
        "InvalidCiphertextException" | "IncorrectKeyException" => CKR_ENCRYPTED_DATA_INVALID,
        // A quota (keys, aliases) reached; throttling ones are retried before they get here.
        "LimitExceededException" => CKR_DEVICE_MEMORY,
        "AlreadyExistsException" | "InvalidAliasNameException" => CKR_ATTRIBUTE_VALUE_INVALID,
        "KMSInternalException" | "DependencyTimeoutException" | "KeyUnavailableException" | "InternalFailure" | "ServiceUnavailable" => {
            CKR_DEVICE_ERROR
        }
        _ if is_throttling(name) => CKR_DEVICE_ERROR,
        _ if (400..500).contains(&status) => CKR_FUNCTION_FAILED,
        _ => CKR_DEVICE_ERROR,
    }
}

/// The error of a reply that is not a success, with the service's words in the message.
pub fn reply_error(op: &str, reply: &Reply) -> Error {
    match error_of(&reply.body) {
        Some((name, message)) => {
            let rv = error_rv(&name, reply.status);
            Error::Service { rv, message: format!("aws-kms {op}: {name}: {message}") }
        }
        None => Error::Service {
            rv: CKR_DEVICE_ERROR,
            message: format!("aws-kms {op}: HTTP {} without a KMS error: {}", reply.status, reply.text()),
        },
    }
}

/// The service's error name, when `e` came from the service.
pub fn error_name(e: &Error) -> Option<&str> {
    match e {
        Error::Service { message, .. } => message.split(": ").nth(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::aws_kms::credentials::{tests::canned, Source};
    use crate::backend::cloud::http::RetryPolicy;
    use hmac::{KeyInit, Mac};

    fn at(text: &str) -> SystemTime {
        super::super::credentials::parse_time(text).unwrap()
    }

    fn example_credentials(token: Option<&str>) -> Credentials {
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token.map(String::from), None, "test")
    }

    fn header<'a>(r: &'a Request, name: &str) -> &'a str {
        r.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("no {name} header"))
    }

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// The AWS SigV4 test suite's `post-vanilla` case (aws-signing-test-suite/v4/post-vanilla,
    /// shipped with aws-sigv4): a known answer for the signing path this module uses.
    #[test]
    fn sigv4_post_vanilla_known_answer() {
        let r = signed_post(
            "https://example.amazonaws.com/",
            &[],
            b"",
            EMPTY_SHA256,
            &example_credentials(None),
            "us-east-1",
            "service",
            at("2015-08-30T12:36:00Z"),
        )
        .unwrap();
        assert_eq!(header(&r, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&r, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        assert!(r.headers().get("x-amz-security-token").is_none());
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut m = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// A KMS request against the canonical form written out by hand from the SigV4
    /// specification: method, path, headers (sorted, lowercase), the body's hash.
    #[test]
    fn kms_request_canonical_form() {
        let body = br#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab"}"#;
        let hash = hex(&Sha256::digest(body));
        let credentials = example_credentials(Some("SESSIONTOKEN"));
        let r = kms_request(
            "https://kms.eu-west-1.amazonaws.com",
            "TrentService.DescribeKey",
            body,
            &hash,
            &credentials,
            "eu-west-1",
            at("2026-11-23T10:00:00Z"),
        )
        .unwrap();
        assert_eq!(r.method(), "POST");
        assert_eq!(r.uri().to_string(), "https://kms.eu-west-1.amazonaws.com/");
        assert_eq!(r.body(), &body.to_vec());
        assert_eq!(header(&r, "content-type"), "application/x-amz-json-1.1");
        assert_eq!(header(&r, "x-amz-target"), "TrentService.DescribeKey");
        assert_eq!(header(&r, "x-amz-security-token"), "SESSIONTOKEN");

        let canonical = format!(
            "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:kms.eu-west-1.amazonaws.com\n\
             x-amz-date:20261123T100000Z\nx-amz-security-token:SESSIONTOKEN\nx-amz-target:TrentService.DescribeKey\n\n\
             content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n{hash}"
        );
        let scope = "20261123/eu-west-1/kms/aws4_request";
        let to_sign = format!("AWS4-HMAC-SHA256\n20261123T100000Z\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
        let mut key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20261123");
        for part in ["eu-west-1", "kms", "aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex(&hmac(&key, &to_sign));
        assert_eq!(
            header(&r, "authorization"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature={signature}"
            )
        );
    }

    #[test]
    fn error_names_and_messages() {
        let e = |s: &str| error_of(s.as_bytes());
        assert_eq!(e(r#"{"__type":"NotFoundException","message":"gone"}"#), Some(("NotFoundException".into(), "gone".into())));
        assert_eq!(e(r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"bad"}"#).unwrap().0, "UnrecognizedClientException");
        assert_eq!(e(r#"{"__type":"ThrottlingException:http://internal"}"#).unwrap().0, "ThrottlingException");
        assert_eq!(e("<html>502</html>"), None);
    }

    #[test]
    fn error_codes() {
        for (name, rv) in [
            ("AccessDeniedException", CKR_FUNCTION_FAILED),
            ("UnrecognizedClientException", CKR_USER_NOT_LOGGED_IN),
            ("InvalidSignatureException", CKR_USER_NOT_LOGGED_IN),
            ("IncompleteSignature", CKR_USER_NOT_LOGGED_IN),
            ("ExpiredTokenException", CKR_USER_NOT_LOGGED_IN),
            ("MissingAuthenticationToken", CKR_USER_NOT_LOGGED_IN),
            ("DisabledException", CKR_KEY_FUNCTION_NOT_PERMITTED),
            ("KMSInvalidStateException", CKR_KEY_FUNCTION_NOT_PERMITTED),
            ("NotFoundException", CKR_KEY_HANDLE_INVALID),
            ("InvalidCiphertextException", CKR_ENCRYPTED_DATA_INVALID),
            ("ValidationException", CKR_FUNCTION_FAILED),
            ("KMSInvalidSignatureException", CKR_FUNCTION_FAILED),
            ("ThrottlingException", CKR_DEVICE_ERROR),
            ("LimitExceededException", CKR_DEVICE_MEMORY),
        ] {
            assert_eq!(error_rv(name, 400), rv, "{name}");
        }
        assert_eq!(error_rv("KMSInternalException", 500), CKR_DEVICE_ERROR);
        assert_eq!(error_rv("SomethingNew", 500), CKR_DEVICE_ERROR);
        let reply = Reply { status: 404, body: b"<html>not here</html>".to_vec().into() };
        assert_eq!(reply_error("Sign", &reply).rv(), CKR_DEVICE_ERROR);
        let reply = Reply { status: 400, body: br#"{"__type":"DisabledException","message":"key is disabled"}"#.to_vec().into() };
        let e = reply_error("Sign", &reply);
        assert_eq!(e.to_string(), "aws-kms Sign: DisabledException: key is disabled");
        assert_eq!(error_name(&e), Some("DisabledException"));
    }

    #[test]
    fn which_replies_are_retried() {
        let r = |status, body: &str| retryable(&Reply { status, body: body.as_bytes().to_vec().into() });
        assert!(r(500, ""));
        assert!(r(503, r#"{"__type":"DependencyTimeoutException"}"#));
        assert!(r(429, ""));
        assert!(r(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
        assert!(r(400, r#"{"__type":"LimitExceededException"}"#));
        assert!(!r(400, r#"{"__type":"ValidationException"}"#));
        assert!(!r(400, r#"{"__type":"AccessDeniedException"}"#));
        assert!(!r(200, ""));
    }

    fn api_at(url: String) -> Api {
        let credentials = Credentials::new("AKIDBAD", "bad", None, None, "test");
        Api {
            http: HttpClient::new("aws-kms", None, RetryPolicy::new(2, 5_000)).unwrap(),
            url,
            region: "us-east-1".into(),
            credentials: Provider::new(Source::Fixed { credentials, from: "test".into() }, 5_000),
        }
    }

    /// Real AWS refuses unknown keys this way; LocalStack accepts any signature, so the case is
    /// tested against a canned reply.
    #[test]
    fn bad_credentials_are_user_not_logged_in() {
        let body = r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#;
        let (url, server) = canned(vec![(400, body.into())]);
        let e = api_at(url).call("ListKeys", &serde_json::json!({}), true).unwrap_err();
        assert_eq!(e.rv(), CKR_USER_NOT_LOGGED_IN);
        assert!(e.to_string().contains("UnrecognizedClientException"));
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 1, "not retried");
        let lower = seen[0].to_ascii_lowercase();
        assert!(lower.contains("x-amz-target: trentservice.listkeys"));
        assert!(lower.contains("authorization: aws4-hmac-sha256 credential=akidbad/"));
        assert!(seen[0].ends_with("{}"));
    }

    #[test]
    fn throttling_is_retried_then_succeeds() {
        let throttled = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
        let (url, server) = canned(vec![(400, throttled.into()), (200, r#"{"Keys":[]}"#.into())]);
        let v = api_at(url).call("ListKeys", &serde_json::json!({}), true).unwrap();
        assert_eq!(v["Keys"], serde_json::json!([]));
        assert_eq!(server.join().unwrap().len(), 2);
    }
}

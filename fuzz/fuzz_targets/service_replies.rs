//! What the cloud slots read from the network: every reply body the AWS KMS and Vault
//! Transit services parse, and the replies of the AWS credential services (instance
//! metadata, STS), served by a canned HTTP server on 127.0.0.1 (`keyfront_fuzz::canned`) to
//! the real `KeyService` calls (`AwsKms`, `VaultTransit`) and the credentials `Provider`.
//! The module's own HTTP client, request signing, retries (none: `retry_attempts = 0`) and
//! error mapping all run as in a slot.
//!
//! Input: `op` (one byte, modulo 16), `variant` (one byte: bits 0–3 the signing scheme
//! modulo 7, bits 0–2 the spec of a new key modulo 6, bit 3 a label for it, bits 4–5 the
//! Vault key version, 0 for "the newest", bit 7 the AWS slot with an alias prefix and a tag
//! filter), then the replies, separated by 0xFF bytes. Each reply is
//! `status body` with the status as three ASCII digits (200 when absent); for the AWS ops it
//! starts with a tag byte naming the KMS operation it answers (`K` ListKeys, `A` ListAliases,
//! `D` DescribeKey, `P` GetPublicKey, `T` ListResourceTags, `S` Sign, `d` Decrypt, `E`
//! Encrypt, `C` CreateKey, `a` CreateAlias, `X` ScheduleKeyDeletion, `x` DeleteAlias). A KMS
//! request gets one of the replies tagged for its operation, picked by a hash of the request
//! body (listing runs 4 requests at once: the same request always gets the same reply). The
//! Vault and credential ops answer requests in order, one reply each. A request the input has
//! no reply for gets `500 {}`.
//!
//! ops: 0 AWS list_keys, 1 sign, 2 decrypt_oaep, 3 wrap, 4 unwrap, 5 create_key, 6
//! delete_key; 7 Vault list_keys, 8 sign, 9 decrypt_oaep, 10 wrap, 11 unwrap, 12 create_key,
//! 13 delete_key; 14 AWS instance metadata credentials, 15 STS AssumeRoleWithWebIdentity.
//!
//! What is checked besides "no panic": an asymmetric key comes with a public key, an AES key
//! without; Vault's public keys are accepted by `public_key_from_spki` (what the cloud token
//! makes its objects with) and are of the kind and size of the key's spec (AWS passes
//! GetPublicKey's DER on, and the token leaves out keys whose public key it refuses); a
//! created key is of the spec asked for; ECDSA and Ed25519 signatures are 64 bytes; a Vault
//! wrap is a `vault:vN:` string.
//!
//! Harness limits: statuses are 200–599 (see `canned`); in `create_key` a KMS
//! `NotFoundException` from CreateAlias or GetPublicKey is sent as a `ValidationException`
//! (KMS's eventual consistency makes the module retry those with pauses of up to 1.6 s, by
//! design); the credential fetchers retry 429 and 5xx after a pause, so those go out as 400.
#![no_main]

use std::sync::OnceLock;

use keyfront::backend::aws_kms::fuzzing::{Provider, Source, WebIdentity};
use keyfront::backend::aws_kms::AwsKms;
use keyfront::backend::cloud::{Hash, KeyService, KeySpec, NewKey, RemoteKey, Signing};
use keyfront::backend::vault_transit::VaultTransit;
use keyfront::config::{AwsKmsSlotConfig, CloudSlotConfig, VaultSlotConfig};
use keyfront::mechanism::keys::public_key_from_spki;
use keyfront_fuzz::canned::{fnv, split_replies, Server};
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

/// No LeakSanitizer here, at exit either: the canned server's threads (one per kept-alive
/// connection) live across inputs, and what they hold is taken for leaks. (`run-smoke` also
/// passes `-detect_leaks=0`, for libFuzzer's own check after each input.)
#[no_mangle]
pub extern "C" fn __lsan_is_turned_off() -> std::os::raw::c_int {
    1
}

fn cloud() -> CloudSlotConfig {
    CloudSlotConfig { retry_attempts: 0, timeout_ms: 10_000, ..CloudSlotConfig::default() }
}

/// The environment the services read once, at creation: AWS keys (no profile files, no
/// instance metadata) and a Vault token.
fn environment() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDFUZZ");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "fuzz-secret");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("VAULT_TOKEN", "fuzz-token");
        if std::env::var_os("KEYFRONT_LOG").is_none() {
            std::env::set_var("KEYFRONT_LOG", "off");
        }
    });
}

/// The two AWS slots: plain, and one with an alias prefix and a tag filter.
fn aws(filtered: bool) -> &'static AwsKms {
    static PLAIN: OnceLock<AwsKms> = OnceLock::new();
    static FILTERED: OnceLock<AwsKms> = OnceLock::new();
    let make = |filtered: bool| {
        environment();
        let config = AwsKmsSlotConfig {
            region: "us-east-1".into(),
            endpoint: Some(Server::get().url.clone()),
            profile: None,
            alias_prefix: filtered.then(|| "app-".into()),
            tag: filtered.then(|| ("team".into(), "pki".into())),
            cloud: cloud(),
        };
        AwsKms::new(&config).expect("aws-kms slot")
    };
    if filtered {
        FILTERED.get_or_init(|| make(true))
    } else {
        PLAIN.get_or_init(|| make(false))
    }
}

fn vault() -> &'static VaultTransit {
    static VAULT: OnceLock<VaultTransit> = OnceLock::new();
    VAULT.get_or_init(|| {
        environment();
        let config = VaultSlotConfig {
            address: Server::get().url.clone(),
            mount: "transit".into(),
            namespace: None,
            token_file: None,
            cloud: cloud(),
        };
        VaultTransit::new(&config).expect("vault slot")
    })
}

fn token_file() -> &'static std::path::Path {
    static FILE: OnceLock<std::path::PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = scratch_dir("service_replies").join("web-identity-token");
        std::fs::write(&path, "eyJhbGciOiJSUzI1NiJ9.fuzz.token\n").expect("token file");
        path
    })
}

/// The KMS operation of a tag byte.
fn kms_op(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'K' => "ListKeys",
        b'A' => "ListAliases",
        b'D' => "DescribeKey",
        b'P' => "GetPublicKey",
        b'T' => "ListResourceTags",
        b'S' => "Sign",
        b'd' => "Decrypt",
        b'E' => "Encrypt",
        b'C' => "CreateKey",
        b'a' => "CreateAlias",
        b'X' => "ScheduleKeyDeletion",
        b'x' => "DeleteAlias",
        _ => return None,
    })
}

/// Answers KMS requests: among the replies tagged with the request's operation, the one the
/// request body's hash picks.
fn answer_kms(replies: Vec<(u8, u16, Vec<u8>)>, creating: bool) {
    Server::get().set(Box::new(move |seen| {
        let op = seen.header("x-amz-target")?.strip_prefix("TrentService.")?;
        let mine: Vec<&(u8, u16, Vec<u8>)> = replies.iter().filter(|(tag, _, _)| kms_op(*tag) == Some(op)).collect();
        if mine.is_empty() {
            return None;
        }
        let (_, status, body) = mine[(fnv(&seen.body) % mine.len() as u64) as usize];
        if creating && matches!(op, "CreateAlias" | "GetPublicKey") && body.windows(17).any(|w| w == b"NotFoundException") {
            return Some((400, br#"{"__type":"ValidationException","message":"harness: not NotFound"}"#.to_vec()));
        }
        Some((*status, body.clone()))
    }));
}

/// Answers requests in order, one reply each; `no_retry` sends 429 and 5xx as 400.
fn answer_in_order(replies: Vec<(u8, u16, Vec<u8>)>, no_retry: bool) {
    let mut next = replies.into_iter();
    Server::get().set(Box::new(move |_| {
        let (_, status, body) = next.next()?;
        let status = if no_retry && (status == 429 || status >= 500) { 400 } else { status };
        Some((status, body))
    }));
}

/// A signing scheme, the key spec it needs and an input of the right length.
fn signing(variant: u8) -> (Signing, KeySpec, Vec<u8>) {
    match (variant & 0x0f) % 7 {
        0 => (Signing::Ecdsa(Hash::Sha256), KeySpec::EcP256, vec![0x11; 32]),
        1 => (Signing::Ecdsa(Hash::Sha384), KeySpec::EcP256, vec![0x22; 48]),
        2 => (Signing::Ecdsa(Hash::Sha512), KeySpec::EcP256, vec![0x33; 64]),
        3 => (Signing::RsaPkcs1(Hash::Sha256), KeySpec::Rsa(2048), vec![0x44; 32]),
        4 => (Signing::RsaPss(Hash::Sha384), KeySpec::Rsa(3072), vec![0x55; 48]),
        5 => (Signing::RsaPss(Hash::Sha512), KeySpec::Rsa(4096), vec![0x66; 64]),
        _ => (Signing::Ed25519, KeySpec::Ed25519, b"a message to sign".to_vec()),
    }
}

/// A key spec to create and whether it signs.
fn new_key(variant: u8) -> NewKey {
    let (spec, sign) = match (variant & 0x07) % 6 {
        0 => (KeySpec::EcP256, true),
        1 => (KeySpec::Ed25519, true),
        2 => (KeySpec::Rsa(2048), true),
        3 => (KeySpec::Rsa(3072), false),
        4 => (KeySpec::Rsa(4096), true),
        _ => (KeySpec::Aes256, false),
    };
    NewKey { spec, sign, label: (variant & 0x08 != 0).then(|| "fuzz-key".to_string()) }
}

/// A key object as a slot would hold it (Vault: version 1–3, or none for "the newest").
fn remote(key_ref: &str, spec: KeySpec, version: Option<u32>) -> RemoteKey {
    RemoteKey {
        key_ref: key_ref.to_string(),
        version,
        label: key_ref.to_string(),
        id: key_ref.as_bytes().to_vec(),
        spec,
        sign: spec != KeySpec::Aes256,
        decrypt: matches!(spec, KeySpec::Rsa(_) | KeySpec::Aes256),
        enabled: true,
        public_key_der: None,
    }
}

fn vault_version(variant: u8) -> Option<u32> {
    match (variant >> 4) & 3 {
        0 => None,
        v => Some(v as u32),
    }
}

/// A key as the service shows it. The cloud token makes its objects with
/// `public_key_from_spki` and leaves out a key whose public key it refuses, so for AWS (which
/// passes GetPublicKey's DER on) a refused public key is allowed; Vault checks each version's
/// public key against the key type itself (`strict`): one it shows must be accepted, and of
/// the kind and size of the spec.
fn check_key(key: &RemoteKey, what: &str, strict: bool) {
    assert!(!key.key_ref.is_empty(), "{what}: a key without a reference: {key:?}");
    match (key.spec, &key.public_key_der) {
        (KeySpec::Aes256, None) => {}
        (KeySpec::Aes256, Some(_)) => panic!("{what}: an AES key with a public key: {key:?}"),
        (_, None) => panic!("{what}: an asymmetric key without its public key: {key:?}"),
        (spec, Some(der)) => {
            let (key_type, attrs) = match public_key_from_spki(der) {
                Ok(parsed) => parsed,
                Err(e) if strict => panic!("{what}: the public key of {} ({spec:?}) is refused by public_key_from_spki: {e}", key.key_ref),
                Err(_) => return,
            };
            let fits = match spec {
                KeySpec::EcP256 => key_type == CKK_EC,
                KeySpec::Ed25519 => key_type == CKK_EC_EDWARDS,
                KeySpec::Rsa(bits) => {
                    key_type == CKK_RSA
                        && attrs.get(CKA_MODULUS).is_some_and(|n| {
                            let n = &n[n.iter().take_while(|b| **b == 0).count()..];
                            n.first().is_some_and(|top| n.len() * 8 - top.leading_zeros() as usize == bits as usize)
                        })
                }
                KeySpec::Aes256 => unreachable!(),
            };
            assert!(!strict || fits, "{what}: key {} is shown as {spec:?} but its public key is a key of type {key_type:#x}", key.key_ref);
        }
    }
}

fn check_signature(how: Signing, signature: &[u8]) {
    if matches!(how, Signing::Ecdsa(_) | Signing::Ed25519) {
        assert_eq!(signature.len(), 64, "{how:?} signature of {} bytes", signature.len());
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (op, variant, rest) = (data[0] % 16, data[1], &data[2..]);
    let server = Server::get();
    match op {
        0..=6 => {
            let kms = aws(variant & 0x80 != 0);
            answer_kms(split_replies(rest, true), op == 5);
            let outcome = match op {
                0 => kms.list_keys().map(|keys| {
                    keys.iter().for_each(|k| check_key(k, "aws-kms list_keys", false));
                    format!("{} keys", keys.len())
                }),
                1 => {
                    let (how, spec, input) = signing(variant);
                    kms.sign(&remote(KEY_ID, spec, None), how, &input).map(|s| {
                        check_signature(how, &s);
                        format!("{how:?}: {} bytes", s.len())
                    })
                }
                2 => {
                    let hash = if variant & 1 == 0 { Hash::Sha256 } else { Hash::Sha1 };
                    kms.decrypt_oaep(&remote(KEY_ID, KeySpec::Rsa(2048), None), hash, &[0x5a; 256]).map(|p| format!("{} bytes", p.len()))
                }
                3 => kms.wrap(&remote(KEY_ID, KeySpec::Aes256, None), &[7; 32]).map(|b| format!("blob of {} bytes", b.len())),
                4 => kms.unwrap(&remote(KEY_ID, KeySpec::Aes256, None), &[9; 200]).map(|p| format!("{} bytes", p.len())),
                5 => {
                    let request = new_key(variant);
                    kms.create_key(&request).map(|key| {
                        check_key(&key, "aws-kms create_key", false);
                        assert_eq!(key.spec, request.spec, "aws-kms create_key: asked for {:?}, made {key:?}", request.spec);
                        format!("{key:?}")
                    })
                }
                _ => kms.delete_key(&remote(KEY_ID, KeySpec::EcP256, None)).map(|()| "deleted".into()),
            };
            debug!("aws op {op} variant {variant:#04x}: {outcome:?}");
        }
        7..=13 => {
            let service = vault();
            answer_in_order(split_replies(rest, false), false);
            let version = vault_version(variant);
            let outcome = match op {
                7 => service.list_keys().map(|keys| {
                    keys.iter().for_each(|k| check_key(k, "vault list_keys", true));
                    format!("{} keys", keys.len())
                }),
                8 => {
                    let (how, spec, input) = signing(variant);
                    service.sign(&remote("signer", spec, version), how, &input).map(|s| {
                        check_signature(how, &s);
                        format!("{how:?}: {} bytes", s.len())
                    })
                }
                9 => service
                    .decrypt_oaep(&remote("decrypter", KeySpec::Rsa(2048), version), Hash::Sha256, &[0x5a; 256])
                    .map(|p| format!("{} bytes", p.len())),
                10 => service.wrap(&remote("wrapper", KeySpec::Aes256, version), &[7; 32]).map(|b| {
                    assert!(b.starts_with(b"vault:v"), "vault wrap made {:?}", String::from_utf8_lossy(&b));
                    format!("{}", String::from_utf8_lossy(&b))
                }),
                11 => service
                    .unwrap(&remote("wrapper", KeySpec::Aes256, version), b"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                    .map(|p| format!("{} bytes", p.len())),
                12 => {
                    let request = new_key(variant);
                    service.create_key(&request).map(|key| {
                        check_key(&key, "vault create_key", true);
                        assert_eq!(key.spec, request.spec, "vault create_key: asked for {:?}, made {key:?}", request.spec);
                        format!("{key:?}")
                    })
                }
                _ => service.delete_key(&remote("old", KeySpec::EcP256, version)).map(|()| "deleted".into()),
            };
            debug!("vault op {op} variant {variant:#04x}: {outcome:?}");
        }
        _ => {
            answer_in_order(split_replies(rest, false), true);
            let source = if op == 14 {
                Source::InstanceMetadata { endpoint: server.url.clone() }
            } else {
                Source::WebIdentity(WebIdentity {
                    token_file: token_file().to_path_buf(),
                    role_arn: "arn:aws:iam::123456789012:role/fuzz".into(),
                    session_name: "keyfront".into(),
                    sts_endpoint: server.url.clone(),
                })
            };
            let outcome = Provider::new(source, 10_000).get().map(|c| format!("{c:?}"));
            debug!("credentials op {op}: {outcome:?}");
        }
    }
    if debug_enabled() {
        for s in server.seen() {
            eprintln!("  {} {} {}", s.method, s.path, String::from_utf8_lossy(&s.body));
        }
    }
});

//! The service code end to end. Two kinds:
//! - against a small canned HTTP server on 127.0.0.1 (run by plain `cargo test`): headers,
//!   the 403 token-or-policy question, 404s, an unreachable server;
//! - against a real OpenBao (or Vault) transit engine at `KEYFRONT_TEST_VAULT_ADDR` with the
//!   root token `KEYFRONT_TEST_VAULT_TOKEN` (`conformance/servers start DIR` writes both to
//!   DIR/env), marked `#[ignore]`: `cargo test --lib backend::vault_transit -- --ignored`.
//!   Each test makes keys of its own with random names and deletes them.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use cryptoki_sys::*;
use serde_json::{json, Value};
use sha2::Digest;

use super::VaultTransit;
use crate::backend::cloud::http::{HttpClient, Reply, RetryPolicy};
use crate::backend::cloud::{Hash, KeyService, KeySpec, NewKey, RemoteKey, Signing};
use crate::config::{CloudSlotConfig, VaultSlotConfig};
use crate::error::Error;

fn rv<T: std::fmt::Debug>(r: crate::error::Result<T>) -> CK_RV {
    r.expect_err("expected an error").rv()
}

/// A service on `address` whose token (if any) is in a file of the returned directory.
fn make_service(address: &str, mount: &str, namespace: Option<&str>, token: Option<&str>) -> (VaultTransit, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    if let Some(t) = token {
        std::fs::write(&token_file, format!("{t}\n")).unwrap();
    }
    let config = VaultSlotConfig {
        address: address.to_string(),
        mount: mount.to_string(),
        namespace: namespace.map(str::to_string),
        token_file: Some(token_file),
        cloud: CloudSlotConfig { retry_attempts: 1, timeout_ms: 60_000, ..CloudSlotConfig::default() },
    };
    (VaultTransit::new(&config).unwrap(), dir)
}

fn key(name: &str, version: u32, spec: KeySpec) -> RemoteKey {
    RemoteKey {
        key_ref: name.to_string(),
        version: Some(version),
        label: name.to_string(),
        id: Vec::new(),
        spec,
        sign: true,
        decrypt: true,
        enabled: true,
        public_key_der: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Canned server

/// What the canned server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: String,
}

/// Answers requests, one per connection, with the reply `answer` picks for the request line;
/// records what it saw. Stops after `count` requests.
fn canned(count: usize, answer: impl Fn(&str) -> (u16, String) + Send + 'static) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut conn, _)) = listener.accept() else { return };
            let mut buf = vec![0u8; 16384];
            let mut got = 0;
            // Read the head (and whatever body came with it).
            while got < buf.len() {
                let n = conn.read(&mut buf[got..]).unwrap_or(0);
                got += n;
                if n == 0 || buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            // And the rest of the body: closing with unread bytes makes the kernel reset the
            // connection, which the client may see before the reply.
            let head_len = buf[..got].windows(4).position(|w| w == b"\r\n\r\n").map_or(got, |p| p + 4);
            let body_len = String::from_utf8_lossy(&buf[..head_len])
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
                .unwrap_or(0);
            while got < (head_len + body_len).min(buf.len()) {
                let n = conn.read(&mut buf[got..]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                got += n;
            }
            let text = String::from_utf8_lossy(&buf[..got]).to_string();
            let (head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let (request_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
            log.lock().unwrap().push(Seen { request_line: request_line.to_string(), headers: headers.to_ascii_lowercase() });
            let (status, body) = answer(request_line);
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, seen)
}

#[test]
fn new_sends_nothing_and_an_unreachable_server_is_a_device_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (service, _dir) = make_service(&format!("http://127.0.0.1:{port}"), "transit", None, Some("t"));
    assert_eq!(rv(service.list_keys()), CKR_DEVICE_ERROR);
}

#[test]
fn no_token_is_not_logged_in_without_a_request() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (service, _dir) = make_service(&format!("http://127.0.0.1:{port}"), "transit", None, None);
    let e = service.list_keys().unwrap_err();
    assert_eq!(e.rv(), CKR_USER_NOT_LOGGED_IN);
    assert!(e.to_string().contains("token_file"), "{e}");
}

#[test]
fn bad_configurations_are_refused() {
    let config = |address: &str, mount: &str| VaultSlotConfig { address: address.into(), mount: mount.into(), ..Default::default() };
    assert!(matches!(VaultTransit::new(&config("vault:8200", "transit")), Err(Error::Config(_))));
    assert!(matches!(VaultTransit::new(&config("http://v", "a/../b")), Err(Error::Config(_))));
    assert!(VaultTransit::new(&config("http://v/", "/team/transit/")).is_ok());
    let service = VaultTransit::new(&config("http://v/", "")).unwrap();
    assert_eq!(service.describe(), "vault-transit http://v/v1/transit");
}

#[test]
fn headers_urls_and_an_empty_list() {
    let (address, seen) = canned(1, |_| (404, r#"{"errors":[]}"#.into()));
    let (service, _dir) = make_service(&address, "team/transit", Some("ns1"), Some("s.secret"));
    assert_eq!(service.list_keys().unwrap(), Vec::new());
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].request_line, "GET /v1/team/transit/keys?list=true HTTP/1.1");
    assert!(seen[0].headers.contains("x-vault-token: s.secret"), "{}", seen[0].headers);
    assert!(seen[0].headers.contains("x-vault-namespace: ns1"), "{}", seen[0].headers);
}

#[test]
fn a_missing_mount_is_a_device_error() {
    let (address, _) = canned(1, |_| (404, r#"{"errors":["no handler for route \"nope/keys/\". route entry not found."]}"#.into()));
    let (service, _dir) = make_service(&address, "nope", None, Some("t"));
    let e = service.list_keys().unwrap_err();
    assert_eq!(e.rv(), CKR_DEVICE_ERROR);
    assert!(e.to_string().contains("mount"), "{e}");
}

#[test]
fn forbidden_is_the_token_or_the_policy() {
    for (lookup_status, expected) in [(403, CKR_USER_NOT_LOGGED_IN), (200, CKR_FUNCTION_FAILED)] {
        let (address, seen) = canned(2, move |line| {
            if line.contains("lookup-self") {
                (lookup_status, if lookup_status == 200 { r#"{"data":{}}"#.into() } else { r#"{"errors":["permission denied"]}"#.into() })
            } else {
                (403, r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#.into())
            }
        });
        let (service, _dir) = make_service(&address, "transit", None, Some("t"));
        let e = service.sign(&key("k", 1, KeySpec::Ed25519), Signing::Ed25519, b"m").unwrap_err();
        assert_eq!(e.rv(), expected, "{e}");
        assert!(!e.to_string().contains("s.secret"));
        assert_eq!(seen.lock().unwrap()[1].request_line, "GET /v1/auth/token/lookup-self HTTP/1.1");
    }
}

#[test]
fn a_create_answered_without_a_body_reads_the_key() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const ED25519_B64: &str = "NC0FPKeVeRln6jXYsWNC2AHYDAFpIzaG0HRHotNcSeU=";
    let reads = AtomicUsize::new(0);
    let (address, seen) = canned(3, move |line| {
        if line.starts_with("POST") {
            (204, String::new())
        } else if reads.fetch_add(1, Ordering::SeqCst) == 0 {
            (404, r#"{"errors":[]}"#.into())
        } else {
            let data = json!({"name": "made", "type": "ed25519", "latest_version": 1, "min_decryption_version": 1,
                "keys": {"1": {"public_key": ED25519_B64}}});
            (200, json!({ "data": data }).to_string())
        }
    });
    let (service, _dir) = make_service(&address, "transit", None, Some("t"));
    let made = service.create_key(&NewKey { spec: KeySpec::Ed25519, sign: true, label: Some("made".into()) }).unwrap();
    assert_eq!((made.label.as_str(), made.version, made.id.as_slice()), ("made", Some(1), &b"made:v1"[..]));
    let lines: Vec<String> = seen.lock().unwrap().iter().map(|s| s.request_line.clone()).collect();
    assert_eq!(lines, ["GET /v1/transit/keys/made HTTP/1.1", "POST /v1/transit/keys/made HTTP/1.1", "GET /v1/transit/keys/made HTTP/1.1"]);
}

#[test]
fn checks_made_before_any_request() {
    // Nothing listens: each of these must fail before trying to connect.
    let (service, _dir) = make_service("http://127.0.0.1:9", "transit", None, Some("t"));
    let rsa = key("r", 1, KeySpec::Rsa(2048));
    let aes = key("a", 1, KeySpec::Aes256);
    assert_eq!(rv(service.sign(&rsa, Signing::RsaPkcs1(Hash::Sha1), &[0; 20])), CKR_MECHANISM_INVALID);
    assert_eq!(rv(service.sign(&rsa, Signing::RsaPss(Hash::Sha256), &[0; 31])), CKR_DATA_LEN_RANGE);
    assert_eq!(rv(service.sign(&rsa, Signing::Ed25519, b"m")), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(rv(service.decrypt_oaep(&rsa, Hash::Sha1, &[0; 256])), CKR_MECHANISM_PARAM_INVALID);
    assert_eq!(rv(service.decrypt_oaep(&rsa, Hash::Sha384, &[0; 256])), CKR_MECHANISM_PARAM_INVALID);
    assert_eq!(rv(service.decrypt_oaep(&rsa, Hash::Sha256, &[0; 255])), CKR_ENCRYPTED_DATA_LEN_RANGE);
    assert_eq!(rv(service.decrypt_oaep(&aes, Hash::Sha256, &[0; 256])), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(rv(service.unwrap(&aes, b"AAAA")), CKR_ENCRYPTED_DATA_INVALID);
    assert_eq!(rv(service.unwrap(&aes, b"vault:v1:")), CKR_ENCRYPTED_DATA_INVALID);
    assert_eq!(rv(service.wrap(&rsa, b"k")), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(rv(service.sign(&key("../sys", 1, KeySpec::Ed25519), Signing::Ed25519, b"m")), CKR_KEY_HANDLE_INVALID);
    let new = |label: &str, spec| NewKey { spec, sign: true, label: Some(label.to_string()) };
    for bad in ["", "a/b", "a b", "x/../y", "-a"] {
        assert_eq!(rv(service.create_key(&new(bad, KeySpec::EcP256))), CKR_ATTRIBUTE_VALUE_INVALID, "{bad:?}");
    }
    assert_eq!(rv(service.create_key(&new("k", KeySpec::Rsa(1024)))), CKR_KEY_SIZE_RANGE);
    let decrypt_ec = NewKey { spec: KeySpec::EcP256, sign: false, label: None };
    assert_eq!(rv(service.create_key(&decrypt_ec)), CKR_TEMPLATE_INCONSISTENT);
}

// ---------------------------------------------------------------------------------------------
// OpenBao

struct Bao {
    address: String,
    token: String,
    raw: HttpClient,
}

impl Bao {
    fn from_env() -> Bao {
        let address = std::env::var("KEYFRONT_TEST_VAULT_ADDR")
            .expect("KEYFRONT_TEST_VAULT_ADDR is not set: `conformance/servers start DIR`, then `set -a; . DIR/env`");
        let token = std::env::var("KEYFRONT_TEST_VAULT_TOKEN").unwrap_or_else(|_| "root".into());
        Bao { address, token, raw: HttpClient::new("test", None, RetryPolicy::new(0, 60_000)).unwrap() }
    }

    fn service(&self) -> (VaultTransit, tempfile::TempDir) {
        make_service(&self.address, "transit", None, Some(&self.token))
    }

    /// A request with the root token, for what keyfront does not do (rotate, policies…).
    fn raw(&self, method: &str, path: &str, namespace: Option<&str>, body: Option<Value>) -> Reply {
        let url = format!("{}/v1/{path}", self.address);
        self.raw
            .send(
                "raw",
                true,
                || {
                    let mut b = ureq::http::Request::builder().method(method).uri(&url).header("X-Vault-Token", &self.token);
                    if let Some(ns) = namespace {
                        b = b.header("X-Vault-Namespace", ns);
                    }
                    Ok(b.body(body.as_ref().map(|v| v.to_string().into_bytes()).unwrap_or_default()).unwrap())
                },
                |_| false,
            )
            .unwrap()
    }

    fn rotate(&self, name: &str) {
        let reply = self.raw("POST", &format!("transit/keys/{name}/rotate"), None, None);
        assert!(reply.is_success(), "rotate: {}", reply.text());
    }

    fn exists(&self, name: &str) -> bool {
        self.raw("GET", &format!("transit/keys/{name}"), None, None).status == 200
    }
}

fn unique(prefix: &str) -> String {
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).unwrap();
    format!("t-{prefix}-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn create(service: &VaultTransit, name: &str, spec: KeySpec) -> RemoteKey {
    service.create_key(&NewKey { spec, sign: true, label: Some(name.to_string()) }).unwrap()
}

/// The objects `list_keys` shows for one key name, oldest first.
fn listed(service: &VaultTransit, name: &str) -> Vec<RemoteKey> {
    service.list_keys().unwrap().into_iter().filter(|k| k.key_ref == name).collect()
}

fn verify(key: &RemoteKey, how: Signing, message: &[u8], signature: &[u8]) {
    use spki::DecodePublicKey;
    let der = key.public_key_der.as_ref().expect("public key");
    let digest = |hash: Hash| -> Vec<u8> {
        match hash {
            Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
            Hash::Sha1 => unreachable!(),
        }
    };
    match how {
        Signing::Ecdsa(hash) => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let public = p256::ecdsa::VerifyingKey::from_public_key_der(der).unwrap();
            assert_eq!(signature.len(), 64);
            let sig = p256::ecdsa::Signature::from_slice(signature).unwrap();
            public.verify_prehash(&digest(hash), &sig).expect("ECDSA signature verifies");
        }
        Signing::RsaPkcs1(hash) | Signing::RsaPss(hash) => {
            let public = rsa::PublicKey::from_public_key_der(der).unwrap();
            let d = digest(hash);
            let pss = matches!(how, Signing::RsaPss(_));
            let ok = match (hash, pss) {
                (Hash::Sha256, false) => public.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &d, signature),
                (Hash::Sha384, false) => public.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), &d, signature),
                (Hash::Sha512, false) => public.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), &d, signature),
                // Salt length = hash length, exactly.
                (Hash::Sha256, true) => public.verify(rsa::Pss::<sha2::Sha256>::new_with_salt(32), &d, signature),
                (Hash::Sha384, true) => public.verify(rsa::Pss::<sha2::Sha384>::new_with_salt(48), &d, signature),
                (Hash::Sha512, true) => public.verify(rsa::Pss::<sha2::Sha512>::new_with_salt(64), &d, signature),
                (Hash::Sha1, _) => unreachable!(),
            };
            ok.unwrap_or_else(|e| panic!("{how:?} signature verifies: {e}"));
        }
        Signing::Ed25519 => {
            use ed25519_dalek::Verifier;
            let public = ed25519_dalek::VerifyingKey::from_public_key_der(der).unwrap();
            let sig = ed25519_dalek::Signature::from_slice(signature).unwrap();
            public.verify(message, &sig).expect("Ed25519 signature verifies");
        }
    }
}

fn sign_and_verify(service: &VaultTransit, key: &RemoteKey, how: Signing, message: &[u8]) {
    let input = match how {
        Signing::Ecdsa(h) | Signing::RsaPkcs1(h) | Signing::RsaPss(h) => match h {
            Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
            Hash::Sha1 => unreachable!(),
        },
        Signing::Ed25519 => message.to_vec(),
    };
    let signature = service.sign(key, how, &input).unwrap_or_else(|e| panic!("{how:?} with {} v{:?}: {e}", key.key_ref, key.version));
    verify(key, how, message, &signature);
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn every_type_is_listed_with_its_versions() {
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let specs = [KeySpec::EcP256, KeySpec::Ed25519, KeySpec::Rsa(2048), KeySpec::Rsa(3072), KeySpec::Rsa(4096), KeySpec::Aes256];
    let names: Vec<String> = (0..specs.len()).map(|i| unique(&format!("list{i}"))).collect();
    for (name, spec) in names.iter().zip(specs) {
        let made = create(&service, name, spec);
        assert_eq!(made.version, Some(1));
        assert_eq!(made.label, *name);
        assert_eq!(made.id, format!("{name}:v1").into_bytes());
        assert_eq!(made.spec, spec);
        assert_eq!(made.public_key_der.is_some(), spec != KeySpec::Aes256);
        assert_eq!(listed(&service, name), vec![made], "create_key returns the key as list_keys shows it");
    }
    // A key of a type keyfront does not show.
    let p384 = unique("p384");
    assert!(bao.raw("POST", &format!("transit/keys/{p384}"), None, Some(json!({"type": "ecdsa-p384"}))).is_success());
    assert!(listed(&service, &p384).is_empty());

    let ec = &names[0];
    bao.rotate(ec);
    bao.rotate(ec);
    let versions = listed(&service, ec);
    assert_eq!(versions.iter().map(|k| k.version).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    assert_eq!(versions.iter().map(|k| k.label.as_str()).collect::<Vec<_>>(), [format!("{ec} v1"), format!("{ec} v2"), ec.clone()]);
    assert_eq!(versions[1].id, format!("{ec}:v2").into_bytes());
    assert_ne!(versions[0].public_key_der, versions[2].public_key_der, "each version has its own key pair");

    // Versions below min_decryption_version are gone; below min_encryption_version they
    // no longer sign.
    let config = json!({"min_decryption_version": 2, "min_encryption_version": 3});
    assert!(bao.raw("POST", &format!("transit/keys/{ec}/config"), None, Some(config)).is_success());
    let versions = listed(&service, ec);
    assert_eq!(versions.iter().map(|k| (k.version, k.sign)).collect::<Vec<_>>(), [(Some(2), false), (Some(3), true)]);
    assert_eq!(rv(service.sign(&versions[0], Signing::Ecdsa(Hash::Sha256), &[1; 32])), CKR_KEY_FUNCTION_NOT_PERMITTED);

    for name in names.iter().chain([&p384]) {
        service.delete_key(&key(name, 1, KeySpec::EcP256)).unwrap();
        assert!(!bao.exists(name));
    }
    assert!(service.list_keys().unwrap().iter().all(|k| !names.contains(&k.key_ref)));
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn signs_with_every_algorithm_and_version() {
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let message = b"keyfront signs through Vault Transit";
    let hashes = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

    let ec = unique("ec");
    create(&service, &ec, KeySpec::EcP256);
    bao.rotate(&ec);
    let ed = unique("ed");
    create(&service, &ed, KeySpec::Ed25519);
    bao.rotate(&ed);
    let rsa = unique("rsa");
    create(&service, &rsa, KeySpec::Rsa(2048));
    bao.rotate(&rsa);

    for version in listed(&service, &ec) {
        for h in hashes {
            sign_and_verify(&service, &version, Signing::Ecdsa(h), message);
        }
    }
    for version in listed(&service, &ed) {
        sign_and_verify(&service, &version, Signing::Ed25519, message);
        sign_and_verify(&service, &version, Signing::Ed25519, b"");
    }
    for version in listed(&service, &rsa) {
        for h in hashes {
            sign_and_verify(&service, &version, Signing::RsaPkcs1(h), message);
            sign_and_verify(&service, &version, Signing::RsaPss(h), message);
        }
    }
    // A signature by one version does not verify under the other's public key.
    let versions = listed(&service, &ec);
    let digest = sha2::Sha256::digest(message);
    let signature = service.sign(&versions[0], Signing::Ecdsa(Hash::Sha256), &digest).unwrap();
    {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        use spki::DecodePublicKey;
        let other = p256::ecdsa::VerifyingKey::from_public_key_der(versions[1].public_key_der.as_ref().unwrap()).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
        assert!(other.verify_prehash(&digest, &sig).is_err());
    }
    // A version that does not exist (any more).
    assert_eq!(rv(service.sign(&key(&ec, 9, KeySpec::EcP256), Signing::Ecdsa(Hash::Sha256), &digest)), CKR_KEY_HANDLE_INVALID);
    // The newest when the object names no version.
    let mut newest = versions[1].clone();
    newest.version = None;
    let signature = service.sign(&newest, Signing::Ecdsa(Hash::Sha256), &digest).unwrap();
    verify(&versions[1], Signing::Ecdsa(Hash::Sha256), message, &signature);
    assert_eq!(rv(service.sign(&versions[1], Signing::Ecdsa(Hash::Sha1), &[0; 20])), CKR_MECHANISM_INVALID);

    for name in [&ec, &ed, &rsa] {
        service.delete_key(&key(name, 1, KeySpec::EcP256)).unwrap();
    }
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn decrypts_oaep_made_locally() {
    use spki::DecodePublicKey;
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let name = unique("oaep");
    let v1 = create(&service, &name, KeySpec::Rsa(3072));
    bao.rotate(&name);
    let versions = listed(&service, &name);
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().all(|k| k.decrypt && k.sign));
    for version in [&v1, &versions[1]] {
        let public = rsa::PublicKey::from_public_key_der(version.public_key_der.as_ref().unwrap()).unwrap();
        let secret = b"a 32-byte data key, or anything";
        let mut rng = crate::mechanism::keys::SysRng;
        let ciphertext = public.encrypt(&mut rng, rsa::Oaep::<sha2::Sha256>::new(), secret).unwrap();
        let plaintext = service.decrypt_oaep(version, Hash::Sha256, &ciphertext).unwrap();
        assert_eq!(plaintext.as_slice(), secret);
        // OAEP with SHA-1 made locally is not what Vault decrypts.
        let sha1 = public.encrypt(&mut rng, rsa::Oaep::<sha1::Sha1>::new(), secret).unwrap();
        assert_eq!(rv(service.decrypt_oaep(version, Hash::Sha256, &sha1)), CKR_ENCRYPTED_DATA_INVALID);
        let mut bad = ciphertext.clone();
        bad[10] ^= 1;
        assert_eq!(rv(service.decrypt_oaep(version, Hash::Sha256, &bad)), CKR_ENCRYPTED_DATA_INVALID);
    }
    // Made for version 1, sent as version 2: Vault cannot decrypt it.
    let public = rsa::PublicKey::from_public_key_der(v1.public_key_der.as_ref().unwrap()).unwrap();
    let ciphertext = public.encrypt(&mut crate::mechanism::keys::SysRng, rsa::Oaep::<sha2::Sha256>::new(), b"x").unwrap();
    assert_eq!(rv(service.decrypt_oaep(&versions[1], Hash::Sha256, &ciphertext)), CKR_ENCRYPTED_DATA_INVALID);
    service.delete_key(&v1).unwrap();
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn wraps_and_unwraps_across_a_rotation() {
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let name = unique("aes");
    let v1 = create(&service, &name, KeySpec::Aes256);
    let data_key = [7u8; 32];
    let blob = service.wrap(&v1, &data_key).unwrap();
    assert!(blob.starts_with(b"vault:v1:"), "{}", String::from_utf8_lossy(&blob));
    assert_eq!(service.unwrap(&v1, &blob).unwrap().as_slice(), data_key);
    assert_eq!(service.unwrap(&v1, &service.wrap(&v1, b"").unwrap()).unwrap().as_slice(), b"");

    bao.rotate(&name);
    let versions = listed(&service, &name);
    assert_eq!(versions.iter().map(|k| k.label.clone()).collect::<Vec<_>>(), [format!("{name} v1"), name.clone()]);
    let newest = &versions[1];
    // A blob made before the rotation unwraps under the newest object.
    assert_eq!(service.unwrap(newest, &blob).unwrap().as_slice(), data_key);
    let blob2 = service.wrap(newest, &data_key).unwrap();
    assert!(blob2.starts_with(b"vault:v2:"));
    // The old version's object still wraps with the old version.
    assert!(service.wrap(&versions[0], &data_key).unwrap().starts_with(b"vault:v1:"));

    let mut tampered = blob2.clone();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(rv(service.unwrap(newest, &tampered)), CKR_ENCRYPTED_DATA_INVALID);
    assert_eq!(rv(service.unwrap(newest, b"vault:v9:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")), CKR_ENCRYPTED_DATA_INVALID);
    assert_eq!(rv(service.unwrap(newest, b"not a blob")), CKR_ENCRYPTED_DATA_INVALID);

    // A blob of another key does not unwrap here.
    let other = unique("aes-other");
    let other_key = create(&service, &other, KeySpec::Aes256);
    let foreign = service.wrap(&other_key, &data_key).unwrap();
    assert_eq!(rv(service.unwrap(newest, &foreign)), CKR_ENCRYPTED_DATA_INVALID);

    service.delete_key(&v1).unwrap();
    service.delete_key(&other_key).unwrap();
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn missing_keys_are_invalid_handles_and_never_made_anew() {
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let gone = unique("gone");
    let aes = key(&gone, 1, KeySpec::Aes256);
    // `encrypt/` would create the key (the root token may): wrap looks first.
    assert_eq!(rv(service.wrap(&aes, b"k")), CKR_KEY_HANDLE_INVALID);
    assert!(!bao.exists(&gone), "wrap must not create a key");
    assert_eq!(rv(service.unwrap(&aes, b"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")), CKR_KEY_HANDLE_INVALID);
    assert_eq!(rv(service.sign(&key(&gone, 1, KeySpec::EcP256), Signing::Ecdsa(Hash::Sha256), &[1; 32])), CKR_KEY_HANDLE_INVALID);
    assert_eq!(rv(service.sign(&key(&gone, 1, KeySpec::Ed25519), Signing::Ed25519, b"m")), CKR_KEY_HANDLE_INVALID);
    assert_eq!(rv(service.decrypt_oaep(&key(&gone, 1, KeySpec::Rsa(2048)), Hash::Sha256, &[1; 256])), CKR_KEY_HANDLE_INVALID);
    assert_eq!(rv(service.delete_key(&aes)), CKR_KEY_HANDLE_INVALID);
    let mut newest = aes.clone();
    newest.version = None;
    assert_eq!(rv(service.wrap(&newest, b"k")), CKR_KEY_HANDLE_INVALID);

    // A key deleted and made again under the same name as another type.
    let name = unique("retyped");
    let old = create(&service, &name, KeySpec::Aes256);
    service.delete_key(&old).unwrap();
    create(&service, &name, KeySpec::EcP256);
    assert_eq!(rv(service.wrap(&old, b"k")), CKR_KEY_HANDLE_INVALID);
    service.delete_key(&old).unwrap();
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn create_refuses_existing_names_and_makes_unique_ones() {
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let name = unique("dup");
    let first = create(&service, &name, KeySpec::EcP256);
    let again = service.create_key(&NewKey { spec: KeySpec::EcP256, sign: true, label: Some(name.clone()) });
    assert_eq!(rv(again), CKR_ATTRIBUTE_VALUE_INVALID);
    assert_eq!(listed(&service, &name), vec![first.clone()], "the existing key is untouched");
    let made = service.create_key(&NewKey { spec: KeySpec::Ed25519, sign: true, label: None }).unwrap();
    assert!(made.key_ref.starts_with("keyfront-") && made.key_ref.len() == "keyfront-".len() + 16, "{}", made.key_ref);
    assert_eq!(made.label, made.key_ref);
    let rsa = service.create_key(&NewKey { spec: KeySpec::Rsa(2048), sign: false, label: None }).unwrap();
    assert!(rsa.sign && rsa.decrypt, "transit RSA keys do both");
    for k in [&first, &made, &rsa] {
        service.delete_key(k).unwrap();
        assert!(listed(&service, &k.key_ref).is_empty());
    }
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn tokens_policies_and_mounts() {
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let name = unique("auth");
    let k = create(&service, &name, KeySpec::Ed25519);

    let (bogus, _d1) = service_with_token(&bao, "s.not-a-token");
    assert_eq!(rv(bogus.list_keys()), CKR_USER_NOT_LOGGED_IN);
    assert_eq!(rv(bogus.sign(&k, Signing::Ed25519, b"m")), CKR_USER_NOT_LOGGED_IN);

    // A valid token whose policy may read keys but not sign with them.
    let policy = unique("policy");
    let rules = json!({"policy": "path \"transit/keys/*\" { capabilities = [\"read\"] }"});
    assert!(bao.raw("PUT", &format!("sys/policies/acl/{policy}"), None, Some(rules)).is_success());
    let reply = bao.raw("POST", "auth/token/create", None, Some(json!({"policies": [policy], "ttl": "10m"})));
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    let limited_token = body["auth"]["client_token"].as_str().unwrap().to_string();
    let (limited, _d2) = service_with_token(&bao, &limited_token);
    assert_eq!(rv(limited.sign(&k, Signing::Ed25519, b"m")), CKR_FUNCTION_FAILED);
    assert_eq!(rv(limited.list_keys()), CKR_FUNCTION_FAILED, "no `list` on transit/keys");
    // Revoked: now it is the token.
    assert!(bao.raw("POST", "auth/token/revoke", None, Some(json!({"token": limited_token}))).is_success());
    assert_eq!(rv(limited.sign(&k, Signing::Ed25519, b"m")), CKR_USER_NOT_LOGGED_IN);

    // No such mount; a mount with no keys.
    let (nomount, _d3) = make_service(&bao.address, "no-such-mount", None, Some(&bao.token));
    assert_eq!(rv(nomount.list_keys()), CKR_DEVICE_ERROR);
    let mount = unique("mount");
    assert!(bao.raw("POST", &format!("sys/mounts/{mount}"), None, Some(json!({"type": "transit"}))).is_success());
    let (empty, _d4) = make_service(&bao.address, &mount, None, Some(&bao.token));
    assert_eq!(empty.list_keys().unwrap(), Vec::new());
    let in_mount = unique("in-mount");
    create(&empty, &in_mount, KeySpec::EcP256);
    assert_eq!(empty.list_keys().unwrap().len(), 1);
    assert!(listed(&service, &in_mount).is_empty(), "another mount's key");
    assert!(bao.raw("DELETE", &format!("sys/mounts/{mount}"), None, None).is_success());
    assert!(bao.raw("DELETE", &format!("sys/policies/acl/{policy}"), None, None).is_success());
    service.delete_key(&k).unwrap();
}

fn service_with_token(bao: &Bao, token: &str) -> (VaultTransit, tempfile::TempDir) {
    make_service(&bao.address, "transit", None, Some(token))
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn namespaces_keep_their_own_keys() {
    let bao = Bao::from_env();
    let ns = unique("ns");
    let made = bao.raw("POST", &format!("sys/namespaces/{ns}"), None, None);
    if !made.is_success() {
        eprintln!("skipped: this server has no namespaces ({})", made.text());
        return;
    }
    assert!(bao.raw("POST", "sys/mounts/transit", Some(&ns), Some(json!({"type": "transit"}))).is_success());
    let (inside, _d) = make_service(&bao.address, "transit", Some(&ns), Some(&bao.token));
    let name = unique("nskey");
    let k = create(&inside, &name, KeySpec::Ed25519);
    sign_and_verify(&inside, &k, Signing::Ed25519, b"namespaced");
    assert_eq!(inside.list_keys().unwrap(), vec![k.clone()]);
    let (outside, _d2) = bao.service();
    assert!(listed(&outside, &name).is_empty());
    let (missing, _d3) = make_service(&bao.address, "transit", Some("no-such-namespace"), Some(&bao.token));
    assert_eq!(rv(missing.list_keys()), CKR_DEVICE_ERROR);
    inside.delete_key(&k).unwrap();
    assert!(bao.raw("DELETE", "sys/mounts/transit", Some(&ns), None).is_success());
    assert!(bao.raw("DELETE", &format!("sys/namespaces/{ns}"), None, None).is_success());
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn soft_deleted_keys_are_shown_disabled() {
    let bao = Bao::from_env();
    let (service, _dir) = bao.service();
    let name = unique("soft");
    let k = create(&service, &name, KeySpec::EcP256);
    let reply = bao.raw("DELETE", &format!("transit/keys/{name}/soft-delete"), None, None);
    if !reply.is_success() {
        eprintln!("skipped: no soft deletion here ({})", reply.text());
        service.delete_key(&k).unwrap();
        return;
    }
    let shown = listed(&service, &name);
    assert_eq!(shown.len(), 1);
    assert!(!shown[0].enabled);
    assert_eq!(rv(service.sign(&k, Signing::Ecdsa(Hash::Sha256), &[1; 32])), CKR_KEY_FUNCTION_NOT_PERMITTED);
    service.delete_key(&k).unwrap();
    assert!(!bao.exists(&name));
}

/// The policies docs/backends.md gives, as written there.
const USE_POLICY: &str = r#"
path "transit/keys/*"    { capabilities = ["read", "list"] }
path "transit/sign/*"    { capabilities = ["update"] }
path "transit/decrypt/*" { capabilities = ["update"] }
path "transit/encrypt/*" { capabilities = ["update"] }
"#;
const MANAGE_POLICY: &str = r#"
path "transit/keys/*"    { capabilities = ["create", "read", "update", "delete", "list"] }
"#;

fn token_with(bao: &Bao, policies: &[(&str, &str)]) -> String {
    let mut names = Vec::new();
    for (name, rules) in policies {
        let reply = bao.raw("PUT", &format!("sys/policies/acl/{name}"), None, Some(json!({ "policy": rules })));
        assert!(reply.is_success(), "{}", reply.text());
        names.push(name.to_string());
    }
    let reply = bao.raw("POST", "auth/token/create", None, Some(json!({"policies": names, "ttl": "10m"})));
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    body["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs OpenBao: conformance/servers"]
fn the_documented_policies_are_enough() {
    use spki::DecodePublicKey;
    let bao = Bao::from_env();
    let (root, _d) = bao.service();
    let (ed, rsa, aes) = (unique("pol-ed"), unique("pol-rsa"), unique("pol-aes"));
    create(&root, &ed, KeySpec::Ed25519);
    create(&root, &rsa, KeySpec::Rsa(2048));
    create(&root, &aes, KeySpec::Aes256);

    let (use_name, manage_name) = (unique("use"), unique("manage"));
    let user_token = token_with(&bao, &[(&use_name, USE_POLICY)]);
    let (user, _d2) = service_with_token(&bao, &user_token);
    let ed_key = listed(&user, &ed).pop().expect("listed and read");
    sign_and_verify(&user, &ed_key, Signing::Ed25519, b"m");
    let rsa_key = listed(&user, &rsa).pop().unwrap();
    sign_and_verify(&user, &rsa_key, Signing::RsaPss(Hash::Sha256), b"m");
    let public = rsa::PublicKey::from_public_key_der(rsa_key.public_key_der.as_ref().unwrap()).unwrap();
    let ciphertext = public.encrypt(&mut crate::mechanism::keys::SysRng, rsa::Oaep::<sha2::Sha256>::new(), b"dk").unwrap();
    assert_eq!(user.decrypt_oaep(&rsa_key, Hash::Sha256, &ciphertext).unwrap().as_slice(), b"dk");
    let aes_key = listed(&user, &aes).pop().unwrap();
    let blob = user.wrap(&aes_key, b"dk").unwrap();
    assert_eq!(user.unwrap(&aes_key, &blob).unwrap().as_slice(), b"dk");
    // Without `create`, neither a new key nor an upsert through encrypt/.
    assert_eq!(rv(user.create_key(&NewKey { spec: KeySpec::Ed25519, sign: true, label: Some(unique("no")) })), CKR_FUNCTION_FAILED);
    assert_eq!(rv(user.delete_key(&ed_key)), CKR_FUNCTION_FAILED);

    let manager_token = token_with(&bao, &[(&use_name, USE_POLICY), (&manage_name, MANAGE_POLICY)]);
    let (manager, _d3) = service_with_token(&bao, &manager_token);
    let made = manager.create_key(&NewKey { spec: KeySpec::EcP256, sign: true, label: Some(unique("managed")) }).unwrap();
    sign_and_verify(&manager, &made, Signing::Ecdsa(Hash::Sha256), b"m");
    for k in [&made, &ed_key, &rsa_key, &aes_key] {
        manager.delete_key(k).unwrap();
    }
    for p in [&use_name, &manage_name] {
        assert!(bao.raw("DELETE", &format!("sys/policies/acl/{p}"), None, None).is_success());
    }
}

//! `AwsKms` against a real KMS API: LocalStack, started by `conformance/servers start DIR`,
//! whose endpoint is in `KEYFRONT_TEST_KMS_ENDPOINT` (source `DIR/env`). Those tests are
//! `#[ignore]`d so that a plain `cargo test` needs no server; run them with
//!
//! ```sh
//! conformance/servers start /tmp/kf-servers && set -a && . /tmp/kf-servers/env && set +a
//! cargo test --lib backend::aws_kms -- --include-ignored
//! ```
//!
//! Run without the variable they fail, saying how to start the servers. Every test names its
//! keys under its own alias prefix, so the tests run in parallel and against a server that
//! other tests use too; the keys they make are scheduled for deletion at the end.

use cryptoki_sys::*;
use serde_json::json;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::credentials::Source;
use super::AwsKms;
use crate::backend::cloud::{Hash, KeyService, KeySpec, NewKey, RemoteKey, Signing};
use crate::config::AwsKmsSlotConfig;

fn endpoint() -> String {
    std::env::var("KEYFRONT_TEST_KMS_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| {
        panic!(
            "KEYFRONT_TEST_KMS_ENDPOINT is not set: these tests need LocalStack. Start it with\n  \
             conformance/servers start /tmp/kf-servers && set -a && . /tmp/kf-servers/env && set +a\n\
             then run again (and `conformance/servers stop /tmp/kf-servers` afterwards)."
        )
    })
}

/// A prefix no other test (or earlier run against the same server) uses.
fn unique(stem: &str) -> String {
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).unwrap();
    format!("kfunit-{stem}-{}-", super::api::hex(&r))
}

fn config(prefix: Option<&str>, tag: Option<(&str, &str)>) -> AwsKmsSlotConfig {
    let mut c = AwsKmsSlotConfig {
        region: "us-east-1".into(),
        endpoint: Some(endpoint()),
        alias_prefix: prefix.map(|p| format!("alias/{p}")),
        tag: tag.map(|(k, v)| (k.to_string(), v.to_string())),
        ..Default::default()
    };
    c.cloud.retry_attempts = 2;
    c.cloud.timeout_ms = 20_000;
    c
}

fn service(prefix: &str) -> AwsKms {
    service_with(config(Some(prefix), None))
}

/// The test server's credentials, whatever the process environment says.
fn service_with(config: AwsKmsSlotConfig) -> AwsKms {
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "test");
    AwsKms::with_source(&config, Source::Fixed { credentials, from: "test".into() }).unwrap()
}

fn create(kms: &AwsKms, spec: KeySpec, sign: bool, label: Option<&str>) -> RemoteKey {
    kms.create_key(&NewKey { spec, sign, label: label.map(String::from) }).unwrap()
}

fn listed(kms: &AwsKms, key: &RemoteKey) -> RemoteKey {
    let all = kms.list_keys().unwrap();
    all.into_iter().find(|k| k.key_ref == key.key_ref).unwrap_or_else(|| panic!("{} is not listed", key.label))
}

fn rv_of<T: std::fmt::Debug>(r: crate::error::Result<T>) -> CK_RV {
    r.unwrap_err().rv()
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn ec_p256_keys_sign_digests() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    let prefix = unique("ec");
    let kms = service(&prefix);
    let key = create(&kms, KeySpec::EcP256, true, Some("signer"));
    assert_eq!(key.label, format!("{prefix}signer"));
    assert_eq!((key.spec, key.sign, key.decrypt, key.enabled, key.version), (KeySpec::EcP256, true, false, true, None));
    assert_eq!(key.id.len(), 16, "the key id UUID as 16 bytes");
    assert_eq!(listed(&kms, &key), key);

    let public = p256::ecdsa::VerifyingKey::from_public_key_der(key.public_key_der.as_deref().unwrap()).unwrap();
    let message = b"signed in LocalStack";
    let digests: [(Hash, Vec<u8>); 3] = [
        (Hash::Sha256, Sha256::digest(message).to_vec()),
        (Hash::Sha384, Sha384::digest(message).to_vec()),
        (Hash::Sha512, Sha512::digest(message).to_vec()),
    ];
    for (hash, digest) in digests {
        let raw = kms.sign(&key, Signing::Ecdsa(hash), &digest).unwrap();
        assert_eq!(raw.len(), 64);
        let signature = p256::ecdsa::Signature::from_slice(&raw).unwrap();
        public.verify_prehash(&digest, &signature).unwrap_or_else(|e| panic!("ECDSA with {hash:?}: {e}"));
    }
    assert_eq!(rv_of(kms.sign(&key, Signing::Ecdsa(Hash::Sha1), &[0; 20])), CKR_MECHANISM_INVALID);
    assert_eq!(rv_of(kms.sign(&key, Signing::Ed25519, b"m")), CKR_MECHANISM_INVALID);
    kms.delete_key(&key).unwrap();
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn rsa_keys_sign_pkcs1_and_pss() {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::{Pkcs1v15Sign, Pss};
    let kms = service(&unique("rsa"));
    let key = create(&kms, KeySpec::Rsa(2048), true, Some("rsa-signer"));
    assert_eq!((key.spec, key.sign, key.decrypt), (KeySpec::Rsa(2048), true, false));
    let public = rsa::PublicKey::from_public_key_der(key.public_key_der.as_deref().unwrap()).unwrap();
    let message = b"an RSA signature from the service";

    let d256 = Sha256::digest(message);
    let sig = kms.sign(&key, Signing::RsaPkcs1(Hash::Sha256), &d256).unwrap();
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &d256, &sig).unwrap();
    let d384 = Sha384::digest(message);
    let sig = kms.sign(&key, Signing::RsaPkcs1(Hash::Sha384), &d384).unwrap();
    public.verify(Pkcs1v15Sign::new::<Sha384>(), &d384, &sig).unwrap();
    // PSS with the salt as long as the hash, as PKCS#11 callers give it.
    let sig = kms.sign(&key, Signing::RsaPss(Hash::Sha256), &d256).unwrap();
    public.verify(Pss::<Sha256>::new_with_salt(32), &d256, &sig).unwrap();
    let d512 = Sha512::digest(message);
    let sig = kms.sign(&key, Signing::RsaPss(Hash::Sha512), &d512).unwrap();
    public.verify(Pss::<Sha512>::new_with_salt(64), &d512, &sig).unwrap();

    assert_eq!(rv_of(kms.sign(&key, Signing::RsaPkcs1(Hash::Sha256), &d384)), CKR_DATA_LEN_RANGE);
    assert_eq!(rv_of(kms.sign(&key, Signing::Ecdsa(Hash::Sha256), &d256)), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(rv_of(kms.decrypt_oaep(&key, Hash::Sha256, &[0; 256])), CKR_KEY_FUNCTION_NOT_PERMITTED);
    kms.delete_key(&key).unwrap();
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn rsa_oaep_decrypts_what_was_encrypted_locally() {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::Oaep;
    let kms = service(&unique("oaep"));
    let key = create(&kms, KeySpec::Rsa(3072), false, Some("decrypter"));
    assert_eq!((key.spec, key.sign, key.decrypt), (KeySpec::Rsa(3072), false, true));
    let public = rsa::PublicKey::from_public_key_der(key.public_key_der.as_deref().unwrap()).unwrap();
    let secret = b"a session key, 32 bytes long....";
    let mut rng = crate::mechanism::keys::SysRng;
    let c256 = public.encrypt(&mut rng, Oaep::<Sha256>::new(), secret).unwrap();
    assert_eq!(&kms.decrypt_oaep(&key, Hash::Sha256, &c256).unwrap()[..], secret);
    // LocalStack decrypts RSAES_OAEP_SHA_1 as SHA-256, and a failed RSA decryption is a 500
    // InternalError there (real KMS: InvalidCiphertextException); the SHA-1 request itself is
    // checked against a canned reply in `oaep_sha1_request_on_the_wire`.
    let c1 = public.encrypt(&mut rng, Oaep::<sha1::Sha1>::new(), secret).unwrap();
    match kms.decrypt_oaep(&key, Hash::Sha1, &c1) {
        Ok(plain) => assert_eq!(&plain[..], secret),
        Err(e) => assert!(e.rv() == CKR_DEVICE_ERROR && e.to_string().contains("InternalError"), "{e}"),
    }
    let bad = kms.decrypt_oaep(&key, Hash::Sha256, &c1).unwrap_err();
    assert!(bad.rv() == CKR_ENCRYPTED_DATA_INVALID || bad.to_string().contains("InternalError"), "{bad}");

    assert_eq!(rv_of(kms.decrypt_oaep(&key, Hash::Sha384, &c256)), CKR_MECHANISM_PARAM_INVALID);
    assert_eq!(rv_of(kms.decrypt_oaep(&key, Hash::Sha256, &c256[1..])), CKR_ENCRYPTED_DATA_LEN_RANGE);
    assert_eq!(rv_of(kms.sign(&key, Signing::RsaPkcs1(Hash::Sha256), &[0; 32])), CKR_KEY_FUNCTION_NOT_PERMITTED);
    kms.delete_key(&key).unwrap();
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn symmetric_keys_wrap_and_unwrap() {
    let kms = service(&unique("aes"));
    let key = create(&kms, KeySpec::Aes256, true, Some("kek"));
    assert_eq!((key.spec, key.sign, key.decrypt, &key.public_key_der), (KeySpec::Aes256, false, true, &None));
    let data_key = [0x5au8; 32];
    let blob = kms.wrap(&key, &data_key).unwrap();
    assert_ne!(&blob[..], &data_key[..]);
    assert_eq!(&kms.unwrap(&key, &blob).unwrap()[..], &data_key[..]);
    assert_eq!(kms.unwrap(&key, &kms.wrap(&key, &[7u8; 4096]).unwrap()).unwrap().len(), 4096);

    let mut tampered = blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(rv_of(kms.unwrap(&key, &tampered)), CKR_ENCRYPTED_DATA_INVALID);
    assert_eq!(rv_of(kms.wrap(&key, &[0u8; 4097])), CKR_DATA_LEN_RANGE);
    assert_eq!(rv_of(kms.wrap(&key, &[])), CKR_DATA_LEN_RANGE);
    // A blob of another key.
    let other = create(&kms, KeySpec::Aes256, true, Some("other-kek"));
    let r = kms.unwrap(&other, &blob);
    assert!(matches!(rv_of(r), CKR_ENCRYPTED_DATA_INVALID), "another key's blob");
    kms.delete_key(&key).unwrap();
    kms.delete_key(&other).unwrap();
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn disabled_keys_are_listed_and_refuse() {
    let kms = service(&unique("disabled"));
    let key = create(&kms, KeySpec::EcP256, true, Some("off"));
    kms.call("DisableKey", json!({"KeyId": key.key_ref}), true).unwrap();
    let shown = listed(&kms, &key);
    assert!(!shown.enabled);
    assert_eq!(rv_of(kms.sign(&shown, Signing::Ecdsa(Hash::Sha256), &[1; 32])), CKR_KEY_FUNCTION_NOT_PERMITTED);
    kms.call("EnableKey", json!({"KeyId": key.key_ref}), true).unwrap();
    assert!(listed(&kms, &key).enabled);
    kms.sign(&key, Signing::Ecdsa(Hash::Sha256), &[1; 32]).unwrap();
    kms.delete_key(&key).unwrap();
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn alias_prefix_and_tag_filters() {
    let prefix = unique("filter");
    let tag_value = unique("team");
    let plain = service(&prefix);
    let tagged = service_with(config(Some(&prefix), Some(("keyfront-test", &tag_value))));
    let elsewhere = service(&unique("elsewhere"));

    let untagged_key = create(&plain, KeySpec::Aes256, true, Some("untagged"));
    // Made on the tag-filtered slot, the key carries the tag.
    let tagged_key = create(&tagged, KeySpec::Aes256, true, Some("tagged"));
    // No label: with a prefix, the alias is the prefix + the key id.
    let unnamed = create(&plain, KeySpec::EcP256, true, None);
    assert_eq!(unnamed.label, format!("{prefix}{}", unnamed.key_ref));

    let labels = |kms: &AwsKms| kms.list_keys().unwrap().into_iter().map(|k| k.label).collect::<Vec<_>>();
    let mut expected = vec![format!("{prefix}tagged"), format!("{prefix}untagged"), unnamed.label.clone()];
    expected.sort();
    assert_eq!(labels(&plain), expected);
    assert_eq!(labels(&tagged), vec![format!("{prefix}tagged")]);
    assert!(!labels(&elsewhere).iter().any(|l| l.starts_with(&prefix)));

    // A label that already has the prefix is not prefixed again; the alias shows the label.
    let named = create(&plain, KeySpec::Aes256, true, Some(&format!("{prefix}given")));
    assert_eq!(named.label, format!("{prefix}given"));
    // Taken alias: refused, and the extra key does not stay behind in the slot.
    let before = plain.list_keys().unwrap().len();
    let r = plain.create_key(&NewKey { spec: KeySpec::Aes256, sign: false, label: Some("given".into()) });
    assert_eq!(rv_of(r), CKR_ATTRIBUTE_VALUE_INVALID);
    assert_eq!(plain.list_keys().unwrap().len(), before);
    assert_eq!(rv_of(plain.create_key(&NewKey { spec: KeySpec::Aes256, sign: false, label: Some("has space".into()) })), CKR_ATTRIBUTE_VALUE_INVALID);

    for key in [untagged_key, tagged_key, unnamed, named] {
        plain.delete_key(&key).unwrap();
    }
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn delete_schedules_deletion_and_frees_the_alias() {
    let prefix = unique("delete");
    let kms = service(&prefix);
    let key = create(&kms, KeySpec::EcP256, true, Some("gone"));
    kms.delete_key(&key).unwrap();
    assert!(kms.list_keys().unwrap().is_empty());
    let meta = kms.describe_key(&key.key_ref).unwrap();
    assert_eq!(meta.key_state, "PendingDeletion");
    let reply = kms.call("DescribeKey", json!({"KeyId": key.key_ref}), true).unwrap();
    assert!(reply["KeyMetadata"]["DeletionDate"].is_number() || reply["KeyMetadata"]["DeletionDate"].is_string());
    // A second delete (a retried request) is not an error.
    kms.delete_key(&key).unwrap();
    // The label can be used again.
    let again = create(&kms, KeySpec::EcP256, true, Some("gone"));
    assert_eq!(again.label, format!("{prefix}gone"));
    assert_ne!(again.key_ref, key.key_ref);
    // The deleted key refuses to work.
    assert_eq!(rv_of(kms.sign(&key, Signing::Ecdsa(Hash::Sha256), &[1; 32])), CKR_KEY_FUNCTION_NOT_PERMITTED);
    kms.delete_key(&again).unwrap();
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn ed25519_when_the_service_has_it() {
    let kms = service(&unique("ed"));
    match kms.create_key(&NewKey { spec: KeySpec::Ed25519, sign: true, label: Some("ed".into()) }) {
        // LocalStack has no ECC_NIST_EDWARDS25519.
        Err(e) => assert_eq!(e.rv(), CKR_MECHANISM_INVALID, "{e}"),
        Ok(key) => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            let public = ed25519_dalek::VerifyingKey::from_public_key_der(key.public_key_der.as_deref().unwrap()).unwrap();
            let raw = kms.sign(&key, Signing::Ed25519, b"pure Ed25519").unwrap();
            public.verify_strict(b"pure Ed25519", &ed25519_dalek::Signature::from_slice(&raw).unwrap()).unwrap();
            kms.delete_key(&key).unwrap();
        }
    }
}

#[test]
#[ignore = "needs LocalStack: conformance/servers"]
fn unknown_keys_are_invalid_handles() {
    let kms = service(&unique("unknown"));
    let ghost = RemoteKey {
        key_ref: "00000000-0000-4000-8000-000000000000".into(),
        version: None,
        label: "ghost".into(),
        id: vec![0; 16],
        spec: KeySpec::EcP256,
        sign: true,
        decrypt: false,
        enabled: true,
        public_key_der: None,
    };
    assert_eq!(rv_of(kms.sign(&ghost, Signing::Ecdsa(Hash::Sha256), &[1; 32])), CKR_KEY_HANDLE_INVALID);
    assert_eq!(rv_of(kms.delete_key(&ghost)), CKR_KEY_HANDLE_INVALID);
}

// Without a server.

#[test]
fn no_credentials_fail_every_call_with_user_not_logged_in() {
    let config = AwsKmsSlotConfig { region: "us-east-1".into(), endpoint: Some("http://127.0.0.1:9".into()), ..Default::default() };
    let kms = AwsKms::with_source(&config, Source::Nothing("nothing configured".into())).unwrap();
    let e = kms.list_keys().unwrap_err();
    assert_eq!(e.rv(), CKR_USER_NOT_LOGGED_IN);
    assert!(e.to_string().contains("no AWS credentials"), "{e}");
}

#[test]
fn new_reads_no_network_and_describes_the_slot() {
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDX".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("x".to_string()),
        _ => None,
    };
    // An endpoint where nothing listens: `new` does not notice.
    let config = AwsKmsSlotConfig { region: "eu-central-1".into(), ..Default::default() };
    assert_eq!(AwsKms::with_env(&config, &env).unwrap().describe(), "aws-kms eu-central-1");
    let config = AwsKmsSlotConfig { region: "us-east-1".into(), endpoint: Some("http://127.0.0.1:9/".into()), ..Default::default() };
    assert_eq!(AwsKms::with_env(&config, &env).unwrap().describe(), "aws-kms us-east-1 (http://127.0.0.1:9)");
    let bad = AwsKmsSlotConfig { region: "us-east-1".into(), endpoint: Some("kms.local".into()), ..Default::default() };
    assert!(AwsKms::with_env(&bad, &env).is_err());
}

#[test]
fn an_unreachable_service_is_a_device_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = AwsKmsSlotConfig { region: "us-east-1".into(), endpoint: Some(format!("http://127.0.0.1:{port}")), ..Default::default() };
    config.cloud.retry_attempts = 1;
    config.cloud.timeout_ms = 2_000;
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "test");
    let kms = AwsKms::with_source(&config, Source::Fixed { credentials, from: "test".into() }).unwrap();
    assert_eq!(rv_of(kms.list_keys()), CKR_DEVICE_ERROR);
}

#[test]
fn oaep_sha1_request_on_the_wire() {
    let (url, server) = super::credentials::tests::canned(vec![(200, r#"{"KeyId":"k","Plaintext":"c2VjcmV0"}"#.into())]);
    let config = AwsKmsSlotConfig { region: "us-east-1".into(), endpoint: Some(url), ..Default::default() };
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "test");
    let kms = AwsKms::with_source(&config, Source::Fixed { credentials, from: "test".into() }).unwrap();
    let key = RemoteKey {
        key_ref: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        version: None,
        label: "rsa".into(),
        id: vec![],
        spec: KeySpec::Rsa(2048),
        sign: false,
        decrypt: true,
        enabled: true,
        public_key_der: None,
    };
    assert_eq!(&kms.decrypt_oaep(&key, Hash::Sha1, &[9u8; 256]).unwrap()[..], b"secret");
    let seen = server.join().unwrap();
    let body: serde_json::Value = serde_json::from_str(seen[0].split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["KeyId"], "1234abcd-12ab-34cd-56ef-1234567890ab");
    assert_eq!(body["EncryptionAlgorithm"], "RSAES_OAEP_SHA_1");
    assert_eq!(body["CiphertextBlob"].as_str().unwrap().len(), 344);
    assert!(seen[0].to_ascii_lowercase().contains("x-amz-target: trentservice.decrypt\r\n"));
}

fn canned_service(replies: Vec<(u16, String)>) -> (AwsKms, std::thread::JoinHandle<Vec<String>>) {
    let (url, server) = super::credentials::tests::canned(replies);
    let mut config = AwsKmsSlotConfig { region: "us-east-1".into(), endpoint: Some(url), ..Default::default() };
    config.cloud.retry_attempts = 0;
    let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "test");
    (AwsKms::with_source(&config, Source::Fixed { credentials, from: "test".into() }).unwrap(), server)
}

fn body_of(request: &str) -> serde_json::Value {
    serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[test]
fn listings_follow_the_markers() {
    let (kms, server) = canned_service(vec![
        (200, r#"{"Keys":[{"KeyId":"a"},{"KeyId":"b"}],"NextMarker":"m1","Truncated":true}"#.into()),
        (200, r#"{"Keys":[{"KeyId":"c"}],"Truncated":false}"#.into()),
    ]);
    let keys = kms.paged("ListKeys", json!({"Limit": 1000}), "Keys").unwrap();
    assert_eq!(keys.iter().map(|k| k["KeyId"].as_str().unwrap()).collect::<Vec<_>>(), ["a", "b", "c"]);
    let seen = server.join().unwrap();
    assert_eq!(body_of(&seen[0]), json!({"Limit": 1000}));
    assert_eq!(body_of(&seen[1]), json!({"Limit": 1000, "Marker": "m1"}));
}

#[test]
fn a_marker_seen_twice_ends_the_listing() {
    let page = r#"{"Aliases":[],"NextMarker":"same","Truncated":true}"#.to_string();
    let (kms, _server) = canned_service(vec![(200, page.clone()), (200, page)]);
    assert_eq!(rv_of(kms.paged("ListAliases", json!({"Limit": 100}), "Aliases")), CKR_DEVICE_ERROR);
}

#[test]
fn a_disabled_key_without_its_public_key_is_left_out() {
    let meta = r#"{"KeyMetadata":{"KeyId":"k1","KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY","KeyState":"Disabled","KeyManager":"CUSTOMER"}}"#;
    let (kms, server) = canned_service(vec![
        (200, r#"{"Keys":[{"KeyId":"k1"}]}"#.into()),
        (200, r#"{"Aliases":[]}"#.into()),
        (200, meta.into()),
        (400, r#"{"__type":"DisabledException","message":"k1 is disabled."}"#.into()),
    ]);
    assert_eq!(kms.list_keys().unwrap(), vec![]);
    assert_eq!(server.join().unwrap().len(), 4);
}

/// Found by the `service_replies` fuzz target: a CreateKey reply describing another kind of
/// key than asked was taken as the new key (a P-256 generation gave RSA objects).
#[test]
fn a_new_key_of_another_kind_than_asked_is_refused() {
    let made = |spec: &str, usage: &str| {
        format!(r#"{{"KeyMetadata":{{"KeyId":"k1","KeySpec":"{spec}","KeyUsage":"{usage}","KeyState":"Enabled","KeyManager":"CUSTOMER"}}}}"#)
    };
    for (asked, sign, reply) in [
        (KeySpec::EcP256, true, made("RSA_4096", "SIGN_VERIFY")),
        (KeySpec::Rsa(2048), true, made("RSA_3072", "SIGN_VERIFY")),
        (KeySpec::Rsa(2048), true, made("RSA_2048", "ENCRYPT_DECRYPT")),
        (KeySpec::Aes256, false, made("HMAC_256", "GENERATE_VERIFY_MAC")),
    ] {
        let (kms, server) = canned_service(vec![(200, reply)]);
        let e = kms.create_key(&NewKey { spec: asked, sign, label: None }).unwrap_err();
        assert_eq!(e.rv(), CKR_DEVICE_ERROR, "{asked:?}: {e}");
        assert!(e.to_string().contains("is not a"), "{e}");
        // Nothing asked after the CreateKey reply.
        assert_eq!(server.join().unwrap().len(), 1);
    }
}

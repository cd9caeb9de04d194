//! Cloud slots through the built module's C ABI, against real servers on 127.0.0.1: AWS KMS
//! as LocalStack serves it, Vault Transit as OpenBao serves it. The servers are started by
//! this binary (`conformance/servers start`) and stopped at its exit, unless
//! `KEYFRONT_TEST_SERVERS_DIR` names a directory where they already run.
//!
//! Tests that stop a server take the service's lock for writing; the others hold it for
//! reading, so they never see the outage meant for another test.
mod common;
use common::*;

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::sync::OnceLock;

use parking_lot::RwLock;

const AWS: CK_SLOT_ID = 1;
const VAULT: CK_SLOT_ID = 2;
/// AWS KMS with `pin_sha256`.
const AWS_PIN: CK_SLOT_ID = 3;
/// Vault with a token the server does not know.
const VAULT_BAD_TOKEN: CK_SLOT_ID = 4;
/// Vault with no caching (`refresh_interval_s = 0`): sees versions rotated behind its back.
const VAULT_FRESH: CK_SLOT_ID = 5;
/// AWS KMS with credentials the server refuses (if it checks them).
const AWS_BAD_CREDENTIALS: CK_SLOT_ID = 6;
/// AWS KMS and Vault with a self-signed certificate object per signing key.
const AWS_CERTS: CK_SLOT_ID = 7;
const VAULT_CERTS: CK_SLOT_ID = 8;

const CLOUD_PIN: &[u8] = b"cloud-pin-1";
const P256: &str = "06082a8648ce3d030107";
const ED25519: &str = "06032b6570";

static KMS_LOCK: RwLock<()> = RwLock::new(());
static VAULT_LOCK: RwLock<()> = RwLock::new(());

struct Servers {
    dir: PathBuf,
    env: Vec<(String, String)>,
    /// Started here, so stopped at exit.
    owned: bool,
}

impl Servers {
    fn var(&self, name: &str) -> &str {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("{name} missing from {}/env", self.dir.display()))
    }

    fn control(&self, what: &str) {
        let out = Command::new(servers_script()).args([what, self.dir.to_str().unwrap()]).output().expect("run conformance/servers");
        assert!(out.status.success(), "conformance/servers {what}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}

fn servers_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/servers")
}

static SERVERS: OnceLock<Servers> = OnceLock::new();

extern "C" fn stop_servers() {
    if let Some(s) = SERVERS.get() {
        if s.owned {
            let _ = Command::new(servers_script()).args(["stop", s.dir.to_str().unwrap()]).output();
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The servers, and the module initialised with one slot per test need.
fn cloud() -> &'static Servers {
    SERVERS.get_or_init(|| {
        let (dir, owned) = match std::env::var_os("KEYFRONT_TEST_SERVERS_DIR") {
            Some(d) => (PathBuf::from(d), false),
            None => {
                let dir = tempfile::tempdir().expect("tempdir").keep();
                let out = Command::new(servers_script()).args(["start", dir.to_str().unwrap()]).output().expect("run conformance/servers");
                assert!(
                    out.status.success(),
                    "conformance/servers start failed (LocalStack and OpenBao are needed):\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                (dir, true)
            }
        };
        let text = std::fs::read_to_string(dir.join("env")).expect("servers' env file");
        let env: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.trim().split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').trim_matches('\'').to_string()))
            .collect();
        let servers = Servers { dir: dir.clone(), env, owned };
        for (k, v) in &servers.env {
            if k.starts_with("AWS_") {
                std::env::set_var(k, v);
            }
        }
        let endpoint = servers.var("KEYFRONT_TEST_KMS_ENDPOINT").to_string();
        let vault = servers.var("KEYFRONT_TEST_VAULT_ADDR").to_string();
        let token_file = dir.join("vault-token");
        std::fs::write(&token_file, servers.var("KEYFRONT_TEST_VAULT_TOKEN")).unwrap();
        let bad_token = dir.join("vault-bad-token");
        std::fs::write(&bad_token, "not-a-token").unwrap();
        // A profile whose keys the server has never issued.
        let credentials = dir.join("aws-credentials");
        std::fs::write(&credentials, "[refused]\naws_access_key_id = AKIAREFUSED0000000000\naws_secret_access_key = refused\n").unwrap();
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials);
        let common = "retry_attempts = 1\ntimeout_ms = 4000\n";
        let config = format!(
            "[[slot]]\nkind = \"aws-kms\"\nid = {AWS}\nlabel = \"aws\"\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\nalias_prefix = \"alias/kf-test-\"\n{common}\n\
             [[slot]]\nkind = \"vault-transit\"\nid = {VAULT}\nlabel = \"vault\"\naddress = {vault:?}\ntoken_file = {token_file:?}\n{common}\n\
             [[slot]]\nkind = \"aws-kms\"\nid = {AWS_PIN}\nlabel = \"aws-pin\"\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\nalias_prefix = \"alias/kf-pin-\"\npin_sha256 = \"{pin}\"\n{common}\n\
             [[slot]]\nkind = \"vault-transit\"\nid = {VAULT_BAD_TOKEN}\nlabel = \"vault-bad\"\naddress = {vault:?}\ntoken_file = {bad_token:?}\n{common}\n\
             [[slot]]\nkind = \"vault-transit\"\nid = {VAULT_FRESH}\nlabel = \"vault-fresh\"\naddress = {vault:?}\ntoken_file = {token_file:?}\nrefresh_interval_s = 0\n{common}\n\
             [[slot]]\nkind = \"aws-kms\"\nid = {AWS_BAD_CREDENTIALS}\nlabel = \"aws-refused\"\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\nprofile = \"refused\"\n{common}\n\
             [[slot]]\nkind = \"aws-kms\"\nid = {AWS_CERTS}\nlabel = \"aws-certs\"\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\nalias_prefix = \"alias/kf-cert-\"\ncertificates = true\n{common}\n\
             [[slot]]\nkind = \"vault-transit\"\nid = {VAULT_CERTS}\nlabel = \"vault-certs\"\naddress = {vault:?}\ntoken_file = {token_file:?}\ncertificates = true\n{common}\n",
            pin = sha256_hex(CLOUD_PIN),
        );
        let path = dir.join("keyfront.toml");
        std::fs::write(&path, config).unwrap();
        std::env::set_var("KEYFRONT_CONFIG", &path);
        std::env::set_var("KEYFRONT_LOG", "info");
        std::env::set_var("KEYFRONT_LOG_FILE", dir.join("keyfront.log"));
        // SAFETY (test): registers a plain function.
        unsafe { libc::atexit(stop_servers) };
        std::mem::forget(load_and_init());
        servers
    })
}

/// An EC P-256 signing key pair made in the service: (public, private).
fn ec_pair(s: CK_SESSION_HANDLE, label: &str) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    gen_key_pair(
        s,
        &Mech::new(CKM_EC_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), av(CKA_EC_PARAMS, hex(P256)), av(CKA_LABEL, label)],
        &[ab(CKA_TOKEN, true), ab(CKA_SIGN, true), av(CKA_LABEL, label)],
    )
    .unwrap_or_else(|e| panic!("EC key pair {label}: {e:?}"))
}

/// A logged-in read-write session on `slot` (the user is logged in once per slot).
fn session(slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    cloud();
    let s = open(slot, true).unwrap();
    match login(s, CKU_USER, CLOUD_PIN) {
        Ok(()) => {}
        Err(e) if e.0 == CKR_USER_ALREADY_LOGGED_IN => {}
        Err(e) => panic!("login on slot {slot}: {e:?}"),
    }
    s
}

/// A label no earlier run used (LocalStack and OpenBao dev mode keep keys only in memory,
/// but a developer's long-running servers may not).
fn unique(prefix: &str) -> String {
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).unwrap();
    format!("{prefix}{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn oaep(hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, label: &'static [u8]) -> Mech {
    let p = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: hash,
        mgf,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: if label.is_empty() { ptr::null_mut() } else { label.as_ptr() as *mut c_void },
        ulSourceDataLen: label.len() as CK_ULONG,
    };
    Mech::bytes(CKM_RSA_PKCS_OAEP, &struct_bytes(&p))
}

fn pss(kind: CK_MECHANISM_TYPE, hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, salt: CK_ULONG) -> Mech {
    let p = CK_RSA_PKCS_PSS_PARAMS { hashAlg: hash, mgf, sLen: salt };
    Mech::bytes(kind, &struct_bytes(&p))
}

fn struct_bytes<T>(v: &T) -> Vec<u8> {
    // SAFETY (test): plain C structs, read as bytes for a mechanism parameter.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()).to_vec() }
}

fn ec_point(s: CK_SESSION_HANDLE, public: CK_OBJECT_HANDLE) -> p256::PublicKey {
    let der = get_attr(s, public, CKA_EC_POINT).unwrap();
    assert_eq!(der[0], 0x04, "CKA_EC_POINT is a DER OCTET STRING");
    p256::PublicKey::from_sec1_bytes(&der[2..]).expect("a P-256 point")
}

// ---------------------------------------------------------------------------------------------
// Both services

/// An EC P-256 key made through `C_GenerateKeyPair` in the service: complete objects, signing
/// in the service (digest and hash-then-sign, one and several parts), verification locally,
/// and an independent check of each signature with the p256 crate.
fn ec_sign_in_service(slot: CK_SLOT_ID, label: &str) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let s = session(slot);
    let (public, private) = gen_key_pair(
        s,
        &Mech::new(CKM_EC_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), av(CKA_EC_PARAMS, hex(P256)), ab(CKA_VERIFY, true), av(CKA_LABEL, label)],
        &[ab(CKA_TOKEN, true), ab(CKA_PRIVATE, true), ab(CKA_SIGN, true), av(CKA_LABEL, label)],
    )
    .unwrap();
    assert_eq!(get_ulong(s, private, CKA_CLASS).unwrap(), CKO_PRIVATE_KEY);
    assert_eq!(get_ulong(s, private, CKA_KEY_TYPE).unwrap(), CKK_EC);
    assert!(get_bool(s, private, CKA_SENSITIVE).unwrap() && !get_bool(s, private, CKA_EXTRACTABLE).unwrap());
    expect_rv(get_attr(s, private, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(get_attr(s, private, CKA_LABEL).unwrap(), label.as_bytes());
    assert_eq!(get_attr(s, private, CKA_ID).unwrap(), get_attr(s, public, CKA_ID).unwrap());
    assert_eq!(get_attr(s, public, CKA_EC_PARAMS).unwrap(), hex(P256));
    let mut found = find(s, &[av(CKA_LABEL, label)]).unwrap();
    found.sort();
    let mut want = vec![public, private];
    want.sort();
    assert_eq!(found, want);

    let point = ec_point(s, public);
    let verifier = p256::ecdsa::VerifyingKey::from(&point);
    let digest = [0x5au8; 32];
    let sig = sign(s, &Mech::new(CKM_ECDSA), private, &digest).unwrap();
    assert_eq!(sig.len(), 64);
    verify(s, &Mech::new(CKM_ECDSA), public, &digest, &sig).unwrap();
    verifier.verify_prehash(&digest, &p256::ecdsa::Signature::from_slice(&sig).unwrap()).unwrap();

    let message = vec![7u8; 4096];
    let sig = sign_parts(s, &Mech::new(CKM_ECDSA_SHA256), private, &chunks(&message, ODD)).unwrap();
    verify(s, &Mech::new(CKM_ECDSA_SHA256), public, &message, &sig).unwrap();
    let mut bad = sig.clone();
    bad[10] ^= 1;
    expect_rv(verify(s, &Mech::new(CKM_ECDSA_SHA256), public, &message, &bad), CKR_SIGNATURE_INVALID);
    // What keyfront cannot hand to the service.
    expect_rv(sign_init(s, &Mech::new(CKM_ECDSA_SHA1), private), CKR_MECHANISM_INVALID);
    // Keyfront's own policy holds for service keys: not a key to decrypt with.
    expect_rv(decrypt_init(s, &oaep(CKM_SHA256, CKG_MGF1_SHA256, b""), private), CKR_KEY_TYPE_INCONSISTENT);
    close(s).unwrap();
}

/// An RSA key for signing, and one for decryption, made in the service.
fn rsa_in_service(slot: CK_SLOT_ID, label: &str) {
    let s = session(slot);
    let (public, private) = gen_key_pair(
        s,
        &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), au(CKA_MODULUS_BITS, 2048), ab(CKA_VERIFY, true), av(CKA_LABEL, label)],
        &[ab(CKA_TOKEN, true), ab(CKA_SIGN, true), av(CKA_LABEL, label)],
    )
    .unwrap();
    assert_eq!(get_ulong(s, public, CKA_MODULUS_BITS).unwrap(), 2048);
    assert_eq!(get_attr(s, private, CKA_MODULUS).unwrap(), get_attr(s, public, CKA_MODULUS).unwrap());
    let message = b"signed in the service, verified here";
    for mech in [
        Mech::new(CKM_SHA256_RSA_PKCS),
        Mech::new(CKM_SHA384_RSA_PKCS),
        Mech::new(CKM_SHA512_RSA_PKCS),
        pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32),
        pss(CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, CKG_MGF1_SHA512, 64),
    ] {
        let sig = sign(s, &mech, private, message).unwrap();
        assert_eq!(sig.len(), 256);
        verify(s, &mech, public, message, &sig).unwrap_or_else(|e| panic!("mechanism 0x{:x}: {e:?}", mech.ty));
    }
    // CKM_RSA_PKCS with a SHA-256 DigestInfo (what TLS libraries send).
    use sha2::Digest;
    let mut info = hex("3031300d060960864801650304020105000420");
    info.extend_from_slice(&sha2::Sha256::digest(message));
    let sig = sign(s, &Mech::new(CKM_RSA_PKCS), private, &info).unwrap();
    verify(s, &Mech::new(CKM_SHA256_RSA_PKCS), public, message, &sig).unwrap();
    expect_rv(sign(s, &Mech::new(CKM_RSA_PKCS), private, &[1u8; 32]), CKR_DATA_INVALID);
    // PSS with a salt the services do not use.
    expect_rv(sign_init(s, &pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 20), private), CKR_MECHANISM_PARAM_INVALID);
    close(s).unwrap();
}

/// `tampered`: what the service makes of a damaged ciphertext.
fn rsa_oaep_in_service(slot: CK_SLOT_ID, label: &str, tampered_codes: &[CK_RV]) {
    let s = session(slot);
    let (public, private) = gen_key_pair(
        s,
        &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), au(CKA_MODULUS_BITS, 2048), ab(CKA_ENCRYPT, true), av(CKA_LABEL, label)],
        &[ab(CKA_TOKEN, true), ab(CKA_DECRYPT, true), av(CKA_LABEL, label)],
    )
    .unwrap();
    assert!(get_bool(s, private, CKA_DECRYPT).unwrap());
    let secret = b"a data key, 32 bytes long, here.";
    let mech = oaep(CKM_SHA256, CKG_MGF1_SHA256, b"");
    let ciphertext = encrypt(s, &mech, public, secret).unwrap();
    assert_eq!(ciphertext.len(), 256);
    assert_eq!(decrypt(s, &mech, private, &ciphertext).unwrap(), secret);
    let mut tampered = ciphertext.clone();
    tampered[100] ^= 1;
    expect_one_of(decrypt(s, &mech, private, &tampered), tampered_codes);
    expect_rv(decrypt_init(s, &oaep(CKM_SHA256, CKG_MGF1_SHA256, b"label"), private), CKR_MECHANISM_PARAM_INVALID);
    close(s).unwrap();
}

/// Envelope encryption: a service AES key wraps a local data key; the blob unwraps to a local
/// key again, which encrypts with AES-GCM locally.
fn envelope(slot: CK_SLOT_ID, label: &str) {
    let s = session(slot);
    let kek = gen_aes(s, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, label)]).unwrap();
    assert_eq!(get_ulong(s, kek, CKA_CLASS).unwrap(), CKO_SECRET_KEY);
    assert!(get_bool(s, kek, CKA_WRAP).unwrap() && !get_bool(s, kek, CKA_EXTRACTABLE).unwrap());
    expect_rv(get_attr(s, kek, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
    let kms_wrap = Mech::new(CKM_KEYFRONT_KMS_WRAP);
    let data_key = gen_aes(s, 32, &[ab(CKA_TOKEN, false), ab(CKA_EXTRACTABLE, true), ab(CKA_ENCRYPT, true)]).unwrap();
    let blob = wrap(s, &kms_wrap, kek, data_key).unwrap();
    assert!(blob.len() > 32, "the service's ciphertext blob");
    let unwrapped = unwrap(
        s,
        &kms_wrap,
        kek,
        &blob,
        &[au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_AES), ab(CKA_TOKEN, false), ab(CKA_DECRYPT, true)],
    )
    .unwrap();
    let gcm = Mech::gcm(&[3u8; 12], b"aad", 128);
    let bulk = vec![0x42u8; 100_000];
    let ciphertext = encrypt(s, &gcm, data_key, &bulk).unwrap();
    assert_eq!(decrypt(s, &gcm, unwrapped, &ciphertext).unwrap(), bulk);
    // Small data straight through the service key.
    let sealed = encrypt(s, &kms_wrap, kek, b"small secret").unwrap();
    assert_eq!(decrypt(s, &kms_wrap, kek, &sealed).unwrap(), b"small secret");
    expect_rv(encrypt(s, &kms_wrap, kek, &vec![0u8; 5000]), CKR_DATA_LEN_RANGE);
    // A blob the service did not make.
    let mut forged = blob.clone();
    let last = forged.len() - 3;
    forged[last] ^= 0x01;
    let attrs = [au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_AES), ab(CKA_TOKEN, false)];
    expect_one_of(unwrap(s, &kms_wrap, kek, &forged, &attrs), &[CKR_WRAPPED_KEY_INVALID, CKR_ENCRYPTED_DATA_INVALID]);
    // The service key does no local AES.
    expect_rv(encrypt_init(s, &gcm, kek), CKR_MECHANISM_INVALID);
    // A local key cannot do the service's mechanism.
    expect_one_of(encrypt_init(s, &kms_wrap, data_key), &[CKR_MECHANISM_INVALID, CKR_KEY_TYPE_INCONSISTENT]);
    close(s).unwrap();
}

/// `C_DestroyObject` removes the key from the service's list (AWS: scheduled for deletion).
fn destroy_in_service(slot: CK_SLOT_ID, label: &str) {
    let s = session(slot);
    let (public, private) = ec_pair(s, label);
    assert_eq!(find(s, &[av(CKA_LABEL, label)]).unwrap().len(), 2);
    destroy(s, private).unwrap();
    assert_eq!(find(s, &[av(CKA_LABEL, label)]).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    expect_one_of(sign_init(s, &Mech::new(CKM_ECDSA), private), &[CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID]);
    let _ = public;
    close(s).unwrap();
}

/// What a cloud token refuses, in PKCS#11's words.
fn token_rules(slot: CK_SLOT_ID) {
    let s = session(slot);
    let info = token_info(slot).unwrap();
    assert!(info.flags & CKF_TOKEN_INITIALIZED != 0 && info.flags & CKF_LOGIN_REQUIRED != 0);
    let mut count: CK_ULONG = 0;
    assert_rv(ck!(C_GetMechanismList, slot, ptr::null_mut(), &mut count), CKR_OK);
    let mut list = vec![0; count as usize];
    assert_rv(ck!(C_GetMechanismList, slot, list.as_mut_ptr(), &mut count), CKR_OK);
    assert!(list.contains(&CKM_KEYFRONT_KMS_WRAP) && list.contains(&CKM_ECDSA) && list.contains(&CKM_AES_GCM));
    // Keys are made in the service, never imported.
    expect_rv(create(s, &aes_tmpl(&[1u8; 32], &[ab(CKA_TOKEN, true)])), CKR_ATTRIBUTE_VALUE_INVALID);
    // A service key is never extractable.
    let attrs = [ab(CKA_TOKEN, true), ab(CKA_EXTRACTABLE, true)];
    expect_rv(gen_aes(s, 32, &attrs), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_rv(set_pin(s, CLOUD_PIN, b"another-pin"), CKR_FUNCTION_NOT_SUPPORTED);
    // Certificates only where the slot asks for them.
    assert_eq!(find(s, &[au(CKA_CLASS, CKO_CERTIFICATE)]).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    // A read-only session makes no service key.
    let ro = open(slot, false).unwrap();
    expect_rv(gen_aes(ro, 32, &[ab(CKA_TOKEN, true)]), CKR_SESSION_READ_ONLY);
    close(ro).unwrap();
    close(s).unwrap();
}

// ---------------------------------------------------------------------------------------------
// AWS KMS (LocalStack)

#[test]
fn aws_ec_keys_sign_in_the_service() {
    let _shared = KMS_LOCK.read();
    ec_sign_in_service(AWS, &unique("kf-test-ec-"));
}

#[test]
fn aws_rsa_keys_sign_in_the_service() {
    let _shared = KMS_LOCK.read();
    rsa_in_service(AWS, &unique("kf-test-rsa-"));
}

#[test]
fn aws_rsa_oaep_decrypts_in_the_service() {
    let _shared = KMS_LOCK.read();
    // Real AWS answers InvalidCiphertextException (CKR_ENCRYPTED_DATA_INVALID); LocalStack
    // answers 500 InternalError, a device error.
    rsa_oaep_in_service(AWS, &unique("kf-test-oaep-"), &[CKR_ENCRYPTED_DATA_INVALID, CKR_DEVICE_ERROR]);
}

#[test]
fn aws_envelope_encryption() {
    let _shared = KMS_LOCK.read();
    envelope(AWS, &unique("kf-test-kek-"));
}

#[test]
fn aws_destroy_schedules_deletion() {
    let _shared = KMS_LOCK.read();
    destroy_in_service(AWS, &unique("kf-test-gone-"));
}

#[test]
fn aws_token_rules() {
    let _shared = KMS_LOCK.read();
    token_rules(AWS);
}

#[test]
fn aws_ed25519_is_refused_without_the_key_spec() {
    let _shared = KMS_LOCK.read();
    let s = session(AWS);
    let r = gen_key_pair(
        s,
        &Mech::new(CKM_EC_EDWARDS_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), av(CKA_EC_PARAMS, hex(ED25519))],
        &[ab(CKA_TOKEN, true), ab(CKA_SIGN, true), av(CKA_LABEL, unique("kf-test-ed-"))],
    );
    // LocalStack has no ECC_NIST_EDWARDS25519 key spec.
    expect_one_of(r, &[CKR_MECHANISM_INVALID]);
    close(s).unwrap();
}

#[test]
fn aws_pin_sha256_guards_login() {
    let _shared = KMS_LOCK.read();
    cloud();
    let s = open(AWS_PIN, true).unwrap();
    expect_rv(login(s, CKU_USER, b"wrong-pin"), CKR_PIN_INCORRECT);
    // The private keys stay hidden until login.
    let label = unique("kf-pin-");
    expect_rv(gen_aes(s, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, &label)]), CKR_USER_NOT_LOGGED_IN);
    login(s, CKU_USER, CLOUD_PIN).unwrap();
    let kek = gen_aes(s, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, &label)]).unwrap();
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap(), vec![kek]);
    logout(s).unwrap();
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    close(s).unwrap();
}

#[test]
fn aws_alias_prefix_shows_only_those_keys() {
    let _shared = KMS_LOCK.read();
    // A key made on the slot with prefix kf-pin- is not one of kf-test-'s.
    let s = session(AWS_PIN);
    let label = unique("kf-pin-only-");
    gen_aes(s, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, &label)]).unwrap();
    close(s).unwrap();
    let s = session(AWS);
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap(), Vec::<CK_OBJECT_HANDLE>::new());
    close(s).unwrap();
}

#[test]
fn aws_refused_credentials_are_a_clean_error() {
    let _shared = KMS_LOCK.read();
    let s = session(AWS_BAD_CREDENTIALS);
    let r = find(s, &[au(CKA_CLASS, CKO_PRIVATE_KEY)]);
    // LocalStack accepts any signature by default; real AWS says UnrecognizedClient.
    match r {
        Ok(_) => eprintln!("note: the server accepted unknown credentials (LocalStack does not check signatures)"),
        Err(e) => assert_eq!(e.0, CKR_USER_NOT_LOGGED_IN, "{e:?}"),
    }
    close(s).unwrap();
}

/// The key list is served from the cache while the service is down; operations that need it
/// fail with `CKR_DEVICE_ERROR` within the timeout, and work again when it returns.
#[test]
fn aws_service_down_and_back() {
    let _alone = KMS_LOCK.write();
    let servers = cloud();
    let s = session(AWS);
    let label = unique("kf-test-outage-");
    let (_, private) = ec_pair(s, &label);
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap().len(), 2);
    // A wrap whose length was asked for: the blob is kept for the call that takes it.
    let kek = gen_aes(s, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, unique("kf-test-outage-kek-"))]).unwrap();
    let data_key = gen_aes(s, 32, &[ab(CKA_TOKEN, false), ab(CKA_EXTRACTABLE, true)]).unwrap();
    let kms_wrap = Mech::new(CKM_KEYFRONT_KMS_WRAP);
    let mut len: CK_ULONG = 0;
    kms_wrap.with(|mp| assert_rv(ck!(C_WrapKey, s, mp, kek, data_key, ptr::null_mut(), &mut len), CKR_OK));
    servers.control("stop-kms");
    // Within the refresh interval: no request, so finding works with the service down.
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap().len(), 2);
    let mut blob = vec![0u8; len as usize];
    let mut got = len;
    kms_wrap.with(|mp| assert_rv(ck!(C_WrapKey, s, mp, kek, data_key, blob.as_mut_ptr(), &mut got), CKR_OK));
    assert_eq!(got, len, "the blob of the length query, not a new wrap");
    // A new wrap needs the service.
    expect_rv(wrap(s, &kms_wrap, kek, data_key), CKR_DEVICE_ERROR);
    let started = std::time::Instant::now();
    expect_rv(sign(s, &Mech::new(CKM_ECDSA), private, &[1u8; 32]), CKR_DEVICE_ERROR);
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "bounded by timeout_ms");
    servers.control("start-kms");
    // LocalStack keeps keys in memory only: the key is gone, the slot works again.
    let label = unique("kf-test-back-");
    let (public, private) = ec_pair(s, &label);
    let sig = sign(s, &Mech::new(CKM_ECDSA), private, &[2u8; 32]).unwrap();
    verify(s, &Mech::new(CKM_ECDSA), public, &[2u8; 32], &sig).unwrap();
    close(s).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Vault Transit (OpenBao)

#[test]
fn vault_ec_keys_sign_in_the_service() {
    let _shared = VAULT_LOCK.read();
    ec_sign_in_service(VAULT, &unique("kf-ec-"));
}

#[test]
fn vault_rsa_keys_sign_in_the_service() {
    let _shared = VAULT_LOCK.read();
    rsa_in_service(VAULT, &unique("kf-rsa-"));
}

#[test]
fn vault_rsa_oaep_decrypts_in_the_service() {
    let _shared = VAULT_LOCK.read();
    rsa_oaep_in_service(VAULT, &unique("kf-oaep-"), &[CKR_ENCRYPTED_DATA_INVALID]);
}

#[test]
fn vault_envelope_encryption() {
    let _shared = VAULT_LOCK.read();
    envelope(VAULT, &unique("kf-kek-"));
}

#[test]
fn vault_destroy_deletes() {
    let _shared = VAULT_LOCK.read();
    destroy_in_service(VAULT, &unique("kf-gone-"));
}

#[test]
fn vault_token_rules() {
    let _shared = VAULT_LOCK.read();
    token_rules(VAULT);
}

#[test]
fn vault_ed25519_signs_in_the_service() {
    let _shared = VAULT_LOCK.read();
    use ed25519_dalek::Verifier;
    let s = session(VAULT);
    let label = unique("kf-ed-");
    let (public, private) = gen_key_pair(
        s,
        &Mech::new(CKM_EC_EDWARDS_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), av(CKA_EC_PARAMS, hex(ED25519)), av(CKA_LABEL, &label)],
        &[ab(CKA_TOKEN, true), ab(CKA_SIGN, true), av(CKA_LABEL, &label)],
    )
    .unwrap();
    let point = get_attr(s, public, CKA_EC_POINT).unwrap();
    assert_eq!(&point[..2], &[0x04, 32]);
    let key = ed25519_dalek::VerifyingKey::from_bytes(point[2..].try_into().unwrap()).unwrap();
    let message = b"pure Ed25519, signed by Vault";
    let sig = sign(s, &Mech::new(CKM_EDDSA), private, message).unwrap();
    verify(s, &Mech::new(CKM_EDDSA), public, message, &sig).unwrap();
    key.verify(message, &ed25519_dalek::Signature::from_slice(&sig).unwrap()).unwrap();
    close(s).unwrap();
}

/// Versions of a key appear as objects of their own: the latest under the key's name, older
/// ones with the version in the label, each signing with its own version.
#[test]
fn vault_versions_are_separate_objects() {
    let _shared = VAULT_LOCK.read();
    let servers = cloud();
    let s = session(VAULT_FRESH);
    let name = unique("kf-rot-");
    let (_, _) = ec_pair(s, &name);
    // Rotated behind keyfront's back, as an operator would.
    let addr = servers.var("KEYFRONT_TEST_VAULT_ADDR");
    let token = servers.var("KEYFRONT_TEST_VAULT_TOKEN");
    let status = ureq::post(format!("{addr}/v1/transit/keys/{name}/rotate")).header("X-Vault-Token", token).send_empty().expect("rotate").status();
    assert!(status.is_success());
    let latest = find(s, &[av(CKA_LABEL, &name), au(CKA_CLASS, CKO_PRIVATE_KEY)]).unwrap();
    let older = find(s, &[av(CKA_LABEL, format!("{name} v1")), au(CKA_CLASS, CKO_PRIVATE_KEY)]).unwrap();
    assert_eq!((latest.len(), older.len()), (1, 1), "latest under the name, v1 with its version");
    assert_ne!(get_attr(s, latest[0], CKA_ID).unwrap(), get_attr(s, older[0], CKA_ID).unwrap());
    for (label, private) in [(name.clone(), latest[0]), (format!("{name} v1"), older[0])] {
        let public = find(s, &[av(CKA_LABEL, &label), au(CKA_CLASS, CKO_PUBLIC_KEY)]).unwrap();
        assert_eq!(public.len(), 1);
        let sig = sign(s, &Mech::new(CKM_ECDSA), private, &[9u8; 32]).unwrap();
        verify(s, &Mech::new(CKM_ECDSA), public[0], &[9u8; 32], &sig).unwrap_or_else(|e| panic!("{label}: {e:?}"));
    }
    close(s).unwrap();
}

#[test]
fn vault_bad_token_is_a_clean_error() {
    let _shared = VAULT_LOCK.read();
    let s = session(VAULT_BAD_TOKEN);
    expect_rv(find(s, &[au(CKA_CLASS, CKO_PRIVATE_KEY)]), CKR_USER_NOT_LOGGED_IN);
    close(s).unwrap();
}

#[test]
fn vault_service_down_and_back() {
    let _alone = VAULT_LOCK.write();
    let servers = cloud();
    let s = session(VAULT);
    let label = unique("kf-outage-");
    let (_, private) = ec_pair(s, &label);
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap().len(), 2);
    servers.control("stop-vault");
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap().len(), 2);
    expect_rv(sign(s, &Mech::new(CKM_ECDSA), private, &[1u8; 32]), CKR_DEVICE_ERROR);
    servers.control("start-vault");
    let label = unique("kf-back-");
    let (public, private) = ec_pair(s, &label);
    let sig = sign(s, &Mech::new(CKM_ECDSA), private, &[2u8; 32]).unwrap();
    verify(s, &Mech::new(CKM_ECDSA), public, &[2u8; 32], &sig).unwrap();
    close(s).unwrap();
}

const CKM_KEYFRONT_KMS_WRAP: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x4b46_0001;

/// A service that stops answering holds up only the calls that wait for it: the other
/// slot, and cached lookups on the same slot, go on at once.
#[test]
fn a_stalled_service_blocks_nothing_else() {
    let _alone = KMS_LOCK.write();
    let _shared = VAULT_LOCK.read();
    let servers = cloud();
    let s = session(AWS);
    let label = unique("kf-test-stall-");
    let (_, private) = ec_pair(s, &label);
    assert_eq!(find(s, &[av(CKA_LABEL, &label)]).unwrap().len(), 2);
    servers.control("pause-kms");
    let stalled = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let r = sign(s, &Mech::new(CKM_ECDSA), private, &[1u8; 32]);
        (r, started.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Meanwhile: the other slot signs, and the stalled slot's cached objects are found.
    let started = std::time::Instant::now();
    let v = session(VAULT);
    let vault_label = unique("kf-meanwhile-");
    let (public, vprivate) = ec_pair(v, &vault_label);
    let sig = sign(v, &Mech::new(CKM_ECDSA), vprivate, &[3u8; 32]).unwrap();
    verify(v, &Mech::new(CKM_ECDSA), public, &[3u8; 32], &sig).unwrap();
    let other = open(AWS, false).unwrap();
    assert_eq!(find(other, &[av(CKA_LABEL, &label)]).unwrap().len(), 2);
    let meanwhile = started.elapsed();
    let (stalled_result, stalled_for) = stalled.join().unwrap();
    servers.control("resume-kms");
    expect_rv(stalled_result, CKR_DEVICE_ERROR);
    assert!(stalled_for >= std::time::Duration::from_secs(3), "the stalled call waited for its timeout ({stalled_for:?})");
    assert!(meanwhile < stalled_for, "the rest went on while the call waited ({meanwhile:?} vs {stalled_for:?})");
    close(other).unwrap();
    close(v).unwrap();
    close(s).unwrap();
}

/// `certificates = true`: each signing key has a certificate object with its CKA_ID, signed by
/// the key itself; OpenSSL parses it and checks the self-signature.
fn certificates_for_signing_keys(slot: CK_SLOT_ID, prefix: &str) {
    let s = session(slot);
    let ec = unique(&format!("{prefix}ec-"));
    let (_, ec_private) = ec_pair(s, &ec);
    let rsa = unique(&format!("{prefix}rsa-"));
    let (_, rsa_private) = gen_key_pair(
        s,
        &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &[ab(CKA_TOKEN, true), au(CKA_MODULUS_BITS, 2048), av(CKA_LABEL, &rsa)],
        &[ab(CKA_TOKEN, true), ab(CKA_SIGN, true), av(CKA_LABEL, &rsa)],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (label, private) in [(&ec, ec_private), (&rsa, rsa_private)] {
        let certs = find(s, &[au(CKA_CLASS, CKO_CERTIFICATE), av(CKA_LABEL, label)]).unwrap();
        assert_eq!(certs.len(), 1, "{label}: one certificate");
        let cert = certs[0];
        assert_eq!(get_attr(s, cert, CKA_ID).unwrap(), get_attr(s, private, CKA_ID).unwrap());
        assert_eq!(get_ulong(s, cert, CKA_CERTIFICATE_TYPE).unwrap(), CKC_X_509);
        assert!(!get_bool(s, cert, CKA_PRIVATE).unwrap());
        let der = get_attr(s, cert, CKA_VALUE).unwrap();
        // The same certificate every time it is read.
        assert_eq!(get_attr(s, cert, CKA_VALUE).unwrap(), der);
        let path = dir.path().join(format!("{label}.der"));
        std::fs::write(&path, &der).unwrap();
        let pem = dir.path().join(format!("{label}.pem"));
        let out = Command::new("openssl").args(["x509", "-inform", "DER", "-in"]).arg(&path).arg("-out").arg(&pem).output().unwrap();
        assert!(out.status.success(), "{label}: openssl x509: {}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new("openssl").args(["verify", "-check_ss_sig", "-CAfile"]).arg(&pem).arg(&pem).output().unwrap();
        assert!(out.status.success(), "{label}: openssl verify: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let text = Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(&pem).output().unwrap();
        assert!(String::from_utf8_lossy(&text.stdout).contains(label.as_str()), "{label}: subject CN");
        // A certificate goes with its key, not alone.
        expect_rv(destroy(s, cert), CKR_ACTION_PROHIBITED);
    }
    close(s).unwrap();
}

#[test]
fn aws_certificates_for_signing_keys() {
    let _shared = KMS_LOCK.read();
    certificates_for_signing_keys(AWS_CERTS, "kf-cert-");
}

#[test]
fn vault_certificates_for_signing_keys() {
    let _shared = VAULT_LOCK.read();
    certificates_for_signing_keys(VAULT_CERTS, "kf-cert-");
}

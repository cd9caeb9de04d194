//! Times the asymmetric mechanisms through keyfront's own `mechanism` functions (no PKCS#11
//! ABI, no sessions), to compare the default RustCrypto build with the `aws-lc` feature:
//!
//! ```text
//! cargo run --release --example asym_speed
//! CARGO_TARGET_DIR=target/aws-lc cargo run --release --features aws-lc --example asym_speed
//! ```
//!
//! Times are the calling thread's CPU time (so other work on the machine matters less), per
//! operation, over `ASYM_SECONDS` (default 1) of CPU time per case. `ASYM_CASES` picks cases
//! by substring (comma-separated).

use std::time::Duration;

use cpu_time::ThreadTime;
use cryptoki_sys::*;
use keyfront::mechanism::{
    asym_cipher, asym_signer, derive, generate_key_pair, Ecdh1DeriveParams, Mechanism, MechanismParam, RsaOaepParams,
    RsaPssParams,
};
use keyfront::object::{encode_ulong, AttributeTemplate, Object};

fn object(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, t: &AttributeTemplate) -> Object {
    let mut o = Object::new();
    o.set_ulong(CKA_CLASS, class);
    o.set_ulong(CKA_KEY_TYPE, key_type);
    for (ty, v) in t.iter() {
        o.set(ty, v.to_vec());
    }
    o
}

fn pair(kind: CK_MECHANISM_TYPE, key_type: CK_KEY_TYPE, public: AttributeTemplate) -> (Object, Object) {
    let parts = generate_key_pair(&Mechanism::new(kind, MechanismParam::None), &public, &AttributeTemplate::new())
        .expect("key pair");
    (object(CKO_PRIVATE_KEY, key_type, &parts.private), object(CKO_PUBLIC_KEY, key_type, &parts.public))
}

/// Runs `op` until `budget` of CPU time has passed (at least 3 times); µs per operation.
fn time(budget: Duration, mut op: impl FnMut()) -> (f64, u64) {
    op(); // warm-up: parses and caches the key
    let start = ThreadTime::now();
    let mut n = 0u64;
    while n < 3 || start.elapsed() < budget {
        op();
        n += 1;
    }
    (start.elapsed().as_secs_f64() * 1e6 / n as f64, n)
}

fn main() {
    let budget = Duration::from_secs_f64(std::env::var("ASYM_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0));
    let only: Vec<String> = std::env::var("ASYM_CASES")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let backend = if cfg!(feature = "aws-lc") { "aws-lc" } else { "RustCrypto" };
    println!("backend: {backend}");
    println!("{:<34} {:>12} {:>10}", "case", "µs/op", "ops/s");
    let report = |name: &str, op: &mut dyn FnMut()| {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            return;
        }
        let (us, _) = time(budget, op);
        println!("{name:<34} {us:>12.1} {:>10.0}", 1e6 / us);
    };
    let m = |kind| Mechanism::new(kind, MechanismParam::None);
    let data = b"the quick brown fox jumps over the lazy dog".to_vec();

    // ---- RSA-2048
    let rsa_template = AttributeTemplate::new().with(CKA_MODULUS_BITS, encode_ulong(2048));
    let (rsa_private, rsa_public) = pair(CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, rsa_template.clone());
    let sign = |mech: &Mechanism, key: &Object, data: &[u8]| {
        let mut s = asym_signer(mech, key, true).unwrap();
        s.update(data).unwrap();
        s.sign().unwrap()
    };
    let verify = |mech: &Mechanism, key: &Object, data: &[u8], sig: &[u8]| {
        let mut v = asym_signer(mech, key, false).unwrap();
        v.update(data).unwrap();
        v.verify(sig).unwrap();
    };
    let pkcs1 = m(CKM_SHA256_RSA_PKCS);
    let pss = Mechanism::new(
        CKM_SHA256_RSA_PKCS_PSS,
        MechanismParam::RsaPss(RsaPssParams { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, salt_len: 32 }),
    );
    let oaep = Mechanism::new(
        CKM_RSA_PKCS_OAEP,
        MechanismParam::RsaOaep(RsaOaepParams { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, label: Vec::new() }),
    );
    let crypt = |mech: &Mechanism, key: &Object, encrypt: bool, data: &[u8]| {
        let mut c = asym_cipher(mech, key, encrypt).unwrap();
        let mut out = c.update(data).unwrap();
        out.extend_from_slice(&c.finish().unwrap());
        out
    };
    report("RSA-2048 sign PKCS#1 v1.5 SHA-256", &mut || {
        sign(&pkcs1, &rsa_private, &data);
    });
    report("RSA-2048 sign PSS SHA-256", &mut || {
        sign(&pss, &rsa_private, &data);
    });
    let sig = sign(&pkcs1, &rsa_private, &data);
    report("RSA-2048 verify PKCS#1 v1.5 SHA-256", &mut || verify(&pkcs1, &rsa_public, &data, &sig));
    let pss_sig = sign(&pss, &rsa_private, &data);
    report("RSA-2048 verify PSS SHA-256", &mut || verify(&pss, &rsa_public, &data, &pss_sig));
    report("RSA-2048 encrypt OAEP SHA-256", &mut || {
        crypt(&oaep, &rsa_public, true, &data[..32]);
    });
    let ct = crypt(&oaep, &rsa_public, true, &data[..32]);
    report("RSA-2048 decrypt OAEP SHA-256", &mut || {
        crypt(&oaep, &rsa_private, false, &ct);
    });
    let ct1 = crypt(&m(CKM_RSA_PKCS), &rsa_public, true, &data[..32]);
    report("RSA-2048 decrypt PKCS#1 v1.5", &mut || {
        crypt(&m(CKM_RSA_PKCS), &rsa_private, false, &ct1);
    });

    // ---- P-256
    let p256 = AttributeTemplate::new().with(CKA_EC_PARAMS, b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07".to_vec());
    let (ec_private, ec_public) = pair(CKM_EC_KEY_PAIR_GEN, CKK_EC, p256.clone());
    let ecdsa = m(CKM_ECDSA_SHA256);
    report("P-256 sign ECDSA SHA-256", &mut || {
        sign(&ecdsa, &ec_private, &data);
    });
    let ec_sig = sign(&ecdsa, &ec_private, &data);
    report("P-256 verify ECDSA SHA-256", &mut || verify(&ecdsa, &ec_public, &data, &ec_sig));
    let (_, peer_public) = pair(CKM_EC_KEY_PAIR_GEN, CKK_EC, p256.clone());
    let ecdh = Mechanism::new(
        CKM_ECDH1_DERIVE,
        MechanismParam::Ecdh1Derive(Ecdh1DeriveParams {
            kdf: CKD_NULL,
            shared_data: Vec::new(),
            public_data: peer_public.get(CKA_EC_POINT).unwrap().to_vec(),
        }),
    );
    report("P-256 ECDH derive", &mut || {
        derive(&ecdh, &ec_private, None).unwrap();
    });

    // ---- Ed25519
    let (ed_private, ed_public) = pair(CKM_EC_EDWARDS_KEY_PAIR_GEN, CKK_EC_EDWARDS, AttributeTemplate::new());
    let eddsa = m(CKM_EDDSA);
    report("Ed25519 sign", &mut || {
        sign(&eddsa, &ed_private, &data);
    });
    let ed_sig = sign(&eddsa, &ed_private, &data);
    report("Ed25519 verify", &mut || verify(&eddsa, &ed_public, &data, &ed_sig));

    // ---- key generation (fresh objects each time: includes nothing cached)
    report("P-256 key pair generation", &mut || {
        pair(CKM_EC_KEY_PAIR_GEN, CKK_EC, p256.clone());
    });
    for bits in [2048, 3072, 4096] {
        let template = AttributeTemplate::new().with(CKA_MODULUS_BITS, encode_ulong(bits));
        report(&format!("RSA-{bits} key pair generation"), &mut || {
            pair(CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, template.clone());
        });
    }
    // First use of a new key object: parsing (and, with aws-lc, building its AWS-LC key).
    report("RSA-2048 first sign on a new object", &mut || {
        let fresh = rsa_private.clone();
        sign(&pkcs1, &fresh, &data);
    });
}

//! `CKA_EC_PARAMS` and `CKA_EC_POINT` parsing: `mechanism::complete_key` on P-256 and
//! Ed25519 public and private key objects with fuzzed parameters, points and scalars, and
//! `CKM_ECDH1_DERIVE` with a fuzzed peer point. What is accepted must also work: sign or
//! verify with it, and complete again to the same attributes.
//!
//! Input: `mode` (0 EC public, 1 EC private, 2 Ed25519 public, 3 Ed25519 private, 4 ECDH1
//! derive), then for modes 0–3 `params` (0 P-256 OID, 1 Ed25519 OID, 2 "edwards25519",
//! 3 P-384, 4 X25519, 5 absent, 6 empty, 7 the next byte's count of bytes) and the rest is
//! the point or the private value; for mode 4 `kdf`, `length`, `shared` (a count), then the
//! shared data and the rest, the peer's public data.
#![no_main]

use std::sync::OnceLock;

use keyfront::mechanism::{self, Ecdh1DeriveParams, EddsaParams, Mechanism, MechanismParam};
use keyfront::object::Object;
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn key_object(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, attrs: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> Object {
    let mut o = Object::new();
    o.set_ulong(CKA_CLASS, class);
    o.set_ulong(CKA_KEY_TYPE, key_type);
    for (ty, v) in attrs {
        o.set(*ty, v.to_vec());
    }
    o
}

fn ec_private() -> &'static Object {
    static KEY: OnceLock<Object> = OnceLock::new();
    KEY.get_or_init(|| {
        let (key_type, attrs) = mechanism::private_key_from_pkcs8(&fixtures::hex(fixtures::EC_A_PKCS8)).expect("fixture");
        let mut o = key_object(CKO_PRIVATE_KEY, key_type, &[]);
        for (ty, v) in attrs.iter() {
            o.set(ty, v.to_vec());
        }
        mechanism::complete_key(&mut o).expect("fixture key");
        o
    })
}

fn none(kind: CK_MECHANISM_TYPE) -> Mechanism {
    Mechanism::new(kind, MechanismParam::None)
}

/// A completed key in use: signatures made verify, garbage does not, and the attributes are
/// a fixed point of `complete_key`.
fn exercise(object: &Object) {
    let key_type = object.key_type().expect("key type");
    let private = object.class() == CKO_PRIVATE_KEY;
    assert!(object.get(CKA_PUBLIC_KEY_INFO).is_some_and(|v| !v.is_empty()), "completed key without CKA_PUBLIC_KEY_INFO");
    let params = object.get(CKA_EC_PARAMS).expect("completed key without CKA_EC_PARAMS");
    assert!(params == fixtures::P256_PARAMS || params == fixtures::ED25519_PARAMS, "CKA_EC_PARAMS not normalised");

    let mut again = object.clone();
    mechanism::complete_key(&mut again).expect("a completed key completes again");
    assert!(again.iter().eq(object.iter()), "complete_key is not idempotent");

    let mechanism = match key_type {
        CKK_EC => none(CKM_ECDSA_SHA256),
        _ => Mechanism::new(CKM_EDDSA, MechanismParam::Eddsa(EddsaParams { prehash: false, context: Vec::new() })),
    };
    let message = b"keyfront fuzz";
    if private {
        let mut signer = mechanism::asym_signer(&mechanism, object, true).expect("sign with a completed private key");
        let signature = signer.sign_once(message).expect("sign");
        assert_eq!(signature.len(), 64);
        let mut verifier = mechanism::asym_signer(&mechanism, object, false).expect("verify with a private key");
        verifier.verify_once(message, &signature).expect("own signature verifies");
        if key_type == CKK_EC {
            let peer = fixtures::hex(fixtures::EC_B_POINT);
            let m = Mechanism::new(
                CKM_ECDH1_DERIVE,
                MechanismParam::Ecdh1Derive(Ecdh1DeriveParams { kdf: CKD_NULL, shared_data: Vec::new(), public_data: peer }),
            );
            assert_eq!(mechanism::derive(&m, object, None).expect("ECDH with a completed key").len(), 32);
        }
    } else {
        let mut verifier = mechanism::asym_signer(&mechanism, object, false).expect("verify with a completed public key");
        assert!(verifier.verify_once(message, &[0x42; 64]).is_err(), "a made-up signature verified");
    }
}

fn params(choice: u8, rest: &[u8]) -> (Option<Vec<u8>>, &[u8]) {
    let fixed = |p: &[u8]| (Some(p.to_vec()), rest);
    match choice % 8 {
        0 => fixed(fixtures::P256_PARAMS),
        1 => fixed(fixtures::ED25519_PARAMS),
        2 => fixed(fixtures::ED25519_NAME_PARAMS),
        3 => fixed(fixtures::P384_PARAMS),
        4 => fixed(fixtures::X25519_PARAMS),
        5 => (None, rest),
        6 => fixed(&[]),
        _ => {
            let n = (rest.first().copied().unwrap_or(0) as usize).min(rest.len().saturating_sub(1));
            let rest = rest.get(1..).unwrap_or_default();
            (Some(rest[..n].to_vec()), &rest[n..])
        }
    }
}

const KDFS: [CK_EC_KDF_TYPE; 8] = [CKD_NULL, CKD_SHA1_KDF, CKD_SHA224_KDF, CKD_SHA256_KDF, CKD_SHA384_KDF, CKD_SHA512_KDF, 0x8000_0001, 0];
/// `CKA_VALUE_LEN` of the derived key as the core passes it (any CK_ULONG a caller sends).
const LENGTHS: [Option<usize>; 12] =
    [None, Some(0), Some(1), Some(16), Some(31), Some(32), Some(33), Some(48), Some(64), Some(4096), Some(1 << 40), Some(usize::MAX)];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mode = mode % 5;
    if mode == 4 {
        let byte = |i: usize| rest.get(i).copied().unwrap_or(0);
        let kdf = KDFS[byte(0) as usize % KDFS.len()];
        let len = LENGTHS[byte(1) as usize % LENGTHS.len()];
        let body = rest.get(3..).unwrap_or_default();
        let n = (byte(2) as usize).min(body.len());
        let m = Mechanism::new(
            CKM_ECDH1_DERIVE,
            MechanismParam::Ecdh1Derive(Ecdh1DeriveParams { kdf, shared_data: body[..n].to_vec(), public_data: body[n..].to_vec() }),
        );
        let derived = mechanism::derive(&m, ec_private(), len);
        debug!("derive: {:?}", derived.as_ref().map(|s| s.len()).map_err(|e| e.to_string()));
        if let Ok(secret) = derived {
            assert_eq!(Some(secret.len()), len.or(Some(32)), "derived key of the wrong length");
        }
        return;
    }
    let Some((&choice, rest)) = rest.split_first() else { return };
    let (params, value) = params(choice, rest);
    let (class, key_type, value_type) = match mode {
        0 => (CKO_PUBLIC_KEY, CKK_EC, CKA_EC_POINT),
        1 => (CKO_PRIVATE_KEY, CKK_EC, CKA_VALUE),
        2 => (CKO_PUBLIC_KEY, CKK_EC_EDWARDS, CKA_EC_POINT),
        _ => (CKO_PRIVATE_KEY, CKK_EC_EDWARDS, CKA_VALUE),
    };
    let mut object = key_object(class, key_type, &[(value_type, value)]);
    if let Some(p) = &params {
        object.set(CKA_EC_PARAMS, p.clone());
    }
    match mechanism::complete_key(&mut object) {
        Ok(()) => {
            debug!("mode {mode}: accepted");
            exercise(&object);
        }
        Err(e) => debug!("mode {mode}: refused: {e}"),
    }
});

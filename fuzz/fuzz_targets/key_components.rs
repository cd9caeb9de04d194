//! `C_CreateObject` of RSA, P-256 and Ed25519 key objects on the Rust side: the fixture keys'
//! components, each kept, dropped, emptied, replaced or mutated by the input, plus any extra
//! attributes, through `policy::new_object(Origin::Create)` (which runs `complete_key`).
//! A key that is accepted is then used: a private key signs and its signature verifies, a
//! public key refuses a made-up signature and encrypts, RSA decrypts what it encrypted.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use keyfront::mechanism::{self, Mechanism, MechanismParam, RsaOaepParams, RsaPssParams};
use keyfront::object::policy::{self, Caller, Origin};
use keyfront::object::{AttributeTemplate, Object};
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Change {
    Absent,
    Empty,
    Replace(Vec<u8>),
    /// XOR one byte (index wraps).
    Flip { at: u16, xor: u8 },
    Truncate(u16),
    LeadingZeros(u8),
    Append(Vec<u8>),
    /// The value of another component of the same key.
    CopyOf(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// 0 RSA public, 1 RSA private, 2 P-256 public, 3 P-256 private, 4 Ed25519 public,
    /// 5 Ed25519 private.
    key: u8,
    changes: Vec<(u8, Change)>,
    extra: Vec<Attr>,
    operation: u8,
    data: Vec<u8>,
}

/// Each fixture key as its class, key type and components.
struct Fixture {
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
    components: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
}

fn fixtures_list() -> &'static [Fixture] {
    static LIST: OnceLock<Vec<Fixture>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut list = Vec::new();
        for pkcs8 in [fixtures::hex(fixtures::RSA_PKCS8), fixtures::hex(fixtures::EC_A_PKCS8), fixtures::ed25519_pkcs8()] {
            let (key_type, attrs) = mechanism::private_key_from_pkcs8(&pkcs8).expect("fixture");
            let mut private = Object::new();
            private.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
            private.set_ulong(CKA_KEY_TYPE, key_type);
            for (ty, v) in attrs.iter() {
                private.set(ty, v.to_vec());
            }
            mechanism::complete_key(&mut private).expect("fixture key");
            let get = |ty| private.get(ty).expect("fixture component").to_vec();
            let spki = get(CKA_PUBLIC_KEY_INFO);
            let (public_types, private_types): (Vec<_>, Vec<_>) = match key_type {
                CKK_RSA => (
                    vec![CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PUBLIC_KEY_INFO],
                    vec![
                        CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1,
                        CKA_EXPONENT_2, CKA_COEFFICIENT, CKA_PUBLIC_KEY_INFO,
                    ],
                ),
                _ => (vec![CKA_EC_PARAMS, CKA_PUBLIC_KEY_INFO], vec![CKA_EC_PARAMS, CKA_VALUE, CKA_PUBLIC_KEY_INFO]),
            };
            let mut public: Vec<_> = public_types.iter().map(|ty| (*ty, get(*ty))).collect();
            match key_type {
                CKK_RSA => {
                    let bits = (get(CKA_MODULUS).len() * 8) as CK_ULONG;
                    public.push((CKA_MODULUS_BITS, ulong(bits)));
                }
                CKK_EC => public.push((CKA_EC_POINT, fixtures::octet_string(&spki[spki.len() - 65..]))),
                _ => public.push((CKA_EC_POINT, fixtures::octet_string(&spki[spki.len() - 32..]))),
            }
            list.push(Fixture { class: CKO_PUBLIC_KEY, key_type, components: public });
            list.push(Fixture {
                class: CKO_PRIVATE_KEY,
                key_type,
                components: private_types.iter().map(|ty| (*ty, get(*ty))).collect(),
            });
        }
        list
    })
}

fn apply(components: &mut Vec<(CK_ATTRIBUTE_TYPE, Option<Vec<u8>>)>, index: u8, change: &Change) {
    let n = components.len();
    let i = index as usize % n;
    let current = components[i].1.clone();
    components[i].1 = match change {
        Change::Absent => None,
        Change::Empty => Some(Vec::new()),
        Change::Replace(v) => Some(v.clone()),
        Change::Flip { at, xor } => current.map(|mut v| {
            if !v.is_empty() {
                let at = *at as usize % v.len();
                v[at] ^= xor;
            }
            v
        }),
        Change::Truncate(len) => current.map(|mut v| {
            v.truncate(*len as usize);
            v
        }),
        Change::LeadingZeros(k) => current.map(|v| {
            let mut out = vec![0u8; *k as usize % 16];
            out.extend_from_slice(&v);
            out
        }),
        Change::Append(extra) => current.map(|mut v| {
            v.extend_from_slice(extra);
            v
        }),
        Change::CopyOf(j) => components[*j as usize % n].1.clone(),
    };
}

/// Mechanisms per key type, with their parameters.
fn mechanisms(key_type: CK_KEY_TYPE) -> Vec<Mechanism> {
    let none = |k| Mechanism::new(k, MechanismParam::None);
    match key_type {
        CKK_RSA => vec![
            none(CKM_SHA256_RSA_PKCS),
            none(CKM_RSA_PKCS),
            Mechanism::new(CKM_SHA256_RSA_PKCS_PSS, MechanismParam::RsaPss(RsaPssParams { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, salt_len: 32 })),
            Mechanism::new(CKM_RSA_PKCS_OAEP, MechanismParam::RsaOaep(RsaOaepParams { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, label: b"l".to_vec() })),
            none(CKM_RSA_X_509),
        ],
        CKK_EC => vec![none(CKM_ECDSA_SHA256), none(CKM_ECDSA)],
        _ => vec![none(CKM_EDDSA)],
    }
}

fn is_signature(kind: CK_MECHANISM_TYPE) -> bool {
    !matches!(kind, CKM_RSA_PKCS_OAEP)
}

fn is_encryption(kind: CK_MECHANISM_TYPE) -> bool {
    matches!(kind, CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP | CKM_RSA_X_509)
}

fn exercise(object: &Object, operation: u8, data: &[u8]) {
    let key_type = object.key_type().expect("key type");
    let list = mechanisms(key_type);
    let m = &list[operation as usize % list.len()];
    let private = object.class() == CKO_PRIVATE_KEY;
    let len = mechanism::asym_output_len(object).expect("output length of an accepted key");
    // RSA takes inputs shorter than the modulus (OAEP with SHA-256: 66 bytes shorter).
    let data = if key_type == CKK_RSA { &data[..data.len().min(len.saturating_sub(66))] } else { data };
    if is_signature(m.kind) {
        if private {
            let mut signer = mechanism::asym_signer(m, object, true).expect("sign with an accepted private key");
            if let Ok(signature) = signer.sign_once(data) {
                assert_eq!(signature.len(), len, "{:#x}: signature length", m.kind);
                let mut verifier = mechanism::asym_signer(m, object, false).expect("verify with a private key");
                assert!(verifier.verify_once(data, &signature).is_ok(), "{:#x}: an accepted key's signature does not verify", m.kind);
            }
        } else if let Ok(mut verifier) = mechanism::asym_signer(m, object, false) {
            let made_up = vec![0x42u8; len];
            assert!(verifier.verify_once(data, &made_up).is_err() || m.kind == CKM_RSA_X_509, "a made-up signature verified");
        }
    }
    if is_encryption(m.kind) {
        let Ok(mut c) = mechanism::asym_cipher(m, object, true) else { return };
        let Ok(ciphertext) = c.once(data) else { return };
        assert_eq!(ciphertext.len(), len, "{:#x}: ciphertext length", m.kind);
        if private && m.kind != CKM_RSA_X_509 {
            let mut d = mechanism::asym_cipher(m, object, false).expect("decrypt with an accepted private key");
            let plain = d.once(&ciphertext).expect("decrypt own ciphertext");
            assert_eq!(plain.as_slice(), data, "{:#x}: decryption gives other bytes", m.kind);
        }
    }
}

fuzz_target!(|input: Input| {
    let list = fixtures_list();
    let fixture = &list[input.key as usize % list.len()];
    let mut components: Vec<(CK_ATTRIBUTE_TYPE, Option<Vec<u8>>)> =
        fixture.components.iter().map(|(ty, v)| (*ty, Some(v.clone()))).collect();
    for (index, change) in &input.changes {
        apply(&mut components, *index, change);
    }
    let mut template = AttributeTemplate::new()
        .with(CKA_CLASS, ulong(fixture.class))
        .with(CKA_KEY_TYPE, ulong(fixture.key_type))
        .with(CKA_TOKEN, flag(false));
    for (ty, v) in &components {
        if let Some(v) = v {
            template.push(*ty, v.clone());
        }
    }
    for a in &input.extra {
        template.push(a.ty.get(), a.value.bytes());
    }
    let object = match policy::new_object(&template, Origin::Create, &AttributeTemplate::new(), Caller { is_so: false }) {
        Ok(object) => object,
        Err(e) => {
            debug!("key {}: refused: {e}", input.key);
            return;
        }
    };
    debug!("key {}: accepted", input.key);
    assert_eq!(object.class(), fixture.class);
    exercise(&object, input.operation, &input.data);
});

//! What `C_UnwrapKey` does with a wrapped blob, on the Rust side: decrypt it with
//! AES key wrap (RFC 3394, RFC 5649, PKCS#7-padded 3394), CBC-PAD, GCM or RSA (OAEP,
//! PKCS#1 v1.5), then read the result as a PKCS#8 PrivateKeyInfo
//! (`mechanism::private_key_from_pkcs8`) or a secret key value, and build the object with
//! `policy::new_object(Origin::Unwrap)`. A round-trip mode wraps the input first, so valid
//! wrappings of fuzzed PKCS#8 reach the parser too.
//!
//! Input: `mode`, `key`, `param`, `class`, then the blob. `mode`'s low 3 bits pick the
//! mechanism (0: none, the blob is the plaintext; 1 KW, 2 KWP, 3 KW_PAD, 4 CBC_PAD, 5 GCM,
//! 6 RSA OAEP, 7 RSA PKCS#1 v1.5); bit 7 asks for the round trip. `key` picks the AES key's
//! length (16, 24, 32 or a bad one). `param`: 0 none, 1 the wrap's default IV, 2 a 16-byte
//! IV, 3 a GCM IV with a 128-bit tag, 4 a GCM IV with a 96-bit tag and AAD. `class`: 0 a
//! private key, 1 an AES key, 2 a generic secret.
#![no_main]

use std::sync::OnceLock;

use keyfront::mechanism::{self, AesGcmParams, Mechanism, MechanismParam, RsaOaepParams};
use keyfront::object::policy::{self, Caller, Origin};
use keyfront::object::{encode_ulong, AttributeTemplate, Object};
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

const MECHANISMS: [CK_MECHANISM_TYPE; 8] = [
    0,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_KWP,
    CKM_AES_KEY_WRAP_PAD,
    CKM_AES_CBC_PAD,
    CKM_AES_GCM,
    CKM_RSA_PKCS_OAEP,
    CKM_RSA_PKCS,
];

fn rsa_private() -> &'static Object {
    static KEY: OnceLock<Object> = OnceLock::new();
    KEY.get_or_init(|| {
        let (key_type, attrs) = mechanism::private_key_from_pkcs8(&fixtures::hex(fixtures::RSA_PKCS8)).expect("fixture");
        let mut o = Object::new();
        o.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        o.set_ulong(CKA_KEY_TYPE, key_type);
        for (ty, v) in attrs.iter() {
            o.set(ty, v.to_vec());
        }
        mechanism::complete_key(&mut o).expect("fixture key");
        o
    })
}

fn param(kind: CK_MECHANISM_TYPE, choice: u8) -> MechanismParam {
    match choice % 5 {
        0 => MechanismParam::None,
        1 if kind == CKM_AES_KEY_WRAP_KWP => MechanismParam::Bytes(vec![0xA6, 0x59, 0x59, 0xA6]),
        1 => MechanismParam::Bytes(vec![0xA6; 8]),
        2 => MechanismParam::Bytes((0u8..16).collect()),
        3 => MechanismParam::Gcm(AesGcmParams { iv: vec![7; 12], aad: Vec::new(), tag_bits: 128 }),
        _ => MechanismParam::Gcm(AesGcmParams { iv: vec![9; 12], aad: b"aad".to_vec(), tag_bits: 96 }),
    }
}

/// The RSA mechanisms take their own parameters whatever `param` says.
fn mechanism_for(kind: CK_MECHANISM_TYPE, choice: u8) -> Mechanism {
    let param = match kind {
        CKM_RSA_PKCS_OAEP => MechanismParam::RsaOaep(RsaOaepParams { hash: CKM_SHA256, mgf: CKG_MGF1_SHA256, label: Vec::new() }),
        CKM_RSA_PKCS => MechanismParam::None,
        _ => param(kind, choice),
    };
    Mechanism::new(kind, param)
}

fn run(cipher: &mut dyn mechanism::Cipher, input: &[u8]) -> Option<Vec<u8>> {
    cipher.once(input).ok().map(|s| s.to_vec())
}

/// Encrypts or decrypts `input`; also in two parts, which must give the same answer.
fn crypt(m: &Mechanism, aes_key: &[u8], input: &[u8], encrypt: bool) -> Option<Vec<u8>> {
    if matches!(m.kind, CKM_RSA_PKCS_OAEP | CKM_RSA_PKCS) {
        let mut c = mechanism::asym_cipher(m, rsa_private(), encrypt).ok()?;
        return run(c.as_mut(), input);
    }
    let once = run(mechanism::cipher(m, aes_key, encrypt).ok()?.as_mut(), input);
    let mut parts = mechanism::cipher(m, aes_key, encrypt).expect("a cipher that started once starts again");
    let half = input.len() / 2;
    let split = (|| {
        let mut out = parts.update(&input[..half]).ok()?.to_vec();
        out.extend_from_slice(&parts.update(&input[half..]).ok()?);
        out.extend_from_slice(&parts.finish().ok()?);
        Some(out)
    })();
    assert_eq!(once, split, "{:#x}: one part and two parts differ", m.kind);
    once
}

/// `C_UnwrapKey` after the decryption: the value as the class's key material.
fn unwrapped(value: &[u8], class: u8) {
    let caller = Caller { is_so: false };
    let template = |class: CK_OBJECT_CLASS, key_type: Option<CK_KEY_TYPE>| {
        let mut t = AttributeTemplate::new().with(CKA_CLASS, encode_ulong(class)).with(CKA_TOKEN, flag(false));
        if let Some(kt) = key_type {
            t.push(CKA_KEY_TYPE, encode_ulong(kt));
        }
        t
    };
    match class % 3 {
        0 => {
            let (key_type, parts) = match mechanism::private_key_from_pkcs8(value) {
                Ok(read) => read,
                Err(e) => {
                    debug!("PKCS#8 refused: {e}");
                    return;
                }
            };
            debug!("PKCS#8 key of type {key_type:#x}");
            assert!(mechanism::is_asymmetric(key_type));
            let implied = parts.with(CKA_KEY_TYPE, encode_ulong(key_type));
            // A PKCS#8 key that the object rules then refuse is a clean error for the caller.
            let Ok(object) = policy::new_object(&template(CKO_PRIVATE_KEY, None), Origin::Unwrap, &implied, caller) else {
                return;
            };
            // It wraps again into a PKCS#8 that reads back to the same key.
            let again = mechanism::private_key_to_pkcs8(&object).expect("wrap an unwrapped key");
            let (kt2, parts2) = mechanism::private_key_from_pkcs8(&again).expect("re-read own PKCS#8");
            assert_eq!(kt2, key_type);
            for (ty, v) in parts2.iter() {
                assert_eq!(object.get(ty), Some(v), "attribute {ty:#x} changed in a PKCS#8 round trip");
            }
        }
        1 => {
            let implied = AttributeTemplate::new().with(CKA_VALUE, value.to_vec());
            let _ = policy::new_object(&template(CKO_SECRET_KEY, Some(CKK_AES)), Origin::Unwrap, &implied, caller);
        }
        _ => {
            let implied = AttributeTemplate::new().with(CKA_VALUE, value.to_vec());
            let _ = policy::new_object(&template(CKO_SECRET_KEY, Some(CKK_GENERIC_SECRET)), Origin::Unwrap, &implied, caller);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (mode, key, param_choice, class) = (byte(0), byte(1), byte(2), byte(3));
    let blob = data.get(4..).unwrap_or_default();
    let kind = MECHANISMS[(mode & 7) as usize];
    let aes_key: Vec<u8> = (0..[16usize, 24, 32, 20][key as usize % 4] as u8).collect();

    if kind == 0 {
        unwrapped(blob, class);
        return;
    }
    let m = mechanism_for(kind, param_choice);
    if mode & 0x80 != 0 {
        // Wrap the input, unwrap it: the same bytes come back.
        let Some(wrapped) = crypt(&m, &aes_key, blob, true) else { return };
        let back = crypt(&m, &aes_key, &wrapped, false).expect("unwrapping what was just wrapped");
        assert_eq!(back, blob, "{kind:#x}: round trip changed the value");
        unwrapped(&back, class);
    } else if let Some(value) = crypt(&m, &aes_key, blob, false) {
        unwrapped(&value, class);
    }
});

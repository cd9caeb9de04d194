//! The DER a key service hands over: public keys (`public_key_from_spki`, which makes the
//! cloud token's key objects from AWS GetPublicKey or Vault's `public_key`) and ECDSA
//! signatures (`ecdsa_der_to_raw`, AWS Sign and Vault `sign/` with `marshaling_algorithm =
//! asn1`).
//!
//! Input: `mode` (0 SubjectPublicKeyInfo, 1 ECDSA signature), `half` (the half length asked
//! of `ecdsa_der_to_raw`: 32 for P-256, else any), then the DER.
//!
//! Checked: an accepted public key gives `CKA_PUBLIC_KEY_INFO` that parses again to the same
//! attributes, and a public key object of those attributes passes `complete_key` unchanged in
//! its key type (what the core and the local verification rely on); an accepted signature is
//! 64 bytes that p256 takes as a signature and converts back to the same DER round trip;
//! any half length other than 32 is refused.
#![no_main]

use keyfront::backend::cloud::ecdsa_der_to_raw;
use keyfront::mechanism::{self, keys::public_key_from_spki};
use keyfront::object::Object;
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn spki(der: &[u8]) {
    let Ok((key_type, attrs)) = public_key_from_spki(der) else {
        debug!("SPKI refused");
        return;
    };
    debug!("SPKI accepted: key type {key_type:#x}");
    assert!(matches!(key_type, CKK_RSA | CKK_EC | CKK_EC_EDWARDS), "key type {key_type:#x}");
    let info = attrs.get(CKA_PUBLIC_KEY_INFO).expect("an accepted key without CKA_PUBLIC_KEY_INFO");
    let (again_type, again) = public_key_from_spki(info).expect("CKA_PUBLIC_KEY_INFO of an accepted key does not parse again");
    assert_eq!(again_type, key_type);
    assert!(again.iter().eq(attrs.iter()), "CKA_PUBLIC_KEY_INFO parses to other attributes");
    let mut object = Object::new();
    object.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    object.set_ulong(CKA_KEY_TYPE, key_type);
    for (ty, value) in attrs.iter() {
        object.set(ty, value.to_vec());
    }
    if let Err(e) = mechanism::complete_key(&mut object) {
        panic!("a public key object made of what public_key_from_spki accepted is refused by complete_key: {e}");
    }
    assert_eq!(object.key_type(), Some(key_type));
}

fn signature(der: &[u8], half: usize) {
    let outcome = ecdsa_der_to_raw(der, half);
    debug!("ecdsa_der_to_raw(half {half}): {:?}", outcome.as_ref().map(|r| r.len()));
    let Ok(raw) = outcome else { return };
    assert_eq!(half, 32, "a half length of {half} accepted");
    assert_eq!(raw.len(), 64);
    let sig = p256::ecdsa::Signature::from_slice(&raw).expect("r‖s that p256 does not take");
    let der_again = sig.to_der();
    assert_eq!(ecdsa_der_to_raw(der_again.as_bytes(), 32).expect("the re-encoded signature is refused"), raw);
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    match data[0] % 2 {
        0 => spki(&data[2..]),
        _ => signature(&data[2..], data[1] as usize),
    }
});

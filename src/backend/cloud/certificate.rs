//! Self-signed X.509 certificates for service keys (`certificates = true`). Java's SunPKCS11
//! lists, and signs with, only the private keys that have a certificate with the same
//! `CKA_ID`; a cloud key has none of its own. The certificate is signed by the key itself, in
//! the service, once per key and process; every field but the signature is fixed by the key,
//! so the key signs nothing a caller chose.

use sha2::Digest;

use super::service::{Hash, KeyService, KeySpec, RemoteKey, Signing};
use crate::error::Result;
use crate::mechanism::keys::der_tlv;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const UTF8_STRING: u8 = 0x0c;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// id-at-commonName 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// The DER Name `CN=<label>` (the label cut to the 64 characters X.520 allows).
pub fn subject(label: &str) -> Vec<u8> {
    let cn: String = label.chars().take(64).collect();
    let cn = if cn.is_empty() { "keyfront".to_string() } else { cn };
    let attribute = der_tlv(SEQUENCE, &[COMMON_NAME, &der_tlv(UTF8_STRING, cn.as_bytes())].concat());
    der_tlv(SEQUENCE, &der_tlv(SET, &attribute))
}

/// A positive 128-bit DER INTEGER derived from the key (and version), so the certificate of a
/// key keeps its serial number.
pub fn serial_number(key: &RemoteKey) -> Vec<u8> {
    let digest = sha2::Sha256::digest(format!("{}:{}", key.key_ref, key.version.unwrap_or(0)).as_bytes());
    let mut serial = digest[..16].to_vec();
    // Positive and minimally encoded: the top bit clear, the first byte not zero.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    der_tlv(INTEGER, &serial)
}

/// The signature AlgorithmIdentifier for a key of `spec`, and how the service signs for it.
fn algorithm(spec: KeySpec) -> Option<(Vec<u8>, Signing)> {
    match spec {
        // ecdsa-with-SHA256, no parameters (RFC 5758).
        KeySpec::EcP256 => Some((der_tlv(SEQUENCE, &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]), Signing::Ecdsa(Hash::Sha256))),
        // sha256WithRSAEncryption, NULL parameters (RFC 4055).
        KeySpec::Rsa(_) => Some((
            der_tlv(SEQUENCE, &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00]),
            Signing::RsaPkcs1(Hash::Sha256),
        )),
        // id-Ed25519, no parameters (RFC 8410).
        KeySpec::Ed25519 => Some((der_tlv(SEQUENCE, &[0x06, 0x03, 0x2b, 0x65, 0x70]), Signing::Ed25519)),
        KeySpec::Aes256 => None,
    }
}

/// Whether the key can have a certificate: an asymmetric signing key with a public key.
pub fn applies(key: &RemoteKey) -> bool {
    key.sign && key.enabled && key.public_key_der.is_some() && algorithm(key.spec).is_some()
}

/// The DER TBSCertificate (version 1: no extensions): issuer and subject `CN=<label>`, valid
/// from 2025-01-01 with no expiry (RFC 5280 §4.1.2.5: 99991231235959Z).
fn tbs_certificate(key: &RemoteKey, algorithm: &[u8]) -> Option<Vec<u8>> {
    let name = subject(&key.label);
    let validity = der_tlv(SEQUENCE, &[der_tlv(UTC_TIME, b"250101000000Z"), der_tlv(GENERALIZED_TIME, b"99991231235959Z")].concat());
    let spki = key.public_key_der.as_deref()?;
    Some(der_tlv(SEQUENCE, &[serial_number(key), algorithm.to_vec(), name.clone(), validity, name, spki.to_vec()].concat()))
}

/// The key's self-signed certificate, signed by the service; `None` for keys that cannot
/// have one (see `applies`).
pub fn self_signed(service: &dyn KeyService, key: &RemoteKey) -> Result<Option<Vec<u8>>> {
    let Some((algorithm, how)) = algorithm(key.spec).filter(|_| applies(key)) else {
        return Ok(None);
    };
    let Some(tbs) = tbs_certificate(key, &algorithm) else {
        return Ok(None);
    };
    let signature = match how {
        Signing::Ed25519 => service.sign(key, how, &tbs)?,
        Signing::Ecdsa(_) => {
            let raw = service.sign(key, how, &sha2::Sha256::digest(&tbs))?;
            let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(|_| crate::error::rv(cryptoki_sys::CKR_DEVICE_ERROR))?;
            sig.to_der().as_bytes().to_vec()
        }
        Signing::RsaPkcs1(_) | Signing::RsaPss(_) => service.sign(key, how, &sha2::Sha256::digest(&tbs))?,
    };
    let bits = [&[0u8][..], &signature].concat();
    Ok(Some(der_tlv(SEQUENCE, &[tbs, algorithm, der_tlv(BIT_STRING, &bits)].concat())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_serials_are_valid_der() {
        let name = subject("signer, with a comma");
        assert_eq!(name[0], SEQUENCE);
        assert!(name.windows(20).any(|w| w == b"signer, with a comma"));
        assert_eq!(subject(&"x".repeat(100)).len(), subject(&"x".repeat(64)).len());
        let key = RemoteKey {
            key_ref: "k".into(),
            version: Some(3),
            label: "k".into(),
            id: vec![],
            spec: KeySpec::EcP256,
            sign: true,
            decrypt: false,
            enabled: true,
            public_key_der: Some(vec![]),
        };
        let serial = serial_number(&key);
        assert_eq!((serial[0], serial[1]), (INTEGER, 16));
        assert!(serial[2] & 0x80 == 0 && serial[2] != 0);
        assert_eq!(serial, serial_number(&key.clone()));
        assert!(applies(&key));
        assert!(!applies(&RemoteKey { sign: false, ..key.clone() }));
        assert!(!applies(&RemoteKey { spec: KeySpec::Aes256, ..key }));
    }
}

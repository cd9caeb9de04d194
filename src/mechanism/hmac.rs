//! HMAC: `CKM_SHA256_HMAC`, `CKM_SHA384_HMAC`, `CKM_SHA512_HMAC`, full-length MACs.

use cryptoki_sys::*;
use hmac::{KeyInit, Mac};

use super::{Mechanism, Signer};
use crate::error::{rv, Result};

/// The longest HMAC key, in bytes; also the longest generic secret key keyfront makes. HMAC
/// hashes a key longer than its block (64 or 128 bytes) first, so a longer one adds nothing;
/// the bound keeps what `C_GetMechanismInfo` reports true.
pub const MAX_KEY_LEN: usize = 1024;

/// Starts an HMAC with a secret key's value. The mechanisms take no parameter. Keys of
/// 1 to [`MAX_KEY_LEN`] bytes, as `C_GetMechanismInfo` reports.
pub fn signer(mechanism: &Mechanism, key: &[u8]) -> Result<Box<dyn Signer>> {
    let make: fn(&[u8]) -> Box<dyn Signer> = match mechanism.kind {
        CKM_SHA256_HMAC => new::<sha2::Sha256>,
        CKM_SHA384_HMAC => new::<sha2::Sha384>,
        CKM_SHA512_HMAC => new::<sha2::Sha512>,
        _ => return Err(rv(CKR_MECHANISM_INVALID)),
    };
    mechanism.no_param()?;
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(rv(CKR_KEY_SIZE_RANGE));
    }
    Ok(make(key))
}

/// The MAC length in bytes of an HMAC mechanism.
pub fn mac_len(kind: CK_MECHANISM_TYPE) -> Option<usize> {
    match kind {
        CKM_SHA256_HMAC => Some(32),
        CKM_SHA384_HMAC => Some(48),
        CKM_SHA512_HMAC => Some(64),
        _ => None,
    }
}

fn new<D>(key: &[u8]) -> Box<dyn Signer>
where
    D: hmac::EagerHash + 'static,
    hmac::Hmac<D>: Send,
{
    // HMAC takes keys of any length (long ones are hashed first), so this cannot fail.
    let mac = <hmac::Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    Box::new(HmacSigner { mac })
}

struct HmacSigner<D: hmac::EagerHash> {
    mac: hmac::Hmac<D>,
}

impl<D> Signer for HmacSigner<D>
where
    D: hmac::EagerHash,
    hmac::Hmac<D>: Send,
{
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.mac.update(data);
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        // The state is kept, so asking twice gives the same MAC.
        Ok(self.mac.clone().finalize().into_bytes().to_vec())
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != <hmac::Hmac<D> as hmac::digest::OutputSizeUser>::output_size() {
            return Err(rv(CKR_SIGNATURE_LEN_RANGE));
        }
        // `verify_slice` compares in constant time.
        self.mac.clone().verify_slice(signature).map_err(|_| rv(CKR_SIGNATURE_INVALID))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::MechanismParam;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn mech(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism::new(kind, MechanismParam::None)
    }

    fn mac(kind: CK_MECHANISM_TYPE, key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut s = signer(&mech(kind), key).unwrap();
        s.update(data).unwrap();
        s.sign().unwrap()
    }

    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    const CASE2: [(CK_MECHANISM_TYPE, &str); 3] = [
        (CKM_SHA256_HMAC, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (
            CKM_SHA384_HMAC,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
             8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (
            CKM_SHA512_HMAC,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
    ];

    #[test]
    fn rfc4231_case2() {
        for (kind, want) in CASE2 {
            let got = mac(kind, b"Jefe", b"what do ya want for nothing?");
            assert_eq!(got, hex(want), "mechanism 0x{kind:x}");
            assert_eq!(Some(got.len()), mac_len(kind));
            let mut v = signer(&mech(kind), b"Jefe").unwrap();
            v.update(b"what do ya ").unwrap();
            v.update(b"want for nothing?").unwrap();
            v.verify(&got).unwrap();
        }
    }

    // RFC 4231 test case 6: a 131-byte key, longer than the block, is hashed first.
    #[test]
    fn rfc4231_case6_long_key() {
        let key = [0xaa; 131];
        let got = mac(CKM_SHA256_HMAC, &key, b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(got, hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
    }

    #[test]
    fn sign_twice_is_stable() {
        let mut s = signer(&mech(CKM_SHA256_HMAC), b"Jefe").unwrap();
        s.update(b"what do ya want for nothing?").unwrap();
        let a = s.sign().unwrap();
        assert_eq!(a, s.sign().unwrap());
    }

    #[test]
    fn verify_errors() {
        let good = mac(CKM_SHA256_HMAC, b"Jefe", b"what do ya want for nothing?");
        let verify = |sig: &[u8]| {
            let mut v = signer(&mech(CKM_SHA256_HMAC), b"Jefe").unwrap();
            v.update(b"what do ya want for nothing?").unwrap();
            v.verify(sig).err().map(|e| e.rv())
        };
        assert_eq!(verify(&good), None);
        assert_eq!(verify(&good[..31]), Some(CKR_SIGNATURE_LEN_RANGE));
        assert_eq!(verify(&[good.as_slice(), &[0]].concat()), Some(CKR_SIGNATURE_LEN_RANGE));
        assert_eq!(verify(&[]), Some(CKR_SIGNATURE_LEN_RANGE));
        let mut bad = good.clone();
        bad[31] ^= 1;
        assert_eq!(verify(&bad), Some(CKR_SIGNATURE_INVALID));
    }

    #[test]
    fn init_errors() {
        let e = signer(&mech(CKM_SHA256_HMAC), b"").err().unwrap();
        assert_eq!(e.rv(), CKR_KEY_SIZE_RANGE);
        for kind in [CKM_SHA256_HMAC, CKM_SHA384_HMAC, CKM_SHA512_HMAC] {
            let e = signer(&mech(kind), &[7; MAX_KEY_LEN + 1]).err().unwrap();
            assert_eq!(e.rv(), CKR_KEY_SIZE_RANGE, "0x{kind:x}");
            assert!(signer(&mech(kind), &[7; MAX_KEY_LEN]).is_ok());
            assert!(signer(&mech(kind), &[7]).is_ok());
        }
        let e = signer(&Mechanism::new(CKM_SHA256_HMAC, MechanismParam::Bytes(vec![0; 4])), b"k").err().unwrap();
        assert_eq!(e.rv(), CKR_MECHANISM_PARAM_INVALID);
        let e = signer(&mech(CKM_SHA_1_HMAC), b"k").err().unwrap();
        assert_eq!(e.rv(), CKR_MECHANISM_INVALID);
        let e = signer(&mech(CKM_SHA256), b"k").err().unwrap();
        assert_eq!(e.rv(), CKR_MECHANISM_INVALID);
    }
}

//! `CKM_EDDSA` with Ed25519 keys (pure Ed25519, RFC 8032 §5.1), on `ed25519-dalek`.
//! Ed25519 hashes the message twice, so multi-part operations buffer it.

use cryptoki_sys::*;
use ed25519_dalek::{Signer as _, Verifier as _};
use zeroize::Zeroizing;

use super::keys;
use super::{Mechanism, MechanismParam, Secret, Signer};
use crate::error::{rv, Result};
use crate::object::Object;

const SIGNATURE_LEN: usize = 64;

enum Key {
    Signing(ed25519_dalek::SigningKey),
    Verifying(ed25519_dalek::VerifyingKey),
}

struct EddsaSigner {
    key: Key,
    message: Secret,
}

pub fn signer(mechanism: &Mechanism, key: &Object, sign: bool) -> Result<Box<dyn Signer>> {
    if mechanism.kind != CKM_EDDSA {
        return Err(rv(CKR_MECHANISM_INVALID));
    }
    match &mechanism.param {
        MechanismParam::None => {}
        MechanismParam::Bytes(b) if b.is_empty() => {}
        // Ed25519ctx with an empty context is not Ed25519 either (it has a dom2 prefix), and
        // Ed25519ph is not offered: only the plain scheme.
        MechanismParam::Eddsa(p) if !p.prehash && p.context.is_empty() => {}
        _ => return Err(rv(CKR_MECHANISM_PARAM_INVALID)),
    }
    let key = if sign {
        if key.class() != CKO_PRIVATE_KEY {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        }
        // Making a signing key computes its public point: do it once per key object.
        Key::Signing(key.prepared(keys::ed25519_private)?)
    } else {
        Key::Verifying(key.prepared(keys::ed25519_public)?)
    };
    Ok(Box::new(EddsaSigner { key, message: Zeroizing::new(Vec::new()) }))
}

impl Signer for EddsaSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.message.extend_from_slice(data);
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        let Key::Signing(key) = &self.key else {
            return Err(rv(CKR_KEY_TYPE_INCONSISTENT));
        };
        Ok(key.sign(&self.message).to_bytes().to_vec())
    }

    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        let bytes: &[u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| rv(CKR_SIGNATURE_LEN_RANGE))?;
        let signature = ed25519_dalek::Signature::from_bytes(bytes);
        let verifying = match &self.key {
            Key::Signing(k) => k.verifying_key(),
            Key::Verifying(k) => *k,
        };
        verifying.verify(&self.message, &signature).map_err(|_| rv(CKR_SIGNATURE_INVALID))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::keys::fixtures::hex;
    use crate::mechanism::keys::tests::{key_object, public_of};
    use crate::mechanism::keys::{ED25519_NAME_PARAMS, ED25519_PARAMS};
    use crate::mechanism::{asym_signer, EddsaParams};

    fn err<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    fn eddsa() -> Mechanism {
        Mechanism::new(CKM_EDDSA, MechanismParam::None)
    }

    fn private(seed: &str) -> Object {
        let mut o = key_object(CKO_PRIVATE_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, ED25519_NAME_PARAMS), (CKA_VALUE, &hex(seed))]);
        keys::complete_key(&mut o).unwrap();
        o
    }

    fn sign(m: &Mechanism, key: &Object, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let mut s = asym_signer(m, key, true)?;
        for p in parts {
            s.update(p)?;
        }
        s.sign()
    }

    fn verify(m: &Mechanism, key: &Object, data: &[u8], sig: &[u8]) -> Result<()> {
        let mut v = asym_signer(m, key, false)?;
        v.update(data)?;
        v.verify(sig)
    }

    /// RFC 8032 §7.1, tests 1 to 3.
    const RFC8032: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    #[test]
    fn rfc8032_vectors() {
        for (seed, public, msg, sig) in RFC8032 {
            let key = private(seed);
            let public_key = public_of(&key);
            assert_eq!(public_key.get(CKA_EC_POINT).unwrap(), keys::der_octet_string(&hex(public)).as_slice());
            let (msg, sig) = (hex(msg), hex(sig));
            assert_eq!(sign(&eddsa(), &key, &[&msg]).unwrap(), sig);
            verify(&eddsa(), &public_key, &msg, &sig).unwrap();
            // A raw public point imports too.
            let mut raw = key_object(CKO_PUBLIC_KEY, CKK_EC_EDWARDS, &[(CKA_EC_PARAMS, ED25519_PARAMS), (CKA_EC_POINT, &hex(public))]);
            keys::complete_key(&mut raw).unwrap();
            verify(&eddsa(), &raw, &msg, &sig).unwrap();
        }
    }

    #[test]
    fn multi_part_and_errors() {
        let key = private(RFC8032[2].0);
        let public = public_of(&key);
        let whole = sign(&eddsa(), &key, &[b"several parts"]).unwrap();
        assert_eq!(sign(&eddsa(), &key, &[b"sev", b"", b"eral parts"]).unwrap(), whole);
        let mut v = asym_signer(&eddsa(), &public, false).unwrap();
        v.update(b"several ").unwrap();
        v.update(b"parts").unwrap();
        v.verify(&whole).unwrap();

        let mut bad = whole.clone();
        bad[0] ^= 1;
        assert_eq!(err(verify(&eddsa(), &public, b"several parts", &bad)), CKR_SIGNATURE_INVALID);
        assert_eq!(err(verify(&eddsa(), &public, b"several part", &whole)), CKR_SIGNATURE_INVALID);
        // S ≥ L is refused, not reduced.
        let mut high_s = whole.clone();
        high_s[63] |= 0xf0;
        assert_eq!(err(verify(&eddsa(), &public, b"several parts", &high_s)), CKR_SIGNATURE_INVALID);
        for len in [0, 63, 65] {
            assert_eq!(err(verify(&eddsa(), &public, b"several parts", &vec![0u8; len])), CKR_SIGNATURE_LEN_RANGE);
        }
        assert_eq!(err(asym_signer(&eddsa(), &public, true)), CKR_KEY_TYPE_INCONSISTENT);
    }

    #[test]
    fn parameters() {
        let key = private(RFC8032[0].0);
        let with = |prehash: bool, context: &[u8]| {
            Mechanism::new(CKM_EDDSA, MechanismParam::Eddsa(EddsaParams { prehash, context: context.to_vec() }))
        };
        // Pure Ed25519 with an explicit parameter block.
        let sig = sign(&with(false, b""), &key, &[b""]).unwrap();
        assert_eq!(sig, hex(RFC8032[0].3));
        for m in [with(true, b""), with(true, b"ctx"), with(false, b"ctx"), Mechanism::new(CKM_EDDSA, MechanismParam::Bytes(vec![1]))] {
            assert_eq!(err(asym_signer(&m, &key, true)), CKR_MECHANISM_PARAM_INVALID, "{m:?}");
        }
    }
}

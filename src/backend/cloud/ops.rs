//! PKCS#11 operations carried out by a key service: which request a mechanism becomes, and
//! the `Signer`/`Cipher` that send it. Only the private or secret half goes to the service;
//! hashing for `CKM_SHA256_RSA_PKCS` and the like happens here first, so one signature is one
//! request whatever the message length.

use std::sync::Arc;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::service::{Hash, KeyService, KeySpec, RemoteKey, Signing};
use crate::error::{rv, Result};
use crate::mechanism::keys::{HashAlg, Hasher};
use crate::mechanism::{Cipher, Mechanism, MechanismParam, Secret, Signer, CKM_KEYFRONT_KMS_WRAP};

/// The longest message kept for a mechanism the service signs whole (Ed25519), or data
/// `CKM_KEYFRONT_KMS_WRAP` sends: what AWS KMS takes in one request.
pub const MAX_SERVICE_INPUT: usize = 4096;

fn hash_of(alg: HashAlg) -> Hash {
    match alg {
        HashAlg::Sha1 => Hash::Sha1,
        HashAlg::Sha256 => Hash::Sha256,
        HashAlg::Sha384 => Hash::Sha384,
        HashAlg::Sha512 => Hash::Sha512,
    }
}

/// What a signing mechanism asks of the service.
enum Plan {
    /// The caller gives the digest (or DigestInfo): one part only.
    Digest(Signing),
    /// keyfront hashes the message with this hash, then the service signs the digest.
    HashThen(HashAlg, Signing),
    /// The service gets the whole message (Ed25519).
    Message,
}

/// Maps a signing mechanism to a plan for a key of `spec`; `CKR_MECHANISM_INVALID` for what
/// the service cannot do with it.
fn sign_plan(mechanism: &Mechanism, spec: KeySpec) -> Result<Plan> {
    let hashed = |alg: HashAlg, how: fn(Hash) -> Signing| Plan::HashThen(alg, how(hash_of(alg)));
    let plan = match (mechanism.kind, spec) {
        // P-256 uses the leftmost 256 bits of any digest: the service always signs 32 bytes.
        (CKM_ECDSA, KeySpec::EcP256) => Plan::Digest(Signing::Ecdsa(Hash::Sha256)),
        (CKM_ECDSA_SHA256, KeySpec::EcP256) => hashed(HashAlg::Sha256, Signing::Ecdsa),
        (CKM_ECDSA_SHA384, KeySpec::EcP256) => Plan::HashThen(HashAlg::Sha384, Signing::Ecdsa(Hash::Sha256)),
        (CKM_ECDSA_SHA512, KeySpec::EcP256) => Plan::HashThen(HashAlg::Sha512, Signing::Ecdsa(Hash::Sha256)),
        (CKM_RSA_PKCS, KeySpec::Rsa(_)) => Plan::Digest(Signing::RsaPkcs1(Hash::Sha256)),
        (CKM_SHA256_RSA_PKCS, KeySpec::Rsa(_)) => hashed(HashAlg::Sha256, Signing::RsaPkcs1),
        (CKM_SHA384_RSA_PKCS, KeySpec::Rsa(_)) => hashed(HashAlg::Sha384, Signing::RsaPkcs1),
        (CKM_SHA512_RSA_PKCS, KeySpec::Rsa(_)) => hashed(HashAlg::Sha512, Signing::RsaPkcs1),
        (CKM_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS | CKM_SHA384_RSA_PKCS_PSS | CKM_SHA512_RSA_PKCS_PSS, KeySpec::Rsa(_)) => {
            let MechanismParam::RsaPss(p) = &mechanism.param else {
                return Err(rv(CKR_MECHANISM_PARAM_INVALID));
            };
            let alg = HashAlg::from_mechanism(p.hash).ok_or(rv(CKR_MECHANISM_PARAM_INVALID))?;
            let implied = match mechanism.kind {
                CKM_SHA256_RSA_PKCS_PSS => Some(HashAlg::Sha256),
                CKM_SHA384_RSA_PKCS_PSS => Some(HashAlg::Sha384),
                CKM_SHA512_RSA_PKCS_PSS => Some(HashAlg::Sha512),
                _ => None,
            };
            // The services sign PSS with MGF1 over the message hash and a salt as long as
            // the hash; other parameters cannot be honoured.
            if implied.is_some_and(|i| i != alg) || HashAlg::from_mgf(p.mgf) != Some(alg) || p.salt_len != alg.len() || alg == HashAlg::Sha1 {
                return Err(rv(CKR_MECHANISM_PARAM_INVALID));
            }
            match implied {
                Some(_) => hashed(alg, Signing::RsaPss),
                None => Plan::Digest(Signing::RsaPss(hash_of(alg))),
            }
        }
        (CKM_EDDSA, KeySpec::Ed25519) => {
            if let MechanismParam::Eddsa(p) = &mechanism.param {
                if p.prehash || !p.context.is_empty() {
                    return Err(rv(CKR_MECHANISM_PARAM_INVALID));
                }
            }
            Plan::Message
        }
        _ => return Err(rv(CKR_MECHANISM_INVALID)),
    };
    Ok(plan)
}

/// The DigestInfo prefixes of SHA-256/384/512 (RFC 8017 §9.2 note 1): `CKM_RSA_PKCS` signing
/// sends the digest inside to the service, which builds the same DigestInfo again.
const DIGEST_INFOS: [(Hash, &[u8]); 3] = [
    (Hash::Sha256, &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20]),
    (Hash::Sha384, &[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30]),
    (Hash::Sha512, &[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40]),
];

fn split_digest_info(input: &[u8]) -> Result<(Hash, &[u8])> {
    DIGEST_INFOS
        .iter()
        .find_map(|(hash, prefix)| input.strip_prefix(*prefix).filter(|d| d.len() == hash.len()).map(|d| (*hash, d)))
        // A service signs SHA-2 DigestInfos only; anything else cannot be passed on.
        .ok_or(rv(CKR_DATA_INVALID))
}

/// A signature made by the service with a key that never leaves it. Verification runs
/// locally with the public key object, so this signer only signs.
pub struct ServiceSigner {
    service: Arc<dyn KeyService>,
    key: RemoteKey,
    plan: Plan,
    hasher: Option<Hasher>,
    message: Vec<u8>,
}

impl ServiceSigner {
    pub fn new(service: Arc<dyn KeyService>, key: RemoteKey, mechanism: &Mechanism) -> Result<Self> {
        let plan = sign_plan(mechanism, key.spec)?;
        let hasher = match &plan {
            Plan::HashThen(alg, _) => Some(alg.hasher()),
            _ => None,
        };
        Ok(ServiceSigner { service, key, plan, hasher, message: Vec::new() })
    }

    fn request(&self) -> Result<(Signing, Vec<u8>)> {
        match &self.plan {
            Plan::Message => Ok((Signing::Ed25519, self.message.clone())),
            Plan::HashThen(_, how) => {
                let mut digest = self.hasher.as_ref().expect("hashing plans have a hasher").finish();
                if matches!(how, Signing::Ecdsa(_)) {
                    digest.truncate(32);
                }
                Ok((*how, digest))
            }
            Plan::Digest(Signing::Ecdsa(h)) => {
                // An integer of the leftmost 256 bits, as ECDSA takes a digest of any length.
                let d = &self.message;
                let mut e = vec![0u8; 32];
                let take = d.len().min(32);
                e[32 - take..].copy_from_slice(&d[..take]);
                Ok((Signing::Ecdsa(*h), e))
            }
            Plan::Digest(Signing::RsaPkcs1(_)) => {
                let (hash, digest) = split_digest_info(&self.message)?;
                Ok((Signing::RsaPkcs1(hash), digest.to_vec()))
            }
            Plan::Digest(how @ Signing::RsaPss(h)) => {
                if self.message.len() != h.len() {
                    return Err(rv(CKR_DATA_LEN_RANGE));
                }
                Ok((*how, self.message.clone()))
            }
            Plan::Digest(Signing::Ed25519) => Err(rv(CKR_MECHANISM_INVALID)),
        }
    }
}

impl Signer for ServiceSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.hasher {
            Some(h) => h.update(data),
            None => {
                if self.message.len() + data.len() > MAX_SERVICE_INPUT {
                    return Err(rv(CKR_DATA_LEN_RANGE));
                }
                self.message.extend_from_slice(data);
            }
        }
        Ok(())
    }

    fn sign(&mut self) -> Result<Vec<u8>> {
        if !self.key.enabled {
            return Err(rv(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let (how, input) = self.request()?;
        self.service.sign(&self.key, how, &input)
    }

    fn verify(&mut self, _signature: &[u8]) -> Result<()> {
        Err(rv(CKR_FUNCTION_NOT_SUPPORTED))
    }
}

/// What a service key decrypts or encrypts, in one part.
enum CipherPlan {
    /// RSA-OAEP decryption with this hash.
    Oaep(Hash),
    /// `CKM_KEYFRONT_KMS_WRAP` with an `Aes256` service key.
    ServiceWrap { encrypt: bool },
}

/// A decryption (or, for service AES keys, an encryption) done by the service in one
/// request; input is gathered first, so `C_DecryptUpdate` works too.
pub struct ServiceCipher {
    service: Arc<dyn KeyService>,
    key: RemoteKey,
    plan: CipherPlan,
    input: Zeroizing<Vec<u8>>,
}

impl ServiceCipher {
    pub fn new(service: Arc<dyn KeyService>, key: RemoteKey, mechanism: &Mechanism, encrypt: bool) -> Result<Self> {
        let plan = match (mechanism.kind, key.spec, encrypt) {
            (CKM_RSA_PKCS_OAEP, KeySpec::Rsa(_), false) => {
                let MechanismParam::RsaOaep(p) = &mechanism.param else {
                    return Err(rv(CKR_MECHANISM_PARAM_INVALID));
                };
                let alg = HashAlg::from_mechanism(p.hash).ok_or(rv(CKR_MECHANISM_PARAM_INVALID))?;
                // The services use MGF1 with the OAEP hash and no label.
                if HashAlg::from_mgf(p.mgf) != Some(alg) || !p.label.is_empty() {
                    return Err(rv(CKR_MECHANISM_PARAM_INVALID));
                }
                CipherPlan::Oaep(hash_of(alg))
            }
            (CKM_KEYFRONT_KMS_WRAP, KeySpec::Aes256, encrypt) => {
                mechanism.no_param()?;
                CipherPlan::ServiceWrap { encrypt }
            }
            _ => return Err(rv(CKR_MECHANISM_INVALID)),
        };
        Ok(ServiceCipher { service, key, plan, input: Zeroizing::new(Vec::new()) })
    }
}

impl Cipher for ServiceCipher {
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        // Ciphertexts of a service are a few hundred bytes at most; bound what is gathered.
        if self.input.len() + input.len() > 4 * MAX_SERVICE_INPUT {
            return Err(rv(match self.plan {
                CipherPlan::ServiceWrap { encrypt: true } => CKR_DATA_LEN_RANGE,
                _ => CKR_ENCRYPTED_DATA_LEN_RANGE,
            }));
        }
        self.input.extend_from_slice(input);
        Ok(Zeroizing::new(Vec::new()))
    }

    fn finish(&mut self) -> Result<Secret> {
        if !self.key.enabled {
            return Err(rv(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let input = std::mem::take(&mut *self.input);
        let input = Zeroizing::new(input);
        match self.plan {
            CipherPlan::Oaep(hash) => self.service.decrypt_oaep(&self.key, hash, &input),
            CipherPlan::ServiceWrap { encrypt: true } => {
                if input.len() > MAX_SERVICE_INPUT {
                    return Err(rv(CKR_DATA_LEN_RANGE));
                }
                Ok(Zeroizing::new(self.service.wrap(&self.key, &input)?))
            }
            CipherPlan::ServiceWrap { encrypt: false } => self.service.unwrap(&self.key, &input),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::{EddsaParams, RsaOaepParams, RsaPssParams};

    fn plan(kind: CK_MECHANISM_TYPE, param: MechanismParam, spec: KeySpec) -> Result<Plan> {
        sign_plan(&Mechanism::new(kind, param), spec)
    }

    #[test]
    fn signing_mechanisms_map_to_service_requests() {
        assert!(matches!(plan(CKM_ECDSA, MechanismParam::None, KeySpec::EcP256), Ok(Plan::Digest(Signing::Ecdsa(Hash::Sha256)))));
        assert!(matches!(
            plan(CKM_ECDSA_SHA384, MechanismParam::None, KeySpec::EcP256),
            Ok(Plan::HashThen(HashAlg::Sha384, Signing::Ecdsa(Hash::Sha256)))
        ));
        assert!(matches!(
            plan(CKM_SHA512_RSA_PKCS, MechanismParam::None, KeySpec::Rsa(2048)),
            Ok(Plan::HashThen(HashAlg::Sha512, Signing::RsaPkcs1(Hash::Sha512)))
        ));
        assert!(matches!(plan(CKM_EDDSA, MechanismParam::None, KeySpec::Ed25519), Ok(Plan::Message)));
        // A mechanism of another key type, or one no service has.
        assert_eq!(plan(CKM_ECDSA, MechanismParam::None, KeySpec::Rsa(2048)).err().map(|e| e.rv()), Some(CKR_MECHANISM_INVALID));
        assert_eq!(plan(CKM_RSA_X_509, MechanismParam::None, KeySpec::Rsa(2048)).err().map(|e| e.rv()), Some(CKR_MECHANISM_INVALID));
        assert_eq!(plan(CKM_ECDSA_SHA1, MechanismParam::None, KeySpec::EcP256).err().map(|e| e.rv()), Some(CKR_MECHANISM_INVALID));
    }

    #[test]
    fn pss_needs_the_parameters_services_use() {
        let pss = |hash, mgf, salt_len| MechanismParam::RsaPss(RsaPssParams { hash, mgf, salt_len });
        assert!(matches!(
            plan(CKM_SHA256_RSA_PKCS_PSS, pss(CKM_SHA256, CKG_MGF1_SHA256, 32), KeySpec::Rsa(2048)),
            Ok(Plan::HashThen(HashAlg::Sha256, Signing::RsaPss(Hash::Sha256)))
        ));
        assert!(matches!(
            plan(CKM_RSA_PKCS_PSS, pss(CKM_SHA384, CKG_MGF1_SHA384, 48), KeySpec::Rsa(3072)),
            Ok(Plan::Digest(Signing::RsaPss(Hash::Sha384)))
        ));
        for bad in [pss(CKM_SHA256, CKG_MGF1_SHA256, 20), pss(CKM_SHA256, CKG_MGF1_SHA1, 32), pss(CKM_SHA384, CKG_MGF1_SHA384, 48)] {
            let e = plan(CKM_SHA256_RSA_PKCS_PSS, bad, KeySpec::Rsa(2048)).err().map(|e| e.rv());
            assert_eq!(e, Some(CKR_MECHANISM_PARAM_INVALID));
        }
        assert_eq!(plan(CKM_RSA_PKCS_PSS, MechanismParam::None, KeySpec::Rsa(2048)).err().map(|e| e.rv()), Some(CKR_MECHANISM_PARAM_INVALID));
    }

    #[test]
    fn ed25519ph_and_contexts_are_refused() {
        for p in [EddsaParams { prehash: true, context: vec![] }, EddsaParams { prehash: false, context: b"ctx".to_vec() }] {
            let e = plan(CKM_EDDSA, MechanismParam::Eddsa(p), KeySpec::Ed25519).err().map(|e| e.rv());
            assert_eq!(e, Some(CKR_MECHANISM_PARAM_INVALID));
        }
    }

    #[test]
    fn digest_infos_are_split_or_refused() {
        let mut info = DIGEST_INFOS[1].1.to_vec();
        info.extend_from_slice(&[7u8; 48]);
        let (hash, digest) = split_digest_info(&info).unwrap();
        assert_eq!((hash, digest), (Hash::Sha384, &[7u8; 48][..]));
        // SHA-1 DigestInfo, a truncated one, a bare digest.
        let mut sha1 = vec![0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14];
        sha1.extend_from_slice(&[1u8; 20]);
        for bad in [sha1, info[..info.len() - 1].to_vec(), vec![9u8; 32]] {
            assert_eq!(split_digest_info(&bad).err().map(|e| e.rv()), Some(CKR_DATA_INVALID));
        }
    }

    #[test]
    fn oaep_parameters_services_cannot_honour_are_refused() {
        let key = RemoteKey {
            key_ref: "k".into(),
            version: None,
            label: "k".into(),
            id: vec![1],
            spec: KeySpec::Rsa(2048),
            sign: false,
            decrypt: true,
            enabled: true,
            public_key_der: None,
        };
        let oaep = |hash, mgf, label: &[u8]| Mechanism::new(CKM_RSA_PKCS_OAEP, MechanismParam::RsaOaep(RsaOaepParams { hash, mgf, label: label.to_vec() }));
        let service: Arc<dyn KeyService> = Arc::new(super::super::testing::Unused);
        assert!(ServiceCipher::new(service.clone(), key.clone(), &oaep(CKM_SHA256, CKG_MGF1_SHA256, b""), false).is_ok());
        for bad in [oaep(CKM_SHA256, CKG_MGF1_SHA1, b""), oaep(CKM_SHA256, CKG_MGF1_SHA256, b"label")] {
            let e = ServiceCipher::new(service.clone(), key.clone(), &bad, false).err().map(|e| e.rv());
            assert_eq!(e, Some(CKR_MECHANISM_PARAM_INVALID));
        }
        // The public half encrypts locally: the service is never asked to encrypt with RSA.
        let e = ServiceCipher::new(service, key, &oaep(CKM_SHA256, CKG_MGF1_SHA256, b""), true).err().map(|e| e.rv());
        assert_eq!(e, Some(CKR_MECHANISM_INVALID));
    }
}

//! Message digests: `CKM_SHA_1`, `CKM_SHA256`, `CKM_SHA384`, `CKM_SHA512`.

use cryptoki_sys::*;
use sha2::digest::FixedOutputReset;
use sha2::Digest;

use super::{Digester, Mechanism};
use crate::error::{rv, Result};

/// The digest length in bytes of a digest mechanism, `None` for any other mechanism.
pub fn digest_len(kind: CK_MECHANISM_TYPE) -> Option<usize> {
    match kind {
        CKM_SHA_1 => Some(20),
        CKM_SHA256 => Some(32),
        CKM_SHA384 => Some(48),
        CKM_SHA512 => Some(64),
        _ => None,
    }
}

/// Starts a digest. The mechanisms take no parameter.
pub fn digester(mechanism: &Mechanism) -> Result<Box<dyn Digester>> {
    let make: fn() -> Box<dyn Digester> = match mechanism.kind {
        CKM_SHA_1 => || Box::new(Hash(sha1::Sha1::new())),
        CKM_SHA256 => || Box::new(Hash(sha2::Sha256::new())),
        CKM_SHA384 => || Box::new(Hash(sha2::Sha384::new())),
        CKM_SHA512 => || Box::new(Hash(sha2::Sha512::new())),
        _ => return Err(rv(CKR_MECHANISM_INVALID)),
    };
    mechanism.no_param()?;
    Ok(make())
}

struct Hash<D>(D);

impl<D: Digest + FixedOutputReset + Send> Digester for Hash<D> {
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }

    /// Returns the digest and leaves the state reset (a second call digests nothing).
    fn finish(&mut self) -> Vec<u8> {
        self.0.finalize_reset().to_vec()
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

    fn digest(kind: CK_MECHANISM_TYPE, data: &[u8]) -> Vec<u8> {
        let mut d = digester(&Mechanism::new(kind, MechanismParam::None)).unwrap();
        d.update(data);
        d.finish()
    }

    // FIPS 180-2 appendix examples: "abc".
    #[test]
    fn abc_vectors() {
        let cases = [
            (CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (CKM_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                CKM_SHA384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                CKM_SHA512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (kind, want) in cases {
            let got = digest(kind, b"abc");
            assert_eq!(got, hex(want), "mechanism 0x{kind:x}");
            assert_eq!(Some(got.len()), digest_len(kind));
        }
    }

    #[test]
    fn multi_part_equals_single_part() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        for kind in [CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512] {
            let mut d = digester(&Mechanism::new(kind, MechanismParam::None)).unwrap();
            for chunk in data.chunks(13) {
                d.update(chunk);
            }
            assert_eq!(d.finish(), digest(kind, &data));
        }
    }

    #[test]
    fn sha256_empty() {
        assert_eq!(digest(CKM_SHA256, b""), hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    }

    #[test]
    fn errors() {
        let e = digester(&Mechanism::new(CKM_SHA256, MechanismParam::Bytes(vec![1]))).err().unwrap();
        assert_eq!(e.rv(), CKR_MECHANISM_PARAM_INVALID);
        // An empty byte string is a missing parameter.
        assert!(digester(&Mechanism::new(CKM_SHA256, MechanismParam::Bytes(vec![]))).is_ok());
        let e = digester(&Mechanism::new(CKM_SHA224, MechanismParam::None)).err().unwrap();
        assert_eq!(e.rv(), CKR_MECHANISM_INVALID);
        let e = digester(&Mechanism::new(CKM_AES_ECB, MechanismParam::None)).err().unwrap();
        assert_eq!(e.rv(), CKR_MECHANISM_INVALID);
        assert_eq!(digest_len(CKM_MD5), None);
    }
}

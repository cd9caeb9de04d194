//! SHA-1/2 digests (FIPS 180 "abc") and HMAC (RFC 4231 test case 2; case 6 on SoftHSM2).
mod common;
use common::*;

use std::ptr;

const ABC: [(CK_MECHANISM_TYPE, &str); 4] = [
    (CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (CKM_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (CKM_SHA384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
    (CKM_SHA512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
];

const JEFE_DATA: &[u8] = b"what do ya want for nothing?";
const HMAC_JEFE: [(CK_MECHANISM_TYPE, &str); 3] = [
    (CKM_SHA256_HMAC, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (CKM_SHA384_HMAC, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
    (CKM_SHA512_HMAC, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
];

/// RFC 4231 test case 6 (a 131-byte key): SoftHSM2 refuses HMAC keys shorter than the
/// digest (CKR_KEY_SIZE_RANGE for "Jefe").
const CASE6_DATA: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";
const HMAC_CASE6: [(CK_MECHANISM_TYPE, &str); 3] = [
    (CKM_SHA256_HMAC, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (CKM_SHA384_HMAC, "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952"),
    (CKM_SHA512_HMAC, "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"),
];

/// The HMAC key, message and expected MACs: RFC 4231 test case 2 on keyfront's soft token,
/// test case 6 on SoftHSM2.
fn hmac_case(s: CK_SESSION_HANDLE) -> (CK_OBJECT_HANDLE, &'static [u8], [(CK_MECHANISM_TYPE, &'static str); 3]) {
    if backend().is_soft() {
        (jefe(s, &[]), JEFE_DATA, HMAC_JEFE)
    } else {
        let k = create(s, &generic_tmpl(&[0xaa; 131], &[])).expect("import HMAC key");
        (k, CASE6_DATA, HMAC_CASE6)
    }
}

#[test]
fn sha_abc_known_answers() {
    // Digests need no login: a public RO session is enough.
    let s = open(fx().token(), false).unwrap();
    for (m, want) in ABC {
        let want = hex(want);
        assert_eq!(digest(s, m, b"abc").unwrap(), want, "single-part 0x{m:x}");
        assert_eq!(digest_parts(s, m, &[b"a", b"", b"bc"]).unwrap(), want, "multi-part 0x{m:x}");
        assert_eq!(digest_parts(s, m, &[]).unwrap(), digest(s, m, b"").unwrap(), "empty input 0x{m:x}");
        let long = vec![0x61u8; 1000];
        assert_eq!(digest_parts(s, m, &chunks(&long, ODD)).unwrap(), digest(s, m, &long).unwrap());
    }
    close(s).unwrap();
}

#[test]
fn digest_buffer_rules_and_state() {
    let s = open(fx().token(), false).unwrap();
    let p = b"abc".as_ptr() as *mut u8;
    let want = hex(ABC[1].1);
    let mut out = [0u8; 64];
    let mut l: CK_ULONG = 64;
    assert_rv(ck!(C_Digest, s, p, 3, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);
    expect_rv(digest_update(s, b"abc"), CKR_OPERATION_NOT_INITIALIZED);
    expect_rv(digest_final(s), CKR_OPERATION_NOT_INITIALIZED);
    expect_rv(digest_init(s, CKM_MD5), CKR_MECHANISM_INVALID);
    expect_rv(digest_init(s, CKM_AES_ECB), CKR_MECHANISM_INVALID);

    digest_init(s, CKM_SHA256).unwrap();
    expect_rv(digest_init(s, CKM_SHA256), CKR_OPERATION_ACTIVE);
    let mut l: CK_ULONG = 0;
    assert_rv(ck!(C_Digest, s, p, 3, ptr::null_mut(), &mut l), CKR_OK);
    assert_eq!(l, 32);
    l = 31;
    assert_rv(ck!(C_Digest, s, p, 3, out.as_mut_ptr(), &mut l), CKR_BUFFER_TOO_SMALL);
    assert_eq!(l, 32);
    assert_rv(ck!(C_Digest, s, p, 3, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(out[..32], want[..]);
    expect_rv(digest_update(s, b"x"), CKR_OPERATION_NOT_INITIALIZED);

    digest_init(s, CKM_SHA256).unwrap();
    digest_update(s, b"ab").unwrap();
    digest_update(s, b"c").unwrap();
    let mut l: CK_ULONG = 10;
    assert_rv(ck!(C_DigestFinal, s, out.as_mut_ptr(), &mut l), CKR_BUFFER_TOO_SMALL);
    assert_eq!(l, 32);
    assert_rv(ck!(C_DigestFinal, s, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(out[..32], want[..], "too-small buffer kept the multi-part state");
    close(s).unwrap();
}

#[test]
fn digest_key_equals_digest_of_value() {
    let s = user_session(fx().token());
    let value: Vec<u8> = (0..32).map(|i| i * 7).collect();
    let k = aes_key(s, &value, &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]);
    if backend().is_forwarded() {
        // keyfront digests on a forwarding slot itself, and does not read a vendor key's
        // value for it (src/core/crypto.rs digest_key): CKR_KEY_INDIGESTIBLE, which ends
        // the digest.
        skip_note("C_DigestKey of a vendor's key is CKR_KEY_INDIGESTIBLE (keyfront digests locally)");
        digest_init(s, CKM_SHA256).unwrap();
        assert_rv(ck!(C_DigestKey, s, k), CKR_KEY_INDIGESTIBLE);
        expect_rv(digest_final(s), CKR_OPERATION_NOT_INITIALIZED);
        digest_init(s, CKM_SHA256).unwrap();
        assert_rv(ck!(C_DigestKey, s, 0xdead_beef), CKR_KEY_HANDLE_INVALID);
        close(s).unwrap();
        return;
    }
    for (m, _) in ABC {
        digest_init(s, m).unwrap();
        rv(ck!(C_DigestKey, s, k)).expect("C_DigestKey");
        assert_eq!(digest_final(s).unwrap(), digest(s, m, &value).unwrap(), "0x{m:x}");
    }
    // Mixed with C_DigestUpdate.
    digest_init(s, CKM_SHA256).unwrap();
    digest_update(s, b"prefix").unwrap();
    rv(ck!(C_DigestKey, s, k)).unwrap();
    let mut both = b"prefix".to_vec();
    both.extend_from_slice(&value);
    assert_eq!(digest_final(s).unwrap(), digest(s, CKM_SHA256, &both).unwrap());

    assert_rv(ck!(C_DigestKey, s, k), CKR_OPERATION_NOT_INITIALIZED);
    digest_init(s, CKM_SHA256).unwrap();
    assert_rv(ck!(C_DigestKey, s, 0xdead_beef), CKR_KEY_HANDLE_INVALID);
    close(s).unwrap();
}

fn jefe(s: CK_SESSION_HANDLE, extra: &[Attr]) -> CK_OBJECT_HANDLE {
    create(s, &generic_tmpl(b"Jefe", extra)).expect("import HMAC key")
}

#[test]
fn hmac_rfc4231_case2() {
    let s = user_session(fx().token());
    let (k, data, cases) = hmac_case(s);
    for (m, want) in cases {
        let mech = Mech::new(m);
        let want = hex(want);
        assert_eq!(sign(s, &mech, k, data).unwrap(), want, "sign 0x{m:x}");
        assert_eq!(sign_parts(s, &mech, k, &chunks(data, ODD)).unwrap(), want, "multi-part sign 0x{m:x}");
        verify(s, &mech, k, data, &want).unwrap();
        verify_parts(s, &mech, k, &chunks(data, ODD), &want).unwrap();

        let mut bad = want.clone();
        bad[0] ^= 1;
        expect_rv(verify(s, &mech, k, data, &bad), CKR_SIGNATURE_INVALID);
        expect_rv(verify_parts(s, &mech, k, &chunks(data, ODD), &bad), CKR_SIGNATURE_INVALID);
        expect_rv(verify(s, &mech, k, b"something else", &want), CKR_SIGNATURE_INVALID);
        let mut long = want.clone();
        long.push(0);
        for sig in [&want[..want.len() - 1], &long[..], &[][..]] {
            expect_rv(verify(s, &mech, k, data, sig), CKR_SIGNATURE_LEN_RANGE);
        }
        expect_rv(verify_parts(s, &mech, k, &[data], &want[..10]), CKR_SIGNATURE_LEN_RANGE);
    }
    close(s).unwrap();
}

#[test]
fn hmac_buffers_state_and_keys() {
    let s = user_session(fx().token());
    let (k, data, cases) = hmac_case(s);
    let mech = Mech::new(CKM_SHA512_HMAC);
    let want = hex(cases[2].1);
    let p = data.as_ptr() as *mut u8;
    let n = data.len() as CK_ULONG;

    sign_init(s, &mech, k).unwrap();
    expect_rv(sign_init(s, &mech, k), CKR_OPERATION_ACTIVE);
    let mut l: CK_ULONG = 0;
    assert_rv(ck!(C_Sign, s, p, n, ptr::null_mut(), &mut l), CKR_OK);
    assert_eq!(l, 64);
    let mut out = [0u8; 64];
    l = 63;
    assert_rv(ck!(C_Sign, s, p, n, out.as_mut_ptr(), &mut l), CKR_BUFFER_TOO_SMALL);
    assert_eq!(l, 64);
    assert_rv(ck!(C_Sign, s, p, n, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(out[..], want[..]);
    assert_rv(ck!(C_Sign, s, p, n, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(ck!(C_Verify, s, p, n, out.as_mut_ptr(), 64), CKR_OPERATION_NOT_INITIALIZED);

    // Multi-part: a too-small C_SignFinal buffer keeps the operation.
    sign_init(s, &mech, k).unwrap();
    assert_rv(ck!(C_SignUpdate, s, p, n), CKR_OK);
    let mut l: CK_ULONG = 32;
    assert_rv(ck!(C_SignFinal, s, out.as_mut_ptr(), &mut l), CKR_BUFFER_TOO_SMALL);
    assert_eq!(l, 64);
    out = [0; 64];
    assert_rv(ck!(C_SignFinal, s, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(out[..], want[..]);
    expect_rv(rv(ck!(C_SignUpdate, s, p, n)), CKR_OPERATION_NOT_INITIALIZED);

    // A failed verification ends the operation.
    verify_init(s, &mech, k).unwrap();
    assert_rv(ck!(C_Verify, s, p, n, [0u8; 64].as_ptr() as *mut u8, 64), CKR_SIGNATURE_INVALID);
    assert_rv(ck!(C_Verify, s, p, n, out.as_mut_ptr(), 64), CKR_OPERATION_NOT_INITIALIZED);

    // Generated HMAC keys round-trip, and differ from one another.
    let gen = Mech::new(CKM_GENERIC_SECRET_KEY_GEN);
    let g1 = gen_key(s, &gen, &[au(CKA_VALUE_LEN, 32)]).unwrap();
    let g2 = gen_key(s, &gen, &[au(CKA_VALUE_LEN, 32)]).unwrap();
    let m256 = Mech::new(CKM_SHA256_HMAC);
    let t1 = sign(s, &m256, g1, b"data").unwrap();
    verify(s, &m256, g1, b"data", &t1).unwrap();
    assert_ne!(t1, sign(s, &m256, g2, b"data").unwrap());
    expect_rv(verify(s, &m256, g2, b"data", &t1), CKR_SIGNATURE_INVALID);
    expect_rv(sign_init(s, &m256, 0xdead_beef), CKR_KEY_HANDLE_INVALID);
    close(s).unwrap();
}

//! SHA-1/2 digests (FIPS 180 "abc") and HMAC (RFC 4231 test case 2; case 6 on SoftHSM2); and
//! the whole mechanism list, each mechanism's exact flags exercised.
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

/// RFC 4231's test case 2 message under a 1-byte key (0xaa) and the 1024-byte key
/// ((7i + 1) mod 256 for i in 0..1024): the shortest and longest HMAC keys keyfront takes.
/// Expected MACs from `openssl dgst -sha256 -mac HMAC -macopt hexkey:…` (and -sha384,
/// -sha512), cross-checked with Python's hmac module.
const HMAC_LIMITS: [(CK_MECHANISM_TYPE, &str, &str); 3] = [
    (
        CKM_SHA256_HMAC,
        "4ef89b75bc865859ad32c1ea7af78e2d180197348a7dab56350933ae2a5f4574",
        "85dc5dfcb472f0fe1c8a20cbb0f7f3ca4497ad30b000f6f45807a82be921046c",
    ),
    (
        CKM_SHA384_HMAC,
        "9447e3bcda7ac6653add6e84c901aa529bad51370b97e44b001f663a7143566062b83d1eace3a4c7f4e7a0f06b5afa97",
        "8c57947a3b60f2f3c4131fde2c0ebc812bedc9a6722827b2ccb9af62f9c99664c63d833d8d6956f06e04f958cc116956",
    ),
    (
        CKM_SHA512_HMAC,
        "024470d7a924457cf4565a30d4bf1b8728027300bcfcca7513134dfd6fa2996d0abc57f301b461db3388ccddd97509aef9bd6337f5b806fefea9cdda1cfca037",
        "3a5bfc2e650d7e151243ec36a0d90f2c159f36d8bbeb0d17dd547277dbff56e240409b675c8aebdb3da2dff7e3161a183bd8bd8f6e48d8176b8825f5cd73c0be",
    ),
];

/// The longest generic secret key, in bytes: what HMAC takes and key generation makes.
const MAX_SECRET: CK_ULONG = 1024;

fn long_hmac_key(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 1) as u8).collect()
}

/// One maximum for generic secret keys: C_GetMechanismInfo reports 8 to 8192 bits for
/// CKM_GENERIC_SECRET_KEY_GEN (PKCS#11 3.0 counts its sizes in bits) and 1 to 1024 bytes for
/// the HMAC mechanisms (3.0 names no unit for them: bytes, as SoftHSM2 reports them); key
/// generation and HMAC accept exactly that and refuse one byte either side with
/// CKR_KEY_SIZE_RANGE.
#[test]
fn generic_secret_and_hmac_key_size_limits() {
    let slot = fx().token();
    let s = user_session(slot);
    let gen = Mech::new(CKM_GENERIC_SECRET_KEY_GEN);
    let keygen = |len: CK_ULONG| gen_key(s, &gen, &[au(CKA_VALUE_LEN, len), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]);
    if backend().is_forwarded() {
        // SoftHSM2's own limits: any length from 1 byte (0 is CKR_TEMPLATE_INCOMPLETE), and
        // HMAC keys at least as long as the digest.
        skip_note("SoftHSM2 has its own generic secret and HMAC key limits");
        expect_rv(keygen(0), CKR_TEMPLATE_INCOMPLETE);
        assert_eq!(get_attr(s, keygen(MAX_SECRET + 1).unwrap(), CKA_VALUE).unwrap().len(), 1025);
        let short = create(s, &generic_tmpl(&[0xaa], &[])).unwrap();
        expect_rv(sign_init(s, &Mech::new(CKM_SHA256_HMAC), short), CKR_KEY_SIZE_RANGE);
        close(s).unwrap();
        return;
    }
    let mut info = CK_MECHANISM_INFO::default();
    assert_rv(ck!(C_GetMechanismInfo, slot, CKM_GENERIC_SECRET_KEY_GEN, &mut info), CKR_OK);
    assert_eq!((info.ulMinKeySize, info.ulMaxKeySize), (8, 8 * MAX_SECRET), "generic secret key generation, bits");
    for (m, _, _) in HMAC_LIMITS {
        assert_rv(ck!(C_GetMechanismInfo, slot, m, &mut info), CKR_OK);
        assert_eq!((info.ulMinKeySize, info.ulMaxKeySize), (1, MAX_SECRET), "mechanism 0x{m:x}, bytes");
    }
    for len in [1, MAX_SECRET] {
        assert_eq!(get_attr(s, keygen(len).unwrap(), CKA_VALUE).unwrap().len(), len as usize);
    }
    expect_rv(keygen(0), CKR_KEY_SIZE_RANGE);
    expect_rv(keygen(MAX_SECRET + 1), CKR_KEY_SIZE_RANGE);

    let shortest = create(s, &generic_tmpl(&[0xaa], &[])).unwrap();
    let longest = create(s, &generic_tmpl(&long_hmac_key(1024), &[])).unwrap();
    let too_long = create(s, &generic_tmpl(&long_hmac_key(1025), &[])).unwrap();
    for (m, short_mac, long_mac) in HMAC_LIMITS {
        let mech = Mech::new(m);
        for (k, want) in [(shortest, short_mac), (longest, long_mac)] {
            let want = hex(want);
            assert_eq!(sign(s, &mech, k, JEFE_DATA).unwrap(), want, "0x{m:x}");
            verify(s, &mech, k, JEFE_DATA, &want).unwrap();
        }
        expect_rv(sign_init(s, &mech, too_long), CKR_KEY_SIZE_RANGE);
        expect_rv(verify_init(s, &mech, too_long), CKR_KEY_SIZE_RANGE);
    }
    close(s).unwrap();
}

/// C_DigestKey digests only a secret key whose value could be read: a sensitive key, a public
/// key or a data object is CKR_KEY_INDIGESTIBLE, and the error ends the digest (keyfront ends
/// an operation on any error but CKR_BUFFER_TOO_SMALL; PKCS#11 says so of C_DigestUpdate and
/// leaves C_DigestKey unsaid). On a forwarding slot keyfront digests itself and never reads a
/// vendor key's value: every key there is indigestible.
#[test]
fn digest_key_refuses_what_it_may_not_read() {
    let s = user_session(fx().token());
    let sensitive = aes_key(s, &[3; 16], &[ab(CKA_SENSITIVE, true), ab(CKA_EXTRACTABLE, true)]);
    let unextractable = aes_key(s, &[3; 16], &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, false)]);
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (public, _) = gen_key_pair(s, &Mech::new(CKM_EC_KEY_PAIR_GEN), &[av(CKA_EC_PARAMS, p256)], &[]).unwrap();
    let data = create(s, &data_tmpl("not a key", &[])).unwrap();
    for (i, k) in [sensitive, unextractable, public, data].into_iter().enumerate() {
        digest_init(s, CKM_SHA256).unwrap();
        digest_update(s, b"before").unwrap();
        assert_rv(ck!(C_DigestKey, s, k), CKR_KEY_INDIGESTIBLE);
        expect_rv(digest_final(s), CKR_OPERATION_NOT_INITIALIZED);
        expect_rv(digest_update(s, b"after"), CKR_OPERATION_NOT_INITIALIZED);
        // A new digest starts afresh.
        assert_eq!(digest(s, CKM_SHA256, b"abc").unwrap(), hex(ABC[1].1), "case {i}");
    }
    close(s).unwrap();
}

/// The HMAC mechanisms take generic secret keys (and their own HMAC key types), not AES
/// keys: CKR_KEY_TYPE_INCONSISTENT, as SoftHSM2 answers too.
#[test]
fn hmac_refuses_an_aes_key() {
    let s = user_session(fx().token());
    let aes = aes_key(s, &[9; 32], &[ab(CKA_SIGN, true), ab(CKA_VERIFY, true)]);
    for (m, _) in HMAC_JEFE {
        expect_rv(sign_init(s, &Mech::new(m), aes), CKR_KEY_TYPE_INCONSISTENT);
        expect_rv(verify_init(s, &Mech::new(m), aes), CKR_KEY_TYPE_INCONSISTENT);
    }
    // Nothing was started: a sign with a proper key goes ahead.
    let (k, data, cases) = hmac_case(s);
    assert_eq!(sign(s, &Mech::new(cases[0].0), k, data).unwrap(), hex(cases[0].1));
    close(s).unwrap();
}

/// A second C_VerifyInit while a verification runs is CKR_OPERATION_ACTIVE, and the first
/// one carries on.
#[test]
fn verify_init_while_verifying_is_operation_active() {
    let s = user_session(fx().token());
    let (k, data, cases) = hmac_case(s);
    let mech = Mech::new(cases[0].0);
    let mac = hex(cases[0].1);
    verify_init(s, &mech, k).unwrap();
    expect_rv(verify_init(s, &Mech::new(cases[1].0), k), CKR_OPERATION_ACTIVE);
    assert_rv(ck!(C_Verify, s, data.as_ptr() as *mut u8, data.len() as CK_ULONG, mac.as_ptr() as *mut u8, mac.len() as CK_ULONG), CKR_OK);
    close(s).unwrap();
}

/// C_SeedRandom: keyfront's generator is the operating system's, which takes no seed from
/// applications: CKR_RANDOM_SEED_NOT_SUPPORTED, on a forwarding slot too (the generator is
/// keyfront's there as well). The random generator still works afterwards.
#[test]
fn seed_random_is_not_supported() {
    let s = open(fx().token(), false).unwrap();
    let seed = [1u8, 2, 3, 4];
    assert_rv(ck!(C_SeedRandom, s, seed.as_ptr() as *mut u8, 4), CKR_RANDOM_SEED_NOT_SUPPORTED);
    assert_eq!(random(s, 16).unwrap().len(), 16);
    close(s).unwrap();
    assert_rv(ck!(C_SeedRandom, s, seed.as_ptr() as *mut u8, 4), CKR_SESSION_HANDLE_INVALID);
}

/// PKCS#11: C_Digest, C_Sign and C_Verify "cannot be used to terminate a multi-part
/// operation". After C_DigestUpdate, C_DigestKey, C_SignUpdate or C_VerifyUpdate the
/// single-part call is CKR_OPERATION_NOT_INITIALIZED and the operation is over, as SoftHSM2
/// answers C_Sign and C_Verify after an update.
#[test]
fn single_part_call_after_update_is_refused() {
    let s = user_session(fx().token());
    let p = b"abc".as_ptr() as *mut u8;
    let mut out = [0u8; 64];

    let digestible = aes_key(s, &[4; 16], &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]);
    let feeds: [&dyn Fn() -> CK_RV; 2] = [&|| ck!(C_DigestUpdate, s, p, 3), &|| ck!(C_DigestKey, s, digestible)];
    for (i, feed) in feeds.iter().enumerate() {
        if i == 1 && backend().is_forwarded() {
            skip_note("C_DigestKey of a vendor key is CKR_KEY_INDIGESTIBLE (digest_key_equals_digest_of_value)");
            continue;
        }
        digest_init(s, CKM_SHA256).unwrap();
        assert_rv(feed(), CKR_OK);
        let mut l: CK_ULONG = 64;
        assert_rv(ck!(C_Digest, s, p, 3, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);
        expect_rv(digest_final(s), CKR_OPERATION_NOT_INITIALIZED);
    }
    digest_init(s, CKM_SHA256).unwrap();
    let mut l: CK_ULONG = 64;
    assert_rv(ck!(C_Digest, s, p, 3, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(out[..32], hex(ABC[1].1)[..], "C_Digest alone");

    let (k, data, cases) = hmac_case(s);
    let mech = Mech::new(cases[0].0);
    let mac = hex(cases[0].1);
    let (d, n) = (data.as_ptr() as *mut u8, data.len() as CK_ULONG);
    sign_init(s, &mech, k).unwrap();
    assert_rv(ck!(C_SignUpdate, s, d, n), CKR_OK);
    let mut l: CK_ULONG = 64;
    assert_rv(ck!(C_Sign, s, d, n, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);
    l = 64;
    assert_rv(ck!(C_SignFinal, s, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);

    verify_init(s, &mech, k).unwrap();
    assert_rv(ck!(C_VerifyUpdate, s, d, n), CKR_OK);
    assert_rv(ck!(C_Verify, s, d, n, mac.as_ptr() as *mut u8, mac.len() as CK_ULONG), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(ck!(C_VerifyFinal, s, mac.as_ptr() as *mut u8, mac.len() as CK_ULONG), CKR_OPERATION_NOT_INITIALIZED);
    // The multi-part calls finish what they began.
    assert_eq!(sign_parts(s, &mech, k, &[data]).unwrap(), mac);
    verify_parts(s, &mech, k, &[data], &mac).unwrap();
    close(s).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The whole mechanism list: exact flags, each one exercised

const ED: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const WU: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;
const SV: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
/// P-256 by OID, uncompressed points.
const EC_CAPS: CK_FLAGS = CKF_EC_F_P | CKF_EC_OID | CKF_EC_UNCOMPRESS;
/// edwards25519 by OID or curve name.
const ED_CAPS: CK_FLAGS = CKF_EC_F_P | CKF_EC_OID | CKF_EC_CURVENAME;

/// What the soft token lists, and C_GetMechanismInfo reports for each: flags (exactly),
/// smallest and largest key. AES sizes in bytes, generic secret key generation in bits,
/// HMAC in bytes, RSA modulus bits, EC and EdDSA the curve's field bits.
const SOFT_MECHANISMS: &[(CK_MECHANISM_TYPE, CK_FLAGS, CK_ULONG, CK_ULONG)] = &[
    (CKM_AES_KEY_GEN, CKF_GENERATE, 16, 32),
    (CKM_AES_ECB, ED | WU, 16, 32),
    (CKM_AES_CBC, ED | WU, 16, 32),
    (CKM_AES_CBC_PAD, ED | WU, 16, 32),
    (CKM_AES_CTR, ED, 16, 32),
    (CKM_AES_GCM, ED | WU, 16, 32),
    (CKM_AES_KEY_WRAP, ED | WU, 16, 32),
    (CKM_AES_KEY_WRAP_PAD, ED | WU, 16, 32),
    (CKM_AES_KEY_WRAP_KWP, ED | WU, 16, 32),
    (CKM_GENERIC_SECRET_KEY_GEN, CKF_GENERATE, 8, 8 * MAX_SECRET),
    (CKM_SHA_1, CKF_DIGEST, 0, 0),
    (CKM_SHA256, CKF_DIGEST, 0, 0),
    (CKM_SHA384, CKF_DIGEST, 0, 0),
    (CKM_SHA512, CKF_DIGEST, 0, 0),
    (CKM_SHA256_HMAC, SV, 1, MAX_SECRET),
    (CKM_SHA384_HMAC, SV, 1, MAX_SECRET),
    (CKM_SHA512_HMAC, SV, 1, MAX_SECRET),
    (CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, 2048, 4096),
    (CKM_RSA_PKCS, ED | SV | WU, 2048, 8192),
    (CKM_RSA_X_509, ED | SV, 2048, 8192),
    (CKM_RSA_PKCS_OAEP, ED | WU, 2048, 8192),
    (CKM_RSA_PKCS_PSS, SV, 2048, 8192),
    (CKM_SHA1_RSA_PKCS, SV, 2048, 8192),
    (CKM_SHA256_RSA_PKCS, SV, 2048, 8192),
    (CKM_SHA384_RSA_PKCS, SV, 2048, 8192),
    (CKM_SHA512_RSA_PKCS, SV, 2048, 8192),
    (CKM_SHA1_RSA_PKCS_PSS, SV, 2048, 8192),
    (CKM_SHA256_RSA_PKCS_PSS, SV, 2048, 8192),
    (CKM_SHA384_RSA_PKCS_PSS, SV, 2048, 8192),
    (CKM_SHA512_RSA_PKCS_PSS, SV, 2048, 8192),
    (CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR | EC_CAPS, 256, 256),
    (CKM_ECDSA, SV | EC_CAPS, 256, 256),
    (CKM_ECDSA_SHA1, SV | EC_CAPS, 256, 256),
    (CKM_ECDSA_SHA256, SV | EC_CAPS, 256, 256),
    (CKM_ECDSA_SHA384, SV | EC_CAPS, 256, 256),
    (CKM_ECDSA_SHA512, SV | EC_CAPS, 256, 256),
    (CKM_ECDH1_DERIVE, CKF_DERIVE | EC_CAPS, 256, 256),
    (CKM_EC_EDWARDS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR | ED_CAPS, 255, 255),
    (CKM_EDDSA, SV | ED_CAPS, 255, 255),
];

/// The functions a mechanism's flags name (the EC capability flags are exercised by the key
/// pair generations).
const FUNCTIONS: [CK_FLAGS; 10] =
    [CKF_ENCRYPT, CKF_DECRYPT, CKF_DIGEST, CKF_SIGN, CKF_VERIFY, CKF_GENERATE, CKF_GENERATE_KEY_PAIR, CKF_WRAP, CKF_UNWRAP, CKF_DERIVE];

const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const ED448_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x71];
/// DER PrintableString "edwards25519".
const ED25519_CURVE_NAME: &[u8] = b"\x13\x0cedwards25519";

/// A `#[repr(C)]` parameter structure as the bytes of `pParameter`.
fn raw_param<T>(ty: CK_MECHANISM_TYPE, p: &T) -> Mech {
    // SAFETY: `p` is a live `T`; its bytes are copied, not interpreted.
    Mech::bytes(ty, unsafe { std::slice::from_raw_parts(p as *const T as *const u8, std::mem::size_of::<T>()) })
}

/// The hash and MGF of the RSA mechanisms that hash, SHA-256 for the others.
fn rsa_hash(m: CK_MECHANISM_TYPE) -> (CK_MECHANISM_TYPE, CK_RSA_PKCS_MGF_TYPE, CK_ULONG) {
    match m {
        CKM_SHA1_RSA_PKCS_PSS => (CKM_SHA_1, CKG_MGF1_SHA1, 20),
        CKM_SHA384_RSA_PKCS_PSS => (CKM_SHA384, CKG_MGF1_SHA384, 48),
        CKM_SHA512_RSA_PKCS_PSS => (CKM_SHA512, CKG_MGF1_SHA512, 64),
        _ => (CKM_SHA256, CKG_MGF1_SHA256, 32),
    }
}

/// Keys for every mechanism family, made once per walk.
struct WalkKeys {
    aes: [CK_OBJECT_HANDLE; 2],
    hmac: [CK_OBJECT_HANDLE; 2],
    /// An extractable AES key to wrap.
    target: CK_OBJECT_HANDLE,
    rsa: (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE),
    ec: (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE),
    ec_peer: (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE),
    ed: (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE),
}

impl WalkKeys {
    /// (key for encrypt/verify/wrap, key for decrypt/sign/unwrap/derive) of `m`'s family.
    fn pair(&self, m: CK_MECHANISM_TYPE) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
        match m {
            CKM_SHA256_HMAC | CKM_SHA384_HMAC | CKM_SHA512_HMAC => (self.hmac[0], self.hmac[0]),
            CKM_RSA_PKCS..=CKM_SHA512_RSA_PKCS_PSS => self.rsa,
            CKM_ECDSA..=CKM_ECDH1_DERIVE => self.ec,
            CKM_EDDSA => self.ed,
            _ => (self.aes[0], self.aes[0]),
        }
    }
}

/// The mechanism with the parameter the walk uses for it.
fn walk_mech(m: CK_MECHANISM_TYPE, ecdh_public: &[u8]) -> Mech {
    match m {
        CKM_AES_CBC | CKM_AES_CBC_PAD => Mech::bytes(m, &[0x11; 16]),
        CKM_AES_CTR => Mech::ctr(64, &[0x22; 16]),
        CKM_AES_GCM => Mech::gcm(&[0x33; 12], b"walk", 128),
        CKM_RSA_PKCS_OAEP => {
            let p = CK_RSA_PKCS_OAEP_PARAMS { hashAlg: CKM_SHA256, mgf: CKG_MGF1_SHA256, source: CKZ_DATA_SPECIFIED, pSourceData: ptr::null_mut(), ulSourceDataLen: 0 };
            raw_param(m, &p)
        }
        CKM_RSA_PKCS_PSS | CKM_SHA1_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS | CKM_SHA384_RSA_PKCS_PSS | CKM_SHA512_RSA_PKCS_PSS => {
            let (hash, mgf, salt) = rsa_hash(m);
            raw_param(m, &CK_RSA_PKCS_PSS_PARAMS { hashAlg: hash, mgf, sLen: salt })
        }
        CKM_ECDH1_DERIVE => {
            let p = CK_ECDH1_DERIVE_PARAMS {
                kdf: CKD_NULL,
                ulSharedDataLen: 0,
                pSharedData: ptr::null_mut(),
                ulPublicDataLen: ecdh_public.len() as CK_ULONG,
                pPublicData: ecdh_public.as_ptr() as *mut u8,
            };
            raw_param(m, &p)
        }
        _ => Mech::new(m),
    }
}

/// Data a sign mechanism takes: a digest (or DigestInfo, or modulus-sized block) for the
/// mechanisms that do not hash, any message for the others.
fn walk_data(m: CK_MECHANISM_TYPE) -> Vec<u8> {
    match m {
        CKM_RSA_X_509 => [vec![0], vec![0x5a; 255]].concat(),
        CKM_RSA_PKCS => vec![0x30; 51],
        CKM_RSA_PKCS_PSS | CKM_ECDSA => vec![0x77; 32],
        _ => b"every mechanism, every flag".to_vec(),
    }
}

/// Each function `m` offers works; each it does not offer is CKR_MECHANISM_INVALID at its
/// init (or at C_GenerateKey, C_WrapKey… for the one-call functions).
fn exercise(s: CK_SESSION_HANDLE, keys: &WalkKeys, m: CK_MECHANISM_TYPE, flags: CK_FLAGS, ec_point: &[u8]) {
    let mech = walk_mech(m, ec_point);
    let (public, private) = keys.pair(m);
    let aes_tmpl = [au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_AES), au(CKA_VALUE_LEN, 32), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)];
    let secret_tmpl = [au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_GENERIC_SECRET), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)];
    let data = walk_data(m);
    for f in FUNCTIONS {
        let name = format!("mechanism 0x{m:x}, function 0x{f:x}");
        if flags & f == 0 {
            let got = match f {
                CKF_ENCRYPT => encrypt_init(s, &mech, public),
                CKF_DECRYPT => decrypt_init(s, &mech, private),
                CKF_DIGEST => mech.with(|mp| rv(ck!(C_DigestInit, s, mp))),
                CKF_SIGN => sign_init(s, &mech, private),
                CKF_VERIFY => verify_init(s, &mech, public),
                CKF_GENERATE => gen_key(s, &mech, &[au(CKA_VALUE_LEN, 32)]).map(drop),
                CKF_GENERATE_KEY_PAIR => gen_key_pair(s, &mech, &[], &[]).map(drop),
                CKF_WRAP => wrap(s, &mech, public, keys.target).map(drop),
                CKF_UNWRAP => unwrap(s, &mech, private, &[0; 48], &aes_tmpl).map(drop),
                _ => derive(s, &mech, private, &secret_tmpl).map(drop),
            };
            assert_eq!(got, Err(Ck(CKR_MECHANISM_INVALID)), "{name}: not offered");
            continue;
        }
        match f {
            // Encryption and decryption together, with the smallest and largest AES keys.
            CKF_ENCRYPT if m >= CKM_AES_KEY_GEN => {
                for k in keys.aes {
                    let ct = encrypt(s, &mech, k, &[0x42; 32]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                    assert_eq!(decrypt(s, &mech, k, &ct).unwrap(), [0x42; 32], "{name}");
                }
            }
            CKF_ENCRYPT => {
                let pt = if m == CKM_RSA_X_509 { data.clone() } else { vec![0x42; 32] };
                let ct = encrypt(s, &mech, public, &pt).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert_eq!(ct.len(), 256, "{name}");
                assert_eq!(decrypt(s, &mech, private, &ct).unwrap(), pt, "{name}");
            }
            CKF_DECRYPT => assert!(flags & CKF_ENCRYPT != 0, "{name}: decrypt exercised with encrypt"),
            CKF_DIGEST => {
                let len = match m {
                    CKM_SHA_1 => 20,
                    CKM_SHA256 => 32,
                    CKM_SHA384 => 48,
                    _ => 64,
                };
                assert_eq!(digest(s, m, &data).unwrap().len(), len, "{name}");
            }
            // Sign and verify together; HMAC with the shortest and longest keys.
            CKF_SIGN => {
                let pairs: Vec<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> =
                    if public == keys.hmac[0] { keys.hmac.iter().map(|&k| (k, k)).collect() } else { vec![(public, private)] };
                for (public, private) in pairs {
                    let sig = sign(s, &mech, private, &data).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                    verify(s, &mech, public, &data, &sig).unwrap_or_else(|e| panic!("{name}: verify {e:?}"));
                    let mut bad = sig.clone();
                    bad[sig.len() / 2] ^= 1;
                    expect_rv(verify(s, &mech, public, &data, &bad), CKR_SIGNATURE_INVALID);
                }
            }
            CKF_VERIFY => assert!(flags & CKF_SIGN != 0, "{name}: verify exercised with sign"),
            // Wrap and unwrap together: an extractable 32-byte AES key, with the smallest and
            // largest AES wrapping keys.
            CKF_WRAP => {
                let wrappers: Vec<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> =
                    if m >= CKM_AES_KEY_GEN { keys.aes.iter().map(|&k| (k, k)).collect() } else { vec![(public, private)] };
                let value = get_attr(s, keys.target, CKA_VALUE).unwrap();
                for (wrapping, unwrapping) in wrappers {
                    let wrapped = wrap(s, &mech, wrapping, keys.target).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                    let back = unwrap(s, &mech, unwrapping, &wrapped, &aes_tmpl).unwrap_or_else(|e| panic!("{name}: unwrap {e:?}"));
                    assert_eq!(get_attr(s, back, CKA_VALUE).unwrap(), value, "{name}");
                }
            }
            CKF_UNWRAP => assert!(flags & CKF_WRAP != 0, "{name}: unwrap exercised with wrap"),
            CKF_DERIVE => {
                // Both sides of the exchange derive the same secret (CKD_NULL: the shared x).
                let ours = derive(s, &mech, keys.ec.1, &secret_tmpl).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                let our_point = get_attr(s, keys.ec.0, CKA_EC_POINT).unwrap();
                let theirs = derive(s, &walk_mech(m, &our_point), keys.ec_peer.1, &secret_tmpl).unwrap();
                let z = get_attr(s, ours, CKA_VALUE).unwrap();
                assert_eq!(z.len(), 32, "{name}");
                assert_eq!(z, get_attr(s, theirs, CKA_VALUE).unwrap(), "{name}");
            }
            // Generation: the smallest and largest keys, and one either side of them.
            CKF_GENERATE => {
                let (min, max) = if m == CKM_AES_KEY_GEN { (16, 32) } else { (1, MAX_SECRET) };
                for len in [min, max] {
                    let k = gen_key(s, &mech, &[au(CKA_VALUE_LEN, len)]).unwrap_or_else(|e| panic!("{name}: {len} bytes {e:?}"));
                    assert_eq!(get_ulong(s, k, CKA_VALUE_LEN).unwrap(), len, "{name}");
                }
                for len in [min - 1, max + 1] {
                    expect_rv(gen_key(s, &mech, &[au(CKA_VALUE_LEN, len)]), CKR_KEY_SIZE_RANGE);
                }
            }
            CKF_GENERATE_KEY_PAIR => match m {
                // 2048 bits made (slow in a debug build: the largest is not); one bit either
                // side of 2048..=4096 refused.
                CKM_RSA_PKCS_KEY_PAIR_GEN => {
                    assert_eq!(get_ulong(s, keys.rsa.0, CKA_MODULUS_BITS).unwrap(), 2048);
                    for bits in [2047, 4097] {
                        let public = [au(CKA_MODULUS_BITS, bits), av(CKA_PUBLIC_EXPONENT, [1, 0, 1])];
                        expect_rv(gen_key_pair(s, &mech, &public, &[]), CKR_KEY_SIZE_RANGE);
                    }
                }
                // By OID (CKF_EC_OID), the point uncompressed (CKF_EC_UNCOMPRESS); the only
                // curve: others are CKR_CURVE_NOT_SUPPORTED.
                CKM_EC_KEY_PAIR_GEN => {
                    let point = get_attr(s, keys.ec.0, CKA_EC_POINT).unwrap();
                    assert_eq!(point[..3], [0x04, 0x41, 0x04], "{name}: DER OCTET STRING of an uncompressed point");
                    expect_rv(gen_key_pair(s, &mech, &[av(CKA_EC_PARAMS, P384_OID)], &[]), CKR_CURVE_NOT_SUPPORTED);
                }
                // By OID and by curve name (CKF_EC_CURVENAME).
                _ => {
                    let (named, _) = gen_key_pair(s, &mech, &[av(CKA_EC_PARAMS, ED25519_CURVE_NAME)], &[]).unwrap();
                    assert_eq!(get_attr(s, named, CKA_EC_PARAMS).unwrap(), ED25519_OID, "{name}");
                    expect_rv(gen_key_pair(s, &mech, &[av(CKA_EC_PARAMS, ED448_OID)], &[]), CKR_CURVE_NOT_SUPPORTED);
                }
            },
            _ => unreachable!(),
        }
    }
}

/// `C_DeriveKey`.
fn derive(s: CK_SESSION_HANDLE, m: &Mech, base: CK_OBJECT_HANDLE, a: &[Attr]) -> R<CK_OBJECT_HANDLE> {
    let mut t: Vec<CK_ATTRIBUTE> =
        a.iter().map(|(ty, v)| CK_ATTRIBUTE { type_: *ty, pValue: v.as_ptr() as *mut _, ulValueLen: v.len() as CK_ULONG }).collect();
    let mut h = CK_INVALID_HANDLE;
    m.with(|mp| rv(ck!(C_DeriveKey, s, mp, base, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h)))?;
    Ok(h)
}

fn mechanism_list(slot: CK_SLOT_ID) -> Vec<CK_MECHANISM_TYPE> {
    let mut n: CK_ULONG = 0;
    assert_rv(ck!(C_GetMechanismList, slot, ptr::null_mut(), &mut n), CKR_OK);
    let mut list = vec![0; n as usize];
    assert_rv(ck!(C_GetMechanismList, slot, list.as_mut_ptr(), &mut n), CKR_OK);
    list.truncate(n as usize);
    list
}

/// C_GetMechanismList gives exactly the soft token's table, C_GetMechanismInfo exactly each
/// row's flags and sizes, and every flag holds: each function offered works (generation at
/// the smallest and largest sizes, one outside refused), each one not offered is refused.
#[test]
fn every_listed_mechanism_does_exactly_what_its_flags_say() {
    let slot = fx().token();
    let s = user_session(slot);
    let listed = mechanism_list(slot);
    if backend().is_forwarded() {
        // The vendor's list and flags (general.rs compares them with SoftHSM2's own): here,
        // which of the soft token's mechanisms a forwarding slot in front of SoftHSM2 2.6.1
        // offers, and that keyfront reports for them what SoftHSM2 does.
        skip_note("SoftHSM2's mechanisms and flags are its own: only the common mechanisms' information compared");
        let missing: Vec<CK_MECHANISM_TYPE> = SOFT_MECHANISMS.iter().map(|r| r.0).filter(|m| !listed.contains(m)).collect();
        let lacks = [CKM_AES_KEY_WRAP_KWP, CKM_ECDSA_SHA1, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512];
        assert_eq!(missing, lacks, "soft token mechanisms SoftHSM2 2.6.1 lacks");
        let vslot = vendor_slot(slot);
        for &(m, ..) in SOFT_MECHANISMS.iter().filter(|r| listed.contains(&r.0)) {
            let (mut ours, mut theirs) = (CK_MECHANISM_INFO::default(), CK_MECHANISM_INFO::default());
            assert_rv(ck!(C_GetMechanismInfo, slot, m, &mut ours), CKR_OK);
            assert_rv(unsafe { vendor().C_GetMechanismInfo.unwrap()(vslot, m, &mut theirs) }, CKR_OK);
            assert_eq!((ours.flags, ours.ulMinKeySize, ours.ulMaxKeySize), (theirs.flags, theirs.ulMinKeySize, theirs.ulMaxKeySize), "0x{m:x}");
        }
        close(s).unwrap();
        return;
    }
    let mut want: Vec<CK_MECHANISM_TYPE> = SOFT_MECHANISMS.iter().map(|r| r.0).collect();
    let mut got = listed.clone();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "C_GetMechanismList");
    for &(m, flags, min, max) in SOFT_MECHANISMS {
        let mut info = CK_MECHANISM_INFO::default();
        assert_rv(ck!(C_GetMechanismInfo, slot, m, &mut info), CKR_OK);
        assert_eq!((info.flags, info.ulMinKeySize, info.ulMaxKeySize), (flags, min, max), "C_GetMechanismInfo(0x{m:x})");
    }

    let rsa_public = [au(CKA_MODULUS_BITS, 2048), av(CKA_PUBLIC_EXPONENT, [1, 0, 1]), ab(CKA_ENCRYPT, true), ab(CKA_VERIFY, true), ab(CKA_WRAP, true)];
    let rsa_private = [ab(CKA_DECRYPT, true), ab(CKA_SIGN, true), ab(CKA_UNWRAP, true)];
    let ec_private = [ab(CKA_SIGN, true), ab(CKA_DERIVE, true)];
    let keys = WalkKeys {
        aes: [aes_key(s, &[0x61; 16], &[]), aes_key(s, &[0x62; 32], &[])],
        hmac: [create(s, &generic_tmpl(&[0xaa], &[])).unwrap(), create(s, &generic_tmpl(&long_hmac_key(1024), &[])).unwrap()],
        target: aes_key(s, &[0x63; 32], &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]),
        rsa: gen_key_pair(s, &Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN), &rsa_public, &rsa_private).unwrap(),
        ec: gen_key_pair(s, &Mech::new(CKM_EC_KEY_PAIR_GEN), &[av(CKA_EC_PARAMS, P256_OID), ab(CKA_VERIFY, true)], &ec_private).unwrap(),
        ec_peer: gen_key_pair(s, &Mech::new(CKM_EC_KEY_PAIR_GEN), &[av(CKA_EC_PARAMS, P256_OID)], &ec_private).unwrap(),
        ed: gen_key_pair(s, &Mech::new(CKM_EC_EDWARDS_KEY_PAIR_GEN), &[av(CKA_EC_PARAMS, ED25519_OID)], &[ab(CKA_SIGN, true)]).unwrap(),
    };
    let peer_point = get_attr(s, keys.ec_peer.0, CKA_EC_POINT).unwrap();
    for &(m, flags, ..) in SOFT_MECHANISMS {
        exercise(s, &keys, m, flags, &peer_point);
    }
    close(s).unwrap();
}

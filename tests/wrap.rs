//! AES key wrap: RFC 3394 (CKM_AES_KEY_WRAP), RFC 5649 (CKM_AES_KEY_WRAP_KWP), and
//! CKM_AES_KEY_WRAP_PAD; through C_Encrypt/C_Decrypt and C_WrapKey/C_UnwrapKey.
mod common;
use common::*;

use std::ptr;

const KW_KEK: &str = "000102030405060708090A0B0C0D0E0F";
const KW_KEY: &str = "00112233445566778899AABBCCDDEEFF";
const KW_OUT: &str = "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5";
const KWP_KEK: &str = "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8";
const KWP_KEY: &str = "c37b7e6492584340 bed1220780894115 5068f738";
const KWP_OUT: &str = "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a";

fn kw() -> Mech {
    Mech::new(CKM_AES_KEY_WRAP)
}
fn kwp() -> Mech {
    Mech::new(CKM_AES_KEY_WRAP_KWP)
}

/// The CKA_VALUE_LEN an unwrapped secret key of `len` bytes reports: SoftHSM2 leaves it 0.
fn unwrapped_value_len(len: CK_ULONG) -> CK_ULONG {
    if backend().is_soft() {
        len
    } else {
        0
    }
}

fn aes_unwrap_tmpl(extra: &[Attr]) -> Vec<Attr> {
    merge(vec![au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_AES)], extra)
}

fn ecb_of(s: CK_SESSION_HANDLE, k: CK_OBJECT_HANDLE) -> Vec<u8> {
    encrypt(s, &Mech::new(CKM_AES_ECB), k, &[0x42; 32]).unwrap()
}

#[test]
fn rfc_vectors_via_encrypt() {
    let s = user_session(fx().token());
    let kek = aes_key(s, &hex(KW_KEK), &[]);
    if backend().is_forwarded() {
        // SoftHSM2 wraps only with C_WrapKey (CKM_AES_KEY_WRAP has CKF_WRAP | CKF_UNWRAP
        // only), and has no CKM_AES_KEY_WRAP_KWP, which keyfront then does not list.
        skip_note("SoftHSM2 has no key wrap through C_Encrypt/C_Decrypt: the vectors run through C_WrapKey");
        expect_rv(encrypt_init(s, &kw(), kek), CKR_MECHANISM_INVALID);
        expect_rv(decrypt_init(s, &kw(), kek), CKR_MECHANISM_INVALID);
        expect_rv(encrypt_init(s, &kwp(), kek), CKR_MECHANISM_INVALID);
        close(s).unwrap();
        return;
    }
    assert_eq!(encrypt(s, &kw(), kek, &hex(KW_KEY)).unwrap(), hex(KW_OUT), "RFC 3394 4.1");
    assert_eq!(decrypt(s, &kw(), kek, &hex(KW_OUT)).unwrap(), hex(KW_KEY));
    // C_Decrypt decrypts data: a failed integrity check is CKR_ENCRYPTED_DATA_INVALID
    // (CKR_WRAPPED_KEY_INVALID is C_UnwrapKey's).
    let mut bad = hex(KW_OUT);
    bad[5] ^= 0x80;
    expect_rv(decrypt(s, &kw(), kek, &bad), CKR_ENCRYPTED_DATA_INVALID);
    expect_rv(encrypt(s, &kw(), kek, &[1; 12]), CKR_DATA_LEN_RANGE);
    expect_rv(decrypt(s, &kw(), kek, &hex(KW_OUT)[..20]), CKR_ENCRYPTED_DATA_LEN_RANGE);

    let kek2 = aes_key(s, &hex(KWP_KEK), &[]);
    assert_eq!(encrypt(s, &kwp(), kek2, &hex(KWP_KEY)).unwrap(), hex(KWP_OUT), "RFC 5649 6 (20 octets)");
    assert_eq!(decrypt(s, &kwp(), kek2, &hex(KWP_OUT)).unwrap(), hex(KWP_KEY));
    // RFC 5649 second vector (7 octets: one-block case), and the 8 / 9 octet boundaries.
    for (data, out) in [
        ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
        ("0102030405060708", "2231ff149c47a7030eccdea20930e216"),
        ("010203040506070809", "8a8e2b9b385be158ff5b8dd168d74d1fa0242c0cdd216e3d"),
    ] {
        assert_eq!(encrypt(s, &kwp(), kek2, &hex(data)).unwrap(), hex(out), "KWP of {data}");
        assert_eq!(decrypt(s, &kwp(), kek2, &hex(out)).unwrap(), hex(data), "KWP unwrap to {data}");
    }
    let mut bad = hex(KWP_OUT);
    bad[31] ^= 1;
    expect_rv(decrypt(s, &kwp(), kek2, &bad), CKR_ENCRYPTED_DATA_INVALID);
    close(s).unwrap();
}

#[test]
fn rfc_vectors_via_wrap_key() {
    let slot = fx().token();
    let s = user_session(slot);
    let kek = aes_key(s, &hex(KW_KEK), &[]);
    let target = aes_key(s, &hex(KW_KEY), &[ab(CKA_EXTRACTABLE, true)]);
    assert_eq!(wrap(s, &kw(), kek, target).unwrap(), hex(KW_OUT));
    let back = unwrap(s, &kw(), kek, &hex(KW_OUT), &aes_unwrap_tmpl(&[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)])).unwrap();
    assert_eq!(get_attr(s, back, CKA_VALUE).unwrap(), hex(KW_KEY));
    assert_eq!(ecb_of(s, back), ecb_of(s, target));

    let kek2 = aes_key(s, &hex(KWP_KEK), &[]);
    let target2 = create(s, &generic_tmpl(&hex(KWP_KEY), &[ab(CKA_EXTRACTABLE, true)])).unwrap();
    let tmpl = [au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_GENERIC_SECRET), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)];
    if backend().is_forwarded() {
        // SoftHSM2 has no CKM_AES_KEY_WRAP_KWP, and its CKM_AES_KEY_WRAP_PAD zero-pads the
        // key before RFC 5649 wrapping, so not RFC 5649's output: what keyfront passes on
        // must be what SoftHSM2 makes itself of the same keys.
        skip_note("no RFC 5649 on SoftHSM2: CKM_AES_KEY_WRAP_PAD compared with SoftHSM2's own wrap");
        let vs = vendor_session(slot);
        let f = vendor();
        let vkek = vendor_create(vs, &aes_tmpl(&hex(KWP_KEK), &[])).unwrap();
        let vtarget = vendor_create(vs, &generic_tmpl(&hex(KWP_KEY), &[ab(CKA_EXTRACTABLE, true)])).unwrap();
        let pad = Mech::new(CKM_AES_KEY_WRAP_PAD);
        let theirs = pad.with(|m| two_call(|o, l| unsafe { f.C_WrapKey.unwrap()(vs, m, vkek, vtarget, o, l) })).unwrap();
        let ours = wrap(s, &pad, kek2, target2).unwrap();
        assert_eq!(ours, theirs, "C_WrapKey through keyfront and by SoftHSM2");
        // What SoftHSM2 2.6.1 makes is RFC 5649 of the key zero-padded to 24 bytes (so the
        // length inside is 24, not 20): `openssl enc -id-aes192-wrap-pad -K <KWP_KEK>
        // -iv A65959A6` over KWP_KEY followed by 00000000 gives exactly this.
        assert_eq!(ours, hex("cf1e485360e1a812 6f524d01771677f9 400edb4d074f1411 6988d71e1588e367"));
        assert_ne!(ours, hex(KWP_OUT), "not RFC 5649 of the 20-byte key");
        let back2 = unwrap(s, &pad, kek2, &ours, &tmpl).unwrap();
        assert_eq!(get_attr(s, back2, CKA_VALUE).unwrap()[..20], hex(KWP_KEY)[..]);
        assert_rv(unsafe { f.C_CloseSession.unwrap()(vs) }, CKR_OK);
        close(s).unwrap();
        return;
    }
    assert_eq!(wrap(s, &kwp(), kek2, target2).unwrap(), hex(KWP_OUT));
    let back2 = unwrap(s, &kwp(), kek2, &hex(KWP_OUT), &tmpl).unwrap();
    assert_eq!(get_attr(s, back2, CKA_VALUE).unwrap(), hex(KWP_KEY));
    assert_eq!(get_ulong(s, back2, CKA_VALUE_LEN).unwrap(), 20);
    close(s).unwrap();
}

#[test]
fn wrap_unwrap_round_trips() {
    let s = user_session(fx().token());
    let kek = gen_aes(s, 32, &[]).unwrap();
    let mechs: &[CK_MECHANISM_TYPE] = if backend().is_soft() {
        &[CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD]
    } else {
        skip_note("SoftHSM2 2.6.1 has no CKM_AES_KEY_WRAP_KWP");
        &[CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD]
    };
    for &mech in mechs {
        let m = Mech::new(mech);
        for len in [16, 24, 32] {
            let k = gen_aes(s, len, &[ab(CKA_EXTRACTABLE, true)]).unwrap();
            let wrapped = wrap(s, &m, kek, k).unwrap();
            assert!(wrapped.len() >= len as usize + 8, "wrapped length {} for mechanism 0x{mech:x}", wrapped.len());
            if mech != CKM_AES_KEY_WRAP_PAD {
                assert_eq!(wrapped.len(), len as usize + 8, "mechanism 0x{mech:x}");
            }
            let u = unwrap(s, &m, kek, &wrapped, &aes_unwrap_tmpl(&[av(CKA_LABEL, "unwrapped")])).unwrap();
            assert_eq!(ecb_of(s, u), ecb_of(s, k), "unwrapped key differs (mechanism 0x{mech:x}, {len} bytes)");
            assert_eq!(get_ulong(s, u, CKA_VALUE_LEN).unwrap(), unwrapped_value_len(len));
            assert_eq!(get_ulong(s, u, CKA_KEY_TYPE).unwrap(), CKK_AES);
            assert!(!get_bool(s, u, CKA_LOCAL).unwrap(), "unwrapped keys are not local");
            expect_rv(get_attr(s, u, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
        }
        if mech == CKM_AES_KEY_WRAP_PAD && backend().is_forwarded() {
            skip_note("SoftHSM2's CKM_AES_KEY_WRAP_PAD unwraps a 20-byte key zero-padded to 24 bytes");
        } else if mech != CKM_AES_KEY_WRAP {
            // Padding mechanisms take key lengths that are not a multiple of 8.
            let v: Vec<u8> = (1..=20).collect();
            let g = create(s, &generic_tmpl(&v, &[ab(CKA_EXTRACTABLE, true)])).unwrap();
            let wrapped = wrap(s, &m, kek, g).unwrap();
            assert_eq!(wrapped.len() % 8, 0);
            let tmpl = [au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, CKK_GENERIC_SECRET), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)];
            let u = unwrap(s, &m, kek, &wrapped, &tmpl).unwrap();
            assert_eq!(get_attr(s, u, CKA_VALUE).unwrap(), v, "mechanism 0x{mech:x} with 20 bytes");
        }
    }
    close(s).unwrap();
}

#[test]
fn wrap_errors() {
    let s = user_session(fx().token());
    let kek = gen_aes(s, 16, &[]).unwrap();
    let movable = gen_aes(s, 16, &[ab(CKA_EXTRACTABLE, true)]).unwrap();
    let stuck = gen_aes(s, 16, &[]).unwrap();
    expect_rv(wrap(s, &kw(), kek, stuck), CKR_KEY_UNEXTRACTABLE);
    let nowrap = gen_aes(s, 16, &[ab(CKA_WRAP, false)]).unwrap();
    expect_rv(wrap(s, &kw(), nowrap, movable), CKR_KEY_FUNCTION_NOT_PERMITTED);
    let generic = create(s, &generic_tmpl(&[1; 16], &[])).unwrap();
    expect_rv(wrap(s, &kw(), generic, movable), CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
    expect_rv(wrap(s, &kw(), 0xdead_beef, movable), CKR_WRAPPING_KEY_HANDLE_INVALID);
    // CKA_WRAP_WITH_TRUSTED: only a CKA_TRUSTED wrapping key may wrap it.
    let guarded = gen_aes(s, 16, &[ab(CKA_EXTRACTABLE, true), ab(CKA_WRAP_WITH_TRUSTED, true)]).unwrap();
    assert!(!get_bool(s, kek, CKA_TRUSTED).unwrap(), "user-made keys are not trusted");
    expect_rv(wrap(s, &kw(), kek, guarded), CKR_KEY_NOT_WRAPPABLE);
    expect_rv(set_attrs(s, guarded, &[ab(CKA_WRAP_WITH_TRUSTED, false)]), CKR_ATTRIBUTE_READ_ONLY);
    // Only the SO may make a key trusted (PKCS#11 3.0, CKA_TRUSTED).
    expect_rv(set_attrs(s, kek, &[ab(CKA_TRUSTED, true)]), by_backend(CKR_ATTRIBUTE_READ_ONLY, CKR_ATTRIBUTE_READ_ONLY));
    expect_rv(wrap(s, &kw(), kek, 0xdead_beef), CKR_KEY_HANDLE_INVALID);

    // Length query and a too-small buffer.
    let mut len: CK_ULONG = 0;
    kw().with(|m| assert_rv(ck!(C_WrapKey, s, m, kek, movable, ptr::null_mut(), &mut len), CKR_OK));
    assert_eq!(len, 24);
    let mut out = [0u8; 24];
    let mut short: CK_ULONG = 23;
    kw().with(|m| assert_rv(ck!(C_WrapKey, s, m, kek, movable, out.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL));
    assert_eq!(short, 24);

    let wrapped = wrap(s, &kw(), kek, movable).unwrap();
    let tmpl = aes_unwrap_tmpl(&[]);
    let nounwrap = gen_aes(s, 16, &[ab(CKA_UNWRAP, false)]).unwrap();
    expect_rv(unwrap(s, &kw(), nounwrap, &wrapped, &tmpl), CKR_KEY_FUNCTION_NOT_PERMITTED);
    expect_rv(unwrap(s, &kw(), 0xdead_beef, &wrapped, &tmpl), CKR_UNWRAPPING_KEY_HANDLE_INVALID);
    expect_rv(unwrap(s, &kw(), kek, &wrapped, &[au(CKA_CLASS, CKO_SECRET_KEY)]), CKR_TEMPLATE_INCOMPLETE);
    let garbage = random(s, 24).unwrap();
    // A failed integrity check is CKR_WRAPPED_KEY_INVALID from C_UnwrapKey (not C_Decrypt's
    // CKR_ENCRYPTED_DATA_INVALID). SoftHSM2 answers it with CKR_GENERAL_ERROR; it has no
    // CKM_AES_KEY_WRAP_KWP (keyfront does not list it then).
    let integrity = by_backend(CKR_WRAPPED_KEY_INVALID, CKR_GENERAL_ERROR);
    for m in [kw(), kwp(), Mech::new(CKM_AES_KEY_WRAP_PAD)] {
        if backend().is_forwarded() && m.ty == CKM_AES_KEY_WRAP_KWP {
            expect_rv(unwrap(s, &m, kek, &garbage, &tmpl), CKR_MECHANISM_INVALID);
            continue;
        }
        expect_rv(unwrap(s, &m, kek, &garbage, &tmpl), integrity);
    }
    // Not a length RFC 3394 makes (a multiple of 8, at least 24); SoftHSM2 agrees.
    expect_rv(unwrap(s, &kw(), kek, &garbage[..20], &tmpl), CKR_WRAPPED_KEY_LEN_RANGE);
    expect_rv(unwrap(s, &kw(), kek, &garbage[..16], &tmpl), CKR_WRAPPED_KEY_LEN_RANGE);
    // Unwrapping with the wrong KEK fails the integrity check.
    let other = gen_aes(s, 16, &[]).unwrap();
    expect_rv(unwrap(s, &kw(), other, &wrapped, &tmpl), integrity);
    // A 20-byte key unwrapped as an AES key: "recognizably not a wrapped key of the proper
    // type" (PKCS#11 3.0, CKR_WRAPPED_KEY_INVALID).
    if backend().is_soft() {
        let g20 = create(s, &generic_tmpl(&[5; 20], &[ab(CKA_EXTRACTABLE, true)])).unwrap();
        for m in [kwp(), Mech::new(CKM_AES_KEY_WRAP_PAD), Mech::bytes(CKM_AES_CBC_PAD, &[1; 16])] {
            let w20 = wrap(s, &m, kek, g20).unwrap();
            expect_rv(unwrap(s, &m, kek, &w20, &tmpl), CKR_WRAPPED_KEY_INVALID);
        }
    } else {
        skip_note("SoftHSM2's CKM_AES_KEY_WRAP_PAD unwraps 20 bytes as 24 (zero-padded): a valid AES key");
    }
    // RFC 3394 wraps multiples of 8 bytes only (PKCS#11 3.0): a 20-byte key is outside the
    // sizes CKM_AES_KEY_WRAP can wrap. SoftHSM2 2.6.1 follows 2.40 and zero-pads it to 24.
    let g20 = create(s, &generic_tmpl(&[5; 20], &[ab(CKA_EXTRACTABLE, true)])).unwrap();
    match backend() {
        Backend::Soft => expect_rv(wrap(s, &kw(), kek, g20), CKR_KEY_SIZE_RANGE),
        Backend::SoftHsm2 => assert_eq!(wrap(s, &kw(), kek, g20).unwrap().len(), 32),
    }
    close(s).unwrap();
}

/// The AES mechanisms that wrap, with the parameters the tests below use.
fn aes_wrap_mechs() -> Vec<Mech> {
    vec![
        Mech::new(CKM_AES_ECB),
        Mech::bytes(CKM_AES_CBC, &[0x5a; 16]),
        Mech::bytes(CKM_AES_CBC_PAD, &[0x5a; 16]),
        Mech::gcm(&[7; 12], b"wrapped key", 128),
        kw(),
        kwp(),
        Mech::new(CKM_AES_KEY_WRAP_PAD),
    ]
}

/// The wrapped length of an `n`-byte key, or None where the mechanism cannot wrap it.
fn wrapped_len(m: CK_MECHANISM_TYPE, n: usize) -> Option<usize> {
    match m {
        // Zero-padded to whole blocks.
        CKM_AES_ECB | CKM_AES_CBC => Some(n.div_ceil(16) * 16),
        CKM_AES_CBC_PAD => Some((n / 16 + 1) * 16),
        CKM_AES_GCM => Some(n + 16),
        CKM_AES_KEY_WRAP => (n.is_multiple_of(8) && n >= 16).then_some(n + 8),
        CKM_AES_KEY_WRAP_KWP => Some(n.div_ceil(8) * 8 + 8),
        CKM_AES_KEY_WRAP_PAD => Some((n / 8 + 1) * 8 + 8),
        other => panic!("mechanism 0x{other:x}"),
    }
}

/// 16-, 24- and 32-byte AES keys and a 20-byte generic secret: (key type, value).
fn keys_to_wrap() -> Vec<(CK_KEY_TYPE, Vec<u8>)> {
    [(CKK_AES, 16u8), (CKK_AES, 24), (CKK_AES, 32), (CKK_GENERIC_SECRET, 20)]
        .into_iter()
        .map(|(t, n)| (t, (0..n).map(|i| i.wrapping_mul(29).wrapping_add(n)).collect()))
        .collect()
}

fn secret_tmpl(key_type: CK_KEY_TYPE, extra: &[Attr]) -> Vec<Attr> {
    merge(vec![au(CKA_CLASS, CKO_SECRET_KEY), au(CKA_KEY_TYPE, key_type)], extra)
}

/// Every AES mechanism with CKF_WRAP wraps AES keys of each size and a 20-byte generic
/// secret, and unwraps them back: AES-ECB and AES-CBC zero-pad the value to whole blocks and
/// cut it to the template's CKA_VALUE_LEN when unwrapping (PKCS#11 3.0, AES-ECB); the others
/// carry the length. What is wrapped is checked against C_Encrypt of the (padded) value,
/// which the known-answer tests pin down, and the unwrapped keys by value and by what they
/// encrypt.
#[test]
fn every_aes_mechanism_wraps_and_unwraps_keys() {
    let slot = fx().token();
    let s = user_session(slot);
    let kek_value = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
    let kek = aes_key(s, &kek_value, &[]);
    if backend().is_forwarded() {
        wraps_like_vendor(slot, s, &kek_value, kek);
        close(s).unwrap();
        return;
    }
    for m in aes_wrap_mechs() {
        let padded = matches!(m.ty, CKM_AES_ECB | CKM_AES_CBC);
        for (key_type, value) in keys_to_wrap() {
            let name = format!("mechanism 0x{:x}, {} bytes", m.ty, value.len());
            let k = create(s, &merge(secret_tmpl(key_type, &[av(CKA_VALUE, &value)]), &[ab(CKA_EXTRACTABLE, true)])).unwrap();
            let Some(len) = wrapped_len(m.ty, value.len()) else {
                expect_rv(wrap(s, &m, kek, k), CKR_KEY_SIZE_RANGE);
                continue;
            };
            let wrapped = wrap(s, &m, kek, k).unwrap_or_else(|e| panic!("{name}: wrap {e:?}"));
            assert_eq!(wrapped.len(), len, "{name}");
            let mut input = value.clone();
            if padded {
                input.resize(len, 0);
            }
            assert_eq!(wrapped, encrypt(s, &m, kek, &input).unwrap(), "{name}: wrapped is the encrypted (zero-padded) value");

            let len_attr = [au(CKA_VALUE_LEN, value.len() as CK_ULONG)];
            let tmpl = secret_tmpl(key_type, if padded { &len_attr } else { &[] });
            let readable = unwrap(s, &m, kek, &wrapped, &merge(tmpl.clone(), &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)])).unwrap();
            assert_eq!(get_attr(s, readable, CKA_VALUE).unwrap(), value, "{name}: unwrapped value");
            assert_eq!(get_ulong(s, readable, CKA_VALUE_LEN).unwrap(), value.len() as CK_ULONG, "{name}");
            if key_type == CKK_AES {
                let sealed = unwrap(s, &m, kek, &wrapped, &tmpl).unwrap();
                expect_rv(get_attr(s, sealed, CKA_VALUE), CKR_ATTRIBUTE_SENSITIVE);
                assert_eq!(ecb_of(s, sealed), ecb_of(s, k), "{name}: the unwrapped key encrypts as the original");
            }
        }
    }
    close(s).unwrap();
}

/// What AES-ECB and AES-CBC unwrapping does and refuses: it cuts to the template's
/// CKA_VALUE_LEN if there is one (a 24-byte AES key and a 32-byte one both wrap to 32 bytes),
/// to no more than was wrapped, and
/// secret keys only (the mechanisms "can wrap and unwrap any secret key"; a zero-padded
/// PKCS#8 document would not read back).
#[test]
fn ecb_and_cbc_unwrap_cut_to_the_key_length() {
    let s = user_session(fx().token());
    let kek = aes_key(s, &[0x3c; 16], &[]);
    if backend().is_forwarded() {
        skip_note("SoftHSM2 2.6.1 wraps with neither AES-ECB nor AES-CBC (every_aes_mechanism_wraps_and_unwraps_keys compares)");
        close(s).unwrap();
        return;
    }
    let value: Vec<u8> = (1..=24).collect();
    let k = aes_key(s, &value, &[ab(CKA_EXTRACTABLE, true)]);
    let ec = Mech::new(CKM_EC_KEY_PAIR_GEN);
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_, ec_private) = gen_key_pair(s, &ec, &[av(CKA_EC_PARAMS, p256)], &[ab(CKA_EXTRACTABLE, true)]).unwrap();
    for m in [Mech::new(CKM_AES_ECB), Mech::bytes(CKM_AES_CBC, &[9; 16])] {
        let name = format!("mechanism 0x{:x}", m.ty);
        let wrapped = wrap(s, &m, kek, k).unwrap();
        assert_eq!(wrapped.len(), 32, "{name}");
        // Without CKA_VALUE_LEN nothing says where the key ends: the whole decrypted value,
        // the 24-byte key and its 8 bytes of padding.
        let readable = [ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)];
        let whole = unwrap(s, &m, kek, &wrapped, &aes_unwrap_tmpl(&readable)).unwrap();
        assert_eq!(get_attr(s, whole, CKA_VALUE).unwrap(), [&value[..], &[0; 8]].concat(), "{name}");
        expect_rv(unwrap(s, &m, kek, &wrapped, &aes_unwrap_tmpl(&[au(CKA_VALUE_LEN, 48)])), CKR_WRAPPED_KEY_LEN_RANGE);
        // Cut as the template says, even to less than was wrapped: the first 16 bytes.
        let short = unwrap(s, &m, kek, &wrapped, &aes_unwrap_tmpl(&[au(CKA_VALUE_LEN, 16), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)])).unwrap();
        assert_eq!(get_attr(s, short, CKA_VALUE).unwrap(), value[..16], "{name}");
        // A length no AES key has is the template's error.
        expect_rv(unwrap(s, &m, kek, &wrapped, &aes_unwrap_tmpl(&[au(CKA_VALUE_LEN, 20)])), CKR_ATTRIBUTE_VALUE_INVALID);
        // Private keys: the same key wraps with RFC 5649, not with these.
        expect_rv(wrap(s, &m, kek, ec_private), CKR_KEY_NOT_WRAPPABLE);
        let p8 = wrap(s, &kwp(), kek, ec_private).unwrap();
        let private = [au(CKA_CLASS, CKO_PRIVATE_KEY), au(CKA_KEY_TYPE, CKK_EC)];
        expect_rv(unwrap(s, &m, kek, &p8[..32], &private), CKR_TEMPLATE_INCONSISTENT);
        // A wrapped key that is not whole blocks.
        expect_rv(unwrap(s, &m, kek, &wrapped[..20], &aes_unwrap_tmpl(&[au(CKA_VALUE_LEN, 16)])), CKR_WRAPPED_KEY_LEN_RANGE);
    }
    close(s).unwrap();
}

/// every_aes_mechanism_wraps_and_unwraps_keys on a forwarding slot: each wrap through
/// keyfront gives what SoftHSM2 gives for the same keys, bytes or error. SoftHSM2 2.6.1 wraps
/// with CKM_AES_KEY_WRAP (zero-padding a 20-byte key to 24, as PKCS#11 2.40 allowed),
/// CKM_AES_KEY_WRAP_PAD, and AES-CBC without padding (whole blocks only); it has no
/// CKM_AES_KEY_WRAP_KWP, and no ECB, CBC-PAD or GCM wrapping.
fn wraps_like_vendor(slot: CK_SLOT_ID, s: CK_SESSION_HANDLE, kek_value: &[u8], kek: CK_OBJECT_HANDLE) {
    skip_note("SoftHSM2 wraps its own way with its own mechanisms: each wrap compared with SoftHSM2's own");
    let vs = vendor_session(slot);
    let f = vendor();
    let vkek = vendor_create(vs, &aes_tmpl(kek_value, &[])).unwrap();
    let mut wrapped = vec![];
    for m in aes_wrap_mechs() {
        for (key_type, value) in keys_to_wrap() {
            let t = merge(secret_tmpl(key_type, &[av(CKA_VALUE, &value)]), &[ab(CKA_EXTRACTABLE, true)]);
            let (k, vk) = (create(s, &t).unwrap(), vendor_create(vs, &t).unwrap());
            let ours = wrap(s, &m, kek, k);
            let theirs = m.with(|mp| two_call(|o, l| unsafe { f.C_WrapKey.unwrap()(vs, mp, vkek, vk, o, l) }));
            assert_eq!(ours, theirs, "mechanism 0x{:x}, {} bytes", m.ty, value.len());
            if ours.is_ok() {
                wrapped.push((m.ty, value.len()));
            }
        }
    }
    // Every key with the two key wraps; with AES-CBC (unpadded) the keys that are whole blocks.
    let mut want = vec![(CKM_AES_CBC, 16), (CKM_AES_CBC, 32)];
    for m in [CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD] {
        want.extend([(m, 16), (m, 24), (m, 32), (m, 20)]);
    }
    assert_eq!(wrapped, want, "what SoftHSM2 wraps");
    assert_rv(unsafe { f.C_CloseSession.unwrap()(vs) }, CKR_OK);
}

/// CKM_AES_KEY_WRAP_PAD is RFC 3394 over the PKCS #7-padded key. The expected output is
/// RFC 3394 §4.6 (a 256-bit key under a 256-bit KEK) with 8 bytes of 0x08 appended to the key
/// data, wrapped by OpenSSL: `openssl enc -id-aes256-wrap -K 000102…1F -iv A6A6A6A6A6A6A6A6`
/// over 00112233…0E0F 0808080808080808 (the same command gives §4.6's own output for the
/// unpadded data). Through C_Encrypt and through C_WrapKey.
#[test]
fn aes_key_wrap_pad_known_answer() {
    let s = user_session(fx().token());
    let kek = aes_key(s, &hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"), &[]);
    let data = hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
    let want = hex(
        "bedda2ae2bd4d45a988036805e20310b9ad335f0b4e5ff4990fb044c6f42fb1c
         d54845d801a044a2bbc7d84a49d48390",
    );
    let pad = Mech::new(CKM_AES_KEY_WRAP_PAD);
    if backend().is_forwarded() {
        // rfc_vectors_via_wrap_key compares SoftHSM2's own 0x210A (zero padding, then RFC 5649).
        skip_note("SoftHSM2's CKM_AES_KEY_WRAP_PAD is another algorithm, and wraps only: no PKCS#7 known answer");
        close(s).unwrap();
        return;
    }
    assert_eq!(encrypt(s, &pad, kek, &data).unwrap(), want, "C_Encrypt");
    assert_eq!(decrypt(s, &pad, kek, &want).unwrap(), data, "C_Decrypt");
    let k = aes_key(s, &data, &[ab(CKA_EXTRACTABLE, true)]);
    assert_eq!(wrap(s, &pad, kek, k).unwrap(), want, "C_WrapKey");
    let back = unwrap(s, &pad, kek, &want, &aes_unwrap_tmpl(&[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)])).unwrap();
    assert_eq!(get_attr(s, back, CKA_VALUE).unwrap(), data, "C_UnwrapKey");
    // The same RFC 3394 wrapping of the unpadded key is §4.6's vector, and no PKCS#7 padding.
    let kw46 = hex("28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21");
    assert_eq!(wrap(s, &kw(), kek, k).unwrap(), kw46);
    expect_rv(decrypt(s, &pad, kek, &kw46), CKR_ENCRYPTED_DATA_INVALID);
    close(s).unwrap();
}

/// The AES key wraps are single-part mechanisms (PKCS#11 3.0, AES Key Wrap: "The mechanisms
/// support only single-part operations"): `C_EncryptUpdate` and `C_DecryptUpdate` are
/// CKR_FUNCTION_NOT_SUPPORTED, as for keyfront's other single-part mechanisms (RSA PKCS #1,
/// raw RSA, OAEP, PSS, ECDSA), and end the operation.
#[test]
fn key_wraps_are_single_part() {
    let s = user_session(fx().token());
    let kek = aes_key(s, &hex(KW_KEK), &[]);
    if backend().is_forwarded() {
        skip_note("SoftHSM2 offers its key wraps for C_WrapKey/C_UnwrapKey only (rfc_vectors_via_encrypt)");
        close(s).unwrap();
        return;
    }
    let key = hex(KW_KEY);
    for m in [kw(), kwp(), Mech::new(CKM_AES_KEY_WRAP_PAD)] {
        let ct = encrypt(s, &m, kek, &key).unwrap();
        let mut out = [0u8; 64];
        for c in [Cipher(true), Cipher(false)] {
            let name = format!("mechanism 0x{:x}, encrypt {}", m.ty, c.0);
            let (input, want) = if c.0 { (&key, &ct) } else { (&ct, &key) };
            c.init(s, &m, kek).unwrap();
            assert_eq!(c.update(s, input, Some(&mut out)).0, CKR_FUNCTION_NOT_SUPPORTED, "{name}");
            assert_eq!(c.fin(s, Some(&mut out)).0, CKR_OPERATION_NOT_INITIALIZED, "{name}");
            assert_eq!(c.once(s, input, Some(&mut out)).0, CKR_OPERATION_NOT_INITIALIZED, "{name}");
            // The single-part call is what they take.
            c.init(s, &m, kek).unwrap();
            let (code, len) = c.once(s, input, Some(&mut out));
            assert_eq!((code, &out[..len]), (CKR_OK, &want[..]), "{name}");
        }
    }
    close(s).unwrap();
}

/// keyfront's key wraps use the default initial values only: RFC 3394's A6A6A6A6A6A6A6A6
/// (CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD) and RFC 5649's A65959A6 (CKM_AES_KEY_WRAP_KWP),
/// which a caller may also pass explicitly. Any other IV is CKR_MECHANISM_PARAM_INVALID,
/// at C_EncryptInit/C_DecryptInit and at C_WrapKey/C_UnwrapKey. SoftHSM2 takes no parameter
/// at all for its key wraps (CKR_ARGUMENTS_BAD, even for the default IV).
#[test]
fn key_wrap_ivs() {
    let s = user_session(fx().token());
    let kek = aes_key(s, &hex(KW_KEK), &[]);
    let target = aes_key(s, &hex(KW_KEY), &[ab(CKA_EXTRACTABLE, true)]);
    let default_ok = [
        (Mech::bytes(CKM_AES_KEY_WRAP, &[0xA6; 8]), kw()),
        (Mech::bytes(CKM_AES_KEY_WRAP_PAD, &[0xA6; 8]), Mech::new(CKM_AES_KEY_WRAP_PAD)),
        (Mech::bytes(CKM_AES_KEY_WRAP_KWP, &hex("A65959A6")), kwp()),
    ];
    let refused = [
        Mech::bytes(CKM_AES_KEY_WRAP, &[1, 2, 3, 4, 5, 6, 7, 8]),
        Mech::bytes(CKM_AES_KEY_WRAP, &[0xA6; 7]),
        Mech::bytes(CKM_AES_KEY_WRAP, &[0xA6; 16]),
        Mech::bytes(CKM_AES_KEY_WRAP_PAD, &[0; 8]),
        Mech::bytes(CKM_AES_KEY_WRAP_KWP, &[1, 2, 3, 4]),
        Mech::bytes(CKM_AES_KEY_WRAP_KWP, &[0xA6; 8]),
    ];
    if backend().is_forwarded() {
        for m in refused.iter().chain(default_ok.iter().map(|(m, _)| m)).filter(|m| m.ty != CKM_AES_KEY_WRAP_KWP) {
            expect_rv(wrap(s, m, kek, target), CKR_ARGUMENTS_BAD);
        }
        close(s).unwrap();
        return;
    }
    for (explicit, implicit) in &default_ok {
        let name = format!("mechanism 0x{:x}", explicit.ty);
        let wrapped = wrap(s, implicit, kek, target).unwrap();
        assert_eq!(wrap(s, explicit, kek, target).unwrap(), wrapped, "{name}: the default IV named");
        assert_eq!(encrypt(s, explicit, kek, &hex(KW_KEY)).unwrap(), wrapped, "{name}");
        let back = unwrap(s, explicit, kek, &wrapped, &aes_unwrap_tmpl(&[])).unwrap();
        assert_eq!(ecb_of(s, back), ecb_of(s, target), "{name}");
    }
    let wrapped = wrap(s, &kw(), kek, target).unwrap();
    for (i, m) in refused.iter().enumerate() {
        let name = format!("refused IV #{i} (mechanism 0x{:x})", m.ty);
        assert_eq!(encrypt_init(s, m, kek), Err(Ck(CKR_MECHANISM_PARAM_INVALID)), "{name}: C_EncryptInit");
        assert_eq!(decrypt_init(s, m, kek), Err(Ck(CKR_MECHANISM_PARAM_INVALID)), "{name}: C_DecryptInit");
        assert_eq!(wrap(s, m, kek, target), Err(Ck(CKR_MECHANISM_PARAM_INVALID)), "{name}: C_WrapKey");
        assert_eq!(unwrap(s, m, kek, &wrapped, &aes_unwrap_tmpl(&[])), Err(Ck(CKR_MECHANISM_PARAM_INVALID)), "{name}: C_UnwrapKey");
    }
    close(s).unwrap();
}

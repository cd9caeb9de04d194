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
    let mut bad = hex(KW_OUT);
    bad[5] ^= 0x80;
    expect_one_of(decrypt(s, &kw(), kek, &bad), &[CKR_ENCRYPTED_DATA_INVALID, CKR_WRAPPED_KEY_INVALID]);
    expect_rv(encrypt(s, &kw(), kek, &[1; 12]), CKR_DATA_LEN_RANGE);

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
    expect_one_of(decrypt(s, &kwp(), kek2, &bad), &[CKR_ENCRYPTED_DATA_INVALID, CKR_WRAPPED_KEY_INVALID]);
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
    expect_one_of(set_attrs(s, kek, &[ab(CKA_TRUSTED, true)]), &[CKR_ATTRIBUTE_READ_ONLY, CKR_USER_NOT_LOGGED_IN]);
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
    // SoftHSM2 answers a failed integrity check with CKR_GENERAL_ERROR; it has no
    // CKM_AES_KEY_WRAP_KWP (keyfront does not list it then).
    let integrity: &[CK_RV] =
        if backend().is_soft() { &[CKR_WRAPPED_KEY_INVALID, CKR_ENCRYPTED_DATA_INVALID] } else { &[CKR_GENERAL_ERROR] };
    for m in [kw(), kwp(), Mech::new(CKM_AES_KEY_WRAP_PAD)] {
        if backend().is_forwarded() && m.ty == CKM_AES_KEY_WRAP_KWP {
            expect_rv(unwrap(s, &m, kek, &garbage, &tmpl), CKR_MECHANISM_INVALID);
            continue;
        }
        expect_one_of(unwrap(s, &m, kek, &garbage, &tmpl), integrity);
    }
    expect_one_of(
        unwrap(s, &kw(), kek, &garbage[..20], &tmpl),
        &[CKR_WRAPPED_KEY_LEN_RANGE, CKR_WRAPPED_KEY_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID],
    );
    // Unwrapping with the wrong KEK fails the integrity check.
    let other = gen_aes(s, 16, &[]).unwrap();
    expect_one_of(unwrap(s, &kw(), other, &wrapped, &tmpl), integrity);
    // The AES key from a 20-byte unwrap would be invalid.
    if backend().is_soft() {
        let g20 = create(s, &generic_tmpl(&[5; 20], &[ab(CKA_EXTRACTABLE, true)])).unwrap();
        let w20 = wrap(s, &kwp(), kek, g20).unwrap();
        expect_one_of(unwrap(s, &kwp(), kek, &w20, &tmpl), &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_WRAPPED_KEY_INVALID, CKR_KEY_SIZE_RANGE, CKR_TEMPLATE_INCONSISTENT]);
    } else {
        skip_note("SoftHSM2's CKM_AES_KEY_WRAP_PAD unwraps 20 bytes as 24 (zero-padded): a valid AES key");
    }
    close(s).unwrap();
}

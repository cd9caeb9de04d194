//! AES key generation and AES-ECB/CBC/CBC_PAD/CTR/GCM with known-answer vectors.
mod common;
use common::*;

use std::ptr;

/// NIST SP 800-38A F.1-F.5: plaintext, IV (CBC), initial counter block (CTR).
const SP_PT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                     30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
const SP_IV: &str = "000102030405060708090a0b0c0d0e0f";
const SP_CTR: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

struct Sp {
    key: &'static str,
    ecb: &'static str,
    cbc: &'static str,
    ctr: &'static str,
}

const SP: [Sp; 3] = [
    Sp {
        key: "2b7e151628aed2a6abf7158809cf4f3c",
        ecb: "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4",
        cbc: "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
        ctr: "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
    },
    Sp {
        key: "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
        ecb: "bd334f1d6e45f25ff712a214571fa5cc974104846d0ad3ad7734ecb3ecee4eefef7afd2270e2e60adce0ba2face6444e9a4b41ba738d6c72fb16691603c18e0e",
        cbc: "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd",
        ctr: "1abc932417521ca24f2b0459fe7e6e0b090339ec0aa6faefd5ccc2c6f4ce8e941e36b26bd1ebc670d1bd1d665620abf74f78a7f6d29809585a97daec58c6b050",
    },
    Sp {
        key: "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        ecb: "f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7",
        cbc: "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
        ctr: "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6",
    },
];

/// McGrew & Viega GCM test cases 4 (AES-128), 10 (AES-192), 16 (AES-256): 60-byte plaintext,
/// 20-byte AAD, 96-bit IV.
const GCM_PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                      1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM_IV: &str = "cafebabefacedbaddecaf888";
/// (key, ciphertext, 128-bit tag)
const GCM: [(&str, &str, &str); 3] = [
    (
        "feffe9928665731c6d6a8f9467308308",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    ),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
        "2519498e80f1478f37ba55bd6d27618c",
    ),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
];

fn gcm_tc(i: usize, tag_bits: usize) -> (Vec<u8>, Mech, Vec<u8>, Vec<u8>) {
    let (k, c, t) = GCM[i];
    let mut ct = hex(c);
    ct.extend_from_slice(&hex(t)[..tag_bits / 8]);
    (hex(k), Mech::gcm(&hex(GCM_IV), &hex(GCM_AAD), tag_bits as CK_ULONG), hex(GCM_PT), ct)
}

fn cbc(iv: &[u8]) -> Mech {
    Mech::bytes(CKM_AES_CBC, iv)
}
fn cbc_pad(iv: &[u8]) -> Mech {
    Mech::bytes(CKM_AES_CBC_PAD, iv)
}

#[test]
fn aes_key_generation_sizes() {
    let slot = fx().token();
    let s = user_session(slot);
    let mut seen = vec![];
    for len in [16, 24, 32] {
        let k = gen_aes(s, len, &[ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]).unwrap();
        assert_eq!(get_ulong(s, k, CKA_CLASS).unwrap(), CKO_SECRET_KEY);
        assert_eq!(get_ulong(s, k, CKA_KEY_TYPE).unwrap(), CKK_AES);
        assert_eq!(get_ulong(s, k, CKA_VALUE_LEN).unwrap(), len);
        let v = get_attr(s, k, CKA_VALUE).unwrap();
        assert_eq!(v.len(), len as usize);
        assert!(!seen.contains(&v[..16].to_vec()), "generated keys repeat");
        seen.push(v[..16].to_vec());
        // The generated key works, and is what CKA_VALUE says it is.
        let imported = aes_key(s, &v, &[]);
        let m = Mech::new(CKM_AES_ECB);
        assert_eq!(encrypt(s, &m, k, &[9; 32]).unwrap(), encrypt(s, &m, imported, &[9; 32]).unwrap());
    }
    if backend().is_soft() {
        // Outside what C_GetMechanismInfo reports for CKM_AES_KEY_GEN (16 to 32 bytes), or
        // inside it but no AES key size.
        for bad in [0, 1, 8, 15, 20, 31, 33, 64] {
            expect_rv(gen_aes(s, bad, &[]), CKR_KEY_SIZE_RANGE);
        }
    } else {
        // SoftHSM2's codes (CKR_TEMPLATE_INCOMPLETE for a length of 0).
        skip_note("bad AES key lengths get SoftHSM2's own codes: compared with SoftHSM2's answer");
        let vs = vendor_session(slot);
        let m = Mech::new(CKM_AES_KEY_GEN);
        let mismatches: Vec<String> = [0, 1, 8, 15, 20, 31, 33, 64]
            .into_iter()
            .filter_map(|bad| {
                let t = [au(CKA_VALUE_LEN, bad)];
                let vendor = vendor_gen_key(vs, &m, &t);
                assert!(vendor.is_err(), "SoftHSM2 generated an AES key of {bad} bytes");
                same_as_vendor(&format!("{bad} bytes"), (s, gen_key(s, &m, &t)), (vs, vendor))
            })
            .collect();
        assert!(mismatches.is_empty(), "{mismatches:?}");
        assert_rv(unsafe { vendor().C_CloseSession.unwrap()(vs) }, CKR_OK);
    }
    expect_rv(gen_key(s, &Mech::new(CKM_AES_KEY_GEN), &[ab(CKA_TOKEN, false)]), CKR_TEMPLATE_INCOMPLETE);

    let gen = Mech::new(CKM_GENERIC_SECRET_KEY_GEN);
    for len in [16, 32, 64] {
        let k = gen_key(s, &gen, &[au(CKA_VALUE_LEN, len), ab(CKA_SENSITIVE, false), ab(CKA_EXTRACTABLE, true)]).unwrap();
        assert_eq!(get_ulong(s, k, CKA_KEY_TYPE).unwrap(), CKK_GENERIC_SECRET);
        assert_eq!(get_attr(s, k, CKA_VALUE).unwrap().len(), len as usize);
    }
    close(s).unwrap();
}

#[test]
fn ecb_cbc_ctr_known_answers() {
    let s = user_session(fx().token());
    let pt = hex(SP_PT);
    for v in &SP {
        let k = aes_key(s, &hex(v.key), &[]);
        for (m, want) in [(Mech::new(CKM_AES_ECB), v.ecb), (cbc(&hex(SP_IV)), v.cbc), (Mech::ctr(128, &hex(SP_CTR)), v.ctr)] {
            let want = hex(want);
            let name = format!("mechanism 0x{:x}, key {}", m.ty, v.key);
            assert_eq!(encrypt(s, &m, k, &pt).unwrap(), want, "{name} encrypt");
            assert_eq!(decrypt(s, &m, k, &want).unwrap(), pt, "{name} decrypt");
            assert_eq!(encrypt_parts(s, &m, k, &chunks(&pt, ODD)).unwrap(), want, "{name} multi-part encrypt");
            assert_eq!(decrypt_parts(s, &m, k, &chunks(&want, ODD)).unwrap(), pt, "{name} multi-part decrypt");
        }
    }
    // CTR is a stream mode: any length, output as long as input.
    let k = aes_key(s, &hex(SP[0].key), &[]);
    let ct = encrypt(s, &Mech::ctr(128, &hex(SP_CTR)), k, &pt[..21]).unwrap();
    assert_eq!(ct, hex(SP[0].ctr)[..21]);
    close(s).unwrap();
}

#[test]
fn cbc_pad_round_trips() {
    let s = user_session(fx().token());
    let k = aes_key(s, &hex(SP[0].key), &[]);
    let iv = hex(SP_IV);
    let pt = hex(SP_PT);
    let ct = encrypt(s, &cbc_pad(&iv), k, &pt).unwrap();
    assert_eq!(ct.len(), 80, "a full padding block is added");
    assert_eq!(ct[..64], hex(SP[0].cbc)[..], "CBC_PAD prefix equals CBC");
    assert_eq!(decrypt(s, &cbc_pad(&iv), k, &ct).unwrap(), pt);
    for n in [0usize, 1, 15, 16, 17, 33, 100] {
        let data: Vec<u8> = (0..n as u8).collect();
        let m = cbc_pad(&iv);
        let ct = encrypt(s, &m, k, &data).unwrap();
        assert_eq!(ct.len(), (n / 16 + 1) * 16, "padded length for {n}");
        assert_eq!(encrypt_parts(s, &m, k, &chunks(&data, ODD)).unwrap(), ct, "multi-part encrypt of {n}");
        assert_eq!(decrypt(s, &m, k, &ct).unwrap(), data, "decrypt of {n}");
        assert_eq!(decrypt_parts(s, &m, k, &chunks(&ct, ODD)).unwrap(), data, "multi-part decrypt of {n}");
        // The padding really is PKCS#7: decrypting with plain CBC shows it.
        let raw = decrypt(s, &cbc(&iv), k, &ct).unwrap();
        let pad = 16 - n % 16;
        assert_eq!(raw[n..], vec![pad as u8; pad][..]);
    }
    close(s).unwrap();
}

#[test]
fn cbc_pad_bad_padding_is_rejected() {
    let s = user_session(fx().token());
    let k = aes_key(s, &[7; 16], &[]);
    let iv = [1u8; 16];
    let mut bad_last_blocks = vec![];
    for last in [0u8, 17, 0xff] {
        let mut b = [3u8; 16];
        b[15] = last;
        bad_last_blocks.push(b.to_vec());
    }
    let mut inconsistent = [0u8; 16];
    inconsistent[13..].copy_from_slice(&[3, 2, 3]);
    bad_last_blocks.push(inconsistent.to_vec());
    for block in bad_last_blocks {
        let mut data = vec![0x61u8; 16];
        data.extend_from_slice(&block);
        let ct = encrypt(s, &cbc(&iv), k, &data).unwrap();
        // SoftHSM2 answers bad padding with CKR_GENERAL_ERROR.
        let want = by_backend(CKR_ENCRYPTED_DATA_INVALID, CKR_GENERAL_ERROR);
        expect_rv(decrypt(s, &cbc_pad(&iv), k, &ct), want);
        expect_rv(decrypt_parts(s, &cbc_pad(&iv), k, &chunks(&ct, &[5])), want);
    }
    close(s).unwrap();
}

#[test]
fn block_mode_length_errors() {
    let s = user_session(fx().token());
    let k = aes_key(s, &[7; 16], &[]);
    let iv = [0u8; 16];
    for m in [Mech::new(CKM_AES_ECB), cbc(&iv)] {
        expect_rv(encrypt(s, &m, k, &[1; 15]), CKR_DATA_LEN_RANGE);
        expect_rv(encrypt(s, &m, k, &[1; 33]), CKR_DATA_LEN_RANGE);
        expect_rv(decrypt(s, &m, k, &[1; 17]), CKR_ENCRYPTED_DATA_LEN_RANGE);
        // Multi-part: the leftover is only an error at the end.
        encrypt_init(s, &m, k).unwrap();
        let mut out = [0u8; 64];
        let mut len = 64;
        assert_rv(ck!(C_EncryptUpdate, s, [1u8; 15].as_ptr() as *mut u8, 15, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 0, "no full block yet");
        len = 64;
        assert_rv(ck!(C_EncryptFinal, s, out.as_mut_ptr(), &mut len), CKR_DATA_LEN_RANGE);
    }
    expect_rv(decrypt(s, &cbc_pad(&iv), k, &[1; 15]), CKR_ENCRYPTED_DATA_LEN_RANGE);
    // SoftHSM2: CKR_GENERAL_ERROR for empty CBC-PAD ciphertext.
    expect_rv(decrypt(s, &cbc_pad(&iv), k, &[]), by_backend(CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_GENERAL_ERROR));
    close(s).unwrap();
}

#[test]
fn bad_mechanism_parameters() {
    let slot = fx().token();
    let s = user_session(slot);
    let k = aes_key(s, &[7; 16], &[]);
    let bad = [
        cbc(&[0; 8]),
        cbc(&[0; 17]),
        Mech::new(CKM_AES_CBC),
        cbc_pad(&[0; 15]),
        Mech::new(CKM_AES_CTR),
        Mech::ctr(129, &[0; 16]),
        Mech::bytes(CKM_AES_CTR, &[0; 16]),
        Mech::gcm(&[0; 12], b"", 64),
        Mech::gcm(&[0; 12], b"", 136),
        Mech::gcm(&[0; 12], b"", 0),
        Mech::gcm(&[], b"", 128),
        Mech::new(CKM_AES_GCM),
        Mech::bytes(CKM_AES_GCM, &[0; 12]),
    ];
    if backend().is_forwarded() {
        bad_parameters_like_vendor(slot, s, k, &bad);
        close(s).unwrap();
        return;
    }
    for (i, m) in bad.iter().enumerate() {
        let r = encrypt_init(s, m, k);
        assert!(r == Err(Ck(CKR_MECHANISM_PARAM_INVALID)), "bad parameter #{i} (mechanism 0x{:x}): encrypt init {r:?}", m.ty);
        let r = decrypt_init(s, m, k);
        assert!(r == Err(Ck(CKR_MECHANISM_PARAM_INVALID)), "bad parameter #{i} (mechanism 0x{:x}): decrypt init {r:?}", m.ty);
    }
    expect_rv(encrypt_init(s, &Mech::bytes(CKM_AES_ECB, &[0; 16]), k), CKR_MECHANISM_PARAM_INVALID);
    // Still usable afterwards.
    encrypt(s, &Mech::gcm(&[0; 12], b"", 128), k, b"fine").unwrap();
    close(s).unwrap();
}

/// bad_mechanism_parameters on a forwarding slot: each parameter gets SoftHSM2's own answer
/// (it has other codes: CKR_MECHANISM_INVALID or CKR_ARGUMENTS_BAD for a bad IV, and takes
/// 64-bit and 0-bit GCM tags and an ECB parameter), except where keyfront refuses first: a
/// parameter of the wrong size for its structure, or a GCM IV of length 0
/// (CKR_MECHANISM_PARAM_INVALID, keyfront's own reading of the parameter).
fn bad_parameters_like_vendor(slot: CK_SLOT_ID, s: CK_SESSION_HANDLE, k: CK_OBJECT_HANDLE, bad: &[Mech]) {
    skip_note("SoftHSM2's codes for bad parameters: compared with SoftHSM2's own answer");
    let vs = vendor_session(slot);
    let vk = vendor_create(vs, &aes_tmpl(&[7; 16], &[])).unwrap();
    let f = vendor();
    let keyfront_refuses = |m: &Mech| match (&m.param, m.ty) {
        (Param::Bytes(_), CKM_AES_CTR | CKM_AES_GCM) => true,
        (Param::Gcm { iv, .. }, _) => iv.is_empty(),
        _ => false,
    };
    let input = [0u8; 32];
    let mut mismatches = vec![];
    for (i, m) in bad.iter().enumerate() {
        for encrypt in [true, false] {
            let ours = if encrypt { encrypt_init(s, m, k) } else { decrypt_init(s, m, k) };
            let init = if encrypt { f.C_EncryptInit } else { f.C_DecryptInit }.unwrap();
            let theirs = m.with(|mp| rv(unsafe { init(vs, mp, vk) }));
            let want = if keyfront_refuses(m) { Err(Ck(CKR_MECHANISM_PARAM_INVALID)) } else { theirs };
            if ours != want {
                mismatches.push(format!("#{i} (0x{:x}, encrypt {encrypt}): keyfront {ours:?}, want {want:?}", m.ty));
            }
            // End what started, on both sides (any outcome ends a single-part call).
            let (mut out, mut len) = ([0u8; 64], 64);
            let (p, o) = (input.as_ptr() as *mut u8, out.as_mut_ptr());
            if ours.is_ok() {
                let _ = if encrypt { ck!(C_Encrypt, s, p, 32, o, &mut len) } else { ck!(C_Decrypt, s, p, 32, o, &mut len) };
            }
            len = 64;
            if theirs.is_ok() {
                let once = if encrypt { f.C_Encrypt } else { f.C_Decrypt }.unwrap();
                let _ = unsafe { once(vs, p, 32, o, &mut len) };
            }
        }
    }
    assert!(mismatches.is_empty(), "bad parameters:\n{}", mismatches.join("\n"));
    assert_rv(unsafe { f.C_CloseSession.unwrap()(vs) }, CKR_OK);
    // Still usable afterwards.
    encrypt(s, &Mech::gcm(&[0; 12], b"", 128), k, b"fine").unwrap();
}

#[test]
fn gcm_known_answers() {
    let s = user_session(fx().token());
    for i in 0..3 {
        for tag in [128, 120, 112, 104, 96] {
            let (key, m, pt, ct) = gcm_tc(i, tag);
            let k = aes_key(s, &key, &[]);
            let name = format!("GCM case {i}, tag {tag}");
            assert_eq!(encrypt(s, &m, k, &pt).unwrap(), ct, "{name} encrypt");
            assert_eq!(decrypt(s, &m, k, &ct).unwrap(), pt, "{name} decrypt");
            assert_eq!(encrypt_parts(s, &m, k, &chunks(&pt, ODD)).unwrap(), ct, "{name} multi-part encrypt");
            assert_eq!(decrypt_parts(s, &m, k, &chunks(&ct, ODD)).unwrap(), pt, "{name} multi-part decrypt");
        }
    }
    // Empty plaintext: the output is the tag alone; no AAD works too.
    let k = gen_aes(s, 16, &[]).unwrap();
    let m = Mech::gcm(&[3; 12], b"", 128);
    let tag = encrypt(s, &m, k, b"").unwrap();
    assert_eq!(tag.len(), 16);
    assert_eq!(decrypt(s, &m, k, &tag).unwrap(), b"");
    close(s).unwrap();
}

#[test]
fn gcm_rejects_tampering() {
    let s = user_session(fx().token());
    let (key, m, pt, ct) = gcm_tc(0, 128);
    let k = aes_key(s, &key, &[]);
    // SoftHSM2 answers a tag that does not verify with CKR_GENERAL_ERROR.
    let invalid = by_backend(CKR_ENCRYPTED_DATA_INVALID, CKR_GENERAL_ERROR);
    for pos in [0, 30, ct.len() - 16, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[pos] ^= 0x01;
        expect_rv(decrypt(s, &m, k, &bad), invalid);
        expect_rv(decrypt_parts(s, &m, k, &chunks(&bad, ODD)), invalid);
    }
    let other_aad = Mech::gcm(&hex(GCM_IV), b"other aad", 128);
    expect_rv(decrypt(s, &other_aad, k, &ct), invalid);
    let other_iv = Mech::gcm(&[0; 12], &hex(GCM_AAD), 128);
    expect_rv(decrypt(s, &other_iv, k, &ct), invalid);
    let short_tag = Mech::gcm(&hex(GCM_IV), &hex(GCM_AAD), 96);
    expect_rv(decrypt(s, &short_tag, k, &ct), invalid);
    if backend().is_soft() {
        expect_one_of(decrypt(s, &m, k, &ct[..10]), &[CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID]);
    } else {
        expect_rv(decrypt(s, &m, k, &ct[..10]), CKR_GENERAL_ERROR);
    }
    // The key still decrypts the genuine ciphertext.
    assert_eq!(decrypt(s, &m, k, &ct).unwrap(), pt);
    close(s).unwrap();
}

/// `C_Encrypt`/`C_Decrypt` with the output in the input's own buffer (NSS and some
/// applications encrypt in place), and a decryption whose tag fails into the caller's buffer:
/// the error, nothing of the ciphertext or plaintext left in the buffer, the operation over.
#[test]
fn gcm_in_place_and_failed_tag_into_the_callers_buffer() {
    let s = user_session(fx().token());
    let (key, m, pt, ct) = gcm_tc(1, 128);
    let k = aes_key(s, &key, &[]);

    let mut buf = pt.clone();
    buf.resize(ct.len(), 0);
    encrypt_init(s, &m, k).unwrap();
    let mut len = buf.len() as CK_ULONG;
    assert_rv(ck!(C_Encrypt, s, buf.as_mut_ptr(), pt.len() as CK_ULONG, buf.as_mut_ptr(), &mut len), CKR_OK);
    assert_eq!((len as usize, &buf), (ct.len(), &ct), "in-place encryption");
    decrypt_init(s, &m, k).unwrap();
    let mut len = buf.len() as CK_ULONG;
    assert_rv(ck!(C_Decrypt, s, buf.as_mut_ptr(), ct.len() as CK_ULONG, buf.as_mut_ptr(), &mut len), CKR_OK);
    assert_eq!(&buf[..len as usize], &pt[..], "in-place decryption");
    // Output overlapping the input a few bytes further on.
    let mut buf = pt.clone();
    buf.resize(ct.len() + 8, 0);
    encrypt_init(s, &m, k).unwrap();
    let mut len = ct.len() as CK_ULONG;
    let (input, output) = (buf.as_mut_ptr(), buf[8..].as_mut_ptr());
    assert_rv(ck!(C_Encrypt, s, input, pt.len() as CK_ULONG, output, &mut len), CKR_OK);
    assert_eq!(&buf[8..], &ct[..], "encryption into an overlapping buffer");

    let mut bad = ct.clone();
    *bad.last_mut().unwrap() ^= 0x80;
    decrypt_init(s, &m, k).unwrap();
    let mut out = vec![0xaau8; ct.len()];
    let mut len = out.len() as CK_ULONG;
    let invalid = by_backend(CKR_ENCRYPTED_DATA_INVALID, CKR_GENERAL_ERROR);
    assert_rv(ck!(C_Decrypt, s, bad.as_mut_ptr(), bad.len() as CK_ULONG, out.as_mut_ptr(), &mut len), invalid);
    if backend().is_soft() {
        assert!(out[..pt.len()].iter().all(|&b| b == 0), "a failed decryption leaves zeros, not ciphertext");
    }
    assert_rv(ck!(C_Decrypt, s, ct.as_ptr() as *mut u8, ct.len() as CK_ULONG, out.as_mut_ptr(), &mut len), CKR_OPERATION_NOT_INITIALIZED);

    // A length query answers without decrypting: the failed tag shows on the real call, and
    // a buffer too small for the output keeps the operation going.
    decrypt_init(s, &m, k).unwrap();
    let mut len: CK_ULONG = 0;
    assert_rv(ck!(C_Decrypt, s, bad.as_mut_ptr(), bad.len() as CK_ULONG, ptr::null_mut(), &mut len), if backend().is_soft() { CKR_OK } else { invalid });
    if backend().is_soft() {
        assert_eq!(len as usize, pt.len());
        let mut short = 1 as CK_ULONG;
        assert_rv(ck!(C_Decrypt, s, bad.as_mut_ptr(), bad.len() as CK_ULONG, out.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
        assert_eq!(short as usize, pt.len());
        let mut len = out.len() as CK_ULONG;
        assert_rv(ck!(C_Decrypt, s, bad.as_mut_ptr(), bad.len() as CK_ULONG, out.as_mut_ptr(), &mut len), invalid);
    }
    close(s).unwrap();
}

#[test]
fn output_length_query_and_buffer_too_small() {
    let s = user_session(fx().token());
    let (key, m, pt, ct) = gcm_tc(2, 128);
    let k = aes_key(s, &key, &[]);
    let p = |v: &[u8]| v.as_ptr() as *mut u8;

    encrypt_init(s, &m, k).unwrap();
    let mut len: CK_ULONG = 0;
    assert_rv(ck!(C_Encrypt, s, p(&pt), pt.len() as CK_ULONG, ptr::null_mut(), &mut len), CKR_OK);
    assert_eq!(len as usize, ct.len(), "length query");
    let mut out = vec![0u8; ct.len()];
    let mut zero: CK_ULONG = 0;
    assert_rv(ck!(C_Encrypt, s, p(&pt), pt.len() as CK_ULONG, out.as_mut_ptr(), &mut zero), CKR_BUFFER_TOO_SMALL);
    assert_eq!(zero as usize, ct.len());
    let mut short = (ct.len() - 1) as CK_ULONG;
    assert_rv(ck!(C_Encrypt, s, p(&pt), pt.len() as CK_ULONG, out.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
    assert_eq!(short as usize, ct.len());
    let mut exact = ct.len() as CK_ULONG;
    assert_rv(ck!(C_Encrypt, s, p(&pt), pt.len() as CK_ULONG, out.as_mut_ptr(), &mut exact), CKR_OK);
    assert_eq!((exact as usize, &out), (ct.len(), &ct));
    assert_rv(ck!(C_Encrypt, s, p(&pt), pt.len() as CK_ULONG, ptr::null_mut(), &mut len), CKR_OPERATION_NOT_INITIALIZED);

    decrypt_init(s, &m, k).unwrap();
    let mut len: CK_ULONG = 0;
    assert_rv(ck!(C_Decrypt, s, p(&ct), ct.len() as CK_ULONG, ptr::null_mut(), &mut len), CKR_OK);
    assert!(len as usize >= pt.len() && len as usize <= ct.len(), "decrypt length query {len}");
    let mut out = vec![0u8; len as usize];
    let mut short = (pt.len() - 1) as CK_ULONG;
    assert_rv(ck!(C_Decrypt, s, p(&ct), ct.len() as CK_ULONG, out.as_mut_ptr(), &mut short), CKR_BUFFER_TOO_SMALL);
    assert!(short as usize >= pt.len());
    let mut l = len;
    assert_rv(ck!(C_Decrypt, s, p(&ct), ct.len() as CK_ULONG, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(&out[..l as usize], &pt[..]);

    // Multi-part GCM: C_EncryptFinal (the tag) and C_DecryptFinal with too-small buffers.
    encrypt_init(s, &m, k).unwrap();
    let mut body = vec![0u8; pt.len() + 16];
    let mut l = body.len() as CK_ULONG;
    assert_rv(ck!(C_EncryptUpdate, s, p(&pt), pt.len() as CK_ULONG, body.as_mut_ptr(), &mut l), CKR_OK);
    let mut got = body[..l as usize].to_vec();
    let mut fl: CK_ULONG = 0;
    assert_rv(ck!(C_EncryptFinal, s, ptr::null_mut(), &mut fl), CKR_OK);
    assert_eq!(fl as usize, ct.len() - got.len(), "EncryptFinal length query");
    let mut fin = vec![0u8; fl as usize];
    let mut small = fl - 1;
    assert_rv(ck!(C_EncryptFinal, s, fin.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
    assert_rv(ck!(C_EncryptFinal, s, fin.as_mut_ptr(), &mut fl), CKR_OK);
    got.extend_from_slice(&fin[..fl as usize]);
    assert_eq!(got, ct);

    decrypt_init(s, &m, k).unwrap();
    let mut body = vec![0u8; ct.len()];
    let mut l = body.len() as CK_ULONG;
    assert_rv(ck!(C_DecryptUpdate, s, p(&ct), ct.len() as CK_ULONG, body.as_mut_ptr(), &mut l), CKR_OK);
    let mut got = body[..l as usize].to_vec();
    let mut fl: CK_ULONG = 0;
    assert_rv(ck!(C_DecryptFinal, s, ptr::null_mut(), &mut fl), CKR_OK);
    assert!(fl as usize >= pt.len() - got.len(), "DecryptFinal length query {fl}");
    let mut fin = vec![0u8; fl as usize];
    if pt.len() > got.len() {
        let mut small: CK_ULONG = 0;
        assert_rv(ck!(C_DecryptFinal, s, fin.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
    }
    assert_rv(ck!(C_DecryptFinal, s, fin.as_mut_ptr(), &mut fl), CKR_OK);
    got.extend_from_slice(&fin[..fl as usize]);
    assert_eq!(got, pt);

    // Multi-part: a too-small buffer in C_EncryptUpdate / C_EncryptFinal keeps the operation.
    let ecb = Mech::new(CKM_AES_ECB);
    let data = [0x33u8; 48];
    let want = encrypt(s, &ecb, k, &data).unwrap();
    encrypt_init(s, &ecb, k).unwrap();
    let mut out = [0u8; 64];
    let mut l: CK_ULONG = 16;
    assert_rv(ck!(C_EncryptUpdate, s, p(&data), 47, out.as_mut_ptr(), &mut l), CKR_BUFFER_TOO_SMALL);
    assert!((32..=64).contains(&l), "needed length {l}");
    l = 64;
    assert_rv(ck!(C_EncryptUpdate, s, p(&data), 47, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(l, 32);
    let mut l2: CK_ULONG = 64;
    assert_rv(ck!(C_EncryptUpdate, s, p(&data[47..]), 1, out[32..].as_mut_ptr(), &mut l2), CKR_OK);
    assert_eq!(l2, 16);
    assert_eq!(out[..48], want[..]);
    let mut l3: CK_ULONG = 0;
    assert_rv(ck!(C_EncryptFinal, s, ptr::null_mut(), &mut l3), CKR_OK);
    assert_eq!(l3, 0);
    assert_rv(ck!(C_EncryptFinal, s, out.as_mut_ptr(), &mut l3), CKR_OK);
    close(s).unwrap();
}

#[test]
fn operation_state_rules() {
    let slot = fx().token();
    let s = user_session(slot);
    let k = aes_key(s, &[7; 16], &[]);
    let ecb = Mech::new(CKM_AES_ECB);
    let data = [0x44u8; 32];
    let p = data.as_ptr() as *mut u8;
    let mut out = [0u8; 64];
    let mut l: CK_ULONG = 64;
    assert_rv(ck!(C_Encrypt, s, p, 32, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);
    l = 64;
    assert_rv(ck!(C_EncryptUpdate, s, p, 32, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);
    l = 64;
    assert_rv(ck!(C_DecryptFinal, s, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);

    encrypt_init(s, &ecb, k).unwrap();
    expect_rv(encrypt_init(s, &ecb, k), CKR_OPERATION_ACTIVE);
    l = 64;
    assert_rv(ck!(C_Encrypt, s, p, 32, out.as_mut_ptr(), &mut l), CKR_OK);
    // Decryption likewise; the refused init leaves the first operation running.
    decrypt_init(s, &ecb, k).unwrap();
    expect_rv(decrypt_init(s, &cbc(&[0; 16]), k), CKR_OPERATION_ACTIVE);
    l = 64;
    assert_rv(ck!(C_Decrypt, s, out.as_mut_ptr(), 32, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(l, 32);
    assert_eq!(out[..32], data[..], "the ECB decryption begun first");
    l = 64;
    assert_rv(ck!(C_EncryptUpdate, s, p, 32, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);

    // An error other than BUFFER_TOO_SMALL ends the operation.
    encrypt_init(s, &ecb, k).unwrap();
    l = 64;
    assert_rv(ck!(C_Encrypt, s, p, 31, out.as_mut_ptr(), &mut l), CKR_DATA_LEN_RANGE);
    l = 64;
    assert_rv(ck!(C_Encrypt, s, p, 32, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);

    // A multi-part operation ends with C_EncryptFinal.
    encrypt_init(s, &ecb, k).unwrap();
    l = 64;
    assert_rv(ck!(C_EncryptUpdate, s, p, 32, out.as_mut_ptr(), &mut l), CKR_OK);
    l = 64;
    assert_rv(ck!(C_EncryptFinal, s, out.as_mut_ptr(), &mut l), CKR_OK);
    assert_eq!(l, 0);
    l = 64;
    assert_rv(ck!(C_EncryptFinal, s, out.as_mut_ptr(), &mut l), CKR_OPERATION_NOT_INITIALIZED);

    // Operations are per session: an active one in `s` does not block `s2`.
    let s2 = open(slot, false).unwrap();
    encrypt_init(s, &ecb, k).unwrap();
    encrypt(s2, &ecb, k, &data).expect("other session unaffected");
    l = 64;
    assert_rv(ck!(C_Encrypt, s, p, 32, out.as_mut_ptr(), &mut l), CKR_OK);
    close(s2).unwrap();
    close(s).unwrap();
}

/// Input past the end of the CTR counter (`ulCounterBits` low bits of the counter block,
/// never wrapping) is refused, and the error names what the input was: data when
/// encrypting, ciphertext when decrypting. SoftHSM2 answers the same.
#[test]
fn ctr_input_past_the_counter_end() {
    let s = user_session(fx().token());
    let k = aes_key(s, &hex(SP[0].key), &[]);
    // An 8-bit counter at 0xff: one block before it would wrap.
    let m = Mech::ctr(8, &[0xff; 16]);
    let ct = encrypt(s, &m, k, &[0x61; 16]).unwrap();
    assert_eq!(decrypt(s, &m, k, &ct).unwrap(), [0x61; 16]);
    expect_rv(encrypt(s, &m, k, &[0x61; 17]), CKR_DATA_LEN_RANGE);
    expect_rv(decrypt(s, &m, k, &[0x61; 17]), CKR_ENCRYPTED_DATA_LEN_RANGE);
    // Multi-part: the block fits, one more byte does not, and the error ends the operation.
    for (c, too_long) in [(Cipher(true), CKR_DATA_LEN_RANGE), (Cipher(false), CKR_ENCRYPTED_DATA_LEN_RANGE)] {
        let mut out = [0u8; 32];
        c.init(s, &m, k).unwrap();
        assert_eq!(c.update(s, &[0x61; 16], Some(&mut out)), (CKR_OK, 16));
        assert_eq!(c.update(s, &[0x61; 1], Some(&mut out)).0, too_long);
        assert_eq!(c.fin(s, Some(&mut out)).0, CKR_OPERATION_NOT_INITIALIZED);
    }
    close(s).unwrap();
}

/// `CK_GCM_PARAMS` as PKCS#11 2.40 headers lay it out, without `ulIvBits` (3.0 added it
/// after `ulIvLen`). keyfront tells the layouts apart by `ulParameterLen`.
#[repr(C)]
struct GcmParamsV240 {
    p_iv: *const u8,
    ul_iv_len: CK_ULONG,
    p_aad: *const u8,
    ul_aad_len: CK_ULONG,
    ul_tag_bits: CK_ULONG,
}

/// The bytes of a `#[repr(C)]` parameter structure, to pass as `pParameter`.
fn struct_bytes<T>(p: &T) -> Vec<u8> {
    // SAFETY: `p` is a live `T`; its bytes are read, not interpreted.
    unsafe { std::slice::from_raw_parts(p as *const T as *const u8, std::mem::size_of::<T>()) }.to_vec()
}

#[test]
fn gcm_params_without_iv_bits() {
    let s = user_session(fx().token());
    let (iv, aad) = (hex(GCM_IV), hex(GCM_AAD));
    let old = |tag_bits: usize| {
        let p = GcmParamsV240 { p_iv: iv.as_ptr(), ul_iv_len: 12, p_aad: aad.as_ptr(), ul_aad_len: aad.len() as CK_ULONG, ul_tag_bits: tag_bits as CK_ULONG };
        Mech::bytes(CKM_AES_GCM, &struct_bytes(&p))
    };
    assert_eq!(std::mem::size_of::<GcmParamsV240>() + std::mem::size_of::<CK_ULONG>(), std::mem::size_of::<CK_GCM_PARAMS>());
    // The McGrew–Viega vectors, every tag length, single- and multi-part, both ways.
    for i in 0..3 {
        for tag in [128, 120, 112, 104, 96] {
            let (key, _, pt, ct) = gcm_tc(i, tag);
            let k = aes_key(s, &key, &[]);
            let name = format!("GCM case {i}, tag {tag}, 2.40 parameters");
            assert_eq!(encrypt(s, &old(tag), k, &pt).unwrap(), ct, "{name} encrypt");
            assert_eq!(decrypt(s, &old(tag), k, &ct).unwrap(), pt, "{name} decrypt");
            assert_eq!(encrypt_parts(s, &old(tag), k, &chunks(&pt, ODD)).unwrap(), ct, "{name} multi-part encrypt");
            assert_eq!(decrypt_parts(s, &old(tag), k, &chunks(&ct, ODD)).unwrap(), pt, "{name} multi-part decrypt");
        }
    }
    // Parameters of neither length, however they start, are refused at init, both ways:
    // keyfront reads the structure, so on a forwarding slot too.
    let k = aes_key(s, &hex(GCM[0].0), &[]);
    let whole = [struct_bytes(&GcmParamsV240 { p_iv: iv.as_ptr(), ul_iv_len: 12, p_aad: aad.as_ptr(), ul_aad_len: 20, ul_tag_bits: 128 }), vec![0; 16]].concat();
    let (v240, v30) = (std::mem::size_of::<GcmParamsV240>(), std::mem::size_of::<CK_GCM_PARAMS>());
    for len in [1, 12, v240 - 8, v240 - 1, v240 + 1, v30 - 1, v30 + 1, v30 + 8] {
        let m = Mech::bytes(CKM_AES_GCM, &whole[..len]);
        expect_rv(encrypt_init(s, &m, k), CKR_MECHANISM_PARAM_INVALID);
        expect_rv(decrypt_init(s, &m, k), CKR_MECHANISM_PARAM_INVALID);
    }
    close(s).unwrap();
}

/// PKCS#11: `C_Encrypt` "cannot be used to terminate a multi-part operation". After
/// `C_EncryptUpdate` (or `C_DecryptUpdate`), the single-part call is refused with
/// `CKR_OPERATION_NOT_INITIALIZED`, as SoftHSM2 refuses `C_Sign` after `C_SignUpdate`, and
/// the operation is over: `C_EncryptFinal` finds none.
#[test]
fn single_part_call_after_update_is_refused() {
    let s = user_session(fx().token());
    let k = aes_key(s, &hex(SP[0].key), &[]);
    let pt = hex(SP_PT);
    for m in [Mech::new(CKM_AES_ECB), cbc_pad(&hex(SP_IV)), Mech::ctr(128, &hex(SP_CTR)), Mech::gcm(&hex(GCM_IV), b"", 128)] {
        let ct = encrypt(s, &m, k, &pt).unwrap();
        let mut out = vec![0u8; 128];
        for c in [Cipher(true), Cipher(false)] {
            let name = format!("mechanism 0x{:x}, encrypt {}", m.ty, c.0);
            let (input, want) = if c.0 { (&pt, &ct) } else { (&ct, &pt) };
            c.init(s, &m, k).unwrap();
            assert_eq!(c.update(s, &input[..16], Some(&mut out)).0, CKR_OK, "{name}");
            assert_eq!(c.once(s, &input[..16], Some(&mut out)).0, CKR_OPERATION_NOT_INITIALIZED, "{name}");
            assert_eq!(c.fin(s, Some(&mut out)).0, CKR_OPERATION_NOT_INITIALIZED, "{name}");
            // An update that only asked for its output's length fed the operation too.
            c.init(s, &m, k).unwrap();
            assert_eq!(c.update(s, &input[..16], None).0, CKR_OK, "{name}");
            assert_eq!(c.once(s, &input[..16], Some(&mut out)).0, CKR_OPERATION_NOT_INITIALIZED, "{name}");
            // Without an update, the single-part call works as ever.
            c.init(s, &m, k).unwrap();
            let (code, len) = c.once(s, input, Some(&mut out));
            assert_eq!((code, &out[..len]), (CKR_OK, &want[..]), "{name}");
        }
    }
    close(s).unwrap();
}

//! The ABI's mechanism parser, through the exported C functions: a real `CK_MECHANISM` built
//! in memory for each input (a mechanism keyfront knows or any number; a parameter that is
//! NULL, raw bytes, or one of the parameter structs — both `CK_GCM_PARAMS` layouts, CTR,
//! PSS, OAEP, ECDH1, EdDSA — whose inner pointers point into the input's own buffer with
//! lengths clamped to it), handed to `C_EncryptInit`, `C_SignInit`, `C_DeriveKey`,
//! `C_UnwrapKey`… with keys of every type. Each call must return a CK_RV; an operation that
//! starts is run once on the input's data and then cancelled.
//!
//! The harness keeps every pointer valid: a parameter length never runs past the buffer
//! behind `pParameter`, and a (mechanism, length) pair that the parser would read as a
//! pointer-carrying struct always points at such a struct built here. What the module does
//! with that memory is the module's business.
#![no_main]

use std::mem::size_of;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

/// Mechanisms offered by keyfront, then a few it does not offer.
fn mechanisms() -> &'static [CK_MECHANISM_TYPE] {
    static LIST: OnceLock<Vec<CK_MECHANISM_TYPE>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut list: Vec<_> = keyfront::mechanism::MECHANISMS.iter().map(|e| e.kind).collect();
        list.extend([CKM_AES_CMAC, CKM_AES_CCM, CKM_SHA224, CKM_SHA224_RSA_PKCS_PSS, CKM_DES3_CBC, CKM_VENDOR_DEFINED]);
        list
    })
}

/// Numbers that mean something in some parameter field: digests, MGFs, KDFs, source types,
/// bit lengths, and the edges.
const NUMBERS: &[CK_ULONG] = &[
    0, 1, 7, 8, 12, 16, 20, 32, 48, 64, 96, 104, 112, 120, 128, 129, 256, 1024, 2048,
    CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA3_256,
    CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512,
    CKD_NULL, CKD_SHA1_KDF, CKD_SHA224_KDF, CKD_SHA256_KDF, CKD_SHA384_KDF, CKD_SHA512_KDF,
    CKZ_DATA_SPECIFIED, 1 << 31, 1 << 32, 1 << 40, CK_UNAVAILABLE_INFORMATION - 1, CK_UNAVAILABLE_INFORMATION,
];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Num {
    Pick(u8),
    Raw(u64),
}

impl Num {
    fn get(self) -> CK_ULONG {
        match self {
            Num::Pick(i) => NUMBERS[i as usize % NUMBERS.len()],
            Num::Raw(v) => v as CK_ULONG,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Mech {
    Known(u8),
    Raw(u64),
}

impl Mech {
    fn get(self) -> CK_MECHANISM_TYPE {
        match self {
            Mech::Known(i) => mechanisms()[i as usize % mechanisms().len()],
            Mech::Raw(v) => v as CK_MECHANISM_TYPE,
        }
    }
}

/// Byte strings a parameter may point at besides the input's buffer.
fn fixture_bytes() -> &'static [Vec<u8>] {
    static LIST: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    LIST.get_or_init(|| {
        let point = fixtures::hex(fixtures::EC_B_POINT);
        vec![point.clone(), fixtures::octet_string(&point), vec![0u8; 12], (0u8..16).collect(), b"label".to_vec()]
    })
}

/// Where a pointer inside a parameter struct points.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Region {
    /// NULL with a length (which may be non-zero: a bad parameter).
    Null(u32),
    /// Into the input's buffer, clamped.
    Data { offset: u32, len: u32 },
    /// A whole fixture (an EC point raw or in DER, IVs, a label).
    Fixture(u8),
}

impl Region {
    fn resolve(self, data: &[u8]) -> (*mut u8, CK_ULONG) {
        match self {
            Region::Null(len) => (std::ptr::null_mut(), len as CK_ULONG),
            Region::Data { offset, len } => {
                let (offset, len) = clamp(offset, len, data.len());
                // The module only reads parameter bytes; the C type says *mut.
                (data[offset..].as_ptr() as *mut u8, len as CK_ULONG)
            }
            Region::Fixture(i) => {
                let list = fixture_bytes();
                let f = &list[i as usize % list.len()];
                (f.as_ptr() as *mut u8, f.len() as CK_ULONG)
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Param {
    /// NULL and 0: no parameter.
    None,
    /// NULL with a length.
    NullWithLen(u16),
    /// The first `len` bytes of the input's buffer (clamped; padded with zeros up to 8).
    Raw(u16),
    Gcm { iv: Region, iv_bits: Num, aad: Region, tag_bits: Num },
    /// The layout from before `ulIvBits`.
    GcmOld { iv: Region, aad: Region, tag_bits: Num },
    Ctr { counter_bits: Num, cb: [u8; 16] },
    Pss { hash: Num, mgf: Num, salt: Num },
    Oaep { hash: Num, mgf: Num, source: Num, label: Region },
    Ecdh1 { kdf: Num, shared: Region, public: Region },
    Eddsa { prehash: u8, context: Region },
}

/// `CK_GCM_PARAMS` before PKCS#11 2.40 errata added `ulIvBits` (what keyfront also reads).
#[repr(C)]
struct GcmParamsOld {
    p_iv: *mut u8,
    iv_len: CK_ULONG,
    p_aad: *mut u8,
    aad_len: CK_ULONG,
    tag_bits: CK_ULONG,
}

/// An 8-byte-aligned parameter buffer.
struct ParamBuf {
    words: Vec<u64>,
    /// `ulParameterLen`, never more than the buffer holds.
    len: usize,
    /// NULL `pParameter`.
    null: bool,
}

impl ParamBuf {
    fn with<T>(value: T) -> Self {
        // Room for lengths a little off the struct's size, still inside the buffer.
        let mut words = vec![0u64; size_of::<T>().div_ceil(8) + 2];
        // SAFETY: the buffer is 8-aligned and larger than T; T holds plain data and raw
        // pointers only.
        unsafe { std::ptr::write(words.as_mut_ptr() as *mut T, value) };
        Self { words, len: size_of::<T>(), null: false }
    }

    fn capacity(&self) -> usize {
        self.words.len() * 8
    }
}

/// Whether the parser reads a parameter of this mechanism and length as a struct holding
/// pointers, and which variant of [`Param`] builds that struct.
fn pointer_layout(mechanism: CK_MECHANISM_TYPE, len: usize) -> Option<&'static str> {
    match mechanism {
        CKM_AES_GCM if len == size_of::<CK_GCM_PARAMS>() => Some("gcm"),
        CKM_AES_GCM if len == size_of::<GcmParamsOld>() => Some("gcm-old"),
        CKM_RSA_PKCS_OAEP if len == size_of::<CK_RSA_PKCS_OAEP_PARAMS>() => Some("oaep"),
        CKM_ECDH1_DERIVE if len == size_of::<CK_ECDH1_DERIVE_PARAMS>() => Some("ecdh1"),
        CKM_EDDSA if len == size_of::<CK_EDDSA_PARAMS>() => Some("eddsa"),
        _ => None,
    }
}

fn build_param(param: &Param, data: &[u8]) -> (ParamBuf, &'static str) {
    match param {
        Param::None => (ParamBuf { words: Vec::new(), len: 0, null: true }, "none"),
        Param::NullWithLen(n) => (ParamBuf { words: Vec::new(), len: *n as usize, null: true }, "null"),
        Param::Raw(n) => {
            let len = (*n as usize).min(data.len());
            let mut words = vec![0u64; len.div_ceil(8).max(1)];
            // SAFETY: `words` holds at least `len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), words.as_mut_ptr() as *mut u8, len) };
            (ParamBuf { words, len, null: false }, "raw")
        }
        Param::Gcm { iv, iv_bits, aad, tag_bits } => {
            let (p_iv, iv_len) = iv.resolve(data);
            let (p_aad, aad_len) = aad.resolve(data);
            let g = CK_GCM_PARAMS { pIv: p_iv, ulIvLen: iv_len, ulIvBits: iv_bits.get(), pAAD: p_aad, ulAADLen: aad_len, ulTagBits: tag_bits.get() };
            (ParamBuf::with(g), "gcm")
        }
        Param::GcmOld { iv, aad, tag_bits } => {
            let (p_iv, iv_len) = iv.resolve(data);
            let (p_aad, aad_len) = aad.resolve(data);
            (ParamBuf::with(GcmParamsOld { p_iv, iv_len, p_aad, aad_len, tag_bits: tag_bits.get() }), "gcm-old")
        }
        Param::Ctr { counter_bits, cb } => (ParamBuf::with(CK_AES_CTR_PARAMS { ulCounterBits: counter_bits.get(), cb: *cb }), "ctr"),
        Param::Pss { hash, mgf, salt } => {
            (ParamBuf::with(CK_RSA_PKCS_PSS_PARAMS { hashAlg: hash.get(), mgf: mgf.get(), sLen: salt.get() }), "pss")
        }
        Param::Oaep { hash, mgf, source, label } => {
            let (p, len) = label.resolve(data);
            let o = CK_RSA_PKCS_OAEP_PARAMS {
                hashAlg: hash.get(),
                mgf: mgf.get(),
                source: source.get(),
                pSourceData: p as *mut _,
                ulSourceDataLen: len,
            };
            (ParamBuf::with(o), "oaep")
        }
        Param::Ecdh1 { kdf, shared, public } => {
            let (ps, ls) = shared.resolve(data);
            let (pp, lp) = public.resolve(data);
            let e = CK_ECDH1_DERIVE_PARAMS { kdf: kdf.get(), ulSharedDataLen: ls, pSharedData: ps, ulPublicDataLen: lp, pPublicData: pp };
            (ParamBuf::with(e), "ecdh1")
        }
        Param::Eddsa { prehash, context } => {
            let (p, len) = context.resolve(data);
            (ParamBuf::with(CK_EDDSA_PARAMS { phFlag: *prehash, ulContextDataLen: len, pContextData: p }), "eddsa")
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    Digest,
    Derive,
    Wrap,
    Unwrap,
    GenerateKey,
    GenerateKeyPair,
}

#[derive(Arbitrary, Debug)]
struct Input {
    mechanism: Mech,
    param: Param,
    /// Moves `ulParameterLen` off the struct's size (0: exact).
    len_delta: i8,
    op: Op,
    /// Index into the imported keys; past them, handles that name nothing.
    key: u8,
    /// The key to wrap.
    target: u8,
    /// The new key's class and type for derive, unwrap and generate.
    new_class: u8,
    new_key_type: u8,
    value_len: Option<Num>,
    /// What the parameter's pointers point into.
    data: Vec<u8>,
    /// The operation's input (plaintext, ciphertext, message, wrapped key).
    payload: Vec<u8>,
    signature: Vec<u8>,
}

struct State {
    session: CK_SESSION_HANDLE,
    keys: Keys,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        keyfront_linked();
        let dir = scratch_dir("mechanism_params");
        configure(&dir, &dir.join("token.db"));
        check("C_Initialize", unsafe { ck::C_Initialize(std::ptr::null_mut()) });
        let session = init_token_and_login();
        let keys = import_keys(session, false);
        State { session, keys }
    })
}

/// A CK_RV the module may return; `CKR_GENERAL_ERROR` means an internal error (a caught
/// panic aborts the fuzzer before this).
fn checked(what: &str, rv: CK_RV) -> CK_RV {
    debug!("  {what}: {}", keyfront::names::rv_name(rv));
    assert_ne!(rv, CKR_GENERAL_ERROR, "{what} returned CKR_GENERAL_ERROR");
    rv
}

/// Output lengths any operation on a few KB may need.
const MAX_OUTPUT: CK_ULONG = 1 << 20;

/// Runs a C function with the two-call length protocol: a length query, then the call.
fn two_calls(what: &str, mut call: impl FnMut(*mut u8, *mut CK_ULONG) -> CK_RV) {
    let mut len: CK_ULONG = 0;
    let rv = checked(what, call(std::ptr::null_mut(), &mut len));
    if rv != CKR_OK {
        return;
    }
    assert!(len <= MAX_OUTPUT, "{what} asks for {len} bytes of output");
    let mut out = vec![0u8; len as usize];
    let mut got = len;
    let rv = checked(what, call(out.as_mut_ptr(), &mut got));
    if rv == CKR_OK {
        assert!(got <= len, "{what} wrote {got} bytes into {len}");
    }
}

fn new_key_template(input: &Input) -> CTemplate {
    let classes = [CKO_SECRET_KEY, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_DATA];
    let key_types = [CKK_GENERIC_SECRET, CKK_AES, CKK_SHA256_HMAC, CKK_RSA, CKK_EC, CKK_EC_EDWARDS];
    let mut attrs = vec![
        (CKA_CLASS, ulong(classes[input.new_class as usize % classes.len()])),
        (CKA_KEY_TYPE, ulong(key_types[input.new_key_type as usize % key_types.len()])),
        (CKA_TOKEN, flag(false)),
        (CKA_EXTRACTABLE, flag(true)),
        (CKA_SENSITIVE, flag(false)),
    ];
    if let Some(len) = input.value_len {
        attrs.push((CKA_VALUE_LEN, ulong(len.get())));
    }
    CTemplate::new(&attrs)
}

fn destroy(session: CK_SESSION_HANDLE, rv: CK_RV, handle: CK_OBJECT_HANDLE) {
    if rv == CKR_OK {
        check("C_DestroyObject", unsafe { ck::C_DestroyObject(session, handle) });
    }
}

fuzz_target!(|input: Input| {
    let st = state();
    let s = st.session;
    let kind = input.mechanism.get();
    let (mut buf, layout) = build_param(&input.param, &input.data);
    if !buf.null {
        let len = buf.len as isize + input.len_delta as isize;
        buf.len = len.clamp(0, buf.capacity() as isize) as usize;
        // A raw buffer or a struct of another layout must not be read as a struct with
        // pointers: step off that length.
        if let Some(wanted) = pointer_layout(kind, buf.len) {
            if wanted != layout {
                buf.len = if buf.len < buf.capacity() { buf.len + 1 } else { buf.len - 1 };
            }
        }
    }
    let mut mechanism = CK_MECHANISM {
        mechanism: kind,
        pParameter: if buf.null { std::ptr::null_mut() } else { buf.words.as_mut_ptr() as *mut _ },
        ulParameterLen: buf.len as CK_ULONG,
    };
    debug!("{kind:#x} with {layout} parameter of {} bytes{}, {:?}", buf.len, if buf.null { " (NULL)" } else { "" }, input.op);
    let m: *mut CK_MECHANISM = &mut mechanism;
    let all = st.keys.all();
    let key = all.get(input.key as usize % (all.len() + 2)).copied().unwrap_or(0xdead_0000 + input.key as CK_OBJECT_HANDLE);
    let payload = input.payload.as_ptr() as *mut u8;
    let payload_len = input.payload.len() as CK_ULONG;

    unsafe {
        match input.op {
            Op::Encrypt | Op::Decrypt => {
                let encrypt = matches!(input.op, Op::Encrypt);
                let rv = if encrypt { ck::C_EncryptInit(s, m, key) } else { ck::C_DecryptInit(s, m, key) };
                if checked("C_EncryptInit/C_DecryptInit", rv) == CKR_OK {
                    two_calls("C_Encrypt/C_Decrypt", |out, len| {
                        if encrypt {
                            ck::C_Encrypt(s, payload, payload_len, out, len)
                        } else {
                            ck::C_Decrypt(s, payload, payload_len, out, len)
                        }
                    });
                }
            }
            Op::Sign => {
                if checked("C_SignInit", ck::C_SignInit(s, m, key)) == CKR_OK {
                    two_calls("C_Sign", |out, len| ck::C_Sign(s, payload, payload_len, out, len));
                }
            }
            Op::Verify => {
                if checked("C_VerifyInit", ck::C_VerifyInit(s, m, key)) == CKR_OK {
                    let sig = &input.signature;
                    checked("C_Verify", ck::C_Verify(s, payload, payload_len, sig.as_ptr() as *mut u8, sig.len() as CK_ULONG));
                }
            }
            Op::Digest => {
                if checked("C_DigestInit", ck::C_DigestInit(s, m)) == CKR_OK {
                    two_calls("C_Digest", |out, len| ck::C_Digest(s, payload, payload_len, out, len));
                }
            }
            Op::Derive => {
                let mut t = new_key_template(&input);
                let mut handle = 0;
                let rv = checked("C_DeriveKey", ck::C_DeriveKey(s, m, key, t.ptr(), t.len(), &mut handle));
                destroy(s, rv, handle);
            }
            Op::Wrap => {
                let targets = [st.keys.aes, st.keys.hmac, st.keys.rsa_private, st.keys.ec_private, st.keys.ed_private, st.keys.rsa_public];
                let target = targets[input.target as usize % targets.len()];
                two_calls("C_WrapKey", |out, len| ck::C_WrapKey(s, m, key, target, out, len));
            }
            Op::Unwrap => {
                let mut t = new_key_template(&input);
                let mut handle = 0;
                let rv = checked("C_UnwrapKey", ck::C_UnwrapKey(s, m, key, payload, payload_len, t.ptr(), t.len(), &mut handle));
                destroy(s, rv, handle);
            }
            Op::GenerateKey => {
                let mut t = new_key_template(&input);
                let mut handle = 0;
                let rv = checked("C_GenerateKey", ck::C_GenerateKey(s, m, t.ptr(), t.len(), &mut handle));
                destroy(s, rv, handle);
            }
            Op::GenerateKeyPair => {
                // No CKA_MODULUS_BITS: an RSA generation (seconds each) stops at the template.
                let params = [fixtures::P256_PARAMS, fixtures::ED25519_PARAMS];
                let mut public = CTemplate::new(&[
                    (CKA_TOKEN, flag(false)),
                    (CKA_EC_PARAMS, params[input.new_key_type as usize % 2].to_vec()),
                ]);
                let mut private = CTemplate::new(&[(CKA_TOKEN, flag(false))]);
                let (mut hpub, mut hpriv) = (0, 0);
                let rv = checked(
                    "C_GenerateKeyPair",
                    ck::C_GenerateKeyPair(s, m, public.ptr(), public.len(), private.ptr(), private.len(), &mut hpub, &mut hpriv),
                );
                destroy(s, rv, hpub);
                destroy(s, rv, hpriv);
            }
        }
        checked("C_SessionCancel", ck::C_SessionCancel(s, ALL_OPERATIONS));
    }
});

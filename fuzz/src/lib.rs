//! What the keyfront fuzz targets share: key fixtures, structured attribute values for
//! `arbitrary`, the module's C entry points, and setting up a soft token through them.
//!
//! The targets call keyfront two ways: its public Rust API (`keyfront::object::policy`,
//! `keyfront::mechanism`, `keyfront::config`), and its exported `C_*` functions, declared
//! in [`ck`] and resolved at link time from the `keyfront` rlib (the `abi` module that
//! defines them is private, but the symbols are `#[no_mangle]`). Every pointer handed to a
//! `C_*` function points into memory the target owns, valid for the length passed with it:
//! a crash is then the module's fault, never the harness's.

use std::path::{Path, PathBuf};

pub mod canned;

use arbitrary::Arbitrary;
pub use cryptoki_sys::*;
use keyfront::object::{encode_bool, encode_ulong, AttributeTemplate};

/// Forces the `keyfront` rlib into the link even where a target uses only [`ck`].
pub fn keyfront_linked() -> usize {
    keyfront::mechanism::MECHANISMS.len()
}

// ---------------------------------------------------------------------------------------------
// Fixtures (the same keys as keyfront's unit tests, made with OpenSSL 3.0)

pub mod fixtures {
    /// RSA-2048, PKCS#8 PrivateKeyInfo.
    pub const RSA_PKCS8: &str = concat!(
        "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100c5aca441365f55def984",
        "2f8ea2ca73b74d09cde813d0cea0078636eb3a71917fbec8776732c7810a74813b5865a6047f9cb87ddadea8e4d59148",
        "febab05a7e004dee3bce0cacdb99feff7882ab54eed1b1e55f7e12cc05217f386d154bd2dc852b253534f4ac662bee7d",
        "b22c01a34097cf6af1e2edea6c3a565c34c63f1a685a89f485a070e06d5d3e4f2f0fea137cb6079fbb4db4dd4d551964",
        "527a89ab5edf26f08a9c08e66b598b28a0936123806f86422d5d40eae23afa5e42073161461fce827ac2e207b7e5e7f1",
        "3d0b58bce33b880d2c44533b378dc844aecd81076d2ecd2ab56c86d77d3849db5a2daf0a4c9c0d624e94fd5a45962c8a",
        "523a6a50656f020301000102820100205729526555134fffce46c23fd3a93b428bdeed0ac7929e9a4c8a3ca6f05607d5",
        "3752adb1759ecb8e99bc135a220a175f6a7710c6caa6bc62e0d33d739a8285db3a25a7b03edc4e256ae23fad4c9fd147",
        "ee73d69a630303381f610811c285adf5e14858b47510e19175c2ca320465b8d09db9c5a650c049dfbf85d4da15cb1f9c",
        "88e4979251cfb7e203db1b9fb18ac9fb55feaf6820a5b22ca14027d022d5d116659d6672e3ec17d8fd25e66030d43e1d",
        "e53884461110d8fbf79480809356ca649d7aa014dde384fbaaab7d74615758bdb1785dde718b3d7f0a6013a8edeee30a",
        "f41166920644868ef8031acf8789f2bcd17db77b99ffca5a592c9389fa9b3102818100efb8d15ca6d39264f610315f3e",
        "64b7fb9d93e1e91ec6a5a5371befaa4667ecfe85ee4e73592f40f23f6997eea5d016cb7ae09022476f3121c9dfe7a1f9",
        "e54f2c049c45dff3e1c87ea649421bec22040a7419acb76869e1ca7850c28b5d7fac92dd74068b74b22d631d7f3a1c2e",
        "e6f20fd81870276fa987c8f565b650f1b69f3102818100d318e4ecaa29b6590571a3f7281a73dd461c1db5340c9f9afa",
        "14ab116bb499e8334e81cb8a41ea857b1995d510ea63828f3307da0b7d45070a519328768627a43272439abae9575774",
        "47f5c66dbc6971414b4ed3eca265140aa1f14fac16ea77c8c9163cf256d12afdab4aa5a685a18201c04fce805c353538",
        "0bb041cc56669f028180479fa3c617fe2cc64792acfdb509a8c2dfe0f8658b91749a796dba5cd8ae626be59e3f084dc4",
        "45965b85f424149ca8c2e112c95dc4941f4ce62124f70b500d28acb3f858a2687a5c04d8ec8ca52fc09f52f2fcdccbb0",
        "9f0abc89fca661282d6ab009e38eb52e2b4b6adbc183fc2b7a756b6e59cc1e9bbb7b3a7eca4b42fcfa7102818100c5bc",
        "82ebc175732eae2fc5e4457789e2d2c2917d643512e86bab22971de9bd6549721798de786243088d6dd17897e600ad3c",
        "a2f5375fef61e9e381d21c3c0c33fd61153c822b033a935cb8b757a16eafbcf6daef1eb0fbb7ab4208b595c09d7ef8e0",
        "8be92923f3a8ae975e440ed90bf1a8cc48b5697d7605d4eaf5fe9c76ae8702818100e86fc471c0e90af34d405f48c824",
        "4e9d2c03029dc0fe701502c8a822bd8404b0b3858caebc9c922ae16e30f8d91e9d70fbfa1d04cbf4e64e94ed4f9261ca",
        "d281559796e983847a585477c8a40453bc7414030f95145beb344d9068b4b60e207dc8bda54afcacf66fd0427fb78be3",
        "95c15e2828753cf632f5369425bd5e4e3916",
    );

    /// P-256, PKCS#8 PrivateKeyInfo.
    pub const EC_A_PKCS8: &str = concat!(
        "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104205bb1c5589cddf22566cedc3f",
        "00cec9b99400d82363bd0306c0f047170824a1ada14403420004e3fac213fd7b6e2dbb51c69b8bbdf026174ea3db6cca",
        "83b4c2f9727f26968df9785d02b99201f68ebf2b3c1ff55e6993472ad2edb4019024b225d5158884bd45",
    );

    /// The uncompressed P-256 point of a second key (the ECDH peer of the unit tests).
    pub const EC_B_POINT: &str = concat!(
        "04b287fa0aef35cb757db266a8df2c898dba22fa174b0e3c10be12e4444ed26b36fb0ae9b4721c8fc6daa8d7722ade",
        "6320776a1285bbb34078a78209dbfd895c43",
    );

    /// An Ed25519 seed (RFC 8032 §7.1, TEST 1).
    pub const ED25519_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex fixture")).collect()
    }

    /// PKCS#8 PrivateKeyInfo of the Ed25519 seed (RFC 8410 §7).
    pub fn ed25519_pkcs8() -> Vec<u8> {
        let mut der = hex("302e020100300506032b657004220420");
        der.extend_from_slice(&hex(ED25519_SEED));
        der
    }

    /// DER OCTET STRING around `content` (short and one-byte long forms).
    pub fn octet_string(content: &[u8]) -> Vec<u8> {
        let mut out = vec![0x04];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.extend_from_slice(&[0x81, content.len() as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    pub const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    pub const ED25519_NAME_PARAMS: &[u8] = b"\x13\x0cedwards25519";
    /// secp384r1: a well-formed OID of a curve keyfront does not offer.
    pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    /// X25519: the Montgomery form, also not offered.
    pub const X25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6e];
}

// ---------------------------------------------------------------------------------------------
// Structured attribute values

/// Every attribute type keyfront has a rule for, plus a few it does not.
pub const ATTRIBUTE_TYPES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE, CKA_LABEL,
    CKA_UNIQUE_ID, CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE, CKA_CERTIFICATE_TYPE,
    CKA_CERTIFICATE_CATEGORY, CKA_TRUSTED, CKA_CHECK_VALUE, CKA_SUBJECT, CKA_ISSUER,
    CKA_SERIAL_NUMBER, CKA_URL, CKA_HASH_OF_SUBJECT_PUBLIC_KEY, CKA_HASH_OF_ISSUER_PUBLIC_KEY,
    CKA_JAVA_MIDP_SECURITY_DOMAIN, CKA_NAME_HASH_ALGORITHM, CKA_PUBLIC_KEY_INFO, CKA_ID,
    CKA_START_DATE, CKA_END_DATE, CKA_KEY_TYPE, CKA_DERIVE, CKA_LOCAL, CKA_KEY_GEN_MECHANISM,
    CKA_ALLOWED_MECHANISMS, CKA_ENCRYPT, CKA_VERIFY, CKA_VERIFY_RECOVER, CKA_WRAP, CKA_DECRYPT,
    CKA_SIGN, CKA_SIGN_RECOVER, CKA_UNWRAP, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE, CKA_WRAP_WITH_TRUSTED, CKA_ALWAYS_AUTHENTICATE, CKA_VALUE_LEN,
    CKA_MODULUS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
    CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT, CKA_EC_PARAMS, CKA_EC_POINT,
    // Not in keyfront's rules.
    CKA_OWNER, CKA_AC_ISSUER, CKA_ATTR_TYPES, CKA_PRIME_BITS, CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE, CKA_OTP_FORMAT, CKA_VENDOR_DEFINED,
];

/// Values that matter for `CK_ULONG` attributes: classes, key types, certificate types,
/// mechanisms, and the edges.
pub const ULONG_VALUES: &[CK_ULONG] = &[
    CKO_DATA, CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_SECRET_KEY, CKO_HW_FEATURE,
    CKO_DOMAIN_PARAMETERS, CKO_MECHANISM, CKO_OTP_KEY, CKO_PROFILE, CKO_VENDOR_DEFINED,
    CKK_RSA, CKK_EC, CKK_EC_EDWARDS, CKK_EC_MONTGOMERY, CKK_AES, CKK_GENERIC_SECRET, CKK_SHA256_HMAC,
    CKK_SHA384_HMAC, CKK_SHA512_HMAC, CKK_DES3, CKK_DSA, CKK_VENDOR_DEFINED, CKC_X_509,
    CKC_X_509_ATTR_CERT, CKC_WTLS, CK_CERTIFICATE_CATEGORY_UNSPECIFIED, CKM_AES_KEY_GEN,
    CKM_SHA_1, CKM_SHA256, 1, 16, 24, 32, 64, 255, 256, 2048, 1 << 31, 1 << 32,
    CK_UNAVAILABLE_INFORMATION, CK_UNAVAILABLE_INFORMATION - 1,
];

/// An attribute type: one keyfront knows (by index) or any number.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum AttrType {
    Known(u8),
    Raw(u64),
}

impl AttrType {
    pub fn get(self) -> CK_ATTRIBUTE_TYPE {
        match self {
            AttrType::Known(i) => ATTRIBUTE_TYPES[i as usize % ATTRIBUTE_TYPES.len()],
            AttrType::Raw(v) => v as CK_ATTRIBUTE_TYPE,
        }
    }
}

/// An attribute value, shaped like what a caller would pass or arbitrary bytes.
#[derive(Arbitrary, Debug, Clone)]
pub enum AttrValue {
    Bool(bool),
    /// A one-byte value that is not `CK_TRUE`/`CK_FALSE`.
    Byte(u8),
    Ulong(u8),
    RawUlong(u64),
    Date([u8; 8]),
    MechList(Vec<u8>),
    Bytes(Vec<u8>),
    Empty,
}

impl AttrValue {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            AttrValue::Bool(b) => encode_bool(*b),
            AttrValue::Byte(b) => vec![*b],
            AttrValue::Ulong(i) => encode_ulong(ULONG_VALUES[*i as usize % ULONG_VALUES.len()]),
            AttrValue::RawUlong(v) => encode_ulong(*v as CK_ULONG),
            AttrValue::Date(d) => d.to_vec(),
            AttrValue::MechList(idx) => idx
                .iter()
                .flat_map(|i| {
                    let table = keyfront::mechanism::MECHANISMS;
                    encode_ulong(table[*i as usize % table.len()].kind)
                })
                .collect(),
            AttrValue::Bytes(b) => b.clone(),
            AttrValue::Empty => Vec::new(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Attr {
    pub ty: AttrType,
    pub value: AttrValue,
}

pub fn template_of(attrs: &[Attr]) -> AttributeTemplate {
    let mut t = AttributeTemplate::new();
    for a in attrs {
        t.push(a.ty.get(), a.value.bytes());
    }
    t
}

// ---------------------------------------------------------------------------------------------
// The module's C ABI

/// The `C_*` functions the targets call, as keyfront exports them.
pub mod ck {
    use cryptoki_sys::*;
    use std::ffi::c_void;

    extern "C" {
        pub fn C_Initialize(pInitArgs: *mut c_void) -> CK_RV;
        pub fn C_Finalize(pReserved: *mut c_void) -> CK_RV;
        pub fn C_GetSlotList(tokenPresent: CK_BBOOL, pSlotList: *mut CK_SLOT_ID, pulCount: *mut CK_ULONG) -> CK_RV;
        pub fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV;
        pub fn C_InitToken(slotID: CK_SLOT_ID, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG, pLabel: *mut CK_UTF8CHAR) -> CK_RV;
        pub fn C_InitPIN(hSession: CK_SESSION_HANDLE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) -> CK_RV;
        pub fn C_OpenSession(slotID: CK_SLOT_ID, flags: CK_FLAGS, pApplication: *mut c_void, Notify: CK_NOTIFY, phSession: *mut CK_SESSION_HANDLE) -> CK_RV;
        pub fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV;
        pub fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV;
        pub fn C_Login(hSession: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pPin: *mut CK_UTF8CHAR, ulPinLen: CK_ULONG) -> CK_RV;
        pub fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV;
        pub fn C_CreateObject(hSession: CK_SESSION_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG, phObject: *mut CK_OBJECT_HANDLE) -> CK_RV;
        pub fn C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE) -> CK_RV;
        pub fn C_GetObjectSize(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pulSize: *mut CK_ULONG) -> CK_RV;
        pub fn C_GetAttributeValue(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) -> CK_RV;
        pub fn C_FindObjectsInit(hSession: CK_SESSION_HANDLE, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG) -> CK_RV;
        pub fn C_FindObjects(hSession: CK_SESSION_HANDLE, phObject: *mut CK_OBJECT_HANDLE, ulMaxObjectCount: CK_ULONG, pulObjectCount: *mut CK_ULONG) -> CK_RV;
        pub fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV;
        pub fn C_EncryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) -> CK_RV;
        pub fn C_Encrypt(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pEncryptedData: *mut CK_BYTE, pulEncryptedDataLen: *mut CK_ULONG) -> CK_RV;
        pub fn C_DecryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) -> CK_RV;
        pub fn C_Decrypt(hSession: CK_SESSION_HANDLE, pEncryptedData: *mut CK_BYTE, ulEncryptedDataLen: CK_ULONG, pData: *mut CK_BYTE, pulDataLen: *mut CK_ULONG) -> CK_RV;
        pub fn C_DigestInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM) -> CK_RV;
        pub fn C_Digest(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pDigest: *mut CK_BYTE, pulDigestLen: *mut CK_ULONG) -> CK_RV;
        pub fn C_SignInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) -> CK_RV;
        pub fn C_Sign(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG) -> CK_RV;
        pub fn C_VerifyInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) -> CK_RV;
        pub fn C_Verify(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG) -> CK_RV;
        pub fn C_GenerateKey(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG, phKey: *mut CK_OBJECT_HANDLE) -> CK_RV;
        pub fn C_GenerateKeyPair(
            hSession: CK_SESSION_HANDLE,
            pMechanism: *mut CK_MECHANISM,
            pPublicKeyTemplate: *mut CK_ATTRIBUTE,
            ulPublicKeyAttributeCount: CK_ULONG,
            pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
            ulPrivateKeyAttributeCount: CK_ULONG,
            phPublicKey: *mut CK_OBJECT_HANDLE,
            phPrivateKey: *mut CK_OBJECT_HANDLE,
        ) -> CK_RV;
        pub fn C_WrapKey(
            hSession: CK_SESSION_HANDLE,
            pMechanism: *mut CK_MECHANISM,
            hWrappingKey: CK_OBJECT_HANDLE,
            hKey: CK_OBJECT_HANDLE,
            pWrappedKey: *mut CK_BYTE,
            pulWrappedKeyLen: *mut CK_ULONG,
        ) -> CK_RV;
        pub fn C_UnwrapKey(
            hSession: CK_SESSION_HANDLE,
            pMechanism: *mut CK_MECHANISM,
            hUnwrappingKey: CK_OBJECT_HANDLE,
            pWrappedKey: *mut CK_BYTE,
            ulWrappedKeyLen: CK_ULONG,
            pTemplate: *mut CK_ATTRIBUTE,
            ulAttributeCount: CK_ULONG,
            phKey: *mut CK_OBJECT_HANDLE,
        ) -> CK_RV;
        pub fn C_DeriveKey(
            hSession: CK_SESSION_HANDLE,
            pMechanism: *mut CK_MECHANISM,
            hBaseKey: CK_OBJECT_HANDLE,
            pTemplate: *mut CK_ATTRIBUTE,
            ulAttributeCount: CK_ULONG,
            phKey: *mut CK_OBJECT_HANDLE,
        ) -> CK_RV;
        pub fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV;
    }
}

/// Every operation flag `C_SessionCancel` knows.
pub const ALL_OPERATIONS: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT | CKF_DIGEST | CKF_SIGN | CKF_VERIFY | CKF_FIND_OBJECTS;

/// A C template whose values live as long as it does.
pub struct CTemplate {
    values: Vec<Vec<u8>>,
    attrs: Vec<CK_ATTRIBUTE>,
}

impl CTemplate {
    pub fn new(attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Self {
        let mut values: Vec<Vec<u8>> = attrs.iter().map(|(_, v)| v.clone()).collect();
        let attrs = attrs
            .iter()
            .zip(values.iter_mut())
            .map(|((ty, _), v)| CK_ATTRIBUTE {
                type_: *ty,
                pValue: if v.is_empty() { std::ptr::null_mut() } else { v.as_mut_ptr() as *mut _ },
                ulValueLen: v.len() as CK_ULONG,
            })
            .collect();
        Self { values, attrs }
    }

    pub fn ptr(&mut self) -> *mut CK_ATTRIBUTE {
        if self.attrs.is_empty() {
            std::ptr::null_mut()
        } else {
            self.attrs.as_mut_ptr()
        }
    }

    pub fn len(&self) -> CK_ULONG {
        self.attrs.len() as CK_ULONG
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// The value bytes, e.g. to keep them alive explicitly.
    pub fn values(&self) -> &[Vec<u8>] {
        &self.values
    }
}

pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    encode_ulong(v)
}

pub fn flag(v: bool) -> Vec<u8> {
    encode_bool(v)
}

/// With `KEYFRONT_FUZZ_DEBUG` set, targets say what happened to each input on stderr (for
/// looking at one input: `cargo fuzz run <target> <file>`).
pub fn debug_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("KEYFRONT_FUZZ_DEBUG").is_some())
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::debug_enabled() {
            eprintln!($($t)*);
        }
    };
}

/// Panics (a fuzzer crash) when a setup call fails.
pub fn check(what: &str, rv: CK_RV) {
    assert_eq!(rv, CKR_OK, "{what} failed: {}", keyfront::names::rv_name(rv));
}

// ---------------------------------------------------------------------------------------------
// Scratch space and module setup

/// A directory of this process for token files: `$KEYFRONT_FUZZ_SCRATCH`, else /dev/shm
/// (no disk syncs), else the temp directory; `<name>-<pid>` inside it. Directories left by
/// earlier runs of the same target whose process is gone are removed.
pub fn scratch_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("KEYFRONT_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir)
        .join("keyfront-fuzz");
    let _ = std::fs::create_dir_all(&root);
    let prefix = format!("{name}-");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

pub const SO_PIN: &[u8] = b"so-pin-1234";
pub const USER_PIN: &[u8] = b"user-pin-1234";

/// Points the module at a configuration with one soft slot (id 0) on `db`, and quiets its
/// log unless `KEYFRONT_LOG` is set. Call before the first `C_Initialize`.
pub fn configure(dir: &Path, db: &Path) {
    let config = dir.join("keyfront.toml");
    std::fs::write(
        &config,
        format!("[[slot]]\nkind = \"soft\"\npath = {:?}\nlabel = \"fuzz\"\npin_kdf_iterations = 1000\n", db),
    )
    .expect("write config");
    std::env::set_var("KEYFRONT_CONFIG", &config);
    if std::env::var_os("KEYFRONT_LOG").is_none() {
        std::env::set_var("KEYFRONT_LOG", "off");
    }
}

/// `C_InitToken` and `C_InitPIN` on slot 0, then a read-write session logged in as the user.
pub fn init_token_and_login() -> CK_SESSION_HANDLE {
    unsafe {
        let mut label = [b' '; 32];
        label[..4].copy_from_slice(b"fuzz");
        check("C_InitToken", ck::C_InitToken(0, SO_PIN.as_ptr() as *mut _, SO_PIN.len() as CK_ULONG, label.as_mut_ptr()));
        let session = open_session();
        check("C_Login(SO)", ck::C_Login(session, CKU_SO, SO_PIN.as_ptr() as *mut _, SO_PIN.len() as CK_ULONG));
        check("C_InitPIN", ck::C_InitPIN(session, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as CK_ULONG));
        check("C_Logout", ck::C_Logout(session));
        login_user(session);
        session
    }
}

pub fn open_session() -> CK_SESSION_HANDLE {
    let mut session: CK_SESSION_HANDLE = 0;
    let rv = unsafe { ck::C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, std::ptr::null_mut(), None, &mut session) };
    check("C_OpenSession", rv);
    session
}

pub fn login_user(session: CK_SESSION_HANDLE) -> CK_RV {
    unsafe { ck::C_Login(session, CKU_USER, USER_PIN.as_ptr() as *mut _, USER_PIN.len() as CK_ULONG) }
}

pub fn create_object(session: CK_SESSION_HANDLE, attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> CK_RV {
    let mut t = CTemplate::new(attrs);
    let mut handle = 0;
    unsafe { ck::C_CreateObject(session, t.ptr(), t.len(), &mut handle) }
}

/// `C_CreateObject` that must succeed.
pub fn must_create(session: CK_SESSION_HANDLE, what: &str, attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> CK_OBJECT_HANDLE {
    let mut t = CTemplate::new(attrs);
    let mut handle = 0;
    check(what, unsafe { ck::C_CreateObject(session, t.ptr(), t.len(), &mut handle) });
    handle
}

/// The key objects the ABI targets work with, all made from the fixtures.
#[derive(Clone, Copy, Debug)]
pub struct Keys {
    pub aes: CK_OBJECT_HANDLE,
    pub hmac: CK_OBJECT_HANDLE,
    pub rsa_private: CK_OBJECT_HANDLE,
    pub rsa_public: CK_OBJECT_HANDLE,
    pub ec_private: CK_OBJECT_HANDLE,
    pub ec_public: CK_OBJECT_HANDLE,
    pub ed_private: CK_OBJECT_HANDLE,
    pub ed_public: CK_OBJECT_HANDLE,
}

impl Keys {
    pub fn all(&self) -> [CK_OBJECT_HANDLE; 8] {
        [self.aes, self.hmac, self.rsa_private, self.rsa_public, self.ec_private, self.ec_public, self.ed_private, self.ed_public]
    }
}

/// Imports the fixture keys: AES-256, an HMAC key, and the RSA, P-256 and Ed25519 pairs.
/// `token` makes them token objects (stored in the file), else session objects. Every key
/// may do everything its class allows and is extractable, so it can be wrapped.
pub fn import_keys(session: CK_SESSION_HANDLE, token: bool) -> Keys {
    use fixtures::*;
    let common = |class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, label: &str| {
        vec![
            (CKA_CLASS, ulong(class)),
            (CKA_KEY_TYPE, ulong(key_type)),
            (CKA_TOKEN, flag(token)),
            (CKA_LABEL, label.as_bytes().to_vec()),
            (CKA_ID, label.as_bytes().to_vec()),
        ]
    };
    let secret_uses = [CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP, CKA_DERIVE, CKA_EXTRACTABLE];
    let private_uses = [CKA_DECRYPT, CKA_SIGN, CKA_UNWRAP, CKA_DERIVE, CKA_EXTRACTABLE];
    let public_uses = [CKA_ENCRYPT, CKA_VERIFY, CKA_WRAP, CKA_DERIVE];
    let with_uses = |mut attrs: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, uses: &[CK_ATTRIBUTE_TYPE]| {
        attrs.extend(uses.iter().map(|u| (*u, flag(true))));
        attrs
    };

    let mut aes = with_uses(common(CKO_SECRET_KEY, CKK_AES, "aes"), &secret_uses);
    aes.push((CKA_VALUE, (0u8..32).collect()));
    let aes = must_create(session, "AES key", &aes);

    let mut hmac = with_uses(common(CKO_SECRET_KEY, CKK_GENERIC_SECRET, "hmac"), &[CKA_SIGN, CKA_VERIFY, CKA_DERIVE, CKA_EXTRACTABLE]);
    hmac.push((CKA_VALUE, b"a generic secret of 32 bytes....".to_vec()));
    let hmac = must_create(session, "HMAC key", &hmac);

    let pair = |pkcs8: &[u8], label: &str| -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
        let (key_type, attrs) = keyfront::mechanism::private_key_from_pkcs8(pkcs8).expect("fixture PKCS#8");
        let mut private = with_uses(common(CKO_PRIVATE_KEY, key_type, label), &private_uses);
        let mut public = with_uses(common(CKO_PUBLIC_KEY, key_type, label), &public_uses);
        let public_types: &[CK_ATTRIBUTE_TYPE] = &[CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS];
        for (ty, value) in attrs.iter() {
            if ty != CKA_PUBLIC_KEY_INFO {
                private.push((ty, value.to_vec()));
            }
            if public_types.contains(&ty) {
                public.push((ty, value.to_vec()));
            }
        }
        // The public point of an EC or Ed25519 key, from its SubjectPublicKeyInfo (the BIT
        // STRING's last bytes).
        if key_type != CKK_RSA {
            let spki = attrs.get(CKA_PUBLIC_KEY_INFO).expect("SPKI");
            let point_len = if key_type == CKK_EC { 65 } else { 32 };
            public.push((CKA_EC_POINT, octet_string(&spki[spki.len() - point_len..])));
        }
        let private = must_create(session, label, &private);
        let public = must_create(session, label, &public);
        (private, public)
    };
    let (rsa_private, rsa_public) = pair(&hex(RSA_PKCS8), "rsa");
    let (ec_private, ec_public) = pair(&hex(EC_A_PKCS8), "ec");
    let (ed_private, ed_public) = pair(&ed25519_pkcs8(), "ed25519");
    Keys { aes, hmac, rsa_private, rsa_public, ec_private, ec_public, ed_private, ed_public }
}

/// Clamps an (offset, length) chosen by the input to a buffer of `len` bytes.
pub fn clamp(offset: u32, want: u32, len: usize) -> (usize, usize) {
    let offset = if len == 0 { 0 } else { offset as usize % (len + 1) };
    let n = (want as usize).min(len - offset);
    (offset, n)
}

//! The attribute rules of PKCS#11 3.0 §4 for the classes keyfront stores: which attributes a
//! class has, which a template may set, their defaults, and how they may change afterwards.
//! The core calls these before any object reaches a backend, so every backend gets the same
//! policy.

use cryptoki_sys::*;

use super::{decode_bool, decode_ulong, AttributeTemplate, Object, ULONG_LEN};
use crate::error::{rv, Result};

/// How an object comes into being; the rules differ per origin.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    /// `C_CreateObject`: the caller supplies every value.
    Create,
    /// `C_GenerateKey`/`C_GenerateKeyPair`: the token makes the value.
    Generate,
    /// `C_UnwrapKey`: the value comes from a wrapped blob.
    Unwrap,
    /// `C_DeriveKey`: the value comes from a derivation.
    Derive,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Ulong,
    Bytes,
    /// CK_DATE (8 ASCII digits) or empty.
    Date,
    /// An array of CK_MECHANISM_TYPE.
    MechList,
}

/// How an attribute may change after the object exists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Never: set at creation only (CKA_CLASS, CKA_VALUE …).
    Fixed,
    /// Set by the token, never by a template (CKA_LOCAL …).
    TokenOnly,
    /// Freely with C_SetAttributeValue.
    Free,
    /// Only from false to true (CKA_SENSITIVE, CKA_WRAP_WITH_TRUSTED).
    OnlyToTrue,
    /// Only from true to false (CKA_EXTRACTABLE, CKA_COPYABLE, CKA_DESTROYABLE).
    OnlyToFalse,
    /// Not with C_SetAttributeValue, but in a C_CopyObject template (CKA_TOKEN, CKA_PRIVATE).
    OnCopy,
}

const DATA: u8 = 1;
const CERT: u8 = 2;
const SECRET: u8 = 4;
const PUBLIC: u8 = 8;
const PRIVATE: u8 = 16;
const KEYS: u8 = SECRET | PUBLIC | PRIVATE;
const ALL: u8 = DATA | CERT | KEYS;

struct AttrRule {
    ty: CK_ATTRIBUTE_TYPE,
    kind: Kind,
    classes: u8,
    change: Change,
}

const fn r(ty: CK_ATTRIBUTE_TYPE, kind: Kind, classes: u8, change: Change) -> AttrRule {
    AttrRule { ty, kind, classes, change }
}

use Change::*;
use Kind::*;

static RULES: &[AttrRule] = &[
    r(CKA_CLASS, Ulong, ALL, Fixed),
    r(CKA_TOKEN, Bool, ALL, OnCopy),
    r(CKA_PRIVATE, Bool, ALL, OnCopy),
    r(CKA_MODIFIABLE, Bool, ALL, OnCopy),
    r(CKA_COPYABLE, Bool, ALL, OnlyToFalse),
    r(CKA_DESTROYABLE, Bool, ALL, OnlyToFalse),
    r(CKA_LABEL, Bytes, ALL, Free),
    r(CKA_UNIQUE_ID, Bytes, ALL, TokenOnly),
    r(CKA_APPLICATION, Bytes, DATA, Free),
    r(CKA_OBJECT_ID, Bytes, DATA, Free),
    r(CKA_VALUE, Bytes, DATA, Free),
    r(CKA_VALUE, Bytes, CERT | SECRET | PRIVATE, Fixed),
    r(CKA_CERTIFICATE_TYPE, Ulong, CERT, Fixed),
    r(CKA_CERTIFICATE_CATEGORY, Ulong, CERT, Fixed),
    r(CKA_TRUSTED, Bool, CERT | SECRET | PUBLIC, Free),
    r(CKA_CHECK_VALUE, Bytes, CERT | SECRET, Fixed),
    r(CKA_SUBJECT, Bytes, CERT | PUBLIC | PRIVATE, Free),
    r(CKA_ISSUER, Bytes, CERT, Free),
    r(CKA_SERIAL_NUMBER, Bytes, CERT, Free),
    r(CKA_URL, Bytes, CERT, Fixed),
    r(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Bytes, CERT, Fixed),
    r(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Bytes, CERT, Fixed),
    r(CKA_JAVA_MIDP_SECURITY_DOMAIN, Ulong, CERT, Fixed),
    r(CKA_NAME_HASH_ALGORITHM, Ulong, CERT, Fixed),
    r(CKA_PUBLIC_KEY_INFO, Bytes, CERT | PUBLIC | PRIVATE, Fixed),
    r(CKA_ID, Bytes, CERT | KEYS, Free),
    r(CKA_START_DATE, Date, CERT | KEYS, Free),
    r(CKA_END_DATE, Date, CERT | KEYS, Free),
    r(CKA_KEY_TYPE, Ulong, KEYS, Fixed),
    r(CKA_DERIVE, Bool, KEYS, Free),
    r(CKA_LOCAL, Bool, KEYS, TokenOnly),
    r(CKA_KEY_GEN_MECHANISM, Ulong, KEYS, TokenOnly),
    r(CKA_ALLOWED_MECHANISMS, MechList, KEYS, Fixed),
    r(CKA_ENCRYPT, Bool, SECRET | PUBLIC, Free),
    r(CKA_VERIFY, Bool, SECRET | PUBLIC, Free),
    r(CKA_VERIFY_RECOVER, Bool, PUBLIC, Free),
    r(CKA_WRAP, Bool, SECRET | PUBLIC, Free),
    r(CKA_DECRYPT, Bool, SECRET | PRIVATE, Free),
    r(CKA_SIGN, Bool, SECRET | PRIVATE, Free),
    r(CKA_SIGN_RECOVER, Bool, PRIVATE, Free),
    r(CKA_UNWRAP, Bool, SECRET | PRIVATE, Free),
    r(CKA_SENSITIVE, Bool, SECRET | PRIVATE, OnlyToTrue),
    r(CKA_EXTRACTABLE, Bool, SECRET | PRIVATE, OnlyToFalse),
    r(CKA_ALWAYS_SENSITIVE, Bool, SECRET | PRIVATE, TokenOnly),
    r(CKA_NEVER_EXTRACTABLE, Bool, SECRET | PRIVATE, TokenOnly),
    r(CKA_WRAP_WITH_TRUSTED, Bool, SECRET | PRIVATE, OnlyToTrue),
    r(CKA_ALWAYS_AUTHENTICATE, Bool, PRIVATE, Fixed),
    r(CKA_VALUE_LEN, Ulong, SECRET, Fixed),
    // Key-type components (RSA, EC, EdDSA); the key-type checks come with the asymmetric
    // mechanisms.
    r(CKA_MODULUS, Bytes, PUBLIC | PRIVATE, Fixed),
    r(CKA_MODULUS_BITS, Ulong, PUBLIC, Fixed),
    r(CKA_PUBLIC_EXPONENT, Bytes, PUBLIC | PRIVATE, Fixed),
    r(CKA_PRIVATE_EXPONENT, Bytes, PRIVATE, Fixed),
    r(CKA_PRIME_1, Bytes, PRIVATE, Fixed),
    r(CKA_PRIME_2, Bytes, PRIVATE, Fixed),
    r(CKA_EXPONENT_1, Bytes, PRIVATE, Fixed),
    r(CKA_EXPONENT_2, Bytes, PRIVATE, Fixed),
    r(CKA_COEFFICIENT, Bytes, PRIVATE, Fixed),
    r(CKA_EC_PARAMS, Bytes, PUBLIC | PRIVATE, Fixed),
    r(CKA_EC_POINT, Bytes, PUBLIC, Fixed),
];

fn class_bit(class: CK_OBJECT_CLASS) -> Option<u8> {
    Some(match class {
        CKO_DATA => DATA,
        CKO_CERTIFICATE => CERT,
        CKO_SECRET_KEY => SECRET,
        CKO_PUBLIC_KEY => PUBLIC,
        CKO_PRIVATE_KEY => PRIVATE,
        _ => return None,
    })
}

fn rule(class: CK_OBJECT_CLASS, ty: CK_ATTRIBUTE_TYPE) -> Option<&'static AttrRule> {
    let bit = class_bit(class)?;
    RULES.iter().find(|r| r.ty == ty && r.classes & bit != 0)
}

/// True when `ty` is an attribute objects of `class` have.
pub fn is_valid_attribute(class: CK_OBJECT_CLASS, ty: CK_ATTRIBUTE_TYPE) -> bool {
    rule(class, ty).is_some()
}

/// Attributes that hold secret key material: never readable when the object is sensitive or
/// unextractable, and sealed at rest by the store.
pub fn is_secret_component(class: CK_OBJECT_CLASS, ty: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY)
        && matches!(
            ty,
            CKA_VALUE
                | CKA_PRIVATE_EXPONENT
                | CKA_PRIME_1
                | CKA_PRIME_2
                | CKA_EXPONENT_1
                | CKA_EXPONENT_2
                | CKA_COEFFICIENT
        )
}

/// Whether the store must seal this attribute of this object.
pub fn must_seal(object: &Object, ty: CK_ATTRIBUTE_TYPE) -> bool {
    is_secret_component(object.class(), ty) || (ty == CKA_VALUE && object.is_private())
}

/// Whether `C_GetAttributeValue` may reveal `ty`.
pub fn is_readable(object: &Object, ty: CK_ATTRIBUTE_TYPE) -> bool {
    if !is_secret_component(object.class(), ty) {
        return true;
    }
    !object.flag(CKA_SENSITIVE) && object.flag(CKA_EXTRACTABLE)
}

fn check_value_shape(kind: Kind, value: &[u8]) -> Result<()> {
    let ok = match kind {
        Bool => decode_bool(value).is_ok(),
        Ulong => value.len() == ULONG_LEN,
        Bytes => true,
        Date => value.is_empty() || (value.len() == 8 && value.iter().all(u8::is_ascii_digit)),
        MechList => value.len().is_multiple_of(ULONG_LEN),
    };
    if ok {
        Ok(())
    } else {
        Err(rv(CKR_ATTRIBUTE_VALUE_INVALID))
    }
}

/// The key types keyfront knows per class, with the mechanism that generates them.
fn supported_key_type(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE) -> bool {
    match class {
        CKO_SECRET_KEY => matches!(
            key_type,
            CKK_AES | CKK_GENERIC_SECRET | CKK_SHA256_HMAC | CKK_SHA384_HMAC | CKK_SHA512_HMAC
        ),
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => crate::mechanism::is_asymmetric(key_type),
        _ => false,
    }
}

/// Classes a caller may create with `C_CreateObject` today.
fn creatable_class(class: CK_OBJECT_CLASS) -> bool {
    matches!(class, CKO_DATA | CKO_CERTIFICATE | CKO_SECRET_KEY | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY)
}

/// What the core knows about the caller when it builds an object.
#[derive(Clone, Copy)]
pub struct Caller {
    pub is_so: bool,
}

/// Builds a new object from a caller's template: checks every attribute, fills the class
/// defaults and the token-set attributes. `implied` holds what the mechanism fixes (class,
/// key type, CKA_KEY_GEN_MECHANISM…) and `value` the key material made by the token, if any.
pub fn new_object(
    template: &AttributeTemplate,
    origin: Origin,
    implied: &AttributeTemplate,
    caller: Caller,
) -> Result<Object> {
    let class = match (template.get_ulong(CKA_CLASS)?, implied.get_ulong(CKA_CLASS)?) {
        (Some(t), Some(i)) if t != i => return Err(rv(CKR_TEMPLATE_INCONSISTENT)),
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => return Err(rv(CKR_TEMPLATE_INCOMPLETE)),
    };
    let Some(_) = class_bit(class) else {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    };
    if origin == Origin::Create && !creatable_class(class) {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }

    let mut object = Object::new();
    // Later duplicates of one type must agree with earlier ones.
    for (ty, value) in template.iter() {
        let rule = rule(class, ty).ok_or(rv(CKR_ATTRIBUTE_TYPE_INVALID))?;
        check_value_shape(rule.kind, value)?;
        if rule.change == TokenOnly {
            return Err(rv(CKR_ATTRIBUTE_READ_ONLY));
        }
        if ty == CKA_TRUSTED && decode_bool(value)? && !caller.is_so {
            return Err(rv(CKR_ATTRIBUTE_READ_ONLY));
        }
        if let Some(previous) = object.get(ty) {
            if previous != value {
                return Err(rv(CKR_TEMPLATE_INCONSISTENT));
            }
        }
        object.set(ty, value.to_vec());
    }
    for (ty, value) in implied.iter() {
        match object.get(ty) {
            Some(given) if given != value => return Err(rv(CKR_TEMPLATE_INCONSISTENT)),
            _ => object.set(ty, value.to_vec()),
        }
    }

    if origin != Origin::Create && template.contains(CKA_VALUE) {
        return Err(rv(CKR_TEMPLATE_INCONSISTENT));
    }
    fill_defaults(&mut object, class);
    match class {
        CKO_SECRET_KEY => finish_secret_key(&mut object, origin)?,
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => finish_key_pair_half(&mut object, origin)?,
        CKO_CERTIFICATE => finish_certificate(&object)?,
        _ => {}
    }
    Ok(object)
}

fn fill_defaults(object: &mut Object, class: CK_OBJECT_CLASS) {
    let is_key = matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY);
    let defaults: &[(CK_ATTRIBUTE_TYPE, bool)] = &[
        (CKA_TOKEN, false),
        (CKA_PRIVATE, is_key),
        (CKA_MODIFIABLE, true),
        (CKA_COPYABLE, true),
        (CKA_DESTROYABLE, true),
    ];
    for (ty, value) in defaults {
        if !object.contains(*ty) {
            object.set_bool(*ty, *value);
        }
    }
    if !object.contains(CKA_LABEL) {
        object.set(CKA_LABEL, Vec::new());
    }
    let bit = class_bit(class).unwrap_or(0);
    if bit & KEYS != 0 {
        for ty in [CKA_ID, CKA_START_DATE, CKA_END_DATE] {
            if !object.contains(ty) {
                object.set(ty, Vec::new());
            }
        }
        if !object.contains(CKA_DERIVE) {
            object.set_bool(CKA_DERIVE, false);
        }
        if !object.contains(CKA_ALLOWED_MECHANISMS) {
            object.set(CKA_ALLOWED_MECHANISMS, Vec::new());
        }
    }
    if class == CKO_SECRET_KEY {
        for (ty, value) in [
            (CKA_ENCRYPT, true),
            (CKA_DECRYPT, true),
            (CKA_SIGN, true),
            (CKA_VERIFY, true),
            (CKA_WRAP, true),
            (CKA_UNWRAP, true),
            (CKA_SENSITIVE, true),
            (CKA_EXTRACTABLE, false),
            (CKA_WRAP_WITH_TRUSTED, false),
            (CKA_TRUSTED, false),
        ] {
            if !object.contains(ty) {
                object.set_bool(ty, value);
            }
        }
    }
    let pair_defaults: &[(CK_ATTRIBUTE_TYPE, bool)] = match class {
        CKO_PUBLIC_KEY => &[(CKA_ENCRYPT, true), (CKA_VERIFY, true), (CKA_VERIFY_RECOVER, false), (CKA_WRAP, true), (CKA_TRUSTED, false)],
        CKO_PRIVATE_KEY => &[
            (CKA_DECRYPT, true),
            (CKA_SIGN, true),
            (CKA_SIGN_RECOVER, false),
            (CKA_UNWRAP, true),
            (CKA_SENSITIVE, true),
            (CKA_EXTRACTABLE, false),
            (CKA_WRAP_WITH_TRUSTED, false),
            (CKA_ALWAYS_AUTHENTICATE, false),
        ],
        _ => &[],
    };
    for (ty, value) in pair_defaults {
        if !object.contains(*ty) {
            object.set_bool(*ty, *value);
        }
    }
    if matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) && !object.contains(CKA_SUBJECT) {
        object.set(CKA_SUBJECT, Vec::new());
    }
    if class == CKO_CERTIFICATE {
        // PKCS#11 3.0 §4.6 and §4.6.3 (X.509 public-key certificates).
        for ty in [CKA_ID, CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_URL, CKA_HASH_OF_SUBJECT_PUBLIC_KEY, CKA_HASH_OF_ISSUER_PUBLIC_KEY, CKA_START_DATE, CKA_END_DATE] {
            if !object.contains(ty) {
                object.set(ty, Vec::new());
            }
        }
        for (ty, value) in [(CKA_CERTIFICATE_CATEGORY, CK_CERTIFICATE_CATEGORY_UNSPECIFIED), (CKA_JAVA_MIDP_SECURITY_DOMAIN, 0), (CKA_NAME_HASH_ALGORITHM, CKM_SHA_1)] {
            if !object.contains(ty) {
                object.set_ulong(ty, value);
            }
        }
        if !object.contains(CKA_TRUSTED) {
            object.set_bool(CKA_TRUSTED, false);
        }
    }
    if class == CKO_DATA {
        for ty in [CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE] {
            if !object.contains(ty) {
                object.set(ty, Vec::new());
            }
        }
    }
}

fn finish_secret_key(object: &mut Object, origin: Origin) -> Result<()> {
    let key_type = object.key_type().ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
    if !supported_key_type(CKO_SECRET_KEY, key_type) {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let value_len = object.get(CKA_VALUE).map(<[u8]>::len);
    let stated_len = object.ulong(CKA_VALUE_LEN);
    let len = match origin {
        Origin::Generate => {
            if value_len.is_none() {
                return Err(rv(CKR_TEMPLATE_INCONSISTENT));
            }
            value_len.unwrap_or(0)
        }
        // PKCS#11 3.0 §6.7.2 and §6.8.1 (footnote 2): CKA_VALUE_LEN must not be given to
        // C_CreateObject, whose CKA_VALUE says the length; SoftHSM2 refuses it the same way.
        Origin::Create if stated_len.is_some() => return Err(rv(CKR_ATTRIBUTE_READ_ONLY)),
        Origin::Create | Origin::Unwrap | Origin::Derive => {
            let len = value_len.ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
            if stated_len.is_some_and(|s| s as usize != len) {
                return Err(rv(CKR_TEMPLATE_INCONSISTENT));
            }
            len
        }
    };
    let len_ok = match key_type {
        CKK_AES => matches!(len, 16 | 24 | 32),
        _ => len >= 1,
    };
    if !len_ok {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    object.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
    set_origin_attributes(object, origin);
    Ok(())
}

fn finish_key_pair_half(object: &mut Object, origin: Origin) -> Result<()> {
    let key_type = object.key_type().ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
    if !supported_key_type(object.class(), key_type) {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    // Generated EC and Ed25519 keys come out of the mechanism complete and normalised;
    // checking them again would redo the public-key computation (most of a P-256 key
    // generation's time). RSA still passes: it normalises the caller's exponent spelling.
    if origin != Origin::Generate || key_type == CKK_RSA {
        crate::mechanism::complete_key(object)?;
    }
    set_origin_attributes(object, origin);
    Ok(())
}

/// CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE and CKA_KEY_GEN_MECHANISM say
/// where a key came from; only the token sets them.
fn set_origin_attributes(object: &mut Object, origin: Origin) {
    let generated = origin == Origin::Generate;
    object.set_bool(CKA_LOCAL, generated);
    if !generated {
        object.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
    }
    if matches!(object.class(), CKO_SECRET_KEY | CKO_PRIVATE_KEY) {
        let sensitive = object.flag(CKA_SENSITIVE);
        let extractable = object.flag(CKA_EXTRACTABLE);
        object.set_bool(CKA_ALWAYS_SENSITIVE, generated && sensitive);
        object.set_bool(CKA_NEVER_EXTRACTABLE, generated && !extractable);
    }
}

fn finish_certificate(object: &Object) -> Result<()> {
    let cert_type = object.ulong(CKA_CERTIFICATE_TYPE).ok_or(rv(CKR_TEMPLATE_INCOMPLETE))?;
    if cert_type != CKC_X_509 {
        return Err(rv(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    for required in [CKA_SUBJECT, CKA_VALUE] {
        if !object.contains(required) {
            return Err(rv(CKR_TEMPLATE_INCOMPLETE));
        }
    }
    Ok(())
}

/// Whether one attribute may change from its current value to `value`, for
/// `C_SetAttributeValue` (`copying` false) or a `C_CopyObject` template (`copying` true).
fn check_change(object: &Object, ty: CK_ATTRIBUTE_TYPE, value: &[u8], copying: bool, caller: Caller) -> Result<()> {
    let rule = rule(object.class(), ty).ok_or(rv(CKR_ATTRIBUTE_TYPE_INVALID))?;
    check_value_shape(rule.kind, value)?;
    let unchanged = object.get(ty) == Some(value);
    let ok = match rule.change {
        Free => true,
        Fixed | TokenOnly => unchanged,
        OnlyToTrue => unchanged || decode_bool(value)?,
        OnlyToFalse => unchanged || !decode_bool(value)?,
        // CKA_MODIFIABLE may only be lowered in a copy.
        OnCopy if ty == CKA_MODIFIABLE => unchanged || (copying && !decode_bool(value)?),
        OnCopy => unchanged || copying,
    };
    if !ok {
        return Err(rv(CKR_ATTRIBUTE_READ_ONLY));
    }
    if ty == CKA_TRUSTED && decode_bool(value)? && !unchanged && !caller.is_so {
        return Err(rv(CKR_ATTRIBUTE_READ_ONLY));
    }
    Ok(())
}

/// Applies a `C_SetAttributeValue` template to a copy of the object: all or nothing.
pub fn set_attributes(object: &Object, template: &AttributeTemplate, caller: Caller) -> Result<Object> {
    if !object.flag(CKA_MODIFIABLE) {
        return Err(rv(CKR_ACTION_PROHIBITED));
    }
    apply(object, template, false, caller)
}

/// Builds the copy for `C_CopyObject`.
pub fn copy_object(object: &Object, template: &AttributeTemplate, caller: Caller) -> Result<Object> {
    if object.contains(CKA_COPYABLE) && !object.flag(CKA_COPYABLE) {
        return Err(rv(CKR_ACTION_PROHIBITED));
    }
    let mut copy = apply(object, template, true, caller)?;
    // A copy is a new object: it is not the token's own creation.
    copy.remove(CKA_UNIQUE_ID);
    Ok(copy)
}

fn apply(object: &Object, template: &AttributeTemplate, copying: bool, caller: Caller) -> Result<Object> {
    let mut changed = object.clone();
    for (ty, value) in template.iter() {
        check_change(object, ty, value, copying, caller)?;
        changed.set(ty, value.to_vec());
    }
    Ok(changed)
}

/// Checks a find template's values for shape only; unknown types simply match nothing.
pub fn check_find_template(template: &AttributeTemplate) -> Result<()> {
    for (ty, value) in template.iter() {
        if matches!(ty, CKA_CLASS | CKA_KEY_TYPE | CKA_CERTIFICATE_TYPE) {
            decode_ulong(value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::encode_ulong;

    fn aes_template(len: usize) -> AttributeTemplate {
        AttributeTemplate::new()
            .with(CKA_CLASS, encode_ulong(CKO_SECRET_KEY))
            .with(CKA_KEY_TYPE, encode_ulong(CKK_AES))
            .with(CKA_VALUE, vec![7u8; len])
    }

    const USER: Caller = Caller { is_so: false };

    #[test]
    fn secret_key_defaults_are_safe() {
        let o = new_object(&aes_template(16), Origin::Create, &AttributeTemplate::new(), USER).unwrap();
        assert!(o.flag(CKA_SENSITIVE) && !o.flag(CKA_EXTRACTABLE) && o.flag(CKA_PRIVATE));
        assert!(!o.flag(CKA_LOCAL) && !o.flag(CKA_ALWAYS_SENSITIVE));
        assert_eq!(o.ulong(CKA_VALUE_LEN), Some(16));
    }

    #[test]
    fn bad_templates_get_precise_codes() {
        let empty = AttributeTemplate::new();
        assert_eq!(new_object(&aes_template(15), Origin::Create, &empty, USER).err().unwrap().rv(), CKR_ATTRIBUTE_VALUE_INVALID);
        let t = aes_template(16).with(CKA_LOCAL, vec![1]);
        assert_eq!(new_object(&t, Origin::Create, &empty, USER).err().unwrap().rv(), CKR_ATTRIBUTE_READ_ONLY);
        let t = aes_template(16).with(CKA_MODULUS, vec![1]);
        assert_eq!(new_object(&t, Origin::Create, &empty, USER).err().unwrap().rv(), CKR_ATTRIBUTE_TYPE_INVALID);
        let t = aes_template(16).with(CKA_VALUE_LEN, encode_ulong(16));
        assert_eq!(new_object(&t, Origin::Create, &empty, USER).err().unwrap().rv(), CKR_ATTRIBUTE_READ_ONLY);
        let t = aes_template(16).with(CKA_SENSITIVE, vec![1, 0]);
        assert_eq!(new_object(&t, Origin::Create, &empty, USER).err().unwrap().rv(), CKR_ATTRIBUTE_VALUE_INVALID);
        let t = AttributeTemplate::new().with(CKA_CLASS, encode_ulong(CKO_SECRET_KEY)).with(CKA_KEY_TYPE, encode_ulong(CKK_AES));
        assert_eq!(new_object(&t, Origin::Create, &empty, USER).err().unwrap().rv(), CKR_TEMPLATE_INCOMPLETE);
    }

    #[test]
    fn one_way_attributes() {
        let t = aes_template(16).with(CKA_SENSITIVE, vec![0]).with(CKA_EXTRACTABLE, vec![1]);
        let o = new_object(&t, Origin::Create, &AttributeTemplate::new(), USER).unwrap();
        let up = AttributeTemplate::new().with(CKA_SENSITIVE, vec![1]).with(CKA_EXTRACTABLE, vec![0]);
        let o2 = set_attributes(&o, &up, USER).unwrap();
        let down = AttributeTemplate::new().with(CKA_SENSITIVE, vec![0]);
        assert_eq!(set_attributes(&o2, &down, USER).err().unwrap().rv(), CKR_ATTRIBUTE_READ_ONLY);
        let class = AttributeTemplate::new().with(CKA_CLASS, encode_ulong(CKO_DATA));
        assert_eq!(set_attributes(&o2, &class, USER).err().unwrap().rv(), CKR_ATTRIBUTE_READ_ONLY);
        let to_token = AttributeTemplate::new().with(CKA_TOKEN, vec![1]);
        assert_eq!(set_attributes(&o2, &to_token, USER).err().unwrap().rv(), CKR_ATTRIBUTE_READ_ONLY);
        assert!(copy_object(&o2, &to_token, USER).unwrap().is_token());
    }
}

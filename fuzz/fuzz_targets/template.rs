//! Attribute templates of any types and lengths through the object rules: `new_object` for
//! each origin, then `set_attributes` and `copy_object` on what it built, and the
//! `AttributeTemplate` getters. The policy must answer with a CK_RV, never panic, and what it
//! accepts must be consistent.
#![no_main]

use arbitrary::Arbitrary;
use keyfront::object::policy::{self, Caller, Origin};
use keyfront::object::{decode_ulong, AttributeTemplate};
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum OriginChoice {
    Create,
    Generate,
    Unwrap,
    Derive,
}

/// What the mechanism fixes, as the core passes it.
#[derive(Arbitrary, Debug)]
enum Implied {
    Nothing,
    /// A generated or unwrapped secret key: class and value.
    SecretValue(u8),
    /// Any attributes.
    Attrs(Vec<Attr>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    origin: OriginChoice,
    is_so: bool,
    template: Vec<Attr>,
    implied: Implied,
    set: Vec<Attr>,
    copy: Vec<Attr>,
    set_as_so: bool,
}

fn getters(t: &AttributeTemplate) {
    for (ty, value) in t.iter() {
        assert_eq!(t.get(ty).is_some(), t.contains(ty));
        let _ = t.get_ulong(ty);
        let _ = t.get_bool(ty);
        let _ = value.len();
        for class in [CKO_DATA, CKO_CERTIFICATE, CKO_SECRET_KEY, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_VENDOR_DEFINED] {
            let _ = policy::is_valid_attribute(class, ty);
            let _ = policy::is_secret_component(class, ty);
        }
    }
    let _ = policy::check_find_template(t);
}

/// After a successful `set_attributes`/`copy_object`, every attribute of the template has
/// the template's (last) value.
fn applied(object: &keyfront::object::Object, t: &AttributeTemplate) {
    // A copy loses CKA_UNIQUE_ID whatever the template says.
    for (ty, _) in t.iter().filter(|(ty, _)| *ty != CKA_UNIQUE_ID) {
        assert_eq!(object.get(ty), t.get(ty), "attribute {ty:#x} not applied");
    }
}

fn object_queries(object: &keyfront::object::Object) {
    let _ = object.allowed_mechanisms();
    let _ = object.size();
    for (ty, _) in object.iter() {
        let _ = policy::is_readable(object, ty);
        let _ = policy::must_seal(object, ty);
    }
}

fuzz_target!(|input: Input| {
    let template = template_of(&input.template);
    let implied = match &input.implied {
        Implied::Nothing => AttributeTemplate::new(),
        Implied::SecretValue(len) => AttributeTemplate::new()
            .with(CKA_CLASS, ulong(CKO_SECRET_KEY))
            .with(CKA_VALUE, vec![0x5a; *len as usize % 70]),
        Implied::Attrs(attrs) => template_of(attrs),
    };
    let origin = match input.origin {
        OriginChoice::Create => Origin::Create,
        OriginChoice::Generate => Origin::Generate,
        OriginChoice::Unwrap => Origin::Unwrap,
        OriginChoice::Derive => Origin::Derive,
    };
    getters(&template);
    getters(&implied);

    let object = match policy::new_object(&template, origin, &implied, Caller { is_so: input.is_so }) {
        Ok(object) => object,
        Err(e) => {
            debug!("{origin:?}: refused: {e}");
            return;
        }
    };
    debug!("{origin:?}: accepted class {:#x}", object.class());
    // What was accepted: a class of the template or the mechanism, secret keys with a length
    // that matches their value, and the token-set attributes present.
    let class = object.class();
    if let Some(c) = template.get(CKA_CLASS).or(implied.get(CKA_CLASS)) {
        assert_eq!(Ok(class), decode_ulong(c).map_err(|_| ()));
    }
    if class == CKO_SECRET_KEY {
        let value = object.get(CKA_VALUE).expect("secret key without CKA_VALUE");
        assert_eq!(object.ulong(CKA_VALUE_LEN), Some(value.len() as CK_ULONG));
    }
    if matches!(class, CKO_SECRET_KEY | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
        assert!(object.contains(CKA_LOCAL));
        assert_eq!(object.flag(CKA_LOCAL), origin == Origin::Generate);
    }
    object_queries(&object);

    let caller = Caller { is_so: input.set_as_so };
    let set = template_of(&input.set);
    getters(&set);
    let changed = policy::set_attributes(&object, &set, caller);
    debug!("set_attributes: {:?}", changed.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    if let Ok(changed) = changed {
        applied(&changed, &set);
        assert_eq!(changed.class(), class, "C_SetAttributeValue changed the class");
        object_queries(&changed);
    }
    let copy = template_of(&input.copy);
    getters(&copy);
    let copied = policy::copy_object(&object, &copy, caller);
    debug!("copy_object: {:?}", copied.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    if let Ok(copied) = copied {
        applied(&copied, &copy);
        assert!(!copied.contains(CKA_UNIQUE_ID));
        assert_eq!(copied.class(), class, "C_CopyObject changed the class");
        object_queries(&copied);
        // A copy of a copy follows the same rules.
        let _ = policy::copy_object(&copied, &set, caller);
    }
});

//! General-purpose functions, slots, mechanisms, RNG, and one end-to-end flow through cryptoki's
//! high-level API.
mod common;
use common::*;

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::ptr;

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

/// The mechanisms the module must list, exactly.
const MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_AES_KEY_GEN, CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_CTR, CKM_AES_GCM,
    CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_KWP, CKM_GENERIC_SECRET_KEY_GEN,
    CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA256_HMAC, CKM_SHA384_HMAC, CKM_SHA512_HMAC,
];

#[test]
fn library_info() {
    let info = fx().p11.get_library_info().expect("C_GetInfo");
    assert_eq!((info.cryptoki_version().major(), info.cryptoki_version().minor()), (3, 0));
    assert_eq!(info.manufacturer_id(), "keyfront");

    let mut raw = CK_INFO::default();
    assert_rv(ck!(C_GetInfo, &mut raw), CKR_OK);
    assert_eq!(&raw.manufacturerID[..], &padded::<32>("keyfront")[..], "blank padded, no NUL");
    assert_eq!(raw.flags, 0);
    assert_rv(ck!(C_GetInfo, ptr::null_mut()), CKR_ARGUMENTS_BAD);
}

fn iface_version(i: &CK_INTERFACE) -> (u8, u8) {
    let v = unsafe { *(i.pFunctionList as *const CK_VERSION) };
    (v.major, v.minor)
}

fn iface_name(i: &CK_INTERFACE) -> String {
    unsafe { CStr::from_ptr(i.pInterfaceName as *const _) }.to_string_lossy().into_owned()
}

#[test]
fn interface_list_and_get_interface() {
    fx();
    let l = lib();
    let mut n: CK_ULONG = 0;
    assert_rv(unsafe { l.C_GetInterfaceList(ptr::null_mut(), &mut n) }, CKR_OK);
    assert!(n >= 2, "at least PKCS 11 3.0 and 2.40, got {n}");
    let mut small = vec![CK_INTERFACE { pInterfaceName: ptr::null_mut(), pFunctionList: ptr::null_mut(), flags: 0 }; n as usize];
    let mut m = n - 1;
    assert_rv(unsafe { l.C_GetInterfaceList(small.as_mut_ptr(), &mut m) }, CKR_BUFFER_TOO_SMALL);
    assert_eq!(m, n, "BUFFER_TOO_SMALL reports the needed count");
    assert_rv(unsafe { l.C_GetInterfaceList(small.as_mut_ptr(), &mut n) }, CKR_OK);
    let offered: BTreeSet<(String, (u8, u8))> = small.iter().map(|i| (iface_name(i), iface_version(i))).collect();
    assert!(offered.contains(&("PKCS 11".into(), (3, 0))), "{offered:?}");
    assert!(offered.contains(&("PKCS 11".into(), (2, 40))), "{offered:?}");
    assert_rv(unsafe { l.C_GetInterfaceList(ptr::null_mut(), ptr::null_mut()) }, CKR_ARGUMENTS_BAD);

    let get_with_flags = |name: Option<&str>, ver: Option<(u8, u8)>, flags: CK_FLAGS| -> R<CK_INTERFACE> {
        let cname = name.map(|n| std::ffi::CString::new(n).unwrap());
        let mut v = ver.map(|(major, minor)| CK_VERSION { major, minor });
        let mut out: *mut CK_INTERFACE = ptr::null_mut();
        rv(unsafe {
            l.C_GetInterface(
                cname.as_ref().map_or(ptr::null_mut(), |c| c.as_ptr() as *mut u8),
                v.as_mut().map_or(ptr::null_mut(), |v| v as *mut _),
                &mut out,
                flags,
            )
        })?;
        assert!(!out.is_null());
        Ok(unsafe { *out })
    };
    let get = |name: Option<&str>, ver: Option<(u8, u8)>| get_with_flags(name, ver, 0);
    let i30 = get(Some("PKCS 11"), Some((3, 0))).expect("C_GetInterface PKCS 11 3.0");
    assert_eq!((iface_name(&i30), iface_version(&i30)), ("PKCS 11".into(), (3, 0)));
    // The 3.0 list is usable: C_GetInfo through it reports 3.0.
    let f30 = unsafe { &*(i30.pFunctionList as *const CK_FUNCTION_LIST_3_0) };
    let mut info = CK_INFO::default();
    assert_rv(unsafe { (f30.C_GetInfo.unwrap())(&mut info) }, CKR_OK);
    assert_eq!((info.cryptokiVersion.major, info.cryptokiVersion.minor), (3, 0));
    assert!(f30.C_LoginUser.is_some() && f30.C_SessionCancel.is_some(), "3.0 list has the 3.0 entry points");

    let i240 = get(Some("PKCS 11"), Some((2, 40))).expect("C_GetInterface PKCS 11 2.40");
    assert_eq!(iface_version(&i240), (2, 40));
    // What is left unnamed is the newest: 3.0.
    let dflt = get(None, None).expect("C_GetInterface default");
    assert_eq!((iface_name(&dflt), iface_version(&dflt)), ("PKCS 11".into(), (3, 0)));
    let named = get(Some("PKCS 11"), None).expect("C_GetInterface PKCS 11, any version");
    assert_eq!(iface_version(&named), (3, 0));
    let old = get(None, Some((2, 40))).expect("C_GetInterface any name, 2.40");
    assert_eq!((iface_name(&old), iface_version(&old)), ("PKCS 11".into(), (2, 40)));
    expect_rv(get(Some("No Such Interface"), None), CKR_ARGUMENTS_BAD);
    expect_rv(get(Some("PKCS 11"), Some((3, 2))), CKR_ARGUMENTS_BAD);
    // A non-zero flags asks for an interface with every flag given; none of keyfront's has
    // a flag (not even CKF_INTERFACE_FORK_SAFE: a forked child must call C_Initialize).
    for (name, ver) in [(None, None), (Some("PKCS 11"), Some((3, 0))), (Some("PKCS 11"), Some((2, 40)))] {
        expect_rv(get_with_flags(name, ver, CKF_INTERFACE_FORK_SAFE), CKR_ARGUMENTS_BAD);
    }
    assert!(small.iter().all(|i| i.flags == 0), "listed interfaces have no flags");
}

/// The 3.0 function list, from `C_GetInterface("PKCS 11", 3.0)`.
fn list_3_0() -> &'static CK_FUNCTION_LIST_3_0 {
    let mut v = CK_VERSION { major: 3, minor: 0 };
    let mut out: *mut CK_INTERFACE = ptr::null_mut();
    assert_rv(unsafe { lib().C_GetInterface(c"PKCS 11".as_ptr() as *mut u8, &mut v, &mut out, 0) }, CKR_OK);
    unsafe { &*((*out).pFunctionList as *const CK_FUNCTION_LIST_3_0) }
}

/// Calls a function of the 3.0 list.
macro_rules! ck3 {
    ($f:ident $(, $a:expr)* $(,)?) => {{
        let f = list_3_0().$f.expect(concat!(stringify!($f), " is NULL in the 3.0 list"));
        #[allow(unused_unsafe)]
        let r = unsafe { f($($a),*) };
        r
    }};
}

#[test]
fn function_lists_are_complete_and_unoffered_functions_say_so() {
    fx();
    // Every entry of the 3.0 list is filled: 68 of 2.40, 24 added by 3.0.
    let list = list_3_0();
    assert_eq!((list.version.major, list.version.minor), (3, 0));
    let first = std::mem::offset_of!(CK_FUNCTION_LIST_3_0, C_Initialize);
    let words = (std::mem::size_of::<CK_FUNCTION_LIST_3_0>() - first) / std::mem::size_of::<usize>();
    assert_eq!(words, 92, "PKCS#11 3.0 has 92 functions");
    let entries = unsafe { std::slice::from_raw_parts((list as *const _ as *const u8).add(first) as *const usize, words) };
    let empty: Vec<usize> = (0..words).filter(|&i| entries[i] == 0).collect();
    assert!(empty.is_empty(), "NULL entries (by position) in the 3.0 list: {empty:?}");
    assert_eq!((funcs().version.major, funcs().version.minor), (2, 40), "C_GetFunctionList's list is the 2.40 one");
    let from_2_40 = std::mem::offset_of!(CK_FUNCTION_LIST, C_WaitForSlotEvent);
    assert_eq!(from_2_40, std::mem::offset_of!(CK_FUNCTION_LIST_3_0, C_WaitForSlotEvent), "3.0 extends the 2.40 layout");

    let slot = fx().token();
    let s = user_session(slot);
    let (np, nb, nv) = (ptr::null_mut::<CK_MECHANISM>(), ptr::null_mut::<u8>(), ptr::null_mut::<std::ffi::c_void>());
    let nl = ptr::null_mut::<CK_ULONG>();
    // (name, what it returns for session `h`)
    type Call<'a> = Box<dyn Fn(CK_SESSION_HANDLE) -> CK_RV + 'a>;
    let calls: Vec<(&str, Call<'_>)> = vec![
        ("C_GetOperationState", Box::new(|h| ck3!(C_GetOperationState, h, nb, nl))),
        ("C_SetOperationState", Box::new(|h| ck3!(C_SetOperationState, h, nb, 0, 0, 0))),
        ("C_SignRecoverInit", Box::new(|h| ck3!(C_SignRecoverInit, h, np, 0))),
        ("C_SignRecover", Box::new(|h| ck3!(C_SignRecover, h, nb, 0, nb, nl))),
        ("C_VerifyRecoverInit", Box::new(|h| ck3!(C_VerifyRecoverInit, h, np, 0))),
        ("C_VerifyRecover", Box::new(|h| ck3!(C_VerifyRecover, h, nb, 0, nb, nl))),
        ("C_DigestEncryptUpdate", Box::new(|h| ck3!(C_DigestEncryptUpdate, h, nb, 0, nb, nl))),
        ("C_DecryptDigestUpdate", Box::new(|h| ck3!(C_DecryptDigestUpdate, h, nb, 0, nb, nl))),
        ("C_SignEncryptUpdate", Box::new(|h| ck3!(C_SignEncryptUpdate, h, nb, 0, nb, nl))),
        ("C_DecryptVerifyUpdate", Box::new(|h| ck3!(C_DecryptVerifyUpdate, h, nb, 0, nb, nl))),
        ("C_MessageEncryptInit", Box::new(|h| ck3!(C_MessageEncryptInit, h, np, 0))),
        ("C_EncryptMessage", Box::new(|h| ck3!(C_EncryptMessage, h, nv, 0, nb, 0, nb, 0, nb, nl))),
        ("C_EncryptMessageBegin", Box::new(|h| ck3!(C_EncryptMessageBegin, h, nv, 0, nb, 0))),
        ("C_EncryptMessageNext", Box::new(|h| ck3!(C_EncryptMessageNext, h, nv, 0, nb, 0, nb, nl, 0))),
        ("C_MessageEncryptFinal", Box::new(|h| ck3!(C_MessageEncryptFinal, h))),
        ("C_MessageDecryptInit", Box::new(|h| ck3!(C_MessageDecryptInit, h, np, 0))),
        ("C_DecryptMessage", Box::new(|h| ck3!(C_DecryptMessage, h, nv, 0, nb, 0, nb, 0, nb, nl))),
        ("C_DecryptMessageBegin", Box::new(|h| ck3!(C_DecryptMessageBegin, h, nv, 0, nb, 0))),
        ("C_DecryptMessageNext", Box::new(|h| ck3!(C_DecryptMessageNext, h, nv, 0, nb, 0, nb, nl, 0))),
        ("C_MessageDecryptFinal", Box::new(|h| ck3!(C_MessageDecryptFinal, h))),
        ("C_MessageSignInit", Box::new(|h| ck3!(C_MessageSignInit, h, np, 0))),
        ("C_SignMessage", Box::new(|h| ck3!(C_SignMessage, h, nv, 0, nb, 0, nb, nl))),
        ("C_SignMessageBegin", Box::new(|h| ck3!(C_SignMessageBegin, h, nv, 0))),
        ("C_SignMessageNext", Box::new(|h| ck3!(C_SignMessageNext, h, nv, 0, nb, 0, nb, nl))),
        ("C_MessageSignFinal", Box::new(|h| ck3!(C_MessageSignFinal, h))),
        ("C_MessageVerifyInit", Box::new(|h| ck3!(C_MessageVerifyInit, h, np, 0))),
        ("C_VerifyMessage", Box::new(|h| ck3!(C_VerifyMessage, h, nv, 0, nb, 0, nb, 0))),
        ("C_VerifyMessageBegin", Box::new(|h| ck3!(C_VerifyMessageBegin, h, nv, 0))),
        ("C_VerifyMessageNext", Box::new(|h| ck3!(C_VerifyMessageNext, h, nv, 0, nb, 0, nb, 0))),
        ("C_MessageVerifyFinal", Box::new(|h| ck3!(C_MessageVerifyFinal, h))),
        // Legacy: no function runs in parallel with the application.
        ("C_GetFunctionStatus", Box::new(|h| ck3!(C_GetFunctionStatus, h))),
        ("C_CancelFunction", Box::new(|h| ck3!(C_CancelFunction, h))),
    ];
    let mut wrong = vec![];
    for (name, call) in &calls {
        let want = if name.ends_with("FunctionStatus") || name.ends_with("CancelFunction") { CKR_FUNCTION_NOT_PARALLEL } else { CKR_FUNCTION_NOT_SUPPORTED };
        for (h, want) in [(s, want), (s + 0x7777, CKR_SESSION_HANDLE_INVALID)] {
            let got = call(h);
            if got != want {
                wrong.push(format!("{name}(session 0x{h:x}): {} instead of {}", rv_name(got), rv_name(want)));
            }
        }
    }
    // No slot events to wait for: keyfront's slots are never inserted or removed. (Only the
    // non-blocking form is called: a blocking one that worked would never return.)
    let mut event_slot: CK_SLOT_ID = 0;
    let got = ck3!(C_WaitForSlotEvent, CKF_DONT_BLOCK, &mut event_slot, nv);
    if got != CKR_FUNCTION_NOT_SUPPORTED {
        wrong.push(format!("C_WaitForSlotEvent(CKF_DONT_BLOCK): {}", rv_name(got)));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The session is unharmed.
    assert_eq!(random(s, 8).unwrap().len(), 8);
    close(s).unwrap();
}

#[test]
fn slot_list_uses_configured_ids() {
    let want: BTreeSet<CK_SLOT_ID> = fx().slots.iter().map(|s| s.id).collect();
    let all: BTreeSet<CK_SLOT_ID> = fx().p11.get_all_slots().unwrap().iter().map(Slot::id).collect();
    assert_eq!(all, want);
    let with_token: BTreeSet<CK_SLOT_ID> = fx().p11.get_slots_with_token().unwrap().iter().map(Slot::id).collect();
    assert_eq!(with_token, want, "soft tokens are always present");

    // Raw: count query, then CKR_BUFFER_TOO_SMALL with the right count, then the list.
    let mut n: CK_ULONG = 0;
    assert_rv(ck!(C_GetSlotList, CK_FALSE, ptr::null_mut(), &mut n), CKR_OK);
    assert_eq!(n as usize, want.len());
    let mut buf = vec![0 as CK_SLOT_ID; n as usize];
    let mut small = n - 1;
    assert_rv(ck!(C_GetSlotList, CK_FALSE, buf.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
    assert_eq!(small, n);
    assert_rv(ck!(C_GetSlotList, CK_FALSE, buf.as_mut_ptr(), &mut n), CKR_OK);
    assert_eq!(buf.iter().copied().collect::<BTreeSet<_>>(), want);

    let slot = fx().slots[0].id;
    let info = fx().p11.get_slot_info(Slot::try_from(slot).unwrap()).unwrap();
    assert_eq!(info.slot_description(), fx().slots[0].label);
    assert!(info.token_present());

    let mut si = CK_SLOT_INFO::default();
    assert_rv(ck!(C_GetSlotInfo, 99_999, &mut si), CKR_SLOT_ID_INVALID);
    let mut ti = CK_TOKEN_INFO::default();
    assert_rv(ck!(C_GetTokenInfo, 99_999, &mut ti), CKR_SLOT_ID_INVALID);
    let mut h = 0;
    assert_rv(ck!(C_OpenSession, 99_999, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut h), CKR_SLOT_ID_INVALID);
}

fn mech_list(slot: CK_SLOT_ID) -> Vec<CK_MECHANISM_TYPE> {
    let mut n: CK_ULONG = 0;
    assert_rv(ck!(C_GetMechanismList, slot, ptr::null_mut(), &mut n), CKR_OK);
    let mut v = vec![0; n as usize];
    if n > 0 {
        let mut small = n - 1;
        assert_rv(ck!(C_GetMechanismList, slot, v.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
        assert_eq!(small, n);
    }
    assert_rv(ck!(C_GetMechanismList, slot, v.as_mut_ptr(), &mut n), CKR_OK);
    v.truncate(n as usize);
    v
}

/// The issue-2 mechanisms are all listed (each is exercised in aes.rs, wrap.rs, digest_mac.rs).
/// The list was once exactly these; the module has since grown (RSA, EC), so this checks a
/// superset, and that every listed mechanism also answers C_GetMechanismInfo.
#[test]
fn mechanism_list_contains_required() {
    let slot = fx().slots[1].id;
    let got = mech_list(slot);
    let set: BTreeSet<_> = got.iter().copied().collect();
    assert_eq!(set.len(), got.len(), "duplicates in {got:x?}");
    // SoftHSM2 2.6.1 (PKCS#11 2.40) has no CKM_AES_KEY_WRAP_KWP, a 3.0 mechanism.
    let required: Vec<_> = MECHS.iter().filter(|m| backend().is_soft() || **m != CKM_AES_KEY_WRAP_KWP).collect();
    if backend().is_forwarded() {
        skip_note("SoftHSM2 2.6.1 has no CKM_AES_KEY_WRAP_KWP: not required");
    }
    let missing: Vec<_> = required.iter().filter(|m| !set.contains(m)).collect();
    assert!(missing.is_empty(), "missing mechanisms (hex) {missing:x?}");
    if backend().is_forwarded() {
        // The vendor's list, less the digests keyfront does not compute itself (digests run
        // in keyfront on a forwarding slot).
        let vslot = vendor_slot(slot);
        let vendor_list = vendor_mechs(vslot);
        for m in &got {
            assert!(vendor_list.contains(m), "0x{m:x} is listed but SoftHSM2 does not have it");
        }
        for m in vendor_list.iter().filter(|m| !set.contains(m)) {
            let i = vendor_mech_info(vslot, *m).unwrap();
            assert_eq!(i.flags, CKF_DIGEST, "SoftHSM2's mechanism 0x{m:x} (flags 0x{:x}) is not listed", i.flags);
        }
    }
    for m in got {
        let i = mech_info(slot, m).unwrap_or_else(|e| panic!("listed mechanism 0x{m:x}: C_GetMechanismInfo {e:?}"));
        assert_ne!(i.flags, 0, "listed mechanism 0x{m:x} has no flags");
    }
    let mut n = 0;
    assert_rv(ck!(C_GetMechanismList, 99_999, ptr::null_mut(), &mut n), CKR_SLOT_ID_INVALID);
}

fn mech_info(slot: CK_SLOT_ID, m: CK_MECHANISM_TYPE) -> R<CK_MECHANISM_INFO> {
    let mut i = CK_MECHANISM_INFO::default();
    rv(ck!(C_GetMechanismInfo, slot, m, &mut i))?;
    Ok(i)
}

/// SoftHSM2's own mechanism list of its slot `vslot` (forwarded backend).
fn vendor_mechs(vslot: CK_SLOT_ID) -> Vec<CK_MECHANISM_TYPE> {
    let f = vendor().C_GetMechanismList.unwrap();
    let mut n: CK_ULONG = 0;
    assert_rv(unsafe { f(vslot, ptr::null_mut(), &mut n) }, CKR_OK);
    let mut v = vec![0; n as usize];
    assert_rv(unsafe { f(vslot, v.as_mut_ptr(), &mut n) }, CKR_OK);
    v.truncate(n as usize);
    v
}

fn vendor_mech_info(vslot: CK_SLOT_ID, m: CK_MECHANISM_TYPE) -> R<CK_MECHANISM_INFO> {
    let mut i = CK_MECHANISM_INFO::default();
    rv(unsafe { vendor().C_GetMechanismInfo.unwrap()(vslot, m, &mut i) })?;
    Ok(i)
}

#[test]
fn mechanism_info_flags_and_sizes() {
    let slot = fx().slots[2].id;
    let ed = CKF_ENCRYPT | CKF_DECRYPT;
    let wu = CKF_WRAP | CKF_UNWRAP;
    let want: &[(CK_MECHANISM_TYPE, CK_FLAGS)] = &[
        (CKM_AES_KEY_GEN, CKF_GENERATE),
        (CKM_AES_ECB, ed),
        (CKM_AES_CBC, ed),
        (CKM_AES_CBC_PAD, ed),
        (CKM_AES_CTR, ed),
        (CKM_AES_GCM, ed),
        (CKM_AES_KEY_WRAP, ed | wu),
        (CKM_AES_KEY_WRAP_PAD, wu),
        (CKM_AES_KEY_WRAP_KWP, ed | wu),
        (CKM_GENERIC_SECRET_KEY_GEN, CKF_GENERATE),
        (CKM_SHA_1, CKF_DIGEST),
        (CKM_SHA256, CKF_DIGEST),
        (CKM_SHA384, CKF_DIGEST),
        (CKM_SHA512, CKF_DIGEST),
        (CKM_SHA256_HMAC, CKF_SIGN | CKF_VERIFY),
        (CKM_SHA384_HMAC, CKF_SIGN | CKF_VERIFY),
        (CKM_SHA512_HMAC, CKF_SIGN | CKF_VERIFY),
    ];
    if backend().is_forwarded() {
        // The vendor's flags and key sizes, unchanged, for every mechanism listed; the
        // soft token's (below) are keyfront's own. SoftHSM2 differs: CKM_AES_KEY_WRAP only
        // wraps, no CKM_AES_KEY_WRAP_KWP, key sizes its own way.
        skip_note("SoftHSM2's mechanism flags and key sizes are its own: compared with the vendor's instead");
        let vslot = vendor_slot(slot);
        for m in mech_list(slot) {
            let (i, v) = (mech_info(slot, m).unwrap(), vendor_mech_info(vslot, m).unwrap());
            assert_eq!((i.flags, i.ulMinKeySize, i.ulMaxKeySize), (v.flags, v.ulMinKeySize, v.ulMaxKeySize), "mechanism 0x{m:x}");
        }
        for bad in [CKM_MD2, CKM_AES_KEY_WRAP_KWP, CKM_VENDOR_DEFINED | 0x77] {
            expect_rv(mech_info(slot, bad), CKR_MECHANISM_INVALID);
        }
        expect_rv(mech_info(99_999, CKM_AES_GCM), CKR_SLOT_ID_INVALID);
        return;
    }
    for &(m, flags) in want {
        let i = mech_info(slot, m).unwrap_or_else(|e| panic!("C_GetMechanismInfo(0x{m:x}): {e:?}"));
        assert_eq!(i.flags & flags, flags, "mechanism 0x{m:x} flags 0x{:x}", i.flags);
        assert_eq!(i.flags & CKF_HW, 0, "soft token mechanism 0x{m:x} claims CKF_HW");
        if m != CKM_GENERIC_SECRET_KEY_GEN && MECHS[..9].contains(&m) {
            assert_eq!((i.ulMinKeySize, i.ulMaxKeySize), (16, 32), "AES key sizes (bytes) for 0x{m:x}");
        }
    }
    // Digests do not encrypt, HMAC does not encrypt.
    assert_eq!(mech_info(slot, CKM_SHA256).unwrap().flags & ed, 0);
    assert_eq!(mech_info(slot, CKM_SHA256_HMAC).unwrap().flags & ed, 0);
    for bad in [CKM_MD2, CKM_MD5, CKM_DES3_CBC, CKM_VENDOR_DEFINED | 0x77] {
        expect_rv(mech_info(slot, bad), CKR_MECHANISM_INVALID);
    }
    expect_rv(mech_info(99_999, CKM_AES_GCM), CKR_SLOT_ID_INVALID);
}

#[test]
fn random_and_seed() {
    let slot = fx().token();
    // A public read-only session is enough: no login needed.
    let s = open(slot, false).unwrap();
    let a = random(s, 32).unwrap();
    let b = random(s, 32).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, vec![0u8; 32]);
    for n in [1usize, 17, 1000, 4096] {
        let mut buf = vec![0u8; n + 8];
        let canary = [0xa5u8; 8];
        buf[n..].copy_from_slice(&canary);
        assert_rv(ck!(C_GenerateRandom, s, buf.as_mut_ptr(), n as CK_ULONG), CKR_OK);
        assert_eq!(&buf[n..], &canary, "C_GenerateRandom wrote past {n} bytes");
        if n >= 1000 {
            // 1000 random bytes have (practically) all byte values represented many times.
            let distinct: BTreeSet<u8> = buf[..n].iter().copied().collect();
            assert!(distinct.len() > 200, "{} distinct byte values in {n} bytes", distinct.len());
        }
    }
    let seed = [1u8, 2, 3, 4];
    // The OS generator takes no seed from the application (SoftHSM2 answers the same).
    assert_rv(ck!(C_SeedRandom, s, seed.as_ptr() as *mut u8, 4), CKR_RANDOM_SEED_NOT_SUPPORTED);
    close(s).unwrap();
    expect_rv(random(s, 4), CKR_SESSION_HANDLE_INVALID);
}

/// A full flow through cryptoki's high-level wrappers (what a typical Rust consumer does).
#[test]
fn cryptoki_high_level_flow() {
    let p11 = &fx().p11;
    let slot = Slot::try_from(fx().slot()).unwrap();
    // A SoftHSM2 token is initialised already (the fixture's softhsm2-util run): it can be
    // initialised again only with its SO PIN.
    let so = AuthPin::from(if backend().is_soft() { "so-pin-cryptoki" } else { std::str::from_utf8(SO_PIN).unwrap() });
    let user = AuthPin::from("user-pin-cryptoki");
    p11.init_token(slot, &so, "via cryptoki").unwrap();
    assert_eq!(p11.get_token_info(slot).unwrap().label(), "via cryptoki");
    assert!(p11.get_slots_with_initialized_token().unwrap().contains(&slot));

    let s = p11.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&so)).unwrap();
    s.init_pin(&user).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&user)).unwrap();
    let ti = p11.get_token_info(slot).unwrap();
    assert!(ti.token_initialized() && ti.user_pin_initialized() && ti.rng() && ti.login_required());
    if backend().is_soft() {
        assert_eq!((ti.manufacturer_id(), ti.model()), ("keyfront", "soft token"));
    } else {
        // The vendor's token strings and versions pass through.
        assert_eq!((ti.manufacturer_id(), ti.model()), ("SoftHSM project", "SoftHSM v2"));
        assert_eq!(ti.hardware_version().major(), 2, "SoftHSM2 2.x's hardware version");
    }

    let mechs = p11.get_mechanism_list(slot).unwrap();
    assert!(mechs.contains(&MechanismType::AES_GCM) && mechs.contains(&MechanismType::SHA256_HMAC));
    let mi = p11.get_mechanism_info(slot, MechanismType::AES_GCM).unwrap();
    assert!(mi.encrypt() && mi.decrypt());

    let key = s
        .generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(32.into()), Attribute::Label(b"ck-aes".to_vec()), Attribute::Token(true)])
        .unwrap();
    let attrs = s
        .get_attributes(key, &[AttributeType::Class, AttributeType::KeyType, AttributeType::ValueLen, AttributeType::Sensitive, AttributeType::Value])
        .unwrap();
    // CKA_VALUE is sensitive (soft token) or not extractable (SoftHSM2's defaults: neither
    // sensitive nor extractable), so cryptoki drops it; the rest come back.
    assert_eq!(attrs.len(), 4, "{attrs:?}");
    assert!(attrs.iter().any(|a| matches!(a, Attribute::Class(c) if *c == ObjectClass::SECRET_KEY)));
    assert!(attrs.iter().any(|a| matches!(a, Attribute::KeyType(k) if *k == KeyType::AES)));
    let sensitive_default = backend().is_soft();
    assert!(attrs.iter().any(|a| matches!(a, Attribute::Sensitive(v) if *v == sensitive_default)), "{attrs:?}");

    let mut iv = [7u8; 12];
    let aad = b"header";
    let pt = b"cryptoki says hello to keyfront";
    let ct = s.encrypt(&Mechanism::AesGcm(GcmParams::new(&mut iv, aad, 128.into()).unwrap()), key, pt).unwrap();
    assert_eq!(ct.len(), pt.len() + 16);
    let back = s.decrypt(&Mechanism::AesGcm(GcmParams::new(&mut iv, aad, 128.into()).unwrap()), key, &ct).unwrap();
    assert_eq!(back, pt);

    let found = s.find_objects(&[Attribute::Label(b"ck-aes".to_vec())]).unwrap();
    assert_eq!(found, vec![key]);

    // RFC 4231 test case 2; SoftHSM2 wants HMAC-SHA256 keys of 32 bytes or more
    // (CKR_KEY_SIZE_RANGE for "Jefe"), so there test case 6 (a 131-byte key).
    let (hmac_key, msg, want): (Vec<u8>, &[u8], &str) = if backend().is_soft() {
        (b"Jefe".to_vec(), b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    } else {
        let m: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";
        (vec![0xaa; 131], m, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    };
    let hkey = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(hmac_key),
        ])
        .unwrap();
    let mac = s.sign(&Mechanism::Sha256Hmac, hkey, msg).unwrap();
    assert_eq!(mac, hex(want));
    s.verify(&Mechanism::Sha256Hmac, hkey, msg, &mac).unwrap();
    assert_eq!(s.digest(&Mechanism::Sha256, b"abc").unwrap(), hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

    let kek = s.generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(16.into())]).unwrap();
    let movable = s
        .generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(16.into()), Attribute::Extractable(true)])
        .unwrap();
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrap, kek, movable).unwrap();
    assert_eq!(wrapped.len(), 24);
    let back = s
        .unwrap_key(&Mechanism::AesKeyWrap, kek, &wrapped, &[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::KeyType(KeyType::AES)])
        .unwrap();
    let block = [0x42u8; 16];
    assert_eq!(s.encrypt(&Mechanism::AesEcb, movable, &block).unwrap(), s.encrypt(&Mechanism::AesEcb, back, &block).unwrap());

    let r = s.generate_random_vec(16).unwrap();
    assert_eq!(r.len(), 16);
    s.destroy_object(key).unwrap();
    assert!(s.find_objects(&[Attribute::Label(b"ck-aes".to_vec())]).unwrap().is_empty());
    s.logout().unwrap();
    s.close().unwrap();
}

/// A user session on a token of its own with an AES-128 key (`aes` repeated) and an HMAC key
/// of 32 bytes (`mac` repeated; SoftHSM2 wants no shorter): (slot, session, AES, HMAC).
fn session_with_keys(aes: u8, mac: u8) -> (CK_SLOT_ID, CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let slot = fx().token();
    let s = user_session(slot);
    let key = aes_key(s, &[aes; 16], &[ab(CKA_EXTRACTABLE, true)]);
    let hmac_key = create(s, &generic_tmpl(&[mac; 32], &[ab(CKA_SIGN, true), ab(CKA_VERIFY, true)])).unwrap();
    (slot, s, key, hmac_key)
}

/// Every argument PKCS#11 requires to be non-NULL (a place for a result, or a buffer with a
/// non-zero length) is checked: `CKR_ARGUMENTS_BAD`, whatever state the session is in. The
/// operations are started first, so that the NULL is the only thing wrong with each call.
#[test]
fn every_null_pointer_is_arguments_bad() {
    let (slot, s, key, hmac_key) = session_with_keys(0x11, 0x22);
    let (nb, nl) = (ptr::null_mut::<u8>(), ptr::null_mut::<CK_ULONG>());
    let (nh, na) = (ptr::null_mut::<CK_OBJECT_HANDLE>(), ptr::null_mut::<CK_ATTRIBUTE>());
    let mut buf = [0u8; 64];
    let b = buf.as_mut_ptr();
    let mut n: CK_ULONG = 64;
    let mut h: CK_OBJECT_HANDLE = 0;
    let mut pin = USER_PIN.to_vec();
    let mut label = padded::<32>("unchanged");
    let mut value_len = 16 as CK_ULONG;
    let mut tmpl = [CK_ATTRIBUTE { type_: CKA_VALUE_LEN, pValue: &mut value_len as *mut _ as *mut _, ulValueLen: 8 }];
    let t = tmpl.as_mut_ptr();
    let mut keygen = CK_MECHANISM { mechanism: CKM_AES_KEY_GEN, pParameter: ptr::null_mut(), ulParameterLen: 0 };
    let mut kw = CK_MECHANISM { mechanism: CKM_AES_KEY_WRAP, pParameter: ptr::null_mut(), ulParameterLen: 0 };
    let mut pairgen = CK_MECHANISM { mechanism: CKM_EC_KEY_PAIR_GEN, pParameter: ptr::null_mut(), ulParameterLen: 0 };
    let mut derive = CK_MECHANISM { mechanism: CKM_ECDH1_DERIVE, pParameter: ptr::null_mut(), ulParameterLen: 0 };
    let (kg, kwp, pg, dv) = (&mut keygen as *mut CK_MECHANISM, &mut kw as *mut CK_MECHANISM, &mut pairgen as *mut CK_MECHANISM, &mut derive as *mut CK_MECHANISM);
    let mut wrapped = [0u8; 24];
    let w = wrapped.as_mut_ptr();

    let mut cases: Vec<(&str, CK_RV)> = vec![
        ("C_GetFunctionList(NULL)", ck!(C_GetFunctionList, ptr::null_mut())),
        ("C_GetInfo(NULL)", ck!(C_GetInfo, ptr::null_mut())),
        ("C_GetInterfaceList(NULL, NULL)", unsafe { lib().C_GetInterfaceList(ptr::null_mut(), nl) }),
        ("C_GetInterface(.., NULL)", unsafe { lib().C_GetInterface(ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0) }),
        ("C_GetSlotList(NULL list, NULL count)", ck!(C_GetSlotList, CK_FALSE, ptr::null_mut(), nl)),
        ("C_GetSlotList(list, NULL count)", ck!(C_GetSlotList, CK_TRUE, [0; 4].as_mut_ptr(), nl)),
        ("C_GetSlotInfo(NULL)", ck!(C_GetSlotInfo, slot, ptr::null_mut())),
        ("C_GetTokenInfo(NULL)", ck!(C_GetTokenInfo, slot, ptr::null_mut())),
        ("C_GetMechanismList(NULL count)", ck!(C_GetMechanismList, slot, ptr::null_mut(), nl)),
        ("C_GetMechanismInfo(NULL)", ck!(C_GetMechanismInfo, slot, CKM_AES_CBC, ptr::null_mut())),
        ("C_InitToken(NULL label)", ck!(C_InitToken, slot, SO_PIN.as_ptr() as *mut u8, SO_PIN.len() as CK_ULONG, nb)),
        ("C_InitToken(NULL PIN, length 8)", ck!(C_InitToken, slot, nb, 8, label.as_mut_ptr())),
        ("C_OpenSession(NULL handle)", ck!(C_OpenSession, slot, CKF_SERIAL_SESSION, ptr::null_mut(), None, nh)),
        ("C_GetSessionInfo(NULL)", ck!(C_GetSessionInfo, s, ptr::null_mut())),
        ("C_Login(NULL PIN, length 4)", ck!(C_Login, s, CKU_USER, nb, 4)),
        ("C_LoginUser(NULL PIN, length 4)", ck3!(C_LoginUser, s, CKU_USER, nb, 4, nb, 0)),
        ("C_InitPIN(NULL PIN, length 4)", ck!(C_InitPIN, s, nb, 4)),
        ("C_SetPIN(NULL old PIN)", ck!(C_SetPIN, s, nb, 4, pin.as_mut_ptr(), pin.len() as CK_ULONG)),
        ("C_SetPIN(NULL new PIN)", ck!(C_SetPIN, s, pin.as_mut_ptr(), pin.len() as CK_ULONG, nb, 4)),
        ("C_CreateObject(NULL handle)", ck!(C_CreateObject, s, t, 1, nh)),
        ("C_CreateObject(NULL template, count 1)", ck!(C_CreateObject, s, na, 1, &mut h)),
        ("C_CopyObject(NULL handle)", ck!(C_CopyObject, s, key, na, 0, nh)),
        ("C_CopyObject(NULL template, count 1)", ck!(C_CopyObject, s, key, na, 1, &mut h)),
        ("C_GetObjectSize(NULL)", ck!(C_GetObjectSize, s, key, nl)),
        ("C_GetAttributeValue(NULL template, count 1)", ck!(C_GetAttributeValue, s, key, na, 1)),
        ("C_SetAttributeValue(NULL template, count 1)", ck!(C_SetAttributeValue, s, key, na, 1)),
        ("C_FindObjectsInit(NULL template, count 1)", ck!(C_FindObjectsInit, s, na, 1)),
        ("C_GenerateKey(NULL handle)", ck!(C_GenerateKey, s, kg, t, 1, nh)),
        ("C_GenerateKey(NULL mechanism)", ck!(C_GenerateKey, s, ptr::null_mut(), t, 1, &mut h)),
        ("C_GenerateKey(NULL template, count 1)", ck!(C_GenerateKey, s, kg, na, 1, &mut h)),
        ("C_GenerateKeyPair(NULL public handle)", ck!(C_GenerateKeyPair, s, pg, na, 0, na, 0, nh, &mut h)),
        ("C_GenerateKeyPair(NULL private handle)", ck!(C_GenerateKeyPair, s, pg, na, 0, na, 0, &mut h, nh)),
        ("C_GenerateKeyPair(NULL mechanism)", ck!(C_GenerateKeyPair, s, ptr::null_mut(), na, 0, na, 0, &mut h, &mut h)),
        ("C_WrapKey(NULL length)", ck!(C_WrapKey, s, kwp, key, key, w, nl)),
        ("C_WrapKey(NULL buffer and length)", ck!(C_WrapKey, s, kwp, key, key, nb, nl)),
        ("C_WrapKey(NULL mechanism)", ck!(C_WrapKey, s, ptr::null_mut(), key, key, w, &mut n)),
        ("C_UnwrapKey(NULL handle)", ck!(C_UnwrapKey, s, kwp, key, w, 24, t, 0, nh)),
        ("C_UnwrapKey(NULL wrapped key, length 24)", ck!(C_UnwrapKey, s, kwp, key, nb, 24, t, 0, &mut h)),
        ("C_UnwrapKey(NULL mechanism)", ck!(C_UnwrapKey, s, ptr::null_mut(), key, w, 24, t, 0, &mut h)),
        ("C_DeriveKey(NULL handle)", ck!(C_DeriveKey, s, dv, key, t, 0, nh)),
        ("C_DeriveKey(NULL mechanism)", ck!(C_DeriveKey, s, ptr::null_mut(), key, t, 0, &mut h)),
        ("C_SeedRandom(NULL, length 4)", ck!(C_SeedRandom, s, nb, 4)),
        ("C_GenerateRandom(NULL, length 4)", ck!(C_GenerateRandom, s, nb, 4)),
    ];

    rv(ck!(C_FindObjectsInit, s, na, 0)).unwrap();
    cases.push(("C_FindObjects(NULL array, max 4)", ck!(C_FindObjects, s, nh, 4, &mut n)));
    cases.push(("C_FindObjects(NULL count)", ck!(C_FindObjects, s, [0; 4].as_mut_ptr(), 4, nl)));
    rv(ck!(C_FindObjectsFinal, s)).unwrap();

    let ecb = Mech::new(CKM_AES_ECB);
    encrypt_init(s, &ecb, key).unwrap();
    cases.extend([
        ("C_Encrypt(NULL buffer and length)", ck!(C_Encrypt, s, b, 16, nb, nl)),
        ("C_Encrypt(buffer, NULL length)", ck!(C_Encrypt, s, b, 16, b, nl)),
        ("C_Encrypt(NULL data, length 16)", ck!(C_Encrypt, s, nb, 16, b, &mut n)),
        ("C_EncryptUpdate(NULL buffer and length)", ck!(C_EncryptUpdate, s, b, 16, nb, nl)),
        ("C_EncryptUpdate(NULL part, length 16)", ck!(C_EncryptUpdate, s, nb, 16, b, &mut n)),
        ("C_EncryptFinal(NULL length)", ck!(C_EncryptFinal, s, b, nl)),
    ]);
    // SoftHSM2 runs one operation at a time in a session: each is ended before the next.
    let nm = ptr::null_mut::<CK_MECHANISM>();
    assert_rv(ck!(C_EncryptInit, s, nm, key), CKR_OK);
    decrypt_init(s, &ecb, key).unwrap();
    cases.extend([
        ("C_Decrypt(NULL buffer and length)", ck!(C_Decrypt, s, b, 16, nb, nl)),
        ("C_Decrypt(NULL data, length 16)", ck!(C_Decrypt, s, nb, 16, b, &mut n)),
        ("C_DecryptUpdate(buffer, NULL length)", ck!(C_DecryptUpdate, s, b, 16, b, nl)),
        ("C_DecryptUpdate(NULL part, length 16)", ck!(C_DecryptUpdate, s, nb, 16, b, &mut n)),
        ("C_DecryptFinal(NULL length)", ck!(C_DecryptFinal, s, nb, nl)),
    ]);
    assert_rv(ck!(C_DecryptInit, s, nm, key), CKR_OK);
    digest_init(s, CKM_SHA256).unwrap();
    cases.extend([
        ("C_Digest(NULL buffer and length)", ck!(C_Digest, s, b, 3, nb, nl)),
        ("C_Digest(NULL data, length 3)", ck!(C_Digest, s, nb, 3, b, &mut n)),
        ("C_DigestUpdate(NULL part, length 3)", ck!(C_DigestUpdate, s, nb, 3)),
        ("C_DigestFinal(NULL length)", ck!(C_DigestFinal, s, b, nl)),
    ]);
    let hmac = Mech::new(CKM_SHA256_HMAC);
    sign_init(s, &hmac, hmac_key).unwrap();
    cases.extend([
        ("C_Sign(NULL buffer and length)", ck!(C_Sign, s, b, 3, nb, nl)),
        ("C_Sign(NULL data, length 3)", ck!(C_Sign, s, nb, 3, b, &mut n)),
        ("C_SignUpdate(NULL part, length 3)", ck!(C_SignUpdate, s, nb, 3)),
        ("C_SignFinal(NULL length)", ck!(C_SignFinal, s, b, nl)),
    ]);
    assert_rv(ck!(C_SignInit, s, nm, hmac_key), CKR_OK);
    verify_init(s, &hmac, hmac_key).unwrap();
    cases.extend([
        ("C_Verify(NULL data, length 3)", ck!(C_Verify, s, nb, 3, b, 32)),
        ("C_Verify(NULL signature, length 32)", ck!(C_Verify, s, b, 3, nb, 32)),
        ("C_VerifyUpdate(NULL part, length 3)", ck!(C_VerifyUpdate, s, nb, 3)),
        ("C_VerifyFinal(NULL signature, length 32)", ck!(C_VerifyFinal, s, nb, 32)),
    ]);

    let wrong: Vec<String> = cases
        .iter()
        .filter(|(_, got)| *got != CKR_ARGUMENTS_BAD)
        .map(|(what, got)| format!("{what}: {}", rv_name(*got)))
        .collect();
    assert!(wrong.is_empty(), "expected CKR_ARGUMENTS_BAD from each of:\n{wrong:#?}");
    // Nothing was changed or made by the refused calls.
    assert_eq!(trimmed(&token_info(slot).unwrap().label), "test");
    logout(s).unwrap();
    login(s, CKU_USER, USER_PIN).unwrap();
    close(s).unwrap();
}

/// `C_*Init` with a NULL mechanism ends the active operation of its kind and nothing else
/// (PKCS#11 3.0: "can be called with pMechanism set to NULL_PTR to terminate an active ...
/// operation"); with none active it has nothing to do and says `CKR_OK`.
#[test]
fn init_with_null_mechanism_ends_the_operation() {
    let (_, s, key, hmac_key) = session_with_keys(0x33, 0x44);
    let (ecb, hmac) = (Mech::new(CKM_AES_ECB), Mech::new(CKM_SHA256_HMAC));
    let block = [0x5au8; 16];
    let ct = encrypt(s, &ecb, key, &block).unwrap();
    let mac = sign(s, &hmac, hmac_key, b"abc").unwrap();
    let nm = ptr::null_mut::<CK_MECHANISM>();
    let end = |kind: &str| -> CK_RV {
        match kind {
            "encrypt" => ck!(C_EncryptInit, s, nm, key),
            "decrypt" => ck!(C_DecryptInit, s, nm, key),
            "digest" => ck!(C_DigestInit, s, nm),
            "sign" => ck!(C_SignInit, s, nm, hmac_key),
            _ => ck!(C_VerifyInit, s, nm, hmac_key),
        }
    };
    let once = |kind: &str| -> R<Vec<u8>> {
        let d = b"abc";
        match kind {
            "encrypt" => two_call(|o, l| ck!(C_Encrypt, s, block.as_ptr() as *mut u8, 16, o, l)),
            "decrypt" => two_call(|o, l| ck!(C_Decrypt, s, ct.as_ptr() as *mut u8, 16, o, l)),
            "digest" => two_call(|o, l| ck!(C_Digest, s, d.as_ptr() as *mut u8, 3, o, l)),
            "sign" => two_call(|o, l| ck!(C_Sign, s, d.as_ptr() as *mut u8, 3, o, l)),
            _ => rv(ck!(C_Verify, s, d.as_ptr() as *mut u8, 3, mac.as_ptr() as *mut u8, 32)).map(|()| vec![]),
        }
    };
    let start = |kind: &str| -> R<()> {
        match kind {
            "encrypt" => encrypt_init(s, &ecb, key),
            "decrypt" => decrypt_init(s, &ecb, key),
            "digest" => digest_init(s, CKM_SHA256),
            "sign" => sign_init(s, &hmac, hmac_key),
            _ => verify_init(s, &hmac, hmac_key),
        }
    };
    let want = |kind: &str| -> Vec<u8> {
        match kind {
            "encrypt" => ct.clone(),
            "decrypt" => block.to_vec(),
            "digest" => hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            "sign" => mac.clone(),
            _ => vec![],
        }
    };
    for kind in ["encrypt", "decrypt", "digest", "sign", "verify"] {
        assert_rv(end(kind), CKR_OK);
        start(kind).unwrap();
        expect_rv(start(kind), CKR_OPERATION_ACTIVE);
        // A digest runs beside it (in keyfront on either backend): it must survive.
        let beside = kind != "digest";
        if beside {
            digest_init(s, CKM_SHA256).unwrap();
        }
        assert_rv(end(kind), CKR_OK);
        expect_rv(once(kind), CKR_OPERATION_NOT_INITIALIZED);
        assert_rv(end(kind), CKR_OK);
        if beside {
            assert_eq!(digest_update(s, b"abc").and_then(|()| digest_final(s)).unwrap(), want("digest"), "{kind}: the digest beside it");
        }
        // A new operation of the kind starts and works (the vendor's was ended too).
        start(kind).unwrap();
        assert_eq!(once(kind).unwrap(), want(kind), "{kind} after the NULL-mechanism end");
    }
    assert_rv(ck!(C_EncryptInit, 0x7777_7777, nm, key), CKR_SESSION_HANDLE_INVALID);
    close(s).unwrap();
}

/// The length protocol of the multi-part steps not covered in aes.rs and digest_mac.rs:
/// a NULL buffer asks for the length, too small a buffer gets `CKR_BUFFER_TOO_SMALL` with
/// it, and neither ends the operation (the retry gets the output).
#[test]
fn multi_part_length_queries_keep_the_operation() {
    let (_, s, key, hmac_key) = session_with_keys(0x66, 0x77);
    let cbc = Mech::bytes(CKM_AES_CBC, &[0x01; 16]);
    let pt: Vec<u8> = (0u8..32).collect();
    let ct = encrypt(s, &cbc, key, &pt).unwrap();
    let mut buf = [0u8; 64];
    // One C_EncryptUpdate or C_DecryptUpdate of `input` into `room` bytes of `buf`, or into
    // a NULL buffer (`room` None): the code and the length it reports.
    let mut update = |decrypt: bool, input: &[u8], room: Option<usize>| -> (CK_RV, CK_ULONG, Vec<u8>) {
        let f = if decrypt { funcs().C_DecryptUpdate } else { funcs().C_EncryptUpdate }.unwrap();
        let mut n = room.unwrap_or(0) as CK_ULONG;
        let out = room.map_or(ptr::null_mut(), |_| buf.as_mut_ptr());
        let code = unsafe { f(s, input.as_ptr() as *mut u8, input.len() as CK_ULONG, out, &mut n) };
        (code, n, buf[..(n as usize).min(room.unwrap_or(0))].to_vec())
    };

    // C_EncryptUpdate: the query says 32 and the call then delivers those 32 bytes.
    encrypt_init(s, &cbc, key).unwrap();
    assert_eq!(update(false, &pt, None), (CKR_OK, 32, vec![]));
    assert_eq!(update(false, &pt, Some(64)), (CKR_OK, 32, ct.clone()));
    assert_eq!(two_call(|o, l| ck!(C_EncryptFinal, s, o, l)).unwrap(), Vec::<u8>::new());

    // C_DecryptUpdate: the query, then too small a buffer (which learns the length needed),
    // then the right one.
    decrypt_init(s, &cbc, key).unwrap();
    assert_eq!(update(true, &ct, None), (CKR_OK, 32, vec![]));
    assert_eq!(update(true, &ct, Some(16)).0, CKR_BUFFER_TOO_SMALL);
    assert_eq!(update(true, &ct, Some(16)).1, 32, "CKR_BUFFER_TOO_SMALL reports the length needed");
    assert_eq!(update(true, &ct, Some(32)), (CKR_OK, 32, pt.clone()));
    assert_eq!(two_call(|o, l| ck!(C_DecryptFinal, s, o, l)).unwrap(), Vec::<u8>::new());

    // C_SignFinal, C_DigestFinal: the query, then the output; then the operation is over.
    let mut finish = |f: CK_C_SignFinal, room: Option<usize>| -> (CK_RV, CK_ULONG, Vec<u8>) {
        let mut n = room.unwrap_or(0) as CK_ULONG;
        let out = room.map_or(ptr::null_mut(), |_| buf.as_mut_ptr());
        let code = unsafe { f.unwrap()(s, out, &mut n) };
        (code, n, buf[..(n as usize).min(room.unwrap_or(0))].to_vec())
    };
    let hmac = Mech::new(CKM_SHA256_HMAC);
    let mac = sign(s, &hmac, hmac_key, &pt).unwrap();
    sign_init(s, &hmac, hmac_key).unwrap();
    rv(ck!(C_SignUpdate, s, pt.as_ptr() as *mut u8, 32)).unwrap();
    assert_eq!(finish(funcs().C_SignFinal, None), (CKR_OK, 32, vec![]));
    assert_eq!(finish(funcs().C_SignFinal, Some(64)), (CKR_OK, 32, mac), "the MAC equals the single-part one");
    assert_eq!(finish(funcs().C_SignFinal, Some(64)).0, CKR_OPERATION_NOT_INITIALIZED);

    digest_init(s, CKM_SHA256).unwrap();
    digest_update(s, b"abc").unwrap();
    let abc = hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(finish(funcs().C_DigestFinal, None), (CKR_OK, 32, vec![]));
    assert_eq!(finish(funcs().C_DigestFinal, Some(64)), (CKR_OK, 32, abc));
    assert_eq!(finish(funcs().C_DigestFinal, Some(64)).0, CKR_OPERATION_NOT_INITIALIZED);
    close(s).unwrap();
}

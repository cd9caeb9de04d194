//! Objects as the core sees them: a set of typed attributes, plus the rules (in `policy`)
//! that decide which sets are valid and how they may change.

pub mod policy;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use cryptoki_sys::*;
use arc_swap::ArcSwap;
use zeroize::Zeroizing;

use crate::error::{rv, Result};

/// An attribute value as bytes in the platform's CK_* layout. Values may be key material, so
/// every buffer is wiped when dropped.
pub type AttrValue = Zeroizing<Vec<u8>>;

/// One attribute as `C_GetAttributeValue` reports it.
pub enum AttrRead {
    Value(AttrValue),
    Sensitive,
    Invalid,
}

/// A caller's template: attribute types with their values, in the caller's order.
#[derive(Clone, Default)]
pub struct AttributeTemplate {
    pub attrs: Vec<(CK_ATTRIBUTE_TYPE, AttrValue)>,
}

impl AttributeTemplate {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ty: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) {
        self.attrs.push((ty, Zeroizing::new(value.into())));
    }

    pub fn with(mut self, ty: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) -> Self {
        self.push(ty, value);
        self
    }

    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.attrs.iter().rev().find(|(t, _)| *t == ty).map(|(_, v)| v.as_slice())
    }

    pub fn contains(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        self.get(ty).is_some()
    }

    pub fn get_ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
        self.get(ty).map(decode_ulong).transpose()
    }

    pub fn get_bool(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
        self.get(ty).map(decode_bool).transpose()
    }

    pub fn iter(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &[u8])> {
        self.attrs.iter().map(|(t, v)| (*t, v.as_slice()))
    }
}

/// One object: its attributes by type.
#[derive(Default)]
pub struct Object {
    attrs: BTreeMap<CK_ATTRIBUTE_TYPE, AttrValue>,
    /// Values computed once from the attributes (a parsed private key, say), by type. An
    /// object the core keeps (`Arc<Object>`) is never changed in place, so they stay valid.
    /// Threads using one key read this on every operation: an `ArcSwap` read writes nothing
    /// shared, where a lock's read count would bounce between their cores.
    prepared: ArcSwap<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl Clone for Object {
    /// A copy has the same attributes and nothing prepared: it may be changed.
    fn clone(&self) -> Self {
        Self { attrs: self.attrs.clone(), prepared: ArcSwap::default() }
    }
}

impl Object {
    /// The value `make` computes from this object, computed on first use and then reused.
    pub fn prepared<T: Clone + Send + Sync + 'static>(&self, make: impl FnOnce(&Object) -> Result<T>) -> Result<T> {
        if let Some(found) = self.prepared.load().iter().find_map(|v| v.downcast_ref::<T>()) {
            return Ok(found.clone());
        }
        let value = make(self)?;
        let made: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
        self.prepared.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(made.clone());
            list
        });
        Ok(value)
    }

    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.attrs.get(&ty).map(|v| v.as_slice())
    }

    pub fn set(&mut self, ty: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) {
        self.attrs.insert(ty, Zeroizing::new(value.into()));
        self.prepared.store(Arc::default());
    }

    pub fn set_bool(&mut self, ty: CK_ATTRIBUTE_TYPE, value: bool) {
        self.set(ty, encode_bool(value));
    }

    pub fn set_ulong(&mut self, ty: CK_ATTRIBUTE_TYPE, value: CK_ULONG) {
        self.set(ty, encode_ulong(value));
    }

    pub fn remove(&mut self, ty: CK_ATTRIBUTE_TYPE) {
        self.attrs.remove(&ty);
        self.prepared.store(Arc::default());
    }

    pub fn contains(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        self.attrs.contains_key(&ty)
    }

    /// A boolean attribute; absent counts as false.
    pub fn flag(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        self.get(ty).map(|v| v.first() == Some(&CK_TRUE)).unwrap_or(false)
    }

    pub fn ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        self.get(ty).and_then(|v| decode_ulong(v).ok())
    }

    pub fn class(&self) -> CK_OBJECT_CLASS {
        self.ulong(CKA_CLASS).unwrap_or(CK_UNAVAILABLE_INFORMATION)
    }

    pub fn key_type(&self) -> Option<CK_KEY_TYPE> {
        self.ulong(CKA_KEY_TYPE)
    }

    pub fn is_token(&self) -> bool {
        self.flag(CKA_TOKEN)
    }

    pub fn is_private(&self) -> bool {
        self.flag(CKA_PRIVATE)
    }

    pub fn iter(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &[u8])> {
        self.attrs.iter().map(|(t, v)| (*t, v.as_slice()))
    }

    /// True when every attribute of `template` is present here with the same bytes.
    pub fn matches(&self, template: &AttributeTemplate) -> bool {
        template.iter().all(|(t, v)| self.get(t) == Some(v))
    }

    /// The mechanisms this key may be used with; `None` means any.
    pub fn allowed_mechanisms(&self) -> Option<Vec<CK_MECHANISM_TYPE>> {
        let raw = self.get(CKA_ALLOWED_MECHANISMS)?;
        if raw.is_empty() {
            return None;
        }
        Some(decode_ulong_array(raw))
    }

    /// An approximation of the object's size for `C_GetObjectSize`.
    pub fn size(&self) -> usize {
        self.attrs.values().map(|v| v.len() + 16).sum()
    }
}

pub const ULONG_LEN: usize = std::mem::size_of::<CK_ULONG>();

pub fn encode_ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn decode_ulong(v: &[u8]) -> Result<CK_ULONG> {
    let bytes: [u8; ULONG_LEN] = v.try_into().map_err(|_| rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
    Ok(CK_ULONG::from_ne_bytes(bytes))
}

pub fn decode_ulong_array(v: &[u8]) -> Vec<CK_ULONG> {
    v.chunks_exact(ULONG_LEN)
        .map(|c| CK_ULONG::from_ne_bytes(c.try_into().expect("chunk of ULONG_LEN")))
        .collect()
}

pub fn encode_bool(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

pub fn decode_bool(v: &[u8]) -> Result<bool> {
    match v {
        [b] if *b == CK_TRUE => Ok(true),
        [b] if *b == CK_FALSE => Ok(false),
        _ => Err(rv(CKR_ATTRIBUTE_VALUE_INVALID)),
    }
}

//! AES: ECB, CBC, CBC with PKCS#7 padding, CTR, GCM, and the key wraps (RFC 3394, RFC 5649,
//! and PKCS#7-padded RFC 3394).
//!
//! Every operation builds its key schedule once, at init, for the one direction it needs
//! (`Aes*Enc` or `Aes*Dec`), and is monomorphised per key size so the hot loops call the
//! block cipher's parallel (AES-NI / ARMv8) backends directly. ECB, CBC and CTR stream;
//! GCM and the key wraps buffer in `update` and do their work in `finish`.

use aes::cipher::array::Array;
use aes::cipher::consts::{U12, U13, U14, U15, U16};
use aes::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit, StreamCipher,
};
use aes::{Aes128Dec, Aes128Enc, Aes192Dec, Aes192Enc, Aes256Dec, Aes256Enc};
use aes_gcm::aead::AeadInOut;
use aes_gcm::AesGcm;
use aes_kw::{AesKw, AesKwp, InnerInit};
use cryptoki_sys::*;
use subtle::{ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroizing;

use super::{AesCtrParams, AesGcmParams, Cipher, Mechanism, MechanismParam, Secret};
use crate::error::{rv, Result};
use crate::object::Object;

type Block = aes::Block;
const BLOCK: usize = 16;

/// RFC 3394 §2.2.3.1 default initial value.
const KW_IV: [u8; 8] = [0xA6; 8];
/// RFC 5649 §3 alternative initial value (its fixed half).
const KWP_IV: [u8; 4] = [0xA6, 0x59, 0x59, 0xA6];

/// Starts an AES encryption (`encrypt` true) or decryption with the key's value.
pub fn cipher(mechanism: &Mechanism, key: &[u8], encrypt: bool) -> Result<Box<dyn Cipher>> {
    let mode = Mode::parse(mechanism)?;
    let schedules = KeySchedules { key, object: None };
    match key.len() {
        16 => build::<Aes128Enc, Aes128Dec>(mode, schedules, encrypt),
        24 => build::<Aes192Enc, Aes192Dec>(mode, schedules, encrypt),
        32 => build::<Aes256Enc, Aes256Dec>(mode, schedules, encrypt),
        _ => Err(rv(CKR_KEY_SIZE_RANGE)),
    }
}

/// Like [`cipher`] for a key object: its key schedules are expanded once per object and
/// copied for each operation.
pub fn cipher_for_key(mechanism: &Mechanism, object: &Object, encrypt: bool) -> Result<Box<dyn Cipher>> {
    let key = object.get(CKA_VALUE).ok_or(rv(CKR_USER_NOT_LOGGED_IN))?;
    let mode = Mode::parse(mechanism)?;
    let schedules = KeySchedules { key, object: Some(object) };
    match key.len() {
        16 => build::<Aes128Enc, Aes128Dec>(mode, schedules, encrypt),
        24 => build::<Aes192Enc, Aes192Dec>(mode, schedules, encrypt),
        32 => build::<Aes256Enc, Aes256Dec>(mode, schedules, encrypt),
        _ => Err(rv(CKR_KEY_SIZE_RANGE)),
    }
}

/// Where an operation's key schedule comes from: expanded from the key, or copied from the
/// one its key object keeps.
struct KeySchedules<'a> {
    key: &'a [u8],
    object: Option<&'a Object>,
}

impl KeySchedules<'_> {
    fn get<K: KeyInit + Clone + Send + Sync + 'static>(&self) -> Result<K> {
        let expand = |_: &Object| K::new_from_slice(self.key).map_err(|_| rv(CKR_KEY_SIZE_RANGE));
        match self.object {
            Some(object) => object.prepared(expand),
            None => K::new_from_slice(self.key).map_err(|_| rv(CKR_KEY_SIZE_RANGE)),
        }
    }
}

/// `CKA_CHECK_VALUE` of an AES key: the first three bytes of the encryption of a zero block.
pub fn check_value(key: &[u8]) -> Result<[u8; 3]> {
    fn zero_block<E: BlockCipherEncrypt<BlockSize = U16> + KeyInit>(key: &[u8]) -> Result<Block> {
        let mut block = Block::default();
        E::new_from_slice(key).map_err(|_| rv(CKR_KEY_SIZE_RANGE))?.encrypt_block(&mut block);
        Ok(block)
    }
    let block = match key.len() {
        16 => zero_block::<Aes128Enc>(key)?,
        24 => zero_block::<Aes192Enc>(key)?,
        32 => zero_block::<Aes256Enc>(key)?,
        _ => return Err(rv(CKR_KEY_SIZE_RANGE)),
    };
    Ok([block[0], block[1], block[2]])
}

/// Whether `kind` wraps a key as its value zero-padded to whole blocks: AES-ECB and AES-CBC,
/// whose PKCS#11 3.0 descriptions have the value "padded on the trailing end with up to block
/// size minus one null bytes". Their unwrapping gives the padded value, which the caller cuts to the
/// key's length; the other AES mechanisms give back exactly what was wrapped.
pub fn wraps_zero_padded(kind: CK_MECHANISM_TYPE) -> bool {
    matches!(kind, CKM_AES_ECB | CKM_AES_CBC)
}

/// A key value zero-padded to whole AES blocks, for [`wraps_zero_padded`] mechanisms.
pub fn zero_padded(value: &[u8]) -> Secret {
    let mut out = secret(value.len().div_ceil(BLOCK) * BLOCK, 0);
    out[..value.len()].copy_from_slice(value);
    out
}

/// The mechanism with its parameter checked.
enum Mode {
    Ecb,
    Cbc { iv: [u8; 16], pad: bool },
    Ctr(AesCtrParams),
    Gcm { iv: [u8; 12], aad: Vec<u8>, tag_len: usize },
    Wrap(WrapKind),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WrapKind {
    /// RFC 3394.
    Kw,
    /// RFC 5649.
    Kwp,
    /// PKCS#7 padding to a multiple of 8 bytes, then RFC 3394.
    Pkcs7,
}

impl Mode {
    fn parse(m: &Mechanism) -> Result<Mode> {
        let invalid = || rv(CKR_MECHANISM_PARAM_INVALID);
        Ok(match m.kind {
            CKM_AES_ECB => {
                m.no_param()?;
                Mode::Ecb
            }
            CKM_AES_CBC | CKM_AES_CBC_PAD => {
                let iv = match &m.param {
                    MechanismParam::Bytes(b) => <[u8; 16]>::try_from(b.as_slice()).map_err(|_| invalid())?,
                    _ => return Err(invalid()),
                };
                Mode::Cbc { iv, pad: m.kind == CKM_AES_CBC_PAD }
            }
            CKM_AES_CTR => match &m.param {
                MechanismParam::Ctr(p) if (1..=128).contains(&p.counter_bits) => Mode::Ctr(p.clone()),
                _ => return Err(invalid()),
            },
            CKM_AES_GCM => match &m.param {
                MechanismParam::Gcm(AesGcmParams { iv, aad, tag_bits }) => {
                    let iv = <[u8; 12]>::try_from(iv.as_slice()).map_err(|_| invalid())?;
                    if !matches!(tag_bits, 96 | 104 | 112 | 120 | 128) {
                        return Err(invalid());
                    }
                    Mode::Gcm { iv, aad: aad.clone(), tag_len: tag_bits / 8 }
                }
                _ => return Err(invalid()),
            },
            CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD => {
                // Only the default IV is supported; naming it explicitly is allowed.
                let iv = m.param_bytes()?;
                if !iv.is_empty() && iv != KW_IV {
                    return Err(invalid());
                }
                Mode::Wrap(if m.kind == CKM_AES_KEY_WRAP { WrapKind::Kw } else { WrapKind::Pkcs7 })
            }
            CKM_AES_KEY_WRAP_KWP => {
                let iv = m.param_bytes()?;
                if !iv.is_empty() && iv != KWP_IV {
                    return Err(invalid());
                }
                Mode::Wrap(WrapKind::Kwp)
            }
            _ => return Err(rv(CKR_MECHANISM_INVALID)),
        })
    }
}

fn build<E, D>(mode: Mode, schedules: KeySchedules<'_>, encrypt: bool) -> Result<Box<dyn Cipher>>
where
    E: BlockCipherEncrypt<BlockSize = U16> + KeyInit + Clone + Send + Sync + 'static,
    D: BlockCipherDecrypt<BlockSize = U16> + KeyInit + Clone + Send + Sync + 'static,
{
    let enc = || schedules.get::<E>();
    let dec = || schedules.get::<D>();
    Ok(match (mode, encrypt) {
        (Mode::Ecb, true) => Box::new(Blocks::new(EcbEnc(enc()?), true, false)),
        (Mode::Ecb, false) => Box::new(Blocks::new(EcbDec(dec()?), false, false)),
        (Mode::Cbc { iv, pad }, true) => {
            let mode = cbc::Encryptor::inner_iv_init(enc()?, &Array::from(iv));
            Box::new(Blocks::new(CbcEnc(mode), true, pad))
        }
        (Mode::Cbc { iv, pad }, false) => {
            let mode = cbc::Decryptor::inner_iv_init(dec()?, &Array::from(iv));
            Box::new(Blocks::new(CbcDec(mode), false, pad))
        }
        // CTR encrypts and decrypts alike (the direction only names the length error).
        (Mode::Ctr(p), encrypt) => Box::new(Ctr::new(enc()?, &p, encrypt)),
        (Mode::Gcm { iv, aad, tag_len }, _) => {
            let e = || enc();
            match tag_len {
                // The usual tag length: the key's GHASH key is kept with its schedule.
                16 => Box::new(Gcm::<E, U16>::with(schedules.get::<AesGcm<E, U12, U16>>()?, iv, aad, encrypt)),
                12 => Box::new(Gcm::<E, U12>::new(e()?, iv, aad, encrypt)),
                13 => Box::new(Gcm::<E, U13>::new(e()?, iv, aad, encrypt)),
                14 => Box::new(Gcm::<E, U14>::new(e()?, iv, aad, encrypt)),
                15 => Box::new(Gcm::<E, U15>::new(e()?, iv, aad, encrypt)),
                _ => return Err(rv(CKR_MECHANISM_PARAM_INVALID)),
            }
        }
        (Mode::Wrap(kind), true) => Box::new(Wrap::new(enc()?, kind)),
        (Mode::Wrap(kind), false) => Box::new(Unwrap::new(dec()?, kind)),
    })
}

/// A zeroed secret buffer of `len` bytes with room for `spare` more, so that appending a
/// short final part (the core appends `finish` to `update` for single-part calls) does not
/// reallocate and leave a copy of the plaintext behind in freed memory.
fn secret(len: usize, spare: usize) -> Secret {
    let mut v = Vec::with_capacity(len + spare);
    v.resize(len, 0);
    Zeroizing::new(v)
}

/// Appends to a buffer of secrets, growing it by hand so the old allocation is wiped.
fn append(buf: &mut Secret, data: &[u8], spare: usize) {
    let need = buf.len() + data.len() + spare;
    if need > buf.capacity() {
        let mut grown = Vec::with_capacity(need.max(buf.capacity() * 2));
        grown.extend_from_slice(buf);
        *buf = Zeroizing::new(grown);
    }
    buf.extend_from_slice(data);
}

// ---------------------------------------------------------------------------------------
// ECB and CBC: whole blocks, streamed.

/// One direction of a block mode over whole blocks, input to output.
trait BlockOp: Send {
    fn blocks(&mut self, input: &[Block], output: &mut [Block]);
}

struct EcbEnc<E>(E);
struct EcbDec<D>(D);
struct CbcEnc<E: BlockCipherEncrypt>(cbc::Encryptor<E>);
struct CbcDec<D: BlockCipherDecrypt>(cbc::Decryptor<D>);

impl<E: BlockCipherEncrypt<BlockSize = U16> + Send> BlockOp for EcbEnc<E> {
    fn blocks(&mut self, input: &[Block], output: &mut [Block]) {
        self.0.encrypt_blocks_b2b(input, output).expect("equal lengths");
    }
}

impl<D: BlockCipherDecrypt<BlockSize = U16> + Send> BlockOp for EcbDec<D> {
    fn blocks(&mut self, input: &[Block], output: &mut [Block]) {
        self.0.decrypt_blocks_b2b(input, output).expect("equal lengths");
    }
}

impl<E: BlockCipherEncrypt<BlockSize = U16> + Send> BlockOp for CbcEnc<E> {
    fn blocks(&mut self, input: &[Block], output: &mut [Block]) {
        self.0.encrypt_blocks_b2b(input, output).expect("equal lengths");
    }
}

impl<D: BlockCipherDecrypt<BlockSize = U16> + Send> BlockOp for CbcDec<D> {
    fn blocks(&mut self, input: &[Block], output: &mut [Block]) {
        self.0.decrypt_blocks_b2b(input, output).expect("equal lengths");
    }
}

/// The whole blocks of `bytes` (the caller passes a multiple of the block size).
fn as_blocks(bytes: &[u8]) -> &[Block] {
    Array::slice_as_chunks(bytes).0
}

fn as_blocks_mut(bytes: &mut [u8]) -> &mut [Block] {
    Array::slice_as_chunks_mut(bytes).0
}

/// ECB or CBC, with or without PKCS#7 padding. `buf` holds the input not yet processed:
/// a partial block, or (padded decryption) the last whole block, which may be padding.
struct Blocks<M> {
    op: M,
    encrypt: bool,
    pad: bool,
    buf: Zeroizing<[u8; BLOCK]>,
    len: usize,
}

impl<M: BlockOp> Blocks<M> {
    fn new(op: M, encrypt: bool, pad: bool) -> Self {
        Self { op, encrypt, pad, buf: Zeroizing::new([0; BLOCK]), len: 0 }
    }

    fn one_block(&mut self) -> Secret {
        let mut out = secret(BLOCK, 0);
        self.op.blocks(as_blocks(&self.buf[..]), as_blocks_mut(&mut out));
        out
    }
}

impl<M: BlockOp> Cipher for Blocks<M> {
    fn update(&mut self, mut input: &[u8]) -> Result<Secret> {
        let total = self.len + input.len();
        let mut keep = total % BLOCK;
        if self.pad && !self.encrypt && keep == 0 && total > 0 {
            keep = BLOCK;
        }
        let out_len = total - keep;
        if out_len == 0 {
            self.buf[self.len..total].copy_from_slice(input);
            self.len = total;
            return Ok(Secret::default());
        }
        let mut out = secret(out_len, BLOCK);
        let mut done = 0;
        if self.len > 0 {
            // Complete the held block first; `out_len > 0` means the input can.
            let (head, rest) = input.split_at(BLOCK - self.len);
            self.buf[self.len..].copy_from_slice(head);
            input = rest;
            self.op.blocks(as_blocks(&self.buf[..]), as_blocks_mut(&mut out[..BLOCK]));
            done = BLOCK;
        }
        let (whole, rest) = input.split_at(out_len - done);
        self.op.blocks(as_blocks(whole), as_blocks_mut(&mut out[done..]));
        self.buf[..rest.len()].copy_from_slice(rest);
        self.len = rest.len();
        Ok(out)
    }

    fn finish(&mut self) -> Result<Secret> {
        let len = std::mem::take(&mut self.len);
        match (self.encrypt, self.pad) {
            (true, false) if len != 0 => Err(rv(CKR_DATA_LEN_RANGE)),
            (false, false) if len != 0 => Err(rv(CKR_ENCRYPTED_DATA_LEN_RANGE)),
            (_, false) => Ok(Secret::default()),
            (true, true) => {
                let n = (BLOCK - len) as u8;
                self.buf[len..].fill(n);
                Ok(self.one_block())
            }
            (false, true) => {
                if len != BLOCK {
                    return Err(rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
                }
                let mut out = self.one_block();
                let n = pkcs7_unpad(&out).ok_or(rv(CKR_ENCRYPTED_DATA_INVALID))?;
                out.truncate(BLOCK - n);
                Ok(out)
            }
        }
    }
}

/// The PKCS#7 padding length of `block` (1..=len), checked without branching on the data.
fn pkcs7_unpad(block: &[u8]) -> Option<usize> {
    let size = block.len() as u8;
    let n = block[block.len() - 1];
    let mut good = !n.ct_eq(&0) & !n.ct_gt(&size);
    for (i, &b) in block.iter().enumerate() {
        let from_end = size - i as u8; // 1 for the last byte
        let in_pad = !from_end.ct_gt(&n);
        good &= !in_pad | b.ct_eq(&n);
    }
    bool::from(good).then_some(n as usize)
}

// ---------------------------------------------------------------------------------------
// CTR

/// CTR with a counter of the low `counter_bits` bits of the block. The whole block is
/// incremented as a 128-bit number, which is the same thing as long as the counter field
/// never wraps, and that is refused: `left` is how many bytes remain before it would.
struct Ctr<E: BlockCipherEncrypt<BlockSize = U16>> {
    ctr: ctr::Ctr128BE<E>,
    left: u128,
    /// Input past the counter's end is data (`CKR_DATA_LEN_RANGE`) when encrypting and
    /// ciphertext (`CKR_ENCRYPTED_DATA_LEN_RANGE`) when decrypting, as PKCS#11 names them.
    too_long: CK_RV,
}

impl<E: BlockCipherEncrypt<BlockSize = U16>> Ctr<E> {
    fn new(cipher: E, p: &AesCtrParams, encrypt: bool) -> Self {
        let mask = if p.counter_bits >= 128 { u128::MAX } else { (1u128 << p.counter_bits) - 1 };
        let start = u128::from_be_bytes(p.counter_block) & mask;
        // Blocks from `start` up to and including the all-ones counter.
        let blocks = (mask - start).saturating_add(1);
        let core = ctr::CtrCore::inner_iv_init(cipher, &Array::from(p.counter_block));
        let too_long = if encrypt { CKR_DATA_LEN_RANGE } else { CKR_ENCRYPTED_DATA_LEN_RANGE };
        Self { ctr: ctr::Ctr128BE::from_core(core), left: blocks.saturating_mul(BLOCK as u128), too_long }
    }
}

impl<E: BlockCipherEncrypt<BlockSize = U16> + Send> Cipher for Ctr<E> {
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        let n = input.len() as u128;
        if n > self.left {
            return Err(rv(self.too_long));
        }
        let mut out = Zeroizing::new(input.to_vec());
        self.ctr.try_apply_keystream(&mut out).map_err(|_| rv(self.too_long))?;
        self.left -= n;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Secret> {
        Ok(Secret::default())
    }
}

// ---------------------------------------------------------------------------------------
// GCM

/// GCM with a 96-bit IV and a `T`-byte tag. Input is buffered; all work is in `finish`.
struct Gcm<E, T: aes_gcm::TagSize> {
    aead: AesGcm<E, U12, T>,
    iv: Array<u8, U12>,
    aad: Vec<u8>,
    buf: Secret,
    encrypt: bool,
}

impl<E, T> Gcm<E, T>
where
    E: BlockCipherEncrypt<BlockSize = U16>,
    T: aes_gcm::TagSize,
{
    fn new(cipher: E, iv: [u8; 12], aad: Vec<u8>, encrypt: bool) -> Self {
        Self::with(AesGcm::from(cipher), iv, aad, encrypt)
    }

    fn with(aead: AesGcm<E, U12, T>, iv: [u8; 12], aad: Vec<u8>, encrypt: bool) -> Self {
        Self { aead, iv: Array::from(iv), aad, buf: Secret::default(), encrypt }
    }

    /// Encrypts `data` in place; returns the tag.
    fn seal(&self, data: &mut [u8]) -> Result<Array<u8, T>> {
        self.aead.encrypt_inout_detached(&self.iv, &self.aad, data.into()).map_err(|_| rv(CKR_DATA_LEN_RANGE))
    }

    /// Decrypts `data` in place if `tag` verifies; on a bad tag nothing is decrypted and
    /// `data` still holds the ciphertext.
    fn open(&self, data: &mut [u8], tag: &[u8]) -> Result<()> {
        let tag = Array::<u8, T>::try_from(tag).map_err(|_| rv(CKR_ENCRYPTED_DATA_LEN_RANGE))?;
        self.aead
            .decrypt_inout_detached(&self.iv, &self.aad, data.into(), &tag)
            .map_err(|_| rv(CKR_ENCRYPTED_DATA_INVALID))
    }
}

impl<E, T> Cipher for Gcm<E, T>
where
    E: BlockCipherEncrypt<BlockSize = U16> + Send,
    T: aes_gcm::TagSize,
    AesGcm<E, U12, T>: Send,
{
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        // Room for the tag, which `finish` appends in place.
        let spare = if self.encrypt { T::USIZE } else { 0 };
        append(&mut self.buf, input, spare);
        Ok(Secret::default())
    }

    fn finish(&mut self) -> Result<Secret> {
        let mut buf = std::mem::take(&mut self.buf);
        if self.encrypt {
            let tag = self.seal(&mut buf)?;
            buf.extend_from_slice(&tag);
        } else {
            let len = buf.len().checked_sub(T::USIZE).ok_or(rv(CKR_ENCRYPTED_DATA_LEN_RANGE))?;
            let (data, tag) = buf.split_at_mut(len);
            self.open(data, tag)?;
            buf.truncate(len);
        }
        Ok(buf)
    }

    fn once_len(&self, input_len: usize) -> Option<usize> {
        if !self.buf.is_empty() {
            return None;
        }
        if self.encrypt {
            input_len.checked_add(T::USIZE)
        } else {
            // Too short for a tag: `once` gives the error.
            input_len.checked_sub(T::USIZE)
        }
    }

    fn once_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<()> {
        if self.encrypt {
            let (data, tag_out) = out.split_at_mut(input.len());
            data.copy_from_slice(input);
            tag_out.copy_from_slice(&self.seal(data)?);
        } else {
            let (data, tag) = input.split_at(out.len());
            out.copy_from_slice(data);
            self.open(out, tag)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Key wrap

/// RFC 3394 needs at least two 64-bit blocks of data.
const KW_MIN: usize = 16;

/// A key wrap algorithm keyed for one direction.
enum KeyWrap<C> {
    Kw(AesKw<C>),
    Kwp(AesKwp<C>),
    /// PKCS#7 padding, then RFC 3394.
    Pkcs7(AesKw<C>),
}

impl<C> KeyWrap<C> {
    fn new(cipher: C, kind: WrapKind) -> Self {
        match kind {
            WrapKind::Kw => KeyWrap::Kw(AesKw::inner_init(cipher)),
            WrapKind::Kwp => KeyWrap::Kwp(AesKwp::inner_init(cipher)),
            WrapKind::Pkcs7 => KeyWrap::Pkcs7(AesKw::inner_init(cipher)),
        }
    }
}

/// Wrapping: the key material is buffered (wiped when dropped) and wrapped in `finish`.
struct Wrap<E> {
    alg: KeyWrap<E>,
    buf: Secret,
}

impl<E> Wrap<E> {
    fn new(cipher: E, kind: WrapKind) -> Self {
        Self { alg: KeyWrap::new(cipher, kind), buf: Secret::default() }
    }
}

impl<E: BlockCipherEncrypt<BlockSize = U16> + Send> Cipher for Wrap<E> {
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        let spare = if matches!(self.alg, KeyWrap::Pkcs7(_)) { 8 } else { 0 };
        append(&mut self.buf, input, spare);
        Ok(Secret::default())
    }

    fn finish(&mut self) -> Result<Secret> {
        let mut data = std::mem::take(&mut self.buf);
        let len = data.len();
        let too_long = len > u32::MAX as usize - 16;
        let failed = |_| rv(CKR_DATA_LEN_RANGE);
        match &self.alg {
            KeyWrap::Kw(kw) => {
                if !len.is_multiple_of(8) || len < KW_MIN || too_long {
                    return Err(rv(CKR_DATA_LEN_RANGE));
                }
                let mut out = secret(len + 8, 0);
                kw.wrap_key(&data, &mut out).map_err(failed)?;
                Ok(out)
            }
            KeyWrap::Kwp(kwp) => {
                if len == 0 || too_long {
                    return Err(rv(CKR_DATA_LEN_RANGE));
                }
                let mut out = secret(len.div_ceil(8) * 8 + 8, 0);
                kwp.wrap_key(&data, &mut out).map_err(failed)?;
                Ok(out)
            }
            KeyWrap::Pkcs7(kw) => {
                let n = 8 - len % 8;
                if len + n < KW_MIN || too_long {
                    return Err(rv(CKR_DATA_LEN_RANGE));
                }
                append(&mut data, &[n as u8; 8][..n], 0);
                let mut out = secret(data.len() + 8, 0);
                kw.wrap_key(&data, &mut out).map_err(failed)?;
                Ok(out)
            }
        }
    }
}

/// Unwrapping: the wrapped key is buffered and unwrapped and checked in `finish`.
struct Unwrap<D> {
    alg: KeyWrap<D>,
    buf: Vec<u8>,
}

impl<D> Unwrap<D> {
    fn new(cipher: D, kind: WrapKind) -> Self {
        Self { alg: KeyWrap::new(cipher, kind), buf: Vec::new() }
    }
}

impl<D: BlockCipherDecrypt<BlockSize = U16> + Send> Cipher for Unwrap<D> {
    fn update(&mut self, input: &[u8]) -> Result<Secret> {
        self.buf.extend_from_slice(input);
        Ok(Secret::default())
    }

    fn finish(&mut self) -> Result<Secret> {
        let data = std::mem::take(&mut self.buf);
        let len = data.len();
        let min = match self.alg {
            KeyWrap::Kw(_) | KeyWrap::Pkcs7(_) => KW_MIN + 8,
            KeyWrap::Kwp(_) => 16,
        };
        if !len.is_multiple_of(8) || len < min || len > u32::MAX as usize {
            return Err(rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        let mut out = secret(len - 8, 0);
        let invalid = |_| rv(CKR_ENCRYPTED_DATA_INVALID);
        match &self.alg {
            KeyWrap::Kw(kw) => {
                kw.unwrap_key(&data, &mut out).map_err(invalid)?;
            }
            KeyWrap::Kwp(kwp) => {
                let n = kwp.unwrap_key(&data, &mut out).map_err(invalid)?.len();
                out.truncate(n);
            }
            KeyWrap::Pkcs7(kw) => {
                kw.unwrap_key(&data, &mut out).map_err(invalid)?;
                let n = pkcs7_unpad(&out[out.len() - 8..]).ok_or(rv(CKR_ENCRYPTED_DATA_INVALID))?;
                let keep = out.len() - n;
                out.truncate(keep);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn mech(kind: CK_MECHANISM_TYPE, param: MechanismParam) -> Mechanism {
        Mechanism::new(kind, param)
    }

    fn bytes(b: &[u8]) -> MechanismParam {
        MechanismParam::Bytes(b.to_vec())
    }

    fn ctr(bits: usize, block: &[u8]) -> MechanismParam {
        MechanismParam::Ctr(AesCtrParams { counter_bits: bits, counter_block: block.try_into().unwrap() })
    }

    fn gcm(iv: &[u8], aad: &[u8], tag_bits: usize) -> MechanismParam {
        MechanismParam::Gcm(AesGcmParams { iv: iv.to_vec(), aad: aad.to_vec(), tag_bits })
    }

    /// Single-part: update then finish, as the core does for C_Encrypt/C_Decrypt.
    fn run(m: &Mechanism, key: &[u8], encrypt: bool, input: &[u8]) -> Result<Vec<u8>> {
        let mut c = cipher(m, key, encrypt)?;
        let mut out = c.update(input)?.to_vec();
        out.extend_from_slice(&c.finish()?);
        Ok(out)
    }

    /// Multi-part with chunks of the given sizes, cycled.
    fn run_chunked(m: &Mechanism, key: &[u8], encrypt: bool, input: &[u8], sizes: &[usize]) -> Result<Vec<u8>> {
        let mut c = cipher(m, key, encrypt)?;
        let mut out = Vec::new();
        let mut rest = input;
        for &n in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, r) = rest.split_at(n.min(rest.len()));
            out.extend_from_slice(&c.update(chunk)?);
            rest = r;
        }
        out.extend_from_slice(&c.finish()?);
        Ok(out)
    }

    fn err(r: Result<impl Sized>) -> CK_RV {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.rv(),
        }
    }

    fn check(m: &Mechanism, key: &[u8], plain: &[u8], cipher_text: &[u8]) {
        assert_eq!(run(m, key, true, plain).unwrap(), cipher_text, "encrypt");
        assert_eq!(run(m, key, false, cipher_text).unwrap(), plain, "decrypt");
        for sizes in [&[1][..], &[5, 17, 3], &[16], &[15, 1, 33], &[31]] {
            assert_eq!(run_chunked(m, key, true, plain, sizes).unwrap(), cipher_text, "encrypt {sizes:?}");
            assert_eq!(run_chunked(m, key, false, cipher_text, sizes).unwrap(), plain, "decrypt {sizes:?}");
        }
    }

    // NIST SP 800-38A, appendix F.
    const KEY128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const KEY256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
    const IV: &str = "000102030405060708090a0b0c0d0e0f";
    const CBC128: &str = "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
                          73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7";
    const CTR_BLOCK: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    const CTR128: &str = "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff
                          5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee";

    #[test]
    fn sp800_38a_ecb() {
        let m = mech(CKM_AES_ECB, MechanismParam::None);
        // F.1.1 ECB-AES128
        let c = "3ad77bb40d7a3660a89ecaf32466ef97 f5d3d58503b9699de785895a96fdbaaf
                 43b1cd7f598ece23881b00e3ed030688 7b0c785e27e8ad3f8223207104725dd4";
        check(&m, &hex(KEY128), &hex(PLAIN), &hex(c));
        // F.1.5 ECB-AES256
        let c = "f3eed1bdb5d2a03c064b5a7e3db181f8 591ccb10d410ed26dc5ba74a31362870
                 b6ed21b99ca6f4f9f153e7b1beafed1d 23304b7a39f9f3ff067d8d8f9e24ecc7";
        check(&m, &hex(KEY256), &hex(PLAIN), &hex(c));
        // F.1.3 ECB-AES192
        let key = hex("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b");
        let c = "bd334f1d6e45f25ff712a214571fa5cc 974104846d0ad3ad7734ecb3ecee4eef
                 ef7afd2270e2e60adce0ba2face6444e 9a4b41ba738d6c72fb16691603c18e0e";
        check(&m, &key, &hex(PLAIN), &hex(c));
    }

    #[test]
    fn sp800_38a_cbc() {
        // F.2.1 CBC-AES128
        let m = mech(CKM_AES_CBC, bytes(&hex(IV)));
        check(&m, &hex(KEY128), &hex(PLAIN), &hex(CBC128));
        // F.2.5 CBC-AES256
        let c = "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
                 39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b";
        check(&m, &hex(KEY256), &hex(PLAIN), &hex(c));
    }

    #[test]
    fn sp800_38a_ctr() {
        // F.5.1 CTR-AES128, with the whole block as the counter and with a 16-bit counter
        // (the vector's counter never carries past bit 16).
        for bits in [128, 64, 16] {
            let m = mech(CKM_AES_CTR, ctr(bits, &hex(CTR_BLOCK)));
            check(&m, &hex(KEY128), &hex(PLAIN), &hex(CTR128));
        }
        // F.5.5 CTR-AES256
        let m = mech(CKM_AES_CTR, ctr(128, &hex(CTR_BLOCK)));
        let c = "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5
                 2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6";
        check(&m, &hex(KEY256), &hex(PLAIN), &hex(c));
        // A partial final block.
        let plain = hex(PLAIN);
        let want = hex(CTR128);
        let m = mech(CKM_AES_CTR, ctr(128, &hex(CTR_BLOCK)));
        assert_eq!(run(&m, &hex(KEY128), true, &plain[..37]).unwrap(), want[..37]);
    }

    #[test]
    fn ctr_counter_wrap() {
        let key = hex(KEY128);
        // The low 8 bits are 0xff: one block, then the counter would wrap.
        let m = mech(CKM_AES_CTR, ctr(8, &hex(CTR_BLOCK)));
        // The same limit both ways; past it, the input is data when encrypting and
        // ciphertext when decrypting.
        for (encrypt, too_long) in [(true, CKR_DATA_LEN_RANGE), (false, CKR_ENCRYPTED_DATA_LEN_RANGE)] {
            assert_eq!(run(&m, &key, encrypt, &[0; 16]).unwrap().len(), 16);
            assert_eq!(err(run(&m, &key, encrypt, &[0; 17])), too_long);
            // Byte-wise streaming up to the limit, then one byte too many.
            let mut c = cipher(&m, &key, encrypt).unwrap();
            for _ in 0..16 {
                assert_eq!(c.update(&[0]).unwrap().len(), 1);
            }
            assert_eq!(err(c.update(&[0])), too_long);
            // A 1-bit counter starting at 0 allows two blocks.
            let m = mech(CKM_AES_CTR, ctr(1, &[0; 16]));
            assert_eq!(run(&m, &key, encrypt, &[0; 32]).unwrap().len(), 32);
            assert_eq!(err(run(&m, &key, encrypt, &[0; 33])), too_long);
            // A full 128-bit counter at all-ones: one block only.
            let m = mech(CKM_AES_CTR, ctr(128, &[0xff; 16]));
            assert_eq!(run(&m, &key, encrypt, &[0; 16]).unwrap().len(), 16);
            assert_eq!(err(run(&m, &key, encrypt, &[0; 17])), too_long);
        }
        // The counter occupies only its bits: the bits above them never change, so with a
        // 32-bit counter the second block's counter is ...00000001, not a carry into bit 32.
        let mut block = [0xaa; 16];
        block[12..].copy_from_slice(&[0, 0, 0, 0]);
        let m = mech(CKM_AES_CTR, ctr(32, &block));
        let out = run(&m, &key, true, &[0; 32]).unwrap();
        let ecb = mech(CKM_AES_ECB, MechanismParam::None);
        let mut blocks = block.to_vec();
        block[15] = 1;
        blocks.extend_from_slice(&block);
        assert_eq!(out, run(&ecb, &key, true, &blocks).unwrap());
    }

    #[test]
    fn ctr_params() {
        let key = hex(KEY128);
        for bits in [0, 129] {
            let m = mech(CKM_AES_CTR, ctr(bits, &[0; 16]));
            assert_eq!(err(cipher(&m, &key, true)), CKR_MECHANISM_PARAM_INVALID);
        }
        assert_eq!(err(cipher(&mech(CKM_AES_CTR, bytes(&[0; 16])), &key, true)), CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(err(cipher(&mech(CKM_AES_CTR, MechanismParam::None), &key, true)), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn cbc_pad() {
        let key = hex(KEY128);
        let m = mech(CKM_AES_CBC_PAD, bytes(&hex(IV)));
        // Whole-block input: SP 800-38A F.2.1, then a block of sixteen 0x10 bytes chained on.
        let ecb = mech(CKM_AES_ECB, MechanismParam::None);
        let last = &hex(CBC128)[48..];
        let pad_block: Vec<u8> = last.iter().map(|b| b ^ 0x10).collect();
        let mut want = hex(CBC128);
        want.extend_from_slice(&run(&ecb, &key, true, &pad_block).unwrap());
        check(&m, &key, &hex(PLAIN), &want);
        // Every length from 0 to 40 round-trips, and the ciphertext has the padded length.
        let data: Vec<u8> = (0..40u8).collect();
        for len in 0..=40 {
            let ct = run(&m, &key, true, &data[..len]).unwrap();
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(run(&m, &key, false, &ct).unwrap(), &data[..len]);
            for sizes in [&[1][..], &[7, 16, 9], &[16]] {
                assert_eq!(run_chunked(&m, &key, true, &data[..len], sizes).unwrap(), ct);
                assert_eq!(run_chunked(&m, &key, false, &ct, sizes).unwrap(), &data[..len]);
            }
        }
    }

    #[test]
    fn cbc_pad_decrypt_holds_last_block() {
        let key = hex(KEY128);
        let m = mech(CKM_AES_CBC_PAD, bytes(&hex(IV)));
        let ct = run(&m, &key, true, &[7; 32]).unwrap();
        assert_eq!(ct.len(), 48);
        let mut c = cipher(&m, &key, false).unwrap();
        assert_eq!(c.update(&ct[..16]).unwrap().len(), 0);
        assert_eq!(c.update(&ct[16..32]).unwrap().len(), 16);
        assert_eq!(c.update(&ct[32..]).unwrap().len(), 16);
        assert_eq!(c.finish().unwrap().len(), 0);
    }

    #[test]
    fn cbc_pad_errors() {
        let key = hex(KEY128);
        let iv = hex(IV);
        let m = mech(CKM_AES_CBC_PAD, bytes(&iv));
        // A final block whose plaintext is not PKCS#7 padding, made with raw CBC.
        let raw = mech(CKM_AES_CBC, bytes(&iv));
        for last in [&[0u8; 16][..], &[0x11; 16], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3, 2]] {
            let ct = run(&raw, &key, true, last).unwrap();
            assert_eq!(err(run(&m, &key, false, &ct)), CKR_ENCRYPTED_DATA_INVALID, "{last:?}");
        }
        // Good padding made the same way is accepted.
        let mut last = [9u8; 16];
        last[..7].copy_from_slice(b"payload");
        let ct = run(&raw, &key, true, &last).unwrap();
        assert_eq!(run(&m, &key, false, &ct).unwrap(), b"payload");
        let mut last = [16u8; 16];
        last[0] = 16;
        assert_eq!(run(&m, &key, false, &run(&raw, &key, true, &last).unwrap()).unwrap(), b"");
        // Lengths that are not whole blocks, or empty.
        let ct = run(&m, &key, true, b"hello").unwrap();
        assert_eq!(err(run(&m, &key, false, &ct[..15])), CKR_ENCRYPTED_DATA_LEN_RANGE);
        assert_eq!(err(run(&m, &key, false, &[ct.as_slice(), &[0]].concat())), CKR_ENCRYPTED_DATA_LEN_RANGE);
        assert_eq!(err(run(&m, &key, false, &[])), CKR_ENCRYPTED_DATA_LEN_RANGE);
    }

    #[test]
    fn unpadded_length_errors() {
        let key = hex(KEY128);
        for m in [mech(CKM_AES_ECB, MechanismParam::None), mech(CKM_AES_CBC, bytes(&hex(IV)))] {
            assert_eq!(err(run(&m, &key, true, &[0; 17])), CKR_DATA_LEN_RANGE);
            assert_eq!(err(run(&m, &key, false, &[0; 31])), CKR_ENCRYPTED_DATA_LEN_RANGE);
            assert_eq!(run(&m, &key, true, &[]).unwrap(), b"");
            // Streaming: update hands back every whole block and keeps the rest.
            let mut c = cipher(&m, &key, true).unwrap();
            assert_eq!(c.update(&[0; 20]).unwrap().len(), 16);
            assert_eq!(c.update(&[0; 11]).unwrap().len(), 0);
            assert_eq!(c.update(&[0; 1]).unwrap().len(), 16);
            assert_eq!(c.finish().unwrap().len(), 0);
            let mut c = cipher(&m, &key, true).unwrap();
            c.update(&[0; 20]).unwrap();
            assert_eq!(err(c.finish()), CKR_DATA_LEN_RANGE);
        }
    }

    #[test]
    fn param_and_key_errors() {
        let key = hex(KEY128);
        for iv in [&[0u8; 15][..], &[0; 17], &[]] {
            for kind in [CKM_AES_CBC, CKM_AES_CBC_PAD] {
                assert_eq!(err(cipher(&mech(kind, bytes(iv)), &key, true)), CKR_MECHANISM_PARAM_INVALID);
            }
        }
        assert_eq!(err(cipher(&mech(CKM_AES_CBC, MechanismParam::None), &key, true)), CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(err(cipher(&mech(CKM_AES_ECB, bytes(&[0; 16])), &key, true)), CKR_MECHANISM_PARAM_INVALID);
        assert!(cipher(&mech(CKM_AES_ECB, bytes(&[])), &key, true).is_ok());
        for len in [0, 1, 15, 17, 23, 31, 33, 64] {
            let k = vec![0; len];
            assert_eq!(err(cipher(&mech(CKM_AES_ECB, MechanismParam::None), &k, true)), CKR_KEY_SIZE_RANGE);
            assert_eq!(err(check_value(&k)), CKR_KEY_SIZE_RANGE);
        }
        for kind in [CKM_DES_ECB, CKM_SHA256, CKM_AES_CMAC, CKM_AES_CCM] {
            assert_eq!(err(cipher(&mech(kind, MechanismParam::None), &key, true)), CKR_MECHANISM_INVALID);
        }
    }

    #[test]
    fn check_values() {
        // AES-128 ECB of the zero block under the zero key: 66e94bd4ef8a2c3b884cfa59ca342b2e.
        assert_eq!(check_value(&[0; 16]).unwrap(), [0x66, 0xe9, 0x4b]);
        // FIPS 197 C.1 key with a zero block, via ECB.
        for key in [hex(KEY128), vec![7; 24], hex(KEY256)] {
            let ct = run(&mech(CKM_AES_ECB, MechanismParam::None), &key, true, &[0; 16]).unwrap();
            assert_eq!(check_value(&key).unwrap(), ct[..3]);
        }
    }

    #[test]
    fn zero_padding_for_ecb_and_cbc_wrap() {
        for (len, padded) in [(0, 0), (1, 16), (15, 16), (16, 16), (20, 32), (24, 32), (32, 32), (33, 48)] {
            let value: Vec<u8> = (1..=len as u8).collect();
            let out = zero_padded(&value);
            assert_eq!(out.len(), padded, "{len} bytes");
            assert_eq!(out[..len], value[..]);
            assert!(out[len..].iter().all(|&b| b == 0), "{len} bytes: padding is zeros");
        }
        let kinds = [CKM_AES_ECB, CKM_AES_CBC];
        for kind in [CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_GCM, CKM_AES_CTR, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_KWP] {
            assert_eq!(wraps_zero_padded(kind), kinds.contains(&kind), "0x{kind:x}");
        }
    }

    // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 4 (AES-128) and
    // 16 (AES-256): 60-byte plaintext, 20-byte AAD, 96-bit IV.
    const GCM_PLAIN: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    const GCM_IV: &str = "cafebabefacedbaddecaf888";
    const GCM_KEY4: &str = "feffe9928665731c6d6a8f9467308308";
    const GCM_CT4: &str = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
                           21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091
                           5bc94fbc3221a5db94fae95ae7121a47";

    #[test]
    fn gcm_vectors() {
        let m = mech(CKM_AES_GCM, gcm(&hex(GCM_IV), &hex(GCM_AAD), 128));
        check(&m, &hex(GCM_KEY4), &hex(GCM_PLAIN), &hex(GCM_CT4));
        let key16 = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let ct16 = hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662
             76fc6ece0f4e1768cddf8853bb2d551b");
        check(&m, &key16, &hex(GCM_PLAIN), &ct16);
        // Shorter tags are the full tag truncated.
        let full = hex(GCM_CT4);
        for bits in [96, 104, 112, 120] {
            let m = mech(CKM_AES_GCM, gcm(&hex(GCM_IV), &hex(GCM_AAD), bits));
            let want = &full[..60 + bits / 8];
            check(&m, &hex(GCM_KEY4), &hex(GCM_PLAIN), want);
        }
        // McGrew–Viega test case 1: empty everything, zero key and IV.
        let m = mech(CKM_AES_GCM, gcm(&[0; 12], &[], 128));
        check(&m, &[0; 16], &[], &hex("58e2fccefa7e3061367f1d57a4e7455a"));
    }

    /// `once_into` (straight into the caller's buffer) gives what `once` gives, for every
    /// tag length and size, and refuses what `once` refuses.
    #[test]
    fn gcm_once_into_matches_once() {
        let key = [9u8; 32];
        for bits in [96, 104, 112, 120, 128] {
            for n in [0, 1, 15, 16, 64, 4096, 70_000] {
                let m = mech(CKM_AES_GCM, gcm(&[5; 12], b"aad", bits));
                let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
                let want = cipher(&m, &key, true).unwrap().once(&data).unwrap();
                let enc = cipher(&m, &key, true).unwrap();
                let len = enc.once_len(n).unwrap();
                assert_eq!(len, want.len());
                let mut got = vec![0u8; len];
                let mut enc = enc;
                enc.once_into(&data, &mut got).unwrap();
                assert_eq!(got, *want, "encrypt {n} bytes, tag {bits}");

                let mut dec = cipher(&m, &key, false).unwrap();
                assert_eq!(dec.once_len(want.len()), Some(n));
                let mut back = vec![0u8; n];
                dec.once_into(&want, &mut back).unwrap();
                assert_eq!(back, data);

                let mut bad = want.to_vec();
                bad[0] ^= 1;
                let mut dec = cipher(&m, &key, false).unwrap();
                assert_eq!(err(dec.once_into(&bad, &mut back)), CKR_ENCRYPTED_DATA_INVALID);
            }
            let dec = cipher(&mech(CKM_AES_GCM, gcm(&[5; 12], b"", bits)), &key, false).unwrap();
            assert_eq!(dec.once_len(bits / 8 - 1), None, "shorter than the tag: once decides");
        }
        // After an update the buffered input counts: no direct path.
        let mut enc = cipher(&mech(CKM_AES_GCM, gcm(&[5; 12], b"", 128)), &key, true).unwrap();
        enc.update(b"abc").unwrap();
        assert_eq!(enc.once_len(3), None);
    }

    #[test]
    fn gcm_update_buffers() {
        let m = mech(CKM_AES_GCM, gcm(&hex(GCM_IV), &hex(GCM_AAD), 128));
        for encrypt in [true, false] {
            let mut c = cipher(&m, &hex(GCM_KEY4), encrypt).unwrap();
            assert!(c.update(&[0; 40]).unwrap().is_empty());
            assert!(c.update(&[0; 40]).unwrap().is_empty());
        }
    }

    #[test]
    fn gcm_errors() {
        let key = hex(GCM_KEY4);
        let m = mech(CKM_AES_GCM, gcm(&hex(GCM_IV), &hex(GCM_AAD), 128));
        let good = hex(GCM_CT4);
        // A flipped bit anywhere: ciphertext, tag, or a different AAD.
        for i in [0, 30, 59, 60, 75] {
            let mut bad = good.clone();
            bad[i] ^= 0x80;
            assert_eq!(err(run(&m, &key, false, &bad)), CKR_ENCRYPTED_DATA_INVALID, "byte {i}");
            // Multi-part too: update releases nothing, finish fails.
            let mut c = cipher(&m, &key, false).unwrap();
            assert!(c.update(&bad[..50]).unwrap().is_empty());
            assert!(c.update(&bad[50..]).unwrap().is_empty());
            assert_eq!(err(c.finish()), CKR_ENCRYPTED_DATA_INVALID);
        }
        let other_aad = mech(CKM_AES_GCM, gcm(&hex(GCM_IV), b"other", 128));
        assert_eq!(err(run(&other_aad, &key, false, &good)), CKR_ENCRYPTED_DATA_INVALID);
        // Shorter than the tag.
        assert_eq!(err(run(&m, &key, false, &good[..15])), CKR_ENCRYPTED_DATA_LEN_RANGE);
        let m96 = mech(CKM_AES_GCM, gcm(&hex(GCM_IV), &[], 96));
        assert_eq!(err(run(&m96, &key, false, &[0; 11])), CKR_ENCRYPTED_DATA_LEN_RANGE);
        // Just a tag, and a wrong one.
        assert_eq!(err(run(&m, &key, false, &[0; 16])), CKR_ENCRYPTED_DATA_INVALID);
        // Parameters.
        for iv in [&[0u8; 0][..], &[0; 8], &[0; 11], &[0; 13], &[0; 16]] {
            let m = mech(CKM_AES_GCM, gcm(iv, &[], 128));
            assert_eq!(err(cipher(&m, &key, true)), CKR_MECHANISM_PARAM_INVALID);
        }
        for bits in [0, 32, 64, 88, 100, 127, 136] {
            let m = mech(CKM_AES_GCM, gcm(&[0; 12], &[], bits));
            assert_eq!(err(cipher(&m, &key, true)), CKR_MECHANISM_PARAM_INVALID, "{bits}");
        }
        assert_eq!(err(cipher(&mech(CKM_AES_GCM, bytes(&[0; 12])), &key, true)), CKR_MECHANISM_PARAM_INVALID);
    }

    // RFC 3394 §4.1 (128-bit key data, 128-bit KEK) and §4.6 (256-bit key data, 256-bit KEK).
    #[test]
    fn rfc3394_vectors() {
        let m = mech(CKM_AES_KEY_WRAP, MechanismParam::None);
        check(
            &m,
            &hex("000102030405060708090A0B0C0D0E0F"),
            &hex("00112233445566778899AABBCCDDEEFF"),
            &hex("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"),
        );
        check(
            &m,
            &hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"),
            &hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"),
            &hex("28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"),
        );
        // The default IV may be named explicitly.
        let m = mech(CKM_AES_KEY_WRAP, bytes(&[0xA6; 8]));
        check(
            &m,
            &hex("000102030405060708090A0B0C0D0E0F"),
            &hex("00112233445566778899AABBCCDDEEFF"),
            &hex("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"),
        );
    }

    #[test]
    fn kw_errors() {
        let kek = hex(KEY128);
        let m = mech(CKM_AES_KEY_WRAP, MechanismParam::None);
        for len in [0, 8, 15, 17, 20] {
            assert_eq!(err(run(&m, &kek, true, &vec![1; len])), CKR_DATA_LEN_RANGE, "{len}");
        }
        let wrapped = run(&m, &kek, true, &[1; 16]).unwrap();
        let mut bad = wrapped.clone();
        bad[20] ^= 1;
        assert_eq!(err(run(&m, &kek, false, &bad)), CKR_ENCRYPTED_DATA_INVALID);
        // Unwrapping under another key fails the integrity check.
        assert_eq!(err(run(&m, &hex(KEY256), false, &wrapped)), CKR_ENCRYPTED_DATA_INVALID);
        for len in [0, 8, 16, 23, 25] {
            assert_eq!(err(run(&m, &kek, false, &vec![1; len])), CKR_ENCRYPTED_DATA_LEN_RANGE, "{len}");
        }
        for iv in [&[0xA6u8; 7][..], &[0; 8], &[0xA6; 9]] {
            assert_eq!(err(cipher(&mech(CKM_AES_KEY_WRAP, bytes(iv)), &kek, true)), CKR_MECHANISM_PARAM_INVALID);
        }
        let gcm_param = mech(CKM_AES_KEY_WRAP, gcm(&[0; 12], &[], 128));
        assert_eq!(err(cipher(&gcm_param, &kek, true)), CKR_MECHANISM_PARAM_INVALID);
    }

    // RFC 5649 §6: both examples, with a 192-bit KEK.
    #[test]
    fn rfc5649_vectors() {
        let kek = hex("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8");
        let m = mech(CKM_AES_KEY_WRAP_KWP, MechanismParam::None);
        check(
            &m,
            &kek,
            &hex("c37b7e6492584340 bed1220780894115 5068f738"),
            &hex("138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"),
        );
        check(&m, &kek, &hex("466f7250617369"), &hex("afbeb0f07dfbf541 9200f2ccb50bb24f"));
        let m = mech(CKM_AES_KEY_WRAP_KWP, bytes(&[0xA6, 0x59, 0x59, 0xA6]));
        check(&m, &kek, &hex("466f7250617369"), &hex("afbeb0f07dfbf541 9200f2ccb50bb24f"));
    }

    #[test]
    fn kwp_errors_and_lengths() {
        let kek = hex(KEY128);
        let m = mech(CKM_AES_KEY_WRAP_KWP, MechanismParam::None);
        assert_eq!(err(run(&m, &kek, true, &[])), CKR_DATA_LEN_RANGE);
        for len in 1..=33usize {
            let data: Vec<u8> = (0..len as u8).collect();
            let wrapped = run(&m, &kek, true, &data).unwrap();
            assert_eq!(wrapped.len(), len.div_ceil(8) * 8 + 8);
            assert_eq!(run(&m, &kek, false, &wrapped).unwrap(), data);
            let mut bad = wrapped.clone();
            bad[len % wrapped.len()] ^= 4;
            assert_eq!(err(run(&m, &kek, false, &bad)), CKR_ENCRYPTED_DATA_INVALID, "{len}");
        }
        for len in [0, 8, 17, 23] {
            assert_eq!(err(run(&m, &kek, false, &vec![0; len])), CKR_ENCRYPTED_DATA_LEN_RANGE, "{len}");
        }
        // An RFC 3394 wrapping is not an RFC 5649 one.
        let kw = run(&mech(CKM_AES_KEY_WRAP, MechanismParam::None), &kek, true, &[3; 16]).unwrap();
        assert_eq!(err(run(&m, &kek, false, &kw)), CKR_ENCRYPTED_DATA_INVALID);
        for iv in [&[0xA6u8; 8][..], &[0xA6, 0x59, 0x59]] {
            assert_eq!(err(cipher(&mech(CKM_AES_KEY_WRAP_KWP, bytes(iv)), &kek, true)), CKR_MECHANISM_PARAM_INVALID);
        }
    }

    #[test]
    fn kw_pkcs7() {
        let kek = hex(KEY256);
        let m = mech(CKM_AES_KEY_WRAP_PAD, MechanismParam::None);
        let kw = mech(CKM_AES_KEY_WRAP, MechanismParam::None);
        // Equal to RFC 3394 over the PKCS#7-padded data, e.g. the §4.6 key padded by 8 bytes.
        let data = hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
        let padded = [data.as_slice(), &[8; 8]].concat();
        assert_eq!(run(&m, &kek, true, &data).unwrap(), run(&kw, &kek, true, &padded).unwrap());
        for len in 8..=40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let wrapped = run(&m, &kek, true, &data).unwrap();
            assert_eq!(wrapped.len(), (len / 8 + 1) * 8 + 8, "{len}");
            let n = 8 - len % 8;
            let padded = [data.as_slice(), &vec![n as u8; n]].concat();
            assert_eq!(wrapped, run(&kw, &kek, true, &padded).unwrap());
            assert_eq!(run(&m, &kek, false, &wrapped).unwrap(), data);
            assert_eq!(run_chunked(&m, &kek, false, &wrapped, &[3, 5]).unwrap(), data);
            assert_eq!(run_chunked(&m, &kek, true, &data, &[3, 5]).unwrap(), wrapped);
        }
        // Fewer than 8 bytes would pad to a single 64-bit block, which RFC 3394 does not wrap.
        for len in 0..8 {
            assert_eq!(err(run(&m, &kek, true, &vec![1; len])), CKR_DATA_LEN_RANGE, "{len}");
        }
        // RFC 3394-valid wrappings whose content is not PKCS#7-padded.
        for bad in [&[0u8; 16][..], &[9; 16], &[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 2, 3], &[0x10; 24]] {
            let wrapped = run(&kw, &kek, true, bad).unwrap();
            assert_eq!(err(run(&m, &kek, false, &wrapped)), CKR_ENCRYPTED_DATA_INVALID, "{bad:?}");
        }
        // ...and ones that are.
        let wrapped = run(&kw, &kek, true, &[8; 16]).unwrap();
        assert_eq!(run(&m, &kek, false, &wrapped).unwrap(), [8; 8]);
        let mut wrapped = run(&m, &kek, true, &[1; 16]).unwrap();
        wrapped[3] ^= 1;
        assert_eq!(err(run(&m, &kek, false, &wrapped)), CKR_ENCRYPTED_DATA_INVALID);
        for len in [0, 8, 16, 25] {
            assert_eq!(err(run(&m, &kek, false, &vec![0; len])), CKR_ENCRYPTED_DATA_LEN_RANGE, "{len}");
        }
        assert!(cipher(&mech(CKM_AES_KEY_WRAP_PAD, bytes(&[0xA6; 8])), &kek, true).is_ok());
        assert_eq!(err(cipher(&mech(CKM_AES_KEY_WRAP_PAD, bytes(&[1; 8])), &kek, true)), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn long_streams_match_single_part() {
        // Longer than the backends' parallel batches, in awkward chunks, all key sizes.
        let data: Vec<u8> = (0..4099u32).map(|i| (i * 31 + 7) as u8).collect();
        let whole = &data[..4096];
        for key in [vec![1; 16], vec![2; 24], vec![3; 32]] {
            let mechs = [
                (mech(CKM_AES_ECB, MechanismParam::None), whole),
                (mech(CKM_AES_CBC, bytes(&[9; 16])), whole),
                (mech(CKM_AES_CBC_PAD, bytes(&[9; 16])), &data[..]),
                (mech(CKM_AES_CTR, ctr(32, &[5; 16])), &data[..]),
                (mech(CKM_AES_GCM, gcm(&[4; 12], b"aad", 120)), &data[..]),
                (mech(CKM_AES_KEY_WRAP, MechanismParam::None), whole),
                (mech(CKM_AES_KEY_WRAP_KWP, MechanismParam::None), &data[..]),
                (mech(CKM_AES_KEY_WRAP_PAD, MechanismParam::None), &data[..]),
            ];
            for (m, input) in mechs {
                let ct = run(&m, &key, true, input).unwrap();
                for sizes in [&[1000][..], &[1, 255, 129, 3000]] {
                    assert_eq!(run_chunked(&m, &key, true, input, sizes).unwrap(), ct, "{:x}", m.kind);
                    assert_eq!(run_chunked(&m, &key, false, &ct, sizes).unwrap(), input, "{:x}", m.kind);
                }
            }
        }
    }

    #[test]
    fn single_part_output_does_not_reallocate() {
        // The core appends finish's output to update's: there must be room for it.
        let key = hex(KEY128);
        let m = mech(CKM_AES_CBC_PAD, bytes(&hex(IV)));
        for (encrypt, input) in [(true, vec![1u8; 100]), (false, run(&m, &key, true, &[1; 100]).unwrap())] {
            let mut c = cipher(&m, &key, encrypt).unwrap();
            let mut out = c.update(&input).unwrap();
            let cap = out.capacity();
            out.extend_from_slice(&c.finish().unwrap());
            assert_eq!(out.capacity(), cap);
        }
    }
}

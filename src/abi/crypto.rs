//! Cryptographic functions.

use cryptoki_sys::*;

use super::args::{bytes, mechanism, out, output, set_len, template};
use super::ck_fn;
use crate::core::{module, Module};
use crate::error::Result;
use crate::mechanism::Mechanism;

/// A `C_*Init` whose NULL mechanism ends the active operation of its kind instead of
/// starting one: PKCS#11 3.0 says each of `C_EncryptInit`, `C_DecryptInit`, `C_DigestInit`,
/// `C_SignInit` and `C_VerifyInit` "can be called with pMechanism set to NULL_PTR to
/// terminate an active ... operation". With none active there is nothing to end: `CKR_OK`,
/// as `C_SessionCancel` answers.
unsafe fn init_or_end(
    session: CK_SESSION_HANDLE,
    ptr: *const CK_MECHANISM,
    kind: CK_FLAGS,
    init: impl FnOnce(&Module, &Mechanism) -> Result<()>,
) -> Result<()> {
    let module = module()?;
    if ptr.is_null() {
        return module.cancel(session, kind);
    }
    init(&module, &mechanism(ptr)?)
}

ck_fn! {
    fn C_EncryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        init_or_end(hSession, pMechanism, CKF_ENCRYPT, |m, mech| m.cipher_init(hSession, mech, hKey, true))
    }

    fn C_Encrypt(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pEncryptedData: *mut CK_BYTE, pulEncryptedDataLen: *mut CK_ULONG) {
        let input = bytes(pData, ulDataLen)?;
        let out = output(pEncryptedData, pulEncryptedDataLen)?;
        set_len(pulEncryptedDataLen, module()?.cipher_once(hSession, true, input, out))
    }

    fn C_EncryptUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG, pEncryptedPart: *mut CK_BYTE, pulEncryptedPartLen: *mut CK_ULONG) {
        let input = bytes(pPart, ulPartLen)?;
        let out = output(pEncryptedPart, pulEncryptedPartLen)?;
        set_len(pulEncryptedPartLen, module()?.cipher_update(hSession, true, input, out))
    }

    fn C_EncryptFinal(hSession: CK_SESSION_HANDLE, pLastEncryptedPart: *mut CK_BYTE, pulLastEncryptedPartLen: *mut CK_ULONG) {
        let out = output(pLastEncryptedPart, pulLastEncryptedPartLen)?;
        set_len(pulLastEncryptedPartLen, module()?.cipher_final(hSession, true, out))
    }

    fn C_DecryptInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        init_or_end(hSession, pMechanism, CKF_DECRYPT, |m, mech| m.cipher_init(hSession, mech, hKey, false))
    }

    fn C_Decrypt(hSession: CK_SESSION_HANDLE, pEncryptedData: *mut CK_BYTE, ulEncryptedDataLen: CK_ULONG, pData: *mut CK_BYTE, pulDataLen: *mut CK_ULONG) {
        let input = bytes(pEncryptedData, ulEncryptedDataLen)?;
        let out = output(pData, pulDataLen)?;
        set_len(pulDataLen, module()?.cipher_once(hSession, false, input, out))
    }

    fn C_DecryptUpdate(hSession: CK_SESSION_HANDLE, pEncryptedPart: *mut CK_BYTE, ulEncryptedPartLen: CK_ULONG, pPart: *mut CK_BYTE, pulPartLen: *mut CK_ULONG) {
        let input = bytes(pEncryptedPart, ulEncryptedPartLen)?;
        let out = output(pPart, pulPartLen)?;
        set_len(pulPartLen, module()?.cipher_update(hSession, false, input, out))
    }

    fn C_DecryptFinal(hSession: CK_SESSION_HANDLE, pLastPart: *mut CK_BYTE, pulLastPartLen: *mut CK_ULONG) {
        let out = output(pLastPart, pulLastPartLen)?;
        set_len(pulLastPartLen, module()?.cipher_final(hSession, false, out))
    }

    fn C_DigestInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM) {
        init_or_end(hSession, pMechanism, CKF_DIGEST, |m, mech| m.digest_init(hSession, mech))
    }

    fn C_Digest(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pDigest: *mut CK_BYTE, pulDigestLen: *mut CK_ULONG) {
        let input = bytes(pData, ulDataLen)?;
        let out = output(pDigest, pulDigestLen)?;
        set_len(pulDigestLen, module()?.digest_once(hSession, input, out))
    }

    fn C_DigestUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        module()?.digest_update(hSession, bytes(pPart, ulPartLen)?)
    }

    fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) {
        module()?.digest_key(hSession, hKey)
    }

    fn C_DigestFinal(hSession: CK_SESSION_HANDLE, pDigest: *mut CK_BYTE, pulDigestLen: *mut CK_ULONG) {
        let out = output(pDigest, pulDigestLen)?;
        set_len(pulDigestLen, module()?.digest_final(hSession, out))
    }

    fn C_SignInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        init_or_end(hSession, pMechanism, CKF_SIGN, |m, mech| m.sign_init(hSession, mech, hKey, true))
    }

    fn C_Sign(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG) {
        let input = bytes(pData, ulDataLen)?;
        let out = output(pSignature, pulSignatureLen)?;
        set_len(pulSignatureLen, module()?.sign_once(hSession, input, out))
    }

    fn C_SignUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        module()?.sign_update(hSession, true, bytes(pPart, ulPartLen)?)
    }

    fn C_SignFinal(hSession: CK_SESSION_HANDLE, pSignature: *mut CK_BYTE, pulSignatureLen: *mut CK_ULONG) {
        let out = output(pSignature, pulSignatureLen)?;
        set_len(pulSignatureLen, module()?.sign_final(hSession, out))
    }

    fn C_VerifyInit(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, hKey: CK_OBJECT_HANDLE) {
        init_or_end(hSession, pMechanism, CKF_VERIFY, |m, mech| m.sign_init(hSession, mech, hKey, false))
    }

    fn C_Verify(hSession: CK_SESSION_HANDLE, pData: *mut CK_BYTE, ulDataLen: CK_ULONG, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG) {
        let data = bytes(pData, ulDataLen)?;
        module()?.verify(hSession, Some(data), bytes(pSignature, ulSignatureLen)?)
    }

    fn C_VerifyUpdate(hSession: CK_SESSION_HANDLE, pPart: *mut CK_BYTE, ulPartLen: CK_ULONG) {
        module()?.sign_update(hSession, false, bytes(pPart, ulPartLen)?)
    }

    fn C_VerifyFinal(hSession: CK_SESSION_HANDLE, pSignature: *mut CK_BYTE, ulSignatureLen: CK_ULONG) {
        module()?.verify(hSession, None, bytes(pSignature, ulSignatureLen)?)
    }

    fn C_GenerateKey(hSession: CK_SESSION_HANDLE, pMechanism: *mut CK_MECHANISM, pTemplate: *mut CK_ATTRIBUTE, ulCount: CK_ULONG, phKey: *mut CK_OBJECT_HANDLE) {
        let target = out(phKey)?;
        let mechanism = mechanism(pMechanism)?;
        let template = template(pTemplate, ulCount)?;
        *target = module()?.generate_key(hSession, &mechanism, &template)?;
        Ok(())
    }

    fn C_GenerateKeyPair(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        pPublicKeyTemplate: *mut CK_ATTRIBUTE,
        ulPublicKeyAttributeCount: CK_ULONG,
        pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
        ulPrivateKeyAttributeCount: CK_ULONG,
        phPublicKey: *mut CK_OBJECT_HANDLE,
        phPrivateKey: *mut CK_OBJECT_HANDLE,
    ) {
        let public_target = out(phPublicKey)?;
        let private_target = out(phPrivateKey)?;
        let mechanism = mechanism(pMechanism)?;
        let public = template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?;
        let private = template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?;
        let (public_key, private_key) = module()?.generate_key_pair(hSession, &mechanism, &public, &private)?;
        *public_target = public_key;
        *private_target = private_key;
        Ok(())
    }

    fn C_DeriveKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hBaseKey: CK_OBJECT_HANDLE,
        pTemplate: *mut CK_ATTRIBUTE,
        ulAttributeCount: CK_ULONG,
        phKey: *mut CK_OBJECT_HANDLE,
    ) {
        let target = out(phKey)?;
        let mechanism = mechanism(pMechanism)?;
        let template = template(pTemplate, ulAttributeCount)?;
        *target = module()?.derive_key(hSession, &mechanism, hBaseKey, &template)?;
        Ok(())
    }

    fn C_WrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hWrappingKey: CK_OBJECT_HANDLE,
        hKey: CK_OBJECT_HANDLE,
        pWrappedKey: *mut CK_BYTE,
        pulWrappedKeyLen: *mut CK_ULONG,
    ) {
        let mechanism = mechanism(pMechanism)?;
        let out = output(pWrappedKey, pulWrappedKeyLen)?;
        set_len(pulWrappedKeyLen, module()?.wrap_key(hSession, &mechanism, hWrappingKey, hKey, out))
    }

    fn C_UnwrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: *mut CK_MECHANISM,
        hUnwrappingKey: CK_OBJECT_HANDLE,
        pWrappedKey: *mut CK_BYTE,
        ulWrappedKeyLen: CK_ULONG,
        pTemplate: *mut CK_ATTRIBUTE,
        ulAttributeCount: CK_ULONG,
        phKey: *mut CK_OBJECT_HANDLE,
    ) {
        let target = out(phKey)?;
        let mechanism = mechanism(pMechanism)?;
        let wrapped = bytes(pWrappedKey, ulWrappedKeyLen)?;
        let template = template(pTemplate, ulAttributeCount)?;
        *target = module()?.unwrap_key(hSession, &mechanism, hUnwrappingKey, wrapped, &template)?;
        Ok(())
    }

    fn C_SeedRandom(hSession: CK_SESSION_HANDLE, pSeed: *mut CK_BYTE, ulSeedLen: CK_ULONG) {
        bytes(pSeed, ulSeedLen)?;
        module()?.seed_random(hSession)
    }

    fn C_GenerateRandom(hSession: CK_SESSION_HANDLE, RandomData: *mut CK_BYTE, ulRandomLen: CK_ULONG) {
        if RandomData.is_null() && ulRandomLen > 0 {
            return Err(crate::error::rv(CKR_ARGUMENTS_BAD));
        }
        let buf: &mut [u8] = if ulRandomLen == 0 { &mut [] } else { std::slice::from_raw_parts_mut(RandomData, ulRandomLen as usize) };
        module()?.generate_random(hSession, buf)
    }

    fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) {
        module()?.cancel(hSession, flags)
    }
}

"""Envelope encryption through a keyfront cloud slot (AWS KMS or Vault Transit),
with python-pkcs11: the Python example of docs/backends.md, run by
conformance/cloud for both slots in the venv conformance/python/venv makes.

    python envelope.py MODULE.so SLOT_ID PIN KEY_LABEL

The same flow as conformance/c/envelope.c: find (or make in the service) the
service AES key KEY_LABEL, have the service wrap a local AES-256 data key, encrypt
locally with AES-GCM; then unwrap the blob into a local key and decrypt.  Prints
the blob's length and "ok"; a failed call raises python-pkcs11's exception (its
class is the CKR_ name) and the exit status is 1.
"""

import sys

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.mechanisms import GCMParams

CKM_VENDOR_DEFINED = 0x80000000
CKM_KEYFRONT_KMS_WRAP = CKM_VENDOR_DEFINED | 0x4B460001  # include/keyfront.h


def vendor_mechanism(value, name):
    """A Mechanism for a value the enum does not list: python-pkcs11 (0.10) takes
    only members of its Mechanism enum ("`mechanism` must be a Mechanism")."""
    mechanism = int.__new__(Mechanism, value)
    mechanism._name_, mechanism._value_ = name, value
    return mechanism


KMS_WRAP = vendor_mechanism(CKM_KEYFRONT_KMS_WRAP, "KEYFRONT_KMS_WRAP")


def service_key(session, label):
    """The service AES key labelled `label`: found, or made in the service."""
    try:
        key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=label)
        print(f"service key {label}: found")
    except pkcs11.NoSuchKey:
        # store=True (CKA_TOKEN): made in the service, never leaves it.
        key = session.generate_key(
            KeyType.AES, 256, label=label, store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
            | MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        )
        print(f"service key {label}: made in the service")
    return key


def main(module, slot_id, pin, label):
    lib = pkcs11.lib(module)
    slot = next(s for s in lib.get_slots() if s.slot_id == int(slot_id))
    with slot.get_token().open(user_pin=pin, rw=True) as session:
        kek = service_key(session, label)

        # Writer: a local data key (session object), wrapped by the service.
        data_key = session.generate_key(
            KeyType.AES, 256, store=False, capabilities=MechanismFlag.ENCRYPT,
            template={Attribute.EXTRACTABLE: True},
        )
        blob = kek.wrap_key(data_key, mechanism=KMS_WRAP)
        message = b"a message of any length, encrypted locally"
        nonce = session.generate_random(96)
        gcm = GCMParams(nonce, aad=b"envelope example v1")
        sealed = data_key.encrypt(message, mechanism=Mechanism.AES_GCM, mechanism_param=gcm)
        data_key.destroy()
        # Stored: blob, nonce, sealed.  No key.

        # Reader: the service unwraps the blob into a local key.
        reader_key = kek.unwrap_key(
            ObjectClass.SECRET_KEY, KeyType.AES, blob, mechanism=KMS_WRAP,
            store=False, capabilities=MechanismFlag.DECRYPT,
        )
        opened = reader_key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=gcm)
        reader_key.destroy()

    if opened != message:
        sys.exit("FAIL: the decrypted message differs")
    # AWS: CiphertextBlob bytes; Vault: the ASCII string vault:vN:BASE64.
    shown = f" ({blob[:blob.index(b':', 6) + 1].decode()}...)" if blob.startswith(b"vault:") else ""
    print(f"blob: {len(blob)} bytes{shown}")
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(f"usage: {sys.argv[0]} MODULE.so SLOT_ID PIN KEY_LABEL")
    main(*sys.argv[1:])

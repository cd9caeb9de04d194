/*
 * keyfront.h - vendor-defined PKCS#11 constants of keyfront.
 *
 * Include it after the standard PKCS#11 3.0 header (it uses
 * CKM_VENDOR_DEFINED).
 *
 * The module is configured through the environment of the process that
 * loads it (see docs/configuration.md):
 *
 *   KEYFRONT_CONFIG    path of a TOML file listing the slots; unset: one soft
 *                      token, slot id 0
 *   KEYFRONT_DATA_DIR  directory of that default token's soft.db; default
 *                      $XDG_DATA_HOME/keyfront, else ~/.local/share/keyfront
 *   KEYFRONT_LOG       log filter (tracing env-filter syntax); default "warn"
 *   KEYFRONT_LOG_FILE  append the log to this file instead of stderr
 */
#ifndef KEYFRONT_H
#define KEYFRONT_H

/*
 * CKM_KEYFRONT_KMS_WRAP: encryption with a secret key that stays in a key
 * service (an AWS KMS symmetric key, a Vault Transit aes256-gcm96 key) of a
 * cloud slot.  No parameter.  C_WrapKey of a local AES key returns the
 * service's ciphertext blob (envelope encryption); C_UnwrapKey of such a blob
 * gives a local AES key that then encrypts locally (CKM_AES_GCM).
 * C_Encrypt/C_Decrypt of up to 4096 bytes of data work the same way.
 */
#define CKM_KEYFRONT_KMS_WRAP (CKM_VENDOR_DEFINED | 0x4b460001UL)

#endif /* KEYFRONT_H */

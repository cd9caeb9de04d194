/*
 * Envelope encryption through a keyfront cloud slot (AWS KMS or Vault Transit),
 * the example of docs/backends.md ("Envelope encryption with a cloud slot"); run
 * by conformance/cloud for both slots.
 *
 *   envelope MODULE.so SLOT_ID PIN KEY_LABEL
 *
 * The writer finds the service AES key KEY_LABEL (or makes it in the service),
 * makes a local AES-256 data key, has the service wrap it (one request), encrypts
 * a message locally with AES-GCM under the data key, and keeps only the wrapped
 * blob, the nonce and the ciphertext.  The reader has the service unwrap the blob
 * (one request) into a local key and decrypts.  Prints the blob's length and "ok";
 * on a failure, the call and its CK_RV by name, and exits 1.
 *
 * Build: cc -Wall -I/usr/include/p11-kit-1 -Iinclude envelope.c -ldl
 * (p11-kit's PKCS#11 header, package libp11-kit-dev; any PKCS#11 header with
 * the standard names works, with keyfront's include/keyfront.h after it).
 */
#define CRYPTOKI_COMPAT /* p11-kit's header: the standard CK_ names */
#include <p11-kit/pkcs11.h>
#include <keyfront.h> /* CKM_KEYFRONT_KMS_WRAP */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static CK_FUNCTION_LIST *p11;

static const char *rv_name(CK_RV rv)
{
	static const struct { CK_RV rv; const char *name; } names[] = {
		{CKR_OK, "CKR_OK"},
		{CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
		{CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
		{CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
		{CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
		{CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
		{CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
		{CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
		{CKR_DATA_INVALID, "CKR_DATA_INVALID"},
		{CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
		{CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
		{CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
		{CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
		{CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
		{CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
		{CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
		{CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
		{CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
		{CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
		{CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE"},
		{CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"},
		{CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
		{CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
		{CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
		{CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
		{CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
		{CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
		{CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
		{CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
		{CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
		{CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
		{CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
		{CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
		{CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
		{CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID"},
		{CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE"},
		{CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID"},
		{CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT"},
		{CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
		{CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].rv == rv)
			return names[i].name;
	return "(another CKR_ value)";
}

/* Every call goes through CK: on anything but CKR_OK, say which and stop. */
#define CK(call)                                                              \
	do {                                                                  \
		CK_RV rv_ = (call);                                           \
		if (rv_ != CKR_OK) {                                          \
			fprintf(stderr, "FAIL: %s: %s (0x%lx)\n", #call,      \
				rv_name(rv_), (unsigned long)rv_);            \
			exit(1);                                              \
		}                                                             \
	} while (0)

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_OBJECT_CLASS secret_key = CKO_SECRET_KEY;
static CK_KEY_TYPE aes = CKK_AES;
static CK_ULONG aes256 = 32;

/* The service key labelled `label`: found, or made in the service. */
static CK_OBJECT_HANDLE service_key(CK_SESSION_HANDLE s, const char *label)
{
	CK_ATTRIBUTE find[] = {
		{CKA_CLASS, &secret_key, sizeof secret_key},
		{CKA_KEY_TYPE, &aes, sizeof aes},
		{CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_OBJECT_HANDLE key;
	CK_ULONG count;
	CK(p11->C_FindObjectsInit(s, find, 3));
	CK(p11->C_FindObjects(s, &key, 1, &count));
	CK(p11->C_FindObjectsFinal(s));
	if (count == 1) {
		printf("service key %s: found\n", label);
		return key;
	}
	/* CKA_TOKEN true: the key is made in the service (AWS: CreateKey + an alias;
	 * Vault: keys/LABEL of type aes256-gcm96) and never leaves it. */
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_ATTRIBUTE make[] = {
		{CKA_TOKEN, &yes, sizeof yes},
		{CKA_LABEL, (void *)label, strlen(label)},
		{CKA_VALUE_LEN, &aes256, sizeof aes256},
	};
	CK(p11->C_GenerateKey(s, &gen, make, 3, &key));
	printf("service key %s: made in the service\n", label);
	return key;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s MODULE.so SLOT_ID PIN KEY_LABEL\n", argv[0]);
		return 2;
	}
	CK_SLOT_ID slot = strtoul(argv[2], NULL, 10);
	const char *pin = argv[3], *label = argv[4];

	void *module = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!module) {
		fprintf(stderr, "FAIL: dlopen: %s\n", dlerror());
		return 2;
	}
	CK_C_GetFunctionList get_function_list = (CK_C_GetFunctionList)dlsym(module, "C_GetFunctionList");
	if (!get_function_list) {
		fprintf(stderr, "FAIL: no C_GetFunctionList in %s\n", argv[1]);
		return 2;
	}
	CK(get_function_list(&p11));
	CK(p11->C_Initialize(NULL));

	CK_SESSION_HANDLE s;
	CK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
	CK(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin)));
	CK_OBJECT_HANDLE kek = service_key(s, label);
	CK_MECHANISM kms_wrap = {CKM_KEYFRONT_KMS_WRAP, NULL, 0};

	/* ---- writer: a local data key, wrapped by the service; bulk data local */
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_ATTRIBUTE data_tmpl[] = {
		{CKA_CLASS, &secret_key, sizeof secret_key},
		{CKA_KEY_TYPE, &aes, sizeof aes},
		{CKA_VALUE_LEN, &aes256, sizeof aes256},
		{CKA_TOKEN, &no, sizeof no}, /* a session object, in keyfront's memory */
		{CKA_EXTRACTABLE, &yes, sizeof yes}, /* so that it can be wrapped */
		{CKA_ENCRYPT, &yes, sizeof yes},
	};
	CK_OBJECT_HANDLE data_key;
	CK(p11->C_GenerateKey(s, &gen, data_tmpl, 6, &data_key));

	/* One service request.  The buffer is big enough for the blob of a 32-byte key
	 * (AWS: a few hundred bytes at most; Vault: about 90): a length query first
	 * (NULL buffer) would cost a request of its own. */
	CK_BYTE blob[1024];
	CK_ULONG blob_len = sizeof blob;
	CK(p11->C_WrapKey(s, &kms_wrap, kek, data_key, blob, &blob_len));

	const char message[] = "a message of any length, encrypted locally";
	CK_BYTE aad[] = "envelope example v1"; /* authenticated, not encrypted */
	CK_BYTE nonce[12];
	CK(p11->C_GenerateRandom(s, nonce, sizeof nonce));
	CK_GCM_PARAMS gcm = {nonce, sizeof nonce, 8 * sizeof nonce, aad, sizeof aad - 1, 128};
	CK_MECHANISM aes_gcm = {CKM_AES_GCM, &gcm, sizeof gcm};
	CK_ULONG sealed_len = 0;
	CK(p11->C_EncryptInit(s, &aes_gcm, data_key));
	CK(p11->C_Encrypt(s, (CK_BYTE *)message, strlen(message), NULL, &sealed_len));
	CK_BYTE *sealed = malloc(sealed_len);
	CK(p11->C_Encrypt(s, (CK_BYTE *)message, strlen(message), sealed, &sealed_len));
	CK(p11->C_DestroyObject(s, data_key));
	/* What is stored: blob, nonce, sealed (ciphertext and tag).  No key. */

	/* ---- reader: the service unwraps the blob into a local key */
	CK_ATTRIBUTE unwrap_tmpl[] = {
		{CKA_CLASS, &secret_key, sizeof secret_key},
		{CKA_KEY_TYPE, &aes, sizeof aes},
		{CKA_TOKEN, &no, sizeof no},
		{CKA_DECRYPT, &yes, sizeof yes},
	};
	CK_OBJECT_HANDLE reader_key;
	CK(p11->C_UnwrapKey(s, &kms_wrap, kek, blob, blob_len, unwrap_tmpl, 4, &reader_key));
	CK_ULONG opened_len = 0;
	CK(p11->C_DecryptInit(s, &aes_gcm, reader_key));
	CK(p11->C_Decrypt(s, sealed, sealed_len, NULL, &opened_len));
	CK_BYTE *opened = malloc(opened_len);
	CK(p11->C_Decrypt(s, sealed, sealed_len, opened, &opened_len));
	CK(p11->C_DestroyObject(s, reader_key));

	if (opened_len != strlen(message) || memcmp(opened, message, opened_len) != 0) {
		fprintf(stderr, "FAIL: the decrypted message differs\n");
		return 1;
	}
	/* AWS: CiphertextBlob bytes; Vault: the ASCII string vault:vN:BASE64. */
	printf("blob: %lu bytes", (unsigned long)blob_len);
	if (blob_len > 6 && memcmp(blob, "vault:", 6) == 0) {
		const CK_BYTE *colon = memchr(blob + 6, ':', blob_len - 6);
		if (colon)
			printf(" (%.*s...)", (int)(colon + 1 - blob), (const char *)blob);
	}
	printf("\nciphertext: %lu bytes for a %zu-byte message\n", (unsigned long)sealed_len, strlen(message));

	CK(p11->C_Logout(s));
	CK(p11->C_CloseSession(s));
	CK(p11->C_Finalize(NULL));
	free(sealed);
	free(opened);
	puts("ok");
	return 0;
}

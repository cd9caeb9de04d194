/*
 * The few PKCS#11 3.0 types the conformance probes need, written from the
 * OASIS specification (Linux x86_64/aarch64 ABI: natural alignment, no
 * packing).  Only the head of CK_FUNCTION_LIST is declared: the probes never
 * go past C_GetSlotList.
 */
#ifndef KEYFRONT_CONFORMANCE_P11_MIN_H
#define KEYFRONT_CONFORMANCE_P11_MIN_H

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_FLAGS;
typedef unsigned char CK_BYTE;
typedef unsigned char CK_BBOOL;
typedef unsigned char CK_UTF8CHAR;

#define CKR_OK                          0x00UL
#define CKR_ARGUMENTS_BAD               0x07UL
#define CKR_FUNCTION_NOT_SUPPORTED      0x54UL
#define CKR_CRYPTOKI_ALREADY_INITIALIZED 0x191UL

/* Returned by every function of the interposer library. */
#define INTERPOSER_RV                   0x12345UL

typedef struct CK_VERSION {
	CK_BYTE major;
	CK_BYTE minor;
} CK_VERSION;

typedef struct CK_INFO {
	CK_VERSION cryptokiVersion;
	CK_UTF8CHAR manufacturerID[32];
	CK_FLAGS flags;
	CK_UTF8CHAR libraryDescription[32];
	CK_VERSION libraryVersion;
} CK_INFO;

/* Head of CK_FUNCTION_LIST / CK_FUNCTION_LIST_3_0 (identical prefix). */
typedef struct CK_FUNCTION_LIST_HEAD {
	CK_VERSION version;
	CK_RV (*C_Initialize)(void *pInitArgs);
	CK_RV (*C_Finalize)(void *pReserved);
	CK_RV (*C_GetInfo)(CK_INFO *pInfo);
	CK_RV (*C_GetFunctionList)(struct CK_FUNCTION_LIST_HEAD **ppList);
	CK_RV (*C_GetSlotList)(CK_BBOOL tokenPresent, CK_ULONG *pSlotList,
			       CK_ULONG *pulCount);
} CK_FUNCTION_LIST_HEAD;

typedef struct CK_INTERFACE {
	CK_UTF8CHAR *pInterfaceName;
	void *pFunctionList;
	CK_FLAGS flags;
} CK_INTERFACE;

typedef CK_RV (*CK_C_GetFunctionList)(CK_FUNCTION_LIST_HEAD **);
typedef CK_RV (*CK_C_GetInterfaceList)(CK_INTERFACE *, CK_ULONG *);
typedef CK_RV (*CK_C_GetInterface)(CK_UTF8CHAR *, CK_VERSION *,
				   CK_INTERFACE **, CK_FLAGS);

#endif

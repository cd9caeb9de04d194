/*
 * A stand-in for "another PKCS#11 library already loaded RTLD_GLOBAL in the
 * process" (p11-kit, a second provider, an application that links one).
 * It defines the same C_* names as a real module.  If libkeyfront.so is not
 * linked with -Bsymbolic (or equivalent), the dynamic linker binds
 * keyfront's own references to these names (for example the pointers in its
 * CK_FUNCTION_LIST) to the functions below instead of keyfront's.
 *
 * Every function here returns INTERPOSER_RV so a caller can tell it reached
 * the wrong library.
 */
#include "p11_min.h"
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT CK_RV C_Initialize(void *args) { (void)args; return INTERPOSER_RV; }
EXPORT CK_RV C_Finalize(void *args) { (void)args; return INTERPOSER_RV; }
EXPORT CK_RV C_GetInfo(CK_INFO *info)
{
	if (info) {
		memset(info, ' ', sizeof *info);
		memcpy(info->manufacturerID, "interposer", 10);
	}
	return INTERPOSER_RV;
}
EXPORT CK_RV C_GetFunctionList(void **list) { (void)list; return INTERPOSER_RV; }
EXPORT CK_RV C_GetSlotList(CK_BBOOL present, CK_ULONG *slots, CK_ULONG *count)
{
	(void)present; (void)slots; (void)count;
	return INTERPOSER_RV;
}
EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE *list, CK_ULONG *count)
{
	(void)list; (void)count;
	return INTERPOSER_RV;
}
EXPORT CK_RV C_GetInterface(CK_UTF8CHAR *name, CK_VERSION *version,
			    CK_INTERFACE **iface, CK_FLAGS flags)
{
	(void)name; (void)version; (void)iface; (void)flags;
	return INTERPOSER_RV;
}

/*
 * Loader-level probes of a PKCS#11 module, run by conformance/run.
 *
 *   probe symbolic INTERPOSER.so MODULE.so
 *       Loads INTERPOSER.so RTLD_GLOBAL first (it defines C_Initialize,
 *       C_GetFunctionList, ... returning 0x12345), then MODULE.so, and checks
 *       that the function list MODULE hands out calls MODULE's own code.
 *       That holds only if MODULE binds its own symbols (-Bsymbolic).
 *
 *   probe interface MODULE.so
 *       C_GetInterfaceList / C_GetInterface("PKCS 11", 3.0) / default
 *       interface, then C_Initialize, C_GetInfo, C_Finalize through it.
 *
 * Prints one line per step ("ok: ..." or "FAIL: ...") and exits 1 if any
 * step failed, 2 on usage or load errors.
 */
#include "p11_min.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void step(int good, const char *what, CK_RV rv)
{
	if (good)
		printf("ok: %s\n", what);
	else {
		printf("FAIL: %s (rv=0x%lx%s)\n", what, rv,
		       rv == INTERPOSER_RV ? ", reached the interposer" : "");
		failures++;
	}
}

static int manufacturer_is(const CK_INFO *info, const char *want)
{
	size_t n = strlen(want);
	return memcmp(info->manufacturerID, want, n) == 0 &&
	       (n == 32 || info->manufacturerID[n] == ' ');
}

static void print_info(const char *prefix, const CK_INFO *info)
{
	printf("%s cryptokiVersion=%u.%u manufacturerID='%.32s' "
	       "libraryDescription='%.32s' libraryVersion=%u.%u\n",
	       prefix, info->cryptokiVersion.major, info->cryptokiVersion.minor,
	       (const char *)info->manufacturerID,
	       (const char *)info->libraryDescription,
	       info->libraryVersion.major, info->libraryVersion.minor);
}

/* Initialize, GetInfo, Finalize through a function list. */
static void exercise(CK_FUNCTION_LIST_HEAD *list, const char *via)
{
	char what[256];
	CK_INFO info;
	CK_RV rv;

	rv = list->C_Initialize(NULL);
	snprintf(what, sizeof what, "%s: C_Initialize(NULL) == CKR_OK", via);
	step(rv == CKR_OK, what, rv);

	memset(&info, 0, sizeof info);
	rv = list->C_GetInfo(&info);
	snprintf(what, sizeof what, "%s: C_GetInfo == CKR_OK", via);
	step(rv == CKR_OK, what, rv);
	if (rv == CKR_OK || rv == INTERPOSER_RV) {
		print_info("   ", &info);
		snprintf(what, sizeof what,
			 "%s: C_GetInfo manufacturerID is \"keyfront\"", via);
		step(manufacturer_is(&info, "keyfront"), what, rv);
	}

	rv = list->C_Finalize(NULL);
	snprintf(what, sizeof what, "%s: C_Finalize(NULL) == CKR_OK", via);
	step(rv == CKR_OK, what, rv);
}

static void *load(const char *path, int flags)
{
	void *h = dlopen(path, flags);
	if (!h) {
		fprintf(stderr, "dlopen(%s): %s\n", path, dlerror());
		exit(2);
	}
	return h;
}

static int probe_symbolic(const char *interposer, const char *module)
{
	void *ih, *mh, *sym;
	CK_C_GetFunctionList gfl;
	CK_C_GetInterface gi;
	CK_FUNCTION_LIST_HEAD *list = NULL, *again = NULL;
	CK_RV rv;

	ih = load(interposer, RTLD_NOW | RTLD_GLOBAL);
	sym = dlsym(RTLD_DEFAULT, "C_Initialize");
	if (sym != dlsym(ih, "C_Initialize")) {
		fprintf(stderr, "harness: interposer's C_Initialize is not the "
				"global definition\n");
		return 2;
	}
	printf("ok: interposer loaded RTLD_GLOBAL and owns the global C_* names\n");

	mh = load(module, RTLD_NOW | RTLD_LOCAL);
	gfl = (CK_C_GetFunctionList)dlsym(mh, "C_GetFunctionList");
	if (!gfl) {
		step(0, "module exports C_GetFunctionList", 0);
		return 1;
	}
	step((void *)gfl != dlsym(ih, "C_GetFunctionList"),
	     "dlsym(module, \"C_GetFunctionList\") is the module's own", 0);

	rv = gfl(&list);
	step(rv == CKR_OK && list != NULL,
	     "module's C_GetFunctionList == CKR_OK", rv);
	if (rv != CKR_OK || list == NULL)
		return 1;
	printf("   function list version %u.%u\n", list->version.major,
	       list->version.minor);
	step((void *)list->C_Initialize != dlsym(ih, "C_Initialize"),
	     "list->C_Initialize does not point into the interposer", 0);
	step((void *)list->C_GetInfo != dlsym(ih, "C_GetInfo"),
	     "list->C_GetInfo does not point into the interposer", 0);

	rv = list->C_GetFunctionList(&again);
	step(rv == CKR_OK && again != NULL,
	     "list->C_GetFunctionList == CKR_OK", rv);

	exercise(list, "C_GetFunctionList list");

	gi = (CK_C_GetInterface)dlsym(mh, "C_GetInterface");
	if (!gi) {
		step(0, "module exports C_GetInterface", 0);
	} else {
		CK_VERSION v30 = { 3, 0 };
		CK_INTERFACE *iface = NULL;

		step((void *)gi != dlsym(ih, "C_GetInterface"),
		     "dlsym(module, \"C_GetInterface\") is the module's own", 0);
		rv = gi((CK_UTF8CHAR *)"PKCS 11", &v30, &iface, 0);
		step(rv == CKR_OK && iface && iface->pFunctionList,
		     "C_GetInterface(\"PKCS 11\", 3.0) == CKR_OK", rv);
		if (rv == CKR_OK && iface && iface->pFunctionList)
			exercise((CK_FUNCTION_LIST_HEAD *)iface->pFunctionList,
				 "C_GetInterface 3.0 list");
	}

	dlclose(mh);
	dlclose(ih);
	return failures ? 1 : 0;
}

static int probe_interface(const char *module)
{
	void *mh = load(module, RTLD_NOW | RTLD_LOCAL);
	CK_C_GetInterfaceList gil =
		(CK_C_GetInterfaceList)dlsym(mh, "C_GetInterfaceList");
	CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(mh, "C_GetInterface");
	CK_INTERFACE *iface = NULL;
	CK_VERSION v30 = { 3, 0 }, v32 = { 3, 2 }, v299 = { 2, 99 };
	CK_ULONG n = 0, i;
	CK_RV rv;

	step(gil != NULL, "module exports C_GetInterfaceList", 0);
	step(gi != NULL, "module exports C_GetInterface", 0);
	if (!gi)
		return 1;

	if (gil) {
		rv = gil(NULL, &n);
		step(rv == CKR_OK && n >= 1,
		     "C_GetInterfaceList(NULL, &n) == CKR_OK, n >= 1", rv);
		if (rv == CKR_OK && n >= 1 && n < 64) {
			CK_INTERFACE *all = calloc(n, sizeof *all);
			int has30 = 0;
			rv = gil(all, &n);
			step(rv == CKR_OK, "C_GetInterfaceList(list, &n) == CKR_OK",
			     rv);
			for (i = 0; rv == CKR_OK && i < n; i++) {
				CK_VERSION *fv = (CK_VERSION *)all[i].pFunctionList;
				printf("   interface '%s' version %u.%u flags 0x%lx\n",
				       all[i].pInterfaceName ?
					       (char *)all[i].pInterfaceName : "(null)",
				       fv ? fv->major : 0, fv ? fv->minor : 0,
				       all[i].flags);
				if (all[i].pInterfaceName && fv &&
				    strcmp((char *)all[i].pInterfaceName, "PKCS 11") == 0 &&
				    fv->major == 3 && fv->minor == 0)
					has30 = 1;
			}
			step(has30, "interface list contains \"PKCS 11\" 3.0", 0);
			free(all);
		}
	}

	rv = gi((CK_UTF8CHAR *)"PKCS 11", &v30, &iface, 0);
	step(rv == CKR_OK && iface && iface->pFunctionList,
	     "C_GetInterface(\"PKCS 11\", 3.0) == CKR_OK", rv);
	if (rv == CKR_OK && iface && iface->pFunctionList) {
		CK_FUNCTION_LIST_HEAD *l = iface->pFunctionList;
		step(l->version.major == 3 && l->version.minor == 0,
		     "its function list has version 3.0", 0);
		step(iface->pInterfaceName &&
			     strcmp((char *)iface->pInterfaceName, "PKCS 11") == 0,
		     "its pInterfaceName is \"PKCS 11\"", 0);
		exercise(l, "C_GetInterface 3.0 list");
	}

	/* pkcs11-tool (OpenSC 0.23) asks for ("PKCS 11", NULL). */
	iface = NULL;
	rv = gi((CK_UTF8CHAR *)"PKCS 11", NULL, &iface, 0);
	step(rv == CKR_OK && iface && iface->pFunctionList,
	     "C_GetInterface(\"PKCS 11\", NULL) == CKR_OK", rv);

	/* pkcs11-provider falls back to (NULL, NULL). */
	iface = NULL;
	rv = gi(NULL, NULL, &iface, 0);
	step(rv == CKR_OK && iface && iface->pFunctionList,
	     "C_GetInterface(NULL, NULL) == CKR_OK", rv);
	if (rv == CKR_OK && iface && iface->pFunctionList) {
		CK_VERSION *fv = iface->pFunctionList;
		printf("   default interface version %u.%u\n", fv->major, fv->minor);
		/* keyfront's default is its newest interface. */
		step(fv->major == 3 && fv->minor == 0,
		     "the default interface is version 3.0", 0);
	}

	/* A version the module does not offer must not yield another one. */
	iface = NULL;
	rv = gi((CK_UTF8CHAR *)"PKCS 11", &v32, &iface, 0);
	if (rv == CKR_OK && iface && iface->pFunctionList) {
		CK_VERSION *fv = iface->pFunctionList;
		step(fv->major == 3 && fv->minor == 2,
		     "C_GetInterface(\"PKCS 11\", 3.2) returns a 3.2 list or fails",
		     rv);
	} else
		step(rv != CKR_OK,
		     "C_GetInterface(\"PKCS 11\", 3.2) returns a 3.2 list or fails",
		     rv);
	iface = NULL;
	rv = gi((CK_UTF8CHAR *)"PKCS 11", &v299, &iface, 0);
	step(rv != CKR_OK, "C_GetInterface(\"PKCS 11\", 2.99) fails", rv);
	iface = NULL;
	rv = gi((CK_UTF8CHAR *)"No Such Interface", NULL, &iface, 0);
	step(rv != CKR_OK, "C_GetInterface(\"No Such Interface\") fails", rv);
	rv = gi((CK_UTF8CHAR *)"PKCS 11", &v30, NULL, 0);
	step(rv == CKR_ARGUMENTS_BAD,
	     "C_GetInterface(..., NULL) == CKR_ARGUMENTS_BAD", rv);

	dlclose(mh);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "symbolic") == 0)
		return probe_symbolic(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "interface") == 0)
		return probe_interface(argv[2]);
	fprintf(stderr, "usage: %s symbolic INTERPOSER.so MODULE.so\n"
			"       %s interface MODULE.so\n", argv[0], argv[0]);
	return 2;
}

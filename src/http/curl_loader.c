/* curl_loader: libcurl through dlopen on first need; see curl_loader.h. */
#include "http/curl_loader.h"

#include <dlfcn.h>
#include <stdio.h>

struct curl_api curl_api;

int
curl_loader_load(const char *soname, char *err, size_t errlen)
{
	struct curl_api api;
	void *lib;
	void *sym;

	if (curl_loader_loaded())
		return 0;
	lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		snprintf(err, errlen, "cannot load %s (Debian package %s): %s", soname,
			 CURL_LOADER_PACKAGE, dlerror());
		return -1;
	}
	/* dlsym gives an object pointer; POSIX guarantees it converts to a function's */
#define CURL_LOADER_RESOLVE(name)                                                                  \
	if ((sym = dlsym(lib, "curl_" #name)) == NULL) {                                           \
		snprintf(err, errlen, "%s has no curl_" #name " (Debian package %s, 7.88 or later)", \
			 soname, CURL_LOADER_PACKAGE);                                             \
		dlclose(lib);                                                                      \
		return -1;                                                                         \
	}                                                                                          \
	*(void **)&api.name = sym;
	CURL_LOADER_FUNCTIONS(CURL_LOADER_RESOLVE)
#undef CURL_LOADER_RESOLVE
	curl_api = api; /* the library stays loaded for the life of the process */
	return 0;
}

bool
curl_loader_loaded(void)
{
	return curl_api.global_init != NULL;
}

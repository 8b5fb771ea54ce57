/*
 * curl_loader: libcurl, loaded on first need instead of linked.  Portcullis
 * uses libcurl only for outbound HTTPS (ACME, OCSP, IdP metadata), and
 * Debian's libcurl4 brings some 25 libraries (GnuTLS, Kerberos, LDAP,
 * libssh2...) that cost about 6 MiB of resident memory even when unused; so
 * the binary does not name libcurl at all, and curl_loader_load() opens it
 * with dlopen when a configuration needs it (http/outbound.h).
 *
 * Include this header instead of <curl/curl.h>: it maps every libcurl
 * function the code calls (curl_easy_init, curl_easy_setopt...) to the
 * pointer resolved by curl_loader_load(), so call sites read as plain
 * libcurl.  The pointers have the exact types of curl.h's prototypes; only
 * curl's compile-time check of curl_easy_setopt / curl_multi_setopt /
 * curl_easy_getinfo arguments (typecheck-gcc.h, a macro around the function
 * name) cannot wrap a pointer and is off.  Calling a mapped function before
 * curl_loader_load() has succeeded is a NULL call.
 */
#ifndef PORTCULLIS_CURL_LOADER_H
#define PORTCULLIS_CURL_LOADER_H

#ifdef CURLINC_CURL_H
#error "include http/curl_loader.h instead of <curl/curl.h>"
#endif
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include <stdbool.h>
#include <stddef.h>

/* Debian's libcurl4 (the OpenSSL flavour, as libcurl4-openssl-dev builds for). */
#define CURL_LOADER_SONAME "libcurl.so.4"
#define CURL_LOADER_PACKAGE "libcurl4"

/* X(function name without "curl_"): every libcurl function the code calls. */
#define CURL_LOADER_FUNCTIONS(X)                                                                   \
	X(global_init) X(global_cleanup) X(free) X(slist_append) X(slist_free_all)                 \
	X(easy_init) X(easy_cleanup) X(easy_setopt) X(easy_getinfo) X(easy_perform)                \
	X(easy_strerror) X(easy_header)                                                            \
	X(multi_init) X(multi_cleanup) X(multi_setopt) X(multi_add_handle)                         \
	X(multi_remove_handle) X(multi_assign) X(multi_socket_action) X(multi_info_read)           \
	X(url) X(url_cleanup) X(url_set) X(url_get)

#define CURL_LOADER_MEMBER(name) __typeof__(curl_##name) *name;
struct curl_api {
	CURL_LOADER_FUNCTIONS(CURL_LOADER_MEMBER)
};
#undef CURL_LOADER_MEMBER

/* The resolved functions; all NULL until curl_loader_load() succeeds. */
extern struct curl_api curl_api;

/*
 * dlopen <soname> (CURL_LOADER_SONAME; another name only in tests) and
 * resolve every function of CURL_LOADER_FUNCTIONS into curl_api.  Does not
 * call curl_global_init.  Not thread-safe: the caller serialises (outbound.c
 * does).  Returns 0 (also when already loaded), or -1 with a reason naming
 * the library, the Debian package and dlerror() in <err>; curl_api is then
 * left untouched.
 */
int curl_loader_load(const char *soname, char *err, size_t errlen);

/* Whether curl_loader_load() has succeeded. */
bool curl_loader_loaded(void);

/* curl.h (without the type check) defines these three as pass-through macros */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (*curl_api.global_init)
#define curl_global_cleanup (*curl_api.global_cleanup)
#define curl_free (*curl_api.free)
#define curl_slist_append (*curl_api.slist_append)
#define curl_slist_free_all (*curl_api.slist_free_all)
#define curl_easy_init (*curl_api.easy_init)
#define curl_easy_cleanup (*curl_api.easy_cleanup)
#define curl_easy_setopt (*curl_api.easy_setopt)
#define curl_easy_getinfo (*curl_api.easy_getinfo)
#define curl_easy_perform (*curl_api.easy_perform)
#define curl_easy_strerror (*curl_api.easy_strerror)
#define curl_easy_header (*curl_api.easy_header)
#define curl_multi_init (*curl_api.multi_init)
#define curl_multi_cleanup (*curl_api.multi_cleanup)
#define curl_multi_setopt (*curl_api.multi_setopt)
#define curl_multi_add_handle (*curl_api.multi_add_handle)
#define curl_multi_remove_handle (*curl_api.multi_remove_handle)
#define curl_multi_assign (*curl_api.multi_assign)
#define curl_multi_socket_action (*curl_api.multi_socket_action)
#define curl_multi_info_read (*curl_api.multi_info_read)
#define curl_url (*curl_api.url)
#define curl_url_cleanup (*curl_api.url_cleanup)
#define curl_url_set (*curl_api.url_set)
#define curl_url_get (*curl_api.url_get)

#endif

/*
 * Unit tests for curl_loader: a library that cannot be opened, and one that
 * opens but is not libcurl, are refused with a reason naming the library and
 * the Debian package, leaving nothing resolved; Debian's libcurl.so.4 then
 * loads, every function resolves, and it works (curl_url parses a URL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/curl_loader.h"

static void
test_missing_library_is_refused(void **state)
{
	char err[512] = "";

	(void)state;
	assert_int_equal(curl_loader_load("libcurl-absent.so.4", err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot load libcurl-absent.so.4"));
	assert_non_null(strstr(err, "Debian package libcurl4"));
	assert_false(curl_loader_loaded());
	assert_null(curl_api.easy_init);
}

static void
test_other_library_is_refused(void **state)
{
	char err[512] = "";

	(void)state;
	/* opens (libz is linked already), but has none of libcurl's functions */
	assert_int_equal(curl_loader_load("libz.so.1", err, sizeof err), -1);
	assert_non_null(strstr(err, "libz.so.1 has no curl_global_init"));
	assert_false(curl_loader_loaded());
	assert_null(curl_api.global_init);
}

static void
test_libcurl_loads_and_works(void **state)
{
	char err[512] = "";
	CURLU *u;
	char *host = NULL;

	(void)state;
	assert_int_equal(curl_loader_load(CURL_LOADER_SONAME, err, sizeof err), 0);
	assert_true(curl_loader_loaded());
	assert_int_equal(curl_loader_load(CURL_LOADER_SONAME, err, sizeof err), 0); /* again: kept */
	u = curl_url();
	assert_non_null(u);
	assert_int_equal(curl_url_set(u, CURLUPART_URL, "https://idp.example.com:8443/md", 0),
			 CURLUE_OK);
	assert_int_equal(curl_url_get(u, CURLUPART_HOST, &host, 0), CURLUE_OK);
	assert_string_equal(host, "idp.example.com");
	curl_free(host);
	curl_url_cleanup(u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_library_is_refused),
		cmocka_unit_test(test_other_library_is_refused),
		cmocka_unit_test(test_libcurl_loads_and_works),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

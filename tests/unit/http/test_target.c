/* Unit tests for target.c: request-target forms (RFC 9112 3.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/target.h"

static void
test_origin_and_asterisk(void **state)
{
	struct target_parts p;

	(void)state;
	assert_int_equal(target_split("/a/b?c=d", &p), TARGET_OK);
	assert_int_equal(p.form, TARGET_ORIGIN);
	assert_string_equal(p.rest, "/a/b?c=d");
	assert_int_equal(target_split("*", &p), TARGET_OK);
	assert_int_equal(p.form, TARGET_ASTERISK);
	assert_int_equal(target_split("**", &p), TARGET_OK);
	assert_int_equal(p.form, TARGET_OTHER);
	assert_int_equal(target_split("example.com:443", &p), TARGET_OK); /* authority-form */
	assert_int_equal(p.form, TARGET_OTHER);
	assert_int_equal(target_split("", &p), TARGET_OK);
	assert_int_equal(p.form, TARGET_OTHER);
	assert_int_equal(target_split("e/x", &p), TARGET_OK);
	assert_int_equal(p.form, TARGET_OTHER);
}

static void
test_absolute(void **state)
{
	struct target_parts p;

	(void)state;
	assert_int_equal(target_split("http://Example.COM:8080/p/q?x=1", &p), TARGET_OK);
	assert_int_equal(p.form, TARGET_ABSOLUTE);
	assert_false(p.https);
	assert_int_equal(p.authority_len, strlen("Example.COM:8080"));
	assert_memory_equal(p.authority, "Example.COM:8080", p.authority_len);
	assert_string_equal(p.rest, "/p/q?x=1");

	assert_int_equal(target_split("HTTPS://[::1]:8443?x", &p), TARGET_OK);
	assert_true(p.https);
	assert_memory_equal(p.authority, "[::1]:8443", p.authority_len);
	assert_string_equal(p.rest, "?x");

	assert_int_equal(target_split("http://host", &p), TARGET_OK);
	assert_string_equal(p.rest, "");
	assert_int_equal(target_split("http://host#f", &p), TARGET_OK);
	assert_string_equal(p.rest, "#f"); /* the normalizer refuses the fragment */
}

static void
test_absolute_refused(void **state)
{
	struct target_parts p;

	(void)state;
	assert_int_equal(target_split("ftp://host/x", &p), TARGET_SCHEME);
	assert_int_equal(target_split("httpx://host/x", &p), TARGET_SCHEME);
	assert_int_equal(target_split("http://user:pw@host/x", &p), TARGET_USERINFO);
	assert_int_equal(target_split("http://@host/x", &p), TARGET_USERINFO);
	assert_int_equal(target_split("http:///x", &p), TARGET_NO_AUTHORITY);
	assert_int_equal(target_split("http://", &p), TARGET_NO_AUTHORITY);
	assert_int_equal(target_split("http:/x", &p), TARGET_NO_AUTHORITY);
	assert_int_equal(target_split("http:x", &p), TARGET_NO_AUTHORITY);
	/* "@" after the authority is part of the path. */
	assert_int_equal(target_split("http://host/a@b", &p), TARGET_OK);
	assert_string_equal(p.rest, "/a@b");
	assert_non_null(target_reason(TARGET_USERINFO));
}

static void
test_port(void **state)
{
	(void)state;
	assert_int_equal(target_port("host", 80), 80);
	assert_int_equal(target_port("host:", 443), 443);
	assert_int_equal(target_port("host:8080", 80), 8080);
	assert_int_equal(target_port("[::1]", 443), 443);
	assert_int_equal(target_port("[::1]:444", 443), 444);
	assert_int_equal(target_port("[::1]x", 443), -1);
	assert_int_equal(target_port("host:0", 80), -1);
	assert_int_equal(target_port("host:65536", 80), -1);
	assert_int_equal(target_port("host:99999999999999999999", 80), -1);
	assert_int_equal(target_port("host:8x", 80), -1);
	assert_int_equal(target_port("1.2.3.4:65535", 80), 65535);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_and_asterisk),
		cmocka_unit_test(test_absolute),
		cmocka_unit_test(test_absolute_refused),
		cmocka_unit_test(test_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for envsubst: ${NAME} and ${NAME:-default} expansion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/envsubst.h"

/* A fake environment: A=alpha, EMPTY="", NUM=42. */
static const char *
fake_getenv(const char *name)
{
	if (strcmp(name, "A") == 0)
		return "alpha";
	if (strcmp(name, "EMPTY") == 0)
		return "";
	if (strcmp(name, "NUM") == 0)
		return "42";
	if (strcmp(name, "DOLLAR") == 0)
		return "${A}";
	return NULL;
}

static void
expect_expansion(const char *in, const char *want)
{
	char err[256] = "untouched";
	char *out = envsubst_expand(in, fake_getenv, err, sizeof err);

	if (out == NULL)
		fail_msg("expanding \"%s\" failed: %s", in, err);
	assert_string_equal(out, want);
	free(out);
}

static void
expect_failure(const char *in, const char *words1, const char *words2)
{
	char err[256];
	char *out = envsubst_expand(in, fake_getenv, err, sizeof err);

	if (out != NULL)
		fail_msg("expanding \"%s\" gave \"%s\", expected an error", in, out);
	if (strstr(err, words1) == NULL || (words2 != NULL && strstr(err, words2) == NULL))
		fail_msg("error for \"%s\" is \"%s\"", in, err);
}

static void
test_literal_text(void **state)
{
	(void)state;
	expect_expansion("", "");
	expect_expansion("plain text", "plain text");
	expect_expansion("price: $5", "price: $5");
	expect_expansion("trailing $", "trailing $");
	expect_expansion("$$", "$");
	expect_expansion("$${A}", "${A}");
	expect_expansion("a$$$$b", "a$$b");
	expect_expansion("$A and $", "$A and $");
	expect_expansion("}{", "}{");
}

static void
test_variables(void **state)
{
	(void)state;
	expect_expansion("${A}", "alpha");
	expect_expansion("x${A}y", "xalphay");
	expect_expansion("${A}${NUM}", "alpha42");
	expect_expansion("${EMPTY}", "");
	expect_expansion("${NUM}MiB", "42MiB");
	/* Values are not expanded again. */
	expect_expansion("${DOLLAR}", "${A}");
}

static void
test_defaults(void **state)
{
	(void)state;
	expect_expansion("${UNSET:-fallback}", "fallback");
	expect_expansion("${UNSET:-}", "");
	expect_expansion("${EMPTY:-used when empty}", "used when empty");
	expect_expansion("${A:-ignored}", "alpha");
	expect_expansion("${HOST:-:80}", ":80");
	expect_expansion("${X:-web:8000} ${Y:-[::1]:9}", "web:8000 [::1]:9");
	expect_expansion("${X:-$5}", "$5");
}

static void
test_errors(void **state)
{
	(void)state;
	expect_failure("${UNSET}", "environment variable UNSET is not set", "${UNSET:-value}");
	expect_failure("a ${A} ${MISSING} b", "MISSING is not set", NULL);
	expect_failure("${A", "unterminated ${", NULL);
	expect_failure("${A:-oops", "unterminated ${", NULL);
	expect_failure("${}", "bad variable name", NULL);
	expect_failure("${1A}", "bad variable name", NULL);
	expect_failure("${A-x}", "unexpected \"-\"", "${A:-default}");
	expect_failure("${A B}", "unexpected \" \"", NULL);
	expect_failure("${A:-${B}}", "nested ${", NULL);
}

static void
test_null_getenv_means_unset(void **state)
{
	char err[128];
	char *out;

	(void)state;
	out = envsubst_expand("${A:-d}", NULL, err, sizeof err);
	assert_non_null(out);
	assert_string_equal(out, "d");
	free(out);
	assert_null(envsubst_expand("${A}", NULL, err, sizeof err));
	assert_non_null(strstr(err, "A is not set"));
}

static void
test_small_error_buffer(void **state)
{
	char err[8];

	(void)state;
	assert_null(envsubst_expand("${UNSET_VARIABLE}", fake_getenv, err, sizeof err));
	assert_int_equal(strlen(err), sizeof err - 1);
	assert_null(envsubst_expand("${UNSET_VARIABLE}", fake_getenv, NULL, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literal_text),
		cmocka_unit_test(test_variables),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_null_getenv_means_unset),
		cmocka_unit_test(test_small_error_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

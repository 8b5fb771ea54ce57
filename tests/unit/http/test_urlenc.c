/*
 * Unit tests for urlenc: percent-decoding (form and path flavours), every
 * malformed escape, NUL bytes, the encoder's reserved set, and form field
 * lookup (first occurrence, prefixes, empty and missing values).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "http/urlenc.h"

/* Decode the whole of <in>; compare with <want> (NULL: refused). */
static void
check_decode(const char *in, bool form, const char *want)
{
	char *got = urlenc_decode(in, strlen(in), form);

	if (want == NULL) {
		if (got != NULL)
			fail_msg("decode(\"%s\", form=%d): want refusal, got \"%s\"", in, form, got);
	} else {
		if (got == NULL)
			fail_msg("decode(\"%s\", form=%d): want \"%s\", got refusal", in, form, want);
		assert_string_equal(got, want);
	}
	free(got);
}

static void
test_decode_plain(void **state)
{
	(void)state;
	check_decode("", false, "");
	check_decode("abc", false, "abc");
	check_decode("%41%62%63", false, "Abc");
	check_decode("%2f%2F", false, "//");      /* either case of hex digit */
	check_decode("%C3%A9t%C3%A9", false, "\xc3\xa9t\xc3\xa9");
	check_decode("%25", false, "%");          /* an escaped "%" is not decoded twice */
	check_decode("%2541", false, "%41");
	check_decode("%ff", false, "\xff");
}

static void
test_decode_plus(void **state)
{
	(void)state;
	check_decode("a+b", true, "a b");
	check_decode("a+b", false, "a+b");        /* "+" is a space only in forms */
	check_decode("%2B", true, "+");
	check_decode("++", true, "  ");
}

static void
test_decode_malformed(void **state)
{
	(void)state;
	check_decode("%", false, NULL);
	check_decode("%", true, NULL);
	check_decode("%4", false, NULL);          /* truncated at the end */
	check_decode("ab%4", true, NULL);
	check_decode("%G1", false, NULL);
	check_decode("%1G", false, NULL);
	check_decode("%-1", false, NULL);
	check_decode("% 41", false, NULL);
	check_decode("%00", false, NULL);         /* a NUL byte */
	check_decode("a%00b", true, NULL);
	check_decode("%01", false, "\x01");       /* other control bytes are the caller's call */
}

static void
test_decode_length_bounds(void **state)
{
	char *got;

	(void)state;
	/* Only <len> bytes are read: an escape cut by the length is malformed. */
	got = urlenc_decode("%41%42", 4, false);
	assert_null(got);
	got = urlenc_decode("%41%42", 3, false);
	assert_non_null(got);
	assert_string_equal(got, "A");
	free(got);
	got = urlenc_decode("abc", 0, true);
	assert_non_null(got);
	assert_string_equal(got, "");
	free(got);
}

static void
check_encode(const char *in, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *got;

	assert_non_null(b);
	urlenc_encode(b, in);
	n = evbuffer_get_length(b);
	got = calloc(1, n + 1);
	assert_non_null(got);
	evbuffer_remove(b, got, n);
	assert_string_equal(got, want);
	free(got);
	evbuffer_free(b);
}

static void
test_encode(void **state)
{
	(void)state;
	check_encode("", "");
	check_encode("AZaz09-._~/", "AZaz09-._~/");
	check_encode("a b", "a%20b");
	check_encode("a+b", "a%2Bb");
	check_encode("?x=1&y=%", "%3Fx%3D1%26y%3D%25");
	check_encode("\r\n", "%0D%0A");
	check_encode("\xc3\xa9", "%C3%A9");      /* upper-case hex, byte by byte */
	check_encode("#;,\"'<>\\", "%23%3B%2C%22%27%3C%3E%5C");
}

static void
test_encode_round_trip(void **state)
{
	char in[256], *got;
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *enc;

	(void)state;
	for (int i = 1; i < 256; i++)
		in[i - 1] = (char)i;
	in[255] = '\0';
	assert_non_null(b);
	urlenc_encode(b, in);
	n = evbuffer_get_length(b);
	enc = calloc(1, n + 1);
	assert_non_null(enc);
	evbuffer_remove(b, enc, n);
	got = urlenc_decode(enc, n, true);
	assert_non_null(got);
	assert_int_equal(strlen(got), sizeof in - 1);
	assert_memory_equal(got, in, sizeof in);
	free(got);
	free(enc);
	evbuffer_free(b);
}

static void
check_form(const char *body, const char *name, const char *want)
{
	char *got = urlenc_form_value(body, strlen(body), name);

	if (want == NULL) {
		if (got != NULL)
			fail_msg("form(\"%s\", %s): want none, got \"%s\"", body, name, got);
	} else {
		if (got == NULL)
			fail_msg("form(\"%s\", %s): want \"%s\", got none", body, name, want);
		assert_string_equal(got, want);
	}
	free(got);
}

static void
test_form_value(void **state)
{
	(void)state;
	check_form("SAMLResponse=abc&RelayState=xyz", "SAMLResponse", "abc");
	check_form("SAMLResponse=abc&RelayState=xyz", "RelayState", "xyz");
	check_form("a=1&a=2", "a", "1");                  /* the first one wins */
	check_form("ab=1&a=2", "a", "2");                 /* a longer name is another field */
	check_form("b=1&a", "a", NULL);                   /* no "=" */
	check_form("a=&b=2", "a", "");                    /* empty value */
	check_form("&&a=x+y%21&", "a", "x y!");           /* empty fields, form decoding */
	check_form("a=%ZZ&a=ok", "a", NULL);              /* malformed first value: no fallback */
	check_form("a=1%00", "a", NULL);
	check_form("", "a", NULL);
	check_form("A=1", "a", NULL);                     /* names are case-sensitive */
	check_form("b=a=1", "a", NULL);                   /* "a=" inside a value is no field */
	check_form("x=1;a=2", "a", NULL);                 /* only "&" separates */
}

static void
test_form_value_length(void **state)
{
	const char body[] = "a=12345&b=2";
	char *got;

	(void)state;
	/* The body is not NUL-terminated where <len> ends. */
	got = urlenc_form_value(body, 4, "a");
	assert_non_null(got);
	assert_string_equal(got, "12");
	free(got);
	assert_null(urlenc_form_value(body, 7, "b"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_plain),
		cmocka_unit_test(test_decode_plus),
		cmocka_unit_test(test_decode_malformed),
		cmocka_unit_test(test_decode_length_bounds),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_round_trip),
		cmocka_unit_test(test_form_value),
		cmocka_unit_test(test_form_value_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

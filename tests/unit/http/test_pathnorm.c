/*
 * Unit tests for pathnorm: normalization results, every refusal class, the
 * known path-confusion attacks, buffer limits and large inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/pathnorm.h"

struct pn_case {
	const char *in;
	enum pathnorm_result res;
	const char *out;   /* expected path when res == PATHNORM_OK */
	const char *query; /* expected query (NULL: none) when res == PATHNORM_OK */
};

static const char *
pn_name(enum pathnorm_result r)
{
	switch (r) {
	case PATHNORM_OK: return "OK";
	case PATHNORM_NOT_ORIGIN_FORM: return "NOT_ORIGIN_FORM";
	case PATHNORM_FRAGMENT: return "FRAGMENT";
	case PATHNORM_BAD_ENCODING: return "BAD_ENCODING";
	case PATHNORM_ENCODED_SEPARATOR: return "ENCODED_SEPARATOR";
	case PATHNORM_CONTROL: return "CONTROL";
	case PATHNORM_BACKSLASH: return "BACKSLASH";
	case PATHNORM_RAW_NON_ASCII: return "RAW_NON_ASCII";
	case PATHNORM_ABOVE_ROOT: return "ABOVE_ROOT";
	case PATHNORM_TOO_LONG: return "TOO_LONG";
	}
	return "?";
}

/* Run a table of cases; also check that every accepted output is a fixed point. */
static void
pn_run(const struct pn_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct pn_case *c = &cases[i];
		char out[4096];
		char again[4096];
		const char *q = (const char *)1;
		const char *q2 = NULL;
		enum pathnorm_result r = pathnorm_normalize(c->in, out, sizeof(out), &q);

		if (r != c->res)
			fail_msg("case %zu \"%s\": got %s, want %s", i, c->in, pn_name(r),
				 pn_name(c->res));
		if (r != PATHNORM_OK) {
			if (q != NULL)
				fail_msg("case %zu \"%s\": query not NULL on failure", i, c->in);
			continue;
		}
		if (strcmp(out, c->out) != 0)
			fail_msg("case %zu \"%s\": got path \"%s\", want \"%s\"", i, c->in, out,
				 c->out);
		if (c->query == NULL) {
			if (q != NULL)
				fail_msg("case %zu \"%s\": got query \"%s\", want none", i, c->in, q);
		} else {
			if (q == NULL || strcmp(q, c->query) != 0)
				fail_msg("case %zu \"%s\": got query \"%s\", want \"%s\"", i, c->in,
					 q ? q : "(null)", c->query);
			/* The query points into the target, just past the first "?". */
			if (q != strchr(c->in, '?') + 1)
				fail_msg("case %zu \"%s\": query does not point into target", i,
					 c->in);
		}
		r = pathnorm_normalize(out, again, sizeof(again), &q2);
		if (r != PATHNORM_OK || strcmp(out, again) != 0)
			fail_msg("case %zu \"%s\": not idempotent: \"%s\" -> %s \"%s\"", i, c->in,
				 out, pn_name(r), again);
	}
}

static void
test_basic(void **state)
{
	static const struct pn_case cases[] = {
		{ "/", PATHNORM_OK, "/", NULL },
		{ "/e", PATHNORM_OK, "/e", NULL },
		{ "/e/", PATHNORM_OK, "/e/", NULL },
		{ "/E", PATHNORM_OK, "/E", NULL },
		{ "/e/x", PATHNORM_OK, "/e/x", NULL },
		{ "/events", PATHNORM_OK, "/events", NULL },
		{ "/api/projects/1/insights/", PATHNORM_OK, "/api/projects/1/insights/", NULL },
		{ "/.well-known/acme-challenge/abc_DEF-123", PATHNORM_OK,
		  "/.well-known/acme-challenge/abc_DEF-123", NULL },
		{ "/array/phc_abc/config.js", PATHNORM_OK, "/array/phc_abc/config.js", NULL },
		{ "/a:b@c!$&'()*+,;=-._~", PATHNORM_OK, "/a:b@c!$&'()*+,;=-._~", NULL },
		{ "/a;jsessionid=1/b", PATHNORM_OK, "/a;jsessionid=1/b", NULL },
		/* printable ASCII that browsers encode but curl sends raw: kept */
		{ "/{x}|^`\"<>[]", PATHNORM_OK, "/{x}|^`\"<>[]", NULL },
		/* names made of dots that are not dot segments */
		{ "/...", PATHNORM_OK, "/...", NULL },
		{ "/..../x", PATHNORM_OK, "/..../x", NULL },
		{ "/.a", PATHNORM_OK, "/.a", NULL },
		{ "/a.", PATHNORM_OK, "/a.", NULL },
		{ "/..a/b..", PATHNORM_OK, "/..a/b..", NULL },
		{ "/.a/..", PATHNORM_OK, "/", NULL },
		{ "/a;/b", PATHNORM_OK, "/a;/b", NULL },
		{ "/;/x", PATHNORM_OK, "/;/x", NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_dot_segments(void **state)
{
	static const struct pn_case cases[] = {
		{ "/.", PATHNORM_OK, "/", NULL },
		{ "/./", PATHNORM_OK, "/", NULL },
		{ "/./.", PATHNORM_OK, "/", NULL },
		{ "/e/.", PATHNORM_OK, "/e/", NULL },
		{ "/e/./", PATHNORM_OK, "/e/", NULL },
		{ "/e/..", PATHNORM_OK, "/", NULL },
		{ "/e/../", PATHNORM_OK, "/", NULL },
		{ "/a/./b", PATHNORM_OK, "/a/b", NULL },
		{ "/a/b/../c", PATHNORM_OK, "/a/c", NULL },
		{ "/a/b/..", PATHNORM_OK, "/a/", NULL },
		{ "/a/b/c/../../d", PATHNORM_OK, "/a/d", NULL },
		{ "/a/b/c/./../../g", PATHNORM_OK, "/a/g", NULL },
		{ "/public/../admin", PATHNORM_OK, "/admin", NULL },
		{ "/e/../api/", PATHNORM_OK, "/api/", NULL },
		{ "/ingest/../api/x", PATHNORM_OK, "/api/x", NULL },
		{ "/a/.../b", PATHNORM_OK, "/a/.../b", NULL },
		{ "/a/..x/../b", PATHNORM_OK, "/a/b", NULL },
		{ "/a/../b/../c/", PATHNORM_OK, "/c/", NULL },
		{ "/a//..", PATHNORM_OK, "/", NULL },
		{ "/a/.//./b", PATHNORM_OK, "/a/b", NULL },
		/* above the root */
		{ "/..", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/../", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/../admin", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/./..", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "//..", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/..//", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/a/../..", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/a/../../b", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/a/b/../../../etc/passwd", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/e/../../", PATHNORM_ABOVE_ROOT, NULL, NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_slashes(void **state)
{
	static const struct pn_case cases[] = {
		{ "//", PATHNORM_OK, "/", NULL },
		{ "///", PATHNORM_OK, "/", NULL },
		{ "//e", PATHNORM_OK, "/e", NULL },
		{ "//evil.example.com/x", PATHNORM_OK, "/evil.example.com/x", NULL },
		{ "/e//", PATHNORM_OK, "/e/", NULL },
		{ "///e//x///", PATHNORM_OK, "/e/x/", NULL },
		{ "/a//b", PATHNORM_OK, "/a/b", NULL },
		{ "//./", PATHNORM_OK, "/", NULL },
		{ "/.//e", PATHNORM_OK, "/e", NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_percent_decoding(void **state)
{
	static const struct pn_case cases[] = {
		{ "/%41%62c", PATHNORM_OK, "/Abc", NULL },
		{ "/%65", PATHNORM_OK, "/e", NULL },
		{ "/%65/", PATHNORM_OK, "/e/", NULL },
		{ "/%7e%2d%5f%30%39%7A", PATHNORM_OK, "/~-_09z", NULL },
		{ "/%3a%40", PATHNORM_OK, "/%3A%40", NULL },
		{ "/%3A", PATHNORM_OK, "/%3A", NULL },
		{ "/a%20b", PATHNORM_OK, "/a%20b", NULL },
		{ "/%25", PATHNORM_OK, "/%25", NULL },
		{ "/%2541", PATHNORM_OK, "/%2541", NULL },
		{ "/%3f", PATHNORM_OK, "/%3F", NULL },
		{ "/%23", PATHNORM_OK, "/%23", NULL },
		{ "/%3b", PATHNORM_OK, "/%3B", NULL },
		{ "/a%3b/b", PATHNORM_OK, "/a%3B/b", NULL },
		{ "/%7b%7d", PATHNORM_OK, "/%7B%7D", NULL },
		{ "/%2b", PATHNORM_OK, "/%2B", NULL },
		/* UTF-8, shortest form, kept encoded and upper-cased */
		{ "/%c3%a9", PATHNORM_OK, "/%C3%A9", NULL },
		{ "/caf%C3%A9/", PATHNORM_OK, "/caf%C3%A9/", NULL },
		{ "/%E2%82%AC", PATHNORM_OK, "/%E2%82%AC", NULL },
		{ "/%e0%a0%80", PATHNORM_OK, "/%E0%A0%80", NULL },
		{ "/%ED%9F%BF", PATHNORM_OK, "/%ED%9F%BF", NULL },
		{ "/%EE%80%80", PATHNORM_OK, "/%EE%80%80", NULL },
		{ "/%EF%BF%BF", PATHNORM_OK, "/%EF%BF%BF", NULL },
		{ "/%F0%90%80%80", PATHNORM_OK, "/%F0%90%80%80", NULL },
		{ "/%F0%9F%98%80", PATHNORM_OK, "/%F0%9F%98%80", NULL },
		{ "/%F4%8F%BF%BF", PATHNORM_OK, "/%F4%8F%BF%BF", NULL },
		{ "/%C2%80%DF%BF", PATHNORM_OK, "/%C2%80%DF%BF", NULL },
		{ "/%C3%A9x%C3%A9", PATHNORM_OK, "/%C3%A9x%C3%A9", NULL },
		/* decoding never creates a dot segment or a separator */
		{ "/%41/..", PATHNORM_OK, "/", NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_encoded_separators(void **state)
{
	static const struct pn_case cases[] = {
		{ "/%2e", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%2E", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%2e%2e/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/%2e%2e/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/%2E%2E/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/.%2e/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/%2e./admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%2eb", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%2fb", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%2Fb", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public%2f..%2fadmin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%5cb", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%5C", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/..%5cadmin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		/* dot segments with path parameters (Tomcat / Jetty read ".." ) */
		{ "/..;/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/..;/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/..;jsessionid=x/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/.;/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/..%3b/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/..%3B/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/.%3B", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/public/..;", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		/* double encoding of separators, spelled any way */
		{ "/%252e%252e/admin", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%252E", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%252Fb", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%252fb", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/a%255cb", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%25%32%45", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%25%32e", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%25%32%66", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%252%65", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
		{ "/%25%35%63", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_bad_encoding(void **state)
{
	static const struct pn_case cases[] = {
		{ "/%", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/a%", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%4", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%4/", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%4?x", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%zz", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%4g", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%g4", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%%41", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%-1", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/% 1", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%u002e", PATHNORM_BAD_ENCODING, NULL, NULL },
		/* overlong UTF-8 */
		{ "/%C0%AF", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C0%AE%C0%AE/admin", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C1%9C", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C0%80", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%E0%80%AF", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%E0%9F%BF", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%F0%80%80%AF", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%F0%8F%BF%BF", PATHNORM_BAD_ENCODING, NULL, NULL },
		/* surrogates, beyond U+10FFFF, never-valid bytes */
		{ "/%ED%A0%80", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%ED%BF%BF", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%F4%90%80%80", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%F5%80%80%80", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%F8%88%80%80%80", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%FE", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%FF", PATHNORM_BAD_ENCODING, NULL, NULL },
		/* stray continuation, truncated and split sequences */
		{ "/%80", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%BF", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3%A9%A9", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3?x", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%E2%82", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%F0%9F%98", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3/%A9", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3a%A9", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3%41", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%E2%82x%AC", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3%20", PATHNORM_BAD_ENCODING, NULL, NULL },
		{ "/%C3%C3%A9", PATHNORM_BAD_ENCODING, NULL, NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_controls_and_raw_bytes(void **state)
{
	static const struct pn_case cases[] = {
		{ "/%00", PATHNORM_CONTROL, NULL, NULL },
		{ "/admin%00.js", PATHNORM_CONTROL, NULL, NULL },
		{ "/%01", PATHNORM_CONTROL, NULL, NULL },
		{ "/%09", PATHNORM_CONTROL, NULL, NULL },
		{ "/%0a", PATHNORM_CONTROL, NULL, NULL },
		{ "/%0D%0AX-Injected:%201", PATHNORM_CONTROL, NULL, NULL },
		{ "/%1f", PATHNORM_CONTROL, NULL, NULL },
		{ "/%7f", PATHNORM_CONTROL, NULL, NULL },
		{ "/a\tb", PATHNORM_CONTROL, NULL, NULL },
		{ "/a\x01", PATHNORM_CONTROL, NULL, NULL },
		{ "/a\x7f", PATHNORM_CONTROL, NULL, NULL },
		{ "/a\r\nb", PATHNORM_CONTROL, NULL, NULL },
		{ "/a\\b", PATHNORM_BACKSLASH, NULL, NULL },
		{ "/\\", PATHNORM_BACKSLASH, NULL, NULL },
		{ "/public/..\\admin", PATHNORM_BACKSLASH, NULL, NULL },
		{ "/\\..\\admin", PATHNORM_BACKSLASH, NULL, NULL },
		{ "/a b", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/ ", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/caf\xc3\xa9", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/\xc0\xaf", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/\x80", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/\xff", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/.\xc0\xae/", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		/* an encoded lead byte followed by a raw continuation byte */
		{ "/%C3\xa9", PATHNORM_BAD_ENCODING, NULL, NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_origin_form_and_fragment(void **state)
{
	static const struct pn_case cases[] = {
		{ "", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "e", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "*", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "?x=1", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "http://example.com/", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "example.com:443", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ " /", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "\\/", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "%2F", PATHNORM_NOT_ORIGIN_FORM, NULL, NULL },
		{ "/#", PATHNORM_FRAGMENT, NULL, NULL },
		{ "/e#x", PATHNORM_FRAGMENT, NULL, NULL },
		{ "/e?x=1#y", PATHNORM_FRAGMENT, NULL, NULL },
		{ "/%#", PATHNORM_FRAGMENT, NULL, NULL },
		{ "/admin#/../public", PATHNORM_FRAGMENT, NULL, NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
	assert_int_equal(pathnorm_normalize(NULL, (char[8]){ 0 }, 8, NULL),
			 PATHNORM_NOT_ORIGIN_FORM);
}

static void
test_query(void **state)
{
	static const struct pn_case cases[] = {
		{ "/e?x=1", PATHNORM_OK, "/e", "x=1" },
		{ "/e/?compression=gzip-js&ip=1&_=1700000000000&ver=1.2.3", PATHNORM_OK, "/e/",
		  "compression=gzip-js&ip=1&_=1700000000000&ver=1.2.3" },
		{ "/e?", PATHNORM_OK, "/e", "" },
		{ "/?", PATHNORM_OK, "/", "" },
		{ "/?a", PATHNORM_OK, "/", "a" },
		{ "/e?x=1?y=2", PATHNORM_OK, "/e", "x=1?y=2" },
		/* the query is kept byte for byte: no decoding, no dot removal */
		{ "/e?a=%zz&b=/../&c=%2e%2F&d=\\", PATHNORM_OK, "/e", "a=%zz&b=/../&c=%2e%2F&d=\\" },
		{ "/a/../b?q=/../..", PATHNORM_OK, "/b", "q=/../.." },
		{ "/e?{\"a\"}|<>^`", PATHNORM_OK, "/e", "{\"a\"}|<>^`" },
		{ "/%41?%41", PATHNORM_OK, "/A", "%41" },
		/* the path part still ends at the first "?" */
		{ "/a%3F?b", PATHNORM_OK, "/a%3F", "b" },
		{ "/e?a b", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/e?a=\xc3\xa9", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/e?\xff", PATHNORM_RAW_NON_ASCII, NULL, NULL },
		{ "/e?a=\x01", PATHNORM_CONTROL, NULL, NULL },
		{ "/e?a=\r\nX: y", PATHNORM_CONTROL, NULL, NULL },
		{ "/e?\x7f", PATHNORM_CONTROL, NULL, NULL },
		/* path errors come first */
		{ "/..?x", PATHNORM_ABOVE_ROOT, NULL, NULL },
		{ "/%2e?x", PATHNORM_ENCODED_SEPARATOR, NULL, NULL },
	};

	(void)state;
	pn_run(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_query_out_param_optional(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(pathnorm_normalize("/a/./b?x", out, sizeof(out), NULL), PATHNORM_OK);
	assert_string_equal(out, "/a/b");
}

static void
test_buffer_limits(void **state)
{
	char out[64];
	const char *q = NULL;

	(void)state;
	/* exactly fits: "/abc" + NUL */
	assert_int_equal(pathnorm_normalize("/abc", out, 5, &q), PATHNORM_OK);
	assert_string_equal(out, "/abc");
	assert_int_equal(pathnorm_normalize("/abc", out, 4, &q), PATHNORM_TOO_LONG);
	assert_string_equal(out, "");
	assert_null(q);
	assert_int_equal(pathnorm_normalize("/abc/", out, 5, &q), PATHNORM_TOO_LONG);
	assert_int_equal(pathnorm_normalize("/abc/", out, 6, &q), PATHNORM_OK);
	assert_int_equal(pathnorm_normalize("/%C3%A9", out, 7, &q), PATHNORM_TOO_LONG);
	assert_int_equal(pathnorm_normalize("/%C3%A9", out, 8, &q), PATHNORM_OK);
	/* decoded output is shorter than the input */
	assert_int_equal(pathnorm_normalize("/%41%42", out, 4, &q), PATHNORM_OK);
	assert_string_equal(out, "/AB");
	/* the query does not need room in the path buffer */
	assert_int_equal(pathnorm_normalize("/a?0123456789", out, 3, &q), PATHNORM_OK);
	assert_string_equal(out, "/a");
	assert_string_equal(q, "0123456789");
	assert_int_equal(pathnorm_normalize("/", out, 2, &q), PATHNORM_OK);
	assert_string_equal(out, "/");
	assert_int_equal(pathnorm_normalize("/", out, 1, &q), PATHNORM_TOO_LONG);
	assert_int_equal(pathnorm_normalize("/", out, 0, &q), PATHNORM_TOO_LONG);
	assert_int_equal(pathnorm_normalize("/", NULL, 0, &q), PATHNORM_TOO_LONG);
	/* a buffer of strlen(target) + 1 always suffices */
	{
		const char *t = "//a/./b/../c//%41/";
		char exact[19];

		assert_int_equal(strlen(t) + 1, sizeof(exact));
		assert_int_equal(pathnorm_normalize(t, exact, sizeof(exact), &q), PATHNORM_OK);
		assert_string_equal(exact, "/a/c/A/");
	}
}

static void
test_huge_inputs(void **state)
{
	const size_t n = 1u << 20;
	char *in = malloc(4 * n + 16);
	char *out = malloc(4 * n + 16);
	size_t i, len;

	(void)state;
	assert_non_null(in);
	assert_non_null(out);

	/* 1 MiB of "a/" then as many ".." segments: back to "/" */
	len = 0;
	in[len++] = '/';
	for (i = 0; i < n / 2; i++) {
		in[len++] = 'a';
		in[len++] = '/';
	}
	for (i = 0; i < n / 2; i++) {
		memcpy(in + len, "../", 3);
		len += 3;
	}
	in[len] = '\0';
	assert_int_equal(pathnorm_normalize(in, out, 4 * n + 16, NULL), PATHNORM_OK);
	assert_string_equal(out, "/");

	/* one more ".." is above the root */
	memcpy(in + len, "..", 3);
	assert_int_equal(pathnorm_normalize(in, out, 4 * n + 16, NULL), PATHNORM_ABOVE_ROOT);

	/* a 1 MiB run of slashes */
	memset(in, '/', n);
	memcpy(in + n, "x", 2);
	assert_int_equal(pathnorm_normalize(in, out, 4 * n + 16, NULL), PATHNORM_OK);
	assert_string_equal(out, "/x");

	/* one long segment of encoded unreserved bytes */
	in[0] = '/';
	for (i = 0; i < n; i++)
		memcpy(in + 1 + 3 * i, "%41", 3);
	in[1 + 3 * n] = '\0';
	assert_int_equal(pathnorm_normalize(in, out, 4 * n + 16, NULL), PATHNORM_OK);
	assert_int_equal(strlen(out), n + 1);
	assert_int_equal(out[n], 'A');
	/* ... which does not fit a small buffer */
	assert_int_equal(pathnorm_normalize(in, out, 1024, NULL), PATHNORM_TOO_LONG);

	/* a long valid path that ends in a bad byte is refused */
	in[1 + 3 * n] = '\x80';
	in[2 + 3 * n] = '\0';
	assert_int_equal(pathnorm_normalize(in, out, 4 * n + 16, NULL), PATHNORM_RAW_NON_ASCII);

	free(in);
	free(out);
}

static void
test_reasons(void **state)
{
	enum pathnorm_result r;
	const char *seen[PATHNORM_TOO_LONG + 1];

	(void)state;
	for (r = PATHNORM_OK; r <= PATHNORM_TOO_LONG; r++) {
		const char *s = pathnorm_reason(r);
		enum pathnorm_result k;

		assert_non_null(s);
		assert_true(strlen(s) > 1);
		for (k = PATHNORM_OK; k < r; k++)
			assert_string_not_equal(seen[k], s);
		seen[r] = s;
	}
	assert_non_null(strstr(pathnorm_reason(PATHNORM_ENCODED_SEPARATOR), "encoded"));
	assert_non_null(pathnorm_reason((enum pathnorm_result)99));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_dot_segments),
		cmocka_unit_test(test_slashes),
		cmocka_unit_test(test_percent_decoding),
		cmocka_unit_test(test_encoded_separators),
		cmocka_unit_test(test_bad_encoding),
		cmocka_unit_test(test_controls_and_raw_bytes),
		cmocka_unit_test(test_origin_form_and_fragment),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_query_out_param_optional),
		cmocka_unit_test(test_buffer_limits),
		cmocka_unit_test(test_huge_inputs),
		cmocka_unit_test(test_reasons),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for cookie: the pair walk (separators, white space, empty
 * pairs), lookup across several Cookie headers (duplicate names, prefixes,
 * quotes, trailing spaces, buffer limits), and filtering (one header
 * rewritten in place, several merged, nothing left, nothing dropped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <cmocka.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/cookie.h"
#include "http/hdrarena.h"

/* Headers from a NULL-terminated list of Cookie values (and one Other). */
static void
headers_init(struct evkeyvalq *h, const char *const *cookies)
{
	TAILQ_INIT(h);
	evhttp_add_header(h, "Other", "a=b");
	for (size_t i = 0; cookies[i] != NULL; i++)
		assert_int_equal(evhttp_add_header(h, i % 2 ? "cookie" : "Cookie", cookies[i]), 0);
}

/* All Cookie values of <h> joined with "|" into <out>. */
static const char *
headers_cookies(struct evkeyvalq *h, char *out, size_t cap)
{
	struct evkeyval *kv;
	size_t o = 0;

	out[0] = '\0';
	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "cookie") != 0)
			continue;
		o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "|" : "", kv->value);
		assert_true(o < cap);
	}
	return out;
}

static void
test_next(void **state)
{
	const char *p = " \t;a=1;;b = 2 ;  c\t; ;", *pair;
	size_t len;

	(void)state;
	assert_true(cookie_next(&p, &pair, &len));
	assert_int_equal(len, 3);
	assert_memory_equal(pair, "a=1", 3);
	assert_true(cookie_next(&p, &pair, &len));
	assert_int_equal(len, 6);                      /* trailing space kept */
	assert_memory_equal(pair, "b = 2 ", 6);
	assert_true(cookie_next(&p, &pair, &len));
	assert_int_equal(len, 2);                      /* a pair without "=" */
	assert_memory_equal(pair, "c\t", 2);
	assert_false(cookie_next(&p, &pair, &len));
	assert_false(cookie_next(&p, &pair, &len));    /* stays at the end */
	p = "";
	assert_false(cookie_next(&p, &pair, &len));
	p = " ; \t ";
	assert_false(cookie_next(&p, &pair, &len));
}

static void
test_pair_is(void **state)
{
	(void)state;
	assert_true(cookie_pair_is("sid=1", 5, "sid", 3));
	assert_true(cookie_pair_is("sid=", 4, "sid", 3));
	assert_false(cookie_pair_is("sid", 3, "sid", 3));
	assert_false(cookie_pair_is("sidx=1", 6, "sid", 3));
	assert_false(cookie_pair_is("SID=1", 5, "sid", 3));     /* names are case-sensitive */
	assert_false(cookie_pair_is("sid =1", 6, "sid", 3));
	assert_false(cookie_pair_is("sid=1", 3, "sid", 3));     /* bounded by len */
}

/* cookie_find over <cookies> for <name> with a <buflen> buffer. */
static void
check_find(const char *const *cookies, const char *name, size_t buflen, const char *want)
{
	struct evkeyvalq h;
	char buf[64];
	const char *got;

	assert_true(buflen <= sizeof buf);
	headers_init(&h, cookies);
	got = cookie_find(&h, name, buf, buflen);
	if (want == NULL) {
		if (got != NULL)
			fail_msg("find(%s): want none, got \"%s\"", name, got);
	} else {
		if (got == NULL)
			fail_msg("find(%s): want \"%s\", got none", name, want);
		assert_ptr_equal(got, buf);
		assert_string_equal(got, want);
	}
	evhttp_clear_headers(&h);
}

static void
test_find(void **state)
{
	(void)state;
	check_find((const char *[]){"a=1; sid=abc; b=2", NULL}, "sid", 64, "abc");
	check_find((const char *[]){"sid=abc", NULL}, "sid", 64, "abc");
	check_find((const char *[]){"a=1", NULL}, "sid", 64, NULL);
	check_find((const char *[]){NULL}, "sid", 64, NULL);
	check_find((const char *[]){"xsid=1; sidx=2; sid=3", NULL}, "sid", 64, "3");
	check_find((const char *[]){"SID=1; sid=2", NULL}, "sid", 64, "2");
	check_find((const char *[]){"sid", NULL}, "sid", 64, NULL);          /* no "=" */
	check_find((const char *[]){"sid=", NULL}, "sid", 64, "");           /* empty value */
	check_find((const char *[]){"sid=a=b", NULL}, "sid", 64, "a=b");
	check_find((const char *[]){"sid = x; sid=y", NULL}, "sid", 64, "y"); /* "sid " is another name */
}

static void
test_find_duplicates(void **state)
{
	(void)state;
	/* The first pair of that name wins, in one header and across headers. */
	check_find((const char *[]){"sid=first; sid=second", NULL}, "sid", 64, "first");
	check_find((const char *[]){"a=1", "sid=one", "sid=two", NULL}, "sid", 64, "one");
	check_find((const char *[]){"b=1; sid=h1", "sid=h2", NULL}, "sid", 64, "h1");
}

static void
test_find_whitespace_and_quotes(void **state)
{
	(void)state;
	check_find((const char *[]){"  \t sid=abc", NULL}, "sid", 64, "abc");
	check_find((const char *[]){"a=1;sid=abc   ;b=2", NULL}, "sid", 64, "abc");
	check_find((const char *[]){"sid=a b", NULL}, "sid", 64, "a b");     /* inner space kept */
	check_find((const char *[]){"sid=abc\t", NULL}, "sid", 64, "abc\t"); /* only spaces trimmed */
	check_find((const char *[]){"sid=   ", NULL}, "sid", 64, "");
	check_find((const char *[]){"sid=\"quoted\"", NULL}, "sid", 64, "\"quoted\"");
	check_find((const char *[]){"sid=\"a;b\"", NULL}, "sid", 64, "\"a"); /* no quoted ";" */
}

static void
test_find_buffer_limit(void **state)
{
	(void)state;
	check_find((const char *[]){"sid=abcd", NULL}, "sid", 5, "abcd");
	check_find((const char *[]){"sid=abcde", NULL}, "sid", 5, NULL);     /* no room for the NUL */
	check_find((const char *[]){"sid=abcd   ", NULL}, "sid", 5, "abcd"); /* trimmed first */
	/* A first value too long is not skipped for a later one. */
	check_find((const char *[]){"sid=toolong; sid=ok", NULL}, "sid", 5, NULL);
}

struct drop {
	const char *prefix;
};

static bool
drop_prefix(const char *pair, size_t len, void *arg)
{
	const char *prefix = ((struct drop *)arg)->prefix;
	size_t n = strlen(prefix);

	return len >= n && memcmp(pair, prefix, n) == 0;
}

static void
check_filter(const char *value, const char *prefix, size_t cap, const char *want, size_t need,
	     bool changed)
{
	char out[128];
	bool ch = !changed;
	size_t n;

	assert_true(cap > 0 && cap <= sizeof out);
	memset(out, 'X', sizeof out);
	n = cookie_filter(value, drop_prefix, &(struct drop){prefix}, out, cap, &ch);
	assert_int_equal(n, need);
	assert_int_equal(ch, changed);
	if (n < cap)
		assert_string_equal(out, want);
	else
		assert_non_null(memchr(out, '\0', cap)); /* truncated: still terminated */
}

static void
test_filter(void **state)
{
	(void)state;
	check_filter("a=1; s=2; b=3", "s=", 128, "a=1; b=3", 8, true);
	check_filter("a=1;b=3", "s=", 128, "a=1; b=3", 8, false);      /* normalized, unchanged */
	check_filter("s=1; s=2", "s=", 128, "", 0, true);
	check_filter("", "s=", 128, "", 0, false);
	check_filter(" ;; a=1 ;", "s=", 128, "a=1 ", 4, false);
	check_filter("s=1; trk-a=1; trk-b=2; z=9", "trk-", 128, "s=1; z=9", 8, true);
	/* Truncated output still reports the length needed. */
	check_filter("aaaa=1; bbbb=2", "s=", 8, NULL, 14, false);
	check_filter("aaaa=1; bbbb=2", "s=", 1, NULL, 14, false);
	check_filter("aaaa=1; s=2", "s=", 7, "aaaa=1", 6, true);      /* exactly fits */
	check_filter("aaaa=1; s=2", "s=", 6, NULL, 6, true);
}

static void
check_strip(const char *const *cookies, const char *prefix, const char *want)
{
	struct evkeyvalq h;
	struct hdrarena *arena = malloc(sizeof(*arena));
	char got[256];

	headers_init(&h, cookies);
	cookie_strip(&h, NULL, drop_prefix, &(struct drop){prefix});
	assert_string_equal(headers_cookies(&h, got, sizeof got), want);
	assert_string_equal(evhttp_find_header(&h, "Other"), "a=b");
	evhttp_clear_headers(&h);

	/* The same with the headers in an arena (as a request's are): what is
	 * removed is unlinked, never freed (ASan would see it). */
	assert_non_null(arena);
	hdrarena_init(arena);
	TAILQ_INIT(&h);
	assert_int_equal(hdrarena_add(arena, &h, "Other", "a=b"), 0);
	for (size_t i = 0; cookies[i] != NULL; i++)
		assert_int_equal(hdrarena_add(arena, &h, i % 2 ? "cookie" : "Cookie", cookies[i]), 0);
	cookie_strip(&h, arena, drop_prefix, &(struct drop){prefix});
	assert_string_equal(headers_cookies(&h, got, sizeof got), want);
	assert_string_equal(evhttp_find_header(&h, "Other"), "a=b");
	hdrarena_clear_headers(arena, &h);
	hdrarena_reset(arena);
	free(arena);
}

static void
test_strip(void **state)
{
	(void)state;
	/* One header: rewritten where it is. */
	check_strip((const char *[]){"a=1; s=2; b=3", NULL}, "s=", "a=1; b=3");
	check_strip((const char *[]){"s=2", NULL}, "s=", "");
	/* Nothing dropped: untouched, even its odd spacing. */
	check_strip((const char *[]){"a=1;b=2", NULL}, "s=", "a=1;b=2");
	check_strip((const char *[]){"a=1", "b=2", NULL}, "s=", "a=1|b=2");
	check_strip((const char *[]){NULL}, "s=", "");
	/* Several headers: merged into one when something is dropped. */
	check_strip((const char *[]){"a=1", "s=2; b=3", NULL}, "s=", "a=1; b=3");
	check_strip((const char *[]){"s=1", "s=2", NULL}, "s=", "");
	/* One header whose rest grows ("a;b" gains a space): rebuilt, same result. */
	check_strip((const char *[]){"a=1;s=2;b=3", NULL}, "s=", "a=1; b=3");
	check_strip((const char *[]){"x=1;s=2;y=3;z=4", NULL}, "s=", "x=1; y=3; z=4");
}

static void
test_strip_long(void **state)
{
	/* Longer than the in-place buffer (4 KiB): the evbuffer path. */
	char big[6000], want[6000];
	struct evkeyvalq h;
	char got[6100];

	(void)state;
	memset(big, 'v', sizeof big);
	memcpy(big, "s=1; k=", 7);
	big[sizeof big - 1] = '\0';
	snprintf(want, sizeof want, "%s", big + 5);
	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Cookie", big);
	cookie_strip(&h, NULL, drop_prefix, &(struct drop){"s="});
	assert_string_equal(headers_cookies(&h, got, sizeof got), want);
	evhttp_clear_headers(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_pair_is),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_find_duplicates),
		cmocka_unit_test(test_find_whitespace_and_quotes),
		cmocka_unit_test(test_find_buffer_limit),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_strip),
		cmocka_unit_test(test_strip_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for headers.c: token syntax, hop-by-hop names, Connection
 * lists and the request framing checks that refuse smuggling attempts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/headers.h"

static void
test_tokens(void **state)
{
	(void)state;
	assert_true(headers_is_token("Content-Length"));
	assert_true(headers_is_token("X-Custom_1.2~!#$%&'*+^`|"));
	assert_false(headers_is_token(""));
	assert_false(headers_is_token("Transfer-Encoding "));
	assert_false(headers_is_token(" Host"));
	assert_false(headers_is_token("Host:"));
	assert_false(headers_is_token("a\"b"));
	assert_false(headers_is_token("a(b)"));
	assert_false(headers_is_token("caf\xc3\xa9"));
}

static void
test_values(void **state)
{
	(void)state;
	assert_true(headers_value_ok("text/html; charset=utf-8"));
	assert_true(headers_value_ok("a\tb"));
	assert_true(headers_value_ok(""));
	assert_false(headers_value_ok("a\rb"));
	assert_false(headers_value_ok("a\nb"));
	assert_false(headers_value_ok("a\x01"));
	assert_false(headers_value_ok("a\x7f"));
	/* the word-at-a-time path: every position of a long value */
	for (size_t at = 0; at < 40; at++) {
		char v[41];

		memset(v, 'x', 40);
		v[40] = '\0';
		v[at] = '\t';
		assert_true(headers_value_ok(v));
		v[at] = (char)0xe9; /* obs-text */
		assert_true(headers_value_ok(v));
		v[at] = '\x1f';
		assert_false(headers_value_ok(v));
		v[at] = '\x7f';
		assert_false(headers_value_ok(v));
		v[at] = '\r';
		assert_false(headers_value_ok(v));
	}
}

static void
test_hop_by_hop(void **state)
{
	static const char *const hop[] = {"Connection", "keep-alive", "Proxy-Connection", "TE",
					  "Trailer", "Transfer-Encoding", "UPGRADE",
					  "Proxy-Authorization", "Proxy-Authenticate"};
	static const char *const end[] = {"Host", "Cookie", "Content-Length", "X-Forwarded-For",
					  "Trailers", "Upgrade-Insecure-Requests", "T", "Authorization"};

	(void)state;
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		assert_true(headers_is_hop_by_hop(hop[i]));
	for (size_t i = 0; i < sizeof(end) / sizeof(end[0]); i++)
		assert_false(headers_is_hop_by_hop(end[i]));
}

/* The table of the headers the proxy owns: what the proxy drops from a
 * client's request is exactly what it used to (request_header_is_ours and the
 * hop-by-hop list before the table), and the config refusals are the sets
 * the loader refused before. */
static void
test_owned_table(void **state)
{
	static const char *const proxy_sets[] = {"Content-Length", "expect", "HOST", "X-Request-ID",
						 "x-real-ip", "X-Forwarded-For", "X-Forwarded-Port",
						 "x-forwarded-prefix", "X-Forwarded-", "Forwarded",
						 "x-client-cert-subject", "X-Client-Cert-SHA256",
						 "X-Client-Cert-SAN"};
	static const char *const passes[] = {"Accept", "User-Agent", "Cookie", "Authorization",
					      "X-Forwarded", "X-Request-IDs", "Forwarded-For",
					      "Hostname", "Expected", "X-Real-IP2", ""};
	static const char *const no_req[] = {"Host", "Content-Length", "Transfer-Encoding",
					     "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer",
					     "X-Client-Cert-Subject", "X-Client-Cert-SHA256",
					     "X-Client-Cert-SAN"};
	static const char *const no_resp[] = {"Content-Length", "Transfer-Encoding", "Connection"};
	static const char *const no_id[] = {"Host", "Content-Length", "Transfer-Encoding",
					    "Connection", "Cookie", "Authorization",
					    "X-Forwarded-For", "X-Forwarded-Proto",
					    "X-Forwarded-Host", "X-Real-IP", "X-Request-ID",
					    "X-Client-Cert-Subject", "X-Client-Cert-SHA256",
					    "X-Client-Cert-SAN"};
	const struct headers_owned *t;
	size_t n, count;

	(void)state;
	for (size_t i = 0; i < sizeof(proxy_sets) / sizeof(proxy_sets[0]); i++)
		assert_true(headers_owned_flags(proxy_sets[i]) & HEADERS_PROXY_SETS);
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++)
		assert_false(headers_owned_flags(passes[i]) &
			     (HEADERS_PROXY_SETS | HEADERS_HOP_BY_HOP));
	assert_string_equal(headers_owned_find("x-forwarded-port")->name, "X-Forwarded-*");
	assert_string_equal(headers_owned_find("x-forwarded-for")->name, "X-Forwarded-For");
	assert_null(headers_owned_find("Accept"));

	t = headers_owned_table(&n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(t[i].len, strlen(t[i].name));
		assert_non_null(t[i].why);
		assert_true(t[i].flags != 0);
		if (i > 0) /* headers_owned_find relies on the order */
			assert_true(t[i - 1].len <= t[i].len);
		assert_true(t[i].len <= 21); /* OWNED_MAX_LEN in headers.c */
		assert_ptr_equal(headers_owned_find(t[i].name), &t[i]);
	}
	/* each refusal set is exactly the old list */
	count = 0;
	for (size_t i = 0; i < n; i++)
		count += (t[i].flags & HEADERS_NO_REQUEST_OP) != 0;
	assert_int_equal(count, sizeof(no_req) / sizeof(no_req[0]));
	for (size_t i = 0; i < sizeof(no_req) / sizeof(no_req[0]); i++)
		assert_true(headers_owned_flags(no_req[i]) & HEADERS_NO_REQUEST_OP);
	count = 0;
	for (size_t i = 0; i < n; i++)
		count += (t[i].flags & HEADERS_NO_RESPONSE_OP) != 0;
	assert_int_equal(count, sizeof(no_resp) / sizeof(no_resp[0]));
	for (size_t i = 0; i < sizeof(no_resp) / sizeof(no_resp[0]); i++)
		assert_true(headers_owned_flags(no_resp[i]) & HEADERS_NO_RESPONSE_OP);
	count = 0;
	for (size_t i = 0; i < n; i++)
		count += (t[i].flags & HEADERS_NO_IDENTITY) != 0;
	assert_int_equal(count, sizeof(no_id) / sizeof(no_id[0]));
	for (size_t i = 0; i < sizeof(no_id) / sizeof(no_id[0]); i++)
		assert_true(headers_owned_flags(no_id[i]) & HEADERS_NO_IDENTITY);
}

static void
test_connection_list(void **state)
{
	struct headers_connection_list l = {0};

	(void)state;
	headers_connection_parse("keep-alive, X-Foo ,x-bar", &l);
	headers_connection_parse("Close", &l);
	assert_int_equal(l.n, 4);
	assert_true(headers_connection_has(&l, "X-FOO"));
	assert_true(headers_connection_has(&l, "x-bar"));
	assert_true(headers_connection_has(&l, "close"));
	assert_false(headers_connection_has(&l, "x-baz"));
	/* Empty elements and stray commas are skipped. */
	struct headers_connection_list e = {0};

	headers_connection_parse(" , ,,", &e);
	assert_int_equal(e.n, 0);
	/* The list is bounded. */
	struct headers_connection_list big = {0};

	for (int i = 0; i < 40; i++)
		headers_connection_parse("a, b", &big);
	assert_int_equal(big.n, 16);
}

static void
test_connection_drop_hop_by_hop(void **state)
{
	struct headers_connection_list l = {0};

	(void)state;
	headers_connection_parse("keep-alive, X-Foo, Upgrade, Proxy-Authorization, close", &l);
	headers_connection_drop_hop_by_hop(&l);
	assert_int_equal(l.n, 2); /* Keep-Alive, Upgrade and Proxy-Authorization go */
	assert_string_equal(l.names[0], "x-foo");
	assert_string_equal(l.names[1], "close");
	assert_false(headers_connection_has(&l, "keep-alive"));
	/* Only hop-by-hop names: nothing left to look up. */
	struct headers_connection_list k = {0};

	headers_connection_parse("keep-alive", &k);
	headers_connection_drop_hop_by_hop(&k);
	assert_int_equal(k.n, 0);
}

static enum headers_framing
framing_of(const char *const *pairs)
{
	struct headers_framing_state st = {0};

	for (size_t i = 0; pairs[i]; i += 2)
		headers_framing_add(&st, pairs[i], pairs[i + 1]);
	return headers_framing_result(&st);
}

static void
test_framing(void **state)
{
	(void)state;
	assert_int_equal(framing_of((const char *const[]){"Host", "a", "Content-Length", "12", NULL}),
			 FRAMING_OK);
	assert_int_equal(framing_of((const char *const[]){"Transfer-Encoding", "Chunked", NULL}),
			 FRAMING_OK);
	assert_int_equal(framing_of((const char *const[]){"Content-Length", " 7 ", NULL}), FRAMING_OK);
	assert_int_equal(framing_of((const char *const[]){"Transfer-Encoding", "chunked",
							  "Content-Length", "5", NULL}),
			 FRAMING_TE_AND_LENGTH);
	assert_int_equal(framing_of((const char *const[]){"Transfer-Encoding", "gzip, chunked", NULL}),
			 FRAMING_TE_NOT_CHUNKED);
	assert_int_equal(framing_of((const char *const[]){"Transfer-Encoding", "xchunked", NULL}),
			 FRAMING_TE_NOT_CHUNKED);
	assert_int_equal(framing_of((const char *const[]){"Transfer-Encoding", "chunked",
							  "Transfer-Encoding", "chunked", NULL}),
			 FRAMING_MULTIPLE_TE);
	assert_int_equal(framing_of((const char *const[]){"Content-Length", "5", "Content-Length",
							  "5", NULL}),
			 FRAMING_MULTIPLE_LENGTH);
	assert_int_equal(framing_of((const char *const[]){"Content-Length", "+5", NULL}),
			 FRAMING_BAD_LENGTH);
	assert_int_equal(framing_of((const char *const[]){"Content-Length", "5 5", NULL}),
			 FRAMING_BAD_LENGTH);
	assert_int_equal(framing_of((const char *const[]){"Content-Length", "", NULL}),
			 FRAMING_BAD_LENGTH);
	assert_int_equal(framing_of((const char *const[]){"Content-Length", "0x10", NULL}),
			 FRAMING_BAD_LENGTH);
	assert_int_equal(framing_of((const char *const[]){"Host", "a", "host", "b", NULL}),
			 FRAMING_MULTIPLE_HOST);
	assert_int_equal(framing_of((const char *const[]){"Transfer-Encoding ", "chunked", NULL}),
			 FRAMING_BAD_NAME);
	assert_int_equal(framing_of((const char *const[]){"X-A", "b\r\nX-Injected: 1", NULL}),
			 FRAMING_BAD_VALUE);
	/* The first problem found is the one reported. */
	assert_int_equal(framing_of((const char *const[]){"Host", "a", "Host", "b",
							  "Content-Length", "+1", NULL}),
			 FRAMING_MULTIPLE_HOST);
	assert_string_not_equal(headers_framing_reason(FRAMING_TE_AND_LENGTH), "ok");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_hop_by_hop),
		cmocka_unit_test(test_owned_table),
		cmocka_unit_test(test_connection_list),
		cmocka_unit_test(test_connection_drop_hop_by_hop),
		cmocka_unit_test(test_framing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for chunked.c: the strict chunked decoder and the head
 * line-ending scanner, fed whole and byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/chunked.h"
#include "http/headscan.h"

struct sink {
	char data[256];
	size_t len;
	int refuse_after; /* emit fails once len would pass this (0: never) */
};

static int
emit(void *arg, const char *d, size_t n)
{
	struct sink *s = arg;

	if (s->refuse_after && s->len + n > (size_t)s->refuse_after)
		return -1;
	if (s->len + n > sizeof(s->data))
		return -1;
	memcpy(s->data + s->len, d, n);
	s->len += n;
	return 0;
}

/* An emitter that only counts (bodies larger than the sink). */
static int
emit_count(void *arg, const char *d, size_t n)
{
	struct sink *s = arg;

	(void)d;
	s->len += n;
	return 0;
}

/* Decode <in> in pieces of <step> bytes; returns the final result. */
static enum chunked_result
decode(const char *in, size_t step, struct sink *s, size_t *total_used, const char **why)
{
	struct chunked d;
	size_t len = strlen(in), off = 0;
	enum chunked_result r = CHUNKED_MORE;

	chunked_init(&d);
	memset(s, 0, sizeof(*s) - sizeof(int));
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used;

		r = chunked_decode(&d, in + off, n, &used, emit, s, why);
		off += used;
		if (r != CHUNKED_MORE)
			break;
	}
	*total_used = off;
	return r;
}

static void
check_ok(const char *in, const char *body, size_t expect_used)
{
	static const size_t steps[] = {1, 2, 3, 7, 4096};

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		size_t step = steps[k];
		struct sink s = {0};
		size_t used;
		const char *why = NULL;

		assert_int_equal(decode(in, step, &s, &used, &why), CHUNKED_DONE);
		assert_int_equal(s.len, strlen(body));
		assert_memory_equal(s.data, body, s.len);
		assert_int_equal(used, expect_used);
	}
}

static void
check_bad(const char *in)
{
	static const size_t steps[] = {1, 2, 3, 7, 4096};

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		size_t step = steps[k];
		struct sink s = {0};
		size_t used;
		const char *why = NULL;

		assert_int_equal(decode(in, step, &s, &used, &why), CHUNKED_ERROR);
		assert_non_null(why);
	}
}

static void
test_valid_bodies(void **state)
{
	(void)state;
	check_ok("5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n", "hello, world", 27);
	check_ok("0\r\n\r\n", "", 5);
	check_ok("A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 20);
	check_ok("5;ext=1;name=\"quoted;\\\"v\"\r\nhello\r\n0\r\n\r\n", "hello", 39);
	check_ok("5 ;ext\r\nhello\r\n0\r\nX-Trailer: a\r\nY: b\r\n\r\n", "hello", 40);
	/* Bytes after the end belong to the next request. */
	check_ok("1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "x", 11);
}

static void
test_malformed_bodies(void **state)
{
	(void)state;
	check_bad("5\r\nhelloXX0\r\n\r\n");  /* no CRLF after data */
	check_bad("5\rXhello\r\n0\r\n\r\n");  /* bare CR after the size */
	check_bad("5\nhello\r\n0\r\n\r\n");   /* bare LF after the size */
	check_bad("\r\nhello\r\n0\r\n\r\n");  /* no size */
	check_bad("-5\r\nhello\r\n0\r\n\r\n"); /* not hex */
	check_bad("0x5\r\nhello\r\n0\r\n\r\n");
	check_bad("fffffffffffffffff\r\n");   /* too large */
	check_bad("5;a\x01\r\nhello\r\n0\r\n\r\n"); /* control in extension */
	check_bad("5;a b\"\x01\"\r\nhello\r\n");
	check_bad("0\r\n folded: x\r\n\r\n");  /* folded trailer */
	check_bad("0\r\nX: a\nY: b\r\n\r\n");  /* bare LF in trailers */
	check_bad("0\r\n\rX");                 /* CR without LF at the end */
}

/* RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
 * Whitespace before an extension (BWS) is fine; an extension without a
 * name, or whitespace with no extension after it, is not. */
static void
test_chunk_extension_grammar(void **state)
{
	(void)state;
	check_ok("5 ;a=b\r\nhello\r\n0\r\n\r\n", "hello", 20);
	check_ok("5\t;a\r\nhello\r\n0\r\n\r\n", "hello", 18);
	check_ok("5; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello", 25);
	check_ok("5;a=\"x y\" ; b=\"\"\r\nhello\r\n0\r\n\r\n", "hello", 30);
	check_ok("5;a;b;c=d\r\nhello\r\n0;z\r\n\r\n", "hello", 25);
	check_bad("5;\r\nhello\r\n0\r\n\r\n");      /* ";" without a name */
	check_bad("5; \r\nhello\r\n0\r\n\r\n");
	check_bad("5;;a\r\nhello\r\n0\r\n\r\n");
	check_bad("5;=b\r\nhello\r\n0\r\n\r\n");
	check_bad("5 \r\nhello\r\n0\r\n\r\n");      /* whitespace, no extension */
	check_bad("5\t\r\nhello\r\n0\r\n\r\n");
	check_bad("0 \r\n\r\n");
	check_bad("5;a \r\nhello\r\n0\r\n\r\n");    /* whitespace at the end */
	check_bad("5;a=b \r\nhello\r\n0\r\n\r\n");
	check_bad("5;a=\"b\" \r\nhello\r\n0\r\n\r\n");
	check_bad("5;a=\r\nhello\r\n0\r\n\r\n");     /* "=" without a value */
	check_bad("5;a=b=c\r\nhello\r\n0\r\n\r\n");
	check_bad("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n");
	check_bad("5;a b\r\nhello\r\n0\r\n\r\n");    /* two names without ";" */
	check_bad("5;a@b\r\nhello\r\n0\r\n\r\n");    /* not a token */
	check_bad("5;a=\"b\r\nhello\r\n0\r\n\r\n"); /* unterminated quote: CR inside */
}

/* Chunk extensions are bounded (4 KiB per body, all chunks together): one
 * long extension, or many short ones, end with an error instead of being
 * read to the end. */
static void
test_chunk_extension_limit(void **state)
{
	static char in[20000];
	struct chunked d;
	struct sink s = {0};
	size_t used, n;
	const char *why = NULL;

	(void)state;
	/* 4 KiB in all is fine. */
	n = (size_t)snprintf(in, sizeof(in), "1;");
	memset(in + n, 'e', 4093);
	n += 4093;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nx\r\n0\r\n\r\n");
	chunked_init(&d);
	assert_int_equal(chunked_decode(&d, in, n, &used, emit, &s, &why), CHUNKED_DONE);
	/* One byte more is not. */
	n = (size_t)snprintf(in, sizeof(in), "1;");
	memset(in + n, 'e', 4095);
	n += 4095;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nx\r\n0\r\n\r\n");
	chunked_init(&d);
	memset(&s, 0, sizeof(s));
	assert_int_equal(chunked_decode(&d, in, n, &used, emit, &s, &why), CHUNKED_ERROR);
	assert_string_equal(why, "chunk extensions too long");
	assert_true(used <= 4100);
	/* Many chunks with short extensions add up. */
	n = 0;
	for (int k = 0; k < 400; k++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "1;abcdefghij\r\nx\r\n");
	chunked_init(&d);
	memset(&s, 0, sizeof(s));
	s.refuse_after = 0;
	assert_int_equal(chunked_decode(&d, in, n, &used, emit_count, &s, &why), CHUNKED_ERROR);
	assert_string_equal(why, "chunk extensions too long");
}

static void
test_emit_refusal_stops(void **state)
{
	struct sink s = {0};
	size_t used;
	const char *why = "x";

	(void)state;
	s.refuse_after = 4;
	{
		struct chunked d;

		chunked_init(&d);
		assert_int_equal(chunked_decode(&d, "5\r\nhello\r\n0\r\n\r\n", 15, &used, emit, &s,
						&why),
				 CHUNKED_ERROR);
		assert_null(why); /* the refusal is the emitter's, not a syntax error */
		assert_int_equal(used, 3);
	}
}

static enum headscan_result
scan(const char *in, size_t step, size_t *total)
{
	struct headscan h;
	size_t len = strlen(in), off = 0;
	enum headscan_result r = HEADSCAN_MORE;

	headscan_init(&h);
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used;

		r = headscan_feed(&h, in + off, n, &used);
		off += used;
		if (r != HEADSCAN_MORE)
			break;
	}
	*total = off;
	return r;
}

static void
test_head_scan(void **state)
{
	(void)state;
	for (size_t step = 1; step < 64; step *= 3) {
		size_t used;
		const char *ok = "GET / HTTP/1.1\r\nHost: a\r\nX: b c\r\n\r\nBODY";

		assert_int_equal(scan(ok, step, &used), HEADSCAN_DONE);
		assert_int_equal(used, strlen(ok) - 4);
		assert_int_equal(scan("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", step, &used),
				 HEADSCAN_DONE);
		assert_int_equal(scan("GET / HTTP/1.1\nHost: a\n\n", step, &used), HEADSCAN_DONE);
		assert_int_equal(scan("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", step, &used),
				 HEADSCAN_FOLD);
		assert_int_equal(scan("GET / HTTP/1.1\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n", step,
				      &used),
				 HEADSCAN_FOLD);
		assert_int_equal(scan("GET / HTTP/1.1\rHost: a\r\n\r\n", step, &used),
				 HEADSCAN_BARE_CR);
		assert_int_equal(scan("GET / HTTP/1.1\r\nHost: a\r\n\rX", step, &used),
				 HEADSCAN_BARE_CR);
		assert_int_equal(scan("GET / HTTP/1.1\r\nHost: a\r\n", step, &used), HEADSCAN_MORE);
	}
}

/* The head scanner's rules one byte at a time (what headscan_feed must agree
 * with, whatever it skips over): result and bytes used for a whole input. */
static enum headscan_result
scan_reference(const char *in, size_t len, size_t *used)
{
	enum { START, LINE, CR, LINE_START, END_CR } st = START;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		*used = i;
		switch (st) {
		case START:
			st = (c == '\r' || c == '\n') ? START : LINE;
			break;
		case LINE:
			st = c == '\r' ? CR : c == '\n' ? LINE_START : LINE;
			break;
		case CR:
			if (c != '\n')
				return HEADSCAN_BARE_CR;
			st = LINE_START;
			break;
		case LINE_START:
			if (c == ' ' || c == '\t')
				return HEADSCAN_FOLD;
			if (c == '\n') {
				*used = i + 1;
				return HEADSCAN_DONE;
			}
			st = c == '\r' ? END_CR : LINE;
			break;
		case END_CR:
			if (c != '\n')
				return HEADSCAN_BARE_CR;
			*used = i + 1;
			return HEADSCAN_DONE;
		}
	}
	*used = len;
	return HEADSCAN_MORE;
}

static void
test_head_scan_random(void **state)
{
	static const char alphabet[] = "aaaaaaaa: \t\r\n\n";
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		char in[64];
		size_t len, want_used, got_used;
		enum headscan_result want, got;

		seed = seed * 1103515245u + 12345u;
		len = 1 + (seed >> 16) % (sizeof(in) - 1);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		in[len] = '\0';
		if (strlen(in) != len)
			continue;
		want = scan_reference(in, len, &want_used);
		for (size_t step = 1; step <= len; step += 1 + step / 2) {
			got = scan(in, step, &got_used);
			assert_int_equal(got, want);
			assert_int_equal(got_used, want_used);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_bodies),
		cmocka_unit_test(test_malformed_bodies),
		cmocka_unit_test(test_chunk_extension_grammar),
		cmocka_unit_test(test_chunk_extension_limit),
		cmocka_unit_test(test_emit_refusal_stops),
		cmocka_unit_test(test_head_scan),
		cmocka_unit_test(test_head_scan_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for encoder (gzip, zstd, br): what comes out after every flush
 * decodes, with the libraries' own decoders, to exactly the input given so far
 * (what streaming to a client needs), the finished stream decodes to the whole
 * input and ends, large inputs pass in pieces, and zstd's window stays within
 * 8 MiB from the lowest level to the highest we accept (RFC 9659).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/decode.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "proxy/encoder.h"

/* A streaming decoder for one coding, fed the encoder's output as it comes. */
struct decoder {
	enum acceptenc_coding coding;
	z_stream z;
	ZSTD_DCtx *zstd;
	BrotliDecoderState *br;
	unsigned char *out; /* everything decoded so far */
	size_t len, cap;
	bool ended;
};

static void
keep(struct decoder *d, const unsigned char *p, size_t n)
{
	if (n == 0)
		return;
	if (d->len + n > d->cap) {
		d->cap = (d->len + n) * 2;
		d->out = realloc(d->out, d->cap);
		assert_non_null(d->out);
	}
	memcpy(d->out + d->len, p, n);
	d->len += n;
}

static void
decoder_init(struct decoder *d, enum acceptenc_coding coding)
{
	memset(d, 0, sizeof *d);
	d->coding = coding;
	if (coding == ACCEPTENC_GZIP)
		assert_int_equal(inflateInit2(&d->z, 16 + MAX_WBITS), Z_OK);
	else if (coding == ACCEPTENC_ZSTD)
		assert_non_null(d->zstd = ZSTD_createDCtx());
	else
		assert_non_null(d->br = BrotliDecoderCreateInstance(NULL, NULL, NULL));
}

/* Decode all of <in> (drained). */
static void
decoder_feed(struct decoder *d, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in);
	unsigned char *src = malloc(n ? n : 1), buf[65536];

	assert_non_null(src);
	evbuffer_remove(in, src, n);
	if (d->coding == ACCEPTENC_GZIP) {
		d->z.next_in = src;
		d->z.avail_in = (uInt)n;
		do {
			int rc;

			d->z.next_out = buf;
			d->z.avail_out = sizeof buf;
			rc = inflate(&d->z, Z_SYNC_FLUSH);
			assert_true(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
			keep(d, buf, sizeof buf - d->z.avail_out);
			if (rc == Z_STREAM_END)
				d->ended = true;
		} while (d->z.avail_in > 0 || d->z.avail_out == 0);
	} else if (d->coding == ACCEPTENC_ZSTD) {
		ZSTD_inBuffer input = { src, n, 0 };
		ZSTD_outBuffer output;
		size_t rc;

		do {
			output = (ZSTD_outBuffer){ buf, sizeof buf, 0 };
			rc = ZSTD_decompressStream(d->zstd, &output, &input);
			assert_false(ZSTD_isError(rc));
			keep(d, buf, output.pos);
			if (rc == 0)
				d->ended = true;
		} while (input.pos < input.size || output.pos == output.size);
	} else {
		const uint8_t *next_in = src;
		size_t avail_in = n;
		BrotliDecoderResult rc;

		do {
			uint8_t *next_out = buf;
			size_t avail_out = sizeof buf;

			rc = BrotliDecoderDecompressStream(d->br, &avail_in, &next_in, &avail_out,
							   &next_out, NULL);
			assert_int_not_equal(rc, BROTLI_DECODER_RESULT_ERROR);
			keep(d, buf, sizeof buf - avail_out);
		} while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
		if (rc == BROTLI_DECODER_RESULT_SUCCESS)
			d->ended = true;
	}
	free(src);
}

static void
decoder_free(struct decoder *d)
{
	if (d->coding == ACCEPTENC_GZIP)
		inflateEnd(&d->z);
	ZSTD_freeDCtx(d->zstd);
	if (d->br)
		BrotliDecoderDestroyInstance(d->br);
	free(d->out);
}

/* <n> bytes of text that compresses like source code, varying with <seed>. */
static unsigned char *
make_text(size_t n, unsigned seed)
{
	unsigned char *t = malloc(n);
	size_t len = 0;
	unsigned x = seed * 2654435761u + 1;

	assert_non_null(t);
	while (len < n) {
		char line[96];
		int k;

		x = x * 1103515245u + 12345u;
		k = snprintf(line, sizeof line, "function handler_%u(event) { return event.detail + %u; }\n",
			     (x >> 8) % 5000, (x >> 4) % 97);
		for (int i = 0; i < k && len < n; i++)
			t[len++] = (unsigned char)line[i];
	}
	return t;
}

/* Feed <n> bytes of text in <pieces> writes, flushing each, and check that the
 * client could decode everything given after every one; then finish. */
static void
round_trip(enum acceptenc_coding coding, int level, size_t n, size_t pieces)
{
	unsigned char *text = make_text(n, (unsigned)coding + (unsigned)level);
	struct encoder *e = encoder_new(coding, level);
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct decoder d;
	size_t given = 0, sent = 0;

	assert_non_null(e);
	decoder_init(&d, coding);
	for (size_t i = 0; i < pieces; i++) {
		size_t take = i + 1 == pieces ? n - given : n / pieces;

		evbuffer_add(in, text + given, take);
		given += take;
		assert_int_equal(encoder_write(e, in, out, false), 0);
		assert_int_equal(evbuffer_get_length(in), 0);
		sent += evbuffer_get_length(out);
		decoder_feed(&d, out);
		/* Flushed: the client holds every byte given so far, no more. */
		assert_int_equal(d.len, given);
		assert_memory_equal(d.out, text, given);
		assert_false(d.ended);
	}
	assert_int_equal(encoder_write(e, NULL, out, true), 0);
	sent += evbuffer_get_length(out);
	decoder_feed(&d, out);
	assert_true(d.ended);
	assert_int_equal(d.len, n);
	assert_memory_equal(d.out, text, n);
	if (n >= 65536)
		assert_true(sent < n / 3); /* it does compress */
	decoder_free(&d);
	encoder_free(e);
	evbuffer_free(in);
	evbuffer_free(out);
	free(text);
}

static void
test_gzip_flushes_and_finishes(void **state)
{
	(void)state;
	round_trip(ACCEPTENC_GZIP, 6, 200000, 7);
	round_trip(ACCEPTENC_GZIP, ENCODER_GZIP_LEVEL_MIN, 100, 3);
	round_trip(ACCEPTENC_GZIP, ENCODER_GZIP_LEVEL_MAX, 70000, 2);
}

static void
test_zstd_flushes_and_finishes(void **state)
{
	(void)state;
	round_trip(ACCEPTENC_ZSTD, 3, 200000, 7);
	round_trip(ACCEPTENC_ZSTD, ENCODER_ZSTD_LEVEL_MIN, 100, 3);
	round_trip(ACCEPTENC_ZSTD, ENCODER_ZSTD_LEVEL_MAX, 70000, 2);
}

static void
test_br_flushes_and_finishes(void **state)
{
	(void)state;
	round_trip(ACCEPTENC_BR, 4, 200000, 7);
	round_trip(ACCEPTENC_BR, ENCODER_BR_LEVEL_MIN, 100, 3);
	round_trip(ACCEPTENC_BR, ENCODER_BR_LEVEL_MAX, 70000, 2);
}

static void
test_large_body_in_pieces(void **state)
{
	(void)state;
	round_trip(ACCEPTENC_GZIP, 1, 2 << 20, 32);
	round_trip(ACCEPTENC_ZSTD, 3, 2 << 20, 32);
	round_trip(ACCEPTENC_BR, 4, 2 << 20, 32);
}

static void
test_empty_body(void **state)
{
	static const enum acceptenc_coding codings[] = { ACCEPTENC_GZIP, ACCEPTENC_ZSTD,
							 ACCEPTENC_BR };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		struct encoder *e = encoder_new(codings[i], 3);
		struct evbuffer *out = evbuffer_new();
		struct decoder d;

		decoder_init(&d, codings[i]);
		assert_int_equal(encoder_write(e, NULL, out, true), 0);
		assert_true(evbuffer_get_length(out) > 0);
		decoder_feed(&d, out);
		assert_true(d.ended);
		assert_int_equal(d.len, 0);
		decoder_free(&d);
		encoder_free(e);
		evbuffer_free(out);
	}
}

static void
test_zstd_window_at_most_8_mib(void **state)
{
	(void)state;
	static const int levels[] = { ENCODER_ZSTD_LEVEL_MIN, 3, 12, 17, ENCODER_ZSTD_LEVEL_MAX };

	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
		int level = levels[i];
		struct encoder *e = encoder_new(ACCEPTENC_ZSTD, level);
		struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
		ZSTD_frameHeader h;
		unsigned char head[ZSTD_FRAMEHEADERSIZE_MAX];
		size_t n;

		evbuffer_add(in, "x", 1);
		assert_int_equal(encoder_write(e, in, out, true), 0);
		n = evbuffer_copyout(out, head, sizeof head);
		assert_int_equal(ZSTD_getFrameHeader(&h, head, n), 0);
		if (h.windowSize > (8u << 20))
			fail_msg("level %d: window %llu bytes", level, (unsigned long long)h.windowSize);
		encoder_free(e);
		evbuffer_free(in);
		evbuffer_free(out);
	}
}

static void
test_free_accepts_null(void **state)
{
	(void)state;
	encoder_free(NULL);
	assert_null(encoder_new(ACCEPTENC_IDENTITY, 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gzip_flushes_and_finishes),
		cmocka_unit_test(test_zstd_flushes_and_finishes),
		cmocka_unit_test(test_br_flushes_and_finishes),
		cmocka_unit_test(test_large_body_in_pieces),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_zstd_window_at_most_8_mib),
		cmocka_unit_test(test_free_accepts_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

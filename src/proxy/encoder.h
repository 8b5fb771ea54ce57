/*
 * encoder: one compressed response body in the making, over zlib (gzip),
 * libzstd (zstd) or libbrotli (br).  Each encoder keeps its own state, of a
 * bounded size fixed by its coding and level (see docs/config.md#compression),
 * and emits everything it was given at every flush, so a streamed response
 * (Server-Sent Events, long polls) reaches the client as it comes.  It knows
 * nothing of HTTP: proxy/compress.c decides when to use one.  The backends
 * are encoder_gzip.c, encoder_zstd.c and encoder_br.c.
 */
#ifndef PORTCULLIS_ENCODER_H
#define PORTCULLIS_ENCODER_H

#include <stdbool.h>
#include <stddef.h>

#include "http/acceptenc.h"

struct evbuffer;
struct encoder;

/* The levels each coding accepts (config checks against these). */
#define ENCODER_GZIP_LEVEL_MIN 1
#define ENCODER_GZIP_LEVEL_MAX 9
#define ENCODER_ZSTD_LEVEL_MIN 1
#define ENCODER_ZSTD_LEVEL_MAX 19
#define ENCODER_BR_LEVEL_MIN 0
#define ENCODER_BR_LEVEL_MAX 11
/* RFC 9659: a zstd content coding never needs a window over 8 MiB. */
#define ENCODER_ZSTD_WINDOW_LOG_MAX 23
/* br's window: 1 MiB keeps a stream's memory near zstd's and gzip's. */
#define ENCODER_BR_WINDOW_LOG 20

/* A new encoder for <coding> (not ACCEPTENC_IDENTITY) at <level> (within the
 * coding's range), or NULL when out of memory. */
struct encoder *encoder_new(enum acceptenc_coding coding, int level);

/* Compress all of <in> (drained; may be NULL) and append to <out> what it makes, flushed
 * so the client can decode every byte given so far; with <finish>, end the
 * stream (the trailer goes out; nothing may follow).  Returns 0, or -1 when
 * the library failed (out of memory): the body cannot go on. */
int encoder_write(struct encoder *e, struct evbuffer *in, struct evbuffer *out, bool finish);

/* Free <e> and everything its library holds.  Accepts NULL. */
void encoder_free(struct encoder *e);

/* ---- for the backends ---------------------------------------------- */

enum encoder_op {
	ENCODER_PROCESS, /* take input, emit what is ready */
	ENCODER_FLUSH,   /* emit everything taken so far */
	ENCODER_FINISH,  /* emit everything and end the stream */
};

/* One backend: <make> a state for a level, <step> it over <n> bytes of <in>
 * (with ENCODER_FLUSH and ENCODER_FINISH: none) appending output to <out>
 * (0, or -1 on a library error), <drop> it. */
struct encoder_backend {
	void *(*make)(int level);
	int (*step)(void *state, const unsigned char *in, size_t n, enum encoder_op op,
		    struct evbuffer *out);
	void (*drop)(void *state);
};

extern const struct encoder_backend encoder_gzip;
extern const struct encoder_backend encoder_zstd;
extern const struct encoder_backend encoder_br;

/* Output is made in pieces of this size, on the stack of step(). */
#define ENCODER_CHUNK 16384

#endif

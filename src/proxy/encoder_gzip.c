/* encoder_gzip: the gzip backend of encoder.h, over zlib. */
#include "proxy/encoder.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#define GZIP_WINDOW_BITS (15 + 16) /* 32 KiB window, gzip wrapper */
#define GZIP_MEM_LEVEL 8           /* zlib's default: about 256 KiB a stream */

static void *
gzip_make(int level)
{
	z_stream *z = calloc(1, sizeof *z);

	if (z == NULL)
		return NULL;
	if (deflateInit2(z, level, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		return NULL;
	}
	return z;
}

static int
gzip_step(void *state, const unsigned char *in, size_t n, enum encoder_op op,
	  struct evbuffer *out)
{
	z_stream *z = state;
	int flush = op == ENCODER_FINISH ? Z_FINISH : op == ENCODER_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH;
	unsigned char buf[ENCODER_CHUNK];
	int rc;

	z->next_in = (unsigned char *)(uintptr_t)in;
	z->avail_in = (uInt)n;
	do {
		z->next_out = buf;
		z->avail_out = sizeof buf;
		rc = deflate(z, flush);
		if (rc == Z_STREAM_ERROR)
			return -1;
		if (z->avail_out < sizeof buf &&
		    evbuffer_add(out, buf, sizeof buf - z->avail_out) < 0)
			return -1;
		/* Done when the input is taken and zlib left room: all is out. */
	} while (z->avail_in > 0 || (z->avail_out == 0 && rc != Z_STREAM_END) ||
		 (flush == Z_FINISH && rc != Z_STREAM_END));
	return 0;
}

static void
gzip_drop(void *state)
{
	z_stream *z = state;

	if (z == NULL)
		return;
	deflateEnd(z);
	free(z);
}

const struct encoder_backend encoder_gzip = {
	.make = gzip_make,
	.step = gzip_step,
	.drop = gzip_drop,
};

/* encoder_zstd: the zstd backend of encoder.h, over libzstd. */
#include "proxy/encoder.h"

#include <event2/buffer.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getCParams: the level's own window */
#include <zstd.h>

static void *
zstd_make(int level)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	/* The level's own window for inputs of unknown size, capped at 8 MiB. */
	unsigned window = ZSTD_getCParams(level, ZSTD_CONTENTSIZE_UNKNOWN, 0).windowLog;

	if (c == NULL)
		return NULL;
	if (window > ENCODER_ZSTD_WINDOW_LOG_MAX)
		window = ENCODER_ZSTD_WINDOW_LOG_MAX;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, (int)window)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1))) {
		ZSTD_freeCCtx(c);
		return NULL;
	}
	return c;
}

static int
zstd_step(void *state, const unsigned char *in, size_t n, enum encoder_op op,
	  struct evbuffer *out)
{
	ZSTD_EndDirective end = op == ENCODER_FINISH  ? ZSTD_e_end
				: op == ENCODER_FLUSH ? ZSTD_e_flush
						      : ZSTD_e_continue;
	ZSTD_inBuffer input = { in, n, 0 };
	unsigned char buf[ENCODER_CHUNK];
	size_t left;

	do {
		ZSTD_outBuffer output = { buf, sizeof buf, 0 };

		left = ZSTD_compressStream2(state, &output, &input, end);
		if (ZSTD_isError(left))
			return -1;
		if (output.pos > 0 && evbuffer_add(out, buf, output.pos) < 0)
			return -1;
		/* e_continue: done once the input is taken; flush and end: once
		 * nothing is left to emit. */
	} while (end == ZSTD_e_continue ? input.pos < input.size : left > 0);
	return 0;
}

static void
zstd_drop(void *state)
{
	ZSTD_freeCCtx(state);
}

const struct encoder_backend encoder_zstd = {
	.make = zstd_make,
	.step = zstd_step,
	.drop = zstd_drop,
};

/* encoder_br: the br backend of encoder.h, over libbrotli. */
#include "proxy/encoder.h"

#include <brotli/encode.h>
#include <event2/buffer.h>

static void *
br_make(int level)
{
	BrotliEncoderState *s = BrotliEncoderCreateInstance(NULL, NULL, NULL);

	if (s == NULL)
		return NULL;
	if (!BrotliEncoderSetParameter(s, BROTLI_PARAM_QUALITY, (uint32_t)level) ||
	    !BrotliEncoderSetParameter(s, BROTLI_PARAM_LGWIN, ENCODER_BR_WINDOW_LOG)) {
		BrotliEncoderDestroyInstance(s);
		return NULL;
	}
	return s;
}

static int
br_step(void *state, const unsigned char *in, size_t n, enum encoder_op op,
	struct evbuffer *out)
{
	BrotliEncoderOperation what = op == ENCODER_FINISH  ? BROTLI_OPERATION_FINISH
				      : op == ENCODER_FLUSH ? BROTLI_OPERATION_FLUSH
							    : BROTLI_OPERATION_PROCESS;
	unsigned char buf[ENCODER_CHUNK];
	const uint8_t *next_in = in;
	size_t avail_in = n;

	do {
		uint8_t *next_out = buf;
		size_t avail_out = sizeof buf;

		if (!BrotliEncoderCompressStream(state, what, &avail_in, &next_in, &avail_out,
						 &next_out, NULL))
			return -1;
		if (avail_out < sizeof buf && evbuffer_add(out, buf, sizeof buf - avail_out) < 0)
			return -1;
	} while (avail_in > 0 || BrotliEncoderHasMoreOutput(state) ||
		 (what == BROTLI_OPERATION_FINISH && !BrotliEncoderIsFinished(state)));
	return 0;
}

static void
br_drop(void *state)
{
	if (state != NULL)
		BrotliEncoderDestroyInstance(state);
}

const struct encoder_backend encoder_br = {
	.make = br_make,
	.step = br_step,
	.drop = br_drop,
};

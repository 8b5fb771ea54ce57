/* encoder: a compressed body over one of the backends; see encoder.h. */
#include "proxy/encoder.h"

#include <event2/buffer.h>
#include <stdlib.h>

struct encoder {
	const struct encoder_backend *backend;
	void *state;
};

struct encoder *
encoder_new(enum acceptenc_coding coding, int level)
{
	struct encoder *e;
	const struct encoder_backend *b = coding == ACCEPTENC_GZIP   ? &encoder_gzip
					  : coding == ACCEPTENC_ZSTD ? &encoder_zstd
					  : coding == ACCEPTENC_BR   ? &encoder_br
								     : NULL;

	if (b == NULL || (e = calloc(1, sizeof *e)) == NULL)
		return NULL;
	e->backend = b;
	e->state = b->make(level);
	if (e->state == NULL) {
		free(e);
		return NULL;
	}
	return e;
}

int
encoder_write(struct encoder *e, struct evbuffer *in, struct evbuffer *out, bool finish)
{
	struct evbuffer_iovec vec[8];
	int n;

	while (in != NULL && (n = evbuffer_peek(in, -1, NULL, vec, 8)) > 0) {
		size_t taken = 0;

		if (n > 8)
			n = 8;
		for (int i = 0; i < n; i++) {
			if (e->backend->step(e->state, vec[i].iov_base, vec[i].iov_len,
					     ENCODER_PROCESS, out) < 0)
				return -1;
			taken += vec[i].iov_len;
		}
		evbuffer_drain(in, taken);
	}
	return e->backend->step(e->state, NULL, 0, finish ? ENCODER_FINISH : ENCODER_FLUSH, out);
}

void
encoder_free(struct encoder *e)
{
	if (e == NULL)
		return;
	e->backend->drop(e->state);
	free(e);
}

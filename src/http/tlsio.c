/* tlsio: the TLS write loop of conn.c and tunnel.c; see tlsio.h. */
#include "http/tlsio.h"

#include <openssl/err.h>

#include <event2/buffer.h>

void
tlsio_clear_errors(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

enum tlsio_result
tlsio_write(SSL *ssl, struct evbuffer *out)
{
	static _Thread_local unsigned char stage[TLSIO_RECORD_MAX];

	while (evbuffer_get_length(out) > 0) {
		size_t len = evbuffer_get_length(out);
		struct evbuffer_iovec v;
		const void *data = stage;
		int n, err;

		if (len > TLSIO_RECORD_MAX)
			len = TLSIO_RECORD_MAX;
		if (evbuffer_peek(out, -1, NULL, &v, 1) >= 1 && v.iov_len >= len)
			data = v.iov_base;
		else if (evbuffer_copyout(out, stage, len) != (ev_ssize_t)len)
			return TLSIO_ERROR;
		tlsio_clear_errors();
		n = SSL_write(ssl, data, (int)len);
		if (n > 0) {
			evbuffer_drain(out, (size_t)n);
			continue;
		}
		err = SSL_get_error(ssl, n);
		if (err == SSL_ERROR_WANT_WRITE)
			return TLSIO_WANT_WRITE;
		if (err == SSL_ERROR_WANT_READ)
			return TLSIO_WANT_READ;
		return TLSIO_ERROR;
	}
	return TLSIO_DONE;
}

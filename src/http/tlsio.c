/* tlsio: the TLS write loop of conn.c and tunnel.c; see tlsio.h. */
#include "http/tlsio.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

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

ssize_t
tlsio_read(SSL *ssl, int fd, void *buf, size_t room, bool *wants_write)
{
	if (ssl != NULL) {
		int n, err;

		tlsio_clear_errors();
		n = SSL_read(ssl, buf, room > INT_MAX ? INT_MAX : (int)room);
		if (n > 0)
			return n;
		err = SSL_get_error(ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			return -1;
		if (err == SSL_ERROR_WANT_WRITE) {
			*wants_write = true;
			return -1;
		}
		return err == SSL_ERROR_ZERO_RETURN ? 0 : -2;
	}
	for (;;) {
		ssize_t n = read(fd, buf, room);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
	}
}

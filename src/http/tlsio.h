/*
 * tlsio: the TLS read and write loops and error-queue habit shared by the two places
 * that run TLS on a raw socket, the HTTP transport (conn.c) and the byte
 * tunnel (tunnel.c).  Pure OpenSSL + evbuffer: no events; the callers decide
 * what waiting means for them.
 */
#ifndef PORTCULLIS_TLSIO_H
#define PORTCULLIS_TLSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct evbuffer;

/* Plaintext bytes in one TLS record: the most one SSL_write sends. */
#define TLSIO_RECORD_MAX 16384

enum tlsio_result {
	TLSIO_DONE,       /* <out> is empty */
	TLSIO_WANT_WRITE, /* the socket is full: call again when it is writable */
	TLSIO_WANT_READ,  /* OpenSSL must read first (renegotiation, key update) */
	TLSIO_ERROR,      /* the connection is broken; <out> is left as it was */
};

/* Empty OpenSSL's error queue before an SSL_* I/O call (SSL_get_error reads
 * it).  Peeks first: ERR_clear_error walks all 16 slots even when the queue
 * is empty, which it nearly always is. */
void tlsio_clear_errors(void);

/*
 * Encrypt and send <out> through <ssl>, at most one record per SSL_write:
 * one record and one system call for a small response whose head and body
 * sit in separate chains.  They are copied to a per-thread staging buffer
 * rather than pulled up (which would allocate a chain each time); a single
 * chain is used in place.  Needs SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER (a retry
 * may come from either).  Drains what was sent.
 */
enum tlsio_result tlsio_write(SSL *ssl, struct evbuffer *out);

/*
 * Read at most <room> bytes into <buf>: through <ssl> when it is not NULL,
 * else straight from <fd>.  Returns the bytes read (> 0), 0 at EOF (TLS:
 * close_notify, or a TCP EOF with SSL_OP_IGNORE_UNEXPECTED_EOF), -1 for
 * "nothing now" (with *<wants_write> set when OpenSSL must write first: wait
 * for the socket to be writable), -2 for an error.
 */
ssize_t tlsio_read(SSL *ssl, int fd, void *buf, size_t room, bool *wants_write);

#endif

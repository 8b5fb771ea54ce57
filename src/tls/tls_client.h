/*
 * tls_client: the client side of TLS, for connections to upstreams over
 * HTTPS.  One SSL_CTX per upstream, built when the configuration loads and
 * shared by every worker (SSL_CTX is thread-safe; each connection is used by
 * one thread only).  Verification is on unless the caller turns it off
 * explicitly: against a PEM bundle when one is given, else the system store.
 * Sessions resume from a slot the caller owns per server (set on each
 * connection with tls_client_session_slot): OpenSSL's own client cache is
 * not used, so nothing is shared between threads.
 */
#ifndef PORTCULLIS_TLS_CLIENT_H
#define PORTCULLIS_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* What an upstream's "tls" block asks for. */
struct tls_client_opts {
	const char *ca_bundle;   /* PEM file of trusted CAs; NULL: the system store */
	const char *client_cert; /* PEM chain for mTLS, or NULL */
	const char *client_key;  /* its key; NULL: in client_cert */
	bool verify;             /* false only for an explicit opt-out */
};

/*
 * A client SSL_CTX for <opts> (TLS 1.2 and 1.3, ALPN http/1.1), or NULL with
 * the reason in <err> (a file that cannot be read, a key that does not match
 * its certificate, an empty bundle).
 */
SSL_CTX *tls_client_ctx_new(const struct tls_client_opts *opts, char *err, size_t errlen);

/*
 * A connection from <ctx> on socket <fd>: SNI <sni> (NULL or an IP literal:
 * none), checked against <verify_name> (a DNS name or IP literal), resuming
 * from *<slot> when it holds a session; new sessions the server sends are
 * stored into *<slot> (the old one freed), which must outlive the SSL or be
 * detached with tls_client_session_slot(ssl, NULL).  NULL on failure.
 */
SSL *tls_client_new(SSL_CTX *ctx, int fd, const char *sni, const char *verify_name,
		    SSL_SESSION **slot);

/* Point <ssl>'s new sessions at <slot> (NULL: drop them). */
void tls_client_session_slot(SSL *ssl, SSL_SESSION **slot);

/*
 * Why a handshake on <ssl> failed, as one line: the certificate verification
 * result when that failed ("certificate verify failed: Hostname mismatch"),
 * else OpenSSL's error queue, else <fallback>.  The text lives in a
 * thread-local buffer until the next call on this thread.
 */
const char *tls_client_failure(SSL *ssl, const char *fallback);

#endif

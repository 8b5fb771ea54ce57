/*
 * tls_handshake: the server SSL_CTX and everything that runs during a
 * handshake, on worker threads: the ClientHello callback (SNI lookup in the
 * published certificate index, TLS-ALPN-01 through the challenge hook), ALPN
 * selection (acme-tls/1, http/1.1; where h2 will go), session-ticket keys
 * and their rotation, and the plain-HTTP-on-a-TLS-port answer.  Inside the
 * tls/ layer: tls.c owns one and publishes each new index to it; callers
 * outside include tls.h, which includes this header (for tls_challenge_fn
 * and tls_answer_plain_http).
 */
#ifndef PORTCULLIS_TLS_HANDSHAKE_H
#define PORTCULLIS_TLS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include <openssl/x509.h>

/*
 * TLS-ALPN-01 hook: given the client's SNI name, set *cert and *key to new
 * references and return 0, or return -1 when no challenge is pending for
 * that name (the handshake then fails).  Called from worker threads: must be
 * thread-safe.  acme.h's acme_tlsalpn01_cert has this shape.
 */
typedef int (*tls_challenge_fn)(const char *sni, X509 **cert, EVP_PKEY **key);

/* Answer a connection whose first bytes on a TLS port are not TLS (plain
 * HTTP) with a plain-HTTP 400 that says to use https://, shut its write side
 * and count it in portcullis_tls_plain_http_total.  The caller closes it. */
void tls_answer_plain_http(const SSL *ssl);

/*
 * The ALPN protocols connection <ssl> may select, in the server's order of
 * preference (NULL-ended; <protos> must outlive the handshake).  The first
 * the client also offers is selected; none: the handshake goes on without
 * ALPN.  Unset: "http/1.1" only.  Returns 0 or -1.
 */
int tls_set_alpn(SSL *ssl, const char *const *protos);

/* A NULL-ended copy of the <n> protocol names <protos> that lives until the
 * process exits (the same pointer for the same list), for tls_set_alpn from
 * a configuration that may be replaced.  NULL when out of memory. */
const char *const *tls_alpn_intern(const char *const *protos, size_t n);


struct tls_handshake;
struct tls_index;

/*
 * A new handshake state: an SSL_CTX with Mozilla "intermediate" settings,
 * our callbacks and fresh ticket keys that rotate every <rotate_seconds>;
 * no index yet (handshakes fail until one is published).  NULL with a
 * one-line reason in <err> on failure.
 */
struct tls_handshake *tls_handshake_new(unsigned rotate_seconds, char *err, size_t errlen);

/* Free it: the SSL_CTX, the published index and the wiped ticket keys.  The
 * SSL_CTX must outlive every connection made from it.  NULL accepted. */
void tls_handshake_free(struct tls_handshake *hs);

/* The server SSL_CTX (borrowed; never changes during <hs>'s life). */
SSL_CTX *tls_handshake_ctx(struct tls_handshake *hs);

/* Make <ix> the index that new handshakes use (its reference is taken
 * over) and drop the previous one. */
void tls_handshake_publish(struct tls_handshake *hs, struct tls_index *ix);

/* A reference to the published index (NULL when none yet; the caller
 * unrefs it), and, when <hook> is not NULL, the challenge hook. */
struct tls_index *tls_handshake_index_ref(struct tls_handshake *hs, tls_challenge_fn *hook);

/* Set (or, with NULL, remove) the TLS-ALPN-01 challenge hook. */
void tls_handshake_set_hook(struct tls_handshake *hs, tls_challenge_fn fn);

/* Rotate the ticket keys now (the current one still decrypts).  Returns 0,
 * or -1 (logged) when there is no randomness. */
int tls_handshake_rotate_keys(struct tls_handshake *hs);

/* True when the keys are older than the rotation period at monotonic time
 * <now> (seconds). */
bool tls_handshake_rotation_due(struct tls_handshake *hs, double now);

/* Plain HTTP requests answered on TLS ports so far. */
unsigned long long tls_handshake_plain_http(struct tls_handshake *hs);

#endif

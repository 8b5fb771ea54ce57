/*
 * tls_clientauth: client-certificate authentication (mTLS) chosen at the
 * handshake, per listener or per SNI name.  HTTP/2 allows no renegotiation,
 * so the policy a connection is verified under is fixed by its SNI: the
 * ClientHello callback (tls_handshake.c) asks this module which policy the
 * name has, and the handshake requests (optional) or demands (required) a
 * certificate that chains to that policy's CA bundle.  A certificate that is
 * presented but does not verify fails the handshake in both modes.
 *
 * A map (one per listener, built from the configuration, reference-counted)
 * holds the policies and which names use them.  A connection keeps a
 * reference to its map and remembers its policy, so that the proxy can
 * refuse (421) a request for a host whose policy differs from the one the
 * connection was verified under, and read the verified identity to pass
 * upstream.  Each policy gets its own session-id context, so a session
 * resumed under one policy never carries into another.
 *
 * Callers: the config loader builds maps, the HTTP server attaches one to each
 * new TLS connection, the proxy reads the outcome.  Thread-safe: a map is
 * immutable once attached.
 */
#ifndef PORTCULLIS_TLS_CLIENTAUTH_H
#define PORTCULLIS_TLS_CLIENTAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct tls_client_auth_map;

/* The verified client certificate of a connection, as header-safe text. */
struct tls_client_identity {
	char *subject;    /* RFC 2253 distinguished name (non-ASCII escaped) */
	char sha256[65];  /* SHA-256 of the DER certificate, lower-case hex */
	char *san;        /* "DNS:a, email:b, URI:c, IP:d"; "" when it has none */
};

/* A new, empty map: no policy for any name (client certificates are not
 * asked for).  NULL when out of memory. */
struct tls_client_auth_map *tls_client_auth_map_new(void);

/* Take one more reference / drop one (the last frees).  NULL accepted. */
struct tls_client_auth_map *tls_client_auth_map_ref(struct tls_client_auth_map *m);
void tls_client_auth_map_unref(struct tls_client_auth_map *m);

/*
 * The policy "certificates chaining to the CA bundle <ca_path>, <required> or
 * optional" in <m>: a policy number (the same one for the same file and
 * mode), or -1 with a one-line reason in <err> (unreadable file, no
 * certificate in it).
 */
int tls_client_auth_map_policy(struct tls_client_auth_map *m, const char *ca_path, bool required,
			       char *err, size_t errlen);

/* Give host name <name> (lower case; "*.example.com" covers one label) policy
 * <policy> (a number from tls_client_auth_map_policy, or -1: none).  A name
 * given twice keeps the first.  Returns 0 or -1 (out of memory). */
int tls_client_auth_map_name(struct tls_client_auth_map *m, const char *name, int policy);

/* The policy of clients without SNI or with a name the map does not list
 * (-1: none, the default). */
void tls_client_auth_map_default(struct tls_client_auth_map *m, int policy);

/* True when some name (or the default) of <m> has a policy. */
bool tls_client_auth_map_active(const struct tls_client_auth_map *m);

/* Attach <m> to the new server connection <ssl> (a reference is taken and
 * dropped when <ssl> is freed).  Returns 0 or -1. */
int tls_set_client_auth(SSL *ssl, struct tls_client_auth_map *m);

/*
 * From the ClientHello callback: set up <ssl> for the policy of <sni> (NULL:
 * none sent): verification mode, CA store, the CA names sent to the client
 * and the session-id context.  Nothing for a connection without a map.
 * Returns 0 or -1 (out of memory: fail the handshake).
 */
int tls_client_auth_handshake(SSL *ssl, const char *sni);

/* True when <ssl> was verified under another policy than <host>'s (lower
 * case, no port; NULL or "": the default), so a request for <host> on it is
 * misdirected (421).  False for a NULL <ssl> or one without a map. */
bool tls_client_auth_misdirected(SSL *ssl, const char *host);

/* The verified client certificate of <ssl> (computed once per connection;
 * borrowed, lives as long as <ssl>), or NULL when there is none: no policy,
 * none asked for, or none sent under an optional policy. */
const struct tls_client_identity *tls_client_identity(SSL *ssl);

#endif

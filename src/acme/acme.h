/*
 * acme: Portcullis's built-in ACME (RFC 8555) client.  It obtains certificates
 * for the configured sets of DNS names, keeps them under the storage folder,
 * renews them before they expire and hands every certificate it obtains or
 * finds in storage to the caller through a callback.  It answers the CA's
 * challenges through two thread-safe lookups that the listeners call:
 * acme_http01_lookup() on the plain-HTTP port and acme_tlsalpn01_cert() from
 * the TLS ClientHello callback when the client offers ALPN "acme-tls/1".
 *
 * Everything the manager does runs on the event_base it is given (normally
 * the main thread's): all network I/O is asynchronous with bounded timeouts,
 * so a CA that is down, slow or answers garbage never blocks serving.  It does
 * not terminate TLS and does not choose certificates for handshakes: the tls
 * module does that with what on_certificate delivers.
 *
 * Storage layout (directories 0700, keys 0600, every file written atomically):
 *   <storage>/acme/<ca>/account.key           ES256 account key
 *   <storage>/acme/<ca>/<first-name>/cert.pem chain, leaf first
 *   <storage>/acme/<ca>/<first-name>/key.pem  certificate key
 *   <storage>/acme/<ca>/<first-name>/state.json  failures, next attempt, last error
 *   <storage>/acme/<ca>/<first-name>/lock     held while one instance orders
 * where <ca> is the directory URL's host and port ("acme-v02.api.letsencrypt.org").
 *
 * Split by concern: acme_jws.c (JOSE and X.509 helpers, pure), acme_store.c
 * (files and locks, pure), acme_sched.c (renewal arithmetic, pure),
 * acme_challenge.c (challenge responders, thread-safe), acme_http.c (HTTPS
 * client on libcurl's multi interface, on the manager's event loop),
 * acme_order.c (the RFC 8555 steps of an order or an ARI check) and
 * acme_client.c (this API: jobs, certificates and the scheduler).
 */
#ifndef PORTCULLIS_ACME_H
#define PORTCULLIS_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

struct event_base;
struct acme_manager;

#define ACME_LETSENCRYPT_PRODUCTION "https://acme-v02.api.letsencrypt.org/directory"
#define ACME_LETSENCRYPT_STAGING "https://acme-staging-v02.api.letsencrypt.org/directory"

/* The ALPN protocol name of TLS-ALPN-01 (RFC 8737), as a C string. */
#define ACME_TLSALPN01_PROTOCOL "acme-tls/1"

/* Challenge types, as a bit set in acme_settings.challenges. */
enum acme_challenge_type {
	ACME_CHALLENGE_HTTP01 = 1u << 0,
	ACME_CHALLENGE_TLSALPN01 = 1u << 1,
};

/* One certificate to obtain: the DNS names it covers (the first one names its
 * storage folder).  Wildcards are not supported (they need DNS-01). */
struct acme_order_spec {
	const char *const *names;
	size_t n_names;
};

/*
 * Called on the manager's event_base thread whenever a certificate is obtained
 * or, at acme_manager_start(), found valid in storage.  <chain_pem> is the full
 * chain (leaf first), <key_pem> its private key (PEM), <not_after> the leaf's
 * expiry.  The strings are valid only during the call: copy what you keep.
 */
typedef void (*acme_certificate_cb)(const char *const *names, size_t n_names,
				    const char *chain_pem, const char *key_pem,
				    time_t not_after, void *arg);

struct acme_settings {
	const char *directory_url;   /* NULL: Let's Encrypt production */
	const char *email;           /* NULL: account without contact */
	const char *ca_bundle;       /* PEM file trusted for the directory's own TLS; NULL: system store */
	const char *eab_kid;         /* External Account Binding key id, or NULL */
	const char *eab_hmac_key;    /* its HMAC key, base64url as CAs hand it out */
	const char *storage_dir;     /* NULL: "certs" */
	const struct acme_order_spec *orders;
	size_t n_orders;
	unsigned challenges;         /* enum acme_challenge_type bits; 0: both */
	acme_certificate_cb on_certificate;
	void *cb_arg;

	/* Tuning; 0 means the default in brackets. */
	unsigned retry_base_seconds;      /* first retry after a failure [60] */
	unsigned retry_max_seconds;       /* longest retry interval [21600 = 6 h] */
	unsigned lock_stale_seconds;      /* a lock untouched this long is taken over [900] */
	unsigned request_timeout_seconds; /* one HTTP exchange with the CA [30] */
	unsigned order_timeout_seconds;   /* one whole order, all polls included [600] */
};

/*
 * Create a manager on <base> from <s> (everything is copied).  Checks the
 * settings (URL is https, names are valid DNS names, storage folder can be
 * created with mode 0700, the CA bundle and the EAB key can be read) and loads
 * or creates the account key.  Nothing is sent to the CA yet.  Returns NULL
 * with a one-line reason in <err> on failure.
 */
struct acme_manager *acme_manager_new(struct event_base *base, const struct acme_settings *s,
				      char *err, size_t errlen);

/*
 * Load every certificate found valid in storage (calling on_certificate for
 * each before returning) and schedule renewals and first orders on the event
 * loop.  A restart with valid certificates in storage orders nothing.
 * Returns 0, or -1 with a reason in <err> (nothing scheduled).
 */
int acme_manager_start(struct acme_manager *m, char *err, size_t errlen);

/*
 * Renew the certificate whose name set contains <name> as soon as possible,
 * whatever its expiry (an operator's "renew now").  Persisted back-off is
 * ignored for this one attempt.  Returns 0, or -1 if no order has that name.
 */
int acme_manager_renew_now(struct acme_manager *m, const char *name);

/*
 * Prometheus text for the ACME metrics (renewals attempted/succeeded/failed,
 * challenges served, and per certificate its expiry and next attempt time),
 * in a new string the caller frees; pass it as metrics_render()'s <extra>.
 * Safe from any thread.  Accepts NULL (then only the challenge counters).
 */
char *acme_metrics_render(struct acme_manager *m);

/* One ACME certificate as the status page shows it (strings borrowed for
 * the duration of the callback). */
struct acme_cert_status {
	const char *const *names;
	size_t n_names;
	time_t not_after;        /* of the certificate served; 0: none yet */
	time_t renew_at;         /* when renewal starts (0: none yet) */
	time_t next_attempt;     /* next planned order or retry */
	unsigned failures;       /* failed attempts since the last success */
	const char *last_error;  /* "" after a success or before any attempt */
	bool ordering;           /* an order (or a renewal-info check) for it is under way */
};

/* Call <fn> for every certificate of <m> (accepts NULL: no calls).  From the
 * thread of the manager's event_base. */
void acme_manager_each_cert(struct acme_manager *m,
			    void (*fn)(const struct acme_cert_status *info, void *arg), void *arg);

/* Cancel everything in flight, release locks, free.  Accepts NULL. */
void acme_manager_free(struct acme_manager *m);

/*
 * HTTP-01: if <token> (the last path segment of
 * /.well-known/acme-challenge/<token>) belongs to a pending challenge, copy
 * its key authorization (NUL-terminated) into <keyauth_out> and return true;
 * serve it as 200 text/plain.  Otherwise false (answer 404).  Thread-safe.
 */
bool acme_http01_lookup(const char *token, char *keyauth_out, size_t len);

/*
 * TLS-ALPN-01: if a challenge for <sni> is pending, set <*cert> and <*key> to
 * new references (caller frees with X509_free / EVP_PKEY_free) to the
 * self-signed certificate carrying the critical acmeIdentifier extension and
 * return 0; otherwise -1.  Thread-safe.
 */
int acme_tlsalpn01_cert(const char *sni, X509 **cert, EVP_PKEY **key);

/*
 * Convenience for a ClientHello callback (SSL_CTX_set_client_hello_cb).
 * Returns false when the client did not offer ALPN "acme-tls/1": handle the
 * handshake normally.  Otherwise returns true and sets <*alert>: 0 when the
 * challenge certificate for the ClientHello's SNI is now installed on <ssl>
 * (return SSL_CLIENT_HELLO_SUCCESS; the ALPN callback must then select
 * "acme-tls/1", see acme_tlsalpn01_alpn_select), or the TLS alert to fail
 * the handshake with (no challenge pending for that name, or no SNI: return
 * SSL_CLIENT_HELLO_ERROR with that alert).  Thread-safe.
 */
bool acme_tlsalpn01_client_hello(SSL *ssl, int *alert);

/*
 * For an ALPN select callback: true if the client's protocol list <in>
 * (wire format) offers "acme-tls/1"; then <*out>/<*outlen> point at it.
 */
bool acme_tlsalpn01_alpn_select(const unsigned char **out, unsigned char *outlen,
				const unsigned char *in, unsigned int inlen);

#endif

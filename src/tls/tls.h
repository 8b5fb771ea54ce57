/*
 * tls: TLS termination for the HTTPS listeners.  One process-wide certificate
 * store (struct tls_store) owns the server SSL_CTX, every certificate the
 * process serves, the session-ticket keys and the local CA.  Worker threads
 * only create connections from its SSL_CTX (tls_store_ctx); the main thread
 * changes it (tls_store_poll, tls_store_install).  Thread-safe throughout.
 * Three files: tls.c (the store: sources, polling, installs, metrics),
 * tls_cert.c (certificates and the name index) and tls_handshake.c (the
 * SSL_CTX and its handshake callbacks); beside them tls_clientauth.c
 * (client-certificate policies) and tls_ocsp.c (OCSP staples).
 *
 * Handshakes: the ClientHello callback reads SNI and ALPN from the hello,
 * looks the name up (exact name, then the "*.parent" wildcard, then the
 * default certificate for clients without SNI or with an unknown name) and
 * puts that name's certificates on the connection: an ECDSA and an RSA
 * certificate for the same name sit side by side and OpenSSL picks the one
 * the client's signature algorithms and ciphers allow.  A client offering
 * ALPN "acme-tls/1" (TLS-ALPN-01, RFC 8737) gets the certificate of the
 * challenge hook instead and negotiates acme-tls/1; everyone else negotiates
 * http/1.1.  Protocol settings are Mozilla "intermediate": TLS 1.2 and 1.3,
 * its cipher list, client cipher preference, no compression, no
 * renegotiation.
 *
 * Swaps are atomic: the store keeps an immutable, reference-counted index of
 * certificates and replaces it under a lock.  A handshake takes references to
 * the certificate and key it uses, so one that started on an old certificate
 * finishes on it while new handshakes get the new one.
 *
 * Sessions resume with tickets only (no server-side cache, nothing to share
 * between threads or processes but the keys): one key set per store, shared
 * by every worker, rotated every ticket_rotate_seconds; the previous key still
 * decrypts (and such tickets are renewed), so a ticket lives at most two
 * rotation periods.
 *
 * Plain HTTP sent to a TLS port is answered "400 Bad Request" with a text body
 * saying the port speaks HTTPS, then the connection closes: the SSL_CTX's info
 * callback does it, so the worker needs nothing beyond the SSL_CTX.
 *
 * Certificate sources: PEM files (checked at load, re-read when they change
 * on disk), the local CA (localca.h) and certificates installed at run time
 * (by the ACME module).  This module does not obtain certificates and does
 * not parse the configuration file.
 */
#ifndef PORTCULLIS_TLS_H
#define PORTCULLIS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/tls_cert.h"
#include "tls/tls_handshake.h"

struct tls_store;


/* Everything tls_store_new needs; filled from the configuration.  Strings are
 * copied.  Zero values mean the default in brackets. */
struct tls_options {
	const char *certs_dir;             /* folder for the local CA ["certs"] */
	const struct tls_file_pair *files; /* certificates from files, in priority order */
	size_t nfiles;
	bool local_ca;                     /* serve a leaf from the local CA */
	/* Names for the local CA's leaf besides localhost, 127.0.0.1 and ::1
	 * (DNS names, "*.name" wildcards or IP addresses). */
	const char *const *local_names;
	size_t nlocal_names;
	unsigned local_leaf_days;          /* lifetime of local leaves [7] */
	/* Name whose certificates serve clients without SNI or with a name no
	 * certificate has.  NULL: the first certificate (files, then local CA,
	 * then installed). */
	const char *default_name;
	unsigned ticket_rotate_seconds;    /* session-ticket key rotation [43200] */
};

/*
 * Build the store: the SSL_CTX, the certificates from files (every file is
 * checked; errors name the file and what is wrong, one per line), the local
 * CA (created under <certs_dir>/local-ca on first use) and fresh ticket keys.
 * A store without any certificate is allowed (certificates may come from
 * ACME later; until then handshakes fail with an "unrecognized_name" alert).
 * Returns NULL with the reasons in <err> on failure.
 */
struct tls_store *tls_store_new(const struct tls_options *opt, char *err, size_t errlen);

/* Free the store.  Connections still open keep their own references to
 * their certificates, but the SSL_CTX must outlive every connection made from
 * it: call this after the workers have stopped.  Accepts NULL. */
void tls_store_free(struct tls_store *s);

/* The server SSL_CTX (borrowed; never changes during the store's life). */
SSL_CTX *tls_store_ctx(struct tls_store *s);

/*
 * Periodic work, from one thread (the main loop's timer, every few seconds):
 * re-read certificate files whose cert or key changed on disk (device,
 * inode, size or mtime, following symlinks, so a Kubernetes ..data swap is
 * seen), renew the local leaf when a third of its life remains, and rotate
 * the ticket keys when due.  A file that fails its checks is logged once and
 * the old certificate stays.  Returns the number of certificates replaced.
 */
int tls_store_poll(struct tls_store *s);

/*
 * Install (or replace) the certificate known as <name> (for the ACME module,
 * one name per order: its first name) from PEM text.  The same checks as for
 * files apply and the certificate must cover <name>.  New handshakes use it at
 * once.  Returns 0, or -1 with a one-line reason in <err>.
 */
int tls_store_install(struct tls_store *s, const char *name, const char *chain_pem,
		      const char *key_pem, char *err, size_t errlen);

/* Same, reading the PEM text from <cert_path> and <key_path>. */
int tls_store_install_files(struct tls_store *s, const char *name, const char *cert_path,
			    const char *key_path, char *err, size_t errlen);

/*
 * Shaped as acme.h's acme_certificate_cb (<arg> is the store): installs the
 * certificate under names[0] and logs the outcome.
 */
void tls_store_acme_certificate_cb(const char *const *names, size_t n_names,
				   const char *chain_pem, const char *key_pem, time_t not_after,
				   void *arg);

/* Register (or, with NULL, remove) the challenge hook.  Without one, clients
 * offering acme-tls/1 fail their handshake. */
void tls_store_set_challenge_hook(struct tls_store *s, tls_challenge_fn fn);

/* Rotate the session-ticket keys now: the current key becomes the previous
 * one (still decrypting), a fresh random key encrypts.  Returns 0 or -1. */
int tls_store_rotate_ticket_keys(struct tls_store *s);

/*
 * Prometheus text, in a new string the caller frees (NULL when out of
 * memory): portcullis_certificate_expiry_seconds{name,key,source} (notAfter
 * as a Unix time) for every certificate served, and
 * portcullis_tls_plain_http_total and the OCSP stapling counters (tls_ocsp.h).
 * Pass it as metrics_render()'s <extra>.
 */
char *tls_store_metrics(struct tls_store *s);

/* A reference to the certificates served now (tls_cert.h; the caller
 * unrefs it with tls_index_unref), or NULL when there are none yet. */
struct tls_index *tls_store_index_ref(struct tls_store *s);

/* One served certificate, as the status page lists it (strings borrowed for
 * the duration of the callback). */
struct tls_cert_info {
	const char *const *names; /* subjectAltNames, lower case */
	size_t nnames;
	const char *key;          /* "rsa", "ecdsa", ... */
	const char *source;       /* "file", "acme", "local_ca", ... */
	time_t not_before, not_after;
};

/* Call <fn> once for every certificate served now, in name order. */
void tls_store_each_cert(struct tls_store *s,
			 void (*fn)(const struct tls_cert_info *info, void *arg), void *arg);

/* Path of the local CA's certificate (for users who want to trust it), or
 * NULL when the store has no local CA. */
const char *tls_store_local_ca_path(const struct tls_store *s);

#endif

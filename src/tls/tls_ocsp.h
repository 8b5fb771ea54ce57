/*
 * tls_ocsp: OCSP stapling, the OpenSSL half.  Builds the request for a
 * certificate whose AIA names an OCSP responder, checks a response (signed
 * by the issuer or a responder it delegated to, status "good", within its
 * thisUpdate/nextUpdate window) and keeps accepted responses in a
 * process-wide cache keyed by the certificate's fingerprint.  The SSL_CTX's
 * status callback (tls_handshake.c) staples what the cache holds for the
 * certificate a handshake chose, only while it is still valid: a handshake
 * never waits for a responder.
 *
 * It does not fetch: core/ocsp_stapler.c asks for responses in the
 * background through the outbound HTTP client and hands them here.
 * Thread-safe (the cache has its own lock; handshakes run on workers).
 */
#ifndef PORTCULLIS_TLS_OCSP_H
#define PORTCULLIS_TLS_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* The certificate's identity in the cache and in file names: SHA-1 of its
 * DER (OpenSSL caches it in the X509), 40 hex digits. */
void tls_ocsp_fingerprint(X509 *leaf, char out[41]);

/*
 * The first OCSP responder URL of <leaf>'s AIA (new string, caller frees),
 * or NULL when it has none (or out of memory).
 */
char *tls_ocsp_url(X509 *leaf);

/*
 * The GET URL of an OCSP request for <leaf> issued by <issuer>, at
 * responder <url> (RFC 6960 A.1: the base64 of the DER request, URL-encoded,
 * appended as a path segment).  New string, or NULL with a reason in <err>.
 */
char *tls_ocsp_request_url(X509 *leaf, X509 *issuer, const char *url, char *err, size_t errlen);

/*
 * Check the DER response <der> for <leaf> issued by <issuer>: a successful
 * response, signed by <issuer> or by a responder certificate <issuer>
 * issued for OCSP signing, saying "good" for <leaf>, current now (five
 * minutes of clock skew allowed) and with a nextUpdate.  Sets *<this_update>
 * and *<next_update> and returns 0; -2 when the response verifies but says
 * "revoked" or "unknown"; -1 for any other failure (not a response, the
 * signature does not verify, not current...).  A reason in <err> either way.
 */
int tls_ocsp_check(X509 *leaf, X509 *issuer, const unsigned char *der, size_t len,
		   time_t *this_update, time_t *next_update, char *err, size_t errlen);

/* Keep <der> (checked with tls_ocsp_check) as <leaf>'s staple until
 * <next_update>, replacing any older one.  Returns 0 or -1 (out of memory). */
int tls_ocsp_put(X509 *leaf, const unsigned char *der, size_t len, time_t next_update);

/* Drop the staple of the certificate with fingerprint <fp>. */
void tls_ocsp_drop(const char *fp);

/* The nextUpdate of <leaf>'s cached staple, or 0 when there is none. */
time_t tls_ocsp_next_update(X509 *leaf);

/* The SSL_CTX status callback: staples the cached, still valid response of
 * the chosen certificate, or nothing. */
int tls_ocsp_status_cb(SSL *ssl, void *arg);

/* Outcomes counted for the metrics. */
enum tls_ocsp_outcome {
	TLS_OCSP_FETCHED,  /* a response accepted and cached */
	TLS_OCSP_REJECTED, /* a response that failed tls_ocsp_check */
	TLS_OCSP_FAILED,   /* no response: responder down, timeout, HTTP error */
	TLS_OCSP_OUTCOMES,
};
void tls_ocsp_count(enum tls_ocsp_outcome o);

/* Prometheus text for the counters, staples served, and cached responses. */
void tls_ocsp_metrics(FILE *f);

#endif

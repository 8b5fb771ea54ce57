/*
 * ocsp_stapler: keeps an OCSP response ready for every certificate served
 * whose AIA names a responder, on the main event loop.  Once a second it
 * looks at the certificates of the TLS store; a new one gets the response
 * saved in the state folder if that is still good, else a fetch at once.
 * Fetches go through the ACME client's outbound HTTP (libcurl: http_proxy
 * applies) and never block anything: handshakes staple only what
 * tls/tls_ocsp.h has already checked and cached.  A response is refreshed at
 * half its validity; failures are retried after 10 s, doubling up to an
 * hour, while the previous response (if still valid) goes on being stapled.
 * A response that verifies but does not say "good" removes the staple.
 */
#ifndef PORTCULLIS_OCSP_STAPLER_H
#define PORTCULLIS_OCSP_STAPLER_H

#include <stddef.h>

struct event_base;
struct tls_store;
struct ocsp_stapler;

/*
 * Start stapling for the certificates of <store> on <base>, saving responses
 * under <dir> (created 0700 with its parent; NULL: kept in memory only).  NULL with a reason
 * in <err> on failure.
 */
struct ocsp_stapler *ocsp_stapler_new(struct event_base *base, struct tls_store *store,
				      const char *dir, char *err, size_t errlen);

/* Stop: cancel fetches in flight and free.  Cached staples stay served.
 * NULL accepted. */
void ocsp_stapler_free(struct ocsp_stapler *st);

#endif

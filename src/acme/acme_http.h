/*
 * acme_http: the ACME client's HTTPS requests, on libcurl's multi interface
 * driven by the manager's own event_base (libcurl's sockets and timer become
 * libevent events).  Peer verification against the system trust store or a
 * given CA bundle, asynchronous DNS, a connect and a stall timeout and an
 * overall deadline, a body cap; the outbound proxy comes from the environment
 * (HTTPS_PROXY, NO_PROXY: see http/outbound.h).  Results arrive in a callback
 * on the event_base's thread; the callback may start new requests.  Used only
 * by acme_client.c and acme_order.c.
 */
#ifndef PORTCULLIS_ACME_HTTP_H
#define PORTCULLIS_ACME_HTTP_H

#include <stddef.h>

struct event_base;
struct acme_http;

enum acme_http_method { ACME_HTTP_GET, ACME_HTTP_HEAD, ACME_HTTP_POST };

/* One response (or the reason there is none), valid during the callback. */
struct acme_http_response {
	int status;            /* HTTP status; 0 when no response arrived (see error) */
	char error[512];       /* why no response: timeout, TLS verification, refused… */
	char *body;            /* NUL-terminated (may contain NULs before body_len) */
	size_t body_len;
	const char *location;  /* response headers, NULL when absent */
	const char *nonce;     /* Replay-Nonce */
	const char *retry_after;
	const char *content_type;
	const char *link;      /* every Link header, joined with ", " */
};

typedef void (*acme_http_cb)(const struct acme_http_response *resp, void *arg);

/*
 * A client on <base> trusting <ca_bundle> (PEM file; NULL: the system's
 * store), with <timeout_seconds> for connecting and for a stalled transfer
 * and twice that for a whole exchange.  NULL with a reason in <err>.
 */
struct acme_http *acme_http_new(struct event_base *base, const char *ca_bundle,
				unsigned timeout_seconds, char *err, size_t errlen);

/*
 * Start <method> <url> (https only) with <body> (NULL: none) of
 * <content_type>, asking for <accept> (NULL: any).  <cb> runs exactly once,
 * later, from the event loop, unless the client is freed first (not from
 * inside a callback).  Returns 0,
 * or -1 with a reason in <err> (then <cb> never runs).
 */
int acme_http_request(struct acme_http *h, enum acme_http_method method, const char *url,
		      const char *content_type, const char *body, const char *accept,
		      acme_http_cb cb, void *arg, char *err, size_t errlen);

/* Accept http:// URLs too from now on (OCSP responders speak plain HTTP;
 * libcurl then takes the proxy from http_proxy). */
void acme_http_allow_plain(struct acme_http *h);

/* Cancel every request in flight (their callbacks do not run) and free.
 * Accepts NULL. */
void acme_http_free(struct acme_http *h);

#endif

/*
 * status_page: the read-only HTML page the admin listener serves at "/":
 * the configuration generation and when it was loaded, listeners, sites and
 * routes, upstream servers with their health and exchanges in flight,
 * certificates (files, local CA, ACME with renewal state), the SAML IdP
 * metadata's age and next fetch, and the recent refusals (base/refusals.h).
 *
 * Plain HTML with one inline style sheet: no script, no image, nothing from
 * another origin (admin.c sends it with a Content-Security-Policy that
 * allows nothing else).  Every value from the configuration, a certificate
 * or a request is HTML-escaped.  Built on the main thread from what the
 * modules expose through small accessors; it reaches into none of them.
 *
 * Whether it is served: status_page_served (also what -t prints).
 */
#ifndef PORTCULLIS_STATUS_PAGE_H
#define PORTCULLIS_STATUS_PAGE_H

#include <stdbool.h>
#include <stddef.h>

struct runtime;
struct tls_store;
struct acme_manager;
struct config;

/* The Content-Security-Policy the page is sent with. */
#define STATUS_PAGE_CSP                                                                        \
	"default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; "   \
	"form-action 'none'; frame-ancestors 'none'"

/*
 * Whether the admin listener of <cfg> serves the page: "admin.status_page"
 * when set, else only when the admin address is a loopback address.  The
 * reason goes to <why> (one line, for -t and the 404 on "/").
 */
bool status_page_served(const struct config *cfg, char *why, size_t len);

/* What the page is made from (all borrowed). */
struct status_page_input {
	const struct runtime *rt;   /* the generation served; NULL: none yet */
	struct tls_store *tls;      /* certificates; or NULL */
	struct acme_manager *acme;  /* ACME renewals; or NULL */
	bool draining;              /* after SIGTERM */
	const int *ports;           /* bound port of each listener of rt's config, or NULL */
	int admin_port;             /* the admin listener's bound port, or 0 */
	double now;                 /* Unix time */
};

/* The page for <in>: a new NUL-terminated string the caller frees, or NULL
 * when out of memory. */
char *status_page_render(const struct status_page_input *in);

#endif

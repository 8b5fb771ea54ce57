/*
 * admin: the operator's listener (default 127.0.0.1 only): /_health
 * (liveness), /_ready (readiness: 503 while draining) and /metrics
 * (Prometheus text).  A small handler on our own HTTP server (http/conn.h,
 * the one the workers' listeners use), on the main thread's event loop: GET
 * and HEAD only (others: 501), no request body (413).
 */
#ifndef PORTCULLIS_ADMIN_H
#define PORTCULLIS_ADMIN_H

#include <stdbool.h>

struct event_base;
struct admin;
struct runtime;
struct tls_store;
struct acme_manager;

/* What the admin pages read from the main thread. */
struct admin_state {
	struct runtime *current; /* the generation being served */
	bool draining;
	struct tls_store *tls;     /* certificate expiry, plain HTTP on TLS ports; or NULL */
	struct acme_manager *acme; /* ACME renewals and challenges; or NULL */
	const int *ports;          /* bound port of each listener (the status page); or NULL */
	int admin_port;            /* the admin listener's own bound port */
};

/* Serve on the bound socket <fd> (taken over).  NULL on failure. */
struct admin *admin_new(struct event_base *base, int fd, const struct admin_state *state);

/* Stop serving and free.  Accepts NULL. */
void admin_free(struct admin *a);

#endif

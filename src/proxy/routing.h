/*
 * routing: what the proxy decides about a request from its method, host and
 * normalized path alone, before access rules and the SAML gate: the built-in
 * answers (ACME HTTP-01, the 308 of "redirect_https" listeners), then site,
 * route, the "site" hop and the path and Host that go upstream.  Pure: reads
 * struct config only, so that proxy.c (the live request) and core/explain
 * (portcullis --explain) take the same decisions.
 */
#ifndef PORTCULLIS_ROUTING_H
#define PORTCULLIS_ROUTING_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config_model.h"

/* The METHOD_* bit of a method name, 0 for methods we do not forward. */
unsigned routing_method_bit(const char *method);

/* A built-in answer given before routing (and before access rules). */
enum routing_builtin {
	ROUTING_BUILTIN_NONE,           /* goes on to routing */
	ROUTING_BUILTIN_ACME,           /* an ACME HTTP-01 challenge answer (or its 404/405) */
	ROUTING_BUILTIN_REDIRECT_HTTPS, /* 308 to https: on a "redirect_https" listener */
};

/* The built-in answer for normalized <path> on listener number <listener>
 * of <cfg>; <has_host>: the request names a host (Host or absolute target). */
enum routing_builtin routing_builtin(const struct config *cfg, size_t listener, const char *path,
				     bool has_host);

/* What routing decided. */
struct routing_result {
	int status;                            /* 0: routed; else 400, 404 or 500 */
	const char *reason;                    /* the refusal's text, NULL when routed */
	bool close;                            /* close the connection after the refusal */
	const struct config_site *site;
	const struct config_route *route;      /* the route that acts (or the "site" route
						* whose target site had no match) */
	const struct config_route *jump_route; /* the "site" route that led there, or NULL */
	const char *upstream_host;             /* Host to send; NULL = the chosen server's */
};

/*
 * Route a request on listener number <listener> of <cfg>: <route_host> is
 * the Host header (or an absolute target's authority), NULL when there is
 * none, which only HTTP/1.1 (<host_required>) refuses; <host_header> is the
 * Host header as sent (what "host": "keep" forwards); <path> is normalized.
 * Writes the normalized host to <host> (<hostlen> bytes, "" when none) and
 * the path to forward to <fwd_path> (<fwd_len> bytes, at least strlen(path)
 * + 1).  Fills <out> and returns out->status.
 */
int routing_decide(const struct config *cfg, size_t listener, const char *route_host,
		   bool host_required, const char *host_header, const char *path,
		   unsigned method_bit, char *host, size_t hostlen, char *fwd_path, size_t fwd_len,
		   struct routing_result *out);

#endif

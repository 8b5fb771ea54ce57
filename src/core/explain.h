/*
 * explain: portcullis -t -c FILE --explain 'METHOD URL': what one request
 * would meet, step by step (listener, path, site and route, access rules,
 * rate limit, SAML gate, upstream, headers, WebSocket), without sending
 * anything or opening a socket.  Every decision is the live request path's
 * own function (proxy/routing, http/pathnorm, access/access_check's
 * explain mode, auth's gate decisions and policy, proxy/fwdheaders);
 * this file only asks them and reports.  docs/explain.md.
 */
#ifndef PORTCULLIS_EXPLAIN_H
#define PORTCULLIS_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config_model.h"

/* Exit statuses of --explain (2 is a usage error, 1 a configuration error). */
#define EXPLAIN_FORWARDED 0 /* the request would reach an upstream */
#define EXPLAIN_REFUSED 3   /* refused: an error status, a sign-in needed, no listener */
#define EXPLAIN_ANSWERED 4  /* answered by Portcullis itself (redirect, fixed response,
			     * SP endpoint, ACME) */

/* The request to explain, as the command line gave it. */
struct explain_request {
	const char *request;    /* "METHOD URL", the URL absolute (http:// or https://) */
	const char *from;       /* the client's address; NULL: 127.0.0.1 */
	const char *listener;   /* a listener's name; NULL: by the URL's scheme and port */
	const char **headers;   /* "Name: value" */
	size_t nheaders;
	const char **identity;  /* "attribute=value" of a signed-in session ("@nameid=...") */
	size_t nidentity;
	bool json;              /* one JSON object instead of text */
};

/*
 * Explain <req> against <cfg>, writing the steps to <out>.  Returns one of
 * the EXPLAIN_* statuses, or -1 with a one-line reason in <err> when the
 * request is malformed (a usage error).
 */
int explain_run(const struct config *cfg, const struct explain_request *req, FILE *out,
		char *err, size_t errlen);

#endif

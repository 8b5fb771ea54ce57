/*
 * forward_auth: the pieces of the verify endpoint ("saml.forward_auth",
 * docs/forward-auth.md) that other proxies call before they forward a
 * request themselves: nginx auth_request, ingress-nginx auth-url, Traefik
 * forwardAuth, Caddy forward_auth.  Such a subrequest describes the
 * ORIGINAL request in headers (X-Original-URL, or X-Forwarded-Host /
 * -Uri / -Proto / -Method) and carries its cookies.
 *
 * proxy.c does the rest with its own steps: it believes those headers only
 * from "trusted_proxies", then routes the original URL, checks its access
 * rules and runs the SAML gate (auth.h) on it exactly as for a request it
 * would forward; instead of forwarding it answers 200 with the identity
 * headers.  Nothing here decides who may pass.
 */
#ifndef PORTCULLIS_FORWARD_AUTH_H
#define PORTCULLIS_FORWARD_AUTH_H

#include <stdbool.h>

#include "config/config_model.h"

struct evkeyvalq;

/* The header a refusal carries the sign-in URL in (nginx takes it with
 * auth_request_set for its error_page 401). */
#define FORWARD_AUTH_LOGIN_HEADER "X-Portcullis-Login"

/* The original request, as the calling proxy describes it. */
struct forward_auth_original {
	char host[256];     /* "host[:port]" as given */
	const char *origin; /* its path and query ("/..."), in a header value */
	const char *method; /* its method (a header value), or NULL: not given */
};

/* True when <path> (normalized) is the verify endpoint of <sc> (may be NULL). */
bool forward_auth_is_verify(const struct config_saml *sc, const char *path);

/*
 * Read the original request from the headers <h> of a verify request:
 * X-Original-URL ("https://host/path?query", nginx, ingress-nginx) when
 * present, else X-Forwarded-Host with X-Forwarded-Uri (Traefik, Caddy);
 * the method from X-Original-Method, else X-Forwarded-Method.  Each may
 * appear once, and where both families are present they must name the same
 * request (a client's own copy of the family its proxy does not set passes
 * through).  Returns NULL with <o> filled, or why the headers do not
 * describe a request.
 */
const char *forward_auth_original(const struct evkeyvalq *h, struct forward_auth_original *o);

/* <method> as a static string (the access log outlives the request's
 * headers) when it is one Portcullis forwards, else NULL. */
const char *forward_auth_method(const char *method);

/* Add to <out> FORWARD_AUTH_LOGIN_HEADER: the sign-in URL that comes back
 * to <path> and <query> (auth.h auth_login_url). */
void forward_auth_add_login(const struct config *cfg, const char *path, const char *query,
			    struct evkeyvalq *out);

/* True when the verify request's <query> asks for "mode=redirect" (Traefik,
 * Caddy: a browser gets the redirect to the sign-in, not 401). */
bool forward_auth_redirect_mode(const char *query);

/*
 * Copy the identity headers the gate put into the request headers <from>
 * (saml.headers and the signed assertion's header) into the answer <to>.
 */
void forward_auth_copy_identity(const struct config_saml *sc, const struct evkeyvalq *from,
				struct evkeyvalq *to);

#endif

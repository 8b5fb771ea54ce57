/*
 * auth: the SAML gate in front of routes with "auth": "saml", and the SP
 * endpoints (metadata, login, ACS, logout) of the sites that have such
 * routes.  Called by proxy.c for every request once it is routed and has
 * passed the access rules; does nothing when the config has no "saml".
 *
 * For every request (SAML configured): the identity headers named in
 * saml.headers are removed from what the client sent.  For a protected
 * route: a valid session cookie adds them (from the session's attributes)
 * and removes our own cookies from the Cookie header; "Authorization:
 * Bearer <allowed prefix>..." passes without a session; otherwise a browser
 * navigation is redirected to the IdP, and anything else gets 401 with a
 * login URL.  Sessions are sealed cookies (session.h): no server state.
 */
#ifndef PORTCULLIS_AUTH_H
#define PORTCULLIS_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config_model.h"
#include "http/request.h"

struct evbuffer;
struct evkeyvalq;
struct claims;
struct hdrarena;
struct policy;
struct session;
struct stepup_rule;

/* Largest ACS POST body accepted. */
#define AUTH_MAX_BODY (1024 * 1024)

enum auth_action {
	AUTH_CONTINUE,  /* go on (identity headers are in the request headers) */
	AUTH_REPLIED,   /* the gate answered (status, bytes_out set); finish */
	AUTH_READ_BODY, /* an SP endpoint needs the body: read it, then auth_on_body */
	AUTH_PENDING,   /* the answer comes later (the ACS waits for the shared replay
			 * store): a->done(a) runs once it is sent */
};

/* What the gate sees of a transaction (filled by proxy.c). */
struct auth_request {
	struct server_request *req;
	const struct config *cfg;
	const struct config_site *site;
	const struct config_route *route;
	const char *method;
	unsigned method_bit;
	const char *path;       /* normalized */
	const char *query;      /* NULL when none */
	const char *request_id; /* also the reference shown on error pages */
	const char *client;
	bool no_redirect;       /* answer 401 where a browser would be sent to the IdP
				 * (the verify endpoint for nginx auth_request, which
				 * takes 2xx, 401 and 403 only) */
	struct evkeyvalq *out;  /* response headers being built: a refreshed
				 * session cookie goes here */
	int status;             /* out: the status replied */
	int64_t session_end;    /* out: AUTH_CONTINUE with a session: when it ends
				 * (epoch seconds); else 0 */
	uint64_t bytes_out;     /* out: body bytes replied */
	const char *rule;       /* out: the policy that refused (its JSON path) with a
				 * 403 for a signed-in user; else NULL */
	/* out: with saml.revocation and a session, who it is (an open
	 * WebSocket tunnel checks them again when the list changes); the
	 * NameID is "" when longer than the buffer (such a tunnel is not
	 * checked). */
	char session_user[512];
	int64_t session_issued;
	int64_t session_expires;

	/* The ACS with saml.replay_store "redis" (AUTH_PENDING): the caller
	 * keeps <a> (and what it points to) alive until done(a) runs, or
	 * calls auth_cancel(a) when the client goes away first. */
	struct claims *claims;  /* this worker's shared replay store, NULL: in memory */
	/* Optional: runs just before any reply of the gate leaves (a->status
	 * and a->rule set), so what the caller records about it (the status
	 * page's refusals) is in place before the client can see the answer:
	 * a complete reply is written at once. */
	void (*replying)(struct auth_request *a);
	void (*done)(struct auth_request *a);
	void *done_arg;         /* the caller's, for done */
	void *pending;          /* auth's own, while AUTH_PENDING */
	void *hosts_pending;    /* a hand-off's, while AUTH_PENDING (auth_hosts.h) */
};

/* Decide about a request whose head is known.  See enum auth_action. */
enum auth_action auth_on_head(struct auth_request *a);

/*
 * The body of a request auth_on_head asked to read (the ACS POST) is in:
 * answer it.  AUTH_REPLIED when answered; AUTH_PENDING when the answer waits
 * for the shared replay store (a->claims): a->done(a) runs after the reply
 * (status and bytes_out set), from the event loop, never from inside this
 * call.
 */
enum auth_action auth_on_body(struct auth_request *a);

/* The client of an AUTH_PENDING request went away: drop the wait without
 * replying; a->done will not run.  Harmless when nothing is pending. */
void auth_cancel(struct auth_request *a);

/*
 * True when <target> (a path with optional query, as sent to /saml/login or
 * kept for after the login) is a path on our own origin: starts with one
 * "/", no "//", "/\", backslash, control character or scheme, also after
 * percent-decoding (up to three rounds).
 */
bool auth_return_path_ok(const char *target);

/* ---- the gate's decisions, for proxy.c and portcullis --explain ---- */

/* The SP endpoint a request is for. */
enum auth_endpoint {
	AUTH_ENDPOINT_NONE,         /* none: the route decides */
	AUTH_ENDPOINT_ACS,          /* the ACS, POSTed: the body is read */
	AUTH_ENDPOINT_ACS_NOT_POST, /* the ACS with another method: 405 */
	AUTH_ENDPOINT_JWKS,         /* the identity assertion's keys (GET, HEAD) */
	AUTH_ENDPOINT_METADATA,     /* <prefix>/metadata */
	AUTH_ENDPOINT_LOGIN,        /* <prefix>/login */
	AUTH_ENDPOINT_LOGOUT,       /* <prefix>/logout */
	AUTH_ENDPOINT_HANDOFF,      /* saml.hosts: the hand-off from the auth host (GET) */
};

/* The SP endpoint normalized <path> asks for on <site> (one that serves
 * them: site->saml_endpoints), AUTH_ENDPOINT_NONE without "saml". */
enum auth_endpoint auth_endpoint_of(const struct config *cfg, const struct config_site *site,
				    const char *path, unsigned method_bit);

/* True for a request header the gate removes from every request of a config
 * with "saml": the saml.headers names and the identity assertion's header
 * (only the proxy says who the user is). */
bool auth_strips_header(const struct config_saml *sc, const char *name);

/* True when request headers <h> carry exactly one "Authorization: Bearer"
 * whose token starts with one of <route>'s allow_bearer prefixes (the
 * request passes without a session, its Cookie removed). */
bool auth_bearer_passes(const struct config_route *route, const struct evkeyvalq *h);

/* True when a request without a session is sent to the IdP (302) rather
 * than answered 401: a GET or HEAD browser navigation (headers <h>). */
bool auth_is_navigation_request(unsigned method_bit, const struct evkeyvalq *h);

/* The rules of a SAML route: the route's "require", else its site's, else
 * saml.require (NULL: every signed-in user). */
const struct policy *auth_route_rules(const struct config *cfg, const struct config_site *site,
				      const struct config_route *route);

/* Add the saml.headers of session <s> to request headers <h> (what the
 * upstream receives for a signed-in user). */
void auth_identity_headers(const struct config_saml *sc, const struct session *s,
			   struct evkeyvalq *h);

/* Remove our own cookies (the session cookie, the login-tracking ones) from
 * the Cookie headers of <h>: what a signed-in request's upstream never sees.
 * <arena>: the arena <h>'s entries may live in (hdrarena.h), or NULL. */
void auth_strip_our_cookies(const struct config_saml *sc, struct evkeyvalq *h,
			    struct hdrarena *arena);

/* The step-up rule of a SAML route: the route's "step_up", else its site's,
 * else NULL (any valid session). */
const struct stepup_rule *auth_route_step_up(const struct config_site *site,
					     const struct config_route *route);

/* The audience of the signed identity assertion a signed-in request on
 * <route> of <site> carries ("identity_assertion"), or NULL when it carries
 * none: the route's or site's "audience", else the upstream's name, else the
 * site's name. */
const char *auth_assertion_audience(const struct config_site *site,
				    const struct config_route *route);

/* Append to <b> the sign-in URL that comes back to a->path and a->query
 * (saml.base_url, the login endpoint, "?return=" the target encoded). */
void auth_login_url(struct auth_request *a, struct evbuffer *b);

/* The SAML login counters in Prometheus text (caller frees), or NULL. */
char *auth_metrics_render(void);

#endif

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
	void (*done)(struct auth_request *a);
	void *done_arg;         /* the caller's, for done */
	void *pending;          /* auth's own, while AUTH_PENDING */
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

/* Append to <b> the sign-in URL that comes back to a->path and a->query
 * (saml.base_url, the login endpoint, "?return=" the target encoded). */
void auth_login_url(struct auth_request *a, struct evbuffer *b);

/* The SAML login counters in Prometheus text (caller frees), or NULL. */
char *auth_metrics_render(void);

#endif

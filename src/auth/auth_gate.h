/*
 * auth_gate: what the files of the SAML gate share (internal to
 * auth/auth*.c): the answers auth.c writes, its login start, and the
 * saml.hosts requests of auth_hosts_gate.c that auth.c calls.
 */
#ifndef PORTCULLIS_AUTH_GATE_H
#define PORTCULLIS_AUTH_GATE_H

#include <stdbool.h>

struct auth_request;
struct config_saml;
struct evbuffer;

/* The purpose a session cookie is sealed for (session.h). */
#define AUTH_PURPOSE_SESSION "session"

/* ---- auth.c ---- */

/* Reply <status> with <body> (taken; may be NULL) and the headers already in
 * a->out; a->req is done with afterwards. */
void auth_reply(struct auth_request *a, int status, const char *content_type,
		struct evbuffer *body);

/* Reply a short HTML page: <title>, then <inner> (taken, already escaped). */
void auth_page(struct auth_request *a, int status, const char *title, struct evbuffer *inner);

/* Add "Set-Cookie: <name>=<value>; Path=/; Max-Age=<max_age>; Secure;
 * HttpOnly; SameSite=<samesite>" to the answer. */
void auth_set_cookie(struct auth_request *a, const char *name, const char *value, long max_age,
		     const char *samesite);

/* Start a login at the IdP that comes back to <target> (tracking cookie +
 * redirect); <force>: the IdP asks for credentials again. */
void auth_start_login(struct auth_request *a, const char *target, bool force);

/* True when the request can follow a redirect to the IdP (a page load). */
bool auth_is_navigation(struct auth_request *a);

/* The value of query parameter <name>, decoded (caller frees), or NULL. */
char *auth_query_value(const char *query, const char *name);

/* ---- auth_hosts_gate.c (saml.hosts, docs/saml.md#several-hosts-one-sign-in) ---- */

/* The entry of saml.hosts this request came to, or NULL. */
const char *auth_hosts_here(struct auth_request *a);

/* The entry of saml.hosts the absolute <url> is on, with a path we would
 * return to, or NULL. */
const char *auth_hosts_url_ok(const struct config_saml *sc, const char *url);

/* A protected route on the hand-off host <origin> without a session: a
 * navigation goes to the auth host's login; anything else gets 401 with a
 * login URL on this host. */
void auth_hosts_need_login(struct auth_request *a, const char *origin);

/* <prefix>/login with "return" <target> (may be NULL) when saml.hosts is
 * set: true when answered (a hand-off host's login, or an absolute return on
 * the auth host), false for a path on the auth host (the usual login). */
bool auth_hosts_login(struct auth_request *a, const char *target);

/* <prefix>/handoff?token=... once its (empty) body is in: AUTH_REPLIED, or
 * AUTH_PENDING while the shared replay store answers (an enum auth_action;
 * this header stays free of auth.h so that auth.c can include it). */
int auth_hosts_handoff(struct auth_request *a);

/* The client of a pending hand-off went away.  Harmless when none. */
void auth_hosts_cancel(struct auth_request *a);

#endif

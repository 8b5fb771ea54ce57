/*
 * auth_hosts: one sign-in for several hosts (saml.hosts,
 * docs/saml.md#several-hosts-one-sign-in) — the decisions, without I/O.
 *
 * The auth host (saml.base_url) holds the ACS.  Every other host of
 * saml.hosts sends a browser without a session to the auth host's login
 * with the absolute URL to come back to and the browser's nonce (a cookie
 * of its own); the auth host, once the browser is signed in there, sends it
 * to <origin><prefix>/handoff with a sealed, single-use, 30-second token
 * (handoff_token.h) that sets that host's own host-only cookie.  The
 * session in it is the same (same id), so revoking it (a logout on any
 * host, with saml.revocation) refuses it on every host.
 *
 * Called by auth.c, which does the answering.
 */
#ifndef PORTCULLIS_AUTH_HOSTS_H
#define PORTCULLIS_AUTH_HOSTS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config_model.h"

struct session;

/* The hand-off host's nonce cookie: its name starts like the login-tracking
 * cookies, so it never reaches an upstream either. */
#define AUTH_HOSTS_NONCE_COOKIE "__Host-portcullis-saml-handoff"
#define AUTH_HOSTS_NONCE_SECONDS 600
/* How long a hand-off token is valid. */
#define AUTH_HOSTS_TOKEN_SECONDS 30
/* Longest return URL kept. */
#define AUTH_HOSTS_RETURN_MAX 2048

/* The entry of saml.hosts that the Host value <host> names
 * ("https://host[:port]"; a default port may be written or left out), or
 * NULL (the auth host, a host outside saml.hosts, no Host). */
const char *auth_hosts_origin(const struct config_saml *sc, const char *host);

/* The entry of saml.hosts that the absolute <url> is on: the origin, then
 * "/" (so no userinfo, other port or host can follow it); else NULL.  The
 * caller checks the path after it (auth_return_path_ok: no "//",
 * backslash or control character). */
const char *auth_hosts_url_origin(const struct config_saml *sc, const char *url);

/*
 * The auth host's login URL for <path> on <origin> bound to <nonce>:
 * "<base_url><prefix>/login?return=<origin><path, encoded>&state=<nonce>",
 * and "&force=1" with <force> (caller frees), or NULL.
 */
char *auth_hosts_login_url(const struct config_saml *sc, const char *origin, const char *path,
			   const char *nonce, bool force);

/* What the auth host keeps for after a login: "<nonce> <url>" (caller
 * frees), or NULL when <nonce> is not a nonce. */
char *auth_hosts_keep(const char *nonce, const char *url);

/* The URL in <target> when it is what auth_hosts_keep made, else NULL. */
const char *auth_hosts_kept_url(const char *target);

/* For a <target> that auth_hosts_keep made with a URL on a host of
 * saml.hosts (its path checked by the caller): the hand-off URL on that host
 * for session <s> at <now> (caller frees); else NULL. */
char *auth_hosts_handoff_url(const struct config_saml *sc, const struct session *s,
			     const char *target, int64_t now);

/* True when saml.hosts is set and <path> is <prefix>/handoff. */
bool auth_hosts_is_handoff(const struct config_saml *sc, const char *path);

#endif

/* auth_hosts_gate: the saml.hosts parts of the SAML gate (the requests);
 * see auth_gate.h and auth_hosts.h. */
#include "auth/auth_gate.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "auth/auth.h"
#include "auth/auth_hosts.h"
#include "auth/claims.h"
#include "auth/handoff_token.h"
#include "auth/revoke.h"
#include "auth/saml.h"
#include "auth/session.h"
#include "auth/session_id.h"
#include "base/log.h"
#include "http/cookie.h"
#include "http/urlenc.h"

/* The entry of saml.hosts this request came to, or NULL. */
const char *
auth_hosts_here(struct auth_request *a)
{
	return auth_hosts_origin(a->cfg->saml,
				 evhttp_find_header(server_request_headers(a->req), "Host"));
}

/* The entry of saml.hosts the absolute <url> is on, with a path we would
 * return to, or NULL. */
const char *
auth_hosts_url_ok(const struct config_saml *sc, const char *url)
{
	const char *origin = auth_hosts_url_origin(sc, url);

	return origin != NULL && auth_return_path_ok(url + strlen(origin)) ? origin : NULL;
}

/* A hand-off host sends the browser to the auth host's login for <path>,
 * bound to this browser's nonce (the cookie it has, else a new one); with
 * <force>, the IdP is to ask for credentials again. */
static void
auth_hosts_to_login(struct auth_request *a, const char *origin, const char *path, bool force)
{
	char buf[HANDOFF_ID_HEX + 2], nonce[HANDOFF_ID_HEX + 1], *url;
	const char *v = cookie_find(server_request_headers(a->req), AUTH_HOSTS_NONCE_COOKIE, buf,
				    sizeof buf);
	unsigned char rnd[HANDOFF_ID_HEX / 2];

	if (v != NULL && strlen(v) == HANDOFF_ID_HEX &&
	    strspn(v, "0123456789abcdef") == HANDOFF_ID_HEX) {
		memcpy(nonce, v, sizeof nonce);
	} else {
		if (RAND_bytes(rnd, sizeof rnd) != 1) {
			auth_reply(a, 500, NULL, NULL);
			return;
		}
		for (size_t i = 0; i < sizeof rnd; i++)
			snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
	}
	url = auth_hosts_login_url(a->cfg->saml, origin, path, nonce, force);
	if (url == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	auth_set_cookie(a, AUTH_HOSTS_NONCE_COOKIE, nonce, AUTH_HOSTS_NONCE_SECONDS, "Lax");
	evhttp_add_header(a->out, "Location", url);
	free(url);
	auth_reply(a, 302, NULL, NULL);
}

/* A sign-in link that leaves the hosts of this sign-in. */
static void
auth_hosts_bad_link(struct auth_request *a, const char *target, const char *why)
{
	struct evbuffer *b = evbuffer_new();

	log_warn("saml: login refused [ref %s]: return: \"%.300s\" %s", a->request_id, target, why);
	if (b)
		evbuffer_add_printf(b, "<p>The sign-in link points outside the sites of this "
				       "sign-in. Reference: <code>%s</code></p>\n", a->request_id);
	auth_page(a, 400, "Bad sign-in link", b);
}

/* The valid, unrevoked session this request carries, or NULL (borrowed
 * from this thread's cache). */
static const struct session *
auth_hosts_session(struct auth_request *a, int64_t now)
{
	const struct config_saml *sc = a->cfg->saml;
	char buf[SESSION_MAX_SEALED + 1];
	const char *v = cookie_find(server_request_headers(a->req), sc->cookie_name, buf, sizeof buf);
	const struct session *s = v ? session_open_cached(sc->keys, AUTH_PURPOSE_SESSION, v) : NULL;

	if (s == NULL ||
	    !session_is_valid(s, now, (int64_t)sc->session_idle_timeout, (int64_t)sc->clock_skew) ||
	    now >= s->issued + (int64_t)sc->session_lifetime ||
	    (sc->revocation.enabled && revoke_check(s, NULL, now) != REVOKE_PASS))
		return NULL;
	return s;
}

/*
 * <prefix>/login when saml.hosts is set.  On a hand-off host: to the auth
 * host's login (a path here only).  On the auth host, an absolute URL on a
 * host of saml.hosts with the sending host's "state": with a session here,
 * straight to that host's hand-off; else a login that ends there.  True
 * when answered; false for a path on the auth host (the usual login).
 */
bool
auth_hosts_login(struct auth_request *a, const char *target)
{
	const struct config_saml *sc = a->cfg->saml;
	const char *origin = auth_hosts_here(a);
	const struct session *s;
	char *state, *kept, *url, *force_value = auth_query_value(a->query, "force");
	bool force = force_value != NULL && strcmp(force_value, "1") == 0;
	int64_t now;

	free(force_value);
	if (origin != NULL) {
		if (target != NULL && !auth_return_path_ok(target))
			auth_hosts_bad_link(a, target, "is not a path on this site");
		else
			auth_hosts_to_login(a, origin,
					    target != NULL && strlen(target) <= AUTH_HOSTS_RETURN_MAX
						? target
						: "/",
					    force);
		return true;
	}
	if (target == NULL || target[0] == '/')
		return false;
	if (auth_hosts_url_ok(sc, target) == NULL) {
		auth_hosts_bad_link(a, target, "is not a URL on a host of saml.hosts");
		return true;
	}
	state = auth_query_value(a->query, "state");
	kept = auth_hosts_keep(state, target);
	free(state);
	if (kept == NULL) {
		auth_hosts_bad_link(a, target, "comes without the state of the host that sent it");
		return true;
	}
	now = (int64_t)time(NULL);
	s = force ? NULL : auth_hosts_session(a, now);
	if (s == NULL) { /* ("sign in as someone else": force) */
		auth_start_login(a, kept, force);
		free(kept);
		return true;
	}
	url = auth_hosts_handoff_url(sc, s, kept, now);
	free(kept);
	if (url == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return true;
	}
	evhttp_add_header(a->out, "Location", url);
	free(url);
	auth_reply(a, 303, NULL, NULL);
	return true;
}

/* A hand-off waiting for the shared replay store. */
struct auth_hosts_wait {
	struct auth_request *a;
	struct claims_request *claim;
	struct handoff *h;
	const char *origin;
	int64_t now;
};

static void
auth_hosts_refused(struct auth_request *a, int status, const char *why)
{
	struct evbuffer *b = evbuffer_new();

	log_warn("saml: hand-off refused [ref %s] from %s: %s", a->request_id, a->client, why);
	if (b)
		evbuffer_add_printf(b, "<p>The sign-in could not be carried over to this site. Open "
				       "the page again; if it keeps failing, give your administrator "
				       "this reference: <code>%s</code></p>\n<p><a href=\"/\">Start "
				       "over</a></p>\n",
				    a->request_id);
	auth_page(a, status, "Sign-in failed", b);
}

/* The token's id is ours: this host's own session cookie, then the path. */
static void
auth_hosts_finish(struct auth_request *a, const char *origin, struct handoff *h, int64_t now)
{
	const struct config_saml *sc = a->cfg->saml;
	struct session *s = h->session;
	char sid[SESSION_ID_LEN + 1], *sealed;

	s->last_seen = now;
	sealed = session_seal_session(sc->keys, AUTH_PURPOSE_SESSION, s);
	if (sealed == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	auth_set_cookie(a, sc->cookie_name, sealed, (long)(s->expires - now), "Lax");
	free(sealed);
	session_id(s, sid);
	log_info("saml: %s signed in on %s by hand-off [ref %s] from %s (session %s)", s->name_id,
		 origin, a->request_id, a->client, sid);
	evhttp_add_header(a->out, "Location", h->target);
	auth_reply(a, 303, NULL, NULL);
}

static void
auth_hosts_claim_cb(enum claims_result result, size_t used, const char *error, void *arg)
{
	struct auth_hosts_wait *w = arg;
	struct auth_request *a = w->a;
	char why[700];

	(void)used;
	a->hosts_pending = NULL;
	switch (result) {
	case CLAIMS_CLAIMED:
		auth_hosts_finish(a, w->origin, w->h, w->now);
		break;
	case CLAIMS_ALREADY_USED:
		snprintf(why, sizeof why, "token %s: used before (a replay; the shared replay store "
					  "has it from this or another replica)",
			 w->h->id);
		auth_hosts_refused(a, 403, why);
		break;
	case CLAIMS_ERROR:
		snprintf(why, sizeof why, "replay store unavailable: %s", error);
		evhttp_add_header(a->out, "Retry-After", "5");
		auth_hosts_refused(a, 503, why);
		break;
	}
	handoff_free(w->h);
	free(w);
	a->done(a);
}

/* Claim the token's id in the shared store (it ends in auth_hosts_claim_cb),
 * or in this process's replay cache; <h> is taken. */
static enum auth_action
auth_hosts_claim(struct auth_request *a, const char *origin, struct handoff *h, int64_t now)
{
	const struct config_saml *sc = a->cfg->saml;
	struct auth_hosts_wait *w = NULL;
	char key[sizeof "handoff:" + HANDOFF_ID_HEX], err[600], why[700];
	const char *keys[1] = { key };
	int64_t ttl[1] = { (h->not_after - now + 1) * 1000 };

	snprintf(key, sizeof key, "handoff:%s", h->id);
	if (a->claims == NULL) {
		if (saml_replay_check(key, h->not_after + 1, now, (size_t)sc->replay_cache_size) < 0) {
			snprintf(why, sizeof why, "token %s: used before (a replay)%s", h->id,
				 saml_replay_full((size_t)sc->replay_cache_size)
					 ? ", or the replay cache is full"
					 : "");
			auth_hosts_refused(a, 403, why);
		} else {
			auth_hosts_finish(a, origin, h, now);
		}
		handoff_free(h);
		return AUTH_REPLIED;
	}
	if ((w = calloc(1, sizeof *w)) == NULL) {
		handoff_free(h);
		auth_reply(a, 500, NULL, NULL);
		return AUTH_REPLIED;
	}
	*w = (struct auth_hosts_wait){ .a = a, .h = h, .origin = origin, .now = now };
	w->claim = claims_claim(a->claims, keys, ttl, 1, a->request_id, auth_hosts_claim_cb, w, err,
				sizeof err);
	if (w->claim == NULL) {
		handoff_free(h);
		free(w);
		snprintf(why, sizeof why, "replay store unavailable: %s", err);
		evhttp_add_header(a->out, "Retry-After", "5");
		auth_hosts_refused(a, 503, why);
		return AUTH_REPLIED;
	}
	a->hosts_pending = w;
	return AUTH_PENDING;
}

/* <prefix>/handoff?token=... on a host of saml.hosts (once its empty body is
 * in): the token opens for this host, the browser's nonce cookie matches,
 * the session in it is valid and not revoked, and its id was never used. */
int
auth_hosts_handoff(struct auth_request *a)
{
	const struct config_saml *sc = a->cfg->saml;
	const char *origin = auth_hosts_here(a), *nonce;
	char *token = auth_query_value(a->query, "token");
	char buf[HANDOFF_ID_HEX + 2], err[300], why[700];
	struct handoff *h = NULL;
	int64_t now = (int64_t)time(NULL);

	if (origin == NULL) {
		auth_hosts_refused(a, 400, "this host is not one of saml.hosts");
		goto out;
	}
	if (token == NULL ||
	    (h = handoff_token_open(sc->keys, origin, token, now, err, sizeof err)) == NULL) {
		snprintf(why, sizeof why, "token for %s: %s", origin, token ? err : "missing");
		auth_hosts_refused(a, 400, why);
		goto out;
	}
	nonce = cookie_find(server_request_headers(a->req), AUTH_HOSTS_NONCE_COOKIE, buf, sizeof buf);
	if (nonce == NULL || strcmp(nonce, h->state) != 0) {
		snprintf(why, sizeof why, "token %s: %s (the sign-in was not started from this "
					  "browser on %s)",
			 h->id, nonce ? "the nonce cookie differs" : "no nonce cookie", origin);
		auth_hosts_refused(a, 403, why);
		goto out;
	}
	if (!session_is_valid(h->session, now, (int64_t)sc->session_idle_timeout,
			      (int64_t)sc->clock_skew) ||
	    now >= h->session->issued + (int64_t)sc->session_lifetime ||
	    (sc->revocation.enabled && revoke_check(h->session, NULL, now) != REVOKE_PASS)) {
		snprintf(why, sizeof why, "token %s: the session of %s has ended or is revoked", h->id,
			 h->session->name_id);
		auth_hosts_refused(a, 403, why);
		goto out;
	}
	free(token);
	return auth_hosts_claim(a, origin, h, now);
out:
	handoff_free(h);
	free(token);
	return AUTH_REPLIED;
}

/* The client of a pending hand-off went away.  Harmless when none. */
void
auth_hosts_cancel(struct auth_request *a)
{
	struct auth_hosts_wait *w = a->hosts_pending;

	if (w == NULL)
		return;
	a->hosts_pending = NULL;
	claims_cancel(w->claim);
	handoff_free(w->h);
	free(w);
}

/* A protected route on a hand-off host without a session: a navigation goes
 * to the auth host's login; anything else gets 401 with a login URL on this
 * host (which does the same for a browser). */
void
auth_hosts_need_login(struct auth_request *a, const char *origin)
{
	struct evbuffer *b;
	char *path = NULL;

	if (asprintf(&path, "%s%s%s", a->path, a->query ? "?" : "", a->query ? a->query : "") < 0)
		path = NULL;
	if (path != NULL && (strlen(path) > AUTH_HOSTS_RETURN_MAX || !auth_return_path_ok(path))) {
		free(path);
		path = strdup("/");
	}
	if (path == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	if (auth_is_navigation(a)) {
		auth_hosts_to_login(a, origin, path, false);
		free(path);
		return;
	}
	b = evbuffer_new();
	if (b == NULL) {
		free(path);
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	evbuffer_add_printf(b, "{\"error\":\"authentication required\",\"login_url\":\"%s%s/login"
			       "?return=",
			    origin, a->cfg->saml->prefix);
	urlenc_encode(b, path);
	evbuffer_add_printf(b, "\"}\n");
	free(path);
	auth_reply(a, 401, "application/json", b);
}

/* auth: the SAML gate and the SP endpoints; see auth.h. */
#include "auth/auth.h"

#include <stdatomic.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <openssl/rand.h>

#include "auth/assertion.h"
#include "auth/auth_gate.h"
#include "auth/auth_hosts.h"
#include "auth/auth_verified.h"
#include "auth/claims.h"
#include "auth/jwt.h"
#include "auth/policy.h"
#include "auth/revoke.h"
#include "auth/session_id.h"
#include "base/log.h"
#include "http/cookie.h"
#include "http/hdrarena.h"
#include "http/htmlesc.h"
#include "http/urlenc.h"
#include "auth/saml.h"
#include "auth/session.h"
#include "auth/stepup.h"

#define AUTH_TRACK_PREFIX "__Host-portcullis-saml-"
#define AUTH_TRACK_SECONDS 600
#define AUTH_RELAY_HEX 32
/* Tracking cookies a browser may pile up before they are all expired. */
#define AUTH_TRACK_MAX 8
/* Longest return target kept; a longer one returns to "/". */
#define AUTH_RETURN_MAX 2048

/* Login outcomes since start, for /metrics (all workers). */
static atomic_ullong auth_logins_started, auth_logins_ok, auth_logins_failed,
	auth_logins_unavailable;

/* ---- helpers --------------------------------------------------------------- */

static void
auth_html_escape(struct evbuffer *b, const char *s)
{
	htmlesc_append(b, s);
}

bool
auth_return_path_ok(const char *target)
{
	char *cur, *next;
	bool ok = false;

	if (target == NULL || strlen(target) > 4096)
		return false;
	cur = strdup(target);
	for (int round = 0; cur != NULL && round < 4; round++) {
		if (cur[0] != '/' || cur[1] == '/' || cur[1] == '\\')
			goto out;
		for (const unsigned char *c = (const unsigned char *)cur; *c; c++)
			if (*c < 0x20 || *c == 0x7f || *c == '\\' || (round == 0 && *c == ' '))
				goto out;
		if (strchr(cur, '%') == NULL) {
			ok = true;
			goto out;
		}
		next = urlenc_decode(cur, strlen(cur), false);
		if (next == NULL)
			goto out;
		free(cur);
		cur = next;
	}
out:
	free(cur);
	return ok;
}

/* The session cookie's name, for auth_is_our_cookie. */
struct auth_cookie_name {
	const char *name;
	size_t len;
};

/* cookie_drop_fn: true when the cookie pair is one of ours (the session
 * cookie named by <arg>, a struct auth_cookie_name, or a login-tracking one). */
static bool
auth_is_our_cookie(const char *pair, size_t len, void *arg)
{
	const struct auth_cookie_name *session = arg;
	size_t tlen = sizeof AUTH_TRACK_PREFIX - 1;

	return cookie_pair_is(pair, len, session->name, session->len) ||
	       (len > tlen && memcmp(pair, AUTH_TRACK_PREFIX, tlen) == 0);
}

void
auth_strip_our_cookies(const struct config_saml *sc, struct evkeyvalq *h, struct hdrarena *arena)
{
	struct auth_cookie_name ours = {.name = sc->cookie_name, .len = strlen(sc->cookie_name)};

	cookie_strip(h, arena, auth_is_our_cookie, &ours);
}

/* Reply with <body> (moved) and the headers already in a->out. */
void
auth_reply(struct auth_request *a, int status, const char *content_type, struct evbuffer *body)
{
	if (content_type)
		evhttp_add_header(a->out, "Content-Type", content_type);
	evhttp_add_header(a->out, "Cache-Control", "no-store");
	evhttp_add_header(a->out, "X-Request-ID", a->request_id);
	a->status = status;
	a->bytes_out = body ? evbuffer_get_length(body) : 0;
	if (a->replying)
		a->replying(a);
	/* A refused upgrade (WebSocket) closes: nothing after it is read as HTTP. */
	server_reply(a->req, status, a->out, body,
		     evhttp_find_header(server_request_headers(a->req), "Upgrade") != NULL);
	a->req = NULL;
	if (body)
		evbuffer_free(body);
}

/* A short HTML page: <title>, then <html_body> (already escaped). */
void
auth_page(struct auth_request *a, int status, const char *title, struct evbuffer *inner)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		if (inner)
			evbuffer_free(inner);
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	evbuffer_add_printf(b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
	auth_html_escape(b, title);
	evbuffer_add_printf(b, "</title><style>body{font-family:sans-serif;max-width:40em;margin:4em "
			       "auto;padding:0 1em;color:#222}code{background:#eee;padding:0 .2em}"
			       "</style></head><body><h1>");
	auth_html_escape(b, title);
	evbuffer_add_printf(b, "</h1>\n");
	if (inner) {
		evbuffer_add_buffer(b, inner);
		evbuffer_free(inner);
	}
	evbuffer_add_printf(b, "</body></html>\n");
	auth_reply(a, status, "text/html; charset=utf-8", b);
}

void
auth_set_cookie(struct auth_request *a, const char *name, const char *value, long max_age,
		const char *samesite)
{
	char line[4500];

	snprintf(line, sizeof line, "%s=%s; Path=/; Max-Age=%ld; Secure; HttpOnly; SameSite=%s", name,
		 value, max_age, samesite);
	evhttp_add_header(a->out, "Set-Cookie", line);
}

/* ---- login ------------------------------------------------------------------- */

/*
 * Every login started sets a tracking cookie for 10 minutes.  A page (or an
 * attacker's links) starting many logins would pile them up until the
 * browser's requests pass the header limit (431 for every request to this
 * site).  When the request already carries AUTH_TRACK_MAX of them, this
 * answer expires them all: at most the newest login can still finish.
 */
static void
auth_expire_tracking_pile(struct auth_request *a)
{
	size_t tlen = sizeof AUTH_TRACK_PREFIX - 1, n = 0;
	char names[AUTH_TRACK_MAX][sizeof AUTH_TRACK_PREFIX + AUTH_RELAY_HEX];
	struct evkeyval *kv;

	TAILQ_FOREACH(kv, server_request_headers(a->req), next) {
		const char *p = kv->value, *pair, *eq;
		size_t len;

		if (strcasecmp(kv->key, "cookie") != 0)
			continue;
		while (cookie_next(&p, &pair, &len)) {
			eq = memchr(pair, '=', len);
			if (eq != NULL && (size_t)(eq - pair) == tlen + AUTH_RELAY_HEX &&
			    memcmp(pair, AUTH_TRACK_PREFIX, tlen) == 0 && n < AUTH_TRACK_MAX) {
				memcpy(names[n], pair, (size_t)(eq - pair));
				names[n++][eq - pair] = '\0';
			}
		}
	}
	if (n < AUTH_TRACK_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		auth_set_cookie(a, names[i], "", 0, "None");
}

/* Start a login that comes back to <target>: tracking cookie + redirect.
 * <force>: the IdP is asked for fresh credentials (ForceAuthn).  <step>: the
 * step-up rule the login must meet (RequestedAuthnContext; carried in the
 * tracking cookie for the ACS to check), or NULL. */
static void
auth_start_login_for(struct auth_request *a, const char *target, bool force,
		     const struct stepup_rule *step)
{
	struct config_saml *sc = a->cfg->saml;
	unsigned char rnd[AUTH_RELAY_HEX / 2];
	char relay[AUTH_RELAY_HEX + 1], name[sizeof AUTH_TRACK_PREFIX + AUTH_RELAY_HEX];
	char purpose[64], err[512];
	char *url = NULL, *request_id = NULL, *sealed = NULL;
	struct session *track = session_new();
	struct evbuffer *b;
	int64_t now = (int64_t)time(NULL);
	struct saml_login_options lo = { .force_authn = force };

	if (track == NULL || RAND_bytes(rnd, sizeof rnd) != 1) {
		session_free(track);
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(relay + 2 * i, 3, "%02x", rnd[i]);
	if (step != NULL) {
		lo.class_refs = (const char *const *)step->classes;
		lo.nclass_refs = step->nclasses;
		lo.minimum = step->minimum;
	}
	if (saml_login_request_with(sc->sp, relay, &lo, &url, &request_id, err, sizeof err) < 0) {
		log_error("saml: cannot start a login [ref %s]: %s", a->request_id, err);
		session_free(track);
		b = evbuffer_new();
		if (b)
			evbuffer_add_printf(b, "<p>The sign-in could not be started. Reference: "
					       "<code>%s</code></p>\n", a->request_id);
		auth_page(a, 500, "Sign-in failed", b);
		return;
	}
	track->issued = track->last_seen = now;
	track->expires = now + AUTH_TRACK_SECONDS;
	track->name_id = request_id;
	request_id = NULL;
	snprintf(purpose, sizeof purpose, "saml-request/%s", relay);
	if (session_add_attr(track, "return", target) == 0 &&
	    (step == NULL || stepup_mark(track, step) == 0))
		sealed = session_seal_session(sc->keys, purpose, track);
	session_free(track);
	if (sealed == NULL) {
		free(url);
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	auth_expire_tracking_pile(a);
	snprintf(name, sizeof name, "%s%s", AUTH_TRACK_PREFIX, relay);
	auth_set_cookie(a, name, sealed, AUTH_TRACK_SECONDS, "None");
	free(sealed);
	evhttp_add_header(a->out, "Location", url);
	atomic_fetch_add_explicit(&auth_logins_started, 1, memory_order_relaxed);
	b = evbuffer_new();
	if (b)
		evbuffer_add_printf(b, "Redirecting to the identity provider\n");
	free(url);
	auth_reply(a, 302, "text/plain; charset=utf-8", b);
}

void
auth_start_login(struct auth_request *a, const char *target, bool force)
{
	auth_start_login_for(a, target, force, NULL);
}

/* The login URL for the current request (for 401 answers). */
void
auth_login_url(struct auth_request *a, struct evbuffer *b)
{
	struct config_saml *sc = a->cfg->saml;
	/* saml.hosts: on a hand-off host its own login, which goes on to the auth host
	 * (no request: the verify endpoint's URL for the host it answers for,
	 * which is base_url's: forward_auth.c) */
	const char *here =
		a->req == NULL
			? NULL
			: auth_hosts_origin(sc, evhttp_find_header(server_request_headers(a->req),
								   "Host"));

	evbuffer_add_printf(b, "%s%s/login?return=", here ? here : sc->base_url, sc->prefix);
	urlenc_encode(b, a->path);
	if (a->query) {
		evbuffer_add(b, "%3F", 3);
		urlenc_encode(b, a->query);
	}
}

bool
auth_is_navigation_request(unsigned method_bit, const struct evkeyvalq *h)
{
	const char *mode = evhttp_find_header(h, "Sec-Fetch-Mode");
	const char *accept = evhttp_find_header(h, "Accept");

	if (!(method_bit & (METHOD_GET | METHOD_HEAD)))
		return false;
	if (evhttp_find_header(h, "X-Requested-With") != NULL)
		return false;
	if (evhttp_find_header(h, "Upgrade") != NULL)
		return false; /* a WebSocket cannot follow a redirect to the IdP */
	if (mode != NULL && strcasecmp(mode, "navigate") != 0)
		return false;
	if (accept != NULL && strstr(accept, "application/json") != NULL &&
	    strstr(accept, "text/html") == NULL)
		return false;
	return true;
}

bool
auth_is_navigation(struct auth_request *a)
{
	return !a->no_redirect &&
	       auth_is_navigation_request(a->method_bit, server_request_headers(a->req));
}

/* No session good enough: a browser navigation goes to the IdP (a login for
 * <step>, with ForceAuthn when <force>), anything else gets 401. */
static void
auth_need_login_for(struct auth_request *a, const struct stepup_rule *step, bool force)
{
	struct evbuffer *b;
	char *target = NULL;
	const char *origin = auth_hosts_here(a);

	if (origin != NULL) { /* saml.hosts */
		auth_hosts_need_login(a, origin);
		return;
	}
	if (auth_is_navigation(a)) {
		if (asprintf(&target, "%s%s%s", a->path, a->query ? "?" : "", a->query ? a->query : "") < 0)
			target = NULL;
		if (target != NULL && !auth_return_path_ok(target)) {
			free(target);
			target = strdup("/");
		}
		if (target == NULL) {
			auth_reply(a, 500, NULL, NULL);
			return;
		}
		/* a long query would make a long tracking cookie: keep the path */
		auth_start_login_for(a,
				 strlen(target) <= AUTH_RETURN_MAX    ? target
				 : strlen(a->path) <= AUTH_RETURN_MAX ? a->path
								      : "/",
				 force, step);
		free(target);
		return;
	}
	b = evbuffer_new();
	if (b == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	evbuffer_add_printf(b, "{\"error\":\"authentication required\",\"login_url\":\"");
	auth_login_url(a, b);
	evbuffer_add_printf(b, "\"}\n");
	auth_reply(a, 401, "application/json", b);
}

static void
auth_need_login(struct auth_request *a)
{
	auth_need_login_for(a, NULL, false);
}

/* ---- the session ---------------------------------------------------------------- */

/* A signed-in user the route's rules refuse: a page naming the attribute and
 * the rule's JSON path (never its values), with "sign in as someone else"
 * (a login that asks the IdP for fresh credentials). */
static void
auth_forbidden(struct auth_request *a, const struct session *s, const struct policy *failed)
{
	struct evbuffer *b = evbuffer_new();
	struct evbuffer *url = evbuffer_new();
	char names[256];

	policy_attributes(failed, names, sizeof names);
	log_info("saml: access refused to %s for %s %s [ref %s]: %s: %s does not satisfy the rule",
		 s->name_id, a->method, a->path, a->request_id, failed->path, names);
	if (b != NULL && url != NULL) {
		evbuffer_add_printf(b, "<p>You are signed in as <strong>");
		auth_html_escape(b, s->name_id);
		evbuffer_add_printf(b, "</strong>");
		for (size_t i = 0; i < a->cfg->saml->nheaders; i++) {
			const char *v = session_attr(s, a->cfg->saml->headers[i].attribute);

			if (v && strcmp(v, s->name_id) != 0) {
				evbuffer_add_printf(b, " (");
				auth_html_escape(b, v);
				evbuffer_add_printf(b, ")");
				break;
			}
		}
		evbuffer_add_printf(b, ", but your <code>");
		auth_html_escape(b, names);
		evbuffer_add_printf(b, "</code> does not satisfy the rule <code>");
		auth_html_escape(b, failed->path);
		evbuffer_add_printf(b, "</code>. Ask your administrator for access.</p>\n<p><a href=\"");
		auth_login_url(a, url);
		evbuffer_add(url, "&force=1", 9);
		auth_html_escape(b, (const char *)evbuffer_pullup(url, -1));
		evbuffer_add_printf(b, "\">Sign in as someone else</a> · <a href=\"");
		auth_html_escape(b, a->cfg->saml->prefix);
		evbuffer_add_printf(b, "/logout\">Sign out</a> · Reference: <code>%s</code></p>\n",
				    a->request_id);
	}
	if (url != NULL)
		evbuffer_free(url);
	auth_page(a, 403, "Access denied", b);
}

const struct stepup_rule *
auth_route_step_up(const struct config_site *site, const struct config_route *route)
{
	return route->step_up ? route->step_up : site ? site->step_up : NULL;
}

const char *
auth_assertion_audience(const struct config_site *site, const struct config_route *r)
{
	int on = r->assertion ? r->assertion : site ? site->assertion : 0;
	const char *issuer = site && site->name ? site->name : "portcullis";

	if (on <= 0)
		return NULL;
	return r->assertion_audience				 ? r->assertion_audience
	       : r->assertion == 0 && site && site->assertion_audience ? site->assertion_audience
	       : r->upstream && r->upstream->name		 ? r->upstream->name
								 : issuer;
}

/* The signed identity assertion, on routes (or sites) that ask for it:
 * audience the route's (or site's) "audience", else the upstream's name;
 * issuer the site's name; never valid past the session's own end. */
static void
auth_add_assertion(struct auth_request *a, struct auth_verified *v, int64_t now)
{
	const struct session *s = v->s;
	const struct config_saml *sc = a->cfg->saml;
	const char *audience = auth_assertion_audience(a->site, a->route);
	struct assertion_params p;
	const char *token;

	if (audience == NULL || sc->assertion.keys == NULL)
		return;
	p.keys = sc->assertion.keys;
	p.issuer = a->site && a->site->name ? a->site->name : "portcullis";
	p.audience = audience;
	p.email_attr = sc->assertion.email_attr;
	p.groups_attr = sc->assertion.groups_attr;
	p.lifetime = (int64_t)sc->assertion.lifetime;
	p.session_end = s->issued + (int64_t)sc->session_lifetime;
	if (s->expires != 0 && s->expires < p.session_end)
		p.session_end = s->expires;
	token = auth_verified_assertion(v, &p, now);
	if (token != NULL)
		evhttp_add_header(server_request_headers(a->req), sc->assertion.header, token);
	else
		log_warn("saml: identity assertion not signed for %s [ref %s]", s->name_id,
			 a->request_id);
}

void
auth_identity_headers(const struct config_saml *sc, const struct session *s, struct evkeyvalq *h)
{
	for (size_t i = 0; i < sc->nheaders; i++) {
		char *v = auth_identity_value(sc, s, i);

		if (v != NULL)
			evhttp_add_header(h, sc->headers[i].name, v);
		free(v);
	}
}

/* Put the identity headers of a verified session into the request (their
 * values were made when the cookie was first seen). */
static void
auth_add_identity(struct auth_request *a, const struct auth_verified *v)
{
	const struct config_saml *sc = a->cfg->saml;
	struct evkeyvalq *h = server_request_headers(a->req);

	for (size_t i = 0; i < v->nidentity && i < sc->nheaders; i++)
		if (v->identity[i] != NULL)
			evhttp_add_header(h, sc->headers[i].name, v->identity[i]);
}

/* ---- SP endpoints --------------------------------------------------------------- */

/* <path> equals <want>, ignoring one trailing "/" on either. */
static bool
auth_path_is(const char *path, const char *want)
{
	size_t pl = strlen(path), wl = strlen(want);

	if (pl > 1 && path[pl - 1] == '/')
		pl--;
	if (wl > 1 && want[wl - 1] == '/')
		wl--;
	return pl == wl && strncmp(path, want, pl) == 0;
}

static bool
auth_path_is_sub(const char *path, const char *prefix, const char *leaf)
{
	size_t n = strlen(prefix);

	return strncmp(path, prefix, n) == 0 && auth_path_is(path + n, leaf);
}

static void
auth_metadata(struct auth_request *a)
{
	char *md = saml_sp_metadata(a->cfg->saml->sp);
	struct evbuffer *b = evbuffer_new();

	if (md == NULL || b == NULL) {
		free(md);
		if (b)
			evbuffer_free(b);
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	evbuffer_add(b, md, strlen(md));
	free(md);
	auth_reply(a, 200, "application/samlmetadata+xml", b);
}

/* The public keys of the identity assertion (JWKS). */
static void
auth_jwks(struct auth_request *a)
{
	const char *jwks = jwt_keys_jwks(a->cfg->saml->assertion.keys);
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	evbuffer_add(b, jwks, strlen(jwks));
	evhttp_add_header(a->out, "Cache-Control", "max-age=300");
	auth_reply(a, 200, "application/jwk-set+json", b);
}

/* The value of query parameter <name>, decoded, or NULL. */
char *
auth_query_value(const char *query, const char *name)
{
	return query ? urlenc_form_value(query, strlen(query), name) : NULL;
}

static void
auth_login_endpoint(struct auth_request *a)
{
	char *target = auth_query_value(a->query, "return");
	char *force;

	if (target == NULL && a->query != NULL && strstr(a->query, "return=") != NULL) {
		log_warn("saml: login refused [ref %s]: return: malformed percent-encoding",
			 a->request_id);
		auth_page(a, 400, "Bad sign-in link", NULL);
		return;
	}
	if (a->cfg->saml->nhosts > 0 && auth_hosts_login(a, target)) {
		free(target);
		return;
	}
	if (target != NULL && !auth_return_path_ok(target)) {
		struct evbuffer *b = evbuffer_new();

		log_warn("saml: login refused [ref %s]: return: \"%s\" is not a path on this site",
			 a->request_id, target);
		if (b)
			evbuffer_add_printf(b, "<p>The sign-in link points outside this site. "
					       "Reference: <code>%s</code></p>\n", a->request_id);
		free(target);
		auth_page(a, 400, "Bad sign-in link", b);
		return;
	}
	force = auth_query_value(a->query, "force");
	auth_start_login(a, target != NULL && strlen(target) <= AUTH_RETURN_MAX ? target : "/",
			 force != NULL && strcmp(force, "1") == 0);
	free(force);
	free(target);
}

/* After a sign-out: to <url> at the IdP (taken: freed here), or a page. */
static void
auth_signed_out(struct auth_request *a, char *url)
{
	struct evbuffer *b;

	if (url != NULL) {
		evhttp_add_header(a->out, "Location", url);
		free(url);
		auth_reply(a, 302, NULL, NULL);
		return;
	}
	b = evbuffer_new();
	if (b)
		evbuffer_add_printf(b, "<p>You are signed out of this site.</p><p><a href=\"/\">Sign in "
				       "again</a></p>\n");
	auth_page(a, 200, "Signed out", b);
}

/* The IdP's own signed LogoutRequest (HTTP-Redirect) to our logout URL: end
 * the session and answer with a signed LogoutResponse at the IdP's
 * SingleLogoutService (when its metadata has one). */
static void
auth_idp_logout(struct auth_request *a)
{
	struct config_saml *sc = a->cfg->saml;
	char err[1024], *name_id = NULL, *url = NULL;
	struct evbuffer *b;

	if (saml_idp_logout(sc->sp, a->query, (int64_t)time(NULL), &name_id, &url, err,
			    sizeof err) < 0) {
		log_warn("saml: logout request from the IdP refused [ref %s] from %s: %s",
			 a->request_id, a->client, err);
		b = evbuffer_new();
		if (b)
			evbuffer_add_printf(b, "<p>The sign-out request could not be verified. "
					       "Reference: <code>%s</code></p>\n", a->request_id);
		auth_page(a, 400, "Sign-out failed", b);
		return;
	}
	auth_set_cookie(a, sc->cookie_name, "", 0, "Lax");
	log_info("saml: %s signed out by the IdP [ref %s] from %s%s", name_id, a->request_id,
		 a->client, url ? "; LogoutResponse sent to its SingleLogoutService" : "");
	free(name_id);
	auth_signed_out(a, url);
}

/* "<name>=" starts a parameter of the raw <query>. */
static bool
auth_query_has(const char *query, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = query; p != NULL && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == '=')
			return true;
	return false;
}

/* True when the browser says another site started this request
 * (Sec-Fetch-Site: cross-site or same-site; absent: an old client, a tool). */
static bool
auth_cross_site(struct auth_request *a)
{
	const char *v = evhttp_find_header(server_request_headers(a->req), "Sec-Fetch-Site");

	return v != NULL && (strcmp(v, "cross-site") == 0 || strcmp(v, "same-site") == 0);
}

static void
auth_logout_endpoint(struct auth_request *a)
{
	struct config_saml *sc = a->cfg->saml;
	char buf[SESSION_MAX_SEALED + 1];
	const char *v = cookie_find(server_request_headers(a->req), sc->cookie_name, buf, sizeof buf);
	struct session *s = v ? session_open_session(sc->keys, AUTH_PURPOSE_SESSION, v) : NULL;
	char *slo = NULL;
	struct evbuffer *b;

	if (a->query != NULL && auth_query_has(a->query, "SAMLRequest")) {
		session_free(s);
		auth_idp_logout(a);
		return;
	}
	if (s != NULL && auth_cross_site(a) &&
	    (a->query == NULL || strstr(a->query, "SAMLResponse=") == NULL)) {
		/* Another site linked here (logout CSRF): ask, do not sign out. */
		session_free(s);
		b = evbuffer_new();
		if (b)
			evbuffer_add_printf(b, "<form method=\"post\" action=\"%s/logout\">"
					       "<p><button type=\"submit\">Sign out</button></p></form>\n",
					    sc->prefix);
		auth_page(a, 200, "Sign out?", b);
		return;
	}
	auth_set_cookie(a, sc->cookie_name, "", 0, "Lax");
	if (s != NULL) {
		char sid[SESSION_ID_LEN + 1];

		session_id(s, sid);
		log_info("saml: %s signed out [ref %s] (session %s)", s->name_id, a->request_id, sid);
		if (sc->revocation.enabled)
			revoke_logout(sid); /* a copy of the cookie is refused from now on */
		/* Only when this is not the IdP coming back from its own logout. */
		if (a->query == NULL || (strstr(a->query, "SAMLResponse=") == NULL &&
					 strstr(a->query, "SAMLRequest=") == NULL))
			slo = saml_logout_request(sc->sp, s->name_id, saml_session_index(s), "");
	}
	session_free(s);
	auth_signed_out(a, slo);
}

static void
auth_login_failed(struct auth_request *a, int status, const char *why)
{
	struct evbuffer *b = evbuffer_new();

	log_warn("saml: login failed [ref %s] from %s: %s", a->request_id, a->client, why);
	atomic_fetch_add_explicit(&auth_logins_failed, 1, memory_order_relaxed);
	if (b)
		evbuffer_add_printf(b, "<p>The sign-in could not be completed. Try again from the "
				       "start; if it keeps failing, give your administrator this "
				       "reference: <code>%s</code></p>\n<p><a href=\"/\">Start over</a></p>\n",
				    a->request_id);
	auth_page(a, status, "Sign-in failed", b);
}

/*
 * A login started for a step-up rule (carried by <track>) whose answer <s>
 * still does not meet it: a 403 page that says so, once (no new round to the
 * IdP, so never a loop).  True when there is no rule or it is met.
 */
static bool
auth_step_up_met(struct auth_request *a, const struct session *track, const struct session *s,
		 int64_t now)
{
	struct stepup_rule rule;
	struct evbuffer *b;
	char why[512];
	bool met;
	int marked = stepup_marked(track, &rule);

	if (marked == 0)
		return true;
	if (marked < 0) {
		auth_reply(a, 500, NULL, NULL);
		return false;
	}
	met = stepup_satisfied(&rule, s, now, (int64_t)a->cfg->saml->clock_skew, why, sizeof why);
	if (!met) {
		log_warn("saml: step-up not met by the IdP for %s [ref %s] from %s: %s: %s",
			 s->name_id, a->request_id, a->client, rule.path, why);
		atomic_fetch_add_explicit(&auth_logins_failed, 1, memory_order_relaxed);
		if ((b = evbuffer_new()) != NULL) {
			evbuffer_add_printf(b, "<p>This page needs a stronger or more recent sign-in "
					       "(<code>");
			auth_html_escape(b, rule.path);
			evbuffer_add_printf(b, "</code>), and the identity provider did not confirm "
					       "one: ");
			auth_html_escape(b, why);
			evbuffer_add_printf(b, ".</p>\n<p>Ask your administrator which sign-in method "
					       "this page needs. Reference: <code>%s</code></p>\n",
					    a->request_id);
		}
		auth_page(a, 403, "Stronger sign-in required", b);
	}
	free(rule.classes);
	return met;
}

/* Answer when the shared replay store cannot be asked (fail closed). */
static void
auth_store_unavailable(struct auth_request *a, const char *why)
{
	struct evbuffer *b = evbuffer_new();

	log_error("saml: replay store unavailable: %s (login refused [ref %s] from %s)", why,
		  a->request_id, a->client);
	atomic_fetch_add_explicit(&auth_logins_unavailable, 1, memory_order_relaxed);
	if (b)
		evbuffer_add_printf(b, "<p>Sign-in is temporarily unavailable. Try again in a "
				       "moment; if it keeps failing, give your administrator this "
				       "reference: <code>%s</code></p>\n<p><a href=\"/\">Start over</a></p>\n",
				    a->request_id);
	evhttp_add_header(a->out, "Retry-After", "5");
	auth_page(a, 503, "Sign-in temporarily unavailable", b);
}

/* The response was accepted (and its IDs claimed): set the session cookie
 * for <s> and send the browser to <target>. */
static void
auth_finish_login(struct auth_request *a, struct session *s, const char *target, int64_t now)
{
	struct config_saml *sc = a->cfg->saml;
	int64_t end = now + (int64_t)sc->session_lifetime;
	char *sealed;

	if (s->expires != 0 && s->expires < end)
		end = s->expires;
	s->expires = end;
	s->issued = s->last_seen = now;
	sealed = session_seal_session(sc->keys, AUTH_PURPOSE_SESSION, s);
	if (sealed == NULL) {
		auth_login_failed(a, 500, "session: the identity does not fit in a cookie (too many "
					  "attribute values; map fewer attributes)");
		return;
	}
	auth_set_cookie(a, sc->cookie_name, sealed, (long)(s->expires - now), "Lax");
	free(sealed);
	{
		char sid[SESSION_ID_LEN + 1];

		session_id(s, sid);
		log_info("saml: %s signed in [ref %s] from %s (session %s)", s->name_id,
			 a->request_id, a->client, sid);
	}
	atomic_fetch_add_explicit(&auth_logins_ok, 1, memory_order_relaxed);
	{
		/* saml.hosts: a login for another host ends at its hand-off */
		char *handoff = auth_hosts_handoff_url(sc, s, target, now);

		evhttp_add_header(a->out, "Location", handoff ? handoff : target);
		free(handoff);
	}
	auth_reply(a, 303, NULL, NULL);
}

/* A login waiting for the shared replay store (saml.replay_store "redis"). */
struct auth_acs_wait {
	struct auth_request *a;
	struct claims_request *claim;
	struct session *s;      /* the accepted identity */
	char *target;
	char *assertion_id;
	char *in_response_to;
	int64_t now;
};

static void
auth_acs_wait_free(struct auth_acs_wait *w)
{
	if (w == NULL)
		return;
	session_free(w->s);
	free(w->target);
	free(w->assertion_id);
	free(w->in_response_to);
	free(w);
}

/* The store answered: both IDs are ours, one was used (at any replica), or
 * the store failed. */
static void
auth_claim_cb(enum claims_result result, size_t used, const char *error, void *arg)
{
	struct auth_acs_wait *w = arg;
	struct auth_request *a = w->a;
	char why[1024];

	a->pending = NULL;
	switch (result) {
	case CLAIMS_CLAIMED:
		auth_finish_login(a, w->s, w->target, w->now);
		break;
	case CLAIMS_ALREADY_USED:
		if (used == 0)
			snprintf(why, sizeof why,
				 "Assertion ID: \"%s\" was used before (a replay; the shared replay "
				 "store has it from this or another replica)",
				 w->assertion_id);
		else
			snprintf(why, sizeof why,
				 "InResponseTo: the login request \"%s\" was answered before (request "
				 "IDs are single-use across replicas)",
				 w->in_response_to);
		auth_login_failed(a, 403, why);
		break;
	case CLAIMS_ERROR:
		auth_store_unavailable(a, error);
		break;
	}
	auth_acs_wait_free(w);
	a->done(a);
}

/* Claim the assertion ID and the request ID in the shared store; the login
 * ends in auth_claim_cb.  AUTH_REPLIED when it could not even be asked. */
static enum auth_action
auth_claim_ids(struct auth_request *a, struct session **s, char **target,
	       struct saml_replay_key *rk, const struct session *track, int64_t now)
{
	struct auth_acs_wait *w = calloc(1, sizeof *w);
	char *kreplay = NULL, *krequest = NULL, err[700];
	const char *keys[2];
	int64_t ttl[2];
	enum auth_action act = AUTH_REPLIED;

	if (w == NULL || (w->in_response_to = strdup(track->name_id)) == NULL)
		goto oom;
	if (asprintf(&kreplay, "replay:%s", rk->assertion_id) < 0) {
		kreplay = NULL;
		goto oom;
	}
	if (asprintf(&krequest, "request:%s", track->name_id) < 0) {
		krequest = NULL;
		goto oom;
	}
	w->a = a;
	w->now = now;
	w->s = *s;
	*s = NULL;
	w->target = *target;
	*target = NULL;
	w->assertion_id = rk->assertion_id;
	rk->assertion_id = NULL;
	/* Each ID for as long as it could still be accepted. */
	keys[0] = kreplay;
	ttl[0] = (rk->keep_until - now) * 1000;
	keys[1] = krequest;
	ttl[1] = (track->expires - now + (int64_t)a->cfg->saml->clock_skew) * 1000;
	for (size_t i = 0; i < 2; i++)
		if (ttl[i] < 1000)
			ttl[i] = 1000;
	w->claim = claims_claim(a->claims, keys, ttl, 2, a->request_id, auth_claim_cb, w, err,
				sizeof err);
	if (w->claim == NULL) {
		auth_store_unavailable(a, err);
		goto out;
	}
	a->pending = w;
	w = NULL;
	act = AUTH_PENDING;
	goto out;
oom:
	auth_reply(a, 500, NULL, NULL);
out:
	free(kreplay);
	free(krequest);
	auth_acs_wait_free(w);
	return act;
}

void
auth_cancel(struct auth_request *a)
{
	struct auth_acs_wait *w = a->pending;

	auth_hosts_cancel(a);
	if (w == NULL)
		return;
	a->pending = NULL;
	claims_cancel(w->claim);
	log_info("saml: login abandoned by the client while waiting for the replay store [ref %s] "
		 "from %s",
		 a->request_id, a->client);
	auth_acs_wait_free(w);
}

enum auth_action
auth_on_body(struct auth_request *a)
{
	struct config_saml *sc = a->cfg->saml;
	struct evbuffer *body = server_request_body(a->req);
	size_t len = evbuffer_get_length(body);
	const char *data = len ? (const char *)evbuffer_pullup(body, -1) : "";
	char *resp = NULL, *relay = NULL, *target = NULL;
	char name[sizeof AUTH_TRACK_PREFIX + AUTH_RELAY_HEX], purpose[64], err[1024];
	char *buf = malloc(SESSION_MAX_SEALED + 1);
	const char *cv;
	struct session *track = NULL, *s = NULL;
	struct saml_replay_key rk = { NULL, 0 };
	int64_t now = (int64_t)time(NULL);
	enum auth_action act = AUTH_REPLIED;
	const char *ctype = evhttp_find_header(server_request_headers(a->req), "Content-Type");

	if (auth_hosts_is_handoff(sc, a->path)) {
		free(buf);
		return (enum auth_action)auth_hosts_handoff(a);
	}
	if (buf == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return AUTH_REPLIED;
	}
	if (ctype == NULL || strncasecmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
		auth_login_failed(a, 400, "ACS: the POST is not application/x-www-form-urlencoded "
					  "(expected the HTTP-POST binding)");
		goto out;
	}
	if (memchr(data, '\0', len) != NULL) {
		auth_login_failed(a, 400, "ACS: NUL byte in the form");
		goto out;
	}
	{
		char *copy = strndup(data, len);

		if (copy == NULL) {
			auth_reply(a, 500, NULL, NULL);
			goto out;
		}
		resp = urlenc_form_value(copy, len, "SAMLResponse");
		relay = urlenc_form_value(copy, len, "RelayState");
		free(copy);
	}
	if (relay == NULL || strlen(relay) != AUTH_RELAY_HEX ||
	    strspn(relay, "0123456789abcdef") != AUTH_RELAY_HEX) {
		snprintf(err, sizeof err,
			 "RelayState: expected the opaque token of a login started here, got \"%.80s\"",
			 relay ? relay : "(none)");
		auth_login_failed(a, 400, err);
		goto out;
	}
	snprintf(name, sizeof name, "%s%s", AUTH_TRACK_PREFIX, relay);
	snprintf(purpose, sizeof purpose, "saml-request/%s", relay);
	cv = cookie_find(server_request_headers(a->req), name, buf, SESSION_MAX_SEALED + 1);
	track = cv ? session_open_session(sc->keys, purpose, cv) : NULL;
	if (track == NULL) {
		snprintf(err, sizeof err,
			 "request-tracking cookie %s: %s (the login was not started in this browser, "
			 "the browser dropped the SameSite=None cookie, or it is not HTTPS)",
			 name, cv ? "does not open (tampered, foreign key or another login)" : "missing");
		auth_login_failed(a, 400, err);
		goto out;
	}
	auth_set_cookie(a, name, "", 0, "None");
	if (now >= track->expires) {
		auth_login_failed(a, 400, "request-tracking cookie: expired (the login took more than "
					  "10 minutes)");
		goto out;
	}
	if (a->claims != NULL)
		s = saml_accept_response_shared(sc->sp, resp, track->name_id, now, &rk, err,
						sizeof err);
	else
		s = saml_accept_response(sc->sp, resp, track->name_id, now, err, sizeof err);
	if (s == NULL) {
		auth_login_failed(a, 403, err);
		goto out;
	}
	if (!auth_step_up_met(a, track, s, now))
		goto out;
	target = strdup(session_attr(track, "return") ? session_attr(track, "return") : "/");
	if (target == NULL ||
	    (!auth_return_path_ok(target) && /* saml.hosts: a login for another host */
	     (auth_hosts_kept_url(target) == NULL ||
	      auth_hosts_url_ok(sc, auth_hosts_kept_url(target)) == NULL))) {
		free(target);
		target = strdup("/");
	}
	if (target == NULL) {
		auth_reply(a, 500, NULL, NULL);
		goto out;
	}
	if (a->claims != NULL)
		act = auth_claim_ids(a, &s, &target, &rk, track, now);
	else
		auth_finish_login(a, s, target, now);
out:
	free(buf);
	free(resp);
	free(relay);
	free(target);
	free(rk.assertion_id);
	session_free(track);
	session_free(s);
	return act;
}

/* ---- the gate --------------------------------------------------------------------- */

bool
auth_bearer_passes(const struct config_route *route, const struct evkeyvalq *hs)
{
	const char *h = NULL;
	struct evkeyval *kv;

	/* Exactly one Authorization header, scheme spelled "Bearer" as PostHog
	 * matches it (case-sensitively): a "bearer phx_..." that we let through
	 * but PostHog ignored would leave PostHog to trust the session cookie. */
	TAILQ_FOREACH(kv, hs, next) {
		if (strcasecmp(kv->key, "authorization") != 0)
			continue;
		if (h != NULL)
			return false;
		h = kv->value;
	}
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	for (size_t i = 0; i < route->nallow_bearer; i++) {
		size_t n = strlen(route->allow_bearer[i]);

		if (strncmp(h, route->allow_bearer[i], n) == 0 && h[n] != '\0')
			return true;
	}
	return false;
}

static bool
auth_bearer_allowed(struct auth_request *a)
{
	return auth_bearer_passes(a->route, server_request_headers(a->req));
}

/* The first letters of two header names may match case-insensitively
 * (never false for names that strcasecmp finds equal): a cheap test first,
 * as every request header of every request is looked at. */
static bool
auth_same_first(const char *a, const char *b)
{
	return ((unsigned char)a[0] | 0x20) == ((unsigned char)b[0] | 0x20);
}

bool
auth_strips_header(const struct config_saml *sc, const char *name)
{
	for (size_t i = 0; i < sc->nheaders; i++)
		if (auth_same_first(sc->headers[i].name, name) &&
		    strcasecmp(sc->headers[i].name, name) == 0)
			return true;
	return auth_same_first(sc->assertion.header, name) &&
	       strcasecmp(sc->assertion.header, name) == 0;
}

enum auth_endpoint
auth_endpoint_of(const struct config *cfg, const struct config_site *site, const char *path,
		 unsigned method_bit)
{
	const struct config_saml *sc = cfg->saml;

	if (sc == NULL || site == NULL || !site->saml_endpoints)
		return AUTH_ENDPOINT_NONE;
	if (auth_path_is(path, sc->acs_path))
		return method_bit == METHOD_POST ? AUTH_ENDPOINT_ACS : AUTH_ENDPOINT_ACS_NOT_POST;
	if (sc->assertion.keys != NULL && strcmp(path, sc->assertion.jwks_path) == 0 &&
	    (method_bit & (METHOD_GET | METHOD_HEAD)))
		return AUTH_ENDPOINT_JWKS;
	if (strncmp(path, sc->prefix, strlen(sc->prefix)) == 0) {
		if (auth_path_is_sub(path, sc->prefix, "/metadata"))
			return AUTH_ENDPOINT_METADATA;
		if (auth_path_is_sub(path, sc->prefix, "/login"))
			return AUTH_ENDPOINT_LOGIN;
		if (auth_path_is_sub(path, sc->prefix, "/logout"))
			return AUTH_ENDPOINT_LOGOUT;
		if (auth_hosts_is_handoff(sc, path) && method_bit == METHOD_GET)
			return AUTH_ENDPOINT_HANDOFF;
	}
	return AUTH_ENDPOINT_NONE;
}

const struct policy *
auth_route_rules(const struct config *cfg, const struct config_site *site,
		 const struct config_route *route)
{
	return route->require ? route->require
	       : site && site->require ? site->require
				       : cfg->saml ? cfg->saml->require : NULL;
}

/* saml.revocation: refuse a session on the list (as if it had none: the
 * login page or 401), or every session while the list is too old with
 * on_redis_down "closed" (503).  Otherwise note who it is for a tunnel. */
static bool
auth_revoked(struct auth_request *a, struct auth_verified *v, int64_t now)
{
	const struct session *s = v->s;
	const char *sid = v->sid;
	size_t n;

	switch (revoke_check_since(s, sid, now, &v->revoke_passed)) {
	case REVOKE_PASS:
		break;
	case REVOKE_REVOKED:
		log_info("saml: session %s of %s refused [ref %s] from %s: revoked", sid, s->name_id,
			 a->request_id, a->client);
		auth_need_login(a);
		return true;
	case REVOKE_UNAVAILABLE:
		log_warn("saml: session of %s refused [ref %s] from %s: the revocation list cannot "
			 "be read (on_redis_down \"closed\")",
			 s->name_id, a->request_id, a->client);
		evhttp_add_header(a->out, "Retry-After", "5");
		auth_page(a, 503, "Sign-in check temporarily unavailable", NULL);
		return true;
	}
	n = strlen(s->name_id);
	if (n < sizeof(a->session_user))
		memcpy(a->session_user, s->name_id, n + 1);
	else
		a->session_user[0] = '\0';
	a->session_issued = s->issued;
	a->session_expires = s->expires;
	return false;
}

enum auth_action
auth_on_head(struct auth_request *a)
{
	struct config_saml *sc = a->cfg->saml;
	struct evkeyvalq *h;
	struct hdrarena *arena;
	const char *v;
	size_t vlen;
	bool cookie_alone;
	struct auth_verified *verified;
	const struct session *s;
	const struct stepup_rule *step;
	int64_t now;

	if (sc == NULL)
		return AUTH_CONTINUE;
	h = server_request_headers(a->req);
	arena = server_request_header_arena(a->req);
	/* Only we say who the user is. */
	for (struct evkeyval *kv = TAILQ_FIRST(h), *next; kv != NULL; kv = next) {
		next = TAILQ_NEXT(kv, next);
		if (auth_strips_header(sc, kv->key))
			hdrarena_remove_header(arena, h, kv->key); /* the first of that name: kv */
	}

	switch (auth_endpoint_of(a->cfg, a->site, a->path, a->method_bit)) {
	case AUTH_ENDPOINT_NONE:
		break;
	case AUTH_ENDPOINT_ACS_NOT_POST:
		evhttp_add_header(a->out, "Allow", "POST");
		auth_page(a, 405, "The sign-in endpoint takes a POST from the identity provider", NULL);
		return AUTH_REPLIED;
	case AUTH_ENDPOINT_ACS:
		return AUTH_READ_BODY;
	case AUTH_ENDPOINT_JWKS:
		auth_jwks(a);
		return AUTH_REPLIED;
	case AUTH_ENDPOINT_METADATA:
		auth_metadata(a);
		return AUTH_REPLIED;
	case AUTH_ENDPOINT_LOGIN:
		auth_login_endpoint(a);
		return AUTH_REPLIED;
	case AUTH_ENDPOINT_LOGOUT:
		auth_logout_endpoint(a);
		return AUTH_REPLIED;
	case AUTH_ENDPOINT_HANDOFF:
		/* saml.hosts: the hand-off, answered once its (empty) body is in
		 * (it may wait for the shared replay store) */
		return AUTH_READ_BODY;
	}
	if (a->route == NULL || a->route->auth != AUTH_SAML)
		return AUTH_CONTINUE;
	if (a->route->nallow_bearer > 0 && auth_bearer_allowed(a)) {
		/* The key alone speaks for the caller: no cookie (PostHog's own
		 * session, ours) may ride along and be trusted instead. */
		while (hdrarena_remove_header(arena, h, "Cookie") == 0)
			continue;
		return AUTH_CONTINUE;
	}

	step = auth_route_step_up(a->site, a->route);
	/* one walk over the Cookie headers: the value in place, and whether
	 * our cookie is all they hold (then removing them is all the strip) */
	v = cookie_find_span(h, sc->cookie_name, strlen(sc->cookie_name), &vlen, &cookie_alone);
	if (v == NULL) {
		auth_need_login_for(a, step, step != NULL && step->max_age > 0);
		return AUTH_REPLIED;
	}
	now = (int64_t)time(NULL);
	/* borrowed from this thread's cache of verified cookies: not freed here;
	 * everything that depends on the time or the route is checked below */
	verified = auth_verified_get(sc, v, vlen);
	s = verified ? verified->s : NULL;
	/* A "session_lifetime" lowered since the cookie was sealed applies too. */
	if (s == NULL || !session_is_valid(s, now, (int64_t)sc->session_idle_timeout,
					   (int64_t)sc->clock_skew) ||
	    now >= s->issued + (int64_t)sc->session_lifetime) {
		if (log_enabled(LOG_LEVEL_DEBUG))
			log_debug("saml: session cookie refused [ref %s]: %s", a->request_id,
				  s == NULL ? "does not open (tampered, foreign key or malformed)"
				  : now >= s->expires ? "expired"
				  : now >= s->issued + (int64_t)sc->session_lifetime
				      ? "older than session_lifetime"
				      : "idle too long");
		auth_need_login_for(a, step, step != NULL && step->max_age > 0);
		return AUTH_REPLIED;
	}
	if (sc->revocation.enabled && auth_revoked(a, verified, now))
		return AUTH_REPLIED;
	{
		/* the route's rules, else its site's, else saml.require */
		const struct policy *rules = auth_route_rules(a->cfg, a->site, a->route);
		const struct policy *failed = policy_check(rules, s);

		if (failed != NULL) {
			a->rule = failed->path;
			auth_forbidden(a, s, failed);
			return AUTH_REPLIED;
		}
	}
	if (step != NULL) {
		char why[512];

		if (!stepup_satisfied(step, s, now, (int64_t)sc->clock_skew, why, sizeof why)) {
			log_info("saml: step-up for %s on %s %s [ref %s]: %s: %s", s->name_id,
				 a->method, a->path, a->request_id, step->path, why);
			auth_need_login_for(a, step, true);
			return AUTH_REPLIED;
		}
	}
	auth_add_identity(a, verified);
	a->session_end = s->issued + (int64_t)sc->session_lifetime;
	if (s->expires != 0 && s->expires < a->session_end)
		a->session_end = s->expires;
	auth_add_assertion(a, verified, now);
	if (cookie_alone)
		hdrarena_remove_header(arena, h, "Cookie");
	else
		auth_strip_our_cookies(sc, h, arena);
	/* Idle timeout without server state: re-issue the cookie now and then. */
	if (sc->session_idle_timeout > 0) {
		int64_t every = (int64_t)sc->session_idle_timeout / 4;

		if (every > 60)
			every = 60;
		if (now - s->last_seen >= every) {
			struct session fresh = *s; /* shares the strings; only last_seen differs */
			char *sealed;

			fresh.last_seen = now;
			sealed = session_seal_session(sc->keys, AUTH_PURPOSE_SESSION, &fresh);
			if (sealed != NULL)
				auth_set_cookie(a, sc->cookie_name, sealed, (long)(s->expires - now), "Lax");
			free(sealed);
		}
	}
	return AUTH_CONTINUE;
}

char *
auth_metrics_render(void)
{
	char *text = NULL;

	if (asprintf(&text,
		     "# HELP portcullis_saml_logins_total SAML logins: started (sent to the IdP), "
		     "ok (session set), failed (a response refused), unavailable (replay store "
		     "down)\n"
		     "# TYPE portcullis_saml_logins_total counter\n"
		     "portcullis_saml_logins_total{result=\"started\"} %llu\n"
		     "portcullis_saml_logins_total{result=\"ok\"} %llu\n"
		     "portcullis_saml_logins_total{result=\"failed\"} %llu\n"
		     "portcullis_saml_logins_total{result=\"unavailable\"} %llu\n",
		     atomic_load(&auth_logins_started), atomic_load(&auth_logins_ok),
		     atomic_load(&auth_logins_failed), atomic_load(&auth_logins_unavailable)) < 0)
		return NULL;
	return text;
}

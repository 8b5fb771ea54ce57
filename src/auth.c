/* auth: the SAML gate and the SP endpoints; see auth.h. */
#include "auth.h"

#include <ctype.h>
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

#include "log.h"
#include "saml.h"
#include "session.h"

#define AUTH_PURPOSE_SESSION "session"
#define AUTH_TRACK_PREFIX "__Host-portcullis-saml-"
#define AUTH_TRACK_SECONDS 600
#define AUTH_RELAY_HEX 32

/* ---- helpers --------------------------------------------------------------- */

static void
auth_html_escape(struct evbuffer *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': evbuffer_add(b, "&amp;", 5); break;
		case '<': evbuffer_add(b, "&lt;", 4); break;
		case '>': evbuffer_add(b, "&gt;", 4); break;
		case '"': evbuffer_add(b, "&quot;", 6); break;
		case '\'': evbuffer_add(b, "&#39;", 5); break;
		default: evbuffer_add(b, s, 1); break;
		}
	}
}

static int
auth_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode <in> (and "+" as space when <form>) into a new string.
 * NULL on a malformed escape or a NUL byte. */
static char *
auth_url_decode(const char *in, size_t len, bool form)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '%') {
			int h, l;

			if (i + 2 >= len || (h = auth_hexval(in[i + 1])) < 0 ||
			    (l = auth_hexval(in[i + 2])) < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(h << 4 | l);
			i += 2;
		} else if (form && in[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void
auth_url_encode(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~/", c))
			evbuffer_add(b, s, 1);
		else
			evbuffer_add_printf(b, "%%%02X", c);
	}
}

/* The value of <name> in an urlencoded <body> (first occurrence), decoded. */
static char *
auth_form_value(const char *body, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = body, *end = body + len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;

		if ((size_t)(e - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=')
			return auth_url_decode(p + nlen + 1, (size_t)(e - p - (ptrdiff_t)nlen - 1), true);
		p = e + 1;
	}
	return NULL;
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
		next = auth_url_decode(cur, strlen(cur), false);
		if (next == NULL)
			goto out;
		free(cur);
		cur = next;
	}
out:
	free(cur);
	return ok;
}

/* Value of cookie <name> in the request's Cookie headers (borrowed into
 * <buf>), or NULL. */
static const char *
auth_cookie(struct evkeyvalq *h, const char *name, char *buf, size_t buflen)
{
	size_t nlen = strlen(name);
	struct evkeyval *kv;

	TAILQ_FOREACH(kv, h, next) {
		const char *p;

		if (strcasecmp(kv->key, "cookie") != 0)
			continue;
		p = kv->value;
		while (*p) {
			const char *semi, *e;

			while (*p == ' ' || *p == '\t' || *p == ';')
				p++;
			semi = strchr(p, ';');
			e = semi ? semi : p + strlen(p);
			if ((size_t)(e - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
				size_t vlen = (size_t)(e - p) - nlen - 1;

				while (vlen > 0 && (p[nlen + 1 + vlen - 1] == ' '))
					vlen--;
				if (vlen >= buflen)
					return NULL;
				memcpy(buf, p + nlen + 1, vlen);
				buf[vlen] = '\0';
				return buf;
			}
			p = e;
		}
	}
	return NULL;
}

/* Remove our cookies (the session and login-tracking ones) from the Cookie
 * headers that go upstream. */
static void
auth_strip_our_cookies(struct evkeyvalq *h, const char *session_name)
{
	struct evbuffer *kept = evbuffer_new();
	struct evkeyval *kv;
	bool changed = false, any = false;
	size_t slen = strlen(session_name), tlen = strlen(AUTH_TRACK_PREFIX);

	if (kept == NULL)
		return;
	TAILQ_FOREACH(kv, h, next) {
		const char *p;

		if (strcasecmp(kv->key, "cookie") != 0)
			continue;
		any = true;
		p = kv->value;
		while (*p) {
			const char *semi, *e;

			while (*p == ' ' || *p == '\t' || *p == ';')
				p++;
			if (*p == '\0')
				break;
			semi = strchr(p, ';');
			e = semi ? semi : p + strlen(p);
			if (((size_t)(e - p) > slen && memcmp(p, session_name, slen) == 0 &&
			     p[slen] == '=') ||
			    ((size_t)(e - p) > tlen && memcmp(p, AUTH_TRACK_PREFIX, tlen) == 0)) {
				changed = true;
			} else {
				if (evbuffer_get_length(kept) > 0)
					evbuffer_add(kept, "; ", 2);
				evbuffer_add(kept, p, (size_t)(e - p));
			}
			p = e;
		}
	}
	if (any && changed) {
		while (evhttp_find_header(h, "Cookie"))
			evhttp_remove_header(h, "Cookie");
		if (evbuffer_get_length(kept) > 0) {
			evbuffer_add(kept, "", 1);
			evhttp_add_header(h, "Cookie", (const char *)evbuffer_pullup(kept, -1));
		}
	}
	evbuffer_free(kept);
}

/* Reply with <body> (moved) and the headers already in a->out. */
static void
auth_reply(struct auth_request *a, int status, const char *content_type, struct evbuffer *body)
{
	if (content_type)
		evhttp_add_header(a->out, "Content-Type", content_type);
	evhttp_add_header(a->out, "Cache-Control", "no-store");
	evhttp_add_header(a->out, "X-Request-ID", a->request_id);
	a->status = status;
	a->bytes_out = body ? evbuffer_get_length(body) : 0;
	server_reply(a->req, status, a->out, body, false);
	a->req = NULL;
	if (body)
		evbuffer_free(body);
}

/* A short HTML page: <title>, then <html_body> (already escaped). */
static void
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

static void
auth_set_cookie(struct auth_request *a, const char *name, const char *value, long max_age,
		const char *samesite)
{
	char line[4500];

	snprintf(line, sizeof line, "%s=%s; Path=/; Max-Age=%ld; Secure; HttpOnly; SameSite=%s", name,
		 value, max_age, samesite);
	evhttp_add_header(a->out, "Set-Cookie", line);
}

/* ---- login ------------------------------------------------------------------- */

/* Start a login that comes back to <target>: tracking cookie + redirect. */
static void
auth_start_login(struct auth_request *a, const char *target)
{
	struct config_saml *sc = a->cfg->saml;
	unsigned char rnd[AUTH_RELAY_HEX / 2];
	char relay[AUTH_RELAY_HEX + 1], name[sizeof AUTH_TRACK_PREFIX + AUTH_RELAY_HEX];
	char purpose[64], err[512];
	char *url = NULL, *request_id = NULL, *sealed = NULL;
	struct session *track = session_new();
	struct evbuffer *b;
	int64_t now = (int64_t)time(NULL);

	if (track == NULL || RAND_bytes(rnd, sizeof rnd) != 1) {
		session_free(track);
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(relay + 2 * i, 3, "%02x", rnd[i]);
	if (saml_login_request(sc->sp, relay, &url, &request_id, err, sizeof err) < 0) {
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
	if (session_add_attr(track, "return", target) == 0)
		sealed = session_seal_session(sc->keys, purpose, track);
	session_free(track);
	if (sealed == NULL) {
		free(url);
		auth_reply(a, 500, NULL, NULL);
		return;
	}
	snprintf(name, sizeof name, "%s%s", AUTH_TRACK_PREFIX, relay);
	auth_set_cookie(a, name, sealed, AUTH_TRACK_SECONDS, "None");
	free(sealed);
	evhttp_add_header(a->out, "Location", url);
	b = evbuffer_new();
	if (b)
		evbuffer_add_printf(b, "Redirecting to the identity provider\n");
	free(url);
	auth_reply(a, 302, "text/plain; charset=utf-8", b);
}

/* The login URL for the current request (for 401 answers). */
static void
auth_login_url(struct auth_request *a, struct evbuffer *b)
{
	struct config_saml *sc = a->cfg->saml;

	evbuffer_add_printf(b, "%s%s/login?return=", sc->base_url, sc->prefix);
	auth_url_encode(b, a->path);
	if (a->query) {
		evbuffer_add(b, "%3F", 3);
		auth_url_encode(b, a->query);
	}
}

static bool
auth_is_navigation(struct auth_request *a)
{
	struct evkeyvalq *h = server_request_headers(a->req);
	const char *mode = evhttp_find_header(h, "Sec-Fetch-Mode");
	const char *accept = evhttp_find_header(h, "Accept");

	if (!(a->method_bit & (METHOD_GET | METHOD_HEAD)))
		return false;
	if (evhttp_find_header(h, "X-Requested-With") != NULL)
		return false;
	if (mode != NULL && strcasecmp(mode, "navigate") != 0)
		return false;
	if (accept != NULL && strstr(accept, "application/json") != NULL &&
	    strstr(accept, "text/html") == NULL)
		return false;
	return true;
}

static void
auth_need_login(struct auth_request *a)
{
	struct evbuffer *b;
	char *target = NULL;

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
		auth_start_login(a, target);
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

/* ---- the session ---------------------------------------------------------------- */

static bool
auth_has_value(const struct session *s, const char *attr, const char *value)
{
	if (strcmp(attr, "@nameid") == 0)
		return s->name_id && strcmp(s->name_id, value) == 0;
	for (size_t i = 0; i < s->nattrs; i++) {
		const char *v = s->attrs[i].value;
		size_t n = strlen(value);

		if (strcmp(s->attrs[i].name, attr) != 0)
			continue;
		if (strcmp(v, value) == 0)
			return true;
		/* a single value holding a comma-separated list */
		for (const char *p = v; (p = strstr(p, value)) != NULL; p++) {
			bool start = p == v || p[-1] == ',' || p[-1] == ' ';
			bool end = p[n] == '\0' || p[n] == ',' || p[n] == ' ';

			if (start && end)
				return true;
		}
	}
	return false;
}

static void
auth_forbidden(struct auth_request *a, const struct session *s, const struct config_saml_rule *r)
{
	struct evbuffer *b = evbuffer_new();

	log_info("saml: access refused to %s for %s %s [ref %s]: attribute %s does not contain \"%s\"",
		 s->name_id, a->method, a->path, a->request_id, r->attribute, r->value);
	if (b != NULL) {
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
		evbuffer_add_printf(b, ", but this site requires <code>");
		auth_html_escape(b, r->attribute);
		evbuffer_add_printf(b, "</code> to contain <code>");
		auth_html_escape(b, r->value);
		evbuffer_add_printf(b, "</code>. Ask your administrator for access.</p>\n<p><a href=\"");
		auth_html_escape(b, a->cfg->saml->prefix);
		evbuffer_add_printf(b, "/logout\">Sign out</a> · Reference: <code>%s</code></p>\n",
				    a->request_id);
	}
	auth_page(a, 403, "Access denied", b);
}

/* Put the identity headers into the request. */
static void
auth_add_identity(struct auth_request *a, const struct session *s)
{
	struct evkeyvalq *h = server_request_headers(a->req);
	const struct config_saml *sc = a->cfg->saml;

	for (size_t i = 0; i < sc->nheaders; i++) {
		const char *attr = sc->headers[i].attribute;
		struct evbuffer *v;

		if (strcmp(attr, "@nameid") == 0) {
			evhttp_add_header(h, sc->headers[i].name, s->name_id);
			continue;
		}
		v = evbuffer_new();
		if (v == NULL)
			continue;
		for (size_t j = 0; j < s->nattrs; j++)
			if (strcmp(s->attrs[j].name, attr) == 0)
				evbuffer_add_printf(v, "%s%s", evbuffer_get_length(v) ? ", " : "",
						    s->attrs[j].value);
		if (evbuffer_get_length(v) > 0) {
			evbuffer_add(v, "", 1);
			evhttp_add_header(h, sc->headers[i].name, (const char *)evbuffer_pullup(v, -1));
		}
		evbuffer_free(v);
	}
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

/* The value of query parameter <name>, decoded, or NULL. */
static char *
auth_query_value(const char *query, const char *name)
{
	return query ? auth_form_value(query, strlen(query), name) : NULL;
}

static void
auth_login_endpoint(struct auth_request *a)
{
	char *target = auth_query_value(a->query, "return");

	if (target == NULL && a->query != NULL && strstr(a->query, "return=") != NULL) {
		log_warn("saml: login refused [ref %s]: return: malformed percent-encoding",
			 a->request_id);
		auth_page(a, 400, "Bad sign-in link", NULL);
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
	auth_start_login(a, target ? target : "/");
	free(target);
}

static void
auth_logout_endpoint(struct auth_request *a)
{
	struct config_saml *sc = a->cfg->saml;
	char buf[SESSION_MAX_SEALED + 1];
	const char *v = auth_cookie(server_request_headers(a->req), sc->cookie_name, buf, sizeof buf);
	struct session *s = v ? session_open_session(sc->keys, AUTH_PURPOSE_SESSION, v) : NULL;
	char *slo = NULL;
	struct evbuffer *b;

	auth_set_cookie(a, sc->cookie_name, "", 0, "Lax");
	if (s != NULL) {
		log_info("saml: %s signed out [ref %s]", s->name_id, a->request_id);
		/* Only when this is not the IdP coming back from its own logout. */
		if (a->query == NULL || (strstr(a->query, "SAMLResponse=") == NULL &&
					 strstr(a->query, "SAMLRequest=") == NULL))
			slo = saml_logout_request(sc->sp, s->name_id, "");
	}
	session_free(s);
	if (slo != NULL) {
		evhttp_add_header(a->out, "Location", slo);
		free(slo);
		auth_reply(a, 302, NULL, NULL);
		return;
	}
	b = evbuffer_new();
	if (b)
		evbuffer_add_printf(b, "<p>You are signed out of this site.</p><p><a href=\"/\">Sign in "
				       "again</a></p>\n");
	auth_page(a, 200, "Signed out", b);
}

static void
auth_login_failed(struct auth_request *a, int status, const char *why)
{
	struct evbuffer *b = evbuffer_new();

	log_warn("saml: login failed [ref %s] from %s: %s", a->request_id, a->client, why);
	if (b)
		evbuffer_add_printf(b, "<p>The sign-in could not be completed. Try again from the "
				       "start; if it keeps failing, give your administrator this "
				       "reference: <code>%s</code></p>\n<p><a href=\"/\">Start over</a></p>\n",
				    a->request_id);
	auth_page(a, status, "Sign-in failed", b);
}

void
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
	int64_t now = (int64_t)time(NULL);
	char *sealed = NULL;
	const char *ctype = evhttp_find_header(server_request_headers(a->req), "Content-Type");

	if (buf == NULL) {
		auth_reply(a, 500, NULL, NULL);
		return;
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
		resp = auth_form_value(copy, len, "SAMLResponse");
		relay = auth_form_value(copy, len, "RelayState");
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
	cv = auth_cookie(server_request_headers(a->req), name, buf, SESSION_MAX_SEALED + 1);
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
	s = saml_accept_response(sc->sp, resp, track->name_id, now, err, sizeof err);
	if (s == NULL) {
		auth_login_failed(a, 403, err);
		goto out;
	}
	target = strdup(session_attr(track, "return") ? session_attr(track, "return") : "/");
	if (target == NULL || !auth_return_path_ok(target)) {
		free(target);
		target = strdup("/");
	}
	{
		int64_t end = now + (int64_t)sc->session_lifetime;

		if (s->expires != 0 && s->expires < end)
			end = s->expires;
		s->expires = end;
		s->issued = s->last_seen = now;
	}
	sealed = session_seal_session(sc->keys, AUTH_PURPOSE_SESSION, s);
	if (sealed == NULL) {
		auth_login_failed(a, 500, "session: the identity does not fit in a cookie (too many "
					  "attribute values; map fewer attributes)");
		goto out;
	}
	auth_set_cookie(a, sc->cookie_name, sealed, (long)(s->expires - now), "Lax");
	log_info("saml: %s signed in [ref %s] from %s", s->name_id, a->request_id, a->client);
	evhttp_add_header(a->out, "Location", target ? target : "/");
	auth_reply(a, 303, NULL, NULL);
out:
	free(buf);
	free(sealed);
	free(resp);
	free(relay);
	free(target);
	session_free(track);
	session_free(s);
}

/* ---- the gate --------------------------------------------------------------------- */

static bool
auth_bearer_allowed(struct auth_request *a)
{
	const char *h = evhttp_find_header(server_request_headers(a->req), "Authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	for (size_t i = 0; i < a->route->nallow_bearer; i++) {
		size_t n = strlen(a->route->allow_bearer[i]);

		if (strncmp(h, a->route->allow_bearer[i], n) == 0 && h[n] != '\0')
			return true;
	}
	return false;
}

enum auth_action
auth_on_head(struct auth_request *a)
{
	struct config_saml *sc = a->cfg->saml;
	struct evkeyvalq *h;
	char buf[SESSION_MAX_SEALED + 1];
	const char *v;
	struct session *s;
	int64_t now;

	if (sc == NULL)
		return AUTH_CONTINUE;
	h = server_request_headers(a->req);
	/* Only we say who the user is. */
	for (size_t i = 0; i < sc->nheaders; i++)
		while (evhttp_find_header(h, sc->headers[i].name) != NULL)
			evhttp_remove_header(h, sc->headers[i].name);

	if (a->site != NULL && a->site->saml_endpoints) {
		if (auth_path_is(a->path, sc->acs_path)) {
			if (a->method_bit != METHOD_POST) {
				evhttp_add_header(a->out, "Allow", "POST");
				auth_page(a, 405, "The sign-in endpoint takes a POST from the identity provider",
					  NULL);
				return AUTH_REPLIED;
			}
			return AUTH_READ_BODY;
		}
		if (strncmp(a->path, sc->prefix, strlen(sc->prefix)) == 0) {
			if (auth_path_is_sub(a->path, sc->prefix, "/metadata")) {
				auth_metadata(a);
				return AUTH_REPLIED;
			}
			if (auth_path_is_sub(a->path, sc->prefix, "/login")) {
				auth_login_endpoint(a);
				return AUTH_REPLIED;
			}
			if (auth_path_is_sub(a->path, sc->prefix, "/logout")) {
				auth_logout_endpoint(a);
				return AUTH_REPLIED;
			}
		}
	}
	if (a->route == NULL || a->route->auth != AUTH_SAML)
		return AUTH_CONTINUE;
	if (a->route->nallow_bearer > 0 && auth_bearer_allowed(a))
		return AUTH_CONTINUE;

	v = auth_cookie(h, sc->cookie_name, buf, sizeof buf);
	if (v == NULL) {
		auth_need_login(a);
		return AUTH_REPLIED;
	}
	now = (int64_t)time(NULL);
	s = session_open_session(sc->keys, AUTH_PURPOSE_SESSION, v);
	if (s == NULL || !session_is_valid(s, now, (int64_t)sc->session_idle_timeout,
					   (int64_t)sc->clock_skew)) {
		if (log_enabled(LOG_LEVEL_DEBUG))
			log_debug("saml: session cookie refused [ref %s]: %s", a->request_id,
				  s == NULL ? "does not open (tampered, foreign key or malformed)"
					    : now >= s->expires ? "expired" : "idle too long");
		session_free(s);
		auth_need_login(a);
		return AUTH_REPLIED;
	}
	for (size_t i = 0; i < sc->nrules; i++) {
		if (!auth_has_value(s, sc->rules[i].attribute, sc->rules[i].value)) {
			auth_forbidden(a, s, &sc->rules[i]);
			session_free(s);
			return AUTH_REPLIED;
		}
	}
	auth_add_identity(a, s);
	auth_strip_our_cookies(h, sc->cookie_name);
	/* Idle timeout without server state: re-issue the cookie now and then. */
	if (sc->session_idle_timeout > 0) {
		int64_t every = (int64_t)sc->session_idle_timeout / 4;

		if (every > 60)
			every = 60;
		if (now - s->last_seen >= every) {
			char *sealed;

			s->last_seen = now;
			sealed = session_seal_session(sc->keys, AUTH_PURPOSE_SESSION, s);
			if (sealed != NULL)
				auth_set_cookie(a, sc->cookie_name, sealed, (long)(s->expires - now), "Lax");
			free(sealed);
		}
	}
	session_free(s);
	return AUTH_CONTINUE;
}

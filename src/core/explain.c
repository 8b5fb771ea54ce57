/* explain: what one request would meet, step by step; see explain.h. */
#include "core/explain.h"

#include <arpa/inet.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "access/access.h"
#include "access/access_check.h"
#include "access/ipacl.h"
#include "access/netaddr.h"
#include "auth/auth.h"
#include "auth/policy.h"
#include "auth/session.h"
#include "auth/stepup.h"
#include "http/headers.h"
#include "http/pathnorm.h"
#include "http/target.h"
#include "http/traceparent.h"
#include "proxy/fwdheaders.h"
#include "proxy/routing.h"
#include "proxy/websocket.h"

#define EXPLAIN_PATH_BYTES 8192 /* as proxy.c's path buffers */
#define EXPLAIN_DEFAULT_CLIENT "127.0.0.1"

/* One explanation being built: the steps, and what the request carries. */
struct explain {
	const struct config *cfg;
	const struct explain_request *req;
	json_t *steps;            /* array of step objects, in order */
	json_t *dropped;          /* the client's headers not forwarded, with why */
	struct evkeyvalq headers; /* the request headers (the client's, then the gate's) */
	size_t nclient;           /* how many of them the client sent (the gate's follow) */
	char method[16];
	const char *peer;          /* --from: the address the connection comes from */
	char client[INET6_ADDRSTRLEN]; /* the client: the peer, or from X-Forwarded-For */
	bool trusted;              /* the peer is in trusted_proxies */
	char xff[2048];            /* a trusted peer's X-Forwarded-For headers, joined */
	const char *xfp, *xfh, *xfport; /* a trusted peer's X-Forwarded-Proto, -Host, -Port */
	size_t listener;
	const struct config_listener *l;
	char origin[EXPLAIN_PATH_BYTES]; /* the request-target sent (origin-form) */
	char authority[256];
	bool https;
	int port;
	char host[256];
	char path[EXPLAIN_PATH_BYTES];
	char fwd_path[EXPLAIN_PATH_BYTES];
	const char *query;
	struct routing_result routed;
	struct access_outcome access;
	enum websocket_ask ws_ask;
	/* the outcome */
	int status;               /* the status Portcullis answers, 0 when forwarded */
	int exit_status;
	const char *verdict;      /* "forwarded", "refused", "answered" */
	char reason[512];
};

/* <s> as a JSON string; bytes of invalid UTF-8 (a raw byte in a URL or
 * header the user gave) become "?". */
static json_t *
explain_text(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j != NULL || s == NULL || (copy = strdup(s)) == NULL)
		return j;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *
explain_step(struct explain *e, const char *name, const char *verdict, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Append a step {"step", "verdict", "detail"} and return it for more keys. */
static json_t *
explain_step(struct explain *e, const char *name, const char *verdict, const char *fmt, ...)
{
	json_t *step = json_object();
	char detail[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	json_object_set_new(step, "step", json_string(name));
	json_object_set_new(step, "verdict", json_string(verdict));
	json_object_set_new(step, "detail", explain_text(detail));
	json_array_append_new(e->steps, step);
	return step;
}

/* The request stops here: Portcullis answers <status> (or nothing). */
static void
explain_stop(struct explain *e, int status, const char *reason)
{
	e->status = status;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	if (status >= 400 || status == 0) {
		e->verdict = "refused";
		e->exit_status = EXPLAIN_REFUSED;
	} else {
		e->verdict = "answered";
		e->exit_status = EXPLAIN_ANSWERED;
	}
}

static json_t *
explain_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* ---- the request ------------------------------------------------------ */

/* "METHOD URL" into method, scheme, authority, port and origin-form target. */
static int
explain_parse_request(struct explain *e, char *err, size_t errlen)
{
	const char *r = e->req->request;
	const char *sp = strchr(r, ' ');
	struct target_parts tp;
	enum target_error te;
	size_t n;

	if (sp == NULL || sp == r || (size_t)(sp - r) >= sizeof(e->method)) {
		snprintf(err, errlen, "--explain wants 'METHOD URL', e.g. 'GET https://example.com/'");
		return -1;
	}
	memcpy(e->method, r, (size_t)(sp - r));
	e->method[sp - r] = '\0';
	for (char *p = e->method; *p; p++)
		if (*p < 'A' || *p > 'Z') {
			snprintf(err, errlen, "--explain: the method \"%s\" is not upper-case letters",
				 e->method);
			return -1;
		}
	while (*sp == ' ')
		sp++;
	te = target_split(sp, &tp);
	if (te != TARGET_OK || tp.form != TARGET_ABSOLUTE) {
		snprintf(err, errlen, "--explain: the URL must be absolute, http://HOST[:PORT]/PATH or "
				      "https://...: %s",
			 te != TARGET_OK ? target_reason(te) : "no scheme");
		return -1;
	}
	if (tp.authority_len >= sizeof(e->authority)) {
		snprintf(err, errlen, "--explain: the URL's host is too long");
		return -1;
	}
	memcpy(e->authority, tp.authority, tp.authority_len);
	e->authority[tp.authority_len] = '\0';
	e->https = tp.https;
	e->port = target_port(e->authority, tp.https ? 443 : 80);
	if (e->port < 0) {
		snprintf(err, errlen, "--explain: the URL's port is not 1..65535");
		return -1;
	}
	/* what a client sends: the origin-form target ("http://h" is "/") */
	n = strlen(tp.rest);
	if (n + 2 > sizeof(e->origin)) {
		snprintf(err, errlen, "--explain: the URL is too long");
		return -1;
	}
	snprintf(e->origin, sizeof(e->origin), "%s%s", tp.rest[0] == '/' ? "" : "/", tp.rest);
	return 0;
}

/* The --header and --identity arguments, checked. */
static int
explain_parse_headers(struct explain *e, char *err, size_t errlen)
{
	bool has_host = false;

	for (size_t i = 0; i < e->req->nheaders; i++) {
		const char *h = e->req->headers[i];
		const char *colon = strchr(h, ':');
		char name[256];
		const char *value;

		if (colon == NULL || colon == h || (size_t)(colon - h) >= sizeof(name)) {
			snprintf(err, errlen, "--header wants 'Name: value', not \"%s\"", h);
			return -1;
		}
		memcpy(name, h, (size_t)(colon - h));
		name[colon - h] = '\0';
		value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		if (!headers_is_token(name) || !headers_value_ok(value)) {
			snprintf(err, errlen, "--header \"%s\": not a valid header name and value", h);
			return -1;
		}
		if (strcasecmp(name, "host") == 0)
			has_host = true;
		evhttp_add_header(&e->headers, name, value);
	}
	if (!has_host)
		evhttp_add_header(&e->headers, "Host", e->authority);
	for (size_t i = 0; i < e->req->nidentity; i++) {
		const char *eq = strchr(e->req->identity[i], '=');

		if (eq == NULL || eq == e->req->identity[i]) {
			snprintf(err, errlen, "--identity wants 'attribute=value' (or '@nameid=value'), "
					      "not \"%s\"", e->req->identity[i]);
			return -1;
		}
	}
	return 0;
}

/* ---- the steps ---------------------------------------------------------- */

/* The client: --from, or behind a trusted proxy the address its
 * X-Forwarded-For names (as the live request reads it). */
static void
explain_client(struct explain *e)
{
	const struct config *cfg = e->cfg;
	struct evkeyval *kv;
	size_t used = 0;
	json_t *step;

	snprintf(e->client, sizeof(e->client), "%s", e->peer);
	e->trusted = ipacl_size(cfg->trusted) > 0 && ipacl_contains_str(cfg->trusted, e->peer);
	if (e->trusted) {
		TAILQ_FOREACH(kv, &e->headers, next) {
			if (strcasecmp(kv->key, "x-forwarded-for") == 0 && used < sizeof(e->xff))
				used += (size_t)snprintf(e->xff + used, sizeof(e->xff) - used, "%s%s",
							 used ? ", " : "", kv->value);
			else if (strcasecmp(kv->key, "x-forwarded-proto") == 0 && e->xfp == NULL)
				e->xfp = kv->value;
			else if (strcasecmp(kv->key, "x-forwarded-host") == 0 && e->xfh == NULL)
				e->xfh = kv->value;
			else if (strcasecmp(kv->key, "x-forwarded-port") == 0 && e->xfport == NULL)
				e->xfport = kv->value;
		}
		if (e->xff[0])
			fwdheaders_client(cfg->trusted, e->xff, e->client, sizeof(e->client));
	}
	step = explain_step(e, "client", e->trusted ? "trusted_peer" : "direct", "%s%s%s%s",
			    e->client, e->trusted ? " (the peer " : "", e->trusted ? e->peer : "",
			    e->trusted ? " is in trusted_proxies: X-Forwarded-* are believed)" : "");
	json_object_set_new(step, "address", json_string(e->client));
	json_object_set_new(step, "peer", json_string(e->peer));
}

/* The listener: named, or the first HTTP one of the URL's scheme and port. */
static int
explain_listener(struct explain *e, char *err, size_t errlen)
{
	const struct config *cfg = e->cfg;
	json_t *step;

	e->l = NULL;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];

		if (e->req->listener) {
			if (strcmp(l->name, e->req->listener) != 0)
				continue;
			if (l->type != LISTENER_HTTP) {
				snprintf(err, errlen, "--listener %s: a raw TCP listener has no routes",
					 e->req->listener);
				return -1;
			}
		} else if (l->type != LISTENER_HTTP || l->tls != e->https || atoi(l->port) != e->port) {
			continue;
		}
		e->l = l;
		e->listener = i;
		break;
	}
	if (e->l == NULL && e->req->listener) {
		snprintf(err, errlen, "--listener %s: no listener has that name", e->req->listener);
		return -1;
	}
	if (e->l == NULL) {
		explain_step(e, "listener", "none",
			     "no HTTP listener serves %s on port %d (name one with --listener)",
			     e->https ? "https" : "http", e->port);
		explain_stop(e, 0, "no listener would receive the request");
		return 1;
	}
	step = explain_step(e, "listener", "chosen", "%s (%s, %s)%s", e->l->name, e->l->address,
			    e->l->tls ? "https" : "http",
			    e->req->listener ? ", named by --listener" : ", by the URL's scheme and port");
	json_object_set_new(step, "name", json_string(e->l->name));
	json_object_set_new(step, "address", json_string(e->l->address));
	json_object_set_new(step, "tls", json_boolean(e->l->tls));
	if (e->req->listener && e->l->tls != e->https) {
		explain_step(e, "scheme", "mismatch", "the URL is %s, listener %s is %s: the "
			     "connection fails before any request", e->https ? "https" : "http",
			     e->l->name, e->l->tls ? "HTTPS" : "plain HTTP");
		explain_stop(e, 0, "the URL's scheme is not the listener's");
		return 1;
	}
	return 0;
}

/* Method, path normalization and the built-in answers. */
static int
explain_path(struct explain *e)
{
	enum pathnorm_result pr;
	json_t *step;

	if (routing_method_bit(e->method) == 0) {
		explain_step(e, "method", "refused", "%s is not a method Portcullis forwards", e->method);
		explain_stop(e, 405, "this method is not accepted");
		return 1;
	}
	pr = pathnorm_normalize(e->origin, e->path, sizeof(e->path), &e->query);
	if (pr != PATHNORM_OK) {
		int status = pr == PATHNORM_TOO_LONG ? 414 : 400;

		step = explain_step(e, "path", "refused", "%s: %s (%d)", e->origin, pathnorm_reason(pr),
				    status);
		json_object_set_new(step, "target", explain_text(e->origin));
		json_object_set_new(step, "status", json_integer(status));
		explain_stop(e, status, pathnorm_reason(pr));
		return 1;
	}
	step = explain_step(e, "path", "normalized", "%s%s%s", e->path, e->query ? "?" : "",
			    e->query ? e->query : "");
	json_object_set_new(step, "target", explain_text(e->origin));
	json_object_set_new(step, "path", json_string(e->path));
	json_object_set_new(step, "query", e->query ? explain_text(e->query) : json_null());
	switch (routing_builtin(e->cfg, e->listener, e->path, true)) {
	case ROUTING_BUILTIN_NONE:
		return 0;
	case ROUTING_BUILTIN_ACME:
		explain_step(e, "builtin", "acme",
			     "an ACME HTTP-01 challenge: answered from the pending challenges "
			     "(200 with the key authorization, 404 when none is pending)");
		explain_stop(e, 200, "ACME HTTP-01 challenge answer");
		return 1;
	case ROUTING_BUILTIN_REDIRECT_HTTPS:
		explain_step(e, "builtin", "redirect_https",
			     "listener %s has \"redirect_https\": 308 to the same host and path over "
			     "https (the first TLS listener's port)", e->l->name);
		explain_stop(e, 308, "redirected to HTTPS");
		return 1;
	}
	return 0;
}

static const char *
explain_action_name(enum config_action a)
{
	switch (a) {
	case ACTION_PROXY:
		return "upstream";
	case ACTION_RESPOND:
		return "respond";
	case ACTION_REDIRECT:
		return "redirect";
	case ACTION_SITE:
		return "site";
	}
	return "?";
}

/* Site, route, the "site" hop, the path forwarded. */
static int
explain_route(struct explain *e)
{
	struct routing_result *rr = &e->routed;
	const char *host = evhttp_find_header(&e->headers, "Host");
	json_t *step;

	routing_decide(e->cfg, e->listener, host, true, host, e->path,
		       routing_method_bit(e->method), e->host, sizeof(e->host), e->fwd_path,
		       sizeof(e->fwd_path), rr);
	if (rr->site == NULL) {
		explain_step(e, "site", "refused", "host \"%s\": %s (%d)", host, rr->reason, rr->status);
		explain_stop(e, rr->status, rr->reason);
		return 1;
	}
	step = explain_step(e, "site", "matched", "%s (host %s)", rr->site->name,
			    e->host[0] ? e->host : "none");
	json_object_set_new(step, "name", json_string(rr->site->name));
	json_object_set_new(step, "host", json_string(e->host));
	if (rr->status != 0) {
		step = explain_step(e, "route", "refused", "%s%s%s (%d)",
				    rr->jump_route ? "through " : "",
				    rr->jump_route ? rr->jump_route->name : "", rr->reason ? rr->reason : "",
				    rr->status);
		json_object_set_new(step, "via", rr->jump_route ? json_string(rr->jump_route->name)
								 : json_null());
		explain_stop(e, rr->status, rr->reason);
		return 1;
	}
	step = explain_step(e, "route", "matched", "%s%s%s (%s), path upstream %s", rr->route->name,
			    rr->jump_route ? " through " : "",
			    rr->jump_route ? rr->jump_route->name : "",
			    explain_action_name(rr->route->action), e->fwd_path);
	json_object_set_new(step, "name", json_string(rr->route->name));
	json_object_set_new(step, "action", json_string(explain_action_name(rr->route->action)));
	json_object_set_new(step, "via", rr->jump_route ? json_string(rr->jump_route->name)
							 : json_null());
	json_object_set_new(step, "forwarded_path", json_string(e->fwd_path));
	return 0;
}

/* The access rules (listener, routes, GeoIP) and the rate limits. */
static int
explain_access(struct explain *e)
{
	const struct access_block *rates[2];
	size_t nrates = 0;
	json_t *step, *list;
	int status;

	status = access_check_explain(e->cfg, e->listener, e->routed.jump_route, e->routed.route,
				      e->client, &e->access, rates, &nrates);
	step = explain_step(e, "access", status == 0 ? "allowed" : "denied", "%s from %s%s%s%s",
			    status == 0 ? "allowed" : "denied", e->client,
			    e->access.rule ? " by " : "", e->access.rule ? e->access.rule : "",
			    e->cfg->geoip ? "" : "; GeoIP not evaluated (no \"geoip\" database)");
	json_object_set_new(step, "client", json_string(e->client));
	json_object_set_new(step, "rule", explain_str_or_null(e->access.rule));
	json_object_set_new(step, "status", json_integer(status));
	if (e->cfg->geoip)
		json_object_set_new(step, "country", json_string(e->access.country));
	else
		json_object_set_new(step, "geoip", json_string("not evaluated: no geoip database"));
	if (status == 403) {
		explain_stop(e, 403, "access is not allowed from your address");
		return 1;
	}
	list = json_array();
	for (size_t i = 0; i < nrates; i++) {
		json_t *r = json_object();

		json_object_set_new(r, "rule", json_sprintf("%s.rate", rates[i]->path));
		json_object_set_new(r, "per_second", json_real(rates[i]->rate));
		json_object_set_new(r, "burst", json_real(rates[i]->burst));
		json_array_append_new(list, r);
	}
	if (nrates == 0)
		step = explain_step(e, "rate_limit", "none", "no rate limit applies");
	else
		step = explain_step(e, "rate_limit", "applies", "%s.rate: %g per second, burst %g%s%s%s",
				    rates[0]->path, rates[0]->rate, rates[0]->burst,
				    nrates > 1 ? "; then " : "", nrates > 1 ? rates[1]->path : "",
				    nrates > 1 ? ".rate" : "");
	json_object_set_new(step, "limits", list);
	return 0;
}

static const char *
explain_endpoint_name(enum auth_endpoint ep)
{
	switch (ep) {
	case AUTH_ENDPOINT_NONE:
		return "none";
	case AUTH_ENDPOINT_ACS:
	case AUTH_ENDPOINT_ACS_NOT_POST:
		return "the ACS";
	case AUTH_ENDPOINT_JWKS:
		return "the identity assertion's JWKS";
	case AUTH_ENDPOINT_METADATA:
		return "the SP metadata";
	case AUTH_ENDPOINT_LOGIN:
		return "the login endpoint";
	case AUTH_ENDPOINT_LOGOUT:
		return "the logout endpoint";
	case AUTH_ENDPOINT_HANDOFF:
		return "the saml.hosts hand-off";
	}
	return "?";
}

/* A session of the --identity attributes, or NULL (out of memory). */
static struct session *
explain_session(struct explain *e)
{
	struct session *s = session_new();

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < e->req->nidentity; i++) {
		const char *item = e->req->identity[i];
		const char *eq = strchr(item, '=');
		char name[256];

		snprintf(name, sizeof(name), "%.*s", (int)(eq - item), item);
		if (strcmp(name, "@nameid") == 0) {
			free(s->name_id);
			s->name_id = strdup(eq + 1);
		} else if (session_add_attr(s, name, eq + 1) < 0) {
			session_free(s);
			return NULL;
		}
	}
	if (s->name_id == NULL)
		s->name_id = strdup("explain");
	if (s->name_id == NULL) {
		session_free(s);
		return NULL;
	}
	return s;
}

/* The SAML gate: its endpoints, then the route's "auth". */
static int
explain_auth(struct explain *e)
{
	const struct config *cfg = e->cfg;
	const struct config_route *route = e->routed.route;
	unsigned method_bit = routing_method_bit(e->method);
	enum auth_endpoint ep = auth_endpoint_of(cfg, e->routed.site, e->path, method_bit);
	const struct policy *rules, *failed;
	const struct stepup_rule *step_up;
	const char *audience;
	struct evkeyval *kv;
	struct session *s;
	json_t *step;
	char names[256];

	if (cfg->saml) {
		/* only the gate says who the user is */
		struct evkeyval *next;

		for (kv = TAILQ_FIRST(&e->headers); kv != NULL; kv = next) {
			next = TAILQ_NEXT(kv, next);
			if (auth_strips_header(cfg->saml, kv->key)) {
				json_t *d = json_object();

				json_object_set_new(d, "name", explain_text(kv->key));
				json_object_set_new(d, "why", json_string("the SAML gate removes it: only "
									  "the proxy says who the user is"));
				json_array_append_new(e->dropped, d);
				evhttp_remove_header(&e->headers, kv->key);
			}
		}
	}
	if (ep != AUTH_ENDPOINT_NONE) {
		int status = ep == AUTH_ENDPOINT_ACS_NOT_POST ? 405 : 200;

		step = explain_step(e, "auth", "sp_endpoint", "%s: answered by Portcullis (%d)",
				    explain_endpoint_name(ep), status);
		json_object_set_new(step, "status", json_integer(status));
		explain_stop(e, status, explain_endpoint_name(ep));
		return 1;
	}
	if (cfg->saml == NULL || route->auth != AUTH_SAML) {
		explain_step(e, "auth", "open", "the route has no \"auth\": no sign-in needed");
		return 0;
	}
	if (route->nallow_bearer > 0 && auth_bearer_passes(route, &e->headers)) {
		explain_step(e, "auth", "bearer",
			     "the Authorization bearer token matches the route's allow_bearer: "
			     "passes without a session (its Cookie header is removed)");
		while (evhttp_find_header(&e->headers, "Cookie") != NULL)
			evhttp_remove_header(&e->headers, "Cookie");
		return 0;
	}
	if (e->req->nidentity == 0) {
		bool nav = auth_is_navigation_request(method_bit, &e->headers);

		step = explain_step(e, "auth", "session_needed",
				    "\"auth\": \"saml\" and no session (give --identity to explain a "
				    "signed-in user): %s",
				    nav ? "302 to the identity provider (login redirect)"
					: "401 with a login URL (not a browser navigation)");
		json_object_set_new(step, "status", json_integer(nav ? 302 : 401));
		explain_stop(e, nav ? 302 : 401, "a session is needed");
		e->verdict = "refused";
		e->exit_status = EXPLAIN_REFUSED;
		return 1;
	}
	s = explain_session(e);
	if (s == NULL) {
		explain_stop(e, 500, "out of memory");
		return 1;
	}
	rules = auth_route_rules(cfg, e->routed.site, route);
	failed = policy_check(rules, s);
	if (failed != NULL) {
		policy_attributes(failed, names, sizeof(names));
		step = explain_step(e, "auth", "denied",
				    "signed in as %s, but %s does not satisfy the rule %s (403)",
				    s->name_id, names, failed->path);
		json_object_set_new(step, "rule", json_string(failed->path));
		json_object_set_new(step, "attribute", json_string(names));
		json_object_set_new(step, "status", json_integer(403));
		explain_stop(e, 403, "the route's rules refuse this user");
		session_free(s);
		return 1;
	}
	step = explain_step(e, "auth", "allowed", "signed in as %s: %s", s->name_id,
			    rules ? "the route's rules hold" : "any signed-in user may pass");
	json_object_set_new(step, "rule", rules ? json_string(rules->path) : json_null());
	step_up = auth_route_step_up(e->routed.site, route);
	if (step_up != NULL) {
		step = explain_step(e, "step_up", "required",
				    "%s: a session that does not meet it is sent to the identity "
				    "provider again (302); --identity stands for one that does",
				    step_up->path);
		json_object_set_new(step, "rule", json_string(step_up->path));
	}
	auth_strip_our_cookies(cfg->saml, &e->headers, NULL);
	e->nclient = 0;
	TAILQ_FOREACH(kv, &e->headers, next)
		e->nclient++;
	auth_identity_headers(cfg->saml, s, &e->headers);
	audience = auth_assertion_audience(e->routed.site, route);
	if (audience != NULL) {
		char value[300];

		snprintf(value, sizeof(value), "(a JWT signed per request, audience %s)", audience);
		evhttp_add_header(&e->headers, cfg->saml->assertion.header, value);
	}
	session_free(s);
	return 0;
}

/* What a route that answers itself answers. */
static int
explain_fixed(struct explain *e)
{
	const struct config_route *r = e->routed.route;

	if (r->action == ACTION_RESPOND) {
		explain_step(e, "respond", "answered", "the route answers %d itself (%s)", r->status,
			     r->content_type);
		explain_stop(e, r->status, "the route's fixed response");
		return 1;
	}
	if (r->action == ACTION_REDIRECT) {
		explain_step(e, "redirect", "answered", "the route redirects (%d) to %s%s", r->status,
			     r->redirect_to, r->redirect_keep_path ? " + the path and query" : "");
		explain_stop(e, r->status, "the route's redirect");
		return 1;
	}
	return 0;
}

static void
explain_upstream(struct explain *e)
{
	const struct config_route *r = e->routed.route;
	const struct config_upstream *u = r->upstream;
	json_t *servers = json_array();
	json_t *step;
	char list[512] = "";
	size_t used = 0;

	for (size_t i = 0; i < u->nservers; i++) {
		json_array_append_new(servers, json_string(u->servers[i].address));
		if (used < sizeof(list))
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
						 i ? ", " : "", u->servers[i].address);
	}
	step = explain_step(e, "upstream", "chosen", "%s (%s%s), Host %s", u->name, list,
			    u->tls_ctx ? ", https" : "",
			    e->routed.upstream_host ? e->routed.upstream_host
						    : "of the chosen server (host:port)");
	json_object_set_new(step, "name", json_string(u->name));
	json_object_set_new(step, "servers", servers);
	json_object_set_new(step, "tls", json_boolean(u->tls_ctx != NULL));
	json_object_set_new(step, "host", explain_str_or_null(e->routed.upstream_host));
}

/* ---- headers ------------------------------------------------------------ */

static void
explain_sent(json_t *list, const char *name, const char *value, const char *from)
{
	json_t *h = json_object();

	json_object_set_new(h, "name", explain_text(name));
	json_object_set_new(h, "value", explain_text(value));
	json_object_set_new(h, "from", json_string(from));
	json_array_append_new(list, h);
}

static void
explain_own_header(void *arg, const char *name, const char *value, const char *more)
{
	json_t *list = arg;
	char joined[1024];

	if (more)
		snprintf(joined, sizeof(joined), "%s, %s", value, more);
	explain_sent(list, name, more ? joined : value, "proxy");
}

/* The raw "Name: value\r\n" lines of <buf> into <list>. */
static void
explain_sent_lines(json_t *list, const char *buf, size_t len, const char *from)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)((eol ? eol : end) - p));
		char name[128], value[256];

		if (eol == NULL || colon == NULL)
			break;
		snprintf(name, sizeof(name), "%.*s", (int)(colon - p), p);
		snprintf(value, sizeof(value), "%.*s", (int)(eol - colon - 2), colon + 2);
		explain_sent(list, name, value, from);
		p = eol + 2;
	}
}

/* The headers the upstream receives and those dropped; the WebSocket upgrade. */
static void
explain_headers(struct explain *e)
{
	json_t *dropped = e->dropped;
	const struct config_route *r = e->routed.route, *j = e->routed.jump_route;
	struct headers_connection_list conn = {0};
	struct fwdheaders_rules rules;
	struct fwdheaders_own own;
	struct websocket_upgrade up;
	json_t *sent = json_array(), *step;
	struct evkeyval *kv;
	size_t position = 0;
	const char *traceparent = NULL;
	unsigned ntraceparent = 0;
	struct traceparent tp;
	bool trace_continued;
	bool ws = false;

	e->ws_ask = websocket_classify(&e->headers, e->method, SERVER_PROTO_HTTP11);
	if (e->ws_ask == WEBSOCKET_ASKED && r->websocket_off)
		explain_step(e, "websocket", "refused",
			     "the route has \"websocket\": false: forwarded as a plain GET");
	else if (e->ws_ask == WEBSOCKET_ASKED)
		ws = websocket_upgrade_init(&up, &e->headers) == 0;
	if (ws)
		explain_step(e, "websocket", "allowed", "the upgrade goes upstream");
	else if (e->ws_ask == WEBSOCKET_OTHER)
		explain_step(e, "websocket", "not_asked",
			     "an Upgrade that is not a valid WebSocket one: stripped, a plain request");
	else if (e->ws_ask == WEBSOCKET_NONE)
		explain_step(e, "websocket", r->websocket_off ? "off" : "allowed",
			     "not asked; the route %s WebSocket upgrades",
			     r->websocket_off ? "refuses" : "allows");

	TAILQ_FOREACH(kv, &e->headers, next) {
		if (strcasecmp(kv->key, "connection") == 0)
			headers_connection_parse(kv->value, &conn);
		if (strcasecmp(kv->key, "traceparent") == 0 && ntraceparent++ == 0)
			traceparent = kv->value;
	}
	/* as proxy.c's trace_begin: exactly one valid traceparent is continued */
	trace_continued = ntraceparent == 1 && traceparent_parse(traceparent, strlen(traceparent), &tp);
	rules = (struct fwdheaders_rules){
		.cfg = e->cfg, .conn = &conn, .jump_ops = j ? &j->request_headers : NULL,
		.route_ops = &r->request_headers,
		.drop_cookies = r->drop_cookies || (j && j->drop_cookies),
		.ws_made_up_key = ws && up.made_up, .trace_continued = trace_continued,
	};
	TAILQ_FOREACH(kv, &e->headers, next) {
		const char *why = fwdheaders_dropped(&rules, kv->key);

		if (why == NULL) {
			explain_sent(sent, kv->key, kv->value,
				     e->nclient && position >= e->nclient ? "saml identity" : "client");
		} else {
			json_t *d = json_object();

			json_object_set_new(d, "name", explain_text(kv->key));
			json_object_set_new(d, "why", json_string(why));
			json_array_append_new(dropped, d);
		}
		position++;
	}
	for (const struct config_header_ops *ops = j ? &j->request_headers : &r->request_headers;
	     ops != NULL; ops = ops == &r->request_headers ? NULL : &r->request_headers) {
		for (size_t i = 0; i < ops->nset; i++)
			explain_sent(sent, ops->set[i].name, ops->set[i].value, "route");
		for (size_t i = 0; i < ops->nadd; i++)
			explain_sent(sent, ops->add[i].name, ops->add[i].value, "route");
	}
	if (ws) {
		char lines[192];

		explain_sent_lines(sent, lines, websocket_upgrade_lines(&up, lines, sizeof(lines)),
				   "websocket");
	}
	own = (struct fwdheaders_own){
		.client = e->client, .forwarded_for = e->xff[0] ? e->xff : NULL, .peer = e->peer,
		.proto = e->xfp, .fwd_host = e->xfh, .fwd_port = e->xfport, .tls = e->l->tls,
		.host_header = evhttp_find_header(&e->headers, "Host"),
		.listener_port = e->l->port, .request_id = "(a new request id)",
		.traceparent = trace_continued ? "(the proxy's span in the client's trace)"
					       : "(the proxy's span in a new trace)",
		.country = e->access.country, .asn = e->access.asn,
	};
	fwdheaders_own_each(e->cfg, &own, explain_own_header, sent);
	explain_sent(sent, "Host",
		     e->routed.upstream_host ? e->routed.upstream_host : "(the chosen server's host:port)",
		     "proxy");
	step = explain_step(e, "headers", "built", "%zu sent, %zu dropped", json_array_size(sent),
			    json_array_size(dropped));
	json_object_set(step, "sent", sent);
	json_object_set(step, "dropped", dropped);
	json_decref(sent);
}

/* ---- output -------------------------------------------------------------- */

/* The text of a JSON string, "" for anything else. */
static const char *
explain_value(const json_t *j)
{
	const char *s = json_string_value(j);

	return s ? s : "";
}

static void
explain_print_text(json_t *doc, FILE *out)
{
	size_t i;
	json_t *step;

	json_array_foreach(json_object_get(doc, "steps"), i, step) {
		json_t *list;
		size_t k;
		json_t *h;

		fprintf(out, "%-11s %s\n", explain_value(json_object_get(step, "step")),
			explain_value(json_object_get(step, "detail")));
		if ((list = json_object_get(step, "sent")) != NULL)
			json_array_foreach(list, k, h)
				fprintf(out, "%11s   + %s: %s  [%s]\n", "",
					explain_value(json_object_get(h, "name")),
					explain_value(json_object_get(h, "value")),
					explain_value(json_object_get(h, "from")));
		if ((list = json_object_get(step, "dropped")) != NULL)
			json_array_foreach(list, k, h)
				fprintf(out, "%11s   - %s  (%s)\n", "",
					explain_value(json_object_get(h, "name")),
					explain_value(json_object_get(h, "why")));
	}
	step = json_object_get(doc, "outcome");
	fprintf(out, "%-11s %s", "outcome", explain_value(json_object_get(step, "verdict")));
	if (json_integer_value(json_object_get(step, "status")) != 0)
		fprintf(out, " %lld", (long long)json_integer_value(json_object_get(step, "status")));
	if (json_is_string(json_object_get(step, "reason")))
		fprintf(out, ": %s", explain_value(json_object_get(step, "reason")));
	fprintf(out, " (exit %lld)\n", (long long)json_integer_value(json_object_get(doc, "exit")));
}

int
explain_run(const struct config *cfg, const struct explain_request *req, FILE *out, char *err,
	    size_t errlen)
{
	struct explain *e = calloc(1, sizeof(*e));
	json_t *doc, *outcome, *request;
	struct netaddr a;
	int rc = -1;

	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->cfg = cfg;
	e->req = req;
	e->peer = req->from ? req->from : EXPLAIN_DEFAULT_CLIENT;
	e->steps = json_array();
	TAILQ_INIT(&e->headers);
	e->dropped = json_array();
	if (netaddr_parse(e->peer, &a) < 0) {
		snprintf(err, errlen, "--from %s: not an IPv4 or IPv6 address", e->peer);
		goto out;
	}
	if (explain_parse_request(e, err, errlen) < 0 || explain_parse_headers(e, err, errlen) < 0)
		goto out;
	e->verdict = "forwarded";
	e->exit_status = EXPLAIN_FORWARDED;
	explain_client(e);
	switch (explain_listener(e, err, errlen)) {
	case -1:
		goto out;
	case 0:
		if (explain_path(e) == 0 && explain_route(e) == 0 && explain_access(e) == 0 &&
		    explain_auth(e) == 0 && explain_fixed(e) == 0) {
			explain_upstream(e);
			explain_headers(e);
		}
		break;
	default:
		break;
	}
	doc = json_object();
	request = json_object();
	json_object_set_new(request, "method", json_string(e->method));
	json_object_set_new(request, "url", explain_text(strchr(req->request, ' ') + 1));
	json_object_set_new(request, "from", json_string(e->peer));
	json_object_set_new(doc, "request", request);
	json_object_set(doc, "steps", e->steps);
	outcome = json_object();
	json_object_set_new(outcome, "verdict", json_string(e->verdict));
	json_object_set_new(outcome, "status", json_integer(e->status));
	json_object_set_new(outcome, "reason", e->reason[0] ? json_string(e->reason) : json_null());
	json_object_set_new(doc, "outcome", outcome);
	json_object_set_new(doc, "exit", json_integer(e->exit_status));
	if (req->json) {
		json_dumpf(doc, out, JSON_INDENT(2));
		fputc('\n', out);
	} else {
		explain_print_text(doc, out);
	}
	json_decref(doc);
	rc = e->exit_status;
out:
	json_decref(e->dropped);
	json_decref(e->steps);
	evhttp_clear_headers(&e->headers);
	free(e);
	return rc;
}

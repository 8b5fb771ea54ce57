/*
 * config_sites: "sites" and their "routes" (match, actions, headers,
 * redirects, site jumps), resolved after the walk.
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/access.h"
#include "http/pathnorm.h"

static const char *const config_site_keys[] = { "name", "hosts", "default", "routes", "access",
						"hsts", "listeners", "require", "identity_assertion",
						"step_up", "client_certificates", "compress", NULL };
static const char *const config_route_keys[] = {
	"name",		   "match",	    "upstream",	    "respond",	      "redirect",
	"site",		   "strip_prefix",  "host",	    "request_headers", "response_headers",
	"max_body_bytes",  "drop_cookies",  "access",	    "auth",	      "allow_bearer",
	"websocket",	   "websocket_idle_timeout",	    "websocket_session_end",
	"require",	   "identity_assertion", "step_up", "compress", NULL
};
static const char *const config_match_keys[] = { "path", "path_exact", "path_prefix", "methods",
						 NULL };
static const char *const config_respond_keys[] = { "status", "body", "content_type", NULL };
static const char *const config_redirect_keys[] = { "to", "status", "keep_path", NULL };
static const char *const config_headers_keys[] = { "set", "add", "remove", NULL };
static const char *const config_action_keys[] = { "upstream", "respond", "redirect", "site",
						  NULL };

/* ------------------------------------------------------------------ */
/* Routes                                                               */

/* A path matcher or strip_prefix: origin-form and already normalized. */
static bool
config_match_path_ok(struct config_loader *ld, const char *path, const char *p)
{
	char norm[4096];
	const char *query = NULL;
	enum pathnorm_result res;

	if (p[0] != '/') {
		config_error(ld, path, "\"%s\" must start with \"/\"", p);
		return false;
	}
	if (strpbrk(p, "?#") != NULL) {
		config_error(ld, path, "\"%s\": a path matcher has no query or fragment (\"?\", \"#\")",
			     p);
		return false;
	}
	if (strstr(p, "//") != NULL) {
		config_error(ld, path, "\"%s\" is not normalized: \"//\" (requests are matched after "
				       "repeated slashes are merged)",
			     p);
		return false;
	}
	for (const char *s = p; s != NULL; s = strchr(s + 1, '/')) {
		if (strncmp(s, "/./", 3) == 0 || strcmp(s, "/.") == 0 || strncmp(s, "/../", 4) == 0 ||
		    strcmp(s, "/..") == 0) {
			config_error(ld, path,
				     "\"%s\" is not normalized: a \".\" or \"..\" segment", p);
			return false;
		}
	}
	if (strcasestr(p, "%2F") != NULL || strcasestr(p, "%2E") != NULL ||
	    strcasestr(p, "%5C") != NULL) {
		config_error(ld, path,
			     "\"%s\": %%2F, %%2E and %%5C are refused in requests, so a matcher "
			     "with them never matches",
			     p);
		return false;
	}
	res = pathnorm_normalize(p, norm, sizeof norm, &query);
	if (res != PATHNORM_OK) {
		config_error(ld, path, "\"%s\": %s", p, pathnorm_reason(res));
		return false;
	}
	if (strcmp(norm, p) != 0) {
		config_error(ld, path, "\"%s\" is not normalized; write \"%s\"", p, norm);
		return false;
	}
	return true;
}

static void
config_parse_paths(struct config_loader *ld, const char *path, const json_t *v, char ***out,
		   size_t *n)
{
	char ip[CONFIG_JPATH_MAX];

	if (v == NULL)
		return;
	if (!config_string_list(ld, path, v, true, "an array of paths such as [\"/api\"]", out, n))
		return;
	for (size_t i = 0; i < *n; i++)
		if ((*out)[i] != NULL)
			config_match_path_ok(ld, config_jidx(ip, path, i), (*out)[i]);
}

static void
config_parse_match(struct config_loader *ld, const char *path, const json_t *v,
		   struct config_route *r)
{
	char kp[CONFIG_JPATH_MAX];
	char ip[CONFIG_JPATH_MAX];
	const json_t *m;
	char **methods = NULL;
	size_t nmethods = 0;

	if (config_object(ld, path, v, config_match_keys) == NULL)
		return;
	config_parse_paths(ld, config_jkey(kp, path, "path"), json_object_get(v, "path"),
			   &r->paths, &r->npaths);
	config_parse_paths(ld, config_jkey(kp, path, "path_exact"),
			   json_object_get(v, "path_exact"), &r->exact, &r->nexact);
	config_parse_paths(ld, config_jkey(kp, path, "path_prefix"),
			   json_object_get(v, "path_prefix"), &r->prefixes, &r->nprefixes);
	m = json_object_get(v, "methods");
	config_jkey(kp, path, "methods");
	if (m == NULL || !config_string_list(ld, kp, m, true,
					     "an array of method names such as [\"GET\", \"POST\"]",
					     &methods, &nmethods))
		return;
	for (size_t i = 0; i < nmethods; i++) {
		unsigned bit;
		if (methods[i] == NULL)
			continue;
		bit = config_method_bit(methods[i]);
		if (bit == 0)
			config_error(ld, config_jidx(ip, kp, i),
				     "\"%s\" is not a method we forward; allowed (upper case): GET, "
				     "HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
				     methods[i]);
		r->methods |= bit;
	}
	config_free_strings(methods, nmethods);
}

static void
config_parse_header_map(struct config_loader *ld, const char *path, const json_t *v,
			unsigned refused, struct config_header **out, size_t *nout)
{
	char kp[CONFIG_JPATH_MAX];
	const char *name;
	json_t *value;
	size_t i = 0;

	if (!json_is_object(v)) {
		config_type_error(ld, path, "an object of header name: value", v);
		return;
	}
	if (json_object_size(v) == 0)
		return;
	*out = calloc(json_object_size(v), sizeof **out);
	if (*out == NULL) {
		ld->oom = true;
		return;
	}
	*nout = json_object_size(v);
	json_object_foreach((json_t *)(uintptr_t)v, name, value) {
		struct config_header *h = &(*out)[i++];

		config_jkey(kp, path, name);
		config_header_name_ok(ld, kp, name, refused);
		h->name = strdup(name);
		if (h->name == NULL)
			ld->oom = true;
		h->value = config_string(ld, kp, value);
		if (h->value != NULL && strpbrk(h->value, "\r\n") != NULL)
			config_error(ld, kp, "a header value may not contain CR or LF");
	}
}

static void
config_parse_header_ops(struct config_loader *ld, const char *path, const json_t *v,
			unsigned refused, struct config_header_ops *ops)
{
	char kp[CONFIG_JPATH_MAX];
	char ip[CONFIG_JPATH_MAX];
	const json_t *f;

	if (config_object(ld, path, v, config_headers_keys) == NULL)
		return;
	if ((f = json_object_get(v, "set")) != NULL)
		config_parse_header_map(ld, config_jkey(kp, path, "set"), f, refused, &ops->set,
					&ops->nset);
	if ((f = json_object_get(v, "add")) != NULL)
		config_parse_header_map(ld, config_jkey(kp, path, "add"), f, refused, &ops->add,
					&ops->nadd);
	if ((f = json_object_get(v, "remove")) == NULL)
		return;
	config_jkey(kp, path, "remove");
	if (!config_string_list(ld, kp, f, false, "an array of header names", &ops->remove,
				&ops->nremove))
		return;
	for (size_t i = 0; i < ops->nremove; i++)
		if (ops->remove[i] != NULL)
			config_header_name_ok(ld, config_jidx(ip, kp, i), ops->remove[i], refused);
}

static void
config_parse_respond(struct config_loader *ld, const char *path, const json_t *v,
		     struct config_route *r)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	uint64_t n;

	r->status = 200;
	if (config_object(ld, path, v, config_respond_keys) == NULL)
		return;
	if ((f = json_object_get(v, "status")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "status"), f, UNIT_COUNT, 100, 599, &n))
		r->status = (int)n;
	r->body = config_string_or(ld, config_jkey(kp, path, "body"), json_object_get(v, "body"),
				   "");
	config_jkey(kp, path, "content_type");
	r->content_type = config_string_or(ld, kp, json_object_get(v, "content_type"),
					   "text/plain; charset=utf-8");
	if (r->content_type != NULL &&
	    (r->content_type[0] == '\0' || strpbrk(r->content_type, "\r\n") != NULL))
		config_error(ld, kp, "must be a non-empty header value without CR or LF");
}

static bool
config_redirect_to_ok(const char *to)
{
	const char *rest = NULL;

	if (strpbrk(to, "\r\n\t ") != NULL)
		return false;
	for (const char *p = to; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	if (to[0] == '/')
		return to[1] != '/' && to[1] != '\\';
	if (strncasecmp(to, "http://", 7) == 0)
		rest = to + 7;
	else if (strncasecmp(to, "https://", 8) == 0)
		rest = to + 8;
	return rest != NULL && rest[0] != '\0' && rest[0] != '/' && rest[0] != '?' &&
	       rest[0] != '#';
}

static void
config_parse_redirect(struct config_loader *ld, const char *path, const json_t *v,
		      struct config_route *r)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	uint64_t n;

	r->status = 302;
	if (config_object(ld, path, v, config_redirect_keys) == NULL)
		return;
	if ((f = json_object_get(v, "to")) == NULL) {
		config_missing(ld, path, "to", "an absolute http(s) URL or a path starting with \"/\"");
	} else {
		config_jkey(kp, path, "to");
		r->redirect_to = config_string(ld, kp, f);
		if (r->redirect_to != NULL && !config_redirect_to_ok(r->redirect_to))
			config_error(ld, kp,
				     "\"%s\" must be an absolute http:// or https:// URL or a path "
				     "starting with \"/\" (not \"//\"), without spaces or control "
				     "characters",
				     r->redirect_to);
	}
	if ((f = json_object_get(v, "status")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "status"), f, UNIT_COUNT, 0, 999, &n)) {
		if (n == 301 || n == 302 || n == 303 || n == 307 || n == 308)
			r->status = (int)n;
		else
			config_error(ld, kp, "%llu is not a redirect status; use 301, 302, 303, 307 "
					     "or 308",
				     (unsigned long long)n);
	}
	config_bool(ld, config_jkey(kp, path, "keep_path"), json_object_get(v, "keep_path"),
		    &r->redirect_keep_path);
}

static int
config_add_site_ref(struct config_loader *ld, struct config_route *r, struct config_site *from,
		    char *target, const char *path)
{
	if (ld->nrefs == ld->refs_cap) {
		size_t cap = ld->refs_cap ? ld->refs_cap * 2 : 8;
		struct config_site_ref *refs = realloc(ld->refs, cap * sizeof *refs);
		if (refs == NULL)
			goto oom;
		ld->refs = refs;
		ld->refs_cap = cap;
	}
	struct config_site_ref *ref = &ld->refs[ld->nrefs];
	ref->route = r;
	ref->from = from;
	ref->target = target;
	ref->path = strdup(path);
	if (ref->path == NULL)
		goto oom;
	ld->nrefs++;
	return 0;
oom:
	ld->oom = true;
	free(target);
	return -1;
}

/* "name1, name2, ..." of every upstream, sorted, for error messages. */
static int
config_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
config_known_names(char *buf, size_t len, const char **names, size_t n)
{
	size_t used = 0;

	qsort(names, n, sizeof *names, config_cmp_str);
	snprintf(buf, len, "%s", n == 0 ? "(none)" : "");
	for (size_t i = 0; i < n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", names[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static void
config_resolve_upstream(struct config_loader *ld, const char *path, const char *name,
			struct config_route *r)
{
	struct config *cfg = ld->cfg;
	const char **names;
	char list[768];

	r->upstream = config_find_upstream(cfg, name);
	if (r->upstream != NULL || !ld->upstreams_known)
		return;
	names = calloc(cfg->nupstreams + 1, sizeof *names);
	if (names == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++)
		names[i] = cfg->upstreams[i].name;
	config_known_names(list, sizeof list, names, cfg->nupstreams);
	config_error(ld, path, "no upstream named \"%s\"; known: %s", name, list);
	free(names);
}

/* Checks of strip_prefix against the action and the path matchers. */
static void
config_check_strip(struct config_loader *ld, const char *path, struct config_route *r)
{
	const char *sp = r->strip_prefix;
	size_t len = strlen(sp);

	if (!config_match_path_ok(ld, path, sp))
		return;
	if (len == 1 || sp[len - 1] == '/') {
		config_error(ld, path, "\"%s\" must not end with \"/\"", sp);
		return;
	}
	if (r->npaths + r->nexact + r->nprefixes == 0) {
		config_error(ld, path,
			     "a route that strips \"%s\" needs a path matcher (match.path, "
			     "match.path_exact or match.path_prefix) inside it",
			     sp);
		return;
	}
	for (int kind = 0; kind < 3; kind++) {
		char **list = kind == 0 ? r->paths : kind == 1 ? r->exact : r->prefixes;
		size_t n = kind == 0 ? r->npaths : kind == 1 ? r->nexact : r->nprefixes;
		const char *key = kind == 0 ? "path" : kind == 1 ? "path_exact" : "path_prefix";

		for (size_t i = 0; i < n; i++) {
			const char *p = list[i];
			bool inside;
			if (p == NULL)
				continue;
			inside = strncmp(p, sp, len) == 0 &&
				 (kind == 2 || p[len] == '\0' || p[len] == '/');
			if (!inside) {
				char mp[CONFIG_JPATH_MAX];
				snprintf(mp, sizeof mp, "match.%s[%zu]", key, i);
				config_error(ld, path,
					     "%s \"%s\" is not inside \"%s\"; every path matcher of a "
					     "route that strips must be",
					     mp, p, sp);
			}
		}
	}
}

static void
config_parse_route(struct config_loader *ld, const char *path, const json_t *v,
		   struct config_site *site, size_t i, struct config_route *r)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	char why[512];
	const json_t *f;
	const char *present[4];
	size_t nactions = 0;
	uint64_t n;

	r->max_body_bytes = cfg->max_body_bytes;
	r->action = ACTION_PROXY;
	if (!json_is_object(v)) {
		config_type_error(ld, path, "a route object", v);
		return;
	}
	config_check_keys(ld, path, v, config_route_keys);
	if ((f = json_object_get(v, "access")) != NULL)
		config_parse_access(ld, config_jkey(kp, path, "access"), f, &r->access);
	if ((f = json_object_get(v, "name")) != NULL) {
		r->name = config_string(ld, config_jkey(kp, path, "name"), f);
		if (r->name != NULL && r->name[0] == '\0')
			config_error(ld, kp, "must not be empty");
	} else if (site->name != NULL && asprintf(&r->name, "%s#%zu", site->name, i) < 0) {
		r->name = NULL;
		ld->oom = true;
	}
	if ((f = json_object_get(v, "match")) != NULL)
		config_parse_match(ld, config_jkey(kp, path, "match"), f, r);

	for (size_t k = 0; config_action_keys[k] != NULL; k++)
		if (json_object_get(v, config_action_keys[k]) != NULL)
			present[nactions++] = config_action_keys[k];
	if (nactions == 0) {
		config_error(ld, path,
			     "no action; give exactly one of \"upstream\", \"respond\", "
			     "\"redirect\", \"site\"");
	} else if (nactions > 1) {
		config_error(ld, path, "more than one action (\"%s\" and \"%s\"); give exactly one",
			     present[0], present[1]);
	} else if (strcmp(present[0], "upstream") == 0) {
		char *name = config_string(ld, config_jkey(kp, path, "upstream"),
					   json_object_get(v, "upstream"));
		r->action = ACTION_PROXY;
		if (name != NULL)
			config_resolve_upstream(ld, kp, name, r);
		free(name);
	} else if (strcmp(present[0], "respond") == 0) {
		r->action = ACTION_RESPOND;
		config_parse_respond(ld, config_jkey(kp, path, "respond"),
				     json_object_get(v, "respond"), r);
	} else if (strcmp(present[0], "redirect") == 0) {
		r->action = ACTION_REDIRECT;
		config_parse_redirect(ld, config_jkey(kp, path, "redirect"),
				      json_object_get(v, "redirect"), r);
	} else {
		char *target = config_string(ld, config_jkey(kp, path, "site"),
					     json_object_get(v, "site"));
		r->action = ACTION_SITE;
		if (target != NULL)
			config_add_site_ref(ld, r, site, target, kp);
	}
	bool forwards = nactions == 1 && (r->action == ACTION_PROXY || r->action == ACTION_SITE);

	if ((f = json_object_get(v, "strip_prefix")) != NULL) {
		config_jkey(kp, path, "strip_prefix");
		r->strip_prefix = config_string(ld, kp, f);
		if (nactions == 1 && !forwards)
			config_error(ld, kp, "only a route with \"upstream\" or \"site\" can strip a "
					     "prefix");
		else if (r->strip_prefix != NULL)
			config_check_strip(ld, kp, r);
	}
	if ((f = json_object_get(v, "host")) != NULL) {
		char *h = config_string(ld, config_jkey(kp, path, "host"), f);
		if (nactions == 1 && !forwards)
			config_error(ld, kp, "only a route with \"upstream\" or \"site\" can set the "
					     "Host it forwards");
		if (h != NULL && strcmp(h, "keep") == 0) {
			r->host_mode = HOST_KEEP;
		} else if (h != NULL && strcmp(h, "upstream") == 0) {
			r->host_mode = HOST_UPSTREAM;
		} else if (h != NULL) {
			r->host_mode = HOST_FIXED;
			if (!config_host_value_ok(h, why, sizeof why))
				config_error(ld, kp, "%s; write \"keep\", \"upstream\" or a host[:port]",
					     why);
			r->host = h;
			h = NULL;
		}
		free(h);
	}
	if ((f = json_object_get(v, "request_headers")) != NULL)
		config_parse_header_ops(ld, config_jkey(kp, path, "request_headers"), f,
					HEADERS_NO_REQUEST_OP, &r->request_headers);
	if ((f = json_object_get(v, "response_headers")) != NULL)
		config_parse_header_ops(ld, config_jkey(kp, path, "response_headers"), f,
					HEADERS_NO_RESPONSE_OP, &r->response_headers);
	if ((f = json_object_get(v, "max_body_bytes")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "max_body_bytes"), f, UNIT_BYTES, 0,
			CONFIG_MAX_BYTES, &n)) {
		char a[64], b[64];
		if (n > cfg->max_body_bytes)
			config_error(ld, kp, "%s is more than limits.max_body_bytes (%s)",
				     config_fmt_bytes(a, sizeof a, n),
				     config_fmt_bytes(b, sizeof b, cfg->max_body_bytes));
		else
			r->max_body_bytes = n;
	}
	config_bool(ld, config_jkey(kp, path, "drop_cookies"), json_object_get(v, "drop_cookies"),
		    &r->drop_cookies);
	config_parse_route_websocket(ld, path, v, r, nactions);
	{
		static const char *const auths[] = { "none", "saml", NULL };
		int a = AUTH_NONE;

		if (config_enum(ld, config_jkey(kp, path, "auth"), json_object_get(v, "auth"), auths,
				&a))
			r->auth = (enum config_auth)a;
		if (r->auth == AUTH_SAML && nactions == 1 && r->action != ACTION_PROXY)
			config_error(ld, kp,
				     "only a route with \"upstream\" can require a SAML session (put "
				     "\"auth\" on the routes of the site it hands requests to)");
	}
	if ((f = json_object_get(v, "allow_bearer")) != NULL) {
		config_jkey(kp, path, "allow_bearer");
		if (config_string_list(ld, kp, f, true, "an array of token prefixes like \"phx_\"",
				       &r->allow_bearer, &r->nallow_bearer)) {
			for (size_t k = 0; k < r->nallow_bearer; k++)
				if (r->allow_bearer[k] != NULL &&
				    (r->allow_bearer[k][0] == '\0' ||
				     strpbrk(r->allow_bearer[k], " \t\r\n,") != NULL))
					config_error(ld, kp,
						     "\"%s\" is not a token prefix (non-empty, no "
						     "white space or commas)",
						     r->allow_bearer[k]);
		}
		if (r->auth != AUTH_SAML)
			config_error(ld, kp, "needs \"auth\": \"saml\" (it lets bearer tokens "
					     "pass where a session is required)");
	}
	if ((f = json_object_get(v, "require")) != NULL) {
		r->require = config_parse_require(ld, config_jkey(kp, path, "require"), f);
		if (r->auth != AUTH_SAML)
			config_error(ld, kp, "needs \"auth\": \"saml\" (the rules test the SAML "
					     "session's attributes)");
	}
	if ((f = json_object_get(v, "identity_assertion")) != NULL)
		config_parse_assertion_use(ld, config_jkey(kp, path, "identity_assertion"), f,
					   &r->assertion, &r->assertion_audience);
	if ((f = json_object_get(v, "step_up")) != NULL) {
		r->step_up = config_parse_step_up(ld, config_jkey(kp, path, "step_up"), f);
		if (r->auth != AUTH_SAML)
			config_error(ld, kp, "needs \"auth\": \"saml\" (it asks more of the SAML "
					     "login)");
	}
	if ((f = json_object_get(v, "compress")) != NULL) {
		config_parse_compress(ld, config_jkey(kp, path, "compress"), f, &r->compress);
		if (nactions == 1 && (r->action == ACTION_RESPOND || r->action == ACTION_REDIRECT))
			config_error(ld, kp, "only routes with \"upstream\" (or \"site\") compress "
					     "responses; remove it here");
	}
}

/* ------------------------------------------------------------------ */
/* Sites                                                                */

static void
config_parse_hosts(struct config_loader *ld, const char *path, const json_t *v,
		   struct config_site *s)
{
	char ip[CONFIG_JPATH_MAX];
	const char *why = NULL;

	if (!config_string_list(ld, path, v, false,
				"an array of host names such as [\"example.com\", \"*.example.com\"]",
				&s->hosts, &s->nhosts))
		return;
	for (size_t i = 0; i < s->nhosts; i++) {
		char *h = s->hosts[i];
		const char *name = h;

		if (h == NULL)
			continue;
		for (char *p = h; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if (strncmp(h, "*.", 2) == 0)
			name = h + 2;
		if (!config_host_name_ok(name, true, &why))
			config_error(ld, config_jidx(ip, path, i), "\"%s\" is not a valid host: %s%s",
				     h, why,
				     strchr(h, ':') != NULL && h[0] != '['
					     ? " (hosts match the Host header without its port)"
					     : "");
	}
}

static void
config_parse_site(struct config_loader *ld, const char *path, const json_t *v,
		  struct config_site *s, size_t *route_index)
{
	char kp[CONFIG_JPATH_MAX];
	char rp[CONFIG_JPATH_MAX];
	const json_t *f;
	const json_t *routes;

	if (!json_is_object(v)) {
		config_type_error(ld, path, "a site object", v);
		return;
	}
	config_check_keys(ld, path, v, config_site_keys);
	if ((f = json_object_get(v, "hosts")) != NULL)
		config_parse_hosts(ld, config_jkey(kp, path, "hosts"), f, s);
	if ((f = json_object_get(v, "name")) != NULL) {
		s->name = config_string(ld, config_jkey(kp, path, "name"), f);
		if (s->name != NULL && s->name[0] == '\0')
			config_error(ld, kp, "must not be empty");
	} else {
		s->name = strdup(s->nhosts > 0 && s->hosts[0] != NULL ? s->hosts[0] : "default");
		if (s->name == NULL)
			ld->oom = true;
	}
	config_bool(ld, config_jkey(kp, path, "default"), json_object_get(v, "default"),
		    &s->is_default);
	if ((f = json_object_get(v, "listeners")) != NULL)
		config_parse_site_listeners(ld, config_jkey(kp, path, "listeners"), f, s);
	if ((f = json_object_get(v, "access")) != NULL)
		config_parse_access(ld, config_jkey(kp, path, "access"), f, &s->access);
	if ((f = json_object_get(v, "require")) != NULL)
		s->require = config_parse_require(ld, config_jkey(kp, path, "require"), f);
	if ((f = json_object_get(v, "step_up")) != NULL)
		s->step_up = config_parse_step_up(ld, config_jkey(kp, path, "step_up"), f);
	if ((f = json_object_get(v, "identity_assertion")) != NULL)
		config_parse_assertion_use(ld, config_jkey(kp, path, "identity_assertion"), f,
					   &s->assertion, &s->assertion_audience);
	if ((f = json_object_get(v, "compress")) != NULL)
		config_parse_compress(ld, config_jkey(kp, path, "compress"), f, &s->compress);

	routes = json_object_get(v, "routes");
	if (routes == NULL) {
		config_missing(ld, path, "routes", "an array of routes");
		return;
	}
	config_jkey(kp, path, "routes");
	if (!json_is_array(routes)) {
		config_type_error(ld, kp, "an array of routes", routes);
		return;
	}
	if (json_array_size(routes) == 0) {
		config_error(ld, kp, "must not be empty (at least one route)");
		return;
	}
	s->routes = calloc(json_array_size(routes), sizeof *s->routes);
	if (s->routes == NULL) {
		ld->oom = true;
		return;
	}
	s->nroutes = json_array_size(routes);
	for (size_t i = 0; i < s->nroutes; i++) {
		s->routes[i].index = (*route_index)++;
		config_jidx(rp, kp, i);
		ld->route_paths[s->routes[i].index] = strdup(rp);
		config_parse_route(ld, rp, json_array_get(routes, i), s, i, &s->routes[i]);
		access_policy_merge(&s->routes[i].policy, &s->routes[i].access, &s->access);
	}
}

static struct config_site *
config_find_site(struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsites; i++)
		if (cfg->sites[i].name != NULL && strcmp(cfg->sites[i].name, name) == 0)
			return &cfg->sites[i];
	return NULL;
}

/* Route -> site references: the target exists, is another site, and has no
 * "site" routes of its own. */
static void
config_resolve_site_refs(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;

	for (size_t i = 0; i < ld->nrefs; i++) {
		struct config_site_ref *ref = &ld->refs[i];
		struct config_site *t = config_find_site(cfg, ref->target);

		if (t == NULL) {
			const char **names = calloc(cfg->nsites + 1, sizeof *names);
			size_t n = 0;
			char list[768];

			if (names == NULL) {
				ld->oom = true;
				return;
			}
			for (size_t j = 0; j < cfg->nsites; j++)
				if (cfg->sites[j].name != NULL)
					names[n++] = cfg->sites[j].name;
			config_known_names(list, sizeof list, names, n);
			config_error(ld, ref->path, "no site named \"%s\"; known: %s", ref->target,
				     list);
			free(names);
			continue;
		}
		if (t == ref->from) {
			config_error(ld, ref->path,
				     "a route cannot send requests back to its own site \"%s\"",
				     ref->target);
			continue;
		}
		ref->route->site = t;
		for (size_t j = 0; j < t->nroutes; j++) {
			if (t->routes[j].action == ACTION_SITE) {
				config_error(ld, ref->path,
					     "site \"%s\" has a \"site\" route of its own (%s); "
					     "chains of sites are not allowed",
					     t->name, ld->route_paths[t->routes[j].index]);
				break;
			}
		}
	}
}

static void
config_check_sites(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	char ip[CONFIG_JPATH_MAX];
	struct config_site *marked = NULL;
	struct config_site *hostless = NULL;
	size_t nhostless = 0;

	for (size_t i = 0; i < cfg->nsites; i++) {
		struct config_site *s = &cfg->sites[i];

		config_jidx(ip, "sites", i);
		for (size_t j = 0; s->name != NULL && j < i; j++) {
			if (cfg->sites[j].name != NULL && strcmp(cfg->sites[j].name, s->name) == 0) {
				config_error(ld, config_jkey(kp, ip, "name"),
					     "site name \"%s\" is already used by sites[%zu]; give "
					     "each site its own \"name\"",
					     s->name, j);
				break;
			}
		}
		for (size_t h = 0; h < s->nhosts; h++) {
			for (size_t j = 0; s->hosts[h] != NULL && j <= i; j++) {
				const struct config_site *o = &cfg->sites[j];
				size_t lim = j == i ? h : o->nhosts;
				bool dup = false;
				if (!config_sites_share_listener(s, o))
					continue;
				for (size_t k = 0; k < lim && !dup; k++)
					dup = o->hosts[k] != NULL &&
					      strcmp(o->hosts[k], s->hosts[h]) == 0;
				if (dup) {
					char hp[CONFIG_JPATH_MAX];
					config_jidx(kp, config_jkey(hp, ip, "hosts"), h);
					config_error(ld, kp,
						     "host \"%s\" is already served by site \"%s\" "
						     "(sites[%zu]); a host belongs to one site",
						     s->hosts[h], o->name != NULL ? o->name : "", j);
					break;
				}
			}
		}
		if (s->nlisteners > 0)
			continue; /* its listeners' default: config_bind_defaults */
		if (s->is_default) {
			if (marked != NULL)
				config_error(ld, config_jkey(kp, ip, "default"),
					     "site \"%s\" is also marked default, like \"%s\"; only "
					     "one site may be",
					     s->name ? s->name : "", marked->name ? marked->name : "");
			else
				marked = s;
		}
		if (s->nhosts == 0) {
			nhostless++;
			hostless = s;
		}
	}
	if (marked == NULL && nhostless == 1) {
		hostless->is_default = true;
		marked = hostless;
	}
	cfg->default_site = marked;
}

static void
config_check_route_names(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	const struct config_route **all = calloc(cfg->nroutes_total + 1, sizeof *all);
	char kp[CONFIG_JPATH_MAX];

	if (all == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			all[cfg->sites[i].routes[j].index] = &cfg->sites[i].routes[j];
	for (size_t i = 0; i < cfg->nroutes_total; i++) {
		for (size_t j = 0; all[i] != NULL && all[i]->name != NULL && j < i; j++) {
			if (all[j] != NULL && all[j]->name != NULL &&
			    strcmp(all[i]->name, all[j]->name) == 0) {
				config_error(ld, config_jkey(kp, ld->route_paths[i], "name"),
					     "route name \"%s\" is already used by %s", all[i]->name,
					     ld->route_paths[j]);
				break;
			}
		}
	}
	free(all);
}

void
config_parse_sites(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "sites");
	char ip[CONFIG_JPATH_MAX];
	size_t total = 0, index = 0;

	if (v == NULL) {
		config_missing(ld, "", "sites", "an array of sites, each with \"hosts\" and \"routes\"");
		return;
	}
	if (!json_is_array(v)) {
		config_type_error(ld, "sites", "an array of sites", v);
		return;
	}
	if (json_array_size(v) == 0) {
		config_error(ld, "sites", "must not be empty (at least one site)");
		return;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		const json_t *r = json_object_get(json_array_get(v, i), "routes");
		if (json_is_array(r))
			total += json_array_size(r);
	}
	cfg->sites = calloc(json_array_size(v), sizeof *cfg->sites);
	ld->route_paths = calloc(total + 1, sizeof *ld->route_paths);
	if (cfg->sites == NULL || ld->route_paths == NULL) {
		ld->oom = true;
		return;
	}
	ld->nroute_paths = total;
	cfg->nsites = json_array_size(v);
	for (size_t i = 0; i < cfg->nsites; i++)
		config_parse_site(ld, config_jidx(ip, "sites", i), json_array_get(v, i),
				  &cfg->sites[i], &index);
	cfg->nroutes_total = index;
	config_check_sites(ld);
	config_bind_defaults(ld);
	config_check_route_names(ld);
	config_resolve_site_refs(ld);
}

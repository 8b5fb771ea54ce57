/* routing: the routing decision of one request; see routing.h. */
#include "proxy/routing.h"

#include <string.h>

#include "proxy/router.h"

#define ROUTING_ACME_PREFIX "/.well-known/acme-challenge/"

unsigned
routing_method_bit(const char *m)
{
	switch (m[0]) {
	case 'G':
		return strcmp(m, "GET") == 0 ? METHOD_GET : 0;
	case 'H':
		return strcmp(m, "HEAD") == 0 ? METHOD_HEAD : 0;
	case 'P':
		if (strcmp(m, "POST") == 0)
			return METHOD_POST;
		if (strcmp(m, "PUT") == 0)
			return METHOD_PUT;
		return strcmp(m, "PATCH") == 0 ? METHOD_PATCH : 0;
	case 'D':
		return strcmp(m, "DELETE") == 0 ? METHOD_DELETE : 0;
	case 'O':
		return strcmp(m, "OPTIONS") == 0 ? METHOD_OPTIONS : 0;
	default:
		return 0;
	}
}

enum routing_builtin
routing_builtin(const struct config *cfg, size_t listener, const char *path, bool has_host)
{
	const struct config_listener *l = listener < cfg->nlisteners ? &cfg->listeners[listener]
								     : NULL;
	bool acme_path = strncmp(path, ROUTING_ACME_PREFIX, sizeof(ROUTING_ACME_PREFIX) - 1) == 0;

	if (acme_path && cfg->tls && cfg->tls->acme)
		return ROUTING_BUILTIN_ACME;
	if (l == NULL || !l->redirect_https || acme_path || !has_host)
		return ROUTING_BUILTIN_NONE;
	return ROUTING_BUILTIN_REDIRECT_HTTPS;
}

static int
routing_refuse(struct routing_result *out, int status, const char *reason, bool close)
{
	out->status = status;
	out->reason = reason;
	out->close = close;
	return status;
}

int
routing_decide(const struct config *cfg, size_t listener, const char *route_host,
	       bool host_required, const char *host_header, const char *path,
	       unsigned method_bit, char *host, size_t hostlen, char *fwd_path, size_t fwd_len,
	       struct routing_result *out)
{
	const struct config_route *r;
	size_t n = strlen(path);

	memset(out, 0, sizeof(*out));
	host[0] = '\0';
	if (route_host) {
		if (router_normalize_host(route_host, host, hostlen) < 0)
			return routing_refuse(out, 400, "the Host header is not a valid host", true);
	} else if (host_required) {
		return routing_refuse(out, 400, "HTTP/1.1 requests must carry a Host header", true);
	}
	out->site = router_find_site_on(cfg, listener, host[0] ? host : NULL);
	if (out->site == NULL)
		return routing_refuse(out, 404, "no site is configured for this host", false);
	r = router_match(out->site, path, method_bit);
	if (r == NULL)
		return routing_refuse(out, 404, "no route matches this path", false);
	if (n >= fwd_len)
		return routing_refuse(out, 500, "prefix could not be stripped", false);
	memcpy(fwd_path, path, n + 1);
	if (r->strip_prefix && router_strip_prefix(path, r->strip_prefix, fwd_path, fwd_len) < 0)
		return routing_refuse(out, 500, "prefix could not be stripped", false);
	if (r->host_mode == HOST_FIXED)
		out->upstream_host = r->host;
	if (r->action == ACTION_SITE) {
		const struct config_route *next = router_match(r->site, fwd_path, method_bit);

		out->jump_route = r;
		if (next == NULL) {
			out->route = r;
			return routing_refuse(out, 404, "no route matches this path", false);
		}
		if (next->strip_prefix) {
			char tmp[8192];

			if (router_strip_prefix(fwd_path, next->strip_prefix, tmp, sizeof(tmp)) < 0 ||
			    strlen(tmp) >= fwd_len)
				return routing_refuse(out, 500, "prefix could not be stripped", false);
			memcpy(fwd_path, tmp, strlen(tmp) + 1);
		}
		if (next->host_mode == HOST_FIXED)
			out->upstream_host = next->host;
		r = next;
	}
	out->route = r;
	if (r->host_mode == HOST_UPSTREAM)
		out->upstream_host = NULL;
	else if (out->upstream_host == NULL)
		out->upstream_host = host_header;
	return 0;
}

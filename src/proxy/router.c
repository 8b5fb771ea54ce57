/*
 * router: host and path matching (see router.h for the contract).
 *
 * Everything here runs on every request: no allocation, linear scans over
 * the (small) host and route lists of the config, ASCII-only case folding
 * that does not depend on the locale.
 *
 * Choices made here, beyond the header:
 *   - The "path" (subtree) rule also accepts ";" right after the matcher:
 *     "/admin" matches "/admin;jsessionid=x/y".  Tomcat, Jetty and Spring
 *     strip such path parameters and read that path as "/admin/y", so it
 *     must not escape a route that protects "/admin".  Backends that keep
 *     ";" literally (Django) only ever get a path they would 404 anyway.
 *   - router_strip_prefix refuses (-1) a result whose first segment would
 *     become a dot segment: "/e.." less the plain prefix "/e" would be
 *     "/..", which a backend would resolve above the route's subtree.
 *   - Hosts: reg-name characters (RFC 3986 unreserved and sub-delims, no
 *     percent-encoding), dotted IPv4, or a bracketed IPv6 literal checked
 *     with inet_pton (no zone identifiers).  Empty labels ("a..b", ".a")
 *     are refused; a single trailing dot is removed.  A port must be 1 to 5
 *     digits and at most 65535.
 */
#include "proxy/router.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static unsigned char
router_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive comparison of the first <n> bytes (stops at NUL). */
static bool
router_ncaseeq(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ca = router_lower((unsigned char)a[i]);
		unsigned char cb = router_lower((unsigned char)b[i]);

		if (ca != cb)
			return false;
		if (ca == '\0')
			return true;
	}
	return true;
}

static bool
router_caseeq(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char ca = router_lower((unsigned char)*a);
		unsigned char cb = router_lower((unsigned char)*b);

		if (ca != cb)
			return false;
		if (ca == '\0')
			return true;
	}
}

static bool
router_is_regname_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return strchr("-._~!$&'()*+,;=", c) != NULL && c != '\0';
}

/* Parse an optional ":port" at <p>: end of string, or ":" and 1-5 digits <= 65535. */
static bool
router_valid_port(const char *p)
{
	unsigned long v = 0;
	size_t n = 0;

	if (*p == '\0')
		return true;
	if (*p != ':')
		return false;
	for (p++; *p != '\0'; p++, n++) {
		if (*p < '0' || *p > '9' || n >= 5)
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	return n > 0 && v <= 65535;
}

/*
 * Write <len> bytes of <src>, lower-cased, to <out> (then a NUL), or fail
 * when <outlen> is too small.
 */
static int
router_copy_lower(const char *src, size_t len, char *out, size_t outlen)
{
	size_t i;

	if (len + 1 > outlen)
		return -1;
	for (i = 0; i < len; i++)
		out[i] = (char)router_lower((unsigned char)src[i]);
	out[len] = '\0';
	return 0;
}

int
router_normalize_host(const char *host, char *out, size_t outlen)
{
	size_t len;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (host == NULL || out == NULL || host[0] == '\0')
		return -1;

	if (host[0] == '[') {
		char addr[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		const char *close = strchr(host, ']');
		size_t i;

		if (close == NULL)
			return -1;
		len = (size_t)(close - host) - 1;
		if (len == 0 || len >= sizeof(addr))
			return -1;
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)host[1 + i];

			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			      (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
				return -1;
		}
		memcpy(addr, host + 1, len);
		addr[len] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1)
			return -1;
		if (!router_valid_port(close + 1))
			return -1;
		return router_copy_lower(host, len + 2, out, outlen);
	}

	for (len = 0; host[len] != '\0' && host[len] != ':'; len++) {
		if (!router_is_regname_char((unsigned char)host[len]))
			return -1;
	}
	if (!router_valid_port(host + len))
		return -1;
	if (len > 0 && host[len - 1] == '.')
		len--; /* one trailing dot: "example.com." */
	if (len == 0 || host[0] == '.' || host[len - 1] == '.')
		return -1;
	if (memmem(host, len, "..", 2) != NULL)
		return -1;
	return router_copy_lower(host, len, out, outlen);
}

/* True when <host> is exactly one label followed by ".<suffix>" of "*.<suffix>". */
static bool
router_wildcard_matches(const char *pattern, const char *host)
{
	const char *suffix = pattern + 1; /* ".example.com" */
	size_t slen = strlen(suffix);
	size_t hlen = strlen(host);
	const char *dot;

	if (slen < 2 || hlen <= slen)
		return false;
	if (!router_caseeq(host + hlen - slen, suffix))
		return false;
	/* The label before the suffix is non-empty and holds no dot. */
	dot = strchr(host, '.');
	return dot == host + hlen - slen && dot != host;
}

/* True when <site> serves listener <listener> (SIZE_MAX: the listeners
 * without sites of their own, served by the unbound sites). */
static bool
router_site_serves(const struct config_site *site, size_t listener)
{
	if (listener == SIZE_MAX)
		return site->nlisteners == 0;
	for (size_t i = 0; i < site->nlisteners; i++)
		if (site->listener_index[i] == listener)
			return true;
	return false;
}

/* Exact names first, then wildcards, among the sites serving <listener>. */
static const struct config_site *
router_find_among(const struct config *cfg, size_t listener, const char *host,
		  const struct config_site *fallback)
{
	size_t s, h;

	if (host == NULL || host[0] == '\0')
		return fallback;
	for (s = 0; s < cfg->nsites; s++) {
		const struct config_site *site = &cfg->sites[s];

		if (!router_site_serves(site, listener))
			continue;
		for (h = 0; h < site->nhosts; h++) {
			const char *name = site->hosts[h];

			if (name != NULL && !(name[0] == '*' && name[1] == '.') &&
			    router_caseeq(name, host))
				return site;
		}
	}
	for (s = 0; s < cfg->nsites; s++) {
		const struct config_site *site = &cfg->sites[s];

		if (!router_site_serves(site, listener))
			continue;
		for (h = 0; h < site->nhosts; h++) {
			const char *name = site->hosts[h];

			if (name != NULL && name[0] == '*' && name[1] == '.' &&
			    router_wildcard_matches(name, host))
				return site;
		}
	}
	return fallback;
}

const struct config_site *
router_find_site(const struct config *cfg, const char *host)
{
	if (cfg == NULL)
		return NULL;
	return router_find_among(cfg, SIZE_MAX, host, cfg->default_site);
}

const struct config_site *
router_find_site_on(const struct config *cfg, size_t listener, const char *host)
{
	const struct config_listener *l;

	if (cfg == NULL)
		return NULL;
	if (listener >= cfg->nlisteners || !cfg->listeners[listener].has_sites)
		return router_find_site(cfg, host);
	l = &cfg->listeners[listener];
	return router_find_among(cfg, listener, host, l->default_site);
}

/* Length of <prefix> without its trailing slashes ("/" and "" give 0). */
static size_t
router_trimmed_len(const char *prefix)
{
	size_t len = strlen(prefix);

	while (len > 0 && prefix[len - 1] == '/')
		len--;
	return len;
}

bool
router_path_in_subtree(const char *path, const char *prefix)
{
	size_t len;
	char next;

	if (path == NULL || prefix == NULL)
		return false;
	len = router_trimmed_len(prefix);
	if (len == 0)
		return path[0] == '/'; /* "/" is the whole tree */
	if (!router_ncaseeq(path, prefix, len))
		return false;
	next = path[len];
	return next == '\0' || next == '/' || next == ';';
}

bool
router_route_matches(const struct config_route *route, const char *path, unsigned method)
{
	size_t i;

	if (route == NULL || path == NULL)
		return false;
	if (route->methods != 0 && (route->methods & method) == 0)
		return false;
	if (route->npaths == 0 && route->nexact == 0 && route->nprefixes == 0)
		return true;
	for (i = 0; i < route->nexact; i++) {
		if (route->exact[i] != NULL && router_caseeq(path, route->exact[i]))
			return true;
	}
	for (i = 0; i < route->npaths; i++) {
		if (router_path_in_subtree(path, route->paths[i]))
			return true;
	}
	for (i = 0; i < route->nprefixes; i++) {
		const char *p = route->prefixes[i];

		if (p != NULL && router_ncaseeq(path, p, strlen(p)))
			return true;
	}
	return false;
}

const struct config_route *
router_match(const struct config_site *site, const char *path, unsigned method)
{
	size_t i;

	if (site == NULL || path == NULL)
		return NULL;
	for (i = 0; i < site->nroutes; i++) {
		if (router_route_matches(&site->routes[i], path, method))
			return &site->routes[i];
	}
	return NULL;
}

/* True when <seg> (up to "/" or the end) is ".", ".." or either with ";params". */
static bool
router_is_dot_segment(const char *seg)
{
	size_t dots = 0;

	while (seg[dots] == '.')
		dots++;
	if (dots == 0 || dots > 2)
		return false;
	return seg[dots] == '\0' || seg[dots] == '/' || seg[dots] == ';' || seg[dots] == '?';
}

int
router_strip_prefix(const char *path, const char *prefix, char *out, size_t outlen)
{
	const char *rest;
	size_t len, restlen, need;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (path == NULL || prefix == NULL || out == NULL)
		return -1;
	len = router_trimmed_len(prefix);
	if (!router_ncaseeq(path, prefix, len))
		return -1;
	rest = path + len;
	restlen = strlen(rest);
	if (rest[0] == '/') {
		if (router_is_dot_segment(rest + 1))
			return -1;
		need = restlen + 1;
		if (need > outlen)
			return -1;
		memcpy(out, rest, restlen + 1);
		return 0;
	}
	if (router_is_dot_segment(rest))
		return -1;
	need = restlen + 2;
	if (need > outlen)
		return -1;
	out[0] = '/';
	memcpy(out + 1, rest, restlen + 1);
	return 0;
}

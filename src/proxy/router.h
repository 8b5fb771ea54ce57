/*
 * router: picks the site for a Host and the first route of that site that
 * matches a normalized path and a method.  Pure: works on struct config only.
 *
 * Hosts compare case-insensitively, without a port and without a trailing
 * dot; "*.example.com" matches exactly one more label ("a.example.com", not
 * "example.com" nor "a.b.example.com").  Exact host names win over
 * wildcards; a host no site names gets the default site.
 *
 * Path matchers (all ASCII case-insensitive):
 *   path        "/e" matches "/e", "/e/" and "/e/anything" (a trailing "/"
 *               in the matcher, "/e/", behaves the same as "/e"), and also
 *               "/e;params..." (Tomcat, Jetty and Spring strip path
 *               parameters, so "/admin;x=1/y" is "/admin/y" to them);
 *   path_exact  "/e" matches "/e" only;
 *   path_prefix "/e" matches any path that starts with "/e" ("/events" too).
 * A route with several matcher lists matches when any entry matches; a route
 * with none matches every path.  Routes are tried in order; first match wins.
 */
#ifndef PORTCULLIS_ROUTER_H
#define PORTCULLIS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config_model.h"

/*
 * Normalize a Host header value into <out> (lower case, port and trailing dot
 * removed).  Returns 0, or -1 when the value is not a valid host
 * (reg-name / IPv4 / [IPv6], optional :port of digits) or does not fit.
 */
int router_normalize_host(const char *host, char *out, size_t outlen);

/* The site for an already normalized host (NULL host: the default site).
 * Returns NULL when no site matches and there is no default site. */
const struct config_site *router_find_site(const struct config *cfg, const char *host);

/*
 * The site for a request on listener <listener> (its position in
 * config.listeners): on a listener that sites are bound to, among those sites
 * only (else that listener's default site); on any other, as
 * router_find_site (sites bound to a listener are never chosen there).
 */
const struct config_site *router_find_site_on(const struct config *cfg, size_t listener,
					      const char *host);

/* True when <route>'s matchers accept <path> and <method> (a METHOD_* bit). */
bool router_route_matches(const struct config_route *route, const char *path, unsigned method);

/* The first route of <site> that matches, or NULL. */
const struct config_route *router_match(const struct config_site *site, const char *path,
					unsigned method);

/*
 * True when <path> is inside the subtree of <prefix> under the "path"
 * matcher rule above ("/ingest" matches "/ingest" and "/ingest/x").
 */
bool router_path_in_subtree(const char *path, const char *prefix);

/*
 * Remove <prefix> from the front of <path> (it must match case-insensitively
 * as a subtree or a plain prefix) and write the rest to <out>, which always
 * starts with "/": "/ingest/e/" less "/ingest" is "/e/", "/ingest" is "/".
 * Returns 0, or -1 when <path> does not start with <prefix>, <out> is too
 * small, or the result would begin with a dot segment ("/e.." less "/e").
 */
int router_strip_prefix(const char *path, const char *prefix, char *out, size_t outlen);

#endif

/*
 * Unit tests for router: Host normalization, site lookup (exact, wildcard,
 * default), the three path matchers, methods, route order, prefix
 * stripping.  Configs are built by hand; nothing here loads JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/router.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- hosts */

struct host_case {
	const char *in;
	const char *out; /* NULL: refused */
};

static void
test_normalize_host(void **state)
{
	static const struct host_case cases[] = {
		{ "example.com", "example.com" },
		{ "Example.COM", "example.com" },
		{ "POSTHOG.example.com:443", "posthog.example.com" },
		{ "example.com:8080", "example.com" },
		{ "example.com:0", "example.com" },
		{ "example.com:65535", "example.com" },
		{ "example.com.", "example.com" },
		{ "example.com.:8443", "example.com" },
		{ "localhost", "localhost" },
		{ "a", "a" },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		{ "my_host-1.internal", "my_host-1.internal" },
		{ "a~b!$&'()*+,;=.example", "a~b!$&'()*+,;=.example" },
		{ "10.1.1.1", "10.1.1.1" },
		{ "10.1.1.1:80", "10.1.1.1" },
		{ "[::1]", "[::1]" },
		{ "[::1]:8443", "[::1]" },
		{ "[2001:DB8::A]", "[2001:db8::a]" },
		{ "[2001:db8::1]:80", "[2001:db8::1]" },
		{ "[::ffff:10.1.1.1]", "[::ffff:10.1.1.1]" },
		/* refused */
		{ "", NULL },
		{ ".", NULL },
		{ "..", NULL },
		{ ".example.com", NULL },
		{ "example..com", NULL },
		{ "example.com..", NULL },
		{ ":80", NULL },
		{ ".:80", NULL },
		{ "user@example.com", NULL },
		{ "user:pass@example.com", NULL },
		{ "example.com@evil.com", NULL },
		{ "exa mple.com", NULL },
		{ " example.com", NULL },
		{ "example.com ", NULL },
		{ "example.com\t", NULL },
		{ "example.com\r\nX: y", NULL },
		{ "exa\x01mple.com", NULL },
		{ "ex%61mple.com", NULL },
		{ "example.com%00", NULL },
		{ "ex\xc3\xa4mple.com", NULL },
		{ "example.com/", NULL },
		{ "example.com/path", NULL },
		{ "example.com\\", NULL },
		{ "example.com?x", NULL },
		{ "example.com#x", NULL },
		{ "example.com:", NULL },
		{ "example.com:http", NULL },
		{ "example.com:-1", NULL },
		{ "example.com:+80", NULL },
		{ "example.com:65536", NULL },
		{ "example.com:99999", NULL },
		{ "example.com:000080", NULL },
		{ "example.com:80:80", NULL },
		{ "example.com:80 ", NULL },
		{ "[::1", NULL },
		{ "::1", NULL },
		{ "[::1]x", NULL },
		{ "[::1]:", NULL },
		{ "[::1]:abc", NULL },
		{ "[]", NULL },
		{ "[g::1]", NULL },
		{ "[1.2.3.4]", NULL },
		{ "[fe80::1%25eth0]", NULL },
		{ "[fe80::1%eth0]", NULL },
		{ "[::1]]", NULL },
		{ "[[::1]]", NULL },
		{ "[::1]@evil", NULL },
		{ "[1:2:3:4:5:6:7:8:9]", NULL },
		{ "[v1.fe80::a]", NULL },
		{ "*.example.com", "*.example.com" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		char out[256];
		int rc = router_normalize_host(cases[i].in, out, sizeof(out));

		if (cases[i].out == NULL) {
			if (rc != -1)
				fail_msg("host case %zu \"%s\": accepted as \"%s\"", i, cases[i].in, out);
			if (out[0] != '\0')
				fail_msg("host case %zu \"%s\": output not cleared", i, cases[i].in);
		} else {
			if (rc != 0)
				fail_msg("host case %zu \"%s\": refused", i, cases[i].in);
			if (strcmp(out, cases[i].out) != 0)
				fail_msg("host case %zu \"%s\": got \"%s\", want \"%s\"", i, cases[i].in,
					 out, cases[i].out);
		}
	}
	assert_int_equal(router_normalize_host(NULL, (char[8]){ 0 }, 8), -1);
}

static void
test_normalize_host_buffer(void **state)
{
	char out[16];
	char big[512];

	(void)state;
	/* "example.com" is 11 bytes: needs 12 */
	assert_int_equal(router_normalize_host("example.com", out, 12), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(router_normalize_host("example.com", out, 11), -1);
	/* the port and trailing dot need no room */
	assert_int_equal(router_normalize_host("example.com.:443", out, 12), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(router_normalize_host("[::1]:80", out, 6), 0);
	assert_string_equal(out, "[::1]");
	assert_int_equal(router_normalize_host("[::1]", out, 5), -1);
	assert_int_equal(router_normalize_host("a", out, 0), -1);
	assert_int_equal(router_normalize_host("a", NULL, 10), -1);
	/* a very long name is refused when it does not fit, accepted when it does */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(router_normalize_host(big, out, sizeof(out)), -1);
	{
		char large[600];

		assert_int_equal(router_normalize_host(big, large, sizeof(large)), 0);
		assert_int_equal(strlen(large), sizeof(big) - 1);
	}
}

/* ---------------------------------------------------------------- sites */

static char *hosts_wild[] = { "*.example.com" };
static char *hosts_posthog[] = { "posthog.example.com", "ph.example.com" };
static char *hosts_org[] = { "app.example.org", "*.apps.example.org" };
static char *hosts_ip[] = { "10.1.1.1", "[::1]" };

static struct config_site sites[] = {
	/* the wildcard site comes first: exact names must still win */
	{ .name = "wild", .hosts = hosts_wild, .nhosts = 1 },
	{ .name = "posthog", .hosts = hosts_posthog, .nhosts = 2 },
	{ .name = "org", .hosts = hosts_org, .nhosts = 2 },
	{ .name = "ip", .hosts = hosts_ip, .nhosts = 2 },
	{ .name = "default", .is_default = true },
};

static struct config site_cfg = {
	.sites = sites,
	.nsites = NELEM(sites),
	.default_site = &sites[4],
};

struct site_case {
	const char *host;
	const char *site; /* expected site name, NULL: none */
};

static void
run_site_cases(const struct config *cfg, const struct site_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct config_site *s = router_find_site(cfg, cases[i].host);
		const char *got = s != NULL ? s->name : NULL;

		if ((got == NULL) != (cases[i].site == NULL) ||
		    (got != NULL && strcmp(got, cases[i].site) != 0))
			fail_msg("site case %zu \"%s\": got %s, want %s", i,
				 cases[i].host ? cases[i].host : "(null)", got ? got : "(none)",
				 cases[i].site ? cases[i].site : "(none)");
	}
}

static void
test_find_site(void **state)
{
	static const struct site_case cases[] = {
		{ "posthog.example.com", "posthog" },
		{ "ph.example.com", "posthog" },
		{ "POSTHOG.EXAMPLE.COM", "posthog" },
		{ "x.example.com", "wild" },
		{ "app.example.com", "wild" },
		{ "a-b_c.example.com", "wild" },
		/* exactly one label */
		{ "example.com", "default" },
		{ ".example.com", "default" },
		{ "a.b.example.com", "default" },
		{ "a.posthog.example.com", "default" },
		{ "xexample.com", "default" },
		{ "x.example.com.evil", "default" },
		{ "x.example.co", "default" },
		{ "app.example.org", "org" },
		{ "x.apps.example.org", "org" },
		{ "apps.example.org", "default" },
		{ "x.app.example.org", "default" },
		{ "10.1.1.1", "ip" },
		{ "10.1.1.10", "default" },
		{ "[::1]", "ip" },
		{ "unknown.test", "default" },
		{ "", "default" },
		{ NULL, "default" },
	};

	(void)state;
	run_site_cases(&site_cfg, cases, NELEM(cases));
}

static void
test_find_site_without_default(void **state)
{
	struct config cfg = { .sites = sites, .nsites = 4, .default_site = NULL };
	static const struct site_case cases[] = {
		{ "posthog.example.com", "posthog" },
		{ "a.example.com", "wild" },
		{ "unknown.test", NULL },
		{ "example.com", NULL },
		{ NULL, NULL },
	};

	(void)state;
	run_site_cases(&cfg, cases, NELEM(cases));
	assert_null(router_find_site(NULL, "posthog.example.com"));
}

static void
test_find_site_normalized_host_roundtrip(void **state)
{
	/* what the proxy does: normalize the Host header, then look up */
	static const struct {
		const char *header;
		const char *site;
	} cases[] = {
		{ "PostHog.Example.Com:443", "posthog" },
		{ "posthog.example.com.", "posthog" },
		{ "X.Example.Com.:8443", "wild" },
		{ "[::1]:8080", "ip" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		char host[256];
		const struct config_site *s;

		assert_int_equal(router_normalize_host(cases[i].header, host, sizeof(host)), 0);
		s = router_find_site(&site_cfg, host);
		assert_non_null(s);
		assert_string_equal(s->name, cases[i].site);
	}
}

/* ---------------------------------------------------------------- paths */

struct match_case {
	const char *path;
	bool match;
};

static void
run_route_cases(const struct config_route *route, unsigned method, const struct match_case *cases,
		size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (router_route_matches(route, cases[i].path, method) != cases[i].match)
			fail_msg("route %s, path \"%s\": want %s", route->name, cases[i].path,
				 cases[i].match ? "match" : "no match");
	}
}

static void
test_path_subtree_matcher(void **state)
{
	static char *e[] = { "/e" };
	static char *e_slash[] = { "/e/" };
	struct config_route r1 = { .name = "path /e", .paths = e, .npaths = 1 };
	struct config_route r2 = { .name = "path /e/", .paths = e_slash, .npaths = 1 };
	static const struct match_case cases[] = {
		{ "/e", true },
		{ "/e/", true },
		{ "/e/x", true },
		{ "/e/x/y/", true },
		{ "/E", true },
		{ "/E/", true },
		{ "/E/X", true },
		{ "/e;jsessionid=1", true },
		{ "/e;x/y", true },
		{ "/events", false },
		{ "/e.js", false },
		{ "/e-x", false },
		{ "/ex", false },
		{ "/", false },
		{ "", false },
		{ "/f", false },
		{ "/x/e", false },
		{ "/x/e/", false },
	};

	(void)state;
	run_route_cases(&r1, METHOD_GET, cases, NELEM(cases));
	run_route_cases(&r2, METHOD_GET, cases, NELEM(cases));
}

static void
test_path_exact_matcher(void **state)
{
	static char *e[] = { "/e" };
	struct config_route r = { .name = "path_exact /e", .exact = e, .nexact = 1 };
	static const struct match_case cases[] = {
		{ "/e", true },
		{ "/E", true },
		{ "/e/", false },
		{ "/e/x", false },
		{ "/events", false },
		{ "/e;x", false },
		{ "/", false },
		{ "", false },
	};

	(void)state;
	run_route_cases(&r, METHOD_POST, cases, NELEM(cases));
}

static void
test_path_prefix_matcher(void **state)
{
	static char *e[] = { "/e" };
	struct config_route r = { .name = "path_prefix /e", .prefixes = e, .nprefixes = 1 };
	static const struct match_case cases[] = {
		{ "/e", true },
		{ "/e/", true },
		{ "/e/x", true },
		{ "/events", true },
		{ "/E", true },
		{ "/EVENTS/x", true },
		{ "/", false },
		{ "/f", false },
		{ "/x/e", false },
		{ "", false },
	};

	(void)state;
	run_route_cases(&r, METHOD_GET, cases, NELEM(cases));
}

static void
test_root_and_catch_all(void **state)
{
	static char *root[] = { "/" };
	struct config_route r_root = { .name = "path /", .paths = root, .npaths = 1 };
	struct config_route r_any = { .name = "no matchers" };
	static const struct match_case cases[] = {
		{ "/", true },
		{ "/e", true },
		{ "/api/x/", true },
	};

	(void)state;
	run_route_cases(&r_root, METHOD_GET, cases, NELEM(cases));
	run_route_cases(&r_any, METHOD_GET, cases, NELEM(cases));
	/* with no method list every method matches, also one we do not name */
	assert_true(router_route_matches(&r_any, "/x", METHOD_DELETE));
	assert_true(router_route_matches(&r_any, "/x", 0));
	assert_false(router_route_matches(NULL, "/x", METHOD_GET));
	assert_false(router_route_matches(&r_any, NULL, METHOD_GET));
}

static void
test_several_matchers_and_methods(void **state)
{
	static char *paths[] = { "/e", "/i/v0", "/batch", "/capture" };
	static char *exact[] = { "/decide" };
	static char *prefixes[] = { "/s/" };
	struct config_route r = {
		.name = "capture",
		.paths = paths,
		.npaths = NELEM(paths),
		.exact = exact,
		.nexact = NELEM(exact),
		.prefixes = prefixes,
		.nprefixes = NELEM(prefixes),
		.methods = METHOD_GET | METHOD_POST,
	};
	static const struct match_case get_cases[] = {
		{ "/e/", true },
		{ "/i/v0/e/", true },
		{ "/i/v0", true },
		{ "/i/v1/logs", false },
		{ "/i", false },
		{ "/batch/", true },
		{ "/batches", false },
		{ "/capture", true },
		{ "/decide", true },
		{ "/decide/", false },
		{ "/s/", true },
		{ "/s/x", true },
		{ "/s", false },
		{ "/api/", false },
	};

	(void)state;
	run_route_cases(&r, METHOD_GET, get_cases, NELEM(get_cases));
	run_route_cases(&r, METHOD_POST, get_cases, NELEM(get_cases));
	assert_false(router_route_matches(&r, "/e/", METHOD_PUT));
	assert_false(router_route_matches(&r, "/e/", METHOD_DELETE));
	assert_false(router_route_matches(&r, "/e/", METHOD_OPTIONS));
	assert_false(router_route_matches(&r, "/e/", 0));
	assert_true(router_route_matches(&r, "/e/", METHOD_POST));
}

static void
test_subtree_function(void **state)
{
	(void)state;
	assert_true(router_path_in_subtree("/ingest", "/ingest"));
	assert_true(router_path_in_subtree("/ingest/", "/ingest"));
	assert_true(router_path_in_subtree("/ingest/e/", "/ingest"));
	assert_true(router_path_in_subtree("/INGEST/e/", "/ingest"));
	assert_true(router_path_in_subtree("/ingest/e/", "/Ingest/"));
	assert_true(router_path_in_subtree("/ingest", "/ingest/"));
	assert_true(router_path_in_subtree("/ingest", "/ingest//"));
	assert_false(router_path_in_subtree("/ingestion", "/ingest"));
	assert_false(router_path_in_subtree("/ingestion", "/ingest/"));
	assert_false(router_path_in_subtree("/inges", "/ingest"));
	assert_false(router_path_in_subtree("/", "/ingest"));
	assert_true(router_path_in_subtree("/anything", "/"));
	assert_true(router_path_in_subtree("/", "/"));
	assert_true(router_path_in_subtree("/a/b/c", "/a/b"));
	assert_false(router_path_in_subtree("/a/bc", "/a/b"));
	assert_false(router_path_in_subtree(NULL, "/a"));
	assert_false(router_path_in_subtree("/a", NULL));
}

/* ---------------------------------------------------------------- router_match */

static char *m_capture[] = { "/e", "/i/v0", "/batch", "/capture" };
static char *m_replay[] = { "/s" };
static char *m_flags[] = { "/flags" };
static char *m_live[] = { "/livestream" };
static char *m_ingest_static[] = { "/ingest/static" };
static char *m_ingest[] = { "/ingest" };
static char *m_public[] = { "/public/webhooks", "/public/m" };
static char *m_admin[] = { "/admin" };

static struct config_route posthog_routes[] = {
	{ .name = "capture-post", .paths = m_capture, .npaths = 4, .methods = METHOD_POST },
	{ .name = "capture", .paths = m_capture, .npaths = 4 },
	{ .name = "replay", .paths = m_replay, .npaths = 1 },
	{ .name = "flags", .paths = m_flags, .npaths = 1 },
	{ .name = "livestream", .paths = m_live, .npaths = 1, .strip_prefix = "/livestream" },
	{ .name = "ingest-static", .paths = m_ingest_static, .npaths = 1,
	  .strip_prefix = "/ingest" },
	{ .name = "ingest", .paths = m_ingest, .npaths = 1, .strip_prefix = "/ingest" },
	{ .name = "plugins", .paths = m_public, .npaths = 2 },
	{ .name = "admin", .paths = m_admin, .npaths = 1 },
	{ .name = "web" },
};

static struct config_site posthog_site = {
	.name = "posthog",
	.routes = posthog_routes,
	.nroutes = NELEM(posthog_routes),
};

struct route_case {
	const char *path;
	unsigned method;
	const char *route;
};

static void
test_match_posthog(void **state)
{
	static const struct route_case cases[] = {
		{ "/e", METHOD_POST, "capture-post" },
		{ "/e/", METHOD_POST, "capture-post" },
		{ "/e/", METHOD_GET, "capture" },
		{ "/E/", METHOD_GET, "capture" },
		{ "/e/x", METHOD_GET, "capture" },
		{ "/events", METHOD_GET, "web" },
		{ "/events", METHOD_POST, "web" },
		{ "/i/v0/e/", METHOD_POST, "capture-post" },
		{ "/i/v1/logs", METHOD_POST, "web" },
		{ "/batch/", METHOD_POST, "capture-post" },
		{ "/batchx", METHOD_POST, "web" },
		{ "/capture/", METHOD_GET, "capture" },
		{ "/s/", METHOD_POST, "replay" },
		{ "/static/recorder.js", METHOD_GET, "web" },
		{ "/flags/", METHOD_POST, "flags" },
		{ "/flagsx", METHOD_POST, "web" },
		{ "/livestream/events", METHOD_GET, "livestream" },
		{ "/ingest/static/array.js", METHOD_GET, "ingest-static" },
		{ "/ingest/static", METHOD_GET, "ingest-static" },
		{ "/ingest/e/", METHOD_POST, "ingest" },
		{ "/ingest", METHOD_GET, "ingest" },
		{ "/ingest/staticx", METHOD_GET, "ingest" },
		{ "/ingestion", METHOD_GET, "web" },
		{ "/public/webhooks/abc", METHOD_POST, "plugins" },
		{ "/public/m/x", METHOD_POST, "plugins" },
		{ "/public/other", METHOD_GET, "web" },
		{ "/admin", METHOD_GET, "admin" },
		{ "/ADMIN/", METHOD_GET, "admin" },
		{ "/admin;jsessionid=1/x", METHOD_GET, "admin" },
		{ "/administrator", METHOD_GET, "web" },
		{ "/", METHOD_GET, "web" },
		{ "/api/projects/", METHOD_DELETE, "web" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		const struct config_route *r =
			router_match(&posthog_site, cases[i].path, cases[i].method);

		if (r == NULL || strcmp(r->name, cases[i].route) != 0)
			fail_msg("match case %zu \"%s\": got %s, want %s", i, cases[i].path,
				 r ? r->name : "(none)", cases[i].route);
	}
}

static void
test_match_pipeline_with_pathnorm_shapes(void **state)
{
	/* Paths as pathnorm leaves them: no route may see a sibling's traffic. */
	struct config_site no_fallback = { .name = "x", .routes = posthog_routes, .nroutes = 9 };

	(void)state;
	assert_null(router_match(&no_fallback, "/events", METHOD_GET));
	assert_null(router_match(&no_fallback, "/", METHOD_GET));
	assert_null(router_match(&no_fallback, "/ingestion", METHOD_GET));
	assert_string_equal(router_match(&no_fallback, "/e", METHOD_GET)->name, "capture");
	assert_null(router_match(NULL, "/e", METHOD_GET));
	assert_null(router_match(&posthog_site, NULL, METHOD_GET));
	{
		struct config_site empty = { .name = "empty" };

		assert_null(router_match(&empty, "/", METHOD_GET));
	}
}

/* ---------------------------------------------------------------- strip_prefix */

struct strip_case {
	const char *path;
	const char *prefix;
	const char *out; /* NULL: -1 */
};

static void
test_strip_prefix(void **state)
{
	static const struct strip_case cases[] = {
		{ "/ingest/e/", "/ingest", "/e/" },
		{ "/ingest/e", "/ingest", "/e" },
		{ "/ingest/", "/ingest", "/" },
		{ "/ingest", "/ingest", "/" },
		{ "/ingest/static/array.js", "/ingest", "/static/array.js" },
		{ "/ingest/decide/?", "/ingest", "/decide/?" },
		{ "/INGEST/e/", "/ingest", "/e/" },
		{ "/ingest/E/", "/Ingest", "/E/" },
		{ "/ingest/e/", "/ingest/", "/e/" },
		{ "/ingest", "/ingest/", "/" },
		{ "/livestream/events", "/livestream", "/events" },
		{ "/a/b/c", "/a/b", "/c" },
		{ "/x/y", "/", "/x/y" },
		{ "/", "/", "/" },
		{ "/x", "", "/x" },
		/* a plain prefix leaves a rest that gets a leading "/" */
		{ "/ingestion", "/ingest", "/ion" },
		{ "/events", "/e", "/vents" },
		/* not a prefix */
		{ "/other/e/", "/ingest", NULL },
		{ "/inges", "/ingest", NULL },
		{ "/", "/ingest", NULL },
		{ "/x/ingest/e", "/ingest", NULL },
		/* the rest may not become a dot segment */
		{ "/e..", "/e", NULL },
		{ "/e.", "/e", NULL },
		{ "/e../x", "/e", NULL },
		{ "/e.;x/y", "/e", NULL },
		{ "/ingest/../admin", "/ingest", NULL },
		{ "/ingest/./admin", "/ingest", NULL },
		{ "/ingest/..", "/ingest", NULL },
		{ "/e...", "/e", "/..." },
		{ "/ingest/.well-known/x", "/ingest", "/.well-known/x" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		char out[128];
		int rc = router_strip_prefix(cases[i].path, cases[i].prefix, out, sizeof(out));

		if (cases[i].out == NULL) {
			if (rc != -1)
				fail_msg("strip case %zu \"%s\" - \"%s\": got \"%s\", want -1", i,
					 cases[i].path, cases[i].prefix, out);
		} else {
			if (rc != 0 || strcmp(out, cases[i].out) != 0)
				fail_msg("strip case %zu \"%s\" - \"%s\": got %d \"%s\", want \"%s\"",
					 i, cases[i].path, cases[i].prefix, rc, out, cases[i].out);
		}
	}
}

static void
test_strip_prefix_buffer(void **state)
{
	char out[8];

	(void)state;
	/* "/e/" + NUL = 4 bytes */
	assert_int_equal(router_strip_prefix("/ingest/e/", "/ingest", out, 4), 0);
	assert_string_equal(out, "/e/");
	assert_int_equal(router_strip_prefix("/ingest/e/", "/ingest", out, 3), -1);
	/* "/" + NUL = 2 bytes, also when the "/" is added */
	assert_int_equal(router_strip_prefix("/ingest", "/ingest", out, 2), 0);
	assert_string_equal(out, "/");
	assert_int_equal(router_strip_prefix("/ingest", "/ingest", out, 1), -1);
	assert_int_equal(router_strip_prefix("/ingestion", "/ingest", out, 5), 0);
	assert_string_equal(out, "/ion");
	assert_int_equal(router_strip_prefix("/ingestion", "/ingest", out, 4), -1);
	assert_int_equal(router_strip_prefix("/a", "/a", NULL, 0), -1);
	assert_int_equal(router_strip_prefix(NULL, "/a", out, sizeof(out)), -1);
	assert_int_equal(router_strip_prefix("/a", NULL, out, sizeof(out)), -1);
}

/* ------------------------------------------------------- bound sites */

static char *hosts_a[] = { "a.example.com" };
static size_t on_ui[] = { 1 };
static size_t on_ui_admin[] = { 1, 2 };
static struct config_site bound_sites[] = {
	{ .name = "main-a", .hosts = hosts_a, .nhosts = 1 },
	{ .name = "main", .is_default = true },
	{ .name = "ui-a", .hosts = hosts_a, .nhosts = 1, .nlisteners = 2,
	  .listener_index = on_ui_admin },
	{ .name = "ui", .nlisteners = 1, .listener_index = on_ui },
};
static struct config_listener bound_listeners[] = {
	{ .name = "web", .index = 0 },
	{ .name = "ui", .index = 1, .has_sites = true, .default_site = &bound_sites[3] },
	{ .name = "admin", .index = 2, .has_sites = true },
};
static struct config bound_cfg = {
	.sites = bound_sites,
	.nsites = NELEM(bound_sites),
	.listeners = bound_listeners,
	.nlisteners = NELEM(bound_listeners),
	.default_site = &bound_sites[1],
};

static void
test_find_site_on_listener(void **state)
{
	static const struct {
		size_t listener;
		const char *host;
		const char *site;
	} cases[] = {
		{ 0, "a.example.com", "main-a" }, { 0, "b.example.com", "main" },
		{ 0, NULL, "main" },		   { 1, "a.example.com", "ui-a" },
		{ 1, "b.example.com", "ui" },	   { 1, NULL, "ui" },
		{ 2, "a.example.com", "ui-a" },   { 2, "b.example.com", NULL },
		{ 9, "a.example.com", "main-a" }, /* unknown listener: as the unbound ones */
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct config_site *s =
			router_find_site_on(&bound_cfg, cases[i].listener, cases[i].host);
		const char *got = s != NULL ? s->name : NULL;

		if ((got == NULL) != (cases[i].site == NULL) ||
		    (got != NULL && strcmp(got, cases[i].site) != 0))
			fail_msg("case %zu: got %s, want %s", i, got ? got : "(none)",
				 cases[i].site ? cases[i].site : "(none)");
	}
	/* router_find_site never picks a bound site. */
	assert_string_equal(router_find_site(&bound_cfg, "a.example.com")->name, "main-a");
	assert_null(router_find_site_on(NULL, 0, "a.example.com"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize_host),
		cmocka_unit_test(test_normalize_host_buffer),
		cmocka_unit_test(test_find_site),
		cmocka_unit_test(test_find_site_without_default),
		cmocka_unit_test(test_find_site_normalized_host_roundtrip),
		cmocka_unit_test(test_path_subtree_matcher),
		cmocka_unit_test(test_path_exact_matcher),
		cmocka_unit_test(test_path_prefix_matcher),
		cmocka_unit_test(test_root_and_catch_all),
		cmocka_unit_test(test_several_matchers_and_methods),
		cmocka_unit_test(test_subtree_function),
		cmocka_unit_test(test_match_posthog),
		cmocka_unit_test(test_match_pipeline_with_pathnorm_shapes),
		cmocka_unit_test(test_strip_prefix),
		cmocka_unit_test(test_strip_prefix_buffer),
		cmocka_unit_test(test_find_site_on_listener),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for access: CIDR rules, policies, rate limits and their config keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/access_check.h"
#include "config/config.h"

static const char *
no_env(const char *name)
{
	(void)name;
	return NULL;
}

/* JSON with ' for " (readability). */
static struct config *
load(const char *text, char *err, size_t errlen)
{
	char *json = strdup(text);
	struct config *cfg;

	for (char *p = json; *p; p++)
		if (*p == '\'')
			*p = '"';
	cfg = config_load_string(json, "test.json", err, errlen, no_env);
	free(json);
	return cfg;
}

static void
expect_error(const char *text, const char *needle)
{
	char err[4096] = "";
	struct config *cfg = load(text, err, sizeof(err));

	if (cfg != NULL || strstr(err, needle) == NULL) {
		fprintf(stderr, "expected an error containing \"%s\"; got: %s\n", needle,
			cfg ? "(config loaded)" : err);
		config_unref(cfg);
		fail();
	}
}

#define BASE "'upstreams': {'web': {'servers': ['127.0.0.1:9']}},"

static const struct config_route *
route_named(const struct config *cfg, const char *name)
{
	for (size_t s = 0; s < cfg->nsites; s++)
		for (size_t r = 0; r < cfg->sites[s].nroutes; r++)
			if (strcmp(cfg->sites[s].routes[r].name, name) == 0)
				return &cfg->sites[s].routes[r];
	return NULL;
}

static int
check(const struct config *cfg, const char *route, const char *client)
{
	struct access_outcome out;

	return access_check_request(cfg, 0, NULL, route_named(cfg, route), client, &out);
}

static void
test_most_specific_wins(void **state)
{
	char err[4096];
	struct config *cfg = load(
		"{'listeners': [{'address': ':0'}]," BASE
		"'sites': [{'access': {'allow': ['10.0.0.0/8', '10.1.2.0/24', '2001:db8::/32'],"
		"                      'deny': ['10.1.0.0/16', '10.1.2.66', '2001:db8:bad::/48']},"
		"  'routes': [{'name': 'r', 'upstream': 'web'}]}]}",
		err, sizeof(err));
	struct access_outcome out;

	(void)state;
	if (cfg == NULL)
		fprintf(stderr, "%s\n", err);
	assert_non_null(cfg);
	assert_int_equal(check(cfg, "r", "10.9.9.9"), 0);     /* allow /8 */
	assert_int_equal(check(cfg, "r", "10.1.3.3"), 403);   /* deny /16 beats allow /8 */
	assert_int_equal(check(cfg, "r", "10.1.2.3"), 0);     /* allow /24 beats deny /16 */
	assert_int_equal(check(cfg, "r", "10.1.2.66"), 403);  /* deny /32 beats allow /24 */
	assert_int_equal(check(cfg, "r", "198.51.100.1"), 403); /* no match, allow list exists */
	assert_int_equal(check(cfg, "r", "::ffff:10.1.3.3"), 403); /* mapped = IPv4 */
	assert_int_equal(check(cfg, "r", "::ffff:10.9.9.9"), 0);
	assert_int_equal(check(cfg, "r", "2001:db8::1"), 0);
	assert_int_equal(check(cfg, "r", "2001:db8:bad::1"), 403);
	assert_int_equal(check(cfg, "r", "2001:db9::1"), 403);
	assert_int_equal(access_check_request(cfg, 0, NULL, route_named(cfg, "r"), "10.1.3.3", &out),
			 403);
	assert_string_equal(out.rule, "sites[0].access.deny[0] 10.1.0.0/16");
	access_check_request(cfg, 0, NULL, route_named(cfg, "r"), "198.51.100.1", &out);
	assert_string_equal(out.rule, "sites[0].access.allow: no entry matched");
	config_unref(cfg);
}

static void
test_deny_only_and_ties(void **state)
{
	char err[4096];
	struct config *cfg = load(
		"{'listeners': [{'address': ':0'}]," BASE
		"'sites': [{'routes': [{'name': 'd', 'upstream': 'web', 'access': {'deny': ['203.0.113.0/24']}},"
		"                      {'name': 't', 'upstream': 'web', 'match': {'path': ['/t']},"
		"                       'access': {'allow': ['203.0.113.0/24'], 'deny': ['203.0.113.0/24']}}]}]}",
		err, sizeof(err));

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(check(cfg, "d", "203.0.113.5"), 403);
	assert_int_equal(check(cfg, "d", "198.51.100.5"), 0); /* deny list only: others pass */
	assert_int_equal(check(cfg, "t", "203.0.113.5"), 403); /* same prefix: deny wins */
	config_unref(cfg);
}

static void
test_levels(void **state)
{
	char err[4096];
	struct config *cfg = load(
		"{'listeners': [{'address': ':0', 'allow': ['10.0.0.0/8']}]," BASE
		"'sites': [{'access': {'allow': ['10.1.1.0/24']},"
		"  'routes': [{'name': 'public', 'upstream': 'web', 'match': {'path': ['/pub']},"
		"              'access': {'allow': ['0.0.0.0/0']}},"
		"             {'name': 'limited', 'upstream': 'web', 'match': {'path': ['/lim']},"
		"              'access': {'rate': {'per_second': 1, 'burst': 2}}},"
		"             {'name': 'private', 'upstream': 'web'}]}]}",
		err, sizeof(err));
	struct access_outcome out;
	struct netaddr a;

	(void)state;
	if (cfg == NULL)
		fprintf(stderr, "%s\n", err);
	assert_non_null(cfg);
	/* The listener is a gate of its own: the route cannot widen it. */
	assert_int_equal(check(cfg, "public", "198.51.100.1"), 403);
	/* The route's addresses replace the site's. */
	assert_int_equal(check(cfg, "public", "10.2.2.2"), 0);
	assert_int_equal(check(cfg, "private", "10.2.2.2"), 403);
	assert_int_equal(check(cfg, "private", "10.1.1.9"), 0);
	/* A route with only a rate keeps the site's addresses. */
	assert_int_equal(check(cfg, "limited", "10.2.2.2"), 403);
	assert_int_equal(check(cfg, "limited", "10.1.1.7"), 0);
	assert_int_equal(check(cfg, "limited", "10.1.1.7"), 0);
	assert_int_equal(access_check_request(cfg, 0, NULL, route_named(cfg, "limited"), "10.1.1.7",
					      &out),
			 429);
	assert_true(out.retry_after >= 1);
	assert_string_equal(out.rule, "sites[0].routes[1].access");
	assert_int_equal(check(cfg, "limited", "10.1.1.8"), 0); /* another client */
	assert_int_equal(check(cfg, "private", "10.1.1.7"), 0); /* another route, no limit */
	/* TCP-style check on the listener alone */
	assert_int_equal(netaddr_parse("10.200.0.1", &a), 0);
	assert_true(access_check_address(cfg, 0, &a));
	assert_int_equal(netaddr_parse("192.168.0.1", &a), 0);
	assert_false(access_check_address(cfg, 0, &a));
	config_unref(cfg);
}

static void
test_metrics(void **state)
{
	char err[4096];
	struct config *cfg = load("{'listeners': [{'address': ':0'}]," BASE
				  "'sites': [{'routes': [{'name': 'm0', 'upstream': 'web',"
				  " 'match': {'path': ['/x']}},"
				  " {'name': 'm', 'upstream': 'web', 'access': {'deny': ['192.0.2.0/24']}}]}]}",
				  err, sizeof(err));
	struct access_counter *c = access_counter_get(
		"portcullis_access_refusals_total", "rule=\"sites[0].routes[1].access.deny[0]\",reason=\"ip\"");
	uint64_t before;
	char *text;

	(void)state;
	assert_non_null(cfg);
	assert_non_null(c);
	before = atomic_load(&c->value);
	assert_int_equal(check(cfg, "m", "192.0.2.1"), 403);
	assert_int_equal(check(cfg, "m", "192.0.2.2"), 403);
	assert_int_equal(check(cfg, "m", "198.51.100.2"), 0);
	assert_int_equal(atomic_load(&c->value), before + 2);
	text = access_metrics_render();
	assert_non_null(text);
	assert_non_null(strstr(text, "# TYPE portcullis_access_refusals_total counter\n"));
	assert_non_null(strstr(text, "portcullis_access_refusals_total{rule=\"sites[0].routes[1]."
				     "access.deny[0]\",reason=\"ip\"} "));
	free(text);
	config_unref(cfg);
}

static void
test_config_errors(void **state)
{
	(void)state;
	expect_error("{'listeners': [{'address': ':0', 'allow': ['10.0.0.0/33']}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "listeners[0]: allow[0] \"10.0.0.0/33\": prefix length must be 0..32");
	expect_error("{'listeners': [{'address': ':0'}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web', 'access': {'deny': ['nope']}}]}]}",
		     "sites[0].routes[0].access: deny[0] \"nope\": not an IPv4 or IPv6 address");
	expect_error("{'listeners': [{'address': ':0'}]," BASE
		     "'sites': [{'access': {'countries_allow': ['DE']}, 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].access: country rules need a country database");
	expect_error("{'listeners': [{'address': ':0'}]," BASE
		     "'geoip': {'database': '/nonexistent/x.mmdb'},"
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "geoip.database: /nonexistent/x.mmdb: cannot open the GeoIP database");
	expect_error("{'listeners': [{'address': ':0'}]," BASE
		     "'geoip': {'database': '/etc/hostname'},"
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "geoip.database: /etc/hostname: not a usable MaxMind database");
	expect_error("{'listeners': [{'address': ':0', 'proxy_protocol': true}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "listeners[0].proxy_protocol: a PROXY header is believed only from trusted proxies");
	expect_error("{'listeners': [{'address': ':0', 'type': 'tcp'}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "listeners[0]: missing \"upstream\"");
	expect_error("{'listeners': [{'address': ':0', 'type': 'tcp', 'upstream': 'nosuch'}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "listeners[0].upstream: no upstream named \"nosuch\"");
	expect_error("{'listeners': [{'address': ':0', 'upstream': 'web'}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "listeners[0].upstream: only for raw TCP listeners");
	expect_error("{'listeners': [{'address': ':0', 'type': 'udp'}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}", "listeners[0].type: ");
	expect_error("{'listeners': [{'address': ':0'}]," BASE
		     "'sites': [{'routes': [{'upstream': 'web', 'access': {'rate': {'per_second': 0}}}]}]}",
		     "sites[0].routes[0].access.rate.per_second: 0 is out of range");
	expect_error("{'listeners': [{'address': ':0'}], 'admin': {'address': ':0', 'allow': []},"
		     BASE "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "admin.allow: unknown key");
}

static void
test_tcp_listener_config(void **state)
{
	char err[4096];
	struct config *cfg = load(
		"{'listeners': [{'address': ':0'},"
		" {'name': 'grpc', 'address': '127.0.0.1:0', 'type': 'tcp', 'upstream': 'web',"
		"  'idle_timeout': '90s', 'max_connections': 50, 'max_connections_per_client': 0},"
		" {'name': 'minio', 'address': '127.0.0.1:0', 'type': 'tcp', 'upstream': 'minio:9000'}],"
		BASE "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		err, sizeof(err));

	(void)state;
	if (cfg == NULL)
		fprintf(stderr, "%s\n", err);
	assert_non_null(cfg);
	assert_int_equal(cfg->listeners[0].type, LISTENER_HTTP);
	assert_int_equal(cfg->listeners[1].type, LISTENER_TCP);
	assert_int_equal(cfg->listeners[1].nrelay_servers, 1);
	assert_string_equal(cfg->listeners[1].relay_servers[0].host, "127.0.0.1");
	assert_int_equal(cfg->listeners[1].relay_servers[0].port, 9);
	assert_true(cfg->listeners[1].idle_timeout == 90);
	assert_int_equal(cfg->listeners[1].max_connections, 50);
	assert_int_equal(cfg->listeners[1].max_connections_per_client, 0);
	assert_string_equal(cfg->listeners[2].relay_servers[0].host, "minio");
	assert_int_equal(cfg->listeners[2].relay_servers[0].port, 9000);
	assert_int_equal(cfg->listeners[2].max_connections_per_client, 100);
	config_unref(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_most_specific_wins),
		cmocka_unit_test(test_deny_only_and_ties),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_tcp_listener_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

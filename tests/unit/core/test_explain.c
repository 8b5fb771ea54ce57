/*
 * Unit tests for the decisions --explain shares with the live request path
 * (proxy/routing, proxy/fwdheaders, access_check_explain) and for
 * explain_run's verdicts and exit statuses.  Configs are loaded from JSON
 * strings; nothing is sent anywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "access/access.h"
#include "access/access_check.h"
#include "config/config.h"
#include "core/explain.h"
#include "proxy/fwdheaders.h"
#include "proxy/routing.h"

static const char *
no_env(const char *name)
{
	(void)name;
	return NULL;
}

/* Single quotes stand for double quotes. */
static const char CONFIG[] =
	"{'listeners': [{'name': 'web', 'address': '127.0.0.1:8080'},"
	"                {'name': 'inner', 'address': '127.0.0.1:8081', 'allow': ['10.0.0.0/8']}],"
	" 'upstreams': {'app': {'servers': ['127.0.0.1:9000', '127.0.0.1:9001']},"
	"               'api': {'servers': ['127.0.0.1:9100']}},"
	" 'sites': ["
	"  {'name': 'front', 'hosts': ['front.test'], 'routes': ["
	"    {'name': 'to-api', 'match': {'path': ['/api']}, 'strip_prefix': '/api', 'site': 'api',"
	"     'host': 'api.test', 'drop_cookies': true},"
	"    {'name': 'hello', 'match': {'path_exact': ['/hello']},"
	"     'respond': {'status': 200, 'body': 'hi'}},"
	"    {'name': 'admin', 'match': {'path': ['/admin']}, 'upstream': 'app',"
	"     'access': {'allow': ['192.0.2.0/24']}},"
	"    {'name': 'slow', 'match': {'path': ['/slow']}, 'upstream': 'app',"
	"     'access': {'rate': {'per_second': 1, 'burst': 1}}},"
	"    {'name': 'app', 'upstream': 'app',"
	"     'request_headers': {'set': {'X-Env': 'test'}, 'remove': ['X-Debug']}}]},"
	"  {'name': 'api', 'hosts': ['api.test'], 'routes': ["
	"    {'name': 'v1', 'match': {'path': ['/v1']}, 'upstream': 'api', 'host': 'upstream'}]}]}";

static struct config *
load(void)
{
	char *json = strdup(CONFIG);
	char err[4096];
	struct config *cfg;

	assert_non_null(json);
	for (char *p = json; *p; p++)
		if (*p == '\'')
			*p = '"';
	cfg = config_load_string(json, "explain-test.json", err, sizeof(err), no_env);
	free(json);
	if (cfg == NULL)
		fail_msg("config did not load: %s", err);
	return cfg;
}

static void
test_method_bits(void **state)
{
	(void)state;
	assert_int_equal(routing_method_bit("GET"), METHOD_GET);
	assert_int_equal(routing_method_bit("PATCH"), METHOD_PATCH);
	assert_int_equal(routing_method_bit("OPTIONS"), METHOD_OPTIONS);
	assert_int_equal(routing_method_bit("get"), 0);
	assert_int_equal(routing_method_bit("CONNECT"), 0);
	assert_int_equal(routing_method_bit("TRACE"), 0);
}

static void
test_routing_decide(void **state)
{
	struct config *cfg = load();
	struct routing_result rr;
	char host[256], fwd[64];

	(void)state;
	/* the site hop: strip, then the other site's route, its Host mode */
	assert_int_equal(routing_decide(cfg, 0, "FRONT.test:8080", true, "FRONT.test:8080",
					"/api/v1/x", METHOD_GET, host, sizeof(host), fwd,
					sizeof(fwd), &rr), 0);
	assert_string_equal(host, "front.test");
	assert_string_equal(rr.site->name, "front");
	assert_string_equal(rr.jump_route->name, "to-api");
	assert_string_equal(rr.route->name, "v1");
	assert_string_equal(fwd, "/v1/x");
	assert_null(rr.upstream_host); /* "host": "upstream" wins over the hop's fixed one */

	/* "keep": the client's Host as sent */
	assert_int_equal(routing_decide(cfg, 0, "front.test", true, "front.test", "/x", METHOD_GET,
					host, sizeof(host), fwd, sizeof(fwd), &rr), 0);
	assert_string_equal(rr.route->name, "app");
	assert_string_equal(rr.upstream_host, "front.test");

	/* refusals, with the live statuses */
	assert_int_equal(routing_decide(cfg, 0, "front.test", true, "front.test", "/api/v2",
					METHOD_GET, host, sizeof(host), fwd, sizeof(fwd), &rr), 404);
	assert_string_equal(rr.route->name, "to-api");
	assert_string_equal(rr.reason, "no route matches this path");
	assert_int_equal(routing_decide(cfg, 0, "nowhere.test", true, NULL, "/", METHOD_GET, host,
					sizeof(host), fwd, sizeof(fwd), &rr), 404);
	assert_null(rr.site);
	assert_int_equal(routing_decide(cfg, 0, "bad host", true, NULL, "/", METHOD_GET, host,
					sizeof(host), fwd, sizeof(fwd), &rr), 400);
	assert_true(rr.close);
	assert_int_equal(routing_decide(cfg, 0, NULL, true, NULL, "/", METHOD_GET, host,
					sizeof(host), fwd, sizeof(fwd), &rr), 400);
	/* a forwarded path that does not fit is refused, never cut */
	assert_int_equal(routing_decide(cfg, 0, "front.test", true, NULL, "/0123456789", METHOD_GET,
					host, sizeof(host), fwd, 8, &rr), 500);
	assert_int_equal(routing_builtin(cfg, 0, "/.well-known/acme-challenge/x", true),
			 ROUTING_BUILTIN_NONE); /* no tls.acme */
	config_unref(cfg);
}

static void
test_fwdheaders(void **state)
{
	struct config *cfg = load();
	const struct config_site *front = &cfg->sites[0];
	const struct config_route *jump = &front->routes[0], *app = &front->routes[4];
	struct headers_connection_list conn = {0};
	struct fwdheaders_rules r = {
		.cfg = cfg, .conn = &conn, .route_ops = &app->request_headers,
	};

	(void)state;
	headers_connection_parse("close, X-Secret", &conn);
	assert_null(fwdheaders_dropped(&r, "Accept"));
	assert_null(fwdheaders_dropped(&r, "Cookie"));
	assert_non_null(fwdheaders_dropped(&r, "Connection"));
	assert_non_null(fwdheaders_dropped(&r, "X-Forwarded-For"));
	assert_non_null(fwdheaders_dropped(&r, "x-forwarded-whatever"));
	assert_non_null(fwdheaders_dropped(&r, "X-Secret"));
	assert_non_null(fwdheaders_dropped(&r, "X_Auth_Email"));
	assert_non_null(fwdheaders_dropped(&r, "X-Env"));   /* the route sets it */
	assert_non_null(fwdheaders_dropped(&r, "x-debug")); /* the route removes it */
	r.jump_ops = &jump->request_headers;
	r.drop_cookies = jump->drop_cookies;
	assert_non_null(fwdheaders_dropped(&r, "cookie"));
	assert_null(fwdheaders_dropped(&r, "Sec-WebSocket-Key"));
	assert_non_null(fwdheaders_dropped(&r, "traceparent")); /* ours replaces it */
	assert_non_null(fwdheaders_dropped(&r, "tracestate"));
	r.trace_continued = true;
	assert_null(fwdheaders_dropped(&r, "tracestate"));
	r.ws_made_up_key = true;
	assert_non_null(fwdheaders_dropped(&r, "Sec-WebSocket-Key"));
	config_unref(cfg);
}

static void
test_access_explain_has_no_side_effect(void **state)
{
	struct config *cfg = load();
	const struct config_route *admin = &cfg->sites[0].routes[2], *slow = &cfg->sites[0].routes[3];
	const struct access_block *rates[2];
	struct access_outcome out;
	size_t n;

	(void)state;
	assert_int_equal(access_check_explain(cfg, 0, NULL, admin, "198.51.100.1", &out, rates, &n),
			 403);
	assert_non_null(strstr(out.rule, "access.allow"));
	assert_int_equal(access_check_explain(cfg, 0, NULL, admin, "192.0.2.9", &out, rates, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(access_check_explain(cfg, 1, NULL, admin, "192.0.2.9", &out, rates, &n),
			 403); /* the listener's own allow list first */
	/* burst 1: explaining many times takes no token, the live check still passes once */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(access_check_explain(cfg, 0, NULL, slow, "192.0.2.9", &out, rates, &n),
				 0);
		assert_int_equal(n, 1);
		assert_true(rates[0]->rate == 1.0);
	}
	assert_int_equal(access_check_request(cfg, 0, NULL, slow, "192.0.2.9", &out), 0);
	assert_int_equal(access_check_request(cfg, 0, NULL, slow, "192.0.2.9", &out), 429);
	config_unref(cfg);
}

/* explain_run's JSON for <request> (and <from>), its exit status in *status. */
static json_t *
explain_json(const struct config *cfg, const char *request, const char *from, int *status)
{
	struct explain_request req = {.request = request, .from = from, .json = true};
	char *buf = NULL, err[256];
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	json_t *doc;

	assert_non_null(out);
	*status = explain_run(cfg, &req, out, err, sizeof(err));
	fclose(out);
	doc = json_loadb(buf, len, 0, NULL);
	free(buf);
	return doc;
}

static const char *
step_verdict(json_t *doc, const char *name)
{
	size_t i;
	json_t *step;

	json_array_foreach(json_object_get(doc, "steps"), i, step)
		if (strcmp(json_string_value(json_object_get(step, "step")), name) == 0)
			return json_string_value(json_object_get(step, "verdict"));
	return NULL;
}

static void
test_explain_run(void **state)
{
	struct config *cfg = load();
	struct explain_request bad = {.request = "GET /relative"};
	char err[256];
	json_t *doc;
	int status;

	(void)state;
	doc = explain_json(cfg, "GET http://front.test:8080/api/v1/x?q=1", NULL, &status);
	assert_int_equal(status, EXPLAIN_FORWARDED);
	assert_string_equal(step_verdict(doc, "route"), "matched");
	assert_string_equal(step_verdict(doc, "upstream"), "chosen");
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "outcome"),
							      "verdict")), "forwarded");
	json_decref(doc);

	doc = explain_json(cfg, "GET http://front.test:8080/hello", NULL, &status);
	assert_int_equal(status, EXPLAIN_ANSWERED);
	json_decref(doc);

	doc = explain_json(cfg, "GET http://front.test:8080/admin", "198.51.100.1", &status);
	assert_int_equal(status, EXPLAIN_REFUSED);
	assert_string_equal(step_verdict(doc, "access"), "denied");
	json_decref(doc);

	doc = explain_json(cfg, "GET http://front.test:8080/a/%2F/b", NULL, &status);
	assert_int_equal(status, EXPLAIN_REFUSED);
	assert_string_equal(step_verdict(doc, "path"), "refused");
	json_decref(doc);

	/* a raw byte that is not UTF-8: refused, and the JSON stays valid */
	doc = explain_json(cfg, "GET http://front.test:8080/caf\xc3", NULL, &status);
	assert_non_null(doc);
	assert_int_equal(status, EXPLAIN_REFUSED);
	assert_string_equal(step_verdict(doc, "path"), "refused");
	json_decref(doc);

	doc = explain_json(cfg, "GET http://front.test:9999/", NULL, &status);
	assert_int_equal(status, EXPLAIN_REFUSED);
	assert_string_equal(step_verdict(doc, "listener"), "none");
	json_decref(doc);

	doc = explain_json(cfg, "TRACE http://front.test:8080/", NULL, &status);
	assert_int_equal(status, EXPLAIN_REFUSED);
	json_decref(doc);

	/* usage errors */
	assert_int_equal(explain_run(cfg, &bad, stdout, err, sizeof(err)), -1);
	bad.request = "GET";
	assert_int_equal(explain_run(cfg, &bad, stdout, err, sizeof(err)), -1);
	bad.request = "GET http://front.test:8080/";
	bad.from = "not-an-address";
	assert_int_equal(explain_run(cfg, &bad, stdout, err, sizeof(err)), -1);
	bad.from = NULL;
	bad.listener = "nope";
	assert_int_equal(explain_run(cfg, &bad, stdout, err, sizeof(err)), -1);
	config_unref(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_method_bits),
		cmocka_unit_test(test_routing_decide),
		cmocka_unit_test(test_fwdheaders),
		cmocka_unit_test(test_access_explain_has_no_side_effect),
		cmocka_unit_test(test_explain_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

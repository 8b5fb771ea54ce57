/*
 * Unit tests for config: valid files load into the expected struct, and
 * every class of error is reported with its JSON path and a useful message.
 *
 * JSON in this file is written with single quotes for readability; load()
 * turns them into double quotes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "access/ipacl.h"
#include "idp_metadata.h"

#define MINIMAL_REST                                                                      \
	"'upstreams': {'web': {'servers': ['127.0.0.1:8000']}},"                          \
	"'sites': [{'routes': [{'upstream': 'web'}]}]"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

/* A fake environment set per test: pairs of name, value. */
static const char *const *fake_env;

static const char *
fake_getenv(const char *name)
{
	for (size_t i = 0; fake_env != NULL && fake_env[i] != NULL; i += 2)
		if (strcmp(fake_env[i], name) == 0)
			return fake_env[i + 1];
	return NULL;
}

static const char *
null_getenv(const char *name)
{
	(void)name;
	return NULL;
}

static char errbuf[16384];

/* Load <q> (single-quoted JSON) with fake_getenv. */
static struct config *
load(const char *q)
{
	char *json = strdup(q);
	struct config *cfg;

	assert_non_null(json);
	for (char *p = json; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	memset(errbuf, 'x', sizeof errbuf);
	cfg = config_load_string(json, "test.json", errbuf, sizeof errbuf, fake_getenv);
	free(json);
	return cfg;
}

/* Load <q>, which must succeed. */
static struct config *
load_ok(const char *q)
{
	struct config *cfg = load(q);

	if (cfg == NULL)
		fail_msg("config did not load:\n%s", errbuf);
	assert_string_equal(errbuf, "");
	return cfg;
}

/* True when a line of errbuf starts with <prefix> and contains every word
 * of the NULL-terminated list. */
static bool
has_error_line(const char *prefix, va_list words)
{
	const char *line = errbuf;

	while (line != NULL && *line != '\0') {
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		char buf[2048];
		bool all = true;
		va_list ap;

		snprintf(buf, sizeof buf, "%.*s", (int)len, line);
		if (strncmp(buf, prefix, strlen(prefix)) == 0) {
			const char *w;
			va_copy(ap, words);
			while ((w = va_arg(ap, const char *)) != NULL)
				if (strstr(buf + strlen(prefix), w) == NULL)
					all = false;
			va_end(ap);
			if (all)
				return true;
		}
		line = end != NULL ? end + 1 : NULL;
	}
	return false;
}

/* True when errbuf has a line starting with <prefix> with all the words. */
static bool
err_line(const char *prefix, ...)
{
	va_list ap;
	bool found;

	va_start(ap, prefix);
	found = has_error_line(prefix, ap);
	va_end(ap);
	return found;
}

/* Load <q>, which must fail with an error line starting with <prefix> and
 * containing every following word (NULL-terminated). */
static void
expect_error(const char *q, const char *prefix, ...)
{
	struct config *cfg = load(q);
	va_list ap;
	bool found;

	if (cfg != NULL) {
		config_unref(cfg);
		fail_msg("config loaded but should fail with \"%s ...\"", prefix);
	}
	va_start(ap, prefix);
	found = has_error_line(prefix, ap);
	va_end(ap);
	if (!found)
		fail_msg("no error line \"%s ...\" with the expected words in:\n%s", prefix, errbuf);
}

static size_t
count_lines(const char *s)
{
	size_t n = s[0] != '\0';

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static const struct config_route *
find_route(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			if (strcmp(cfg->sites[i].routes[j].name, name) == 0)
				return &cfg->sites[i].routes[j];
	fail_msg("no route %s", name);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Valid configurations                                                 */

static void
test_minimal_defaults(void **state)
{
	struct config *cfg;
	const struct config_upstream *u;
	const struct config_route *r;

	(void)state;
	fake_env = NULL;
	cfg = load_ok("{'listeners': [{'address': ':0'}]," MINIMAL_REST "}");
	assert_int_equal(atomic_load(&cfg->refs), 1);
	assert_string_equal(cfg->source, "test.json");
	assert_int_equal(cfg->nlisteners, 1);
	assert_string_equal(cfg->listeners[0].name, "listeners[0]");
	assert_string_equal(cfg->listeners[0].address, ":0");
	assert_string_equal(cfg->listeners[0].host, "");
	assert_string_equal(cfg->listeners[0].port, "0");
	assert_null(cfg->admin);
	assert_true(cfg->workers >= 1);
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_string_equal(cfg->access_log, "stdout");
	assert_int_equal(cfg->max_request_header_bytes, 65536);
	assert_int_equal(cfg->max_response_header_bytes, 65536);
	assert_int_equal(cfg->max_body_bytes, 64 * 1024 * 1024);
	assert_int_equal(cfg->body_memory_budget, 1024ULL * 1024 * 1024);
	assert_true(cfg->connect_timeout == 5);
	assert_true(cfg->upstream_response_timeout == 60);
	assert_true(cfg->upstream_idle_timeout == 4);
	assert_true(cfg->client_timeout == 30);
	assert_true(cfg->drain_timeout == 30);
	assert_int_equal(cfg->ntrusted_proxies, 0);
	assert_non_null(cfg->trusted);
	assert_int_equal(ipacl_size(cfg->trusted), 0);

	assert_int_equal(cfg->nupstreams, 1);
	u = &cfg->upstreams[0];
	assert_string_equal(u->name, "web");
	assert_int_equal(u->index, 0);
	assert_int_equal(u->nservers, 1);
	assert_string_equal(u->servers[0].address, "127.0.0.1:8000");
	assert_string_equal(u->servers[0].host, "127.0.0.1");
	assert_int_equal(u->servers[0].port, 8000);
	assert_int_equal(u->balance, BALANCE_ROUND_ROBIN);
	assert_int_equal(u->max_idle, 64);
	assert_int_equal(u->max_fails, 1);
	assert_true(u->fail_timeout == 10);
	assert_true(u->connect_timeout == 5);
	assert_true(u->response_timeout == 60);
	assert_true(u->idle_timeout == 4);
	assert_ptr_equal(config_find_upstream(cfg, "web"), u);
	assert_null(config_find_upstream(cfg, "nope"));

	assert_int_equal(cfg->nsites, 1);
	assert_string_equal(cfg->sites[0].name, "default");
	assert_int_equal(cfg->sites[0].nhosts, 0);
	assert_true(cfg->sites[0].is_default);
	assert_ptr_equal(cfg->default_site, &cfg->sites[0]);
	assert_int_equal(cfg->nroutes_total, 1);
	r = &cfg->sites[0].routes[0];
	assert_string_equal(r->name, "default#0");
	assert_int_equal(r->index, 0);
	assert_int_equal(r->action, ACTION_PROXY);
	assert_ptr_equal(r->upstream, u);
	assert_int_equal(r->npaths + r->nexact + r->nprefixes, 0);
	assert_int_equal(r->methods, 0);
	assert_int_equal(r->host_mode, HOST_KEEP);
	assert_null(r->strip_prefix);
	assert_int_equal(r->max_body_bytes, 64 * 1024 * 1024);
	assert_false(r->drop_cookies);
	assert_int_equal(r->request_headers.nset + r->request_headers.nadd +
				 r->request_headers.nremove,
			 0);

	assert_ptr_equal(config_ref(cfg), cfg);
	assert_int_equal(atomic_load(&cfg->refs), 2);
	config_unref(cfg);
	assert_int_equal(atomic_load(&cfg->refs), 1);
	config_unref(cfg);
	config_unref(NULL);
}

static const char full_config[] =
	"{"
	"'listeners': [{'name': 'http', 'address': '0.0.0.0:8080'},"
	"              {'address': '[::1]:0'}, {'address': 'localhost:0'}, {'address': '[::]:443'}],"
	"'admin': {'address': '127.0.0.1:9901'},"
	"'workers': 3,"
	"'log': {'level': 'debug', 'access_log': '/var/log/portcullis.log'},"
	"'limits': {'max_request_header_bytes': '32KiB', 'max_response_header_bytes': 1048576,"
	"           'max_body_bytes': '100MiB', 'body_memory_budget': '2GiB'},"
	"'timeouts': {'connect': '500ms', 'upstream_response': '2m', 'upstream_idle': '1h',"
	"             'client': 12.5, 'drain': '7'},"
	"'trusted_proxies': ['10.1.1.0/24', '::1'],"
	"'upstreams': {"
	"  'api': {'servers': ['api-1:9000', '[::1]:9001'], 'balance': 'least_conn', 'max_idle': 0,"
	"          'max_fails': 3, 'fail_timeout': '30s', 'connect_timeout': 2,"
	"          'response_timeout': '1h', 'idle_timeout': 15},"
	"  'static': {'servers': ['static:80']}},"
	"'sites': ["
	"  {'name': 'main', 'hosts': ['Example.COM', '*.example.com'], 'routes': ["
	"    {'name': 'api', 'match': {'path': ['/api', '/api/v2/'], 'path_exact': ['/api/exact'],"
	"                               'path_prefix': ['/apix'], 'methods': ['GET', 'POST', 'OPTIONS']},"
	"     'upstream': 'api', 'strip_prefix': '/api', 'host': 'upstream',"
	"     'request_headers': {'set': {'X-A': '1', 'X-B': '2'}, 'add': {'X-C': '3'},"
	"                          'remove': ['X-Drop']},"
	"     'response_headers': {'set': {'Strict-Transport-Security': 'max-age=60'},"
	"                          'remove': ['Server']},"
	"     'max_body_bytes': '1MiB', 'drop_cookies': 'true'},"
	"    {'name': 'hello', 'match': {'path_exact': ['/hello']},"
	"     'respond': {'status': 418, 'body': 'teapot', 'content_type': 'text/html'}},"
	"    {'name': 'empty', 'match': {'path_exact': ['/empty']}, 'respond': {}},"
	"    {'name': 'old', 'match': {'path_prefix': ['/old']},"
	"     'redirect': {'to': 'https://new.example.com/x', 'status': 308, 'keep_path': true}},"
	"    {'name': 'rel', 'match': {'path': ['/rel']}, 'redirect': {'to': '/elsewhere'}},"
	"    {'name': 'to-static', 'match': {'path': ['/assets/img']}, 'strip_prefix': '/assets',"
	"     'site': 'static', 'host': 'static.internal:8080'}"
	"  ]},"
	"  {'name': 'static', 'hosts': ['static.example.org'], 'default': true, 'routes': ["
	"    {'upstream': 'static'}]}"
	"]}";

static void
test_full_config(void **state)
{
	struct config *cfg;
	const struct config_route *r;
	const struct config_upstream *api;

	(void)state;
	fake_env = NULL;
	cfg = load_ok(full_config);

	assert_int_equal(cfg->nlisteners, 4);
	assert_string_equal(cfg->listeners[0].name, "http");
	assert_string_equal(cfg->listeners[0].host, "0.0.0.0");
	assert_string_equal(cfg->listeners[0].port, "8080");
	assert_string_equal(cfg->listeners[1].name, "listeners[1]");
	assert_string_equal(cfg->listeners[1].host, "::1");
	assert_string_equal(cfg->listeners[2].host, "localhost");
	assert_string_equal(cfg->listeners[3].host, "::");
	assert_string_equal(cfg->listeners[3].port, "443");
	assert_non_null(cfg->admin);
	assert_string_equal(cfg->admin->name, "admin");
	assert_string_equal(cfg->admin->host, "127.0.0.1");
	assert_string_equal(cfg->admin->port, "9901");
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(cfg->access_log, "/var/log/portcullis.log");
	assert_int_equal(cfg->max_request_header_bytes, 32768);
	assert_int_equal(cfg->max_response_header_bytes, 1048576);
	assert_int_equal(cfg->max_body_bytes, 100 * 1024 * 1024);
	assert_int_equal(cfg->body_memory_budget, 2ULL * 1024 * 1024 * 1024);
	assert_true(cfg->connect_timeout == 0.5);
	assert_true(cfg->upstream_response_timeout == 120);
	assert_true(cfg->upstream_idle_timeout == 3600);
	assert_true(cfg->client_timeout == 12.5);
	assert_true(cfg->drain_timeout == 7);
	assert_int_equal(cfg->ntrusted_proxies, 2);
	assert_string_equal(cfg->trusted_proxies[0], "10.1.1.0/24");
	assert_true(ipacl_contains_str(cfg->trusted, "10.1.1.77"));
	assert_true(ipacl_contains_str(cfg->trusted, "::1"));
	assert_false(ipacl_contains_str(cfg->trusted, "10.1.2.1"));

	assert_int_equal(cfg->nupstreams, 2);
	api = config_find_upstream(cfg, "api");
	assert_non_null(api);
	assert_int_equal(api->index, 0);
	assert_int_equal(config_find_upstream(cfg, "static")->index, 1);
	assert_int_equal(api->nservers, 2);
	assert_string_equal(api->servers[0].host, "api-1");
	assert_int_equal(api->servers[0].port, 9000);
	assert_string_equal(api->servers[1].address, "[::1]:9001");
	assert_string_equal(api->servers[1].host, "::1");
	assert_int_equal(api->servers[1].port, 9001);
	assert_int_equal(api->balance, BALANCE_LEAST_CONN);
	assert_int_equal(api->max_idle, 0);
	assert_int_equal(api->max_fails, 3);
	assert_true(api->fail_timeout == 30);
	assert_true(api->connect_timeout == 2);
	assert_true(api->response_timeout == 3600);
	assert_true(api->idle_timeout == 15);
	/* Upstream timeouts default to the global ones. */
	assert_true(config_find_upstream(cfg, "static")->connect_timeout == 0.5);
	assert_true(config_find_upstream(cfg, "static")->idle_timeout == 3600);

	assert_int_equal(cfg->nsites, 2);
	assert_string_equal(cfg->sites[0].name, "main");
	assert_int_equal(cfg->sites[0].nhosts, 2);
	assert_string_equal(cfg->sites[0].hosts[0], "example.com");
	assert_string_equal(cfg->sites[0].hosts[1], "*.example.com");
	assert_false(cfg->sites[0].is_default);
	assert_true(cfg->sites[1].is_default);
	assert_ptr_equal(cfg->default_site, &cfg->sites[1]);
	assert_int_equal(cfg->nroutes_total, 7);
	assert_string_equal(cfg->sites[1].routes[0].name, "static#0");
	assert_int_equal(cfg->sites[1].routes[0].index, 6);

	r = find_route(cfg, "api");
	assert_int_equal(r->index, 0);
	assert_int_equal(r->action, ACTION_PROXY);
	assert_ptr_equal(r->upstream, api);
	assert_int_equal(r->npaths, 2);
	assert_string_equal(r->paths[0], "/api");
	assert_string_equal(r->paths[1], "/api/v2/");
	assert_int_equal(r->nexact, 1);
	assert_string_equal(r->exact[0], "/api/exact");
	assert_int_equal(r->nprefixes, 1);
	assert_string_equal(r->prefixes[0], "/apix");
	assert_int_equal(r->methods, METHOD_GET | METHOD_POST | METHOD_OPTIONS);
	assert_string_equal(r->strip_prefix, "/api");
	assert_int_equal(r->host_mode, HOST_UPSTREAM);
	assert_int_equal(r->request_headers.nset, 2);
	assert_string_equal(r->request_headers.set[0].name, "X-A");
	assert_string_equal(r->request_headers.set[0].value, "1");
	assert_string_equal(r->request_headers.set[1].name, "X-B");
	assert_int_equal(r->request_headers.nadd, 1);
	assert_string_equal(r->request_headers.add[0].name, "X-C");
	assert_int_equal(r->request_headers.nremove, 1);
	assert_string_equal(r->request_headers.remove[0], "X-Drop");
	assert_int_equal(r->response_headers.nset, 1);
	assert_string_equal(r->response_headers.set[0].value, "max-age=60");
	assert_string_equal(r->response_headers.remove[0], "Server");
	assert_int_equal(r->max_body_bytes, 1024 * 1024);
	assert_true(r->drop_cookies);

	r = find_route(cfg, "hello");
	assert_int_equal(r->action, ACTION_RESPOND);
	assert_int_equal(r->status, 418);
	assert_string_equal(r->body, "teapot");
	assert_string_equal(r->content_type, "text/html");
	assert_int_equal(r->max_body_bytes, 100 * 1024 * 1024);

	r = find_route(cfg, "empty");
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "");
	assert_string_equal(r->content_type, "text/plain; charset=utf-8");

	r = find_route(cfg, "old");
	assert_int_equal(r->action, ACTION_REDIRECT);
	assert_int_equal(r->status, 308);
	assert_string_equal(r->redirect_to, "https://new.example.com/x");
	assert_true(r->redirect_keep_path);
	r = find_route(cfg, "rel");
	assert_int_equal(r->status, 302);
	assert_string_equal(r->redirect_to, "/elsewhere");
	assert_false(r->redirect_keep_path);

	r = find_route(cfg, "to-static");
	assert_int_equal(r->index, 5);
	assert_int_equal(r->action, ACTION_SITE);
	assert_ptr_equal(r->site, &cfg->sites[1]);
	assert_null(r->upstream);
	assert_string_equal(r->strip_prefix, "/assets");
	assert_int_equal(r->host_mode, HOST_FIXED);
	assert_string_equal(r->host, "static.internal:8080");
	config_unref(cfg);
}

static void
test_default_site_rules(void **state)
{
	struct config *cfg;

	(void)state;
	fake_env = NULL;
	/* Two sites without hosts, none marked: no default. */
	cfg = load_ok("{'listeners': [{'address': ':0'}],"
		      "'upstreams': {'web': {'servers': ['web:1']}},"
		      "'sites': [{'name': 'a', 'routes': [{'upstream': 'web'}]},"
		      "          {'name': 'b', 'routes': [{'upstream': 'web'}]}]}");
	assert_null(cfg->default_site);
	assert_false(cfg->sites[0].is_default);
	config_unref(cfg);
	/* Every site has hosts: no default. */
	cfg = load_ok("{'listeners': [{'address': ':0'}],"
		      "'upstreams': {'web': {'servers': ['web:1']}},"
		      "'sites': [{'hosts': ['a.test'], 'routes': [{'upstream': 'web'}]}]}");
	assert_null(cfg->default_site);
	assert_string_equal(cfg->sites[0].name, "a.test");
	assert_string_equal(cfg->sites[0].routes[0].name, "a.test#0");
	config_unref(cfg);
	/* "default": true wins over a hostless site. */
	cfg = load_ok("{'listeners': [{'address': ':0'}],"
		      "'upstreams': {'web': {'servers': ['web:1']}},"
		      "'sites': [{'name': 'a', 'routes': [{'upstream': 'web'}]},"
		      "          {'hosts': ['b.test'], 'default': 'true', 'routes': [{'upstream': 'web'}]}]}");
	assert_ptr_equal(cfg->default_site, &cfg->sites[1]);
	assert_false(cfg->sites[0].is_default);
	config_unref(cfg);
	/* "admin": null means no admin listener; empty upstreams are fine. */
	cfg = load_ok("{'listeners': [{'address': ':0'}], 'admin': null, 'upstreams': {},"
		      "'sites': [{'routes': [{'respond': {'body': 'ok'}}]}]}");
	assert_null(cfg->admin);
	assert_int_equal(cfg->nupstreams, 0);
	config_unref(cfg);
}

/* ------------------------------------------------------------------ */
/* Environment substitution and numbers as strings                      */

static void
test_env_substitution(void **state)
{
	static const char *const env[] = {
		"LISTEN", "127.0.0.1:0", "DOMAIN", "App.Example.com", "MAX_BODY", "8MiB",
		"COOKIES", "true", "WORKERS", "2", "TOKEN", "s3cret", "EMPTY", "", NULL,
	};
	struct config *cfg;
	const struct config_route *r;

	(void)state;
	fake_env = env;
	cfg = load_ok("{'listeners': [{'address': '${LISTEN}'}], 'workers': '${WORKERS}',"
		      "'limits': {'max_body_bytes': '${MAX_BODY:-64MiB}'},"
		      "'timeouts': {'client': '${CLIENT_TIMEOUT:-45}'},"
		      "'upstreams': {'web': {'servers': ['${WEB:-web:8000}']}},"
		      "'sites': [{'hosts': ['${DOMAIN}'], 'routes': [{'upstream': '${UP:-web}',"
		      "  'drop_cookies': '${COOKIES}', 'max_body_bytes': '${ROUTE_MAX:-1KiB}',"
		      "  'request_headers': {'set': {'X-Token': 'Bearer ${TOKEN}', 'X-Cost': '$$5'}},"
		      "  'host': '${EMPTY:-fixed.example}'}]}]}");
	assert_string_equal(cfg->listeners[0].address, "127.0.0.1:0");
	assert_string_equal(cfg->listeners[0].host, "127.0.0.1");
	assert_int_equal(cfg->workers, 2);
	assert_int_equal(cfg->max_body_bytes, 8 * 1024 * 1024);
	assert_true(cfg->client_timeout == 45);
	assert_string_equal(cfg->upstreams[0].servers[0].host, "web");
	assert_string_equal(cfg->sites[0].hosts[0], "app.example.com");
	r = &cfg->sites[0].routes[0];
	assert_ptr_equal(r->upstream, &cfg->upstreams[0]);
	assert_true(r->drop_cookies);
	assert_int_equal(r->max_body_bytes, 1024);
	assert_string_equal(r->request_headers.set[0].value, "Bearer s3cret");
	assert_string_equal(r->request_headers.set[1].value, "$5");
	assert_string_equal(r->host, "fixed.example");
	config_unref(cfg);

	fake_env = NULL;
	expect_error("{'listeners': [{'address': ':0'}]," MINIMAL_REST ","
		     "'trusted_proxies': ['${PROXY_NET}']}",
		     "trusted_proxies[0]: ", "environment variable PROXY_NET is not set",
		     "${PROXY_NET:-value}", NULL);
	expect_error("{'listeners': [{'address': '${BAD'}]," MINIMAL_REST "}",
		     "listeners[0].address: ", "unterminated ${", NULL);
	/* Header names (object keys) are not substituted. */
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': [{'upstream': 'web',"
		     "  'request_headers': {'add': {'X-${NAME}': 'v'}}}]}]}",
		     "sites[0].routes[0].request_headers.add.X-${NAME}: ", "not a valid header name",
		     NULL);
}

static void
test_numbers_as_strings(void **state)
{
	struct config *cfg;

	(void)state;
	fake_env = NULL;
	cfg = load_ok("{'listeners': [{'address': ':0'}], 'workers': '4',"
		      "'limits': {'max_request_header_bytes': '1.5KiB', 'max_response_header_bytes': '1MiB',"
		      "           'max_body_bytes': '2 GiB', 'body_memory_budget': 4294967296.0},"
		      "'timeouts': {'connect': '1.5', 'upstream_response': '250ms', 'drain': '0.5h'},"
		      "'upstreams': {'web': {'servers': ['w:1'], 'max_idle': '10', 'max_fails': 2.0}},"
		      "'sites': [{'routes': [{'respond': {'status': '204'}}]}]}");
	assert_int_equal(cfg->workers, 4);
	assert_int_equal(cfg->max_request_header_bytes, 1536);
	assert_int_equal(cfg->max_response_header_bytes, 1048576);
	assert_int_equal(cfg->max_body_bytes, 2ULL * 1024 * 1024 * 1024);
	assert_int_equal(cfg->body_memory_budget, 4ULL * 1024 * 1024 * 1024);
	assert_true(cfg->connect_timeout == 1.5);
	assert_true(cfg->upstream_response_timeout == 0.25);
	assert_true(cfg->drain_timeout == 1800);
	assert_int_equal(cfg->upstreams[0].max_idle, 10);
	assert_int_equal(cfg->upstreams[0].max_fails, 2);
	assert_int_equal(cfg->sites[0].routes[0].status, 204);
	config_unref(cfg);

	expect_error("{'listeners': [{'address': ':0'}], 'workers': 'four'," MINIMAL_REST "}",
		     "workers: ", "\"four\" is not a whole number", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'workers': 1.5," MINIMAL_REST "}",
		     "workers: ", "whole number", "1.5", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'workers': '1.5'," MINIMAL_REST "}",
		     "workers: ", "not a whole number", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'workers': 257," MINIMAL_REST "}",
		     "workers: ", "257 is out of range (0 to 256)", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'workers': -1," MINIMAL_REST "}",
		     "workers: ", "must not be negative", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'workers': true," MINIMAL_REST "}",
		     "workers: ", "expected an integer", "found true", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'limits': {'max_body_bytes': '64MB'},"
		     MINIMAL_REST "}",
		     "limits.max_body_bytes: ", "\"64MB\" is not a byte size", "KiB, MiB or GiB", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'limits': {'max_body_bytes': '0.3KiB'},"
		     MINIMAL_REST "}",
		     "limits.max_body_bytes: ", "not a whole number of bytes", NULL);
	expect_error("{'listeners': [{'address': ':0'}],"
		     "'limits': {'max_request_header_bytes': 512}," MINIMAL_REST "}",
		     "limits.max_request_header_bytes: ", "out of range", "1 KiB to 1 MiB", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'limits': {'max_body_bytes': '2GiB'},"
		     MINIMAL_REST "}",
		     "limits.body_memory_budget: ", "less than limits.max_body_bytes", "2 GiB", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'timeouts': {'connect': 0}," MINIMAL_REST
		     "}",
		     "timeouts.connect: ", "out of range", "more than 0", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'timeouts': {'client': '5 minutes'},"
		     MINIMAL_REST "}",
		     "timeouts.client: ", "not a duration", "ms, s, m or h", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'timeouts': {'drain': [1]}," MINIMAL_REST
		     "}",
		     "timeouts.drain: ", "expected a duration", "found an array", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'default': 'yes', 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].default: ", "\"yes\" is not a boolean", NULL);
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */

static void
test_syntax_and_file_errors(void **state)
{
	struct config *cfg;
	char err[512];

	(void)state;
	fake_env = NULL;
	expect_error("{'listeners': [}", "test.json:1:", NULL);
	assert_non_null(strstr(errbuf, "test.json:1:16: "));
	expect_error("{'workers': 1,\n 'workers': 2}", "test.json:2:", "duplicate", NULL);
	expect_error("[1, 2]", "test.json: ", "top level must be an object", "found an array",
		     NULL);

	cfg = config_load_file("/nonexistent/portcullis.json", err, sizeof err, null_getenv);
	assert_null(cfg);
	assert_string_equal(err, "/nonexistent/portcullis.json: cannot open: No such file or "
				 "directory");
}

static void
test_unknown_keys(void **state)
{
	(void)state;
	fake_env = NULL;
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'rotues': [], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].rotues: ", "unknown key; did you mean \"routes\"?",
		     "(allowed: name, hosts, default, routes, access, hsts, listeners, require, "
		     "identity_assertion, step_up, client_certificates, compress)", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'wrokers': 2," MINIMAL_REST "}",
		     "wrokers: ", "did you mean \"workers\"?", NULL);
	expect_error("{'listeners': [{'address': ':0', 'tls': true}]," MINIMAL_REST "}",
		     "listeners[0].tls: ", "no \"tls\" block", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1'],"
		     "'balanse': 'least_conn'}}, 'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "upstreams.web.balanse: ", "did you mean \"balance\"?", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': [{'upstream': 'web', 'match': {'paths': ['/a']}}]}]}",
		     "sites[0].routes[0].match.paths: ", "did you mean \"path\"?", NULL);
}

static void
test_type_and_missing_errors(void **state)
{
	(void)state;
	fake_env = NULL;
	expect_error("{" MINIMAL_REST "}", "test.json: ", "missing \"listeners\"", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'sites': [{'routes': [{'respond': {}}]}]}",
		     "test.json: ", "missing \"upstreams\"", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {}}", "test.json: ",
		     "missing \"sites\"", NULL);
	expect_error("{'listeners': {}," MINIMAL_REST "}", "listeners: ",
		     "expected an array of listeners, found an object", NULL);
	expect_error("{'listeners': []," MINIMAL_REST "}", "listeners: ", "must not be empty",
		     NULL);
	expect_error("{'listeners': [{'name': 'x'}]," MINIMAL_REST "}", "listeners[0]: ",
		     "missing \"address\"", NULL);
	expect_error("{'listeners': [{'address': 80}]," MINIMAL_REST "}", "listeners[0].address: ",
		     "expected a string, found an integer", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': [{'upstream': 'web'}]}, {'hosts': ['b.test']}]}",
		     "sites[1]: ", "missing \"routes\" (an array of routes)", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': [{'upstream': 5}]}]}",
		     "sites[0].routes[0].upstream: ", "expected a string, found an integer", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': [{'upstream': 'web'}]}], 'log': {'level': 'verbose'}}",
		     "log.level: ", "\"verbose\" is not one of: debug, info, warn, error", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': [{'upstream': 'web'}]}], 'log': {'access_log': ''}}",
		     "log.access_log: ", "empty", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'name': 'a\\u0000b', 'routes': [{'upstream': 'web'}]}]}",
		     "test.json:1:", "\\u0000 is not allowed", NULL);
	expect_error("{'listeners': [{'address': ':0'}]," MINIMAL_REST ","
		     "'trusted_proxies': ['10.0.0.0/33']}",
		     "trusted_proxies: ", "10.0.0.0/33", NULL);
}

static void
test_listener_errors(void **state)
{
	struct config *cfg;

	(void)state;
	fake_env = NULL;
	expect_error("{'listeners': [{'address': ':8080'}, {'address': ':8080'}]," MINIMAL_REST "}",
		     "listeners[1].address: ", "\":8080\" is already used by listeners[0]", NULL);
	expect_error("{'listeners': [{'address': '127.0.0.1:9901'}],"
		     "'admin': {'address': '127.0.0.1:9901'}," MINIMAL_REST "}",
		     "admin.address: ", "already used by listeners[0]", NULL);
	expect_error("{'listeners': [{'address': '::1:80'}]," MINIMAL_REST "}",
		     "listeners[0].address: ", "IPv6 address needs brackets", NULL);
	expect_error("{'listeners': [{'address': 'localhost'}]," MINIMAL_REST "}",
		     "listeners[0].address: ", "missing port", NULL);
	expect_error("{'listeners': [{'address': ':65536'}]," MINIMAL_REST "}",
		     "listeners[0].address: ", "port \"65536\" is not a number from 0 to 65535",
		     NULL);
	expect_error("{'listeners': [{'address': '[::1:80'}]," MINIMAL_REST "}",
		     "listeners[0].address: ", "missing \"]\"", NULL);
	expect_error("{'listeners': [{'address': '[fe80::zz]:80'}]," MINIMAL_REST "}",
		     "listeners[0].address: ", "is not an IPv6 address", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'admin': 'localhost:1'," MINIMAL_REST "}",
		     "admin: ", "expected an object, found a string", NULL);
	/* Port 0 twice is two different ports. */
	cfg = load_ok("{'listeners': [{'address': '127.0.0.1:0'}, {'address': '127.0.0.1:0'}],"
		      MINIMAL_REST "}");
	assert_int_equal(cfg->nlisteners, 2);
	config_unref(cfg);
}

static void
test_split_hostport(void **state)
{
	static const struct {
		const char *in, *host, *port;
	} ok[] = {
		{ ":80", "", "80" },	       { "0.0.0.0:8080", "0.0.0.0", "8080" },
		{ "127.0.0.1:0", "127.0.0.1", "0" }, { "[::1]:0", "::1", "0" },
		{ "[::]:443", "::", "443" },	     { "localhost:0", "localhost", "0" },
		{ "web:08000", "web", "8000" },
	};
	static const char *const bad[] = { "",	     "80",	   "host:",    "host:x1",
					   "::1:80", "[::1]80",	   "[::1]",    "[zz]:1",
					   "a b:80", "host:99999", "host:-1" };
	char err[256];
	char *host, *port;

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(config_split_hostport(ok[i].in, &host, &port, err, sizeof err), 0);
		assert_string_equal(host, ok[i].host);
		assert_string_equal(port, ok[i].port);
		free(host);
		free(port);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (config_split_hostport(bad[i], &host, &port, err, sizeof err) != -1)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_null(host);
		assert_null(port);
		assert_true(strlen(err) > 0);
	}
}

static void
test_upstream_errors(void **state)
{
	(void)state;
	fake_env = NULL;
#define UP_ERR(ups, prefix, ...)                                                           \
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {" ups "},"          \
		     "'sites': [{'routes': [{'respond': {}}]}]}",                             \
		     prefix, __VA_ARGS__, NULL)
	UP_ERR("'web': {}", "upstreams.web: ", "missing \"servers\"");
	UP_ERR("'web': {'servers': []}", "upstreams.web.servers: ", "must not be empty");
	UP_ERR("'web': {'servers': 'w:1'}", "upstreams.web.servers: ", "expected an array",
	       "found a string");
	UP_ERR("'web': {'servers': ['w:0']}", "upstreams.web.servers[0]: ", "port must be from 1");
	UP_ERR("'web': {'servers': [':80']}", "upstreams.web.servers[0]: ", "missing host");
	UP_ERR("'web': {'servers': ['w:1', 'w']}", "upstreams.web.servers[1]: ", "missing port");
	UP_ERR("'web site': {'servers': ['w:1']}", "upstreams.web site: ", "bad upstream name");
	UP_ERR("'web': {'servers': ['w:1'], 'balance': 'random'}", "upstreams.web.balance: ",
	       "\"random\" is not one of: round_robin, least_conn");
	UP_ERR("'web': {'servers': ['w:1'], 'max_idle': 10001}", "upstreams.web.max_idle: ",
	       "out of range (0 to 10000)");
	UP_ERR("'web': {'servers': ['w:1'], 'max_fails': 0}", "upstreams.web.max_fails: ",
	       "out of range");
	UP_ERR("'web': {'servers': ['w:1'], 'fail_timeout': -2}", "upstreams.web.fail_timeout: ",
	       "out of range");
	UP_ERR("'web': []", "upstreams.web: ", "expected an object, found an array");
#undef UP_ERR
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': [],"
		     "'sites': [{'routes': [{'upstream': 'web'}]}]}",
		     "upstreams: ", "expected an object of upstreams by name, found an array", NULL);
	/* A broken "upstreams" does not also make every route reference an error. */
	assert_int_equal(count_lines(errbuf), 1);
}

#define ROUTE_CFG(routes)                                                                 \
	"{'listeners': [{'address': ':0'}],"                                              \
	"'upstreams': {'web': {'servers': ['w:1']}, 'capture': {'servers': ['c:1']}},"   \
	"'sites': [{'name': 'main', 'hosts': ['main.test'], 'routes': [" routes "]},"     \
	"          {'name': 'other', 'hosts': ['other.test'], 'routes': [{'upstream': 'web'}]}]}"

static void
test_site_errors(void **state)
{
	(void)state;
	fake_env = NULL;
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'hosts': ['a.test', 'b.test'], 'routes': [{'upstream': 'web'}]},"
		     "          {'hosts': ['B.test'], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[1].hosts[0]: ", "host \"b.test\" is already served by site \"a.test\" (sites[0])", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'name': 'x', 'default': true, 'routes': [{'upstream': 'web'}]},"
		     "          {'name': 'y', 'default': true, 'routes': [{'upstream': 'web'}]}]}",
		     "sites[1].default: ", "also marked default", "only one site", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': [{'upstream': 'web'}]}, {'routes': [{'upstream': 'web'}]}]}",
		     "sites[1].name: ", "site name \"default\" is already used by sites[0]", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'hosts': ['x.test:443'], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].hosts[0]: ", "not a valid host", "without its port", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'hosts': ['a.*.test', '-a.test', 'a..test'],"
		     "           'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].hosts[0]: ", "wildcard", NULL);
	assert_true(err_line("sites[0].hosts[1]: ", "starts with \"-\"", NULL));
	assert_true(err_line("sites[0].hosts[2]: ", "empty label", NULL));
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'routes': []}]}",
		     "sites[0].routes: ", "must not be empty", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': []}",
		     "sites: ", "must not be empty", NULL);
}

static void
test_route_action_errors(void **state)
{
	(void)state;
	fake_env = NULL;
	expect_error(ROUTE_CFG("{'upstream': 'capure'}"), "sites[0].routes[0].upstream: ",
		     "no upstream named \"capure\"; known: capture, web", NULL);
	expect_error(ROUTE_CFG("{'name': 'x'}"), "sites[0].routes[0]: ", "no action",
		     "exactly one of \"upstream\", \"respond\", \"redirect\", \"site\"", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'respond': {}}"), "sites[0].routes[0]: ",
		     "more than one action", "\"upstream\"", "\"respond\"", NULL);
	expect_error(ROUTE_CFG("{'site': 'nope'}"), "sites[0].routes[0].site: ",
		     "no site named \"nope\"; known: main, other", NULL);
	expect_error(ROUTE_CFG("{'site': 'main'}"), "sites[0].routes[0].site: ",
		     "its own site", NULL);
	expect_error("{'listeners': [{'address': ':0'}], 'upstreams': {'web': {'servers': ['w:1']}},"
		     "'sites': [{'name': 'a', 'hosts': ['a.test'], 'routes': [{'site': 'b'}]},"
		     "          {'name': 'b', 'hosts': ['b.test'], 'routes': [{'upstream': 'web'}, {'site': 'c'}]},"
		     "          {'name': 'c', 'hosts': ['c.test'], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].routes[0].site: ", "site \"b\" has a \"site\" route of its own",
		     "sites[1].routes[1]", "chains", NULL);
	expect_error(ROUTE_CFG("{'respond': {'status': 600}}"), "sites[0].routes[0].respond.status: ",
		     "600 is out of range (100 to 599)", NULL);
	expect_error(ROUTE_CFG("{'respond': {'stauts': 200}}"), "sites[0].routes[0].respond.stauts: ",
		     "did you mean \"status\"?", NULL);
	expect_error(ROUTE_CFG("{'respond': {'content_type': 'a\\r\\nb'}}"),
		     "sites[0].routes[0].respond.content_type: ", "without CR or LF", NULL);
	expect_error(ROUTE_CFG("{'redirect': {'status': 301}}"), "sites[0].routes[0].redirect: ",
		     "missing \"to\"", NULL);
	expect_error(ROUTE_CFG("{'redirect': {'to': '/x', 'status': 300}}"),
		     "sites[0].routes[0].redirect.status: ", "300 is not a redirect status",
		     "301, 302, 303, 307 or 308", NULL);
	expect_error(ROUTE_CFG("{'redirect': {'to': '//evil.test/'}}"),
		     "sites[0].routes[0].redirect.to: ", "\"//evil.test/\"", "not \"//\"", NULL);
	expect_error(ROUTE_CFG("{'redirect': {'to': 'ftp://x.test/'}}"),
		     "sites[0].routes[0].redirect.to: ", "http:// or https://", NULL);
	expect_error(ROUTE_CFG("{'redirect': {'to': 'https://'}}"),
		     "sites[0].routes[0].redirect.to: ", "http:// or https://", NULL);
	expect_error(ROUTE_CFG("{'redirect': {'to': '/a b'}}"), "sites[0].routes[0].redirect.to: ",
		     "without spaces", NULL);
	expect_error(ROUTE_CFG("{'redirect': {'to': '/x', 'keep_path': 1}}"),
		     "sites[0].routes[0].redirect.keep_path: ", "expected a boolean", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'name': 'dup'}, {'upstream': 'web', 'name': 'dup'}"),
		     "sites[0].routes[1].name: ",
		     "route name \"dup\" is already used by sites[0].routes[0]", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'name': 'other#0'}"), "sites[1].routes[0].name: ",
		     "\"other#0\" is already used by sites[0].routes[0]", NULL);
	expect_error(ROUTE_CFG("'just a string'"), "sites[0].routes[0]: ",
		     "expected a route object, found a string", NULL);
}

static void
test_route_match_errors(void **state)
{
	(void)state;
	fake_env = NULL;
#define MATCH_ERR(match, prefix, ...)                                                      \
	expect_error(ROUTE_CFG("{'upstream': 'web', 'match': {" match "}}"), prefix,       \
		     __VA_ARGS__, NULL)
	MATCH_ERR("'path': ['e']", "sites[0].routes[0].match.path[0]: ", "must start with \"/\"");
	MATCH_ERR("'path': ['/a//b']", "sites[0].routes[0].match.path[0]: ", "not normalized",
		  "\"//\"");
	MATCH_ERR("'path_exact': ['/a/./b']", "sites[0].routes[0].match.path_exact[0]: ",
		  "not normalized", "\".\" or \"..\" segment");
	MATCH_ERR("'path_prefix': ['/a/..']", "sites[0].routes[0].match.path_prefix[0]: ",
		  "\".\" or \"..\" segment");
	MATCH_ERR("'path': ['/a%2fb']", "sites[0].routes[0].match.path[0]: ", "%2F, %2E and %5C");
	MATCH_ERR("'path': ['/a%2Eb']", "sites[0].routes[0].match.path[0]: ", "%2F, %2E and %5C");
	MATCH_ERR("'path': ['/a?b=1']", "sites[0].routes[0].match.path[0]: ", "no query or fragment");
	MATCH_ERR("'path': ['/a#b']", "sites[0].routes[0].match.path[0]: ", "no query or fragment");
	MATCH_ERR("'path': ['/%7Euser']", "sites[0].routes[0].match.path[0]: ",
		  "not normalized; write \"/~user\"");
	MATCH_ERR("'path': ['/a\\\\b']", "sites[0].routes[0].match.path[0]: ", "\"/a\\b\"");
	MATCH_ERR("'path': []", "sites[0].routes[0].match.path: ", "must not be empty");
	MATCH_ERR("'path': '/a'", "sites[0].routes[0].match.path: ", "expected an array of paths",
		  "found a string");
	MATCH_ERR("'methods': ['get']", "sites[0].routes[0].match.methods[0]: ",
		  "\"get\" is not a method", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	MATCH_ERR("'methods': ['GET', 'CONNECT']", "sites[0].routes[0].match.methods[1]: ",
		  "\"CONNECT\" is not a method");
	MATCH_ERR("'methods': []", "sites[0].routes[0].match.methods: ", "must not be empty");
#undef MATCH_ERR
}

static void
test_route_strip_host_header_errors(void **state)
{
	(void)state;
	fake_env = NULL;
	expect_error(ROUTE_CFG("{'upstream': 'web', 'strip_prefix': '/api'}"),
		     "sites[0].routes[0].strip_prefix: ", "needs a path matcher", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'strip_prefix': '/api/',"
			       " 'match': {'path': ['/api']}}"),
		     "sites[0].routes[0].strip_prefix: ", "must not end with \"/\"", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'strip_prefix': 'api', 'match': {'path': ['/api']}}"),
		     "sites[0].routes[0].strip_prefix: ", "must start with \"/\"", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'strip_prefix': '/api',"
			       " 'match': {'path': ['/api', '/apix'], 'path_prefix': ['/ap']}}"),
		     "sites[0].routes[0].strip_prefix: ", "match.path[1] \"/apix\" is not inside \"/api\"",
		     NULL);
	assert_true(err_line("sites[0].routes[0].strip_prefix: ",
			     "match.path_prefix[0] \"/ap\" is not inside", NULL));
	expect_error(ROUTE_CFG("{'respond': {}, 'strip_prefix': '/api', 'match': {'path': ['/api']}}"),
		     "sites[0].routes[0].strip_prefix: ", "only a route with \"upstream\" or \"site\"",
		     NULL);
	expect_error(ROUTE_CFG("{'redirect': {'to': '/'}, 'host': 'upstream'}"),
		     "sites[0].routes[0].host: ", "only a route with \"upstream\" or \"site\"", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'host': 'a b'}"), "sites[0].routes[0].host: ",
		     "not a valid Host value", "\"keep\", \"upstream\" or a host[:port]", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'host': 'x.test:0'}"), "sites[0].routes[0].host: ",
		     "port from 1 to 65535", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'request_headers': {'set': {'Host': 'x'}}}"),
		     "sites[0].routes[0].request_headers.set.Host: ", "cannot be changed here",
		     "use the route's \"host\" key", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'request_headers': {'remove': ['transfer-encoding']}}"),
		     "sites[0].routes[0].request_headers.remove[0]: ", "transfer-encoding cannot be changed",
		     "frames the request body", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'request_headers': {'add': {'Upgrade': 'x'}}}"),
		     "sites[0].routes[0].request_headers.add.Upgrade: ", "hop-by-hop", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'response_headers': {'set': {'Connection': 'x'}}}"),
		     "sites[0].routes[0].response_headers.set.Connection: ", "hop-by-hop", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'response_headers': {'set': {'Bad Name': 'x'}}}"),
		     "sites[0].routes[0].response_headers.set.Bad Name: ", "not a valid header name",
		     NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'response_headers': {'set': {'X-A': 'a\\nb'}}}"),
		     "sites[0].routes[0].response_headers.set.X-A: ", "CR or LF", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'response_headers': {'set': {'X-A': 1}}}"),
		     "sites[0].routes[0].response_headers.set.X-A: ", "expected a string", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'response_headers': {'replace': {}}}"),
		     "sites[0].routes[0].response_headers.replace: ", "unknown key",
		     "(allowed: set, add, remove)", NULL);
	expect_error(ROUTE_CFG("{'upstream': 'web', 'max_body_bytes': '65MiB'}"),
		     "sites[0].routes[0].max_body_bytes: ",
		     "65 MiB is more than limits.max_body_bytes (64 MiB)", NULL);
}

static void
test_many_errors_and_truncation(void **state)
{
	static const char bad[] =
		"{'listeners': [{'address': 'nope'}], 'workers': 'x', 'log': {'level': 'loud'},"
		"'upstreams': {'web': {'servers': ['w:0']}},"
		"'sites': [{'rotues': [], 'routes': [{'upstream': 'capure'}, {}]}]}";
	char small[160];
	char *json;
	struct config *cfg;

	(void)state;
	fake_env = NULL;
	expect_error(bad, "listeners[0].address: ", "missing port", NULL);
	assert_true(err_line("workers: ", "not a whole number", NULL));
	assert_true(err_line("log.level: ", "loud", NULL));
	assert_true(err_line("upstreams.web.servers[0]: ", "port must be", NULL));
	assert_true(err_line("sites[0].rotues: ", "did you mean", NULL));
	assert_true(err_line("sites[0].routes[0].upstream: ", "capure", "known: web", NULL));
	assert_true(err_line("sites[0].routes[1]: ", "no action", NULL));
	assert_int_equal(count_lines(errbuf), 7);

	/* A small buffer keeps whole lines and says that more were cut. */
	json = strdup(bad);
	assert_non_null(json);
	for (char *p = json; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	cfg = config_load_string(json, "t", small, sizeof small, null_getenv);
	assert_null(cfg);
	assert_true(strlen(small) < sizeof small);
	assert_non_null(strstr(small, "...(more errors)"));
	assert_string_equal(small + strlen(small) - strlen("...(more errors)"), "...(more errors)");
	assert_int_equal(strncmp(small, "listeners[0].address: \"nope\": missing port", 40), 0);
	assert_non_null(strstr(small, "\nworkers: "));
	/* Tiny buffers stay NUL-terminated. */
	cfg = config_load_string(json, "t", small, 5, null_getenv);
	assert_null(cfg);
	assert_int_equal(strlen(small), 4);
	free(json);
}

/* The certificate of a throw-away IdP key (CN=unit-test-idp, valid 100 years):
 * the example's IdP metadata needs a signing certificate to load. */
static const char example_idp_cert[] =
	"MIIDEzCCAfugAwIBAgIUIcE8mVUXn2iqQXHcd1qfWip/tOcwDQYJKoZIhvcNAQELBQAwGDEWMBQG"
	"A1UEAwwNdW5pdC10ZXN0LWlkcDAgFw0yNjExMjMwNzAwMDBaGA8yMTI2MTAzMDA3MDAwMFowGDEW"
	"MBQGA1UEAwwNdW5pdC10ZXN0LWlkcDCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBALmA"
	"I5w3/YFYXTBdh4znau/0UuIDJIX+qysKygCIJsK+b6Xr7yImM29jNSLaqsKBZCnJq2K/dUw/xpeN"
	"vFqlxEp8Xh3tT0KdaqAPpn7+em8s6ASwiM3HJ1XDlb6oJv+o0QjY9ZqwO8SgOvrDVkmLiYUmrB52"
	"wrTfzON3SJCRwejlU9JiW7y9xEcjvjeZcxpuzS/D9iGbgfMU79zcWhUaxPfn5WSdEooYjLQqXfDX"
	"E9NT6WQA9/ahaoZxcydYheipBQR42lPkHwAvfZLpjS4Ivtoj5f5+4EsUhWfLm4bjX5vr8Uv+Weud"
	"f9n605vqAvAc39OzDwgaAPSjwLPjl7Lp/D0CAwEAAaNTMFEwHQYDVR0OBBYEFIe7+Ocpj4PEqAqZ"
	"0dhAqfCW5SRzMB8GA1UdIwQYMBaAFIe7+Ocpj4PEqAqZ0dhAqfCW5SRzMA8GA1UdEwEB/wQFMAMB"
	"Af8wDQYJKoZIhvcNAQELBQADggEBAItDkZng9JCwgdZoNFn/9Cpt280fMrmzmpIoX4h7Mwfm+wXK"
	"pjgemoLXAGWjBmdCh71Gg0KSDFKQhjae4ZdwdCw1M5Tzeas0kyCHxlvNl9CDjr+Yvw/38EbJ66bj"
	"5QNHIAGMhVrXLGDIH9G/dBnKaHGGZa2xCvP9ZqDsF3kQ6wfh73/p9u0C5+iQsObHLpxVGgGWMBFN"
	"IRx6IyUv5UtF/HKpoSjheZ0I9/APdfMYiijr/rnNCkpfrPtesKdUyhGBoipEGVx+4GfbB0rO2KwR"
	"DGVtdQ5F3XlIkoI9Rzo5mtJVEn6vOJ+ObWxqdXUgohbNnrEvMn8V3uScmm8yLX7wMd4=";

static void
test_posthog_example(void **state)
{
	char path[4096];
	char err[4096];
	char dir[] = "/tmp/portcullis-test-config-XXXXXX";
	char metadata[4200], key_file[4200], file[4200];
	const char *slash = strrchr(__FILE__, '/');
	const char *env[] = { "SAML_IDP_METADATA", metadata, "CERTS_DIR", dir, NULL };
	static const char *const created[] = { "session.key", "saml-sp.key", "saml-sp.crt",
					       "idp-metadata.xml" };
	struct config *cfg;
	const struct config_route *r;
	struct stat st;

	(void)state;
	/* The example requires SAML_IDP_METADATA; the SP key and the session key
	 * are created under CERTS_DIR. */
	assert_non_null(mkdtemp(dir));
	snprintf(metadata, sizeof metadata, "%s/idp-metadata.xml", dir);
	write_idp_metadata_with(metadata, example_idp_cert);
	fake_env = env;

	/* tests/unit/config/test_config.c -> examples/posthog/portcullis.json */
	snprintf(path, sizeof path, "%.*s/../../../examples/posthog/portcullis.json",
		 slash != NULL ? (int)(slash - __FILE__) : 1, slash != NULL ? __FILE__ : ".");
	cfg = config_load_file(path, err, sizeof err, fake_getenv);
	fake_env = NULL;
	if (cfg == NULL)
		fail_msg("%s", err);

	assert_string_equal(cfg->listeners[0].name, "http");
	assert_string_equal(cfg->listeners[0].address, ":80");
	assert_string_equal(cfg->admin->host, "127.0.0.1");
	assert_string_equal(cfg->admin->port, "9901");
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_string_equal(cfg->access_log, "stdout");
	assert_int_equal(cfg->nupstreams, 7);
	assert_int_equal(config_find_upstream(cfg, "capture")->balance, BALANCE_LEAST_CONN);
	assert_true(config_find_upstream(cfg, "livestream")->response_timeout == 3600);
	assert_string_equal(config_find_upstream(cfg, "flags")->servers[0].host, "feature-flags");
	assert_int_equal(config_find_upstream(cfg, "flags")->servers[0].port, 3001);

	assert_int_equal(cfg->nsites, 2);
	assert_string_equal(cfg->sites[0].name, "app");
	assert_string_equal(cfg->sites[0].hosts[0], "app.localhost");
	assert_string_equal(cfg->sites[1].hosts[0], "posthog.localhost");
	assert_ptr_equal(cfg->default_site, &cfg->sites[1]);
	assert_int_equal(cfg->nroutes_total, 12);

	r = find_route(cfg, "ingest");
	assert_int_equal(r->index, 0);
	assert_int_equal(r->action, ACTION_SITE);
	assert_ptr_equal(r->site, &cfg->sites[1]);
	assert_string_equal(r->strip_prefix, "/ingest");
	assert_int_equal(r->host_mode, HOST_FIXED);
	assert_string_equal(r->host, "posthog.localhost");
	assert_true(r->drop_cookies);
	assert_int_equal(r->npaths, 1);
	assert_string_equal(r->paths[0], "/ingest");

	r = find_route(cfg, "capture-event");
	assert_int_equal(r->index, 2);
	assert_int_equal(r->action, ACTION_PROXY);
	assert_string_equal(r->upstream->name, "capture");
	assert_int_equal(r->max_body_bytes, 2 * 1024 * 1024);
	assert_int_equal(r->npaths, 3);
	assert_string_equal(r->paths[1], "/i/v0");
	assert_int_equal(find_route(cfg, "capture-batch")->max_body_bytes, 20 * 1024 * 1024);
	assert_int_equal(find_route(cfg, "replay")->max_body_bytes, 25 * 1024 * 1024);
	r = find_route(cfg, "livestream");
	assert_string_equal(r->strip_prefix, "/livestream");
	assert_string_equal(r->upstream->name, "livestream");
	assert_int_equal(r->auth, AUTH_SAML);
	assert_int_equal(r->nallow_bearer, 0);
	r = find_route(cfg, "web");
	assert_int_equal(r->index, 11);
	assert_int_equal(r->npaths, 0);
	assert_string_equal(r->upstream->name, "web");
	assert_int_equal(r->max_body_bytes, 64 * 1024 * 1024);
	assert_int_equal(r->auth, AUTH_SAML);
	assert_int_equal(r->nallow_bearer, 0);

	/* SAML: the UI and its /api are protected, SDK traffic is open. */
	r = find_route(cfg, "api");
	assert_int_equal(r->auth, AUTH_SAML);
	assert_string_equal(r->paths[0], "/api");
	assert_int_equal(r->nallow_bearer, 2);
	assert_string_equal(r->allow_bearer[0], "phx_");
	assert_string_equal(r->allow_bearer[1], "phs_");
	r = find_route(cfg, "sdk-api");
	assert_int_equal(r->auth, AUTH_NONE);
	assert_int_equal(r->methods, METHOD_GET | METHOD_HEAD | METHOD_OPTIONS);
	assert_int_equal(find_route(cfg, "sdk-web")->auth, AUTH_NONE);
	assert_int_equal(find_route(cfg, "capture-event")->auth, AUTH_NONE);
	assert_int_equal(find_route(cfg, "flags")->auth, AUTH_NONE);
	assert_int_equal(find_route(cfg, "webhooks")->auth, AUTH_NONE);
	assert_true(cfg->sites[1].saml_endpoints);
	assert_non_null(cfg->saml);
	assert_string_equal(cfg->saml->idp_metadata, metadata);
	assert_string_equal(cfg->saml->base_url, "https://posthog.localhost");
	assert_string_equal(cfg->saml->sp_entity_id, "https://posthog.localhost/saml/metadata");
	assert_string_equal(cfg->saml->acs_path, "/complete/saml/");
	assert_string_equal(cfg->saml->acs_url, "https://posthog.localhost/complete/saml/");
	assert_false(cfg->saml->allow_sha1);
	assert_int_equal(cfg->saml->nheaders, 1);
	assert_string_equal(cfg->saml->headers[0].name, "X-Auth-Email");
	assert_string_equal(cfg->saml->headers[0].attribute, "Email");
	snprintf(key_file, sizeof key_file, "%s/session.key", dir);
	assert_string_equal(cfg->saml->session_key_file, key_file);
	assert_int_equal(stat(key_file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	config_unref(cfg);

	/* The variables override the defaults. */
	{
		const char *env2[] = { "SAML_IDP_METADATA", metadata, "CERTS_DIR", dir,
				       "POSTHOG_DOMAIN", "ph.example.com",
				       "SAML_SP_ENTITY_ID", "posthog-saml", "SAML_ACS_PATH", "/saml/acs",
				       "SESSION_KEY_FILE", key_file, "SAML_ALLOW_SHA1", "true", NULL };

		fake_env = env2;
		cfg = config_load_file(path, err, sizeof err, fake_getenv);
		fake_env = NULL;
		if (cfg == NULL)
			fail_msg("%s", err);
		assert_string_equal(cfg->saml->sp_entity_id, "posthog-saml");
		assert_string_equal(cfg->saml->acs_url, "https://ph.example.com/saml/acs");
		assert_string_equal(cfg->saml->session_key_file, key_file);
		assert_true(cfg->saml->allow_sha1);
		config_unref(cfg);
	}
	/* "session_key_env" without "session_key_file": keys from the variable
	 * only, no key file created (replicas fed from one Kubernetes Secret). */
	{
		char json[9000], env_dir[sizeof dir + 16];
		const char *env3[] = { "SESSION_KEYS",
				       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
				       NULL };

		snprintf(env_dir, sizeof env_dir, "%s/envonly", dir);
		snprintf(json, sizeof json,
			 "{\"listeners\": [{\"name\": \"http\", \"address\": \"127.0.0.1:0\"}],"
			 " \"upstreams\": {\"web\": {\"servers\": [\"127.0.0.1:1\"]}},"
			 " \"sites\": [{\"name\": \"s\", \"default\": true, \"routes\": ["
			 "  {\"name\": \"web\", \"upstream\": \"web\", \"auth\": \"saml\"}]}],"
			 " \"saml\": {\"idp_metadata\": \"%s\", \"base_url\": \"https://s.test\","
			 "  \"certs_dir\": \"%s\", \"session_key_env\": \"SESSION_KEYS\"}}",
			 metadata, env_dir);
		fake_env = env3;
		cfg = config_load_string(json, "envonly.json", err, sizeof err, fake_getenv);
		fake_env = NULL;
		if (cfg == NULL)
			fail_msg("%s", err);
		assert_null(cfg->saml->session_key_file);
		snprintf(key_file, sizeof key_file, "%s/session.key", env_dir);
		assert_int_not_equal(stat(key_file, &st), 0);
		config_unref(cfg);
		snprintf(key_file, sizeof key_file, "%s/saml-sp.key", env_dir);
		unlink(key_file);
		snprintf(key_file, sizeof key_file, "%s/saml-sp.crt", env_dir);
		unlink(key_file);
		snprintf(key_file, sizeof key_file, "%s/saml-idp-metadata.xml", env_dir);
		unlink(key_file);
		rmdir(env_dir);
	}
	/* Without SAML_IDP_METADATA the example does not load, and says why. */
	cfg = config_load_file(path, err, sizeof err, null_getenv);
	assert_null(cfg);
	assert_non_null(strstr(err, "saml.idp_metadata: environment variable SAML_IDP_METADATA is "
				    "not set"));

	for (size_t i = 0; i < sizeof created / sizeof created[0]; i++) {
		snprintf(file, sizeof file, "%s/%s", dir, created[i]);
		assert_int_equal(unlink(file), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

static void
test_method_bits(void **state)
{
	(void)state;
	assert_int_equal(config_method_bit("GET"), METHOD_GET);
	assert_int_equal(config_method_bit("HEAD"), METHOD_HEAD);
	assert_int_equal(config_method_bit("POST"), METHOD_POST);
	assert_int_equal(config_method_bit("PUT"), METHOD_PUT);
	assert_int_equal(config_method_bit("PATCH"), METHOD_PATCH);
	assert_int_equal(config_method_bit("DELETE"), METHOD_DELETE);
	assert_int_equal(config_method_bit("OPTIONS"), METHOD_OPTIONS);
	assert_int_equal(config_method_bit("get"), 0);
	assert_int_equal(config_method_bit("TRACE"), 0);
	assert_int_equal(config_method_bit(""), 0);
	assert_int_equal(config_method_bit(NULL), 0);
}

/* "user", "group", "allow_root": names and ids resolved at load (privdrop.h). */
static void
test_user_and_group(void **state)
{
	static const char *const env[] = { "RUN_AS", "nobody", "ALLOW", "true", NULL };
	struct config *cfg;

	(void)state;
	fake_env = env;
	/* None: nothing to drop to, root refused later unless allow_root. */
	cfg = load_ok("{'listeners': [{'address': ':0'}]," MINIMAL_REST "}");
	assert_null(cfg->user);
	assert_null(cfg->group);
	assert_false(cfg->allow_root);
	config_unref(cfg);

	/* A name: the user's uid and primary group. */
	cfg = load_ok("{'user': 'root', 'listeners': [{'address': ':0'}]," MINIMAL_REST "}");
	assert_string_equal(cfg->user, "root");
	assert_int_equal(cfg->uid, 0);
	assert_int_equal(cfg->gid, 0);
	config_unref(cfg);

	/* From the environment, a group by name, allow_root as a string. */
	cfg = load_ok("{'user': '${RUN_AS}', 'group': 'root', 'allow_root': '${ALLOW}',"
		      "'listeners': [{'address': ':0'}]," MINIMAL_REST "}");
	assert_string_equal(cfg->user, "nobody");
	assert_int_equal(cfg->uid, 65534);
	assert_string_equal(cfg->group, "root");
	assert_int_equal(cfg->gid, 0);
	assert_true(cfg->allow_root);
	config_unref(cfg);

	/* Ids as JSON numbers or digit strings; a uid unknown to the user
	 * database needs a group. */
	cfg = load_ok("{'user': 65534, 'listeners': [{'address': ':0'}]," MINIMAL_REST "}");
	assert_string_equal(cfg->user, "65534");
	assert_int_equal(cfg->uid, 65534);
	config_unref(cfg);
	cfg = load_ok("{'user': '4000001', 'group': 4000002, 'allow_root': false,"
		      "'listeners': [{'address': ':0'}]," MINIMAL_REST "}");
	assert_int_equal(cfg->uid, 4000001);
	assert_int_equal(cfg->gid, 4000002);
	assert_string_equal(cfg->group, "4000002");
	config_unref(cfg);

	/* Empty (an unset variable with an empty default) means no user. */
	cfg = load_ok("{'user': '${PORTCULLIS_USER:-}', 'listeners': [{'address': ':0'}],"
		      MINIMAL_REST "}");
	assert_null(cfg->user);
	config_unref(cfg);
	fake_env = NULL;
}

static void
test_user_errors(void **state)
{
	(void)state;
	fake_env = NULL;
	expect_error("{'user': 'no-such-portcullis-user', 'listeners': [{'address': ':0'}],"
		     MINIMAL_REST "}",
		     "user: ", "no user named \"no-such-portcullis-user\"",
		     "useradd --system", "no-such-portcullis-user", NULL);
	/* Every error is listed: the user and the group both. */
	expect_error("{'user': 'no-such-portcullis-user', 'group': 'no-such-portcullis-group',"
		     "'listeners': [{'address': ':0'}]," MINIMAL_REST "}",
		     "group: ", "no group named \"no-such-portcullis-group\"", "groupadd --system",
		     NULL);
	assert_true(err_line("user: ", "no user named", NULL));
	expect_error("{'user': 4000001, 'listeners': [{'address': ':0'}]," MINIMAL_REST "}",
		     "user: ", "uid 4000001 has no entry", "give \"group\"", NULL);
	expect_error("{'group': 'root', 'listeners': [{'address': ':0'}]," MINIMAL_REST "}",
		     "group: ", "only used with \"user\"", NULL);
	expect_error("{'user': -1, 'listeners': [{'address': ':0'}]," MINIMAL_REST "}",
		     "user: ", "-1 is not an id", NULL);
	expect_error("{'user': 4294967295, 'listeners': [{'address': ':0'}]," MINIMAL_REST "}",
		     "user: ", "is not an id from 0 to 4294967294", NULL);
	expect_error("{'user': true, 'listeners': [{'address': ':0'}]," MINIMAL_REST "}",
		     "user: ", "a name or a numeric id", NULL);
	expect_error("{'user': 'nobody', 'group': ['root'], 'listeners': [{'address': ':0'}],"
		     MINIMAL_REST "}",
		     "group: ", "a name or a numeric id", NULL);
	expect_error("{'allow_root': 'yes', 'listeners': [{'address': ':0'}]," MINIMAL_REST "}",
		     "allow_root: ", "not a boolean", NULL);
	expect_error("{'process': {'user': 'nobody'}, 'listeners': [{'address': ':0'}],"
		     MINIMAL_REST "}",
		     "process: ", NULL);
}

/* ------------------------------------------------------------------ */
/* Sites bound to listeners                                             */

#define BOUND_LISTENERS                                                                   \
	"'listeners': [{'name': 'web', 'address': ':0'},"                                 \
	"              {'name': 'ui', 'address': ':0'},"                                  \
	"              {'name': 'grpc', 'address': ':0', 'type': 'tcp',"                  \
	"               'upstream': '127.0.0.1:7233'}],"                                  \
	"'upstreams': {'web': {'servers': ['127.0.0.1:8000']}},"

static void
test_site_listeners(void **state)
{
	struct config *cfg;

	(void)state;
	fake_env = NULL;
	/* A hostless site bound to "ui" is that listener's default; the
	 * global default stays the unbound hostless site. */
	cfg = load_ok("{" BOUND_LISTENERS
		      "'sites': [{'name': 'main', 'routes': [{'upstream': 'web'}]},"
		      "          {'name': 'ui', 'listeners': ['ui'], 'routes': [{'upstream': 'web'}]}]}");
	assert_ptr_equal(cfg->default_site, &cfg->sites[0]);
	assert_false(cfg->listeners[0].has_sites);
	assert_true(cfg->listeners[1].has_sites);
	assert_ptr_equal(cfg->listeners[1].default_site, &cfg->sites[1]);
	assert_int_equal(cfg->sites[1].nlisteners, 1);
	assert_int_equal(cfg->sites[1].listener_index[0], 1);
	config_unref(cfg);
	/* The same host on two sites that serve different listeners. */
	cfg = load_ok("{" BOUND_LISTENERS
		      "'sites': [{'hosts': ['a.test'], 'routes': [{'upstream': 'web'}]},"
		      "          {'name': 'ui', 'hosts': ['a.test'], 'listeners': ['ui'],"
		      "           'routes': [{'upstream': 'web'}]}]}");
	assert_null(cfg->listeners[1].default_site);
	config_unref(cfg);
	/* Unnamed listeners are "listeners[N]". */
	cfg = load_ok("{'listeners': [{'address': ':0'}, {'address': ':0'}],"
		      "'upstreams': {'web': {'servers': ['127.0.0.1:8000']}},"
		      "'sites': [{'listeners': ['listeners[1]'], 'routes': [{'upstream': 'web'}]}]}");
	assert_true(cfg->listeners[1].has_sites);
	config_unref(cfg);

	/* "tls": {"mode": "off"} drops a TLS listener: bindings follow. */
	cfg = load_ok("{'listeners': [{'name': 'https', 'address': ':0', 'tls': true},"
		      "               {'name': 'ui', 'address': ':0'}],"
		      "'tls': {'mode': 'off'},"
		      "'upstreams': {'web': {'servers': ['127.0.0.1:8000']}},"
		      "'sites': [{'routes': [{'upstream': 'web'}]},"
		      "          {'name': 'ui', 'listeners': ['ui', 'https'],"
		      "           'routes': [{'upstream': 'web'}]}]}");
	assert_int_equal(cfg->nlisteners, 1);
	assert_string_equal(cfg->listeners[0].name, "ui");
	assert_int_equal(cfg->sites[1].listener_index[0], 0);
	assert_int_equal(cfg->sites[1].listener_index[1], SIZE_MAX);
	assert_true(cfg->listeners[0].has_sites);
	config_unref(cfg);

	expect_error("{" BOUND_LISTENERS
		     "'sites': [{'listeners': ['temporal'], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].listeners[0]: ", "no listener named \"temporal\"",
		     "\"web\", \"ui\"", "give the listener a \"name\"", NULL);
	expect_error("{" BOUND_LISTENERS
		     "'sites': [{'listeners': ['web', 'grpc'], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].listeners[1]: ", "\"grpc\" (listeners[2]) is a TCP relay",
		     "bind the site to an HTTP listener", NULL);
	expect_error("{" BOUND_LISTENERS
		     "'sites': [{'listeners': ['ui', 'ui'], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].listeners[1]: ", "named twice", NULL);
	expect_error("{" BOUND_LISTENERS
		     "'sites': [{'listeners': [], 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].listeners: ", "must not be empty", NULL);
	expect_error("{" BOUND_LISTENERS
		     "'sites': [{'listeners': 'ui', 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].listeners: ", "array of listener names", NULL);
	expect_error("{" BOUND_LISTENERS
		     "'sites': [{'name': 'a', 'listeners': ['ui'], 'default': true,"
		     "           'routes': [{'upstream': 'web'}]},"
		     "          {'name': 'b', 'listeners': ['ui', 'web'], 'default': true,"
		     "           'routes': [{'upstream': 'web'}]}]}",
		     "sites[1].default: ", "also marked default on listener \"ui\"", NULL);
	expect_error("{" BOUND_LISTENERS
		     "'sites': [{'name': 'a', 'hosts': ['a.test'], 'listeners': ['ui'],"
		     "           'routes': [{'upstream': 'web'}]},"
		     "          {'name': 'b', 'hosts': ['a.test'], 'listeners': ['web', 'ui'],"
		     "           'routes': [{'upstream': 'web'}]}]}",
		     "sites[1].hosts[0]: ", "already served by site \"a\"", NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_default_site_rules),
		cmocka_unit_test(test_env_substitution),
		cmocka_unit_test(test_numbers_as_strings),
		cmocka_unit_test(test_syntax_and_file_errors),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_type_and_missing_errors),
		cmocka_unit_test(test_listener_errors),
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test(test_upstream_errors),
		cmocka_unit_test(test_site_errors),
		cmocka_unit_test(test_route_action_errors),
		cmocka_unit_test(test_route_match_errors),
		cmocka_unit_test(test_route_strip_host_header_errors),
		cmocka_unit_test(test_many_errors_and_truncation),
		cmocka_unit_test(test_posthog_example),
		cmocka_unit_test(test_method_bits),
		cmocka_unit_test(test_user_and_group),
		cmocka_unit_test(test_user_errors),
		cmocka_unit_test(test_site_listeners),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

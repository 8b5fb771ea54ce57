/*
 * Unit tests for the TLS parts of config: listeners' "tls" and
 * "redirect_https", sites' "hsts", the "tls" block (sources, "mode", the
 * defaults taken from the sites) and their errors with JSON paths.
 *
 * JSON is written with single quotes; load() turns them into double quotes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

#define UPS "'upstreams': {'web': {'servers': ['127.0.0.1:8000']}},"
#define SITES                                                                             \
	"'sites': [{'name': 'one', 'hosts': ['a.test', 'b.test', '*.w.test', '10.0.0.1'],"   \
	"'routes': [{'upstream': 'web'}]},"                                                   \
	"{'name': 'two', 'hosts': ['c.test'], 'hsts': {'max_age': 600, 'preload': false},"    \
	"'routes': [{'upstream': 'web'}]}]"
#define TWO_LISTENERS                                                                     \
	"'listeners': [{'address': ':0', 'redirect_https': true}, {'address': ':0', 'tls': true}],"

static const char *const *fake_env;
static char errbuf[16384];

static const char *
fake_getenv(const char *name)
{
	for (size_t i = 0; fake_env != NULL && fake_env[i] != NULL; i += 2)
		if (strcmp(fake_env[i], name) == 0)
			return fake_env[i + 1];
	return NULL;
}

static struct config *
load(const char *q)
{
	char *json = strdup(q);
	struct config *cfg;

	assert_non_null(json);
	for (char *p = json; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	errbuf[0] = '\0';
	cfg = config_load_string(json, "test.json", errbuf, sizeof errbuf, fake_getenv);
	free(json);
	return cfg;
}

static struct config *
load_ok(const char *q)
{
	struct config *cfg = load(q);

	if (cfg == NULL)
		fail_msg("config did not load:\n%s", errbuf);
	return cfg;
}

/* <q> fails with a line starting <prefix> that contains <word>. */
static void
expect_error(const char *q, const char *prefix, const char *word)
{
	struct config *cfg = load(q);
	const char *line = errbuf;

	if (cfg != NULL) {
		config_unref(cfg);
		fail_msg("loaded, but should fail with %s", prefix);
	}
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[2048];

		snprintf(buf, sizeof buf, "%.*s", (int)len, line);
		if (strncmp(buf, prefix, strlen(prefix)) == 0 && strstr(buf, word) != NULL)
			return;
		line = end ? end + 1 : NULL;
	}
	fail_msg("no line \"%s ... %s\" in:\n%s", prefix, word, errbuf);
}

static void
test_local_ca_defaults_from_sites(void **state)
{
	struct config *cfg = load_ok("{" TWO_LISTENERS "'tls': {'local_ca': true}," UPS SITES "}");

	(void)state;
	assert_non_null(cfg->tls);
	assert_true(cfg->listeners[1].tls);
	assert_false(cfg->listeners[0].tls);
	assert_true(cfg->listeners[0].redirect_https);
	assert_true(cfg->tls->local_ca);
	assert_string_equal(cfg->tls->certs_dir, "certs");
	assert_true(cfg->tls->watch_interval == 5);
	/* every non-wildcard host, IPs included */
	assert_int_equal(cfg->tls->nlocal_names, 4);
	assert_string_equal(cfg->tls->local_names[0], "a.test");
	assert_string_equal(cfg->tls->local_names[2], "10.0.0.1");
	assert_string_equal(cfg->tls->local_names[3], "c.test");
	assert_null(cfg->tls->acme);
	assert_false(cfg->sites[0].hsts.enabled);
	assert_true(cfg->sites[1].hsts.enabled);
	assert_int_equal(cfg->sites[1].hsts.max_age, 600);
	config_unref(cfg);
}

static void
test_acme_defaults_one_order_per_site(void **state)
{
	struct config *cfg = load_ok("{" TWO_LISTENERS "'tls': {'acme': {'email': 'a@b.test', "
				     "'ca_bundle': '', 'challenges': ['tls-alpn-01']}}," UPS SITES "}");
	const struct config_acme *a;

	(void)state;
	a = cfg->tls->acme;
	assert_non_null(a);
	assert_string_equal(a->directory, "https://acme-v02.api.letsencrypt.org/directory");
	assert_string_equal(a->email, "a@b.test");
	assert_null(a->ca_bundle); /* "" is absent */
	assert_int_equal(a->challenges, 2);
	assert_int_equal(a->norders, 2);
	assert_int_equal(a->orders[0].nnames, 2); /* no wildcard, no IP */
	assert_string_equal(a->orders[0].names[0], "a.test");
	assert_string_equal(a->orders[0].names[1], "b.test");
	assert_int_equal(a->orders[1].nnames, 1);
	assert_string_equal(a->orders[1].names[0], "c.test");
	config_unref(cfg);
}

static void
test_mode_selects_one_source(void **state)
{
	static const char *const env_files[] = {"MODE", "files", "CERT", "/x.crt", NULL};
	static const char *const env_acme[] = {"MODE", "acme", NULL};
	const char *q = "{" TWO_LISTENERS "'tls': {'mode': '${MODE}', 'local_ca': true,"
			"'certificates': [{'cert': '${CERT}'}], 'acme': {'email': '${EMAIL:-}'}},"
			UPS SITES "}";
	struct config *cfg;

	(void)state;
	fake_env = env_files;
	cfg = load_ok(q);
	assert_int_equal(cfg->tls->mode, TLS_MODE_FILES);
	assert_int_equal(cfg->tls->ncertificates, 1);
	assert_string_equal(cfg->tls->certificates[0].cert, "/x.crt");
	assert_string_equal(cfg->tls->certificates[0].key, "/x.crt"); /* combined PEM */
	assert_false(cfg->tls->local_ca);
	assert_null(cfg->tls->acme);
	config_unref(cfg);

	/* ${CERT} is unset, but certificates are not read in acme mode */
	fake_env = env_acme;
	cfg = load_ok(q);
	assert_int_equal(cfg->tls->mode, TLS_MODE_ACME);
	assert_int_equal(cfg->tls->ncertificates, 0);
	assert_false(cfg->tls->local_ca);
	assert_non_null(cfg->tls->acme);
	assert_null(cfg->tls->acme->email);
	config_unref(cfg);
	fake_env = NULL;
}

static void
test_mode_off_drops_tls_listeners(void **state)
{
	struct config *cfg = load_ok("{'listeners': [{'address': ':0', 'redirect_https': true},"
				     "{'address': ':0', 'tls': true}, {'address': ':1234'}],"
				     "'tls': {'mode': 'off', 'certificates': [{'cert': '${NOPE}'}]},"
				     UPS SITES "}");

	(void)state;
	assert_null(cfg->tls);
	assert_int_equal(cfg->nlisteners, 2);
	assert_int_equal(cfg->tls_listeners_off, 1);
	assert_false(cfg->listeners[0].redirect_https);
	assert_string_equal(cfg->listeners[1].port, "1234");
	assert_int_equal(cfg->listeners[1].index, 1);
	config_unref(cfg);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("{'listeners': [{'address': ':0', 'tls': true}]," UPS SITES "}",
		     "listeners[0].tls: ", "no \"tls\" block");
	expect_error("{'listeners': [{'address': ':0', 'redirect_https': true}]," UPS SITES "}",
		     "listeners[0].redirect_https: ", "no listener has \"tls\": true");
	expect_error("{'listeners': [{'address': ':0', 'tls': true, 'redirect_https': true}],"
		     "'tls': {'local_ca': true}," UPS SITES "}",
		     "listeners[0].redirect_https: ", "only for plain-HTTP listeners");
	/* TLS on a relay is terminated there; not with a PROXY header in front. */
	expect_error("{'trusted_proxies': ['127.0.0.1'], 'listeners': [{'address': ':0', 'type': 'tcp',"
		     " 'upstream': '127.0.0.1:9', 'tls': true, 'proxy_protocol': true}],"
		     "'tls': {'local_ca': true}," UPS SITES "}",
		     "listeners[0].tls: ", "not together with \"proxy_protocol\"");
	expect_error("{'listeners': [{'address': ':0', 'type': 'tcp', 'upstream': '127.0.0.1:9',"
		     " 'redirect_https': true}], 'tls': {'local_ca': true}," UPS SITES "}",
		     "listeners[0].redirect_https: ", "only for HTTP listeners");
	expect_error("{" TWO_LISTENERS "'tls': {}," UPS SITES "}", "tls: ", "no certificate source");
	expect_error("{" TWO_LISTENERS "'tls': {'mode': 'files'}," UPS SITES "}",
		     "tls.certificates: ", "needs at least one");
	expect_error("{" TWO_LISTENERS "'tls': {'mode': 'fils'}," UPS SITES "}", "tls.mode: ",
		     "is not one of: all, acme, files, local, off");
	expect_error("{" TWO_LISTENERS "'tls': {'certificates': [{'key': 'k'}]}," UPS SITES "}",
		     "tls.certificates[0]: ", "missing \"cert\"");
	expect_error("{" TWO_LISTENERS "'tls': {'certificates': [{'cert': ''}]}," UPS SITES "}",
		     "tls.certificates[0].cert: ", "is empty");
	expect_error("{" TWO_LISTENERS "'tls': {'acme': {'directory': 'http://ca/dir'}}," UPS SITES
		     "}",
		     "tls.acme.directory: ", "is not an https:// URL");
	expect_error("{" TWO_LISTENERS "'tls': {'acme': {'orders': [{'names': ['*.x.test']}]}},"
		     UPS SITES "}",
		     "tls.acme.orders[0].names[0]: ", "DNS-01");
	expect_error("{" TWO_LISTENERS "'tls': {'acme': {'eab_kid': 'k'}}," UPS SITES "}",
		     "tls.acme.eab_hmac_key: ", "needs both");
	expect_error("{" TWO_LISTENERS "'tls': {'acme': {'ca_bundle': '/nonexistent/ca.pem'}},"
		     UPS SITES "}",
		     "tls.acme.ca_bundle: ", "cannot read /nonexistent/ca.pem");
	expect_error("{" TWO_LISTENERS "'tls': {'acme': {}}," UPS
		     "'sites': [{'hosts': ['*.w.test'], 'routes': [{'upstream': 'web'}]}]}",
		     "tls.acme: ", "no site has a host name");
	expect_error("{" TWO_LISTENERS "'tls': {'local_ca': true, 'watch_interval': 0}," UPS SITES
		     "}",
		     "tls.watch_interval: ", "out of range");
	expect_error("{" TWO_LISTENERS "'tls': {'local_ca': {'leaf_days': 0}}," UPS SITES "}",
		     "tls.local_ca.leaf_days: ", "");
	expect_error("{" TWO_LISTENERS "'tls': {'local_ca': true, 'tikcet_rotate': 60}," UPS SITES
		     "}",
		     "tls.tikcet_rotate: ", "did you mean \"ticket_rotate\"");
	expect_error("{" TWO_LISTENERS "'tls': {'local_ca': true}," UPS
		     "'sites': [{'hsts': {'preload': true}, 'routes': [{'upstream': 'web'}]}]}",
		     "sites[0].hsts.preload: ", "include_subdomains");
	expect_error("{'listeners': [{'address': ':0', 'tls': true}], 'tls': {'mode': 'off'},"
		     UPS SITES "}",
		     "tls.mode: ", "nothing is left to listen on");
}

/* "http2" and "h2c" on HTTP listeners, "alpn" on TLS relays (interned). */
static void
test_http2_keys(void **state)
{
	struct config *cfg, *again;

	(void)state;
	cfg = load_ok("{'listeners': [{'address': ':0', 'h2c': true}, {'address': ':0', 'tls': true},"
		      "{'address': ':0', 'tls': true, 'http2': false},"
		      "{'address': ':0', 'type': 'tcp', 'upstream': '127.0.0.1:9', 'tls': true,"
		      " 'alpn': ['h2', 'http/1.1']}],"
		      "'tls': {'local_ca': true}," UPS SITES "}");
	assert_true(cfg->listeners[0].h2c);
	assert_true(cfg->listeners[0].http2);
	assert_true(cfg->listeners[1].http2);
	assert_false(cfg->listeners[1].h2c);
	assert_false(cfg->listeners[2].http2);
	assert_null(cfg->listeners[1].alpn);
	assert_non_null(cfg->listeners[3].alpn);
	assert_string_equal(cfg->listeners[3].alpn[0], "h2");
	assert_string_equal(cfg->listeners[3].alpn[1], "http/1.1");
	assert_null(cfg->listeners[3].alpn[2]);
	again = load_ok("{'listeners': [{'address': ':0', 'type': 'tcp', 'upstream': '127.0.0.1:9',"
			" 'tls': true, 'alpn': ['h2', 'http/1.1']}], 'tls': {'local_ca': true}," UPS
			SITES "}");
	assert_ptr_equal(again->listeners[0].alpn, cfg->listeners[3].alpn);
	config_unref(again);
	config_unref(cfg);

	expect_error("{'listeners': [{'address': ':0', 'tls': true, 'h2c': true}],"
		     "'tls': {'local_ca': true}," UPS SITES "}",
		     "listeners[0].h2c: ", "only for plain HTTP listeners");
	expect_error("{'listeners': [{'address': ':0', 'type': 'tcp', 'upstream': '127.0.0.1:9',"
		     " 'http2': true}]," UPS SITES "}",
		     "listeners[0].http2: ", "only for HTTP listeners");
	expect_error("{'listeners': [{'address': ':0', 'alpn': ['h2']}]," UPS SITES "}",
		     "listeners[0].alpn: ", "only for \"tcp\" listeners with \"tls\": true");
	expect_error("{'listeners': [{'address': ':0', 'type': 'tcp', 'upstream': '127.0.0.1:9',"
		     " 'tls': true, 'alpn': ['']}], 'tls': {'local_ca': true}," UPS SITES "}",
		     "listeners[0].alpn: ", "1 to 255 bytes");
	expect_error("{'listeners': [{'address': ':0', 'http2': 'yes'}]," UPS SITES "}",
		     "listeners[0].http2: ", "");
}

/* A host in two sites bound to different listeners: one name, one order. */
static void
test_bound_sites_share_certificates(void **state)
{
	struct config *cfg = load_ok(
		"{'listeners': [{'name': 'https', 'address': ':0', 'tls': true},"
		"               {'name': 'ui', 'address': ':0', 'tls': true}],"
		"'tls': {'local_ca': true, 'acme': {'email': 'a@b.test'}}," UPS
		"'sites': [{'name': 'one', 'hosts': ['a.test', 'b.test'], 'routes': [{'upstream': 'web'}]},"
		"          {'name': 'ui', 'hosts': ['a.test'], 'listeners': ['ui'],"
		"           'routes': [{'upstream': 'web'}]},"
		"          {'name': 'ui2', 'hosts': ['a.test', 'd.test'], 'listeners': ['https'],"
		"           'routes': [{'upstream': 'web'}]}]}");

	(void)state;
	assert_int_equal(cfg->tls->nlocal_names, 3);
	assert_string_equal(cfg->tls->local_names[2], "d.test");
	assert_int_equal(cfg->tls->acme->norders, 2);
	assert_int_equal(cfg->tls->acme->orders[1].nnames, 1);
	assert_string_equal(cfg->tls->acme->orders[1].names[0], "d.test");
	config_unref(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_ca_defaults_from_sites),
		cmocka_unit_test(test_acme_defaults_one_order_per_site),
		cmocka_unit_test(test_mode_selects_one_source),
		cmocka_unit_test(test_mode_off_drops_tls_listeners),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_http2_keys),
		cmocka_unit_test(test_bound_sites_share_certificates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for "require" on saml, sites and routes (src/config/config_require.c):
 * the forms accepted, inheritance (route over site over saml.require), the
 * attributes kept in sessions, and every error with its JSON path, including
 * a policy that can never match.
 *
 * JSON is written with single quotes; load() turns them into double quotes.
 * A successful load opens the SAML SP, so the tests write IdP metadata into a
 * temporary directory that also receives the SP key and the session key.
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

#include "auth/policy.h"
#include "auth/session.h"
#include "config/config.h"
#include "idp_metadata.h"

static char errbuf[16384];
static char dir[] = "/tmp/portcullis-test-require-XXXXXX";
static char metadata[512];

static const char *
no_env(const char *name)
{
	(void)name;
	return NULL;
}

/* The config with <site> extras for the one site, <route> extras for its
 * protected route, <saml> extras: JSON fragments starting with "," or empty. */
static struct config *
load(const char *site, const char *route, const char *saml)
{
	char *json = NULL;
	struct config *cfg;

	assert_true(asprintf(&json,
			     "{'listeners': [{'address': '127.0.0.1:0'}],"
			     "'upstreams': {'web': {'servers': ['127.0.0.1:8000']}},"
			     "'sites': [{'name': 'ph'%s, 'routes': ["
			     "{'name': 'admin', 'match': {'path': ['/admin']}, 'upstream': 'web',"
			     " 'auth': 'saml'%s},"
			     "{'name': 'web', 'upstream': 'web', 'auth': 'saml'}]}],"
			     "'saml': {'idp_metadata': '%s', 'base_url': 'https://ph.test',"
			     "'certs_dir': '%s'%s}}",
			     site, route, metadata, dir, saml) > 0);
	for (char *p = json; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	errbuf[0] = '\0';
	cfg = config_load_string(json, "test.json", errbuf, sizeof errbuf, no_env);
	free(json);
	return cfg;
}

static struct config *
load_ok(const char *site, const char *route, const char *saml)
{
	struct config *cfg = load(site, route, saml);

	if (cfg == NULL)
		fail_msg("config did not load:\n%s", errbuf);
	return cfg;
}

/* Loading fails with a line starting <prefix> that contains <word>. */
static void
expect_error(const char *site, const char *route, const char *saml, const char *prefix,
	     const char *word)
{
	struct config *cfg = load(site, route, saml);
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
test_forms_and_inheritance(void **state)
{
	struct config *cfg;
	const struct policy *p;

	(void)state;
	/* the legacy array: all_of */
	cfg = load_ok("", "", ", 'require': [{'attribute': 'Roles', 'contains': 'staff'}]");
	p = cfg->saml->require;
	assert_non_null(p);
	assert_int_equal(p->kind, POLICY_ALL_OF);
	assert_int_equal(p->nterms, 1);
	assert_string_equal(p->terms[0].path, "saml.require[0]");
	assert_int_equal(p->terms[0].kind, POLICY_CONTAINS);
	assert_null(cfg->sites[0].require);
	assert_null(cfg->sites[0].routes[0].require);
	config_unref(cfg);

	cfg = load_ok(", 'require': {'attribute': 'Email', 'domain': 'example.com'}",
		      ", 'require': {'any_of': [{'attribute': 'Roles', 'contains': 'admin'},"
		      " {'nameid': 'root'}, {'all_of': [{'attribute': 'Email', 'equals': "
		      "'boss@example.com'}, {'attribute': 'Team', 'contains': 'ops'}]}]}",
		      "");
	p = cfg->sites[0].require;
	assert_int_equal(p->kind, POLICY_DOMAIN);
	assert_string_equal(p->path, "sites[0].require");
	p = cfg->sites[0].routes[0].require;
	assert_int_equal(p->kind, POLICY_ANY_OF);
	assert_string_equal(p->path, "sites[0].routes[0].require.any_of");
	assert_int_equal(p->nterms, 3);
	assert_string_equal(p->terms[1].attribute, "@nameid");
	assert_int_equal(p->terms[1].kind, POLICY_EQUALS);
	assert_string_equal(p->terms[2].path, "sites[0].routes[0].require.any_of[2].all_of");
	assert_string_equal(p->terms[2].terms[1].path,
			    "sites[0].routes[0].require.any_of[2].all_of[1]");
	assert_null(cfg->sites[0].routes[1].require); /* inherits the site's at request time */
	config_unref(cfg);
}

static void
test_never_matching_is_explained(void **state)
{
	(void)state;
	expect_error("",
		     ", 'require': {'all_of': [{'attribute': 'Email', 'equals': 'a@example.com'},"
		     " {'attribute': 'Email', 'equals': 'b@example.com'}]}",
		     "", "sites[0].routes[0].require: ",
		     "can never match: sites[0].routes[0].require.all_of[0] and "
		     "sites[0].routes[0].require.all_of[1] both ask \"Email\"");
	expect_error(", 'require': [{'attribute': 'Email', 'domain': 'example.com'},"
		     " {'attribute': 'Email', 'equals': 'a@other.example'}]",
		     "", "", "sites[0].require: ", "can never match");
	expect_error("", "",
		     ", 'require': {'any_of': [{'all_of': [{'nameid': 'a'}, {'nameid': 'b'}]}]}",
		     "saml.require: ", "none of its terms can ever match");
	/* the explanation never repeats the values */
	assert_null(strstr(errbuf, "'a'"));
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("", ", 'require': {'any_of': []}", "",
		     "sites[0].routes[0].require.any_of: ", "must not be empty");
	expect_error("", ", 'require': {'attribute': 'Roles'}", "",
		     "sites[0].routes[0].require: ", "contains");
	expect_error("", ", 'require': {'attribute': 'Roles', 'contains': 'a', 'equals': 'b'}", "",
		     "sites[0].routes[0].require: ", "one test per rule");
	expect_error("", ", 'require': {'attribute': 'Email', 'domain': '@example.com'}", "",
		     "sites[0].routes[0].require.domain: ", "no \"@\"");
	expect_error("", ", 'require': {'any_of': [{'atribute': 'Roles'}]}", "",
		     "sites[0].routes[0].require.any_of[0].atribute: ", "did you mean");
	expect_error("", ", 'require': {'any_of': [], 'all_of': []}", "",
		     "sites[0].routes[0].require: ", "one of");
	expect_error("", ", 'require': 'admins'", "", "sites[0].routes[0].require: ", "");
	expect_error("", ", 'require': {'attribute': '', 'contains': 'x'}", "",
		     "sites[0].routes[0].require.attribute: ", "must name an attribute");
}

static void
test_placement(void **state)
{
	struct config *cfg;

	(void)state;
	/* a rule on a route without "auth": "saml" is a mistake */
	cfg = load("", "", "");
	assert_non_null(cfg);
	config_unref(cfg);
	{
		char *json = NULL;

		assert_true(asprintf(&json,
				     "{\"listeners\": [{\"address\": \"127.0.0.1:0\"}],"
				     "\"upstreams\": {\"web\": {\"servers\": [\"127.0.0.1:8000\"]}},"
				     "\"sites\": [{\"name\": \"open\", \"hosts\": [\"o.test\"],"
				     " \"require\": {\"nameid\": \"x\"}, \"routes\": [{\"upstream\": "
				     "\"web\", \"require\": {\"nameid\": \"x\"}}]},"
				     " {\"name\": \"ph\", \"routes\": [{\"upstream\": \"web\", "
				     "\"auth\": \"saml\"}]}],"
				     "\"saml\": {\"idp_metadata\": \"%s\", \"base_url\": "
				     "\"https://ph.test\", \"certs_dir\": \"%s\"}}",
				     metadata, dir) > 0);
		errbuf[0] = '\0';
		cfg = config_load_string(json, "test.json", errbuf, sizeof errbuf, no_env);
		free(json);
		assert_null(cfg);
		assert_non_null(strstr(errbuf, "sites[0].routes[0].require: needs \"auth\": \"saml\""));
	}
}

static void
test_identity_assertion(void **state)
{
	struct config *cfg;

	(void)state;
	/* unused: no keys loaded, defaults in place */
	cfg = load_ok("", "", "");
	assert_false(cfg->saml->assertion.used);
	assert_null(cfg->saml->assertion.keys);
	assert_string_equal(cfg->saml->assertion.header, "X-Portcullis-Assertion");
	config_unref(cfg);
	cfg = load_ok(", 'identity_assertion': {'audience': 'ph'}", ", 'identity_assertion': false",
		      ", 'identity_assertion': {'lifetime': 30, 'header': 'X-Identity'}");
	assert_true(cfg->saml->assertion.used); /* the site's second route */
	assert_non_null(cfg->saml->assertion.keys);
	assert_int_equal(cfg->sites[0].assertion, 1);
	assert_string_equal(cfg->sites[0].assertion_audience, "ph");
	assert_int_equal(cfg->sites[0].routes[0].assertion, -1);
	assert_string_equal(cfg->saml->assertion.jwks_path, "/.well-known/jwks.json");
	assert_true(cfg->saml->assertion.lifetime == 30);
	config_unref(cfg);
	expect_error("", ", 'identity_assertion': true",
		     ", 'identity_assertion': {'lifetime': 86400}",
		     "saml.identity_assertion.lifetime: ", "keep it short");
	expect_error("", ", 'identity_assertion': true",
		     ", 'headers': {'X-Auth-Email': 'Email'}, 'identity_assertion': {'header': "
		     "'x-auth-email'}",
		     "saml.identity_assertion.header: ", "also in saml.headers");
	expect_error("", "", ", 'identity_assertion': {'header': 'Host'}",
		     "saml.identity_assertion.header: ", "");
	expect_error("", ", 'identity_assertion': 'yes'", "",
		     "sites[0].routes[0].identity_assertion: ", "true, false");
	expect_error("", ", 'identity_assertion': {'audience': ''}", "",
		     "sites[0].routes[0].identity_assertion.audience: ", "must not be empty");
	expect_error("", ", 'identity_assertion': true",
		     ", 'identity_assertion': {'key_env': 'NOPE_KEYS'}",
		     "saml.identity_assertion.key_env: ", "not set");
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(metadata, sizeof metadata, "%s/idp-metadata.xml", dir);
	write_idp_metadata(metadata);
	return 0;
}

static int
teardown(void **state)
{
	static const char *const files[] = { "idp-metadata.xml", "session.key", "saml-sp.key",
					     "saml-sp.crt", "saml-idp-metadata.xml",
					     "identity-jwt.key" };
	char path[600];

	(void)state;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms_and_inheritance),
		cmocka_unit_test(test_never_matching_is_explained),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_identity_assertion),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * Unit tests for the "redis" section (src/config_redis.c) and
 * saml.replay_store (and saml.forward_auth, which loads the same way): defaults, addresses (host:port, IPv6, unix socket),
 * passwords from the environment and from a file, and every error with its
 * JSON path.
 *
 * JSON is written with single quotes; load() turns them into double quotes.
 * A successful load opens the SAML SP, so the tests write IdP metadata (with
 * a certificate made by idp_metadata.c) into a temporary directory that also receives the
 * SP key and the session key.
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
#include "idp_metadata.h"

static const char *const *fake_env;
static char errbuf[16384];
static char dir[] = "/tmp/portcullis-test-redis-XXXXXX";
static char metadata[512], pwfile[512], emptyfile[512];

static const char *
fake_getenv(const char *name)
{
	for (size_t i = 0; fake_env != NULL && fake_env[i] != NULL; i += 2)
		if (strcmp(fake_env[i], name) == 0)
			return fake_env[i + 1];
	return NULL;
}

/* The config around a "saml" extra (<saml>) and top-level extras (<top>),
 * both JSON fragments starting with "," or empty. */
static struct config *
load(const char *saml, const char *top)
{
	char *json = NULL;
	struct config *cfg;

	assert_true(asprintf(&json,
			     "{'listeners': [{'address': '127.0.0.1:0'}],"
			     "'upstreams': {'web': {'servers': ['127.0.0.1:8000']}},"
			     "'sites': [{'name': 'ph', 'routes': [{'upstream': 'web', 'auth': 'saml'}]}],"
			     "'saml': {'idp_metadata': '%s', 'base_url': 'https://ph.test',"
			     "'certs_dir': '%s'%s}%s}",
			     metadata, dir, saml, top) > 0);
	for (char *p = json; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	errbuf[0] = '\0';
	cfg = config_load_string(json, "test.json", errbuf, sizeof errbuf, fake_getenv);
	free(json);
	return cfg;
}

static struct config *
load_ok(const char *saml, const char *top)
{
	struct config *cfg = load(saml, top);

	if (cfg == NULL)
		fail_msg("config did not load:\n%s", errbuf);
	return cfg;
}

/* Loading fails with a line starting <prefix> that contains <word>. */
static void
expect_error(const char *saml, const char *top, const char *prefix, const char *word)
{
	struct config *cfg = load(saml, top);
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

#define REDIS_STORE ", 'replay_store': 'redis'"

static void
test_memory_is_the_default(void **state)
{
	struct config *cfg = load_ok("", "");

	(void)state;
	assert_int_equal(cfg->saml->replay_store, REPLAY_STORE_MEMORY);
	assert_null(cfg->redis);
	config_unref(cfg);
	cfg = load_ok(", 'replay_store': 'memory'", "");
	assert_int_equal(cfg->saml->replay_store, REPLAY_STORE_MEMORY);
	config_unref(cfg);
}

static void
test_tcp_defaults(void **state)
{
	struct config *cfg = load_ok(REDIS_STORE, ", 'redis': {'address': 'redis:6379'}");
	const struct config_redis *r = cfg->redis;

	(void)state;
	assert_int_equal(cfg->saml->replay_store, REPLAY_STORE_REDIS);
	assert_non_null(r);
	assert_string_equal(r->address, "redis:6379");
	assert_string_equal(r->host, "redis");
	assert_int_equal(r->port, 6379);
	assert_null(r->unix_path);
	assert_null(r->username);
	assert_null(r->password);
	assert_int_equal(r->db, 0);
	assert_string_equal(r->key_prefix, "portcullis:");
	assert_true(r->connect_timeout == 2);
	assert_true(r->command_timeout == 1);
	config_unref(cfg);
}

static void
test_everything_set(void **state)
{
	const char *env[] = { "REDIS_PASSWORD", "pw from env", "REDIS_HOST", "::1", NULL };
	struct config *cfg;
	const struct config_redis *r;

	(void)state;
	fake_env = env;
	cfg = load_ok(REDIS_STORE, ", 'redis': {'address': '[${REDIS_HOST}]:6380', 'username': "
				   "'portcullis', 'password': '${REDIS_PASSWORD}', 'db': 5, "
				   "'key_prefix': 'ph:sso:', 'connect_timeout': '500ms', "
				   "'command_timeout': 0.25}");
	fake_env = NULL;
	r = cfg->redis;
	assert_string_equal(r->host, "::1");
	assert_int_equal(r->port, 6380);
	assert_string_equal(r->username, "portcullis");
	assert_string_equal(r->password, "pw from env");
	assert_int_equal(r->db, 5);
	assert_string_equal(r->key_prefix, "ph:sso:");
	assert_true(r->connect_timeout == 0.5);
	assert_true(r->command_timeout == 0.25);
	config_unref(cfg);
}

static void
test_unix_socket_and_password_file(void **state)
{
	char top[1024];
	struct config *cfg;

	(void)state;
	snprintf(top, sizeof top,
		 ", 'redis': {'address': '/run/redis/redis.sock', 'password_file': '%s'}", pwfile);
	cfg = load_ok(REDIS_STORE, top);
	assert_string_equal(cfg->redis->unix_path, "/run/redis/redis.sock");
	assert_null(cfg->redis->host);
	/* the first line, without its line end */
	assert_string_equal(cfg->redis->password, "file-secret");
	config_unref(cfg);
}

static void
test_empty_env_password_means_none(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok(REDIS_STORE, ", 'redis': {'address': '127.0.0.1:6379', "
				   "'password': '${REDIS_PASSWORD:-}', 'username': '${REDIS_USER:-}'}");
	assert_null(cfg->redis->password);
	assert_null(cfg->redis->username);
	config_unref(cfg);
}

static void
test_store_and_section_must_agree(void **state)
{
	(void)state;
	expect_error(REDIS_STORE, "", "saml.replay_store: \"redis\" needs a top-level \"redis\"",
		     "docs/config.md#redis");
	expect_error("", ", 'redis': {'address': 'redis:6379'}", "redis: nothing uses this section",
		     "saml.replay_store");
	expect_error(", 'replay_store': 'sql'", "", "saml.replay_store: \"sql\" is not one of",
		     "memory, redis");
}

/* saml.revocation (config_revocation.c): defaults, the modes, the checks,
 * and that it too needs (and uses) the redis section. */
static void
test_revocation(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok("", "");
	assert_false(cfg->saml->revocation.enabled);
	config_unref(cfg);
	cfg = load_ok(", 'revocation': {}", ", 'redis': {'address': 'redis:6379'}");
	assert_true(cfg->saml->revocation.enabled);
	assert_false(cfg->saml->revocation.fail_closed);
	assert_true(cfg->saml->revocation.poll_interval == 1);
	assert_true(cfg->saml->revocation.max_staleness == 10);
	assert_non_null(cfg->redis);
	config_unref(cfg);
	cfg = load_ok(", 'revocation': {'on_redis_down': 'closed', 'poll_interval': '250ms', "
		      "'max_staleness': 2}",
		      ", 'redis': {'address': 'redis:6379'}");
	assert_true(cfg->saml->revocation.fail_closed);
	assert_true(cfg->saml->revocation.poll_interval == 0.25);
	config_unref(cfg);
	expect_error(", 'revocation': {}", "", "saml.revocation: needs a top-level \"redis\"",
		     "docs/config.md#redis");
	expect_error(", 'revocation': {'on_redis_down': 'maybe'}", ", 'redis': {'address': 'r:1'}",
		     "saml.revocation.on_redis_down: ", "open, closed");
	expect_error(", 'revocation': {'poll_interval': '10ms'}", ", 'redis': {'address': 'r:1'}",
		     "saml.revocation.poll_interval: ", "0.05 to 60");
	expect_error(", 'revocation': {'poll_interval': 5, 'max_staleness': 6}",
		     ", 'redis': {'address': 'r:1'}", "saml.revocation.max_staleness: ",
		     "two poll intervals");
	expect_error(", 'revocation': {'every': 1}", ", 'redis': {'address': 'r:1'}",
		     "saml.revocation", "every");
}

/* saml.forward_auth (config_forward_auth.c): the path, and that only
 * trusted_proxies may call it. */
static void
test_forward_auth(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok("", "");
	assert_null(cfg->saml->forward_auth.path);
	config_unref(cfg);
	cfg = load_ok(", 'forward_auth': {'path': '/_portcullis/verify'}",
		      ", 'trusted_proxies': ['10.0.0.0/8']");
	assert_string_equal(cfg->saml->forward_auth.path, "/_portcullis/verify");
	config_unref(cfg);
	expect_error(", 'forward_auth': {'path': '/_portcullis/verify'}", "", "saml.forward_auth: ",
		     "trusted_proxies");
	expect_error(", 'forward_auth': {}", ", 'trusted_proxies': ['10.0.0.0/8']",
		     "saml.forward_auth: ", "path");
	expect_error(", 'forward_auth': {'path': 'verify'}", ", 'trusted_proxies': ['10.0.0.0/8']",
		     "saml.forward_auth.path: ", "not a path");
	expect_error(", 'forward_auth': {'path': '/v?x=1'}", ", 'trusted_proxies': ['10.0.0.0/8']",
		     "saml.forward_auth.path: ", "not a path");
	expect_error(", 'forward_auth': {'path': '/v', 'mode': 1}",
		     ", 'trusted_proxies': ['10.0.0.0/8']", "saml.forward_auth", "mode");
}

static void
test_address_errors(void **state)
{
	(void)state;
	expect_error(REDIS_STORE, ", 'redis': {}", "redis: ", "address");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis'}", "redis.address: ",
		     "missing port");
	expect_error(REDIS_STORE, ", 'redis': {'address': ':6379'}", "redis.address: ",
		     "names no host");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:0'}", "redis.address: ",
		     "port 0");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:99999'}", "redis.address: ",
		     "99999");
	expect_error(REDIS_STORE, ", 'redis': {'address': 42}", "redis.address: ", "string");
	expect_error(REDIS_STORE, ", 'redis': 'redis:6379'", "redis: ", "object");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'adress': 'x'}",
		     "redis.adress: ", "address");
}

static void
test_password_errors(void **state)
{
	char top[1024];

	(void)state;
	snprintf(top, sizeof top, ", 'redis': {'address': 'redis:6379', 'password': 'x', "
				  "'password_file': '%s'}", pwfile);
	expect_error(REDIS_STORE, top, "redis.password_file: ", "not both");
	snprintf(top, sizeof top, ", 'redis': {'address': 'redis:6379', 'password_file': '%s/none'}",
		 dir);
	expect_error(REDIS_STORE, top, "redis.password_file: cannot read ", "No such file");
	snprintf(top, sizeof top, ", 'redis': {'address': 'redis:6379', 'password_file': '%s'}",
		 emptyfile);
	expect_error(REDIS_STORE, top, "redis.password_file: ", "the first line is empty");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'username': 'u'}",
		     "redis.username: ", "needs a \"password\"");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'password': '${NOPE}'}",
		     "redis.password: ", "NOPE");
}

static void
test_range_errors(void **state)
{
	(void)state;
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'db': 70000}", "redis.db: ",
		     "70000");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'db': -1}", "redis.db: ",
		     "");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'key_prefix': 'a b'}",
		     "redis.key_prefix: ", "white space");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'command_timeout': 60}",
		     "redis.command_timeout: ", "more than 30 s");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'connect_timeout': '2h'}",
		     "redis.connect_timeout: ", "more than 60 s");
	expect_error(REDIS_STORE, ", 'redis': {'address': 'redis:6379', 'command_timeout': 0}",
		     "redis.command_timeout: ", "out of range");
}

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(metadata, sizeof metadata, "%s/idp-metadata.xml", dir);
	snprintf(pwfile, sizeof pwfile, "%s/redis.password", dir);
	snprintf(emptyfile, sizeof emptyfile, "%s/empty.password", dir);
	write_idp_metadata(metadata);
	if ((f = fopen(pwfile, "w")) == NULL)
		return -1;
	fputs("file-secret\r\nsecond line ignored\n", f);
	fclose(f);
	if ((f = fopen(emptyfile, "w")) == NULL)
		return -1;
	fputs("\n", f);
	fclose(f);
	return 0;
}

static int
teardown(void **state)
{
	static const char *const files[] = { "idp-metadata.xml", "redis.password", "empty.password",
					     "session.key", "saml-sp.key", "saml-sp.crt",
					     "saml-idp-metadata.xml" };
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
		cmocka_unit_test(test_memory_is_the_default),
		cmocka_unit_test(test_tcp_defaults),
		cmocka_unit_test(test_everything_set),
		cmocka_unit_test(test_unix_socket_and_password_file),
		cmocka_unit_test(test_empty_env_password_means_none),
		cmocka_unit_test(test_store_and_section_must_agree),
		cmocka_unit_test(test_address_errors),
		cmocka_unit_test(test_password_errors),
		cmocka_unit_test(test_revocation),
		cmocka_unit_test(test_forward_auth),
		cmocka_unit_test(test_range_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/* Unit tests for the sign-in hand-off token (handoff_token.c) and the
 * host and URL decisions of saml.hosts (auth_hosts.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_hosts.h"
#include "auth/handoff_token.h"
#include "auth/saml.h"
#include "auth/session.h"
#include "auth/session_id.h"

static const unsigned char key_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char key_b[32] = "fedcba9876543210fedcba9876543210";
static const char NONCE[] = "00112233445566778899aabbccddeeff";
static char TEMPORAL[] = "https://temporal.test:8443";
static char MINIO[] = "https://minio.test";

static struct session *
sample(void)
{
	struct session *s = session_new();

	s->issued = 1000;
	s->expires = 9000;
	s->last_seen = 1500;
	s->name_id = strdup("alice");
	assert_int_equal(session_add_attr(s, "Email", "alice@example.com"), 0);
	assert_int_equal(session_add_attr(s, "Roles", "admin"), 0);
	return s;
}

static void
test_roundtrip_keeps_session_id(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session *s = sample();
	char *t = handoff_token_seal(k, TEMPORAL, s, NONCE, "/ui?x=1", 2000, 30);
	char err[200], sid_a[SESSION_ID_LEN + 1], sid_b[SESSION_ID_LEN + 1];
	struct handoff *h;

	(void)state;
	assert_non_null(t);
	assert_int_equal(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			 strlen(t));
	h = handoff_token_open(k, TEMPORAL, t, 2000, err, sizeof err);
	assert_non_null(h);
	assert_string_equal(h->target, "/ui?x=1");
	assert_string_equal(h->state, NONCE);
	assert_int_equal(h->not_after, 2030);
	assert_true(handoff_hex_ok(h->id));
	assert_string_equal(h->session->name_id, "alice");
	assert_string_equal(session_attr(h->session, "Roles"), "admin");
	/* the same session: the same id, so one revocation covers every host */
	session_id(s, sid_a);
	session_id(h->session, sid_b);
	assert_string_equal(sid_a, sid_b);
	/* two tokens for one session have different ids */
	{
		char *t2 = handoff_token_seal(k, TEMPORAL, s, NONCE, "/ui?x=1", 2000, 30);
		struct handoff *h2 = handoff_token_open(k, TEMPORAL, t2, 2000, err, sizeof err);

		assert_non_null(h2);
		assert_string_not_equal(h->id, h2->id);
		handoff_free(h2);
		free(t2);
	}
	handoff_free(h);
	free(t);
	session_free(s);
	session_keys_free(k);
}

static void
test_expiry(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session *s = sample();
	char *t = handoff_token_seal(k, TEMPORAL, s, NONCE, "/", 2000, 30);
	char err[200];
	struct handoff *h = handoff_token_open(k, TEMPORAL, t, 2029, err, sizeof err);

	(void)state;
	assert_non_null(h);
	handoff_free(h);
	assert_null(handoff_token_open(k, TEMPORAL, t, 2030, err, sizeof err));
	assert_non_null(strstr(err, "expired"));
	assert_null(handoff_token_open(k, TEMPORAL, t, 99999, err, sizeof err));
	free(t);
	session_free(s);
	session_keys_free(k);
}

static void
test_wrong_host_and_key(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session_keys *other = session_keys_from_raw(key_b, 1);
	struct session *s = sample();
	char *t = handoff_token_seal(k, TEMPORAL, s, NONCE, "/", 2000, 30);
	char err[200];

	(void)state;
	assert_null(handoff_token_open(k, MINIO, t, 2000, err, sizeof err));
	assert_non_null(strstr(err, "another host"));
	assert_null(handoff_token_open(k, "https://temporal.test", t, 2000, err, sizeof err));
	assert_null(handoff_token_open(k, "http://temporal.test:8443", t, 2000, err, sizeof err));
	assert_null(handoff_token_open(other, TEMPORAL, t, 2000, err, sizeof err));
	/* a session cookie is not a token, and a token is not a session cookie */
	{
		char *cookie = session_seal_session(k, "session", s);

		assert_null(handoff_token_open(k, TEMPORAL, cookie, 2000, err, sizeof err));
		assert_null(session_open_session(k, "session", t));
		free(cookie);
	}
	free(t);
	session_free(s);
	session_keys_free(other);
	session_keys_free(k);
}

static void
test_tamper(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session *s = sample();
	char *t = handoff_token_seal(k, TEMPORAL, s, NONCE, "/", 2000, 30);
	size_t n = strlen(t);
	char err[200];

	(void)state;
	/* every character changed in turn */
	for (size_t i = 0; i < n; i++) {
		char *c = strdup(t);

		c[i] = c[i] == 'A' ? 'B' : 'A';
		assert_null(handoff_token_open(k, TEMPORAL, c, 2000, err, sizeof err));
		free(c);
	}
	/* cut short, extended, empty */
	{
		char *c = strdup(t);

		c[n - 1] = '\0';
		assert_null(handoff_token_open(k, TEMPORAL, c, 2000, err, sizeof err));
		free(c);
		assert_int_not_equal(asprintf(&c, "%sAA", t), -1);
		assert_null(handoff_token_open(k, TEMPORAL, c, 2000, err, sizeof err));
		free(c);
		assert_null(handoff_token_open(k, TEMPORAL, "", 2000, err, sizeof err));
	}
	/* a bad nonce is not sealed at all */
	assert_null(handoff_token_seal(k, TEMPORAL, s, "xyz", "/", 2000, 30));
	assert_null(handoff_token_seal(k, TEMPORAL, s, "00112233445566778899AABBCCDDEEFF", "/", 2000,
				       30));
	free(t);
	session_free(s);
	session_keys_free(k);
}

/* Reuse: the id is what the replay store claims; a second claim fails. */
static void
test_reuse_is_claimed_once(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session *s = sample();
	char *t = handoff_token_seal(k, TEMPORAL, s, NONCE, "/", 2000, 30);
	char err[200], key[64];
	struct handoff *h1 = handoff_token_open(k, TEMPORAL, t, 2000, err, sizeof err);
	struct handoff *h2 = handoff_token_open(k, TEMPORAL, t, 2001, err, sizeof err);

	(void)state;
	saml_replay_reset();
	assert_non_null(h1);
	assert_non_null(h2);
	assert_string_equal(h1->id, h2->id);
	snprintf(key, sizeof key, "handoff:%s", h1->id);
	assert_int_equal(saml_replay_check(key, h1->not_after + 1, 2000, 100), 0);
	assert_int_equal(saml_replay_check(key, h2->not_after + 1, 2001, 100), -1);
	handoff_free(h1);
	handoff_free(h2);
	free(t);
	session_free(s);
	session_keys_free(k);
}

static void
test_hosts_decisions(void **state)
{
	char *hosts[] = { TEMPORAL, MINIO };
	struct config_saml sc = { 0 };
	char *u, *kept;

	(void)state;
	sc.hosts = hosts;
	sc.nhosts = 2;
	sc.base_url = (char *)"https://posthog.test:8443";
	sc.prefix = (char *)"/saml";
	/* the Host header */
	assert_ptr_equal(auth_hosts_origin(&sc, "temporal.test:8443"), hosts[0]);
	assert_ptr_equal(auth_hosts_origin(&sc, "TEMPORAL.test:8443"), hosts[0]);
	assert_null(auth_hosts_origin(&sc, "temporal.test"));
	assert_null(auth_hosts_origin(&sc, "temporal.test:84431"));
	assert_ptr_equal(auth_hosts_origin(&sc, "minio.test"), hosts[1]);
	assert_ptr_equal(auth_hosts_origin(&sc, "minio.test:443"), hosts[1]);
	assert_ptr_equal(auth_hosts_origin(&sc, "minio.test."), hosts[1]);
	assert_null(auth_hosts_origin(&sc, "minio.test:80"));
	assert_null(auth_hosts_origin(&sc, "posthog.test:8443"));
	assert_null(auth_hosts_origin(&sc, NULL));
	/* absolute return URLs: on a listed host, then "/" */
	assert_ptr_equal(auth_hosts_url_origin(&sc, "https://temporal.test:8443/a?b"), hosts[0]);
	assert_ptr_equal(auth_hosts_url_origin(&sc, "https://minio.test/"), hosts[1]);
	assert_null(auth_hosts_url_origin(&sc, "https://minio.test"));
	assert_null(auth_hosts_url_origin(&sc, "https://minio.test@evil.test/"));
	assert_null(auth_hosts_url_origin(&sc, "https://minio.test.evil.test/"));
	assert_null(auth_hosts_url_origin(&sc, "https://minio.test:8443/"));
	assert_null(auth_hosts_url_origin(&sc, "http://minio.test/"));
	assert_null(auth_hosts_url_origin(&sc, "https://evil.test/"));
	assert_null(auth_hosts_url_origin(&sc, "//minio.test/"));
	assert_null(auth_hosts_url_origin(&sc, "/minio.test/"));
	/* the login URL at the auth host */
	u = auth_hosts_login_url(&sc, hosts[0], "/ui?x=1&y=2", NONCE, false);
	assert_string_equal(u, "https://posthog.test:8443/saml/login?return=https%3A//temporal."
			       "test%3A8443/ui%3Fx%3D1%26y%3D2&state=00112233445566778899aabbccddeeff");
	free(u);
	u = auth_hosts_login_url(&sc, hosts[1], "/", NONCE, true);
	assert_string_equal(u, "https://posthog.test:8443/saml/login?return=https%3A//minio.test/"
			       "&state=00112233445566778899aabbccddeeff&force=1");
	free(u);
	/* what the auth host keeps for after a login */
	assert_null(auth_hosts_keep("nonce", "https://minio.test/"));
	kept = auth_hosts_keep(NONCE, "https://minio.test/x");
	assert_non_null(kept);
	assert_string_equal(auth_hosts_kept_url(kept), "https://minio.test/x");
	assert_null(auth_hosts_kept_url("/just/a/path"));
	assert_null(auth_hosts_kept_url("00112233445566778899aabbccddeeff"));
	free(kept);
	/* the hand-off endpoint */
	assert_true(auth_hosts_is_handoff(&sc, "/saml/handoff"));
	assert_false(auth_hosts_is_handoff(&sc, "/saml/handoff/x"));
	assert_false(auth_hosts_is_handoff(&sc, "/saml/login"));
	sc.nhosts = 0;
	assert_false(auth_hosts_is_handoff(&sc, "/saml/handoff"));
}

static void
test_handoff_url(void **state)
{
	char *hosts[] = { TEMPORAL };
	struct config_saml sc = { 0 };
	struct session *s = sample();
	char *kept = auth_hosts_keep(NONCE, "https://temporal.test:8443/wf/1?q=2"), *url, err[200];
	const char *prefix = "https://temporal.test:8443/saml/handoff?token=";
	struct handoff *h;

	(void)state;
	sc.hosts = hosts;
	sc.nhosts = 1;
	sc.base_url = (char *)"https://posthog.test:8443";
	sc.prefix = (char *)"/saml";
	sc.keys = session_keys_from_raw(key_a, 1);
	assert_null(auth_hosts_handoff_url(&sc, s, "/wf/1", 2000));
	url = auth_hosts_handoff_url(&sc, s, kept, 2000);
	assert_non_null(url);
	assert_int_equal(strncmp(url, prefix, strlen(prefix)), 0);
	h = handoff_token_open(sc.keys, TEMPORAL, url + strlen(prefix), 2000, err, sizeof err);
	assert_non_null(h);
	assert_string_equal(h->target, "/wf/1?q=2");
	assert_string_equal(h->state, NONCE);
	handoff_free(h);
	free(url);
	free(kept);
	session_free(s);
	session_keys_free(sc.keys);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_keeps_session_id),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_wrong_host_and_key),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_reuse_is_claimed_once),
		cmocka_unit_test(test_hosts_decisions),
		cmocka_unit_test(test_handoff_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

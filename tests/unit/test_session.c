/* Unit tests for sealed session cookies (session.c) and the return-path
 * check (auth.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "saml.h"
#include "session.h"

static const unsigned char key_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char key_b[32] = "fedcba9876543210fedcba9876543210";

static struct session *
sample(void)
{
	struct session *s = session_new();

	s->issued = 1000;
	s->expires = 5000;
	s->last_seen = 1200;
	s->name_id = strdup("alice");
	assert_int_equal(session_add_attr(s, "Email", "alice@example.com"), 0);
	assert_int_equal(session_add_attr(s, "Roles", "a"), 0);
	assert_int_equal(session_add_attr(s, "Roles", "b"), 0);
	return s;
}

static void
test_roundtrip(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session *s = sample(), *o;
	char *text = session_seal_session(k, "session", s);

	(void)state;
	assert_non_null(text);
	/* cookie-safe alphabet */
	assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			 strlen(text));
	o = session_open_session(k, "session", text);
	assert_non_null(o);
	assert_string_equal(o->name_id, "alice");
	assert_int_equal(o->issued, 1000);
	assert_int_equal(o->expires, 5000);
	assert_int_equal(o->last_seen, 1200);
	assert_int_equal(o->nattrs, 3);
	assert_string_equal(session_attr(o, "Email"), "alice@example.com");
	assert_string_equal(o->attrs[2].value, "b");
	/* two seals of the same session differ (fresh nonce) */
	{
		char *again = session_seal_session(k, "session", s);

		assert_string_not_equal(text, again);
		free(again);
	}
	free(text);
	session_free(o);
	session_free(s);
	session_keys_free(k);
}

static void
test_tampered_every_byte(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session *s = sample();
	char *text = session_seal_session(k, "session", s);
	size_t n = strlen(text);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		char saved = text[i];
		struct session *o;

		text[i] = saved == 'A' ? 'B' : 'A';
		o = session_open_session(k, "session", text);
		/* a change in the last char may only touch padding bits, which
		 * the decoder refuses too */
		assert_null(o);
		text[i] = saved;
	}
	/* truncated, extended, empty, garbage */
	text[n - 1] = '\0';
	assert_null(session_open_session(k, "session", text));
	assert_null(session_open_session(k, "session", ""));
	assert_null(session_open_session(k, "session", "!!!!"));
	assert_null(session_open_session(k, "session", NULL));
	free(text);
	session_free(s);
	session_keys_free(k);
}

static void
test_foreign_key_purpose_and_rotation(void **state)
{
	unsigned char both[64];
	struct session_keys *a = session_keys_from_raw(key_a, 1);
	struct session_keys *b = session_keys_from_raw(key_b, 1);
	struct session_keys *ba;
	struct session *s = sample(), *o;
	char *text = session_seal_session(a, "session", s);
	char *text_b;

	(void)state;
	assert_null(session_open_session(b, "session", text));
	assert_null(session_open_session(a, "saml-request/x", text));
	/* rotation: new key first, old key still opens */
	memcpy(both, key_b, 32);
	memcpy(both + 32, key_a, 32);
	ba = session_keys_from_raw(both, 2);
	assert_int_equal(session_keys_count(ba), 2);
	o = session_open_session(ba, "session", text);
	assert_non_null(o);
	session_free(o);
	text_b = session_seal_session(ba, "session", s);
	o = session_open_session(b, "session", text_b);
	assert_non_null(o);
	session_free(o);
	assert_null(session_open_session(a, "session", text_b));
	free(text);
	free(text_b);
	session_free(s);
	session_keys_free(a);
	session_keys_free(b);
	session_keys_free(ba);
}

static void
test_validity(void **state)
{
	struct session *s = sample(); /* issued 1000, last 1200, expires 5000 */

	(void)state;
	assert_true(session_is_valid(s, 1300, 3600, 60));
	assert_false(session_is_valid(s, 5000, 0, 60));      /* expired */
	assert_false(session_is_valid(s, 4900, 3600, 60));   /* idle > 3600 */
	assert_true(session_is_valid(s, 4700, 0, 60));       /* no idle timeout */
	assert_false(session_is_valid(s, 900, 3600, 60));    /* issued in the future */
	assert_false(session_is_valid(NULL, 1300, 0, 0));
	session_free(s);
}

static void
test_decode_rejects_junk(void **state)
{
	struct session *s = sample();
	size_t len;
	unsigned char *buf = session_encode(s, &len);

	(void)state;
	for (size_t cut = 0; cut < len; cut++)
		assert_null(session_decode(buf, cut));
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	assert_null(session_decode(buf, len + 1)); /* trailing bytes */
	free(buf);
	session_free(s);
}

static void
test_keys_file(void **state)
{
	char dir[] = "/tmp/test_session_XXXXXX";
	char path[256], err[512];
	struct session_keys *k, *k2;
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/session.key", dir);
	k = session_keys_load(path, NULL, true, err, sizeof err);
	assert_non_null(k);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	k2 = session_keys_load(path, NULL, false, err, sizeof err); /* same key again */
	assert_non_null(k2);
	{
		struct session *s = sample(), *o;
		char *t = session_seal_session(k, "session", s);

		o = session_open_session(k2, "session", t);
		assert_non_null(o);
		session_free(o);
		session_free(s);
		free(t);
	}
	session_keys_free(k2);
	/* env keys add to the file's; malformed keys are named */
	k2 = session_keys_load(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff, "
				     "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=",
			       false, err, sizeof err);
	assert_non_null(k2);
	assert_int_equal(session_keys_count(k2), 3);
	session_keys_free(k2);
	assert_null(session_keys_load(path, "not-a-key", false, err, sizeof err));
	assert_non_null(strstr(err, "not a session key"));
	/* readable by others: refused */
	chmod(path, 0644);
	assert_null(session_keys_load(path, NULL, false, err, sizeof err));
	assert_non_null(strstr(err, "chmod 600"));
	f = fopen(path, "w");
	fputs("# comment only\n", f);
	fclose(f);
	chmod(path, 0600);
	assert_null(session_keys_load(path, NULL, false, err, sizeof err));
	unlink(path);
	rmdir(dir);
	session_keys_free(k);
}

static void
test_return_paths(void **state)
{
	static const char *const good[] = { "/", "/insights?x=1", "/a/b%20c", "/dashboard/%3Fq" };
	static const char *const bad[] = {
		"//evil.example", "/\\evil.example", "https:evil.example", "https://evil.example",
		"%2F%2Fevil", "/%2F%2Fevil", "/%2fevil", "/%5Cevil", "/%252F%252Fevil",
		"/%25252F%25252Fevil", "evil", "", "/a\\b", "/a\tb", "/%09/x", "/%0d%0aSet-Cookie:x",
		"/%", "/%zz", "javascript:alert(1)", "/%00",
	};

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(auth_return_path_ok(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (auth_return_path_ok(bad[i]))
			fail_msg("accepted %s", bad[i]);
	}
	assert_false(auth_return_path_ok(NULL));
}

static void
test_saml_time_and_replay(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(saml_parse_time("2024-05-01T10:00:00Z", &t), 0);
	assert_int_equal(t, 1714557600);
	assert_int_equal(saml_parse_time("2024-05-01T10:00:00.123456Z", &t), 0);
	assert_int_equal(t, 1714557600);
	assert_int_equal(saml_parse_time("2024-05-01T12:00:00+02:00", &t), 0);
	assert_int_equal(t, 1714557600);
	assert_int_equal(saml_parse_time("2024-05-01T10:00:00", &t), -1); /* no zone */
	assert_int_equal(saml_parse_time("2024-13-01T10:00:00Z", &t), -1);
	assert_int_equal(saml_parse_time("2024-05-01 10:00:00Z", &t), -1);
	assert_int_equal(saml_parse_time("2024-05-01T10:00:00Zjunk", &t), -1);

	saml_replay_reset();
	assert_int_equal(saml_replay_check("_a", 200, 100, 3), 0);
	assert_int_equal(saml_replay_check("_a", 200, 150, 3), -1);  /* replay */
	assert_int_equal(saml_replay_check("_b", 200, 150, 3), 0);
	assert_int_equal(saml_replay_check("_c", 300, 150, 3), 0);
	assert_int_equal(saml_replay_check("_d", 300, 150, 3), -1);  /* full of live ids */
	assert_int_equal(saml_replay_check("_d", 300, 250, 3), 0);   /* _a, _b expired */
	assert_int_equal(saml_replay_check("_a", 400, 250, 3), 0);   /* gone after expiry */
	saml_replay_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_tampered_every_byte),
		cmocka_unit_test(test_foreign_key_purpose_and_rotation),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_decode_rejects_junk),
		cmocka_unit_test(test_keys_file),
		cmocka_unit_test(test_return_paths),
		cmocka_unit_test(test_saml_time_and_replay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

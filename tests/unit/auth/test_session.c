/* Unit tests for sealed session cookies (session.c) and the return-path
 * check (auth.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/saml.h"
#include "auth/session.h"

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

/* session_open_cached gives what session_open_session gives, for the same
 * text only, and never across key sets, purposes or altered texts. */
static void
test_cached_matches_uncached(void **state)
{
	struct session_keys *a = session_keys_from_raw(key_a, 1);
	struct session_keys *b = session_keys_from_raw(key_b, 1);
	struct session *s = sample();
	char *text = session_seal_session(a, "session", s);
	char *other;
	const struct session *c, *c2;
	size_t n = strlen(text);

	(void)state;
	c = session_open_cached(a, "session", text);
	assert_non_null(c);
	assert_string_equal(c->name_id, "alice");
	assert_int_equal(c->issued, 1000);
	assert_int_equal(c->expires, 5000);
	assert_int_equal(c->last_seen, 1200);
	assert_int_equal(c->nattrs, 3);
	assert_string_equal(c->attrs[2].name, "Roles");
	assert_string_equal(c->attrs[2].value, "b");
	/* the second time it is the cached session */
	c2 = session_open_cached(a, "session", text);
	assert_ptr_equal(c, c2);
	/* another purpose, another key set: refused, cached or not */
	assert_null(session_open_cached(a, "saml-request/x", text));
	assert_null(session_open_cached(b, "session", text));
	assert_non_null(session_open_cached(a, "session", text));
	/* every altered text is refused although its slot holds the original */
	for (size_t i = 0; i < n; i++) {
		char saved = text[i];

		text[i] = saved == 'A' ? 'B' : 'A';
		assert_null(session_open_cached(a, "session", text));
		text[i] = saved;
		assert_non_null(session_open_cached(a, "session", text));
	}
	text[n - 1] = '\0';
	assert_null(session_open_cached(a, "session", text));
	assert_null(session_open_cached(a, "session", ""));
	assert_null(session_open_cached(a, "session", NULL));
	assert_null(session_open_cached(NULL, "session", "abc"));
	/* a session sealed for another purpose opens for that purpose only */
	other = session_seal_session(a, "saml-request/x", s);
	assert_non_null(session_open_cached(a, "saml-request/x", other));
	assert_null(session_open_cached(a, "session", other));
	free(other);
	free(text);
	session_free(s);
	session_keys_free(a);
	session_keys_free(b);
	session_thread_release();
}

/* A key set freed and another made (often at the same address) must not
 * open what the first one's cache and contexts hold; a new ring with the old
 * key second (rotation) still opens the old cookies. */
static void
test_cached_across_key_sets(void **state)
{
	unsigned char both[64];
	struct session_keys *a = session_keys_from_raw(key_a, 1), *ba;
	struct session *s = sample();
	char *text = session_seal_session(a, "session", s);
	char *text_b;
	const struct session *c;

	(void)state;
	assert_non_null(session_open_cached(a, "session", text));
	session_keys_free(a);
	a = session_keys_from_raw(key_b, 1);
	assert_null(session_open_cached(a, "session", text));
	assert_null(session_open_session(a, "session", text));
	text_b = session_seal_session(a, "session", s);
	assert_non_null(session_open_cached(a, "session", text_b));
	session_keys_free(a);
	memcpy(both, key_b, 32);
	memcpy(both + 32, key_a, 32);
	ba = session_keys_from_raw(both, 2);
	c = session_open_cached(ba, "session", text);
	assert_non_null(c);
	assert_string_equal(c->name_id, "alice");
	assert_non_null(session_open_cached(ba, "session", text_b));
	/* the plain API still gives the encoded bytes, NUL-terminated */
	{
		unsigned char *plain, *enc;
		size_t len, elen;

		assert_int_equal(session_open(ba, "session", text, &plain, &len), 0);
		enc = session_encode(s, &elen);
		assert_int_equal(len, elen);
		assert_memory_equal(plain, enc, len);
		assert_int_equal(plain[len], 0);
		free(plain);
		free(enc);
		assert_int_equal(session_open(ba, "nope", text, &plain, &len), -1);
		assert_null(plain);
		assert_int_equal(len, 0);
	}
	session_thread_release();
	session_thread_release(); /* twice is harmless */
	/* after a release the thread starts over */
	assert_non_null(session_open_cached(ba, "session", text));
	free(text);
	free(text_b);
	session_free(s);
	session_keys_free(ba);
	session_thread_release();
}

/* More sessions than cache slots: every one opens to its own identity. */
static void
test_cached_many(void **state)
{
	enum { N = 600 };
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	char *texts[N];

	(void)state;
	for (int i = 0; i < N; i++) {
		struct session *s = sample();
		char id[32];

		snprintf(id, sizeof id, "user-%d", i);
		free(s->name_id);
		s->name_id = strdup(id);
		texts[i] = session_seal_session(k, "session", s);
		assert_non_null(texts[i]);
		session_free(s);
	}
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			const struct session *c = session_open_cached(k, "session", texts[i]);
			char id[32];

			snprintf(id, sizeof id, "user-%d", i);
			assert_non_null(c);
			assert_string_equal(c->name_id, id);
		}
	}
	for (int i = 0; i < N; i++)
		free(texts[i]);
	session_keys_free(k);
	session_thread_release();
}

struct cached_thread_arg {
	const struct session_keys *k;
	const char *text;
	int ok;
};

static void *
cached_thread_main(void *p)
{
	struct cached_thread_arg *t = p;

	t->ok = 0;
	for (int i = 0; i < 1000; i++) {
		const struct session *c = session_open_cached(t->k, "session", t->text);

		if (c == NULL || strcmp(c->name_id, "alice") != 0)
			return NULL;
	}
	t->ok = 1;
	return NULL; /* the thread's cache is freed at exit (LeakSanitizer checks) */
}

/* Threads have caches of their own, freed when they exit. */
static void
test_cached_threads(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session *s = sample();
	char *text = session_seal_session(k, "session", s);
	struct cached_thread_arg args[4];
	pthread_t th[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i] = (struct cached_thread_arg){ k, text, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, cached_thread_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].ok, 1);
	}
	free(text);
	session_free(s);
	session_keys_free(k);
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
	/* a decoded last_seen of INT64_MIN: idle for ever, and no signed overflow in
	 * the idle check (UBSan; found by fuzz/fuzz_session.c, corpus file
	 * bug-last-seen-int64-min) */
	s->last_seen = INT64_MIN;
	assert_false(session_is_valid(s, 1300, 3600, 60));
	assert_true(session_is_valid(s, 1300, 0, 60));
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
		cmocka_unit_test(test_cached_matches_uncached),
		cmocka_unit_test(test_cached_across_key_sets),
		cmocka_unit_test(test_cached_many),
		cmocka_unit_test(test_cached_threads),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_decode_rejects_junk),
		cmocka_unit_test(test_keys_file),
		cmocka_unit_test(test_return_paths),
		cmocka_unit_test(test_saml_time_and_replay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

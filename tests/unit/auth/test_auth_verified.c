/* Unit tests for the thread's cache of verified session cookies
 * (auth_verified.c): a hit gives the session the text opens to, with its
 * identity header values; a changed, foreign, other-purpose or truncated
 * text never gets a cached session; a new key set empties the cache; two
 * sessions are never mixed up, also when many share the slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_verified.h"
#include "auth/session.h"
#include "auth/session_id.h"

static const unsigned char key_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char key_b[32] = "fedcba9876543210fedcba9876543210";

static struct config_saml_header headers[] = {
	{.name = "X-Auth-User", .attribute = "@nameid"},
	{.name = "X-Auth-Email", .attribute = "Email"},
	{.name = "X-Auth-Roles", .attribute = "Roles"},
	{.name = "X-Auth-Team", .attribute = "Team"},
	{.name = "X-Auth-Empty", .attribute = "Empty"},
};

/* A config_saml with keys <k> and the headers above. */
static struct config_saml
saml_with(struct session_keys *k)
{
	return (struct config_saml){.keys = k, .headers = headers,
				    .nheaders = sizeof headers / sizeof headers[0]};
}

/* A session for <name> sealed with <k> for <purpose>; caller frees. */
static char *
seal_for(struct session_keys *k, const char *purpose, const char *name, int64_t expires)
{
	struct session *s = session_new();
	char *text;

	assert_non_null(s);
	s->issued = 1000;
	s->expires = expires;
	s->last_seen = 1000;
	s->name_id = strdup(name);
	assert_int_equal(session_add_attr(s, "Email", "e@example.com"), 0);
	assert_int_equal(session_add_attr(s, "Roles", "a"), 0);
	assert_int_equal(session_add_attr(s, "Roles", "b"), 0);
	assert_int_equal(session_add_attr(s, "Empty", ""), 0);
	text = session_seal_session(k, purpose, s);
	assert_non_null(text);
	session_free(s);
	return text;
}

/* A hit gives the same entry, the session as sealed (its times untouched:
 * validity stays the caller's check) and the identity values made once. */
static void
test_hit_keeps_session_and_identity(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct config_saml sc = saml_with(k);
	char *text = seal_for(k, "session", "alice", 2000);
	struct auth_verified *v, *again;
	char sid[SESSION_ID_LEN + 1];

	(void)state;
	v = auth_verified_get(&sc, text, strlen(text));
	assert_non_null(v);
	assert_string_equal(v->s->name_id, "alice");
	assert_int_equal(v->s->expires, 2000); /* an expired session opens: the gate refuses it */
	assert_int_equal(v->nidentity, 5);
	assert_string_equal(v->identity[0], "alice");
	assert_string_equal(v->identity[1], "e@example.com");
	assert_string_equal(v->identity[2], "a, b");
	assert_null(v->identity[3]); /* no such attribute */
	assert_null(v->identity[4]); /* one empty value */
	session_id(v->s, sid);
	assert_string_equal(v->sid, sid);
	assert_int_equal(v->tlen, strlen(text));
	assert_string_equal(v->text, text);
	/* the cookie bytes need no NUL: a span inside a longer header */
	{
		size_t n = strlen(text);
		char *longer = malloc(n + 8);

		memcpy(longer, text, n);
		memcpy(longer + n, "; x=1", 6);
		again = auth_verified_get(&sc, longer, n);
		assert_ptr_equal(again, v);
		free(longer);
	}
	auth_verified_thread_release();
	free(text);
	session_keys_free(k);
}

/* Every changed text misses, whatever its slot: one character changed
 * anywhere, cut short, longer, sealed for another purpose, sealed with a key
 * the config does not hold, or with an embedded NUL. */
static void
test_tampered_foreign_other_purpose(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct session_keys *other = session_keys_from_raw(key_b, 1);
	struct config_saml sc = saml_with(k);
	char *text = seal_for(k, "session", "alice", 2000);
	char *foreign = seal_for(other, "session", "alice", 2000);
	char *tracking = seal_for(k, "saml-request/x", "alice", 2000);
	size_t n = strlen(text);
	char *copy = malloc(n + 2);

	(void)state;
	assert_non_null(auth_verified_get(&sc, text, n)); /* cached now */
	for (size_t i = 0; i < n; i++) {
		memcpy(copy, text, n + 1);
		copy[i] = copy[i] == 'A' ? 'B' : 'A';
		assert_null(auth_verified_get(&sc, copy, n));
		/* the genuine one still opens (again) */
		assert_non_null(auth_verified_get(&sc, text, n));
	}
	assert_null(auth_verified_get(&sc, text, n - 1));
	memcpy(copy, text, n);
	copy[n] = 'A';
	assert_null(auth_verified_get(&sc, copy, n + 1));
	memcpy(copy, text, n + 1);
	copy[n / 2] = '\0';
	assert_null(auth_verified_get(&sc, copy, n));
	assert_null(auth_verified_get(&sc, foreign, strlen(foreign)));
	assert_null(auth_verified_get(&sc, tracking, strlen(tracking)));
	assert_null(auth_verified_get(&sc, "", 0));
	assert_null(auth_verified_get(&sc, "abc", 3));
	auth_verified_thread_release();
	free(copy);
	free(text);
	free(foreign);
	free(tracking);
	session_keys_free(k);
	session_keys_free(other);
}

/* A new key set (a reload, a key change) never sees the old entries: a
 * cookie of a key that was dropped no longer opens, one of a kept key opens
 * again under the new set. */
/* A cookie that does not open never takes a slot: it cannot evict the
 * session cached there (the entry, with what the caller noted on it, stays). */
static void
test_junk_does_not_evict(void **state)
{
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct config_saml sc = saml_with(k);
	char *text = seal_for(k, "session", "alice", 2000);
	size_t n = strlen(text);
	char *junk = strdup(text);
	struct auth_verified *v;

	(void)state;
	assert_non_null(junk);
	v = auth_verified_get(&sc, text, n);
	assert_non_null(v);
	v->revoke_passed = 42; /* gone if the slot were filled again */
	junk[n - 1] = junk[n - 1] == 'A' ? 'B' : 'A'; /* same slot, does not open */
	assert_null(auth_verified_get(&sc, junk, n));
	v = auth_verified_get(&sc, text, n);
	assert_non_null(v);
	assert_int_equal(v->revoke_passed, 42);
	auth_verified_thread_release();
	free(junk);
	free(text);
	session_keys_free(k);
}

static void
test_new_key_set_drops_entries(void **state)
{
	unsigned char both[64];
	struct session_keys *a = session_keys_from_raw(key_a, 1);
	struct session_keys *b = session_keys_from_raw(key_b, 1);
	struct session_keys *ba;
	struct config_saml sa = saml_with(a), sb = saml_with(b), sba;
	char *text = seal_for(a, "session", "alice", 2000);
	struct auth_verified *v;

	(void)state;
	memcpy(both, key_b, 32);
	memcpy(both + 32, key_a, 32);
	ba = session_keys_from_raw(both, 2);
	sba = saml_with(ba);
	assert_non_null(auth_verified_get(&sa, text, strlen(text)));
	assert_null(auth_verified_get(&sb, text, strlen(text)));
	v = auth_verified_get(&sba, text, strlen(text));
	assert_non_null(v);
	assert_string_equal(v->s->name_id, "alice");
	/* and back: the first set's entries are gone, the text opens afresh */
	assert_null(auth_verified_get(&sb, text, strlen(text)));
	assert_non_null(auth_verified_get(&sa, text, strlen(text)));
	auth_verified_thread_release();
	free(text);
	session_keys_free(a);
	session_keys_free(b);
	session_keys_free(ba);
}

/* Many sessions, more than the slots, each looked up twice in turn: every
 * lookup gives the session of its own text, never a neighbour's. */
static void
test_sessions_never_mixed(void **state)
{
	enum { N = AUTH_VERIFIED_SLOTS * 3 };
	struct session_keys *k = session_keys_from_raw(key_a, 1);
	struct config_saml sc = saml_with(k);
	char **texts = calloc(N, sizeof *texts);
	char name[32];

	(void)state;
	for (size_t i = 0; i < N; i++) {
		snprintf(name, sizeof name, "user%zu", i);
		texts[i] = seal_for(k, "session", name, 2000 + (int64_t)i);
	}
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < N; i++) {
			size_t j = round == 0 ? i : (i * 7) % N;
			struct auth_verified *v = auth_verified_get(&sc, texts[j], strlen(texts[j]));

			snprintf(name, sizeof name, "user%zu", j);
			assert_non_null(v);
			assert_string_equal(v->s->name_id, name);
			assert_string_equal(v->identity[0], name);
			assert_int_equal(v->s->expires, 2000 + (int64_t)j);
			/* a hit right after gives the very same entry */
			assert_ptr_equal(auth_verified_get(&sc, texts[j], strlen(texts[j])), v);
		}
	for (size_t i = 0; i < N; i++)
		free(texts[i]);
	free(texts);
	auth_verified_thread_release();
	auth_verified_thread_release(); /* twice is harmless */
	session_keys_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_keeps_session_and_identity),
		cmocka_unit_test(test_tampered_foreign_other_purpose),
		cmocka_unit_test(test_junk_does_not_evict),
		cmocka_unit_test(test_new_key_set_drops_entries),
		cmocka_unit_test(test_sessions_never_mixed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

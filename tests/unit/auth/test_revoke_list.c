/* Unit tests for the revocation list (revoke_list.c) and the session id
 * (session_id.c): parsing hash fields, matching users by time and sessions
 * by id, duplicates, targets, and the id's stability. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/revoke_list.h"
#include "auth/session_id.h"

static void
test_fields_and_match(void **state)
{
	struct revoke_list *l = revoke_list_new();

	(void)state;
	assert_non_null(l);
	assert_int_equal(revoke_list_add(l, "user:alice", "1000"), 0);
	assert_int_equal(revoke_list_add(l, "session:AAAAAAAAAAAAAAAA", "900"), 0);
	assert_int_equal(revoke_list_add(l, "user:", "1000"), -1);
	assert_int_equal(revoke_list_add(l, "group:x", "1000"), -1);
	assert_int_equal(revoke_list_add(l, "user:bob", "soon"), -1);
	assert_int_equal(revoke_list_add(l, "user:bob", "-1"), -1);
	revoke_list_seal(l);
	assert_int_equal(revoke_list_count(l), 2);
	assert_true(revoke_list_has_sessions(l));
	/* a user: sessions issued at or before the revocation */
	assert_true(revoke_list_match(l, "alice", NULL, 999));
	assert_true(revoke_list_match(l, "alice", NULL, 1000));
	assert_false(revoke_list_match(l, "alice", NULL, 1001));
	assert_false(revoke_list_match(l, "alic", NULL, 10));
	assert_false(revoke_list_match(l, "bob", NULL, 10));
	/* a session: whatever its time */
	assert_true(revoke_list_match(l, "carol", "AAAAAAAAAAAAAAAA", 5000));
	assert_false(revoke_list_match(l, "carol", "AAAAAAAAAAAAAAAB", 5000));
	assert_false(revoke_list_match(NULL, "alice", "AAAAAAAAAAAAAAAA", 1));
	revoke_list_free(l);
}

static void
test_duplicates_keep_latest(void **state)
{
	struct revoke_list *l = revoke_list_new();
	char name[16];

	(void)state;
	assert_int_equal(revoke_list_add(l, "user:alice", "2000"), 0);
	assert_int_equal(revoke_list_add(l, "user:alice", "1000"), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "user:u%03d", i);
		assert_int_equal(revoke_list_add(l, name, "50"), 0);
	}
	revoke_list_seal(l);
	assert_int_equal(revoke_list_count(l), 101);
	assert_false(revoke_list_has_sessions(l));
	assert_true(revoke_list_match(l, "alice", NULL, 1500));
	assert_true(revoke_list_match(l, "u000", NULL, 50));
	assert_true(revoke_list_match(l, "u099", NULL, 50));
	assert_false(revoke_list_match(l, "u100", NULL, 50));
	revoke_list_free(l);
	revoke_list_free(NULL);
}

static void
test_targets(void **state)
{
	char field[32], err[256];

	(void)state;
	assert_int_equal(revoke_target_field("user=alice", field, sizeof(field), err, sizeof(err)), 0);
	assert_string_equal(field, "user:alice");
	assert_int_equal(revoke_target_field("session=abc", field, sizeof(field), err, sizeof(err)), 0);
	assert_string_equal(field, "session:abc");
	assert_int_equal(revoke_target_field("group=x", field, sizeof(field), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "name a user"));
	assert_int_equal(revoke_target_field("user=", field, sizeof(field), err, sizeof(err)), -1);
	assert_int_equal(revoke_target_field("user=a\nb", field, sizeof(field), err, sizeof(err)), -1);
	assert_int_equal(revoke_target_field("user=0123456789012345678901234567890", field,
					     sizeof(field), err, sizeof(err)), -1);
}

static void
test_session_id(void **state)
{
	struct session a = { .issued = 1700000000, .expires = 1700028800, .last_seen = 1700000000,
			     .name_id = (char *)"alice" };
	struct session b = a;
	char ida[SESSION_ID_LEN + 1], idb[SESSION_ID_LEN + 1];

	(void)state;
	session_id(&a, ida);
	assert_int_equal(strlen(ida), SESSION_ID_LEN);
	/* the idle timeout's re-seal keeps the id */
	b.last_seen += 600;
	session_id(&b, idb);
	assert_string_equal(ida, idb);
	/* known answer (tests/e2e/test_saml_revoke.py computes it alike) */
	assert_string_equal(ida, "s4kmCA8f3JCGmqDA");
	b.issued++;
	session_id(&b, idb);
	assert_string_not_equal(ida, idb);
	b = a;
	b.name_id = (char *)"alicf";
	session_id(&b, idb);
	assert_string_not_equal(ida, idb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_and_match),
		cmocka_unit_test(test_duplicates_keep_latest),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_session_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

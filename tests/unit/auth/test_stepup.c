/* Unit tests for step-up rules (stepup.c): which sessions meet a rule, what
 * the refusal says, old sessions without the recorded login, and the rule
 * carried through a sealed tracking cookie. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth/session.h"
#include "auth/stepup.h"

#define MFA "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"
#define PPT "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
#define NOW 1767225600

static char *mfa_classes[] = { (char *)MFA, (char *)"urn:example:otp" };

static struct session *
login(const char *class_ref, int64_t instant)
{
	struct session *s = session_new();

	s->name_id = strdup("alice");
	assert_int_equal(stepup_record(s, class_ref, instant), 0);
	return s;
}

static void
test_class_any_of(void **state)
{
	struct stepup_rule r = { .path = (char *)"sites[0].routes[1].step_up",
				 .classes = mfa_classes, .nclasses = 2 };
	struct session *mfa = login(MFA, NOW), *otp = login("urn:example:otp", NOW);
	struct session *pw = login(PPT, NOW);
	char why[256];

	(void)state;
	assert_true(stepup_satisfied(&r, mfa, NOW, 60, why, sizeof why));
	assert_true(stepup_satisfied(&r, otp, NOW + 86400, 60, why, sizeof why)); /* no max_age */
	assert_false(stepup_satisfied(&r, pw, NOW, 60, why, sizeof why));
	assert_string_equal(why, "AuthnContextClassRef \"" PPT "\" is not one of \"" MFA
				 "\", \"urn:example:otp\"");
	session_free(mfa);
	session_free(otp);
	session_free(pw);
}

static void
test_max_age(void **state)
{
	struct stepup_rule r = { .path = (char *)"step_up", .max_age = 300 };
	struct session *s = login(PPT, NOW);
	char why[256];

	(void)state;
	assert_true(stepup_satisfied(&r, s, NOW + 300, 60, why, sizeof why));
	assert_false(stepup_satisfied(&r, s, NOW + 301, 60, why, sizeof why));
	assert_string_equal(why, "signed in 301 s ago, more than max_age 300 s");
	/* within the clock skew in the future: counts as now; beyond: refused */
	assert_true(stepup_satisfied(&r, s, NOW - 60, 60, why, sizeof why));
	assert_false(stepup_satisfied(&r, s, NOW - 61, 60, why, sizeof why));
	assert_string_equal(why, "AuthnInstant 61 s in the future");
	session_free(s);
}

/* A session sealed before step-up existed: no recorded login.  It meets no
 * rule, and nothing else about it changes. */
static void
test_old_session(void **state)
{
	struct stepup_rule age = { .path = (char *)"step_up", .max_age = 300 };
	struct stepup_rule cls = { .path = (char *)"step_up", .classes = mfa_classes,
				   .nclasses = 1 };
	struct session *s = session_new();
	char why[256];

	(void)state;
	s->name_id = strdup("alice");
	assert_false(stepup_satisfied(&age, s, NOW, 60, why, sizeof why));
	assert_string_equal(why, "no AuthnInstant recorded for this session (max_age 300 s)");
	assert_false(stepup_satisfied(&cls, s, NOW, 60, why, sizeof why));
	assert_string_equal(why, "AuthnContextClassRef (none recorded) is not one of \"" MFA "\"");
	session_free(s);
}

/* The rule goes into the tracking cookie and comes out whole after a seal. */
static void
test_mark_round_trip(void **state)
{
	static const unsigned char key[SESSION_KEY_BYTES] = { 7 };
	struct session_keys *k = session_keys_from_raw(key, 1);
	struct stepup_rule r = { .path = (char *)"sites[0].step_up", .classes = mfa_classes,
				 .nclasses = 2, .minimum = true, .max_age = 900 };
	struct stepup_rule got;
	struct session *track = session_new(), *back;
	char *sealed;

	(void)state;
	track->name_id = strdup("_req1");
	track->expires = NOW + 600;
	assert_int_equal(session_add_attr(track, "return", "/admin"), 0);
	assert_int_equal(stepup_marked(track, &got), 0); /* a plain login carries none */
	assert_int_equal(stepup_mark(track, &r), 0);
	sealed = session_seal_session(k, "saml-request/x", track);
	assert_non_null(sealed);
	back = session_open_session(k, "saml-request/x", sealed);
	assert_non_null(back);
	assert_int_equal(stepup_marked(back, &got), 1);
	assert_string_equal(got.path, "sites[0].step_up");
	assert_int_equal(got.nclasses, 2);
	assert_string_equal(got.classes[0], MFA);
	assert_string_equal(got.classes[1], "urn:example:otp");
	assert_true(got.minimum);
	assert_int_equal(got.max_age, 900);
	assert_string_equal(session_attr(back, "return"), "/admin");
	free(got.classes);
	free(sealed);
	session_free(track);
	session_free(back);
	session_keys_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class_any_of),
		cmocka_unit_test(test_max_age),
		cmocka_unit_test(test_old_session),
		cmocka_unit_test(test_mark_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

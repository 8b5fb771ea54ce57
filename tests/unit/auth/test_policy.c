/* Unit tests for "require" rule trees (policy.c): evaluation, the attributes
 * named on the refusal page, and the "can never match" analysis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "auth/session.h"

static struct policy
leaf(enum policy_kind kind, const char *path, const char *attr, const char *value)
{
	struct policy p = { .kind = kind };

	p.path = strdup(path);
	p.attribute = strdup(attr);
	p.value = strdup(value);
	return p;
}

/* A list node of <n> terms (taken). */
static struct policy *
list(enum policy_kind kind, const char *path, size_t n, const struct policy *terms)
{
	struct policy *p = calloc(1, sizeof *p);

	p->kind = kind;
	p->path = strdup(path);
	p->terms = calloc(n, sizeof *p->terms);
	memcpy(p->terms, terms, n * sizeof *terms);
	p->nterms = n;
	return p;
}

static struct session *
user(const char *name_id, const char *email, const char *roles1, const char *roles2)
{
	struct session *s = session_new();

	s->name_id = strdup(name_id);
	if (email)
		assert_int_equal(session_add_attr(s, "Email", email), 0);
	if (roles1)
		assert_int_equal(session_add_attr(s, "Roles", roles1), 0);
	if (roles2)
		assert_int_equal(session_add_attr(s, "Roles", roles2), 0);
	return s;
}

static void
test_any_of_and_all_of(void **state)
{
	struct policy admins[] = {
		leaf(POLICY_CONTAINS, "r.any_of[0]", "Roles", "admin"),
		leaf(POLICY_DOMAIN, "r.any_of[1]", "Email", "example.com"),
		leaf(POLICY_EQUALS, "r.any_of[2]", "@nameid", "root"),
	};
	struct policy *any = list(POLICY_ANY_OF, "r.any_of", 3, admins);
	struct policy both[] = {
		leaf(POLICY_CONTAINS, "r.all_of[0]", "Roles", "admin"),
		leaf(POLICY_DOMAIN, "r.all_of[1]", "Email", "example.com"),
	};
	struct policy *all = list(POLICY_ALL_OF, "r.all_of", 2, both);
	struct session *alice = user("alice", "alice@EXAMPLE.com", "viewer", NULL);
	struct session *bob = user("bob", "bob@evil.example", "viewer, admin", NULL);
	struct session *mallory = user("mallory", "mallory@notexample.com", "super admin", NULL);
	struct session *root = user("root", NULL, NULL, NULL);
	struct session *carol = user("carol", "carol@example.com", "admin", NULL);
	struct session *two = user("dave", NULL, "x", "admin");
	const struct policy *failed;

	(void)state;
	assert_null(policy_check(any, alice));   /* domain, case-insensitive */
	assert_null(policy_check(any, bob));     /* a whole list item */
	assert_null(policy_check(any, root));    /* the NameID */
	assert_null(policy_check(any, two));     /* the second value */
	assert_ptr_equal(policy_check(any, mallory), any); /* no item, no domain */
	assert_null(policy_check(NULL, mallory));          /* no rules: everyone */

	assert_null(policy_check(all, carol));
	failed = policy_check(all, alice);
	assert_non_null(failed);
	assert_string_equal(failed->path, "r.all_of[0]");
	failed = policy_check(all, bob);
	assert_string_equal(failed->path, "r.all_of[1]");

	/* a domain or equals test wants exactly one value */
	assert_int_equal(session_add_attr(carol, "Email", "carol@example.com"), 0);
	assert_non_null(policy_check(all, carol));
	policy_free(any);
	policy_free(all);
	session_free(alice);
	session_free(bob);
	session_free(mallory);
	session_free(root);
	session_free(carol);
	session_free(two);
}

static void
test_attribute_names(void **state)
{
	struct policy t[] = {
		leaf(POLICY_CONTAINS, "p[0]", "Roles", "a"),
		leaf(POLICY_EQUALS, "p[1]", "Email", "x@y.z"),
		leaf(POLICY_CONTAINS, "p[2]", "Roles", "b"),
		leaf(POLICY_CONTAINS, "p[3]", "Role", "c"),
	};
	struct policy *p = list(POLICY_ANY_OF, "p", 4, t);
	char buf[64];

	(void)state;
	assert_string_equal(policy_attributes(p, buf, sizeof buf), "Roles or Email or Role");
	assert_string_equal(policy_attributes(&p->terms[0], buf, sizeof buf), "Roles");
	policy_free(p);
}

static void
test_never_matches(void **state)
{
	struct policy two_emails[] = {
		leaf(POLICY_EQUALS, "r.all_of[0]", "Email", "a@example.com"),
		leaf(POLICY_EQUALS, "r.all_of[1]", "Email", "b@example.com"),
	};
	struct policy ok_pair[] = {
		leaf(POLICY_EQUALS, "o.all_of[0]", "Email", "a@Example.com"),
		leaf(POLICY_DOMAIN, "o.all_of[1]", "Email", "example.COM"),
		leaf(POLICY_CONTAINS, "o.all_of[2]", "Roles", "a"),
		leaf(POLICY_CONTAINS, "o.all_of[3]", "Roles", "b"),
	};
	struct policy domains[] = {
		leaf(POLICY_DOMAIN, "d.all_of[0]", "Email", "example.com"),
		leaf(POLICY_EQUALS, "d.all_of[1]", "Email", "a@other.com"),
	};
	struct policy *never = list(POLICY_ALL_OF, "r.all_of", 2, two_emails);
	struct policy *fine = list(POLICY_ALL_OF, "o.all_of", 4, ok_pair);
	struct policy *dom = list(POLICY_ALL_OF, "d.all_of", 2, domains);
	struct policy alts[] = { *dom, leaf(POLICY_CONTAINS, "x.any_of[1]", "Roles", "a") };
	struct policy *any;
	char why[512];

	(void)state;
	assert_true(policy_never_matches(never, why, sizeof why));
	assert_non_null(strstr(why, "r.all_of[0] and r.all_of[1]"));
	assert_non_null(strstr(why, "\"Email\""));
	assert_null(strstr(why, "a@example.com")); /* never the values */
	assert_false(policy_never_matches(fine, why, sizeof why));
	assert_true(policy_never_matches(dom, why, sizeof why));
	/* an any_of with one possible term can match; with none it cannot */
	free(dom); /* its contents moved into alts[0] */
	any = list(POLICY_ANY_OF, "x.any_of", 2, alts);
	assert_false(policy_never_matches(any, why, sizeof why));
	policy_clear(&any->terms[1]);
	any->nterms = 1;
	assert_true(policy_never_matches(any, why, sizeof why));
	assert_non_null(strstr(why, "x.any_of: none of its terms"));
	policy_free(never);
	policy_free(fine);
	policy_free(any);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_any_of_and_all_of),
		cmocka_unit_test(test_attribute_names),
		cmocka_unit_test(test_never_matches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for proxy/forward_auth.c, the pieces of the verify endpoint:
 * the original request read from X-Original-URL or X-Forwarded-Host / -Uri /
 * -Method (one of each, both families agreeing), the answer mode from the
 * query, and the identity headers copied into the answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include <cmocka.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "proxy/forward_auth.h"

/* Headers from "Name: value" strings, NULL-ended. */
static void
fill(struct evkeyvalq *h, const char *const *lines)
{
	TAILQ_INIT(h);
	for (size_t i = 0; lines[i] != NULL; i++) {
		char name[64];
		const char *colon = strchr(lines[i], ':');

		assert_non_null(colon);
		snprintf(name, sizeof(name), "%.*s", (int)(colon - lines[i]), lines[i]);
		evhttp_add_header(h, name, colon + 2);
	}
}

/* forward_auth_original on <lines>: NULL, or the reason; <o> filled. */
static const char *
original(const char *const *lines, struct forward_auth_original *o)
{
	struct evkeyvalq h;
	const char *why;
	static char host[256], origin[512], method[32];

	fill(&h, lines);
	why = forward_auth_original(&h, o);
	if (why == NULL) {
		/* the values live in the headers: copy them out before freeing */
		snprintf(host, sizeof host, "%s", o->host);
		snprintf(origin, sizeof origin, "%s", o->origin);
		snprintf(method, sizeof method, "%s", o->method ? o->method : "(none)");
		o->origin = origin;
		o->method = method;
	}
	evhttp_clear_headers(&h);
	return why;
}

static void
test_original_url(void **state)
{
	struct forward_auth_original o;

	(void)state;
	assert_null(original((const char *const[]){ "X-Original-URL: https://app.test:8443/a/b?x=1",
						     "X-Original-Method: POST", NULL }, &o));
	assert_string_equal(o.host, "app.test:8443");
	assert_string_equal(o.origin, "/a/b?x=1");
	assert_string_equal(o.method, "POST");
	assert_null(original((const char *const[]){ "X-Original-URL: http://app.test", NULL }, &o));
	assert_string_equal(o.origin, "/");
	assert_string_equal(o.method, "(none)");
	/* agreeing families (ingress-nginx may send both) */
	assert_null(original((const char *const[]){ "X-Original-URL: https://app.test/a?x",
						     "X-Forwarded-Host: APP.test",
						     "X-Forwarded-Uri: /a?x", NULL }, &o));
	assert_string_equal(o.origin, "/a?x");
}

static void
test_forwarded(void **state)
{
	struct forward_auth_original o;

	(void)state;
	assert_null(original((const char *const[]){ "X-Forwarded-Host: app.test",
						     "X-Forwarded-Uri: /dash?q=1",
						     "X-Forwarded-Proto: https",
						     "X-Forwarded-Method: DELETE", NULL }, &o));
	assert_string_equal(o.host, "app.test");
	assert_string_equal(o.origin, "/dash?q=1");
	assert_string_equal(o.method, "DELETE");
}

static void
test_refused(void **state)
{
	struct forward_auth_original o;

	(void)state;
	assert_non_null(original((const char *const[]){ NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Forwarded-Uri: /a", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Forwarded-Host: a.test", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Original-URL: /a", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Original-URL: ftp://a.test/", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Original-URL: https://u@a.test/", NULL },
				 &o));
	assert_non_null(original((const char *const[]){ "X-Forwarded-Host: a.test, b.test",
							 "X-Forwarded-Uri: /a", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Forwarded-Host: a.test",
							 "X-Forwarded-Uri: a", NULL }, &o));
	/* twice, or the two families telling different stories */
	assert_non_null(original((const char *const[]){ "X-Original-URL: https://a.test/x",
							 "X-Original-URL: https://a.test/y", NULL },
				 &o));
	assert_non_null(original((const char *const[]){ "X-Forwarded-Host: a.test",
							 "X-Forwarded-Uri: /a",
							 "X-Forwarded-Uri: /b", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Original-URL: https://a.test/admin",
							 "X-Forwarded-Uri: /open", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Original-URL: https://a.test/admin",
							 "X-Forwarded-Host: b.test", NULL }, &o));
	assert_non_null(original((const char *const[]){ "X-Original-URL: https://a.test/",
							 "X-Original-Method: POST",
							 "X-Forwarded-Method: GET", NULL }, &o));
}

static void
test_mode_and_path(void **state)
{
	struct config_saml sc;

	(void)state;
	assert_false(forward_auth_redirect_mode(NULL));
	assert_false(forward_auth_redirect_mode("x=1"));
	assert_true(forward_auth_redirect_mode("mode=redirect"));
	assert_true(forward_auth_redirect_mode("a=b&mode=redirect"));
	assert_false(forward_auth_redirect_mode("mode=status"));
	memset(&sc, 0, sizeof sc);
	assert_false(forward_auth_is_verify(NULL, "/_portcullis/verify"));
	assert_false(forward_auth_is_verify(&sc, "/_portcullis/verify"));
	sc.forward_auth.path = (char *)"/_portcullis/verify";
	assert_true(forward_auth_is_verify(&sc, "/_portcullis/verify"));
	assert_false(forward_auth_is_verify(&sc, "/_portcullis/verify/x"));
	assert_string_equal(forward_auth_method("DELETE"), "DELETE");
	assert_null(forward_auth_method("BREW"));
	assert_null(forward_auth_method("get"));
}

static void
test_copy_identity(void **state)
{
	struct config_saml sc;
	struct config_saml_header hs[2] = { { (char *)"X-Auth-User", (char *)"@nameid" },
					    { (char *)"X-Auth-Roles", (char *)"Roles" } };
	struct evkeyvalq from, to;

	(void)state;
	memset(&sc, 0, sizeof sc);
	sc.headers = hs;
	sc.nheaders = 2;
	sc.assertion.header = (char *)"X-Portcullis-Assertion"; /* no keys: not copied */
	fill(&from, (const char *const[]){ "Cookie: a=b", "x-auth-user: alice",
					   "X-Auth-Roles: admin, staff",
					   "X-Portcullis-Assertion: e.y.z", NULL });
	TAILQ_INIT(&to);
	forward_auth_copy_identity(&sc, &from, &to);
	assert_string_equal(evhttp_find_header(&to, "X-Auth-User"), "alice");
	assert_string_equal(evhttp_find_header(&to, "X-Auth-Roles"), "admin, staff");
	assert_null(evhttp_find_header(&to, "Cookie"));
	assert_null(evhttp_find_header(&to, "X-Portcullis-Assertion"));
	evhttp_clear_headers(&from);
	evhttp_clear_headers(&to);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_original_url),
		cmocka_unit_test(test_forwarded),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_mode_and_path),
		cmocka_unit_test(test_copy_identity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for the readers of the CA's JSON documents in acme_order.c
 * (acme_order.h): directory, order, authorization (which challenge is
 * answered, and the error of a failed one) and renewal information.  The
 * steps that send requests are covered end to end (tests/e2e/test_acme_*.py);
 * fuzz/fuzz_acme.c feeds these readers arbitrary documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/acme.h"
#include "acme/acme_internal.h"
#include "acme/acme_order.h"

static json_t *
doc(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

static void
test_directory(void **state)
{
	struct acme_manager m;
	bool eab;
	json_t *d;

	(void)state;
	memset(&m, 0, sizeof(m));
	d = doc("{\"newNonce\":\"https://ca/n\",\"newAccount\":\"https://ca/a\","
		"\"newOrder\":\"https://ca/o\",\"renewalInfo\":\"https://ca/r\","
		"\"meta\":{\"externalAccountRequired\":true}}");
	assert_int_equal(acme_directory_read(&m, d, &eab), 0);
	assert_string_equal(m.url_new_order, "https://ca/o");
	assert_string_equal(m.url_renewal_info, "https://ca/r");
	assert_true(eab);
	json_decref(d);

	/* renewalInfo over http is dropped; newOrder over http refuses the directory */
	d = doc("{\"newNonce\":\"https://ca/n\",\"newAccount\":\"https://ca/a\","
		"\"newOrder\":\"https://ca/o\",\"renewalInfo\":\"http://ca/r\"}");
	assert_int_equal(acme_directory_read(&m, d, &eab), 0);
	assert_null(m.url_renewal_info);
	assert_false(eab);
	json_decref(d);
	d = doc("{\"newNonce\":\"https://ca/n\",\"newAccount\":\"https://ca/a\","
		"\"newOrder\":\"http://ca/o\"}");
	assert_int_equal(acme_directory_read(&m, d, &eab), -1);
	json_decref(d);
	free(m.url_new_nonce);
	free(m.url_new_account);
	free(m.url_new_order);
	free(m.url_renewal_info);
}

static void
test_order(void **state)
{
	struct acme_job job;
	const char *status;
	json_t *o;

	(void)state;
	memset(&job, 0, sizeof(job));
	o = doc("{\"status\":\"pending\",\"finalize\":\"https://ca/f\","
		"\"authorizations\":[\"https://ca/z1\",\"https://ca/z2\"]}");
	assert_int_equal(acme_order_read(&job, o, &status), 0);
	assert_string_equal(status, "pending");
	assert_string_equal(job.finalize_url, "https://ca/f");
	assert_int_equal(job.n_authz, 2);
	assert_string_equal(job.authz[1], "https://ca/z2");
	json_decref(o);

	/* a later poll adds the certificate URL and keeps the authorizations */
	o = doc("{\"status\":\"valid\",\"certificate\":\"https://ca/c\",\"authorizations\":[]}");
	assert_int_equal(acme_order_read(&job, o, &status), 0);
	assert_string_equal(job.cert_url, "https://ca/c");
	assert_int_equal(job.n_authz, 2);
	json_decref(o);

	o = doc("{\"finalize\":\"https://ca/f\"}");
	assert_int_equal(acme_order_read(&job, o, &status), -1); /* no status */
	json_decref(o);
	free(job.finalize_url);
	free(job.cert_url);
	acme_free_strv(job.authz, job.n_authz);
}

static void
test_authz(void **state)
{
	struct acme_authz_choice c;
	char detail[256];
	json_t *a;

	(void)state;
	a = doc("{\"identifier\":{\"type\":\"dns\",\"value\":\"a.example\"},\"challenges\":["
		"{\"type\":\"dns-01\",\"url\":\"https://ca/c0\",\"token\":\"t0\"},"
		"{\"type\":\"tls-alpn-01\",\"url\":\"https://ca/c1\",\"token\":\"t1\"},"
		"{\"type\":\"http-01\",\"url\":\"https://ca/c2\",\"token\":\"t2\"}]}");
	assert_int_equal(acme_authz_choose(a, ACME_CHALLENGE_HTTP01 | ACME_CHALLENGE_TLSALPN01, &c),
			 ACME_AUTHZ_OK);
	assert_string_equal(c.type, "http-01"); /* http-01 first when both are enabled */
	assert_string_equal(c.token, "t2");
	assert_string_equal(c.name, "a.example");
	assert_int_equal(acme_authz_choose(a, ACME_CHALLENGE_TLSALPN01, &c), ACME_AUTHZ_OK);
	assert_string_equal(c.url, "https://ca/c1");
	assert_int_equal(acme_authz_choose(a, 0, &c), ACME_AUTHZ_NONE);
	json_decref(a);

	/* a token that would leave the challenge folder is not used */
	a = doc("{\"identifier\":{\"value\":\"a.example\"},\"challenges\":["
		"{\"type\":\"http-01\",\"url\":\"https://ca/c\",\"token\":\"../x\"}]}");
	assert_int_equal(acme_authz_choose(a, ACME_CHALLENGE_HTTP01, &c), ACME_AUTHZ_UNUSABLE);
	json_decref(a);

	a = doc("{\"challenges\":[{\"type\":\"http-01\"},{\"type\":\"tls-alpn-01\","
		"\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\","
		"\"detail\":\"refused\"}}]}");
	assert_int_equal(acme_authz_choose(a, ACME_CHALLENGE_HTTP01, &c), ACME_AUTHZ_NONE);
	acme_authz_error(a, detail, sizeof(detail));
	assert_string_equal(detail, "tls-alpn-01 urn:ietf:params:acme:error:connection: refused");
	json_decref(a);
}

static void
test_ari_window(void **state)
{
	time_t start, end;
	json_t *r;

	(void)state;
	r = doc("{\"suggestedWindow\":{\"start\":\"2026-02-01T00:00:00Z\","
		"\"end\":\"2026-02-03T00:00:00Z\"}}");
	assert_int_equal(acme_ari_window(r, &start, &end), 0);
	assert_int_equal(end - start, 2 * 86400);
	json_decref(r);
	r = doc("{\"suggestedWindow\":{\"start\":\"2026-02-03T00:00:00Z\","
		"\"end\":\"2026-02-01T00:00:00Z\"}}");
	assert_int_equal(acme_ari_window(r, &start, &end), -1); /* reversed */
	json_decref(r);
	r = doc("{\"suggestedWindow\":\"soon\"}");
	assert_int_equal(acme_ari_window(r, &start, &end), -1);
	json_decref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_authz),
		cmocka_unit_test(test_ari_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

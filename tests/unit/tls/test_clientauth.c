/*
 * Unit tests for tls_clientauth: which client-certificate policy a name gets
 * (exact, "*.parent" one label up, the default, an explicit "none"), policies
 * shared by the same file and mode, the verify mode a handshake is set up
 * with, the 421 decision, and the load errors.  Real SSL objects; no
 * handshake (tests/e2e/test_tls_client_certs.py has those).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "tls/tls_clientauth.h"

static char dir[64];
static char ca1[128], ca2[128], junk[128];

/* A self-signed CA certificate with CN <cn>, PEM into <path>. */
static void
write_ca(const char *path, const char *cn)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	FILE *f;

	assert_non_null(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_clientauth.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(ca1, sizeof(ca1), "%s/ca1.pem", dir);
	snprintf(ca2, sizeof(ca2), "%s/ca2.pem", dir);
	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
	write_ca(ca1, "CA one");
	write_ca(ca2, "CA two");
	f = fopen(junk, "w");
	if (f == NULL)
		return -1;
	fputs("not a certificate\n", f);
	fclose(f);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(ca1);
	unlink(ca2);
	unlink(junk);
	return rmdir(dir);
}

/* A server SSL with map <m>, set up as if its ClientHello named <sni>. */
static SSL *
conn_for(SSL_CTX *ctx, struct tls_client_auth_map *m, const char *sni)
{
	SSL *ssl = SSL_new(ctx);

	assert_non_null(ssl);
	if (m != NULL)
		assert_int_equal(tls_set_client_auth(ssl, m), 0);
	assert_int_equal(tls_client_auth_handshake(ssl, sni), 0);
	return ssl;
}

static void
test_policies_and_names(void **state)
{
	struct tls_client_auth_map *m = tls_client_auth_map_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char err[256];
	int req, req_again, opt, other;
	SSL *ssl;

	(void)state;
	assert_non_null(m);
	assert_false(tls_client_auth_map_active(m));
	req = tls_client_auth_map_policy(m, ca1, true, err, sizeof(err));
	req_again = tls_client_auth_map_policy(m, ca1, true, err, sizeof(err));
	opt = tls_client_auth_map_policy(m, ca1, false, err, sizeof(err));
	other = tls_client_auth_map_policy(m, ca2, true, err, sizeof(err));
	assert_true(req >= 0 && opt >= 0 && other >= 0);
	assert_int_equal(req, req_again); /* same file, same mode: one policy */
	assert_true(req != opt && req != other && opt != other);
	assert_int_equal(tls_client_auth_map_name(m, "a.test", req), 0);
	assert_int_equal(tls_client_auth_map_name(m, "a2.test", req), 0);
	assert_int_equal(tls_client_auth_map_name(m, "*.w.test", opt), 0);
	assert_int_equal(tls_client_auth_map_name(m, "open.test", -1), 0);
	assert_int_equal(tls_client_auth_map_name(m, "a.test", other), 0); /* first one kept */
	tls_client_auth_map_default(m, other);
	assert_true(tls_client_auth_map_active(m));

	ssl = conn_for(ctx, m, "a.test");
	assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	assert_int_equal(sk_X509_NAME_num(SSL_get_client_CA_list(ssl)), 1);
	assert_false(tls_client_auth_misdirected(ssl, "a.test"));
	assert_false(tls_client_auth_misdirected(ssl, "a2.test")); /* same policy */
	assert_true(tls_client_auth_misdirected(ssl, "x.w.test"));
	assert_true(tls_client_auth_misdirected(ssl, "open.test"));
	assert_true(tls_client_auth_misdirected(ssl, "unknown.test")); /* the default */
	assert_true(tls_client_auth_misdirected(ssl, NULL));
	assert_null(tls_client_identity(ssl)); /* no certificate came */
	SSL_free(ssl);

	ssl = conn_for(ctx, m, "x.w.test");
	assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_PEER);
	assert_false(tls_client_auth_misdirected(ssl, "y.w.test"));
	assert_true(tls_client_auth_misdirected(ssl, "y.x.w.test")); /* one label only */
	assert_true(tls_client_auth_misdirected(ssl, "w.test"));
	SSL_free(ssl);

	ssl = conn_for(ctx, m, "open.test");
	assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_NONE);
	assert_true(tls_client_auth_misdirected(ssl, "a.test"));
	SSL_free(ssl);

	ssl = conn_for(ctx, m, NULL); /* no SNI: the default */
	assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	assert_false(tls_client_auth_misdirected(ssl, "unknown.test"));
	assert_false(tls_client_auth_misdirected(ssl, ""));
	assert_true(tls_client_auth_misdirected(ssl, "a.test"));
	SSL_free(ssl);

	ssl = conn_for(ctx, NULL, "a.test"); /* a listener without policies */
	assert_false(tls_client_auth_misdirected(ssl, "a.test"));
	assert_false(tls_client_auth_misdirected(ssl, "x.w.test"));
	assert_null(tls_client_identity(ssl));
	SSL_free(ssl);

	/* The map outlives a release by its owner while a connection holds it. */
	ssl = conn_for(ctx, m, "a.test");
	tls_client_auth_map_unref(m);
	assert_false(tls_client_auth_misdirected(ssl, "a2.test"));
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static void
test_load_errors(void **state)
{
	struct tls_client_auth_map *m = tls_client_auth_map_new();
	char err[256], missing[160];

	(void)state;
	snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
	assert_int_equal(tls_client_auth_map_policy(m, missing, true, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot read"));
	assert_non_null(strstr(err, "missing.pem"));
	assert_int_equal(tls_client_auth_map_policy(m, junk, true, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "holds no PEM certificate"));
	assert_int_equal(tls_client_auth_map_policy(m, ca1, true, err, sizeof(err)), 0);
	tls_client_auth_map_unref(m);
	tls_client_auth_map_unref(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policies_and_names),
		cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

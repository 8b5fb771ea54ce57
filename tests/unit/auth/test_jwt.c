/* Unit tests for the identity assertion's keys and tokens (jwt.c, assertion.c):
 * key files (created 0600, refused when readable by others, P-256 only),
 * rotation (every key published, the first signs), signatures that verify
 * with the published key, and the per-thread token cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acme/acme_jws.h"
#include "auth/assertion.h"
#include "auth/jwt.h"
#include "auth/session.h"
#include "base/b64url.h"

static char dir[] = "/tmp/portcullis-test-jwt-XXXXXX";

static char *
key_pem(void)
{
	EVP_PKEY *k = acme_jws_key_generate();
	char *pem = acme_jws_key_pem(k);

	EVP_PKEY_free(k);
	return pem;
}

/* <token>'s signature verifies with the public key of the JWK <jwk>. */
static bool
verifies(const char *token, json_t *jwk)
{
	unsigned char x[40], y[40], sig[70], pub[65];
	const char *dot2 = strrchr(token, '.');
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = ECDSA_SIG_new();
	unsigned char *der = NULL;
	int derlen;
	bool ok = false;
	OSSL_PARAM params[3];

	assert_int_equal(b64url_decode(json_string_value(json_object_get(jwk, "x")), 43, x), 32);
	assert_int_equal(b64url_decode(json_string_value(json_object_get(jwk, "y")), 43, y), 32);
	assert_int_equal(b64url_decode(dot2 + 1, strlen(dot2 + 1), sig), 64);
	pub[0] = 4;
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	params[0] = OSSL_PARAM_construct_utf8_string("group", (char *)"prime256v1", 0);
	params[1] = OSSL_PARAM_construct_octet_string("pub", pub, sizeof pub);
	params[2] = OSSL_PARAM_construct_end();
	assert_int_equal(EVP_PKEY_fromdata_init(pc), 1);
	assert_int_equal(EVP_PKEY_fromdata(pc, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	derlen = i2d_ECDSA_SIG(es, &der);
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)token,
			     (size_t)(dot2 - token)) == 1)
		ok = true;
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(key);
	return ok;
}

/* The decoded JSON of part <i> (0 header, 1 payload) of <token>. */
static json_t *
part(const char *token, int i)
{
	const char *p = token, *e;
	unsigned char buf[2048];
	long n;

	if (i == 1)
		p = strchr(token, '.') + 1;
	e = strchr(p, '.');
	n = b64url_decode(p, (size_t)(e - p), buf);
	assert_true(n > 0);
	return json_loadb((const char *)buf, (size_t)n, 0, NULL);
}

static void
test_file_created_and_checked(void **state)
{
	char file[128], err[512];
	struct jwt_keys *k;
	struct stat st;
	FILE *f;

	(void)state;
	snprintf(file, sizeof file, "%s/new.key", dir);
	k = jwt_keys_load(file, NULL, true, err, sizeof err);
	assert_non_null(k);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(jwt_keys_count(k), 1);
	jwt_keys_free(k);
	/* not created when asked not to */
	snprintf(file, sizeof file, "%s/absent.key", dir);
	assert_null(jwt_keys_load(file, NULL, false, err, sizeof err));
	/* readable by others */
	snprintf(file, sizeof file, "%s/new.key", dir);
	chmod(file, 0644);
	assert_null(jwt_keys_load(file, NULL, false, err, sizeof err));
	assert_non_null(strstr(err, "readable by others"));
	unlink(file);
	/* an RSA key is not an ES256 key */
	{
		EVP_PKEY *rsa = EVP_RSA_gen(2048);

		snprintf(file, sizeof file, "%s/rsa.key", dir);
		f = fopen(file, "w");
		PEM_write_PrivateKey(f, rsa, NULL, NULL, 0, NULL, NULL);
		fclose(f);
		chmod(file, 0600);
		EVP_PKEY_free(rsa);
		assert_null(jwt_keys_load(file, NULL, false, err, sizeof err));
		assert_non_null(strstr(err, "not an EC P-256 key"));
		unlink(file);
	}
	assert_null(jwt_keys_load(NULL, "no pem here", false, err, sizeof err));
	assert_non_null(strstr(err, "no PEM private key"));
}

static void
test_rotation_and_signature(void **state)
{
	char *a = key_pem(), *b = key_pem(), *both, err[512];
	struct jwt_keys *k, *kb;
	json_t *jwks, *keys, *h, *p;
	char *token;

	(void)state;
	assert_true(asprintf(&both, "%s%s", a, b) > 0);
	k = jwt_keys_load(NULL, both, false, err, sizeof err);
	assert_non_null(k);
	kb = jwt_keys_load(NULL, b, false, err, sizeof err);
	assert_non_null(kb);
	jwks = json_loads(jwt_keys_jwks(k), 0, NULL);
	assert_non_null(jwks);
	keys = json_object_get(jwks, "keys");
	assert_int_equal(json_array_size(keys), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")),
			    jwt_keys_kid(k));
	assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 1), "kid")),
			    jwt_keys_kid(kb));
	assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "alg")),
			    "ES256");
	token = jwt_sign(k, "{\"sub\":\"alice\"}");
	assert_non_null(token);
	h = part(token, 0);
	p = part(token, 1);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), jwt_keys_kid(k));
	assert_string_equal(json_string_value(json_object_get(p, "sub")), "alice");
	assert_true(verifies(token, json_array_get(keys, 0)));
	assert_false(verifies(token, json_array_get(keys, 1))); /* not the previous key */
	/* another valid base64url character inside the signature */
	token[strlen(token) - 5] = token[strlen(token) - 5] == 'A' ? 'B' : 'A';
	assert_false(verifies(token, json_array_get(keys, 0)));
	free(token);
	json_decref(h);
	json_decref(p);
	json_decref(jwks);
	jwt_keys_free(k);
	jwt_keys_free(kb);
	free(both);
	OPENSSL_cleanse(a, strlen(a));
	free(a);
	free(b);
}

static void
test_token_claims_and_cache(void **state)
{
	char *a = key_pem(), err[512];
	struct jwt_keys *k = jwt_keys_load(NULL, a, false, err, sizeof err);
	struct session *s = session_new();
	struct assertion_params p = { .keys = k, .issuer = "posthog", .audience = "web",
				      .email_attr = "Email", .groups_attr = "Roles",
				      .lifetime = 60, .session_end = 10000 };
	const char *t1;
	char *first;
	json_t *c;

	(void)state;
	assert_non_null(k);
	s->name_id = strdup("alice");
	session_add_attr(s, "Email", "alice@example.com");
	session_add_attr(s, "Roles", "a");
	session_add_attr(s, "Roles", "b");
	t1 = assertion_token(&p, "cookie-1", s, 1000);
	assert_non_null(t1);
	first = strdup(t1);
	c = part(first, 1);
	assert_string_equal(json_string_value(json_object_get(c, "iss")), "posthog");
	assert_string_equal(json_string_value(json_object_get(c, "aud")), "web");
	assert_string_equal(json_string_value(json_object_get(c, "sub")), "alice");
	assert_string_equal(json_string_value(json_object_get(c, "email")), "alice@example.com");
	assert_int_equal(json_array_size(json_object_get(c, "groups")), 2);
	assert_int_equal(json_integer_value(json_object_get(c, "iat")), 1000);
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), 1060);
	json_decref(c);
	/* reused while more than half the lifetime is left */
	assert_string_equal(assertion_token(&p, "cookie-1", s, 1029), first);
	assert_string_not_equal(assertion_token(&p, "cookie-1", s, 1031), first);
	/* another audience or session: another token */
	p.audience = "admin";
	c = part(assertion_token(&p, "cookie-1", s, 1000), 1);
	assert_string_equal(json_string_value(json_object_get(c, "aud")), "admin");
	json_decref(c);
	/* never past the session's end; nothing once it has ended */
	p.session_end = 1010;
	c = part(assertion_token(&p, "cookie-2", s, 1000), 1);
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), 1010);
	json_decref(c);
	assert_null(assertion_token(&p, "cookie-3", s, 1010));
	assertion_thread_release();
	free(first);
	session_free(s);
	jwt_keys_free(k);
	free(a);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_created_and_checked),
		cmocka_unit_test(test_rotation_and_signature),
		cmocka_unit_test(test_token_claims_and_cache),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

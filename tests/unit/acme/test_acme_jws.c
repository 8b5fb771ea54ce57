/*
 * Unit tests for acme_jws and acme_challenge's certificate: base64url against
 * RFC 4648 vectors, the JWK thumbprint against RFC 7638's exact JSON, ES256
 * signatures as raw r||s that verify with OpenSSL, flattened JWS layout,
 * HS256 EAB against an independent HMAC, CSRs, certificate parsing, DNS name
 * checks, and the TLS-ALPN-01 certificate's acmeIdentifier extension.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "acme/acme.h"
#include "acme/acme_challenge.h"
#include "acme/acme_jws.h"

static void
test_b64url_vectors(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = { { "", "" },         { "f", "Zg" },         { "fo", "Zm8" },
		  { "foo", "Zm9v" },  { "foob", "Zm9vYg" },  { "fooba", "Zm9vYmE" },
		  { "foobar", "Zm9vYmFy" } };
	static const unsigned char bin[] = { 0xfb, 0xff, 0xbf, 0x3e };
	size_t i, n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *e = acme_b64url_encode(v[i].in, strlen(v[i].in));
		unsigned char *d;

		assert_string_equal(e, v[i].out);
		d = acme_b64url_decode(e, &n);
		assert_non_null(d);
		assert_int_equal(n, strlen(v[i].in));
		assert_memory_equal(d, v[i].in, n);
		free(d);
		free(e);
	}
	/* URL alphabet, never '+', '/' or '=' */
	char *e = acme_b64url_encode(bin, sizeof(bin));
	assert_string_equal(e, "-_-_Pg");
	free(e);
	assert_null(acme_b64url_decode("Zm9v=", &n));
	assert_null(acme_b64url_decode("Zm+v", &n));
	assert_null(acme_b64url_decode("Z", &n));
	assert_null(acme_b64url_decode("Zh", &n)); /* non-zero leftover bits */
}

/* A P-256 key from RFC 7638-style coordinates (the RFC 7515 A.3 example key). */
static EVP_PKEY *
example_key(void)
{
	static const char x64[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
	static const char y64[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
	static const char d64[] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
	unsigned char pub[65], *x, *y, *d;
	size_t xl, yl, dl;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;
	BIGNUM *priv;

	x = acme_b64url_decode(x64, &xl);
	y = acme_b64url_decode(y64, &yl);
	d = acme_b64url_decode(d64, &dl);
	assert_int_equal(xl, 32);
	assert_int_equal(yl, 32);
	pub[0] = 4;
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	priv = BN_bin2bn(d, (int)dl, NULL);
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(priv);
	free(x);
	free(y);
	free(d);
	return key;
}

static void
test_jwk_and_thumbprint(void **state)
{
	EVP_PKEY *key = example_key();
	char *jwk = acme_jws_jwk(key), *tp = acme_jws_thumbprint(key), *expect;
	unsigned char digest[SHA256_DIGEST_LENGTH];

	/* exactly these members, in this order, no spaces */
	assert_string_equal(jwk, "{\"crv\":\"P-256\",\"kty\":\"EC\","
				 "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
				 "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}");
	SHA256((const unsigned char *)jwk, strlen(jwk), digest);
	expect = acme_b64url_encode(digest, sizeof(digest));
	assert_string_equal(tp, expect);
	assert_int_equal(strlen(tp), 43);
	free(expect);
	free(jwk);
	free(tp);
	EVP_PKEY_free(key);

	/* not P-256: refused */
	EVP_PKEY *rsa = EVP_RSA_gen(1024);
	assert_null(acme_jws_jwk(rsa));
	assert_null(acme_jws_thumbprint(rsa));
	EVP_PKEY_free(rsa);
}

/* Verify a raw r||s ES256 signature with OpenSSL. */
static bool
es256_verify(EVP_PKEY *key, const char *data, const unsigned char sig[64])
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	unsigned char *der = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int len, ok;

	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	len = i2d_ECDSA_SIG(es, &der);
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestVerify(md, der, (size_t)len, (const unsigned char *)data, strlen(data)) == 1;
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return ok;
}

static void
test_es256_raw_signature(void **state)
{
	EVP_PKEY *key = acme_jws_key_generate();
	unsigned char sig[64];
	int i;

	/* many signatures: some r or s have leading zero bytes, which must stay */
	for (i = 0; i < 200; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "message %d", i);
		assert_int_equal(acme_jws_es256_sign(key, msg, strlen(msg), sig), 0);
		assert_true(es256_verify(key, msg, sig));
		sig[10] ^= 1;
		assert_false(es256_verify(key, msg, sig));
	}
	EVP_PKEY_free(key);
}

static char *
b64_field_decoded(json_t *jws, const char *field)
{
	size_t n;
	unsigned char *d = acme_b64url_decode(json_string_value(json_object_get(jws, field)), &n);
	char *s = malloc(n + 1);

	memcpy(s, d, n);
	s[n] = '\0';
	free(d);
	return s;
}

static void
test_flattened_jws(void **state)
{
	EVP_PKEY *key = acme_jws_key_generate();
	char *text = acme_jws_sign(key, NULL, "nonce-1", "https://ca/new-acct", "{\"a\":1}");
	json_t *jws = json_loads(text, 0, NULL), *hdr;
	char *protected_json, *payload, *input;
	unsigned char *sig;
	size_t siglen;

	assert_non_null(jws);
	assert_int_equal(json_object_size(jws), 3);
	protected_json = b64_field_decoded(jws, "protected");
	hdr = json_loads(protected_json, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(hdr, "nonce")), "nonce-1");
	assert_string_equal(json_string_value(json_object_get(hdr, "url")), "https://ca/new-acct");
	assert_non_null(json_object_get(hdr, "jwk"));
	assert_null(json_object_get(hdr, "kid"));
	payload = b64_field_decoded(jws, "payload");
	assert_string_equal(payload, "{\"a\":1}");
	sig = acme_b64url_decode(json_string_value(json_object_get(jws, "signature")), &siglen);
	assert_int_equal(siglen, 64);
	input = malloc(strlen(text));
	sprintf(input, "%s.%s", json_string_value(json_object_get(jws, "protected")),
		json_string_value(json_object_get(jws, "payload")));
	assert_true(es256_verify(key, input, sig));
	free(input);
	free(sig);
	free(payload);
	free(protected_json);
	json_decref(hdr);
	json_decref(jws);
	free(text);

	/* kid form and POST-as-GET: payload is the empty string */
	text = acme_jws_sign(key, "https://ca/acct/1", "n2", "https://ca/order/1", "");
	jws = json_loads(text, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(jws, "payload")), "");
	protected_json = b64_field_decoded(jws, "protected");
	hdr = json_loads(protected_json, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(hdr, "kid")), "https://ca/acct/1");
	assert_null(json_object_get(hdr, "jwk"));
	free(protected_json);
	json_decref(hdr);
	json_decref(jws);
	free(text);
	EVP_PKEY_free(key);
}

static void
test_eab_hs256(void **state)
{
	EVP_PKEY *key = example_key();
	static const unsigned char hmac_key[] = "0123456789abcdef0123456789abcdef";
	char *text = acme_jws_eab(key, "kid-7", hmac_key, 32, "https://ca/new-acct");
	json_t *jws = json_loads(text, 0, NULL);
	char *hdr = b64_field_decoded(jws, "protected"), *payload = b64_field_decoded(jws, "payload");
	char *jwk = acme_jws_jwk(key), input[1024], *expect;
	unsigned char mac[32];
	unsigned int maclen;

	assert_string_equal(hdr, "{\"alg\":\"HS256\",\"kid\":\"kid-7\",\"url\":\"https://ca/new-acct\"}");
	assert_string_equal(payload, jwk);
	snprintf(input, sizeof(input), "%s.%s", json_string_value(json_object_get(jws, "protected")),
		 json_string_value(json_object_get(jws, "payload")));
	HMAC(EVP_sha256(), hmac_key, 32, (const unsigned char *)input, strlen(input), mac, &maclen);
	expect = acme_b64url_encode(mac, maclen);
	assert_string_equal(json_string_value(json_object_get(jws, "signature")), expect);
	free(expect);
	free(jwk);
	free(hdr);
	free(payload);
	json_decref(jws);
	free(text);
	EVP_PKEY_free(key);
}

static void
test_csr(void **state)
{
	static const char *const names[] = { "a.example.org", "www.a.example.org" };
	EVP_PKEY *key = acme_jws_key_generate();
	char *b64 = acme_jws_csr(key, names, 2);
	size_t n;
	unsigned char *der = acme_b64url_decode(b64, &n);
	const unsigned char *p = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)n);
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES *sans;

	assert_non_null(req);
	assert_int_equal(X509_REQ_verify(req, key), 1);
	exts = X509_REQ_get_extensions(req);
	sans = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(sans), 2);
	assert_string_equal((const char *)ASN1_STRING_get0_data(sk_GENERAL_NAME_value(sans, 1)->d.dNSName),
			    "www.a.example.org");
	GENERAL_NAMES_free(sans);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	free(der);
	free(b64);
	EVP_PKEY_free(key);
}

static char *
pem_of(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static void
test_tlsalpn01_certificate(void **state)
{
	EVP_PKEY *key = NULL, *other = acme_jws_key_generate(), *k2 = NULL;
	X509 *x = acme_challenge_tlsalpn01_build("alpn.example.org", "tok.thumb", &key), *x2 = NULL;
	ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	int idx = X509_get_ext_by_OBJ(x, obj, -1);
	X509_EXTENSION *ext = X509_get_ext(x, idx);
	const ASN1_OCTET_STRING *val;
	unsigned char expect[34];
	struct acme_cert_info info;
	char err[128], *pem, *kpem;

	assert_non_null(x);
	assert_true(idx >= 0);
	assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
	val = X509_EXTENSION_get_data(ext);
	expect[0] = 0x04;
	expect[1] = 0x20;
	SHA256((const unsigned char *)"tok.thumb", 9, expect + 2);
	assert_int_equal(ASN1_STRING_length(val), 34);
	assert_memory_equal(ASN1_STRING_get0_data(val), expect, 34);
	assert_int_equal(X509_check_private_key(x, key), 1);
	assert_int_equal(X509_check_host(x, "alpn.example.org", 0, 0, NULL), 1);

	/* parse back through acme_jws_cert_info, with the right and a wrong key */
	pem = pem_of(x);
	kpem = acme_jws_key_pem(key);
	assert_int_equal(acme_jws_cert_info(pem, kpem, &info, err, sizeof(err)), 0);
	assert_int_equal(info.n_names, 1);
	assert_string_equal(info.names[0], "alpn.example.org");
	assert_true(info.not_after - info.not_before == 8 * 86400);
	static const char *const one[] = { "ALPN.example.org" };
	static const char *const two[] = { "alpn.example.org", "b.example.org" };
	assert_true(acme_cert_info_covers(&info, one, 1));
	assert_false(acme_cert_info_covers(&info, two, 2));
	acme_cert_info_clear(&info);
	free(kpem);
	kpem = acme_jws_key_pem(other);
	assert_int_equal(acme_jws_cert_info(pem, kpem, &info, err, sizeof(err)), -1);
	assert_string_equal(err, "private key does not match the certificate");
	assert_int_equal(acme_jws_cert_info("garbage", NULL, &info, err, sizeof(err)), -1);
	free(kpem);
	free(pem);

	/* the registry hands it out by SNI, case-insensitively, and withdraws it */
	assert_int_equal(acme_tlsalpn01_cert("alpn.example.org", &x2, &k2), -1);
	assert_int_equal(acme_challenge_tlsalpn01_add("alpn.example.org", "tok.thumb"), 0);
	assert_int_equal(acme_tlsalpn01_cert("ALPN.Example.org", &x2, &k2), 0);
	assert_int_equal(X509_check_private_key(x2, k2), 1);
	X509_free(x2);
	EVP_PKEY_free(k2);
	acme_challenge_tlsalpn01_remove("alpn.example.org");
	assert_int_equal(acme_tlsalpn01_cert("alpn.example.org", &x2, &k2), -1);

	ASN1_OBJECT_free(obj);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void
test_http01_registry(void **state)
{
	char out[256];
	uint64_t before = acme_challenge_served(ACME_CHALLENGE_HTTP01);

	assert_false(acme_http01_lookup("tok1", out, sizeof(out)));
	assert_int_equal(acme_challenge_http01_add("tok1", "tok1.thumb"), 0);
	assert_int_equal(acme_challenge_http01_add("tok2", "tok2.thumb"), 0);
	assert_true(acme_http01_lookup("tok1", out, sizeof(out)));
	assert_string_equal(out, "tok1.thumb");
	assert_false(acme_http01_lookup("tok1", out, 5)); /* does not fit: refused */
	assert_false(acme_http01_lookup("tok", out, sizeof(out)));
	acme_challenge_http01_remove("tok1");
	assert_false(acme_http01_lookup("tok1", out, sizeof(out)));
	assert_true(acme_http01_lookup("tok2", out, sizeof(out)));
	acme_challenge_http01_remove("tok2");
	assert_int_equal(acme_challenge_served(ACME_CHALLENGE_HTTP01), before + 2);
}

static void
test_alpn_select(void **state)
{
	static const unsigned char offer[] = "\x08http/1.1\x0a" "acme-tls/1";
	static const unsigned char plain[] = "\x08http/1.1\x02h2";
	static const unsigned char broken[] = "\x20" "acme";
	const unsigned char *out;
	unsigned char outlen;

	assert_true(acme_tlsalpn01_alpn_select(&out, &outlen, offer, sizeof(offer) - 1));
	assert_int_equal(outlen, 10);
	assert_memory_equal(out, "acme-tls/1", 10);
	assert_false(acme_tlsalpn01_alpn_select(&out, &outlen, plain, sizeof(plain) - 1));
	assert_false(acme_tlsalpn01_alpn_select(&out, &outlen, broken, sizeof(broken) - 1));
}

static void
test_name_valid(void **state)
{
	assert_true(acme_jws_name_valid("example.org"));
	assert_true(acme_jws_name_valid("a-b.c0.example.org"));
	assert_false(acme_jws_name_valid("localhost"));
	assert_false(acme_jws_name_valid("*.example.org"));
	assert_false(acme_jws_name_valid("-a.example.org"));
	assert_false(acme_jws_name_valid("a-.example.org"));
	assert_false(acme_jws_name_valid("a..example.org"));
	assert_false(acme_jws_name_valid("example.org."));
	assert_false(acme_jws_name_valid("exa mple.org"));
	assert_false(acme_jws_name_valid("../etc.example"));
	assert_false(acme_jws_name_valid(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_vectors),
		cmocka_unit_test(test_jwk_and_thumbprint),
		cmocka_unit_test(test_es256_raw_signature),
		cmocka_unit_test(test_flattened_jws),
		cmocka_unit_test(test_eab_hs256),
		cmocka_unit_test(test_csr),
		cmocka_unit_test(test_tlsalpn01_certificate),
		cmocka_unit_test(test_http01_registry),
		cmocka_unit_test(test_alpn_select),
		cmocka_unit_test(test_name_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

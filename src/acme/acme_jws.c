/* acme_jws: JOSE and X.509 helpers for the ACME client; see acme_jws.h. */
#include "acme/acme_jws.h"

#include "base/b64url.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

char *
acme_b64url_encode(const void *data, size_t len)
{
	char *out = malloc(len / 3 * 4 + 5);

	if (out != NULL)
		b64url_encode(data, len, out);
	return out;
}

unsigned char *
acme_b64url_decode(const char *s, size_t *outlen)
{
	size_t len = strlen(s);
	unsigned char *out = malloc(len * 3 / 4 + 1);
	long n;

	if (out == NULL)
		return NULL;
	n = b64url_decode(s, len, out);
	if (n < 0) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)n;
	return out;
}

EVP_PKEY *
acme_jws_key_generate(void)
{
	return EVP_EC_gen("P-256");
}

char *
acme_jws_key_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = NULL, *data;
	long n;

	if (bio == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto done;
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	if (out == NULL)
		goto done;
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
done:
	BIO_free(bio);
	return out;
}

EVP_PKEY *
acme_jws_key_from_pem(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key;

	if (bio == NULL)
		return NULL;
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return key;
}

/* x and y of a P-256 key, 32 bytes each.  0 or -1 (not a P-256 key). */
static int
ec_point_xy(EVP_PKEY *key, unsigned char x[32], unsigned char y[32])
{
	BIGNUM *bx = NULL, *by = NULL;
	char group[32];
	int rc = -1;

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					   NULL) != 1 ||
	    strcmp(group, "prime256v1") != 0)
		return -1;
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1)
		goto done;
	if (BN_bn2binpad(bx, x, 32) != 32 || BN_bn2binpad(by, y, 32) != 32)
		goto done;
	rc = 0;
done:
	BN_free(bx);
	BN_free(by);
	return rc;
}

char *
acme_jws_jwk(EVP_PKEY *key)
{
	unsigned char x[32], y[32];
	char *bx = NULL, *by = NULL, *out = NULL;
	size_t n;

	if (ec_point_xy(key, x, y) != 0)
		return NULL;
	bx = acme_b64url_encode(x, 32);
	by = acme_b64url_encode(y, 32);
	if (bx == NULL || by == NULL)
		goto done;
	n = strlen(bx) + strlen(by) + 64;
	out = malloc(n);
	if (out != NULL)
		snprintf(out, n, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", bx, by);
done:
	free(bx);
	free(by);
	return out;
}

char *
acme_jws_thumbprint(EVP_PKEY *key)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char *jwk = acme_jws_jwk(key);

	if (jwk == NULL)
		return NULL;
	SHA256((const unsigned char *)jwk, strlen(jwk), digest);
	free(jwk);
	return acme_b64url_encode(digest, sizeof(digest));
}

int
acme_jws_es256_sign(EVP_PKEY *key, const void *data, size_t len, unsigned char sig[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	int rc = -1;

	if (md == NULL)
		return -1;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &derlen, data, len) != 1)
		goto done;
	es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (es == NULL)
		goto done;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
		goto done;
	rc = 0;
done:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return rc;
}

/* "<b64(protected)>.<b64(payload)>" and the flattened JSON around a signature. */
static char *
jws_assemble(const char *protected_json, const char *payload, const unsigned char *sig,
	     size_t siglen, char **signing_input_out)
{
	char *p64 = acme_b64url_encode(protected_json, strlen(protected_json));
	char *pl64 = acme_b64url_encode(payload, strlen(payload));
	char *input = NULL;
	size_t n;

	if (p64 == NULL || pl64 == NULL)
		goto fail;
	if (sig == NULL) {
		n = strlen(p64) + strlen(pl64) + 2;
		input = malloc(n);
		if (input == NULL)
			goto fail;
		snprintf(input, n, "%s.%s", p64, pl64);
		*signing_input_out = input;
		free(p64);
		free(pl64);
		return NULL;
	} else {
		char *s64 = acme_b64url_encode(sig, siglen);
		json_t *o;
		char *out;

		if (s64 == NULL)
			goto fail;
		o = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload", pl64, "signature", s64);
		free(s64);
		free(p64);
		free(pl64);
		if (o == NULL)
			return NULL;
		out = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		return out;
	}
fail:
	free(p64);
	free(pl64);
	return NULL;
}

char *
acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
	      const char *payload)
{
	json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", nonce, "url", url);
	char *hdr_json = NULL, *input = NULL, *out = NULL;
	unsigned char sig[64];

	if (hdr == NULL)
		return NULL;
	if (kid != NULL) {
		json_object_set_new(hdr, "kid", json_string(kid));
	} else {
		char *jwk = acme_jws_jwk(key);
		json_t *j = jwk ? json_loads(jwk, 0, NULL) : NULL;

		free(jwk);
		if (j == NULL)
			goto done;
		json_object_set_new(hdr, "jwk", j);
	}
	hdr_json = json_dumps(hdr, JSON_COMPACT);
	if (hdr_json == NULL)
		goto done;
	jws_assemble(hdr_json, payload, NULL, 0, &input);
	if (input == NULL)
		goto done;
	if (acme_jws_es256_sign(key, input, strlen(input), sig) != 0)
		goto done;
	out = jws_assemble(hdr_json, payload, sig, sizeof(sig), NULL);
done:
	free(input);
	free(hdr_json);
	json_decref(hdr);
	return out;
}

char *
acme_jws_eab(EVP_PKEY *account_key, const char *eab_kid, const unsigned char *hmac_key,
	     size_t hmac_len, const char *url)
{
	json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid, "url", url);
	char *hdr_json = NULL, *input = NULL, *jwk = NULL, *out = NULL;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (hdr == NULL)
		return NULL;
	hdr_json = json_dumps(hdr, JSON_COMPACT);
	jwk = acme_jws_jwk(account_key);
	if (hdr_json == NULL || jwk == NULL)
		goto done;
	jws_assemble(hdr_json, jwk, NULL, 0, &input);
	if (input == NULL)
		goto done;
	if (HMAC(EVP_sha256(), hmac_key, (int)hmac_len, (const unsigned char *)input, strlen(input),
		 mac, &maclen) == NULL)
		goto done;
	out = jws_assemble(hdr_json, jwk, mac, maclen, NULL);
done:
	OPENSSL_cleanse(mac, sizeof(mac));
	free(input);
	free(jwk);
	free(hdr_json);
	json_decref(hdr);
	return out;
}

char *
acme_jws_csr(EVP_PKEY *key, const char *const *names, size_t n)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *subj = NULL;
	GENERAL_NAMES *sans = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	unsigned char *der = NULL;
	char *out = NULL;
	size_t i;
	int len;

	if (req == NULL || n == 0)
		goto done;
	if (X509_REQ_set_version(req, 0) != 1)
		goto done;
	subj = X509_NAME_new();
	if (subj == NULL ||
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)names[0],
				       -1, -1, 0) != 1 ||
	    X509_REQ_set_subject_name(req, subj) != 1)
		goto done;
	sans = GENERAL_NAMES_new();
	if (sans == NULL)
		goto done;
	for (i = 0; i < n; i++) {
		GENERAL_NAME *gn = GENERAL_NAME_new();
		ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

		if (gn == NULL || ia5 == NULL || ASN1_STRING_set(ia5, names[i], -1) != 1) {
			GENERAL_NAME_free(gn);
			ASN1_IA5STRING_free(ia5);
			goto done;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
		if (sk_GENERAL_NAME_push(sans, gn) == 0) {
			GENERAL_NAME_free(gn);
			goto done;
		}
	}
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, sans);
	exts = sk_X509_EXTENSION_new_null();
	if (ext == NULL || exts == NULL || sk_X509_EXTENSION_push(exts, ext) == 0)
		goto done;
	ext = NULL;
	if (X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto done;
	len = i2d_X509_REQ(req, &der);
	if (len <= 0)
		goto done;
	out = acme_b64url_encode(der, (size_t)len);
done:
	OPENSSL_free(der);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(sans);
	X509_NAME_free(subj);
	X509_REQ_free(req);
	return out;
}

static int
asn1_time_to_epoch(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

static char *
ari_cert_id(X509 *x)
{
	const ASN1_OCTET_STRING *kid = X509_get0_authority_key_id(x);
	const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
	unsigned char *sder = NULL;
	char *a = NULL, *b = NULL, *out = NULL;
	BIGNUM *bn = NULL;
	int slen;

	if (kid == NULL || serial == NULL)
		return NULL;
	/* the serial's DER INTEGER content octets (with a leading 0 when the top bit is set) */
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	if (bn == NULL)
		goto done;
	slen = BN_num_bytes(bn) + 1;
	sder = malloc((size_t)slen);
	if (sder == NULL)
		goto done;
	sder[0] = 0;
	BN_bn2bin(bn, sder + 1);
	{
		const unsigned char *p = sder;
		int n = slen;

		if (n > 1 && !(sder[1] & 0x80)) {
			p++;
			n--;
		}
		a = acme_b64url_encode(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid));
		b = acme_b64url_encode(p, (size_t)n);
	}
	if (a == NULL || b == NULL)
		goto done;
	out = malloc(strlen(a) + strlen(b) + 2);
	if (out != NULL)
		sprintf(out, "%s.%s", a, b);
done:
	free(a);
	free(b);
	free(sder);
	BN_free(bn);
	return out;
}

int
acme_jws_cert_info(const char *chain_pem, const char *key_pem, struct acme_cert_info *info,
		   char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(chain_pem, -1);
	X509 *x = NULL;
	EVP_PKEY *key = NULL;
	GENERAL_NAMES *sans = NULL;
	int i, rc = -1;

	memset(info, 0, sizeof(*info));
	if (bio == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (x == NULL) {
		snprintf(err, errlen, "no PEM certificate in the chain");
		goto done;
	}
	if (asn1_time_to_epoch(X509_get0_notBefore(x), &info->not_before) != 0 ||
	    asn1_time_to_epoch(X509_get0_notAfter(x), &info->not_after) != 0) {
		snprintf(err, errlen, "certificate has unreadable validity dates");
		goto done;
	}
	sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (sans != NULL) {
		info->names = calloc((size_t)sk_GENERAL_NAME_num(sans) + 1, sizeof(char *));
		if (info->names == NULL)
			goto done;
		for (i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
			const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
			const ASN1_IA5STRING *s;
			char *copy;
			int j, len;

			if (gn->type != GEN_DNS)
				continue;
			s = gn->d.dNSName;
			len = ASN1_STRING_length(s);
			copy = malloc((size_t)len + 1);
			if (copy == NULL)
				goto done;
			memcpy(copy, ASN1_STRING_get0_data(s), (size_t)len);
			copy[len] = '\0';
			for (j = 0; j < len; j++)
				copy[j] = (char)tolower((unsigned char)copy[j]);
			info->names[info->n_names++] = copy;
		}
	}
	info->ari_id = ari_cert_id(x);
	if (key_pem != NULL) {
		key = acme_jws_key_from_pem(key_pem, strlen(key_pem));
		if (key == NULL) {
			snprintf(err, errlen, "unreadable private key");
			goto done;
		}
		if (X509_check_private_key(x, key) != 1) {
			snprintf(err, errlen, "private key does not match the certificate");
			goto done;
		}
	}
	rc = 0;
done:
	ERR_clear_error();
	if (rc != 0)
		acme_cert_info_clear(info);
	GENERAL_NAMES_free(sans);
	EVP_PKEY_free(key);
	X509_free(x);
	BIO_free(bio);
	return rc;
}

bool
acme_cert_info_covers(const struct acme_cert_info *info, const char *const *names, size_t n)
{
	size_t i, j;

	if (info->n_names != n)
		return false;
	for (i = 0; i < n; i++) {
		bool found = false;

		for (j = 0; j < info->n_names && !found; j++)
			found = strcasecmp(info->names[j], names[i]) == 0;
		if (!found)
			return false;
	}
	return true;
}

void
acme_cert_info_clear(struct acme_cert_info *info)
{
	size_t i;

	if (info == NULL)
		return;
	for (i = 0; i < info->n_names; i++)
		free(info->names[i]);
	free(info->names);
	free(info->ari_id);
	memset(info, 0, sizeof(*info));
}

bool
acme_jws_name_valid(const char *name)
{
	size_t len = strlen(name), label = 0, labels = 1, i;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0 || name[i - 1] == '-')
				return false;
			label = 0;
			labels++;
			continue;
		}
		if (!(isalnum((unsigned char)c) || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && name[len - 1] != '-' && labels >= 2;
}

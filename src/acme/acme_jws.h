/*
 * acme_jws: the JOSE and X.509 pieces of the ACME client — base64url, ES256
 * keys and signatures (raw r||s as JWS wants), the JWK and its RFC 7638
 * thumbprint, flattened JWS objects (ES256, and HS256 for External Account
 * Binding), CSRs, and reading what a PEM chain certifies.  Pure: OpenSSL and
 * jansson only, no libevent, no I/O.  Used by acme_client.c and the tests.
 */
#ifndef PORTCULLIS_ACME_JWS_H
#define PORTCULLIS_ACME_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* base64url without padding of <len> bytes, in a new string (NULL on ENOMEM). */
char *acme_b64url_encode(const void *data, size_t len);

/* Decode base64url (padding and whitespace not allowed) into a new buffer,
 * length in <*outlen>.  NULL if <s> is not base64url. */
unsigned char *acme_b64url_decode(const char *s, size_t *outlen);

/* A new P-256 key, or NULL. */
EVP_PKEY *acme_jws_key_generate(void);

/* PKCS#8 PEM of <key> in a new string, or NULL. */
char *acme_jws_key_pem(EVP_PKEY *key);

/* Parse a PEM private key; NULL on error. */
EVP_PKEY *acme_jws_key_from_pem(const char *pem, size_t len);

/* The JWK of a P-256 public key exactly as RFC 7638 hashes it:
 * {"crv":"P-256","kty":"EC","x":"…","y":"…"}.  New string or NULL. */
char *acme_jws_jwk(EVP_PKEY *key);

/* base64url(SHA-256(jwk)) of <key>: the account thumbprint.  New string or NULL. */
char *acme_jws_thumbprint(EVP_PKEY *key);

/* ES256 signature of <data> as JWS wants it: r and s, 32 bytes each,
 * big-endian, into <sig>.  Returns 0 or -1. */
int acme_jws_es256_sign(EVP_PKEY *key, const void *data, size_t len, unsigned char sig[64]);

/*
 * A flattened JWS JSON object, in a new string: protected header
 * {"alg":"ES256","nonce":…,"url":…} plus "kid":<kid> when <kid> is not NULL,
 * else "jwk" (newAccount); payload base64url(<payload>), "" for POST-as-GET.
 * NULL on error.
 */
char *acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
		    const char *payload);

/*
 * External Account Binding (RFC 8555 7.3.4): an HS256 flattened JWS over the
 * account's JWK, protected header {"alg":"HS256","kid":<eab_kid>,"url":<url>},
 * in a new string to embed as "externalAccountBinding".  NULL on error.
 */
char *acme_jws_eab(EVP_PKEY *account_key, const char *eab_kid, const unsigned char *hmac_key,
		   size_t hmac_len, const char *url);

/* DER CSR for <names> (CN = first name, all in subjectAltName) signed by
 * <key>, base64url-encoded in a new string.  NULL on error. */
char *acme_jws_csr(EVP_PKEY *key, const char *const *names, size_t n);

/* What a PEM chain's leaf certifies. */
struct acme_cert_info {
	time_t not_before;
	time_t not_after;
	char **names;        /* DNS subjectAltNames, lowercased */
	size_t n_names;
	char *ari_id;        /* RFC 9773 certID: b64url(AKI keyid) "." b64url(serial), or NULL */
};

/*
 * Parse the first certificate of <chain_pem>; with <key_pem> not NULL, also
 * check that the key matches it.  Returns 0, or -1 with a reason in <err>.
 */
int acme_jws_cert_info(const char *chain_pem, const char *key_pem, struct acme_cert_info *info,
		       char *err, size_t errlen);

/* True if <info> covers exactly the names in <names> (order ignored, case-insensitive). */
bool acme_cert_info_covers(const struct acme_cert_info *info, const char *const *names, size_t n);

/* Free what acme_jws_cert_info filled in (not <info> itself).  Accepts NULL. */
void acme_cert_info_clear(struct acme_cert_info *info);

/* True if <name> is a DNS name we can order: LDH labels, 1..63 each, at most
 * 253 characters, at least two labels, no wildcard. */
bool acme_jws_name_valid(const char *name);

#endif

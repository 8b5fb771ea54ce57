/*
 * jwt: ES256 signing keys for the signed identity assertion (docs/saml.md#
 * signed-identity-assertion): loading them like the session keys (a PEM
 * file, created when absent, and/or PEM text from an environment variable;
 * the first key signs, the others stay published for rotation), their public
 * half as a JWKS document, and compact JWS signing (RFC 7515, "alg": "ES256",
 * "kid": the RFC 7638 thumbprint).  OpenSSL EVP only; no I/O after loading;
 * a loaded key set is read-only and shared by every worker thread.
 */
#ifndef PORTCULLIS_JWT_H
#define PORTCULLIS_JWT_H

#include <stdbool.h>
#include <stddef.h>

struct jwt_keys;

/*
 * Load P-256 private keys (PEM, PKCS#8 or SEC1, several in a row): from
 * <file> (may be NULL), then from <env_value> (may be NULL).  When <file>
 * does not exist and <create> is true it is created (mode 0600) with one new
 * key.  A file readable by group or others is refused.  NULL with a reason
 * in <err> naming the file when no key loads or one is not a P-256 key.
 */
struct jwt_keys *jwt_keys_load(const char *file, const char *env_value, bool create, char *err,
			       size_t errlen);

/* Free.  Accepts NULL. */
void jwt_keys_free(struct jwt_keys *k);

/* How many keys are published (the signer first). */
size_t jwt_keys_count(const struct jwt_keys *k);

/* The kid of the signing key (its RFC 7638 thumbprint). */
const char *jwt_keys_kid(const struct jwt_keys *k);

/* {"keys":[...]}: every public key, the signer first (owned by <k>). */
const char *jwt_keys_jwks(const struct jwt_keys *k);

/*
 * A compact JWS over the JSON object <payload> with the signing key:
 * header {"alg":"ES256","typ":"JWT","kid":...}.  New string or NULL.
 */
char *jwt_sign(const struct jwt_keys *k, const char *payload);

#endif

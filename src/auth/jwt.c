/*
 * jwt: ES256 keys, JWKS and compact JWS.  See jwt.h.  The JOSE pieces (JWK,
 * thumbprint, raw r||s signature) are acme_jws's.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acme/acme_jws.h"
#include "base/b64url.h"

/* More keys in one set make no sense for rotation. */
#define JWT_MAX_KEYS 8

struct jwt_keys {
	EVP_PKEY *keys[JWT_MAX_KEYS];
	size_t n;
	char *kid;    /* of keys[0] */
	char *header; /* base64url of the protected header, for keys[0] */
	char *jwks;
};

/* Append the P-256 keys of the PEM text <pem> (<what> names it in errors). */
static int
jwt_keys_add_pem(struct jwt_keys *k, const char *pem, size_t len, const char *what, char *err,
		 size_t errlen)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	size_t before = k->n;
	EVP_PKEY *key;

	if (b == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	while ((key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) != NULL) {
		char *jwk = acme_jws_jwk(key); /* NULL unless an EC P-256 key */

		if (jwk == NULL) {
			snprintf(err, errlen, "%s: key %zu is not an EC P-256 key (ES256 needs "
					      "one: openssl genpkey -algorithm EC -pkeyopt "
					      "ec_paramgen_curve:P-256)",
				 what, k->n - before + 1);
			EVP_PKEY_free(key);
			BIO_free(b);
			return -1;
		}
		free(jwk);
		if (k->n == JWT_MAX_KEYS) {
			snprintf(err, errlen, "%s: more than %d keys", what, JWT_MAX_KEYS);
			EVP_PKEY_free(key);
			BIO_free(b);
			return -1;
		}
		k->keys[k->n++] = key;
	}
	ERR_clear_error(); /* the end of the text reads as an error */
	BIO_free(b);
	if (k->n == before) {
		snprintf(err, errlen, "%s: no PEM private key in it", what);
		return -1;
	}
	return 0;
}

/* Create <file> (mode 0600) holding one new P-256 key. */
static int
jwt_keys_create(const char *file, char *err, size_t errlen)
{
	EVP_PKEY *key = acme_jws_key_generate();
	char *pem = key ? acme_jws_key_pem(key) : NULL;
	int fd = -1, rc = -1;

	if (pem == NULL) {
		snprintf(err, errlen, "%s: cannot make a P-256 key", file);
		goto out;
	}
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, pem, strlen(pem)) != (ssize_t)strlen(pem) || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: cannot create: %s", file, strerror(errno));
		if (fd >= 0)
			unlink(file);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (pem != NULL) {
		OPENSSL_cleanse(pem, strlen(pem));
		free(pem);
	}
	EVP_PKEY_free(key);
	return rc;
}

static int
jwt_keys_read_file(struct jwt_keys *k, const char *file, bool create, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	FILE *f;
	size_t len;
	int rc;

	if (stat(file, &st) != 0) {
		if (errno != ENOENT || !create) {
			snprintf(err, errlen, "%s: %s", file, strerror(errno));
			return -1;
		}
		if (jwt_keys_create(file, err, errlen) < 0)
			return -1;
		if (stat(file, &st) != 0) {
			snprintf(err, errlen, "%s: %s", file, strerror(errno));
			return -1;
		}
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: readable by others (mode %03o); chmod 600 it", file,
			 (unsigned)(st.st_mode & 0777));
		return -1;
	}
	if (st.st_size > 64 * 1024) {
		snprintf(err, errlen, "%s: larger than 64 KiB", file);
		return -1;
	}
	if ((f = fopen(file, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	len = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	rc = jwt_keys_add_pem(k, buf, len, file, err, errlen);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

/* kid, protected header and JWKS, once the keys are in. */
static int
jwt_keys_finish(struct jwt_keys *k)
{
	size_t cap = 32, used;
	char hdr[160];

	k->kid = acme_jws_thumbprint(k->keys[0]);
	if (k->kid == NULL)
		return -1;
	snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->kid);
	k->header = malloc(strlen(hdr) * 4 / 3 + 4);
	if (k->header == NULL)
		return -1;
	b64url_encode(hdr, strlen(hdr), k->header);
	for (size_t i = 0; i < k->n; i++)
		cap += 256;
	if ((k->jwks = malloc(cap)) == NULL)
		return -1;
	used = (size_t)snprintf(k->jwks, cap, "{\"keys\":[");
	for (size_t i = 0; i < k->n; i++) {
		char *jwk = acme_jws_jwk(k->keys[i]);
		char *kid = acme_jws_thumbprint(k->keys[i]);

		if (jwk == NULL || kid == NULL) {
			free(jwk);
			free(kid);
			return -1;
		}
		/* {"crv":..,"kty":..,"x":..,"y":..} plus kid, use and alg */
		jwk[strlen(jwk) - 1] = '\0';
		used += (size_t)snprintf(k->jwks + used, cap - used,
					 "%s%s,\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"ES256\"}",
					 i ? "," : "", jwk, kid);
		free(jwk);
		free(kid);
	}
	snprintf(k->jwks + used, cap - used, "]}");
	return 0;
}

struct jwt_keys *
jwt_keys_load(const char *file, const char *env_value, bool create, char *err, size_t errlen)
{
	struct jwt_keys *k = calloc(1, sizeof *k);

	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (file != NULL && jwt_keys_read_file(k, file, create, err, errlen) < 0)
		goto fail;
	if (env_value != NULL && env_value[0] != '\0' &&
	    jwt_keys_add_pem(k, env_value, strlen(env_value), "the key variable", err, errlen) < 0)
		goto fail;
	if (k->n == 0) {
		snprintf(err, errlen, "no signing key (give a key file or a key variable)");
		goto fail;
	}
	if (jwt_keys_finish(k) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return k;
fail:
	jwt_keys_free(k);
	return NULL;
}

void
jwt_keys_free(struct jwt_keys *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->n; i++)
		EVP_PKEY_free(k->keys[i]);
	free(k->kid);
	free(k->header);
	free(k->jwks);
	free(k);
}

size_t
jwt_keys_count(const struct jwt_keys *k)
{
	return k->n;
}

const char *
jwt_keys_kid(const struct jwt_keys *k)
{
	return k->kid;
}

const char *
jwt_keys_jwks(const struct jwt_keys *k)
{
	return k->jwks;
}

char *
jwt_sign(const struct jwt_keys *k, const char *payload)
{
	size_t hl = strlen(k->header), pl = strlen(payload);
	size_t cap = hl + 1 + pl * 4 / 3 + 4 + 1 + 90;
	char *out = malloc(cap);
	unsigned char sig[64];
	size_t n;

	if (out == NULL)
		return NULL;
	memcpy(out, k->header, hl);
	out[hl] = '.';
	n = hl + 1 + b64url_encode(payload, pl, out + hl + 1);
	if (acme_jws_es256_sign(k->keys[0], out, n, sig) != 0) {
		free(out);
		return NULL;
	}
	out[n++] = '.';
	b64url_encode(sig, sizeof sig, out + n);
	return out;
}

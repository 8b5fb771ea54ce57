/*
 * config_saml_encryption: "saml.encryption" (docs/saml.md#encrypted-assertions):
 * the SP's RSA key pair that IdPs encrypt assertions to (files created when
 * absent, or PEM text from a variable), and whether plain-text assertions
 * are refused; with its checks for config_check_file.
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const config_encryption_keys[] = { "key_file", "cert_file", "key_env",
						      "require", NULL };

/* A file path at <path> (<v>), or <dir>/<name> when absent or empty. */
static void
config_encryption_file(struct config_loader *ld, const char *path, const json_t *v,
		       const char *dir, const char *name, char **out)
{
	char *s = v != NULL ? config_string(ld, path, v) : NULL;

	if (s != NULL && s[0] != '\0') {
		*out = s;
		return;
	}
	free(s);
	if (asprintf(out, "%s/%s", dir, name) < 0) {
		*out = NULL;
		ld->oom = true;
	}
}

void
config_parse_saml_encryption(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	struct config_saml_encryption *e = &sc->encryption;
	const char *dir = sc->certs_dir ? sc->certs_dir : "certs";
	const json_t *f;

	if (v == NULL || json_is_null(v) ||
	    config_object(ld, "saml.encryption", v, config_encryption_keys) == NULL)
		return;
	e->used = true;
	config_bool(ld, "saml.encryption.require", json_object_get(v, "require"), &e->require);
	if ((f = json_object_get(v, "key_env")) != NULL) {
		e->key_env = config_string(ld, "saml.encryption.key_env", f);
		if (e->key_env != NULL && e->key_env[0] == '\0')
			config_error(ld, "saml.encryption.key_env", "must name a variable");
		if (json_object_get(v, "key_file") != NULL || json_object_get(v, "cert_file") != NULL)
			config_error(ld, "saml.encryption.key_env",
				     "the variable holds the key and its certificate: leave out "
				     "key_file and cert_file");
		return;
	}
	config_encryption_file(ld, "saml.encryption.key_file", json_object_get(v, "key_file"), dir,
			       "saml-sp-encryption.key", &e->key_file);
	config_encryption_file(ld, "saml.encryption.cert_file", json_object_get(v, "cert_file"), dir,
			       "saml-sp-encryption.crt", &e->cert_file);
}

const char *
config_saml_encryption_pem(struct config_loader *ld, const struct config_saml *sc)
{
	const char *pem;

	if (sc->encryption.key_env == NULL)
		return NULL;
	pem = ld->getenv_fn(sc->encryption.key_env);
	if (pem == NULL || pem[0] == '\0') {
		config_error(ld, "saml.encryption.key_env", "the variable %s is not set",
			     sc->encryption.key_env);
		return NULL;
	}
	return pem;
}

void
config_saml_encryption_check(struct config_loader *ld, const struct config_saml *sc)
{
	const struct config_saml_encryption *e = &sc->encryption;
	const char *pem;
	BIO *kb, *cb;
	EVP_PKEY *k;
	X509 *c;

	if (!e->used)
		return;
	if (e->key_env == NULL) {
		config_saml_check_key_pair(ld, e->key_file, e->cert_file, "saml.encryption.key_file",
					   "saml.encryption.cert_file");
		return;
	}
	if ((pem = config_saml_encryption_pem(ld, sc)) == NULL)
		return;
	kb = BIO_new_mem_buf(pem, -1);
	cb = BIO_new_mem_buf(pem, -1);
	k = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	c = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	if (k == NULL || c == NULL || X509_check_private_key(c, k) != 1 ||
	    EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)
		config_error(ld, "saml.encryption.key_env",
			     "the variable %s must hold an RSA private key and its certificate "
			     "(PEM)",
			     e->key_env);
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(c);
	BIO_free(kb);
	BIO_free(cb);
}

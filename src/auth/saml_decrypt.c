/* saml_decrypt: decrypting a SAML EncryptedAssertion; see saml_decrypt.h. */
#include "auth/saml_decrypt.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>

#include "auth/saml_xml.h"

#define XENC11_NS "http://www.w3.org/2009/xmlenc11#"

/* The one reason given for every failure to decrypt (no oracle). */
#define SAML_DECRYPT_FAILED \
	"EncryptedAssertion: cannot be decrypted with our encryption key (encrypted to " \
	"another key, or damaged); the IdP must encrypt to the certificate of the " \
	"KeyDescriptor use=\"encryption\" in our SP metadata"

/* Block ciphers for the assertion, and their key sizes in bytes. */
static const struct {
	const char *uri;
	size_t key_bytes;
} saml_data_algs[] = {
	{ SAML_NS_XENC "aes128-cbc", 16 }, { SAML_NS_XENC "aes192-cbc", 24 },
	{ SAML_NS_XENC "aes256-cbc", 32 }, { XENC11_NS "aes128-gcm", 16 },
	{ XENC11_NS "aes192-gcm", 24 },    { XENC11_NS "aes256-gcm", 32 },
};

/* Key transport: RSA-OAEP only (RSA PKCS#1 v1.5 invites Bleichenbacher). */
static const char *const saml_key_algs[] = {
	SAML_NS_XENC "rsa-oaep-mgf1p",
	XENC11_NS "rsa-oaep",
};

__attribute__((format(printf, 3, 4))) static void
saml_decrypt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool
saml_decrypt_is(xmlNodePtr n, const char *ns, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL &&
	       strcmp((const char *)n->ns->href, ns) == 0 && strcmp((const char *)n->name, name) == 0;
}

/* The Algorithm of <n>'s xenc:EncryptionMethod into <buf> ("(none)" when absent). */
static const char *
saml_decrypt_method(xmlNodePtr n, char *buf, size_t len)
{
	xmlChar *a = NULL;

	for (xmlNodePtr c = n->children; c != NULL && a == NULL; c = c->next)
		if (saml_decrypt_is(c, SAML_NS_XENC, "EncryptionMethod"))
			a = xmlGetProp(c, (const xmlChar *)"Algorithm");
	snprintf(buf, len, "%s", a ? (const char *)a : "(none)");
	xmlFree(a);
	return buf;
}

xmlSecKeyPtr
saml_decrypt_key_load(const char *pem, const char *what, char *err, size_t errlen)
{
	xmlSecKeyPtr key = xmlSecOpenSSLAppKeyLoadMemory((const xmlSecByte *)pem,
							 (xmlSecSize)strlen(pem),
							 xmlSecKeyDataFormatPem, NULL, NULL, NULL);

	ERR_clear_error();
	if (key == NULL || (xmlSecKeyGetType(key) & xmlSecKeyDataTypePrivate) == 0 ||
	    !xmlSecKeyCheckId(key, xmlSecOpenSSLKeyDataRsaId)) {
		saml_decrypt_err(err, errlen, "%s: not an RSA private key in PEM", what);
		if (key != NULL)
			xmlSecKeyDestroy(key);
		return NULL;
	}
	return key;
}

/*
 * The shape of <enc>: exactly one xenc:EncryptedData child with an allowed
 * data algorithm and Type Element; the xenc:EncryptedKey elements (inside its
 * ds:KeyInfo or beside it) into <keys> (*nkeys of at most <max>), each with
 * an allowed transport algorithm.  Nothing else inside <enc>.
 */
static int
saml_decrypt_shape(xmlNodePtr enc, xmlNodePtr *data, size_t *key_bytes, xmlNodePtr *keys,
		   size_t max, size_t *nkeys, char *err, size_t errlen)
{
	char alg[256];
	xmlChar *type;
	bool ok = false;

	*data = NULL;
	*nkeys = 0;
	for (xmlNodePtr c = enc->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (saml_decrypt_is(c, SAML_NS_XENC, "EncryptedData") && *data == NULL) {
			*data = c;
		} else if (saml_decrypt_is(c, SAML_NS_XENC, "EncryptedKey") && *nkeys < max) {
			keys[(*nkeys)++] = c;
		} else {
			saml_decrypt_err(err, errlen, "EncryptedAssertion: unexpected element %s "
						      "(one xenc:EncryptedData and xenc:EncryptedKey only)",
					 (const char *)c->name);
			return -1;
		}
	}
	if (*data == NULL) {
		saml_decrypt_err(err, errlen, "EncryptedAssertion: no xenc:EncryptedData");
		return -1;
	}
	type = xmlGetProp(*data, (const xmlChar *)"Type");
	if (type == NULL || strcmp((const char *)type, SAML_NS_XENC "Element") != 0) {
		saml_decrypt_err(err, errlen, "EncryptedData Type: expected \"%sElement\", got \"%s\"",
				 SAML_NS_XENC, type ? (const char *)type : "(none)");
		xmlFree(type);
		return -1;
	}
	xmlFree(type);
	saml_decrypt_method(*data, alg, sizeof alg);
	for (size_t i = 0; i < sizeof saml_data_algs / sizeof saml_data_algs[0]; i++)
		if (strcmp(alg, saml_data_algs[i].uri) == 0) {
			*key_bytes = saml_data_algs[i].key_bytes;
			ok = true;
		}
	if (!ok) {
		saml_decrypt_err(err, errlen, "EncryptedData EncryptionMethod: \"%s\" refused "
					      "(AES-CBC or AES-GCM)", alg);
		return -1;
	}
	/* Keys inside the EncryptedData's KeyInfo come first. */
	for (xmlNodePtr ki = (*data)->children; ki != NULL; ki = ki->next) {
		if (!saml_decrypt_is(ki, SAML_NS_DS, "KeyInfo"))
			continue;
		for (xmlNodePtr c = ki->children; c != NULL; c = c->next)
			if (saml_decrypt_is(c, SAML_NS_XENC, "EncryptedKey") && *nkeys < max)
				keys[(*nkeys)++] = c;
	}
	if (*nkeys == 0) {
		saml_decrypt_err(err, errlen, "EncryptedAssertion: no xenc:EncryptedKey (a key "
					      "agreed beforehand is not supported)");
		return -1;
	}
	for (size_t k = 0; k < *nkeys; k++) {
		ok = false;
		saml_decrypt_method(keys[k], alg, sizeof alg);
		for (size_t i = 0; i < sizeof saml_key_algs / sizeof saml_key_algs[0]; i++)
			ok = ok || strcmp(alg, saml_key_algs[i]) == 0;
		if (!ok) {
			saml_decrypt_err(err, errlen, "EncryptedKey EncryptionMethod: \"%s\" refused "
						      "(RSA-OAEP only)", alg);
			return -1;
		}
	}
	return 0;
}

/* The session key of one EncryptedKey, unwrapped with <key>, as an AES key
 * of <key_bytes> bytes; NULL when it does not decrypt to one. */
static xmlSecKeyPtr
saml_decrypt_session_key(xmlNodePtr ek, xmlSecKeyPtr key, size_t key_bytes)
{
	xmlSecEncCtxPtr ctx = xmlSecEncCtxCreate(NULL);
	xmlSecBufferPtr buf;
	xmlSecKeyPtr session = NULL;

	if (ctx == NULL)
		return NULL;
	ctx->mode = xmlEncCtxModeEncryptedKey;
	ctx->encKey = xmlSecKeyDuplicate(key);
	buf = ctx->encKey != NULL ? xmlSecEncCtxDecryptToBuffer(ctx, ek) : NULL;
	if (buf != NULL && xmlSecBufferGetSize(buf) == key_bytes)
		session = xmlSecKeyReadBuffer(xmlSecOpenSSLKeyDataAesId, buf);
	xmlSecEncCtxDestroy(ctx);
	return session;
}

/* Decrypt <data> in place with <session>; 0 when it was replaced by its
 * plain text. */
static int
saml_decrypt_data(xmlNodePtr data, xmlSecKeyPtr session)
{
	xmlSecEncCtxPtr ctx = xmlSecEncCtxCreate(NULL);
	int rc = -1;

	if (ctx == NULL)
		return -1;
	ctx->encKey = session;
	if (xmlSecEncCtxDecrypt(ctx, data) == 0 && ctx->resultReplaced)
		rc = 0;
	xmlSecEncCtxDestroy(ctx); /* frees the session key */
	return rc;
}

int
saml_decrypt_assertion(xmlDocPtr doc, xmlNodePtr enc, xmlSecKeyPtr key, xmlNodePtr *assertion,
		       char *err, size_t errlen)
{
	xmlNodePtr data, keys[8], found = NULL;
	size_t nkeys, key_bytes = 0;
	int nfound = 0, rc = -1;

	*assertion = NULL;
	if (saml_decrypt_shape(enc, &data, &key_bytes, keys, sizeof keys / sizeof keys[0], &nkeys,
			       err, errlen) < 0)
		return -1;
	for (size_t k = 0; k < nkeys && rc < 0; k++) {
		xmlSecKeyPtr session = saml_decrypt_session_key(keys[k], key, key_bytes);

		if (session != NULL)
			rc = saml_decrypt_data(data, session);
	}
	ERR_clear_error();
	if (rc < 0) {
		saml_decrypt_err(err, errlen, "%s", SAML_DECRYPT_FAILED);
		return -1;
	}
	/* What the EncryptedData became: one saml:Assertion (the key elements
	 * beside it are left behind with the EncryptedAssertion). */
	for (xmlNodePtr c = enc->children; c != NULL; c = c->next) {
		if (c->type == XML_ELEMENT_NODE && !saml_decrypt_is(c, SAML_NS_XENC, "EncryptedKey")) {
			nfound++;
			if (found == NULL && saml_decrypt_is(c, SAML_NS_SAML, "Assertion"))
				found = c;
		}
	}
	if (found == NULL || nfound != 1) {
		saml_decrypt_err(err, errlen, "EncryptedAssertion: decrypts to %d element(s), "
					      "expected one saml:Assertion",
				 nfound);
		return -1;
	}
	/* The Assertion takes the EncryptedAssertion's place; namespaces it
	 * borrowed from the EncryptedAssertion are declared again on it. */
	xmlUnlinkNode(found);
	xmlReplaceNode(enc, found);
	if (xmlReconciliateNs(doc, found) < 0) {
		xmlFreeNode(enc);
		saml_decrypt_err(err, errlen, "EncryptedAssertion: cannot place the decrypted Assertion");
		return -1;
	}
	xmlFreeNode(enc);
	*assertion = found;
	return 0;
}

/* idp_metadata: the IdP metadata file the config tests load; see idp_metadata.h. */
#include "idp_metadata.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

void
write_idp_metadata_with(const char *path, const char *cert_b64)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f,
		"<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
		"xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"https://idp.test/md\">"
		"<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
		"<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
		"</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
		"<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
		"Location=\"https://idp.test/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>\n",
		cert_b64);
	assert_int_equal(fclose(f), 0);
}

void
write_idp_metadata(const char *path)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	X509 *x = X509_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL, *body;
	long len;

	assert_non_null(key);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"idp.test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	len = BIO_get_mem_data(b, &pem);
	body = strndup(pem, (size_t)len);
	assert_non_null(body);
	/* keep only the base64 lines */
	{
		char *s = strchr(body, '\n') + 1, *e = strstr(s, "-----END");
		char *o = body;

		for (; s < e; s++)
			if (*s != '\n')
				*o++ = *s;
		*o = '\0';
	}
	write_idp_metadata_with(path, body);
	free(body);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(key);
}

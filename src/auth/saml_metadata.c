/* saml_metadata: the IdP metadata parsed into one generation; see saml_metadata.h. */
#if !defined(XMLSEC_CRYPTO_OPENSSL) || !defined(XMLSEC_NO_SIZE_T)
#error "compile saml_metadata.c with the flags of: pkg-config --cflags lasso xmlsec1-openssl"
#endif
#include "auth/saml_metadata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/openssl/app.h>

#include "auth/saml_xml.h"

void
saml_metadata_idp_free(struct saml_idp *idp)
{
	if (idp == NULL)
		return;
	free(idp->metadata);
	free(idp->entity_id);
	free(idp->sso_url);
	free(idp->slo_url);
	for (size_t i = 0; i < idp->nkeys; i++)
		xmlSecKeyDestroy(idp->keys[i]);
	if (idp->server != NULL)
		lasso_server_destroy(idp->server);
	free(idp);
}

/*
 * Build an IdP generation from <metadata>: entity, endpoints, signing keys,
 * and a LassoServer for the SP with this IdP.  The objects are new, so the
 * SAML lock is not needed (lasso_init registered every type before any
 * thread started); the caller swaps them in under it.
 */
struct saml_idp *
saml_metadata_idp_new(const char *sp_metadata, const char *sp_key_pem, const char *sp_key_path,
		      const char *metadata, const char *what, char *err, size_t errlen)
{
	struct saml_idp *idp = calloc(1, sizeof *idp);
	xmlDocPtr doc = NULL;
	xmlXPathContextPtr x = NULL;
	xmlXPathObjectPtr o = NULL;
	lasso_error_t le;

	if (idp == NULL || (idp->metadata = strdup(metadata)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((doc = saml_xml_parse(metadata, strlen(metadata), what, err, errlen)) == NULL)
		goto fail;
	x = saml_xml_xpath(doc);
	if (x == NULL)
		goto fail;
	idp->entity_id = saml_xml_xpath_attr(x, "/md:EntityDescriptor[md:IDPSSODescriptor]", "entityID");
	if (idp->entity_id == NULL) {
		snprintf(err, errlen,
			 "%s: not IdP metadata (no md:EntityDescriptor with an "
			 "md:IDPSSODescriptor and an entityID)",
			 what);
		goto fail;
	}
	idp->sso_url = saml_xml_xpath_attr(
		x,
		"/md:EntityDescriptor/md:IDPSSODescriptor/md:SingleSignOnService[@Binding='" SAML_BINDING_REDIRECT "']",
		"Location");
	if (idp->sso_url == NULL) {
		snprintf(err, errlen, "%s: the IdP has no HTTP-Redirect SingleSignOnService", what);
		goto fail;
	}
	idp->slo_url = saml_xml_xpath_attr(
		x,
		"/md:EntityDescriptor/md:IDPSSODescriptor/md:SingleLogoutService[@Binding='" SAML_BINDING_REDIRECT "']",
		"Location");
	o = xmlXPathEvalExpression(
		(const xmlChar *)"/md:EntityDescriptor/md:IDPSSODescriptor/md:KeyDescriptor[not(@use) or "
			 "@use='signing']/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
		x);
	for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr &&
			idp->nkeys < SAML_METADATA_MAX_KEYS;
	     i++) {
		xmlChar *b64 = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
		GString *pem = g_string_new("-----BEGIN CERTIFICATE-----\n");
		xmlSecKeyPtr key;

		for (const xmlChar *c = b64; c && *c; c++)
			if (*c != ' ' && *c != '\n' && *c != '\r' && *c != '\t')
				g_string_append_c(pem, (char)*c);
		g_string_append(pem, "\n-----END CERTIFICATE-----\n");
		xmlFree(b64);
		/* A PEM body on one line is accepted by OpenSSL's PEM reader only
		 * in 64-column lines: re-wrap. */
		{
			GString *w = g_string_new(NULL);
			const char *body = pem->str + strlen("-----BEGIN CERTIFICATE-----\n");
			size_t blen = pem->len - strlen("-----BEGIN CERTIFICATE-----\n") -
				      strlen("\n-----END CERTIFICATE-----\n");

			g_string_append(w, "-----BEGIN CERTIFICATE-----\n");
			for (size_t k = 0; k < blen; k += 64) {
				g_string_append_len(w, body + k, (gssize)(blen - k < 64 ? blen - k : 64));
				g_string_append_c(w, '\n');
			}
			g_string_append(w, "-----END CERTIFICATE-----\n");
			g_string_free(pem, TRUE);
			pem = w;
		}
		key = xmlSecOpenSSLAppKeyLoadMemory((const xmlSecByte *)pem->str, (xmlSecSize)pem->len,
						    xmlSecKeyDataFormatCertPem, NULL, NULL, NULL);
		g_string_free(pem, TRUE);
		if (key == NULL) {
			snprintf(err, errlen, "%s: signing certificate %d cannot be read", what, i + 1);
			goto fail;
		}
		idp->keys[idp->nkeys++] = key;
	}
	if (idp->nkeys == 0) {
		snprintf(err, errlen,
			 "%s: the IdP metadata has no signing certificate "
			 "(md:KeyDescriptor/ds:KeyInfo/ds:X509Data/ds:X509Certificate)",
			 what);
		goto fail;
	}
	/* No certificate: HTTP-Redirect signatures carry no KeyInfo (the IdP
	 * has our certificate from the SP metadata), and with one lasso 2.8.1
	 * leaks a BIO per signing key in xmlSecOpenSSLAppKeyCertLoad. */
	idp->server = lasso_server_new_from_buffers(sp_metadata, sp_key_pem, NULL, NULL);
	if (idp->server == NULL) {
		snprintf(err, errlen, "lasso refused the SP metadata or key (%s)", sp_key_path);
		goto fail;
	}
	idp->server->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
	le = lasso_server_add_provider_from_buffer(idp->server, LASSO_PROVIDER_ROLE_IDP, metadata,
						   NULL, NULL);
	if (le != 0) {
		snprintf(err, errlen, "%s: lasso refused the IdP metadata: %s", what,
			 lasso_strerror(le));
		goto fail;
	}
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(x);
	xmlFreeDoc(doc);
	return idp;
fail:
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(x);
	xmlFreeDoc(doc);
	saml_metadata_idp_free(idp);
	return NULL;
}

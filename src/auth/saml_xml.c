/* saml_xml: reading SAML XML safely; see saml_xml.h. */
#include "auth/saml_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xpathInternals.h>

xmlXPathContextPtr
saml_xml_xpath(xmlDocPtr doc)
{
	xmlXPathContextPtr x = xmlXPathNewContext(doc);

	if (x == NULL)
		return NULL;
	xmlXPathRegisterNs(x, (const xmlChar *)"md", (const xmlChar *)SAML_NS_MD);
	xmlXPathRegisterNs(x, (const xmlChar *)"ds", (const xmlChar *)SAML_NS_DS);
	xmlXPathRegisterNs(x, (const xmlChar *)"saml", (const xmlChar *)SAML_NS_SAML);
	xmlXPathRegisterNs(x, (const xmlChar *)"samlp", (const xmlChar *)SAML_NS_SAMLP);
	return x;
}

/* Parse XML safely: no network, no DTD loading, no entity expansion, and no
 * DOCTYPE at all (SAML never needs one). */
xmlDocPtr
saml_xml_parse(const char *data, size_t len, const char *what, char *err, size_t errlen)
{
	xmlDocPtr doc;

	if (len > INT32_MAX) {
		snprintf(err, errlen, "%s: too large", what);
		return NULL;
	}
	doc = xmlReadMemory(data, (int)len, "saml.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL) {
		const xmlError *e = xmlGetLastError();

		snprintf(err, errlen, "%s: not well-formed XML%s%s", what, e && e->message ? ": " : "",
			 e && e->message ? e->message : "");
		if (err[0] && err[strlen(err) - 1] == '\n')
			err[strlen(err) - 1] = '\0';
		return NULL;
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL) {
		snprintf(err, errlen, "%s: a DOCTYPE is not allowed", what);
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

/* The first attribute <attr> of the nodes that <expr> selects, or NULL. */
char *
saml_xml_xpath_attr(xmlXPathContextPtr x, const char *expr, const char *attr)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, x);
	char *v = NULL;

	if (o != NULL && o->nodesetval != NULL && o->nodesetval->nodeNr > 0) {
		xmlChar *s = xmlGetProp(o->nodesetval->nodeTab[0], (const xmlChar *)attr);

		if (s != NULL) {
			v = strdup((const char *)s);
			xmlFree(s);
		}
	}
	xmlXPathFreeObject(o);
	return v;
}

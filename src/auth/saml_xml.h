/*
 * saml_xml: reading SAML XML safely with libxml2, shared by the IdP metadata
 * parser (saml_metadata.c) and the response checks (saml_response.c).  The SAML
 * namespaces and bindings are named here once.  No locking of its own: every
 * libxml2 call runs under saml.c's process-wide lock.
 */
#ifndef PORTCULLIS_SAML_XML_H
#define PORTCULLIS_SAML_XML_H

#include <stddef.h>

#include <libxml/tree.h>
#include <libxml/xpath.h>

#define SAML_NS_SAMLP "urn:oasis:names:tc:SAML:2.0:protocol"
#define SAML_NS_SAML "urn:oasis:names:tc:SAML:2.0:assertion"
#define SAML_NS_MD "urn:oasis:names:tc:SAML:2.0:metadata"
#define SAML_NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define SAML_BINDING_REDIRECT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
#define SAML_BINDING_POST "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

/*
 * Parse <len> bytes of <data> as XML, with no network, no DTD loading, no
 * entity expansion and no DOCTYPE at all.  Returns the document (caller
 * frees with xmlFreeDoc), or NULL with "<what>: reason" in <err>.
 */
xmlDocPtr saml_xml_parse(const char *data, size_t len, const char *what, char *err,
			 size_t errlen);

/* A new XPath context on <doc> with the prefixes md, ds, saml and samlp
 * registered (caller frees), or NULL. */
xmlXPathContextPtr saml_xml_xpath(xmlDocPtr doc);

/* A copy of attribute <attr> of the first node that <expr> selects (caller
 * frees), or NULL. */
char *saml_xml_xpath_attr(xmlXPathContextPtr x, const char *expr, const char *attr);

#endif

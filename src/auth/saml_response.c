/*
 * saml_response: the checks of a SAMLResponse posted to the ACS
 * (saml_accept_response, saml_accept_response_shared; see saml.h).
 */
#include "auth/saml.h"
#include "auth/saml_internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/keys.h>
#include <xmlsec/transforms.h>
#include <xmlsec/openssl/crypto.h>

#include "auth/saml_decrypt.h"
#include "auth/saml_metadata.h"
#include "auth/saml_xml.h"
#include "auth/session.h"
#include "auth/stepup.h"
#include "base/timeutil.h"

#define STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"
#define CM_BEARER "urn:oasis:names:tc:SAML:2.0:cm:bearer"
#define SAML_MAX_RESPONSE (512 * 1024)

static bool
saml_is(xmlNodePtr n, const char *ns, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL &&
	       strcmp((const char *)n->ns->href, ns) == 0 && strcmp((const char *)n->name, name) == 0;
}

/* The only child element <ns:name> of <parent>; NULL when absent.  *count
 * gets how many there are. */
static xmlNodePtr
saml_child(xmlNodePtr parent, const char *ns, const char *name, int *count)
{
	xmlNodePtr found = NULL;
	int n = 0;

	for (xmlNodePtr c = parent ? parent->children : NULL; c != NULL; c = c->next) {
		if (saml_is(c, ns, name)) {
			if (found == NULL)
				found = c;
			n++;
		}
	}
	if (count)
		*count = n;
	return found;
}

/* Text of an element that must hold text only (no child elements, no
 * comments: CVE-2017-11427).  NULL otherwise. */
static char *
saml_text(xmlNodePtr n)
{
	GString *g;

	if (n == NULL)
		return NULL;
	g = g_string_new(NULL);
	for (xmlNodePtr c = n->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) {
			g_string_free(g, TRUE);
			return NULL;
		}
		g_string_append(g, (const char *)c->content);
	}
	{
		/* trim XML white space */
		char *s = g_string_free(g, FALSE);
		char *res = strdup(g_strstrip(s));

		g_free(s);
		return res;
	}
}

static char *
saml_prop(xmlNodePtr n, const char *name)
{
	xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
	char *s = v ? strdup((const char *)v) : NULL;

	xmlFree(v);
	return s;
}

static int
saml_count_all(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr x = saml_xml_xpath(doc);
	xmlXPathObjectPtr o = x ? xmlXPathEvalExpression((const xmlChar *)expr, x) : NULL;
	int n = (o && o->nodesetval) ? o->nodesetval->nodeNr : -1;

	xmlXPathFreeObject(o);
	xmlXPathFreeContext(x);
	return n;
}

/* The Algorithm of <n>'s child <child> into <buf>. */
static const char *
saml_alg_name(xmlNodePtr n, const char *child, char *buf, size_t len)
{
	xmlNodePtr c = saml_child(n, SAML_NS_DS, child, NULL);
	xmlChar *a = c ? xmlGetProp(c, (const xmlChar *)"Algorithm") : NULL;

	snprintf(buf, len, "%s", a ? (const char *)a : "(none)");
	xmlFree(a);
	return buf;
}

/*
 * Verify the enveloped signature <sig> of <parent> (whose ID is <id>) with
 * one of the IdP keys.  Lock held.  Returns 0, or -1 with the reason.
 */
static int
saml_verify_signature(struct saml *sp, xmlNodePtr parent, xmlNodePtr sig, const char *id,
		      const char *what, char *err, size_t errlen)
{
	xmlNodePtr si = saml_child(sig, SAML_NS_DS, "SignedInfo", NULL);
	xmlNodePtr ref;
	int nrefs;
	char *uri;
	char sigalg[256], digalg[256], c14n[256];
	bool sha1;

	if (si == NULL) {
		saml_err(err, errlen, "%s signature: no SignedInfo", what);
		return -1;
	}
	ref = saml_child(si, SAML_NS_DS, "Reference", &nrefs);
	if (nrefs != 1) {
		saml_err(err, errlen, "%s signature: expected exactly one Reference, got %d", what,
			 nrefs);
		return -1;
	}
	uri = saml_prop(ref, "URI");
	if (uri == NULL || uri[0] != '#' || strcmp(uri + 1, id) != 0) {
		saml_err(err, errlen,
			 "%s signature: the Reference must point at its own parent: expected URI "
			 "\"#%s\", got \"%s\"",
			 what, id, uri ? uri : "(none)");
		free(uri);
		return -1;
	}
	free(uri);
	saml_alg_name(si, "CanonicalizationMethod", c14n, sizeof c14n);
	saml_alg_name(si, "SignatureMethod", sigalg, sizeof sigalg);
	sha1 = strcmp(sigalg, "http://www.w3.org/2000/09/xmldsig#rsa-sha1") == 0;
	saml_alg_name(ref, "DigestMethod", digalg, sizeof digalg);
	sha1 = sha1 || strcmp(digalg, "http://www.w3.org/2000/09/xmldsig#sha1") == 0;
	if (sha1 && !sp->allow_sha1) {
		saml_err(err, errlen,
			 "%s signature: SHA-1 refused (SignatureMethod %s, DigestMethod %s)" CASDOOR_HASH_HINT,
			 what, sigalg, digalg);
		return -1;
	}
	for (size_t k = 0; k < sp->idp->nkeys; k++) {
		xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
		int ok;

		if (ctx == NULL) {
			saml_err(err, errlen, "xmlSecDSigCtxCreate failed");
			return -1;
		}
		ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument;
		/* Only what SAML needs: enveloped + a canonicalization, RSA with
		 * SHA-1 (if allowed) / SHA-2, their digests. */
		xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformEnvelopedId);
		xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformExclC14NId);
		xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformInclC14NId);
		xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformInclC14N11Id);
		xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecOpenSSLTransformSha256Id);
		xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecOpenSSLTransformSha384Id);
		xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecOpenSSLTransformSha512Id);
		xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformExclC14NId);
		xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformInclC14NId);
		xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformInclC14N11Id);
		xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecOpenSSLTransformRsaSha256Id);
		xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecOpenSSLTransformRsaSha384Id);
		xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecOpenSSLTransformRsaSha512Id);
		if (sp->allow_sha1) {
			xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecOpenSSLTransformSha1Id);
			xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecOpenSSLTransformRsaSha1Id);
		}
		/* The key comes from the IdP metadata, never from KeyInfo. */
		ctx->signKey = xmlSecKeyDuplicate(sp->idp->keys[k]);
		ok = ctx->signKey != NULL && xmlSecDSigCtxVerify(ctx, sig) == 0 &&
		     ctx->status == xmlSecDSigStatusSucceeded &&
		     xmlSecPtrListGetSize(&ctx->signedInfoReferences) == 1;
		if (ok) {
			xmlSecDSigReferenceCtxPtr r =
				xmlSecPtrListGetItem(&ctx->signedInfoReferences, 0);

			ok = r != NULL && r->uri != NULL && r->uri[0] == '#' &&
			     strcmp((const char *)r->uri + 1, id) == 0 &&
			     r->status == xmlSecDSigStatusSucceeded;
		}
		xmlSecDSigCtxDestroy(ctx);
		if (ok) {
			(void)parent;
			return 0;
		}
	}
	saml_err(err, errlen,
		 "%s signature: does not verify with the signing key%s of the IdP metadata "
		 "(SignatureMethod %s, DigestMethod %s, CanonicalizationMethod %s): signed by "
		 "another key, or the message was changed after signing",
		 what, sp->idp->nkeys > 1 ? "s" : "", sigalg, digalg, c14n);
	return -1;
}

#define SAML_ISSUER_FORMAT_ENTITY "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

/* Check an Issuer element (optional on an unsigned Response, required on a
 * signed one and on an Assertion): the IdP's entity ID, Format entity or none. */
static int
saml_check_issuer(struct saml *sp, xmlNodePtr parent, bool required, const char *what, char *err,
		  size_t errlen)
{
	int n;
	xmlNodePtr is = saml_child(parent, SAML_NS_SAML, "Issuer", &n);
	char *v;
	int rc = 0;

	if (is == NULL) {
		if (required) {
			saml_err(err, errlen, "%s Issuer: missing", what);
			return -1;
		}
		return 0;
	}
	/* SAML profiles 4.1.4.2: a Format, when present, is the entity format. */
	v = saml_prop(is, "Format");
	if (v != NULL && strcmp(v, SAML_ISSUER_FORMAT_ENTITY) != 0) {
		saml_err(err, errlen, "%s Issuer Format: expected \"%s\" (or none), got \"%s\"",
			 what, SAML_ISSUER_FORMAT_ENTITY, v);
		free(v);
		return -1;
	}
	free(v);
	v = saml_text(is);
	if (n != 1 || v == NULL || strcmp(v, sp->idp->entity_id) != 0) {
		saml_err(err, errlen, "%s Issuer: expected \"%s\", got \"%s\"", what,
			 sp->idp->entity_id, v ? v : "(not text)");
		rc = -1;
	}
	free(v);
	return rc;
}

/* Check an IssueInstant against the age cap. */
static int
saml_check_instant(struct saml *sp, xmlNodePtr n, const char *what, int64_t now, int64_t *out,
		   char *err, size_t errlen)
{
	char *v = saml_prop(n, "IssueInstant");
	int64_t t;
	int64_t skew = (int64_t)sp->clock_skew;
	char nowbuf[32];

	timeutil_format_utc((time_t)now, nowbuf, sizeof nowbuf);
	if (v == NULL || saml_parse_time(v, &t) < 0) {
		saml_err(err, errlen, "%s IssueInstant: not a valid time: \"%s\"", what, v ? v : "(none)");
		free(v);
		return -1;
	}
	if (t > now + skew) {
		saml_err(err, errlen, "%s IssueInstant: %s is in the future (now %s, skew %llds)", what, v,
			 nowbuf, (long long)skew);
		free(v);
		return -1;
	}
	if (now - t > (int64_t)sp->max_age + skew) {
		saml_err(err, errlen, "%s IssueInstant: %s is older than %.0fs (now %s, skew %llds)", what,
			 v, sp->max_age, nowbuf, (long long)skew);
		free(v);
		return -1;
	}
	free(v);
	if (out)
		*out = t;
	return 0;
}

/* Check NotBefore / NotOnOrAfter attributes of <n>; *until gets NotOnOrAfter. */
static int
saml_check_window(struct saml *sp, xmlNodePtr n, const char *what, int64_t now, bool need_end,
		  int64_t *until, char *err, size_t errlen)
{
	char *nb = saml_prop(n, "NotBefore"), *na = saml_prop(n, "NotOnOrAfter");
	int64_t t, skew = (int64_t)sp->clock_skew;
	char nowbuf[32];
	int rc = -1;

	timeutil_format_utc((time_t)now, nowbuf, sizeof nowbuf);
	if (nb != NULL) {
		if (saml_parse_time(nb, &t) < 0) {
			saml_err(err, errlen, "%s NotBefore: not a valid time: \"%s\"", what, nb);
			goto out;
		}
		if (now + skew < t) {
			saml_err(err, errlen,
				 "%s NotBefore: not yet valid: NotBefore %s, now %s (skew %llds)", what,
				 nb, nowbuf, (long long)skew);
			goto out;
		}
	}
	if (na == NULL) {
		if (need_end) {
			saml_err(err, errlen, "%s NotOnOrAfter: missing", what);
			goto out;
		}
	} else {
		if (saml_parse_time(na, &t) < 0) {
			saml_err(err, errlen, "%s NotOnOrAfter: not a valid time: \"%s\"", what, na);
			goto out;
		}
		if (now - skew >= t) {
			saml_err(err, errlen,
				 "%s NotOnOrAfter: expired: NotOnOrAfter %s, now %s (skew %llds)", what,
				 na, nowbuf, (long long)skew);
			goto out;
		}
		if (until != NULL && (*until == 0 || t < *until))
			*until = t;
	}
	rc = 0;
out:
	free(nb);
	free(na);
	return rc;
}

static bool
saml_wanted_attr(struct saml *sp, const char *name, const char *friendly, const char **as)
{
	for (size_t i = 0; i < sp->nattributes; i++) {
		if ((name && strcmp(sp->attributes[i], name) == 0) ||
		    (friendly && strcmp(sp->attributes[i], friendly) == 0)) {
			*as = sp->attributes[i];
			return true;
		}
	}
	return false;
}

/* What the checks of one response share (lock held while <doc> lives). */
struct saml_resp {
	xmlDocPtr doc;
	xmlNodePtr root, assertion, subject, conditions;
	bool response_verified; /* the Response signature, checked before decryption */
	char *rid, *aid;        /* the Response and Assertion IDs */
	int64_t issued;         /* the Assertion's IssueInstant */
	int64_t until;          /* the earliest NotOnOrAfter, or 0 */
	char *authn_class;      /* the first AuthnStatement's AuthnContextClassRef, or NULL */
	int64_t authn_instant;  /* its AuthnInstant, or -1 when it has none */
};

/* The decoded SAMLResponse form value <b64> (caller g_frees), or NULL with
 * the reason.  Lock not needed. */
static guchar *
saml_resp_decode(const char *b64, gsize *xlen, char *err, size_t errlen)
{
	guchar *xml;
	size_t span;

	if (b64 == NULL || b64[0] == '\0') {
		saml_err(err, errlen, "SAMLResponse: missing from the POST body");
		return NULL;
	}
	if (strlen(b64) > SAML_MAX_RESPONSE * 4 / 3 + 4) {
		saml_err(err, errlen, "SAMLResponse: larger than 512 KiB");
		return NULL;
	}
	/* g_base64_decode ignores junk; check the alphabet first. */
	span = strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			   "0123456789+/=\r\n ");
	if (b64[span] != '\0') {
		saml_err(err, errlen, "SAMLResponse: not base64 (the HTTP-POST binding)%s",
			 CASDOOR_BINDING_HINT);
		return NULL;
	}
	*xlen = 0;
	xml = g_base64_decode(b64, xlen);
	if (xml == NULL || *xlen == 0) {
		saml_err(err, errlen, "SAMLResponse: not base64");
		g_free(xml);
		return NULL;
	}
	return xml;
}

/*
 * An EncryptedAssertion instead of an Assertion: exactly one, a direct child
 * of the Response, no plain Assertion anywhere.  A Response signature covers
 * the encrypted form, so it is verified first (on the Response ID, registered
 * here) and no signature may sit elsewhere; then the assertion is decrypted
 * into r->assertion, in the EncryptedAssertion's place, and must not hold
 * another one.
 */
static int
saml_resp_decrypt(struct saml *sp, struct saml_resp *r, int nplain, int nenc, char *err,
		  size_t errlen)
{
	xmlNodePtr enc, rsig;
	int count;

	if (sp->enc_key == NULL) {
		saml_err(err, errlen, "EncryptedAssertion: this SP has no encryption key (set "
				      "saml.encryption, and give the IdP the new SP metadata)");
		return -1;
	}
	if (nplain != 0 || nenc != 1) {
		saml_err(err, errlen, "Assertion: expected exactly one, got %d plain and %d encrypted",
			 nplain, nenc);
		return -1;
	}
	if ((enc = saml_child(r->root, SAML_NS_SAML, "EncryptedAssertion", NULL)) == NULL) {
		saml_err(err, errlen, "EncryptedAssertion: not a direct child of the Response");
		return -1;
	}
	rsig = saml_child(r->root, SAML_NS_DS, "Signature", &count);
	if (count > 1 || saml_count_all(r->doc, "//ds:Signature") != (rsig ? 1 : 0)) {
		saml_err(err, errlen, "Signature: only one, on the Response itself, may stand "
				      "beside an EncryptedAssertion");
		return -1;
	}
	if (rsig != NULL) {
		r->rid = saml_prop(r->root, "ID");
		if (r->rid == NULL || r->rid[0] == '\0' ||
		    xmlAddID(NULL, r->doc, (const xmlChar *)r->rid,
			     xmlHasProp(r->root, (const xmlChar *)"ID")) == NULL) {
			saml_err(err, errlen, "ID: the signed Response has no usable ID");
			return -1;
		}
		if (saml_verify_signature(sp, r->root, rsig, r->rid, "Response", err, errlen) < 0)
			return -1;
		r->response_verified = true;
	}
	if (saml_decrypt_assertion(r->doc, enc, sp->enc_key, &r->assertion, err, errlen) < 0)
		return -1;
	if (saml_count_all(r->doc, "//saml:Assertion") != 1 ||
	    saml_count_all(r->doc, "//saml:EncryptedAssertion") != 0) {
		saml_err(err, errlen, "EncryptedAssertion: the decrypted Assertion holds another one");
		return -1;
	}
	return 0;
}

/*
 * Parse the document and check its shape: a samlp:Response root with
 * exactly one saml:Assertion as a direct child (or one EncryptedAssertion,
 * decrypted in its place; plain text refused when encryption is required),
 * and distinct IDs on both, registered so that a Reference can resolve to
 * nothing else.
 */
static int
saml_resp_shape(struct saml *sp, struct saml_resp *r, const guchar *xml, gsize xlen, char *err,
		size_t errlen)
{
	xmlAttrPtr ida;
	int count, nenc;

	r->doc = saml_xml_parse((const char *)xml, xlen, "SAMLResponse", err, errlen);
	if (r->doc == NULL) {
		if (xlen > 0 && xml[0] != '<')
			snprintf(err + strlen(err), errlen - strlen(err), "%s", CASDOOR_BINDING_HINT);
		return -1;
	}
	r->root = xmlDocGetRootElement(r->doc);
	if (!saml_is(r->root, SAML_NS_SAMLP, "Response")) {
		saml_err(err, errlen, "SAMLResponse: the root element is %s, not samlp:Response",
			 r->root ? (const char *)r->root->name : "(none)");
		return -1;
	}
	/* Exactly one assertion, a direct child of the Response. */
	count = saml_count_all(r->doc, "//saml:Assertion");
	nenc = saml_count_all(r->doc, "//saml:EncryptedAssertion");
	if (nenc != 0 && saml_resp_decrypt(sp, r, count, nenc, err, errlen) < 0)
		return -1;
	if (nenc == 0 && count != 1) {
		saml_err(err, errlen, "Assertion: expected exactly one, got %d", count);
		return -1;
	}
	if (nenc == 0 && sp->require_encryption) {
		saml_err(err, errlen, "Assertion: not encrypted, and saml.encryption.require is on "
				      "(the IdP must encrypt assertions to this SP)");
		return -1;
	}
	r->assertion = saml_child(r->root, SAML_NS_SAML, "Assertion", NULL);
	if (r->assertion == NULL) {
		saml_err(err, errlen, "Assertion: not a direct child of the Response");
		return -1;
	}
	/* IDs: registered only on these two elements, and distinct, so a
	 * Reference can resolve to nothing else. */
	if (r->rid == NULL)
		r->rid = saml_prop(r->root, "ID");
	r->aid = saml_prop(r->assertion, "ID");
	if (r->rid == NULL || r->aid == NULL || r->rid[0] == '\0' || r->aid[0] == '\0' ||
	    strcmp(r->rid, r->aid) == 0) {
		saml_err(err, errlen, "ID: the Response and the Assertion need distinct IDs (got \"%s\" "
				      "and \"%s\")",
			 r->rid ? r->rid : "", r->aid ? r->aid : "");
		return -1;
	}
	ida = xmlHasProp(r->root, (const xmlChar *)"ID");
	if (!r->response_verified && xmlAddID(NULL, r->doc, (const xmlChar *)r->rid, ida) == NULL) {
		saml_err(err, errlen, "ID: cannot register the Response ID");
		return -1;
	}
	ida = xmlHasProp(r->assertion, (const xmlChar *)"ID");
	if (xmlAddID(NULL, r->doc, (const xmlChar *)r->aid, ida) == NULL) {
		saml_err(err, errlen, "ID: cannot register the Assertion ID");
		return -1;
	}
	return 0;
}

/*
 * Signatures: only as direct children of the Response or the Assertion, at
 * least one of them, and every one present verifies with an IdP key.
 */
static int
saml_resp_signatures(struct saml *sp, struct saml_resp *r, char *err, size_t errlen)
{
	xmlNodePtr rsig, asig;
	int count;

	rsig = saml_child(r->root, SAML_NS_DS, "Signature", &count);
	if (count > 1) {
		saml_err(err, errlen, "Signature: the Response carries %d signatures", count);
		return -1;
	}
	asig = saml_child(r->assertion, SAML_NS_DS, "Signature", &count);
	if (count > 1) {
		saml_err(err, errlen, "Signature: the Assertion carries %d signatures", count);
		return -1;
	}
	count = saml_count_all(r->doc, "//ds:Signature");
	if (count != (rsig ? 1 : 0) + (asig ? 1 : 0)) {
		saml_err(err, errlen, "Signature: %d signature element(s) outside the Response and "
				      "Assertion elements",
			 count - (rsig ? 1 : 0) - (asig ? 1 : 0));
		return -1;
	}
	if (rsig == NULL && asig == NULL) {
		saml_err(err, errlen, "Signature: neither the Response nor the Assertion is signed");
		return -1;
	}
	/* The Response signature covers the assertion (its child); an
	 * Assertion signature covers itself.  Every signature present must
	 * verify. */
	if (rsig != NULL && !r->response_verified &&
	    saml_verify_signature(sp, r->root, rsig, r->rid, "Response", err, errlen) < 0)
		return -1;
	if (asig != NULL &&
	    saml_verify_signature(sp, r->assertion, asig, r->aid, "Assertion", err, errlen) < 0)
		return -1;
	return 0;
}

/*
 * The Response element: Version, Destination (our ACS), InResponseTo (the
 * request this browser started), Issuer, IssueInstant and a success Status.
 */
static int
saml_resp_outer(struct saml *sp, struct saml_resp *r, const char *request_id, int64_t now,
		char *err, size_t errlen)
{
	xmlNodePtr n;
	char *s;
	int rc = -1;

	s = saml_prop(r->root, "Version");
	if (s == NULL || strcmp(s, "2.0") != 0) {
		saml_err(err, errlen, "Version: expected \"2.0\", got \"%s\"", s ? s : "(none)");
		goto out;
	}
	free(s);
	s = saml_prop(r->root, "Destination");
	if (s == NULL || strcmp(s, sp->acs_url) != 0) {
		saml_err(err, errlen, "Destination: expected \"%s\", got \"%s\"", sp->acs_url,
			 s ? s : "(none)");
		goto out;
	}
	free(s);
	s = saml_prop(r->root, "InResponseTo");
	if (s == NULL) {
		saml_err(err, errlen,
			 "InResponseTo: missing (an unsolicited response; only logins started here "
			 "are accepted), expected \"%s\"",
			 request_id);
		goto out;
	}
	if (strcmp(s, request_id) != 0) {
		saml_err(err, errlen,
			 "InResponseTo: expected \"%s\" (the request this browser started), got \"%s\"",
			 request_id, s);
		goto out;
	}
	free(s);
	s = NULL;
	/* SAML profiles 4.1.4.2: a signed Response carries an Issuer. */
	if (saml_check_issuer(sp, r->root,
			      saml_child(r->root, SAML_NS_DS, "Signature", NULL) != NULL,
			      "Response", err, errlen) < 0 ||
	    saml_check_instant(sp, r->root, "Response", now, NULL, err, errlen) < 0)
		goto out;
	n = saml_child(saml_child(r->root, SAML_NS_SAMLP, "Status", NULL), SAML_NS_SAMLP, "StatusCode",
		       NULL);
	s = saml_prop(n, "Value");
	if (s == NULL || strcmp(s, STATUS_SUCCESS) != 0) {
		xmlNodePtr sub = saml_child(n, SAML_NS_SAMLP, "StatusCode", NULL);
		char *subv = saml_prop(sub, "Value");
		char *msg = saml_text(saml_child(saml_child(r->root, SAML_NS_SAMLP, "Status", NULL),
						 SAML_NS_SAMLP, "StatusMessage", NULL));

		saml_err(err, errlen, "Status: the IdP answered %s%s%s%s%s", s ? s : "(no status)",
			 subv ? " / " : "", subv ? subv : "", msg ? ": " : "", msg ? msg : "");
		free(subv);
		free(msg);
		goto out;
	}
	rc = 0;
out:
	free(s);
	return rc;
}

/*
 * The Subject has a bearer SubjectConfirmation whose data names our ACS as
 * Recipient, the request this browser started (if any InResponseTo) and a
 * current time window (its NotOnOrAfter lowers r->until).
 */
static int
saml_resp_bearer(struct saml *sp, struct saml_resp *r, const char *request_id, int64_t now,
		 char *err, size_t errlen)
{
	char why[512];

	why[0] = '\0';
	for (xmlNodePtr sc = r->subject->children; sc != NULL; sc = sc->next) {
		xmlNodePtr scd;
		char *m, *v;

		if (!saml_is(sc, SAML_NS_SAML, "SubjectConfirmation"))
			continue;
		m = saml_prop(sc, "Method");
		if (m == NULL || strcmp(m, CM_BEARER) != 0) {
			free(m);
			continue;
		}
		free(m);
		scd = saml_child(sc, SAML_NS_SAML, "SubjectConfirmationData", NULL);
		if (scd == NULL) {
			snprintf(why, sizeof why, "SubjectConfirmationData: missing");
			continue;
		}
		v = saml_prop(scd, "Recipient");
		if (v == NULL || strcmp(v, sp->acs_url) != 0) {
			snprintf(why, sizeof why, "Recipient: expected \"%s\", got \"%s\"", sp->acs_url,
				 v ? v : "(none)");
			free(v);
			continue;
		}
		free(v);
		/* Every login here is SP-initiated: the bearer data names the request. */
		v = saml_prop(scd, "InResponseTo");
		if (v == NULL || strcmp(v, request_id) != 0) {
			snprintf(why, sizeof why,
				 "SubjectConfirmationData InResponseTo: expected \"%s\", got \"%s\"",
				 request_id, v ? v : "(none)");
			free(v);
			continue;
		}
		free(v);
		if (saml_check_window(sp, scd, "SubjectConfirmationData", now, true, &r->until, why,
				      sizeof why) < 0)
			continue;
		return 0;
	}
	saml_err(err, errlen, "%s", why[0] ? why : "SubjectConfirmation: no bearer confirmation");
	return -1;
}

/* Audience from the XML itself: every AudienceRestriction of <conditions>
 * must name us (lasso drops restrictions with several Audiences). */
static int
saml_resp_audience(struct saml *sp, xmlNodePtr conditions, char *err, size_t errlen)
{
	int nrestr = 0;
	GString *seen = g_string_new(NULL);
	bool all_ok = true;
	int rc = 0;

	for (xmlNodePtr ar = conditions->children; ar != NULL; ar = ar->next) {
		bool ours = false;

		if (!saml_is(ar, SAML_NS_SAML, "AudienceRestriction"))
			continue;
		nrestr++;
		for (xmlNodePtr au = ar->children; au != NULL; au = au->next) {
			char *v;

			if (!saml_is(au, SAML_NS_SAML, "Audience"))
				continue;
			v = saml_text(au);
			if (v != NULL && strcmp(v, sp->sp_entity_id) == 0)
				ours = true;
			g_string_append_printf(seen, "%s\"%s\"", seen->len ? ", " : "",
					       v ? v : "(not text)");
			free(v);
		}
		if (!ours)
			all_ok = false;
	}
	if (nrestr == 0 || !all_ok) {
		saml_err(err, errlen, "Audience: expected \"%s\", got %s", sp->sp_entity_id,
			 nrestr == 0 ? "no AudienceRestriction" : seen->str);
		rc = -1;
	}
	g_string_free(seen, TRUE);
	return rc;
}

/*
 * The first AuthnStatement's AuthnInstant (not later than now + clock skew;
 * r->authn_instant, -1 when absent) and AuthnContextClassRef (r->authn_class),
 * kept in the session for step-up rules.
 */
static int
saml_resp_authn(struct saml *sp, struct saml_resp *r, int64_t now, char *err, size_t errlen)
{
	xmlNodePtr st = saml_child(r->assertion, SAML_NS_SAML, "AuthnStatement", NULL);
	char *v = saml_prop(st, "AuthnInstant");

	r->authn_instant = -1;
	if (v != NULL && saml_parse_time(v, &r->authn_instant) < 0) {
		saml_err(err, errlen, "AuthnStatement AuthnInstant: not a valid time: \"%s\"", v);
		free(v);
		return -1;
	}
	if (v != NULL && r->authn_instant > now + (int64_t)sp->clock_skew) {
		saml_err(err, errlen, "AuthnStatement AuthnInstant: %s is in the future (skew %.0fs)",
			 v, sp->clock_skew);
		free(v);
		return -1;
	}
	free(v);
	r->authn_class = saml_text(saml_child(saml_child(st, SAML_NS_SAML, "AuthnContext", NULL),
					      SAML_NS_SAML, "AuthnContextClassRef", NULL));
	if (r->authn_class != NULL && strpbrk(r->authn_class, "\r\n") != NULL) {
		free(r->authn_class);
		r->authn_class = NULL;
	}
	return 0;
}

/*
 * The Assertion element: Version 2.0, an AuthnStatement, Issuer (required),
 * IssueInstant (into r->issued),
 * a Subject with a bearer confirmation, and one Conditions element with a
 * current window and our Audience.
 */
static int
saml_resp_assertion(struct saml *sp, struct saml_resp *r, const char *request_id, int64_t now,
		    char *err, size_t errlen)
{
	int count;
	char *ver = saml_prop(r->assertion, "Version");

	if (ver == NULL || strcmp(ver, "2.0") != 0) {
		saml_err(err, errlen, "Assertion Version: expected \"2.0\", got \"%s\"",
			 ver ? ver : "(none)");
		free(ver);
		return -1;
	}
	free(ver);
	/* SAML profiles 4.1.4.2: the assertion of a Web SSO response carries
	 * at least one AuthnStatement. */
	if (saml_child(r->assertion, SAML_NS_SAML, "AuthnStatement", NULL) == NULL) {
		saml_err(err, errlen, "AuthnStatement: missing (the Web SSO profile requires one)");
		return -1;
	}
	if (saml_resp_authn(sp, r, now, err, errlen) < 0)
		return -1;
	if (saml_check_issuer(sp, r->assertion, true, "Assertion", err, errlen) < 0 ||
	    saml_check_instant(sp, r->assertion, "Assertion", now, &r->issued, err, errlen) < 0)
		return -1;
	r->subject = saml_child(r->assertion, SAML_NS_SAML, "Subject", NULL);
	if (r->subject == NULL) {
		saml_err(err, errlen, "Subject: missing");
		return -1;
	}
	if (saml_resp_bearer(sp, r, request_id, now, err, errlen) < 0)
		return -1;
	r->conditions = saml_child(r->assertion, SAML_NS_SAML, "Conditions", &count);
	if (r->conditions == NULL || count != 1) {
		saml_err(err, errlen, "Conditions: expected one element, got %d", count);
		return -1;
	}
	if (saml_check_window(sp, r->conditions, "Conditions", now, false, &r->until, err, errlen) < 0)
		return -1;
	return saml_resp_audience(sp, r->conditions, err, errlen);
}

/*
 * A new session for the Subject's one plain-text NameID, issued <now>,
 * bounded by the AuthnStatements' SessionNotOnOrAfter, with the IdP's first
 * SessionIndex (for the LogoutRequest).  NULL with the reason otherwise.
 */
static struct session *
saml_resp_session(struct saml_resp *r, int64_t now, char *err, size_t errlen)
{
	struct session *sess;
	xmlNodePtr n;
	int count;

	n = saml_child(r->subject, SAML_NS_SAML, "NameID", &count);
	if (n == NULL || count != 1) {
		saml_err(err, errlen, "NameID: expected one NameID in the Subject, got %d%s", count,
			 saml_child(r->subject, SAML_NS_SAML, "EncryptedID", NULL) ? " (encrypted IDs are not supported)" : "");
		return NULL;
	}
	if ((sess = session_new()) == NULL) {
		saml_err(err, errlen, "out of memory");
		return NULL;
	}
	sess->name_id = saml_text(n);
	if (sess->name_id == NULL || sess->name_id[0] == '\0') {
		saml_err(err, errlen, "NameID: empty, or not plain text (comments or elements inside)");
		goto fail;
	}
	sess->issued = now;
	if (r->authn_instant >= 0 && stepup_record(sess, r->authn_class, r->authn_instant) < 0) {
		saml_err(err, errlen, "out of memory");
		goto fail;
	}
	/* SessionNotOnOrAfter bounds the session. */
	for (xmlNodePtr as = r->assertion->children; as != NULL; as = as->next) {
		char *v;
		int64_t t;

		if (!saml_is(as, SAML_NS_SAML, "AuthnStatement"))
			continue;
		v = saml_prop(as, "SessionNotOnOrAfter");
		if (v != NULL && saml_parse_time(v, &t) == 0 && (sess->expires == 0 || t < sess->expires))
			sess->expires = t;
		free(v);
		/* The IdP's session index, for the LogoutRequest (the first one). */
		v = saml_prop(as, "SessionIndex");
		if (v != NULL && v[0] != '\0' && strpbrk(v, "\r\n") == NULL &&
		    saml_session_index(sess) == NULL &&
		    session_add_attr(sess, SAML_SESSION_INDEX_ATTR, v) < 0) {
			free(v);
			saml_err(err, errlen, "out of memory");
			goto fail;
		}
		free(v);
	}
	return sess;
fail:
	session_free(sess);
	return NULL;
}

/* Copy the values of the configured attributes (by Name or FriendlyName) of
 * every AttributeStatement into <sess>; values holding CR or LF are
 * dropped. */
static int
saml_resp_attributes(struct saml *sp, struct saml_resp *r, struct session *sess, char *err,
		     size_t errlen)
{
	for (xmlNodePtr st = r->assertion->children; st != NULL; st = st->next) {
		if (!saml_is(st, SAML_NS_SAML, "AttributeStatement"))
			continue;
		for (xmlNodePtr at = st->children; at != NULL; at = at->next) {
			char *name, *friendly;
			const char *as_name;

			if (!saml_is(at, SAML_NS_SAML, "Attribute"))
				continue;
			name = saml_prop(at, "Name");
			friendly = saml_prop(at, "FriendlyName");
			if (saml_wanted_attr(sp, name, friendly, &as_name)) {
				for (xmlNodePtr av = at->children; av != NULL; av = av->next) {
					char *v;

					if (!saml_is(av, SAML_NS_SAML, "AttributeValue"))
						continue;
					v = saml_text(av);
					if (v != NULL && strpbrk(v, "\r\n") == NULL &&
					    session_add_attr(sess, as_name, v) < 0) {
						free(v);
						free(name);
						free(friendly);
						saml_err(err, errlen, "out of memory");
						return -1;
					}
					free(v);
				}
			}
			free(name);
			free(friendly);
		}
	}
	return 0;
}

/*
 * Replay: remember the assertion ID as long as it could be accepted: until
 * its end of validity, but no longer than the IssueInstant cap.  With
 * <replay> the ID and its lifetime go to the caller (r->aid is handed over);
 * else the in-process cache refuses an ID seen before.
 */
static int
saml_resp_remember(struct saml *sp, struct saml_resp *r, int64_t now,
		   struct saml_replay_key *replay, char *err, size_t errlen)
{
	int64_t keep = r->issued + (int64_t)sp->max_age + 2 * (int64_t)sp->clock_skew;

	if (r->until != 0 && r->until + (int64_t)sp->clock_skew < keep)
		keep = r->until + (int64_t)sp->clock_skew;
	if (replay != NULL) {
		replay->keep_until = keep + 1;
		replay->assertion_id = r->aid;
		r->aid = NULL;
		return 0;
	}
	if (saml_replay_check(r->aid, keep + 1, now, sp->replay_cache_size) < 0) {
		if (saml_replay_full(sp->replay_cache_size))
			saml_err(err, errlen,
				 "replay cache: full (%zu live assertion IDs); raise "
				 "saml.replay_cache_size",
				 sp->replay_cache_size);
		else
			saml_err(err, errlen, "Assertion ID: \"%s\" was used before (a replay)", r->aid);
		return -1;
	}
	return 0;
}

/* saml_accept_response and saml_accept_response_shared: <replay> NULL checks
 * the assertion ID against the in-process replay cache, else hands it out.
 * The checks run in this order, the first failure naming itself in <err>. */
static struct session *
saml_check_response(struct saml *sp, const char *b64, const char *request_id, int64_t now,
		    struct saml_replay_key *replay, char *err, size_t errlen)
{
	struct saml_resp r = {0};
	struct session *sess = NULL;
	guchar *xml;
	gsize xlen = 0;

	err[0] = '\0';
	if ((xml = saml_resp_decode(b64, &xlen, err, errlen)) == NULL)
		goto out;
	pthread_mutex_lock(&saml_lock);
	if (saml_resp_shape(sp, &r, xml, xlen, err, errlen) == 0 &&
	    saml_resp_signatures(sp, &r, err, errlen) == 0 &&
	    saml_resp_outer(sp, &r, request_id, now, err, errlen) == 0 &&
	    saml_resp_assertion(sp, &r, request_id, now, err, errlen) == 0)
		sess = saml_resp_session(&r, now, err, errlen);
	if (sess != NULL && (saml_resp_attributes(sp, &r, sess, err, errlen) < 0 ||
			     saml_resp_remember(sp, &r, now, replay, err, errlen) < 0)) {
		session_free(sess);
		sess = NULL;
	}
	xmlFreeDoc(r.doc);
	pthread_mutex_unlock(&saml_lock);
out:
	free(r.rid);
	free(r.aid);
	free(r.authn_class);
	g_free(xml);
	return sess;
}

struct session *
saml_accept_response(struct saml *sp, const char *b64, const char *request_id, int64_t now,
		     char *err, size_t errlen)
{
	return saml_check_response(sp, b64, request_id, now, NULL, err, errlen);
}

struct session *
saml_accept_response_shared(struct saml *sp, const char *b64, const char *request_id,
			    int64_t now, struct saml_replay_key *replay, char *err, size_t errlen)
{
	struct session *s;

	replay->assertion_id = NULL;
	replay->keep_until = 0;
	s = saml_check_response(sp, b64, request_id, now, replay, err, errlen);
	if (s == NULL) {
		free(replay->assertion_id);
		replay->assertion_id = NULL;
	}
	return s;
}

/*
 * fuzz_saml: feeds arbitrary bytes as the XML of a SAMLResponse posted to
 * the ACS, to saml_accept_response_shared (src/auth/saml.c): base64, the
 * hardened libxml2 parse (saml_xml.c), the structure checks before xmlsec
 * (one assertion, the Reference to its parent's ID, algorithms), the
 * signature check with a key from the IdP metadata only, and the checks
 * after it (Destination, InResponseTo, Issuer, Status, Audience,
 * Recipient, time windows, attributes into the session); an
 * EncryptedAssertion is decrypted (saml_decrypt.c) with the SP key, which
 * doubles as the encryption key here.
 *
 * The SP is fixed: fuzz/data/saml/ holds the IdP key and certificate (made
 * once with openssl; the corpus' responses are signed with it by
 * tests/saml/samltools.py), its metadata, and the SP's key and certificate.
 * SP entity https://sp.test/saml/metadata, ACS https://sp.test/complete/saml/,
 * request ID _req1, now = 2026-01-01T00:00:30Z.  The shared-replay variant
 * is used so that every input is judged alone (no replay cache in between).
 *
 * The first byte picks how the rest arrives:
 *   - even: as is (a signature a mutation broke fails, so this mostly runs
 *     the checks before and around xmlsec);
 *   - odd: signed first by the harness with the IdP key (every ds:Signature
 *     template in it, innermost first, with the ID attributes of Response and
 *     Assertion registered), so mutated documents still carry a valid
 *     signature and reach the checks after xmlsec.  Signing is best effort:
 *     what does not sign goes as is.
 *
 * Contract checked (aborts when broken):
 *   - a session comes back with an empty error and a replay key, or NULL
 *     with a reason and no replay key;
 *   - an accepted session has a NameID and expires after now (or has no
 *     SessionNotOnOrAfter: 0), and its replay key lasts beyond now;
 *   - the session survives an encode/decode round trip (it becomes a
 *     cookie next).
 */
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/crypto.h>

#include "auth/saml.h"
#include "auth/session.h"
#include "base/log.h"
#include "fuzz.h"

#define FUZZ_NOW 1767225630 /* 2026-01-01T00:00:30Z */

static struct saml *sp;
static xmlSecKeyPtr idp_key;

/* Register the ID attribute of every element below <n> (Response, Assertion). */
static void
register_ids(xmlDocPtr doc, xmlNodePtr n)
{
	for (; n != NULL; n = n->next) {
		xmlAttrPtr id;

		if (n->type != XML_ELEMENT_NODE)
			continue;
		id = xmlHasProp(n, (const xmlChar *)"ID");
		if (id != NULL && id->children != NULL && id->children->content != NULL &&
		    xmlGetID(doc, id->children->content) == NULL)
			xmlAddID(NULL, doc, id->children->content, id);
		register_ids(doc, n->children);
	}
}

/* Collect the ds:Signature elements below <n> in document order. */
static size_t
find_signatures(xmlNodePtr n, xmlNodePtr *out, size_t max, size_t count)
{
	for (; n != NULL && count < max; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlSecCheckNodeName(n, xmlSecNodeSignature, xmlSecDSigNs))
			out[count++] = n;
		count = find_signatures(n->children, out, max, count);
	}
	return count;
}

/* <data> with its signature templates signed by the IdP key (malloc'd), or NULL. */
static unsigned char *
self_sign(const uint8_t *data, size_t size, size_t *outlen)
{
	xmlDocPtr doc = xmlReadMemory((const char *)data, (int)size, "fuzz.xml", NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlNodePtr sigs[8];
	xmlChar *text = NULL;
	unsigned char *out = NULL;
	int len = 0;
	size_t n;

	if (doc == NULL)
		return NULL;
	register_ids(doc, xmlDocGetRootElement(doc));
	n = find_signatures(xmlDocGetRootElement(doc), sigs, 8, 0);
	while (n-- > 0) { /* innermost (last) first: the outer digest covers it */
		xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);

		if (ctx == NULL)
			break;
		ctx->signKey = xmlSecKeyDuplicate(idp_key);
		(void)xmlSecDSigCtxSign(ctx, sigs[n]);
		xmlSecDSigCtxDestroy(ctx);
	}
	xmlDocDumpMemory(doc, &text, &len);
	xmlFreeDoc(doc);
	if (text != NULL && len > 0 && (out = malloc((size_t)len)) != NULL) {
		memcpy(out, text, (size_t)len);
		*outlen = (size_t)len;
	}
	xmlFree(text);
	return out;
}

static void
setup(void)
{
	static char cache[] = "/tmp/fuzz-saml-XXXXXX";
	static const char *const attributes[] = {"Email", "Name", "Roles"};
	char err[1024];
	struct saml_options o = {
		.idp_metadata = PORTCULLIS_FUZZ_DATA "/saml/idp-metadata.xml",
		.sp_entity_id = "https://sp.test/saml/metadata",
		.acs_url = "https://sp.test/complete/saml/",
		.slo_url = "https://sp.test/saml/logout",
		.sp_key = PORTCULLIS_FUZZ_DATA "/saml/sp.key",
		.sp_cert = PORTCULLIS_FUZZ_DATA "/saml/sp.crt",
		/* the SP key doubles as the encryption key: EncryptedAssertion
		 * seeds are encrypted to sp.crt */
		.enc_key = PORTCULLIS_FUZZ_DATA "/saml/sp.key",
		.enc_cert = PORTCULLIS_FUZZ_DATA "/saml/sp.crt",
		.clock_skew = 60,
		.max_age = 300,
		.allow_sha1 = true,
		.attributes = attributes,
		.nattributes = 3,
	};
	int fd = mkstemp(cache);

	log_set_level(LOG_LEVEL_ERROR); /* a line per input would slow fuzzing down */
	FUZZ_CHECK(fd >= 0);
	close(fd);
	unlink(cache);
	o.idp_metadata_cache = cache;
	sp = saml_new(&o, err, sizeof(err));
	if (sp == NULL)
		fprintf(stderr, "fuzz_saml: %s\n", err);
	FUZZ_CHECK(sp != NULL);
	/* xmlsec is set up by saml_new */
	idp_key = xmlSecCryptoAppKeyLoad(PORTCULLIS_FUZZ_DATA "/saml/idp.key", xmlSecKeyDataFormatPem,
					 NULL, NULL, NULL);
	FUZZ_CHECK(idp_key != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct saml_replay_key replay = {NULL, 0};
	unsigned char *signed_xml = NULL;
	struct session *s;
	char *b64, err[2048];

	if (sp == NULL)
		setup();
	if (size == 0)
		return 0;
	if (data[0] & 1)
		signed_xml = self_sign(data + 1, size - 1, &size);
	if (signed_xml != NULL) {
		data = signed_xml;
	} else {
		data++;
		size--;
	}
	b64 = malloc(4 * (size / 3 + 1) + 1);
	FUZZ_CHECK(b64 != NULL);
	EVP_EncodeBlock((unsigned char *)b64, data, (int)size);
	err[0] = '\0';
	s = saml_accept_response_shared(sp, b64, "_req1", FUZZ_NOW, &replay, err, sizeof(err));
	if (s == NULL) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(replay.assertion_id == NULL);
	} else {
		unsigned char *enc;
		struct session *again;
		size_t len;

		FUZZ_CHECK(s->name_id != NULL && s->name_id[0] != '\0');
		FUZZ_CHECK(s->expires == 0 || s->expires > FUZZ_NOW);
		FUZZ_CHECK(replay.assertion_id != NULL && replay.keep_until > FUZZ_NOW);
		enc = session_encode(s, &len);
		FUZZ_CHECK(enc != NULL);
		again = session_decode(enc, len);
		FUZZ_CHECK(again != NULL && strcmp(again->name_id, s->name_id) == 0 &&
			   again->nattrs == s->nattrs);
		session_free(again);
		free(enc);
	}
	free(replay.assertion_id);
	session_free(s);
	free(b64);
	free(signed_xml);
	return 0;
}

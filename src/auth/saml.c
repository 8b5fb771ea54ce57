/* saml: the SAML 2.0 service provider; see saml.h. */
#include "auth/saml.h"
#include "auth/saml_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <libxml/tree.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/keys.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/evp.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_requested_authn_context.h>
#include <lasso/xml/saml-2.0/samlp2_name_id_policy.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_authn_statement.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
#include <lasso/xml/saml-2.0/samlp2_logout_request.h>
#include <lasso/xml/saml-2.0/samlp2_request_abstract.h>

#include "tls/localca.h"
#include "auth/saml_decrypt.h"
#include "auth/saml_fetch.h"
#include "auth/saml_metadata.h"
#include "auth/saml_xml.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "auth/session.h"

/* Every lasso / libxml2 / xmlsec call runs under this lock. */
pthread_mutex_t saml_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t saml_once = PTHREAD_ONCE_INIT;
static bool saml_init_ok;

/* ---- small helpers -------------------------------------------------------- */

void
saml_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *
saml_strdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

bool
saml_is_url(const char *s)
{
	return strncasecmp(s, "https://", 8) == 0 || strncasecmp(s, "http://", 7) == 0;
}

/* Append XML-escaped <s> to a GString. */
static void
saml_xml_escape(GString *g, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': g_string_append(g, "&amp;"); break;
		case '<': g_string_append(g, "&lt;"); break;
		case '>': g_string_append(g, "&gt;"); break;
		case '"': g_string_append(g, "&quot;"); break;
		default: g_string_append_c(g, *s); break;
		}
	}
}

/* lasso and libxml2/xmlsec report through g_log: feed our log. */
static void
saml_glog_cb(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
	(void)data;
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		log_warn("saml: %s: %s", domain ? domain : "glib", message);
	else
		log_debug("saml: %s: %s", domain ? domain : "glib", message);
}

static void
saml_global_init(void)
{
	if (lasso_init() != 0)
		return;
	/* LASSO_FLAG=no-verify-signature in the environment would turn off
	 * lasso's signature checks: turn them back on. */
	lasso_set_flag("verify-signature");
	g_log_set_handler("Lasso", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
			  saml_glog_cb, NULL);
	g_log_set_handler(NULL, G_LOG_LEVEL_MASK, saml_glog_cb, NULL);
	saml_init_ok = true;
}

/* ---- time ----------------------------------------------------------------- */

static int
saml_digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
saml_parse_time(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, se, oh = 0, om = 0;
	struct tm tm;
	const char *p;
	int64_t t;

	if (s == NULL || strlen(s) < 20)
		return -1;
	if (saml_digits(s, 4, &y) || s[4] != '-' || saml_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    saml_digits(s + 8, 2, &d) || s[10] != 'T' || saml_digits(s + 11, 2, &h) ||
	    s[13] != ':' || saml_digits(s + 14, 2, &mi) || s[16] != ':' ||
	    saml_digits(s + 17, 2, &se))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;

		if (saml_digits(p + 1, 2, &oh) || p[3] != ':' || saml_digits(p + 4, 2, &om))
			return -1;
		oh *= sign;
		om *= sign;
		p += 6;
	} else {
		return -1; /* a time without a zone is ambiguous */
	}
	if (*p != '\0')
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = (int64_t)timegm(&tm);
	*out = t - (int64_t)oh * 3600 - (int64_t)om * 60;
	return 0;
}

/* ---- SP key and certificate ------------------------------------------------ */

static int
saml_make_sp_keys(const char *key_path, const char *cert_path, const char *entity_id,
		  char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	BIO *kb = NULL, *cb = NULL;
	char *kdata, *cdata, dir[4096], *slash;
	long klen, clen;
	int rc = -1;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char cn[64];

	snprintf(dir, sizeof dir, "%s", key_path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if (dir[0] && localca_mkdirs(dir, err, errlen) < 0)
			return -1;
	}
	snprintf(dir, sizeof dir, "%s", cert_path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if (dir[0] && localca_mkdirs(dir, err, errlen) < 0)
			return -1;
	}
	pkey = EVP_RSA_gen(3072);
	x = X509_new();
	if (pkey == NULL || x == NULL || RAND_bytes(serial, sizeof serial) != 1) {
		saml_err(err, errlen, "%s: cannot generate the SAML SP key", key_path);
		goto out;
	}
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	/* The CN is informational: SAML peers pin the certificate itself. */
	snprintf(cn, sizeof cn, "%.60s", entity_id);
	X509_set_version(x, 2);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 24 * 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Portcullis SAML SP",
				   -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (X509_sign(x, pkey, EVP_sha256()) == 0) {
		saml_err(err, errlen, "%s: cannot sign the SAML SP certificate", cert_path);
		goto out;
	}
	kb = BIO_new(BIO_s_mem());
	cb = BIO_new(BIO_s_mem());
	if (kb == NULL || cb == NULL || !PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cb, x))
		goto out;
	klen = BIO_get_mem_data(kb, &kdata);
	clen = BIO_get_mem_data(cb, &cdata);
	if (localca_write_atomic(key_path, kdata, (size_t)klen, 0600, err, errlen) < 0 ||
	    localca_write_atomic(cert_path, cdata, (size_t)clen, 0644, err, errlen) < 0)
		goto out;
	log_info("saml: created the SP key %s and certificate %s", key_path, cert_path);
	rc = 0;
out:
	BIO_free(kb);
	BIO_free(cb);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

/* The base64 body of a PEM certificate (no headers, no newlines). */
static char *
saml_pem_body(const char *pem)
{
	const char *b = strstr(pem, "-----BEGIN CERTIFICATE-----");
	const char *e;
	GString *g;

	if (b == NULL || (e = strstr(b, "-----END CERTIFICATE-----")) == NULL)
		return NULL;
	b += strlen("-----BEGIN CERTIFICATE-----");
	g = g_string_new(NULL);
	for (; b < e; b++)
		if (*b != '\n' && *b != '\r' && *b != ' ')
			g_string_append_c(g, *b);
	return g_string_free(g, FALSE);
}

/* ---- loading the IdP metadata (parsing: saml_metadata.c) ------------------ */

static char *
saml_read_file(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *data = localca_read_file(path, &len, err, errlen);

	if (data != NULL && strlen(data) != len) {
		saml_err(err, errlen, "%s: contains a NUL byte", path);
		free(data);
		return NULL;
	}
	return data;
}

/*
 * Load the IdP metadata (lock not held): fetch a URL (saving the cache) or
 * read the file; on a failed fetch fall back to the cache.  <initial>: a
 * failure with no cache is an error (else the current generation stays).
 * The IdP objects are built without the lock too: they are new, seen by no
 * other thread before saml_new returns, and building them is slow (the CA
 * bundle loaded twice): with the lock, every worker's login waited for it.
 */
static struct saml_idp *
saml_load_idp(struct saml *sp, char *err, size_t errlen)
{
	char why[512], cwhy[512];
	char *doc = NULL;
	const char *what = sp->idp_metadata;
	struct saml_idp *idp = NULL;

	if (saml_is_url(sp->idp_metadata)) {
		doc = saml_fetch(sp->idp_metadata, why, sizeof why);
		if (doc != NULL) {
			idp = saml_metadata_idp_new(sp->sp_metadata, sp->sp_key_pem, sp->sp_key_path,
						    doc, sp->idp_metadata, err, errlen);
			if (idp != NULL) {
				if (localca_write_atomic(sp->idp_metadata_cache, doc, strlen(doc), 0644,
							 cwhy, sizeof cwhy) < 0)
					log_warn("saml: cannot cache the IdP metadata: %s", cwhy);
				free(doc);
				return idp;
			}
			snprintf(why, sizeof why, "%s", err);
			free(doc);
		}
		log_warn("saml: fetching the IdP metadata failed: %s; using the cached copy %s", why,
			 sp->idp_metadata_cache);
		doc = saml_read_file(sp->idp_metadata_cache, cwhy, sizeof cwhy);
		if (doc == NULL) {
			saml_err(err, errlen, "%s (and no cached copy: %s)", why, cwhy);
			return NULL;
		}
		what = sp->idp_metadata_cache;
	} else {
		doc = saml_read_file(sp->idp_metadata, err, errlen);
		if (doc == NULL)
			return NULL;
	}
	idp = saml_metadata_idp_new(sp->sp_metadata, sp->sp_key_pem, sp->sp_key_path, doc, what,
				    err, errlen);
	free(doc);
	return idp;
}

/* ---- SP ---------------------------------------------------------------------- */

static char *
saml_build_sp_metadata(struct saml *sp)
{
	GString *g = g_string_new("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				  "<md:EntityDescriptor xmlns:md=\"" SAML_NS_MD "\" xmlns:ds=\"" SAML_NS_DS
				  "\" entityID=\"");

	saml_xml_escape(g, sp->sp_entity_id);
	g_string_append(g, "\">\n  <md:SPSSODescriptor AuthnRequestsSigned=\"true\" "
			   "WantAssertionsSigned=\"true\" protocolSupportEnumeration=\"" SAML_NS_SAMLP
			   "\">\n    <md:KeyDescriptor use=\"signing\">\n      <ds:KeyInfo><ds:X509Data>"
			   "<ds:X509Certificate>");
	g_string_append(g, sp->sp_cert_b64);
	g_string_append(g, "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\n    "
			   "</md:KeyDescriptor>\n");
	if (sp->enc_cert_b64 != NULL) {
		g_string_append(g, "    <md:KeyDescriptor use=\"encryption\">\n      <ds:KeyInfo>"
				   "<ds:X509Data><ds:X509Certificate>");
		g_string_append(g, sp->enc_cert_b64);
		g_string_append(g, "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\n    "
				   "</md:KeyDescriptor>\n");
	}
	g_string_append(g, "    <md:SingleLogoutService Binding=\"" SAML_BINDING_REDIRECT
			   "\" Location=\"");
	saml_xml_escape(g, sp->slo_url);
	g_string_append(g, "\"/>\n    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:"
			   "unspecified</md:NameIDFormat>\n    <md:AssertionConsumerService Binding=\"" SAML_BINDING_POST
			   "\" Location=\"");
	saml_xml_escape(g, sp->acs_url);
	g_string_append(g, "\" index=\"0\" isDefault=\"true\"/>\n  </md:SPSSODescriptor>\n"
			   "</md:EntityDescriptor>\n");
	return g_string_free(g, FALSE);
}

void
saml_free(struct saml *sp)
{
	if (sp == NULL)
		return;
	saml_refresh_stop(sp);
	pthread_mutex_destroy(&sp->stop_lock);
	pthread_cond_destroy(&sp->stop_cond);
	pthread_mutex_lock(&saml_lock);
	saml_metadata_idp_free(sp->idp);
	pthread_mutex_unlock(&saml_lock);
	free(sp->idp_metadata);
	free(sp->idp_metadata_cache);
	free(sp->sp_entity_id);
	free(sp->acs_url);
	free(sp->slo_url);
	free(sp->sp_key_path);
	free(sp->sp_cert_path);
	if (sp->sp_key_pem != NULL) {
		OPENSSL_cleanse(sp->sp_key_pem, strlen(sp->sp_key_pem));
		free(sp->sp_key_pem);
	}
	free(sp->sp_cert_pem);
	g_free(sp->sp_cert_b64);
	if (sp->enc_key != NULL)
		xmlSecKeyDestroy(sp->enc_key);
	g_free(sp->enc_cert_b64);
	g_free(sp->sp_metadata);
	for (size_t i = 0; i < sp->nattributes; i++)
		free(sp->attributes[i]);
	free(sp->attributes);
	free(sp);
}

/*
 * The encryption key pair of <o> into sp->enc_key and sp->enc_cert_b64: from
 * PEM text holding both, else from the two files (made when both are
 * absent).  0 (also when none is configured), or -1 with the reason.
 */
static int
saml_load_enc_key(struct saml *sp, const struct saml_options *o, char *err, size_t errlen)
{
	char *key_pem = NULL, *cert_pem = NULL;
	const char *what = o->enc_pem != NULL ? "the encryption key variable" : o->enc_key;
	struct stat st;
	int rc = -1;

	sp->require_encryption = o->require_encryption;
	if (o->enc_pem == NULL && (o->enc_key == NULL || o->enc_cert == NULL)) {
		if (!o->require_encryption)
			return 0;
		saml_err(err, errlen, "encrypted assertions are required but no encryption key is set");
		return -1;
	}
	if (o->enc_pem == NULL && stat(o->enc_key, &st) != 0 && errno == ENOENT &&
	    stat(o->enc_cert, &st) != 0 && errno == ENOENT &&
	    saml_make_sp_keys(o->enc_key, o->enc_cert, sp->sp_entity_id, err, errlen) < 0)
		return -1;
	if (o->enc_pem == NULL && ((key_pem = saml_read_file(o->enc_key, err, errlen)) == NULL ||
				   (cert_pem = saml_read_file(o->enc_cert, err, errlen)) == NULL))
		goto out;
	if ((sp->enc_key = saml_decrypt_key_load(o->enc_pem ? o->enc_pem : key_pem, what, err,
						 errlen)) == NULL)
		goto out;
	if ((sp->enc_cert_b64 = saml_pem_body(o->enc_pem ? o->enc_pem : cert_pem)) == NULL) {
		saml_err(err, errlen, "%s: no PEM certificate", o->enc_pem ? what : o->enc_cert);
		goto out;
	}
	rc = 0;
out:
	if (key_pem != NULL) {
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
	}
	free(cert_pem);
	return rc;
}

struct saml *
saml_new(const struct saml_options *o, char *err, size_t errlen)
{
	struct saml *sp = calloc(1, sizeof *sp);
	struct stat st;

	pthread_once(&saml_once, saml_global_init);
	if (!saml_init_ok) {
		saml_err(err, errlen, "lasso_init failed (lasso, libxml2 or xmlsec)");
		free(sp);
		return NULL;
	}
	if (sp == NULL)
		goto oom;
	pthread_mutex_init(&sp->stop_lock, NULL);
	pthread_cond_init(&sp->stop_cond, NULL);
	sp->idp_metadata = saml_strdup0(o->idp_metadata);
	sp->idp_metadata_cache = saml_strdup0(o->idp_metadata_cache);
	sp->refresh = o->idp_metadata_refresh > 0 ? o->idp_metadata_refresh : 3600;
	sp->sp_entity_id = saml_strdup0(o->sp_entity_id);
	sp->acs_url = saml_strdup0(o->acs_url);
	sp->slo_url = saml_strdup0(o->slo_url);
	sp->sp_key_path = saml_strdup0(o->sp_key);
	sp->sp_cert_path = saml_strdup0(o->sp_cert);
	sp->clock_skew = o->clock_skew;
	sp->max_age = o->max_age;
	sp->allow_sha1 = o->allow_sha1;
	sp->replay_cache_size = o->replay_cache_size ? o->replay_cache_size : 10000;
	if (!sp->idp_metadata || !sp->idp_metadata_cache || !sp->sp_entity_id || !sp->acs_url ||
	    !sp->slo_url || !sp->sp_key_path || !sp->sp_cert_path)
		goto oom;
	if (o->nattributes > 0) {
		sp->attributes = calloc(o->nattributes, sizeof *sp->attributes);
		if (sp->attributes == NULL)
			goto oom;
		for (size_t i = 0; i < o->nattributes; i++)
			if ((sp->attributes[sp->nattributes++] = strdup(o->attributes[i])) == NULL)
				goto oom;
	}

	if (stat(sp->sp_key_path, &st) != 0 && errno == ENOENT) {
		if (stat(sp->sp_cert_path, &st) == 0) {
			saml_err(err, errlen,
				 "%s: the SAML SP key is missing but its certificate %s exists; "
				 "remove the certificate to make a new pair",
				 sp->sp_key_path, sp->sp_cert_path);
			goto fail;
		}
		if (saml_make_sp_keys(sp->sp_key_path, sp->sp_cert_path, sp->sp_entity_id, err,
				      errlen) < 0)
			goto fail;
	}
	if ((sp->sp_key_pem = saml_read_file(sp->sp_key_path, err, errlen)) == NULL ||
	    (sp->sp_cert_pem = saml_read_file(sp->sp_cert_path, err, errlen)) == NULL)
		goto fail;
	if ((sp->sp_cert_b64 = saml_pem_body(sp->sp_cert_pem)) == NULL) {
		saml_err(err, errlen, "%s: not a PEM certificate", sp->sp_cert_path);
		goto fail;
	}
	{
		/* The key and the certificate must belong together. */
		BIO *kb = BIO_new_mem_buf(sp->sp_key_pem, -1);
		BIO *cb = BIO_new_mem_buf(sp->sp_cert_pem, -1);
		EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
		X509 *c = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
		bool ok = k && c && X509_check_private_key(c, k) == 1 && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA;

		EVP_PKEY_free(k);
		X509_free(c);
		BIO_free(kb);
		BIO_free(cb);
		ERR_clear_error();
		if (!ok) {
			saml_err(err, errlen,
				 "%s and %s: not an RSA private key and its certificate (SAML "
				 "signatures here are RSA-SHA256)",
				 sp->sp_key_path, sp->sp_cert_path);
			goto fail;
		}
	}
	if (saml_load_enc_key(sp, o, err, errlen) < 0)
		goto fail;
	sp->sp_metadata = saml_build_sp_metadata(sp);
	if ((sp->idp = saml_load_idp(sp, err, errlen)) == NULL ||
	    saml_refresh_start(sp, err, errlen) < 0)
		goto fail;
	if (sp->allow_sha1)
		log_warn("saml: allow_sha1 is on: responses signed with RSA-SHA1 are accepted; SHA-1 "
			 "is deprecated for signatures");
	return sp;
oom:
	saml_err(err, errlen, "out of memory");
fail:
	saml_free(sp);
	return NULL;
}

char *
saml_sp_metadata(struct saml *sp)
{
	return sp && sp->sp_metadata ? strdup(sp->sp_metadata) : NULL;
}

int
saml_login_request(struct saml *sp, const char *relay_state, bool force_authn, char **url,
		   char **request_id, char *err, size_t errlen)
{
	struct saml_login_options o = { .force_authn = force_authn };

	return saml_login_request_with(sp, relay_state, &o, url, request_id, err, errlen);
}

/* The RequestedAuthnContext of <o> into <req>. */
static void
saml_requested_context(LassoSamlp2AuthnRequest *req, const struct saml_login_options *o)
{
	LassoSamlp2RequestedAuthnContext *rac;

	if (o->nclass_refs == 0)
		return;
	rac = LASSO_SAMLP2_REQUESTED_AUTHN_CONTEXT(lasso_samlp2_requested_authn_context_new());
	for (size_t i = 0; i < o->nclass_refs; i++)
		rac->AuthnContextClassRef = g_list_append(rac->AuthnContextClassRef,
							  g_strdup(o->class_refs[i]));
	rac->Comparison = g_strdup(o->minimum ? "minimum" : "exact");
	if (req->RequestedAuthnContext != NULL)
		g_object_unref(req->RequestedAuthnContext);
	req->RequestedAuthnContext = rac;
}

int
saml_login_request_with(struct saml *sp, const char *relay_state,
			const struct saml_login_options *o, char **url, char **request_id,
			char *err, size_t errlen)
{
	static const struct saml_login_options defaults;
	LassoLogin *login = NULL;
	LassoProfile *profile;
	LassoSamlp2AuthnRequest *req;
	lasso_error_t le;
	int rc = -1;

	*url = *request_id = NULL;
	pthread_mutex_lock(&saml_lock);
	login = lasso_login_new(sp->idp->server);
	if (login == NULL) {
		saml_err(err, errlen, "lasso_login_new failed");
		goto out;
	}
	profile = LASSO_PROFILE(login);
	le = lasso_login_init_authn_request(login, sp->idp->entity_id, LASSO_HTTP_METHOD_REDIRECT);
	if (le != 0) {
		saml_err(err, errlen, "lasso_login_init_authn_request: %s", lasso_strerror(le));
		goto out;
	}
	req = LASSO_SAMLP2_AUTHN_REQUEST(profile->request);
	/* lasso leaves these out; Casdoor needs the ACS URL, and answers with
	 * an auto-posted form only when asked for HTTP-POST. */
	g_free(req->AssertionConsumerServiceURL);
	req->AssertionConsumerServiceURL = g_strdup(sp->acs_url);
	g_free(req->ProtocolBinding);
	req->ProtocolBinding = g_strdup(SAML_BINDING_POST);
	req->AssertionConsumerServiceIndex = -1;
	if (o == NULL)
		o = &defaults;
	req->ForceAuthn = o->force_authn ? TRUE : FALSE;
	saml_requested_context(req, o);
	req->IsPassive = FALSE;
	if (req->NameIDPolicy != NULL) {
		g_free(req->NameIDPolicy->Format);
		req->NameIDPolicy->Format = g_strdup("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified");
		req->NameIDPolicy->AllowCreate = TRUE;
	}
	g_free(profile->msg_relayState);
	profile->msg_relayState = g_strdup(relay_state);
	le = lasso_login_build_authn_request_msg(login);
	if (le != 0 || profile->msg_url == NULL) {
		saml_err(err, errlen, "lasso_login_build_authn_request_msg: %s", lasso_strerror(le));
		goto out;
	}
	*url = strdup(profile->msg_url);
	*request_id = strdup(LASSO_SAMLP2_REQUEST_ABSTRACT(req)->ID);
	if (*url == NULL || *request_id == NULL) {
		free(*url);
		free(*request_id);
		*url = *request_id = NULL;
		saml_err(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (login != NULL)
		lasso_login_destroy(login);
	pthread_mutex_unlock(&saml_lock);
	return rc;
}

const char *
saml_session_index(const struct session *s)
{
	for (size_t i = 0; s != NULL && i < s->nattrs; i++)
		if (strcmp(s->attrs[i].name, SAML_SESSION_INDEX_ATTR) == 0)
			return s->attrs[i].value;
	return NULL;
}

char *
saml_logout_request(struct saml *sp, const char *name_id, const char *session_index,
		    const char *relay_state)
{
	LassoLogout *logout = NULL;
	LassoSession *session = NULL;
	LassoSaml2Assertion *a = NULL;
	LassoSaml2AuthnStatement *st = NULL;
	char *url = NULL;
	lasso_error_t le;

	pthread_mutex_lock(&saml_lock);
	if (sp->idp->slo_url == NULL || name_id == NULL)
		goto out;
	if (session_index == NULL) {
		log_warn("saml: no LogoutRequest to the IdP: the session has no SessionIndex "
			 "(signed in before this version, or the IdP sent none); signed out here only");
		goto out;
	}
	/* lasso (2.8) builds a LogoutRequest from a session: give it one holding
	 * an assertion with the NameID and the IdP's SessionIndex (lasso finds
	 * the NameID only through an AuthnStatement's SessionIndex). */
	a = LASSO_SAML2_ASSERTION(lasso_saml2_assertion_new());
	a->Subject = LASSO_SAML2_SUBJECT(lasso_saml2_subject_new());
	a->Subject->NameID = LASSO_SAML2_NAME_ID(lasso_saml2_name_id_new_with_string((char *)(uintptr_t)name_id));
	st = LASSO_SAML2_AUTHN_STATEMENT(lasso_saml2_authn_statement_new());
	st->SessionIndex = g_strdup(session_index);
	a->AuthnStatement = g_list_append(NULL, st);
	session = lasso_session_new();
	logout = lasso_logout_new(sp->idp->server);
	if (a == NULL || session == NULL || logout == NULL)
		goto out;
	if (lasso_session_add_assertion(session, sp->idp->entity_id, LASSO_NODE(a)) != 0)
		goto out;
	/* The profile owns the session from here (lasso_profile_set_session
	 * is not exported by Debian's build). */
	LASSO_PROFILE(logout)->session = session;
	session = NULL;
	le = lasso_logout_init_request(logout, sp->idp->entity_id, LASSO_HTTP_METHOD_REDIRECT);
	if (le != 0) {
		log_warn("saml: cannot build a LogoutRequest: %s", lasso_strerror(le));
		goto out;
	}
	g_free(LASSO_PROFILE(logout)->msg_relayState);
	LASSO_PROFILE(logout)->msg_relayState = g_strdup(relay_state);
	le = lasso_logout_build_request_msg(logout);
	if (le != 0 || LASSO_PROFILE(logout)->msg_url == NULL) {
		log_warn("saml: cannot build a LogoutRequest: %s", lasso_strerror(le));
		goto out;
	}
	url = strdup(LASSO_PROFILE(logout)->msg_url);
out:
	if (logout != NULL)
		lasso_logout_destroy(logout);
	if (session != NULL)
		lasso_session_destroy(session);
	if (a != NULL)
		g_object_unref(a);
	pthread_mutex_unlock(&saml_lock);
	return url;
}

/* The raw (still percent-encoded) value of parameter <name> in <query>. */
static bool
saml_query_param(const char *query, const char *name, const char **val, size_t *len)
{
	size_t n = strlen(name);

	for (const char *p = query; p != NULL && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			const char *e = strchr(p + n + 1, '&');

			*val = p + n + 1;
			*len = e ? (size_t)(e - *val) : strlen(*val);
			return true;
		}
	}
	return false;
}

/*
 * Verify the HTTP-Redirect binding signature of <query> (as received: the
 * signed octets are "<msg>=..&RelayState=..&SigAlg=.." in their encoded
 * form) with a key from the IdP metadata.  0, or -1 with the reason in
 * <err>.  The caller holds saml_lock.
 */
static int
saml_verify_query(struct saml *sp, const char *query, const char *msg, char *err, size_t errlen)
{
	const char *m, *r, *a, *sv;
	size_t ml, rl = 0, al, sl;
	bool relay;
	GString *octets = NULL;
	char *alg = NULL, *sigtxt = NULL;
	guchar *sig = NULL;
	gsize siglen = 0;
	const EVP_MD *md = NULL;
	int rc = -1;

	if (!saml_query_param(query, msg, &m, &ml) || !saml_query_param(query, "SigAlg", &a, &al) ||
	    !saml_query_param(query, "Signature", &sv, &sl)) {
		saml_err(err, errlen, "Signature: the %s is not signed (the IdP must sign "
				      "HTTP-Redirect messages)",
			 strcmp(msg, "SAMLRequest") == 0 ? "LogoutRequest" : "LogoutResponse");
		return -1;
	}
	relay = saml_query_param(query, "RelayState", &r, &rl);
	alg = g_uri_unescape_segment(a, a + al, NULL);
	sigtxt = g_uri_unescape_segment(sv, sv + sl, NULL);
	if (alg == NULL || sigtxt == NULL) {
		saml_err(err, errlen, "Signature: malformed percent-encoding in SigAlg or Signature");
		goto out;
	}
	if (strcmp(alg, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256") == 0)
		md = EVP_sha256();
	else if (strcmp(alg, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384") == 0)
		md = EVP_sha384();
	else if (strcmp(alg, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512") == 0)
		md = EVP_sha512();
	else if (strcmp(alg, "http://www.w3.org/2000/09/xmldsig#rsa-sha1") == 0 && sp->allow_sha1)
		md = EVP_sha1();
	if (md == NULL) {
		saml_err(err, errlen, "SigAlg: \"%s\" refused (RSA-SHA256/384/512%s)", alg,
			 sp->allow_sha1 ? ", or RSA-SHA1" : "; RSA-SHA1 only with saml.allow_sha1");
		goto out;
	}
	sig = g_base64_decode(sigtxt, &siglen);
	if (sig == NULL || siglen == 0) {
		saml_err(err, errlen, "Signature: not base64");
		goto out;
	}
	octets = g_string_new(NULL);
	g_string_append_printf(octets, "%s=%.*s", msg, (int)ml, m);
	if (relay)
		g_string_append_printf(octets, "&RelayState=%.*s", (int)rl, r);
	g_string_append_printf(octets, "&SigAlg=%.*s", (int)al, a);
	for (size_t k = 0; k < sp->idp->nkeys && rc < 0; k++) {
		EVP_PKEY *pkey = xmlSecOpenSSLEvpKeyDataGetEvp(xmlSecKeyGetValue(sp->idp->keys[k]));
		EVP_MD_CTX *ctx = pkey ? EVP_MD_CTX_new() : NULL;

		if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) == 1 &&
		    EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)octets->str,
				     octets->len) == 1)
			rc = 0;
		EVP_MD_CTX_free(ctx);
	}
	ERR_clear_error();
	if (rc < 0)
		saml_err(err, errlen, "Signature: does not verify with the key%s from the IdP metadata",
			 sp->idp->nkeys > 1 ? "s" : "");
out:
	if (octets != NULL)
		g_string_free(octets, TRUE);
	g_free(alg);
	g_free(sigtxt);
	g_free(sig);
	return rc;
}

/* <query> without its SigAlg and Signature parameters (checked already), for
 * lasso: its own query verification leaks the decoded signature. */
static char *
saml_query_unsigned(const char *query)
{
	GString *g = g_string_new(NULL);

	for (const char *p = query; p != NULL && *p;) {
		const char *e = strchr(p, '&');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (!(n >= 7 && strncmp(p, "SigAlg=", 7) == 0) &&
		    !(n >= 10 && strncmp(p, "Signature=", 10) == 0))
			g_string_append_printf(g, "%s%.*s", g->len ? "&" : "", (int)n, p);
		p = e ? e + 1 : NULL;
	}
	return g_string_free(g, FALSE);
}

int
saml_idp_logout(struct saml *sp, const char *query, int64_t now, char **name_id, char **url,
		char *err, size_t errlen)
{
	LassoLogout *logout = NULL;
	LassoProfile *profile;
	LassoSamlp2LogoutRequest *req;
	LassoSamlp2RequestAbstract *ra;
	LassoSession *session = NULL;
	LassoSaml2Assertion *a = NULL;
	lasso_error_t le;
	int64_t issued;
	char *q = NULL;
	int rc = -1;

	*name_id = *url = NULL;
	err[0] = '\0';
	if (query == NULL || strstr(query, "SAMLRequest=") == NULL) {
		saml_err(err, errlen, "SAMLRequest: missing from the query");
		return -1;
	}
	pthread_mutex_lock(&saml_lock);
	/* The signature first, by us (the IdP's key from its metadata). */
	if (saml_verify_query(sp, query, "SAMLRequest", err, errlen) < 0)
		goto out;
	q = saml_query_unsigned(query);
	logout = lasso_logout_new(sp->idp->server);
	if (logout == NULL) {
		saml_err(err, errlen, "lasso_logout_new failed");
		goto out;
	}
	profile = LASSO_PROFILE(logout);
	lasso_profile_set_signature_verify_hint(profile, LASSO_PROFILE_SIGNATURE_VERIFY_HINT_IGNORE);
	le = lasso_logout_process_request_msg(logout, q);
	if (le != 0) {
		saml_err(err, errlen, "LogoutRequest: %s", lasso_strerror(le));
		goto out;
	}
	if (!LASSO_IS_SAMLP2_LOGOUT_REQUEST(profile->request)) {
		saml_err(err, errlen, "LogoutRequest: not a SAML 2.0 LogoutRequest");
		goto out;
	}
	req = LASSO_SAMLP2_LOGOUT_REQUEST(profile->request);
	ra = LASSO_SAMLP2_REQUEST_ABSTRACT(profile->request);
	if (ra->Issuer == NULL || ra->Issuer->content == NULL ||
	    strcmp(ra->Issuer->content, sp->idp->entity_id) != 0) {
		saml_err(err, errlen, "Issuer: expected \"%s\", got \"%s\"", sp->idp->entity_id,
			 ra->Issuer && ra->Issuer->content ? ra->Issuer->content : "(none)");
		goto out;
	}
	if (ra->Destination != NULL && strcmp(ra->Destination, sp->slo_url) != 0) {
		saml_err(err, errlen, "Destination: expected \"%s\", got \"%s\"", sp->slo_url,
			 ra->Destination);
		goto out;
	}
	if (ra->IssueInstant == NULL || saml_parse_time(ra->IssueInstant, &issued) < 0) {
		saml_err(err, errlen, "IssueInstant: missing or not a time");
		goto out;
	}
	if (issued > now + (int64_t)sp->clock_skew ||
	    now - issued > (int64_t)sp->max_age + (int64_t)sp->clock_skew) {
		saml_err(err, errlen, "IssueInstant: %s is outside %.0f s (+%.0f s clock skew) of now",
			 ra->IssueInstant, sp->max_age, sp->clock_skew);
		goto out;
	}
	if (req->NameID == NULL || req->NameID->content == NULL || req->NameID->content[0] == '\0') {
		saml_err(err, errlen, "NameID: missing (encrypted IDs are not supported)");
		goto out;
	}
	if ((*name_id = strdup(req->NameID->content)) == NULL) {
		saml_err(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
	if (sp->idp->slo_url == NULL)
		goto out; /* nowhere to answer: the caller just ends the session */
	/* lasso answers from a session that holds an assertion for this very
	 * NameID (and SessionIndex): sessions live in cookies here, so give it
	 * one built from the request. */
	a = LASSO_SAML2_ASSERTION(lasso_saml2_assertion_new());
	a->Subject = LASSO_SAML2_SUBJECT(lasso_saml2_subject_new());
	a->Subject->NameID = LASSO_SAML2_NAME_ID(g_object_ref(req->NameID));
	if (req->SessionIndex != NULL) {
		LassoSaml2AuthnStatement *st =
			LASSO_SAML2_AUTHN_STATEMENT(lasso_saml2_authn_statement_new());

		st->SessionIndex = g_strdup(req->SessionIndex);
		a->AuthnStatement = g_list_append(NULL, st);
	}
	session = lasso_session_new();
	if (session == NULL || lasso_session_add_assertion(session, sp->idp->entity_id, LASSO_NODE(a)) != 0) {
		log_warn("saml: cannot answer the IdP's LogoutRequest: no session object");
		goto out;
	}
	profile->session = session; /* owned by the profile from here */
	session = NULL;
	le = lasso_logout_validate_request(logout);
	if (le != 0)
		log_warn("saml: the IdP's LogoutRequest for %s: %s (answering with its status)",
			 *name_id, lasso_strerror(le));
	le = lasso_logout_build_response_msg(logout);
	if (le != 0 || profile->msg_url == NULL) {
		log_warn("saml: cannot build a LogoutResponse: %s", lasso_strerror(le));
		goto out;
	}
	*url = strdup(profile->msg_url);
out:
	if (logout != NULL)
		lasso_logout_destroy(logout);
	if (session != NULL)
		lasso_session_destroy(session);
	if (a != NULL)
		g_object_unref(a);
	pthread_mutex_unlock(&saml_lock);
	g_free(q);
	return rc;
}

/* saml: the SAML 2.0 service provider; see saml.h. */
#if !defined(XMLSEC_CRYPTO_OPENSSL) || !defined(XMLSEC_NO_SIZE_T)
#error "compile saml.c with the flags of: pkg-config --cflags lasso xmlsec1-openssl"
#endif
#include "auth/saml.h"

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
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/keys.h>
#include <xmlsec/transforms.h>
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
#include "auth/stepup.h"

#define STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"
#define CM_BEARER "urn:oasis:names:tc:SAML:2.0:cm:bearer"
#define SAML_MAX_RESPONSE (512 * 1024)

/* Casdoor's app options, named in errors that its defaults cause. */
#define CASDOOR_HASH_HINT \
	"; with Casdoor set the application's \"SAML hash algorithm\" to SHA256, or set " \
	"saml.allow_sha1 to accept SHA-1"
#define CASDOOR_BINDING_HINT \
	"; with Casdoor keep \"Enable SAML compress\" off (and \"Enable SAML POST binding\" on " \
	"where the version has it)"

struct saml {
	char *idp_metadata, *idp_metadata_cache;
	double refresh;
	char *sp_entity_id, *acs_url, *slo_url, *sp_key_path, *sp_cert_path;
	char *sp_key_pem, *sp_cert_pem, *sp_cert_b64;
	char *sp_metadata;
	double clock_skew, max_age;
	bool allow_sha1;
	size_t replay_cache_size;
	char **attributes;
	size_t nattributes;
	struct saml_idp *idp;    /* current; swapped by the refresh thread under saml_lock */
	_Atomic int64_t idp_loaded_at; /* Unix seconds, for the status page */
	_Atomic int64_t idp_next_fetch; /* 0: no refresh thread */
	xmlSecKeyPtr enc_key;    /* decrypts EncryptedAssertion; NULL: none configured */
	char *enc_cert_b64;      /* its certificate, for the metadata */
	bool require_encryption;

	pthread_t thread;
	bool thread_started;
	bool stop;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
};

/* Every lasso / libxml2 / xmlsec call runs under this lock. */
static pthread_mutex_t saml_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t saml_once = PTHREAD_ONCE_INIT;
static bool saml_init_ok;

/* ---- small helpers -------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void
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

static bool
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

static void *
saml_refresh_main(void *arg)
{
	struct saml *sp = arg;

	pthread_mutex_lock(&sp->stop_lock);
	while (!sp->stop) {
		struct timespec ts;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)sp->refresh;
		atomic_store(&sp->idp_next_fetch, (int64_t)ts.tv_sec);
		rc = 0;
		while (!sp->stop && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&sp->stop_cond, &sp->stop_lock, &ts);
		if (sp->stop)
			break;
		pthread_mutex_unlock(&sp->stop_lock);
		{
			char err[512];
			char *doc = saml_fetch(sp->idp_metadata, err, sizeof err);

			if (doc == NULL) {
				log_warn("saml: refreshing the IdP metadata failed: %s; keeping the "
					 "current copy",
					 err);
			} else if (strcmp(doc, sp->idp->metadata) == 0) {
				/* Unchanged: no rebuild (it loads the CA bundle twice, lock held). */
				atomic_store(&sp->idp_loaded_at, (int64_t)time(NULL));
				free(doc);
			} else {
				struct saml_idp *idp;

				pthread_mutex_lock(&saml_lock);
				idp = saml_metadata_idp_new(sp->sp_metadata, sp->sp_key_pem,
							    sp->sp_key_path, doc, sp->idp_metadata,
							    err, sizeof err);
				if (idp != NULL) {
					struct saml_idp *old = sp->idp;

					sp->idp = idp;
					atomic_store(&sp->idp_loaded_at, (int64_t)time(NULL));
					saml_metadata_idp_free(old);
				}
				pthread_mutex_unlock(&saml_lock);
				if (idp == NULL) {
					log_warn("saml: the refreshed IdP metadata is refused: %s; keeping "
						 "the current copy",
						 err);
				} else if (localca_write_atomic(sp->idp_metadata_cache, doc, strlen(doc),
								0644, err, sizeof err) < 0) {
					log_warn("saml: cannot cache the IdP metadata: %s", err);
				} else {
					log_debug("saml: IdP metadata refreshed from %s", sp->idp_metadata);
				}
				free(doc);
			}
		}
		pthread_mutex_lock(&sp->stop_lock);
	}
	pthread_mutex_unlock(&sp->stop_lock);
	return NULL;
}

void
saml_metadata_times(const struct saml *sp, int64_t *loaded_at, int64_t *next_fetch)
{
	*loaded_at = atomic_load(&sp->idp_loaded_at);
	*next_fetch = atomic_load(&sp->idp_next_fetch);
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
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->stop_lock);
		sp->stop = true;
		pthread_cond_signal(&sp->stop_cond);
		pthread_mutex_unlock(&sp->stop_lock);
		pthread_join(sp->thread, NULL);
	}
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
	if ((sp->idp = saml_load_idp(sp, err, errlen)) == NULL)
		goto fail;
	atomic_store(&sp->idp_loaded_at, (int64_t)time(NULL));
	if (saml_is_url(sp->idp_metadata))
		atomic_store(&sp->idp_next_fetch, (int64_t)time(NULL) + (int64_t)sp->refresh);
	if (saml_is_url(sp->idp_metadata)) {
		if (pthread_create(&sp->thread, NULL, saml_refresh_main, sp) != 0) {
			saml_err(err, errlen, "cannot start the IdP metadata refresh thread");
			goto fail;
		}
		sp->thread_started = true;
	}
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

/* ---- the response ------------------------------------------------------------ */

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

/* tls_ocsp: OCSP requests, response checks and the staple cache; see tls_ocsp.h. */
#include "tls/tls_ocsp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

struct staple {
	struct staple *next;
	char fp[41];
	unsigned char *der;
	size_t len;
	time_t next_update;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct staple *cache;
static atomic_ullong outcomes[TLS_OCSP_OUTCOMES];
static atomic_ullong stapled;

void
tls_ocsp_fingerprint(X509 *leaf, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (X509_digest(leaf, EVP_sha1(), md, &n) != 1)
		return;
	for (unsigned int i = 0; i < n && i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

char *
tls_ocsp_url(X509 *leaf)
{
	STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(leaf);
	char *url = NULL;

	if (urls != NULL && sk_OPENSSL_STRING_num(urls) > 0)
		url = strdup(sk_OPENSSL_STRING_value(urls, 0));
	X509_email_free(urls);
	return url;
}

char *
tls_ocsp_request_url(X509 *leaf, X509 *issuer, const char *url, char *err, size_t errlen)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, issuer);
	unsigned char *der = NULL;
	char *b64 = NULL, *out = NULL, *p;
	int len = -1;
	size_t ulen = strlen(url);

	if (req == NULL || id == NULL || OCSP_request_add0_id(req, id) == NULL) {
		OCSP_CERTID_free(id);
		snprintf(err, errlen, "cannot build the OCSP request");
		goto out;
	}
	if ((len = i2d_OCSP_REQUEST(req, &der)) <= 0 ||
	    (b64 = malloc(4 * ((size_t)len / 3 + 1) + 1)) == NULL ||
	    (out = malloc(ulen + 2 + 3 * (4 * ((size_t)len / 3 + 1)) + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	p = out + snprintf(out, ulen + 2, "%s%s", url,
			   ulen > 0 && url[ulen - 1] == '/' ? "" : "/");
	for (const char *c = b64; *c; c++) {
		if (*c == '+' || *c == '/' || *c == '=')
			p += sprintf(p, "%%%02X", (unsigned char)*c);
		else
			*p++ = *c;
	}
	*p = '\0';
out:
	OCSP_REQUEST_free(req);
	OPENSSL_free(der);
	free(b64);
	if (len <= 0 && out != NULL) {
		free(out);
		out = NULL;
	}
	return out;
}

static time_t
asn1_time(const ASN1_GENERALIZEDTIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

int
tls_ocsp_check(X509 *leaf, X509 *issuer, const unsigned char *der, size_t len,
	       time_t *this_update, time_t *next_update, char *err, size_t errlen)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id = NULL;
	X509_STORE *store = NULL;
	STACK_OF(X509) *certs = NULL;
	ASN1_GENERALIZEDTIME *rev, *thisupd, *nextupd;
	int status, reason, rc = -1;

	if (resp == NULL) {
		snprintf(err, errlen, "not an OCSP response");
		goto out;
	}
	if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		snprintf(err, errlen, "the responder answered \"%s\"",
			 OCSP_response_status_str(OCSP_response_status(resp)));
		goto out;
	}
	bs = OCSP_response_get1_basic(resp);
	store = X509_STORE_new();
	certs = sk_X509_new_null();
	id = OCSP_cert_to_id(NULL, leaf, issuer);
	if (bs == NULL || store == NULL || certs == NULL || id == NULL ||
	    X509_STORE_add_cert(store, issuer) != 1 || !sk_X509_push(certs, issuer)) {
		snprintf(err, errlen, "cannot read the response");
		goto out;
	}
	/* The issuer is the only trust anchor (an intermediate too). */
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	if (OCSP_basic_verify(bs, certs, store, 0) <= 0) {
		snprintf(err, errlen, "its signature does not verify against the issuer (signed by "
			 "neither the issuer nor a responder it delegated to)");
		goto out;
	}
	if (OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd, &nextupd) != 1) {
		snprintf(err, errlen, "it does not cover this certificate");
		goto out;
	}
	if (status != V_OCSP_CERTSTATUS_GOOD) {
		snprintf(err, errlen, "it says the certificate is %s", OCSP_cert_status_str(status));
		rc = -2;
		goto out;
	}
	if (nextupd == NULL) {
		snprintf(err, errlen, "it has no nextUpdate (it could be stapled forever)");
		goto out;
	}
	if (OCSP_check_validity(thisupd, nextupd, 300, -1) != 1) {
		snprintf(err, errlen, "it is not current (outside thisUpdate..nextUpdate)");
		goto out;
	}
	*this_update = asn1_time(thisupd);
	*next_update = asn1_time(nextupd);
	rc = *next_update > 0 ? 0 : -1;
	if (rc < 0)
		snprintf(err, errlen, "its nextUpdate cannot be read");
out:
	ERR_clear_error();
	OCSP_CERTID_free(id);
	sk_X509_free(certs);
	X509_STORE_free(store);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return rc;
}

/* The entry for <fp> (cache_lock held), or NULL. */
static struct staple *
find(const char *fp)
{
	for (struct staple *s = cache; s; s = s->next)
		if (strcmp(s->fp, fp) == 0)
			return s;
	return NULL;
}

int
tls_ocsp_put(X509 *leaf, const unsigned char *der, size_t len, time_t next_update)
{
	char fp[41];
	unsigned char *copy = malloc(len ? len : 1);
	struct staple *s;

	tls_ocsp_fingerprint(leaf, fp);
	if (copy == NULL || fp[0] == '\0') {
		free(copy);
		return -1;
	}
	memcpy(copy, der, len);
	pthread_mutex_lock(&cache_lock);
	s = find(fp);
	if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
		memcpy(s->fp, fp, sizeof(fp));
		s->next = cache;
		cache = s;
	}
	if (s != NULL) {
		free(s->der);
		s->der = copy;
		s->len = len;
		s->next_update = next_update;
		copy = NULL;
	}
	pthread_mutex_unlock(&cache_lock);
	free(copy);
	return s != NULL ? 0 : -1;
}

void
tls_ocsp_drop(const char *fp)
{
	struct staple **pp, *s = NULL;

	pthread_mutex_lock(&cache_lock);
	for (pp = &cache; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->fp, fp) == 0) {
			s = *pp;
			*pp = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	if (s != NULL) {
		free(s->der);
		free(s);
	}
}

time_t
tls_ocsp_next_update(X509 *leaf)
{
	char fp[41];
	struct staple *s;
	time_t t = 0;

	tls_ocsp_fingerprint(leaf, fp);
	pthread_mutex_lock(&cache_lock);
	if ((s = find(fp)) != NULL)
		t = s->next_update;
	pthread_mutex_unlock(&cache_lock);
	return t;
}

int
tls_ocsp_status_cb(SSL *ssl, void *arg)
{
	X509 *leaf = SSL_get_certificate(ssl);
	unsigned char *copy = NULL;
	size_t len = 0;
	struct staple *s;
	char fp[41];

	(void)arg;
	if (leaf == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	tls_ocsp_fingerprint(leaf, fp);
	pthread_mutex_lock(&cache_lock);
	s = find(fp);
	if (s != NULL && s->next_update > time(NULL) && (copy = OPENSSL_malloc(s->len)) != NULL) {
		memcpy(copy, s->der, s->len);
		len = s->len;
	}
	pthread_mutex_unlock(&cache_lock);
	if (copy == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len) != 1) {
		OPENSSL_free(copy);
		return SSL_TLSEXT_ERR_NOACK;
	}
	atomic_fetch_add_explicit(&stapled, 1, memory_order_relaxed);
	return SSL_TLSEXT_ERR_OK;
}

void
tls_ocsp_count(enum tls_ocsp_outcome o)
{
	atomic_fetch_add_explicit(&outcomes[o], 1, memory_order_relaxed);
}

void
tls_ocsp_metrics(FILE *f)
{
	static const char *const names[TLS_OCSP_OUTCOMES] = {"fetched", "rejected", "failed"};
	size_t cached = 0;

	pthread_mutex_lock(&cache_lock);
	for (struct staple *s = cache; s; s = s->next)
		cached += s->next_update > time(NULL);
	pthread_mutex_unlock(&cache_lock);
	fputs("# HELP portcullis_ocsp_responses_total OCSP responses asked for in the background, "
	      "by outcome.\n# TYPE portcullis_ocsp_responses_total counter\n",
	      f);
	for (int i = 0; i < TLS_OCSP_OUTCOMES; i++)
		fprintf(f, "portcullis_ocsp_responses_total{result=\"%s\"} %llu\n", names[i],
			(unsigned long long)atomic_load_explicit(&outcomes[i], memory_order_relaxed));
	fprintf(f,
		"# HELP portcullis_ocsp_staples_valid Certificates with a current OCSP response to "
		"staple.\n# TYPE portcullis_ocsp_staples_valid gauge\n"
		"portcullis_ocsp_staples_valid %zu\n"
		"# HELP portcullis_ocsp_stapled_total Handshakes that got a stapled OCSP response.\n"
		"# TYPE portcullis_ocsp_stapled_total counter\nportcullis_ocsp_stapled_total %llu\n",
		cached, (unsigned long long)atomic_load_explicit(&stapled, memory_order_relaxed));
}

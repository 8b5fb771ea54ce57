/* tls_cert: certificates and the index of names; see tls_cert.h. */
#include "tls/tls_cert.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/sslerr.h"
#include "base/timeutil.h"
#include "tls/localca.h"

#define TLS_EXPIRY_WARN_DAYS 14

static const char *const kind_names[TLS_KIND_COUNT] = {"ecdsa", "rsa"};
static const char *const source_names[] = {"file", "acme", "local_ca"};

static time_t
asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

void
tls_cert_free_names(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* ------------------------------------------------------------------------ */
/* Certificates                                                             */

struct tls_cert *
tls_cert_ref(struct tls_cert *c)
{
	if (c)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void
tls_cert_unref(struct tls_cert *c)
{
	if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	X509_free(c->x509);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	tls_cert_free_names(c->names, c->nnames);
	free(c);
}

bool
tls_name_matches(const char *pattern, const char *name)
{
	const char *dot;

	if (strcasecmp(pattern, name) == 0)
		return true;
	if (strncmp(pattern, "*.", 2) != 0)
		return false;
	dot = strchr(name, '.');
	/* One label, not empty, stands for the star. */
	return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
}

void
tls_cert_canonical_name(const char *name, char *out, size_t len)
{
	unsigned char ip[16];

	if (inet_pton(AF_INET, name, ip) == 1 && inet_ntop(AF_INET, ip, out, (socklen_t)len))
		return;
	if (inet_pton(AF_INET6, name, ip) == 1 && inet_ntop(AF_INET6, ip, out, (socklen_t)len))
		return;
	if (out != name)
		snprintf(out, len, "%s", name);
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

/* Collect the subjectAltName entries of <x> into c->names. */
static int
cert_collect_names(struct tls_cert *c)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(c->x509, NID_subject_alt_name, NULL, NULL);
	int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
	int rc = -1;

	c->names = calloc(n > 0 ? (size_t)n : 1, sizeof(*c->names));
	if (c->names == NULL)
		goto out;
	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char buf[256];

		if (g->type == GEN_DNS) {
			const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
			int len = ASN1_STRING_length(g->d.dNSName);

			if (len <= 0 || len >= (int)sizeof(buf) || memchr(d, '\0', (size_t)len))
				continue;
			memcpy(buf, d, (size_t)len);
			buf[len] = '\0';
			tls_cert_canonical_name(buf, buf, sizeof(buf));
		} else if (g->type == GEN_IPADD) {
			int len = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);

			if (!(len == 4 && inet_ntop(AF_INET, d, buf, sizeof(buf))) &&
			    !(len == 16 && inet_ntop(AF_INET6, d, buf, sizeof(buf))))
				continue;
		} else {
			continue;
		}
		c->names[c->nnames] = strdup(buf);
		if (c->names[c->nnames] == NULL)
			goto out;
		c->nnames++;
	}
	rc = 0;
out:
	GENERAL_NAMES_free(gens);
	return rc;
}

static bool
cert_covers(const struct tls_cert *c, const char *name)
{
	char canon[256];

	tls_cert_canonical_name(name, canon, sizeof(canon));
	for (size_t i = 0; i < c->nnames; i++)
		if (tls_name_matches(c->names[i], canon))
			return true;
	return false;
}

/* "a, b, c" (shortened) into <buf>. */
static void
names_list(const struct tls_cert *c, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->nnames && off + 1 < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", c->names[i]);

		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/* A password callback that refuses: encrypted keys are an error, not a prompt. */
static int
no_password_cb(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

struct tls_cert *
tls_cert_from_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
		  const char *cert_what, const char *key_what, const char *const *names,
		  size_t nnames, enum tls_source source, char *err, size_t errlen)
{
	struct tls_cert *c = calloc(1, sizeof(*c));
	BIO *bio = NULL;
	X509 *extra;
	time_t now = time(NULL);
	char when[32];
	int id;

	if (c == NULL) {
		snprintf(err, errlen, "%s: out of memory", cert_what);
		return NULL;
	}
	atomic_init(&c->refs, 1);
	c->source = source;
	ERR_clear_error();
	bio = BIO_new_mem_buf(chain_pem, (int)chain_len);
	c->x509 = bio ? PEM_read_bio_X509(bio, NULL, no_password_cb, NULL) : NULL;
	if (c->x509 == NULL) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: no PEM certificate found (expected \"-----BEGIN CERTIFICATE-----\")",
			 cert_what);
		goto fail;
	}
	c->chain = sk_X509_new_null();
	if (c->chain == NULL)
		goto oom;
	while ((extra = PEM_read_bio_X509(bio, NULL, no_password_cb, NULL)) != NULL) {
		if (!sk_X509_push(c->chain, extra)) {
			X509_free(extra);
			goto oom;
		}
	}
	ERR_clear_error(); /* the end of the PEM text */
	BIO_free(bio);
	bio = BIO_new_mem_buf(key_pem, (int)key_len);
	c->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password_cb, NULL) : NULL;
	if (c->key == NULL) {
		if (strstr(key_pem, "PRIVATE KEY-----") == NULL)
			snprintf(err, errlen, "%s: no PEM private key found (expected \"-----BEGIN PRIVATE KEY-----\")",
				 key_what);
		else if (strstr(key_pem, "ENCRYPTED") != NULL)
			snprintf(err, errlen, "%s: the private key is encrypted; give it unencrypted (mode 0600)",
				 key_what);
		else
			snprintf(err, errlen, "%s: cannot parse the private key: %s", key_what,
				 sslerr_reason("malformed PEM"));
		ERR_clear_error();
		goto fail;
	}
	id = EVP_PKEY_get_base_id(c->key);
	if (id == EVP_PKEY_EC) {
		c->kind = TLS_KIND_ECDSA;
	} else if (id == EVP_PKEY_RSA) {
		c->kind = TLS_KIND_RSA;
		if (EVP_PKEY_get_bits(c->key) < 2048) {
			snprintf(err, errlen, "%s: RSA key of %d bits; at least 2048 are needed", key_what,
				 EVP_PKEY_get_bits(c->key));
			goto fail;
		}
	} else {
		snprintf(err, errlen, "%s: unsupported key type %s; use ECDSA (P-256) or RSA", key_what,
			 OBJ_nid2sn(id));
		goto fail;
	}
	if (!X509_check_private_key(c->x509, c->key)) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: the private key does not match the certificate in %s",
			 key_what, cert_what);
		goto fail;
	}
	c->not_before = asn1_to_time(X509_get0_notBefore(c->x509));
	c->not_after = asn1_to_time(X509_get0_notAfter(c->x509));
	if (c->not_after <= now) {
		timeutil_format_utc(c->not_after, when, sizeof(when));
		snprintf(err, errlen, "%s: the certificate expired on %s", cert_what, when);
		goto fail;
	}
	if (c->not_before > now) {
		timeutil_format_utc(c->not_before, when, sizeof(when));
		snprintf(err, errlen, "%s: the certificate is not valid before %s", cert_what, when);
		goto fail;
	}
	if (cert_collect_names(c) < 0)
		goto oom;
	if (c->nnames == 0) {
		snprintf(err, errlen, "%s: the certificate has no subjectAltName DNS or IP entry "
			 "(clients ignore the subject CN)", cert_what);
		goto fail;
	}
	for (size_t i = 0; i < nnames; i++) {
		if (!cert_covers(c, names[i])) {
			char have[512];

			names_list(c, have, sizeof(have));
			snprintf(err, errlen, "%s: the certificate does not cover %s (its names: %s)",
				 cert_what, names[i], have);
			goto fail;
		}
	}
	BIO_free(bio);
	return c;
oom:
	snprintf(err, errlen, "%s: out of memory", cert_what);
fail:
	BIO_free(bio);
	tls_cert_unref(c);
	return NULL;
}

struct tls_cert *
tls_cert_from_files(const char *cert_path, const char *key_path, const char *const *names,
		    size_t nnames, enum tls_source source, char *err, size_t errlen)
{
	size_t clen = 0, klen = 0;
	char *cbuf = localca_read_file(cert_path, &clen, err, errlen);
	char *kbuf = NULL;
	struct tls_cert *c = NULL;

	if (cbuf == NULL)
		return NULL;
	kbuf = localca_read_file(key_path, &klen, err, errlen);
	if (kbuf != NULL)
		c = tls_cert_from_pem(cbuf, clen, kbuf, klen, cert_path, key_path, names, nnames, source,
				      err, errlen);
	if (c) {
		/* Identify the content, so that a touched but unchanged pair is not
		 * swapped (and nothing shared with handshakes is read here). */
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(md, cbuf, clen) != 1 || EVP_DigestUpdate(md, kbuf, klen) != 1 ||
		    EVP_DigestFinal_ex(md, c->content, NULL) != 1)
			memset(c->content, 0, sizeof(c->content));
		EVP_MD_CTX_free(md);
	}
	free(cbuf);
	if (kbuf)
		OPENSSL_clear_free(kbuf, klen);
	return c;
}

void
tls_cert_log_loaded(const struct tls_cert *c, const char *verb, const char *what)
{
	char when[32], names[512];
	double days = difftime(c->not_after, time(NULL)) / 86400.0;

	timeutil_format_utc(c->not_after, when, sizeof(when));
	names_list(c, names, sizeof(names));
	log_info("tls: %s %s (%s, %s; expires %s)", verb, what, kind_names[c->kind], names, when);
	if (days < TLS_EXPIRY_WARN_DAYS && c->source == TLS_SOURCE_FILE)
		log_warn("tls: %s expires in %.1f days (%s)", what, days, when);
}

struct tls_cert *
tls_cert_from_local(X509 *x, EVP_PKEY *k, X509 *ca, char *err, size_t errlen)
{
	struct tls_cert *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		X509_free(x);
		EVP_PKEY_free(k);
		snprintf(err, errlen, "local CA: out of memory");
		return NULL;
	}
	atomic_init(&c->refs, 1);
	c->x509 = x;
	c->key = k;
	c->chain = sk_X509_new_null();
	c->kind = TLS_KIND_ECDSA;
	c->source = TLS_SOURCE_LOCAL_CA;
	c->not_before = asn1_to_time(X509_get0_notBefore(x));
	c->not_after = asn1_to_time(X509_get0_notAfter(x));
	if (c->chain == NULL || !X509_up_ref(ca) || !sk_X509_push(c->chain, ca) ||
	    cert_collect_names(c) < 0) {
		tls_cert_unref(c);
		snprintf(err, errlen, "local CA: out of memory");
		return NULL;
	}
	return c;
}

const char *
tls_cert_kind_name(const struct tls_cert *c)
{
	return kind_names[c->kind];
}

const char *
tls_cert_source_name(const struct tls_cert *c)
{
	return source_names[c->source];
}

int
tls_check_files(const struct tls_file_pair *pair, char *err, size_t errlen)
{
	struct tls_cert *c = tls_cert_from_files(pair->cert, pair->key, pair->names, pair->nnames,
					     TLS_SOURCE_FILE, err, errlen);

	if (c == NULL)
		return -1;
	tls_cert_unref(c);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Index                                                                    */

void
tls_index_unref(struct tls_index *ix)
{
	if (ix == NULL || atomic_fetch_sub_explicit(&ix->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < ix->nall; i++)
		tls_cert_unref(ix->all[i]);
	free(ix->all);
	free(ix->entries);
	free(ix);
}

struct pending_name {
	const char *name;
	size_t prio;
	struct tls_cert *cert;
};

static int
pending_cmp(const void *a, const void *b)
{
	const struct pending_name *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->prio < y->prio ? -1 : x->prio > y->prio;
}

static int
entry_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct tls_entry *)elem)->name);
}

const struct tls_slot *
tls_index_lookup(const struct tls_index *ix, const char *name)
{
	const struct tls_entry *e;
	const char *dot;
	char wild[260];

	if (name == NULL || ix->n == 0)
		return NULL;
	e = bsearch(name, ix->entries, ix->n, sizeof(*ix->entries), entry_cmp);
	if (e)
		return &e->slot;
	dot = strchr(name, '.');
	if (dot == NULL || dot == name || (size_t)snprintf(wild, sizeof(wild), "*%s", dot) >= sizeof(wild))
		return NULL;
	e = bsearch(wild, ix->entries, ix->n, sizeof(*ix->entries), entry_cmp);
	return e ? &e->slot : NULL;
}

struct tls_index *
tls_index_new(struct tls_cert *const *certs, size_t n, const char *default_name)
{
	struct tls_index *ix = calloc(1, sizeof(*ix));
	struct pending_name *pend = NULL;
	size_t npend = 0;

	if (ix == NULL)
		return NULL;
	atomic_init(&ix->refs, 1);
	ix->all = calloc(n ? n : 1, sizeof(*ix->all));
	if (ix->all == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		ix->all[ix->nall++] = tls_cert_ref(certs[i]);
	for (size_t i = 0; i < ix->nall; i++)
		npend += ix->all[i]->nnames;
	pend = calloc(npend ? npend : 1, sizeof(*pend));
	ix->entries = calloc(npend ? npend : 1, sizeof(*ix->entries));
	if (pend == NULL || ix->entries == NULL)
		goto fail;
	npend = 0;
	for (size_t i = 0; i < ix->nall; i++)
		for (size_t j = 0; j < ix->all[i]->nnames; j++)
			pend[npend++] = (struct pending_name){ix->all[i]->names[j], i, ix->all[i]};
	qsort(pend, npend, sizeof(*pend), pending_cmp);
	for (size_t i = 0; i < npend; i++) {
		struct tls_entry *e;

		if (ix->n == 0 || strcmp(ix->entries[ix->n - 1].name, pend[i].name) != 0)
			ix->entries[ix->n++].name = pend[i].name;
		e = &ix->entries[ix->n - 1];
		/* Sorted by priority: the first certificate of each kind wins. */
		if (e->slot.c[pend[i].cert->kind] == NULL)
			e->slot.c[pend[i].cert->kind] = pend[i].cert;
	}
	free(pend);
	pend = NULL;
	if (ix->nall > 0) {
		const struct tls_slot *d = NULL;

		if (default_name) {
			d = tls_index_lookup(ix, default_name);
			if (d == NULL)
				log_warn("tls: no certificate covers the default name %s; clients without "
					 "SNI get %s", default_name, ix->all[0]->names[0]);
		}
		if (d == NULL)
			d = tls_index_lookup(ix, ix->all[0]->names[0]);
		if (d)
			ix->dflt = *d;
	}
	return ix;
fail:
	free(pend);
	tls_index_unref(ix);
	return NULL;
}


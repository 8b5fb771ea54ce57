/* tls: certificate store, handshake callbacks, ticket keys; see tls.h. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls/localca.h"
#include "base/log.h"

/* Mozilla "intermediate" (server side), TLS 1.2 part; TLS 1.3 suites apart. */
#define TLS_CIPHERS_12                                                                   \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                     \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                     \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                     \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"

#define TLS_DEFAULT_ROTATE 43200u
#define TLS_DEFAULT_LEAF_DAYS 7u
#define TLS_EXPIRY_WARN_DAYS 14

static const char plain_http_reply[] =
	"HTTP/1.1 400 Bad Request\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Length: 70\r\n"
	"Connection: close\r\n"
	"\r\n"
	"400 Bad Request: this port speaks HTTPS; use an https:// URL instead.\n";

enum tls_kind { KIND_ECDSA, KIND_RSA, KIND_COUNT };
enum tls_source { SOURCE_FILE, SOURCE_INSTALLED, SOURCE_LOCAL_CA };

static const char *const kind_names[KIND_COUNT] = {"ecdsa", "rsa"};
static const char *const source_names[] = {"file", "acme", "local_ca"};

/* One certificate with its key and chain; immutable once made. */
struct tls_cert {
	atomic_int refs;
	X509 *x509;
	EVP_PKEY *key;
	STACK_OF(X509) *chain; /* intermediates, may be empty */
	char **names;          /* subjectAltName dNSName (lower case) and iPAddress (text) */
	size_t nnames;
	time_t not_before;
	time_t not_after;
	enum tls_kind kind;
	enum tls_source source;
	unsigned char content[32]; /* SHA-256 of the PEM text it was made from */
};

/* What one name serves: at most one certificate per key kind. */
struct tls_slot {
	struct tls_cert *c[KIND_COUNT];
};

struct tls_entry {
	const char *name; /* borrowed from a certificate in tls_index.all */
	struct tls_slot slot;
};

/* An immutable snapshot of every certificate served, sorted by name. */
struct tls_index {
	atomic_int refs;
	struct tls_entry *entries;
	size_t n;
	struct tls_slot dflt;
	struct tls_cert **all; /* one reference each, in priority order */
	size_t nall;
};

struct file_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int err; /* errno of a failed stat, else 0 */
};

struct file_source {
	char *cert_path;
	char *key_path;
	char **names;
	size_t nnames;
	struct file_sig cert_sig; /* as last tried (loaded or failed) */
	struct file_sig key_sig;
	struct tls_cert *cert;
};

struct installed {
	char *name;
	struct tls_cert *cert;
};

struct ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
};

struct tls_store {
	SSL_CTX *ctx;

	pthread_mutex_t lock; /* the fields down to default_name */
	struct tls_index *index;
	tls_challenge_fn hook;
	struct file_source *files;
	size_t nfiles;
	struct installed *installed;
	size_t ninstalled;
	struct localca *ca;
	struct tls_cert *local;
	char **local_names;
	size_t nlocal_names;
	unsigned leaf_days;
	char *default_name;

	pthread_mutex_t ticket_lock;
	struct ticket_key keys[2]; /* [0] encrypts, [1] (if have_prev) still decrypts */
	bool have_prev;
	double rotated_at; /* monotonic seconds */
	unsigned rotate_seconds;

	atomic_ullong plain_http;
};

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_acme = -1; /* SSL ex_data: non-NULL when answering TLS-ALPN-01 */

static void
ex_init(void)
{
	ex_acme = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *
ssl_reason(const char *fallback)
{
	static _Thread_local char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		return fallback;
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static void
format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static time_t
asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

static void
free_strings(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static char **
copy_strings(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof(*out));

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (out[i] == NULL) {
			free_strings(out, n);
			return NULL;
		}
	}
	return out;
}

/* ------------------------------------------------------------------------ */
/* Certificates                                                             */

static struct tls_cert *
cert_ref(struct tls_cert *c)
{
	if (c)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

static void
cert_unref(struct tls_cert *c)
{
	if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	X509_free(c->x509);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	free_strings(c->names, c->nnames);
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

/* Canonical text of <name> when it is an IP address (so "0:0::1" and "::1"
 * compare equal), else <name> lower-cased; into <out>. */
static void
canonical_name(const char *name, char *out, size_t len)
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
			canonical_name(buf, buf, sizeof(buf));
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

	canonical_name(name, canon, sizeof(canon));
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

/*
 * Make a certificate from PEM text and check it.  <cert_what> and <key_what>
 * name the inputs in errors (file paths, or a description).  Every name in
 * <names> must be covered.
 */
static struct tls_cert *
cert_from_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
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
				 ssl_reason("malformed PEM"));
		ERR_clear_error();
		goto fail;
	}
	id = EVP_PKEY_get_base_id(c->key);
	if (id == EVP_PKEY_EC) {
		c->kind = KIND_ECDSA;
	} else if (id == EVP_PKEY_RSA) {
		c->kind = KIND_RSA;
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
		format_time(c->not_after, when, sizeof(when));
		snprintf(err, errlen, "%s: the certificate expired on %s", cert_what, when);
		goto fail;
	}
	if (c->not_before > now) {
		format_time(c->not_before, when, sizeof(when));
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
	cert_unref(c);
	return NULL;
}

static struct tls_cert *
cert_from_files(const char *cert_path, const char *key_path, const char *const *names,
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
		c = cert_from_pem(cbuf, clen, kbuf, klen, cert_path, key_path, names, nnames, source,
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

/* Log a warning when <c> expires within TLS_EXPIRY_WARN_DAYS. */
static void
cert_log_loaded(const struct tls_cert *c, const char *verb, const char *what)
{
	char when[32], names[512];
	double days = difftime(c->not_after, time(NULL)) / 86400.0;

	format_time(c->not_after, when, sizeof(when));
	names_list(c, names, sizeof(names));
	log_info("tls: %s %s (%s, %s; expires %s)", verb, what, kind_names[c->kind], names, when);
	if (days < TLS_EXPIRY_WARN_DAYS && c->source == SOURCE_FILE)
		log_warn("tls: %s expires in %.1f days (%s)", what, days, when);
}

int
tls_check_files(const struct tls_file_pair *pair, char *err, size_t errlen)
{
	struct tls_cert *c = cert_from_files(pair->cert, pair->key, pair->names, pair->nnames,
					     SOURCE_FILE, err, errlen);

	if (c == NULL)
		return -1;
	cert_unref(c);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Index                                                                    */

static void
index_unref(struct tls_index *ix)
{
	if (ix == NULL || atomic_fetch_sub_explicit(&ix->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < ix->nall; i++)
		cert_unref(ix->all[i]);
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

static const struct tls_slot *
index_lookup(const struct tls_index *ix, const char *name)
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

/* Build a new index from the store's sources (lock held). */
static struct tls_index *
index_build(struct tls_store *s)
{
	struct tls_index *ix = calloc(1, sizeof(*ix));
	struct pending_name *pend = NULL;
	size_t npend = 0, cap = s->nfiles + s->ninstalled + 1;

	if (ix == NULL)
		return NULL;
	atomic_init(&ix->refs, 1);
	ix->all = calloc(cap, sizeof(*ix->all));
	if (ix->all == NULL)
		goto fail;
	for (size_t i = 0; i < s->nfiles; i++)
		if (s->files[i].cert)
			ix->all[ix->nall++] = cert_ref(s->files[i].cert);
	for (size_t i = 0; i < s->ninstalled; i++)
		ix->all[ix->nall++] = cert_ref(s->installed[i].cert);
	if (s->local)
		ix->all[ix->nall++] = cert_ref(s->local);
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

		if (s->default_name) {
			d = index_lookup(ix, s->default_name);
			if (d == NULL)
				log_warn("tls: no certificate covers the default name %s; clients without "
					 "SNI get %s", s->default_name, ix->all[0]->names[0]);
		}
		if (d == NULL)
			d = index_lookup(ix, ix->all[0]->names[0]);
		if (d)
			ix->dflt = *d;
	}
	return ix;
fail:
	free(pend);
	index_unref(ix);
	return NULL;
}

/* Replace the index (lock held).  Returns 0 or -1 (old index kept). */
static int
index_rebuild(struct tls_store *s)
{
	struct tls_index *ix = index_build(s);

	if (ix == NULL) {
		log_error("tls: out of memory rebuilding the certificate index; keeping the old one");
		return -1;
	}
	index_unref(s->index);
	s->index = ix;
	return 0;
}

static struct tls_index *
store_index_ref(struct tls_store *s, tls_challenge_fn *hook)
{
	struct tls_index *ix;

	pthread_mutex_lock(&s->lock);
	ix = s->index;
	if (ix)
		atomic_fetch_add_explicit(&ix->refs, 1, memory_order_relaxed);
	if (hook)
		*hook = s->hook;
	pthread_mutex_unlock(&s->lock);
	return ix;
}

/* ------------------------------------------------------------------------ */
/* Handshake callbacks                                                      */

/* The host name of the ClientHello's server_name extension, lower case and
 * without a trailing dot, into <out>.  False when absent or unusable. */
static bool
hello_server_name(SSL *ssl, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t len, list, n;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 5)
		return false;
	list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
		return false;
	n = (size_t)p[3] << 8 | p[4];
	if (n == 0 || n + 3 > list || n >= outlen)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[5 + i];

		if (ch <= 0x20 || ch >= 0x7f)
			return false;
		out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	if (out[n - 1] == '.')
		n--;
	out[n] = '\0';
	return n > 0;
}

/* True when the ClientHello's ALPN list offers <proto>. */
static bool
hello_offers_alpn(SSL *ssl, const char *proto)
{
	const unsigned char *p;
	size_t len, list, plen = strlen(proto);

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
				       &len) ||
	    len < 2)
		return false;
	list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len)
		return false;
	p += 2;
	while (list > 0) {
		size_t n = p[0];

		if (n + 1 > list)
			return false;
		if (n == plen && memcmp(p + 1, proto, plen) == 0)
			return true;
		p += n + 1;
		list -= n + 1;
	}
	return false;
}

static int
client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_store *s = arg;
	char name[256];
	bool has_name = hello_server_name(ssl, name, sizeof(name));
	tls_challenge_fn hook;
	struct tls_index *ix = store_index_ref(s, &hook);
	const struct tls_slot *slot = NULL;
	int rc = SSL_CLIENT_HELLO_ERROR, used = 0;

	if (hello_offers_alpn(ssl, "acme-tls/1")) {
		X509 *x = NULL;
		EVP_PKEY *k = NULL;

		*alert = SSL_AD_UNRECOGNIZED_NAME;
		if (!has_name || hook == NULL || hook(name, &x, &k) < 0)
			goto out;
		if (SSL_use_cert_and_key(ssl, x, k, NULL, 1) == 1 && SSL_set_ex_data(ssl, ex_acme, s))
			rc = SSL_CLIENT_HELLO_SUCCESS;
		else
			*alert = SSL_AD_INTERNAL_ERROR;
		X509_free(x);
		EVP_PKEY_free(k);
		goto out;
	}
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	if (ix == NULL)
		goto out;
	if (has_name)
		slot = index_lookup(ix, name);
	if (slot == NULL)
		slot = &ix->dflt;
	for (int k = 0; k < KIND_COUNT; k++) {
		const struct tls_cert *c = slot->c[k];

		if (c == NULL)
			continue;
		if (SSL_use_cert_and_key(ssl, c->x509, c->key, c->chain, 1) != 1) {
			*alert = SSL_AD_INTERNAL_ERROR;
			goto out;
		}
		used++;
	}
	if (used > 0)
		rc = SSL_CLIENT_HELLO_SUCCESS;
out:
	index_unref(ix);
	return rc;
}

/* Accept the SNI the ClientHello callback has already looked at (without a
 * servername callback, OpenSSL would not record it in TLS 1.2 sessions). */
static int
servername_cb(SSL *ssl, int *alert, void *arg)
{
	return SSL_TLSEXT_ERR_OK;
}

static bool
alpn_find(const unsigned char *in, unsigned int inlen, const char *proto,
	  const unsigned char **out, unsigned char *outlen)
{
	size_t plen = strlen(proto);

	while (inlen > 0) {
		unsigned int n = in[0];

		if (n + 1 > inlen)
			return false;
		if (n == plen && memcmp(in + 1, proto, plen) == 0) {
			*out = in + 1;
			*outlen = (unsigned char)n;
			return true;
		}
		in += n + 1;
		inlen -= n + 1;
	}
	return false;
}

static int
alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
	       const unsigned char *in, unsigned int inlen, void *arg)
{
	if (SSL_get_ex_data(ssl, ex_acme) != NULL)
		return alpn_find(in, inlen, "acme-tls/1", out, outlen) ? SSL_TLSEXT_ERR_OK
									 : SSL_TLSEXT_ERR_ALERT_FATAL;
	if (alpn_find(in, inlen, "http/1.1", out, outlen))
		return SSL_TLSEXT_ERR_OK;
	/* Only protocols we do not speak (h2 alone, ...): go on without ALPN;
	 * the client decides whether HTTP/1.1 is acceptable. */
	return SSL_TLSEXT_ERR_NOACK;
}

/*
 * The first record was not TLS (OpenSSL stops at its header and sends no
 * alert): answer in plain HTTP.  What the client sent is read and dropped
 * first, so that the close that follows does not reset the connection and
 * take the answer with it.
 */
void
tls_answer_plain_http(const SSL *ssl)
{
	struct tls_store *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	int fd = SSL_get_fd(ssl);
	char buf[4096];
	size_t drained = 0;
	ssize_t n;

	if (fd < 0)
		return;
	while (drained < 65536 && (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		drained += (size_t)n;
	n = send(fd, plain_http_reply, sizeof(plain_http_reply) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n; /* best effort: the connection closes either way */
	shutdown(fd, SHUT_WR);
	if (s)
		atomic_fetch_add_explicit(&s->plain_http, 1, memory_order_relaxed);
}

static void
info_cb(const SSL *ssl, int where, int ret)
{
	unsigned long e;
	int reason;

	/* A handshake that stopped before any ClientHello was read, on one of
	 * the three errors OpenSSL raises for a first record that is not TLS
	 * (a mere "want read" leaves no error behind). */
	if (where != SSL_CB_ACCEPT_EXIT || ret > 0 || SSL_get_state(ssl) != TLS_ST_BEFORE)
		return;
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return;
	reason = ERR_GET_REASON(e);
	if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST ||
	    reason == SSL_R_WRONG_VERSION_NUMBER)
		tls_answer_plain_http(ssl);
}

static int
ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
	      EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_store *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct ticket_key k;
	char digest[] = "SHA256";
	OSSL_PARAM params[3];
	int rc = -1;

	pthread_mutex_lock(&s->ticket_lock);
	if (enc) {
		k = s->keys[0];
		rc = 1;
	} else if (memcmp(key_name, s->keys[0].name, 16) == 0) {
		k = s->keys[0];
		rc = 1;
	} else if (s->have_prev && memcmp(key_name, s->keys[1].name, 16) == 0) {
		k = s->keys[1];
		rc = 2; /* good, but issue a ticket under the current key */
	} else {
		rc = 0; /* unknown or retired key: full handshake */
	}
	pthread_mutex_unlock(&s->ticket_lock);
	if (rc == 0)
		return 0;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(key_name, k.name, 16);
		if (RAND_bytes(iv, 16) != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
			rc = -1;
	} else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
		rc = -1;
	}
	if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

int
tls_store_rotate_ticket_keys(struct tls_store *s)
{
	struct ticket_key fresh;

	if (RAND_bytes((unsigned char *)&fresh, sizeof(fresh)) != 1) {
		log_error("tls: no randomness for a new session-ticket key; keeping the current one");
		return -1;
	}
	pthread_mutex_lock(&s->ticket_lock);
	s->keys[1] = s->keys[0];
	s->keys[0] = fresh;
	s->have_prev = true;
	s->rotated_at = mono_now();
	pthread_mutex_unlock(&s->ticket_lock);
	OPENSSL_cleanse(&fresh, sizeof(fresh));
	log_debug("tls: rotated the session-ticket keys");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The store                                                                */

static SSL_CTX *
make_ctx(struct tls_store *s, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	static const unsigned char sid_ctx[] = "portcullis";

	if (ctx == NULL)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_13) ||
	    !SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) || !SSL_CTX_set_dh_auto(ctx, 1) ||
	    !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1))
		goto fail;
	/* Client preference (Mozilla intermediate: every suite offered is good,
	 * and clients know best whether they have AES hardware). */
	SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
					 | SSL_OP_NO_CLIENT_RENEGOTIATION
#endif
	);
	/* Free the record buffers (~17 KiB each way) whenever they are empty:
	 * right for the bufferevent users of this context (TCP relay, evhttp).
	 * conn.c clears it on its connections, which would otherwise pay two
	 * allocations per request, and frees the buffers of idle ones itself. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Tickets only: no server-side session cache to share between threads. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_timeout(ctx, (long)s->rotate_seconds);
	SSL_CTX_set_app_data(ctx, s);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, s);
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, s);
	SSL_CTX_set_info_callback(ctx, info_cb);
	if (!SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb))
		goto fail;
	return ctx;
fail:
	snprintf(err, errlen, "tls: cannot set up OpenSSL: %s", ssl_reason("out of memory"));
	SSL_CTX_free(ctx);
	return NULL;
}

/* Issue a new local leaf (lock not held; s->local replaced under it). */
static int
local_issue(struct tls_store *s, char *err, size_t errlen)
{
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	struct tls_cert *c;

	if (localca_issue(s->ca, (const char *const *)s->local_names, s->nlocal_names, s->leaf_days,
			  &x, &k, err, errlen) < 0)
		return -1;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		X509_free(x);
		EVP_PKEY_free(k);
		snprintf(err, errlen, "local CA: out of memory");
		return -1;
	}
	atomic_init(&c->refs, 1);
	c->x509 = x;
	c->key = k;
	c->chain = sk_X509_new_null();
	c->kind = KIND_ECDSA;
	c->source = SOURCE_LOCAL_CA;
	c->not_before = asn1_to_time(X509_get0_notBefore(x));
	c->not_after = asn1_to_time(X509_get0_notAfter(x));
	if (c->chain == NULL || !X509_up_ref(localca_cert(s->ca)) ||
	    !sk_X509_push(c->chain, localca_cert(s->ca)) || cert_collect_names(c) < 0) {
		cert_unref(c);
		snprintf(err, errlen, "local CA: out of memory");
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	cert_unref(s->local);
	s->local = c;
	index_rebuild(s);
	pthread_mutex_unlock(&s->lock);
	cert_log_loaded(c, "issued", "a local CA certificate");
	return 0;
}

static int
sig_of(const char *path, struct file_sig *sig)
{
	struct stat st;

	memset(sig, 0, sizeof(*sig));
	if (stat(path, &st) < 0) {
		sig->err = errno;
		return -1;
	}
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->size = st.st_size;
	sig->mtime = st.st_mtim;
	return 0;
}

static bool
sig_equal(const struct file_sig *a, const struct file_sig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->err == b->err;
}

/* Add the local leaf's names: localhost, 127.0.0.1, ::1, then <extra>
 * (without duplicates). */
static int
local_names_init(struct tls_store *s, const char *const *extra, size_t nextra)
{
	static const char *const base[] = {"localhost", "127.0.0.1", "::1"};

	s->local_names = calloc(3 + nextra, sizeof(*s->local_names));
	if (s->local_names == NULL)
		return -1;
	for (size_t i = 0; i < 3 + nextra; i++) {
		const char *n = i < 3 ? base[i] : extra[i - 3];
		char canon[256];
		bool dup = false;

		canonical_name(n, canon, sizeof(canon));
		for (size_t j = 0; j < s->nlocal_names; j++)
			dup = dup || strcmp(s->local_names[j], canon) == 0;
		if (dup)
			continue;
		s->local_names[s->nlocal_names] = strdup(canon);
		if (s->local_names[s->nlocal_names] == NULL)
			return -1;
		s->nlocal_names++;
	}
	return 0;
}

struct tls_store *
tls_store_new(const struct tls_options *opt, char *err, size_t errlen)
{
	struct tls_store *s = calloc(1, sizeof(*s));
	size_t off = 0;
	bool bad = false;

	if (s == NULL) {
		snprintf(err, errlen, "tls: out of memory");
		return NULL;
	}
	err[0] = '\0';
	pthread_once(&ex_once, ex_init);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->ticket_lock, NULL);
	atomic_init(&s->plain_http, 0);
	s->rotate_seconds = opt->ticket_rotate_seconds ? opt->ticket_rotate_seconds : TLS_DEFAULT_ROTATE;
	s->leaf_days = opt->local_leaf_days ? opt->local_leaf_days : TLS_DEFAULT_LEAF_DAYS;
	if (ex_acme < 0 || RAND_bytes((unsigned char *)&s->keys[0], sizeof(s->keys[0])) != 1) {
		snprintf(err, errlen, "tls: cannot initialise: %s", ssl_reason("no randomness"));
		goto fail;
	}
	s->rotated_at = mono_now();
	if (opt->default_name && (s->default_name = strdup(opt->default_name)) == NULL)
		goto oom;
	s->ctx = make_ctx(s, err, errlen);
	if (s->ctx == NULL)
		goto fail;

	s->files = calloc(opt->nfiles ? opt->nfiles : 1, sizeof(*s->files));
	if (s->files == NULL)
		goto oom;
	for (size_t i = 0; i < opt->nfiles; i++) {
		const struct tls_file_pair *p = &opt->files[i];
		struct file_source *f = &s->files[i];
		char one[1024];

		s->nfiles++;
		f->cert_path = strdup(p->cert);
		f->key_path = strdup(p->key);
		f->names = copy_strings(p->names, p->nnames);
		if (f->cert_path == NULL || f->key_path == NULL || f->names == NULL)
			goto oom;
		f->nnames = p->nnames;
		sig_of(f->cert_path, &f->cert_sig);
		sig_of(f->key_path, &f->key_sig);
		f->cert = cert_from_files(f->cert_path, f->key_path, p->names, p->nnames, SOURCE_FILE,
					  one, sizeof(one));
		if (f->cert == NULL) {
			/* Collect every file's error, one per line. */
			int n = snprintf(err + off, off < errlen ? errlen - off : 0, "%s%s",
					 bad ? "\n" : "", one);

			if (n > 0)
				off += (size_t)n;
			bad = true;
			continue;
		}
		cert_log_loaded(f->cert, "loaded", f->cert_path);
	}
	if (bad)
		goto fail;
	if (opt->local_ca) {
		char dir[4096];
		const char *base = opt->certs_dir && opt->certs_dir[0] ? opt->certs_dir : "certs";
		size_t blen = strlen(base);

		while (blen > 1 && base[blen - 1] == '/')
			blen--;
		snprintf(dir, sizeof(dir), "%.*s/local-ca", (int)blen, base);
		if (local_names_init(s, opt->local_names, opt->nlocal_names) < 0)
			goto oom;
		s->ca = localca_open(dir, err, errlen);
		if (s->ca == NULL)
			goto fail;
		log_info("tls: local CA certificate: %s (clients must trust it explicitly)",
			 localca_cert_path(s->ca));
		if (local_issue(s, err, errlen) < 0)
			goto fail;
	}
	pthread_mutex_lock(&s->lock);
	if (s->index == NULL && index_rebuild(s) < 0) {
		pthread_mutex_unlock(&s->lock);
		goto oom;
	}
	pthread_mutex_unlock(&s->lock);
	if (s->index->nall == 0)
		log_warn("tls: no certificate yet; TLS handshakes fail until one is installed");
	return s;
oom:
	snprintf(err, errlen, "tls: out of memory");
fail:
	tls_store_free(s);
	return NULL;
}

void
tls_store_free(struct tls_store *s)
{
	if (s == NULL)
		return;
	SSL_CTX_free(s->ctx);
	index_unref(s->index);
	for (size_t i = 0; i < s->nfiles; i++) {
		free(s->files[i].cert_path);
		free(s->files[i].key_path);
		free_strings(s->files[i].names, s->files[i].nnames);
		cert_unref(s->files[i].cert);
	}
	free(s->files);
	for (size_t i = 0; i < s->ninstalled; i++) {
		free(s->installed[i].name);
		cert_unref(s->installed[i].cert);
	}
	free(s->installed);
	cert_unref(s->local);
	localca_free(s->ca);
	free_strings(s->local_names, s->nlocal_names);
	free(s->default_name);
	OPENSSL_cleanse(s->keys, sizeof(s->keys));
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->ticket_lock);
	free(s);
}

SSL_CTX *
tls_store_ctx(struct tls_store *s)
{
	return s->ctx;
}

const char *
tls_store_local_ca_path(const struct tls_store *s)
{
	return s->ca ? localca_cert_path(s->ca) : NULL;
}

void
tls_store_set_challenge_hook(struct tls_store *s, tls_challenge_fn fn)
{
	pthread_mutex_lock(&s->lock);
	s->hook = fn;
	pthread_mutex_unlock(&s->lock);
}

struct bufferevent *
tls_evhttp_bevcb(struct event_base *base, void *arg)
{
	struct tls_store *s = arg;
	SSL *ssl = SSL_new(s->ctx);
	struct bufferevent *bev;

	if (ssl == NULL) {
		log_error("tls: SSL_new failed: %s", ssl_reason("out of memory"));
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		log_error("tls: cannot make a TLS bufferevent (out of memory)");
		return NULL;
	}
	/* OpenSSL 3 reports a peer's close without close_notify as an error,
	 * which libevent 2.1 does not expect; treat it as an ordinary EOF. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* evhttp is about to free the connection (the socket is still open). */
static void
close_notify_cb(struct evhttp_connection *evcon, void *arg)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	/* Only after a finished handshake and no fatal error (OpenSSL then
	 * reports the connection as in init); best effort, never blocks. */
	if (ssl && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(ssl);
	ERR_clear_error();
}

void
tls_evhttp_connection_track(struct evhttp_connection *evcon)
{
	if (evcon)
		evhttp_connection_set_closecb(evcon, close_notify_cb, NULL);
}

/* Re-read file source <f> if its files changed.  Returns 1 if replaced. */
static int
poll_file(struct tls_store *s, struct file_source *f)
{
	struct file_sig cs, ks;
	struct tls_cert *c;
	char err[1024];

	sig_of(f->cert_path, &cs);
	sig_of(f->key_path, &ks);
	if (sig_equal(&cs, &f->cert_sig) && sig_equal(&ks, &f->key_sig))
		return 0;
	f->cert_sig = cs;
	f->key_sig = ks;
	c = cert_from_files(f->cert_path, f->key_path, (const char *const *)f->names, f->nnames,
			    SOURCE_FILE, err, sizeof(err));
	if (c == NULL) {
		log_error("tls: %s; still serving the certificate loaded before", err);
		return 0;
	}
	if (f->cert && memcmp(f->cert->content, c->content, sizeof(c->content)) == 0) {
		cert_unref(c); /* touched, same content */
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	cert_unref(f->cert);
	f->cert = c;
	index_rebuild(s);
	pthread_mutex_unlock(&s->lock);
	cert_log_loaded(c, "reloaded", f->cert_path);
	return 1;
}

int
tls_store_poll(struct tls_store *s)
{
	int replaced = 0;
	double now = mono_now();
	bool rotate;

	for (size_t i = 0; i < s->nfiles; i++)
		replaced += poll_file(s, &s->files[i]);
	if (s->ca && s->local) {
		time_t t = time(NULL);
		time_t life = s->local->not_after - s->local->not_before;

		if (t >= s->local->not_after - life / 3) {
			char err[512];

			if (local_issue(s, err, sizeof(err)) < 0)
				log_error("tls: %s; still serving the previous local certificate", err);
			else
				replaced++;
		}
	}
	pthread_mutex_lock(&s->ticket_lock);
	rotate = now - s->rotated_at >= (double)s->rotate_seconds;
	pthread_mutex_unlock(&s->ticket_lock);
	if (rotate)
		tls_store_rotate_ticket_keys(s);
	return replaced;
}

int
tls_store_install(struct tls_store *s, const char *name, const char *chain_pem,
		  const char *key_pem, char *err, size_t errlen)
{
	char what[300], kwhat[300];
	const char *names[1] = {name};
	struct tls_cert *c;
	struct installed *slot = NULL;

	snprintf(what, sizeof(what), "certificate for %s", name);
	snprintf(kwhat, sizeof(kwhat), "key for %s", name);
	c = cert_from_pem(chain_pem, strlen(chain_pem), key_pem, strlen(key_pem), what, kwhat,
			  names, 1, SOURCE_INSTALLED, err, errlen);
	if (c == NULL)
		return -1;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->ninstalled; i++)
		if (strcmp(s->installed[i].name, name) == 0)
			slot = &s->installed[i];
	if (slot == NULL) {
		struct installed *grown = realloc(s->installed, (s->ninstalled + 1) * sizeof(*grown));
		char *copy = strdup(name);

		if (grown)
			s->installed = grown;
		if (grown == NULL || copy == NULL) {
			free(copy);
			pthread_mutex_unlock(&s->lock);
			cert_unref(c);
			snprintf(err, errlen, "%s: out of memory", what);
			return -1;
		}
		slot = &s->installed[s->ninstalled++];
		slot->name = copy;
		slot->cert = NULL;
	}
	cert_unref(slot->cert);
	slot->cert = c;
	index_rebuild(s);
	pthread_mutex_unlock(&s->lock);
	cert_log_loaded(c, "installed", what);
	return 0;
}

int
tls_store_install_files(struct tls_store *s, const char *name, const char *cert_path,
			const char *key_path, char *err, size_t errlen)
{
	size_t clen = 0, klen = 0;
	char *cbuf = localca_read_file(cert_path, &clen, err, errlen);
	char *kbuf = NULL;
	int rc = -1;

	if (cbuf == NULL)
		return -1;
	kbuf = localca_read_file(key_path, &klen, err, errlen);
	if (kbuf != NULL)
		rc = tls_store_install(s, name, cbuf, kbuf, err, errlen);
	free(cbuf);
	if (kbuf)
		OPENSSL_clear_free(kbuf, klen);
	return rc;
}

void
tls_store_acme_certificate_cb(const char *const *names, size_t n_names, const char *chain_pem,
			      const char *key_pem, time_t not_after, void *arg)
{
	char err[1024];

	if (n_names == 0)
		return;
	if (tls_store_install(arg, names[0], chain_pem, key_pem, err, sizeof(err)) < 0)
		log_error("tls: cannot use the ACME certificate: %s", err);
}

/* Append a Prometheus label value (escaped) to <out>. */
static size_t
prom_escape(char *out, size_t len, const char *v)
{
	size_t o = 0;

	for (; *v && o + 3 < len; v++) {
		if (*v == '\\' || *v == '"') {
			out[o++] = '\\';
			out[o++] = *v;
		} else if (*v == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *v;
		}
	}
	out[o] = '\0';
	return o;
}

char *
tls_store_metrics(struct tls_store *s)
{
	struct tls_index *ix = store_index_ref(s, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL) {
		index_unref(ix);
		return NULL;
	}
	fputs("# HELP portcullis_certificate_expiry_seconds When each served certificate expires "
	      "(notAfter, Unix time).\n"
	      "# TYPE portcullis_certificate_expiry_seconds gauge\n",
	      f);
	for (size_t i = 0; ix && i < ix->nall; i++) {
		const struct tls_cert *c = ix->all[i];
		char name[600];

		prom_escape(name, sizeof(name), c->names[0]);
		fprintf(f,
			"portcullis_certificate_expiry_seconds{name=\"%s\",key=\"%s\",source=\"%s\"} "
			"%lld\n",
			name, kind_names[c->kind], source_names[c->source], (long long)c->not_after);
	}
	fprintf(f,
		"# HELP portcullis_tls_plain_http_total Plain HTTP requests sent to a TLS port "
		"(answered 400).\n"
		"# TYPE portcullis_tls_plain_http_total counter\n"
		"portcullis_tls_plain_http_total %llu\n",
		(unsigned long long)atomic_load_explicit(&s->plain_http, memory_order_relaxed));
	index_unref(ix);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

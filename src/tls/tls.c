/* tls: the certificate store (sources, polling, installs, metrics); see tls.h. */
#include "tls/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>

#include "base/log.h"
#include "base/timeutil.h"
#include "tls/localca.h"
#include "tls/tls_cert.h"
#include "tls/tls_handshake.h"
#include "tls/tls_ocsp.h"

#define TLS_DEFAULT_ROTATE 43200u
#define TLS_DEFAULT_LEAF_DAYS 7u

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

struct tls_store {
	struct tls_handshake *hs; /* the SSL_CTX, the published index, ticket keys */

	pthread_mutex_t lock; /* the fields down to default_name */
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
};

static char **
copy_strings(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof(*out));

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (out[i] == NULL) {
			tls_cert_free_names(out, n);
			return NULL;
		}
	}
	return out;
}

/* ------------------------------------------------------------------------ */
/* Index                                                                    */

/* Build a new index from the store's sources (lock held): files, installed,
 * then the local CA's leaf, in that priority. */
static struct tls_index *
index_build(struct tls_store *s)
{
	struct tls_cert **certs = calloc(s->nfiles + s->ninstalled + 1, sizeof(*certs));
	struct tls_index *ix;
	size_t n = 0;

	if (certs == NULL)
		return NULL;
	for (size_t i = 0; i < s->nfiles; i++)
		if (s->files[i].cert)
			certs[n++] = s->files[i].cert;
	for (size_t i = 0; i < s->ninstalled; i++)
		certs[n++] = s->installed[i].cert;
	if (s->local)
		certs[n++] = s->local;
	ix = tls_index_new(certs, n, s->default_name);
	free(certs);
	return ix;
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
	tls_handshake_publish(s->hs, ix);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The store                                                                */

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
	c = tls_cert_from_local(x, k, localca_cert(s->ca), err, errlen);
	if (c == NULL)
		return -1;
	pthread_mutex_lock(&s->lock);
	tls_cert_unref(s->local);
	s->local = c;
	index_rebuild(s);
	pthread_mutex_unlock(&s->lock);
	tls_cert_log_loaded(c, "issued", "a local CA certificate");
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

		tls_cert_canonical_name(n, canon, sizeof(canon));
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
	struct tls_index *ix;
	size_t off = 0;
	bool bad = false;

	if (s == NULL) {
		snprintf(err, errlen, "tls: out of memory");
		return NULL;
	}
	err[0] = '\0';
	pthread_mutex_init(&s->lock, NULL);
	s->leaf_days = opt->local_leaf_days ? opt->local_leaf_days : TLS_DEFAULT_LEAF_DAYS;
	s->hs = tls_handshake_new(opt->ticket_rotate_seconds ? opt->ticket_rotate_seconds
							    : TLS_DEFAULT_ROTATE,
				  err, errlen);
	if (s->hs == NULL)
		goto fail;
	if (opt->default_name && (s->default_name = strdup(opt->default_name)) == NULL)
		goto oom;

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
		f->cert = tls_cert_from_files(f->cert_path, f->key_path, p->names, p->nnames, TLS_SOURCE_FILE,
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
		tls_cert_log_loaded(f->cert, "loaded", f->cert_path);
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
	ix = tls_handshake_index_ref(s->hs, NULL);
	if (ix == NULL && index_rebuild(s) < 0) {
		pthread_mutex_unlock(&s->lock);
		goto oom;
	}
	pthread_mutex_unlock(&s->lock);
	if (ix == NULL)
		ix = tls_handshake_index_ref(s->hs, NULL);
	if (ix->nall == 0)
		log_warn("tls: no certificate yet; TLS handshakes fail until one is installed");
	tls_index_unref(ix);
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
	tls_handshake_free(s->hs);
	for (size_t i = 0; i < s->nfiles; i++) {
		free(s->files[i].cert_path);
		free(s->files[i].key_path);
		tls_cert_free_names(s->files[i].names, s->files[i].nnames);
		tls_cert_unref(s->files[i].cert);
	}
	free(s->files);
	for (size_t i = 0; i < s->ninstalled; i++) {
		free(s->installed[i].name);
		tls_cert_unref(s->installed[i].cert);
	}
	free(s->installed);
	tls_cert_unref(s->local);
	localca_free(s->ca);
	tls_cert_free_names(s->local_names, s->nlocal_names);
	free(s->default_name);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

SSL_CTX *
tls_store_ctx(struct tls_store *s)
{
	return tls_handshake_ctx(s->hs);
}

const char *
tls_store_local_ca_path(const struct tls_store *s)
{
	return s->ca ? localca_cert_path(s->ca) : NULL;
}

void
tls_store_set_challenge_hook(struct tls_store *s, tls_challenge_fn fn)
{
	tls_handshake_set_hook(s->hs, fn);
}

int
tls_store_rotate_ticket_keys(struct tls_store *s)
{
	return tls_handshake_rotate_keys(s->hs);
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
	c = tls_cert_from_files(f->cert_path, f->key_path, (const char *const *)f->names, f->nnames,
			    TLS_SOURCE_FILE, err, sizeof(err));
	if (c == NULL) {
		log_error("tls: %s; still serving the certificate loaded before", err);
		return 0;
	}
	if (f->cert && memcmp(f->cert->content, c->content, sizeof(c->content)) == 0) {
		tls_cert_unref(c); /* touched, same content */
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	tls_cert_unref(f->cert);
	f->cert = c;
	index_rebuild(s);
	pthread_mutex_unlock(&s->lock);
	tls_cert_log_loaded(c, "reloaded", f->cert_path);
	return 1;
}

int
tls_store_poll(struct tls_store *s)
{
	int replaced = 0;
	double now = monotonic_seconds();
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
	rotate = tls_handshake_rotation_due(s->hs, now);
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
	c = tls_cert_from_pem(chain_pem, strlen(chain_pem), key_pem, strlen(key_pem), what, kwhat,
			  names, 1, TLS_SOURCE_INSTALLED, err, errlen);
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
			tls_cert_unref(c);
			snprintf(err, errlen, "%s: out of memory", what);
			return -1;
		}
		slot = &s->installed[s->ninstalled++];
		slot->name = copy;
		slot->cert = NULL;
	}
	tls_cert_unref(slot->cert);
	slot->cert = c;
	index_rebuild(s);
	pthread_mutex_unlock(&s->lock);
	tls_cert_log_loaded(c, "installed", what);
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

struct tls_index *
tls_store_index_ref(struct tls_store *s)
{
	return tls_handshake_index_ref(s->hs, NULL);
}

void
tls_store_each_cert(struct tls_store *s, void (*fn)(const struct tls_cert_info *info, void *arg),
		    void *arg)
{
	struct tls_index *ix = tls_handshake_index_ref(s->hs, NULL);

	for (size_t i = 0; ix && i < ix->nall; i++) {
		const struct tls_cert *c = ix->all[i];
		struct tls_cert_info info = {
			.names = (const char *const *)c->names, .nnames = c->nnames,
			.key = tls_cert_kind_name(c), .source = tls_cert_source_name(c),
			.not_before = c->not_before, .not_after = c->not_after,
		};

		fn(&info, arg);
	}
	tls_index_unref(ix);
}

char *
tls_store_metrics(struct tls_store *s)
{
	struct tls_index *ix = tls_handshake_index_ref(s->hs, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL) {
		tls_index_unref(ix);
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
			name, tls_cert_kind_name(c), tls_cert_source_name(c), (long long)c->not_after);
	}
	fprintf(f,
		"# HELP portcullis_tls_plain_http_total Plain HTTP requests sent to a TLS port "
		"(answered 400).\n"
		"# TYPE portcullis_tls_plain_http_total counter\n"
		"portcullis_tls_plain_http_total %llu\n",
		tls_handshake_plain_http(s->hs));
	tls_ocsp_metrics(f);
	tls_index_unref(ix);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

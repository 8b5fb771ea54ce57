/* ocsp_stapler: background OCSP fetches for the staple cache; see ocsp_stapler.h. */
#include "core/ocsp_stapler.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "acme/acme_http.h"
#include "base/log.h"
#include "tls/tls.h"
#include "tls/tls_ocsp.h"

#define OCSP_TIMEOUT 10          /* seconds to connect, and for a stalled answer */
#define OCSP_RETRY_FIRST 10      /* seconds before the first retry */
#define OCSP_RETRY_MAX 3600      /* longest wait between retries */
#define OCSP_REFRESH_MIN 60      /* never ask one responder more often than this */

struct ocsp_job {
	struct ocsp_job *next;
	struct ocsp_stapler *st;
	char fp[41];
	char name[256];     /* the certificate's first name, for logs */
	X509 *leaf, *issuer; /* references; issuer NULL: not in the chain */
	char *url;          /* the responder; NULL: nothing to fetch */
	time_t due;         /* next fetch (wall clock) */
	unsigned backoff;   /* seconds of the last retry wait; 0 after a success */
	bool in_flight;
	bool seen;          /* still served (this tick) */
	bool gone;          /* no longer served: freed when its fetch ends */
};

struct ocsp_stapler {
	struct event_base *base;
	struct event *timer;
	struct acme_http *http;
	struct tls_store *store;
	char *dir;
	struct ocsp_job *jobs;
};

static void
job_free(struct ocsp_job *j)
{
	X509_free(j->leaf);
	X509_free(j->issuer);
	free(j->url);
	free(j);
}

/* <dir>/<fp>.der into <out>. */
static void
staple_path(const struct ocsp_stapler *st, const struct ocsp_job *j, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.der", st->dir, j->fp);
}

static void
save(struct ocsp_stapler *st, struct ocsp_job *j, const unsigned char *der, size_t len)
{
	char path[4096], tmp[4200];
	FILE *f;

	if (st->dir == NULL)
		return;
	staple_path(st, j, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (f == NULL || fwrite(der, 1, len, f) != len || fclose(f) != 0 || rename(tmp, path) != 0) {
		if (f != NULL)
			unlink(tmp);
		log_warn("ocsp: cannot save the response for %s in %s: %s", j->name, st->dir,
			 strerror(errno));
	}
}

/* When to ask again after a response valid from <this_update> to <next_update>:
 * at half its life, and not sooner than OCSP_REFRESH_MIN from now. */
static time_t
refresh_at(time_t this_update, time_t next_update)
{
	time_t now = time(NULL), at = this_update + (next_update - this_update) / 2;

	return at < now + OCSP_REFRESH_MIN ? now + OCSP_REFRESH_MIN : at;
}

/* Check <der> for <j> and staple it.  Returns 0, -1 or -2 (tls_ocsp_check). */
static int
accept_response(struct ocsp_job *j, const unsigned char *der, size_t len, const char *from)
{
	time_t this_update = 0, next_update = 0;
	char why[256];
	int rc = tls_ocsp_check(j->leaf, j->issuer, der, len, &this_update, &next_update, why,
				sizeof(why));

	if (rc < 0) {
		log_warn("ocsp: the response for %s from %s is not stapled: %s", j->name, from, why);
		if (rc == -2)
			tls_ocsp_drop(j->fp); /* a "good" from before no longer holds */
		return rc;
	}
	if (tls_ocsp_put(j->leaf, der, len, next_update) < 0)
		return -1;
	j->due = refresh_at(this_update, next_update);
	log_info("ocsp: stapling the response for %s from %s (good until %lld; next fetch in %lld s)",
		 j->name, from, (long long)next_update, (long long)(j->due - time(NULL)));
	return 0;
}

/* A saved response still good: staple it without asking the responder. */
static bool
load_saved(struct ocsp_stapler *st, struct ocsp_job *j)
{
	char path[4096];
	unsigned char buf[65536];
	size_t len;
	FILE *f;

	if (st->dir == NULL)
		return false;
	staple_path(st, j, path, sizeof(path));
	if ((f = fopen(path, "rb")) == NULL)
		return false;
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return len > 0 && len < sizeof(buf) && accept_response(j, buf, len, path) == 0;
}

static void
retry_later(struct ocsp_job *j)
{
	j->backoff = j->backoff == 0 ? OCSP_RETRY_FIRST
				     : (j->backoff * 2 > OCSP_RETRY_MAX ? OCSP_RETRY_MAX
									 : j->backoff * 2);
	j->due = time(NULL) + j->backoff;
}

static void
fetched_cb(const struct acme_http_response *resp, void *arg)
{
	struct ocsp_job *j = arg;
	struct ocsp_stapler *st = j->st;
	int rc;

	j->in_flight = false;
	if (j->gone) {
		for (struct ocsp_job **pp = &st->jobs; *pp; pp = &(*pp)->next) {
			if (*pp == j) {
				*pp = j->next;
				break;
			}
		}
		job_free(j);
		return;
	}
	if (resp->status != 200 || resp->body_len == 0) {
		tls_ocsp_count(TLS_OCSP_FAILED);
		retry_later(j);
		log_warn("ocsp: no response for %s from %s: %s; next try in %u s", j->name, j->url,
			 resp->status ? "HTTP error" : resp->error, j->backoff);
		return;
	}
	rc = accept_response(j, (const unsigned char *)resp->body, resp->body_len, j->url);
	if (rc < 0) {
		tls_ocsp_count(TLS_OCSP_REJECTED);
		retry_later(j);
		return;
	}
	tls_ocsp_count(TLS_OCSP_FETCHED);
	j->backoff = 0;
	save(st, j, (const unsigned char *)resp->body, resp->body_len);
}

static void
fetch(struct ocsp_stapler *st, struct ocsp_job *j)
{
	char err[512];
	char *url = tls_ocsp_request_url(j->leaf, j->issuer, j->url, err, sizeof(err));

	if (url == NULL ||
	    acme_http_request(st->http, ACME_HTTP_GET, url, NULL, NULL, "application/ocsp-response",
			      fetched_cb, j, err, sizeof(err)) < 0) {
		tls_ocsp_count(TLS_OCSP_FAILED);
		retry_later(j);
		log_warn("ocsp: cannot ask %s about %s: %s; next try in %u s", j->url, j->name, err,
			 j->backoff);
	} else {
		j->in_flight = true;
	}
	free(url);
}

/* A job for certificate <c>; NULL when out of memory. */
static struct ocsp_job *
job_new(struct ocsp_stapler *st, const struct tls_cert *c, const char *fp)
{
	struct ocsp_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->st = st;
	memcpy(j->fp, fp, sizeof(j->fp));
	snprintf(j->name, sizeof(j->name), "%s", c->nnames ? c->names[0] : "?");
	X509_up_ref(c->x509);
	j->leaf = c->x509;
	j->url = tls_ocsp_url(c->x509);
	if (j->url != NULL && c->chain != NULL && sk_X509_num(c->chain) > 0) {
		j->issuer = sk_X509_value(c->chain, 0);
		X509_up_ref(j->issuer);
	} else if (j->url != NULL) {
		log_warn("ocsp: %s names the responder %s but its chain lacks the issuer: not "
			 "stapled", j->name, j->url);
		free(j->url);
		j->url = NULL;
	}
	j->due = time(NULL);
	if (j->url != NULL && load_saved(st, j))
		log_info("ocsp: %s: the saved response is still good", j->name);
	return j;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ocsp_stapler *st = arg;
	struct tls_index *ix = tls_store_index_ref(st->store);
	time_t now = time(NULL);
	struct ocsp_job **pp, *j;

	(void)fd;
	(void)what;
	for (j = st->jobs; j; j = j->next)
		j->seen = false;
	for (size_t i = 0; ix != NULL && i < ix->nall; i++) {
		char fp[41];

		tls_ocsp_fingerprint(ix->all[i]->x509, fp);
		for (j = st->jobs; j && strcmp(j->fp, fp) != 0; j = j->next)
			;
		if (j == NULL && (j = job_new(st, ix->all[i], fp)) != NULL) {
			j->next = st->jobs;
			st->jobs = j;
		}
		if (j != NULL)
			j->seen = true;
	}
	tls_index_unref(ix);
	for (pp = &st->jobs; (j = *pp) != NULL;) {
		if (!j->seen && !j->gone) {
			tls_ocsp_drop(j->fp); /* a replaced certificate */
			j->gone = true;
		}
		if (j->gone && !j->in_flight) {
			*pp = j->next;
			job_free(j);
			continue;
		}
		if (!j->gone && j->url != NULL && !j->in_flight && now >= j->due)
			fetch(st, j);
		pp = &j->next;
	}
}

struct ocsp_stapler *
ocsp_stapler_new(struct event_base *base, struct tls_store *store, const char *dir, char *err,
		 size_t errlen)
{
	struct ocsp_stapler *st = calloc(1, sizeof(*st));
	struct timeval second = {1, 0};

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->base = base;
	st->store = store;
	if (dir != NULL) {
		char parent[4096];
		char *slash;

		snprintf(parent, sizeof(parent), "%s", dir);
		if ((slash = strrchr(parent, '/')) != NULL && slash != parent) {
			*slash = '\0'; /* the certificates folder may not exist yet */
			if (mkdir(parent, 0700) != 0 && errno != EEXIST) {
				snprintf(err, errlen, "cannot create %s: %s", parent, strerror(errno));
				goto fail;
			}
		}
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			goto fail;
		}
		if ((st->dir = strdup(dir)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	st->http = acme_http_new(base, NULL, OCSP_TIMEOUT, err, errlen);
	if (st->http == NULL)
		goto fail;
	acme_http_allow_plain(st->http);
	st->timer = event_new(base, -1, EV_PERSIST, tick_cb, st);
	if (st->timer == NULL || event_add(st->timer, &second) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	event_active(st->timer, EV_TIMEOUT, 0); /* the first look at once */
	return st;
fail:
	ocsp_stapler_free(st);
	return NULL;
}

void
ocsp_stapler_free(struct ocsp_stapler *st)
{
	struct ocsp_job *j;

	if (st == NULL)
		return;
	if (st->timer)
		event_free(st->timer);
	acme_http_free(st->http); /* cancels fetches: their callbacks do not run */
	while ((j = st->jobs) != NULL) {
		st->jobs = j->next;
		job_free(j);
	}
	free(st->dir);
	free(st);
}

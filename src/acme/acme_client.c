/*
 * acme_client: the ACME manager — RFC 8555 order flow and renewal scheduler;
 * see acme.h.  Everything here runs on the manager's event_base thread,
 * except acme_metrics_render(), which reads under <mu>.
 *
 * One job runs at a time per manager (an order, or an ARI check); the
 * others wait for it.  A job is a chain of asynchronous steps; each HTTP
 * exchange goes through job_http(), which also refreshes the storage lock,
 * and each signed POST through job_post(), which fetches nonces and retries
 * badNonce.  A job ends in job_succeeded() or job_failed(), never both, and
 * the certificate is rescheduled there.
 */
#include "acme/acme.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "acme/acme_challenge.h"
#include "acme/acme_http.h"
#include "acme/acme_jws.h"
#include "acme/acme_sched.h"
#include "acme/acme_store.h"
#include "base/log.h"

#define ACME_PATH_MAX 1024
#define ACME_BADNONCE_RETRIES 20
#define ACME_LOCK_RECHECK 10        /* seconds between attempts on a busy lock */
#define ACME_ARI_DEFAULT_RECHECK (6 * 3600)
#define ACME_ARI_FAILED_RECHECK 3600
#define ACME_MAX_TIMER (12 * 3600)  /* re-evaluate at least this often */

enum job_kind { JOB_ORDER, JOB_ARI };

struct acme_cert;
struct acme_job;
typedef void (*job_handler)(struct acme_job *job, const struct acme_http_response *resp);

struct acme_cert {
	struct acme_manager *m;
	char **names;
	size_t n_names;
	char *label;                 /* "a.example,b.example" for logs */
	char dir[ACME_PATH_MAX];
	char cert_path[ACME_PATH_MAX + 16];
	char key_path[ACME_PATH_MAX + 16];
	char state_path[ACME_PATH_MAX + 16];
	char lock_path[ACME_PATH_MAX + 16];
	struct event *timer;

	/* the certificate being served (guarded by m->mu for the metrics) */
	bool have;
	time_t not_before, not_after, renew_at;
	char *ari_id;
	time_t ari_at;               /* ARI's chosen renewal time; 0: none */
	time_t ari_check_at;         /* next ARI poll */
	time_t due;                  /* next planned attempt (metrics) */
	struct acme_state st;        /* persisted failures and next attempt */
	bool force;
	bool locked;
};

struct acme_job {
	struct acme_manager *m;
	struct acme_cert *c;
	enum job_kind kind;
	bool inflight;               /* an HTTP exchange is under way */
	bool dead;                   /* ended while an exchange was in flight */
	struct event *deadline;
	struct event *delay;         /* polling pause */
	void (*after_delay)(struct acme_job *job);
	job_handler on_http;

	/* the signed POST being sent (kept for badNonce retries) */
	char *post_url;
	char *post_payload;
	const char *post_accept;
	bool post_jwk;
	unsigned post_tries;
	job_handler post_handler;

	/* order state */
	char *order_url;
	char *finalize_url;
	char *cert_url;
	char **authz;
	size_t n_authz, authz_i;
	char *chall_url;
	bool sent_replaces, no_replaces;
	EVP_PKEY *cert_key;
	char **http01_tokens;        /* published, withdrawn when the job ends */
	size_t n_http01;
	char **tlsalpn01_names;
	size_t n_tlsalpn01;
};

struct acme_manager {
	struct event_base *base;
	char *directory_url;
	char *email;
	char *eab_kid;
	unsigned char *eab_key;
	size_t eab_key_len;
	char *storage;
	unsigned challenges;
	acme_certificate_cb on_certificate;
	void *cb_arg;
	unsigned retry_base, retry_max, lock_stale, request_timeout, order_timeout;

	char ca_dir[ACME_PATH_MAX];
	char lock_token[160];
	struct acme_http *http;
	EVP_PKEY *account_key;
	char *thumbprint;
	char *kid;
	char *nonce;

	bool have_dir;
	char *url_new_nonce, *url_new_account, *url_new_order, *url_renewal_info;

	struct acme_cert *certs;
	size_t n_certs;
	struct acme_job *job;
	bool started;

	pthread_mutex_t mu;
	atomic_uint_fast64_t attempted, succeeded, failed;
};

static void cert_schedule(struct acme_cert *c);
static void job_failed(struct acme_job *job, time_t retry_after, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void step_directory(struct acme_job *job);
static void step_account(struct acme_job *job);
static void step_order(struct acme_job *job);
static void step_authz(struct acme_job *job);
static void step_finalize(struct acme_job *job);
static void step_download(struct acme_job *job);
static void step_ari(struct acme_job *job);

/* ---------------------------------------------------------------- helpers */

static uint32_t
random_u32(void)
{
	uint32_t v = 0;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	return v;
}

static void
format_time(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *
str_or(const char *s, const char *fallback)
{
	return s != NULL ? s : fallback;
}

static void
replace_str(char **slot, const char *value)
{
	free(*slot);
	*slot = value ? strdup(value) : NULL;
}

static void
free_strv(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* An ACME problem document as one line: "type: detail" (or the HTTP status). */
static void
problem_text(const struct acme_http_response *resp, char *out, size_t outlen, char *type,
	     size_t typelen)
{
	json_t *root = NULL;
	const char *t = NULL, *d = NULL;

	if (type != NULL && typelen > 0)
		type[0] = '\0';
	if (resp->status == 0) {
		snprintf(out, outlen, "%s", resp->error);
		return;
	}
	if (resp->body != NULL && resp->body_len > 0)
		root = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (json_is_object(root)) {
		t = json_string_value(json_object_get(root, "type"));
		d = json_string_value(json_object_get(root, "detail"));
	}
	if (t != NULL && type != NULL)
		snprintf(type, typelen, "%s", t);
	if (t != NULL || d != NULL)
		snprintf(out, outlen, "HTTP %d %s: %s", resp->status, t ? t : "(no type)",
			 d ? d : "(no detail)");
	else
		snprintf(out, outlen, "HTTP %d with %s", resp->status,
			 resp->body_len ? "a body that is not an ACME problem document"
					: "an empty body");
	json_decref(root);
}

static bool
problem_is(const char *type, const char *name)
{
	static const char prefix[] = "urn:ietf:params:acme:error:";

	return strncmp(type, prefix, sizeof(prefix) - 1) == 0 &&
	       strcmp(type + sizeof(prefix) - 1, name) == 0;
}

static time_t
retry_after_of(const struct acme_http_response *resp)
{
	time_t t = 0;

	if (resp->retry_after == NULL ||
	    acme_sched_parse_retry_after(resp->retry_after, time(NULL), &t) != 0)
		return 0;
	return t;
}

/* Parse a JSON object body, or NULL. */
static json_t *
body_object(const struct acme_http_response *resp)
{
	json_t *root;

	if (resp->body == NULL || resp->body_len == 0)
		return NULL;
	root = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* --------------------------------------------------------------- jobs */

static void
job_free(struct acme_job *job)
{
	size_t i;

	if (job == NULL)
		return;
	for (i = 0; i < job->n_http01; i++)
		acme_challenge_http01_remove(job->http01_tokens[i]);
	for (i = 0; i < job->n_tlsalpn01; i++)
		acme_challenge_tlsalpn01_remove(job->tlsalpn01_names[i]);
	free_strv(job->http01_tokens, job->n_http01);
	free_strv(job->tlsalpn01_names, job->n_tlsalpn01);
	if (job->deadline != NULL)
		event_free(job->deadline);
	if (job->delay != NULL)
		event_free(job->delay);
	free(job->post_url);
	free(job->post_payload);
	free(job->order_url);
	free(job->finalize_url);
	free(job->cert_url);
	free_strv(job->authz, job->n_authz);
	free(job->chall_url);
	EVP_PKEY_free(job->cert_key);
	free(job);
}

/* Detach <job> from its manager; free it now, or when its exchange returns. */
static void
job_end(struct acme_job *job)
{
	struct acme_manager *m = job->m;

	if (m->job == job)
		m->job = NULL;
	if (job->c->locked) {
		acme_store_unlock(job->c->lock_path, m->lock_token);
		job->c->locked = false;
	}
	if (job->inflight)
		job->dead = true;
	else
		job_free(job);
}

static void
job_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_job *job = arg;

	job_failed(job, 0, "the order did not complete within %u s", job->m->order_timeout);
}

static void
job_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_job *job = arg;

	job->after_delay(job);
}

/* Run <next> after <seconds> (polling). */
static void
job_after(struct acme_job *job, time_t seconds, void (*next)(struct acme_job *))
{
	struct timeval tv = { seconds, 0 };

	job->after_delay = next;
	evtimer_add(job->delay, &tv);
}

static struct acme_job *
job_new(struct acme_cert *c, enum job_kind kind)
{
	struct acme_manager *m = c->m;
	struct acme_job *job = calloc(1, sizeof(*job));
	struct timeval tv = { (time_t)m->order_timeout, 0 };

	if (job == NULL)
		return NULL;
	job->m = m;
	job->c = c;
	job->kind = kind;
	job->deadline = evtimer_new(m->base, job_deadline_cb, job);
	job->delay = evtimer_new(m->base, job_delay_cb, job);
	if (job->deadline == NULL || job->delay == NULL) {
		job_free(job);
		return NULL;
	}
	evtimer_add(job->deadline, &tv);
	m->job = job;
	return job;
}

static void
job_http_cb(const struct acme_http_response *resp, void *arg)
{
	struct acme_job *job = arg;

	job->inflight = false;
	if (job->dead) {
		job_free(job);
		return;
	}
	if (job->c->locked && acme_store_lock_touch(job->c->lock_path, job->m->lock_token) != 0) {
		job->c->locked = false;
		job_failed(job, 0, "lost the storage lock %s (taken over by another instance)",
			   job->c->lock_path);
		return;
	}
	job->on_http(job, resp);
}

static void
job_http(struct acme_job *job, enum acme_http_method method, const char *url, const char *body,
	 const char *accept, job_handler handler)
{
	char err[256];

	job->on_http = handler;
	if (acme_http_request(job->m->http, method, url, body ? "application/jose+json" : NULL,
			      body, accept, job_http_cb, job, err, sizeof(err)) != 0) {
		job_failed(job, 0, "%s", err);
		return;
	}
	job->inflight = true;
}

static void post_send(struct acme_job *job);

static void
on_post_response(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_manager *m = job->m;
	char type[128], text[600];

	if (resp->nonce != NULL)
		replace_str(&m->nonce, resp->nonce);
	if (resp->status == 400) {
		problem_text(resp, text, sizeof(text), type, sizeof(type));
		if (problem_is(type, "badNonce") && ++job->post_tries < ACME_BADNONCE_RETRIES) {
			log_debug("acme: %s: badNonce, retrying with a fresh nonce (%u)",
				  job->post_url, job->post_tries);
			post_send(job);
			return;
		}
	}
	job->post_handler(job, resp);
}

static void
on_new_nonce(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_manager *m = job->m;
	char text[600];

	if (resp->nonce == NULL) {
		problem_text(resp, text, sizeof(text), NULL, 0);
		job_failed(job, retry_after_of(resp), "newNonce %s gave no Replay-Nonce (%s)",
			   m->url_new_nonce, text);
		return;
	}
	replace_str(&m->nonce, resp->nonce);
	post_send(job);
}

static void
post_send(struct acme_job *job)
{
	struct acme_manager *m = job->m;
	char *jws;

	if (m->nonce == NULL) {
		job_http(job, ACME_HTTP_HEAD, m->url_new_nonce, NULL, NULL, on_new_nonce);
		return;
	}
	jws = acme_jws_sign(m->account_key, job->post_jwk ? NULL : m->kid, m->nonce, job->post_url,
			    job->post_payload);
	/* each nonce is used once */
	free(m->nonce);
	m->nonce = NULL;
	if (jws == NULL) {
		job_failed(job, 0, "cannot sign the request to %s", job->post_url);
		return;
	}
	job_http(job, ACME_HTTP_POST, job->post_url, jws, job->post_accept, on_post_response);
	free(jws);
}

/* POST <payload> ("" for POST-as-GET) to <url>, signed with the account key
 * (by jwk instead of kid when <jwk>), then <handler>. */
static void
job_post(struct acme_job *job, const char *url, const char *payload, bool jwk,
	 const char *accept, job_handler handler)
{
	replace_str(&job->post_url, url);
	replace_str(&job->post_payload, payload);
	job->post_jwk = jwk;
	job->post_accept = accept;
	job->post_tries = 0;
	job->post_handler = handler;
	post_send(job);
}

/* ------------------------------------------------------- certificates */

/* Deliver and adopt the certificate in storage if it is usable.  Returns true
 * if one was adopted; <quiet> suppresses the warning about an unusable one. */
static bool
cert_load(struct acme_cert *c, bool deliver, bool quiet)
{
	struct acme_manager *m = c->m;
	struct acme_cert_info info;
	char err[256], when[32];
	char *chain, *key;
	bool adopted = false, changed;

	chain = acme_store_read(c->cert_path, NULL, err, sizeof(err));
	if (chain == NULL) {
		if (errno != ENOENT && !quiet)
			log_warn("acme: stored certificate for %s unusable: %s", c->label, err);
		return false;
	}
	key = acme_store_read(c->key_path, NULL, err, sizeof(err));
	if (key == NULL) {
		if (!quiet)
			log_warn("acme: stored certificate for %s unusable: %s", c->label, err);
		free(chain);
		return false;
	}
	if (acme_jws_cert_info(chain, key, &info, err, sizeof(err)) != 0) {
		if (!quiet)
			log_warn("acme: stored certificate %s unusable: %s", c->cert_path, err);
		goto done;
	}
	if (!acme_cert_info_covers(&info, (const char *const *)c->names, c->n_names)) {
		if (!quiet)
			log_info("acme: stored certificate %s does not cover exactly %s; ordering "
				 "a new one", c->cert_path, c->label);
		goto done;
	}
	if (info.not_after <= time(NULL)) {
		format_time(info.not_after, when, sizeof(when));
		if (!quiet)
			log_warn("acme: stored certificate %s expired at %s", c->cert_path, when);
		goto done;
	}
	changed = !c->have || c->not_after != info.not_after || c->not_before != info.not_before;
	pthread_mutex_lock(&m->mu);
	c->have = true;
	c->not_before = info.not_before;
	c->not_after = info.not_after;
	c->renew_at = acme_sched_renew_at(info.not_before, info.not_after, random_u32());
	free(c->ari_id);
	c->ari_id = info.ari_id;
	info.ari_id = NULL;
	if (changed)
		c->ari_at = 0;
	pthread_mutex_unlock(&m->mu);
	adopted = true;
	if (changed && deliver) {
		format_time(c->not_after, when, sizeof(when));
		log_info("acme: loaded certificate for %s from storage, valid until %s", c->label,
			 when);
		if (m->on_certificate != NULL)
			m->on_certificate((const char *const *)c->names, c->n_names, chain, key,
					  c->not_after, m->cb_arg);
	}
done:
	acme_cert_info_clear(&info);
	OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(chain);
	return adopted;
}

static void
cert_save_state(struct acme_cert *c)
{
	char err[512];

	if (acme_store_state_save(c->state_path, &c->st, err, sizeof(err)) != 0)
		log_error("acme: cannot record the renewal state of %s: %s", c->label, err);
}

/* When <c> should next be attempted (ignoring ARI polls). */
static time_t
cert_due(const struct acme_cert *c, time_t now)
{
	time_t due;

	if (c->force)
		return now;
	if (!c->have)
		return c->st.failures && c->st.next_attempt > now ? c->st.next_attempt : now;
	due = c->ari_at ? c->ari_at : c->renew_at;
	if (c->st.failures && c->st.next_attempt > due)
		due = c->st.next_attempt;
	return due;
}

static bool
ari_possible(const struct acme_manager *m)
{
	return !m->have_dir || m->url_renewal_info != NULL;
}

static void
cert_schedule(struct acme_cert *c)
{
	struct acme_manager *m = c->m;
	time_t now = time(NULL), due = cert_due(c, now), wake = due, delay;
	struct timeval tv;
	char when[32];

	if (c->have && !c->force && ari_possible(m) && c->ari_id != NULL && c->ari_check_at < wake)
		wake = c->ari_check_at;
	delay = wake > now ? wake - now : 0;
	if (delay > ACME_MAX_TIMER)
		delay = ACME_MAX_TIMER;
	pthread_mutex_lock(&m->mu);
	c->due = due;
	pthread_mutex_unlock(&m->mu);
	format_time(due, when, sizeof(when));
	log_info("acme: next attempt for %s at %s (%lld)", c->label, when, (long long)due);
	tv.tv_sec = delay;
	tv.tv_usec = 0;
	evtimer_add(c->timer, &tv);
}

static void
cert_retry_in(struct acme_cert *c, time_t seconds)
{
	struct timeval tv = { seconds, 0 };

	evtimer_add(c->timer, &tv);
}

/* Record a failed attempt (job or not), loudly, and reschedule. */
static void
cert_failed(struct acme_cert *c, time_t retry_after, const char *reason)
{
	struct acme_manager *m = c->m;
	time_t now = time(NULL);
	char when[32], expiry[32];

	pthread_mutex_lock(&m->mu);
	c->st.failures++;
	c->st.next_attempt = acme_sched_next_attempt(now, c->st.failures, m->retry_base,
						      m->retry_max, c->have ? c->not_after : 0,
						      retry_after);
	snprintf(c->st.last_error, sizeof(c->st.last_error), "%s", reason);
	c->force = false;
	pthread_mutex_unlock(&m->mu);
	cert_save_state(c);
	atomic_fetch_add(&m->failed, 1);
	format_time(c->st.next_attempt, when, sizeof(when));
	if (c->have) {
		format_time(c->not_after, expiry, sizeof(expiry));
		log_error("acme: certificate for %s: attempt %u failed: %s; keeping the current "
			  "certificate (valid until %s); next attempt at %s", c->label,
			  c->st.failures, reason, expiry, when);
	} else {
		log_error("acme: certificate for %s: attempt %u failed: %s; no certificate yet; "
			  "next attempt at %s", c->label, c->st.failures, reason, when);
	}
	/* start the next attempt from scratch: the CA may have forgotten us */
	m->have_dir = false;
	replace_str(&m->nonce, NULL);
	replace_str(&m->kid, NULL);
	cert_schedule(c);
}

static void
job_failed(struct acme_job *job, time_t retry_after, const char *fmt, ...)
{
	struct acme_cert *c = job->c;
	char reason[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (job->kind == JOB_ARI) {
		log_warn("acme: renewal information for %s unavailable: %s; checking again in 1 h",
			 c->label, reason);
		c->ari_check_at = time(NULL) + ACME_ARI_FAILED_RECHECK;
		job_end(job);
		cert_schedule(c);
		return;
	}
	job_end(job);
	cert_failed(c, retry_after, reason);
}

static void
job_http_failed(struct acme_job *job, const char *what, const struct acme_http_response *resp)
{
	char text[600];

	problem_text(resp, text, sizeof(text), NULL, 0);
	job_failed(job, retry_after_of(resp), "%s: %s", what, text);
}

/* Start ordering <c> if the lock and storage allow it. */
static void
cert_attempt(struct acme_cert *c)
{
	struct acme_manager *m = c->m;
	char err[512], reason[64];
	time_t now = time(NULL);
	struct acme_job *job;
	bool forced = c->force;

	switch (acme_store_lock(c->lock_path, m->lock_token, m->lock_stale, err, sizeof(err))) {
	case ACME_LOCK_BUSY:
		log_info("acme: another instance is ordering %s (lock %s); checking again in %d s",
			 c->label, c->lock_path, ACME_LOCK_RECHECK);
		cert_retry_in(c, ACME_LOCK_RECHECK);
		return;
	case ACME_LOCK_ERROR:
		cert_failed(c, 0, err);
		return;
	case ACME_LOCK_TAKEN:
		break;
	}
	c->locked = true;
	/* another instance may have renewed it, or failed, while we waited */
	cert_load(c, true, true);
	if (acme_store_state_load(c->state_path, &c->st, err, sizeof(err)) != 0)
		log_warn("acme: ignoring unreadable renewal state: %s", err);
	if (!forced && cert_due(c, now) > now) {
		acme_store_unlock(c->lock_path, m->lock_token);
		c->locked = false;
		cert_schedule(c);
		return;
	}
	snprintf(reason, sizeof(reason), "%s",
		 forced ? "renewal requested" : c->have ? "renewal due" : "no certificate");
	/*
	 * Persist the next attempt first, counting this attempt as failed until it
	 * succeeds, so a crash loop cannot hammer the CA.  The in-memory state
	 * stays as it was: cert_failed() or job_succeeded() writes the outcome.
	 */
	{
		struct acme_state pre = c->st;

		pre.next_attempt = acme_sched_next_attempt(now, c->st.failures + 1, m->retry_base,
							   m->retry_max, c->have ? c->not_after : 0,
							   0);
		pre.failures = c->st.failures + 1;
		snprintf(pre.last_error, sizeof(pre.last_error), "attempt started at %lld",
			 (long long)now);
		if (acme_store_state_save(c->state_path, &pre, err, sizeof(err)) != 0) {
			acme_store_unlock(c->lock_path, m->lock_token);
			c->locked = false;
			cert_failed(c, 0, err);
			return;
		}
	}
	job = job_new(c, JOB_ORDER);
	if (job == NULL) {
		acme_store_unlock(c->lock_path, m->lock_token);
		c->locked = false;
		cert_failed(c, 0, "out of memory");
		return;
	}
	atomic_fetch_add(&m->attempted, 1);
	log_info("acme: ordering certificate for %s (%s, attempt %u)", c->label, reason,
		 c->st.failures + 1);
	step_directory(job);
}

static void
cert_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_cert *c = arg;
	struct acme_manager *m = c->m;
	time_t now = time(NULL);
	struct acme_job *job;

	if (m->job != NULL) {
		cert_retry_in(c, 1);
		return;
	}
	if (c->have && !c->force) {
		if (ari_possible(m) && c->ari_id != NULL && now >= c->ari_check_at) {
			job = job_new(c, JOB_ARI);
			if (job == NULL) {
				c->ari_check_at = now + ACME_ARI_FAILED_RECHECK;
				cert_schedule(c);
				return;
			}
			step_directory(job);
			return;
		}
		if (cert_due(c, now) > now) {
			cert_schedule(c);
			return;
		}
	}
	cert_attempt(c);
}

/* ---------------------------------------------------------------- steps */

static bool
dir_url(json_t *dir, const char *key, char **slot)
{
	const char *v = json_string_value(json_object_get(dir, key));

	replace_str(slot, v);
	return v != NULL && strncmp(v, "https://", 8) == 0;
}

static void
on_directory(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_manager *m = job->m;
	json_t *dir;

	if (resp->status != 200) {
		job_http_failed(job, "directory", resp);
		return;
	}
	dir = body_object(resp);
	if (dir == NULL) {
		job_failed(job, 0, "directory %s: answer is not a JSON object", m->directory_url);
		return;
	}
	if (!dir_url(dir, "newNonce", &m->url_new_nonce) ||
	    !dir_url(dir, "newAccount", &m->url_new_account) ||
	    !dir_url(dir, "newOrder", &m->url_new_order)) {
		json_decref(dir);
		job_failed(job, 0, "directory %s lacks https newNonce, newAccount or newOrder URLs",
			   m->directory_url);
		return;
	}
	if (!dir_url(dir, "renewalInfo", &m->url_renewal_info))
		replace_str(&m->url_renewal_info, NULL);
	if (json_is_true(json_object_get(json_object_get(dir, "meta"), "externalAccountRequired")) &&
	    m->eab_kid == NULL) {
		json_decref(dir);
		job_failed(job, 0, "the CA at %s requires External Account Binding: set the EAB "
			   "key id and HMAC key", m->directory_url);
		return;
	}
	json_decref(dir);
	m->have_dir = true;
	if (job->kind == JOB_ARI)
		step_ari(job);
	else
		step_account(job);
}

static void
step_directory(struct acme_job *job)
{
	if (job->m->have_dir) {
		if (job->kind == JOB_ARI)
			step_ari(job);
		else
			step_account(job);
		return;
	}
	job_http(job, ACME_HTTP_GET, job->m->directory_url, NULL, "application/json",
		 on_directory);
}

/* ARI (RFC 9773): GET renewalInfo/<certID> and pick a time in its window. */
static void
on_ari(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_cert *c = job->c;
	time_t now = time(NULL), start, end, recheck;
	json_t *root, *win;
	char a[32], b[32];

	if (resp->status != 200) {
		job_http_failed(job, "renewalInfo", resp);
		return;
	}
	root = body_object(resp);
	win = root ? json_object_get(root, "suggestedWindow") : NULL;
	if (!json_is_object(win) ||
	    acme_sched_parse_rfc3339(str_or(json_string_value(json_object_get(win, "start")), ""),
				     &start) != 0 ||
	    acme_sched_parse_rfc3339(str_or(json_string_value(json_object_get(win, "end")), ""),
				     &end) != 0 ||
	    end <= start) {
		json_decref(root);
		job_failed(job, 0, "renewalInfo: no valid suggestedWindow");
		return;
	}
	json_decref(root);
	recheck = retry_after_of(resp);
	if (recheck <= now)
		recheck = now + ACME_ARI_DEFAULT_RECHECK;
	pthread_mutex_lock(&job->m->mu);
	c->ari_at = acme_sched_ari_pick(start, end, now, random_u32());
	c->ari_check_at = recheck;
	pthread_mutex_unlock(&job->m->mu);
	format_time(start, a, sizeof(a));
	format_time(end, b, sizeof(b));
	log_info("acme: renewal window for %s suggested by the CA: %s to %s", c->label, a, b);
	job_end(job);
	cert_schedule(c);
}

static void
step_ari(struct acme_job *job)
{
	struct acme_cert *c = job->c;
	struct acme_manager *m = job->m;
	char url[2048];

	if (m->url_renewal_info == NULL || c->ari_id == NULL) {
		c->ari_check_at = time(NULL) + ACME_ARI_DEFAULT_RECHECK;
		job_end(job);
		cert_schedule(c);
		return;
	}
	snprintf(url, sizeof(url), "%s%s%s", m->url_renewal_info,
		 m->url_renewal_info[strlen(m->url_renewal_info) - 1] == '/' ? "" : "/", c->ari_id);
	job_http(job, ACME_HTTP_GET, url, NULL, "application/json", on_ari);
}

static void
on_account(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_manager *m = job->m;
	json_t *acct;
	const char *status;

	if (resp->status != 200 && resp->status != 201) {
		job_http_failed(job, "newAccount", resp);
		return;
	}
	if (resp->location == NULL) {
		job_failed(job, 0, "newAccount: answer without a Location (account URL)");
		return;
	}
	acct = body_object(resp);
	status = acct ? json_string_value(json_object_get(acct, "status")) : NULL;
	if (status != NULL && strcmp(status, "valid") != 0) {
		job_failed(job, 0, "account %s is %s", resp->location, status);
		json_decref(acct);
		return;
	}
	json_decref(acct);
	replace_str(&m->kid, resp->location);
	log_debug("acme: account %s", m->kid);
	step_order(job);
}

static void
step_account(struct acme_job *job)
{
	struct acme_manager *m = job->m;
	json_t *payload;
	char *text;

	if (m->kid != NULL) {
		step_order(job);
		return;
	}
	payload = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	if (payload != NULL && m->email != NULL) {
		char mailto[320];

		snprintf(mailto, sizeof(mailto), "mailto:%s", m->email);
		json_object_set_new(payload, "contact", json_pack("[s]", mailto));
	}
	if (payload != NULL && m->eab_kid != NULL) {
		char *eab = acme_jws_eab(m->account_key, m->eab_kid, m->eab_key, m->eab_key_len,
					 m->url_new_account);
		json_t *obj = eab ? json_loads(eab, 0, NULL) : NULL;

		free(eab);
		if (obj == NULL) {
			json_decref(payload);
			job_failed(job, 0, "cannot build the External Account Binding");
			return;
		}
		json_object_set_new(payload, "externalAccountBinding", obj);
	}
	text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (text == NULL) {
		job_failed(job, 0, "out of memory");
		return;
	}
	job_post(job, m->url_new_account, text, true, NULL, on_account);
	free(text);
}

/* Adopt an order object's authorizations, finalize URL and certificate URL. */
static int
order_read(struct acme_job *job, json_t *order, const char **status)
{
	json_t *authz = json_object_get(order, "authorizations");
	size_t i;

	*status = json_string_value(json_object_get(order, "status"));
	if (*status == NULL)
		return -1;
	if (json_string_value(json_object_get(order, "finalize")))
		replace_str(&job->finalize_url, json_string_value(json_object_get(order, "finalize")));
	if (json_string_value(json_object_get(order, "certificate")))
		replace_str(&job->cert_url,
			    json_string_value(json_object_get(order, "certificate")));
	if (json_is_array(authz) && job->authz == NULL) {
		job->authz = calloc(json_array_size(authz) + 1, sizeof(char *));
		if (job->authz == NULL)
			return -1;
		for (i = 0; i < json_array_size(authz); i++) {
			const char *u = json_string_value(json_array_get(authz, i));

			if (u == NULL)
				return -1;
			job->authz[job->n_authz] = strdup(u);
			if (job->authz[job->n_authz] == NULL)
				return -1;
			job->n_authz++;
		}
	}
	return 0;
}

static void poll_order(struct acme_job *job);

static void
order_continue(struct acme_job *job, const char *status)
{
	if (strcmp(status, "pending") == 0) {
		job->authz_i = 0;
		step_authz(job);
	} else if (strcmp(status, "ready") == 0) {
		step_finalize(job);
	} else if (strcmp(status, "valid") == 0 && job->cert_url != NULL) {
		step_download(job);
	} else if (strcmp(status, "processing") == 0 || strcmp(status, "valid") == 0) {
		job_after(job, 1, poll_order);
	} else {
		job_failed(job, 0, "order %s is %s", job->order_url, status);
	}
}

static void
on_new_order(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_cert *c = job->c;
	char type[128], text[600];
	const char *status;
	json_t *order;

	if (resp->status != 201 && resp->status != 200) {
		problem_text(resp, text, sizeof(text), type, sizeof(type));
		if (job->sent_replaces && (resp->status == 409 || problem_is(type, "alreadyReplaced"))) {
			log_warn("acme: newOrder for %s refused the replaces field (%s); ordering "
				 "without it", c->label, text);
			job->no_replaces = true;
			step_order(job);
			return;
		}
		job_failed(job, retry_after_of(resp), "newOrder: %s", text);
		return;
	}
	order = body_object(resp);
	if (resp->location == NULL || order == NULL || order_read(job, order, &status) != 0 ||
	    job->finalize_url == NULL) {
		json_decref(order);
		job_failed(job, 0, "newOrder: answer is not an order with a Location, "
			   "authorizations and finalize URL");
		return;
	}
	replace_str(&job->order_url, resp->location);
	log_info("acme: new order %s for %s (%zu authorizations)", job->order_url, c->label,
		 job->n_authz);
	order_continue(job, status);
	json_decref(order);
}

static void
step_order(struct acme_job *job)
{
	struct acme_manager *m = job->m;
	struct acme_cert *c = job->c;
	json_t *payload = json_pack("{s:[]}", "identifiers"), *ids;
	char *text;
	size_t i;

	if (payload == NULL) {
		job_failed(job, 0, "out of memory");
		return;
	}
	ids = json_object_get(payload, "identifiers");
	for (i = 0; i < c->n_names; i++)
		json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value",
						     c->names[i]));
	job->sent_replaces = false;
	if (c->have && c->ari_id != NULL && m->url_renewal_info != NULL && !job->no_replaces) {
		json_object_set_new(payload, "replaces", json_string(c->ari_id));
		job->sent_replaces = true;
	}
	text = json_dumps(payload, JSON_COMPACT);
	json_decref(payload);
	if (text == NULL) {
		job_failed(job, 0, "out of memory");
		return;
	}
	job_post(job, m->url_new_order, text, false, NULL, on_new_order);
	free(text);
}

/* Pause before the next poll: the CA's Retry-After within [1, 30] s, else 1 s. */
static time_t
poll_pause(const struct acme_http_response *resp)
{
	time_t t = retry_after_of(resp), now = time(NULL);

	if (t <= now)
		return 1;
	return t - now > 30 ? 30 : t - now;
}

static void poll_authz(struct acme_job *job);

static void
on_challenge_started(struct acme_job *job, const struct acme_http_response *resp)
{
	if (resp->status != 200) {
		job_http_failed(job, "challenge", resp);
		return;
	}
	job_after(job, 1, poll_authz);
}

/* Publish the answer to one challenge of <authz> and tell the CA to check it. */
static void
authz_start_challenge(struct acme_job *job, json_t *authz)
{
	struct acme_manager *m = job->m;
	const char *name = json_string_value(json_object_get(json_object_get(authz, "identifier"),
							     "value"));
	json_t *challs = json_object_get(authz, "challenges"), *ch, *pick = NULL;
	const char *want[2] = { NULL, NULL }, *type, *token, *url;
	char keyauth[512];
	char **slot;
	size_t i, k, *count;

	if (m->challenges & ACME_CHALLENGE_HTTP01)
		want[0] = "http-01";
	if (m->challenges & ACME_CHALLENGE_TLSALPN01)
		want[want[0] ? 1 : 0] = "tls-alpn-01";
	for (k = 0; k < 2 && pick == NULL && want[k] != NULL; k++) {
		json_array_foreach(challs, i, ch) {
			type = json_string_value(json_object_get(ch, "type"));
			if (type != NULL && strcmp(type, want[k]) == 0) {
				pick = ch;
				break;
			}
		}
	}
	if (name == NULL || pick == NULL) {
		job_failed(job, 0, "authorization %s for %s offers none of the enabled challenge "
			   "types", job->authz[job->authz_i], name ? name : "(no identifier)");
		return;
	}
	type = json_string_value(json_object_get(pick, "type"));
	token = json_string_value(json_object_get(pick, "token"));
	url = json_string_value(json_object_get(pick, "url"));
	if (token == NULL || url == NULL || strlen(token) > 200 || strchr(token, '/') != NULL) {
		job_failed(job, 0, "%s challenge for %s has no usable token or URL", type, name);
		return;
	}
	snprintf(keyauth, sizeof(keyauth), "%s.%s", token, m->thumbprint);
	if (strcmp(type, "http-01") == 0) {
		if (acme_challenge_http01_add(token, keyauth) != 0) {
			job_failed(job, 0, "cannot publish the http-01 answer for %s", name);
			return;
		}
		slot = job->http01_tokens = realloc(job->http01_tokens,
						    (job->n_http01 + 1) * sizeof(char *));
		count = &job->n_http01;
		slot[*count] = strdup(token);
	} else {
		if (acme_challenge_tlsalpn01_add(name, keyauth) != 0) {
			job_failed(job, 0, "cannot build the tls-alpn-01 certificate for %s", name);
			return;
		}
		slot = job->tlsalpn01_names = realloc(job->tlsalpn01_names,
						      (job->n_tlsalpn01 + 1) * sizeof(char *));
		count = &job->n_tlsalpn01;
		slot[*count] = strdup(name);
	}
	if (slot[*count] != NULL)
		(*count)++;
	log_info("acme: answering %s for %s", type, name);
	replace_str(&job->chall_url, url);
	job_post(job, url, "{}", false, NULL, on_challenge_started);
}

/* The error of the failed challenge in <authz>, for the log. */
static void
authz_error(json_t *authz, char *out, size_t outlen)
{
	json_t *ch;
	size_t i;

	snprintf(out, outlen, "no error detail");
	json_array_foreach(json_object_get(authz, "challenges"), i, ch) {
		json_t *e = json_object_get(ch, "error");

		if (json_is_object(e)) {
			snprintf(out, outlen, "%s %s: %s",
				 str_or(json_string_value(json_object_get(ch, "type")), "challenge"),
				 str_or(json_string_value(json_object_get(e, "type")), "(no type)"),
				 str_or(json_string_value(json_object_get(e, "detail")), "(no detail)"));
			return;
		}
	}
}

static void
on_authz(struct acme_job *job, const struct acme_http_response *resp, bool polling)
{
	const char *status, *name;
	json_t *authz;
	char detail[512];

	if (resp->status != 200) {
		job_http_failed(job, "authorization", resp);
		return;
	}
	authz = body_object(resp);
	status = authz ? json_string_value(json_object_get(authz, "status")) : NULL;
	if (status == NULL) {
		json_decref(authz);
		job_failed(job, 0, "authorization %s: answer has no status",
			   job->authz[job->authz_i]);
		return;
	}
	name = json_string_value(json_object_get(json_object_get(authz, "identifier"), "value"));
	if (strcmp(status, "valid") == 0) {
		if (polling)
			log_info("acme: %s validated", name ? name : job->authz[job->authz_i]);
		job->authz_i++;
		json_decref(authz);
		step_authz(job);
	} else if (strcmp(status, "pending") == 0 && !polling) {
		authz_start_challenge(job, authz);
		json_decref(authz);
	} else if (strcmp(status, "pending") == 0 || strcmp(status, "processing") == 0) {
		json_decref(authz);
		job_after(job, poll_pause(resp), poll_authz);
	} else {
		authz_error(authz, detail, sizeof(detail));
		job_failed(job, 0, "authorization for %s is %s: %s", name ? name : "?", status,
			   detail);
		json_decref(authz);
	}
}

static void
on_authz_first(struct acme_job *job, const struct acme_http_response *resp)
{
	on_authz(job, resp, false);
}

static void
on_authz_poll(struct acme_job *job, const struct acme_http_response *resp)
{
	on_authz(job, resp, true);
}

static void
poll_authz(struct acme_job *job)
{
	job_post(job, job->authz[job->authz_i], "", false, NULL, on_authz_poll);
}

static void
step_authz(struct acme_job *job)
{
	if (job->authz_i >= job->n_authz) {
		step_finalize(job);
		return;
	}
	job_post(job, job->authz[job->authz_i], "", false, NULL, on_authz_first);
}

static void
on_order_state(struct acme_job *job, const struct acme_http_response *resp)
{
	const char *status;
	json_t *order;

	if (resp->status != 200) {
		job_http_failed(job, "order", resp);
		return;
	}
	order = body_object(resp);
	if (order == NULL || order_read(job, order, &status) != 0) {
		json_decref(order);
		job_failed(job, 0, "order %s: answer is not an order object", job->order_url);
		return;
	}
	if (strcmp(status, "pending") == 0 || strcmp(status, "ready") == 0) {
		/* we have finalized already: wait for processing to start or end */
		job_after(job, poll_pause(resp), poll_order);
	} else if (strcmp(status, "processing") == 0 ||
		   (strcmp(status, "valid") == 0 && job->cert_url == NULL)) {
		job_after(job, poll_pause(resp), poll_order);
	} else if (strcmp(status, "valid") == 0) {
		step_download(job);
	} else {
		char detail[400] = "";
		json_t *e = json_object_get(order, "error");

		if (json_is_object(e))
			snprintf(detail, sizeof(detail), ": %s",
				 str_or(json_string_value(json_object_get(e, "detail")), "(no detail)"));
		job_failed(job, 0, "order %s is %s%s", job->order_url, status, detail);
	}
	json_decref(order);
}

static void
poll_order(struct acme_job *job)
{
	job_post(job, job->order_url, "", false, NULL, on_order_state);
}

static void
step_finalize(struct acme_job *job)
{
	struct acme_cert *c = job->c;
	char *csr, *text;
	json_t *payload;

	EVP_PKEY_free(job->cert_key);
	job->cert_key = acme_jws_key_generate();
	csr = job->cert_key ? acme_jws_csr(job->cert_key, (const char *const *)c->names,
					   c->n_names) : NULL;
	if (csr == NULL) {
		job_failed(job, 0, "cannot create the key and CSR for %s", c->label);
		return;
	}
	payload = json_pack("{s:s}", "csr", csr);
	free(csr);
	text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (text == NULL) {
		job_failed(job, 0, "out of memory");
		return;
	}
	job_post(job, job->finalize_url, text, false, NULL, on_order_state);
	free(text);
}

static void
job_succeeded(struct acme_job *job, const char *chain, const char *key_pem)
{
	struct acme_manager *m = job->m;
	struct acme_cert *c = job->c;
	char err[512], when[32];

	if (acme_store_write(c->key_path, key_pem, strlen(key_pem), 0600, err, sizeof(err)) != 0 ||
	    acme_store_write(c->cert_path, chain, strlen(chain), 0644, err, sizeof(err)) != 0) {
		job_failed(job, 0, "cannot store the new certificate: %s", err);
		return;
	}
	pthread_mutex_lock(&m->mu);
	memset(&c->st, 0, sizeof(c->st));
	c->force = false;
	pthread_mutex_unlock(&m->mu);
	cert_save_state(c);
	job_end(job);
	/* adopt and deliver what is now in storage (same bytes) */
	c->have = false;
	if (!cert_load(c, false, false)) {
		cert_failed(c, 0, "the stored certificate cannot be read back");
		return;
	}
	atomic_fetch_add(&m->succeeded, 1);
	c->ari_check_at = time(NULL) + ACME_ARI_DEFAULT_RECHECK;
	format_time(c->not_after, when, sizeof(when));
	log_info("acme: certificate for %s obtained, valid until %s", c->label, when);
	if (m->on_certificate != NULL)
		m->on_certificate((const char *const *)c->names, c->n_names, chain, key_pem,
				  c->not_after, m->cb_arg);
	cert_schedule(c);
}

static void
on_cert_download(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_cert *c = job->c;
	struct acme_cert_info info;
	char err[256], *key_pem;

	if (resp->status != 200) {
		job_http_failed(job, "certificate download", resp);
		return;
	}
	if (resp->body == NULL || strlen(resp->body) != resp->body_len) {
		job_failed(job, 0, "certificate download: body is not PEM text");
		return;
	}
	key_pem = acme_jws_key_pem(job->cert_key);
	if (key_pem == NULL) {
		job_failed(job, 0, "cannot encode the certificate key");
		return;
	}
	if (acme_jws_cert_info(resp->body, key_pem, &info, err, sizeof(err)) != 0) {
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
		job_failed(job, 0, "certificate download: %s", err);
		return;
	}
	if (!acme_cert_info_covers(&info, (const char *const *)c->names, c->n_names)) {
		acme_cert_info_clear(&info);
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
		job_failed(job, 0, "the CA issued a certificate for other names than %s", c->label);
		return;
	}
	acme_cert_info_clear(&info);
	job_succeeded(job, resp->body, key_pem);
	OPENSSL_cleanse(key_pem, strlen(key_pem));
	free(key_pem);
}

static void
step_download(struct acme_job *job)
{
	job_post(job, job->cert_url, "", false, "application/pem-certificate-chain",
		 on_cert_download);
}

/* ------------------------------------------------------------- manager */

static int
load_account_key(struct acme_manager *m, char *err, size_t errlen)
{
	char path[ACME_PATH_MAX + 16], rerr[512];
	char *pem;
	size_t len;

	snprintf(path, sizeof(path), "%s/account.key", m->ca_dir);
	pem = acme_store_read(path, &len, rerr, sizeof(rerr));
	if (pem != NULL) {
		m->account_key = acme_jws_key_from_pem(pem, len);
		OPENSSL_cleanse(pem, len);
		free(pem);
		if (m->account_key == NULL) {
			snprintf(err, errlen, "account key %s is not a PEM private key", path);
			return -1;
		}
	} else if (errno == ENOENT) {
		m->account_key = acme_jws_key_generate();
		pem = m->account_key ? acme_jws_key_pem(m->account_key) : NULL;
		if (pem == NULL) {
			snprintf(err, errlen, "cannot generate an account key");
			return -1;
		}
		if (acme_store_write(path, pem, strlen(pem), 0600, rerr, sizeof(rerr)) != 0) {
			OPENSSL_cleanse(pem, strlen(pem));
			free(pem);
			snprintf(err, errlen, "%s", rerr);
			return -1;
		}
		OPENSSL_cleanse(pem, strlen(pem));
		free(pem);
		log_info("acme: created account key %s", path);
	} else {
		snprintf(err, errlen, "%s", rerr);
		return -1;
	}
	m->thumbprint = acme_jws_thumbprint(m->account_key);
	if (m->thumbprint == NULL) {
		snprintf(err, errlen, "account key %s is not an ECDSA P-256 key", path);
		return -1;
	}
	return 0;
}

static int
cert_init(struct acme_manager *m, struct acme_cert *c, const struct acme_order_spec *o,
	  size_t idx, char *err, size_t errlen)
{
	char folder[256];
	size_t i, j, total = 0;

	c->m = m;
	if (o->n_names == 0 || o->names == NULL) {
		snprintf(err, errlen, "acme order %zu has no names", idx);
		return -1;
	}
	c->names = calloc(o->n_names, sizeof(char *));
	if (c->names == NULL)
		goto nomem;
	for (i = 0; i < o->n_names; i++) {
		if (o->names[i] == NULL || !acme_jws_name_valid(o->names[i])) {
			snprintf(err, errlen, "acme order %zu: \"%s\" is not a DNS name that can be "
				 "ordered (letters, digits, hyphens, two labels or more; no "
				 "wildcards)", idx, o->names[i] ? o->names[i] : "(null)");
			return -1;
		}
		for (j = 0; j < i; j++) {
			if (strcasecmp(o->names[i], o->names[j]) == 0) {
				snprintf(err, errlen, "acme order %zu: \"%s\" appears twice", idx,
					 o->names[i]);
				return -1;
			}
		}
		c->names[i] = strdup(o->names[i]);
		if (c->names[i] == NULL)
			goto nomem;
		for (char *p = c->names[i]; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		c->n_names++;
		total += strlen(o->names[i]) + 1;
	}
	c->label = malloc(total);
	if (c->label == NULL)
		goto nomem;
	c->label[0] = '\0';
	for (i = 0; i < c->n_names; i++) {
		if (i > 0)
			strcat(c->label, ",");
		strcat(c->label, c->names[i]);
	}
	if (acme_store_name_folder(c->names[0], folder, sizeof(folder)) != 0) {
		snprintf(err, errlen, "acme order %zu: bad name %s", idx, c->names[0]);
		return -1;
	}
	if ((size_t)snprintf(c->dir, sizeof(c->dir), "%s/%s", m->ca_dir, folder) >= sizeof(c->dir)) {
		snprintf(err, errlen, "storage path too long for %s", c->names[0]);
		return -1;
	}
	snprintf(c->cert_path, sizeof(c->cert_path), "%s/cert.pem", c->dir);
	snprintf(c->key_path, sizeof(c->key_path), "%s/key.pem", c->dir);
	snprintf(c->state_path, sizeof(c->state_path), "%s/state.json", c->dir);
	snprintf(c->lock_path, sizeof(c->lock_path), "%s/lock", c->dir);
	if (acme_store_mkdirs(c->dir, err, errlen) != 0)
		return -1;
	c->timer = evtimer_new(m->base, cert_timer_cb, c);
	if (c->timer == NULL)
		goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

struct acme_manager *
acme_manager_new(struct event_base *base, const struct acme_settings *s, char *err,
		 size_t errlen)
{
	struct acme_manager *m = calloc(1, sizeof(*m));
	char ca[256], host[128];
	unsigned char rnd[8];
	size_t i, j;

	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	m->base = base;
	m->directory_url = strdup(s->directory_url ? s->directory_url : ACME_LETSENCRYPT_PRODUCTION);
	m->storage = strdup(s->storage_dir ? s->storage_dir : "certs");
	if (m->directory_url == NULL || m->storage == NULL)
		goto nomem;
	if (strncasecmp(m->directory_url, "https://", 8) != 0 ||
	    acme_store_ca_folder(m->directory_url, ca, sizeof(ca)) != 0) {
		snprintf(err, errlen, "acme directory \"%s\" is not an https:// URL with a host",
			 m->directory_url);
		goto fail;
	}
	if (s->email != NULL) {
		if (strchr(s->email, '@') == NULL || strpbrk(s->email, " \t\r\n,<>\"") != NULL) {
			snprintf(err, errlen, "acme email \"%s\" is not an e-mail address",
				 s->email);
			goto fail;
		}
		m->email = strdup(s->email);
		if (m->email == NULL)
			goto nomem;
	}
	if ((s->eab_kid == NULL) != (s->eab_hmac_key == NULL)) {
		snprintf(err, errlen, "acme External Account Binding needs both the key id and "
			 "the HMAC key");
		goto fail;
	}
	if (s->eab_kid != NULL) {
		m->eab_kid = strdup(s->eab_kid);
		m->eab_key = acme_b64url_decode(s->eab_hmac_key, &m->eab_key_len);
		if (m->eab_kid == NULL || m->eab_key == NULL || m->eab_key_len == 0) {
			snprintf(err, errlen, "acme EAB HMAC key is not base64url");
			goto fail;
		}
	}
	m->challenges = s->challenges ? s->challenges
				      : (ACME_CHALLENGE_HTTP01 | ACME_CHALLENGE_TLSALPN01);
	if ((m->challenges & (ACME_CHALLENGE_HTTP01 | ACME_CHALLENGE_TLSALPN01)) == 0) {
		snprintf(err, errlen, "acme: no known challenge type enabled");
		goto fail;
	}
	m->on_certificate = s->on_certificate;
	m->cb_arg = s->cb_arg;
	m->retry_base = s->retry_base_seconds ? s->retry_base_seconds : 60;
	m->retry_max = s->retry_max_seconds ? s->retry_max_seconds : 6 * 3600;
	if (m->retry_max < m->retry_base)
		m->retry_max = m->retry_base;
	m->lock_stale = s->lock_stale_seconds ? s->lock_stale_seconds : 900;
	m->request_timeout = s->request_timeout_seconds ? s->request_timeout_seconds : 30;
	m->order_timeout = s->order_timeout_seconds ? s->order_timeout_seconds : 600;

	if ((size_t)snprintf(m->ca_dir, sizeof(m->ca_dir), "%s/acme/%s", m->storage, ca) >=
	    sizeof(m->ca_dir)) {
		snprintf(err, errlen, "storage path %s is too long", m->storage);
		goto fail;
	}
	if (acme_store_mkdirs(m->storage, err, errlen) != 0 ||
	    acme_store_mkdirs(m->ca_dir, err, errlen) != 0)
		goto fail;
	{
		char shared[ACME_PATH_MAX + 32];

		/* answers shared with instances on the same storage, whatever the CA */
		snprintf(shared, sizeof(shared), "%s/acme/challenges", m->storage);
		if (acme_challenge_set_shared_dir(shared, err, errlen) != 0)
			goto fail;
	}
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "unknown");
	host[sizeof(host) - 1] = '\0';
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	snprintf(m->lock_token, sizeof(m->lock_token), "%s-%ld-%02x%02x%02x%02x%02x%02x%02x%02x",
		 host, (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
	for (char *p = m->lock_token; *p; p++)
		if (*p == '/' || *p == ' ')
			*p = '_';
	if (load_account_key(m, err, errlen) != 0)
		goto fail;
	m->http = acme_http_new(base, s->ca_bundle, m->request_timeout, err, errlen);
	if (m->http == NULL)
		goto fail;

	if (s->n_orders == 0) {
		snprintf(err, errlen, "acme: no certificates to order");
		goto fail;
	}
	m->certs = calloc(s->n_orders, sizeof(*m->certs));
	if (m->certs == NULL)
		goto nomem;
	for (i = 0; i < s->n_orders; i++) {
		m->n_certs++;
		if (cert_init(m, &m->certs[i], &s->orders[i], i, err, errlen) != 0)
			goto fail;
		for (j = 0; j < i; j++) {
			if (strcmp(m->certs[i].dir, m->certs[j].dir) == 0) {
				snprintf(err, errlen, "acme orders %zu and %zu both start with %s; "
					 "give each certificate a distinct first name", j, i,
					 m->certs[i].names[0]);
				goto fail;
			}
		}
	}
	return m;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	acme_manager_free(m);
	return NULL;
}

int
acme_manager_start(struct acme_manager *m, char *err, size_t errlen)
{
	time_t now = time(NULL);
	char serr[512];
	size_t i;

	if (m->started) {
		snprintf(err, errlen, "acme manager already started");
		return -1;
	}
	m->started = true;
	for (i = 0; i < m->n_certs; i++) {
		struct acme_cert *c = &m->certs[i];

		if (acme_store_state_load(c->state_path, &c->st, serr, sizeof(serr)) != 0) {
			log_warn("acme: ignoring unreadable renewal state: %s", serr);
			memset(&c->st, 0, sizeof(c->st));
		}
		cert_load(c, true, false);
		c->ari_check_at = now;
		if (c->st.failures > 0) {
			char when[32];

			format_time(c->st.next_attempt, when, sizeof(when));
			log_warn("acme: certificate for %s: %u failed attempts so far (last: %s); "
				 "next attempt not before %s", c->label, c->st.failures,
				 c->st.last_error, when);
		}
		cert_schedule(c);
	}
	return 0;
}

int
acme_manager_renew_now(struct acme_manager *m, const char *name)
{
	size_t i, j;

	for (i = 0; i < m->n_certs; i++) {
		struct acme_cert *c = &m->certs[i];

		for (j = 0; j < c->n_names; j++) {
			if (strcasecmp(c->names[j], name) == 0) {
				c->force = true;
				if (m->started && m->job == NULL)
					cert_retry_in(c, 0);
				else if (m->started)
					cert_retry_in(c, 1);
				return 0;
			}
		}
	}
	return -1;
}

static void
append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (*buf == NULL)
			return;
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return;
		}
		{
			char *nb = realloc(*buf, *cap * 2 + (size_t)n);

			if (nb == NULL) {
				free(*buf);
				*buf = NULL;
				return;
			}
			*buf = nb;
			*cap = *cap * 2 + (size_t)n;
		}
	}
}

char *
acme_metrics_render(struct acme_manager *m)
{
	size_t len = 0, cap = 2048, i;
	char *buf = malloc(cap);

	if (buf == NULL)
		return NULL;
	buf[0] = '\0';
	append(&buf, &len, &cap,
	       "# HELP portcullis_acme_challenges_served_total ACME challenge answers served.\n"
	       "# TYPE portcullis_acme_challenges_served_total counter\n"
	       "portcullis_acme_challenges_served_total{type=\"http-01\"} %llu\n"
	       "portcullis_acme_challenges_served_total{type=\"tls-alpn-01\"} %llu\n",
	       (unsigned long long)acme_challenge_served(ACME_CHALLENGE_HTTP01),
	       (unsigned long long)acme_challenge_served(ACME_CHALLENGE_TLSALPN01));
	if (m == NULL)
		return buf;
	append(&buf, &len, &cap,
	       "# HELP portcullis_acme_renewals_attempted_total Certificate orders started.\n"
	       "# TYPE portcullis_acme_renewals_attempted_total counter\n"
	       "portcullis_acme_renewals_attempted_total %llu\n"
	       "# HELP portcullis_acme_renewals_succeeded_total Certificates obtained.\n"
	       "# TYPE portcullis_acme_renewals_succeeded_total counter\n"
	       "portcullis_acme_renewals_succeeded_total %llu\n"
	       "# HELP portcullis_acme_renewals_failed_total Failed certificate orders.\n"
	       "# TYPE portcullis_acme_renewals_failed_total counter\n"
	       "portcullis_acme_renewals_failed_total %llu\n"
	       "# HELP portcullis_acme_certificate_expiry_seconds Expiry (Unix time) of the "
	       "certificate being served; 0: none.\n"
	       "# TYPE portcullis_acme_certificate_expiry_seconds gauge\n",
	       (unsigned long long)atomic_load(&m->attempted),
	       (unsigned long long)atomic_load(&m->succeeded),
	       (unsigned long long)atomic_load(&m->failed));
	pthread_mutex_lock(&m->mu);
	for (i = 0; i < m->n_certs; i++)
		append(&buf, &len, &cap,
		       "portcullis_acme_certificate_expiry_seconds{name=\"%s\"} %lld\n",
		       m->certs[i].names[0],
		       (long long)(m->certs[i].have ? m->certs[i].not_after : 0));
	append(&buf, &len, &cap,
	       "# HELP portcullis_acme_next_attempt_seconds When (Unix time) the certificate is "
	       "next renewed or retried.\n"
	       "# TYPE portcullis_acme_next_attempt_seconds gauge\n");
	for (i = 0; i < m->n_certs; i++)
		append(&buf, &len, &cap, "portcullis_acme_next_attempt_seconds{name=\"%s\"} %lld\n",
		       m->certs[i].names[0], (long long)m->certs[i].due);
	append(&buf, &len, &cap,
	       "# HELP portcullis_acme_consecutive_failures Failed attempts since the last "
	       "success.\n"
	       "# TYPE portcullis_acme_consecutive_failures gauge\n");
	for (i = 0; i < m->n_certs; i++)
		append(&buf, &len, &cap, "portcullis_acme_consecutive_failures{name=\"%s\"} %u\n",
		       m->certs[i].names[0], m->certs[i].st.failures);
	pthread_mutex_unlock(&m->mu);
	return buf;
}

void
acme_manager_free(struct acme_manager *m)
{
	size_t i;

	if (m == NULL)
		return;
	if (m->job != NULL) {
		/* its exchange, if any, is cancelled with the client below */
		m->job->inflight = false;
		job_end(m->job);
	}
	acme_http_free(m->http);
	for (i = 0; i < m->n_certs; i++) {
		struct acme_cert *c = &m->certs[i];

		if (c->locked)
			acme_store_unlock(c->lock_path, m->lock_token);
		if (c->timer != NULL)
			event_free(c->timer);
		free_strv(c->names, c->n_names);
		free(c->label);
		free(c->ari_id);
	}
	free(m->certs);
	free(m->directory_url);
	free(m->email);
	free(m->eab_kid);
	if (m->eab_key != NULL)
		OPENSSL_cleanse(m->eab_key, m->eab_key_len);
	free(m->eab_key);
	free(m->storage);
	EVP_PKEY_free(m->account_key);
	free(m->thumbprint);
	free(m->kid);
	free(m->nonce);
	free(m->url_new_nonce);
	free(m->url_new_account);
	free(m->url_new_order);
	free(m->url_renewal_info);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

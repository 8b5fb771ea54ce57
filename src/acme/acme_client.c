/*
 * acme_client: the ACME manager — jobs, certificates and the renewal
 * scheduler; see acme.h.  The RFC 8555 steps of a job are in acme_order.c.
 * Everything here runs on the manager's event_base thread, except
 * acme_metrics_render(), which reads under <mu>.
 *
 * One job runs at a time per manager (an order, or an ARI check); the
 * others wait for it.  A job is a chain of asynchronous steps; each HTTP
 * exchange goes through acme_job_http(), which also refreshes the storage
 * lock, and each signed POST through acme_job_post(), which fetches nonces
 * and retries badNonce.  A job ends in job_succeeded() (acme_order.c) or
 * acme_job_failed(), never both, and the certificate is rescheduled there.
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
#include "acme/acme_internal.h"
#include "acme/acme_http.h"
#include "acme/acme_jws.h"
#include "acme/acme_order.h"
#include "acme/acme_sched.h"
#include "acme/acme_store.h"
#include "base/log.h"

/* ---------------------------------------------------------------- helpers */

uint32_t
acme_random_u32(void)
{
	uint32_t v = 0;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	return v;
}

void
acme_format_time(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *
acme_str_or(const char *s, const char *fallback)
{
	return s != NULL ? s : fallback;
}

void
acme_replace_str(char **slot, const char *value)
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
void
acme_problem_text(const struct acme_http_response *resp, char *out, size_t outlen, char *type,
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

bool
acme_problem_is(const char *type, const char *name)
{
	static const char prefix[] = "urn:ietf:params:acme:error:";

	return strncmp(type, prefix, sizeof(prefix) - 1) == 0 &&
	       strcmp(type + sizeof(prefix) - 1, name) == 0;
}

time_t
acme_retry_after_of(const struct acme_http_response *resp)
{
	time_t t = 0;

	if (resp->retry_after == NULL ||
	    acme_sched_parse_retry_after(resp->retry_after, time(NULL), &t) != 0)
		return 0;
	return t;
}

/* Parse a JSON object body, or NULL. */
json_t *
acme_body_object(const struct acme_http_response *resp)
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
void
acme_job_end(struct acme_job *job)
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

	acme_job_failed(job, 0, "the order did not complete within %u s", job->m->order_timeout);
}

static void
job_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_job *job = arg;

	job->after_delay(job);
}

/* Run <next> after <seconds> (polling). */
void
acme_job_after(struct acme_job *job, time_t seconds, void (*next)(struct acme_job *))
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
		acme_job_failed(job, 0, "lost the storage lock %s (taken over by another instance)",
				job->c->lock_path);
		return;
	}
	job->on_http(job, resp);
}

void
acme_job_http(struct acme_job *job, enum acme_http_method method, const char *url, const char *body,
	      const char *accept, job_handler handler)
{
	char err[256];

	job->on_http = handler;
	if (acme_http_request(job->m->http, method, url, body ? "application/jose+json" : NULL,
			      body, accept, job_http_cb, job, err, sizeof(err)) != 0) {
		acme_job_failed(job, 0, "%s", err);
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
		acme_replace_str(&m->nonce, resp->nonce);
	if (resp->status == 400) {
		acme_problem_text(resp, text, sizeof(text), type, sizeof(type));
		if (acme_problem_is(type, "badNonce") &&
		    ++job->post_tries < ACME_BADNONCE_RETRIES) {
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
		acme_problem_text(resp, text, sizeof(text), NULL, 0);
		acme_job_failed(job, acme_retry_after_of(resp),
				"newNonce %s gave no Replay-Nonce (%s)", m->url_new_nonce, text);
		return;
	}
	acme_replace_str(&m->nonce, resp->nonce);
	post_send(job);
}

static void
post_send(struct acme_job *job)
{
	struct acme_manager *m = job->m;
	char *jws;

	if (m->nonce == NULL) {
		acme_job_http(job, ACME_HTTP_HEAD, m->url_new_nonce, NULL, NULL, on_new_nonce);
		return;
	}
	jws = acme_jws_sign(m->account_key, job->post_jwk ? NULL : m->kid, m->nonce, job->post_url,
			    job->post_payload);
	/* each nonce is used once */
	free(m->nonce);
	m->nonce = NULL;
	if (jws == NULL) {
		acme_job_failed(job, 0, "cannot sign the request to %s", job->post_url);
		return;
	}
	acme_job_http(job, ACME_HTTP_POST, job->post_url, jws, job->post_accept, on_post_response);
	free(jws);
}

/* POST <payload> ("" for POST-as-GET) to <url>, signed with the account key
 * (by jwk instead of kid when <jwk>), then <handler>. */
void
acme_job_post(struct acme_job *job, const char *url, const char *payload, bool jwk,
	      const char *accept, job_handler handler)
{
	acme_replace_str(&job->post_url, url);
	acme_replace_str(&job->post_payload, payload);
	job->post_jwk = jwk;
	job->post_accept = accept;
	job->post_tries = 0;
	job->post_handler = handler;
	post_send(job);
}

/* ------------------------------------------------------- certificates */

/* Deliver and adopt the certificate in storage if it is usable.  Returns true
 * if one was adopted; <quiet> suppresses the warning about an unusable one. */
bool
acme_cert_load(struct acme_cert *c, bool deliver, bool quiet)
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
		acme_format_time(info.not_after, when, sizeof(when));
		if (!quiet)
			log_warn("acme: stored certificate %s expired at %s", c->cert_path, when);
		goto done;
	}
	changed = !c->have || c->not_after != info.not_after || c->not_before != info.not_before;
	pthread_mutex_lock(&m->mu);
	c->have = true;
	c->not_before = info.not_before;
	c->not_after = info.not_after;
	c->renew_at = acme_sched_renew_at(info.not_before, info.not_after, acme_random_u32());
	free(c->ari_id);
	c->ari_id = info.ari_id;
	info.ari_id = NULL;
	if (changed)
		c->ari_at = 0;
	pthread_mutex_unlock(&m->mu);
	adopted = true;
	if (changed && deliver) {
		acme_format_time(c->not_after, when, sizeof(when));
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

void
acme_cert_save_state(struct acme_cert *c)
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

void
acme_cert_schedule(struct acme_cert *c)
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
	acme_format_time(due, when, sizeof(when));
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
void
acme_cert_failed(struct acme_cert *c, time_t retry_after, const char *reason)
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
	acme_cert_save_state(c);
	atomic_fetch_add(&m->failed, 1);
	acme_format_time(c->st.next_attempt, when, sizeof(when));
	if (c->have) {
		acme_format_time(c->not_after, expiry, sizeof(expiry));
		log_error("acme: certificate for %s: attempt %u failed: %s; keeping the current "
			  "certificate (valid until %s); next attempt at %s", c->label,
			  c->st.failures, reason, expiry, when);
	} else {
		log_error("acme: certificate for %s: attempt %u failed: %s; no certificate yet; "
			  "next attempt at %s", c->label, c->st.failures, reason, when);
	}
	/* start the next attempt from scratch: the CA may have forgotten us */
	m->have_dir = false;
	acme_replace_str(&m->nonce, NULL);
	acme_replace_str(&m->kid, NULL);
	acme_cert_schedule(c);
}

void
acme_job_failed(struct acme_job *job, time_t retry_after, const char *fmt, ...)
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
		acme_job_end(job);
		acme_cert_schedule(c);
		return;
	}
	acme_job_end(job);
	acme_cert_failed(c, retry_after, reason);
}

void
acme_job_http_failed(struct acme_job *job, const char *what, const struct acme_http_response *resp)
{
	char text[600];

	acme_problem_text(resp, text, sizeof(text), NULL, 0);
	acme_job_failed(job, acme_retry_after_of(resp), "%s: %s", what, text);
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
		acme_cert_failed(c, 0, err);
		return;
	case ACME_LOCK_TAKEN:
		break;
	}
	c->locked = true;
	/* another instance may have renewed it, or failed, while we waited */
	acme_cert_load(c, true, true);
	if (acme_store_state_load(c->state_path, &c->st, err, sizeof(err)) != 0)
		log_warn("acme: ignoring unreadable renewal state: %s", err);
	if (!forced && cert_due(c, now) > now) {
		acme_store_unlock(c->lock_path, m->lock_token);
		c->locked = false;
		acme_cert_schedule(c);
		return;
	}
	snprintf(reason, sizeof(reason), "%s",
		 forced ? "renewal requested" : c->have ? "renewal due" : "no certificate");
	/*
	 * Persist the next attempt first, counting this attempt as failed until it
	 * succeeds, so a crash loop cannot hammer the CA.  The in-memory state
	 * stays as it was: acme_cert_failed() or job_succeeded() writes the outcome.
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
			acme_cert_failed(c, 0, err);
			return;
		}
	}
	job = job_new(c, JOB_ORDER);
	if (job == NULL) {
		acme_store_unlock(c->lock_path, m->lock_token);
		c->locked = false;
		acme_cert_failed(c, 0, "out of memory");
		return;
	}
	atomic_fetch_add(&m->attempted, 1);
	log_info("acme: ordering certificate for %s (%s, attempt %u)", c->label, reason,
		 c->st.failures + 1);
	acme_order_start(job);
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
				acme_cert_schedule(c);
				return;
			}
			acme_order_start(job);
			return;
		}
		if (cert_due(c, now) > now) {
			acme_cert_schedule(c);
			return;
		}
	}
	cert_attempt(c);
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
		acme_cert_load(c, true, false);
		c->ari_check_at = now;
		if (c->st.failures > 0) {
			char when[32];

			acme_format_time(c->st.next_attempt, when, sizeof(when));
			log_warn("acme: certificate for %s: %u failed attempts so far (last: %s); "
				 "next attempt not before %s", c->label, c->st.failures,
				 c->st.last_error, when);
		}
		acme_cert_schedule(c);
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
		acme_job_end(m->job);
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

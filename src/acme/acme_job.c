/*
 * acme_job: what the ACME manager's jobs and certificates are made of — one
 * job's HTTP exchanges (acme_job_http), signed POSTs with nonces and badNonce
 * retries (acme_job_post), its end and failure; a certificate's state on disk,
 * its schedule and its failures; small helpers.  Used by acme_client.c (the
 * manager) and acme_order.c (the RFC 8555 steps); calls neither.  Everything
 * here runs on the manager's event_base thread.
 */
#include "acme/acme_internal.h"

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

void
acme_free_strv(char **v, size_t n)
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
	acme_free_strv(job->http01_tokens, job->n_http01);
	acme_free_strv(job->tlsalpn01_names, job->n_tlsalpn01);
	if (job->deadline != NULL)
		event_free(job->deadline);
	if (job->delay != NULL)
		event_free(job->delay);
	free(job->post_url);
	free(job->post_payload);
	free(job->order_url);
	free(job->finalize_url);
	free(job->cert_url);
	acme_free_strv(job->authz, job->n_authz);
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

struct acme_job *
acme_job_new(struct acme_cert *c, enum job_kind kind)
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
time_t
acme_cert_due(const struct acme_cert *c, time_t now)
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

bool
acme_ari_possible(const struct acme_manager *m)
{
	return !m->have_dir || m->url_renewal_info != NULL;
}

void
acme_cert_schedule(struct acme_cert *c)
{
	struct acme_manager *m = c->m;
	time_t now = time(NULL), due = acme_cert_due(c, now), wake = due, delay;
	struct timeval tv;
	char when[32];

	if (c->have && !c->force && acme_ari_possible(m) && c->ari_id != NULL && c->ari_check_at < wake)
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

void
acme_cert_retry_in(struct acme_cert *c, time_t seconds)
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

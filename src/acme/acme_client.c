/*
 * acme_client: the ACME manager — its certificates, the renewal timers that
 * start jobs, the account key, metrics; see acme.h.  A job's HTTP exchanges
 * and a certificate's state are in acme_job.c, the RFC 8555 steps of a job
 * in acme_order.c.
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
		acme_cert_retry_in(c, ACME_LOCK_RECHECK);
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
	if (!forced && acme_cert_due(c, now) > now) {
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
	job = acme_job_new(c, JOB_ORDER);
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
		acme_cert_retry_in(c, 1);
		return;
	}
	if (c->have && !c->force) {
		if (acme_ari_possible(m) && c->ari_id != NULL && now >= c->ari_check_at) {
			job = acme_job_new(c, JOB_ARI);
			if (job == NULL) {
				c->ari_check_at = now + ACME_ARI_FAILED_RECHECK;
				acme_cert_schedule(c);
				return;
			}
			acme_order_start(job);
			return;
		}
		if (acme_cert_due(c, now) > now) {
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
					acme_cert_retry_in(c, 0);
				else if (m->started)
					acme_cert_retry_in(c, 1);
				return 0;
			}
		}
	}
	return -1;
}

__attribute__((format(printf, 4, 5))) static void
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
acme_manager_each_cert(struct acme_manager *m,
		       void (*fn)(const struct acme_cert_status *info, void *arg), void *arg)
{
	for (size_t i = 0; m != NULL && i < m->n_certs; i++) {
		const struct acme_cert *c = &m->certs[i];
		struct acme_cert_status info = {
			.names = (const char *const *)c->names, .n_names = c->n_names,
			.not_after = c->have ? c->not_after : 0,
			.renew_at = c->have ? c->renew_at : 0,
			.next_attempt = c->due, .failures = c->st.failures,
			.last_error = c->st.last_error,
			.ordering = m->job != NULL && m->job->c == c,
		};

		fn(&info, arg);
	}
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
		acme_free_strv(c->names, c->n_names);
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

/*
 * acme_internal: the ACME manager's state — manager, certificates,
 * jobs — and the job and certificate helpers (acme_job.c) that the manager
 * (acme_client.c) and the RFC 8555 order steps (acme_order.c) build on.
 * Only the files of acme/ include this;
 * everyone else uses acme.h.  Everything here runs on the manager's
 * event_base thread.
 */
#ifndef PORTCULLIS_ACME_INTERNAL_H
#define PORTCULLIS_ACME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acme/acme.h"
#include "acme/acme_http.h"
#include "acme/acme_store.h"

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

/* ---- helpers */

uint32_t acme_random_u32(void);
/* <t> as "YYYY-MM-DDThh:mm:ssZ". */
void acme_format_time(time_t t, char *out, size_t outlen);
const char *acme_str_or(const char *s, const char *fallback);
/* Free *<slot> and put a copy of <value> (NULL: none) there. */
void acme_replace_str(char **slot, const char *value);
/* An ACME problem document as one line: "type: detail" (or the HTTP status);
 * its type into <type> when given. */
void acme_problem_text(const struct acme_http_response *resp, char *out, size_t outlen,
		       char *type, size_t typelen);
/* Whether problem <type> is urn:ietf:params:acme:error:<name>. */
bool acme_problem_is(const char *type, const char *name);
/* The response's Retry-After as a time, or 0. */
time_t acme_retry_after_of(const struct acme_http_response *resp);
/* Parse a JSON object body, or NULL. */
json_t *acme_body_object(const struct acme_http_response *resp);
/* Free the <n> strings of <v> and <v>. */
void acme_free_strv(char **v, size_t n);

/* ---- jobs (acme_job.c) */

/* A new job of <kind> for <c>, or NULL when out of memory. */
struct acme_job *acme_job_new(struct acme_cert *c, enum job_kind kind);

/* Detach <job> from its manager; free it now, or when its exchange returns. */
void acme_job_end(struct acme_job *job);
/* Run <next> after <seconds> (polling). */
void acme_job_after(struct acme_job *job, time_t seconds, void (*next)(struct acme_job *));
/* One exchange with the CA (refreshing the storage lock), then <handler>;
 * a request that cannot start fails the job. */
void acme_job_http(struct acme_job *job, enum acme_http_method method, const char *url,
		   const char *body, const char *accept, job_handler handler);
/* POST <payload> ("" for POST-as-GET) to <url>, signed with the account key
 * (by jwk instead of kid when <jwk>), then <handler>; fetches nonces and
 * retries badNonce. */
void acme_job_post(struct acme_job *job, const char *url, const char *payload, bool jwk,
		   const char *accept, job_handler handler);
/* End <job> as failed (the certificate is rescheduled, no sooner than
 * <retry_after> when not 0), with a printf-style reason. */
void acme_job_failed(struct acme_job *job, time_t retry_after, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* End <job> as failed on an unexpected answer to step <what>. */
void acme_job_http_failed(struct acme_job *job, const char *what,
			  const struct acme_http_response *resp);

/* ---- certificates */

/* Deliver and adopt the certificate in storage if it is usable.  Returns true
 * if one was adopted; <quiet> suppresses the warning about an unusable one. */
bool acme_cert_load(struct acme_cert *c, bool deliver, bool quiet);
/* When <c> should next be attempted (ignoring ARI polls). */
time_t acme_cert_due(const struct acme_cert *c, time_t now);
/* Whether the CA offers renewal information (ARI) and it may be asked now. */
bool acme_ari_possible(const struct acme_manager *m);
/* Wake <c>'s timer in <seconds>. */
void acme_cert_retry_in(struct acme_cert *c, time_t seconds);
/* Persist <c>'s failures and next attempt. */
void acme_cert_save_state(struct acme_cert *c);
/* Arm <c>'s timer for its next renewal, retry or ARI check. */
void acme_cert_schedule(struct acme_cert *c);
/* Record a failed attempt (job or not), loudly, and reschedule. */
void acme_cert_failed(struct acme_cert *c, time_t retry_after, const char *reason);

#endif

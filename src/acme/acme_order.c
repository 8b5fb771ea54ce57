/*
 * acme_order: the RFC 8555 steps of a job; see acme_order.h.  Each step sends
 * one exchange through acme_job_http() / acme_job_post() and names the
 * handler of its answer (on_*); polls pause with acme_job_after(), honouring
 * Retry-After.
 */
#include "acme/acme_order.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "acme/acme_challenge.h"
#include "acme/acme_internal.h"
#include "acme/acme_http.h"
#include "acme/acme_jws.h"
#include "acme/acme_sched.h"
#include "acme/acme_store.h"
#include "base/log.h"

static void step_account(struct acme_job *job);
static void step_order(struct acme_job *job);
static void step_authz(struct acme_job *job);
static void step_finalize(struct acme_job *job);
static void step_download(struct acme_job *job);
static void step_ari(struct acme_job *job);

/* The string member <key> of JSON object <o>, or <fallback>. */
static const char *
member_str(json_t *o, const char *key, const char *fallback)
{
	return acme_str_or(json_string_value(json_object_get(o, key)), fallback);
}

/* ---------------------------------------------------------------- steps */

static bool
dir_url(json_t *dir, const char *key, char **slot)
{
	const char *v = json_string_value(json_object_get(dir, key));

	acme_replace_str(slot, v);
	return v != NULL && strncmp(v, "https://", 8) == 0;
}

int
acme_directory_read(struct acme_manager *m, json_t *dir, bool *eab_required)
{
	*eab_required = false;
	if (!dir_url(dir, "newNonce", &m->url_new_nonce) ||
	    !dir_url(dir, "newAccount", &m->url_new_account) ||
	    !dir_url(dir, "newOrder", &m->url_new_order))
		return -1;
	if (!dir_url(dir, "renewalInfo", &m->url_renewal_info))
		acme_replace_str(&m->url_renewal_info, NULL);
	*eab_required = json_is_true(json_object_get(json_object_get(dir, "meta"),
						     "externalAccountRequired"));
	return 0;
}

static void
on_directory(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_manager *m = job->m;
	bool eab_required;
	json_t *dir;

	if (resp->status != 200) {
		acme_job_http_failed(job, "directory", resp);
		return;
	}
	dir = acme_body_object(resp);
	if (dir == NULL) {
		acme_job_failed(job, 0, "directory %s: answer is not a JSON object",
				m->directory_url);
		return;
	}
	if (acme_directory_read(m, dir, &eab_required) != 0) {
		json_decref(dir);
		acme_job_failed(job, 0,
				"directory %s lacks https newNonce, newAccount or newOrder URLs",
				m->directory_url);
		return;
	}
	if (eab_required && m->eab_kid == NULL) {
		json_decref(dir);
		acme_job_failed(job, 0,
				"the CA at %s requires External Account Binding: set the EAB "
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

void
acme_order_start(struct acme_job *job)
{
	if (job->m->have_dir) {
		if (job->kind == JOB_ARI)
			step_ari(job);
		else
			step_account(job);
		return;
	}
	acme_job_http(job, ACME_HTTP_GET, job->m->directory_url, NULL, "application/json",
		      on_directory);
}

int
acme_ari_window(json_t *root, time_t *start, time_t *end)
{
	json_t *win = json_object_get(root, "suggestedWindow");

	if (!json_is_object(win) ||
	    acme_sched_parse_rfc3339(member_str(win, "start", ""), start) != 0 ||
	    acme_sched_parse_rfc3339(member_str(win, "end", ""), end) != 0 || *end <= *start)
		return -1;
	return 0;
}

/* ARI (RFC 9773): GET renewalInfo/<certID> and pick a time in its window. */
static void
on_ari(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_cert *c = job->c;
	time_t now = time(NULL), start, end, recheck;
	json_t *root;
	char a[32], b[32];

	if (resp->status != 200) {
		acme_job_http_failed(job, "renewalInfo", resp);
		return;
	}
	root = acme_body_object(resp);
	if (root == NULL || acme_ari_window(root, &start, &end) != 0) {
		json_decref(root);
		acme_job_failed(job, 0, "renewalInfo: no valid suggestedWindow");
		return;
	}
	json_decref(root);
	recheck = acme_retry_after_of(resp);
	if (recheck <= now)
		recheck = now + ACME_ARI_DEFAULT_RECHECK;
	pthread_mutex_lock(&job->m->mu);
	c->ari_at = acme_sched_ari_pick(start, end, now, acme_random_u32());
	c->ari_check_at = recheck;
	pthread_mutex_unlock(&job->m->mu);
	acme_format_time(start, a, sizeof(a));
	acme_format_time(end, b, sizeof(b));
	log_info("acme: renewal window for %s suggested by the CA: %s to %s", c->label, a, b);
	acme_job_end(job);
	acme_cert_schedule(c);
}

static void
step_ari(struct acme_job *job)
{
	struct acme_cert *c = job->c;
	struct acme_manager *m = job->m;
	char url[2048];

	if (m->url_renewal_info == NULL || c->ari_id == NULL) {
		c->ari_check_at = time(NULL) + ACME_ARI_DEFAULT_RECHECK;
		acme_job_end(job);
		acme_cert_schedule(c);
		return;
	}
	snprintf(url, sizeof(url), "%s%s%s", m->url_renewal_info,
		 m->url_renewal_info[strlen(m->url_renewal_info) - 1] == '/' ? "" : "/", c->ari_id);
	acme_job_http(job, ACME_HTTP_GET, url, NULL, "application/json", on_ari);
}

static void
on_account(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_manager *m = job->m;
	json_t *acct;
	const char *status;

	if (resp->status != 200 && resp->status != 201) {
		acme_job_http_failed(job, "newAccount", resp);
		return;
	}
	if (resp->location == NULL) {
		acme_job_failed(job, 0, "newAccount: answer without a Location (account URL)");
		return;
	}
	acct = acme_body_object(resp);
	status = acct ? json_string_value(json_object_get(acct, "status")) : NULL;
	if (status != NULL && strcmp(status, "valid") != 0) {
		acme_job_failed(job, 0, "account %s is %s", resp->location, status);
		json_decref(acct);
		return;
	}
	json_decref(acct);
	acme_replace_str(&m->kid, resp->location);
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
			acme_job_failed(job, 0, "cannot build the External Account Binding");
			return;
		}
		json_object_set_new(payload, "externalAccountBinding", obj);
	}
	text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (text == NULL) {
		acme_job_failed(job, 0, "out of memory");
		return;
	}
	acme_job_post(job, m->url_new_account, text, true, NULL, on_account);
	free(text);
}

int
acme_order_read(struct acme_job *job, json_t *order, const char **status)
{
	json_t *authz = json_object_get(order, "authorizations");
	size_t i;

	*status = json_string_value(json_object_get(order, "status"));
	if (*status == NULL)
		return -1;
	if (json_string_value(json_object_get(order, "finalize")))
		acme_replace_str(&job->finalize_url,
				 json_string_value(json_object_get(order, "finalize")));
	if (json_string_value(json_object_get(order, "certificate")))
		acme_replace_str(&job->cert_url,
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
		acme_job_after(job, 1, poll_order);
	} else {
		acme_job_failed(job, 0, "order %s is %s", job->order_url, status);
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
		acme_problem_text(resp, text, sizeof(text), type, sizeof(type));
		if (job->sent_replaces &&
		    (resp->status == 409 || acme_problem_is(type, "alreadyReplaced"))) {
			log_warn("acme: newOrder for %s refused the replaces field (%s); ordering "
				 "without it", c->label, text);
			job->no_replaces = true;
			step_order(job);
			return;
		}
		acme_job_failed(job, acme_retry_after_of(resp), "newOrder: %s", text);
		return;
	}
	order = acme_body_object(resp);
	if (resp->location == NULL || order == NULL || acme_order_read(job, order, &status) != 0 ||
	    job->finalize_url == NULL) {
		json_decref(order);
		acme_job_failed(job, 0, "newOrder: answer is not an order with a Location, "
				"authorizations and finalize URL");
		return;
	}
	acme_replace_str(&job->order_url, resp->location);
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
		acme_job_failed(job, 0, "out of memory");
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
		acme_job_failed(job, 0, "out of memory");
		return;
	}
	acme_job_post(job, m->url_new_order, text, false, NULL, on_new_order);
	free(text);
}

/* Pause before the next poll: the CA's Retry-After within [1, 30] s, else 1 s. */
static time_t
poll_pause(const struct acme_http_response *resp)
{
	time_t t = acme_retry_after_of(resp), now = time(NULL);

	if (t <= now)
		return 1;
	return t - now > 30 ? 30 : t - now;
}

static void poll_authz(struct acme_job *job);

static void
on_challenge_started(struct acme_job *job, const struct acme_http_response *resp)
{
	if (resp->status != 200) {
		acme_job_http_failed(job, "challenge", resp);
		return;
	}
	acme_job_after(job, 1, poll_authz);
}

enum acme_authz_pick
acme_authz_choose(json_t *authz, unsigned challenges, struct acme_authz_choice *out)
{
	json_t *challs = json_object_get(authz, "challenges"), *ch, *pick = NULL;
	const char *want[2] = { NULL, NULL }, *type;
	size_t i, k;

	out->name = json_string_value(json_object_get(json_object_get(authz, "identifier"),
						      "value"));
	out->type = out->token = out->url = NULL;
	if (challenges & ACME_CHALLENGE_HTTP01)
		want[0] = "http-01";
	if (challenges & ACME_CHALLENGE_TLSALPN01)
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
	if (out->name == NULL || pick == NULL)
		return ACME_AUTHZ_NONE;
	out->type = json_string_value(json_object_get(pick, "type"));
	out->token = json_string_value(json_object_get(pick, "token"));
	out->url = json_string_value(json_object_get(pick, "url"));
	if (out->token == NULL || out->url == NULL || strlen(out->token) > 200 ||
	    strchr(out->token, '/') != NULL)
		return ACME_AUTHZ_UNUSABLE;
	return ACME_AUTHZ_OK;
}

/* Publish the answer to one challenge of <authz> and tell the CA to check it. */
static void
authz_start_challenge(struct acme_job *job, json_t *authz)
{
	struct acme_manager *m = job->m;
	struct acme_authz_choice pick;
	enum acme_authz_pick r = acme_authz_choose(authz, m->challenges, &pick);
	const char *name = pick.name, *type = pick.type, *token = pick.token, *url = pick.url;
	char keyauth[512];
	char **slot;
	size_t *count;

	if (r == ACME_AUTHZ_NONE) {
		acme_job_failed(job, 0,
				"authorization %s for %s offers none of the enabled challenge "
				"types", job->authz[job->authz_i], name ? name : "(no identifier)");
		return;
	}
	if (r == ACME_AUTHZ_UNUSABLE) {
		acme_job_failed(job, 0, "%s challenge for %s has no usable token or URL", type,
				name);
		return;
	}
	snprintf(keyauth, sizeof(keyauth), "%s.%s", token, m->thumbprint);
	if (strcmp(type, "http-01") == 0) {
		if (acme_challenge_http01_add(token, keyauth) != 0) {
			acme_job_failed(job, 0, "cannot publish the http-01 answer for %s", name);
			return;
		}
		slot = job->http01_tokens = realloc(job->http01_tokens,
						    (job->n_http01 + 1) * sizeof(char *));
		count = &job->n_http01;
		slot[*count] = strdup(token);
	} else {
		if (acme_challenge_tlsalpn01_add(name, keyauth) != 0) {
			acme_job_failed(job, 0, "cannot build the tls-alpn-01 certificate for %s",
					name);
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
	acme_replace_str(&job->chall_url, url);
	acme_job_post(job, url, "{}", false, NULL, on_challenge_started);
}

void
acme_authz_error(json_t *authz, char *out, size_t outlen)
{
	json_t *ch;
	size_t i;

	snprintf(out, outlen, "no error detail");
	json_array_foreach(json_object_get(authz, "challenges"), i, ch) {
		json_t *e = json_object_get(ch, "error");

		if (json_is_object(e)) {
			snprintf(out, outlen, "%s %s: %s",
				 member_str(ch, "type", "challenge"),
				 member_str(e, "type", "(no type)"),
				 member_str(e, "detail", "(no detail)"));
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
		acme_job_http_failed(job, "authorization", resp);
		return;
	}
	authz = acme_body_object(resp);
	status = authz ? json_string_value(json_object_get(authz, "status")) : NULL;
	if (status == NULL) {
		json_decref(authz);
		acme_job_failed(job, 0, "authorization %s: answer has no status",
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
		acme_job_after(job, poll_pause(resp), poll_authz);
	} else {
		acme_authz_error(authz, detail, sizeof(detail));
		acme_job_failed(job, 0, "authorization for %s is %s: %s", name ? name : "?", status,
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
	acme_job_post(job, job->authz[job->authz_i], "", false, NULL, on_authz_poll);
}

static void
step_authz(struct acme_job *job)
{
	if (job->authz_i >= job->n_authz) {
		step_finalize(job);
		return;
	}
	acme_job_post(job, job->authz[job->authz_i], "", false, NULL, on_authz_first);
}

static void
on_order_state(struct acme_job *job, const struct acme_http_response *resp)
{
	const char *status;
	json_t *order;

	if (resp->status != 200) {
		acme_job_http_failed(job, "order", resp);
		return;
	}
	order = acme_body_object(resp);
	if (order == NULL || acme_order_read(job, order, &status) != 0) {
		json_decref(order);
		acme_job_failed(job, 0, "order %s: answer is not an order object", job->order_url);
		return;
	}
	if (strcmp(status, "pending") == 0 || strcmp(status, "ready") == 0) {
		/* we have finalized already: wait for processing to start or end */
		acme_job_after(job, poll_pause(resp), poll_order);
	} else if (strcmp(status, "processing") == 0 ||
		   (strcmp(status, "valid") == 0 && job->cert_url == NULL)) {
		acme_job_after(job, poll_pause(resp), poll_order);
	} else if (strcmp(status, "valid") == 0) {
		step_download(job);
	} else {
		char detail[400] = "";
		json_t *e = json_object_get(order, "error");

		if (json_is_object(e))
			snprintf(detail, sizeof(detail), ": %s",
				 member_str(e, "detail", "(no detail)"));
		acme_job_failed(job, 0, "order %s is %s%s", job->order_url, status, detail);
	}
	json_decref(order);
}

static void
poll_order(struct acme_job *job)
{
	acme_job_post(job, job->order_url, "", false, NULL, on_order_state);
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
		acme_job_failed(job, 0, "cannot create the key and CSR for %s", c->label);
		return;
	}
	payload = json_pack("{s:s}", "csr", csr);
	free(csr);
	text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (text == NULL) {
		acme_job_failed(job, 0, "out of memory");
		return;
	}
	acme_job_post(job, job->finalize_url, text, false, NULL, on_order_state);
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
		acme_job_failed(job, 0, "cannot store the new certificate: %s", err);
		return;
	}
	pthread_mutex_lock(&m->mu);
	memset(&c->st, 0, sizeof(c->st));
	c->force = false;
	pthread_mutex_unlock(&m->mu);
	acme_cert_save_state(c);
	acme_job_end(job);
	/* adopt and deliver what is now in storage (same bytes) */
	c->have = false;
	if (!acme_cert_load(c, false, false)) {
		acme_cert_failed(c, 0, "the stored certificate cannot be read back");
		return;
	}
	atomic_fetch_add(&m->succeeded, 1);
	c->ari_check_at = time(NULL) + ACME_ARI_DEFAULT_RECHECK;
	acme_format_time(c->not_after, when, sizeof(when));
	log_info("acme: certificate for %s obtained, valid until %s", c->label, when);
	if (m->on_certificate != NULL)
		m->on_certificate((const char *const *)c->names, c->n_names, chain, key_pem,
				  c->not_after, m->cb_arg);
	acme_cert_schedule(c);
}

static void
on_cert_download(struct acme_job *job, const struct acme_http_response *resp)
{
	struct acme_cert *c = job->c;
	struct acme_cert_info info;
	char err[256], *key_pem;

	if (resp->status != 200) {
		acme_job_http_failed(job, "certificate download", resp);
		return;
	}
	if (resp->body == NULL || strlen(resp->body) != resp->body_len) {
		acme_job_failed(job, 0, "certificate download: body is not PEM text");
		return;
	}
	key_pem = acme_jws_key_pem(job->cert_key);
	if (key_pem == NULL) {
		acme_job_failed(job, 0, "cannot encode the certificate key");
		return;
	}
	if (acme_jws_cert_info(resp->body, key_pem, &info, err, sizeof(err)) != 0) {
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
		acme_job_failed(job, 0, "certificate download: %s", err);
		return;
	}
	if (!acme_cert_info_covers(&info, (const char *const *)c->names, c->n_names)) {
		acme_cert_info_clear(&info);
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
		acme_job_failed(job, 0, "the CA issued a certificate for other names than %s",
				c->label);
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
	acme_job_post(job, job->cert_url, "", false, "application/pem-certificate-chain",
		      on_cert_download);
}

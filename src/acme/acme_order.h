/*
 * acme_order: the RFC 8555 steps of one job, on the manager's event loop —
 * directory, account, newOrder, authorizations and their challenges,
 * finalize, polling, certificate download — and the ARI check (RFC 9773).
 * Every step ends in the next one, in acme_job_failed(), or (for an order)
 * in storing and delivering the certificate.  Called by acme_client.c only;
 * the readers of the CA's JSON documents below are public for the fuzz
 * harness (fuzz/fuzz_acme.c), which feeds them what a CA could answer.
 */
#ifndef PORTCULLIS_ACME_ORDER_H
#define PORTCULLIS_ACME_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

struct acme_job;
struct acme_manager;

/* GET the directory (once per manager), then run the steps of <job>'s kind:
 * an order, or an ARI check. */
void acme_order_start(struct acme_job *job);

/* ---- reading the CA's JSON documents (RFC 8555 7.1) ---- */

/*
 * Directory object <dir>: put its newNonce, newAccount and newOrder URLs
 * into <m> (replacing what was there) and renewalInfo when it is https
 * (else none).  *eab_required: meta.externalAccountRequired is true.
 * Returns 0, or -1 when one of the three is missing or not https.
 */
int acme_directory_read(struct acme_manager *m, json_t *dir, bool *eab_required);

/*
 * Order object <order>: *status (borrowed from <order>), and into <job> its
 * finalize and certificate URLs when present and its authorization URLs
 * when <job> has none yet.  Returns 0, or -1 when there is no status or an
 * authorization is not a string (what was adopted stays in <job>).
 */
int acme_order_read(struct acme_job *job, json_t *order, const char **status);

/* The challenge of an authorization to answer: strings borrowed from it. */
struct acme_authz_choice {
	const char *name;  /* identifier.value, NULL when absent */
	const char *type;  /* "http-01" or "tls-alpn-01" */
	const char *token; /* at most 200 bytes, no "/" (it becomes a file and URL name) */
	const char *url;
};
enum acme_authz_pick {
	ACME_AUTHZ_OK,       /* *out holds all four */
	ACME_AUTHZ_NONE,     /* no identifier, or none of the enabled types offered */
	ACME_AUTHZ_UNUSABLE, /* the chosen challenge lacks a usable token or URL */
};

/*
 * Authorization object <authz>: pick its challenge of the first enabled
 * type of <challenges> (ACME_CHALLENGE_* bits; http-01 first).
 */
enum acme_authz_pick acme_authz_choose(json_t *authz, unsigned challenges,
				       struct acme_authz_choice *out);

/* The error of the first challenge of <authz> that has one, as one line
 * ("type problem-type: detail", or "no error detail") into <out>. */
void acme_authz_error(json_t *authz, char *out, size_t outlen);

/* Renewal information <root> (RFC 9773): its suggestedWindow.  Returns 0
 * with *start < *end, or -1 when missing or malformed. */
int acme_ari_window(json_t *root, time_t *start, time_t *end);

#endif

/*
 * acme_order: the RFC 8555 steps of one job, on the manager's event loop —
 * directory, account, newOrder, authorizations and their challenges,
 * finalize, polling, certificate download — and the ARI check (RFC 9773).
 * Every step ends in the next one, in acme_job_failed(), or (for an order)
 * in storing and delivering the certificate.  Called by acme_client.c only.
 */
#ifndef PORTCULLIS_ACME_ORDER_H
#define PORTCULLIS_ACME_ORDER_H

struct acme_job;

/* GET the directory (once per manager), then run the steps of <job>'s kind:
 * an order, or an ARI check. */
void acme_order_start(struct acme_job *job);

#endif

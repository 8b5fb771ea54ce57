/*
 * worker: one thread with its own event_base, one server per listener (each
 * on its own duplicate of the listening socket bound by main), a DNS
 * resolver, and the upstream connection pools of the configuration
 * generation it serves.
 *
 * The main thread talks to a worker only through worker_reload and
 * worker_drain, which hand over a message under a lock and wake the worker's
 * loop; everything else a worker touches is its own.  Its transactions
 * (proxy.c, tcprelay.c) see it only through the struct txn_env and struct
 * txn_listener of generation.h.
 */
#ifndef PORTCULLIS_WORKER_H
#define PORTCULLIS_WORKER_H

#include <stdbool.h>
#include <stddef.h>

struct worker;
struct runtime;
struct tcprelay_shared;
struct server_share;
struct tls_store;

/*
 * Create worker <id> for the sockets <fds> (one per configured listener, in
 * config order, with their bound ports in <ports>) serving <rt> (the worker
 * takes its own reference).  <relays> (may be NULL) holds, per listener, the
 * process-wide state of a TCP relay listener (NULL for HTTP listeners);
 * <shares>[i] the HTTP listener's connection count shared by the workers
 * (server_set_share; NULL: none).
 * Listeners with "tls" speak HTTPS with the certificates of <tls> (the
 * process's one store; may be NULL when no listener has "tls").
 * Does not start the thread.  NULL on failure with a reason in <err>.
 */
struct worker *worker_new(unsigned id, struct runtime *rt, const int *fds, const int *ports,
			  size_t nfds, struct tcprelay_shared *const *relays,
			  struct server_share *const *shares, struct tls_store *tls,
			  char *err, size_t errlen);

/* Run the worker's loop in a new thread.  Returns 0 or -1. */
int worker_start(struct worker *w);

/* Ask the worker to serve <rt> from now on (it takes its own reference). */
void worker_reload(struct worker *w, struct runtime *rt);

/* Ask the worker to stop accepting, finish what it has (up to the drain
 * timeout of its configuration), then leave its loop. */
void worker_drain(struct worker *w);

/* Wait for the thread to end, then free everything.  Accepts NULL. */
void worker_join_free(struct worker *w);

/* True once the worker's loop has ended (safe to call from another thread). */
bool worker_exited(struct worker *w);

#endif

/*
 * worker: one thread with its own event_base, one server per listener (each
 * on its own duplicate of the listening socket bound by main), a DNS
 * resolver, and the upstream connection pools of the configuration
 * generation it serves.
 *
 * The main thread talks to a worker only through worker_reload and
 * worker_drain, which hand over a message under a lock and wake the worker's
 * loop; everything else a worker touches is its own.
 */
#ifndef PORTCULLIS_WORKER_H
#define PORTCULLIS_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/runtime.h"

struct event_base;
struct evdns_base;
struct event;
struct server;
struct upstream_pool;
struct tcprelay;
struct tcprelay_shared;
struct tls_store;
struct claims;

/* A worker's view of one configuration generation. */
struct worker_gen {
	struct worker *worker;
	struct runtime *rt;           /* one reference */
	struct upstream_pool **pools; /* [upstream index] */
	struct claims *claims;        /* the shared SAML replay store (saml.replay_store
				       * "redis"), else NULL */
	int refs;                     /* transactions using it, +1 while current */
};

/* One listener as seen by one worker (the argument of its request callbacks). */
struct worker_listener {
	struct worker *worker;
	struct server *server;   /* NULL on a raw TCP relay listener */
	struct tcprelay *relay;  /* "type": "tcp" listeners, else NULL */
	size_t index;            /* position in config.listeners */
	char port[8];      /* for X-Forwarded-Port */
	bool tls;
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct evdns_base *dns;
	struct worker_listener *listeners;
	size_t nlisteners;
	struct worker_gen *gen;  /* current generation */
	int in_flight;           /* transactions running on this worker */
	bool draining;
	atomic_bool exited;      /* set when the loop has ended (read by main) */
	uint64_t rng[2];         /* request-id generator state */

	/* Main → worker messages. */
	pthread_mutex_t lock;
	struct runtime *pending; /* a new generation to take */
	bool drain_requested;
	struct event *wake;
	struct event *drain_timer;
	struct event *drain_poll;
};

/*
 * Create worker <id> for the sockets <fds> (one per configured listener, in
 * config order, with their bound ports in <ports>) serving <rt> (the worker
 * takes its own reference).  <relays> (may be NULL) holds, per listener, the
 * process-wide state of a TCP relay listener (NULL for HTTP listeners).
 * Listeners with "tls" speak HTTPS with the certificates of <tls> (the
 * process's one store; may be NULL when no listener has "tls").
 * Does not start the thread.  NULL on failure with a reason in <err>.
 */
struct worker *worker_new(unsigned id, struct runtime *rt, const int *fds, const int *ports,
			  size_t nfds, struct tcprelay_shared *const *relays, struct tls_store *tls,
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

/* Drop a transaction's reference to <gen>; frees a retired generation. */
void worker_gen_unref(struct worker_gen *gen);

/* Called by the proxy when a transaction ends (drain bookkeeping). */
void worker_transaction_ended(struct worker *w);

#endif

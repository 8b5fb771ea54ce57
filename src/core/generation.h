/*
 * generation: a worker's view of one configuration generation, and the
 * environment a worker lends to the transactions it runs.
 *
 * A struct worker_gen holds one runtime (the immutable config plus what every
 * worker shares) and what this worker built from it: the upstream pools and
 * the SAML claims store.  It is reference-counted: the worker holds one
 * reference while it is current, every transaction one more until it ends, so
 * a reload swaps in a new generation while requests on the old one finish.
 *
 * A struct txn_env is what proxy.c (HTTP transactions) and tcprelay.c (raw
 * TCP connections) need from their worker, without seeing the worker: its
 * loop and resolver, its current generation, the request-id generator, the
 * bound ports, and the count of transactions in flight.  That count is kept
 * here only: txn_env_begin and txn_env_end are the one place a transaction
 * starts and ends; ended_cb lets the worker finish a drain.
 *
 * Everything here runs on one worker thread; nothing is locked.
 */
#ifndef PORTCULLIS_GENERATION_H
#define PORTCULLIS_GENERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/runtime.h"

struct event_base;
struct evdns_base;
struct upstream_pool;
struct claims;
struct websocket_set;

/* A worker's view of one configuration generation. */
struct worker_gen {
	struct runtime *rt;           /* one reference */
	struct upstream_pool **pools; /* [upstream index] */
	struct claims *claims;        /* the shared SAML replay store (saml.replay_store
				       * "redis"), else NULL */
	int refs;                     /* transactions using it, +1 while current */
};

/*
 * Build worker <worker_id>'s generation for <rt> (a reference is taken) on
 * <base> and <dns>: one upstream pool per configured upstream, and the claims
 * store when the config asks for redis.  Returns it with one reference (the
 * caller's, "current"), or NULL when out of memory.
 */
struct worker_gen *gen_new(struct event_base *base, struct evdns_base *dns, unsigned worker_id,
			   struct runtime *rt);

/* Take one more reference; returns <g>. */
struct worker_gen *worker_gen_ref(struct worker_gen *g);

/* Drop a reference; the last one frees the pools, the claims store and the
 * runtime reference.  Accepts NULL. */
void worker_gen_unref(struct worker_gen *g);

/* What a worker lends to its transactions (see above). */
struct txn_env {
	struct event_base *base;
	struct evdns_base *dns;
	struct worker_gen *gen;       /* current generation (one reference held) */
	uint64_t rng[2];              /* request-id generator state */
	char (*ports)[8];             /* [listener index] bound port, as text */
	size_t nports;
	int in_flight;                /* transactions begun and not yet ended */
	void (*ended_cb)(void *arg);  /* after each txn_env_end (may be NULL) */
	struct websocket_set *websockets; /* its WebSocket tunnels (proxy/websocket.h) */
	void *ended_arg;
};

/* One listener as its transactions see it (the argument of its callbacks). */
struct txn_listener {
	struct txn_env *env;
	size_t index;       /* position in config.listeners */
	const char *port;   /* env->ports[index], for X-Forwarded-Port */
	bool tls;           /* HTTPS: X-Forwarded-Proto, HSTS */
};

/* A transaction begins: counts it and returns the current generation with a
 * reference the transaction owns (give it back to txn_env_end). */
struct worker_gen *txn_env_begin(struct txn_env *env);

/* A transaction that began with txn_env_begin ends: drops its reference to
 * <gen>, uncounts it, then calls env->ended_cb. */
void txn_env_end(struct txn_env *env, struct worker_gen *gen);

#endif

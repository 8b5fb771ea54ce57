/*
 * connlimit: connection limits of one listener, for every worker: how many
 * connections are open in all, and per client address (IPv6 per /64).
 * TCP relays (proxy/tcprelay.c) and HTTP listeners (proxy/listenlimit.c)
 * count their connections here; a WebSocket tunnel keeps the slot of the
 * connection it came from until it ends.
 *
 * Thread-safe: the total is atomic, the per-client table is under a lock.
 */
#ifndef PORTCULLIS_CONNLIMIT_H
#define PORTCULLIS_CONNLIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "access/netaddr.h"

struct connlimit;
struct connlimit_client;

/* A new, empty table.  NULL when out of memory. */
struct connlimit *connlimit_new(void);

/* Free (only once no slot is held any more).  Accepts NULL. */
void connlimit_free(struct connlimit *cl);

/* Count one more connection in all; returns the count with it.  Give it back
 * with connlimit_total_release. */
uint64_t connlimit_total_take(struct connlimit *cl);
void connlimit_total_release(struct connlimit *cl);

/* Take a slot of client <a>: its entry, or NULL when the client already
 * holds <limit> (0 = no limit) or out of memory.  Give it back with
 * connlimit_client_release. */
struct connlimit_client *connlimit_client_take(struct connlimit *cl, const struct netaddr *a,
					       uint64_t limit);
void connlimit_client_release(struct connlimit_client *c);

/* Why connlimit_take refused. */
enum connlimit_refusal {
	CONNLIMIT_MAX,        /* <max> connections open in all */
	CONNLIMIT_PER_CLIENT, /* the client holds <per_client> already */
	CONNLIMIT_NOMEM,
};

/* Both at once, for a connection whose client is known: count it in all
 * (up to <max>) and take a slot of client <a> (up to <per_client>; 0 = no
 * limit).  Returns the client's entry, which stands for both (give it back
 * with connlimit_put), or NULL with the reason in <why>. */
struct connlimit_client *connlimit_take(struct connlimit *cl, const struct netaddr *a,
					uint64_t max, uint64_t per_client,
					enum connlimit_refusal *why);
void connlimit_put(struct connlimit_client *c);

#endif

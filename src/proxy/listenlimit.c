/* listenlimit: connection limits of HTTP listeners; see listenlimit.h. */
#include "proxy/listenlimit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "access/access.h"
#include "access/connlimit.h"
#include "access/netaddr.h"
#include "base/log.h"
#include "config/config_model.h"
#include "core/generation.h"
#include "http/conn.h"

#define LISTENLIMIT_LISTENERS 256

/* One listener's counts, for every worker (made on first use, kept for the
 * life of the process: listeners change only with a restart). */
struct listen_state {
	struct connlimit *cl;
	struct access_counter *refused_max, *refused_per_client;
};

static _Atomic(struct listen_state *) states[LISTENLIMIT_LISTENERS];

static struct listen_state *
state_of(size_t index)
{
	struct listen_state *st, *expected = NULL;
	char labels[200];

	if (index >= LISTENLIMIT_LISTENERS)
		return NULL;
	st = atomic_load(&states[index]);
	if (st != NULL)
		return st;
	st = calloc(1, sizeof(*st));
	if (st == NULL || (st->cl = connlimit_new()) == NULL) {
		free(st);
		return NULL;
	}
	snprintf(labels, sizeof(labels),
		 "rule=\"listeners[%zu].max_connections\",reason=\"max_connections\"", index);
	st->refused_max = access_counter_get("portcullis_access_refusals_total", labels);
	snprintf(labels, sizeof(labels),
		 "rule=\"listeners[%zu].max_connections_per_client\","
		 "reason=\"max_connections_per_client\"",
		 index);
	st->refused_per_client = access_counter_get("portcullis_access_refusals_total", labels);
	if (!atomic_compare_exchange_strong(&states[index], &expected, st)) {
		connlimit_free(st->cl); /* another worker was first */
		free(st);
		st = expected;
	}
	return st;
}

static void *
listen_admit(const struct sockaddr *peer, void *arg)
{
	const struct txn_listener *tl = arg;
	const struct config *cfg = tl->env->gen->rt->cfg;
	const struct config_listener *l;
	struct listen_state *st = state_of(tl->index);
	struct netaddr a = {0};
	enum connlimit_refusal why = CONNLIMIT_NOMEM;
	struct connlimit_client *slot;
	char text[64];

	if (st == NULL || tl->index >= cfg->nlisteners)
		return NULL;
	l = &cfg->listeners[tl->index];
	netaddr_from_sockaddr(peer, &a); /* (a socketpair's peer: one client) */
	slot = connlimit_take(st->cl, &a, l->max_connections, l->max_connections_per_client, &why);
	if (slot != NULL)
		return slot;
	netaddr_format(&a, text, sizeof(text));
	if (why == CONNLIMIT_MAX) {
		access_counter_add(st->refused_max, 1);
		log_warn("listener %s: %llu connections open (max_connections); refused %s",
			 l->name, (unsigned long long)l->max_connections, text);
	} else if (why == CONNLIMIT_PER_CLIENT) {
		access_counter_add(st->refused_per_client, 1);
		log_info("access refused for %s: %llu connections already open "
			 "(%s.max_connections_per_client)",
			 text, (unsigned long long)l->max_connections_per_client, l->name);
	}
	return NULL;
}

static void
listen_release(void *slot, void *arg)
{
	(void)arg;
	connlimit_put(slot);
}

const struct server_admission listenlimit_admission = {
	listen_admit,
	listen_release,
};

void
listenlimit_put(void *slot)
{
	connlimit_put(slot);
}

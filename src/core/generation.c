/* generation: configuration generations and transaction accounting; see generation.h. */
#include "core/generation.h"

#include <stdio.h>
#include <stdlib.h>

#include "auth/claims.h"
#include "config/config_model.h"
#include "proxy/upstream.h"

struct worker_gen *
gen_new(struct event_base *base, struct evdns_base *dns, unsigned worker_id, struct runtime *rt)
{
	const struct config *cfg = rt->cfg;
	struct worker_gen *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->rt = runtime_ref(rt);
	g->refs = 1;
	g->pools = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*g->pools));
	if (g->pools == NULL)
		goto fail;
	if (cfg->redis != NULL && cfg->saml != NULL && cfg->saml->replay_store == REPLAY_STORE_REDIS) {
		char name[32];

		snprintf(name, sizeof(name), "worker %u", worker_id);
		g->claims = claims_new(base, dns, cfg->redis, name);
		if (g->claims == NULL)
			goto fail;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		g->pools[i] = upstream_pool_new(base, dns, &cfg->upstreams[i], rt->health,
						cfg->max_response_header_bytes);
		if (g->pools[i] == NULL)
			goto fail;
	}
	return g;
fail:
	g->refs = 1;
	worker_gen_unref(g);
	return NULL;
}

struct worker_gen *
worker_gen_ref(struct worker_gen *g)
{
	g->refs++;
	return g;
}

void
worker_gen_unref(struct worker_gen *g)
{
	if (g == NULL || --g->refs > 0)
		return;
	for (size_t i = 0; g->pools && i < g->rt->cfg->nupstreams; i++)
		upstream_pool_free(g->pools[i]);
	free(g->pools);
	claims_free(g->claims);
	runtime_unref(g->rt);
	free(g);
}

struct worker_gen *
txn_env_begin(struct txn_env *env)
{
	env->in_flight++;
	return worker_gen_ref(env->gen);
}

void
txn_env_end(struct txn_env *env, struct worker_gen *gen)
{
	worker_gen_unref(gen);
	env->in_flight--;
	if (env->ended_cb != NULL)
		env->ended_cb(env->ended_arg);
}

/* runtime: a configuration generation shared by the workers; see runtime.h. */
#include "core/runtime.h"

#include <stdlib.h>
#include <time.h>

#include "base/metrics.h"
#include "base/reaper.h"
#include "proxy/upstream.h"

struct runtime *
runtime_new(struct config *cfg, unsigned generation)
{
	struct runtime *rt = calloc(1, sizeof(*rt));

	if (rt == NULL)
		goto fail;
	atomic_init(&rt->refs, 1);
	rt->generation = generation;
	rt->loaded_at = time(NULL);
	rt->cfg = cfg;
	rt->health = upstream_health_new(cfg);
	rt->route_metrics = calloc(cfg->nroutes_total ? cfg->nroutes_total : 1,
				   sizeof(*rt->route_metrics));
	if (rt->health == NULL || rt->route_metrics == NULL)
		goto fail;
	for (size_t s = 0; s < cfg->nsites; s++)
		for (size_t r = 0; r < cfg->sites[s].nroutes; r++) {
			const struct config_route *route = &cfg->sites[s].routes[r];

			rt->route_metrics[route->index] = metrics_route_get(route->name);
		}
	return rt;
fail:
	if (rt) {
		upstream_health_free(rt->health);
		free(rt->route_metrics);
		free(rt);
	}
	config_unref(cfg);
	return NULL;
}

struct runtime *
runtime_ref(struct runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
	return rt;
}

static void
runtime_free(void *arg)
{
	struct runtime *rt = arg;

	upstream_health_free(rt->health);
	free(rt->route_metrics);
	config_unref(rt->cfg);
	free(rt);
}

void
runtime_unref(struct runtime *rt)
{
	if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
		return;
	/* The last reference usually goes on a worker's loop (its last request
	 * ended): freeing the config may wait for other threads (reaper.h). */
	reaper_defer(runtime_free, rt);
}

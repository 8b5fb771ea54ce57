/*
 * runtime: one configuration generation as the workers use it: the immutable
 * config plus what is built from it once and shared by every worker thread
 * (upstream health, per-route metrics).  Reference-counted: a reload makes a
 * new runtime; requests still running keep the old one alive until they end.
 */
#ifndef PORTCULLIS_RUNTIME_H
#define PORTCULLIS_RUNTIME_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "config/config_model.h"

struct upstream_health;
struct metrics_route;

struct runtime {
	atomic_int refs;
	unsigned generation;
	time_t loaded_at;                /* when it was built (the status page) */
	struct config *cfg;              /* one reference held */
	struct upstream_health *health;
	struct metrics_route **route_metrics; /* [route->index] */
};

/* Build a runtime around <cfg> (takes over the caller's reference).  NULL on
 * allocation failure (then the reference is dropped). */
struct runtime *runtime_new(struct config *cfg, unsigned generation);

/* Take one more reference. */
struct runtime *runtime_ref(struct runtime *rt);

/* Drop a reference; the last frees the runtime and its config, on the
 * reaper thread when it runs (base/reaper.h), never waiting for it.
 * Accepts NULL. */
void runtime_unref(struct runtime *rt);

#endif

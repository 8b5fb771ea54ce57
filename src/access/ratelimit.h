/*
 * ratelimit: token buckets per (client key, rule), shared by every worker
 * thread, in a table of fixed size: memory does not grow with the number of
 * clients.  The table is set-associative (8 entries per set, one lock per
 * set); a new key takes a free entry of its set or evicts the entry of that
 * set used least recently, which then starts again from a full bucket.
 *
 * Pure: no libevent.  Callers pass the time (seconds on a monotonic clock),
 * so tests control it.  Used by access.c.
 */
#ifndef PORTCULLIS_RATELIMIT_H
#define PORTCULLIS_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* A table holding at least <capacity> buckets (rounded up to a power of two,
 * at least 8).  NULL when out of memory. */
struct ratelimit *ratelimit_new(size_t capacity);

/* Free the table.  Accepts NULL. */
void ratelimit_free(struct ratelimit *rl);

/* Number of buckets the table holds. */
size_t ratelimit_capacity(const struct ratelimit *rl);

/*
 * Take one token from the bucket of (<k0>, <k1>, <rule>), which refills at
 * <rate> tokens per second up to <burst> (a new bucket starts full).
 * Returns true when a token was there.  Otherwise returns false and stores
 * in *wait (when not NULL) the seconds until one will be.
 */
bool ratelimit_take(struct ratelimit *rl, uint64_t k0, uint64_t k1, uint32_t rule, double rate,
		    double burst, double now, double *wait);

#endif

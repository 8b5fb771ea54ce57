/*
 * access: who may use a listener, a site or a route.  Compiled rule sets
 * (CIDR allow/deny, country allow/deny, per-client rate limits) and the
 * counters behind the portcullis_access_* metrics.  Pure: no libevent
 * header.  Addresses and CIDR entries come from netaddr.h; the evaluation
 * of the rules a configuration holds for one client is access_check.h.
 *
 * Semantics (docs/access.md):
 *   - Within one CIDR block (one "allow" list plus one "deny" list) the
 *     matching entry with the longest prefix decides; at equal length deny
 *     wins.  An address that matches nothing is refused when the block has
 *     an allow list and let through otherwise.
 *   - The listener's block is a gate of its own.  A route's "access" keys
 *     replace the site's, key group by key group (addresses, countries,
 *     rate): the most specific level that says something decides.
 *   - Country rules apply to addresses no CIDR allow entry matched: an
 *     explicit address allow is more specific than a country.
 *
 * Called by the config loader (building), config_model.c (freeing) and
 * access_check.c (evaluating).
 */
#ifndef PORTCULLIS_ACCESS_H
#define PORTCULLIS_ACCESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access/netaddr.h"

/* A process-wide counter shown on /metrics, found by its labels. */
struct access_counter {
	struct access_counter *next;
	_Atomic uint64_t value;
	char metric[48];
	char labels[240]; /* rendered label pairs: rule="...",reason="..." */
};

/*
 * The counter <metric>{<labels>} (labels already rendered, e.g.
 * `rule="sites[0].access.deny[1]",reason="ip"`), created at 0 on first use
 * and kept for the life of the process (it survives reloads).  NULL only
 * when out of memory.  Takes a lock: call it when building, not per request.
 */
struct access_counter *access_counter_get(const char *metric, const char *labels);

/* Add <n> to a counter (NULL is ignored). */
static inline void
access_counter_add(struct access_counter *c, uint64_t n)
{
	if (c != NULL)
		atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

/* Render every access counter in Prometheus text format into a new string
 * the caller frees (NULL when out of memory). */
char *access_metrics_render(void);

/* Free the counter registry (at exit). */
void access_metrics_shutdown(void);

/* ---- CIDR blocks ------------------------------------------------------ */

struct access_cidrs;

/*
 * Compile an allow list and a deny list (CIDR strings, bare addresses mean
 * /32 or /128) found at JSON path <path> (used in rule names such as
 * "sites[0].access.deny[2]" and in errors).  NULL with a one-line reason in
 * <err> on a bad entry ("allow[3] \"10.0.0.0/33\": prefix length must be
 * 0..32").
 */
struct access_cidrs *access_cidrs_new(const char *path, const char *const *allow, size_t nallow,
				      const char *const *deny, size_t ndeny, char *err,
				      size_t errlen);

/* Free a block.  Accepts NULL. */
void access_cidrs_free(struct access_cidrs *c);

enum access_match {
	ACCESS_NO_MATCH,  /* no entry matched and there is no allow list */
	ACCESS_ALLOWED,   /* an allow entry matched */
	ACCESS_DENIED,    /* a deny entry matched, or the allow list did not match */
};

/*
 * Evaluate <c> for <a>.  On ACCESS_DENIED, *rule (when not NULL) names the
 * deciding rule ("listeners[1].deny[0] 198.51.100.0/24", or
 * "sites[0].access.allow: no entry matched") and its refusal counter is
 * incremented.  A NULL block gives ACCESS_NO_MATCH.
 */
enum access_match access_cidrs_check(const struct access_cidrs *c, const struct netaddr *a,
				     const char **rule);

/* ---- per-site / per-route policy ----------------------------------------- */

/* What one "access" object says; each part NULL/0 when absent. */
struct access_block {
	struct access_cidrs *cidrs;        /* "allow" / "deny" */
	netaddr_country *countries_allow;   /* "countries_allow" */
	size_t ncountries_allow;
	netaddr_country *countries_deny;    /* "countries_deny" */
	size_t ncountries_deny;
	bool has_countries;
	double rate;                       /* "rate.per_second"; 0 = no limit */
	double burst;                      /* "rate.burst" */
	uint32_t rate_id;                  /* distinct per block with a rate */
	char *path;                        /* JSON path of the block, "sites[0].access" */
	struct access_counter *country_refusals;
	struct access_counter *rate_refusals;
	struct access_counter *rate_limited;
};

/* Free what a block owns (not the block itself).  Accepts NULL. */
void access_block_clear(struct access_block *b);

/*
 * The rules that apply to one route: each key group from the route's block
 * when it has one, else from its site's.  Pointers are borrowed from the
 * config that owns both blocks.
 */
struct access_policy {
	const struct access_block *ip;        /* NULL: no address rules */
	const struct access_block *countries; /* NULL: no country rules */
	const struct access_block *rate;      /* NULL: no rate limit */
};

/* Build the policy of a route from its own block and its site's (either NULL). */
void access_policy_merge(struct access_policy *p, const struct access_block *route,
			 const struct access_block *site);

#endif

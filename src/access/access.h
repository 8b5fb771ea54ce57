/*
 * access: who may use a listener, a site or a route.  Compiled rule sets
 * (CIDR allow/deny, country allow/deny, per-client rate limits), their
 * evaluation for one client address, and the counters behind the
 * portcullis_access_* metrics.  Pure: no libevent header; the GeoIP lookup
 * and the token buckets come from geoip.h and ratelimit.h.
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
 * Called by config.c (building), proxy.c (access_check_request after
 * routing) and tcprelay.c (access_check_address at accept).
 */
#ifndef PORTCULLIS_ACCESS_H
#define PORTCULLIS_ACCESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct config_route;

/* A client address, parsed once.  IPv4-mapped IPv6 is stored as IPv4. */
struct access_addr {
	int family;            /* AF_INET or AF_INET6; 0 = none */
	uint32_t v4;           /* host byte order */
	uint64_t v6[2];        /* host byte order, high then low */
};

/* Parse "10.1.1.5" / "2001:db8::1" / "::ffff:10.1.1.5".  Returns 0 or -1. */
int access_addr_parse(const char *text, struct access_addr *out);

/* From a socket address (AF_INET / AF_INET6).  Returns 0 or -1. */
int access_addr_from_sockaddr(const struct sockaddr *sa, struct access_addr *out);

/* Back to a socket address (port 0); returns its length, 0 when empty. */
socklen_t access_addr_to_sockaddr(const struct access_addr *a, struct sockaddr_storage *ss);

/* Text form ("10.1.1.5", "2001:db8::1") into <out> (>= 46 bytes). */
void access_addr_format(const struct access_addr *a, char *out, size_t outlen);

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
enum access_match access_cidrs_check(const struct access_cidrs *c, const struct access_addr *a,
				     const char **rule);

/* ---- per-site / per-route policy ----------------------------------------- */

/* A country code as two upper-case letters packed in 16 bits; 0 = unknown. */
typedef uint16_t access_country;

/* What one "access" object says; each part NULL/0 when absent. */
struct access_block {
	struct access_cidrs *cidrs;        /* "allow" / "deny" */
	access_country *countries_allow;   /* "countries_allow" */
	size_t ncountries_allow;
	access_country *countries_deny;    /* "countries_deny" */
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

/* Parse "DE" / "de" into a country code; 0 when not two ASCII letters. */
access_country access_country_parse(const char *s);

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

/* ---- the request path --------------------------------------------------- */

/* What access_check_request decided. */
struct access_outcome {
	int status;            /* 0 = go on, 403 = refused, 429 = rate limited */
	unsigned retry_after;  /* seconds, for 429 */
	const char *rule;      /* the deciding rule (for the log), NULL when allowed */
	char country[3];       /* ISO code of the client, "" when unknown or no GeoIP */
	uint32_t asn;          /* 0 when unknown */
};

/*
 * Decide whether the client <client> (text address, as proxy.c has it after
 * PROXY protocol / X-Forwarded-For) may use <route> (reached through
 * <jump_route> when not NULL) on listener number <listener> of <cfg>.
 * Checks, in order: the listener's CIDR block, then the policy of
 * <jump_route> and of <route> (addresses, countries, rate limit).  Fills
 * <out> (country and ASN whenever GeoIP is configured, for upstream
 * headers) and returns its status: 0, 403 or 429.  A refusal is logged at
 * info level with the rule that refused and counted.  No allocation; one
 * GeoIP lookup (cached per thread) when GeoIP is configured.
 */
int access_check_request(const struct config *cfg, size_t listener,
			 const struct config_route *jump_route, const struct config_route *route,
			 const char *client, struct access_outcome *out);

/*
 * The listener-level check alone, for raw TCP connections: true when
 * listener number <listener> of <cfg> admits <a>.  A refusal is logged and
 * counted.
 */
bool access_check_address(const struct config *cfg, size_t listener, const struct access_addr *a);

#endif

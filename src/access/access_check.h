/*
 * access_check: the access rules of a configuration applied to one client,
 * on the request path.  proxy.c calls access_check_request after routing
 * (listener block, then the policy of the route and of the route it was
 * reached through, then GeoIP country and the rate limit); tcprelay.c calls
 * access_check_address when it accepts a raw TCP connection (listener
 * block only).  A refusal is logged with the rule that refused and counted.
 *
 * Apart from access.c because it reads struct config, which itself holds
 * the compiled blocks of access.h: with the two in one module the config
 * model and the access rules would include each other.
 */
#ifndef PORTCULLIS_ACCESS_CHECK_H
#define PORTCULLIS_ACCESS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct access_block;
struct config;
struct config_route;
struct netaddr;

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

/* access_check_request for a client already admitted (a tunnel checked
 * again after a reload): the same rules but the rate limit, which it
 * passed when it came. */
int access_check_again(const struct config *cfg, size_t listener,
		       const struct config_route *jump_route, const struct config_route *route,
		       const char *client, struct access_outcome *out);

/*
 * access_check_request as portcullis --explain asks it: the same rules in
 * the same order, without side effects (no log line, no refusal or country
 * counter, no rate token taken).  The rate blocks a request would take a
 * token from (the "site" route's, then the route's; those reached before a
 * refusal) go to <rate_blocks>, their number to *<nrate_blocks>.  The CIDR
 * refusal counters of access.h still count (in the explaining process).
 */
int access_check_explain(const struct config *cfg, size_t listener,
			 const struct config_route *jump_route, const struct config_route *route,
			 const char *client, struct access_outcome *out,
			 const struct access_block *rate_blocks[2], size_t *nrate_blocks);

/*
 * The listener-level check alone, for raw TCP connections: true when
 * listener number <listener> of <cfg> admits <a>.  A refusal is logged and
 * counted.
 */
bool access_check_address(const struct config *cfg, size_t listener, const struct netaddr *a);

#endif

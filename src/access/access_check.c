/* access_check: access rules applied to one client; see access_check.h. */
#include "access/access_check.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "access/access.h"
#include "access/geoip.h"
#include "access/netaddr.h"
#include "access/ratelimit.h"
#include "base/log.h"
#include "config/config_model.h"

static bool
access_country_in(netaddr_country c, const netaddr_country *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == c)
			return true;
	return false;
}

static double
access_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How a check runs: a request, a tunnel checked again (no rate limit), or
 * --explain (no log line, no counter, no token taken: the rate blocks that
 * would be asked are noted instead). */
enum access_mode {
	ACCESS_MODE_REQUEST,
	ACCESS_MODE_AGAIN,
	ACCESS_MODE_EXPLAIN,
};

/* Where ACCESS_MODE_EXPLAIN notes the rate blocks. */
struct access_rates {
	const struct access_block **blocks;
	size_t n;
};

static void
access_log_refusal(enum access_mode mode, const char *client, const char *what, const char *rule)
{
	if (mode != ACCESS_MODE_EXPLAIN)
		log_info("access refused for %s: %s (%s)", client, what, rule);
}

/* Evaluate one policy; 0, 403 or 429 (filling <out>). */
static int
access_apply_policy(const struct config *cfg, const struct access_policy *p,
		    const struct netaddr *a, const char *client, netaddr_country country,
		    struct access_outcome *out, enum access_mode mode, struct access_rates *rates)
{
	enum access_match m = ACCESS_NO_MATCH;

	if (p->ip != NULL) {
		m = access_cidrs_check(p->ip->cidrs, a, &out->rule);
		if (m == ACCESS_DENIED) {
			access_log_refusal(mode, client, "address", out->rule);
			return out->status = 403;
		}
	}
	if (p->countries != NULL && m != ACCESS_ALLOWED) {
		const struct access_block *b = p->countries;
		bool refused = false;

		if (access_country_in(country, b->countries_deny, b->ncountries_deny)) {
			refused = true;
			out->rule = b->path;
		} else if (b->ncountries_allow > 0 &&
			   !access_country_in(country, b->countries_allow, b->ncountries_allow)) {
			refused = true;
			out->rule = b->path;
		}
		if (refused) {
			char what[40];

			if (mode != ACCESS_MODE_EXPLAIN)
				access_counter_add(b->country_refusals, 1);
			snprintf(what, sizeof(what), "country %s", out->country[0] ? out->country
										  : "unknown");
			access_log_refusal(mode, client, what, out->rule);
			return out->status = 403;
		}
	}
	if (mode == ACCESS_MODE_EXPLAIN && p->rate != NULL && cfg->ratelimit != NULL) {
		rates->blocks[rates->n++] = p->rate;
	} else if (mode == ACCESS_MODE_REQUEST && p->rate != NULL && cfg->ratelimit != NULL) {
		const struct access_block *b = p->rate;
		double wait = 0;
		uint64_t k0 = a->family == AF_INET ? a->v4 : a->v6[0]; /* IPv6: per /64 */

		if (!ratelimit_take(cfg->ratelimit, k0, (uint64_t)a->family, b->rate_id, b->rate,
				    b->burst, access_now(), &wait)) {
			double s = ceil(wait);

			access_counter_add(b->rate_refusals, 1);
			access_counter_add(b->rate_limited, 1);
			out->rule = b->path;
			out->retry_after = s < 1 ? 1 : s > 86400 ? 86400 : (unsigned)s;
			log_debug("rate limited %s (%s.rate)", client, b->path);
			return out->status = 429;
		}
	}
	return 0;
}

/* True when <route>'s policy (no route: NULL) has nothing access_apply_policy checks. */
static bool
access_policy_empty(const struct config_route *route)
{
	return route == NULL ||
	       (route->policy.ip == NULL && route->policy.countries == NULL && route->policy.rate == NULL);
}

static int
access_check(const struct config *cfg, size_t listener, const struct config_route *jump_route,
	     const struct config_route *route, const char *client, struct access_outcome *out,
	     enum access_mode mode, struct access_rates *rates)
{
	struct netaddr a;
	netaddr_country country = 0;

	memset(out, 0, sizeof(*out));
	/* Nothing to check (the usual open route): skip parsing the address. */
	if ((listener >= cfg->nlisteners || cfg->listeners[listener].acl == NULL) &&
	    cfg->geoip == NULL && access_policy_empty(jump_route) && access_policy_empty(route))
		return 0;
	if (netaddr_parse(client, &a) < 0)
		return 0; /* no IP client (cannot happen on TCP listeners): nothing to match */
	if (listener < cfg->nlisteners && cfg->listeners[listener].acl != NULL &&
	    access_cidrs_check(cfg->listeners[listener].acl, &a, &out->rule) == ACCESS_DENIED) {
		access_log_refusal(mode, client, "address", out->rule);
		return out->status = 403;
	}
	if (cfg->geoip != NULL) {
		geoip_lookup(cfg->geoip, &a, &country, &out->asn);
		if (country != 0) {
			out->country[0] = (char)(country >> 8);
			out->country[1] = (char)(country & 0xff);
			out->country[2] = '\0';
		}
	}
	if (jump_route != NULL &&
	    access_apply_policy(cfg, &jump_route->policy, &a, client, country, out, mode, rates) != 0)
		return out->status;
	if (route != NULL &&
	    access_apply_policy(cfg, &route->policy, &a, client, country, out, mode, rates) != 0)
		return out->status;
	out->rule = NULL;
	return 0;
}

int
access_check_request(const struct config *cfg, size_t listener,
		     const struct config_route *jump_route, const struct config_route *route,
		     const char *client, struct access_outcome *out)
{
	return access_check(cfg, listener, jump_route, route, client, out, ACCESS_MODE_REQUEST, NULL);
}

int
access_check_again(const struct config *cfg, size_t listener,
		   const struct config_route *jump_route, const struct config_route *route,
		   const char *client, struct access_outcome *out)
{
	return access_check(cfg, listener, jump_route, route, client, out, ACCESS_MODE_AGAIN, NULL);
}

int
access_check_explain(const struct config *cfg, size_t listener,
		     const struct config_route *jump_route, const struct config_route *route,
		     const char *client, struct access_outcome *out,
		     const struct access_block *rate_blocks[2], size_t *nrate_blocks)
{
	struct access_rates rates = {.blocks = rate_blocks, .n = 0};
	int status = access_check(cfg, listener, jump_route, route, client, out,
				  ACCESS_MODE_EXPLAIN, &rates);

	*nrate_blocks = rates.n;
	return status;
}

bool
access_check_address(const struct config *cfg, size_t listener, const struct netaddr *a)
{
	const char *rule = NULL;
	char text[INET6_ADDRSTRLEN];

	if (listener >= cfg->nlisteners || cfg->listeners[listener].acl == NULL)
		return true;
	if (access_cidrs_check(cfg->listeners[listener].acl, a, &rule) != ACCESS_DENIED)
		return true;
	netaddr_format(a, text, sizeof(text));
	access_log_refusal(ACCESS_MODE_REQUEST, text, "address", rule);
	return false;
}

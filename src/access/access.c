/*
 * access: compiled access rules and their evaluation; see access.h.
 *
 * A CIDR block keeps its entries in two flat arrays (IPv4, IPv6) sorted by
 * prefix length, longest first, deny before allow at equal length: the
 * first entry that matches is the most specific one and decides.  A scan of
 * 50 IPv4 entries is one AND and one compare each, no allocation.
 */
#include "access/access.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "access/geoip.h"
#include "base/log.h"
#include "access/ratelimit.h"

/* ---- addresses ---------------------------------------------------------- */

static uint64_t
access_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
access_addr_from_in6(const struct in6_addr *a6, struct access_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		const unsigned char *b = a6->s6_addr;

		out->family = AF_INET;
		out->v4 = ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) |
			  ((uint32_t)b[14] << 8) | (uint32_t)b[15];
		return;
	}
	out->family = AF_INET6;
	out->v6[0] = access_be64(a6->s6_addr);
	out->v6[1] = access_be64(a6->s6_addr + 8);
}

int
access_addr_parse(const char *text, struct access_addr *out)
{
	struct in_addr a4;
	struct in6_addr a6;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return -1;
	if (inet_pton(AF_INET, text, &a4) == 1) {
		out->family = AF_INET;
		out->v4 = ntohl(a4.s_addr);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1) {
		access_addr_from_in6(&a6, out);
		return 0;
	}
	return -1;
}

int
access_addr_from_sockaddr(const struct sockaddr *sa, struct access_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		out->family = AF_INET;
		out->v4 = ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		access_addr_from_in6(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out);
		return 0;
	}
	return -1;
}

socklen_t
access_addr_to_sockaddr(const struct access_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(a->v4);
		return sizeof(*sin);
	}
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		for (int i = 0; i < 8; i++) {
			sin6->sin6_addr.s6_addr[i] = (unsigned char)(a->v6[0] >> (56 - 8 * i));
			sin6->sin6_addr.s6_addr[8 + i] = (unsigned char)(a->v6[1] >> (56 - 8 * i));
		}
		return sizeof(*sin6);
	}
	return 0;
}

void
access_addr_format(const struct access_addr *a, char *out, size_t outlen)
{
	struct sockaddr_storage ss;

	out[0] = '\0';
	if (access_addr_to_sockaddr(a, &ss) == 0)
		return;
	if (a->family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outlen);
}

/* ---- counters ------------------------------------------------------------ */

static pthread_mutex_t access_counters_lock = PTHREAD_MUTEX_INITIALIZER;
static struct access_counter *access_counters;

struct access_counter *
access_counter_get(const char *metric, const char *labels)
{
	struct access_counter *c, **tail;

	pthread_mutex_lock(&access_counters_lock);
	for (tail = &access_counters; (c = *tail) != NULL; tail = &c->next)
		if (strcmp(c->metric, metric) == 0 && strcmp(c->labels, labels) == 0)
			goto out;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto out;
	snprintf(c->metric, sizeof(c->metric), "%s", metric);
	snprintf(c->labels, sizeof(c->labels), "%s", labels);
	*tail = c; /* appended: the page keeps one metric's lines together */
out:
	pthread_mutex_unlock(&access_counters_lock);
	return c;
}

static const struct {
	const char *name;
	const char *type;
	const char *help;
} access_metric_help[] = {
	{"portcullis_access_refusals_total", "counter",
	 "Requests and connections refused by access rules, by rule and reason."},
	{"portcullis_rate_limited_requests_total", "counter",
	 "Requests answered 429 by a rate limit, by rule."},
	{"portcullis_tcp_relay_connections_total", "counter",
	 "TCP relay connections accepted (after access checks), by listener."},
	{"portcullis_tcp_relay_connections_open", "gauge", "TCP relay connections open, by listener."},
	{"portcullis_tcp_relay_bytes_total", "counter",
	 "Bytes relayed, by listener and direction (in: client to upstream)."},
};

char *
access_metrics_render(void)
{
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	out[0] = '\0';
	pthread_mutex_lock(&access_counters_lock);
	for (size_t m = 0; m < sizeof(access_metric_help) / sizeof(access_metric_help[0]); m++) {
		bool header = false;

		for (struct access_counter *c = access_counters; c != NULL; c = c->next) {
			char line[512];
			int n = 0;

			if (strcmp(c->metric, access_metric_help[m].name) != 0)
				continue;
			if (!header) {
				n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n",
					     c->metric, access_metric_help[m].help, c->metric,
					     access_metric_help[m].type);
				header = true;
			}
			n += snprintf(line + n, sizeof(line) - (size_t)n, "%s{%s} %llu\n", c->metric,
				      c->labels,
				      (unsigned long long)atomic_load_explicit(&c->value,
									memory_order_relaxed));
			if (len + (size_t)n + 1 > cap) {
				char *bigger;

				while (len + (size_t)n + 1 > cap)
					cap *= 2;
				bigger = realloc(out, cap);
				if (bigger == NULL) {
					free(out);
					out = NULL;
					goto done;
				}
				out = bigger;
			}
			memcpy(out + len, line, (size_t)n + 1);
			len += (size_t)n;
		}
	}
done:
	pthread_mutex_unlock(&access_counters_lock);
	return out;
}

void
access_metrics_shutdown(void)
{
	pthread_mutex_lock(&access_counters_lock);
	while (access_counters != NULL) {
		struct access_counter *next = access_counters->next;

		free(access_counters);
		access_counters = next;
	}
	pthread_mutex_unlock(&access_counters_lock);
}

/* ---- CIDR blocks ----------------------------------------------------------- */

struct access_cidr {
	unsigned prefix;
	bool allow;
	uint32_t net4, mask4;
	uint64_t net6[2], mask6[2];
	char *rule;                    /* "sites[0].access.deny[2] 198.51.100.0/24" */
	struct access_counter *refusals;
};

struct access_cidrs {
	struct access_cidr *v4;
	size_t n4;
	struct access_cidr *v6;
	size_t n6;
	bool has_allow;
	char *nomatch_rule;                  /* "<path>.allow: no entry matched" */
	struct access_counter *nomatch_refusals;
};

static uint64_t
access_mask64(unsigned bits)
{
	return bits == 0 ? 0 : bits >= 64 ? UINT64_MAX : UINT64_MAX << (64 - bits);
}

/* Parse one CIDR into <e>; 0, or -1 with a reason in <why>. */
static int
access_cidr_parse(const char *cidr, struct access_cidr *e, bool *v6, const char **why)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	size_t alen = slash != NULL ? (size_t)(slash - cidr) : strlen(cidr);
	struct access_addr a;
	unsigned prefix = 0, max;

	if (alen == 0 || alen >= sizeof(addr)) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	memcpy(addr, cidr, alen);
	addr[alen] = '\0';
	if (access_addr_parse(addr, &a) < 0) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	{
		struct in6_addr tmp;
		bool mapped = inet_pton(AF_INET6, addr, &tmp) == 1 && IN6_IS_ADDR_V4MAPPED(&tmp);

		max = a.family == AF_INET && !mapped ? 32 : 128;
		prefix = max;
		if (slash != NULL) {
			const char *p = slash + 1;
			size_t n = 0;

			prefix = 0;
			for (; p[n] != '\0'; n++) {
				if (p[n] < '0' || p[n] > '9' || n >= 3) {
					*why = max == 32 ? "prefix length must be 0..32"
							 : "prefix length must be 0..128";
					return -1;
				}
				prefix = prefix * 10 + (unsigned)(p[n] - '0');
			}
			if (n == 0 || prefix > max) {
				*why = max == 32 ? "prefix length must be 0..32"
						 : "prefix length must be 0..128";
				return -1;
			}
		}
		if (mapped) {
			if (prefix < 96) {
				/* Shorter than the mapped range: an IPv6 entry over ::ffff:0:0/96's parents. */
				a.family = AF_INET6;
				a.v6[0] = access_be64(tmp.s6_addr);
				a.v6[1] = access_be64(tmp.s6_addr + 8);
			} else {
				prefix -= 96;
			}
		}
	}
	e->prefix = prefix;
	if (a.family == AF_INET) {
		e->mask4 = prefix == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - prefix));
		e->net4 = a.v4 & e->mask4;
		*v6 = false;
	} else {
		e->mask6[0] = access_mask64(prefix >= 64 ? 64 : prefix);
		e->mask6[1] = access_mask64(prefix > 64 ? prefix - 64 : 0);
		e->net6[0] = a.v6[0] & e->mask6[0];
		e->net6[1] = a.v6[1] & e->mask6[1];
		*v6 = true;
	}
	return 0;
}

static int
access_cidr_cmp(const void *pa, const void *pb)
{
	const struct access_cidr *a = pa, *b = pb;

	if (a->prefix != b->prefix)
		return a->prefix > b->prefix ? -1 : 1;
	if (a->allow != b->allow)
		return a->allow ? 1 : -1; /* deny first */
	return 0;
}

/* Label value for a counter: the rule path without the address. */
static void
access_rule_labels(char *out, size_t outlen, const char *rule, const char *reason)
{
	size_t n = strcspn(rule, " :");

	snprintf(out, outlen, "rule=\"%.*s\",reason=\"%s\"", (int)n, rule, reason);
}

struct access_cidrs *
access_cidrs_new(const char *path, const char *const *allow, size_t nallow,
		 const char *const *deny, size_t ndeny, char *err, size_t errlen)
{
	struct access_cidrs *c = calloc(1, sizeof(*c));
	size_t total = nallow + ndeny;
	char labels[256];

	if (c == NULL)
		goto nomem;
	c->v4 = calloc(total ? total : 1, sizeof(*c->v4));
	c->v6 = calloc(total ? total : 1, sizeof(*c->v6));
	if (c->v4 == NULL || c->v6 == NULL)
		goto nomem;
	for (size_t k = 0; k < total; k++) {
		bool is_allow = k < nallow;
		size_t i = is_allow ? k : k - nallow;
		const char *cidr = is_allow ? allow[i] : deny[i];
		const char *list = is_allow ? "allow" : "deny";
		struct access_cidr e = {0};
		const char *why = NULL;
		bool v6 = false;

		if (cidr == NULL || access_cidr_parse(cidr, &e, &v6, &why) < 0) {
			snprintf(err, errlen, "%s[%zu] \"%.80s\": %s", list, i, cidr ? cidr : "",
				 why ? why : "missing");
			goto fail;
		}
		e.allow = is_allow;
		{
			int n = snprintf(NULL, 0, "%s%s%s[%zu] %s", path, path[0] ? "." : "", list, i,
					 cidr);

			e.rule = n < 0 ? NULL : malloc((size_t)n + 1);
			if (e.rule == NULL)
				goto nomem;
			snprintf(e.rule, (size_t)n + 1, "%s%s%s[%zu] %s", path, path[0] ? "." : "",
				 list, i, cidr);
		}
		if (!is_allow) {
			access_rule_labels(labels, sizeof(labels), e.rule, "ip");
			e.refusals = access_counter_get("portcullis_access_refusals_total", labels);
		}
		if (v6)
			c->v6[c->n6++] = e;
		else
			c->v4[c->n4++] = e;
		if (is_allow)
			c->has_allow = true;
	}
	qsort(c->v4, c->n4, sizeof(*c->v4), access_cidr_cmp);
	qsort(c->v6, c->n6, sizeof(*c->v6), access_cidr_cmp);
	if (c->has_allow) {
		int n = snprintf(NULL, 0, "%s%sallow: no entry matched", path, path[0] ? "." : "");

		c->nomatch_rule = malloc((size_t)n + 1);
		if (c->nomatch_rule == NULL)
			goto nomem;
		snprintf(c->nomatch_rule, (size_t)n + 1, "%s%sallow: no entry matched", path,
			 path[0] ? "." : "");
		access_rule_labels(labels, sizeof(labels), c->nomatch_rule, "ip");
		c->nomatch_refusals = access_counter_get("portcullis_access_refusals_total", labels);
	}
	return c;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	access_cidrs_free(c);
	return NULL;
}

void
access_cidrs_free(struct access_cidrs *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; c->v4 != NULL && i < c->n4; i++)
		free(c->v4[i].rule);
	for (size_t i = 0; c->v6 != NULL && i < c->n6; i++)
		free(c->v6[i].rule);
	free(c->v4);
	free(c->v6);
	free(c->nomatch_rule);
	free(c);
}

enum access_match
access_cidrs_check(const struct access_cidrs *c, const struct access_addr *a, const char **rule)
{
	const struct access_cidr *hit = NULL;

	if (c == NULL)
		return ACCESS_NO_MATCH;
	if (a->family == AF_INET) {
		for (size_t i = 0; i < c->n4; i++) {
			if ((a->v4 & c->v4[i].mask4) == c->v4[i].net4) {
				hit = &c->v4[i];
				break;
			}
		}
	} else if (a->family == AF_INET6) {
		for (size_t i = 0; i < c->n6; i++) {
			const struct access_cidr *e = &c->v6[i];

			if ((a->v6[0] & e->mask6[0]) == e->net6[0] &&
			    (a->v6[1] & e->mask6[1]) == e->net6[1]) {
				hit = e;
				break;
			}
		}
	}
	if (hit != NULL) {
		if (hit->allow)
			return ACCESS_ALLOWED;
		access_counter_add(hit->refusals, 1);
		if (rule != NULL)
			*rule = hit->rule;
		return ACCESS_DENIED;
	}
	if (!c->has_allow)
		return ACCESS_NO_MATCH;
	access_counter_add(c->nomatch_refusals, 1);
	if (rule != NULL)
		*rule = c->nomatch_rule;
	return ACCESS_DENIED;
}

/* ---- blocks and policies ---------------------------------------------------- */

access_country
access_country_parse(const char *s)
{
	char a, b;

	if (s == NULL || s[0] == '\0' || s[1] == '\0' || s[2] != '\0')
		return 0;
	a = s[0] & ~0x20;
	b = s[1] & ~0x20;
	if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z')
		return 0;
	return (access_country)(((unsigned)a << 8) | (unsigned)b);
}

void
access_block_clear(struct access_block *b)
{
	if (b == NULL)
		return;
	access_cidrs_free(b->cidrs);
	free(b->countries_allow);
	free(b->countries_deny);
	free(b->path);
	memset(b, 0, sizeof(*b));
}

void
access_policy_merge(struct access_policy *p, const struct access_block *route,
		    const struct access_block *site)
{
	memset(p, 0, sizeof(*p));
	if (route != NULL && route->cidrs != NULL)
		p->ip = route;
	else if (site != NULL && site->cidrs != NULL)
		p->ip = site;
	if (route != NULL && route->has_countries)
		p->countries = route;
	else if (site != NULL && site->has_countries)
		p->countries = site;
	if (route != NULL && route->rate > 0)
		p->rate = route;
	else if (site != NULL && site->rate > 0)
		p->rate = site;
}

/* ---- evaluation --------------------------------------------------------------- */

static bool
access_country_in(access_country c, const access_country *list, size_t n)
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

static void
access_log_refusal(const char *client, const char *what, const char *rule)
{
	log_info("access refused for %s: %s (%s)", client, what, rule);
}

/* Evaluate one policy; 0, 403 or 429 (filling <out>). */
static int
access_apply_policy(const struct config *cfg, const struct access_policy *p,
		    const struct access_addr *a, const char *client, access_country country,
		    struct access_outcome *out)
{
	enum access_match m = ACCESS_NO_MATCH;

	if (p->ip != NULL) {
		m = access_cidrs_check(p->ip->cidrs, a, &out->rule);
		if (m == ACCESS_DENIED) {
			access_log_refusal(client, "address", out->rule);
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

			access_counter_add(b->country_refusals, 1);
			snprintf(what, sizeof(what), "country %s", out->country[0] ? out->country
										  : "unknown");
			access_log_refusal(client, what, out->rule);
			return out->status = 403;
		}
	}
	if (p->rate != NULL && cfg->ratelimit != NULL) {
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

int
access_check_request(const struct config *cfg, size_t listener,
		     const struct config_route *jump_route, const struct config_route *route,
		     const char *client, struct access_outcome *out)
{
	struct access_addr a;
	access_country country = 0;

	memset(out, 0, sizeof(*out));
	if (access_addr_parse(client, &a) < 0)
		return 0; /* no IP client (cannot happen on TCP listeners): nothing to match */
	if (listener < cfg->nlisteners && cfg->listeners[listener].acl != NULL &&
	    access_cidrs_check(cfg->listeners[listener].acl, &a, &out->rule) == ACCESS_DENIED) {
		access_log_refusal(client, "address", out->rule);
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
	    access_apply_policy(cfg, &jump_route->policy, &a, client, country, out) != 0)
		return out->status;
	if (route != NULL && access_apply_policy(cfg, &route->policy, &a, client, country, out) != 0)
		return out->status;
	out->rule = NULL;
	return 0;
}

bool
access_check_address(const struct config *cfg, size_t listener, const struct access_addr *a)
{
	const char *rule = NULL;
	char text[INET6_ADDRSTRLEN];

	if (listener >= cfg->nlisteners || cfg->listeners[listener].acl == NULL)
		return true;
	if (access_cidrs_check(cfg->listeners[listener].acl, a, &rule) != ACCESS_DENIED)
		return true;
	access_addr_format(a, text, sizeof(text));
	access_log_refusal(text, "address", rule);
	return false;
}

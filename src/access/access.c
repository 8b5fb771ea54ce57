/*
 * access: compiled access rules (CIDR blocks, per-site/route blocks and
 * policies, refusal counters); see access.h.  Their evaluation for one
 * request or connection is access_check.c.
 *
 * A CIDR block keeps its entries in two flat arrays (IPv4, IPv6) sorted by
 * prefix length, longest first, deny before allow at equal length: the
 * first entry that matches is the most specific one and decides.  A scan of
 * 50 IPv4 entries is one AND and one compare each, no allocation.
 */
#include "access/access.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	{"portcullis_websocket_tunnels_open", "gauge", "WebSocket tunnels open."},
	{"portcullis_websocket_tunnels_total", "counter", "WebSocket tunnels opened (upstream 101 accepted)."},
	{"portcullis_websocket_tunnels_ended_total", "counter", "WebSocket tunnels ended, by reason."},
	{"portcullis_websocket_bytes_total", "counter",
	 "Bytes through WebSocket tunnels, by direction (in: client to upstream)."},
	{"portcullis_websocket_refusals_total", "counter",
	 "WebSocket upgrades that did not become a tunnel, by reason."},
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
			n += snprintf(line + n, sizeof(line) - (size_t)n,
				      c->labels[0] ? "%s{%s} %llu\n" : "%s%s %llu\n", c->metric,
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

/* Parse one CIDR into <e>; 0, or -1 with a reason in <why>. */
static int
access_cidr_parse(const char *cidr, struct access_cidr *e, bool *v6, const char **why)
{
	struct netaddr_cidr c;

	if (netaddr_cidr_parse(cidr, &c, why) < 0)
		return -1;
	e->prefix = c.prefix;
	*v6 = c.net.family == AF_INET6;
	e->net4 = c.net.v4;
	e->mask4 = c.mask4;
	e->net6[0] = c.net.v6[0];
	e->net6[1] = c.net.v6[1];
	e->mask6[0] = c.mask6[0];
	e->mask6[1] = c.mask6[1];
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
access_cidrs_check(const struct access_cidrs *c, const struct netaddr *a, const char **rule)
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

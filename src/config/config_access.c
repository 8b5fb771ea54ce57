/*
 * config_access: "access" blocks (CIDR lists, countries, rates), TCP relay
 * listeners and "geoip" (docs/access.md).
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/geoip.h"
#include "access/netaddr.h"
#include "config/config.h"

/* ------------------------------------------------------------------ */
/* Access rules, TCP relay listeners, GeoIP (docs/access.md)            */

static const char *const config_access_keys[] = { "allow", "deny", "countries_allow",
						  "countries_deny", "rate", NULL };
static const char *const config_rate_keys[] = { "per_second", "burst", NULL };
static const char *const config_geoip_keys[] = { "database", "asn_database", "country_header",
						 "asn_header", NULL };
static const char *const config_listener_types[] = { "http", "tcp", NULL };

/* A list of CIDR strings; false (error reported) when any entry is bad. */
static bool
config_cidr_list(struct config_loader *ld, const char *path, const json_t *v, char ***out,
		 size_t *n)
{
	if (v == NULL)
		return true;
	if (!config_string_list(ld, path, v, false,
				"an array of CIDR strings such as [\"10.1.1.0/24\", \"2001:db8::/32\"]",
				out, n))
		return false;
	for (size_t i = 0; i < *n; i++)
		if ((*out)[i] == NULL)
			return false;
	return true;
}

/* Compile allow/deny found under <path>; NULL when both are empty or on error. */
static struct access_cidrs *
config_build_cidrs(struct config_loader *ld, const char *path, char **allow, size_t nallow,
		   char **deny, size_t ndeny)
{
	struct access_cidrs *c;
	char why[512];

	if (nallow + ndeny == 0)
		return NULL;
	c = access_cidrs_new(path, (const char *const *)allow, nallow, (const char *const *)deny,
			     ndeny, why, sizeof why);
	if (c == NULL)
		config_error(ld, path, "%s", why);
	return c;
}

static void
config_parse_countries(struct config_loader *ld, const char *path, const json_t *v,
		       netaddr_country **out, size_t *nout)
{
	char **list = NULL;
	size_t n = 0;
	char ip[CONFIG_JPATH_MAX];

	if (!config_string_list(ld, path, v, false,
				"an array of ISO 3166 country codes such as [\"DE\", \"FR\"]", &list,
				&n))
		return;
	*out = calloc(n ? n : 1, sizeof **out);
	if (*out == NULL) {
		ld->oom = true;
		config_free_strings(list, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		netaddr_country c;

		if (list[i] == NULL)
			continue;
		c = netaddr_country_parse(list[i]);
		if (c == 0) {
			config_error(ld, config_jidx(ip, path, i),
				     "\"%s\" is not a two-letter ISO 3166 country code", list[i]);
			continue;
		}
		(*out)[(*nout)++] = c;
	}
	config_free_strings(list, n);
}

static void
config_parse_rate(struct config_loader *ld, const char *path, const json_t *v,
		  struct access_block *b)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *ps, *bu;
	double rate;
	uint64_t burst;

	if (config_object(ld, path, v, config_rate_keys) == NULL)
		return;
	ps = json_object_get(v, "per_second");
	if (ps == NULL) {
		config_missing(ld, path, "per_second", "requests per second, such as 10 or 0.5");
		return;
	}
	config_jkey(kp, path, "per_second");
	if (!json_is_number(ps)) {
		config_type_error(ld, kp, "a number of requests per second", ps);
		return;
	}
	rate = json_number_value(ps);
	if (!(rate > 0) || rate > 1e6) {
		config_error(ld, kp, "%g is out of range; write a number above 0 and at most 1000000",
			     rate);
		return;
	}
	burst = rate < 1 ? 1 : (uint64_t)ceil(rate);
	if ((bu = json_object_get(v, "burst")) != NULL &&
	    !config_uint(ld, config_jkey(kp, path, "burst"), bu, UNIT_COUNT, 1, 1000000, &burst))
		return;
	b->rate = rate;
	b->burst = (double)burst;
	b->rate_id = ++ld->rate_ids;
}

/* An "access" object of a site or a route, at <path>. */
void
config_parse_access(struct config_loader *ld, const char *path, const json_t *v,
		    struct access_block *b)
{
	char kp[CONFIG_JPATH_MAX];
	char labels[320];
	char **allow = NULL, **deny = NULL;
	size_t nallow = 0, ndeny = 0;
	const json_t *f;
	bool ok;

	if (config_object(ld, path, v, config_access_keys) == NULL)
		return;
	b->path = strdup(path);
	if (b->path == NULL) {
		ld->oom = true;
		return;
	}
	ok = config_cidr_list(ld, config_jkey(kp, path, "allow"), json_object_get(v, "allow"),
			      &allow, &nallow);
	ok = config_cidr_list(ld, config_jkey(kp, path, "deny"), json_object_get(v, "deny"), &deny,
			      &ndeny) && ok;
	if (ok)
		b->cidrs = config_build_cidrs(ld, path, allow, nallow, deny, ndeny);
	config_free_strings(allow, nallow);
	config_free_strings(deny, ndeny);

	if ((f = json_object_get(v, "countries_allow")) != NULL) {
		config_parse_countries(ld, config_jkey(kp, path, "countries_allow"), f,
				       &b->countries_allow, &b->ncountries_allow);
		b->has_countries = true;
	}
	if ((f = json_object_get(v, "countries_deny")) != NULL) {
		config_parse_countries(ld, config_jkey(kp, path, "countries_deny"), f,
				       &b->countries_deny, &b->ncountries_deny);
		b->has_countries = true;
	}
	if (b->has_countries && ld->cfg->geoip_database == NULL)
		config_error(ld, path,
			     "country rules need a country database: add \"geoip\": {\"database\": "
			     "\"/path/GeoLite2-Country.mmdb\"}");
	if ((f = json_object_get(v, "rate")) != NULL)
		config_parse_rate(ld, config_jkey(kp, path, "rate"), f, b);

	snprintf(labels, sizeof labels, "rule=\"%s\",reason=\"country\"", path);
	if (b->has_countries)
		b->country_refusals = access_counter_get("portcullis_access_refusals_total", labels);
	if (b->rate > 0) {
		snprintf(labels, sizeof labels, "rule=\"%s.rate\",reason=\"rate_limit\"", path);
		b->rate_refusals = access_counter_get("portcullis_access_refusals_total", labels);
		snprintf(labels, sizeof labels, "rule=\"%s.rate\"", path);
		b->rate_limited = access_counter_get("portcullis_rate_limited_requests_total", labels);
	}
}

/* "upstream" of a TCP listener: an upstream name or one "host:port". */
static void
config_parse_relay_upstream(struct config_loader *ld, const char *path, const json_t *v,
			    struct config_listener *l)
{
	struct config *cfg = ld->cfg;
	struct config_upstream *u;
	char why[512];
	char *port = NULL;

	l->relay_upstream = config_string(ld, path, v);
	if (l->relay_upstream == NULL)
		return;
	l->relay_connect_timeout = cfg->connect_timeout;
	if (strchr(l->relay_upstream, ':') == NULL) {
		u = config_find_upstream(cfg, l->relay_upstream);
		if (u == NULL) {
			if (ld->upstreams_known)
				config_error(ld, path,
					     "no upstream named \"%s\"; write an upstream name or "
					     "\"host:port\"",
					     l->relay_upstream);
			return;
		}
		if (u->tls_ctx != NULL || u->tls_server_name != NULL)
			config_error(ld, path,
				     "upstream \"%s\" speaks TLS (\"tls\"); a TCP relay passes bytes "
				     "as they come, so the client must speak TLS itself: write its "
				     "\"host:port\" here instead",
				     l->relay_upstream);
		l->relay_servers = calloc(u->nservers ? u->nservers : 1, sizeof *l->relay_servers);
		if (l->relay_servers == NULL) {
			ld->oom = true;
			return;
		}
		for (size_t i = 0; i < u->nservers; i++) {
			struct config_server *s = &l->relay_servers[l->nrelay_servers++];

			s->address = strdup(u->servers[i].address ? u->servers[i].address : "");
			s->host = strdup(u->servers[i].host ? u->servers[i].host : "");
			s->port = u->servers[i].port;
			if (s->address == NULL || s->host == NULL)
				ld->oom = true;
		}
		l->relay_connect_timeout = u->connect_timeout;
		return;
	}
	l->relay_servers = calloc(1, sizeof *l->relay_servers);
	if (l->relay_servers == NULL) {
		ld->oom = true;
		return;
	}
	l->nrelay_servers = 1;
	l->relay_servers[0].address = strdup(l->relay_upstream);
	if (l->relay_servers[0].address == NULL) {
		ld->oom = true;
		return;
	}
	if (config_split_hostport(l->relay_upstream, &l->relay_servers[0].host, &port, why,
				  sizeof why) < 0) {
		config_error(ld, path, "%s", why);
		return;
	}
	if (l->relay_servers[0].host[0] == '\0')
		config_error(ld, path, "\"%s\": missing host; write host:port (\"minio:9000\")",
			     l->relay_upstream);
	if (strcmp(port, "0") == 0)
		config_error(ld, path, "\"%s\": port must be from 1 to 65535", l->relay_upstream);
	l->relay_servers[0].port = (uint16_t)strtoul(port, NULL, 10);
	free(port);
}

/* The access and relay keys of one listener (after upstreams are known). */
static void
config_parse_listener_access(struct config_loader *ld, const char *path, const json_t *v,
			     struct config_listener *l)
{
	static const char *const tcp_only[] = { "upstream", "idle_timeout", NULL };
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	int type = LISTENER_HTTP;
	bool ok;

	if (!json_is_object(v))
		return;
	l->idle_timeout = 600;
	l->max_connections = 10000;
	l->max_connections_per_client = 100;
	if (config_enum(ld, config_jkey(kp, path, "type"), json_object_get(v, "type"),
			config_listener_types, &type))
		l->type = (enum config_listener_type)type;
	ok = config_cidr_list(ld, config_jkey(kp, path, "allow"), json_object_get(v, "allow"),
			      &l->allow, &l->nallow);
	ok = config_cidr_list(ld, config_jkey(kp, path, "deny"), json_object_get(v, "deny"),
			      &l->deny, &l->ndeny) && ok;
	if (ok)
		l->acl = config_build_cidrs(ld, path, l->allow, l->nallow, l->deny, l->ndeny);
	config_bool(ld, config_jkey(kp, path, "proxy_protocol"), json_object_get(v, "proxy_protocol"),
		    &l->proxy_protocol);
	if (l->proxy_protocol && ld->cfg->ntrusted_proxies == 0)
		config_error(ld, kp,
			     "a PROXY header is believed only from trusted proxies; list the "
			     "addresses of the proxies that send it in \"trusted_proxies\"");
	if (l->type != LISTENER_TCP)
		l->max_connections_per_client = 1000; /* browsers behind one NAT address */
	if ((f = json_object_get(v, "max_connections")) != NULL)
		config_uint(ld, config_jkey(kp, path, "max_connections"), f, UNIT_COUNT, 1, 10000000,
			    &l->max_connections);
	if ((f = json_object_get(v, "max_connections_per_client")) != NULL)
		config_uint(ld, config_jkey(kp, path, "max_connections_per_client"), f, UNIT_COUNT, 0,
			    10000000, &l->max_connections_per_client);
	if (l->type != LISTENER_TCP) {
		for (size_t i = 0; tcp_only[i] != NULL; i++)
			if (json_object_get(v, tcp_only[i]) != NULL)
				config_error(ld, config_jkey(kp, path, tcp_only[i]),
					     "only for raw TCP listeners (\"type\": \"tcp\")");
		return;
	}
	if ((f = json_object_get(v, "upstream")) == NULL)
		config_missing(ld, path, "upstream",
			       "where a TCP listener relays to: an upstream name or \"host:port\"");
	else
		config_parse_relay_upstream(ld, config_jkey(kp, path, "upstream"), f, l);
	config_seconds(ld, config_jkey(kp, path, "idle_timeout"), json_object_get(v, "idle_timeout"),
		       &l->idle_timeout);
}

void
config_parse_listeners_access(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "listeners");
	char ip[CONFIG_JPATH_MAX];

	if (!json_is_array(v) || ld->cfg->listeners == NULL)
		return;
	for (size_t i = 0; i < ld->cfg->nlisteners && i < json_array_size(v); i++)
		config_parse_listener_access(ld, config_jidx(ip, "listeners", i),
					     json_array_get(v, i), &ld->cfg->listeners[i]);
}

static void
config_parse_geoip_header(struct config_loader *ld, const char *key, const json_t *v,
			  char **out)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f = json_object_get(v, key);

	if (f == NULL)
		return;
	config_jkey(kp, "geoip", key);
	*out = config_string(ld, kp, f);
	if (*out != NULL && !config_token_ok(*out))
		config_error(ld, kp, "\"%s\" is not a valid header name", *out);
}

void
config_parse_geoip(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "geoip");
	const json_t *f;
	char why[1024];

	if (v == NULL || json_is_null(v) || config_object(ld, "geoip", v, config_geoip_keys) == NULL)
		return;
	if ((f = json_object_get(v, "database")) != NULL)
		cfg->geoip_database = config_string(ld, "geoip.database", f);
	if ((f = json_object_get(v, "asn_database")) != NULL)
		cfg->geoip_asn_database = config_string(ld, "geoip.asn_database", f);
	config_parse_geoip_header(ld, "country_header", v, &cfg->geoip_country_header);
	config_parse_geoip_header(ld, "asn_header", v, &cfg->geoip_asn_header);
	if (json_object_get(v, "database") == NULL && json_object_get(v, "asn_database") == NULL) {
		config_missing(ld, "geoip", "database",
			       "the path of a MaxMind country database (.mmdb)");
		return;
	}
	if ((json_object_get(v, "database") != NULL && cfg->geoip_database == NULL) ||
	    (json_object_get(v, "asn_database") != NULL && cfg->geoip_asn_database == NULL))
		return;
	cfg->geoip = geoip_open(cfg->geoip_database, cfg->geoip_asn_database, why, sizeof why);
	if (cfg->geoip == NULL)
		config_error(ld,
			     cfg->geoip_database != NULL && strstr(why, cfg->geoip_database) == why
				     ? "geoip.database"
				     : "geoip.asn_database",
			     "%s", why);
}

/*
 * config: JSON file -> struct config.  See config.h for the contract and
 * docs/config.md for the format.
 *
 * The loader walks the whole document once and keeps going after an error,
 * so one run reports every problem.  Each error is one line starting with
 * the JSON path of the offending value.  Cross references (route -> upstream,
 * route -> site, duplicate names and hosts, the default site) are checked
 * after the walk.
 */
#include "config/config_internal.h"

#include "access/access.h"
#include "config/envsubst.h"
#include "access/geoip.h"
#include "tls/localca.h"
#include "access/ipacl.h"
#include "http/pathnorm.h"
#include "core/privdrop.h"
#include "access/ratelimit.h"
#include "proxy/router.h"
#include "auth/saml.h"
#include "auth/session.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Freeing                                                              */

void
config_listener_clear(struct config_listener *l)
{
	if (l == NULL)
		return;
	free(l->name);
	free(l->address);
	free(l->host);
	free(l->port);
	config_free_strings(l->allow, l->nallow);
	config_free_strings(l->deny, l->ndeny);
	access_cidrs_free(l->acl);
	free(l->relay_upstream);
	for (size_t i = 0; l->relay_servers != NULL && i < l->nrelay_servers; i++) {
		free(l->relay_servers[i].address);
		free(l->relay_servers[i].host);
	}
	free(l->relay_servers);
}

static void
config_headers_free(struct config_header *h, size_t n)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static void
config_header_ops_clear(struct config_header_ops *ops)
{
	config_headers_free(ops->set, ops->nset);
	config_headers_free(ops->add, ops->nadd);
	config_free_strings(ops->remove, ops->nremove);
}

static void
config_route_clear(struct config_route *r)
{
	free(r->name);
	config_free_strings(r->paths, r->npaths);
	config_free_strings(r->exact, r->nexact);
	config_free_strings(r->prefixes, r->nprefixes);
	free(r->strip_prefix);
	free(r->host);
	config_header_ops_clear(&r->request_headers);
	config_header_ops_clear(&r->response_headers);
	free(r->body);
	free(r->content_type);
	free(r->redirect_to);
	access_block_clear(&r->access);
	config_free_strings(r->allow_bearer, r->nallow_bearer);
}

static void
config_saml_free(struct config_saml *sc)
{
	if (sc == NULL)
		return;
	saml_free(sc->sp);
	session_keys_free(sc->keys);
	free(sc->idp_metadata);
	free(sc->idp_metadata_cache);
	free(sc->certs_dir);
	free(sc->base_url);
	free(sc->sp_entity_id);
	free(sc->prefix);
	free(sc->acs_path);
	free(sc->acs_url);
	free(sc->sp_key);
	free(sc->sp_cert);
	free(sc->session_key_file);
	free(sc->session_key_env);
	free(sc->cookie_name);
	for (size_t i = 0; i < sc->nheaders; i++) {
		free(sc->headers[i].name);
		free(sc->headers[i].attribute);
	}
	free(sc->headers);
	for (size_t i = 0; i < sc->nrules; i++) {
		free(sc->rules[i].attribute);
		free(sc->rules[i].value);
	}
	free(sc->rules);
	free(sc);
}


static void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->source);
	for (size_t i = 0; cfg->listeners != NULL && i < cfg->nlisteners; i++)
		config_listener_clear(&cfg->listeners[i]);
	free(cfg->listeners);
	config_listener_clear(cfg->admin);
	free(cfg->admin);
	free(cfg->access_log);
	free(cfg->user);
	free(cfg->group);
	config_free_strings(cfg->trusted_proxies, cfg->ntrusted_proxies);
	ipacl_free(cfg->trusted);
	for (size_t i = 0; cfg->upstreams != NULL && i < cfg->nupstreams; i++) {
		struct config_upstream *u = &cfg->upstreams[i];
		free(u->name);
		for (size_t j = 0; u->servers != NULL && j < u->nservers; j++) {
			free(u->servers[j].address);
			free(u->servers[j].host);
		}
		free(u->servers);
	}
	free(cfg->upstreams);
	for (size_t i = 0; cfg->sites != NULL && i < cfg->nsites; i++) {
		struct config_site *s = &cfg->sites[i];
		free(s->name);
		config_free_strings(s->hosts, s->nhosts);
		for (size_t j = 0; s->routes != NULL && j < s->nroutes; j++)
			config_route_clear(&s->routes[j]);
		free(s->routes);
		access_block_clear(&s->access);
	}
	free(cfg->sites);
	free(cfg->geoip_database);
	free(cfg->geoip_asn_database);
	free(cfg->geoip_country_header);
	free(cfg->geoip_asn_header);
	geoip_free(cfg->geoip);
	ratelimit_free(cfg->ratelimit);
	config_saml_free(cfg->saml);
	config_redis_free(cfg->redis);
	config_tls_free(cfg->tls);
	free(cfg);
}

/* ------------------------------------------------------------------ */
/* Top-level sections                                                   */

static const char *const config_top_keys[] = { "listeners", "admin", "workers", "user",
					       "group", "allow_root", "log",
					       "limits", "timeouts", "trusted_proxies",
					       "upstreams", "sites", "geoip", "saml", "tls", "redis", NULL };
static const char *const config_listener_keys[] = { "name", "address", "type", "allow", "deny",
						    "proxy_protocol", "upstream", "idle_timeout",
						    "max_connections",
						    "max_connections_per_client", "tls",
						    "redirect_https", NULL };
static const char *const config_admin_keys[] = { "name", "address", NULL };
static const char *const config_log_keys[] = { "level", "access_log", NULL };
static const char *const config_log_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const config_limits_keys[] = { "max_request_header_bytes",
						  "max_response_header_bytes", "max_body_bytes",
						  "body_memory_budget", "rate_limit_clients", NULL };
static const char *const config_timeouts_keys[] = { "connect", "upstream_response",
						    "upstream_idle", "client", "drain", NULL };
static const char *const config_upstream_keys[] = {
	"servers",	   "balance",	       "max_idle",	"max_fails",
	"fail_timeout",	   "connect_timeout",  "response_timeout", "idle_timeout",
	NULL
};
static const char *const config_balances[] = { "round_robin", "least_conn", NULL };

void
config_missing(struct config_loader *ld, const char *path, const char *key, const char *what)
{
	config_error(ld, path, "missing \"%s\" (%s)", key, what);
}

static void
config_parse_listener(struct config_loader *ld, const char *path, const json_t *v,
		      struct config_listener *l, const char *default_name, const char *const *keys)
{
	char kp[CONFIG_JPATH_MAX];
	char why[512];
	const json_t *addr;

	if (config_object(ld, path, v, keys) == NULL)
		return;
	l->name = config_string_or(ld, config_jkey(kp, path, "name"),
				   json_object_get(v, "name"), default_name);
	addr = json_object_get(v, "address");
	if (addr == NULL) {
		config_missing(ld, path, "address", "a \"host:port\" string such as \":80\"");
		return;
	}
	config_jkey(kp, path, "address");
	l->address = config_string(ld, kp, addr);
	if (l->address != NULL &&
	    config_split_hostport(l->address, &l->host, &l->port, why, sizeof why) < 0)
		config_error(ld, kp, "%s", why);
}

static bool
config_same_listen(const struct config_listener *a, const struct config_listener *b)
{
	return a->host != NULL && b->host != NULL && a->port != NULL && b->port != NULL &&
	       strcmp(a->port, "0") != 0 && strcmp(a->port, b->port) == 0 &&
	       strcasecmp(a->host, b->host) == 0;
}

static void
config_parse_listeners(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "listeners");
	const json_t *admin = json_object_get(root, "admin");
	char ip[CONFIG_JPATH_MAX];
	size_t n;

	if (v == NULL) {
		config_missing(ld, "", "listeners",
			       "an array of listeners such as [{\"address\": \":80\"}]");
	} else if (!json_is_array(v)) {
		config_type_error(ld, "listeners", "an array of listeners", v);
	} else if ((n = json_array_size(v)) == 0) {
		config_error(ld, "listeners", "must not be empty (at least one listener)");
	} else {
		cfg->listeners = calloc(n, sizeof *cfg->listeners);
		if (cfg->listeners == NULL) {
			ld->oom = true;
			return;
		}
		cfg->nlisteners = n;
		for (size_t i = 0; i < n; i++) {
			config_jidx(ip, "listeners", i);
			cfg->listeners[i].index = i;
			config_parse_listener(ld, ip, json_array_get(v, i), &cfg->listeners[i], ip,
					      config_listener_keys);
		}
	}
	if (admin != NULL && !json_is_null(admin)) {
		cfg->admin = calloc(1, sizeof *cfg->admin);
		if (cfg->admin == NULL) {
			ld->oom = true;
			return;
		}
		config_parse_listener(ld, "admin", admin, cfg->admin, "admin", config_admin_keys);
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		for (size_t j = 0; j < i; j++) {
			if (config_same_listen(&cfg->listeners[i], &cfg->listeners[j])) {
				char ap[CONFIG_JPATH_MAX];
				config_jkey(ap, config_jidx(ip, "listeners", i), "address");
				config_error(ld, ap, "\"%s\" is already used by listeners[%zu]",
					     cfg->listeners[i].address, j);
				break;
			}
		}
		if (cfg->admin != NULL && config_same_listen(cfg->admin, &cfg->listeners[i]))
			config_error(ld, "admin.address", "\"%s\" is already used by listeners[%zu]",
				     cfg->admin->address, i);
	}
}

static void
config_parse_log(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "log");
	int level = LOG_LEVEL_INFO;
	const json_t *al;

	if (v != NULL && config_object(ld, "log", v, config_log_keys) != NULL) {
		if (config_enum(ld, "log.level", json_object_get(v, "level"), config_log_levels,
				&level))
			cfg->log_level = (enum log_level)level;
		al = json_object_get(v, "access_log");
		if (al != NULL) {
			cfg->access_log = config_string(ld, "log.access_log", al);
			if (cfg->access_log != NULL && cfg->access_log[0] == '\0')
				config_error(ld, "log.access_log",
					     "empty; write \"stdout\", \"stderr\", \"off\" or a file "
					     "path");
		}
	}
	if (cfg->access_log == NULL)
		cfg->access_log = strdup("stdout");
	if (cfg->access_log == NULL)
		ld->oom = true;
}

static void
config_parse_limits(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "limits");
	const json_t *f;
	char a[64], b[64];

	if (v == NULL || config_object(ld, "limits", v, config_limits_keys) == NULL)
		return;
	if ((f = json_object_get(v, "max_request_header_bytes")) != NULL)
		config_uint(ld, "limits.max_request_header_bytes", f, UNIT_BYTES, CONFIG_KIB,
			    CONFIG_MIB, &cfg->max_request_header_bytes);
	if ((f = json_object_get(v, "max_response_header_bytes")) != NULL)
		config_uint(ld, "limits.max_response_header_bytes", f, UNIT_BYTES, CONFIG_KIB,
			    CONFIG_MIB, &cfg->max_response_header_bytes);
	if ((f = json_object_get(v, "max_body_bytes")) != NULL)
		config_uint(ld, "limits.max_body_bytes", f, UNIT_BYTES, 0, CONFIG_MAX_BYTES,
			    &cfg->max_body_bytes);
	if ((f = json_object_get(v, "rate_limit_clients")) != NULL)
		config_uint(ld, "limits.rate_limit_clients", f, UNIT_COUNT, 64, 1ULL << 26,
			    &cfg->rate_limit_clients);
	if ((f = json_object_get(v, "body_memory_budget")) != NULL &&
	    !config_uint(ld, "limits.body_memory_budget", f, UNIT_BYTES, 0, CONFIG_MAX_BYTES,
			 &cfg->body_memory_budget))
		return;
	if (cfg->body_memory_budget < cfg->max_body_bytes)
		config_error(ld, "limits.body_memory_budget",
			     "%s is less than limits.max_body_bytes (%s); the budget must hold at "
			     "least one largest body",
			     config_fmt_bytes(a, sizeof a, cfg->body_memory_budget),
			     config_fmt_bytes(b, sizeof b, cfg->max_body_bytes));
}

static void
config_parse_timeouts(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "timeouts");

	if (v == NULL || config_object(ld, "timeouts", v, config_timeouts_keys) == NULL)
		return;
	config_seconds(ld, "timeouts.connect", json_object_get(v, "connect"),
		       &cfg->connect_timeout);
	config_seconds(ld, "timeouts.upstream_response", json_object_get(v, "upstream_response"),
		       &cfg->upstream_response_timeout);
	config_seconds(ld, "timeouts.upstream_idle", json_object_get(v, "upstream_idle"),
		       &cfg->upstream_idle_timeout);
	config_seconds(ld, "timeouts.client", json_object_get(v, "client"),
		       &cfg->client_timeout);
	config_seconds(ld, "timeouts.drain", json_object_get(v, "drain"), &cfg->drain_timeout);
}

static void
config_parse_workers(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "workers");
	uint64_t n = 0;

	if (v != NULL && !config_uint(ld, "workers", v, UNIT_COUNT, 0, 256, &n))
		return;
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus < 1 ? 1 : cpus > 256 ? 256 : (uint64_t)cpus;
	}
	ld->cfg->workers = (unsigned)n;
}

/* A "user" or "group" value: a string (a name or decimal id) or a JSON
 * integer id, as a new string; "" (e.g. "${PORTCULLIS_USER:-}") gives NULL. */
static char *
config_id_value(struct config_loader *ld, const char *path, const json_t *v)
{
	char buf[32];
	char *s;

	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0 || json_integer_value(v) >= (json_int_t)UINT32_MAX) {
			config_error(ld, path, "%" JSON_INTEGER_FORMAT " is not an id from 0 to %u",
				     json_integer_value(v), UINT32_MAX - 1);
			return NULL;
		}
		snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		if ((s = strdup(buf)) == NULL)
			ld->oom = true;
		return s;
	}
	if (!json_is_string(v)) {
		config_type_error(ld, path, "a name or a numeric id", v);
		return NULL;
	}
	s = config_string(ld, path, v);
	if (s != NULL && s[0] == '\0') {
		free(s);
		s = NULL;
	}
	return s;
}

/* "user", "group", "allow_root": who to run as after binding (privdrop.h).
 * Names are resolved here, so -t reports a user that does not exist. */
static void
config_parse_user(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	gid_t primary = (gid_t)-1;
	char why[512];

	config_bool(ld, "allow_root", json_object_get(root, "allow_root"), &cfg->allow_root);
	cfg->user = config_id_value(ld, "user", json_object_get(root, "user"));
	cfg->group = config_id_value(ld, "group", json_object_get(root, "group"));
	if (cfg->group != NULL && cfg->user == NULL) {
		config_error(ld, "group", "only used with \"user\" (the user to run as after "
			     "binding); add \"user\" or remove \"group\"");
		return;
	}
	if (cfg->user == NULL)
		return;
	if (cfg->group != NULL && privdrop_lookup_group(cfg->group, &cfg->gid, why, sizeof why) < 0)
		config_error(ld, "group", "%s", why);
	if (privdrop_lookup_user(cfg->user, &cfg->uid, &primary, why, sizeof why) < 0)
		config_error(ld, "user", "%s", why);
	else if (cfg->group == NULL && primary == (gid_t)-1)
		config_error(ld, "user", "uid %s has no entry in the user database, so no primary "
			     "group; give \"group\" too (a name or a numeric gid)", cfg->user);
	else if (cfg->group == NULL)
		cfg->gid = primary;
}

static void
config_parse_trusted(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "trusted_proxies");
	char why[512];
	bool ok = true;

	if (v != NULL)
		ok = config_string_list(ld, "trusted_proxies", v, false,
					"an array of CIDR strings such as \"10.1.1.0/24\"",
					&cfg->trusted_proxies, &cfg->ntrusted_proxies);
	for (size_t i = 0; ok && i < cfg->ntrusted_proxies; i++)
		ok = cfg->trusted_proxies[i] != NULL;
	if (!ok)
		return;
	cfg->trusted = ipacl_new((const char *const *)cfg->trusted_proxies,
				 cfg->ntrusted_proxies, why, sizeof why);
	if (cfg->trusted == NULL)
		config_error(ld, "trusted_proxies", "%s", why);
}

static void
config_parse_servers(struct config_loader *ld, const char *path, const json_t *v,
		     struct config_upstream *u)
{
	char **list = NULL;
	size_t n = 0;
	char ip[CONFIG_JPATH_MAX];
	char why[512];

	if (!config_string_list(ld, path, v, true,
				"an array of \"host:port\" strings such as [\"web:8000\"]", &list,
				&n))
		return;
	u->servers = calloc(n, sizeof *u->servers);
	if (u->servers == NULL) {
		ld->oom = true;
		config_free_strings(list, n);
		return;
	}
	u->nservers = n;
	for (size_t i = 0; i < n; i++) {
		struct config_server *s = &u->servers[i];
		char *port = NULL;

		s->address = list[i];
		if (s->address == NULL)
			continue;
		config_jidx(ip, path, i);
		if (config_split_hostport(s->address, &s->host, &port, why, sizeof why) < 0) {
			config_error(ld, ip, "%s", why);
			continue;
		}
		if (s->host[0] == '\0')
			config_error(ld, ip, "\"%s\": missing host; write host:port (\"web:8000\")",
				     s->address);
		if (strcmp(port, "0") == 0)
			config_error(ld, ip, "\"%s\": port must be from 1 to 65535", s->address);
		s->port = (uint16_t)strtoul(port, NULL, 10);
		free(port);
	}
	free(list);
}

static bool
config_upstream_name_ok(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!config_is_alnum(*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return true;
}

static void
config_parse_upstream(struct config_loader *ld, const char *path, const json_t *v,
		      struct config_upstream *u)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	uint64_t n;
	int balance = BALANCE_ROUND_ROBIN;

	u->max_idle = 64;
	u->max_fails = 1;
	u->fail_timeout = 10;
	u->connect_timeout = cfg->connect_timeout;
	u->response_timeout = cfg->upstream_response_timeout;
	u->idle_timeout = cfg->upstream_idle_timeout;
	if (!config_upstream_name_ok(u->name))
		config_error(ld, path,
			     "bad upstream name; use only letters, digits, \"_\", \".\" and \"-\"");
	if (config_object(ld, path, v, config_upstream_keys) == NULL)
		return;
	if ((f = json_object_get(v, "servers")) == NULL)
		config_missing(ld, path, "servers", "an array of \"host:port\" strings");
	else
		config_parse_servers(ld, config_jkey(kp, path, "servers"), f, u);
	if (config_enum(ld, config_jkey(kp, path, "balance"), json_object_get(v, "balance"),
			config_balances, &balance))
		u->balance = (enum config_balance)balance;
	if ((f = json_object_get(v, "max_idle")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "max_idle"), f, UNIT_COUNT, 0, 10000, &n))
		u->max_idle = (size_t)n;
	if ((f = json_object_get(v, "max_fails")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "max_fails"), f, UNIT_COUNT, 1, 1000000, &n))
		u->max_fails = (unsigned)n;
	config_seconds(ld, config_jkey(kp, path, "fail_timeout"), json_object_get(v, "fail_timeout"),
		       &u->fail_timeout);
	config_seconds(ld, config_jkey(kp, path, "connect_timeout"),
		       json_object_get(v, "connect_timeout"), &u->connect_timeout);
	config_seconds(ld, config_jkey(kp, path, "response_timeout"),
		       json_object_get(v, "response_timeout"), &u->response_timeout);
	config_seconds(ld, config_jkey(kp, path, "idle_timeout"),
		       json_object_get(v, "idle_timeout"), &u->idle_timeout);
}

static void
config_parse_upstreams(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "upstreams");
	const char *name;
	json_t *u;
	char kp[CONFIG_JPATH_MAX];
	size_t i = 0;

	if (v == NULL) {
		config_missing(ld, "", "upstreams",
			       "an object of upstreams by name, such as {\"web\": {\"servers\": "
			       "[\"web:8000\"]}}");
		return;
	}
	if (!json_is_object(v)) {
		config_type_error(ld, "upstreams", "an object of upstreams by name", v);
		return;
	}
	ld->upstreams_known = true;
	if (json_object_size(v) == 0)
		return;
	cfg->upstreams = calloc(json_object_size(v), sizeof *cfg->upstreams);
	if (cfg->upstreams == NULL) {
		ld->oom = true;
		return;
	}
	cfg->nupstreams = json_object_size(v);
	json_object_foreach((json_t *)(uintptr_t)v, name, u) {
		struct config_upstream *up = &cfg->upstreams[i];
		up->index = i++;
		up->name = strdup(name);
		if (up->name == NULL) {
			ld->oom = true;
			return;
		}
		config_parse_upstream(ld, config_jkey(kp, "upstreams", name), u, up);
	}
}

/* ------------------------------------------------------------------ */
/* SAML files, checked without side effects (config_check_file)         */

/* Replace the first <from> in <msg> (capacity <len>) by <to>. */
static void
config_msg_replace(char *msg, size_t len, const char *from, const char *to)
{
	char *at = strstr(msg, from);
	char tail[1024];

	if (at == NULL || len == 0)
		return;
	snprintf(tail, sizeof tail, "%s", at + strlen(from));
	snprintf(at, len - (size_t)(at - msg), "%s%s", to, tail);
}

/*
 * Make <path> readable for a check without opening anything but a regular
 * file: it is opened with O_PATH (which opens no device, FIFO or socket),
 * checked with fstat, and read back through /proc/self/fd/N (<via>), which
 * is that very file whatever happens to the name meanwhile.  Without /proc,
 * <via> is <path> itself.  Returns the O_PATH descriptor (the caller closes
 * it), or -1: with *missing set when nothing is there, else with a reason in
 * <why>.
 */
static int
config_check_regular(const char *path, char *via, size_t vialen, bool *missing, char *why,
		     size_t whylen)
{
	struct stat st;
	int fd;

	*missing = false;
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			*missing = true;
		else
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	snprintf(via, vialen, "/proc/self/fd/%d", fd);
	if (access("/proc/self/fd", X_OK) != 0)
		snprintf(via, vialen, "%s", path);
	return fd;
}

/* Read the regular file <path> (at most 1 MiB) for a check.  Returns a new
 * buffer (*len bytes, NUL-terminated; the caller clears and frees it), or
 * NULL: with *missing set when nothing is there, else with a reason. */
static char *
config_check_read(const char *path, size_t *len, bool *missing, char *why, size_t whylen)
{
	char via[64];
	char *data;
	int fd = config_check_regular(path, via, sizeof via, missing, why, whylen);

	if (fd < 0)
		return NULL;
	data = localca_read_file(via, len, why, whylen);
	if (data == NULL)
		config_msg_replace(why, whylen, via, path);
	close(fd);
	return data;
}

/* The session keys: a key file that exists is read and checked (mode,
 * syntax); a missing one would be created at start.  Keys in <env> too. */
static void
config_saml_check_session_keys(struct config_loader *ld, const struct config_saml *sc,
			       const char *env)
{
	struct session_keys *keys = NULL;
	char via[64], why[1024];
	bool missing = false;
	int fd = -1;

	if (sc->session_key_file != NULL && sc->session_key_file[0] != '\0') {
		fd = config_check_regular(sc->session_key_file, via, sizeof via, &missing, why,
					  sizeof why);
		if (fd < 0 && !missing) {
			config_error(ld, "saml.session_key_file", "%s", why);
			return;
		}
	}
	if (fd < 0 && env == NULL)
		return; /* created at start */
	keys = session_keys_load(fd >= 0 ? via : NULL, env, false, why, sizeof why);
	if (keys == NULL) {
		if (fd >= 0)
			config_msg_replace(why, sizeof why, via, sc->session_key_file);
		config_error(ld, "saml.session_key_file", "%s", why);
	}
	session_keys_free(keys);
	if (fd >= 0)
		close(fd);
}

/* The SP key pair: when the key exists, both files are read and must be an
 * RSA key and its certificate; a certificate without its key is refused;
 * neither would be created at start. */
static void
config_saml_check_sp_keys(struct config_loader *ld, const struct config_saml *sc)
{
	char why[1024];
	char *kpem = NULL, *cpem = NULL;
	size_t klen = 0, clen = 0;
	bool kmissing = false, cmissing = false;
	BIO *kb = NULL, *cb = NULL;
	EVP_PKEY *k = NULL;
	X509 *c = NULL;

	if (sc->sp_key == NULL || sc->sp_cert == NULL)
		return;
	kpem = config_check_read(sc->sp_key, &klen, &kmissing, why, sizeof why);
	if (kpem == NULL && !kmissing) {
		config_error(ld, "saml.sp_key", "%s", why);
		goto out;
	}
	cpem = config_check_read(sc->sp_cert, &clen, &cmissing, why, sizeof why);
	if (cpem == NULL && !cmissing) {
		config_error(ld, "saml.sp_cert", "%s", why);
		goto out;
	}
	if (kmissing) {
		if (!cmissing)
			config_error(ld, "saml.sp_key",
				     "%s: the SAML SP key is missing but its certificate %s exists; "
				     "remove the certificate to make a new pair",
				     sc->sp_key, sc->sp_cert);
		goto out; /* both missing: created at start */
	}
	if (cmissing) {
		config_error(ld, "saml.sp_cert", "%s: cannot read: %s", sc->sp_cert, strerror(ENOENT));
		goto out;
	}
	kb = BIO_new_mem_buf(kpem, (int)klen);
	cb = BIO_new_mem_buf(cpem, (int)clen);
	k = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	c = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	if (k == NULL || c == NULL || X509_check_private_key(c, k) != 1 ||
	    EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)
		config_error(ld, "saml",
			     "%s and %s: not an RSA private key and its certificate (SAML "
			     "signatures here are RSA-SHA256)",
			     sc->sp_key, sc->sp_cert);
	ERR_clear_error();
out:
	EVP_PKEY_free(k);
	X509_free(c);
	BIO_free(kb);
	BIO_free(cb);
	if (kpem != NULL)
		OPENSSL_clear_free(kpem, klen);
	free(cpem);
}

/* A metadata file must be IdP metadata: an md:EntityDescriptor with an
 * entityID and an md:IDPSSODescriptor.  A URL is not fetched. */
static void
config_saml_check_metadata(struct config_loader *ld, const struct config_saml *sc)
{
	static const char md_ns[] = "urn:oasis:names:tc:SAML:2.0:metadata";
	char why[1024];
	char *text;
	size_t len = 0;
	bool missing = false, idp = false;
	xmlDocPtr doc;
	xmlNodePtr root;

	if (sc->idp_metadata == NULL || strncasecmp(sc->idp_metadata, "https://", 8) == 0 ||
	    strncasecmp(sc->idp_metadata, "http://", 7) == 0)
		return;
	text = config_check_read(sc->idp_metadata, &len, &missing, why, sizeof why);
	if (text == NULL) {
		if (missing)
			config_error(ld, "saml.idp_metadata", "%s: cannot read: %s", sc->idp_metadata,
				     strerror(ENOENT));
		else
			config_error(ld, "saml.idp_metadata", "%s", why);
		return;
	}
	doc = xmlReadMemory(text, (int)len, sc->idp_metadata, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	if (root != NULL && root->ns != NULL && xmlStrcmp(root->ns->href, BAD_CAST md_ns) == 0 &&
	    xmlStrcmp(root->name, BAD_CAST "EntityDescriptor") == 0 &&
	    xmlHasProp(root, BAD_CAST "entityID") != NULL) {
		for (xmlNodePtr n = root->children; n != NULL && !idp; n = n->next)
			idp = n->type == XML_ELEMENT_NODE && n->ns != NULL &&
			      xmlStrcmp(n->ns->href, BAD_CAST md_ns) == 0 &&
			      xmlStrcmp(n->name, BAD_CAST "IDPSSODescriptor") == 0;
	}
	if (doc == NULL)
		config_error(ld, "saml.idp_metadata", "%s: not well-formed XML", sc->idp_metadata);
	else if (!idp)
		config_error(ld, "saml.idp_metadata",
			     "%s: not IdP metadata (no md:EntityDescriptor with an "
			     "md:IDPSSODescriptor and an entityID)",
			     sc->idp_metadata);
	xmlFreeDoc(doc);
	free(text);
}

/*
 * The "saml" section loaded by config_check_file: check what can be checked
 * without creating, writing or fetching anything (config_saml_open calls
 * this instead of setting up the SP).  <session_env> is the value of
 * session_key_env, or NULL.
 */
void
config_saml_check(struct config_loader *ld, const char *session_env)
{
	const struct config_saml *sc = ld->cfg->saml;

	if (sc == NULL)
		return;
	config_saml_check_session_keys(ld, sc, session_env);
	config_saml_check_sp_keys(ld, sc);
	config_saml_check_metadata(ld, sc);
}

/* ------------------------------------------------------------------ */
/* Entry points                                                         */

static struct config *
config_load_json(struct config_loader *ld, json_t *root)
{
	struct config *cfg = calloc(1, sizeof *cfg);

	if (cfg == NULL) {
		ld->oom = true;
		return NULL;
	}
	ld->cfg = cfg;
	atomic_init(&cfg->refs, 1);
	cfg->check_only = ld->no_side_effects;
	cfg->source = strdup(ld->source);
	if (cfg->source == NULL)
		ld->oom = true;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->max_request_header_bytes = 64 * CONFIG_KIB;
	cfg->max_response_header_bytes = 64 * CONFIG_KIB;
	cfg->max_body_bytes = 64 * CONFIG_MIB;
	cfg->body_memory_budget = CONFIG_GIB;
	cfg->rate_limit_clients = 65536;
	cfg->connect_timeout = 5;
	cfg->upstream_response_timeout = 60;
	cfg->upstream_idle_timeout = 4; /* below Node's 5 s keep-alive: we close first */
	cfg->client_timeout = 30;
	cfg->drain_timeout = 30;

	config_check_keys(ld, "", root, config_top_keys);
	config_parse_listeners(ld, root);
	config_parse_workers(ld, root);
	config_parse_user(ld, root);
	config_parse_log(ld, root);
	config_parse_limits(ld, root);
	config_parse_timeouts(ld, root);
	config_parse_trusted(ld, root);
	config_parse_upstreams(ld, root);
	config_parse_listeners_access(ld, root);
	config_parse_geoip(ld, root);
	config_parse_sites(ld, root);
	config_finish_tls(ld, root);
	config_parse_saml(ld, root);
	config_parse_redis(ld, root);
	config_saml_sites(ld);
	config_saml_open(ld);
	if (ld->rate_ids > 0 && !ld->oom && ld->nerrors == 0) {
		cfg->ratelimit = ratelimit_new((size_t)cfg->rate_limit_clients);
		if (cfg->ratelimit == NULL)
			ld->oom = true;
	}
	return cfg;
}

static void
config_loader_clear(struct config_loader *ld)
{
	for (size_t i = 0; i < ld->nrefs; i++) {
		free(ld->refs[i].target);
		free(ld->refs[i].path);
	}
	free(ld->refs);
	config_free_strings(ld->route_paths, ld->nroute_paths);
	free(ld->errs);
}

/* Check the root and turn the loader's outcome into the return value. */
static struct config *
config_finish(struct config_loader *ld, json_t *root, const json_error_t *jerr, char *err,
	      size_t errlen)
{
	struct config *cfg = NULL;

	if (errlen > 0)
		err[0] = '\0';
	if (root == NULL) {
		snprintf(err, errlen, "%s:%d:%d: %s", ld->source, jerr->line, jerr->column,
			 jerr->text);
		return NULL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: the top level must be an object, found %s", ld->source,
			 config_json_kind(root));
		return NULL;
	}
	cfg = config_load_json(ld, root);
	if (ld->nerrors > 0 || ld->oom) {
		config_err_finish(ld, err, errlen);
		config_free(cfg);
		cfg = NULL;
	}
	config_loader_clear(ld);
	return cfg;
}

/* Read the file at <path> with the loader <ld>. */
static struct config *
config_load_path(struct config_loader *ld, const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	struct config *cfg;
	FILE *fp = fopen(path, "re");

	if (fp == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	fclose(fp);
	cfg = config_finish(ld, root, &jerr, err, errlen);
	json_decref(root);
	return cfg;
}

/*
 * Read and check the file at <path>.  Returns a new config with one
 * reference, or NULL with every error found in <err>.
 */
struct config *
config_load_file(const char *path, char *err, size_t errlen,
		 const char *(*getenv_fn)(const char *name))
{
	struct config_loader ld = { .source = path, .getenv_fn = getenv_fn };

	return config_load_path(&ld, path, err, errlen);
}

/* Like config_load_file with no side effects; see config.h. */
struct config *
config_check_file(const char *path, char *err, size_t errlen,
		  const char *(*getenv_fn)(const char *name))
{
	struct config_loader ld = { .source = path, .getenv_fn = getenv_fn,
				    .no_side_effects = true };

	return config_load_path(&ld, path, err, errlen);
}

/* Same as config_load_file, from a string named <source> in errors. */
struct config *
config_load_string(const char *json, const char *source, char *err, size_t errlen,
		   const char *(*getenv_fn)(const char *name))
{
	struct config_loader ld = { .source = source != NULL ? source : "(string)",
				    .getenv_fn = getenv_fn };
	json_error_t jerr;
	json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	struct config *cfg = config_finish(&ld, root, &jerr, err, errlen);

	json_decref(root);
	return cfg;
}

/* Take one more reference. */
struct config *
config_ref(struct config *cfg)
{
	if (cfg != NULL)
		atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

/* Drop a reference; the last one frees everything.  Accepts NULL. */
void
config_unref(struct config *cfg)
{
	if (cfg != NULL && atomic_fetch_sub(&cfg->refs, 1) == 1)
		config_free(cfg);
}

/* The upstream called <name>, or NULL. */
struct config_upstream *
config_find_upstream(const struct config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nupstreams; i++)
		if (cfg->upstreams[i].name != NULL && strcmp(cfg->upstreams[i].name, name) == 0)
			return &cfg->upstreams[i];
	return NULL;
}

/* Bit for a method name ("GET"), or 0 when it is not one we forward. */
unsigned
config_method_bit(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{ "GET", METHOD_GET },	     { "HEAD", METHOD_HEAD },	{ "POST", METHOD_POST },
		{ "PUT", METHOD_PUT },	     { "PATCH", METHOD_PATCH }, { "DELETE", METHOD_DELETE },
		{ "OPTIONS", METHOD_OPTIONS },
	};

	if (name == NULL)
		return 0;
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(name, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}


/*
 * config_core: the top-level sections that are not sites, access, SAML, TLS
 * or redis: "listeners" and "admin", "workers", "user"/"group"/"allow_root",
 * "log", "limits", "timeouts", "trusted_proxies" and "upstreams".
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "access/ipacl.h"
#include "config/config.h"
#include "core/privdrop.h"

static const char *const config_listener_keys[] = { "name", "address", "type", "allow", "deny",
						    "proxy_protocol", "upstream", "idle_timeout",
						    "max_connections",
						    "max_connections_per_client", "tls",
						    "redirect_https", "http2", "h2c", "alpn",
						    "client_certificates",
						    NULL };
static const char *const config_admin_keys[] = { "name", "address", "status_page", NULL };
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
	"tls",
	NULL
};
static const char *const config_balances[] = { "round_robin", "least_conn", NULL };

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

void
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
		if (json_is_object(admin) && json_object_get(admin, "status_page") != NULL) {
			bool on;

			if (config_bool(ld, "admin.status_page", json_object_get(admin, "status_page"),
					&on))
				cfg->admin_status_page = on ? 1 : -1;
		}
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

void
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

void
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

void
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

void
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
void
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

void
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
	if ((f = json_object_get(v, "tls")) != NULL)
		config_parse_upstream_tls(ld, config_jkey(kp, path, "tls"), f, u);
}

void
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

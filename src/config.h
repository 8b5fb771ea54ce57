/*
 * config: the JSON configuration file, read with jansson into an immutable,
 * reference-counted struct config.
 *
 * Loading checks everything it can before the event loop runs: unknown keys,
 * types, ranges, references between objects (a route naming an upstream that
 * does not exist), listener addresses, ${NAME} / ${NAME:-default} environment
 * substitution in string values.  Every error found is reported (not only the
 * first), one per line, each prefixed with its JSON path and saying what
 * would be right:
 *
 *   sites[0].routes[3].upstream: no upstream named "capure"; known: capture, web
 *
 * A loaded config is never modified.  Workers hold references to it; a reload
 * builds a new one and swaps it in.  This module includes no libevent header.
 */
#ifndef PORTCULLIS_CONFIG_H
#define PORTCULLIS_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ipacl;
struct access_cidrs;
struct geoip;
struct ratelimit;

#include "access.h"

/* HTTP methods as bits, for route method matchers. */
enum config_method {
	METHOD_GET = 1 << 0,
	METHOD_HEAD = 1 << 1,
	METHOD_POST = 1 << 2,
	METHOD_PUT = 1 << 3,
	METHOD_PATCH = 1 << 4,
	METHOD_DELETE = 1 << 5,
	METHOD_OPTIONS = 1 << 6,
};

enum config_listener_type {
	LISTENER_HTTP, /* "type": "http" (default): evhttp, routes */
	LISTENER_TCP,  /* "type": "tcp": raw TCP relay to "upstream" */
};

struct config_server;

/* A "host:port" listen address: ":80", "0.0.0.0:8080", "[::1]:0", "localhost:0". */
struct config_listener {
	char *name;    /* "name", default "listeners[i]" */
	char *address; /* as written (after env substitution) */
	char *host;    /* NULL or "" = every address (IPv6 and IPv4) */
	char *port;    /* decimal string, "0" allowed */

	/* Access (docs/access.md).  Not on the admin listener. */
	enum config_listener_type type;
	char **allow;                /* "allow": CIDRs */
	size_t nallow;
	char **deny;                 /* "deny": CIDRs */
	size_t ndeny;
	struct access_cidrs *acl;    /* built from allow/deny; NULL when both are empty */
	bool proxy_protocol;         /* "proxy_protocol": a PROXY v1/v2 header starts every connection */
	size_t index;                /* position in config.listeners */

	/* LISTENER_TCP */
	char *relay_upstream;               /* "upstream" as written: a name or "host:port" */
	struct config_server *relay_servers; /* owned copy, tried in turn */
	size_t nrelay_servers;
	double idle_timeout;                /* "idle_timeout", seconds; default 600 */
	double relay_connect_timeout;       /* timeouts.connect, or the named upstream's */
	uint64_t max_connections;           /* "max_connections"; default 10000 */
	uint64_t max_connections_per_client; /* "max_connections_per_client"; default 100, 0 = no limit */
};

enum config_balance {
	BALANCE_ROUND_ROBIN,
	BALANCE_LEAST_CONN,
};

/* One server of an upstream: "host:port" (names resolved at connect time). */
struct config_server {
	char *address; /* as written, "web:8000" */
	char *host;    /* "web", "127.0.0.1", "::1" (no brackets) */
	uint16_t port;
};

struct config_upstream {
	char *name;
	struct config_server *servers;
	size_t nservers;
	enum config_balance balance; /* "balance": "round_robin" | "least_conn" */
	size_t max_idle;             /* idle keep-alive connections kept per server per worker */
	unsigned max_fails;          /* consecutive failures before a server is skipped (>= 1) */
	double fail_timeout;         /* seconds a failed server is skipped */
	double connect_timeout;      /* seconds; default from timeouts.connect */
	double response_timeout;     /* seconds until the response headers; default timeouts.upstream_response */
	double idle_timeout;         /* seconds an idle pooled connection is kept; default timeouts.upstream_idle */
	size_t index;                /* position in config.upstreams */
};

struct config_header {
	char *name;
	char *value;
};

/* "set" replaces every copy, "add" appends one more, "remove" deletes every copy. */
struct config_header_ops {
	struct config_header *set;
	size_t nset;
	struct config_header *add;
	size_t nadd;
	char **remove;
	size_t nremove;
};

enum config_action {
	ACTION_PROXY,    /* "upstream": forward */
	ACTION_RESPOND,  /* "respond": {"status", "body", "content_type"} */
	ACTION_REDIRECT, /* "redirect": {"to", "status", "keep_path"} */
	ACTION_SITE,     /* "site": route again in another site's routes (after strip_prefix) */
};

enum config_host_mode {
	HOST_KEEP,     /* pass the client's Host through (default) */
	HOST_UPSTREAM, /* the upstream server's own "host:port" */
	HOST_FIXED,    /* a literal value */
};

struct config_site;

struct config_route {
	char *name;     /* "name", default "<site name>#<index>" */
	/* Matchers.  A route with no path matcher matches every path.  Path
	 * matching is ASCII case-insensitive, on the normalized path. */
	char **paths;   /* "path": "/e" matches /e, /e/ and /e/..., not /events */
	size_t npaths;
	char **exact;   /* "path_exact": the path and nothing else */
	size_t nexact;
	char **prefixes; /* "path_prefix": plain string prefix, "/e" matches /events */
	size_t nprefixes;
	unsigned methods; /* "methods": bit set of enum config_method; 0 = any */

	/* Action. */
	enum config_action action;
	struct config_upstream *upstream; /* ACTION_PROXY, borrowed from config.upstreams */
	struct config_site *site;         /* ACTION_SITE, borrowed */
	char *strip_prefix;               /* NULL, or removed from the path before forwarding */
	enum config_host_mode host_mode;  /* "host": "keep" | "upstream" | any other literal */
	char *host;                       /* HOST_FIXED */
	struct config_header_ops request_headers;
	struct config_header_ops response_headers;
	uint64_t max_body_bytes; /* default limits.max_body_bytes */
	bool drop_cookies;       /* "drop_cookies": remove the Cookie header upstream */
	struct access_block access;   /* "access": this route's own rules */
	struct access_policy policy;  /* what applies: route's rules over its site's */

	int status;          /* ACTION_RESPOND / ACTION_REDIRECT status */
	char *body;          /* ACTION_RESPOND */
	char *content_type;  /* ACTION_RESPOND, default "text/plain; charset=utf-8" */
	char *redirect_to;   /* ACTION_REDIRECT location (absolute URL or path) */
	bool redirect_keep_path; /* append the request path and query to redirect_to */

	size_t index;        /* position among all routes of the config (for metrics) */
};

struct config_site {
	char *name;     /* "name", default hosts[0] or "default" */
	char **hosts;   /* lower-case; "*.example.com" wildcards */
	size_t nhosts;
	bool is_default; /* "default": true, or the only site without hosts */
	struct config_route *routes;
	size_t nroutes;
	struct access_block access; /* "access" */
};

enum config_log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

struct config {
	atomic_int refs;
	char *source; /* file path, for log lines */

	struct config_listener *listeners;
	size_t nlisteners;
	struct config_listener *admin; /* NULL when "admin" is absent or null */
	unsigned workers;              /* 0 in the file = one per CPU; resolved here */

	/* "log" */
	enum config_log_level log_level;
	char *access_log; /* "stdout" (default), "stderr", "off" or a file path */

	/* "limits" */
	uint64_t max_request_header_bytes;  /* default 65536 */
	uint64_t max_response_header_bytes; /* default 65536 */
	uint64_t max_body_bytes;            /* default 64 MiB, also the largest route limit */
	uint64_t body_memory_budget;        /* bytes of request bodies in flight, all workers; default 1 GiB */
	uint64_t rate_limit_clients;        /* token buckets kept (memory bound); default 65536 */

	/* "timeouts", seconds */
	double connect_timeout;           /* default 5 */
	double upstream_response_timeout; /* default 60 */
	double upstream_idle_timeout;     /* default 60 */
	double client_timeout;            /* inactivity while reading a request or idle keep-alive; default 30 */
	double drain_timeout;             /* SIGTERM: how long in-flight requests may finish; default 30 */

	/* "trusted_proxies": CIDRs whose X-Forwarded-For is believed */
	char **trusted_proxies;
	size_t ntrusted_proxies;
	struct ipacl *trusted; /* built from trusted_proxies; never NULL */

	struct config_upstream *upstreams;
	size_t nupstreams;
	struct config_site *sites;
	size_t nsites;
	struct config_site *default_site; /* NULL: unknown hosts get 404 */
	size_t nroutes_total;

	/* "geoip" */
	char *geoip_database;        /* "database": country (or city) MaxMind DB; may be NULL */
	char *geoip_asn_database;    /* "asn_database"; may be NULL */
	char *geoip_country_header;  /* "country_header": e.g. "X-Client-Country"; NULL = none */
	char *geoip_asn_header;      /* "asn_header": e.g. "X-Client-ASN"; NULL = none */
	struct geoip *geoip;         /* opened at load; NULL without "geoip" */

	struct ratelimit *ratelimit; /* token buckets; NULL when no rate is configured */
};

/*
 * Read and check the file at <path>.  Returns a new config with one reference,
 * or NULL with every error found written to <err> (one per line, each
 * starting with its JSON path, or with the file name for a syntax error).
 * <getenv_fn> supplies environment variables (pass getenv; tests pass their own).
 */
struct config *config_load_file(const char *path, char *err, size_t errlen,
				const char *(*getenv_fn)(const char *name));

/* Same as config_load_file, from a string; <source> names it in errors. */
struct config *config_load_string(const char *json, const char *source, char *err,
				  size_t errlen, const char *(*getenv_fn)(const char *name));

/* Take one more reference. */
struct config *config_ref(struct config *cfg);

/* Drop a reference; the last one frees everything.  Accepts NULL. */
void config_unref(struct config *cfg);

/* The upstream called <name>, or NULL. */
struct config_upstream *config_find_upstream(const struct config *cfg, const char *name);

/* Bit for a method name ("GET"), or 0 when it is not one we forward. */
unsigned config_method_bit(const char *name);

/* Split "host:port" / "[v6]:port" / ":port" into parts the caller frees.
 * Returns 0, or -1 with a reason in <err>. */
int config_split_hostport(const char *address, char **host, char **port, char *err, size_t errlen);

#endif

/*
 * config_model: the configuration as the runtime reads it: struct config and
 * its parts, immutable once loaded and reference-counted (config_ref,
 * config_unref), plus lookups.  The JSON loader that builds it is config.h;
 * this header and config_model.c need no jansson, so everything that only
 * reads a configuration (access_check, auth, proxy, core) includes this.
 *
 * A loaded config is never modified.  Workers hold references to it; a reload
 * builds a new one and swaps it in.  This module includes no libevent header.
 */
#ifndef PORTCULLIS_CONFIG_MODEL_H
#define PORTCULLIS_CONFIG_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ipacl;
struct access_cidrs;
struct geoip;
struct ratelimit;
struct tls_client_auth_map;

#include "access/access.h"
#include "base/log.h"

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
	LISTENER_HTTP, /* "type": "http" (default): our HTTP server, routes */
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
	bool tls;                    /* "tls": HTTPS with the certificates of the "tls" block */
	bool redirect_https;         /* "redirect_https": 308 to HTTPS but for ACME HTTP-01 */
	bool http2;                  /* "http2": ALPN offers h2 on a TLS HTTP listener; default true */
	bool h2c;                    /* "h2c": HTTP/2 with prior knowledge on a plain one; default false */
	const char *const *alpn;     /* "alpn" of a TLS "tcp" listener: NULL-ended, interned
				      * (tls_alpn_intern); NULL = none selected */
	size_t index;                /* position in config.listeners */

	/* LISTENER_TCP */
	char *relay_upstream;               /* "upstream" as written: a name or "host:port" */
	struct config_server *relay_servers; /* owned copy, tried in turn */
	size_t nrelay_servers;
	double idle_timeout;                /* "idle_timeout", seconds; default 600 */
	double relay_connect_timeout;       /* timeouts.connect, or the named upstream's */
	/* Both types (HTTP: WebSocket tunnels count too) */
	uint64_t max_connections;           /* "max_connections"; default 10000 */
	uint64_t max_connections_per_client; /* "max_connections_per_client"; default 100 (TCP),
					      * 1000 (HTTP), 0 = no limit */

	/* Sites bound to this listener ("sites[i].listeners"): when has_sites,
	 * it serves only those, and default_site (or NULL: 404) for other hosts. */
	bool has_sites;
	struct config_site *default_site;

	/* "client_certificates" of this TLS HTTP listener and of its sites
	 * (config_client_auth.c); NULL when no name asks for one. */
	struct tls_client_auth_map *client_auth;
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

	/* "tls": HTTPS to the servers (docs/config.md#upstream-tls); tls_ctx is
	 * NULL for plain HTTP. */
	struct ssl_ctx_st *tls_ctx;  /* built at load (tls/tls_client.h), shared by workers */
	char *tls_server_name;       /* "server_name": SNI and the name verified; NULL: each server's host */
	char *tls_ca_bundle;         /* "ca_bundle" or NULL (the system store) */
	char *tls_client_cert;       /* "client_cert" (mTLS) or NULL */
	char *tls_client_key;        /* "client_key" or NULL (in client_cert) */
	bool tls_skip_verify;        /* "insecure_skip_verify": true, logged at load */
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

/* "auth" of a route. */
enum config_auth {
	AUTH_NONE, /* "none" (default) */
	AUTH_SAML, /* "saml": a session from the SAML SP, else a login */
};

/* "compress" of a site or route (docs/config.md#compression): which
 * responses are compressed, with which codings and levels. */
struct config_compress {
	bool enabled;         /* false: "compress": false (a route turns its site's off) */
	unsigned codings;     /* "encodings": bit set of enum acceptenc_coding */
	char **types;         /* "types": lower-case media types, wildcards like text/(star) */
	size_t ntypes;
	int gzip_level;       /* "level.gzip", default 6 */
	int zstd_level;       /* "level.zstd", default 3 */
	int br_level;         /* "level.br", default 4 */
	uint64_t min_length;  /* "min_length": smaller known lengths go as they are */
};

struct policy;
struct stepup_rule;

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

	enum config_auth auth;  /* "auth": "none" | "saml" */
	char **allow_bearer;    /* "allow_bearer": token prefixes ("phx_") that pass without a
				 * session (the upstream checks the token) */
	size_t nallow_bearer;

	/* WebSocket (routes with "upstream"; see docs/config.md) */
	bool websocket_off;             /* "websocket": false: no upgrade on this route */
	double websocket_idle_timeout;  /* "websocket_idle_timeout", seconds; default 600 */
	bool websocket_keep_at_session_end; /* "websocket_session_end": "keep" (default "close") */
	struct policy *require; /* "require": who may pass ("auth": "saml"); NULL: the site's */
	struct stepup_rule *step_up; /* "step_up" ("auth": "saml"); NULL: the site's */
	int assertion;          /* "identity_assertion": 1 on, -1 off, 0 unset (the site's) */
	char *assertion_audience; /* its "audience"; NULL: the upstream's name */
	struct config_compress *compress; /* "compress", or NULL: the site's */
};

/* "sites[i].hsts": {"max_age", "include_subdomains", "preload"}. */
struct config_hsts {
	bool enabled;            /* "hsts" present */
	uint64_t max_age;        /* "max_age" seconds, default 31536000 */
	bool include_subdomains; /* "include_subdomains" */
	bool preload;            /* "preload" */
};

/* "tls.certificates[i]": a PEM chain and key from files. */
struct config_tls_file {
	char *cert;   /* "cert" */
	char *key;    /* "key", default: the same file as "cert" */
	char **names; /* "names": names it must cover; may be empty */
	size_t nnames;
};

/* One ACME certificate: "tls.acme.orders[i].names" (or one per site). */
struct config_acme_order {
	char **names;
	size_t nnames;
};

/* "tls.acme" (docs/acme.md). */
struct config_acme {
	char *directory;     /* "directory", default Let's Encrypt production */
	char *email;         /* "email" or NULL */
	char *ca_bundle;     /* "ca_bundle": PEM trusted for the directory's TLS, or NULL */
	char *eab_kid;       /* "eab_kid" or NULL */
	char *eab_hmac_key;  /* "eab_hmac_key" (base64url) or NULL */
	unsigned challenges; /* "challenges": bit 0 http-01, bit 1 tls-alpn-01 (acme.h) */
	struct config_acme_order *orders; /* "orders", default: each site's non-wildcard hosts */
	size_t norders;
	unsigned retry_base;   /* "retry_base" seconds, 0 = the module's default */
};

enum config_tls_mode {
	TLS_MODE_ALL,   /* "mode" absent or "all": every source written */
	TLS_MODE_ACME,  /* "acme": only "acme" */
	TLS_MODE_FILES, /* "files": only "certificates" */
	TLS_MODE_LOCAL, /* "local": only the local CA */
	TLS_MODE_OFF,   /* "off": no TLS (the config has no tls block then) */
};

/* "tls": the one certificate store every TLS listener uses (docs/tls.md). */
struct config_tls {
	enum config_tls_mode mode;            /* "mode" */
	char *certs_dir;                      /* "certs_dir", default "certs" */
	struct config_tls_file *certificates; /* "certificates" */
	size_t ncertificates;
	bool local_ca;                        /* "local_ca": true or an object */
	char **local_names;                   /* "local_ca.names"; default: every non-wildcard site host */
	size_t nlocal_names;
	unsigned local_leaf_days;             /* "local_ca.leaf_days", 0 = 7 */
	struct config_acme *acme;             /* "acme" or NULL */
	char *default_name;                   /* "default_name" or NULL */
	unsigned ticket_rotate;               /* "ticket_rotate" seconds, 0 = 43200 */
	double watch_interval;                /* "watch_interval" seconds, default 5 */
	bool ocsp_stapling;                   /* "ocsp_stapling", default true (docs/tls.md) */
};

struct config_site {
	char *name;     /* "name", default hosts[0] or "default" */
	char **hosts;   /* lower-case; "*.example.com" wildcards */
	size_t nhosts;
	bool is_default; /* "default": true, or the only site without hosts */
	struct config_route *routes;
	size_t nroutes;
	struct access_block access; /* "access" */
	bool saml_endpoints;        /* serves the SAML SP endpoints: one of its routes (or a
				     * site it hands requests to) has "auth": "saml" */
	struct config_hsts hsts;    /* "hsts": Strict-Transport-Security on TLS listeners */
	/* "listeners": names of the listeners it serves; none = every HTTP
	 * listener that has no sites of its own. */
	char **listeners;
	size_t nlisteners;
	size_t *listener_index; /* [nlisteners], positions in config.listeners */
	struct policy *require;     /* "require" for its SAML routes; NULL: saml.require */
	struct stepup_rule *step_up; /* "step_up" for its SAML routes; NULL: none */
	int assertion;              /* "identity_assertion" of its SAML routes: 1 on, -1/0 off */
	char *assertion_audience;   /* its "audience"; NULL: each route's upstream name */
	struct config_compress *compress; /* "compress", or NULL: none */
};

struct saml;
struct session_keys;

/* "saml": { "headers": { "X-Auth-Email": "Email" } } — "@nameid" is the NameID. */
struct config_saml_header {
	char *name;
	char *attribute;
};

struct policy;

/* "saml.replay_store": where used assertion IDs and request IDs are kept. */
enum config_replay_store {
	REPLAY_STORE_MEMORY, /* "memory": in this process (one replica) */
	REPLAY_STORE_REDIS,  /* "redis": in the "redis" section's server, shared by replicas */
};

/* "redis": the server that replicas share single-use SAML IDs through
 * (docs/config.md#redis).  Used when saml.replay_store is "redis". */
struct config_redis {
	char *address;          /* "address": "host:port" or a unix socket path ("/run/redis.sock") */
	char *host;             /* TCP: the host (IPv6 without brackets); NULL for a socket */
	uint16_t port;          /* TCP port */
	char *unix_path;        /* the socket path; NULL for TCP */
	char *username;         /* "username" (Redis 6 ACL user) or NULL */
	char *password;         /* "password", or the first line of "password_file"; NULL: no AUTH */
	char *password_file;    /* "password_file" or NULL */
	unsigned db;            /* "db", default 0 */
	char *key_prefix;       /* "key_prefix", default "portcullis:" */
	double connect_timeout; /* "connect_timeout", seconds; default 2 */
	double command_timeout; /* "command_timeout", seconds; default 1 */
};

/* "saml.revocation" (docs/saml.md#revocation): server-side sign-out through Redis. */
struct config_revocation {
	bool enabled;         /* the section is present */
	double poll_interval; /* "poll_interval", seconds; default 1 */
	double max_staleness; /* "max_staleness", seconds; default 10 */
	bool fail_closed;     /* "on_redis_down": "open" (default) | "closed" */
};

struct jwt_keys;

/* "saml.identity_assertion" (docs/saml.md#signed-identity-assertion): the
 * signed JWT that routes and sites with "identity_assertion" hand upstream. */
struct config_assertion {
	char *header;          /* "header"; default "X-Portcullis-Assertion" (stripped everywhere) */
	char *key_file;        /* "key_file"; default <certs_dir>/identity-jwt.key (created) */
	char *key_env;         /* "key_env": variable holding PEM keys */
	double lifetime;       /* "lifetime", seconds; default 60 */
	char *email_attr;      /* "email_attribute"; default "Email" */
	char *groups_attr;     /* "groups_attribute"; default "Roles" */
	char *jwks_path;       /* "jwks_path"; default "/.well-known/jwks.json" */
	bool used;             /* a route or site turns it on */
	struct jwt_keys *keys; /* loaded at load when used */
};

/* "saml.encryption" (docs/saml.md#encrypted-assertions). */
struct config_saml_encryption {
	bool used;       /* the object is present */
	char *key_file;  /* "key_file"; default <certs_dir>/saml-sp-encryption.key (created) */
	char *cert_file; /* "cert_file"; default <certs_dir>/saml-sp-encryption.crt (created) */
	char *key_env;   /* "key_env": a variable holding the PEM key and its certificate */
	bool require;    /* "require": refuse plain-text assertions */
};

/* "saml": the SAML service provider (docs/saml.md). */
/* "saml.forward_auth" (docs/forward-auth.md): the verify endpoint other proxies
 * (nginx auth_request, Traefik forwardAuth, Caddy forward_auth) ask about a
 * request they hold. */
struct config_forward_auth {
	char *path; /* "path", e.g. "/_portcullis/verify"; NULL: no verify endpoint */
};

struct config_saml {
	char *idp_metadata;          /* "idp_metadata": file path or https URL (required) */
	char *idp_metadata_cache;    /* "idp_metadata_cache"; default <certs_dir>/saml-idp-metadata.xml */
	double idp_metadata_refresh; /* "idp_metadata_refresh", seconds; default 3600 */
	char *certs_dir;             /* "certs_dir"; default "certs" */
	char *base_url;              /* "base_url": "https://host[:port]" (required) */
	char *sp_entity_id;          /* "sp_entity_id"; default <base_url><prefix>/metadata */
	char *prefix;                /* "prefix"; default "/saml" */
	char *acs_path;              /* "acs_path"; default <prefix>/acs */
	char *acs_url;               /* <base_url><acs_path> */
	char *sp_key;                /* "sp_key"; default <certs_dir>/saml-sp.key (created) */
	char *sp_cert;               /* "sp_cert"; default <certs_dir>/saml-sp.crt (created) */
	char *session_key_file;      /* "session_key_file"; default <certs_dir>/session.key (created) */
	char *session_key_env;       /* "session_key_env": variable holding more keys */
	char *cookie_name;           /* "cookie_name"; default "__Host-portcullis-session" */
	double session_lifetime;     /* "session_lifetime", seconds; default 28800 */
	double session_idle_timeout; /* "session_idle_timeout", seconds; default 3600; 0 = none */
	double clock_skew;           /* "clock_skew", seconds; default 60 */
	double max_response_age;     /* "max_response_age", seconds; default 300 */
	bool allow_sha1;             /* "allow_sha1"; default false */
	uint64_t replay_cache_size;  /* "replay_cache_size"; default 10000 (replay_store "memory") */
	enum config_replay_store replay_store; /* "replay_store": "memory" (default) | "redis" */
	struct config_saml_header *headers; /* "headers" */
	size_t nheaders;
	struct policy *require;      /* "require": the rules of routes and sites without one */
	struct config_assertion assertion; /* "identity_assertion" */
	struct config_revocation revocation; /* "revocation" */
	struct config_saml_encryption encryption; /* "encryption" */
	char **hosts;                /* "hosts": other origins signed in through base_url */
	size_t nhosts;
	struct config_forward_auth forward_auth; /* "forward_auth" */

	struct saml *sp;             /* opened at load */
	struct session_keys *keys;   /* loaded at load */
};

struct config {
	atomic_int refs;
	char *source; /* file path, for log lines */

	struct config_listener *listeners;
	size_t nlisteners;
	struct config_listener *admin; /* NULL when "admin" is absent or null */
	int admin_status_page;         /* "admin.status_page": 1 true, -1 false, 0 unset
					* (served on a loopback address only) */
	unsigned workers;              /* 0 in the file = one per CPU; resolved here */

	/* Privileges (docs/config.md#privileges): started as root, Portcullis
	 * binds, then becomes "user" (privdrop.h). */
	char *user;       /* "user": a name, or a uid (a JSON number is kept as its digits); NULL = none */
	char *group;      /* "group": a name or a gid; NULL = the user's primary group */
	bool allow_root;  /* "allow_root": stay root when started as root without "user" */
	uid_t uid;        /* "user" resolved at load (valid when user != NULL) */
	gid_t gid;        /* "group" resolved, else the user's primary group */

	/* "log" */
	enum log_level log_level;   /* "level" (base/log.h) */
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

	struct config_saml *saml;    /* "saml"; NULL when absent */
	struct config_redis *redis;  /* "redis"; NULL when absent */

	struct config_tls *tls;      /* "tls"; NULL when absent or "mode": "off" */
	size_t tls_listeners_off;    /* listeners with "tls" left out because of "mode": "off" */

	bool check_only;             /* loaded by config_check_file: SAML not set up; not for serving */
};

/* Take one more reference. */
struct config *config_ref(struct config *cfg);

/* Drop a reference; the last one frees everything.  Accepts NULL. */
void config_unref(struct config *cfg);

/* The upstream called <name>, or NULL. */
struct config_upstream *config_find_upstream(const struct config *cfg, const char *name);

/* Bit for a method name ("GET"), or 0 when it is not one we forward. */
unsigned config_method_bit(const char *name);

/* Free what a listener owns (not the listener itself).  Accepts NULL. */
void config_listener_clear(struct config_listener *l);

/* Free <n> strings and the array.  Accepts NULL. */
void config_free_strings(char **list, size_t n);

/* Free a "compress" block.  Accepts NULL. */
void config_compress_free(struct config_compress *c);

#endif

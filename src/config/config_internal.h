/*
 * config_internal: what the config loader files share (config.c entry points,
 * config_core.c top-level sections, config_read.c scalars/paths/errors and
 * the refused header lists, config_sites.c, config_access.c, config_saml.c,
 * config_redis.c, config_tls.c).  Not part of the public interface: only
 * src/config/config*.c include it.  It includes the model (config_model.h),
 * not the entry points (config.h), so config.c can include it without an
 * include cycle.
 */
#ifndef PORTCULLIS_CONFIG_INTERNAL_H
#define PORTCULLIS_CONFIG_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config_model.h"
#include "http/headers.h"

#define CONFIG_JPATH_MAX 512
#define CONFIG_KIB 1024ULL
#define CONFIG_MIB (1024ULL * 1024)
#define CONFIG_GIB (1024ULL * 1024 * 1024)
#define CONFIG_MAX_SECONDS (365.0 * 24 * 3600)
#define CONFIG_MAX_BYTES ((uint64_t)INT64_MAX)

/* A route whose "site" action is resolved after every site is known. */
struct config_site_ref {
	struct config_route *route;
	struct config_site *from;
	char *target;
	char *path;
};

/* What a number counts, for messages and suffixes ("64k" only for bytes). */
enum config_unit {
	UNIT_COUNT,
	UNIT_BYTES,
};

struct config_loader {
	const char *source;
	const char *(*getenv_fn)(const char *name);
	struct config *cfg;
	/* Errors, "\n"-separated. */
	char *errs;
	size_t errs_len;
	size_t errs_cap;
	size_t nerrors;
	bool oom;
	/* False when "upstreams" itself is missing or broken: references to
	 * upstreams are then not checked (every one would fail). */
	bool upstreams_known;
	struct config_site_ref *refs;
	size_t nrefs;
	size_t refs_cap;
	/* Where each route was defined, for messages about duplicates. */
	char **route_paths;
	size_t nroute_paths;
	/* Rate limit ids handed out so far (one per "access" block with a rate). */
	uint32_t rate_ids;
	/* config_check_file: create, write and fetch nothing (SAML keys are
	 * checked when they exist, never made; metadata URLs are not fetched). */
	bool no_side_effects;
};

/* Each function's contract is the comment above its definition. */

/* config_read.c */
/* Records one error line "PATH: message" (JSON path first). */
__attribute__((format(printf, 3, 4))) void config_error(struct config_loader *ld, const char *path,
							const char *fmt, ...);
void config_err_finish(struct config_loader *ld, char *err, size_t errlen);
const char * config_jkey(char *buf, const char *parent, const char *key);
const char * config_jidx(char *buf, const char *parent, size_t i);
const char * config_json_kind(const json_t *v);
void config_type_error(struct config_loader *ld, const char *path, const char *expected, const json_t *v);
void config_check_keys(struct config_loader *ld, const char *path, const json_t *obj,
		  const char *const *allowed);
const json_t * config_object(struct config_loader *ld, const char *path, const json_t *v,
	      const char *const *allowed);
char * config_string(struct config_loader *ld, const char *path, const json_t *v);
char * config_string_or(struct config_loader *ld, const char *path, const json_t *v, const char *def);
const char * config_fmt_bytes(char *buf, size_t len, uint64_t n);
bool config_uint(struct config_loader *ld, const char *path, const json_t *v, enum config_unit unit,
	    uint64_t min, uint64_t max, uint64_t *out);
bool config_seconds(struct config_loader *ld, const char *path, const json_t *v, double *out);
bool config_bool(struct config_loader *ld, const char *path, const json_t *v, bool *out);
bool config_enum(struct config_loader *ld, const char *path, const json_t *v,
	    const char *const *names, int *out);
bool config_string_list(struct config_loader *ld, const char *path, const json_t *v, bool min_one,
		   const char *what, char ***out, size_t *nout);
bool config_is_alnum(char c);
bool config_host_name_ok(const char *h, bool brackets, const char **why);
bool config_host_value_ok(const char *s, char *why, size_t whylen);
bool config_token_ok(const char *s);
void config_missing(struct config_loader *ld, const char *path, const char *key, const char *what);
/* A header name a config may use where <refused> (HEADERS_NO_REQUEST_OP,
 * HEADERS_NO_RESPONSE_OP or HEADERS_NO_IDENTITY of http/headers.h's table of
 * the headers the proxy owns) does not forbid it; else records why. */
bool config_header_name_ok(struct config_loader *ld, const char *path, const char *name,
		      unsigned refused);
/* config_core.c */
void config_parse_listeners(struct config_loader *ld, const json_t *root);
void config_parse_workers(struct config_loader *ld, const json_t *root);
void config_parse_user(struct config_loader *ld, const json_t *root);
void config_parse_log(struct config_loader *ld, const json_t *root);
void config_parse_limits(struct config_loader *ld, const json_t *root);
void config_parse_timeouts(struct config_loader *ld, const json_t *root);
void config_parse_trusted(struct config_loader *ld, const json_t *root);
void config_parse_upstreams(struct config_loader *ld, const json_t *root);
/* config_upstream_tls.c */
void config_parse_upstream_tls(struct config_loader *ld, const char *path, const json_t *v,
			       struct config_upstream *u);
/* config_sites.c */
void config_parse_sites(struct config_loader *ld, const json_t *root);
/* config_site_listeners.c */
void config_parse_site_listeners(struct config_loader *ld, const char *path, const json_t *v,
				 struct config_site *s);
bool config_sites_share_listener(const struct config_site *a, const struct config_site *b);
void config_bind_defaults(struct config_loader *ld);
void config_sites_listener_dropped(struct config *cfg, size_t i);
bool config_host_seen_before(const struct config *cfg, size_t site, const char *host);
size_t config_hosts_drop_seen(const struct config *cfg, size_t site, const char **hosts, size_t n);
/* config_access.c */
void config_parse_access(struct config_loader *ld, const char *path, const json_t *v,
		    struct access_block *b);
void config_parse_listeners_access(struct config_loader *ld, const json_t *root);
void config_parse_geoip(struct config_loader *ld, const json_t *root);
/* config_outbound.c */
void config_outbound_open(struct config_loader *ld);
/* config_saml.c */
void config_saml_sites(struct config_loader *ld);
void config_saml_open(struct config_loader *ld);
void config_parse_saml(struct config_loader *ld, const json_t *root);
void config_saml_check(struct config_loader *ld, const char *session_env);
/* An RSA key file and its certificate file (both may be absent: created at
 * start); errors name <key_path> / <cert_path>. */
void config_saml_check_key_pair(struct config_loader *ld, const char *key, const char *cert,
				const char *key_path, const char *cert_path);
/* "step_up" at <path> (config_step_up.c): a rule, NULL when out of memory or
 * not an object; errors are reported. */
struct stepup_rule *config_parse_step_up(struct config_loader *ld, const char *path,
					 const json_t *v);
/* config_saml_encryption.c: "saml.encryption" (<v> may be NULL: off); the
 * PEM text of its key_env (NULL when unset: reported, or not configured);
 * its checks for config_check_file. */
void config_parse_saml_encryption(struct config_loader *ld, struct config_saml *sc, const json_t *v);
const char *config_saml_encryption_pem(struct config_loader *ld, const struct config_saml *sc);
void config_saml_encryption_check(struct config_loader *ld, const struct config_saml *sc);
/* config_redis.c */
/* "require" at <path> (config_require.c): a rule tree, NULL only when out of
 * memory; errors (and a tree that can never match) are reported. */
struct policy *config_parse_require(struct config_loader *ld, const char *path, const json_t *v);
/* The attribute names every "require" tests (not "@nameid"), distinct,
 * borrowed from the trees; *n of them.  The array is the caller's to free. */
const char **config_require_attributes(const struct config *cfg, size_t *n);
/* config_assertion.c: "saml.identity_assertion" (<v> may be NULL: defaults),
 * "identity_assertion" on a site or route, placement checks, key loading. */
void config_parse_saml_assertion(struct config_loader *ld, struct config_saml *sc, const json_t *v);
/* "saml.revocation" (config_revocation.c); <v> may be NULL (off). */
void config_parse_saml_revocation(struct config_loader *ld, struct config_saml *sc, const json_t *v);
/* config_saml_hosts.c */
void config_parse_saml_hosts(struct config_loader *ld, struct config_saml *sc, const json_t *v);
void config_saml_hosts_sites(struct config_loader *ld);
/* "saml.forward_auth" (config_forward_auth.c); <v> may be NULL (off). */
void config_parse_saml_forward_auth(struct config_loader *ld, struct config_saml *sc,
				    const json_t *v);
void config_parse_assertion_use(struct config_loader *ld, const char *path, const json_t *v,
				int *on, char **audience);
void config_assertion_sites(struct config_loader *ld);
void config_assertion_open(struct config_loader *ld);
void config_parse_redis(struct config_loader *ld, const json_t *root);
/* config_tls.c */
void config_finish_tls(struct config_loader *ld, const json_t *root);
/* config_client_auth.c */
void config_parse_client_auth(struct config_loader *ld, const json_t *root);
void config_parse_listeners_http2(struct config_loader *ld, const json_t *root);

/* config_websocket.c: the "websocket*" keys of route <r> at <path> (<v>),
 * whose action count is <nactions> (the keys need one "upstream"). */
void config_parse_route_websocket(struct config_loader *ld, const char *path, const json_t *v,
				  struct config_route *r, size_t nactions);

/* config_compress.c: "compress" at <path> (<v>) of a site or route: true,
 * false or an object; sets *<out> to a new block (errors are reported). */
void config_parse_compress(struct config_loader *ld, const char *path, const json_t *v,
			   struct config_compress **out);

#endif

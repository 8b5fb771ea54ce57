/*
 * config: JSON file -> struct config, the entry points only.  See config.h
 * for the contract and docs/config.md for the format.  The sections are
 * read by config_core.c, config_sites.c, config_access.c, config_saml.c,
 * config_tls.c and config_redis.c over config_read.c; the result is freed
 * by config_model.c.
 *
 * The loader walks the whole document once and keeps going after an error,
 * so one run reports every problem.  Each error is one line starting with
 * the JSON path of the offending value.  Cross references (route -> upstream,
 * route -> site, duplicate names and hosts, the default site) are checked
 * after the walk.
 */
#include "config/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/ratelimit.h"
#include "config/config_internal.h"

/* ------------------------------------------------------------------ */
/* Entry points                                                         */

static const char *const config_top_keys[] = { "listeners", "admin", "workers", "user",
					       "group", "allow_root", "log",
					       "limits", "timeouts", "trusted_proxies",
					       "upstreams", "sites", "geoip", "saml", "tls", "redis", NULL };

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
	config_parse_listeners_http2(ld, root); /* after "type", before "tls" drops any */
	config_parse_geoip(ld, root);
	config_parse_sites(ld, root);
	config_parse_client_auth(ld, root); /* before "tls" may drop listeners */
	config_finish_tls(ld, root);
	config_parse_saml(ld, root);
	config_parse_redis(ld, root);
	config_saml_sites(ld);
	config_saml_hosts_sites(ld);
	config_assertion_sites(ld);
	config_outbound_open(ld); /* before SAML fetches its IdP metadata */
	config_saml_open(ld);
	config_assertion_open(ld);
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
		config_unref(cfg); /* its one reference: frees it */
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

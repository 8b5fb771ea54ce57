/*
 * config_saml: the "saml" section (docs/saml.md), and its checks without side
 * effects for config_check_file (config_saml_check: key files, IdP metadata).
 */
#include "config/config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/saml.h"
#include "auth/session.h"
#include "proxy/router.h"
#include "tls/localca.h"

/* ------------------------------------------------------------------ */
/* SAML                                                                 */

static const char *const config_saml_keys[] = {
	"idp_metadata",	    "idp_metadata_cache", "idp_metadata_refresh", "certs_dir",
	"base_url",	    "sp_entity_id",	  "prefix",		  "acs_path",
	"sp_key",	    "sp_cert",		  "session_key_file",	  "session_key_env",
	"cookie_name",	    "session_lifetime",	  "session_idle_timeout", "clock_skew",
	"max_response_age", "allow_sha1",	  "replay_cache_size",	  "headers",
	"require",	    "replay_store",	  "identity_assertion", "revocation", "encryption", "hosts",
	"forward_auth",	    NULL
};
static const char *const config_replay_stores[] = { "memory", "redis", NULL };

/* A duration that may be 0 ("off"). */
static void
config_seconds_or_zero(struct config_loader *ld, const char *path, const json_t *v, double *out)
{
	if (v != NULL && json_is_number(v) && json_number_value(v) == 0) {
		*out = 0;
		return;
	}
	if (v != NULL && json_is_string(v) && strcmp(json_string_value(v), "0") == 0) {
		*out = 0;
		return;
	}
	config_seconds(ld, path, v, out);
}

/* An absolute path for an SP endpoint: "/x", no query, fragment, "//" or
 * white space. */
static bool
config_saml_path_ok(const char *p)
{
	return p[0] == '/' && strpbrk(p, "?#\\ \t\r\n%") == NULL && strstr(p, "//") == NULL &&
	       strstr(p, "/./") == NULL && strstr(p, "/../") == NULL;
}

static char *
config_join_path(struct config_loader *ld, const char *a, const char *b)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s", a, b) < 0) {
		ld->oom = true;
		return NULL;
	}
	return s;
}

static void
config_parse_saml_headers(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	char kp[CONFIG_JPATH_MAX];
	const char *name;
	json_t *value;
	size_t i = 0;

	if (!json_is_object(v)) {
		config_type_error(ld, "saml.headers", "an object of header name: attribute name", v);
		return;
	}
	if (json_object_size(v) == 0)
		return;
	sc->headers = calloc(json_object_size(v), sizeof *sc->headers);
	if (sc->headers == NULL) {
		ld->oom = true;
		return;
	}
	sc->nheaders = json_object_size(v);
	json_object_foreach((json_t *)(uintptr_t)v, name, value) {
		struct config_saml_header *h = &sc->headers[i++];

		config_jkey(kp, "saml.headers", name);
		config_header_name_ok(ld, kp, name, HEADERS_NO_IDENTITY);
		if ((h->name = strdup(name)) == NULL)
			ld->oom = true;
		h->attribute = config_string(ld, kp, value);
		if (h->attribute != NULL && h->attribute[0] == '\0')
			config_error(ld, kp, "must name an attribute (\"Email\") or \"@nameid\"");
	}
}

/* Mark the sites that serve the SP endpoints, check routes and "saml" agree. */
void
config_saml_sites(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	bool any = false;

	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			if (cfg->sites[i].routes[j].auth == AUTH_SAML) {
				cfg->sites[i].saml_endpoints = true;
				any = true;
				if (cfg->saml == NULL) {
					char sp[CONFIG_JPATH_MAX], rp[CONFIG_JPATH_MAX];

					config_jidx(rp, config_jkey(sp, config_jidx(kp, "sites", i), "routes"), j);
					config_error(ld, config_jkey(kp, rp, "auth"),
						     "\"saml\" needs a top-level \"saml\" section "
						     "(docs/saml.md)");
				}
			}
	/* A site that hands requests to a SAML site serves the endpoints too. */
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++) {
			const struct config_route *r = &cfg->sites[i].routes[j];

			if (r->action == ACTION_SITE && r->site != NULL && r->site->saml_endpoints)
				cfg->sites[i].saml_endpoints = true;
		}
	for (size_t i = 0; i < cfg->nsites; i++) {
		bool saml_route = false;
		char sp[CONFIG_JPATH_MAX];

		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			saml_route |= cfg->sites[i].routes[j].auth == AUTH_SAML;
		if (cfg->sites[i].require != NULL && !saml_route)
			config_error(ld, config_jkey(kp, config_jidx(sp, "sites", i), "require"),
				     "no route of this site has \"auth\": \"saml\" (the rules "
				     "apply to those)");
		if (cfg->sites[i].step_up != NULL && !saml_route)
			config_error(ld, config_jkey(kp, config_jidx(sp, "sites", i), "step_up"),
				     "no route of this site has \"auth\": \"saml\" (step-up "
				     "applies to those)");
	}
	if (cfg->saml != NULL && !any)
		config_error(ld, "saml", "no route has \"auth\": \"saml\"; add it to the routes to "
					 "protect (or remove this section)");
	if (cfg->saml == NULL || ld->nerrors > 0)
		return;
	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct config_site *site = &cfg->sites[i];
		char *login;

		if (!site->saml_endpoints)
			continue;
		login = config_join_path(ld, cfg->saml->prefix, "/login");
		if (login == NULL)
			return;
		/* The endpoints are served after routing (so a site's access rules
		 * apply to them): some route must match them. */
		if (router_match(site, cfg->saml->acs_path, METHOD_POST) == NULL)
			config_error(ld, "saml.acs_path",
				     "no route of site \"%s\" matches POST %s; add a route for it (a "
				     "catch-all route does)",
				     site->name ? site->name : "?", cfg->saml->acs_path);
		if (router_match(site, login, METHOD_GET) == NULL)
			config_error(ld, "saml.prefix",
				     "no route of site \"%s\" matches GET %s; add a route for it (a "
				     "catch-all route does)",
				     site->name ? site->name : "?", login);
		free(login);
	}
}

/* Open the SP (keys, IdP metadata) once everything else is known good. */
void
config_saml_open(struct config_loader *ld)
{
	struct config_saml *sc = ld->cfg->saml;
	char why[1024];
	const char **attrs = NULL;
	size_t nattrs = 0;
	char *slo = NULL;
	const char *env = NULL;

	if (sc == NULL || ld->nerrors > 0 || ld->oom)
		return;
	if (sc->session_key_env != NULL) {
		env = ld->getenv_fn(sc->session_key_env);
		if (env == NULL || env[0] == '\0') {
			config_error(ld, "saml.session_key_env", "the variable %s is not set",
				     sc->session_key_env);
			return;
		}
	}
	if (ld->no_side_effects) { /* config_check_file: create and fetch nothing */
		config_saml_check(ld, env);
		return;
	}
	config_saml_encryption_check(ld, sc);
	if (ld->nerrors > 0)
		return;
	if (sc->certs_dir != NULL && sc->certs_dir[0] != '\0' &&
	    localca_mkdirs(sc->certs_dir, why, sizeof why) < 0) {
		config_error(ld, "saml.certs_dir", "%s", why);
		return;
	}
	if (sc->session_key_file != NULL && strrchr(sc->session_key_file, '/') != NULL) {
		char *dir = strdup(sc->session_key_file);

		if (dir == NULL) {
			ld->oom = true;
			return;
		}
		*strrchr(dir, '/') = '\0';
		if (dir[0] != '\0' && localca_mkdirs(dir, why, sizeof why) < 0) {
			config_error(ld, "saml.session_key_file", "%s", why);
			free(dir);
			return;
		}
		free(dir);
	}
	sc->keys = session_keys_load(sc->session_key_file, env, true, why, sizeof why);
	if (sc->keys == NULL) {
		config_error(ld, "saml.session_key_file", "%s", why);
		return;
	}
	{
		size_t nrule_attrs = 0;
		const char **rule_attrs = config_require_attributes(ld->cfg, &nrule_attrs);

		attrs = rule_attrs ? calloc(sc->nheaders + nrule_attrs + 3, sizeof *attrs) : NULL;
		if (attrs == NULL) {
			free(rule_attrs);
			ld->oom = true;
			return;
		}
		for (size_t i = 0; i < sc->nheaders; i++)
			if (strcmp(sc->headers[i].attribute, "@nameid") != 0)
				attrs[nattrs++] = sc->headers[i].attribute;
		for (size_t i = 0; i < nrule_attrs; i++)
			attrs[nattrs++] = rule_attrs[i];
		if (sc->assertion.used && sc->assertion.email_attr != NULL)
			attrs[nattrs++] = sc->assertion.email_attr;
		if (sc->assertion.used && sc->assertion.groups_attr != NULL)
			attrs[nattrs++] = sc->assertion.groups_attr;
		free(rule_attrs);
	}
	if (asprintf(&slo, "%s%s/logout", sc->base_url, sc->prefix) < 0) {
		ld->oom = true;
		free(attrs);
		return;
	}
	{
		struct saml_options o = {
			.idp_metadata = sc->idp_metadata,
			.idp_metadata_cache = sc->idp_metadata_cache,
			.idp_metadata_refresh = sc->idp_metadata_refresh,
			.sp_entity_id = sc->sp_entity_id,
			.acs_url = sc->acs_url,
			.slo_url = slo,
			.sp_key = sc->sp_key,
			.sp_cert = sc->sp_cert,
			.clock_skew = sc->clock_skew,
			.max_age = sc->max_response_age,
			.allow_sha1 = sc->allow_sha1,
			.replay_cache_size = (size_t)sc->replay_cache_size,
			.attributes = attrs,
			.nattributes = nattrs,
			.enc_pem = config_saml_encryption_pem(ld, sc),
			.enc_key = sc->encryption.key_file,
			.enc_cert = sc->encryption.cert_file,
			.require_encryption = sc->encryption.require,
		};

		if ((sc->sp = saml_new(&o, why, sizeof why)) == NULL)
			config_error(ld, "saml", "%s", why);
	}
	free(slo);
	free(attrs);
}

void
config_parse_saml(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "saml");
	const json_t *f;
	struct config_saml *sc;
	char *dir;

	if (v == NULL || json_is_null(v) || config_object(ld, "saml", v, config_saml_keys) == NULL)
		return;
	sc = calloc(1, sizeof *sc);
	if (sc == NULL) {
		ld->oom = true;
		return;
	}
	ld->cfg->saml = sc;
	sc->idp_metadata_refresh = 3600;
	sc->session_lifetime = 8 * 3600;
	sc->session_idle_timeout = 3600;
	sc->clock_skew = 60;
	sc->max_response_age = 300;
	sc->replay_cache_size = 10000;

	if ((f = json_object_get(v, "idp_metadata")) == NULL)
		config_missing(ld, "saml", "idp_metadata",
			       "the IdP metadata: a file path or an https URL");
	else if ((sc->idp_metadata = config_string(ld, "saml.idp_metadata", f)) != NULL &&
		 sc->idp_metadata[0] == '\0')
		config_error(ld, "saml.idp_metadata", "is empty (is SAML_IDP_METADATA set?)");
	if ((f = json_object_get(v, "base_url")) == NULL) {
		config_missing(ld, "saml", "base_url",
			       "the public origin of the protected site, e.g. "
			       "\"https://posthog.example.com\"");
	} else if ((sc->base_url = config_string(ld, "saml.base_url", f)) != NULL) {
		size_t n = strlen(sc->base_url);
		const char *h = strstr(sc->base_url, "://");

		while (n > 0 && sc->base_url[n - 1] == '/')
			sc->base_url[--n] = '\0';
		if ((strncmp(sc->base_url, "https://", 8) != 0 &&
		     strncmp(sc->base_url, "http://", 7) != 0) ||
		    h == NULL || h[3] == '\0' || strchr(h + 3, '/') != NULL ||
		    strpbrk(sc->base_url, "?#\\ \t\r\n\"<>") != NULL)
			config_error(ld, "saml.base_url",
				     "\"%s\" is not an origin; write \"https://host\" or "
				     "\"https://host:port\" (no path)",
				     sc->base_url);
	}
	sc->certs_dir = config_string_or(ld, "saml.certs_dir", json_object_get(v, "certs_dir"), "certs");
	dir = sc->certs_dir ? sc->certs_dir : "certs";
	sc->prefix = config_string_or(ld, "saml.prefix", json_object_get(v, "prefix"), "/saml");
	if (sc->prefix != NULL) {
		size_t n = strlen(sc->prefix);

		while (n > 1 && sc->prefix[n - 1] == '/')
			sc->prefix[--n] = '\0';
		if (!config_saml_path_ok(sc->prefix) || strcmp(sc->prefix, "/") == 0)
			config_error(ld, "saml.prefix", "\"%s\" is not a path like \"/saml\"", sc->prefix);
	}
	if ((f = json_object_get(v, "acs_path")) != NULL) {
		sc->acs_path = config_string(ld, "saml.acs_path", f);
		if (sc->acs_path != NULL && !config_saml_path_ok(sc->acs_path))
			config_error(ld, "saml.acs_path", "\"%s\" is not a path like \"/complete/saml/\"",
				     sc->acs_path);
	} else if (sc->prefix != NULL) {
		sc->acs_path = config_join_path(ld, sc->prefix, "/acs");
	}
	if (sc->base_url != NULL && sc->acs_path != NULL)
		sc->acs_url = config_join_path(ld, sc->base_url, sc->acs_path);
	/* An empty sp_entity_id or file path (after substitution) means the
	 * default, so "${SAML_SP_ENTITY_ID:-}" leaves it to us. */
	if ((f = json_object_get(v, "sp_entity_id")) != NULL) {
		sc->sp_entity_id = config_string(ld, "saml.sp_entity_id", f);
		if (sc->sp_entity_id != NULL && sc->sp_entity_id[0] == '\0') {
			free(sc->sp_entity_id);
			sc->sp_entity_id = NULL;
		}
	}
	if (sc->sp_entity_id == NULL && sc->base_url != NULL && sc->prefix != NULL &&
	    asprintf(&sc->sp_entity_id, "%s%s/metadata", sc->base_url, sc->prefix) < 0) {
		sc->sp_entity_id = NULL;
		ld->oom = true;
	}
#define CONFIG_SAML_FILE(field, key, file)                                                       \
	do {                                                                                     \
		if ((f = json_object_get(v, key)) != NULL)                                       \
			sc->field = config_string(ld, "saml." key, f);                           \
		if (sc->field != NULL && sc->field[0] == '\0') {                                \
			free(sc->field);                                                         \
			sc->field = NULL;                                                        \
		}                                                                                \
		if (sc->field == NULL && asprintf(&sc->field, "%s/%s", dir, file) < 0) {         \
			sc->field = NULL;                                                        \
			ld->oom = true;                                                          \
		}                                                                                \
	} while (0)
	CONFIG_SAML_FILE(idp_metadata_cache, "idp_metadata_cache", "saml-idp-metadata.xml");
	CONFIG_SAML_FILE(sp_key, "sp_key", "saml-sp.key");
	CONFIG_SAML_FILE(sp_cert, "sp_cert", "saml-sp.crt");
	if ((f = json_object_get(v, "session_key_env")) != NULL)
		sc->session_key_env = config_string(ld, "saml.session_key_env", f);
	/* With "session_key_env" and no (or an empty) "session_key_file", the
	 * keys come from the variable alone: replicas fed from one Secret must
	 * not each create a key file of their own. */
	if ((f = json_object_get(v, "session_key_file")) != NULL)
		sc->session_key_file = config_string(ld, "saml.session_key_file", f);
	if (sc->session_key_file != NULL && sc->session_key_file[0] == '\0') {
		free(sc->session_key_file);
		sc->session_key_file = NULL;
	}
	if (sc->session_key_file == NULL && sc->session_key_env == NULL &&
	    asprintf(&sc->session_key_file, "%s/session.key", dir) < 0) {
		sc->session_key_file = NULL;
		ld->oom = true;
	}
#undef CONFIG_SAML_FILE
	sc->cookie_name = config_string_or(ld, "saml.cookie_name", json_object_get(v, "cookie_name"),
					   "__Host-portcullis-session");
	if (sc->cookie_name != NULL &&
	    (!config_token_ok(sc->cookie_name) || strncmp(sc->cookie_name, "__Host-", 7) != 0))
		config_error(ld, "saml.cookie_name",
			     "\"%s\" must be a cookie name starting with \"__Host-\" (bound to this "
			     "host, Secure, Path=/)",
			     sc->cookie_name);
	config_seconds(ld, "saml.idp_metadata_refresh", json_object_get(v, "idp_metadata_refresh"),
		       &sc->idp_metadata_refresh);
	config_seconds(ld, "saml.session_lifetime", json_object_get(v, "session_lifetime"),
		       &sc->session_lifetime);
	config_seconds_or_zero(ld, "saml.session_idle_timeout",
			       json_object_get(v, "session_idle_timeout"), &sc->session_idle_timeout);
	config_seconds_or_zero(ld, "saml.clock_skew", json_object_get(v, "clock_skew"),
			       &sc->clock_skew);
	config_seconds(ld, "saml.max_response_age", json_object_get(v, "max_response_age"),
		       &sc->max_response_age);
	if (sc->clock_skew > 600)
		config_error(ld, "saml.clock_skew", "%.0f s is more than 600 s; fix the clocks (NTP)",
			     sc->clock_skew);
	config_bool(ld, "saml.allow_sha1", json_object_get(v, "allow_sha1"), &sc->allow_sha1);
	if ((f = json_object_get(v, "replay_cache_size")) != NULL)
		config_uint(ld, "saml.replay_cache_size", f, UNIT_COUNT, 100, 10000000,
			    &sc->replay_cache_size);
	{
		int store = REPLAY_STORE_MEMORY;

		if (config_enum(ld, "saml.replay_store", json_object_get(v, "replay_store"),
				config_replay_stores, &store))
			sc->replay_store = (enum config_replay_store)store;
	}
	if ((f = json_object_get(v, "headers")) != NULL)
		config_parse_saml_headers(ld, sc, f);
	if ((f = json_object_get(v, "require")) != NULL)
		sc->require = config_parse_require(ld, "saml.require", f);
	config_parse_saml_assertion(ld, sc, json_object_get(v, "identity_assertion"));
	config_parse_saml_encryption(ld, sc, json_object_get(v, "encryption"));
	config_parse_saml_revocation(ld, sc, json_object_get(v, "revocation"));
	config_parse_saml_hosts(ld, sc, json_object_get(v, "hosts"));
	config_parse_saml_forward_auth(ld, sc, json_object_get(v, "forward_auth"));
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
	config_saml_check_key_pair(ld, sc->sp_key, sc->sp_cert, "saml.sp_key", "saml.sp_cert");
}

void
config_saml_check_key_pair(struct config_loader *ld, const char *key, const char *cert,
			   const char *key_path, const char *cert_path)
{
	char why[1024];
	char *kpem = NULL, *cpem = NULL;
	size_t klen = 0, clen = 0;
	bool kmissing = false, cmissing = false;
	BIO *kb = NULL, *cb = NULL;
	EVP_PKEY *k = NULL;
	X509 *c = NULL;

	if (key == NULL || cert == NULL)
		return;
	kpem = config_check_read(key, &klen, &kmissing, why, sizeof why);
	if (kpem == NULL && !kmissing) {
		config_error(ld, key_path, "%s", why);
		goto out;
	}
	cpem = config_check_read(cert, &clen, &cmissing, why, sizeof why);
	if (cpem == NULL && !cmissing) {
		config_error(ld, cert_path, "%s", why);
		goto out;
	}
	if (kmissing) {
		if (!cmissing)
			config_error(ld, key_path,
				     "%s: the SAML SP key is missing but its certificate %s exists; "
				     "remove the certificate to make a new pair",
				     key, cert);
		goto out; /* both missing: created at start */
	}
	if (cmissing) {
		config_error(ld, cert_path, "%s: cannot read: %s", cert, strerror(ENOENT));
		goto out;
	}
	kb = BIO_new_mem_buf(kpem, (int)klen);
	cb = BIO_new_mem_buf(cpem, (int)clen);
	k = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	c = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	if (k == NULL || c == NULL || X509_check_private_key(c, k) != 1 ||
	    EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)
		config_error(ld, key_path,
			     "%s and %s: not an RSA private key and its certificate (SAML "
			     "signatures here are RSA-SHA256)",
			     key, cert);
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
	static const xmlChar md_ns[] = "urn:oasis:names:tc:SAML:2.0:metadata";
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
	if (root != NULL && root->ns != NULL && xmlStrcmp(root->ns->href, md_ns) == 0 &&
	    xmlStrcmp(root->name, BAD_CAST "EntityDescriptor") == 0 &&
	    xmlHasProp(root, BAD_CAST "entityID") != NULL) {
		for (xmlNodePtr n = root->children; n != NULL && !idp; n = n->next)
			idp = n->type == XML_ELEMENT_NODE && n->ns != NULL &&
			      xmlStrcmp(n->ns->href, md_ns) == 0 &&
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
	config_saml_encryption_check(ld, sc);
	config_saml_check_metadata(ld, sc);
}

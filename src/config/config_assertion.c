/*
 * config_assertion: "saml.identity_assertion" and "identity_assertion" on
 * sites and routes (docs/saml.md#signed-identity-assertion): the header, the
 * ES256 keys (a file created when absent, and/or a variable, like the session
 * keys), the lifetime and the claims' attributes; and which routes send it.
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/jwt.h"
#include "http/headers.h"

static const char *const config_assertion_keys[] = {
	"header",	    "key_file", "key_env",   "lifetime", "email_attribute",
	"groups_attribute", "jwks_path", NULL
};
static const char *const config_assertion_use_keys[] = { "audience", NULL };

void
config_parse_saml_assertion(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	struct config_assertion *a = &sc->assertion;
	const char *dir = sc->certs_dir ? sc->certs_dir : "certs";
	const json_t *f;

	a->lifetime = 60;
	if (v != NULL && config_object(ld, "saml.identity_assertion", v, config_assertion_keys) == NULL)
		v = NULL;
	a->header = config_string_or(ld, "saml.identity_assertion.header",
				     v ? json_object_get(v, "header") : NULL,
				     "X-Portcullis-Assertion");
	if (a->header != NULL) {
		config_header_name_ok(ld, "saml.identity_assertion.header", a->header,
				      HEADERS_NO_IDENTITY);
		for (size_t i = 0; i < sc->nheaders; i++)
			if (sc->headers[i].name && strcasecmp(sc->headers[i].name, a->header) == 0)
				config_error(ld, "saml.identity_assertion.header",
					     "\"%s\" is also in saml.headers", a->header);
	}
	a->email_attr = config_string_or(ld, "saml.identity_assertion.email_attribute",
					 v ? json_object_get(v, "email_attribute") : NULL, "Email");
	a->groups_attr = config_string_or(ld, "saml.identity_assertion.groups_attribute",
					  v ? json_object_get(v, "groups_attribute") : NULL, "Roles");
	a->jwks_path = config_string_or(ld, "saml.identity_assertion.jwks_path",
					v ? json_object_get(v, "jwks_path") : NULL,
					"/.well-known/jwks.json");
	if (a->jwks_path != NULL && (a->jwks_path[0] != '/' || strpbrk(a->jwks_path, "?#") != NULL))
		config_error(ld, "saml.identity_assertion.jwks_path", "\"%s\" is not a path",
			     a->jwks_path);
	if (v != NULL && (f = json_object_get(v, "lifetime")) != NULL &&
	    config_seconds(ld, "saml.identity_assertion.lifetime", f, &a->lifetime) &&
	    (a->lifetime < 10 || a->lifetime > 3600))
		config_error(ld, "saml.identity_assertion.lifetime",
			     "%.0f s: keep it short, between 10 and 3600 s", a->lifetime);
	if (v != NULL && (f = json_object_get(v, "key_env")) != NULL)
		a->key_env = config_string(ld, "saml.identity_assertion.key_env", f);
	/* as for the session keys: with "key_env" and no "key_file", the keys
	 * come from the variable alone */
	if (v != NULL && (f = json_object_get(v, "key_file")) != NULL)
		a->key_file = config_string(ld, "saml.identity_assertion.key_file", f);
	if (a->key_file != NULL && a->key_file[0] == '\0') {
		free(a->key_file);
		a->key_file = NULL;
	}
	if (a->key_file == NULL && a->key_env == NULL &&
	    asprintf(&a->key_file, "%s/identity-jwt.key", dir) < 0) {
		a->key_file = NULL;
		ld->oom = true;
	}
}

void
config_parse_assertion_use(struct config_loader *ld, const char *path, const json_t *v, int *on,
			   char **audience)
{
	char kp[CONFIG_JPATH_MAX];

	if (json_is_boolean(v)) {
		*on = json_is_true(v) ? 1 : -1;
		return;
	}
	if (!json_is_object(v)) {
		config_type_error(ld, path, "true, false or {\"audience\": \"...\"}", v);
		return;
	}
	if (config_object(ld, path, v, config_assertion_use_keys) == NULL)
		return;
	*on = 1;
	if (json_object_get(v, "audience") != NULL) {
		*audience = config_string(ld, config_jkey(kp, path, "audience"),
					  json_object_get(v, "audience"));
		if (*audience != NULL && (*audience)[0] == '\0')
			config_error(ld, kp, "must not be empty");
	}
}

/* Check placement (SAML routes only) and note whether any route uses it. */
void
config_assertion_sites(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX], sp[CONFIG_JPATH_MAX], rp[CONFIG_JPATH_MAX];

	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct config_site *s = &cfg->sites[i];
		bool saml_route = false;

		for (size_t j = 0; j < s->nroutes; j++) {
			const struct config_route *r = &s->routes[j];
			int on = r->assertion ? r->assertion : s->assertion;

			saml_route |= r->auth == AUTH_SAML;
			if (r->assertion != 0 && r->auth != AUTH_SAML) {
				config_jidx(rp, config_jkey(sp, config_jidx(kp, "sites", i), "routes"), j);
				config_error(ld, config_jkey(kp, rp, "identity_assertion"),
					     "needs \"auth\": \"saml\" (the assertion says who "
					     "signed in)");
			}
			if (on > 0 && r->auth == AUTH_SAML && cfg->saml != NULL)
				cfg->saml->assertion.used = true;
		}
		if (s->assertion != 0 && !saml_route)
			config_error(ld, config_jkey(kp, config_jidx(sp, "sites", i),
						     "identity_assertion"),
				     "no route of this site has \"auth\": \"saml\"");
	}
}

/* Load the keys when a route uses them; in a check (-t), read an existing
 * key file and create nothing. */
void
config_assertion_open(struct config_loader *ld)
{
	struct config_assertion *a = ld->cfg->saml ? &ld->cfg->saml->assertion : NULL;
	const char *env = NULL;
	const char *file;
	char why[1024];
	struct stat st;

	if (a == NULL || !a->used || ld->nerrors > 0 || ld->oom)
		return;
	if (a->key_env != NULL) {
		env = ld->getenv_fn(a->key_env);
		if (env == NULL || env[0] == '\0') {
			config_error(ld, "saml.identity_assertion.key_env",
				     "the variable %s is not set", a->key_env);
			return;
		}
	}
	file = a->key_file;
	if (ld->no_side_effects && file != NULL && stat(file, &st) != 0) {
		file = NULL; /* created at start */
		if (env == NULL)
			return;
	}
	a->keys = jwt_keys_load(file, env, !ld->no_side_effects, why, sizeof why);
	if (a->keys == NULL)
		config_error(ld, a->key_env && !a->key_file ? "saml.identity_assertion.key_env"
							     : "saml.identity_assertion.key_file",
			     "%s", why);
	if (ld->no_side_effects) {
		jwt_keys_free(a->keys);
		a->keys = NULL;
	}
}

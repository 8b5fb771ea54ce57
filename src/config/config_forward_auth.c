/*
 * config_forward_auth: "saml.forward_auth" (docs/forward-auth.md): the path
 * of the verify endpoint that nginx auth_request, ingress-nginx auth-url,
 * Traefik forwardAuth and Caddy forward_auth call.  Only "trusted_proxies"
 * may call it, so the section needs that list.
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <string.h>

static const char *const config_forward_auth_keys[] = { "path", NULL };

void
config_parse_saml_forward_auth(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	struct config_forward_auth *fa = &sc->forward_auth;
	const json_t *f;

	if (v == NULL || json_is_null(v) ||
	    config_object(ld, "saml.forward_auth", v, config_forward_auth_keys) == NULL)
		return;
	if ((f = json_object_get(v, "path")) == NULL) {
		config_missing(ld, "saml.forward_auth", "path",
			       "the verify endpoint's path, e.g. \"/_portcullis/verify\"");
		return;
	}
	fa->path = config_string(ld, "saml.forward_auth.path", f);
	if (fa->path == NULL)
		return;
	if (fa->path[0] != '/' || strcmp(fa->path, "/") == 0 ||
	    strpbrk(fa->path, "?#\\ \t\r\n%") != NULL || strstr(fa->path, "//") != NULL ||
	    strstr(fa->path, "/.") != NULL)
		config_error(ld, "saml.forward_auth.path",
			     "\"%s\" is not a path like \"/_portcullis/verify\"", fa->path);
	if (ld->cfg->ntrusted_proxies == 0)
		config_error(ld, "saml.forward_auth",
			     "needs \"trusted_proxies\": only the proxies listed there may ask the "
			     "verify endpoint about a request (they vouch for X-Original-URL and "
			     "X-Forwarded-Uri)");
}

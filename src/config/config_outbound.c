/*
 * config_outbound: a configuration that makes outbound HTTPS requests loads
 * libcurl while it is read (http/outbound.h), so that -t reports a missing
 * libcurl and a start or reload loads it on the main thread, before the
 * threads that use it (the IdP metadata refresh) exist.  A configuration
 * without such a setting never maps libcurl.
 */
#include "config/config_internal.h"

#include <stdio.h>
#include <strings.h>

#include "http/outbound.h"

/* The JSON path of the first setting of <cfg> that makes outbound HTTPS
 * requests (ACME, OCSP stapling, an IdP metadata URL), or NULL. */
static const char *
config_outbound_user(const struct config *cfg)
{
	const struct config_saml *sc = cfg->saml;

	if (cfg->tls != NULL && cfg->tls->acme != NULL)
		return "tls.acme";
	if (cfg->tls != NULL && cfg->tls->ocsp_stapling)
		return "tls.ocsp_stapling";
	if (sc != NULL && sc->idp_metadata != NULL &&
	    (strncasecmp(sc->idp_metadata, "https://", 8) == 0 ||
	     strncasecmp(sc->idp_metadata, "http://", 7) == 0))
		return "saml.idp_metadata";
	return NULL;
}

/*
 * Load libcurl when the configuration being read needs it (also for
 * config_check_file: loading it creates nothing); if it cannot be loaded,
 * an error at the JSON path of the setting that needs it.  Call it after
 * "tls" and "saml" are read and before SAML opens (which fetches metadata).
 */
void
config_outbound_open(struct config_loader *ld)
{
	const char *user;
	char why[512];

	if (ld->nerrors > 0 || ld->oom || (user = config_outbound_user(ld->cfg)) == NULL)
		return;
	if (outbound_init(why, sizeof why) < 0)
		config_error(ld, user, "needs libcurl for its outbound HTTPS requests: %s", why);
}

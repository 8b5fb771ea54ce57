/*
 * config_saml_hosts: "saml.hosts" (docs/saml.md#several-hosts-one-sign-in):
 * the other origins that share the sign-in of saml.base_url (the auth host,
 * the one ACS) through hand-off redirects.  Each must be an origin, not the
 * auth host, listed once, and served by a site whose routes include
 * "auth": "saml" and match GET <prefix>/handoff.
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/router.h"

/* The authority of an origin ("https://h:1" → "h:1"). */
static const char *
config_origin_authority(const char *origin)
{
	const char *p = strstr(origin, "://");

	return p ? p + 3 : origin;
}

/* One entry: "https://host[:port]" (or http://), lower-cased, no trailing "/". */
static void
config_saml_host_entry(struct config_loader *ld, const char *path, char *o)
{
	size_t n = strlen(o);
	char why[300];

	while (n > 0 && o[n - 1] == '/')
		o[--n] = '\0';
	for (char *c = o; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if ((strncmp(o, "https://", 8) != 0 && strncmp(o, "http://", 7) != 0) ||
	    strpbrk(config_origin_authority(o), "/?#@\\ \t\r\n\"<>") != NULL) {
		config_error(ld, path,
			     "\"%s\" is not an origin; write \"https://host\" or \"https://host:port\" "
			     "(no path, no user name)",
			     o);
		return;
	}
	if (!config_host_value_ok(config_origin_authority(o), why, sizeof why)) {
		config_error(ld, path, "%s", why);
		return;
	}
	/* the default port is left out, as browsers leave it out of Host */
	n = strlen(o);
	if ((strncmp(o, "https://", 8) == 0 && n > 4 && strcmp(o + n - 4, ":443") == 0) ||
	    (strncmp(o, "http://", 7) == 0 && n > 3 && strcmp(o + n - 3, ":80") == 0))
		*strrchr(o, ':') = '\0';
}

/* Parse "saml.hosts" <v> (may be NULL) into sc->hosts. */
void
config_parse_saml_hosts(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	char ip[CONFIG_JPATH_MAX];

	if (v == NULL || json_is_null(v))
		return;
	if (!config_string_list(ld, "saml.hosts", v, false,
				"a list of origins (\"https://host\") that sign in through base_url",
				&sc->hosts, &sc->nhosts))
		return;
	for (size_t i = 0; i < sc->nhosts; i++) {
		config_jidx(ip, "saml.hosts", i);
		if (sc->hosts[i] == NULL)
			continue;
		config_saml_host_entry(ld, ip, sc->hosts[i]);
		if (sc->base_url != NULL && strcasecmp(sc->hosts[i], sc->base_url) == 0)
			config_error(ld, ip, "\"%s\" is saml.base_url, the auth host itself; list only "
					     "the other hosts",
				     sc->hosts[i]);
		for (size_t j = 0; j < i; j++)
			if (sc->hosts[j] != NULL && strcmp(sc->hosts[i], sc->hosts[j]) == 0)
				config_error(ld, ip, "\"%s\" is listed twice (also saml.hosts[%zu])",
					     sc->hosts[i], j);
	}
}

/* Every entry of "saml.hosts" is served by a site with SAML routes that
 * routes GET <prefix>/handoff (run after config_saml_sites). */
void
config_saml_hosts_sites(struct config_loader *ld)
{
	struct config_saml *sc = ld->cfg->saml;
	char ip[CONFIG_JPATH_MAX], host[300], *handoff;

	if (sc == NULL || sc->nhosts == 0 || ld->nerrors > 0 || ld->oom)
		return;
	if (asprintf(&handoff, "%s/handoff", sc->prefix) < 0) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < sc->nhosts; i++) {
		const struct config_site *site;

		config_jidx(ip, "saml.hosts", i);
		if (router_normalize_host(config_origin_authority(sc->hosts[i]), host, sizeof host) < 0)
			continue; /* reported by config_parse_saml_hosts */
		site = router_find_site(ld->cfg, host);
		if (site == NULL)
			config_error(ld, ip, "no site serves the host \"%s\"; add it to a site's \"hosts\"",
				     host);
		else if (!site->saml_endpoints)
			config_error(ld, ip, "site \"%s\", which serves \"%s\", has no route with "
					     "\"auth\": \"saml\" (nothing there needs the sign-in)",
				     site->name ? site->name : "?", host);
		else if (router_match(site, handoff, METHOD_GET) == NULL)
			config_error(ld, ip, "no route of site \"%s\" matches GET %s; add a route for it "
					     "(a catch-all route does)",
				     site->name ? site->name : "?", handoff);
	}
	free(handoff);
}

/*
 * config_client_auth: "client_certificates" of listeners and sites (mTLS,
 * docs/tls.md#client-certificates) into one tls_client_auth_map per TLS HTTP
 * listener: each site's host names get the site's policy, or the listener's;
 * clients without SNI or with another name get the default site's, or the
 * listener's.
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_clientauth.h"

static const char *const config_client_cert_keys[] = { "ca", "required", NULL };

/* One "client_certificates" block as written. */
struct client_cert_block {
	char *ca;
	bool required;
	bool present;
	bool failed; /* its CA bundle was refused (reported once) */
};

/* A boolean that may be written as a string after env substitution. */
static bool
json_truthy(const json_t *v)
{
	return json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
}

static void
parse_block(struct config_loader *ld, const char *path, const json_t *v,
	    struct client_cert_block *b)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;

	if (v == NULL || json_is_null(v))
		return;
	if (config_object(ld, path, v, config_client_cert_keys) == NULL)
		return;
	b->present = true;
	b->required = true;
	if ((f = json_object_get(v, "ca")) == NULL) {
		config_missing(ld, path, "ca",
			       "the PEM file of the CA certificates that issue client certificates");
		b->failed = true;
	} else if ((b->ca = config_string(ld, config_jkey(kp, path, "ca"), f)) == NULL ||
		   b->ca[0] == '\0') {
		if (b->ca != NULL)
			config_error(ld, kp, "is empty; give the path of a PEM CA bundle");
		b->failed = true;
	}
	config_bool(ld, config_jkey(kp, path, "required"), json_object_get(v, "required"),
		    &b->required);
}

/* The policy number of <b> in <m> (-1: none); a CA bundle that cannot be
 * used is reported once, at <path>.ca. */
static int
block_policy(struct config_loader *ld, const char *path, struct client_cert_block *b,
	     struct tls_client_auth_map *m)
{
	char kp[CONFIG_JPATH_MAX], why[512];
	int p;

	if (!b->present || b->failed)
		return -1;
	p = tls_client_auth_map_policy(m, b->ca, b->required, why, sizeof(why));
	if (p < 0) {
		config_error(ld, config_jkey(kp, path, "ca"), "%s", why);
		b->failed = true;
	}
	return p;
}

static bool
site_serves(const struct config *cfg, const struct config_site *s, size_t listener)
{
	if (!cfg->listeners[listener].has_sites)
		return s->nlisteners == 0;
	for (size_t i = 0; i < s->nlisteners; i++)
		if (s->listener_index != NULL && s->listener_index[i] == listener)
			return true;
	return false;
}

/* Build listener <li>'s map from its block <lb> and the sites' <sb>. */
static void
build_map(struct config_loader *ld, size_t li, struct client_cert_block *lb,
	  struct client_cert_block *sb)
{
	struct config *cfg = ld->cfg;
	struct config_listener *l = &cfg->listeners[li];
	const struct config_site *dflt = l->has_sites ? l->default_site : cfg->default_site;
	struct tls_client_auth_map *m = tls_client_auth_map_new();
	char ip[CONFIG_JPATH_MAX], sp[CONFIG_JPATH_MAX];
	int lp, dp;

	if (m == NULL) {
		ld->oom = true;
		return;
	}
	lp = block_policy(ld, config_jkey(ip, config_jidx(sp, "listeners", li), "client_certificates"),
			  &lb[li], m);
	dp = lp;
	for (size_t s = 0; s < cfg->nsites; s++) {
		const struct config_site *site = &cfg->sites[s];
		int p = lp;

		if (!site_serves(cfg, site, li))
			continue;
		if (sb[s].present)
			p = block_policy(ld, config_jkey(ip, config_jidx(sp, "sites", s),
							 "client_certificates"),
					 &sb[s], m);
		if (site == dflt)
			dp = p;
		for (size_t h = 0; h < site->nhosts; h++)
			if (site->hosts[h] != NULL &&
			    tls_client_auth_map_name(m, site->hosts[h], p) < 0)
				ld->oom = true;
	}
	tls_client_auth_map_default(m, dp);
	if (tls_client_auth_map_active(m))
		l->client_auth = m;
	else
		tls_client_auth_map_unref(m);
}

/* True when site <s> is served by listener <li>, a plain-HTTP listener that
 * does not redirect to HTTPS (no certificate can be asked for there). */
static bool
served_in_clear(struct config_loader *ld, const json_t *lv, const struct config_site *s, size_t li)
{
	const struct config_listener *l = &ld->cfg->listeners[li];
	const json_t *e = json_array_get(lv, li);

	return l->type == LISTENER_HTTP && site_serves(ld->cfg, s, li) &&
	       !json_truthy(json_object_get(e, "tls")) &&
	       !json_truthy(json_object_get(e, "redirect_https"));
}

/*
 * Listeners' and sites' "client_certificates" (after the sites, before the
 * "tls" block may drop listeners): checked, and a map on every TLS HTTP
 * listener where some name has a policy.
 */
void
config_parse_client_auth(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *lv = json_object_get(root, "listeners");
	const json_t *sv = json_object_get(root, "sites");
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	struct client_cert_block *lb, *sb;
	bool any = false;

	if (!json_is_array(lv) || cfg->listeners == NULL || json_array_size(lv) < cfg->nlisteners)
		return;
	lb = calloc(cfg->nlisteners + 1, sizeof(*lb));
	sb = calloc(cfg->nsites + 1, sizeof(*sb));
	if (lb == NULL || sb == NULL) {
		ld->oom = true;
		goto out;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const json_t *e = json_array_get(lv, i);

		config_jkey(kp, config_jidx(ip, "listeners", i), "client_certificates");
		if (!json_is_object(e) || json_object_get(e, "client_certificates") == NULL)
			continue;
		parse_block(ld, kp, json_object_get(e, "client_certificates"), &lb[i]);
		if (!lb[i].present)
			continue;
		any = true;
		if (cfg->listeners[i].type != LISTENER_HTTP)
			config_error(ld, kp, "only on HTTP listeners (a \"tcp\" listener relays bytes "
					     "as they are)");
		else if (!json_truthy(json_object_get(e, "tls")))
			config_error(ld, kp, "only on a listener with \"tls\": true");
	}
	for (size_t s = 0; json_is_array(sv) && s < cfg->nsites && s < json_array_size(sv); s++) {
		const json_t *e = json_array_get(sv, s);

		config_jkey(kp, config_jidx(ip, "sites", s), "client_certificates");
		if (!json_is_object(e) || json_object_get(e, "client_certificates") == NULL)
			continue;
		parse_block(ld, kp, json_object_get(e, "client_certificates"), &sb[s]);
		if (!sb[s].present)
			continue;
		any = true;
		for (size_t li = 0; li < cfg->nlisteners; li++) {
			if (!served_in_clear(ld, lv, &cfg->sites[s], li))
				continue;
			config_error(ld, kp,
				     "the site is also served in plain HTTP by listener \"%s\", where "
				     "no certificate can be asked for; bind the site to its TLS "
				     "listeners (\"listeners\") or give that one \"redirect_https\"",
				     cfg->listeners[li].name ? cfg->listeners[li].name : "");
			break;
		}
	}
	for (size_t li = 0; any && li < cfg->nlisteners; li++)
		if (cfg->listeners[li].type == LISTENER_HTTP &&
		    json_truthy(json_object_get(json_array_get(lv, li), "tls")))
			build_map(ld, li, lb, sb);
out:
	for (size_t i = 0; lb && i < cfg->nlisteners; i++)
		free(lb[i].ca);
	for (size_t i = 0; sb && i < cfg->nsites; i++)
		free(sb[i].ca);
	free(lb);
	free(sb);
}

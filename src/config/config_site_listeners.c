/*
 * config_site_listeners: "sites[i].listeners", the listeners a site is bound
 * to.  A listener that some site names serves only the sites bound to it (and
 * its own default among them); sites that name no listener serve every other
 * HTTP listener, as before.  Names are resolved here, after "listeners".
 */
#include "config/config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "a, b, c": the names of the HTTP listeners, for messages. */
static void
config_http_listener_names(const struct config *cfg, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < cfg->nlisteners && used + 1 < len; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		int n;

		if (l->type != LISTENER_HTTP || l->name == NULL)
			continue;
		n = snprintf(buf + used, len - used, "%s\"%s\"", used ? ", " : "", l->name);
		if (n < 0)
			break;
		used += (size_t)n < len - used ? (size_t)n : len - used - 1;
	}
	if (used == 0)
		snprintf(buf, len, "none");
}

/*
 * Parse "listeners" of site <s> at <path>: every entry must name an HTTP
 * listener of the config (by its "name", or "listeners[N]" for one without),
 * once.  Marks those listeners as having sites of their own.
 */
void
config_parse_site_listeners(struct config_loader *ld, const char *path, const json_t *v,
			    struct config_site *s)
{
	struct config *cfg = ld->cfg;
	char ip[CONFIG_JPATH_MAX];
	char known[512];

	if (!config_string_list(ld, path, v, true,
				"an array of listener names such as [\"temporal-ui\"]", &s->listeners,
				&s->nlisteners))
		return;
	s->listener_index = calloc(s->nlisteners ? s->nlisteners : 1, sizeof *s->listener_index);
	if (s->listener_index == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < s->nlisteners; i++) {
		const char *name = s->listeners[i];
		struct config_listener *l = NULL;

		s->listener_index[i] = SIZE_MAX;
		if (name == NULL)
			continue;
		for (size_t j = 0; j < cfg->nlisteners && l == NULL; j++)
			if (cfg->listeners[j].name != NULL && strcmp(cfg->listeners[j].name, name) == 0)
				l = &cfg->listeners[j];
		config_jidx(ip, path, i);
		if (l == NULL) {
			config_http_listener_names(cfg, known, sizeof known);
			config_error(ld, ip,
				     "no listener named \"%s\"; HTTP listeners: %s (give the listener "
				     "a \"name\", or write \"listeners[N]\" for one without)",
				     name, known);
			continue;
		}
		if (l->type != LISTENER_HTTP) {
			config_error(ld, ip,
				     "listener \"%s\" (listeners[%zu]) is a TCP relay (\"type\": "
				     "\"tcp\"): it relays bytes to its \"upstream\" and serves no "
				     "sites; bind the site to an HTTP listener, or remove \"type\": "
				     "\"tcp\" from that listener",
				     name, l->index);
			continue;
		}
		for (size_t k = 0; k < i; k++) {
			if (s->listener_index[k] == l->index) {
				config_error(ld, ip, "listener \"%s\" is named twice", name);
				break;
			}
		}
		s->listener_index[i] = l->index;
		l->has_sites = true;
	}
}

/* True when <s> is bound to listener <index>. */
static bool
config_site_on(const struct config_site *s, size_t index)
{
	for (size_t i = 0; i < s->nlisteners; i++)
		if (s->listener_index != NULL && s->listener_index[i] == index)
			return true;
	return false;
}

/*
 * True when sites <a> and <b> can serve the same listener: both unbound, or
 * both bound to one same listener.  Only such sites must not share a host.
 */
bool
config_sites_share_listener(const struct config_site *a, const struct config_site *b)
{
	if (a->nlisteners == 0 || b->nlisteners == 0)
		return a->nlisteners == 0 && b->nlisteners == 0;
	for (size_t i = 0; i < a->nlisteners; i++)
		if (a->listener_index != NULL && config_site_on(b, a->listener_index[i]))
			return true;
	return false;
}

/*
 * The default site of each listener with sites of its own: the one bound
 * site marked "default", else its only bound site without hosts (which
 * then serves every host on it), else none (other hosts get 404).
 */
void
config_bind_defaults(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	char ip[CONFIG_JPATH_MAX];

	for (size_t l = 0; l < cfg->nlisteners; l++) {
		struct config_listener *lis = &cfg->listeners[l];
		struct config_site *marked = NULL, *hostless = NULL;
		size_t nhostless = 0;

		if (!lis->has_sites)
			continue;
		for (size_t i = 0; i < cfg->nsites; i++) {
			struct config_site *s = &cfg->sites[i];

			if (!config_site_on(s, l))
				continue;
			if (s->is_default && marked != NULL && marked != s) {
				config_jidx(ip, "sites", i);
				config_error(ld, config_jkey(kp, ip, "default"),
					     "site \"%s\" is also marked default on listener \"%s\", "
					     "like \"%s\"; only one site of a listener may be",
					     s->name ? s->name : "", lis->name ? lis->name : "",
					     marked->name ? marked->name : "");
			} else if (s->is_default) {
				marked = s;
			}
			if (s->nhosts == 0) {
				nhostless++;
				hostless = s;
			}
		}
		lis->default_site = marked != NULL ? marked : (nhostless == 1 ? hostless : NULL);
	}
}

/*
 * Listener <i> was removed from config.listeners (its "tls" with "mode":
 * "off"): sites bound to it no longer serve it (SIZE_MAX never matches), and
 * the positions after it move down by one.
 */
void
config_sites_listener_dropped(struct config *cfg, size_t i)
{
	for (size_t s = 0; s < cfg->nsites; s++) {
		struct config_site *site = &cfg->sites[s];

		for (size_t k = 0; site->listener_index != NULL && k < site->nlisteners; k++) {
			if (site->listener_index[k] == SIZE_MAX)
				continue;
			if (site->listener_index[k] == i)
				site->listener_index[k] = SIZE_MAX;
			else if (site->listener_index[k] > i)
				site->listener_index[k]--;
		}
	}
}

/* True when a site before sites[<site>] names <host> too (possible for sites
 * bound to different listeners): certificates are made once per name. */
bool
config_host_seen_before(const struct config *cfg, size_t site, const char *host)
{
	for (size_t i = 0; i < site && i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nhosts; j++)
			if (cfg->sites[i].hosts[j] != NULL && strcmp(cfg->sites[i].hosts[j], host) == 0)
				return true;
	return false;
}

/* Remove from <hosts> (<n> names of sites[<site>]) those an earlier site
 * names; returns how many are left. */
size_t
config_hosts_drop_seen(const struct config *cfg, size_t site, const char **hosts, size_t n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++)
		if (!config_host_seen_before(cfg, site, hosts[i]))
			hosts[kept++] = hosts[i];
	return kept;
}

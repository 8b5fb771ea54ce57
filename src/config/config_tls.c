/*
 * config_tls: "tls" (files, local CA, ACME), listeners' "tls" and
 * "redirect_https", sites' "hsts" (docs/tls.md).
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* TLS: listeners' "tls" and "redirect_https", sites' "hsts", "tls"     */

static const char *const config_tls_keys[] = { "mode", "certs_dir", "certificates", "local_ca",
					       "acme", "default_name", "ticket_rotate",
					       "watch_interval", "ocsp_stapling", NULL };
static const char *const config_tls_modes[] = { "all", "acme", "files", "local", "off", NULL };
static const char *const config_tls_file_keys[] = { "cert", "key", "names", NULL };
static const char *const config_local_ca_keys[] = { "names", "leaf_days", NULL };
static const char *const config_acme_keys[] = { "directory", "email", "ca_bundle", "eab_kid",
						"eab_hmac_key", "challenges", "orders",
						"retry_base", NULL };
static const char *const config_acme_order_keys[] = { "names", NULL };
static const char *const config_acme_challenges[] = { "http-01", "tls-alpn-01", NULL };
static const char *const config_hsts_keys[] = { "max_age", "include_subdomains", "preload",
						NULL };

#define CONFIG_ACME_PRODUCTION "https://acme-v02.api.letsencrypt.org/directory"

/* An optional string: absent, null or "" (an unset ${VAR:-}) give NULL. */
static char *
config_opt_string(struct config_loader *ld, const char *path, const json_t *v)
{
	char *s;

	if (v == NULL || json_is_null(v))
		return NULL;
	s = config_string(ld, path, v);
	if (s != NULL && s[0] == '\0') {
		free(s);
		s = NULL;
	}
	return s;
}

static void
config_lower(char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool
config_is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A list of certificate names at <v>: DNS names (with "*." when
 * <wildcards>) or, with <ips>, IP addresses.  Lower-cased. */
static bool
config_cert_names(struct config_loader *ld, const char *path, const json_t *v, bool wildcards,
		  bool ips, char ***out, size_t *nout)
{
	char ip[CONFIG_JPATH_MAX];
	bool ok = true;

	if (!config_string_list(ld, path, v, true, "an array of host names", out, nout))
		return false;
	for (size_t i = 0; i < *nout; i++) {
		char *n = (*out)[i];
		const char *why = NULL;

		if (n == NULL) {
			ok = false;
			continue;
		}
		config_lower(n);
		config_jidx(ip, path, i);
		if (ips && config_is_ip_literal(n))
			continue;
		if (strncmp(n, "*.", 2) == 0 && !wildcards) {
			config_error(ld, ip,
				     "\"%s\": wildcard names need the DNS-01 challenge, which is not "
				     "supported; list the names",
				     n);
			ok = false;
		} else if (!config_host_name_ok(strncmp(n, "*.", 2) == 0 ? n + 2 : n, false, &why)) {
			config_error(ld, ip, "\"%s\" is not a valid host name: %s", n, why);
			ok = false;
		}
	}
	return ok;
}

static void
config_parse_tls_files(struct config_loader *ld, const json_t *v, struct config_tls *t)
{
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	size_t n;

	if (!json_is_array(v)) {
		config_type_error(ld, "tls.certificates",
				  "an array of {\"cert\": \"chain.pem\", \"key\": \"key.pem\"}", v);
		return;
	}
	n = json_array_size(v);
	if (n == 0)
		return;
	t->certificates = calloc(n, sizeof *t->certificates);
	if (t->certificates == NULL) {
		ld->oom = true;
		return;
	}
	t->ncertificates = n;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		struct config_tls_file *c = &t->certificates[i];
		const json_t *f;

		config_jidx(ip, "tls.certificates", i);
		if (config_object(ld, ip, e, config_tls_file_keys) == NULL)
			continue;
		if ((f = json_object_get(e, "cert")) == NULL) {
			config_missing(ld, ip, "cert", "the path of a PEM certificate chain, leaf first");
			continue;
		}
		c->cert = config_string(ld, config_jkey(kp, ip, "cert"), f);
		if (c->cert != NULL && c->cert[0] == '\0')
			config_error(ld, kp, "is empty; give the path of a PEM certificate chain");
		if ((f = json_object_get(e, "key")) != NULL) {
			c->key = config_string(ld, config_jkey(kp, ip, "key"), f);
			if (c->key != NULL && c->key[0] == '\0')
				config_error(ld, kp, "is empty; give the path of the PEM private key");
		} else if (c->cert != NULL && (c->key = strdup(c->cert)) == NULL) {
			ld->oom = true;
		}
		if ((f = json_object_get(e, "names")) != NULL)
			config_cert_names(ld, config_jkey(kp, ip, "names"), f, true, true, &c->names,
					  &c->nnames);
	}
}

static void
config_parse_local_ca(struct config_loader *ld, const json_t *v, struct config_tls *t)
{
	const json_t *f;
	uint64_t days = 7;

	if (json_is_boolean(v) || json_is_string(v)) {
		config_bool(ld, "tls.local_ca", v, &t->local_ca);
		return;
	}
	if (config_object(ld, "tls.local_ca", v, config_local_ca_keys) == NULL)
		return;
	t->local_ca = true;
	if ((f = json_object_get(v, "names")) != NULL)
		config_cert_names(ld, "tls.local_ca.names", f, true, true, &t->local_names,
				  &t->nlocal_names);
	if ((f = json_object_get(v, "leaf_days")) != NULL &&
	    config_uint(ld, "tls.local_ca.leaf_days", f, UNIT_COUNT, 1, 397, &days))
		t->local_leaf_days = (unsigned)days;
}

static void
config_parse_acme(struct config_loader *ld, const json_t *v, struct config_tls *t)
{
	struct config_acme *a = calloc(1, sizeof *a);
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	const json_t *f;

	if (a == NULL) {
		ld->oom = true;
		return;
	}
	t->acme = a;
	if (v != NULL && config_object(ld, "tls.acme", v, config_acme_keys) == NULL)
		return;
	a->directory = config_opt_string(ld, "tls.acme.directory",
					 v ? json_object_get(v, "directory") : NULL);
	if (a->directory == NULL && !ld->oom && (a->directory = strdup(CONFIG_ACME_PRODUCTION)) == NULL)
		ld->oom = true;
	if (a->directory != NULL && strncmp(a->directory, "https://", 8) != 0)
		config_error(ld, "tls.acme.directory",
			     "\"%s\" is not an https:// URL (ACME directories are served over HTTPS; "
			     "Let's Encrypt: %s)",
			     a->directory, CONFIG_ACME_PRODUCTION);
	if (v == NULL)
		return;
	a->email = config_opt_string(ld, "tls.acme.email", json_object_get(v, "email"));
	if (a->email != NULL && (strchr(a->email, '@') == NULL || strpbrk(a->email, " \t,<>") != NULL))
		config_error(ld, "tls.acme.email", "\"%s\" is not an e-mail address", a->email);
	a->ca_bundle = config_opt_string(ld, "tls.acme.ca_bundle", json_object_get(v, "ca_bundle"));
	if (a->ca_bundle != NULL && access(a->ca_bundle, R_OK) != 0)
		config_error(ld, "tls.acme.ca_bundle", "cannot read %s: %s", a->ca_bundle,
			     strerror(errno));
	a->eab_kid = config_opt_string(ld, "tls.acme.eab_kid", json_object_get(v, "eab_kid"));
	a->eab_hmac_key = config_opt_string(ld, "tls.acme.eab_hmac_key",
					    json_object_get(v, "eab_hmac_key"));
	if ((a->eab_kid == NULL) != (a->eab_hmac_key == NULL))
		config_error(ld, a->eab_kid ? "tls.acme.eab_hmac_key" : "tls.acme.eab_kid",
			     "External Account Binding needs both \"eab_kid\" and \"eab_hmac_key\"");
	if ((f = json_object_get(v, "challenges")) != NULL) {
		if (!json_is_array(f) || json_array_size(f) == 0) {
			config_type_error(ld, "tls.acme.challenges",
					  "a non-empty array of \"http-01\", \"tls-alpn-01\"", f);
		} else {
			for (size_t i = 0; i < json_array_size(f); i++) {
				int c = 0;

				if (config_enum(ld, config_jidx(ip, "tls.acme.challenges", i),
						json_array_get(f, i), config_acme_challenges, &c))
					a->challenges |= 1u << c;
			}
		}
	}
	if ((f = json_object_get(v, "retry_base")) != NULL) {
		uint64_t s = 0;

		if (config_uint(ld, "tls.acme.retry_base", f, UNIT_COUNT, 1, 86400, &s))
			a->retry_base = (unsigned)s;
	}
	if ((f = json_object_get(v, "orders")) != NULL) {
		if (!json_is_array(f) || json_array_size(f) == 0) {
			config_type_error(ld, "tls.acme.orders",
					  "a non-empty array of {\"names\": [\"example.com\", ...]}", f);
			return;
		}
		a->orders = calloc(json_array_size(f), sizeof *a->orders);
		if (a->orders == NULL) {
			ld->oom = true;
			return;
		}
		a->norders = json_array_size(f);
		for (size_t i = 0; i < a->norders; i++) {
			const json_t *o = json_array_get(f, i);

			config_jidx(ip, "tls.acme.orders", i);
			if (config_object(ld, ip, o, config_acme_order_keys) == NULL)
				continue;
			if (json_object_get(o, "names") == NULL)
				config_missing(ld, ip, "names", "the DNS names of one certificate");
			else
				config_cert_names(ld, config_jkey(kp, ip, "names"),
						  json_object_get(o, "names"), false, false,
						  &a->orders[i].names, &a->orders[i].nnames);
		}
	}
}

/* The non-wildcard, non-IP hosts of site <s> (borrowed pointers) into <out>. */
static size_t
config_site_plain_hosts(const struct config_site *s, const char **out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nhosts; i++)
		if (s->hosts[i] != NULL && strncmp(s->hosts[i], "*.", 2) != 0 &&
		    !config_is_ip_literal(s->hosts[i]))
			out[n++] = s->hosts[i];
	return n;
}

static bool
config_strdup_list(const char *const *in, size_t n, char ***out, size_t *nout)
{
	*out = calloc(n ? n : 1, sizeof **out);
	if (*out == NULL)
		return false;
	*nout = n;
	for (size_t i = 0; i < n; i++)
		if (((*out)[i] = strdup(in[i])) == NULL)
			return false;
	return true;
}

/* Defaults taken from the sites: local CA names, one ACME order per site. */
static void
config_tls_defaults(struct config_loader *ld, struct config_tls *t)
{
	const struct config *cfg = ld->cfg;
	size_t total = 0;
	const char **hosts;

	for (size_t i = 0; i < cfg->nsites; i++)
		total += cfg->sites[i].nhosts;
	hosts = calloc(total + 1, sizeof *hosts);
	if (hosts == NULL) {
		ld->oom = true;
		return;
	}
	if (t->local_ca && t->local_names == NULL) {
		size_t n = 0;

		for (size_t i = 0; i < cfg->nsites; i++) {
			for (size_t j = 0; j < cfg->sites[i].nhosts; j++) {
				const char *h = cfg->sites[i].hosts[j];

				if (h != NULL && strncmp(h, "*.", 2) != 0 &&
				    !config_host_seen_before(cfg, i, h))
					hosts[n++] = h;
			}
		}
		if (n > 0 && !config_strdup_list(hosts, n, &t->local_names, &t->nlocal_names))
			ld->oom = true;
	}
	if (t->acme != NULL && t->acme->orders == NULL) {
		struct config_acme *a = t->acme;

		a->orders = calloc(cfg->nsites ? cfg->nsites : 1, sizeof *a->orders);
		if (a->orders == NULL) {
			ld->oom = true;
			goto out;
		}
		for (size_t i = 0; i < cfg->nsites; i++) {
			size_t n = config_hosts_drop_seen(
				cfg, i, hosts, config_site_plain_hosts(&cfg->sites[i], hosts));

			if (n == 0)
				continue;
			if (!config_strdup_list(hosts, n, &a->orders[a->norders].names,
						&a->orders[a->norders].nnames))
				ld->oom = true;
			a->norders++;
		}
		if (a->norders == 0)
			config_error(ld, "tls.acme",
				     "no site has a host name to order a certificate for (wildcards and "
				     "IP addresses cannot be ordered); add \"orders\"");
	}
out:
	free(hosts);
}

/* The "tls" block (after the sites).  Returns its mode. */
static int
config_parse_tls(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "tls");
	struct config_tls *t;
	const json_t *f;
	int mode = TLS_MODE_ALL;

	if (v == NULL || json_is_null(v))
		return TLS_MODE_ALL;
	if (config_object(ld, "tls", v, config_tls_keys) == NULL)
		return TLS_MODE_ALL;
	config_enum(ld, "tls.mode", json_object_get(v, "mode"), config_tls_modes, &mode);
	if (mode == TLS_MODE_OFF)
		return mode;
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		ld->oom = true;
		return mode;
	}
	ld->cfg->tls = t;
	t->mode = (enum config_tls_mode)mode;
	t->watch_interval = 5;
	t->ocsp_stapling = true;
	config_bool(ld, "tls.ocsp_stapling", json_object_get(v, "ocsp_stapling"), &t->ocsp_stapling);
	t->certs_dir = config_string_or(ld, "tls.certs_dir", json_object_get(v, "certs_dir"), "certs");
	if (t->certs_dir != NULL && t->certs_dir[0] == '\0')
		config_error(ld, "tls.certs_dir", "is empty; give a folder such as \"certs\"");
	t->default_name = config_opt_string(ld, "tls.default_name", json_object_get(v, "default_name"));
	config_lower(t->default_name);
	if ((f = json_object_get(v, "ticket_rotate")) != NULL) {
		uint64_t s = 0;

		if (config_uint(ld, "tls.ticket_rotate", f, UNIT_COUNT, 60, 7 * 86400, &s))
			t->ticket_rotate = (unsigned)s;
	}
	if (config_seconds(ld, "tls.watch_interval", json_object_get(v, "watch_interval"),
			   &t->watch_interval) &&
	    (t->watch_interval < 0.1 || t->watch_interval > 3600))
		config_error(ld, "tls.watch_interval", "%g s is out of range (0.1 to 3600 seconds)",
			     t->watch_interval);
	if ((mode == TLS_MODE_ALL || mode == TLS_MODE_FILES) &&
	    (f = json_object_get(v, "certificates")) != NULL)
		config_parse_tls_files(ld, f, t);
	if (mode == TLS_MODE_ALL || mode == TLS_MODE_LOCAL) {
		if ((f = json_object_get(v, "local_ca")) != NULL)
			config_parse_local_ca(ld, f, t);
		if (mode == TLS_MODE_LOCAL)
			t->local_ca = true;
	}
	if ((mode == TLS_MODE_ALL && (f = json_object_get(v, "acme")) != NULL && !json_is_null(f) &&
	     !json_is_false(f)) ||
	    mode == TLS_MODE_ACME)
		config_parse_acme(ld, json_is_object(json_object_get(v, "acme")) ? json_object_get(v, "acme")
										  : NULL,
				  t);
	if (mode == TLS_MODE_FILES && t->ncertificates == 0)
		config_error(ld, "tls.certificates",
			     "\"mode\": \"files\" needs at least one {\"cert\", \"key\"} entry");
	else if (mode == TLS_MODE_ALL && t->ncertificates == 0 && !t->local_ca && t->acme == NULL)
		config_error(ld, "tls",
			     "no certificate source: add \"certificates\", \"local_ca\": true or "
			     "\"acme\"");
	config_tls_defaults(ld, t);
	return mode;
}

static void
config_parse_hsts(struct config_loader *ld, const char *path, const json_t *v,
		  struct config_hsts *h)
{
	const json_t *f;
	char kp[CONFIG_JPATH_MAX];

	if (v == NULL || json_is_null(v) || config_object(ld, path, v, config_hsts_keys) == NULL)
		return;
	h->enabled = true;
	h->max_age = 31536000;
	if ((f = json_object_get(v, "max_age")) != NULL)
		config_uint(ld, config_jkey(kp, path, "max_age"), f, UNIT_COUNT, 0, 2 * 31536000ULL,
			    &h->max_age);
	config_bool(ld, config_jkey(kp, path, "include_subdomains"),
		    json_object_get(v, "include_subdomains"), &h->include_subdomains);
	config_bool(ld, config_jkey(kp, path, "preload"), json_object_get(v, "preload"), &h->preload);
	if (h->preload && (!h->include_subdomains || h->max_age < 31536000))
		config_error(ld, config_jkey(kp, path, "preload"),
			     "preload lists take only \"include_subdomains\": true with a \"max_age\" "
			     "of at least 31536000 (one year)");
}

/* Drop listener <i> (its "tls" is off with "mode": "off"). */
static void
config_drop_listener(struct config *cfg, size_t i)
{
	config_listener_clear(&cfg->listeners[i]);
	memmove(&cfg->listeners[i], &cfg->listeners[i + 1],
		(cfg->nlisteners - i - 1) * sizeof *cfg->listeners);
	cfg->nlisteners--;
	for (size_t j = 0; j < cfg->nlisteners; j++)
		cfg->listeners[j].index = j;
	config_sites_listener_dropped(cfg, i);
}

/* The "tls" block, listeners' "tls" and "redirect_https", sites' "hsts". */
void
config_finish_tls(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *lv = json_object_get(root, "listeners");
	const json_t *sv = json_object_get(root, "sites");
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	int mode = config_parse_tls(ld, root);
	bool any_tls = false;
	size_t nlisteners = cfg->nlisteners;
	bool *drop;

	for (size_t i = 0; json_is_array(sv) && i < cfg->nsites && i < json_array_size(sv); i++)
		config_parse_hsts(ld, config_jkey(kp, config_jidx(ip, "sites", i), "hsts"),
				  json_object_get(json_array_get(sv, i), "hsts"), &cfg->sites[i].hsts);
	if (!json_is_array(lv) || cfg->listeners == NULL)
		return;
	for (size_t i = 0; i < nlisteners && i < json_array_size(lv); i++) {
		struct config_listener *l = &cfg->listeners[i];
		const json_t *e = json_array_get(lv, i);

		if (!json_is_object(e))
			continue;
		config_jidx(ip, "listeners", i);
		config_bool(ld, config_jkey(kp, ip, "tls"), json_object_get(e, "tls"), &l->tls);
		config_bool(ld, config_jkey(kp, ip, "redirect_https"),
			    json_object_get(e, "redirect_https"), &l->redirect_https);
		any_tls = any_tls || l->tls;
	}
	drop = calloc(nlisteners + 1, sizeof *drop);
	if (drop == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < nlisteners; i++) {
		struct config_listener *l = &cfg->listeners[i];

		config_jidx(ip, "listeners", i);
		if (l->type == LISTENER_TCP && l->redirect_https) {
			config_error(ld, config_jkey(kp, ip, "redirect_https"),
				     "only for HTTP listeners (a \"tcp\" listener relays bytes as they "
				     "are)");
			continue;
		}
		if (l->type == LISTENER_TCP && l->tls && l->proxy_protocol) {
			config_error(ld, config_jkey(kp, ip, "tls"),
				     "not together with \"proxy_protocol\" on a \"tcp\" listener");
			continue;
		}
		if (l->tls && l->redirect_https) {
			config_error(ld, config_jkey(kp, ip, "redirect_https"),
				     "only for plain-HTTP listeners; this one has \"tls\": true");
			continue;
		}
		if (mode == TLS_MODE_OFF) {
			drop[i] = l->tls;
			l->redirect_https = false;
			continue;
		}
		if (l->tls && cfg->tls == NULL && json_object_get(root, "tls") == NULL)
			config_error(ld, config_jkey(kp, ip, "tls"),
				     "no \"tls\" block; add one with the certificates to serve, e.g. "
				     "\"tls\": {\"local_ca\": true} (docs/tls.md)");
		if (l->redirect_https && !any_tls)
			config_error(ld, config_jkey(kp, ip, "redirect_https"),
				     "no listener has \"tls\": true to redirect to");
	}
	if (mode == TLS_MODE_OFF && any_tls) {
		for (size_t i = nlisteners; i-- > 0;) {
			if (drop[i]) {
				config_drop_listener(cfg, i);
				cfg->tls_listeners_off++;
			}
		}
		if (cfg->nlisteners == 0)
			config_error(ld, "tls.mode",
				     "is \"off\" and every listener has \"tls\": true: nothing is left "
				     "to listen on");
	}
	free(drop);
}

/*
 * config_model: the configuration as the runtime holds it, apart from the
 * JSON loader: references, freeing, lookups.  No jansson here; see
 * config_model.h for the contract.
 */
#include "config/config_model.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/geoip.h"
#include "access/ipacl.h"
#include "access/ratelimit.h"
#include "auth/jwt.h"
#include "auth/policy.h"
#include "auth/saml.h"
#include "auth/stepup.h"
#include "auth/session.h"
#include "tls/tls_clientauth.h"

/* Free <n> strings and the array.  Accepts NULL. */
void
config_free_strings(char **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void
config_listener_clear(struct config_listener *l)
{
	if (l == NULL)
		return;
	free(l->name);
	free(l->address);
	free(l->host);
	free(l->port);
	config_free_strings(l->allow, l->nallow);
	config_free_strings(l->deny, l->ndeny);
	access_cidrs_free(l->acl);
	free(l->relay_upstream);
	for (size_t i = 0; l->relay_servers != NULL && i < l->nrelay_servers; i++) {
		free(l->relay_servers[i].address);
		free(l->relay_servers[i].host);
	}
	free(l->relay_servers);
	tls_client_auth_map_unref(l->client_auth);
}

static void
config_headers_free(struct config_header *h, size_t n)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static void
config_header_ops_clear(struct config_header_ops *ops)
{
	config_headers_free(ops->set, ops->nset);
	config_headers_free(ops->add, ops->nadd);
	config_free_strings(ops->remove, ops->nremove);
}

void
config_compress_free(struct config_compress *c)
{
	if (c == NULL)
		return;
	config_free_strings(c->types, c->ntypes);
	free(c);
}

static void
config_route_clear(struct config_route *r)
{
	free(r->name);
	config_free_strings(r->paths, r->npaths);
	config_free_strings(r->exact, r->nexact);
	config_free_strings(r->prefixes, r->nprefixes);
	free(r->strip_prefix);
	free(r->host);
	config_header_ops_clear(&r->request_headers);
	config_header_ops_clear(&r->response_headers);
	free(r->body);
	free(r->content_type);
	free(r->redirect_to);
	access_block_clear(&r->access);
	config_free_strings(r->allow_bearer, r->nallow_bearer);
	policy_free(r->require);
	stepup_free(r->step_up);
	free(r->assertion_audience);
	config_compress_free(r->compress);
}

static void
config_saml_free(struct config_saml *sc)
{
	if (sc == NULL)
		return;
	saml_free(sc->sp);
	session_keys_free(sc->keys);
	free(sc->idp_metadata);
	free(sc->idp_metadata_cache);
	free(sc->certs_dir);
	free(sc->base_url);
	free(sc->sp_entity_id);
	free(sc->prefix);
	free(sc->acs_path);
	free(sc->acs_url);
	free(sc->sp_key);
	free(sc->sp_cert);
	free(sc->session_key_file);
	free(sc->session_key_env);
	free(sc->cookie_name);
	for (size_t i = 0; i < sc->nheaders; i++) {
		free(sc->headers[i].name);
		free(sc->headers[i].attribute);
	}
	free(sc->headers);
	policy_free(sc->require);
	free(sc->assertion.header);
	free(sc->assertion.key_file);
	free(sc->assertion.key_env);
	free(sc->assertion.email_attr);
	free(sc->assertion.groups_attr);
	free(sc->assertion.jwks_path);
	jwt_keys_free(sc->assertion.keys);
	free(sc->encryption.key_file);
	free(sc->encryption.cert_file);
	free(sc->encryption.key_env);
	config_free_strings(sc->hosts, sc->nhosts);
	free(sc->forward_auth.path);
	free(sc);
}

static void
config_redis_wipe_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* Free a "redis" section (the password is wiped first).  Accepts NULL. */
static void
config_redis_free(struct config_redis *r)
{
	if (r == NULL)
		return;
	free(r->address);
	free(r->host);
	free(r->unix_path);
	free(r->username);
	config_redis_wipe_free(r->password);
	free(r->password_file);
	free(r->key_prefix);
	free(r);
}

/* Free an "acme" section (the EAB key is wiped first).  Accepts NULL. */
static void
config_acme_free(struct config_acme *a)
{
	if (a == NULL)
		return;
	free(a->directory);
	free(a->email);
	free(a->ca_bundle);
	free(a->eab_kid);
	if (a->eab_hmac_key != NULL)
		explicit_bzero(a->eab_hmac_key, strlen(a->eab_hmac_key));
	free(a->eab_hmac_key);
	for (size_t i = 0; a->orders != NULL && i < a->norders; i++)
		config_free_strings(a->orders[i].names, a->orders[i].nnames);
	free(a->orders);
	free(a);
}

static void
config_tls_free(struct config_tls *t)
{
	if (t == NULL)
		return;
	free(t->certs_dir);
	for (size_t i = 0; t->certificates != NULL && i < t->ncertificates; i++) {
		free(t->certificates[i].cert);
		free(t->certificates[i].key);
		config_free_strings(t->certificates[i].names, t->certificates[i].nnames);
	}
	free(t->certificates);
	config_free_strings(t->local_names, t->nlocal_names);
	config_acme_free(t->acme);
	free(t->default_name);
	free(t);
}

static void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->source);
	for (size_t i = 0; cfg->listeners != NULL && i < cfg->nlisteners; i++)
		config_listener_clear(&cfg->listeners[i]);
	free(cfg->listeners);
	config_listener_clear(cfg->admin);
	free(cfg->admin);
	free(cfg->access_log);
	free(cfg->user);
	free(cfg->group);
	config_free_strings(cfg->trusted_proxies, cfg->ntrusted_proxies);
	ipacl_free(cfg->trusted);
	for (size_t i = 0; cfg->upstreams != NULL && i < cfg->nupstreams; i++) {
		struct config_upstream *u = &cfg->upstreams[i];
		free(u->name);
		for (size_t j = 0; u->servers != NULL && j < u->nservers; j++) {
			free(u->servers[j].address);
			free(u->servers[j].host);
		}
		free(u->servers);
		SSL_CTX_free(u->tls_ctx);
		free(u->tls_server_name);
		free(u->tls_ca_bundle);
		free(u->tls_client_cert);
		free(u->tls_client_key);
	}
	free(cfg->upstreams);
	for (size_t i = 0; cfg->sites != NULL && i < cfg->nsites; i++) {
		struct config_site *s = &cfg->sites[i];
		free(s->name);
		config_free_strings(s->hosts, s->nhosts);
		config_free_strings(s->listeners, s->nlisteners);
		free(s->listener_index);
		policy_free(s->require);
		stepup_free(s->step_up);
		free(s->assertion_audience);
		config_compress_free(s->compress);
		for (size_t j = 0; s->routes != NULL && j < s->nroutes; j++)
			config_route_clear(&s->routes[j]);
		free(s->routes);
		access_block_clear(&s->access);
	}
	free(cfg->sites);
	free(cfg->geoip_database);
	free(cfg->geoip_asn_database);
	free(cfg->geoip_country_header);
	free(cfg->geoip_asn_header);
	geoip_free(cfg->geoip);
	ratelimit_free(cfg->ratelimit);
	config_saml_free(cfg->saml);
	config_redis_free(cfg->redis);
	config_tls_free(cfg->tls);
	free(cfg);
}

/* Take one more reference. */
struct config *
config_ref(struct config *cfg)
{
	if (cfg != NULL)
		atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

/* Drop a reference; the last one frees everything.  Accepts NULL. */
void
config_unref(struct config *cfg)
{
	if (cfg != NULL && atomic_fetch_sub(&cfg->refs, 1) == 1)
		config_free(cfg);
}

/* The upstream called <name>, or NULL. */
struct config_upstream *
config_find_upstream(const struct config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nupstreams; i++)
		if (cfg->upstreams[i].name != NULL && strcmp(cfg->upstreams[i].name, name) == 0)
			return &cfg->upstreams[i];
	return NULL;
}

/* Bit for a method name ("GET"), or 0 when it is not one we forward. */
unsigned
config_method_bit(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{ "GET", METHOD_GET },	     { "HEAD", METHOD_HEAD },	{ "POST", METHOD_POST },
		{ "PUT", METHOD_PUT },	     { "PATCH", METHOD_PATCH }, { "DELETE", METHOD_DELETE },
		{ "OPTIONS", METHOD_OPTIONS },
	};

	if (name == NULL)
		return 0;
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(name, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

/* forward_auth: the verify endpoint's pieces; see forward_auth.h. */
#include "proxy/forward_auth.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "auth/auth.h"
#include "http/target.h"
#include "http/urlenc.h"

bool
forward_auth_is_verify(const struct config_saml *sc, const char *path)
{
	return sc != NULL && sc->forward_auth.path != NULL && strcmp(path, sc->forward_auth.path) == 0;
}

/* The only value of header <name> in <h> into *value (NULL when absent);
 * false when it appears more than once. */
static bool
forward_auth_single(const struct evkeyvalq *h, const char *name, const char **value)
{
	const struct evkeyval *kv;

	*value = NULL;
	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, name) != 0)
			continue;
		if (*value != NULL)
			return false;
		*value = kv->value;
	}
	return true;
}

const char *
forward_auth_original(const struct evkeyvalq *h, struct forward_auth_original *o)
{
	const char *url, *fhost, *furi, *m1, *m2;
	struct target_parts tp;

	if (!forward_auth_single(h, "X-Original-URL", &url) ||
	    !forward_auth_single(h, "X-Forwarded-Host", &fhost) ||
	    !forward_auth_single(h, "X-Forwarded-Uri", &furi) ||
	    !forward_auth_single(h, "X-Original-Method", &m1) ||
	    !forward_auth_single(h, "X-Forwarded-Method", &m2))
		return "a header describing the original request appears more than once";
	/* A proxy that sets one family passes the client's copy of the other
	 * one through (Caddy and Traefik send every client header): when both
	 * are there, they must agree. */
	if (m1 != NULL && m2 != NULL && strcmp(m1, m2) != 0)
		return "X-Original-Method and X-Forwarded-Method disagree";
	o->method = m1 != NULL ? m1 : m2;
	if (url != NULL) {
		if (target_split(url, &tp) != TARGET_OK || tp.form != TARGET_ABSOLUTE ||
		    tp.authority_len == 0 || tp.authority_len >= sizeof o->host ||
		    (tp.rest[0] != '/' && tp.rest[0] != '\0'))
			return "X-Original-URL is not an absolute http(s) URL";
		memcpy(o->host, tp.authority, tp.authority_len);
		o->host[tp.authority_len] = '\0';
		o->origin = tp.rest[0] == '/' ? tp.rest : "/";
		if ((furi != NULL && strcmp(furi, o->origin) != 0) ||
		    (fhost != NULL && strcasecmp(fhost, o->host) != 0))
			return "X-Original-URL and X-Forwarded-Host / X-Forwarded-Uri disagree";
		return NULL;
	}
	if (fhost == NULL || furi == NULL)
		return "neither X-Original-URL nor X-Forwarded-Host with X-Forwarded-Uri describe "
		       "the original request";
	if (furi[0] != '/' || strlen(fhost) == 0 || strlen(fhost) >= sizeof o->host ||
	    strchr(fhost, ',') != NULL)
		return "X-Forwarded-Uri is not a path or X-Forwarded-Host not one host";
	memcpy(o->host, fhost, strlen(fhost) + 1);
	o->origin = furi;
	return NULL;
}

const char *
forward_auth_method(const char *method)
{
	static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
					     "OPTIONS" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(method, names[i]) == 0)
			return names[i];
	return NULL;
}

void
forward_auth_add_login(const struct config *cfg, const char *path, const char *query,
		       struct evkeyvalq *out)
{
	struct auth_request a = { .cfg = cfg, .path = path, .query = query };
	struct evbuffer *url = evbuffer_new();

	if (url == NULL)
		return;
	auth_login_url(&a, url);
	evbuffer_add(url, "", 1);
	evhttp_add_header(out, FORWARD_AUTH_LOGIN_HEADER, (const char *)evbuffer_pullup(url, -1));
	evbuffer_free(url);
}

bool
forward_auth_redirect_mode(const char *query)
{
	char *mode = query ? urlenc_form_value(query, strlen(query), "mode") : NULL;
	bool redirect = mode != NULL && strcmp(mode, "redirect") == 0;

	free(mode);
	return redirect;
}

/* Every value of header <name> in <from>, added to <to>. */
static void
forward_auth_copy_header(const char *name, const struct evkeyvalq *from, struct evkeyvalq *to)
{
	const struct evkeyval *kv;

	TAILQ_FOREACH(kv, from, next)
		if (strcasecmp(kv->key, name) == 0)
			evhttp_add_header(to, kv->key, kv->value);
}

void
forward_auth_copy_identity(const struct config_saml *sc, const struct evkeyvalq *from,
			   struct evkeyvalq *to)
{
	for (size_t i = 0; i < sc->nheaders; i++)
		forward_auth_copy_header(sc->headers[i].name, from, to);
	if (sc->assertion.keys != NULL && sc->assertion.header != NULL)
		forward_auth_copy_header(sc->assertion.header, from, to);
}

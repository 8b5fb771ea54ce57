/* auth_hosts: one sign-in for several hosts, the decisions; see auth_hosts.h. */
#include "auth/auth_hosts.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/handoff_token.h"
#include "auth/session.h"
#include "http/urlenc.h"

const char *
auth_hosts_origin(const struct config_saml *sc, const char *host)
{
	size_t hlen;

	if (sc == NULL || sc->nhosts == 0 || host == NULL)
		return NULL;
	hlen = strlen(host);
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	for (size_t i = 0; i < sc->nhosts; i++) {
		const char *o = sc->hosts[i], *auth = strstr(o, "://");
		const char *dflt = strncmp(o, "https:", 6) == 0 ? ":443" : ":80";
		size_t alen;

		if (auth == NULL)
			continue;
		auth += 3;
		alen = strlen(auth);
		if (hlen == alen && strncasecmp(host, auth, alen) == 0)
			return o;
		/* "host:443" for an origin written without a port */
		if (strchr(auth, ':') == NULL && hlen == alen + strlen(dflt) &&
		    strncasecmp(host, auth, alen) == 0 && strncmp(host + alen, dflt, strlen(dflt)) == 0)
			return o;
	}
	return NULL;
}

const char *
auth_hosts_url_origin(const struct config_saml *sc, const char *url)
{
	if (sc == NULL || url == NULL || strlen(url) > AUTH_HOSTS_RETURN_MAX)
		return NULL;
	for (size_t i = 0; i < sc->nhosts; i++) {
		size_t n = strlen(sc->hosts[i]);

		if (strncasecmp(url, sc->hosts[i], n) == 0 && url[n] == '/')
			return sc->hosts[i];
	}
	return NULL;
}

char *
auth_hosts_login_url(const struct config_saml *sc, const char *origin, const char *path,
		     const char *nonce, bool force)
{
	struct evbuffer *b = evbuffer_new();
	char *ret = NULL, *out = NULL;

	if (b == NULL || asprintf(&ret, "%s%s", origin, path) < 0) {
		ret = NULL;
		goto out;
	}
	evbuffer_add_printf(b, "%s%s/login?return=", sc->base_url, sc->prefix);
	urlenc_encode(b, ret);
	evbuffer_add_printf(b, "&state=%s%s", nonce, force ? "&force=1" : "");
	out = strndup((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
out:
	free(ret);
	if (b != NULL)
		evbuffer_free(b);
	return out;
}

char *
auth_hosts_keep(const char *nonce, const char *url)
{
	char *kept = NULL;

	if (!handoff_hex_ok(nonce) || asprintf(&kept, "%s %s", nonce, url) < 0)
		return NULL;
	return kept;
}

const char *
auth_hosts_kept_url(const char *target)
{
	if (target == NULL || strlen(target) <= HANDOFF_ID_HEX + 1 ||
	    target[HANDOFF_ID_HEX] != ' ' ||
	    strspn(target, "0123456789abcdef") != HANDOFF_ID_HEX)
		return NULL;
	return target + HANDOFF_ID_HEX + 1;
}

char *
auth_hosts_handoff_url(const struct config_saml *sc, const struct session *s, const char *target,
		       int64_t now)
{
	const char *url = auth_hosts_kept_url(target);
	const char *origin = url ? auth_hosts_url_origin(sc, url) : NULL;
	char nonce[HANDOFF_ID_HEX + 1], *token, *out = NULL;

	if (origin == NULL)
		return NULL;
	memcpy(nonce, target, HANDOFF_ID_HEX);
	nonce[HANDOFF_ID_HEX] = '\0';
	token = handoff_token_seal(sc->keys, origin, s, nonce, url + strlen(origin), now,
				   AUTH_HOSTS_TOKEN_SECONDS);
	if (token != NULL && asprintf(&out, "%s%s/handoff?token=%s", origin, sc->prefix, token) < 0)
		out = NULL;
	free(token);
	return out;
}

bool
auth_hosts_is_handoff(const struct config_saml *sc, const char *path)
{
	size_t n = strlen(sc->prefix);

	return sc->nhosts > 0 && strncmp(path, sc->prefix, n) == 0 &&
	       strcmp(path + n, "/handoff") == 0;
}

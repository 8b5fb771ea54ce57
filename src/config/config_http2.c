/*
 * config_http2: listeners' "http2" and "h2c" (HTTP listeners) and "alpn"
 * (TLS "tcp" listeners); docs/http2.md.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "tls/tls_handshake.h"

#define ALPN_MAX 8

/* "alpn": protocol names a TLS relay may select, in order of preference. */
static void
parse_alpn(struct config_loader *ld, const char *path, const json_t *v,
	   struct config_listener *l)
{
	char **names = NULL;
	size_t n = 0;

	if (!config_string_list(ld, path, v, false, "an array of ALPN protocol names such as "
						   "[\"h2\", \"http/1.1\"]",
				&names, &n))
		goto out;
	if (n > ALPN_MAX) {
		config_error(ld, path, "%zu names; at most %d", n, ALPN_MAX);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = names[i] ? strlen(names[i]) : 0;

		if (names[i] == NULL)
			goto out; /* config_string said why */
		if (len == 0 || len > 255) {
			config_error(ld, path, "\"%s\": a protocol name has 1 to 255 bytes", names[i]);
			goto out;
		}
	}
	if (n > 0) {
		l->alpn = tls_alpn_intern((const char *const *)names, n);
		if (l->alpn == NULL)
			ld->oom = true;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void
config_parse_listeners_http2(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *lv = json_object_get(root, "listeners");
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct config_listener *l = &cfg->listeners[i];
		const json_t *e = json_is_array(lv) ? json_array_get(lv, i) : NULL;
		const json_t *f;
		bool tls = e && json_is_true(json_object_get(e, "tls"));

		l->http2 = true;
		if (!json_is_object(e))
			continue;
		config_jidx(ip, "listeners", i);
		if ((f = json_object_get(e, "http2")) != NULL) {
			config_bool(ld, config_jkey(kp, ip, "http2"), f, &l->http2);
			if (l->type == LISTENER_TCP)
				config_error(ld, kp, "only for HTTP listeners; a \"tcp\" listener with "
						     "\"tls\" negotiates what its \"alpn\" lists");
		}
		if ((f = json_object_get(e, "h2c")) != NULL) {
			config_bool(ld, config_jkey(kp, ip, "h2c"), f, &l->h2c);
			if (l->h2c && (l->type == LISTENER_TCP || tls))
				config_error(ld, kp, "only for plain HTTP listeners (over TLS, HTTP/2 "
						     "is negotiated by ALPN: \"http2\")");
		}
		if ((f = json_object_get(e, "alpn")) != NULL) {
			config_jkey(kp, ip, "alpn");
			if (l->type != LISTENER_TCP || !tls)
				config_error(ld, kp, "only for \"tcp\" listeners with \"tls\": true "
						     "(HTTP listeners offer h2 and http/1.1: \"http2\")");
			else
				parse_alpn(ld, kp, f, l);
		}
	}
}

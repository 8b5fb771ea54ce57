/* admin: health, readiness and metrics endpoints; see admin.h. */
#include "core/admin.h"
#include "auth/auth.h"

#include "access/access.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acme/acme.h"
#include "base/metrics.h"
#include "core/runtime.h"
#include "tls/tls.h"
#include "proxy/upstream.h"

struct admin {
	struct evhttp *http;
	const struct admin_state *state;
};

static void
reply(struct evhttp_request *req, int code, const char *type, const char *body)
{
	struct evbuffer *buf = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if (buf)
		evbuffer_add(buf, body, strlen(body));
	evhttp_send_reply(req, code, NULL, buf);
	if (buf)
		evbuffer_free(buf);
}

static void
admin_request_cb(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *uri = evhttp_request_get_uri(req);
	size_t plen = strcspn(uri, "?");

	if (plen == 8 && strncmp(uri, "/_health", plen) == 0) {
		reply(req, 200, "text/plain; charset=utf-8", "ok\n");
	} else if (plen == 7 && strncmp(uri, "/_ready", plen) == 0) {
		if (a->state->draining)
			reply(req, 503, "text/plain; charset=utf-8", "draining\n");
		else
			reply(req, 200, "text/plain; charset=utf-8", "ready\n");
	} else if (plen == 8 && strncmp(uri, "/metrics", plen) == 0) {
		const struct runtime *rt = a->state->current;
		char *extra = rt ? upstream_health_render(rt->health, rt->cfg) : NULL;
		char *text = metrics_render(extra);
		char *more[4] = {access_metrics_render(), NULL, NULL, NULL};

		if (a->state->tls) {
			more[1] = tls_store_metrics(a->state->tls);
			more[2] = acme_metrics_render(a->state->acme);
		}
		if (rt != NULL && rt->cfg->saml != NULL)
			more[3] = auth_metrics_render();
		for (size_t i = 0; i < 4; i++) {
			if (text && more[i]) {
				size_t tl = strlen(text), al = strlen(more[i]);
				char *both = realloc(text, tl + al + 1);

				if (both) {
					memcpy(both + tl, more[i], al + 1);
					text = both;
				}
			}
			free(more[i]);
		}

		if (text)
			reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text);
		else
			reply(req, 500, "text/plain; charset=utf-8", "out of memory\n");
		free(text);
		free(extra);
	} else {
		reply(req, 404, "text/plain; charset=utf-8",
		      "not found: the admin listener serves /_health, /_ready and /metrics\n");
	}
}

struct admin *
admin_new(struct event_base *base, int fd, const struct admin_state *state)
{
	struct admin *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->state = state;
	a->http = evhttp_new(base);
	if (a->http == NULL)
		goto fail;
	evhttp_set_default_content_type(a->http, NULL);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(a->http, 16384);
	evhttp_set_max_body_size(a->http, 0);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_gencb(a->http, admin_request_cb, a);
	if (evhttp_accept_socket_with_handle(a->http, fd) == NULL)
		goto fail;
	return a;
fail:
	if (a->http)
		evhttp_free(a->http);
	free(a);
	close(fd);
	return NULL;
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	evhttp_free(a->http);
	free(a);
}

/* admin: health, readiness and metrics endpoints; see admin.h. */
#include "core/admin.h"
#include "auth/auth.h"

#include "access/access.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "acme/acme.h"
#include "auth/jwt.h"
#include "auth/revoke.h"
#include "http/urlenc.h"
#include "base/log.h"
#include "base/metrics.h"
#include "core/runtime.h"
#include "core/status_page.h"
#include "http/conn.h"
#include "http/h1.h"
#include "http/target.h"
#include "tls/tls.h"
#include "proxy/upstream.h"

#define ADMIN_MAX_HEADER_BYTES 16384
#define ADMIN_TIMEOUT_SECONDS 10

struct admin {
	struct server *server;
	const struct admin_state *state;
};

static void
reply(struct server_request *req, int code, const char *type, const char *body)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq h;

	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Content-Type", type);
	evhttp_add_header(&h, "Cache-Control", "no-store");
	if (buf)
		evbuffer_add(buf, body, strlen(body));
	server_reply(req, code, &h, buf, false);
	evhttp_clear_headers(&h);
	if (buf)
		evbuffer_free(buf);
}

/* Other methods than GET and HEAD: the page evhttp answered with. */
static void
not_implemented(struct server_request *req)
{
	static const char page[] = "<HTML><HEAD>\n<TITLE>501 Not Implemented</TITLE>\n"
				   "</HEAD><BODY>\n<H1>Not Implemented</H1>\n</BODY></HTML>\n";
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq h;

	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Content-Type", "text/html");
	if (buf)
		evbuffer_add(buf, page, sizeof(page) - 1);
	server_reply(req, 501, &h, buf, true);
	evhttp_clear_headers(&h);
	if (buf)
		evbuffer_free(buf);
}

/* Every request's body is read (none is allowed: a declared one is
 * answered 413 by the server) before it is answered, as evhttp did. */
static enum server_verdict
admin_on_head(struct server_request *req, void *arg)
{
	return SERVER_READ_BODY;
}

/* POST /revoke?user=NAMEID or ?session=ID: put it on the revocation list
 * (docs/operations.md#revocation).  Blocks this loop for at most Redis's
 * connect and command timeouts. */
static void
admin_revoke(struct server_request *req, struct admin *a, const char *query)
{
	const struct runtime *rt = a->state->current;
	char *user = urlenc_form_value(query, strlen(query), "user");
	char *sid = urlenc_form_value(query, strlen(query), "session");
	char target[1100], err[600], body[1800];

	if ((user == NULL) == (sid == NULL)) {
		reply(req, 400, "text/plain; charset=utf-8",
		      "name one user (?user=NAMEID) or one session (?session=ID)\n");
	} else if (snprintf(target, sizeof(target), "%s=%s", user ? "user" : "session",
			    user ? user : sid) >= (int)sizeof(target)) {
		reply(req, 400, "text/plain; charset=utf-8", "the value is too long\n");
	} else if (rt == NULL || revoke_target(rt->cfg, target, err, sizeof(err)) < 0) {
		snprintf(body, sizeof(body), "not revoked: %s\n", rt ? err : "no configuration");
		log_warn("admin: %s %s", target, body);
		reply(req, rt && rt->cfg->saml && rt->cfg->saml->revocation.enabled ? 503 : 404,
		      "text/plain; charset=utf-8", body);
	} else {
		snprintf(body, sizeof(body), "revoked: %s\n", target);
		log_info("admin: revoked %s", target);
		reply(req, 200, "text/plain; charset=utf-8", body);
	}
	free(user);
	free(sid);
}

/* GET / : the status page (status_page.h), when the config lets it be
 * served here; else 404 saying why. */
static void
admin_status(struct server_request *req, struct admin *a)
{
	const struct runtime *rt = a->state->current;
	char why[400];
	char *page;
	struct evbuffer *buf;
	struct evkeyvalq h;

	if (rt == NULL || !status_page_served(rt->cfg, why, sizeof(why) - 1)) {
		if (rt == NULL)
			snprintf(why, sizeof(why) - 1, "status page: no configuration yet");
		strcat(why, "\n");
		reply(req, 404, "text/plain; charset=utf-8", why);
		return;
	}
	page = status_page_render(&(struct status_page_input){
		.rt = rt, .tls = a->state->tls, .acme = a->state->acme,
		.draining = a->state->draining, .ports = a->state->ports,
		.admin_port = a->state->admin_port, .now = log_now()});
	buf = page ? evbuffer_new() : NULL;
	if (buf == NULL) {
		free(page);
		reply(req, 500, "text/plain; charset=utf-8", "out of memory\n");
		return;
	}
	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(&h, "Cache-Control", "no-store");
	evhttp_add_header(&h, "Content-Security-Policy", STATUS_PAGE_CSP);
	evhttp_add_header(&h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(&h, "X-Frame-Options", "DENY");
	evhttp_add_header(&h, "Referrer-Policy", "no-referrer");
	evbuffer_add(buf, page, strlen(page));
	server_reply(req, 200, &h, buf, false);
	evhttp_clear_headers(&h);
	evbuffer_free(buf);
	free(page);
}

static void
admin_on_request(struct server_request *req, void *arg)
{
	struct admin *a = arg;
	const char *method = server_request_method(req);
	const char *uri = server_request_target(req);
	struct target_parts tp;
	size_t plen;

	/* "GET http://host:9901/metrics" (RFC 9112 3.2.2): its path. */
	if (target_split(uri, &tp) == TARGET_OK && tp.form == TARGET_ABSOLUTE)
		uri = tp.rest[0] == '/' ? tp.rest : "/";
	plen = strcspn(uri, "?");

	if (strcmp(method, "POST") == 0 && plen == 7 && strncmp(uri, "/revoke", plen) == 0) {
		admin_revoke(req, a, uri[plen] == '?' ? uri + plen + 1 : "");
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		not_implemented(req);
	} else if (plen == 1 && uri[0] == '/') {
		admin_status(req, a);
	} else if (plen == 8 && strncmp(uri, "/_health", plen) == 0) {
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
		char *more[5] = {access_metrics_render(), NULL, NULL, NULL, revoke_metrics_render()};

		if (a->state->tls) {
			more[1] = tls_store_metrics(a->state->tls);
			more[2] = acme_metrics_render(a->state->acme);
		}
		if (rt != NULL && rt->cfg->saml != NULL)
			more[3] = auth_metrics_render();
		for (size_t i = 0; i < 5; i++) {
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
	} else if (a->state->current != NULL && a->state->current->cfg->saml != NULL &&
		   a->state->current->cfg->saml->assertion.keys != NULL &&
		   plen == strlen(a->state->current->cfg->saml->assertion.jwks_path) &&
		   strncmp(uri, a->state->current->cfg->saml->assertion.jwks_path, plen) == 0) {
		/* the identity assertion's public keys, for upstreams that verify it */
		reply(req, 200, "application/jwk-set+json",
		      jwt_keys_jwks(a->state->current->cfg->saml->assertion.keys));
	} else {
		reply(req, 404, "text/plain; charset=utf-8",
		      "not found: the admin listener serves / (status), /_health, /_ready, "
		      "/metrics and POST /revoke\n");
	}
}

/* Nothing is held for a request: replies are made at once. */
static void
admin_on_abort(struct server_request *req, int status, void *arg)
{
}

static void
admin_on_drained(struct server_request *req, void *arg)
{
}

static const struct server_handler admin_handler = {
	.on_head = admin_on_head,
	.on_request = admin_on_request,
	.on_abort = admin_on_abort,
	.on_drained = admin_on_drained,
};

struct admin *
admin_new(struct event_base *base, int fd, const struct admin_state *state)
{
	struct admin *a = calloc(1, sizeof(*a));
	struct server_limits limits = {
		.max_header_bytes = ADMIN_MAX_HEADER_BYTES,
		.client = {ADMIN_TIMEOUT_SECONDS, 0},
	};

	if (a == NULL)
		goto fail;
	a->state = state;
	a->server = server_new(base, fd, 0, h1_codecs, &admin_handler, a);
	if (a->server == NULL)
		goto fail;
	server_set_counted(a->server, false);
	server_set_http10_status(a->server, true);
	server_set_limits(a->server, &limits);
	return a;
fail:
	free(a);
	close(fd);
	return NULL;
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	server_free(a->server);
	free(a);
}

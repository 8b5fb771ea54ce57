/* compress: response compression for the proxy; see compress.h. */
#include "proxy/compress.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "config/config_model.h"
#include "http/acceptenc.h"
#include "http/hdrarena.h"
#include "http/request.h"
#include "proxy/encoder.h"

#define VARY_MAX 1024 /* a longer Vary gets a second header line instead */

struct compress_stream {
	struct encoder *encoder;
	struct evbuffer *out;
};

const struct config_compress *
compress_config_for(const struct config_route *route, const struct config_route *jump_route,
		    const struct config_site *site)
{
	if (route->compress)
		return route->compress;
	if (jump_route && jump_route->compress)
		return jump_route->compress;
	if (jump_route && jump_route->site && jump_route->site->compress)
		return jump_route->site->compress;
	return site ? site->compress : NULL;
}

/* True when the comma-separated list <value> holds the token <token>. */
static bool
list_has(const char *value, const char *token)
{
	size_t n = strlen(token);

	for (const char *s = value; *s;) {
		const char *end;

		s += strspn(s, " \t,");
		end = s + strcspn(s, ",;= \t");
		if ((size_t)(end - s) == n && strncasecmp(s, token, n) == 0)
			return true;
		s += strcspn(s, ",");
	}
	return false;
}

/* True when some <name> header of <q> lists <token>. */
static bool
headers_list_has(const struct evkeyvalq *q, const char *name, const char *token)
{
	const struct evkeyval *kv;

	TAILQ_FOREACH(kv, q, next)
		if (strcasecmp(kv->key, name) == 0 && list_has(kv->value, token))
			return true;
	return false;
}

/* True when the media type of Content-Type <ct> is one of <cc>'s types. */
static bool
type_listed(const struct config_compress *cc, const char *ct)
{
	size_t len = strcspn(ct, "; \t"), major = strcspn(ct, "/");

	if (major >= len)
		return false;
	for (size_t i = 0; i < cc->ntypes; i++) {
		const char *t = cc->types[i];
		size_t tlen = strlen(t);

		if (tlen == len && strncasecmp(t, ct, len) == 0)
			return true;
		if (tlen == major + 2 && strcmp(t + major, "/*") == 0 &&
		    strncasecmp(t, ct, major) == 0)
			return true;
	}
	return false;
}

/* True when the response itself may be compressed: its status, type,
 * length and headers allow it.  Then the client's Accept-Encoding decides. */
static bool
response_eligible(const struct config_compress *cc, int status, const struct evkeyvalq *out)
{
	const char *ct = evhttp_find_header(out, "Content-Type");
	const char *cl = evhttp_find_header(out, "Content-Length");

	if (status < 200 || status == 204 || status == 206 || status == 304)
		return false;
	if (ct == NULL || !type_listed(cc, ct) || strncasecmp(ct, "text/event-stream", 17) == 0)
		return false;
	if (evhttp_find_header(out, "Content-Encoding") != NULL ||
	    evhttp_find_header(out, "Content-Range") != NULL ||
	    headers_list_has(out, "Cache-Control", "no-transform"))
		return false;
	if (cl != NULL) {
		char *end;
		unsigned long long n = strtoull(cl, &end, 10);

		if (*end == '\0' && n < cc->min_length)
			return false;
	}
	return true;
}

/* Make sure the response says it varies by Accept-Encoding: merged into the
 * first Vary header, or a Vary of its own. */
static void
add_vary(struct evkeyvalq *out, struct hdrarena *arena)
{
	const char *vary = evhttp_find_header(out, "Vary");
	char joined[VARY_MAX];

	if (headers_list_has(out, "Vary", "accept-encoding") || headers_list_has(out, "Vary", "*"))
		return;
	if (vary != NULL && vary[strspn(vary, " \t")] != '\0' &&
	    (size_t)snprintf(joined, sizeof joined, "%s, Accept-Encoding", vary) < sizeof joined) {
		hdrarena_remove_header(arena, out, "Vary");
		hdrarena_add(arena, out, "Vary", joined);
		return;
	}
	hdrarena_add(arena, out, "Vary", "Accept-Encoding");
}

/* The representation changes: lengths and ranges no longer hold, and a
 * strong validator would promise the same bytes. */
static void
rewrite_for_coding(struct evkeyvalq *out, struct hdrarena *arena, enum acceptenc_coding coding)
{
	const char *etag = evhttp_find_header(out, "ETag");

	while (hdrarena_remove_header(arena, out, "Content-Length") == 0)
		;
	while (hdrarena_remove_header(arena, out, "Accept-Ranges") == 0)
		;
	if (etag != NULL && etag[0] == '"') {
		char weak[512];

		if ((size_t)snprintf(weak, sizeof weak, "W/%s", etag) < sizeof weak) {
			hdrarena_remove_header(arena, out, "ETag");
			hdrarena_add(arena, out, "ETag", weak);
		} else {
			hdrarena_remove_header(arena, out, "ETag");
		}
	}
	hdrarena_add(arena, out, "Content-Encoding", acceptenc_name(coding));
}

/* The client's Accept-Encoding headers, all of them. */
static enum acceptenc_coding
negotiate(const struct config_compress *cc, struct server_request *req)
{
	struct acceptenc ae;
	const struct evkeyval *kv;

	acceptenc_init(&ae);
	TAILQ_FOREACH(kv, server_request_headers(req), next)
		if (strcasecmp(kv->key, "Accept-Encoding") == 0)
			acceptenc_add(&ae, kv->value);
	return acceptenc_choose(&ae, cc->codings);
}

struct compress_stream *
compress_start(const struct config_compress *cc, struct server_request *req, int status,
	       struct evkeyvalq *out, struct hdrarena *arena)
{
	struct compress_stream *s;
	enum acceptenc_coding coding;
	int level;

	if (cc == NULL || !cc->enabled || !response_eligible(cc, status, out))
		return NULL;
	add_vary(out, arena);
	if (strcmp(server_request_method(req), "HEAD") == 0 ||
	    evhttp_find_header(server_request_headers(req), "Range") != NULL)
		return NULL;
	coding = negotiate(cc, req);
	if (coding == ACCEPTENC_IDENTITY)
		return NULL;
	level = coding == ACCEPTENC_GZIP ? cc->gzip_level
		: coding == ACCEPTENC_ZSTD ? cc->zstd_level
					   : cc->br_level;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->encoder = encoder_new(coding, level);
	s->out = evbuffer_new();
	if (s->encoder == NULL || s->out == NULL) {
		compress_free(s); /* out of memory: the body goes as it is */
		return NULL;
	}
	rewrite_for_coding(out, arena, coding);
	return s;
}

struct evbuffer *
compress_body(struct compress_stream *s, struct evbuffer *data, bool finish)
{
	if (encoder_write(s->encoder, data, s->out, finish) < 0)
		return NULL;
	return s->out;
}

void
compress_free(struct compress_stream *s)
{
	if (s == NULL)
		return;
	encoder_free(s->encoder);
	if (s->out)
		evbuffer_free(s->out);
	free(s);
}

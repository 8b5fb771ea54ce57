/*
 * compress: response compression for the proxy (docs/config.md#compression).
 * For one response it decides whether to compress (the "compress" block of
 * the route or site, the client's Accept-Encoding, the response's status,
 * type, length and headers), rewrites the head for it (Content-Encoding,
 * Vary, no Content-Length or Accept-Ranges, weak ETag), then compresses the
 * body as it streams through, flushed at every upstream read.  It works on
 * the response as the handler hands it to request.h, so HTTP/1.1 (chunked)
 * and HTTP/2 get the same bytes.  proxy.c calls it; the codings themselves
 * are encoder.h's.
 */
#ifndef PORTCULLIS_COMPRESS_H
#define PORTCULLIS_COMPRESS_H

#include <stdbool.h>

struct compress_stream;
struct config_compress;
struct config_route;
struct config_site;
struct evbuffer;
struct evkeyvalq;
struct hdrarena;
struct server_request;

/* The "compress" block for a response of <route>, reached through the "site"
 * route <jump_route> (or NULL) of <site>: the nearest one set (route, jump
 * route, the jump route's target site, <site>), or NULL. */
const struct config_compress *compress_config_for(const struct config_route *route,
						  const struct config_route *jump_route,
						  const struct config_site *site);

/*
 * Decide for the response <status> with headers <out> (entries in <arena>)
 * to request <req> under <cc> (may be NULL: never).  Adds "Vary:
 * Accept-Encoding" to <out> when the answer depends on it; when compressing,
 * also sets Content-Encoding, removes Content-Length and Accept-Ranges and
 * weakens a strong ETag, and returns a new stream for the body.  NULL: send
 * the body as it is.
 */
struct compress_stream *compress_start(const struct config_compress *cc,
				       struct server_request *req, int status,
				       struct evkeyvalq *out, struct hdrarena *arena);

/* Compress <data> (drained; may be NULL), flushed; with <finish> also end the coding.
 * Returns the bytes to send (a buffer of <s>, emptied by sending it), or NULL
 * when the encoder failed: the response cannot go on. */
struct evbuffer *compress_body(struct compress_stream *s, struct evbuffer *data, bool finish);

/* Free <s> and its encoder (done, failed or aborted).  Accepts NULL. */
void compress_free(struct compress_stream *s);

#endif

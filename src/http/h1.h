/*
 * h1: the HTTP/1.0 and 1.1 codec.  Parses requests out of the connection's
 * input with http-parser (Debian's libhttp-parser, strict about framing)
 * behind our own checks (line endings, header size, a strict chunked
 * decoder), refuses what is malformed (400, 431, 413, 417, 505, 408), hands
 * each request to the handler, and frames responses: status line and
 * headers, Content-Length, chunked or close-delimited bodies, 100 Continue,
 * Connection: close / keep-alive.  One request at a time per connection:
 * pipelined bytes wait in the input until the previous response is written
 * and its request freed.
 *
 * conn.c selects it (h1_conn_codec) when the connection is ready; its
 * requests reply through the http_codec_ops it points to (request.c calls
 * them).
 */
#ifndef PORTCULLIS_H1_H
#define PORTCULLIS_H1_H

#include <stdbool.h>
#include <stddef.h>

#include "http/h1_state.h"


struct conn_codec;

/* The codec, as conn.c sees it: the transport picks it by ALPN ("http/1.1")
 * or as the default, from the list its server was made with. */
extern const struct conn_codec h1_conn_codec;

/* The codec list of an HTTP/1.x-only server, for server_new. */
extern const struct conn_codec *const h1_codecs[];

#endif

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

#include <http_parser.h>

#include "http/chunked.h"
#include "http/headerbuf.h"

/* The codec's state inside a connection. */
struct h1_conn {
	http_parser parser;
	struct headerbuf hb;
	struct headscan scan;       /* line endings of the request head */
	size_t scanned;             /* bytes at the start of the input already scanned */
	struct chunked chunk;       /* a chunked request body, decoded by us */
	bool own_chunked;           /* the body is being read by <chunk> */
	bool stop;                  /* the parser was stopped on purpose (reply sent) */
};

struct conn_codec;

/* The codec, for conn.c. */
extern const struct conn_codec h1_conn_codec;

/* Make http-parser's process-wide head limit fit a server whose limit is
 * <max_header_bytes> (ours is exact, its own stays well above; it never
 * shrinks, as servers with other limits share it). */
void h1_set_max_header_bytes(size_t max_header_bytes);

#endif

/*
 * http_types: the plain types that the HTTP core's public headers (conn.h,
 * request.h) and its private one (http_internal.h) share, with no functions:
 * HAProxy's "-t.h" habit, so that the private header needs none of the public
 * ones and no include cycle runs through it.
 */
#ifndef PORTCULLIS_HTTP_TYPES_H
#define PORTCULLIS_HTTP_TYPES_H

#include <stddef.h>
#include <sys/time.h>

/* Limits and timeouts a server applies to its connections. */
struct server_limits {
	size_t max_header_bytes;   /* request line + headers; over it: 431 */
	struct timeval client;     /* header deadline, idle keep-alive, write stall */
};

/* The protocol a request came in. */
enum server_proto {
	SERVER_PROTO_HTTP10,
	SERVER_PROTO_HTTP11,
	SERVER_PROTO_HTTP2,
};

#endif

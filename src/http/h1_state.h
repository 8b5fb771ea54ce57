/*
 * h1_state: the HTTP/1.x codec's state inside a connection (types only), so
 * that struct server_conn can hold it without a call into h1.c; the codec's
 * functions are in h1.h.
 */
#ifndef PORTCULLIS_H1_STATE_H
#define PORTCULLIS_H1_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

#include "http/chunked.h"
#include "http/headerbuf.h"
#include "http/headscan.h"

/* The codec's state inside a connection. */
struct h1_conn {
	http_parser parser;
	struct headerbuf hb;
	struct hdrarena *arena;     /* the current request's headers (made on its first request) */
	struct headscan scan;       /* line endings of the request head */
	size_t scanned;             /* bytes at the start of the input already scanned */
	struct chunked chunk;       /* a chunked request body, decoded by us */
	bool own_chunked;           /* the body is being read by <chunk> */
	bool stop;                  /* the parser was stopped on purpose (reply sent) */
	bool timed_out;             /* a 408: the client went quiet (no lingering close) */
};

#endif

/*
 * chunked: a strict decoder for the chunked transfer coding of request
 * bodies (RFC 9112 7.1).  Pure: no libevent.  (Request-head line endings:
 * headscan.h.)
 *
 * Why ours: Debian builds http-parser without HTTP_PARSER_STRICT, so it takes
 * "5\r\nhelloXX0\r\n\r\n" (any two bytes after chunk data), a bare CR after
 * a chunk size, and folded header lines.  A proxy must not accept a message
 * that another parser in front of or behind it could read another way, so
 * chunked request bodies are decoded here, CRLF exactly, chunk lines by
 * RFC 9112 7.1.1's grammar (BWS before ";" and around "=", never before the
 * CR; every extension has a name), chunk extensions at most 4 KiB per body.
 */
#ifndef PORTCULLIS_CHUNKED_H
#define PORTCULLIS_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chunked_result {
	CHUNKED_MORE,  /* everything consumed; the body goes on */
	CHUNKED_DONE,  /* the body (and its trailers) ended; *used says where */
	CHUNKED_ERROR, /* malformed, or emit refused; *why says which */
};

struct chunked {
	int state;
	uint64_t remaining;   /* data bytes left in the current chunk */
	unsigned digits;      /* hex digits of the current size */
	size_t trailer_bytes; /* trailer section so far (bounded) */
	size_t ext_bytes;     /* chunk-extension bytes so far, all chunks (bounded) */
	bool escaped;         /* after a backslash in a quoted extension value */
	bool ws;              /* whitespace seen where only ";" (or "=") may follow */
	bool after_value;     /* the extension so far ends with a value (no "=" next) */
};

/* Start decoding a new body. */
void chunked_init(struct chunked *d);

/*
 * Decode <len> bytes at <in>; chunk data is handed to <emit> (which returns
 * 0, or -1 to stop with CHUNKED_ERROR and *why = NULL).  *used is the number
 * of bytes consumed (all of them unless DONE or ERROR).
 */
enum chunked_result chunked_decode(struct chunked *d, const char *in, size_t len, size_t *used,
				   int (*emit)(void *arg, const char *data, size_t n), void *arg,
				   const char **why);

#endif

/*
 * traceparent: the W3C Trace Context header (https://www.w3.org/TR/trace-context/),
 * version 00 only: "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>".
 * A pure parser and formatter, no allocation, no state: proxy.c accepts a
 * client's header or makes a new one and sends the upstream its own.
 */
#ifndef PORTCULLIS_TRACEPARENT_H
#define PORTCULLIS_TRACEPARENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACEPARENT_LEN 55            /* "00-" 32 "-" 16 "-" 2 */
#define TRACEPARENT_FLAG_SAMPLED 0x01

struct traceparent {
	uint8_t trace_id[16];
	uint8_t parent_id[8];
	uint8_t flags;
};

/*
 * Parse the <len> bytes at <s> strictly: exactly 55 bytes, version "00",
 * lowercase hex only, a trace-id and a parent-id that are not all zero.
 * Fills <out> and returns true; false (and <out> untouched) for anything else.
 */
bool traceparent_parse(const char *s, size_t len, struct traceparent *out);

/* Write <tp> as a header value into <out> (TRACEPARENT_LEN + 1 bytes, NUL-ended). */
void traceparent_format(const struct traceparent *tp, char out[TRACEPARENT_LEN + 1]);

/* Write the trace-id of <tp> as 32 lowercase hex digits into <out> (33 bytes). */
void traceparent_trace_id_hex(const struct traceparent *tp, char out[33]);

#endif

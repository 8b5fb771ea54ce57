/*
 * headers: HTTP header rules shared by the request and response sides of the
 * proxy: hop-by-hop names, token syntax, Connection-header token lists, and
 * the checks that refuse ambiguous request framing (request smuggling).
 * Pure: no libevent.
 */
#ifndef PORTCULLIS_HEADERS_H
#define PORTCULLIS_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

/* True for an RFC 9110 token (header names): !#$%&'*+-.^_`|~ DIGIT ALPHA, non-empty. */
bool headers_is_token(const char *s);

/* True for a header value without CR, LF or NUL (other controls but HTAB are refused). */
bool headers_value_ok(const char *s);

/* True for headers that never travel past one hop: Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authorization, Proxy-Authenticate. */
bool headers_is_hop_by_hop(const char *name);

/* The names listed in a Connection header value, lower-cased, up to <max>
 * of them, each at most 63 characters (longer ones are cut). */
struct headers_connection_list {
	size_t n;
	char names[16][64];
};

/* Add the tokens of one Connection header value to <list>. */
void headers_connection_parse(const char *value, struct headers_connection_list *list);

/* True when <name> is in <list> (case-insensitive). */
bool headers_connection_has(const struct headers_connection_list *list, const char *name);

/* Result of the request framing check. */
enum headers_framing {
	FRAMING_OK,
	FRAMING_BAD_NAME,          /* a header name that is not a token (e.g. "Transfer-Encoding ") */
	FRAMING_BAD_VALUE,         /* CR, LF, NUL or another control in a value */
	FRAMING_TE_NOT_CHUNKED,    /* Transfer-Encoding other than exactly "chunked" */
	FRAMING_TE_AND_LENGTH,     /* both Transfer-Encoding and Content-Length */
	FRAMING_MULTIPLE_LENGTH,   /* more than one Content-Length */
	FRAMING_BAD_LENGTH,        /* Content-Length not a plain decimal number */
	FRAMING_MULTIPLE_HOST,     /* more than one Host */
	FRAMING_MULTIPLE_TE,
};

/* Running state of the framing check over a request's headers. */
struct headers_framing_state {
	unsigned host, content_length, transfer_encoding;
	enum headers_framing result;
};

/* Feed one request header; the first problem found sticks in state->result. */
void headers_framing_add(struct headers_framing_state *st, const char *name, const char *value);

/* Final verdict after every header was added. */
enum headers_framing headers_framing_result(const struct headers_framing_state *st);

/* English text for a framing result. */
const char *headers_framing_reason(enum headers_framing result);

#endif

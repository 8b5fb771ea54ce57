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

/*
 * The headers the proxy owns: one table (headers.c) that the proxy reads on
 * every message and the configuration checks read at load time, so that what
 * the proxy drops and what a config may not set cannot drift apart.
 */
enum headers_owned_flag {
	/* Never travels past one hop (RFC 9110 7.6.1): dropped both ways. */
	HEADERS_HOP_BY_HOP = 1u << 0,
	/* Written by the proxy on the request to the upstream: a client's copy is
	 * dropped (framing, Host, X-Forwarded-*, X-Real-IP, X-Request-ID, ...). */
	HEADERS_PROXY_SETS = 1u << 1,
	/* A route's request_headers may not set or remove it. */
	HEADERS_NO_REQUEST_OP = 1u << 2,
	/* A route's response_headers may not set or remove it. */
	HEADERS_NO_RESPONSE_OP = 1u << 3,
	/* saml.headers may not write the identity into it. */
	HEADERS_NO_IDENTITY = 1u << 4,
};

/* One row of the table: a header name (canonical case), its flags, and why
 * the proxy owns it (the reason a refused config quotes). */
struct headers_owned {
	const char *name;
	unsigned char len;
	unsigned flags;
	const char *why;
};

/* The row for <name> (case-insensitive; every "X-Forwarded-*" name has a row),
 * or NULL for a header the proxy does not own. */
const struct headers_owned *headers_owned_find(const char *name);

/* The flags of <name>: 0 for a header the proxy does not own. */
unsigned headers_owned_flags(const char *name);

/* The whole table, for tests and documentation: <*n> rows. */
const struct headers_owned *headers_owned_table(size_t *n);

/* True for headers that never travel past one hop: Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authorization, Proxy-Authenticate (HEADERS_HOP_BY_HOP). */
bool headers_is_hop_by_hop(const char *name);

/* The names listed in a Connection header value, lower-cased, up to <max>
 * of them, each at most 63 characters (longer ones are cut). */
struct headers_connection_list {
	size_t n;
	char names[16][64];
};

/* Add the tokens of one Connection header value to <list>. */
void headers_connection_parse(const char *value, struct headers_connection_list *list);

/* Remove from <list> the names headers_is_hop_by_hop is true of (the usual
 * "keep-alive"): for a caller that drops hop-by-hop headers first they change
 * nothing, and an empty list spares a lookup per header. */
void headers_connection_drop_hop_by_hop(struct headers_connection_list *list);

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

/*
 * fwdheaders: which of a client's request headers go to the upstream, and
 * the headers the proxy writes there itself (X-Forwarded-*, X-Real-IP,
 * X-Request-ID, GeoIP).  Pure decisions over the config and the route, so
 * that proxy.c (building the upstream request) and core/explain (portcullis
 * --explain) cannot disagree.
 */
#ifndef PORTCULLIS_FWDHEADERS_H
#define PORTCULLIS_FWDHEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config_model.h"
#include "http/headers.h"

/* What decides about one request's headers. */
struct fwdheaders_rules {
	const struct config *cfg;
	const struct headers_connection_list *conn; /* names the client's Connection lists */
	const struct config_header_ops *jump_ops;   /* the "site" route's request_headers, or NULL */
	const struct config_header_ops *route_ops;  /* the acting route's request_headers */
	bool drop_cookies;  /* the route (or the "site" route) has "drop_cookies" */
	bool ws_made_up_key; /* a WebSocket upgrade goes upstream with a key made up here */
	bool trace_continued; /* the client's traceparent was valid: its tracestate goes on */
};

/*
 * NULL when the client's header <name> is forwarded as it is; else why it
 * is dropped (a short English phrase: hop-by-hop, the proxy sets it, listed
 * in Connection, "_" in the name, drop_cookies, the route sets or removes it,
 * ...).
 */
const char *fwdheaders_dropped(const struct fwdheaders_rules *r, const char *name);

struct ipacl;

/*
 * The client behind a trusted proxy: walk X-Forwarded-For <xff> (the
 * trusted peer's, several headers joined by ", ") from the right, skipping
 * addresses in <trusted>; the first untrusted one is the client, written to
 * <client> (<len> bytes, INET6_ADDRSTRLEN suffice), which holds the peer's
 * address on entry.  A malformed entry stops the walk (the last address
 * written stays).
 */
void fwdheaders_client(const struct ipacl *trusted, const char *xff, char *client, size_t len);

/* What the proxy's own upstream headers are made of. */
struct fwdheaders_own {
	const char *client;         /* the client's address (after X-Forwarded-For) */
	const char *forwarded_for;  /* a trusted peer's X-Forwarded-For, or NULL */
	const char *peer;           /* the peer's own address (with forwarded_for) */
	const char *proto;          /* a trusted peer's X-Forwarded-Proto, or NULL */
	const char *fwd_host;       /* a trusted peer's X-Forwarded-Host, or NULL */
	const char *fwd_port;       /* a trusted peer's X-Forwarded-Port, or NULL */
	bool tls;                   /* the listener is HTTPS */
	const char *host_header;    /* the client's Host, or NULL */
	const char *listener_port;  /* the listener's port */
	const char *request_id;
	const char *traceparent;    /* the proxy's own span (W3C trace context) */
	/* the verified client certificate (docs/tls.md#client-certificates), NULL: none */
	const char *cert_subject, *cert_sha256;
	const char *cert_san;       /* "" or NULL: no SAN header */
	const char *country;        /* GeoIP country code, "" when unknown */
	uint64_t asn;               /* GeoIP ASN, 0 when unknown */
};

/*
 * Call <add> for every header the proxy writes into the upstream request, in
 * order, with its name and value; a value in two parts (<more> not NULL) is
 * "<value>, <more>" (X-Forwarded-For behind a trusted peer).
 */
void fwdheaders_own_each(const struct config *cfg, const struct fwdheaders_own *own,
			 void (*add)(void *arg, const char *name, const char *value,
				     const char *more),
			 void *arg);

#endif

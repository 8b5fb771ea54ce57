/*
 * h2: the HTTP/2 codec (RFC 9113), on Debian's libnghttp2 for framing, HPACK,
 * flow control and the protocol's own checks (pseudo-headers, forbidden
 * connection-specific fields, content-length against DATA, CONTINUATION and
 * SETTINGS/PING floods).  Our glue maps each stream onto a server_request,
 * so a handler sees an HTTP/2 request exactly as an HTTP/1.1 one
 * (request.h), and adds what libnghttp2 leaves to the application:
 *
 *   - :authority becomes Host; a Host that differs, userinfo, or :scheme
 *     "http" on TLS is malformed (400); a request for a name the
 *     connection's certificate does not cover, on a connection whose SNI
 *     named another host, gets 421 (browsers coalesce connections);
 *   - the header list is counted like an HTTP/1.1 head against the same
 *     limit (431), and far past it (an HPACK bomb) the connection ends with
 *     GOAWAY ENHANCE_YOUR_CALM;
 *   - cookie crumbs are joined with "; ", trailers dropped, nothing pushed;
 *   - streams the client cancels after the handler saw them (Rapid Reset,
 *     CVE-2023-44487) and resets the client provokes (MadeYouReset,
 *     CVE-2025-8671) are counted; past a bound: GOAWAY ENHANCE_YOUR_CALM;
 *   - each response streams from its own bounded buffer (a stream the client
 *     does not read pauses its upstream, never the others), and a stream
 *     that makes no progress for the client timeout is reset;
 *   - drain sends a shutdown notice, then GOAWAY with the last stream id,
 *     and lets open streams finish.
 *
 * conn.c selects h2_conn_codec by ALPN "h2"; h2c_conn_codec serves plain
 * connections that may start with the HTTP/2 preface (prior knowledge) and
 * hands the others to HTTP/1.1.
 */
#ifndef PORTCULLIS_H2_H
#define PORTCULLIS_H2_H

struct conn_codec;

/* HTTP/2 over TLS, selected by ALPN "h2". */
extern const struct conn_codec h2_conn_codec;

/* A plain connection: HTTP/2 when it starts with the connection preface
 * (prior knowledge, RFC 9113 3.3), HTTP/1.x otherwise. */
extern const struct conn_codec h2c_conn_codec;

/* Codec lists for server_new: TLS with h2 and HTTP/1.1 (HTTP/1.1 when ALPN
 * names nothing), and plain with prior-knowledge h2c. */
extern const struct conn_codec *const h2_tls_codecs[];
extern const struct conn_codec *const h2c_codecs[];

/* ALPN preference lists for server_set_alpn. */
extern const char *const h2_alpn_h2[];   /* "h2", "http/1.1" */
extern const char *const h2_alpn_h1[];   /* "http/1.1" */

#endif

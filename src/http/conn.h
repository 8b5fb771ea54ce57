/*
 * conn: the server side of client connections on raw non-blocking sockets:
 * accept, the PROXY protocol header, TLS (handshake, SSL_read/SSL_write on
 * the socket itself), the connection's timer, output with back-pressure,
 * and drain.  Once the connection is ready (after the handshake, where the
 * ALPN result picks one) a codec reads requests from it: h1.c for HTTP/1.x
 * today.  Requests reach the handler as request.h describes.
 *
 * Why not evhttp: it reads whole bodies before any handler runs, answers
 * some errors itself (400 where 431 is right, 413 for chunk extensions),
 * has no total header deadline, does not notice a client that hangs up
 * while a request is pending, and costs about twice the system calls per
 * request (epoll_ctl churn, FIONREAD before every read).  Here:
 *
 *   - header size over the limit is 431, headers must arrive within the
 *     client timeout in total (slow clients), idle keep-alive connections
 *     close after it;
 *   - reading stays on, so a client that hangs up is noticed at once;
 *   - drain closes idle connections and lets active ones finish.
 *
 * One server per listening socket per worker thread (and one for the admin
 * listener on the main thread); everything here runs on that thread's event
 * loop.
 */
#ifndef PORTCULLIS_CONN_H
#define PORTCULLIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "http/http_types.h"
#include "http/request.h"

struct event_base;
struct server;
struct ipacl;
struct ssl_ctx_st;


/*
 * Accept connections on the listening socket <fd> (taken over: closed by
 * server_free) and pass requests to <handler> with <arg>.  <port> is the
 * listener's port (for the handler).  <codecs> (NULL-ended, e.g. h1.h's
 * h1_codecs) are the protocols it speaks: a TLS connection gets the one its
 * ALPN names, any other the first.  A raw listener (server_set_raw) passes
 * NULL.  NULL on failure.
 */
struct conn_codec;
struct server *server_new(struct event_base *base, int fd, int port,
			  const struct conn_codec *const *codecs,
			  const struct server_handler *handler, void *arg);

/* Change limits for requests that start from now on. */
void server_set_limits(struct server *srv, const struct server_limits *limits);

/* Lingering close (conn_linger in http_internal.h): after an early answer
 * with the client still sending, read and drop its bytes for at most <total>
 * (default 30 s), at most <idle> between two reads (default 5 s, never more
 * than the client timeout) and at most <max_bytes> (default 64 MiB) before
 * closing. */
void server_set_linger(struct server *srv, const struct timeval *total, const struct timeval *idle,
		       uint64_t max_bytes);

/* Count this server's connections in the client-connection gauge (on by
 * default; the admin listener turns it off).  Call before the first
 * connection. */
void server_set_counted(struct server *srv, bool counted);

/* Answer HTTP/1.0 requests with an "HTTP/1.0" status line, as evhttp did
 * (the admin listener, whose status line scripts read).  Default off:
 * "HTTP/1.1" to every client, the server's own version (RFC 9110, 6.2). */
void server_set_http10_status(struct server *srv, bool on);

/* Expect a PROXY protocol (v1 or v2) header at the start of every new
 * connection; connections from peers outside <trusted> are closed at once,
 * and the address in the header becomes the request's peer.  <trusted> must
 * live until the next call. */
void server_set_proxy_protocol(struct server *srv, bool on, const struct ipacl *trusted);

/* Speak TLS on this listener from now on (<ctx> is referenced; NULL: plain
 * HTTP).  Certificate choice (SNI, ALPN) is the context's business.  Plain
 * HTTP sent to a TLS listener is answered with a plain-text 400. */
void server_set_tls(struct server *srv, struct ssl_ctx_st *ctx);

/* The ALPN protocols TLS connections may select from now on, in order of
 * preference (NULL-ended, e.g. {"h2", "http/1.1", NULL}; must outlive the
 * server; NULL: "http/1.1" only).  Each must name one of the server's
 * codecs. */
void server_set_alpn(struct server *srv, const char *const *protos);

/* The client-certificate policies (tls/tls_clientauth.h) of TLS connections
 * accepted from now on (borrowed: must live until the next call; NULL:
 * none).  Each connection keeps a reference to the map it started with. */
struct tls_client_auth_map;
void server_set_client_auth(struct server *srv, struct tls_client_auth_map *map);

/* Serve a connected socket <fd> (taken over) as if it had been accepted,
 * with <peer> as the client's address (NULL: unknown).  For in-process
 * tests over socketpair().  Returns 0, or -1 (fd closed). */
int server_adopt(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen);

/* ---- connection limits -------------------------------------------------- */

/* Who admits the connections of an HTTP listener (its connection limits). */
struct server_admission {
	/* The client's address is known (<peer>: the PROXY header's, else the
	 * socket's), before any TLS: return the connection's slot (not NULL)
	 * to admit it, or NULL to close it at once. */
	void *(*admit)(const struct sockaddr *peer, void *arg);
	/* A connection holding <slot> closed. */
	void (*release)(void *slot, void *arg);
};

/* Admit connections of <srv> through <a> (must outlive it) with <arg>.  Call
 * before the first connection.  Not for raw listeners. */
void server_set_admission(struct server *srv, const struct server_admission *a, void *arg);

/* The servers of one listener in several workers share a count of their
 * open connections, so that a worker past its share lets the others accept
 * first (bursts of new connections spread over the workers instead of
 * queueing on one).  A share outlives every server that uses it. */
struct server_share;
struct server_share *server_share_new(void);
void server_share_free(struct server_share *share);

/* Make <srv> one of the servers of <share>.  Call before the first
 * connection. */
void server_set_share(struct server *srv, struct server_share *share);

/* Take the slot of <c> over (NULL when it has none): the connection no
 * longer gives it back when it closes; whoever took it does (a tunnel the
 * connection became, when the tunnel ends). */
struct server_conn;
void *server_conn_take_slot(struct server_conn *c);

/* ---- listeners that carry no HTTP (TCP relays) ------------------------- */

struct evbuffer;
struct server_conn;
struct tunnel_end;

/* Why the transport refused a connection of a raw listener. */
enum server_refusal {
	SERVER_REFUSED_UNTRUSTED,     /* a PROXY header expected from outside trusted_proxies */
	SERVER_REFUSED_PROXY_HEADER,  /* the PROXY header is malformed (<detail> says how) */
	SERVER_REFUSED_PROXY_TIMEOUT, /* no PROXY header within the connection's deadline */
};

/*
 * The handler of a raw listener: the transport accepts, reads the PROXY
 * header (peeked, so nothing past it is consumed), then holds the
 * connection (reads nothing, no timer) until the handler takes its socket
 * over with server_conn_detach (into a tunnel) or closes it.  No TLS here:
 * a detached socket is bare and its new owner speaks TLS on it.
 */
struct server_raw_handler {
	/* Accepted from <peer> (the socket's).  Runs before the PROXY / trust
	 * decision, so it may still change the server's PROXY setting
	 * (server_set_proxy_protocol) and the connection's deadline.  Returns
	 * the connection's data, or NULL to close it at once (no further
	 * call). */
	void *(*on_accept)(struct server_conn *c, const struct sockaddr *peer, void *arg);
	/* The transport refused it (on_close follows). */
	void (*on_refused)(struct server_conn *c, enum server_refusal why, const char *detail,
			   void *data);
	/* The client address is known (<peer>: from the PROXY header, else the
	 * socket's); the connection is held for the handler. */
	void (*on_ready)(struct server_conn *c, const struct sockaddr *peer, void *data);
	/* The connection closed while the handler held it (refused, or the
	 * server was freed); the last call with <data>.  Not called after
	 * server_conn_detach or server_conn_close. */
	void (*on_close)(struct server_conn *c, void *data);
};

/* Make <srv> a raw listener with <h> (must outlive it) and <arg>.  Call
 * before the first connection; do not combine with server_set_tls. */
void server_set_raw(struct server *srv, const struct server_raw_handler *h, void *arg);

/* The deadline for the PROXY header (and anything before on_ready) of
 * connection <c>, from now. */
void server_conn_set_deadline(struct server_conn *c, const struct timeval *tv);

/*
 * Take the socket of <c> over: its descriptor and SSL object (NULL when
 * plain) go to <end>, bytes read from it but not consumed are appended to
 * <early> (may be NULL when there can be none), and the connection is
 * gone (no on_close).  Only once it is ready and its output is written (a
 * raw connection in on_ready or later; later an HTTP/1 connection after
 * its 101).  Returns 0, or -1 with <c> untouched.
 */
int server_conn_detach(struct server_conn *c, struct tunnel_end *end, struct evbuffer *early);

/* Close <c> without calling on_close (the handler gives up on it). */
void server_conn_close(struct server_conn *c);

/* Stop accepting (closing the listening socket), close idle connections, and
 * close each active one once its response is written. */
void server_drain(struct server *srv);

/* Connections still open. */
size_t server_connections(const struct server *srv);

/* Close every connection (aborting their requests) and free.  Accepts NULL. */
void server_free(struct server *srv);

#endif

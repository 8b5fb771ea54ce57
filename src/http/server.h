/*
 * server: the client side of HTTP/1.1 on raw non-blocking sockets: accept,
 * parse requests with http-parser (Debian's libhttp-parser, strict about
 * framing), hand each request to a handler, write its response.
 *
 * Why not evhttp: it reads whole bodies before any handler runs, answers
 * some errors itself (400 where 431 is right, 413 for chunk extensions),
 * has no total header deadline, does not notice a client that hangs up
 * while a request is pending, and costs about twice the system calls per
 * request (epoll_ctl churn, FIONREAD before every read).  Here:
 *
 *   - the handler sees the head first (route, refuse with 4xx, or accept and
 *     set the body limit: a 2 MiB route refuses a 3 MiB Content-Length
 *     before a byte of it is read; "Expect: 100-continue" is answered only
 *     for accepted requests);
 *   - header size over the limit is 431, headers must arrive within the
 *     client timeout in total (slow clients), idle keep-alive connections
 *     close after it;
 *   - a client that hangs up is noticed at once (reading stays on), and the
 *     handler is told;
 *   - responses are written as soon as they are handed over, with
 *     back-pressure reported to the handler; drain closes idle connections
 *     and lets active ones finish.
 *
 * One server per listening socket per worker thread; everything here runs
 * on that worker's event loop.
 */
#ifndef PORTCULLIS_SERVER_H
#define PORTCULLIS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

struct event_base;
struct evbuffer;
struct evkeyvalq;
struct server;
struct server_request;

/* What the handler answers when it has seen a request's head. */
enum server_verdict {
	SERVER_READ_BODY, /* read the body (up to the limit set), then on_request */
	SERVER_REPLIED,   /* the handler replied already (a refusal) */
};

struct server_handler {
	/* Head parsed (method, target, headers).  The handler either replies
	 * (and returns SERVER_REPLIED) or sets the body limit and returns
	 * SERVER_READ_BODY. */
	enum server_verdict (*on_head)(struct server_request *req, void *arg);
	/* The whole body arrived. */
	void (*on_request)(struct server_request *req, void *arg);
	/* The handler must stop working for a request it saw but did not
	 * finish replying to.  <status>: 499 when the client went away or
	 * stalled, else the error the server answered in the handler's place
	 * (413 body over the limit, 417, 400 malformed body).  The request is
	 * freed after this. */
	void (*on_abort)(struct server_request *req, int status, void *arg);
	/* The output queued for the client fell back under the limit after
	 * server_reply_body said it was over (resume reading upstream). */
	void (*on_drained)(struct server_request *req, void *arg);
};

/* Limits and timeouts a server applies to its connections. */
struct server_limits {
	size_t max_header_bytes;   /* request line + headers; over it: 431 */
	struct timeval client;     /* header deadline, idle keep-alive, write stall */
};

/*
 * Accept connections on the listening socket <fd> (taken over: closed by
 * server_free) and pass requests to <handler> with <arg>.  <port> is the
 * listener's port (for the handler).  NULL on failure.
 */
struct server *server_new(struct event_base *base, int fd, int port,
			  const struct server_handler *handler, void *arg);

/* Change limits for requests that start from now on. */
void server_set_limits(struct server *srv, const struct server_limits *limits);

/* Expect a PROXY protocol (v1 or v2) header at the start of every new
 * connection; connections from peers outside <trusted> are closed at once,
 * and the address in the header becomes the request's peer.  <trusted> must
 * live until the next call. */
struct ipacl;
void server_set_proxy_protocol(struct server *srv, bool on, const struct ipacl *trusted);

/* Speak TLS on this listener from now on (<ctx> is referenced; NULL: plain
 * HTTP).  Certificate choice (SNI, ALPN) is the context's business.  Plain
 * HTTP sent to a TLS listener is answered with a plain-text 400. */
struct ssl_ctx_st;
void server_set_tls(struct server *srv, struct ssl_ctx_st *ctx);

/* Stop accepting (closing the listening socket), close idle connections, and
 * close each active one once its response is written. */
void server_drain(struct server *srv);

/* Connections still open. */
size_t server_connections(const struct server *srv);

/* Close every connection (aborting their requests) and free.  Accepts NULL. */
void server_free(struct server *srv);

/* ---- the request ---------------------------------------------------- */

/* Method as http-parser names it ("GET"), and the raw request-target. */
const char *server_request_method(const struct server_request *req);
const char *server_request_target(const struct server_request *req);
/* HTTP minor version (0 or 1; the major is always 1). */
int server_request_minor(const struct server_request *req);
/* Request headers, in order, duplicates kept. */
struct evkeyvalq *server_request_headers(struct server_request *req);
/* The body read so far (all of it in on_request). */
struct evbuffer *server_request_body(struct server_request *req);
/* The client's address (socket peer) and the listener's port. */
const struct sockaddr *server_request_peer(const struct server_request *req);
int server_request_port(const struct server_request *req);
/* Body bytes declared by Content-Length, or -1 (chunked or none). */
int64_t server_request_content_length(const struct server_request *req);
/* The handler's per-request pointer. */
void server_request_set_data(struct server_request *req, void *data);
void *server_request_data(const struct server_request *req);
/* Largest body the handler accepts (default 0: no body).  Over it: 413. */
void server_request_set_max_body(struct server_request *req, uint64_t max);

/* ---- the response --------------------------------------------------- */

/*
 * A complete response: status line, <headers> (may be NULL), framing
 * (Content-Length of <body>), <body> (may be NULL; moved out).  For HEAD
 * and 1xx/204/304 no body is sent.  <close>: the connection closes after.
 */
void server_reply(struct server_request *req, int status, struct evkeyvalq *headers,
		  struct evbuffer *body, bool close);

/* Start a streamed response.  With a Content-Length in <headers> the body is
 * sent as is; without one, chunked to HTTP/1.1 clients and close-delimited
 * to HTTP/1.0 clients.  Hop-by-hop headers must already be gone. */
void server_reply_start(struct server_request *req, int status, struct evkeyvalq *headers);

/* Send body bytes (moved out of <data>).  Returns true when the client's
 * backlog is over the limit: stop producing until on_drained. */
bool server_reply_body(struct server_request *req, struct evbuffer *data);

/* End the streamed response.  The handler must not touch <req> after. */
void server_reply_end(struct server_request *req);

/* Cut the response short and close the connection (the upstream failed
 * mid-body): the client sees an incomplete message, never a wrong one. */
void server_reply_abort(struct server_request *req);

/* Reason phrase for a status code ("Not Found"). */
const char *server_status_text(int status);

#endif

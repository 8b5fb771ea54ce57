/*
 * request: the request object a handler sees, whatever protocol carried it.
 * A codec (h1.c today, h2 later) turns bytes into a server_request and hands
 * it to the listener's handler (proxy.c, admin.c); the handler reads the
 * head and body through the getters below and answers through server_reply*,
 * which the codec turns back into bytes.  Nothing here speaks of HTTP/1
 * framing (chunked encoding, Connection headers, pipelining): that is the
 * codec's business.  The transport (accept, TLS, timers) is conn.h's.
 *
 * The handler contract:
 *
 *   - the handler sees the head first (route, refuse with 4xx, or accept and
 *     set the body limit: a 2 MiB route refuses a 3 MiB Content-Length
 *     before a byte of it is read; "Expect: 100-continue" is answered only
 *     for accepted requests);
 *   - a client that hangs up is noticed at once, and the handler is told
 *     (on_abort);
 *   - responses are written as soon as they are handed over, with
 *     back-pressure reported to the handler (server_reply_body, on_drained);
 *   - a reply never re-enters the codec: what comes next on the connection
 *     (the next pipelined request, closing) runs from the event loop after
 *     the handler has returned, so a transaction is finished (logged) before
 *     the next one starts.
 *
 * Everything here runs on the event loop of the connection's worker.
 */
#ifndef PORTCULLIS_REQUEST_H
#define PORTCULLIS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/http_types.h"
#include "http/tunnel.h"

struct evbuffer;
struct evkeyvalq;
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
	/* <n> more body bytes arrived and are about to be kept (within the
	 * body limit; may be NULL).  Return 0 to keep them, or -1 after
	 * replying (a refusal: the rest of the body is not read).  Lets the
	 * handler count a body of unknown length (chunked, HTTP/2 without
	 * content-length) against a memory budget as it comes, and HTTP/2 open
	 * a stream's window only for bytes it accepted. */
	int (*on_body)(struct server_request *req, size_t n, void *arg);
};


/* ---- the request ---------------------------------------------------- */

/* Method as http-parser names it ("GET"), and the raw request-target. */
const char *server_request_method(const struct server_request *req);
const char *server_request_target(const struct server_request *req);
/* The protocol (and version) the request came in. */
enum server_proto server_request_proto(const struct server_request *req);
/* Request headers, in order, duplicates kept.  Add with evhttp_add_header or
 * hdrarena; remove only with hdrarena_remove_header and the arena below. */
struct evkeyvalq *server_request_headers(struct server_request *req);
/* The arena the request's headers live in (hdrarena.h; the codec's, reset
 * when the request is freed), or NULL when evhttp_add_header made them all. */
struct hdrarena *server_request_header_arena(const struct server_request *req);
/* The body read so far (all of it in on_request). */
struct evbuffer *server_request_body(struct server_request *req);
/* The client's address (socket peer) and the listener's port. */
const struct sockaddr *server_request_peer(const struct server_request *req);
int server_request_port(const struct server_request *req);
struct ssl_st;
/* The TLS connection the request came on (borrowed), or NULL for plain HTTP. */
struct ssl_st *server_request_tls(const struct server_request *req);
/* Body bytes declared by Content-Length, or -1 (chunked or none). */
int64_t server_request_content_length(const struct server_request *req);
/* The handler's per-request pointer. */
void server_request_set_data(struct server_request *req, void *data);
void *server_request_data(const struct server_request *req);
/* Largest body the handler accepts (default 0: no body).  Over it: 413. */
void server_request_set_max_body(struct server_request *req, uint64_t max);
/* Mark the request as a tunnel (a 101 Upgrade, later an extended CONNECT):
 * once answered with 101, the bytes that follow belong to the tunnel, not
 * to HTTP (HTTP/1: "Connection: Upgrade" goes out, nothing more is parsed,
 * and without server_request_on_tunnel the connection closes after the
 * 101).  Answered with any other status it stays an HTTP request. */
void server_request_set_tunnel(struct server_request *req, bool tunnel);
bool server_request_is_tunnel(const struct server_request *req);

/* The client's side of a tunnel, handed to whoever takes it. */
struct server_tunnel_client {
	struct tunnel_end end;  /* HTTP/1: the connection's socket (and SSL); HTTP/2:
				 * one end of a socket pair the codec carries in the
				 * stream's DATA frames */
	struct evbuffer *early; /* bytes the client sent after the request (moved in) */
	void *slot;             /* the connection's limit slot (conn.h admission), or
				 * NULL (HTTP/2: the connection keeps its own) */
};
/* Who takes the client's side of a tunnel request over. */
typedef void (*server_tunnel_fn)(struct server_tunnel_client *client, void *arg);

/*
 * Mark <req> as a tunnel and name who takes it over: once the 101 answer is
 * out (HTTP/2, RFC 8441: a 200 that keeps the stream open), the request is
 * finished and freed, then <fn>(client, <arg>) runs from the event loop;
 * <fn> owns everything in <client> from then on (closes the end, frees
 * <early>, gives the slot back).  When the request ends without that
 * (another status, the client gone first), <fn>(NULL, <arg>) runs once
 * instead, at the latest as the connection is freed.
 */
void server_request_on_tunnel(struct server_request *req, server_tunnel_fn fn, void *arg);

/* ---- the response --------------------------------------------------- */

/*
 * A complete response: status line, <headers> (may be NULL), framing
 * (Content-Length of <body>), <body> (may be NULL; moved out).  For HEAD
 * and 1xx/204/304 no body is sent.  <close>: the connection closes after.
 * The request is finished: the handler must not touch <req> after.
 */
void server_reply(struct server_request *req, int status, struct evkeyvalq *headers,
		  struct evbuffer *body, bool close);

/* Start a streamed response.  With a Content-Length in <headers> the body is
 * sent as is; otherwise the codec frames it (HTTP/1.1: chunked; HTTP/1.0:
 * the body ends with the connection).  Hop-by-hop headers must already be
 * gone. */
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

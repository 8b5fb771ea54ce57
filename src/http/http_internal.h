/*
 * http_internal: what the transport (conn.c), the HTTP/1.1 codec (h1.c) and
 * the request object (request.c) share.  Nothing outside src/http includes
 * it: handlers see request.h, the worker sees conn.h.
 *
 *   conn.c     owns the socket, TLS, the PROXY header, the timer and the
 *              output buffer; it calls the connection's codec through
 *              struct conn_codec when bytes arrive, output drains, the timer
 *              fires, the server drains or the connection closes.
 *   h1.c       turns bytes into requests and responses into bytes.
 *   request.c  the handler's view; replies go to the request's codec
 *              through struct http_codec_ops.
 */
#ifndef PORTCULLIS_HTTP_INTERNAL_H
#define PORTCULLIS_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "http/h1_state.h"
#include "http/http_types.h"
#include "http/lazytimer.h"

/* Client output bytes before back-pressure: past it the producer (an
 * upstream read block, 64 KiB) waits; the kernel's socket buffer is the
 * real queue, so memory per slow client stays small. */
#define CONN_BACKLOG_LIMIT (32 * 1024)

struct event;
struct evbuffer;
struct h2_session;
struct ipacl;
struct server_conn;
struct server_handler;
struct server_limits;
struct server_raw_handler;
struct server_admission;
struct server_request;
struct server_tunnel_client;

/* A codec's side of a reply (request.c calls these after checking that the
 * handler may still reply).  Each hands the bytes to the connection's
 * output and schedules the connection (conn_write_soon): none runs the
 * codec inline. */
struct http_codec_ops {
	void (*reply)(struct server_request *req, int status, struct evkeyvalq *headers,
		      struct evbuffer *body, bool close);
	void (*reply_start)(struct server_request *req, int status, struct evkeyvalq *headers);
	bool (*reply_body)(struct server_request *req, struct evbuffer *data);
	void (*reply_end)(struct server_request *req);
	void (*abort)(struct server_request *req);
};

/* A codec's side of a connection (conn.c calls these). */
struct conn_codec {
	const char *alpn; /* the ALPN protocol name that selects it */
	const struct http_codec_ops *reply; /* how its requests reply */
	/* The server's limits changed (server_set_limits); may be NULL. */
	void (*configure)(const struct server_limits *limits);
	/* The transport is ready (PROXY header read, handshake done). */
	void (*start)(struct server_conn *c);
	/* Bytes were appended to c->in. */
	void (*input)(struct server_conn *c);
	/* Move on: finish what is written, dispatch, parse (after output was
	 * written, or when a reply was handed over). */
	void (*run)(struct server_conn *c);
	/* False: enough is read ahead, stop reading until the codec resumes it
	 * (conn_resume_reading). */
	bool (*read_more)(const struct server_conn *c);
	/* The client closed its side.  True: finish writing what is queued,
	 * then close; false: close now. */
	bool (*eof)(struct server_conn *c);
	/* The connection's timer fired while a request was in progress (or
	 * the connection was idle past its keep-alive time). */
	void (*timeout)(struct server_conn *c);
	/* The output fell back under CONN_BACKLOG_LIMIT. */
	void (*drained)(struct server_conn *c);
	/* The server drains.  True: nothing is in progress, close now; false:
	 * close after the response in progress. */
	bool (*drain)(struct server_conn *c);
	/* The connection closes: tell the handler of the requests it holds. */
	void (*abort)(struct server_conn *c);
	/* Free the codec's state (the connection is being freed). */
	void (*free)(struct server_conn *c);
	/* The connection has been idle a while (its buffers are being freed):
	 * give back what the next request can rebuild; may be NULL. */
	void (*idle)(struct server_conn *c);
};

struct server {
	struct event_base *base;
	int fd;
	int port;
	struct event *accept_ev;
	const struct server_handler *handler;
	/* The codecs it speaks, NULL-ended, the default first (server_new); NULL
	 * on a raw listener. */
	const struct conn_codec *const *codecs;
	void *arg;
	struct server_limits limits;
	SSL_CTX *tls;          /* NULL: plain HTTP */
	const char *const *alpn; /* protocols TLS connections may select (server_set_alpn) */
	struct tls_client_auth_map *client_auth; /* server_set_client_auth; borrowed */
	bool proxy_protocol;   /* every connection starts with a PROXY header */
	bool counted;          /* in METRIC_CLIENT_CONNECTIONS */
	bool http10_status;    /* "HTTP/1.0" status lines to HTTP/1.0 clients */
	const struct ipacl *trusted; /* peers whose PROXY header is believed */
	const struct server_admission *admission; /* connection limits, or NULL */
	void *admission_arg;
	const struct server_raw_handler *raw; /* a raw listener's handler, or NULL */
	void *raw_arg;
	LIST_HEAD(, server_conn) conns;
	size_t nconns;
	struct server_share *share;  /* the listener's, shared with other workers; NULL: alone */
	bool draining;
	/* Lingering close (conn_linger): at most this long in all, this long
	 * between two reads, this many bytes dropped. */
	struct timeval linger_time, linger_idle;
	uint64_t linger_bytes;
	/* Accepting paused (out of descriptors): re-enabled by this timer. */
	struct event *accept_retry;
};

struct server_request {
	struct server_conn *conn;   /* replies go through conn->codec->reply */
	char *target;
	size_t target_len, target_cap;
	struct evkeyvalq headers;
	struct hdrarena *header_arena; /* the codec's, where <headers> live; NULL: evhttp's */
	struct evbuffer *body;
	uint64_t max_body;
	int64_t content_length;
	enum server_proto proto;
	const char *method;
	void *data;
	void *stream;         /* the codec's per-request state (HTTP/2: its stream) */
	bool tunnel;          /* marked by the handler (request.h) */
	bool upgraded;        /* a tunnel answered 101: the connection is handed over */
	void (*tunnel_fn)(struct server_tunnel_client *client, void *arg); /* who takes it
					 * (server_request_on_tunnel), or NULL */
	void *tunnel_arg;
	bool head_method;
	bool handler_seen;    /* on_head was called: the handler owns it until done */
	bool head_done;       /* headers complete; the body (if any) is being read */
	bool keepalive;       /* the client allows another request after this one */
	bool body_expected;
	bool complete;        /* the whole request was read */
	bool dispatched;      /* on_request was called */
	bool replied_early;   /* the handler answered in on_head */
	bool handler_done;    /* reply ended or aborted: the handler is out */
	bool started;         /* status line written */
	bool chunked;         /* response body in chunked encoding */
	bool no_body;         /* HEAD, 1xx, 204, 304 */
	bool over_limit;      /* back-pressure reported */
};

struct server_conn {
	LIST_ENTRY(server_conn) link;
	struct server *srv;
	const struct conn_codec *codec; /* NULL until the transport is ready */
	int fd;
	struct sockaddr_storage peer;
	SSL *ssl;               /* NULL on plain listeners */
	bool pp_pending;        /* the PROXY header is still to be read */
	bool tls_checked;       /* the first byte looked like TLS */
	bool handshaking;
	bool read_wants_write;  /* SSL_read needs the socket writable */
	bool write_wants_read;  /* SSL_write needs the socket readable */
	bool idle_release;      /* idle: the timer frees buffers first, closes later */
	bool served;            /* answered a request (HTTP/1): an idle close is retried */
	struct event *rev, *wev;
	struct lazytimer timer; /* idle, request head, stalled body, linger */
	char *in;
	size_t inlen, incap;
	char *target_spare;         /* the last request's target buffer, for the next */
	size_t target_spare_cap;
	struct evbuffer *body_spare; /* an empty body buffer a bodiless request left */
	struct evbuffer *out;
	struct server_request *req; /* the request in progress (HTTP/1: at most one) */
	struct h1_conn h1;          /* the HTTP/1 codec's state */
	struct h2_session *h2;      /* the HTTP/2 codec's state (h2.c), or NULL */
	bool closing;         /* close once the output is written */
	bool write_waiting;   /* wev is pending */
	bool write_soon;      /* a flush is scheduled for this loop turn */
	bool read_paused;
	bool running;         /* inside the codec's run (or a handler callback) */
	bool rerun;
	bool dead;            /* free when the running code unwinds */
	bool read_eof;        /* the client closed its side */
	bool discard_input;   /* the codec parses no more: input is counted and dropped */
	bool lingering;       /* closing with a lingering close (conn_linger) */
	bool linger_shut;     /* ... the output is written and the write side shut */
	uint64_t discarded;   /* input bytes dropped (conn_discard_input, lingering) */
	int64_t linger_end_ms; /* monotonic deadline of the lingering close */
	void *raw_data;       /* a raw listener's data while its handler holds it */
	void *slot;           /* what the admission gave it (server_set_admission) */
};

/* ---- conn.c: the transport, for codecs ---------------------------------- */

/* Write at the end of this loop turn, then run the codec: what a handler
 * hands over in one turn (head, body, end) leaves in one system call, and
 * the codec moves on from the event loop, never inside the handler. */
void conn_write_soon(struct server_conn *c);
/* After conn_write_soon, when the reply is complete: send the queued bytes
 * now, from inside the caller, instead of after every other callback of
 * the loop turn (under load that wait is the latency tail).  Only the
 * bytes: a failure, a short write or the codec's next step is left to the
 * write event conn_write_soon made active, so nothing runs re-entrantly. */
void conn_send_now(struct server_conn *c);
/* Write what the kernel takes now; wait for writability for the rest. */
void conn_write(struct server_conn *c);
/* Close now (or as soon as the running code unwinds).  The codec's abort
 * tells the handler first. */
void conn_close(struct server_conn *c);
/* Free a connection that is dead (after the running code unwound). */
void conn_free(struct server_conn *c);
/* Between two requests: arm the idle keep-alive timer. */
void conn_idle(struct server_conn *c);
/* Read again after read_more said stop. */
void conn_resume_reading(struct server_conn *c);
/* The codec will parse nothing more from this connection (it closes after
 * its last answer): from now on what arrives is counted and dropped as it
 * is read, against the lingering byte limit.  Bytes already in c->in stay
 * (the codec may be inside a parse of them); it drops them itself. */
void conn_discard_input(struct server_conn *c);
/*
 * The codec is done with the connection: close it once its output is
 * written.  When <client_may_send> (a request body left unread, a refused or
 * malformed head, input was dropped) or the client's bytes are waiting
 * unread, a plain close() would answer them with a reset that can destroy
 * the response before the client reads it (RFC 9112 9.6).  Then the close
 * lingers, as nginx's lingering_close: the output is written, the write
 * side shut (TLS: close_notify first), and what the client still sends is
 * read and dropped until it closes, for at most the server's lingering time
 * in all, its idle time between reads and its byte limit; counted in the
 * metrics.  The codec is called no more (its state stays until the free).
 * Safe while the codec runs (c->running).  Any codec: HTTP/1 after an early
 * answer, HTTP/2 after its GOAWAY.
 */
void conn_linger(struct server_conn *c, bool client_may_send);

/* ---- request.c: the request object, for codecs -------------------------- */

/* A new request on <c>, replying through its codec (reusing the connection's
 * spare target and body buffers).  NULL when out of memory. */
struct server_request *request_new(struct server_conn *c);
/* Free <req> (its buffers become the connection's spares).  Accepts NULL. */
void request_free(struct server_request *req);

#endif

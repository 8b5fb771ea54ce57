/* h2: the HTTP/2 codec; see h2.h. */
#include "http/h2.h"
#include "http/h1.h"
#include "http/h2mem.h"
#include "http/http_internal.h"
#include "http/httpdate.h"
#include "http/request.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <nghttp2/nghttp2.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/metrics.h"
#include "base/timeutil.h"

#define H2_MAX_STREAMS 100              /* SETTINGS_MAX_CONCURRENT_STREAMS (nginx 128, Go 250) */
#define H2_STREAM_WINDOW (256 * 1024)   /* a stream's receive window */
#define H2_CONN_WINDOW (1024 * 1024)    /* the connection's receive window */
#define H2_SEND_LIMIT (128 * 1024)      /* framed bytes queued for the socket before nghttp2 waits */
#define H2_STREAM_BACKLOG (256 * 1024)  /* a response's unframed bytes before its upstream pauses */
#define H2_MAX_FIELDS 512               /* header fields of one request */
#define H2_CALM_FACTOR 4                /* a head this many times the limit ends the connection */
#define H2_MAX_CANCELLED 100            /* streams cancelled after the handler saw them */
#define H2_MAX_PROVOKED 100             /* resets the client's frames forced on us */
#define H2_MAX_CONTROL 1000             /* control frames a connection may send ... */
#define H2_CONTROL_PER_STREAM 8         /* ... plus this many per stream it opened */
#define H2_GOAWAY_DELAY_MS 1000
#define H2_PIPE_READ 16384              /* bytes read from a tunnel's socket pair at once */         /* shutdown notice to the final GOAWAY: about a round trip */

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct h2_stream {
	TAILQ_ENTRY(h2_stream) link;
	struct h2_session *s;
	int32_t id;
	struct server_request *req;
	struct evbuffer *out;     /* response body not yet framed */
	char *authority, *host;   /* :authority, and a "host" field if one came */
	char *cookie;             /* the crumbs, joined */
	size_t cookie_len, cookie_cap;
	size_t head_bytes;        /* counted like an HTTP/1.1 head */
	unsigned fields;
	int refuse;               /* a status decided while the head came in, or 0 */
	const char *refuse_why;
	int64_t last_in, last_out; /* monotonic ms of the last progress each way */
	bool scheme_http;         /* :scheme was "http" */
	bool head_ready;          /* the head arrived; head_complete runs from the loop */
	bool ext_connect;         /* an extended CONNECT for a WebSocket (RFC 8441) */
	bool tunnel_ready;        /* its 200 is submitted: the taker gets the pair's end */
	bool client_ended;        /* the client ended its side (END_STREAM) */
	int pipe;                 /* a tunnel: our end of the socket pair, or -1 */
	int pipe_peer;            /* its other end until the taker has it, or -1 */
	struct event *pipe_rev, *pipe_wev;
	struct evbuffer *pipe_in; /* the client's DATA not yet written into the pair */
	char *protocol;           /* :protocol */
	bool head_end_stream;     /* ... with END_STREAM (no body) */
	bool provider;            /* a DATA provider is attached */
	bool deferred;            /* the provider waits for bytes */
	bool out_eof;             /* the handler ended the response */
	bool want_drained;        /* the handler waits for on_drained */
};

struct h2_session {
	nghttp2_session *ng;
	struct h2mem mem;        /* ng's allocator: its frame buffer is released when idle */
	struct server_conn *c;
	TAILQ_HEAD(, h2_stream) streams;
	size_t nstreams;
	unsigned answered;       /* responses completed */
	unsigned cancelled;      /* streams the client closed while the handler had them */
	unsigned provoked;       /* RST_STREAMs the client's frames caused */
	unsigned resets;         /* RST_STREAMs the client sent */
	unsigned control;        /* frames that ask work of us and carry no request */
	unsigned opened;         /* streams the client opened */
	struct event *goaway_ev; /* shutdown notice sent: the final GOAWAY follows */
	bool notice_sent;
	bool goaway_sent;
	bool calm;               /* ended with ENHANCE_YOUR_CALM */
	bool heads;              /* a head waits for head_complete */
	bool handover;           /* a tunnel's 200 is out: hand its pair's end over */
	bool dispatch;           /* a complete request waits for on_request */
	bool drained;            /* a stream's backlog fell: on_drained owed */
};

static void h2_run(struct server_conn *c);
static void pipe_close(struct h2_stream *st);
static void pipe_flush(struct h2_stream *st);

/* ---- helpers ------------------------------------------------------------ */

static struct h2_stream *
stream_of(struct h2_session *s, int32_t id)
{
	return nghttp2_session_get_stream_user_data(s->ng, id);
}

/* End the connection for abuse: GOAWAY ENHANCE_YOUR_CALM, read nothing more. */
static void
calm_down(struct h2_session *s, const char *why)
{
	if (s->calm)
		return;
	s->calm = true;
	metrics_add(METRIC_H2_ABUSE_CLOSES, 1);
	(void)why;
	nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* Method names as http-parser spells them (the strings h1 hands out), so a
 * handler compares one set of names whatever the protocol.  NULL when
 * http-parser does not know it (HTTP/1.1 refuses those too). */
static const char *
known_method(const uint8_t *name, size_t len)
{
	for (int m = 0; m < 64; m++) {
		const char *n = http_method_str((enum http_method)m);

		if (strcmp(n, "<unknown>") == 0)
			break;
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return n;
	}
	return NULL;
}

static char *
dup_n(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* The host part of an authority ("[::1]:443" → "::1"), into <out>. */
static bool
authority_host(const char *authority, char *out, size_t outlen)
{
	const char *end;
	size_t n;

	if (authority[0] == '[') {
		end = strchr(authority, ']');
		if (end == NULL)
			return false;
		authority++;
	} else {
		end = strrchr(authority, ':');
		if (end == NULL)
			end = authority + strlen(authority);
	}
	n = (size_t)(end - authority);
	if (n == 0 || n >= outlen)
		return false;
	memcpy(out, authority, n);
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '.')
		out[n - 1] = '\0';
	return out[0] != '\0';
}

/* 421 is due when this connection was opened for another name (SNI) and its
 * certificate does not cover <authority>: a browser coalesced it. */
static bool
misdirected(const struct server_conn *c, const char *authority)
{
	const char *sni;
	char host[256];
	X509 *cert;

	if (c->ssl == NULL)
		return false;
	sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
	if (sni == NULL || !authority_host(authority, host, sizeof(host)) ||
	    strcasecmp(sni, host) == 0)
		return false;
	cert = SSL_get_certificate(c->ssl);
	if (cert == NULL)
		return false;
	if (X509_check_host(cert, host, 0, 0, NULL) == 1 || X509_check_ip_asc(cert, host, 0) == 1)
		return false;
	return true;
}

/* ---- streams ------------------------------------------------------------ */

static struct h2_stream *
stream_new(struct h2_session *s, int32_t id)
{
	struct h2_stream *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->req = request_new(s->c);
	st->out = evbuffer_new();
	if (st->req == NULL || st->out == NULL) {
		if (st->out)
			evbuffer_free(st->out);
		request_free(st->req);
		free(st);
		return NULL;
	}
	st->s = s;
	st->id = id;
	st->pipe = st->pipe_peer = -1;
	st->req->proto = SERVER_PROTO_HTTP2;
	st->req->stream = st;
	st->req->keepalive = true;
	st->last_in = st->last_out = monotonic_ms();
	TAILQ_INSERT_TAIL(&s->streams, st, link);
	s->nstreams++;
	return st;
}

/* Free <st> and its request, telling the handler if it still works on it. */
static void
stream_free(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	struct server_request *req = st->req;

	if (req) {
		if (req->handler_seen && !req->handler_done) {
			req->handler_done = true;
			s->c->srv->handler->on_abort(req, 499, s->c->srv->arg);
		}
		request_free(req);
	}
	TAILQ_REMOVE(&s->streams, st, link);
	s->nstreams--;
	pipe_close(st);
	if (st->pipe_in)
		evbuffer_free(st->pipe_in);
	free(st->protocol);
	evbuffer_free(st->out);
	free(st->authority);
	free(st->host);
	free(st->cookie);
	free(st);
}

/* ---- tunnels (RFC 8441): a stream carried through a socket pair -------- */

static void
pipe_close(struct h2_stream *st)
{
	if (st->pipe_rev)
		event_free(st->pipe_rev);
	if (st->pipe_wev)
		event_free(st->pipe_wev);
	st->pipe_rev = st->pipe_wev = NULL;
	if (st->pipe >= 0)
		close(st->pipe);
	if (st->pipe_peer >= 0)
		close(st->pipe_peer);
	st->pipe = st->pipe_peer = -1;
}

/* Write the client's DATA into the pair; the stream's window opens by what
 * was written.  Once the client ended and all is written, shut the write
 * side (the tunnel sees the end). */
static void
pipe_flush(struct h2_stream *st)
{
	nghttp2_session *ng = st->s->ng;

	if (st->pipe < 0 || st->pipe_peer >= 0)
		return; /* not handed over yet: kept (the stream's window bounds it) */
	while (evbuffer_get_length(st->pipe_in) > 0) {
		int n = evbuffer_write(st->pipe_in, st->pipe);

		if (n > 0) {
			nghttp2_session_consume(ng, st->id, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			if (errno != EINTR) {
				event_add(st->pipe_wev, NULL);
				return;
			}
			continue;
		}
		/* The tunnel is gone: drop what is left, end the stream. */
		nghttp2_session_consume(ng, st->id, evbuffer_get_length(st->pipe_in));
		evbuffer_drain(st->pipe_in, evbuffer_get_length(st->pipe_in));
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
		return;
	}
	if (st->client_ended)
		shutdown(st->pipe, SHUT_WR);
}

static void
pipe_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_stream *st = arg;
	struct server_conn *c = st->s->c;

	(void)fd;
	(void)what;
	pipe_flush(st);
	h2_run(c); /* window updates */
}

/* The tunnel sent bytes (or ended): into the stream's response, as far as
 * its backlog allows (send_data_cb reads on when it falls). */
static void
pipe_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_stream *st = arg;
	struct server_conn *c = st->s->c;

	(void)what;
	while (evbuffer_get_length(st->out) < H2_STREAM_BACKLOG) {
		int n = evbuffer_read(st->out, fd, H2_PIPE_READ);

		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		st->out_eof = true; /* the tunnel ended: END_STREAM after the rest */
		break;
	}
	if (st->out_eof || evbuffer_get_length(st->out) >= H2_STREAM_BACKLOG)
		event_del(st->pipe_rev);
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->s->ng, st->id);
	}
	h2_run(c);
}

/* Give the pair's other end to the taker named by the handler. */
static void
hand_over(struct h2_stream *st)
{
	struct server_request *req = st->req;
	server_tunnel_fn fn = req->tunnel_fn;
	void *arg = req->tunnel_arg;
	struct server_tunnel_client client = {{st->pipe_peer, NULL}, evbuffer_new(), NULL};

	req->tunnel_fn = NULL;
	if (client.early == NULL) {
		fn(NULL, arg);
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	st->pipe_peer = -1;
	event_add(st->pipe_rev, NULL);
	pipe_flush(st);
	fn(&client, arg); /* the client's early bytes are in pipe_in, written by us */
}

/* ---- responses ---------------------------------------------------------- */

static ssize_t
data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
	  nghttp2_data_source *source, void *user)
{
	struct h2_stream *st = source->ptr;
	size_t avail = evbuffer_get_length(st->out);
	size_t n = avail < length ? avail : length;

	(void)ng;
	(void)id;
	(void)buf;
	(void)user;
	if (n == 0 && !st->out_eof) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (st->out_eof && n == avail)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Lower-case <name> into <dst> (nghttp2 sends names as given; HTTP/2 wants
 * them lower-case). */
static void
lower(char *dst, const char *name, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)tolower((unsigned char)name[i]);
}

/* A name/value pair for nghttp2, which copies both (its fields are not
 * const, but nothing is written through them). */
static nghttp2_nv
nv(const char *name, size_t namelen, const char *value, size_t valuelen)
{
	return (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, namelen,
			    valuelen, NGHTTP2_NV_FLAG_NONE};
}

static bool
skip_response_field(const char *k, bool keep_length)
{
	return strcasecmp(k, "connection") == 0 || strcasecmp(k, "keep-alive") == 0 ||
	       strcasecmp(k, "proxy-connection") == 0 || strcasecmp(k, "transfer-encoding") == 0 ||
	       strcasecmp(k, "upgrade") == 0 || strcasecmp(k, "te") == 0 ||
	       (!keep_length && strcasecmp(k, "content-length") == 0);
}

/* Submit the response head of <st>: :status, <headers> (connection-specific
 * fields dropped, names lower-cased), Date, and <length> as content-length
 * when not NULL.  With <body>, a DATA provider follows.  Returns 0 or -1. */
static int
submit_head(struct h2_stream *st, int status, struct evkeyvalq *headers, bool keep_length,
	    const char *length, bool body)
{
	struct server_request *req = st->req;
	size_t n = 3, names = 0, i = 0, dlen;
	struct evkeyval *kv;
	nghttp2_nv *nva;
	char *lc, status_text[8];
	const char *dline = http_date_line(&dlen);
	bool date = false;
	nghttp2_data_provider prd;
	int rv;

	if (headers) {
		TAILQ_FOREACH(kv, headers, next) {
			n++;
			names += strlen(kv->key);
		}
	}
	nva = malloc(n * sizeof(*nva) + names + 1);
	if (nva == NULL)
		return -1;
	lc = (char *)(nva + n);
	snprintf(status_text, sizeof(status_text), "%03d", status < 0 ? 0 : status % 1000);
	nva[i++] = nv(":status", 7, status_text, 3);
	if (headers) {
		TAILQ_FOREACH(kv, headers, next) {
			size_t kl = strlen(kv->key);

			if (skip_response_field(kv->key, keep_length) ||
			    (st->ext_connect && strcasecmp(kv->key, "sec-websocket-accept") == 0))
				continue; /* RFC 8441: no Accept on HTTP/2 */
			if (strcasecmp(kv->key, "date") == 0)
				date = true;
			lower(lc, kv->key, kl);
			nva[i++] = nv(lc, kl, kv->value, strlen(kv->value));
			lc += kl;
		}
	}
	if (!date)
		nva[i++] = nv("date", 4, dline + HTTP_DATE_VALUE_OFFSET,
			      dlen - HTTP_DATE_VALUE_OFFSET - 2);
	if (length)
		nva[i++] = nv("content-length", 14, length, strlen(length));
	req->started = true;
	prd.source.ptr = st;
	prd.read_callback = data_read;
	st->provider = body;
	rv = nghttp2_submit_response(st->s->ng, st->id, nva, i, body ? &prd : NULL);
	free(nva);
	return rv == 0 ? 0 : -1;
}

/* The head could not be submitted: reset the stream. */
static void
reply_failed(struct h2_stream *st)
{
	st->req->handler_done = true;
	nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	conn_write_soon(st->s->c);
}

/* A WebSocket's upstream switched (the handler answers 101): the stream
 * gets 200 and stays open, its DATA carried through a socket pair whose
 * other end goes to the tunnel's taker (run_handlers). */
static void
tunnel_reply(struct h2_stream *st, struct evkeyvalq *headers)
{
	struct server_request *req = st->req;
	struct event_base *base = st->s->c->srv->base;
	int sv[2];

	req->handler_done = true;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		reply_failed(st);
		return;
	}
	st->pipe = sv[0];
	st->pipe_peer = sv[1];
	st->pipe_rev = event_new(base, sv[0], EV_READ | EV_PERSIST, pipe_read_cb, st);
	st->pipe_wev = event_new(base, sv[0], EV_WRITE, pipe_write_cb, st);
	if (st->pipe_rev == NULL || st->pipe_wev == NULL ||
	    submit_head(st, 200, headers, false, NULL, true) < 0) {
		reply_failed(st);
		return;
	}
	st->tunnel_ready = true;
	st->s->handover = true;
	conn_write_soon(req->conn);
}

static void
h2_reply(struct server_request *req, int status, struct evkeyvalq *headers,
	 struct evbuffer *body, bool close)
{
	struct h2_stream *st = req->stream;
	size_t len = body ? evbuffer_get_length(body) : 0;
	bool bodiless = status < 200 || status == 204 || status == 304;
	char length[24];

	(void)close; /* a stream's refusal never costs the other streams */
	if (st->ext_connect && status == 101 && req->tunnel_fn != NULL) {
		tunnel_reply(st, headers);
		return;
	}
	req->no_body = req->head_method || bodiless;
	snprintf(length, sizeof(length), "%zu", len);
	if (body) {
		if (!req->no_body && len > 0)
			evbuffer_add_buffer(st->out, body);
		else
			evbuffer_drain(body, len);
	}
	st->out_eof = true;
	req->handler_done = true;
	if (submit_head(st, status, headers, false, bodiless ? NULL : length,
			!req->no_body && len > 0) < 0)
		reply_failed(st);
	conn_write_soon(req->conn);
}

static void
h2_reply_start(struct server_request *req, int status, struct evkeyvalq *headers)
{
	struct h2_stream *st = req->stream;

	req->no_body = req->head_method || status < 200 || status == 204 || status == 304;
	if (submit_head(st, status, headers, true, NULL, !req->no_body) < 0)
		reply_failed(st);
	conn_write_soon(req->conn);
}

static bool
h2_reply_body(struct server_request *req, struct evbuffer *data)
{
	struct h2_stream *st = req->stream;
	size_t len = evbuffer_get_length(data);

	if (len == 0)
		return false;
	if (req->no_body || !st->provider) {
		evbuffer_drain(data, len);
		return false;
	}
	if (evbuffer_get_length(st->out) == 0)
		st->last_out = monotonic_ms(); /* a quiet spell (SSE) is not a stall */
	evbuffer_add_buffer(st->out, data);
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->s->ng, st->id);
	}
	conn_write_soon(req->conn);
	if (evbuffer_get_length(st->out) > H2_STREAM_BACKLOG) {
		req->over_limit = true;
		return true;
	}
	return false;
}

static void
h2_reply_end(struct server_request *req)
{
	struct h2_stream *st = req->stream;

	st->out_eof = true;
	req->handler_done = true;
	if (st->provider && st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->s->ng, st->id);
	}
	conn_write_soon(req->conn);
}

/* The upstream failed mid-body: only this stream ends, reset. */
static void
h2_reply_abort(struct server_request *req)
{
	struct h2_stream *st = req->stream;

	req->handler_done = true;
	nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	conn_write_soon(req->conn);
}

static const struct http_codec_ops h2_codec_ops = {
	.reply = h2_reply,
	.reply_start = h2_reply_start,
	.reply_body = h2_reply_body,
	.reply_end = h2_reply_end,
	.abort = h2_reply_abort,
};

/* Answer <st> ourselves (the handler never sees it, or gave it up). */
static void
refuse(struct h2_stream *st, int status, const char *why)
{
	struct server_request *req = st->req;
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq h;

	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Content-Type", "text/plain; charset=utf-8");
	if (body)
		evbuffer_add_printf(body, "%d %s: %s\n", status, server_status_text(status), why);
	req->dispatched = true;
	server_reply(req, status, &h, body, false);
	evhttp_clear_headers(&h);
	if (body)
		evbuffer_free(body);
}

/* ---- requests ----------------------------------------------------------- */

static int
on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s->opened++;
	st = stream_new(s, frame->hd.stream_id);
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, st);
	return 0;
}

static int
cookie_add(struct h2_stream *st, const uint8_t *value, size_t n)
{
	size_t need = st->cookie_len + n + 3;

	if (need > st->cookie_cap) {
		char *p = realloc(st->cookie, need * 2);

		if (p == NULL)
			return -1;
		st->cookie = p;
		st->cookie_cap = need * 2;
	}
	if (st->cookie_len > 0) {
		memcpy(st->cookie + st->cookie_len, "; ", 2);
		st->cookie_len += 2;
	}
	memcpy(st->cookie + st->cookie_len, value, n);
	st->cookie_len += n;
	st->cookie[st->cookie_len] = '\0';
	return 0;
}

static int
on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
	  const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st;
	struct server_request *req;
	size_t limit = s->c->srv->limits.max_header_bytes;

	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	st = stream_of(s, frame->hd.stream_id);
	if (st == NULL || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers: dropped */
	req = st->req;
	st->head_bytes += namelen + valuelen + 4; /* "name: value\r\n" as HTTP/1.1 counts it */
	st->fields++;
	if (st->head_bytes > H2_CALM_FACTOR * limit || st->fields > H2_CALM_FACTOR * H2_MAX_FIELDS) {
		calm_down(s, "header list far over the limit");
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (st->head_bytes > limit || st->fields > H2_MAX_FIELDS) {
		st->refuse = 431;
		st->refuse_why = "the request head exceeds the configured limit";
	}
	if (st->refuse)
		return 0; /* decoded (HPACK state), not kept */
	if (name[0] == ':') {
		if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
			req->method = known_method(value, valuelen);
			if (req->method == NULL) {
				st->refuse = 400;
				st->refuse_why = "unknown method";
			}
			req->head_method = req->method && strcmp(req->method, "HEAD") == 0;
		} else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
			if (headerbuf_append(&req->target, &req->target_len, &req->target_cap,
					     (const char *)value, valuelen) < 0)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		} else if (namelen == 10 && memcmp(name, ":authority", 10) == 0) {
			st->authority = dup_n(value, valuelen);
			if (st->authority == NULL)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		} else if (namelen == 7 && memcmp(name, ":scheme", 7) == 0) {
			st->scheme_http = valuelen == 4 && memcmp(value, "http", 4) == 0;
		} else if (namelen == 9 && memcmp(name, ":protocol", 9) == 0) {
			st->protocol = dup_n(value, valuelen); /* nghttp2 checked it goes with CONNECT */
			if (st->protocol == NULL)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		} else {
			st->refuse = 400;
			st->refuse_why = "this pseudo-header is not served";
		}
		return 0;
	}
	if (namelen == 4 && memcmp(name, "host", 4) == 0) {
		if (st->host != NULL) {
			st->refuse = 400;
			st->refuse_why = "more than one host field";
			return 0;
		}
		st->host = dup_n(value, valuelen);
		return st->host ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (namelen == 6 && memcmp(name, "cookie", 6) == 0)
		return cookie_add(st, value, valuelen) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
	/* libnghttp2 hands names and values NUL-terminated (and refuses a NUL
	 * inside), so they go in without a copy of our own. */
	if (evhttp_add_header(&req->headers, (const char *)name, (const char *)value) < 0) {
		st->refuse = 400;
		st->refuse_why = "a header field is not valid";
	}
	return 0;
}

/* Put <name>: <value> first among the request's headers. */
static int
header_first(struct evkeyvalq *h, const char *name, const char *value)
{
	struct evkeyval *kv = calloc(1, sizeof(*kv));

	if (kv == NULL)
		return -1;
	kv->key = strdup(name);
	kv->value = strdup(value);
	if (kv->key == NULL || kv->value == NULL) {
		free(kv->key);
		free(kv->value);
		free(kv);
		return -1;
	}
	TAILQ_INSERT_HEAD(h, kv, next);
	return 0;
}

/* An extended CONNECT (RFC 8441): for a WebSocket, the handler sees what an
 * HTTP/1.1 client would send (GET with the upgrade headers; no key, the
 * proxy makes one up for the upstream), and the stream's DATA belongs to the
 * tunnel, not to a body.  False after refusing any other protocol. */
static bool
extended_connect(struct h2_stream *st)
{
	struct server_request *req = st->req;

	if (strcasecmp(st->protocol, "websocket") != 0) {
		refuse(st, 501, "only the websocket protocol is served over extended CONNECT");
		return false;
	}
	st->pipe_in = evbuffer_new();
	if (st->pipe_in == NULL || evhttp_add_header(&req->headers, "Connection", "Upgrade") < 0 ||
	    evhttp_add_header(&req->headers, "Upgrade", "websocket") < 0) {
		refuse(st, 500, "out of memory");
		return false;
	}
	req->method = known_method((const uint8_t *)"GET", 3);
	req->complete = true;
	req->body_expected = false;
	st->ext_connect = true;
	return true;
}

/* The head is complete: check what HTTP/2 adds, then the handler's verdict,
 * as h1 does after http-parser's on_headers_complete. */
static void
head_complete(struct h2_session *s, struct h2_stream *st, bool end_stream)
{
	struct server_conn *c = s->c;
	struct server_request *req = st->req;
	const char *authority = st->authority ? st->authority : st->host;
	const char *cl, *expect;
	enum server_verdict verdict;

	req->head_done = true;
	req->complete = req->complete || end_stream;
	req->body_expected = !end_stream;
	st->last_in = monotonic_ms();
	if (st->refuse) {
		refuse(st, st->refuse, st->refuse_why);
		return;
	}
	if (req->method == NULL || authority == NULL) {
		refuse(st, 400, "an HTTP/2 request must carry :method and :authority");
		return;
	}
	if (strchr(authority, '@') != NULL) {
		refuse(st, 400, "userinfo is not allowed in :authority");
		return;
	}
	if (st->authority && st->host && strcasecmp(st->authority, st->host) != 0) {
		refuse(st, 400, "the host field differs from :authority");
		return;
	}
	if (c->ssl != NULL && st->scheme_http) {
		refuse(st, 400, ":scheme \"http\" on a TLS connection");
		return;
	}
	if (misdirected(c, authority)) {
		refuse(st, 421, "this connection's certificate does not cover that host");
		return;
	}
	if (header_first(&req->headers, "Host", authority) < 0 ||
	    (st->cookie && evhttp_add_header(&req->headers, "Cookie", st->cookie) < 0)) {
		refuse(st, 500, "out of memory");
		return;
	}
	if (st->protocol != NULL && !extended_connect(st))
		return;
	cl = evhttp_find_header(&req->headers, "content-length");
	if (cl != NULL)
		req->content_length = strtoll(cl, NULL, 10); /* checked by nghttp2 */
	else if (end_stream || st->ext_connect)
		req->content_length = 0;

	req->handler_seen = true;
	verdict = c->srv->handler->on_head(req, c->srv->arg);
	if (verdict == SERVER_REPLIED) {
		req->replied_early = true;
		req->dispatched = true;
		return;
	}
	if ((req->content_length > 0 && (uint64_t)req->content_length > req->max_body) ||
	    evbuffer_get_length(req->body) > req->max_body) {
		req->handler_done = true;
		c->srv->handler->on_abort(req, 413, c->srv->arg);
		req->handler_done = false;
		refuse(st, 413, "the request body exceeds this route's limit");
		return;
	}
	if (evbuffer_get_length(req->body) > 0 && c->srv->handler->on_body != NULL &&
	    c->srv->handler->on_body(req, evbuffer_get_length(req->body), c->srv->arg) < 0) {
		req->dispatched = true; /* what came with the head: refused (and answered) */
		return;
	}
	expect = evhttp_find_header(&req->headers, "expect");
	if (expect) {
		const nghttp2_nv cont[] = {nv(":status", 7, "100", 3)};

		if (strcasecmp(expect, "100-continue") != 0) {
			req->handler_done = true;
			c->srv->handler->on_abort(req, 417, c->srv->arg);
			req->handler_done = false;
			refuse(st, 417, "only \"Expect: 100-continue\" is understood");
			return;
		}
		if (req->body_expected)
			nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, st->id, NULL, cont, 1, NULL);
	}
	if (req->complete)
		s->dispatch = true;
}

/* A frame that asks work of us without carrying a request or its body. */
static bool
is_control_flood_frame(const nghttp2_frame *frame)
{
	switch (frame->hd.type) {
	case NGHTTP2_PING:
	case NGHTTP2_SETTINGS:
		return !(frame->hd.flags & NGHTTP2_FLAG_ACK);
	case NGHTTP2_PRIORITY:
		return true;
	case NGHTTP2_WINDOW_UPDATE:
		return frame->window_update.window_size_increment < 1024;
	case NGHTTP2_DATA:
		return frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
	default:
		return false;
	}
}

static int
on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st;
	bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	(void)ng;
	/* Resets of streams that never reached the handler cost little, but
	 * a client that mostly resets is not a browser: calm it down before
	 * libnghttp2's own limit (1000, answered with INTERNAL_ERROR). */
	if (frame->hd.type == NGHTTP2_RST_STREAM && ++s->resets > 2 * H2_MAX_CANCELLED &&
	    s->resets > s->answered)
		calm_down(s, "too many stream resets");
	/* PING, SETTINGS, PRIORITY, tiny WINDOW_UPDATEs and empty DATA cost
	 * us work and carry nothing (the 2019 flood CVEs): a browser sends a
	 * few per request; past that, calm down. */
	if (is_control_flood_frame(frame) &&
	    ++s->control > H2_MAX_CONTROL + H2_CONTROL_PER_STREAM * s->opened)
		calm_down(s, "too many control frames");
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	st = stream_of(s, frame->hd.stream_id);
	if (st == NULL)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		/* Answered from the loop once this read is processed: a stream
		 * the same bytes reset, or a connection error they cause, is
		 * known by then (and never reaches the handler). */
		st->head_ready = true;
		st->head_end_stream = end;
		s->heads = true;
		return 0;
	}
	if (end && st->ext_connect) {
		st->client_ended = true; /* the pair's write side shuts once flushed */
		pipe_flush(st);
		return 0;
	}
	/* DATA, or trailers (dropped): the end of the request. */
	if (end && !st->req->complete) {
		st->req->complete = true;
		if (!st->req->dispatched)
			s->dispatch = true;
	}
	return 0;
}

static int
on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
	      void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st = stream_of(s, id);
	struct server_request *req;

	(void)flags;
	if (st != NULL && st->ext_connect && st->pipe_in != NULL && !st->client_ended) {
		/* A tunnel's bytes: the window opens as they go into the pair. */
		st->last_in = monotonic_ms();
		if (evbuffer_add(st->pipe_in, data, len) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		pipe_flush(st);
		return 0;
	}
	/* The window opens as the bytes are taken: into a body the handler
	 * accepted (and counted in its budget), or dropped. */
	nghttp2_session_consume(ng, id, len);
	if (st == NULL)
		return 0;
	req = st->req;
	st->last_in = monotonic_ms();
	if (req->dispatched || req->handler_done)
		return 0; /* answered already: the rest is dropped */
	/* Before the handler saw the head (same read), the stream's window
	 * bounds what is kept; head_complete checks it against the limit. */
	if (req->handler_seen && evbuffer_get_length(req->body) + len > req->max_body) {
		req->handler_done = true;
		s->c->srv->handler->on_abort(req, 413, s->c->srv->arg);
		req->handler_done = false;
		refuse(st, 413, "the request body exceeds this route's limit");
		return 0;
	}
	if (req->handler_seen && s->c->srv->handler->on_body != NULL &&
	    s->c->srv->handler->on_body(req, len, s->c->srv->arg) < 0) {
		req->dispatched = true; /* refused (and answered) by the handler */
		return 0;
	}
	if (evbuffer_add(req->body, data, len) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int
on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st = stream_of(s, id);

	(void)error_code;
	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	if (st->req->handler_seen && !st->req->handler_done) {
		/* Cancelled while the handler (and maybe an upstream) worked on
		 * it: the cost Rapid Reset runs up. */
		if (++s->cancelled > H2_MAX_CANCELLED && s->cancelled > s->answered / 2)
			calm_down(s, "too many cancelled streams");
	} else if (st->req->handler_done && st->out_eof && evbuffer_get_length(st->out) == 0) {
		s->answered++;
	}
	stream_free(st);
	return 0;
}

static int
on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st;

	if (frame->hd.type == NGHTTP2_RST_STREAM) {
		uint32_t e = frame->rst_stream.error_code;

		/* Ours are NO_ERROR, CANCEL and INTERNAL_ERROR; any other was
		 * forced by the client's frames (MadeYouReset). */
		if (e != NGHTTP2_NO_ERROR && e != NGHTTP2_CANCEL && e != NGHTTP2_INTERNAL_ERROR &&
		    ++s->provoked > H2_MAX_PROVOKED)
			calm_down(s, "too many provoked stream resets");
		return 0;
	}
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		s->goaway_sent = true;
		return 0;
	}
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = stream_of(s, frame->hd.stream_id);
	/* Answered before the request ended: tell the client to stop sending
	 * (RFC 9113, 8.1). */
	if (st && (!st->req->complete || (st->ext_connect && !st->client_ended)))
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
	return 0;
}

/* ---- sending ------------------------------------------------------------ */

static ssize_t
send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
	struct h2_session *s = user;

	(void)ng;
	(void)flags;
	if (evbuffer_get_length(s->c->out) > H2_SEND_LIMIT)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(s->c->out, data, len) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)len;
}

static int
send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
	     nghttp2_data_source *source, void *user)
{
	struct h2_session *s = user;
	struct h2_stream *st = source->ptr;

	(void)ng;
	if (evbuffer_get_length(s->c->out) > H2_SEND_LIMIT)
		return NGHTTP2_ERR_WOULDBLOCK;
	(void)frame; /* never padded: no select_padding callback */
	if (evbuffer_add(s->c->out, framehd, 9) < 0 ||
	    evbuffer_remove_buffer(st->out, s->c->out, length) != (int)length)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->last_out = monotonic_ms();
	if (st->pipe_rev != NULL && st->pipe_peer < 0 && !st->out_eof &&
	    evbuffer_get_length(st->out) <= H2_STREAM_BACKLOG / 2 &&
	    !event_pending(st->pipe_rev, EV_READ, NULL))
		event_add(st->pipe_rev, NULL);
	if (st->req->over_limit && evbuffer_get_length(st->out) <= H2_STREAM_BACKLOG / 2) {
		st->req->over_limit = false;
		st->want_drained = true;
		s->drained = true;
	}
	return 0;
}

/* ---- the connection ------------------------------------------------------ */

static void
goaway_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;
	struct h2_session *s = c->h2;

	(void)fd;
	(void)what;
	nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
			      NGHTTP2_NO_ERROR, NULL, 0);
	h2_run(c);
}

/* Start the graceful end: a shutdown notice now, the final GOAWAY (with the
 * last stream id) about a round trip later. */
static void
begin_goaway(struct server_conn *c)
{
	struct h2_session *s = c->h2;
	struct timeval tv = {0, H2_GOAWAY_DELAY_MS * 1000};

	if (s->notice_sent)
		return;
	s->notice_sent = true;
	nghttp2_submit_shutdown_notice(s->ng);
	if (s->goaway_ev == NULL)
		s->goaway_ev = evtimer_new(c->srv->base, goaway_cb, c);
	if (s->goaway_ev == NULL || evtimer_add(s->goaway_ev, &tv) < 0)
		nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR,
				      NULL, 0);
}

static void
h2_start(struct server_conn *c)
{
	struct h2_session *s = calloc(1, sizeof(*s));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->srv->limits.max_header_bytes},
		{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}, /* WebSocket (RFC 8441) */
	};

	if (s == NULL || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	s->c = c;
	h2mem_init(&s->mem);
	TAILQ_INIT(&s->streams);
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	/* Window updates follow what we take (on_data_chunk), not what arrives. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_server_new3(&s->ng, cb, s, opt, &s->mem.mem) != 0)
		goto fail;
	h2mem_session_started(&s->mem);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	c->h2 = s;
	if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0) {
		conn_close(c);
		return;
	}
	conn_idle(c);
	conn_write_soon(c);
	return;
fail:
	if (cb)
		nghttp2_session_callbacks_del(cb);
	if (opt)
		nghttp2_option_del(opt);
	free(s);
	conn_close(c);
}

/* Call on_request for complete requests, on_drained for streams whose
 * backlog fell: from the event loop, never inside nghttp2's callbacks. */
static void
run_handlers(struct h2_session *s)
{
	struct server_conn *c = s->c;
	struct h2_stream *st;

	while (s->heads || s->dispatch || s->drained || s->handover) {
		bool heads = s->heads, dispatch = s->dispatch, drained = s->drained;
		bool handover = s->handover;

		s->heads = s->dispatch = s->drained = s->handover = false;
		TAILQ_FOREACH(st, &s->streams, link) {
			struct server_request *req = st->req;

			if (heads && st->head_ready) {
				st->head_ready = false;
				if (s->calm)
					nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
								  NGHTTP2_REFUSED_STREAM);
				else
					head_complete(s, st, st->head_end_stream);
				if (c->dead)
					return;
			}

			if (dispatch && req->complete && !req->dispatched && !req->handler_done &&
			    req->handler_seen) {
				req->dispatched = true;
				c->srv->handler->on_request(req, c->srv->arg);
			}
			if (handover && st->tunnel_ready) {
				st->tunnel_ready = false;
				hand_over(st);
			}
			if (drained && st->want_drained && !req->handler_done) {
				st->want_drained = false;
				c->srv->handler->on_drained(req, c->srv->arg);
			}
			if (c->dead)
				return;
		}
	}
}

/* Move on: handlers, then frames out, then close when the session is over. */
static void
h2_run(struct server_conn *c)
{
	struct h2_session *s = c->h2;

	if (s == NULL || c->running) {
		c->rerun = true;
		return;
	}
	c->running = true;
	do {
		c->rerun = false;
		if (c->dead)
			break;
		run_handlers(s);
		if (c->dead)
			break;
		if (nghttp2_session_send(s->ng) != 0) {
			c->dead = true;
			break;
		}
		if (evbuffer_get_length(c->out) > 0)
			conn_write(c);
		if (c->dead)
			break;
		if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng) &&
		    evbuffer_get_length(c->out) == 0 && !c->write_waiting) {
			/* GOAWAY sent and written, streams done: the client may still
			 * be sending, so linger rather than reset the GOAWAY away. */
			conn_linger(c, true);
			break;
		}
		if (s->heads || s->dispatch || s->drained || s->handover)
			c->rerun = true;
	} while (c->rerun);
	c->running = false;
	if (c->dead) {
		conn_free(c); /* h2_free tells the handlers of open streams */
		return;
	}
	if (c->lingering)
		return;
	if (s->nstreams == 0 && !c->idle_release && !s->goaway_sent)
		conn_idle(c);
	else if (s->nstreams > 0 && (c->idle_release || !lazytimer_armed(&c->timer))) {
		c->idle_release = false;
		lazytimer_set(&c->timer, &c->srv->limits.client);
	}
}

static void
h2_input(struct server_conn *c)
{
	struct h2_session *s = c->h2;
	ssize_t n;

	if (s == NULL)
		return;
	c->running = true;
	n = nghttp2_session_mem_recv(s->ng, (const uint8_t *)c->in, c->inlen);
	c->running = false;
	c->inlen = 0;
	if (n < 0 || c->dead) {
		/* Not HTTP/2 at all (a bad preface), or out of memory. */
		if (!c->dead)
			conn_close(c);
		else
			conn_free(c);
		return;
	}
	h2_run(c);
}

/* Stop reading while the client does not read what we send. */
static bool
h2_read_more(const struct server_conn *c)
{
	return evbuffer_get_length(c->out) <= H2_SEND_LIMIT;
}

static bool
h2_eof(struct server_conn *c)
{
	(void)c;
	return false; /* a client that hangs up cancels its streams */
}

/* The connection's timer: idle (no stream) past the keep-alive time, or a
 * check of the streams: one whose request or response has not moved for the
 * client timeout is given up (408 while its request came in, else reset). */
static void
h2_timeout(struct server_conn *c)
{
	struct h2_session *s = c->h2;
	struct h2_stream *st, *next;
	int64_t now = monotonic_ms();
	int64_t limit = (int64_t)c->srv->limits.client.tv_sec * 1000 +
			c->srv->limits.client.tv_usec / 1000;

	if (s->nstreams == 0) {
		if (s->goaway_sent || s->calm) {
			conn_close(c);
			return;
		}
		nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR,
				      NULL, 0);
		lazytimer_set(&c->timer, &c->srv->limits.client); /* then close in any case */
		h2_run(c);
		return;
	}
	for (st = TAILQ_FIRST(&s->streams); st; st = next) {
		struct server_request *req = st->req;

		next = TAILQ_NEXT(st, link);
		if (!req->complete && !req->handler_done && now - st->last_in >= limit) {
			if (req->handler_seen) {
				req->handler_done = true;
				c->srv->handler->on_abort(req, 408, c->srv->arg);
				req->handler_done = false;
			}
			refuse(st, 408, "the request body took too long");
		} else if (req->started && evbuffer_get_length(st->out) > 0 &&
			   now - st->last_out >= limit) {
			/* The client does not take this stream's data. */
			nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
		}
	}
	lazytimer_set(&c->timer, &c->srv->limits.client);
	h2_run(c);
}

static void
h2_drained(struct server_conn *c)
{
	conn_resume_reading(c);
}

static bool
h2_drain(struct server_conn *c)
{
	begin_goaway(c);
	conn_write_soon(c);
	return false;
}

/* The connection closes: every stream's handler is told. */
static void
h2_abort(struct server_conn *c)
{
	struct h2_session *s = c->h2;
	struct h2_stream *st;

	if (s == NULL)
		return;
	TAILQ_FOREACH(st, &s->streams, link) {
		struct server_request *req = st->req;

		if (req->handler_seen && !req->handler_done) {
			req->handler_done = true;
			c->srv->handler->on_abort(req, 499, c->srv->arg);
		}
	}
}

static void
h2_free(struct server_conn *c)
{
	struct h2_session *s = c->h2;

	if (s == NULL)
		return;
	while (!TAILQ_EMPTY(&s->streams))
		stream_free(TAILQ_FIRST(&s->streams));
	if (s->goaway_ev)
		event_free(s->goaway_ev);
	nghttp2_session_del(s->ng);
	free(s);
	c->h2 = NULL;
}

/* Idle for a while: nothing queued or half sent, so the frame buffer holds
 * nothing; give its pages back (h2mem.h). */
static void
h2_idle(struct server_conn *c)
{
	struct h2_session *s = c->h2;

	if (s != NULL && !nghttp2_session_want_write(s->ng))
		h2mem_release_idle(&s->mem);
}

const struct conn_codec h2_conn_codec = {
	.alpn = "h2",
	.reply = &h2_codec_ops,
	.configure = NULL,
	.start = h2_start,
	.input = h2_input,
	.run = h2_run,
	.read_more = h2_read_more,
	.eof = h2_eof,
	.timeout = h2_timeout,
	.drained = h2_drained,
	.drain = h2_drain,
	.abort = h2_abort,
	.free = h2_free,
	.idle = h2_idle,
};

/* ---- h2c with prior knowledge ------------------------------------------- */

/* Pick the codec by the first bytes: the HTTP/2 preface, or HTTP/1.x. */
static void
h2c_input(struct server_conn *c)
{
	size_t n = c->inlen < sizeof(preface) - 1 ? c->inlen : sizeof(preface) - 1;

	if (memcmp(c->in, preface, n) == 0 && n < sizeof(preface) - 1)
		return; /* could still be the preface: wait */
	c->codec = n == sizeof(preface) - 1 && memcmp(c->in, preface, n) == 0 ? &h2_conn_codec
									       : &h1_conn_codec;
	c->codec->start(c);
	if (!c->dead && c->codec != NULL)
		c->codec->input(c);
}

static void
h2c_nothing(struct server_conn *c)
{
	(void)c;
}

static bool
h2c_read_more(const struct server_conn *c)
{
	(void)c;
	return true;
}

static bool
h2c_false(struct server_conn *c)
{
	(void)c;
	return false;
}

static bool
h2c_drain(struct server_conn *c)
{
	(void)c;
	return true; /* nothing was said yet: close */
}

static void
h2c_timeout(struct server_conn *c)
{
	conn_close(c);
}

const struct conn_codec h2c_conn_codec = {
	.alpn = "",
	.reply = NULL,
	.configure = NULL,
	.start = h2c_nothing,
	.input = h2c_input,
	.run = h2c_nothing,
	.read_more = h2c_read_more,
	.eof = h2c_false,
	.timeout = h2c_timeout,
	.drained = h2c_nothing,
	.drain = h2c_drain,
	.abort = h2c_nothing,
	.free = h2c_nothing,
};

const struct conn_codec *const h2_tls_codecs[] = {&h1_conn_codec, &h2_conn_codec, NULL};
const struct conn_codec *const h2c_codecs[] = {&h2c_conn_codec, &h1_conn_codec, NULL};
const char *const h2_alpn_h2[] = {"h2", "http/1.1", NULL};
const char *const h2_alpn_h1[] = {"http/1.1", NULL};

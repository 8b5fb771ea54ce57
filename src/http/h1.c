/* h1: the HTTP/1.x codec; see h1.h. */
#include "http/h1.h"
#include "http/http_internal.h"
#include "http/hdrarena.h"
#include "http/headwriter.h"
#include "http/httpdate.h"
#include "http/inbuf.h"
#include "http/conn.h"
#include "http/request.h"

#include <limits.h>
#include <stdatomic.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PIPELINE_LIMIT (256 * 1024)      /* bytes read ahead while a request is handled */
#define HEAD_RESERVE 512                 /* reserved for a response head: libevent makes it a
                                         * 1 KiB chain (malloc's fast sizes), ~970 bytes usable */

static void h1_run(struct server_conn *c);

/* ---- writing ----------------------------------------------------------- */

/* "HTTP/1.1 200 OK\r\n" (or HTTP/1.0 when <http10>) without printf, which
 * costs more than all the header lines together. */
static void
add_status_line(struct headwriter *w, int status, bool http10)
{
	const char *text = server_status_text(status);
	const char *version = http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
	size_t tl = strlen(text);
	char line[80];

	if (status < 100 || status > 999 || tl > sizeof(line) - 15) {
		headwriter_end(w); /* the rest follows with evbuffer_add */
		evbuffer_add_printf(w->b, "%s%d %s\r\n", version, status, text);
		return;
	}
	memcpy(line, version, 9);
	line[9] = (char)('0' + status / 100);
	line[10] = (char)('0' + status / 10 % 10);
	line[11] = (char)('0' + status % 10);
	line[12] = ' ';
	memcpy(line + 13, text, tl);
	line[13 + tl] = '\r';
	line[14 + tl] = '\n';
	headwriter_add(w, line, tl + 15);
}

/* Status line and headers.  Framing headers in <headers> are skipped unless
 * <keep_length>; the caller adds its own framing after.  Returns true when
 * a Content-Length was written (only with <keep_length>). */
static bool
write_head(struct server_request *req, int status, struct evkeyvalq *headers, bool keep_length)
{
	struct server_conn *c = req->conn;
	struct evkeyval *kv;
	struct headwriter w;
	bool date = false, length = false;

	req->started = true;
	req->no_body = req->head_method || status < 200 || status == 204 || status == 304;
	headwriter_begin(&w, c->out, HEAD_RESERVE);
	add_status_line(&w, status, req->proto == SERVER_PROTO_HTTP10 && c->srv->http10_status);
	if (headers) {
		TAILQ_FOREACH(kv, headers, next) {
			const char *k = kv->key;

			switch (k[0] | 0x20) {
			case 'c':
				if (strcasecmp(k, "connection") == 0)
					continue;
				if (strcasecmp(k, "content-length") == 0) {
					if (!keep_length)
						continue;
					length = true;
				}
				break;
			case 't':
				if (strcasecmp(k, "transfer-encoding") == 0)
					continue;
				break;
			case 'd':
				if (strcasecmp(k, "date") == 0)
					date = true;
				break;
			default:
				break;
			}
			headwriter_line(&w, k, kv->value);
		}
	}
	if (!date) {
		size_t dlen;
		const char *dline = http_date_line(&dlen);

		headwriter_add(&w, dline, dlen);
	}
	headwriter_end(&w);
	return length;
}

/* Connection header and the blank line. */
static void
write_head_end(struct server_request *req)
{
	struct server_conn *c = req->conn;

	if (req->upgraded) { /* a tunnel's 101: what follows is not HTTP */
		evbuffer_add(c->out, "Connection: Upgrade\r\n\r\n", 23);
		return;
	}
	if (!req->keepalive || c->srv->draining)
		c->closing = true;
	if (c->closing) {
		conn_discard_input(c); /* nothing after this request is parsed */
		evbuffer_add(c->out, "Connection: close\r\n\r\n", 21);
	} else if (req->proto == SERVER_PROTO_HTTP10) {
		evbuffer_add(c->out, "Connection: keep-alive\r\n\r\n", 26);
	} else {
		evbuffer_add(c->out, "\r\n", 2);
	}
}

static void
h1_reply(struct server_request *req, int status, struct evkeyvalq *headers,
	 struct evbuffer *body, bool close)
{
	struct server_conn *c = req->conn;
	size_t len = body ? evbuffer_get_length(body) : 0;

	if (close || (req->body_expected && !req->complete))
		c->closing = true; /* the rest of the body will not be read */
	req->upgraded = req->tunnel && status == 101 && !c->closing;
	(void)write_head(req, status, headers, false);
	if (!(status < 200 || status == 204 || status == 304))
		evbuffer_add_printf(c->out, "Content-Length: %zu\r\n", len);
	write_head_end(req);
	if (body) {
		if (!req->no_body)
			evbuffer_add_buffer(c->out, body);
		else
			evbuffer_drain(body, len);
	}
	req->handler_done = true;
	conn_write_soon(c);
	if (!req->upgraded)
		conn_send_now(c); /* complete: it need not wait for the loop turn */
}

static void
h1_reply_start(struct server_request *req, int status, struct evkeyvalq *headers)
{
	struct server_conn *c = req->conn;
	bool has_length;

	if (req->body_expected && !req->complete)
		c->closing = true;
	has_length = write_head(req, status, headers, true);
	if (!req->no_body && !has_length) {
		if (req->proto != SERVER_PROTO_HTTP10) {
			req->chunked = true;
			evbuffer_add(c->out, "Transfer-Encoding: chunked\r\n", 28);
		} else {
			c->closing = true; /* HTTP/1.0: the body ends with the connection */
		}
	}
	write_head_end(req);
	conn_write_soon(c);
}

static bool
h1_reply_body(struct server_request *req, struct evbuffer *data)
{
	struct server_conn *c = req->conn;
	size_t len = evbuffer_get_length(data);

	if (len == 0)
		return false;
	if (req->no_body) {
		evbuffer_drain(data, len);
		return false;
	}
	if (req->chunked) {
		evbuffer_add_printf(c->out, "%zx\r\n", len);
		evbuffer_add_buffer(c->out, data);
		evbuffer_add(c->out, "\r\n", 2);
	} else {
		evbuffer_add_buffer(c->out, data);
	}
	conn_write_soon(c);
	/* A backlog past the limit goes to the kernel now, not at the end of
	 * the loop turn: the upstream read memory it refers to is freed before
	 * the next connection's read takes more. */
	if (evbuffer_get_length(c->out) > CONN_BACKLOG_LIMIT)
		conn_send_now(c);
	if (evbuffer_get_length(c->out) > CONN_BACKLOG_LIMIT) {
		req->over_limit = true;
		return true;
	}
	return false;
}

static void
h1_reply_end(struct server_request *req)
{
	struct server_conn *c = req->conn;

	if (req->chunked && !req->no_body)
		evbuffer_add(c->out, "0\r\n\r\n", 5);
	req->handler_done = true;
	conn_write_soon(c);
	conn_send_now(c); /* complete: it need not wait for the loop turn */
}

static void
h1_reply_abort(struct server_request *req)
{
	struct server_conn *c = req->conn;

	req->handler_done = true;
	c->closing = true;
	req->complete = true; /* nothing more will be read for it */
	conn_discard_input(c);
	conn_write_soon(c);
}

static const struct http_codec_ops h1_codec_ops = {
	.reply = h1_reply,
	.reply_start = h1_reply_start,
	.reply_body = h1_reply_body,
	.reply_end = h1_reply_end,
	.abort = h1_reply_abort,
};

/* ---- parsing ----------------------------------------------------------- */

static int
on_message_begin(http_parser *p)
{
	struct server_conn *c = p->data;

	c->req = request_new(c);
	if (c->req == NULL)
		return -1;
	if (c->h1.arena == NULL && (c->h1.arena = malloc(sizeof(*c->h1.arena))) != NULL)
		hdrarena_init(c->h1.arena);
	headerbuf_reset(&c->h1.hb, c->srv->limits.max_header_bytes);
	/* Three heap blocks a header otherwise; reset by request_free. */
	c->h1.hb.arena = c->h1.arena;
	c->req->header_arena = c->h1.arena;
	/* The whole head must arrive within the client timeout. */
	c->idle_release = false;
	lazytimer_set(&c->timer, &c->srv->limits.client);
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	struct server_conn *c = p->data;

	if (headerbuf_count(&c->h1.hb, n) < 0)
		return -1;
	return headerbuf_append(&c->req->target, &c->req->target_len, &c->req->target_cap, at, n);
}

/* Trailers (after a chunked body) come through the same callbacks: they are
 * counted and dropped, never merged into the request's headers. */
static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct server_conn *c = p->data;

	if (c->req->head_done)
		return headerbuf_count(&c->h1.hb, n);
	return headerbuf_field(&c->h1.hb, &c->req->headers, at, n);
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct server_conn *c = p->data;

	if (c->req->head_done)
		return headerbuf_count(&c->h1.hb, n);
	return headerbuf_value(&c->h1.hb, at, n);
}

/* Refuse from inside the parser: reply, close after, stop parsing. */
static int
refuse_in_parser(struct server_conn *c, int status, const char *text)
{
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq h;

	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Content-Type", "text/plain; charset=utf-8");
	if (body)
		evbuffer_add_printf(body, "%d %s: %s\n", status, server_status_text(status), text);
	c->req->dispatched = true;
	c->req->complete = true;
	c->h1.stop = true;
	server_reply(c->req, status, &h, body, true);
	evhttp_clear_headers(&h);
	if (body)
		evbuffer_free(body);
	return -1;
}

/* Keep <n> body bytes: 413 past the limit, the handler's say (on_body),
 * then into the body.  Returns 0, or -1 with the parser stopped. */
static int
body_take(struct server_conn *c, const char *data, size_t n)
{
	struct server_request *req = c->req;
	const struct server_handler *h = c->srv->handler;

	if (evbuffer_get_length(req->body) + n > req->max_body) {
		h->on_abort(req, 413, c->srv->arg);
		return refuse_in_parser(c, 413, "the request body exceeds this route's limit");
	}
	if (h->on_body != NULL && h->on_body(req, n, c->srv->arg) < 0) {
		/* The handler refused (and replied): read no more of it. */
		req->dispatched = true;
		req->complete = true;
		c->h1.stop = true;
		return -1;
	}
	return evbuffer_add(req->body, data, n);
}

static int
on_headers_complete(http_parser *p)
{
	struct server_conn *c = p->data;
	struct server_request *req = c->req;
	const char *expect;
	enum server_verdict verdict;

	if (headerbuf_finish(&c->h1.hb, &req->headers) < 0)
		return -1;
	/* The request line: method, spaces, " HTTP/1.1" and CRLF around the
	 * target on_url counted. */
	if (headerbuf_count(&c->h1.hb, strlen(http_method_str((enum http_method)p->method)) + 12) < 0)
		return -1;
	req->head_done = true;
	/* From here the body may not stall longer than the client timeout
	 * between reads (read_cb renews it). */
	lazytimer_set(&c->timer, &c->srv->limits.client);
	req->proto = p->http_major == 1 && p->http_minor == 0 ? SERVER_PROTO_HTTP10
							      : SERVER_PROTO_HTTP11;
	req->method = http_method_str((enum http_method)p->method);
	req->head_method = p->method == HTTP_HEAD;
	req->keepalive = http_should_keep_alive(p) != 0;
	if (p->flags & F_CHUNKED) {
		req->body_expected = true;
	} else if (p->content_length != ULLONG_MAX && p->content_length > 0) {
		req->body_expected = true;
		req->content_length = (int64_t)p->content_length;
	} else if (p->content_length != ULLONG_MAX) {
		req->content_length = 0;
	}
	if (p->http_major != 1)
		return refuse_in_parser(c, 505, "only HTTP/1.0 and HTTP/1.1 are served here");

	req->handler_seen = true;
	verdict = c->srv->handler->on_head(req, c->srv->arg);
	if (c->dead)
		return -1;
	if (verdict == SERVER_REPLIED) {
		req->replied_early = true;
		req->dispatched = true;
		if (req->body_expected) {
			c->h1.stop = true;
			return -1; /* the body is not read: the connection closes */
		}
		return 0;
	}
	if (req->content_length > 0 && (uint64_t)req->content_length > req->max_body) {
		c->srv->handler->on_abort(req, 413, c->srv->arg);
		return refuse_in_parser(c, 413, "the request body exceeds this route's limit");
	}
	expect = evhttp_find_header(&req->headers, "Expect");
	if (expect) {
		if (strcasecmp(expect, "100-continue") != 0) {
			c->srv->handler->on_abort(req, 417, c->srv->arg);
			return refuse_in_parser(c, 417, "only \"Expect: 100-continue\" is understood");
		}
		if (req->proto != SERVER_PROTO_HTTP10 && req->body_expected) {
			evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			conn_write(c);
		}
	}
	if (p->flags & F_CHUNKED) {
		/* Our strict decoder reads the body (chunked.h says why); 2 makes
		 * http-parser stop right after the head. */
		c->h1.own_chunked = true;
		chunked_init(&c->h1.chunk);
		return 2;
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	return body_take(p->data, at, n);
}

static int
on_message_complete(http_parser *p)
{
	struct server_conn *c = p->data;

	if (c->h1.own_chunked)
		return 0; /* the head of a chunked request: the body follows */
	c->req->complete = true;
	http_parser_pause(p, 1); /* one request at a time; pipelined bytes wait */
	lazytimer_stop(&c->timer);   /* no timeout while the request is handled */
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* A malformed request: answer <status> once (unless a reply began), then
 * close. */
static void
parse_failed(struct server_conn *c, int status, const char *why)
{
	struct evbuffer *body;
	struct evkeyvalq h;

	if (c->req == NULL) {
		c->req = request_new(c);
		if (c->req == NULL) {
			conn_close(c);
			return;
		}
		c->req->keepalive = false;
	}
	if (c->req->started || c->req->handler_done) {
		c->h1.stop = true;
		c->closing = true;
		return;
	}
	if (c->req->handler_seen) /* the handler owns it: tell it */
		c->srv->handler->on_abort(c->req, status, c->srv->arg);
	c->req->dispatched = true;
	c->req->complete = true;
	c->h1.stop = true;
	body = evbuffer_new();
	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Content-Type", "text/plain; charset=utf-8");
	if (body)
		evbuffer_add_printf(body, "%d %s: %s\n", status, server_status_text(status), why);
	server_reply(c->req, status, &h, body, true);
	evhttp_clear_headers(&h);
	if (body)
		evbuffer_free(body);
}

static void
h1_consume(struct server_conn *c, size_t used)
{
	if (used == 0)
		return;
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	c->h1.scanned = c->h1.scanned > used ? c->h1.scanned - used : 0;
	if (c->inlen == 0) {
		/* All parsed (the fields live in the request's arena): a
		 * connection streaming its response holds no input buffer. */
		inbuf_give(c->in, c->incap);
		c->in = NULL;
		c->incap = 0;
	}
}

static int
chunk_emit(void *arg, const char *data, size_t n)
{
	return body_take(arg, data, n);
}

/* Decode buffered bytes of a chunked request body. */
static bool
parse_chunked(struct server_conn *c)
{
	size_t used = 0;
	const char *why = NULL;
	enum chunked_result r = chunked_decode(&c->h1.chunk, c->in, c->inlen, &used, chunk_emit, c, &why);

	if (c->dead)
		return false;
	h1_consume(c, used);
	if (r == CHUNKED_ERROR) {
		if (why) /* malformed (a refusal by chunk_emit has answered already) */
			parse_failed(c, 400, why);
		return true;
	}
	if (r == CHUNKED_DONE) {
		c->h1.own_chunked = false;
		c->req->complete = true;
		http_parser_pause(&c->h1.parser, 1);
		lazytimer_stop(&c->timer);
		return true;
	}
	return used > 0;
}

/* Parse what is buffered.  Returns true when it made progress. */
static bool
h1_parse(struct server_conn *c)
{
	size_t used;
	enum http_errno e;

	if (c->h1.stop || c->closing)
		return false;
	if (c->h1.own_chunked)
		return parse_chunked(c);
	if (c->req == NULL || !c->req->head_done) {
		/* Line endings first: obs-fold and bare CR never reach http-parser
		 * (which Debian builds lenient). */
		size_t n;
		enum headscan_result hr =
			headscan_feed(&c->h1.scan, c->in + c->h1.scanned, c->inlen - c->h1.scanned, &n);

		c->h1.scanned += n;
		if (hr == HEADSCAN_FOLD || hr == HEADSCAN_BARE_CR) {
			parse_failed(c, 400, hr == HEADSCAN_FOLD
						     ? "obsolete header line folding is not accepted"
						     : "a CR not followed by LF in the request head");
			return true;
		}
	}
	used = http_parser_execute(&c->h1.parser, &parser_settings, c->in, c->inlen);
	if (c->dead)
		return false;
	e = HTTP_PARSER_ERRNO(&c->h1.parser);
	h1_consume(c, used);
	if (e == HPE_OK || e == HPE_PAUSED)
		return used > 0 || c->h1.own_chunked;
	if (c->h1.stop)
		return true;
	parse_failed(c, c->h1.hb.overflow ? 431 : 400,
		     c->h1.hb.overflow ? "the request head exceeds the configured limit"
				    : http_errno_description(e));
	return true;
}

/* ---- the connection ------------------------------------------------------ */

/* A tunnel's 101 is written: the request is finished (the handler logged
 * it), then the connection goes to whoever takes the tunnel (request.h),
 * or closes. */
static void
h1_hand_over(struct server_conn *c)
{
	server_tunnel_fn fn = c->req->tunnel_fn;
	void *arg = c->req->tunnel_arg;
	struct server_tunnel_client client = {{-1, NULL}, NULL, NULL};

	c->req->tunnel_fn = NULL;
	request_free(c->req);
	c->req = NULL;
	if (fn == NULL) {
		conn_close(c);
		return;
	}
	client.early = evbuffer_new();
	client.slot = c->slot; /* the tunnel counts against the limits until it ends */
	if (client.early != NULL && server_conn_detach(c, &client.end, client.early) == 0) {
		c->slot = NULL;
		fn(&client, arg); /* c is dead (detached) */
		return;
	}
	if (client.early)
		evbuffer_free(client.early);
	fn(NULL, arg);
	conn_close(c);
}

/* Move the connection forward: finish a request whose reply is written,
 * dispatch a complete request, parse what is buffered.  Loops instead of
 * recursing when handlers reply synchronously; replies never call it (they
 * schedule it with conn_write_soon), so the next pipelined request starts
 * only after the handler is out of the previous one. */
static void
h1_run(struct server_conn *c)
{
	if (c->running) {
		c->rerun = true;
		return;
	}
	c->running = true;
	do {
		c->rerun = false;
		if (c->dead)
			break;
		if (c->req && c->req->handler_done && (c->req->complete || c->closing) &&
		    !c->write_waiting &&
		    evbuffer_get_length(c->out) == 0) {
			if (c->req->upgraded) {
				h1_hand_over(c);
				break;
			}
			bool unread = c->req->body_expected && !c->req->complete;

			request_free(c->req);
			c->req = NULL;
			if (c->closing || c->h1.stop) {
				/* An early answer (the body unread, a refused or
				 * malformed head): linger so the client reads it. */
				conn_linger(c, unread || (c->h1.stop && !c->h1.timed_out));
				break;
			}
			http_parser_pause(&c->h1.parser, 0);
			headscan_init(&c->h1.scan);
			c->h1.scanned = 0;
			c->served = true;
			conn_idle(c);
			conn_resume_reading(c);
			c->rerun = true;
			continue;
		}
		if (c->req && c->req->complete && !c->req->dispatched) {
			c->req->dispatched = true;
			c->srv->handler->on_request(c->req, c->srv->arg);
			c->rerun = true;
			continue;
		}
		if (c->inlen > 0 && (c->req == NULL || !c->req->complete) && h1_parse(c))
			c->rerun = true;
	} while (c->rerun);
	c->running = false;
	if (c->dead)
		conn_free(c);
}

/* The timer fired with a request in progress, or idle past the keep-alive
 * time: 408 for a head or body that took too long, else close. */
static void
h1_timeout(struct server_conn *c)
{
	struct server_request *req = c->req;
	struct evkeyvalq h;
	struct evbuffer *body;

	if (req == NULL || req->started || req->handler_done) {
		conn_close(c); /* idle keep-alive */
		return;
	}
	if (req->handler_seen)
		c->srv->handler->on_abort(req, 408, c->srv->arg);
	body = evbuffer_new();
	TAILQ_INIT(&h);
	evhttp_add_header(&h, "Content-Type", "text/plain; charset=utf-8");
	if (body)
		evbuffer_add_printf(body, "408 Request Timeout: the request %s took too long\n",
				    req->head_done ? "body" : "head");
	req->dispatched = true;
	req->complete = true;
	c->h1.stop = true;
	c->h1.timed_out = true;
	server_reply(req, 408, &h, body, true);
	evhttp_clear_headers(&h);
	if (body)
		evbuffer_free(body);
}

static void
h1_start(struct server_conn *c)
{
	http_parser_init(&c->h1.parser, HTTP_REQUEST);
	c->h1.parser.data = c;
}

/* Bytes arrived: a body that is still moving renews its stall timer. */
static void
h1_input(struct server_conn *c)
{
	if (c->req && c->req->head_done && !c->req->complete)
		lazytimer_set(&c->timer, &c->srv->limits.client);
	h1_run(c);
}

/* Enough read ahead while the handler works on a complete request. */
static bool
h1_read_more(const struct server_conn *c)
{
	return !(c->req && c->req->complete && c->inlen >= PIPELINE_LIMIT);
}

/* A half-closed client still gets the last reply (what else it sent is
 * not parsed when the connection is closing). */
static bool
h1_eof(struct server_conn *c)
{
	return c->req && c->req->handler_done && (c->closing || c->inlen == 0) &&
	       evbuffer_get_length(c->out) > 0;
}

static void
h1_drained(struct server_conn *c)
{
	if (c->req == NULL || !c->req->over_limit || c->req->handler_done)
		return;
	c->req->over_limit = false;
	c->running = true; /* the handler may end the reply: defer frees */
	c->srv->handler->on_drained(c->req, c->srv->arg);
	c->running = false;
}

static bool
h1_drain(struct server_conn *c)
{
	if (c->req == NULL && c->inlen == 0)
		return true; /* idle keep-alive */
	c->closing = c->closing || (c->req && c->req->started);
	return false;
}

static void
h1_abort(struct server_conn *c)
{
	if (c->req && c->req->handler_seen && !c->req->handler_done) {
		c->req->handler_done = true;
		c->srv->handler->on_abort(c->req, 499, c->srv->arg);
	}
}

/* Idle between requests (or closing): give back the header arena. */
static void
h1_idle(struct server_conn *c)
{
	if (c->req != NULL || c->h1.arena == NULL)
		return;
	hdrarena_reset(c->h1.arena);
	free(c->h1.arena);
	c->h1.arena = NULL;
	c->h1.hb.arena = NULL;
}

static void
h1_free(struct server_conn *c)
{
	request_free(c->req);
	c->req = NULL;
	headerbuf_free(&c->h1.hb);
	h1_idle(c);
}

/* Make http-parser's process-wide head limit fit a server whose limit is
 * <max_header_bytes> (ours is exact, its own stays well above; it never
 * shrinks, as servers with other limits share it). */
static void
h1_configure(const struct server_limits *limits)
{
	size_t max_header_bytes = limits->max_header_bytes;
	/* Servers with different limits (the admin listener's is smaller) share
	 * http-parser's process-wide limit: it only grows. */
	static _Atomic size_t largest;
	size_t seen = atomic_load(&largest);

	while (max_header_bytes > seen) {
		if (atomic_compare_exchange_weak(&largest, &seen, max_header_bytes)) {
			http_parser_set_max_header_size((uint32_t)(max_header_bytes * 2 + 4096));
			break;
		}
	}
}

const struct conn_codec h1_conn_codec = {
	.alpn = "http/1.1",
	.reply = &h1_codec_ops,
	.configure = h1_configure,
	.start = h1_start,
	.input = h1_input,
	.run = h1_run,
	.read_more = h1_read_more,
	.eof = h1_eof,
	.timeout = h1_timeout,
	.drained = h1_drained,
	.drain = h1_drain,
	.abort = h1_abort,
	.free = h1_free,
	.idle = h1_idle,
};

const struct conn_codec *const h1_codecs[] = {&h1_conn_codec, NULL};

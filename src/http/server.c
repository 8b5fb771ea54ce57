/* server: HTTP/1.1 client connections on raw sockets; see server.h. */
#include "http/server.h"
#include "tls/tls.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "http/chunked.h"
#include "http/headerbuf.h"
#include "access/ipacl.h"
#include "base/log.h"
#include "base/metrics.h"
#include "http/proxyproto.h"

#define READ_CHUNK 16384
#define BACKLOG_LIMIT (1024 * 1024)     /* client output bytes before back-pressure */
#define PIPELINE_LIMIT (256 * 1024)      /* bytes read ahead while a request is handled */
#define TLS_RECORD_MAX 16384             /* plaintext bytes in one TLS record */
#define IDLE_RELEASE_SECONDS 2           /* idle keep-alive time before buffers are freed */

struct server_conn;

struct server {
	struct event_base *base;
	int fd;
	int port;
	struct event *accept_ev;
	const struct server_handler *handler;
	void *arg;
	struct server_limits limits;
	SSL_CTX *tls;          /* NULL: plain HTTP */
	bool proxy_protocol;   /* every connection starts with a PROXY header */
	const struct ipacl *trusted; /* peers whose PROXY header is believed */
	LIST_HEAD(, server_conn) conns;
	size_t nconns;
	bool draining;
};

struct server_request {
	struct server_conn *conn;
	char *target;
	size_t target_len, target_cap;
	struct evkeyvalq headers;
	struct evbuffer *body;
	uint64_t max_body;
	int64_t content_length;
	int minor;
	const char *method;
	void *data;
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
	int fd;
	struct sockaddr_storage peer;
	SSL *ssl;               /* NULL on plain listeners */
	bool pp_pending;        /* the PROXY header is still to be read */
	bool tls_checked;       /* the first byte looked like TLS */
	bool handshaking;
	bool read_wants_write;  /* SSL_read needs the socket writable */
	bool write_wants_read;  /* SSL_write needs the socket readable */
	bool idle_release;      /* idle: the timer frees buffers first, closes later */
	struct event *rev, *wev, *timer;
	char *in;
	size_t inlen, incap;
	char *target_spare;         /* the last request's target buffer, for the next */
	size_t target_spare_cap;
	struct evbuffer *body_spare; /* an empty body buffer a bodiless request left */
	struct evbuffer *out;
	http_parser parser;
	struct server_request *req;
	struct headerbuf hb;
	struct headscan scan;       /* line endings of the request head */
	size_t scanned;             /* bytes at the start of <in> already scanned */
	struct chunked chunk;       /* a chunked request body, decoded by us */
	bool own_chunked;           /* the body is being read by <chunk> */
	bool stop;            /* the parser was stopped on purpose (reply sent) */
	bool closing;         /* close once the output is written */
	bool write_waiting;   /* wev is pending */
	bool write_soon;      /* a flush is scheduled for this loop turn */
	bool read_paused;
	bool running;         /* inside conn_run */
	bool rerun;
	bool dead;            /* free when conn_run unwinds */
};

static void conn_run(struct server_conn *c);
static void read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_close(struct server_conn *c);
static void conn_write(struct server_conn *c);
static void conn_free(struct server_conn *c);
static bool conn_write_from_event(struct server_conn *c);

/* ---- status texts ----------------------------------------------------- */

const char *
server_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 207: return "Multi-Status";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:
		if (status < 200)
			return "Informational";
		if (status < 300)
			return "Success";
		if (status < 400)
			return "Redirection";
		if (status < 500)
			return "Client Error";
		return "Server Error";
	}
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n", cached per thread and second. */
static const char *
date_line(void)
{
	static _Thread_local time_t cached;
	static _Thread_local char line[64];
	time_t now = time(NULL);

	if (now != cached) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		cached = now;
	}
	return line;
}

/* ---- requests ---------------------------------------------------------- */

static struct server_request *
request_new(struct server_conn *c)
{
	struct server_request *req = calloc(1, sizeof(*req));

	if (req == NULL)
		return NULL;
	if (c->body_spare) {
		req->body = c->body_spare;
		c->body_spare = NULL;
	} else {
		req->body = evbuffer_new();
	}
	if (req->body == NULL) {
		free(req);
		return NULL;
	}
	TAILQ_INIT(&req->headers);
	req->conn = c;
	req->content_length = -1;
	if (c->target_spare) {
		req->target = c->target_spare;
		req->target_cap = c->target_spare_cap;
		req->target[0] = '\0';
		c->target_spare = NULL;
		c->target_spare_cap = 0;
	}
	return req;
}

static void
request_free(struct server_request *req)
{
	struct server_conn *c;

	if (req == NULL)
		return;
	c = req->conn;
	evhttp_clear_headers(&req->headers);
	/* A request without a body never had bytes in its buffer (so nothing
	 * references them): the next request may have it. */
	if (c->body_spare == NULL && !req->body_expected && evbuffer_get_length(req->body) == 0)
		c->body_spare = req->body;
	else
		evbuffer_free(req->body);
	if (c->target_spare == NULL && req->target) {
		c->target_spare = req->target; /* the next request's */
		c->target_spare_cap = req->target_cap;
	} else {
		free(req->target);
	}
	free(req);
}

const char *
server_request_method(const struct server_request *req)
{
	return req->method;
}

const char *
server_request_target(const struct server_request *req)
{
	return req->target ? req->target : "";
}

int
server_request_minor(const struct server_request *req)
{
	return req->minor;
}

struct evkeyvalq *
server_request_headers(struct server_request *req)
{
	return &req->headers;
}

struct evbuffer *
server_request_body(struct server_request *req)
{
	return req->body;
}

const struct sockaddr *
server_request_peer(const struct server_request *req)
{
	return (const struct sockaddr *)&req->conn->peer;
}

int
server_request_port(const struct server_request *req)
{
	return req->conn->srv->port;
}

int64_t
server_request_content_length(const struct server_request *req)
{
	return req->content_length;
}

void
server_request_set_data(struct server_request *req, void *data)
{
	req->data = data;
}

void *
server_request_data(const struct server_request *req)
{
	return req->data;
}

void
server_request_set_max_body(struct server_request *req, uint64_t max)
{
	req->max_body = max;
}

/* ---- writing ----------------------------------------------------------- */

static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;

	c->write_waiting = false;
	c->write_soon = false;
	if (what & EV_TIMEOUT) {
		conn_close(c); /* the client stopped reading */
		return;
	}
	if (c->handshaking || c->read_wants_write) {
		c->read_wants_write = false;
		read_cb(c->fd, EV_READ, c);
		return;
	}
	if (!conn_write_from_event(c))
		return;
	if (!c->write_waiting && c->req && c->req->over_limit && !c->req->handler_done) {
		c->req->over_limit = false;
		c->running = true; /* the handler may end the reply: defer frees */
		c->srv->handler->on_drained(c->req, c->srv->arg);
		c->running = false;
		if (c->dead) {
			conn_free(c);
			return;
		}
	}
	conn_run(c);
}

/* Write at the end of this loop turn: what a handler hands over in one
 * turn (head, body, end) leaves in one system call. */
static void
conn_write_soon(struct server_conn *c)
{
	if (c->write_waiting || c->write_soon || c->dead)
		return;
	c->write_soon = true;
	event_active(c->wev, EV_WRITE, 1);
}

/* Empty OpenSSL's error queue before an SSL_* I/O call (SSL_get_error
 * reads it).  Peeking first: ERR_clear_error walks all 16 slots even when
 * the queue is empty, which it nearly always is. */
static void
tls_clear_errors(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

/* TLS: encrypt and send up to 16 KiB at a time: one record and one system
 * call for a small response, whose head and body sit in separate chains of
 * <out>.  They are copied to a per-thread staging buffer rather than pulled
 * up (which allocates a chain per response); a single chain is used in
 * place.  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows a retry from either.
 * Returns like conn_write's loop: false when it must wait. */
static bool
tls_write(struct server_conn *c)
{
	static _Thread_local unsigned char stage[TLS_RECORD_MAX];

	while (evbuffer_get_length(c->out) > 0) {
		size_t len = evbuffer_get_length(c->out);
		struct evbuffer_iovec v;
		const void *data = stage;
		int n, err;

		if (len > TLS_RECORD_MAX)
			len = TLS_RECORD_MAX;
		if (evbuffer_peek(c->out, -1, NULL, &v, 1) >= 1 && v.iov_len >= len)
			data = v.iov_base;
		else if (evbuffer_copyout(c->out, stage, len) != (ev_ssize_t)len)
			goto fail;
		tls_clear_errors();
		n = SSL_write(c->ssl, data, (int)len);
		if (n > 0) {
			evbuffer_drain(c->out, (size_t)n);
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_WRITE) {
			c->write_waiting = true;
			event_add(c->wev, &c->srv->limits.client);
			return false;
		}
		if (err == SSL_ERROR_WANT_READ) {
			c->write_wants_read = true; /* read_cb retries */
			return false;
		}
		goto fail;
	}
	return true;
fail:
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	conn_close(c);
	return false;
}

/* Write what the kernel takes; wait for writability for the rest. */
static void
conn_write(struct server_conn *c)
{
	if (c->write_waiting || c->dead || c->handshaking)
		return;
	if (c->ssl) {
		c->write_wants_read = false;
		tls_write(c);
		return;
	}
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			if (errno == EINTR)
				continue;
			c->write_waiting = true;
			event_add(c->wev, &c->srv->limits.client);
			return;
		}
		/* The client is gone (EPIPE, ECONNRESET). */
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		conn_close(c);
		return;
	}
}

/* conn_write from an event callback: returns false when the connection is
 * gone (freed here), so the caller must not touch it. */
static bool
conn_write_from_event(struct server_conn *c)
{
	bool was = c->running;

	c->running = true;
	conn_write(c);
	c->running = was;
	if (c->dead && !was) {
		conn_free(c);
		return false;
	}
	return !c->dead;
}

static void
add_header_line(struct evbuffer *b, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	struct evbuffer_iovec v;

	if (evbuffer_reserve_space(b, (ev_ssize_t)(nl + vl + 4), &v, 1) == 1 &&
	    v.iov_len >= nl + vl + 4) {
		char *p = v.iov_base;

		memcpy(p, name, nl);
		p[nl] = ':';
		p[nl + 1] = ' ';
		memcpy(p + nl + 2, value, vl);
		p[nl + vl + 2] = '\r';
		p[nl + vl + 3] = '\n';
		v.iov_len = nl + vl + 4;
		evbuffer_commit_space(b, &v, 1);
		return;
	}
	evbuffer_add_printf(b, "%s: %s\r\n", name, value);
}

/* "HTTP/1.1 200 OK\r\n" without printf, which costs more than all the
 * header lines together. */
static void
add_status_line(struct evbuffer *b, int status)
{
	const char *text = server_status_text(status);
	size_t tl = strlen(text);
	char line[80];

	if (status < 100 || status > 999 || tl > sizeof(line) - 15) {
		evbuffer_add_printf(b, "HTTP/1.1 %d %s\r\n", status, text);
		return;
	}
	memcpy(line, "HTTP/1.1 ", 9);
	line[9] = (char)('0' + status / 100);
	line[10] = (char)('0' + status / 10 % 10);
	line[11] = (char)('0' + status % 10);
	line[12] = ' ';
	memcpy(line + 13, text, tl);
	line[13 + tl] = '\r';
	line[14 + tl] = '\n';
	evbuffer_add(b, line, tl + 15);
}

/* Status line and headers.  Framing headers in <headers> are skipped unless
 * <keep_length>; the caller adds its own framing after. */
static void
write_head(struct server_request *req, int status, struct evkeyvalq *headers, bool keep_length)
{
	struct server_conn *c = req->conn;
	struct evkeyval *kv;
	bool date = false;

	req->started = true;
	req->no_body = req->head_method || status < 200 || status == 204 || status == 304;
	add_status_line(c->out, status);
	if (headers) {
		TAILQ_FOREACH(kv, headers, next) {
			const char *k = kv->key;

			switch (k[0] | 0x20) {
			case 'c':
				if (strcasecmp(k, "connection") == 0 ||
				    (!keep_length && strcasecmp(k, "content-length") == 0))
					continue;
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
			add_header_line(c->out, k, kv->value);
		}
	}
	if (!date)
		evbuffer_add(c->out, date_line(), strlen(date_line()));
}

/* Connection header and the blank line. */
static void
write_head_end(struct server_request *req)
{
	struct server_conn *c = req->conn;

	if (!req->keepalive || c->srv->draining)
		c->closing = true;
	if (c->closing)
		evbuffer_add(c->out, "Connection: close\r\n\r\n", 21);
	else if (req->minor == 0)
		evbuffer_add(c->out, "Connection: keep-alive\r\n\r\n", 26);
	else
		evbuffer_add(c->out, "\r\n", 2);
}

void
server_reply(struct server_request *req, int status, struct evkeyvalq *headers,
	     struct evbuffer *body, bool close)
{
	struct server_conn *c = req->conn;
	size_t len = body ? evbuffer_get_length(body) : 0;

	if (req->handler_done || req->started)
		return;
	if (close || (req->body_expected && !req->complete))
		c->closing = true; /* the rest of the body will not be read */
	write_head(req, status, headers, false);
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
	conn_run(c);
}

void
server_reply_start(struct server_request *req, int status, struct evkeyvalq *headers)
{
	struct server_conn *c = req->conn;
	bool has_length = headers && evhttp_find_header(headers, "Content-Length") != NULL;

	if (req->handler_done || req->started)
		return;
	if (req->body_expected && !req->complete)
		c->closing = true;
	write_head(req, status, headers, true);
	if (!req->no_body && !has_length) {
		if (req->minor >= 1) {
			req->chunked = true;
			evbuffer_add(c->out, "Transfer-Encoding: chunked\r\n", 28);
		} else {
			c->closing = true; /* HTTP/1.0: the body ends with the connection */
		}
	}
	write_head_end(req);
	conn_write_soon(c);
}

bool
server_reply_body(struct server_request *req, struct evbuffer *data)
{
	struct server_conn *c = req->conn;
	size_t len = evbuffer_get_length(data);

	if (req->handler_done || len == 0)
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
	if (evbuffer_get_length(c->out) > BACKLOG_LIMIT) {
		req->over_limit = true;
		return true;
	}
	return false;
}

void
server_reply_end(struct server_request *req)
{
	struct server_conn *c = req->conn;

	if (req->handler_done)
		return;
	if (req->chunked && !req->no_body)
		evbuffer_add(c->out, "0\r\n\r\n", 5);
	req->handler_done = true;
	conn_write_soon(c);
	conn_run(c);
}

void
server_reply_abort(struct server_request *req)
{
	struct server_conn *c = req->conn;

	if (req->handler_done)
		return;
	req->handler_done = true;
	c->closing = true;
	req->complete = true; /* nothing more will be read for it */
	conn_write_soon(c);
	conn_run(c);
}

/* ---- parsing ----------------------------------------------------------- */

static int
on_message_begin(http_parser *p)
{
	struct server_conn *c = p->data;

	c->req = request_new(c);
	if (c->req == NULL)
		return -1;
	headerbuf_reset(&c->hb, c->srv->limits.max_header_bytes);
	/* The whole head must arrive within the client timeout. */
	c->idle_release = false;
	evtimer_add(c->timer, &c->srv->limits.client);
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	struct server_conn *c = p->data;

	if (headerbuf_count(&c->hb, n) < 0)
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
		return headerbuf_count(&c->hb, n);
	return headerbuf_field(&c->hb, &c->req->headers, at, n);
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct server_conn *c = p->data;

	if (c->req->head_done)
		return headerbuf_count(&c->hb, n);
	return headerbuf_value(&c->hb, at, n);
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
	c->stop = true;
	server_reply(c->req, status, &h, body, true);
	evhttp_clear_headers(&h);
	if (body)
		evbuffer_free(body);
	return -1;
}

static int
on_headers_complete(http_parser *p)
{
	struct server_conn *c = p->data;
	struct server_request *req = c->req;
	const char *expect;
	enum server_verdict verdict;

	if (headerbuf_finish(&c->hb, &req->headers) < 0)
		return -1;
	/* The request line: method, spaces, " HTTP/1.1" and CRLF around the
	 * target on_url counted. */
	if (headerbuf_count(&c->hb, strlen(http_method_str((enum http_method)p->method)) + 12) < 0)
		return -1;
	req->head_done = true;
	/* From here the body may not stall longer than the client timeout
	 * between reads (read_cb renews it). */
	evtimer_add(c->timer, &c->srv->limits.client);
	req->minor = p->http_major == 1 ? p->http_minor : 1;
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
			c->stop = true;
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
		if (req->minor >= 1 && req->body_expected) {
			evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			conn_write(c);
		}
	}
	if (p->flags & F_CHUNKED) {
		/* Our strict decoder reads the body (chunked.h says why); 2 makes
		 * http-parser stop right after the head. */
		c->own_chunked = true;
		chunked_init(&c->chunk);
		return 2;
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct server_conn *c = p->data;
	struct server_request *req = c->req;

	if (evbuffer_get_length(req->body) + n > req->max_body) {
		c->srv->handler->on_abort(req, 413, c->srv->arg);
		return refuse_in_parser(c, 413, "the request body exceeds this route's limit");
	}
	return evbuffer_add(req->body, at, n);
}

static int
on_message_complete(http_parser *p)
{
	struct server_conn *c = p->data;

	if (c->own_chunked)
		return 0; /* the head of a chunked request: the body follows */
	c->req->complete = true;
	http_parser_pause(p, 1); /* one request at a time; pipelined bytes wait */
	evtimer_del(c->timer);   /* no timeout while the request is handled */
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
		c->stop = true;
		c->closing = true;
		return;
	}
	if (c->req->handler_seen) /* the handler owns it: tell it */
		c->srv->handler->on_abort(c->req, status, c->srv->arg);
	c->req->dispatched = true;
	c->req->complete = true;
	c->stop = true;
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
consume(struct server_conn *c, size_t used)
{
	if (used == 0)
		return;
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	c->scanned = c->scanned > used ? c->scanned - used : 0;
}

static int
chunk_emit(void *arg, const char *data, size_t n)
{
	struct server_conn *c = arg;
	struct server_request *req = c->req;

	if (evbuffer_get_length(req->body) + n > req->max_body) {
		c->srv->handler->on_abort(req, 413, c->srv->arg);
		return refuse_in_parser(c, 413, "the request body exceeds this route's limit");
	}
	return evbuffer_add(req->body, data, n);
}

/* Decode buffered bytes of a chunked request body. */
static bool
parse_chunked(struct server_conn *c)
{
	size_t used = 0;
	const char *why = NULL;
	enum chunked_result r = chunked_decode(&c->chunk, c->in, c->inlen, &used, chunk_emit, c, &why);

	if (c->dead)
		return false;
	consume(c, used);
	if (r == CHUNKED_ERROR) {
		if (why) /* malformed (a refusal by chunk_emit has answered already) */
			parse_failed(c, 400, why);
		return true;
	}
	if (r == CHUNKED_DONE) {
		c->own_chunked = false;
		c->req->complete = true;
		http_parser_pause(&c->parser, 1);
		evtimer_del(c->timer);
		return true;
	}
	return used > 0;
}

/* Parse what is buffered.  Returns true when it made progress. */
static bool
conn_parse(struct server_conn *c)
{
	size_t used;
	enum http_errno e;

	if (c->stop || c->closing)
		return false;
	if (c->own_chunked)
		return parse_chunked(c);
	if (c->req == NULL || !c->req->head_done) {
		/* Line endings first: obs-fold and bare CR never reach http-parser
		 * (which Debian builds lenient). */
		size_t n;
		enum headscan_result hr =
			headscan_feed(&c->scan, c->in + c->scanned, c->inlen - c->scanned, &n);

		c->scanned += n;
		if (hr == HEADSCAN_FOLD || hr == HEADSCAN_BARE_CR) {
			parse_failed(c, 400, hr == HEADSCAN_FOLD
						     ? "obsolete header line folding is not accepted"
						     : "a CR not followed by LF in the request head");
			return true;
		}
	}
	used = http_parser_execute(&c->parser, &parser_settings, c->in, c->inlen);
	if (c->dead)
		return false;
	e = HTTP_PARSER_ERRNO(&c->parser);
	consume(c, used);
	if (e == HPE_OK || e == HPE_PAUSED)
		return used > 0 || c->own_chunked;
	if (c->stop)
		return true;
	parse_failed(c, c->hb.overflow ? 431 : 400,
		     c->hb.overflow ? "the request head exceeds the configured limit"
				    : http_errno_description(e));
	return true;
}

/* ---- connection lifecycle --------------------------------------------- */

static void
conn_free(struct server_conn *c)
{
	struct server *srv = c->srv;

	LIST_REMOVE(c, link);
	srv->nconns--;
	metrics_add(METRIC_CLIENT_CONNECTIONS, -1);
	request_free(c->req);
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->timer);
	if (c->ssl) {
		if (!c->handshaking)
			SSL_shutdown(c->ssl); /* close_notify, best effort */
		SSL_free(c->ssl);
	}
	close(c->fd);
	evbuffer_free(c->out);
	free(c->in);
	free(c->target_spare);
	if (c->body_spare)
		evbuffer_free(c->body_spare);
	headerbuf_free(&c->hb);
	free(c);
}

/* Close now (or as soon as the stack unwinds).  A request the handler still
 * owns is aborted first. */
static void
conn_close(struct server_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->req && c->req->handler_seen && !c->req->handler_done) {
		c->req->handler_done = true;
		c->srv->handler->on_abort(c->req, 499, c->srv->arg);
	}
	if (!c->running)
		conn_free(c);
}

/* Give back what an idle connection holds: OpenSSL's record buffers (about
 * 17 KiB each way) and the input buffer.  They are allocated again when the
 * next request comes. */
static void
conn_release_buffers(struct server_conn *c)
{
	if (c->ssl && !c->handshaking && !SSL_has_pending(c->ssl))
		SSL_free_buffers(c->ssl); /* refuses by itself while a record is pending */
	if (c->inlen == 0) {
		free(c->in);
		c->in = NULL;
		c->incap = 0;
	}
	free(c->target_spare);
	c->target_spare = NULL;
	c->target_spare_cap = 0;
}

/* Between two requests: the timer first frees the buffers after
 * IDLE_RELEASE_SECONDS, then closes the connection when the idle keep-alive
 * time is up.  A busy connection keeps its buffers: OpenSSL's
 * SSL_MODE_RELEASE_BUFFERS frees and allocates them for every request. */
static void
conn_idle(struct server_conn *c)
{
	struct timeval first = {IDLE_RELEASE_SECONDS, 0};

	c->idle_release = evutil_timercmp(&c->srv->limits.client, &first, >);
	evtimer_add(c->timer, c->idle_release ? &first : &c->srv->limits.client);
}

/* Move the connection forward: finish a request whose reply is written,
 * dispatch a complete request, parse what is buffered.  Loops instead of
 * recursing when handlers reply synchronously. */
static void
conn_run(struct server_conn *c)
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
			request_free(c->req);
			c->req = NULL;
			if (c->closing || c->stop) {
				c->dead = true;
				break;
			}
			http_parser_pause(&c->parser, 0);
			headscan_init(&c->scan);
			c->scanned = 0;
			conn_idle(c);
			if (c->read_paused) {
				c->read_paused = false;
				event_add(c->rev, NULL);
				/* Bytes OpenSSL read ahead do not wake epoll. */
				if (c->ssl && SSL_has_pending(c->ssl))
					event_active(c->rev, EV_READ, 1);
			}
			c->rerun = true;
			continue;
		}
		if (c->req && c->req->complete && !c->req->dispatched) {
			c->req->dispatched = true;
			c->srv->handler->on_request(c->req, c->srv->arg);
			c->rerun = true;
			continue;
		}
		if (c->inlen > 0 && (c->req == NULL || !c->req->complete) && conn_parse(c))
			c->rerun = true;
	} while (c->rerun);
	c->running = false;
	if (c->dead)
		conn_free(c);
}

/* Plain HTTP sent to a TLS listener: say so in plain HTTP, then close. */
static void
plain_on_tls_port(struct server_conn *c)
{
	tls_answer_plain_http(c->ssl);
	conn_close(c);
}

/* TLS: finish the handshake (returns false while it is not done). */
static bool
tls_handshake(struct server_conn *c)
{
	int r, err;

	if (!c->tls_checked) {
		unsigned char first;
		ssize_t n = recv(c->fd, &first, 1, MSG_PEEK);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return false;
		if (n <= 0) {
			conn_close(c);
			return false;
		}
		if (first != 0x16) { /* not a TLS handshake record */
			plain_on_tls_port(c);
			return false;
		}
		c->tls_checked = true;
	}
	tls_clear_errors();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		return true;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ)
		return false;
	if (err == SSL_ERROR_WANT_WRITE) {
		c->write_waiting = true;
		event_add(c->wev, &c->srv->limits.client);
		return false;
	}
	metrics_add(METRIC_TLS_HANDSHAKE_FAILURES, 1);
	conn_close(c); /* a failed handshake touches nothing else */
	return false;
}

/* Read into the input buffer: at most <room> bytes.  Returns bytes read,
 * 0 at EOF, -1 for "nothing now" (EAGAIN), -2 for an error. */
static ssize_t
conn_read(struct server_conn *c, size_t room)
{
	if (c->ssl) {
		int n, err;

		tls_clear_errors();
		n = SSL_read(c->ssl, c->in + c->inlen, room > INT_MAX ? INT_MAX : (int)room);
		if (n > 0)
			return n;
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			return -1;
		if (err == SSL_ERROR_WANT_WRITE) {
			c->read_wants_write = true;
			c->write_waiting = true;
			event_add(c->wev, &c->srv->limits.client);
			return -1;
		}
		if (err == SSL_ERROR_ZERO_RETURN)
			return 0;
		return -2;
	}
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->inlen, room);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -1;
		return -2;
	}
}

/* Read and drop the PROXY protocol header (peeked first, so that a TLS
 * ClientHello behind it stays in the socket for OpenSSL); the client
 * address it carries replaces the socket peer.  Returns false while it is
 * incomplete, or when the connection was closed. */
static bool
proxy_header(struct server_conn *c)
{
	unsigned char buf[PROXYPROTO_MAX_HEADER];
	struct proxyproto_info info;
	const char *why = NULL;
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK);
	enum proxyproto_result r;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	if (n <= 0) {
		conn_close(c);
		return false;
	}
	r = proxyproto_parse(buf, (size_t)n, &info, &why);
	if (r == PROXYPROTO_NEED_MORE && (size_t)n < sizeof(buf))
		return false;
	if (r != PROXYPROTO_OK) {
		log_info("connection refused: %s", why ? why : "PROXY header too long");
		conn_close(c);
		return false;
	}
	if (recv(c->fd, buf, info.header_len, 0) != (ssize_t)info.header_len) {
		conn_close(c);
		return false;
	}
	if (info.has_address)
		c->peer = info.src;
	c->pp_pending = false;
	return true;
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;

	if (c->pp_pending && !proxy_header(c))
		return;
	if (c->handshaking && !tls_handshake(c))
		return;
	if (c->write_wants_read && !conn_write_from_event(c))
		return;
	for (;;) {
		ssize_t n;
		size_t room;

		if (c->req && c->req->complete && c->inlen >= PIPELINE_LIMIT) {
			/* Enough read ahead while the handler works. */
			event_del(c->rev);
			c->read_paused = true;
			break;
		}
		if (c->incap - c->inlen < 4096) {
			size_t ncap = c->incap ? c->incap * 2 : READ_CHUNK;
			char *p = realloc(c->in, ncap);

			if (p == NULL) {
				conn_close(c);
				return;
			}
			c->in = p;
			c->incap = ncap;
		}
		room = c->incap - c->inlen;
		n = conn_read(c, room);
		if (n > 0) {
			c->inlen += (size_t)n;
			if (c->req && c->req->head_done && !c->req->complete)
				evtimer_add(c->timer, &c->srv->limits.client); /* body still moving */
			/* Short read: the kernel had no more, and OpenSSL holds
			 * no bytes (decrypted or read ahead, which epoll cannot
			 * see): wait for epoll rather than ask again. */
			if ((size_t)n < room && (c->ssl == NULL || !SSL_has_pending(c->ssl)))
				break;
			continue;
		}
		if (n == -1)
			break;
		/* EOF or error: the client is gone. */
		if (c->req && c->req->handler_done && !c->closing && c->inlen == 0 &&
		    evbuffer_get_length(c->out) > 0) {
			/* Finish writing the last reply (half-closed client). */
			c->closing = true;
			event_del(c->rev);
			return;
		}
		conn_close(c);
		return;
	}
	conn_run(c);
}

/* The connection's one timer: idle keep-alive, the request-head deadline,
 * or a stalled body, depending on where the connection is. */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;
	struct server_request *req = c->req;
	struct evkeyvalq h;
	struct evbuffer *body;

	if (req == NULL && c->idle_release) {
		struct timeval first = {IDLE_RELEASE_SECONDS, 0}, rest;

		c->idle_release = false;
		conn_release_buffers(c);
		evutil_timersub(&c->srv->limits.client, &first, &rest);
		evtimer_add(c->timer, &rest);
		return;
	}
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
	c->stop = true;
	server_reply(req, 408, &h, body, true);
	evhttp_clear_headers(&h);
	if (body)
		evbuffer_free(body);
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct server *srv = arg;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct server_conn *c;

		if (fd < 0)
			return; /* EAGAIN (another worker took it), or EMFILE: try later */
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		if (srv->proxy_protocol &&
		    !ipacl_contains(srv->trusted, (const struct sockaddr *)&ss)) {
			/* A PROXY header is believed only from trusted proxies. */
			close(fd);
			free(c);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		c->peer = ss;
		c->pp_pending = srv->proxy_protocol;
		c->out = evbuffer_new();
		c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, read_cb, c);
		c->wev = event_new(srv->base, fd, EV_WRITE, write_cb, c);
		c->timer = evtimer_new(srv->base, timer_cb, c);
		if (!c->out || !c->rev || !c->wev || !c->timer) {
			if (c->out)
				evbuffer_free(c->out);
			if (c->rev)
				event_free(c->rev);
			if (c->wev)
				event_free(c->wev);
			if (c->timer)
				event_free(c->timer);
			close(fd);
			free(c);
			continue;
		}
		if (srv->tls) {
			c->ssl = SSL_new(srv->tls);
			if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
				SSL_free(c->ssl);
				event_free(c->rev);
				event_free(c->wev);
				event_free(c->timer);
				evbuffer_free(c->out);
				close(fd);
				free(c);
				continue;
			}
			SSL_set_accept_state(c->ssl);
			SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
						     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
			/* Buffers live while the connection is busy (conn_idle
			 * frees them when it is not), and a record is read in
			 * one system call rather than header and body apart. */
			SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
			SSL_set_read_ahead(c->ssl, 1);
			c->handshaking = true;
		}
		http_parser_init(&c->parser, HTTP_REQUEST);
		c->parser.data = c;
		LIST_INSERT_HEAD(&srv->conns, c, link);
		srv->nconns++;
		metrics_add(METRIC_CLIENT_CONNECTIONS, 1);
		event_add(c->rev, NULL);
		evtimer_add(c->timer, &srv->limits.client);
	}
}

/* ---- server ------------------------------------------------------------ */

struct server *
server_new(struct event_base *base, int fd, int port, const struct server_handler *handler,
	   void *arg)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return NULL;
	srv->base = base;
	srv->fd = fd;
	srv->port = port;
	srv->handler = handler;
	srv->arg = arg;
	srv->limits.max_header_bytes = 65536;
	srv->limits.client.tv_sec = 30;
	LIST_INIT(&srv->conns);
	srv->accept_ev = event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, srv);
	if (srv->accept_ev == NULL || event_add(srv->accept_ev, NULL) < 0) {
		if (srv->accept_ev)
			event_free(srv->accept_ev);
		free(srv);
		return NULL;
	}
	return srv;
}

void
server_set_limits(struct server *srv, const struct server_limits *limits)
{
	srv->limits = *limits;
	/* http-parser's own head limit is process-wide; ours is exact (431),
	 * so its stays well above any configured one. */
	http_parser_set_max_header_size((uint32_t)(limits->max_header_bytes * 2 + 4096));
}

void
server_set_proxy_protocol(struct server *srv, bool on, const struct ipacl *trusted)
{
	srv->proxy_protocol = on;
	srv->trusted = trusted;
}

void
server_set_tls(struct server *srv, SSL_CTX *ctx)
{
	if (ctx)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
}

void
server_drain(struct server *srv)
{
	struct server_conn *c, *next;

	srv->draining = true;
	if (srv->accept_ev) {
		event_free(srv->accept_ev);
		srv->accept_ev = NULL;
		close(srv->fd);
		srv->fd = -1;
	}
	for (c = LIST_FIRST(&srv->conns); c; c = next) {
		next = LIST_NEXT(c, link);
		if (c->req == NULL && c->inlen == 0)
			conn_close(c); /* idle keep-alive */
		else
			c->closing = c->closing || (c->req && c->req->started);
	}
}

size_t
server_connections(const struct server *srv)
{
	return srv->nconns;
}

void
server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	while (!LIST_EMPTY(&srv->conns)) {
		struct server_conn *c = LIST_FIRST(&srv->conns);

		c->running = false;
		if (c->dead)
			conn_free(c);
		else
			conn_close(c); /* frees it */
	}
	if (srv->accept_ev) {
		event_free(srv->accept_ev);
		close(srv->fd);
	}
	SSL_CTX_free(srv->tls);
	free(srv);
}

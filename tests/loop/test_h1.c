/*
 * In-process tests of the connection transport and the HTTP/1.x codec
 * (src/http/conn.c, h1.c, request.c): one event_base, the server end of a
 * socketpair() adopted by a server without a listening socket, a fake
 * handler that records what it is told, and the test playing the client on
 * the other end.  Each case runs in milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/metrics.h"
#include "http/conn.h"
#include "http/h1.h"
#include "http/request.h"

#define LOG_MAX 64
#define BIG_BODY (4 * 1024 * 1024) /* well over the backlog limit and the socket buffers */

/* How the fake handler answers a request. */
enum mode {
	MODE_ECHO,      /* in on_request: server_reply with "<target>" as the body */
	MODE_DEFERRED,  /* reply_start + body in on_request, reply_end from a later event */
	MODE_STREAM,    /* reply_start (no length) in on_request, body and end later */
	MODE_BIG,       /* BIG_BODY bytes with Content-Length, obeying back-pressure */
	MODE_HOLD,      /* never answer (the client goes away) */
	MODE_REFUSE,    /* 403 in on_head */
};

struct fake {
	struct event_base *base;
	struct server *srv;
	int client; /* the test's end of the socketpair */
	enum mode mode;
	char log[LOG_MAX][96];
	int nlog;
	int depth;  /* handler callbacks in progress (must never nest) */
	struct server_request *held; /* a request answered from a later event */
	char held_target[64];
	struct event *later;
	size_t big_sent;
	int over_limit; /* server_reply_body said "stop" */
	int drained;
	enum server_proto proto[8];
	bool tunnel[8];
	int nreq;
	uint64_t max_body;
};

static void
logf_(struct fake *f, const char *fmt, ...)
{
	va_list ap;

	assert_true(f->nlog < LOG_MAX);
	va_start(ap, fmt);
	vsnprintf(f->log[f->nlog++], sizeof(f->log[0]), fmt, ap);
	va_end(ap);
}

static int
log_index(const struct fake *f, const char *entry)
{
	for (int i = 0; i < f->nlog; i++) {
		if (strcmp(f->log[i], entry) == 0)
			return i;
	}
	return -1;
}

static void
enter(struct fake *f)
{
	assert_int_equal(f->depth, 0); /* no handler callback runs inside another */
	f->depth++;
}

static void
leave(struct fake *f)
{
	f->depth--;
}

/* Produce BIG_BODY bytes ('a' + offset % 26) until back-pressure says stop. */
static void
big_produce(struct fake *f)
{
	struct evbuffer *b = evbuffer_new();
	char chunk[16384];

	assert_non_null(b);
	while (f->held && f->big_sent < BIG_BODY) {
		size_t n = sizeof(chunk);

		for (size_t i = 0; i < n; i++)
			chunk[i] = (char)('a' + (f->big_sent + i) % 26);
		evbuffer_add(b, chunk, n);
		f->big_sent += n;
		if (server_reply_body(f->held, b)) {
			f->over_limit++;
			break;
		}
	}
	if (f->held && f->big_sent == BIG_BODY) {
		server_reply_end(f->held);
		f->held = NULL;
	}
	evbuffer_free(b);
}

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	struct evbuffer *b;

	if (f->held == NULL)
		return;
	enter(f);
	if (f->mode == MODE_STREAM) {
		b = evbuffer_new();
		evbuffer_add_printf(b, "streamed %s", f->held_target);
		server_reply_body(f->held, b);
		evbuffer_free(b);
	}
	server_reply_end(f->held);
	f->held = NULL;
	/* The transaction's one exit: logged after the reply ended. */
	logf_(f, "log %s", f->held_target);
	leave(f);
}

static enum server_verdict
on_head(struct server_request *req, void *arg)
{
	struct fake *f = arg;
	struct evkeyvalq *h = server_request_headers(req);

	enter(f);
	logf_(f, "head %s", server_request_target(req));
	if (evhttp_find_header(h, "Upgrade") != NULL)
		server_request_set_tunnel(req, true);
	if (f->mode == MODE_REFUSE) {
		struct evbuffer *b = evbuffer_new();

		evbuffer_add(b, "no\n", 3);
		server_reply(req, 403, NULL, b, false);
		evbuffer_free(b);
		leave(f);
		return SERVER_REPLIED;
	}
	server_request_set_max_body(req, f->max_body);
	leave(f);
	return SERVER_READ_BODY;
}

static void
on_request(struct server_request *req, void *arg)
{
	struct fake *f = arg;
	const char *target = server_request_target(req);
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq h;

	enter(f);
	assert_non_null(b);
	TAILQ_INIT(&h);
	logf_(f, "request %s", target);
	if (f->nreq < 8) {
		f->proto[f->nreq] = server_request_proto(req);
		f->tunnel[f->nreq] = server_request_is_tunnel(req);
	}
	f->nreq++;
	switch (f->mode) {
	case MODE_ECHO:
	case MODE_REFUSE:
		evbuffer_add_printf(b, "%s", target);
		evbuffer_add_buffer(b, server_request_body(req));
		server_reply(req, 200, NULL, b, false);
		logf_(f, "log %s", target);
		break;
	case MODE_DEFERRED:
		evhttp_add_header(&h, "Content-Length", "2");
		server_reply_start(req, 200, &h);
		evbuffer_add(b, "ok", 2);
		server_reply_body(req, b);
		f->held = req;
		snprintf(f->held_target, sizeof(f->held_target), "%s", target);
		/* End it two loop turns later: the body has been written by then. */
		event_add(f->later, &(struct timeval){0, 2000});
		break;
	case MODE_STREAM:
		server_reply_start(req, 200, NULL);
		f->held = req;
		snprintf(f->held_target, sizeof(f->held_target), "%s", target);
		event_add(f->later, &(struct timeval){0, 1000});
		break;
	case MODE_BIG:
		evhttp_add_header(&h, "Content-Length", "4194304");
		server_reply_start(req, 200, &h);
		f->held = req;
		big_produce(f);
		break;
	case MODE_HOLD:
		f->held = req;
		break;
	}
	evhttp_clear_headers(&h);
	evbuffer_free(b);
	leave(f);
}

static void
on_abort(struct server_request *req, int status, void *arg)
{
	struct fake *f = arg;

	enter(f);
	logf_(f, "abort %d %s", status, server_request_target(req));
	if (f->held == req)
		f->held = NULL;
	leave(f);
}

static void
on_drained(struct server_request *req, void *arg)
{
	struct fake *f = arg;

	enter(f);
	f->drained++;
	assert_ptr_equal(req, f->held);
	big_produce(f);
	leave(f);
}

static const struct server_handler fake_handler = {
	.on_head = on_head,
	.on_request = on_request,
	.on_abort = on_abort,
	.on_drained = on_drained,
};

/* ---- the harness -------------------------------------------------------- */

static int
setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	int sv[2];
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->srv = server_new(f->base, -1, 8080, h1_codecs, &fake_handler, f);
	assert_non_null(f->srv);
	server_set_counted(f->srv, false);
	f->later = evtimer_new(f->base, later_cb, f);
	f->max_body = 1024;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(server_adopt(f->srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)), 0);
	f->client = sv[1];
	assert_int_equal(fcntl(f->client, F_SETFL, O_NONBLOCK), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fake *f = *state;

	if (f->client >= 0)
		close(f->client);
	server_free(f->srv);
	event_free(f->later);
	event_base_free(f->base);
	free(f);
	return 0;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Run the loop until <done> (or for <ms> when <done> is NULL). */
static bool
run_until(struct fake *f, bool (*done)(struct fake *f, void *arg), void *arg, double ms)
{
	double end = now_ms() + ms;

	for (;;) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		if (done && done(f, arg))
			return true;
		if (now_ms() > end)
			return done == NULL;
		usleep(200);
	}
}

static void
send_all(struct fake *f, const char *data)
{
	size_t len = strlen(data), off = 0;

	while (off < len) {
		ssize_t n = write(f->client, data + off, len - off);

		if (n < 0 && errno == EAGAIN) {
			run_until(f, NULL, NULL, 1);
			continue;
		}
		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* What the client has received, kept across calls. */
struct inbox {
	char *data;
	size_t len;
	bool eof;
};

static void
inbox_read(struct fake *f, struct inbox *in)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(f->client, buf, sizeof(buf));

		if (n > 0) {
			in->data = realloc(in->data, in->len + (size_t)n + 1);
			assert_non_null(in->data);
			memcpy(in->data + in->len, buf, (size_t)n);
			in->len += (size_t)n;
			in->data[in->len] = '\0';
			continue;
		}
		if (n == 0)
			in->eof = true;
		return;
	}
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

struct want {
	struct inbox *in;
	const char *text; /* wait until it appears <times> times */
	size_t times;
};

static bool
got_text(struct fake *f, void *arg)
{
	struct want *w = arg;

	inbox_read(f, w->in);
	return w->in->data && count(w->in->data, w->text) >= w->times;
}

static bool
got_eof(struct fake *f, void *arg)
{
	struct inbox *in = arg;

	inbox_read(f, in);
	return in->eof;
}

static bool
logged(struct fake *f, void *arg)
{
	return log_index(f, arg) >= 0;
}

static bool
no_connections(struct fake *f, void *arg)
{
	return server_connections(f->srv) == 0;
}

/* ---- the cases ---------------------------------------------------------- */

/* Three pipelined requests answered at once: responses in order, each
 * request handled (head, request, log) before the next one's head. */
static void
test_pipelining_order(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want w = {&in, "HTTP/1.1 200 OK", 3};
	const char *a, *b, *c;

	f->mode = MODE_ECHO;
	send_all(f, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
		    "GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
		    "GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, got_text, &w, 2000));
	a = strstr(in.data, "\r\n\r\n/a");
	b = strstr(in.data, "\r\n\r\n/b");
	c = strstr(in.data, "\r\n\r\n/c");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(a < b && b < c);
	assert_int_equal(f->nlog, 9);
	assert_string_equal(f->log[0], "head /a");
	assert_string_equal(f->log[1], "request /a");
	assert_string_equal(f->log[2], "log /a");
	assert_string_equal(f->log[3], "head /b");
	assert_string_equal(f->log[6], "head /c");
	assert_string_equal(f->log[8], "log /c");
	free(in.data);
}

/* The reply ends from a later event, after its body was written: the next
 * pipelined request must not start inside server_reply_end, but after the
 * handler has logged the first one. */
static void
test_pipelining_deferred_end(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want w = {&in, "HTTP/1.1 200 OK", 2};

	f->mode = MODE_DEFERRED;
	send_all(f, "GET /one HTTP/1.1\r\nHost: t\r\n\r\nGET /two HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, got_text, &w, 2000));
	assert_true(run_until(f, logged, "log /two", 2000));
	assert_true(log_index(f, "log /one") >= 0);
	assert_true(log_index(f, "head /two") >= 0);
	assert_true(log_index(f, "log /one") < log_index(f, "head /two"));
	assert_true(log_index(f, "log /two") > log_index(f, "head /two"));
	assert_non_null(strstr(in.data, "Content-Length: 2\r\n"));
	free(in.data);
}

/* A complete reply given outside the connection's callbacks (as the proxy
 * does from its upstream's) is on the wire before the loop runs again; one
 * in progress (head and body, no end) waits for the loop turn, so head,
 * body and end still leave together. */
static void
test_complete_reply_sent_at_once(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq h;
	struct want w = {&in, "HTTP/1.1 200 OK", 2};

	assert_non_null(b);
	TAILQ_INIT(&h);
	f->mode = MODE_HOLD;
	send_all(f, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, logged, "request /one", 2000));
	evbuffer_add(b, "whole", 5);
	server_reply(f->held, 200, NULL, b, false);
	f->held = NULL;
	inbox_read(f, &in); /* no loop turn in between */
	assert_non_null(in.data);
	assert_non_null(strstr(in.data, "\r\n\r\nwhole"));

	send_all(f, "GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, logged, "request /two", 2000));
	evhttp_add_header(&h, "Content-Length", "4");
	server_reply_start(f->held, 200, &h);
	evbuffer_add(b, "ab", 2);
	server_reply_body(f->held, b);
	inbox_read(f, &in);
	assert_int_equal(count(in.data, "HTTP/1.1 200 OK"), 1); /* in progress: not yet */
	evbuffer_add(b, "cd", 2);
	server_reply_body(f->held, b);
	server_reply_end(f->held);
	f->held = NULL;
	inbox_read(f, &in);
	assert_int_equal(count(in.data, "HTTP/1.1 200 OK"), 2);
	assert_non_null(strstr(in.data, "\r\n\r\nabcd"));
	assert_true(run_until(f, got_text, &w, 2000)); /* and the loop finishes both */
	evhttp_clear_headers(&h);
	evbuffer_free(b);
	free(in.data);
}

/* HTTP/1.0 and 1.1 are reported as such; a streamed reply is chunked for
 * 1.1 and close-delimited for 1.0. */
static void
test_proto_reported(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want w = {&in, "0\r\n\r\n", 1};

	f->mode = MODE_STREAM;
	send_all(f, "GET /new HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, got_text, &w, 2000));
	assert_int_equal(f->proto[0], SERVER_PROTO_HTTP11);
	assert_non_null(strstr(in.data, "Transfer-Encoding: chunked\r\n"));
	assert_non_null(strstr(in.data, "streamed /new"));
	free(in.data);
	memset(&in, 0, sizeof(in));

	send_all(f, "GET /old HTTP/1.0\r\n\r\n");
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_int_equal(f->nreq, 2);
	assert_int_equal(f->proto[1], SERVER_PROTO_HTTP10);
	assert_null(strstr(in.data, "Transfer-Encoding"));
	assert_non_null(strstr(in.data, "Connection: close\r\n"));
	assert_non_null(strstr(in.data, "\r\n\r\nstreamed /old"));
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data); /* our version */
	free(in.data);
}

/* server_set_http10_status (the admin listener): HTTP/1.0 clients get an
 * HTTP/1.0 status line, HTTP/1.1 clients still HTTP/1.1. */
static void
test_http10_status(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want w = {&in, "/eleven", 1};

	f->mode = MODE_ECHO;
	server_set_http10_status(f->srv, true);
	send_all(f, "GET /eleven HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, got_text, &w, 2000));
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	free(in.data);
	memset(&in, 0, sizeof(in));
	send_all(f, "GET /ten HTTP/1.0\r\n\r\n");
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_ptr_equal(strstr(in.data, "HTTP/1.0 200 OK\r\n"), in.data);
	free(in.data);
}

/* A request can be marked as a tunnel; the next request on the connection
 * starts unmarked. */
static void
test_tunnel_flag(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want w = {&in, "HTTP/1.1 200 OK", 2};

	f->mode = MODE_ECHO;
	send_all(f, "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
		    "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, got_text, &w, 2000));
	assert_int_equal(f->nreq, 2);
	assert_true(f->tunnel[0]);
	assert_false(f->tunnel[1]);
	free(in.data);
}

static bool
over_limit_seen(struct fake *f, void *arg)
{
	return f->over_limit > 0;
}

static bool
big_done(struct fake *f, void *arg)
{
	struct inbox *in = arg;

	inbox_read(f, in);
	return f->held == NULL && in->data && strstr(in->data, "\r\n\r\n") &&
	       in->len - (size_t)(strstr(in->data, "\r\n\r\n") + 4 - in->data) == BIG_BODY;
}

/* A client that does not read: the handler is told to stop once the
 * backlog passes the limit, and is not called back until the client reads;
 * then the whole body arrives intact. */
static void
test_back_pressure(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	const char *body;

	f->mode = MODE_BIG;
	send_all(f, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, over_limit_seen, NULL, 2000));
	/* The kernel's socket buffers take some of it (each write that
	 * empties the backlog calls on_drained); once they are full, nothing
	 * moves until the client reads. */
	for (int settle = 0;; settle++) {
		int drained = f->drained;
		size_t sent = f->big_sent;

		assert_true(settle < 100);
		run_until(f, NULL, NULL, 30);
		if (f->drained == drained && f->big_sent == sent)
			break;
	}
	int drained_before = f->drained;
	run_until(f, NULL, NULL, 50);
	assert_int_equal(f->drained, drained_before); /* nobody read: no on_drained */
	assert_true(f->big_sent < BIG_BODY);    /* the handler stopped producing */
	assert_non_null(f->held);
	assert_true(run_until(f, big_done, &in, 30000)); /* ASan on a busy machine: slow */
	assert_true(f->drained > 0);
	body = strstr(in.data, "\r\n\r\n") + 4;
	for (size_t i = 0; i < BIG_BODY; i += 4093)
		assert_int_equal(body[i], 'a' + i % 26);
	free(in.data);
}

/* The client hangs up in the middle of a request body: the handler (which
 * saw the head) is told 499, and the connection is freed. */
static void
test_abort_mid_request(void **state)
{
	struct fake *f = *state;

	f->mode = MODE_ECHO;
	send_all(f, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
	assert_true(run_until(f, logged, "head /up", 2000));
	assert_int_equal(f->nlog, 1);
	close(f->client);
	f->client = -1;
	assert_true(run_until(f, no_connections, NULL, 2000));
	assert_int_equal(f->nlog, 2);
	assert_string_equal(f->log[1], "abort 499 /up");
}

/* The client hangs up while a streamed response is in progress. */
static void
test_abort_mid_response(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want w = {&in, "HTTP/1.1 200 OK", 1};

	f->mode = MODE_HOLD;
	send_all(f, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, logged, "request /hold", 2000));
	assert_non_null(f->held);
	server_reply_start(f->held, 200, NULL);
	assert_true(run_until(f, got_text, &w, 2000));
	close(f->client);
	f->client = -1;
	assert_true(run_until(f, no_connections, NULL, 2000));
	assert_null(f->held); /* on_abort let go of it */
	assert_string_equal(f->log[f->nlog - 1], "abort 499 /hold");
	free(in.data);
}

/* Expect: 100-continue is answered for an accepted request before its body
 * is read, then the final response follows. */
static void
test_100_continue(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want cont = {&in, "HTTP/1.1 100 Continue\r\n\r\n", 1};
	struct want fin = {&in, "HTTP/1.1 200 OK", 1};

	f->mode = MODE_ECHO;
	send_all(f, "POST /c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
	assert_true(run_until(f, got_text, &cont, 2000));
	assert_int_equal(f->nreq, 0);
	assert_null(strstr(in.data, "200 OK"));
	send_all(f, "hello");
	assert_true(run_until(f, got_text, &fin, 2000));
	assert_true(strstr(in.data, "100 Continue") < strstr(in.data, "200 OK"));
	assert_non_null(strstr(in.data, "\r\n\r\n/chello"));
	free(in.data);
}

/* A request refused from its head gets no 100 Continue: the final answer
 * comes at once and the unread body closes the connection. */
static void
test_100_continue_refused(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};

	f->mode = MODE_REFUSE;
	send_all(f, "POST /r HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_null(strstr(in.data, "100 Continue"));
	assert_non_null(strstr(in.data, "HTTP/1.1 403 Forbidden\r\n"));
	assert_non_null(strstr(in.data, "Connection: close\r\n"));
	assert_int_equal(f->nreq, 0);
	free(in.data);
}

/* The whole head must arrive within the client timeout: 408, then close. */
static void
test_head_timeout(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct server_limits limits = {.max_header_bytes = 8192, .client = {0, 50000}};

	server_set_limits(f->srv, &limits);
	f->mode = MODE_ECHO;
	send_all(f, "GET /slow HTTP/1.1\r\nHost: t\r\n"); /* no blank line */
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 408 Request Timeout\r\n"), in.data);
	assert_non_null(strstr(in.data, "the request head took too long"));
	assert_int_equal(f->nlog, 0); /* the handler never saw it */
	assert_true(run_until(f, no_connections, NULL, 2000));
	free(in.data);
}

/* Drain: a connection with a response in progress finishes it, then
 * closes; an idle one that never carried a request stays for its first
 * (a process that took the listening socket over may just have accepted
 * it), and goes when its client does. */
static void
test_drain(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	int sv[2];
	char c;

	f->mode = MODE_STREAM;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(server_adopt(f->srv, sv[0], NULL, 0), 0); /* stays idle */
	assert_int_equal(server_connections(f->srv), 2);
	send_all(f, "GET /busy HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(run_until(f, logged, "request /busy", 2000));
	server_drain(f->srv);
	assert_int_equal(server_connections(f->srv), 2); /* the fresh one is kept */
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
	close(sv[1]);
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_true(log_index(f, "log /busy") >= 0);
	assert_non_null(strstr(in.data, "streamed /busy")); /* then EOF: its head went out before */
	assert_non_null(strstr(in.data, "0\r\n\r\n"));
	assert_true(run_until(f, no_connections, NULL, 2000));
	free(in.data);
}

/* Send <n> bytes of <c> to the server, running the loop while the socket
 * is full; returns false when the server closed (EPIPE). */
static bool
send_fill(struct fake *f, char ch, size_t n)
{
	char buf[8192];

	memset(buf, ch, sizeof(buf));
	while (n > 0) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		ssize_t w = send(f->client, buf, k, MSG_NOSIGNAL);

		if (w < 0 && errno == EAGAIN) {
			run_until(f, NULL, NULL, 1);
			continue;
		}
		if (w < 0)
			return false;
		n -= (size_t)w;
	}
	return true;
}

/* An early answer (403 from the head) while the client goes on sending its
 * body, as Python's http.client does: the server writes the answer, shuts
 * its write side and reads and drops the rest, so the client can send it
 * all and then read the 403 and EOF; the connection closes when the client
 * closes; counted as a lingering close that the client ended. */
static void
test_linger_after_early_answer(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	int64_t ended = metrics_get(METRIC_LINGER_CLIENT);
	int64_t bytes = metrics_get(METRIC_LINGER_BYTES);

	f->mode = MODE_REFUSE;
	send_all(f, "POST /r HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n");
	assert_true(send_fill(f, 'b', 3000000)); /* never a reset */
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 403 Forbidden\r\n"), in.data);
	assert_non_null(strstr(in.data, "Connection: close\r\n"));
	run_until(f, NULL, NULL, 20);
	assert_int_equal(server_connections(f->srv), 1); /* lingering until we close */
	assert_true(metrics_get(METRIC_LINGER_BYTES) - bytes > 2000000);
	close(f->client);
	f->client = -1;
	assert_true(run_until(f, no_connections, NULL, 2000));
	assert_int_equal(metrics_get(METRIC_LINGER_CLIENT), ended + 1);
	assert_int_equal(f->nreq, 0);
	free(in.data);
}

/* Lingering is bounded: by the bytes dropped (the client is cut off once it
 * sends more than the limit), and by time (a quiet client is closed after
 * the idle time). */
static void
test_linger_bounded(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	int64_t limit = metrics_get(METRIC_LINGER_LIMIT);
	int64_t timeout = metrics_get(METRIC_LINGER_TIMEOUT);
	struct timeval total = {10, 0}, idle = {0, 50000};
	int sv[2];

	server_set_linger(f->srv, &total, &idle, 100000);
	f->mode = MODE_REFUSE;
	send_all(f, "POST /r HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n");
	send_fill(f, 'b', 3000000); /* fails once the server closes */
	assert_true(run_until(f, no_connections, NULL, 2000));
	assert_int_equal(metrics_get(METRIC_LINGER_LIMIT), limit + 1);

	/* A new connection whose client answers nothing after its 403. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(server_adopt(f->srv, sv[0], NULL, 0), 0);
	close(f->client);
	f->client = sv[1];
	assert_int_equal(fcntl(f->client, F_SETFL, O_NONBLOCK), 0);
	send_all(f, "POST /q HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345");
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_non_null(strstr(in.data, "HTTP/1.1 403 Forbidden\r\n"));
	assert_true(run_until(f, no_connections, NULL, 2000));
	assert_int_equal(metrics_get(METRIC_LINGER_TIMEOUT), timeout + 1);
	free(in.data);
}

/* A response to a request that was read in full, on a connection that
 * closes (HTTP/1.0), closes at once: nothing to linger for. */
static void
test_no_linger_after_complete_request(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	int64_t ended = metrics_get(METRIC_LINGER_CLIENT) + metrics_get(METRIC_LINGER_TIMEOUT);

	f->mode = MODE_ECHO;
	send_all(f, "GET /old HTTP/1.0\r\n\r\n");
	assert_true(run_until(f, got_eof, &in, 2000));
	assert_true(run_until(f, no_connections, NULL, 2000)); /* without our close */
	assert_int_equal(metrics_get(METRIC_LINGER_CLIENT) + metrics_get(METRIC_LINGER_TIMEOUT),
			 ended);
	free(in.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pipelining_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining_deferred_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_complete_reply_sent_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http10_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tunnel_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_back_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_mid_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_mid_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_100_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_100_continue_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linger_after_early_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linger_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_linger_after_complete_request, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

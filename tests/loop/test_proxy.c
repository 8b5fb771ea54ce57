/*
 * In-process tests of the proxy (src/proxy/proxy.c with upstream.c and
 * router.c): one event_base; a fake upstream listening on 127.0.0.1 port 0
 * and served by the test on that loop (accept, read requests, answer
 * scripted bytes); a server whose handler is the proxy, adopting the server
 * end of a socketpair(); the test playing the client on the other end.  The
 * config comes from the real loader (config_load_string) and the worker's
 * generation is built as worker.c builds it.  Each case runs in milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "config/config.h"
#include "core/generation.h"
#include "core/runtime.h"
#include "http/conn.h"
#include "proxy/proxy.h"

#define MAX_UP 8
#define MAX_REQS 16

/* How the fake upstream answers each complete request it reads. */
enum up_mode {
	UP_ECHO,         /* 200 with Content-Length; the body is the request target */
	UP_SCRIPT,       /* write f->script, keep the connection */
	UP_SCRIPT_CLOSE, /* write f->script, then close the connection */
	UP_CLOSE,        /* close the connection without a byte */
	UP_HOLD,         /* never answer */
};

struct fake;

/* One connection the fake upstream accepted. */
struct upconn {
	struct fake *f;
	int fd;            /* -1 once closed (by either side) */
	struct event *ev;
	char *in;          /* bytes read, NUL-terminated */
	size_t len;
	size_t parsed;     /* end of the last complete request in <in> */
	bool peer_closed;  /* the proxy closed it (read returned 0 or an error) */
};

struct fake {
	struct event_base *base;
	struct server *srv;
	int client;                /* the test's end of the socketpair */
	int lfd;                   /* the fake upstream's listening socket */
	struct event *lev;
	int port;
	struct upconn *up[MAX_UP];
	int nup;
	char *reqs[MAX_REQS];      /* complete requests the upstream read, in order */
	int nreqs;
	enum up_mode mode;
	const char *script;
	struct txn_env env;
	struct txn_listener tl;
	char ports[1][8];
	int ended;                 /* txn_env ended_cb calls */
};

/* ---- the fake upstream -------------------------------------------------- */

static void
up_close(struct upconn *u)
{
	if (u->fd < 0)
		return;
	event_free(u->ev);
	u->ev = NULL;
	close(u->fd);
	u->fd = -1;
}

static void
write_all_fd(int fd, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EAGAIN) {
			usleep(100);
			continue;
		}
		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* The value of header <name> in the head <text> (up to the blank line),
 * copied into <out>; NULL when absent. */
static const char *
header_value(const char *text, const char *name, char *out, size_t outlen)
{
	const char *end = strstr(text, "\r\n\r\n");
	const char *line = strstr(text, "\r\n");
	size_t nl = strlen(name);

	while (line && end && line < end) {
		line += 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			const char *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(e - v), v);
			return out;
		}
		line = strstr(line, "\r\n");
	}
	return NULL;
}

/* Lines of header <name> in the head <text>. */
static int
header_count(const char *text, const char *name)
{
	const char *end = strstr(text, "\r\n\r\n");
	const char *line = strstr(text, "\r\n");
	size_t nl = strlen(name);
	int n = 0;

	while (line && end && line < end) {
		line += 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':')
			n++;
		line = strstr(line, "\r\n");
	}
	return n;
}

/* Answer a complete request <req> as the mode says.  Returns false when the
 * connection was closed. */
static bool
up_answer(struct upconn *u, const char *req)
{
	struct fake *f = u->f;
	char buf[512], target[256];

	switch (f->mode) {
	case UP_ECHO:
		assert_int_equal(sscanf(req, "%*s %255s", target), 1);
		snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Upstream: echo\r\n\r\n%s",
			 strlen(target), target);
		write_all_fd(u->fd, buf, strlen(buf));
		return true;
	case UP_SCRIPT:
		write_all_fd(u->fd, f->script, strlen(f->script));
		return true;
	case UP_SCRIPT_CLOSE:
		write_all_fd(u->fd, f->script, strlen(f->script));
		up_close(u);
		return false;
	case UP_CLOSE:
		up_close(u);
		return false;
	case UP_HOLD:
		return true;
	}
	return true;
}

/* Take the complete requests (head + Content-Length body) out of u->in. */
static void
up_parse(struct upconn *u)
{
	struct fake *f = u->f;

	for (;;) {
		const char *start = u->in + u->parsed;
		const char *eoh = strstr(start, "\r\n\r\n");
		char cl[32];
		size_t need;
		char *req;

		if (eoh == NULL)
			return;
		need = (size_t)(eoh + 4 - start);
		if (header_value(start, "Content-Length", cl, sizeof(cl)))
			need += strtoul(cl, NULL, 10);
		if (u->len - u->parsed < need)
			return;
		req = strndup(start, need);
		assert_non_null(req);
		assert_true(f->nreqs < MAX_REQS);
		f->reqs[f->nreqs++] = req;
		u->parsed += need;
		if (!up_answer(u, req))
			return;
	}
}

static void
up_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	char buf[16384];

	for (;;) {
		ssize_t n = read(u->fd, buf, sizeof(buf));

		if (n > 0) {
			u->in = realloc(u->in, u->len + (size_t)n + 1);
			assert_non_null(u->in);
			memcpy(u->in + u->len, buf, (size_t)n);
			u->len += (size_t)n;
			u->in[u->len] = '\0';
			continue;
		}
		if (n == 0 || errno != EAGAIN) {
			u->peer_closed = true;
			up_parse(u);
			up_close(u);
			return;
		}
		break;
	}
	up_parse(u);
}

static void
up_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	int c;

	while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct upconn *u = calloc(1, sizeof(*u));

		assert_non_null(u);
		assert_true(f->nup < MAX_UP);
		u->f = f;
		u->fd = c;
		u->in = calloc(1, 1);
		u->ev = event_new(f->base, c, EV_READ | EV_PERSIST, up_read_cb, u);
		assert_non_null(u->ev);
		event_add(u->ev, NULL);
		f->up[f->nup++] = u;
	}
}

/* ---- the harness -------------------------------------------------------- */

static void
ended_cb(void *arg)
{
	struct fake *f = arg;

	f->ended++;
}

/* No environment variables reach the config. */
static const char *
no_env(const char *name)
{
	return NULL;
}

static int
setup_with(void **state, const char *response_timeout)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	char json[2048], err[4096];
	struct config *cfg;
	struct runtime *rt;
	int sv[2];

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);

	/* The fake upstream. */
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(f->lfd, 16), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &slen), 0);
	f->port = ntohs(sin.sin_port);
	f->lev = event_new(f->base, f->lfd, EV_READ | EV_PERSIST, up_accept_cb, f);
	assert_non_null(f->lev);
	event_add(f->lev, NULL);

	/* The config, through the real loader. */
	snprintf(json, sizeof(json),
		 "{\"listeners\": [{\"address\": \"127.0.0.1:0\"}],"
		 " \"timeouts\": {\"connect\": \"2s\", \"client\": \"5s\"},"
		 " \"upstreams\": {\"web\": {\"servers\": [\"127.0.0.1:%d\"],"
		 "                          \"response_timeout\": \"%s\"}},"
		 " \"sites\": [{\"hosts\": [\"app.test\"], \"routes\": [{\"upstream\": \"web\"}]}]}",
		 f->port, response_timeout);
	cfg = config_load_string(json, "loop.json", err, sizeof(err), no_env);
	if (cfg == NULL)
		fail_msg("config did not load:\n%s", err);

	/* The runtime, generation and environment, as worker.c builds them. */
	rt = runtime_new(cfg, 1);
	assert_non_null(rt);
	f->env.base = f->base;
	f->env.rng[0] = 0x9E3779B97F4A7C15ull;
	f->env.rng[1] = 0xD1B54A32D192ED03ull;
	snprintf(f->ports[0], sizeof(f->ports[0]), "8080");
	f->env.ports = f->ports;
	f->env.nports = 1;
	f->env.ended_cb = ended_cb;
	f->env.ended_arg = f;
	f->env.gen = gen_new(f->base, NULL, 0, rt); /* numeric upstream: no resolver */
	runtime_unref(rt);
	assert_non_null(f->env.gen);
	f->tl.env = &f->env;
	f->tl.index = 0;
	f->tl.port = f->ports[0];
	f->tl.tls = false;

	/* The proxy's server and the client. */
	f->srv = server_new(f->base, -1, 8080, &proxy_handler, &f->tl);
	assert_non_null(f->srv);
	server_set_counted(f->srv, false);
	server_set_limits(f->srv, &(struct server_limits){.max_header_bytes = 8192,
							  .client = {5, 0}});
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(server_adopt(f->srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)), 0);
	f->client = sv[1];
	assert_int_equal(fcntl(f->client, F_SETFL, O_NONBLOCK), 0);
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return setup_with(state, "10s");
}

static int
setup_short_timeout(void **state)
{
	return setup_with(state, "50ms");
}

static int
teardown(void **state)
{
	struct fake *f = *state;

	if (f->client >= 0)
		close(f->client);
	server_free(f->srv);                /* ends the transactions still running */
	assert_int_equal(f->env.in_flight, 0);
	worker_gen_unref(f->env.gen);       /* pools, runtime, config */
	for (int i = 0; i < f->nup; i++) {
		up_close(f->up[i]);
		free(f->up[i]->in);
		free(f->up[i]);
	}
	for (int i = 0; i < f->nreqs; i++)
		free(f->reqs[i]);
	event_free(f->lev);
	close(f->lfd);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
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
nothing_in_flight(struct fake *f, void *arg)
{
	return f->env.in_flight == 0;
}

static bool
upstream_saw_close(struct fake *f, void *arg)
{
	for (int i = 0; i < f->nup; i++)
		if (f->up[i]->peer_closed)
			return true;
	return false;
}

static bool
upstream_requests(struct fake *f, void *arg)
{
	return f->nreqs >= *(int *)arg;
}

/* Wait for one complete response whose body ends with <tail>. */
static void
wait_response(struct fake *f, struct inbox *in, const char *tail)
{
	struct want w = {in, tail, 1};

	assert_true(run_until(f, got_text, &w, 2000));
}

/* Remove chunked framing from <body> (the bytes after the head); returns a
 * new string, or NULL when the framing is wrong or incomplete. */
static char *
dechunk(const char *body)
{
	size_t cap = strlen(body) + 1, len = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	for (;;) {
		char *end;
		unsigned long n = strtoul(body, &end, 16);

		if (end == body || strncmp(end, "\r\n", 2) != 0)
			break;
		body = end + 2;
		if (n == 0) {
			if (strcmp(body, "\r\n") != 0)
				break;
			out[len] = '\0';
			return out;
		}
		if (strlen(body) < n + 2 || strncmp(body + n, "\r\n", 2) != 0)
			break;
		memcpy(out + len, body, n);
		len += n;
		body += n + 2;
	}
	free(out);
	return NULL;
}

static bool
is_hex32(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

/* ---- the cases ---------------------------------------------------------- */

/* A GET is forwarded with the request line as the client sent it, Host
 * kept, hop-by-hop headers (and those named in Connection) dropped, the
 * client's X-Forwarded-* / X-Real-IP replaced by ours (the client is not a
 * trusted proxy), an X-Request-ID set, and no body framing; the response
 * comes back with its hop-by-hop headers dropped and our X-Request-ID. */
static void
test_get_forwarded(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	const char *req;
	char v[256], id[64];

	f->mode = UP_SCRIPT;
	f->script = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: yes\r\n"
		    "Keep-Alive: timeout=5\r\nX-Request-ID: forged\r\n\r\nhello";
	send_all(f, "GET /docs/page?x=1 HTTP/1.1\r\nHost: app.test\r\n"
		    "Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=9\r\n"
		    "X-Secret: hush\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\n"
		    "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n"
		    "X-Real-IP: 6.6.6.6\r\nX_Auth_Email: sneaky\r\nUser-Agent: loop-test\r\n\r\n");
	wait_response(f, &in, "hello");
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));

	assert_int_equal(f->nreqs, 1);
	req = f->reqs[0];
	assert_ptr_equal(strstr(req, "GET /docs/page?x=1 HTTP/1.1\r\n"), req);
	assert_string_equal(header_value(req, "Host", v, sizeof(v)), "app.test");
	assert_int_equal(header_count(req, "Host"), 1);
	assert_string_equal(header_value(req, "User-Agent", v, sizeof(v)), "loop-test");
	/* hop-by-hop and Connection-named headers are the proxy's own business */
	assert_int_equal(header_count(req, "Connection"), 0);
	assert_int_equal(header_count(req, "Keep-Alive"), 0);
	assert_int_equal(header_count(req, "TE"), 0);
	assert_int_equal(header_count(req, "X-Secret"), 0);
	assert_int_equal(header_count(req, "X_Auth_Email"), 0);
	/* the client's forwarding headers are not believed */
	assert_null(strstr(req, "6.6.6.6"));
	assert_null(strstr(req, "evil.test"));
	assert_int_equal(header_count(req, "X-Forwarded-For"), 1);
	assert_string_equal(header_value(req, "X-Forwarded-For", v, sizeof(v)), "127.0.0.1");
	assert_string_equal(header_value(req, "X-Real-IP", v, sizeof(v)), "127.0.0.1");
	assert_string_equal(header_value(req, "X-Forwarded-Proto", v, sizeof(v)), "http");
	assert_string_equal(header_value(req, "X-Forwarded-Host", v, sizeof(v)), "app.test");
	assert_string_equal(header_value(req, "X-Forwarded-Port", v, sizeof(v)), "8080");
	assert_non_null(header_value(req, "X-Request-ID", id, sizeof(id)));
	assert_true(is_hex32(id));
	/* a GET without a body carries no framing */
	assert_int_equal(header_count(req, "Content-Length"), 0);
	assert_int_equal(header_count(req, "Transfer-Encoding"), 0);

	/* the response, streamed back */
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	assert_string_equal(header_value(in.data, "X-Up", v, sizeof(v)), "yes");
	assert_string_equal(header_value(in.data, "Content-Length", v, sizeof(v)), "5");
	assert_int_equal(header_count(in.data, "Keep-Alive"), 0);
	assert_int_equal(header_count(in.data, "X-Request-ID"), 1);
	assert_string_equal(header_value(in.data, "X-Request-ID", v, sizeof(v)), id);
	assert_string_equal(strstr(in.data, "\r\n\r\n") + 4, "hello");
	assert_false(in.eof); /* keep-alive */
	free(in.data);
}

/* A POST body (sent chunked by the client) reaches the upstream whole,
 * framed with Content-Length. */
static void
test_post_body_forwarded(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	const char *req;
	char v[64];

	f->mode = UP_ECHO;
	send_all(f, "POST /submit HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n"
		    "Content-Type: text/plain\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
	wait_response(f, &in, "\r\n\r\n/submit");
	assert_int_equal(f->nreqs, 1);
	req = f->reqs[0];
	assert_ptr_equal(strstr(req, "POST /submit HTTP/1.1\r\n"), req);
	assert_string_equal(header_value(req, "Content-Length", v, sizeof(v)), "11");
	assert_int_equal(header_count(req, "Transfer-Encoding"), 0);
	assert_string_equal(header_value(req, "Content-Type", v, sizeof(v)), "text/plain");
	assert_string_equal(strstr(req, "\r\n\r\n") + 4, "hello world");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	free(in.data);
}

/* The upstream closes without answering: 502 at once (not after the
 * response timeout, which is 10 s here), and the transaction ends. */
static void
test_upstream_closes_502(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};

	f->mode = UP_CLOSE;
	send_all(f, "GET /gone HTTP/1.1\r\nHost: app.test\r\n\r\n");
	wait_response(f, &in, "502 Bad Gateway: ");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 502 Bad Gateway\r\n"), in.data);
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
	assert_int_equal(f->nreqs, 1); /* the request did reach it, once */
	assert_int_equal(f->ended, 1);
	free(in.data);
}

/* An upstream that never answers: 504 once its response timeout (50 ms)
 * has passed, and the upstream connection is closed. */
static void
test_upstream_silent_504(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};

	f->mode = UP_HOLD;
	send_all(f, "GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n");
	wait_response(f, &in, "504 Gateway Timeout: ");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 504 Gateway Timeout\r\n"), in.data);
	assert_int_equal(f->nreqs, 1);
	assert_true(run_until(f, upstream_saw_close, NULL, 2000));
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
	free(in.data);
}

/* The client hangs up while the response is streaming: the upstream
 * exchange is cancelled (the fake upstream sees its connection closed) and
 * the transaction ends. */
static void
test_client_abort_cancels_upstream(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};

	f->mode = UP_SCRIPT;
	f->script = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial";
	send_all(f, "GET /stream HTTP/1.1\r\nHost: app.test\r\n\r\n");
	wait_response(f, &in, "partial");
	run_until(f, NULL, NULL, 5);
	assert_int_equal(f->env.in_flight, 1);
	assert_false(upstream_saw_close(f, NULL));
	close(f->client);
	f->client = -1;
	assert_true(run_until(f, upstream_saw_close, NULL, 2000));
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
	assert_int_equal(server_connections(f->srv), 0);
	free(in.data);
}

/* Interim responses from the upstream (100, 103) are not passed on; the
 * client's own "Expect: 100-continue" is answered by the proxy once, and
 * Expect is not forwarded. */
static void
test_upstream_1xx(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want cont = {&in, "HTTP/1.1 100 Continue\r\n\r\n", 1};
	const char *req;
	char v[64];

	f->mode = UP_SCRIPT;
	f->script = "HTTP/1.1 100 Continue\r\n\r\n"
		    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
		    "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone";
	send_all(f, "POST /make HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\n"
		    "Content-Length: 3\r\n\r\n");
	assert_true(run_until(f, got_text, &cont, 2000));
	assert_int_equal(f->nreqs, 0);
	send_all(f, "abc");
	wait_response(f, &in, "\r\n\r\ndone");
	assert_int_equal(count(in.data, "100 Continue"), 1);
	assert_null(strstr(in.data, "Early Hints"));
	assert_null(strstr(in.data, "Link:"));
	req = strstr(in.data, "HTTP/1.1 201 Created\r\n");
	assert_non_null(req);
	assert_string_equal(header_value(req, "Content-Length", v, sizeof(v)), "4");
	assert_int_equal(f->nreqs, 1);
	assert_int_equal(header_count(f->reqs[0], "Expect"), 0);
	assert_string_equal(strstr(f->reqs[0], "\r\n\r\n") + 4, "abc");
	free(in.data);
}

/* Three pipelined requests: forwarded one after the other (on one kept-alive
 * upstream connection) and answered in order. */
static void
test_pipelined_in_order(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	struct want w = {&in, "X-Upstream: echo", 3};
	const char *a, *b, *c;
	int three = 3;

	f->mode = UP_ECHO;
	send_all(f, "GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n"
		    "GET /b HTTP/1.1\r\nHost: app.test\r\n\r\n"
		    "GET /c HTTP/1.1\r\nHost: app.test\r\n\r\n");
	assert_true(run_until(f, got_text, &w, 2000));
	assert_true(run_until(f, upstream_requests, &three, 2000));
	wait_response(f, &in, "\r\n\r\n/c");
	a = strstr(in.data, "\r\n\r\n/a");
	b = strstr(in.data, "\r\n\r\n/b");
	c = strstr(in.data, "\r\n\r\n/c");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(a < b && b < c);
	assert_int_equal(count(in.data, "HTTP/1.1 200 OK\r\n"), 3);
	assert_int_equal(f->nreqs, 3);
	assert_ptr_equal(strstr(f->reqs[0], "GET /a "), f->reqs[0]);
	assert_ptr_equal(strstr(f->reqs[1], "GET /b "), f->reqs[1]);
	assert_ptr_equal(strstr(f->reqs[2], "GET /c "), f->reqs[2]);
	assert_int_equal(f->nup, 1); /* the upstream connection was kept alive */
	free(in.data);
}

/* A response without a length (it ends when the upstream closes) goes to an
 * HTTP/1.1 client chunked, and the client connection stays open. */
static void
test_unframed_response_chunked(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	char v[64];
	char *body;

	f->mode = UP_SCRIPT_CLOSE;
	f->script = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length here";
	send_all(f, "GET /unframed HTTP/1.1\r\nHost: app.test\r\n\r\n");
	wait_response(f, &in, "0\r\n\r\n");
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	assert_string_equal(header_value(in.data, "Transfer-Encoding", v, sizeof(v)), "chunked");
	assert_int_equal(header_count(in.data, "Content-Length"), 0);
	body = dechunk(strstr(in.data, "\r\n\r\n") + 4);
	assert_non_null(body);
	assert_string_equal(body, "no length here");
	free(body);
	inbox_read(f, &in);
	assert_false(in.eof);
	free(in.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_body_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_closes_502, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_silent_504, setup_short_timeout,
						teardown),
		cmocka_unit_test_setup_teardown(test_client_abort_cancels_upstream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_1xx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unframed_response_chunked, setup, teardown),
	};
	char err[256];
	int rc;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_ERROR); /* the 502/504 cases log warnings */
	if (access_log_open("off", err, sizeof(err)) < 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	metrics_shutdown();
	return rc;
}

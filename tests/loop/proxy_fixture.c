/* proxy_fixture: the proxy and a fake upstream on one loop; see proxy_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "config/config.h"
#include "core/runtime.h"
#include "http/conn.h"
#include "http/h1.h"
#include "proxy/proxy.h"

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
const char *
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
int
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
		assert_true(f->nreqs < FIXTURE_MAX_REQS);
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
		assert_true(f->nup < FIXTURE_MAX_UP);
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

struct fake *
fixture_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);

	assert_non_null(f);
	f->client = -1;
	f->base = event_base_new();
	assert_non_null(f->base);
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
	return f;
}

void
fixture_start(struct fake *f, const char *json)
{
	char err[4096];
	struct config *cfg = config_load_string(json, "loop.json", err, sizeof(err), no_env);

	if (cfg == NULL)
		fail_msg("config did not load:\n%s", err);
	fixture_start_config(f, cfg);
	config_unref(cfg);
}

void
fixture_start_config(struct fake *f, struct config *cfg)
{
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	struct runtime *rt;
	int sv[2];

	/* The runtime, generation and environment, as worker.c builds them. */
	rt = runtime_new(config_ref(cfg), 1);
	assert_non_null(rt);
	f->env.base = f->base;
	f->env.rng[0] = 0x9E3779B97F4A7C15ull;
	f->env.rng[1] = 0xD1B54A32D192ED03ull;
	snprintf(f->ports[0], sizeof(f->ports[0]), "8080");
	f->env.ports = f->ports;
	f->env.nports = 1;
	f->env.ended_cb = ended_cb;
	f->env.ended_arg = f;
	f->env.gen = gen_new(f->base, NULL, 0, rt); /* numeric upstreams: no resolver */
	runtime_unref(rt);
	assert_non_null(f->env.gen);
	f->tl.env = &f->env;
	f->tl.index = 0;
	f->tl.port = f->ports[0];
	f->tl.tls = false;

	/* The proxy's server and the client. */
	f->srv = server_new(f->base, -1, 8080, h1_codecs, &proxy_handler, &f->tl);
	assert_non_null(f->srv);
	server_set_counted(f->srv, false);
	server_set_limits(f->srv, &(struct server_limits){.max_header_bytes = 16384,
							  .client = {5, 0}});
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(server_adopt(f->srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)), 0);
	f->client = sv[1];
	assert_int_equal(fcntl(f->client, F_SETFL, O_NONBLOCK), 0);
}

void
fixture_free(struct fake *f)
{
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
}

void
fixture_quiet(void)
{
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_ERROR); /* upstream failures log warnings */
	assert_int_equal(access_log_open("off", err, sizeof(err)), 0);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Run the loop until <done> (or for <ms> when <done> is NULL). */
bool
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

void
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

void
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

size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

bool
got_text(struct fake *f, void *arg)
{
	struct want *w = arg;

	inbox_read(f, w->in);
	return w->in->data && count(w->in->data, w->text) >= w->times;
}

bool
nothing_in_flight(struct fake *f, void *arg)
{
	return f->env.in_flight == 0;
}

bool
upstream_saw_close(struct fake *f, void *arg)
{
	for (int i = 0; i < f->nup; i++)
		if (f->up[i]->peer_closed)
			return true;
	return false;
}

bool
upstream_requests(struct fake *f, void *arg)
{
	return f->nreqs >= *(int *)arg;
}

/* Wait for one complete response whose body ends with <tail>. */
void
wait_response(struct fake *f, struct inbox *in, const char *tail)
{
	struct want w = {in, tail, 1};

	assert_true(run_until(f, got_text, &w, 2000));
}

/* Remove chunked framing from <body> (the bytes after the head); returns a
 * new string, or NULL when the framing is wrong or incomplete. */
char *
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

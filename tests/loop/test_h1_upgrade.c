/*
 * In-process tests of the HTTP/1 hand-over of a tunnel request (h1.c,
 * request.c, conn.c): a request marked with server_request_on_tunnel and
 * answered 101 is finished (the handler logs it) before its connection goes
 * to the tunnel's owner, with the bytes the client sent after it; answered
 * otherwise, the connection stays HTTP and the owner hears NULL once.  The
 * server end of a socketpair() is adopted by a server on one event_base; the
 * test plays the client.
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/conn.h"
#include "http/h1.h"
#include "http/request.h"
#include "http/tunnel.h"

struct up {
	struct event_base *base;
	struct server *srv;
	int client;
	char log[512];             /* "event;event;..." in order */
	int status;                /* what /ws is answered with */
	bool later;                /* answer from a later event (as the proxy does) */
	bool with_fn;              /* name a taker */
	bool hold;                 /* never answer /ws */
	struct server_request *held;
	struct event *ev;
	int taken_fd;              /* the detached socket */
	char early[64];
	int nulls;                 /* fn(NULL) calls */
};

static void
note(struct up *u, const char *what)
{
	strncat(u->log, what, sizeof(u->log) - strlen(u->log) - 2);
	strcat(u->log, ";");
}

static void
take(struct server_tunnel_client *client, void *arg)
{
	struct up *u = arg;

	if (client == NULL) {
		u->nulls++;
		note(u, "taker(NULL)");
		return;
	}
	note(u, "taker");
	assert_null(client->end.ssl);
	u->taken_fd = client->end.fd;
	evbuffer_remove(client->early, u->early, sizeof(u->early) - 1);
	evbuffer_free(client->early);
}

static void
answer(struct up *u, struct server_request *req)
{
	struct evkeyvalq h;

	TAILQ_INIT(&h);
	if (u->status == 101)
		evhttp_add_header(&h, "Upgrade", "websocket");
	if (u->with_fn)
		server_request_on_tunnel(req, take, u);
	else
		server_request_set_tunnel(req, true);
	server_reply(req, u->status, &h, NULL, false);
	evhttp_clear_headers(&h);
	note(u, "logged");
}

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up *u = arg;

	(void)fd;
	(void)what;
	if (u->held)
		answer(u, u->held);
	u->held = NULL;
}

static enum server_verdict
on_head(struct server_request *req, void *arg)
{
	(void)arg;
	server_request_set_max_body(req, 0);
	return SERVER_READ_BODY;
}

static void
on_request(struct server_request *req, void *arg)
{
	struct up *u = arg;
	struct evbuffer *b;

	if (strcmp(server_request_target(req), "/ws") == 0) {
		note(u, "request /ws");
		if (u->hold) {
			u->held = req;
		} else if (u->later) {
			u->held = req;
			event_active(u->ev, EV_TIMEOUT, 1);
		} else {
			answer(u, req);
		}
		return;
	}
	note(u, server_request_target(req));
	b = evbuffer_new();
	evbuffer_add(b, "plain", 5);
	server_reply(req, 200, NULL, b, false);
	evbuffer_free(b);
}

static void
on_abort(struct server_request *req, int status, void *arg)
{
	struct up *u = arg;

	(void)status;
	note(u, "abort");
	if (u->held == req)
		u->held = NULL;
}

static void
on_drained(struct server_request *req, void *arg)
{
	(void)req;
	(void)arg;
}

static const struct server_handler handler = {
	.on_head = on_head, .on_request = on_request, .on_abort = on_abort, .on_drained = on_drained,
};

static int
setup(void **state)
{
	struct up *u = calloc(1, sizeof(*u));
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	int sv[2];

	assert_non_null(u);
	u->base = event_base_new();
	u->srv = server_new(u->base, -1, 8080, h1_codecs, &handler, u);
	assert_non_null(u->srv);
	server_set_counted(u->srv, false);
	u->ev = event_new(u->base, -1, 0, later_cb, u);
	u->taken_fd = -1;
	u->status = 101;
	u->with_fn = true;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(server_adopt(u->srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)), 0);
	u->client = sv[1];
	fcntl(u->client, F_SETFL, O_NONBLOCK);
	*state = u;
	return 0;
}

static int
teardown(void **state)
{
	struct up *u = *state;

	if (u->client >= 0)
		close(u->client);
	if (u->taken_fd >= 0)
		close(u->taken_fd);
	server_free(u->srv);
	event_free(u->ev);
	event_base_free(u->base);
	free(u);
	return 0;
}

/* Turn the loop for up to <ms>, reading what the client gets into <got>,
 * until <text> is in it (NULL: until the server closes). */
static bool
pump(struct up *u, char *got, size_t cap, const char *text, int ms)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		size_t len = strlen(got);
		ssize_t n;

		event_base_loop(u->base, EVLOOP_NONBLOCK);
		n = read(u->client, got + len, cap - len - 1);
		if (n > 0)
			got[len + (size_t)n] = '\0';
		if (text ? strstr(got, text) != NULL : n == 0)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > ms)
			return false;
		usleep(200);
	}
}

#define UPGRADE "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

static void
check_handover(struct up *u)
{
	char got[4096] = "";

	assert_int_equal(write(u->client, UPGRADE "EARLY", strlen(UPGRADE) + 5),
			 (ssize_t)strlen(UPGRADE) + 5);
	assert_true(pump(u, got, sizeof(got), "\r\n\r\n", 2000));
	for (int i = 0; i < 50 && u->taken_fd < 0; i++)
		pump(u, got, sizeof(got), "never", 2);
	assert_non_null(strstr(got, "HTTP/1.1 101 Switching Protocols\r\n"));
	assert_non_null(strstr(got, "Upgrade: websocket\r\n"));
	assert_non_null(strstr(got, "Connection: Upgrade\r\n\r\n"));
	assert_null(strstr(got, "Content-Length"));
	/* finished and logged first, then handed over, with the early bytes */
	assert_string_equal(u->log, "request /ws;logged;taker;");
	assert_string_equal(u->early, "EARLY");
	assert_int_equal(server_connections(u->srv), 0);
	/* the socket is the tunnel's now: bytes reach the client unframed */
	assert_int_equal(write(u->taken_fd, "frame", 5), 5);
	got[0] = '\0';
	assert_true(pump(u, got, sizeof(got), "frame", 2000));
	assert_string_equal(got, "frame");
}

/* 101 answered inside on_request. */
static void
test_handover_now(void **state)
{
	check_handover(*state);
}

/* 101 answered from a later event, as the proxy does once the upstream
 * switched. */
static void
test_handover_later(void **state)
{
	struct up *u = *state;

	u->later = true;
	check_handover(u);
}

/* Answered 426: stays HTTP, the next request on the connection is parsed
 * and answered, and the taker hears NULL once. */
static void
test_refused_stays_http(void **state)
{
	struct up *u = *state;
	char got[4096] = "";
	const char *req = UPGRADE "GET /next HTTP/1.1\r\nHost: t\r\n\r\n";

	u->status = 426;
	assert_int_equal(write(u->client, req, strlen(req)), (ssize_t)strlen(req));
	assert_true(pump(u, got, sizeof(got), "plain", 2000));
	assert_non_null(strstr(got, "HTTP/1.1 426 Upgrade Required\r\n"));
	assert_null(strstr(got, "Connection: Upgrade"));
	assert_string_equal(u->log, "request /ws;logged;taker(NULL);/next;");
	assert_int_equal(u->nulls, 1);
	assert_int_equal(server_connections(u->srv), 1);
}

/* The client leaves before the 101: the handler is told, the taker hears
 * NULL once. */
static void
test_client_gone_first(void **state)
{
	struct up *u = *state;
	char got[256] = "";

	u->hold = true;
	assert_int_equal(write(u->client, UPGRADE, strlen(UPGRADE)), (ssize_t)strlen(UPGRADE));
	pump(u, got, sizeof(got), "never", 50);
	/* the request is held: name the taker as the proxy would */
	assert_non_null(u->held);
	server_request_on_tunnel(u->held, take, u);
	close(u->client);
	u->client = -1;
	for (int i = 0; i < 100 && server_connections(u->srv) > 0; i++) {
		event_base_loop(u->base, EVLOOP_NONBLOCK);
		usleep(200);
	}
	assert_int_equal(server_connections(u->srv), 0);
	assert_int_equal(u->nulls, 1);
	assert_string_equal(u->log, "request /ws;abort;taker(NULL);");
}

/* A tunnel answered 101 with no taker: the connection closes after it. */
static void
test_no_taker_closes(void **state)
{
	struct up *u = *state;
	char got[4096] = "";

	u->with_fn = false;
	assert_int_equal(write(u->client, UPGRADE "GET /next HTTP/1.1\r\n\r\n",
			       strlen(UPGRADE) + 22),
			 (ssize_t)strlen(UPGRADE) + 22);
	assert_true(pump(u, got, sizeof(got), NULL, 2000));
	assert_non_null(strstr(got, "HTTP/1.1 101 Switching Protocols\r\n"));
	assert_null(strstr(got, "plain"));
	assert_string_equal(u->log, "request /ws;logged;");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handover_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_stays_http, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_taker_closes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

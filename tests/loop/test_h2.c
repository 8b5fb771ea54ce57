/*
 * In-process tests of the HTTP/2 codec (src/http/h2.c): a server speaking
 * only h2 adopts one end of a socketpair(), an nghttp2 client session in
 * the test plays the browser (or the attacker) on the other, and a fake
 * handler records what it is told.  Each case runs in milliseconds.
 *
 * Cases: streams mapped onto requests (Host from :authority, cookie crumbs
 * joined, the protocol); a refusal in on_head; 413 from content-length
 * before any DATA; 431 past the header limit and GOAWAY ENHANCE_YOUR_CALM
 * far past it; Rapid Reset in one write (the handler sees nothing) and
 * paced (dispatched streams cancelled: on_abort, then GOAWAY); a stream
 * whose client gives no window pauses its producer while another stream is
 * answered; drain (shutdown notice, final GOAWAY, the open stream finishes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/conn.h"
#include "http/h2.h"
#include "http/request.h"

#define MAX_STREAMS 512
#define BIG (1024 * 1024)

enum mode {
	MODE_ECHO,   /* 200, body: target, then the Host and Cookie it saw */
	MODE_HOLD,   /* never answer */
	MODE_REFUSE, /* 403 in on_head */
	MODE_BIG,    /* target "/big": BIG bytes with back-pressure; others echo */
};

struct fake {
	struct event_base *base;
	struct server *srv;
	int client;
	enum mode mode;
	nghttp2_session *ng; /* the client */
	/* What the handler was told. */
	int heads, requests, aborts, drained, over_limit;
	int abort_status;
	struct server_request *held;
	size_t big_sent;
	enum server_proto proto;
	char seen[256];
	/* What the client got. */
	int status[MAX_STREAMS];
	char body[MAX_STREAMS][128];
	size_t body_len[MAX_STREAMS];
	bool closed[MAX_STREAMS];
	uint32_t rst[MAX_STREAMS];
	int goaways;
	uint32_t goaway_error;
	int32_t goaway_last;
	bool eof;
};

/* ---- the fake handler ---------------------------------------------------- */

static void
big_produce(struct fake *f)
{
	struct evbuffer *b = evbuffer_new();
	char chunk[16384];

	memset(chunk, 'b', sizeof(chunk));
	while (f->held && f->big_sent < BIG) {
		evbuffer_add(b, chunk, sizeof(chunk));
		f->big_sent += sizeof(chunk);
		if (server_reply_body(f->held, b)) {
			f->over_limit++;
			break;
		}
	}
	if (f->held && f->big_sent == BIG) {
		server_reply_end(f->held);
		f->held = NULL;
	}
	evbuffer_free(b);
}

static enum server_verdict
on_head(struct server_request *req, void *arg)
{
	struct fake *f = arg;

	f->heads++;
	f->proto = server_request_proto(req);
	if (f->mode == MODE_REFUSE) {
		server_reply(req, 403, NULL, NULL, false);
		return SERVER_REPLIED;
	}
	server_request_set_max_body(req, 1000);
	return SERVER_READ_BODY;
}

static void
on_request(struct server_request *req, void *arg)
{
	struct fake *f = arg;
	struct evkeyvalq *h = server_request_headers(req);
	const char *cookie = evhttp_find_header(h, "Cookie");
	struct evbuffer *b;

	f->requests++;
	if (f->mode == MODE_HOLD) {
		f->held = req;
		return;
	}
	if (f->mode == MODE_BIG && strcmp(server_request_target(req), "/big") == 0) {
		struct evkeyvalq out;

		TAILQ_INIT(&out);
		evhttp_add_header(&out, "Content-Length", "1048576");
		server_reply_start(req, 200, &out);
		evhttp_clear_headers(&out);
		f->held = req;
		big_produce(f);
		return;
	}
	snprintf(f->seen, sizeof(f->seen), "%s|%s|%s", server_request_target(req),
		 evhttp_find_header(h, "Host"), cookie ? cookie : "-");
	b = evbuffer_new();
	evbuffer_add_printf(b, "%s", server_request_target(req));
	server_reply(req, 200, NULL, b, false);
	evbuffer_free(b);
}

static void
on_abort(struct server_request *req, int status, void *arg)
{
	struct fake *f = arg;

	f->aborts++;
	f->abort_status = status;
	if (f->held == req)
		f->held = NULL;
}

static void
on_drained(struct server_request *req, void *arg)
{
	struct fake *f = arg;

	(void)req;
	f->drained++;
	big_produce(f);
}

static const struct server_handler fake_handler = {
	.on_head = on_head,
	.on_request = on_request,
	.on_abort = on_abort,
	.on_drained = on_drained,
};

/* ---- the client ---------------------------------------------------------- */

static int
c_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
	 const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	struct fake *f = user;
	int32_t id = frame->hd.stream_id;

	(void)ng;
	(void)flags;
	(void)valuelen;
	if (id > 0 && id < MAX_STREAMS && namelen == 7 && memcmp(name, ":status", 7) == 0 &&
	    f->status[id] < 200)
		f->status[id] = atoi((const char *)value);
	return 0;
}

static int
c_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
       void *user)
{
	struct fake *f = user;

	(void)ng;
	(void)flags;
	if (id > 0 && id < MAX_STREAMS) {
		size_t room = sizeof(f->body[0]) - 1 - f->body_len[id];
		size_t n = len < room ? len : room;

		memcpy(f->body[id] + f->body_len[id], data, n);
		f->body_len[id] += n;
	}
	return 0;
}

static int
c_close(nghttp2_session *ng, int32_t id, uint32_t error, void *user)
{
	struct fake *f = user;

	(void)ng;
	if (id > 0 && id < MAX_STREAMS) {
		f->closed[id] = true;
		f->rst[id] = error;
	}
	return 0;
}

static int
c_frame(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
	struct fake *f = user;

	(void)ng;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		f->goaways++;
		f->goaway_error = frame->goaway.error_code;
		f->goaway_last = frame->goaway.last_stream_id;
	}
	return 0;
}

/* A client session with <window> as its streams' receive window. */
static void
client_start(struct fake *f, uint32_t window)
{
	nghttp2_session_callbacks *cb;
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};

	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
	assert_int_equal(nghttp2_session_client_new(&f->ng, cb, f), 0);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(f->ng, NGHTTP2_FLAG_NONE, iv, 1), 0);
}

/* Write what the client session has queued. */
static void
client_flush(struct fake *f)
{
	const uint8_t *data;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(f->ng, &data)) > 0) {
		ssize_t off = 0;

		while (off < n) {
			ssize_t w = write(f->client, data + off, (size_t)(n - off));

			if (w > 0)
				off += w;
			else
				event_base_loop(f->base, EVLOOP_NONBLOCK); /* let the server read */
		}
	}
}

/* Write raw bytes (frames the client session would refuse to make). */
static void
client_raw(struct fake *f, const uint8_t *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = write(f->client, data + off, len - off);

		if (w > 0)
			off += (size_t)w;
		else
			event_base_loop(f->base, EVLOOP_NONBLOCK);
	}
}

static void
client_read(struct fake *f)
{
	uint8_t buf[65536];
	ssize_t n;

	while ((n = read(f->client, buf, sizeof(buf))) > 0)
		nghttp2_session_mem_recv(f->ng, buf, (size_t)n);
	if (n == 0)
		f->eof = true;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Pump both ends until <done> holds or <ms> pass. */
static bool
pump(struct fake *f, bool (*done)(struct fake *f, int arg), int arg, double ms)
{
	double end = now_ms() + ms;

	for (;;) {
		client_flush(f);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		client_read(f);
		if (done && done(f, arg))
			return true;
		if (now_ms() > end)
			return done == NULL;
		usleep(200);
	}
}

static int32_t
get(struct fake *f, const char *path, const nghttp2_nv *extra, size_t nextra)
{
	nghttp2_nv nva[16] = {
		{(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
		{(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
		{(uint8_t *)":authority", (uint8_t *)"app.test", 10, 8, 0},
		{(uint8_t *)":path", (uint8_t *)(uintptr_t)path, 5, strlen(path), 0},
	};

	assert_true(nextra <= 12);
	if (nextra > 0)
		memcpy(nva + 4, extra, nextra * sizeof(*extra));
	return nghttp2_submit_request(f->ng, NULL, nva, 4 + nextra, NULL, NULL);
}

static bool
stream_done(struct fake *f, int id)
{
	return f->closed[id];
}

static bool
got_goaway(struct fake *f, int n)
{
	return f->goaways >= n;
}

static bool
gone(struct fake *f, int unused)
{
	(void)unused;
	return f->eof;
}

/* ---- harness ----------------------------------------------------------- */

static const struct conn_codec *const only_h2[] = {&h2_conn_codec, NULL};

static int
setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	int sv[2];
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	struct server_limits limits = {.max_header_bytes = 8192, .client = {2, 0}};

	assert_non_null(f);
	f->base = event_base_new();
	f->srv = server_new(f->base, -1, 8443, only_h2, &fake_handler, f);
	assert_non_null(f->srv);
	server_set_counted(f->srv, false);
	server_set_limits(f->srv, &limits);
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

	close(f->client);
	server_free(f->srv);
	event_base_free(f->base);
	nghttp2_session_del(f->ng);
	free(f);
	return 0;
}

/* ---- cases --------------------------------------------------------------- */

static void
test_streams_map_onto_requests(void **state)
{
	struct fake *f = *state;
	nghttp2_nv cookies[] = {{(uint8_t *)"cookie", (uint8_t *)"a=1", 6, 3, 0},
				{(uint8_t *)"cookie", (uint8_t *)"b=2", 6, 3, 0}};
	int32_t one, two;

	client_start(f, 65535);
	one = get(f, "/one?x=1", cookies, 2);
	two = get(f, "/two", NULL, 0);
	assert_true(pump(f, stream_done, two, 2000));
	assert_true(pump(f, stream_done, one, 2000));
	assert_int_equal(f->status[one], 200);
	assert_int_equal(f->status[two], 200);
	assert_string_equal(f->body[one], "/one?x=1");
	assert_string_equal(f->body[two], "/two");
	assert_int_equal(f->requests, 2);
	assert_int_equal(f->proto, SERVER_PROTO_HTTP2);
	assert_string_equal(f->seen, "/two|app.test|-");
	assert_int_equal(server_connections(f->srv), 1); /* both on one connection */
}

static void
test_cookie_crumbs_joined(void **state)
{
	struct fake *f = *state;
	nghttp2_nv cookies[] = {{(uint8_t *)"cookie", (uint8_t *)"a=1", 6, 3, 0},
				{(uint8_t *)"cookie", (uint8_t *)"b=2", 6, 3, 0}};
	int32_t id;

	client_start(f, 65535);
	id = get(f, "/c", cookies, 2);
	assert_true(pump(f, stream_done, id, 2000));
	assert_string_equal(f->seen, "/c|app.test|a=1; b=2");
}

static void
test_refusal_and_malformed(void **state)
{
	struct fake *f = *state;
	nghttp2_nv other_host[] = {{(uint8_t *)"host", (uint8_t *)"evil.test", 4, 9, 0}};
	nghttp2_nv userinfo[] = {{(uint8_t *)":authority", (uint8_t *)"u@app.test", 10, 10, 0}};
	nghttp2_nv post[] = {{(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
			     {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
			     {(uint8_t *)":authority", (uint8_t *)"app.test", 10, 8, 0},
			     {(uint8_t *)":path", (uint8_t *)"/up", 5, 3, 0},
			     {(uint8_t *)"content-length", (uint8_t *)"5000", 14, 4, 0}};
	int32_t a, b, c;

	client_start(f, 65535);
	a = get(f, "/a", other_host, 1);
	/* A second :authority would be refused by nghttp2; build the request by
	 * hand with the userinfo one instead. */
	{
		nghttp2_nv nva[] = {{(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
				    {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
				    userinfo[0],
				    {(uint8_t *)":path", (uint8_t *)"/b", 5, 2, 0}};

		b = nghttp2_submit_request(f->ng, NULL, nva, 4, NULL, NULL);
	}
	/* 5000 bytes announced, 1000 allowed: 413 before any DATA is read. */
	c = nghttp2_submit_headers(f->ng, NGHTTP2_FLAG_NONE, -1, NULL, post, 5, NULL);
	assert_true(pump(f, stream_done, c, 2000));
	assert_true(pump(f, stream_done, a, 2000));
	assert_true(pump(f, stream_done, b, 2000));
	assert_int_equal(f->status[a], 400);
	assert_int_equal(f->status[b], 400);
	assert_int_equal(f->status[c], 413);
	assert_int_equal(f->requests, 0);
	assert_int_equal(f->heads, 1); /* only the POST reached on_head */
	assert_int_equal(f->abort_status, 413);
}

static void
test_refused_in_on_head(void **state)
{
	struct fake *f = *state;
	int32_t id;

	f->mode = MODE_REFUSE;
	client_start(f, 65535);
	id = get(f, "/x", NULL, 0);
	assert_true(pump(f, stream_done, id, 2000));
	assert_int_equal(f->status[id], 403);
	assert_int_equal(f->requests, 0);
}

static void
test_header_limit_and_bomb(void **state)
{
	struct fake *f = *state;
	static char big[6000];
	nghttp2_nv one[] = {{(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof(big), 0},
			    {(uint8_t *)"x-big2", (uint8_t *)big, 6, sizeof(big), 0}};
	nghttp2_nv many[10];
	int32_t id;

	memset(big, 'a', sizeof(big));
	client_start(f, 65535);
	id = get(f, "/h", one, 2); /* 12 KB > 8 KiB */
	assert_true(pump(f, stream_done, id, 2000));
	assert_int_equal(f->status[id], 431);
	assert_int_equal(f->heads, 0);
	/* The same 6 KB value ten times: 60 KB decoded, over four times the
	 * limit: GOAWAY ENHANCE_YOUR_CALM. */
	for (size_t i = 0; i < 10; i++)
		many[i] = one[0];
	get(f, "/bomb", many, 10);
	assert_true(pump(f, got_goaway, 1, 2000));
	assert_int_equal(f->goaway_error, NGHTTP2_ENHANCE_YOUR_CALM);
	assert_int_equal(f->heads, 0);
}

/* HEADERS + RST_STREAM for 300 streams in one write: nothing reaches the
 * handler, and the connection ends with ENHANCE_YOUR_CALM. */
static void
test_rapid_reset_in_one_write(void **state)
{
	struct fake *f = *state;

	/* GET https://app.test/ in HPACK without the dynamic table. */
	static const uint8_t block[] = {0x82, 0x87, 0x84, 0x01, 0x08, 'a', 'p', 'p', '.', 't', 'e', 's', 't'};
	uint8_t *buf = malloc(300 * (9 + sizeof(block) + 13)), *p = buf;

	client_start(f, 65535);
	client_flush(f); /* preface and SETTINGS */
	for (uint32_t i = 0; i < 300; i++) {
		uint32_t id = 1 + 2 * i;
		uint8_t hd[9] = {0, 0, sizeof(block), 0x1, 0x5, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
				 (uint8_t)(id >> 8), (uint8_t)id};
		uint8_t rst[13] = {0, 0, 4, 0x3, 0, hd[5], hd[6], hd[7], hd[8], 0, 0, 0, 0x8};

		memcpy(p, hd, 9);
		memcpy(p + 9, block, sizeof(block));
		memcpy(p + 9 + sizeof(block), rst, 13);
		p += 9 + sizeof(block) + 13;
	}
	client_raw(f, buf, (size_t)(p - buf));
	free(buf);
	assert_true(pump(f, got_goaway, 1, 3000));
	assert_int_equal(f->goaway_error, NGHTTP2_ENHANCE_YOUR_CALM);
	assert_int_equal(f->heads, 0);
	assert_int_equal(f->requests, 0);
}

/* Streams the handler already works on, cancelled one batch after another:
 * each is aborted, and past the bound the connection ends. */
static void
test_rapid_reset_paced(void **state)
{
	struct fake *f = *state;
	int sent = 0;

	f->mode = MODE_HOLD;
	client_start(f, 65535);
	while (f->goaways == 0 && sent < 1000) {
		int32_t ids[20];

		for (int i = 0; i < 20; i++)
			ids[i] = get(f, "/p", NULL, 0);
		pump(f, NULL, 0, 3); /* dispatched */
		for (int i = 0; i < 20; i++)
			nghttp2_submit_rst_stream(f->ng, NGHTTP2_FLAG_NONE, ids[i], NGHTTP2_CANCEL);
		pump(f, NULL, 0, 3);
		sent += 20;
	}
	assert_true(pump(f, got_goaway, 1, 2000));
	assert_int_equal(f->goaway_error, NGHTTP2_ENHANCE_YOUR_CALM);
	assert_true(f->aborts > 100);
	assert_true(f->aborts <= 140); /* about the bound, not all that were sent */
	assert_int_equal(f->abort_status, 499);
}

/* Resets the client provokes (WINDOW_UPDATE overflowing a stream's window):
 * counted, then ENHANCE_YOUR_CALM (MadeYouReset). */
static void
test_provoked_resets(void **state)
{
	struct fake *f = *state;
	uint8_t frame[13] = {0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff};

	f->mode = MODE_HOLD;
	client_start(f, 65535);
	for (int i = 0; i < 150 && f->goaways == 0; i++) {
		int32_t id = get(f, "/m", NULL, 0);

		client_flush(f);
		frame[5] = (uint8_t)(id >> 24);
		frame[6] = (uint8_t)(id >> 16);
		frame[7] = (uint8_t)(id >> 8);
		frame[8] = (uint8_t)id;
		client_raw(f, frame, sizeof(frame));
		pump(f, NULL, 0, 1);
	}
	assert_true(pump(f, got_goaway, 1, 2000));
	assert_int_equal(f->goaway_error, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* A stream whose client opens no window: its producer is paused (bounded
 * memory), while another stream on the connection is answered. */
static void
test_slow_stream_does_not_stall_others(void **state)
{
	struct fake *f = *state;
	int32_t big, small;

	f->mode = MODE_BIG;
	client_start(f, 0); /* no stream window at all */
	big = get(f, "/big", NULL, 0);
	pump(f, NULL, 0, 50);
	assert_true(f->over_limit > 0);
	assert_true(f->big_sent < BIG);
	/* Grant the small stream a window only. */
	small = get(f, "/small", NULL, 0);
	client_flush(f);
	pump(f, NULL, 0, 20);
	nghttp2_submit_window_update(f->ng, NGHTTP2_FLAG_NONE, small, 65535);
	assert_true(pump(f, stream_done, small, 2000));
	assert_string_equal(f->body[small], "/small");
	assert_false(f->closed[big]);
	/* The client timeout (2 s here) ends the stalled stream. */
	assert_true(pump(f, stream_done, big, 4000));
	assert_int_equal(f->rst[big], NGHTTP2_CANCEL);
}

static void
test_drain_goaway_then_finish(void **state)
{
	struct fake *f = *state;
	int32_t id;

	f->mode = MODE_HOLD;
	client_start(f, 65535);
	id = get(f, "/held", NULL, 0);
	pump(f, NULL, 0, 20);
	assert_non_null(f->held);
	server_drain(f->srv);
	assert_true(pump(f, got_goaway, 1, 1000)); /* the shutdown notice */
	assert_int_equal(f->goaway_last, (1U << 31) - 1);
	assert_true(pump(f, got_goaway, 2, 3000)); /* the final one */
	assert_int_equal(f->goaway_last, id);
	assert_int_equal(f->goaway_error, NGHTTP2_NO_ERROR);
	assert_false(f->eof);
	{
		struct evbuffer *b = evbuffer_new();

		evbuffer_add(b, "done", 4);
		server_reply(f->held, 200, NULL, b, false);
		evbuffer_free(b);
		f->held = NULL;
	}
	assert_true(pump(f, stream_done, id, 2000));
	assert_string_equal(f->body[id], "done");
	assert_true(pump(f, gone, 0, 2000)); /* then the connection closes */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_streams_map_onto_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cookie_crumbs_joined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_in_on_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_limit_and_bomb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rapid_reset_in_one_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rapid_reset_paced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provoked_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_stream_does_not_stall_others, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drain_goaway_then_finish, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

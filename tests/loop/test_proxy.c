/*
 * In-process tests of the proxy (src/proxy/proxy.c with upstream.c and
 * router.c): one event_base; a fake upstream listening on 127.0.0.1 port 0
 * and served by the test on that loop (accept, read requests, answer
 * scripted bytes); a server whose handler is the proxy, adopting the server
 * end of a socketpair(); the test playing the client on the other end.  The
 * config comes from the real loader (config_load_string) and the worker's
 * generation is built as worker.c builds it (proxy_fixture.h).  Each case
 * runs in milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/metrics.h"
#include "http/conn.h"
#include "proxy_fixture.h"

/* ---- the harness (proxy_fixture.h) ------------------------------------- */

static struct fake *
start(const char *response_timeout)
{
	struct fake *f = fixture_new();
	char json[1024];

	snprintf(json, sizeof(json),
		 "{\"listeners\": [{\"address\": \"127.0.0.1:0\"}],"
		 " \"timeouts\": {\"connect\": \"2s\", \"client\": \"5s\"},"
		 " \"upstreams\": {\"web\": {\"servers\": [\"127.0.0.1:%d\"],"
		 "                          \"response_timeout\": \"%s\"}},"
		 " \"sites\": [{\"hosts\": [\"app.test\"], \"routes\": [{\"upstream\": \"web\"}]}]}",
		 f->port, response_timeout);
	fixture_start(f, json);
	return f;
}

static int
setup(void **state)
{
	*state = start("10s");
	return 0;
}

static int
setup_short_timeout(void **state)
{
	*state = start("50ms");
	return 0;
}

static int
teardown(void **state)
{
	fixture_free(*state);
	return 0;
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

static bool
client_eof(struct fake *f, void *arg)
{
	struct inbox *in = arg;

	inbox_read(f, in);
	return in->eof;
}

/* The same response to an HTTP/1.0 client: not chunked (1.0 has no chunked
 * encoding), delimited by closing the client connection. */
static void
test_unframed_response_http10(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	const char *body;

	f->mode = UP_SCRIPT_CLOSE;
	f->script = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length here";
	send_all(f, "GET /unframed HTTP/1.0\r\nHost: app.test\r\n\r\n");
	assert_true(run_until(f, client_eof, &in, 2000));
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	assert_int_equal(header_count(in.data, "Transfer-Encoding"), 0);
	assert_int_equal(header_count(in.data, "Content-Length"), 0);
	body = strstr(in.data, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, "no length here");
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
		cmocka_unit_test_setup_teardown(test_unframed_response_http10, setup, teardown),
	};
	int rc;

	fixture_quiet();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	metrics_shutdown();
	return rc;
}

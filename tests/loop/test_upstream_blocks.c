/*
 * In-process tests of how upstream responses are read (src/proxy/upstream.c
 * with upstream_blocks.c): reads fill 16 KiB granules several at a time,
 * each response holds a bounded number of them however slowly its client
 * reads, and http-parser is fed one granule at a time.  The proxy runs on
 * one event_base with a fake upstream (proxy_fixture.h); some cases write
 * the upstream's bytes themselves, non-blocking, while the loop runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/metrics.h"
#include "proxy/upstream.h"
#include "proxy_fixture.h"

#define RESPONSE_BUDGET_GRANULES 4 /* upstream.c's RESPONSE_GRANULES */

static int
setup(void **state)
{
	struct fake *f = fixture_new();
	char json[1024];

	snprintf(json, sizeof(json),
		 "{\"listeners\": [{\"address\": \"127.0.0.1:0\"}],"
		 " \"timeouts\": {\"connect\": \"2s\", \"client\": \"10s\"},"
		 " \"upstreams\": {\"web\": {\"servers\": [\"127.0.0.1:%d\"]}},"
		 " \"sites\": [{\"hosts\": [\"app.test\"], \"routes\": [{\"upstream\": \"web\"}]}]}",
		 f->port);
	fixture_start(f, json);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* Body byte <i> of the generated responses. */
static char
body_byte(size_t i)
{
	return (char)('a' + i % 26);
}

/* What the test client has read of one response with a generated body. */
struct reader {
	char head[32768];
	size_t head_len;   /* bytes of the head read so far (up to its blank line) */
	bool head_done;
	size_t body;       /* body bytes read, each checked */
	bool wrong;        /* a body byte was not body_byte(its offset) */
};

/* Read what the client socket has, without blocking. */
static void
reader_take(struct fake *f, struct reader *r)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(f->client, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (!r->head_done) {
				assert_true(r->head_len < sizeof(r->head) - 1);
				r->head[r->head_len++] = buf[i];
				r->head[r->head_len] = '\0';
				r->head_done = r->head_len >= 4 &&
					       memcmp(r->head + r->head_len - 4, "\r\n\r\n", 4) == 0;
				continue;
			}
			if (buf[i] != body_byte(r->body))
				r->wrong = true;
			r->body++;
		}
	}
}

/* Write as much of the generated body (from offset *<sent>, <len> in all) to
 * <fd> as the kernel takes now. */
static void
write_body(int fd, size_t *sent, size_t len)
{
	static char pattern[65536 + 26];

	if (pattern[0] == '\0')
		for (size_t i = 0; i < sizeof(pattern); i++)
			pattern[i] = body_byte(i);
	while (*sent < len) {
		size_t want = len - *sent < 65536 ? len - *sent : 65536;
		ssize_t n = write(fd, pattern + *sent % 26, want);

		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			return;
		}
		*sent += (size_t)n;
	}
}

/* The client reads from now on while the upstream writes the rest of the
 * <len> body bytes (*<sent> so far): everything arrives intact, the response
 * never holds more than its budget, and every granule is freed at the end. */
static void
read_to_the_end(struct fake *f, int fd, size_t *sent, size_t len)
{
	struct reader r = {0};

	for (int i = 0; i < 20000 && r.body < len; i++) {
		write_body(fd, sent, len);
		run_until(f, NULL, NULL, 1);
		reader_take(f, &r);
		assert_true(upstream_blocks_live() <= RESPONSE_BUDGET_GRANULES);
	}
	assert_int_equal(r.body, len);
	assert_false(r.wrong);
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
	assert_int_equal(upstream_blocks_live(), 0);
}

/* A 16 MiB response to a client that reads nothing for a while: the proxy
 * stops reading the upstream while the response holds its budget of read
 * granules (64 KiB); the upstream's kernel buffers fill up.  Once the
 * client reads, the whole body arrives intact and every granule is freed. */
static void
test_slow_client_holds_at_most_the_budget(void **state)
{
	struct fake *f = *state;
	const size_t len = 16u << 20;
	size_t sent = 0, sent_before;
	unsigned most = 0;
	int one = 1;
	char head[128];
	int fd;

	f->mode = UP_HOLD;
	send_all(f, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n");
	assert_true(run_until(f, upstream_requests, &one, 2000));
	fd = f->up[0]->fd;
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
	assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));

	/* The client reads nothing: write until the upstream's socket is full
	 * and stays full. */
	for (int still = 0; still < 50 && sent < len;) {
		sent_before = sent;
		write_body(fd, &sent, len);
		still = sent == sent_before ? still + 1 : 0;
		run_until(f, NULL, NULL, 2);
		if (upstream_blocks_live() > most)
			most = upstream_blocks_live();
	}
	assert_true(sent < len);  /* held back: the proxy stopped reading */
	assert_true(most >= 1);
	assert_true(most <= RESPONSE_BUDGET_GRANULES);

	/* The client reads: everything arrives. */
	read_to_the_end(f, fd, &sent, len);
}

/* The proxy's end of the fake upstream's connection <up_fd>: the socket
 * of this process whose address is <up_fd>'s peer. */
static int
proxy_end_of(int up_fd)
{
	struct sockaddr_in peer, mine;
	socklen_t len = sizeof(peer);

	assert_int_equal(getpeername(up_fd, (struct sockaddr *)&peer, &len), 0);
	for (int fd = 3; fd < 1024; fd++) {
		len = sizeof(mine);
		if (fd != up_fd && getsockname(fd, (struct sockaddr *)&mine, &len) == 0 &&
		    len == sizeof(mine) && mine.sin_family == AF_INET &&
		    mine.sin_port == peer.sin_port && mine.sin_addr.s_addr == peer.sin_addr.s_addr)
			return fd;
	}
	fail_msg("the proxy's upstream socket was not found");
	return -1;
}

/* Bytes the proxy has not read from its upstream socket <fd>. */
static int
unread(int fd)
{
	int n = 0;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

/* Run the loop until the proxy has read all the upstream sent (up to
 * 200 ms).  False when it stopped reading. */
static bool
proxy_reads_all(struct fake *f, int proxy_fd)
{
	for (int i = 0; i < 200; i++) {
		run_until(f, NULL, NULL, 1);
		if (unread(proxy_fd) == 0)
			return true;
	}
	return false;
}

/* A client that stopped reading: while its backlog is under the limit the
 * proxy reads on, and a response already holding two granules (its client
 * backlog) reads no more than the rest of its budget, however much the
 * upstream has sent: the budget caps the read, not only the backlog. */
static void
test_read_capped_by_the_budget(void **state)
{
	struct fake *f = *state;
	const size_t len = 16u << 20;
	size_t sent = 0, step;
	int one = 1;
	char head[128];
	int fd, proxy_fd;

	f->mode = UP_HOLD;
	send_all(f, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n");
	assert_true(run_until(f, upstream_requests, &one, 2000));
	fd = f->up[0]->fd;
	proxy_fd = proxy_end_of(fd);
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
	assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	assert_true(proxy_reads_all(f, proxy_fd));

	/* 12000 bytes at a time, read at once, until the client's socket is
	 * full and two granules are held (24000 bytes or less: no pause). */
	for (step = 0; step < 1000 && upstream_blocks_live() < 2; step++) {
		size_t to = sent + 12000;

		write_body(fd, &sent, to);
		assert_int_equal(sent, to);
		assert_true(proxy_reads_all(f, proxy_fd));
	}
	assert_int_equal(upstream_blocks_live(), 2);

	/* 256 KiB at once: the proxy takes what its budget has left. */
	step = sent + (256u << 10);
	write_body(fd, &sent, step);
	assert_int_equal(sent, step);
	run_until(f, NULL, NULL, 20);
	assert_true(unread(proxy_fd) > 0);
	assert_int_equal(upstream_blocks_live(), RESPONSE_BUDGET_GRANULES);

	/* The client reads: everything arrives. */
	read_to_the_end(f, fd, &sent, len);
}

/* A head of about 20 KiB read in one call spans two granules (http-parser
 * sees it in two pieces); the body (30000 bytes) ends inside the fourth
 * granule and bytes the client did not ask for follow it.  The response
 * arrives intact, and the connection, out of step, is not used again. */
static void
test_head_across_granules_then_stray_bytes(void **state)
{
	struct fake *f = *state;
	const size_t pad = 20000, len = 30000;
	const char *stray = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray";
	struct reader r = {0};
	char *script, *p, value[32];
	int two = 2;

	script = malloc(pad + len + 256);
	assert_non_null(script);
	p = script + sprintf(script, "HTTP/1.1 200 OK\r\nX-Pad: ");
	memset(p, 'p', pad);
	p += pad;
	p += sprintf(p, "\r\nContent-Length: %zu\r\n\r\n", len);
	for (size_t i = 0; i < len; i++)
		*p++ = body_byte(i);
	strcpy(p, stray);
	f->mode = UP_SCRIPT;
	f->script = script;

	send_all(f, "GET /one HTTP/1.1\r\nHost: app.test\r\n\r\n");
	for (int i = 0; i < 2000 && r.body < len; i++) {
		run_until(f, NULL, NULL, 1);
		reader_take(f, &r);
	}
	assert_int_equal(r.body, len);
	assert_false(r.wrong);
	assert_ptr_equal(strstr(r.head, "HTTP/1.1 200 OK\r\n"), r.head);
	assert_non_null(strstr(r.head, "\r\nX-Pad: pppp"));
	assert_string_equal(header_value(r.head, "Content-Length", value, sizeof(value)), "30000");
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));

	/* The next request goes to a new upstream connection. */
	memset(&r, 0, sizeof(r));
	send_all(f, "GET /two HTTP/1.1\r\nHost: app.test\r\n\r\n");
	assert_true(run_until(f, upstream_requests, &two, 2000));
	for (int i = 0; i < 2000 && r.body < len; i++) {
		run_until(f, NULL, NULL, 1);
		reader_take(f, &r);
	}
	assert_int_equal(r.body, len);
	assert_false(r.wrong);
	assert_int_equal(f->nup, 2);
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
	assert_int_equal(upstream_blocks_live(), 0);
	free(script);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slow_client_holds_at_most_the_budget, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_capped_by_the_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_across_granules_then_stray_bytes, setup,
						teardown),
	};
	int rc;

	fixture_quiet();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	metrics_shutdown();
	return rc;
}

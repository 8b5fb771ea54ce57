/*
 * fuzz_h1: feeds arbitrary bytes, as a client would send them, to the
 * HTTP/1.x codec (src/http/h1.c) through the real transport (conn.c): a
 * server on an in-process event loop adopts one end of a socketpair, the
 * harness writes the input on the other end (in two writes, split where the
 * first byte says, so requests arrive cut in the middle too), runs the loop
 * until the server is quiet, half-closes, then closes and runs it until the
 * connection is gone.
 *
 * The handler makes every framing path run: it reads bodies (up to 256
 * bytes, or 64 KiB when the target contains "big", so 413 happens too),
 * refuses in on_head when the target contains "refuse" (an early answer
 * while a body may follow), streams a chunked response for "stream", closes
 * after the reply for "close", and echoes the target and body otherwise.
 * Limits are small (1 KiB head) so 431 is reachable.  When the first byte
 * has its high bit set, the connection goes to a second server that expects
 * a PROXY protocol header first (the peer, 127.0.0.1, is a trusted proxy),
 * so conn.c's header reading runs before the codec.
 *
 * Contract checked (aborts when broken; ASan and UBSan report the rest):
 *   - no handler callback runs inside another;
 *   - whatever the server writes starts with an HTTP/1.x status line;
 *   - once the client has closed, the server lets go of the connection
 *     within a few loop turns (no connection, request or timer left:
 *     LeakSanitizer sees what is not freed).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access/ipacl.h"
#include "base/log.h"
#include "fuzz.h"
#include "http/conn.h"
#include "http/h1.h"
#include "http/request.h"

static struct event_base *base;
static struct server *srv, *srv_proxied;
static struct ipacl *trusted;
static int depth; /* handler callbacks in progress */

static void
enter(void)
{
	FUZZ_CHECK(depth == 0);
	depth++;
}

static enum server_verdict
on_head(struct server_request *req, void *arg)
{
	const char *target = server_request_target(req);

	enter();
	if (evhttp_find_header(server_request_headers(req), "Upgrade") != NULL)
		server_request_set_tunnel(req, true);
	if (strstr(target, "refuse") != NULL) {
		struct evbuffer *b = evbuffer_new();

		evbuffer_add(b, "no\n", 3);
		server_reply(req, 403, NULL, b, false);
		evbuffer_free(b);
		depth--;
		return SERVER_REPLIED;
	}
	server_request_set_max_body(req, strstr(target, "big") != NULL ? 65536 : 256);
	depth--;
	return SERVER_READ_BODY;
}

static void
on_request(struct server_request *req, void *arg)
{
	const char *target = server_request_target(req);
	struct evbuffer *b = evbuffer_new();

	enter();
	FUZZ_CHECK(b != NULL);
	evbuffer_add_printf(b, "%s %s\n", server_request_method(req), target);
	evbuffer_add_buffer(b, server_request_body(req));
	if (strstr(target, "stream") != NULL) {
		server_reply_start(req, 200, NULL);
		server_reply_body(req, b);
		server_reply_end(req);
	} else {
		server_reply(req, 200, NULL, b, strstr(target, "close") != NULL);
	}
	evbuffer_free(b);
	depth--;
}

static void
on_abort(struct server_request *req, int status, void *arg)
{
	enter();
	FUZZ_CHECK(status >= 400 && status <= 599);
	depth--;
}

static void
on_drained(struct server_request *req, void *arg)
{
	enter();
	depth--;
}

static const struct server_handler handler = {
	.on_head = on_head,
	.on_request = on_request,
	.on_abort = on_abort,
	.on_drained = on_drained,
};

static void
setup(void)
{
	struct server_limits limits = {.max_header_bytes = 1024, .client = {5, 0}};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_ERROR); /* a line per input would slow fuzzing down */
	base = event_base_new();
	FUZZ_CHECK(base != NULL);
	srv = server_new(base, -1, 8080, h1_codecs, &handler, NULL);
	FUZZ_CHECK(srv != NULL);
	server_set_counted(srv, false);
	server_set_limits(srv, &limits);

	trusted = ipacl_new((const char *const[]){"127.0.0.0/8"}, 1, NULL, 0);
	FUZZ_CHECK(trusted != NULL);
	srv_proxied = server_new(base, -1, 8080, h1_codecs, &handler, NULL);
	FUZZ_CHECK(srv_proxied != NULL);
	server_set_counted(srv_proxied, false);
	server_set_limits(srv_proxied, &limits);
	server_set_proxy_protocol(srv_proxied, true, trusted);
}

/* What the client end has received, and whether it starts as a response. */
struct client {
	int fd;
	char head[9];
	size_t got;
	bool eof;
};

static size_t
client_read(struct client *c)
{
	char buf[16384];
	size_t total = 0;

	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n <= 0) {
			if (n == 0)
				c->eof = true;
			return total;
		}
		for (ssize_t i = 0; i < n && c->got < sizeof(c->head); i++)
			c->head[c->got++] = buf[i];
		total += (size_t)n;
	}
}

/* Run the loop until nothing arrives for a few turns (at most <turns>). */
static void
pump(struct client *c, int turns)
{
	int idle = 0;

	for (int i = 0; i < turns && idle < 3; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (client_read(c) > 0)
			idle = 0;
		else
			idle++;
	}
}

static void
client_send(struct client *c, const uint8_t *data, size_t len)
{
	size_t off = 0;
	int stalls = 0;

	while (off < len && stalls < 100) {
		ssize_t n = write(c->fd, data + off, len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			return; /* the server closed: the rest is not read */
		stalls++;
		pump(c, 4);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	struct client c = {.fd = -1};
	size_t cut = size > 0 ? data[0] % (size + 1) : 0;
	struct server *to;
	int sv[2];

	if (base == NULL)
		setup();
	to = size > 0 && (data[0] & 0x80) ? srv_proxied : srv;
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	peer.sin_addr.s_addr = htonl(0x7f000001);
	FUZZ_CHECK(server_adopt(to, sv[0], (struct sockaddr *)&peer, sizeof(peer)) == 0);
	c.fd = sv[1];
	FUZZ_CHECK(fcntl(c.fd, F_SETFL, O_NONBLOCK) == 0);

	client_send(&c, data, cut);
	pump(&c, 64);
	client_send(&c, data + cut, size - cut);
	pump(&c, 64);
	shutdown(c.fd, SHUT_WR);
	pump(&c, 64);
	if (c.got > 0)
		FUZZ_CHECK(memcmp(c.head, "HTTP/1.", c.got < 7 ? c.got : 7) == 0);
	close(c.fd);
	for (int i = 0; i < 64 && server_connections(to) > 0; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	FUZZ_CHECK(server_connections(to) == 0);
	FUZZ_CHECK(depth == 0);
	return 0;
}

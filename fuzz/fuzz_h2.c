/*
 * fuzz_h2: feeds arbitrary frames, as an HTTP/2 client would send them after
 * its connection preface, to the HTTP/2 codec (src/http/h2.c: libnghttp2 and
 * our mapping of streams onto requests) through the real transport
 * (conn.c): a server speaking only h2 on an in-process event loop adopts one
 * end of a socketpair; the harness writes the preface and an empty SETTINGS
 * frame, then the input (in two writes, split where the first byte says),
 * runs the loop until the server is quiet, half-closes, closes, and runs it
 * until the connection is gone.
 *
 * The handler makes the mapping's paths run: it reads bodies (up to 256
 * bytes), refuses in on_head when the target contains "refuse", streams a
 * response for "stream", holds the request for "hold" (answered by nothing:
 * the client's close aborts it), answers a WebSocket's extended CONNECT with
 * 101 and a taker that closes the tunnel's end at once, and echoes the
 * target and body otherwise.  Limits are small (1 KiB head) so 431 and the
 * HPACK-bomb GOAWAY are reachable.
 *
 * Contract checked (aborts when broken; ASan and UBSan report the rest):
 *   - no handler callback runs inside another;
 *   - whatever the server writes starts with a SETTINGS frame;
 *   - once the client has closed, the server lets go of the connection and
 *     every request (no leak for LeakSanitizer).
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

#include "base/log.h"
#include "fuzz.h"
#include "http/conn.h"
#include "http/h2.h"
#include "http/request.h"

static struct event_base *base;
static struct server *srv;
static int depth; /* handler callbacks in progress */
static const struct conn_codec *const only_h2[] = {&h2_conn_codec, NULL};

static void
enter(void)
{
	FUZZ_CHECK(depth == 0);
	depth++;
}

/* The tunnel's taker: closes what it is given. */
static void
take(struct server_tunnel_client *client, void *arg)
{
	(void)arg;
	if (client == NULL)
		return;
	close(client->end.fd);
	evbuffer_free(client->early);
}

static enum server_verdict
on_head(struct server_request *req, void *arg)
{
	const char *target = server_request_target(req);

	(void)arg;
	enter();
	if (strstr(target, "refuse") != NULL) {
		server_reply(req, 403, NULL, NULL, false);
		depth--;
		return SERVER_REPLIED;
	}
	server_request_set_max_body(req, 256);
	depth--;
	return SERVER_READ_BODY;
}

static void
on_request(struct server_request *req, void *arg)
{
	const char *target = server_request_target(req);
	struct evbuffer *b;

	(void)arg;
	enter();
	if (strstr(target, "hold") != NULL) {
		depth--;
		return;
	}
	if (evhttp_find_header(server_request_headers(req), "Upgrade") != NULL) {
		server_request_on_tunnel(req, take, NULL);
		server_reply(req, 101, NULL, NULL, false);
		depth--;
		return;
	}
	b = evbuffer_new();
	FUZZ_CHECK(b != NULL);
	evbuffer_add_printf(b, "%s %s\n", server_request_method(req), target);
	evbuffer_add_buffer(b, server_request_body(req));
	if (strstr(target, "stream") != NULL) {
		server_reply_start(req, 200, NULL);
		server_reply_body(req, b);
		server_reply_end(req);
	} else {
		server_reply(req, 200, NULL, b, false);
	}
	evbuffer_free(b);
	depth--;
}

static void
on_abort(struct server_request *req, int status, void *arg)
{
	(void)req;
	(void)arg;
	enter();
	FUZZ_CHECK(status >= 400 && status <= 599);
	depth--;
}

static void
on_drained(struct server_request *req, void *arg)
{
	(void)req;
	(void)arg;
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
	log_set_level(LOG_LEVEL_ERROR);
	base = event_base_new();
	FUZZ_CHECK(base != NULL);
	srv = server_new(base, -1, 8443, only_h2, &handler, NULL);
	FUZZ_CHECK(srv != NULL);
	server_set_counted(srv, false);
	server_set_limits(srv, &limits);
}

/* What the client end has received: the first frame header is kept. */
struct client {
	int fd;
	uint8_t head[9];
	size_t got;
};

static size_t
client_read(struct client *c)
{
	uint8_t buf[16384];
	size_t total = 0;

	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n <= 0)
			return total;
		for (ssize_t i = 0; i < n && c->got < sizeof(c->head); i++)
			c->head[c->got++] = buf[i];
		total += (size_t)n;
	}
}

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
			return;
		stalls++;
		pump(c, 4);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t start[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				       "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
	struct client c = {.fd = -1};
	size_t cut = size > 0 ? data[0] % (size + 1) : 0;
	int sv[2];

	if (base == NULL)
		setup();
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	peer.sin_addr.s_addr = htonl(0x7f000001);
	FUZZ_CHECK(server_adopt(srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)) == 0);
	c.fd = sv[1];
	FUZZ_CHECK(fcntl(c.fd, F_SETFL, O_NONBLOCK) == 0);

	client_send(&c, start, sizeof(start) - 1);
	client_send(&c, data, cut);
	pump(&c, 64);
	client_send(&c, data + cut, size - cut);
	pump(&c, 64);
	shutdown(c.fd, SHUT_WR);
	pump(&c, 64);
	if (c.got >= 4)
		FUZZ_CHECK(c.head[3] == 0x4); /* SETTINGS first */
	close(c.fd);
	for (int i = 0; i < 64 && server_connections(srv) > 0; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	FUZZ_CHECK(server_connections(srv) == 0);
	FUZZ_CHECK(depth == 0);
	return 0;
}

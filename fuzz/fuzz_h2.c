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
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "fuzz.h"
#include "http/conn.h"
#include "http/h2.h"
#include "http/request.h"
#include "socket_client.h"

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t start[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				       "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
	struct socket_client c;
	size_t cut = size > 0 ? data[0] % (size + 1) : 0;

	if (base == NULL)
		setup();
	socket_client_open(&c, base, srv);
	socket_client_send(&c, start, sizeof(start) - 1);
	socket_client_feed(&c, data, size, cut);
	if (c.got >= 4)
		FUZZ_CHECK(c.head[3] == 0x4); /* SETTINGS first */
	socket_client_close(&c, srv);
	FUZZ_CHECK(depth == 0);
	return 0;
}

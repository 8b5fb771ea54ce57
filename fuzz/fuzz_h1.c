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
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "access/ipacl.h"
#include "base/log.h"
#include "fuzz.h"
#include "http/conn.h"
#include "http/h1.h"
#include "http/request.h"
#include "socket_client.h"

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socket_client c;
	size_t cut = size > 0 ? data[0] % (size + 1) : 0;
	struct server *to;

	if (base == NULL)
		setup();
	to = size > 0 && (data[0] & 0x80) ? srv_proxied : srv;
	socket_client_open(&c, base, to);
	socket_client_feed(&c, data, size, cut);
	if (c.got > 0)
		FUZZ_CHECK(memcmp(c.head, "HTTP/1.", c.got < 7 ? c.got : 7) == 0);
	socket_client_close(&c, to);
	FUZZ_CHECK(depth == 0);
	return 0;
}

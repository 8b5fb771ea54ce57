/*
 * Unit tests for the WebSocket handshake pieces of proxy/websocket.c: which
 * upgrades are honoured, the key (the client's or a made-up one), the lines
 * sent upstream, the Accept of RFC 6455's example, and the 101 check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include <cmocka.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "proxy/websocket.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Headers from "Name: value" strings, NULL-ended. */
static void
fill(struct evkeyvalq *h, const char *const *lines)
{
	TAILQ_INIT(h);
	for (size_t i = 0; lines[i] != NULL; i++) {
		char name[64];
		const char *colon = strchr(lines[i], ':');

		assert_non_null(colon);
		snprintf(name, sizeof(name), "%.*s", (int)(colon - lines[i]), lines[i]);
		evhttp_add_header(h, name, colon + 2);
	}
}

static enum websocket_ask
classify(const char *method, enum server_proto proto, const char *const *lines)
{
	struct evkeyvalq h;
	enum websocket_ask a;

	fill(&h, lines);
	a = websocket_classify(&h, method, proto);
	evhttp_clear_headers(&h);
	return a;
}

static void
test_classify(void **state)
{
	static const char *const ok[] = {"Connection: keep-alive, Upgrade", "Upgrade: WebSocket",
					 "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13",
					 NULL};
	static const char *const h2c[] = {"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
					  "HTTP2-Settings: AAMAAABkAAQAAP__", NULL};
	static const char *const no_conn[] = {"Upgrade: websocket", "Sec-WebSocket-Key: " KEY,
					      "Sec-WebSocket-Version: 13", NULL};
	static const char *const bad_key[] = {"Connection: Upgrade", "Upgrade: websocket",
					      "Sec-WebSocket-Key: short==",
					      "Sec-WebSocket-Version: 13", NULL};
	static const char *const old_version[] = {"Connection: Upgrade", "Upgrade: websocket",
						  "Sec-WebSocket-Key: " KEY,
						  "Sec-WebSocket-Version: 8", NULL};
	static const char *const plain[] = {"Accept: */*", NULL};
	/* How the h2 codec renders an extended CONNECT (RFC 8441): no key. */
	static const char *const h2_connect[] = {"Connection: Upgrade", "Upgrade: websocket",
						 "sec-websocket-version: 13", NULL};

	(void)state;
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP2, h2_connect), WEBSOCKET_ASKED);
	assert_int_equal(classify("POST", SERVER_PROTO_HTTP2, h2_connect), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP2, h2c), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP11, h2_connect), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP11, ok), WEBSOCKET_ASKED);
	assert_int_equal(classify("POST", SERVER_PROTO_HTTP11, ok), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP10, ok), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP11, h2c), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP11, no_conn), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP11, bad_key), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP11, old_version), WEBSOCKET_OTHER);
	assert_int_equal(classify("GET", SERVER_PROTO_HTTP11, plain), WEBSOCKET_NONE);
}

static void
test_accept_value(void **state)
{
	char out[29];

	(void)state;
	websocket_accept_value(KEY, out); /* RFC 6455, 1.3 */
	assert_string_equal(out, ACCEPT);
}

static void
test_key_and_lines(void **state)
{
	static const char *const lines[] = {"Sec-WebSocket-Key: " KEY, NULL};
	struct websocket_upgrade u, v;
	struct evkeyvalq h;
	char buf[192];

	(void)state;
	fill(&h, lines);
	assert_int_equal(websocket_upgrade_init(&u, &h), 0);
	evhttp_clear_headers(&h);
	assert_string_equal(u.key, KEY);
	assert_false(u.made_up);
	websocket_upgrade_lines(&u, buf, sizeof(buf));
	assert_string_equal(buf, "Connection: Upgrade\r\nUpgrade: websocket\r\n");

	/* no key (an HTTP/2 extended CONNECT): one is made up, 16 random bytes */
	assert_int_equal(websocket_upgrade_init(&v, NULL), 0);
	assert_true(v.made_up);
	assert_int_equal(strlen(v.key), 24);
	assert_string_equal(v.key + 22, "==");
	websocket_upgrade_lines(&v, buf, sizeof(buf));
	assert_non_null(strstr(buf, "Sec-WebSocket-Key: "));
	assert_non_null(strstr(buf, v.key));
	assert_non_null(strstr(buf, "Sec-WebSocket-Version: 13\r\n"));
}

static bool
accepted(const char *const *lines)
{
	struct websocket_upgrade u;
	struct evkeyvalq h;
	const char *why = NULL;
	bool ok;

	memset(&u, 0, sizeof(u));
	memcpy(u.key, KEY, sizeof(KEY));
	fill(&h, lines);
	ok = websocket_upgrade_accepted(&u, &h, &why);
	evhttp_clear_headers(&h);
	assert_true(ok || why != NULL);
	return ok;
}

static void
test_switch_checked(void **state)
{
	static const char *const good[] = {"Upgrade: websocket", "Connection: Upgrade",
					   "Sec-WebSocket-Accept: " ACCEPT, NULL};
	static const char *const wrong[] = {"Upgrade: websocket", "Connection: Upgrade",
					    "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					    NULL};
	static const char *const missing[] = {"Upgrade: websocket", "Connection: Upgrade", NULL};
	static const char *const h2c[] = {"Upgrade: h2c", "Connection: Upgrade",
					  "Sec-WebSocket-Accept: " ACCEPT, NULL};
	static const char *const no_conn[] = {"Upgrade: websocket",
					      "Sec-WebSocket-Accept: " ACCEPT, NULL};

	(void)state;
	assert_true(accepted(good));
	assert_false(accepted(wrong));
	assert_false(accepted(missing));
	assert_false(accepted(h2c));
	assert_false(accepted(no_conn));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_accept_value),
		cmocka_unit_test(test_key_and_lines),
		cmocka_unit_test(test_switch_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

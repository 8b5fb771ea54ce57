/*
 * upstream: connections from one worker to the servers of an upstream, and
 * one HTTP/1.1 exchange on such a connection.
 *
 * A pool belongs to one worker thread (one event_base) and one configuration
 * generation.  It keeps idle keep-alive connections per server (LIFO, closed
 * after the upstream's idle timeout or as soon as the server closes them),
 * picks servers by round-robin or least-connections, and skips a server for
 * fail_timeout seconds after max_fails consecutive failures (passive health;
 * that state is shared by all workers through struct upstream_health).
 *
 * An exchange writes a request the caller has framed (head and body in one
 * evbuffer) and parses the response with http-parser (Debian's
 * libhttp-parser), handing the caller the status and headers once, then body
 * bytes (chunked encoding already removed) as they arrive, then the end; or
 * one failure saying whether the request may have reached the server and
 * whether a response had begun, so the caller can choose between a retry, a
 * 502/504 and cutting the client's response short.
 */
#ifndef PORTCULLIS_UPSTREAM_H
#define PORTCULLIS_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config_model.h"

struct event_base;
struct evdns_base;
struct evbuffer;
struct evkeyvalq;
struct upstream_pool;
struct upstream_exchange;
struct upstream_health;
struct tunnel_end;

enum upstream_failure {
	UPSTREAM_CONNECT_FAILED,   /* refused, unreachable: never sent */
	UPSTREAM_CONNECT_TIMEOUT,  /* never sent */
	UPSTREAM_DNS_FAILED,       /* name did not resolve: never sent */
	UPSTREAM_RESET,            /* closed or reset after the request was written */
	UPSTREAM_RESPONSE_TIMEOUT, /* no (more) response within the response timeout */
	UPSTREAM_BAD_RESPONSE,     /* not HTTP/1.x, or framing we refuse */
	UPSTREAM_HEADERS_TOO_LARGE,
	UPSTREAM_TLS_FAILED,       /* "tls": handshake or verification failed: never sent */
};

/* What the caller learns about one exchange.  Each is called at most once,
 * except body; after done or fail the exchange is gone. */
struct upstream_response_ops {
	/* Status line and headers (the exchange owns <headers>; the callee may
	 * read or remove entries).  Return 0, or -1 to cancel the exchange (no
	 * further calls). */
	int (*head)(void *arg, int status, struct evkeyvalq *headers);
	/* Body bytes; move them out of <data> (what is left is discarded). */
	void (*body)(void *arg, struct evbuffer *data);
	/* The response ended normally. */
	void (*done)(void *arg);
	/* The exchange failed.  <sent>: request bytes may have reached the server;
	 * <reused>: it ran on a kept-alive connection; <responded>: head() was
	 * called before the failure. */
	void (*fail)(void *arg, enum upstream_failure why, bool sent, bool reused, bool responded);
	/* Only for an exchange with upstream_exchange_allow_upgrade: the
	 * server answered 101 (head() saw it and returned 0).  The connection
	 * leaves the pool: its socket (and TLS object, when it has one) goes to
	 * <end>, the bytes that followed the head are in <rest> (the callee
	 * moves them out).  The exchange is gone, as after done. */
	void (*upgraded)(void *arg, struct tunnel_end *end, struct evbuffer *rest);
};

/* Free the read blocks this thread keeps for reuse (a worker thread calls
 * it as it ends; blocks freed later by another thread go to that one's). */
void upstream_release_spare_blocks(void);

/* Read granules this thread allocated less those it freed (spares not
 * counted): with one thread, what upstream responses hold, for tests. */
unsigned upstream_blocks_live(void);

/* Shared (all workers) health of the servers of every upstream of <cfg>.
 * NULL on allocation failure. */
struct upstream_health *upstream_health_new(const struct config *cfg);

/* Accepts NULL. */
void upstream_health_free(struct upstream_health *health);

/* Append Prometheus lines for server health and open connections to a new
 * string the caller frees (NULL on allocation failure). */
char *upstream_health_render(const struct upstream_health *health, const struct config *cfg);

/* What the status page shows of one server, all workers together. */
struct upstream_server_state {
	bool down;             /* skipped after max_fails failures, for fail_timeout */
	double down_seconds;   /* how long it stays skipped (when down) */
	unsigned fails;        /* consecutive failures */
	int in_flight;         /* exchanges running */
	int open;              /* connections open */
};

/* The state of server <server> of upstream <upstream>: indexes into the
 * config <health> was made from (<server> below that upstream's server
 * count).  Returns 0, or -1 when <upstream> is out of range. */
int upstream_health_server_state(const struct upstream_health *health, size_t upstream,
				 size_t server, struct upstream_server_state *out);

/* A pool for <up> on <base>; <dns> resolves names; responses whose headers
 * exceed <max_header_bytes> fail with UPSTREAM_HEADERS_TOO_LARGE.  NULL on
 * allocation failure. */
struct upstream_pool *upstream_pool_new(struct event_base *base, struct evdns_base *dns,
					const struct config_upstream *up,
					struct upstream_health *health, size_t max_header_bytes);

/* Close idle connections and free the pool.  Exchanges still running keep
 * their connection until they end; it is closed then.  Accepts NULL. */
void upstream_pool_free(struct upstream_pool *pool);

/* Choose a server not in <tried> (bit i = server i; servers past 63 are never
 * excluded).  Down servers are skipped while any other is up.  Returns the
 * server index, or -1 when every server was tried. */
int upstream_pick(struct upstream_pool *pool, uint64_t tried);

/* The server at <index>. */
const struct config_server *upstream_server(const struct upstream_pool *pool, int index);

/*
 * Send <request> (a complete HTTP/1.1 request, moved out of the buffer) to
 * server <index>, on an idle connection when there is one (unless <fresh>),
 * else a new one.  <head_request>: the response has no body whatever its
 * headers say.  Returns the exchange, or NULL on allocation failure.
 * Callbacks never run before this returns.
 */
struct upstream_exchange *upstream_exchange_start(struct upstream_pool *pool, int index,
						  struct evbuffer *request, bool head_request,
						  bool fresh, const struct upstream_response_ops *ops,
						  void *arg);

/* Accept a 101 (Switching Protocols) answer on <x>, which asked for an
 * upgrade: head() sees it, then upgraded() takes the connection.  Without
 * this call a 101 fails the exchange as UPSTREAM_BAD_RESPONSE.  Call right
 * after upstream_exchange_start. */
void upstream_exchange_allow_upgrade(struct upstream_exchange *x);

/* Stop (true) or resume (false) reading the response: back-pressure while
 * the client is slower than the upstream. */
void upstream_exchange_pause(struct upstream_exchange *x, bool paused);

/* Abandon the exchange: no further callbacks; its connection is closed. */
void upstream_exchange_cancel(struct upstream_exchange *x);

/* Short description of a failure, for logs and error pages. */
const char *upstream_failure_text(enum upstream_failure why);

/* upstream_failure_text, and for UPSTREAM_TLS_FAILED also why the last
 * handshake of <pool> failed ("... failed: certificate verify failed:
 * Hostname mismatch").  Call from the fail callback: the text lives in a
 * thread-local buffer until the next call. */
const char *upstream_failure_detail(struct upstream_pool *pool, enum upstream_failure why);

#endif

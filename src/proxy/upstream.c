/* upstream: pooled connections to upstream servers and HTTP/1.1 exchanges; see upstream.h. */
#include "proxy/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "http/hdrarena.h"
#include "http/tlsio.h"
#include "tls/tls_client.h"
#include "http/headerbuf.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/timeutil.h"
#include "http/tunnel.h"
#include "proxy/upstream_blocks.h"

/* ---- shared health ---------------------------------------------------- */

struct server_health {
	_Atomic unsigned fails;        /* consecutive failures */
	_Atomic int64_t down_until_ms; /* skip until then (monotonic ms) */
	_Atomic int active;            /* exchanges running, all workers */
	_Atomic int open;              /* connections open, all workers */
};

struct upstream_health {
	size_t nupstreams;
	struct server_health **servers; /* [upstream index][server index] */
};

struct upstream_health *
upstream_health_new(const struct config *cfg)
{
	struct upstream_health *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->nupstreams = cfg->nupstreams;
	h->servers = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*h->servers));
	if (h->servers == NULL)
		goto fail;
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		h->servers[i] = calloc(cfg->upstreams[i].nservers, sizeof(**h->servers));
		if (h->servers[i] == NULL)
			goto fail;
	}
	return h;
fail:
	upstream_health_free(h);
	return NULL;
}

void
upstream_health_free(struct upstream_health *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; h->servers && i < h->nupstreams; i++)
		free(h->servers[i]);
	free(h->servers);
	free(h);
}

int
upstream_health_server_state(const struct upstream_health *h, size_t upstream, size_t server,
			     struct upstream_server_state *out)
{
	const struct server_health *sh;
	int64_t left;

	if (h == NULL || upstream >= h->nupstreams)
		return -1;
	/* the server count is the config's: the caller indexes within it */
	sh = &h->servers[upstream][server];
	left = atomic_load(&sh->down_until_ms) - monotonic_ms();
	out->down = left > 0;
	out->down_seconds = left > 0 ? (double)left / 1000.0 : 0;
	out->fails = atomic_load(&sh->fails);
	out->in_flight = atomic_load(&sh->active);
	out->open = atomic_load(&sh->open);
	return 0;
}

char *
upstream_health_render(const struct upstream_health *h, const struct config *cfg)
{
	size_t cap = 256, len = 0;
	char *out = malloc(cap);
	int64_t now = monotonic_ms();

	if (out == NULL)
		return NULL;
	len += (size_t)snprintf(out, cap,
				"# HELP portcullis_upstream_server_up 1 when the server is not being skipped after failures.\n"
				"# TYPE portcullis_upstream_server_up gauge\n");
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			const char *hdr = "# HELP portcullis_upstream_connections_open Connections open to the server, all workers.\n"
					  "# TYPE portcullis_upstream_connections_open gauge\n";
			size_t need = len + strlen(hdr) + 1;

			if (need > cap) {
				char *p = realloc(out, need * 2);

				if (p == NULL)
					goto fail;
				out = p;
				cap = need * 2;
			}
			len += (size_t)snprintf(out + len, cap - len, "%s", hdr);
		}
		for (size_t u = 0; u < cfg->nupstreams; u++) {
			const struct config_upstream *up = &cfg->upstreams[u];

			for (size_t s = 0; s < up->nservers; s++) {
				struct server_health *sh = &h->servers[u][s];
				char line[512];
				int n;

				if (pass == 0)
					n = snprintf(line, sizeof(line),
						     "portcullis_upstream_server_up{upstream=\"%s\",server=\"%s\"} %d\n",
						     up->name, up->servers[s].address,
						     atomic_load(&sh->down_until_ms) > now ? 0 : 1);
				else
					n = snprintf(line, sizeof(line),
						     "portcullis_upstream_connections_open{upstream=\"%s\",server=\"%s\"} %d\n",
						     up->name, up->servers[s].address, atomic_load(&sh->open));
				if (n < 0)
					continue;
				if (len + (size_t)n + 1 > cap) {
					char *p = realloc(out, (len + (size_t)n + 1) * 2);

					if (p == NULL)
						goto fail;
					out = p;
					cap = (len + (size_t)n + 1) * 2;
				}
				memcpy(out + len, line, (size_t)n + 1);
				len += (size_t)n;
			}
		}
	}
	return out;
fail:
	free(out);
	return NULL;
}

/* ---- pools and connections ------------------------------------------- */

enum conn_state {
	CONN_CONNECTING,
	CONN_BUSY,
	CONN_IDLE,
};

/*
 * One connection, on a raw non-blocking socket: the read event stays on for
 * as long as the connection lives (an idle one notices the server closing
 * it), the write event only while bytes wait for the kernel, and one timer
 * serves connect, response and idle timeouts by state.  Reads go straight
 * into a buffer http-parser reads from: no FIONREAD, no epoll_ctl churn.
 */
struct upstream_conn {
	LIST_ENTRY(upstream_conn) link; /* in the server's idle list */
	struct upstream_pool *pool;     /* NULL once the pool is gone */
	struct server_health *health;
	int server;
	int fd;                         /* -1 while the name resolves */
	struct event *rev, *wev, *timer;
	struct evdns_getaddrinfo_request *dns_req;
	struct evbuffer *out;           /* request bytes the kernel has not taken */
	enum conn_state state;
	unsigned uses;                  /* exchanges run on it */
	bool reading;                   /* rev is added */
	int64_t idle_since_ms;          /* when it went back to the pool */
	struct read_block *block;       /* the last granule read into, a body refers to it:
					 * the next read fills its tail first */
	size_t block_used;              /* bytes of <block> read into so far */
	struct read_block *parsing;     /* the granule http-parser is reading from */
	struct read_budget budget;      /* the granules the running response holds */
	bool starting;                  /* inside upstream_exchange_start */
	bool fail_pending;              /* report <pending> from the write event */
	enum upstream_failure pending;
	struct upstream_exchange *x;
	struct headerbuf hb_spare;      /* header scratch buffers, lent to each exchange */
	struct evbuffer *body;          /* the running exchange's body bytes (x->body) */
	SSL *ssl;                       /* an upstream with "tls"; NULL: plain */
	bool handshaking;               /* connected, TLS handshake running (state CONNECTING) */
	bool read_wants_write;          /* SSL_read waits for writability */
};

LIST_HEAD(conn_list, upstream_conn);

/*
 * What one read fills: up to READ_GRANULES granules of 16 KiB
 * (upstream_blocks.h) with one readv(), so that a system call still takes
 * up to 64 KiB.  Body pieces of a response are handed on by reference into
 * the granules (no copy): a granule lives until the client's output has
 * sent the last of its pieces, so bytes are released 16 KiB at a time as
 * the client takes them.  A response owns at most RESPONSE_GRANULES live
 * granules (its budget, 64 KiB): each read is capped at what the budget
 * has left, and a response whose client has not taken its bytes yet waits
 * (reading off) until one of its granules is freed.  With the client's
 * backlog limit (CONN_BACKLOG_LIMIT, 32 KiB) pausing the upstream earlier
 * still, a streaming response holds at most 64 KiB however slowly its
 * client reads.  TLS reads one record (16 KiB at most) a granule.
 */
#define READ_GRANULES 4
#define RESPONSE_GRANULES 4
#define COPY_BELOW 4096 /* smaller body pieces are copied: cheaper than a reference */

unsigned
upstream_blocks_live(void)
{
	return read_blocks_live();
}

void
upstream_release_spare_blocks(void)
{
	read_blocks_release_spare();
}

struct pool_server {
	struct conn_list idle;
	size_t nidle;
	SSL_SESSION *session;         /* TLS: the newest session, to resume */
};

struct upstream_pool {
	struct event_base *base;
	struct evdns_base *dns;
	const struct config_upstream *up;
	struct server_health *health; /* [server] */
	struct pool_server *servers;
	unsigned rr;                  /* round-robin cursor */
	size_t max_header_bytes;      /* response header limit */
	int busy;                     /* exchanges running on this pool */
	bool freed;                   /* upstream_pool_free was called while busy */
	char tls_error[320];          /* why the last TLS handshake failed */
};

struct upstream_exchange {
	struct upstream_conn *conn;
	const struct upstream_response_ops *ops;
	void *arg;
	http_parser parser;
	bool head_request;
	bool reused;
	bool sent;          /* request bytes handed to a connected socket */
	bool responded;     /* head() called */
	bool complete;      /* message complete */
	bool in_callback;
	bool cancelled;
	bool failed;
	bool paused;
	bool upgrade_ok;    /* a 101 is welcome (upstream_exchange_allow_upgrade) */
	bool upgraded;      /* a 101 was answered: the connection leaves */
	enum upstream_failure failure;
	struct evkeyvalq headers;       /* entries in <arena> */
	struct headerbuf hb;
	struct evbuffer *body;          /* the connection's, while attached (NULL after) */
	struct hdrarena arena;
};

static void conn_handshake(struct upstream_conn *c);
static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

struct upstream_pool *
upstream_pool_new(struct event_base *base, struct evdns_base *dns,
		  const struct config_upstream *up, struct upstream_health *health,
		  size_t max_header_bytes)
{
	struct upstream_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->base = base;
	pool->dns = dns;
	pool->up = up;
	pool->max_header_bytes = max_header_bytes;
	pool->health = health->servers[up->index];
	pool->servers = calloc(up->nservers, sizeof(*pool->servers));
	if (pool->servers == NULL) {
		free(pool);
		return NULL;
	}
	for (size_t i = 0; i < up->nservers; i++)
		LIST_INIT(&pool->servers[i].idle);
	return pool;
}

static void
conn_close(struct upstream_conn *c)
{
	if (c->state == CONN_IDLE && c->pool) {
		LIST_REMOVE(c, link);
		c->pool->servers[c->server].nidle--;
	}
	atomic_fetch_sub(&c->health->open, 1);
	if (c->dns_req)
		evdns_getaddrinfo_cancel(c->dns_req); /* its callback frees nothing */
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->timer);
	if (c->ssl != NULL) {
		/* As if shut down: a session is not spoilt by how the
		 * connection ended (no close_notify is written). */
		SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		tls_client_session_slot(c->ssl, NULL);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	evbuffer_free(c->out);
	evbuffer_free(c->body);
	read_block_unref(c->block);
	read_budget_disown(&c->budget);
	headerbuf_free(&c->hb_spare);
	free(c);
}

static void
conn_set_timer(struct upstream_conn *c, double seconds)
{
	struct timeval tv = timeval_from_seconds(seconds);

	evtimer_add(c->timer, &tv);
}

static void
conn_reading(struct upstream_conn *c, bool on)
{
	if (c->reading == on || c->fd < 0)
		return;
	c->reading = on;
	if (on)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
}

/* Write what the kernel takes now; wait for writability for the rest.
 * Returns 0, or -1 when the connection is broken. */
static int
conn_flush(struct upstream_conn *c)
{
	if (c->ssl != NULL) {
		switch (tlsio_write(c->ssl, c->out)) {
		case TLSIO_DONE:
			return 0;
		case TLSIO_WANT_WRITE:
			event_add(c->wev, NULL);
			return 0;
		case TLSIO_WANT_READ: /* the read event is on; a read flushes again */
			return 0;
		case TLSIO_ERROR:
			break;
		}
		return -1;
	}
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->wev, NULL);
			return 0;
		}
		return -1;
	}
	return 0;
}

/* Free the pool itself (no connection refers to it any more). */
static void
pool_destroy(struct upstream_pool *pool)
{
	for (size_t i = 0; i < pool->up->nservers; i++)
		SSL_SESSION_free(pool->servers[i].session);
	free(pool->servers);
	free(pool);
}

void
upstream_pool_free(struct upstream_pool *pool)
{
	if (pool == NULL)
		return;
	for (size_t i = 0; i < pool->up->nservers; i++) {
		struct upstream_conn *c;

		while ((c = LIST_FIRST(&pool->servers[i].idle)) != NULL)
			conn_close(c);
	}
	if (pool->busy > 0) {
		/* Running exchanges still point at the pool; the last one frees it. */
		pool->freed = true;
		return;
	}
	pool_destroy(pool);
}

/* An exchange left the pool; free the pool if it was released meanwhile. */
static void
pool_exchange_ended(struct upstream_pool *pool)
{
	pool->busy--;
	if (pool->freed && pool->busy == 0)
		pool_destroy(pool);
}

const struct config_server *
upstream_server(const struct upstream_pool *pool, int index)
{
	return &pool->up->servers[index];
}

static bool
server_is_down(const struct upstream_pool *pool, size_t i, int64_t now)
{
	return atomic_load_explicit(&pool->health[i].down_until_ms, memory_order_relaxed) > now;
}

int
upstream_pick(struct upstream_pool *pool, uint64_t tried)
{
	size_t n = pool->up->nservers;
	int64_t now = monotonic_ms();
	int best = -1, fallback = -1;
	int best_active = 0;

	for (size_t k = 0; k < n; k++) {
		size_t i = (pool->rr + k) % n;

		if (i < 64 && (tried & ((uint64_t)1 << i)))
			continue;
		if (server_is_down(pool, i, now)) {
			if (fallback < 0)
				fallback = (int)i;
			continue;
		}
		if (pool->up->balance == BALANCE_ROUND_ROBIN) {
			best = (int)i;
			break;
		}
		int active = atomic_load_explicit(&pool->health[i].active, memory_order_relaxed);

		if (best < 0 || active < best_active) {
			best = (int)i;
			best_active = active;
		}
	}
	if (best < 0)
		best = fallback; /* every untried server is down: try one anyway */
	if (best >= 0)
		pool->rr = (unsigned)best + 1;
	return best;
}

static void
server_failed(struct upstream_conn *c)
{
	const struct config_upstream *up;
	unsigned fails = atomic_fetch_add(&c->health->fails, 1) + 1;

	metrics_add(METRIC_UPSTREAM_FAILURES, 1);
	if (c->pool == NULL)
		return;
	up = c->pool->up;
	if (fails >= up->max_fails) {
		atomic_store(&c->health->down_until_ms,
			     monotonic_ms() + (int64_t)(up->fail_timeout * 1000.0));
		log_warn("upstream %s server %s: skipped for %.0f s after %u failure%s", up->name,
			 up->servers[c->server].address, up->fail_timeout, fails, fails == 1 ? "" : "s");
	}
}

static void
server_succeeded(struct upstream_conn *c)
{
	if (atomic_load_explicit(&c->health->fails, memory_order_relaxed) != 0)
		atomic_store(&c->health->fails, 0);
	if (atomic_load_explicit(&c->health->down_until_ms, memory_order_relaxed) != 0)
		atomic_store(&c->health->down_until_ms, 0);
}

/* ---- http-parser callbacks ------------------------------------------- */

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct upstream_exchange *x = p->data;

	return headerbuf_field(&x->hb, &x->headers, at, n);
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct upstream_exchange *x = p->data;

	return headerbuf_value(&x->hb, at, n);
}

static int
on_status(http_parser *p, const char *at, size_t n)
{
	struct upstream_exchange *x = p->data;

	return headerbuf_count(&x->hb, n + 16);
}

static int
on_headers_complete(http_parser *p)
{
	struct upstream_exchange *x = p->data;
	int rc;

	if (headerbuf_finish(&x->hb, &x->headers) < 0)
		return -1;
	if (p->status_code >= 100 && p->status_code < 200) {
		if (p->status_code == 101 && x->upgrade_ok)
			goto final;
		if (p->status_code == 101) { /* we did not ask for an upgrade */
			x->failed = true;
			x->failure = UPSTREAM_BAD_RESPONSE;
			return -1;
		}
		/* An interim response (103 Early Hints ...): skip it. */
		hdrarena_clear_headers(&x->arena, &x->headers);
		hdrarena_reset(&x->arena);
		headerbuf_reset(&x->hb, x->hb.max_bytes);
		return 0;
	}
final:
	server_succeeded(x->conn);
	x->responded = true;
	/* response_timeout covers the wait for the head only: a body may pause
	 * (a slow client, an idle event stream) as long as it likes.  A dead
	 * peer is still found by TCP keep-alive. */
	evtimer_del(x->conn->timer);
	x->in_callback = true;
	rc = x->ops->head(x->arg, (int)p->status_code, &x->headers);
	x->in_callback = false;
	if (rc < 0 || x->cancelled) {
		x->cancelled = true;
		return -1;
	}
	if (p->status_code == 101) {
		x->upgraded = true;
		return 2; /* no body: http-parser stops right after the head */
	}
	/* No body after HEAD, 204 or 304, whatever the headers say (RFC 9112
	 * 6.3); a Content-Length on a 304 describes the representation. */
	return (x->head_request || p->status_code == 204 || p->status_code == 304) ? 1 : 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct upstream_exchange *x = p->data;

	if (n < COPY_BELOW)
		return evbuffer_add(x->body, at, n);
	return read_block_add_reference(x->body, x->conn->parsing, at, n);
}

static int
on_message_complete(http_parser *p)
{
	struct upstream_exchange *x = p->data;

	if (!x->responded) /* end of an interim 1xx response */
		return 0;
	x->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_status = on_status,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ---- exchange lifecycle ---------------------------------------------- */

static void
exchange_free(struct upstream_exchange *x)
{
	hdrarena_clear_headers(&x->arena, &x->headers);
	hdrarena_reset(&x->arena);
	headerbuf_free(&x->hb);
	free(x);
}

/* Detach the exchange from its connection: keep the connection for reuse
 * when <keep>, else close it.  Returns nothing; x->conn is NULL after. */
static void
release_conn(struct upstream_exchange *x, bool keep)
{
	struct upstream_conn *c = x->conn;
	struct upstream_pool *pool = c->pool;

	x->conn = NULL;
	x->body = NULL;
	c->x = NULL;
	headerbuf_swap_buffers(&x->hb, &c->hb_spare); /* lent back */
	if (evbuffer_get_length(c->body) > 0) /* (undelivered: a cancelled exchange) */
		evbuffer_drain(c->body, evbuffer_get_length(c->body));
	atomic_fetch_sub(&c->health->active, 1);
	/* An idle connection holds no granule: the next read takes one.  The
	 * granules the client still sends from count against no budget now. */
	read_block_unref(c->block);
	c->block = NULL;
	read_budget_disown(&c->budget);
	if (keep && pool && !pool->freed && c->state == CONN_BUSY &&
	    pool->servers[c->server].nidle < pool->up->max_idle &&
	    evbuffer_get_length(c->out) == 0) {
		c->state = CONN_IDLE;
		c->idle_since_ms = monotonic_ms();
		LIST_INSERT_HEAD(&pool->servers[c->server].idle, c, link);
		pool->servers[c->server].nidle++;
		conn_reading(c, true); /* notice the server closing it */
		conn_set_timer(c, pool->up->idle_timeout);
	} else {
		c->state = CONN_BUSY; /* not in an idle list */
		c->pool = NULL;
		conn_close(c);
	}
	if (pool)
		pool_exchange_ended(pool); /* may free a released pool: last */
}

static void
exchange_fail(struct upstream_exchange *x, enum upstream_failure why)
{
	const struct upstream_response_ops *ops = x->ops;
	void *arg = x->arg;
	bool sent = x->sent, reused = x->reused, responded = x->responded;

	if (why != UPSTREAM_RESET || !reused || responded)
		server_failed(x->conn);
	release_conn(x, false);
	exchange_free(x);
	ops->fail(arg, why, sent, reused, responded);
}

static void
exchange_done(struct upstream_exchange *x)
{
	const struct upstream_response_ops *ops = x->ops;
	void *arg = x->arg;
	bool keep = http_should_keep_alive(&x->parser) &&
		    HTTP_PARSER_ERRNO(&x->parser) == HPE_PAUSED;

	release_conn(x, keep);
	exchange_free(x);
	ops->done(arg);
}

/* Hand the caller the body bytes parsed so far. */
static void
deliver_body(struct upstream_exchange *x)
{
	if (x->body == NULL || evbuffer_get_length(x->body) == 0 || x->cancelled)
		return;
	x->in_callback = true;
	x->ops->body(x->arg, x->body);
	x->in_callback = false;
	evbuffer_drain(x->body, evbuffer_get_length(x->body));
}

/* Feed <len> bytes to the parser.  Returns bytes consumed; sets flags. */
static size_t
parse_bytes(struct upstream_exchange *x, const char *data, size_t len)
{
	size_t n = http_parser_execute(&x->parser, &parser_settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&x->parser);

	if (e != HPE_OK && e != HPE_PAUSED && !x->cancelled && !x->failed) {
		x->failed = true;
		x->failure = x->hb.overflow ? UPSTREAM_HEADERS_TOO_LARGE : UPSTREAM_BAD_RESPONSE;
		log_debug("upstream response parse error: %s", http_errno_description(e));
	}
	return n;
}

/* After parsing: deliver body, then finish when the message is complete or
 * the exchange failed.  Returns true when the exchange is gone. */
static bool
exchange_settle(struct upstream_exchange *x)
{
	deliver_body(x);
	if (x->cancelled) {
		release_conn(x, false);
		exchange_free(x);
		return true;
	}
	if (x->failed) {
		exchange_fail(x, x->failure);
		return true;
	}
	if (x->complete) {
		exchange_done(x);
		return true;
	}
	return false;
}

/* A 101 was parsed: the connection's socket and the bytes past the head
 * (<rest>, a new buffer, or NULL when out of memory; freed here) go to the
 * caller. */
static void
exchange_upgrade(struct upstream_exchange *x, struct evbuffer *rest)
{
	const struct upstream_response_ops *ops = x->ops;
	void *arg = x->arg;
	struct upstream_conn *c = x->conn;
	struct tunnel_end end = {-1, NULL};

	if (rest == NULL) {
		exchange_fail(x, UPSTREAM_RESET);
		return;
	}
	event_del(c->rev);
	event_del(c->wev);
	evtimer_del(c->timer);
	c->reading = false;
	end.fd = c->fd;
	c->fd = -1; /* not closed by conn_close */
	if (c->ssl != NULL) { /* a TLS upstream: the tunnel speaks TLS on it */
		tls_client_session_slot(c->ssl, NULL); /* the slot stays with the pool */
		end.ssl = c->ssl;
		c->ssl = NULL;
	}
	release_conn(x, false);
	exchange_free(x);
	ops->upgraded(arg, &end, rest);
	evbuffer_free(rest);
}

/* The response ended with the connection (or the connection broke). */
static void
conn_eof(struct upstream_conn *c, bool error)
{
	struct upstream_exchange *x = c->x;

	if (!error && x->responded) {
		/* A close-delimited body ends here; anything else is a cut. */
		parse_bytes(x, NULL, 0);
		if (!x->complete && !x->failed) {
			x->failed = true;
			x->failure = UPSTREAM_RESET;
		}
		x->parser.http_errno = HPE_OK; /* never reuse a closed connection */
		exchange_settle(x);
		return;
	}
	exchange_fail(x, UPSTREAM_RESET);
}

/* The buffers one read fills: the tail of the granule kept from the last
 * read, then new granules. */
struct read_segs {
	struct read_block *block[READ_GRANULES + 1];
	struct iovec iov[READ_GRANULES + 1];
	int n;
	size_t room; /* bytes of all iov */
};

/* Fill <s> for the next read of <c>: TLS takes one buffer (a record at a
 * time), a plain read up to READ_GRANULES granules, within what the
 * response's budget has left.  Returns 0 (s->n == 0: the budget is spent),
 * or -1 when out of memory. */
static int
read_segs_take(struct upstream_conn *c, struct read_segs *s)
{
	unsigned want = c->ssl != NULL ? 1 : READ_GRANULES;

	s->n = 0;
	s->room = 0;
	if (c->block != NULL) {
		s->block[0] = c->block;
		s->iov[0].iov_base = read_block_data(c->block) + c->block_used;
		s->iov[0].iov_len = READ_GRANULE - c->block_used;
		s->room = s->iov[0].iov_len;
		s->n = 1;
		c->block = NULL; /* the read holds it now */
		if (c->ssl != NULL)
			return 0;
	}
	if (c->budget.live >= RESPONSE_GRANULES)
		want = 0;
	else if (want > RESPONSE_GRANULES - c->budget.live)
		want = RESPONSE_GRANULES - c->budget.live;
	while (s->n < READ_GRANULES + 1 && want-- > 0) {
		struct read_block *b = read_block_new(&c->budget);

		if (b == NULL)
			return -1;
		s->block[s->n] = b;
		s->iov[s->n].iov_base = read_block_data(b);
		s->iov[s->n].iov_len = READ_GRANULE;
		s->room += READ_GRANULE;
		s->n++;
	}
	return 0;
}

/* Drop the read's references to its granules (<n> bytes were read into
 * them), but keep the one the next byte would go to when a body refers to
 * it: the next read fills its tail first. */
static void
read_segs_release(struct upstream_conn *c, struct read_segs *s, size_t n)
{
	size_t start = 0;

	for (int i = 0; i < s->n; i++) {
		size_t len = s->iov[i].iov_len;
		size_t offset = (size_t)((char *)s->iov[i].iov_base - read_block_data(s->block[i]));

		if (c->block == NULL && n >= start && n < start + len &&
		    read_block_refs(s->block[i]) > 1) {
			c->block = s->block[i];
			c->block_used = offset + (n - start);
		} else {
			read_block_unref(s->block[i]);
		}
		start += len;
	}
	s->n = 0;
}

/* readv() <s>: bytes read, 0 at end of stream, -1 when it would block, -2
 * on error (as tlsio_read). */
static ssize_t
read_segs_plain(int fd, struct read_segs *s)
{
	for (;;) {
		ssize_t n = readv(fd, s->iov, s->n);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
	}
}

/* Parse the <n> bytes read into <s>, a segment at a time (http-parser
 * takes contiguous input; a head split between segments is accumulated as
 * between reads).  Returns the bytes consumed; when the parser stopped
 * before <n> and the exchange upgraded, the bytes after the head are in a
 * new buffer at *<rest> (NULL when out of memory). */
static size_t
parse_segs(struct upstream_exchange *x, struct read_segs *s, size_t n, struct evbuffer **rest)
{
	struct upstream_conn *c = x->conn;
	size_t used = 0, start = 0;
	int i;

	for (i = 0; i < s->n && start < n; i++) {
		size_t len = s->iov[i].iov_len < n - start ? s->iov[i].iov_len : n - start;
		size_t u;

		c->parsing = s->block[i];
		u = parse_bytes(x, s->iov[i].iov_base, len);
		used += u;
		if (u < len)
			break;
		start += len;
	}
	c->parsing = NULL;
	if (!x->upgraded || used == n)
		return used;
	*rest = evbuffer_new();
	for (size_t at = used - start; i < s->n && start < n && *rest != NULL; i++, at = 0) {
		size_t len = s->iov[i].iov_len < n - start ? s->iov[i].iov_len : n - start;

		if (evbuffer_add(*rest, (char *)s->iov[i].iov_base + at, len - at) < 0) {
			evbuffer_free(*rest);
			*rest = NULL;
		}
		start += len;
	}
	return used;
}

/* A granule of a response that had spent its budget was freed: read on
 * (unless the client's backlog paused the exchange). */
static void
conn_budget_released(struct read_budget *budget)
{
	struct upstream_conn *c = (struct upstream_conn *)((char *)budget -
							   offsetof(struct upstream_conn, budget));

	if (c->x == NULL || c->x->paused)
		return;
	conn_reading(c, true);
	event_active(c->rev, EV_READ, 1);
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;
	size_t turn = 0; /* bytes read in this call */

	if (c->handshaking) {
		conn_handshake(c);
		return;
	}
	for (int rounds = 0; rounds < 16; rounds++) {
		struct upstream_exchange *x = c->x;
		struct read_segs s;
		struct evbuffer *rest = NULL;
		ssize_t n;
		size_t used;

		if (read_segs_take(c, &s) < 0) {
			read_segs_release(c, &s, 0);
			if (x)
				exchange_fail(x, UPSTREAM_RESET);
			else
				conn_close(c);
			return;
		}
		if (s.n == 0) {
			/* The response holds its budget: read on once the
			 * client has taken some of it (conn_budget_released). */
			c->budget.starved = true;
			conn_reading(c, false);
			return;
		}
		if (c->ssl != NULL)
			n = tlsio_read(c->ssl, fd, s.iov[0].iov_base, s.iov[0].iov_len,
				       &c->read_wants_write);
		else
			n = read_segs_plain(fd, &s);
		if (c->ssl != NULL && x != NULL && evbuffer_get_length(c->out) > 0 &&
		    conn_flush(c) < 0) {
			read_segs_release(c, &s, 0);
			exchange_fail(x, UPSTREAM_RESET); /* a write that waited for this read */
			return;
		}
		if (n == -1) {
			read_segs_release(c, &s, 0);
			if (c->read_wants_write)
				event_add(c->wev, NULL);
			return;
		}
		if (x == NULL) {
			read_segs_release(c, &s, 0);
			conn_close(c); /* idle: closed by the server, or unexpected bytes */
			return;
		}
		if (n <= 0) {
			read_segs_release(c, &s, 0);
			conn_eof(c, n < 0);
			return;
		}
		turn += (size_t)n;
		if (!x->responded)
			conn_set_timer(c, c->pool ? c->pool->up->response_timeout : 60);
		used = parse_segs(x, &s, (size_t)n, &rest);
		read_segs_release(c, &s, (size_t)n);
		/* Bytes after the end of the response: the connection is out of
		 * step; clearing the paused state makes exchange_done close it. */
		if (x->upgraded && !x->cancelled && !x->failed) {
			exchange_upgrade(x, used < (size_t)n ? rest : evbuffer_new());
			return;
		}
		if (rest != NULL)
			evbuffer_free(rest);
		if (x->complete && used < (size_t)n)
			x->parser.http_errno = HPE_OK;
		if (exchange_settle(x))
			return;
		/* TLS hands over one record a read: go on until it wants more. */
		if ((c->ssl == NULL && (size_t)n < s.room) || x->paused)
			return;
		/* A body streaming to the client: one read (64 KiB) a turn of
		 * the loop, so that the client's write comes before the next
		 * read (the event is level-triggered: it fires again at once).
		 * TLS reads record by record up to as much first; decrypted
		 * bytes OpenSSL holds are invisible to epoll, so the event is
		 * made active. */
		if (x->responded && !x->complete &&
		    (c->ssl == NULL || turn >= READ_GRANULES * READ_GRANULE)) {
			if (c->ssl != NULL && SSL_has_pending(c->ssl))
				event_active(c->rev, EV_READ, 1);
			return;
		}
	}
}

/* Connected (and TLS set up): send what waits. */
static void
conn_established(struct upstream_conn *c)
{
	c->state = CONN_BUSY;
	c->x->sent = true;
	conn_set_timer(c, c->pool ? c->pool->up->response_timeout : 60);
	conn_reading(c, true);
	if (conn_flush(c) < 0)
		exchange_fail(c->x, UPSTREAM_RESET);
}

/* One step of the TLS handshake; on failure the pool keeps the reason. */
static void
conn_handshake(struct upstream_conn *c)
{
	int rc, err;

	tlsio_clear_errors();
	rc = SSL_connect(c->ssl);
	if (rc == 1) {
		c->handshaking = false;
		conn_established(c);
		return;
	}
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ) {
		conn_reading(c, true);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		event_add(c->wev, NULL);
		return;
	}
	if (c->pool != NULL)
		snprintf(c->pool->tls_error, sizeof c->pool->tls_error, "%s",
			 tls_client_failure(c->ssl, err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN
							    ? "the upstream closed the connection"
							    : "handshake failure"));
	exchange_fail(c->x, UPSTREAM_TLS_FAILED);
}

/* TCP connected: start TLS on an upstream with "tls". */
static void
conn_start_tls(struct upstream_conn *c)
{
	const struct config_upstream *up = c->pool->up;
	const char *name = up->tls_server_name ? up->tls_server_name : up->servers[c->server].host;

	c->ssl = tls_client_new(up->tls_ctx, c->fd, name, name,
				&c->pool->servers[c->server].session);
	if (c->ssl == NULL) {
		snprintf(c->pool->tls_error, sizeof c->pool->tls_error, "%s",
			 tls_client_failure(NULL, "cannot set up TLS"));
		exchange_fail(c->x, UPSTREAM_TLS_FAILED);
		return;
	}
	c->handshaking = true;
	conn_handshake(c);
}

/* Connected (or failed to): check, then send what waits. */
static void
conn_connected(struct upstream_conn *c)
{
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		exchange_fail(c->x, UPSTREAM_CONNECT_FAILED);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (c->pool != NULL && c->pool->up->tls_ctx != NULL)
		conn_start_tls(c);
	else
		conn_established(c);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->fail_pending) {
		exchange_fail(c->x, c->pending);
		return;
	}
	if (c->handshaking) {
		conn_handshake(c);
		return;
	}
	if (c->state == CONN_CONNECTING) {
		conn_connected(c);
		return;
	}
	if (c->read_wants_write) {
		c->read_wants_write = false;
		event_active(c->rev, EV_READ, 1);
	}
	if (c->x == NULL)
		return;
	if (conn_flush(c) < 0) {
		exchange_fail(c->x, UPSTREAM_RESET);
		return;
	}
	/* The upstream is taking the request: it is not stalled. */
	if (!c->x->responded)
		conn_set_timer(c, c->pool ? c->pool->up->response_timeout : 60);
}

/* Report <why> from the event loop, so that no callback runs before
 * upstream_exchange_start returns. */
static void
conn_fail_soon(struct upstream_conn *c, enum upstream_failure why)
{
	if (c->fd >= 0 && c->state == CONN_CONNECTING) {
		event_del(c->wev);
		close(c->fd);
		c->fd = -1;
		c->reading = false;
	}
	c->fail_pending = true;
	c->pending = why;
	event_active(c->wev, EV_WRITE, 1);
}

/* A failure: now, or soon when it is found while starting. */
static void
conn_fail(struct upstream_conn *c, enum upstream_failure why)
{
	if (c->starting)
		conn_fail_soon(c, why);
	else
		exchange_fail(c->x, why);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->x == NULL) {
		conn_close(c); /* idle timeout */
		return;
	}
	exchange_fail(c->x, c->state == CONN_CONNECTING ? UPSTREAM_CONNECT_TIMEOUT
							: UPSTREAM_RESPONSE_TIMEOUT);
}

/* Start connecting to <sa>.  Returns 0, or -1 (the caller fails the exchange). */
static int
conn_start_connect(struct upstream_conn *c, const struct sockaddr *sa, socklen_t salen)
{
	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	event_assign(c->rev, c->pool->base, c->fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	event_assign(c->wev, c->pool->base, c->fd, EV_WRITE, conn_write_cb, c);
	if (connect(c->fd, sa, salen) < 0 && errno != EINPROGRESS)
		return -1;
	event_add(c->wev, NULL); /* writable = connected (or refused) */
	return 0;
}

static void
conn_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct upstream_conn *c = arg;

	if (result == EVUTIL_EAI_CANCEL)
		return; /* the connection is gone */
	c->dns_req = NULL;
	if (result != 0 || res == NULL)
		conn_fail(c, UPSTREAM_DNS_FAILED);
	else if (conn_start_connect(c, res->ai_addr, (socklen_t)res->ai_addrlen) < 0)
		conn_fail(c, UPSTREAM_CONNECT_FAILED);
	if (res)
		evutil_freeaddrinfo(res);
}

static struct upstream_conn *
conn_connect(struct upstream_pool *pool, int index)
{
	struct upstream_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->pool = pool;
	c->server = index;
	c->health = &pool->health[index];
	c->state = CONN_CONNECTING;
	c->fd = -1;
	c->budget.released = conn_budget_released;
	c->out = evbuffer_new();
	c->body = evbuffer_new();
	c->rev = event_new(pool->base, -1, 0, conn_read_cb, c);
	c->wev = event_new(pool->base, -1, 0, conn_write_cb, c);
	c->timer = evtimer_new(pool->base, conn_timer_cb, c);
	if (!c->out || !c->body || !c->rev || !c->wev || !c->timer) {
		if (c->out)
			evbuffer_free(c->out);
		if (c->body)
			evbuffer_free(c->body);
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		if (c->timer)
			event_free(c->timer);
		free(c);
		return NULL;
	}
	atomic_fetch_add(&c->health->open, 1);
	return c;
}

/* Resolve (when the host is a name) and connect.  Runs with the exchange
 * attached; failures found here are reported from the event loop. */
static void
conn_begin(struct upstream_conn *c)
{
	struct upstream_pool *pool = c->pool;
	const struct config_server *srv = &pool->up->servers[c->server];
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} addr;

	c->starting = true;
	conn_set_timer(c, pool->up->connect_timeout);
	memset(&addr, 0, sizeof(addr));
	if (inet_pton(AF_INET, srv->host, &addr.in4.sin_addr) == 1) {
		addr.in4.sin_family = AF_INET;
		addr.in4.sin_port = htons(srv->port);
		if (conn_start_connect(c, &addr.sa, sizeof(addr.in4)) < 0)
			conn_fail_soon(c, UPSTREAM_CONNECT_FAILED);
	} else if (inet_pton(AF_INET6, srv->host, &addr.in6.sin6_addr) == 1) {
		addr.in6.sin6_family = AF_INET6;
		addr.in6.sin6_port = htons(srv->port);
		if (conn_start_connect(c, &addr.sa, sizeof(addr.in6)) < 0)
			conn_fail_soon(c, UPSTREAM_CONNECT_FAILED);
	} else {
		struct evutil_addrinfo hints;
		char port[8];

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
		snprintf(port, sizeof(port), "%u", srv->port);
		/* May call back at once (names from /etc/hosts). */
		c->dns_req = evdns_getaddrinfo(pool->dns, srv->host, port, &hints, conn_dns_cb, c);
	}
	c->starting = false;
}

/*
 * An idle connection of server <index> that is still open, or NULL.  One that
 * sat idle for a while is checked first: the server may have closed it a
 * moment ago, and its FIN may not have reached our event loop yet.  Sending
 * a request into such a connection fails, and a POST cannot be retried.
 */
static struct upstream_conn *
take_idle(struct upstream_pool *pool, int index)
{
	struct upstream_conn *c;
	int64_t now = 0;

	while ((c = LIST_FIRST(&pool->servers[index].idle)) != NULL) {
		char probe;
		ssize_t n;

		LIST_REMOVE(c, link);
		pool->servers[index].nidle--;
		c->state = CONN_BUSY;
		if (now == 0)
			now = monotonic_ms();
		if (now - c->idle_since_ms < 10)
			return c; /* busy traffic: reused at once, no extra system call */
		n = recv(c->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return c;
		conn_close(c); /* closed (0), reset (-1) or sending unasked bytes */
	}
	return NULL;
}

struct upstream_exchange *
upstream_exchange_start(struct upstream_pool *pool, int index, struct evbuffer *request,
			bool head_request, bool fresh, const struct upstream_response_ops *ops,
			void *arg)
{
	struct upstream_exchange *x = calloc(1, sizeof(*x));
	struct upstream_conn *c;

	if (x == NULL)
		return NULL;
	TAILQ_INIT(&x->headers);
	hdrarena_init(&x->arena);
	x->hb.arena = &x->arena;
	x->ops = ops;
	x->arg = arg;
	x->head_request = head_request;
	headerbuf_reset(&x->hb, pool->max_header_bytes);
	http_parser_init(&x->parser, HTTP_RESPONSE);
	x->parser.data = x;

	c = fresh ? NULL : take_idle(pool, index);
	if (c != NULL) {
		x->reused = true;
		x->sent = true;
	} else {
		c = conn_connect(pool, index);
		if (c == NULL) {
			exchange_free(x);
			return NULL;
		}
	}
	c->x = x;
	c->uses++;
	x->conn = c;
	x->body = c->body;
	headerbuf_swap_buffers(&x->hb, &c->hb_spare); /* borrow the scratch buffers */
	pool->busy++;
	atomic_fetch_add(&c->health->active, 1);
	evbuffer_add_buffer(c->out, request);
	if (x->reused) {
		/* Connected and almost always writable: write now. */
		conn_set_timer(c, pool->up->response_timeout);
		if (conn_flush(c) < 0) {
			evbuffer_drain(c->out, evbuffer_get_length(c->out));
			conn_fail_soon(c, UPSTREAM_RESET);
		}
	} else {
		conn_begin(c);
	}
	return x;
}

void
upstream_exchange_allow_upgrade(struct upstream_exchange *x)
{
	x->upgrade_ok = x->ops->upgraded != NULL;
}

void
upstream_exchange_pause(struct upstream_exchange *x, bool paused)
{
	if (x->paused == paused || x->conn == NULL)
		return;
	x->paused = paused;
	conn_reading(x->conn, !paused);
	if (!paused)
		event_active(x->conn->rev, EV_READ, 1); /* bytes may wait in the kernel */
}

void
upstream_exchange_cancel(struct upstream_exchange *x)
{
	if (x->in_callback) {
		x->cancelled = true; /* finished by the code that called back */
		return;
	}
	release_conn(x, false);
	exchange_free(x);
}

const char *
upstream_failure_text(enum upstream_failure why)
{
	switch (why) {
	case UPSTREAM_CONNECT_FAILED:
		return "the upstream refused the connection";
	case UPSTREAM_CONNECT_TIMEOUT:
		return "the upstream did not accept the connection in time";
	case UPSTREAM_DNS_FAILED:
		return "the upstream name did not resolve";
	case UPSTREAM_RESET:
		return "the upstream closed the connection";
	case UPSTREAM_RESPONSE_TIMEOUT:
		return "the upstream did not answer in time";
	case UPSTREAM_BAD_RESPONSE:
		return "the upstream sent an invalid response";
	case UPSTREAM_HEADERS_TOO_LARGE:
		return "the upstream's response headers are too large";
	case UPSTREAM_TLS_FAILED:
		return "the TLS handshake with the upstream failed";
	}
	return "upstream failure";
}

const char *
upstream_failure_detail(struct upstream_pool *pool, enum upstream_failure why)
{
	static _Thread_local char buf[400];

	if (why != UPSTREAM_TLS_FAILED || pool == NULL || pool->tls_error[0] == '\0')
		return upstream_failure_text(why);
	snprintf(buf, sizeof buf, "%s: %s", upstream_failure_text(why), pool->tls_error);
	return buf;
}

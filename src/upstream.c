/* upstream: pooled connections to upstream servers and HTTP/1.1 exchanges; see upstream.h. */
#include "upstream.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

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

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

struct upstream_conn {
	LIST_ENTRY(upstream_conn) link; /* in the server's idle list */
	struct upstream_pool *pool;     /* NULL once the pool is gone */
	struct server_health *health;
	int server;
	struct bufferevent *bev;
	enum conn_state state;
	unsigned uses;                  /* exchanges run on it */
	struct upstream_exchange *x;
};

LIST_HEAD(conn_list, upstream_conn);

struct pool_server {
	struct conn_list idle;
	size_t nidle;
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
	enum upstream_failure failure;
	/* Header accumulation. */
	struct evkeyvalq headers;
	char *field, *value;
	size_t field_len, value_len, field_cap, value_cap;
	bool last_was_value;
	size_t header_bytes;
	size_t max_header_bytes;
	struct evbuffer *body;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void idle_read_cb(struct bufferevent *bev, void *arg);
static void idle_event_cb(struct bufferevent *bev, short what, void *arg);

static struct timeval
seconds_tv(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

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
	bufferevent_free(c->bev);
	free(c);
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
	free(pool->servers);
	free(pool);
}

/* An exchange left the pool; free the pool if it was released meanwhile. */
static void
pool_exchange_ended(struct upstream_pool *pool)
{
	pool->busy--;
	if (pool->freed && pool->busy == 0) {
		free(pool->servers);
		free(pool);
	}
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
grow_append(char **buf, size_t *len, size_t *cap, const char *at, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = (*len + n + 1) * 2;
		char *p = realloc(*buf, ncap);

		if (p == NULL)
			return -1;
		*buf = p;
		*cap = ncap;
	}
	memcpy(*buf + *len, at, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* Store the header collected so far.  Returns 0 or -1. */
static int
commit_header(struct upstream_exchange *x)
{
	int rc = 0;

	if (x->field_len == 0)
		return 0;
	if (x->value == NULL && grow_append(&x->value, &x->value_len, &x->value_cap, "", 0) < 0)
		return -1;
	/* evhttp_add_header refuses CR/LF in values; http-parser has already
	 * refused them, so a failure here is an allocation failure. */
	if (evhttp_add_header(&x->headers, x->field, x->value) < 0)
		rc = -1;
	x->field_len = x->value_len = 0;
	if (x->field)
		x->field[0] = '\0';
	if (x->value)
		x->value[0] = '\0';
	return rc;
}

static int
count_header_bytes(struct upstream_exchange *x, size_t n)
{
	x->header_bytes += n;
	if (x->header_bytes > x->max_header_bytes) {
		x->failed = true;
		x->failure = UPSTREAM_HEADERS_TOO_LARGE;
		return -1;
	}
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct upstream_exchange *x = p->data;

	if (count_header_bytes(x, n) < 0)
		return -1;
	if (x->last_was_value) {
		if (commit_header(x) < 0)
			return -1;
		x->last_was_value = false;
	}
	return grow_append(&x->field, &x->field_len, &x->field_cap, at, n);
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct upstream_exchange *x = p->data;

	if (count_header_bytes(x, n + 4) < 0)
		return -1;
	x->last_was_value = true;
	return grow_append(&x->value, &x->value_len, &x->value_cap, at, n);
}

static int
on_status(http_parser *p, const char *at, size_t n)
{
	return count_header_bytes(p->data, n + 16);
}

static void
clear_headers(struct upstream_exchange *x)
{
	evhttp_clear_headers(&x->headers);
	x->field_len = x->value_len = 0;
	x->last_was_value = false;
}

static int
on_headers_complete(http_parser *p)
{
	struct upstream_exchange *x = p->data;
	int rc;

	if (x->last_was_value && commit_header(x) < 0)
		return -1;
	x->last_was_value = false;
	if (p->status_code >= 100 && p->status_code < 200) {
		if (p->status_code == 101) { /* we never ask for an upgrade */
			x->failed = true;
			x->failure = UPSTREAM_BAD_RESPONSE;
			return -1;
		}
		clear_headers(x); /* interim response (103 Early Hints ...): skip */
		x->header_bytes = 0;
		return 0;
	}
	server_succeeded(x->conn);
	x->responded = true;
	x->in_callback = true;
	rc = x->ops->head(x->arg, (int)p->status_code, &x->headers);
	x->in_callback = false;
	if (rc < 0 || x->cancelled) {
		x->cancelled = true;
		return -1;
	}
	return x->head_request ? 1 : 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct upstream_exchange *x = p->data;

	return evbuffer_add(x->body, at, n);
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
	evhttp_clear_headers(&x->headers);
	free(x->field);
	free(x->value);
	evbuffer_free(x->body);
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
	c->x = NULL;
	atomic_fetch_sub(&c->health->active, 1);
	if (keep && pool && !pool->freed &&
	    pool->servers[c->server].nidle < pool->up->max_idle &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		struct timeval idle = seconds_tv(pool->up->idle_timeout);

		c->state = CONN_IDLE;
		LIST_INSERT_HEAD(&pool->servers[c->server].idle, c, link);
		pool->servers[c->server].nidle++;
		bufferevent_setcb(c->bev, idle_read_cb, NULL, idle_event_cb, c);
		bufferevent_set_timeouts(c->bev, &idle, NULL);
		bufferevent_enable(c->bev, EV_READ);
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
	if (evbuffer_get_length(x->body) == 0 || x->cancelled)
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
		x->failure = UPSTREAM_BAD_RESPONSE;
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

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_exchange *x = c->x;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (x == NULL)
		return;
	while (evbuffer_get_length(in) > 0 && !x->complete && !x->failed && !x->cancelled) {
		struct evbuffer_iovec vec;
		size_t used;

		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
			break;
		used = parse_bytes(x, vec.iov_base, vec.iov_len);
		evbuffer_drain(in, used);
		if (used < vec.iov_len && !x->complete)
			break;
	}
	/* Bytes after the end of the response: the connection is out of step;
	 * clearing the paused state makes exchange_done close it. */
	if (x->complete && evbuffer_get_length(in) > 0)
		x->parser.http_errno = HPE_OK;
	exchange_settle(x);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_exchange *x = c->x;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		struct timeval rt;
		evutil_socket_t fd = bufferevent_getfd(bev);

		c->state = CONN_BUSY;
		if (fd >= 0)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (x) {
			rt = seconds_tv(c->pool ? c->pool->up->response_timeout : 60);
			x->sent = true;
			bufferevent_set_timeouts(bev, &rt, &rt);
		}
		return;
	}
	if (x == NULL) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_CONNECTING) {
		enum upstream_failure why = UPSTREAM_CONNECT_FAILED;

		if (what & BEV_EVENT_TIMEOUT)
			why = UPSTREAM_CONNECT_TIMEOUT;
		else if (bufferevent_socket_get_dns_error(bev) != 0)
			why = UPSTREAM_DNS_FAILED;
		exchange_fail(x, why);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		exchange_fail(x, UPSTREAM_RESPONSE_TIMEOUT);
		return;
	}
	if ((what & BEV_EVENT_EOF) && x->responded) {
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

static void
idle_read_cb(struct bufferevent *bev, void *arg)
{
	/* An idle connection must not receive anything: drop it. */
	conn_close(arg);
}

static void
idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_close(arg); /* closed by the server, error or idle timeout */
}

static struct upstream_conn *
conn_connect(struct upstream_pool *pool, int index)
{
	const struct config_server *srv = &pool->up->servers[index];
	struct upstream_conn *c = calloc(1, sizeof(*c));
	struct timeval ct = seconds_tv(pool->up->connect_timeout);

	if (c == NULL)
		return NULL;
	c->pool = pool;
	c->server = index;
	c->health = &pool->health[index];
	c->state = CONN_CONNECTING;
	c->bev = bufferevent_socket_new(pool->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		free(c);
		return NULL;
	}
	atomic_fetch_add(&c->health->open, 1);
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_set_timeouts(c->bev, &ct, &ct);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	/* Errors (even immediate ones) arrive through conn_event_cb. */
	bufferevent_socket_connect_hostname(c->bev, pool->dns, AF_UNSPEC, srv->host, srv->port);
	return c;
}

struct upstream_exchange *
upstream_exchange_start(struct upstream_pool *pool, int index, struct evbuffer *request,
			bool head_request, const struct upstream_response_ops *ops, void *arg)
{
	struct upstream_exchange *x = calloc(1, sizeof(*x));
	struct upstream_conn *c;

	if (x == NULL)
		return NULL;
	x->body = evbuffer_new();
	if (x->body == NULL) {
		free(x);
		return NULL;
	}
	TAILQ_INIT(&x->headers);
	x->ops = ops;
	x->arg = arg;
	x->head_request = head_request;
	x->max_header_bytes = pool->max_header_bytes;
	http_parser_init(&x->parser, HTTP_RESPONSE);
	x->parser.data = x;

	c = LIST_FIRST(&pool->servers[index].idle);
	if (c != NULL) {
		struct timeval rt = seconds_tv(pool->up->response_timeout);

		LIST_REMOVE(c, link);
		pool->servers[index].nidle--;
		c->state = CONN_BUSY;
		x->reused = true;
		x->sent = true;
		bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
		bufferevent_set_timeouts(c->bev, &rt, &rt);
		/* Written below without waiting for writability; this only
		 * clears a flag (the write event is not pending when idle). */
		bufferevent_disable(c->bev, EV_WRITE);
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
	pool->busy++;
	atomic_fetch_add(&c->health->active, 1);
	bufferevent_write_buffer(c->bev, request);
	if (x->reused) {
		/* The socket is connected and almost always writable: write now
		 * rather than ask epoll first, and wait for writability only
		 * for what the kernel did not take. */
		struct evbuffer *out = bufferevent_get_output(c->bev);

		evbuffer_write(out, bufferevent_getfd(c->bev));
		if (evbuffer_get_length(out) > 0)
			bufferevent_enable(c->bev, EV_WRITE);
	}
	return x;
}

void
upstream_exchange_pause(struct upstream_exchange *x, bool paused)
{
	if (x->paused == paused || x->conn == NULL)
		return;
	x->paused = paused;
	if (paused)
		bufferevent_disable(x->conn->bev, EV_READ);
	else
		bufferevent_enable(x->conn->bev, EV_READ);
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
	}
	return "upstream failure";
}

/* proxy: one transaction from request to response; see proxy.h. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "base/poison.h"
#include "http/hdrarena.h"
#include "http/headers.h"
#include "http/headwriter.h"
#include "access/ipacl.h"
#include "access/access.h"
#include "access/access_check.h"
#include "acme/acme.h"
#include "auth/auth.h"
#include "base/log.h"
#include "base/metrics.h"
#include "http/pathnorm.h"
#include "http/target.h"
#include "proxy/fwdheaders.h"
#include "proxy/compress.h"
#include "proxy/forward_auth.h"
#include "proxy/router.h"
#include "proxy/routing.h"
#include "http/request.h"
#include "http/tunnel.h"
#include "proxy/upstream.h"
#include "proxy/websocket.h"
#include "http/traceparent.h"
#include "base/refusals.h"
#include "core/generation.h"
#include "tls/tls_clientauth.h"

#define PATH_MAX_BYTES 8192
#define ALLOWED_METHODS "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

struct txn {
	struct txn_env *env;
	struct txn_listener *listener;
	struct worker_gen *gen;
	const struct config *cfg;
	struct server_request *req;   /* NULL once the server has dropped it */
	enum server_proto proto;      /* the protocol it came in */
	struct evkeyvalq out;         /* response headers being built (entries mostly in <arena>) */
	const struct config_site *site;
	const struct config_route *route;      /* the route that acts */
	const struct config_route *jump_route; /* the "site" route that led there, or NULL */
	struct upstream_pool *pool;
	struct upstream_exchange *x;
	char *head;                   /* request head without Host line, kept for retries: */
	size_t head_len;              /* head_inline or (longer heads) the heap */
	const char *method;
	unsigned method_bit;
	const char *query;
	const char *host_header;      /* as the client sent it */
	const char *route_host;       /* what routing reads: Host, or an absolute target's host */
	const char *upstream_host;    /* Host to send; NULL = the chosen server's */
	const char *forwarded_for;    /* the client's X-Forwarded-For (trusted peers only) */
	char *forwarded_for_joined;   /* several X-Forwarded-For headers, joined (owned) */
	char *query_copy;             /* owned copy of the query */
	int server;
	uint64_t tried;
	unsigned attempts;
	enum upstream_failure last_failure;
	uint64_t body_reserved;
	uint64_t bytes_in, bytes_out;
	int status;
	struct access_outcome access; /* access_check_request: 403/429, country */
	double start, upstream_start, upstream_ms;
	bool replied;      /* a reply (or its start) went out */
	bool streaming;    /* server_reply_start was called */
	bool client_gone;
	bool paused;
	bool fresh_conn;   /* the next attempt opens a new connection */
	bool client_trusted;
	bool auth_body;    /* the SAML ACS POST: its body goes to auth_on_body */
	bool auth_waiting; /* auth_on_body answered AUTH_PENDING: auth.done finishes */
	bool trace_continued; /* the client sent one valid traceparent: its tracestate goes on */
	bool verify;          /* the verify endpoint: stands for the original request */
	bool verify_redirect; /* ... with "mode=redirect" (Traefik, Caddy) */
	struct auth_request auth; /* what the SAML gate sees (kept while it waits) */
	enum websocket_ask ws_ask; /* what the client's Upgrade asks for */
	bool ws;                   /* a WebSocket upgrade goes upstream */
	struct websocket_upgrade ws_up;
	struct compress_stream *compress; /* the body is being compressed (compress.h) */
	char client[INET6_ADDRSTRLEN];
	char request_id[129];
	char trace_id[33];                       /* logged beside the request id */
	char traceparent[TRACEPARENT_LEN + 1];   /* what the upstream gets */
	char host[256];
	char target_host[256];        /* an absolute-form target's authority */
	char path[PATH_MAX_BYTES];
	char fwd_path[PATH_MAX_BYTES];
	struct hdrarena arena;        /* for <out>: see hdrarena.h for the rules */
	char head_inline[2048];
};

static void txn_finish(struct txn *t);
static void start_attempt(struct txn *t);

static bool
method_is_idempotent(unsigned bit)
{
	return bit & (METHOD_GET | METHOD_HEAD | METHOD_PUT | METHOD_DELETE | METHOD_OPTIONS);
}

/* ---- client address ---------------------------------------------------- */

/* Dotted quad of the 4 bytes at <b> (what inet_ntop writes, without its
 * sprintf).  <out> holds at least INET_ADDRSTRLEN bytes. */
static void
format_ipv4(const unsigned char *b, char *out)
{
	char *p = out;

	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];

		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = i < 3 ? '.' : '\0';
	}
}

/* Text of an address; IPv4-mapped IPv6 prints as IPv4. */
static void
format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
	out[0] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const void *a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;

		if (outlen >= INET_ADDRSTRLEN)
			format_ipv4(a, out);
		else
			inet_ntop(AF_INET, a, out, (socklen_t)outlen);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a) && outlen >= INET_ADDRSTRLEN)
			format_ipv4(&a->s6_addr[12], out);
		else if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)outlen);
		else
			inet_ntop(AF_INET6, a, out, (socklen_t)outlen);
	}
}

/* ---- replies ------------------------------------------------------------ */

static void
add_common_response_headers(struct txn *t, struct evkeyvalq *out)
{
	hdrarena_add(&t->arena, out, "X-Request-ID", t->request_id);
	/* HSTS only over TLS (RFC 6797 7.2); ours replaces the upstream's. */
	if (t->listener->tls && t->site && t->site->hsts.enabled) {
		const struct config_hsts *h = &t->site->hsts;
		char v[96];

		while (hdrarena_remove_header(&t->arena, out, "Strict-Transport-Security") == 0)
			continue;
		snprintf(v, sizeof(v), "max-age=%llu%s%s", (unsigned long long)h->max_age,
			 h->include_subdomains ? "; includeSubDomains" : "",
			 h->preload ? "; preload" : "");
		hdrarena_add(&t->arena, out, "Strict-Transport-Security", v);
	}
}

/* Answer with a short text/plain body.  <close>: close the connection after. */
static void
reply_text(struct txn *t, int status, const char *detail, bool close)
{
	struct evbuffer *body;

	t->status = status;
	if (t->client_gone || t->req == NULL)
		return;
	body = evbuffer_new();
	t->replied = true;
	hdrarena_clear_headers(&t->arena, &t->out);
	if (status == 405)
		hdrarena_add(&t->arena, &t->out, "Allow", ALLOWED_METHODS);
	hdrarena_add(&t->arena, &t->out, "Content-Type", "text/plain; charset=utf-8");
	hdrarena_add(&t->arena, &t->out, "Cache-Control", "no-store");
	add_common_response_headers(t, &t->out);
	if (status == 429 && t->access.retry_after > 0) {
		char retry[16];

		snprintf(retry, sizeof(retry), "%u", t->access.retry_after);
		hdrarena_add(&t->arena, &t->out, "Retry-After", retry);
	}
	if (body) {
		evbuffer_add_printf(body, "%d %s: %s\n", status, server_status_text(status), detail);
		t->bytes_out = evbuffer_get_length(body);
	}
	server_reply(t->req, status, &t->out, body, close);
	t->req = NULL;
	if (body)
		evbuffer_free(body);
}

/* Refuse the request with a 4xx/5xx before anything was forwarded. */
static void
refuse(struct txn *t, int status, const char *detail, bool close)
{
	reply_text(t, status, detail, close);
	txn_finish(t);
}

static void
apply_header_ops(struct txn *t, const struct config_header_ops *ops)
{
	struct evkeyvalq *headers = &t->out;

	for (size_t i = 0; i < ops->nremove; i++)
		while (hdrarena_remove_header(&t->arena, headers, ops->remove[i]) == 0)
			continue;
	for (size_t i = 0; i < ops->nset; i++) {
		while (hdrarena_remove_header(&t->arena, headers, ops->set[i].name) == 0)
			continue;
		hdrarena_add(&t->arena, headers, ops->set[i].name, ops->set[i].value);
	}
	for (size_t i = 0; i < ops->nadd; i++)
		hdrarena_add(&t->arena, headers, ops->add[i].name, ops->add[i].value);
}

static void
respond_fixed(struct txn *t)
{
	const struct config_route *r = t->route;
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		refuse(t, 500, "out of memory", false);
		return;
	}
	t->status = r->status;
	t->replied = true;
	if (r->action == ACTION_REDIRECT) {
		size_t len = strlen(r->redirect_to);
		char *location;

		/* Location: the target, then (keep_path) the path without doubling
		 * a "/" and the query. */
		evbuffer_add_printf(body, "%s", r->redirect_to);
		if (r->redirect_keep_path) {
			evbuffer_add_printf(body, "%s",
					    (len && r->redirect_to[len - 1] == '/') ? t->path + 1 : t->path);
			if (t->query)
				evbuffer_add_printf(body, "?%s", t->query);
		}
		evbuffer_add(body, "", 1);
		location = (char *)evbuffer_pullup(body, -1);
		hdrarena_add(&t->arena, &t->out, "Location", location);
		evbuffer_drain(body, evbuffer_get_length(body));
		hdrarena_add(&t->arena, &t->out, "Content-Type", "text/plain; charset=utf-8");
		evbuffer_add_printf(body, "Redirecting to %s\n",
				    evhttp_find_header(&t->out, "Location"));
	} else {
		hdrarena_add(&t->arena, &t->out, "Content-Type", r->content_type);
		evbuffer_add(body, r->body, strlen(r->body));
	}
	apply_header_ops(t, &r->response_headers);
	add_common_response_headers(t, &t->out);
	t->bytes_out = evbuffer_get_length(body);
	server_reply(t->req, r->status, &t->out, body, false);
	t->req = NULL;
	evbuffer_free(body);
	txn_finish(t);
}

/* ---- the upstream request ---------------------------------------------- */

/* A request head being written: bytes collect in caller-given storage,
 * moved to the heap (and grown there) when they outgrow it, then go to an
 * evbuffer in one evbuffer_add (one chain, not four evbuffer_add calls per
 * header line). */
struct headout {
	char *buf;
	size_t len, cap;
	bool heap;         /* buf was allocated here (else the caller's storage) */
	bool failed;       /* out of memory: the head is incomplete */
};

static void
headout_init(struct headout *o, char *storage, size_t size)
{
	o->buf = storage;
	o->len = 0;
	o->cap = size;
	o->heap = false;
	o->failed = false;
}

static void
headout_put(struct headout *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (n > o->cap - o->len) {
		size_t ncap = o->cap * 2 > o->len + n ? o->cap * 2 : o->len + n;
		char *p;

		if (o->len + n < o->len) {
			o->failed = true;
			return;
		}
		p = o->heap ? realloc(o->buf, ncap) : malloc(ncap);
		if (p == NULL) {
			o->failed = true;
			return;
		}
		if (!o->heap)
			memcpy(p, o->buf, o->len);
		o->buf = p;
		o->cap = ncap;
		o->heap = true;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* Give back what headout_put allocated. */
static void
headout_release(struct headout *o)
{
	if (o->heap)
		free(o->buf);
	o->heap = false;
	o->buf = NULL;
}

static void
headout_str(struct headout *o, const char *s)
{
	headout_put(o, s, strlen(s));
}

static void
add_header_line(struct headout *o, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	if (!o->failed && o->cap - o->len >= 4 && o->cap - o->len - 4 >= nl &&
	    o->cap - o->len - 4 - nl >= vl) {
		/* fits: one pass, no bounds checks */
		o->len += headwriter_format_line(o->buf + o->len, name, nl, value, vl);
		return;
	}
	headout_put(o, name, nl);
	headout_put(o, ": ", 2);
	headout_put(o, value, vl);
	headout_put(o, "\r\n", 2);
}

static void
add_ops_lines(struct headout *o, const struct config_header_ops *ops)
{
	for (size_t i = 0; i < ops->nset; i++)
		add_header_line(o, ops->set[i].name, ops->set[i].value);
	for (size_t i = 0; i < ops->nadd; i++)
		add_header_line(o, ops->add[i].name, ops->add[i].value);
}

/* Decimal digits of <v>, NUL-terminated, at the end of buf[0..24); returns
 * where they start (the length is buf + 23 - start). */
static char *
format_u64(char buf[24], uint64_t v)
{
	char *p = buf + 23;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return p;
}

/* fwdheaders_own_each's callback: one header line into a head. */
static void
add_own_line(void *arg, const char *name, const char *value, const char *more)
{
	struct headout *o = arg;

	if (more == NULL) {
		add_header_line(o, name, value);
		return;
	}
	headout_str(o, name);
	headout_put(o, ": ", 2);
	headout_str(o, value);
	headout_put(o, ", ", 2);
	headout_str(o, more);
	headout_put(o, "\r\n", 2);
}

/*
 * Build the request head (request line and every header but Host and
 * Content-Length, which depend on the attempt).  Returns 0 or -1.
 */
static int
build_head(struct txn *t)
{
	struct evkeyvalq *in = server_request_headers(t->req);
	struct headers_connection_list conn_list = {0};
	const struct config_header_ops *jops = t->jump_route ? &t->jump_route->request_headers : NULL;
	const struct config_header_ops *rops = &t->route->request_headers;
	bool drop_cookies = t->route->drop_cookies || (t->jump_route && t->jump_route->drop_cookies);
	struct evkeyval *kv;
	const char *xff = t->forwarded_for;
	const char *xfp = NULL, *xfh = NULL, *xfport = NULL;
	struct fwdheaders_rules rules;
	struct fwdheaders_own own;
	SSL *ssl = server_request_tls(t->req);
	const struct tls_client_identity *cert = ssl ? tls_client_identity(ssl) : NULL;
	char peer[INET6_ADDRSTRLEN];
	struct headout o;

	headout_init(&o, t->head_inline, sizeof(t->head_inline));
	headout_str(&o, t->method);
	headout_put(&o, " ", 1);
	headout_str(&o, t->fwd_path);
	if (t->query) {
		headout_put(&o, "?", 1);
		headout_str(&o, t->query);
	}
	headout_put(&o, " HTTP/1.1\r\n", 11);

	TAILQ_FOREACH(kv, in, next)
		if ((kv->key[0] | 0x20) == 'c' && strcasecmp(kv->key, "connection") == 0)
			headers_connection_parse(kv->value, &conn_list);

	rules = (struct fwdheaders_rules){
		.cfg = t->cfg, .conn = &conn_list, .jump_ops = jops, .route_ops = rops,
		.drop_cookies = drop_cookies, .ws_made_up_key = t->ws && t->ws_up.made_up,
		.trace_continued = t->trace_continued,
	};
	TAILQ_FOREACH(kv, in, next) {
		const char *name = kv->key;

		if (t->client_trusted && (name[0] | 0x20) == 'x') {
			if (strcasecmp(name, "x-forwarded-proto") == 0 && xfp == NULL)
				xfp = kv->value;
			else if (strcasecmp(name, "x-forwarded-host") == 0 && xfh == NULL)
				xfh = kv->value;
			else if (strcasecmp(name, "x-forwarded-port") == 0 && xfport == NULL)
				xfport = kv->value;
		}
		if (fwdheaders_dropped(&rules, name) != NULL)
			continue;
		add_header_line(&o, name, kv->value);
	}
	if (jops)
		add_ops_lines(&o, jops);
	add_ops_lines(&o, rops);
	if (t->ws) {
		char lines[192];

		headout_put(&o, lines, websocket_upgrade_lines(&t->ws_up, lines, sizeof(lines)));
	}

	peer[0] = '\0';
	if (xff)
		format_addr(server_request_peer(t->req), peer, sizeof(peer));
	own = (struct fwdheaders_own){
		.client = t->client, .forwarded_for = xff, .peer = peer, .proto = xfp,
		.fwd_host = xfh, .fwd_port = xfport, .tls = t->listener->tls,
		.host_header = t->host_header, .listener_port = t->listener->port,
		.request_id = t->request_id, .traceparent = t->traceparent,
		.country = t->access.country, .asn = t->access.asn,
	};
	if (cert != NULL) {
		own.cert_subject = cert->subject;
		own.cert_sha256 = cert->sha256;
		own.cert_san = cert->san;
	}
	fwdheaders_own_each(t->cfg, &own, add_own_line, &o);
	if (o.failed) {
		headout_release(&o);
		return -1;
	}
	t->head = o.buf;
	t->head_len = o.len;
	return 0;
}

/* ---- per-thread spares --------------------------------------------------- */

/* The last finished transaction's memory and an emptied request buffer,
 * kept by each worker thread for its next transaction (otherwise a malloc
 * and a free of each per request); proxy_release_spares frees them. */
static _Thread_local struct txn *spare_txn;
static _Thread_local struct evbuffer *spare_request;

/* Memory for a transaction (uninitialised), or NULL. */
static struct txn *
txn_alloc(void)
{
	struct txn *t = spare_txn;

	spare_txn = NULL;
	if (t == NULL)
		return malloc(sizeof(*t));
	MEM_UNPOISON(t, sizeof(*t));
	return t;
}

/* Done with the memory of transaction <t>. */
static void
txn_release(struct txn *t)
{
	if (spare_txn == NULL) {
		MEM_POISON(t, sizeof(*t)); /* a use after release is still reported */
		spare_txn = t;
	} else {
		free(t);
	}
}

/* An empty buffer for an attempt's request, or NULL. */
static struct evbuffer *
request_buffer_new(void)
{
	struct evbuffer *b = spare_request;

	spare_request = NULL;
	return b != NULL ? b : evbuffer_new();
}

/* Done with request buffer <b> (upstream_exchange_start moved its bytes
 * out, or they are dropped here). */
static void
request_buffer_release(struct evbuffer *b)
{
	if (spare_request == NULL && evbuffer_get_length(b) == 0)
		spare_request = b;
	else
		evbuffer_free(b);
}

void
proxy_release_spares(void)
{
	if (spare_txn != NULL)
		MEM_UNPOISON(spare_txn, sizeof(*spare_txn));
	free(spare_txn);
	spare_txn = NULL;
	if (spare_request != NULL)
		evbuffer_free(spare_request);
	spare_request = NULL;
}

/* The full request for one attempt on server <index>: head, Host,
 * Content-Length, body (referenced, not copied).  NULL on failure. */
static struct evbuffer *
build_attempt(struct txn *t, int index)
{
	struct evbuffer *b = request_buffer_new();
	struct evbuffer *body = server_request_body(t->req);
	size_t body_len = evbuffer_get_length(body);
	const char *host = t->upstream_host;
	char storage[4096];
	struct headout o;

	if (b == NULL)
		return NULL;
	headout_init(&o, storage, sizeof(storage));
	headout_put(&o, t->head, t->head_len);
	headout_put(&o, "Host: ", 6);
	if (host == NULL) {
		/* "host:port", "[v6]:port"; cut at 299 bytes as it always was */
		const struct config_server *s = upstream_server(t->pool, index);
		bool v6 = strchr(s->host, ':') != NULL;
		char digits[24];
		const char *port = format_u64(digits, s->port);
		size_t start = o.len;

		if (v6)
			headout_put(&o, "[", 1);
		headout_str(&o, s->host);
		headout_put(&o, v6 ? "]:" : ":", v6 ? 2 : 1);
		headout_put(&o, port, (size_t)(digits + sizeof(digits) - 1 - port));
		if (o.len - start > 299)
			o.len = start + 299;
	} else {
		headout_str(&o, host);
	}
	headout_put(&o, "\r\n", 2);
	if (body_len > 0 || (t->method_bit & (METHOD_POST | METHOD_PUT | METHOD_PATCH))) {
		char digits[24];
		const char *len = format_u64(digits, body_len);

		headout_put(&o, "Content-Length: ", 16);
		headout_put(&o, len, (size_t)(digits + sizeof(digits) - 1 - len));
		headout_put(&o, "\r\n", 2);
	}
	headout_put(&o, "\r\n", 2);
	if (o.failed || evbuffer_add(b, o.buf, o.len) < 0) {
		headout_release(&o);
		goto fail;
	}
	headout_release(&o);
	if (body_len > 0 && evbuffer_add_buffer_reference(b, body) < 0)
		goto fail;
	return b;
fail:
	evbuffer_free(b);
	return NULL;
}

/* ---- response side ------------------------------------------------------ */

/* The upstream answered 101 (only a WebSocket upgrade lets it through):
 * believed only with the Accept of our key, else 502.  False: refused. */
static bool
ws_switch_ok(struct txn *t, struct evkeyvalq *headers)
{
	const char *why = NULL;

	if (websocket_upgrade_accepted(&t->ws_up, headers, &why))
		return true;
	websocket_refused(WEBSOCKET_REFUSED_ACCEPT);
	log_warn("request %s: upstream %s (%s): refused its 101: %s", t->request_id,
		 t->route->upstream->name, upstream_server(t->pool, t->server)->address, why);
	refuse(t, 502, "the upstream did not accept the WebSocket upgrade", false);
	return false;
}

/* The upstream switched: its socket goes to a WebSocket tunnel, the client
 * gets the 101, the request is logged, and the client's connection joins
 * the tunnel once the 101 is written (websocket_take_client). */
static void
on_upstream_upgraded(void *arg, struct tunnel_end *end, struct evbuffer *rest)
{
	struct txn *t = arg;
	struct websocket_info info = {
		.listener = t->listener->index, .client = t->client, .host = t->host,
		.path = t->path, .route = t->route->name,
		.upstream = upstream_server(t->pool, t->server)->address,
		.request_id = t->request_id, .idle_timeout = t->route->websocket_idle_timeout,
		.session_end = t->auth.session_end, .gated = t->route->auth == AUTH_SAML,
		.close_at_session_end = !t->route->websocket_keep_at_session_end,
		.session_user = t->auth.session_user, .session_issued = t->auth.session_issued,
		.session_expires = t->auth.session_expires,
	};
	struct websocket *w;

	t->x = NULL;
	w = websocket_new(t->env, &info, end, rest);
	if (w == NULL) {
		refuse(t, 502, "out of memory", true);
		return;
	}
	server_request_on_tunnel(t->req, websocket_take_client, w);
	t->replied = true;
	server_reply(t->req, 101, &t->out, NULL, false);
	t->req = NULL;
	txn_finish(t);
}

static int
on_upstream_head(void *arg, int status, struct evkeyvalq *headers)
{
	struct txn *t = arg;
	struct headers_connection_list conn_list = {0};
	struct evkeyval *kv;

	t->upstream_ms = (log_now() - t->upstream_start) * 1000.0;
	t->status = status;
	if (status == 101 && !ws_switch_ok(t, headers))
		return -1;
	if (status != 101 && t->ws)
		websocket_refused(WEBSOCKET_REFUSED_UPSTREAM); /* a normal response: stays HTTP */
	TAILQ_FOREACH(kv, headers, next)
		if ((kv->key[0] | 0x20) == 'c' && strcasecmp(kv->key, "connection") == 0)
			headers_connection_parse(kv->value, &conn_list);
	headers_connection_drop_hop_by_hop(&conn_list); /* dropped below anyway */
	TAILQ_FOREACH(kv, headers, next) {
		if (headers_is_hop_by_hop(kv->key))
			continue;
		if (conn_list.n && headers_connection_has(&conn_list, kv->key))
			continue;
		if ((kv->key[0] | 0x20) == 'x' && strcasecmp(kv->key, "x-request-id") == 0)
			continue;
		hdrarena_copy(&t->arena, &t->out, kv);
	}
	apply_header_ops(t, &t->route->response_headers);
	if (t->jump_route)
		apply_header_ops(t, &t->jump_route->response_headers);
	add_common_response_headers(t, &t->out);
	if (status == 101) {
		/* The 101 goes out once the upstream's socket is ours. */
		hdrarena_add(&t->arena, &t->out, "Upgrade", "websocket");
		return 0;
	}
	t->compress = compress_start(compress_config_for(t->route, t->jump_route, t->site), t->req,
				     status, &t->out, &t->arena);
	t->replied = true;
	t->streaming = true;
	server_reply_start(t->req, status, &t->out);
	return 0;
}

/* The encoder failed mid-body (out of memory): cut the response short. */
static void
compress_failed(struct txn *t)
{
	struct server_request *req = t->req;

	log_warn("request %s: compressing the response failed", t->request_id);
	t->req = NULL;
	server_reply_abort(req);
	txn_finish(t);
}

static void
on_upstream_body(void *arg, struct evbuffer *data)
{
	struct txn *t = arg;

	if (t->compress && (data = compress_body(t->compress, data, false)) == NULL) {
		compress_failed(t);
		return;
	}
	t->bytes_out += evbuffer_get_length(data);
	if (server_reply_body(t->req, data) && !t->paused && t->x) {
		t->paused = true;
		upstream_exchange_pause(t->x, true);
	}
}

static void
on_upstream_done(void *arg)
{
	struct txn *t = arg;
	struct server_request *req = t->req;

	t->x = NULL;
	if (t->compress) {
		struct evbuffer *tail = compress_body(t->compress, NULL, true);

		if (tail == NULL) {
			compress_failed(t);
			return;
		}
		t->bytes_out += evbuffer_get_length(tail);
		server_reply_body(req, tail);
	}
	t->req = NULL;
	server_reply_end(req);
	txn_finish(t);
}

static void
on_upstream_fail(void *arg, enum upstream_failure why, bool sent, bool reused, bool responded)
{
	struct txn *t = arg;
	const struct config_server *s = upstream_server(t->pool, t->server);
	bool timeout = why == UPSTREAM_CONNECT_TIMEOUT || why == UPSTREAM_RESPONSE_TIMEOUT;
	const char *detail = upstream_failure_detail(t->pool, why);

	t->x = NULL;
	t->last_failure = why;
	if (responded) {
		/* The response began: the client must see it cut short, never a
		 * well-formed but truncated body. */
		log_warn("request %s: upstream %s (%s) failed mid-response: %s", t->request_id,
			 t->route->upstream->name, s->address, detail);
		struct server_request *req = t->req;

		t->req = NULL;
		server_reply_abort(req);
		txn_finish(t);
		return;
	}
	log_warn("request %s: upstream %s (%s): %s", t->request_id, t->route->upstream->name,
		 s->address, detail);
	/* A stale kept-alive connection is not the server's fault: the server
	 * is tried again, on a new connection (other idle ones may be stale
	 * too). */
	if (reused && why == UPSTREAM_RESET)
		t->fresh_conn = true;
	else if (t->server < 64)
		t->tried |= (uint64_t)1 << t->server;
	/* Another server will not fix a response we refuse to parse. */
	if (why != UPSTREAM_BAD_RESPONSE && why != UPSTREAM_HEADERS_TOO_LARGE &&
	    (!sent || method_is_idempotent(t->method_bit)) &&
	    t->attempts < t->route->upstream->nservers + 2 && !t->client_gone) {
		if (upstream_pick(t->pool, t->tried) >= 0) {
			metrics_add(METRIC_UPSTREAM_RETRIES, 1);
			start_attempt(t);
			return;
		}
	}
	if (timeout)
		refuse(t, 504, detail, false);
	else
		refuse(t, 502, detail, false);
}

static const struct upstream_response_ops response_ops = {
	.head = on_upstream_head,
	.body = on_upstream_body,
	.done = on_upstream_done,
	.fail = on_upstream_fail,
	.upgraded = on_upstream_upgraded,
};

static void
start_attempt(struct txn *t)
{
	int index = upstream_pick(t->pool, t->tried);
	struct evbuffer *request;

	if (index < 0) {
		refuse(t, 502, "no upstream server is available", false);
		return;
	}
	t->server = index;
	t->attempts++;
	request = build_attempt(t, index);
	if (request == NULL) {
		refuse(t, 500, "out of memory", false);
		return;
	}
	t->upstream_start = log_now();
	t->x = upstream_exchange_start(t->pool, index, request, t->method_bit == METHOD_HEAD,
				       t->fresh_conn, &response_ops, t);
	request_buffer_release(request);
	if (t->x == NULL)
		refuse(t, 500, "out of memory", false);
	else if (t->ws)
		upstream_exchange_allow_upgrade(t->x);
}

/* ---- transaction ------------------------------------------------------ */

static void
txn_finish(struct txn *t)
{
	struct access_entry e;
	double now = log_now();

	if (t->x) {
		upstream_exchange_cancel(t->x);
		t->x = NULL;
	}

	e.start = t->start;
	e.client = t->client;
	e.method = t->method;
	e.protocol = t->proto == SERVER_PROTO_HTTP2    ? "HTTP/2.0"
		     : t->proto == SERVER_PROTO_HTTP10 ? "HTTP/1.0"
						       : "HTTP/1.1";
	e.host = t->host[0] ? t->host : NULL;
	e.path = t->path[0] ? t->path : NULL;
	e.query = t->query;
	e.status = t->status;
	e.bytes_in = t->bytes_in;
	e.bytes_out = t->bytes_out;
	e.route = t->route ? t->route->name : NULL;
	e.upstream = (t->route && t->route->action == ACTION_PROXY && t->attempts)
			     ? upstream_server(t->pool, t->server)->address
			     : NULL;
	e.upstream_ms = (e.upstream && t->upstream_ms > 0) ? t->upstream_ms : -1;
	e.total_ms = (now - t->start) * 1000.0;
	e.request_id = t->request_id;
	e.trace_id = t->trace_id[0] ? t->trace_id : NULL;
	access_log_write(&e);
	metrics_count_request(t->route ? t->gen->rt->route_metrics[t->route->index] : NULL,
			      t->status, now - t->start);
	if (t->body_reserved)
		metrics_add(METRIC_BODY_MEMORY, -(int64_t)t->body_reserved);
	metrics_add(METRIC_IN_FLIGHT, -1);
	metrics_add(t->proto == SERVER_PROTO_HTTP2    ? METRIC_REQUESTS_HTTP2
		    : t->proto == SERVER_PROTO_HTTP10 ? METRIC_REQUESTS_HTTP10
						      : METRIC_REQUESTS_HTTP11,
		    1);
	if (t->head != t->head_inline)
		free(t->head);
	compress_free(t->compress);
	hdrarena_clear_headers(&t->arena, &t->out);
	hdrarena_reset(&t->arena);
	free(t->forwarded_for_joined);
	free(t->query_copy);
	txn_env_end(t->env, t->gen);
	txn_release(t);
}

/* The next number of the worker's xorshift128+ generator. */
static uint64_t
next_random(uint64_t s[2])
{
	uint64_t x = s[0], y = s[1];

	s[0] = y;
	x ^= x << 23;
	s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
	return s[1] + y;
}

/* A random number that is not zero (trace and span ids must not be). */
static uint64_t
next_random_nonzero(uint64_t s[2])
{
	uint64_t r;

	do
		r = next_random(s);
	while (r == 0);
	return r;
}

/* Trace context (W3C): continue the client's trace when it sent exactly one
 * valid traceparent (<given>, <count> headers), else start a new one
 * (sampled); either way the upstream's parent is a new span id of ours. */
static void
trace_begin(struct txn *t, const char *given, unsigned count)
{
	struct traceparent tp;
	uint64_t r;

	t->trace_continued = count == 1 && traceparent_parse(given, strlen(given), &tp);
	if (t->trace_continued) {
		tp.flags &= TRACEPARENT_FLAG_SAMPLED;
	} else {
		r = next_random_nonzero(t->env->rng);
		memcpy(tp.trace_id, &r, sizeof(r));
		r = next_random(t->env->rng);
		memcpy(tp.trace_id + sizeof(r), &r, sizeof(r));
		tp.flags = TRACEPARENT_FLAG_SAMPLED;
	}
	r = next_random_nonzero(t->env->rng);
	memcpy(tp.parent_id, &r, sizeof(r));
	traceparent_format(&tp, t->traceparent);
	traceparent_trace_id_hex(&tp, t->trace_id);
}

static void
make_request_id(struct txn *t, const char *given)
{
	static const char hex[] = "0123456789abcdef";

	if (given) {
		size_t n = strlen(given);
		size_t ok = strspn(given, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");

		if (n > 0 && n < sizeof(t->request_id) && ok == n) {
			memcpy(t->request_id, given, n + 1);
			return;
		}
	}
	for (int half = 0; half < 2; half++) {
		uint64_t r = next_random(t->env->rng);

		for (int i = 0; i < 16; i++)
			t->request_id[half * 16 + i] = hex[(r >> (i * 4)) & 15];
	}
	t->request_id[32] = '\0';
}

/* Check headers: framing, size, and pick out what routing needs.  Returns
 * 0, or -1 after refusing the request. */
static int
check_headers(struct txn *t)
{
	struct evkeyvalq *in = server_request_headers(t->req);
	struct headers_framing_state fs = {0};
	struct evkeyval *kv;
	const char *request_id = NULL;
	const char *xff = NULL;
	const char *traceparent = NULL;
	unsigned nxff = 0, ntraceparent = 0;
	enum headers_framing framing;

	TAILQ_FOREACH(kv, in, next) {
		headers_framing_add(&fs, kv->key, kv->value);
		switch (kv->key[0] | 0x20) {
		case 'h':
			if (strcasecmp(kv->key, "host") == 0)
				t->host_header = kv->value;
			break;
		case 'x':
			if (strcasecmp(kv->key, "x-request-id") == 0)
				request_id = kv->value;
			else if (strcasecmp(kv->key, "x-forwarded-for") == 0 && nxff++ == 0)
				xff = kv->value;
			break;
		case 't':
			if (strcasecmp(kv->key, "traceparent") == 0 && ntraceparent++ == 0)
				traceparent = kv->value;
			break;
		default:
			break;
		}
	}
	make_request_id(t, request_id);
	trace_begin(t, traceparent, ntraceparent);
	t->route_host = t->host_header;
	framing = headers_framing_result(&fs);
	if (framing != FRAMING_OK) {
		refuse(t, 400, headers_framing_reason(framing), true);
		return -1;
	}
	if (t->client_trusted && nxff > 1) {
		/* Several headers are one comma-separated list (RFC 9110 5.3). */
		struct evbuffer *joined = evbuffer_new();

		TAILQ_FOREACH(kv, in, next)
			if (joined && strcasecmp(kv->key, "x-forwarded-for") == 0)
				evbuffer_add_printf(joined, "%s%s",
						    evbuffer_get_length(joined) ? ", " : "", kv->value);
		if (joined) {
			size_t n = evbuffer_get_length(joined);

			t->forwarded_for_joined = malloc(n + 1);
			if (t->forwarded_for_joined) {
				evbuffer_remove(joined, t->forwarded_for_joined, n);
				t->forwarded_for_joined[n] = '\0';
				xff = t->forwarded_for_joined;
			}
			evbuffer_free(joined);
		}
	}
	if (t->client_trusted && xff) {
		t->forwarded_for = xff;
		fwdheaders_client(t->cfg->trusted, xff, t->client, sizeof(t->client));
	}
	return 0;
}

/* Route: site by Host, route by path and method, one "site" hop at most
 * (proxy/routing.h).  Returns 0, or -1 after refusing. */
static int
route_request(struct txn *t)
{
	struct routing_result rr;

	routing_decide(t->cfg, t->listener->index, t->route_host,
		       server_request_proto(t->req) == SERVER_PROTO_HTTP11, t->host_header, t->path,
		       t->method_bit, t->host, sizeof(t->host), t->fwd_path, sizeof(t->fwd_path), &rr);
	if (rr.status != 400 && tls_client_auth_misdirected(server_request_tls(t->req), t->host)) {
		/* HTTP/2 coalescing, or a Host unlike the SNI: this connection
		 * was verified under another client-certificate policy. */
		refuse(t, 421, "this connection was not verified for that host's client certificates",
		       false);
		return -1;
	}
	if (rr.status != 0) {
		t->site = rr.site;
		t->route = rr.route;
		t->jump_route = rr.jump_route;
		refuse(t, rr.status, rr.reason, rr.close);
		return -1;
	}
	t->site = rr.site;
	t->route = rr.route;
	t->jump_route = rr.jump_route;
	t->upstream_host = rr.upstream_host;
	return 0;
}

/* Remember a refusal by the SAML gate for the status page: a 401 (no
 * session: the rule is the route's "auth") or a policy's 403.  The gate's
 * "replying" hook: before the answer leaves. */
static void
note_auth_refusal(struct auth_request *a)
{
	struct txn *t = a->done_arg;
	char rule[160];
	const struct config_route *r = t->route;

	if (a->status != 401 && a->status != 403)
		return;
	rule[0] = '\0';
	for (size_t i = 0; a->rule == NULL && i < t->cfg->nsites && rule[0] == '\0'; i++) {
		const struct config_site *s = &t->cfg->sites[i];

		if (r >= s->routes && r < s->routes + s->nroutes)
			snprintf(rule, sizeof(rule), "sites[%zu].routes[%zu].auth", i,
				 (size_t)(r - s->routes));
	}
	refusals_record(t->start, a->status, t->client, a->rule ? a->rule : rule, t->path);
}

/* The gate replied later (AUTH_PENDING): finish. */
static void
auth_done(struct auth_request *a)
{
	struct txn *t = a->done_arg;

	t->auth_waiting = false;
	t->status = a->status;
	t->bytes_out = a->bytes_out;
	t->replied = true;
	t->req = NULL;
	txn_finish(t);
}

/* The SAML gate and SP endpoints (auth.h); <body>: the ACS body is in.
 * Finishes the transaction when the gate replied. */
static enum auth_action
run_auth(struct txn *t, bool body)
{
	struct auth_request *a = &t->auth;
	enum auth_action act;

	*a = (struct auth_request){
		.req = t->req, .cfg = t->cfg, .site = t->site, .route = t->route,
		.method = t->method, .method_bit = t->method_bit, .path = t->path,
		.query = t->query, .request_id = t->request_id, .client = t->client,
		.out = &t->out, .claims = t->gen->claims, .replying = note_auth_refusal,
		.done = auth_done, .done_arg = t,
		.no_redirect = t->verify && !t->verify_redirect,
	};
	act = body ? auth_on_body(a) : auth_on_head(a);
	if (act == AUTH_PENDING) {
		t->auth_waiting = true;
	} else if (act == AUTH_REPLIED) {
		t->status = a->status;
		t->bytes_out = a->bytes_out;
		t->replied = true;
		t->req = NULL;
		txn_finish(t);
	}
	return act;
}

/*
 * The verify endpoint (forward_auth.h): only a trusted proxy may ask, and
 * the request then stands for the original one its headers describe (host,
 * path and query, method), which is routed, checked and gated as if it had
 * come itself.  Returns 0, or -1 after refusing.
 */
static int
verify_take_original(struct txn *t)
{
	struct forward_auth_original o;
	const char *why;
	enum pathnorm_result pr;
	const char *method;

	if (!t->client_trusted) {
		refuse(t, 403, "the verify endpoint answers the trusted proxies only", false);
		return -1;
	}
	why = forward_auth_original(server_request_headers(t->req), &o);
	if (why != NULL) {
		refuse(t, 400, why, false);
		return -1;
	}
	t->verify = true;
	t->verify_redirect = forward_auth_redirect_mode(t->query);
	method = forward_auth_method(o.method != NULL ? o.method : t->method);
	if (method == NULL || routing_method_bit(method) == 0) {
		refuse(t, 403, "the original request's method is not accepted", false);
		return -1;
	}
	t->method = method;
	t->method_bit = routing_method_bit(method);
	memcpy(t->target_host, o.host, strlen(o.host) + 1);
	t->route_host = t->target_host;
	free(t->query_copy);
	t->query_copy = NULL;
	pr = pathnorm_normalize(o.origin, t->path, sizeof(t->path), &t->query);
	if (pr != PATHNORM_OK) {
		t->path[0] = '\0';
		t->query = NULL;
		refuse(t, 400, pathnorm_reason(pr), false);
		return -1;
	}
	if (t->query != NULL && (t->query = t->query_copy = strdup(t->query)) == NULL) {
		refuse(t, 500, "out of memory", false);
		return -1;
	}
	forward_auth_add_login(t->cfg, t->path, t->query, &t->out);
	return 0;
}

/* The gate let the original request pass: 200 with the identity headers. */
static void
verify_allow(struct txn *t)
{
	while (hdrarena_remove_header(&t->arena, &t->out, FORWARD_AUTH_LOGIN_HEADER) == 0)
		continue;
	forward_auth_copy_identity(t->cfg->saml, server_request_headers(t->req), &t->out);
	hdrarena_add(&t->arena, &t->out, "Cache-Control", "no-store");
	add_common_response_headers(t, &t->out);
	t->status = 200;
	t->replied = true;
	server_reply(t->req, 200, &t->out, NULL, false);
	t->req = NULL;
	txn_finish(t);
}

/* Built-in answers before routing (and before access rules: the CA's
 * validation servers come from anywhere): ACME HTTP-01 answers on every
 * listener when the config has "tls.acme", and the 308 to HTTPS on
 * "redirect_https" listeners for every other path.  Returns 0 when the
 * request goes on to routing, -1 after replying. */
static int
builtin_request(struct txn *t)
{
	static const char acme_prefix[] = "/.well-known/acme-challenge/";
	const struct config *cfg = t->cfg;
	enum routing_builtin kind =
		routing_builtin(cfg, t->listener->index, t->path, t->route_host != NULL);
	const char *port = NULL;
	struct evbuffer *body;

	if (kind == ROUTING_BUILTIN_ACME) {
		const char *token = t->path + sizeof(acme_prefix) - 1;
		char keyauth[512];

		if (!(t->method_bit & (METHOD_GET | METHOD_HEAD))) {
			refuse(t, 405, "ACME challenge answers are read with GET", false);
			return -1;
		}
		if (token[0] == '\0' || strchr(token, '/') != NULL ||
		    !acme_http01_lookup(token, keyauth, sizeof(keyauth))) {
			refuse(t, 404, "no ACME challenge is pending for this token", false);
			return -1;
		}
		body = evbuffer_new();
		if (body == NULL) {
			refuse(t, 500, "out of memory", false);
			return -1;
		}
		t->status = 200;
		t->replied = true;
		evbuffer_add(body, keyauth, strlen(keyauth));
		hdrarena_add(&t->arena, &t->out, "Content-Type", "text/plain");
		hdrarena_add(&t->arena, &t->out, "Cache-Control", "no-store");
		add_common_response_headers(t, &t->out);
		t->bytes_out = evbuffer_get_length(body);
		server_reply(t->req, 200, &t->out, body, false);
		t->req = NULL;
		evbuffer_free(body);
		txn_finish(t);
		return -1;
	}
	if (kind == ROUTING_BUILTIN_NONE)
		return 0;
	if (router_normalize_host(t->route_host, t->host, sizeof(t->host)) < 0) {
		refuse(t, 400, "the Host header is not a valid host", true);
		return -1;
	}
	/* The first TLS listener's bound port, left out when it is 443. */
	for (size_t i = 0; i < cfg->nlisteners && i < t->env->nports; i++) {
		if (cfg->listeners[i].tls) {
			port = t->env->ports[i];
			break;
		}
	}
	if (port != NULL && strcmp(port, "443") == 0)
		port = NULL;
	body = evbuffer_new();
	if (body == NULL) {
		refuse(t, 500, "out of memory", false);
		return -1;
	}
	t->status = 308;
	t->replied = true;
	evbuffer_add_printf(body, "https://%s%s%s%s%s%s%s", strchr(t->host, ':') && t->host[0] != '[' ? "[" : "",
			    t->host, strchr(t->host, ':') && t->host[0] != '[' ? "]" : "",
			    port ? ":" : "", port ? port : "", t->path, t->query ? "?" : "");
	if (t->query)
		evbuffer_add_printf(body, "%s", t->query);
	evbuffer_add(body, "", 1);
	hdrarena_add(&t->arena, &t->out, "Location", (const char *)evbuffer_pullup(body, -1));
	evbuffer_drain(body, evbuffer_get_length(body));
	hdrarena_add(&t->arena, &t->out, "Content-Type", "text/plain; charset=utf-8");
	add_common_response_headers(t, &t->out);
	evbuffer_add_printf(body, "Redirecting to %s\n", evhttp_find_header(&t->out, "Location"));
	t->bytes_out = evbuffer_get_length(body);
	server_reply(t->req, 308, &t->out, body, false);
	t->req = NULL;
	evbuffer_free(body);
	txn_finish(t);
	return -1;
}

/* "OPTIONS *": what the server allows, answered here (RFC 9110 9.3.7), never
 * forwarded; the listener's address rules apply.  Finishes the transaction. */
static void
answer_options_asterisk(struct txn *t)
{
	char host[256];

	if (t->method_bit != METHOD_OPTIONS) {
		refuse(t, 400, "the request target \"*\" is only for OPTIONS", true);
		return;
	}
	memcpy(t->path, "*", 2);
	if (t->host_header == NULL && server_request_proto(t->req) == SERVER_PROTO_HTTP11) {
		refuse(t, 400, "HTTP/1.1 requests must carry a Host header", true);
		return;
	}
	if (t->host_header && router_normalize_host(t->host_header, host, sizeof(host)) < 0) {
		refuse(t, 400, "the Host header is not a valid host", true);
		return;
	}
	if (access_check_request(t->cfg, t->listener->index, NULL, NULL, t->client, &t->access) != 0) {
		refuse(t, t->access.status, "access is not allowed from your address", false);
		return;
	}
	t->status = 200;
	t->replied = true;
	hdrarena_add(&t->arena, &t->out, "Allow", ALLOWED_METHODS);
	add_common_response_headers(t, &t->out);
	server_reply(t->req, 200, &t->out, NULL, false);
	t->req = NULL;
	txn_finish(t);
}

/*
 * The request-target (target.h).  Origin-form goes on as it is.  An
 * absolute-form target ("GET http://host/path", RFC 9112 3.2.2) is routed
 * by its host; refused with 400, a deliberate strictness where the RFC
 * would let Host be ignored: a Host that names another host or port (two
 * hosts in one request is what smuggling and cache poisoning look like),
 * user information in it, and a scheme that is not the connection's (http
 * on plain listeners, https on TLS ones).  "OPTIONS *" is answered here.
 * Returns 0 with *origin set to the path (and query) to normalize, or -1
 * after replying.
 */
static int
accept_target(struct txn *t, const char **origin)
{
	struct target_parts tp;
	enum target_error te = target_split(server_request_target(t->req), &tp);
	int port;
	char host[256];

	*origin = tp.rest;
	if (te != TARGET_OK) {
		refuse(t, 400, target_reason(te), true);
		return -1;
	}
	if (tp.form == TARGET_ASTERISK) {
		answer_options_asterisk(t);
		return -1;
	}
	if (tp.form != TARGET_ABSOLUTE)
		return 0; /* origin-form, or refused by the normalizer */
	if (tp.https != t->listener->tls) {
		refuse(t, 400, tp.https ? "an https request target on a plain HTTP connection"
					: "an http request target on an HTTPS connection",
		       true);
		return -1;
	}
	port = tp.https ? 443 : 80;
	if (tp.authority_len >= sizeof(t->target_host)) {
		refuse(t, 400, "the request target's host is not a valid host", true);
		return -1;
	}
	memcpy(t->target_host, tp.authority, tp.authority_len);
	t->target_host[tp.authority_len] = '\0';
	if (router_normalize_host(t->target_host, t->host, sizeof(t->host)) < 0 ||
	    (port = target_port(t->target_host, port)) < 0) {
		refuse(t, 400, "the request target's host is not a valid host", true);
		return -1;
	}
	if (t->host_header == NULL && server_request_proto(t->req) == SERVER_PROTO_HTTP11) {
		refuse(t, 400, "HTTP/1.1 requests must carry a Host header", true);
		return -1;
	}
	if (t->host_header) {
		if (router_normalize_host(t->host_header, host, sizeof(host)) < 0) {
			refuse(t, 400, "the Host header is not a valid host", true);
			return -1;
		}
		if (strcmp(host, t->host) != 0 ||
		    target_port(t->host_header, tp.https ? 443 : 80) != port) {
			refuse(t, 400, "the Host header differs from the host in the request target",
			       true);
			return -1;
		}
	}
	t->route_host = t->target_host;
	if (tp.rest[0] != '/') {
		/* "http://host" or "http://host?q": the path is "/" (RFC 9112
		 * 3.2.1); t->fwd_path is free until routing. */
		size_t n = strlen(tp.rest);

		if (n + 2 > sizeof(t->fwd_path)) {
			refuse(t, 414, pathnorm_reason(PATHNORM_TOO_LONG), false);
			return -1;
		}
		t->fwd_path[0] = '/';
		memcpy(t->fwd_path + 1, tp.rest, n + 1);
		*origin = t->fwd_path;
	}
	return 0;
}

/* The request's head: check, route, set the body limit.  Everything that can
 * refuse a request is decided here, before its body is read. */
static enum server_verdict
proxy_on_head(struct server_request *req, void *arg)
{
	struct txn_listener *tl = arg;
	struct txn *t = txn_alloc();
	enum pathnorm_result pr;
	const struct sockaddr *peer = server_request_peer(req);
	const char *origin;
	int64_t length;
	bool ws_asked;

	if (t == NULL) {
		server_reply(req, 503, NULL, NULL, true);
		return SERVER_REPLIED;
	}
	memset(t, 0, offsetof(struct txn, client));
	t->client[0] = t->request_id[0] = t->trace_id[0] = t->host[0] = t->path[0] = t->fwd_path[0] = '\0';
	t->target_host[0] = '\0';
	TAILQ_INIT(&t->out);
	hdrarena_init(&t->arena);
	t->start = log_now();
	t->env = tl->env;
	t->listener = tl;
	t->gen = txn_env_begin(t->env);
	t->cfg = t->gen->rt->cfg;
	t->req = req;
	t->proto = server_request_proto(req);
	t->server = -1;
	metrics_add(METRIC_IN_FLIGHT, 1);
	server_request_set_data(req, t);
	t->method = server_request_method(req);
	t->method_bit = routing_method_bit(t->method);
	format_addr(peer, t->client, sizeof(t->client));
	t->client_trusted = ipacl_size(t->cfg->trusted) > 0 && ipacl_contains(t->cfg->trusted, peer);

	if (check_headers(t) < 0)
		return SERVER_REPLIED;
	t->ws_ask = websocket_classify(server_request_headers(req), t->method,
				       server_request_proto(req));
	if (t->method_bit == 0) {
		refuse(t, 405, "this method is not accepted", true);
		return SERVER_REPLIED;
	}
	if (accept_target(t, &origin) < 0)
		return SERVER_REPLIED;
	pr = pathnorm_normalize(origin, t->path, sizeof(t->path), &t->query);
	if (pr != PATHNORM_OK) {
		t->path[0] = '\0';
		refuse(t, pr == PATHNORM_TOO_LONG ? 414 : 400, pathnorm_reason(pr), false);
		return SERVER_REPLIED;
	}
	if (t->query) {
		/* The request (and its target) may be gone when the access log
		 * line is written. */
		t->query_copy = strdup(t->query);
		t->query = t->query_copy;
	}
	if (builtin_request(t) < 0)
		return SERVER_REPLIED;
	if (forward_auth_is_verify(t->cfg->saml, t->path) && verify_take_original(t) < 0)
		return SERVER_REPLIED;
	if (route_request(t) < 0)
		return SERVER_REPLIED;
	if (access_check_request(t->cfg, t->listener->index, t->jump_route, t->route, t->client,
				 &t->access) != 0) {
		if (t->ws_ask == WEBSOCKET_ASKED)
			websocket_refused(WEBSOCKET_REFUSED_ACCESS);
		refusals_record(t->start, t->access.status, t->client, t->access.rule, t->path);
		refuse(t, t->access.status,
		       t->access.status == 429 ? "too many requests from your address; retry later"
					       : "access is not allowed from your address",
		       t->ws_ask == WEBSOCKET_ASKED); /* a refused upgrade closes */
		return SERVER_REPLIED;
	}
	ws_asked = t->ws_ask == WEBSOCKET_ASKED;
	switch (run_auth(t, false)) {
	case AUTH_REPLIED:
	case AUTH_PENDING: /* only after a body */
		if (ws_asked) /* (t is gone) */
			websocket_refused(WEBSOCKET_REFUSED_AUTH);
		return SERVER_REPLIED;
	case AUTH_READ_BODY:
		if (t->verify) { /* the ACS: the body is not in a subrequest */
			refuse(t, 400, "the SAML endpoints are served by Portcullis itself, not "
				       "through the verify endpoint", false);
			return SERVER_REPLIED;
		}
		t->auth_body = true;
		server_request_set_max_body(req, AUTH_MAX_BODY);
		return SERVER_READ_BODY;
	case AUTH_CONTINUE:
		break;
	}
	if (t->verify) {
		verify_allow(t);
		return SERVER_REPLIED;
	}
	if (t->route->action == ACTION_RESPOND || t->route->action == ACTION_REDIRECT) {
		respond_fixed(t);
		return SERVER_REPLIED;
	}
	if (t->ws_ask == WEBSOCKET_ASKED && t->route->websocket_off)
		websocket_refused(WEBSOCKET_REFUSED_ROUTE_OFF); /* goes on as a plain GET */
	else if (t->ws_ask == WEBSOCKET_ASKED)
		t->ws = websocket_upgrade_init(&t->ws_up, server_request_headers(req)) == 0;
	length = server_request_content_length(req);
	if (length > 0 && (uint64_t)length > t->route->max_body_bytes) {
		t->bytes_in = (uint64_t)length;
		refuse(t, 413, "the request body exceeds this route's limit", true);
		return SERVER_REPLIED;
	}
	if (length > 0) {
		if (metrics_body_reserve((uint64_t)length, t->cfg->body_memory_budget) < 0) {
			refuse(t, 503, "too many request bodies are in flight; retry shortly", true);
			return SERVER_REPLIED;
		}
		t->body_reserved = (uint64_t)length;
	}
	server_request_set_max_body(req, t->route->max_body_bytes);
	return SERVER_READ_BODY;
}

/* The whole body is in: forward. */
static void
proxy_on_request(struct server_request *req, void *arg)
{
	struct txn *t = server_request_data(req);

	t->bytes_in = evbuffer_get_length(server_request_body(req));
	if (t->auth_body) {
		run_auth(t, true);
		return;
	}
	if (t->bytes_in > t->body_reserved) {
		/* A chunked body: its size is known only now. */
		uint64_t more = t->bytes_in - t->body_reserved;

		if (metrics_body_reserve(more, t->cfg->body_memory_budget) < 0) {
			refuse(t, 503, "too many request bodies are in flight; retry shortly", true);
			return;
		}
		t->body_reserved += more;
	}
	t->pool = t->gen->pools[t->route->upstream->index];
	if (build_head(t) < 0) {
		refuse(t, 500, "out of memory", false);
		return;
	}
	start_attempt(t);
}

/* Body bytes are coming: hold the budget for them before they are kept (a
 * body of unknown length; one with Content-Length was reserved whole in
 * on_head).  Over the budget: 503, the rest is not read. */
static int
proxy_on_body(struct server_request *req, size_t n, void *arg)
{
	struct txn *t = server_request_data(req);
	uint64_t have = evbuffer_get_length(server_request_body(req)) + n;
	uint64_t more;

	(void)arg;
	if (t->auth_body || have <= t->body_reserved)
		return 0;
	more = have - t->body_reserved;
	if (metrics_body_reserve(more, t->cfg->body_memory_budget) < 0) {
		t->bytes_in = have;
		refuse(t, 503, "too many request bodies are in flight; retry shortly", true);
		return -1;
	}
	t->body_reserved += more;
	return 0;
}

/* The server dropped the request: the client left, or the server refused
 * the body itself (<status>). */
static void
proxy_on_abort(struct server_request *req, int status, void *arg)
{
	struct txn *t = server_request_data(req);

	t->req = NULL;
	t->client_gone = true;
	if (!t->replied || status != 499)
		t->status = status;
	if (t->auth_waiting) {
		auth_cancel(&t->auth);
		t->auth_waiting = false;
	}
	if (t->x) {
		upstream_exchange_cancel(t->x);
		t->x = NULL;
	}
	txn_finish(t);
}

/* The client caught up: read the upstream again. */
static void
proxy_on_drained(struct server_request *req, void *arg)
{
	struct txn *t = server_request_data(req);

	if (t->paused && t->x) {
		t->paused = false;
		upstream_exchange_pause(t->x, false);
	}
}

const struct server_handler proxy_handler = {
	.on_head = proxy_on_head,
	.on_request = proxy_on_request,
	.on_abort = proxy_on_abort,
	.on_drained = proxy_on_drained,
	.on_body = proxy_on_body,
};

/* proxy: one transaction from request to response; see proxy.h. */
#include "proxy.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "headers.h"
#include "ipacl.h"
#include "log.h"
#include "metrics.h"
#include "pathnorm.h"
#include "router.h"
#include "upstream.h"
#include "worker.h"

#define PATH_MAX_BYTES 8192
#define CLIENT_BACKLOG_LIMIT (1024 * 1024) /* bytes queued to a client before we stop reading upstream */

struct txn {
	struct worker *worker;
	struct worker_listener *listener;
	struct worker_gen *gen;
	const struct config *cfg;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	const struct config_site *site;
	const struct config_route *route;      /* the route that acts */
	const struct config_route *jump_route; /* the "site" route that led there, or NULL */
	struct upstream_pool *pool;
	struct upstream_exchange *x;
	struct evbuffer *head;        /* request head without Host line, kept for retries */
	const char *method;
	unsigned method_bit;
	const char *query;
	const char *host_header;      /* as the client sent it */
	const char *upstream_host;    /* Host to send; NULL = the chosen server's */
	const char *forwarded_for;    /* the client's X-Forwarded-For (trusted peers only) */
	char *forwarded_for_joined;   /* several X-Forwarded-For headers, joined (owned) */
	int server;
	uint64_t tried;
	unsigned attempts;
	enum upstream_failure last_failure;
	uint64_t body_reserved;
	uint64_t bytes_in, bytes_out;
	int status;
	double start, upstream_start, upstream_ms;
	bool replied;      /* a reply (or its start) went out */
	bool streaming;    /* evhttp_send_reply_start was called */
	bool client_gone;
	bool aborting;     /* we are freeing the client connection ourselves */
	bool paused;
	bool client_trusted;
	char client[INET6_ADDRSTRLEN];
	char request_id[129];
	char host[256];
	char path[PATH_MAX_BYTES];
	char fwd_path[PATH_MAX_BYTES];
};

static void txn_finish(struct txn *t);
static void start_attempt(struct txn *t);

static void reply_complete_cb(struct evhttp_request *req, void *arg);
static void reply_complete_stream_cb(struct evhttp_request *req, void *arg);
static void reply_abandoned_cb(struct evhttp_connection *evcon, void *arg);

/*
 * The final reply call follows: the transaction stops hearing about the
 * client connection (the call may free it), and the worker counts the reply
 * until evhttp has written it out or the connection is gone, so that a drain
 * does not end with replies still in buffers.
 */
static void
detach_client(struct txn *t)
{
	if (t->req == NULL || t->client_gone || t->aborting || t->evcon == NULL)
		return;
	t->worker->unflushed++;
	evhttp_connection_set_closecb(t->evcon, reply_abandoned_cb, t->worker);
	evhttp_request_set_on_complete_cb(t->req, t->streaming ? reply_complete_stream_cb : reply_complete_cb,
					  t->worker);
}

static const char *
method_name(enum evhttp_cmd_type cmd, unsigned *bit)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		*bit = METHOD_GET;
		return "GET";
	case EVHTTP_REQ_HEAD:
		*bit = METHOD_HEAD;
		return "HEAD";
	case EVHTTP_REQ_POST:
		*bit = METHOD_POST;
		return "POST";
	case EVHTTP_REQ_PUT:
		*bit = METHOD_PUT;
		return "PUT";
	case EVHTTP_REQ_PATCH:
		*bit = METHOD_PATCH;
		return "PATCH";
	case EVHTTP_REQ_DELETE:
		*bit = METHOD_DELETE;
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		*bit = METHOD_OPTIONS;
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		*bit = 0;
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		*bit = 0;
		return "CONNECT";
	}
	*bit = 0;
	return "UNKNOWN";
}

static bool
method_is_idempotent(unsigned bit)
{
	return bit & (METHOD_GET | METHOD_HEAD | METHOD_PUT | METHOD_DELETE | METHOD_OPTIONS);
}

/* ---- client address ---------------------------------------------------- */

/* Text of an address; IPv4-mapped IPv6 prints as IPv4. */
static void
format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
	out[0] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)outlen);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)outlen);
		else
			inet_ntop(AF_INET6, a, out, (socklen_t)outlen);
	}
}

/* True when <s> (len bytes) is an IP address; copies it to out. */
static bool
parse_ip_token(const char *s, size_t len, char *out, size_t outlen)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (len == 0 || len >= outlen)
		return false;
	memcpy(out, s, len);
	out[len] = '\0';
	return inet_pton(AF_INET, out, buf) == 1 || inet_pton(AF_INET6, out, buf) == 1;
}

/*
 * The client behind a trusted proxy: walk X-Forwarded-For from the right,
 * skipping trusted addresses; the first untrusted one is the client.  A
 * malformed entry stops the walk (the peer is kept).
 */
static void
client_from_forwarded_for(struct txn *t, const char *xff)
{
	const char *end = xff + strlen(xff);
	char candidate[INET6_ADDRSTRLEN];

	while (end > xff) {
		const char *start = end;
		const char *a, *b;

		while (start > xff && start[-1] != ',')
			start--;
		a = start;
		b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (!parse_ip_token(a, (size_t)(b - a), candidate, sizeof(candidate)))
			return;
		memcpy(t->client, candidate, sizeof(candidate));
		if (!ipacl_contains_str(t->cfg->trusted, candidate))
			return;
		end = start > xff ? start - 1 : xff;
	}
}

/* ---- replies ------------------------------------------------------------ */

static void
add_common_response_headers(struct txn *t, struct evkeyvalq *out)
{
	evhttp_add_header(out, "X-Request-ID", t->request_id);
	if (t->worker->draining)
		evhttp_add_header(out, "Connection", "close");
}

/* Answer with a short text/plain body.  <close>: close the connection after. */
static void
reply_text(struct txn *t, int status, const char *reason, const char *detail, bool close)
{
	struct evbuffer *body;
	struct evkeyvalq *out;

	if (t->client_gone) {
		t->status = status;
		return;
	}
	out = evhttp_request_get_output_headers(t->req);
	body = evbuffer_new();
	t->status = status;
	t->replied = true;
	evhttp_clear_headers(out);
	if (status == 405)
		evhttp_add_header(out, "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
	evhttp_add_header(out, "Cache-Control", "no-store");
	add_common_response_headers(t, out);
	if (close && !t->worker->draining)
		evhttp_add_header(out, "Connection", "close");
	if (body) {
		char len[24];

		evbuffer_add_printf(body, "%d %s: %s\n", status, reason, detail);
		t->bytes_out = evbuffer_get_length(body);
		/* Explicit, so that even replies to methods evhttp frames oddly
		 * (CONNECT) have a length. */
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(out, "Content-Length", len);
	}
	detach_client(t);
	evhttp_send_reply(t->req, status, reason, body);
	if (body)
		evbuffer_free(body);
}

/* Refuse the request with a 4xx/5xx before anything was forwarded. */
static void
refuse(struct txn *t, int status, const char *reason, const char *detail, bool close)
{
	reply_text(t, status, reason, detail, close);
	txn_finish(t);
}

static void
apply_header_ops(struct evkeyvalq *headers, const struct config_header_ops *ops)
{
	for (size_t i = 0; i < ops->nremove; i++)
		while (evhttp_find_header(headers, ops->remove[i]))
			evhttp_remove_header(headers, ops->remove[i]);
	for (size_t i = 0; i < ops->nset; i++) {
		while (evhttp_find_header(headers, ops->set[i].name))
			evhttp_remove_header(headers, ops->set[i].name);
		evhttp_add_header(headers, ops->set[i].name, ops->set[i].value);
	}
	for (size_t i = 0; i < ops->nadd; i++)
		evhttp_add_header(headers, ops->add[i].name, ops->add[i].value);
}

static void
respond_fixed(struct txn *t)
{
	const struct config_route *r = t->route;
	struct evkeyvalq *out = evhttp_request_get_output_headers(t->req);
	struct evbuffer *body = evbuffer_new();

	t->status = r->status;
	t->replied = true;
	if (r->action == ACTION_REDIRECT) {
		struct evbuffer *loc = evbuffer_new();
		char *location;

		if (loc == NULL || body == NULL) {
			if (loc)
				evbuffer_free(loc);
			if (body)
				evbuffer_free(body);
			refuse(t, 500, "Internal Server Error", "out of memory", false);
			return;
		}
		evbuffer_add_printf(loc, "%s", r->redirect_to);
		if (r->redirect_keep_path) {
			/* Avoid "//" when the target ends in "/" */
			size_t len = strlen(r->redirect_to);

			evbuffer_add_printf(loc, "%s", (len && r->redirect_to[len - 1] == '/') ? t->path + 1 : t->path);
			if (t->query)
				evbuffer_add_printf(loc, "?%s", t->query);
		}
		evbuffer_add(loc, "", 1);
		location = (char *)evbuffer_pullup(loc, -1);
		evhttp_add_header(out, "Location", location);
		evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
		evbuffer_add_printf(body, "Redirecting to %s\n", location);
		if (loc)
			evbuffer_free(loc);
	} else {
		evhttp_add_header(out, "Content-Type", r->content_type);
		if (body)
			evbuffer_add(body, r->body, strlen(r->body));
	}
	apply_header_ops(out, &r->response_headers);
	add_common_response_headers(t, out);
	t->bytes_out = body ? evbuffer_get_length(body) : 0;
	detach_client(t);
	evhttp_send_reply(t->req, r->status, NULL, t->method_bit == METHOD_HEAD ? NULL : body);
	if (body)
		evbuffer_free(body);
	txn_finish(t);
}

/* ---- the upstream request ---------------------------------------------- */

static bool
request_header_is_ours(const char *name)
{
	switch (name[0] | 0x20) {
	case 'c':
		return strcasecmp(name, "content-length") == 0;
	case 'e':
		return strcasecmp(name, "expect") == 0;
	case 'h':
		return strcasecmp(name, "host") == 0;
	case 'x':
		return strcasecmp(name, "x-request-id") == 0 || strcasecmp(name, "x-real-ip") == 0 ||
		       strncasecmp(name, "x-forwarded-", 12) == 0;
	case 'f':
		return strcasecmp(name, "forwarded") == 0;
	default:
		return false;
	}
}

static bool
ops_name_listed(const struct config_header_ops *ops, const char *name)
{
	for (size_t i = 0; i < ops->nremove; i++)
		if (strcasecmp(ops->remove[i], name) == 0)
			return true;
	for (size_t i = 0; i < ops->nset; i++)
		if (strcasecmp(ops->set[i].name, name) == 0)
			return true;
	return false;
}

static void
add_header_line(struct evbuffer *b, const char *name, const char *value)
{
	evbuffer_add(b, name, strlen(name));
	evbuffer_add(b, ": ", 2);
	evbuffer_add(b, value, strlen(value));
	evbuffer_add(b, "\r\n", 2);
}

static void
add_ops_lines(struct evbuffer *b, const struct config_header_ops *ops)
{
	for (size_t i = 0; i < ops->nset; i++)
		add_header_line(b, ops->set[i].name, ops->set[i].value);
	for (size_t i = 0; i < ops->nadd; i++)
		add_header_line(b, ops->add[i].name, ops->add[i].value);
}

/*
 * Build the request head (request line and every header but Host and
 * Content-Length, which depend on the attempt).  Returns 0 or -1.
 */
static int
build_head(struct txn *t)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(t->req);
	struct headers_connection_list conn_list = {0};
	const struct config_header_ops *jops = t->jump_route ? &t->jump_route->request_headers : NULL;
	const struct config_header_ops *rops = &t->route->request_headers;
	bool drop_cookies = t->route->drop_cookies || (t->jump_route && t->jump_route->drop_cookies);
	struct evkeyval *kv;
	struct evbuffer *b = evbuffer_new();
	const char *xff = t->forwarded_for;
	const char *xfp = NULL, *xfh = NULL, *xfport = NULL;

	if (b == NULL)
		return -1;
	t->head = b;
	evbuffer_add_printf(b, "%s %s%s%s HTTP/1.1\r\n", t->method, t->fwd_path, t->query ? "?" : "",
			    t->query ? t->query : "");

	TAILQ_FOREACH(kv, in, next)
		if (strcasecmp(kv->key, "connection") == 0)
			headers_connection_parse(kv->value, &conn_list);

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
		if (headers_is_hop_by_hop(name) || request_header_is_ours(name))
			continue;
		if (conn_list.n && headers_connection_has(&conn_list, name))
			continue;
		if (drop_cookies && strcasecmp(name, "cookie") == 0)
			continue;
		if ((jops && ops_name_listed(jops, name)) || ops_name_listed(rops, name))
			continue;
		add_header_line(b, name, kv->value);
	}
	if (jops)
		add_ops_lines(b, jops);
	add_ops_lines(b, rops);

	if (xff) {
		char peer[INET6_ADDRSTRLEN];

		format_addr(evhttp_connection_get_addr(t->evcon), peer, sizeof(peer));
		evbuffer_add_printf(b, "X-Forwarded-For: %s, %s\r\n", xff, peer);
	} else {
		add_header_line(b, "X-Forwarded-For", t->client);
	}
	add_header_line(b, "X-Real-IP", t->client);
	add_header_line(b, "X-Forwarded-Proto", xfp ? xfp : (t->listener->tls ? "https" : "http"));
	if (xfh || t->host_header)
		add_header_line(b, "X-Forwarded-Host", xfh ? xfh : t->host_header);
	add_header_line(b, "X-Forwarded-Port", xfport ? xfport : t->listener->port);
	add_header_line(b, "X-Request-ID", t->request_id);
	return 0;
}

/* The full request for one attempt on server <index>: head, Host,
 * Content-Length, body (referenced, not copied).  NULL on failure. */
static struct evbuffer *
build_attempt(struct txn *t, int index)
{
	struct evbuffer *b = evbuffer_new();
	struct evbuffer *body = evhttp_request_get_input_buffer(t->req);
	size_t body_len = evbuffer_get_length(body);
	const char *host = t->upstream_host;
	char server_host[300];

	if (b == NULL)
		return NULL;
	if (evbuffer_add_buffer_reference(b, t->head) < 0)
		goto fail;
	if (host == NULL) {
		const struct config_server *s = upstream_server(t->pool, index);

		if (strchr(s->host, ':'))
			snprintf(server_host, sizeof(server_host), "[%s]:%u", s->host, s->port);
		else
			snprintf(server_host, sizeof(server_host), "%s:%u", s->host, s->port);
		host = server_host;
	}
	add_header_line(b, "Host", host);
	if (body_len > 0 || (t->method_bit & (METHOD_POST | METHOD_PUT | METHOD_PATCH)))
		evbuffer_add_printf(b, "Content-Length: %zu\r\n", body_len);
	evbuffer_add(b, "\r\n", 2);
	if (body_len > 0 && evbuffer_add_buffer_reference(b, body) < 0)
		goto fail;
	return b;
fail:
	evbuffer_free(b);
	return NULL;
}

/* ---- response side ------------------------------------------------------ */

static void
client_drained_cb(struct evhttp_connection *evcon, void *arg)
{
	struct txn *t = arg;

	if (t->paused && t->x) {
		t->paused = false;
		upstream_exchange_pause(t->x, false);
	}
}

/* The final reply was completely written (<arg>: the worker). */
static void
reply_complete_cb(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (evcon)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	worker_reply_flushed(arg);
}

/* The same for a streamed reply, whose read timeout was turned off: the next
 * request on this keep-alive connection gets it back. */
static void
reply_complete_stream_cb(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct worker *w = arg;

	if (evcon)
		bufferevent_set_timeouts(evhttp_connection_get_bufferevent(evcon), &w->client_tv,
					 &w->client_tv);
	reply_complete_cb(req, arg);
}

/* The connection closed before a final reply was written out. */
static void
reply_abandoned_cb(struct evhttp_connection *evcon, void *arg)
{
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	worker_reply_flushed(arg);
}

static int
on_upstream_head(void *arg, int status, struct evkeyvalq *headers)
{
	struct txn *t = arg;
	struct evkeyvalq *out = evhttp_request_get_output_headers(t->req);
	struct headers_connection_list conn_list = {0};
	struct evkeyval *kv;
	struct bufferevent *cbev;

	t->upstream_ms = (log_now() - t->upstream_start) * 1000.0;
	t->status = status;
	TAILQ_FOREACH(kv, headers, next)
		if (strcasecmp(kv->key, "connection") == 0)
			headers_connection_parse(kv->value, &conn_list);
	TAILQ_FOREACH(kv, headers, next) {
		if (headers_is_hop_by_hop(kv->key))
			continue;
		if (conn_list.n && headers_connection_has(&conn_list, kv->key))
			continue;
		if (strcasecmp(kv->key, "x-request-id") == 0)
			continue;
		evhttp_add_header(out, kv->key, kv->value);
	}
	apply_header_ops(out, &t->route->response_headers);
	if (t->jump_route)
		apply_header_ops(out, &t->jump_route->response_headers);
	add_common_response_headers(t, out);
	if (t->req->major == 1 && t->req->minor == 0 && !evhttp_find_header(out, "Content-Length")) {
		/* An HTTP/1.0 client cannot take chunked encoding: the end of the
		 * body is the end of the connection.  Without its keep-alive
		 * request evhttp neither invents a Content-Length nor keeps the
		 * connection open. */
		struct evkeyvalq *in = evhttp_request_get_input_headers(t->req);

		while (evhttp_find_header(in, "Connection"))
			evhttp_remove_header(in, "Connection");
	}
	t->replied = true;
	t->streaming = true;
	evhttp_send_reply_start(t->req, status, NULL);
	/* No read timeout while streaming (an idle SSE stream is fine); a
	 * client that stops reading still times out on write. */
	cbev = evhttp_connection_get_bufferevent(t->evcon);
	bufferevent_set_timeouts(cbev, NULL, &t->worker->client_tv);
	return 0;
}

static void
on_upstream_body(void *arg, struct evbuffer *data)
{
	struct txn *t = arg;
	struct bufferevent *cbev;

	t->bytes_out += evbuffer_get_length(data);
	evhttp_send_reply_chunk_with_cb(t->req, data, client_drained_cb, t);
	cbev = evhttp_connection_get_bufferevent(t->evcon);
	if (!t->paused && evbuffer_get_length(bufferevent_get_output(cbev)) > CLIENT_BACKLOG_LIMIT) {
		t->paused = true;
		upstream_exchange_pause(t->x, true);
	}
}

static void
on_upstream_done(void *arg)
{
	struct txn *t = arg;

	t->x = NULL;
	detach_client(t);
	evhttp_send_reply_end(t->req);
	txn_finish(t);
}

static void
on_upstream_fail(void *arg, enum upstream_failure why, bool sent, bool reused, bool responded)
{
	struct txn *t = arg;
	const struct config_server *s = upstream_server(t->pool, t->server);
	bool timeout = why == UPSTREAM_CONNECT_TIMEOUT || why == UPSTREAM_RESPONSE_TIMEOUT;

	t->x = NULL;
	t->last_failure = why;
	if (responded) {
		/* The response began: the client must see it cut short, never a
		 * well-formed but truncated body. */
		log_warn("request %s: upstream %s (%s) failed mid-response: %s", t->request_id,
			 t->route->upstream->name, s->address, upstream_failure_text(why));
		t->aborting = true;
		evhttp_connection_free(t->evcon);
		txn_finish(t);
		return;
	}
	log_warn("request %s: upstream %s (%s): %s", t->request_id, t->route->upstream->name,
		 s->address, upstream_failure_text(why));
	/* A stale kept-alive connection is not the server's fault: the server
	 * may be tried again on a new connection. */
	if (!(reused && why == UPSTREAM_RESET) && t->server < 64)
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
		refuse(t, 504, "Gateway Timeout", upstream_failure_text(why), false);
	else
		refuse(t, 502, "Bad Gateway", upstream_failure_text(why), false);
}

static const struct upstream_response_ops response_ops = {
	.head = on_upstream_head,
	.body = on_upstream_body,
	.done = on_upstream_done,
	.fail = on_upstream_fail,
};

static void
start_attempt(struct txn *t)
{
	int index = upstream_pick(t->pool, t->tried);
	struct evbuffer *request;

	if (index < 0) {
		refuse(t, 502, "Bad Gateway", "no upstream server is available", false);
		return;
	}
	t->server = index;
	t->attempts++;
	request = build_attempt(t, index);
	if (request == NULL) {
		refuse(t, 500, "Internal Server Error", "out of memory", false);
		return;
	}
	t->upstream_start = log_now();
	t->x = upstream_exchange_start(t->pool, index, request, t->method_bit == METHOD_HEAD,
				       &response_ops, t);
	evbuffer_free(request);
	if (t->x == NULL)
		refuse(t, 500, "Internal Server Error", "out of memory", false);
}

/* ---- client connection lifecycle ------------------------------------- */

static void
client_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct txn *t = arg;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	if (t->aborting)
		return; /* we are freeing the connection; txn_finish follows */
	t->client_gone = true;
	if (t->status == 0)
		t->status = 499; /* client closed the request */
	if (t->x) {
		upstream_exchange_cancel(t->x);
		t->x = NULL;
	}
	/* evhttp detached the request from the dying connection (it was not
	 * done with it); it is ours to free. */
	if (evhttp_request_get_connection(t->req) == NULL) {
		evhttp_request_free(t->req);
		t->req = NULL;
	} else {
		t->req = NULL; /* still queued: evhttp frees it with the connection */
	}
	txn_finish(t);
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
	access_log_write(&e);
	metrics_count_request(t->route ? t->gen->rt->route_metrics[t->route->index] : NULL,
			      t->status, now - t->start);
	if (t->body_reserved)
		metrics_add(METRIC_BODY_MEMORY, -(int64_t)t->body_reserved);
	metrics_add(METRIC_IN_FLIGHT, -1);
	if (t->head)
		evbuffer_free(t->head);
	free(t->forwarded_for_joined);
	worker_gen_unref(t->gen);
	worker_transaction_ended(t->worker);
	free(t);
}

static void
make_request_id(struct txn *t, const char *given)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t *s = t->worker->rng;

	if (given) {
		size_t n = strlen(given);
		size_t ok = strspn(given, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");

		if (n > 0 && n < sizeof(t->request_id) && ok == n) {
			memcpy(t->request_id, given, n + 1);
			return;
		}
	}
	for (int half = 0; half < 2; half++) {
		/* xorshift128+ */
		uint64_t x = s[0], y = s[1], r;

		s[0] = y;
		x ^= x << 23;
		s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
		r = s[1] + y;
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
	struct evkeyvalq *in = evhttp_request_get_input_headers(t->req);
	struct headers_framing_state fs = {0};
	struct evkeyval *kv;
	const char *request_id = NULL;
	const char *xff = NULL;
	unsigned nxff = 0;
	uint64_t size = strlen(evhttp_request_get_uri(t->req)) + 16;
	enum headers_framing framing;

	TAILQ_FOREACH(kv, in, next) {
		size += strlen(kv->key) + strlen(kv->value) + 4;
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
		default:
			break;
		}
	}
	make_request_id(t, request_id);
	if (size > t->cfg->max_request_header_bytes) {
		refuse(t, 431, "Request Header Fields Too Large",
		       "the request headers exceed the configured limit", true);
		return -1;
	}
	framing = headers_framing_result(&fs);
	if (framing != FRAMING_OK) {
		refuse(t, 400, "Bad Request", headers_framing_reason(framing), true);
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
		client_from_forwarded_for(t, xff);
	}
	return 0;
}

/* Route: site by Host, route by path and method, one "site" hop at most.
 * Returns 0, or -1 after refusing. */
static int
route_request(struct txn *t)
{
	const struct config_route *r;

	if (t->host_header) {
		if (router_normalize_host(t->host_header, t->host, sizeof(t->host)) < 0) {
			refuse(t, 400, "Bad Request", "the Host header is not a valid host", true);
			return -1;
		}
	} else if (!(t->req->major == 1 && t->req->minor == 0)) {
		refuse(t, 400, "Bad Request", "HTTP/1.1 requests must carry a Host header", true);
		return -1;
	}
	t->site = router_find_site(t->cfg, t->host[0] ? t->host : NULL);
	if (t->site == NULL) {
		refuse(t, 404, "Not Found", "no site is configured for this host", false);
		return -1;
	}
	r = router_match(t->site, t->path, t->method_bit);
	if (r == NULL) {
		refuse(t, 404, "Not Found", "no route matches this path", false);
		return -1;
	}
	memcpy(t->fwd_path, t->path, strlen(t->path) + 1);
	if (r->strip_prefix &&
	    router_strip_prefix(t->path, r->strip_prefix, t->fwd_path, sizeof(t->fwd_path)) < 0) {
		refuse(t, 500, "Internal Server Error", "prefix could not be stripped", false);
		return -1;
	}
	if (r->host_mode == HOST_FIXED)
		t->upstream_host = r->host;
	if (r->action == ACTION_SITE) {
		const struct config_route *next = router_match(r->site, t->fwd_path, t->method_bit);

		t->jump_route = r;
		if (next == NULL) {
			t->route = r;
			refuse(t, 404, "Not Found", "no route matches this path", false);
			return -1;
		}
		if (next->strip_prefix) {
			char tmp[PATH_MAX_BYTES];

			if (router_strip_prefix(t->fwd_path, next->strip_prefix, tmp, sizeof(tmp)) < 0) {
				refuse(t, 500, "Internal Server Error", "prefix could not be stripped",
				       false);
				return -1;
			}
			memcpy(t->fwd_path, tmp, strlen(tmp) + 1);
		}
		if (next->host_mode == HOST_FIXED)
			t->upstream_host = next->host;
		r = next;
	}
	t->route = r;
	if (r->host_mode == HOST_UPSTREAM)
		t->upstream_host = NULL;
	else if (t->upstream_host == NULL)
		t->upstream_host = t->host_header ? t->host_header : NULL;
	return 0;
}

void
proxy_request_cb(struct evhttp_request *req, void *arg)
{
	struct worker_listener *wl = arg;
	struct worker *w = wl->worker;
	struct txn *t = malloc(sizeof(*t));
	enum pathnorm_result pr;
	struct evbuffer *body;

	if (t == NULL) {
		evhttp_send_error(req, 503, "Service Unavailable");
		return;
	}
	memset(t, 0, offsetof(struct txn, client));
	t->client[0] = t->request_id[0] = t->host[0] = t->path[0] = t->fwd_path[0] = '\0';
	t->start = log_now();
	t->worker = w;
	t->listener = wl;
	t->gen = w->gen;
	t->gen->refs++;
	t->cfg = t->gen->rt->cfg;
	t->req = req;
	t->evcon = evhttp_request_get_connection(req);
	t->server = -1;
	w->in_flight++;
	metrics_add(METRIC_IN_FLIGHT, 1);
	t->method = method_name(evhttp_request_get_command(req), &t->method_bit);
	evhttp_connection_set_closecb(t->evcon, client_closed_cb, t);

	{
		const struct sockaddr *peer = evhttp_connection_get_addr(t->evcon);

		format_addr(peer, t->client, sizeof(t->client));
		t->client_trusted = ipacl_size(t->cfg->trusted) > 0 &&
				    ipacl_contains(t->cfg->trusted, peer);
	}
	body = evhttp_request_get_input_buffer(req);
	t->bytes_in = evbuffer_get_length(body);

	if (check_headers(t) < 0)
		return;
	if (t->method_bit == 0) {
		refuse(t, 405, "Method Not Allowed", "this method is not accepted", true);
		return;
	}
	pr = pathnorm_normalize(evhttp_request_get_uri(req), t->path, sizeof(t->path), &t->query);
	if (pr != PATHNORM_OK) {
		t->path[0] = '\0';
		refuse(t, pr == PATHNORM_TOO_LONG ? 414 : 400,
		       pr == PATHNORM_TOO_LONG ? "URI Too Long" : "Bad Request", pathnorm_reason(pr),
		       false);
		return;
	}
	if (route_request(t) < 0)
		return;
	if (t->bytes_in > t->route->max_body_bytes) {
		refuse(t, 413, "Content Too Large", "the request body exceeds this route's limit", true);
		return;
	}
	if (t->route->action == ACTION_RESPOND || t->route->action == ACTION_REDIRECT) {
		respond_fixed(t);
		return;
	}
	if (t->bytes_in > 0) {
		if (metrics_body_reserve(t->bytes_in, t->cfg->body_memory_budget) < 0) {
			refuse(t, 503, "Service Unavailable",
			       "too many request bodies are in flight; retry shortly", false);
			return;
		}
		t->body_reserved = t->bytes_in;
	}
	t->pool = t->gen->pools[t->route->upstream->index];
	if (build_head(t) < 0) {
		refuse(t, 500, "Internal Server Error", "out of memory", false);
		return;
	}
	start_attempt(t);
}

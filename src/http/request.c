/* request: the request object and the handler's API; see request.h. */
#include "http/request.h"
#include "http/http_internal.h"
#include "http/hdrarena.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>

/* ---- status texts ----------------------------------------------------- */

const char *
server_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 207: return "Multi-Status";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:
		if (status < 200)
			return "Informational";
		if (status < 300)
			return "Success";
		if (status < 400)
			return "Redirection";
		if (status < 500)
			return "Client Error";
		return "Server Error";
	}
}

/* ---- requests ---------------------------------------------------------- */

struct server_request *
request_new(struct server_conn *c)
{
	struct server_request *req = calloc(1, sizeof(*req));

	if (req == NULL)
		return NULL;
	if (c->body_spare) {
		req->body = c->body_spare;
		c->body_spare = NULL;
	} else {
		req->body = evbuffer_new();
	}
	if (req->body == NULL) {
		free(req);
		return NULL;
	}
	TAILQ_INIT(&req->headers);
	req->conn = c;
	req->proto = SERVER_PROTO_HTTP11;
	req->content_length = -1;
	if (c->target_spare) {
		req->target = c->target_spare;
		req->target_cap = c->target_spare_cap;
		req->target[0] = '\0';
		c->target_spare = NULL;
		c->target_spare_cap = 0;
	}
	return req;
}

void
request_free(struct server_request *req)
{
	struct server_conn *c;

	if (req == NULL)
		return;
	c = req->conn;
	if (req->tunnel_fn) { /* not handed over: tell whoever waited */
		server_tunnel_fn fn = req->tunnel_fn;

		req->tunnel_fn = NULL;
		fn(NULL, req->tunnel_arg);
	}
	if (req->header_arena != NULL) {
		hdrarena_clear_headers(req->header_arena, &req->headers);
		hdrarena_reset(req->header_arena);
	} else {
		evhttp_clear_headers(&req->headers);
	}
	/* A request without a body never had bytes in its buffer (so nothing
	 * references them): the next request may have it. */
	if (c->body_spare == NULL && !req->body_expected && evbuffer_get_length(req->body) == 0)
		c->body_spare = req->body;
	else
		evbuffer_free(req->body);
	if (c->target_spare == NULL && req->target) {
		c->target_spare = req->target; /* the next request's */
		c->target_spare_cap = req->target_cap;
	} else {
		free(req->target);
	}
	free(req);
}

const char *
server_request_method(const struct server_request *req)
{
	return req->method;
}

const char *
server_request_target(const struct server_request *req)
{
	return req->target ? req->target : "";
}

enum server_proto
server_request_proto(const struct server_request *req)
{
	return req->proto;
}

struct hdrarena *
server_request_header_arena(const struct server_request *req)
{
	return req->header_arena;
}

struct evkeyvalq *
server_request_headers(struct server_request *req)
{
	return &req->headers;
}

struct evbuffer *
server_request_body(struct server_request *req)
{
	return req->body;
}

const struct sockaddr *
server_request_peer(const struct server_request *req)
{
	return (const struct sockaddr *)&req->conn->peer;
}

int
server_request_port(const struct server_request *req)
{
	return req->conn->srv->port;
}

struct ssl_st *
server_request_tls(const struct server_request *req)
{
	return req->conn->ssl;
}

int64_t
server_request_content_length(const struct server_request *req)
{
	return req->content_length;
}

void
server_request_set_data(struct server_request *req, void *data)
{
	req->data = data;
}

void *
server_request_data(const struct server_request *req)
{
	return req->data;
}

void
server_request_set_max_body(struct server_request *req, uint64_t max)
{
	req->max_body = max;
}

void
server_request_set_tunnel(struct server_request *req, bool tunnel)
{
	req->tunnel = tunnel;
}

void
server_request_on_tunnel(struct server_request *req, server_tunnel_fn fn, void *arg)
{
	req->tunnel = true;
	req->tunnel_fn = fn;
	req->tunnel_arg = arg;
}

bool
server_request_is_tunnel(const struct server_request *req)
{
	return req->tunnel;
}

/* ---- the response: checked here, framed by the codec ------------------- */

void
server_reply(struct server_request *req, int status, struct evkeyvalq *headers,
	     struct evbuffer *body, bool close)
{
	if (req->handler_done || req->started)
		return;
	req->conn->codec->reply->reply(req, status, headers, body, close);
}

void
server_reply_start(struct server_request *req, int status, struct evkeyvalq *headers)
{
	if (req->handler_done || req->started)
		return;
	req->conn->codec->reply->reply_start(req, status, headers);
}

bool
server_reply_body(struct server_request *req, struct evbuffer *data)
{
	if (req->handler_done)
		return false;
	return req->conn->codec->reply->reply_body(req, data);
}

void
server_reply_end(struct server_request *req)
{
	if (req->handler_done)
		return;
	req->conn->codec->reply->reply_end(req);
}

void
server_reply_abort(struct server_request *req)
{
	if (req->handler_done)
		return;
	req->conn->codec->reply->abort(req);
}

/* acme_http: HTTPS requests to the ACME CA on evhttp + OpenSSL; see acme_http.h. */
#include "acme/acme_http.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "dev"
#endif

#define ACME_HTTP_MAX_BODY (1 << 20)
#define ACME_HTTP_MAX_HEADERS (64 << 10)

struct acme_http_req {
	struct acme_http *h;
	struct acme_http_req *prev, *next;
	struct evhttp_connection *conn;
	struct evhttp_request *req;    /* until libevent is done with it */
	struct event *finish_ev;       /* deferred: free the connection, run the callback */
	struct event *deadline_ev;
	acme_http_cb cb;
	void *arg;
	struct acme_http_response resp;
	char *headers[4];              /* owned copies behind resp's header pointers */
	int req_error;                 /* enum evhttp_request_error + 1, 0: none */
	bool finished;
	char host[200];
};

struct acme_http {
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ctx;
	unsigned timeout;
	struct acme_http_req *reqs;
};

struct acme_http *
acme_http_new(struct event_base *base, const char *ca_bundle, unsigned timeout_seconds, char *err,
	      size_t errlen)
{
	struct acme_http *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->base = base;
	h->timeout = timeout_seconds ? timeout_seconds : 30;
	h->ctx = SSL_CTX_new(TLS_client_method());
	if (h->ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS client context");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(h->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(h->ctx, SSL_VERIFY_PEER, NULL);
	if (ca_bundle != NULL) {
		if (SSL_CTX_load_verify_locations(h->ctx, ca_bundle, NULL) != 1) {
			unsigned long e = ERR_get_error();

			snprintf(err, errlen, "cannot load CA bundle %s: %s", ca_bundle,
				 e ? ERR_reason_error_string(e) : "no certificates");
			ERR_clear_error();
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(h->ctx) != 1) {
		snprintf(err, errlen, "cannot load the system's trusted certificates");
		ERR_clear_error();
		goto fail;
	}
	h->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
				EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (h->dns == NULL) {
		/* no usable resolv.conf: /etc/hosts and literal addresses still work */
		h->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (h->dns != NULL)
			evdns_base_load_hosts(h->dns, NULL);
	}
	if (h->dns == NULL) {
		snprintf(err, errlen, "cannot create an asynchronous DNS resolver");
		goto fail;
	}
	return h;
fail:
	acme_http_free(h);
	return NULL;
}

static void
req_unlink(struct acme_http_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		r->h->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
}

static void
req_free(struct acme_http_req *r)
{
	if (r->finish_ev != NULL)
		event_free(r->finish_ev);
	if (r->deadline_ev != NULL)
		event_free(r->deadline_ev);
	if (r->conn != NULL)
		evhttp_connection_free(r->conn);
	free(r->resp.body);
	for (size_t i = 0; i < 4; i++)
		free(r->headers[i]);
	free(r);
}

static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_http_req *r = arg;

	req_unlink(r);
	if (r->conn != NULL) {
		evhttp_connection_free(r->conn);
		r->conn = NULL;
	}
	r->cb(&r->resp, r->arg);
	req_free(r);
}

/* Mark <r> finished and run its callback from a fresh event-loop turn, where
 * freeing the connection is safe. */
static void
req_finish(struct acme_http_req *r)
{
	if (r->finished)
		return;
	r->finished = true;
	r->req = NULL;
	event_active(r->finish_ev, EV_TIMEOUT, 0);
}

static const char *
request_error_text(int e)
{
	switch (e - 1) {
	case EVREQ_HTTP_TIMEOUT: return "timed out";
	case EVREQ_HTTP_EOF: return "connection closed before a response";
	case EVREQ_HTTP_INVALID_HEADER: return "invalid response header";
	case EVREQ_HTTP_BUFFER_ERROR: return "connection failed";
	case EVREQ_HTTP_REQUEST_CANCEL: return "cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG: return "response larger than 1 MiB";
	default: return "connection failed";
	}
}

/* Describe why there is no response, looking at TLS first. */
static void
describe_failure(struct acme_http_req *r)
{
	struct bufferevent *bev = r->conn ? evhttp_connection_get_bufferevent(r->conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	unsigned long e = bev ? bufferevent_get_openssl_error(bev) : 0;
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	char buf[160];

	if (ssl != NULL && vr != X509_V_OK) {
		snprintf(r->resp.error, sizeof(r->resp.error),
			 "TLS certificate of %s not trusted: %s", r->host,
			 X509_verify_cert_error_string(vr));
	} else if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(r->resp.error, sizeof(r->resp.error), "TLS error with %s: %s", r->host,
			 buf);
	} else {
		snprintf(r->resp.error, sizeof(r->resp.error), "%s: %s", r->host,
			 request_error_text(r->req_error));
	}
	ERR_clear_error();
}

static void
error_cb(enum evhttp_request_error e, void *arg)
{
	struct acme_http_req *r = arg;

	r->req_error = (int)e + 1;
}

static char *
header_copy(struct evkeyvalq *hdrs, const char *name)
{
	const char *v = evhttp_find_header(hdrs, name);

	return v ? strdup(v) : NULL;
}

static void
done_cb(struct evhttp_request *req, void *arg)
{
	struct acme_http_req *r = arg;
	struct evbuffer *in;
	struct evkeyvalq *hdrs;
	size_t len;

	if (r->finished)
		return;
	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		describe_failure(r);
		req_finish(r);
		return;
	}
	r->resp.status = evhttp_request_get_response_code(req);
	hdrs = evhttp_request_get_input_headers(req);
	r->headers[0] = header_copy(hdrs, "Location");
	r->headers[1] = header_copy(hdrs, "Replay-Nonce");
	r->headers[2] = header_copy(hdrs, "Retry-After");
	r->headers[3] = header_copy(hdrs, "Content-Type");
	r->resp.location = r->headers[0];
	r->resp.nonce = r->headers[1];
	r->resp.retry_after = r->headers[2];
	r->resp.content_type = r->headers[3];
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	r->resp.body = malloc(len + 1);
	if (r->resp.body == NULL) {
		r->resp.status = 0;
		snprintf(r->resp.error, sizeof(r->resp.error), "out of memory");
	} else {
		evbuffer_remove(in, r->resp.body, len);
		r->resp.body[len] = '\0';
		r->resp.body_len = len;
	}
	req_finish(r);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_http_req *r = arg;

	if (r->finished)
		return;
	snprintf(r->resp.error, sizeof(r->resp.error), "%s: no complete response within %u s",
		 r->host, 2 * r->h->timeout);
	/* freeing the connection (in finish_cb) drops the request without callbacks */
	req_finish(r);
}

int
acme_http_request(struct acme_http *h, enum evhttp_cmd_type method, const char *url,
		  const char *content_type, const char *body, const char *accept, acme_http_cb cb,
		  void *arg, char *err, size_t errlen)
{
	struct evhttp_uri *uri = evhttp_uri_parse_with_flags(url, 0);
	struct acme_http_req *r = NULL;
	struct bufferevent *bev = NULL;
	struct evkeyvalq *out;
	SSL *ssl = NULL;
	const char *host, *path, *query, *scheme;
	char target[4096], hosthdr[300];
	struct in6_addr a6;
	struct timeval tv;
	int port;
	bool literal;

	if (uri == NULL) {
		snprintf(err, errlen, "cannot parse URL \"%s\"", url);
		return -1;
	}
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || strcasecmp(scheme, "https") != 0 || host == NULL || host[0] == '\0') {
		snprintf(err, errlen, "URL \"%s\" is not an https:// URL with a host", url);
		goto fail;
	}
	port = evhttp_uri_get_port(uri);
	if (port < 0)
		port = 443;
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	if ((size_t)snprintf(target, sizeof(target), "%s%s%s", path && *path ? path : "/",
			     query ? "?" : "", query ? query : "") >= sizeof(target)) {
		snprintf(err, errlen, "URL too long");
		goto fail;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	snprintf(r->host, sizeof(r->host), "%s:%d", host, port);
	r->finish_ev = event_new(h->base, -1, 0, finish_cb, r);
	r->deadline_ev = evtimer_new(h->base, deadline_cb, r);
	ssl = SSL_new(h->ctx);
	if (r->finish_ev == NULL || r->deadline_ev == NULL || ssl == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	literal = inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
	if (literal) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1) {
			snprintf(err, errlen, "cannot verify address %s", host);
			goto fail;
		}
	} else if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
		snprintf(err, errlen, "cannot set TLS host name %s", host);
		goto fail;
	}
	bev = bufferevent_openssl_socket_new(h->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		snprintf(err, errlen, "cannot create a TLS connection");
		goto fail;
	}
	ssl = NULL; /* owned by bev */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	r->conn = evhttp_connection_base_bufferevent_new(h->base, h->dns, bev, host,
							 (unsigned short)port);
	if (r->conn == NULL) {
		bufferevent_free(bev);
		snprintf(err, errlen, "cannot create an HTTP connection");
		goto fail;
	}
	evhttp_connection_set_timeout(r->conn, (int)h->timeout);
	evhttp_connection_set_max_body_size(r->conn, ACME_HTTP_MAX_BODY);
	evhttp_connection_set_max_headers_size(r->conn, ACME_HTTP_MAX_HEADERS);
	r->req = evhttp_request_new(done_cb, r);
	if (r->req == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evhttp_request_set_error_cb(r->req, error_cb);
	out = evhttp_request_get_output_headers(r->req);
	if (strchr(host, ':') != NULL)
		snprintf(hosthdr, sizeof(hosthdr), "[%s]", host);
	else
		snprintf(hosthdr, sizeof(hosthdr), "%s", host);
	if (port != 443) {
		size_t n = strlen(hosthdr);

		snprintf(hosthdr + n, sizeof(hosthdr) - n, ":%d", port);
	}
	evhttp_add_header(out, "Host", hosthdr);
	evhttp_add_header(out, "User-Agent", "portcullis-acme/" PORTCULLIS_VERSION);
	evhttp_add_header(out, "Accept", accept ? accept : "*/*");
	evhttp_add_header(out, "Connection", "close");
	if (body != NULL) {
		evhttp_add_header(out, "Content-Type", content_type ? content_type : "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(r->req), body, strlen(body));
	}
	if (evhttp_make_request(r->conn, r->req, method, target) != 0) {
		/* libevent freed the request */
		r->req = NULL;
		snprintf(err, errlen, "cannot send the request to %s", r->host);
		goto fail;
	}
	tv.tv_sec = 2 * (time_t)h->timeout;
	tv.tv_usec = 0;
	evtimer_add(r->deadline_ev, &tv);
	r->next = h->reqs;
	if (h->reqs != NULL)
		h->reqs->prev = r;
	h->reqs = r;
	evhttp_uri_free(uri);
	return 0;
fail:
	if (r != NULL && r->req != NULL)
		evhttp_request_free(r->req);
	SSL_free(ssl);
	if (r != NULL)
		req_free(r);
	evhttp_uri_free(uri);
	return -1;
}

void
acme_http_free(struct acme_http *h)
{
	if (h == NULL)
		return;
	while (h->reqs != NULL) {
		struct acme_http_req *r = h->reqs;

		req_unlink(r);
		req_free(r);
	}
	if (h->dns != NULL)
		evdns_base_free(h->dns, 0);
	SSL_CTX_free(h->ctx);
	free(h);
}

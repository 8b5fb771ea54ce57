/*
 * acme_http: HTTPS requests to the ACME CA on libcurl's multi interface, run
 * by the manager's event_base; see acme_http.h.
 *
 * libcurl tells us which sockets to watch (socket_cb) and when to wake it
 * (timer_cb); we turn those into libevent events and hand their firings back
 * with curl_multi_socket_action().  Finished transfers are collected after
 * each such call (collect_done) and their callbacks run there, outside any
 * libcurl callback, so they may start new requests.  Connections are kept
 * in the multi handle's cache and reused between requests to the same CA.
 */
#include "acme/acme_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "http/curl_loader.h"
#include "http/outbound.h"

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "dev"
#endif

#define ACME_HTTP_MAX_BODY (1 << 20)
#define ACME_HTTP_MAX_HEADERS (64 << 10)

enum { HDR_LOCATION, HDR_NONCE, HDR_RETRY_AFTER, HDR_CONTENT_TYPE, HDR_LINK, HDR_COUNT };

struct acme_http_req {
	struct acme_http *h;
	struct acme_http_req *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	acme_http_cb cb;
	void *arg;
	struct acme_http_response resp;
	char *hdr[HDR_COUNT];          /* owned copies behind resp's header pointers */
	char *buf;                     /* the body so far */
	size_t len, cap;
	size_t header_bytes;
	bool body_too_large, headers_too_large;
	char host[200];                /* "host:port", for messages */
	char errbuf[CURL_ERROR_SIZE];
};

/* One socket libcurl asked us to watch. */
struct acme_http_sock {
	struct acme_http *h;
	struct acme_http_sock *prev, *next;
	curl_socket_t fd;
	struct event *ev;
};

struct acme_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	char *ca_bundle;
	unsigned timeout;
	struct acme_http_req *reqs;
	struct acme_http_sock *socks;
	bool plain_http; /* acme_http_allow_plain: http:// URLs too */
};

/* ------------------------------------------------------ event loop glue */

static void collect_done(struct acme_http *h);

static void
sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_http_sock *s = arg;
	struct acme_http *h = s->h;
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
		     ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;

	/* <s> may be freed inside (socket_cb, CURL_POLL_REMOVE) */
	curl_multi_socket_action(h->multi, fd, action, &running);
	collect_done(h);
}

static void
timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_http *h = arg;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect_done(h);
}

static void
sock_free(struct acme_http_sock *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->h->socks = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->ev != NULL)
		event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch <fd> for <what>, or stop watching it. */
static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct acme_http *h = userp;
	struct acme_http_sock *s = socketp;
	short events = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(h->multi, fd, NULL);
			sock_free(s);
		}
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		s->h = h;
		s->fd = fd;
		s->next = h->socks;
		if (h->socks != NULL)
			h->socks->prev = s;
		h->socks = s;
		curl_multi_assign(h->multi, fd, s);
	}
	if (s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	s->ev = event_new(h->base, fd, events, sock_event_cb, s);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		return -1;
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: wake libcurl in <ms> milliseconds (-1: never). */
static int
timer_cb(CURLM *multi, long ms, void *userp)
{
	struct acme_http *h = userp;
	struct timeval tv;

	if (ms < 0)
		return evtimer_del(h->timer);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return evtimer_add(h->timer, &tv);
}

/* ------------------------------------------------------------- requests */

static void
req_unlink(struct acme_http_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		r->h->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void
req_free(struct acme_http_req *r)
{
	if (r->easy != NULL) {
		curl_multi_remove_handle(r->h->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->headers);
	free(r->buf);
	for (size_t i = 0; i < HDR_COUNT; i++)
		free(r->hdr[i]);
	free(r);
}

/* CURLOPT_WRITEFUNCTION: keep the body, up to ACME_HTTP_MAX_BODY. */
static size_t
body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct acme_http_req *r = arg;
	size_t add = size * n;

	if (add > ACME_HTTP_MAX_BODY - r->len) {
		r->body_too_large = true;
		return 0;
	}
	if (r->len + add + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *p;

		while (cap < r->len + add + 1)
			cap *= 2;
		if ((p = realloc(r->buf, cap)) == NULL)
			return 0;
		r->buf = p;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, add);
	r->len += add;
	r->buf[r->len] = '\0';
	return add;
}

/* CURLOPT_HEADERFUNCTION: bound the response head (counted afresh at each
 * status line, so an interim 1xx does not count against the final one). */
static size_t
head_cb(char *data, size_t size, size_t n, void *arg)
{
	struct acme_http_req *r = arg;
	size_t len = size * n;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
		r->header_bytes = 0;
	r->header_bytes += len;
	if (r->header_bytes > ACME_HTTP_MAX_HEADERS) {
		r->headers_too_large = true;
		return 0;
	}
	return len;
}

/* A copy of the final response's header <name> (all of them joined with
 * ", " when <all>), or NULL. */
static char *
header_copy(CURL *easy, const char *name, bool all)
{
	struct curl_header *hv;
	char *out = NULL;
	size_t count;

	if (curl_easy_header(easy, name, 0, CURLH_HEADER, -1, &hv) != CURLHE_OK)
		return NULL;
	count = all ? hv->amount : 1;
	for (size_t i = 0; i < count; i++) {
		size_t have = out ? strlen(out) : 0, add;
		char *p;

		if (i > 0 && curl_easy_header(easy, name, i, CURLH_HEADER, -1, &hv) != CURLHE_OK)
			break;
		add = strlen(hv->value);
		if ((p = realloc(out, have + add + 3)) == NULL)
			break;
		out = p;
		snprintf(out + have, add + 3, "%s%s", have ? ", " : "", hv->value);
	}
	return out;
}

/* Fill <r>'s response from its finished transfer. */
static void
req_result(struct acme_http_req *r, CURLcode rc)
{
	struct acme_http_response *resp = &r->resp;
	long status = 0;

	if (r->body_too_large) {
		snprintf(resp->error, sizeof(resp->error), "%s: response larger than 1 MiB",
			 r->host);
		return;
	}
	if (r->headers_too_large) {
		snprintf(resp->error, sizeof(resp->error), "%s: response head larger than 64 KiB",
			 r->host);
		return;
	}
	if (rc != CURLE_OK) {
		outbound_describe(r->easy, rc, r->errbuf, r->host, 2 * r->h->timeout, resp->error,
				  sizeof(resp->error));
		ERR_clear_error();
		return;
	}
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status <= 0) {
		snprintf(resp->error, sizeof(resp->error), "%s: no HTTP response", r->host);
		return;
	}
	if (r->buf == NULL && (r->buf = calloc(1, 1)) == NULL) {
		snprintf(resp->error, sizeof(resp->error), "out of memory");
		return;
	}
	resp->status = (int)status;
	resp->body = r->buf;
	resp->body_len = r->len;
	r->hdr[HDR_LOCATION] = header_copy(r->easy, "Location", false);
	r->hdr[HDR_NONCE] = header_copy(r->easy, "Replay-Nonce", false);
	r->hdr[HDR_RETRY_AFTER] = header_copy(r->easy, "Retry-After", false);
	r->hdr[HDR_CONTENT_TYPE] = header_copy(r->easy, "Content-Type", false);
	r->hdr[HDR_LINK] = header_copy(r->easy, "Link", true);
	resp->location = r->hdr[HDR_LOCATION];
	resp->nonce = r->hdr[HDR_NONCE];
	resp->retry_after = r->hdr[HDR_RETRY_AFTER];
	resp->content_type = r->hdr[HDR_CONTENT_TYPE];
	resp->link = r->hdr[HDR_LINK];
}

/* Run the callback of every finished transfer, one at a time: a callback
 * may start new requests. */
static void
collect_done(struct acme_http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		struct acme_http_req *r = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r == NULL)
			continue;
		req_result(r, msg->data.result);
		req_unlink(r);
		r->cb(&r->resp, r->arg);
		req_free(r);
	}
}

/* Check <url> is https:// (or, with <plain>, http://) with a host;
 * "host:port" into <host>. */
static int
url_host(const char *url, bool plain, char *host, size_t hostlen, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *name = NULL, *port = NULL;
	int rc = -1;

	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(err, errlen, "cannot parse URL \"%s\"", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "https") != 0 && !(plain && strcasecmp(scheme, "http") == 0)) ||
	    curl_url_get(u, CURLUPART_HOST, &name, 0) != CURLUE_OK || name[0] == '\0' ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		snprintf(err, errlen, "URL \"%s\" is not an https:// URL with a host", url);
		goto out;
	}
	snprintf(host, hostlen, "%s:%s", name, port);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(name);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

/* Add "<name>: <value>" to <r>'s request headers. */
static int
req_header(struct acme_http_req *r, const char *name, const char *value)
{
	char line[512];
	struct curl_slist *l;

	snprintf(line, sizeof(line), "%s: %s", name, value);
	if ((l = curl_slist_append(r->headers, line)) == NULL)
		return -1;
	r->headers = l;
	return 0;
}

int
acme_http_request(struct acme_http *h, enum acme_http_method method, const char *url,
		  const char *content_type, const char *body, const char *accept, acme_http_cb cb,
		  void *arg, char *err, size_t errlen)
{
	struct outbound_options o = {
		.ca_bundle = h->ca_bundle,
		.protocols = h->plain_http ? "http,https" : "https",
		.user_agent = "portcullis-acme/" PORTCULLIS_VERSION,
		.connect_timeout = h->timeout,
		.stall_timeout = h->timeout,
		.total_timeout = 2 * h->timeout,
	};
	struct acme_http_req *r = calloc(1, sizeof(*r));
	CURLcode rc = CURLE_OK;

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	o.errbuf = r->errbuf;
	if (url_host(url, h->plain_http, r->host, sizeof(r->host), err, errlen) != 0)
		goto fail;
	if ((r->easy = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (outbound_setup(r->easy, &o, err, errlen) != 0)
		goto fail;
	if (content_type == NULL)
		content_type = "application/json";
	/* "Expect:" off: no 100-continue wait before a POST body */
	if (req_header(r, "Accept", accept ? accept : "*/*") != 0 ||
	    (body != NULL && req_header(r, "Content-Type", content_type) != 0) ||
	    (r->headers = curl_slist_append(r->headers, "Expect:")) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
#define SET(opt, val)                                                                           \
	do {                                                                                    \
		if (rc == CURLE_OK)                                                             \
			rc = curl_easy_setopt(r->easy, opt, val);                               \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PRIVATE, (void *)r);
	SET(CURLOPT_HTTPHEADER, r->headers);
	SET(CURLOPT_WRITEFUNCTION, body_cb);
	SET(CURLOPT_WRITEDATA, (void *)r);
	SET(CURLOPT_HEADERFUNCTION, head_cb);
	SET(CURLOPT_HEADERDATA, (void *)r);
	if (method == ACME_HTTP_HEAD) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (method == ACME_HTTP_POST) {
		SET(CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
		SET(CURLOPT_COPYPOSTFIELDS, body ? body : "");
	}
#undef SET
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "cannot prepare the request to %s: %s", r->host,
			 curl_easy_strerror(rc));
		goto fail;
	}
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		snprintf(err, errlen, "cannot send the request to %s", r->host);
		goto fail;
	}
	r->next = h->reqs;
	if (h->reqs != NULL)
		h->reqs->prev = r;
	h->reqs = r;
	return 0;
fail:
	if (r->easy != NULL) {
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	req_free(r);
	return -1;
}

/* ------------------------------------------------------------- client */

struct acme_http *
acme_http_new(struct event_base *base, const char *ca_bundle, unsigned timeout_seconds, char *err,
	      size_t errlen)
{
	struct acme_http *h;

	if (outbound_init(err, errlen) != 0)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->base = base;
	h->timeout = timeout_seconds ? timeout_seconds : 30;
	if (ca_bundle != NULL) {
		/* read it now, so that a bad bundle is a start-up error */
		X509_STORE *store = X509_STORE_new();

		if (store == NULL || X509_STORE_load_file(store, ca_bundle) != 1) {
			unsigned long e = ERR_get_error();

			snprintf(err, errlen, "cannot load CA bundle %s: %s", ca_bundle,
				 e ? ERR_reason_error_string(e) : "no certificates");
			ERR_clear_error();
			X509_STORE_free(store);
			goto fail;
		}
		X509_STORE_free(store);
		if ((h->ca_bundle = strdup(ca_bundle)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	h->timer = evtimer_new(base, timer_event_cb, h);
	h->multi = curl_multi_init();
	if (h->timer == NULL || h->multi == NULL) {
		snprintf(err, errlen, "cannot create the HTTPS client");
		goto fail;
	}
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK) {
		snprintf(err, errlen, "cannot set up the HTTPS client");
		goto fail;
	}
	return h;
fail:
	acme_http_free(h);
	return NULL;
}

void
acme_http_allow_plain(struct acme_http *h)
{
	h->plain_http = true;
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
	/* closing cached connections may still call socket_cb */
	if (h->multi != NULL)
		curl_multi_cleanup(h->multi);
	while (h->socks != NULL)
		sock_free(h->socks);
	if (h->timer != NULL)
		event_free(h->timer);
	free(h->ca_bundle);
	free(h);
}

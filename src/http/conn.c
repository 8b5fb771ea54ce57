/* conn: client connections on raw sockets (transport); see conn.h. */
#include "http/conn.h"
#include "http/http_internal.h"
#include "tls/tls.h"
#include "tls/tls_clientauth.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access/ipacl.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/timeutil.h"
#include "http/inbuf.h"
#include "http/request.h"
#include "http/proxyproto.h"
#include "http/tlsio.h"
#include "http/tunnel.h"

#define READ_CHUNK INBUF_SIZE
#define IDLE_RELEASE_MS 200              /* idle keep-alive time before buffers are freed */
#define LINGER_TIME_SECONDS 30           /* lingering close: in all (nginx's lingering_time) */
#define LINGER_IDLE_SECONDS 5            /* ... between two reads (nginx's lingering_timeout) */
#define LINGER_MAX_BYTES (64u << 20)     /* ... bytes dropped at most */
#define DRAIN_LINGER_MS 1000             /* ... at most this long once the server drains */
#define ACCEPT_RETRY_MS 250              /* out of descriptors: accept again after this */
#define ACCEPT_YIELD_US 1000             /* over its share: let the other workers accept first */
#define ACCEPT_LOG_MS 10000              /* ... and say so at most once per this, per process */

static void read_cb(evutil_socket_t fd, short what, void *arg);
static bool conn_write_from_event(struct server_conn *c);
static void linger_shut(struct server_conn *c);
static const struct conn_codec raw_conn_codec;

/* ---- writing ----------------------------------------------------------- */

static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;

	c->write_waiting = false;
	c->write_soon = false;
	if (what & EV_TIMEOUT) {
		conn_close(c); /* the client stopped reading */
		return;
	}
	if (c->handshaking || c->read_wants_write) {
		c->read_wants_write = false;
		read_cb(c->fd, EV_READ, c);
		return;
	}
	if (!conn_write_from_event(c) || c->codec == NULL)
		return;
	if (c->lingering) {
		/* The codec is done: once the output is out, shut and linger. */
		if (!c->write_waiting && evbuffer_get_length(c->out) == 0)
			linger_shut(c);
		return;
	}
	if (!c->write_waiting) {
		c->codec->drained(c);
		if (c->dead) {
			conn_free(c);
			return;
		}
	}
	c->codec->run(c);
}

void
conn_write_soon(struct server_conn *c)
{
	if (c->write_waiting || c->write_soon || c->dead)
		return;
	c->write_soon = true;
	event_active(c->wev, EV_WRITE, 1);
}

void
conn_send_now(struct server_conn *c)
{
	if (!c->write_soon || c->write_waiting || c->dead || c->handshaking || c->read_wants_write ||
	    c->write_wants_read || c->lingering)
		return;
	if (c->ssl)
		(void)tlsio_write(c->ssl, c->out);
	else
		(void)evbuffer_write(c->out, c->fd);
}

/* TLS: send <out> a record at a time (tlsio_write).  Returns like
 * conn_write's loop: false when it must wait. */
static bool
conn_tls_write(struct server_conn *c)
{
	switch (tlsio_write(c->ssl, c->out)) {
	case TLSIO_DONE:
		return true;
	case TLSIO_WANT_WRITE:
		c->write_waiting = true;
		event_add(c->wev, &c->srv->limits.client);
		return false;
	case TLSIO_WANT_READ:
		c->write_wants_read = true; /* read_cb retries */
		return false;
	case TLSIO_ERROR:
	default:
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		conn_close(c);
		return false;
	}
}

void
conn_write(struct server_conn *c)
{
	if (c->write_waiting || c->dead || c->handshaking)
		return;
	if (c->ssl) {
		c->write_wants_read = false;
		conn_tls_write(c);
		return;
	}
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			if (errno == EINTR)
				continue;
			c->write_waiting = true;
			event_add(c->wev, &c->srv->limits.client);
			return;
		}
		/* The client is gone (EPIPE, ECONNRESET). */
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		conn_close(c);
		return;
	}
}

/* conn_write from an event callback: returns false when the connection is
 * gone (freed here), so the caller must not touch it. */
static bool
conn_write_from_event(struct server_conn *c)
{
	bool was = c->running;

	c->running = true;
	conn_write(c);
	c->running = was;
	if (c->dead && !was) {
		conn_free(c);
		return false;
	}
	return !c->dead;
}

/* The connections of one listener over its workers (server_set_share). */
struct server_share {
	atomic_long conns;   /* open connections of every server of the listener */
	atomic_int servers;  /* servers (workers) taking part */
};

/* ---- connection lifecycle --------------------------------------------- */

void
conn_free(struct server_conn *c)
{
	struct server *srv = c->srv;

	LIST_REMOVE(c, link);
	srv->nconns--;
	if (srv->share)
		atomic_fetch_sub(&srv->share->conns, 1);
	if (srv->counted)
		metrics_add(METRIC_CLIENT_CONNECTIONS, -1);
	if (c->codec)
		c->codec->free(c);
	if (c->slot)
		srv->admission->release(c->slot, srv->admission_arg);
	event_free(c->rev);
	event_free(c->wev);
	lazytimer_free(&c->timer);
	if (c->ssl) {
		if (!c->handshaking)
			SSL_shutdown(c->ssl); /* close_notify, best effort */
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	evbuffer_free(c->out);
	inbuf_give(c->in, c->incap);
	free(c->target_spare);
	if (c->body_spare)
		evbuffer_free(c->body_spare);
	free(c);
}

void
conn_close(struct server_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->codec)
		c->codec->abort(c);
	if (!c->running)
		conn_free(c);
}

/* Give back what an idle connection holds: OpenSSL's record buffers (about
 * 17 KiB each way) and the input buffer.  They are allocated again when the
 * next request comes. */
static void
conn_release_buffers(struct server_conn *c)
{
	if (c->ssl && !c->handshaking && !SSL_has_pending(c->ssl))
		SSL_free_buffers(c->ssl); /* refuses by itself while a record is pending */
	if (c->inlen == 0) {
		inbuf_give(c->in, c->incap);
		c->in = NULL;
		c->incap = 0;
	}
	free(c->target_spare);
	c->target_spare = NULL;
	c->target_spare_cap = 0;
	if (c->codec != NULL && c->codec->idle != NULL)
		c->codec->idle(c);
}

/* Between two requests: the timer first frees the buffers after
 * IDLE_RELEASE_MS, then closes the connection when the idle keep-alive
 * time is up.  A busy connection keeps its buffers: OpenSSL's
 * SSL_MODE_RELEASE_BUFFERS frees and allocates them for every request. */
void
conn_idle(struct server_conn *c)
{
	struct timeval first = {0, IDLE_RELEASE_MS * 1000};

	c->idle_release = evutil_timercmp(&c->srv->limits.client, &first, >);
	lazytimer_set(&c->timer, c->idle_release ? &first : &c->srv->limits.client);
}

void
conn_resume_reading(struct server_conn *c)
{
	if (!c->read_paused)
		return;
	c->read_paused = false;
	event_add(c->rev, NULL);
	/* Bytes OpenSSL read ahead do not wake epoll. */
	if (c->ssl && SSL_has_pending(c->ssl))
		event_active(c->rev, EV_READ, 1);
}

/* The transport is ready: pick the codec from the server's list (by ALPN on
 * TLS, else the first) and start it. */
static void
conn_start_codec(struct server_conn *c)
{
	const struct conn_codec *const *codecs = c->srv->codecs;
	const struct conn_codec *codec = codecs != NULL ? codecs[0] : NULL;

	if (c->srv->raw) {
		c->codec = &raw_conn_codec;
		return;
	}
	if (c->ssl) {
		const unsigned char *alpn = NULL;
		unsigned int alen = 0;

		SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
		for (size_t i = 0; alpn && codecs != NULL && codecs[i] != NULL; i++) {
			if (strlen(codecs[i]->alpn) == alen &&
			    memcmp(codecs[i]->alpn, alpn, alen) == 0)
				codec = codecs[i];
		}
	}
	if (codec == NULL) { /* a server made without codecs: nothing to speak */
		conn_close(c);
		return;
	}
	c->codec = codec;
	codec->start(c);
}

/* Plain HTTP sent to a TLS listener: say so in plain HTTP, then close. */
static void
plain_on_tls_port(struct server_conn *c)
{
	tls_answer_plain_http(c->ssl);
	conn_close(c);
}

/* TLS: finish the handshake (returns false while it is not done). */
static bool
conn_tls_handshake(struct server_conn *c)
{
	int r, err;

	if (!c->tls_checked) {
		unsigned char first;
		ssize_t n = recv(c->fd, &first, 1, MSG_PEEK);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return false;
		if (n <= 0) {
			conn_close(c);
			return false;
		}
		if (first != 0x16) { /* not a TLS handshake record */
			plain_on_tls_port(c);
			return false;
		}
		c->tls_checked = true;
	}
	tlsio_clear_errors();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		conn_start_codec(c);
		return true;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ)
		return false;
	if (err == SSL_ERROR_WANT_WRITE) {
		c->write_waiting = true;
		event_add(c->wev, &c->srv->limits.client);
		return false;
	}
	metrics_add(METRIC_TLS_HANDSHAKE_FAILURES, 1);
	conn_close(c); /* a failed handshake touches nothing else */
	return false;
}

/* Read into the input buffer: at most <room> bytes.  Returns bytes read,
 * 0 at EOF, -1 for "nothing now" (EAGAIN), -2 for an error (tlsio_read). */
static ssize_t
conn_read(struct server_conn *c, size_t room)
{
	bool wants_write = false;
	ssize_t n = tlsio_read(c->ssl, c->fd, c->in + c->inlen, room, &wants_write);

	if (wants_write) {
		c->read_wants_write = true;
		c->write_waiting = true;
		event_add(c->wev, &c->srv->limits.client);
	}
	return n;
}

/* ---- lingering close ----------------------------------------------------- */

void
conn_discard_input(struct server_conn *c)
{
	c->discard_input = true;
}

/* Bytes from the client wait unread (in OpenSSL or the socket); a peek. */
static bool
conn_input_pending(struct server_conn *c)
{
	char b;
	ssize_t n;

	if (c->ssl && SSL_has_pending(c->ssl))
		return true;
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		c->read_eof = true;
	return n > 0;
}

/* Lingering ends: count how, then close. */
static void
linger_end(struct server_conn *c, enum metrics_gauge how)
{
	metrics_add(how, 1);
	conn_close(c);
}

/* The timer for the next read: the idle time, or what is left in all. */
static void
linger_arm(struct server_conn *c)
{
	struct timeval tv = c->srv->linger_idle;
	int64_t left = c->linger_end_ms - monotonic_ms();

	if (evutil_timercmp(&c->srv->limits.client, &tv, <))
		tv = c->srv->limits.client;
	if (left <= 0) {
		linger_end(c, METRIC_LINGER_TIMEOUT);
		return;
	}
	if (left < (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000) {
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000 * 1000);
	}
	lazytimer_set(&c->timer, &tv);
}

/* Read and drop until the client closes, the limits end it, or EAGAIN. */
static void
linger_read(struct server_conn *c)
{
	static _Thread_local char sink[65536];

	for (;;) {
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

		if (n > 0) {
			c->discarded += (uint64_t)n;
			metrics_add(METRIC_LINGER_BYTES, n);
			if (c->discarded > c->srv->linger_bytes) {
				linger_end(c, METRIC_LINGER_LIMIT);
				return;
			}
			if ((size_t)n < sizeof(sink))
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		linger_end(c, METRIC_LINGER_CLIENT); /* EOF (it read the answer) or reset */
		return;
	}
	linger_arm(c);
}

/* The output is written: shut the write side (the client reads the answer
 * and then EOF), free what only served the codec, and read to drop. */
static void
linger_shut(struct server_conn *c)
{
	if (c->read_eof) {
		linger_end(c, METRIC_LINGER_CLIENT);
		return;
	}
	c->linger_shut = true;
	if (c->ssl) {
		if (!c->handshaking)
			SSL_shutdown(c->ssl); /* close_notify, best effort */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	shutdown(c->fd, SHUT_WR);
	c->discarded += c->inlen;
	metrics_add(METRIC_LINGER_BYTES, (int64_t)c->inlen);
	inbuf_give(c->in, c->incap);
	c->in = NULL;
	c->inlen = c->incap = 0;
	event_del(c->wev);
	c->write_waiting = false;
	c->read_wants_write = c->write_wants_read = false;
	if (c->read_paused) {
		c->read_paused = false;
		event_add(c->rev, NULL);
	}
	linger_arm(c);
}

void
conn_linger(struct server_conn *c, bool client_may_send)
{
	struct timeval *t = &c->srv->linger_time;

	if (c->dead || c->lingering)
		return;
	/* Bytes already read (c->in) cause no reset; unread ones in the socket
	 * would. */
	if (c->read_eof || c->srv->raw ||
	    (!client_may_send && c->discarded == 0 && !conn_input_pending(c))) {
		conn_close(c);
		return;
	}
	c->lingering = true;
	c->discard_input = true;
	c->linger_end_ms = monotonic_ms() +
			   (c->srv->draining ? DRAIN_LINGER_MS
					     : (int64_t)t->tv_sec * 1000 + t->tv_usec / 1000);
	lazytimer_stop(&c->timer); /* a stalled write is the write timeout's business */
	if (!c->write_waiting && evbuffer_get_length(c->out) == 0) {
		linger_shut(c);
		return;
	}
	if (c->read_paused) { /* keep reading (and dropping) while writing */
		c->read_paused = false;
		event_add(c->rev, NULL);
	}
	conn_write_soon(c);
}

void
server_set_linger(struct server *srv, const struct timeval *total, const struct timeval *idle,
		  uint64_t max_bytes)
{
	srv->linger_time = *total;
	srv->linger_idle = *idle;
	srv->linger_bytes = max_bytes;
}

/* ---- raw listeners: accept, PROXY header, then hold for the handler ---- */

/* The transport refuses <c>: tell the handler, then close. */
static void
conn_raw_refuse(struct server_conn *c, enum server_refusal why, const char *detail)
{
	bool was = c->running;

	c->running = true;
	if (c->raw_data)
		c->srv->raw->on_refused(c, why, detail, c->raw_data);
	conn_close(c);
	c->running = was;
	if (!was)
		conn_free(c);
}

/* The client address is known: stop reading and the timer, and hand the
 * connection to the handler (called with c->running set). */
static void
conn_raw_ready(struct server_conn *c)
{
	event_del(c->rev);
	c->read_paused = true;
	lazytimer_stop(&c->timer);
	c->srv->raw->on_ready(c, (const struct sockaddr *)&c->peer, c->raw_data);
}

static void
raw_nothing(struct server_conn *c)
{
	(void)c;
}

static bool
raw_read_more(const struct server_conn *c)
{
	(void)c;
	return false;
}

static bool
raw_false(struct server_conn *c)
{
	(void)c;
	return false;
}

static void
raw_timeout(struct server_conn *c)
{
	if (c->pp_pending)
		conn_raw_refuse(c, SERVER_REFUSED_PROXY_TIMEOUT, NULL);
	else
		conn_close(c);
}

static void
raw_free(struct server_conn *c)
{
	void *data = c->raw_data;

	c->raw_data = NULL;
	if (data)
		c->srv->raw->on_close(c, data);
}

static const struct conn_codec raw_conn_codec = {
	.alpn = "",
	.reply = NULL,
	.start = raw_nothing,
	.input = raw_nothing,
	.run = raw_nothing,
	.read_more = raw_read_more,
	.eof = raw_false,
	.timeout = raw_timeout,
	.drained = raw_nothing,
	.drain = raw_false, /* held connections go on, like active requests */
	.abort = raw_nothing,
	.free = raw_free,
};

void
server_set_raw(struct server *srv, const struct server_raw_handler *h, void *arg)
{
	srv->raw = h;
	srv->raw_arg = arg;
}

void
server_conn_set_deadline(struct server_conn *c, const struct timeval *tv)
{
	lazytimer_set(&c->timer, tv);
}

int
server_conn_detach(struct server_conn *c, struct tunnel_end *end, struct evbuffer *early)
{
	if (c->dead || c->pp_pending || c->handshaking || c->write_waiting ||
	    evbuffer_get_length(c->out) > 0)
		return -1;
	if (c->inlen > 0) {
		if (early == NULL || evbuffer_add(early, c->in, c->inlen) < 0)
			return -1;
		c->inlen = 0;
	}
	event_del(c->rev);
	event_del(c->wev);
	lazytimer_stop(&c->timer);
	end->fd = c->fd;
	end->ssl = c->ssl;
	c->fd = -1;
	c->ssl = NULL;
	c->raw_data = NULL;
	conn_close(c);
	return 0;
}

void
server_conn_close(struct server_conn *c)
{
	c->raw_data = NULL;
	conn_close(c);
}

/* The connection limits of the server (server_set_admission), once the
 * client's address is known.  False: refused. */
static bool
conn_admit(struct server_conn *c)
{
	c->slot = c->srv->admission->admit((const struct sockaddr *)&c->peer,
					   c->srv->admission_arg);
	return c->slot != NULL;
}

void
server_set_admission(struct server *srv, const struct server_admission *a, void *arg)
{
	srv->admission = a;
	srv->admission_arg = arg;
}

void *
server_conn_take_slot(struct server_conn *c)
{
	void *slot = c->slot;

	c->slot = NULL;
	return slot;
}

/* Read and drop the PROXY protocol header (peeked first, so that a TLS
 * ClientHello behind it stays in the socket for OpenSSL); the client
 * address it carries replaces the socket peer.  Returns false while it is
 * incomplete, or when the connection was closed. */
static bool
conn_proxy_header(struct server_conn *c)
{
	unsigned char buf[PROXYPROTO_MAX_HEADER];
	struct proxyproto_info info;
	const char *why = NULL;
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK);
	enum proxyproto_result r;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	if (n <= 0) {
		conn_close(c);
		return false;
	}
	r = proxyproto_parse(buf, (size_t)n, &info, &why);
	if (r == PROXYPROTO_NEED_MORE && (size_t)n < sizeof(buf))
		return false;
	if (r != PROXYPROTO_OK) {
		if (c->srv->raw) {
			conn_raw_refuse(c, SERVER_REFUSED_PROXY_HEADER,
					why ? why : "PROXY header too long");
			return false;
		}
		log_info("connection refused: %s", why ? why : "PROXY header too long");
		conn_close(c);
		return false;
	}
	if (recv(c->fd, buf, info.header_len, 0) != (ssize_t)info.header_len) {
		conn_close(c);
		return false;
	}
	if (info.has_address)
		c->peer = info.src;
	c->pp_pending = false;
	if (c->srv->admission && !conn_admit(c)) {
		conn_close(c);
		return false;
	}
	if (c->srv->raw) {
		c->running = true;
		conn_raw_ready(c);
		c->running = false;
		if (c->dead)
			conn_free(c);
		return false; /* held: nothing more is read here */
	}
	return true;
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;
	bool got = false;

	if (c->linger_shut) {
		linger_read(c);
		return;
	}
	if (c->pp_pending && !conn_proxy_header(c))
		return;
	if (c->handshaking && !conn_tls_handshake(c))
		return;
	if (c->write_wants_read && !conn_write_from_event(c))
		return;
	if (c->lingering && !c->write_waiting && evbuffer_get_length(c->out) == 0) {
		linger_shut(c); /* the write that needed this read finished it */
		return;
	}
	for (;;) {
		ssize_t n;
		size_t room;

		if (!c->discard_input && !c->codec->read_more(c)) {
			/* Enough read ahead while the handler works. */
			event_del(c->rev);
			c->read_paused = true;
			break;
		}
		if (c->incap - c->inlen < 4096) {
			size_t ncap = c->incap ? c->incap * 2 : READ_CHUNK;
			char *p = c->in == NULL ? inbuf_take() : realloc(c->in, ncap);

			if (p == NULL) {
				conn_close(c);
				return;
			}
			c->in = p;
			c->incap = ncap;
		}
		room = c->incap - c->inlen;
		n = conn_read(c, room);
		if (n > 0 && c->discard_input) {
			/* Nothing more is parsed: count and drop. */
			c->discarded += (uint64_t)n;
			metrics_add(METRIC_LINGER_BYTES, n);
			if (c->discarded > c->srv->linger_bytes) {
				metrics_add(METRIC_LINGER_LIMIT, 1);
				conn_close(c);
				return;
			}
			if ((size_t)n < room && (c->ssl == NULL || !SSL_has_pending(c->ssl)))
				break;
			continue;
		}
		if (n > 0) {
			c->inlen += (size_t)n;
			got = true;
			/* Short read: the kernel had no more, and OpenSSL holds
			 * no bytes (decrypted or read ahead, which epoll cannot
			 * see): wait for epoll rather than ask again. */
			if ((size_t)n < room && (c->ssl == NULL || !SSL_has_pending(c->ssl)))
				break;
			continue;
		}
		if (n == -1)
			break;
		/* EOF or error: the client is gone. */
		c->read_eof = true;
		if (c->lingering || c->codec->eof(c)) {
			/* Finish writing the last reply (half-closed client). */
			c->closing = true;
			event_del(c->rev);
			return;
		}
		conn_close(c);
		return;
	}
	if (c->lingering)
		return; /* the codec is done */
	if (got)
		c->codec->input(c);
	else
		c->codec->run(c);
}

/* The connection's one timer: idle keep-alive, the request-head deadline,
 * or a stalled body, depending on where the connection is. */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;

	if (!lazytimer_fired(&c->timer))
		return; /* moved later or cancelled since it was set */
	if (c->lingering) {
		if (c->linger_shut)
			metrics_add(METRIC_LINGER_TIMEOUT, 1);
		conn_close(c);
		return;
	}
	if (c->req == NULL && c->idle_release) {
		struct timeval first = {0, IDLE_RELEASE_MS * 1000}, rest;

		c->idle_release = false;
		conn_release_buffers(c);
		evutil_timersub(&c->srv->limits.client, &first, &rest);
		lazytimer_set(&c->timer, &rest);
		return;
	}
	if (c->codec == NULL) {
		conn_close(c); /* the PROXY header or the handshake took too long */
		return;
	}
	c->codec->timeout(c);
}

/* Take over the connected socket <fd> from <peer>.  Returns 0, or -1 with
 * <fd> closed. */
static int
conn_new(struct server *srv, int fd, const struct sockaddr_storage *peer)
{
	struct server_conn *c;
	bool untrusted;

	if (srv->raw == NULL && srv->proxy_protocol &&
	    !ipacl_contains(srv->trusted, (const struct sockaddr *)peer)) {
		/* A PROXY header is believed only from trusted proxies. */
		close(fd);
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return -1;
	}
	c->srv = srv;
	c->fd = fd;
	c->peer = *peer;
	c->out = evbuffer_new();
	c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, read_cb, c);
	c->wev = event_new(srv->base, fd, EV_WRITE, write_cb, c);
	if (!c->out || !c->rev || !c->wev || lazytimer_init(&c->timer, srv->base, timer_cb, c) < 0)
		goto fail;
	if (srv->admission && !srv->proxy_protocol && !conn_admit(c))
		goto fail;
	lazytimer_set(&c->timer, &srv->limits.client);
	if (srv->raw) {
		/* May set the PROXY setting and the deadline (conn.h). */
		c->raw_data = srv->raw->on_accept(c, (const struct sockaddr *)peer, srv->raw_arg);
		if (c->raw_data == NULL)
			goto fail;
	}
	untrusted = srv->raw && srv->proxy_protocol &&
		    !ipacl_contains(srv->trusted, (const struct sockaddr *)peer);
	c->pp_pending = srv->proxy_protocol;
	if (srv->tls && srv->raw == NULL) {
		c->ssl = SSL_new(srv->tls);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1)
			goto fail;
		SSL_set_accept_state(c->ssl);
		if (srv->alpn != NULL && tls_set_alpn(c->ssl, srv->alpn) < 0)
			goto fail;
		if (srv->client_auth != NULL && tls_set_client_auth(c->ssl, srv->client_auth) < 0)
			goto fail;
		SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
					     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		/* Buffers live while the connection is busy (conn_idle frees
		 * them when it is not), and a record is read in one system
		 * call rather than header and body apart. */
		SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
		SSL_set_read_ahead(c->ssl, 1);
		c->handshaking = true;
	} else {
		conn_start_codec(c);
	}
	LIST_INSERT_HEAD(&srv->conns, c, link);
	srv->nconns++;
	if (srv->share)
		atomic_fetch_add(&srv->share->conns, 1);
	if (srv->counted)
		metrics_add(METRIC_CLIENT_CONNECTIONS, 1);
	event_add(c->rev, NULL);
	if (srv->raw) {
		c->running = true;
		if (untrusted)
			conn_raw_refuse(c, SERVER_REFUSED_UNTRUSTED, NULL);
		else if (!c->pp_pending)
			conn_raw_ready(c);
		c->running = false;
		if (c->dead)
			conn_free(c);
	}
	return 0;
fail:
	if (c->slot)
		srv->admission->release(c->slot, srv->admission_arg);
	SSL_free(c->ssl);
	if (c->out)
		evbuffer_free(c->out);
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	lazytimer_free(&c->timer);
	close(fd);
	free(c);
	return -1;
}

static void
accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	if (srv->accept_ev)
		event_add(srv->accept_ev, NULL);
}

/*
 * Out of descriptors (or kernel memory): the pending connection stays in
 * the listen queue and the socket stays readable, so epoll would wake us
 * at once, forever, burning a core per worker.  Stop watching it for
 * ACCEPT_RETRY_MS (the connections wait in the queue and are taken once
 * descriptors free up), and say why once per ACCEPT_LOG_MS for the whole
 * process (every worker and listener pauses on its own).
 */
static void
accept_pause(struct server *srv, int err)
{
	static _Atomic int64_t last_log = INT64_MIN / 2;
	static _Atomic int64_t pauses_logged;
	struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
	int64_t now = monotonic_ms(), prev = atomic_load(&last_log);

	metrics_add(METRIC_ACCEPT_PAUSES, 1);
	if (now - prev >= ACCEPT_LOG_MS && atomic_compare_exchange_strong(&last_log, &prev, now)) {
		int64_t total = metrics_get(METRIC_ACCEPT_PAUSES);
		int64_t n = total - atomic_exchange(&pauses_logged, total);

		log_warn("accepting connections paused: %s (%s); %lld pause%s of %d ms since the last "
			 "such line; waiting connections are taken once descriptors free up",
			 strerror(err),
			 err == EMFILE ? "the process's open-file limit: raise LimitNOFILE or ulimit -n"
			 : err == ENFILE ? "the system's open-file limit: fs.file-max"
					 : "out of kernel memory",
			 (long long)n, n == 1 ? "" : "s", ACCEPT_RETRY_MS);
	}
	if (srv->accept_retry == NULL)
		srv->accept_retry = evtimer_new(srv->base, accept_retry_cb, srv);
	if (srv->accept_retry == NULL)
		return; /* keep trying at the loop's pace rather than never */
	event_del(srv->accept_ev);
	evtimer_add(srv->accept_retry, &tv);
}

/* ---- sharing the connections of a listener among workers ---------------- */

struct server_share *
server_share_new(void)
{
	struct server_share *share = calloc(1, sizeof(*share));

	if (share != NULL) {
		atomic_init(&share->conns, 0);
		atomic_init(&share->servers, 0);
	}
	return share;
}

void
server_share_free(struct server_share *share)
{
	free(share);
}

void
server_set_share(struct server *srv, struct server_share *share)
{
	srv->share = share;
	atomic_fetch_add(&share->servers, 1);
	atomic_fetch_add(&share->conns, (long)srv->nconns);
}

/* More than one connection over the average of the listener's servers. */
static bool
over_fair_share(const struct server *srv)
{
	long servers, total;

	if (srv->share == NULL)
		return false;
	servers = atomic_load(&srv->share->servers);
	total = atomic_load(&srv->share->conns);
	return servers > 1 && (long)srv->nconns * servers > total + servers;
}

/* A worker over its share of the listener's connections steps back for
 * ACCEPT_YIELD_US: the others (woken by the same connection) take it; if
 * none does meanwhile, this one takes it after the pause.  False when the
 * pause cannot be set up (then it accepts). */
static bool
accept_yield(struct server *srv)
{
	struct timeval tv = {0, ACCEPT_YIELD_US};

	if (srv->accept_retry == NULL)
		srv->accept_retry = evtimer_new(srv->base, accept_retry_cb, srv);
	if (srv->accept_retry == NULL)
		return false;
	event_del(srv->accept_ev);
	evtimer_add(srv->accept_retry, &tv);
	return true;
}

/*
 * One connection per wake-up.  Every worker polls the same listening socket
 * (level-triggered: all wake while connections wait); a worker that took a
 * whole burst at once (wrk's 64 connections arrive in a millisecond) would
 * serve all of them while the other idles, and its queue is the latency
 * tail.  Taking one and going back to the loop lets each worker take its
 * share, and a busy worker, slower to come back, takes fewer (nginx's
 * multi_accept off does the same); a worker past its share of the open
 * connections lets the others go first (accept_yield).  Aborted handshakes
 * do not count.
 */
static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct server *srv = arg;

	if (over_fair_share(srv) && accept_yield(srv))
		return;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_new(srv, fd, &ss);
			return;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED: /* that one gave up; take the next */
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			accept_pause(srv, errno);
			return;
		default:
			return; /* EAGAIN: nothing waits (or another worker took it) */
		}
	}
}

/* ---- server ------------------------------------------------------------ */

struct server *
server_new(struct event_base *base, int fd, int port, const struct conn_codec *const *codecs,
	   const struct server_handler *handler, void *arg)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return NULL;
	srv->base = base;
	srv->fd = fd;
	srv->port = port;
	srv->handler = handler;
	srv->codecs = codecs;
	srv->arg = arg;
	srv->limits.max_header_bytes = 65536;
	srv->limits.client.tv_sec = 30;
	srv->linger_time.tv_sec = LINGER_TIME_SECONDS;
	srv->linger_idle.tv_sec = LINGER_IDLE_SECONDS;
	srv->linger_bytes = LINGER_MAX_BYTES;
	srv->counted = true;
	LIST_INIT(&srv->conns);
	if (fd < 0)
		return srv; /* connections come through server_adopt only */
	srv->accept_ev = event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, srv);
	if (srv->accept_ev == NULL || event_add(srv->accept_ev, NULL) < 0) {
		if (srv->accept_ev)
			event_free(srv->accept_ev);
		free(srv);
		return NULL;
	}
	return srv;
}

void
server_set_limits(struct server *srv, const struct server_limits *limits)
{
	srv->limits = *limits;
	for (size_t i = 0; srv->codecs != NULL && srv->codecs[i] != NULL; i++)
		if (srv->codecs[i]->configure != NULL)
			srv->codecs[i]->configure(limits);
}

void
server_set_alpn(struct server *srv, const char *const *protos)
{
	srv->alpn = protos;
}

void
server_set_client_auth(struct server *srv, struct tls_client_auth_map *map)
{
	srv->client_auth = map;
}

void
server_set_counted(struct server *srv, bool counted)
{
	srv->counted = counted;
}

void
server_set_http10_status(struct server *srv, bool on)
{
	srv->http10_status = on;
}

void
server_set_proxy_protocol(struct server *srv, bool on, const struct ipacl *trusted)
{
	srv->proxy_protocol = on;
	srv->trusted = trusted;
}

void
server_set_tls(struct server *srv, SSL_CTX *ctx)
{
	if (ctx)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
}

/*
 * An idle connection that still gets its request served while draining (the
 * answer then closes it): one that never carried a request (its client has
 * no reason to retry elsewhere; a process that took over the listening
 * socket may have accepted it a moment ago), or one whose next request is
 * already in the socket.  Closing those would lose a request.
 */
static bool
request_on_its_way(struct server_conn *c)
{
	int pending = 0;

	if (!c->served)
		return true;
	return ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0;
}

void
server_drain(struct server *srv)
{
	struct server_conn *c, *next;

	srv->draining = true;
	if (srv->accept_retry) {
		event_free(srv->accept_retry);
		srv->accept_retry = NULL;
	}
	if (srv->accept_ev) {
		event_free(srv->accept_ev);
		srv->accept_ev = NULL;
		close(srv->fd);
		srv->fd = -1;
	}
	for (c = LIST_FIRST(&srv->conns); c; c = next) {
		next = LIST_NEXT(c, link);
		if (c->lingering) {
			/* It ends by itself; within a second from now. */
			int64_t soon = monotonic_ms() + DRAIN_LINGER_MS;

			if (c->linger_end_ms > soon)
				c->linger_end_ms = soon;
			if (c->linger_shut)
				linger_arm(c); /* may close it */
			continue;
		}
		if ((c->codec == NULL || c->codec->drain(c)) && !request_on_its_way(c))
			conn_close(c); /* idle keep-alive */
	}
}

int
server_adopt(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (peer && peerlen <= sizeof(ss))
		memcpy(&ss, peer, peerlen);
	else
		ss.ss_family = AF_UNSPEC;
	if (evutil_make_socket_nonblocking(fd) < 0) {
		close(fd);
		return -1;
	}
	return conn_new(srv, fd, &ss);
}

size_t
server_connections(const struct server *srv)
{
	return srv->nconns;
}

void
server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	while (!LIST_EMPTY(&srv->conns)) {
		struct server_conn *c = LIST_FIRST(&srv->conns);

		c->running = false;
		if (c->dead)
			conn_free(c);
		else
			conn_close(c); /* frees it */
	}
	if (srv->share)
		atomic_fetch_sub(&srv->share->servers, 1);
	if (srv->accept_retry)
		event_free(srv->accept_retry);
	if (srv->accept_ev) {
		event_free(srv->accept_ev);
		close(srv->fd);
	}
	SSL_CTX_free(srv->tls);
	free(srv);
}

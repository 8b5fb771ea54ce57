/* tunnel: bytes both ways between two connected streams; see tunnel.h. */
#include "http/tunnel.h"
#include "http/tlsio.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#define TUNNEL_READ_CHUNK (64 * 1024)      /* one read() */
#define TUNNEL_READ_ROUNDS 8               /* reads per readiness event */
#define TUNNEL_DEFAULT_HIGH_WATER (512 * 1024)

struct tunnel_half {
	struct tunnel *t;
	enum tunnel_side side;
	int fd;
	SSL *ssl;
	struct event *rev, *wev;
	struct evbuffer *out;  /* bytes to write to this end */
	uint64_t nread;        /* bytes read from this end */
	bool eof;              /* reading from it ended */
	bool shut;             /* we passed an EOF on to it */
	bool read_paused;      /* its partner's queue is full */
	bool read_wants_write; /* SSL_read needs the socket writable */
	bool write_wants_read; /* SSL_write needs the socket readable */
	bool write_waiting;    /* wev is pending */
};

struct tunnel {
	struct event_base *base;
	struct tunnel_half half[2];
	struct event *idle;
	struct timeval last;     /* last byte read from either end */
	size_t high_water;
	double idle_seconds;
	const struct tunnel_callbacks *cb;
	void *arg;
	int busy;                /* event callbacks in progress */
	bool finished;
	enum tunnel_reason why;
	enum tunnel_side why_side;
};

static struct tunnel_half *
partner(struct tunnel_half *h)
{
	return &h->t->half[h->side == TUNNEL_A ? TUNNEL_B : TUNNEL_A];
}

/* Close both ends now; the callback runs when the event callback unwinds. */
static void
tunnel_finish(struct tunnel *t, enum tunnel_reason why, enum tunnel_side side)
{
	if (t->finished)
		return;
	t->finished = true;
	t->why = why;
	t->why_side = side;
}

static void
tunnel_close_ends(struct tunnel *t)
{
	for (int i = 0; i < 2; i++) {
		struct tunnel_half *h = &t->half[i];

		if (h->rev)
			event_free(h->rev);
		if (h->wev)
			event_free(h->wev);
		h->rev = h->wev = NULL;
		if (h->ssl) {
			/* close_notify, best effort, when the handshake is done
			 * and none was sent yet (what bufferevent_openssl did). */
			if (!h->shut && SSL_is_init_finished(h->ssl)) {
				tlsio_clear_errors();
				SSL_shutdown(h->ssl);
			}
			SSL_free(h->ssl);
			h->ssl = NULL;
		}
		if (h->fd >= 0)
			close(h->fd);
		h->fd = -1;
		if (h->out)
			evbuffer_free(h->out);
		h->out = NULL;
	}
	if (t->idle)
		event_free(t->idle);
	t->idle = NULL;
}

void
tunnel_free(struct tunnel *t)
{
	if (t == NULL)
		return;
	tunnel_close_ends(t);
	free(t);
}

static void
tunnel_enter(struct tunnel *t)
{
	t->busy++;
}

/* Leave an event callback: once the outermost one unwinds, a finished
 * tunnel closes, reports and is freed.  Returns false when it is gone. */
static bool
tunnel_leave(struct tunnel *t)
{
	if (--t->busy > 0 || !t->finished)
		return true;
	/* Report first, close after: whoever watches the owner's log sees
	 * the line before the peers see the close. */
	if (t->cb->done)
		t->cb->done(t, t->why, t->why_side, t->arg);
	tunnel_close_ends(t);
	free(t);
	return false;
}

static bool
tunnel_ended(const struct tunnel *t)
{
	return t->half[0].eof && t->half[1].eof && t->half[0].shut && t->half[1].shut;
}

/* Pass the EOF read from <h>'s partner on to <h>. */
static void
half_shutdown_write(struct tunnel_half *h)
{
	h->shut = true;
	if (h->ssl && SSL_is_init_finished(h->ssl)) {
		tlsio_clear_errors();
		SSL_shutdown(h->ssl); /* close_notify; the socket stays readable */
	}
	shutdown(h->fd, SHUT_WR);
	if (tunnel_ended(h->t))
		tunnel_finish(h->t, TUNNEL_CLOSED, h->side);
}

static void
half_resume_reading(struct tunnel_half *h)
{
	if (!h->read_paused || h->eof)
		return;
	h->read_paused = false;
	event_add(h->rev, NULL);
	/* Bytes OpenSSL read ahead do not wake epoll. */
	if (h->ssl && SSL_has_pending(h->ssl))
		event_active(h->rev, EV_READ, 1);
}

static void
half_wait_writable(struct tunnel_half *h)
{
	h->write_waiting = true;
	event_add(h->wev, NULL);
}

/* TLS: send <h>'s queue a record at a time (tlsio_write).  False: wait. */
static bool
half_tls_write(struct tunnel_half *h)
{
	switch (tlsio_write(h->ssl, h->out)) {
	case TLSIO_DONE:
		return true;
	case TLSIO_WANT_WRITE:
		half_wait_writable(h);
		return false;
	case TLSIO_WANT_READ:
		h->write_wants_read = true; /* the read callback retries */
		if (h->read_paused || h->eof)
			event_add(h->rev, NULL);
		return false;
	case TLSIO_ERROR:
	default:
		tunnel_finish(h->t, TUNNEL_ERROR, h->side);
		return false;
	}
}

/* Write what the kernel takes of <h>'s queue; then resume its partner's
 * reading, or pass its partner's EOF on. */
static void
half_flush(struct tunnel_half *h)
{
	struct tunnel_half *p = partner(h);

	if (h->t->finished || h->write_waiting)
		return;
	if (h->ssl) {
		h->write_wants_read = false;
		if (!half_tls_write(h))
			return;
	} else {
		while (evbuffer_get_length(h->out) > 0) {
			int n = evbuffer_write(h->out, h->fd);

			if (n > 0)
				continue;
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				half_wait_writable(h);
				break;
			}
			tunnel_finish(h->t, TUNNEL_ERROR, h->side);
			return;
		}
	}
	if (evbuffer_get_length(h->out) < h->t->high_water / 2)
		half_resume_reading(p);
	if (p->eof && !h->shut && evbuffer_get_length(h->out) == 0)
		half_shutdown_write(h);
}

/* Read from <h>.  Returns bytes read (>0), 0 at EOF, -1 for "nothing now",
 * -2 for an error (tlsio_read). */
static ssize_t
half_read(struct tunnel_half *h, void *buf, size_t room)
{
	bool wants_write = false;
	ssize_t n = tlsio_read(h->ssl, h->fd, buf, room, &wants_write);

	if (wants_write) {
		h->read_wants_write = true;
		half_wait_writable(h);
	}
	return n;
}

/* Read from <h> straight into its partner's queue, then write it out. */
static void
half_read_some(struct tunnel_half *h)
{
	struct tunnel *t = h->t;
	struct tunnel_half *p = partner(h);
	size_t total = 0;

	for (int rounds = 0; rounds < TUNNEL_READ_ROUNDS; rounds++) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_reserve_space(p->out, TUNNEL_READ_CHUNK, &v, 1) < 1) {
			tunnel_finish(t, TUNNEL_ERROR, h->side);
			return;
		}
		/* The chain may offer more room than asked for. */
		n = half_read(h, v.iov_base,
			      v.iov_len < TUNNEL_READ_CHUNK ? v.iov_len : TUNNEL_READ_CHUNK);
		if (n > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(p->out, &v, 1);
			total += (size_t)n;
			if (evbuffer_get_length(p->out) >= t->high_water) {
				h->read_paused = true; /* resumed by half_flush(p) */
				event_del(h->rev);
				break;
			}
			/* Short read: the kernel had no more (and OpenSSL holds
			 * none read ahead, which epoll cannot see). */
			if ((size_t)n < TUNNEL_READ_CHUNK && (h->ssl == NULL || !SSL_has_pending(h->ssl)))
				break;
			continue;
		}
		evbuffer_commit_space(p->out, &v, 0);
		if (n == -1)
			break;
		if (n == -2) {
			tunnel_finish(t, TUNNEL_ERROR, h->side);
			return;
		}
		h->eof = true;
		event_del(h->rev);
		break;
	}
	if (total > 0) {
		h->nread += total;
		event_base_gettimeofday_cached(t->base, &t->last);
		if (t->cb->bytes)
			t->cb->bytes(h->side, total, t->arg);
	}
	half_flush(p); /* passes the EOF on once all is written */
}

static void
half_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel_half *h = arg;
	struct tunnel *t = h->t;

	(void)fd;
	(void)what;
	tunnel_enter(t);
	if (h->write_wants_read) {
		half_flush(h);
		if (!h->write_wants_read && (h->read_paused || h->eof))
			event_del(h->rev);
	}
	if (!t->finished && !h->read_paused && !h->eof)
		half_read_some(h);
	tunnel_leave(t);
}

static void
half_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel_half *h = arg;
	struct tunnel *t = h->t;

	(void)fd;
	(void)what;
	tunnel_enter(t);
	h->write_waiting = false;
	if (h->read_wants_write) {
		h->read_wants_write = false;
		if (!h->read_paused && !h->eof)
			half_read_some(h);
	}
	half_flush(h);
	tunnel_leave(t);
}

static void
tunnel_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	struct timeval now, since, tv;
	double left;

	(void)fd;
	(void)what;
	event_base_gettimeofday_cached(t->base, &now);
	timersub(&now, &t->last, &since);
	left = t->idle_seconds - ((double)since.tv_sec + (double)since.tv_usec / 1e6);
	if (left <= 0) {
		tunnel_enter(t);
		tunnel_finish(t, TUNNEL_IDLE, TUNNEL_A);
		tunnel_leave(t);
		return;
	}
	tv.tv_sec = (time_t)left;
	tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6) + 1000;
	evtimer_add(t->idle, &tv);
}

struct tunnel *
tunnel_new(struct event_base *base, const struct tunnel_end ends[2],
	   const struct tunnel_params *params, const struct tunnel_callbacks *cb, void *arg)
{
	struct tunnel *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		for (int i = 0; i < 2; i++) {
			SSL_free(ends[i].ssl);
			close(ends[i].fd);
		}
		return NULL;
	}
	t->base = base;
	t->cb = cb;
	t->arg = arg;
	t->high_water = params && params->high_water ? params->high_water
						     : TUNNEL_DEFAULT_HIGH_WATER;
	t->idle_seconds = params ? params->idle_seconds : 0;
	for (int i = 0; i < 2; i++) {
		struct tunnel_half *h = &t->half[i];

		h->t = t;
		h->side = (enum tunnel_side)i;
		h->fd = ends[i].fd;
		h->ssl = ends[i].ssl;
	}
	for (int i = 0; i < 2; i++) {
		struct tunnel_half *h = &t->half[i];

		h->out = evbuffer_new();
		h->rev = event_new(base, h->fd, EV_READ | EV_PERSIST, half_read_cb, h);
		h->wev = event_new(base, h->fd, EV_WRITE, half_write_cb, h);
		if (h->out == NULL || h->rev == NULL || h->wev == NULL)
			goto fail;
		if (h->ssl) {
			SSL_set_mode(h->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
						     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
			SSL_set_options(h->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
			SSL_set_read_ahead(h->ssl, 1); /* a record in one read() */
		}
	}
	if (t->idle_seconds > 0) {
		struct timeval tv;

		t->idle = evtimer_new(base, tunnel_idle_cb, t);
		if (t->idle == NULL)
			goto fail;
		tv.tv_sec = (time_t)t->idle_seconds;
		tv.tv_usec = (suseconds_t)((t->idle_seconds - (double)tv.tv_sec) * 1e6);
		evtimer_add(t->idle, &tv);
	}
	event_base_gettimeofday_cached(base, &t->last);
	/* A server-side TLS end finishes its handshake from SSL_read or
	 * SSL_write, whichever comes first. */
	for (int i = 0; i < 2; i++) {
		event_add(t->half[i].rev, NULL);
		/* Records a detached TLS connection had read ahead wake no epoll. */
		if (t->half[i].ssl && SSL_has_pending(t->half[i].ssl))
			event_active(t->half[i].rev, EV_READ, 1);
	}
	return t;
fail:
	tunnel_free(t);
	return NULL;
}

int
tunnel_push(struct tunnel *t, enum tunnel_side from, const void *data, size_t len)
{
	struct tunnel_half *h = &t->half[from];
	struct tunnel_half *p = partner(h);

	if (len == 0)
		return 0;
	if (evbuffer_add(p->out, data, len) < 0)
		return -1;
	h->nread += len;
	if (t->cb->bytes)
		t->cb->bytes(from, len, t->arg);
	/* Written from the loop, so that a failure reports from there. */
	if (!p->write_waiting) {
		p->write_waiting = true;
		event_active(p->wev, EV_WRITE, 1);
	}
	return 0;
}

size_t
tunnel_queued(const struct tunnel *t, enum tunnel_side to)
{
	return evbuffer_get_length(t->half[to].out);
}

uint64_t
tunnel_bytes(const struct tunnel *t, enum tunnel_side from)
{
	return t->half[from].nread;
}

/*
 * tunnel: join two connected byte streams and move bytes both ways until
 * both have ended.  What the TCP relays (tcprelay.c) run once the upstream
 * is connected, and what a WebSocket after a 101 and an HTTP/2 extended
 * CONNECT are to run on later.
 *
 *   - back-pressure: reading one end stops while the other end's output
 *     queue is at or above the high-water mark, and starts again once it
 *     fell under half of it; at most high_water + one read (64 KiB) is
 *     queued per direction;
 *   - half-close: an EOF from one end is passed on to the other once
 *     everything read before it is written (shutdown(SHUT_WR), after a
 *     TLS close_notify on a TLS end), while the other direction goes on
 *     flowing until it ends too;
 *   - an idle timeout: no byte read from either end for that long ends the
 *     tunnel;
 *   - byte counts per end (what was read from it), for the access log and
 *     metrics, also reported as they move;
 *   - one completion callback, with the reason.
 *
 * An end is a connected non-blocking socket, with an SSL object on it when
 * that end speaks TLS (the raw SSL_read / SSL_write I/O model of conn.c; a
 * server-side SSL whose handshake is not finished yet finishes it as the
 * tunnel reads).  Bytes already read from an end before the tunnel started
 * (behind a PROXY header, or past the head of a request answered with 101)
 * are handed over with tunnel_push.
 *
 * It knows nothing of relays, routes, requests or configuration.  A client
 * connection of the HTTP server (conn.h) becomes an end with
 * server_conn_detach: its socket, its SSL object, and the bytes read past
 * what it consumed (to tunnel_push).  TCP relays do that once the upstream
 * is connected; an HTTP/1 connection is to do it once its 101 is written.
 *
 * Everything runs on the event loop of <base>; the completion callback is
 * called from an event callback, never from inside a tunnel_* call.
 */
#ifndef PORTCULLIS_TUNNEL_H
#define PORTCULLIS_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct ssl_st;
struct tunnel;

/* The two ends; the names say nothing about who connected whom. */
enum tunnel_side {
	TUNNEL_A = 0,
	TUNNEL_B = 1,
};

/* Why a tunnel ended. */
enum tunnel_reason {
	TUNNEL_CLOSED,  /* both ends sent EOF, and both EOFs were passed on */
	TUNNEL_IDLE,    /* nothing read from either end for the idle time */
	TUNNEL_ERROR,   /* reading from or writing to one end failed (reset,
			 * TLS error): <side> says which */
};

struct tunnel_end {
	int fd;             /* connected, non-blocking; taken over */
	struct ssl_st *ssl; /* on <fd>, or NULL for plain bytes; taken over */
};

struct tunnel_params {
	size_t high_water;   /* output bytes queued towards an end before its
			      * partner stops being read; 0: 512 KiB */
	double idle_seconds; /* 0: no idle timeout */
};

struct tunnel_callbacks {
	/* The tunnel ended: both ends are closed and the tunnel is freed
	 * when this returns (do not call tunnel_free on it; log here, the
	 * peers see the close after).  <side> is the end that failed for
	 * TUNNEL_ERROR. */
	void (*done)(struct tunnel *t, enum tunnel_reason why, enum tunnel_side side,
		     void *arg);
	/* <n> bytes were read from <from> (may be NULL). */
	void (*bytes)(enum tunnel_side from, size_t n, void *arg);
};

/*
 * Join <ends>[TUNNEL_A] and <ends>[TUNNEL_B] (both taken over, even on
 * failure, when they are closed) and start moving bytes from the event
 * loop.  <cb> must live as long as the tunnel.  NULL when out of memory.
 */
struct tunnel *tunnel_new(struct event_base *base, const struct tunnel_end ends[2],
			  const struct tunnel_params *params, const struct tunnel_callbacks *cb,
			  void *arg);

/* Bytes that were read from <from> before the tunnel started: they go out
 * to the other end first, and count as read from <from>.  Call right after
 * tunnel_new.  Returns 0, or -1 when out of memory. */
int tunnel_push(struct tunnel *t, enum tunnel_side from, const void *data, size_t len);

/* Bytes read from <from> so far. */
uint64_t tunnel_bytes(const struct tunnel *t, enum tunnel_side from);

/* Bytes queued to be written to <to>. */
size_t tunnel_queued(const struct tunnel *t, enum tunnel_side to);

/* Close both ends at once and free, without calling the completion
 * callback (the owner goes away: listener freed, worker stopped).  Must
 * not be called from the completion callback.  Accepts NULL. */
void tunnel_free(struct tunnel *t);

#endif

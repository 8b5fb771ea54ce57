/*
 * socket_client: the client end of a socketpair whose other end a server on
 * the harness' event loop adopts (fuzz_h1, fuzz_h2).  The client writes what
 * the input says, runs the loop until the server is quiet, and keeps the
 * first bytes the server sends for the harness to check.
 */
#ifndef PORTCULLIS_FUZZ_SOCKET_CLIENT_H
#define PORTCULLIS_FUZZ_SOCKET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct server;

struct socket_client {
	struct event_base *base;
	int fd;
	uint8_t head[9]; /* the first bytes received */
	size_t got;
};

/* Connect <c> to <srv> (served on <base>) from 127.0.0.1:40000: <srv> adopts
 * one end of a new socketpair, <c> keeps the other, non-blocking.  Aborts
 * when that fails. */
void socket_client_open(struct socket_client *c, struct event_base *base, struct server *srv);

/* Write <data>, running the loop while the socket is full; gives up when
 * the server has closed (the rest is not read). */
void socket_client_send(struct socket_client *c, const uint8_t *data, size_t len);

/* Run the loop until nothing arrives for a few turns (at most <turns>). */
void socket_client_pump(struct socket_client *c, int turns);

/* <data> in two writes, cut at <cut> (<= size), the loop run after each
 * until the server is quiet; then a half-close and the loop run again. */
void socket_client_feed(struct socket_client *c, const uint8_t *data, size_t size, size_t cut);

/* Close <c> and run the loop until <srv> has let go of every connection;
 * aborts when it has not within 64 turns. */
void socket_client_close(struct socket_client *c, struct server *srv);

#endif

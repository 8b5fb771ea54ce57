/*
 * tcprelay: raw TCP relay listeners ("type": "tcp").  For what is not plain
 * HTTP/1.1: gRPC (HTTP/2), WebSocket consoles, uploads of any size.
 *
 * Each worker accepts on its duplicate of the listening socket; for every
 * connection: read the PROXY protocol header when the listener expects one
 * (only from trusted proxies), check the client address against the
 * listener's allow/deny rules and connection limits, connect to the
 * upstream (servers tried in turn), then hand both sockets to a tunnel
 * (http/tunnel.h), which copies bytes both ways with back-pressure (at most
 * TCPRELAY_MAX_BUFFERED bytes queued per direction), passes half-closes on
 * and applies the listener's idle timeout; TLS, when the listener
 * terminates it, is the tunnel's client end (raw SSL_read/SSL_write, the
 * HTTP server's I/O model).  A refused connection is closed at once, logged
 * and counted.  This file is the relay's policy only: limits, access,
 * upstream choice and failover, logging and metrics.
 *
 * The connection limits are process-wide: a struct tcprelay_shared per relay
 * listener, made by main before the workers and shared by them.
 */
#ifndef PORTCULLIS_TCPRELAY_H
#define PORTCULLIS_TCPRELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config_model.h"

#define TCPRELAY_MAX_BUFFERED (512 * 1024)

struct txn_env;
struct tcprelay;
struct tcprelay_shared;

/* Counters and per-client connection counts of relay listener <l>, for every
 * worker.  NULL when out of memory. */
struct tcprelay_shared *tcprelay_shared_new(const struct config_listener *l);

/* Free.  Accepts NULL.  Only after every worker is gone. */
void tcprelay_shared_free(struct tcprelay_shared *sh);

/*
 * Start relaying connections accepted on the listening socket <fd> (taken
 * over: closed by tcprelay_free) for listener number <index>, on the loop
 * of <env> (generation.h: the worker's loop, resolver and generation; each
 * connection is a transaction of <env> from accept to close).
 * <tls> (may be NULL): terminate TLS on the client side with this context
 * (the HTTPS certificate store's).  NULL with a reason in <err>.
 */
struct ssl_ctx_st;
struct tcprelay *tcprelay_new(struct txn_env *env, size_t index, int fd, struct tcprelay_shared *sh,
			      struct ssl_ctx_st *tls, char *err, size_t errlen);

/* Stop accepting (drain); open connections go on. */
void tcprelay_stop_accepting(struct tcprelay *r);

/* Close every connection and the listening socket, and free.  Accepts NULL. */
void tcprelay_free(struct tcprelay *r);

#endif

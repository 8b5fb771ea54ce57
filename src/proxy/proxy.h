/*
 * proxy: one transaction, from the request the HTTP server (http/request.h)
 * hands a worker to the last byte of the response: validate, route, forward,
 * stream back, log once.
 *
 * Every transaction ends in exactly one place (txn_finish in proxy.c): the
 * reply is handed to the server or the client is gone, the access log line is written, the
 * metrics are counted and every resource is released.
 */
#ifndef PORTCULLIS_PROXY_H
#define PORTCULLIS_PROXY_H

#include "http/request.h"

/* The server callbacks of a proxying listener; their <arg> is the listener's
 * struct txn_listener (generation.h). */
extern const struct server_handler proxy_handler;

/* Free the calling thread's spare transaction memory (kept from one
 * transaction to the next); a worker thread calls it when its loop ends. */
void proxy_release_spares(void);

#endif

/*
 * proxy: one transaction, from the request evhttp hands a worker to the last
 * byte of the response: validate, route, forward, stream back, log once.
 *
 * Every transaction ends in exactly one place (txn_finish in proxy.c): the
 * reply is sent or the client is gone, the access log line is written, the
 * metrics are counted and every resource is released.
 */
#ifndef PORTCULLIS_PROXY_H
#define PORTCULLIS_PROXY_H

struct evhttp_request;

/* evhttp's request callback; <arg> is the struct worker_listener. */
void proxy_request_cb(struct evhttp_request *req, void *arg);

#endif

/*
 * metrics: process-wide counters for the Prometheus /metrics page.  Counters
 * are C11 atomics updated from every worker thread with relaxed ordering; the
 * admin listener renders them.  Per-route counters are kept by route name, so
 * they survive a configuration reload.  No libevent.
 */
#ifndef PORTCULLIS_METRICS_H
#define PORTCULLIS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct metrics_route;

/* Requests of one route by status code (100..599; others count as 0). */
struct metrics_route *metrics_route_get(const char *name);

/* Count one finished request: its route (NULL for requests that matched
 * none), status code and total duration in seconds. */
void metrics_count_request(struct metrics_route *route, int status, double seconds);

/* Gauges and counters without labels. */
enum metrics_gauge {
	METRIC_IN_FLIGHT,            /* requests being handled */
	METRIC_BODY_MEMORY,          /* request body bytes held */
	METRIC_CLIENT_CONNECTIONS,   /* client connections open */
	METRIC_TLS_HANDSHAKE_FAILURES,
	METRIC_RELOADS_OK,
	METRIC_RELOADS_ERROR,
	METRIC_UPSTREAM_FAILURES,    /* failed upstream attempts */
	METRIC_UPSTREAM_RETRIES,     /* requests retried on another connection or server */
	METRIC_REQUESTS_HTTP10,      /* requests finished, by the protocol they came in */
	METRIC_REQUESTS_HTTP11,
	METRIC_REQUESTS_HTTP2,
	METRIC_H2_ABUSE_CLOSES,      /* HTTP/2 connections ended with ENHANCE_YOUR_CALM */
	METRIC_GAUGE_COUNT,
};

/* Add <delta> (may be negative) to a gauge or counter. */
void metrics_add(enum metrics_gauge which, int64_t delta);

/* Current value. */
int64_t metrics_get(enum metrics_gauge which);

/*
 * Add <value> bytes to the body memory gauge if the result stays within
 * <budget>.  Returns 0 on success, -1 (nothing added) when over budget.
 */
int metrics_body_reserve(uint64_t value, uint64_t budget);

/* Render every metric in Prometheus text format (0.0.4) into a new string the
 * caller frees; <extra> (may be NULL) is appended as is (upstream state,
 * rendered by the caller that knows the live configuration). */
char *metrics_render(const char *extra);

/* Free the route registry (at exit). */
void metrics_shutdown(void);

#endif

/* metrics: see metrics.h. */
#include "base/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define CODES 600

struct metrics_route {
	struct metrics_route *next;
	_Atomic uint64_t codes[CODES];
	char name[128];
};

/* Latency histogram buckets (seconds), like Prometheus' client defaults. */
static const double bucket_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				       0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

static pthread_mutex_t routes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_route *routes;
static struct metrics_route unrouted;
static _Atomic uint64_t buckets[NBUCKETS + 1];
static _Atomic uint64_t duration_sum_us;
static _Atomic uint64_t duration_count;
static _Atomic int64_t gauges[METRIC_GAUGE_COUNT];

struct metrics_route *
metrics_route_get(const char *name)
{
	struct metrics_route *r;

	pthread_mutex_lock(&routes_lock);
	for (r = routes; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			goto out;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		goto out;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->next = routes;
	routes = r;
out:
	pthread_mutex_unlock(&routes_lock);
	return r;
}

void
metrics_count_request(struct metrics_route *route, int status, double seconds)
{
	size_t b = 0;

	if (route == NULL)
		route = &unrouted;
	if (status < 0 || status >= CODES)
		status = 0;
	atomic_fetch_add_explicit(&route->codes[status], 1, memory_order_relaxed);
	while (b < NBUCKETS && seconds > bucket_bounds[b])
		b++;
	atomic_fetch_add_explicit(&buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&duration_sum_us, (uint64_t)(seconds * 1e6),
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&duration_count, 1, memory_order_relaxed);
}

void
metrics_add(enum metrics_gauge which, int64_t delta)
{
	atomic_fetch_add_explicit(&gauges[which], delta, memory_order_relaxed);
}

int64_t
metrics_get(enum metrics_gauge which)
{
	return atomic_load_explicit(&gauges[which], memory_order_relaxed);
}

int
metrics_body_reserve(uint64_t value, uint64_t budget)
{
	int64_t cur = atomic_load_explicit(&gauges[METRIC_BODY_MEMORY], memory_order_relaxed);

	do {
		if ((uint64_t)cur + value > budget)
			return -1;
	} while (!atomic_compare_exchange_weak_explicit(&gauges[METRIC_BODY_MEMORY], &cur,
							cur + (int64_t)value,
							memory_order_relaxed,
							memory_order_relaxed));
	return 0;
}

/* A growable string for rendering. */
struct sbuf {
	char *data;
	size_t len, cap;
	int failed;
};

static void __attribute__((format(printf, 2, 3)))
sbuf_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = sb->cap - sb->len;

		va_start(ap, fmt);
		n = vsnprintf(sb->data ? sb->data + sb->len : NULL, sb->data ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			sb->failed = 1;
			return;
		}
		if (sb->data && (size_t)n < room) {
			sb->len += (size_t)n;
			return;
		}
		size_t ncap = (sb->cap ? sb->cap * 2 : 4096) + (size_t)n;
		char *p = realloc(sb->data, ncap);

		if (p == NULL) {
			sb->failed = 1;
			return;
		}
		sb->data = p;
		sb->cap = ncap;
	}
}

static void
render_route(struct sbuf *sb, const struct metrics_route *r, const char *label)
{
	char name[512];

	log_json_escape(name, sizeof(name), label);
	for (int code = 0; code < CODES; code++) {
		uint64_t n = atomic_load_explicit(&r->codes[code], memory_order_relaxed);

		if (n)
			sbuf_printf(sb, "portcullis_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
				    name, code, (unsigned long long)n);
	}
}

char *
metrics_render(const char *extra)
{
	struct sbuf sb = {0};
	uint64_t cumulative = 0;

	sbuf_printf(&sb, "# HELP portcullis_requests_total Requests answered, by route and status code.\n"
			 "# TYPE portcullis_requests_total counter\n");
	pthread_mutex_lock(&routes_lock);
	for (const struct metrics_route *r = routes; r; r = r->next)
		render_route(&sb, r, r->name);
	pthread_mutex_unlock(&routes_lock);
	render_route(&sb, &unrouted, "");

	sbuf_printf(&sb, "# HELP portcullis_request_duration_seconds Time from request to the end of the response.\n"
			 "# TYPE portcullis_request_duration_seconds histogram\n");
	for (size_t b = 0; b < NBUCKETS; b++) {
		cumulative += atomic_load_explicit(&buckets[b], memory_order_relaxed);
		sbuf_printf(&sb, "portcullis_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			    bucket_bounds[b], (unsigned long long)cumulative);
	}
	cumulative += atomic_load_explicit(&buckets[NBUCKETS], memory_order_relaxed);
	sbuf_printf(&sb, "portcullis_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		    (unsigned long long)cumulative);
	sbuf_printf(&sb, "portcullis_request_duration_seconds_sum %.6f\n",
		    (double)atomic_load(&duration_sum_us) / 1e6);
	sbuf_printf(&sb, "portcullis_request_duration_seconds_count %llu\n",
		    (unsigned long long)atomic_load(&duration_count));

	sbuf_printf(&sb,
		    "# HELP portcullis_requests_in_flight Requests being handled.\n"
		    "# TYPE portcullis_requests_in_flight gauge\n"
		    "portcullis_requests_in_flight %lld\n"
		    "# HELP portcullis_body_memory_bytes Request body bytes held in memory.\n"
		    "# TYPE portcullis_body_memory_bytes gauge\n"
		    "portcullis_body_memory_bytes %lld\n"
		    "# HELP portcullis_client_connections_open Client connections open.\n"
		    "# TYPE portcullis_client_connections_open gauge\n"
		    "portcullis_client_connections_open %lld\n"
		    "# HELP portcullis_tls_handshake_failures_total TLS handshakes that failed.\n"
		    "# TYPE portcullis_tls_handshake_failures_total counter\n"
		    "portcullis_tls_handshake_failures_total %lld\n"
		    "# HELP portcullis_config_reloads_total Configuration reloads by result.\n"
		    "# TYPE portcullis_config_reloads_total counter\n"
		    "portcullis_config_reloads_total{result=\"ok\"} %lld\n"
		    "portcullis_config_reloads_total{result=\"error\"} %lld\n"
		    "# HELP portcullis_upstream_failures_total Failed attempts to reach an upstream.\n"
		    "# TYPE portcullis_upstream_failures_total counter\n"
		    "portcullis_upstream_failures_total %lld\n"
		    "# HELP portcullis_upstream_retries_total Requests retried on another connection or server.\n"
		    "# TYPE portcullis_upstream_retries_total counter\n"
		    "portcullis_upstream_retries_total %lld\n",
		    (long long)metrics_get(METRIC_IN_FLIGHT), (long long)metrics_get(METRIC_BODY_MEMORY),
		    (long long)metrics_get(METRIC_CLIENT_CONNECTIONS),
		    (long long)metrics_get(METRIC_TLS_HANDSHAKE_FAILURES),
		    (long long)metrics_get(METRIC_RELOADS_OK), (long long)metrics_get(METRIC_RELOADS_ERROR),
		    (long long)metrics_get(METRIC_UPSTREAM_FAILURES),
		    (long long)metrics_get(METRIC_UPSTREAM_RETRIES));
	sbuf_printf(&sb,
		    "# HELP portcullis_requests_by_protocol_total Requests finished, by the protocol they came in.\n"
		    "# TYPE portcullis_requests_by_protocol_total counter\n"
		    "portcullis_requests_by_protocol_total{protocol=\"HTTP/1.0\"} %lld\n"
		    "portcullis_requests_by_protocol_total{protocol=\"HTTP/1.1\"} %lld\n"
		    "portcullis_requests_by_protocol_total{protocol=\"HTTP/2.0\"} %lld\n"
		    "# HELP portcullis_http2_abuse_closes_total HTTP/2 connections ended with GOAWAY ENHANCE_YOUR_CALM.\n"
		    "# TYPE portcullis_http2_abuse_closes_total counter\n"
		    "portcullis_http2_abuse_closes_total %lld\n",
		    (long long)metrics_get(METRIC_REQUESTS_HTTP10),
		    (long long)metrics_get(METRIC_REQUESTS_HTTP11),
		    (long long)metrics_get(METRIC_REQUESTS_HTTP2),
		    (long long)metrics_get(METRIC_H2_ABUSE_CLOSES));
	if (extra)
		sbuf_printf(&sb, "%s", extra);
	if (sb.failed) {
		free(sb.data);
		return NULL;
	}
	return sb.data;
}

void
metrics_shutdown(void)
{
	struct metrics_route *r, *next;

	pthread_mutex_lock(&routes_lock);
	for (r = routes; r; r = next) {
		next = r->next;
		free(r);
	}
	routes = NULL;
	pthread_mutex_unlock(&routes_lock);
}

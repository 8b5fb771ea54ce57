/*
 * openloop: an open-loop HTTP/1.1 load generator for latency percentiles.
 *
 * Closed-loop generators (wrk) send the next request only when an answer
 * came back, so a stall delays the requests that should have been sent
 * meanwhile and their waiting is never measured (coordinated omission).
 * Here request k is due at start + k / rate whatever happened before; it
 * goes out on the first free keep-alive connection, and its latency runs
 * from when it was due to when the last byte of its answer arrived.  When
 * every connection is busy, due requests wait in a queue and that waiting
 * counts.
 *
 *   openloop -p PORT -r RATE -d SECONDS [-w WARMUP] [-c CONNS] [-P PATH] [-H HOST]
 *
 * Prints one line: due, done, errors, achieved rate, p50, p90, p99, p99.9,
 * max (microseconds).  Answers must carry Content-Length (the benchmark's
 * upstream sets it and proxies keep it).  Loopback only (127.0.0.1).
 * Built by bench/latency.sh with the system's cc; no dependency.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define BUF_CAP 65536

struct conn {
	int fd;
	int busy;              /* a request is out */
	uint64_t due_ns;       /* when the request out was due */
	int recording;         /* it counts (sent after warm-up) */
	char buf[BUF_CAP];
	size_t len;            /* bytes of the answer's head kept in buf */
	int head_done;
	int status;            /* of the answer coming in */
	long long body_left;   /* body bytes still to come */
};

static struct conn *conns;
static int nconns, port, epfd;
static char request[1024];
static size_t request_len;
static uint64_t *lat;     /* recorded latencies, ns */
static size_t nlat, lat_cap;
static uint64_t errors, done_total;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static void
conn_open(struct conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket");
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl");
	c->busy = 0;
	c->len = 0;
	c->head_done = 0;
}

/* The connection failed or closed: count its request as an error, reopen.
 * Returns whether a request was out on it (it was not in the free list). */
static int
conn_reset(struct conn *c)
{
	int was_busy = c->busy;

	if (c->busy && c->recording) {
		errors++;
		done_total++;
	}
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	conn_open(c);
	return was_busy;
}

static void
record(uint64_t ns)
{
	if (nlat == lat_cap) {
		lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
		lat = realloc(lat, lat_cap * sizeof(*lat));
		if (lat == NULL)
			die("realloc");
	}
	lat[nlat++] = ns;
}

static void
finish(struct conn *c, int status)
{
	if (c->recording) {
		if (status >= 200 && status < 400)
			record(now_ns() - c->due_ns);
		else
			errors++;
		done_total++;
	}
	c->busy = 0;
	c->len = 0;
	c->head_done = 0;
}

/* Parse what came in; returns -1 on a broken answer. */
static int
conn_input(struct conn *c, const char *data, size_t n)
{
	while (n > 0) {
		if (!c->busy)
			return -1; /* bytes nobody asked for */
		if (!c->head_done) {
			size_t take = n < BUF_CAP - c->len ? n : BUF_CAP - c->len;
			char *end;

			if (take == 0)
				return -1;
			memcpy(c->buf + c->len, data, take);
			c->len += take;
			c->buf[c->len < BUF_CAP ? c->len : BUF_CAP - 1] = '\0';
			end = memmem(c->buf, c->len, "\r\n\r\n", 4);
			if (end == NULL) {
				data += take;
				n -= take;
				continue;
			}
			size_t head_len = (size_t)(end - c->buf) + 4;
			size_t extra = c->len - head_len;
			int status = atoi(c->buf + 9);
			char *cl = NULL;

			*end = '\0';
			for (char *p = strstr(c->buf, "\r\n"); p; p = strstr(p + 2, "\r\n"))
				if (strncasecmp(p + 2, "content-length:", 15) == 0)
					cl = p + 17;
			if (cl == NULL)
				return -1;
			c->head_done = 1;
			c->status = status;
			c->body_left = atoll(cl) - (long long)extra;
			/* the bytes of <data> past what was copied are body too */
			data += take;
			n -= take;
			if (c->body_left <= 0) {
				if (c->body_left < 0)
					return -1;
				finish(c, status);
				continue;
			}
			continue;
		}
		size_t take = (long long)n < c->body_left ? n : (size_t)c->body_left;

		c->body_left -= (long long)take;
		data += take;
		n -= take;
		if (c->body_left == 0)
			finish(c, c->status);
	}
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t i;

	if (nlat == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(nlat - 1) + 0.5);
	return (double)lat[i] / 1000.0;
}

int
main(int argc, char **argv)
{
	double rate = 1000, seconds = 10, warmup = 2;
	const char *path = "/", *host = "bench";
	int opt, tfd, free_top = 0;
	int *free_list;
	uint64_t start, end_ns, warm_ns, interval, next_due, due_count = 0, queued = 0;
	struct epoll_event evs[256], tev = {.events = EPOLLIN, .data.ptr = NULL};
	static char rbuf[262144];

	nconns = 64;
	while ((opt = getopt(argc, argv, "p:r:d:w:c:P:H:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'd': seconds = atof(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'c': nconns = atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'H': host = optarg; break;
		default:
			fprintf(stderr, "usage: openloop -p PORT -r RATE -d SECONDS [-w WARMUP] "
					"[-c CONNS] [-P PATH] [-H HOST]\n");
			return 2;
		}
	}
	if (port <= 0 || rate <= 0 || seconds <= 0 || nconns <= 0 || nconns > MAX_CONNS) {
		fprintf(stderr, "openloop: bad arguments (port, rate, seconds, 1..%d conns)\n", MAX_CONNS);
		return 2;
	}
	request_len = (size_t)snprintf(request, sizeof request,
				       "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: openloop\r\n\r\n",
				       path, host);
	epfd = epoll_create1(0);
	if (epfd < 0)
		die("epoll_create1");
	conns = calloc((size_t)nconns, sizeof(*conns));
	free_list = calloc((size_t)nconns, sizeof(*free_list));
	if (conns == NULL || free_list == NULL)
		die("calloc");
	for (int i = 0; i < nconns; i++) {
		conn_open(&conns[i]);
		free_list[free_top++] = i;
	}
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	if (tfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) < 0)
		die("timerfd");

	interval = (uint64_t)(1e9 / rate);
	start = now_ns() + 10000000u; /* 10 ms from now */
	warm_ns = start + (uint64_t)(warmup * 1e9);
	end_ns = warm_ns + (uint64_t)(seconds * 1e9);
	next_due = start;
	for (;;) {
		uint64_t now = now_ns();
		struct itimerspec its = {0};
		int n;

		/* Every request due by now joins the queue; send what can go. */
		while (next_due <= now && next_due < end_ns) {
			queued++;
			next_due = start + ++due_count * interval;
		}
		while (queued > 0 && free_top > 0) {
			struct conn *c = &conns[free_list[--free_top]];
			/* the oldest waiting request was due at this time: */
			uint64_t due = start + (due_count - queued) * interval;

			queued--;
			c->busy = 1;
			c->due_ns = due;
			c->recording = due >= warm_ns;
			if (write(c->fd, request, request_len) != (ssize_t)request_len) {
				conn_reset(c);
				free_list[free_top++] = (int)(c - conns);
			}
		}
		if (next_due >= end_ns && queued == 0 && free_top == nconns)
			break;
		if (now > end_ns + 5000000000u) {
			errors += (uint64_t)(nconns - free_top) + queued; /* never answered */
			break;
		}
		its.it_value.tv_sec = (time_t)(next_due / 1000000000u);
		its.it_value.tv_nsec = (long)(next_due % 1000000000u);
		if (next_due < end_ns)
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
		n = epoll_wait(epfd, evs, 256, next_due < end_ns ? -1 : 100);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int busy_before;
			ssize_t r;

			if (c == NULL) {
				uint64_t x;

				if (read(tfd, &x, sizeof x) < 0 && errno != EAGAIN)
					die("timerfd read");
				continue;
			}
			busy_before = c->busy;
			r = read(c->fd, rbuf, sizeof rbuf);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0 || conn_input(c, rbuf, (size_t)r) < 0) {
				if (conn_reset(c))
					free_list[free_top++] = (int)(c - conns);
				continue;
			}
			if (busy_before && !c->busy)
				free_list[free_top++] = (int)(c - conns);
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("due %llu done %llu errors %llu rate %.1f p50_us %.0f p90_us %.0f p99_us %.0f "
	       "p999_us %.0f max_us %.0f\n",
	       (unsigned long long)(due_count - (uint64_t)((warm_ns - start) / interval)),
	       (unsigned long long)done_total, (unsigned long long)errors,
	       (double)nlat / seconds, pct(50), pct(90), pct(99), pct(99.9),
	       nlat ? (double)lat[nlat - 1] / 1000.0 : 0.0);
	return 0;
}

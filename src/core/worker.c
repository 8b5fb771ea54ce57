/* worker: one event loop thread; see worker.h. */
#include "core/worker.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timeutil.h"
#include "config/config_model.h"
#include "core/generation.h"
#include "core/runtime.h"
#include "http/conn.h"
#include "http/h1.h"
#include "http/h2.h"
#include "http/inbuf.h"
#include "proxy/proxy.h"
#include "proxy/listenlimit.h"
#include "proxy/tcprelay.h"
#include "proxy/upstream.h"
#include "proxy/websocket.h"
#include "tls/tls.h"

/* One listener as seen by one worker. */
struct worker_listener {
	struct txn_listener txn; /* what its transactions see: the callbacks' argument */
	struct server *server;   /* NULL on a raw TCP relay listener */
	struct tcprelay *relay;  /* "type": "tcp" listeners, else NULL */
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct evdns_base *dns;
	struct worker_listener *listeners;
	size_t nlisteners;
	struct txn_env env;      /* current generation, in-flight count, request ids, ports */
	bool draining;
	atomic_bool exited;      /* set when the loop has ended (read by main) */

	/* Main → worker messages. */
	pthread_mutex_t lock;
	struct runtime *pending; /* a new generation to take */
	bool drain_requested;
	int wake_fd;             /* eventfd: the main thread writes, the worker's loop reads */
	struct event *wake;
	struct event *drain_timer;
	struct event *drain_poll;
};

/* The protocols HTTP listener <i> speaks: HTTP/1.x, plus HTTP/2 by ALPN on
 * TLS ("http2") or with prior knowledge on plain HTTP ("h2c"). */
static const struct conn_codec *const *
listener_codecs(const struct config *cfg, size_t i)
{
	const struct config_listener *l = i < cfg->nlisteners ? &cfg->listeners[i] : NULL;

	if (l && l->tls && l->http2)
		return h2_tls_codecs;
	if (l && !l->tls && l->h2c)
		return h2c_codecs;
	return h1_codecs;
}

static void
apply_limits(struct worker *w, const struct config *cfg)
{
	struct server_limits limits;

	limits.max_header_bytes = cfg->max_request_header_bytes;
	limits.client = timeval_from_seconds(cfg->client_timeout);
	for (size_t i = 0; i < w->nlisteners; i++) {
		struct worker_listener *wl = &w->listeners[i];

		if (wl->server == NULL)
			continue;
		server_set_limits(wl->server, &limits);
		/* Listener addresses are fixed until a restart; their PROXY
		 * setting follows the configuration that has them. */
		if (wl->txn.index < cfg->nlisteners)
			server_set_proxy_protocol(wl->server, cfg->listeners[wl->txn.index].proxy_protocol,
						  cfg->trusted);
		/* New connections take the new client-certificate policies;
		 * open ones keep those they were verified under. */
		server_set_client_auth(wl->server, wl->txn.index < cfg->nlisteners
							   ? cfg->listeners[wl->txn.index].client_auth
							   : NULL);
	}
}

/* An event base whose epoll changes are folded per loop turn (at most one
 * epoll_ctl per descriptor): system calls dominate a proxy's cost.  It has
 * no lock: only its worker's thread touches it (the main thread wakes the
 * worker through wake_fd, never with libevent calls), and the base lock
 * cost about 15 lock/unlock pairs per proxied request. */
static struct event_base *
new_event_base(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (ec == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	/* One priority, so that one epoll_wait serves a whole batch: with a
	 * second one for client writes, libevent ended its pass after each
	 * priority's callbacks and polled again (2.3 epoll_waits and one
	 * context switch per request at 256 connections, against nginx's 0.03
	 * and 0.6).  A complete answer is written at once anyway
	 * (conn_send_now). */
	return base;
}

/* Make <rt> the current generation of <w>. */
static int
worker_use(struct worker *w, struct runtime *rt)
{
	struct worker_gen *g = gen_new(w->base, w->dns, w->id, rt);

	if (g == NULL)
		return -1;
	if (w->env.gen)
		worker_gen_unref(w->env.gen); /* freed when its last transaction ends */
	w->env.gen = g;
	apply_limits(w, rt->cfg);
	websocket_reload(&w->env); /* open tunnels: checked against the new rules */
	return 0;
}

static size_t
open_connections(const struct worker *w)
{
	size_t n = 0;

	for (size_t i = 0; i < w->nlisteners; i++)
		if (w->listeners[i].server)
			n += server_connections(w->listeners[i].server);
	return n;
}

/* Leave the loop once draining and nothing is left: no transaction, no
 * connection (so every reply has been written out). */
static void
maybe_exit(struct worker *w)
{
	if (w->draining && w->env.in_flight == 0 && open_connections(w) == 0 &&
	    websocket_count(&w->env) == 0)
		event_base_loopexit(w->base, NULL);
}

static void
drain_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	maybe_exit(arg);
}

static void
drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	log_warn("worker %u: drain timeout reached with %d request%s still running; closing them",
		 w->id, w->env.in_flight, w->env.in_flight == 1 ? "" : "s");
	websocket_close_all(&w->env, "the drain timeout was reached");
	event_base_loopexit(w->base, NULL);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct runtime *rt;
	bool drain;
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: woken twice for one write; the messages below are read anyway */
	}
	pthread_mutex_lock(&w->lock);
	rt = w->pending;
	w->pending = NULL;
	drain = w->drain_requested;
	pthread_mutex_unlock(&w->lock);

	if (rt) {
		if (worker_use(w, rt) < 0)
			log_error("worker %u: out of memory taking the new configuration; keeping the old one",
				  w->id);
		runtime_unref(rt);
	}
	if (drain && !w->draining) {
		struct timeval tv = timeval_from_seconds(w->env.gen->rt->cfg->drain_timeout);

		w->draining = true;
		for (size_t i = 0; i < w->nlisteners; i++) {
			if (w->listeners[i].server)
				server_drain(w->listeners[i].server);
			tcprelay_stop_accepting(w->listeners[i].relay);
		}
		w->drain_timer = evtimer_new(w->base, drain_deadline_cb, w);
		if (w->drain_timer)
			evtimer_add(w->drain_timer, &tv);
		/* Connections close on their own (after their last reply); a
		 * short poll notices when none is left. */
		w->drain_poll = event_new(w->base, -1, EV_PERSIST, drain_poll_cb, w);
		if (w->drain_poll)
			event_add(w->drain_poll, &(struct timeval){0, 20000});
		maybe_exit(w);
	}
}

/* txn_env's ended_cb: a transaction ended (drain bookkeeping). */
static void
transaction_ended_cb(void *arg)
{
	maybe_exit(arg);
}

struct worker *
worker_new(unsigned id, struct runtime *rt, const int *fds, const int *ports, size_t nfds,
	   struct tcprelay_shared *const *relays, struct server_share *const *shares,
	   struct tls_store *tls, char *err, size_t errlen)
{
	struct worker *w = calloc(1, sizeof(*w));
	const struct config *cfg = rt->cfg;

	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->id = id;
	w->wake_fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	if (getrandom(w->env.rng, sizeof(w->env.rng), 0) != sizeof(w->env.rng) ||
	    (w->env.rng[0] | w->env.rng[1]) == 0) {
		w->env.rng[0] = 0x9E3779B97F4A7C15ull ^ (uint64_t)id;
		w->env.rng[1] = 0xD1B54A32D192ED03ull;
	}
	w->env.ended_cb = transaction_ended_cb;
	w->env.ended_arg = w;
	w->base = new_event_base();
	if (w->base == NULL) {
		snprintf(err, errlen, "event_base_new failed");
		goto fail;
	}
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (w->dns == NULL) {
		/* No resolv.conf: names in /etc/hosts and numeric addresses still work. */
		w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (w->dns)
			evdns_base_load_hosts(w->dns, NULL);
	}
	if (w->dns == NULL) {
		snprintf(err, errlen, "evdns_base_new failed");
		goto fail;
	}
	w->env.base = w->base;
	w->env.dns = w->dns;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		snprintf(err, errlen, "eventfd failed");
		goto fail;
	}
	w->wake = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, wake_cb, w);
	if (w->wake != NULL && event_add(w->wake, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the wake-up descriptor");
		goto fail;
	}
	w->listeners = calloc(nfds ? nfds : 1, sizeof(*w->listeners));
	w->env.ports = calloc(nfds ? nfds : 1, sizeof(*w->env.ports));
	w->env.nports = nfds;
	if (w->wake == NULL || w->listeners == NULL || w->env.ports == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nfds; i++) {
		struct worker_listener *wl = &w->listeners[i];

		wl->txn.env = &w->env;
		wl->txn.index = i;
		snprintf(w->env.ports[i], sizeof(w->env.ports[i]), "%d", ports[i]);
		wl->txn.port = w->env.ports[i];
		if (i < cfg->nlisteners && cfg->listeners[i].type == LISTENER_TCP) {
			if (relays == NULL || relays[i] == NULL) {
				snprintf(err, errlen, "listener %s: no relay state", cfg->listeners[i].address);
				goto fail;
			}
			if (cfg->listeners[i].tls && tls == NULL) {
				snprintf(err, errlen, "listener %s: no certificate store for TLS",
					 cfg->listeners[i].address);
				goto fail;
			}
			wl->relay = tcprelay_new(&w->env, i, fds[i], relays[i],
						 cfg->listeners[i].tls ? tls_store_ctx(tls) : NULL, err,
						 errlen);
			if (wl->relay == NULL)
				goto fail;
			w->nlisteners++;
			continue;
		}
		wl->server = server_new(w->base, fds[i], ports[i], listener_codecs(cfg, i),
					&proxy_handler, &wl->txn);
		if (wl->server == NULL) {
			snprintf(err, errlen, "cannot accept on listener %s", cfg->listeners[i].address);
			goto fail;
		}
		server_set_admission(wl->server, &listenlimit_admission, &wl->txn);
		if (shares != NULL && shares[i] != NULL)
			server_set_share(wl->server, shares[i]);
		if (i < cfg->nlisteners && cfg->listeners[i].tls) {
			if (tls == NULL) {
				snprintf(err, errlen, "listener %s: no certificate store for TLS",
					 cfg->listeners[i].address);
				goto fail;
			}
			server_set_tls(wl->server, tls_store_ctx(tls));
			server_set_alpn(wl->server,
					cfg->listeners[i].http2 ? h2_alpn_h2 : h2_alpn_h1);
			wl->txn.tls = true; /* X-Forwarded-Proto: https, HSTS */
		}
		w->nlisteners++;
	}
	if (worker_use(w, rt) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return w;
fail:
	worker_join_free(w);
	return NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	upstream_release_spare_blocks();
	inbuf_release_spares();
	proxy_release_spares();
	atomic_store(&w->exited, true);
	return NULL;
}

bool
worker_exited(struct worker *w)
{
	return atomic_load(&w->exited);
}

int
worker_start(struct worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

/* From the main thread: make <w>'s loop run wake_cb (its base has no lock,
 * so this goes through the eventfd, not event_active). */
static void
wake_worker(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->wake_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN only when the counter is full: a wake-up is pending anyway */
	}
}

void
worker_reload(struct worker *w, struct runtime *rt)
{
	pthread_mutex_lock(&w->lock);
	if (w->pending)
		runtime_unref(w->pending);
	w->pending = runtime_ref(rt);
	pthread_mutex_unlock(&w->lock);
	wake_worker(w);
}

void
worker_drain(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->drain_requested = true;
	pthread_mutex_unlock(&w->lock);
	wake_worker(w);
}

void
worker_join_free(struct worker *w)
{
	if (w == NULL)
		return;
	if (w->thread)
		pthread_join(w->thread, NULL);
	/* Free the servers first: they close client connections, which ends
	 * the transactions still running (after a drain timeout). */
	for (size_t i = 0; i < w->nlisteners; i++) {
		tcprelay_free(w->listeners[i].relay);
		server_free(w->listeners[i].server);
	}
	websocket_close_all(&w->env, "the worker stops");
	if (w->env.gen)
		worker_gen_unref(w->env.gen);
	if (w->pending)
		runtime_unref(w->pending);
	if (w->wake)
		event_free(w->wake);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	if (w->drain_timer)
		event_free(w->drain_timer);
	if (w->drain_poll)
		event_free(w->drain_poll);
	if (w->dns)
		evdns_base_free(w->dns, 0);
	/* Let callbacks scheduled by the frees above run (closing sockets). */
	if (w->base) {
		event_base_loop(w->base, EVLOOP_NONBLOCK);
		event_base_free(w->base);
	}
	free(w->listeners);
	free(w->env.ports);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* tcprelay: raw TCP relay listeners; see tcprelay.h. */
#include "proxy/tcprelay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include "access/access.h"
#include "access/access_check.h"
#include "access/ipacl.h"
#include "access/netaddr.h"
#include "base/log.h"
#include "http/conn.h"
#include "http/tunnel.h"
#include "tls/tls_handshake.h"
#include "core/generation.h"

#define TCPRELAY_CLIENT_BUCKETS 1024

struct tcprelay_client {
	struct tcprelay_client *next;
	uint64_t k0, k1;
	uint64_t count;
};

struct tcprelay_shared {
	_Atomic uint64_t open;
	pthread_mutex_t lock;
	struct tcprelay_client *buckets[TCPRELAY_CLIENT_BUCKETS];
	struct access_counter *accepted, *open_gauge, *bytes_in, *bytes_out;
	struct access_counter *refused_max, *refused_per_client, *refused_proxy, *refused_untrusted;
};

struct relay_conn {
	TAILQ_ENTRY(relay_conn) link;
	struct tcprelay *relay;
	struct worker_gen *gen;
	const struct config_listener *l; /* from gen's configuration */
	struct server_conn *conn;   /* the client, held until the tunnel takes it */
	struct bufferevent *up;     /* while connecting */
	struct tunnel *tunnel;      /* once connected: moves the bytes */
	struct event *idle;         /* while connecting */
	struct netaddr addr;
	char addr_text[INET6_ADDRSTRLEN];
	size_t server;
	unsigned tries;
	bool client_slot;  /* counted in the per-client table */
	bool relaying;
};

/* A relay with no "alpn" selects none. */
static const char *const relay_no_alpn[] = {NULL};

struct tcprelay {
	struct txn_env *env;   /* the worker's: loop, resolver, generation */
	SSL_CTX *tls;     /* terminate TLS on the client side, or NULL */
	size_t index;
	struct server *srv;   /* accepts, reads PROXY headers, holds connections */
	struct tcprelay_shared *sh;
	TAILQ_HEAD(, relay_conn) conns;
};

/* ---- shared state ------------------------------------------------------------- */

struct tcprelay_shared *
tcprelay_shared_new(const struct config_listener *l)
{
	struct tcprelay_shared *sh = calloc(1, sizeof(*sh));
	char labels[200];

	if (sh == NULL)
		return NULL;
	pthread_mutex_init(&sh->lock, NULL);
	snprintf(labels, sizeof(labels), "listener=\"%s\"", l->name);
	sh->accepted = access_counter_get("portcullis_tcp_relay_connections_total", labels);
	sh->open_gauge = access_counter_get("portcullis_tcp_relay_connections_open", labels);
	snprintf(labels, sizeof(labels), "listener=\"%s\",direction=\"in\"", l->name);
	sh->bytes_in = access_counter_get("portcullis_tcp_relay_bytes_total", labels);
	snprintf(labels, sizeof(labels), "listener=\"%s\",direction=\"out\"", l->name);
	sh->bytes_out = access_counter_get("portcullis_tcp_relay_bytes_total", labels);
	snprintf(labels, sizeof(labels), "rule=\"listeners[%zu].max_connections\",reason=\"max_connections\"",
		 l->index);
	sh->refused_max = access_counter_get("portcullis_access_refusals_total", labels);
	snprintf(labels, sizeof(labels),
		 "rule=\"listeners[%zu].max_connections_per_client\",reason=\"max_connections_per_client\"",
		 l->index);
	sh->refused_per_client = access_counter_get("portcullis_access_refusals_total", labels);
	snprintf(labels, sizeof(labels), "rule=\"listeners[%zu].proxy_protocol\",reason=\"proxy_protocol\"",
		 l->index);
	sh->refused_proxy = access_counter_get("portcullis_access_refusals_total", labels);
	snprintf(labels, sizeof(labels), "rule=\"trusted_proxies\",reason=\"untrusted_proxy\"");
	sh->refused_untrusted = access_counter_get("portcullis_access_refusals_total", labels);
	return sh;
}

void
tcprelay_shared_free(struct tcprelay_shared *sh)
{
	if (sh == NULL)
		return;
	for (size_t i = 0; i < TCPRELAY_CLIENT_BUCKETS; i++) {
		while (sh->buckets[i] != NULL) {
			struct tcprelay_client *n = sh->buckets[i]->next;

			free(sh->buckets[i]);
			sh->buckets[i] = n;
		}
	}
	pthread_mutex_destroy(&sh->lock);
	free(sh);
}

static void
tcprelay_client_key(const struct netaddr *a, uint64_t *k0, uint64_t *k1)
{
	*k0 = a->family == AF_INET ? a->v4 : a->v6[0]; /* IPv6: per /64 */
	*k1 = (uint64_t)a->family;
}

static size_t
tcprelay_bucket(uint64_t k0, uint64_t k1)
{
	uint64_t h = (k0 ^ (k1 << 56)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 54) & (TCPRELAY_CLIENT_BUCKETS - 1);
}

/* Take a per-client slot; false when the client is at <limit> (0 = none). */
static bool
tcprelay_client_take(struct tcprelay_shared *sh, const struct netaddr *a, uint64_t limit)
{
	uint64_t k0, k1;
	struct tcprelay_client *c;
	bool ok = true;
	size_t b;

	tcprelay_client_key(a, &k0, &k1);
	b = tcprelay_bucket(k0, k1);
	pthread_mutex_lock(&sh->lock);
	for (c = sh->buckets[b]; c != NULL; c = c->next)
		if (c->k0 == k0 && c->k1 == k1)
			break;
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			ok = false;
			goto out;
		}
		c->k0 = k0;
		c->k1 = k1;
		c->next = sh->buckets[b];
		sh->buckets[b] = c;
	}
	if (limit > 0 && c->count >= limit)
		ok = false;
	else
		c->count++;
out:
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

static void
tcprelay_client_release(struct tcprelay_shared *sh, const struct netaddr *a)
{
	struct tcprelay_client **pp, *c;
	uint64_t k0, k1;

	tcprelay_client_key(a, &k0, &k1);
	pthread_mutex_lock(&sh->lock);
	for (pp = &sh->buckets[tcprelay_bucket(k0, k1)]; (c = *pp) != NULL; pp = &c->next) {
		if (c->k0 == k0 && c->k1 == k1) {
			if (--c->count == 0) {
				*pp = c->next;
				free(c);
			}
			break;
		}
	}
	pthread_mutex_unlock(&sh->lock);
}

/* ---- one connection ---------------------------------------------------------------- */

static void relay_event_cb(struct bufferevent *bev, short what, void *arg);
static void relay_try_connect(struct relay_conn *c);

/* Every connection ends here: one log line, counters, slots given back. */
static void
relay_close(struct relay_conn *c)
{
	struct tcprelay *r = c->relay;

	TAILQ_REMOVE(&r->conns, c, link);
	tunnel_free(c->tunnel);
	if (c->conn)
		server_conn_close(c->conn);
	if (c->up)
		bufferevent_free(c->up);
	if (c->idle)
		event_free(c->idle);
	if (c->client_slot)
		tcprelay_client_release(r->sh, &c->addr);
	atomic_fetch_sub(&r->sh->open, 1);
	if (c->relaying) {
		if (r->sh->open_gauge)
			atomic_fetch_sub_explicit(&r->sh->open_gauge->value, 1, memory_order_relaxed);
	}
	log_debug("tcp relay %s: connection from %s closed", c->l->name, c->addr_text);
	txn_env_end(r->env, c->gen);
	free(c);
}

static void
relay_tunnel_done_cb(struct tunnel *t, enum tunnel_reason why, enum tunnel_side side, void *arg)
{
	struct relay_conn *c = arg;

	(void)t;
	(void)side;
	c->tunnel = NULL; /* freed by the tunnel after this */
	if (why == TUNNEL_IDLE)
		log_info("tcp relay %s: connection from %s idle for %.0f s; closed", c->l->name,
			 c->addr_text, c->l->idle_timeout);
	relay_close(c);
}

static void
relay_tunnel_bytes_cb(enum tunnel_side from, size_t n, void *arg)
{
	struct relay_conn *c = arg;

	access_counter_add(from == TUNNEL_A ? c->relay->sh->bytes_in : c->relay->sh->bytes_out, n);
}

static const struct tunnel_callbacks relay_tunnel_callbacks = {
	relay_tunnel_done_cb,
	relay_tunnel_bytes_cb,
};

/* Take a bufferevent's socket out of it (it is freed without closing it). */
static evutil_socket_t
relay_take_fd(struct bufferevent **bev)
{
	evutil_socket_t fd = bufferevent_getfd(*bev);

	bufferevent_setfd(*bev, -1);
	bufferevent_free(*bev);
	*bev = NULL;
	return fd;
}

/* The upstream is connected: hand both sockets to a tunnel (the client
 * side A, with TLS terminated there when the listener says so; the
 * upstream B), with any bytes the transport read from the client first. */
static void
relay_start_tunnel(struct relay_conn *c)
{
	struct tcprelay *r = c->relay;
	struct tunnel_params params = {TCPRELAY_MAX_BUFFERED, c->l->idle_timeout};
	struct tunnel_end ends[2];
	struct evbuffer *early = evbuffer_new();

	c->relaying = true;
	access_counter_add(r->sh->accepted, 1);
	access_counter_add(r->sh->open_gauge, 1);
	if (early == NULL || server_conn_detach(c->conn, &ends[TUNNEL_A], early) < 0)
		goto fail;
	c->conn = NULL;
	ends[TUNNEL_B].fd = relay_take_fd(&c->up);
	ends[TUNNEL_B].ssl = NULL;
	if (r->tls) {
		SSL *ssl = SSL_new(r->tls);

		/* Its own ALPN list (none by default): what the HTTP listeners
		 * offer could promise the relay's upstream a protocol it does not
		 * speak. */
		if (ssl == NULL || SSL_set_fd(ssl, ends[TUNNEL_A].fd) != 1 ||
		    tls_set_alpn(ssl, c->l->alpn ? c->l->alpn : relay_no_alpn) < 0) {
			SSL_free(ssl);
			close(ends[TUNNEL_A].fd);
			close(ends[TUNNEL_B].fd);
			goto fail;
		}
		SSL_set_accept_state(ssl);
		ends[TUNNEL_A].ssl = ssl;
	}
	if (c->idle) {
		event_free(c->idle); /* the tunnel's own from now on */
		c->idle = NULL;
	}
	c->tunnel = tunnel_new(r->env->base, ends, &params, &relay_tunnel_callbacks, c);
	if (c->tunnel == NULL)
		goto fail;
	log_debug("tcp relay %s: %s connected to %s", c->l->name, c->addr_text,
		  c->l->relay_servers[c->server].address);
	if (evbuffer_get_length(early) > 0) {
		size_t n = evbuffer_get_length(early);
		const unsigned char *p = evbuffer_pullup(early, -1);

		if (p == NULL || tunnel_push(c->tunnel, TUNNEL_A, p, n) < 0)
			goto fail;
	}
	evbuffer_free(early);
	return;
fail:
	if (early)
		evbuffer_free(early);
	relay_close(c);
}

static void
relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay_conn *c = arg;

	/* Connecting to the upstream. */
	if (bev == c->up && (what & BEV_EVENT_CONNECTED)) {
		relay_start_tunnel(c);
		return;
	}
	if (bev == c->up) {
		log_warn("tcp relay %s: upstream %s: %s", c->l->name,
			 c->l->relay_servers[c->server].address,
			 (what & BEV_EVENT_TIMEOUT) ? "connect timed out"
			 : EVUTIL_SOCKET_ERROR() ? evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())
						 : "connection failed");
		bufferevent_free(c->up);
		c->up = NULL;
		c->server = (c->server + 1) % c->l->nrelay_servers;
		relay_try_connect(c);
		return;
	}
	relay_close(c);
}

/* Idle while connecting to the upstream (the tunnel times out by itself). */
static void
relay_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_conn *c = arg;

	log_info("tcp relay %s: connection from %s idle for %.0f s; closed", c->l->name,
		 c->addr_text, c->l->idle_timeout);
	relay_close(c);
}

static void
relay_try_connect(struct relay_conn *c)
{
	const struct config_server *s;
	struct timeval tv;

	if (c->tries++ >= c->l->nrelay_servers) {
		log_warn("tcp relay %s: no upstream server of \"%s\" accepted a connection; closing "
			 "the one from %s",
			 c->l->name, c->l->relay_upstream, c->addr_text);
		relay_close(c);
		return;
	}
	s = &c->l->relay_servers[c->server];
	c->up = bufferevent_socket_new(c->relay->env->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->up == NULL) {
		relay_close(c);
		return;
	}
	bufferevent_setcb(c->up, NULL, NULL, relay_event_cb, c);
	tv.tv_sec = (time_t)c->l->relay_connect_timeout;
	tv.tv_usec = (suseconds_t)((c->l->relay_connect_timeout - (double)tv.tv_sec) * 1e6);
	bufferevent_set_timeouts(c->up, NULL, &tv);
	if (bufferevent_socket_connect_hostname(c->up, c->relay->env->dns, AF_UNSPEC, s->host,
						s->port) < 0) {
		/* Failed at once: the event callback is not called. */
		bufferevent_free(c->up);
		c->up = NULL;
		c->server = (c->server + 1) % c->l->nrelay_servers;
		relay_try_connect(c);
	}
}

/* The client address is known: check it, then connect. */
static void
relay_admit(struct relay_conn *c)
{
	struct tcprelay *r = c->relay;
	const struct config *cfg = c->gen->rt->cfg;
	struct timeval idle;

	netaddr_format(&c->addr, c->addr_text, sizeof(c->addr_text));
	if (!access_check_address(cfg, r->index, &c->addr)) {
		relay_close(c);
		return;
	}
	if (!tcprelay_client_take(r->sh, &c->addr, c->l->max_connections_per_client)) {
		access_counter_add(r->sh->refused_per_client, 1);
		log_info("access refused for %s: %llu connections already open (%s.max_connections_per_client)",
			 c->addr_text, (unsigned long long)c->l->max_connections_per_client,
			 c->l->name);
		relay_close(c);
		return;
	}
	c->client_slot = true;
	c->idle = evtimer_new(r->env->base, relay_idle_cb, c);
	if (c->idle == NULL) {
		relay_close(c);
		return;
	}
	idle.tv_sec = (time_t)c->l->idle_timeout;
	idle.tv_usec = (suseconds_t)((c->l->idle_timeout - (double)idle.tv_sec) * 1e6);
	evtimer_add(c->idle, &idle);
	relay_try_connect(c);
}

/* ---- the transport's side: accept, PROXY header, hold ------------------------------ */

/* Accepted: check that the listener is still a relay and the total limit,
 * and set the PROXY setting and deadline from the configuration in force. */
static void *
relay_accept_cb(struct server_conn *sc, const struct sockaddr *sa, void *arg)
{
	struct tcprelay *r = arg;
	const struct config *cfg = r->env->gen->rt->cfg;
	struct relay_conn *c;
	uint64_t open;

	if (r->index >= cfg->nlisteners || cfg->listeners[r->index].type != LISTENER_TCP ||
	    cfg->listeners[r->index].nrelay_servers == 0) {
		log_warn("listeners[%zu] is no longer a TCP relay in the loaded configuration; "
			 "restart to change listeners",
			 r->index);
		return NULL;
	}
	open = atomic_fetch_add(&r->sh->open, 1) + 1;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		atomic_fetch_sub(&r->sh->open, 1);
		return NULL;
	}
	c->relay = r;
	c->gen = txn_env_begin(r->env);
	c->l = &cfg->listeners[r->index];
	TAILQ_INSERT_TAIL(&r->conns, c, link);
	netaddr_from_sockaddr(sa, &c->addr);
	netaddr_format(&c->addr, c->addr_text, sizeof(c->addr_text));
	if (open > c->l->max_connections) {
		access_counter_add(r->sh->refused_max, 1);
		log_warn("tcp relay %s: %llu connections open (max_connections); refused %s",
			 c->l->name, (unsigned long long)c->l->max_connections, c->addr_text);
		relay_close(c); /* c->conn is not set: the transport closes it */
		return NULL;
	}
	c->conn = sc;
	server_set_proxy_protocol(r->srv, c->l->proxy_protocol, cfg->trusted);
	if (c->l->proxy_protocol) {
		struct timeval tv;

		tv.tv_sec = (time_t)cfg->client_timeout;
		tv.tv_usec = (suseconds_t)((cfg->client_timeout - (double)tv.tv_sec) * 1e6);
		server_conn_set_deadline(sc, &tv);
	}
	return c;
}

static void
relay_refused_cb(struct server_conn *sc, enum server_refusal why, const char *detail, void *data)
{
	struct relay_conn *c = data;

	(void)sc;
	switch (why) {
	case SERVER_REFUSED_UNTRUSTED:
		access_counter_add(c->relay->sh->refused_untrusted, 1);
		log_info("tcp relay %s: refused %s: a PROXY header is accepted only from "
			 "trusted_proxies",
			 c->l->name, c->addr_text);
		break;
	case SERVER_REFUSED_PROXY_HEADER:
		access_counter_add(c->relay->sh->refused_proxy, 1);
		log_info("tcp relay %s: refused a connection from %s: %s", c->l->name, c->addr_text,
			 detail);
		break;
	case SERVER_REFUSED_PROXY_TIMEOUT:
		log_info("tcp relay %s: no PROXY header from %s in time; closed", c->l->name,
			 c->addr_text);
		break;
	}
}

/* The client address is known (the PROXY header's, or the socket's). */
static void
relay_ready_cb(struct server_conn *sc, const struct sockaddr *peer, void *data)
{
	struct relay_conn *c = data;

	(void)sc;
	if (peer->sa_family == AF_INET || peer->sa_family == AF_INET6)
		netaddr_from_sockaddr(peer, &c->addr);
	relay_admit(c);
}

/* The transport closed the connection before the tunnel took it. */
static void
relay_conn_closed_cb(struct server_conn *sc, void *data)
{
	struct relay_conn *c = data;

	(void)sc;
	c->conn = NULL;
	relay_close(c);
}

static const struct server_raw_handler relay_raw_handler = {
	relay_accept_cb,
	relay_refused_cb,
	relay_ready_cb,
	relay_conn_closed_cb,
};

/* ---- listener ------------------------------------------------------------------------- */

struct tcprelay *
tcprelay_new(struct txn_env *env, size_t index, int fd, struct tcprelay_shared *sh, SSL_CTX *tls,
	     char *err, size_t errlen)
{
	struct tcprelay *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	r->env = env;
	r->index = index;
	r->sh = sh;
	r->tls = tls;
	TAILQ_INIT(&r->conns);
	r->srv = server_new(env->base, fd, 0, NULL, NULL, NULL);
	if (r->srv == NULL) {
		snprintf(err, errlen, "cannot accept on relay listener %zu", index);
		close(fd);
		free(r);
		return NULL;
	}
	server_set_counted(r->srv, false); /* relays have gauges of their own */
	server_set_raw(r->srv, &relay_raw_handler, r);
	return r;
}

void
tcprelay_stop_accepting(struct tcprelay *r)
{
	if (r != NULL)
		server_drain(r->srv); /* held and tunnelled connections go on */
}

void
tcprelay_free(struct tcprelay *r)
{
	if (r == NULL)
		return;
	server_free(r->srv); /* closes the connections it still holds */
	while (!TAILQ_EMPTY(&r->conns))
		relay_close(TAILQ_FIRST(&r->conns));
	free(r);
}

/* tcprelay: raw TCP relay listeners; see tcprelay.h. */
#include "proxy/tcprelay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
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
#include "http/proxyproto.h"
#include "core/generation.h"

#define TCPRELAY_READ_CHUNK (64 * 1024)
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
	struct bufferevent *client;
	struct bufferevent *up;
	struct event *idle;
	/* Our own read events once relaying: libevent 2.1's bufferevents read
	 * at most 4 KiB per call (EVBUFFER_MAX_READ), after a FIONREAD each;
	 * these read 64 KiB at a time straight into the partner's output. */
	struct event *read_client, *read_up;
	struct netaddr addr;
	char addr_text[INET6_ADDRSTRLEN];
	struct timeval last; /* last byte either way */
	size_t server;
	unsigned tries;
	bool client_slot;  /* counted in the per-client table */
	bool relaying;
	bool client_eof, up_eof;   /* reading from it ended */
	bool client_shut, up_shut; /* we shut down writing to it */
};

struct tcprelay {
	struct txn_env *env;   /* the worker's: loop, resolver, generation */
	SSL_CTX *tls;     /* terminate TLS on the client side, or NULL */
	size_t index;
	struct evconnlistener *lev;
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

static void relay_read_cb(struct bufferevent *bev, void *arg);
static void relay_write_cb(struct bufferevent *bev, void *arg);
static void relay_event_cb(struct bufferevent *bev, short what, void *arg);
static void relay_try_connect(struct relay_conn *c);

static void
relay_close(struct relay_conn *c)
{
	struct tcprelay *r = c->relay;

	TAILQ_REMOVE(&r->conns, c, link);
	if (c->read_client)
		event_free(c->read_client);
	if (c->read_up)
		event_free(c->read_up);
	if (c->client)
		bufferevent_free(c->client);
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

/*
 * The client side's bufferevent.  TLS termination on relay listeners goes
 * here (an OpenSSL bufferevent in accepting state over <fd>).
 */
static struct bufferevent *
tcprelay_client_bev(struct tcprelay *r, evutil_socket_t fd)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (r->tls == NULL)
		return bufferevent_socket_new(r->env->base, fd, BEV_OPT_CLOSE_ON_FREE);
	ssl = SSL_new(r->tls);
	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(r->env->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* OpenSSL 3's strict EOF handling is not in libevent 2.1. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static struct bufferevent *
relay_partner(struct relay_conn *c, struct bufferevent *bev)
{
	return bev == c->client ? c->up : c->client;
}

/* Move what <from> read to its partner; pause <from> when the partner's
 * queue is full. */
static void
relay_read_cb(struct bufferevent *from, void *arg)
{
	struct relay_conn *c = arg;
	struct bufferevent *to = relay_partner(c, from);
	struct evbuffer *src = bufferevent_get_input(from);
	struct evbuffer *dst = bufferevent_get_output(to);
	size_t n = evbuffer_get_length(src);

	if (n == 0)
		return;
	event_base_gettimeofday_cached(c->relay->env->base, &c->last);
	access_counter_add(from == c->client ? c->relay->sh->bytes_in : c->relay->sh->bytes_out, n);
	evbuffer_add_buffer(dst, src);
	if (evbuffer_get_length(dst) >= TCPRELAY_MAX_BUFFERED)
		bufferevent_disable(from, EV_READ);
}

static void
relay_shutdown_write(struct relay_conn *c, struct bufferevent *to)
{
	evutil_socket_t fd = bufferevent_getfd(to);

	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	if (to == c->client)
		c->client_shut = true;
	else
		c->up_shut = true;
}

static bool
relay_done(const struct relay_conn *c)
{
	return c->client_eof && c->up_eof && c->client_shut && c->up_shut;
}

/* <to>'s queue went down to its low-water mark: resume its partner, or pass
 * on a half-close once everything is written. */
static void
relay_write_cb(struct bufferevent *to, void *arg)
{
	struct relay_conn *c = arg;
	struct bufferevent *from = relay_partner(c, to);
	bool from_eof = from == c->client ? c->client_eof : c->up_eof;
	bool to_shut = to == c->client ? c->client_shut : c->up_shut;

	if (!from_eof) {
		struct event *rd = from == c->client ? c->read_client : c->read_up;

		if (evbuffer_get_length(bufferevent_get_output(to)) < TCPRELAY_MAX_BUFFERED) {
			if (rd)
				event_add(rd, NULL);
			else
				bufferevent_enable(from, EV_READ); /* TLS: OpenSSL reads */
		}
		return;
	}
	if (!to_shut && evbuffer_get_length(bufferevent_get_output(to)) == 0) {
		relay_shutdown_write(c, to);
		if (relay_done(c))
			relay_close(c);
	}
}

/* <from> ended (EOF): pass the half-close on once its partner has written
 * everything. */
static void
relay_from_eof(struct relay_conn *c, struct bufferevent *from)
{
	struct bufferevent *to = relay_partner(c, from);

	if (from == c->client)
		c->client_eof = true;
	else
		c->up_eof = true;
	if (evbuffer_get_length(bufferevent_get_output(to)) == 0)
		relay_shutdown_write(c, to);
	else
		bufferevent_setwatermark(to, EV_WRITE, 0, 0); /* tell us when it is all written */
	if (relay_done(c))
		relay_close(c);
}

/* Read from one side straight into the other side's output queue. */
static void
relay_raw_read(struct relay_conn *c, struct bufferevent *from, struct event *rd)
{
	struct bufferevent *to = relay_partner(c, from);
	struct evbuffer *dst = bufferevent_get_output(to);
	evutil_socket_t fd = bufferevent_getfd(from);
	size_t total = 0;

	for (int rounds = 0; rounds < 8; rounds++) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_reserve_space(dst, TCPRELAY_READ_CHUNK, &v, 1) < 1) {
			relay_close(c);
			return;
		}
		n = read(fd, v.iov_base, v.iov_len);
		if (n > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(dst, &v, 1);
			total += (size_t)n;
			if (evbuffer_get_length(dst) >= TCPRELAY_MAX_BUFFERED) {
				event_del(rd); /* resumed by relay_write_cb */
				break;
			}
			if ((size_t)n < TCPRELAY_READ_CHUNK)
				break;
			continue;
		}
		evbuffer_commit_space(dst, &v, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		event_del(rd);
		if (total) {
			event_base_gettimeofday_cached(c->relay->env->base, &c->last);
			access_counter_add(from == c->client ? c->relay->sh->bytes_in
							     : c->relay->sh->bytes_out, total);
		}
		if (n == 0)
			relay_from_eof(c, from);
		else
			relay_close(c);
		return;
	}
	if (total) {
		event_base_gettimeofday_cached(c->relay->env->base, &c->last);
		access_counter_add(from == c->client ? c->relay->sh->bytes_in : c->relay->sh->bytes_out,
				   total);
	}
}

static void
relay_read_client_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_conn *c = arg;

	relay_raw_read(c, c->client, c->read_client);
}

static void
relay_read_up_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_conn *c = arg;

	relay_raw_read(c, c->up, c->read_up);
}

static void
relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay_conn *c = arg;

	if (!c->relaying) {
		/* Connecting to the upstream. */
		if (what & BEV_EVENT_CONNECTED) {
			c->relaying = true;
			access_counter_add(c->relay->sh->accepted, 1);
			access_counter_add(c->relay->sh->open_gauge, 1);
			bufferevent_set_timeouts(c->up, NULL, NULL);
			bufferevent_setcb(c->up, relay_read_cb, relay_write_cb, relay_event_cb, c);
			bufferevent_setcb(c->client, relay_read_cb, relay_write_cb, relay_event_cb, c);
			bufferevent_setwatermark(c->up, EV_WRITE, TCPRELAY_MAX_BUFFERED / 2, 0);
			bufferevent_setwatermark(c->client, EV_WRITE, TCPRELAY_MAX_BUFFERED / 2, 0);
			bufferevent_set_max_single_read(c->up, TCPRELAY_READ_CHUNK);
			bufferevent_set_max_single_write(c->up, TCPRELAY_READ_CHUNK * 4);
			bufferevent_set_max_single_read(c->client, TCPRELAY_READ_CHUNK);
			bufferevent_set_max_single_write(c->client, TCPRELAY_READ_CHUNK * 4);
			/* The bufferevents write; our events read (see read_client). */
			/* A TLS client side is read by OpenSSL through its
			 * bufferevent; plain sockets by our events. */
			bufferevent_disable(c->up, EV_READ);
			bufferevent_enable(c->up, EV_WRITE);
			if (c->relay->tls) {
				bufferevent_enable(c->client, EV_READ | EV_WRITE);
			} else {
				bufferevent_disable(c->client, EV_READ);
				bufferevent_enable(c->client, EV_WRITE);
				c->read_client = event_new(c->relay->env->base,
							   bufferevent_getfd(c->client),
							   EV_READ | EV_PERSIST, relay_read_client_cb, c);
				if (c->read_client == NULL) {
					relay_close(c);
					return;
				}
				event_add(c->read_client, NULL);
			}
			c->read_up = event_new(c->relay->env->base, bufferevent_getfd(c->up),
					       EV_READ | EV_PERSIST, relay_read_up_cb, c);
			if (c->read_up == NULL) {
				relay_close(c);
				return;
			}
			event_add(c->read_up, NULL);
			event_base_gettimeofday_cached(c->relay->env->base, &c->last);
			log_debug("tcp relay %s: %s connected to %s", c->l->name, c->addr_text,
				  c->l->relay_servers[c->server].address);
			/* Bytes that came with the PROXY header go out now. */
			relay_read_cb(c->client, c);
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
		relay_close(c); /* the client went away while we connected */
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		relay_close(c);
		return;
	}
	if (!(what & BEV_EVENT_EOF))
		return;
	relay_read_cb(bev, c); /* anything left */
	relay_from_eof(c, bev);
}

static void
relay_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_conn *c = arg;
	struct timeval now, idle, since;
	double left;

	event_base_gettimeofday_cached(c->relay->env->base, &now);
	timersub(&now, &c->last, &since);
	left = c->l->idle_timeout - ((double)since.tv_sec + (double)since.tv_usec / 1e6);
	if (left <= 0) {
		log_info("tcp relay %s: connection from %s idle for %.0f s; closed", c->l->name,
			 c->addr_text, c->l->idle_timeout);
		relay_close(c);
		return;
	}
	idle.tv_sec = (time_t)left;
	idle.tv_usec = (suseconds_t)((left - (double)idle.tv_sec) * 1e6) + 1000;
	evtimer_add(c->idle, &idle);
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
	bufferevent_disable(c->client, EV_READ);
	bufferevent_set_timeouts(c->client, NULL, NULL);
	bufferevent_setcb(c->client, NULL, NULL, relay_event_cb, c);
	c->idle = evtimer_new(r->env->base, relay_idle_cb, c);
	if (c->idle == NULL) {
		relay_close(c);
		return;
	}
	idle.tv_sec = (time_t)c->l->idle_timeout;
	idle.tv_usec = (suseconds_t)((c->l->idle_timeout - (double)idle.tv_sec) * 1e6);
	event_base_gettimeofday_cached(r->env->base, &c->last);
	evtimer_add(c->idle, &idle);
	relay_try_connect(c);
}

/* Reading the PROXY protocol header. */
static void
relay_proxy_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	size_t look = len < PROXYPROTO_MAX_HEADER ? len : PROXYPROTO_MAX_HEADER;
	const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)look);
	struct proxyproto_info info;
	const char *why = "no PROXY protocol header";
	enum proxyproto_result res = p ? proxyproto_parse(p, look, &info, &why) : PROXYPROTO_INVALID;

	if (res == PROXYPROTO_NEED_MORE && look < PROXYPROTO_MAX_HEADER)
		return;
	if (res != PROXYPROTO_OK) {
		if (res == PROXYPROTO_NEED_MORE)
			why = "PROXY header too long";
		access_counter_add(c->relay->sh->refused_proxy, 1);
		log_info("tcp relay %s: refused a connection from %s: %s", c->l->name, c->addr_text,
			 why);
		relay_close(c);
		return;
	}
	evbuffer_drain(in, info.header_len);
	if (info.has_address)
		netaddr_from_sockaddr((const struct sockaddr *)&info.src, &c->addr);
	relay_admit(c);
}

static void
relay_proxy_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay_conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		log_info("tcp relay %s: no PROXY header from %s in time; closed", c->l->name,
			 c->addr_text);
	relay_close(c);
}

static void
relay_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
		void *arg)
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
		evutil_closesocket(fd);
		return;
	}
	open = atomic_fetch_add(&r->sh->open, 1) + 1;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		atomic_fetch_sub(&r->sh->open, 1);
		evutil_closesocket(fd);
		return;
	}
	c->relay = r;
	c->gen = txn_env_begin(r->env);
	c->l = &cfg->listeners[r->index];
	TAILQ_INSERT_TAIL(&r->conns, c, link);
	netaddr_from_sockaddr(sa, &c->addr);
	netaddr_format(&c->addr, c->addr_text, sizeof(c->addr_text));
	c->client = tcprelay_client_bev(r, fd);
	if (c->client == NULL) {
		evutil_closesocket(fd);
		relay_close(c);
		return;
	}
	if (open > c->l->max_connections) {
		access_counter_add(r->sh->refused_max, 1);
		log_warn("tcp relay %s: %llu connections open (max_connections); refused %s",
			 c->l->name, (unsigned long long)c->l->max_connections, c->addr_text);
		relay_close(c);
		return;
	}
	if (!c->l->proxy_protocol) {
		relay_admit(c);
		return;
	}
	if (!ipacl_contains(cfg->trusted, sa)) {
		access_counter_add(r->sh->refused_untrusted, 1);
		log_info("tcp relay %s: refused %s: a PROXY header is accepted only from "
			 "trusted_proxies",
			 c->l->name, c->addr_text);
		relay_close(c);
		return;
	}
	bufferevent_setcb(c->client, relay_proxy_read_cb, NULL, relay_proxy_event_cb, c);
	{
		struct timeval tv;

		tv.tv_sec = (time_t)cfg->client_timeout;
		tv.tv_usec = (suseconds_t)((cfg->client_timeout - (double)tv.tv_sec) * 1e6);
		bufferevent_set_timeouts(c->client, &tv, NULL);
	}
	bufferevent_enable(c->client, EV_READ);
}

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
	r->lev = evconnlistener_new(env->base, relay_accept_cb, r, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (r->lev == NULL) {
		snprintf(err, errlen, "cannot accept on relay listener %zu", index);
		close(fd);
		free(r);
		return NULL;
	}
	return r;
}

void
tcprelay_stop_accepting(struct tcprelay *r)
{
	if (r != NULL && r->lev != NULL) {
		evconnlistener_free(r->lev);
		r->lev = NULL;
	}
}

void
tcprelay_free(struct tcprelay *r)
{
	if (r == NULL)
		return;
	tcprelay_stop_accepting(r);
	while (!TAILQ_EMPTY(&r->conns))
		relay_close(TAILQ_FIRST(&r->conns));
	free(r);
}

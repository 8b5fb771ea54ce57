/* claims: single-use keys in Redis (hiredis, libevent adapter); see claims.h. */
#include "auth/claims.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config/config_model.h"
#include "base/log.h"
#include "base/timeutil.h"

#define CLAIMS_BACKOFF_FIRST 0.1
#define CLAIMS_BACKOFF_MAX 5.0
#define CLAIMS_MAX_KEY 1024

enum claims_state {
	CLAIMS_DOWN,       /* waiting for the retry timer */
	CLAIMS_RESOLVING,  /* evdns is looking the host up */
	CLAIMS_CONNECTING, /* TCP / unix connect in progress (commands queue up) */
	CLAIMS_UP,         /* connected */
};

struct claims_request {
	TAILQ_ENTRY(claims_request) link;
	struct claims *c;
	claims_cb cb;
	void *arg;
	struct event *ev;  /* the deadline; made active to deliver the outcome */
	size_t n;          /* keys sent */
	size_t pending;    /* answers still to come from hiredis */
	bool complete;     /* every answer is in: deliver from ev */
	bool done;         /* delivered, timed out or cancelled: cb never runs again */
	bool used;
	size_t used_index;
	char error[600];   /* first error, "" when none */
};

TAILQ_HEAD(claims_requests, claims_request);

struct claims {
	struct event_base *base;
	struct evdns_base *dns;
	const struct config_redis *rc;
	char name[32];
	char where[280];             /* "host:port" or the socket path, for messages */

	enum claims_state state;
	redisAsyncContext *ac;
	struct evdns_getaddrinfo_request *dns_req;
	struct evutil_addrinfo *addrs;     /* the host's addresses, tried in turn */
	struct evutil_addrinfo *next_addr; /* the next to try, NULL: none left */
	struct event *retry_ev;      /* reconnect after backoff */
	struct event *connect_ev;    /* connect deadline */
	struct event *drop_ev;       /* drop a broken connection (outside hiredis callbacks) */
	double backoff;
	bool dropping;               /* inside our own redisAsyncFree */
	bool closing;                /* claims_free is running */
	bool failure_logged;         /* the outage is logged; log the recovery */
	char last_error[300];        /* why the last connection failed */
	char drop_reason[300];
	struct claims_requests requests;
};

static void claims_connect(struct claims *c);
static void claims_start(struct claims *c, const char *ip);

static void
claims_request_free(struct claims_request *r)
{
	TAILQ_REMOVE(&r->c->requests, r, link);
	if (r->ev)
		event_free(r->ev);
	free(r);
}

/* ---- the connection ---------------------------------------------------- */

/* The connection is down: remember why, log an outage once, retry later. */
static void
claims_down(struct claims *c, const char *why)
{
	struct timeval tv;

	c->state = CLAIMS_DOWN;
	snprintf(c->last_error, sizeof c->last_error, "%s", why);
	if (c->connect_ev)
		evtimer_del(c->connect_ev);
	if (c->closing)
		return;
	if (!c->failure_logged) {
		log_warn("redis: %s: %s: %s; logins fail until it is back (retrying)", c->name,
			 c->where, why);
		c->failure_logged = true;
	} else {
		log_debug("redis: %s: %s: %s (retry in %.1f s)", c->name, c->where, why, c->backoff);
	}
	tv = timeval_from_seconds(c->backoff);
	evtimer_add(c->retry_ev, &tv);
	c->backoff *= 2;
	if (c->backoff > CLAIMS_BACKOFF_MAX)
		c->backoff = CLAIMS_BACKOFF_MAX;
}

/* Connect to the next address of the host, or (none left) go down. */
static void
claims_try_next(struct claims *c, const char *why)
{
	struct evutil_addrinfo *a = c->next_addr;
	char ip[INET6_ADDRSTRLEN];

	while (a != NULL) {
		const void *in = a->ai_family == AF_INET6
					 ? (const void *)&((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr
					 : (const void *)&((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr;

		c->next_addr = a->ai_next;
		if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
		    inet_ntop(a->ai_family, in, ip, sizeof ip) != NULL) {
			if (why != NULL)
				log_debug("redis: %s: %s: %s; trying %s", c->name, c->where, why, ip);
			claims_start(c, ip);
			return;
		}
		a = c->next_addr;
	}
	claims_down(c, why ? why : "cannot resolve: no usable address");
}

/* Connecting failed: try the host's next address, if any. */
static void
claims_connect_failed(struct claims *c, const char *why)
{
	if (c->next_addr != NULL && !c->closing)
		claims_try_next(c, why);
	else
		claims_down(c, why);
}

/* Drop the connection soon (never from inside a hiredis callback). */
static void
claims_drop_soon(struct claims *c, const char *why)
{
	if (c->ac == NULL || c->drop_reason[0] != '\0')
		return;
	snprintf(c->drop_reason, sizeof c->drop_reason, "%s", why);
	event_active(c->drop_ev, EV_TIMEOUT, 1);
}

static void
claims_drop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct claims *c = arg;
	char why[sizeof c->drop_reason];

	bool connecting = c->state == CLAIMS_CONNECTING;

	snprintf(why, sizeof why, "%s", c->drop_reason);
	if (c->ac != NULL) {
		/* Pending answers come back as NULL replies (reason: drop_reason). */
		c->dropping = true;
		redisAsyncFree(c->ac);
		c->ac = NULL;
		c->dropping = false;
		c->drop_reason[0] = '\0';
		if (connecting)
			claims_connect_failed(c, why);
		else
			claims_down(c, why);
	}
	c->drop_reason[0] = '\0';
}

static void
claims_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	claims_connect(arg);
}

static void
claims_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct claims *c = arg;
	char why[128];

	if (c->state != CLAIMS_CONNECTING)
		return;
	snprintf(why, sizeof why, "no connection within %g s (redis.connect_timeout)",
		 c->rc->connect_timeout);
	claims_drop_soon(c, why);
}

/* The answer to AUTH or SELECT. */
static void
claims_setup_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct claims *c = ac->data;
	redisReply *rep = reply;
	const char *what = privdata;
	char why[300];

	if (rep == NULL || c == NULL || c->dropping || c->closing)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof why, "%s refused: %s%s", what, rep->str,
			 strcmp(what, "AUTH") == 0 ? " (check redis.password / redis.username)"
						   : " (check redis.db)");
		log_error("redis: %s: %s: %s", c->name, c->where, why);
		claims_drop_soon(c, why);
	}
}

static void
claims_connect_cb(const redisAsyncContext *ac, int status)
{
	struct claims *c = ac->data;

	if (c == NULL)
		return;
	if (status != REDIS_OK) {
		char why[256];

		/* hiredis frees the context when this returns. */
		snprintf(why, sizeof why, "cannot connect: %s", ac->errstr[0] ? ac->errstr : "failed");
		c->ac = NULL;
		claims_connect_failed(c, why);
		return;
	}
	evtimer_del(c->connect_ev);
	c->state = CLAIMS_UP;
	c->backoff = CLAIMS_BACKOFF_FIRST;
	if (c->failure_logged) {
		log_info("redis: %s: connected to %s again", c->name, c->where);
		c->failure_logged = false;
	} else {
		log_debug("redis: %s: connected to %s", c->name, c->where);
	}
}

static void
claims_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct claims *c = ac->data;
	char why[256];

	if (c == NULL || c->dropping || c->closing)
		return;
	/* hiredis frees the context when this returns. */
	c->ac = NULL;
	snprintf(why, sizeof why, "connection lost: %s",
		 status == REDIS_OK || ac->errstr[0] == '\0' ? "closed" : ac->errstr);
	claims_down(c, why);
}

/* Connect to <ip> (NULL: the unix socket), then send AUTH and SELECT. */
static void
claims_start(struct claims *c, const char *ip)
{
	const struct config_redis *rc = c->rc;
	redisAsyncContext *ac;
	struct timeval tv;
	char why[300];

	ac = ip ? redisAsyncConnect(ip, rc->port) : redisAsyncConnectUnix(rc->unix_path);
	if (ac == NULL) {
		claims_down(c, "cannot connect: out of memory");
		return;
	}
	if (ac->err) {
		snprintf(why, sizeof why, "cannot connect: %s", ac->errstr);
		redisAsyncFree(ac);
		claims_connect_failed(c, why);
		return;
	}
	ac->data = c;
	if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
		redisAsyncFree(ac);
		claims_down(c, "cannot connect: the event loop refused the socket");
		return;
	}
	redisAsyncSetConnectCallback(ac, claims_connect_cb);
	redisAsyncSetDisconnectCallback(ac, claims_disconnect_cb);
	c->ac = ac;
	c->state = CLAIMS_CONNECTING;
	tv = timeval_from_seconds(rc->connect_timeout);
	evtimer_add(c->connect_ev, &tv);
	/* Queued now, sent once connected, answered before any claim. */
	if (rc->password != NULL) {
		const char *argv[3] = { "AUTH", rc->username ? rc->username : rc->password,
					rc->password };

		redisAsyncCommandArgv(ac, claims_setup_cb, (void *)(uintptr_t) "AUTH",
				      rc->username ? 3 : 2, argv, NULL);
	}
	if (rc->db != 0) {
		char db[16];
		const char *argv[2] = { "SELECT", db };

		snprintf(db, sizeof db, "%u", rc->db);
		redisAsyncCommandArgv(ac, claims_setup_cb, (void *)(uintptr_t) "SELECT", 2, argv, NULL);
	}
}

static void
claims_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct claims *c = arg;
	char why[300];

	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return; /* the client is gone */
	}
	c->dns_req = NULL;
	if (result != 0 || res == NULL) {
		snprintf(why, sizeof why, "cannot resolve %s: %s", c->rc->host,
			 result != 0 ? evutil_gai_strerror(result) : "no address");
		if (res)
			evutil_freeaddrinfo(res);
		claims_down(c, why);
		return;
	}
	if (c->addrs)
		evutil_freeaddrinfo(c->addrs);
	c->addrs = c->next_addr = res;
	claims_try_next(c, NULL);
}

static void
claims_connect(struct claims *c)
{
	const struct config_redis *rc = c->rc;
	struct in6_addr a6;
	struct in_addr a4;
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;
	char port[8];

	if (rc->unix_path != NULL || inet_pton(AF_INET, rc->host, &a4) == 1 ||
	    inet_pton(AF_INET6, rc->host, &a6) == 1 || c->dns == NULL) {
		claims_start(c, rc->unix_path ? NULL : rc->host);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%u", rc->port);
	c->state = CLAIMS_RESOLVING;
	/* May call back at once (names from /etc/hosts). */
	req = evdns_getaddrinfo(c->dns, rc->host, port, &hints, claims_dns_cb, c);
	if (c->state == CLAIMS_RESOLVING)
		c->dns_req = req;
}

struct claims *
claims_new(struct event_base *base, struct evdns_base *dns, const struct config_redis *rc,
	   const char *name)
{
	struct claims *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->base = base;
	c->dns = dns;
	c->rc = rc;
	c->backoff = CLAIMS_BACKOFF_FIRST;
	TAILQ_INIT(&c->requests);
	snprintf(c->name, sizeof c->name, "%s", name ? name : "client");
	if (rc->unix_path)
		snprintf(c->where, sizeof c->where, "%s", rc->unix_path);
	else
		snprintf(c->where, sizeof c->where, "%s%s%s:%u", strchr(rc->host, ':') ? "[" : "",
			 rc->host, strchr(rc->host, ':') ? "]" : "", rc->port);
	snprintf(c->last_error, sizeof c->last_error, "not connected yet");
	c->retry_ev = evtimer_new(base, claims_retry_cb, c);
	c->connect_ev = evtimer_new(base, claims_connect_timeout_cb, c);
	c->drop_ev = event_new(base, -1, 0, claims_drop_cb, c);
	if (c->retry_ev == NULL || c->connect_ev == NULL || c->drop_ev == NULL) {
		claims_free(c);
		return NULL;
	}
	claims_connect(c);
	return c;
}

void
claims_free(struct claims *c)
{
	struct claims_request *r;

	if (c == NULL)
		return;
	c->closing = true;
	if (c->dns_req)
		evdns_getaddrinfo_cancel(c->dns_req); /* its callback touches nothing */
	if (c->addrs)
		evutil_freeaddrinfo(c->addrs);
	if (c->ac) {
		/* Every pending answer comes back as a NULL reply and frees its
		 * request (no callbacks while closing). */
		c->dropping = true;
		redisAsyncFree(c->ac);
		c->ac = NULL;
	}
	while ((r = TAILQ_FIRST(&c->requests)) != NULL)
		claims_request_free(r);
	if (c->retry_ev)
		event_free(c->retry_ev);
	if (c->connect_ev)
		event_free(c->connect_ev);
	if (c->drop_ev)
		event_free(c->drop_ev);
	free(c);
}

/* ---- claims ------------------------------------------------------------------ */

/* The deadline passed, or (complete) the outcome is ready to deliver. */
static void
claims_request_cb(evutil_socket_t fd, short what, void *arg)
{
	struct claims_request *r = arg;
	struct claims *c = r->c;
	claims_cb cb = r->cb;
	void *cbarg = r->arg;
	enum claims_result result;
	size_t used = r->used_index;
	char error[600];

	if (r->done)
		return;
	r->done = true;
	if (r->complete) {
		result = r->used ? CLAIMS_ALREADY_USED : r->error[0] ? CLAIMS_ERROR : CLAIMS_CLAIMED;
		snprintf(error, sizeof error, "%s", r->error);
		claims_request_free(r);
	} else {
		/* Answers may still come; the request goes with them. */
		result = CLAIMS_ERROR;
		snprintf(error, sizeof error, "%s: no answer within %g s (redis.command_timeout)",
			 c->where, c->rc->command_timeout);
		claims_drop_soon(c, "a command got no answer within redis.command_timeout");
	}
	/* Last: the callback may free the client (and with it this request). */
	cb(result, used, error, cbarg);
}

/* One answer to one SET (they come in the order sent). */
static void
claims_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct claims_request *r = privdata;
	struct claims *c = r->c;
	redisReply *rep = reply;
	size_t index = r->n - r->pending;

	r->pending--;
	if (rep == NULL) {
		if (r->error[0] == '\0')
			snprintf(r->error, sizeof r->error, "%s: %s", c->where,
				 c->dropping && c->drop_reason[0] ? c->drop_reason
				 : ac->errstr[0]		  ? ac->errstr
								  : "connection closed");
	} else if (rep->type == REDIS_REPLY_NIL) {
		if (!r->used) {
			r->used = true;
			r->used_index = index;
		}
	} else if (rep->type == REDIS_REPLY_ERROR) {
		if (r->error[0] == '\0')
			snprintf(r->error, sizeof r->error, "%s answered: %s", c->where, rep->str);
	} else if (!(rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0)) {
		if (r->error[0] == '\0')
			snprintf(r->error, sizeof r->error, "%s: unexpected answer to SET (type %d)",
				 c->where, rep->type);
	}
	if (r->pending > 0)
		return;
	if (r->done || c->closing) {
		claims_request_free(r);
		return;
	}
	/* Deliver from the loop, never from inside hiredis. */
	r->complete = true;
	event_del(r->ev);
	event_active(r->ev, EV_TIMEOUT, 1);
}

struct claims_request *
claims_claim(struct claims *c, const char *const *keys, const int64_t *ttl_ms, size_t n,
	     const char *value, claims_cb cb, void *arg, char *err, size_t errlen)
{
	struct claims_request *r = NULL;
	struct timeval tv;

	if (n == 0 || n > CLAIMS_MAX_KEYS) {
		snprintf(err, errlen, "%zu keys in one claim (1 to %d)", n, CLAIMS_MAX_KEYS);
		return NULL;
	}
	/* Down and waiting out the back-off: try again now, the claim rides on
	 * the attempt.  A server back since the last attempt is used at once
	 * (not up to CLAIMS_BACKOFF_MAX later); one still down refuses it. */
	if (c->state == CLAIMS_DOWN && c->ac == NULL && !c->closing) {
		evtimer_del(c->retry_ev);
		claims_connect(c);
	}
	if (c->ac == NULL || (c->state != CLAIMS_CONNECTING && c->state != CLAIMS_UP) ||
	    c->drop_reason[0] != '\0') {
		snprintf(err, errlen, "%s: not connected (%s)", c->where,
			 c->drop_reason[0] ? c->drop_reason : c->last_error);
		return NULL;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->c = c;
	r->cb = cb;
	r->arg = arg;
	TAILQ_INSERT_TAIL(&c->requests, r, link);
	r->ev = evtimer_new(c->base, claims_request_cb, r);
	if (r->ev == NULL) {
		snprintf(err, errlen, "out of memory");
		claims_request_free(r);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		char key[CLAIMS_MAX_KEY], ttl[24];
		const char *argv[6] = { "SET", key, value ? value : "1", "NX", "PX", ttl };
		int kl = snprintf(key, sizeof key, "%s%s", c->rc->key_prefix, keys[i]);

		if (kl < 0 || (size_t)kl >= sizeof key) {
			snprintf(r->error, sizeof r->error, "key longer than %d bytes", CLAIMS_MAX_KEY);
			break;
		}
		snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms[i] > 0 ? ttl_ms[i] : 1));
		if (redisAsyncCommandArgv(c->ac, claims_reply_cb, r, 6, argv, NULL) != REDIS_OK) {
			snprintf(r->error, sizeof r->error, "%s: the connection is closing", c->where);
			break;
		}
		r->n++;
		r->pending++;
	}
	if (r->n == 0) {
		snprintf(err, errlen, "%s", r->error);
		claims_request_free(r);
		return NULL;
	}
	/* A key that could not be sent fails the claim once the others are in. */
	tv = timeval_from_seconds(c->rc->command_timeout);
	evtimer_add(r->ev, &tv);
	return r;
}

void
claims_cancel(struct claims_request *r)
{
	if (r == NULL)
		return;
	r->done = true;
	event_del(r->ev);
	if (r->complete)
		claims_request_free(r); /* hiredis is done with it */
}

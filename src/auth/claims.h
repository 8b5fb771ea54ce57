/*
 * claims: single-use keys shared by every replica, kept in Redis.  A claim
 * sets each key with "SET <prefix><key> <value> NX PX <ttl>": the first
 * replica to claim a key wins, every later claim of it (at any replica)
 * finds it used, until its TTL ends.  The SAML ACS claims the assertion ID
 * and the AuthnRequest ID of a login this way (auth.c), so an assertion
 * accepted at one replica is refused at every other.
 *
 * One client per worker thread and configuration generation (worker.c),
 * with one hiredis asynchronous connection on the worker's event_base:
 * the host name is resolved with the worker's evdns (never a blocking
 * getaddrinfo on the loop), AUTH and SELECT are sent first on every
 * connection, a lost or failed connection is retried with a growing delay
 * (0.1 s doubling to 5 s; a claim made while waiting retries at once and
 * rides on that attempt), and every claim has a deadline (command
 * timeout): a server that does not answer in time costs the connection,
 * which is made again.  The client never answers "claimed" when it does not
 * know: every failure is CLAIMS_ERROR (fail closed).
 *
 * Everything here runs on the worker's loop; nothing is shared between
 * threads.
 */
#ifndef PORTCULLIS_CLAIMS_H
#define PORTCULLIS_CLAIMS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evdns_base;
struct config_redis;
struct claims;
struct claims_request;

/* The most keys one claim sets. */
#define CLAIMS_MAX_KEYS 4

enum claims_result {
	CLAIMS_CLAIMED,      /* every key was free and is ours now */
	CLAIMS_ALREADY_USED, /* a key was claimed before (its index is given) */
	CLAIMS_ERROR,        /* no answer, an error reply, or no connection */
};

/*
 * The outcome of a claim.  <used>: with CLAIMS_ALREADY_USED, the index of the
 * first key found used.  <error>: with CLAIMS_ERROR, why (for a log line).
 * Called once, from the loop, never from inside claims_claim.
 */
typedef void (*claims_cb)(enum claims_result result, size_t used, const char *error, void *arg);

/*
 * A client of the server in <rc> (borrowed: it must outlive the client) on
 * <base>, resolving names with <dns> (may be NULL for numeric addresses and
 * unix sockets).  <name> appears in log lines ("worker 2").  It starts
 * connecting at once.  NULL when out of memory.
 */
struct claims *claims_new(struct event_base *base, struct evdns_base *dns,
			  const struct config_redis *rc, const char *name);

/* Close the connection and free.  Requests still pending are dropped without
 * their callback (callers cancel theirs first).  Accepts NULL. */
void claims_free(struct claims *c);

/*
 * Claim the <n> keys (1..CLAIMS_MAX_KEYS; the key prefix is put in front),
 * key i for ttl_ms[i] milliseconds (at least 1), storing <value> (for whoever
 * looks with redis-cli: the request reference).  The keys are set in order;
 * a key claimed before a used one stays claimed.  Returns the pending
 * request, whose <cb> runs later, or NULL at once when there is no
 * connection (or no memory), with the reason in <err>.
 */
struct claims_request *claims_claim(struct claims *c, const char *const *keys,
				    const int64_t *ttl_ms, size_t n, const char *value,
				    claims_cb cb, void *arg, char *err, size_t errlen);

/* The caller lost interest (its client hung up): <cb> will not run.  The
 * request's memory goes when the server's answer (or the connection's end)
 * comes in.  Accepts NULL. */
void claims_cancel(struct claims_request *r);

#endif

/* connlimit: open connections in all and per client; see connlimit.h. */
#include "access/connlimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

#define CONNLIMIT_BUCKETS 1024

struct connlimit_client {
	struct connlimit_client *next;
	struct connlimit *cl;
	uint64_t k0, k1;
	uint64_t count;
};

struct connlimit {
	_Atomic uint64_t open;
	pthread_mutex_t lock;
	struct connlimit_client *buckets[CONNLIMIT_BUCKETS];
};

struct connlimit *
connlimit_new(void)
{
	struct connlimit *cl = calloc(1, sizeof(*cl));

	if (cl != NULL)
		pthread_mutex_init(&cl->lock, NULL);
	return cl;
}

void
connlimit_free(struct connlimit *cl)
{
	if (cl == NULL)
		return;
	for (size_t i = 0; i < CONNLIMIT_BUCKETS; i++) {
		while (cl->buckets[i] != NULL) {
			struct connlimit_client *n = cl->buckets[i]->next;

			free(cl->buckets[i]);
			cl->buckets[i] = n;
		}
	}
	pthread_mutex_destroy(&cl->lock);
	free(cl);
}

uint64_t
connlimit_total_take(struct connlimit *cl)
{
	return atomic_fetch_add(&cl->open, 1) + 1;
}

void
connlimit_total_release(struct connlimit *cl)
{
	atomic_fetch_sub(&cl->open, 1);
}

static void
client_key(const struct netaddr *a, uint64_t *k0, uint64_t *k1)
{
	*k0 = a->family == AF_INET ? a->v4 : a->v6[0]; /* IPv6: per /64 */
	*k1 = (uint64_t)a->family;
}

static size_t
bucket(uint64_t k0, uint64_t k1)
{
	uint64_t h = (k0 ^ (k1 << 56)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 54) & (CONNLIMIT_BUCKETS - 1);
}

struct connlimit_client *
connlimit_client_take(struct connlimit *cl, const struct netaddr *a, uint64_t limit)
{
	uint64_t k0, k1;
	struct connlimit_client *c;
	size_t b;

	client_key(a, &k0, &k1);
	b = bucket(k0, k1);
	pthread_mutex_lock(&cl->lock);
	for (c = cl->buckets[b]; c != NULL; c = c->next)
		if (c->k0 == k0 && c->k1 == k1)
			break;
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			goto out;
		c->cl = cl;
		c->k0 = k0;
		c->k1 = k1;
		c->next = cl->buckets[b];
		cl->buckets[b] = c;
	}
	if (limit > 0 && c->count >= limit)
		c = NULL;
	else
		c->count++;
out:
	pthread_mutex_unlock(&cl->lock);
	return c;
}

void
connlimit_client_release(struct connlimit_client *c)
{
	struct connlimit *cl;
	struct connlimit_client **pp;

	if (c == NULL)
		return;
	cl = c->cl;
	pthread_mutex_lock(&cl->lock);
	if (--c->count == 0) {
		for (pp = &cl->buckets[bucket(c->k0, c->k1)]; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == c) {
				*pp = c->next;
				free(c);
				break;
			}
		}
	}
	pthread_mutex_unlock(&cl->lock);
}

struct connlimit_client *
connlimit_take(struct connlimit *cl, const struct netaddr *a, uint64_t max, uint64_t per_client,
	       enum connlimit_refusal *why)
{
	struct connlimit_client *c;

	if (connlimit_total_take(cl) > max) {
		connlimit_total_release(cl);
		*why = CONNLIMIT_MAX;
		return NULL;
	}
	c = connlimit_client_take(cl, a, per_client);
	if (c == NULL) {
		connlimit_total_release(cl);
		*why = per_client > 0 ? CONNLIMIT_PER_CLIENT : CONNLIMIT_NOMEM;
	}
	return c;
}

void
connlimit_put(struct connlimit_client *c)
{
	struct connlimit *cl;

	if (c == NULL)
		return;
	cl = c->cl; /* c may be freed by the release */
	connlimit_client_release(c);
	connlimit_total_release(cl);
}

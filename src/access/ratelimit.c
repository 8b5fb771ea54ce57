/* ratelimit: fixed-size token bucket table; see ratelimit.h. */
#include "access/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

#define RATELIMIT_WAYS 8

struct ratelimit_entry {
	uint64_t k0, k1;
	uint32_t rule;
	bool used;
	double tokens;
	double stamp; /* last refill, also the LRU clock */
};

struct ratelimit_set {
	pthread_mutex_t lock;
	struct ratelimit_entry e[RATELIMIT_WAYS];
};

struct ratelimit {
	struct ratelimit_set *sets;
	size_t nsets; /* power of two */
};

struct ratelimit *
ratelimit_new(size_t capacity)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	size_t nsets = 1;

	if (rl == NULL)
		return NULL;
	while (nsets * RATELIMIT_WAYS < capacity && nsets < ((size_t)1 << 40))
		nsets <<= 1;
	rl->sets = calloc(nsets, sizeof(*rl->sets));
	if (rl->sets == NULL) {
		free(rl);
		return NULL;
	}
	rl->nsets = nsets;
	for (size_t i = 0; i < nsets; i++)
		pthread_mutex_init(&rl->sets[i].lock, NULL);
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	for (size_t i = 0; i < rl->nsets; i++)
		pthread_mutex_destroy(&rl->sets[i].lock);
	free(rl->sets);
	free(rl);
}

size_t
ratelimit_capacity(const struct ratelimit *rl)
{
	return rl == NULL ? 0 : rl->nsets * RATELIMIT_WAYS;
}

/* splitmix64 finaliser: spreads keys that differ in few bits. */
static uint64_t
ratelimit_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

bool
ratelimit_take(struct ratelimit *rl, uint64_t k0, uint64_t k1, uint32_t rule, double rate,
	       double burst, double now, double *wait)
{
	uint64_t h = ratelimit_mix(k0 ^ ratelimit_mix(k1 ^ ((uint64_t)rule << 32 | rule)));
	struct ratelimit_set *set = &rl->sets[h & (rl->nsets - 1)];
	struct ratelimit_entry *hit = NULL, *victim = NULL;
	bool ok;

	pthread_mutex_lock(&set->lock);
	for (int i = 0; i < RATELIMIT_WAYS; i++) {
		struct ratelimit_entry *e = &set->e[i];

		if (e->used && e->k0 == k0 && e->k1 == k1 && e->rule == rule) {
			hit = e;
			break;
		}
		if (victim == NULL || !e->used || (victim->used && e->stamp < victim->stamp))
			victim = e;
	}
	if (hit == NULL) {
		hit = victim;
		hit->used = true;
		hit->k0 = k0;
		hit->k1 = k1;
		hit->rule = rule;
		hit->tokens = burst;
		hit->stamp = now;
	} else if (now > hit->stamp) {
		hit->tokens += (now - hit->stamp) * rate;
		if (hit->tokens > burst)
			hit->tokens = burst;
		hit->stamp = now;
	}
	ok = hit->tokens >= 1.0;
	if (ok)
		hit->tokens -= 1.0;
	else if (wait != NULL)
		*wait = (1.0 - hit->tokens) / rate;
	pthread_mutex_unlock(&set->lock);
	return ok;
}

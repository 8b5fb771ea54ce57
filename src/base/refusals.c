/* refusals: a small ring of recent refusals; see refusals.h. */
#include "base/refusals.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t refusals_lock = PTHREAD_MUTEX_INITIALIZER;
static struct refusal ring[REFUSALS_KEPT];
static size_t next_slot; /* where the next one goes */
static size_t kept;      /* how many slots hold one */

static void
copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = src ? strnlen(src, size - 1) : 0;

	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

void
refusals_record(double when, int status, const char *client, const char *rule, const char *path)
{
	struct refusal r;

	r.when = when;
	r.status = status;
	copy_cut(r.client, sizeof(r.client), client);
	copy_cut(r.rule, sizeof(r.rule), rule);
	copy_cut(r.path, sizeof(r.path), path);
	pthread_mutex_lock(&refusals_lock);
	ring[next_slot] = r;
	next_slot = (next_slot + 1) % REFUSALS_KEPT;
	if (kept < REFUSALS_KEPT)
		kept++;
	pthread_mutex_unlock(&refusals_lock);
}

size_t
refusals_snapshot(struct refusal *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&refusals_lock);
	n = kept < max ? kept : max;
	for (size_t i = 0; i < n; i++)
		out[i] = ring[(next_slot + REFUSALS_KEPT - 1 - i) % REFUSALS_KEPT];
	pthread_mutex_unlock(&refusals_lock);
	return n;
}

/* memtrim: return freed heap memory when idle; see memtrim.h. */
#include "core/memtrim.h"

#include <event2/event.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "base/metrics.h"
#include "base/timeutil.h"

struct memtrim {
	struct event *timer;
	size_t min_free;
};

#ifdef __GLIBC__
static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct memtrim *m = arg;
	struct mallinfo2 mi;

	(void)fd;
	(void)what;
	if (metrics_get(METRIC_IN_FLIGHT) > 0)
		return; /* working: keep what the next requests will reuse */
	mi = mallinfo2(); /* every arena */
	if (mi.fordblks >= m->min_free)
		malloc_trim(0);
}
#endif

struct memtrim *
memtrim_start(struct event_base *base, double seconds, size_t min_free)
{
#ifdef __GLIBC__
	struct memtrim *m = calloc(1, sizeof(*m));
	struct timeval tv = timeval_from_seconds(seconds);

	if (m == NULL)
		return NULL;
	m->min_free = min_free;
	m->timer = event_new(base, -1, EV_PERSIST, tick, m);
	if (m->timer == NULL || event_add(m->timer, &tv) < 0) {
		memtrim_free(m);
		return NULL;
	}
	return m;
#else
	(void)base;
	(void)seconds;
	(void)min_free;
	return NULL;
#endif
}

void
memtrim_free(struct memtrim *m)
{
	if (m == NULL)
		return;
	if (m->timer)
		event_free(m->timer);
	free(m);
}

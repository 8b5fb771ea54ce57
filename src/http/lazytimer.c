/* lazytimer: deadlines moved without touching the timer heap; see lazytimer.h. */
#include "http/lazytimer.h"

#include <time.h>

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
arm_in(struct lazytimer *t, int64_t in_us)
{
	struct timeval tv = { .tv_sec = (time_t)(in_us / 1000000),
			      .tv_usec = (suseconds_t)(in_us % 1000000) };

	evtimer_add(t->ev, &tv);
	t->fires_us = t->deadline_us;
}

int
lazytimer_init(struct lazytimer *t, struct event_base *base, event_callback_fn cb, void *arg)
{
	t->ev = evtimer_new(base, cb, arg);
	t->armed = false;
	return t->ev != NULL ? 0 : -1;
}

void
lazytimer_free(struct lazytimer *t)
{
	if (t->ev != NULL)
		event_free(t->ev);
	t->ev = NULL;
	t->armed = false;
}

void
lazytimer_set(struct lazytimer *t, const struct timeval *in)
{
	int64_t in_us = (int64_t)in->tv_sec * 1000000 + in->tv_usec;

	t->deadline_us = now_us() + in_us;
	t->armed = true;
	/* A pending timer due no later than the new deadline will do: when it
	 * fires, lazytimer_fired re-arms it for the rest. */
	if (evtimer_pending(t->ev, NULL) && t->fires_us <= t->deadline_us)
		return;
	arm_in(t, in_us);
}

void
lazytimer_stop(struct lazytimer *t)
{
	t->armed = false;
}

bool
lazytimer_armed(const struct lazytimer *t)
{
	return t->armed;
}

bool
lazytimer_fired(struct lazytimer *t)
{
	int64_t left;

	if (!t->armed)
		return false;
	left = t->deadline_us - now_us();
	if (left > 0) {
		arm_in(t, left);
		return false;
	}
	t->armed = false;
	return true;
}

/* Unit tests of lazytimer on a real event base: a deadline moved later or
 * cancelled does not act early, one moved earlier acts at the earlier time,
 * and a stale wake-up re-arms itself for what is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "http/lazytimer.h"

struct probe {
	struct lazytimer t;
	struct event_base *base;
	int wakeups;  /* callback runs */
	int fired;    /* ... that lazytimer_fired said were due */
	int64_t fired_at_ms;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;

	(void)fd;
	(void)what;
	p->wakeups++;
	if (!lazytimer_fired(&p->t))
		return;
	p->fired++;
	p->fired_at_ms = now_ms();
}

static int
setup(void **state)
{
	static struct probe p;

	memset(&p, 0, sizeof p);
	p.base = event_base_new();
	if (p.base == NULL || lazytimer_init(&p.t, p.base, probe_cb, &p) < 0)
		return -1;
	*state = &p;
	return 0;
}

static int
teardown(void **state)
{
	struct probe *p = *state;

	lazytimer_free(&p->t);
	lazytimer_free(&p->t); /* twice is harmless */
	event_base_free(p->base);
	return 0;
}

static const struct timeval ms20 = { 0, 20000 }, ms80 = { 0, 80000 };

static void
test_fires_once_when_due(void **state)
{
	struct probe *p = *state;
	int64_t start = now_ms();

	assert_false(lazytimer_armed(&p->t));
	lazytimer_set(&p->t, &ms20);
	assert_true(lazytimer_armed(&p->t));
	event_base_dispatch(p->base);
	assert_int_equal(p->fired, 1);
	assert_true(p->fired_at_ms - start >= 19);
	assert_false(lazytimer_armed(&p->t));
}

static void
test_moved_later_waits_for_the_later_deadline(void **state)
{
	struct probe *p = *state;
	int64_t start = now_ms();

	lazytimer_set(&p->t, &ms20);
	lazytimer_set(&p->t, &ms80); /* the heap still holds 20 ms */
	event_base_dispatch(p->base);
	assert_int_equal(p->fired, 1);
	assert_in_range(p->wakeups, 1, 2); /* 2: the stale one re-armed for the rest */
	assert_true(p->fired_at_ms - start >= 79);
}

static void
test_moved_earlier_acts_at_the_earlier_deadline(void **state)
{
	struct probe *p = *state;
	const struct timeval ms50 = { 0, 50000 };

	lazytimer_set(&p->t, &ms80);
	lazytimer_set(&p->t, &ms20);
	/* The loop's own 50 ms timer runs after a timer due at 20 ms and
	 * before one due at 80 ms, however busy the machine. */
	event_base_loopexit(p->base, &ms50);
	event_base_dispatch(p->base);
	assert_int_equal(p->fired, 1);
	assert_int_equal(p->wakeups, 1);
}

static void
test_stopped_never_acts(void **state)
{
	struct probe *p = *state;

	lazytimer_set(&p->t, &ms20);
	lazytimer_stop(&p->t);
	assert_false(lazytimer_armed(&p->t));
	event_base_dispatch(p->base); /* the stale wake-up ends the loop */
	assert_int_equal(p->wakeups, 1);
	assert_int_equal(p->fired, 0);
}

static void
test_set_again_after_stop_and_fire(void **state)
{
	struct probe *p = *state;

	lazytimer_set(&p->t, &ms20);
	lazytimer_stop(&p->t);
	lazytimer_set(&p->t, &ms20); /* reuses the pending timer */
	event_base_dispatch(p->base);
	assert_int_equal(p->fired, 1);
	lazytimer_set(&p->t, &ms20); /* not pending any more: armed afresh */
	event_base_dispatch(p->base);
	assert_int_equal(p->fired, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fires_once_when_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_moved_later_waits_for_the_later_deadline, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_moved_earlier_acts_at_the_earlier_deadline, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stopped_never_acts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_again_after_stop_and_fire, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

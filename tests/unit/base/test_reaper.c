/*
 * Unit tests for reaper: before reaper_start and after reaper_stop a job runs
 * at once on the caller's thread; while it runs, jobs run on its thread in
 * the order given, the caller does not wait for them (a job blocked on a
 * lock the caller holds does not block reaper_defer), and reaper_stop runs
 * every job still queued before it returns.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/reaper.h"

struct record {
	pthread_t thread;
	int order;
};

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static int ran;

static void
note(void *arg)
{
	struct record *r = arg;

	r->thread = pthread_self();
	r->order = ++ran;
}

static void
wait_for_gate(void *arg)
{
	pthread_mutex_lock(&gate);
	pthread_mutex_unlock(&gate);
	note(arg);
}

/* A job handed over now runs before reaper_defer returns, on this thread. */
static void
assert_runs_inline(void)
{
	struct record r = {0};

	ran = 0;
	reaper_defer(note, &r);
	assert_int_equal(r.order, 1);
	assert_true(pthread_equal(r.thread, pthread_self()));
}

static void
test_inline_when_not_running(void **state)
{
	(void)state;
	assert_runs_inline();
}

static void
test_runs_elsewhere_in_order_without_waiting(void **state)
{
	struct record r[3] = {{0}};

	(void)state;
	ran = 0;
	assert_int_equal(reaper_start(), 0);
	pthread_mutex_lock(&gate);
	/* The first job blocks on the gate we hold: handing over must not wait. */
	reaper_defer(wait_for_gate, &r[0]);
	reaper_defer(note, &r[1]);
	reaper_defer(note, &r[2]);
	assert_int_equal(r[0].order, 0);
	pthread_mutex_unlock(&gate);
	reaper_stop();
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].order, i + 1);
		assert_false(pthread_equal(r[i].thread, pthread_self()));
	}
}

static void
test_inline_after_stop(void **state)
{
	(void)state;
	assert_runs_inline();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inline_when_not_running),
		cmocka_unit_test(test_runs_elsewhere_in_order_without_waiting),
		cmocka_unit_test(test_inline_after_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

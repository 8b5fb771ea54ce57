/* Unit tests for ratelimit: token buckets in a fixed-size table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "access/ratelimit.h"

static void
test_burst_then_refill(void **state)
{
	struct ratelimit *rl = ratelimit_new(1024);
	double wait = 0;

	(void)state;
	assert_non_null(rl);
	/* burst 3 at 2/s: three at once, the fourth waits half a second */
	assert_true(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 100.0, &wait));
	assert_true(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 100.0, &wait));
	assert_true(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 100.0, &wait));
	assert_false(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 100.0, &wait));
	assert_true(wait > 0.49 && wait < 0.51);
	assert_false(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 100.25, &wait));
	assert_true(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 100.5, &wait));
	/* a long pause refills to the burst, not beyond */
	for (int i = 0; i < 3; i++)
		assert_true(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 1000.0, &wait));
	assert_false(ratelimit_take(rl, 1, 0, 7, 2.0, 3.0, 1000.0, &wait));
	ratelimit_free(rl);
}

static void
test_keys_and_rules_are_separate(void **state)
{
	struct ratelimit *rl = ratelimit_new(1024);

	(void)state;
	assert_true(ratelimit_take(rl, 1, 0, 1, 1.0, 1.0, 5.0, NULL));
	assert_false(ratelimit_take(rl, 1, 0, 1, 1.0, 1.0, 5.0, NULL));
	assert_true(ratelimit_take(rl, 2, 0, 1, 1.0, 1.0, 5.0, NULL)); /* other client */
	assert_true(ratelimit_take(rl, 1, 1, 1, 1.0, 1.0, 5.0, NULL)); /* other family */
	assert_true(ratelimit_take(rl, 1, 0, 2, 1.0, 1.0, 5.0, NULL)); /* other rule */
	ratelimit_free(rl);
}

static void
test_memory_is_bounded(void **state)
{
	struct ratelimit *rl = ratelimit_new(64);
	size_t cap = ratelimit_capacity(rl);

	(void)state;
	assert_true(cap >= 64 && cap <= 128);
	/* A million clients: the table does not grow, and every new client
	 * still gets its first request (an evicted bucket starts full). */
	for (uint64_t k = 0; k < 1000000; k++)
		assert_true(ratelimit_take(rl, k, 0, 1, 1.0, 1.0, 1.0, NULL));
	assert_int_equal(ratelimit_capacity(rl), cap);
	/* The most recent client is still tracked. */
	assert_false(ratelimit_take(rl, 999999, 0, 1, 1.0, 1.0, 1.0, NULL));
	ratelimit_free(rl);
}

static void
test_lru_eviction_keeps_active_clients(void **state)
{
	struct ratelimit *rl = ratelimit_new(8); /* one set of 8 */

	(void)state;
	assert_true(ratelimit_take(rl, 42, 0, 1, 0.001, 1.0, 1.0, NULL));
	for (uint64_t k = 100; k < 107; k++) /* fills the other 7 ways */
		assert_true(ratelimit_take(rl, k, 0, 1, 0.001, 1.0, 2.0, NULL));
	assert_false(ratelimit_take(rl, 42, 0, 1, 0.001, 1.0, 3.0, NULL)); /* touched at 3.0 */
	assert_true(ratelimit_take(rl, 500, 0, 1, 0.001, 1.0, 4.0, NULL)); /* evicts k=100 */
	assert_false(ratelimit_take(rl, 42, 0, 1, 0.001, 1.0, 5.0, NULL)); /* still limited */
	ratelimit_free(rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_keys_and_rules_are_separate),
		cmocka_unit_test(test_memory_is_bounded),
		cmocka_unit_test(test_lru_eviction_keeps_active_clients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

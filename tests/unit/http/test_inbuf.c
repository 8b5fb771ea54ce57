/* Unit tests of inbuf: spares come back last in, first out, only buffers of
 * the standard size are kept, at most INBUF_SPARES per thread, and another
 * thread never gets this one's (ASan sees any overrun or leak). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "http/inbuf.h"

static void
test_spare_comes_back(void **state)
{
	char *a = inbuf_take(), *b;

	(void)state;
	assert_non_null(a);
	memset(a, 'x', INBUF_SIZE); /* the whole size is usable */
	inbuf_give(a, INBUF_SIZE);
	b = inbuf_take();
	assert_ptr_equal(a, b);
	inbuf_give(b, INBUF_SIZE);
	inbuf_give(NULL, INBUF_SIZE);
	inbuf_release_spares();
}

static void
test_grown_buffer_is_freed(void **state)
{
	char *a = inbuf_take(), *keep = inbuf_take(), *b;

	(void)state;
	inbuf_give(keep, INBUF_SIZE); /* the one spare */
	a = realloc(a, 2 * INBUF_SIZE);
	assert_non_null(a);
	memset(a, 'y', 2 * INBUF_SIZE);
	inbuf_give(a, 2 * INBUF_SIZE); /* freed, not kept */
	b = inbuf_take();
	assert_ptr_equal(b, keep);
	inbuf_give(b, INBUF_SIZE);
	inbuf_release_spares();
}

static void
test_at_most_the_cap(void **state)
{
	char *bufs[INBUF_SPARES + 2];

	(void)state;
	for (size_t i = 0; i < INBUF_SPARES + 2; i++)
		assert_non_null(bufs[i] = inbuf_take());
	for (size_t i = 0; i < INBUF_SPARES + 2; i++)
		inbuf_give(bufs[i], INBUF_SIZE); /* the last two are freed */
	for (size_t i = INBUF_SPARES; i-- > 0;)
		assert_ptr_equal(inbuf_take(), bufs[i]);
	for (size_t i = 0; i < INBUF_SPARES; i++)
		inbuf_give(bufs[i], INBUF_SIZE);
	inbuf_release_spares();
}

static void *
other_thread(void *arg)
{
	char *mine = inbuf_take();
	bool same = mine == arg;

	inbuf_give(mine, INBUF_SIZE);
	inbuf_release_spares();
	return same ? arg : NULL;
}

static void
test_spares_are_per_thread(void **state)
{
	char *a = inbuf_take();
	pthread_t t;
	void *same = NULL;

	(void)state;
	inbuf_give(a, INBUF_SIZE);
	assert_int_equal(pthread_create(&t, NULL, other_thread, a), 0);
	assert_int_equal(pthread_join(t, &same), 0);
	assert_null(same);
	assert_ptr_equal(inbuf_take(), a);
	inbuf_give(a, INBUF_SIZE);
	inbuf_release_spares();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spare_comes_back),
		cmocka_unit_test(test_grown_buffer_is_freed),
		cmocka_unit_test(test_at_most_the_cap),
		cmocka_unit_test(test_spares_are_per_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

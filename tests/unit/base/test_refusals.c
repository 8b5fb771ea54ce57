/*
 * Unit tests for refusals: the ring keeps the last REFUSALS_KEPT entries,
 * newest first; long strings are cut to their buffers, NULL ones are "";
 * a snapshot asks for at most what it has room for.  The ring is
 * process-wide, so one test fills it past its size first and the others
 * count on its being full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/refusals.h"

static void
test_empty_then_newest_first(void **state)
{
	struct refusal out[REFUSALS_KEPT + 10];
	char path[32];

	(void)state;
	assert_int_equal(refusals_snapshot(out, REFUSALS_KEPT), 0);
	for (int i = 0; i < REFUSALS_KEPT + 5; i++) {
		snprintf(path, sizeof(path), "/p%d", i);
		refusals_record(1000.0 + i, i % 2 ? 403 : 429, "192.0.2.1", "listeners[0].deny[0]",
				path);
	}
	assert_int_equal(refusals_snapshot(out, REFUSALS_KEPT + 10), REFUSALS_KEPT);
	snprintf(path, sizeof(path), "/p%d", REFUSALS_KEPT + 4);
	assert_string_equal(out[0].path, path);
	assert_true(out[0].when == 1000.0 + REFUSALS_KEPT + 4);
	assert_string_equal(out[REFUSALS_KEPT - 1].path, "/p5"); /* 0..4 overwritten */
	assert_string_equal(out[0].client, "192.0.2.1");
	assert_string_equal(out[0].rule, "listeners[0].deny[0]");
	assert_int_equal(out[0].status, (REFUSALS_KEPT + 4) % 2 ? 403 : 429);
}

static void
test_snapshot_bounded(void **state)
{
	struct refusal out[3];

	(void)state;
	memset(out, 0, sizeof(out));
	refusals_record(5.0, 401, "::1", "sites[0].routes[1].auth", "/a");
	refusals_record(6.0, 403, "::1", "saml.require.any_of[0]", "/b");
	assert_int_equal(refusals_snapshot(out, 2), 2);
	assert_string_equal(out[0].path, "/b");
	assert_string_equal(out[1].path, "/a");
	assert_int_equal(out[1].status, 401);
	assert_int_equal(out[2].status, 0); /* untouched */
}

static void
test_cut_and_null(void **state)
{
	struct refusal out[1];
	char long_path[1000];

	(void)state;
	memset(long_path, 'x', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	refusals_record(7.0, 429, NULL, NULL, long_path);
	assert_int_equal(refusals_snapshot(out, 1), 1);
	assert_string_equal(out[0].client, "");
	assert_string_equal(out[0].rule, "");
	assert_int_equal(strlen(out[0].path), sizeof(out[0].path) - 1);
	assert_memory_equal(out[0].path, long_path, sizeof(out[0].path) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_then_newest_first),
		cmocka_unit_test(test_snapshot_bounded),
		cmocka_unit_test(test_cut_and_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

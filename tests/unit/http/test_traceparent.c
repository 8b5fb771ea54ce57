/*
 * Unit tests for traceparent: the W3C example accepted and written back
 * byte for byte, and every way a version-00 header can be wrong refused
 * (length, version, separators, uppercase and non-hex digits, all-zero ids).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/traceparent.h"

static const char example[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static bool
parses(const char *s)
{
	struct traceparent tp;

	return traceparent_parse(s, strlen(s), &tp);
}

static void
test_valid_round_trip(void **state)
{
	struct traceparent tp;
	char out[TRACEPARENT_LEN + 1], id[33];

	(void)state;
	assert_true(traceparent_parse(example, strlen(example), &tp));
	assert_int_equal(tp.trace_id[0], 0x4b);
	assert_int_equal(tp.trace_id[15], 0x36);
	assert_int_equal(tp.parent_id[0], 0x00);
	assert_int_equal(tp.parent_id[7], 0xb7);
	assert_int_equal(tp.flags, TRACEPARENT_FLAG_SAMPLED);
	traceparent_format(&tp, out);
	assert_string_equal(out, example);
	traceparent_trace_id_hex(&tp, id);
	assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
	assert_true(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
	assert_true(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff"));
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"00",
		/* other versions, and the forbidden ff */
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		/* longer (a future version's fields) or shorter */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
		"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
		/* separators */
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
		/* uppercase and non-hex digits */
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0 ",
		" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
		/* all-zero ids */
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parses(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
}

/* The length is the caller's: a valid header followed by more bytes, or
 * cut short, is refused; a NUL inside is a bad digit. */
static void
test_length_is_exact(void **state)
{
	struct traceparent tp;
	char buf[80];

	(void)state;
	memcpy(buf, example, sizeof(example));
	assert_false(traceparent_parse(buf, TRACEPARENT_LEN - 1, &tp));
	strcat(buf, "x");
	assert_false(traceparent_parse(buf, TRACEPARENT_LEN + 1, &tp));
	assert_true(traceparent_parse(buf, TRACEPARENT_LEN, &tp));
	buf[10] = '\0';
	assert_false(traceparent_parse(buf, TRACEPARENT_LEN, &tp));
	assert_false(traceparent_parse(NULL, 0, &tp));
}

/* A refused header leaves the output as it was. */
static void
test_refusal_leaves_output(void **state)
{
	struct traceparent tp;
	const char *bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";

	(void)state;
	memset(&tp, 0xab, sizeof(tp));
	assert_false(traceparent_parse(bad, strlen(bad), &tp));
	assert_int_equal(tp.trace_id[0], 0xab);
	assert_int_equal(tp.parent_id[0], 0xab);
	assert_int_equal(tp.flags, 0xab);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_round_trip),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_length_is_exact),
		cmocka_unit_test(test_refusal_leaves_output),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

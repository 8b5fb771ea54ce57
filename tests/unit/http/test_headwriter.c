/* Unit tests of headwriter: the bytes and their order are those of plain
 * evbuffer_add calls, whether the head fits the reservation or not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "http/headwriter.h"

/* <b>'s contents must equal <want>. */
static void
assert_contents(struct evbuffer *b, const char *want)
{
	size_t n = evbuffer_get_length(b);
	const char *got = (const char *)evbuffer_pullup(b, -1);

	assert_int_equal(n, strlen(want));
	assert_memory_equal(got, want, n);
}

/* Write the same head with room for <hint> bytes after <before>. */
static void
check_head(size_t hint, const char *before)
{
	struct evbuffer *b = evbuffer_new();
	struct headwriter w;
	char want[512];

	assert_non_null(b);
	evbuffer_add(b, before, strlen(before));
	headwriter_begin(&w, b, hint);
	headwriter_add(&w, "HTTP/1.1 200 OK\r\n", 17);
	headwriter_line(&w, "Content-Type", "text/plain");
	headwriter_line(&w, "X-Long", "0123456789012345678901234567890123456789");
	headwriter_line(&w, "Empty", "");
	headwriter_end(&w);
	headwriter_end(&w); /* twice is harmless */
	evbuffer_add(b, "\r\n", 2);
	snprintf(want, sizeof(want), "%sHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		 "X-Long: 0123456789012345678901234567890123456789\r\nEmpty: \r\n\r\n", before);
	assert_contents(b, want);
	evbuffer_free(b);
}

static void
test_fits(void **state)
{
	(void)state;
	check_head(1024, "");
	check_head(1024, "the previous response's body");
}

static void
test_overflows_in_order(void **state)
{
	(void)state;
	/* Reservations may be larger than asked: small hints still overflow
	 * at some line, and every split keeps the order. */
	for (size_t hint = 1; hint < 200; hint += 7) {
		check_head(hint, "");
		check_head(hint, "x");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fits),
		cmocka_unit_test(test_overflows_in_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

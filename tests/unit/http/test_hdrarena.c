/* Unit tests of hdrarena: header entries in one block per message, accepted
 * and refused exactly like evhttp_add_header, mixed with evhttp's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <cmocka.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "base/poison.h"
#include "http/hdrarena.h"

static void
test_same_refusals_as_evhttp(void **state)
{
	static const char *const values[] = { "ok",	"a\r\n b", "a\r\n\tb", "a\n b",
					       "a\r b",	"a\rb",	   "a\nb",     "a\r\n",
					       "\r\n ", "a\r\n b\r\n c", "a\x01", "a\x7f", "" };
	struct hdrarena *a = malloc(sizeof *a);
	struct evkeyvalq q, ref;

	(void)state;
	assert_non_null(a);
	TAILQ_INIT(&q);
	TAILQ_INIT(&ref);
	hdrarena_init(a);
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
		assert_int_equal(hdrarena_add(a, &q, "K", values[i]),
				 evhttp_add_header(&ref, "K", values[i]));
	assert_int_equal(hdrarena_add(a, &q, "K\r", "v"), -1);
	assert_int_equal(evhttp_add_header(&ref, "K\r", "v"), -1);
	hdrarena_clear_headers(a, &q);
	hdrarena_reset(a);
	evhttp_clear_headers(&ref);
	free(a);
}

/* After a reset, what the arena handed out is unusable for AddressSanitizer
 * (a header read after its request is gone is reported, as after free());
 * what it hands out again is usable.  Without ASan: nothing to see. */
static void
test_reset_poisons_under_asan(void **state)
{
	struct hdrarena *a = malloc(sizeof *a);
	struct evkeyvalq q;
	const char *value;

	(void)state;
	assert_non_null(a);
	TAILQ_INIT(&q);
	hdrarena_init(a);
	assert_int_equal(hdrarena_add(a, &q, "Host", "example.test"), 0);
	value = evhttp_find_header(&q, "Host");
	assert_string_equal(value, "example.test");
	hdrarena_clear_headers(a, &q);
	hdrarena_reset(a);
#ifdef PORTCULLIS_ASAN
	assert_true(__asan_address_is_poisoned(value));
#endif
	assert_int_equal(hdrarena_add(a, &q, "Host", "again.test"), 0);
	value = evhttp_find_header(&q, "Host");
#ifdef PORTCULLIS_ASAN
	assert_false(__asan_address_is_poisoned(value));
#endif
	assert_string_equal(value, "again.test");
	hdrarena_clear_headers(a, &q);
	hdrarena_reset(a);
	free(a);
}

static void
test_large_mixed_remove_copy_reset(void **state)
{
	struct hdrarena *a = malloc(sizeof *a);
	struct evkeyvalq q;
	struct evkeyval *kv;
	char big[5000];

	(void)state;
	assert_non_null(a);
	TAILQ_INIT(&q);
	hdrarena_init(a);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (int i = 0; i < 20; i++) /* past the first block */
		assert_int_equal(hdrarena_add(a, &q, "Big", big), 0);
	assert_int_equal(evhttp_add_header(&q, "Evhttp", "made"), 0);
	assert_int_equal(hdrarena_add(a, &q, "Last", "1"), 0);
	assert_int_equal(strlen(evhttp_find_header(&q, "big")), sizeof big - 1);
	assert_string_equal(evhttp_find_header(&q, "evhttp"), "made");
	assert_string_equal(evhttp_find_header(&q, "last"), "1");
	/* evhttp's entry is freed by evhttp's rules, ours stay in the block */
	assert_int_equal(hdrarena_remove_header(a, &q, "EVHTTP"), 0);
	assert_int_equal(hdrarena_remove_header(a, &q, "EVHTTP"), -1);
	while (hdrarena_remove_header(a, &q, "big") == 0)
		;
	assert_null(evhttp_find_header(&q, "big"));
	assert_string_equal(evhttp_find_header(&q, "last"), "1");
	assert_int_equal(evhttp_add_header(&q, "Evhttp2", "made"), 0);
	kv = TAILQ_LAST(&q, evkeyvalq);
	assert_int_equal(hdrarena_copy(a, &q, kv), 0);
	assert_string_equal(TAILQ_LAST(&q, evkeyvalq)->value, "made");
	hdrarena_clear_headers(a, &q);
	assert_true(TAILQ_EMPTY(&q));
	hdrarena_reset(a);
	assert_int_equal(hdrarena_add(a, &q, "After", "reset"), 0);
	assert_string_equal(evhttp_find_header(&q, "after"), "reset");
	hdrarena_clear_headers(a, &q);
	hdrarena_reset(a);
	hdrarena_reset(NULL);
	free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_refusals_as_evhttp),
		cmocka_unit_test(test_reset_poisons_under_asan),
		cmocka_unit_test(test_large_mixed_remove_copy_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for acceptenc: Accept-Encoding parsing (q-values, case, white
 * space, malformed elements, several header lines) and the choice among the
 * codings offered (quality first, then br > zstd > gzip; identity and "*").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/acceptenc.h"

/* The choice for the header lines <values> (NULL-terminated; none: no
 * header) among <offered>. */
static enum acceptenc_coding
choose(unsigned offered, const char *const *values)
{
	struct acceptenc a;

	acceptenc_init(&a);
	for (size_t i = 0; values[i] != NULL; i++)
		acceptenc_add(&a, values[i]);
	return acceptenc_choose(&a, offered);
}

static void
check(const char *value, unsigned offered, enum acceptenc_coding want)
{
	const char *values[] = { value, NULL };
	enum acceptenc_coding got = choose(offered, values);

	if (got != want)
		fail_msg("Accept-Encoding \"%s\" (offered %u): want %s, got %s", value, offered,
			 acceptenc_name(want) ? acceptenc_name(want) : "identity",
			 acceptenc_name(got) ? acceptenc_name(got) : "identity");
}

static void
test_no_header_is_identity(void **state)
{
	const char *none[] = { NULL };

	(void)state;
	assert_int_equal(choose(ACCEPTENC_ALL, none), ACCEPTENC_IDENTITY);
	check("", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
}

static void
test_server_preference_on_ties(void **state)
{
	(void)state;
	check("gzip, deflate, br, zstd", ACCEPTENC_ALL, ACCEPTENC_BR);
	check("gzip, zstd", ACCEPTENC_ALL, ACCEPTENC_ZSTD);
	check("gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("gzip, br", ACCEPTENC_GZIP | ACCEPTENC_ZSTD, ACCEPTENC_GZIP);
	check("br;q=0.5, zstd;q=0.5, gzip;q=0.5", ACCEPTENC_ALL, ACCEPTENC_BR);
	check("deflate", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
}

static void
test_q_values_honoured(void **state)
{
	(void)state;
	check("br;q=0.5, gzip;q=0.8", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("br;q=0.001, zstd;q=0.002", ACCEPTENC_ALL, ACCEPTENC_ZSTD);
	check("gzip;q=1.0, br;q=0.999", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("GZIP;Q=0.7, Br;q=0.6", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("gzip ; q = 0.7 , br ;q=0.6", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("x-gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP);
}

static void
test_q_zero_refuses(void **state)
{
	(void)state;
	check("br;q=0, gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("gzip;q=0", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
	check("gzip;q=0.000, br;q=0.", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
	check("*, br;q=0", ACCEPTENC_ALL, ACCEPTENC_ZSTD);
	check("*;q=0", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
	/* Offered codings the client refused: identity, never a refused one. */
	check("gzip;q=0, identity;q=0", ACCEPTENC_GZIP, ACCEPTENC_IDENTITY);
}

static void
test_star_and_identity(void **state)
{
	(void)state;
	check("*", ACCEPTENC_ALL, ACCEPTENC_BR);
	check("*", ACCEPTENC_GZIP, ACCEPTENC_GZIP);
	check("*;q=0.5, gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("identity", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
	check("identity;q=1, gzip;q=0.5", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
	check("identity;q=0.5, gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("identity, gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP); /* tie: compress */
	check("gzip;q=0.5", ACCEPTENC_ALL, ACCEPTENC_GZIP);    /* identity not named */
	check("gzip;q=0.5, *;q=0.8", ACCEPTENC_GZIP, ACCEPTENC_IDENTITY);
}

static void
test_malformed_elements_left_out(void **state)
{
	(void)state;
	check("br;q=2, gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("br;q=0.1234, gzip;q=0.1", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("br;q=abc, gzip;q=0.1", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("br;q, gzip;q=0.1", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("br;q=1.5", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
	check(",,, ;q=1, gzip", ACCEPTENC_ALL, ACCEPTENC_GZIP);
	check("brotli, gzipx, zst", ACCEPTENC_ALL, ACCEPTENC_IDENTITY);
	check("gzip;level=9", ACCEPTENC_ALL, ACCEPTENC_GZIP); /* other parameters ignored */
}

static void
test_several_header_lines(void **state)
{
	const char *lines[] = { "gzip;q=0.5", "br;q=0.9", NULL };
	const char *refuse_later[] = { "br", "br;q=0, gzip;q=0.1", NULL };

	(void)state;
	assert_int_equal(choose(ACCEPTENC_ALL, lines), ACCEPTENC_BR);
	/* The same coding twice: the higher quality counts. */
	assert_int_equal(choose(ACCEPTENC_ALL, refuse_later), ACCEPTENC_BR);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(acceptenc_name(ACCEPTENC_GZIP), "gzip");
	assert_string_equal(acceptenc_name(ACCEPTENC_ZSTD), "zstd");
	assert_string_equal(acceptenc_name(ACCEPTENC_BR), "br");
	assert_null(acceptenc_name(ACCEPTENC_IDENTITY));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_header_is_identity),
		cmocka_unit_test(test_server_preference_on_ties),
		cmocka_unit_test(test_q_values_honoured),
		cmocka_unit_test(test_q_zero_refuses),
		cmocka_unit_test(test_star_and_identity),
		cmocka_unit_test(test_malformed_elements_left_out),
		cmocka_unit_test(test_several_header_lines),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

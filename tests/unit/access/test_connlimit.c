/*
 * Unit tests for connlimit: the total and per-client counts shared by TCP
 * relays and HTTP listeners (IPv6 clients counted per /64).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "access/connlimit.h"

static struct netaddr
addr(const char *text)
{
	struct netaddr a;

	assert_int_equal(netaddr_parse(text, &a), 0);
	return a;
}

static void
test_per_client_and_total(void **state)
{
	struct connlimit *cl = connlimit_new();
	struct netaddr a = addr("192.0.2.1"), b = addr("192.0.2.2");
	enum connlimit_refusal why = CONNLIMIT_NOMEM;
	struct connlimit_client *s1, *s2, *s3, *s4;

	(void)state;
	assert_non_null(cl);
	s1 = connlimit_take(cl, &a, 3, 2, &why);
	s2 = connlimit_take(cl, &a, 3, 2, &why);
	assert_non_null(s1);
	assert_ptr_equal(s1, s2); /* one entry per client */
	assert_null(connlimit_take(cl, &a, 3, 2, &why));
	assert_int_equal(why, CONNLIMIT_PER_CLIENT);
	s3 = connlimit_take(cl, &b, 3, 2, &why);
	assert_non_null(s3);
	assert_null(connlimit_take(cl, &b, 3, 2, &why)); /* 3 open in all */
	assert_int_equal(why, CONNLIMIT_MAX);
	connlimit_put(s1);
	s4 = connlimit_take(cl, &b, 3, 2, &why);
	assert_non_null(s4);
	connlimit_put(s2);
	connlimit_put(s3);
	connlimit_put(s4);
	connlimit_put(NULL);
	/* everything given back: the full limits again */
	assert_non_null(s1 = connlimit_take(cl, &a, 1, 0, &why));
	connlimit_put(s1);
	connlimit_free(cl);
}

static void
test_ipv6_per_64(void **state)
{
	struct connlimit *cl = connlimit_new();
	struct netaddr a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2::ffff"),
		       c = addr("2001:db8:1:3::1");
	enum connlimit_refusal why;
	struct connlimit_client *s1, *s2;

	(void)state;
	s1 = connlimit_take(cl, &a, 100, 1, &why);
	assert_non_null(s1);
	assert_null(connlimit_take(cl, &b, 100, 1, &why)); /* same /64 */
	s2 = connlimit_take(cl, &c, 100, 1, &why);
	assert_non_null(s2);
	connlimit_put(s1);
	connlimit_put(s2);
	connlimit_free(cl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_client_and_total),
		cmocka_unit_test(test_ipv6_per_64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

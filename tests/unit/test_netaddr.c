/*
 * Unit tests for netaddr: address parsing and formatting, sockaddr round
 * trips, the one CIDR parser (prefix bounds, host bits, IPv4-mapped
 * entries, error reasons) and country codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "access/netaddr.h"

static void
test_parse_format(void **state)
{
	static const struct {
		const char *in, *out;
		int family;
	} cases[] = {
		{ "10.1.1.5", "10.1.1.5", AF_INET },
		{ "2001:db8::1", "2001:db8::1", AF_INET6 },
		{ "::ffff:10.1.1.5", "10.1.1.5", AF_INET }, /* mapped: stored as IPv4 */
		{ "::1", "::1", AF_INET6 },
	};
	static const char *const bad[] = { "", "10.1.1", "010.1.1.5", " 10.1.1.5", "fe80::1%eth0",
					   "10.1.1.5/32", "example.org" };
	struct netaddr a;
	char text[INET6_ADDRSTRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(netaddr_parse(cases[i].in, &a), 0);
		assert_int_equal(a.family, cases[i].family);
		netaddr_format(&a, text, sizeof text);
		assert_string_equal(text, cases[i].out);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(netaddr_parse(bad[i], &a), -1);
		assert_int_equal(a.family, 0);
	}
	assert_int_equal(netaddr_parse(NULL, &a), -1);
}

static void
test_sockaddr(void **state)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	struct sockaddr_storage ss;
	struct netaddr a, b;

	(void)state;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.7", &sin6.sin6_addr), 1);
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&sin6, &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.v4, 0xc0000207u);
	assert_int_equal(netaddr_to_sockaddr(&a, &ss), sizeof(struct sockaddr_in));
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&ss, &b), 0);
	assert_memory_equal(&a, &b, sizeof a);

	assert_int_equal(netaddr_parse("2001:db8::42", &a), 0);
	assert_int_equal(netaddr_to_sockaddr(&a, &ss), sizeof(struct sockaddr_in6));
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&ss, &b), 0);
	assert_memory_equal(&a, &b, sizeof a);

	memset(&a, 0, sizeof a);
	assert_int_equal(netaddr_to_sockaddr(&a, &ss), 0);
	assert_int_equal(netaddr_from_sockaddr(NULL, &a), -1);
}

static void
test_cidr(void **state)
{
	struct netaddr_cidr c;
	struct netaddr a;
	const char *why = NULL;

	(void)state;
	assert_int_equal(netaddr_cidr_parse("10.1.1.7/24", &c, &why), 0); /* host bits masked */
	assert_int_equal(c.net.family, AF_INET);
	assert_int_equal(c.prefix, 24);
	assert_int_equal(c.net.v4, 0x0a010100u);
	assert_int_equal(netaddr_parse("10.1.1.200", &a), 0);
	assert_true(netaddr_cidr_contains(&c, &a));
	assert_int_equal(netaddr_parse("10.1.2.1", &a), 0);
	assert_false(netaddr_cidr_contains(&c, &a));

	assert_int_equal(netaddr_cidr_parse("0.0.0.0/0", &c, &why), 0);
	assert_true(netaddr_cidr_contains(&c, &a));
	assert_int_equal(netaddr_cidr_parse("10.1.2.1", &c, &why), 0); /* bare: /32 */
	assert_int_equal(c.prefix, 32);
	assert_true(netaddr_cidr_contains(&c, &a));

	assert_int_equal(netaddr_cidr_parse("2001:db8::/32", &c, &why), 0);
	assert_int_equal(c.net.family, AF_INET6);
	assert_int_equal(netaddr_parse("2001:db8:ffff::1", &a), 0);
	assert_true(netaddr_cidr_contains(&c, &a));
	assert_int_equal(netaddr_parse("2001:db9::1", &a), 0);
	assert_false(netaddr_cidr_contains(&c, &a));
	assert_int_equal(netaddr_cidr_parse("2001:db8::1:0:0:1/127", &c, &why), 0);
	assert_int_equal(c.prefix, 127);
	assert_int_equal(c.net.v6[1], 0x0001000000000000ull); /* low bit cleared */

	/* IPv4-mapped: /96 and longer fold to IPv4, shorter stays IPv6 */
	assert_int_equal(netaddr_cidr_parse("::ffff:10.0.0.0/104", &c, &why), 0);
	assert_int_equal(c.net.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_int_equal(netaddr_parse("10.9.9.9", &a), 0);
	assert_true(netaddr_cidr_contains(&c, &a));
	assert_int_equal(netaddr_cidr_parse("::ffff:10.0.0.0/95", &c, &why), 0);
	assert_int_equal(c.net.family, AF_INET6);
	assert_false(netaddr_cidr_contains(&c, &a));
	assert_int_equal(netaddr_cidr_parse("::/0", &c, &why), 0);
	assert_false(netaddr_cidr_contains(&c, &a)); /* no IPv4 client */

	assert_int_equal(netaddr_cidr_parse("10.0.0.0/33", &c, &why), -1);
	assert_string_equal(why, "prefix length must be 0..32");
	assert_int_equal(netaddr_cidr_parse("::/129", &c, &why), -1);
	assert_string_equal(why, "prefix length must be 0..128");
	assert_int_equal(netaddr_cidr_parse("::ffff:10.0.0.0/200", &c, &why), -1);
	assert_string_equal(why, "prefix length must be 0..128");
	assert_int_equal(netaddr_cidr_parse("10.0.0.0/", &c, &why), -1);
	assert_string_equal(why, "prefix length must be 0..32");
	assert_int_equal(netaddr_cidr_parse("10.0.0.0/0008", &c, &why), -1);
	assert_int_equal(netaddr_cidr_parse("10.0.0.0/+8", &c, &why), -1);
	assert_int_equal(netaddr_cidr_parse("/8", &c, &why), -1);
	assert_string_equal(why, "not an IPv4 or IPv6 address");
	assert_int_equal(netaddr_cidr_parse("10.0.0/8", &c, &why), -1);
	assert_string_equal(why, "not an IPv4 or IPv6 address");
	assert_int_equal(netaddr_cidr_parse("", &c, &why), -1);
}

static void
test_country(void **state)
{
	(void)state;
	assert_int_equal(netaddr_country_parse("DE"), ('D' << 8) | 'E');
	assert_int_equal(netaddr_country_parse("de"), ('D' << 8) | 'E');
	assert_int_equal(netaddr_country_parse("D"), 0);
	assert_int_equal(netaddr_country_parse("DEU"), 0);
	assert_int_equal(netaddr_country_parse("1E"), 0);
	assert_int_equal(netaddr_country_parse(""), 0);
	assert_int_equal(netaddr_country_parse(NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_country),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

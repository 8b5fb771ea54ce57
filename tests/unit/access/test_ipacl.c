/*
 * Unit tests for ipacl: parsing and error messages, IPv4 and IPv6 prefix
 * boundaries, IPv4-mapped addresses on both sides, sockaddr lookups.
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
#include <sys/un.h>

#include <cmocka.h>

#include "access/ipacl.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct ipacl *
acl_of(const char *const *cidrs, size_t n)
{
	char err[256] = "untouched";
	struct ipacl *acl = ipacl_new(cidrs, n, err, sizeof(err));

	if (acl == NULL)
		fail_msg("ipacl_new failed: %s", err);
	assert_string_equal(err, "");
	return acl;
}

struct in_case {
	const char *addr;
	bool in;
};

static void
run_in_cases(const struct ipacl *acl, const char *label, const struct in_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ipacl_contains_str(acl, cases[i].addr) != cases[i].in)
			fail_msg("%s: \"%s\" should%s be in the set", label, cases[i].addr,
				 cases[i].in ? "" : " not");
	}
}

static void
test_ipv4(void **state)
{
	static const char *const cidrs[] = { "10.0.0.0/8", "192.168.1.1", "172.16.0.0/12",
					     "198.51.100.128/25" };
	static const struct in_case cases[] = {
		{ "10.0.0.0", true },
		{ "10.1.2.3", true },
		{ "10.255.255.255", true },
		{ "9.255.255.255", false },
		{ "11.0.0.0", false },
		{ "192.168.1.1", true },
		{ "192.168.1.2", false },
		{ "192.168.1.0", false },
		{ "172.16.0.1", true },
		{ "172.31.255.255", true },
		{ "172.32.0.0", false },
		{ "172.15.255.255", false },
		{ "198.51.100.128", true },
		{ "198.51.100.255", true },
		{ "198.51.100.127", false },
		{ "203.0.113.5", false },
		/* IPv4-mapped clients are the IPv4 address they carry */
		{ "::ffff:10.1.2.3", true },
		{ "::ffff:a01:203", true },
		{ "::FFFF:192.168.1.1", true },
		{ "::ffff:11.0.0.1", false },
		/* not mapped: IPv4-compatible and NAT64 forms are other addresses */
		{ "::10.1.2.3", false },
		{ "64:ff9b::10.1.2.3", false },
		{ "::1", false },
		/* junk never matches */
		{ "", false },
		{ "10.1.2", false },
		{ "10.1.2.3.4", false },
		{ "010.1.2.3", false },
		{ "10.1.2.3 ", false },
		{ " 10.1.2.3", false },
		{ "10.1.2.3/32", false },
		{ "10.1.2.256", false },
		{ "0x0a.1.2.3", false },
		{ "167838211", false },
		{ "localhost", false },
	};
	struct ipacl *acl = acl_of(cidrs, NELEM(cidrs));

	(void)state;
	assert_int_equal(ipacl_size(acl), 4);
	run_in_cases(acl, "ipv4", cases, NELEM(cases));
	assert_false(ipacl_contains_str(acl, NULL));
	ipacl_free(acl);
}

static void
test_ipv6(void **state)
{
	static const char *const cidrs[] = { "2001:db8::/32", "::1", "fd00:1:2:3::/64",
					     "fe80::/10", "2001:db9:0:1::/65" };
	static const struct in_case cases[] = {
		{ "2001:db8::", true },
		{ "2001:db8::1", true },
		{ "2001:DB8:ffff:ffff:ffff:ffff:ffff:ffff", true },
		{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false },
		{ "2001:db9::", false },
		{ "::1", true },
		{ "0:0:0:0:0:0:0:1", true },
		{ "::2", false },
		{ "::", false },
		{ "fd00:1:2:3::1", true },
		{ "fd00:1:2:3:ffff:ffff:ffff:ffff", true },
		{ "fd00:1:2:4::", false },
		{ "fd00:1:2:2:ffff:ffff:ffff:ffff", false },
		{ "fe80::1", true },
		{ "febf:ffff::1", true },
		{ "fec0::1", false },
		{ "fe7f::1", false },
		/* /65: bit 64 must be 0 */
		{ "2001:db9:0:1::", true },
		{ "2001:db9:0:1:7fff:ffff:ffff:ffff", true },
		{ "2001:db9:0:1:8000::", false },
		{ "2001:db9:0:2::", false },
		/* IPv4 addresses never match IPv6 entries */
		{ "10.0.0.1", false },
		{ "::ffff:10.0.0.1", false },
		{ "fe80::1%lo", false },
		{ "[::1]", false },
		{ "::1/128", false },
	};
	struct ipacl *acl = acl_of(cidrs, NELEM(cidrs));

	(void)state;
	assert_int_equal(ipacl_size(acl), 5);
	run_in_cases(acl, "ipv6", cases, NELEM(cases));
	ipacl_free(acl);
}

static void
test_ipv4_mapped_entries(void **state)
{
	static const char *const cidrs[] = { "::ffff:10.1.1.0/120", "::ffff:203.0.113.7",
					     "::ffff:0:0/96" };
	static const char *const all_mapped[] = { "::ffff:0.0.0.0/96" };
	static const struct in_case cases[] = {
		{ "10.1.1.0", true },
		{ "10.1.1.5", true },
		{ "10.1.1.255", true },
		{ "10.1.2.0", true }, /* via ::ffff:0:0/96 = 0.0.0.0/0 */
		{ "203.0.113.7", true },
		{ "::ffff:10.1.1.5", true },
		{ "2001:db8::1", false },
		{ "::1", false },
	};
	static const char *const narrow[] = { "::ffff:10.1.1.0/120", "::ffff:203.0.113.7" };
	static const struct in_case narrow_cases[] = {
		{ "10.1.1.0", true },
		{ "10.1.1.200", true },
		{ "::ffff:10.1.1.200", true },
		{ "10.1.2.0", false },
		{ "203.0.113.7", true },
		{ "203.0.113.8", false },
		{ "::ffff:203.0.113.8", false },
	};
	struct ipacl *acl = acl_of(cidrs, NELEM(cidrs));
	struct ipacl *acl2 = acl_of(narrow, NELEM(narrow));
	struct ipacl *acl3 = acl_of(all_mapped, 1);

	(void)state;
	run_in_cases(acl, "mapped", cases, NELEM(cases));
	run_in_cases(acl2, "mapped narrow", narrow_cases, NELEM(narrow_cases));
	assert_true(ipacl_contains_str(acl3, "1.2.3.4"));
	assert_true(ipacl_contains_str(acl3, "::ffff:1.2.3.4"));
	assert_false(ipacl_contains_str(acl3, "2001:db8::1"));
	ipacl_free(acl);
	ipacl_free(acl2);
	ipacl_free(acl3);
}

static void
test_zero_and_full_prefixes(void **state)
{
	static const char *const any4[] = { "0.0.0.0/0" };
	static const char *const any6[] = { "::/0" };
	static const char *const one4[] = { "203.0.113.9/32" };
	static const char *const one6[] = { "2001:db8::9/128" };
	static const char *const half6[] = { "8000::/1" };
	static const char *const p127[] = { "2001:db8::2/127" };
	struct ipacl *a4 = acl_of(any4, 1);
	struct ipacl *a6 = acl_of(any6, 1);
	struct ipacl *o4 = acl_of(one4, 1);
	struct ipacl *o6 = acl_of(one6, 1);
	struct ipacl *h6 = acl_of(half6, 1);
	struct ipacl *s127 = acl_of(p127, 1);

	(void)state;
	assert_true(ipacl_contains_str(a4, "0.0.0.0"));
	assert_true(ipacl_contains_str(a4, "255.255.255.255"));
	assert_true(ipacl_contains_str(a4, "::ffff:1.2.3.4"));
	assert_false(ipacl_contains_str(a4, "::1"));
	/* ::/0 is every IPv6 address, not IPv4 (documented in ipacl.c) */
	assert_true(ipacl_contains_str(a6, "::"));
	assert_true(ipacl_contains_str(a6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_false(ipacl_contains_str(a6, "1.2.3.4"));
	assert_false(ipacl_contains_str(a6, "::ffff:1.2.3.4"));
	assert_true(ipacl_contains_str(o4, "203.0.113.9"));
	assert_false(ipacl_contains_str(o4, "203.0.113.8"));
	assert_false(ipacl_contains_str(o4, "203.0.113.10"));
	assert_true(ipacl_contains_str(o6, "2001:db8::9"));
	assert_false(ipacl_contains_str(o6, "2001:db8::8"));
	assert_false(ipacl_contains_str(o6, "2001:db8::a"));
	assert_true(ipacl_contains_str(h6, "8000::"));
	assert_true(ipacl_contains_str(h6, "ffff::1"));
	assert_false(ipacl_contains_str(h6, "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_true(ipacl_contains_str(s127, "2001:db8::2"));
	assert_true(ipacl_contains_str(s127, "2001:db8::3"));
	assert_false(ipacl_contains_str(s127, "2001:db8::4"));
	assert_false(ipacl_contains_str(s127, "2001:db8::1"));
	ipacl_free(a4);
	ipacl_free(a6);
	ipacl_free(o4);
	ipacl_free(o6);
	ipacl_free(h6);
	ipacl_free(s127);
}

static void
test_host_bits_are_masked(void **state)
{
	static const char *const cidrs[] = { "10.1.1.7/24", "2001:db8::1234/64" };
	struct ipacl *acl = acl_of(cidrs, NELEM(cidrs));

	(void)state;
	assert_true(ipacl_contains_str(acl, "10.1.1.0"));
	assert_true(ipacl_contains_str(acl, "10.1.1.200"));
	assert_false(ipacl_contains_str(acl, "10.1.2.7"));
	assert_true(ipacl_contains_str(acl, "2001:db8::ffff"));
	assert_true(ipacl_contains_str(acl, "2001:db8::"));
	assert_false(ipacl_contains_str(acl, "2001:db8:0:1::1234"));
	ipacl_free(acl);
}

struct err_case {
	const char *entry;
	const char *msg; /* expected full error for the entry placed at index 3 */
};

static void
test_errors(void **state)
{
	static const struct err_case cases[] = {
		{ "10.0.0.0/33", "entry 3 \"10.0.0.0/33\": prefix length must be 0..32" },
		{ "10.0.0.0/", "entry 3 \"10.0.0.0/\": prefix length must be 0..32" },
		{ "10.0.0.0/-1", "entry 3 \"10.0.0.0/-1\": prefix length must be 0..32" },
		{ "10.0.0.0/+8", "entry 3 \"10.0.0.0/+8\": prefix length must be 0..32" },
		{ "10.0.0.0/ 8", "entry 3 \"10.0.0.0/ 8\": prefix length must be 0..32" },
		{ "10.0.0.0/8 ", "entry 3 \"10.0.0.0/8 \": prefix length must be 0..32" },
		{ "10.0.0.0/0008", "entry 3 \"10.0.0.0/0008\": prefix length must be 0..32" },
		{ "10.0.0.0/8/8", "entry 3 \"10.0.0.0/8/8\": prefix length must be 0..32" },
		{ "10.0.0.0/0x8", "entry 3 \"10.0.0.0/0x8\": prefix length must be 0..32" },
		{ "10.0.0.0/255.0.0.0", "entry 3 \"10.0.0.0/255.0.0.0\": prefix length must be 0..32" },
		{ "2001:db8::/129", "entry 3 \"2001:db8::/129\": prefix length must be 0..128" },
		{ "::/", "entry 3 \"::/\": prefix length must be 0..128" },
		{ "::ffff:10.0.0.0/129", "entry 3 \"::ffff:10.0.0.0/129\": prefix length must be 0..128" },
		{ "10.0.0/8", "entry 3 \"10.0.0/8\": not an IPv4 or IPv6 address" },
		{ "010.0.0.0/8", "entry 3 \"010.0.0.0/8\": not an IPv4 or IPv6 address" },
		{ "10.0.0.256", "entry 3 \"10.0.0.256\": not an IPv4 or IPv6 address" },
		{ " 10.0.0.0/8", "entry 3 \" 10.0.0.0/8\": not an IPv4 or IPv6 address" },
		{ "", "entry 3 \"\": not an IPv4 or IPv6 address" },
		{ "/8", "entry 3 \"/8\": not an IPv4 or IPv6 address" },
		{ "localhost", "entry 3 \"localhost\": not an IPv4 or IPv6 address" },
		{ "10.0.0.0-10.0.0.255", "entry 3 \"10.0.0.0-10.0.0.255\": not an IPv4 or IPv6 address" },
		{ "fe80::1%eth0/64", "entry 3 \"fe80::1%eth0/64\": not an IPv4 or IPv6 address" },
		{ "[::1]", "entry 3 \"[::1]\": not an IPv4 or IPv6 address" },
		{ "1::2::3", "entry 3 \"1::2::3\": not an IPv4 or IPv6 address" },
		{ "*", "entry 3 \"*\": not an IPv4 or IPv6 address" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		const char *cidrs[] = { "10.1.1.0/24", "::1", "192.0.2.1", cases[i].entry, "10.9.9.9" };
		char err[256] = "";
		struct ipacl *acl = ipacl_new(cidrs, NELEM(cidrs), err, sizeof(err));

		if (acl != NULL)
			fail_msg("entry \"%s\" was accepted", cases[i].entry);
		if (strcmp(err, cases[i].msg) != 0)
			fail_msg("entry \"%s\": got error '%s', want '%s'", cases[i].entry, err,
				 cases[i].msg);
	}
}

static void
test_error_edge_cases(void **state)
{
	char err[256];
	char small[12];
	char longentry[300];
	const char *with_null[] = { "10.0.0.0/8", NULL };
	const char *cidrs[1];

	(void)state;
	assert_null(ipacl_new(with_null, 2, err, sizeof(err)));
	assert_string_equal(err, "entry 1: missing address");
	assert_null(ipacl_new(NULL, 3, err, sizeof(err)));
	assert_true(strlen(err) > 0);
	/* a too small error buffer truncates, never overflows */
	cidrs[0] = "10.0.0.0/33";
	assert_null(ipacl_new(cidrs, 1, small, sizeof(small)));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_null(ipacl_new(cidrs, 1, NULL, 0));
	/* a very long entry is refused and cut short in the message */
	memset(longentry, '1', sizeof(longentry) - 1);
	longentry[sizeof(longentry) - 1] = '\0';
	cidrs[0] = longentry;
	assert_null(ipacl_new(cidrs, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "not an IPv4 or IPv6 address"));
	assert_true(strlen(err) < 150);
}

static void
test_empty_and_null(void **state)
{
	char err[64] = "x";
	struct ipacl *acl = ipacl_new(NULL, 0, err, sizeof(err));
	struct sockaddr_in sin;

	(void)state;
	assert_non_null(acl);
	assert_string_equal(err, "");
	assert_int_equal(ipacl_size(acl), 0);
	assert_false(ipacl_contains_str(acl, "10.0.0.1"));
	assert_false(ipacl_contains_str(acl, "::1"));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_false(ipacl_contains(acl, (const struct sockaddr *)&sin));
	ipacl_free(acl);
	ipacl_free(NULL);
	assert_int_equal(ipacl_size(NULL), 0);
	assert_false(ipacl_contains(NULL, (const struct sockaddr *)&sin));
	assert_false(ipacl_contains_str(NULL, "10.0.0.1"));
}

static void
test_sockaddr(void **state)
{
	static const char *const cidrs[] = { "10.1.1.0/24", "2001:db8::/32" };
	struct ipacl *acl = acl_of(cidrs, NELEM(cidrs));
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un unaddr;
	struct sockaddr_storage ss;

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(443);
	assert_int_equal(inet_pton(AF_INET, "10.1.1.2", &sin.sin_addr), 1);
	assert_true(ipacl_contains(acl, (const struct sockaddr *)&sin));
	assert_int_equal(inet_pton(AF_INET, "10.1.2.2", &sin.sin_addr), 1);
	assert_false(ipacl_contains(acl, (const struct sockaddr *)&sin));

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr), 1);
	assert_true(ipacl_contains(acl, (const struct sockaddr *)&sin6));
	assert_int_equal(inet_pton(AF_INET6, "2001:db9::5", &sin6.sin6_addr), 1);
	assert_false(ipacl_contains(acl, (const struct sockaddr *)&sin6));
	/* a dual-stack socket reports IPv4 clients as mapped addresses */
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.1.77", &sin6.sin6_addr), 1);
	assert_true(ipacl_contains(acl, (const struct sockaddr *)&sin6));
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.77", &sin6.sin6_addr), 1);
	assert_false(ipacl_contains(acl, (const struct sockaddr *)&sin6));

	/* through sockaddr_storage, as accept() fills it */
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &sin, sizeof(sin));
	assert_int_equal(inet_pton(AF_INET, "10.1.1.9", &((struct sockaddr_in *)&ss)->sin_addr), 1);
	assert_true(ipacl_contains(acl, (const struct sockaddr *)&ss));

	memset(&unaddr, 0, sizeof(unaddr));
	unaddr.sun_family = AF_UNIX;
	assert_false(ipacl_contains(acl, (const struct sockaddr *)&unaddr));
	assert_false(ipacl_contains(acl, NULL));
	ipacl_free(acl);
}

static void
test_fifty_entries(void **state)
{
	char bufs[50][48];
	const char *cidrs[50];
	struct ipacl *acl;
	size_t i;
	char addr[48];

	(void)state;
	for (i = 0; i < 25; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "10.%zu.0.0/16", i * 2);
		cidrs[i] = bufs[i];
	}
	for (i = 25; i < 50; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "2001:db8:%zx::/48", i);
		cidrs[i] = bufs[i];
	}
	acl = acl_of(cidrs, 50);
	assert_int_equal(ipacl_size(acl), 50);
	for (i = 0; i < 50; i++) {
		snprintf(addr, sizeof(addr), "10.%zu.3.4", i);
		if (ipacl_contains_str(acl, addr) != (i % 2 == 0))
			fail_msg("%s", addr);
	}
	for (i = 0; i < 80; i++) {
		snprintf(addr, sizeof(addr), "2001:db8:%zx::1", i);
		if (ipacl_contains_str(acl, addr) != (i >= 25 && i < 50))
			fail_msg("%s", addr);
	}
	ipacl_free(acl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_ipv4_mapped_entries),
		cmocka_unit_test(test_zero_and_full_prefixes),
		cmocka_unit_test(test_host_bits_are_masked),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_edge_cases),
		cmocka_unit_test(test_empty_and_null),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_fifty_entries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * ipacl: CIDR sets (see ipacl.h for the contract).
 *
 * Entries are kept in two flat arrays, IPv4 and IPv6, as network/mask pairs
 * in host byte order; a lookup is a plain scan with one AND and one compare
 * per entry (two for IPv6), no allocation.  For the list sizes we see (a few
 * to ~50 entries) that beats anything cleverer.
 *
 * Choices made here, beyond the header:
 *   - Addresses are parsed with inet_pton, which takes only the strict
 *     forms (dotted quad without leading zeros, RFC 4291 text for IPv6); no
 *     zone identifiers, no surrounding spaces.
 *   - Host bits set below the prefix ("10.1.1.7/24") are accepted and
 *     silently masked off: the entry means 10.1.1.0/24.
 *   - A prefix length is 1 to 3 decimal digits, 0..32 for IPv4 and 0..128
 *     for IPv6.
 *   - An IPv4-mapped entry (::ffff:a.b.c.d/n) with n >= 96 becomes the IPv4
 *     entry a.b.c.d/(n - 96).  An IPv6 entry whose prefix is shorter than 96
 *     (such as ::/0) stays IPv6: it does not match IPv4 clients, whether
 *     they arrive as AF_INET or as IPv4-mapped AF_INET6 addresses.
 *   - Errors name the entry by its 0-based index, as in the JSON array:
 *     entry 3 "10.0.0.0/33": prefix length must be 0..32
 */
#include "access/ipacl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ipacl_v4 {
	uint32_t net;
	uint32_t mask;
};

struct ipacl_v6 {
	uint64_t net[2];
	uint64_t mask[2];
};

struct ipacl {
	struct ipacl_v4 *v4;
	size_t n4;
	struct ipacl_v6 *v6;
	size_t n6;
};

static uint32_t
ipacl_v4_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - prefix));
}

static uint64_t
ipacl_u64_mask(unsigned bits)
{
	if (bits == 0)
		return 0;
	if (bits >= 64)
		return UINT64_MAX;
	return UINT64_MAX << (64 - bits);
}

static uint64_t
ipacl_load_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t
ipacl_mapped_v4(const struct in6_addr *a6)
{
	const unsigned char *b = a6->s6_addr;

	return ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) | ((uint32_t)b[14] << 8) |
	       (uint32_t)b[15];
}

static void
ipacl_v6_from_addr(const struct in6_addr *a6, unsigned prefix, struct ipacl_v6 *e)
{
	e->mask[0] = ipacl_u64_mask(prefix >= 64 ? 64 : prefix);
	e->mask[1] = ipacl_u64_mask(prefix > 64 ? prefix - 64 : 0);
	e->net[0] = ipacl_load_be64(a6->s6_addr) & e->mask[0];
	e->net[1] = ipacl_load_be64(a6->s6_addr + 8) & e->mask[1];
}

/*
 * Parse "<digits>" into *prefix, at most <max>.  Returns 0 or -1.
 */
static int
ipacl_parse_prefix(const char *s, unsigned max, unsigned *prefix)
{
	unsigned v = 0;
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[n] - '0');
	}
	if (n == 0 || v > max)
		return -1;
	*prefix = v;
	return 0;
}

/*
 * Parse one entry into <acl>.  Returns 0, or -1 with the reason (without
 * the "entry i" part) in <why>.
 */
static int
ipacl_add(struct ipacl *acl, const char *cidr, const char **why)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	size_t alen = slash != NULL ? (size_t)(slash - cidr) : strlen(cidr);
	struct in_addr a4;
	struct in6_addr a6;
	unsigned prefix;

	if (alen == 0 || alen >= sizeof(addr)) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	memcpy(addr, cidr, alen);
	addr[alen] = '\0';

	if (inet_pton(AF_INET, addr, &a4) == 1) {
		prefix = 32;
		if (slash != NULL && ipacl_parse_prefix(slash + 1, 32, &prefix) < 0) {
			*why = "prefix length must be 0..32";
			return -1;
		}
		acl->v4[acl->n4].mask = ipacl_v4_mask(prefix);
		acl->v4[acl->n4].net = ntohl(a4.s_addr) & acl->v4[acl->n4].mask;
		acl->n4++;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		prefix = 128;
		if (slash != NULL && ipacl_parse_prefix(slash + 1, 128, &prefix) < 0) {
			*why = "prefix length must be 0..128";
			return -1;
		}
		if (IN6_IS_ADDR_V4MAPPED(&a6) && prefix >= 96) {
			acl->v4[acl->n4].mask = ipacl_v4_mask(prefix - 96);
			acl->v4[acl->n4].net = ipacl_mapped_v4(&a6) & acl->v4[acl->n4].mask;
			acl->n4++;
			return 0;
		}
		ipacl_v6_from_addr(&a6, prefix, &acl->v6[acl->n6]);
		acl->n6++;
		return 0;
	}
	*why = "not an IPv4 or IPv6 address";
	return -1;
}

struct ipacl *
ipacl_new(const char *const *cidrs, size_t n, char *err, size_t errlen)
{
	struct ipacl *acl = NULL;
	const char *why = NULL;
	size_t i;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (n > 0 && cidrs == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "no entries given for a list of %zu", n);
		goto fail;
	}
	acl = calloc(1, sizeof(*acl));
	if (acl == NULL)
		goto nomem;
	if (n > 0) {
		acl->v4 = calloc(n, sizeof(*acl->v4));
		acl->v6 = calloc(n, sizeof(*acl->v6));
		if (acl->v4 == NULL || acl->v6 == NULL)
			goto nomem;
	}
	for (i = 0; i < n; i++) {
		if (cidrs[i] == NULL) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "entry %zu: missing address", i);
			goto fail;
		}
		if (ipacl_add(acl, cidrs[i], &why) < 0) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "entry %zu \"%.80s\": %s", i, cidrs[i], why);
			goto fail;
		}
	}
	return acl;

nomem:
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "out of memory");
fail:
	ipacl_free(acl);
	return NULL;
}

void
ipacl_free(struct ipacl *acl)
{
	if (acl == NULL)
		return;
	free(acl->v4);
	free(acl->v6);
	free(acl);
}

static bool
ipacl_has_v4(const struct ipacl *acl, uint32_t a)
{
	size_t i;

	for (i = 0; i < acl->n4; i++) {
		if ((a & acl->v4[i].mask) == acl->v4[i].net)
			return true;
	}
	return false;
}

static bool
ipacl_has_v6(const struct ipacl *acl, const struct in6_addr *a6)
{
	uint64_t hi, lo;
	size_t i;

	if (IN6_IS_ADDR_V4MAPPED(a6))
		return ipacl_has_v4(acl, ipacl_mapped_v4(a6));
	hi = ipacl_load_be64(a6->s6_addr);
	lo = ipacl_load_be64(a6->s6_addr + 8);
	for (i = 0; i < acl->n6; i++) {
		const struct ipacl_v6 *e = &acl->v6[i];

		if ((hi & e->mask[0]) == e->net[0] && (lo & e->mask[1]) == e->net[1])
			return true;
	}
	return false;
}

bool
ipacl_contains(const struct ipacl *acl, const struct sockaddr *sa)
{
	if (acl == NULL || sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		return ipacl_has_v4(acl, ntohl(sin->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		return ipacl_has_v6(acl, &sin6->sin6_addr);
	}
	return false;
}

bool
ipacl_contains_str(const struct ipacl *acl, const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (acl == NULL || addr == NULL)
		return false;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return ipacl_has_v4(acl, ntohl(a4.s_addr));
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return ipacl_has_v6(acl, &a6);
	return false;
}

size_t
ipacl_size(const struct ipacl *acl)
{
	return acl == NULL ? 0 : acl->n4 + acl->n6;
}

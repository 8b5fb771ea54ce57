/*
 * ipacl: CIDR sets (see ipacl.h for the contract).
 *
 * Entries are kept in two flat arrays, IPv4 and IPv6, as network/mask pairs
 * in host byte order; a lookup is a plain scan with one AND and one compare
 * per entry (two for IPv6), no allocation.  For the list sizes we see (a few
 * to ~50 entries) that beats anything cleverer.
 *
 * Entries and addresses are parsed by netaddr.c (netaddr_cidr_parse,
 * netaddr_parse), the one parser the access rules share: strict inet_pton
 * forms, host bits below the prefix masked off, IPv4-mapped entries of /96
 * or longer folded to IPv4, shorter IPv6 entries (such as ::/0) matching no
 * IPv4 client.
 *
 * Choices made here, beyond the header:
 *   - Errors name the entry by its 0-based index, as in the JSON array:
 *     entry 3 "10.0.0.0/33": prefix length must be 0..32
 */
#include "access/ipacl.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "access/netaddr.h"

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

/*
 * Parse one entry into <acl>.  Returns 0, or -1 with the reason (without
 * the "entry i" part) in <why>.
 */
static int
ipacl_add(struct ipacl *acl, const char *cidr, const char **why)
{
	struct netaddr_cidr c;

	if (netaddr_cidr_parse(cidr, &c, why) < 0)
		return -1;
	if (c.net.family == AF_INET) {
		acl->v4[acl->n4].mask = c.mask4;
		acl->v4[acl->n4].net = c.net.v4;
		acl->n4++;
		return 0;
	}
	acl->v6[acl->n6].mask[0] = c.mask6[0];
	acl->v6[acl->n6].mask[1] = c.mask6[1];
	acl->v6[acl->n6].net[0] = c.net.v6[0];
	acl->v6[acl->n6].net[1] = c.net.v6[1];
	acl->n6++;
	return 0;
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

bool
ipacl_contains_addr(const struct ipacl *acl, const struct netaddr *a)
{
	if (acl == NULL || a == NULL)
		return false;
	if (a->family == AF_INET) {
		for (size_t i = 0; i < acl->n4; i++)
			if ((a->v4 & acl->v4[i].mask) == acl->v4[i].net)
				return true;
	} else if (a->family == AF_INET6) {
		for (size_t i = 0; i < acl->n6; i++) {
			const struct ipacl_v6 *e = &acl->v6[i];

			if ((a->v6[0] & e->mask[0]) == e->net[0] && (a->v6[1] & e->mask[1]) == e->net[1])
				return true;
		}
	}
	return false;
}

bool
ipacl_contains(const struct ipacl *acl, const struct sockaddr *sa)
{
	struct netaddr a;

	if (acl == NULL || netaddr_from_sockaddr(sa, &a) < 0)
		return false;
	return ipacl_contains_addr(acl, &a);
}

bool
ipacl_contains_str(const struct ipacl *acl, const char *addr)
{
	struct netaddr a;

	if (acl == NULL || netaddr_parse(addr, &a) < 0)
		return false;
	return ipacl_contains_addr(acl, &a);
}

size_t
ipacl_size(const struct ipacl *acl)
{
	return acl == NULL ? 0 : acl->n4 + acl->n6;
}

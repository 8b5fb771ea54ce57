/*
 * netaddr: one client address type for the access layer, and the one CIDR
 * parser.  An address is parsed once (from text or from a socket address)
 * into struct netaddr; IPv4-mapped IPv6 (::ffff:a.b.c.d) is stored as the
 * IPv4 address it carries.  Also the two-letter country code that GeoIP
 * returns and access rules compare.
 *
 * Pure: no libevent, no allocation, no project include.  Used by ipacl.c
 * (trusted-proxy sets), access.c (allow/deny blocks), geoip.c (lookups and
 * their cache key), access_check.c and tcprelay.c.
 */
#ifndef PORTCULLIS_NETADDR_H
#define PORTCULLIS_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A client address.  Compare field by field; unused fields are zero. */
struct netaddr {
	int family;            /* AF_INET or AF_INET6; 0 = none */
	uint32_t v4;           /* host byte order */
	uint64_t v6[2];        /* host byte order, high then low */
};

/* Parse "10.1.1.5" / "2001:db8::1" / "::ffff:10.1.1.5" (inet_pton's strict
 * forms).  Returns 0, or -1 leaving <out> empty. */
int netaddr_parse(const char *text, struct netaddr *out);

/* From a socket address (AF_INET / AF_INET6).  Returns 0 or -1. */
int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out);

/* Back to a socket address (port 0); returns its length, 0 when empty. */
socklen_t netaddr_to_sockaddr(const struct netaddr *a, struct sockaddr_storage *ss);

/* Text form ("10.1.1.5", "2001:db8::1") into <out> (>= 46 bytes). */
void netaddr_format(const struct netaddr *a, char *out, size_t outlen);

/*
 * A CIDR block: <net> with the host bits cleared, its prefix length and
 * masks.  IPv4 blocks have family AF_INET and use mask4; IPv6 blocks use
 * mask6.  An address <a> of the same family is inside when
 * (a.v4 & mask4) == net.v4, or both halves of v6 match under mask6.
 */
struct netaddr_cidr {
	struct netaddr net;
	unsigned prefix;       /* 0..32 (IPv4) or 0..128 (IPv6) */
	uint32_t mask4;
	uint64_t mask6[2];
};

/*
 * Parse "10.1.1.0/24", "2001:db8::/32" or a bare address (meaning /32 or
 * /128).  Host bits below the prefix are accepted and cleared.  A prefix
 * length is 1 to 3 decimal digits.  An IPv4-mapped entry
 * (::ffff:a.b.c.d/n) with n >= 96 becomes the IPv4 block a.b.c.d/(n - 96);
 * with n < 96 it stays IPv6 and matches no IPv4 client.  Returns 0, or -1
 * with a static reason in *why ("not an IPv4 or IPv6 address",
 * "prefix length must be 0..32", "prefix length must be 0..128").
 */
int netaddr_cidr_parse(const char *text, struct netaddr_cidr *out, const char **why);

/* True when <a> is inside <c>. */
static inline bool
netaddr_cidr_contains(const struct netaddr_cidr *c, const struct netaddr *a)
{
	if (a->family != c->net.family)
		return false;
	if (a->family == AF_INET)
		return (a->v4 & c->mask4) == c->net.v4;
	return (a->v6[0] & c->mask6[0]) == c->net.v6[0] && (a->v6[1] & c->mask6[1]) == c->net.v6[1];
}

/* A country code as two upper-case letters packed in 16 bits; 0 = unknown. */
typedef uint16_t netaddr_country;

/* Parse "DE" / "de" into a country code; 0 when not two ASCII letters. */
netaddr_country netaddr_country_parse(const char *s);

#endif

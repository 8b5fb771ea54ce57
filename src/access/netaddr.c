/* netaddr: addresses, CIDR blocks and country codes; see netaddr.h. */
#include "access/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static uint64_t
netaddr_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* The 16 bytes of <a6> as they are (no IPv4-mapped folding). */
static void
netaddr_raw_v6(const struct in6_addr *a6, struct netaddr *out)
{
	memset(out, 0, sizeof(*out));
	out->family = AF_INET6;
	out->v6[0] = netaddr_be64(a6->s6_addr);
	out->v6[1] = netaddr_be64(a6->s6_addr + 8);
}

static void
netaddr_from_in6(const struct in6_addr *a6, struct netaddr *out)
{
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		const unsigned char *b = a6->s6_addr;

		memset(out, 0, sizeof(*out));
		out->family = AF_INET;
		out->v4 = ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) |
			  ((uint32_t)b[14] << 8) | (uint32_t)b[15];
		return;
	}
	netaddr_raw_v6(a6, out);
}

int
netaddr_parse(const char *text, struct netaddr *out)
{
	struct in_addr a4;
	struct in6_addr a6;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return -1;
	if (inet_pton(AF_INET, text, &a4) == 1) {
		out->family = AF_INET;
		out->v4 = ntohl(a4.s_addr);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1) {
		netaddr_from_in6(&a6, out);
		return 0;
	}
	return -1;
}

int
netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		out->family = AF_INET;
		out->v4 = ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		netaddr_from_in6(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out);
		return 0;
	}
	return -1;
}

socklen_t
netaddr_to_sockaddr(const struct netaddr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(a->v4);
		return sizeof(*sin);
	}
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		for (int i = 0; i < 8; i++) {
			sin6->sin6_addr.s6_addr[i] = (unsigned char)(a->v6[0] >> (56 - 8 * i));
			sin6->sin6_addr.s6_addr[8 + i] = (unsigned char)(a->v6[1] >> (56 - 8 * i));
		}
		return sizeof(*sin6);
	}
	return 0;
}

void
netaddr_format(const struct netaddr *a, char *out, size_t outlen)
{
	struct sockaddr_storage ss;

	out[0] = '\0';
	if (netaddr_to_sockaddr(a, &ss) == 0)
		return;
	if (a->family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outlen);
}

static uint64_t
netaddr_mask64(unsigned bits)
{
	return bits == 0 ? 0 : bits >= 64 ? UINT64_MAX : UINT64_MAX << (64 - bits);
}

/* "<digits>" (1 to 3 of them) into *prefix, at most <max>.  0 or -1. */
static int
netaddr_parse_prefix(const char *s, unsigned max, unsigned *prefix)
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

int
netaddr_cidr_parse(const char *text, struct netaddr_cidr *out, const char **why)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	struct in_addr a4;
	struct in6_addr a6;
	unsigned prefix;

	memset(out, 0, sizeof(*out));
	*why = "not an IPv4 or IPv6 address";
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		prefix = 32;
		if (slash != NULL && netaddr_parse_prefix(slash + 1, 32, &prefix) < 0) {
			*why = "prefix length must be 0..32";
			return -1;
		}
		out->net.family = AF_INET;
		out->net.v4 = ntohl(a4.s_addr);
	} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
		prefix = 128;
		if (slash != NULL && netaddr_parse_prefix(slash + 1, 128, &prefix) < 0) {
			*why = "prefix length must be 0..128";
			return -1;
		}
		if (IN6_IS_ADDR_V4MAPPED(&a6) && prefix >= 96) {
			netaddr_from_in6(&a6, &out->net);
			prefix -= 96;
		} else {
			netaddr_raw_v6(&a6, &out->net);
		}
	} else {
		return -1;
	}
	out->prefix = prefix;
	if (out->net.family == AF_INET) {
		out->mask4 = prefix == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - prefix));
		out->net.v4 &= out->mask4;
	} else {
		out->mask6[0] = netaddr_mask64(prefix >= 64 ? 64 : prefix);
		out->mask6[1] = netaddr_mask64(prefix > 64 ? prefix - 64 : 0);
		out->net.v6[0] &= out->mask6[0];
		out->net.v6[1] &= out->mask6[1];
	}
	*why = NULL;
	return 0;
}

netaddr_country
netaddr_country_parse(const char *s)
{
	char a, b;

	if (s == NULL || s[0] == '\0' || s[1] == '\0' || s[2] != '\0')
		return 0;
	a = s[0] & ~0x20;
	b = s[1] & ~0x20;
	if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z')
		return 0;
	return (netaddr_country)(((unsigned)a << 8) | (unsigned)b);
}

/*
 * ipacl: sets of IPv4 and IPv6 CIDR blocks and the test "is this address in
 * the set".  Pure: no libevent.  IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
 * are treated as the IPv4 address they carry, on both sides.
 *
 * Used for the trusted proxies (server.c, proxy.c, tcprelay.c).  Entries
 * are parsed by netaddr_cidr_parse, the parser the allow/deny blocks of
 * access.c use too.
 */
#ifndef PORTCULLIS_IPACL_H
#define PORTCULLIS_IPACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct ipacl;
struct netaddr;

/*
 * Parse <n> CIDR strings ("10.1.1.0/24", "2001:db8::/32", or a bare address
 * meaning /32 or /128) into a new set owned by the caller.  On failure returns
 * NULL and leaves a one-line reason naming the bad entry (and its index) in
 * <err>.  n == 0 gives an empty set.
 */
struct ipacl *ipacl_new(const char *const *cidrs, size_t n, char *err, size_t errlen);

/* Free a set.  Accepts NULL. */
void ipacl_free(struct ipacl *acl);

/* True when the address is in the set.  NULL <acl> or NULL <sa>: false. */
bool ipacl_contains(const struct ipacl *acl, const struct sockaddr *sa);

/* True when the parsed address is in the set.  NULL <acl> or <a>: false. */
bool ipacl_contains_addr(const struct ipacl *acl, const struct netaddr *a);

/* True when the textual address ("10.1.1.5", "::1") is in the set.  False
 * when <addr> does not parse. */
bool ipacl_contains_str(const struct ipacl *acl, const char *addr);

/* Number of entries in the set. */
size_t ipacl_size(const struct ipacl *acl);

#endif

/*
 * geoip: country and autonomous system of a client address, from MaxMind DB
 * files (GeoLite2-Country / GeoIP2-Country / -City for "country.iso_code",
 * GeoLite2-ASN for "autonomous_system_number"; one file may hold both).
 *
 * A struct geoip is opened when the configuration loads (a missing or
 * corrupt file is a load error) and shared by every worker thread.  The
 * main thread calls geoip_refresh now and then: a file whose inode, size or
 * modification time changed is opened again and swapped in; one that fails
 * to open leaves the last good one in use.  Replace database files by
 * rename (as geoipupdate does), never by rewriting them in place: the open
 * file is memory-mapped.
 *
 * Lookups are cached per thread (a small direct-mapped cache keyed by
 * address and database generation), so the request path seldom touches the
 * database or the lock that guards a swap.
 */
#ifndef PORTCULLIS_GEOIP_H
#define PORTCULLIS_GEOIP_H

#include <stdint.h>
#include <stddef.h>

#include "access/netaddr.h"

struct geoip;

/*
 * Open <country_path> (may be NULL) and <asn_path> (may be NULL; one of the
 * two must be given).  NULL with a reason naming the file in <err>.
 */
struct geoip *geoip_open(const char *country_path, const char *asn_path, char *err,
			 size_t errlen);

/* Close the files and free.  Accepts NULL. */
void geoip_free(struct geoip *g);

/*
 * Look <a> up: *country gets the ISO code (0 when unknown), *asn the AS
 * number (0 when unknown).  Thread-safe.
 */
void geoip_lookup(struct geoip *g, const struct netaddr *a, netaddr_country *country,
		  uint32_t *asn);

/*
 * Re-open each file that changed on disk.  Returns 1 when a database was
 * swapped in, 0 when nothing changed, -1 (with the reason in <err>) when a
 * changed file could not be opened: the previous database stays in use and
 * the same file is not retried until it changes again.
 */
int geoip_refresh(struct geoip *g, char *err, size_t errlen);

#endif

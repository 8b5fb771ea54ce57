/*
 * pathnorm: turns the raw request-target of an HTTP request into the one
 * normalized path that routing matches and the upstream receives, or refuses
 * it.  Pure: no libevent, no allocation beyond the caller's buffer.
 *
 * Normalization, in order (RFC 3986 sections 2.3, 5.2.4, 6.2.2):
 *   - the target must be origin-form ("/..."); the query ("?...") is split
 *     off and kept byte for byte (it is checked only for bytes that may not
 *     appear in a request line); a fragment ("#") is refused;
 *   - percent-encodings of unreserved characters (ALPHA DIGIT - _ ~) are
 *     decoded; other percent-encodings are kept with upper-case hex digits;
 *   - repeated slashes are merged into one;
 *   - "." and ".." segments are removed (".." above the root is refused).
 * Refused as ambiguous (PATHNORM_* codes below): encoded "/" (%2F), "\" (%5C)
 * or "." (%2E), NUL or any control byte raw or encoded, a raw backslash, raw
 * bytes >= 0x80, truncated or non-hex percent-encodings, and encoded bytes
 * >= 0x80 that are not valid shortest-form UTF-8 (overlong, surrogates).
 */
#ifndef PORTCULLIS_PATHNORM_H
#define PORTCULLIS_PATHNORM_H

#include <stddef.h>

enum pathnorm_result {
	PATHNORM_OK = 0,
	PATHNORM_NOT_ORIGIN_FORM,  /* does not start with "/" */
	PATHNORM_FRAGMENT,         /* contains "#" */
	PATHNORM_BAD_ENCODING,     /* truncated or non-hex %, invalid or overlong UTF-8 */
	PATHNORM_ENCODED_SEPARATOR, /* %2F, %5C or %2E */
	PATHNORM_CONTROL,          /* NUL or another control byte, raw or encoded */
	PATHNORM_BACKSLASH,        /* raw "\" */
	PATHNORM_RAW_NON_ASCII,    /* raw byte >= 0x80, or space */
	PATHNORM_ABOVE_ROOT,       /* ".." past "/" */
	PATHNORM_TOO_LONG,         /* does not fit the output buffer */
};

/*
 * Normalize <target> (NUL-terminated request-target).  On PATHNORM_OK,
 * <path> holds the normalized path (NUL-terminated, starts with "/") and
 * *query points into <target> just past the "?" (or is NULL when there is no
 * query).  <pathlen> is the size of <path>; a path that does not fit is
 * PATHNORM_TOO_LONG (strlen(target) + 1 bytes always suffice).  Also refused,
 * as PATHNORM_ENCODED_SEPARATOR: "..;" and ".;" segments (Tomcat reads them
 * as dot segments) and double-encoded separators (%252F, %252E, %255C).
 */
enum pathnorm_result pathnorm_normalize(const char *target, char *path, size_t pathlen,
					const char **query);

/* A short English reason for a result code ("encoded slash, backslash or dot"). */
const char *pathnorm_reason(enum pathnorm_result result);

#endif

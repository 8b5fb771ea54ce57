/*
 * pathnorm: request-target normalization (see pathnorm.h for the contract).
 *
 * The path is processed one segment at a time, left to right, straight into
 * the caller's buffer; the work is linear in the length of the target and
 * nothing is allocated.
 *
 * Choices made here, beyond the header:
 *   - Raw bytes allowed in the path: RFC 3986 pchar and "/", plus the
 *     printable ASCII that browsers encode but curl and others send raw
 *     ('"' '<' '>' '[' ']' '^' '`' '{' '|' '}').  Every backend reads those
 *     the same way, so they are kept as received.  Refused raw: space,
 *     control bytes (< 0x20, 0x7f), "\" and bytes >= 0x80.
 *   - Percent-encodings are decoded only for ALPHA DIGIT "-" "_" "~".  "."
 *     is deliberately not decoded: "%2E" is refused, so a dot segment can
 *     only be spelled with raw dots and decoding can never create one.
 *   - Double-encoded separators ("%252E", "%252F", "%255C", also when spelled
 *     "%25%32E") are refused as encoded separators: a backend that decodes
 *     twice would see a dot or a slash that routing did not.
 *   - A segment that is "." or ".." followed by path parameters (";", raw
 *     or "%3B"), such as "/..;/", is refused as an encoded separator: Tomcat
 *     and Jetty strip the parameters and read it as a dot segment.
 *   - Percent-encoded bytes >= 0x80 must form shortest-form UTF-8 scalar
 *     values (no overlong forms, no surrogates, nothing above U+10FFFF); a
 *     sequence must consist of consecutive percent-encoded bytes.  They stay
 *     encoded in the output.
 *   - Segments are written before a later ".." may remove them, so the
 *     buffer must hold the longest intermediate result; that never exceeds
 *     the length of the path part of the target, so a buffer of
 *     strlen(target) + 1 bytes always suffices.
 *   - Every check on the path runs before the query is looked at; "#"
 *     anywhere in the target is refused before anything else but the
 *     origin-form check.
 */
#include "http/pathnorm.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static int
pathnorm_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
pathnorm_is_unreserved_decodable(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '~';
}

static bool
pathnorm_is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * UTF-8 state across the bytes of one segment: how many continuation bytes
 * are still expected, and the allowed range of the next one (the first
 * continuation byte after E0, ED, F0 and F4 is narrowed to exclude overlong
 * forms, surrogates and values above U+10FFFF).
 */
struct pathnorm_utf8 {
	unsigned need;
	unsigned char lo;
	unsigned char hi;
};

/* Feed one percent-encoded byte >= 0x80.  Returns false when invalid. */
static bool
pathnorm_utf8_feed(struct pathnorm_utf8 *u, unsigned char b)
{
	if (u->need > 0) {
		if (b < u->lo || b > u->hi)
			return false;
		u->need--;
		u->lo = 0x80;
		u->hi = 0xbf;
		return true;
	}
	u->lo = 0x80;
	u->hi = 0xbf;
	if (b >= 0xc2 && b <= 0xdf) {
		u->need = 1;
	} else if (b >= 0xe0 && b <= 0xef) {
		u->need = 2;
		if (b == 0xe0)
			u->lo = 0xa0; /* overlong below U+0800 */
		else if (b == 0xed)
			u->hi = 0x9f; /* surrogates U+D800..U+DFFF */
	} else if (b >= 0xf0 && b <= 0xf4) {
		u->need = 3;
		if (b == 0xf0)
			u->lo = 0x90; /* overlong below U+10000 */
		else if (b == 0xf4)
			u->hi = 0x8f; /* above U+10FFFF */
	} else {
		/* 0x80..0xc1 (stray continuation, overlong lead) or 0xf5..0xff */
		return false;
	}
	return true;
}

/*
 * True when the segment <seg> (raw bytes, <len> long) is "." or ".."
 * followed by path parameters: ".;", "..;x", ".%3B", "..%3b".
 */
static bool
pathnorm_is_dot_with_params(const char *seg, size_t len)
{
	size_t dots = 0;

	while (dots < len && dots < 2 && seg[dots] == '.')
		dots++;
	if (dots == 0 || dots == len)
		return false;
	if (seg[dots] == ';')
		return true;
	return len - dots >= 3 && seg[dots] == '%' && seg[dots + 1] == '3' &&
	       (seg[dots + 2] == 'B' || seg[dots + 2] == 'b');
}

/*
 * True when the output segment <seg> (<len> bytes) holds "%25" followed by
 * two hex digits that spell "/", backslash or ".": a backend that decodes twice
 * would see a separator.  Checked on the output so that "%25%32E" (whose
 * "%32" decodes to "2") is caught too.
 */
static bool
pathnorm_has_double_encoded_separator(const char *seg, size_t len)
{
	size_t i;

	for (i = 0; i + 5 <= len; i++) {
		int h1, h2, d;

		if (seg[i] != '%' || seg[i + 1] != '2' || seg[i + 2] != '5')
			continue;
		h1 = pathnorm_hexval((unsigned char)seg[i + 3]);
		h2 = pathnorm_hexval((unsigned char)seg[i + 4]);
		if (h1 < 0 || h2 < 0)
			continue;
		d = h1 * 16 + h2;
		if (d == '/' || d == '\\' || d == '.')
			return true;
	}
	return false;
}

/*
 * Decode the raw segment <seg> (<len> bytes, no "/") and append it to
 * <out> at *o.  <cap> is the number of bytes usable for path characters (the
 * NUL is accounted for by the caller).
 */
static enum pathnorm_result
pathnorm_segment(const char *seg, size_t len, char *out, size_t *o, size_t cap)
{
	static const char hexdigits[] = "0123456789ABCDEF";
	struct pathnorm_utf8 utf8 = { 0, 0x80, 0xbf };
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)seg[i];

		if (c == '%') {
			int h1, h2;
			unsigned char b;

			if (len - i < 3)
				return PATHNORM_BAD_ENCODING;
			h1 = pathnorm_hexval((unsigned char)seg[i + 1]);
			h2 = pathnorm_hexval((unsigned char)seg[i + 2]);
			if (h1 < 0 || h2 < 0)
				return PATHNORM_BAD_ENCODING;
			b = (unsigned char)(h1 * 16 + h2);
			i += 3;
			if (b >= 0x80) {
				if (!pathnorm_utf8_feed(&utf8, b))
					return PATHNORM_BAD_ENCODING;
			} else {
				if (utf8.need > 0)
					return PATHNORM_BAD_ENCODING;
				if (pathnorm_is_control(b))
					return PATHNORM_CONTROL;
				if (b == '/' || b == '\\' || b == '.')
					return PATHNORM_ENCODED_SEPARATOR;
			}
			if (pathnorm_is_unreserved_decodable(b)) {
				if (*o + 1 > cap)
					return PATHNORM_TOO_LONG;
				out[(*o)++] = (char)b;
			} else {
				if (*o + 3 > cap)
					return PATHNORM_TOO_LONG;
				out[(*o)++] = '%';
				out[(*o)++] = hexdigits[b >> 4];
				out[(*o)++] = hexdigits[b & 0x0f];
			}
			continue;
		}

		if (utf8.need > 0)
			return PATHNORM_BAD_ENCODING; /* sequence split by a raw byte */
		if (c >= 0x80 || c == ' ')
			return PATHNORM_RAW_NON_ASCII;
		if (pathnorm_is_control(c))
			return PATHNORM_CONTROL;
		if (c == '\\')
			return PATHNORM_BACKSLASH;
		/* '#' and '?' never reach here: the caller splits on them. */
		if (*o + 1 > cap)
			return PATHNORM_TOO_LONG;
		out[(*o)++] = (char)c;
		i++;
	}
	if (utf8.need > 0)
		return PATHNORM_BAD_ENCODING; /* truncated sequence */
	return PATHNORM_OK;
}

static enum pathnorm_result
pathnorm_check_query(const char *q)
{
	for (; *q != '\0'; q++) {
		unsigned char c = (unsigned char)*q;

		if (c >= 0x80 || c == ' ')
			return PATHNORM_RAW_NON_ASCII;
		if (pathnorm_is_control(c))
			return PATHNORM_CONTROL;
	}
	return PATHNORM_OK;
}

enum pathnorm_result
pathnorm_normalize(const char *target, char *path, size_t pathlen, const char **query)
{
	enum pathnorm_result res;
	const char *qmark;
	size_t plen, cap, o, i;

	if (query != NULL)
		*query = NULL;
	if (path != NULL && pathlen > 0)
		path[0] = '\0';
	if (target == NULL || target[0] != '/')
		return PATHNORM_NOT_ORIGIN_FORM;
	if (strchr(target, '#') != NULL)
		return PATHNORM_FRAGMENT;
	if (path == NULL || pathlen < 2)
		return PATHNORM_TOO_LONG;

	qmark = strchr(target, '?');
	plen = qmark != NULL ? (size_t)(qmark - target) : strlen(target);
	cap = pathlen - 1; /* room for the NUL */

	/* Invariant: path[0..o) is the output so far and ends with "/". */
	path[0] = '/';
	o = 1;
	i = 1;
	while (i <= plen) {
		const char *seg = target + i;
		const char *slash = memchr(seg, '/', plen - i);
		size_t seglen = slash != NULL ? (size_t)(slash - seg) : plen - i;
		bool last = slash == NULL;

		if (seglen == 0) {
			/* "//" merged; a final empty segment is the trailing "/". */
		} else if (seglen == 1 && seg[0] == '.') {
			/* "." removed; the output still ends with "/". */
		} else if (seglen == 2 && seg[0] == '.' && seg[1] == '.') {
			if (o == 1) {
				res = PATHNORM_ABOVE_ROOT;
				goto fail;
			}
			o--; /* drop the "/" after the last segment ... */
			while (path[o - 1] != '/')
				o--; /* ... and the segment itself */
		} else {
			size_t start = o;

			res = pathnorm_segment(seg, seglen, path, &o, cap);
			if (res != PATHNORM_OK)
				goto fail;
			if (pathnorm_is_dot_with_params(path + start, o - start) ||
			    pathnorm_has_double_encoded_separator(path + start, o - start)) {
				res = PATHNORM_ENCODED_SEPARATOR;
				goto fail;
			}
			if (!last) {
				if (o + 1 > cap) {
					res = PATHNORM_TOO_LONG;
					goto fail;
				}
				path[o++] = '/';
			}
		}
		i += seglen + 1;
	}
	path[o] = '\0';

	if (qmark != NULL) {
		res = pathnorm_check_query(qmark + 1);
		if (res != PATHNORM_OK)
			goto fail;
		if (query != NULL)
			*query = qmark + 1;
	}
	return PATHNORM_OK;

fail:
	path[0] = '\0';
	return res;
}

const char *
pathnorm_reason(enum pathnorm_result result)
{
	switch (result) {
	case PATHNORM_OK:
		return "ok";
	case PATHNORM_NOT_ORIGIN_FORM:
		return "request target does not start with \"/\"";
	case PATHNORM_FRAGMENT:
		return "fragment (\"#\") in request target";
	case PATHNORM_BAD_ENCODING:
		return "malformed percent-encoding or invalid UTF-8";
	case PATHNORM_ENCODED_SEPARATOR:
		return "encoded slash, backslash or dot, or a dot segment with parameters";
	case PATHNORM_CONTROL:
		return "control character in request target";
	case PATHNORM_BACKSLASH:
		return "backslash in path";
	case PATHNORM_RAW_NON_ASCII:
		return "space or non-ASCII byte in request target";
	case PATHNORM_ABOVE_ROOT:
		return "\"..\" above the root";
	case PATHNORM_TOO_LONG:
		return "path too long";
	}
	return "unknown path error";
}

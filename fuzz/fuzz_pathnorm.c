/*
 * fuzz_pathnorm: feeds arbitrary bytes to pathnorm_normalize
 * (src/http/pathnorm.c) as a request-target (an embedded NUL ends it).
 *
 * Contract checked (aborts when broken):
 *   - the result is a known code; the output is "" on failure;
 *   - an accepted path starts with "/", has no "//", no "." or ".."
 *     segment, no raw byte outside printable ASCII, no "\", no "%2E" / "%2F"
 *     / "%5C", no lower-case hex and no encoded unreserved character;
 *   - it is never longer than the path part of the input;
 *   - the query pointer is exactly one past the first "?" (or NULL);
 *   - normalizing the output again gives the same output (idempotence);
 *   - a smaller buffer gives either the same answer or PATHNORM_TOO_LONG;
 *   - every segment of the output percent-decodes to valid UTF-8 (checked
 *     by an independent decoder);
 *   - the output means the same as the input: fully percent-decoding the
 *     input and removing dot segments with a separate, naive RFC 3986
 *     5.2.4 implementation gives the fully decoded output.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/pathnorm.h"

static int
fuzz_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode every %XX of s[0..len) into out (no validation: the input was accepted). */
static size_t
fuzz_decode(const char *s, size_t len, char *out)
{
	size_t i = 0, o = 0;

	while (i < len) {
		if (s[i] == '%' && i + 2 < len && fuzz_hex((unsigned char)s[i + 1]) >= 0 && fuzz_hex((unsigned char)s[i + 2]) >= 0) {
			out[o++] = (char)(fuzz_hex((unsigned char)s[i + 1]) * 16 +
					  fuzz_hex((unsigned char)s[i + 2]));
			i += 3;
		} else {
			out[o++] = s[i++];
		}
	}
	out[o] = '\0';
	return o;
}

/*
 * Independent UTF-8 check by decoding code points: each sequence must use
 * the fewest bytes for its value, and the value must be a scalar value.
 */
static bool
fuzz_valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char b = s[i];
		uint32_t cp, min;
		size_t n, k;

		if (b < 0x80) {
			i++;
			continue;
		}
		if ((b & 0xe0) == 0xc0) {
			n = 2;
			cp = b & 0x1f;
			min = 0x80;
		} else if ((b & 0xf0) == 0xe0) {
			n = 3;
			cp = b & 0x0f;
			min = 0x800;
		} else if ((b & 0xf8) == 0xf0) {
			n = 4;
			cp = b & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		if (i + n > len)
			return false;
		for (k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/*
 * RFC 3986 5.2.4 remove_dot_segments, written as literally as the RFC, on a
 * path whose runs of "/" were merged first.  Returns false when ".." would
 * go above the root (where the RFC silently stays at "/").
 */
static bool
fuzz_reference(const char *in, char *out)
{
	char *merged = malloc(strlen(in) + 1);
	const char *p;
	size_t o = 0, m = 0;
	bool ok = true;

	if (merged == NULL)
		abort();
	for (p = in; *p != '\0'; p++) {
		if (*p == '/' && m > 0 && merged[m - 1] == '/')
			continue;
		merged[m++] = *p;
	}
	merged[m] = '\0';

	p = merged;
	out[0] = '\0';
	while (*p != '\0') {
		if (strncmp(p, "/./", 3) == 0) {
			p += 2;
		} else if (strcmp(p, "/.") == 0) {
			/* "/." at the end becomes "/", which moves to the output */
			out[o++] = '/';
			out[o] = '\0';
			p += 2;
		} else if (strncmp(p, "/../", 4) == 0 || strcmp(p, "/..") == 0) {
			char *last;

			if (o == 0)
				ok = false;
			last = strrchr(out, '/');
			if (last != NULL)
				o = (size_t)(last - out);
			out[o] = '\0';
			if (p[3] == '\0') {
				/* "/.." at the end becomes "/", which moves to the output */
				out[o++] = '/';
				out[o] = '\0';
			}
			p += 3;
		} else {
			/* move the first segment (with its leading "/") to the output */
			const char *next = strchr(p + 1, '/');
			size_t n = next != NULL ? (size_t)(next - p) : strlen(p);

			memcpy(out + o, p, n);
			o += n;
			out[o] = '\0';
			p += n;
		}
	}
	free(merged);
	return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *target = malloc(size + 1);
	char *path = malloc(size + 2);
	char *again = malloc(size + 2);
	char *small = malloc(size + 2);
	char *dec_in = malloc(size + 2);
	char *dec_out = malloc(size + 2);
	char *ref = malloc(size + 2);
	const char *query = NULL, *q2 = NULL, *qmark;
	enum pathnorm_result r, r2;
	size_t len, plen, olen, i, smallcap;

	if (target == NULL || path == NULL || again == NULL || small == NULL ||
	    dec_in == NULL || dec_out == NULL || ref == NULL)
		abort();
	memcpy(target, data, size);
	target[size] = '\0';
	len = strlen(target); /* an embedded NUL ends the target */
	qmark = strchr(target, '?');
	plen = qmark != NULL ? (size_t)(qmark - target) : len;

	r = pathnorm_normalize(target, path, len + 1, &query);
	FUZZ_CHECK(r >= PATHNORM_OK && r <= PATHNORM_TOO_LONG);
	FUZZ_CHECK(pathnorm_reason(r) != NULL);
	/* strlen(target) + 1 is always enough */
	FUZZ_CHECK(r != PATHNORM_TOO_LONG);
	if (r != PATHNORM_OK) {
		FUZZ_CHECK(query == NULL);
		FUZZ_CHECK(path[0] == '\0');
		goto done;
	}

	olen = strlen(path);
	FUZZ_CHECK(path[0] == '/');
	FUZZ_CHECK(olen <= plen);
	FUZZ_CHECK(strstr(path, "//") == NULL);
	FUZZ_CHECK(strstr(path, "/./") == NULL && strstr(path, "/../") == NULL);
	FUZZ_CHECK(!(olen >= 2 && strcmp(path + olen - 2, "/.") == 0));
	FUZZ_CHECK(!(olen >= 3 && strcmp(path + olen - 3, "/..") == 0));
	FUZZ_CHECK(strchr(path, '?') == NULL && strchr(path, '#') == NULL);
	FUZZ_CHECK(strchr(path, '\\') == NULL);
	for (i = 0; i < olen; i++) {
		unsigned char c = (unsigned char)path[i];

		FUZZ_CHECK(c > 0x20 && c < 0x7f);
		if (c == '%') {
			int v;

			FUZZ_CHECK(i + 2 < olen);
			FUZZ_CHECK((path[i + 1] >= '0' && path[i + 1] <= '9') ||
				   (path[i + 1] >= 'A' && path[i + 1] <= 'F'));
			FUZZ_CHECK((path[i + 2] >= '0' && path[i + 2] <= '9') ||
				   (path[i + 2] >= 'A' && path[i + 2] <= 'F'));
			v = fuzz_hex((unsigned char)path[i + 1]) * 16 +
			    fuzz_hex((unsigned char)path[i + 2]);
			FUZZ_CHECK(v != '.' && v != '/' && v != '\\');
			FUZZ_CHECK(v >= 0x20 && v != 0x7f);
			FUZZ_CHECK(!((v >= 'A' && v <= 'Z') || (v >= 'a' && v <= 'z') ||
				     (v >= '0' && v <= '9') || v == '-' || v == '_' || v == '~'));
		}
	}
	if (qmark != NULL)
		FUZZ_CHECK(query == qmark + 1);
	else
		FUZZ_CHECK(query == NULL);

	/* idempotent */
	r2 = pathnorm_normalize(path, again, olen + 1, &q2);
	FUZZ_CHECK(r2 == PATHNORM_OK);
	FUZZ_CHECK(strcmp(path, again) == 0);
	FUZZ_CHECK(q2 == NULL);

	/* a smaller buffer: same answer or TOO_LONG */
	smallcap = (size_t)(data[0] ^ (size > 1 ? data[size - 1] : 0)) % (len + 1) + 1;
	r2 = pathnorm_normalize(target, small, smallcap, NULL);
	FUZZ_CHECK(r2 == PATHNORM_OK || r2 == PATHNORM_TOO_LONG);
	if (r2 == PATHNORM_OK)
		FUZZ_CHECK(strcmp(small, path) == 0);
	if (olen + 1 > smallcap)
		FUZZ_CHECK(r2 == PATHNORM_TOO_LONG);

	/* same meaning as a naive decode-then-normalize of the input */
	FUZZ_CHECK(fuzz_decode(target, plen, dec_in) == strlen(dec_in)); /* %00 is refused */
	/* every segment of the output decodes to valid UTF-8 (and "/" splits none) */
	{
		size_t declen = fuzz_decode(path, olen, dec_out);
		const char *seg = dec_out, *end = dec_out + declen;

		while (seg <= end) {
			const char *slash = memchr(seg, '/', (size_t)(end - seg));
			size_t n = slash != NULL ? (size_t)(slash - seg) : (size_t)(end - seg);

			FUZZ_CHECK(fuzz_valid_utf8((const unsigned char *)seg, n));
			seg += n + 1;
		}
	}
	FUZZ_CHECK(fuzz_reference(dec_in, ref));
	FUZZ_CHECK(strcmp(ref, dec_out) == 0);

done:
	free(target);
	free(path);
	free(again);
	free(small);
	free(dec_in);
	free(dec_out);
	free(ref);
	return 0;
}

/*
 * b64url: base64url without padding (RFC 4648 section 5), as JOSE (ACME) and
 * our sealed cookies use it.  Pure: no allocation, no libevent.
 */
#ifndef PORTCULLIS_B64URL_H
#define PORTCULLIS_B64URL_H

#include <stddef.h>

/* Encode <len> bytes into <out> (room for len * 4 / 3 + 4 bytes), NUL-terminated.
 * Returns the length written, not counting the NUL. */
size_t b64url_encode(const void *in, size_t len, char *out);

/* Decode <len> characters into <out> (room for len * 3 / 4 + 1 bytes).  Returns
 * the byte count, or -1 when malformed: a character outside the alphabet,
 * padding or whitespace, an impossible length, or non-zero trailing bits (only
 * the canonical encoding is accepted). */
long b64url_decode(const char *in, size_t len, unsigned char *out);

#endif

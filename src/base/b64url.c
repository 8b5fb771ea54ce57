/* b64url: base64url without padding; see b64url.h. */
#include "base/b64url.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
b64url_encode(const void *data, size_t len, char *out)
{
	const unsigned char *in = data;
	size_t o = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
		out[o++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int
value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
b64url_decode(const char *in, size_t len, unsigned char *out)
{
	size_t o = 0, i = 0;
	int v[4];

	if (len % 4 == 1)
		return -1;
	for (; i < len; i += 4) {
		size_t n = len - i < 4 ? len - i : 4;

		for (size_t j = 0; j < n; j++)
			if ((v[j] = value((unsigned char)in[i + j])) < 0)
				return -1;
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (n == 2) {
			if (v[1] & 15)
				return -1;
			break;
		}
		out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (n == 3) {
			if (v[2] & 3)
				return -1;
			break;
		}
		out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	return (long)o;
}

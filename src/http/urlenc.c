/* urlenc: percent-encoding for URLs and forms; see urlenc.h. */
#include "http/urlenc.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

static int
urlenc_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
urlenc_decode(const char *in, size_t len, bool form)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '%') {
			int h, l;

			if (i + 2 >= len || (h = urlenc_hexval(in[i + 1])) < 0 ||
			    (l = urlenc_hexval(in[i + 2])) < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(h << 4 | l);
			i += 2;
		} else if (form && in[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
	return out;
}

void
urlenc_encode(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~/", c))
			evbuffer_add(b, s, 1);
		else
			evbuffer_add_printf(b, "%%%02X", c);
	}
}

char *
urlenc_form_value(const char *body, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = body, *end = body + len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;

		if ((size_t)(e - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=')
			return urlenc_decode(p + nlen + 1, (size_t)(e - p - (ptrdiff_t)nlen - 1), true);
		p = e + 1;
	}
	return NULL;
}

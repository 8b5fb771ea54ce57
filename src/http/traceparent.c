/* traceparent: W3C Trace Context version 00; see traceparent.h. */
#include "http/traceparent.h"

#include <string.h>

static const char hexdigits[] = "0123456789abcdef";

/* Lowercase hex digit value, or -1 (the spec allows no uppercase). */
static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode <n> bytes from 2n hex digits at <s>; false on a bad digit or when
 * every byte is zero and <nonzero> is asked. */
static bool
hex_bytes(const char *s, uint8_t *out, size_t n, bool nonzero)
{
	uint8_t any = 0;

	for (size_t i = 0; i < n; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
		any |= out[i];
	}
	return !nonzero || any != 0;
}

bool
traceparent_parse(const char *s, size_t len, struct traceparent *out)
{
	struct traceparent tp;

	if (s == NULL || len != TRACEPARENT_LEN || s[0] != '0' || s[1] != '0' || s[2] != '-' ||
	    s[35] != '-' || s[52] != '-')
		return false;
	if (!hex_bytes(s + 3, tp.trace_id, sizeof(tp.trace_id), true) ||
	    !hex_bytes(s + 36, tp.parent_id, sizeof(tp.parent_id), true) ||
	    !hex_bytes(s + 53, &tp.flags, 1, false))
		return false;
	*out = tp;
	return true;
}

static char *
put_hex(char *p, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*p++ = hexdigits[b[i] >> 4];
		*p++ = hexdigits[b[i] & 15];
	}
	return p;
}

void
traceparent_format(const struct traceparent *tp, char out[TRACEPARENT_LEN + 1])
{
	char *p = out;

	memcpy(p, "00-", 3);
	p = put_hex(p + 3, tp->trace_id, sizeof(tp->trace_id));
	*p++ = '-';
	p = put_hex(p, tp->parent_id, sizeof(tp->parent_id));
	*p++ = '-';
	p = put_hex(p, &tp->flags, 1);
	*p = '\0';
}

void
traceparent_trace_id_hex(const struct traceparent *tp, char out[33])
{
	*put_hex(out, tp->trace_id, sizeof(tp->trace_id)) = '\0';
}

/* chunked: strict chunked decoding and head line checks; see chunked.h. */
#include "http/chunked.h"

#include <string.h>

#define TRAILER_MAX 16384 /* trailer section bytes accepted (they are dropped) */

enum {
	C_SIZE,        /* hex digits of the chunk size */
	C_SIZE_BWS,    /* spaces after the size, before ";" or CR */
	C_EXT,         /* chunk extension up to CR */
	C_SIZE_LF,     /* LF after the size line's CR */
	C_DATA,
	C_DATA_CR,
	C_DATA_LF,
	C_TRAILER_START, /* start of a trailer line, or the final CRLF */
	C_TRAILER,
	C_TRAILER_LF,
	C_END_LF,
	C_DONE,
};

void
chunked_init(struct chunked *d)
{
	d->state = C_SIZE;
	d->remaining = 0;
	d->digits = 0;
	d->trailer_bytes = 0;
	d->quoted = d->escaped = false;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Bytes allowed in a chunk extension outside quotes: token characters, "=",
 * ";" and whitespace (RFC 9112 7.1.1). */
static bool
ext_char_ok(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return true;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
	case '+': case '-': case '.': case '^': case '_': case '`': case '|':
	case '~': case '=': case ';': case ' ': case '\t':
		return true;
	default:
		return false;
	}
}

static enum chunked_result
fail(size_t *used, size_t at, const char **why, const char *reason)
{
	*used = at;
	*why = reason;
	return CHUNKED_ERROR;
}

enum chunked_result
chunked_decode(struct chunked *d, const char *in, size_t len, size_t *used,
	       int (*emit)(void *arg, const char *data, size_t n), void *arg, const char **why)
{
	size_t i = 0;

	*why = NULL;
	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		switch (d->state) {
		case C_SIZE: {
			int v = hexval((char)c);

			if (v >= 0) {
				if (++d->digits > 15)
					return fail(used, i, why, "chunk size too large");
				d->remaining = d->remaining * 16 + (uint64_t)v;
				i++;
				break;
			}
			if (d->digits == 0)
				return fail(used, i, why, "chunk size is not a hex number");
			d->state = C_SIZE_BWS;
			break;
		}
		case C_SIZE_BWS:
			if (c == ' ' || c == '\t') {
				i++;
			} else if (c == ';') {
				d->state = C_EXT;
				i++;
			} else if (c == '\r') {
				d->state = C_SIZE_LF;
				i++;
			} else {
				return fail(used, i, why, "unexpected byte after the chunk size");
			}
			break;
		case C_EXT:
			if (d->quoted) {
				if (d->escaped)
					d->escaped = false;
				else if (c == '\\')
					d->escaped = true;
				else if (c == '"')
					d->quoted = false;
				else if ((c < 0x20 && c != '\t') || c == 0x7f)
					return fail(used, i, why, "control byte in a chunk extension");
			} else if (c == '"') {
				d->quoted = true;
			} else if (c == '\r') {
				d->state = C_SIZE_LF;
			} else if (!ext_char_ok(c)) {
				return fail(used, i, why, "invalid byte in a chunk extension");
			}
			i++;
			break;
		case C_SIZE_LF:
			if (c != '\n')
				return fail(used, i, why, "CR without LF after a chunk size");
			i++;
			d->digits = 0;
			d->state = d->remaining ? C_DATA : C_TRAILER_START;
			break;
		case C_DATA: {
			size_t n = len - i;

			if (n > d->remaining)
				n = (size_t)d->remaining;
			if (emit(arg, in + i, n) < 0) {
				*used = i;
				return CHUNKED_ERROR;
			}
			d->remaining -= n;
			i += n;
			if (d->remaining == 0)
				d->state = C_DATA_CR;
			break;
		}
		case C_DATA_CR:
			if (c != '\r')
				return fail(used, i, why, "chunk data not followed by CRLF");
			d->state = C_DATA_LF;
			i++;
			break;
		case C_DATA_LF:
			if (c != '\n')
				return fail(used, i, why, "chunk data not followed by CRLF");
			d->state = C_SIZE;
			i++;
			break;
		case C_TRAILER_START:
			if (c == '\r') {
				d->state = C_END_LF;
				i++;
				break;
			}
			if (c == ' ' || c == '\t')
				return fail(used, i, why, "folded trailer line");
			d->state = C_TRAILER;
			break;
		case C_TRAILER:
			if (++d->trailer_bytes > TRAILER_MAX)
				return fail(used, i, why, "trailer section too large");
			if (c == '\r')
				d->state = C_TRAILER_LF;
			else if (c == '\n' || c == 0)
				return fail(used, i, why, "bare LF or NUL in a trailer");
			i++;
			break;
		case C_TRAILER_LF:
			if (c != '\n')
				return fail(used, i, why, "CR without LF in a trailer");
			d->state = C_TRAILER_START;
			i++;
			break;
		case C_END_LF:
			if (c != '\n')
				return fail(used, i, why, "CR without LF at the end of the body");
			d->state = C_DONE;
			*used = i + 1;
			return CHUNKED_DONE;
		default:
			*used = i;
			return CHUNKED_DONE;
		}
	}
	*used = i;
	return CHUNKED_MORE;
}

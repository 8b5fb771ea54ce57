/* chunked: strict chunked decoding and head line checks; see chunked.h. */
#include "http/chunked.h"

#include <string.h>

#define TRAILER_MAX 16384 /* trailer section bytes accepted (they are dropped) */
/* Chunk-extension bytes (from ";" to the line's CR) accepted in one body, all
 * chunks together: nobody sends them, and reading them without a bound is the
 * Node.js CVE-2024-22019 class (HAProxy and Go/Caddy stop at a few KiB). */
#define CHUNK_EXT_MAX 4096

enum {
	C_SIZE,        /* hex digits of the chunk size */
	C_SIZE_END,    /* after the digits: BWS, then ";" or CR */
	C_EXT_NAME0,   /* after ";": BWS, then the extension's name (a token) */
	C_EXT_NAME,
	C_EXT_VAL0,    /* after "=": BWS, then a token or a quoted-string */
	C_EXT_VAL,     /* a token value */
	C_EXT_QUOTED,  /* inside a quoted-string value */
	C_EXT_AFTER,   /* after whitespace or a quoted value: ";", "=" (after a name), CR */
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
	d->ext_bytes = 0;
	d->escaped = d->ws = d->after_value = false;
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

/* tchar (RFC 9110 5.6.2): the bytes of a chunk extension's name or token
 * value. */
static bool
token_char(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return true;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
	case '+': case '-': case '.': case '^': case '_': case '`': case '|':
	case '~':
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

/* One byte of a chunk extension, from its ";" to the line's CR (which it
 * consumes, moving on to the LF).  Returns 0, or -1 with *why set. */
static int
chunk_ext_byte(struct chunked *d, unsigned char c, const char **why)
{
	bool blank = c == ' ' || c == '\t';

	switch (d->state) {
	case C_EXT_NAME0:
		if (blank)
			return 0;
		if (!token_char(c)) {
			*why = "chunk extension without a name";
			return -1;
		}
		d->state = C_EXT_NAME;
		return 0;
	case C_EXT_NAME:
	case C_EXT_VAL:
		if (token_char(c))
			return 0;
		d->after_value = d->state == C_EXT_VAL;
		if (blank) {
			d->ws = true;
			d->state = C_EXT_AFTER;
			return 0;
		}
		d->state = C_EXT_AFTER;
		d->ws = false;
		return chunk_ext_byte(d, c, why);
	case C_EXT_VAL0:
		if (blank)
			return 0;
		if (c == '"') {
			d->state = C_EXT_QUOTED;
			return 0;
		}
		if (!token_char(c)) {
			*why = "chunk extension without a value after \"=\"";
			return -1;
		}
		d->state = C_EXT_VAL;
		return 0;
	case C_EXT_QUOTED:
		if (d->escaped) {
			d->escaped = false;
		} else if (c == '\\') {
			d->escaped = true;
		} else if (c == '"') {
			d->state = C_EXT_AFTER;
			d->after_value = true;
			d->ws = false;
			return 0;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			*why = "control byte in a chunk extension";
			return -1;
		}
		return 0;
	case C_EXT_AFTER:
	default:
		if (blank) {
			d->ws = true;
		} else if (c == ';') {
			d->state = C_EXT_NAME0;
			d->ws = false;
		} else if (c == '=' && !d->after_value) {
			d->state = C_EXT_VAL0;
		} else if (c == '\r' && !d->ws) {
			d->state = C_SIZE_LF;
		} else if (c == '\r') {
			*why = "whitespace at the end of a chunk line";
			return -1;
		} else {
			*why = "invalid byte in a chunk extension";
			return -1;
		}
		return 0;
	}
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
			d->state = C_SIZE_END;
			break;
		}
		case C_SIZE_END:
			/* chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" BWS
			 * name [ BWS "=" BWS value ] ) (RFC 9112 7.1.1): whitespace
			 * only before an extension, never before the CR. */
			if (c == ' ' || c == '\t') {
				d->ws = true;
				i++;
			} else if (c == ';') {
				d->ext_bytes++;
				d->state = C_EXT_NAME0;
				i++;
			} else if (c == '\r' && !d->ws) {
				d->state = C_SIZE_LF;
				i++;
			} else if (c == '\r') {
				return fail(used, i, why, "whitespace after the chunk size without an extension");
			} else {
				return fail(used, i, why, "unexpected byte after the chunk size");
			}
			break;
		case C_EXT_NAME0:
		case C_EXT_NAME:
		case C_EXT_VAL0:
		case C_EXT_VAL:
		case C_EXT_QUOTED:
		case C_EXT_AFTER:
			if (++d->ext_bytes > CHUNK_EXT_MAX)
				return fail(used, i, why, "chunk extensions too long");
			if (chunk_ext_byte(d, c, why) < 0) {
				*used = i;
				return CHUNKED_ERROR;
			}
			i++;
			break;
		case C_SIZE_LF:
			if (c != '\n')
				return fail(used, i, why, "CR without LF after a chunk size");
			i++;
			d->digits = 0;
			d->ws = d->after_value = false;
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

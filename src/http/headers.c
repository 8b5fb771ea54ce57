/* headers: header syntax and framing rules; see headers.h. */
#include "http/headers.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar (ALPHA DIGIT !#$%&'*+-.^_`|~) as bit masks over the
 * characters 0-63 and 64-127: one test per byte. */
#define TCHAR_LO UINT64_C(0x03ff6cfa00000000)
#define TCHAR_HI UINT64_C(0x57ffffffc7fffffe)
/* Controls a value may not hold: 0x00-0x1f but HTAB (0x7f apart). */
#define VALUE_BAD_CTL UINT32_C(0xfffffdff)

static bool
is_tchar(unsigned char c)
{
	if (c < 64)
		return (TCHAR_LO >> c) & 1;
	if (c < 128)
		return (TCHAR_HI >> (c - 64)) & 1;
	return false;
}

bool
headers_is_token(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

bool
headers_value_ok(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c < 0x20 && ((VALUE_BAD_CTL >> c) & 1)) || c == 0x7f)
			return false;
	}
	return true;
}

bool
headers_is_hop_by_hop(const char *name)
{
	switch (strlen(name)) {
	case 2:
		return strcasecmp(name, "te") == 0;
	case 7:
		return strcasecmp(name, "trailer") == 0 || strcasecmp(name, "upgrade") == 0;
	case 10:
		return strcasecmp(name, "connection") == 0 || strcasecmp(name, "keep-alive") == 0;
	case 16:
		return strcasecmp(name, "proxy-connection") == 0;
	case 17:
		return strcasecmp(name, "transfer-encoding") == 0;
	case 18:
		return strcasecmp(name, "proxy-authenticate") == 0;
	case 19:
		return strcasecmp(name, "proxy-authorization") == 0;
	default:
		return false;
	}
}

void
headers_connection_parse(const char *value, struct headers_connection_list *list)
{
	const char *p = value;

	while (*p && list->n < sizeof(list->names) / sizeof(list->names[0])) {
		size_t len = 0;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		while (p[len] && p[len] != ',' && p[len] != ' ' && p[len] != '\t')
			len++;
		if (len > 63)
			len = 63;
		for (size_t i = 0; i < len; i++)
			list->names[list->n][i] = (char)tolower((unsigned char)p[i]);
		list->names[list->n][len] = '\0';
		list->n++;
		while (*p && *p != ',')
			p++;
	}
}

bool
headers_connection_has(const struct headers_connection_list *list, const char *name)
{
	for (size_t i = 0; i < list->n; i++)
		if (strcasecmp(list->names[i], name) == 0)
			return true;
	return false;
}

static void
fail(struct headers_framing_state *st, enum headers_framing why)
{
	if (st->result == FRAMING_OK)
		st->result = why;
}

void
headers_framing_add(struct headers_framing_state *st, const char *name, const char *value)
{
	if (!headers_is_token(name)) {
		fail(st, FRAMING_BAD_NAME);
		return;
	}
	if (!headers_value_ok(value)) {
		fail(st, FRAMING_BAD_VALUE);
		return;
	}
	/* Only three names matter here: compare only when the first letter fits. */
	switch (name[0] | 0x20) {
	case 'h':
	case 'c':
	case 't':
		break;
	default:
		return;
	}
	if (strcasecmp(name, "host") == 0) {
		if (++st->host > 1)
			fail(st, FRAMING_MULTIPLE_HOST);
	} else if (strcasecmp(name, "content-length") == 0) {
		const char *v = value;

		if (++st->content_length > 1)
			fail(st, FRAMING_MULTIPLE_LENGTH);
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v == '\0')
			fail(st, FRAMING_BAD_LENGTH);
		for (; *v && *v != ' ' && *v != '\t'; v++)
			if (!isdigit((unsigned char)*v))
				fail(st, FRAMING_BAD_LENGTH);
		for (; *v; v++)
			if (*v != ' ' && *v != '\t')
				fail(st, FRAMING_BAD_LENGTH);
	} else if (strcasecmp(name, "transfer-encoding") == 0) {
		if (++st->transfer_encoding > 1)
			fail(st, FRAMING_MULTIPLE_TE);
		if (strcasecmp(value, "chunked") != 0)
			fail(st, FRAMING_TE_NOT_CHUNKED);
	}
}

enum headers_framing
headers_framing_result(const struct headers_framing_state *st)
{
	if (st->result != FRAMING_OK)
		return st->result;
	if (st->transfer_encoding && st->content_length)
		return FRAMING_TE_AND_LENGTH;
	return FRAMING_OK;
}

const char *
headers_framing_reason(enum headers_framing result)
{
	switch (result) {
	case FRAMING_OK:
		return "ok";
	case FRAMING_BAD_NAME:
		return "a header name is not a valid token";
	case FRAMING_BAD_VALUE:
		return "a header value contains a control character";
	case FRAMING_TE_NOT_CHUNKED:
		return "Transfer-Encoding other than \"chunked\" is not accepted";
	case FRAMING_TE_AND_LENGTH:
		return "both Transfer-Encoding and Content-Length were sent";
	case FRAMING_MULTIPLE_LENGTH:
		return "more than one Content-Length header";
	case FRAMING_BAD_LENGTH:
		return "Content-Length is not a decimal number";
	case FRAMING_MULTIPLE_HOST:
		return "more than one Host header";
	case FRAMING_MULTIPLE_TE:
		return "more than one Transfer-Encoding header";
	}
	return "bad request framing";
}

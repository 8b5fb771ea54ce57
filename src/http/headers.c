/* headers: header syntax and framing rules; see headers.h. */
#include "http/headers.h"

#include <ctype.h>
#include <pthread.h>
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

static bool
value_byte_ok(unsigned char c)
{
	return !((c < 0x20 && ((VALUE_BAD_CTL >> c) & 1)) || c == 0x7f);
}

bool
headers_value_ok(const char *s)
{
	/* Eight bytes at a time (a session cookie is a few hundred): a word
	 * with no byte below 0x20 and none equal to 0x7f is fine as it is; one
	 * that has such a byte (HTAB, or a refused control) is looked at byte
	 * by byte.  Both tests are exact for "any byte" (n <= 0x80). */
	const uint64_t ones = UINT64_C(0x0101010101010101), high = ones * 0x80;
	size_t n = strlen(s), i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x, del;

		memcpy(&x, s + i, 8);
		del = x ^ (ones * 0x7f);
		if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & high)
			for (size_t j = i; j < i + 8; j++)
				if (!value_byte_ok((unsigned char)s[j]))
					return false;
	}
	for (; i < n; i++)
		if (!value_byte_ok((unsigned char)s[i]))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* The headers the proxy owns                                           */

#define ROW(name, flags, why) { name, sizeof(name) - 1, flags, why }
#define HOP HEADERS_HOP_BY_HOP
#define SETS HEADERS_PROXY_SETS
#define NO_REQ HEADERS_NO_REQUEST_OP
#define NO_RESP HEADERS_NO_RESPONSE_OP
#define NO_ID HEADERS_NO_IDENTITY
#define WHY_HOP "a hop-by-hop header the proxy manages"
#define WHY_FRAMING "the proxy frames the request body and the response body itself"
#define WHY_SETS "the proxy sets it"
#define WHY_CLIENT_CERT "the proxy sets it from the verified client certificate (mTLS)"

/* Sorted by name length (headers_owned_find stops at the first longer name;
 * tests/unit/http/test_headers.c checks the order). */
static const struct headers_owned owned[] = {
	ROW("TE", HOP | NO_REQ, WHY_HOP),
	ROW("Host", SETS | NO_REQ | NO_ID,
	    "the proxy sets Host; use the route's \"host\" key (\"keep\", \"upstream\" or a value)"),
	ROW("Cookie", NO_ID, "the client's cookies pass through as they are"),
	ROW("Expect", SETS, "the proxy answers 100-continue itself"),
	ROW("Trailer", HOP | NO_REQ, WHY_HOP),
	ROW("Upgrade", HOP | NO_REQ, WHY_HOP " (Upgrade is not forwarded)"),
	ROW("Forwarded", SETS, "the proxy writes X-Forwarded-* instead; a client's is dropped"),
	ROW("X-Real-IP", SETS | NO_ID, WHY_SETS),
	ROW("Connection", HOP | NO_REQ | NO_RESP | NO_ID, WHY_HOP),
	ROW("Keep-Alive", HOP | NO_REQ, WHY_HOP),
	ROW("X-Request-ID", SETS | NO_ID, WHY_SETS),
	ROW("Authorization", NO_ID, "bearer tokens pass through to the upstream"),
	ROW("X-Forwarded-*", SETS, WHY_SETS),
	ROW("Content-Length", SETS | NO_REQ | NO_RESP | NO_ID, WHY_FRAMING),
	ROW("X-Forwarded-For", SETS | NO_ID, WHY_SETS),
	ROW("X-Forwarded-Host", SETS | NO_ID, WHY_SETS),
	ROW("Proxy-Connection", HOP, WHY_HOP),
	ROW("Transfer-Encoding", HOP | SETS | NO_REQ | NO_RESP | NO_ID, WHY_FRAMING),
	ROW("X-Forwarded-Proto", SETS | NO_ID, WHY_SETS),
	ROW("X-Client-Cert-SAN", SETS | NO_REQ | NO_ID, WHY_CLIENT_CERT),
	ROW("Proxy-Authenticate", HOP, WHY_HOP),
	ROW("Proxy-Authorization", HOP, WHY_HOP),
	ROW("X-Client-Cert-SHA256", SETS | NO_REQ | NO_ID, WHY_CLIENT_CERT),
	ROW("X-Client-Cert-Subject", SETS | NO_REQ | NO_ID, WHY_CLIENT_CERT),
};
#define OWNED_N (sizeof(owned) / sizeof(owned[0]))
/* the row of every other X-Forwarded-* name */
#define OWNED_XF_ANY 12

/* Rows by name length: owned[by_len[n]] .. owned[by_len[n + 1] - 1] have
 * length n.  Built once from the table, so a lookup (every header of every
 * message) compares only the names of its own length. */
#define OWNED_MAX_LEN 21
static unsigned char by_len[OWNED_MAX_LEN + 2];
static pthread_once_t by_len_once = PTHREAD_ONCE_INIT;

static void
build_by_len(void)
{
	size_t i = 0;

	for (size_t n = 0; n <= OWNED_MAX_LEN + 1; n++) {
		while (i < OWNED_N && owned[i].len < n)
			i++;
		by_len[n] = (unsigned char)i;
	}
}

const struct headers_owned *
headers_owned_find(const char *name)
{
	size_t len = strlen(name);

	pthread_once(&by_len_once, build_by_len);
	if (len <= OWNED_MAX_LEN) {
		for (size_t i = by_len[len]; i < by_len[len + 1]; i++)
			if ((owned[i].name[0] | 0x20) == (name[0] | 0x20) &&
			    strcasecmp(owned[i].name, name) == 0)
				return &owned[i];
	}
	if (len >= 12 && (name[0] | 0x20) == 'x' && strncasecmp(name, "x-forwarded-", 12) == 0)
		return &owned[OWNED_XF_ANY];
	return NULL;
}

unsigned
headers_owned_flags(const char *name)
{
	const struct headers_owned *row = headers_owned_find(name);

	return row != NULL ? row->flags : 0;
}

const struct headers_owned *
headers_owned_table(size_t *n)
{
	*n = OWNED_N;
	return owned;
}

bool
headers_is_hop_by_hop(const char *name)
{
	return (headers_owned_flags(name) & HEADERS_HOP_BY_HOP) != 0;
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

void
headers_connection_drop_hop_by_hop(struct headers_connection_list *list)
{
	size_t kept = 0;

	for (size_t i = 0; i < list->n; i++) {
		if (headers_is_hop_by_hop(list->names[i]))
			continue;
		if (kept != i)
			memcpy(list->names[kept], list->names[i], sizeof(list->names[i]));
		kept++;
	}
	list->n = kept;
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

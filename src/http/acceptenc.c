/* acceptenc: Accept-Encoding parsing and choice; see acceptenc.h. */
#include "http/acceptenc.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#define QUALITY_MAX 1000

void
acceptenc_init(struct acceptenc *a)
{
	a->seen = false;
	a->gzip = a->zstd = a->br = a->identity = a->star = -1;
}

static const char *
skip_ows(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	return s;
}

/* A qvalue (RFC 9110 12.4.2: "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"]) in
 * thousandths, or -1 when <s>..<end> is not one. */
static int
parse_qvalue(const char *s, const char *end)
{
	int q, scale = 100;

	if (s == end || (*s != '0' && *s != '1'))
		return -1;
	q = (*s++ - '0') * QUALITY_MAX;
	if (s == end)
		return q;
	if (*s++ != '.' || end - s > 3)
		return -1;
	for (; s < end; s++, scale /= 10) {
		if (*s < '0' || *s > '9')
			return -1;
		q += (*s - '0') * scale;
	}
	return q > QUALITY_MAX ? -1 : q;
}

/* The quality of one element's parameters (<s>..<end>, after the coding):
 * 1000 without "q", -1 when a parameter does not parse. */
static int
parse_weight(const char *s, const char *end)
{
	int q = QUALITY_MAX;

	while ((s = skip_ows(s, end)) < end) {
		const char *name, *eq, *next;

		if (*s++ != ';')
			return -1;
		name = skip_ows(s, end);
		next = memchr(name, ';', (size_t)(end - name));
		if (next == NULL)
			next = end;
		eq = memchr(name, '=', (size_t)(next - name));
		if (eq == NULL)
			return -1;
		if (eq - name == 1 && (*name | 0x20) == 'q') {
			const char *v = skip_ows(eq + 1, next), *v_end = next;

			while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
				v_end--;
			if ((q = parse_qvalue(v, v_end)) < 0)
				return -1;
		}
		s = next;
	}
	return q;
}

/* Record quality <q> for the coding named <name> (<len> bytes). */
static void
record(struct acceptenc *a, const char *name, size_t len, int q)
{
	static const struct {
		const char *name;
		size_t offset;
	} codings[] = {
		{ "gzip", offsetof(struct acceptenc, gzip) },
		{ "x-gzip", offsetof(struct acceptenc, gzip) },
		{ "zstd", offsetof(struct acceptenc, zstd) },
		{ "br", offsetof(struct acceptenc, br) },
		{ "identity", offsetof(struct acceptenc, identity) },
		{ "*", offsetof(struct acceptenc, star) },
	};

	for (size_t i = 0; i < sizeof codings / sizeof codings[0]; i++)
		if (strlen(codings[i].name) == len && strncasecmp(codings[i].name, name, len) == 0) {
			int *slot = (int *)(void *)((char *)a + codings[i].offset);

			if (q > *slot)
				*slot = q;
			return;
		}
}

void
acceptenc_add(struct acceptenc *a, const char *value)
{
	const char *s = value, *end = value + strlen(value);

	a->seen = true;
	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *elem_end = comma ? comma : end;
		const char *name = skip_ows(s, elem_end), *name_end = name;
		int q;

		while (name_end < elem_end && *name_end != ';' && *name_end != ' ' &&
		       *name_end != '\t')
			name_end++;
		if (name_end > name && (q = parse_weight(name_end, elem_end)) >= 0)
			record(a, name, (size_t)(name_end - name), q);
		s = comma ? comma + 1 : end;
	}
}

/* The quality the client gives a coding it named (<named>) or not (-1). */
static int
quality(const struct acceptenc *a, int named)
{
	if (named >= 0)
		return named;
	return a->star >= 0 ? a->star : 0;
}

enum acceptenc_coding
acceptenc_choose(const struct acceptenc *a, unsigned offered)
{
	/* Our preference, best first: on equal quality the earlier one wins. */
	const struct {
		enum acceptenc_coding coding;
		int q;
	} order[] = {
		{ ACCEPTENC_BR, quality(a, a->br) },
		{ ACCEPTENC_ZSTD, quality(a, a->zstd) },
		{ ACCEPTENC_GZIP, quality(a, a->gzip) },
	};
	enum acceptenc_coding best = ACCEPTENC_IDENTITY;
	int best_q = 0;

	if (!a->seen)
		return ACCEPTENC_IDENTITY;
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		if ((offered & order[i].coding) && order[i].q > best_q) {
			best = order[i].coding;
			best_q = order[i].q;
		}
	/* Identity is always acceptable unless refused; it wins only where the
	 * client asked for it (or for "*") more than for the best coding. */
	if (best != ACCEPTENC_IDENTITY) {
		int identity_q = a->identity >= 0 ? a->identity : a->star;

		if (identity_q > best_q)
			return ACCEPTENC_IDENTITY;
	}
	return best;
}

const char *
acceptenc_name(enum acceptenc_coding c)
{
	switch (c) {
	case ACCEPTENC_GZIP:
		return "gzip";
	case ACCEPTENC_ZSTD:
		return "zstd";
	case ACCEPTENC_BR:
		return "br";
	default:
		return NULL;
	}
}

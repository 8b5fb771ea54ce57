/* headerbuf: header collection for http-parser; see headerbuf.h. */
#include "http/headerbuf.h"
#include "http/hdrarena.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

int
headerbuf_append(char **buf, size_t *len, size_t *cap, const char *at, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = (*len + n + 1) * 2;
		char *p = realloc(*buf, ncap);

		if (p == NULL)
			return -1;
		*buf = p;
		*cap = ncap;
	}
	memcpy(*buf + *len, at, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

void
headerbuf_reset(struct headerbuf *hb, size_t max_bytes)
{
	hb->field_len = hb->value_len = 0;
	hb->last_was_value = false;
	hb->overflow = false;
	hb->bytes = 0;
	hb->max_bytes = max_bytes;
}

int
headerbuf_count(struct headerbuf *hb, size_t n)
{
	hb->bytes += n;
	if (hb->bytes > hb->max_bytes) {
		hb->overflow = true;
		return -1;
	}
	return 0;
}

/* Store the pair collected so far. */
static int
commit(struct headerbuf *hb, struct evkeyvalq *out)
{
	int rc;

	if (hb->field_len == 0)
		return 0;
	if (hb->value == NULL && headerbuf_append(&hb->value, &hb->value_len, &hb->value_cap, "", 0) < 0)
		return -1;
	/* evhttp_add_header (and hdrarena, by the same rule) refuses CR/LF in
	 * values; http-parser has refused them already, so a failure here is an
	 * allocation failure. */
	if (hb->arena)
		rc = hdrarena_add_header(hb->arena, out, hb->field, hb->field_len, hb->value,
					 hb->value_len);
	else
		rc = evhttp_add_header(out, hb->field, hb->value);
	hb->field_len = hb->value_len = 0;
	hb->field[0] = '\0';
	hb->value[0] = '\0';
	return rc < 0 ? -1 : 0;
}

int
headerbuf_field(struct headerbuf *hb, struct evkeyvalq *out, const char *at, size_t n)
{
	/* ": " and CRLF once per header line, not per piece of its name. */
	if (headerbuf_count(hb, n + (hb->field_len == 0 || hb->last_was_value ? 4 : 0)) < 0)
		return -1;
	if (hb->last_was_value) {
		if (commit(hb, out) < 0)
			return -1;
		hb->last_was_value = false;
	}
	return headerbuf_append(&hb->field, &hb->field_len, &hb->field_cap, at, n);
}

int
headerbuf_value(struct headerbuf *hb, const char *at, size_t n)
{
	if (headerbuf_count(hb, n) < 0)
		return -1;
	hb->last_was_value = true;
	return headerbuf_append(&hb->value, &hb->value_len, &hb->value_cap, at, n);
}

int
headerbuf_finish(struct headerbuf *hb, struct evkeyvalq *out)
{
	int rc = hb->last_was_value ? commit(hb, out) : 0;

	hb->last_was_value = false;
	return rc;
}

void
headerbuf_swap_buffers(struct headerbuf *a, struct headerbuf *b)
{
	char *field = a->field, *value = a->value;
	size_t field_cap = a->field_cap, value_cap = a->value_cap;

	a->field = b->field;
	a->value = b->value;
	a->field_cap = b->field_cap;
	a->value_cap = b->value_cap;
	b->field = field;
	b->value = value;
	b->field_cap = field_cap;
	b->value_cap = value_cap;
}

void
headerbuf_free(struct headerbuf *hb)
{
	if (hb == NULL)
		return;
	free(hb->field);
	free(hb->value);
	hb->field = hb->value = NULL;
	hb->field_cap = hb->value_cap = 0;
}

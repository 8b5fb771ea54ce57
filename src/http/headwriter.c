/* headwriter: a message head in one evbuffer reservation; see headwriter.h. */
#include "http/headwriter.h"

#include <string.h>

void
headwriter_begin(struct headwriter *w, struct evbuffer *b, size_t hint)
{
	w->b = b;
	w->used = 0;
	w->open = evbuffer_reserve_space(b, (ev_ssize_t)hint, &w->v, 1) == 1;
}

/* Room for <n> more bytes in the reservation; if there is none, the
 * reservation is committed and closed, and the caller adds by itself. */
static char *
room_for(struct headwriter *w, size_t n)
{
	if (w->open && w->v.iov_len - w->used >= n) {
		char *p = (char *)w->v.iov_base + w->used;

		w->used += n;
		return p;
	}
	headwriter_end(w);
	return NULL;
}

void
headwriter_add(struct headwriter *w, const char *s, size_t n)
{
	char *p = room_for(w, n);

	if (p != NULL)
		memcpy(p, s, n);
	else
		evbuffer_add(w->b, s, n);
}

size_t
headwriter_format_line(char *p, const char *name, size_t nl, const char *value, size_t vl)
{
	memcpy(p, name, nl);
	p[nl] = ':';
	p[nl + 1] = ' ';
	memcpy(p + nl + 2, value, vl);
	p[nl + vl + 2] = '\r';
	p[nl + vl + 3] = '\n';
	return nl + vl + 4;
}

void
headwriter_line(struct headwriter *w, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char *p = room_for(w, nl + vl + 4);

	if (p == NULL)
		evbuffer_add_printf(w->b, "%s: %s\r\n", name, value);
	else
		headwriter_format_line(p, name, nl, value, vl);
}

void
headwriter_end(struct headwriter *w)
{
	if (!w->open)
		return;
	w->v.iov_len = w->used;
	evbuffer_commit_space(w->b, &w->v, 1);
	w->open = false;
}

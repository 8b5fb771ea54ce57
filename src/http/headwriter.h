/*
 * headwriter: writes a message head (status line, header lines) into one
 * evbuffer reservation instead of one reservation and commit per line.
 *
 * headwriter_begin reserves room at the end of the caller's evbuffer; the
 * adds copy into it, and whatever does not fit goes through evbuffer_add
 * (after committing what was written, so the order is kept).  Between
 * begin and end the caller must not touch the evbuffer in any other way.
 * headwriter_end commits; nothing is allocated that end does not settle.
 */
#ifndef PORTCULLIS_HEADWRITER_H
#define PORTCULLIS_HEADWRITER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>

struct headwriter {
	struct evbuffer *b;
	struct evbuffer_iovec v; /* the reservation while <open> */
	size_t used;             /* bytes written into it */
	bool open;
};

/* Write "<name>: <value>\r\n" (<nl> and <vl> bytes) at <p>, which has room
 * for nl + vl + 4 bytes.  Returns the bytes written. */
size_t headwriter_format_line(char *p, const char *name, size_t nl, const char *value, size_t vl);

/* Start writing at the end of <b>, reserving <hint> bytes (the usual head). */
void headwriter_begin(struct headwriter *w, struct evbuffer *b, size_t hint);

/* Append <n> bytes of <s>. */
void headwriter_add(struct headwriter *w, const char *s, size_t n);

/* Append "<name>: <value>\r\n". */
void headwriter_line(struct headwriter *w, const char *name, const char *value);

/* Commit what was written; <w> is done (begin again to reuse it). */
void headwriter_end(struct headwriter *w);

#endif

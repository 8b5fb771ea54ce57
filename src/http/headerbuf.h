/*
 * headerbuf: collects the header fields and values http-parser hands over in
 * pieces (a field or value may arrive split across reads) into an evkeyvalq,
 * counting bytes against a limit.  Shared by the request side (h1.c) and
 * the response side (upstream.c).
 */
#ifndef PORTCULLIS_HEADERBUF_H
#define PORTCULLIS_HEADERBUF_H

#include <stdbool.h>
#include <stddef.h>

struct evkeyvalq;
struct hdrarena;

struct headerbuf {
	char *field, *value;
	struct hdrarena *arena; /* non-NULL: pairs go into it (hdrarena.h), else evhttp_add_header */
	size_t field_len, value_len, field_cap, value_cap;
	bool last_was_value;
	bool overflow;    /* the limit was passed */
	size_t bytes;     /* counted so far */
	size_t max_bytes; /* limit for bytes */
};

/* Start over for a new message (keeps the buffers). */
void headerbuf_reset(struct headerbuf *hb, size_t max_bytes);

/* Count <n> bytes of the head (request/status line pieces too).  Returns 0,
 * or -1 (and sets overflow) past the limit. */
int headerbuf_count(struct headerbuf *hb, size_t n);

/* Feed a piece of a field name / value (http-parser's on_header_field and
 * on_header_value).  Returns 0, or -1 on overflow or allocation failure. */
int headerbuf_field(struct headerbuf *hb, struct evkeyvalq *out, const char *at, size_t n);
int headerbuf_value(struct headerbuf *hb, const char *at, size_t n);

/* The headers are complete: store the last pair.  Returns 0 or -1. */
int headerbuf_finish(struct headerbuf *hb, struct evkeyvalq *out);

/* Exchange the field and value buffers (not the counts) of <a> and <b>:
 * lets a long-lived owner lend them to one message after another. */
void headerbuf_swap_buffers(struct headerbuf *a, struct headerbuf *b);

/* Free the buffers.  Accepts NULL. */
void headerbuf_free(struct headerbuf *hb);

/* Grow-and-append <n> bytes to a NUL-terminated buffer.  Returns 0 or -1. */
int headerbuf_append(char **buf, size_t *len, size_t *cap, const char *at, size_t n);

#endif

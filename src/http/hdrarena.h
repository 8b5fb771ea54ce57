/*
 * hdrarena: header lists (evkeyvalq) whose entries live in one arena per
 * message instead of three heap blocks each (entry, key, value): a first
 * block inside the arena itself, further blocks only for large heads, all
 * given back at once by hdrarena_reset.
 *
 * A list may mix arena entries with entries evhttp_add_header made (code that
 * only adds, such as auth.c, keeps working).  Entries must be removed with
 * hdrarena_remove_header and lists emptied with hdrarena_clear_headers, never
 * with evhttp_remove_header / evhttp_clear_headers, which would free arena
 * memory.  Reading with TAILQ_FOREACH / evhttp_find_header is fine.
 */
#ifndef PORTCULLIS_HDRARENA_H
#define PORTCULLIS_HDRARENA_H

#include <stdbool.h>
#include <stddef.h>

struct evkeyval;
struct evkeyvalq;
struct hdrarena_block;

#define HDRARENA_INLINE 1536 /* bytes inside the arena: a typical head */

struct hdrarena {
	char *cur;                     /* next free byte */
	size_t left;                   /* free bytes at cur */
	struct hdrarena_block *blocks; /* further blocks, newest first */
	_Alignas(16) char first[HDRARENA_INLINE];
};

/* Make <a> empty (no allocation). */
void hdrarena_init(struct hdrarena *a);

/* <n> bytes, 16-aligned, valid until hdrarena_reset.  NULL when out of memory. */
void *hdrarena_alloc(struct hdrarena *a, size_t n);

/* True when <p> points into memory <a> handed out (never when <a> is NULL). */
bool hdrarena_owns(const struct hdrarena *a, const void *p);

/* Append "<key>: <value>" (lengths given; copied, NUL-terminated) to <q>.
 * Refuses what evhttp_add_header refuses: a CR or LF anywhere in the key or
 * the value.  Returns 0, or -1 (refused or out of memory). */
int hdrarena_add_header(struct hdrarena *a, struct evkeyvalq *q, const char *key, size_t klen,
			const char *value, size_t vlen);

/* hdrarena_add_header with NUL-terminated strings. */
int hdrarena_add(struct hdrarena *a, struct evkeyvalq *q, const char *key, const char *value);

/* Append a copy of <kv>, an entry of another list (made by hdrarena or by
 * evhttp_add_header, so checked already).  Returns 0, or -1 when out of
 * memory. */
int hdrarena_copy(struct hdrarena *a, struct evkeyvalq *q, const struct evkeyval *kv);

/* Remove the first entry named <key> (case-insensitive), freeing it when
 * evhttp_add_header made it (<a> NULL: a list evhttp_add_header made alone).
 * Returns 0, or -1 when there was none. */
int hdrarena_remove_header(struct hdrarena *a, struct evkeyvalq *q, const char *key);

/* Empty <q>, freeing the entries evhttp_add_header made (the arena's stay until
 * hdrarena_reset). */
void hdrarena_clear_headers(struct hdrarena *a, struct evkeyvalq *q);

/* Give back every block but the first and start over: everything handed out
 * before is invalid.  Accepts NULL. */
void hdrarena_reset(struct hdrarena *a);

#endif

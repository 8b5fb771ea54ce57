/*
 * upstream_blocks: the memory upstream responses are read into.
 *
 * A read fills granules of READ_GRANULE bytes (several at once, with
 * readv).  Body bytes are handed to the client's output by reference into
 * a granule (no copy), so a granule lives until the last byte referring to
 * it has been sent: granules are counted (refs) and, while a response is
 * being read, owned by a read_budget that counts how many of them are alive,
 * so that the reader can cap what one response holds however slowly its
 * client reads.  Freed granules go to a small per-thread spare list first.
 */
#ifndef PORTCULLIS_UPSTREAM_BLOCKS_H
#define PORTCULLIS_UPSTREAM_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>

#define READ_GRANULE (16 * 1024)

struct evbuffer;
struct read_block;

/* The granules one reader owns.  Zero-initialise, set <released>. */
struct read_budget {
	struct read_block *owned; /* list of live granules (read_block_new) */
	unsigned live;            /* granules in <owned> */
	bool starved;             /* the reader waits for one of them to be freed */
	/* Called when a granule of a starved budget is freed (starved is
	 * cleared first); may be NULL. */
	void (*released)(struct read_budget *budget);
};

/* A granule with one reference, owned by <budget> (NULL: by none); NULL
 * when out of memory. */
struct read_block *read_block_new(struct read_budget *budget);

/* The granule's READ_GRANULE bytes. */
char *read_block_data(struct read_block *b);

/* References: the granule is freed when the last one goes.  unref accepts
 * NULL. */
unsigned read_block_refs(const struct read_block *b);
void read_block_unref(struct read_block *b);

/* Append <n> bytes at <at> (inside <b>) to <buf> by reference, taking a
 * reference to <b> that the buffer drops once they are sent or drained.
 * Returns 0, or -1 (no reference taken). */
int read_block_add_reference(struct evbuffer *buf, struct read_block *b, const char *at, size_t n);

/* The granules <budget> owns forget it (they live on, counted nowhere):
 * the reader moves on to another response, or goes away. */
void read_budget_disown(struct read_budget *budget);

/* Granules this thread allocated less those it freed (spares not counted):
 * with one thread, the granules alive.  Per thread, so that reads on two
 * workers do not share a counter's cache line. */
unsigned read_blocks_live(void);

/* Free this thread's spare granules. */
void read_blocks_release_spare(void);

#endif

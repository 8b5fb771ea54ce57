/* upstream_blocks: reference-counted read granules; see upstream_blocks.h. */
#include "proxy/upstream_blocks.h"

#include <event2/buffer.h>
#include <stdlib.h>

#include "base/poison.h"

/* Granules come and go at every read under load: each worker thread keeps
 * a few freed ones for the next reads (no allocator round trip, pages
 * already in), and no more, so that what a burst used goes back to the
 * allocator (and, once idle, to the kernel: core/memtrim.c). */
#define SPARE_GRANULES_MAX 32

struct read_block {
	union {
		unsigned refs;
		struct read_block *next_spare;
	};
	struct read_budget *budget;  /* the owner, or NULL */
	struct read_block *next_owned, **prev_owned;
	char data[READ_GRANULE];
};

static _Thread_local struct read_block *spare;
static _Thread_local unsigned nspare;
static _Thread_local unsigned live_granules; /* allocated here, not freed (here) yet */

static void
disown(struct read_block *b)
{
	if (b->budget == NULL)
		return;
	if (b->next_owned != NULL)
		b->next_owned->prev_owned = b->prev_owned;
	*b->prev_owned = b->next_owned;
	b->budget->live--;
	b->budget = NULL;
}

struct read_block *
read_block_new(struct read_budget *budget)
{
	struct read_block *b = spare;

	if (b != NULL) {
		spare = b->next_spare;
		nspare--;
		MEM_UNPOISON(b->data, sizeof(b->data));
	} else if ((b = malloc(sizeof(*b))) == NULL) {
		return NULL;
	}
	live_granules++;
	b->refs = 1;
	b->budget = budget;
	if (budget != NULL) {
		b->next_owned = budget->owned;
		b->prev_owned = &budget->owned;
		if (budget->owned != NULL)
			budget->owned->prev_owned = &b->next_owned;
		budget->owned = b;
		budget->live++;
	}
	return b;
}

char *
read_block_data(struct read_block *b)
{
	return b->data;
}

unsigned
read_block_refs(const struct read_block *b)
{
	return b->refs;
}

void
read_block_unref(struct read_block *b)
{
	struct read_budget *budget;

	if (b == NULL || --b->refs > 0)
		return;
	budget = b->budget;
	disown(b);
	live_granules--;
	if (nspare >= SPARE_GRANULES_MAX) {
		free(b);
	} else {
		MEM_POISON(b->data, sizeof(b->data)); /* a use after release is still reported */
		b->next_spare = spare;
		spare = b;
		nspare++;
	}
	if (budget != NULL && budget->starved) {
		budget->starved = false;
		if (budget->released != NULL)
			budget->released(budget);
	}
}

static void
reference_done(const void *data, size_t len, void *arg)
{
	read_block_unref(arg);
}

int
read_block_add_reference(struct evbuffer *buf, struct read_block *b, const char *at, size_t n)
{
	b->refs++;
	if (evbuffer_add_reference(buf, at, n, reference_done, b) < 0) {
		b->refs--;
		return -1;
	}
	return 0;
}

void
read_budget_disown(struct read_budget *budget)
{
	while (budget->owned != NULL)
		disown(budget->owned);
	budget->starved = false;
}

unsigned
read_blocks_live(void)
{
	return live_granules;
}

void
read_blocks_release_spare(void)
{
	while (spare != NULL) {
		struct read_block *b = spare;

		spare = b->next_spare;
		free(b);
	}
	nspare = 0;
}

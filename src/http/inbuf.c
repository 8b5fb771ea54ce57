/* inbuf: client input buffers with per-thread spares; see inbuf.h. */
#include "http/inbuf.h"

#include <stdlib.h>

#include "base/poison.h"

static _Thread_local char *spares[INBUF_SPARES];
static _Thread_local size_t nspares;

char *
inbuf_take(void)
{
	if (nspares > 0) {
		char *p = spares[--nspares];

		MEM_UNPOISON(p, INBUF_SIZE);
		return p;
	}
	return malloc(INBUF_SIZE);
}

void
inbuf_give(char *p, size_t cap)
{
	if (p == NULL)
		return;
	if (cap == INBUF_SIZE && nspares < INBUF_SPARES) {
		MEM_POISON(p, INBUF_SIZE); /* a use after release is still reported */
		spares[nspares++] = p;
		return;
	}
	free(p);
}

void
inbuf_release_spares(void)
{
	while (nspares > 0)
		free(spares[--nspares]);
}

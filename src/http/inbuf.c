/* inbuf: client input buffers with per-thread spares; see inbuf.h. */
#include "http/inbuf.h"

#include <stdlib.h>

static _Thread_local char *spares[INBUF_SPARES];
static _Thread_local size_t nspares;

char *
inbuf_take(void)
{
	if (nspares > 0)
		return spares[--nspares];
	return malloc(INBUF_SIZE);
}

void
inbuf_give(char *p, size_t cap)
{
	if (p == NULL)
		return;
	if (cap == INBUF_SIZE && nspares < INBUF_SPARES) {
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

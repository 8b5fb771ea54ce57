/* h2mem: libnghttp2's allocator that releases idle pages; see h2mem.h. */
#include "http/h2mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static void
track(struct h2mem *m, void *p, size_t size)
{
	for (size_t i = 0; i < H2MEM_TRACKED; i++) {
		if (m->big[i] == NULL) {
			m->big[i] = p;
			m->big_size[i] = size;
			return;
		}
	}
	/* More big blocks than slots: the extra ones just stay resident. */
}

static void
untrack(struct h2mem *m, const void *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < H2MEM_TRACKED; i++) {
		if (m->big[i] == p) {
			m->big[i] = NULL;
			m->big_size[i] = 0;
			return;
		}
	}
}

/* A block to remember: whole pages of its own, so that releasing them
 * leaves nothing of it resident; anything else: plain malloc. */
static void *
alloc(struct h2mem *m, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p = NULL;

	if (size < H2MEM_BIG || !m->starting || size > SIZE_MAX - page)
		return malloc(size);
	size = (size + page - 1) & ~(page - 1);
	if (posix_memalign(&p, page, size) != 0)
		return NULL;
	track(m, p, size);
	return p;
}

static void *
mem_malloc(size_t size, void *user)
{
	return alloc(user, size);
}

static void
mem_free(void *ptr, void *user)
{
	untrack(user, ptr);
	free(ptr);
}

static void *
mem_calloc(size_t nmemb, size_t size, void *user)
{
	(void)user;
	return calloc(nmemb, size);
}

static void *
mem_realloc(void *ptr, size_t size, void *user)
{
	void *p;

	if (ptr == NULL)
		return alloc(user, size);
	p = realloc(ptr, size);
	if (p != NULL || size == 0)
		untrack(user, ptr); /* moved or freed: no longer the session's first */
	return p;
}

void
h2mem_init(struct h2mem *m)
{
	*m = (struct h2mem){
		.mem = {.mem_user_data = m,
			.malloc = mem_malloc,
			.free = mem_free,
			.calloc = mem_calloc,
			.realloc = mem_realloc},
		.starting = true,
	};
}

void
h2mem_session_started(struct h2mem *m)
{
	m->starting = false;
}

size_t
h2mem_release_idle(struct h2mem *m)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	size_t released = 0;

	for (size_t i = 0; i < H2MEM_TRACKED; i++) {
		uintptr_t start, end;

		if (m->big[i] == NULL)
			continue;
		start = ((uintptr_t)m->big[i] + page - 1) & ~(page - 1);
		end = ((uintptr_t)m->big[i] + m->big_size[i]) & ~(page - 1);
		if (end > start && madvise((void *)start, end - start, MADV_DONTNEED) == 0)
			released += end - start;
	}
	return released;
}

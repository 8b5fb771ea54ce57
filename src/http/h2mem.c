/* h2mem: libnghttp2's allocator that releases idle pages; see h2mem.h. */
#include "http/h2mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* A block to remember: whole pages of its own, so that releasing them
 * leaves nothing of it resident; anything else: plain malloc. */
static void *
alloc(struct h2mem *m, size_t size)
{
	size_t page;
	void *p = NULL;

	if (size < H2MEM_BIG || !m->starting || m->big != NULL)
		return malloc(size);
	page = (size_t)sysconf(_SC_PAGESIZE);
	if (size > SIZE_MAX - page)
		return NULL;
	size = (size + page - 1) & ~(page - 1);
	if (posix_memalign(&p, page, size) != 0)
		return NULL;
	m->big = p;
	m->big_size = size;
	return p;
}

static void *
mem_malloc(size_t size, void *user)
{
	return alloc(user, size);
}

/* <ptr> is freed or moved: forget it if it is the remembered block. */
static void
forget(struct h2mem *m, const void *ptr)
{
	if (ptr != NULL && ptr == m->big) {
		m->big = NULL;
		m->big_size = 0;
	}
}

static void
mem_free(void *ptr, void *user)
{
	forget(user, ptr);
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
	if (ptr == NULL)
		return alloc(user, size);
	forget(user, ptr); /* resized: no longer the block the session started with */
	return realloc(ptr, size);
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
	if (m->big == NULL || madvise(m->big, m->big_size, MADV_DONTNEED) != 0)
		return 0;
	return m->big_size;
}

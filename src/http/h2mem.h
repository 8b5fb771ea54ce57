/*
 * h2mem: libnghttp2's allocator for one HTTP/2 session, so an idle session
 * costs less memory.
 *
 * libnghttp2 allocates a frame buffer of 16 KiB plus a few bytes when a
 * session starts and keeps it for the session's life, although between
 * frames it holds nothing (the buffer is reset once a frame is out).  This
 * allocator takes memory from malloc as the default one does, but gives the
 * first block of H2MEM_BIG bytes or more that the session allocates while it
 * starts (the frame buffer) whole pages of its own and remembers it; later
 * big blocks, such as a large header kept in the HPACK table, hold live data
 * and are left alone.  Once the session has nothing queued or half sent,
 * h2mem_release_idle hands those pages back to the kernel
 * (MADV_DONTNEED: the block stays allocated, its pages read as zeros and are
 * faulted in again by the next frame), so an idle session keeps none of its
 * frame buffer resident.
 */
#ifndef PORTCULLIS_H2MEM_H
#define PORTCULLIS_H2MEM_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

#define H2MEM_BIG 8192     /* the frame buffer: the first block this large */

struct h2mem {
	nghttp2_mem mem;   /* hand &mem to nghttp2_session_server_new3 */
	void *big;         /* the frame buffer (page-aligned), or NULL */
	size_t big_size;   /* ... its size, whole pages */
	bool starting;     /* the session is being created */
};

/* Set <m> up as an allocator that remembers the first big block until
 * h2mem_session_started; it must outlive the session that uses it. */
void h2mem_init(struct h2mem *m);

/* The session is created: big blocks allocated from now on are plain
 * malloc and never released. */
void h2mem_session_started(struct h2mem *m);

/* The session has nothing queued or half sent (nghttp2_session_want_write
 * is false): give the frame buffer's pages back to the kernel.  Returns the
 * bytes released. */
size_t h2mem_release_idle(struct h2mem *m);

#endif

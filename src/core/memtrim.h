/*
 * memtrim: give freed heap memory back to the kernel once the load is gone.
 *
 * The process keeps freed memory while it works (main.c's mallopt: 64 KiB
 * buffers come and go by the thousand, and handing each back would fault it
 * in again at the next read).  Left alone, what a burst of connections
 * used stays resident for good.  A timer on the main loop checks every few
 * seconds: when no request is in flight and the allocator holds more than
 * a few MiB free, malloc_trim(0) returns it (every arena, pages in the
 * middle of the heap too).  Under load nothing is trimmed, so the fast
 * reuse stays; within one period after the load ends, the memory is back.
 */
#ifndef PORTCULLIS_MEMTRIM_H
#define PORTCULLIS_MEMTRIM_H

#include <stddef.h>

struct event_base;
struct memtrim;

/* Start checking on <base> every <seconds>, trimming once at least
 * <min_free> bytes are free in the allocator.  NULL when out of memory (or
 * without glibc: nothing to do, and NULL too). */
struct memtrim *memtrim_start(struct event_base *base, double seconds, size_t min_free);

/* Stop and free.  Accepts NULL. */
void memtrim_free(struct memtrim *m);

#endif

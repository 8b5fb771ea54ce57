/*
 * inbuf: the input buffers of client connections (conn.c's c->in), with a
 * few spares kept per thread.
 *
 * A connection gives its input buffer back as soon as everything in it is
 * parsed (so that one streaming a response holds none) and takes one again
 * on its next read: without spares that is a 16 KiB malloc and free per
 * request.  Each thread (each worker's loop) keeps at most INBUF_SPARES
 * buffers of INBUF_SIZE bytes; larger ones (a connection that grew its
 * buffer for a big head) are freed.  Buffers taken belong to the caller
 * until given back; the spares belong to the thread and are freed by
 * inbuf_release_spares, which a thread that ends must call.
 */
#ifndef PORTCULLIS_INBUF_H
#define PORTCULLIS_INBUF_H

#include <stddef.h>

#define INBUF_SIZE 16384 /* one read() */
#define INBUF_SPARES 8   /* per thread: 128 KiB at most */

/* A buffer of INBUF_SIZE bytes (a spare, or malloc'ed); the caller may
 * realloc it.  NULL when out of memory. */
char *inbuf_take(void);

/* Give back <p> of <cap> bytes (from inbuf_take, grown or not).  Accepts NULL. */
void inbuf_give(char *p, size_t cap);

/* Free this thread's spares. */
void inbuf_release_spares(void);

#endif

/*
 * poison: memory kept for reuse (a per-thread spare, an arena after its
 * reset) is marked unusable for AddressSanitizer while it waits, so that a
 * use after release is still reported as it would be after free().  Without
 * ASan the marks cost nothing.
 *
 * Only heap memory may be poisoned (a poisoned stack frame would outlive its
 * function); MEM_UNPOISON before handing the memory out again.
 */
#ifndef PORTCULLIS_POISON_H
#define PORTCULLIS_POISON_H

#if defined(__SANITIZE_ADDRESS__)
#define PORTCULLIS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTCULLIS_ASAN 1
#endif
#endif

#ifdef PORTCULLIS_ASAN
#include <sanitizer/asan_interface.h>
/* <n> bytes at <p> may not be touched until MEM_UNPOISON. */
#define MEM_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
/* <n> bytes at <p> may be used again. */
#define MEM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define MEM_POISON(p, n) ((void)(p), (void)(n))
#define MEM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif

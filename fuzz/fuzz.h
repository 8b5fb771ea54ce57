/*
 * fuzz.h: what every harness of fuzz/ shares.  A harness defines
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer (clang,
 * -DPORTCULLIS_FUZZ=ON) or with replay_main.c, which runs it over corpus files
 * (the CTest replay, any compiler).  FUZZ_CHECK aborts on a broken contract, so
 * both drivers report it as a crash.
 */
#ifndef PORTCULLIS_FUZZ_H
#define PORTCULLIS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: contract broken: %s\n", __FILE__, __LINE__, \
				#cond);                                                    \
			abort();                                                           \
		}                                                                          \
	} while (0)

#endif

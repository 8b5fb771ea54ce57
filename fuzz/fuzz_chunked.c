/*
 * fuzz_chunked: feeds arbitrary bytes to the chunked body decoder
 * (src/http/chunked.c) as a request body would arrive after its head.
 *
 * Contract checked (aborts when broken):
 *   - the input decoded whole and decoded in two pieces split at any point
 *     (the first byte picks it) give the same result, the same bytes used
 *     and the same data: the decoder does not depend on how reads split;
 *   - MORE consumes every byte; DONE and ERROR never more than given;
 *   - the data handed out is never more than the input, and an ERROR always
 *     says why;
 *   - an emit callback that refuses stops the decoder with ERROR and no
 *     reason (why = NULL).
 */
#include <string.h>

#include "fuzz.h"
#include "http/chunked.h"

struct sink {
	unsigned char *data;
	size_t len, cap;
	size_t refuse_at; /* refuse once len would pass it (SIZE_MAX: never) */
};

static int
emit(void *arg, const char *d, size_t n)
{
	struct sink *s = arg;

	if (s->len + n > s->refuse_at)
		return -1;
	FUZZ_CHECK(s->len + n <= s->cap);
	memcpy(s->data + s->len, d, n);
	s->len += n;
	return 0;
}

/* Decode data[0..size) in pieces ending at <cuts> (ascending, the last = size). */
static enum chunked_result
decode(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts, struct sink *s,
       size_t *total_used, const char **why)
{
	struct chunked d;
	enum chunked_result r = CHUNKED_MORE;
	size_t off = 0;

	chunked_init(&d);
	*why = NULL;
	for (size_t i = 0; i < ncuts && r == CHUNKED_MORE; i++) {
		size_t n = cuts[i] - off, used = (size_t)-1;

		r = chunked_decode(&d, (const char *)data + off, n, &used, emit, s, why);
		FUZZ_CHECK(used <= n);
		if (r == CHUNKED_MORE)
			FUZZ_CHECK(used == n);
		off += used;
	}
	*total_used = off;
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *a = malloc(size + 1), *b = malloc(size + 1);
	struct sink whole = {a, 0, size, SIZE_MAX}, split = {b, 0, size, SIZE_MAX};
	size_t used_whole, used_split, cut, cuts[2];
	const char *why_whole, *why_split;
	enum chunked_result r_whole, r_split;

	FUZZ_CHECK(a != NULL && b != NULL);
	cuts[0] = size;
	r_whole = decode(data, size, cuts, 1, &whole, &used_whole, &why_whole);
	FUZZ_CHECK(whole.len <= size);
	if (r_whole == CHUNKED_ERROR)
		FUZZ_CHECK(why_whole != NULL);

	cut = size > 0 ? data[0] % (size + 1) : 0;
	cuts[0] = cut;
	cuts[1] = size;
	r_split = decode(data, size, cuts, 2, &split, &used_split, &why_split);
	FUZZ_CHECK(r_split == r_whole);
	FUZZ_CHECK(used_split == used_whole);
	FUZZ_CHECK(split.len == whole.len && memcmp(a, b, whole.len) == 0);

	/* a refusing consumer: stops with ERROR and no reason */
	if (whole.len > 0) {
		struct sink refuse = {b, 0, size, whole.len - 1};

		cuts[0] = size;
		r_split = decode(data, size, cuts, 1, &refuse, &used_split, &why_split);
		FUZZ_CHECK(r_split == CHUNKED_ERROR);
		FUZZ_CHECK(refuse.len < whole.len);
	}
	free(a);
	free(b);
	return 0;
}

/*
 * Unit tests for h2mem: a real libnghttp2 server session on the allocator
 * gets its frame buffer on whole pages of its own; releasing them while the
 * session is idle leaves none of them resident (mincore), and the session
 * frames correctly afterwards.  Big blocks allocated after the start are not
 * remembered, and neither is a block once resized.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "http/h2mem.h"

static size_t
page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Resident pages of [p, p + len), p page-aligned. */
static size_t
resident_pages(const void *p, size_t len)
{
	size_t n = (len + page_size() - 1) / page_size(), resident = 0;
	unsigned char vec[64];

	assert_true(n <= sizeof(vec));
	assert_int_equal(mincore((void *)(uintptr_t)p, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		resident += vec[i] & 1;
	return resident;
}

static nghttp2_session *
server_session(struct h2mem *m)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *ng = NULL;

	h2mem_init(m);
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	assert_int_equal(nghttp2_session_server_new3(&ng, cb, NULL, NULL, &m->mem), 0);
	nghttp2_session_callbacks_del(cb);
	h2mem_session_started(m);
	return ng;
}

/* The frames nghttp2 has queued, as it would send them. */
static size_t
drain(nghttp2_session *ng, uint8_t *out, size_t room)
{
	size_t n = 0;
	const uint8_t *data;
	ssize_t len;

	while ((len = nghttp2_session_mem_send(ng, &data)) > 0) {
		assert_true(n + (size_t)len <= room);
		memcpy(out + n, data, (size_t)len);
		n += (size_t)len;
	}
	assert_true(len == 0);
	return n;
}

static void
frame_buffer_is_released_and_reused(void **state)
{
	struct h2mem m;
	nghttp2_session *ng = server_session(&m);
	uint8_t out[256], ping[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	const void *buf = m.big;
	size_t len = m.big_size, n;

	(void)state;
	assert_non_null(buf);
	assert_true(len >= 16384 + 9);
	assert_int_equal((uintptr_t)buf % page_size(), 0);
	assert_int_equal(len % page_size(), 0);

	memset((void *)(uintptr_t)buf, 0xa5, len); /* as if a busy session had used it all */
	assert_int_equal(resident_pages(buf, len), len / page_size());
	assert_int_equal(nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	assert_int_equal(drain(ng, out, sizeof(out)), 9); /* an empty SETTINGS frame */
	assert_false(nghttp2_session_want_write(ng));

	assert_int_equal(h2mem_release_idle(&m), len);
	assert_int_equal(resident_pages(buf, len), 0);

	/* The next frame is written into the released pages. */
	assert_int_equal(nghttp2_submit_ping(ng, NGHTTP2_FLAG_NONE, ping), 0);
	n = drain(ng, out, sizeof(out));
	assert_int_equal(n, 9 + 8);
	assert_int_equal(out[3], NGHTTP2_PING);
	assert_memory_equal(out + 9, ping, 8);
	nghttp2_session_del(ng);
}

static void
later_and_resized_blocks_are_not_remembered(void **state)
{
	struct h2mem m;
	nghttp2_session *ng = server_session(&m);
	void *later = m.mem.malloc(4 * H2MEM_BIG, m.mem.mem_user_data);
	void *first = m.big;

	(void)state;
	assert_non_null(later);
	memset(later, 0x5a, 4 * H2MEM_BIG);
	assert_ptr_not_equal(m.big, later);
	h2mem_release_idle(&m);
	for (size_t i = 0; i < 4 * H2MEM_BIG; i++)
		assert_int_equal(((unsigned char *)later)[i], 0x5a); /* live data left alone */
	m.mem.free(later, m.mem.mem_user_data);

	/* A remembered block that is resized is forgotten (the session's own
	 * frame buffer never is; a stand-in shows it). */
	{
		struct h2mem solo;
		void *block, *grown;

		h2mem_init(&solo);
		block = solo.mem.malloc(2 * H2MEM_BIG, solo.mem.mem_user_data);
		assert_ptr_equal(solo.big, block);
		h2mem_session_started(&solo);
		grown = solo.mem.realloc(block, 3 * H2MEM_BIG, solo.mem.mem_user_data);
		assert_non_null(grown);
		assert_null(solo.big);
		assert_int_equal(h2mem_release_idle(&solo), 0);
		solo.mem.free(grown, solo.mem.mem_user_data);
	}
	assert_ptr_equal(m.big, first);
	nghttp2_session_del(ng);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frame_buffer_is_released_and_reused),
		cmocka_unit_test(later_and_resized_blocks_are_not_remembered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

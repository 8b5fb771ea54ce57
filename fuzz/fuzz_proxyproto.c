/*
 * fuzz_proxyproto: feeds arbitrary bytes to the PROXY protocol v1/v2 header
 * parser (src/http/proxyproto.c) as the first bytes of a connection.
 *
 * Contract checked (aborts when broken):
 *   - OK: the header fits the input and PROXYPROTO_MAX_HEADER; an address,
 *     when given, is IPv4 or IPv6 for both ends; the header alone parses to
 *     the same result, and every shorter prefix of it asks for more (the
 *     caller reads until the parser stops asking, so a prefix that was
 *     refused or taken would cut a valid header);
 *   - INVALID always says why; NEED_MORE only below the largest header;
 *   - parsing is deterministic (twice, the same answer).
 */
#include <string.h>

#include "fuzz.h"
#include "http/proxyproto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto_info info, again;
	const char *why = NULL;
	enum proxyproto_result r;

	memset(&info, 0, sizeof(info));
	r = proxyproto_parse(data, size, &info, &why);

	FUZZ_CHECK(r == PROXYPROTO_NEED_MORE || r == PROXYPROTO_OK || r == PROXYPROTO_INVALID);
	if (r == PROXYPROTO_INVALID) {
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		FUZZ_CHECK(proxyproto_parse(data, size, &again, NULL) == PROXYPROTO_INVALID);
		return 0;
	}
	if (r == PROXYPROTO_NEED_MORE) {
		FUZZ_CHECK(size < PROXYPROTO_MAX_HEADER);
		return 0;
	}
	FUZZ_CHECK(info.header_len > 0 && info.header_len <= size);
	FUZZ_CHECK(info.header_len <= PROXYPROTO_MAX_HEADER);
	if (info.has_address) {
		FUZZ_CHECK(info.src.ss_family == AF_INET || info.src.ss_family == AF_INET6);
		FUZZ_CHECK(info.dst.ss_family == info.src.ss_family);
	}
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(proxyproto_parse(data, info.header_len, &again, NULL) == PROXYPROTO_OK);
	FUZZ_CHECK(again.header_len == info.header_len);
	FUZZ_CHECK(again.has_address == info.has_address);
	if (info.has_address)
		FUZZ_CHECK(memcmp(&again.src, &info.src, sizeof(info.src)) == 0 &&
			   memcmp(&again.dst, &info.dst, sizeof(info.dst)) == 0);
	for (size_t n = 0; n < info.header_len; n++)
		FUZZ_CHECK(proxyproto_parse(data, n, &again, NULL) == PROXYPROTO_NEED_MORE);
	return 0;
}

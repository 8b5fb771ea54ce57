/*
 * fuzz_session: sealed session cookies (src/auth/session.c) with a fixed
 * key.  The first byte picks what the rest is:
 *   - even: a cookie value as a browser sends it back, opened for the
 *     purpose "session" by session_open, session_open_session and
 *     session_open_cached (twice: the second from the thread's cache);
 *   - odd: the plaintext a seal carries, decoded by session_decode (a
 *     forged cookie cannot get there, a key holder's or a future format's
 *     can), then sealed, opened and decoded again.
 *
 * Contract checked (aborts when broken):
 *   - the three ways of opening agree (all open, or none does), and open to
 *     the same session, the cached one twice to the same pointer;
 *   - a sealed text never opens for another purpose;
 *   - a decoded session encodes to bytes that decode to an equal session
 *     (encode/decode round trip), and seal then open gives it back;
 *   - session_is_valid and session_attr do not read out of bounds.
 */
#include <string.h>

#include "auth/session.h"
#include "fuzz.h"

static struct session_keys *keys;

static bool
same_session(const struct session *a, const struct session *b)
{
	if (a->issued != b->issued || a->expires != b->expires || a->last_seen != b->last_seen ||
	    strcmp(a->name_id, b->name_id) != 0 || a->nattrs != b->nattrs)
		return false;
	for (size_t i = 0; i < a->nattrs; i++) {
		if (strcmp(a->attrs[i].name, b->attrs[i].name) != 0 ||
		    strcmp(a->attrs[i].value, b->attrs[i].value) != 0)
			return false;
	}
	return true;
}

static void
check_decoded(const struct session *s)
{
	unsigned char *enc;
	struct session *again;
	char *sealed;
	size_t len;

	(void)session_is_valid(s, 1700000000, 3600, 60);
	if (s->nattrs > 0)
		FUZZ_CHECK(session_attr(s, s->attrs[0].name) != NULL);
	enc = session_encode(s, &len);
	FUZZ_CHECK(enc != NULL);
	again = session_decode(enc, len);
	FUZZ_CHECK(again != NULL && same_session(s, again));
	session_free(again);
	free(enc);
	sealed = session_seal_session(keys, "session", s);
	if (sealed == NULL)
		return; /* over SESSION_MAX_SEALED */
	FUZZ_CHECK(strlen(sealed) <= SESSION_MAX_SEALED);
	again = session_open_session(keys, "session", sealed);
	FUZZ_CHECK(again != NULL && same_session(s, again));
	session_free(again);
	FUZZ_CHECK(session_open_session(keys, "saml-request/x", sealed) == NULL);
	free(sealed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (keys == NULL) {
		unsigned char raw[SESSION_KEY_BYTES * 2];

		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)(i + 1);
		keys = session_keys_from_raw(raw, 2); /* the second key opens only */
		FUZZ_CHECK(keys != NULL);
	}
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		struct session *s = session_decode(data + 1, size - 1);

		if (s != NULL)
			check_decoded(s);
		session_free(s);
		return 0;
	}
	text = malloc(size);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	{
		unsigned char *plain = NULL;
		size_t len = 0;
		int opened = session_open(keys, "session", text, &plain, &len);
		struct session *s = session_open_session(keys, "session", text);
		const struct session *c1, *c2;

		if (opened == 0) {
			struct session *d = session_decode(plain, len);

			FUZZ_CHECK((d != NULL) == (s != NULL));
			if (d != NULL) {
				FUZZ_CHECK(same_session(d, s));
				check_decoded(d);
			}
			session_free(d);
			free(plain);
			FUZZ_CHECK(session_open(keys, "other", text, &plain, &len) != 0);
		} else {
			FUZZ_CHECK(opened == -1 && s == NULL);
		}
		c1 = session_open_cached(keys, "session", text);
		FUZZ_CHECK((c1 != NULL) == (s != NULL));
		if (c1 != NULL)
			FUZZ_CHECK(same_session(c1, s));
		c2 = session_open_cached(keys, "session", text);
		FUZZ_CHECK(c2 == c1);
		session_free(s);
	}
	free(text);
	return 0;
}

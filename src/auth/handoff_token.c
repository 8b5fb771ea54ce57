/* handoff_token: the sealed single-use sign-in hand-off; see handoff_token.h. */
#include "auth/handoff_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define HANDOFF_MAGIC "HT1"
#define HANDOFF_RAW (HANDOFF_ID_HEX / 2)
/* "handoff " + origin: the seal's purpose (GCM additional data). */
#define HANDOFF_PURPOSE_MAX 600

static bool
handoff_purpose(const char *origin, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "handoff %s", origin ? origin : "");

	return origin != NULL && n > 0 && (size_t)n < outlen;
}

bool
handoff_hex_ok(const char *s)
{
	return s != NULL && strlen(s) == HANDOFF_ID_HEX &&
	       strspn(s, "0123456789abcdef") == HANDOFF_ID_HEX;
}

static void
handoff_hex(const unsigned char *raw, char *out)
{
	for (size_t i = 0; i < HANDOFF_RAW; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void
handoff_unhex(const char *hex, unsigned char *raw)
{
	for (size_t i = 0; i < HANDOFF_RAW; i++) {
		unsigned v = 0;

		sscanf(hex + 2 * i, "%2x", &v);
		raw[i] = (unsigned char)v;
	}
}

/* Layout: "HT1", not_after (8 bytes, big-endian), id (16), state (16),
 * target length (2), target, then session_encode of the session. */
char *
handoff_token_seal(const struct session_keys *k, const char *origin, const struct session *s,
		   const char *state, const char *target, int64_t now, int64_t lifetime)
{
	char purpose[HANDOFF_PURPOSE_MAX];
	unsigned char *plain = NULL, *enc = NULL, *p;
	size_t tlen = target ? strlen(target) : 0, elen = 0, len;
	uint64_t end = (uint64_t)(now + lifetime);
	char *token = NULL;

	if (!handoff_purpose(origin, purpose, sizeof purpose) || !handoff_hex_ok(state) ||
	    target == NULL || tlen > 0xffff || (enc = session_encode(s, &elen)) == NULL)
		goto out;
	len = 3 + 8 + 2 * HANDOFF_RAW + 2 + tlen + elen;
	if ((plain = malloc(len)) == NULL)
		goto out;
	p = plain;
	memcpy(p, HANDOFF_MAGIC, 3);
	p += 3;
	for (int i = 7; i >= 0; i--)
		*p++ = (unsigned char)(end >> (8 * i));
	if (RAND_bytes(p, HANDOFF_RAW) != 1)
		goto out;
	p += HANDOFF_RAW;
	handoff_unhex(state, p);
	p += HANDOFF_RAW;
	*p++ = (unsigned char)(tlen >> 8);
	*p++ = (unsigned char)tlen;
	memcpy(p, target, tlen);
	p += tlen;
	memcpy(p, enc, elen);
	token = session_seal(k, purpose, plain, len);
out:
	if (plain != NULL)
		OPENSSL_cleanse(plain, len);
	free(plain);
	free(enc);
	return token;
}

struct handoff *
handoff_token_open(const struct session_keys *k, const char *origin, const char *token,
		   int64_t now, char *err, size_t errlen)
{
	char purpose[HANDOFF_PURPOSE_MAX];
	unsigned char *plain = NULL;
	const unsigned char *p;
	size_t len = 0, tlen;
	uint64_t end = 0;
	struct handoff *h = NULL;

	if (!handoff_purpose(origin, purpose, sizeof purpose) ||
	    session_open(k, purpose, token, &plain, &len) < 0) {
		snprintf(err, errlen, "does not open (changed, sealed with a key we do not hold, or "
				      "made for another host)");
		return NULL;
	}
	if (len < 3 + 8 + 2 * HANDOFF_RAW + 2 || memcmp(plain, HANDOFF_MAGIC, 3) != 0) {
		snprintf(err, errlen, "malformed");
		goto fail;
	}
	p = plain + 3;
	for (int i = 0; i < 8; i++)
		end = end << 8 | *p++;
	if ((h = calloc(1, sizeof *h)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->not_after = (int64_t)end;
	handoff_hex(p, h->id);
	p += HANDOFF_RAW;
	handoff_hex(p, h->state);
	p += HANDOFF_RAW;
	tlen = (size_t)p[0] << 8 | p[1];
	p += 2;
	if (tlen > len - (size_t)(p - plain)) {
		snprintf(err, errlen, "malformed");
		goto fail;
	}
	if ((h->target = strndup((const char *)p, tlen)) == NULL ||
	    (h->session = session_decode(p + tlen, len - (size_t)(p - plain) - tlen)) == NULL) {
		snprintf(err, errlen, "malformed");
		goto fail;
	}
	if (now >= h->not_after) {
		snprintf(err, errlen, "expired %lld s ago (a hand-off is valid for seconds)",
			 (long long)(now - h->not_after + 1));
		goto fail;
	}
	OPENSSL_cleanse(plain, len);
	free(plain);
	return h;
fail:
	OPENSSL_cleanse(plain, len);
	free(plain);
	handoff_free(h);
	return NULL;
}

void
handoff_free(struct handoff *h)
{
	if (h == NULL)
		return;
	free(h->target);
	session_free(h->session);
	free(h);
}

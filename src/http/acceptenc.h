/*
 * acceptenc: the content codings a client accepts (Accept-Encoding, RFC 9110
 * section 12.5.3) and which of the codings we offer to answer it with.  Pure
 * parsing and choice: it compresses nothing and reads no configuration;
 * proxy/compress.c calls it for each response it may compress.
 */
#ifndef PORTCULLIS_ACCEPTENC_H
#define PORTCULLIS_ACCEPTENC_H

#include <stdbool.h>

/* The codings Portcullis produces, as bits of a set ("offered"). */
enum acceptenc_coding {
	ACCEPTENC_IDENTITY = 0, /* no coding: send the body as it is */
	ACCEPTENC_GZIP = 1,
	ACCEPTENC_ZSTD = 2,
	ACCEPTENC_BR = 4,
};
#define ACCEPTENC_ALL (ACCEPTENC_GZIP | ACCEPTENC_ZSTD | ACCEPTENC_BR)

/* What the client's Accept-Encoding headers said: a quality (0..1000) per
 * coding, -1 where a coding was not named. */
struct acceptenc {
	bool seen;    /* at least one Accept-Encoding header */
	int gzip, zstd, br, identity, star;
};

/* Make <a> say "no Accept-Encoding header". */
void acceptenc_init(struct acceptenc *a);

/* Add one Accept-Encoding header value <value> to <a> (call once per header
 * line).  Elements that do not parse (a bad q-value, an empty coding) are
 * left out, as if not sent. */
void acceptenc_add(struct acceptenc *a, const char *value);

/*
 * The coding to answer with, among <offered> (a set of ACCEPTENC_* bits):
 * the one the client gives the highest quality above 0 (a coding not named
 * takes the quality of "*", else is not acceptable); on equal quality our
 * preference br, then zstd, then gzip.  ACCEPTENC_IDENTITY when none is
 * acceptable, when there was no Accept-Encoding header, or when the client
 * named "identity" (or "*" without identity) with a higher quality than the
 * best coding.
 */
enum acceptenc_coding acceptenc_choose(const struct acceptenc *a, unsigned offered);

/* The coding's token for Content-Encoding ("gzip", "zstd", "br"), or NULL for
 * ACCEPTENC_IDENTITY. */
const char *acceptenc_name(enum acceptenc_coding c);

#endif

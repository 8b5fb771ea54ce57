/*
 * headscan: a strict scanner of request-head line endings, run over the bytes
 * of a request head as they arrive, before http-parser sees them (h1.c).
 * Pure: no libevent.
 *
 * Why ours: Debian builds http-parser without HTTP_PARSER_STRICT, so it takes
 * folded header lines (obs-fold) and bare CRs.  A proxy must not accept a head
 * that another parser in front of or behind it could read another way, so
 * both are refused here.
 */
#ifndef PORTCULLIS_HEADSCAN_H
#define PORTCULLIS_HEADSCAN_H

#include <stddef.h>

/* Line endings of a request head, checked as the bytes arrive. */
struct headscan {
	int state;
};

enum headscan_result {
	HEADSCAN_MORE,  /* no problem so far, the head goes on */
	HEADSCAN_DONE,  /* the head ended (blank line) inside these bytes */
	HEADSCAN_FOLD,  /* a line starting with space or tab: obs-fold */
	HEADSCAN_BARE_CR, /* CR not followed by LF */
};

/* Start scanning a new request head (leading empty lines are skipped). */
void headscan_init(struct headscan *h);

/* Scan <len> more bytes; stops at the end of the head or at a problem.
 * *used: bytes scanned. */
enum headscan_result headscan_feed(struct headscan *h, const char *in, size_t len, size_t *used);

#endif

/*
 * refusals: the last REFUSALS_KEPT requests the proxy refused on purpose (an
 * access rule, a rate limit, a 401 for a missing session, a policy's 403),
 * for the status page of the admin listener.  One process-wide ring under a
 * mutex: workers record (refusals are rare next to requests, and recording
 * copies a few short strings), the main thread reads a copy.  Not a log:
 * older entries are overwritten and nothing survives a restart.
 */
#ifndef PORTCULLIS_REFUSALS_H
#define PORTCULLIS_REFUSALS_H

#include <stddef.h>

#define REFUSALS_KEPT 64

/* One refusal; strings cut to their buffers, NUL-terminated. */
struct refusal {
	double when;      /* seconds since the epoch */
	int status;       /* 401, 403, 429 */
	char client[46];  /* the client address as the access log has it */
	char rule[160];   /* the JSON path of the rule that refused */
	char path[256];   /* the normalized request path */
};

/* Remember one refusal (any argument but <status> may be NULL: then ""),
 * overwriting the oldest when REFUSALS_KEPT are kept.  Any thread. */
void refusals_record(double when, int status, const char *client, const char *rule,
		     const char *path);

/* Copy up to <max> refusals, newest first, into <out>; returns how many. */
size_t refusals_snapshot(struct refusal *out, size_t max);

#endif

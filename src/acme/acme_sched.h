/*
 * acme_sched: the renewal arithmetic of the ACME client — when to renew a
 * certificate (a third of its lifetime left, half for certificates of 10 days
 * or less, minus jitter), when to try again after a failure (doubling from a
 * base to a ceiling, sooner as expiry nears, never before the CA's
 * Retry-After), where to land inside an ARI suggested window, and parsing of
 * Retry-After and RFC 3339 times.  Pure: no I/O, no clock (callers pass
 * <now>), no randomness (callers pass <rnd>), so everything is unit-tested.
 */
#ifndef PORTCULLIS_ACME_SCHED_H
#define PORTCULLIS_ACME_SCHED_H

#include <stdint.h>
#include <time.h>

/* Certificates this short-lived or shorter renew at half their lifetime. */
#define ACME_SCHED_SHORT_LIFETIME (10 * 86400)

/*
 * The time to renew a certificate valid from <not_before> to <not_after>:
 * not_after - lifetime/3 (lifetime/2 for short certificates), moved earlier by
 * a jitter of <rnd> modulo min(lifetime/20, 12 h) + 1 seconds.
 */
time_t acme_sched_renew_at(time_t not_before, time_t not_after, uint32_t rnd);

/* Back-off after <failures> (>= 1) consecutive failures: base * 2^(failures-1)
 * seconds, at most <max_delay>. */
unsigned acme_sched_backoff(unsigned failures, unsigned base, unsigned max_delay);

/*
 * The next attempt after a failure at <now>: now + back-off, but (when a
 * certificate still valid until <not_after> is being renewed; 0 if none) no
 * later than a quarter of the time it has left and never sooner than <base>;
 * and never before <retry_after> (0 if the CA gave none).
 */
time_t acme_sched_next_attempt(time_t now, unsigned failures, unsigned base, unsigned max_delay,
			       time_t not_after, time_t retry_after);

/* A time inside the ARI window [start, end): start + rnd modulo its length;
 * <now> if the window has already ended.  -1 if the window is empty. */
time_t acme_sched_ari_pick(time_t start, time_t end, time_t now, uint32_t rnd);

/* Parse a Retry-After value (delta seconds or an IMF-fixdate) received at
 * <now> into an absolute time, capped at now + 8 days.  0 or -1. */
int acme_sched_parse_retry_after(const char *value, time_t now, time_t *out);

/* Parse an RFC 3339 time ("2025-01-02T03:04:05Z", fraction and offset
 * allowed) into seconds since the epoch.  0 or -1. */
int acme_sched_parse_rfc3339(const char *s, time_t *out);

#endif

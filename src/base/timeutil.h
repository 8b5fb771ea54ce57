/*
 * timeutil: small time conversions shared by the event-loop modules.
 */
#ifndef PORTCULLIS_TIMEUTIL_H
#define PORTCULLIS_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* A struct timeval for a duration in (fractional) seconds. */
static inline struct timeval
timeval_from_seconds(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

/* Milliseconds of the monotonic clock. */
static inline int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds of the monotonic clock, with their fraction. */
static inline double
monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* <t> as an RFC 3339 UTC time to the second ("2026-01-31T23:59:59Z") into
 * <buf> of <len> bytes (21 are enough). */
static inline void
timeutil_format_utc(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#endif

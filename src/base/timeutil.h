/*
 * timeutil: small time conversions shared by the event-loop modules.
 */
#ifndef PORTCULLIS_TIMEUTIL_H
#define PORTCULLIS_TIMEUTIL_H

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

#endif

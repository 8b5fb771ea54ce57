/* acme_sched: renewal and retry arithmetic; see acme_sched.h. */
#include "acme/acme_sched.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_AFTER_CAP (8 * 86400)

time_t
acme_sched_renew_at(time_t not_before, time_t not_after, uint32_t rnd)
{
	time_t lifetime = not_after - not_before;
	time_t left, jitter_span;

	if (lifetime <= 0)
		return not_before;
	left = lifetime <= ACME_SCHED_SHORT_LIFETIME ? lifetime / 2 : lifetime / 3;
	jitter_span = lifetime / 20;
	if (jitter_span > 12 * 3600)
		jitter_span = 12 * 3600;
	return not_after - left - (time_t)(rnd % ((uint32_t)jitter_span + 1));
}

unsigned
acme_sched_backoff(unsigned failures, unsigned base, unsigned max_delay)
{
	unsigned delay = base;

	if (failures == 0)
		return 0;
	while (--failures > 0 && delay < max_delay)
		delay = delay > max_delay / 2 ? max_delay : delay * 2;
	return delay < max_delay ? delay : max_delay;
}

time_t
acme_sched_next_attempt(time_t now, unsigned failures, unsigned base, unsigned max_delay,
			time_t not_after, time_t retry_after)
{
	time_t delay = (time_t)acme_sched_backoff(failures ? failures : 1, base, max_delay);
	time_t next;

	if (not_after > now) {
		time_t quarter = (not_after - now) / 4;

		if (quarter < (time_t)base)
			quarter = (time_t)base;
		if (delay > quarter)
			delay = quarter;
	}
	next = now + delay;
	if (retry_after > next)
		next = retry_after;
	return next;
}

time_t
acme_sched_ari_pick(time_t start, time_t end, time_t now, uint32_t rnd)
{
	if (end <= start)
		return -1;
	if (end <= now)
		return now;
	if (start < now)
		start = now;
	return start + (time_t)(rnd % (uint64_t)(end - start));
}

int
acme_sched_parse_retry_after(const char *value, time_t now, time_t *out)
{
	struct tm tm;
	const char *end;
	time_t t;

	while (*value == ' ' || *value == '\t')
		value++;
	if (isdigit((unsigned char)*value)) {
		char *e;
		unsigned long long secs = strtoull(value, &e, 10);

		while (*e == ' ' || *e == '\t')
			e++;
		if (*e != '\0')
			return -1;
		if (secs > RETRY_AFTER_CAP)
			secs = RETRY_AFTER_CAP;
		*out = now + (time_t)secs;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	if (t < now)
		t = now;
	if (t > now + RETRY_AFTER_CAP)
		t = now + RETRY_AFTER_CAP;
	*out = t;
	return 0;
}

static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int
acme_sched_parse_rfc3339(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	long offset = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
	    digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' '))
		return -1;
	s++;
	if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
	    digits(&s, 2, &sec))
		return -1;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1;

		s++;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om))
			return -1;
		offset = sign * (oh * 3600L + om * 60L);
	} else {
		return -1;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    oh > 23 || om > 59)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = t - offset;
	return 0;
}

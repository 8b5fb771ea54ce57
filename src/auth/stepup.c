/* stepup: step-up rules over sessions; see stepup.h. */
#include "auth/stepup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/session.h"

/* The tracking cookie's attributes that carry a rule. */
#define STEPUP_MARK_PATH "stepup-path"
#define STEPUP_MARK_CLASS "stepup-class"
#define STEPUP_MARK_MINIMUM "stepup-minimum"
#define STEPUP_MARK_MAX_AGE "stepup-max-age"

/* A decimal int64 from <s>, or -1 when it is not one. */
static int64_t
stepup_number(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	return (errno != 0 || *end != '\0' || v < 0) ? -1 : (int64_t)v;
}

bool
stepup_satisfied(const struct stepup_rule *r, const struct session *s, int64_t now, int64_t skew,
		 char *why, size_t len)
{
	const char *class_ref = session_attr(s, STEPUP_ATTR_CLASS);
	int64_t instant = stepup_number(session_attr(s, STEPUP_ATTR_INSTANT));
	bool ok = r->nclasses == 0;

	for (size_t i = 0; i < r->nclasses && !ok && class_ref != NULL; i++)
		ok = strcmp(class_ref, r->classes[i]) == 0;
	if (!ok) {
		int n = snprintf(why, len, "AuthnContextClassRef %s%s%s is not one of ",
				 class_ref ? "\"" : "", class_ref ? class_ref : "(none recorded)",
				 class_ref ? "\"" : "");

		for (size_t i = 0; i < r->nclasses && n >= 0 && (size_t)n < len; i++)
			n += snprintf(why + n, len - (size_t)n, "%s\"%s\"", i ? ", " : "",
				      r->classes[i]);
		return false;
	}
	if (r->max_age > 0) {
		if (instant < 0) {
			snprintf(why, len, "no AuthnInstant recorded for this session (max_age %" PRId64
					   " s)",
				 r->max_age);
			return false;
		}
		if (instant > now + skew) {
			snprintf(why, len, "AuthnInstant %" PRId64 " s in the future", instant - now);
			return false;
		}
		if (now - instant > r->max_age) {
			snprintf(why, len, "signed in %" PRId64 " s ago, more than max_age %" PRId64 " s",
				 now - instant, r->max_age);
			return false;
		}
	}
	return true;
}

int
stepup_record(struct session *s, const char *class_ref, int64_t instant)
{
	char num[24];

	snprintf(num, sizeof num, "%" PRId64, instant);
	if (class_ref != NULL && session_add_attr(s, STEPUP_ATTR_CLASS, class_ref) < 0)
		return -1;
	return session_add_attr(s, STEPUP_ATTR_INSTANT, num);
}

int
stepup_mark(struct session *track, const struct stepup_rule *r)
{
	char num[24];

	snprintf(num, sizeof num, "%" PRId64, r->max_age);
	if (session_add_attr(track, STEPUP_MARK_PATH, r->path) < 0 ||
	    session_add_attr(track, STEPUP_MARK_MAX_AGE, num) < 0 ||
	    (r->minimum && session_add_attr(track, STEPUP_MARK_MINIMUM, "1") < 0))
		return -1;
	for (size_t i = 0; i < r->nclasses; i++)
		if (session_add_attr(track, STEPUP_MARK_CLASS, r->classes[i]) < 0)
			return -1;
	return 0;
}

int
stepup_marked(const struct session *track, struct stepup_rule *out)
{
	size_t n = 0;

	memset(out, 0, sizeof *out);
	out->path = (char *)(uintptr_t)session_attr(track, STEPUP_MARK_PATH);
	out->max_age = stepup_number(session_attr(track, STEPUP_MARK_MAX_AGE));
	if (out->path == NULL)
		return 0;
	if (out->max_age < 0)
		return -1; /* sealed by us: cannot happen; fail closed */
	out->minimum = session_attr(track, STEPUP_MARK_MINIMUM) != NULL;
	for (size_t i = 0; i < track->nattrs; i++)
		n += strcmp(track->attrs[i].name, STEPUP_MARK_CLASS) == 0;
	if (n > 0 && (out->classes = calloc(n, sizeof *out->classes)) == NULL)
		return -1;
	for (size_t i = 0; i < track->nattrs; i++)
		if (strcmp(track->attrs[i].name, STEPUP_MARK_CLASS) == 0)
			out->classes[out->nclasses++] = track->attrs[i].value;
	return 1;
}

void
stepup_free(struct stepup_rule *r)
{
	if (r == NULL)
		return;
	free(r->path);
	for (size_t i = 0; i < r->nclasses; i++)
		free(r->classes[i]);
	free(r->classes);
	free(r);
}

/*
 * stepup: a route's (or site's) demand on how and how lately its user signed
 * in ("step_up"; docs/saml.md#step-up): one of a list of
 * AuthnContextClassRef values, and/or an AuthnInstant at most max_age
 * seconds old.  A session records the class and the instant of its login as
 * two attributes (sessions sealed before this have neither and meet no
 * step-up rule, but pass every route without one).  A login started to meet
 * a rule carries the rule in its sealed tracking cookie, so the ACS can
 * check the IdP's answer against it and refuse once instead of looping.
 * Pure: no I/O, no global state.
 */
#ifndef PORTCULLIS_STEPUP_H
#define PORTCULLIS_STEPUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

/* The session attributes holding the login's AuthnContextClassRef and its
 * AuthnInstant (decimal seconds since the epoch). */
#define STEPUP_ATTR_CLASS "@authncontext"
#define STEPUP_ATTR_INSTANT "@authninstant"

struct stepup_rule {
	char *path;       /* its JSON path in the config, for pages and log lines */
	char **classes;   /* any of these AuthnContextClassRef values; none: any class */
	size_t nclasses;
	bool minimum;     /* RequestedAuthnContext Comparison "minimum", else "exact" */
	int64_t max_age;  /* seconds since AuthnInstant; 0: no limit */
};

/*
 * True when session <s> meets <r> at <now> (an AuthnInstant up to <skew>
 * seconds in the future counts as now).  Otherwise false, and <why> says
 * what is missing ("AuthnContextClassRef ... is not one of ...", "signed in
 * 900 s ago, more than max_age 300 s").
 */
bool stepup_satisfied(const struct stepup_rule *r, const struct session *s, int64_t now,
		      int64_t skew, char *why, size_t len);

/* Record the login's <class_ref> (may be NULL) and <instant> in <s>.  0 or -1. */
int stepup_record(struct session *s, const char *class_ref, int64_t instant);

/* Write <r> into the tracking cookie session <track>.  0 or -1 (memory). */
int stepup_mark(struct session *track, const struct stepup_rule *r);

/*
 * The rule a tracking cookie <track> carries (stepup_mark) into <out>, whose
 * strings are borrowed from <track> (free out->classes only).  Returns 1
 * when it carries one, 0 when none, -1 when out of memory or malformed
 * (never "none").
 */
int stepup_marked(const struct session *track, struct stepup_rule *out);

/* Free <r> and its strings.  Accepts NULL. */
void stepup_free(struct stepup_rule *r);

#endif

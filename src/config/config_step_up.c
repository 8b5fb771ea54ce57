/*
 * config_step_up: "step_up" on a site and on a route (docs/saml.md#step-up):
 * the AuthnContextClassRef values a login must have had (any of them), how
 * they are asked for (Comparison "exact" or "minimum") and the greatest age
 * of the login.
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "auth/stepup.h"

static const char *const config_step_up_keys[] = { "authn_context", "comparison", "max_age",
						   NULL };
static const char *const config_comparisons[] = { "exact", "minimum", NULL };

struct stepup_rule *
config_parse_step_up(struct config_loader *ld, const char *path, const json_t *v)
{
	char kp[CONFIG_JPATH_MAX];
	struct stepup_rule *r;
	const json_t *f;
	double age = 0;

	if (config_object(ld, path, v, config_step_up_keys) == NULL)
		return NULL;
	if ((r = calloc(1, sizeof *r)) == NULL || (r->path = strdup(path)) == NULL) {
		free(r);
		ld->oom = true;
		return NULL;
	}
	if ((f = json_object_get(v, "authn_context")) != NULL) {
		config_jkey(kp, path, "authn_context");
		if (json_is_string(f)) {
			if ((r->classes = calloc(1, sizeof *r->classes)) == NULL)
				ld->oom = true;
			else if ((r->classes[0] = config_string(ld, kp, f)) != NULL)
				r->nclasses = 1;
		} else {
			config_string_list(ld, kp, f, true,
					   "an AuthnContextClassRef or an array of them",
					   &r->classes, &r->nclasses);
		}
		for (size_t i = 0; i < r->nclasses; i++)
			if (r->classes[i] != NULL &&
			    (r->classes[i][0] == '\0' || strpbrk(r->classes[i], "\r\n") != NULL))
				config_error(ld, kp, "\"%s\" is not an AuthnContextClassRef URI",
					     r->classes[i]);
	}
	if ((f = json_object_get(v, "comparison")) != NULL) {
		int c = 0;

		if (config_enum(ld, config_jkey(kp, path, "comparison"), f, config_comparisons, &c))
			r->minimum = c == 1;
		if (r->nclasses == 0)
			config_error(ld, kp, "needs \"authn_context\"");
	}
	if ((f = json_object_get(v, "max_age")) != NULL &&
	    config_seconds(ld, config_jkey(kp, path, "max_age"), f, &age)) {
		if (age < 1)
			config_error(ld, kp, "must be at least 1 s");
		r->max_age = (int64_t)age;
	}
	if (r->nclasses == 0 && r->max_age == 0 && json_object_get(v, "max_age") == NULL)
		config_error(ld, path, "needs \"authn_context\" and/or \"max_age\"");
	return r;
}

/*
 * config_require: "require" on saml, on a site and on a route
 * (docs/saml.md#per-route-rules): a rule tree for auth/policy.h.
 *
 *   [ rule, ... ]                              every rule (all_of)
 *   { "all_of": [ rule, ... ] }  { "any_of": [ rule, ... ] }
 *   { "attribute": A, "contains" | "equals" | "domain": V }
 *   { "nameid": V }                            the NameID is V
 */
#include "config/config_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"

static const char *const config_require_keys[] = { "all_of", "any_of", "attribute", "contains",
						   "equals",  "domain", "nameid",    NULL };

/* Deeper trees are refused: nobody writes them by hand. */
#define CONFIG_REQUIRE_MAX_DEPTH 8

static void config_require_term(struct config_loader *ld, const char *path, const json_t *v,
				struct policy *out, int depth);

/* A list of terms at <path> into <out> (all_of or any_of). */
static void
config_require_list(struct config_loader *ld, const char *path, const json_t *v,
		    enum policy_kind kind, struct policy *out, int depth)
{
	char ip[CONFIG_JPATH_MAX];
	size_t n;

	out->kind = kind;
	if (!json_is_array(v)) {
		config_type_error(ld, path, "an array of rules", v);
		return;
	}
	n = json_array_size(v);
	if (n == 0) {
		config_error(ld, path, "must not be empty (an empty list %s)",
			     kind == POLICY_ANY_OF ? "never matches" : "says nothing");
		return;
	}
	if ((out->terms = calloc(n, sizeof *out->terms)) == NULL) {
		ld->oom = true;
		return;
	}
	out->nterms = n;
	for (size_t i = 0; i < n; i++)
		config_require_term(ld, config_jidx(ip, path, i), json_array_get(v, i),
				    &out->terms[i], depth + 1);
}

/* One leaf: "attribute" with one test, or "nameid". */
static void
config_require_leaf(struct config_loader *ld, const char *path, const json_t *v,
		    struct policy *out)
{
	static const char *const tests[] = { "contains", "equals", "domain" };
	static const enum policy_kind kinds[] = { POLICY_CONTAINS, POLICY_EQUALS, POLICY_DOMAIN };
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	int found = -1;

	if ((f = json_object_get(v, "nameid")) != NULL) {
		out->kind = POLICY_EQUALS;
		out->attribute = strdup("@nameid");
		if (out->attribute == NULL)
			ld->oom = true;
		out->value = config_string(ld, config_jkey(kp, path, "nameid"), f);
		if (out->value != NULL && out->value[0] == '\0')
			config_error(ld, kp, "must not be empty");
		if (json_object_get(v, "attribute") != NULL)
			config_error(ld, path, "\"nameid\" and \"attribute\" are two rules: put them in "
					       "\"all_of\" or \"any_of\"");
		return;
	}
	if (json_object_get(v, "attribute") == NULL) {
		config_missing(ld, path, "attribute",
			       "the attribute to test (\"Roles\"), or use \"all_of\", \"any_of\", "
			       "\"nameid\"");
		return;
	}
	out->attribute = config_string(ld, config_jkey(kp, path, "attribute"),
				       json_object_get(v, "attribute"));
	if (out->attribute != NULL && out->attribute[0] == '\0')
		config_error(ld, kp, "must name an attribute (\"Roles\") or \"@nameid\"");
	for (int i = 0; i < 3; i++) {
		if (json_object_get(v, tests[i]) == NULL)
			continue;
		if (found >= 0) {
			config_error(ld, path, "\"%s\" and \"%s\": one test per rule (combine rules "
					       "with \"all_of\")",
				     tests[found], tests[i]);
			return;
		}
		found = i;
	}
	if (found < 0) {
		config_missing(ld, path, "contains",
			       "the test: \"contains\" (a group or role), \"equals\" or \"domain\"");
		return;
	}
	out->kind = kinds[found];
	out->value = config_string(ld, config_jkey(kp, path, tests[found]),
				   json_object_get(v, tests[found]));
	if (out->value == NULL)
		return;
	if (out->value[0] == '\0')
		config_error(ld, kp, "must not be empty");
	else if (out->kind == POLICY_DOMAIN &&
		 (strchr(out->value, '@') != NULL || strpbrk(out->value, " \t,") != NULL))
		config_error(ld, kp, "a domain name like \"example.com\" (no \"@\", no spaces)");
}

static void
config_require_term(struct config_loader *ld, const char *path, const json_t *v,
		    struct policy *out, int depth)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *all, *any;

	if ((out->path = strdup(path)) == NULL) {
		ld->oom = true;
		return;
	}
	if (depth > CONFIG_REQUIRE_MAX_DEPTH) {
		config_error(ld, path, "rules nested deeper than %d levels", CONFIG_REQUIRE_MAX_DEPTH);
		return;
	}
	if (json_is_array(v)) {
		config_require_list(ld, path, v, POLICY_ALL_OF, out, depth);
		return;
	}
	if (config_object(ld, path, v, config_require_keys) == NULL) {
		out->kind = POLICY_ANY_OF; /* refuses everyone; the load fails anyway */
		return;
	}
	all = json_object_get(v, "all_of");
	any = json_object_get(v, "any_of");
	if ((all != NULL) + (any != NULL) +
		    (json_object_get(v, "attribute") != NULL || json_object_get(v, "nameid") != NULL) >
	    1) {
		config_error(ld, path, "one of \"all_of\", \"any_of\", \"attribute\" or \"nameid\" "
				       "per object (nest them for more)");
		out->kind = POLICY_ANY_OF;
		return;
	}
	if (all != NULL)
		config_require_list(ld, config_jkey(kp, path, "all_of"), all, POLICY_ALL_OF, out,
				    depth);
	else if (any != NULL)
		config_require_list(ld, config_jkey(kp, path, "any_of"), any, POLICY_ANY_OF, out,
				    depth);
	else
		config_require_leaf(ld, path, v, out);
	if (all != NULL || any != NULL) {
		free(out->path);
		if ((out->path = strdup(kp)) == NULL)
			ld->oom = true;
	}
}

struct policy *
config_parse_require(struct config_loader *ld, const char *path, const json_t *v)
{
	struct policy *p = calloc(1, sizeof *p);
	char why[1024];

	if (p == NULL) {
		ld->oom = true;
		return NULL;
	}
	config_require_term(ld, path, v, p, 0);
	if (ld->nerrors == 0 && !ld->oom && policy_never_matches(p, why, sizeof why))
		config_error(ld, path, "can never match: %s", why);
	return p;
}

/* Count the leaves (attribute names) of <p>. */
static void
config_require_count(const char *name, void *arg)
{
	(void)name;
	(*(size_t *)arg)++;
}

struct config_require_names {
	const char **out;
	size_t n, max;
};

static void
config_require_add(const char *name, void *arg)
{
	struct config_require_names *c = arg;

	if (strcmp(name, "@nameid") == 0 || c->n >= c->max)
		return;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->out[i], name) == 0)
			return;
	c->out[c->n++] = name;
}

const char **
config_require_attributes(const struct config *cfg, size_t *n)
{
	size_t count = 0;
	struct config_require_names c = { NULL, 0, 0 };

	policy_each_attribute(cfg->saml ? cfg->saml->require : NULL, config_require_count, &count);
	for (size_t i = 0; i < cfg->nsites; i++) {
		policy_each_attribute(cfg->sites[i].require, config_require_count, &count);
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			policy_each_attribute(cfg->sites[i].routes[j].require, config_require_count,
					      &count);
	}
	c.max = count;
	*n = 0;
	if ((c.out = calloc(count + 1, sizeof *c.out)) == NULL)
		return NULL;
	policy_each_attribute(cfg->saml ? cfg->saml->require : NULL, config_require_add, &c);
	for (size_t i = 0; i < cfg->nsites; i++) {
		policy_each_attribute(cfg->sites[i].require, config_require_add, &c);
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			policy_each_attribute(cfg->sites[i].routes[j].require, config_require_add, &c);
	}
	*n = c.n;
	return c.out;
}

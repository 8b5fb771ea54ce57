/*
 * policy: evaluation and analysis of "require" rule trees.  See policy.h.
 */
#include "auth/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/session.h"

/* One value holds <value>, or one whole item of a comma-separated value does
 * ("super admin" does not contain "admin"). */
static bool
policy_value_contains(const char *v, const char *value)
{
	size_t n = strlen(value);

	if (strcmp(v, value) == 0)
		return true;
	for (const char *p = v; *p != '\0';) {
		const char *e = strchr(p, ',');
		size_t len;

		if (e == NULL)
			e = p + strlen(p);
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		len = (size_t)(e - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == n && memcmp(p, value, n) == 0)
			return true;
		p = *e == ',' ? e + 1 : e;
	}
	return false;
}

/* The only value of <attr> in <s>; NULL when it has none or several. */
static const char *
policy_single_value(const struct session *s, const char *attr)
{
	const char *found = NULL;

	if (strcmp(attr, "@nameid") == 0)
		return s->name_id;
	for (size_t i = 0; i < s->nattrs; i++) {
		if (strcmp(s->attrs[i].name, attr) != 0)
			continue;
		if (found != NULL)
			return NULL;
		found = s->attrs[i].value;
	}
	return found;
}

/* <v> ends in "@<domain>", ASCII case-insensitively. */
static bool
policy_in_domain(const char *v, const char *domain)
{
	size_t vl = strlen(v), dl = strlen(domain);

	return vl > dl + 1 && v[vl - dl - 1] == '@' && strcasecmp(v + vl - dl, domain) == 0;
}

static bool
policy_leaf_holds(const struct policy *p, const struct session *s)
{
	const char *v;

	switch (p->kind) {
	case POLICY_CONTAINS:
		if (strcmp(p->attribute, "@nameid") == 0)
			return s->name_id != NULL && strcmp(s->name_id, p->value) == 0;
		for (size_t i = 0; i < s->nattrs; i++)
			if (strcmp(s->attrs[i].name, p->attribute) == 0 &&
			    policy_value_contains(s->attrs[i].value, p->value))
				return true;
		return false;
	case POLICY_EQUALS:
		v = policy_single_value(s, p->attribute);
		return v != NULL && strcmp(v, p->value) == 0;
	case POLICY_DOMAIN:
		v = policy_single_value(s, p->attribute);
		return v != NULL && policy_in_domain(v, p->value);
	default:
		return false;
	}
}

const struct policy *
policy_check(const struct policy *p, const struct session *s)
{
	if (p == NULL)
		return NULL;
	switch (p->kind) {
	case POLICY_ALL_OF:
		for (size_t i = 0; i < p->nterms; i++) {
			const struct policy *bad = policy_check(&p->terms[i], s);

			if (bad != NULL)
				return bad;
		}
		return NULL;
	case POLICY_ANY_OF:
		for (size_t i = 0; i < p->nterms; i++)
			if (policy_check(&p->terms[i], s) == NULL)
				return NULL;
		return p;
	default:
		return policy_leaf_holds(p, s) ? NULL : p;
	}
}

void
policy_each_attribute(const struct policy *p, void (*fn)(const char *name, void *arg), void *arg)
{
	if (p == NULL)
		return;
	if (p->kind == POLICY_ALL_OF || p->kind == POLICY_ANY_OF) {
		for (size_t i = 0; i < p->nterms; i++)
			policy_each_attribute(&p->terms[i], fn, arg);
		return;
	}
	if (p->attribute != NULL)
		fn(p->attribute, arg);
}

struct policy_names {
	char *buf;
	size_t len, used;
};

static void
policy_add_name(const char *name, void *arg)
{
	struct policy_names *n = arg;
	size_t nl = strlen(name);
	int w;

	/* already listed? (whole names between " or ") */
	for (const char *p = n->buf; (p = strstr(p, name)) != NULL; p += nl)
		if ((p == n->buf || strncmp(p - 4, " or ", 4) == 0) &&
		    (p[nl] == '\0' || strncmp(p + nl, " or ", 4) == 0))
			return;
	w = snprintf(n->buf + n->used, n->len - n->used, "%s%s", n->used ? " or " : "", name);
	if (w > 0 && (size_t)w < n->len - n->used)
		n->used += (size_t)w;
	else
		n->buf[n->used] = '\0';
}

const char *
policy_attributes(const struct policy *p, char *buf, size_t len)
{
	struct policy_names n = { buf, len, 0 };

	if (len == 0)
		return buf;
	buf[0] = '\0';
	policy_each_attribute(p, policy_add_name, &n);
	return buf;
}

/* Leaves <a> and <b> (on one attribute, both single-valued tests) can never
 * hold together. */
static bool
policy_leaves_conflict(const struct policy *a, const struct policy *b)
{
	if (strcmp(a->attribute, b->attribute) != 0)
		return false;
	if (a->kind == POLICY_EQUALS && b->kind == POLICY_EQUALS)
		return strcmp(a->value, b->value) != 0;
	if (a->kind == POLICY_DOMAIN && b->kind == POLICY_DOMAIN)
		return strcasecmp(a->value, b->value) != 0;
	if (a->kind == POLICY_EQUALS && b->kind == POLICY_DOMAIN)
		return !policy_in_domain(a->value, b->value);
	if (a->kind == POLICY_DOMAIN && b->kind == POLICY_EQUALS)
		return !policy_in_domain(b->value, a->value);
	/* "@nameid" contains is an equality too */
	if (strcmp(a->attribute, "@nameid") == 0) {
		if (a->kind == POLICY_CONTAINS && b->kind != POLICY_DOMAIN)
			return strcmp(a->value, b->value) != 0;
		if (b->kind == POLICY_CONTAINS && a->kind != POLICY_DOMAIN)
			return strcmp(a->value, b->value) != 0;
		if (a->kind == POLICY_CONTAINS)
			return !policy_in_domain(a->value, b->value);
		if (b->kind == POLICY_CONTAINS)
			return !policy_in_domain(b->value, a->value);
	}
	return false;
}

/* The leaves an all_of asks for directly or through nested all_ofs. */
static size_t
policy_all_leaves(const struct policy *p, const struct policy **out, size_t max, size_t n)
{
	for (size_t i = 0; i < p->nterms; i++) {
		const struct policy *t = &p->terms[i];

		if (t->kind == POLICY_ALL_OF)
			n = policy_all_leaves(t, out, max, n);
		else if (t->kind != POLICY_ANY_OF && n < max)
			out[n++] = t;
	}
	return n;
}

#define POLICY_MAX_LEAVES 256

bool
policy_never_matches(const struct policy *p, char *why, size_t len)
{
	const struct policy *leaves[POLICY_MAX_LEAVES];
	size_t n;

	if (p == NULL)
		return false;
	switch (p->kind) {
	case POLICY_ANY_OF:
		for (size_t i = 0; i < p->nterms; i++)
			if (!policy_never_matches(&p->terms[i], why, len))
				return false;
		snprintf(why, len, "%s: %s", p->path,
			 p->nterms == 0 ? "an empty any_of" : "none of its terms can ever match");
		return true;
	case POLICY_ALL_OF:
		for (size_t i = 0; i < p->nterms; i++)
			if (policy_never_matches(&p->terms[i], why, len))
				return true;
		n = policy_all_leaves(p, leaves, POLICY_MAX_LEAVES, 0);
		for (size_t i = 0; i < n; i++)
			for (size_t j = i + 1; j < n; j++)
				if (policy_leaves_conflict(leaves[i], leaves[j])) {
					snprintf(why, len,
						 "%s and %s both ask \"%s\" for a single value, "
						 "and no value satisfies both",
						 leaves[i]->path, leaves[j]->path,
						 leaves[i]->attribute);
					return true;
				}
		return false;
	default:
		return false;
	}
}

void
policy_clear(struct policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nterms; i++)
		policy_clear(&p->terms[i]);
	free(p->terms);
	free(p->path);
	free(p->attribute);
	free(p->value);
	memset(p, 0, sizeof *p);
}

void
policy_free(struct policy *p)
{
	policy_clear(p);
	free(p);
}

/*
 * policy: who may pass a SAML-protected route, as a tree of rules over the
 * session's attributes ("require" on saml, a site or a route;
 * docs/saml.md#per-route-rules).  Leaves test one attribute ("@nameid" is the
 * NameID); all_of and any_of combine terms.  Built by the config loader,
 * owned by the config model, read by the SAML gate on every request.  Pure:
 * no I/O, no global state.
 */
#ifndef PORTCULLIS_POLICY_H
#define PORTCULLIS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

struct session;

enum policy_kind {
	POLICY_ALL_OF,   /* every term holds (an empty list always holds) */
	POLICY_ANY_OF,   /* at least one term holds */
	POLICY_CONTAINS, /* one value of the attribute, or one item of a comma-separated
			  * value, is <value> (groups, roles); for "@nameid": equals */
	POLICY_EQUALS,   /* the attribute has exactly one value, and it is <value> */
	POLICY_DOMAIN,   /* the attribute has exactly one value, ending in "@<value>"
			  * (ASCII case-insensitive) */
};

struct policy {
	enum policy_kind kind;
	char *path;            /* its JSON path in the config, for pages and log lines */
	char *attribute;       /* leaves: the attribute; "@nameid" is the NameID */
	char *value;           /* leaves: the value, or the domain */
	struct policy *terms;  /* all_of / any_of */
	size_t nterms;
};

/*
 * NULL when session <s> satisfies <p>; else the node that refused: a leaf, or
 * an any_of none of whose terms held.
 */
const struct policy *policy_check(const struct policy *p, const struct session *s);

/*
 * The attribute names <p> tests, distinct, joined by " or " into <buf>
 * ("Roles or Email"), for the page of a refused user.  Returns <buf>.
 */
const char *policy_attributes(const struct policy *p, char *buf, size_t len);

/*
 * True when no session can ever satisfy <p> (an any_of whose terms never
 * hold; an all_of asking one attribute for two different single values, or a
 * value outside a domain it also asks for): <why> then says which paths
 * conflict, without the values.
 */
bool policy_never_matches(const struct policy *p, char *why, size_t len);

/* Call <fn> for every attribute name a leaf of <p> tests. */
void policy_each_attribute(const struct policy *p, void (*fn)(const char *name, void *arg),
			   void *arg);

/* Free <p> and everything in it.  Accepts NULL. */
void policy_free(struct policy *p);

/* Free what <p> holds, not <p> itself (a term inside an array). */
void policy_clear(struct policy *p);

#endif

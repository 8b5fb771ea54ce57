/*
 * envsubst: ${NAME} and ${NAME:-default} in configuration strings.  Pure.
 *
 * "$$" is a literal "$".  A "$" not followed by "{" or "$" is kept as is.
 * NAME is [A-Za-z_][A-Za-z0-9_]*.  ${NAME:-default} uses default when NAME is
 * unset or empty; default may not contain "}" (nesting is not supported).
 * ${NAME} with NAME unset is an error.
 */
#ifndef PORTCULLIS_ENVSUBST_H
#define PORTCULLIS_ENVSUBST_H

#include <stddef.h>

/*
 * Expand <in>.  Returns a new string the caller frees, or NULL with a reason
 * in <err> ("environment variable POSTHOG_DOMAIN is not set; set it or write
 * ${POSTHOG_DOMAIN:-value}", "unterminated ${").
 */
char *envsubst_expand(const char *in, const char *(*getenv_fn)(const char *name), char *err,
		      size_t errlen);

#endif

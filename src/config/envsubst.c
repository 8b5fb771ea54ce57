/*
 * envsubst: ${NAME} and ${NAME:-default} expansion for configuration strings.
 * See envsubst.h for the rules.  Pure: no libevent, no global state.
 */
#include "config/envsubst.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable output string. */
struct envsubst_buf {
	char *data;
	size_t len;
	size_t cap;
};

static int
envsubst_put(struct envsubst_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *data = realloc(b->data, cap);
		if (data == NULL)
			return -1;
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static bool
envsubst_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool
envsubst_name_char(char c)
{
	return envsubst_name_start(c) || (c >= '0' && c <= '9');
}

/*
 * Expand <in>.  Returns a new string the caller frees, or NULL with a reason
 * in <err>.  Default values are taken literally up to the first "}".
 */
char *
envsubst_expand(const char *in, const char *(*getenv_fn)(const char *name), char *err,
		size_t errlen)
{
	struct envsubst_buf out = { NULL, 0, 0 };
	char name[256];
	const char *p = in;

	if (errlen > 0)
		err[0] = '\0';
	if (in == NULL) {
		snprintf(err, errlen, "no string to expand");
		return NULL;
	}
	if (envsubst_put(&out, "", 0) < 0)
		goto oom;
	while (*p != '\0') {
		const char *dollar = strchr(p, '$');
		if (dollar == NULL) {
			if (envsubst_put(&out, p, strlen(p)) < 0)
				goto oom;
			break;
		}
		if (envsubst_put(&out, p, (size_t)(dollar - p)) < 0)
			goto oom;
		if (dollar[1] == '$') {
			if (envsubst_put(&out, "$", 1) < 0)
				goto oom;
			p = dollar + 2;
			continue;
		}
		if (dollar[1] != '{') {
			if (envsubst_put(&out, "$", 1) < 0)
				goto oom;
			p = dollar + 1;
			continue;
		}
		/* "${" NAME ( "}" | ":-" default "}" ) */
		const char *n = dollar + 2;
		const char *e = n;
		if (strchr(n, '}') == NULL) {
			snprintf(err, errlen, "unterminated ${ (no closing \"}\")");
			goto fail;
		}
		if (!envsubst_name_start(*e)) {
			snprintf(err, errlen,
				 "bad variable name after ${: a name starts with a letter or \"_\" "
				 "and contains only letters, digits and \"_\"");
			goto fail;
		}
		while (envsubst_name_char(*e))
			e++;
		size_t nlen = (size_t)(e - n);
		if (nlen >= sizeof name) {
			snprintf(err, errlen, "variable name after ${ is too long (%zu characters)", nlen);
			goto fail;
		}
		memcpy(name, n, nlen);
		name[nlen] = '\0';

		const char *value = getenv_fn != NULL ? getenv_fn(name) : NULL;
		if (*e == '}') {
			if (value == NULL) {
				snprintf(err, errlen,
					 "environment variable %s is not set; set it or write "
					 "${%s:-value}",
					 name, name);
				goto fail;
			}
			if (envsubst_put(&out, value, strlen(value)) < 0)
				goto oom;
			p = e + 1;
			continue;
		}
		if (e[0] != ':' || e[1] != '-') {
			snprintf(err, errlen,
				 "unexpected \"%c\" after ${%s: write ${%s} or ${%s:-default}", *e,
				 name, name, name);
			goto fail;
		}
		const char *d = e + 2;
		const char *close = strchr(d, '}');
		const char *nested = strstr(d, "${");
		if (nested != NULL && nested < close) {
			snprintf(err, errlen,
				 "nested ${ in the default of ${%s:-...} is not supported", name);
			goto fail;
		}
		if (value != NULL && value[0] != '\0') {
			if (envsubst_put(&out, value, strlen(value)) < 0)
				goto oom;
		} else if (envsubst_put(&out, d, (size_t)(close - d)) < 0) {
			goto oom;
		}
		p = close + 1;
	}
	return out.data;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	free(out.data);
	return NULL;
}

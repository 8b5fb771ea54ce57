/*
 * cookie: reading and filtering the Cookie request headers (RFC 6265
 * section 5.4: "name=value" pairs separated by ";").  One walk over the
 * pairs, used for looking a cookie up and for removing cookies before a
 * request goes upstream.  It does not unquote values or know which cookies
 * are whose: callers pass names or a predicate.  Called by auth.c.
 */
#ifndef PORTCULLIS_COOKIE_H
#define PORTCULLIS_COOKIE_H

#include <stdbool.h>
#include <stddef.h>

struct evkeyvalq;
struct hdrarena;

/*
 * The next cookie pair of a Cookie header value: skips spaces, tabs and ";"
 * at *<p>, sets [*<pair>, *<pair> + *<len>) to the text up to the next ";"
 * (or the end) and advances *<p> past it.  Returns false at the end of the
 * value.  A pair may have no "=" and keeps any trailing white space.
 */
bool cookie_next(const char **p, const char **pair, size_t *len);

/* True when the pair [<pair>, <pair> + <len>) is "<name>=...". */
bool cookie_pair_is(const char *pair, size_t len, const char *name, size_t nlen);

/*
 * The value of cookie <name> in the Cookie headers of <h> (the first pair of
 * that name, headers in order), trailing spaces removed, copied into <buf>.
 * Returns <buf>, or NULL when absent or when that first value does not fit
 * in <buflen> bytes with its NUL.  Quotes are kept as they are.
 */
const char *cookie_find(const struct evkeyvalq *h, const char *name, char *buf, size_t buflen);

/*
 * Like cookie_find, without copying: the first value of cookie <name>
 * (<nlen> bytes) is the *<vlen> bytes at the pointer returned (into a
 * header of <h>; not NUL-terminated), or NULL when absent.  *<alone> is
 * true when that pair is all there is: the only pair of the only Cookie
 * header (removing the header removes exactly that cookie).
 */
const char *cookie_find_span(const struct evkeyvalq *h, const char *name, size_t nlen,
			     size_t *vlen, bool *alone);

/* Decides whether the pair [<pair>, <pair> + <len>) is removed. */
typedef bool (*cookie_drop_fn)(const char *pair, size_t len, void *arg);

/*
 * Write the pairs of one Cookie header <value> that <drop> keeps into <out>
 * ("; "-separated, NUL-terminated within <cap> > 0 bytes); set *<changed>
 * when a pair was dropped.  Returns the length the whole result needs, not
 * counting the NUL; <out> holds that result only when this is below <cap>.
 */
size_t cookie_filter(const char *value, cookie_drop_fn drop, void *arg, char *out, size_t cap,
		     bool *changed);

/*
 * Remove the pairs that <drop> selects from the Cookie headers of <h>.
 * When one is removed, the remaining pairs of all Cookie headers become one
 * Cookie header ("; "-separated), or none when nothing remains; otherwise
 * the headers are left untouched.  <arena>: the arena <h>'s entries may
 * live in (hdrarena.h), or NULL when evhttp_add_header made them all.
 */
void cookie_strip(struct evkeyvalq *h, struct hdrarena *arena, cookie_drop_fn drop, void *arg);

#endif

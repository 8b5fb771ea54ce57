/*
 * revoke_list: the revocation list as one process sees it, built from the
 * Redis hash <key_prefix>revoked (revoke.c): field "user:<NameID>" or
 * "session:<session id>", value the revocation time (epoch seconds).
 *
 * A user entry signs out every session of that NameID issued at or before
 * its time (a login after the revocation is a new session and passes); a
 * session entry signs out that one session.  Built once, then read only:
 * lookups are binary searches over two sorted arrays, so any number of
 * threads may match against a list nobody changes any more.
 *
 * Pure: no Redis, no libevent.
 */
#ifndef PORTCULLIS_REVOKE_LIST_H
#define PORTCULLIS_REVOKE_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The hash field prefixes. */
#define REVOKE_FIELD_USER "user:"
#define REVOKE_FIELD_SESSION "session:"

struct revoke_list;

/* An empty list.  NULL when out of memory. */
struct revoke_list *revoke_list_new(void);

/*
 * Add one hash field and its value (the revocation time as decimal epoch
 * seconds).  Returns 0, or -1 when the field has neither prefix, names
 * nothing or the value is not a time (the entry is skipped), or memory ran
 * out.  Call revoke_list_seal before matching.
 */
int revoke_list_add(struct revoke_list *l, const char *field, const char *value);

/* Sort what was added (a name added twice keeps its latest time). */
void revoke_list_seal(struct revoke_list *l);

/*
 * True when the session of <name_id> issued at <issued> with session id
 * <sid> (session_id.h; may be NULL) is revoked by <l> (may be NULL: nothing
 * is).
 */
bool revoke_list_match(const struct revoke_list *l, const char *name_id, const char *sid,
		       int64_t issued);

/* True when <l> has session entries (a caller may skip computing the id). */
bool revoke_list_has_sessions(const struct revoke_list *l);

/* Entries (users + sessions).  0 for NULL. */
size_t revoke_list_count(const struct revoke_list *l);

/* Free.  Accepts NULL. */
void revoke_list_free(struct revoke_list *l);

/*
 * Parse a revocation target as the admin endpoint and the CLI take it:
 * "user=<NameID>" or "session=<id>" (the value percent-decoded by the
 * caller).  Writes the hash field into <field> (capacity <len>) and returns
 * 0; -1 with a reason in <err> otherwise.
 */
int revoke_target_field(const char *target, char *field, size_t len, char *err, size_t errlen);

#endif

/* revoke_list: the revocation list, sorted for lookups; see revoke_list.h. */
#include "auth/revoke_list.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct revoke_entry {
	char *name;
	int64_t at;
};

struct revoke_set {
	struct revoke_entry *v;
	size_t n, cap;
};

struct revoke_list {
	struct revoke_set users, sessions;
};

struct revoke_list *
revoke_list_new(void)
{
	return calloc(1, sizeof(struct revoke_list));
}

static int
revoke_set_add(struct revoke_set *s, const char *name, int64_t at)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct revoke_entry *v = realloc(s->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	if ((s->v[s->n].name = strdup(name)) == NULL)
		return -1;
	s->v[s->n++].at = at;
	return 0;
}

int
revoke_list_add(struct revoke_list *l, const char *field, const char *value)
{
	char *end;
	long long at;

	errno = 0;
	at = strtoll(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || at < 0)
		return -1;
	if (strncmp(field, REVOKE_FIELD_USER, strlen(REVOKE_FIELD_USER)) == 0 &&
	    field[strlen(REVOKE_FIELD_USER)] != '\0')
		return revoke_set_add(&l->users, field + strlen(REVOKE_FIELD_USER), at);
	if (strncmp(field, REVOKE_FIELD_SESSION, strlen(REVOKE_FIELD_SESSION)) == 0 &&
	    field[strlen(REVOKE_FIELD_SESSION)] != '\0')
		return revoke_set_add(&l->sessions, field + strlen(REVOKE_FIELD_SESSION), at);
	return -1;
}

static int
revoke_entry_cmp(const void *a, const void *b)
{
	const struct revoke_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

/* Sort, and keep one entry per name (the latest time). */
static void
revoke_set_seal(struct revoke_set *s)
{
	size_t o = 0;

	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(*s->v), revoke_entry_cmp);
	for (size_t i = 1; i < s->n; i++) {
		if (strcmp(s->v[i].name, s->v[o].name) == 0) {
			free(s->v[o].name);
			s->v[o] = s->v[i]; /* sorted by time too: the later one */
		} else {
			s->v[++o] = s->v[i];
		}
	}
	s->n = o + 1;
}

void
revoke_list_seal(struct revoke_list *l)
{
	revoke_set_seal(&l->users);
	revoke_set_seal(&l->sessions);
}

static const struct revoke_entry *
revoke_set_find(const struct revoke_set *s, const char *name)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, s->v[mid].name);

		if (c == 0)
			return &s->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool
revoke_list_match(const struct revoke_list *l, const char *name_id, const char *sid,
		  int64_t issued)
{
	const struct revoke_entry *e;

	if (l == NULL)
		return false;
	if (name_id != NULL && (e = revoke_set_find(&l->users, name_id)) != NULL && issued <= e->at)
		return true;
	return sid != NULL && revoke_set_find(&l->sessions, sid) != NULL;
}

bool
revoke_list_has_sessions(const struct revoke_list *l)
{
	return l != NULL && l->sessions.n > 0;
}

size_t
revoke_list_count(const struct revoke_list *l)
{
	return l ? l->users.n + l->sessions.n : 0;
}

void
revoke_list_free(struct revoke_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->users.n; i++)
		free(l->users.v[i].name);
	for (size_t i = 0; i < l->sessions.n; i++)
		free(l->sessions.v[i].name);
	free(l->users.v);
	free(l->sessions.v);
	free(l);
}

int
revoke_target_field(const char *target, char *field, size_t len, char *err, size_t errlen)
{
	const char *v;
	const char *prefix;
	int n;

	if (strncmp(target, "user=", 5) == 0) {
		v = target + 5;
		prefix = REVOKE_FIELD_USER;
	} else if (strncmp(target, "session=", 8) == 0) {
		v = target + 8;
		prefix = REVOKE_FIELD_SESSION;
	} else {
		snprintf(err, errlen, "\"%s\": name a user (user=NAMEID) or a session (session=ID)",
			 target);
		return -1;
	}
	if (v[0] == '\0' || strpbrk(v, "\r\n") != NULL) {
		snprintf(err, errlen, "\"%s\": the value is empty or has a line break", target);
		return -1;
	}
	n = snprintf(field, len, "%s%s", prefix, v);
	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "the value is longer than %zu bytes", len - strlen(prefix) - 1);
		return -1;
	}
	return 0;
}

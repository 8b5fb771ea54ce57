/*
 * assertion: claims, signing and the per-thread token cache.  See assertion.h.
 */
#include "auth/assertion.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "auth/session.h"

/* Direct-mapped; a worker serves a few hundred sessions at most at once. */
#define ASSERTION_SLOTS 64

struct assertion_slot {
	char *key;      /* session text, NUL, audience, NUL, issuer, NUL, kid (one block) */
	size_t keylen;
	char *token;
	int64_t exp;
	int64_t lifetime;
};

struct assertion_cache {
	struct assertion_slot slot[ASSERTION_SLOTS];
};

static pthread_once_t assertion_once = PTHREAD_ONCE_INIT;
static pthread_key_t assertion_key;
static bool assertion_key_ok;
static _Thread_local struct assertion_cache *assertion_tls;

static void
assertion_cache_free(void *arg)
{
	struct assertion_cache *c = arg;

	if (c == NULL)
		return;
	for (size_t i = 0; i < ASSERTION_SLOTS; i++) {
		free(c->slot[i].key);
		free(c->slot[i].token);
	}
	free(c);
}

static void
assertion_once_init(void)
{
	assertion_key_ok = pthread_key_create(&assertion_key, assertion_cache_free) == 0;
}

void
assertion_thread_release(void)
{
	assertion_cache_free(assertion_tls);
	assertion_tls = NULL;
	if (assertion_key_ok)
		pthread_setspecific(assertion_key, NULL);
}

static struct assertion_cache *
assertion_cache_get(void)
{
	if (assertion_tls != NULL)
		return assertion_tls;
	pthread_once(&assertion_once, assertion_once_init);
	if (!assertion_key_ok || (assertion_tls = calloc(1, sizeof *assertion_tls)) == NULL)
		return NULL;
	pthread_setspecific(assertion_key, assertion_tls);
	return assertion_tls;
}

/* The claims of <s> as a JSON object text (caller frees), or NULL. */
static char *
assertion_claims(const struct assertion_params *p, const struct session *s, int64_t now,
		 int64_t exp)
{
	json_t *o = json_object(), *groups = json_array();
	const char *email = p->email_attr ? session_attr(s, p->email_attr) : NULL;
	char *text = NULL;

	if (o == NULL || groups == NULL)
		goto out;
	if (p->groups_attr != NULL)
		for (size_t i = 0; i < s->nattrs; i++)
			if (strcmp(s->attrs[i].name, p->groups_attr) == 0 &&
			    s->attrs[i].value[0] != '\0')
				json_array_append_new(groups, json_string(s->attrs[i].value));
	if (json_object_set_new(o, "iss", json_string(p->issuer)) < 0 ||
	    json_object_set_new(o, "aud", json_string(p->audience)) < 0 ||
	    json_object_set_new(o, "sub", json_string(s->name_id)) < 0 ||
	    (email != NULL && json_object_set_new(o, "email", json_string(email)) < 0) ||
	    json_object_set(o, "groups", groups) < 0 ||
	    json_object_set_new(o, "iat", json_integer(now)) < 0 ||
	    json_object_set_new(o, "exp", json_integer(exp)) < 0)
		goto out;
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(groups);
	json_decref(o);
	return text;
}

/* FNV-1a over the end of the session text (a sealed cookie ends in its
 * random-looking GCM tag) and the audience: the slot; the whole key is
 * compared anyway. */
static size_t
assertion_hash(const char *text, size_t tl, const char *aud, size_t al)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = tl > 16 ? tl - 16 : 0; i < tl; i++)
		h = (h ^ (unsigned char)text[i]) * UINT64_C(0x100000001b3);
	for (size_t i = 0; i < al; i++)
		h = (h ^ (unsigned char)aud[i]) * UINT64_C(0x100000001b3);
	return (size_t)(h >> 32) % ASSERTION_SLOTS;
}

const char *
assertion_token(const struct assertion_params *p, const char *session_text,
		const struct session *s, int64_t now)
{
	int64_t exp;

	return assertion_token_until(p, session_text, s, now, &exp);
}

const char *
assertion_token_until(const struct assertion_params *p, const char *session_text,
		      const struct session *s, int64_t now, int64_t *until)
{
	const char *kid = jwt_keys_kid(p->keys);
	size_t tl = strlen(session_text), al = strlen(p->audience), il = strlen(p->issuer);
	size_t keylen = tl + 1 + al + 1 + il + 1 + strlen(kid);
	struct assertion_cache *c = assertion_cache_get();
	struct assertion_slot *slot;
	int64_t exp = now + p->lifetime;
	char stack[2048]; /* the usual cookie fits: no allocation on a cache hit */
	char *key, *payload, *token;

	if (p->session_end > 0 && p->session_end < exp)
		exp = p->session_end;
	if (exp <= now || c == NULL)
		return NULL;
	key = keylen < sizeof stack ? stack : malloc(keylen + 1);
	if (key == NULL)
		return NULL;
	memcpy(key, session_text, tl + 1);
	memcpy(key + tl + 1, p->audience, al + 1);
	memcpy(key + tl + 1 + al + 1, p->issuer, il + 1);
	strcpy(key + tl + 1 + al + 1 + il + 1, kid);
	slot = &c->slot[assertion_hash(session_text, tl, p->audience, al)];
	/* reuse while more than half its lifetime is left */
	if (slot->key != NULL && slot->keylen == keylen && memcmp(slot->key, key, keylen) == 0 &&
	    slot->lifetime == p->lifetime && (slot->exp - now) * 2 > p->lifetime) {
		if (key != stack)
			free(key);
		*until = slot->exp;
		return slot->token;
	}
	if (key == stack && (key = malloc(keylen + 1)) != NULL)
		memcpy(key, stack, keylen + 1);
	payload = key ? assertion_claims(p, s, now, exp) : NULL;
	token = payload ? jwt_sign(p->keys, payload) : NULL;
	free(payload);
	if (token == NULL) {
		free(key);
		return NULL;
	}
	free(slot->key);
	free(slot->token);
	slot->key = key;
	slot->keylen = keylen;
	slot->token = token;
	slot->exp = exp;
	slot->lifetime = p->lifetime;
	*until = exp;
	return token;
}

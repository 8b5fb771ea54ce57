/* auth_verified: this thread's verified session cookies; see auth_verified.h. */
#include "auth/auth_verified.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auth/assertion.h"
#include "auth/auth_gate.h"
#include "auth/jwt.h"
#include "auth/session.h"

struct auth_verified_slot {
	uint64_t gen; /* session_keys_generation of the set it was opened with; 0: empty */
	struct auth_verified v;
	struct session *s; /* owned (v.s) */
	char *text;        /* owned (v.text) */
};

struct auth_verified_cache {
	uint64_t gen; /* the key set of every filled slot (0: none yet) */
	struct auth_verified_slot slot[AUTH_VERIFIED_SLOTS];
};

static pthread_once_t auth_verified_once = PTHREAD_ONCE_INIT;
static pthread_key_t auth_verified_key;
static bool auth_verified_key_ok;
static _Thread_local struct auth_verified_cache *auth_verified_tls;

static void
auth_verified_clear(struct auth_verified_slot *e)
{
	for (size_t i = 0; i < e->v.nidentity; i++)
		free(e->v.identity[i]);
	free(e->v.identity);
	free(e->v.token);
	free(e->v.token_for);
	session_free(e->s);
	free(e->text);
	memset(e, 0, sizeof *e);
}

static void
auth_verified_cache_free(void *arg)
{
	struct auth_verified_cache *c = arg;

	if (c == NULL)
		return;
	for (size_t i = 0; i < AUTH_VERIFIED_SLOTS; i++)
		auth_verified_clear(&c->slot[i]);
	free(c);
}

static void
auth_verified_once_init(void)
{
	auth_verified_key_ok = pthread_key_create(&auth_verified_key, auth_verified_cache_free) == 0;
}

void
auth_verified_thread_release(void)
{
	struct auth_verified_cache *c = auth_verified_tls;

	if (c == NULL)
		return;
	auth_verified_tls = NULL;
	pthread_setspecific(auth_verified_key, NULL);
	auth_verified_cache_free(c);
}

static struct auth_verified_cache *
auth_verified_cache_get(void)
{
	if (auth_verified_tls != NULL)
		return auth_verified_tls;
	if (pthread_once(&auth_verified_once, auth_verified_once_init) != 0 ||
	    !auth_verified_key_ok || (auth_verified_tls = calloc(1, sizeof *auth_verified_tls)) == NULL)
		return NULL;
	if (pthread_setspecific(auth_verified_key, auth_verified_tls) != 0) {
		free(auth_verified_tls);
		auth_verified_tls = NULL;
	}
	return auth_verified_tls;
}

char *
auth_identity_value(const struct config_saml *sc, const struct session *s, size_t i)
{
	const char *attr = sc->headers[i].attribute;
	size_t nvalues = 0, need = 0, o = 0;
	const char *first = NULL;
	char *out;

	if (strcmp(attr, "@nameid") == 0)
		return strdup(s->name_id);
	for (size_t j = 0; j < s->nattrs; j++)
		if (strcmp(s->attrs[j].name, attr) == 0) {
			if (nvalues++ == 0)
				first = s->attrs[j].value;
			need += strlen(s->attrs[j].value) + 2;
		}
	if (nvalues == 0 || (nvalues == 1 && first[0] == '\0'))
		return NULL;
	if ((out = malloc(need + 1)) == NULL)
		return NULL;
	for (size_t j = 0; j < s->nattrs; j++)
		if (strcmp(s->attrs[j].name, attr) == 0) {
			size_t n = strlen(s->attrs[j].value);

			if (o > 0) {
				memcpy(out + o, ", ", 2);
				o += 2;
			}
			memcpy(out + o, s->attrs[j].value, n);
			o += n;
		}
	out[o] = '\0';
	if (o == 0) { /* several values, all empty */
		free(out);
		return NULL;
	}
	return out;
}

/* Open <e>->text into <e> for <sc>: the session and what follows from it.
 * False when it does not open or memory ran out (then <e> is left to clear). */
static bool
auth_verified_fill(struct auth_verified_slot *e, const struct config_saml *sc)
{
	e->s = session_open_session(sc->keys, AUTH_PURPOSE_SESSION, e->text);
	if (e->s == NULL)
		return false;
	if (sc->nheaders > 0) {
		e->v.identity = calloc(sc->nheaders, sizeof *e->v.identity);
		if (e->v.identity == NULL)
			return false;
		e->v.nidentity = sc->nheaders;
		for (size_t i = 0; i < sc->nheaders; i++)
			e->v.identity[i] = auth_identity_value(sc, e->s, i);
	}
	session_id(e->s, e->v.sid);
	e->v.s = e->s;
	e->v.text = e->text;
	return true;
}

struct auth_verified *
auth_verified_get(const struct config_saml *sc, const char *text, size_t tlen)
{
	uint64_t gen = session_keys_generation(sc->keys);
	struct auth_verified_cache *c;
	struct auth_verified_slot *e, fresh = {0};

	if (gen == 0 || tlen == 0 || tlen > SESSION_MAX_SEALED ||
	    (c = auth_verified_cache_get()) == NULL)
		return NULL;
	if (c->gen != gen) { /* another key set (a reload, a key change): drop them all */
		for (size_t i = 0; i < AUTH_VERIFIED_SLOTS; i++)
			auth_verified_clear(&c->slot[i]);
		c->gen = gen;
	}
	e = &c->slot[session_text_slot(text, tlen, AUTH_VERIFIED_SLOTS)];
	if (e->gen == gen && e->v.tlen == tlen && session_same_text(e->text, text, tlen))
		return &e->v;
	if (memchr(text, '\0', tlen) != NULL || (fresh.text = malloc(tlen + 1)) == NULL)
		return NULL;
	memcpy(fresh.text, text, tlen);
	fresh.text[tlen] = '\0';
	if (!auth_verified_fill(&fresh, sc)) {
		auth_verified_clear(&fresh);
		return NULL;
	}
	/* Only a cookie that opens takes the slot: junk cannot evict a session. */
	auth_verified_clear(e);
	*e = fresh;
	e->v.tlen = tlen;
	e->gen = gen;
	return &e->v;
}

const char *
auth_verified_assertion(struct auth_verified *v, const struct assertion_params *p, int64_t now)
{
	const char *kid = jwt_keys_kid(p->keys);
	size_t al = strlen(p->audience), il = strlen(p->issuer), kl = strlen(kid);
	size_t forlen = al + 1 + il + 1 + kl + 1;
	const char *token;
	int64_t exp;
	char *tcopy, *fcopy;

	/* reuse while more than half its lifetime is left, as assertion.h does */
	if (v->token != NULL && v->token_for_len == forlen && v->token_lifetime == p->lifetime &&
	    (v->token_exp - now) * 2 > p->lifetime && memcmp(v->token_for, p->audience, al + 1) == 0 &&
	    memcmp(v->token_for + al + 1, p->issuer, il + 1) == 0 &&
	    memcmp(v->token_for + al + 1 + il + 1, kid, kl + 1) == 0)
		return v->token;
	token = assertion_token_until(p, v->text, v->s, now, &exp);
	if (token == NULL)
		return NULL;
	tcopy = strdup(token);
	fcopy = malloc(forlen);
	if (tcopy == NULL || fcopy == NULL) {
		free(tcopy);
		free(fcopy);
		return token; /* valid until this thread's next assertion_token */
	}
	memcpy(fcopy, p->audience, al + 1);
	memcpy(fcopy + al + 1, p->issuer, il + 1);
	memcpy(fcopy + al + 1 + il + 1, kid, kl + 1);
	free(v->token);
	free(v->token_for);
	v->token = tcopy;
	v->token_for = fcopy;
	v->token_for_len = forlen;
	v->token_exp = exp;
	v->token_lifetime = p->lifetime;
	return v->token;
}

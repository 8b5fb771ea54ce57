/* hdrarena: arena-backed header lists; see hdrarena.h. */
#include "http/hdrarena.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "base/poison.h"

#define ALIGN 16
#define BLOCK_MIN 4096

struct hdrarena_block {
	struct hdrarena_block *next;
	size_t size;                /* bytes in data */
	_Alignas(16) char data[];
};

void
hdrarena_init(struct hdrarena *a)
{
	a->cur = a->first;
	a->left = sizeof(a->first);
	a->blocks = NULL;
	MEM_POISON(a->first, sizeof(a->first)); /* handed out piece by piece */
}

void *
hdrarena_alloc(struct hdrarena *a, size_t n)
{
	size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	char *p;

	if (need < n)
		return NULL;
	if (need > a->left) {
		size_t size = need > BLOCK_MIN ? need : BLOCK_MIN;
		struct hdrarena_block *b;

		if (size > SIZE_MAX - sizeof(*b))
			return NULL;
		b = malloc(sizeof(*b) + size);
		if (b == NULL)
			return NULL;
		b->size = size;
		b->next = a->blocks;
		a->blocks = b;
		a->cur = b->data;
		a->left = size;
	}
	p = a->cur;
	a->cur += need;
	a->left -= need;
	MEM_UNPOISON(p, need);
	return p;
}

bool
hdrarena_owns(const struct hdrarena *a, const void *p)
{
	uintptr_t u = (uintptr_t)p;

	if (a == NULL)
		return false;
	if (u >= (uintptr_t)a->first && u < (uintptr_t)a->first + sizeof(a->first))
		return true;
	for (const struct hdrarena_block *b = a->blocks; b; b = b->next)
		if (u >= (uintptr_t)b->data && u < (uintptr_t)b->data + b->size)
			return true;
	return false;
}

/* evhttp_add_header's rule (libevent 2.1.12 as Debian ships it): no CR and
 * no LF anywhere in the value, not even as a folded line. */
static bool
value_ok(const char *v, size_t n)
{
	return memchr(v, '\r', n) == NULL && memchr(v, '\n', n) == NULL;
}

/* Append without the checks. */
static int
append(struct hdrarena *a, struct evkeyvalq *q, const char *key, size_t klen, const char *value,
       size_t vlen)
{
	struct evkeyval *kv;
	char *s;

	if (klen > SIZE_MAX / 2 - sizeof(*kv) || vlen > SIZE_MAX / 2)
		return -1;
	kv = hdrarena_alloc(a, sizeof(*kv) + klen + vlen + 2);
	if (kv == NULL)
		return -1;
	s = (char *)(kv + 1);
	memcpy(s, key, klen);
	s[klen] = '\0';
	kv->key = s;
	s += klen + 1;
	memcpy(s, value, vlen);
	s[vlen] = '\0';
	kv->value = s;
	TAILQ_INSERT_TAIL(q, kv, next);
	return 0;
}

int
hdrarena_add_header(struct hdrarena *a, struct evkeyvalq *q, const char *key, size_t klen,
		    const char *value, size_t vlen)
{
	if (!value_ok(key, klen) || !value_ok(value, vlen))
		return -1;
	return append(a, q, key, klen, value, vlen);
}

int
hdrarena_add(struct hdrarena *a, struct evkeyvalq *q, const char *key, const char *value)
{
	return hdrarena_add_header(a, q, key, strlen(key), value, strlen(value));
}

int
hdrarena_copy(struct hdrarena *a, struct evkeyvalq *q, const struct evkeyval *kv)
{
	return append(a, q, kv->key, strlen(kv->key), kv->value, strlen(kv->value));
}

/* Unlink <kv>, freeing it when it is not the arena's. */
static void
drop(struct hdrarena *a, struct evkeyvalq *q, struct evkeyval *kv)
{
	TAILQ_REMOVE(q, kv, next);
	if (!hdrarena_owns(a, kv)) {
		free(kv->key);
		free(kv->value);
		free(kv);
	}
}

int
hdrarena_remove_header(struct hdrarena *a, struct evkeyvalq *q, const char *key)
{
	struct evkeyval *kv;

	TAILQ_FOREACH(kv, q, next) {
		if (strcasecmp(kv->key, key) == 0) {
			drop(a, q, kv);
			return 0;
		}
	}
	return -1;
}

void
hdrarena_clear_headers(struct hdrarena *a, struct evkeyvalq *q)
{
	struct evkeyval *kv;

	while ((kv = TAILQ_FIRST(q)) != NULL)
		drop(a, q, kv);
}

void
hdrarena_reset(struct hdrarena *a)
{
	if (a == NULL)
		return;
	while (a->blocks) {
		struct hdrarena_block *b = a->blocks;

		a->blocks = b->next;
		free(b);
	}
	a->cur = a->first;
	a->left = sizeof(a->first);
	MEM_POISON(a->first, sizeof(a->first)); /* a use after reset is still reported */
}

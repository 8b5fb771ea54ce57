/* cookie: reading and filtering Cookie headers; see cookie.h. */
#include "http/cookie.h"
#include "http/hdrarena.h"

#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

bool
cookie_next(const char **p, const char **pair, size_t *len)
{
	const char *s = *p, *semi, *e;

	while (*s == ' ' || *s == '\t' || *s == ';')
		s++;
	if (*s == '\0') {
		*p = s;
		return false;
	}
	semi = strchr(s, ';');
	e = semi ? semi : s + strlen(s);
	*pair = s;
	*len = (size_t)(e - s);
	*p = e;
	return true;
}

bool
cookie_pair_is(const char *pair, size_t len, const char *name, size_t nlen)
{
	return len > nlen && memcmp(pair, name, nlen) == 0 && pair[nlen] == '=';
}

const char *
cookie_find_span(const struct evkeyvalq *h, const char *name, size_t nlen, size_t *vlen,
		 bool *alone)
{
	const struct evkeyval *kv;
	const char *found = NULL;
	size_t ncookie = 0;

	*alone = false;
	TAILQ_FOREACH(kv, h, next) {
		const char *p, *pair;
		size_t len, npairs = 0;

		if (strcasecmp(kv->key, "cookie") != 0)
			continue;
		ncookie++;
		if (found != NULL)
			continue; /* only counting Cookie headers now */
		p = kv->value;
		while (cookie_next(&p, &pair, &len)) {
			size_t n;

			npairs++;
			if (!cookie_pair_is(pair, len, name, nlen))
				continue;
			n = len - nlen - 1;
			while (n > 0 && pair[nlen + 1 + n - 1] == ' ')
				n--;
			found = pair + nlen + 1;
			*vlen = n;
			*alone = npairs == 1 && !cookie_next(&p, &pair, &len);
			break;
		}
	}
	if (ncookie > 1)
		*alone = false;
	return found;
}

const char *
cookie_find(const struct evkeyvalq *h, const char *name, char *buf, size_t buflen)
{
	size_t vlen;
	bool alone;
	const char *v = cookie_find_span(h, name, strlen(name), &vlen, &alone);

	if (v == NULL || vlen >= buflen)
		return NULL;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	return buf;
}

size_t
cookie_filter(const char *value, cookie_drop_fn drop, void *arg, char *out, size_t cap,
	      bool *changed)
{
	const char *p = value, *pair;
	size_t len, o = 0;

	*changed = false;
	while (cookie_next(&p, &pair, &len)) {
		if (drop(pair, len, arg)) {
			*changed = true;
			continue;
		}
		if (o > 0) {
			if (o + 2 < cap)
				memcpy(out + o, "; ", 2);
			o += 2;
		}
		if (o + len < cap)
			memcpy(out + o, pair, len);
		o += len;
	}
	out[o < cap ? o : cap - 1] = '\0';
	return o;
}

void
cookie_strip(struct evkeyvalq *h, struct hdrarena *arena, cookie_drop_fn drop, void *arg)
{
	struct evbuffer *kept;
	struct evkeyval *kv, *only = NULL;
	bool changed = false;
	size_t ncookie = 0;

	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "cookie") == 0 && ncookie++ == 0)
			only = kv;
	}
	if (ncookie == 0)
		return;
	if (ncookie == 1) {
		/* The usual case: rewrite the one header where it is, no buffer,
		 * when the rest is not longer (it is not, unless "a;b" gains spaces). */
		char tmp[4096];
		size_t need = cookie_filter(only->value, drop, arg, tmp, sizeof tmp, &changed);

		if (!changed)
			return;
		if (need == 0) {
			hdrarena_remove_header(arena, h, "Cookie");
			return;
		}
		if (need < sizeof tmp && need <= strlen(only->value)) {
			memcpy(only->value, tmp, need + 1);
			return;
		}
		changed = false;
	}
	kept = evbuffer_new();
	if (kept == NULL)
		return;
	TAILQ_FOREACH(kv, h, next) {
		const char *p, *pair;
		size_t len;

		if (strcasecmp(kv->key, "cookie") != 0)
			continue;
		p = kv->value;
		while (cookie_next(&p, &pair, &len)) {
			if (drop(pair, len, arg)) {
				changed = true;
			} else {
				if (evbuffer_get_length(kept) > 0)
					evbuffer_add(kept, "; ", 2);
				evbuffer_add(kept, pair, len);
			}
		}
	}
	if (changed) {
		while (hdrarena_remove_header(arena, h, "Cookie") == 0)
			continue;
		if (evbuffer_get_length(kept) > 0) {
			evbuffer_add(kept, "", 1);
			evhttp_add_header(h, "Cookie", (const char *)evbuffer_pullup(kept, -1));
		}
	}
	evbuffer_free(kept);
}

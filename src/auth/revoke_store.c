/* revoke_store: the revocation hash and epoch in Redis; see revoke_store.h. */
#include "auth/revoke_store.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/revoke_list.h"
#include "base/timeutil.h"
#include "config/config_model.h"

/* A reply, or the connection's error, as text into <err>; true when <r> is usable. */
static bool
revoke_store_ok(redisContext *c, redisReply *r, const char *what, char *err, size_t errlen)
{
	if (r == NULL) {
		snprintf(err, errlen, "%s: %s", what, c->errstr[0] ? c->errstr : "no answer");
		return false;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%s refused: %s", what, r->str);
		return false;
	}
	return true;
}

redisContext *
revoke_store_connect(const struct config_redis *rc, char *err, size_t errlen)
{
	struct timeval ct = timeval_from_seconds(rc->connect_timeout);
	struct timeval cmd = timeval_from_seconds(rc->command_timeout);
	redisContext *c;
	redisReply *r;

	c = rc->unix_path ? redisConnectUnixWithTimeout(rc->unix_path, ct)
			  : redisConnectWithTimeout(rc->host, rc->port, ct);
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(err, errlen, "cannot connect to %s: %s", rc->address, c->errstr);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, cmd);
	if (rc->password != NULL) {
		r = rc->username ? redisCommand(c, "AUTH %s %s", rc->username, rc->password)
				 : redisCommand(c, "AUTH %s", rc->password);
		if (!revoke_store_ok(c, r, "AUTH", err, errlen))
			goto fail;
		freeReplyObject(r);
	}
	if (rc->db != 0) {
		r = redisCommand(c, "SELECT %u", rc->db);
		if (!revoke_store_ok(c, r, "SELECT", err, errlen))
			goto fail;
		freeReplyObject(r);
	}
	return c;
fail:
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return NULL;
}

int
revoke_store_add(redisContext *c, const char *prefix, const char *field, int64_t at, char *err,
		 size_t errlen)
{
	redisReply *r;

	/* The field first, then the epoch: whoever sees the new epoch finds it. */
	r = redisCommand(c, "HSET %srevoked %s %lld", prefix, field, (long long)at);
	if (!revoke_store_ok(c, r, "HSET", err, errlen)) {
		if (r)
			freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	r = redisCommand(c, "INCR %srevoked:epoch", prefix);
	if (!revoke_store_ok(c, r, "INCR", err, errlen)) {
		if (r)
			freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

int
revoke_store_epoch(redisContext *c, const char *prefix, char *out, size_t len, char *err,
		   size_t errlen)
{
	redisReply *r = redisCommand(c, "GET %srevoked:epoch", prefix);

	if (!revoke_store_ok(c, r, "GET", err, errlen)) {
		if (r)
			freeReplyObject(r);
		return -1;
	}
	snprintf(out, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "0");
	freeReplyObject(r);
	return 0;
}

struct revoke_list *
revoke_store_load(redisContext *c, const char *prefix, int64_t stale_before, char *err,
		  size_t errlen)
{
	redisReply *r = redisCommand(c, "HGETALL %srevoked", prefix);
	struct revoke_list *l = NULL;

	if (!revoke_store_ok(c, r, "HGETALL", err, errlen))
		goto out;
	if (r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "HGETALL: unexpected answer (type %d)", r->type);
		goto out;
	}
	if ((l = revoke_list_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (strtoll(v->str, NULL, 10) < stale_before) {
			redisReply *d = redisCommand(c, "HDEL %srevoked %s", prefix, f->str);

			if (d)
				freeReplyObject(d);
			continue;
		}
		/* a malformed field (written by hand) is skipped */
		(void)revoke_list_add(l, f->str, v->str);
	}
	revoke_list_seal(l);
out:
	if (r)
		freeReplyObject(r);
	return l;
}

int
revoke_store_write(const struct config_redis *rc, const char *field, int64_t at, char *err,
		   size_t errlen)
{
	redisContext *c = revoke_store_connect(rc, err, errlen);
	int rc2;

	if (c == NULL)
		return -1;
	rc2 = revoke_store_add(c, rc->key_prefix, field, at, err, errlen);
	redisFree(c);
	return rc2;
}

void
revoke_store_close(redisContext *c)
{
	if (c)
		redisFree(c);
}

/*
 * revoke_store: the revocation list in Redis, through a blocking hiredis
 * connection (the poller's own thread, the CLI, the admin listener; never a
 * worker's loop).  Keys (after redis.key_prefix):
 *
 *   <prefix>revoked        a hash: "user:<NameID>" or "session:<id>" -> the
 *                          revocation time (epoch seconds)
 *   <prefix>revoked:epoch  a counter, raised after every change, so that a
 *                          poller reads the hash only when it changed
 */
#ifndef PORTCULLIS_REVOKE_STORE_H
#define PORTCULLIS_REVOKE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct config_redis;
struct redisContext;
struct revoke_list;

/* Connect to the server of <rc> (connect_timeout; every command then has
 * command_timeout), sending AUTH and SELECT as configured.  NULL with a
 * reason in <err>. */
struct redisContext *revoke_store_connect(const struct config_redis *rc, char *err, size_t errlen);

/* Set hash field <field> to <at> and raise the epoch.  0, or -1 with a
 * reason in <err> (the connection is then unusable: free it). */
int revoke_store_add(struct redisContext *c, const char *prefix, const char *field, int64_t at,
		     char *err, size_t errlen);

/* The epoch as text into <out> ("0" when never set).  0 or -1 (<err>). */
int revoke_store_epoch(struct redisContext *c, const char *prefix, char *out, size_t len,
		       char *err, size_t errlen);

/* The whole list, sealed; fields revoked before <stale_before> (epoch
 * seconds) are no use any more (every session they could match has ended)
 * and are deleted instead.  NULL with a reason in <err>. */
struct revoke_list *revoke_store_load(struct redisContext *c, const char *prefix,
				      int64_t stale_before, char *err, size_t errlen);

/* Connect, add <field> at <at>, disconnect: the CLI and the admin endpoint.
 * 0, or -1 with a reason in <err>. */
int revoke_store_write(const struct config_redis *rc, const char *field, int64_t at, char *err,
		       size_t errlen);

/* Close.  Accepts NULL. */
void revoke_store_close(struct redisContext *c);

#endif

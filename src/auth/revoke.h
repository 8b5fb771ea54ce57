/*
 * revoke: server-side sign-out (docs/saml.md#revocation).  With
 * "saml.revocation" set, one poller thread per process reads the revocation
 * epoch from Redis every poll_interval and, when it changed, the whole list
 * (revoke_store.h), and publishes it as an immutable snapshot.  Every
 * SAML-gated request checks its session against the snapshot its thread
 * holds: one atomic load of the snapshot generation, and a binary search
 * when the list is not empty; no Redis round trip on the request path.
 *
 * When Redis cannot be read for longer than max_staleness, "on_redis_down"
 * decides: "open" keeps using the last list read, "closed" refuses every
 * SAML session (REVOKE_UNAVAILABLE) until a poll succeeds again.
 *
 * Logout hands the session to the poller, which writes it to Redis (kept
 * and retried while Redis is down) and reads the list again at once.
 */
#ifndef PORTCULLIS_REVOKE_H
#define PORTCULLIS_REVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct session;

enum revoke_verdict {
	REVOKE_PASS,        /* not revoked */
	REVOKE_REVOKED,     /* on the list */
	REVOKE_UNAVAILABLE, /* on_redis_down "closed" and the list is too old */
};

/*
 * Follow the configuration <cfg> (the first load and every reload): start
 * the poller when cfg's saml.revocation is set, take its new settings, or
 * stop it.  <cfg> is borrowed until the next call (or revoke_shutdown).
 * 0, or -1 when the thread could not start.
 */
int revoke_configure(const struct config *cfg);

/* Stop the poller and free every snapshot still held by no thread. */
void revoke_shutdown(void);

/* True when revocation is on (revoke_configure saw it set). */
bool revoke_enabled(void);

/* The hot path: is the session <s> (of NameID s->name_id, issued s->issued)
 * revoked at <now>?  <sid> is its session id when the caller has it, else
 * NULL (computed here when the list has session entries). */
enum revoke_verdict revoke_check(const struct session *s, const char *sid, int64_t now);

/* revoke_check for a session that passed it before: when *<passed> names
 * the list this thread holds now (nothing was revoked or lifted since),
 * the answer is the same and the list is not searched again; the list's
 * age ("closed" when too old) is checked every time.  A pass sets
 * *<passed> (0: never checked). */
enum revoke_verdict revoke_check_since(const struct session *s, const char *sid, int64_t now,
				       uint64_t *passed);

/* The same for a session known by its parts (an open WebSocket tunnel). */
enum revoke_verdict revoke_check_parts(const char *name_id, const char *sid, int64_t issued,
				       int64_t now);

/* True when on_redis_down "closed" refuses every session now. */
bool revoke_stale_now(int64_t now);

/* Changes whenever the list or its availability changes (tunnels look again). */
uint64_t revoke_generation(void);

/* A user signed out: put session <sid> on the list (written by the poller;
 * kept while Redis is down, at most 10000). */
void revoke_logout(const char *sid);

/* Read the list again now (after the admin endpoint wrote to it). */
void revoke_poke(void);

/*
 * Put <target> ("user=<NameID>" or "session=<id>") on the list of <cfg>'s
 * Redis now (a blocking connection: the CLI and the admin listener), then
 * read the list again at once when this process polls.  0, or -1 with a
 * reason in <err> (no saml.revocation, a malformed target, Redis refused).
 */
int revoke_target(const struct config *cfg, const char *target, char *err, size_t errlen);

/* The revocation metrics in Prometheus text (caller frees), or NULL. */
char *revoke_metrics_render(void);

#endif

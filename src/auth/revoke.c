/* revoke: the revocation poller and the per-thread snapshots; see revoke.h. */
#include "auth/revoke.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/revoke_list.h"
#include "auth/revoke_store.h"
#include "auth/session.h"
#include "auth/session_id.h"
#include "base/log.h"
#include "config/config_model.h"

/* Logouts kept while Redis is down. */
#define REVOKE_PENDING_MAX 10000

struct revoke_snap {
	atomic_int refs;
	struct revoke_list *list;
};

/* What one thread holds: the snapshot of generation <gen>. */
struct revoke_local {
	uint64_t gen;
	struct revoke_snap *snap;
};

static pthread_mutex_t rv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rv_cond = PTHREAD_COND_INITIALIZER;
static pthread_t rv_thread;
static bool rv_running, rv_stop, rv_poked;
static struct config *rv_cfg;               /* a reference, under rv_lock */
static struct revoke_snap *rv_current;      /* under rv_lock */
static char (*rv_pending)[SESSION_ID_LEN + 1]; /* logouts to write, under rv_lock */
static size_t rv_npending;

static atomic_bool rv_on, rv_closed;
static atomic_uint_fast64_t rv_gen = 1;
static atomic_int_fast64_t rv_last_ok, rv_max_stale;
static atomic_ullong rv_refused, rv_unavailable, rv_polls_ok, rv_polls_failed, rv_entries,
	rv_written;

static pthread_key_t rv_key;
static pthread_once_t rv_key_once = PTHREAD_ONCE_INIT;
static __thread struct revoke_local *rv_local;

static void
revoke_snap_unref(struct revoke_snap *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
		revoke_list_free(s->list);
		free(s);
	}
}

static void
revoke_local_free(void *p)
{
	struct revoke_local *l = p;

	revoke_snap_unref(l->snap);
	free(l);
}

static void
revoke_key_init(void)
{
	(void)pthread_key_create(&rv_key, revoke_local_free);
}

/* Make <list> (taken) the current snapshot. */
static void
revoke_publish(struct revoke_list *list)
{
	struct revoke_snap *s = calloc(1, sizeof(*s)), *old;

	if (s == NULL) {
		revoke_list_free(list);
		return;
	}
	atomic_init(&s->refs, 1);
	s->list = list;
	atomic_store(&rv_entries, revoke_list_count(list));
	pthread_mutex_lock(&rv_lock);
	old = rv_current;
	rv_current = s;
	atomic_fetch_add(&rv_gen, 1);
	pthread_mutex_unlock(&rv_lock);
	revoke_snap_unref(old);
}

/* The calling thread's snapshot, brought up to date. */
static const struct revoke_list *
revoke_local_list(void)
{
	uint64_t gen = atomic_load_explicit(&rv_gen, memory_order_acquire);
	struct revoke_local *l = rv_local;

	if (l != NULL && l->gen == gen)
		return l->snap ? l->snap->list : NULL;
	if (l == NULL) {
		pthread_once(&rv_key_once, revoke_key_init);
		if ((l = calloc(1, sizeof(*l))) == NULL)
			return NULL;
		rv_local = l;
		(void)pthread_setspecific(rv_key, l);
	}
	revoke_snap_unref(l->snap);
	pthread_mutex_lock(&rv_lock);
	l->snap = rv_current;
	if (l->snap)
		atomic_fetch_add(&l->snap->refs, 1);
	l->gen = atomic_load(&rv_gen);
	pthread_mutex_unlock(&rv_lock);
	return l->snap ? l->snap->list : NULL;
}

bool
revoke_enabled(void)
{
	return atomic_load_explicit(&rv_on, memory_order_relaxed);
}

uint64_t
revoke_generation(void)
{
	return atomic_load_explicit(&rv_gen, memory_order_acquire);
}

/* True when "closed" applies now: the list is older than max_staleness. */
static bool
revoke_stale(int64_t now)
{
	return atomic_load_explicit(&rv_closed, memory_order_relaxed) &&
	       now - atomic_load_explicit(&rv_last_ok, memory_order_relaxed) >
		       atomic_load_explicit(&rv_max_stale, memory_order_relaxed);
}

bool
revoke_stale_now(int64_t now)
{
	return revoke_enabled() && revoke_stale(now);
}

enum revoke_verdict
revoke_check_parts(const char *name_id, const char *sid, int64_t issued, int64_t now)
{
	const struct revoke_list *l = revoke_local_list();

	if (revoke_stale(now)) {
		atomic_fetch_add_explicit(&rv_unavailable, 1, memory_order_relaxed);
		return REVOKE_UNAVAILABLE;
	}
	if (revoke_list_count(l) == 0 || !revoke_list_match(l, name_id, sid, issued))
		return REVOKE_PASS;
	atomic_fetch_add_explicit(&rv_refused, 1, memory_order_relaxed);
	return REVOKE_REVOKED;
}

/* The session ids this thread computed lately (a SHA-256 through EVP costs
 * more than the rest of the check): direct-mapped by the session's times,
 * matched on every input of the id. */
#define REVOKE_MEMO 64
#define REVOKE_MEMO_NAME 128

struct revoke_memo {
	int64_t issued, expires;
	char name[REVOKE_MEMO_NAME];
	char sid[SESSION_ID_LEN + 1];
};

static __thread struct revoke_memo rv_memo[REVOKE_MEMO];

static const char *
revoke_session_id(const struct session *s, char *out)
{
	struct revoke_memo *m =
		&rv_memo[((uint64_t)s->issued * 31u + (uint64_t)s->expires) % REVOKE_MEMO];
	size_t n = strlen(s->name_id);

	if (m->sid[0] != '\0' && m->issued == s->issued && m->expires == s->expires &&
	    strcmp(m->name, s->name_id) == 0)
		return m->sid;
	session_id(s, out);
	if (n < REVOKE_MEMO_NAME) {
		m->issued = s->issued;
		m->expires = s->expires;
		memcpy(m->name, s->name_id, n + 1);
		memcpy(m->sid, out, SESSION_ID_LEN + 1);
	}
	return out;
}

enum revoke_verdict
revoke_check(const struct session *s, const char *sid, int64_t now)
{
	const struct revoke_list *l = revoke_local_list();
	char id[SESSION_ID_LEN + 1];

	if (sid == NULL && revoke_list_has_sessions(l))
		sid = revoke_session_id(s, id);
	return revoke_check_parts(s->name_id, sid, s->issued, now);
}

enum revoke_verdict
revoke_check_since(const struct session *s, const char *sid, int64_t now, uint64_t *passed)
{
	enum revoke_verdict v;
	uint64_t gen;

	revoke_local_list(); /* brings this thread's snapshot (and its generation) up to date */
	gen = rv_local != NULL ? rv_local->gen : 0;
	if (gen != 0 && *passed == gen && !revoke_stale(now))
		return REVOKE_PASS;
	v = revoke_check(s, sid, now);
	if (v == REVOKE_PASS)
		*passed = gen;
	return v;
}

void
revoke_logout(const char *sid)
{
	pthread_mutex_lock(&rv_lock);
	if (rv_pending == NULL)
		rv_pending = calloc(REVOKE_PENDING_MAX, sizeof(*rv_pending));
	if (rv_pending != NULL && rv_npending < REVOKE_PENDING_MAX)
		snprintf(rv_pending[rv_npending++], sizeof(*rv_pending), "%s", sid);
	else
		log_warn("revocation: %zu sign-outs wait for Redis already; session %s is not listed",
			 rv_npending, sid);
	rv_poked = true;
	pthread_cond_signal(&rv_cond);
	pthread_mutex_unlock(&rv_lock);
}

void
revoke_poke(void)
{
	pthread_mutex_lock(&rv_lock);
	rv_poked = true;
	pthread_cond_signal(&rv_cond);
	pthread_mutex_unlock(&rv_lock);
}

/* Write the pending logouts.  0, or -1 (<err>) with the rest kept. */
static int
revoke_flush(redisContext *c, const char *prefix, char *err, size_t errlen)
{
	for (;;) {
		char sid[SESSION_ID_LEN + 1], field[64];

		pthread_mutex_lock(&rv_lock);
		if (rv_npending == 0) {
			pthread_mutex_unlock(&rv_lock);
			return 0;
		}
		memcpy(sid, rv_pending[rv_npending - 1], sizeof(sid));
		pthread_mutex_unlock(&rv_lock);
		snprintf(field, sizeof(field), "%s%s", REVOKE_FIELD_SESSION, sid);
		if (revoke_store_add(c, prefix, field, (int64_t)time(NULL), err, errlen) < 0)
			return -1;
		atomic_fetch_add(&rv_written, 1);
		pthread_mutex_lock(&rv_lock);
		/* only this thread removes; logouts are added at the end */
		for (size_t i = 0; i < rv_npending; i++)
			if (strcmp(rv_pending[i], sid) == 0) {
				memmove(rv_pending[i], rv_pending[i + 1],
					(rv_npending - i - 1) * sizeof(*rv_pending));
				rv_npending--;
				break;
			}
		pthread_mutex_unlock(&rv_lock);
	}
}

/* One poll: write what waits, read the epoch, and the list when it changed. */
static int
revoke_poll(redisContext *c, const struct config *cfg, char *epoch, size_t elen, bool force,
	    char *err, size_t errlen)
{
	const char *prefix = cfg->redis->key_prefix;
	char now_epoch[64];
	struct revoke_list *l;
	int64_t stale;

	if (revoke_flush(c, prefix, err, errlen) < 0 ||
	    revoke_store_epoch(c, prefix, now_epoch, sizeof(now_epoch), err, errlen) < 0)
		return -1;
	if (force || strcmp(now_epoch, epoch) != 0) {
		stale = (int64_t)time(NULL) - (int64_t)cfg->saml->session_lifetime -
			(int64_t)cfg->saml->clock_skew - 60;
		if ((l = revoke_store_load(c, prefix, stale, err, errlen)) == NULL)
			return -1;
		revoke_publish(l);
		snprintf(epoch, elen, "%s", now_epoch);
	}
	return 0;
}

static void *
revoke_main(void *arg)
{
	redisContext *c = NULL;
	const struct config *seen = NULL;
	char epoch[64] = "";
	bool down_logged = false;

	(void)arg;
	pthread_mutex_lock(&rv_lock);
	while (!rv_stop) {
		struct config *cfg = config_ref(rv_cfg);
		char err[512];
		struct timespec until;
		double every = cfg->saml->revocation.poll_interval;
		bool force = cfg != seen;

		rv_poked = false;
		pthread_mutex_unlock(&rv_lock);
		if (force && c != NULL) { /* a new configuration: maybe another server */
			revoke_store_close(c);
			c = NULL;
		}
		seen = cfg;
		if (c == NULL) {
			c = revoke_store_connect(cfg->redis, err, sizeof(err));
			force = true;
		}
		if (c != NULL && revoke_poll(c, cfg, epoch, sizeof(epoch), force, err, sizeof(err)) == 0) {
			atomic_store(&rv_last_ok, (int64_t)time(NULL));
			atomic_fetch_add(&rv_polls_ok, 1);
			if (down_logged)
				log_info("revocation: Redis is back; the list is current again");
			down_logged = false;
		} else {
			atomic_fetch_add(&rv_polls_failed, 1);
			revoke_store_close(c);
			c = NULL;
			if (!down_logged)
				log_warn("revocation: cannot read the list from Redis: %s (%s; retrying)",
					 err, cfg->saml->revocation.fail_closed
						      ? "sessions are refused once it is older than "
							"max_staleness (on_redis_down \"closed\")"
						      : "the last list read stays in force "
							"(on_redis_down \"open\")");
			down_logged = true;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)every;
		until.tv_nsec += (long)((every - (double)(time_t)every) * 1e9);
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&rv_lock);
		config_unref(cfg);
		if (seen != rv_cfg)
			seen = NULL; /* compare by identity only while it is alive */
		while (!rv_stop && !rv_poked &&
		       pthread_cond_timedwait(&rv_cond, &rv_lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&rv_lock);
	revoke_store_close(c);
	return NULL;
}

static void
revoke_stop_thread(void)
{
	pthread_mutex_lock(&rv_lock);
	rv_stop = true;
	pthread_cond_signal(&rv_cond);
	pthread_mutex_unlock(&rv_lock);
	if (rv_running)
		pthread_join(rv_thread, NULL);
	rv_running = false;
	rv_stop = false;
}

int
revoke_configure(const struct config *cfg)
{
	const struct config_saml *sc = cfg ? cfg->saml : NULL;
	bool want = sc != NULL && sc->revocation.enabled && cfg->redis != NULL;
	struct config *old;

	if (!want) {
		atomic_store(&rv_on, false);
		if (rv_running)
			revoke_stop_thread();
		pthread_mutex_lock(&rv_lock);
		old = rv_cfg;
		rv_cfg = NULL;
		pthread_mutex_unlock(&rv_lock);
		config_unref(old);
		return 0;
	}
	atomic_store(&rv_closed, sc->revocation.fail_closed);
	atomic_store(&rv_max_stale, (int64_t)sc->revocation.max_staleness);
	pthread_mutex_lock(&rv_lock);
	old = rv_cfg;
	rv_cfg = config_ref((struct config *)(uintptr_t)cfg);
	rv_poked = true;
	pthread_cond_signal(&rv_cond);
	pthread_mutex_unlock(&rv_lock);
	config_unref(old);
	atomic_store(&rv_on, true);
	if (!rv_running) {
		if (pthread_create(&rv_thread, NULL, revoke_main, NULL) != 0)
			return -1;
		rv_running = true;
	}
	return 0;
}

void
revoke_shutdown(void)
{
	struct config *old;
	struct revoke_snap *s;

	atomic_store(&rv_on, false);
	if (rv_running)
		revoke_stop_thread();
	pthread_mutex_lock(&rv_lock);
	old = rv_cfg;
	rv_cfg = NULL;
	s = rv_current;
	rv_current = NULL;
	free(rv_pending);
	rv_pending = NULL;
	rv_npending = 0;
	pthread_mutex_unlock(&rv_lock);
	revoke_snap_unref(s);
	config_unref(old);
	if (rv_local != NULL) {
		revoke_snap_unref(rv_local->snap);
		rv_local->snap = NULL;
		rv_local->gen = 0;
	}
}

int
revoke_target(const struct config *cfg, const char *target, char *err, size_t errlen)
{
	char field[1100];

	if (cfg->saml == NULL || !cfg->saml->revocation.enabled || cfg->redis == NULL) {
		snprintf(err, errlen, "revocation is off: set saml.revocation and a \"redis\" section");
		return -1;
	}
	if (revoke_target_field(target, field, sizeof(field), err, errlen) < 0 ||
	    revoke_store_write(cfg->redis, field, (int64_t)time(NULL), err, errlen) < 0)
		return -1;
	if (revoke_enabled())
		revoke_poke();
	return 0;
}

char *
revoke_metrics_render(void)
{
	char *text = NULL;
	int64_t ok = atomic_load(&rv_last_ok);

	if (!revoke_enabled())
		return NULL;
	if (asprintf(&text,
		     "# HELP portcullis_revocation_refused_total SAML requests refused: revoked "
		     "(on the list), unavailable (the list too old, on_redis_down \"closed\")\n"
		     "# TYPE portcullis_revocation_refused_total counter\n"
		     "portcullis_revocation_refused_total{reason=\"revoked\"} %llu\n"
		     "portcullis_revocation_refused_total{reason=\"unavailable\"} %llu\n"
		     "# HELP portcullis_revocation_polls_total Reads of the revocation list's epoch\n"
		     "# TYPE portcullis_revocation_polls_total counter\n"
		     "portcullis_revocation_polls_total{result=\"ok\"} %llu\n"
		     "portcullis_revocation_polls_total{result=\"error\"} %llu\n"
		     "# HELP portcullis_revocation_entries Users and sessions on the list\n"
		     "# TYPE portcullis_revocation_entries gauge\n"
		     "portcullis_revocation_entries %llu\n"
		     "# HELP portcullis_revocation_logouts_written_total Sign-outs put on the list\n"
		     "# TYPE portcullis_revocation_logouts_written_total counter\n"
		     "portcullis_revocation_logouts_written_total %llu\n"
		     "# HELP portcullis_revocation_age_seconds Seconds since the list was last read\n"
		     "# TYPE portcullis_revocation_age_seconds gauge\n"
		     "portcullis_revocation_age_seconds %lld\n",
		     atomic_load(&rv_refused), atomic_load(&rv_unavailable), atomic_load(&rv_polls_ok),
		     atomic_load(&rv_polls_failed), atomic_load(&rv_entries), atomic_load(&rv_written),
		     ok ? (long long)(time(NULL) - ok) : -1LL) < 0)
		return NULL;
	return text;
}

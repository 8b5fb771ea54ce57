/*
 * session: sealed cookies.  A session (who signed in, when, until when) is
 * encoded into a compact binary form and sealed with AES-256-GCM under a
 * 32-byte key, then written as base64url text fit for a cookie value.
 * Nothing is stored on the server: whoever holds one of the keys can open a
 * cookie, so replicas that share the key file accept each other's sessions.
 *
 * Several keys may be loaded: the first seals, every one opens (a cookie
 * names its key by a 4-byte key id), so a key can be rotated without signing
 * everybody out: put the new key first, keep the old one until its cookies
 * have expired.  The "purpose" string is bound into every seal (GCM
 * additional data), so a cookie sealed for one use (the request-tracking
 * cookie of a login in progress) is never accepted as another (a session).
 *
 * Pure: OpenSSL only, no libevent, no lasso.  The SAML gate opens each new
 * cookie text once through auth_verified.h, which keeps what it derives;
 * session_open_cached serves the other readers of a session cookie: each
 * thread keeps a decryption context per key (key schedule done once) and the
 * sessions it opened lately, by sealed text, so a cookie seen before costs a
 * comparison, and a new one a base64 decode and a GCM open on the stack.
 * That state is freed when the thread exits (or by session_thread_release).
 */
#ifndef PORTCULLIS_SESSION_H
#define PORTCULLIS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSION_KEY_BYTES 32
/* Largest sealed text session_seal produces (browsers keep 4096-byte cookies,
 * name and attributes included). */
#define SESSION_MAX_SEALED 3800

struct session_keys;

/* One attribute value; an attribute with several values appears once per value. */
struct session_attr {
	char *name;
	char *value;
};

struct session {
	int64_t issued;    /* seconds since the epoch */
	int64_t expires;   /* absolute end of the session */
	int64_t last_seen; /* last time the cookie was (re)issued, for the idle timeout */
	char *name_id;     /* the SAML NameID (or another identifier) */
	struct session_attr *attrs;
	size_t nattrs;
};

/*
 * Load keys: from the file <file> (may be NULL), one key per line as 64 hex
 * digits or base64 of 32 bytes, '#' starts a comment line; then from
 * <env_value> (may be NULL), keys separated by commas or white space.  When
 * <file> does not exist and <create> is true, it is created (mode 0600) with
 * one fresh random key.  The first key found seals.  NULL with a reason in
 * <err> (which names the file and line) when no key loads or one is malformed.
 */
struct session_keys *session_keys_load(const char *file, const char *env_value, bool create,
				       char *err, size_t errlen);

/* Keys from raw bytes (tests): <n> keys of SESSION_KEY_BYTES, the first seals. */
struct session_keys *session_keys_from_raw(const unsigned char *keys, size_t n);

/* Number of keys loaded. */
size_t session_keys_count(const struct session_keys *k);

/* What names key set <k> in per-thread caches: never 0 for a loaded set and
 * never reused by a later one (a reload loads a new set).  0 for NULL. */
uint64_t session_keys_generation(const struct session_keys *k);

/* Wipe and free.  Accepts NULL. */
void session_keys_free(struct session_keys *k);

/*
 * Seal <len> bytes of <plain> for <purpose> with the first key.  Returns a
 * new NUL-terminated base64url string (caller frees), or NULL on failure or
 * when the result would exceed SESSION_MAX_SEALED.
 */
char *session_seal(const struct session_keys *k, const char *purpose, const unsigned char *plain,
		   size_t len);

/*
 * Open a sealed <text> for <purpose>.  On success sets *plain (caller frees)
 * and *len and returns 0; returns -1 when the text is malformed, names no key
 * we hold, was sealed for another purpose or was changed in any way.
 */
int session_open(const struct session_keys *k, const char *purpose, const char *text,
		 unsigned char **plain, size_t *len);

/*
 * Open and decode a sealed session like session_open_session, through the
 * calling thread's cache: when this thread opened the same <text> for the
 * same <purpose> with the same key set before, the session decoded then is
 * returned without decrypting again (the same text always opens to the same
 * session; validity in time is the caller's check, session_is_valid, as
 * always).  Returns a borrowed session, or NULL when the text does not open
 * (or memory ran out).  The session stays valid until this thread next calls
 * session_open, session_open_session, session_open_cached (with any keys) or
 * session_thread_release; copy what must live longer.  Do not modify it.
 */
const struct session *session_open_cached(const struct session_keys *k, const char *purpose,
					  const char *text);

/*
 * Free the calling thread's decryption contexts and cached sessions now
 * (otherwise at thread exit).  Sessions borrowed from session_open_cached on
 * this thread become invalid.
 */
void session_thread_release(void);

/* <n> bytes of <a> and <b> are equal, in time that depends on <n> only (no
 * early exit: how much of a forged text matches a cached one stays unknown). */
bool session_same_text(const char *a, const char *b, size_t n);

/* The slot (below <nslots>) of sealed text <text> (<tlen> bytes) in a
 * direct-mapped cache: spread by its random nonce.  Which entry to compare,
 * never whether it matches. */
size_t session_text_slot(const char *text, size_t tlen, size_t nslots);

/* Encode <s> into a new buffer (*len bytes, caller frees).  NULL on failure. */
unsigned char *session_encode(const struct session *s, size_t *len);

/* Decode what session_encode produced.  NULL when malformed. */
struct session *session_decode(const unsigned char *buf, size_t len);

/* Seal a session (encode + seal).  NULL on failure or when too large. */
char *session_seal_session(const struct session_keys *k, const char *purpose,
			   const struct session *s);

/* Open and decode a sealed session.  NULL when it does not open. */
struct session *session_open_session(const struct session_keys *k, const char *purpose,
				     const char *text);

/*
 * True when <s> is still valid at <now>: not expired, issued in the past (with
 * <skew> seconds of tolerance) and seen less than <idle_timeout> seconds ago
 * (0: no idle timeout).
 */
bool session_is_valid(const struct session *s, int64_t now, int64_t idle_timeout, int64_t skew);

/* The first value of attribute <name> (exact, case-sensitive), or NULL. */
const char *session_attr(const struct session *s, const char *name);

/* Add one attribute value (copied).  Returns 0 or -1. */
int session_add_attr(struct session *s, const char *name, const char *value);

/* A new empty session.  NULL on allocation failure. */
struct session *session_new(void);

/* Free (wiping nothing: sessions hold no secrets).  Accepts NULL. */
void session_free(struct session *s);

#endif

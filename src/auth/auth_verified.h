/*
 * auth_verified: this worker thread's verified session cookies.  A browser
 * sends the same session cookie with every request.  The first time this
 * thread sees a cookie text, it is opened (session.h: decrypted, checked,
 * decoded) and what follows from the session alone is kept with it: the
 * value of every saml.headers identity header, the session id that
 * revocation looks up (and the revocation list it last passed), and the
 * identity assertion last signed for it.  A
 * later request with exactly the same bytes (compared in full, in time that
 * depends on the length only; the slot choice alone never decides) gets all
 * of it back without decrypting, decoding, formatting or allocating.
 *
 * Nothing that depends on the time or on the route is decided here: expiry,
 * idle timeout, session_lifetime, revocation, the route's policy and step-up
 * stay the gate's checks on every request.  A cookie that does not open is
 * never kept.  Entries belong to one session key set (session_keys_generation):
 * a config reload or a key change loads a new one, and the thread's entries
 * are dropped on its first request with it.  Direct-mapped, a fixed number of
 * slots; freed at thread exit (or by auth_verified_thread_release).
 */
#ifndef PORTCULLIS_AUTH_VERIFIED_H
#define PORTCULLIS_AUTH_VERIFIED_H

#include <stddef.h>
#include <stdint.h>

#include "auth/session_id.h"
#include "config/config_model.h"

struct assertion_params;
struct session;

/* Slots per thread. */
#define AUTH_VERIFIED_SLOTS 128

struct auth_verified {
	const struct session *s; /* the opened session: do not modify */
	const char *text;        /* the cookie text it was opened from (NUL-terminated) */
	size_t tlen;
	/* per saml.headers entry (same order): the value to send, NULL: none */
	char **identity;
	size_t nidentity;
	char sid[SESSION_ID_LEN + 1]; /* session_id(s) */
	uint64_t revoke_passed;       /* for revoke_check_since (0: not checked yet) */
	/* the identity assertion last handed out for it, and what it was for */
	char *token;
	char *token_for; /* audience, NUL, issuer, NUL, kid, NUL (one block) */
	size_t token_for_len;
	int64_t token_exp, token_lifetime;
};

/*
 * The verified session of cookie text <text> (<tlen> bytes, no NUL needed)
 * for config <sc> (its keys, its saml.headers): from this thread's cache
 * when the same bytes were opened with the same key set before, else opened
 * now and kept.  Borrowed: valid until this thread's next call here (any
 * arguments) or auth_verified_thread_release; only its assertion (through
 * auth_verified_assertion) and revoke_passed change.  NULL when the text does not
 * open (tampered, foreign key, another purpose, malformed, too long) or
 * memory ran out.
 */
struct auth_verified *auth_verified_get(const struct config_saml *sc, const char *text,
					size_t tlen);

/*
 * The identity assertion for the verified session <v> with <p> at <now>:
 * the one handed out before while it was for the same audience, issuer, key
 * id and lifetime and more than half of its lifetime is left, else one from
 * assertion.h (signed or reused there), kept in <v>.  Borrowed like <v>.
 * NULL when it cannot be signed or the session has ended.
 */
const char *auth_verified_assertion(struct auth_verified *v, const struct assertion_params *p,
				    int64_t now);

/*
 * The value header <i> of saml.headers gets for session <s>: the NameID for
 * "@nameid", else the attribute's values joined with ", " (one value as it
 * is).  A new string (caller frees), or NULL when the header is not sent
 * (no such attribute, a single empty value) or memory ran out.
 */
char *auth_identity_value(const struct config_saml *sc, const struct session *s, size_t i);

/* Free this thread's entries now (otherwise at thread exit). */
void auth_verified_thread_release(void);

#endif

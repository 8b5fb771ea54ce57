/*
 * handoff_token: the token that carries a sign-in from the auth host to
 * another host of the same sign-in (docs/saml.md#several-hosts-one-sign-in).
 *
 * The auth host, where the session is, seals into one token: the session
 * (so the target host's cookie names the same session id, and a revocation
 * of that id refuses it everywhere), the path to return to on the target
 * host, the browser's binding nonce (a cookie the target host set before it
 * sent the browser away), a random single-use id and an end time.  The seal
 * is the session cookie's AES-256-GCM seal under the session keys, with the
 * target origin in the purpose: a token made for one host does not open on
 * another, and any change to it makes it not open at all.  Single use is
 * the caller's: it claims the id in the shared replay store.
 *
 * Pure: OpenSSL (through session.h) only.
 */
#ifndef PORTCULLIS_HANDOFF_TOKEN_H
#define PORTCULLIS_HANDOFF_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/session.h"

/* Hex digits of a token id and of a browser nonce. */
#define HANDOFF_ID_HEX 32

/* What an opened token holds. */
struct handoff {
	char id[HANDOFF_ID_HEX + 1];    /* single-use id */
	char state[HANDOFF_ID_HEX + 1]; /* the browser nonce it is bound to */
	int64_t not_after;              /* refused from this second on */
	char *target;                   /* path (and query) on the target host */
	struct session *session;        /* the session to set there */
};

/*
 * Seal a token for the host <origin> ("https://host[:port]") carrying
 * session <s>, the nonce <state> (HANDOFF_ID_HEX lower-case hex digits) and
 * the path <target>, valid <lifetime> seconds from <now>, with a fresh
 * random id.  A new base64url string (caller frees), or NULL (malformed
 * state, no randomness, too large).
 */
char *handoff_token_seal(const struct session_keys *k, const char *origin, const struct session *s,
			 const char *state, const char *target, int64_t now, int64_t lifetime);

/*
 * Open <token> for <origin> at <now>.  A new handoff (handoff_free), or NULL
 * with why in <err>: it does not open (changed, sealed with a key we do not
 * hold, or made for another host) or it has expired.
 */
struct handoff *handoff_token_open(const struct session_keys *k, const char *origin,
				   const char *token, int64_t now, char *err, size_t errlen);

/* Free.  Accepts NULL. */
void handoff_free(struct handoff *h);

/* True when <s> is exactly HANDOFF_ID_HEX lower-case hex digits. */
bool handoff_hex_ok(const char *s);

#endif

/*
 * assertion: the signed identity assertion a protected route hands its
 * upstream (docs/saml.md#signed-identity-assertion): a JWT (jwt.h, ES256)
 * with iss (the site), aud (the upstream), sub (the NameID), email, groups,
 * iat and exp, exp never past the session's own end.  Signed once per
 * session and audience and reused from a small per-thread cache until half
 * its lifetime is left.  Called by the SAML gate on the worker threads.
 */
#ifndef PORTCULLIS_ASSERTION_H
#define PORTCULLIS_ASSERTION_H

#include <stdint.h>

struct jwt_keys;
struct session;

struct assertion_params {
	const struct jwt_keys *keys;
	const char *issuer;       /* "iss": the site */
	const char *audience;     /* "aud": the upstream */
	const char *email_attr;   /* the attribute for "email" (absent: no claim) */
	const char *groups_attr;  /* the attribute for "groups" (every value; absent: []) */
	int64_t lifetime;         /* seconds */
	int64_t session_end;      /* the session's own end: exp is never later */
};

/*
 * The token for session <s>, whose sealed cookie text is <session_text> (the
 * cache key, with audience, issuer and kid), at <now>.  Borrowed from this
 * thread's cache: valid until this thread's next call.  NULL when signing
 * fails or the session has ended.
 */
const char *assertion_token(const struct assertion_params *p, const char *session_text,
			    const struct session *s, int64_t now);

/* assertion_token, also telling the token's "exp" in *until. */
const char *assertion_token_until(const struct assertion_params *p, const char *session_text,
				  const struct session *s, int64_t now, int64_t *until);

/* Free this thread's cache now (otherwise at thread exit). */
void assertion_thread_release(void);

#endif

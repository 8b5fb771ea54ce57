/*
 * session_id: a stable identifier for one sealed session, derived from what
 * the cookie already holds (NameID, issue time, absolute end), so that
 * cookies sealed before it existed have one too and the cookie format stays
 * as it was.  The cookie is re-sealed as the session is used (the idle
 * timeout's last_seen), but those three never change, so every cookie of
 * one login has the same id; two logins of one user differ in their issue
 * time.  It is logged at login and names the session for revocation
 * (revoke.h); knowing it grants nothing.
 */
#ifndef PORTCULLIS_SESSION_ID_H
#define PORTCULLIS_SESSION_ID_H

#include "auth/session.h"

/* Characters of an id (base64url of 12 bytes), without the NUL. */
#define SESSION_ID_LEN 16

/* Write the id of <s> into <out> (NUL-terminated). */
void session_id(const struct session *s, char out[SESSION_ID_LEN + 1]);

#endif

/*
 * saml: the SAML 2.0 service provider (lasso for metadata handling and the
 * signed AuthnRequest; libxml2 + xmlsec for the strict checks of a response).
 *
 * What it does:
 *   - creates the SP key and certificate (RSA 3072, self-signed, 10 years)
 *     when their files do not exist;
 *   - loads the IdP metadata from a file or a URL (https, or http on a
 *     loopback address for tests), fetched at start and again every refresh
 *     interval by a background thread, cached on disk; when a fetch fails
 *     the cached copy is used and the failure is logged;
 *   - builds the SHA-256-signed AuthnRequest for the HTTP-Redirect binding,
 *     with AssertionConsumerServiceURL and ProtocolBinding=HTTP-POST;
 *   - checks a response posted to the ACS (saml_accept_response): signature
 *     by a key from the IdP metadata only (KeyInfo in the message is
 *     ignored), enveloped, one Reference to its own parent's ID, C14N 1.0,
 *     exclusive C14N or C14N 1.1, covering the one assertion used; exactly
 *     one assertion; Destination, Recipient, Audience (read from the XML,
 *     every AudienceRestriction must name us), Issuer, Status, time windows
 *     with clock skew, IssueInstant age cap, InResponseTo of the request this
 *     browser started, and the assertion ID never seen before (replay cache,
 *     one per process, shared by every worker thread);
 *   - generates the SP metadata and, when the IdP metadata lists an
 *     HTTP-Redirect SingleLogoutService, a signed LogoutRequest URL, and
 *     answers the IdP's own signed LogoutRequest with a signed
 *     LogoutResponse;
 *   - with a replay store shared by replicas (saml_accept_response_shared),
 *     hands the assertion ID to the caller instead of the in-process cache.
 *
 * Why the response is not checked by lasso: Casdoor (the IdP this proxy is
 * first meant for) canonicalizes with C14N 1.1 by default, which lasso 2.8
 * refuses (error -111) although xmlsec verifies it; and lasso drops an
 * AudienceRestriction holding several Audience elements (Casdoor's default).
 * So the signature is verified here with xmlsec under lasso's own strictness
 * and the values are read from the verified DOM node.
 *
 * Thread safety: every lasso / libxml2 / xmlsec call is serialized by one
 * process-wide mutex (logins are rare; the hot path, the session cookie,
 * never comes here).  Called by auth.c; created by config.c at load.
 */
#ifndef PORTCULLIS_SAML_H
#define PORTCULLIS_SAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct saml;
struct session;

struct saml_options {
	const char *idp_metadata;       /* file path or URL */
	const char *idp_metadata_cache; /* where a fetched copy is kept */
	double idp_metadata_refresh;    /* seconds between fetches (URL only) */
	const char *sp_entity_id;
	const char *acs_url;            /* absolute */
	const char *slo_url;            /* absolute; our logout endpoint */
	const char *sp_key;             /* PEM files, created when absent */
	const char *sp_cert;
	double clock_skew;              /* seconds */
	double max_age;                 /* IssueInstant age cap, seconds */
	bool allow_sha1;
	size_t replay_cache_size;
	const char *const *attributes;  /* names kept in the session (Name or FriendlyName) */
	size_t nattributes;
	/* Encrypted assertions (docs/saml.md#encrypted-assertions): the SP's
	 * RSA encryption key and certificate, from PEM text holding both
	 * (enc_pem), else from the files enc_key / enc_cert (created when
	 * absent); none of them: no encryption key, EncryptedAssertion refused. */
	const char *enc_pem;
	const char *enc_key;
	const char *enc_cert;
	bool require_encryption;        /* refuse plain-text assertions */
};

/*
 * Set up the SP described by <o> (strings are copied).  NULL with a reason
 * in <err> (naming the file, URL or metadata problem).
 */
struct saml *saml_new(const struct saml_options *o, char *err, size_t errlen);

/* Stop the refresh thread and free.  Accepts NULL. */
void saml_free(struct saml *sp);

/* When the IdP metadata in use was loaded (Unix seconds) and when the next
 * fetch is due (0: never, the metadata is a file).  Any thread. */
void saml_metadata_times(const struct saml *sp, int64_t *loaded_at, int64_t *next_fetch);

/* The SP metadata document (caller frees), or NULL. */
char *saml_sp_metadata(struct saml *sp);

/*
 * A signed HTTP-Redirect AuthnRequest URL carrying <relay_state>; with
 * <force_authn>, ForceAuthn="true" (the IdP asks for credentials again).  Sets
 * *url and *request_id (caller frees both) and returns 0, or -1 with a
 * reason in <err>.
 */
int saml_login_request(struct saml *sp, const char *relay_state, bool force_authn, char **url,
		       char **request_id, char *err, size_t errlen);

/* What a login asks of the IdP (step-up): ForceAuthn, and a
 * RequestedAuthnContext of <nclass_refs> AuthnContextClassRef values with
 * Comparison "minimum" or "exact" (none when nclass_refs is 0). */
struct saml_login_options {
	bool force_authn;
	const char *const *class_refs;
	size_t nclass_refs;
	bool minimum;
};

/* saml_login_request with <o> (NULL: the defaults). */
int saml_login_request_with(struct saml *sp, const char *relay_state,
			    const struct saml_login_options *o, char **url, char **request_id,
			    char *err, size_t errlen);

/*
 * Check the base64 SAMLResponse <b64> posted to the ACS in answer to the
 * request <request_id>, at time <now>.  Returns a new session holding the
 * NameID and the kept attributes (issued = now; expires = the assertion's
 * SessionNotOnOrAfter, or 0 when it has none), and the AuthnContextClassRef
 * and AuthnInstant of the first AuthnStatement (stepup.h; an AuthnInstant
 * later than now + clock skew is refused), or NULL with the precise
 * failed check in <err> ("Audience: expected X, got Y"; for Casdoor's
 * defaults it names the Casdoor option to change).
 */
struct session *saml_accept_response(struct saml *sp, const char *b64, const char *request_id,
				     int64_t now, char *err, size_t errlen);

/* The assertion ID of an accepted response and until when (seconds since the
 * epoch) it could be accepted: how long a shared replay store keeps it. */
struct saml_replay_key {
	char *assertion_id; /* caller frees */
	int64_t keep_until;
};

/*
 * Like saml_accept_response, but the assertion ID is not looked up in the
 * in-process replay cache: it is handed out in <replay> (caller frees
 * replay->assertion_id) for the caller to claim in a store shared by every
 * replica; the login must be refused unless that claim succeeds.  On failure
 * <replay> holds nothing.
 */
struct session *saml_accept_response_shared(struct saml *sp, const char *b64,
					    const char *request_id, int64_t now,
					    struct saml_replay_key *replay, char *err, size_t errlen);

/*
 * Answer an IdP-initiated logout: <query> is the raw query string of the
 * HTTP-Redirect LogoutRequest sent to our logout URL (SAMLRequest,
 * RelayState, SigAlg, Signature).  The request must be signed by the IdP
 * (key from its metadata), come from its entity ID, name our logout URL as
 * Destination (when it names one) and be at most max_age old.  Returns 0 and
 * sets *name_id (the NameID it ends the session of) and *url (the signed
 * HTTP-Redirect LogoutResponse to the IdP's SingleLogoutService, or NULL
 * when its metadata has none); the caller frees both.  -1 with the failed
 * check in <err>.
 */
int saml_idp_logout(struct saml *sp, const char *query, int64_t now, char **name_id, char **url,
		    char *err, size_t errlen);

/*
 * A signed HTTP-Redirect LogoutRequest URL for <name_id> and the IdP's
 * <session_index> (caller frees), or NULL when the IdP metadata has no
 * HTTP-Redirect SingleLogoutService or <session_index> is NULL (lasso cannot
 * build the request without one; logged).
 */
char *saml_logout_request(struct saml *sp, const char *name_id, const char *session_index,
			  const char *relay_state);

/* The session attribute that keeps the IdP's SessionIndex (for logout). */
#define SAML_SESSION_INDEX_ATTR "@sessionindex"

/* The IdP's SessionIndex kept in <s>, or NULL. */
const char *saml_session_index(const struct session *s);

/* Clear the process-wide replay cache (tests). */
void saml_replay_reset(void);

/*
 * Remember assertion <id> until <expires> (seconds since the epoch).
 * Returns 0 when it was new, -1 when it was seen before or the cache is full
 * of live entries (<capacity> bounds it).
 */
int saml_replay_check(const char *id, int64_t expires, int64_t now, size_t capacity);

/* True when the replay cache holds <capacity> live IDs (for the error message). */
bool saml_replay_full(size_t capacity);

/* Parse an xs:dateTime ("2024-05-01T10:00:00Z", fractions and offsets
 * allowed) into seconds since the epoch.  Returns 0 or -1. */
int saml_parse_time(const char *s, int64_t *out);

#endif

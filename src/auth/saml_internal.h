/*
 * saml_internal: the SAML SP's state (struct saml) and what the files of the
 * SP share: saml.c (set-up, requests, logout), saml_refresh.c (the IdP
 * metadata refresh thread and the times the status page shows),
 * saml_response.c (the checks of a response).  Only the files of auth/
 * include this; everyone else uses saml.h.
 */
#ifndef PORTCULLIS_SAML_INTERNAL_H
#define PORTCULLIS_SAML_INTERNAL_H

#if !defined(XMLSEC_CRYPTO_OPENSSL) || !defined(XMLSEC_NO_SIZE_T)
#error "compile saml*.c with the flags of: pkg-config --cflags lasso xmlsec1-openssl"
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmlsec/keys.h>

/* Casdoor's app options, named in errors that its defaults cause. */
#define CASDOOR_HASH_HINT \
	"; with Casdoor set the application's \"SAML hash algorithm\" to SHA256, or set " \
	"saml.allow_sha1 to accept SHA-1"
#define CASDOOR_BINDING_HINT \
	"; with Casdoor keep \"Enable SAML compress\" off (and \"Enable SAML POST binding\" on " \
	"where the version has it)"

struct saml_idp;

struct saml {
	char *idp_metadata, *idp_metadata_cache;
	double refresh;
	char *sp_entity_id, *acs_url, *slo_url, *sp_key_path, *sp_cert_path;
	char *sp_key_pem, *sp_cert_pem, *sp_cert_b64;
	char *sp_metadata;
	double clock_skew, max_age;
	bool allow_sha1;
	size_t replay_cache_size;
	char **attributes;
	size_t nattributes;
	struct saml_idp *idp;    /* current; swapped by the refresh thread under saml_lock */
	_Atomic int64_t idp_loaded_at; /* Unix seconds, for the status page */
	_Atomic int64_t idp_next_fetch; /* 0: no refresh thread */
	xmlSecKeyPtr enc_key;    /* decrypts EncryptedAssertion; NULL: none configured */
	char *enc_cert_b64;      /* its certificate, for the metadata */
	bool require_encryption;

	pthread_t thread;
	bool thread_started;
	bool stop;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
};

/* Every lasso / libxml2 / xmlsec call runs under this lock (saml.c). */
extern pthread_mutex_t saml_lock;

/* printf <fmt> into <err> (truncated to <errlen>). */
__attribute__((format(printf, 3, 4))) void saml_err(char *err, size_t errlen, const char *fmt,
						     ...);

/* Whether <s> is an http:// or https:// URL (else a file path). */
bool saml_is_url(const char *s);

/*
 * saml_refresh.c.  After the first load of sp->idp: note the load time and,
 * when the metadata is a URL, start the thread that fetches it again every
 * sp->refresh seconds (swapping sp->idp under saml_lock, keeping the current
 * one when a fetch or a document fails).  stop_lock and stop_cond must be
 * initialised.  0, or -1 with the reason in <err>.
 */
int saml_refresh_start(struct saml *sp, char *err, size_t errlen);

/* Stop the refresh thread, if one was started, and wait for it to end. */
void saml_refresh_stop(struct saml *sp);

#endif

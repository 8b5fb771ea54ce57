/*
 * acme_challenge: the pending ACME challenges, in a process-wide registry that
 * the ACME client fills and the listeners read from any thread (one mutex;
 * lookups copy out or take references, so nothing borrowed outlives the
 * lock).  HTTP-01 entries map a token to its key authorization; TLS-ALPN-01
 * entries map a DNS name to a self-signed certificate carrying the critical
 * acmeIdentifier extension (RFC 8737).  Answers can also be shared with other
 * instances through files in the storage folder.  The public lookups are declared in
 * acme.h; this header is for acme_client.c and the tests.  No libevent.
 */
#ifndef PORTCULLIS_ACME_CHALLENGE_H
#define PORTCULLIS_ACME_CHALLENGE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "acme/acme.h"

/*
 * Also publish every answer as a file under <dir> (http-01/<token>,
 * tls-alpn-01/<name>; folders 0700, files 0600) and fall back to those files
 * on lookups that miss in memory, so that an instance sharing the storage
 * folder answers the challenges of an order another instance placed (the
 * CA may reach either).  NULL turns it off.  0, or -1 with a reason in <err>.
 */
int acme_challenge_set_shared_dir(const char *dir, char *err, size_t errlen);

/* Publish an HTTP-01 answer (replacing one with the same token).  0 or -1. */
int acme_challenge_http01_add(const char *token, const char *keyauth);

/* Withdraw the HTTP-01 answer for <token> (no-op if absent). */
void acme_challenge_http01_remove(const char *token);

/* Build and publish the TLS-ALPN-01 certificate for <name> (replacing one for
 * the same name).  0 or -1. */
int acme_challenge_tlsalpn01_add(const char *name, const char *keyauth);

/* Withdraw the TLS-ALPN-01 certificate for <name> (no-op if absent). */
void acme_challenge_tlsalpn01_remove(const char *name);

/*
 * A new self-signed certificate for <name> with subjectAltName dNSName <name>
 * and the critical extension 1.3.6.1.5.5.7.1.31 whose value is the DER
 * OCTET STRING of SHA-256(<keyauth>); its new P-256 key in <*key>.  NULL on
 * error.
 */
X509 *acme_challenge_tlsalpn01_build(const char *name, const char *keyauth, EVP_PKEY **key);

/* How many challenge answers of <type> were served since the start. */
uint64_t acme_challenge_served(enum acme_challenge_type type);

#endif

/*
 * tls_cert: the certificates a store serves and the index that finds them.
 * Callers outside tls/ include tls.h, which includes this header.
 *
 * A struct tls_cert is one certificate with its key and chain, checked when
 * made (key type and size, key match, validity, subjectAltName coverage) and
 * immutable afterwards; it is reference-counted so that a handshake finishes
 * on the certificate it started with.  A struct tls_index is an immutable,
 * reference-counted snapshot of every certificate served, sorted by name
 * (exact names and "*.parent" wildcards), with the default slot for clients
 * without SNI or with an unknown name.  tls.c builds and swaps indexes;
 * tls_handshake.c looks names up in them.  Also here, and seen through tls.h:
 * struct tls_file_pair, tls_check_files and tls_name_matches.
 */
#ifndef PORTCULLIS_TLS_CERT_H
#define PORTCULLIS_TLS_CERT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

/* One certificate given as files: a PEM chain (leaf first) and its PEM key.
 * <key> may name the same file as <cert> (a combined PEM). */
struct tls_file_pair {
	const char *cert;
	const char *key;
	/* Names the certificate must cover (exact or by its wildcard), checked at
	 * every load: typically the hosts of the sites served with it.  May be
	 * empty; the certificate is then served for whatever names it has. */
	const char *const *names;
	size_t nnames;
};

/*
 * Check a certificate/key pair as the store would load it, without a store
 * (for portcullis -t).  Returns 0, or -1 with a one-line reason in <err> that
 * names the file and what is wrong.
 */
int tls_check_files(const struct tls_file_pair *pair, char *err, size_t errlen);

/* True when the certificate name <pattern> ("example.com" or "*.example.com")
 * covers the lower-case host name <name>. */
bool tls_name_matches(const char *pattern, const char *name);


enum tls_kind { TLS_KIND_ECDSA, TLS_KIND_RSA, TLS_KIND_COUNT };
enum tls_source { TLS_SOURCE_FILE, TLS_SOURCE_INSTALLED, TLS_SOURCE_LOCAL_CA };

/* One certificate with its key and chain; immutable once made. */
struct tls_cert {
	atomic_int refs;
	X509 *x509;
	EVP_PKEY *key;
	STACK_OF(X509) *chain; /* intermediates, may be empty */
	char **names;          /* subjectAltName dNSName (lower case) and iPAddress (text) */
	size_t nnames;
	time_t not_before;
	time_t not_after;
	enum tls_kind kind;
	enum tls_source source;
	unsigned char content[32]; /* SHA-256 of the PEM text it was made from */
};

/* What one name serves: at most one certificate per key kind. */
struct tls_slot {
	struct tls_cert *c[TLS_KIND_COUNT];
};

struct tls_entry {
	const char *name; /* borrowed from a certificate in tls_index.all */
	struct tls_slot slot;
};

/* An immutable snapshot of every certificate served, sorted by name. */
struct tls_index {
	atomic_int refs;
	struct tls_entry *entries;
	size_t n;
	struct tls_slot dflt;
	struct tls_cert **all; /* one reference each, in priority order */
	size_t nall;
};

/* Take a reference to <c> (NULL accepted); returns <c>. */
struct tls_cert *tls_cert_ref(struct tls_cert *c);

/* Drop a reference; the last one frees the certificate.  NULL accepted. */
void tls_cert_unref(struct tls_cert *c);

/*
 * Make a certificate from PEM text (<chain_pem>: the leaf, then its
 * intermediates; <key_pem>: its unencrypted key) and check it.  <cert_what>
 * and <key_what> name the inputs in errors (file paths, or a description).
 * Every name in <names> must be covered.  Returns a certificate with one
 * reference, or NULL with a one-line reason in <err>.
 */
struct tls_cert *tls_cert_from_pem(const char *chain_pem, size_t chain_len, const char *key_pem,
				   size_t key_len, const char *cert_what, const char *key_what,
				   const char *const *names, size_t nnames, enum tls_source source,
				   char *err, size_t errlen);

/* Same, reading the PEM text from <cert_path> and <key_path> (the key is
 * wiped from memory afterwards); the certificate's <content> is the SHA-256
 * of both files' text. */
struct tls_cert *tls_cert_from_files(const char *cert_path, const char *key_path,
				     const char *const *names, size_t nnames,
				     enum tls_source source, char *err, size_t errlen);

/*
 * A local CA leaf from <x> and <k> (both taken over, freed on failure too)
 * with <ca> (not taken over; a reference is added) as its chain.  Returns a
 * certificate with one reference, or NULL with the reason in <err>.
 */
struct tls_cert *tls_cert_from_local(X509 *x, EVP_PKEY *k, X509 *ca, char *err, size_t errlen);

/* Log that <c> was <verb> ("loaded", "installed"...) from <what>, with its
 * names and expiry; a warning when a file's certificate expires soon. */
void tls_cert_log_loaded(const struct tls_cert *c, const char *verb, const char *what);

/* "ecdsa" or "rsa", and "file", "acme" or "local_ca", for metrics labels. */
const char *tls_cert_kind_name(const struct tls_cert *c);
const char *tls_cert_source_name(const struct tls_cert *c);

/* Canonical text of <name> when it is an IP address (so "0:0::1" and "::1"
 * compare equal), else <name> lower-cased; into <out> (may be <name>). */
void tls_cert_canonical_name(const char *name, char *out, size_t len);

/* Free <n> strings and their array; NULL accepted. */
void tls_cert_free_names(char **v, size_t n);

/*
 * A new index (one reference) over the <n> certificates <certs>, in priority
 * order (each gets a reference): for each name, the first certificate of
 * each key kind wins.  The default slot is <default_name>'s (a warning when
 * no certificate covers it), else the first certificate's first name.  NULL
 * when out of memory.
 */
struct tls_index *tls_index_new(struct tls_cert *const *certs, size_t n,
				const char *default_name);

/* Drop a reference to <ix>; the last one frees it.  NULL accepted. */
void tls_index_unref(struct tls_index *ix);

/* The slot of the lower-case <name>: its exact entry, else its "*.parent"
 * wildcard; NULL when neither (or <name> is NULL). */
const struct tls_slot *tls_index_lookup(const struct tls_index *ix, const char *name);

#endif

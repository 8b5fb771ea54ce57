/*
 * localca: a private certificate authority that Portcullis keeps in its
 * certificates folder, so that localhost and private names get HTTPS with no
 * outside service (like Caddy's local certificates).
 *
 * On first use it creates <dir>/ca.key (P-256, mode 0600) and <dir>/ca.crt (a
 * self-signed CA certificate valid for 10 years: basicConstraints CA:TRUE,
 * pathlen 0, keyUsage keyCertSign and cRLSign), <dir> itself 0700.  Files are
 * written atomically (temporary file, fsync, rename, fsync of the folder)
 * under a lock file, so several processes sharing the folder create one CA.
 * Later runs load the same CA.  It never touches the system trust store: users
 * who want to trust the CA import ca.crt themselves.
 *
 * Leaf certificates (P-256, serverAuth, subjectAltName from the names given)
 * are issued in memory and are short-lived; the tls module renews them.
 * No libevent.
 */
#ifndef PORTCULLIS_LOCALCA_H
#define PORTCULLIS_LOCALCA_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct localca;

/* Lifetime of the CA certificate. */
#define LOCALCA_CA_DAYS 3650

/*
 * Load the CA in <dir> ("certs/local-ca"), creating the folder (and missing
 * parents, 0700) and the CA when they do not exist.  Returns NULL with a
 * one-line reason naming the file in <err> on failure (unreadable or
 * mismatched files, an expired CA certificate, a folder that cannot be made).
 */
struct localca *localca_open(const char *dir, char *err, size_t errlen);

/* Free the CA (its key is wiped).  Accepts NULL. */
void localca_free(struct localca *ca);

/* Path of ca.crt. */
const char *localca_cert_path(const struct localca *ca);

/* The CA certificate (borrowed). */
X509 *localca_cert(const struct localca *ca);

/*
 * Issue a leaf certificate for <names> (DNS names, "*.name" wildcards or IPv4
 * and IPv6 addresses; the first one also becomes the subject CN) valid from an
 * hour ago for <days> days, with a fresh P-256 key.  On success sets *cert and
 * *key (owned by the caller) and returns 0; otherwise -1 with a reason in <err>.
 */
int localca_issue(struct localca *ca, const char *const *names, size_t nnames, unsigned days,
		  X509 **cert, EVP_PKEY **key, char *err, size_t errlen);

/*
 * Write <len> bytes of <data> to <path> atomically with mode <mode>: a
 * temporary file in the same folder, fsync, rename over <path>, fsync of the
 * folder.  Returns 0, or -1 with a reason in <err>.
 */
int localca_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
			 char *err, size_t errlen);

/*
 * Read the file at <path> (at most 1 MiB) into a new NUL-terminated buffer;
 * sets *len.  The caller frees it (OPENSSL_clear_free for keys).  NULL with a
 * reason naming the file in <err> on failure.
 */
char *localca_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* Create <dir> and its missing parents with mode 0700.  Returns 0 or -1 with
 * a reason in <err>. */
int localca_mkdirs(const char *dir, char *err, size_t errlen);

#endif

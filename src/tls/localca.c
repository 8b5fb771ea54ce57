/* localca: the private CA in certs/local-ca; see localca.h. */
#include "tls/localca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/sslerr.h"

struct localca {
	char *dir;
	char *cert_path;
	char *key_path;
	X509 *cert;
	EVP_PKEY *key;
};

int
localca_mkdirs(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		snprintf(err, errlen, "%s: bad folder name", dir);
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				snprintf(err, errlen, "cannot create folder %s: %s", path, strerror(errno));
				return -1;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

/* The reason for an open() of <name> in <dfd> (or AT_FDCWD) that failed
 * with <e>: a symbolic link (refused by O_NOFOLLOW) is named as such. */
static const char *
localca_open_reason(int e, int dfd, const char *name)
{
	struct stat st;

	if ((e == ELOOP || e == ENOTDIR) && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return "it is a symbolic link, which is never followed here";
	return strerror(e);
}

/*
 * Write <data> to <name> in the open folder <dfd> (shown as <shown> in
 * messages) atomically with mode <mode>: a new temporary file (O_EXCL,
 * O_NOFOLLOW), fchmod, fsync, renameat over <name> (which replaces a
 * symbolic link instead of following it), fsync of the folder.
 */
static int
localca_write_at(int dfd, const char *shown, const char *name, const void *data, size_t len,
		 unsigned mode, char *err, size_t errlen)
{
	char tmp[NAME_MAX + 1];
	const unsigned char *p = data;
	int fd = -1, rc = -1;
	size_t off = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", name, (long)getpid()) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: name too long", shown);
		return -1;
	}
	/* A leftover of a process that had the same pid and died mid-write. */
	(void)unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s.tmp.%ld: %s", shown, (long)getpid(),
			 localca_open_reason(errno, dfd, tmp));
		goto out;
	}
	/* The umask may have taken bits away; a key must be exactly 0600. */
	if (fchmod(fd, (mode_t)mode) < 0) {
		snprintf(err, errlen, "cannot set the mode of %s.tmp.%ld: %s", shown, (long)getpid(),
			 strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot write %s: %s", shown, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		snprintf(err, errlen, "cannot fsync %s: %s", shown, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", shown, strerror(errno));
		(void)unlinkat(dfd, tmp, 0);
		goto out;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, name) < 0) {
		snprintf(err, errlen, "cannot rename %s.tmp.%ld to %s: %s", shown, (long)getpid(),
			 shown, strerror(errno));
		(void)unlinkat(dfd, tmp, 0);
		goto out;
	}
	(void)fsync(dfd);
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		(void)unlinkat(dfd, tmp, 0);
	}
	return rc;
}

int
localca_write_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
		     size_t errlen)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *name = slash != NULL ? slash + 1 : path;
	int dfd, rc;

	if (strlen(path) >= sizeof(dir) || name[0] == '\0') {
		snprintf(err, errlen, "%s: not a file name", path);
		return -1;
	}
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(err, errlen, "cannot open folder %s: %s", dir, strerror(errno));
		return -1;
	}
	rc = localca_write_at(dfd, path, name, data, len, mode, err, errlen);
	close(dfd);
	return rc;
}

static EVP_PKEY *
new_p256_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A random positive 127-bit serial number. */
static int
set_random_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int rc = -1;

	if (bn == NULL)
		return -1;
	if (BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
		rc = 0;
	BN_free(bn);
	return rc;
}

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int
set_validity(X509 *x, long from_offset, long seconds)
{
	if (X509_gmtime_adj(X509_getm_notBefore(x), from_offset) == NULL)
		return -1;
	if (X509_time_adj_ex(X509_getm_notAfter(x), 0, seconds, NULL) == NULL)
		return -1;
	return 0;
}

static X509 *
make_ca_cert(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	char host[128] = "", cn[200];

	if (x == NULL)
		return NULL;
	if (gethostname(host, sizeof(host) - 1) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	snprintf(cn, sizeof(cn), "Portcullis Local CA%s%s", host[0] ? " " : "", host);
	name = X509_NAME_new();
	if (name == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
					(const unsigned char *)"Portcullis local CA", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0))
		goto fail;
	if (!X509_set_version(x, 2) || set_random_serial(x) < 0 ||
	    !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
	    set_validity(x, -3600, (long)LOCALCA_CA_DAYS * 86400) < 0 || !X509_set_pubkey(x, key))
		goto fail;
	if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto fail;
	X509_NAME_free(name);
	return x;
fail:
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

/* Read the open file <f> (shown as <path>; closed here), at most 1 MiB. */
static char *
localca_read_stream(FILE *f, const char *path, size_t *len, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t n = 0, cap = 0;

	for (;;) {
		size_t got;

		if (cap - n < 4096) {
			char *nb;

			if (cap >= (1u << 20)) {
				snprintf(err, errlen, "%s: larger than 1 MiB; not a PEM file", path);
				goto fail;
			}
			nb = realloc(buf, cap + 8192);
			if (nb == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
			cap += 8192;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	fclose(f);
	if (buf)
		OPENSSL_clear_free(buf, cap);
	return NULL;
}

char *
localca_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rbe");

	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	return localca_read_stream(f, path, len, err, errlen);
}

/* Open <name> in the CA folder <dfd> for reading: never through a symbolic
 * link, only a regular file.  Returns the fd (fstat in <st>) or -1. */
static int
localca_open_in(int dfd, const char *name, const char *shown, struct stat *st, char *err,
		size_t errlen)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s: %s", shown, localca_open_reason(errno, dfd, name));
		return -1;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "cannot read %s: not a regular file", shown);
		close(fd);
		return -1;
	}
	return fd;
}

/* Read <name> in the CA folder <dfd>; see localca_open_in.  When <key> is
 * true, a file readable by others is set to 0600 (fchmod on what was
 * opened). */
static char *
localca_read_in(int dfd, const char *name, const char *shown, bool key, size_t *len, char *err,
		size_t errlen)
{
	struct stat st;
	FILE *f;
	int fd = localca_open_in(dfd, name, shown, &st, err, errlen);

	if (fd < 0)
		return NULL;
	if (key && (st.st_mode & 077)) {
		log_warn("%s: the local CA key was readable by others (mode %03o); setting 0600",
			 shown, (unsigned)(st.st_mode & 0777));
		if (fchmod(fd, 0600) < 0) {
			snprintf(err, errlen, "cannot chmod %s: %s", shown, strerror(errno));
			close(fd);
			return NULL;
		}
	}
	f = fdopen(fd, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", shown, strerror(errno));
		close(fd);
		return NULL;
	}
	return localca_read_stream(f, shown, len, err, errlen);
}

static int
load_existing(struct localca *ca, int dfd, char *err, size_t errlen)
{
	size_t klen = 0, clen = 0;
	char *kbuf = NULL, *cbuf = NULL;
	BIO *bio = NULL;
	int rc = -1;

	kbuf = localca_read_in(dfd, "ca.key", ca->key_path, true, &klen, err, errlen);
	if (kbuf == NULL)
		goto out;
	cbuf = localca_read_in(dfd, "ca.crt", ca->cert_path, false, &clen, err, errlen);
	if (cbuf == NULL)
		goto out;
	bio = BIO_new_mem_buf(kbuf, (int)klen);
	ca->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (ca->key == NULL) {
		snprintf(err, errlen, "%s: no readable PEM private key (%s)", ca->key_path,
			 sslerr_reason("no key"));
		goto out;
	}
	bio = BIO_new_mem_buf(cbuf, (int)clen);
	ca->cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (ca->cert == NULL) {
		snprintf(err, errlen, "%s: no readable PEM certificate (%s)", ca->cert_path,
			 sslerr_reason("no certificate"));
		goto out;
	}
	if (!X509_check_private_key(ca->cert, ca->key)) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: the local CA key does not match %s", ca->key_path,
			 ca->cert_path);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0) {
		snprintf(err, errlen,
			 "%s: the local CA certificate has expired; move %s away to create a new CA",
			 ca->cert_path, ca->dir);
		goto out;
	}
	if (X509_check_ca(ca->cert) == 0) {
		snprintf(err, errlen, "%s: not a CA certificate", ca->cert_path);
		goto out;
	}
	rc = 0;
out:
	if (kbuf)
		OPENSSL_clear_free(kbuf, klen);
	free(cbuf);
	return rc;
}

static int
create_new(struct localca *ca, int dfd, char *err, size_t errlen)
{
	BIO *kb = NULL, *cb = NULL;
	char *kdata, *cdata;
	long klen, clen;
	int rc = -1;

	ca->key = new_p256_key();
	if (ca->key == NULL) {
		snprintf(err, errlen, "cannot generate the local CA key: %s", sslerr_reason("?"));
		goto out;
	}
	ca->cert = make_ca_cert(ca->key);
	if (ca->cert == NULL) {
		snprintf(err, errlen, "cannot make the local CA certificate: %s", sslerr_reason("?"));
		goto out;
	}
	kb = BIO_new(BIO_s_secmem());
	cb = BIO_new(BIO_s_mem());
	if (kb == NULL || cb == NULL || !PEM_write_bio_PrivateKey(kb, ca->key, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cb, ca->cert)) {
		snprintf(err, errlen, "cannot encode the local CA: %s", sslerr_reason("?"));
		goto out;
	}
	klen = BIO_get_mem_data(kb, &kdata);
	clen = BIO_get_mem_data(cb, &cdata);
	/* Key first: a ca.crt without its key would be an unusable CA. */
	if (localca_write_at(dfd, ca->key_path, "ca.key", kdata, (size_t)klen, 0600, err, errlen) < 0 ||
	    localca_write_at(dfd, ca->cert_path, "ca.crt", cdata, (size_t)clen, 0644, err, errlen) < 0)
		goto out;
	log_info("created a local CA: %s (trust this certificate to accept Portcullis's local "
		 "certificates; nothing was added to the system trust store)",
		 ca->cert_path);
	rc = 0;
out:
	BIO_free(kb);
	BIO_free(cb);
	return rc;
}

struct localca *
localca_open(const char *dir, char *err, size_t errlen)
{
	struct localca *ca = calloc(1, sizeof(*ca));
	char lock_path[PATH_MAX];
	int dfd = -1, lock_fd = -1;
	struct stat st;

	if (ca == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ca->dir = strdup(dir);
	if (ca->dir == NULL || asprintf(&ca->cert_path, "%s/ca.crt", dir) < 0 ||
	    asprintf(&ca->key_path, "%s/ca.key", dir) < 0) {
		ca->cert_path = ca->key_path = NULL;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (localca_mkdirs(dir, err, errlen) < 0)
		goto fail;
	/* Everything below works on this folder's descriptor: never through a
	 * symbolic link, whoever owns the names inside. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(err, errlen, "cannot open folder %s: %s", dir,
			 localca_open_reason(errno, AT_FDCWD, dir));
		goto fail;
	}
	if (fstat(dfd, &st) < 0) {
		snprintf(err, errlen, "cannot stat %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((st.st_mode & 077) && fchmod(dfd, 0700) < 0) {
		snprintf(err, errlen, "cannot set mode 0700 on %s: %s", dir, strerror(errno));
		goto fail;
	}
	/* Shared by every process using the folder, so not O_EXCL; never a
	 * symbolic link, only a regular file. */
	snprintf(lock_path, sizeof(lock_path), "%s/lock", dir);
	lock_fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
			 0600);
	if (lock_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", lock_path,
			 localca_open_reason(errno, dfd, "lock"));
		goto fail;
	}
	if (fstat(lock_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot open %s: not a regular file", lock_path);
		goto fail;
	}
	while (flock(lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "cannot lock %s: %s", lock_path, strerror(errno));
			goto fail;
		}
	}
	/* Under the lock: another process may just have created the CA.  A
	 * symbolic link counts as there (and is then refused when read). */
	if (fstatat(dfd, "ca.key", &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    fstatat(dfd, "ca.crt", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (load_existing(ca, dfd, err, errlen) < 0)
			goto fail;
	} else if (create_new(ca, dfd, err, errlen) < 0) {
		goto fail;
	}
	close(lock_fd); /* releases the lock */
	close(dfd);
	return ca;
fail:
	if (lock_fd >= 0)
		close(lock_fd);
	if (dfd >= 0)
		close(dfd);
	localca_free(ca);
	return NULL;
}

void
localca_free(struct localca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->dir);
	free(ca->cert_path);
	free(ca->key_path);
	free(ca);
}

const char *
localca_cert_path(const struct localca *ca)
{
	return ca->cert_path;
}

X509 *
localca_cert(const struct localca *ca)
{
	return ca->cert;
}

/* Add <name> to <gens> as an iPAddress or dNSName. */
static int
add_general_name(GENERAL_NAMES *gens, const char *name)
{
	GENERAL_NAME *gen = NULL;
	unsigned char ip[16];
	int family = strchr(name, ':') ? AF_INET6 : AF_INET;
	int iplen = family == AF_INET6 ? 16 : 4;

	if (inet_pton(family, name, ip) == 1) {
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();

		if (os == NULL || !ASN1_OCTET_STRING_set(os, ip, iplen)) {
			ASN1_OCTET_STRING_free(os);
			return -1;
		}
		gen = GENERAL_NAME_new();
		if (gen == NULL) {
			ASN1_OCTET_STRING_free(os);
			return -1;
		}
		GENERAL_NAME_set0_value(gen, GEN_IPADD, os);
	} else {
		ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

		if (ia5 == NULL || !ASN1_STRING_set(ia5, name, -1)) {
			ASN1_IA5STRING_free(ia5);
			return -1;
		}
		gen = GENERAL_NAME_new();
		if (gen == NULL) {
			ASN1_IA5STRING_free(ia5);
			return -1;
		}
		GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
	}
	if (!sk_GENERAL_NAME_push(gens, gen)) {
		GENERAL_NAME_free(gen);
		return -1;
	}
	return 0;
}

/* Host names: labels of [a-z0-9-] (any case), "*." allowed in front; or an
 * IP address. */
static bool
valid_leaf_name(const char *name)
{
	unsigned char ip[16];
	const char *p = name;
	size_t label = 0;

	if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
		return true;
	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	if (*p == '\0' || strlen(p) > 253)
		return false;
	for (; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

int
localca_issue(struct localca *ca, const char *const *names, size_t nnames, unsigned days,
	      X509 **cert, EVP_PKEY **key, char *err, size_t errlen)
{
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	X509_NAME *subject = NULL;
	GENERAL_NAMES *gens = NULL;

	if (nnames == 0) {
		snprintf(err, errlen, "local CA: no names to issue a certificate for");
		return -1;
	}
	for (size_t i = 0; i < nnames; i++) {
		if (!valid_leaf_name(names[i])) {
			snprintf(err, errlen, "local CA: \"%s\" is neither a host name nor an IP address",
				 names[i]);
			return -1;
		}
	}
	k = new_p256_key();
	x = X509_new();
	subject = X509_NAME_new();
	gens = sk_GENERAL_NAME_new_null();
	if (k == NULL || x == NULL || subject == NULL || gens == NULL)
		goto fail;
	if (!X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
					(const unsigned char *)names[0], -1, -1, 0))
		goto fail;
	for (size_t i = 0; i < nnames; i++)
		if (add_general_name(gens, names[i]) < 0)
			goto fail;
	if (!X509_set_version(x, 2) || set_random_serial(x) < 0 ||
	    !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) ||
	    set_validity(x, -3600, (long)days * 86400) < 0 || !X509_set_pubkey(x, k))
		goto fail;
	if (add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, ca->cert, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") < 0 ||
	    !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0))
		goto fail;
	/* A notAfter past the CA's would make the chain fail verification. */
	if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca->cert)) > 0 &&
	    !X509_set1_notAfter(x, X509_get0_notAfter(ca->cert)))
		goto fail;
	if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
		goto fail;
	X509_NAME_free(subject);
	GENERAL_NAMES_free(gens);
	*cert = x;
	*key = k;
	return 0;
fail:
	snprintf(err, errlen, "local CA: cannot issue a certificate for %s: %s", names[0],
		 sslerr_reason("out of memory"));
	X509_NAME_free(subject);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	EVP_PKEY_free(k);
	return -1;
}

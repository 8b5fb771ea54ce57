/* session: sealed cookies (AES-256-GCM); see session.h. */
#include "auth/session.h"

#include "base/b64url.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SESSION_VERSION 1
#define SESSION_KEYID_BYTES 4
#define SESSION_NONCE_BYTES 12
#define SESSION_TAG_BYTES 16
#define SESSION_OVERHEAD (1 + SESSION_KEYID_BYTES + SESSION_NONCE_BYTES + SESSION_TAG_BYTES)
#define SESSION_MAX_KEYS 16
#define SESSION_MAX_PLAIN 8192
/* Bytes b64url_decode may write for the longest text session_open accepts. */
#define SESSION_MAX_RAW (SESSION_MAX_SEALED * 3 / 4 + 3)
/* Opened sessions each thread keeps (session_open_cached), direct-mapped. */
#define SESSION_CACHE_SLOTS 128

struct session_keys {
	uint64_t gen; /* unique per key set, never reused: names it in the thread caches */
	size_t n;
	unsigned char key[SESSION_MAX_KEYS][SESSION_KEY_BYTES];
	unsigned char id[SESSION_MAX_KEYS][SESSION_KEYID_BYTES];
};

/* The next key set's generation; 0 is never handed out (it marks empty cache slots). */
static atomic_uint_fast64_t session_next_gen = 1;

/*
 * Per-thread state of the hot path.  A decryption context per key, with the
 * AES key schedule already done, so opening a cookie only sets the nonce; and
 * the sessions opened lately, by sealed text, so a browser sending the same
 * cookie again costs one comparison.  Both belong to one key set (gen): a
 * different key set (a reload, or a test's second ring) empties them first,
 * and a key set is never confused with a later one at the same address.
 * Freed at thread exit (pthread key destructor) or by session_thread_release.
 */
struct session_cached {
	uint64_t gen;    /* key set it was opened with; 0: empty slot */
	size_t tlen;     /* length of the sealed text */
	char *text;      /* the sealed text, NUL, then the purpose, NUL (one block) */
	struct session *s;
};

struct session_thread {
	uint64_t gen; /* key set of ctx[] (0: none yet) */
	EVP_CIPHER_CTX *ctx[SESSION_MAX_KEYS];
	struct session_cached cache[SESSION_CACHE_SLOTS];
};

static pthread_once_t session_tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t session_tls_key;
static bool session_tls_ok;
static _Thread_local struct session_thread *session_tls;

/* ---- keys ---------------------------------------------------------------- */

static void
session_key_id(const unsigned char *key, unsigned char *id)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	static const char label[] = "portcullis session key id";

	memset(md, 0, sizeof md);
	if (c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(c, label, sizeof label - 1) == 1 &&
	    EVP_DigestUpdate(c, key, SESSION_KEY_BYTES) == 1)
		EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	memcpy(id, md, SESSION_KEYID_BYTES);
}

static int
session_keys_add(struct session_keys *k, const unsigned char *key)
{
	if (k->n >= SESSION_MAX_KEYS)
		return -1;
	if (k->gen == 0)
		k->gen = atomic_fetch_add(&session_next_gen, 1);
	memcpy(k->key[k->n], key, SESSION_KEY_BYTES);
	session_key_id(key, k->id[k->n]);
	k->n++;
	return 0;
}

/* Parse one key token (64 hex digits, or base64/base64url of 32 bytes). */
static int
session_parse_key(const char *s, size_t len, unsigned char *key)
{
	char tmp[64];
	size_t n = 0;

	if (len == 64) {
		for (size_t i = 0; i < 32; i++) {
			char h[3] = { s[2 * i], s[2 * i + 1], '\0' };
			char *end;

			if (!isxdigit((unsigned char)h[0]) || !isxdigit((unsigned char)h[1]))
				goto b64;
			key[i] = (unsigned char)strtoul(h, &end, 16);
		}
		return 0;
	}
b64:
	/* base64 with or without padding, standard or url alphabet */
	if (len > sizeof tmp)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '=')
			break;
		tmp[n++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	{
		unsigned char out[48];
		long got;

		if (n > 44)
			return -1;
		got = b64url_decode(tmp, n, out);
		if (got != SESSION_KEY_BYTES)
			return -1;
		memcpy(key, out, SESSION_KEY_BYTES);
		OPENSSL_cleanse(out, sizeof out);
	}
	OPENSSL_cleanse(tmp, sizeof tmp);
	return 0;
}

/* Add every key of <text> (separated by <seps>); <what> names the source. */
static int
session_keys_parse(struct session_keys *k, const char *text, const char *seps, bool comments,
		   const char *what, char *err, size_t errlen)
{
	const char *p = text;
	unsigned line = 1;

	while (*p != '\0') {
		size_t len;
		unsigned char key[SESSION_KEY_BYTES];

		if (*p == '\n')
			line++;
		if (strchr(seps, *p) != NULL) {
			p++;
			continue;
		}
		if (comments && *p == '#') {
			while (*p != '\0' && *p != '\n')
				p++;
			continue;
		}
		len = strcspn(p, seps);
		if (session_parse_key(p, len, key) < 0) {
			snprintf(err, errlen,
				 "%s, line %u: not a session key (64 hex digits or base64 of 32 "
				 "bytes; make one with: openssl rand -hex 32)",
				 what, line);
			return -1;
		}
		if (session_keys_add(k, key) < 0) {
			OPENSSL_cleanse(key, sizeof key);
			snprintf(err, errlen, "%s: more than %d session keys", what, SESSION_MAX_KEYS);
			return -1;
		}
		OPENSSL_cleanse(key, sizeof key);
		p += len;
	}
	return 0;
}

/* Create <file> (0600) holding one fresh key. */
static int
session_keys_create(const char *file, char *err, size_t errlen)
{
	unsigned char key[SESSION_KEY_BYTES];
	char hex[2 * SESSION_KEY_BYTES + 2];
	int fd = -1, rc = -1;

	if (RAND_bytes(key, sizeof key) != 1) {
		snprintf(err, errlen, "%s: no random bytes for a new session key", file);
		goto out;
	}
	for (size_t i = 0; i < sizeof key; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	hex[2 * SESSION_KEY_BYTES] = '\n';
	hex[2 * SESSION_KEY_BYTES + 1] = '\0';
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST) /* someone else made it just now */
			rc = 0;
		else
			snprintf(err, errlen, "%s: cannot create the session key file: %s", file,
				 strerror(errno));
		goto out;
	}
	if (write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex) || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: cannot write the session key file: %s", file,
			 strerror(errno));
		unlink(file);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(hex, sizeof hex);
	return rc;
}

struct session_keys *
session_keys_load(const char *file, const char *env_value, bool create, char *err, size_t errlen)
{
	struct session_keys *k = calloc(1, sizeof *k);
	char *text = NULL;
	FILE *fp = NULL;

	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (file != NULL && file[0] != '\0') {
		struct stat st;
		long size;

		if (stat(file, &st) != 0 && errno == ENOENT && create &&
		    session_keys_create(file, err, errlen) < 0)
			goto fail;
		fp = fopen(file, "re");
		if (fp == NULL) {
			snprintf(err, errlen, "%s: cannot open the session key file: %s", file,
				 strerror(errno));
			goto fail;
		}
		if (fstat(fileno(fp), &st) == 0 && (st.st_mode & 077) != 0)
		{
			snprintf(err, errlen,
				 "%s: the session key file is readable by others (mode %03o); "
				 "chmod 600 it",
				 file, (unsigned)(st.st_mode & 0777));
			goto fail;
		}
		if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || size > 65536 ||
		    fseek(fp, 0, SEEK_SET) != 0) {
			snprintf(err, errlen, "%s: not a readable key file (at most 64 KiB)", file);
			goto fail;
		}
		text = calloc(1, (size_t)size + 1);
		if (text == NULL || fread(text, 1, (size_t)size, fp) != (size_t)size) {
			snprintf(err, errlen, "%s: cannot read the session key file", file);
			goto fail;
		}
		if (session_keys_parse(k, text, " \t\r\n", true, file, err, errlen) < 0)
			goto fail;
	}
	if (env_value != NULL &&
	    session_keys_parse(k, env_value, " \t\r\n,", false, "the session key variable", err,
			       errlen) < 0)
		goto fail;
	if (k->n == 0) {
		snprintf(err, errlen, "%s: no session key found", file ? file : "session keys");
		goto fail;
	}
	if (text != NULL) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	if (fp != NULL)
		fclose(fp);
	return k;
fail:
	if (text != NULL) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	if (fp != NULL)
		fclose(fp);
	session_keys_free(k);
	return NULL;
}

struct session_keys *
session_keys_from_raw(const unsigned char *keys, size_t n)
{
	struct session_keys *k;

	if (n == 0 || n > SESSION_MAX_KEYS || (k = calloc(1, sizeof *k)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		session_keys_add(k, keys + i * SESSION_KEY_BYTES);
	return k;
}

uint64_t
session_keys_generation(const struct session_keys *k)
{
	return k ? k->gen : 0;
}

size_t
session_keys_count(const struct session_keys *k)
{
	return k ? k->n : 0;
}

void
session_keys_free(struct session_keys *k)
{
	if (k == NULL)
		return;
	OPENSSL_cleanse(k, sizeof *k);
	free(k);
}

/* ---- sealing ------------------------------------------------------------- */

/* AAD: version and purpose. */
static int
session_aad(EVP_CIPHER_CTX *c, const char *purpose)
{
	int outl;
	unsigned char v = SESSION_VERSION;
	static const char label[] = "portcullis/";

	return EVP_CipherUpdate(c, NULL, &outl, (const unsigned char *)label, sizeof label - 1) ==
			       1 &&
		       EVP_CipherUpdate(c, NULL, &outl, &v, 1) == 1 &&
		       EVP_CipherUpdate(c, NULL, &outl, (const unsigned char *)purpose,
					(int)strlen(purpose)) == 1
		       ? 0
		       : -1;
}

char *
session_seal(const struct session_keys *k, const char *purpose, const unsigned char *plain,
	     size_t len)
{
	EVP_CIPHER_CTX *c = NULL;
	unsigned char *raw = NULL;
	char *text = NULL;
	size_t rawlen = SESSION_OVERHEAD + len;
	int outl, finl;

	if (k == NULL || k->n == 0 || len > SESSION_MAX_PLAIN ||
	    (rawlen * 4 + 2) / 3 > SESSION_MAX_SEALED)
		return NULL;
	raw = malloc(rawlen);
	c = EVP_CIPHER_CTX_new();
	if (raw == NULL || c == NULL)
		goto out;
	raw[0] = SESSION_VERSION;
	memcpy(raw + 1, k->id[0], SESSION_KEYID_BYTES);
	if (RAND_bytes(raw + 1 + SESSION_KEYID_BYTES, SESSION_NONCE_BYTES) != 1)
		goto out;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SESSION_NONCE_BYTES, NULL) != 1 ||
	    EVP_EncryptInit_ex(c, NULL, NULL, k->key[0], raw + 1 + SESSION_KEYID_BYTES) != 1 ||
	    session_aad(c, purpose) < 0)
		goto out;
	outl = 0;
	if (len > 0 &&
	    EVP_EncryptUpdate(c, raw + 1 + SESSION_KEYID_BYTES + SESSION_NONCE_BYTES, &outl, plain,
			      (int)len) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(c, raw + 1 + SESSION_KEYID_BYTES + SESSION_NONCE_BYTES + outl,
				&finl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SESSION_TAG_BYTES, raw + rawlen - SESSION_TAG_BYTES) !=
		    1)
		goto out;
	text = malloc((rawlen * 4 + 2) / 3 + 1);
	if (text != NULL)
		b64url_encode(raw, rawlen, text);
out:
	EVP_CIPHER_CTX_free(c);
	free(raw);
	return text;
}

/* ---- per-thread state ----------------------------------------------------- */

static void
session_cached_clear(struct session_cached *e)
{
	free(e->text);
	session_free(e->s);
	memset(e, 0, sizeof *e);
}

/* Drop the contexts and the cached sessions (another key set, or the end). */
static void
session_thread_reset(struct session_thread *th)
{
	for (size_t i = 0; i < SESSION_MAX_KEYS; i++) {
		EVP_CIPHER_CTX_free(th->ctx[i]); /* wipes the key schedule */
		th->ctx[i] = NULL;
	}
	for (size_t i = 0; i < SESSION_CACHE_SLOTS; i++)
		session_cached_clear(&th->cache[i]);
	th->gen = 0;
}

static void
session_thread_destroy(void *arg)
{
	struct session_thread *th = arg;

	if (th == NULL)
		return;
	session_thread_reset(th);
	free(th);
	if (session_tls == th)
		session_tls = NULL;
}

static void
session_tls_init(void)
{
	session_tls_ok = pthread_key_create(&session_tls_key, session_thread_destroy) == 0;
}

/* The calling thread's state for key set <k>, created on first use and emptied
 * when <k> is not the key set it holds; NULL when it cannot be had (the
 * callers then work without it). */
static struct session_thread *
session_thread_get(const struct session_keys *k)
{
	struct session_thread *th = session_tls;

	if (th == NULL) {
		if (pthread_once(&session_tls_once, session_tls_init) != 0 || !session_tls_ok)
			return NULL;
		th = calloc(1, sizeof *th);
		if (th == NULL)
			return NULL;
		if (pthread_setspecific(session_tls_key, th) != 0) {
			free(th);
			return NULL;
		}
		session_tls = th;
	}
	if (th->gen != k->gen) {
		session_thread_reset(th);
		th->gen = k->gen;
	}
	return th;
}

void
session_thread_release(void)
{
	struct session_thread *th = session_tls;

	if (th == NULL)
		return;
	session_tls = NULL;
	pthread_setspecific(session_tls_key, NULL);
	session_thread_destroy(th);
}

/* A context for decrypting with key <ki> of <k>, the key schedule done; only
 * the nonce remains to be set.  Borrowed from the thread's state, or new in
 * *own (the caller frees it) when there is none.  NULL on failure. */
static EVP_CIPHER_CTX *
session_decrypt_ctx(const struct session_keys *k, size_t ki, EVP_CIPHER_CTX **own)
{
	struct session_thread *th = session_thread_get(k);
	EVP_CIPHER_CTX *c = th ? th->ctx[ki] : NULL;

	*own = NULL;
	if (c != NULL)
		return c;
	c = EVP_CIPHER_CTX_new();
	if (c == NULL)
		return NULL;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SESSION_NONCE_BYTES, NULL) != 1 ||
	    EVP_DecryptInit_ex(c, NULL, NULL, k->key[ki], NULL) != 1) {
		EVP_CIPHER_CTX_free(c);
		return NULL;
	}
	if (th != NULL)
		th->ctx[ki] = c;
	else
		*own = c;
	return c;
}

/*
 * Open <tlen> characters of <text> into <raw> (SESSION_MAX_RAW bytes): on
 * success the plaintext is at *plain (inside <raw>, NUL-terminated), *len
 * bytes, and 0 is returned; -1 when the text does not open.
 */
static int
session_open_raw(const struct session_keys *k, const char *purpose, const char *text, size_t tlen,
		 unsigned char *raw, unsigned char **plain, size_t *len)
{
	EVP_CIPHER_CTX *c, *own = NULL;
	unsigned char *ct;
	long rawlen;
	size_t ki, ctlen;
	int outl, finl, rc = -1;

	if (k == NULL || tlen == 0 || tlen > SESSION_MAX_SEALED)
		return -1;
	rawlen = b64url_decode(text, tlen, raw);
	if (rawlen < (long)SESSION_OVERHEAD || raw[0] != SESSION_VERSION)
		return -1;
	for (ki = 0; ki < k->n; ki++)
		if (CRYPTO_memcmp(k->id[ki], raw + 1, SESSION_KEYID_BYTES) == 0)
			break;
	if (ki == k->n)
		return -1;
	ctlen = (size_t)rawlen - SESSION_OVERHEAD;
	ct = raw + 1 + SESSION_KEYID_BYTES + SESSION_NONCE_BYTES;
	c = session_decrypt_ctx(k, ki, &own);
	if (c == NULL)
		return -1;
	/* the nonce only: the cipher, its nonce length and the key are set */
	if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, raw + 1 + SESSION_KEYID_BYTES) != 1 ||
	    session_aad(c, purpose) < 0)
		goto out;
	outl = 0;
	/* in place: GCM decrypts a buffer onto itself */
	if (ctlen > 0 && EVP_DecryptUpdate(c, ct, &outl, ct, (int)ctlen) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SESSION_TAG_BYTES, ct + ctlen) != 1 ||
	    EVP_DecryptFinal_ex(c, ct + outl, &finl) != 1)
		goto out;
	ct[ctlen] = '\0'; /* over the first tag byte, which is no longer needed */
	*plain = ct;
	*len = ctlen;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(own);
	return rc;
}

int
session_open(const struct session_keys *k, const char *purpose, const char *text,
	     unsigned char **plain, size_t *len)
{
	unsigned char raw[SESSION_MAX_RAW], *p;
	size_t n;

	*plain = NULL;
	*len = 0;
	if (session_open_raw(k, purpose, text, text ? strlen(text) : 0, raw, &p, &n) < 0 ||
	    (*plain = malloc(n + 1)) == NULL)
		return -1;
	memcpy(*plain, p, n + 1);
	*len = n;
	return 0;
}

/* ---- encoding -------------------------------------------------------------
 * "PS1" u64 issued, u64 expires, u64 last_seen, u16 n, str name_id,
 * then n × (str name, str value); str = u16 length + bytes.  Big-endian.
 */

struct session_buf {
	unsigned char *p;
	size_t len, cap;
	bool fail;
};

static void
session_put(struct session_buf *b, const void *data, size_t n)
{
	if (b->fail)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		unsigned char *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->fail = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void
session_put_u64(struct session_buf *b, uint64_t v)
{
	unsigned char x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (unsigned char)(v >> (56 - 8 * i));
	session_put(b, x, 8);
}

static void
session_put_str(struct session_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	unsigned char x[2];

	if (n > 0xffff) {
		b->fail = true;
		return;
	}
	x[0] = (unsigned char)(n >> 8);
	x[1] = (unsigned char)n;
	session_put(b, x, 2);
	session_put(b, s ? s : "", n);
}

unsigned char *
session_encode(const struct session *s, size_t *len)
{
	struct session_buf b = { 0 };
	unsigned char n[2];

	if (s == NULL || s->nattrs > 0xffff)
		return NULL;
	session_put(&b, "PS1", 3);
	session_put_u64(&b, (uint64_t)s->issued);
	session_put_u64(&b, (uint64_t)s->expires);
	session_put_u64(&b, (uint64_t)s->last_seen);
	n[0] = (unsigned char)(s->nattrs >> 8);
	n[1] = (unsigned char)s->nattrs;
	session_put(&b, n, 2);
	session_put_str(&b, s->name_id);
	for (size_t i = 0; i < s->nattrs; i++) {
		session_put_str(&b, s->attrs[i].name);
		session_put_str(&b, s->attrs[i].value);
	}
	if (b.fail) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

struct session_reader {
	const unsigned char *p;
	size_t left;
};

static bool
session_get_u64(struct session_reader *r, uint64_t *v)
{
	if (r->left < 8)
		return false;
	*v = 0;
	for (int i = 0; i < 8; i++)
		*v = *v << 8 | r->p[i];
	r->p += 8;
	r->left -= 8;
	return true;
}

static char *
session_get_str(struct session_reader *r)
{
	size_t n;
	char *s;

	if (r->left < 2)
		return NULL;
	n = (size_t)r->p[0] << 8 | r->p[1];
	if (r->left - 2 < n || memchr(r->p + 2, '\0', n) != NULL)
		return NULL;
	s = malloc(n + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, r->p + 2, n);
	s[n] = '\0';
	r->p += 2 + n;
	r->left -= 2 + n;
	return s;
}

struct session *
session_decode(const unsigned char *buf, size_t len)
{
	struct session_reader r = { buf, len };
	struct session *s = session_new();
	uint64_t issued, expires, seen;
	size_t n;

	if (s == NULL || len < 3 + 24 + 2 || memcmp(buf, "PS1", 3) != 0)
		goto fail;
	r.p += 3;
	r.left -= 3;
	if (!session_get_u64(&r, &issued) || !session_get_u64(&r, &expires) ||
	    !session_get_u64(&r, &seen) || r.left < 2)
		goto fail;
	s->issued = (int64_t)issued;
	s->expires = (int64_t)expires;
	s->last_seen = (int64_t)seen;
	n = (size_t)r.p[0] << 8 | r.p[1];
	r.p += 2;
	r.left -= 2;
	if ((s->name_id = session_get_str(&r)) == NULL)
		goto fail;
	if (n > 0) {
		s->attrs = calloc(n, sizeof *s->attrs);
		if (s->attrs == NULL)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		s->nattrs = i + 1;
		if ((s->attrs[i].name = session_get_str(&r)) == NULL ||
		    (s->attrs[i].value = session_get_str(&r)) == NULL)
			goto fail;
	}
	if (r.left != 0)
		goto fail;
	return s;
fail:
	session_free(s);
	return NULL;
}

char *
session_seal_session(const struct session_keys *k, const char *purpose, const struct session *s)
{
	size_t len;
	unsigned char *plain = session_encode(s, &len);
	char *text;

	if (plain == NULL)
		return NULL;
	text = session_seal(k, purpose, plain, len);
	free(plain);
	return text;
}

struct session *
session_open_session(const struct session_keys *k, const char *purpose, const char *text)
{
	unsigned char raw[SESSION_MAX_RAW], *plain;
	size_t len;
	struct session *s = NULL;

	if (session_open_raw(k, purpose, text, text ? strlen(text) : 0, raw, &plain, &len) == 0)
		s = session_decode(plain, len);
	return s;
}

/* Characters 8 to 15 of a sealed text encode nonce bytes only (random, so
 * they spread), whatever the version and key id before them. */
size_t
session_text_slot(const char *text, size_t tlen, size_t nslots)
{
	uint64_t v;

	if (tlen < 16)
		return 0;
	memcpy(&v, text + 8, sizeof v);
	v *= UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(v >> 32) % nslots;
}

/* A word at a time: CRYPTO_memcmp goes byte by byte, 7 times slower here. */
bool
session_same_text(const char *a, const char *b, size_t n)
{
	uint64_t diff = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;

		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		diff |= x ^ y;
	}
	for (; i < n; i++)
		diff |= (uint64_t)((unsigned char)a[i] ^ (unsigned char)b[i]);
	return diff == 0;
}

const struct session *
session_open_cached(const struct session_keys *k, const char *purpose, const char *text)
{
	size_t tlen = text ? strlen(text) : 0, plen;
	struct session_thread *th;
	struct session_cached *e;
	struct session *s;
	char *copy;

	if (k == NULL || tlen == 0 || tlen > SESSION_MAX_SEALED)
		return NULL;
	th = session_thread_get(k);
	if (th == NULL) /* no thread state: no cache either */
		return NULL;
	e = &th->cache[session_text_slot(text, tlen, SESSION_CACHE_SLOTS)];
	if (e->gen == k->gen && e->tlen == tlen && session_same_text(e->text, text, tlen) &&
	    strcmp(e->text + tlen + 1, purpose) == 0)
		return e->s;
	s = session_open_session(k, purpose, text);
	if (s == NULL)
		return NULL;
	plen = strlen(purpose);
	copy = malloc(tlen + 1 + plen + 1);
	if (copy == NULL) {
		session_free(s);
		return NULL;
	}
	memcpy(copy, text, tlen + 1);
	memcpy(copy + tlen + 1, purpose, plen + 1);
	session_cached_clear(e);
	e->gen = k->gen;
	e->tlen = tlen;
	e->text = copy;
	e->s = s;
	return s;
}

bool
session_is_valid(const struct session *s, int64_t now, int64_t idle_timeout, int64_t skew)
{
	if (s == NULL)
		return false;
	if (now >= s->expires)
		return false;
	if (s->issued > now + skew || s->last_seen > now + skew)
		return false;
	/* last_seen comes from the cookie: subtract from <now>, the sane side, so a
	 * value near INT64_MIN cannot overflow */
	if (idle_timeout > 0 && s->last_seen <= now - idle_timeout)
		return false;
	return true;
}

const char *
session_attr(const struct session *s, const char *name)
{
	for (size_t i = 0; s != NULL && i < s->nattrs; i++)
		if (strcmp(s->attrs[i].name, name) == 0)
			return s->attrs[i].value;
	return NULL;
}

int
session_add_attr(struct session *s, const char *name, const char *value)
{
	struct session_attr *a = realloc(s->attrs, (s->nattrs + 1) * sizeof *a);

	if (a == NULL)
		return -1;
	s->attrs = a;
	a[s->nattrs].name = strdup(name);
	a[s->nattrs].value = strdup(value);
	if (a[s->nattrs].name == NULL || a[s->nattrs].value == NULL) {
		free(a[s->nattrs].name);
		free(a[s->nattrs].value);
		return -1;
	}
	s->nattrs++;
	return 0;
}

struct session *
session_new(void)
{
	return calloc(1, sizeof(struct session));
}

void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	free(s->name_id);
	for (size_t i = 0; i < s->nattrs; i++) {
		free(s->attrs[i].name);
		free(s->attrs[i].value);
	}
	free(s->attrs);
	free(s);
}

/* acme_store: atomic files, lock files and state for the ACME client; see acme_store.h. */
#include "acme/acme_store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#define STORE_MAX_FILE (1 << 20)

int
acme_store_mkdirs(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	size_t len = strlen(path), i;
	struct stat st;

	if (len == 0 || len >= sizeof(buf)) {
		snprintf(err, errlen, "storage path \"%s\" is empty or too long", path);
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create folder %s: %s", buf, strerror(errno));
			return -1;
		}
		if (i < len)
			buf[i] = '/';
	}
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a folder", path);
		return -1;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) != 0) {
		snprintf(err, errlen, "cannot set mode 0700 on %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* fsync the folder holding <path> so a rename survives a crash. */
static void
sync_parent(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd;

	if (slash == NULL) {
		strcpy(dir, ".");
	} else {
		size_t n = (size_t)(slash - path);

		if (n >= sizeof(dir))
			return;
		memcpy(dir, path, n);
		dir[n ? n : 1] = '\0';
		if (n == 0)
			dir[0] = '/';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

int
acme_store_write(const char *path, const void *data, size_t len, mode_t mode, char *err,
		 size_t errlen)
{
	char tmp[4200];
	unsigned char rnd[6];
	const char *p = data;
	size_t off = 0;
	int fd = -1, rc = -1;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%02x%02x%02x%02x%02x%02x", path,
			     (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
			     rnd[5]) >= sizeof(tmp)) {
		snprintf(err, errlen, "path too long: %s", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) != 0) {
		snprintf(err, errlen, "cannot set mode %o on %s: %s", (unsigned)mode, tmp,
			 strerror(errno));
		goto done;
	}
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot write %s: %s", tmp,
				 n < 0 ? strerror(errno) : "short write");
			goto done;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		snprintf(err, errlen, "cannot fsync %s: %s", tmp, strerror(errno));
		goto done;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(err, errlen, "cannot close %s: %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto done;
	}
	sync_parent(path);
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		unlink(tmp);
	return rc;
}

char *
acme_store_read(const char *path, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t off = 0, cap = 4096;
	int saved;

	if (fd < 0) {
		saved = errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		errno = saved;
		return NULL;
	}
	buf = malloc(cap);
	if (buf == NULL)
		goto fail;
	for (;;) {
		ssize_t n;

		if (off + 1 >= cap) {
			char *nb;

			if (cap >= STORE_MAX_FILE) {
				snprintf(err, errlen, "%s is larger than 1 MiB", path);
				errno = EFBIG;
				goto fail;
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + off, cap - off - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			errno = saved;
			goto fail;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	if (len != NULL)
		*len = off;
	return buf;
fail:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return NULL;
}

static int
lock_create(const char *path, const char *token)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(token);
	int saved;

	if (fd < 0)
		return -1;
	if (write(fd, token, len) != (ssize_t)len || fsync(fd) != 0) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved ? saved : EIO;
		return -1;
	}
	close(fd);
	return 0;
}

static bool
lock_holds(const char *path, const char *token)
{
	char err[64];
	char *data = acme_store_read(path, NULL, err, sizeof(err));
	bool ours = data != NULL && strcmp(data, token) == 0;

	free(data);
	return ours;
}

enum acme_lock_result
acme_store_lock(const char *path, const char *token, unsigned stale_seconds, char *err,
		size_t errlen)
{
	struct stat st;
	char aside[4200];

	if (lock_create(path, token) == 0)
		return ACME_LOCK_TAKEN;
	if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create lock %s: %s", path, strerror(errno));
		return ACME_LOCK_ERROR;
	}
	if (lstat(path, &st) != 0) {
		/* released between our attempts: try once more */
		if (errno == ENOENT && lock_create(path, token) == 0)
			return ACME_LOCK_TAKEN;
		return ACME_LOCK_BUSY;
	}
	if (time(NULL) - st.st_mtime <= (time_t)stale_seconds)
		return ACME_LOCK_BUSY;
	/*
	 * Stale.  Move it aside under a name of our own (rename is atomic, so of
	 * several instances only one gets this file), then check that what we
	 * moved is still the stale lock and not one somebody just created; if it
	 * is fresh, put it back (link fails if yet another one appeared).
	 */
	snprintf(aside, sizeof(aside), "%s.stale.%s", path, token);
	for (char *c = aside + strlen(path); *c; c++)
		if (*c == '/' || *c == ' ')
			*c = '_';
	if (rename(path, aside) != 0)
		return ACME_LOCK_BUSY;
	if (lstat(aside, &st) == 0 && time(NULL) - st.st_mtime <= (time_t)stale_seconds) {
		if (link(aside, path) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot restore lock %s: %s", path, strerror(errno));
			unlink(aside);
			return ACME_LOCK_ERROR;
		}
		unlink(aside);
		return ACME_LOCK_BUSY;
	}
	unlink(aside);
	if (lock_create(path, token) == 0)
		return ACME_LOCK_TAKEN;
	if (errno == EEXIST)
		return ACME_LOCK_BUSY;
	snprintf(err, errlen, "cannot create lock %s: %s", path, strerror(errno));
	return ACME_LOCK_ERROR;
}

int
acme_store_lock_touch(const char *path, const char *token)
{
	if (!lock_holds(path, token))
		return -1;
	return utimensat(AT_FDCWD, path, NULL, 0) == 0 ? 0 : -1;
}

void
acme_store_unlock(const char *path, const char *token)
{
	if (lock_holds(path, token))
		unlink(path);
}

int
acme_store_state_load(const char *path, struct acme_state *st, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = NULL, *v;
	char *data;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	data = acme_store_read(path, NULL, err, errlen);
	if (data == NULL)
		return errno == ENOENT ? 0 : -1;
	root = json_loads(data, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		snprintf(err, errlen, "%s: not a JSON object (%s)", path,
			 root ? "wrong type" : jerr.text);
		goto done;
	}
	v = json_object_get(root, "failures");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			snprintf(err, errlen, "%s: failures: expected a non-negative integer", path);
			goto done;
		}
		st->failures = (unsigned)json_integer_value(v);
	}
	v = json_object_get(root, "next_attempt");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			snprintf(err, errlen, "%s: next_attempt: expected a non-negative integer",
				 path);
			goto done;
		}
		st->next_attempt = (time_t)json_integer_value(v);
	}
	v = json_object_get(root, "last_error");
	if (json_is_string(v))
		snprintf(st->last_error, sizeof(st->last_error), "%s", json_string_value(v));
	rc = 0;
done:
	json_decref(root);
	free(data);
	return rc;
}

int
acme_store_state_save(const char *path, const struct acme_state *st, char *err, size_t errlen)
{
	json_t *root = json_pack("{s:I, s:I, s:s}", "failures", (json_int_t)st->failures,
				 "next_attempt", (json_int_t)st->next_attempt, "last_error",
				 st->last_error);
	char *text;
	int rc;

	if (root == NULL) {
		snprintf(err, errlen, "cannot encode state for %s", path);
		return -1;
	}
	text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (text == NULL) {
		snprintf(err, errlen, "cannot encode state for %s", path);
		return -1;
	}
	rc = acme_store_write(path, text, strlen(text), 0600, err, errlen);
	free(text);
	return rc;
}

int
acme_store_ca_folder(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://"), *end;
	size_t n, i;

	if (p == NULL)
		return -1;
	p += 3;
	end = p + strcspn(p, "/?#");
	/* drop userinfo */
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			p = q + 1;
	n = (size_t)(end - p);
	if (n == 0 || n >= outlen)
		return -1;
	for (i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)p[i]);

		if (c == ':')
			c = '_';
		else if (!(isalnum((unsigned char)c) || c == '.' || c == '-'))
			c = '_';
		out[i] = c;
	}
	out[n] = '\0';
	if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		return -1;
	return 0;
}

int
acme_store_name_folder(const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name), i;

	if (n == 0 || n >= outlen || name[0] == '.')
		return -1;
	for (i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)name[i]);

		if (!(isalnum((unsigned char)c) || c == '.' || c == '-'))
			c = '_';
		out[i] = c;
	}
	out[n] = '\0';
	return 0;
}

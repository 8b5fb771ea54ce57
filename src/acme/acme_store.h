/*
 * acme_store: the ACME client's files.  Directories are created 0700, files
 * are written atomically (temporary file in the same folder, fsync, rename,
 * fsync of the folder) with the mode the caller gives (0600 for keys).  A
 * lock file lets several instances share one storage folder: whoever creates
 * it orders, the others wait; a lock not touched for a stale timeout is taken
 * over.  The per-certificate state file keeps the failure count and the next
 * attempt time across restarts.  Pure: POSIX and jansson, no libevent.
 */
#ifndef PORTCULLIS_ACME_STORE_H
#define PORTCULLIS_ACME_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* Create <path> and its missing parents with mode 0700; an existing folder is
 * tightened to 0700.  Returns 0, or -1 with a reason naming the path in <err>. */
int acme_store_mkdirs(const char *path, char *err, size_t errlen);

/* Replace <path> atomically with <len> bytes of <data>, file mode <mode>.
 * Returns 0, or -1 with a reason in <err> (the old file is untouched). */
int acme_store_write(const char *path, const void *data, size_t len, mode_t mode, char *err,
		     size_t errlen);

/* Read all of <path> (at most 1 MiB) into a new NUL-terminated buffer.  NULL
 * with a reason in <err>; errno is ENOENT when the file does not exist. */
char *acme_store_read(const char *path, size_t *len, char *err, size_t errlen);

enum acme_lock_result {
	ACME_LOCK_TAKEN,
	ACME_LOCK_BUSY,    /* another instance holds a fresh lock */
	ACME_LOCK_ERROR,
};

/*
 * Take the lock file <path>, writing <token> (unique to this holder) into it.
 * A lock whose modification time is more than <stale_seconds> old is taken
 * over.  ACME_LOCK_ERROR comes with a reason in <err>.
 */
enum acme_lock_result acme_store_lock(const char *path, const char *token, unsigned stale_seconds,
				      char *err, size_t errlen);

/* Refresh the lock's modification time while holding it.  Returns 0, or -1
 * if the lock is no longer ours (taken over as stale). */
int acme_store_lock_touch(const char *path, const char *token);

/* Remove the lock if it still holds <token>. */
void acme_store_unlock(const char *path, const char *token);

/* What state.json remembers about one certificate. */
struct acme_state {
	unsigned failures;       /* consecutive failed attempts */
	time_t next_attempt;     /* 0: none scheduled by a failure */
	char last_error[256];
};

/* Load <path>; a missing file gives a zeroed state and 0.  -1 with a reason
 * in <err> if the file exists but is unreadable or not the expected JSON. */
int acme_store_state_load(const char *path, struct acme_state *st, char *err, size_t errlen);

/* Write <st> to <path> atomically (0600).  0 or -1 with a reason in <err>. */
int acme_store_state_save(const char *path, const struct acme_state *st, char *err,
			  size_t errlen);

/* The storage folder name for a CA directory URL: its host, plus "_<port>"
 * when a port is given, lowercased, other characters than [a-z0-9.-] as '_'.
 * Returns 0, or -1 if <url> has no host or <out> is too small. */
int acme_store_ca_folder(const char *url, char *out, size_t outlen);

/* The folder name for a certificate: its first DNS name, lowercased. */
int acme_store_name_folder(const char *name, char *out, size_t outlen);

#endif

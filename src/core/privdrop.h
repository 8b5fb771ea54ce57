/*
 * privdrop: who the process runs as.  Started as root with a "user",
 * Portcullis reads its configuration without side effects, binds its ports,
 * makes the state folders that do not exist yet (the certificates folder of
 * the local CA and ACME, the SAML folder with the SP key and the session
 * key) and gives those new folders to the user, then becomes that user for
 * good: supplementary groups, gid and uid switched (real, effective and
 * saved), no capabilities left, no_new_privs set, and a check that root
 * cannot be regained.  Everything else (keys, the local CA, ACME, the access
 * log, GeoIP) is done afterwards, as the user.  Without "user" it refuses to
 * stay root unless "allow_root" is true (or PORTCULLIS_ALLOW_ROOT=1 is in
 * the environment).
 *
 * As root it never follows a symbolic link the user could have made: state
 * folder paths are opened one component at a time with O_NOFOLLOW, and
 * ownership changes go through descriptors.  A state folder that an older
 * run left to root is handed over (migrated) only when root alone can
 * change it and every folder above it.
 *
 * Called by main (before any worker thread starts) and by the config loader
 * (to resolve names).  It never touches a file outside the state folders:
 * configuration, certificate files given by path, GeoIP databases and
 * operator-supplied keys only get a warning when the user cannot read them.
 * No libevent.
 */
#ifndef PORTCULLIS_PRIVDROP_H
#define PORTCULLIS_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;

/*
 * Resolve the "user" value <name>: a user name, or a decimal uid.  Sets
 * *uid and *gid (the user's primary group) and returns 0; a numeric uid with
 * no entry in the user database sets *gid to (gid_t)-1.  Returns -1 with a
 * one-line reason in <err> (an unknown name comes with the useradd command
 * that creates it).
 */
int privdrop_lookup_user(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* Resolve the "group" value <name>: a group name or a decimal gid.  Returns
 * 0 with *gid set, or -1 with a reason in <err>. */
int privdrop_lookup_group(const char *name, gid_t *gid, char *err, size_t errlen);

/*
 * Set no_new_privs (execve can never grant privileges again) on the calling
 * thread; threads started afterwards inherit it.  Call before any thread
 * exists.  Returns 0, or -1 with a reason in <err>.
 */
int privdrop_no_new_privs(char *err, size_t errlen);

/*
 * Before anything is bound or opened: may this process run with <cfg>?
 * Refuses (returns -1 with the message in <err>) when running as root with
 * no "user" and neither "allow_root" nor PORTCULLIS_ALLOW_ROOT=1 (read
 * through <getenv_fn>), when "user" is root without "allow_root", and when
 * started as another user than "user"/"group" (only root can switch).
 */
int privdrop_check_start(const struct config *cfg, const char *(*getenv_fn)(const char *name),
			 char *err, size_t errlen);

/*
 * After every socket is bound, and before anything is created, opened or
 * written for the configuration and before any worker thread starts: when
 * running as root with a "user", prepare the state folders (created when
 * missing and given to the user; a root-owned one migrated when only root
 * can change it; a symbolic link the user could have made is an error),
 * switch to the user for good, verify, and log "dropped privileges to user
 * NAME (uid N, gid M)"; then check the user can write the state folders and
 * warn about what it cannot read.  Running as root with allow_root: one
 * warning.  Not root: nothing to do.  <config_path> is the configuration
 * file (never changed, checked readable; a state folder holding it is
 * refused).  Returns 0, or -1 with a reason in <err> (the caller exits).
 */
int privdrop_apply(const struct config *cfg, const char *config_path,
		   const char *(*getenv_fn)(const char *name), char *err, size_t errlen);

/* Whether privdrop_apply will switch users with <cfg>: running as root with a
 * "user" that is not root. */
bool privdrop_switches(const struct config *cfg);

/* Whether two configs ask for the same "user", "group" and "allow_root". */
bool privdrop_settings_equal(const struct config *a, const struct config *b);

#endif

/*
 * privdrop: switch from root to the configured user after binding.  See
 * privdrop.h for the contract and docs/config.md ("Privileges") for the
 * operator's view.
 */
#include "core/privdrop.h"

#include "config/config_model.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Folders nested deeper than this in a state folder are refused. */
#define PRIVDROP_MAX_DEPTH 32

/* A state folder is never one of these (after symlinks are resolved). */
static const char *const privdrop_system_dirs[] = {
	"/",	      "/bin",	     "/boot",	       "/dev",		 "/etc",
	"/etc/ssl",   "/etc/ssl/certs", "/etc/ssl/private", "/etc/letsencrypt", "/home",
	"/lib",	      "/lib32",	     "/lib64",	       "/media",	 "/mnt",
	"/opt",	      "/proc",	     "/root",	       "/run",		 "/sbin",
	"/srv",	      "/sys",	     "/tmp",	       "/usr",		 "/usr/bin",
	"/usr/lib",   "/usr/local",  "/usr/sbin",      "/usr/share",	 "/var",
	"/var/cache", "/var/lib",    "/var/log",       "/var/run",	 "/var/tmp",
	NULL,
};

/* ---- names ------------------------------------------------------------ */

/* True for a non-empty string of decimal digits that fits in 32 bits. */
static bool
privdrop_numeric(const char *s, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > UINT32_MAX - 1)
		return false;
	*out = v;
	return true;
}

/*
 * Resolve a user name or decimal uid to uid and primary gid ((gid_t)-1 for
 * a numeric uid with no entry).  Returns 0, or -1 with a reason in <err>.
 */
int
privdrop_lookup_user(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	char buf[16384];
	struct passwd pw, *res = NULL;
	unsigned long n;
	int rc;

	if (name == NULL || name[0] == '\0') {
		snprintf(err, errlen, "empty; give a user name such as \"portcullis\" or a numeric uid");
		return -1;
	}
	if (privdrop_numeric(name, &n)) {
		rc = getpwuid_r((uid_t)n, &pw, buf, sizeof buf, &res);
		if (rc != 0) {
			snprintf(err, errlen, "cannot look up uid %lu: %s", n, strerror(rc));
			return -1;
		}
		*uid = (uid_t)n;
		*gid = res != NULL ? res->pw_gid : (gid_t)-1;
		return 0;
	}
	rc = getpwnam_r(name, &pw, buf, sizeof buf, &res);
	if (rc != 0 && rc != ENOENT && rc != ESRCH) {
		snprintf(err, errlen, "cannot look up user \"%s\": %s", name, strerror(rc));
		return -1;
	}
	if (res == NULL) {
		snprintf(err, errlen,
			 "no user named \"%s\" on this system; create it with: useradd --system "
			 "--no-create-home --shell /usr/sbin/nologin %s",
			 name, name);
		return -1;
	}
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

/* Resolve a group name or decimal gid.  Returns 0, or -1 with a reason. */
int
privdrop_lookup_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	char buf[16384];
	struct group gr, *res = NULL;
	unsigned long n;
	int rc;

	if (name == NULL || name[0] == '\0') {
		snprintf(err, errlen, "empty; give a group name such as \"portcullis\" or a numeric gid");
		return -1;
	}
	if (privdrop_numeric(name, &n)) {
		*gid = (gid_t)n;
		return 0;
	}
	rc = getgrnam_r(name, &gr, buf, sizeof buf, &res);
	if (rc != 0 && rc != ENOENT && rc != ESRCH) {
		snprintf(err, errlen, "cannot look up group \"%s\": %s", name, strerror(rc));
		return -1;
	}
	if (res == NULL) {
		snprintf(err, errlen,
			 "no group named \"%s\" on this system; create it with: groupadd --system %s",
			 name, name);
		return -1;
	}
	*gid = res->gr_gid;
	return 0;
}

/* ---- deciding --------------------------------------------------------- */

/* "allow_root": true, or PORTCULLIS_ALLOW_ROOT=1 in the environment. */
static bool
privdrop_root_allowed(const struct config *cfg, const char *(*getenv_fn)(const char *name))
{
	const char *env = getenv_fn != NULL ? getenv_fn("PORTCULLIS_ALLOW_ROOT") : NULL;

	return cfg->allow_root || (env != NULL && strcmp(env, "1") == 0);
}

/* Set no_new_privs on this thread (inherited by threads started later). */
int
privdrop_no_new_privs(char *err, size_t errlen)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether this process may run with <cfg>; see privdrop.h. */
int
privdrop_check_start(const struct config *cfg, const char *(*getenv_fn)(const char *name),
		     char *err, size_t errlen)
{
	bool allowed = privdrop_root_allowed(cfg, getenv_fn);

	if (geteuid() == 0) {
		if (cfg->user == NULL && !allowed) {
			snprintf(err, errlen,
				 "refusing to run as root: set \"user\" (e.g. \"portcullis\") to drop "
				 "privileges after binding, or \"allow_root\": true");
			return -1;
		}
		if (cfg->user != NULL && cfg->uid == 0 && !allowed) {
			snprintf(err, errlen,
				 "refusing to run as root: \"user\" is \"%s\" (uid 0); name an "
				 "unprivileged user such as \"portcullis\", or set \"allow_root\": true",
				 cfg->user);
			return -1;
		}
		return 0;
	}
	if (cfg->user == NULL)
		return 0;
	if (cfg->uid != getuid() || cfg->uid != geteuid()) {
		snprintf(err, errlen,
			 "\"user\" is \"%s\" (uid %lu) but Portcullis was started as uid %lu, and "
			 "only root can switch users; start it as root (it drops to \"%s\" after "
			 "binding) or as that user, or remove \"user\"",
			 cfg->user, (unsigned long)cfg->uid, (unsigned long)geteuid(), cfg->user);
		return -1;
	}
	if (cfg->group != NULL && (cfg->gid != getgid() || cfg->gid != getegid())) {
		snprintf(err, errlen,
			 "\"group\" is \"%s\" (gid %lu) but Portcullis was started with gid %lu, and "
			 "only root can switch groups; start it as root or with that group, or "
			 "remove \"group\"",
			 cfg->group, (unsigned long)cfg->gid, (unsigned long)getegid());
		return -1;
	}
	return 0;
}

/* ---- handing the state folders over ------------------------------------ */

/*
 * Root works on the state folders before the switch only through
 * descriptors: every path component is opened with O_NOFOLLOW, a symbolic
 * link is followed only when root alone could have made it, and ownership
 * changes go through fchown/fchownat on what was opened.  Inside a folder
 * the user can write, root does nothing at all: after a first run the
 * state folders are the user's, so a restart only opens them.
 */

struct privdrop_walk {
	uid_t uid;
	gid_t gid;
	const char *user;
	dev_t dev;         /* the state folder's file system: mount points are not crossed */
	bool have_config;  /* the configuration file, never changed */
	dev_t config_dev;
	ino_t config_ino;
	unsigned changed;
	char *err;
	size_t errlen;
};

/* Only root can change what this folder (or link) holds or points to:
 * root's, and not writable by group or others unless sticky (then nobody
 * else can remove or rename root's entries in it). */
static bool
privdrop_root_controlled(const struct stat *st)
{
	return st->st_uid == 0 &&
	       ((st->st_mode & (S_IWGRP | S_IWOTH)) == 0 || (st->st_mode & S_ISVTX) != 0);
}

/* A folder inside a state folder that the walk may enter: root's, writable
 * by root alone (nothing in it can have been planted by the user). */
static bool
privdrop_enterable(const struct stat *st)
{
	return st->st_uid == 0 && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* Give the entry at <fd> (stat <st>, shown as <path>) to the user, when root
 * owns it.  Entries owned by someone else are left alone with a warning. */
static int
privdrop_give(struct privdrop_walk *w, int fd, const struct stat *st, const char *path)
{
	if (st->st_uid == w->uid && st->st_gid == w->gid)
		return 0;
	if (st->st_uid != 0 && st->st_uid != w->uid) {
		log_warn("privileges: %s belongs to uid %lu, neither root nor %s: left as it is",
			 path, (unsigned long)st->st_uid, w->user);
		return 0;
	}
	if (fchownat(fd, "", w->uid, w->gid, AT_EMPTY_PATH) < 0) {
		snprintf(w->err, w->errlen, "cannot give %s to user %s: %s", path, w->user,
			 strerror(errno));
		return -1;
	}
	w->changed++;
	return 0;
}

/*
 * Migration of a state folder left by a run as root (an older version, or
 * "allow_root"): walk the open, root-controlled folder <fd> (closed here)
 * and give it and the root-owned files in it to the user, the folder last.
 * Entered are only folders that root owns and alone can write, so nothing
 * in them was planted by the user; symlinks are never followed, other file
 * systems never entered, hard-linked files and special files never changed.
 */
static int
privdrop_walk_dir(struct privdrop_walk *w, int fd, const char *path, unsigned depth)
{
	DIR *d = NULL;
	struct dirent *de;
	struct stat st, dst;
	char sub[PATH_MAX];
	int rc = -1;

	if (fstat(fd, &dst) < 0) {
		snprintf(w->err, w->errlen, "cannot stat %s: %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		snprintf(w->err, w->errlen, "cannot read folder %s: %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		int cfd;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, name) >= sizeof sub) {
			snprintf(w->err, w->errlen, "%s/%s: path too long", path, name);
			goto out;
		}
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			snprintf(w->err, w->errlen, "cannot stat %s: %s", sub, strerror(errno));
			goto out;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			continue; /* symlinks, sockets, FIFOs, devices: not ours to change */
		if (st.st_dev != w->dev) {
			log_warn("privileges: %s is on another file system: left as it is", sub);
			continue;
		}
		if (w->have_config && st.st_dev == w->config_dev && st.st_ino == w->config_ino) {
			log_warn("privileges: %s is the configuration file: left as it is", sub);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (st.st_uid == w->uid)
				continue; /* the user's already, with what it holds: not entered */
			if (!privdrop_enterable(&st)) {
				log_warn("privileges: %s belongs to uid %lu (mode %03o): left as it is",
					 sub, (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
				continue;
			}
			if (depth >= PRIVDROP_MAX_DEPTH) {
				snprintf(w->err, w->errlen, "%s: folders nested more than %d deep", sub,
					 PRIVDROP_MAX_DEPTH);
				goto out;
			}
			cfd = openat(dirfd(d), name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
			if (cfd < 0) {
				snprintf(w->err, w->errlen, "cannot open folder %s: %s", sub,
					 strerror(errno));
				goto out;
			}
			if (privdrop_walk_dir(w, cfd, sub, depth + 1) < 0)
				goto out;
			continue;
		}
		/* A regular file: O_PATH opens nothing, and the checks below are
		 * made on what was opened, not on the name. */
		cfd = openat(dirfd(d), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			snprintf(w->err, w->errlen, "cannot open %s: %s", sub, strerror(errno));
			goto out;
		}
		if (fstat(cfd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_dev != w->dev) {
			close(cfd);
			continue;
		}
		if (st.st_nlink > 1) {
			log_warn("privileges: %s has %lu hard links: left as it is", sub,
				 (unsigned long)st.st_nlink);
			close(cfd);
			continue;
		}
		rc = privdrop_give(w, cfd, &st, sub);
		close(cfd);
		if (rc < 0)
			goto out;
		rc = -1;
	}
	if (errno != 0) {
		snprintf(w->err, w->errlen, "cannot read folder %s: %s", path, strerror(errno));
		goto out;
	}
	/* The folder last: until now only root could write in it. */
	if (privdrop_give(w, dirfd(d), &dst, path) < 0)
		goto out;
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	return rc;
}

/* The state folders of <cfg>: tls.certs_dir when the local CA or ACME
 * writes there, saml.certs_dir with SAML.  Returns how many (at most 2). */
static size_t
privdrop_state_dirs(const struct config *cfg, const char *out[2], const char *what[2])
{
	size_t n = 0;

	if (cfg->tls != NULL && (cfg->tls->local_ca || cfg->tls->acme != NULL)) {
		out[n] = cfg->tls->certs_dir != NULL && cfg->tls->certs_dir[0] ? cfg->tls->certs_dir
									     : "certs";
		what[n++] = "tls.certs_dir";
	}
	if (cfg->saml != NULL) {
		out[n] = cfg->saml->certs_dir != NULL && cfg->saml->certs_dir[0] ? cfg->saml->certs_dir
									      : "certs";
		what[n++] = "saml.certs_dir";
	}
	return n;
}

/* Whether the folder <st> is <path>'s folder or one above it. */
static bool
privdrop_holds(const struct stat *st, const char *path)
{
	char buf[PATH_MAX];
	struct stat a;
	size_t n = strlen(path);

	if (n >= sizeof buf)
		return false;
	memcpy(buf, path, n + 1);
	while (n > 0) {
		while (n > 0 && buf[n - 1] != '/')
			n--; /* drop the last component */
		if (n == 0)
			break;
		buf[n > 1 ? n - 1 : 1] = '\0';
		if (stat(buf, &a) == 0 && a.st_dev == st->st_dev && a.st_ino == st->st_ino)
			return true;
		if (n == 1)
			break;
		n--;
	}
	return false;
}

/* Whether the open folder <fd> holds nothing (a folder just made). */
static bool
privdrop_empty(int fd)
{
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	bool empty = d != NULL;

	if (d == NULL && dfd >= 0)
		close(dfd);
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	if (d != NULL)
		closedir(d);
	return empty;
}

#define PRIVDROP_MAX_LINKS 40

/*
 * Open the state folder <dir> (config key <what>) as root without following
 * a symbolic link the user could have made: one component at a time with
 * O_NOFOLLOW, from / or the working folder.  A symbolic link on the way is
 * followed (by walking its target the same way) only when it is root's and
 * every folder so far only root can change; any other is refused.  Missing
 * folders are made: on the way root's with mode 0755, the state folder
 * itself 0700 and given to the user (*created set).  *trusted tells whether
 * every folder walked, the state folder included, only root can change.
 * Returns the folder's descriptor, or -1 with a reason in w->err.
 */
static int
privdrop_open_state(struct privdrop_walk *w, const char *dir, const char *what, bool *trusted,
		    bool *created)
{
	char rest[2 * PATH_MAX], tmp[2 * PATH_MAX], target[PATH_MAX], name[NAME_MAX + 1];
	char shown[PATH_MAX];
	const char *p;
	struct stat st;
	unsigned links = 0;
	size_t shown_len = 0;
	int fd, nfd;

	*trusted = true;
	*created = false;
	if (strlen(dir) >= sizeof rest) {
		snprintf(w->err, w->errlen, "%s: \"%s\": path too long", what, dir);
		return -1;
	}
	snprintf(rest, sizeof rest, "%s", dir);
	fd = open(dir[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(w->err, w->errlen, "%s: cannot open %s: %s", what,
			 dir[0] == '/' ? "/" : "the working folder", strerror(errno));
		goto fail;
	}
	*trusted = privdrop_root_controlled(&st);
	shown[0] = '\0';
	p = rest;
	for (;;) {
		size_t len;
		bool last;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, "/");
		if (len > NAME_MAX) {
			snprintf(w->err, w->errlen, "%s: \"%s\": a name is too long", what, dir);
			goto fail;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		last = p[strspn(p, "/")] == '\0';
		if (strcmp(name, ".") == 0)
			continue;
		if (shown_len + len + 2 < sizeof shown)
			shown_len += (size_t)snprintf(shown + shown_len, sizeof shown - shown_len, "%s%s",
						      shown_len > 0 || dir[0] == '/' ? "/" : "", name);
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT) {
			if (mkdirat(fd, name, last ? 0700 : 0755) < 0 && errno != EEXIST) {
				snprintf(w->err, w->errlen, "%s: cannot create folder %s: %s", what,
					 shown, strerror(errno));
				goto fail;
			}
			nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
			if (nfd >= 0 && (fstat(nfd, &st) < 0 || st.st_uid != 0 || !privdrop_empty(nfd))) {
				snprintf(w->err, w->errlen,
					 "%s: %s changed while it was being created; not touched",
					 what, shown);
				close(nfd);
				goto fail;
			}
			/* Mode exactly as asked, whatever the umask: the user must be able
			 * to pass through the folders on the way. */
			if (nfd >= 0 && fchmod(nfd, last ? 0700 : 0755) < 0) {
				snprintf(w->err, w->errlen, "%s: cannot set the mode of %s: %s", what,
					 shown, strerror(errno));
				close(nfd);
				goto fail;
			}
			if (nfd >= 0 && last) {
				if (fchown(nfd, w->uid, w->gid) < 0) {
					snprintf(w->err, w->errlen, "%s: cannot give %s to user %s: %s",
						 what, shown, w->user, strerror(errno));
					close(nfd);
					goto fail;
				}
				*created = true;
				log_info("privileges: created %s (%s) for user %s", shown, what, w->user);
			}
		}
		if (nfd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
			struct stat lst;
			ssize_t n;

			if (fstatat(fd, name, &lst, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(lst.st_mode)) {
				snprintf(w->err, w->errlen, "%s: %s is not a folder", what, shown);
				goto fail;
			}
			if (lst.st_uid != 0 || !*trusted) {
				snprintf(w->err, w->errlen,
					 "%s: %s is a symbolic link that %s; root does not follow it "
					 "before dropping privileges: give the real path of the folder",
					 what, shown,
					 lst.st_uid != 0 ? "root does not own"
							 : "sits in a folder others can change");
				goto fail;
			}
			if (++links > PRIVDROP_MAX_LINKS) {
				snprintf(w->err, w->errlen, "%s: \"%s\": too many symbolic links", what,
					 dir);
				goto fail;
			}
			n = readlinkat(fd, name, target, sizeof target - 1);
			if (n <= 0 || (size_t)n >= sizeof target - 1) {
				snprintf(w->err, w->errlen, "%s: cannot read the symbolic link %s: %s",
					 what, shown, n < 0 ? strerror(errno) : "empty or too long");
				goto fail;
			}
			target[n] = '\0';
			if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s", target, p) >= sizeof tmp) {
				snprintf(w->err, w->errlen, "%s: \"%s\": path too long", what, dir);
				goto fail;
			}
			memcpy(rest, tmp, strlen(tmp) + 1);
			p = rest;
			if (target[0] == '/') {
				close(fd);
				fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				if (fd < 0 || fstat(fd, &st) < 0) {
					snprintf(w->err, w->errlen, "%s: cannot open /: %s", what,
						 strerror(errno));
					goto fail;
				}
				*trusted = *trusted && privdrop_root_controlled(&st);
			}
			continue;
		}
		if (nfd < 0) {
			snprintf(w->err, w->errlen, "%s: cannot open folder %s: %s", what, shown,
				 strerror(errno));
			goto fail;
		}
		close(fd);
		fd = nfd;
		if (fstat(fd, &st) < 0) {
			snprintf(w->err, w->errlen, "%s: cannot stat %s: %s", what, shown,
				 strerror(errno));
			goto fail;
		}
		*trusted = *trusted && privdrop_root_controlled(&st);
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Prepare the state folder <dir> (config key <what>) for the user: see
 * privdrop_open_state; a folder of root's found there is migrated
 * (privdrop_walk_dir) when only root can change it and the folders above. */
static int
privdrop_give_dir(struct privdrop_walk *w, const char *dir, const char *what,
		  const char *config_real)
{
	struct stat st, sys;
	bool trusted, created;
	int fd = privdrop_open_state(w, dir, what, &trusted, &created);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		snprintf(w->err, w->errlen, "%s: cannot stat %s: %s", what, dir, strerror(errno));
		goto fail;
	}
	for (size_t i = 0; privdrop_system_dirs[i] != NULL; i++) {
		if (stat(privdrop_system_dirs[i], &sys) == 0 && sys.st_dev == st.st_dev &&
		    sys.st_ino == st.st_ino) {
			snprintf(w->err, w->errlen,
				 "%s: \"%s\" is the system folder %s; Portcullis gives its state "
				 "folder to user %s, so give it a folder of its own such as "
				 "/var/lib/portcullis/certs",
				 what, dir, privdrop_system_dirs[i], w->user);
			goto fail;
		}
	}
	if (config_real != NULL && privdrop_holds(&st, config_real)) {
		snprintf(w->err, w->errlen,
			 "%s: \"%s\" holds the configuration file %s; Portcullis gives its state "
			 "folder to user %s, so give it a folder of its own such as "
			 "/var/lib/portcullis/certs",
			 what, dir, config_real, w->user);
		goto fail;
	}
	if (created || st.st_uid == w->uid) {
		close(fd); /* new, or the user's already: root does nothing in it */
		return 0;
	}
	if (st.st_uid != 0) {
		log_warn("privileges: %s: %s belongs to uid %lu, neither root nor %s: left as it is",
			 what, dir, (unsigned long)st.st_uid, w->user);
		close(fd);
		return 0;
	}
	if (!trusted) {
		log_warn("privileges: %s: %s is root's, but it or a folder above it can be changed "
			 "by users other than root: not given to %s (chown it to the user yourself)",
			 what, dir, w->user);
		close(fd);
		return 0;
	}
	w->dev = st.st_dev;
	return privdrop_walk_dir(w, fd, dir, 0);
fail:
	close(fd);
	return -1;
}

/* ---- switching -------------------------------------------------------- */

/* Fail unless uid, gid, groups and capabilities are what the drop asked for
 * and root cannot be had back. */
static int
privdrop_verify(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	uid_t ru = (uid_t)-1, eu = (uid_t)-1, su = (uid_t)-1; /* shown as such if unread */
	gid_t rg = (gid_t)-1, eg = (gid_t)-1, sg = (gid_t)-1;
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != uid ||
	    eu != uid || su != uid || rg != gid || eg != gid || sg != gid) {
		snprintf(err, errlen, "the switch did not take: uids %lu/%lu/%lu, gids %lu/%lu/%lu",
			 (unsigned long)ru, (unsigned long)eu, (unsigned long)su, (unsigned long)rg,
			 (unsigned long)eg, (unsigned long)sg);
		return -1;
	}
	if (setuid(0) == 0 || seteuid(0) == 0) {
		snprintf(err, errlen, "root could be regained after the switch");
		return -1;
	}
	if (gid != 0 && (setgid(0) == 0 || setegid(0) == 0)) {
		snprintf(err, errlen, "group root could be regained after the switch");
		return -1;
	}
	memset(data, 0, sizeof data);
	if (syscall(SYS_capget, &hdr, data) < 0) {
		snprintf(err, errlen, "cannot read the capabilities: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		if (data[i].effective || data[i].permitted || data[i].inheritable) {
			snprintf(err, errlen, "capabilities left after the switch");
			return -1;
		}
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		snprintf(err, errlen, "no_new_privs is not set");
		return -1;
	}
	return 0;
}

/* Become <uid>/<gid> for good.  Supplementary groups: the user's own when
 * the user database knows it (initgroups), else only <gid>. */
static int
privdrop_switch(const struct config *cfg, char *err, size_t errlen)
{
	char buf[16384];
	struct passwd pw, *res = NULL;

	if (getpwuid_r(cfg->uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL) {
		if (initgroups(res->pw_name, cfg->gid) < 0) {
			snprintf(err, errlen, "initgroups(%s): %s", res->pw_name, strerror(errno));
			return -1;
		}
	} else if (setgroups(1, &cfg->gid) < 0) {
		snprintf(err, errlen, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(cfg->gid, cfg->gid, cfg->gid) < 0) {
		snprintf(err, errlen, "setresgid(%lu): %s", (unsigned long)cfg->gid, strerror(errno));
		return -1;
	}
	/* Ambient capabilities would survive in a thread that keeps capabilities;
	 * there must be none. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		snprintf(err, errlen, "cannot clear the ambient capabilities: %s", strerror(errno));
		return -1;
	}
	/* Empty the bounding set too: no capability can come back, even through
	 * a file that grants some (no_new_privs forbids that already). */
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break; /* past the last capability this kernel knows */
		if (errno == EPERM) {
			log_debug("privileges: cannot empty the capability bounding set (no "
				  "CAP_SETPCAP); no_new_privs keeps it unusable");
			break;
		}
		snprintf(err, errlen, "cannot drop capability %d from the bounding set: %s", cap,
			 strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) {
		snprintf(err, errlen, "PR_SET_KEEPCAPS: %s", strerror(errno));
		return -1;
	}
	if (setresuid(cfg->uid, cfg->uid, cfg->uid) < 0) {
		snprintf(err, errlen, "setresuid(%lu): %s", (unsigned long)cfg->uid, strerror(errno));
		return -1;
	}
	if (privdrop_no_new_privs(err, errlen) < 0)
		return -1;
	/* The kernel made the process non-dumpable on the uid change; it stays
	 * so: no core file or ptrace exposes the keys held in memory. */
	return privdrop_verify(cfg->uid, cfg->gid, err, errlen);
}

/* ---- after the switch ------------------------------------------------- */

/* Warn when <path> is not accessible (<mode>) to the user now. */
static void
privdrop_warn_access(const char *user, const char *path, int mode, const char *what,
		     const char *consequence)
{
	if (path == NULL || path[0] == '\0' || access(path, mode) == 0)
		return;
	log_warn("privileges: user %s cannot %s %s (%s): %s; %s", user,
		 mode == R_OK ? "read" : "write", path, what, strerror(errno), consequence);
}

/* True for an http(s) URL rather than a file path. */
static bool
privdrop_is_url(const char *s)
{
	return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

/* What a reload or the background tasks read or write, outside the state
 * folders, checked as the user. */
static void
privdrop_check_files(const struct config *cfg, const char *config_path, const char *user)
{
	static const char reload[] = "a reload (SIGHUP) would fail; give the user's group read "
				     "access (chgrp GROUP FILE; chmod g+r FILE)";

	privdrop_warn_access(user, config_path, R_OK, "the configuration file", reload);
	for (size_t i = 0; cfg->tls != NULL && i < cfg->tls->ncertificates; i++) {
		privdrop_warn_access(user, cfg->tls->certificates[i].cert, R_OK, "tls.certificates",
				     "a changed certificate would not be picked up; give the "
				     "user's group read access");
		privdrop_warn_access(user, cfg->tls->certificates[i].key, R_OK, "tls.certificates",
				     "a changed certificate would not be picked up; give the "
				     "user's group read access");
	}
	privdrop_warn_access(user, cfg->geoip_database, R_OK, "geoip.database", reload);
	privdrop_warn_access(user, cfg->geoip_asn_database, R_OK, "geoip.asn_database", reload);
	if (cfg->saml != NULL) {
		const struct config_saml *s = cfg->saml;

		if (s->idp_metadata != NULL && !privdrop_is_url(s->idp_metadata))
			privdrop_warn_access(user, s->idp_metadata, R_OK, "saml.idp_metadata", reload);
		privdrop_warn_access(user, s->sp_key, R_OK, "saml.sp_key", reload);
		privdrop_warn_access(user, s->sp_cert, R_OK, "saml.sp_cert", reload);
		privdrop_warn_access(user, s->session_key_file, R_OK, "saml.session_key_file", reload);
	}
	if (cfg->access_log != NULL && strcmp(cfg->access_log, "stdout") != 0 &&
	    strcmp(cfg->access_log, "stderr") != 0 && strcmp(cfg->access_log, "off") != 0)
		privdrop_warn_access(user, cfg->access_log, W_OK, "log.access_log",
				     "a reload (SIGHUP) re-opens it and would fail; chown it to "
				     "the user");
}

/* Switch to the configured user; see privdrop.h. */
int
privdrop_apply(const struct config *cfg, const char *config_path,
	       const char *(*getenv_fn)(const char *name), char *err, size_t errlen)
{
	struct privdrop_walk w = { .uid = cfg->uid, .gid = cfg->gid, .user = cfg->user,
				   .err = err, .errlen = errlen };
	const char *dirs[2], *what[2];
	char config_real[PATH_MAX];
	const char *creal = NULL;
	struct stat st;
	size_t ndirs;

	if (geteuid() != 0)
		return 0; /* privdrop_check_start made sure we are the configured user */
	if (cfg->user == NULL || cfg->uid == 0) {
		if (!privdrop_root_allowed(cfg, getenv_fn)) {
			snprintf(err, errlen, "refusing to run as root: set \"user\" (e.g. "
					      "\"portcullis\") to drop privileges after binding, or "
					      "\"allow_root\": true");
			return -1;
		}
		log_warn("running as root (\"allow_root\"): set \"user\" (e.g. \"portcullis\") to drop "
			 "privileges after binding");
		return 0;
	}
	if (config_path != NULL && realpath(config_path, config_real) != NULL) {
		creal = config_real;
		if (stat(config_real, &st) == 0) {
			w.have_config = true;
			w.config_dev = st.st_dev;
			w.config_ino = st.st_ino;
		}
	}
	ndirs = privdrop_state_dirs(cfg, dirs, what);
	for (size_t i = 0; i < ndirs; i++)
		if (privdrop_give_dir(&w, dirs[i], what[i], creal) < 0)
			return -1;
	if (privdrop_switch(cfg, err, errlen) < 0)
		return -1;
	log_info("dropped privileges to user %s (uid %lu, gid %lu)", cfg->user,
		 (unsigned long)cfg->uid, (unsigned long)cfg->gid);
	if (w.changed > 0)
		log_info("privileges: %u file%s and folder%s in the state folders given to user %s",
			 w.changed, w.changed == 1 ? "" : "s", w.changed == 1 ? "" : "s", cfg->user);
	for (size_t i = 0; i < ndirs; i++) {
		if (access(dirs[i], R_OK | W_OK | X_OK) < 0) {
			snprintf(err, errlen,
				 "%s: user %s cannot write to %s after dropping privileges: %s (is "
				 "a folder above it closed to that user?)",
				 what[i], cfg->user, dirs[i], strerror(errno));
			return -1;
		}
	}
	privdrop_check_files(cfg, config_path, cfg->user);
	return 0;
}

static bool
privdrop_str_equal(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

/* Whether privdrop_apply will switch users; see privdrop.h. */
bool
privdrop_switches(const struct config *cfg)
{
	return geteuid() == 0 && cfg->user != NULL && cfg->uid != 0;
}

/* Whether two configs ask for the same "user", "group" and "allow_root". */
bool
privdrop_settings_equal(const struct config *a, const struct config *b)
{
	return privdrop_str_equal(a->user, b->user) && privdrop_str_equal(a->group, b->group) &&
	       a->uid == b->uid && a->gid == b->gid && a->allow_root == b->allow_root;
}

/* handoff: listening sockets passed between processes; see handoff.h. */
#include "core/handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

#define FIRST_FD 3
#define MAX_FDS 256

extern char **environ;

static struct {
	int fd;
	char *name;
} given[MAX_FDS];
static size_t ngiven;

static bool
parse_long(const char *s, long *out)
{
	char *end;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == 0 && *end == '\0';
}

size_t
handoff_collect(void)
{
	const char *pid_s = getenv("LISTEN_PID"), *names = getenv("LISTEN_FDNAMES");
	long pid, n;
	char *copy = NULL, *save = NULL, *tok;

	if (parse_long(pid_s, &pid) && pid == (long)getpid() &&
	    parse_long(getenv("LISTEN_FDS"), &n) && n > 0 && n <= MAX_FDS) {
		copy = names ? strdup(names) : NULL;
		tok = copy ? strtok_r(copy, ":", &save) : NULL;
		for (long i = 0; i < n; i++) {
			given[ngiven].fd = FIRST_FD + (int)i;
			given[ngiven].name = strdup(tok ? tok : "unknown");
			fcntl(given[ngiven].fd, F_SETFD, FD_CLOEXEC);
			ngiven++;
			tok = tok ? strtok_r(NULL, ":", &save) : NULL;
		}
		free(copy);
		log_info("handoff: %zu listening socket%s given (LISTEN_FDS)", ngiven,
			 ngiven == 1 ? "" : "s");
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return ngiven;
}

int
handoff_take(const char *name)
{
	for (size_t i = 0; i < ngiven; i++) {
		int fd = given[i].fd, fl;

		if (fd < 0 || given[i].name == NULL || strcmp(given[i].name, name) != 0)
			continue;
		given[i].fd = -1;
		fl = fcntl(fd, F_GETFL);
		if (fl >= 0)
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		return fd;
	}
	return -1;
}

size_t
handoff_close_rest(void)
{
	size_t closed = 0;

	for (size_t i = 0; i < ngiven; i++) {
		if (given[i].fd >= 0) {
			log_warn("handoff: no listener named \"%s\" any more: closing its socket",
				 given[i].name);
			close(given[i].fd);
			given[i].fd = -1;
			closed++;
		}
		free(given[i].name);
		given[i].name = NULL;
	}
	ngiven = 0;
	return closed;
}

/* The environment for the child: this one without the handoff variables,
 * plus those for <n> sockets; LISTEN_PID's digits are filled in after fork. */
static char **
child_env(const char *const *names, size_t n, char **pid_slot)
{
	size_t count = 0, k = 0, len = 1;
	char **env, *fdnames, *p;

	for (char **e = environ; *e; e++)
		count++;
	env = calloc(count + 5, sizeof(*env));
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	fdnames = malloc(len + sizeof("LISTEN_FDNAMES="));
	if (env == NULL || fdnames == NULL)
		goto fail;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "LISTEN_", 7) != 0 && strncmp(*e, "PORTCULLIS_HANDOFF_FROM=", 24) != 0)
			env[k++] = *e;
	p = stpcpy(fdnames, "LISTEN_FDNAMES=");
	for (size_t i = 0; i < n; i++)
		p = stpcpy(stpcpy(p, i ? ":" : ""), names[i]);
	env[k++] = fdnames;
	if (asprintf(&env[k++], "LISTEN_FDS=%zu", n) < 0 ||
	    asprintf(&env[k++], "PORTCULLIS_HANDOFF_FROM=%ld", (long)getpid()) < 0 ||
	    asprintf(&env[k++], "LISTEN_PID=%20s", "") < 0)
		goto fail;
	*pid_slot = env[k - 1] + strlen("LISTEN_PID=");
	return env;
fail:
	free(fdnames);
	free(env);
	return NULL;
}

static void
free_child_env(char **env, size_t n_own)
{
	size_t count = 0;

	if (env == NULL)
		return;
	while (env[count])
		count++;
	for (size_t i = count - n_own; i < count; i++)
		free(env[i]);
	free(env);
}

/* In the child, after fork: async-signal-safe calls only. */
static void
child_exec(const char *exe, char *const argv[], char **env, char *pid_slot, const int *fds,
	   size_t n)
{
	int tmp[MAX_FDS];
	sigset_t all;
	long pid = (long)getpid();
	char digits[24];
	int nd = 0;

	do {
		digits[nd++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid > 0);
	for (int i = 0; i < 20; i++)
		pid_slot[i] = '\0';
	for (int i = 0; i < nd; i++)
		pid_slot[i] = digits[nd - 1 - i];
	for (size_t i = 0; i < n; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, FIRST_FD + (int)n);
		if (tmp[i] < 0)
			_exit(127);
	}
	for (size_t i = 0; i < n; i++)
		if (dup2(tmp[i], FIRST_FD + (int)i) < 0) /* dup2 clears FD_CLOEXEC */
			_exit(127);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	execve(exe, argv, env);
	_exit(127);
}

pid_t
handoff_spawn(const char *exe, char *const argv[], const int *fds, const char *const *names,
	      size_t n, char *err, size_t errlen)
{
	char *pid_slot = NULL;
	char **env;
	pid_t pid;

	if (n > MAX_FDS) {
		snprintf(err, errlen, "too many sockets (%zu)", n);
		return -1;
	}
	env = child_env(names, n, &pid_slot);
	if (env == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pid = fork();
	if (pid == 0)
		child_exec(exe, argv, env, pid_slot, fds, n);
	if (pid < 0)
		snprintf(err, errlen, "fork: %s", strerror(errno));
	free_child_env(env, 4);
	return pid;
}

pid_t
handoff_from(void)
{
	long pid;
	bool ok = parse_long(getenv("PORTCULLIS_HANDOFF_FROM"), &pid);

	unsetenv("PORTCULLIS_HANDOFF_FROM");
	if (!ok || pid <= 1 || (pid_t)pid != getppid())
		return 0;
	return (pid_t)pid;
}

/*
 * handoff: listening sockets passed from one process to the next, so that a
 * restart (a new binary, new libraries, changed listeners) refuses no
 * connection.  The protocol is systemd's socket activation: the sockets are
 * descriptors 3, 4, ... and the environment names them (LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES).  So a process takes its sockets the same way
 * from systemd (a .socket unit with FileDescriptorName= set to the listener's
 * name, "admin" for the admin listener) and from a running Portcullis that
 * was sent SIGUSR2: that one starts its binary again with its sockets, and
 * the new process, once it serves, tells it to drain (SIGTERM) through the
 * pid in PORTCULLIS_HANDOFF_FROM.
 */
#ifndef PORTCULLIS_HANDOFF_H
#define PORTCULLIS_HANDOFF_H

#include <stddef.h>
#include <sys/types.h>

/* The name the admin listener's socket carries in LISTEN_FDNAMES. */
#define HANDOFF_ADMIN_NAME "admin"

/*
 * Read the sockets this process was given (only when LISTEN_PID is its pid)
 * and unset the variables, so that nothing started later sees them.  Call
 * once, before handoff_take().  Returns how many sockets were given.
 */
size_t handoff_collect(void);

/*
 * The given socket named <name>, made non-blocking and close-on-exec; the
 * caller owns it.  Returns -1 when no socket of that name was given (or it
 * was taken already).
 */
int handoff_take(const char *name);

/* Close the given sockets nobody took (a listener removed from the
 * configuration); logs each.  Returns how many were closed. */
size_t handoff_close_rest(void);

/*
 * Start <exe> with <argv> (and this environment) as a child that inherits
 * fds[0..n) as descriptors 3.. named names[0..n), plus
 * PORTCULLIS_HANDOFF_FROM=<this pid>.  The sockets stay open here too.
 * Returns the child's pid, or -1 with a reason in <err>.
 */
pid_t handoff_spawn(const char *exe, char *const argv[], const int *fds,
		    const char *const *names, size_t n, char *err, size_t errlen);

/*
 * In a process started by handoff_spawn(): the pid of the process that
 * started it (still the parent), else 0.  Reads and unsets
 * PORTCULLIS_HANDOFF_FROM.
 */
pid_t handoff_from(void);

#endif

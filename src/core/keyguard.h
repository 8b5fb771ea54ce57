/*
 * keyguard: keep the keys this process holds (TLS, ACME account, SAML SP,
 * session and signing keys) out of places they could leak to: no core dump
 * (RLIMIT_CORE 0), not dumpable (PR_SET_DUMPABLE 0: no core, no ptrace by
 * the same user, /proc/PID owned by root), and OpenSSL's secure heap, which
 * keeps private key numbers in locked (never swapped), wiped memory.
 */
#ifndef PORTCULLIS_KEYGUARD_H
#define PORTCULLIS_KEYGUARD_H

#include <stddef.h>

/*
 * Apply the limits above to this process.  Call before any key is loaded,
 * and again after a change of user (setuid resets the dumpable flag).  The
 * secure heap is set up once; when the memory lock limit refuses it, keys
 * live in ordinary memory and a warning is logged.  Returns 0, or -1 with a
 * reason in <err> when the core limit or the dumpable flag cannot be set.
 */
int keyguard_apply(char *err, size_t errlen);

#endif

/*
 * reaper: one thread that runs the frees an event loop must not wait for.
 *
 * A retired configuration goes away when its last request ends, which is on
 * a worker thread.  Freeing it is slow work that can wait on other threads:
 * its SAML SP joins its IdP metadata refresh thread, which may be in the
 * middle of a fetch (up to its 10 s timeout) or waiting for the SAML lock.
 * A worker hands such frees here and goes on serving; the reaper runs them
 * in the order given.
 */
#ifndef PORTCULLIS_REAPER_H
#define PORTCULLIS_REAPER_H

/* Start the thread.  0, or -1 when it cannot be started (frees then run
 * where they are handed over, as before). */
int reaper_start(void);

/* Run <fn>(<arg>) on the reaper thread, soon; at once on the calling thread
 * when the reaper is not running (not started, stopped, or out of memory). */
void reaper_defer(void (*fn)(void *), void *arg);

/* Run what is still queued, then end the thread (joined).  Later
 * reaper_defer calls run inline.  Safe to call when not started. */
void reaper_stop(void);

#endif

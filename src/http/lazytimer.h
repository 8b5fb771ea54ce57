/*
 * lazytimer: a one-shot timeout that is cheap to move and to cancel, for
 * deadlines that change on every request of a keep-alive connection (the
 * client timer of conn.c: idle, request head, stalled body).
 *
 * An evtimer_add or evtimer_del is a min-heap operation each time; moving a
 * deadline later or cancelling it here only stores the new deadline, and the
 * libevent timer underneath stays where it was.  When that timer fires
 * early (the deadline moved later) lazytimer_fired re-arms it for what is
 * left and says "not yet"; when it fires after a cancel it says "no".  So a
 * busy connection costs one timer wake-up per timeout period instead of a
 * few heap operations per request.  Moving a deadline earlier re-arms at once.
 *
 * The owner embeds a struct lazytimer, creates the event with lazytimer_init
 * on its base with its own callback, and starts that callback with
 * `if (!lazytimer_fired(t)) return;`.  lazytimer_free frees the event; the
 * struct itself belongs to the owner.  One thread: the base's.
 */
#ifndef PORTCULLIS_LAZYTIMER_H
#define PORTCULLIS_LAZYTIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>

struct lazytimer {
	struct event *ev;    /* the libevent timer; NULL before init */
	int64_t deadline_us; /* monotonic time the owner asked for */
	int64_t fires_us;    /* when ev is due, while it is pending */
	bool armed;          /* a deadline is set (not cancelled, not yet fired) */
};

/* Create <t>'s event on <base>, calling <cb>(-1, EV_TIMEOUT, <arg>); not
 * armed.  Returns 0, or -1 when out of memory. */
int lazytimer_init(struct lazytimer *t, struct event_base *base, event_callback_fn cb, void *arg);

/* Free <t>'s event (none pending any more).  Accepts a <t> never initialised
 * (zeroed) or already freed. */
void lazytimer_free(struct lazytimer *t);

/* Fire <in> from now, replacing any deadline set before. */
void lazytimer_set(struct lazytimer *t, const struct timeval *in);

/* Cancel the deadline: the callback will not be told to act. */
void lazytimer_stop(struct lazytimer *t);

/* True when a deadline is set and has not fired. */
bool lazytimer_armed(const struct lazytimer *t);

/* From the callback: true when the deadline has come (it is then no longer
 * armed), false when the wake-up is stale (re-armed for what is left, or
 * the deadline was cancelled). */
bool lazytimer_fired(struct lazytimer *t);

#endif

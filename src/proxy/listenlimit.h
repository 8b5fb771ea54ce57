/*
 * listenlimit: the connection limits of HTTP listeners ("max_connections",
 * "max_connections_per_client" of each listener, as TCP relays have):
 * admission for the HTTP server (http/conn.h server_set_admission), with
 * process-wide counts per listener (access/connlimit.h).  A connection is
 * counted from the moment its client address is known (after a PROXY
 * header) until it closes, or, when it became a WebSocket tunnel, until the
 * tunnel ends.  A refused connection is closed at once, logged and counted
 * in portcullis_access_refusals_total.  The limits are read from the
 * configuration in force when the connection comes.
 */
#ifndef PORTCULLIS_LISTENLIMIT_H
#define PORTCULLIS_LISTENLIMIT_H

struct server_admission;

/* The admission; its argument is the listener's struct txn_listener. */
extern const struct server_admission listenlimit_admission;

/* Give back a slot the admission gave (a tunnel that took it, when it
 * ends).  Accepts NULL. */
void listenlimit_put(void *slot);

#endif

/*
 * websocket: WebSocket upgrades through the gate (RFC 6455), at the proxy
 * level, whatever protocol the client speaks.
 *
 * proxy.c runs an upgrade request as any other (routing, access rules, rate
 * limits, the SAML gate, identity headers); this module says what it is and
 * what to add to it:
 *
 *   - websocket_classify: does the request ask for a WebSocket?  Only the
 *     "websocket" token is honoured; any other upgrade (h2c, ...) is
 *     stripped (Upgrade and Connection are hop-by-hop, never forwarded);
 *   - websocket_upgrade_init / websocket_upgrade_lines: the upgrade sent
 *     upstream over HTTP/1.1, with the client's Sec-WebSocket-Key, or one
 *     made up (and Version 13) when the client sent none (an HTTP/2
 *     extended CONNECT carries neither);
 *   - websocket_upgrade_accepted: the upstream's 101 is believed only with
 *     "Upgrade: websocket" and the Sec-WebSocket-Accept of that key; any
 *     other answer goes back as a normal response and the connection stays
 *     HTTP.
 *
 * Then the tunnel: websocket_new takes the upstream's socket after its 101
 * (and the bytes after it), waits for the client's side (an HTTP/1
 * connection detached once its 101 is written, or an HTTP/2 stream's socket
 * pair once its 200 is submitted: websocket_take_client is the
 * request's server_tunnel_fn), and runs a tunnel (http/tunnel.h) between
 * the two, with the route's idle timeout; a tunnel behind a SAML session
 * closes when the session ends (unless the route keeps it).  It keeps only
 * what it needs (addresses, host, path, route name, timings), not the
 * configuration: after a reload (websocket_reload) each open tunnel is
 * routed and checked again against the new rules (listener and route
 * access blocks without the rate limit; the route must still be a proxied
 * one with WebSocket on, and behind SAML only with a session), and closed
 * when they refuse it.  Drain closes them at its deadline
 * (websocket_close_all).  Each ends with one log line (bytes each way,
 * duration, why) and is counted in the portcullis_websocket_* metrics.
 *
 * Everything here runs on one worker's loop; the tunnels of a worker hang
 * off its struct txn_env.
 */
#ifndef PORTCULLIS_WEBSOCKET_H
#define PORTCULLIS_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http_types.h"

struct evbuffer;
struct evkeyvalq;
struct server_conn;
struct tunnel_end;
struct txn_env;
struct websocket;

/* What a request asks for. */
enum websocket_ask {
	WEBSOCKET_NONE,  /* no upgrade */
	WEBSOCKET_OTHER, /* an upgrade to something else (h2c ...), or a malformed
			  * WebSocket one: forwarded as a plain request */
	WEBSOCKET_ASKED, /* GET, HTTP/1.1, Connection: upgrade, Upgrade: websocket,
			  * a valid Sec-WebSocket-Key and Version 13 */
};

/* Classify request <headers> of method <method> that came as <proto>. */
enum websocket_ask websocket_classify(struct evkeyvalq *headers, const char *method,
				      enum server_proto proto);

/* The upgrade sent upstream. */
struct websocket_upgrade {
	char key[32];  /* Sec-WebSocket-Key (24 characters) */
	bool made_up;  /* made up here: the client sent none */
};

/* Take the client's Sec-WebSocket-Key from <headers>, or make one up when
 * there is none (<headers> may be NULL).  Returns 0, or -1 when no random
 * bytes could be had. */
int websocket_upgrade_init(struct websocket_upgrade *u, struct evkeyvalq *headers);

/* The header lines that make the upstream request an upgrade
 * ("Connection: Upgrade", "Upgrade: websocket", and the made-up key and
 * version), NUL-terminated in <buf> (at least 160 bytes).  Returns the
 * length. */
size_t websocket_upgrade_lines(const struct websocket_upgrade *u, char *buf, size_t len);

/* The Sec-WebSocket-Accept that goes with <key>: 28 characters and a NUL
 * in <out>. */
void websocket_accept_value(const char *key, char out[29]);

/* True when the 101 response <headers> accept the upgrade <u>; else false
 * with the reason in <why>. */
bool websocket_upgrade_accepted(const struct websocket_upgrade *u, struct evkeyvalq *headers,
				const char **why);

/* Why an upgrade did not become a tunnel (portcullis_websocket_refusals_total). */
enum websocket_refusal {
	WEBSOCKET_REFUSED_ROUTE_OFF, /* the route has "websocket": false */
	WEBSOCKET_REFUSED_ACCESS,    /* access rules or rate limit */
	WEBSOCKET_REFUSED_AUTH,      /* the SAML gate (no session ...) */
	WEBSOCKET_REFUSED_UPSTREAM,  /* the upstream answered without 101 */
	WEBSOCKET_REFUSED_ACCEPT,    /* the upstream's 101 did not accept the key */
	WEBSOCKET_REFUSED_N,
};

/* Count a refused upgrade. */
void websocket_refused(enum websocket_refusal why);

/* What a tunnel keeps of its request (copied). */
struct websocket_info {
	size_t listener;        /* config.listeners index */
	const char *client;     /* the client's address as text (after X-Forwarded-For) */
	const char *host;       /* normalized Host, "" when none */
	const char *path;       /* normalized path, as routed */
	const char *route;      /* the acting route's name */
	const char *upstream;   /* the upstream server's address */
	const char *request_id;
	double idle_timeout;    /* seconds; 0: none */
	int64_t session_end;    /* the SAML session's end (epoch seconds), 0: none */
	bool gated;             /* it passed the SAML gate (a session or an allowed bearer) */
	bool close_at_session_end;
	/* With saml.revocation: the session's NameID ("" or NULL: none), issue
	 * time and end, so that the tunnel closes once the session is revoked. */
	const char *session_user;
	int64_t session_issued;
	int64_t session_expires;
};

/*
 * The upstream answered 101: take its side (<upstream>, taken over: closed
 * on failure) and the bytes it sent after the head (<early>, moved out; may
 * be NULL), and wait for the client's side (websocket_take_client).  NULL
 * when out of memory.
 */
struct websocket *websocket_new(struct txn_env *env, const struct websocket_info *info,
				struct tunnel_end *upstream, struct evbuffer *early);

/* The server_tunnel_fn (request.h) of the 101's request, with the
 * websocket as <arg>: start the tunnel between <client> (an HTTP/1
 * connection's socket, or the socket pair an HTTP/2 stream is carried on)
 * and the upstream; NULL: the client went away first (the websocket
 * closes). */
struct server_tunnel_client;
void websocket_take_client(struct server_tunnel_client *client, void *arg);

/* A new configuration is current in <env>: check every open tunnel of it
 * again and close those its rules refuse. */
void websocket_reload(struct txn_env *env);

/* Tunnels open (or about to open) in <env>. */
size_t websocket_count(const struct txn_env *env);

/* Close every tunnel of <env> (drain deadline, worker stopping), each
 * logged with <why>, and free what the module kept in <env>. */
void websocket_close_all(struct txn_env *env, const char *why);

#endif

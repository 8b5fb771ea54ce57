/*
 * proxy_fixture: the proxy on one event_base for in-process tests
 * (test_proxy.c, test_auth.c).
 *
 * A fake upstream listens on 127.0.0.1 port 0 and is served by the fixture
 * on the same loop: it accepts, reads requests (head + Content-Length body),
 * keeps a copy of each, and answers as <mode> says.  A server whose handler
 * is the proxy (proxy/proxy.h) adopts the server end of a socketpair(); the
 * test is the client on the other end.  The config comes from the real
 * loader; the runtime, generation and txn_env are built as core/worker.c
 * builds them (listener 0, port "8080", plain HTTP, client 127.0.0.1).
 *
 * Use: fixture_new(), then fixture_start() with a config naming
 * "127.0.0.1:<f->port>" as an upstream server, drive with send_all() and
 * run_until(), look at f->reqs and what inbox_read() collected;
 * fixture_free() at the end.  Failures are cmocka assertions.
 */
#ifndef PORTCULLIS_TESTS_PROXY_FIXTURE_H
#define PORTCULLIS_TESTS_PROXY_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/generation.h"

#define FIXTURE_MAX_UP 8
#define FIXTURE_MAX_REQS 16

struct config;
struct event;
struct event_base;
struct server;

/* How the fake upstream answers each complete request it reads. */
enum up_mode {
	UP_ECHO,         /* 200 with Content-Length; the body is the request target */
	UP_SCRIPT,       /* write f->script, keep the connection */
	UP_SCRIPT_CLOSE, /* write f->script, then close the connection */
	UP_CLOSE,        /* close the connection without a byte */
	UP_HOLD,         /* never answer */
};

struct fake;

/* One connection the fake upstream accepted. */
struct upconn {
	struct fake *f;
	int fd;            /* -1 once closed (by either side) */
	struct event *ev;
	char *in;          /* bytes read, NUL-terminated */
	size_t len;
	size_t parsed;     /* end of the last complete request in <in> */
	bool peer_closed;  /* the proxy closed it (read returned 0 or an error) */
};

struct fake {
	struct event_base *base;
	struct server *srv;
	int client;                /* the test's end of the socketpair (-1: closed) */
	int lfd;                   /* the fake upstream's listening socket */
	struct event *lev;
	int port;                  /* ... and its port */
	struct upconn *up[FIXTURE_MAX_UP];
	int nup;
	char *reqs[FIXTURE_MAX_REQS]; /* complete requests the upstream read, in order */
	int nreqs;
	enum up_mode mode;
	const char *script;
	struct txn_env env;
	struct txn_listener tl;
	char ports[1][8];
	int ended;                 /* transactions ended (txn_env's ended_cb) */
};

/* The loop and the fake upstream (listening; f->port is known). */
struct fake *fixture_new(void);

/* Load <json> with the real loader (no environment variables) and start
 * the proxy and the client on it. */
void fixture_start(struct fake *f, const char *json);

/* Start the proxy and the client on <cfg> (a reference is taken). */
void fixture_start_config(struct fake *f, struct config *cfg);

/* Close the client, free the server (ending what runs), the generation, the
 * fake upstream and the loop.  Checks that no transaction is left. */
void fixture_free(struct fake *f);

/* Run the loop until <done> (or for <ms> when <done> is NULL).  False when
 * <done> did not happen within <ms>. */
bool run_until(struct fake *f, bool (*done)(struct fake *f, void *arg), void *arg, double ms);

/* Write all of <data> to the client socket. */
void send_all(struct fake *f, const char *data);

/* What the client has received, kept across calls. */
struct inbox {
	char *data;
	size_t len;
	bool eof;
};

/* Read what is there without blocking. */
void inbox_read(struct fake *f, struct inbox *in);

/* Occurrences of <needle> in <hay> (NULL: 0). */
size_t count(const char *hay, const char *needle);

struct want {
	struct inbox *in;
	const char *text; /* until it appears <times> times */
	size_t times;
};

/* run_until predicates: <arg> a struct want; none; none; an int *. */
bool got_text(struct fake *f, void *arg);
bool nothing_in_flight(struct fake *f, void *arg);
bool upstream_saw_close(struct fake *f, void *arg);
bool upstream_requests(struct fake *f, void *arg);

/* Wait (up to 2 s) until the client has received <tail>. */
void wait_response(struct fake *f, struct inbox *in, const char *tail);

/* The value of the first header <name> in the head <text> (up to the blank
 * line, the first line skipped), copied into <out>; NULL when absent. */
const char *header_value(const char *text, const char *name, char *out, size_t outlen);

/* Lines of header <name> in the head <text>. */
int header_count(const char *text, const char *name);

/* <body> without its chunked framing (a new string), or NULL when the
 * framing is wrong or incomplete. */
char *dechunk(const char *body);

/* The fixture's error log and access log off; SIGPIPE ignored.  Call once
 * from main. */
void fixture_quiet(void);

#endif

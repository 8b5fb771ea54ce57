/*
 * target: the form of an HTTP/1.1 request-target (RFC 9112 3.2), split so
 * that a handler can route it.  Pure: no libevent, no allocation.
 *
 *   origin-form    "/path?query"                      the usual one
 *   absolute-form  "http://host:port/path?query"      a server MUST accept it
 *                                                    (3.2.2) and use its
 *                                                    authority, not Host
 *   asterisk-form  "*"                                OPTIONS only (3.2.4)
 *
 * Anything else (authority-form, which only CONNECT uses, or garbage) is
 * TARGET_OTHER: the path normalizer refuses it.  What to accept of an
 * absolute-form target (the scheme against the connection, Host against
 * the authority) is the handler's policy; this only takes it apart.
 */
#ifndef PORTCULLIS_TARGET_H
#define PORTCULLIS_TARGET_H

#include <stdbool.h>
#include <stddef.h>

enum target_form {
	TARGET_ORIGIN,
	TARGET_ABSOLUTE,
	TARGET_ASTERISK,
	TARGET_OTHER,
};

enum target_error {
	TARGET_OK = 0,
	TARGET_SCHEME,       /* absolute-form with a scheme other than http or https */
	TARGET_USERINFO,     /* "user@" in the authority (RFC 9110 4.2.4: not in http URIs) */
	TARGET_NO_AUTHORITY, /* "http://" with an empty authority, or no "//" */
};

struct target_parts {
	enum target_form form;
	bool https;              /* absolute-form: the scheme is https (case-insensitive) */
	const char *authority;   /* absolute-form: "host[:port]" in the target (not NUL-ended) */
	size_t authority_len;
	/* The path and query: the whole target (origin-form), or what follows
	 * the authority (absolute-form: "/...", "?..." or "", NUL-ended, an
	 * empty path meaning "/" as RFC 9112 3.2.1 says). */
	const char *rest;
};

/* Take <target> (NUL-terminated) apart into <out>.  Returns TARGET_OK or why
 * an absolute-form target is refused (out->form is TARGET_ABSOLUTE then). */
enum target_error target_split(const char *target, struct target_parts *out);

/* A short English reason for an error code. */
const char *target_reason(enum target_error error);

/*
 * The port of "host[:port]" (reg-name, IPv4 or "[IPv6]"), <default_port>
 * when there is none or it is empty ("host:"); -1 when it is not 1..65535
 * digits.  The host part is not checked here (router_normalize_host is).
 */
int target_port(const char *hostport, int default_port);

#endif

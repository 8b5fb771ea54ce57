/*
 * proxyproto: parser for the PROXY protocol header (HAProxy's spec, versions
 * 1 and 2) that a load balancer puts in front of a TCP stream to say which
 * client it carries.  Pure: no libevent, no I/O.  The caller reads bytes,
 * calls proxyproto_parse until it stops asking for more, and drops the
 * header's bytes.  Used by tcprelay.c and worker.c.
 */
#ifndef PORTCULLIS_PROXYPROTO_H
#define PORTCULLIS_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The longest header accepted (v1 allows 107 bytes; v2 with TLVs more). */
#define PROXYPROTO_MAX_HEADER 1040

enum proxyproto_result {
	PROXYPROTO_NEED_MORE, /* a valid beginning; read more bytes */
	PROXYPROTO_OK,        /* a complete header */
	PROXYPROTO_INVALID,   /* not a PROXY header, or a malformed one */
};

struct proxyproto_info {
	size_t header_len;            /* bytes the header took */
	bool has_address;             /* false: LOCAL / UNKNOWN, use the socket peer */
	struct sockaddr_storage src;  /* the client, when has_address */
	struct sockaddr_storage dst;  /* the address the client connected to */
};

/*
 * Parse the <len> bytes at <buf>.  On PROXYPROTO_OK fills <info>; on
 * PROXYPROTO_INVALID sets *why (when not NULL) to a short static reason.
 */
enum proxyproto_result proxyproto_parse(const unsigned char *buf, size_t len,
					struct proxyproto_info *info, const char **why);

#endif

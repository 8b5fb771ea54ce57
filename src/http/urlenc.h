/*
 * urlenc: percent-encoding for URLs and application/x-www-form-urlencoded
 * bodies (RFC 3986 section 2.1, the HTML form encoding).  Plain string work:
 * no knowledge of requests, routes or sessions.  Called by auth.c (the SAML
 * POST binding, return targets, redirect URLs).
 */
#ifndef PORTCULLIS_URLENC_H
#define PORTCULLIS_URLENC_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/*
 * Percent-decode the <len> bytes at <in> into a new NUL-terminated string
 * (caller frees); with <form>, "+" also decodes to a space.  Returns NULL on
 * a malformed escape (a "%" not followed by two hex digits), on "%00" (a NUL
 * byte), or when out of memory.
 */
char *urlenc_decode(const char *in, size_t len, bool form);

/*
 * Append <s> to <b>, percent-encoding (upper-case hex) every byte except
 * ASCII letters, digits and "-._~/" (so a path keeps its slashes).
 */
void urlenc_encode(struct evbuffer *b, const char *s);

/*
 * The value of field <name> in the urlencoded <len> bytes at <body> (the
 * first field of that name, "name=value" pairs separated by "&"), decoded
 * as a form value (caller frees).  NULL when absent, when its value is
 * malformed (see urlenc_decode), or when the field has no "=".
 */
char *urlenc_form_value(const char *body, size_t len, const char *name);

#endif

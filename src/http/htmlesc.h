/*
 * htmlesc: text into HTML.  The one escaper of the pages the binary writes
 * (the SAML gate's error pages, the admin status page): &, <, >, " and '
 * become entities, so a value is safe in element content and in quoted
 * attribute values alike.
 */
#ifndef PORTCULLIS_HTMLESC_H
#define PORTCULLIS_HTMLESC_H

struct evbuffer;

/* Append <s> to <b>, escaped.  NULL appends nothing. */
void htmlesc_append(struct evbuffer *b, const char *s);

#endif

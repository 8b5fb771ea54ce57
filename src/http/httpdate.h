/*
 * httpdate: the "Date" header of responses (RFC 9110, 6.6.1), formatted once
 * per second and thread: both codecs add it to every response that lacks one.
 */
#ifndef PORTCULLIS_HTTPDATE_H
#define PORTCULLIS_HTTPDATE_H

#include <stddef.h>

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" for now; <*len> gets its length.
 * The value alone is the HTTP_DATE_VALUE_OFFSET bytes after the start, of
 * length *len - HTTP_DATE_VALUE_OFFSET - 2.  Valid until the thread's next
 * call. */
#define HTTP_DATE_VALUE_OFFSET 6
const char *http_date_line(size_t *len);

#endif

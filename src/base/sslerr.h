/*
 * sslerr: OpenSSL's error queue as one line of text for our messages.  No
 * project includes; used by the tls/ modules.
 */
#ifndef PORTCULLIS_SSLERR_H
#define PORTCULLIS_SSLERR_H

/*
 * The newest error on this thread's OpenSSL error queue as text (in a
 * thread-local buffer, valid until the next call on this thread), clearing
 * the queue; <fallback> when the queue is empty (the queue is then left as
 * it is).
 */
const char *sslerr_reason(const char *fallback);

#endif

/*
 * saml_fetch: the IdP metadata download (see saml_fetch.c).
 */
#ifndef PORTCULLIS_SAML_FETCH_H
#define PORTCULLIS_SAML_FETCH_H

#include <stddef.h>

/* The body of a 200 answer to GET <url> (caller frees), or NULL with <err>
 * set.  https verifies the server against the system trust store; plain http
 * only to a loopback address.  Goes through the proxy the environment names
 * (HTTPS_PROXY unless NO_PROXY covers the host).  Blocks (up to its
 * timeouts): never call it on an event loop. */
char *saml_fetch(const char *url, char *err, size_t errlen);

#endif

/*
 * config: the JSON configuration file, read with jansson into an immutable,
 * reference-counted struct config (config_model.h).
 *
 * Loading checks everything it can before the event loop runs: unknown keys,
 * types, ranges, references between objects (a route naming an upstream that
 * does not exist), listener addresses, ${NAME} / ${NAME:-default} environment
 * substitution in string values.  Every error found is reported (not only the
 * first), one per line, each prefixed with its JSON path and saying what
 * would be right:
 *
 *   sites[0].routes[3].upstream: no upstream named "capure"; known: capture, web
 *
 * The entry points are here (config.c); the sections are read by
 * config_core.c, config_sites.c, config_access.c, config_saml.c,
 * config_tls.c and config_redis.c over config_read.c.  Called by main.c
 * (start, reload, -t) and the tests.
 */
#ifndef PORTCULLIS_CONFIG_H
#define PORTCULLIS_CONFIG_H

#include <stddef.h>

#include "config/config_model.h"

/*
 * Read and check the file at <path>.  Returns a new config with one reference,
 * or NULL with every error found written to <err> (one per line, each
 * starting with its JSON path, or with the file name for a syntax error).
 * <getenv_fn> supplies environment variables (pass getenv; tests pass their own).
 */
struct config *config_load_file(const char *path, char *err, size_t errlen,
				const char *(*getenv_fn)(const char *name));

/*
 * Check the file at <path> as config_load_file does, with no side effects:
 * nothing is created, written or fetched.  SAML: a session key file, SP key
 * and certificate that exist are read and checked (files that are missing
 * would be created at start: no error); a metadata file is read and must be
 * IdP metadata; a metadata URL is not fetched; the SP and the session keys
 * are not set up (saml->sp and saml->keys stay NULL).  Files are opened only
 * when they are regular files.  GeoIP databases are opened (read only).  The
 * result has check_only set: it serves `-t` and the first load of a start as
 * root (which only binds from it), never traffic.  Call it before any thread
 * that uses libxml2 exists.
 */
struct config *config_check_file(const char *path, char *err, size_t errlen,
				 const char *(*getenv_fn)(const char *name));

/* Same as config_load_file, from a string; <source> names it in errors. */
struct config *config_load_string(const char *json, const char *source, char *err,
				  size_t errlen, const char *(*getenv_fn)(const char *name));

/* Split "host:port" / "[v6]:port" / ":port" into parts the caller frees.
 * Returns 0, or -1 with a reason in <err>. */
int config_split_hostport(const char *address, char **host, char **port, char *err, size_t errlen);

#endif

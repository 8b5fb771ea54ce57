/*
 * log: the error log (stderr, levels, one line per message) and the access log
 * (one JSON object per request, to stdout, stderr or a file).  Both are safe to
 * call from every worker thread.  No libevent.
 *
 * Error log line: "2026-11-23T04:09:48.123Z info listening on 127.0.0.1:8080 (http)".
 */
#ifndef PORTCULLIS_LOG_H
#define PORTCULLIS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error-log levels, lowest first ("log.level" in the configuration). */
enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Messages below <level> are dropped.  Default: info. */
void log_set_level(enum log_level level);

/* True when messages at <level> are written (to skip building costly ones). */
bool log_enabled(enum log_level level);

/* Write one error-log line at <level> to stderr; control characters in the
 * message (client input may reach it) are written as \xNN. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

/* One finished request, as the access log records it.  NULL strings are
 * written as JSON null (or left out, for query); negative times as null. */
struct access_entry {
	double start;            /* seconds since the epoch */
	const char *client;
	const char *method;
	const char *protocol;    /* "HTTP/1.1", "HTTP/2.0", ... or NULL */
	const char *host;
	const char *path;
	const char *query;
	int status;
	uint64_t bytes_in;
	uint64_t bytes_out;
	const char *route;
	const char *upstream;
	double upstream_ms;
	double total_ms;
	const char *request_id;
	const char *trace_id;    /* W3C trace-id (32 hex), or NULL */
};

/*
 * Point the access log at <target>: "stdout", "stderr", "off" or a file path
 * (opened for append, created 0640).  Replaces (and closes) the previous one.
 * Returns 0, or -1 with a reason in <err> (the previous target is kept).
 */
int access_log_open(const char *target, char *err, size_t errlen);

/* Write one entry (a single write(2) call per line).  No-op when "off". */
void access_log_write(const struct access_entry *e);

/* Close the access log (at exit). */
void access_log_close(void);

/* Append <s> to <out> as the body of a JSON string (no quotes), escaping as
 * needed; writes at most <outlen> - 1 bytes and NUL-terminates.  Returns the
 * number of bytes written (not counting the NUL). */
size_t log_json_escape(char *out, size_t outlen, const char *s);

/* Current wall-clock time in seconds since the epoch. */
double log_now(void);

#endif

/* log: error log and access log; see log.h. */
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = LOG_LEVEL_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

static pthread_mutex_t access_lock = PTHREAD_MUTEX_INITIALIZER;
static int access_fd = STDOUT_FILENO; /* -1: off */
static bool access_fd_owned;

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

bool
log_enabled(enum log_level level)
{
	return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

double
log_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* "2026-11-23T04:09:48.123Z" into <out> (at least 25 bytes). */
static void
format_time(double t, char *out, size_t outlen)
{
	time_t secs = (time_t)t;
	int ms = (int)((t - (double)secs) * 1000.0);
	struct tm tm;

	if (ms > 999)
		ms = 999;
	gmtime_r(&secs, &tm);
	size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);

	snprintf(out + n, outlen - n, ".%03dZ", ms);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const char hex[] = "0123456789abcdef";
	char msg[4096];
	char line[4096 + 64];
	char when[32];
	va_list ap;
	int n;
	size_t len, cap = sizeof(line) - 1;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	format_time(log_now(), when, sizeof(when));
	n = snprintf(line, sizeof(line), "%s %s ", when, level_names[level]);
	if (n < 0)
		return;
	len = (size_t)n;
	/* Messages carry client input (paths, RelayState, attribute values):
	 * control characters are written as \xNN, so a line can never be
	 * split, forged or turned into terminal escapes. */
	for (const unsigned char *p = (const unsigned char *)msg; *p != '\0' && len < cap; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			line[len++] = (char)*p;
		} else if (len + 4 <= cap) {
			line[len++] = '\\';
			line[len++] = 'x';
			line[len++] = hex[*p >> 4];
			line[len++] = hex[*p & 15];
		} else {
			break;
		}
	}
	line[len++] = '\n';
	/* One write per line keeps lines from several threads whole. */
	while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR)
		;
}

size_t
log_json_escape(char *out, size_t outlen, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7];
		size_t elen = 0;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			elen = 2;
		} else if (c < 0x20 || c == 0x7f) {
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		} else {
			esc[0] = (char)c;
			elen = 1;
		}
		if (o + elen >= outlen)
			break;
		memcpy(out + o, esc, elen);
		o += elen;
	}
	out[o] = '\0';
	return o;
}

int
access_log_open(const char *target, char *err, size_t errlen)
{
	int fd;
	bool owned = false;

	if (strcmp(target, "off") == 0) {
		fd = -1;
	} else if (strcmp(target, "stdout") == 0) {
		fd = STDOUT_FILENO;
	} else if (strcmp(target, "stderr") == 0) {
		fd = STDERR_FILENO;
	} else {
		fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			snprintf(err, errlen, "access log %s: cannot open: %s", target,
				 strerror(errno));
			return -1;
		}
		owned = true;
	}
	pthread_mutex_lock(&access_lock);
	if (access_fd_owned)
		close(access_fd);
	access_fd = fd;
	access_fd_owned = owned;
	pthread_mutex_unlock(&access_lock);
	return 0;
}

void
access_log_close(void)
{
	pthread_mutex_lock(&access_lock);
	if (access_fd_owned)
		close(access_fd);
	access_fd = -1;
	access_fd_owned = false;
	pthread_mutex_unlock(&access_lock);
}

/* Append ,"key":"escaped" (or null) to line at *len. */
static void
put_string(char *line, size_t size, size_t *len, const char *key, const char *value)
{
	int n;

	if (*len >= size)
		return;
	if (value == NULL) {
		n = snprintf(line + *len, size - *len, ",\"%s\":null", key);
		*len += n > 0 ? (size_t)n : 0;
		return;
	}
	n = snprintf(line + *len, size - *len, ",\"%s\":\"", key);
	if (n < 0 || (size_t)n >= size - *len) {
		*len = size;
		return;
	}
	*len += (size_t)n;
	if (size - *len < 3) {
		*len = size;
		return;
	}
	*len += log_json_escape(line + *len, size - *len - 2, value);
	line[(*len)++] = '"';
}

static void
put_ms(char *line, size_t size, size_t *len, const char *key, double ms)
{
	int n;

	if (*len >= size)
		return;
	if (ms < 0)
		n = snprintf(line + *len, size - *len, ",\"%s\":null", key);
	else
		n = snprintf(line + *len, size - *len, ",\"%s\":%.3f", key, ms);
	*len += n > 0 ? (size_t)n : 0;
}

void
access_log_write(const struct access_entry *e)
{
	char line[8192];
	char when[32];
	size_t len;
	int n;

	if (access_fd < 0) /* racy read is fine: worst case one line more or less */
		return;
	format_time(e->start, when, sizeof(when));
	n = snprintf(line, sizeof(line), "{\"time\":\"%s\"", when);
	len = n > 0 ? (size_t)n : 0;
	put_string(line, sizeof(line) - 256, &len, "client", e->client);
	put_string(line, sizeof(line) - 256, &len, "method", e->method);
	if (e->protocol)
		put_string(line, sizeof(line) - 256, &len, "protocol", e->protocol);
	put_string(line, sizeof(line) - 256, &len, "host", e->host);
	put_string(line, sizeof(line) - 256, &len, "path", e->path);
	if (e->query)
		put_string(line, sizeof(line) - 256, &len, "query", e->query);
	if (len > sizeof(line) - 256)
		len = sizeof(line) - 256;
	n = snprintf(line + len, sizeof(line) - len,
		     ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu", e->status,
		     (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out);
	len += n > 0 ? (size_t)n : 0;
	put_string(line, sizeof(line) - 64, &len, "route", e->route);
	put_string(line, sizeof(line) - 64, &len, "upstream", e->upstream);
	put_ms(line, sizeof(line) - 64, &len, "upstream_ms", e->upstream_ms);
	put_ms(line, sizeof(line) - 64, &len, "total_ms", e->total_ms);
	put_string(line, sizeof(line) - 4, &len, "request_id", e->request_id);
	if (e->trace_id)
		put_string(line, sizeof(line) - 4, &len, "trace_id", e->trace_id);
	if (len > sizeof(line) - 3)
		len = sizeof(line) - 3;
	line[len++] = '}';
	line[len++] = '\n';

	pthread_mutex_lock(&access_lock);
	if (access_fd >= 0) {
		const char *p = line;
		size_t left = len;

		while (left > 0) {
			ssize_t w = write(access_fd, p, left);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			p += w;
			left -= (size_t)w;
		}
	}
	pthread_mutex_unlock(&access_lock);
}

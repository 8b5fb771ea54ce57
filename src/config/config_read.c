/*
 * config_read: the shared reader of the config loader: error lines with JSON
 * paths, typed scalars (strings, sizes, durations, enums), host/port checks.
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/envsubst.h"

static const char config_more_errors[] = "...(more errors)";

/* ------------------------------------------------------------------ */
/* Errors and JSON paths                                                */

static void
config_err_append(struct config_loader *ld, const char *line)
{
	size_t n = strlen(line);
	size_t need = ld->errs_len + n + 2;

	if (ld->oom)
		return;
	if (need > ld->errs_cap) {
		size_t cap = ld->errs_cap ? ld->errs_cap : 512;
		while (cap < need)
			cap *= 2;
		char *errs = realloc(ld->errs, cap);
		if (errs == NULL) {
			ld->oom = true;
			return;
		}
		ld->errs = errs;
		ld->errs_cap = cap;
	}
	if (ld->errs_len > 0)
		ld->errs[ld->errs_len++] = '\n';
	memcpy(ld->errs + ld->errs_len, line, n + 1);
	ld->errs_len += n;
}

void
config_error(struct config_loader *ld, const char *path, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	ld->nerrors++;
	n = snprintf(line, sizeof line, "%s: ", path[0] != '\0' ? path : ld->source);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	config_err_append(ld, line);
}

/* Copy the collected errors into <err>, cutting at a line boundary and
 * ending with config_more_errors when they do not all fit. */
void
config_err_finish(struct config_loader *ld, char *err, size_t errlen)
{
	size_t mlen = sizeof config_more_errors - 1;
	size_t cut = 0;

	if (errlen == 0)
		return;
	if (ld->oom) {
		snprintf(err, errlen, "%s: out of memory while loading the configuration",
			 ld->source);
		return;
	}
	if (ld->errs_len < errlen) {
		memcpy(err, ld->errs, ld->errs_len + 1);
		return;
	}
	for (size_t i = 0; i < ld->errs_len; i++)
		if (ld->errs[i] == '\n' && i + 1 + mlen < errlen)
			cut = i + 1;
	memcpy(err, ld->errs, cut);
	snprintf(err + cut, errlen - cut, "%s", config_more_errors);
}

/* A path too long for the buffer keeps its start and ends with "...". */
static const char *
config_jpath_fit(char *buf, int n)
{
	if (n < 0 || n >= CONFIG_JPATH_MAX)
		memcpy(buf + CONFIG_JPATH_MAX - 4, "...", 4);
	return buf;
}

const char *
config_jkey(char *buf, const char *parent, const char *key)
{
	return config_jpath_fit(buf, snprintf(buf, CONFIG_JPATH_MAX, "%s%s%s", parent,
					      parent[0] != '\0' ? "." : "", key));
}

const char *
config_jidx(char *buf, const char *parent, size_t i)
{
	return config_jpath_fit(buf, snprintf(buf, CONFIG_JPATH_MAX, "%s[%zu]", parent, i));
}

const char *
config_json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

void
config_type_error(struct config_loader *ld, const char *path, const char *expected, const json_t *v)
{
	config_error(ld, path, "expected %s, found %s", expected, config_json_kind(v));
}

/* "a, b, c" from a NULL-terminated list. */
static void
config_join(char *buf, size_t len, const char *const *names)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; names[i] != NULL && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", names[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static size_t
config_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[65];

	if (la > 64 || lb > 64)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Report every key of <obj> that is not in <allowed>. */
void
config_check_keys(struct config_loader *ld, const char *path, const json_t *obj,
		  const char *const *allowed)
{
	const char *key;
	json_t *value;
	char kp[CONFIG_JPATH_MAX];
	char list[512];

	json_object_foreach((json_t *)(uintptr_t)obj, key, value) {
		const char *best = NULL;
		size_t best_d = 3;
		bool known = false;

		for (size_t i = 0; allowed[i] != NULL; i++) {
			if (strcmp(key, allowed[i]) == 0) {
				known = true;
				break;
			}
			size_t d = config_edit_distance(key, allowed[i]);
			if (d < best_d) {
				best_d = d;
				best = allowed[i];
			}
		}
		if (known)
			continue;
		config_join(list, sizeof list, allowed);
		config_jkey(kp, path, key);
		if (best != NULL)
			config_error(ld, kp, "unknown key; did you mean \"%s\"? (allowed: %s)", best,
				     list);
		else
			config_error(ld, kp, "unknown key (allowed: %s)", list);
	}
}

/* The object at <v>, after checking its type and keys; NULL after an error. */
const json_t *
config_object(struct config_loader *ld, const char *path, const json_t *v,
	      const char *const *allowed)
{
	if (!json_is_object(v)) {
		config_type_error(ld, path, "an object", v);
		return NULL;
	}
	config_check_keys(ld, path, v, allowed);
	return v;
}

/* ------------------------------------------------------------------ */
/* Scalars                                                              */

/* The string at <v> after environment substitution, or NULL after an error. */
char *
config_string(struct config_loader *ld, const char *path, const json_t *v)
{
	char why[512];
	char *s;

	if (!json_is_string(v)) {
		config_type_error(ld, path, "a string", v);
		return NULL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		config_error(ld, path, "contains a NUL character (\\u0000)");
		return NULL;
	}
	s = envsubst_expand(json_string_value(v), ld->getenv_fn, why, sizeof why);
	if (s == NULL)
		config_error(ld, path, "%s", why);
	return s;
}

/* Like config_string for an optional key: absent gives a copy of <def>. */
char *
config_string_or(struct config_loader *ld, const char *path, const json_t *v, const char *def)
{
	if (v == NULL) {
		char *s = strdup(def);
		if (s == NULL)
			ld->oom = true;
		return s;
	}
	return config_string(ld, path, v);
}

/* "64 MiB" when <n> is a whole number of KiB/MiB/GiB, else "<n> bytes". */
const char *
config_fmt_bytes(char *buf, size_t len, uint64_t n)
{
	if (n >= CONFIG_GIB && n % CONFIG_GIB == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(n / CONFIG_GIB));
	else if (n >= CONFIG_MIB && n % CONFIG_MIB == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(n / CONFIG_MIB));
	else if (n >= CONFIG_KIB && n % CONFIG_KIB == 0)
		snprintf(buf, len, "%llu KiB", (unsigned long long)(n / CONFIG_KIB));
	else
		snprintf(buf, len, "%llu", (unsigned long long)n);
	return buf;
}

/* Parse "[digits][.digits]" at the start of <s>; *end points past it. */
static bool
config_scan_decimal(const char *s, double *value, bool *fraction, const char **end)
{
	const char *p = s;

	while (*p >= '0' && *p <= '9')
		p++;
	if (p == s)
		return false;
	*fraction = false;
	if (*p == '.') {
		const char *f = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == f)
			return false;
		*fraction = true;
	}
	errno = 0;
	*value = strtod(s, NULL);
	if (errno != 0 || !isfinite(*value))
		return false;
	*end = p;
	while (**end == ' ')
		(*end)++;
	return true;
}

/*
 * A non-negative integer in [min, max] from a JSON number or a string
 * ("64MiB" for byte sizes).  Returns false after reporting an error.
 */
bool
config_uint(struct config_loader *ld, const char *path, const json_t *v, enum config_unit unit,
	    uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	char a[64], b[64], c[64];

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0) {
			config_error(ld, path, "must not be negative (found %lld)", (long long)i);
			return false;
		}
		n = (uint64_t)i;
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != floor(d)) {
			config_error(ld, path, "must be a whole number (found %g)", d);
			return false;
		}
		if (d < 0 || d > 9007199254740992.0) {
			config_error(ld, path, "%g is out of range", d);
			return false;
		}
		n = (uint64_t)d;
	} else if (json_is_string(v)) {
		char *s = config_string(ld, path, v);
		const char *end = NULL;
		double d = 0;
		bool frac = false;
		uint64_t mult = 1;
		bool ok;

		if (s == NULL)
			return false;
		ok = config_scan_decimal(s, &d, &frac, &end);
		if (ok && unit == UNIT_BYTES && *end != '\0') {
			if (strcmp(end, "KiB") == 0)
				mult = CONFIG_KIB;
			else if (strcmp(end, "MiB") == 0)
				mult = CONFIG_MIB;
			else if (strcmp(end, "GiB") == 0)
				mult = CONFIG_GIB;
			else
				ok = false;
		} else if (ok && *end != '\0') {
			ok = false;
		}
		if (!ok) {
			if (unit == UNIT_BYTES)
				config_error(ld, path,
					     "\"%s\" is not a byte size; write a whole number of bytes "
					     "or a number with a KiB, MiB or GiB suffix (\"64MiB\")",
					     s);
			else
				config_error(ld, path, "\"%s\" is not a whole number", s);
			free(s);
			return false;
		}
		d *= (double)mult;
		if (d != floor(d) || d > 9007199254740992.0) {
			config_error(ld, path, "\"%s\" is not a whole number%s", s,
				     unit == UNIT_BYTES ? " of bytes" : "");
			free(s);
			return false;
		}
		free(s);
		n = (uint64_t)d;
		(void)frac;
	} else {
		config_type_error(ld, path,
				  unit == UNIT_BYTES ? "a byte size (a number or a string like \"64MiB\")"
						     : "an integer (a number or a string)",
				  v);
		return false;
	}
	if (n < min || n > max) {
		if (unit == UNIT_BYTES && max == CONFIG_MAX_BYTES)
			config_error(ld, path, "%s is less than the minimum, %s",
				     config_fmt_bytes(a, sizeof a, n),
				     config_fmt_bytes(b, sizeof b, min));
		else if (unit == UNIT_BYTES)
			config_error(ld, path, "%s is out of range (%s to %s)",
				     config_fmt_bytes(a, sizeof a, n),
				     config_fmt_bytes(b, sizeof b, min),
				     config_fmt_bytes(c, sizeof c, max));
		else
			config_error(ld, path, "%llu is out of range (%llu to %llu)",
				     (unsigned long long)n, (unsigned long long)min,
				     (unsigned long long)max);
		return false;
	}
	*out = n;
	return true;
}

/* A duration in seconds (> 0, at most a year) from a number or a string
 * with an optional ms, s, m or h suffix.  Absent keeps *out. */
bool
config_seconds(struct config_loader *ld, const char *path, const json_t *v, double *out)
{
	double d;

	if (v == NULL)
		return true;
	if (json_is_number(v)) {
		d = json_number_value(v);
	} else if (json_is_string(v)) {
		char *s = config_string(ld, path, v);
		const char *end = NULL;
		bool frac;

		if (s == NULL)
			return false;
		if (!config_scan_decimal(s, &d, &frac, &end) ||
		    (*end != '\0' && strcmp(end, "s") != 0 && strcmp(end, "ms") != 0 &&
		     strcmp(end, "m") != 0 && strcmp(end, "h") != 0)) {
			config_error(ld, path,
				     "\"%s\" is not a duration; write seconds (\"30\", \"2.5\") or a "
				     "number with a ms, s, m or h suffix (\"500ms\", \"5m\")",
				     s);
			free(s);
			return false;
		}
		if (strcmp(end, "ms") == 0)
			d /= 1000;
		else if (strcmp(end, "m") == 0)
			d *= 60;
		else if (strcmp(end, "h") == 0)
			d *= 3600;
		free(s);
	} else {
		config_type_error(ld, path, "a duration (seconds as a number, or a string like \"5m\")",
				  v);
		return false;
	}
	if (!(d > 0) || d > CONFIG_MAX_SECONDS) {
		config_error(ld, path,
			     "%g seconds is out of range (more than 0, at most %.0f, one year)", d,
			     CONFIG_MAX_SECONDS);
		return false;
	}
	*out = d;
	return true;
}

/* true/false or "true"/"false".  Absent keeps *out. */
bool
config_bool(struct config_loader *ld, const char *path, const json_t *v, bool *out)
{
	if (v == NULL)
		return true;
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (json_is_string(v)) {
		char *s = config_string(ld, path, v);
		bool ok = true;

		if (s == NULL)
			return false;
		if (strcmp(s, "true") == 0)
			*out = true;
		else if (strcmp(s, "false") == 0)
			*out = false;
		else {
			config_error(ld, path, "\"%s\" is not a boolean; write true or false", s);
			ok = false;
		}
		free(s);
		return ok;
	}
	config_type_error(ld, path, "a boolean", v);
	return false;
}

/* The index of the string at <v> in <names>.  Absent keeps *out. */
bool
config_enum(struct config_loader *ld, const char *path, const json_t *v,
	    const char *const *names, int *out)
{
	char *s;
	char list[256];

	if (v == NULL)
		return true;
	s = config_string(ld, path, v);
	if (s == NULL)
		return false;
	for (int i = 0; names[i] != NULL; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			free(s);
			return true;
		}
	}
	config_join(list, sizeof list, names);
	config_error(ld, path, "\"%s\" is not one of: %s", s, list);
	free(s);
	return false;
}

/*
 * The strings of the array at <v>, expanded.  Entries that fail are left
 * NULL (their error is reported).  Returns false when <v> is not an array of
 * strings or is empty while <min_one> asks for one.
 */
bool
config_string_list(struct config_loader *ld, const char *path, const json_t *v, bool min_one,
		   const char *what, char ***out, size_t *nout)
{
	char ip[CONFIG_JPATH_MAX];
	size_t n;

	*out = NULL;
	*nout = 0;
	if (!json_is_array(v)) {
		config_type_error(ld, path, what, v);
		return false;
	}
	n = json_array_size(v);
	if (n == 0) {
		if (min_one)
			config_error(ld, path, "must not be empty (%s)", what);
		return !min_one;
	}
	*out = calloc(n, sizeof **out);
	if (*out == NULL) {
		ld->oom = true;
		return false;
	}
	*nout = n;
	for (size_t i = 0; i < n; i++)
		(*out)[i] = config_string(ld, config_jidx(ip, path, i), json_array_get(v, i));
	return true;
}

/* ------------------------------------------------------------------ */
/* Names, hosts, addresses                                              */

static bool
config_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool
config_is_alnum(char c)
{
	return config_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A DNS-style name: labels of letters, digits, "-" and "_", 1..63 long,
 * 253 at most; or a bracketed IPv6 address when <brackets>. */
bool
config_host_name_ok(const char *h, bool brackets, const char **why)
{
	size_t len = strlen(h);
	size_t label = 0;

	if (len == 0) {
		*why = "empty host name";
		return false;
	}
	if (brackets && h[0] == '[') {
		char buf[64];
		if (h[len - 1] != ']' || len - 2 >= sizeof buf) {
			*why = "bad IPv6 literal; write it as \"[2001:db8::1]\"";
			return false;
		}
		memcpy(buf, h + 1, len - 2);
		buf[len - 2] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, buf, &a6) != 1) {
			*why = "not an IPv6 address inside the brackets";
			return false;
		}
		return true;
	}
	if (len > 253) {
		*why = "longer than 253 characters";
		return false;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = h[i];
		if (c == '.' || c == '\0') {
			if (label == 0) {
				*why = "empty label (\"..\", or a leading or trailing \".\")";
				return false;
			}
			if (h[i - 1] == '-') {
				*why = "a label ends with \"-\"";
				return false;
			}
			label = 0;
			continue;
		}
		if (c == ':') {
			*why = "no ports here";
			return false;
		}
		if (c == '*') {
			*why = "a wildcard is allowed only as the whole first label (\"*.example.com\")";
			return false;
		}
		if (!config_is_alnum(c) && c != '-' && c != '_') {
			*why = "only letters, digits, \"-\", \"_\" and \".\" are allowed";
			return false;
		}
		if (c == '-' && label == 0) {
			*why = "a label starts with \"-\"";
			return false;
		}
		if (++label > 63) {
			*why = "a label is longer than 63 characters";
			return false;
		}
	}
	return true;
}

static bool
config_port_ok(const char *p, unsigned long *value)
{
	size_t n = strlen(p);
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!config_is_digit(p[i]))
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		return false;
	*value = v;
	return true;
}

/*
 * Split "host:port" / "[v6]:port" / ":port".  <host> gets the host without
 * brackets ("" for ":port"), <port> the port in decimal.  Returns 0, or -1
 * with a reason in <err>; on failure nothing is allocated.
 */
int
config_split_hostport(const char *address, char **host, char **port, char *err, size_t errlen)
{
	const char *hs, *he, *ps;
	unsigned long pv = 0;
	char pbuf[8];

	*host = NULL;
	*port = NULL;
	if (address == NULL || address[0] == '\0') {
		snprintf(err, errlen, "empty address; write host:port (\"127.0.0.1:8080\", \":80\")");
		return -1;
	}
	if (address[0] == '[') {
		char v6[64];
		struct in6_addr a6;
		const char *close = strchr(address, ']');

		if (close == NULL) {
			snprintf(err, errlen, "\"%s\": missing \"]\" after the IPv6 address", address);
			return -1;
		}
		hs = address + 1;
		he = close;
		if ((size_t)(he - hs) >= sizeof v6) {
			snprintf(err, errlen, "\"%s\": not an IPv6 address in brackets", address);
			return -1;
		}
		memcpy(v6, hs, (size_t)(he - hs));
		v6[he - hs] = '\0';
		if (inet_pton(AF_INET6, v6, &a6) != 1) {
			snprintf(err, errlen, "\"%s\": \"%s\" is not an IPv6 address", address, v6);
			return -1;
		}
		if (close[1] != ':') {
			snprintf(err, errlen, "\"%s\": missing \":port\" after \"]\"", address);
			return -1;
		}
		ps = close + 2;
	} else {
		const char *colon = strrchr(address, ':');
		const char *why = NULL;

		if (colon == NULL) {
			snprintf(err, errlen, "\"%s\": missing port; write host:port", address);
			return -1;
		}
		if (memchr(address, ':', (size_t)(colon - address)) != NULL) {
			snprintf(err, errlen,
				 "\"%s\": an IPv6 address needs brackets (\"[::1]:8080\")", address);
			return -1;
		}
		hs = address;
		he = colon;
		ps = colon + 1;
		if (he > hs) {
			char name[256];
			if ((size_t)(he - hs) >= sizeof name) {
				snprintf(err, errlen, "\"%s\": host name too long", address);
				return -1;
			}
			memcpy(name, hs, (size_t)(he - hs));
			name[he - hs] = '\0';
			if (!config_host_name_ok(name, false, &why)) {
				snprintf(err, errlen, "\"%s\": bad host \"%s\": %s", address, name, why);
				return -1;
			}
		}
	}
	if (!config_port_ok(ps, &pv)) {
		snprintf(err, errlen, "\"%s\": port \"%s\" is not a number from 0 to 65535", address,
			 ps);
		return -1;
	}
	snprintf(pbuf, sizeof pbuf, "%lu", pv);
	*host = strndup(hs, (size_t)(he - hs));
	*port = strdup(pbuf);
	if (*host == NULL || *port == NULL) {
		free(*host);
		free(*port);
		*host = NULL;
		*port = NULL;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* A Host header value: host or host:port (port 1..65535), IPv6 in brackets. */
bool
config_host_value_ok(const char *s, char *why, size_t whylen)
{
	bool has_port = s[0] == '[' ? strstr(s, "]:") != NULL : strchr(s, ':') != NULL;
	const char *reason = NULL;

	if (has_port) {
		char *h = NULL, *p = NULL;
		bool ok = config_split_hostport(s, &h, &p, why, whylen) == 0;
		if (ok && (h[0] == '\0' || strcmp(p, "0") == 0)) {
			snprintf(why, whylen, "\"%s\": needs a host and a port from 1 to 65535", s);
			ok = false;
		}
		free(h);
		free(p);
		return ok;
	}
	if (!config_host_name_ok(s, true, &reason)) {
		snprintf(why, whylen, "\"%s\" is not a valid Host value: %s", s, reason);
		return false;
	}
	return true;
}

/* RFC 7230 token. */
bool
config_token_ok(const char *s)
{
	if (s[0] == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!config_is_alnum(*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL)
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Headers a config may not set, and missing keys                       */

bool
config_header_name_ok(struct config_loader *ld, const char *path, const char *name,
		      unsigned refused)
{
	const struct headers_owned *row;

	if (!config_token_ok(name)) {
		config_error(ld, path,
			     "\"%s\" is not a valid header name (letters, digits and "
			     "!#$%%&'*+-.^_`|~ only)",
			     name);
		return false;
	}
	row = headers_owned_find(name);
	if (row != NULL && (row->flags & refused)) {
		config_error(ld, path, "%s cannot be changed here: %s", name, row->why);
		return false;
	}
	return true;
}

/* Records "PATH: missing "KEY" (WHAT)". */
void
config_missing(struct config_loader *ld, const char *path, const char *key, const char *what)
{
	config_error(ld, path, "missing \"%s\" (%s)", key, what);
}

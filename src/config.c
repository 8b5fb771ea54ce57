/*
 * config: JSON file -> struct config.  See config.h for the contract and
 * docs/config.md for the format.
 *
 * The loader walks the whole document once and keeps going after an error,
 * so one run reports every problem.  Each error is one line starting with
 * the JSON path of the offending value.  Cross references (route -> upstream,
 * route -> site, duplicate names and hosts, the default site) are checked
 * after the walk.
 */
#include "config.h"

#include "access.h"
#include "envsubst.h"
#include "geoip.h"
#include "localca.h"
#include "ipacl.h"
#include "pathnorm.h"
#include "ratelimit.h"
#include "router.h"
#include "saml.h"
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_JPATH_MAX 512
#define CONFIG_KIB 1024ULL
#define CONFIG_MIB (1024ULL * 1024)
#define CONFIG_GIB (1024ULL * 1024 * 1024)
#define CONFIG_MAX_SECONDS (365.0 * 24 * 3600)
#define CONFIG_MAX_BYTES ((uint64_t)INT64_MAX)

static const char config_more_errors[] = "...(more errors)";

/* A route whose "site" action is resolved after every site is known. */
struct config_site_ref {
	struct config_route *route;
	struct config_site *from;
	char *target;
	char *path;
};

struct config_loader {
	const char *source;
	const char *(*getenv_fn)(const char *name);
	struct config *cfg;
	/* Errors, "\n"-separated. */
	char *errs;
	size_t errs_len;
	size_t errs_cap;
	size_t nerrors;
	bool oom;
	/* False when "upstreams" itself is missing or broken: references to
	 * upstreams are then not checked (every one would fail). */
	bool upstreams_known;
	struct config_site_ref *refs;
	size_t nrefs;
	size_t refs_cap;
	/* Where each route was defined, for messages about duplicates. */
	char **route_paths;
	size_t nroute_paths;
	/* Rate limit ids handed out so far (one per "access" block with a rate). */
	uint32_t rate_ids;
};

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

__attribute__((format(printf, 3, 4))) static void
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
static void
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

static const char *
config_jkey(char *buf, const char *parent, const char *key)
{
	return config_jpath_fit(buf, snprintf(buf, CONFIG_JPATH_MAX, "%s%s%s", parent,
					      parent[0] != '\0' ? "." : "", key));
}

static const char *
config_jidx(char *buf, const char *parent, size_t i)
{
	return config_jpath_fit(buf, snprintf(buf, CONFIG_JPATH_MAX, "%s[%zu]", parent, i));
}

static const char *
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

static void
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
static void
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
static const json_t *
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
static char *
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
static char *
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
static const char *
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

enum config_unit {
	UNIT_COUNT,
	UNIT_BYTES,
};

/*
 * A non-negative integer in [min, max] from a JSON number or a string
 * ("64MiB" for byte sizes).  Returns false after reporting an error.
 */
static bool
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
static bool
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
static bool
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
static bool
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
static bool
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

static void
config_free_strings(char **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* ------------------------------------------------------------------ */
/* Names, hosts, addresses                                              */

static bool
config_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
config_is_alnum(char c)
{
	return config_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A DNS-style name: labels of letters, digits, "-" and "_", 1..63 long,
 * 253 at most; or a bracketed IPv6 address when <brackets>. */
static bool
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
static bool
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
static bool
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
/* Freeing                                                              */

static void
config_listener_clear(struct config_listener *l)
{
	if (l == NULL)
		return;
	free(l->name);
	free(l->address);
	free(l->host);
	free(l->port);
	config_free_strings(l->allow, l->nallow);
	config_free_strings(l->deny, l->ndeny);
	access_cidrs_free(l->acl);
	free(l->relay_upstream);
	for (size_t i = 0; l->relay_servers != NULL && i < l->nrelay_servers; i++) {
		free(l->relay_servers[i].address);
		free(l->relay_servers[i].host);
	}
	free(l->relay_servers);
}

static void
config_headers_free(struct config_header *h, size_t n)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

static void
config_header_ops_clear(struct config_header_ops *ops)
{
	config_headers_free(ops->set, ops->nset);
	config_headers_free(ops->add, ops->nadd);
	config_free_strings(ops->remove, ops->nremove);
}

static void
config_route_clear(struct config_route *r)
{
	free(r->name);
	config_free_strings(r->paths, r->npaths);
	config_free_strings(r->exact, r->nexact);
	config_free_strings(r->prefixes, r->nprefixes);
	free(r->strip_prefix);
	free(r->host);
	config_header_ops_clear(&r->request_headers);
	config_header_ops_clear(&r->response_headers);
	free(r->body);
	free(r->content_type);
	free(r->redirect_to);
	access_block_clear(&r->access);
	config_free_strings(r->allow_bearer, r->nallow_bearer);
}

static void
config_saml_free(struct config_saml *sc)
{
	if (sc == NULL)
		return;
	saml_free(sc->sp);
	session_keys_free(sc->keys);
	free(sc->idp_metadata);
	free(sc->idp_metadata_cache);
	free(sc->certs_dir);
	free(sc->base_url);
	free(sc->sp_entity_id);
	free(sc->prefix);
	free(sc->acs_path);
	free(sc->acs_url);
	free(sc->sp_key);
	free(sc->sp_cert);
	free(sc->session_key_file);
	free(sc->session_key_env);
	free(sc->cookie_name);
	for (size_t i = 0; i < sc->nheaders; i++) {
		free(sc->headers[i].name);
		free(sc->headers[i].attribute);
	}
	free(sc->headers);
	for (size_t i = 0; i < sc->nrules; i++) {
		free(sc->rules[i].attribute);
		free(sc->rules[i].value);
	}
	free(sc->rules);
	free(sc);
}

static void config_tls_free(struct config_tls *t);

static void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->source);
	for (size_t i = 0; cfg->listeners != NULL && i < cfg->nlisteners; i++)
		config_listener_clear(&cfg->listeners[i]);
	free(cfg->listeners);
	config_listener_clear(cfg->admin);
	free(cfg->admin);
	free(cfg->access_log);
	config_free_strings(cfg->trusted_proxies, cfg->ntrusted_proxies);
	ipacl_free(cfg->trusted);
	for (size_t i = 0; cfg->upstreams != NULL && i < cfg->nupstreams; i++) {
		struct config_upstream *u = &cfg->upstreams[i];
		free(u->name);
		for (size_t j = 0; u->servers != NULL && j < u->nservers; j++) {
			free(u->servers[j].address);
			free(u->servers[j].host);
		}
		free(u->servers);
	}
	free(cfg->upstreams);
	for (size_t i = 0; cfg->sites != NULL && i < cfg->nsites; i++) {
		struct config_site *s = &cfg->sites[i];
		free(s->name);
		config_free_strings(s->hosts, s->nhosts);
		for (size_t j = 0; s->routes != NULL && j < s->nroutes; j++)
			config_route_clear(&s->routes[j]);
		free(s->routes);
		access_block_clear(&s->access);
	}
	free(cfg->sites);
	free(cfg->geoip_database);
	free(cfg->geoip_asn_database);
	free(cfg->geoip_country_header);
	free(cfg->geoip_asn_header);
	geoip_free(cfg->geoip);
	ratelimit_free(cfg->ratelimit);
	config_saml_free(cfg->saml);
	config_tls_free(cfg->tls);
	free(cfg);
}

/* ------------------------------------------------------------------ */
/* Top-level sections                                                   */

static const char *const config_top_keys[] = { "listeners", "admin", "workers", "log",
					       "limits", "timeouts", "trusted_proxies",
					       "upstreams", "sites", "geoip", "saml", "tls", NULL };
static const char *const config_listener_keys[] = { "name", "address", "type", "allow", "deny",
						    "proxy_protocol", "upstream", "idle_timeout",
						    "max_connections",
						    "max_connections_per_client", "tls",
						    "redirect_https", NULL };
static const char *const config_admin_keys[] = { "name", "address", NULL };
static const char *const config_log_keys[] = { "level", "access_log", NULL };
static const char *const config_log_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const config_limits_keys[] = { "max_request_header_bytes",
						  "max_response_header_bytes", "max_body_bytes",
						  "body_memory_budget", "rate_limit_clients", NULL };
static const char *const config_timeouts_keys[] = { "connect", "upstream_response",
						    "upstream_idle", "client", "drain", NULL };
static const char *const config_upstream_keys[] = {
	"servers",	   "balance",	       "max_idle",	"max_fails",
	"fail_timeout",	   "connect_timeout",  "response_timeout", "idle_timeout",
	NULL
};
static const char *const config_balances[] = { "round_robin", "least_conn", NULL };
static const char *const config_site_keys[] = { "name", "hosts", "default", "routes", "access",
						"hsts", NULL };
static const char *const config_route_keys[] = {
	"name",		   "match",	    "upstream",	    "respond",	      "redirect",
	"site",		   "strip_prefix",  "host",	    "request_headers", "response_headers",
	"max_body_bytes",  "drop_cookies",  "access",	    "auth",	      "allow_bearer",
	NULL
};
static const char *const config_match_keys[] = { "path", "path_exact", "path_prefix", "methods",
						 NULL };
static const char *const config_respond_keys[] = { "status", "body", "content_type", NULL };
static const char *const config_redirect_keys[] = { "to", "status", "keep_path", NULL };
static const char *const config_headers_keys[] = { "set", "add", "remove", NULL };
static const char *const config_action_keys[] = { "upstream", "respond", "redirect", "site",
						  NULL };

static void
config_missing(struct config_loader *ld, const char *path, const char *key, const char *what)
{
	config_error(ld, path, "missing \"%s\" (%s)", key, what);
}

static void
config_parse_listener(struct config_loader *ld, const char *path, const json_t *v,
		      struct config_listener *l, const char *default_name, const char *const *keys)
{
	char kp[CONFIG_JPATH_MAX];
	char why[512];
	const json_t *addr;

	if (config_object(ld, path, v, keys) == NULL)
		return;
	l->name = config_string_or(ld, config_jkey(kp, path, "name"),
				   json_object_get(v, "name"), default_name);
	addr = json_object_get(v, "address");
	if (addr == NULL) {
		config_missing(ld, path, "address", "a \"host:port\" string such as \":80\"");
		return;
	}
	config_jkey(kp, path, "address");
	l->address = config_string(ld, kp, addr);
	if (l->address != NULL &&
	    config_split_hostport(l->address, &l->host, &l->port, why, sizeof why) < 0)
		config_error(ld, kp, "%s", why);
}

static bool
config_same_listen(const struct config_listener *a, const struct config_listener *b)
{
	return a->host != NULL && b->host != NULL && a->port != NULL && b->port != NULL &&
	       strcmp(a->port, "0") != 0 && strcmp(a->port, b->port) == 0 &&
	       strcasecmp(a->host, b->host) == 0;
}

static void
config_parse_listeners(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "listeners");
	const json_t *admin = json_object_get(root, "admin");
	char ip[CONFIG_JPATH_MAX];
	size_t n;

	if (v == NULL) {
		config_missing(ld, "", "listeners",
			       "an array of listeners such as [{\"address\": \":80\"}]");
	} else if (!json_is_array(v)) {
		config_type_error(ld, "listeners", "an array of listeners", v);
	} else if ((n = json_array_size(v)) == 0) {
		config_error(ld, "listeners", "must not be empty (at least one listener)");
	} else {
		cfg->listeners = calloc(n, sizeof *cfg->listeners);
		if (cfg->listeners == NULL) {
			ld->oom = true;
			return;
		}
		cfg->nlisteners = n;
		for (size_t i = 0; i < n; i++) {
			config_jidx(ip, "listeners", i);
			cfg->listeners[i].index = i;
			config_parse_listener(ld, ip, json_array_get(v, i), &cfg->listeners[i], ip,
					      config_listener_keys);
		}
	}
	if (admin != NULL && !json_is_null(admin)) {
		cfg->admin = calloc(1, sizeof *cfg->admin);
		if (cfg->admin == NULL) {
			ld->oom = true;
			return;
		}
		config_parse_listener(ld, "admin", admin, cfg->admin, "admin", config_admin_keys);
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		for (size_t j = 0; j < i; j++) {
			if (config_same_listen(&cfg->listeners[i], &cfg->listeners[j])) {
				char ap[CONFIG_JPATH_MAX];
				config_jkey(ap, config_jidx(ip, "listeners", i), "address");
				config_error(ld, ap, "\"%s\" is already used by listeners[%zu]",
					     cfg->listeners[i].address, j);
				break;
			}
		}
		if (cfg->admin != NULL && config_same_listen(cfg->admin, &cfg->listeners[i]))
			config_error(ld, "admin.address", "\"%s\" is already used by listeners[%zu]",
				     cfg->admin->address, i);
	}
}

static void
config_parse_log(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "log");
	int level = LOG_LEVEL_INFO;
	const json_t *al;

	if (v != NULL && config_object(ld, "log", v, config_log_keys) != NULL) {
		if (config_enum(ld, "log.level", json_object_get(v, "level"), config_log_levels,
				&level))
			cfg->log_level = (enum config_log_level)level;
		al = json_object_get(v, "access_log");
		if (al != NULL) {
			cfg->access_log = config_string(ld, "log.access_log", al);
			if (cfg->access_log != NULL && cfg->access_log[0] == '\0')
				config_error(ld, "log.access_log",
					     "empty; write \"stdout\", \"stderr\", \"off\" or a file "
					     "path");
		}
	}
	if (cfg->access_log == NULL)
		cfg->access_log = strdup("stdout");
	if (cfg->access_log == NULL)
		ld->oom = true;
}

static void
config_parse_limits(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "limits");
	const json_t *f;
	char a[64], b[64];

	if (v == NULL || config_object(ld, "limits", v, config_limits_keys) == NULL)
		return;
	if ((f = json_object_get(v, "max_request_header_bytes")) != NULL)
		config_uint(ld, "limits.max_request_header_bytes", f, UNIT_BYTES, CONFIG_KIB,
			    CONFIG_MIB, &cfg->max_request_header_bytes);
	if ((f = json_object_get(v, "max_response_header_bytes")) != NULL)
		config_uint(ld, "limits.max_response_header_bytes", f, UNIT_BYTES, CONFIG_KIB,
			    CONFIG_MIB, &cfg->max_response_header_bytes);
	if ((f = json_object_get(v, "max_body_bytes")) != NULL)
		config_uint(ld, "limits.max_body_bytes", f, UNIT_BYTES, 0, CONFIG_MAX_BYTES,
			    &cfg->max_body_bytes);
	if ((f = json_object_get(v, "rate_limit_clients")) != NULL)
		config_uint(ld, "limits.rate_limit_clients", f, UNIT_COUNT, 64, 1ULL << 26,
			    &cfg->rate_limit_clients);
	if ((f = json_object_get(v, "body_memory_budget")) != NULL &&
	    !config_uint(ld, "limits.body_memory_budget", f, UNIT_BYTES, 0, CONFIG_MAX_BYTES,
			 &cfg->body_memory_budget))
		return;
	if (cfg->body_memory_budget < cfg->max_body_bytes)
		config_error(ld, "limits.body_memory_budget",
			     "%s is less than limits.max_body_bytes (%s); the budget must hold at "
			     "least one largest body",
			     config_fmt_bytes(a, sizeof a, cfg->body_memory_budget),
			     config_fmt_bytes(b, sizeof b, cfg->max_body_bytes));
}

static void
config_parse_timeouts(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "timeouts");

	if (v == NULL || config_object(ld, "timeouts", v, config_timeouts_keys) == NULL)
		return;
	config_seconds(ld, "timeouts.connect", json_object_get(v, "connect"),
		       &cfg->connect_timeout);
	config_seconds(ld, "timeouts.upstream_response", json_object_get(v, "upstream_response"),
		       &cfg->upstream_response_timeout);
	config_seconds(ld, "timeouts.upstream_idle", json_object_get(v, "upstream_idle"),
		       &cfg->upstream_idle_timeout);
	config_seconds(ld, "timeouts.client", json_object_get(v, "client"),
		       &cfg->client_timeout);
	config_seconds(ld, "timeouts.drain", json_object_get(v, "drain"), &cfg->drain_timeout);
}

static void
config_parse_workers(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "workers");
	uint64_t n = 0;

	if (v != NULL && !config_uint(ld, "workers", v, UNIT_COUNT, 0, 256, &n))
		return;
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus < 1 ? 1 : cpus > 256 ? 256 : (uint64_t)cpus;
	}
	ld->cfg->workers = (unsigned)n;
}

static void
config_parse_trusted(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "trusted_proxies");
	char why[512];
	bool ok = true;

	if (v != NULL)
		ok = config_string_list(ld, "trusted_proxies", v, false,
					"an array of CIDR strings such as \"10.1.1.0/24\"",
					&cfg->trusted_proxies, &cfg->ntrusted_proxies);
	for (size_t i = 0; ok && i < cfg->ntrusted_proxies; i++)
		ok = cfg->trusted_proxies[i] != NULL;
	if (!ok)
		return;
	cfg->trusted = ipacl_new((const char *const *)cfg->trusted_proxies,
				 cfg->ntrusted_proxies, why, sizeof why);
	if (cfg->trusted == NULL)
		config_error(ld, "trusted_proxies", "%s", why);
}

static void
config_parse_servers(struct config_loader *ld, const char *path, const json_t *v,
		     struct config_upstream *u)
{
	char **list = NULL;
	size_t n = 0;
	char ip[CONFIG_JPATH_MAX];
	char why[512];

	if (!config_string_list(ld, path, v, true,
				"an array of \"host:port\" strings such as [\"web:8000\"]", &list,
				&n))
		return;
	u->servers = calloc(n, sizeof *u->servers);
	if (u->servers == NULL) {
		ld->oom = true;
		config_free_strings(list, n);
		return;
	}
	u->nservers = n;
	for (size_t i = 0; i < n; i++) {
		struct config_server *s = &u->servers[i];
		char *port = NULL;

		s->address = list[i];
		if (s->address == NULL)
			continue;
		config_jidx(ip, path, i);
		if (config_split_hostport(s->address, &s->host, &port, why, sizeof why) < 0) {
			config_error(ld, ip, "%s", why);
			continue;
		}
		if (s->host[0] == '\0')
			config_error(ld, ip, "\"%s\": missing host; write host:port (\"web:8000\")",
				     s->address);
		if (strcmp(port, "0") == 0)
			config_error(ld, ip, "\"%s\": port must be from 1 to 65535", s->address);
		s->port = (uint16_t)strtoul(port, NULL, 10);
		free(port);
	}
	free(list);
}

static bool
config_upstream_name_ok(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!config_is_alnum(*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return true;
}

static void
config_parse_upstream(struct config_loader *ld, const char *path, const json_t *v,
		      struct config_upstream *u)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	uint64_t n;
	int balance = BALANCE_ROUND_ROBIN;

	u->max_idle = 64;
	u->max_fails = 1;
	u->fail_timeout = 10;
	u->connect_timeout = cfg->connect_timeout;
	u->response_timeout = cfg->upstream_response_timeout;
	u->idle_timeout = cfg->upstream_idle_timeout;
	if (!config_upstream_name_ok(u->name))
		config_error(ld, path,
			     "bad upstream name; use only letters, digits, \"_\", \".\" and \"-\"");
	if (config_object(ld, path, v, config_upstream_keys) == NULL)
		return;
	if ((f = json_object_get(v, "servers")) == NULL)
		config_missing(ld, path, "servers", "an array of \"host:port\" strings");
	else
		config_parse_servers(ld, config_jkey(kp, path, "servers"), f, u);
	if (config_enum(ld, config_jkey(kp, path, "balance"), json_object_get(v, "balance"),
			config_balances, &balance))
		u->balance = (enum config_balance)balance;
	if ((f = json_object_get(v, "max_idle")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "max_idle"), f, UNIT_COUNT, 0, 10000, &n))
		u->max_idle = (size_t)n;
	if ((f = json_object_get(v, "max_fails")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "max_fails"), f, UNIT_COUNT, 1, 1000000, &n))
		u->max_fails = (unsigned)n;
	config_seconds(ld, config_jkey(kp, path, "fail_timeout"), json_object_get(v, "fail_timeout"),
		       &u->fail_timeout);
	config_seconds(ld, config_jkey(kp, path, "connect_timeout"),
		       json_object_get(v, "connect_timeout"), &u->connect_timeout);
	config_seconds(ld, config_jkey(kp, path, "response_timeout"),
		       json_object_get(v, "response_timeout"), &u->response_timeout);
	config_seconds(ld, config_jkey(kp, path, "idle_timeout"),
		       json_object_get(v, "idle_timeout"), &u->idle_timeout);
}

static void
config_parse_upstreams(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "upstreams");
	const char *name;
	json_t *u;
	char kp[CONFIG_JPATH_MAX];
	size_t i = 0;

	if (v == NULL) {
		config_missing(ld, "", "upstreams",
			       "an object of upstreams by name, such as {\"web\": {\"servers\": "
			       "[\"web:8000\"]}}");
		return;
	}
	if (!json_is_object(v)) {
		config_type_error(ld, "upstreams", "an object of upstreams by name", v);
		return;
	}
	ld->upstreams_known = true;
	if (json_object_size(v) == 0)
		return;
	cfg->upstreams = calloc(json_object_size(v), sizeof *cfg->upstreams);
	if (cfg->upstreams == NULL) {
		ld->oom = true;
		return;
	}
	cfg->nupstreams = json_object_size(v);
	json_object_foreach((json_t *)(uintptr_t)v, name, u) {
		struct config_upstream *up = &cfg->upstreams[i];
		up->index = i++;
		up->name = strdup(name);
		if (up->name == NULL) {
			ld->oom = true;
			return;
		}
		config_parse_upstream(ld, config_jkey(kp, "upstreams", name), u, up);
	}
}

/* ------------------------------------------------------------------ */
/* Routes                                                               */

/* A path matcher or strip_prefix: origin-form and already normalized. */
static bool
config_match_path_ok(struct config_loader *ld, const char *path, const char *p)
{
	char norm[4096];
	const char *query = NULL;
	enum pathnorm_result res;

	if (p[0] != '/') {
		config_error(ld, path, "\"%s\" must start with \"/\"", p);
		return false;
	}
	if (strpbrk(p, "?#") != NULL) {
		config_error(ld, path, "\"%s\": a path matcher has no query or fragment (\"?\", \"#\")",
			     p);
		return false;
	}
	if (strstr(p, "//") != NULL) {
		config_error(ld, path, "\"%s\" is not normalized: \"//\" (requests are matched after "
				       "repeated slashes are merged)",
			     p);
		return false;
	}
	for (const char *s = p; s != NULL; s = strchr(s + 1, '/')) {
		if (strncmp(s, "/./", 3) == 0 || strcmp(s, "/.") == 0 || strncmp(s, "/../", 4) == 0 ||
		    strcmp(s, "/..") == 0) {
			config_error(ld, path,
				     "\"%s\" is not normalized: a \".\" or \"..\" segment", p);
			return false;
		}
	}
	if (strcasestr(p, "%2F") != NULL || strcasestr(p, "%2E") != NULL ||
	    strcasestr(p, "%5C") != NULL) {
		config_error(ld, path,
			     "\"%s\": %%2F, %%2E and %%5C are refused in requests, so a matcher "
			     "with them never matches",
			     p);
		return false;
	}
	res = pathnorm_normalize(p, norm, sizeof norm, &query);
	if (res != PATHNORM_OK) {
		config_error(ld, path, "\"%s\": %s", p, pathnorm_reason(res));
		return false;
	}
	if (strcmp(norm, p) != 0) {
		config_error(ld, path, "\"%s\" is not normalized; write \"%s\"", p, norm);
		return false;
	}
	return true;
}

static void
config_parse_paths(struct config_loader *ld, const char *path, const json_t *v, char ***out,
		   size_t *n)
{
	char ip[CONFIG_JPATH_MAX];

	if (v == NULL)
		return;
	if (!config_string_list(ld, path, v, true, "an array of paths such as [\"/api\"]", out, n))
		return;
	for (size_t i = 0; i < *n; i++)
		if ((*out)[i] != NULL)
			config_match_path_ok(ld, config_jidx(ip, path, i), (*out)[i]);
}

static void
config_parse_match(struct config_loader *ld, const char *path, const json_t *v,
		   struct config_route *r)
{
	char kp[CONFIG_JPATH_MAX];
	char ip[CONFIG_JPATH_MAX];
	const json_t *m;
	char **methods = NULL;
	size_t nmethods = 0;

	if (config_object(ld, path, v, config_match_keys) == NULL)
		return;
	config_parse_paths(ld, config_jkey(kp, path, "path"), json_object_get(v, "path"),
			   &r->paths, &r->npaths);
	config_parse_paths(ld, config_jkey(kp, path, "path_exact"),
			   json_object_get(v, "path_exact"), &r->exact, &r->nexact);
	config_parse_paths(ld, config_jkey(kp, path, "path_prefix"),
			   json_object_get(v, "path_prefix"), &r->prefixes, &r->nprefixes);
	m = json_object_get(v, "methods");
	config_jkey(kp, path, "methods");
	if (m == NULL || !config_string_list(ld, kp, m, true,
					     "an array of method names such as [\"GET\", \"POST\"]",
					     &methods, &nmethods))
		return;
	for (size_t i = 0; i < nmethods; i++) {
		unsigned bit;
		if (methods[i] == NULL)
			continue;
		bit = config_method_bit(methods[i]);
		if (bit == 0)
			config_error(ld, config_jidx(ip, kp, i),
				     "\"%s\" is not a method we forward; allowed (upper case): GET, "
				     "HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
				     methods[i]);
		r->methods |= bit;
	}
	config_free_strings(methods, nmethods);
}

static bool
config_header_refused(const char *name, const char *const *refused, const char **why)
{
	for (size_t i = 0; refused[i] != NULL; i += 2) {
		if (strcasecmp(name, refused[i]) == 0) {
			*why = refused[i + 1];
			return true;
		}
	}
	return false;
}

/* Pairs: header name, reason it is refused. */
static const char *const config_refused_request[] = {
	"Host", "the proxy sets Host; use the route's \"host\" key (\"keep\", \"upstream\" or a value)",
	"Content-Length", "the proxy frames the request body itself",
	"Transfer-Encoding", "the proxy frames the request body itself",
	"Connection", "a hop-by-hop header the proxy manages",
	"Keep-Alive", "a hop-by-hop header the proxy manages",
	"Upgrade", "a hop-by-hop header the proxy manages (Upgrade is not forwarded)",
	"TE", "a hop-by-hop header the proxy manages",
	"Trailer", "a hop-by-hop header the proxy manages",
	NULL, NULL
};
static const char *const config_refused_response[] = {
	"Content-Length", "the proxy frames the response body itself",
	"Transfer-Encoding", "the proxy frames the response body itself",
	"Connection", "a hop-by-hop header the proxy manages",
	NULL, NULL
};

static bool
config_header_name_ok(struct config_loader *ld, const char *path, const char *name,
		      const char *const *refused)
{
	const char *why = NULL;

	if (!config_token_ok(name)) {
		config_error(ld, path,
			     "\"%s\" is not a valid header name (letters, digits and "
			     "!#$%%&'*+-.^_`|~ only)",
			     name);
		return false;
	}
	if (config_header_refused(name, refused, &why)) {
		config_error(ld, path, "%s cannot be changed here: %s", name, why);
		return false;
	}
	return true;
}

static void
config_parse_header_map(struct config_loader *ld, const char *path, const json_t *v,
			const char *const *refused, struct config_header **out, size_t *nout)
{
	char kp[CONFIG_JPATH_MAX];
	const char *name;
	json_t *value;
	size_t i = 0;

	if (!json_is_object(v)) {
		config_type_error(ld, path, "an object of header name: value", v);
		return;
	}
	if (json_object_size(v) == 0)
		return;
	*out = calloc(json_object_size(v), sizeof **out);
	if (*out == NULL) {
		ld->oom = true;
		return;
	}
	*nout = json_object_size(v);
	json_object_foreach((json_t *)(uintptr_t)v, name, value) {
		struct config_header *h = &(*out)[i++];

		config_jkey(kp, path, name);
		config_header_name_ok(ld, kp, name, refused);
		h->name = strdup(name);
		if (h->name == NULL)
			ld->oom = true;
		h->value = config_string(ld, kp, value);
		if (h->value != NULL && strpbrk(h->value, "\r\n") != NULL)
			config_error(ld, kp, "a header value may not contain CR or LF");
	}
}

static void
config_parse_header_ops(struct config_loader *ld, const char *path, const json_t *v,
			const char *const *refused, struct config_header_ops *ops)
{
	char kp[CONFIG_JPATH_MAX];
	char ip[CONFIG_JPATH_MAX];
	const json_t *f;

	if (config_object(ld, path, v, config_headers_keys) == NULL)
		return;
	if ((f = json_object_get(v, "set")) != NULL)
		config_parse_header_map(ld, config_jkey(kp, path, "set"), f, refused, &ops->set,
					&ops->nset);
	if ((f = json_object_get(v, "add")) != NULL)
		config_parse_header_map(ld, config_jkey(kp, path, "add"), f, refused, &ops->add,
					&ops->nadd);
	if ((f = json_object_get(v, "remove")) == NULL)
		return;
	config_jkey(kp, path, "remove");
	if (!config_string_list(ld, kp, f, false, "an array of header names", &ops->remove,
				&ops->nremove))
		return;
	for (size_t i = 0; i < ops->nremove; i++)
		if (ops->remove[i] != NULL)
			config_header_name_ok(ld, config_jidx(ip, kp, i), ops->remove[i], refused);
}

static void
config_parse_respond(struct config_loader *ld, const char *path, const json_t *v,
		     struct config_route *r)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	uint64_t n;

	r->status = 200;
	if (config_object(ld, path, v, config_respond_keys) == NULL)
		return;
	if ((f = json_object_get(v, "status")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "status"), f, UNIT_COUNT, 100, 599, &n))
		r->status = (int)n;
	r->body = config_string_or(ld, config_jkey(kp, path, "body"), json_object_get(v, "body"),
				   "");
	config_jkey(kp, path, "content_type");
	r->content_type = config_string_or(ld, kp, json_object_get(v, "content_type"),
					   "text/plain; charset=utf-8");
	if (r->content_type != NULL &&
	    (r->content_type[0] == '\0' || strpbrk(r->content_type, "\r\n") != NULL))
		config_error(ld, kp, "must be a non-empty header value without CR or LF");
}

static bool
config_redirect_to_ok(const char *to)
{
	const char *rest = NULL;

	if (strpbrk(to, "\r\n\t ") != NULL)
		return false;
	for (const char *p = to; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	if (to[0] == '/')
		return to[1] != '/' && to[1] != '\\';
	if (strncasecmp(to, "http://", 7) == 0)
		rest = to + 7;
	else if (strncasecmp(to, "https://", 8) == 0)
		rest = to + 8;
	return rest != NULL && rest[0] != '\0' && rest[0] != '/' && rest[0] != '?' &&
	       rest[0] != '#';
}

static void
config_parse_redirect(struct config_loader *ld, const char *path, const json_t *v,
		      struct config_route *r)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	uint64_t n;

	r->status = 302;
	if (config_object(ld, path, v, config_redirect_keys) == NULL)
		return;
	if ((f = json_object_get(v, "to")) == NULL) {
		config_missing(ld, path, "to", "an absolute http(s) URL or a path starting with \"/\"");
	} else {
		config_jkey(kp, path, "to");
		r->redirect_to = config_string(ld, kp, f);
		if (r->redirect_to != NULL && !config_redirect_to_ok(r->redirect_to))
			config_error(ld, kp,
				     "\"%s\" must be an absolute http:// or https:// URL or a path "
				     "starting with \"/\" (not \"//\"), without spaces or control "
				     "characters",
				     r->redirect_to);
	}
	if ((f = json_object_get(v, "status")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "status"), f, UNIT_COUNT, 0, 999, &n)) {
		if (n == 301 || n == 302 || n == 303 || n == 307 || n == 308)
			r->status = (int)n;
		else
			config_error(ld, kp, "%llu is not a redirect status; use 301, 302, 303, 307 "
					     "or 308",
				     (unsigned long long)n);
	}
	config_bool(ld, config_jkey(kp, path, "keep_path"), json_object_get(v, "keep_path"),
		    &r->redirect_keep_path);
}

static int
config_add_site_ref(struct config_loader *ld, struct config_route *r, struct config_site *from,
		    char *target, const char *path)
{
	if (ld->nrefs == ld->refs_cap) {
		size_t cap = ld->refs_cap ? ld->refs_cap * 2 : 8;
		struct config_site_ref *refs = realloc(ld->refs, cap * sizeof *refs);
		if (refs == NULL)
			goto oom;
		ld->refs = refs;
		ld->refs_cap = cap;
	}
	struct config_site_ref *ref = &ld->refs[ld->nrefs];
	ref->route = r;
	ref->from = from;
	ref->target = target;
	ref->path = strdup(path);
	if (ref->path == NULL)
		goto oom;
	ld->nrefs++;
	return 0;
oom:
	ld->oom = true;
	free(target);
	return -1;
}

/* "name1, name2, ..." of every upstream, sorted, for error messages. */
static int
config_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
config_known_names(char *buf, size_t len, const char **names, size_t n)
{
	size_t used = 0;

	qsort(names, n, sizeof *names, config_cmp_str);
	snprintf(buf, len, "%s", n == 0 ? "(none)" : "");
	for (size_t i = 0; i < n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", names[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static void
config_resolve_upstream(struct config_loader *ld, const char *path, const char *name,
			struct config_route *r)
{
	struct config *cfg = ld->cfg;
	const char **names;
	char list[768];

	r->upstream = config_find_upstream(cfg, name);
	if (r->upstream != NULL || !ld->upstreams_known)
		return;
	names = calloc(cfg->nupstreams + 1, sizeof *names);
	if (names == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++)
		names[i] = cfg->upstreams[i].name;
	config_known_names(list, sizeof list, names, cfg->nupstreams);
	config_error(ld, path, "no upstream named \"%s\"; known: %s", name, list);
	free(names);
}

/* Checks of strip_prefix against the action and the path matchers. */
static void
config_check_strip(struct config_loader *ld, const char *path, struct config_route *r)
{
	const char *sp = r->strip_prefix;
	size_t len = strlen(sp);

	if (!config_match_path_ok(ld, path, sp))
		return;
	if (len == 1 || sp[len - 1] == '/') {
		config_error(ld, path, "\"%s\" must not end with \"/\"", sp);
		return;
	}
	if (r->npaths + r->nexact + r->nprefixes == 0) {
		config_error(ld, path,
			     "a route that strips \"%s\" needs a path matcher (match.path, "
			     "match.path_exact or match.path_prefix) inside it",
			     sp);
		return;
	}
	for (int kind = 0; kind < 3; kind++) {
		char **list = kind == 0 ? r->paths : kind == 1 ? r->exact : r->prefixes;
		size_t n = kind == 0 ? r->npaths : kind == 1 ? r->nexact : r->nprefixes;
		const char *key = kind == 0 ? "path" : kind == 1 ? "path_exact" : "path_prefix";

		for (size_t i = 0; i < n; i++) {
			const char *p = list[i];
			bool inside;
			if (p == NULL)
				continue;
			inside = strncmp(p, sp, len) == 0 &&
				 (kind == 2 || p[len] == '\0' || p[len] == '/');
			if (!inside) {
				char mp[CONFIG_JPATH_MAX];
				snprintf(mp, sizeof mp, "match.%s[%zu]", key, i);
				config_error(ld, path,
					     "%s \"%s\" is not inside \"%s\"; every path matcher of a "
					     "route that strips must be",
					     mp, p, sp);
			}
		}
	}
}

static void config_parse_access(struct config_loader *ld, const char *path, const json_t *v,
				struct access_block *b);

static void
config_parse_route(struct config_loader *ld, const char *path, const json_t *v,
		   struct config_site *site, size_t i, struct config_route *r)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	char why[512];
	const json_t *f;
	const char *present[4];
	size_t nactions = 0;
	uint64_t n;

	r->max_body_bytes = cfg->max_body_bytes;
	r->action = ACTION_PROXY;
	if (!json_is_object(v)) {
		config_type_error(ld, path, "a route object", v);
		return;
	}
	config_check_keys(ld, path, v, config_route_keys);
	if ((f = json_object_get(v, "access")) != NULL)
		config_parse_access(ld, config_jkey(kp, path, "access"), f, &r->access);
	if ((f = json_object_get(v, "name")) != NULL) {
		r->name = config_string(ld, config_jkey(kp, path, "name"), f);
		if (r->name != NULL && r->name[0] == '\0')
			config_error(ld, kp, "must not be empty");
	} else if (site->name != NULL && asprintf(&r->name, "%s#%zu", site->name, i) < 0) {
		r->name = NULL;
		ld->oom = true;
	}
	if ((f = json_object_get(v, "match")) != NULL)
		config_parse_match(ld, config_jkey(kp, path, "match"), f, r);

	for (size_t k = 0; config_action_keys[k] != NULL; k++)
		if (json_object_get(v, config_action_keys[k]) != NULL)
			present[nactions++] = config_action_keys[k];
	if (nactions == 0) {
		config_error(ld, path,
			     "no action; give exactly one of \"upstream\", \"respond\", "
			     "\"redirect\", \"site\"");
	} else if (nactions > 1) {
		config_error(ld, path, "more than one action (\"%s\" and \"%s\"); give exactly one",
			     present[0], present[1]);
	} else if (strcmp(present[0], "upstream") == 0) {
		char *name = config_string(ld, config_jkey(kp, path, "upstream"),
					   json_object_get(v, "upstream"));
		r->action = ACTION_PROXY;
		if (name != NULL)
			config_resolve_upstream(ld, kp, name, r);
		free(name);
	} else if (strcmp(present[0], "respond") == 0) {
		r->action = ACTION_RESPOND;
		config_parse_respond(ld, config_jkey(kp, path, "respond"),
				     json_object_get(v, "respond"), r);
	} else if (strcmp(present[0], "redirect") == 0) {
		r->action = ACTION_REDIRECT;
		config_parse_redirect(ld, config_jkey(kp, path, "redirect"),
				      json_object_get(v, "redirect"), r);
	} else {
		char *target = config_string(ld, config_jkey(kp, path, "site"),
					     json_object_get(v, "site"));
		r->action = ACTION_SITE;
		if (target != NULL)
			config_add_site_ref(ld, r, site, target, kp);
	}
	bool forwards = nactions == 1 && (r->action == ACTION_PROXY || r->action == ACTION_SITE);

	if ((f = json_object_get(v, "strip_prefix")) != NULL) {
		config_jkey(kp, path, "strip_prefix");
		r->strip_prefix = config_string(ld, kp, f);
		if (nactions == 1 && !forwards)
			config_error(ld, kp, "only a route with \"upstream\" or \"site\" can strip a "
					     "prefix");
		else if (r->strip_prefix != NULL)
			config_check_strip(ld, kp, r);
	}
	if ((f = json_object_get(v, "host")) != NULL) {
		char *h = config_string(ld, config_jkey(kp, path, "host"), f);
		if (nactions == 1 && !forwards)
			config_error(ld, kp, "only a route with \"upstream\" or \"site\" can set the "
					     "Host it forwards");
		if (h != NULL && strcmp(h, "keep") == 0) {
			r->host_mode = HOST_KEEP;
		} else if (h != NULL && strcmp(h, "upstream") == 0) {
			r->host_mode = HOST_UPSTREAM;
		} else if (h != NULL) {
			r->host_mode = HOST_FIXED;
			if (!config_host_value_ok(h, why, sizeof why))
				config_error(ld, kp, "%s; write \"keep\", \"upstream\" or a host[:port]",
					     why);
			r->host = h;
			h = NULL;
		}
		free(h);
	}
	if ((f = json_object_get(v, "request_headers")) != NULL)
		config_parse_header_ops(ld, config_jkey(kp, path, "request_headers"), f,
					config_refused_request, &r->request_headers);
	if ((f = json_object_get(v, "response_headers")) != NULL)
		config_parse_header_ops(ld, config_jkey(kp, path, "response_headers"), f,
					config_refused_response, &r->response_headers);
	if ((f = json_object_get(v, "max_body_bytes")) != NULL &&
	    config_uint(ld, config_jkey(kp, path, "max_body_bytes"), f, UNIT_BYTES, 0,
			CONFIG_MAX_BYTES, &n)) {
		char a[64], b[64];
		if (n > cfg->max_body_bytes)
			config_error(ld, kp, "%s is more than limits.max_body_bytes (%s)",
				     config_fmt_bytes(a, sizeof a, n),
				     config_fmt_bytes(b, sizeof b, cfg->max_body_bytes));
		else
			r->max_body_bytes = n;
	}
	config_bool(ld, config_jkey(kp, path, "drop_cookies"), json_object_get(v, "drop_cookies"),
		    &r->drop_cookies);
	{
		static const char *const auths[] = { "none", "saml", NULL };
		int a = AUTH_NONE;

		if (config_enum(ld, config_jkey(kp, path, "auth"), json_object_get(v, "auth"), auths,
				&a))
			r->auth = (enum config_auth)a;
		if (r->auth == AUTH_SAML && nactions == 1 && r->action != ACTION_PROXY)
			config_error(ld, kp,
				     "only a route with \"upstream\" can require a SAML session (put "
				     "\"auth\" on the routes of the site it hands requests to)");
	}
	if ((f = json_object_get(v, "allow_bearer")) != NULL) {
		config_jkey(kp, path, "allow_bearer");
		if (config_string_list(ld, kp, f, true, "an array of token prefixes like \"phx_\"",
				       &r->allow_bearer, &r->nallow_bearer)) {
			for (size_t k = 0; k < r->nallow_bearer; k++)
				if (r->allow_bearer[k] != NULL &&
				    (r->allow_bearer[k][0] == '\0' ||
				     strpbrk(r->allow_bearer[k], " \t\r\n,") != NULL))
					config_error(ld, kp,
						     "\"%s\" is not a token prefix (non-empty, no "
						     "white space or commas)",
						     r->allow_bearer[k]);
		}
		if (r->auth != AUTH_SAML)
			config_error(ld, kp, "needs \"auth\": \"saml\" (it lets bearer tokens "
					     "pass where a session is required)");
	}
}

/* ------------------------------------------------------------------ */
/* Sites                                                                */

static void
config_parse_hosts(struct config_loader *ld, const char *path, const json_t *v,
		   struct config_site *s)
{
	char ip[CONFIG_JPATH_MAX];
	const char *why = NULL;

	if (!config_string_list(ld, path, v, false,
				"an array of host names such as [\"example.com\", \"*.example.com\"]",
				&s->hosts, &s->nhosts))
		return;
	for (size_t i = 0; i < s->nhosts; i++) {
		char *h = s->hosts[i];
		const char *name = h;

		if (h == NULL)
			continue;
		for (char *p = h; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if (strncmp(h, "*.", 2) == 0)
			name = h + 2;
		if (!config_host_name_ok(name, true, &why))
			config_error(ld, config_jidx(ip, path, i), "\"%s\" is not a valid host: %s%s",
				     h, why,
				     strchr(h, ':') != NULL && h[0] != '['
					     ? " (hosts match the Host header without its port)"
					     : "");
	}
}

static void
config_parse_site(struct config_loader *ld, const char *path, const json_t *v,
		  struct config_site *s, size_t *route_index)
{
	char kp[CONFIG_JPATH_MAX];
	char rp[CONFIG_JPATH_MAX];
	const json_t *f;
	const json_t *routes;

	if (!json_is_object(v)) {
		config_type_error(ld, path, "a site object", v);
		return;
	}
	config_check_keys(ld, path, v, config_site_keys);
	if ((f = json_object_get(v, "hosts")) != NULL)
		config_parse_hosts(ld, config_jkey(kp, path, "hosts"), f, s);
	if ((f = json_object_get(v, "name")) != NULL) {
		s->name = config_string(ld, config_jkey(kp, path, "name"), f);
		if (s->name != NULL && s->name[0] == '\0')
			config_error(ld, kp, "must not be empty");
	} else {
		s->name = strdup(s->nhosts > 0 && s->hosts[0] != NULL ? s->hosts[0] : "default");
		if (s->name == NULL)
			ld->oom = true;
	}
	config_bool(ld, config_jkey(kp, path, "default"), json_object_get(v, "default"),
		    &s->is_default);
	if ((f = json_object_get(v, "access")) != NULL)
		config_parse_access(ld, config_jkey(kp, path, "access"), f, &s->access);

	routes = json_object_get(v, "routes");
	if (routes == NULL) {
		config_missing(ld, path, "routes", "an array of routes");
		return;
	}
	config_jkey(kp, path, "routes");
	if (!json_is_array(routes)) {
		config_type_error(ld, kp, "an array of routes", routes);
		return;
	}
	if (json_array_size(routes) == 0) {
		config_error(ld, kp, "must not be empty (at least one route)");
		return;
	}
	s->routes = calloc(json_array_size(routes), sizeof *s->routes);
	if (s->routes == NULL) {
		ld->oom = true;
		return;
	}
	s->nroutes = json_array_size(routes);
	for (size_t i = 0; i < s->nroutes; i++) {
		s->routes[i].index = (*route_index)++;
		config_jidx(rp, kp, i);
		ld->route_paths[s->routes[i].index] = strdup(rp);
		config_parse_route(ld, rp, json_array_get(routes, i), s, i, &s->routes[i]);
		access_policy_merge(&s->routes[i].policy, &s->routes[i].access, &s->access);
	}
}

static struct config_site *
config_find_site(struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsites; i++)
		if (cfg->sites[i].name != NULL && strcmp(cfg->sites[i].name, name) == 0)
			return &cfg->sites[i];
	return NULL;
}

/* Route -> site references: the target exists, is another site, and has no
 * "site" routes of its own. */
static void
config_resolve_site_refs(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;

	for (size_t i = 0; i < ld->nrefs; i++) {
		struct config_site_ref *ref = &ld->refs[i];
		struct config_site *t = config_find_site(cfg, ref->target);

		if (t == NULL) {
			const char **names = calloc(cfg->nsites + 1, sizeof *names);
			size_t n = 0;
			char list[768];

			if (names == NULL) {
				ld->oom = true;
				return;
			}
			for (size_t j = 0; j < cfg->nsites; j++)
				if (cfg->sites[j].name != NULL)
					names[n++] = cfg->sites[j].name;
			config_known_names(list, sizeof list, names, n);
			config_error(ld, ref->path, "no site named \"%s\"; known: %s", ref->target,
				     list);
			free(names);
			continue;
		}
		if (t == ref->from) {
			config_error(ld, ref->path,
				     "a route cannot send requests back to its own site \"%s\"",
				     ref->target);
			continue;
		}
		ref->route->site = t;
		for (size_t j = 0; j < t->nroutes; j++) {
			if (t->routes[j].action == ACTION_SITE) {
				config_error(ld, ref->path,
					     "site \"%s\" has a \"site\" route of its own (%s); "
					     "chains of sites are not allowed",
					     t->name, ld->route_paths[t->routes[j].index]);
				break;
			}
		}
	}
}

static void
config_check_sites(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	char ip[CONFIG_JPATH_MAX];
	struct config_site *marked = NULL;
	struct config_site *hostless = NULL;
	size_t nhostless = 0;

	for (size_t i = 0; i < cfg->nsites; i++) {
		struct config_site *s = &cfg->sites[i];

		config_jidx(ip, "sites", i);
		for (size_t j = 0; s->name != NULL && j < i; j++) {
			if (cfg->sites[j].name != NULL && strcmp(cfg->sites[j].name, s->name) == 0) {
				config_error(ld, config_jkey(kp, ip, "name"),
					     "site name \"%s\" is already used by sites[%zu]; give "
					     "each site its own \"name\"",
					     s->name, j);
				break;
			}
		}
		for (size_t h = 0; h < s->nhosts; h++) {
			for (size_t j = 0; s->hosts[h] != NULL && j <= i; j++) {
				const struct config_site *o = &cfg->sites[j];
				size_t lim = j == i ? h : o->nhosts;
				bool dup = false;
				for (size_t k = 0; k < lim && !dup; k++)
					dup = o->hosts[k] != NULL &&
					      strcmp(o->hosts[k], s->hosts[h]) == 0;
				if (dup) {
					char hp[CONFIG_JPATH_MAX];
					config_jidx(kp, config_jkey(hp, ip, "hosts"), h);
					config_error(ld, kp,
						     "host \"%s\" is already served by site \"%s\" "
						     "(sites[%zu]); a host belongs to one site",
						     s->hosts[h], o->name != NULL ? o->name : "", j);
					break;
				}
			}
		}
		if (s->is_default) {
			if (marked != NULL)
				config_error(ld, config_jkey(kp, ip, "default"),
					     "site \"%s\" is also marked default, like \"%s\"; only "
					     "one site may be",
					     s->name ? s->name : "", marked->name ? marked->name : "");
			else
				marked = s;
		}
		if (s->nhosts == 0) {
			nhostless++;
			hostless = s;
		}
	}
	if (marked == NULL && nhostless == 1) {
		hostless->is_default = true;
		marked = hostless;
	}
	cfg->default_site = marked;
}

static void
config_check_route_names(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	const struct config_route **all = calloc(cfg->nroutes_total + 1, sizeof *all);
	char kp[CONFIG_JPATH_MAX];

	if (all == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			all[cfg->sites[i].routes[j].index] = &cfg->sites[i].routes[j];
	for (size_t i = 0; i < cfg->nroutes_total; i++) {
		for (size_t j = 0; all[i] != NULL && all[i]->name != NULL && j < i; j++) {
			if (all[j] != NULL && all[j]->name != NULL &&
			    strcmp(all[i]->name, all[j]->name) == 0) {
				config_error(ld, config_jkey(kp, ld->route_paths[i], "name"),
					     "route name \"%s\" is already used by %s", all[i]->name,
					     ld->route_paths[j]);
				break;
			}
		}
	}
	free(all);
}

static void
config_parse_sites(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "sites");
	char ip[CONFIG_JPATH_MAX];
	size_t total = 0, index = 0;

	if (v == NULL) {
		config_missing(ld, "", "sites", "an array of sites, each with \"hosts\" and \"routes\"");
		return;
	}
	if (!json_is_array(v)) {
		config_type_error(ld, "sites", "an array of sites", v);
		return;
	}
	if (json_array_size(v) == 0) {
		config_error(ld, "sites", "must not be empty (at least one site)");
		return;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		const json_t *r = json_object_get(json_array_get(v, i), "routes");
		if (json_is_array(r))
			total += json_array_size(r);
	}
	cfg->sites = calloc(json_array_size(v), sizeof *cfg->sites);
	ld->route_paths = calloc(total + 1, sizeof *ld->route_paths);
	if (cfg->sites == NULL || ld->route_paths == NULL) {
		ld->oom = true;
		return;
	}
	ld->nroute_paths = total;
	cfg->nsites = json_array_size(v);
	for (size_t i = 0; i < cfg->nsites; i++)
		config_parse_site(ld, config_jidx(ip, "sites", i), json_array_get(v, i),
				  &cfg->sites[i], &index);
	cfg->nroutes_total = index;
	config_check_sites(ld);
	config_check_route_names(ld);
	config_resolve_site_refs(ld);
}

/* ------------------------------------------------------------------ */
/* Access rules, TCP relay listeners, GeoIP (docs/access.md)            */

static const char *const config_access_keys[] = { "allow", "deny", "countries_allow",
						  "countries_deny", "rate", NULL };
static const char *const config_rate_keys[] = { "per_second", "burst", NULL };
static const char *const config_geoip_keys[] = { "database", "asn_database", "country_header",
						 "asn_header", NULL };
static const char *const config_listener_types[] = { "http", "tcp", NULL };

/* A list of CIDR strings; false (error reported) when any entry is bad. */
static bool
config_cidr_list(struct config_loader *ld, const char *path, const json_t *v, char ***out,
		 size_t *n)
{
	if (v == NULL)
		return true;
	if (!config_string_list(ld, path, v, false,
				"an array of CIDR strings such as [\"10.1.1.0/24\", \"2001:db8::/32\"]",
				out, n))
		return false;
	for (size_t i = 0; i < *n; i++)
		if ((*out)[i] == NULL)
			return false;
	return true;
}

/* Compile allow/deny found under <path>; NULL when both are empty or on error. */
static struct access_cidrs *
config_build_cidrs(struct config_loader *ld, const char *path, char **allow, size_t nallow,
		   char **deny, size_t ndeny)
{
	struct access_cidrs *c;
	char why[512];

	if (nallow + ndeny == 0)
		return NULL;
	c = access_cidrs_new(path, (const char *const *)allow, nallow, (const char *const *)deny,
			     ndeny, why, sizeof why);
	if (c == NULL)
		config_error(ld, path, "%s", why);
	return c;
}

static void
config_parse_countries(struct config_loader *ld, const char *path, const json_t *v,
		       access_country **out, size_t *nout)
{
	char **list = NULL;
	size_t n = 0;
	char ip[CONFIG_JPATH_MAX];

	if (!config_string_list(ld, path, v, false,
				"an array of ISO 3166 country codes such as [\"DE\", \"FR\"]", &list,
				&n))
		return;
	*out = calloc(n ? n : 1, sizeof **out);
	if (*out == NULL) {
		ld->oom = true;
		config_free_strings(list, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		access_country c;

		if (list[i] == NULL)
			continue;
		c = access_country_parse(list[i]);
		if (c == 0) {
			config_error(ld, config_jidx(ip, path, i),
				     "\"%s\" is not a two-letter ISO 3166 country code", list[i]);
			continue;
		}
		(*out)[(*nout)++] = c;
	}
	config_free_strings(list, n);
}

static void
config_parse_rate(struct config_loader *ld, const char *path, const json_t *v,
		  struct access_block *b)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *ps, *bu;
	double rate;
	uint64_t burst;

	if (config_object(ld, path, v, config_rate_keys) == NULL)
		return;
	ps = json_object_get(v, "per_second");
	if (ps == NULL) {
		config_missing(ld, path, "per_second", "requests per second, such as 10 or 0.5");
		return;
	}
	config_jkey(kp, path, "per_second");
	if (!json_is_number(ps)) {
		config_type_error(ld, kp, "a number of requests per second", ps);
		return;
	}
	rate = json_number_value(ps);
	if (!(rate > 0) || rate > 1e6) {
		config_error(ld, kp, "%g is out of range; write a number above 0 and at most 1000000",
			     rate);
		return;
	}
	burst = rate < 1 ? 1 : (uint64_t)ceil(rate);
	if ((bu = json_object_get(v, "burst")) != NULL &&
	    !config_uint(ld, config_jkey(kp, path, "burst"), bu, UNIT_COUNT, 1, 1000000, &burst))
		return;
	b->rate = rate;
	b->burst = (double)burst;
	b->rate_id = ++ld->rate_ids;
}

/* An "access" object of a site or a route, at <path>. */
static void
config_parse_access(struct config_loader *ld, const char *path, const json_t *v,
		    struct access_block *b)
{
	char kp[CONFIG_JPATH_MAX];
	char labels[320];
	char **allow = NULL, **deny = NULL;
	size_t nallow = 0, ndeny = 0;
	const json_t *f;
	bool ok;

	if (config_object(ld, path, v, config_access_keys) == NULL)
		return;
	b->path = strdup(path);
	if (b->path == NULL) {
		ld->oom = true;
		return;
	}
	ok = config_cidr_list(ld, config_jkey(kp, path, "allow"), json_object_get(v, "allow"),
			      &allow, &nallow);
	ok = config_cidr_list(ld, config_jkey(kp, path, "deny"), json_object_get(v, "deny"), &deny,
			      &ndeny) && ok;
	if (ok)
		b->cidrs = config_build_cidrs(ld, path, allow, nallow, deny, ndeny);
	config_free_strings(allow, nallow);
	config_free_strings(deny, ndeny);

	if ((f = json_object_get(v, "countries_allow")) != NULL) {
		config_parse_countries(ld, config_jkey(kp, path, "countries_allow"), f,
				       &b->countries_allow, &b->ncountries_allow);
		b->has_countries = true;
	}
	if ((f = json_object_get(v, "countries_deny")) != NULL) {
		config_parse_countries(ld, config_jkey(kp, path, "countries_deny"), f,
				       &b->countries_deny, &b->ncountries_deny);
		b->has_countries = true;
	}
	if (b->has_countries && ld->cfg->geoip_database == NULL)
		config_error(ld, path,
			     "country rules need a country database: add \"geoip\": {\"database\": "
			     "\"/path/GeoLite2-Country.mmdb\"}");
	if ((f = json_object_get(v, "rate")) != NULL)
		config_parse_rate(ld, config_jkey(kp, path, "rate"), f, b);

	snprintf(labels, sizeof labels, "rule=\"%s\",reason=\"country\"", path);
	if (b->has_countries)
		b->country_refusals = access_counter_get("portcullis_access_refusals_total", labels);
	if (b->rate > 0) {
		snprintf(labels, sizeof labels, "rule=\"%s.rate\",reason=\"rate_limit\"", path);
		b->rate_refusals = access_counter_get("portcullis_access_refusals_total", labels);
		snprintf(labels, sizeof labels, "rule=\"%s.rate\"", path);
		b->rate_limited = access_counter_get("portcullis_rate_limited_requests_total", labels);
	}
}

/* "upstream" of a TCP listener: an upstream name or one "host:port". */
static void
config_parse_relay_upstream(struct config_loader *ld, const char *path, const json_t *v,
			    struct config_listener *l)
{
	struct config *cfg = ld->cfg;
	struct config_upstream *u;
	char why[512];
	char *port = NULL;

	l->relay_upstream = config_string(ld, path, v);
	if (l->relay_upstream == NULL)
		return;
	l->relay_connect_timeout = cfg->connect_timeout;
	if (strchr(l->relay_upstream, ':') == NULL) {
		u = config_find_upstream(cfg, l->relay_upstream);
		if (u == NULL) {
			if (ld->upstreams_known)
				config_error(ld, path,
					     "no upstream named \"%s\"; write an upstream name or "
					     "\"host:port\"",
					     l->relay_upstream);
			return;
		}
		l->relay_servers = calloc(u->nservers ? u->nservers : 1, sizeof *l->relay_servers);
		if (l->relay_servers == NULL) {
			ld->oom = true;
			return;
		}
		for (size_t i = 0; i < u->nservers; i++) {
			struct config_server *s = &l->relay_servers[l->nrelay_servers++];

			s->address = strdup(u->servers[i].address ? u->servers[i].address : "");
			s->host = strdup(u->servers[i].host ? u->servers[i].host : "");
			s->port = u->servers[i].port;
			if (s->address == NULL || s->host == NULL)
				ld->oom = true;
		}
		l->relay_connect_timeout = u->connect_timeout;
		return;
	}
	l->relay_servers = calloc(1, sizeof *l->relay_servers);
	if (l->relay_servers == NULL) {
		ld->oom = true;
		return;
	}
	l->nrelay_servers = 1;
	l->relay_servers[0].address = strdup(l->relay_upstream);
	if (l->relay_servers[0].address == NULL) {
		ld->oom = true;
		return;
	}
	if (config_split_hostport(l->relay_upstream, &l->relay_servers[0].host, &port, why,
				  sizeof why) < 0) {
		config_error(ld, path, "%s", why);
		return;
	}
	if (l->relay_servers[0].host[0] == '\0')
		config_error(ld, path, "\"%s\": missing host; write host:port (\"minio:9000\")",
			     l->relay_upstream);
	if (strcmp(port, "0") == 0)
		config_error(ld, path, "\"%s\": port must be from 1 to 65535", l->relay_upstream);
	l->relay_servers[0].port = (uint16_t)strtoul(port, NULL, 10);
	free(port);
}

/* The access and relay keys of one listener (after upstreams are known). */
static void
config_parse_listener_access(struct config_loader *ld, const char *path, const json_t *v,
			     struct config_listener *l)
{
	static const char *const tcp_only[] = { "upstream", "idle_timeout", "max_connections",
						"max_connections_per_client", NULL };
	char kp[CONFIG_JPATH_MAX];
	const json_t *f;
	int type = LISTENER_HTTP;
	bool ok;

	if (!json_is_object(v))
		return;
	l->idle_timeout = 600;
	l->max_connections = 10000;
	l->max_connections_per_client = 100;
	if (config_enum(ld, config_jkey(kp, path, "type"), json_object_get(v, "type"),
			config_listener_types, &type))
		l->type = (enum config_listener_type)type;
	ok = config_cidr_list(ld, config_jkey(kp, path, "allow"), json_object_get(v, "allow"),
			      &l->allow, &l->nallow);
	ok = config_cidr_list(ld, config_jkey(kp, path, "deny"), json_object_get(v, "deny"),
			      &l->deny, &l->ndeny) && ok;
	if (ok)
		l->acl = config_build_cidrs(ld, path, l->allow, l->nallow, l->deny, l->ndeny);
	config_bool(ld, config_jkey(kp, path, "proxy_protocol"), json_object_get(v, "proxy_protocol"),
		    &l->proxy_protocol);
	if (l->proxy_protocol && ld->cfg->ntrusted_proxies == 0)
		config_error(ld, kp,
			     "a PROXY header is believed only from trusted proxies; list the "
			     "addresses of the proxies that send it in \"trusted_proxies\"");
	if (l->type != LISTENER_TCP) {
		for (size_t i = 0; tcp_only[i] != NULL; i++)
			if (json_object_get(v, tcp_only[i]) != NULL)
				config_error(ld, config_jkey(kp, path, tcp_only[i]),
					     "only for raw TCP listeners (\"type\": \"tcp\")");
		return;
	}
	if ((f = json_object_get(v, "upstream")) == NULL)
		config_missing(ld, path, "upstream",
			       "where a TCP listener relays to: an upstream name or \"host:port\"");
	else
		config_parse_relay_upstream(ld, config_jkey(kp, path, "upstream"), f, l);
	config_seconds(ld, config_jkey(kp, path, "idle_timeout"), json_object_get(v, "idle_timeout"),
		       &l->idle_timeout);
	if ((f = json_object_get(v, "max_connections")) != NULL)
		config_uint(ld, config_jkey(kp, path, "max_connections"), f, UNIT_COUNT, 1, 10000000,
			    &l->max_connections);
	if ((f = json_object_get(v, "max_connections_per_client")) != NULL)
		config_uint(ld, config_jkey(kp, path, "max_connections_per_client"), f, UNIT_COUNT, 0,
			    10000000, &l->max_connections_per_client);
}

static void
config_parse_listeners_access(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "listeners");
	char ip[CONFIG_JPATH_MAX];

	if (!json_is_array(v) || ld->cfg->listeners == NULL)
		return;
	for (size_t i = 0; i < ld->cfg->nlisteners && i < json_array_size(v); i++)
		config_parse_listener_access(ld, config_jidx(ip, "listeners", i),
					     json_array_get(v, i), &ld->cfg->listeners[i]);
}

static void
config_parse_geoip_header(struct config_loader *ld, const char *key, const json_t *v,
			  char **out)
{
	char kp[CONFIG_JPATH_MAX];
	const json_t *f = json_object_get(v, key);

	if (f == NULL)
		return;
	config_jkey(kp, "geoip", key);
	*out = config_string(ld, kp, f);
	if (*out != NULL && !config_token_ok(*out))
		config_error(ld, kp, "\"%s\" is not a valid header name", *out);
}

static void
config_parse_geoip(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *v = json_object_get(root, "geoip");
	const json_t *f;
	char why[1024];

	if (v == NULL || json_is_null(v) || config_object(ld, "geoip", v, config_geoip_keys) == NULL)
		return;
	if ((f = json_object_get(v, "database")) != NULL)
		cfg->geoip_database = config_string(ld, "geoip.database", f);
	if ((f = json_object_get(v, "asn_database")) != NULL)
		cfg->geoip_asn_database = config_string(ld, "geoip.asn_database", f);
	config_parse_geoip_header(ld, "country_header", v, &cfg->geoip_country_header);
	config_parse_geoip_header(ld, "asn_header", v, &cfg->geoip_asn_header);
	if (json_object_get(v, "database") == NULL && json_object_get(v, "asn_database") == NULL) {
		config_missing(ld, "geoip", "database",
			       "the path of a MaxMind country database (.mmdb)");
		return;
	}
	if ((json_object_get(v, "database") != NULL && cfg->geoip_database == NULL) ||
	    (json_object_get(v, "asn_database") != NULL && cfg->geoip_asn_database == NULL))
		return;
	cfg->geoip = geoip_open(cfg->geoip_database, cfg->geoip_asn_database, why, sizeof why);
	if (cfg->geoip == NULL)
		config_error(ld,
			     cfg->geoip_database != NULL && strstr(why, cfg->geoip_database) == why
				     ? "geoip.database"
				     : "geoip.asn_database",
			     "%s", why);
}

/* ------------------------------------------------------------------ */
/* SAML                                                                 */

static const char *const config_saml_keys[] = {
	"idp_metadata",	    "idp_metadata_cache", "idp_metadata_refresh", "certs_dir",
	"base_url",	    "sp_entity_id",	  "prefix",		  "acs_path",
	"sp_key",	    "sp_cert",		  "session_key_file",	  "session_key_env",
	"cookie_name",	    "session_lifetime",	  "session_idle_timeout", "clock_skew",
	"max_response_age", "allow_sha1",	  "replay_cache_size",	  "headers",
	"require",	    NULL
};
static const char *const config_saml_rule_keys[] = { "attribute", "contains", NULL };

/* Headers the identity may not be written to. */
static const char *const config_refused_identity[] = {
	"Host", "the proxy sets Host",
	"Content-Length", "the proxy frames the request body itself",
	"Transfer-Encoding", "the proxy frames the request body itself",
	"Connection", "a hop-by-hop header the proxy manages",
	"Cookie", "the client's cookies pass through as they are",
	"Authorization", "bearer tokens pass through to the upstream",
	"X-Forwarded-For", "the proxy sets it",
	"X-Forwarded-Proto", "the proxy sets it",
	"X-Forwarded-Host", "the proxy sets it",
	"X-Real-IP", "the proxy sets it",
	"X-Request-ID", "the proxy sets it",
	NULL, NULL
};

/* A duration that may be 0 ("off"). */
static void
config_seconds_or_zero(struct config_loader *ld, const char *path, const json_t *v, double *out)
{
	if (v != NULL && json_is_number(v) && json_number_value(v) == 0) {
		*out = 0;
		return;
	}
	if (v != NULL && json_is_string(v) && strcmp(json_string_value(v), "0") == 0) {
		*out = 0;
		return;
	}
	config_seconds(ld, path, v, out);
}

/* An absolute path for an SP endpoint: "/x", no query, fragment, "//" or
 * white space. */
static bool
config_saml_path_ok(const char *p)
{
	return p[0] == '/' && strpbrk(p, "?#\\ \t\r\n%") == NULL && strstr(p, "//") == NULL &&
	       strstr(p, "/./") == NULL && strstr(p, "/../") == NULL;
}

static char *
config_join_path(struct config_loader *ld, const char *a, const char *b)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s", a, b) < 0) {
		ld->oom = true;
		return NULL;
	}
	return s;
}

static void
config_parse_saml_headers(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	char kp[CONFIG_JPATH_MAX];
	const char *name;
	json_t *value;
	size_t i = 0;

	if (!json_is_object(v)) {
		config_type_error(ld, "saml.headers", "an object of header name: attribute name", v);
		return;
	}
	if (json_object_size(v) == 0)
		return;
	sc->headers = calloc(json_object_size(v), sizeof *sc->headers);
	if (sc->headers == NULL) {
		ld->oom = true;
		return;
	}
	sc->nheaders = json_object_size(v);
	json_object_foreach((json_t *)(uintptr_t)v, name, value) {
		struct config_saml_header *h = &sc->headers[i++];

		config_jkey(kp, "saml.headers", name);
		config_header_name_ok(ld, kp, name, config_refused_identity);
		if ((h->name = strdup(name)) == NULL)
			ld->oom = true;
		h->attribute = config_string(ld, kp, value);
		if (h->attribute != NULL && h->attribute[0] == '\0')
			config_error(ld, kp, "must name an attribute (\"Email\") or \"@nameid\"");
	}
}

static void
config_parse_saml_rules(struct config_loader *ld, struct config_saml *sc, const json_t *v)
{
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	size_t n;

	if (!json_is_array(v)) {
		config_type_error(ld, "saml.require", "an array of {\"attribute\", \"contains\"}", v);
		return;
	}
	n = json_array_size(v);
	if (n == 0)
		return;
	sc->rules = calloc(n, sizeof *sc->rules);
	if (sc->rules == NULL) {
		ld->oom = true;
		return;
	}
	sc->nrules = n;
	for (size_t i = 0; i < n; i++) {
		const json_t *r = json_array_get(v, i);

		config_jidx(ip, "saml.require", i);
		if (config_object(ld, ip, r, config_saml_rule_keys) == NULL)
			continue;
		if (json_object_get(r, "attribute") == NULL)
			config_missing(ld, ip, "attribute", "the attribute to test, e.g. \"Roles\"");
		else
			sc->rules[i].attribute = config_string(ld, config_jkey(kp, ip, "attribute"),
							       json_object_get(r, "attribute"));
		if (json_object_get(r, "contains") == NULL)
			config_missing(ld, ip, "contains", "the value it must hold, e.g. \"posthog-admin\"");
		else
			sc->rules[i].value = config_string(ld, config_jkey(kp, ip, "contains"),
							   json_object_get(r, "contains"));
	}
}

/* Mark the sites that serve the SP endpoints, check routes and "saml" agree. */
static void
config_saml_sites(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	char kp[CONFIG_JPATH_MAX];
	bool any = false;

	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++)
			if (cfg->sites[i].routes[j].auth == AUTH_SAML) {
				cfg->sites[i].saml_endpoints = true;
				any = true;
				if (cfg->saml == NULL) {
					char sp[CONFIG_JPATH_MAX], rp[CONFIG_JPATH_MAX];

					config_jidx(rp, config_jkey(sp, config_jidx(kp, "sites", i), "routes"), j);
					config_error(ld, config_jkey(kp, rp, "auth"),
						     "\"saml\" needs a top-level \"saml\" section "
						     "(docs/saml.md)");
				}
			}
	/* A site that hands requests to a SAML site serves the endpoints too. */
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nroutes; j++) {
			const struct config_route *r = &cfg->sites[i].routes[j];

			if (r->action == ACTION_SITE && r->site != NULL && r->site->saml_endpoints)
				cfg->sites[i].saml_endpoints = true;
		}
	if (cfg->saml != NULL && !any)
		config_error(ld, "saml", "no route has \"auth\": \"saml\"; add it to the routes to "
					 "protect (or remove this section)");
	if (cfg->saml == NULL || ld->nerrors > 0)
		return;
	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct config_site *site = &cfg->sites[i];
		char *login;

		if (!site->saml_endpoints)
			continue;
		login = config_join_path(ld, cfg->saml->prefix, "/login");
		if (login == NULL)
			return;
		/* The endpoints are served after routing (so a site's access rules
		 * apply to them): some route must match them. */
		if (router_match(site, cfg->saml->acs_path, METHOD_POST) == NULL)
			config_error(ld, "saml.acs_path",
				     "no route of site \"%s\" matches POST %s; add a route for it (a "
				     "catch-all route does)",
				     site->name ? site->name : "?", cfg->saml->acs_path);
		if (router_match(site, login, METHOD_GET) == NULL)
			config_error(ld, "saml.prefix",
				     "no route of site \"%s\" matches GET %s; add a route for it (a "
				     "catch-all route does)",
				     site->name ? site->name : "?", login);
		free(login);
	}
}

/* Open the SP (keys, IdP metadata) once everything else is known good. */
static void
config_saml_open(struct config_loader *ld)
{
	struct config_saml *sc = ld->cfg->saml;
	char why[1024];
	const char **attrs = NULL;
	size_t nattrs = 0;
	char *slo = NULL;
	const char *env = NULL;

	if (sc == NULL || ld->nerrors > 0 || ld->oom)
		return;
	if (sc->session_key_env != NULL) {
		env = ld->getenv_fn(sc->session_key_env);
		if (env == NULL || env[0] == '\0') {
			config_error(ld, "saml.session_key_env", "the variable %s is not set",
				     sc->session_key_env);
			return;
		}
	}
	if (sc->certs_dir != NULL && sc->certs_dir[0] != '\0' &&
	    localca_mkdirs(sc->certs_dir, why, sizeof why) < 0) {
		config_error(ld, "saml.certs_dir", "%s", why);
		return;
	}
	if (sc->session_key_file != NULL && strrchr(sc->session_key_file, '/') != NULL) {
		char *dir = strdup(sc->session_key_file);

		if (dir == NULL) {
			ld->oom = true;
			return;
		}
		*strrchr(dir, '/') = '\0';
		if (dir[0] != '\0' && localca_mkdirs(dir, why, sizeof why) < 0) {
			config_error(ld, "saml.session_key_file", "%s", why);
			free(dir);
			return;
		}
		free(dir);
	}
	sc->keys = session_keys_load(sc->session_key_file, env, true, why, sizeof why);
	if (sc->keys == NULL) {
		config_error(ld, "saml.session_key_file", "%s", why);
		return;
	}
	attrs = calloc(sc->nheaders + sc->nrules + 1, sizeof *attrs);
	if (attrs == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < sc->nheaders; i++)
		if (strcmp(sc->headers[i].attribute, "@nameid") != 0)
			attrs[nattrs++] = sc->headers[i].attribute;
	for (size_t i = 0; i < sc->nrules; i++)
		if (strcmp(sc->rules[i].attribute, "@nameid") != 0)
			attrs[nattrs++] = sc->rules[i].attribute;
	if (asprintf(&slo, "%s%s/logout", sc->base_url, sc->prefix) < 0) {
		ld->oom = true;
		free(attrs);
		return;
	}
	{
		struct saml_options o = {
			.idp_metadata = sc->idp_metadata,
			.idp_metadata_cache = sc->idp_metadata_cache,
			.idp_metadata_refresh = sc->idp_metadata_refresh,
			.sp_entity_id = sc->sp_entity_id,
			.acs_url = sc->acs_url,
			.slo_url = slo,
			.sp_key = sc->sp_key,
			.sp_cert = sc->sp_cert,
			.clock_skew = sc->clock_skew,
			.max_age = sc->max_response_age,
			.allow_sha1 = sc->allow_sha1,
			.replay_cache_size = (size_t)sc->replay_cache_size,
			.attributes = attrs,
			.nattributes = nattrs,
		};

		if ((sc->sp = saml_new(&o, why, sizeof why)) == NULL)
			config_error(ld, "saml", "%s", why);
	}
	free(slo);
	free(attrs);
}

static void
config_parse_saml(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "saml");
	const json_t *f;
	struct config_saml *sc;
	char *dir;

	if (v == NULL || json_is_null(v) || config_object(ld, "saml", v, config_saml_keys) == NULL)
		return;
	sc = calloc(1, sizeof *sc);
	if (sc == NULL) {
		ld->oom = true;
		return;
	}
	ld->cfg->saml = sc;
	sc->idp_metadata_refresh = 3600;
	sc->session_lifetime = 8 * 3600;
	sc->session_idle_timeout = 3600;
	sc->clock_skew = 60;
	sc->max_response_age = 300;
	sc->replay_cache_size = 10000;

	if ((f = json_object_get(v, "idp_metadata")) == NULL)
		config_missing(ld, "saml", "idp_metadata",
			       "the IdP metadata: a file path or an https URL");
	else if ((sc->idp_metadata = config_string(ld, "saml.idp_metadata", f)) != NULL &&
		 sc->idp_metadata[0] == '\0')
		config_error(ld, "saml.idp_metadata", "is empty (is SAML_IDP_METADATA set?)");
	if ((f = json_object_get(v, "base_url")) == NULL) {
		config_missing(ld, "saml", "base_url",
			       "the public origin of the protected site, e.g. "
			       "\"https://posthog.example.com\"");
	} else if ((sc->base_url = config_string(ld, "saml.base_url", f)) != NULL) {
		size_t n = strlen(sc->base_url);
		const char *h = strstr(sc->base_url, "://");

		while (n > 0 && sc->base_url[n - 1] == '/')
			sc->base_url[--n] = '\0';
		if ((strncmp(sc->base_url, "https://", 8) != 0 &&
		     strncmp(sc->base_url, "http://", 7) != 0) ||
		    h == NULL || h[3] == '\0' || strchr(h + 3, '/') != NULL ||
		    strpbrk(sc->base_url, "?#\\ \t\r\n\"<>") != NULL)
			config_error(ld, "saml.base_url",
				     "\"%s\" is not an origin; write \"https://host\" or "
				     "\"https://host:port\" (no path)",
				     sc->base_url);
	}
	sc->certs_dir = config_string_or(ld, "saml.certs_dir", json_object_get(v, "certs_dir"), "certs");
	dir = sc->certs_dir ? sc->certs_dir : "certs";
	sc->prefix = config_string_or(ld, "saml.prefix", json_object_get(v, "prefix"), "/saml");
	if (sc->prefix != NULL) {
		size_t n = strlen(sc->prefix);

		while (n > 1 && sc->prefix[n - 1] == '/')
			sc->prefix[--n] = '\0';
		if (!config_saml_path_ok(sc->prefix) || strcmp(sc->prefix, "/") == 0)
			config_error(ld, "saml.prefix", "\"%s\" is not a path like \"/saml\"", sc->prefix);
	}
	if ((f = json_object_get(v, "acs_path")) != NULL) {
		sc->acs_path = config_string(ld, "saml.acs_path", f);
		if (sc->acs_path != NULL && !config_saml_path_ok(sc->acs_path))
			config_error(ld, "saml.acs_path", "\"%s\" is not a path like \"/complete/saml/\"",
				     sc->acs_path);
	} else if (sc->prefix != NULL) {
		sc->acs_path = config_join_path(ld, sc->prefix, "/acs");
	}
	if (sc->base_url != NULL && sc->acs_path != NULL)
		sc->acs_url = config_join_path(ld, sc->base_url, sc->acs_path);
	if ((f = json_object_get(v, "sp_entity_id")) != NULL) {
		sc->sp_entity_id = config_string(ld, "saml.sp_entity_id", f);
		if (sc->sp_entity_id != NULL && sc->sp_entity_id[0] == '\0')
			config_error(ld, "saml.sp_entity_id", "must not be empty");
	} else if (sc->base_url != NULL && sc->prefix != NULL &&
		   asprintf(&sc->sp_entity_id, "%s%s/metadata", sc->base_url, sc->prefix) < 0) {
		sc->sp_entity_id = NULL;
		ld->oom = true;
	}
#define CONFIG_SAML_FILE(field, key, file)                                                       \
	do {                                                                                     \
		if ((f = json_object_get(v, key)) != NULL)                                       \
			sc->field = config_string(ld, "saml." key, f);                           \
		else if (asprintf(&sc->field, "%s/%s", dir, file) < 0) {                         \
			sc->field = NULL;                                                        \
			ld->oom = true;                                                          \
		}                                                                                \
	} while (0)
	CONFIG_SAML_FILE(idp_metadata_cache, "idp_metadata_cache", "saml-idp-metadata.xml");
	CONFIG_SAML_FILE(sp_key, "sp_key", "saml-sp.key");
	CONFIG_SAML_FILE(sp_cert, "sp_cert", "saml-sp.crt");
	CONFIG_SAML_FILE(session_key_file, "session_key_file", "session.key");
#undef CONFIG_SAML_FILE
	if ((f = json_object_get(v, "session_key_env")) != NULL)
		sc->session_key_env = config_string(ld, "saml.session_key_env", f);
	sc->cookie_name = config_string_or(ld, "saml.cookie_name", json_object_get(v, "cookie_name"),
					   "__Host-portcullis-session");
	if (sc->cookie_name != NULL &&
	    (!config_token_ok(sc->cookie_name) || strncmp(sc->cookie_name, "__Host-", 7) != 0))
		config_error(ld, "saml.cookie_name",
			     "\"%s\" must be a cookie name starting with \"__Host-\" (bound to this "
			     "host, Secure, Path=/)",
			     sc->cookie_name);
	config_seconds(ld, "saml.idp_metadata_refresh", json_object_get(v, "idp_metadata_refresh"),
		       &sc->idp_metadata_refresh);
	config_seconds(ld, "saml.session_lifetime", json_object_get(v, "session_lifetime"),
		       &sc->session_lifetime);
	config_seconds_or_zero(ld, "saml.session_idle_timeout",
			       json_object_get(v, "session_idle_timeout"), &sc->session_idle_timeout);
	config_seconds_or_zero(ld, "saml.clock_skew", json_object_get(v, "clock_skew"),
			       &sc->clock_skew);
	config_seconds(ld, "saml.max_response_age", json_object_get(v, "max_response_age"),
		       &sc->max_response_age);
	if (sc->clock_skew > 600)
		config_error(ld, "saml.clock_skew", "%.0f s is more than 600 s; fix the clocks (NTP)",
			     sc->clock_skew);
	config_bool(ld, "saml.allow_sha1", json_object_get(v, "allow_sha1"), &sc->allow_sha1);
	if ((f = json_object_get(v, "replay_cache_size")) != NULL)
		config_uint(ld, "saml.replay_cache_size", f, UNIT_COUNT, 100, 10000000,
			    &sc->replay_cache_size);
	if ((f = json_object_get(v, "headers")) != NULL)
		config_parse_saml_headers(ld, sc, f);
	if ((f = json_object_get(v, "require")) != NULL)
		config_parse_saml_rules(ld, sc, f);
}

/* ------------------------------------------------------------------ */
/* TLS: listeners' "tls" and "redirect_https", sites' "hsts", "tls"     */

static const char *const config_tls_keys[] = { "mode", "certs_dir", "certificates", "local_ca",
					       "acme", "default_name", "ticket_rotate",
					       "watch_interval", NULL };
static const char *const config_tls_modes[] = { "all", "acme", "files", "local", "off", NULL };
static const char *const config_tls_file_keys[] = { "cert", "key", "names", NULL };
static const char *const config_local_ca_keys[] = { "names", "leaf_days", NULL };
static const char *const config_acme_keys[] = { "directory", "email", "ca_bundle", "eab_kid",
						"eab_hmac_key", "challenges", "orders",
						"retry_base", NULL };
static const char *const config_acme_order_keys[] = { "names", NULL };
static const char *const config_acme_challenges[] = { "http-01", "tls-alpn-01", NULL };
static const char *const config_hsts_keys[] = { "max_age", "include_subdomains", "preload",
						NULL };

#define CONFIG_ACME_PRODUCTION "https://acme-v02.api.letsencrypt.org/directory"

/* An optional string: absent, null or "" (an unset ${VAR:-}) give NULL. */
static char *
config_opt_string(struct config_loader *ld, const char *path, const json_t *v)
{
	char *s;

	if (v == NULL || json_is_null(v))
		return NULL;
	s = config_string(ld, path, v);
	if (s != NULL && s[0] == '\0') {
		free(s);
		s = NULL;
	}
	return s;
}

static void
config_lower(char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool
config_is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A list of certificate names at <v>: DNS names (with "*." when
 * <wildcards>) or, with <ips>, IP addresses.  Lower-cased. */
static bool
config_cert_names(struct config_loader *ld, const char *path, const json_t *v, bool wildcards,
		  bool ips, char ***out, size_t *nout)
{
	char ip[CONFIG_JPATH_MAX];
	bool ok = true;

	if (!config_string_list(ld, path, v, true, "an array of host names", out, nout))
		return false;
	for (size_t i = 0; i < *nout; i++) {
		char *n = (*out)[i];
		const char *why = NULL;

		if (n == NULL) {
			ok = false;
			continue;
		}
		config_lower(n);
		config_jidx(ip, path, i);
		if (ips && config_is_ip_literal(n))
			continue;
		if (strncmp(n, "*.", 2) == 0 && !wildcards) {
			config_error(ld, ip,
				     "\"%s\": wildcard names need the DNS-01 challenge, which is not "
				     "supported; list the names",
				     n);
			ok = false;
		} else if (!config_host_name_ok(strncmp(n, "*.", 2) == 0 ? n + 2 : n, false, &why)) {
			config_error(ld, ip, "\"%s\" is not a valid host name: %s", n, why);
			ok = false;
		}
	}
	return ok;
}

static void
config_acme_free(struct config_acme *a)
{
	if (a == NULL)
		return;
	free(a->directory);
	free(a->email);
	free(a->ca_bundle);
	free(a->eab_kid);
	if (a->eab_hmac_key != NULL)
		explicit_bzero(a->eab_hmac_key, strlen(a->eab_hmac_key));
	free(a->eab_hmac_key);
	for (size_t i = 0; a->orders != NULL && i < a->norders; i++)
		config_free_strings(a->orders[i].names, a->orders[i].nnames);
	free(a->orders);
	free(a);
}

static void
config_tls_free(struct config_tls *t)
{
	if (t == NULL)
		return;
	free(t->certs_dir);
	for (size_t i = 0; t->certificates != NULL && i < t->ncertificates; i++) {
		free(t->certificates[i].cert);
		free(t->certificates[i].key);
		config_free_strings(t->certificates[i].names, t->certificates[i].nnames);
	}
	free(t->certificates);
	config_free_strings(t->local_names, t->nlocal_names);
	config_acme_free(t->acme);
	free(t->default_name);
	free(t);
}

static void
config_parse_tls_files(struct config_loader *ld, const json_t *v, struct config_tls *t)
{
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	size_t n;

	if (!json_is_array(v)) {
		config_type_error(ld, "tls.certificates",
				  "an array of {\"cert\": \"chain.pem\", \"key\": \"key.pem\"}", v);
		return;
	}
	n = json_array_size(v);
	if (n == 0)
		return;
	t->certificates = calloc(n, sizeof *t->certificates);
	if (t->certificates == NULL) {
		ld->oom = true;
		return;
	}
	t->ncertificates = n;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		struct config_tls_file *c = &t->certificates[i];
		const json_t *f;

		config_jidx(ip, "tls.certificates", i);
		if (config_object(ld, ip, e, config_tls_file_keys) == NULL)
			continue;
		if ((f = json_object_get(e, "cert")) == NULL) {
			config_missing(ld, ip, "cert", "the path of a PEM certificate chain, leaf first");
			continue;
		}
		c->cert = config_string(ld, config_jkey(kp, ip, "cert"), f);
		if (c->cert != NULL && c->cert[0] == '\0')
			config_error(ld, kp, "is empty; give the path of a PEM certificate chain");
		if ((f = json_object_get(e, "key")) != NULL) {
			c->key = config_string(ld, config_jkey(kp, ip, "key"), f);
			if (c->key != NULL && c->key[0] == '\0')
				config_error(ld, kp, "is empty; give the path of the PEM private key");
		} else if (c->cert != NULL && (c->key = strdup(c->cert)) == NULL) {
			ld->oom = true;
		}
		if ((f = json_object_get(e, "names")) != NULL)
			config_cert_names(ld, config_jkey(kp, ip, "names"), f, true, true, &c->names,
					  &c->nnames);
	}
}

static void
config_parse_local_ca(struct config_loader *ld, const json_t *v, struct config_tls *t)
{
	const json_t *f;
	uint64_t days = 7;

	if (json_is_boolean(v) || json_is_string(v)) {
		config_bool(ld, "tls.local_ca", v, &t->local_ca);
		return;
	}
	if (config_object(ld, "tls.local_ca", v, config_local_ca_keys) == NULL)
		return;
	t->local_ca = true;
	if ((f = json_object_get(v, "names")) != NULL)
		config_cert_names(ld, "tls.local_ca.names", f, true, true, &t->local_names,
				  &t->nlocal_names);
	if ((f = json_object_get(v, "leaf_days")) != NULL &&
	    config_uint(ld, "tls.local_ca.leaf_days", f, UNIT_COUNT, 1, 397, &days))
		t->local_leaf_days = (unsigned)days;
}

static void
config_parse_acme(struct config_loader *ld, const json_t *v, struct config_tls *t)
{
	struct config_acme *a = calloc(1, sizeof *a);
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	const json_t *f;

	if (a == NULL) {
		ld->oom = true;
		return;
	}
	t->acme = a;
	if (v != NULL && config_object(ld, "tls.acme", v, config_acme_keys) == NULL)
		return;
	a->directory = config_opt_string(ld, "tls.acme.directory",
					 v ? json_object_get(v, "directory") : NULL);
	if (a->directory == NULL && !ld->oom && (a->directory = strdup(CONFIG_ACME_PRODUCTION)) == NULL)
		ld->oom = true;
	if (a->directory != NULL && strncmp(a->directory, "https://", 8) != 0)
		config_error(ld, "tls.acme.directory",
			     "\"%s\" is not an https:// URL (ACME directories are served over HTTPS; "
			     "Let's Encrypt: %s)",
			     a->directory, CONFIG_ACME_PRODUCTION);
	if (v == NULL)
		return;
	a->email = config_opt_string(ld, "tls.acme.email", json_object_get(v, "email"));
	if (a->email != NULL && (strchr(a->email, '@') == NULL || strpbrk(a->email, " \t,<>") != NULL))
		config_error(ld, "tls.acme.email", "\"%s\" is not an e-mail address", a->email);
	a->ca_bundle = config_opt_string(ld, "tls.acme.ca_bundle", json_object_get(v, "ca_bundle"));
	if (a->ca_bundle != NULL && access(a->ca_bundle, R_OK) != 0)
		config_error(ld, "tls.acme.ca_bundle", "cannot read %s: %s", a->ca_bundle,
			     strerror(errno));
	a->eab_kid = config_opt_string(ld, "tls.acme.eab_kid", json_object_get(v, "eab_kid"));
	a->eab_hmac_key = config_opt_string(ld, "tls.acme.eab_hmac_key",
					    json_object_get(v, "eab_hmac_key"));
	if ((a->eab_kid == NULL) != (a->eab_hmac_key == NULL))
		config_error(ld, a->eab_kid ? "tls.acme.eab_hmac_key" : "tls.acme.eab_kid",
			     "External Account Binding needs both \"eab_kid\" and \"eab_hmac_key\"");
	if ((f = json_object_get(v, "challenges")) != NULL) {
		if (!json_is_array(f) || json_array_size(f) == 0) {
			config_type_error(ld, "tls.acme.challenges",
					  "a non-empty array of \"http-01\", \"tls-alpn-01\"", f);
		} else {
			for (size_t i = 0; i < json_array_size(f); i++) {
				int c = 0;

				if (config_enum(ld, config_jidx(ip, "tls.acme.challenges", i),
						json_array_get(f, i), config_acme_challenges, &c))
					a->challenges |= 1u << c;
			}
		}
	}
	if ((f = json_object_get(v, "retry_base")) != NULL) {
		uint64_t s = 0;

		if (config_uint(ld, "tls.acme.retry_base", f, UNIT_COUNT, 1, 86400, &s))
			a->retry_base = (unsigned)s;
	}
	if ((f = json_object_get(v, "orders")) != NULL) {
		if (!json_is_array(f) || json_array_size(f) == 0) {
			config_type_error(ld, "tls.acme.orders",
					  "a non-empty array of {\"names\": [\"example.com\", ...]}", f);
			return;
		}
		a->orders = calloc(json_array_size(f), sizeof *a->orders);
		if (a->orders == NULL) {
			ld->oom = true;
			return;
		}
		a->norders = json_array_size(f);
		for (size_t i = 0; i < a->norders; i++) {
			const json_t *o = json_array_get(f, i);

			config_jidx(ip, "tls.acme.orders", i);
			if (config_object(ld, ip, o, config_acme_order_keys) == NULL)
				continue;
			if (json_object_get(o, "names") == NULL)
				config_missing(ld, ip, "names", "the DNS names of one certificate");
			else
				config_cert_names(ld, config_jkey(kp, ip, "names"),
						  json_object_get(o, "names"), false, false,
						  &a->orders[i].names, &a->orders[i].nnames);
		}
	}
}

/* The non-wildcard, non-IP hosts of site <s> (borrowed pointers) into <out>. */
static size_t
config_site_plain_hosts(const struct config_site *s, const char **out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nhosts; i++)
		if (s->hosts[i] != NULL && strncmp(s->hosts[i], "*.", 2) != 0 &&
		    !config_is_ip_literal(s->hosts[i]))
			out[n++] = s->hosts[i];
	return n;
}

static bool
config_strdup_list(const char *const *in, size_t n, char ***out, size_t *nout)
{
	*out = calloc(n ? n : 1, sizeof **out);
	if (*out == NULL)
		return false;
	*nout = n;
	for (size_t i = 0; i < n; i++)
		if (((*out)[i] = strdup(in[i])) == NULL)
			return false;
	return true;
}

/* Defaults taken from the sites: local CA names, one ACME order per site. */
static void
config_tls_defaults(struct config_loader *ld, struct config_tls *t)
{
	const struct config *cfg = ld->cfg;
	size_t total = 0;
	const char **hosts;

	for (size_t i = 0; i < cfg->nsites; i++)
		total += cfg->sites[i].nhosts;
	hosts = calloc(total + 1, sizeof *hosts);
	if (hosts == NULL) {
		ld->oom = true;
		return;
	}
	if (t->local_ca && t->local_names == NULL) {
		size_t n = 0;

		for (size_t i = 0; i < cfg->nsites; i++) {
			for (size_t j = 0; j < cfg->sites[i].nhosts; j++) {
				const char *h = cfg->sites[i].hosts[j];

				if (h != NULL && strncmp(h, "*.", 2) != 0)
					hosts[n++] = h;
			}
		}
		if (n > 0 && !config_strdup_list(hosts, n, &t->local_names, &t->nlocal_names))
			ld->oom = true;
	}
	if (t->acme != NULL && t->acme->orders == NULL) {
		struct config_acme *a = t->acme;

		a->orders = calloc(cfg->nsites ? cfg->nsites : 1, sizeof *a->orders);
		if (a->orders == NULL) {
			ld->oom = true;
			goto out;
		}
		for (size_t i = 0; i < cfg->nsites; i++) {
			size_t n = config_site_plain_hosts(&cfg->sites[i], hosts);

			if (n == 0)
				continue;
			if (!config_strdup_list(hosts, n, &a->orders[a->norders].names,
						&a->orders[a->norders].nnames))
				ld->oom = true;
			a->norders++;
		}
		if (a->norders == 0)
			config_error(ld, "tls.acme",
				     "no site has a host name to order a certificate for (wildcards and "
				     "IP addresses cannot be ordered); add \"orders\"");
	}
out:
	free(hosts);
}

/* The "tls" block (after the sites).  Returns its mode. */
static int
config_parse_tls(struct config_loader *ld, const json_t *root)
{
	const json_t *v = json_object_get(root, "tls");
	struct config_tls *t;
	const json_t *f;
	int mode = TLS_MODE_ALL;

	if (v == NULL || json_is_null(v))
		return TLS_MODE_ALL;
	if (config_object(ld, "tls", v, config_tls_keys) == NULL)
		return TLS_MODE_ALL;
	config_enum(ld, "tls.mode", json_object_get(v, "mode"), config_tls_modes, &mode);
	if (mode == TLS_MODE_OFF)
		return mode;
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		ld->oom = true;
		return mode;
	}
	ld->cfg->tls = t;
	t->mode = (enum config_tls_mode)mode;
	t->watch_interval = 5;
	t->certs_dir = config_string_or(ld, "tls.certs_dir", json_object_get(v, "certs_dir"), "certs");
	if (t->certs_dir != NULL && t->certs_dir[0] == '\0')
		config_error(ld, "tls.certs_dir", "is empty; give a folder such as \"certs\"");
	t->default_name = config_opt_string(ld, "tls.default_name", json_object_get(v, "default_name"));
	config_lower(t->default_name);
	if ((f = json_object_get(v, "ticket_rotate")) != NULL) {
		uint64_t s = 0;

		if (config_uint(ld, "tls.ticket_rotate", f, UNIT_COUNT, 60, 7 * 86400, &s))
			t->ticket_rotate = (unsigned)s;
	}
	if (config_seconds(ld, "tls.watch_interval", json_object_get(v, "watch_interval"),
			   &t->watch_interval) &&
	    (t->watch_interval < 0.1 || t->watch_interval > 3600))
		config_error(ld, "tls.watch_interval", "%g s is out of range (0.1 to 3600 seconds)",
			     t->watch_interval);
	if ((mode == TLS_MODE_ALL || mode == TLS_MODE_FILES) &&
	    (f = json_object_get(v, "certificates")) != NULL)
		config_parse_tls_files(ld, f, t);
	if (mode == TLS_MODE_ALL || mode == TLS_MODE_LOCAL) {
		if ((f = json_object_get(v, "local_ca")) != NULL)
			config_parse_local_ca(ld, f, t);
		if (mode == TLS_MODE_LOCAL)
			t->local_ca = true;
	}
	if ((mode == TLS_MODE_ALL && (f = json_object_get(v, "acme")) != NULL && !json_is_null(f) &&
	     !json_is_false(f)) ||
	    mode == TLS_MODE_ACME)
		config_parse_acme(ld, json_is_object(json_object_get(v, "acme")) ? json_object_get(v, "acme")
										  : NULL,
				  t);
	if (mode == TLS_MODE_FILES && t->ncertificates == 0)
		config_error(ld, "tls.certificates",
			     "\"mode\": \"files\" needs at least one {\"cert\", \"key\"} entry");
	else if (mode == TLS_MODE_ALL && t->ncertificates == 0 && !t->local_ca && t->acme == NULL)
		config_error(ld, "tls",
			     "no certificate source: add \"certificates\", \"local_ca\": true or "
			     "\"acme\"");
	config_tls_defaults(ld, t);
	return mode;
}

static void
config_parse_hsts(struct config_loader *ld, const char *path, const json_t *v,
		  struct config_hsts *h)
{
	const json_t *f;
	char kp[CONFIG_JPATH_MAX];

	if (v == NULL || json_is_null(v) || config_object(ld, path, v, config_hsts_keys) == NULL)
		return;
	h->enabled = true;
	h->max_age = 31536000;
	if ((f = json_object_get(v, "max_age")) != NULL)
		config_uint(ld, config_jkey(kp, path, "max_age"), f, UNIT_COUNT, 0, 2 * 31536000ULL,
			    &h->max_age);
	config_bool(ld, config_jkey(kp, path, "include_subdomains"),
		    json_object_get(v, "include_subdomains"), &h->include_subdomains);
	config_bool(ld, config_jkey(kp, path, "preload"), json_object_get(v, "preload"), &h->preload);
	if (h->preload && (!h->include_subdomains || h->max_age < 31536000))
		config_error(ld, config_jkey(kp, path, "preload"),
			     "preload lists take only \"include_subdomains\": true with a \"max_age\" "
			     "of at least 31536000 (one year)");
}

/* Drop listener <i> (its "tls" is off with "mode": "off"). */
static void
config_drop_listener(struct config *cfg, size_t i)
{
	config_listener_clear(&cfg->listeners[i]);
	memmove(&cfg->listeners[i], &cfg->listeners[i + 1],
		(cfg->nlisteners - i - 1) * sizeof *cfg->listeners);
	cfg->nlisteners--;
	for (size_t j = 0; j < cfg->nlisteners; j++)
		cfg->listeners[j].index = j;
}

/* The "tls" block, listeners' "tls" and "redirect_https", sites' "hsts". */
static void
config_finish_tls(struct config_loader *ld, const json_t *root)
{
	struct config *cfg = ld->cfg;
	const json_t *lv = json_object_get(root, "listeners");
	const json_t *sv = json_object_get(root, "sites");
	char ip[CONFIG_JPATH_MAX], kp[CONFIG_JPATH_MAX];
	int mode = config_parse_tls(ld, root);
	bool any_tls = false;
	size_t nlisteners = cfg->nlisteners;
	bool *drop;

	for (size_t i = 0; json_is_array(sv) && i < cfg->nsites && i < json_array_size(sv); i++)
		config_parse_hsts(ld, config_jkey(kp, config_jidx(ip, "sites", i), "hsts"),
				  json_object_get(json_array_get(sv, i), "hsts"), &cfg->sites[i].hsts);
	if (!json_is_array(lv) || cfg->listeners == NULL)
		return;
	for (size_t i = 0; i < nlisteners && i < json_array_size(lv); i++) {
		struct config_listener *l = &cfg->listeners[i];
		const json_t *e = json_array_get(lv, i);

		if (!json_is_object(e))
			continue;
		config_jidx(ip, "listeners", i);
		config_bool(ld, config_jkey(kp, ip, "tls"), json_object_get(e, "tls"), &l->tls);
		config_bool(ld, config_jkey(kp, ip, "redirect_https"),
			    json_object_get(e, "redirect_https"), &l->redirect_https);
		any_tls = any_tls || l->tls;
	}
	drop = calloc(nlisteners + 1, sizeof *drop);
	if (drop == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < nlisteners; i++) {
		struct config_listener *l = &cfg->listeners[i];

		config_jidx(ip, "listeners", i);
		if (l->type == LISTENER_TCP && l->redirect_https) {
			config_error(ld, config_jkey(kp, ip, "redirect_https"),
				     "only for HTTP listeners (a \"tcp\" listener relays bytes as they "
				     "are)");
			continue;
		}
		if (l->type == LISTENER_TCP && l->tls && l->proxy_protocol) {
			config_error(ld, config_jkey(kp, ip, "tls"),
				     "not together with \"proxy_protocol\" on a \"tcp\" listener");
			continue;
		}
		if (l->tls && l->redirect_https) {
			config_error(ld, config_jkey(kp, ip, "redirect_https"),
				     "only for plain-HTTP listeners; this one has \"tls\": true");
			continue;
		}
		if (mode == TLS_MODE_OFF) {
			drop[i] = l->tls;
			l->redirect_https = false;
			continue;
		}
		if (l->tls && cfg->tls == NULL && json_object_get(root, "tls") == NULL)
			config_error(ld, config_jkey(kp, ip, "tls"),
				     "no \"tls\" block; add one with the certificates to serve, e.g. "
				     "\"tls\": {\"local_ca\": true} (docs/tls.md)");
		if (l->redirect_https && !any_tls)
			config_error(ld, config_jkey(kp, ip, "redirect_https"),
				     "no listener has \"tls\": true to redirect to");
	}
	if (mode == TLS_MODE_OFF && any_tls) {
		for (size_t i = nlisteners; i-- > 0;) {
			if (drop[i]) {
				config_drop_listener(cfg, i);
				cfg->tls_listeners_off++;
			}
		}
		if (cfg->nlisteners == 0)
			config_error(ld, "tls.mode",
				     "is \"off\" and every listener has \"tls\": true: nothing is left "
				     "to listen on");
	}
	free(drop);
}

/* ------------------------------------------------------------------ */
/* Entry points                                                         */

static struct config *
config_load_json(struct config_loader *ld, json_t *root)
{
	struct config *cfg = calloc(1, sizeof *cfg);

	if (cfg == NULL) {
		ld->oom = true;
		return NULL;
	}
	ld->cfg = cfg;
	atomic_init(&cfg->refs, 1);
	cfg->source = strdup(ld->source);
	if (cfg->source == NULL)
		ld->oom = true;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->max_request_header_bytes = 64 * CONFIG_KIB;
	cfg->max_response_header_bytes = 64 * CONFIG_KIB;
	cfg->max_body_bytes = 64 * CONFIG_MIB;
	cfg->body_memory_budget = CONFIG_GIB;
	cfg->rate_limit_clients = 65536;
	cfg->connect_timeout = 5;
	cfg->upstream_response_timeout = 60;
	cfg->upstream_idle_timeout = 4; /* below Node's 5 s keep-alive: we close first */
	cfg->client_timeout = 30;
	cfg->drain_timeout = 30;

	config_check_keys(ld, "", root, config_top_keys);
	config_parse_listeners(ld, root);
	config_parse_workers(ld, root);
	config_parse_log(ld, root);
	config_parse_limits(ld, root);
	config_parse_timeouts(ld, root);
	config_parse_trusted(ld, root);
	config_parse_upstreams(ld, root);
	config_parse_listeners_access(ld, root);
	config_parse_geoip(ld, root);
	config_parse_sites(ld, root);
	config_finish_tls(ld, root);
	config_parse_saml(ld, root);
	config_saml_sites(ld);
	config_saml_open(ld);
	if (ld->rate_ids > 0 && !ld->oom && ld->nerrors == 0) {
		cfg->ratelimit = ratelimit_new((size_t)cfg->rate_limit_clients);
		if (cfg->ratelimit == NULL)
			ld->oom = true;
	}
	return cfg;
}

static void
config_loader_clear(struct config_loader *ld)
{
	for (size_t i = 0; i < ld->nrefs; i++) {
		free(ld->refs[i].target);
		free(ld->refs[i].path);
	}
	free(ld->refs);
	config_free_strings(ld->route_paths, ld->nroute_paths);
	free(ld->errs);
}

/* Check the root and turn the loader's outcome into the return value. */
static struct config *
config_finish(struct config_loader *ld, json_t *root, const json_error_t *jerr, char *err,
	      size_t errlen)
{
	struct config *cfg = NULL;

	if (errlen > 0)
		err[0] = '\0';
	if (root == NULL) {
		snprintf(err, errlen, "%s:%d:%d: %s", ld->source, jerr->line, jerr->column,
			 jerr->text);
		return NULL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: the top level must be an object, found %s", ld->source,
			 config_json_kind(root));
		return NULL;
	}
	cfg = config_load_json(ld, root);
	if (ld->nerrors > 0 || ld->oom) {
		config_err_finish(ld, err, errlen);
		config_free(cfg);
		cfg = NULL;
	}
	config_loader_clear(ld);
	return cfg;
}

/*
 * Read and check the file at <path>.  Returns a new config with one
 * reference, or NULL with every error found in <err>.
 */
struct config *
config_load_file(const char *path, char *err, size_t errlen,
		 const char *(*getenv_fn)(const char *name))
{
	struct config_loader ld = { .source = path, .getenv_fn = getenv_fn };
	json_error_t jerr;
	json_t *root;
	struct config *cfg;
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	fclose(fp);
	cfg = config_finish(&ld, root, &jerr, err, errlen);
	json_decref(root);
	return cfg;
}

/* Same as config_load_file, from a string named <source> in errors. */
struct config *
config_load_string(const char *json, const char *source, char *err, size_t errlen,
		   const char *(*getenv_fn)(const char *name))
{
	struct config_loader ld = { .source = source != NULL ? source : "(string)",
				    .getenv_fn = getenv_fn };
	json_error_t jerr;
	json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	struct config *cfg = config_finish(&ld, root, &jerr, err, errlen);

	json_decref(root);
	return cfg;
}

/* Take one more reference. */
struct config *
config_ref(struct config *cfg)
{
	if (cfg != NULL)
		atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

/* Drop a reference; the last one frees everything.  Accepts NULL. */
void
config_unref(struct config *cfg)
{
	if (cfg != NULL && atomic_fetch_sub(&cfg->refs, 1) == 1)
		config_free(cfg);
}

/* The upstream called <name>, or NULL. */
struct config_upstream *
config_find_upstream(const struct config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nupstreams; i++)
		if (cfg->upstreams[i].name != NULL && strcmp(cfg->upstreams[i].name, name) == 0)
			return &cfg->upstreams[i];
	return NULL;
}

/* Bit for a method name ("GET"), or 0 when it is not one we forward. */
unsigned
config_method_bit(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{ "GET", METHOD_GET },	     { "HEAD", METHOD_HEAD },	{ "POST", METHOD_POST },
		{ "PUT", METHOD_PUT },	     { "PATCH", METHOD_PATCH }, { "DELETE", METHOD_DELETE },
		{ "OPTIONS", METHOD_OPTIONS },
	};

	if (name == NULL)
		return 0;
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(name, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

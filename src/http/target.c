/* target: request-target forms (RFC 9112 3.2); see target.h. */
#include "http/target.h"

#include <string.h>
#include <strings.h>

static bool
scheme_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

enum target_error
target_split(const char *target, struct target_parts *out)
{
	size_t n = 0, alen;
	const char *auth;

	memset(out, 0, sizeof(*out));
	out->rest = target;
	if (target[0] == '/') {
		out->form = TARGET_ORIGIN;
		return TARGET_OK;
	}
	if (strcmp(target, "*") == 0) {
		out->form = TARGET_ASTERISK;
		return TARGET_OK;
	}
	while (target[n] != '\0' && scheme_char(target[n], n == 0))
		n++;
	if (n == 0 || target[n] != ':') {
		out->form = TARGET_OTHER;
		return TARGET_OK;
	}
	/* "scheme:" followed by digits only is authority-form ("host:443"). */
	if (strspn(target + n + 1, "0123456789") == strlen(target + n + 1)) {
		out->form = TARGET_OTHER;
		return TARGET_OK;
	}
	out->form = TARGET_ABSOLUTE;
	if (n == 5 && strncasecmp(target, "https", 5) == 0)
		out->https = true;
	else if (!(n == 4 && strncasecmp(target, "http", 4) == 0))
		return TARGET_SCHEME;
	if (strncmp(target + n + 1, "//", 2) != 0)
		return TARGET_NO_AUTHORITY;
	auth = target + n + 3;
	alen = strcspn(auth, "/?#");
	if (alen == 0)
		return TARGET_NO_AUTHORITY;
	if (memchr(auth, '@', alen) != NULL)
		return TARGET_USERINFO;
	out->authority = auth;
	out->authority_len = alen;
	out->rest = auth + alen;
	return TARGET_OK;
}

const char *
target_reason(enum target_error error)
{
	switch (error) {
	case TARGET_OK:
		return "ok";
	case TARGET_SCHEME:
		return "only http and https request targets are served";
	case TARGET_USERINFO:
		return "user information in the request target is not accepted";
	case TARGET_NO_AUTHORITY:
		return "the request target has no host";
	}
	return "malformed request target";
}

int
target_port(const char *hostport, int default_port)
{
	const char *p;
	long port = 0;

	if (hostport[0] == '[') {
		p = strchr(hostport, ']');
		if (p == NULL)
			return -1;
		p++;
		if (*p != '\0' && *p != ':')
			return -1;
	} else {
		p = strchr(hostport, ':');
	}
	if (p == NULL || *p == '\0' || p[1] == '\0')
		return default_port;
	for (p++; *p; p++) {
		if (*p < '0' || *p > '9' || port > 65535)
			return -1;
		port = port * 10 + (*p - '0');
	}
	return port >= 1 && port <= 65535 ? (int)port : -1;
}

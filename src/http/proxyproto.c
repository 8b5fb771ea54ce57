/* proxyproto: PROXY protocol v1/v2 header parser; see proxyproto.h. */
#include "http/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static const unsigned char proxyproto_v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
						    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
#define PROXYPROTO_V1_MAX 107

static enum proxyproto_result
proxyproto_fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return PROXYPROTO_INVALID;
}

/* Decimal port 0..65535 without sign or leading zeros (other than "0"). */
static bool
proxyproto_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static bool
proxyproto_v1_addr(int family, const char *text, const char *port, struct sockaddr_storage *ss)
{
	uint16_t p;

	memset(ss, 0, sizeof(*ss));
	if (!proxyproto_port(port, &p))
		return false;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(p);
	return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
}

static enum proxyproto_result
proxyproto_v1(const unsigned char *buf, size_t len, struct proxyproto_info *info, const char **why)
{
	char line[PROXYPROTO_V1_MAX + 1];
	char *field[6];
	size_t end = 0, nf = 0;
	char *p, *save = NULL;
	int family;

	/* the CRLF must end within PROXYPROTO_V1_MAX bytes: LF at most at index MAX - 1 */
	while (end + 1 < len && end + 2 < PROXYPROTO_V1_MAX && !(buf[end] == '\r' && buf[end + 1] == '\n'))
		end++;
	if (end + 1 >= len || !(buf[end] == '\r' && buf[end + 1] == '\n')) {
		if (len < PROXYPROTO_V1_MAX)
			return PROXYPROTO_NEED_MORE;
		return proxyproto_fail(why, "v1 header longer than 107 bytes");
	}
	for (size_t i = 0; i < end; i++)
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return proxyproto_fail(why, "v1 header has a control or non-ASCII byte");
	memcpy(line, buf, end);
	line[end] = '\0';
	if (strstr(line, "  ") != NULL)
		return proxyproto_fail(why, "v1 header has doubled spaces");
	for (p = strtok_r(line, " ", &save); p != NULL; p = strtok_r(NULL, " ", &save)) {
		if (nf == 6)
			return proxyproto_fail(why, "v1 header has too many fields");
		field[nf++] = p;
	}
	memset(info, 0, sizeof(*info));
	info->header_len = end + 2;
	if (nf >= 2 && strcmp(field[1], "UNKNOWN") == 0)
		return PROXYPROTO_OK; /* the rest of the line is ignored, as the spec says */
	if (nf != 6)
		return proxyproto_fail(why, "v1 header needs 6 fields");
	if (strcmp(field[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(field[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return proxyproto_fail(why, "v1 protocol must be TCP4, TCP6 or UNKNOWN");
	if (!proxyproto_v1_addr(family, field[2], field[4], &info->src) ||
	    !proxyproto_v1_addr(family, field[3], field[5], &info->dst))
		return proxyproto_fail(why, "v1 header has a bad address or port");
	info->has_address = true;
	return PROXYPROTO_OK;
}

static enum proxyproto_result
proxyproto_v2(const unsigned char *buf, size_t len, struct proxyproto_info *info, const char **why)
{
	size_t body, total;
	unsigned cmd, fam;

	if (len < 16)
		return PROXYPROTO_NEED_MORE;
	if ((buf[12] & 0xf0) != 0x20)
		return proxyproto_fail(why, "v2 header has an unknown version");
	cmd = buf[12] & 0x0f;
	fam = buf[13];
	body = ((size_t)buf[14] << 8) | buf[15];
	total = 16 + body;
	if (cmd > 1)
		return proxyproto_fail(why, "v2 header has an unknown command");
	if (total > PROXYPROTO_MAX_HEADER)
		return proxyproto_fail(why, "v2 header too long");
	if (len < total)
		return PROXYPROTO_NEED_MORE;
	memset(info, 0, sizeof(*info));
	info->header_len = total;
	if (cmd == 0)
		return PROXYPROTO_OK; /* LOCAL: a health check from the proxy itself */
	switch (fam) {
	case 0x11: { /* TCP over IPv4 */
		struct sockaddr_in *s = (struct sockaddr_in *)&info->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&info->dst;

		if (body < 12)
			return proxyproto_fail(why, "v2 header too short for IPv4 addresses");
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, buf + 16, 4);
		memcpy(&d->sin_addr, buf + 20, 4);
		memcpy(&s->sin_port, buf + 24, 2);
		memcpy(&d->sin_port, buf + 26, 2);
		info->has_address = true;
		return PROXYPROTO_OK;
	}
	case 0x21: { /* TCP over IPv6 */
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&info->dst;

		if (body < 36)
			return proxyproto_fail(why, "v2 header too short for IPv6 addresses");
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, buf + 16, 16);
		memcpy(&d->sin6_addr, buf + 32, 16);
		memcpy(&s->sin6_port, buf + 48, 2);
		memcpy(&d->sin6_port, buf + 50, 2);
		info->has_address = true;
		return PROXYPROTO_OK;
	}
	case 0x00:
		return PROXYPROTO_OK; /* UNSPEC: keep the socket peer */
	default:
		return proxyproto_fail(why, "v2 header carries a protocol other than TCP");
	}
}

enum proxyproto_result
proxyproto_parse(const unsigned char *buf, size_t len, struct proxyproto_info *info,
		 const char **why)
{
	static const char v1[] = "PROXY ";
	size_t n;

	if (len == 0)
		return PROXYPROTO_NEED_MORE;
	n = len < sizeof(proxyproto_v2_sig) ? len : sizeof(proxyproto_v2_sig);
	if (memcmp(buf, proxyproto_v2_sig, n) == 0)
		return n < sizeof(proxyproto_v2_sig) ? PROXYPROTO_NEED_MORE
						     : proxyproto_v2(buf, len, info, why);
	n = len < sizeof(v1) - 1 ? len : sizeof(v1) - 1;
	if (memcmp(buf, v1, n) == 0)
		return n < sizeof(v1) - 1 ? PROXYPROTO_NEED_MORE : proxyproto_v1(buf, len, info, why);
	return proxyproto_fail(why, "no PROXY protocol header");
}

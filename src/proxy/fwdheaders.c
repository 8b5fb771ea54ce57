/* fwdheaders: the client's headers upstream and the proxy's own; see fwdheaders.h. */
#include "proxy/fwdheaders.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "access/ipacl.h"

static bool
fwdheaders_ops_listed(const struct config_header_ops *ops, const char *name)
{
	for (size_t i = 0; i < ops->nremove; i++)
		if (strcasecmp(ops->remove[i], name) == 0)
			return true;
	for (size_t i = 0; i < ops->nset; i++)
		if (strcasecmp(ops->set[i].name, name) == 0)
			return true;
	return false;
}

const char *
fwdheaders_dropped(const struct fwdheaders_rules *r, const char *name)
{
	const struct config *cfg = r->cfg;
	unsigned flags = headers_owned_flags(name);

	if (flags & (HEADERS_HOP_BY_HOP | HEADERS_PROXY_SETS)) {
		const struct headers_owned *row = headers_owned_find(name);

		return row ? row->why : "the proxy owns it";
	}
	/* Names with "_" are dropped (nginx's default too): CGI, WSGI, Rack
	 * and PHP read X_Auth_Email as X-Auth-Email, so a client could pass
	 * off its own copy of a header we control. */
	if (strchr(name, '_') != NULL)
		return "\"_\" in the name (CGI-style servers would read it as \"-\")";
	if ((cfg->geoip_country_header && strcasecmp(name, cfg->geoip_country_header) == 0) ||
	    (cfg->geoip_asn_header && strcasecmp(name, cfg->geoip_asn_header) == 0))
		return "only the proxy says where the client is (geoip header)";
	if (r->conn && r->conn->n && headers_connection_has(r->conn, name))
		return "listed in the client's Connection header (hop-by-hop)";
	if ((name[0] | 0x20) == 't' && strcasecmp(name, "traceparent") == 0)
		return "the proxy sends its own span's traceparent";
	if (!r->trace_continued && (name[0] | 0x20) == 't' && strcasecmp(name, "tracestate") == 0)
		return "a tracestate goes on only with a valid traceparent";
	if (r->drop_cookies && strcasecmp(name, "cookie") == 0)
		return "the route has \"drop_cookies\"";
	if ((r->jump_ops && fwdheaders_ops_listed(r->jump_ops, name)) ||
	    fwdheaders_ops_listed(r->route_ops, name))
		return "the route's request_headers set or remove it";
	/* A made-up key comes with its own version (HTTP/2 clients send a
	 * version, RFC 8441, but no key). */
	if (r->ws_made_up_key && (name[0] | 0x20) == 's' &&
	    (strcasecmp(name, "sec-websocket-version") == 0 ||
	     strcasecmp(name, "sec-websocket-key") == 0))
		return "the WebSocket upgrade upstream carries a key made up by the proxy";
	return NULL;
}

void
fwdheaders_own_each(const struct config *cfg, const struct fwdheaders_own *own,
		    void (*add)(void *arg, const char *name, const char *value, const char *more),
		    void *arg)
{
	if (own->forwarded_for)
		add(arg, "X-Forwarded-For", own->forwarded_for, own->peer);
	else
		add(arg, "X-Forwarded-For", own->client, NULL);
	add(arg, "X-Real-IP", own->client, NULL);
	add(arg, "X-Forwarded-Proto", own->proto ? own->proto : own->tls ? "https" : "http", NULL);
	if (own->fwd_host || own->host_header)
		add(arg, "X-Forwarded-Host", own->fwd_host ? own->fwd_host : own->host_header, NULL);
	add(arg, "X-Forwarded-Port", own->fwd_port ? own->fwd_port : own->listener_port, NULL);
	add(arg, "X-Request-ID", own->request_id, NULL);
	add(arg, "traceparent", own->traceparent, NULL);
	if (own->cert_subject != NULL) {
		add(arg, "X-Client-Cert-Subject", own->cert_subject, NULL);
		add(arg, "X-Client-Cert-SHA256", own->cert_sha256, NULL);
		if (own->cert_san != NULL && own->cert_san[0] != '\0')
			add(arg, "X-Client-Cert-SAN", own->cert_san, NULL);
	}
	if (cfg->geoip_country_header && own->country[0])
		add(arg, cfg->geoip_country_header, own->country, NULL);
	if (cfg->geoip_asn_header && own->asn) {
		char asn[24];

		snprintf(asn, sizeof(asn), "%llu", (unsigned long long)own->asn);
		add(arg, cfg->geoip_asn_header, asn, NULL);
	}
}

/* True when <s> (len bytes) is an IP address; copies it to out. */
static bool
fwdheaders_ip_token(const char *s, size_t len, char *out, size_t outlen)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (len == 0 || len >= outlen)
		return false;
	memcpy(out, s, len);
	out[len] = '\0';
	return inet_pton(AF_INET, out, buf) == 1 || inet_pton(AF_INET6, out, buf) == 1;
}

void
fwdheaders_client(const struct ipacl *trusted, const char *xff, char *client, size_t len)
{
	const char *end = xff + strlen(xff);
	char candidate[INET6_ADDRSTRLEN];

	while (end > xff) {
		const char *start = end;
		const char *a, *b;
		size_t n;

		while (start > xff && start[-1] != ',')
			start--;
		a = start;
		b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (!fwdheaders_ip_token(a, (size_t)(b - a), candidate, sizeof(candidate)))
			return;
		n = strlen(candidate);
		if (n >= len)
			return;
		memcpy(client, candidate, n + 1);
		if (!ipacl_contains_str(trusted, candidate))
			return;
		end = start > xff ? start - 1 : xff;
	}
}

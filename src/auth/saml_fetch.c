/*
 * saml_fetch: GET of the IdP metadata URL (https, or plain http to a loopback
 * address only) on libcurl's easy interface, blocking, with timeouts and a
 * size limit; used at start and by the refresh thread, never on a worker's
 * event loop.  The outbound proxy comes from the environment (HTTPS_PROXY,
 * NO_PROXY: see http/outbound.h).
 */
#include "auth/saml_fetch.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "http/curl_loader.h"
#include "http/outbound.h"

#define SAML_FETCH_TIMEOUT 10 /* seconds to connect, and without a byte received */
#define SAML_MAX_METADATA (4 * 1024 * 1024)

struct saml_body {
	char *buf;
	size_t len, cap;
	bool too_large;
};

static bool
saml_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/* CURLOPT_WRITEFUNCTION: keep the body, up to SAML_MAX_METADATA. */
static size_t
saml_body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct saml_body *b = arg;
	size_t add = size * n;

	if (add > SAML_MAX_METADATA - b->len) {
		b->too_large = true;
		return 0;
	}
	if (b->len + add + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		char *p;

		while (cap < b->len + add + 1)
			cap *= 2;
		if ((p = realloc(b->buf, cap)) == NULL)
			return 0;
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, add);
	b->len += add;
	b->buf[b->len] = '\0';
	return add;
}

/* Whether <url> is https, or http to a loopback host; else a reason. */
static bool
saml_url_allowed(const char *url, bool *tls, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	bool ok = false;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0' ||
	    (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0)) {
		snprintf(err, errlen, "%s: not a valid URL", url);
		goto out;
	}
	*tls = strcasecmp(scheme, "https") == 0;
	if (host[0] == '[') { /* an IPv6 literal comes bracketed */
		size_t n = strlen(host);

		memmove(host, host + 1, n - 1);
		host[n - 2] = '\0';
	}
	if (!*tls && !saml_host_is_loopback(host)) {
		snprintf(err, errlen,
			 "%s: IdP metadata carries the keys that vouch for every login; fetch it "
			 "over https (plain http is allowed for loopback addresses only)",
			 url);
		goto out;
	}
	ok = true;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/*
 * GET <url> (https, or http to a loopback host).  Returns the body (caller
 * frees) or NULL with a reason.  Redirects are not followed.
 */
char *
saml_fetch(const char *url, char *err, size_t errlen)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct outbound_options o = {
		.ca_bundle = NULL,
		.user_agent = "portcullis",
		.connect_timeout = SAML_FETCH_TIMEOUT,
		.stall_timeout = SAML_FETCH_TIMEOUT,
		.total_timeout = 0,
		.errbuf = errbuf,
	};
	struct saml_body body = {0};
	struct curl_slist *headers = NULL;
	CURL *e = NULL;
	CURLcode rc = CURLE_OK;
	long status = 0;
	bool tls = true;
	char *doc = NULL;

	if (!saml_url_allowed(url, &tls, err, errlen) || outbound_init(err, errlen) != 0)
		goto out;
	o.protocols = tls ? "https" : "http";
	headers = curl_slist_append(NULL, "Accept: application/samlmetadata+xml, application/xml, "
					  "text/xml");
	if (headers == NULL || (e = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "%s: out of memory", url);
		goto out;
	}
	if (outbound_setup(e, &o, err, errlen) != 0)
		goto out;
	/* plain http goes to a loopback address only: ours, never a proxy's */
	if ((rc = curl_easy_setopt(e, CURLOPT_NOPROXY, tls ? NULL : "*")) != CURLE_OK ||
	    (rc = curl_easy_setopt(e, CURLOPT_URL, url)) != CURLE_OK ||
	    (rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers)) != CURLE_OK ||
	    (rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, saml_body_cb)) != CURLE_OK ||
	    (rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&body)) != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
		goto out;
	}
	rc = curl_easy_perform(e);
	if (body.too_large) {
		snprintf(err, errlen, "%s: the response is larger than 4 MiB", url);
		goto out;
	}
	if (rc != CURLE_OK) {
		outbound_describe(e, rc, errbuf, url, 0, err, errlen);
		ERR_clear_error();
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(err, errlen, "%s: HTTP status %ld", url, status);
		goto out;
	}
	doc = body.buf ? body.buf : strdup("");
	body.buf = NULL;
	if (doc == NULL)
		snprintf(err, errlen, "%s: out of memory", url);
out:
	curl_easy_cleanup(e);
	curl_slist_free_all(headers);
	free(body.buf);
	return doc;
}

/*
 * saml_fetch: GET of the IdP metadata URL (https, or plain http to a loopback
 * address only), blocking, with timeouts and a size limit; used at start and
 * by the refresh thread, never on a worker's event loop.
 */
#include "auth/saml_fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define SAML_FETCH_TIMEOUT_MS 10000
#define SAML_MAX_METADATA (4 * 1024 * 1024)

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

/* Connect to host:port within the timeout.  Returns a blocking fd or -1. */
static int
saml_connect(const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	int fd = -1, gai;
	struct timeval tv = { SAML_FETCH_TIMEOUT_MS / 1000, 0 };

	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof soerr;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, SAML_FETCH_TIMEOUT_MS) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				break;
			errno = soerr ? soerr : ETIMEDOUT;
		}
		snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	return fd;
}

/*
 * GET <url> (https, or http to a loopback host).  Returns the body (caller
 * frees) or NULL with a reason.  One request per connection, HTTP/1.0, so
 * the body ends when the connection closes.
 */
char *
saml_fetch(const char *url, char *err, size_t errlen)
{
	bool tls = strncasecmp(url, "https://", 8) == 0;
	const char *p = url + (tls ? 8 : 7);
	const char *pathp = strchr(p, '/');
	char host[256], port[8], req[4096];
	size_t hlen = pathp ? (size_t)(pathp - p) : strlen(p);
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	GString *resp = g_string_new(NULL);
	char *body = NULL;
	int fd = -1, status = 0;
	char *colon;

	if (hlen == 0 || hlen >= sizeof host) {
		snprintf(err, errlen, "%s: not a valid URL", url);
		goto out;
	}
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	snprintf(port, sizeof port, "%s", tls ? "443" : "80");
	if (host[0] == '[') {
		char *end = strchr(host, ']');

		if (end == NULL) {
			snprintf(err, errlen, "%s: not a valid URL", url);
			goto out;
		}
		if (end[1] == ':')
			snprintf(port, sizeof port, "%s", end + 2);
		*end = '\0';
		memmove(host, host + 1, strlen(host));
	} else if ((colon = strrchr(host, ':')) != NULL) {
		snprintf(port, sizeof port, "%s", colon + 1);
		*colon = '\0';
	}
	if (!tls && !saml_host_is_loopback(host)) {
		snprintf(err, errlen,
			 "%s: IdP metadata carries the keys that vouch for every login; fetch it "
			 "over https (plain http is allowed for loopback addresses only)",
			 url);
		goto out;
	}
	if ((fd = saml_connect(host, port, err, errlen)) < 0)
		goto out;
	snprintf(req, sizeof req,
		 "GET %s HTTP/1.0\r\nHost: %.*s\r\nAccept: application/samlmetadata+xml, "
		 "application/xml, text/xml\r\nUser-Agent: portcullis\r\nConnection: close\r\n\r\n",
		 pathp ? pathp : "/", (int)hlen, p);
	if (tls) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL || SSL_CTX_set_default_verify_paths(ctx) != 1)
			goto tlsfail;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		ssl = SSL_new(ctx);
		if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
		    SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1 ||
		    SSL_connect(ssl) != 1)
			goto tlsfail;
		if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
			goto tlsfail;
	} else if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		snprintf(err, errlen, "%s: cannot send the request: %s", url, strerror(errno));
		goto out;
	}
	for (;;) {
		char buf[16384];
		ssize_t n = tls ? SSL_read(ssl, buf, sizeof buf) : read(fd, buf, sizeof buf);

		if (n < 0 && !tls && errno == EINTR)
			continue;
		if (n < 0 && !tls) {
			snprintf(err, errlen, "%s: read failed: %s", url, strerror(errno));
			goto out;
		}
		if (n <= 0)
			break;
		g_string_append_len(resp, buf, n);
		if (resp->len > SAML_MAX_METADATA) {
			snprintf(err, errlen, "%s: the response is larger than 4 MiB", url);
			goto out;
		}
	}
	{
		char *hdr_end = strstr(resp->str, "\r\n\r\n");

		if (sscanf(resp->str, "HTTP/1.%*d %d", &status) != 1 || hdr_end == NULL) {
			snprintf(err, errlen, "%s: not an HTTP response", url);
			goto out;
		}
		if (status != 200) {
			snprintf(err, errlen, "%s: HTTP status %d", url, status);
			goto out;
		}
		if (strstr(resp->str, "\r\nTransfer-Encoding:") != NULL &&
		    strstr(resp->str, "\r\nTransfer-Encoding:") < hdr_end) {
			snprintf(err, errlen, "%s: chunked answer to an HTTP/1.0 request", url);
			goto out;
		}
		body = strdup(hdr_end + 4);
	}
	goto out;
tlsfail: {
	unsigned long e = ERR_get_error();
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	snprintf(err, errlen, "%s: TLS failed: %s%s%s", url,
		 e ? ERR_reason_error_string(e) : "handshake or write failed",
		 vr != X509_V_OK ? "; certificate: " : "",
		 vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
	ERR_clear_error();
}
out:
	if (ssl != NULL) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	g_string_free(resp, TRUE);
	return body;
}


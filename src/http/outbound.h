/*
 * outbound: what every outbound HTTPS request of Portcullis shares, on
 * libcurl.  Two clients use it: the ACME client (acme/acme_http.c, libcurl's
 * multi interface on the manager's event loop) and the IdP metadata download
 * (auth/saml_fetch.c, the easy interface on the refresh thread).  It sets up
 * an easy handle (TLS 1.2 or later, peer and host verification, timeouts, no
 * signals) and turns a failed transfer into a one-line reason.  It does not
 * run transfers, and it never sets a proxy: libcurl takes it from the
 * environment (https_proxy / HTTPS_PROXY, all_proxy, no_proxy / NO_PROXY),
 * as Caddy and Traefik do.
 */
#ifndef PORTCULLIS_OUTBOUND_H
#define PORTCULLIS_OUTBOUND_H

#include <stddef.h>

#include "http/curl_loader.h"

/*
 * Load libcurl (http/curl_loader.h) and run curl_global_init, once per
 * process: later calls do nothing, and a failed load is tried again at the
 * next call.  Thread-safe, but call it before starting any thread that makes
 * outbound requests: the configuration loader does for a configuration that
 * needs it (config/config_outbound.h), and the clients call it again to be
 * safe.  Returns 0, or -1 with a reason naming the library and its package.
 */
int outbound_init(char *err, size_t errlen);

/* curl_global_cleanup, at exit, after every outbound user is gone.  Does
 * nothing when outbound_init never succeeded.  libcurl stays mapped. */
void outbound_cleanup(void);

/* How one request goes out. */
struct outbound_options {
	const char *ca_bundle;      /* PEM file to trust; NULL: OpenSSL's default store
				       (the system's, or SSL_CERT_FILE / SSL_CERT_DIR) */
	const char *protocols;      /* CURLOPT_PROTOCOLS_STR, e.g. "https" */
	const char *user_agent;
	unsigned connect_timeout;   /* seconds to connect (TCP, proxy tunnel, TLS) */
	unsigned stall_timeout;     /* seconds without a byte received: give up */
	unsigned total_timeout;     /* seconds for the whole exchange; 0: no bound */
	char *errbuf;               /* CURL_ERROR_SIZE bytes, filled by libcurl */
};

/* Apply <o> to <e>.  Returns 0, or -1 (an option libcurl refused) with a
 * reason in <err>. */
int outbound_setup(CURL *e, const struct outbound_options *o, char *err, size_t errlen);

/*
 * Why the transfer on <e> that ended with <rc> (not CURLE_OK) gave no
 * response, for <what> ("host:port" or the URL) and a transfer that was
 * allowed <total_timeout> seconds: "TLS certificate of <what> not trusted:
 * <reason>", "<what>: no complete response within <n> s", "<what>: the proxy
 * refused the tunnel (CONNECT answered 403)", or libcurl's own words; when
 * the environment names a proxy for the request's scheme, the reason says so.
 */
void outbound_describe(CURL *e, CURLcode rc, const char *errbuf, const char *what,
		       unsigned total_timeout, char *out, size_t outlen);

#endif

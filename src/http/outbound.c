/* outbound: shared set-up of outbound HTTPS requests on libcurl; see outbound.h. */
#include "http/outbound.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

static pthread_mutex_t outbound_lock = PTHREAD_MUTEX_INITIALIZER;
static bool outbound_ready; /* written under outbound_lock */

int
outbound_init(char *err, size_t errlen)
{
	CURLcode rc;
	int status = 0;

	pthread_mutex_lock(&outbound_lock);
	if (!outbound_ready) {
		if (curl_loader_load(CURL_LOADER_SONAME, err, errlen) < 0) {
			status = -1;
		} else if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
			snprintf(err, errlen, "cannot initialise libcurl: %s",
				 curl_easy_strerror(rc));
			status = -1;
		} else {
			outbound_ready = true;
		}
	}
	pthread_mutex_unlock(&outbound_lock);
	return status;
}

void
outbound_cleanup(void)
{
	pthread_mutex_lock(&outbound_lock);
	if (outbound_ready)
		curl_global_cleanup();
	outbound_ready = false;
	pthread_mutex_unlock(&outbound_lock);
}

/* Without a CA bundle: trust what OpenSSL trusts by default (the system's
 * store, or SSL_CERT_FILE / SSL_CERT_DIR), as the clients before libcurl did;
 * libcurl's own default is a file path fixed at its build. */
static CURLcode
default_store_cb(CURL *e, void *sslctx, void *arg)
{
	if (SSL_CTX_set_default_verify_paths(sslctx) != 1)
		return CURLE_SSL_CACERT_BADFILE;
	return CURLE_OK;
}

int
outbound_setup(CURL *e, const struct outbound_options *o, char *err, size_t errlen)
{
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                           \
	do {                                                                                    \
		if (rc == CURLE_OK)                                                             \
			rc = curl_easy_setopt(e, opt, val);                                     \
	} while (0)
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, o->errbuf);
	SET(CURLOPT_PROTOCOLS_STR, o->protocols);
	SET(CURLOPT_USERAGENT, o->user_agent);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	/* the headers of a proxy's CONNECT answer are not the server's */
	SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_CONNECTTIMEOUT, (long)o->connect_timeout);
	SET(CURLOPT_TIMEOUT, (long)o->total_timeout);
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, (long)o->stall_timeout);
	if (o->ca_bundle != NULL) {
		SET(CURLOPT_CAINFO, o->ca_bundle);
		SET(CURLOPT_CAPATH, (char *)NULL);
	} else {
		SET(CURLOPT_CAINFO, (char *)NULL);
		SET(CURLOPT_CAPATH, (char *)NULL);
		SET(CURLOPT_SSL_CTX_FUNCTION, default_store_cb);
	}
#undef SET
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl refused an option: %s", curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

/* The proxy the environment names for <scheme> ("https" or "http"), as
 * libcurl looks it up, with the variable's name, credentials removed. */
static bool
env_proxy(const char *scheme, char *out, size_t outlen)
{
	static const char *const https_vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy",
						 "ALL_PROXY", NULL};
	/* libcurl reads only the lower-case http_proxy (httpoxy) */
	static const char *const http_vars[] = {"http_proxy", "all_proxy", "ALL_PROXY", NULL};
	const char *const *vars = strcasecmp(scheme, "http") == 0 ? http_vars : https_vars;

	for (size_t i = 0; vars[i] != NULL; i++) {
		const char *v = getenv(vars[i]);
		CURLU *u;
		char *clean = NULL;

		if (v == NULL || *v == '\0')
			continue;
		u = curl_url();
		if (u != NULL &&
		    curl_url_set(u, CURLUPART_URL, v, CURLU_GUESS_SCHEME) == CURLUE_OK) {
			curl_url_set(u, CURLUPART_USER, NULL, 0);
			curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
			curl_url_get(u, CURLUPART_URL, &clean, 0);
		}
		snprintf(out, outlen, "%s=%s", vars[i], clean ? clean : "(unparsable)");
		curl_free(clean);
		curl_url_cleanup(u);
		return true;
	}
	return false;
}

void
outbound_describe(CURL *e, CURLcode rc, const char *errbuf, const char *what,
		  unsigned total_timeout, char *out, size_t outlen)
{
	long verify = X509_V_OK, connect_code = 0;
	double elapsed = 0;
	char *url = NULL;
	char proxy[300];
	bool proxied = false;
	size_t n;

	curl_easy_getinfo(e, CURLINFO_SSL_VERIFYRESULT, &verify);
	curl_easy_getinfo(e, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
	if (rc == CURLE_PEER_FAILED_VERIFICATION && verify != X509_V_OK) {
		snprintf(out, outlen, "TLS certificate of %s not trusted: %s", what,
			 X509_verify_cert_error_string(verify));
		return;
	}
	if (connect_code != 0 && (connect_code < 200 || connect_code > 299)) {
		snprintf(out, outlen, "%s: the proxy refused the tunnel (CONNECT answered %ld)",
			 what, connect_code);
		proxied = true;
	} else if (rc == CURLE_OPERATION_TIMEDOUT && total_timeout != 0 &&
		   curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &elapsed) == CURLE_OK &&
		   elapsed + 0.5 >= (double)total_timeout) {
		snprintf(out, outlen, "%s: no complete response within %u s", what, total_timeout);
	} else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR) {
		snprintf(out, outlen, "TLS error with %s: %s", what,
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else if (rc == CURLE_WRITE_ERROR) {
		snprintf(out, outlen, "%s: the response is too large", what);
	} else {
		snprintf(out, outlen, "%s: %s", what, errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	if (url == NULL ||
	    !env_proxy(strncasecmp(url, "http:", 5) == 0 ? "http" : "https", proxy, sizeof(proxy)))
		return;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
		proxied = true;
		break;
	default:
		break;
	}
	n = strlen(out);
	if (proxied && n + 1 < outlen)
		snprintf(out + n, outlen - n, " (outbound proxy from the environment: %s)", proxy);
}

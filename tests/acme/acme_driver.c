/*
 * acme_driver: runs the ACME manager on its own event loop, the way the proxy
 * does, for the end-to-end tests against pebble (tests/e2e/test_acme_*.py).
 * It answers HTTP-01 on --http-port with a tiny evhttp server that calls
 * acme_http01_lookup(), and TLS-ALPN-01 on --tls-port with a tiny OpenSSL
 * server whose ClientHello callback calls acme_tlsalpn01_client_hello().
 * Every certificate the manager delivers is written to
 * <out>/<first-name>.chain.pem and .key.pem and announced on stdout as
 *   CERT <first-name> <not_after> <sha256-of-leaf-der>
 * Metrics go to <out>/metrics.txt after every delivery and at exit.
 *
 * Usage: acme_driver --directory URL --storage DIR --out DIR --names a,b
 *        [--names c,d]... [--ca-bundle FILE] [--email E]
 *        [--challenge http-01|tls-alpn-01|both] [--http-port N] [--tls-port N]
 *        [--renew-now NAME] [--exit-when-ready] [--retry-base S]
 *        [--lock-stale S] [--request-timeout S] [--order-timeout S] [--debug]
 * Exits 0 on SIGTERM/SIGINT or, with --exit-when-ready, once every order has
 * a certificate; 2 on bad usage or start-up errors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "acme/acme.h"
#include "base/log.h"
#include "http/outbound.h"

#define MAX_ORDERS 16
#define MAX_NAMES 32

struct driver {
	struct event_base *base;
	struct acme_manager *acme;
	const char *out;
	bool exit_when_ready;
	size_t n_orders;
	bool ready[MAX_ORDERS];
	char *first[MAX_ORDERS];
	SSL_CTX *tls_ctx;
};

static struct driver drv;

static void
usage(void)
{
	fprintf(stderr,
		"usage: acme_driver --directory URL --storage DIR --out DIR --names a,b "
		"[--names c]... [--ca-bundle FILE] [--email E] "
		"[--challenge http-01|tls-alpn-01|both] [--http-port N] [--tls-port N] "
		"[--renew-now NAME] [--exit-when-ready] [--retry-base S] [--lock-stale S] "
		"[--request-timeout S] [--order-timeout S] [--debug]\n");
	exit(2);
}

static void
write_metrics(void)
{
	char path[1024];
	char *text = acme_metrics_render(drv.acme);
	FILE *f;

	if (text == NULL)
		return;
	snprintf(path, sizeof(path), "%s/metrics.txt", drv.out);
	f = fopen(path, "w");
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	free(text);
}

static int
write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(data, f);
	return fclose(f);
}

static void
on_certificate(const char *const *names, size_t n_names, const char *chain_pem,
	       const char *key_pem, time_t not_after, void *arg)
{
	char path[1024], hex[2 * SHA256_DIGEST_LENGTH + 1];
	unsigned char digest[SHA256_DIGEST_LENGTH], *der = NULL;
	BIO *bio = BIO_new_mem_buf(chain_pem, -1);
	X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	int len = leaf ? i2d_X509(leaf, &der) : -1;
	size_t i;

	hex[0] = '\0';
	if (len > 0) {
		SHA256(der, (size_t)len, digest);
		for (i = 0; i < sizeof(digest); i++)
			sprintf(hex + 2 * i, "%02x", digest[i]);
	}
	OPENSSL_free(der);
	X509_free(leaf);
	BIO_free(bio);
	snprintf(path, sizeof(path), "%s/%s.chain.pem", drv.out, names[0]);
	if (write_file(path, chain_pem) != 0)
		log_error("acme_driver: cannot write %s", path);
	snprintf(path, sizeof(path), "%s/%s.key.pem", drv.out, names[0]);
	if (write_file(path, key_pem) != 0)
		log_error("acme_driver: cannot write %s", path);
	printf("CERT %s %lld %s\n", names[0], (long long)not_after, hex);
	fflush(stdout);
	write_metrics();
	for (i = 0; i < drv.n_orders; i++)
		if (strcmp(drv.first[i], names[0]) == 0)
			drv.ready[i] = true;
	if (drv.exit_when_ready) {
		bool all = true;

		for (i = 0; i < drv.n_orders; i++)
			all = all && drv.ready[i];
		if (all)
			event_base_loopexit(drv.base, NULL);
	}
}

/* HTTP-01: GET /.well-known/acme-challenge/<token> */
static void
http_cb(struct evhttp_request *req, void *arg)
{
	static const char prefix[] = "/.well-known/acme-challenge/";
	const char *uri = evhttp_request_get_uri(req);
	char keyauth[512];
	struct evbuffer *body;

	if (strncmp(uri, prefix, sizeof(prefix) - 1) != 0 ||
	    !acme_http01_lookup(uri + sizeof(prefix) - 1, keyauth, sizeof(keyauth))) {
		evhttp_send_error(req, 404, "Not Found");
		return;
	}
	body = evbuffer_new();
	evbuffer_add(body, keyauth, strlen(keyauth));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
	log_info("acme_driver: served http-01 token %s", uri + sizeof(prefix) - 1);
}

/* TLS-ALPN-01 server */
static int
client_hello_cb(SSL *ssl, int *al, void *arg)
{
	int alert = 0;

	if (!acme_tlsalpn01_client_hello(ssl, &alert)) {
		*al = SSL_AD_HANDSHAKE_FAILURE; /* this server only answers challenges */
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (alert != 0) {
		*al = alert;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
	unsigned int inlen, void *arg)
{
	return acme_tlsalpn01_alpn_select(out, outlen, in, inlen) ? SSL_TLSEXT_ERR_OK
								   : SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & BEV_EVENT_CONNECTED) {
		log_info("acme_driver: tls-alpn-01 handshake completed");
		return;
	}
	bufferevent_free(bev);
}

static void
tls_read_cb(struct bufferevent *bev, void *arg)
{
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
tls_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
	      void *arg)
{
	SSL *ssl = SSL_new(drv.tls_ctx);
	struct bufferevent *bev;
	struct timeval tv = { 10, 0 };

	if (ssl == NULL) {
		evutil_closesocket(fd);
		return;
	}
	bev = bufferevent_openssl_socket_new(drv.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setcb(bev, tls_read_cb, NULL, tls_event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	log_info("acme_driver: signal %d, stopping", (int)sig);
	event_base_loopexit(drv.base, NULL);
}

static unsigned
parse_uint(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v > 65535 * 1000UL)
		usage();
	return (unsigned)v;
}

int
main(int argc, char **argv)
{
	struct acme_settings s;
	struct acme_order_spec orders[MAX_ORDERS];
	const char *names[MAX_ORDERS][MAX_NAMES];
	const char *renew_now = NULL;
	unsigned http_port = 0, tls_port = 0;
	struct evhttp *http = NULL;
	struct evconnlistener *tls_listener = NULL;
	struct event *sigterm, *sigint;
	char err[512];
	int i, rc = 2;

	memset(&s, 0, sizeof(s));
	memset(&drv, 0, sizeof(drv));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--exit-when-ready") == 0) {
			drv.exit_when_ready = true;
			continue;
		}
		if (strcmp(a, "--debug") == 0) {
			log_set_level(LOG_LEVEL_DEBUG);
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--directory") == 0) {
			s.directory_url = v;
		} else if (strcmp(a, "--storage") == 0) {
			s.storage_dir = v;
		} else if (strcmp(a, "--out") == 0) {
			drv.out = v;
		} else if (strcmp(a, "--ca-bundle") == 0) {
			s.ca_bundle = v;
		} else if (strcmp(a, "--email") == 0) {
			s.email = v;
		} else if (strcmp(a, "--challenge") == 0) {
			if (strcmp(v, "http-01") == 0)
				s.challenges = ACME_CHALLENGE_HTTP01;
			else if (strcmp(v, "tls-alpn-01") == 0)
				s.challenges = ACME_CHALLENGE_TLSALPN01;
			else if (strcmp(v, "both") == 0)
				s.challenges = ACME_CHALLENGE_HTTP01 | ACME_CHALLENGE_TLSALPN01;
			else
				usage();
		} else if (strcmp(a, "--http-port") == 0) {
			http_port = parse_uint(v);
		} else if (strcmp(a, "--tls-port") == 0) {
			tls_port = parse_uint(v);
		} else if (strcmp(a, "--renew-now") == 0) {
			renew_now = v;
		} else if (strcmp(a, "--retry-base") == 0) {
			s.retry_base_seconds = parse_uint(v);
		} else if (strcmp(a, "--lock-stale") == 0) {
			s.lock_stale_seconds = parse_uint(v);
		} else if (strcmp(a, "--request-timeout") == 0) {
			s.request_timeout_seconds = parse_uint(v);
		} else if (strcmp(a, "--order-timeout") == 0) {
			s.order_timeout_seconds = parse_uint(v);
		} else if (strcmp(a, "--names") == 0) {
			char *copy = strdup(v), *save = NULL, *tok;
			size_t n = 0;

			if (drv.n_orders == MAX_ORDERS || copy == NULL)
				usage();
			for (tok = strtok_r(copy, ",", &save); tok && n < MAX_NAMES;
			     tok = strtok_r(NULL, ",", &save))
				names[drv.n_orders][n++] = tok;
			orders[drv.n_orders].names = names[drv.n_orders];
			orders[drv.n_orders].n_names = n;
			drv.first[drv.n_orders] = n ? copy : NULL;
			drv.n_orders++;
		} else {
			usage();
		}
	}
	if (drv.out == NULL || s.storage_dir == NULL || s.directory_url == NULL ||
	    drv.n_orders == 0)
		usage();
	s.orders = orders;
	s.n_orders = drv.n_orders;
	s.on_certificate = on_certificate;

	signal(SIGPIPE, SIG_IGN);
	drv.base = event_base_new();
	if (drv.base == NULL)
		return 2;

	if (http_port != 0) {
		http = evhttp_new(drv.base);
		if (http == NULL || evhttp_bind_socket(http, "127.0.0.1", (uint16_t)http_port) != 0) {
			log_error("acme_driver: cannot listen on 127.0.0.1:%u (http-01)", http_port);
			goto done;
		}
		evhttp_set_gencb(http, http_cb, NULL);
		log_info("acme_driver: http-01 on 127.0.0.1:%u", http_port);
	}
	if (tls_port != 0) {
		struct sockaddr_in sin;

		drv.tls_ctx = SSL_CTX_new(TLS_server_method());
		if (drv.tls_ctx == NULL)
			goto done;
		SSL_CTX_set_min_proto_version(drv.tls_ctx, TLS1_2_VERSION);
		SSL_CTX_set_client_hello_cb(drv.tls_ctx, client_hello_cb, NULL);
		SSL_CTX_set_alpn_select_cb(drv.tls_ctx, alpn_cb, NULL);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)tls_port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		tls_listener = evconnlistener_new_bind(drv.base, tls_accept_cb, NULL,
						       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
						       -1, (struct sockaddr *)&sin, sizeof(sin));
		if (tls_listener == NULL) {
			log_error("acme_driver: cannot listen on 127.0.0.1:%u (tls-alpn-01)",
				  tls_port);
			goto done;
		}
		log_info("acme_driver: tls-alpn-01 on 127.0.0.1:%u", tls_port);
	}

	drv.acme = acme_manager_new(drv.base, &s, err, sizeof(err));
	if (drv.acme == NULL) {
		log_error("acme_driver: %s", err);
		goto done;
	}
	if (renew_now != NULL && acme_manager_renew_now(drv.acme, renew_now) != 0) {
		log_error("acme_driver: no order has the name %s", renew_now);
		goto done;
	}
	if (acme_manager_start(drv.acme, err, sizeof(err)) != 0) {
		log_error("acme_driver: %s", err);
		goto done;
	}
	sigterm = evsignal_new(drv.base, SIGTERM, signal_cb, NULL);
	sigint = evsignal_new(drv.base, SIGINT, signal_cb, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	log_info("acme_driver: running");
	event_base_dispatch(drv.base);
	event_free(sigterm);
	event_free(sigint);
	write_metrics();
	rc = 0;
done:
	acme_manager_free(drv.acme);
	if (tls_listener != NULL)
		evconnlistener_free(tls_listener);
	SSL_CTX_free(drv.tls_ctx);
	if (http != NULL)
		evhttp_free(http);
	for (size_t k = 0; k < drv.n_orders; k++)
		free(drv.first[k]);
	event_base_free(drv.base);
	outbound_cleanup();
	log_info("acme_driver: exit %d", rc);
	return rc;
}

/*
 * tls_echo_server: a small HTTPS server for the TLS end-to-end tests
 * (tests/e2e/test_tls_*.py).  It uses the tls module as the workers do: one
 * process-wide tls_store, N worker threads each with its own event_base and
 * evhttp accepting on the same listening socket, TLS through
 * evhttp_set_bevcb(echo_bevcb) on the store's SSL_CTX, and tls_store_poll on
 * a timer in the main thread.  Every request is answered 200 with one line describing the
 * connection:
 *
 *   sni=<name or -> version=<TLSv1.3> alpn=<proto or -> cipher=<name> path=<uri>
 *
 * Options:
 *   --listen HOST:PORT     [127.0.0.1:0]
 *   --cert FILE --key FILE a certificate from files (repeat the pair)
 *   --cover NAME           the previous --cert must cover NAME (repeatable)
 *   --local-ca             serve a leaf from the local CA in --certs-dir
 *   --certs-dir DIR        [certs]
 *   --local-name NAME      an extra name for the local leaf (repeatable)
 *   --default-name NAME
 *   --challenge NAME:CERT:KEY  the TLS-ALPN-01 hook answers NAME with this pair
 *   --workers N            [2]
 *   --poll SECONDS         [1]
 *   --ticket-rotate SECONDS
 *
 * Logs "listening on ADDR:PORT (tls)" and "ready: N workers" like portcullis;
 * SIGTERM or SIGINT stop it (exit 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "base/log.h"
#include "base/sslerr.h"
#include "tls/tls.h"

#define MAX_FILES 16
#define MAX_NAMES 16

struct echo_worker {
	pthread_t thread;
	struct event_base *base;
	struct evhttp *http;
};

static struct {
	char name[256];
	X509 *cert;
	EVP_PKEY *key;
} challenge;

static int
challenge_hook(const char *sni, X509 **cert, EVP_PKEY **key)
{
	if (challenge.cert == NULL || strcmp(sni, challenge.name) != 0)
		return -1;
	X509_up_ref(challenge.cert);
	EVP_PKEY_up_ref(challenge.key);
	*cert = challenge.cert;
	*key = challenge.key;
	return 0;
}

static int
load_challenge(const char *spec)
{
	char buf[4096], *cert, *key;
	FILE *f;

	snprintf(buf, sizeof(buf), "%s", spec);
	cert = strchr(buf, ':');
	key = cert ? strchr(cert + 1, ':') : NULL;
	if (key == NULL)
		return -1;
	*cert++ = '\0';
	*key++ = '\0';
	if (strlen(buf) >= sizeof(challenge.name))
		return -1;
	memcpy(challenge.name, buf, strlen(buf) + 1);
	f = fopen(cert, "r");
	if (f == NULL)
		return -1;
	challenge.cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	f = fopen(key, "r");
	if (f == NULL)
		return -1;
	challenge.key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return challenge.cert && challenge.key ? 0 : -1;
}

/*
 * evhttp_set_bevcb callback, <arg> is the store: a new server-side
 * bufferevent_openssl (BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE, dirty
 * shutdowns allowed) whose socket evhttp sets afterwards.  NULL only when out
 * of memory.  (Was tls_evhttp_bevcb in src/tls/tls.c: only this driver used
 * it, the proxy's own server does TLS on the SSL_CTX directly.)
 */
static struct bufferevent *
echo_bevcb(struct event_base *base, void *arg)
{
	struct tls_store *s = arg;
	SSL *ssl = SSL_new(tls_store_ctx(s));
	struct bufferevent *bev;

	if (ssl == NULL) {
		log_error("tls: SSL_new failed: %s", sslerr_reason("out of memory"));
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		log_error("tls: cannot make a TLS bufferevent (out of memory)");
		return NULL;
	}
	/* OpenSSL 3 reports a peer's close without close_notify as an error,
	 * which libevent 2.1 does not expect; treat it as an ordinary EOF. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* evhttp is about to free the connection (the socket is still open). */
static void
echo_close_notify_cb(struct evhttp_connection *evcon, void *arg)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	/* Only after a finished handshake and no fatal error (OpenSSL then
	 * reports the connection as in init); best effort, never blocks. */
	if (ssl && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(ssl);
	ERR_clear_error();
}

/*
 * For every request: when evhttp later closes <evcon> (Connection: close,
 * idle timeout, drain), the peer gets a TLS close_notify first.  Without it
 * libevent 2.1 just closes the socket, and strict TLS clients (OpenSSL 3's
 * s_client) report an "unexpected EOF".  (Was tls_evhttp_connection_track.)
 */
static void
echo_track_close(struct evhttp_connection *evcon)
{
	if (evcon)
		evhttp_connection_set_closecb(evcon, echo_close_notify_cb, NULL);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct evbuffer *out = evbuffer_new();
	const unsigned char *alpn = NULL;
	unsigned int alpnlen = 0;
	const char *sni = NULL;

	/* The wiring the worker's request callback needs: one line. */
	echo_track_close(evcon);
	if (out == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (ssl) {
		sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
	}
	evbuffer_add_printf(out, "sni=%s version=%s alpn=%.*s cipher=%s path=%s\n", sni ? sni : "-",
			    ssl ? SSL_get_version(ssl) : "plain", alpnlen ? (int)alpnlen : 1,
			    alpnlen ? (const char *)alpn : "-", ssl ? SSL_get_cipher_name(ssl) : "-",
			    evhttp_request_get_uri(req));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void *
worker_main(void *arg)
{
	struct echo_worker *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	tls_store_poll(arg);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static int
bind_listener(const char *spec, int *port)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return -1;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 511) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

int
main(int argc, char **argv)
{
	struct tls_file_pair files[MAX_FILES] = {{0}};
	const char *covers[MAX_FILES][MAX_NAMES];
	const char *local_names[MAX_NAMES];
	struct tls_options opt = {.files = files, .local_names = local_names};
	const char *listen_spec = "127.0.0.1:0";
	unsigned nworkers = 2;
	double poll_seconds = 1;
	struct echo_worker *workers = NULL;
	struct tls_store *store = NULL;
	struct event_base *base = NULL;
	struct event *timer = NULL, *sigterm = NULL, *sigint = NULL;
	char err[8192];
	int fd = -1, port = 0, status = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--local-ca") == 0) {
			opt.local_ca = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "tls_echo_server: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--listen") == 0) {
			listen_spec = v;
		} else if (strcmp(a, "--cert") == 0 && opt.nfiles < MAX_FILES) {
			files[opt.nfiles].cert = v;
			files[opt.nfiles].names = covers[opt.nfiles];
			opt.nfiles++;
		} else if (strcmp(a, "--key") == 0 && opt.nfiles > 0) {
			files[opt.nfiles - 1].key = v;
		} else if (strcmp(a, "--cover") == 0 && opt.nfiles > 0 &&
			   files[opt.nfiles - 1].nnames < MAX_NAMES) {
			covers[opt.nfiles - 1][files[opt.nfiles - 1].nnames++] = v;
		} else if (strcmp(a, "--certs-dir") == 0) {
			opt.certs_dir = v;
		} else if (strcmp(a, "--local-name") == 0 && opt.nlocal_names < MAX_NAMES) {
			local_names[opt.nlocal_names++] = v;
		} else if (strcmp(a, "--default-name") == 0) {
			opt.default_name = v;
		} else if (strcmp(a, "--challenge") == 0) {
			if (load_challenge(v) < 0) {
				fprintf(stderr, "tls_echo_server: bad --challenge %s\n", v);
				return 2;
			}
		} else if (strcmp(a, "--workers") == 0) {
			nworkers = (unsigned)atoi(v);
		} else if (strcmp(a, "--poll") == 0) {
			poll_seconds = atof(v);
		} else if (strcmp(a, "--ticket-rotate") == 0) {
			opt.ticket_rotate_seconds = (unsigned)atoi(v);
		} else {
			fprintf(stderr, "tls_echo_server: unknown option %s\n", a);
			return 2;
		}
	}
	for (size_t i = 0; i < opt.nfiles; i++) {
		if (files[i].key == NULL) {
			fprintf(stderr, "tls_echo_server: --cert %s has no --key\n", files[i].cert);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0)
		return 1;

	store = tls_store_new(&opt, err, sizeof(err));
	if (store == NULL) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	if (challenge.cert)
		tls_store_set_challenge_hook(store, challenge_hook);
	fd = bind_listener(listen_spec, &port);
	if (fd < 0) {
		log_error("cannot listen on %s: %s", listen_spec, strerror(errno));
		goto out;
	}
	log_info("listening on 127.0.0.1:%d (tls)", port);

	base = event_base_new();
	workers = calloc(nworkers, sizeof(*workers));
	if (base == NULL || workers == NULL)
		goto out;
	for (unsigned i = 0; i < nworkers; i++) {
		struct echo_worker *w = &workers[i];

		w->base = event_base_new();
		w->http = w->base ? evhttp_new(w->base) : NULL;
		if (w->http == NULL)
			goto out;
		evhttp_set_default_content_type(w->http, NULL);
		evhttp_set_timeout(w->http, 30);
		/* The wiring a worker needs: one line. */
		evhttp_set_bevcb(w->http, echo_bevcb, store);
		evhttp_set_gencb(w->http, request_cb, NULL);
		if (evhttp_accept_socket_with_handle(w->http, fcntl(fd, F_DUPFD_CLOEXEC, 0)) == NULL)
			goto out;
	}
	timer = event_new(base, -1, EV_PERSIST, poll_cb, store);
	sigterm = evsignal_new(base, SIGTERM, stop_cb, base);
	sigint = evsignal_new(base, SIGINT, stop_cb, base);
	if (timer == NULL || sigterm == NULL || sigint == NULL)
		goto out;
	{
		struct timeval tv = {(time_t)poll_seconds,
				     (suseconds_t)((poll_seconds - (double)(time_t)poll_seconds) * 1e6)};

		event_add(timer, &tv);
	}
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	for (unsigned i = 0; i < nworkers; i++)
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
			goto out;
	log_info("ready: %u workers", nworkers);
	event_base_dispatch(base);
	for (unsigned i = 0; i < nworkers; i++) {
		event_base_loopbreak(workers[i].base);
		pthread_join(workers[i].thread, NULL);
		workers[i].thread = 0;
	}
	log_info("shutdown complete");
	status = 0;
out:
	for (unsigned i = 0; workers && i < nworkers; i++) {
		if (workers[i].thread) {
			event_base_loopbreak(workers[i].base);
			pthread_join(workers[i].thread, NULL);
		}
		if (workers[i].http)
			evhttp_free(workers[i].http);
		if (workers[i].base)
			event_base_free(workers[i].base);
	}
	free(workers);
	if (timer)
		event_free(timer);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (base)
		event_base_free(base);
	if (fd >= 0)
		close(fd);
	tls_store_free(store);
	X509_free(challenge.cert);
	EVP_PKEY_free(challenge.key);
	return status;
}

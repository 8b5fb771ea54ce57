/* tls_client: client SSL_CTX and connections for upstreams; see tls_client.h. */
#include "tls/tls_client.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "base/sslerr.h"

static int slot_index = -1;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void
slot_index_init(void)
{
	slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* A session the server sent: keep it in the connection's slot. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION **slot = slot_index >= 0 ? SSL_get_ex_data(ssl, slot_index) : NULL;

	if (slot == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	if (*slot != NULL)
		SSL_SESSION_free(*slot);
	*slot = sess;
	return 1; /* we keep the reference */
}

SSL_CTX *
tls_client_ctx_new(const struct tls_client_opts *opts, char *err, size_t errlen)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *ctx;

	pthread_once(&slot_once, slot_index_init);
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || slot_index < 0) {
		snprintf(err, errlen, "cannot create a TLS context: %s", sslerr_reason("out of memory"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	if (opts->verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (opts->ca_bundle != NULL) {
			if (SSL_CTX_load_verify_locations(ctx, opts->ca_bundle, NULL) != 1) {
				snprintf(err, errlen, "%s: cannot load the CA bundle: %s", opts->ca_bundle,
					 sslerr_reason("no certificate in it"));
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen, "cannot load the system CA store: %s",
				 sslerr_reason("unknown error"));
			goto fail;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (opts->client_cert != NULL) {
		const char *key = opts->client_key ? opts->client_key : opts->client_cert;

		if (SSL_CTX_use_certificate_chain_file(ctx, opts->client_cert) != 1) {
			snprintf(err, errlen, "%s: cannot load the client certificate: %s",
				 opts->client_cert, sslerr_reason("no certificate in it"));
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			snprintf(err, errlen, "%s: cannot load the client key: %s", key,
				 sslerr_reason("no key in it"));
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			snprintf(err, errlen, "%s: the key does not match the client certificate %s",
				 key, opts->client_cert);
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

SSL *
tls_client_new(SSL_CTX *ctx, int fd, const char *sni, const char *verify_name,
	       SSL_SESSION **slot)
{
	unsigned char ip[16];
	bool sni_is_ip = sni != NULL && (inet_pton(AF_INET, sni, ip) == 1 ||
					 inet_pton(AF_INET6, sni, ip) == 1);
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1 ||
	    /* SSL_set_tlsext_host_name, without its cast that drops const (the name is copied) */
	    (sni != NULL && !sni_is_ip &&
	     SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
		      (void *)(uintptr_t)sni) != 1) ||
	    (verify_name != NULL && SSL_set1_host(ssl, verify_name) != 1)) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (slot != NULL && *slot != NULL)
		SSL_set_session(ssl, *slot);
	SSL_set_ex_data(ssl, slot_index, slot);
	SSL_set_connect_state(ssl);
	return ssl;
}

void
tls_client_session_slot(SSL *ssl, SSL_SESSION **slot)
{
	if (ssl != NULL && slot_index >= 0)
		SSL_set_ex_data(ssl, slot_index, slot);
}

const char *
tls_client_failure(SSL *ssl, const char *fallback)
{
	static _Thread_local char buf[320];
	long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (v != X509_V_OK) {
		snprintf(buf, sizeof buf, "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
		ERR_clear_error();
		return buf;
	}
	snprintf(buf, sizeof buf, "%s", sslerr_reason(fallback));
	ERR_clear_error();
	return buf;
}

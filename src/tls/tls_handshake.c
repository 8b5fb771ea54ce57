/* tls_handshake: the SSL_CTX and the handshake callbacks; see tls_handshake.h. */
#include "tls/tls_handshake.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/log.h"
#include "base/sslerr.h"
#include "base/timeutil.h"
#include "tls/tls_cert.h"
#include "tls/tls_clientauth.h"
#include "tls/tls_ocsp.h"

/* Mozilla "intermediate" (server side), TLS 1.2 part; TLS 1.3 suites apart. */
#define TLS_CIPHERS_12                                                                   \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                     \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                     \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                     \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"

static const char plain_http_reply[] =
	"HTTP/1.1 400 Bad Request\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Length: 70\r\n"
	"Connection: close\r\n"
	"\r\n"
	"400 Bad Request: this port speaks HTTPS; use an https:// URL instead.\n";

struct tls_ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
};

/* What the handshakes of one store share. */
struct tls_handshake {
	SSL_CTX *ctx;

	pthread_mutex_t lock; /* index and hook */
	struct tls_index *index;
	tls_challenge_fn hook;

	pthread_mutex_t ticket_lock;
	struct tls_ticket_key keys[2]; /* [0] encrypts, [1] (if have_prev) still decrypts */
	bool have_prev;
	double rotated_at; /* monotonic seconds */
	unsigned rotate_seconds;

	atomic_ullong plain_http;
};

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_acme = -1; /* SSL ex_data: non-NULL when answering TLS-ALPN-01 */
static int ex_alpn = -1; /* SSL ex_data: the protocols this connection may select */

static void
ex_init(void)
{
	ex_acme = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ex_alpn = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* What a connection selects when its owner said nothing: HTTP/1.1. */
static const char *const alpn_default[] = {"http/1.1", NULL};

/* Interned ALPN lists: configurations come and go, handshakes in progress
 * keep pointing at their list, so lists live until exit (one per distinct
 * list ever configured). */
struct alpn_list {
	struct alpn_list *next;
	size_t n;
	const char *protos[]; /* n names, then NULL; the strings follow */
};
static pthread_mutex_t alpn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct alpn_list *alpn_lists;

const char *const *
tls_alpn_intern(const char *const *protos, size_t n)
{
	struct alpn_list *l;
	size_t bytes = 0;
	char *p;

	pthread_mutex_lock(&alpn_lock);
	for (l = alpn_lists; l; l = l->next) {
		size_t i = 0;

		if (l->n != n)
			continue;
		while (i < n && strcmp(l->protos[i], protos[i]) == 0)
			i++;
		if (i == n)
			goto out;
	}
	for (size_t i = 0; i < n; i++)
		bytes += strlen(protos[i]) + 1;
	l = malloc(sizeof(*l) + (n + 1) * sizeof(l->protos[0]) + bytes);
	if (l == NULL)
		goto out;
	l->n = n;
	p = (char *)&l->protos[n + 1];
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(protos[i]) + 1;

		memcpy(p, protos[i], len);
		l->protos[i] = p;
		p += len;
	}
	l->protos[n] = NULL;
	l->next = alpn_lists;
	alpn_lists = l;
out:
	pthread_mutex_unlock(&alpn_lock);
	return l ? l->protos : NULL;
}

int
tls_set_alpn(SSL *ssl, const char *const *protos)
{
	pthread_once(&ex_once, ex_init);
	return SSL_set_ex_data(ssl, ex_alpn, (void *)(uintptr_t)protos) == 1 ? 0 : -1;
}

struct tls_index *
tls_handshake_index_ref(struct tls_handshake *hs, tls_challenge_fn *hook)
{
	struct tls_index *ix;

	pthread_mutex_lock(&hs->lock);
	ix = hs->index;
	if (ix)
		atomic_fetch_add_explicit(&ix->refs, 1, memory_order_relaxed);
	if (hook)
		*hook = hs->hook;
	pthread_mutex_unlock(&hs->lock);
	return ix;
}

void
tls_handshake_publish(struct tls_handshake *hs, struct tls_index *ix)
{
	struct tls_index *old;

	pthread_mutex_lock(&hs->lock);
	old = hs->index;
	hs->index = ix;
	pthread_mutex_unlock(&hs->lock);
	tls_index_unref(old);
}

void
tls_handshake_set_hook(struct tls_handshake *hs, tls_challenge_fn fn)
{
	pthread_mutex_lock(&hs->lock);
	hs->hook = fn;
	pthread_mutex_unlock(&hs->lock);
}

/* ------------------------------------------------------------------------ */
/* Handshake callbacks                                                      */

/* The host name of the ClientHello's server_name extension, lower case and
 * without a trailing dot, into <out>.  False when absent or unusable. */
static bool
hello_server_name(SSL *ssl, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t len, list, n;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 5)
		return false;
	list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
		return false;
	n = (size_t)p[3] << 8 | p[4];
	if (n == 0 || n + 3 > list || n >= outlen)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[5 + i];

		if (ch <= 0x20 || ch >= 0x7f)
			return false;
		out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	if (out[n - 1] == '.')
		n--;
	out[n] = '\0';
	return n > 0;
}

/* True when the ClientHello's ALPN list offers <proto>. */
static bool
hello_offers_alpn(SSL *ssl, const char *proto)
{
	const unsigned char *p;
	size_t len, list, plen = strlen(proto);

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
				       &len) ||
	    len < 2)
		return false;
	list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len)
		return false;
	p += 2;
	while (list > 0) {
		size_t n = p[0];

		if (n + 1 > list)
			return false;
		if (n == plen && memcmp(p + 1, proto, plen) == 0)
			return true;
		p += n + 1;
		list -= n + 1;
	}
	return false;
}

static int
client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_handshake *hs = arg;
	char name[256];
	bool has_name = hello_server_name(ssl, name, sizeof(name));
	tls_challenge_fn hook;
	struct tls_index *ix = tls_handshake_index_ref(hs, &hook);
	const struct tls_slot *slot = NULL;
	int rc = SSL_CLIENT_HELLO_ERROR, used = 0;

	if (hello_offers_alpn(ssl, "acme-tls/1")) {
		X509 *x = NULL;
		EVP_PKEY *k = NULL;

		*alert = SSL_AD_UNRECOGNIZED_NAME;
		if (!has_name || hook == NULL || hook(name, &x, &k) < 0)
			goto out;
		if (SSL_use_cert_and_key(ssl, x, k, NULL, 1) == 1 && SSL_set_ex_data(ssl, ex_acme, hs))
			rc = SSL_CLIENT_HELLO_SUCCESS;
		else
			*alert = SSL_AD_INTERNAL_ERROR;
		X509_free(x);
		EVP_PKEY_free(k);
		goto out;
	}
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	if (ix == NULL)
		goto out;
	if (has_name)
		slot = tls_index_lookup(ix, name);
	if (slot == NULL)
		slot = &ix->dflt;
	for (int k = 0; k < TLS_KIND_COUNT; k++) {
		const struct tls_cert *c = slot->c[k];

		if (c == NULL)
			continue;
		if (SSL_use_cert_and_key(ssl, c->x509, c->key, c->chain, 1) != 1) {
			*alert = SSL_AD_INTERNAL_ERROR;
			goto out;
		}
		used++;
	}
	if (used > 0 && tls_client_auth_handshake(ssl, has_name ? name : NULL) < 0)
		*alert = SSL_AD_INTERNAL_ERROR;
	else if (used > 0)
		rc = SSL_CLIENT_HELLO_SUCCESS;
out:
	tls_index_unref(ix);
	return rc;
}

/* Accept the SNI the ClientHello callback has already looked at (without a
 * servername callback, OpenSSL would not record it in TLS 1.2 sessions). */
static int
servername_cb(SSL *ssl, int *alert, void *arg)
{
	return SSL_TLSEXT_ERR_OK;
}

static bool
alpn_find(const unsigned char *in, unsigned int inlen, const char *proto,
	  const unsigned char **out, unsigned char *outlen)
{
	size_t plen = strlen(proto);

	while (inlen > 0) {
		unsigned int n = in[0];

		if (n + 1 > inlen)
			return false;
		if (n == plen && memcmp(in + 1, proto, plen) == 0) {
			*out = in + 1;
			*outlen = (unsigned char)n;
			return true;
		}
		in += n + 1;
		inlen -= n + 1;
	}
	return false;
}

static int
alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
	       const unsigned char *in, unsigned int inlen, void *arg)
{
	if (SSL_get_ex_data(ssl, ex_acme) != NULL)
		return alpn_find(in, inlen, "acme-tls/1", out, outlen) ? SSL_TLSEXT_ERR_OK
									 : SSL_TLSEXT_ERR_ALERT_FATAL;
	const char *const *protos = SSL_get_ex_data(ssl, ex_alpn);

	/* Ours in our order of preference (h2 before http/1.1), not the
	 * client's: RFC 7301 leaves the choice to the server. */
	for (protos = protos ? protos : alpn_default; *protos; protos++)
		if (alpn_find(in, inlen, *protos, out, outlen))
			return SSL_TLSEXT_ERR_OK;
	/* Only protocols we do not speak: go on without ALPN; the client
	 * decides whether to carry on. */
	return SSL_TLSEXT_ERR_NOACK;
}

/*
 * The first record was not TLS (OpenSSL stops at its header and sends no
 * alert): answer in plain HTTP.  What the client sent is read and dropped
 * first, so that the close that follows does not reset the connection and
 * take the answer with it.
 */
void
tls_answer_plain_http(const SSL *ssl)
{
	struct tls_handshake *hs = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	int fd = SSL_get_fd(ssl);
	char buf[4096];
	size_t drained = 0;
	ssize_t n;

	if (fd < 0)
		return;
	while (drained < 65536 && (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		drained += (size_t)n;
	n = send(fd, plain_http_reply, sizeof(plain_http_reply) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n; /* best effort: the connection closes either way */
	shutdown(fd, SHUT_WR);
	if (hs)
		atomic_fetch_add_explicit(&hs->plain_http, 1, memory_order_relaxed);
}

static void
info_cb(const SSL *ssl, int where, int ret)
{
	unsigned long e;
	int reason;

	/* A handshake that stopped before any ClientHello was read, on one of
	 * the three errors OpenSSL raises for a first record that is not TLS
	 * (a mere "want read" leaves no error behind). */
	if (where != SSL_CB_ACCEPT_EXIT || ret > 0 || SSL_get_state(ssl) != TLS_ST_BEFORE)
		return;
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return;
	reason = ERR_GET_REASON(e);
	if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST ||
	    reason == SSL_R_WRONG_VERSION_NUMBER)
		tls_answer_plain_http(ssl);
}

static int
ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
	      EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_handshake *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct tls_ticket_key k;
	char digest[] = "SHA256";
	OSSL_PARAM params[3];
	int rc = -1;

	pthread_mutex_lock(&s->ticket_lock);
	if (enc) {
		k = s->keys[0];
		rc = 1;
	} else if (memcmp(key_name, s->keys[0].name, 16) == 0) {
		k = s->keys[0];
		rc = 1;
	} else if (s->have_prev && memcmp(key_name, s->keys[1].name, 16) == 0) {
		k = s->keys[1];
		rc = 2; /* good, but issue a ticket under the current key */
	} else {
		rc = 0; /* unknown or retired key: full handshake */
	}
	pthread_mutex_unlock(&s->ticket_lock);
	if (rc == 0)
		return 0;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(key_name, k.name, 16);
		if (RAND_bytes(iv, 16) != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
			rc = -1;
	} else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
		rc = -1;
	}
	if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

int
tls_handshake_rotate_keys(struct tls_handshake *s)
{
	struct tls_ticket_key fresh;

	if (RAND_bytes((unsigned char *)&fresh, sizeof(fresh)) != 1) {
		log_error("tls: no randomness for a new session-ticket key; keeping the current one");
		return -1;
	}
	pthread_mutex_lock(&s->ticket_lock);
	s->keys[1] = s->keys[0];
	s->keys[0] = fresh;
	s->have_prev = true;
	s->rotated_at = monotonic_seconds();
	pthread_mutex_unlock(&s->ticket_lock);
	OPENSSL_cleanse(&fresh, sizeof(fresh));
	log_debug("tls: rotated the session-ticket keys");
	return 0;
}

bool
tls_handshake_rotation_due(struct tls_handshake *hs, double now)
{
	bool due;

	pthread_mutex_lock(&hs->ticket_lock);
	due = now - hs->rotated_at >= (double)hs->rotate_seconds;
	pthread_mutex_unlock(&hs->ticket_lock);
	return due;
}

unsigned long long
tls_handshake_plain_http(struct tls_handshake *hs)
{
	return (unsigned long long)atomic_load_explicit(&hs->plain_http, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* The SSL_CTX                                                              */

static SSL_CTX *
make_ctx(struct tls_handshake *s, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	static const unsigned char sid_ctx[] = "portcullis";

	if (ctx == NULL)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_13) ||
	    !SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) || !SSL_CTX_set_dh_auto(ctx, 1) ||
	    !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1))
		goto fail;
	/* Client preference (Mozilla intermediate: every suite offered is good,
	 * and clients know best whether they have AES hardware). */
	SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
					 | SSL_OP_NO_CLIENT_RENEGOTIATION
#endif
	);
	/* Free the record buffers (~17 KiB each way) whenever they are empty:
	 * right for the bufferevent users of this context (the TCP relay).
	 * conn.c clears it on its connections, which would otherwise pay two
	 * allocations per request, and frees the buffers of idle ones itself. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Tickets only: no server-side session cache to share between threads. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_timeout(ctx, (long)s->rotate_seconds);
	SSL_CTX_set_app_data(ctx, s);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, s);
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, s);
	SSL_CTX_set_info_callback(ctx, info_cb);
	SSL_CTX_set_tlsext_status_cb(ctx, tls_ocsp_status_cb); /* staples only what is cached */
	if (!SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb))
		goto fail;
	return ctx;
fail:
	snprintf(err, errlen, "tls: cannot set up OpenSSL: %s", sslerr_reason("out of memory"));
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_handshake *
tls_handshake_new(unsigned rotate_seconds, char *err, size_t errlen)
{
	struct tls_handshake *hs;

	pthread_once(&ex_once, ex_init);
	hs = calloc(1, sizeof(*hs));
	if (hs == NULL) {
		snprintf(err, errlen, "tls: out of memory");
		return NULL;
	}
	pthread_mutex_init(&hs->lock, NULL);
	pthread_mutex_init(&hs->ticket_lock, NULL);
	atomic_init(&hs->plain_http, 0);
	hs->rotate_seconds = rotate_seconds;
	if (ex_acme < 0 || RAND_bytes((unsigned char *)&hs->keys[0], sizeof(hs->keys[0])) != 1) {
		snprintf(err, errlen, "tls: cannot initialise: %s", sslerr_reason("no randomness"));
		goto fail;
	}
	hs->rotated_at = monotonic_seconds();
	hs->ctx = make_ctx(hs, err, errlen);
	if (hs->ctx == NULL)
		goto fail;
	return hs;
fail:
	tls_handshake_free(hs);
	return NULL;
}

void
tls_handshake_free(struct tls_handshake *hs)
{
	if (hs == NULL)
		return;
	SSL_CTX_free(hs->ctx);
	tls_index_unref(hs->index);
	OPENSSL_cleanse(hs->keys, sizeof(hs->keys));
	pthread_mutex_destroy(&hs->lock);
	pthread_mutex_destroy(&hs->ticket_lock);
	free(hs);
}

SSL_CTX *
tls_handshake_ctx(struct tls_handshake *hs)
{
	return hs->ctx;
}

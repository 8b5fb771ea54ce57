/* tls_clientauth: client-certificate policies chosen at the handshake; see tls_clientauth.h. */
#include "tls/tls_clientauth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/sslerr.h"

struct client_policy {
	char *ca_path;
	bool required;
	X509_STORE *store;
	STACK_OF(X509_NAME) *ca_names;
	unsigned char sid_ctx[SSL_MAX_SID_CTX_LENGTH];
};

struct client_name {
	char *name;
	int policy;
};

struct tls_client_auth_map {
	atomic_int refs;
	struct client_policy *policies;
	size_t npolicies;
	struct client_name *names;
	size_t nnames;
	int dflt;
};

/* What a connection keeps (SSL ex_data). */
struct client_conn {
	struct tls_client_auth_map *map;
	const struct client_policy *policy; /* NULL: none asked for */
	bool identity_done;
	struct tls_client_identity *identity;
};

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_conn = -1;

static void
identity_free(struct tls_client_identity *id)
{
	if (id == NULL)
		return;
	free(id->subject);
	free(id->san);
	free(id);
}

static void
conn_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct client_conn *cc = ptr;

	if (cc == NULL)
		return;
	tls_client_auth_map_unref(cc->map);
	identity_free(cc->identity);
	free(cc);
}

static void
ex_init(void)
{
	ex_conn = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free_cb);
}

struct tls_client_auth_map *
tls_client_auth_map_new(void)
{
	struct tls_client_auth_map *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	atomic_init(&m->refs, 1);
	m->dflt = -1;
	return m;
}

struct tls_client_auth_map *
tls_client_auth_map_ref(struct tls_client_auth_map *m)
{
	if (m)
		atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void
tls_client_auth_map_unref(struct tls_client_auth_map *m)
{
	if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < m->npolicies; i++) {
		free(m->policies[i].ca_path);
		X509_STORE_free(m->policies[i].store);
		sk_X509_NAME_pop_free(m->policies[i].ca_names, X509_NAME_free);
	}
	for (size_t i = 0; i < m->nnames; i++)
		free(m->names[i].name);
	free(m->policies);
	free(m->names);
	free(m);
}

/* Read every certificate of the PEM bundle <path> into <p>'s store and CA
 * names; its session-id context is a digest of the certificates and the
 * mode.  Returns 0, or -1 with a reason in <err>. */
static int
policy_load(struct client_policy *p, const char *path, char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(path, "r");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	size_t n = 0;
	X509 *x;
	int rc = -1;

	p->store = X509_STORE_new();
	p->ca_names = sk_X509_NAME_new_null();
	if (bio == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno ? errno : ENOENT));
		goto out;
	}
	if (p->store == NULL || p->ca_names == NULL || md == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, p->required ? "required" : "optional", 8) != 1) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		unsigned char *der = NULL;
		int len = i2d_X509(x, &der);
		X509_NAME *name = X509_NAME_dup(X509_get_subject_name(x));

		if (len <= 0 || name == NULL || X509_STORE_add_cert(p->store, x) != 1 ||
		    EVP_DigestUpdate(md, der, (size_t)len) != 1 || !sk_X509_NAME_push(p->ca_names, name)) {
			X509_NAME_free(name);
			OPENSSL_free(der);
			X509_free(x);
			snprintf(err, errlen, "%s: cannot use a certificate: %s", path,
				 sslerr_reason("out of memory"));
			goto out;
		}
		OPENSSL_free(der);
		X509_free(x);
		n++;
	}
	ERR_clear_error(); /* the end of the file reads as an error */
	if (n == 0) {
		snprintf(err, errlen, "%s holds no PEM certificate (give the CA certificates that "
			 "issue client certificates)", path);
		goto out;
	}
	if (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen < sizeof(p->sid_ctx)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(p->sid_ctx, digest, sizeof(p->sid_ctx));
	rc = 0;
out:
	BIO_free(bio);
	EVP_MD_CTX_free(md);
	return rc;
}

int
tls_client_auth_map_policy(struct tls_client_auth_map *m, const char *ca_path, bool required,
			   char *err, size_t errlen)
{
	struct client_policy *grown, *p;

	for (size_t i = 0; i < m->npolicies; i++)
		if (m->policies[i].required == required && strcmp(m->policies[i].ca_path, ca_path) == 0)
			return (int)i;
	grown = realloc(m->policies, (m->npolicies + 1) * sizeof(*grown));
	if (grown == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->policies = grown;
	p = &m->policies[m->npolicies];
	memset(p, 0, sizeof(*p));
	p->required = required;
	p->ca_path = strdup(ca_path);
	if (p->ca_path == NULL || policy_load(p, ca_path, err, errlen) < 0) {
		if (p->ca_path == NULL)
			snprintf(err, errlen, "out of memory");
		free(p->ca_path);
		X509_STORE_free(p->store);
		sk_X509_NAME_pop_free(p->ca_names, X509_NAME_free);
		return -1;
	}
	return (int)m->npolicies++;
}

int
tls_client_auth_map_name(struct tls_client_auth_map *m, const char *name, int policy)
{
	struct client_name *grown;

	for (size_t i = 0; i < m->nnames; i++)
		if (strcmp(m->names[i].name, name) == 0)
			return 0;
	grown = realloc(m->names, (m->nnames + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	m->names = grown;
	if ((m->names[m->nnames].name = strdup(name)) == NULL)
		return -1;
	m->names[m->nnames++].policy = policy;
	return 0;
}

void
tls_client_auth_map_default(struct tls_client_auth_map *m, int policy)
{
	m->dflt = policy;
}

bool
tls_client_auth_map_active(const struct tls_client_auth_map *m)
{
	if (m->dflt >= 0)
		return true;
	for (size_t i = 0; i < m->nnames; i++)
		if (m->names[i].policy >= 0)
			return true;
	return false;
}

/* The policy of <host> (NULL or "": the default): an exact name, then the
 * "*.parent" wildcard one label up, then the default.  NULL: none. */
static const struct client_policy *
policy_of(const struct tls_client_auth_map *m, const char *host)
{
	const char *dot = host ? strchr(host, '.') : NULL;
	int p = m->dflt;
	bool found = false;

	if (host != NULL && host[0] != '\0') {
		for (size_t i = 0; i < m->nnames && !found; i++) {
			if (strcmp(m->names[i].name, host) == 0) {
				p = m->names[i].policy;
				found = true;
			}
		}
		for (size_t i = 0; i < m->nnames && !found && dot != NULL && dot != host; i++) {
			const char *n = m->names[i].name;

			if (n[0] == '*' && n[1] == '.' && strcmp(n + 1, dot) == 0) {
				p = m->names[i].policy;
				found = true;
			}
		}
	}
	return p >= 0 ? &m->policies[p] : NULL;
}

int
tls_set_client_auth(SSL *ssl, struct tls_client_auth_map *m)
{
	struct client_conn *cc;

	pthread_once(&ex_once, ex_init);
	if (ex_conn < 0 || (cc = calloc(1, sizeof(*cc))) == NULL)
		return -1;
	cc->map = tls_client_auth_map_ref(m);
	if (SSL_set_ex_data(ssl, ex_conn, cc) != 1) {
		tls_client_auth_map_unref(cc->map);
		free(cc);
		return -1;
	}
	return 0;
}

static struct client_conn *
conn_of(const SSL *ssl)
{
	pthread_once(&ex_once, ex_init);
	return ssl && ex_conn >= 0 ? SSL_get_ex_data(ssl, ex_conn) : NULL;
}

int
tls_client_auth_handshake(SSL *ssl, const char *sni)
{
	struct client_conn *cc = conn_of(ssl);
	const struct client_policy *p;
	STACK_OF(X509_NAME) *names;

	if (cc == NULL)
		return 0;
	p = cc->policy = policy_of(cc->map, sni);
	if (p == NULL) {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	names = SSL_dup_CA_list(p->ca_names);
	if (names == NULL || SSL_set1_verify_cert_store(ssl, p->store) != 1 ||
	    SSL_set_session_id_context(ssl, p->sid_ctx, sizeof(p->sid_ctx)) != 1) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		return -1;
	}
	SSL_set_client_CA_list(ssl, names);
	SSL_set_verify(ssl, SSL_VERIFY_PEER | (p->required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
		       NULL);
	return 0;
}

bool
tls_client_auth_misdirected(SSL *ssl, const char *host)
{
	struct client_conn *cc = conn_of(ssl);

	return cc != NULL && policy_of(cc->map, host) != cc->policy;
}

/* True for a SAN value that can go into a header list as it is. */
static bool
san_value_ok(const unsigned char *s, int len)
{
	if (len <= 0)
		return false;
	for (int i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == ',')
			return false;
	return true;
}

static void
san_append(BIO *out, bool *first, const char *kind, const unsigned char *s, int len)
{
	if (!san_value_ok(s, len))
		return;
	BIO_printf(out, "%s%s:%.*s", *first ? "" : ", ", kind, len, (const char *)s);
	*first = false;
}

static void
san_write(BIO *out, X509 *cert)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	bool first = true;

	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char ip[64];

		switch (g->type) {
		case GEN_DNS:
			san_append(out, &first, "DNS", ASN1_STRING_get0_data(g->d.dNSName),
				   ASN1_STRING_length(g->d.dNSName));
			break;
		case GEN_EMAIL:
			san_append(out, &first, "email", ASN1_STRING_get0_data(g->d.rfc822Name),
				   ASN1_STRING_length(g->d.rfc822Name));
			break;
		case GEN_URI:
			san_append(out, &first, "URI",
				   ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
				   ASN1_STRING_length(g->d.uniformResourceIdentifier));
			break;
		case GEN_IPADD: {
			int len = ASN1_STRING_length(g->d.iPAddress);
			int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;

			if (af && inet_ntop(af, ASN1_STRING_get0_data(g->d.iPAddress), ip,
					    sizeof(ip)) != NULL)
				san_append(out, &first, "IP", (const unsigned char *)ip,
					   (int)strlen(ip));
			break;
		}
		default:
			break;
		}
	}
	GENERAL_NAMES_free(gens);
}

/* BIO contents as a new string (NULL when out of memory). */
static char *
bio_string(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *s = malloc(n > 0 ? (size_t)n + 1 : 1);

	if (s == NULL)
		return NULL;
	if (n > 0)
		memcpy(s, data, (size_t)n);
	s[n > 0 ? n : 0] = '\0';
	return s;
}

static struct tls_client_identity *
identity_new(X509 *cert)
{
	struct tls_client_identity *id = calloc(1, sizeof(*id));
	BIO *subject = BIO_new(BIO_s_mem()), *san = BIO_new(BIO_s_mem());
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (id == NULL || subject == NULL || san == NULL ||
	    X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 ||
	    X509_NAME_print_ex(subject, X509_get_subject_name(cert), 0,
			       XN_FLAG_RFC2253) < 0)
		goto fail;
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(id->sha256 + 2 * i, 3, "%02x", md[i]);
	san_write(san, cert);
	id->subject = bio_string(subject);
	id->san = bio_string(san);
	if (id->subject == NULL || id->san == NULL)
		goto fail;
	/* RFC 2253 escapes bytes past ASCII (\XX); nothing else may slip into
	 * a header value. */
	for (char *c = id->subject; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	BIO_free(subject);
	BIO_free(san);
	return id;
fail:
	BIO_free(subject);
	BIO_free(san);
	identity_free(id);
	return NULL;
}

const struct tls_client_identity *
tls_client_identity(SSL *ssl)
{
	struct client_conn *cc = conn_of(ssl);
	X509 *cert;

	if (cc == NULL || cc->policy == NULL)
		return NULL;
	if (!cc->identity_done) {
		cc->identity_done = true;
		cert = SSL_get0_peer_certificate(ssl);
		if (cert != NULL && SSL_get_verify_result(ssl) == X509_V_OK)
			cc->identity = identity_new(cert);
	}
	return cc->identity;
}

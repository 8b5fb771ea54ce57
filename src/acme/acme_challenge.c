/* acme_challenge: thread-safe registry of pending ACME challenges; see acme_challenge.h. */
#include "acme/acme_challenge.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/tls1.h>
#include <openssl/x509v3.h>

#include "acme/acme_jws.h"
#include "acme/acme_store.h"

struct http01_entry {
	struct http01_entry *next;
	char *token;
	char *keyauth;
};

struct tlsalpn01_entry {
	struct tlsalpn01_entry *next;
	char *name;
	X509 *cert;
	EVP_PKEY *key;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http01_entry *http01_list;
static struct tlsalpn01_entry *tlsalpn01_list;
static atomic_uint_fast64_t served_http01;
static atomic_uint_fast64_t served_tlsalpn01;
static char *shared_dir;   /* guarded by registry_lock */

int
acme_challenge_set_shared_dir(const char *dir, char *err, size_t errlen)
{
	char sub[4200];
	char *copy = NULL;

	if (dir != NULL) {
		snprintf(sub, sizeof(sub), "%s/http-01", dir);
		if (acme_store_mkdirs(sub, err, errlen) != 0)
			return -1;
		snprintf(sub, sizeof(sub), "%s/tls-alpn-01", dir);
		if (acme_store_mkdirs(sub, err, errlen) != 0)
			return -1;
		copy = strdup(dir);
		if (copy == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	pthread_mutex_lock(&registry_lock);
	free(shared_dir);
	shared_dir = copy;
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

/* True if <s> is safe as a file name: [A-Za-z0-9._-], no leading dot. */
static bool
safe_file_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 255 || s[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* The shared file for <key> of <kind> into <out>; false if sharing is off. */
static bool
shared_path(const char *kind, const char *key, char *out, size_t outlen)
{
	bool on;

	if (!safe_file_name(key))
		return false;
	pthread_mutex_lock(&registry_lock);
	on = shared_dir != NULL &&
	     (size_t)snprintf(out, outlen, "%s/%s/%s", shared_dir, kind, key) < outlen;
	pthread_mutex_unlock(&registry_lock);
	return on;
}

static void
shared_write(const char *kind, const char *key, const char *keyauth)
{
	char path[4400], err[256];

	if (shared_path(kind, key, path, sizeof(path)))
		(void)acme_store_write(path, keyauth, strlen(keyauth), 0600, err, sizeof(err));
}

static void
shared_remove(const char *kind, const char *key)
{
	char path[4400];

	if (shared_path(kind, key, path, sizeof(path)))
		unlink(path);
}

/* The key authorization another instance published, in a new string, or NULL. */
static char *
shared_read(const char *kind, const char *key)
{
	char path[4400], err[256];
	char *data;
	size_t len;

	if (!shared_path(kind, key, path, sizeof(path)))
		return NULL;
	data = acme_store_read(path, &len, err, sizeof(err));
	if (data != NULL && (len == 0 || len > 512 || strlen(data) != len)) {
		free(data);
		return NULL;
	}
	return data;
}

static void
http01_entry_free(struct http01_entry *e)
{
	if (e == NULL)
		return;
	free(e->token);
	if (e->keyauth != NULL)
		OPENSSL_cleanse(e->keyauth, strlen(e->keyauth));
	free(e->keyauth);
	free(e);
}

static void
tlsalpn01_entry_free(struct tlsalpn01_entry *e)
{
	if (e == NULL)
		return;
	free(e->name);
	X509_free(e->cert);
	EVP_PKEY_free(e->key);
	free(e);
}

int
acme_challenge_http01_add(const char *token, const char *keyauth)
{
	struct http01_entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return -1;
	e->token = strdup(token);
	e->keyauth = strdup(keyauth);
	if (e->token == NULL || e->keyauth == NULL) {
		http01_entry_free(e);
		return -1;
	}
	acme_challenge_http01_remove(token);
	shared_write("http-01", token, keyauth);
	pthread_mutex_lock(&registry_lock);
	e->next = http01_list;
	http01_list = e;
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

void
acme_challenge_http01_remove(const char *token)
{
	struct http01_entry **pp, *gone = NULL;

	pthread_mutex_lock(&registry_lock);
	for (pp = &http01_list; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->token, token) == 0) {
			gone = *pp;
			*pp = gone->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (gone != NULL)
		shared_remove("http-01", token);
	http01_entry_free(gone);
}

bool
acme_http01_lookup(const char *token, char *keyauth_out, size_t len)
{
	struct http01_entry *e;
	bool found = false;

	if (token == NULL || len == 0)
		return false;
	pthread_mutex_lock(&registry_lock);
	for (e = http01_list; e != NULL; e = e->next) {
		if (strcmp(e->token, token) == 0) {
			size_t n = strlen(e->keyauth);

			if (n < len) {
				memcpy(keyauth_out, e->keyauth, n + 1);
				found = true;
			}
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (!found) {
		char *shared = shared_read("http-01", token);

		if (shared != NULL && strlen(shared) < len) {
			memcpy(keyauth_out, shared, strlen(shared) + 1);
			found = true;
		}
		free(shared);
	}
	if (found)
		atomic_fetch_add_explicit(&served_http01, 1, memory_order_relaxed);
	return found;
}

X509 *
acme_challenge_tlsalpn01_build(const char *name, const char *keyauth, EVP_PKEY **key_out)
{
	static const char acme_identifier_oid[] = "1.3.6.1.5.5.7.1.31";
	unsigned char value[2 + SHA256_DIGEST_LENGTH];
	EVP_PKEY *key = acme_jws_key_generate();
	X509 *x = X509_new();
	X509_NAME *subj = NULL;
	ASN1_OBJECT *obj = NULL;
	ASN1_OCTET_STRING *oct = NULL;
	X509_EXTENSION *ext = NULL;
	GENERAL_NAMES *sans = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	BIGNUM *serial = BN_new();
	bool ok = false;

	if (key == NULL || x == NULL || serial == NULL)
		goto done;
	if (X509_set_version(x, 2) != 1 || BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL)
		goto done;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -86400) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400) == NULL)
		goto done;
	subj = X509_NAME_new();
	if (subj == NULL ||
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1,
				       0) != 1 ||
	    X509_set_subject_name(x, subj) != 1 || X509_set_issuer_name(x, subj) != 1 ||
	    X509_set_pubkey(x, key) != 1)
		goto done;

	/* subjectAltName: dNSName <name> */
	sans = GENERAL_NAMES_new();
	gn = GENERAL_NAME_new();
	ia5 = ASN1_IA5STRING_new();
	if (sans == NULL || gn == NULL || ia5 == NULL || ASN1_STRING_set(ia5, name, -1) != 1)
		goto done;
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	ia5 = NULL;
	if (sk_GENERAL_NAME_push(sans, gn) == 0)
		goto done;
	gn = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) != 1)
		goto done;

	/* acmeIdentifier: critical, extnValue = DER OCTET STRING (04 20 || SHA-256) */
	value[0] = 0x04;
	value[1] = SHA256_DIGEST_LENGTH;
	SHA256((const unsigned char *)keyauth, strlen(keyauth), value + 2);
	obj = OBJ_txt2obj(acme_identifier_oid, 1);
	oct = ASN1_OCTET_STRING_new();
	if (obj == NULL || oct == NULL || ASN1_OCTET_STRING_set(oct, value, sizeof(value)) != 1)
		goto done;
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, oct);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
		goto done;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto done;
	ok = true;
done:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(oct);
	ASN1_OBJECT_free(obj);
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(sans);
	X509_NAME_free(subj);
	BN_free(serial);
	if (!ok) {
		X509_free(x);
		EVP_PKEY_free(key);
		return NULL;
	}
	*key_out = key;
	return x;
}

int
acme_challenge_tlsalpn01_add(const char *name, const char *keyauth)
{
	struct tlsalpn01_entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return -1;
	e->name = strdup(name);
	e->cert = acme_challenge_tlsalpn01_build(name, keyauth, &e->key);
	if (e->name == NULL || e->cert == NULL) {
		tlsalpn01_entry_free(e);
		return -1;
	}
	acme_challenge_tlsalpn01_remove(name);
	shared_write("tls-alpn-01", e->name, keyauth);
	pthread_mutex_lock(&registry_lock);
	e->next = tlsalpn01_list;
	tlsalpn01_list = e;
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

void
acme_challenge_tlsalpn01_remove(const char *name)
{
	struct tlsalpn01_entry **pp, *gone = NULL;

	pthread_mutex_lock(&registry_lock);
	for (pp = &tlsalpn01_list; *pp != NULL; pp = &(*pp)->next) {
		if (strcasecmp((*pp)->name, name) == 0) {
			gone = *pp;
			*pp = gone->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (gone != NULL)
		shared_remove("tls-alpn-01", gone->name);
	tlsalpn01_entry_free(gone);
}

int
acme_tlsalpn01_cert(const char *sni, X509 **cert, EVP_PKEY **key)
{
	struct tlsalpn01_entry *e;
	int rc = -1;

	if (sni == NULL)
		return -1;
	pthread_mutex_lock(&registry_lock);
	for (e = tlsalpn01_list; e != NULL; e = e->next) {
		if (strcasecmp(e->name, sni) == 0) {
			X509_up_ref(e->cert);
			EVP_PKEY_up_ref(e->key);
			*cert = e->cert;
			*key = e->key;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (rc != 0) {
		char lower[256], *shared;
		size_t i, n = strlen(sni);

		if (n >= sizeof(lower))
			return -1;
		for (i = 0; i <= n; i++)
			lower[i] = (char)(sni[i] >= 'A' && sni[i] <= 'Z' ? sni[i] + 32 : sni[i]);
		shared = shared_read("tls-alpn-01", lower);
		if (shared != NULL) {
			*cert = acme_challenge_tlsalpn01_build(lower, shared, key);
			rc = *cert != NULL ? 0 : -1;
			OPENSSL_cleanse(shared, strlen(shared));
			free(shared);
		}
	}
	if (rc == 0)
		atomic_fetch_add_explicit(&served_tlsalpn01, 1, memory_order_relaxed);
	return rc;
}

bool
acme_tlsalpn01_alpn_select(const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned int inlen)
{
	static const unsigned char proto[] = ACME_TLSALPN01_PROTOCOL;
	unsigned int i = 0;

	while (i < inlen) {
		unsigned int n = in[i];

		if (i + 1 + n > inlen)
			return false;
		if (n == sizeof(proto) - 1 && memcmp(in + i + 1, proto, n) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return true;
		}
		i += 1 + n;
	}
	return false;
}

/* The host_name of a ClientHello's server_name extension, into <out>. */
static bool
client_hello_sni(SSL *ssl, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t len, list, n;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 5)
		return false;
	list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
		return false;
	n = (size_t)p[3] << 8 | p[4];
	if (n + 5 > len || n == 0 || n >= outlen || memchr(p + 5, '\0', n) != NULL)
		return false;
	memcpy(out, p + 5, n);
	out[n] = '\0';
	return true;
}

bool
acme_tlsalpn01_client_hello(SSL *ssl, int *alert)
{
	const unsigned char *p, *sel;
	unsigned char sellen;
	size_t len, list;
	char sni[256];
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	bool ok;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
				      &len) != 1 || len < 2)
		return false;
	list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len || !acme_tlsalpn01_alpn_select(&sel, &sellen, p + 2, (unsigned)list))
		return false;
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	if (!client_hello_sni(ssl, sni, sizeof(sni)) || acme_tlsalpn01_cert(sni, &cert, &key) != 0)
		return true;
	ok = SSL_use_certificate(ssl, cert) == 1 && SSL_use_PrivateKey(ssl, key) == 1;
	X509_free(cert);
	EVP_PKEY_free(key);
	if (!ok)
		*alert = SSL_AD_INTERNAL_ERROR;
	else
		*alert = 0;
	return true;
}

uint64_t
acme_challenge_served(enum acme_challenge_type type)
{
	if (type == ACME_CHALLENGE_HTTP01)
		return atomic_load_explicit(&served_http01, memory_order_relaxed);
	return atomic_load_explicit(&served_tlsalpn01, memory_order_relaxed);
}

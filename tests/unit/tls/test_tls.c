/*
 * Unit tests for tls and localca: real handshakes between an OpenSSL client
 * and the store's SSL_CTX over in-memory BIO pairs.  SNI selection (exact,
 * wildcard, default), ECDSA beside RSA, load errors with their messages,
 * reload with an in-flight handshake finishing on the old certificate,
 * session tickets across key rotations, the TLS-ALPN-01 hook, certificates
 * installed at run time, the plain-HTTP answer, the local CA (files, modes,
 * a chain that verifies) and the metrics text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/localca.h"
#include "tls/tls.h"

static char tmpdir[256];

static const char *
path_in(const char *name)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

static int
group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tls.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Making test certificates                                                  */

enum { KEY_EC, KEY_RSA };

static EVP_PKEY *
new_key(int kind)
{
	return kind == KEY_EC ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
			  : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

/* A self-signed certificate with subject CN <cn> and subjectAltName <san>
 * ("DNS:a.test,IP:127.0.0.1", or NULL for none), valid from now+<from> to
 * now+<to> seconds; PEM into <prefix>.crt and <prefix>.key in tmpdir. */
static void
write_cert_with_key(const char *prefix, const char *cn, const char *san, EVP_PKEY *key,
		    long from, long to)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	char p[512];
	FILE *f;

	assert_non_null(x);
	assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
					       -1, -1, 0));
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)rand() + 1);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	if (san) {
		X509V3_CTX ctx;
		X509_EXTENSION *ext;

		X509V3_set_ctx_nodb(&ctx);
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	snprintf(p, sizeof(p), "%s/%s.crt.tmp", tmpdir, prefix);
	f = fopen(p, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	snprintf(p, sizeof(p), "%s/%s.key.tmp", tmpdir, prefix);
	f = fopen(p, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	/* Replace atomically, as a careful writer does. */
	{
		char a[512], b[512];

		snprintf(a, sizeof(a), "%s/%s.crt.tmp", tmpdir, prefix);
		snprintf(b, sizeof(b), "%s/%s.crt", tmpdir, prefix);
		assert_int_equal(rename(a, b), 0);
		snprintf(a, sizeof(a), "%s/%s.key.tmp", tmpdir, prefix);
		snprintf(b, sizeof(b), "%s/%s.key", tmpdir, prefix);
		assert_int_equal(rename(a, b), 0);
	}
	X509_NAME_free(name);
	X509_free(x);
}

static void
write_cert(const char *prefix, const char *cn, const char *san, int kind, long from, long to)
{
	EVP_PKEY *key = new_key(kind);

	assert_non_null(key);
	write_cert_with_key(prefix, cn, san, key, from, to);
	EVP_PKEY_free(key);
}

static char *
slurp(const char *path)
{
	size_t len;
	char err[256];
	char *s = localca_read_file(path, &len, err, sizeof(err));

	if (s == NULL)
		fail_msg("%s", err);
	return s;
}

static struct tls_file_pair
pair(const char *prefix)
{
	char c[256], k[256];

	snprintf(c, sizeof(c), "%s.crt", prefix);
	snprintf(k, sizeof(k), "%s.key", prefix);
	return (struct tls_file_pair){strdup(path_in(c)), strdup(path_in(k)), NULL, 0};
}

static void
pair_free(struct tls_file_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((void *)(uintptr_t)p[i].cert);
		free((void *)(uintptr_t)p[i].key);
	}
}

static struct tls_store *
store_of(struct tls_file_pair *files, size_t n, const char *default_name)
{
	struct tls_options opt = {.files = files, .nfiles = n, .default_name = default_name};
	char err[2048];
	struct tls_store *s = tls_store_new(&opt, err, sizeof(err));

	if (s == NULL)
		fail_msg("tls_store_new: %s", err);
	return s;
}

/* ------------------------------------------------------------------------ */
/* In-memory handshakes                                                     */

struct conn {
	SSL *cli;
	SSL *srv;
	bool ok;
};

struct client_opts {
	const char *sni;
	const char *sigalgs;     /* TLS 1.3 / 1.2 signature algorithms */
	const char *ciphers12;   /* forces TLS 1.2 when set */
	int max_version;         /* 0 = TLS 1.3 */
	const char *alpn;        /* comma list */
	SSL_SESSION *session;
	const char *ca_file;     /* verify against it */
	const char *verify_host;
};

static SSL_CTX *
client_ctx(const struct client_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_max_proto_version(ctx, o->max_version ? o->max_version
					   : o->ciphers12 ? TLS1_2_VERSION
							  : TLS1_3_VERSION);
	if (o->sigalgs)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(ctx, o->sigalgs), 1);
	if (o->ciphers12)
		assert_int_equal(SSL_CTX_set_cipher_list(ctx, o->ciphers12), 1);
	if (o->ca_file) {
		assert_int_equal(SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL), 1);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
	return ctx;
}

/* Move bytes until both sides are done or one fails.  <steps> limits the
 * rounds (0 = until the end). */
static void
pump(struct conn *c, int steps)
{
	for (int i = 0; steps == 0 || i < steps; i++) {
		int rc = SSL_do_handshake(c->cli);
		int rs = SSL_do_handshake(c->srv);

		if (rc == 1 && rs == 1) {
			c->ok = true;
			return;
		}
		if ((rc <= 0 && SSL_get_error(c->cli, rc) != SSL_ERROR_WANT_READ) ||
		    (rs <= 0 && SSL_get_error(c->srv, rs) != SSL_ERROR_WANT_READ)) {
			c->ok = false;
			ERR_clear_error();
			return;
		}
		if (i > 50)
			fail_msg("handshake does not finish");
	}
}

static struct conn
start(struct tls_store *s, const struct client_opts *o)
{
	SSL_CTX *cctx = client_ctx(o);
	struct conn c = {SSL_new(cctx), SSL_new(tls_store_ctx(s)), false};
	BIO *b1, *b2;

	SSL_CTX_free(cctx);
	assert_int_equal(BIO_new_bio_pair(&b1, 0, &b2, 0), 1);
	SSL_set_bio(c.cli, b1, b1);
	SSL_set_bio(c.srv, b2, b2);
	SSL_set_connect_state(c.cli);
	SSL_set_accept_state(c.srv);
	if (o->sni)
		SSL_set_tlsext_host_name(c.cli, o->sni);
	if (o->verify_host)
		SSL_set1_host(c.cli, o->verify_host);
	if (o->alpn) {
		unsigned char wire[128];
		size_t n = 0;
		const char *p = o->alpn;

		while (*p) {
			size_t len = strcspn(p, ",");

			wire[n++] = (unsigned char)len;
			memcpy(wire + n, p, len);
			n += len;
			p += len + (p[len] == ',');
		}
		assert_int_equal(SSL_set_alpn_protos(c.cli, wire, (unsigned)n), 0);
	}
	if (o->session)
		SSL_set_session(c.cli, o->session);
	return c;
}

static struct conn
handshake(struct tls_store *s, const struct client_opts *o)
{
	struct conn c = start(s, o);

	pump(&c, 0);
	return c;
}

static void
conn_free(struct conn *c)
{
	/* As after a close_notify: OpenSSL marks the session of a connection
	 * freed without one as not resumable. */
	if (c->ok)
		SSL_set_shutdown(c->cli, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c->cli);
	SSL_free(c->srv);
}

/* Subject CN of the certificate the client saw, into a static buffer. */
static const char *
peer_cn(const struct conn *c)
{
	static char cn[256];
	X509 *x = SSL_get0_peer_certificate(c->cli);

	cn[0] = '\0';
	if (x)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	return cn;
}

static const char *
served_cn(struct tls_store *s, const struct client_opts *o)
{
	static char cn[256];
	struct conn c = handshake(s, o);

	if (!c.ok)
		snprintf(cn, sizeof(cn), "(handshake failed)");
	else
		snprintf(cn, sizeof(cn), "%s", peer_cn(&c));
	conn_free(&c);
	return cn;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

static void
test_name_matches(void **state)
{
	assert_true(tls_name_matches("a.test", "a.test"));
	assert_true(tls_name_matches("A.Test", "a.test"));
	assert_true(tls_name_matches("*.wild.test", "x.wild.test"));
	assert_false(tls_name_matches("*.wild.test", "wild.test"));
	assert_false(tls_name_matches("*.wild.test", "y.x.wild.test"));
	assert_false(tls_name_matches("*.wild.test", ".wild.test"));
	assert_false(tls_name_matches("a.test", "b.test"));
}

static void
test_sni_exact_wildcard_default(void **state)
{
	struct tls_file_pair files[3];
	struct tls_store *s;

	write_cert("dflt", "default-cert", "DNS:default.test", KEY_EC, -60, 86400);
	write_cert("exact", "exact-cert", "DNS:a.test,DNS:b.test", KEY_EC, -60, 86400);
	write_cert("wild", "wild-cert", "DNS:*.wild.test", KEY_EC, -60, 86400);
	files[0] = pair("dflt");
	files[1] = pair("exact");
	files[2] = pair("wild");
	s = store_of(files, 3, NULL);

	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "a.test"}), "exact-cert");
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "b.test"}), "exact-cert");
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "A.TEST."}), "exact-cert");
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "x.wild.test"}), "wild-cert");
	/* A wildcard covers one label only. */
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "y.x.wild.test"}),
			    "default-cert");
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "wild.test"}), "default-cert");
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "unknown.test"}),
			    "default-cert");
	assert_string_equal(served_cn(s, &(struct client_opts){0}), "default-cert");
	tls_store_free(s);

	/* An explicit default name. */
	s = store_of(files, 3, "x.wild.test");
	assert_string_equal(served_cn(s, &(struct client_opts){0}), "wild-cert");
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "a.test"}), "exact-cert");
	tls_store_free(s);
	pair_free(files, 3);
}

static void
test_ecdsa_beside_rsa(void **state)
{
	struct tls_file_pair files[2];
	struct tls_store *s;
	struct conn c;

	write_cert("both-ec", "ec-cert", "DNS:both.test", KEY_EC, -60, 86400);
	write_cert("both-rsa", "rsa-cert", "DNS:both.test", KEY_RSA, -60, 86400);
	files[0] = pair("both-ec");
	files[1] = pair("both-rsa");
	s = store_of(files, 2, NULL);

	/* TLS 1.3: the signature algorithms decide. */
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "both.test",
								.sigalgs = "ECDSA+SHA256"}),
			    "ec-cert");
	assert_string_equal(
		served_cn(s, &(struct client_opts){.sni = "both.test",
						   .sigalgs = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"}),
		"rsa-cert");
	/* TLS 1.2: the cipher suite decides. */
	assert_string_equal(
		served_cn(s, &(struct client_opts){.sni = "both.test",
						   .ciphers12 = "ECDHE-RSA-AES128-GCM-SHA256"}),
		"rsa-cert");
	assert_string_equal(
		served_cn(s, &(struct client_opts){.sni = "both.test",
						   .ciphers12 = "ECDHE-ECDSA-AES128-GCM-SHA256"}),
		"ec-cert");
	/* Clients without SNI get the default name's pair, both kinds. */
	assert_string_equal(served_cn(s, &(struct client_opts){.ciphers12 = "ECDHE-RSA-AES256-GCM-SHA384"}),
			    "rsa-cert");
	/* Outside Mozilla intermediate: refused. */
	c = handshake(s, &(struct client_opts){.sni = "both.test", .ciphers12 = "AES128-SHA"});
	assert_false(c.ok);
	conn_free(&c);
	tls_store_free(s);
	pair_free(files, 2);
}

/* Expect tls_check_files on <p> to fail with an error containing every
 * string of <want> (NULL-terminated). */
static void
expect_error(struct tls_file_pair p, const char *const *want)
{
	char err[1024] = "";

	assert_int_equal(tls_check_files(&p, err, sizeof(err)), -1);
	assert_null(strchr(err, '\n'));
	for (; *want; want++)
		if (strstr(err, *want) == NULL)
			fail_msg("error \"%s\" lacks \"%s\"", err, *want);
}

static void
test_load_errors(void **state)
{
	struct tls_file_pair p;
	EVP_PKEY *k1 = new_key(KEY_EC), *k2 = new_key(KEY_EC);
	FILE *f;

	/* Missing file. */
	p = (struct tls_file_pair){path_in("nope.crt"), path_in("nope.key"), NULL, 0};
	expect_error(p, (const char *const[]){path_in("nope.crt"), "No such file", NULL});

	/* Key of another certificate. */
	write_cert_with_key("mm-a", "a", "DNS:mm.test", k1, -60, 86400);
	write_cert_with_key("mm-b", "b", "DNS:mm.test", k2, -60, 86400);
	p = (struct tls_file_pair){path_in("mm-a.crt"), path_in("mm-b.key"), NULL, 0};
	expect_error(p, (const char *const[]){path_in("mm-b.key"), "does not match",
					       path_in("mm-a.crt"), NULL});

	/* Expired, not yet valid. */
	write_cert("old", "old", "DNS:old.test", KEY_EC, -86400 * 10, -86400);
	p = (struct tls_file_pair){path_in("old.crt"), path_in("old.key"), NULL, 0};
	expect_error(p, (const char *const[]){path_in("old.crt"), "expired on", NULL});
	write_cert("future", "future", "DNS:future.test", KEY_EC, 86400, 86400 * 10);
	p = (struct tls_file_pair){path_in("future.crt"), path_in("future.key"), NULL, 0};
	expect_error(p, (const char *const[]){path_in("future.crt"), "not valid before", NULL});

	/* No subjectAltName; a name it does not cover. */
	write_cert("nosan", "nosan.test", NULL, KEY_EC, -60, 86400);
	p = (struct tls_file_pair){path_in("nosan.crt"), path_in("nosan.key"), NULL, 0};
	expect_error(p, (const char *const[]){path_in("nosan.crt"), "no subjectAltName", NULL});
	write_cert("cover", "cover", "DNS:*.cover.test,IP:127.0.0.1,IP:::1", KEY_EC, -60, 86400);
	p = (struct tls_file_pair){path_in("cover.crt"), path_in("cover.key"),
				   (const char *const[]){"x.cover.test", "0:0::0:0:1", "other.test"}, 3};
	expect_error(p, (const char *const[]){path_in("cover.crt"), "does not cover other.test",
					       "*.cover.test", NULL});
	p.nnames = 1;
	{
		char err[256];

		assert_int_equal(tls_check_files(&p, err, sizeof(err)), 0);
	}

	/* Not PEM at all; a key file without a key. */
	f = fopen(path_in("garbage.crt"), "w");
	fputs("hello\n", f);
	fclose(f);
	p = (struct tls_file_pair){path_in("garbage.crt"), path_in("cover.key"), NULL, 0};
	expect_error(p, (const char *const[]){path_in("garbage.crt"), "no PEM certificate", NULL});
	p = (struct tls_file_pair){path_in("cover.crt"), path_in("cover.crt"), NULL, 0};
	expect_error(p, (const char *const[]){path_in("cover.crt"), "no PEM private key", NULL});

	/* The store reports every bad file, one per line. */
	{
		struct tls_file_pair two[2] = {
			{path_in("old.crt"), path_in("old.key"), NULL, 0},
			{path_in("mm-a.crt"), path_in("mm-b.key"), NULL, 0},
		};
		struct tls_options opt = {.files = two, .nfiles = 2};
		char err[2048];

		assert_null(tls_store_new(&opt, err, sizeof(err)));
		assert_non_null(strstr(err, "expired on"));
		assert_non_null(strstr(err, "\n"));
		assert_non_null(strstr(strchr(err, '\n'), "does not match"));
	}
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

static void
test_combined_pem(void **state)
{
	char *c, *k, *both;
	FILE *f;
	struct tls_file_pair p;
	char err[512];

	write_cert("comb", "comb", "DNS:comb.test", KEY_EC, -60, 86400);
	c = slurp(path_in("comb.crt"));
	k = slurp(path_in("comb.key"));
	both = malloc(strlen(c) + strlen(k) + 1);
	strcpy(both, k);
	strcat(both, c);
	f = fopen(path_in("comb.pem"), "w");
	fputs(both, f);
	fclose(f);
	p = (struct tls_file_pair){path_in("comb.pem"), path_in("comb.pem"), NULL, 0};
	assert_int_equal(tls_check_files(&p, err, sizeof(err)), 0);
	free(c);
	free(k);
	free(both);
}

static void
test_reload_inflight_keeps_old(void **state)
{
	struct tls_file_pair files[1];
	struct tls_store *s;
	struct conn early, late;
	EVP_PKEY *k = new_key(KEY_EC);

	write_cert("rl", "first", "DNS:rl.test", KEY_EC, -60, 86400);
	files[0] = pair("rl");
	s = store_of(files, 1, NULL);
	assert_int_equal(tls_store_poll(s), 0); /* nothing changed */

	/* A handshake whose ClientHello the server has processed ... */
	early = start(s, &(struct client_opts){.sni = "rl.test"});
	pump(&early, 1);
	assert_false(early.ok);

	/* ... the files change on disk ... */
	write_cert("rl", "second", "DNS:rl.test", KEY_EC, -60, 86400);
	assert_int_equal(tls_store_poll(s), 1);
	assert_int_equal(tls_store_poll(s), 0);

	/* ... it finishes on the old certificate; new ones get the new one. */
	pump(&early, 0);
	assert_true(early.ok);
	assert_string_equal(peer_cn(&early), "first");
	late = handshake(s, &(struct client_opts){.sni = "rl.test"});
	assert_true(late.ok);
	assert_string_equal(peer_cn(&late), "second");
	conn_free(&early);
	conn_free(&late);

	/* A bad replacement (key of another certificate) keeps the last good one. */
	write_cert_with_key("rl-other", "third", "DNS:rl.test", k, -60, 86400);
	assert_int_equal(rename(path_in("rl-other.crt"), path_in("rl.crt")), 0);
	assert_int_equal(tls_store_poll(s), 0);
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "rl.test"}), "second");
	/* The matching key arrives: picked up. */
	assert_int_equal(rename(path_in("rl-other.key"), path_in("rl.key")), 0);
	assert_int_equal(tls_store_poll(s), 1);
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "rl.test"}), "third");

	/* A Kubernetes-style symlink swap. */
	{
		struct tls_file_pair sp[1] = {{path_in("k8s/tls.crt"), path_in("k8s/tls.key"), NULL, 0}};
		struct tls_store *ks;
		char cmd[2048];

		write_cert("k8s-v1", "k8s-one", "DNS:k.test", KEY_EC, -60, 86400);
		write_cert("k8s-v2", "k8s-two", "DNS:k.test", KEY_EC, -60, 86400);
		snprintf(cmd, sizeof(cmd),
			 "set -e; cd '%s'; mkdir -p k8s/v1 k8s/v2; cp k8s-v1.crt k8s/v1/tls.crt; "
			 "cp k8s-v1.key k8s/v1/tls.key; cp k8s-v2.crt k8s/v2/tls.crt; "
			 "cp k8s-v2.key k8s/v2/tls.key; ln -s v1 k8s/..data; "
			 "ln -s ..data/tls.crt k8s/tls.crt; ln -s ..data/tls.key k8s/tls.key",
			 tmpdir);
		assert_int_equal(system(cmd), 0);
		ks = store_of(sp, 1, NULL);
		assert_string_equal(served_cn(ks, &(struct client_opts){.sni = "k.test"}), "k8s-one");
		snprintf(cmd, sizeof(cmd), "set -e; cd '%s/k8s'; ln -s v2 ..data_tmp; mv -T ..data_tmp ..data",
			 tmpdir);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(tls_store_poll(ks), 1);
		assert_string_equal(served_cn(ks, &(struct client_opts){.sni = "k.test"}), "k8s-two");
		tls_store_free(ks);
	}
	EVP_PKEY_free(k);
	tls_store_free(s);
	pair_free(files, 1);
}

/* A session from a full handshake at <version>; NULL if none. */
static SSL_SESSION *
full_session(struct tls_store *s, int version)
{
	struct conn c = handshake(s, &(struct client_opts){.sni = "t.test", .max_version = version});
	SSL_SESSION *sess;
	char buf[1];

	assert_true(c.ok);
	/* TLS 1.3 tickets arrive after the handshake. */
	SSL_read(c.cli, buf, sizeof(buf));
	ERR_clear_error();
	sess = SSL_get1_session(c.cli);
	assert_true(SSL_SESSION_is_resumable(sess));
	assert_true(SSL_SESSION_has_ticket(sess));
	conn_free(&c);
	return sess;
}

static bool
resumes(struct tls_store *s, SSL_SESSION *sess, int version)
{
	struct conn c = handshake(s, &(struct client_opts){.sni = "t.test", .session = sess,
							   .max_version = version});
	bool reused;

	assert_true(c.ok);
	reused = SSL_session_reused(c.cli);
	conn_free(&c);
	return reused;
}

static void
test_tickets_rotation(void **state)
{
	struct tls_file_pair files[1];
	struct tls_store *s, *other;
	int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};

	write_cert("tk", "tk", "DNS:t.test", KEY_EC, -60, 86400);
	files[0] = pair("tk");
	s = store_of(files, 1, NULL);
	other = store_of(files, 1, NULL);
	for (size_t v = 0; v < 2; v++) {
		SSL_SESSION *sess = full_session(s, versions[v]);

		assert_true(resumes(s, sess, versions[v]));
		/* Another process (its own keys) cannot decrypt the ticket. */
		assert_false(resumes(other, sess, versions[v]));
		SSL_SESSION_free(sess);

		sess = full_session(s, versions[v]);
		assert_int_equal(tls_store_rotate_ticket_keys(s), 0);
		assert_true(resumes(s, sess, versions[v])); /* the previous key decrypts */
		assert_int_equal(tls_store_rotate_ticket_keys(s), 0);
		assert_false(resumes(s, sess, versions[v])); /* retired */
		SSL_SESSION_free(sess);
	}
	tls_store_free(other);
	tls_store_free(s);
	pair_free(files, 1);
}

static X509 *hook_cert;
static EVP_PKEY *hook_key;
static int hook_calls;
static char hook_last[256];

static int
test_hook(const char *sni, X509 **cert, EVP_PKEY **key)
{
	hook_calls++;
	snprintf(hook_last, sizeof(hook_last), "%s", sni);
	if (strcmp(sni, "acme.test") != 0)
		return -1;
	X509_up_ref(hook_cert);
	EVP_PKEY_up_ref(hook_key);
	*cert = hook_cert;
	*key = hook_key;
	return 0;
}

static void
test_acme_alpn_hook(void **state)
{
	struct tls_file_pair files[1];
	struct tls_store *s;
	struct conn c;
	const unsigned char *proto;
	unsigned int plen;
	FILE *f;

	write_cert("norm", "normal-cert", "DNS:acme.test", KEY_EC, -60, 86400);
	write_cert("chal", "challenge-cert", "DNS:acme.test", KEY_EC, -60, 86400);
	files[0] = pair("norm");
	s = store_of(files, 1, NULL);

	/* No hook registered: acme-tls/1 fails. */
	c = handshake(s, &(struct client_opts){.sni = "acme.test", .alpn = "acme-tls/1"});
	assert_false(c.ok);
	conn_free(&c);

	f = fopen(path_in("chal.crt"), "r");
	hook_cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	f = fopen(path_in("chal.key"), "r");
	hook_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	tls_store_set_challenge_hook(s, test_hook);

	c = handshake(s, &(struct client_opts){.sni = "acme.test", .alpn = "acme-tls/1"});
	assert_true(c.ok);
	assert_string_equal(peer_cn(&c), "challenge-cert");
	assert_string_equal(hook_last, "acme.test");
	SSL_get0_alpn_selected(c.cli, &proto, &plen);
	assert_int_equal(plen, 10);
	assert_memory_equal(proto, "acme-tls/1", 10);
	conn_free(&c);

	/* Ordinary clients on the same name: normal certificate, http/1.1. */
	hook_calls = 0;
	c = handshake(s, &(struct client_opts){.sni = "acme.test", .alpn = "h2,http/1.1"});
	assert_true(c.ok);
	assert_string_equal(peer_cn(&c), "normal-cert");
	assert_int_equal(hook_calls, 0);
	SSL_get0_alpn_selected(c.cli, &proto, &plen);
	assert_int_equal(plen, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	conn_free(&c);

	/* Only h2 offered: no ALPN, the handshake goes on. */
	c = handshake(s, &(struct client_opts){.sni = "acme.test", .alpn = "h2"});
	assert_true(c.ok);
	SSL_get0_alpn_selected(c.cli, &proto, &plen);
	assert_int_equal(plen, 0);
	conn_free(&c);

	/* No pending challenge for the name, or no SNI: the handshake fails. */
	c = handshake(s, &(struct client_opts){.sni = "other.test", .alpn = "acme-tls/1"});
	assert_false(c.ok);
	conn_free(&c);
	c = handshake(s, &(struct client_opts){.alpn = "acme-tls/1"});
	assert_false(c.ok);
	conn_free(&c);

	X509_free(hook_cert);
	EVP_PKEY_free(hook_key);
	tls_store_free(s);
	pair_free(files, 1);
}

static void
test_install(void **state)
{
	struct tls_store *s = store_of(NULL, 0, NULL);
	struct conn c;
	char err[512], *crt, *key, *crt2, *key2;

	/* Nothing to serve yet: handshakes fail cleanly. */
	c = handshake(s, &(struct client_opts){.sni = "inst.test"});
	assert_false(c.ok);
	conn_free(&c);

	write_cert("inst1", "inst-one", "DNS:inst.test,DNS:www.inst.test", KEY_EC, -60, 86400);
	write_cert("inst2", "inst-two", "DNS:inst.test", KEY_RSA, -60, 86400);
	crt = slurp(path_in("inst1.crt"));
	key = slurp(path_in("inst1.key"));
	crt2 = slurp(path_in("inst2.crt"));
	key2 = slurp(path_in("inst2.key"));

	assert_int_equal(tls_store_install(s, "inst.test", crt, key2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not match"));
	assert_int_equal(tls_store_install(s, "other.test", crt, key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not cover other.test"));

	assert_int_equal(tls_store_install(s, "inst.test", crt, key, err, sizeof(err)), 0);
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "www.inst.test"}), "inst-one");
	assert_string_equal(served_cn(s, &(struct client_opts){0}), "inst-one");
	/* Replacing under the same name. */
	assert_int_equal(tls_store_install(s, "inst.test", crt2, key2, err, sizeof(err)), 0);
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "inst.test"}), "inst-two");
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "www.inst.test"}), "inst-two");
	/* From files, through the ACME-shaped callback. */
	tls_store_acme_certificate_cb((const char *const[]){"inst.test"}, 1, crt, key, 0, s);
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "www.inst.test"}), "inst-one");
	assert_int_equal(tls_store_install_files(s, "inst.test", path_in("inst2.crt"),
						 path_in("inst2.key"), err, sizeof(err)),
			 0);
	assert_string_equal(served_cn(s, &(struct client_opts){.sni = "inst.test"}), "inst-two");
	free(crt);
	free(key);
	free(crt2);
	free(key2);
	tls_store_free(s);
}

static void
test_plain_http_answer(void **state)
{
	struct tls_file_pair files[1];
	struct tls_store *s;
	static const char req[] = "GET / HTTP/1.1\r\nHost: x.test\r\nUser-Agent: t\r\n\r\n";
	const char *const firsts[] = {req, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"};
	char buf[1024], *metrics;

	write_cert("ph", "ph", "DNS:ph.test", KEY_EC, -60, 86400);
	files[0] = pair("ph");
	s = store_of(files, 1, NULL);
	for (size_t i = 0; i < 2; i++) {
		int sv[2];
		SSL *ssl = SSL_new(tls_store_ctx(s));
		ssize_t n;
		size_t got = 0;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		SSL_set_fd(ssl, sv[0]);
		assert_int_equal(write(sv[1], firsts[i], strlen(firsts[i])), (ssize_t)strlen(firsts[i]));
		assert_true(SSL_accept(ssl) <= 0);
		ERR_clear_error();
		while ((n = read(sv[1], buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		assert_true(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
		assert_non_null(strstr(buf, "this port speaks HTTPS"));
		assert_non_null(strstr(buf, "Content-Length: 70\r\n"));
		assert_int_equal(strlen(strstr(buf, "\r\n\r\n") + 4), 70);
		SSL_free(ssl);
		close(sv[0]);
		close(sv[1]);
	}
	metrics = tls_store_metrics(s);
	assert_non_null(strstr(metrics, "portcullis_tls_plain_http_total 2\n"));
	free(metrics);
	tls_store_free(s);
	pair_free(files, 1);
}

static void
test_local_ca(void **state)
{
	char certs[512], cadir[600], err[1024];
	struct tls_options opt = {0};
	struct tls_store *s, *again;
	struct stat st;
	struct conn c;
	X509 *ca1, *leaf;
	FILE *f;
	GENERAL_NAMES *gens;
	char *metrics;

	snprintf(certs, sizeof(certs), "%s/state/certs", tmpdir);
	snprintf(cadir, sizeof(cadir), "%s/local-ca", certs);
	opt.certs_dir = certs;
	opt.local_ca = true;
	opt.local_names = (const char *const[]){"dev.test", "*.apps.test", "LOCALHOST"};
	opt.nlocal_names = 3;
	s = tls_store_new(&opt, err, sizeof(err));
	if (s == NULL)
		fail_msg("%s", err);

	/* Files and modes. */
	assert_int_equal(stat(cadir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(certs, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(err, sizeof(err), "%s/ca.key", cadir);
	assert_int_equal(stat(err, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(err, sizeof(err), "%s/ca.crt", cadir);
	assert_string_equal(tls_store_local_ca_path(s), err);
	f = fopen(err, "r");
	ca1 = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(ca1);
	assert_int_equal(X509_check_ca(ca1), 1);
	assert_true(X509_get_key_usage(ca1) & KU_KEY_CERT_SIGN);
	assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(ca1)), EVP_PKEY_EC);
	{
		/* About 10 years. */
		int days, secs;

		assert_true(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca1),
					   X509_get0_notAfter(ca1)));
		assert_in_range(days, 3649, 3651);
	}

	/* The leaf verifies against the CA, for every name. */
	{
		const char *hosts[] = {"localhost", "dev.test", "x.apps.test", NULL};

		for (size_t i = 0; hosts[i]; i++) {
			c = handshake(s, &(struct client_opts){.sni = strcmp(hosts[i], "localhost") ? hosts[i] : NULL,
							       .ca_file = tls_store_local_ca_path(s),
							       .verify_host = hosts[i]});
			assert_true(c.ok);
			assert_int_equal(SSL_get_verify_result(c.cli), X509_V_OK);
			conn_free(&c);
		}
	}
	c = handshake(s, &(struct client_opts){.verify_host = "127.0.0.1"});
	assert_true(c.ok);
	leaf = SSL_get0_peer_certificate(c.cli);
	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 5); /* localhost, 127.0.0.1, ::1, dev.test, *.apps.test */
	GENERAL_NAMES_free(gens);
	{
		int days, secs;

		assert_true(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf),
					   X509_get0_notAfter(leaf)));
		assert_int_equal(days, 7);
	}
	assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
	assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
	conn_free(&c);
	metrics = tls_store_metrics(s);
	assert_non_null(strstr(metrics, "portcullis_certificate_expiry_seconds{name=\"localhost\",key=\"ecdsa\",source=\"local_ca\"} "));
	free(metrics);
	assert_int_equal(tls_store_poll(s), 0); /* fresh leaf: no renewal */

	/* A second store on the same folder reuses the CA. */
	again = tls_store_new(&opt, err, sizeof(err));
	assert_non_null(again);
	f = fopen(tls_store_local_ca_path(again), "r");
	{
		X509 *ca2 = PEM_read_X509(f, NULL, NULL, NULL);

		assert_int_equal(X509_cmp(ca1, ca2), 0);
		X509_free(ca2);
	}
	fclose(f);
	tls_store_free(again);
	tls_store_free(s);

	/* A CA key that does not match its certificate is refused by name. */
	{
		EVP_PKEY *k = new_key(KEY_EC);

		snprintf(err, sizeof(err), "%s/ca.key", cadir);
		f = fopen(err, "w");
		PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
		fclose(f);
		EVP_PKEY_free(k);
		assert_null(tls_store_new(&opt, err, sizeof(err)));
		assert_non_null(strstr(err, "ca.key: the local CA key does not match"));
	}
	/* Bad leaf names are refused. */
	{
		struct localca *ca;
		X509 *x;
		EVP_PKEY *k;
		char dir2[600];

		snprintf(dir2, sizeof(dir2), "%s/other-ca", tmpdir);
		ca = localca_open(dir2, err, sizeof(err));
		assert_non_null(ca);
		assert_int_equal(localca_issue(ca, (const char *const[]){"bad name,DNS:evil"}, 1, 7, &x,
					       &k, err, sizeof(err)),
				 -1);
		assert_non_null(strstr(err, "neither a host name nor an IP address"));
		localca_free(ca);
	}
	X509_free(ca1);
}

static void
test_metrics(void **state)
{
	struct tls_file_pair files[2];
	struct tls_store *s;
	char *m, want[256];
	FILE *f;
	X509 *x;

	write_cert("m1", "m1", "DNS:m.test", KEY_EC, -60, 86400 * 30);
	write_cert("m2", "m2", "DNS:m.test", KEY_RSA, -60, 86400 * 40);
	files[0] = pair("m1");
	files[1] = pair("m2");
	s = store_of(files, 2, NULL);
	m = tls_store_metrics(s);
	assert_non_null(strstr(m, "# TYPE portcullis_certificate_expiry_seconds gauge\n"));
	f = fopen(path_in("m2.crt"), "r");
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	{
		struct tm tm;

		ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
		snprintf(want, sizeof(want),
			 "portcullis_certificate_expiry_seconds{name=\"m.test\",key=\"rsa\",source=\"file\"} %lld\n",
			 (long long)timegm(&tm));
	}
	assert_non_null(strstr(m, want));
	assert_non_null(strstr(m, "key=\"ecdsa\",source=\"file\"}"));
	X509_free(x);
	free(m);
	tls_store_free(s);
	pair_free(files, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_matches),
		cmocka_unit_test(test_sni_exact_wildcard_default),
		cmocka_unit_test(test_ecdsa_beside_rsa),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_combined_pem),
		cmocka_unit_test(test_reload_inflight_keeps_old),
		cmocka_unit_test(test_tickets_rotation),
		cmocka_unit_test(test_acme_alpn_hook),
		cmocka_unit_test(test_install),
		cmocka_unit_test(test_plain_http_answer),
		cmocka_unit_test(test_local_ca),
		cmocka_unit_test(test_metrics),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

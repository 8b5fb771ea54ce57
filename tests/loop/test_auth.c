/*
 * In-process tests of the SAML gate (src/auth/auth.c) in front of the proxy:
 * the proxy fixture (proxy_fixture.h: one event_base, a fake upstream, the
 * client on a socketpair) with a config that has a "saml" section.  What
 * needs no real IdP is checked: the answer to a request without a session
 * (401 for an API client, a redirect to the IdP for a browser navigation),
 * a valid sealed session cookie (the identity headers come from the
 * session; the client's own copies and our cookie never reach the
 * upstream), an expired or tampered cookie (no session), and the SP
 * metadata endpoint.  Sessions are sealed here with session.h and the key
 * the config reads from the environment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/assertion.h"
#include "auth/auth_verified.h"
#include "auth/session.h"
#include "base/metrics.h"
#include "config/config.h"
#include "proxy_fixture.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
/* auth.c seals sessions for this purpose (AUTH_PURPOSE_SESSION). */
#define PURPOSE_SESSION "session"
#define COOKIE "__Host-portcullis-session"

/* The certificate of a throw-away IdP key (as in tests/unit/config/test_config.c):
 * IdP metadata needs a signing certificate to load. */
static const char idp_cert[] =
	"MIIDEzCCAfugAwIBAgIUIcE8mVUXn2iqQXHcd1qfWip/tOcwDQYJKoZIhvcNAQELBQAwGDEWMBQG"
	"A1UEAwwNdW5pdC10ZXN0LWlkcDAgFw0yNjExMjMwNzAwMDBaGA8yMTI2MTAzMDA3MDAwMFowGDEW"
	"MBQGA1UEAwwNdW5pdC10ZXN0LWlkcDCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBALmA"
	"I5w3/YFYXTBdh4znau/0UuIDJIX+qysKygCIJsK+b6Xr7yImM29jNSLaqsKBZCnJq2K/dUw/xpeN"
	"vFqlxEp8Xh3tT0KdaqAPpn7+em8s6ASwiM3HJ1XDlb6oJv+o0QjY9ZqwO8SgOvrDVkmLiYUmrB52"
	"wrTfzON3SJCRwejlU9JiW7y9xEcjvjeZcxpuzS/D9iGbgfMU79zcWhUaxPfn5WSdEooYjLQqXfDX"
	"E9NT6WQA9/ahaoZxcydYheipBQR42lPkHwAvfZLpjS4Ivtoj5f5+4EsUhWfLm4bjX5vr8Uv+Weud"
	"f9n605vqAvAc39OzDwgaAPSjwLPjl7Lp/D0CAwEAAaNTMFEwHQYDVR0OBBYEFIe7+Ocpj4PEqAqZ"
	"0dhAqfCW5SRzMB8GA1UdIwQYMBaAFIe7+Ocpj4PEqAqZ0dhAqfCW5SRzMA8GA1UdEwEB/wQFMAMB"
	"Af8wDQYJKoZIhvcNAQELBQADggEBAItDkZng9JCwgdZoNFn/9Cpt280fMrmzmpIoX4h7Mwfm+wXK"
	"pjgemoLXAGWjBmdCh71Gg0KSDFKQhjae4ZdwdCw1M5Tzeas0kyCHxlvNl9CDjr+Yvw/38EbJ66bj"
	"5QNHIAGMhVrXLGDIH9G/dBnKaHGGZa2xCvP9ZqDsF3kQ6wfh73/p9u0C5+iQsObHLpxVGgGWMBFN"
	"IRx6IyUv5UtF/HKpoSjheZ0I9/APdfMYiijr/rnNCkpfrPtesKdUyhGBoipEGVx+4GfbB0rO2KwR"
	"DGVtdQ5F3XlIkoI9Rzo5mtJVEn6vOJ+ObWxqdXUgohbNnrEvMn8V3uScmm8yLX7wMd4=";

/* The SAML files of the whole run: IdP metadata written here, the SP key and
 * certificate created here by the first config load. */
static char dir[] = "/tmp/portcullis-loop-auth-XXXXXX";
static char metadata[sizeof(dir) + 32];

static const char *
key_env(const char *name)
{
	return strcmp(name, "LOOP_SESSION_KEYS") == 0 ? KEY_HEX : NULL;
}

static int
group_setup(void **state)
{
	FILE *fp;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(metadata, sizeof(metadata), "%s/idp-metadata.xml", dir);
	fp = fopen(metadata, "w");
	if (fp == NULL)
		return -1;
	fprintf(fp,
		"<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
		"xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"https://idp.test/md\">"
		"<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
		"<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
		"</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
		"<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
		"Location=\"https://idp.test/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>\n",
		idp_cert);
	return fclose(fp) == 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	static const char *const files[] = {"idp-metadata.xml", "saml-sp.key", "saml-sp.crt"};
	char path[sizeof(dir) + 32];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	return rmdir(dir);
}

/* A protected site: /public open, everything else behind SAML (which also
 * serves the SP endpoints under /saml). */
static int
setup(void **state)
{
	struct fake *f = fixture_new();
	char json[2048], err[4096];
	struct config *cfg;

	snprintf(json, sizeof(json),
		 "{\"listeners\": [{\"address\": \"127.0.0.1:0\"}],"
		 " \"timeouts\": {\"connect\": \"2s\", \"client\": \"5s\"},"
		 " \"upstreams\": {\"web\": {\"servers\": [\"127.0.0.1:%d\"]}},"
		 " \"saml\": {\"idp_metadata\": \"%s\", \"base_url\": \"https://app.test\","
		 "   \"certs_dir\": \"%s\", \"session_key_env\": \"LOOP_SESSION_KEYS\","
		 "   \"headers\": {\"X-Auth-Email\": \"Email\", \"X-Auth-User\": \"@nameid\"}},"
		 " \"sites\": [{\"hosts\": [\"app.test\"], \"routes\": ["
		 "   {\"name\": \"public\", \"match\": {\"path\": [\"/public\"]}, \"upstream\": \"web\"},"
		 "   {\"name\": \"app\", \"upstream\": \"web\", \"auth\": \"saml\"}]}]}",
		 f->port, metadata, dir);
	cfg = config_load_string(json, "loop-auth.json", err, sizeof(err), key_env);
	if (cfg == NULL)
		fail_msg("config did not load:\n%s", err);
	fixture_start_config(f, cfg);
	config_unref(cfg);
	f->mode = UP_ECHO;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* A session for alice sealed with the config's key; <issued> and <expires> in
 * seconds from now. */
static char *
seal_alice(int64_t issued, int64_t expires)
{
	static const unsigned char key[SESSION_KEY_BYTES] = {
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
		0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
		0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	};
	struct session_keys *k = session_keys_from_raw(key, 1);
	struct session *s = session_new();
	int64_t now = (int64_t)time(NULL);
	char *sealed;

	assert_non_null(k);
	assert_non_null(s);
	s->issued = now + issued;
	s->last_seen = now + issued;
	s->expires = now + expires;
	s->name_id = strdup("alice");
	assert_non_null(s->name_id);
	assert_int_equal(session_add_attr(s, "Email", "alice@example.org"), 0);
	sealed = session_seal_session(k, PURPOSE_SESSION, s);
	assert_non_null(sealed);
	session_free(s);
	session_keys_free(k);
	return sealed;
}

/* Send <request>, wait for a whole response (one that ends the body the
 * fake upstream echoes, or any short answer of the gate) and the end of
 * the transaction. */
static void
exchange(struct fake *f, const char *request, struct inbox *in, const char *tail)
{
	send_all(f, request);
	wait_response(f, in, tail);
	assert_true(run_until(f, nothing_in_flight, NULL, 2000));
}

/* ---- the cases ---------------------------------------------------------- */

/* No session, an API client: 401 with a login URL in JSON; nothing reaches
 * the upstream. */
static void
test_no_session_api_401(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	char v[128];

	exchange(f, "GET /dash?tab=2 HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n\r\n",
		 &in, "}\n");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 401 Unauthorized\r\n"), in.data);
	assert_string_equal(header_value(in.data, "Content-Type", v, sizeof(v)), "application/json");
	assert_non_null(strstr(in.data, "\"login_url\":\"https://app.test/saml/login?return=/dash%3Ftab%3D2\""));
	assert_int_equal(f->nreqs, 0);
	free(in.data);
}

/* No session, a browser navigation: 302 to the IdP's SSO URL with a SAML
 * request, and a tracking cookie for the login in progress. */
static void
test_no_session_browser_302(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	char v[4096];

	exchange(f, "GET /dash HTTP/1.1\r\nHost: app.test\r\nAccept: text/html,*/*\r\n"
		    "Sec-Fetch-Mode: navigate\r\n\r\n", &in, "Redirecting to the identity provider\n");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 302 Found\r\n"), in.data);
	assert_non_null(header_value(in.data, "Location", v, sizeof(v)));
	assert_ptr_equal(strstr(v, "https://idp.test/sso?"), v);
	assert_non_null(strstr(v, "SAMLRequest="));
	assert_non_null(strstr(v, "RelayState="));
	assert_non_null(header_value(in.data, "Set-Cookie", v, sizeof(v)));
	assert_ptr_equal(strstr(v, "__Host-portcullis-saml-"), v);
	assert_int_equal(f->nreqs, 0);
	free(in.data);
}

/* A valid session: the request reaches the upstream with the identity
 * headers from the session; the client's own X-Auth-* and our session
 * cookie are not passed on, its other cookies are. */
static void
test_valid_session_identity(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	char *sealed = seal_alice(-10, 3600);
	char request[8192], v[256];
	const char *req;

	snprintf(request, sizeof(request),
		 "GET /dash HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n"
		 "X-Auth-Email: mallory@example.org\r\nX-Auth-User: mallory\r\n"
		 "Cookie: theme=dark; " COOKIE "=%s\r\n\r\n", sealed);
	exchange(f, request, &in, "\r\n\r\n/dash");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	assert_int_equal(f->nreqs, 1);
	req = f->reqs[0];
	assert_null(strstr(req, "mallory"));
	assert_int_equal(header_count(req, "X-Auth-Email"), 1);
	assert_string_equal(header_value(req, "X-Auth-Email", v, sizeof(v)), "alice@example.org");
	assert_int_equal(header_count(req, "X-Auth-User"), 1);
	assert_string_equal(header_value(req, "X-Auth-User", v, sizeof(v)), "alice");
	assert_string_equal(header_value(req, "Cookie", v, sizeof(v)), "theme=dark");
	assert_null(strstr(req, sealed));
	free(sealed);
	free(in.data);
}

/* An expired cookie and a tampered one are no session: 401, nothing
 * forwarded. */
static void
test_expired_or_tampered_cookie(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	char *expired = seal_alice(-7200, -60);
	char *tampered = seal_alice(-10, 3600);
	char request[8192];
	size_t mid = strlen(tampered) / 2;

	tampered[mid] = tampered[mid] == 'A' ? 'B' : 'A';
	snprintf(request, sizeof(request),
		 "GET /dash HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n"
		 "Cookie: " COOKIE "=%s\r\n\r\n", expired);
	exchange(f, request, &in, "}\n");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 401 Unauthorized\r\n"), in.data);
	free(in.data);
	memset(&in, 0, sizeof(in));

	snprintf(request, sizeof(request),
		 "GET /dash HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n"
		 "Cookie: " COOKIE "=%s\r\n\r\n", tampered);
	exchange(f, request, &in, "}\n");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 401 Unauthorized\r\n"), in.data);
	assert_int_equal(f->nreqs, 0);
	free(in.data);
	free(expired);
	free(tampered);
}

/* The same cookie again (the second time from the thread's cache of
 * verified cookies): the same identity, and a Cookie header that held only
 * our cookie is not passed on at all; once the session has expired, the
 * cached cookie is refused like any other; a copy of it changed in one
 * character is no session either. */
static void
test_cached_cookie_checked_each_time(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	char *sealed = seal_alice(-10, 2);
	char request[8192], v[256];
	size_t mid = strlen(sealed) / 2;

	snprintf(request, sizeof(request),
		 "GET /dash HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n"
		 "Cookie: " COOKIE "=%s\r\n\r\n", sealed);
	for (int i = 0; i < 2; i++) {
		exchange(f, request, &in, "\r\n\r\n/dash");
		assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
		assert_int_equal(f->nreqs, i + 1);
		assert_string_equal(header_value(f->reqs[i], "X-Auth-User", v, sizeof(v)), "alice");
		assert_int_equal(header_count(f->reqs[i], "Cookie"), 0);
		free(in.data);
		memset(&in, 0, sizeof(in));
	}
	sealed[mid] = sealed[mid] == 'A' ? 'B' : 'A';
	snprintf(request, sizeof(request),
		 "GET /dash HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n"
		 "Cookie: " COOKIE "=%s\r\n\r\n", sealed);
	exchange(f, request, &in, "}\n");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 401 Unauthorized\r\n"), in.data);
	free(in.data);
	memset(&in, 0, sizeof(in));
	sealed[mid] = sealed[mid] == 'A' ? 'B' : 'A'; /* the genuine one again */
	sleep(3);
	snprintf(request, sizeof(request),
		 "GET /dash HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n"
		 "Cookie: " COOKIE "=%s\r\n\r\n", sealed);
	exchange(f, request, &in, "}\n");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 401 Unauthorized\r\n"), in.data);
	assert_int_equal(f->nreqs, 2);
	free(in.data);
	free(sealed);
}

/* An open route: no session needed, but the client's identity headers are
 * removed all the same. */
static void
test_open_route_strips_identity(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};

	exchange(f, "GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-Auth-Email: mallory@example.org\r\n"
		    "X-Auth-User: mallory\r\n\r\n", &in, "\r\n\r\n/public/x");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	assert_int_equal(f->nreqs, 1);
	assert_int_equal(header_count(f->reqs[0], "X-Auth-Email"), 0);
	assert_int_equal(header_count(f->reqs[0], "X-Auth-User"), 0);
	free(in.data);
}

/* The SP metadata endpoint answers with our entity ID and ACS URL; the
 * upstream is not asked. */
static void
test_sp_metadata(void **state)
{
	struct fake *f = *state;
	struct inbox in = {0};
	char v[128];

	exchange(f, "GET /saml/metadata HTTP/1.1\r\nHost: app.test\r\n\r\n", &in, "EntityDescriptor>");
	assert_ptr_equal(strstr(in.data, "HTTP/1.1 200 OK\r\n"), in.data);
	assert_string_equal(header_value(in.data, "Content-Type", v, sizeof(v)),
			    "application/samlmetadata+xml");
	assert_non_null(strstr(in.data, "entityID=\"https://app.test/saml/metadata\""));
	assert_non_null(strstr(in.data, "Location=\"https://app.test/saml/acs\""));
	assert_int_equal(f->nreqs, 0);
	free(in.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_session_api_401, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_session_browser_302, setup, teardown),
		cmocka_unit_test_setup_teardown(test_valid_session_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_or_tampered_cookie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cached_cookie_checked_each_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_route_strips_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sp_metadata, setup, teardown),
	};
	int rc;

	fixture_quiet();
	rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	session_thread_release();
	auth_verified_thread_release();
	assertion_thread_release();
	metrics_shutdown();
	return rc;
}

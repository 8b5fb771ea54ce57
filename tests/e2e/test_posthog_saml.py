"""examples/posthog/portcullis.json with its SAML gate, against the pysaml2 IdP
(tests/saml/pysaml2_idp.py in login-form mode, Casdoor's attribute names) and
one recording server per upstream.

What the example promises (docs/casdoor.md, examples/posthog/README.md):
  - the UI, its /api and livestream need a session: a browser is sent to the
    IdP (302), anything that cannot follow a redirect gets 401;
  - ingestion, /flags, /decide, /array, /static, /public, the SDK /api
    endpoints (surveys, early access features, web experiments, product
    tours), ACME and health are open;
  - "Authorization: Bearer phx_..." (personal API key) or "phs_..." (project
    secret key) passes /api without a session; PostHog checks the key;
  - SP metadata at /saml/metadata with entity ID https://<POSTHOG_DOMAIN>/saml/metadata,
    ACS at /complete/saml/; the session key is created under CERTS_DIR;
  - after a login the upstream sees X-Auth-Email from the Email attribute;
  - path tricks never reach a UI path without a session.

The gate's cases (redirect, 401, open paths, API keys, path tricks, the full
login with the ACS POST and logout) run over HTTP/1.1 and HTTP/2 (the
`client` fixture; h2c on the example's plain listener).
"""

import base64
import html
import os
import re
import stat
import subprocess
import urllib.parse
import uuid

import pytest

from clients import Http1, refused
from configs import (APP_DOMAIN, POSTHOG_ACS_PATH, POSTHOG_DOMAIN, POSTHOG_SESSION_COOKIE,
                     POSTHOG_SP_ENTITY_ID, POSTHOG_UPSTREAM_ENV, posthog_env, posthog_example)
from harness import request, send_raw
from saml_common import Browser, samltools

IDP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "saml",
                          "pysaml2_idp.py")
USER, PASSWORD, EMAIL = "alice", "correct horse", "alice.liddell@example.com"
FORGED = "forged@evil.test"


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    work = module_lab.workdir
    e.sp_md = os.path.join(work, "sp-metadata.xml")
    e.idp_proc = subprocess.Popen(
        ["/usr/bin/python3", IDP_SCRIPT, "--form", "%s:%s:%s:posthog-admin" % (USER, PASSWORD,
                                                                               EMAIL),
         work, e.sp_md],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "idp.log"), "wb"))
    try:
        line = e.idp_proc.stdout.readline().decode()
        m = re.match(r"listening on (\d+)", line)
        assert m, "the pysaml2 IdP did not start: %r (see %s/idp.log)" % (line, work)
        e.idp_port = int(m.group(1))
        e.ups = {name: module_lab.upstream(name) for name in POSTHOG_UPSTREAM_ENV}
        # No SESSION_KEY_FILE and no CERTS_DIR: the example's defaults, relative
        # to the proxy's working directory (the module's workdir).
        e.proxy = module_lab.proxy(
            posthog_example(work), name="posthog-saml",
            env=posthog_env(e.ups, idp_metadata="http://127.0.0.1:%d/metadata" % e.idp_port))
        e.certs = os.path.join(work, "certs")
        r = request(e.proxy.port, "GET", "/saml/metadata", host=POSTHOG_DOMAIN)
        assert r.status == 200, r
        e.sp_metadata = r.body.decode()
        with open(e.sp_md, "w") as f:
            f.write(e.sp_metadata)
        yield e
    finally:
        e.idp_proc.terminate()
        e.idp_proc.wait(10)


@pytest.fixture(autouse=True)
def fresh(env, alive):
    for up in env.ups.values():
        up.reset()
    yield


def send(env, method, target, host=POSTHOG_DOMAIN, headers=(), body=None, client=Http1(),
         allow_reset=False):
    """One request with a fresh X-Request-ID and a forged X-Auth-Email."""
    rid = "saml-" + uuid.uuid4().hex
    resp = client.request(env.proxy.port, method, target, host=host, body=body,
                          allow_reset=allow_reset,
                          headers=[("X-Request-ID", rid), ("X-Auth-Email", FORGED)] +
                          list(headers))
    return resp, rid


def landed(env, rid):
    return [(name, r) for name, up in env.ups.items() for r in up.with_request_id(rid)]


def sso_prefix(env):
    return "http://127.0.0.1:%d/sso/redirect?" % env.idp_port


# ------------------------------------------------------------ SP side

def test_sp_metadata_entity_and_acs(env):
    md = env.sp_metadata
    assert re.search(r'entityID="%s"' % re.escape(POSTHOG_SP_ENTITY_ID), md), md
    assert POSTHOG_SP_ENTITY_ID == "https://%s/saml/metadata" % POSTHOG_DOMAIN
    acs = re.search(r"<[^>]*AssertionConsumerService\b[^>]*>", md).group(0)
    assert 'Location="https://%s/complete/saml/"' % POSTHOG_DOMAIN in acs, acs
    assert "HTTP-POST" in acs, acs


def test_keys_generated_under_certs_dir(env):
    """SESSION_KEY_FILE unset: the session key is made in CERTS_DIR (default
    certs/), 0600, next to the SP key and certificate."""
    for name in ("session.key", "saml-sp.key"):
        st = os.stat(os.path.join(env.certs, name))
        assert stat.S_IMODE(st.st_mode) == 0o600, (name, oct(st.st_mode))
    with open(os.path.join(env.certs, "session.key")) as f:
        assert re.fullmatch(r"[0-9a-f]{64}\n", f.read())
    assert os.path.exists(os.path.join(env.certs, "saml-sp.crt"))
    # The IdP metadata URL was fetched and cached there too.
    with open(os.path.join(env.certs, "saml-idp-metadata.xml")) as f:
        assert "IDPSSODescriptor" in f.read()


def test_acs_takes_post_only(env, client):
    resp, rid = send(env, "GET", POSTHOG_ACS_PATH, client=client)
    assert resp.status == 405 and resp.header("Allow") == "POST", resp
    assert landed(env, rid) == []


# ------------------------------------------------------------ protected

UI_PATHS = ["/", "/insights", "/insights/abc?tab=1", "/project/1/dashboard/2", "/admin/",
            "/admin/login/?next=/admin/", "/api/projects/1/insights/", "/api/users/@me/",
            "/api/feature_flag/local_evaluation?token=phc_x", "/livestream/events",
            "/_preflight/", "/signup", "/uploaded_media/abc", "/api/surveys/1/x",
            "/api/surveys/x/../../projects/1"]


@pytest.mark.parametrize("path", UI_PATHS)
def test_ui_browser_redirected_to_idp(env, path, client):
    resp, rid = send(env, "GET", path, headers=[("Accept", "text/html,*/*;q=0.8"),
                                                ("Sec-Fetch-Mode", "navigate")], client=client)
    assert resp.status == 302, "GET %s without a session: %r" % (path, resp)
    loc = resp.header("Location")
    assert loc.startswith(sso_prefix(env)), loc
    xml, params, _ = samltools.decode_redirect(loc)
    assert 'AssertionConsumerServiceURL="https://%s/complete/saml/"' % POSTHOG_DOMAIN in xml
    assert ">%s</" % POSTHOG_SP_ENTITY_ID in xml, xml
    assert "RelayState" in params and path not in params["RelayState"]
    assert landed(env, rid) == []


@pytest.mark.parametrize("path", UI_PATHS)
@pytest.mark.parametrize("how", ["json", "xhr", "post"])
def test_ui_api_call_gets_401(env, path, how, client):
    headers = {"json": [("Accept", "application/json")],
               "xhr": [("X-Requested-With", "XMLHttpRequest")],
               "post": [("Content-Type", "application/json")]}[how]
    method = "POST" if how == "post" else "GET"
    resp, rid = send(env, method, path, headers=headers,
                     body=b"{}" if method == "POST" else None, client=client)
    assert resp.status == 401, "%s %s (%s) without a session: %r" % (method, path, how, resp)
    doc = resp.json()
    assert doc["error"] == "authentication required"
    assert doc["login_url"].startswith("https://%s/saml/login?return=" % POSTHOG_DOMAIN), doc
    assert landed(env, rid) == []


@pytest.mark.parametrize("auth", ["Bearer phc_projecttoken", "Bearer phx_", "Bearer phx",
                                  "Basic cGh4Xzp4", "Bearer  ", "phx_abc", "Bearer pha_abc"])
def test_api_other_credentials_refused(env, auth, client):
    resp, rid = send(env, "GET", "/api/projects/1/insights/",
                     headers=[("Authorization", auth), ("Accept", "application/json")],
                     client=client, allow_reset=True)
    # Over HTTP/2 a value with trailing whitespace ("Bearer  ") is malformed
    # (RFC 9113 8.2.1): libnghttp2 resets the stream.
    assert resp.status == 401 or (client.protocol == "http2" and refused(resp)), (auth, resp)
    assert landed(env, rid) == []


# ------------------------------------------------------------ open

OPEN = [
    # (method, host, client target, upstream, target the upstream gets)
    ("POST", POSTHOG_DOMAIN, "/e/", "capture", "/e/"),
    ("GET", POSTHOG_DOMAIN, "/e/?data=x", "capture", "/e/?data=x"),
    ("POST", POSTHOG_DOMAIN, "/i/v0/e/?compression=gzip-js", "capture",
     "/i/v0/e/?compression=gzip-js"),
    ("POST", POSTHOG_DOMAIN, "/batch/", "capture", "/batch/"),
    ("POST", POSTHOG_DOMAIN, "/capture/", "capture", "/capture/"),
    ("POST", POSTHOG_DOMAIN, "/s/?compression=gzip-js", "replay", "/s/?compression=gzip-js"),
    ("POST", POSTHOG_DOMAIN, "/flags/?v=2", "flags", "/flags/?v=2"),
    ("GET", POSTHOG_DOMAIN, "/flags/definitions?token=phc_x", "flags",
     "/flags/definitions?token=phc_x"),
    ("POST", POSTHOG_DOMAIN, "/decide/?v=3", "web", "/decide/?v=3"),
    ("GET", POSTHOG_DOMAIN, "/array/phc_x/config.js", "web", "/array/phc_x/config.js"),
    ("GET", POSTHOG_DOMAIN, "/array/phc_x/config", "web", "/array/phc_x/config"),
    ("GET", POSTHOG_DOMAIN, "/static/array.js", "web", "/static/array.js"),
    ("HEAD", POSTHOG_DOMAIN, "/static/recorder.js", "web", "/static/recorder.js"),
    ("POST", POSTHOG_DOMAIN, "/public/webhooks/abc", "plugins", "/public/webhooks/abc"),
    ("POST", POSTHOG_DOMAIN, "/public/m/abc", "plugins", "/public/m/abc"),
    ("GET", POSTHOG_DOMAIN, "/public/other", "web", "/public/other"),
    ("GET", POSTHOG_DOMAIN, "/api/surveys/?token=phc_x", "web", "/api/surveys/?token=phc_x"),
    ("GET", POSTHOG_DOMAIN, "/api/early_access_features/?token=phc_x&stage=beta", "web",
     "/api/early_access_features/?token=phc_x&stage=beta"),
    ("GET", POSTHOG_DOMAIN, "/api/web_experiments/?token=phc_x", "web",
     "/api/web_experiments/?token=phc_x"),
    ("GET", POSTHOG_DOMAIN, "/api/product_tours/?token=phc_x", "web",
     "/api/product_tours/?token=phc_x"),
    ("OPTIONS", POSTHOG_DOMAIN, "/api/surveys/?token=phc_x", "web", "/api/surveys/?token=phc_x"),
    ("GET", POSTHOG_DOMAIN, "/_health", "web", "/_health"),
    ("GET", POSTHOG_DOMAIN, "/.well-known/acme-challenge/tok-123", "web",
     "/.well-known/acme-challenge/tok-123"),
    ("POST", APP_DOMAIN, "/ingest/e/", "capture", "/e/"),
    ("POST", APP_DOMAIN, "/ingest/i/v0/e/", "capture", "/i/v0/e/"),
    ("POST", APP_DOMAIN, "/ingest/s/", "replay", "/s/"),
    ("POST", APP_DOMAIN, "/ingest/flags/?v=2", "flags", "/flags/?v=2"),
    ("POST", APP_DOMAIN, "/ingest/decide/?v=3", "web", "/decide/?v=3"),
    ("GET", APP_DOMAIN, "/ingest/static/array.js", "web", "/static/array.js"),
    ("GET", APP_DOMAIN, "/ingest/array/phc_x/config.js", "web", "/array/phc_x/config.js"),
    ("GET", APP_DOMAIN, "/ingest/api/surveys/?token=phc_x", "web", "/api/surveys/?token=phc_x"),
]


@pytest.mark.parametrize("method,host,target,up_name,want", OPEN)
def test_open_path_reaches_upstream_without_session(env, method, host, target, up_name, want,
                                                    client):
    body = b'{"api_key": "phc_x"}' if method == "POST" else None
    # A browser signed in to PostHog sends its cookies along: none of them may
    # reach an open route (Django would render its UI for a "sessionid").
    resp, rid = send(env, method, target, host=host, body=body,
                     headers=[("Cookie", "sessionid=django-session; __Host-portcullis-session=x")],
                     client=client)
    assert resp.status == 200, "%s %s on %s: %r" % (method, target, host, resp)
    hits = landed(env, rid)
    assert len(hits) == 1, hits
    name, req = hits[0]
    assert (name, req.target) == (up_name, want)
    assert not req.has_header("X-Auth-Email"), "a client's X-Auth-Email reached %s" % name
    assert not req.has_header("Cookie"), "cookies reached the open route to %s" % name


@pytest.mark.parametrize("key", ["phx_personalKey123", "phs_projectSecret456"])
@pytest.mark.parametrize("target", ["/api/projects/1/insights/?limit=1",
                                    "/api/feature_flag/local_evaluation?token=phc_x",
                                    "/api/projects/@current/feature_flags/f/remote_config"])
def test_api_key_passes_to_web_without_session(env, key, target, client):
    resp, rid = send(env, "GET", target, headers=[("Authorization", "Bearer " + key)],
                     client=client)
    assert resp.status == 200, resp
    hits = landed(env, rid)
    assert [(n, r.target) for n, r in hits] == [("web", target)]
    req = hits[0][1]
    assert req.header_all("Authorization") == ["Bearer " + key]
    assert not req.has_header("X-Auth-Email")


def test_api_key_does_not_open_the_ui(env, client):
    """allow_bearer is on the /api route only: the UI still wants a session."""
    for path in ("/", "/insights", "/admin/"):
        resp, rid = send(env, "GET", path, headers=[("Authorization", "Bearer phx_abc"),
                                                    ("Accept", "application/json")], client=client)
        assert resp.status == 401, (path, resp)
        assert landed(env, rid) == []


def test_sdk_api_write_methods_are_protected(env, client):
    """The open SDK /api endpoints are GET/HEAD/OPTIONS; anything else is the
    protected /api route."""
    for method in ("POST", "PATCH", "DELETE"):
        resp, rid = send(env, method, "/api/surveys/", body=b"{}", client=client)
        assert resp.status == 401, (method, resp)
        assert landed(env, rid) == []


# ------------------------------------------------------------ path tricks

TRICKS = [
    # (host, raw target, what may happen: "capture" = lands there, else refused)
    (POSTHOG_DOMAIN, "/E", "capture"),
    (POSTHOG_DOMAIN, "/%65", "capture"),
    (POSTHOG_DOMAIN, "//e/../insights", None),
    (POSTHOG_DOMAIN, "/e/../insights", None),
    (POSTHOG_DOMAIN, "/static/../insights", None),
    (POSTHOG_DOMAIN, "/STATIC/../insights", None),
    (POSTHOG_DOMAIN, "/static/./../insights", None),
    (POSTHOG_DOMAIN, "/ingest/../insights", None),
    (POSTHOG_DOMAIN, "/decide/..%2finsights", None),
    (POSTHOG_DOMAIN, "/decide/..%2Finsights", None),
    (POSTHOG_DOMAIN, "/decide/%2e%2e/insights", None),
    (POSTHOG_DOMAIN, "/decide/%252e%252e/insights", None),
    (POSTHOG_DOMAIN, "/static/..;/insights", None),
    (POSTHOG_DOMAIN, "/static%2f..%2finsights", None),
    (POSTHOG_DOMAIN, "/static\\..\\insights", None),
    (POSTHOG_DOMAIN, "/array/../api/projects/1/insights", None),
    (POSTHOG_DOMAIN, "/api/surveys/../projects/1/insights", None),
    (POSTHOG_DOMAIN, "/api/surveys/%2e%2e/projects/1", None),
    (POSTHOG_DOMAIN, "/API/projects/1/insights", None),
    (POSTHOG_DOMAIN, "/public/../admin/", None),
    (POSTHOG_DOMAIN, "/.well-known/acme-challenge/../../insights", None),
    (POSTHOG_DOMAIN, "/_health/../insights", None),
    (POSTHOG_DOMAIN, "/flags/../api/projects/", None),
    (POSTHOG_DOMAIN, "/livestream/../insights", None),
    (POSTHOG_DOMAIN, "/complete/saml/../../insights", None),
    (POSTHOG_DOMAIN, "/saml/metadata/../../insights", None),
    (POSTHOG_DOMAIN, "http://%s/insights" % POSTHOG_DOMAIN, None),
    (APP_DOMAIN, "/ingest/insights", None),
    (APP_DOMAIN, "/ingest/static/../insights", None),
    (APP_DOMAIN, "/ingest/decide/..%2f..%2finsights", None),
    (APP_DOMAIN, "/ingest/api/projects/1/insights", None),
    (APP_DOMAIN, "/ingest//insights", None),
]


@pytest.mark.parametrize("host,target,may_land", TRICKS)
def test_path_tricks_never_reach_the_ui_over_http2(env, host, target, may_land):
    """The same targets as HTTP/2 :path (an absolute URI there is malformed)."""
    from clients import Http2
    rid = "trick-" + uuid.uuid4().hex
    answer = Http2().request(env.proxy.port, "GET", target, host=host, allow_reset=True,
                             headers=[("X-Request-ID", rid), ("Accept", "application/json")])
    hits = landed(env, rid)
    web = [r.target for r in env.ups["web"].snapshot()]
    if may_land is None:
        assert answer.status in (400, 401, 404) or refused(answer), "%s %s: %r" % (
            host, target, answer)
        assert hits == [], "%s %s reached %r" % (host, target, hits)
    else:
        assert answer.status == 200, answer
        assert [n for n, _ in hits] == [may_land], hits
    assert web == [], "%s %s: web saw %r" % (host, target, web)


@pytest.mark.parametrize("host,target,may_land", TRICKS)
def test_path_tricks_never_reach_the_ui(env, host, target, may_land):
    rid = "trick-" + uuid.uuid4().hex
    raw = ("GET %s HTTP/1.1\r\nHost: %s\r\nX-Request-ID: %s\r\nAccept: application/json\r\n"
           "Connection: close\r\n\r\n" % (target, host, rid)).encode()
    answer = send_raw(env.proxy.port, raw)
    assert answer is not None, "%s %s: no answer" % (host, target)
    status = answer.status
    hits = landed(env, rid)
    web = [r.target for r in env.ups["web"].snapshot()]
    if may_land is None:
        assert status in (400, 401, 404), "%s %s: %r" % (host, target, answer)
        assert hits == [], "%s %s reached %r" % (host, target, hits)
    else:
        assert status == 200, answer
        assert [n for n, _ in hits] == [may_land], hits
    assert web == [], "%s %s: web saw %r" % (host, target, web)


# ------------------------------------------------------------ the login

def idp_login(env, location, password=PASSWORD):
    """The IdP's form for <location>, posted with the credentials: returns
    (ACS action, form fields) of the IdP's auto-submitting answer."""
    u = urllib.parse.urlsplit(location)
    host = "127.0.0.1:%d" % env.idp_port
    r = request(env.idp_port, "GET", u.path + "?" + u.query, host=host)
    assert r.status == 200, r
    page = r.text()
    assert 'action="/sso/login"' in page, page[:500]
    pending = html.unescape(re.search(r'name="request" value="([^"]*)"', page).group(1))
    body = urllib.parse.urlencode({"username": USER, "password": password,
                                   "request": pending}).encode()
    r = request(env.idp_port, "POST", "/sso/login", host=host, body=body,
                headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 200, r
    page = r.text()
    action = html.unescape(re.search(r'action="([^"]+)"', page).group(1))
    fields = {k: html.unescape(v) for k, v in
              re.findall(r'name="([^"]+)" value="([^"]*)"', page)}
    return action, fields


def test_full_login_ends_on_the_original_page(env, alive, client):
    b = Browser(env.proxy.port, host=POSTHOG_DOMAIN, client=client)
    start = "/insights/abc?tab=1&q=%C3%A9"
    r = b.get(start, headers=[("Accept", "text/html"), ("X-Auth-Email", FORGED)])
    assert r.status == 302, r
    assert r.header("Location").startswith(sso_prefix(env))
    assert env.ups["web"].snapshot() == []

    action, fields = idp_login(env, r.header("Location"))
    assert action == "https://%s/complete/saml/" % POSTHOG_DOMAIN
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    assert ">%s</" % POSTHOG_SP_ENTITY_ID in xml  # our Audience
    assert EMAIL in xml

    # The browser posts the form to the ACS (on our origin).
    r = b.get(urllib.parse.urlsplit(action).path, method="POST",
              body=urllib.parse.urlencode(fields).encode(),
              headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 303, (r, env.proxy.stderr()[-2000:])
    assert r.header("Location") == start
    assert POSTHOG_SESSION_COOKIE in b.cookies
    assert env.ups["web"].snapshot() == []

    # Back on the original page: the upstream sees who is signed in.
    r = b.get(start, headers=[("Accept", "text/html"), ("X-Auth-Email", FORGED)])
    assert r.status == 200, r
    reqs = env.ups["web"].snapshot()
    assert [q.target for q in reqs] == [start]
    assert reqs[0].header_all("X-Auth-Email") == [EMAIL]
    assert POSTHOG_SESSION_COOKIE not in (reqs[0].header("Cookie") or "")

    # The UI's own API calls ride on the same session.
    env.ups["web"].reset()
    r = b.get("/api/projects/1/insights/", headers=[("Accept", "application/json"),
                                                    ("X-Requested-With", "XMLHttpRequest")])
    assert r.status == 200, r
    req = env.ups["web"].snapshot()[-1]
    assert req.header_all("X-Auth-Email") == [EMAIL]

    # Logout: the session is gone, the UI asks for a login again.
    r = b.get("/saml/logout")
    assert r.status in (200, 302, 303), r
    assert POSTHOG_SESSION_COOKIE not in b.cookies
    r = b.get(start, headers=[("Accept", "application/json")])
    assert r.status == 401


def test_wrong_password_gives_no_session(env, client):
    b = Browser(env.proxy.port, host=POSTHOG_DOMAIN, client=client)
    r = b.get("/insights", headers=[("Accept", "text/html")])
    assert r.status == 302
    u = urllib.parse.urlsplit(r.header("Location"))
    page = request(env.idp_port, "GET", u.path + "?" + u.query,
                   host="127.0.0.1:%d" % env.idp_port).text()
    pending = html.unescape(re.search(r'name="request" value="([^"]*)"', page).group(1))
    r = request(env.idp_port, "POST", "/sso/login", host="127.0.0.1:%d" % env.idp_port,
                body=urllib.parse.urlencode({"username": USER, "password": "wrong",
                                             "request": pending}).encode(),
                headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 200 and "SAMLResponse" not in r.text()
    r = b.get("/insights", headers=[("Accept", "application/json")])
    assert r.status == 401
    assert env.ups["web"].snapshot() == []

"""The verify endpoint (saml.forward_auth, docs/forward-auth.md) behind real
proxies: Debian's nginx with auth_request and Caddy with forward_auth, each on
HTTPS in front of a harness upstream, Portcullis' SP endpoints reached through
them, the pysaml2 IdP with its login form.

- A headless Chromium signs in through each front (tests/e2e/browser/login.mjs):
  nginx answers the verify endpoint's 401 with its error_page to our sign-in URL;
  Caddy passes the endpoint's own redirect to the IdP through.  The page comes
  from the upstream with the identity headers of the session.
- Without a browser, with sealed session cookies: the answers per mode (200
  with identity headers, 401, 403 for a route's rules), the original URL read
  from X-Original-URL or X-Forwarded-Host/-Uri/-Method.
- Spoofing: the verify endpoint refuses callers outside trusted_proxies (even
  with X-Original-URL), and a client's own identity headers or X-Original-URL
  never reach the upstream through nginx."""

import json
import os
import ssl
import subprocess
import http.client
import urllib.parse

import pytest

import configs
from forward_auth_fronts import IDENTITY, Front
from harness import RawClient, closed_port, need, request, wait_until
from saml_common import now, seal
from test_saml_browser import (EMAIL, PASSWORD, USER, echo_of, node, pysaml2_idp,  # noqa: F401
                               run_browser, step)

VERIFY = "/_portcullis/verify"
KEY = bytes(range(32))
SESSION_COOKIE = "__Host-portcullis-session"


def portcullis_config(up, port, base_url, idp_metadata, workdir):
    key_file = os.path.join(workdir, "session.key")
    with open(key_file, "w") as f:
        f.write(KEY.hex() + "\n")
    os.chmod(key_file, 0o600)
    # the SP's key made here, not by Portcullis at start (slow on a busy machine)
    sp_key, sp_cert = os.path.join(workdir, "sp.key"), os.path.join(workdir, "sp.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=portcullis-sp", "-keyout", sp_key, "-out", sp_cert],
                   check=True, capture_output=True, timeout=60)
    sites = [{"name": "app", "hosts": ["localhost"], "routes": [
        configs.route("open", "web", path=["/open"]),
        configs.route("admin", "web", path=["/admin"], auth="saml",
                      require={"attribute": "Roles", "contains": "wheel"}),
        configs.route("app", "web", auth="saml", identity_assertion=True),
    ]}]
    cfg = configs.config({"web": up}, sites,
                         listeners=[{"name": "http", "address": "127.0.0.1:%d" % port}],
                         saml={"idp_metadata": idp_metadata, "base_url": base_url,
                               "session_key_file": key_file, "sp_key": sp_key,
                               "sp_cert": sp_cert,
                               "headers": {"X-Auth-User": "@nameid", "X-Auth-Email": "Email"},
                               "forward_auth": {"path": VERIFY}})
    cfg["trusted_proxies"] = ["127.0.0.1/32"]
    return cfg


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def stack(request, module_lab):
    """IdP, Portcullis and one front (nginx or Caddy) on https://localhost:PORT."""
    kind = request.param
    need(kind)
    need("openssl")
    work = os.path.join(module_lab.workdir, kind)
    os.makedirs(work)
    up = module_lab.upstream("web-" + kind)
    port, front_port = closed_port(), closed_port()
    base = "https://localhost:%d" % front_port
    with pysaml2_idp(os.path.join(work, "idp")) as idp:
        p = module_lab.proxy(portcullis_config(up, port, base, idp["base"] + "/metadata", work), name=kind)
        front = Front(kind, work, front_port, port, up.address)
        try:
            s = {"kind": kind, "idp": idp, "proxy": p, "port": port, "front": front,
                 "base": base, "up": up}
            status, _, body = front_get(s, "/saml/metadata")
            assert status == 200 and b"SPSSODescriptor" in body, (status, body[:300])
            with open(idp["sp_md"], "wb") as f:
                f.write(body)
            yield s
        finally:
            front.close()


def front_get(s, target, headers=(), method="GET"):
    """One request to the front over TLS (its certificate is not checked)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("localhost", s["front"].port, context=ctx, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "localhost:%d" % s["front"].port)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def header(headers, name):
    found = [v for k, v in headers if k.lower() == name.lower()]
    return found[0] if found else None


def session(roles="posthog-admin", user=USER):
    t = now()
    return seal(KEY, "session", t, t + 3600, t, user, [("Email", EMAIL), ("Roles", roles)])


def verify(s, headers, query="", source=None):
    """One request straight to the verify endpoint."""
    with RawClient(s["port"], source=source) as c:
        return c.request("GET", VERIFY + query, host="portcullis", headers=headers)


def test_browser_login(stack, node):
    """Chromium opens a page through the front, signs in at the IdP, and ends on
    that page, served by the upstream with the session's identity."""
    s = stack
    target = "/private/page?a=1&b=x%2Cy"
    url = s["base"] + target
    s["up"].reset()
    out = run_browser(node, os.path.join(s["front"].dir, "browser-home"),
                      {"url": url, "username": USER, "password": PASSWORD,
                       "logout": s["base"] + "/saml/logout", "ignoreHTTPSErrors": True})
    dump = json.dumps(out, indent=1)[:6000]
    assert out["ok"] and out["outcome"] == "signed-in", dump + s["proxy"].stderr()[-3000:]
    first = out["documents"][0]
    assert (first["url"], first["status"]) == (url, 302), dump
    if s["kind"] == "nginx":
        # nginx's error_page sends the browser to our sign-in URL (from the
        # X-Portcullis-Login header of the 401), which starts the login
        login = out["documents"][1]
        assert login["url"] == "%s/saml/login?return=%s" % (
            s["base"], urllib.parse.quote(target, safe="/")), dump
        assert login["status"] == 302, dump
    landing = step(out, "landing")
    assert landing["url"].startswith(s["idp"]["base"] + "/sso/redirect?SAMLRequest="), dump
    acs = [d for d in out["documents"] if d["url"] == s["base"] + "/saml/acs"]
    assert [(d["method"], d["status"]) for d in acs] == [("POST", 303)], dump
    page = step(out, "signed-in")
    assert page["url"] == url, dump
    doc = echo_of(page["text"])
    assert doc["target"] == target, doc
    got = [r for r in s["up"].snapshot() if r.path == "/private/page"]
    assert len(got) == 1, got
    assert got[0].header_all("X-Auth-User") == [USER]
    assert got[0].header_all("X-Auth-Email") == [EMAIL]
    jwt = got[0].header("X-Portcullis-Assertion")
    assert jwt and jwt.count(".") == 2, got[0].headers
    # the logout endpoint through the front ends the session: the page sends
    # the browser to the IdP again
    logout = step(out, "logout")
    assert logout["status"] == 200 and "signed out" in logout["text"], dump
    assert SESSION_COOKIE not in {c["name"] for c in out["cookies_after_logout"]}, dump
    revisit = step(out, "revisit")
    assert revisit["url"].startswith(s["idp"]["base"] + "/sso/redirect?SAMLRequest="), dump


def test_valid_session_passes_with_identity(stack):
    s = stack
    s["up"].reset()
    status, hs, body = front_get(s, "/dash?x=1", [("Cookie", "%s=%s" % (SESSION_COOKIE,
                                                                         session()))])
    assert status == 200, (status, body[:300], s["proxy"].stderr()[-2000:])
    got = s["up"].snapshot()[-1]
    assert got.target == "/dash?x=1"
    assert got.header_all("X-Auth-User") == [USER]
    assert got.header_all("X-Auth-Email") == [EMAIL]
    assert (got.header("X-Portcullis-Assertion") or "").count(".") == 2
    # the access log names the original request
    wait_until(lambda: [e for e in s["proxy"].access_log() if e.get("path") == "/dash"],
               what="the verify request in the access log")


def test_no_session(stack):
    s = stack
    s["up"].reset()
    status, hs, _ = front_get(s, "/dash?x=1", [("Accept", "text/html")])
    assert status == 302, hs
    loc = header(hs, "Location")
    if s["kind"] == "nginx":
        assert loc == "%s/saml/login?return=/dash%%3Fx%%3D1" % s["base"], loc
    else:
        assert loc.startswith(s["idp"]["base"] + "/sso/redirect?SAMLRequest="), loc
        assert "__Host-portcullis-saml-" in (header(hs, "Set-Cookie") or ""), hs
    # an API client
    status, hs, body = front_get(s, "/api/x", [("Accept", "application/json")])
    if s["kind"] == "caddy":
        assert status == 401, (status, body)
        assert json.loads(body)["login_url"].startswith(s["base"] + "/saml/login?return="), body
    else:
        assert status == 302, (status, body)   # nginx's error_page: every 401 alike
    assert s["up"].snapshot() == []


def test_rules_refuse_with_403(stack):
    s = stack
    s["up"].reset()
    status, _, _ = front_get(s, "/admin/x", [("Cookie", "%s=%s" % (SESSION_COOKIE, session()))])
    assert status == 403
    status, _, _ = front_get(s, "/admin/x", [("Cookie", "%s=%s" % (
        SESSION_COOKIE, session(roles="wheel")))])
    assert status == 200
    assert [r.path for r in s["up"].snapshot()] == ["/admin/x"]


def test_open_route_needs_no_session(stack):
    s = stack
    s["up"].reset()
    status, _, _ = front_get(s, "/open/x")
    assert status == 200
    got = s["up"].snapshot()[-1]
    assert got.path == "/open/x"
    # (Caddy 2.6 writes its placeholder: see the test below)
    assert got.header("X-Auth-User") in (None, "{http.reverse_proxy.header.X-Auth-User}")


def test_forged_identity_never_reaches_the_upstream(stack):
    """A client's own identity headers and X-Original-URL: dropped by nginx's
    proxy_set_header (an empty value removes the header), replaced by Caddy's
    copy_headers when the session answers them."""
    s = stack
    s["up"].reset()
    forged = [("X-Auth-User", "mallory"), ("X-Auth-Email", "mallory@evil.test"),
              ("X-Portcullis-Assertion", "e.y.z")]
    status, _, _ = front_get(s, "/dash", forged + [("Cookie", "%s=%s" % (SESSION_COOKIE,
                                                                          session()))])
    assert status == 200
    got = s["up"].snapshot()[-1]
    assert got.header_all("X-Auth-User") == [USER], got.headers
    assert got.header_all("X-Auth-Email") == [EMAIL], got.headers
    assert got.header_all("X-Portcullis-Assertion") != ["e.y.z"], got.headers
    # the client names an open path in the headers of the other family than
    # the one its proxy sets: never believed (nginx: 500 for our 400, Caddy:
    # our 400 passed through)
    n = len(s["up"].snapshot())
    for spoof in ([("X-Original-URL", s["base"] + "/open/x")],
                  [("X-Forwarded-Uri", "/open/x"), ("X-Forwarded-Host", "localhost")],
                  [("X-Forwarded-Uri", "/open/x")]):
        status, _, _ = front_get(s, "/dash", spoof + [("Accept", "application/json")])
        assert status in (302, 400, 401, 500), (spoof, status)
    assert len(s["up"].snapshot()) == n
    # an open route: the verify endpoint answers no identity
    status, _, _ = front_get(s, "/open/x", forged)
    assert status == 200
    got = s["up"].snapshot()[-1]
    assert got.path == "/open/x"
    for name in IDENTITY:
        if s["kind"] == "nginx":
            assert got.header(name) is None, got.headers
        else:
            # Caddy 2.6's copy_headers writes its placeholder for a header the
            # answer lacks (later versions remove the header): never the forgery
            assert got.header(name) in (None, "{http.reverse_proxy.header.%s}" % name), \
                got.headers


def test_verify_refuses_untrusted_callers(stack):
    """From 127.0.0.2 (not in trusted_proxies) the endpoint answers 403 and never
    reads X-Original-URL; from 127.0.0.1 the same request passes."""
    s = stack
    hs = [("X-Original-URL", "https://localhost/open/x")]
    assert verify(s, hs, source="127.0.0.2").status == 403
    assert verify(s, hs).status == 200
    cookie = ("Cookie", "%s=%s" % (SESSION_COOKIE, session()))
    r = verify(s, [("X-Original-URL", "https://localhost/dash"), cookie], source="127.0.0.2")
    assert r.status == 403 and r.header("X-Auth-User") is None


def test_verify_answers(stack):
    """The endpoint itself, as each kind of caller asks."""
    s = stack
    cookie = ("Cookie", "%s=%s" % (SESSION_COOKIE, session()))
    # nginx: X-Original-URL; 200 with identity headers and the assertion
    r = verify(s, [("X-Original-URL", "https://localhost:1/dash?q=1"), cookie])
    assert r.status == 200 and r.header("X-Auth-User") == USER, r
    assert r.header("X-Auth-Email") == EMAIL and r.header("X-Portcullis-Assertion")
    assert r.header("X-Portcullis-Login") is None
    # no session: 401 for a browser too, with the sign-in URL
    r = verify(s, [("X-Original-URL", "https://localhost/dash?q=1&r=%2F"),
                   ("Accept", "text/html")])
    assert r.status == 401, r
    assert r.header("X-Portcullis-Login") == \
        "%s/saml/login?return=/dash%%3Fq%%3D1%%26r%%3D%%252F" % s["base"], r
    # the method counts: the route's rules see the original one
    r = verify(s, [("X-Original-URL", "https://localhost/dash"), ("X-Original-Method", "BREW")])
    assert r.status == 403
    # Traefik / Caddy: X-Forwarded-*; a browser is sent to the IdP, an API client gets 401
    fw = [("X-Forwarded-Host", "localhost:8443"), ("X-Forwarded-Uri", "/dash?x=1"),
          ("X-Forwarded-Proto", "https"), ("X-Forwarded-Method", "GET")]
    r = verify(s, fw + [("Accept", "text/html")], query="?mode=redirect")
    assert r.status == 302 and r.header("Location").startswith(s["idp"]["base"]), r
    r = verify(s, fw + [("Accept", "application/json")], query="?mode=redirect")
    assert r.status == 401, r
    r = verify(s, fw + [cookie], query="?mode=redirect")
    assert r.status == 200 and r.header("X-Auth-User") == USER
    # a policy refusal
    r = verify(s, [("X-Original-URL", "https://localhost/admin"), cookie])
    assert r.status == 403 and r.header("X-Auth-User") is None
    # headers that describe no request, or two
    assert verify(s, [("X-Original-URL", "https://localhost/dash"),
                      ("X-Forwarded-Uri", "/open")]).status == 400
    assert verify(s, [("X-Original-URL", "https://localhost/dash"),
                      ("X-Forwarded-Host", "evil.test")]).status == 400
    assert verify(s, [("X-Original-URL", "https://localhost/dash"),
                      ("X-Original-Method", "GET"), ("X-Forwarded-Method", "POST")]).status == 400
    assert verify(s, []).status == 400
    assert verify(s, [("X-Forwarded-Uri", "/dash")]).status == 400
    assert verify(s, [("X-Original-URL", "/dash")]).status == 400
    assert verify(s, [("X-Original-URL", "https://localhost/a"),
                      ("X-Original-URL", "https://localhost/open")]).status == 400
    # the ACS is Portcullis' own: never answered through the verify endpoint
    r = verify(s, [("X-Original-URL", "https://localhost/saml/acs"),
                   ("X-Original-Method", "POST")])
    assert r.status == 400 and b"Portcullis itself" in r.body, r
    # the path is normalized like any request's: no way around a route
    r = verify(s, [("X-Original-URL", "https://localhost/open/../admin"), cookie])
    assert r.status == 403, r
    r = verify(s, [("X-Original-URL", "https://localhost/open/%2e%2e/admin")])
    assert r.status in (400, 401, 403), r


EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                       "forward-auth")


def test_example_configs_load(tmp_path):
    """examples/forward-auth: nginx -t takes nginx.conf (inside an http block,
    with a certificate made here), caddy adapt takes the Caddyfile (its
    portcullis.json is checked with every JSON config, tests/packaging)."""
    need("nginx")
    need("caddy")
    d = str(tmp_path)
    os.makedirs(os.path.join(d, "tmp"))
    import forward_auth_fronts
    forward_auth_fronts.self_signed(d)
    with open(os.path.join(EXAMPLE, "nginx.conf")) as f:
        server = f.read()
    server = server.replace("/etc/ssl/app.example.com/fullchain.pem", os.path.join(d, "cert.pem"))
    server = server.replace("/etc/ssl/app.example.com/privkey.pem", os.path.join(d, "key.pem"))
    server = server.replace("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % closed_port())
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("pid %s/nginx.pid;\nevents {}\nhttp {\nclient_body_temp_path %s/tmp;\n"
                "proxy_temp_path %s/tmp;\n%s}\n" % (d, d, d, server))
    r = subprocess.run(["nginx", "-t", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["caddy", "adapt", "--adapter", "caddyfile", "--config",
                        os.path.join(EXAMPLE, "Caddyfile")], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, HOME=d))
    assert r.returncode == 0, r.stderr
    adapted = json.loads(r.stdout)
    assert "forward_auth" in r.stdout or "/_portcullis/verify" in r.stdout, adapted


@pytest.fixture(scope="module")
def revoking(module_lab):
    """Portcullis with saml.revocation on a real redis-server, and the verify
    endpoint (called straight, from a trusted address)."""
    need("redis-server")
    from test_saml_redis import DB, PASSWORD, PREFIX, RedisServer
    work = os.path.join(module_lab.workdir, "revoke")
    os.makedirs(work)
    redis = RedisServer(work, closed_port())
    redis.start()
    try:
        up = module_lab.upstream("web-revoke")
        port = closed_port()
        cfg = portcullis_config(up, port, "https://localhost", configs.throwaway_idp_metadata(),
                                work)
        cfg["saml"]["revocation"] = {"poll_interval": 0.2, "max_staleness": 2}
        cfg["redis"] = {"address": "127.0.0.1:%d" % redis.port, "password": PASSWORD, "db": DB,
                        "key_prefix": PREFIX}
        p = module_lab.proxy(cfg, name="revoke")
        yield {"port": port, "proxy": p}
    finally:
        redis.stop()


def test_revoked_session_is_refused(revoking):
    """A user signed out everywhere (the admin endpoint): the verify endpoint
    answers 401 for the cookie it accepted before."""
    s = revoking
    cookie = ("Cookie", "%s=%s" % (SESSION_COOKIE, session()))
    asks = [("X-Original-URL", "https://localhost/dash"), cookie]
    r = verify(s, asks)
    assert r.status == 200 and r.header("X-Auth-User") == USER, r
    r = request(s["proxy"].admin_port, "POST", "/revoke?user=%s" % USER)
    assert r.status == 200, r
    wait_until(lambda: verify(s, asks).status == 401, timeout=5, interval=0.05,
               what="the revoked session refused by the verify endpoint")
    r = verify(s, asks)
    assert r.status == 401 and r.header("X-Auth-User") is None
    assert r.header("X-Portcullis-Login") == "https://localhost/saml/login?return=/dash"

"""A real browser through the SAML login: headless Chromium (Debian's
/usr/bin/chromium, driven by playwright-core from tests/e2e/browser/login.mjs)
against the real binary serving HTTPS with its local CA, and the pysaml2 IdP
(tests/saml/pysaml2_idp.py) showing a login form.

The browser opens a protected page, is sent to the IdP with our signed
AuthnRequest, fills in the form, follows the IdP's auto-submitted POST to the
ACS (a cross-site POST: the request-tracking cookie must be SameSite=None),
and must end on the page it asked for, served by the upstream with the
identity headers from the session.  The proxy's TLS listener offers HTTP/2
(the default): the pages the proxy serves must have come over h2 (the
navigation's nextHopProtocol, and "HTTP/2.0" in the access log), the IdP's
over http/1.1.  The local CA is trusted through a
temporary NSS database (HOME/.pki/nssdb), never the system store, and no
certificate error is ignored: a page that loads proves the chain verified.

Skipped only when node/npm, chromium or certutil (libnss3-tools) is missing
and PORTCULLIS_REQUIRE_ALL is unset.  tests/e2e/browser/node_modules is
installed with `npm ci` when missing (needs the npm registry once)."""

import base64
import contextlib
import html
import http.client
import json
import os
import re
import ssl
import subprocess
import urllib.parse

import pytest

from chromium import BROWSER_DIR, browser_node, chromium_path
from harness import closed_port, request
from saml_common import ACS_PATH, saml_config
from test_websocket import EchoServer

HERE = os.path.dirname(os.path.abspath(__file__))
IDP_SCRIPT = os.path.join(HERE, "..", "saml", "pysaml2_idp.py")

USER, PASSWORD, EMAIL = "alice", "correct horse 7", "alice@example.test"
USER2, PASSWORD2 = "bob", "b0b-pw"  # no roles, default e-mail and display name
ROLES, DISPLAY = ["posthog-admin", "staff"], "Alice Liddell"
SESSION_COOKIE = "__Host-portcullis-session"
TRACK_PREFIX = "__Host-portcullis-saml-"
TARGET = "/insights/abc?tab=1&filter=a%2Cb"
TARGET_REFUSED = "/dashboard/7?from=refused"


@pytest.fixture(scope="module")
def node():
    return browser_node("certutil")


@contextlib.contextmanager
def pysaml2_idp(work, host="127.0.0.1"):
    """The pysaml2 IdP on <host> (a free port) with a login form for USER
    and USER2, its files in <work>; stopped by PID at the end.  The SP's
    metadata goes to the "sp_md" file before the first sign-in."""
    os.makedirs(work)
    sp_md = os.path.join(work, "sp-metadata.xml")
    log_path = os.path.join(work, "idp.log")
    spec = "%s:%s:%s:%s:%s" % (USER, PASSWORD, EMAIL, ",".join(ROLES), DISPLAY)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["/usr/bin/python3", IDP_SCRIPT, "--form", spec,
                                 "--form", "%s:%s" % (USER2, PASSWORD2),
                                 "--listen", "%s:0" % host, work, sp_md],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    try:
        line = proc.stdout.readline().decode()
        m = re.match(r"listening on (\d+)$", line.strip())
        if not m:
            with open(log_path) as f:
                raise AssertionError("the pysaml2 IdP did not start: %r\n%s" % (line, f.read()))
        port = int(m.group(1))
        yield {"port": port, "base": "http://%s:%d" % (host, port), "sp_md": sp_md}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture(scope="module")
def idp(module_lab):
    """The pysaml2 IdP with a login form for USER."""
    with pysaml2_idp(os.path.join(module_lab.workdir, "idp")) as i:
        yield i


@pytest.fixture(scope="module")
def ws_echo():
    """python3-websockets' echo server (the upstream of /ws)."""
    e = EchoServer()
    yield e
    e.close()


@pytest.fixture(scope="module")
def sp(module_lab, idp, ws_echo):
    """Portcullis on https://localhost:PORT (local CA), SP of the IdP."""
    up = module_lab.upstream("web")
    port = closed_port()
    certs = os.path.join(module_lab.workdir, "certs")
    cfg = saml_config(up, port, idp["base"] + "/metadata", headers={
        "X-Auth-Email": "Email", "X-Auth-User": "@nameid", "X-Auth-Name": "DisplayName",
        "X-Auth-Roles": "Roles"}, idp_metadata_refresh=3600, certs_dir=certs,
        base_url="https://localhost:%d" % port)
    # A WebSocket app behind the gate: /ws goes to python3-websockets' echo
    # server; a second TLS listener speaks HTTP/1.1 only, so the page can
    # open one tunnel over each protocol (the session cookie is not bound to
    # a port).
    echo = ws_echo
    ws_port = closed_port()
    cfg["upstreams"]["ws"] = {"servers": [echo.address]}
    cfg["sites"][0]["routes"].insert(0, {"name": "ws", "match": {"path": ["/ws"]},
                                         "upstream": "ws", "auth": "saml"})
    cfg["listeners"] = [{"name": "https", "address": "127.0.0.1:%d" % port, "tls": True},
                        {"name": "https-h1", "address": "127.0.0.1:%d" % ws_port, "tls": True,
                         "http2": False}]
    cfg["tls"] = {"mode": "local", "certs_dir": certs}
    p = module_lab.proxy(cfg, name="sp")
    ca = os.path.join(certs, "local-ca", "ca.crt")
    assert os.path.exists(ca), p.stderr()[-3000:]
    s = {"port": port, "proxy": p, "up": up, "ca": ca, "base": "https://localhost:%d" % port,
         "echo": echo, "ws_urls": ["wss://localhost:%d/ws" % port, "wss://localhost:%d/ws" % ws_port],
         "ssl": ssl.create_default_context(cafile=ca)}
    status, _, body = https_request(s, "GET", "/saml/metadata")
    assert status == 200 and b"SPSSODescriptor" in body, (status, body[:500])
    with open(idp["sp_md"], "wb") as f:
        f.write(body)
    return s


def https_request(sp, method, target, headers=(), body=None):
    """One request to the proxy over TLS (the local CA trusted); returns
    (status, header list, body bytes)."""
    conn = http.client.HTTPSConnection("localhost", sp["port"], context=sp["ssl"], timeout=10)
    try:
        conn.request(method, target, body=body, headers=dict(headers))
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def idp_call(idp, method, target, fields=None):
    """One request straight to the IdP (plain HTTP); <fields> are posted as a form."""
    body = urllib.parse.urlencode(fields) if fields is not None else None
    headers = [("Content-Type", "application/x-www-form-urlencoded")] if body else []
    r = request(idp["port"], method, target, host="127.0.0.1:%d" % idp["port"],
                headers=headers, body=body.encode() if body else None)
    return r


@pytest.fixture(scope="module")
def nss_home(module_lab, sp, node):
    """A HOME whose NSS database (~/.pki/nssdb, where Chromium on Linux reads
    locally added roots) trusts our local CA for TLS servers: a fresh
    database, the system trust store is not touched."""
    return home_trusting(os.path.join(module_lab.workdir, "browser-home"), sp["ca"])


def home_trusting(home, ca):
    """Makes <home> with a fresh NSS database trusting the CA in file <ca>."""
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    for args in (["-N", "--empty-password"],
                 ["-A", "-t", "C,,", "-n", "portcullis-test-ca", "-i", ca]):
        res = subprocess.run(["certutil", "-d", "sql:" + db] + args, capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0, "certutil %s: %s%s" % (args[0], res.stdout, res.stderr)
    return home


def run_browser(node, home, opts, prefix=()):
    """login.mjs with <opts>, HOME=<home>; <prefix> runs it inside another
    command (e.g. ip netns exec NAME)."""
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
               XDG_CACHE_HOME=os.path.join(home, ".cache"), CHROMIUM=chromium_path())
    res = subprocess.run(list(prefix) + [node, os.path.join(BROWSER_DIR, "login.mjs"),
                                         json.dumps(opts)],
                         cwd=BROWSER_DIR, env=env, capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, "login.mjs failed (exit %d):\nstdout: %s\nstderr: %s" % (
        res.returncode, res.stdout, res.stderr[-4000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def browser(node, nss_home, idp, sp):
    """One Chromium, two logins in separate contexts: first a wrong password
    on TARGET_REFUSED, then the right one on TARGET, with logout and a second
    visit.  Returns both runs, what the upstream received during them (in
    order) and the proxy's stderr written meanwhile."""
    sp["up"].reset()
    err_at = len(sp["proxy"].stderr())
    out = run_browser(node, nss_home, {"runs": [
        {"url": sp["base"] + TARGET_REFUSED, "username": USER, "password": PASSWORD + "x"},
        {"url": sp["base"] + TARGET, "username": USER, "password": PASSWORD,
         "logout": sp["base"] + "/saml/logout", "websockets": sp["ws_urls"]},
    ]})
    # The logout reached the proxy before login.mjs ended; let the proxy's
    # log catch up with it (a failed run is reported by the tests instead).
    if out["runs"][1]["ok"] and out["runs"][1]["outcome"] == "signed-in":
        sp["proxy"].wait_stderr(r"saml: %s signed out" % USER, start=err_at)
    return {"refused": out["runs"][0], "signed_in": out["runs"][1], "chromium": out["chromium"],
            "upstream": [r for r in sp["up"].snapshot() if r.path != "/favicon.ico"],
            "access_log": sp["proxy"].access_log(),
            "stderr": sp["proxy"].stderr()[err_at:]}


def step(out, name):
    found = [s for s in out["steps"] if s["step"] == name]
    assert found, "no step %r in %s" % (name, json.dumps(out, indent=1)[:6000])
    return found[0]


def echo_of(text):
    """The upstream's echo document from the page text (Chromium's JSON
    viewer may add a "Pretty-print" line above it)."""
    start, end = text.find("{"), text.rfind("}")
    assert start >= 0 and end > start, "no JSON on the page: %r" % text[:2000]
    return json.loads(text[start:end + 1])


def cookie_attrs(line):
    """A Set-Cookie line → (name, value, {attribute lower-case: value})."""
    first, *attrs = [p.strip() for p in line.split(";")]
    name, _, value = first.partition("=")
    out = {}
    for a in attrs:
        k, _, v = a.partition("=")
        out[k.lower()] = v
    return name, value, out


def test_browser_login_logout(browser, idp, sp, alive):
    url = sp["base"] + TARGET
    out = browser["signed_in"]
    dump = json.dumps(out, indent=1)[:8000]
    assert out["ok"] and out["error"] is None, dump
    assert out["outcome"] == "signed-in", dump

    # 1. Sent to the IdP's form with our signed AuthnRequest.
    landing = step(out, "landing")
    assert landing["url"].startswith(idp["base"] + "/sso/redirect?SAMLRequest="), dump
    assert landing["idp_form"] and landing["status"] == 200, dump
    first = out["documents"][0]
    assert (first["method"], first["url"], first["status"]) == ("GET", url, 302), dump
    tracks = [cookie_attrs(c) for c in first["set_cookie"]]
    assert len(tracks) == 1 and tracks[0][0].startswith(TRACK_PREFIX), dump
    _, _, attrs = tracks[0]
    assert attrs.get("samesite") == "None" and "secure" in attrs and "httponly" in attrs, dump
    assert "domain" not in attrs and attrs.get("path") == "/", dump

    # 2. The IdP's auto-POST reached the ACS, which redirected to the page.
    acs = [d for d in out["documents"] if d["url"] == sp["base"] + ACS_PATH]
    assert len(acs) == 1 and acs[0]["method"] == "POST" and acs[0]["status"] == 303, dump
    set_by_acs = {n: a for n, _, a in map(cookie_attrs, acs[0]["set_cookie"])}
    assert SESSION_COOKIE in set_by_acs, dump
    a = set_by_acs[SESSION_COOKIE]
    assert a.get("samesite") == "Lax" and "secure" in a and "httponly" in a, dump
    assert a.get("path") == "/" and "domain" not in a and int(a["max-age"]) > 0, dump
    assert set_by_acs.get(tracks[0][0], {}).get("max-age") == "0", \
        "the ACS must clear the tracking cookie: %s" % dump

    # 3. The browser ends on the original URL with the upstream's page.
    signed_in = step(out, "signed-in")
    assert signed_in["url"] == url and signed_in["path"] == TARGET, dump
    doc = echo_of(signed_in["text"])
    assert doc["upstream"] == "web" and doc["method"] == "GET" and doc["target"] == TARGET, doc
    seen = browser["upstream"]
    assert [r.target for r in seen] == [TARGET], seen  # nothing from the refused run
    got = seen[0]
    assert got.header_all("X-Auth-Email") == [EMAIL]
    assert got.header_all("X-Auth-User") == [USER]
    assert got.header_all("X-Auth-Name") == [DISPLAY]
    assert got.header_all("X-Auth-Roles") == [", ".join(ROLES)]
    assert got.header("X-Forwarded-Proto") == "https"
    assert "portcullis" not in (got.header("Cookie") or ""), got.headers

    # 3b. Over HTTP/2: the page the proxy served, as Chromium negotiated it,
    # and the access log (the 302, the ACS POST and the page).
    assert signed_in["protocol"] == "h2", "the signed-in page came over %r: %s" % (
        signed_in["protocol"], dump)
    assert landing["protocol"] == "http/1.1", dump      # the IdP speaks HTTP/1.1
    log = [e for e in sp["proxy"].access_log() if e.get("path") in (
        TARGET.split("?")[0], ACS_PATH)]
    assert {(e["method"], e["path"]) for e in log} >= {("GET", TARGET.split("?")[0]),
                                                      ("POST", ACS_PATH)}, log
    assert {e.get("protocol") for e in log} == {"HTTP/2.0"}, log

    # 4. The cookie jar: the session cookie with its flags, no tracking cookie.
    jar = {c["name"]: c for c in out["cookies"]}
    assert set(jar) == {SESSION_COOKIE}, dump
    c = jar[SESSION_COOKIE]
    assert c["httpOnly"] and c["secure"] and c["sameSite"] == "Lax", c
    assert c["path"] == "/" and c["domain"] == "localhost" and c["value_length"] > 40, c
    assert len(re.findall(r"saml: %s signed in \[ref [^\]]+\] from 127\.0\.0\.1" % USER,
                          browser["stderr"])) == 1, browser["stderr"]

    # 5. Logout clears the session; the page sends the browser to the IdP again.
    logout = step(out, "logout")
    assert logout["status"] == 200 and "signed out" in logout["text"], dump
    assert logout["protocol"] == "h2", dump
    assert SESSION_COOKIE not in {c["name"] for c in out["cookies_after_logout"]}, dump
    revisit = step(out, "revisit")
    assert revisit["url"].startswith(idp["base"] + "/sso/redirect?SAMLRequest="), dump
    assert revisit["idp_form"] and revisit["idp_error"] is None, dump
    assert "saml: %s signed out" % USER in browser["stderr"]


def test_browser_wrong_password(browser, idp, sp, alive):
    url = sp["base"] + TARGET_REFUSED
    out = browser["refused"]
    dump = json.dumps(out, indent=1)[:8000]
    assert out["ok"] and out["outcome"] == "refused", dump
    final = step(out, "refused")
    assert final["url"] == idp["base"] + "/sso/login", dump
    assert final["idp_form"] and final["idp_error"] == "Wrong user name or password.", dump
    posts = [d for d in out["documents"] if d["method"] == "POST"]
    assert [(d["url"], d["status"]) for d in posts] == [(idp["base"] + "/sso/login", 200)], dump
    assert not any(d["url"].startswith(sp["base"] + ACS_PATH) for d in out["documents"]), dump
    assert out["documents"][0]["url"] == url and out["documents"][0]["status"] == 302, dump
    assert not [r for r in browser["upstream"] if r.path == TARGET_REFUSED.split("?")[0]], \
        "the upstream got requests of the refused login: %r" % browser["upstream"]
    assert SESSION_COOKIE not in {c["name"] for c in out["cookies"]}, dump
    assert [c["name"][:len(TRACK_PREFIX)] for c in out["cookies"]] == [TRACK_PREFIX], \
        "only the tracking cookie of the pending login: %s" % dump


def test_idp_form_keeps_the_request_checked(idp, sp, alive):
    """The IdP's form mode without a browser: the pending request in the
    hidden field is verified again on POST; errors never produce a Response."""
    status, headers, _ = https_request(sp, "GET", "/dashboard", [("Accept", "text/html")])
    assert status == 302, status
    loc = urllib.parse.urlsplit(dict((k.lower(), v) for k, v in headers)["location"])
    assert "%s://%s" % (loc.scheme, loc.netloc) == idp["base"]
    form = idp_call(idp, "GET", loc.path + "?" + loc.query)
    assert form.status == 200 and 'id="login"' in form.text(), form
    hidden = re.search(r'name="request" value="([^"]*)"', form.text()).group(1)
    assert html.unescape(hidden) == loc.query
    # wrong password: the form again, with the error and the user name kept
    r = idp_call(idp, "POST", "/sso/login", {"username": USER, "password": "nope",
                                             "request": loc.query})
    assert r.status == 200 and "Wrong user name or password." in r.text(), r
    assert 'value="%s"' % USER in r.text() and "SAMLResponse" not in r.text()
    # unknown user: same answer
    r = idp_call(idp, "POST", "/sso/login", {"username": "mallory", "password": PASSWORD,
                                             "request": loc.query})
    assert r.status == 200 and "Wrong user name or password." in r.text()
    # a tampered pending request (the RelayState changed): 400, even with the password
    q = urllib.parse.parse_qs(loc.query)
    relay = q["RelayState"][0]
    q["RelayState"] = ["0" * len(q["RelayState"][0])]
    r = idp_call(idp, "POST", "/sso/login", {"username": USER, "password": PASSWORD,
                                             "request": urllib.parse.urlencode(q, doseq=True)})
    assert r.status == 400 and "does not verify" in r.text(), r
    assert "SAMLResponse" not in r.text()
    # no pending request at all
    r = idp_call(idp, "POST", "/sso/login", {"username": USER, "password": PASSWORD})
    assert r.status == 400 and "no SAMLRequest" in r.text(), r
    # the right password: the auto-submitting form to our ACS with the RelayState
    r = idp_call(idp, "POST", "/sso/login", {"username": USER, "password": PASSWORD,
                                             "request": loc.query})
    assert r.status == 200, r
    assert 'action="%s%s"' % (sp["base"], ACS_PATH) in r.text()
    assert 'name="SAMLResponse"' in r.text() and "document.forms[0].submit()" in r.text()
    assert 'name="RelayState" value="%s"' % relay in r.text()


def test_user_without_roles(idp, sp, alive):
    """A user without roles, without a browser: the attributes are written
    as Casdoor writes them (Name="Email", basic name format, Roles present
    but empty); the login works and the upstream gets no X-Auth-Roles."""
    status, headers, _ = https_request(sp, "GET", "/dashboard?x=1", [("Accept", "text/html")])
    assert status == 302, status
    location = [v for k, v in headers if k.lower() == "location"][0]
    track = [v.split(";")[0] for k, v in headers if k.lower() == "set-cookie"]
    assert len(track) == 1 and track[0].startswith(TRACK_PREFIX), headers
    loc = urllib.parse.urlsplit(location)
    r = idp_call(idp, "POST", "/sso/login", {"username": USER2, "password": PASSWORD2,
                                             "request": loc.query})
    assert r.status == 200, r
    fields = {html.unescape(k): html.unescape(v) for k, v in
              re.findall(r'name="([^"]+)" value="([^"]*)"', r.text())}
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    attrs = re.findall(r'<(?:\w+:)?Attribute ([^>]*?)(/?)>', xml)
    basic = 'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"'
    assert [(a.split('"')[1], empty) for a, empty in attrs] == [
        ("Email", ""), ("Name", ""), ("DisplayName", ""), ("Roles", "/")], xml
    assert all(basic in a and "FriendlyName" not in a for a, _ in attrs), xml
    status, headers, body = https_request(
        sp, "POST", ACS_PATH, [("Content-Type", "application/x-www-form-urlencoded"),
                               ("Cookie", track[0])], urllib.parse.urlencode(fields))
    assert status == 303, (status, body, sp["proxy"].stderr()[-2000:])
    assert [v for k, v in headers if k.lower() == "location"] == ["/dashboard?x=1"]
    session = [v.split(";")[0] for k, v in headers
               if k.lower() == "set-cookie" and v.startswith(SESSION_COOKIE + "=")]
    assert len(session) == 1, headers
    sp["up"].reset()
    status, _, body = https_request(sp, "GET", "/dashboard?x=1",
                                    [("Cookie", session[0]), ("X-Auth-Roles", "forged")])
    assert status == 200, body
    got = sp["up"].snapshot()[-1]
    assert got.target == "/dashboard?x=1"
    assert got.header_all("X-Auth-Email") == ["%s@example.com" % USER2]
    assert got.header_all("X-Auth-User") == [USER2]
    assert got.header_all("X-Auth-Name") == [USER2]
    assert got.header_all("X-Auth-Roles") == []


def test_browser_websocket_over_both_protocols(browser, sp):
    """A WebSocket app behind the SAML gate in Chromium: from the signed-in
    page, one tunnel over HTTP/2 (RFC 8441 on the connection the page came
    over) and one over HTTP/1.1 (the listener without h2), both echoing, both
    with the session's identity and never the session cookie upstream."""
    out = browser["signed_in"]
    dump = json.dumps(out.get("websockets"), indent=1)[:4000]
    results = out.get("websockets") or []
    assert [r["url"] for r in results] == sp["ws_urls"], dump
    for r in results:
        assert r["ok"], dump
        assert r["got"][0] == "hello from chromium", dump
        seen = json.loads(r["got"][1])
        assert seen["X-Auth-Email"] == EMAIL and seen["X-Auth-User"] == USER, seen
        assert SESSION_COOKIE not in seen.get("Cookie", ""), seen
    tunnels = [e for e in browser["access_log"] if e.get("path") == "/ws"]
    assert sorted(e["protocol"] for e in tunnels) == ["HTTP/1.1", "HTTP/2.0"], tunnels
    assert {e["status"] for e in tunnels} == {101}, tunnels

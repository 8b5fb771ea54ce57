"""One sign-in for several hosts (saml.hosts): three sites on different host
names (posthog.test, the auth host with the ACS; temporal.test and
minio.test, hand-off hosts) behind the real binary over HTTPS (its local CA),
the pysaml2 IdP with its login form, a real redis-server (the shared replay
store and revocation) and headless Chromium reaching every name at 127.0.0.1
through --host-resolver-rules.

  - the browser signs in once at the IdP and then opens the other two hosts:
    each is handed the session through the auth host (no second IdP visit)
    and gets its own host-only cookie; the upstream of each sees the user;
  - the hand-off token the browser used is refused when replayed (single
    use), a token for one host is refused on another, and the auth host
    refuses to hand off to a host outside saml.hosts (another site of the
    same proxy, a foreign host, userinfo, "//", backslashes);
  - a second browser starts on a hand-off host (the login runs at the auth
    host and ends on the page it asked for) and signs out on another host:
    that host's cookie is cleared, and the session is revoked, so the
    cookies captured on all three hosts before are refused afterwards (also
    after a sign-out by plain HTTP on the third host, for the first browser);
  - two replicas sharing Redis: a token used at one is refused at the other;
    without Redis, the process's own replay cache refuses a second use;
  - `-t` names a bad saml.hosts entry by its JSON path.
"""

import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import urllib.parse

import pytest

from harness import BINARY, closed_port, need, wait_until
import configs
from saml_common import ACS_PATH, samltools
from test_saml_browser import (PASSWORD as IDP_PASSWORD, USER, home_trusting, node,  # noqa: F401
                               pysaml2_idp, run_browser, step, echo_of)
from test_saml_redis import DB, PASSWORD, PREFIX, RedisServer

need("redis-server")

SESSION = "__Host-portcullis-session"
NONCE = "__Host-portcullis-saml-handoff"
AUTH, TEMPORAL, MINIO, OTHER = "posthog.test", "temporal.test", "minio.test", "other.test"


def make_config(up, port, listen_port, certs, idp_md, redis=None):
    def origin(h):
        return "https://%s:%d" % (h, port)
    saml = {"idp_metadata": idp_md, "idp_metadata_refresh": 3600, "base_url": origin(AUTH),
            "acs_path": ACS_PATH, "certs_dir": certs,
            "headers": {"X-Auth-User": "@nameid", "X-Auth-Email": "Email"},
            "hosts": [origin(TEMPORAL), origin(MINIO)]}
    if redis is not None:
        saml.update({"replay_store": "redis",
                     "revocation": {"poll_interval": 0.2, "max_staleness": 5}})
    sites = [{"name": h.split(".")[0], "hosts": [h],
              "routes": [{"name": h.split(".")[0], "upstream": "web", "auth": "saml"}]}
             for h in (AUTH, TEMPORAL, MINIO, OTHER)]
    # temporal's /admin refuses everyone ("sign in as someone else")
    sites[1]["routes"].insert(0, {"name": "temporal-admin", "match": {"path": ["/admin"]},
                                  "upstream": "web", "auth": "saml",
                                  "require": {"attribute": "Roles", "contains": "nobody"}})
    top = {"redis": {"address": "127.0.0.1:%d" % redis.port, "password": PASSWORD, "db": DB,
                     "key_prefix": PREFIX}} if redis is not None else {}
    return configs.config(
        {"web": up}, sites,
        listeners=[{"name": "https", "address": "127.0.0.1:%d" % listen_port, "tls": True}],
        tls={"mode": "local", "certs_dir": certs}, saml=saml, **top)


@pytest.fixture(scope="module")
def env(module_lab):
    work = module_lab.workdir
    redis = RedisServer(work, closed_port())
    redis.start()
    try:
        with pysaml2_idp(os.path.join(work, "idp")) as idp:
            up = module_lab.upstream("web")
            certs = os.path.join(work, "certs")
            port, port_b = closed_port(), closed_port()
            a = module_lab.proxy(make_config(up, port, port, certs, idp["base"] + "/metadata",
                                             redis), name="replica-a")
            ca = os.path.join(certs, "local-ca", "ca.crt")
            assert os.path.exists(ca), a.stderr()[-3000:]
            # Replica B: the same public names (port), its own listener.
            b = module_lab.proxy(make_config(up, port, port_b, certs, idp["base"] + "/metadata",
                                             redis), name="replica-b")
            e = {"port": port, "port_b": port_b, "a": a, "b": b, "up": up, "idp": idp,
                 "ca": ca, "redis": redis, "work": work,
                 "ctx": ssl.create_default_context(cafile=ca)}
            status, _, body = https(e, AUTH, "GET", "/saml/metadata")
            assert status == 200 and b"SPSSODescriptor" in body, (status, body[:300])
            with open(idp["sp_md"], "wb") as f:
                f.write(body)
            yield e
    finally:
        redis.stop()


def origin(env, host):
    return "https://%s:%d" % (host, env["port"])


def https(env, host, method, target, cookies=None, headers=(), port=None):
    """One request over TLS to <host> (SNI and Host "host:PORT", the public
    port) at 127.0.0.1:<port> (default replica A); (status, headers, body)."""
    port = port or env["port"]
    conn = http.client.HTTPSConnection(host, port, context=env["ctx"], timeout=10)
    conn.sock = env["ctx"].wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                                       server_hostname=host)
    hs = {"Host": "%s:%d" % (host, env["port"])}
    hs.update(dict(headers))
    if cookies:
        hs["Cookie"] = "; ".join("%s=%s" % kv for kv in cookies.items())
    try:
        conn.request(method, target, headers=hs)
        r = conn.getresponse()
        return r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read()
    finally:
        conn.close()


def header(headers, name):
    found = [v for k, v in headers if k == name]
    return found[0] if found else None


def set_cookies(headers):
    out = {}
    for k, v in headers:
        if k == "set-cookie":
            name, _, rest = v.partition("=")
            out[name] = (rest.split(";")[0], v)
    return out


def sign_in_by_hand(env, target="/start", port=None):
    """A login at the auth host (at 127.0.0.1:<port>) without a browser (the
    IdP's form posted by hand); returns the session cookie value."""
    port = port or env["port"]
    status, hs, _ = https(env, AUTH, "GET", target, headers=[("Accept", "text/html")], port=port)
    assert status == 302, status
    loc = urllib.parse.urlsplit(header(hs, "location"))
    track = {n: v for n, (v, _) in set_cookies(hs).items()}
    idp = env["idp"]
    conn = http.client.HTTPConnection("127.0.0.1", idp["port"], timeout=10)
    conn.request("POST", "/sso/login", body=urllib.parse.urlencode(
        {"username": USER, "password": IDP_PASSWORD, "request": loc.query}),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    page = conn.getresponse().read().decode()
    conn.close()
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
    import html
    body = urllib.parse.urlencode({k: html.unescape(v) for k, v in fields.items()
                                   if k in ("SAMLResponse", "RelayState")})
    conn = http.client.HTTPSConnection(AUTH, env["port"], context=env["ctx"], timeout=10)
    conn.sock = env["ctx"].wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                                       server_hostname=AUTH)
    conn.request("POST", ACS_PATH, body=body, headers={
        "Host": "%s:%d" % (AUTH, env["port"]), "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join("%s=%s" % kv for kv in track.items())})
    r = conn.getresponse()
    r.read()
    cookies = set_cookies([(k.lower(), v) for k, v in r.getheaders()])
    conn.close()
    assert r.status == 303 and SESSION in cookies, (r.status, env["a"].stderr()[-2000:])
    return cookies[SESSION][0]


def handoff_by_hand(env, session, host, path="/wf/1", port=None):
    """On <host> without a session: to the auth host (with the nonce cookie),
    which (signed in) answers with the hand-off URL.  Returns (url, nonce)."""
    status, hs, _ = https(env, host, "GET", path, headers=[("Accept", "text/html")], port=port)
    assert status == 302, status
    login = header(hs, "location")
    nonce = set_cookies(hs)[NONCE][0]
    assert login.startswith(origin(env, AUTH) + "/saml/login?return="), login
    status, hs, _ = https(env, AUTH, "GET", login[len(origin(env, AUTH)):],
                          cookies={SESSION: session}, port=port)
    assert status == 303, status
    url = header(hs, "location")
    assert url.startswith(origin(env, host) + "/saml/handoff?token="), url
    return url, nonce


def use_handoff(env, host, url, nonce, port=None):
    return https(env, host, "GET", url[len(origin(env, host)):], cookies={NONCE: nonce},
                 port=port)


# ---- the browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(env, node):  # noqa: F811
    home = home_trusting(os.path.join(env["work"], "browser-home"), env["ca"])
    env["up"].reset()
    err_at = len(env["a"].stderr())
    rules = ", ".join("MAP %s 127.0.0.1" % h for h in (AUTH, TEMPORAL, MINIO, OTHER))
    out = run_browser(node, home, {"args": ["--host-resolver-rules=" + rules], "runs": [{
        "url": origin(env, AUTH) + "/insights?x=1", "username": USER, "password": IDP_PASSWORD,
        "then": [origin(env, TEMPORAL) + "/namespaces/default?tab=wf",
                 origin(env, MINIO) + "/browser/bucket-1", origin(env, AUTH) + "/again"],
        "again": r"/saml/handoff\?token=", "cookie_values": True}, {
        # a fresh browser starting on a hand-off host, signing out on another
        "url": origin(env, MINIO) + "/first?from=minio", "username": USER,
        "password": IDP_PASSWORD, "then": [origin(env, TEMPORAL) + "/t", origin(env, AUTH) + "/p"],
        "cookie_values": True, "logout": origin(env, TEMPORAL) + "/saml/logout"}]})
    return {"run": out["runs"][0], "second": out["runs"][1],
            "stderr": env["a"].stderr()[err_at:],
            "upstream": [r for r in env["up"].snapshot() if r.path != "/favicon.ico"]}


def jar(run, host, name):
    found = [c for c in run["cookies_after_then"] if c["domain"] == host and c["name"] == name]
    assert len(found) == 1, (host, name, run["cookies_after_then"])
    return found[0]


def test_one_sign_in_reaches_three_hosts(env, browser, alive):
    run = browser["run"]
    dump = json.dumps(run, indent=1)[:8000]
    assert run["ok"] and run["outcome"] == "signed-in", dump
    assert step(run, "landing")["idp_form"], dump
    # The IdP is visited once: its form, then the POST of the password.
    idp_docs = [d for d in run["documents"] if d["url"].startswith(env["idp"]["base"])]
    assert [d["method"] for d in idp_docs] == ["GET", "POST"], dump
    # The other hosts: each page is the upstream's, for the signed-in user.
    wanted = [origin(env, TEMPORAL) + "/namespaces/default?tab=wf",
              origin(env, MINIO) + "/browser/bucket-1", origin(env, AUTH) + "/again"]
    assert [s["url"] for s in run["then"]] == wanted, dump
    for s in run["then"]:
        assert s["status"] == 200 and not s["idp_form"], dump
        doc = echo_of(s["text"])
        assert doc["upstream"] == "web" and urllib.parse.urlsplit(s["url"]).path in doc["target"]
    seen = {(r.header("Host"), r.target): r for r in browser["upstream"]}
    for host, target in ((TEMPORAL, "/namespaces/default?tab=wf"), (MINIO, "/browser/bucket-1")):
        r = seen["%s:%d" % (host, env["port"]), target]
        assert r.header_all("X-Auth-User") == [USER], r.headers
        assert "portcullis" not in (r.header("Cookie") or ""), r.headers
    # Each hand-off: the auth host's login (signed in: 303), the hand-off on
    # the target host (303, its own cookie), the page.
    for host in (TEMPORAL, MINIO):
        docs = [d for d in run["documents"] if d["url"].startswith(origin(env, host) + "/saml/")
                or d["url"].startswith(origin(env, AUTH) + "/saml/login?return=" +
                                       urllib.parse.quote(origin(env, host), safe="/"))]
        # (then the browser's replay of the hand-off: 403)
        assert [d["status"] for d in docs] == [303, 303, 403], json.dumps(docs, indent=1)
        assert "/saml/handoff?token=" in docs[1]["url"], docs
        name, _, attrs = docs[1]["set_cookie"][0].partition("=")
        assert name == SESSION and "Domain" not in attrs and "SameSite=Lax" in attrs, docs
        c = jar(run, host, SESSION)
        assert c["secure"] and c["httpOnly"] and c["path"] == "/", c
    assert len({jar(run, h, SESSION)["value"] for h in (AUTH, TEMPORAL, MINIO)}) == 3
    # one IdP login per browser run (this one and the second)
    assert len(re.findall(r"saml: %s signed in \[ref" % USER, browser["stderr"])) == 2
    for host in (TEMPORAL, MINIO):
        assert re.search(r"saml: %s signed in on %s by hand-off \[ref [^\]]+\] from 127\.0\.0\.1 "
                         r"\(session [\w-]{16}\)" % (USER, re.escape(origin(env, host))),
                         browser["stderr"]), browser["stderr"]


def handoff_url_of(run, env, host):
    urls = [d["url"] for d in run["documents"]
            if d["url"].startswith(origin(env, host) + "/saml/handoff?token=")]
    assert len(urls) == 2 and urls[0] == urls[1], run["documents"]  # used, replayed
    return urls[0]


def test_replayed_and_misdirected_tokens_are_refused(env, browser, alive):
    run = browser["run"]
    # The browser opened both hand-off URLs again (within their 30 s): refused.
    again = run.get("again") or []
    assert [s["url"] for s in again] == [handoff_url_of(run, env, TEMPORAL),
                                         handoff_url_of(run, env, MINIO)], json.dumps(run)[:4000]
    for s in again:
        assert s["status"] == 403 and s["title"] == "Sign-in failed", s
    assert len(re.findall(r"saml: hand-off refused \[ref [^\]]+\] from 127\.0\.0\.1: token \w{32}: "
                          r"used before", browser["stderr"])) == 2, browser["stderr"]
    url = handoff_url_of(run, env, TEMPORAL)
    nonce = jar(run, TEMPORAL, NONCE)["value"]
    at = len(env["a"].stderr())
    # temporal's token on minio (with minio's nonce): does not open there.
    token = url.split("token=", 1)[1]
    status, _, _ = https(env, MINIO, "GET", "/saml/handoff?token=" + token,
                         cookies={NONCE: jar(run, MINIO, NONCE)["value"]})
    assert status == 400
    env["a"].wait_stderr(r"token for %s: does not open" % re.escape(origin(env, MINIO)), start=at)
    # Changed by one character: does not open.
    bad = url[:-3] + ("A" if url[-3] != "A" else "B") + url[-2:]
    assert use_handoff(env, TEMPORAL, bad, nonce)[0] == 400
    # A fresh token without this browser's nonce cookie (login CSRF): refused.
    session = jar(run, AUTH, SESSION)["value"]
    fresh, fresh_nonce = handoff_by_hand(env, session, TEMPORAL)
    status, _, _ = https(env, TEMPORAL, "GET", fresh[len(origin(env, TEMPORAL)):])
    assert status == 403
    env["a"].wait_stderr(r"no nonce cookie", start=at)
    status, _, _ = use_handoff(env, TEMPORAL, fresh, "0" * 32)
    assert status == 403
    # The hand-off of a host outside saml.hosts (another site of this proxy).
    status, _, _ = https(env, OTHER, "GET", "/saml/handoff?token=" + token)
    assert status == 400
    env["a"].wait_stderr(r"this host is not one of saml\.hosts", start=at)


@pytest.mark.parametrize("target", [
    "https://other.test:{port}/",          # a site of this proxy, not in saml.hosts
    "https://evil.test/",
    "https://temporal.test:{port}@evil.test/",
    "https://temporal.test:{port}.evil.test/",
    "https://temporal.test:{port}//evil.test/",
    "https://temporal.test:{port}/\\evil.test/",
    "https://temporal.test:{port}/%5Cevil.test/",
    "http://temporal.test:{port}/",
    "//temporal.test:{port}/",
])
def test_no_hand_off_to_unconfigured_targets(env, browser, target, alive):
    session = jar(browser["run"], AUTH, SESSION)["value"]
    t = target.format(port=env["port"])
    q = urllib.parse.urlencode({"return": t, "state": "0" * 32})
    status, hs, _ = https(env, AUTH, "GET", "/saml/login?" + q, cookies={SESSION: session})
    assert status == 400 and header(hs, "location") is None, (t, status, hs)


def test_hand_off_needs_the_state(env, browser, alive):
    session = jar(browser["run"], AUTH, SESSION)["value"]
    q = urllib.parse.urlencode({"return": origin(env, MINIO) + "/x"})
    status, hs, _ = https(env, AUTH, "GET", "/saml/login?" + q, cookies={SESSION: session})
    assert status == 400 and header(hs, "location") is None


def test_api_client_on_a_hand_off_host_gets_401(env, alive):
    status, _, body = https(env, MINIO, "GET", "/api/x", headers=[("Accept", "application/json")])
    assert status == 401
    doc = json.loads(body)
    assert doc["login_url"] == origin(env, MINIO) + "/saml/login?return=/api/x", doc


def test_sign_in_as_someone_else_on_a_hand_off_host(env, alive):
    """The refusal page of a hand-off host links to its own login with
    force=1, which goes on to the auth host's, which asks the IdP for fresh
    credentials (ForceAuthn) although the browser is signed in there."""
    session = sign_in_by_hand(env)
    url, nonce = handoff_by_hand(env, session, TEMPORAL)
    status, hs, _ = use_handoff(env, TEMPORAL, url, nonce)
    assert status == 303
    here = set_cookies(hs)[SESSION][0]
    status, _, body = https(env, TEMPORAL, "GET", "/admin", cookies={SESSION: here},
                            headers=[("Accept", "text/html")])
    assert status == 403, status
    link = re.search(r'href="([^"]+)">Sign in as someone else', body.decode()).group(1)
    link = link.replace("&amp;", "&")
    assert link == origin(env, TEMPORAL) + "/saml/login?return=/admin&force=1", link
    status, hs, _ = https(env, TEMPORAL, "GET", link[len(origin(env, TEMPORAL)):],
                          cookies={SESSION: here, NONCE: nonce})
    assert status == 302
    login = header(hs, "location")
    assert login.startswith(origin(env, AUTH) + "/saml/login?") and login.endswith(
        "&state=%s&force=1" % nonce), login
    status, hs, _ = https(env, AUTH, "GET", login[len(origin(env, AUTH)):],
                          cookies={SESSION: session})
    assert status == 302 and header(hs, "location").startswith(env["idp"]["base"]), status
    xml, _, _ = samltools.decode_redirect(header(hs, "location"))
    assert 'ForceAuthn="true"' in xml, xml


def test_replicas_share_single_use(env, alive):
    """A token used at replica A is refused at replica B (the shared store),
    and the other way round; each replica accepts a fresh one."""
    session = sign_in_by_hand(env)
    url, nonce = handoff_by_hand(env, session, TEMPORAL)
    status, hs, _ = use_handoff(env, TEMPORAL, url, nonce)
    assert status == 303 and SESSION in set_cookies(hs), status
    at = len(env["b"].stderr())
    status, hs, _ = use_handoff(env, TEMPORAL, url, nonce, port=env["port_b"])
    assert status == 403 and SESSION not in set_cookies(hs), status
    env["b"].wait_stderr(r"token \w{32}: used before \(a replay; the shared replay store", start=at)
    url, nonce = handoff_by_hand(env, session, MINIO)
    status, hs, _ = use_handoff(env, MINIO, url, nonce, port=env["port_b"])
    assert status == 303 and SESSION in set_cookies(hs), status
    assert header(hs, "location") == "/wf/1"
    assert use_handoff(env, MINIO, url, nonce)[0] == 403
    keys = env["redis"].cli("KEYS", PREFIX + "handoff:*").split()
    assert len(keys) >= 2, keys


def test_in_process_store_single_use(env, module_lab, alive):
    """Without Redis (one replica): the token's id is kept in this process's
    replay cache; a second use is refused there."""
    port_c = closed_port()
    c = module_lab.proxy(make_config(env["up"], env["port"], port_c,
                                     os.path.join(env["work"], "certs"),
                                     env["idp"]["base"] + "/metadata"), name="memory")
    session = sign_in_by_hand(env, port=port_c)
    url, nonce = handoff_by_hand(env, session, MINIO, port=port_c)
    status, hs, _ = use_handoff(env, MINIO, url, nonce, port=port_c)
    assert status == 303 and SESSION in set_cookies(hs), status
    at = len(c.stderr())
    status, hs, _ = use_handoff(env, MINIO, url, nonce, port=port_c)
    assert status == 403 and SESSION not in set_cookies(hs), status
    c.wait_stderr(r"(?m)token \w{32}: used before \(a replay\)$", start=at)
    assert not module_lab.stop_proxy(c)


def test_logout_on_one_host_ends_the_session_on_all(env, browser, alive):
    """Last (it revokes the browser's session).  Sign out on minio: the
    cookies captured on all three hosts before are refused afterwards."""
    run = browser["run"]
    captured = {h: jar(run, h, SESSION)["value"] for h in (AUTH, TEMPORAL, MINIO)}
    for host, value in captured.items():
        status, _, _ = https(env, host, "GET", "/before", cookies={SESSION: value},
                             headers=[("Accept", "application/json")])
        assert status == 200, host
    status, hs, body = https(env, MINIO, "GET", "/saml/logout", cookies={SESSION: captured[MINIO]})
    assert status == 200 and b"signed out" in body, (status, body[:300])
    cleared = set_cookies(hs)[SESSION][1]
    assert "Max-Age=0" in cleared, cleared

    def refused_everywhere():
        """On every host, at both replicas (each polls the list)."""
        return all(https(env, h, "GET", "/after", cookies={SESSION: v}, port=port,
                         headers=[("Accept", "application/json")])[0] == 401
                   for h, v in captured.items() for port in (env["port"], env["port_b"]))
    wait_until(refused_everywhere, 3, what="the captured cookies refused on every host")
    # The auth host does not hand the revoked session out again: a new login.
    q = urllib.parse.urlencode({"return": origin(env, TEMPORAL) + "/", "state": "0" * 32})
    status, hs, _ = https(env, AUTH, "GET", "/saml/login?" + q, cookies={SESSION: captured[AUTH]})
    assert status == 302 and header(hs, "location").startswith(env["idp"]["base"]), status


def test_browser_starting_on_a_hand_off_host_and_signing_out_on_another(env, browser, alive):
    """Signed in from minio.test (the login runs at the auth host, the
    browser ends on the minio page), then temporal and the auth host without
    the IdP; a sign-out on temporal in the browser clears its cookie there,
    and the cookies captured on all three hosts before are refused after."""
    run = browser["second"]
    dump = json.dumps(run, indent=1)[:8000]
    assert run["ok"] and run["outcome"] == "signed-in", dump
    assert step(run, "signed-in")["url"] == origin(env, MINIO) + "/first?from=minio", dump
    acs = [d for d in run["documents"] if d["url"] == origin(env, AUTH) + ACS_PATH]
    assert len(acs) == 1 and acs[0]["status"] == 303, dump
    until_logout = [d["url"] for d in run["documents"]]
    until_logout = run["documents"][:until_logout.index(origin(env, TEMPORAL) + "/saml/logout")]
    idp_docs = [d for d in until_logout if d["url"].startswith(env["idp"]["base"])]
    assert [d["method"] for d in idp_docs] == ["GET", "POST"], dump
    assert [s["status"] for s in run["then"]] == [200, 200], dump
    captured = {h: jar(run, h, SESSION)["value"] for h in (AUTH, TEMPORAL, MINIO)}
    logout = step(run, "logout")
    assert logout["status"] == 200 and "signed out" in logout["text"], dump
    after = {(c["domain"], c["name"]) for c in run["cookies_after_logout"]}
    assert (TEMPORAL, SESSION) not in after and (MINIO, SESSION) in after, dump

    def refused_everywhere():
        return all(https(env, h, "GET", "/after", cookies={SESSION: v}, port=port,
                         headers=[("Accept", "application/json")])[0] == 401
                   for h, v in captured.items() for port in (env["port"], env["port_b"]))
    wait_until(refused_everywhere, 3, what="the captured cookies refused on every host")


# ---- the config check ---------------------------------------------------------------------

@pytest.mark.parametrize("hosts, path, words", [
    (["https://temporal.test/x"], "saml.hosts[0]", "is not an origin"),
    (["https://user@temporal.test"], "saml.hosts[0]", "is not an origin"),
    (["ftp://temporal.test"], "saml.hosts[0]", "is not an origin"),
    (["https://temporal.test", "https://TEMPORAL.test/"], "saml.hosts[1]", "listed twice"),
    (["https://auth.test"], "saml.hosts[0]", "is saml.base_url"),
    (["https://nowhere.test"], "saml.hosts[0]", "no site serves the host \"nowhere.test\""),
    (["https://open.test"], "saml.hosts[0]", "has no route with \"auth\": \"saml\""),
    ("https://temporal.test", "saml.hosts", "list"),
])
def test_config_check(tmp_path, hosts, path, words):
    cfg = configs.config(
        {"web": "127.0.0.1:9"},
        [{"name": "auth", "hosts": ["auth.test"], "routes": [
            {"name": "a", "upstream": "web", "auth": "saml"}]},
         {"name": "temporal", "hosts": ["temporal.test"], "routes": [
             {"name": "t", "upstream": "web", "auth": "saml"}]},
         {"name": "open", "hosts": ["open.test"], "routes": [{"name": "o", "upstream": "web"}]}],
        saml={"idp_metadata": configs.throwaway_idp_metadata(), "base_url": "https://auth.test",
              "certs_dir": str(tmp_path), "hosts": hosts})
    f = tmp_path / "c.json"
    f.write_text(json.dumps(cfg))
    res = subprocess.run([BINARY, "-t", "-c", str(f)], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0, res.stdout + res.stderr
    line = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip().startswith(path + ":")
            or (": " + path + ":") in ln]
    assert line and words in line[0], res.stdout + res.stderr


def test_config_check_accepts(tmp_path):
    cfg = configs.config(
        {"web": "127.0.0.1:9"},
        [{"name": "auth", "hosts": ["auth.test"], "routes": [
            {"name": "a", "upstream": "web", "auth": "saml"}]},
         {"name": "temporal", "hosts": ["temporal.test"], "routes": [
             {"name": "t", "upstream": "web", "auth": "saml"}]}],
        saml={"idp_metadata": configs.throwaway_idp_metadata(), "base_url": "https://auth.test",
              "certs_dir": str(tmp_path), "hosts": ["https://temporal.test:443"]})
    f = tmp_path / "c.json"
    f.write_text(json.dumps(cfg))
    res = subprocess.run([BINARY, "-t", "-c", str(f)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr

"""Several replicas: the SAML replay cache and login-request tracking shared
through a real redis-server (saml.replay_store "redis"), with two Portcullis
instances that share the session key, the SP key and the Redis server.

  - an assertion accepted at instance A is refused at instance B (and at A),
    and the refusal is logged with the failed check;
  - a login started at A can finish at B, and its request ID is single-use
    across replicas (a second response to the same request is refused);
  - Redis stopped: logins fail closed (503, "replay store unavailable"),
    sessions that already exist keep working at both instances; Redis back:
    logins work again without restarting anything (reconnect);
  - Redis hung (SIGSTOP): the command timeout answers 503, and a client that
    hangs up while its login waits leaves nothing behind;
  - IdP-initiated logout: a signed LogoutRequest (HTTP-Redirect) ends the
    session and is answered with a signed LogoutResponse at the IdP's
    SingleLogoutService; unsigned, foreign-signed or stale requests are
    refused and logged.

The Redis server runs with a password and on database 3, so AUTH and SELECT
are exercised; keys are read back with redis-cli.
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid
import zlib

import pytest

from harness import closed_port, need, request, wait_until
from saml_common import ACS_PATH, Browser, saml_config, samltools

IDP = "https://idp.test"
SSO = "https://idp.test/sso"
SLO = "https://idp.test/slo"
PASSWORD = "s3cret-redis-password"
DB = 3
PREFIX = "pc-test:"

need("redis-server")


class RedisServer:
    """A redis-server on 127.0.0.1 and ::1, <port>, no persistence, stopped by PID."""

    def __init__(self, workdir, port):
        self.workdir = workdir
        self.port = port
        self.proc = None
        self.log = os.path.join(workdir, "redis.log")

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "::1",
             "--save", "", "--appendonly", "no", "--requirepass", PASSWORD,
             "--dir", self.workdir, "--logfile", self.log, "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG", what="redis-server answering PING")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "-a", PASSWORD,
                            "--no-auth-warning", "-n", str(DB)] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def env(module_lab):
    work = module_lab.workdir
    redis = RedisServer(work, closed_port())
    redis.start()
    try:
        key, cert = samltools.make_key(work, "idp")
        okey, ocert = samltools.make_key(work, "attacker")
        md = os.path.join(work, "idp-metadata.xml")
        with open(md, "w") as f:
            f.write(samltools.idp_metadata(IDP, SSO, cert, slo_url=SLO))
        pwfile = os.path.join(work, "redis.password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pwfile, 0o600)
        up = module_lab.upstream("web")
        port_a, port_b = closed_port(), closed_port()
        base = "http://localhost:%d" % port_a   # the one public origin of both replicas
        shared = dict(base_url=base, certs_dir=os.path.join(work, "certs"),
                      session_key_file=os.path.join(work, "certs", "session.key"),
                      replay_store="redis")
        proxies = {}
        # A by address, B by name (resolved with the worker's evdns).
        for name, port, host in (("a", port_a, "127.0.0.1"), ("b", port_b, "localhost")):
            cfg = saml_config(up, port, md, **shared)
            cfg["redis"] = {"address": "%s:%d" % (host, redis.port), "password_file": pwfile,
                            "db": DB, "key_prefix": PREFIX, "command_timeout": "500ms",
                            "connect_timeout": 2}
            proxies[name] = module_lab.proxy(cfg, name="replica-" + name)
        yield {"work": work, "key": key, "cert": cert, "okey": okey, "ocert": ocert, "up": up,
               "a": proxies["a"], "b": proxies["b"], "port_a": port_a, "port_b": port_b,
               "base": base, "redis": redis}
    finally:
        redis.stop()


def response_for(env, request_id, **kw):
    base = env["base"]
    params = {"destination": base + ACS_PATH, "recipient": base + ACS_PATH,
              "audiences": [base + "/saml/metadata"], "in_response_to": request_id,
              "sigalg": samltools.RSA_SHA256, "digest": samltools.SHA256, "issuer": IDP}
    params.update(kw)
    xml, a = samltools.signed_response(env["key"], env["cert"], env["work"], **params)
    return xml, a


def at(browser, port):
    """The same browser (cookies) talking to another replica."""
    other = Browser(port, host=browser.host)
    other.cookies = browser.cookies
    return other


def assert_refused(proxy, resp, text, status=403):
    assert resp.status == status, resp
    ref = resp.header("X-Request-ID")
    assert ref and ref in resp.text(), resp
    proxy.wait_stderr(r"saml: login failed \[ref %s\].*%s" % (re.escape(ref), text))
    assert not [c for c in resp.header_all("Set-Cookie")
                if c.startswith("__Host-portcullis-session=") and "Max-Age=0" not in c]


def tracking(lg):
    """(name, value) of the request-tracking cookie a login started with."""
    track = [c for c in lg["response"].header_all("Set-Cookie")
             if c.startswith("__Host-portcullis-saml-")]
    assert len(track) == 1
    name, value = track[0].split(";")[0].split("=", 1)
    return name, value


def login(env, port_start, port_finish=None):
    """A full login: started at one replica, finished at another (or the same)."""
    b = Browser(port_start, host="localhost:%d" % env["port_a"])
    lg = b.start_login("/insights")
    xml, a = response_for(env, lg["request_id"])
    r = at(b, port_finish or port_start).post_acs(xml, lg["relay"])
    return b, lg, xml, a, r


def test_assertion_used_at_a_is_refused_at_b(env, alive):
    b, lg, xml, a, r = login(env, env["port_a"])
    assert r.status == 303, r
    assert r.header("Location") == "/insights"
    ref_a = r.header("X-Request-ID")
    env["a"].wait_stderr(r"saml: alice signed in \[ref %s\]" % re.escape(ref_a))
    # The assertion ID is in Redis (database 3, our prefix), with a TTL, and
    # names the request that used it.
    key = PREFIX + "replay:" + a["assertion_id"]
    assert env["redis"].cli("GET", key) == ref_a
    ttl = int(env["redis"].cli("PTTL", key))
    assert 0 < ttl <= (300 + 2 * 60 + 1) * 1000
    assert env["redis"].cli("EXISTS", PREFIX + "request:" + lg["request_id"]) == "1"
    # The very same POST (same tracking cookie, same response) at replica B.
    name, value = tracking(lg)
    b.cookies[name] = value
    r2 = at(b, env["port_b"]).post_acs(xml, lg["relay"])
    assert_refused(env["b"], r2, r"Assertion ID: \"%s\" was used before \(a replay; the shared "
                   r"replay store" % re.escape(a["assertion_id"]))
    # ... and at A itself.
    b.cookies[name] = value
    r3 = at(b, env["port_a"]).post_acs(xml, lg["relay"])
    assert_refused(env["a"], r3, r"Assertion ID: .* was used before")


def test_login_started_at_a_finishes_at_b_and_request_id_is_single_use(env, alive):
    b, lg, xml, a, r = login(env, env["port_a"], env["port_b"])
    assert r.status == 303, r
    session = b.cookies.get("__Host-portcullis-session")
    assert session
    # The session works at both replicas (shared key, no server state).
    for port in (env["port_a"], env["port_b"]):
        env["up"].reset()
        got = at(b, port).get("/insights")
        assert got.status == 200, got
        assert env["up"].snapshot()[-1].header("X-Auth-User") == "alice"
    # A second, different assertion answering the same AuthnRequest.
    name, value = tracking(lg)
    b2 = Browser(env["port_a"], host="localhost:%d" % env["port_a"])
    b2.cookies[name] = value
    xml2, a2 = response_for(env, lg["request_id"], name_id="mallory")
    assert a2["assertion_id"] != a["assertion_id"]
    r2 = b2.post_acs(xml2, lg["relay"])
    assert_refused(env["a"], r2, r"InResponseTo: the login request \"%s\" was answered before "
                   r"\(request IDs are single-use across replicas\)" % re.escape(lg["request_id"]))


def test_redis_down_fails_closed_sessions_keep_working_then_reconnect(env, alive):
    b, _, _, _, r = login(env, env["port_a"])
    assert r.status == 303, r
    env["redis"].stop()
    try:
        # Both replicas notice the lost connection (and say so once).
        for name in ("a", "b"):
            env[name].wait_stderr(r"redis: worker \d+: (?:127\.0\.0\.1|localhost):%d: connection lost" %
                                  env["redis"].port)
        for port, proxy in ((env["port_a"], env["a"]), (env["port_b"], env["b"])):
            b2, lg, xml, a, r = login(env, port)
            assert r.status == 503, r
            assert r.header("Retry-After") == "5"
            assert "Sign-in temporarily unavailable" in r.text()
            ref = r.header("X-Request-ID")
            assert ref in r.text()
            # "not connected (...)" while the worker waits to reconnect, or the
            # refusal itself when the claim rides on a reconnect attempt
            proxy.wait_stderr(r"saml: replay store unavailable: (?:127\.0\.0\.1|localhost):%d: "
                              r"(?:not connected |Connection refused).*\(login refused \[ref %s\]"
                              % (env["redis"].port, re.escape(ref)))
            assert "__Host-portcullis-session" not in b2.cookies
            # The existing session still passes, without Redis.
            env["up"].reset()
            got = at(b, port).get("/insights")
            assert got.status == 200, got
            assert env["up"].snapshot()[-1].header("X-Auth-User") == "alice"
    finally:
        env["redis"].start()
    # Back: logins work again at both replicas, nothing restarted.
    for port, proxy in ((env["port_a"], env["a"]), (env["port_b"], env["b"])):
        def works():
            return login(env, port)[4].status == 303
        wait_until(works, timeout=20, interval=0.3, what="a login after Redis came back")
        proxy.wait_stderr(r"redis: worker \d+: connected to (?:127\.0\.0\.1|localhost):%d again" %
                          env["redis"].port)


def test_redis_hung_times_out_and_hangup_while_waiting(env, alive):
    # Warm up: connected.
    wait_until(lambda: login(env, env["port_a"])[4].status == 303, timeout=20, interval=0.3,
               what="a login")
    env["redis"].pause()
    try:
        start = env["a"].stderr().__len__()
        b, lg, xml, a, r = login(env, env["port_a"])
        assert r.status == 503, r
        ref = r.header("X-Request-ID")
        env["a"].wait_stderr(r"saml: replay store unavailable: 127\.0\.0\.1:%d: no answer within "
                             r"0\.5 s \(redis\.command_timeout\) \(login refused \[ref %s\]"
                             % (env["redis"].port, re.escape(ref)), start=start)
        # A client that hangs up while its login waits for the store.
        b2 = Browser(env["port_b"], host="localhost:%d" % env["port_a"])
        lg2 = b2.start_login("/")
        xml2, _ = response_for(env, lg2["request_id"])
        body = urllib.parse.urlencode({"SAMLResponse": samltools.b64(xml2),
                                       "RelayState": lg2["relay"]}).encode()
        cookie = "; ".join("%s=%s" % kv for kv in b2.cookies.items())
        head = ("POST %s HTTP/1.1\r\nHost: localhost:%d\r\nCookie: %s\r\nContent-Type: "
                "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
                % (ACS_PATH, env["port_a"], cookie, len(body))).encode()
        s = socket.create_connection(("127.0.0.1", env["port_b"]))
        s.sendall(head + body)
        time.sleep(0.1)
        s.close()
        env["b"].wait_stderr(r"saml: login abandoned by the client while waiting for the replay "
                             r"store")
    finally:
        env["redis"].resume()
    # The timed-out connection was dropped and is made again.
    for port in (env["port_a"], env["port_b"]):
        wait_until(lambda: login(env, port)[4].status == 303, timeout=20, interval=0.3,
                   what="a login after Redis answered again")


def _reload(proxy, change=None):
    mark = len(proxy.stderr())
    if change is not None:
        with open(proxy.config_path) as f:
            cfg = json.load(f)
        change(cfg)
        proxy.write_config(cfg)
    proxy.signal(signal.SIGHUP)
    proxy.wait_stderr(r"configuration reloaded from", start=mark)


def test_reload_while_a_login_waits(env, alive):
    """SIGHUP while a login waits for a paused Redis: the login is answered
    through the configuration it started with once Redis answers; that
    retired configuration (and its Redis connection) goes away after it, and
    the new one logs in too."""
    def long_timeout(cfg):
        cfg["redis"]["command_timeout"] = 20
    _reload(env["b"], long_timeout)
    try:
        wait_until(lambda: login(env, env["port_b"])[4].status == 303, timeout=20, interval=0.3,
                   what="a login")
        b = Browser(env["port_b"], host="localhost:%d" % env["port_a"])
        lg = b.start_login("/")
        xml, _ = response_for(env, lg["request_id"])
        body = urllib.parse.urlencode({"SAMLResponse": samltools.b64(xml),
                                       "RelayState": lg["relay"]}).encode()
        cookie = "; ".join("%s=%s" % kv for kv in b.cookies.items())
        head = ("POST %s HTTP/1.1\r\nHost: localhost:%d\r\nCookie: %s\r\nContent-Type: "
                "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
                % (ACS_PATH, env["port_a"], cookie, len(body))).encode()
        env["redis"].pause()
        try:
            s = socket.create_connection(("127.0.0.1", env["port_b"]), timeout=30)
            s.sendall(head + body)
            _reload(env["b"])
        finally:
            env["redis"].resume()
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            assert chunk, "connection closed without an answer"
            answer += chunk
        s.close()
        assert answer.startswith(b"HTTP/1.1 303 "), answer[:300]
        wait_until(lambda: login(env, env["port_b"])[4].status == 303, timeout=20, interval=0.3,
                   what="a login after the reload")
    finally:
        def short_timeout(cfg):
            cfg["redis"]["command_timeout"] = "500ms"
        _reload(env["b"], short_timeout)


# ---- IdP-initiated logout ------------------------------------------------------

def _sign(key, data, work):
    path = os.path.join(work, "lr-%s" % uuid.uuid4().hex)
    with open(path, "wb") as f:
        f.write(data)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, path], check=True,
                         capture_output=True).stdout
    return base64.b64encode(sig).decode()


def logout_request(env, name_id="alice", key=None, issue_delta=0, sign=True, issuer=IDP,
                   destination=None, relay="idp-relay-1"):
    """The query of an HTTP-Redirect LogoutRequest from the IdP, signed RSA-SHA256."""
    rid = "_" + uuid.uuid4().hex
    xml = ('<samlp:LogoutRequest xmlns:samlp="%s" xmlns:saml="%s" ID="%s" Version="2.0" '
           'IssueInstant="%s" Destination="%s"><saml:Issuer>%s</saml:Issuer>'
           '<saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">%s'
           '</saml:NameID><samlp:SessionIndex>idx-1</samlp:SessionIndex></samlp:LogoutRequest>'
           % (samltools.NS["samlp"], samltools.NS["saml"], rid, samltools.instant(issue_delta),
              destination or env["base"] + "/saml/logout", issuer, name_id))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = c.compress(xml.encode()) + c.flush()
    q = "SAMLRequest=%s&RelayState=%s&SigAlg=%s" % (
        urllib.parse.quote(base64.b64encode(raw).decode(), safe=""),
        urllib.parse.quote(relay, safe=""), urllib.parse.quote(samltools.RSA_SHA256, safe=""))
    if sign:
        q += "&Signature=" + urllib.parse.quote(_sign(key or env["key"], q.encode(), env["work"]),
                                                safe="")
    return q, rid


def sp_cert_pem(env):
    md = request(env["port_a"], "GET", "/saml/metadata", host="localhost:%d" % env["port_a"])
    cert = re.search(rb"<ds:X509Certificate>([^<]+)<", md.body).group(1).decode()
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(
        cert[i:i + 64] for i in range(0, len(cert), 64))


def verify_response_signature(query, pem, work):
    parts = dict(item.partition("=")[::2] for item in query.split("&"))
    signed = "&".join("%s=%s" % (k, parts[k]) for k in ("SAMLResponse", "RelayState", "SigAlg")
                      if k in parts)
    base = os.path.join(work, "sp-%s" % uuid.uuid4().hex)
    with open(base + ".crt", "w") as f:
        f.write(pem)
    subprocess.run(["openssl", "x509", "-in", base + ".crt", "-pubkey", "-noout", "-out",
                    base + ".pub"], check=True, capture_output=True)
    with open(base + ".sig", "wb") as f:
        f.write(base64.b64decode(urllib.parse.unquote(parts["Signature"])))
    with open(base + ".data", "wb") as f:
        f.write(signed.encode())
    return subprocess.run(["openssl", "dgst", "-sha256", "-verify", base + ".pub", "-signature",
                           base + ".sig", base + ".data"], capture_output=True).returncode == 0


def signed_in(env, port):
    b, _, _, _, r = login(env, port)
    assert r.status == 303, r
    assert "__Host-portcullis-session" in b.cookies
    return b


def test_idp_logout_answers_with_signed_logout_response(env, alive):
    b = signed_in(env, env["port_a"])
    q, rid = logout_request(env)
    r = at(b, env["port_b"]).get("/saml/logout?" + q)
    assert r.status == 302, r
    loc = r.header("Location")
    assert loc.startswith(SLO + "?"), loc
    query = urllib.parse.urlparse(loc).query
    params = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
    assert params["RelayState"] == "idp-relay-1"
    assert params["SigAlg"] == samltools.RSA_SHA256
    assert verify_response_signature(query, sp_cert_pem(env), env["work"])
    xml = zlib.decompress(base64.b64decode(params["SAMLResponse"]), -15).decode()
    assert "LogoutResponse" in xml
    assert 'InResponseTo="%s"' % rid in xml
    assert 'Destination="%s"' % SLO in xml
    assert "urn:oasis:names:tc:SAML:2.0:status:Success" in xml
    assert "%s/saml/metadata</saml:Issuer>" % env["base"] in xml
    # The session cookie is cleared ...
    cleared = [c for c in r.header_all("Set-Cookie") if c.startswith("__Host-portcullis-session=")]
    assert cleared and "Max-Age=0" in cleared[0]
    assert "__Host-portcullis-session" not in b.cookies
    env["b"].wait_stderr(r"saml: alice signed out by the IdP \[ref %s\].*LogoutResponse sent"
                         % re.escape(r.header("X-Request-ID")))
    # ... so the next visit starts a login.
    assert at(b, env["port_a"]).get("/insights", headers=[("Accept", "text/html")]).status == 302


@pytest.mark.parametrize("case,why", [
    ("unsigned", r"the LogoutRequest is not signed"),
    ("foreign-key", r"Signature: does not verify with the key from the IdP metadata"),
    ("tampered", r"Signature: does not verify with the key from the IdP metadata"),
    ("stale", r"IssueInstant: .* is outside"),
    ("wrong-destination", r"Destination: expected"),
])
def test_idp_logout_refusals(env, alive, case, why):
    b = signed_in(env, env["port_a"])
    if case == "unsigned":
        q, _ = logout_request(env, sign=False)
    elif case == "foreign-key":
        q, _ = logout_request(env, key=env["okey"])
    elif case == "tampered":
        q, _ = logout_request(env)
        other, _ = logout_request(env, name_id="bob", sign=False)
        # bob's request with alice's signature
        q = other + "&Signature=" + dict(i.partition("=")[::2] for i in q.split("&"))["Signature"]
    elif case == "stale":
        q, _ = logout_request(env, issue_delta=-3600)
    else:
        q, _ = logout_request(env, destination="https://elsewhere.test/saml/logout")
    r = at(b, env["port_a"]).get("/saml/logout?" + q)
    assert r.status == 400, r
    assert "Sign-out failed" in r.text()
    ref = r.header("X-Request-ID")
    env["a"].wait_stderr(r"saml: logout request from the IdP refused \[ref %s\].*%s"
                         % (re.escape(ref), why))
    assert not [c for c in r.header_all("Set-Cookie") if c.startswith("__Host-portcullis-session=")]
    # Still signed in.
    env["up"].reset()
    assert at(b, env["port_a"]).get("/insights").status == 200


# ---- Redis back after a long outage -------------------------------------------

def test_redis_back_is_used_by_the_next_login_at_once(env, alive):
    """Redis down long enough for the reconnection back-off to reach its
    longest delay (5 s), then back: the next login succeeds at once, without
    waiting for the next scheduled attempt (it reconnects on demand)."""
    proxy, port = env["a"], env["port_a"]
    b = Browser(port, host="localhost:%d" % env["port_a"])
    lg = b.start_login("/insights")
    xml, _ = response_for(env, lg["request_id"])
    mark = len(proxy.stderr())
    env["redis"].stop()
    try:
        proxy.wait_stderr(r"redis: worker \d+: 127\.0\.0\.1:%d: connection lost" %
                          env["redis"].port, start=mark)
        # Attempts at 0.1, 0.3, 0.7, 1.5, 3.1 and 6.3 s after the loss, then 11.3 s.
        time.sleep(7.0)
    finally:
        env["redis"].start()
    r = b.post_acs(xml, lg["relay"])
    assert r.status == 303, (r, r.text()[:300])

"""ACME through the real portcullis binary, against Debian's pebble with real
validation (pebble-challtestsrv maps every name to 127.0.0.1; never
PEBBLE_VA_ALWAYS_VALID).  The binary's own listeners answer the challenges:
its plain listener sits on pebble's httpPort (HTTP-01, next to
"redirect_https") and its TLS listener on pebble's tlsPort (TLS-ALPN-01).

Pebble and its helpers come from test_acme_pebble.py (the ACME module's own
tests); every process is stopped by PID, also on failure.
"""

import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_acme_pebble as tap  # noqa: E402
from configs import config, route  # noqa: E402
from harness import RawClient, wait_until  # noqa: E402

SHORT_VALIDITY = 60  # seconds: renewal at about half of it


def make_pebble(tmp, validity):
    """A pebble whose certificates live <validity> seconds."""
    old = tap.VALIDITY
    tap.VALIDITY = validity
    try:
        return tap.Pebble(tmp)
    finally:
        tap.VALIDITY = old


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    p = make_pebble(tmp_path_factory.mktemp("pebble"), 3600)
    try:
        yield p
    finally:
        p.close()


def acme_config(pebble, tmp, sites, http_port=0, https_port=0, challenges=None, **acme):
    block = {"directory": pebble.directory, "ca_bundle": pebble.ca, "email": "ops@example.test"}
    if challenges:
        block["challenges"] = challenges
    block.update(acme)
    return config({"web": "127.0.0.1:1"}, sites,
                  listeners=[{"name": "http", "address": "127.0.0.1:%d" % http_port,
                              "redirect_https": True},
                             {"name": "https", "address": "127.0.0.1:%d" % https_port,
                              "tls": True}],
                  tls={"certs_dir": os.path.join(str(tmp), "certs"), "acme": block})


def site(name, hosts):
    return {"name": name, "hosts": hosts,
            "routes": [{"name": name + "-ok", "respond": {"status": 200, "body": name + "\n"}}]}


def served_der(port, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            return s.getpeercert(binary_form=True)


def curl_verified(pebble, empty, name, port, path="/"):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", pebble.root, "--capath",
                        empty, "--resolve", "%s:%d:127.0.0.1" % (name, port),
                        "https://%s:%d%s" % (name, port, path)],
                       capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout, p.stderr


def s_client_verify(pebble, port, name):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername",
                        name, "-CAfile", pebble.root, "-verify_return_error", "-verify_hostname",
                        name], input=b"", capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0 and "Verify return code: 0 (ok)" in out, out
    return out


def metric(proxy, name, labels=""):
    with RawClient(proxy.admin_port) as c:
        text = c.request("GET", "/metrics").text()
    for line in text.splitlines():
        if line.startswith(name + labels + " "):
            return float(line.split()[-1])
    raise AssertionError("metric %s%s missing:\n%s" % (name, labels, text))


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_http01_several_names_then_restart(pebble, lab, tmp_path):
    empty = str(tmp_path / "empty")
    os.mkdir(empty)
    cfg = acme_config(pebble, tmp_path,
                      [site("one", ["a.test", "b.test", "*.wild.test"]), site("two", ["c.test"])],
                      http_port=pebble.http_port, challenges=["http-01"])
    p = lab.proxy(cfg, name="acme-http01")
    https = p.ports["https"]
    p.wait_stderr(r"acme: certificate for a\.test,b\.test obtained", timeout=60)
    p.wait_stderr(r"acme: certificate for c\.test obtained", timeout=60)
    for name in ("a.test", "b.test", "c.test"):
        s_client_verify(pebble, https, name)
        rc, out, err = curl_verified(pebble, empty, name, https)
        assert rc == 0, err
    # The CA validated through the plain listener (redirect_https spares the
    # ACME path): 200 answers in the access log, counted in the metrics.
    answers = [e for e in p.access_log()
               if (e.get("path") or "").startswith("/.well-known/acme-challenge/")]
    assert len(answers) >= 3 and all(e["status"] == 200 for e in answers), answers
    assert metric(p, "portcullis_acme_challenges_served_total", '{type="http-01"}') >= 3
    assert metric(p, "portcullis_acme_renewals_succeeded_total") == 2
    assert metric(p, "portcullis_acme_certificate_expiry_seconds", '{name="a.test"}') > time.time()
    # A token nobody asked for: 404 (never redirected).
    with RawClient(p.ports["http"]) as c:
        resp = c.request("GET", "/.well-known/acme-challenge/nope", host="a.test")
        assert resp.status == 404
        resp = c.request("GET", "/x", host="a.test")
        assert resp.status == 308
    # Storage: chains verify against pebble's root, folders 0700, keys 0600.
    storage = os.path.join(str(tmp_path), "certs")
    cd = tap.cert_dir(storage, pebble, "a.test")
    tap.verify_chain(pebble, os.path.join(cd, "cert.pem"), ["a.test", "b.test"], tmp_path)
    assert mode(cd) == 0o700 and mode(os.path.join(cd, "key.pem")) == 0o600
    assert mode(os.path.dirname(cd)) == 0o700
    assert mode(os.path.join(os.path.dirname(cd), "account.key")) == 0o600
    before = served_der(https, "a.test")

    # A restart reuses storage: pebble sees no new order.
    assert not lab.stop_proxy(p)
    orders = pebble.orders()
    p2 = lab.proxy(cfg, name="acme-http01-again")
    p2.wait_stderr(r"acme: loaded certificate for a\.test,b\.test from storage")
    p2.wait_stderr(r"acme: loaded certificate for c\.test from storage")
    assert served_der(p2.ports["https"], "a.test") == before
    time.sleep(1)  # anything it would order would have started by now
    assert "ordering certificate" not in p2.stderr()
    assert pebble.orders() == orders


def test_tlsalpn01_on_tls_listener(pebble, lab, tmp_path):
    empty = str(tmp_path / "empty")
    os.mkdir(empty)
    cfg = acme_config(pebble, tmp_path, [site("alpn", ["t1.test", "t2.test"])],
                      https_port=pebble.tls_port, challenges=["tls-alpn-01"])
    p = lab.proxy(cfg, name="acme-alpn")
    p.wait_stderr(r"acme: certificate for t1\.test,t2\.test obtained", timeout=60)
    assert "answering tls-alpn-01 for t1.test" in p.stderr()
    assert "answering tls-alpn-01 for t2.test" in p.stderr()
    assert metric(p, "portcullis_acme_challenges_served_total", '{type="tls-alpn-01"}') >= 2
    for name in ("t1.test", "t2.test"):
        s_client_verify(pebble, pebble.tls_port, name)
        rc, out, err = curl_verified(pebble, empty, name, pebble.tls_port, "/hello")
        assert rc == 0 and out == "alpn\n", err
    # No HTTP-01 request reached the plain listener.
    assert not [e for e in p.access_log()
                if (e.get("path") or "").startswith("/.well-known/acme-challenge/")]


class Load:
    """HTTPS requests in a loop (a new verified connection each time, plus one
    keep-alive connection), recording failures and the certificates seen."""

    def __init__(self, port, name, cafile):
        self.port, self.name, self.cafile = port, name, cafile
        self.ok = 0
        self.failures = []
        self.seen = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _request(self, s):
        s.sendall(("GET /load HTTP/1.1\r\nHost: %s\r\n\r\n" % self.name).encode())
        data = b""
        while not data.endswith(b"renew\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise EOFError("closed after %r" % data)
            data += chunk
        if not data.startswith(b"HTTP/1.1 200 "):
            raise AssertionError(data[:200])

    def _run(self):
        ctx = ssl.create_default_context(cafile=self.cafile)
        keep = None
        while not self.stop_flag.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname=self.name) as s:
                        der = s.getpeercert(binary_form=True)
                        if not self.seen or self.seen[-1] != der:
                            self.seen.append(der)
                        self._request(s)
                if keep is None:
                    keep = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port),
                                                                    timeout=10),
                                           server_hostname=self.name)
                self._request(keep)
                self.ok += 1
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                self.failures.append(repr(exc))
            time.sleep(0.05)
        if keep is not None:
            keep.close()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30)


def test_renewal_swaps_certificate_then_ca_down(tmp_path_factory, lab, tmp_path):
    """Short certificates renew in the running process while requests keep
    succeeding; with pebble stopped the next renewal fails loudly, the
    current certificate stays and the back-off is recorded."""
    pb = make_pebble(tmp_path_factory.mktemp("pebble-short"), SHORT_VALIDITY)
    load = None
    try:
        cfg = acme_config(pb, tmp_path, [site("renew", ["renew.test"])],
                          http_port=pb.http_port, https_port=pb.tls_port)
        p = lab.proxy(cfg, name="acme-renew")
        p.wait_stderr(r"acme: certificate for renew\.test obtained", timeout=60)
        # the store installs it just after that line (slower under ASan)
        got = []

        def served():
            try:
                got.append(served_der(pb.tls_port, "renew.test"))
                return True
            except ssl.SSLError:
                return False
        wait_until(served, timeout=10, interval=0.1, what="the first certificate served")
        first = got[-1]
        load = Load(pb.tls_port, "renew.test", pb.root)
        wait_until(lambda: len(re.findall(r"certificate for renew\.test obtained",
                                          p.stderr())) >= 2,
                   timeout=SHORT_VALIDITY + 30, interval=0.5, what="the renewed certificate")
        wait_until(lambda: served_der(pb.tls_port, "renew.test") != first, timeout=10,
                   what="new handshakes to get the renewed certificate")
        second = served_der(pb.tls_port, "renew.test")
        time.sleep(1)
        load.stop()
        assert load.failures == [], load.failures[:5]
        assert load.ok > 20
        assert first in load.seen and second in load.seen, len(load.seen)
        assert p.alive() and p.runs == 1  # no restart

        # The CA goes away: the next renewal fails, the certificate stays.
        pb.stop()
        mark = len(p.stderr())
        p.wait_stderr(r"acme: certificate for renew\.test: attempt \d+ failed: .*keeping the "
                      r"current certificate", timeout=SHORT_VALIDITY, start=mark)
        assert served_der(pb.tls_port, "renew.test") == second
        assert metric(p, "portcullis_acme_consecutive_failures", '{name="renew.test"}') >= 1
        assert metric(p, "portcullis_acme_renewals_failed_total") >= 1
        nxt = metric(p, "portcullis_acme_next_attempt_seconds", '{name="renew.test"}')
        assert nxt > time.time() - 1
        cd = tap.cert_dir(os.path.join(str(tmp_path), "certs"), pb, "renew.test")
        with open(os.path.join(cd, "state.json")) as f:
            st = json.load(f)
        assert st["failures"] >= 1 and st["next_attempt"] >= int(time.time()) - 1, st
        assert "127.0.0.1" in st["last_error"], st
    finally:
        if load is not None:
            load.stop()
        pb.close()


def test_posthog_example_acme_mode(pebble, lab, tmp_path):
    """examples/posthog/portcullis.json with TLS_MODE=acme and the ACME_* variables."""
    from configs import (APP_DOMAIN, EXAMPLE_POSTHOG, POSTHOG_DOMAIN, POSTHOG_UPSTREAM_ENV,
                         posthog_env)

    empty = str(tmp_path / "empty")
    os.mkdir(empty)
    ups = {name: lab.upstream(name) for name in POSTHOG_UPSTREAM_ENV}
    env = posthog_env(ups)
    env.update({"TLS_MODE": "acme", "PORTCULLIS_HTTP": "127.0.0.1:%d" % pebble.http_port,
                "PORTCULLIS_HTTPS": "127.0.0.1:0", "ACME_DIRECTORY": pebble.directory,
                "ACME_EMAIL": "ops@example.test", "ACME_CA_BUNDLE": pebble.ca,
                "CERTS_DIR": str(tmp_path / "certs")})
    p = lab.proxy(EXAMPLE_POSTHOG, env=env, name="example-acme")
    https = p.ports["https"]
    for name in (APP_DOMAIN, POSTHOG_DOMAIN):
        p.wait_stderr(r"acme: certificate for %s obtained" % re.escape(name), timeout=60)
    rc, out, err = curl_verified(pebble, empty, POSTHOG_DOMAIN, https, "/decide/?v=3")
    assert rc == 0, err
    ups["web"].wait_for_count(1)
    assert ups["web"].snapshot()[-1].header("X-Forwarded-Proto") == "https"
    rc, out, err = curl_verified(pebble, empty, APP_DOMAIN, https, "/")
    assert rc == 0, err
    with RawClient(p.ports["http"]) as c:
        resp = c.request("GET", "/decide/", host=POSTHOG_DOMAIN)
        assert resp.status == 308
        assert resp.header("Location") == "https://%s:%d/decide/" % (POSTHOG_DOMAIN, https)

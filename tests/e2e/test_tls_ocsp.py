"""OCSP stapling (docs/tls.md#ocsp-stapling) against `openssl ocsp` as a real
responder for a throwaway CA (testca.py) whose leaves carry an OCSP URL.

One proxy serves four certificates from files:
  good.test     responder up, status good         → stapled
  revoked.test  the same responder, revoked       → not stapled
  forged.test   a responder signing with another CA's key → not stapled
  down.test     a responder that is not running   → no staple, handshakes work
Then: the saved response is stapled after a restart with every responder
down; "ocsp_stapling": false staples nothing; the metrics; the fetch goes
through http_proxy (a recording proxy sees it).
"""

import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from configs import config, route
from harness import need, wait_until
from ports import free_port
from testca import TestCA

need("openssl")

NAMES = ["good.test", "revoked.test", "forged.test", "down.test"]


class Responder:
    """`openssl ocsp` answering for <ca>'s index, signing with <signer>."""

    def __init__(self, workdir, ca, signer, port, name):
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["openssl", "ocsp", "-index", ca.index_path, "-CA", ca.cert_path,
             "-rsigner", signer.cert_path, "-rkey", signer.key_path, "-port", str(port),
             "-nmin", "10", "-ignore_err"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        # (not probed with a connection: the responder serves one at a time
        # and an empty one can hold it up)
        wait_until(lambda: b"waiting for OCSP client connections" in open(self.log_path, "rb").read()
                   or self.proc.poll() is not None, what="openssl ocsp on port %d" % port)
        assert self.proc.poll() is None, "openssl ocsp exited"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class RecordingProxy:
    """A tiny forward proxy for http:// URLs (what http_proxy sends it):
    records each request line, relays to the origin, one request a
    connection."""

    def __init__(self, port):
        self.lines = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data:
                    continue
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                self.lines.append(line)
                url = line.split(" ")[1]
                try:
                    with urllib.request.urlopen(urllib.request.Request(
                            url, headers={"Accept": "application/ocsp-response"}),
                            timeout=10) as r:
                        body = r.read()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response"
                                 b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                                 + body)
                except OSError:
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")

    def close(self):
        self.sock.close()


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.dir = module_lab.workdir
    e.web = module_lab.upstream("web")
    up_port, forged_port, down_port = free_port(), free_port(), free_port()
    e.ca = TestCA(e.dir, "ca", ocsp_url="http://127.0.0.1:%d" % up_port)
    e.other = TestCA(e.dir, "other")
    e.certs = {}
    for name in NAMES:
        url = {"forged.test": "http://127.0.0.1:%d" % forged_port,
               "down.test": "http://127.0.0.1:%d/" % down_port}.get(name)
        e.certs[name] = e.ca.issue(name, name, sans=[name], server=True, ocsp=url)
    e.ca.revoke(e.certs["revoked.test"][2])
    e.responders = [Responder(e.dir, e.ca, e.ca, up_port, "responder"),
                    Responder(e.dir, e.ca, e.other, forged_port, "forged-responder")]
    e.cfg = config(
        {"web": e.web},
        [{"name": "all", "hosts": NAMES, "default": True, "routes": [route("web", "web")]}],
        listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True}],
        tls={"certs_dir": os.path.join(e.dir, "certs"), "watch_interval": 0.2,
             "certificates": [{"cert": e.certs[n][0], "key": e.certs[n][1]} for n in NAMES]},
    )
    e.proxy = module_lab.proxy(e.cfg, name="ocsp")
    e.lab = module_lab
    e.down_port = down_port
    yield e
    for r in e.responders:
        r.stop()


def s_client(port, name):
    run = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-servername", name, "-status"],
                         input="", capture_output=True, text=True, timeout=20)
    assert "Verification" in run.stdout or "CONNECTED" in run.stdout, run.stdout + run.stderr
    assert re.search(r"subject=.*CN ?= ?%s" % re.escape(name), run.stdout), run.stdout
    return run.stdout


def stapled(out):
    return "OCSP Response Status: successful" in out and "Cert Status: good" in out


def test_good_response_is_stapled(env):
    env.proxy.wait_stderr(r"ocsp: stapling the response for good\.test from http://127")
    out = s_client(env.proxy.port, "good.test")
    assert stapled(out), out


def test_revoked_is_not_stapled(env):
    env.proxy.wait_stderr(r"the response for revoked\.test .* is not stapled: it says the "
                          r"certificate is revoked")
    out = s_client(env.proxy.port, "revoked.test")
    assert "OCSP response: no response sent" in out, out


def test_response_signed_by_someone_else_is_not_stapled(env):
    env.proxy.wait_stderr(r"the response for forged\.test .* is not stapled: its signature "
                          r"does not verify")
    out = s_client(env.proxy.port, "forged.test")
    assert "OCSP response: no response sent" in out, out


def test_responder_down_handshake_works_without_staple(env):
    env.proxy.wait_stderr(r"ocsp: no response for down\.test from http://127\.0\.0\.1:\d+/: "
                          r".*next try in 10 s")
    out = s_client(env.proxy.port, "down.test")
    assert "OCSP response: no response sent" in out, out


def test_metrics_count_the_outcomes(env):
    env.proxy.wait_stderr(r"no response for down\.test")
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % env.proxy.admin_port,
                                  timeout=10).read().decode()
    assert re.search(r'portcullis_ocsp_responses_total\{result="fetched"\} [1-9]', body), body
    assert re.search(r'portcullis_ocsp_responses_total\{result="rejected"\} [1-9]', body)
    assert re.search(r'portcullis_ocsp_responses_total\{result="failed"\} [1-9]', body)
    assert "portcullis_ocsp_staples_valid 1" in body
    assert re.search(r"portcullis_ocsp_stapled_total [1-9]", body)


def test_retried_with_backoff_until_the_responder_answers(env):
    env.proxy.wait_stderr(r"no response for down\.test .*next try in 10 s")
    env.responders.append(Responder(env.dir, env.ca, env.ca, env.down_port, "responder-late"))
    env.proxy.wait_stderr(r"ocsp: stapling the response for down\.test", timeout=25)
    assert stapled(s_client(env.proxy.port, "down.test"))


def test_saved_response_survives_a_restart_with_the_responder_down(env):
    env.proxy.wait_stderr(r"stapling the response for good\.test")
    saved = os.listdir(os.path.join(env.dir, "certs", "ocsp"))
    assert len([f for f in saved if f.endswith(".der")]) == 2, saved  # good, down
    for r in env.responders:
        r.stop()
    assert env.lab.stop_proxy(env.proxy) == []
    again = env.lab.proxy(env.cfg, name="ocsp-again")
    again.wait_stderr(r"ocsp: good\.test: the saved response is still good")
    assert stapled(s_client(again.port, "good.test"))


def test_off_staples_nothing(env, module_lab):
    cfg = dict(env.cfg)
    cfg["tls"] = dict(env.cfg["tls"], ocsp_stapling=False,
                      certs_dir=os.path.join(env.dir, "certs-off"))
    port = free_port()
    responder = Responder(env.dir, env.ca, env.ca, port, "responder-off")
    try:
        p = module_lab.proxy(cfg, name="ocsp-off")
        time.sleep(1.5)
        assert "ocsp:" not in p.stderr()
        assert "OCSP response: no response sent" in s_client(p.port, "good.test")
    finally:
        responder.stop()


def test_fetch_goes_through_http_proxy(env, module_lab, tmp_path):
    port, proxy_port = free_port(), free_port()
    ca = TestCA(str(tmp_path), "proxied-ca", ocsp_url="http://127.0.0.1:%d" % port)
    cert, key, _ = ca.issue("via-proxy", "via.test", sans=["via.test"], server=True)
    responder = Responder(str(tmp_path), ca, ca, port, "responder-proxied")
    fwd = RecordingProxy(proxy_port)
    try:
        cfg = dict(env.cfg)
        cfg["tls"] = {"certs_dir": str(tmp_path / "certs"),
                      "certificates": [{"cert": cert, "key": key}]}
        cfg["sites"] = [dict(env.cfg["sites"][0], hosts=["via.test"])]
        p = module_lab.proxy(cfg, name="ocsp-proxied",
                             env={"http_proxy": "http://127.0.0.1:%d" % proxy_port,
                                  "no_proxy": "", "NO_PROXY": ""})
        p.wait_stderr(r"stapling the response for via\.test")
        assert any(line.startswith("GET http://127.0.0.1:%d/" % port) for line in fwd.lines), \
            fwd.lines
        assert stapled(s_client(p.port, "via.test"))
    finally:
        fwd.close()
        responder.stop()

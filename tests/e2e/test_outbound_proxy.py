"""Outbound HTTPS (ACME and the IdP metadata download, both on libcurl) through
a real forward proxy: Debian's tinyproxy, run here in the foreground on a free
loopback port with a generated config and its log in the test's folder, and
stopped by PID.

- ACME issuance against pebble with HTTPS_PROXY set: tinyproxy's log shows the
  CONNECT to pebble's port, and the certificate is issued and served.
- The IdP metadata (https, from a throw-away CA that SSL_CERT_FILE makes the
  "system" store) through the proxy; NO_PROXY naming the host sends it direct.
- A proxy that refuses the tunnel, or a closed proxy port: a logged error
  that names the reason and the proxy, and the binary keeps running.

NO_PROXY / no_proxy are set empty for every run that must go through the
proxy, so a loopback destination cannot bypass it by the environment.
"""

import http.server
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_acme_pebble as tap  # noqa: E402
from harness import closed_port, request, wait_until  # noqa: E402
from saml_common import saml_config, samltools  # noqa: E402
from test_acme_proxy import acme_config, served_der, site  # noqa: E402

TINYPROXY = "/usr/bin/tinyproxy"


def no_proxy_env(**extra):
    """The proxy variables a run sees: none unless given (empty NO_PROXY)."""
    env = {"https_proxy": "", "HTTPS_PROXY": "", "http_proxy": "", "all_proxy": "",
           "ALL_PROXY": "", "no_proxy": "", "NO_PROXY": ""}
    env.update(extra)
    return env


class Tinyproxy:
    """tinyproxy -d on a free loopback port; CONNECT allowed to <ports> for
    clients in <allow>."""

    def __init__(self, tmp, ports, allow="127.0.0.1", name="tinyproxy"):
        if not os.path.exists(TINYPROXY):
            pytest.fail("tinyproxy not found (apt-get install tinyproxy)", pytrace=False)
        self.port = closed_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(str(tmp), name + ".log")
        conf = os.path.join(str(tmp), name + ".conf")
        with open(conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nTimeout 30\nLogFile \"%s\"\nLogLevel Info\n"
                    "MaxClients 20\nAllow %s\nDisableViaHeader Yes\n" % (
                        self.port, self.log_path, allow))
            for p in ports:
                f.write("ConnectPort %d\n" % p)
        self.out = open(os.path.join(str(tmp), name + ".stdout"), "wb")
        self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", conf], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: "Accepting connections" in self.log(), what="tinyproxy to listen")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def connects(self, port):
        return re.findall(r"Request \(file descriptor \d+\): CONNECT 127\.0\.0\.1:%d " % port,
                          self.log())

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


@pytest.fixture
def proxies():
    started = []
    yield started
    for t in started:
        t.close()


# ---- ACME ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    p = tap.Pebble(tmp_path_factory.mktemp("pebble"))
    try:
        yield p
    finally:
        p.close()


def test_acme_through_https_proxy(pebble, lab, tmp_path, proxies):
    tp = Tinyproxy(tmp_path, [pebble.port])
    proxies.append(tp)
    cfg = acme_config(pebble, tmp_path, [site("px", ["px.test"])], http_port=pebble.http_port,
                      challenges=["http-01"])
    p = lab.proxy(cfg, name="acme-via-proxy", env=no_proxy_env(HTTPS_PROXY=tp.url))
    p.wait_stderr(r"acme: certificate for px\.test obtained", timeout=90)
    # the store installs it just after that line (slower under ASan)
    got = []

    def served():
        try:
            got.append(served_der(p.ports["https"], "px.test"))
            return True
        except ssl.SSLError:
            return False
    wait_until(served, timeout=10, interval=0.1, what="the ACME certificate to be served")
    der = got[-1]
    cert = ssl.DER_cert_to_PEM_cert(der)
    assert "px.test" in subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                                       input=cert, capture_output=True, text=True).stdout
    # Every exchange with the CA went through the tunnel (connections are reused,
    # so there is at least one CONNECT and tinyproxy saw no other request).
    assert tp.connects(pebble.port), tp.log()
    assert not re.findall(r"Request \(file descriptor \d+\): (GET|POST|HEAD) ", tp.log())
    assert tp.alive()


def test_acme_proxy_refuses(pebble, lab, tmp_path, proxies):
    # tinyproxy that allows CONNECT to another port only: 403 to our tunnel.
    tp = Tinyproxy(tmp_path, [1])
    proxies.append(tp)
    cfg = acme_config(pebble, tmp_path, [site("rf", ["rf.test"])], http_port=pebble.http_port,
                      challenges=["http-01"])
    p = lab.proxy(cfg, name="acme-refused", env=no_proxy_env(HTTPS_PROXY=tp.url))
    p.wait_stderr(r"acme: certificate for rf\.test: attempt 1 failed: directory: 127\.0\.0\.1:%d: the "
                  r"proxy refused the tunnel \(CONNECT answered 403\) \(outbound proxy from the "
                  r"environment: HTTPS_PROXY=%s/?\)" % (pebble.port, re.escape(tp.url)),
                  timeout=60)
    assert tp.connects(pebble.port)
    # The binary goes on serving.
    r = request(p.ports["http"], "GET", "/.well-known/acme-challenge/none", host="rf.test")
    assert r.status == 404
    p.assert_alive()


def test_acme_proxy_closed_port(pebble, lab, tmp_path):
    dead = "http://127.0.0.1:%d" % closed_port()
    cfg = acme_config(pebble, tmp_path, [site("cl", ["cl.test"])], http_port=pebble.http_port,
                      challenges=["http-01"])
    p = lab.proxy(cfg, name="acme-dead-proxy", env=no_proxy_env(https_proxy=dead))
    p.wait_stderr(r"acme: certificate for cl\.test: attempt 1 failed: directory: 127\.0\.0\.1:%d: .*"
                  r"\(outbound proxy from the environment: https_proxy=%s/?\)" % (
                      pebble.port, re.escape(dead)), timeout=60)
    r = request(p.ports["http"], "GET", "/.well-known/acme-challenge/none", host="cl.test")
    assert r.status == 404
    p.assert_alive()


# ---- IdP metadata ----------------------------------------------------------------------

class MetadataServer:
    """HTTPS (plain HTTP when not <tls>) on 127.0.0.1 serving <doc> at
    /metadata, with a cert from a fresh CA."""

    def __init__(self, tmp, doc, tls=True):
        d = str(tmp)
        tap._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", d + "/md-ca.key", "-out", d + "/md-ca.pem", "-days",
                     "2", "-subj", "/CN=metadata test CA")
        tap._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", d + "/md.key", "-out", d + "/md.csr", "-subj", "/CN=127.0.0.1")
        with open(d + "/md-ext.cnf", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        tap._openssl("x509", "-req", "-in", d + "/md.csr", "-CA", d + "/md-ca.pem", "-CAkey",
                     d + "/md-ca.key", "-CAcreateserial", "-out", d + "/md.pem", "-days", "2",
                     "-extfile", d + "/md-ext.cnf")
        self.ca = d + "/md-ca.pem"
        self.hits = 0
        body = doc.encode()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                self.send_response(200 if self.path == "/metadata" else 404)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(d + "/md.pem", d + "/md.key")
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d/metadata" % ("https" if tls else "http", self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metadata(tmp_path):
    key, cert = samltools.make_key(str(tmp_path), "idp")
    doc = samltools.idp_metadata("https://idp.test", "https://idp.test/sso", cert)
    s = MetadataServer(tmp_path, doc)
    yield s
    s.close()


def sp_config(lab, md_url):
    port = closed_port()
    return saml_config(lab.upstream("web"), port, md_url), port


def cache_of(p):
    return os.path.join(p.workdir, "certs", "saml-idp-metadata.xml")


def test_metadata_through_https_proxy(lab, tmp_path, metadata, proxies):
    tp = Tinyproxy(tmp_path, [metadata.port])
    proxies.append(tp)
    cfg, port = sp_config(lab, metadata.url)
    p = lab.proxy(cfg, name="sp-via-proxy",
                  env=no_proxy_env(HTTPS_PROXY=tp.url, SSL_CERT_FILE=metadata.ca))
    r = request(port, "GET", "/saml/metadata", host="localhost:%d" % port)
    assert r.status == 200
    assert "fetching the IdP metadata failed" not in p.stderr()
    assert len(tp.connects(metadata.port)) == 1, tp.log()
    assert metadata.hits == 1
    with open(cache_of(p)) as f:
        assert "https://idp.test/sso" in f.read()


def test_metadata_no_proxy_goes_direct(lab, tmp_path, metadata, proxies):
    tp = Tinyproxy(tmp_path, [metadata.port])
    proxies.append(tp)
    cfg, port = sp_config(lab, metadata.url)
    p = lab.proxy(cfg, name="sp-no-proxy",
                  env=no_proxy_env(HTTPS_PROXY=tp.url, NO_PROXY="127.0.0.1",
                                   SSL_CERT_FILE=metadata.ca))
    r = request(port, "GET", "/saml/metadata", host="localhost:%d" % port)
    assert r.status == 200
    assert "fetching the IdP metadata failed" not in p.stderr()
    assert metadata.hits == 1
    assert not tp.connects(metadata.port), tp.log()
    assert "Connect (file descriptor" not in tp.log()


def test_metadata_plain_http_loopback_never_proxied(lab, tmp_path, proxies):
    """http:// is allowed to loopback only, which a proxy cannot reach for us:
    fetched directly whatever the proxy variables say."""
    tp = Tinyproxy(tmp_path, [])
    proxies.append(tp)
    key, cert = samltools.make_key(str(tmp_path), "idp")
    md = MetadataServer(tmp_path, samltools.idp_metadata("https://idp.test",
                                                         "https://idp.test/sso", cert),
                        tls=False)
    try:
        cfg, port = sp_config(lab, md.url)
        lab.proxy(cfg, name="sp-plain", env=no_proxy_env(
            http_proxy=tp.url, HTTPS_PROXY=tp.url, ALL_PROXY=tp.url, all_proxy=tp.url))
        assert request(port, "GET", "/saml/metadata", host="localhost:%d" % port).status == 200
        assert md.hits == 1
        assert "Connect (file descriptor" not in tp.log()
    finally:
        md.close()


def test_metadata_proxy_refuses_then_cache(lab, tmp_path, metadata, proxies):
    """A refusing proxy at start: the reason is logged, the cached copy (from a
    first start through a working proxy) is used and the SP serves."""
    good = Tinyproxy(tmp_path, [metadata.port], name="good")
    proxies.append(good)
    cfg, port = sp_config(lab, metadata.url)
    first = lab.proxy(cfg, name="sp-first",
                      env=no_proxy_env(HTTPS_PROXY=good.url, SSL_CERT_FILE=metadata.ca))
    assert request(port, "GET", "/saml/metadata", host="localhost:%d" % port).status == 200
    lab.stop_proxy(first)
    assert os.path.exists(cache_of(first))
    # tinyproxy that does not allow us at all.
    refusing = Tinyproxy(tmp_path, [metadata.port], allow="10.255.255.1", name="refusing")
    proxies.append(refusing)
    cfg, port = sp_config(lab, metadata.url)
    p = lab.proxy(cfg, name="sp-refused",
                  env=no_proxy_env(HTTPS_PROXY=refusing.url, SSL_CERT_FILE=metadata.ca))
    p.wait_stderr(r"saml: fetching the IdP metadata failed: %s: .*\(outbound proxy from the "
                  r"environment: HTTPS_PROXY=%s/?\); using the cached copy" % (
                      re.escape(metadata.url), re.escape(refusing.url)))
    assert request(port, "GET", "/saml/metadata", host="localhost:%d" % port).status == 200
    assert metadata.hits == 1
    assert refusing.alive()
    p.assert_alive()

"""TLS termination end to end: tests/tls/tls_echo_server (the tls module wired
into evhttp exactly as the workers do it) driven by openssl s_client, curl and
Python's ssl module over loopback.

Covers: TLS 1.0/1.1 refused and 1.2/1.3 accepted; SNI choosing among
certificates (exact, wildcard, default); ECDSA beside RSA; ALPN http/1.1; the
acme-tls/1 hook; the local CA trusted explicitly by curl; certificate files
replaced on disk (plain files and a Kubernetes ..data symlink swap) while a
keep-alive connection stays up; session resumption across worker threads;
plain HTTP to the TLS port.
"""

import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import time

import pytest

from harness import BINARY, SOURCE_DIR, wait_until

ECHO = os.environ.get("TLS_ECHO_SERVER") or os.path.join(
    os.path.dirname(BINARY), "tests", "tls", "tls_echo_server")

LISTEN_RE = re.compile(r" info listening on 127\.0\.0\.1:(\d+) \(tls\)")
READY_RE = re.compile(r" info ready: \d+ workers")


class EchoServer:
    """One tls_echo_server process; stopped by PID (and checked) in stop()."""

    def __init__(self, workdir, args, name="echo"):
        if not os.path.exists(ECHO):
            raise AssertionError("tls_echo_server not found at %s; build tests/tls (or set "
                                 "TLS_ECHO_SERVER)" % ECHO)
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([ECHO] + list(args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._err, cwd=workdir)
        try:
            wait_until(lambda: READY_RE.search(self.stderr()) or self.proc.poll() is not None,
                       what="tls_echo_server ready")
            if self.proc.poll() is not None:
                raise AssertionError("tls_echo_server exited %s:\n%s" % (self.proc.returncode,
                                                                        self.stderr()))
            self.port = int(LISTEN_RE.search(self.stderr()).group(1))
        except BaseException:
            self.kill()
            raise

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.close()

    def stop(self):
        assert self.proc.poll() is None, "tls_echo_server died:\n" + self.stderr()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        finally:
            self.kill()
        assert rc == 0, "tls_echo_server exited %s:\n%s" % (rc, self.stderr())


@pytest.fixture
def servers():
    started = []
    yield started
    errors = []
    for s in started:
        try:
            s.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def start(servers, workdir, *args):
    s = EchoServer(str(workdir), [str(a) for a in args], name="echo%d" % len(servers))
    servers.append(s)
    return s


def make_cert(workdir, name, cn, san, kind="ec", days=2):
    """Self-signed cert + key via the openssl CLI; returns (cert, key) paths."""
    cert = os.path.join(str(workdir), name + ".crt")
    key = os.path.join(str(workdir), name + ".key")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" else \
        ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", str(days), "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san, "-keyout", key + ".tmp",
                    "-out", cert + ".tmp"] + newkey,
                   check=True, capture_output=True)
    os.replace(key + ".tmp", key)
    os.replace(cert + ".tmp", cert)
    return cert, key


def s_client(port, *args, data=b"", timeout=10):
    """Run openssl s_client; returns (exit code, stdout+stderr text)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input=data, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def subject_cn(output):
    m = re.search(r"^subject=.*?CN ?= ?([^,\n/]+)", output, re.M)
    return m.group(1).strip() if m else None


def served_cn(port, *args):
    rc, out = s_client(port, *args)
    assert rc == 0, out
    return subject_cn(out)


def tls_connect(port, server_name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=server_name)


def peer_cn(sock):
    der = sock.getpeercert(binary_form=True)
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                       capture_output=True, check=True)
    return subject_cn(p.stdout.decode())


def http_get(sock, path, host="x"):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the response head"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return head.split(b"\r\n")[0].decode(), body.decode()


# --------------------------------------------------------------------------


def test_protocol_versions(tmp_path, servers):
    cert, key = make_cert(tmp_path, "v", "versions", "DNS:v.test")
    srv = start(servers, tmp_path, "--cert", cert, "--key", key)
    for flag in ("-tls1", "-tls1_1"):
        # SECLEVEL=0 so that the client itself is willing to try.
        rc, out = s_client(srv.port, flag, "-cipher", "DEFAULT@SECLEVEL=0",
                           "-servername", "v.test")
        assert rc != 0, out
        assert "alert protocol version" in out, out
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        rc, out = s_client(srv.port, flag, "-servername", "v.test")
        assert rc == 0, out
        assert re.search(r"^New, %s, Cipher is " % re.escape(name), out, re.M), out
        assert subject_cn(out) == "versions"
    # A TLS 1.2 cipher outside Mozilla intermediate is refused.
    rc, out = s_client(srv.port, "-tls1_2", "-cipher", "AES128-SHA", "-servername", "v.test")
    assert rc != 0 and "handshake failure" in out, out


def test_sni_picks_certificate(tmp_path, servers):
    d = make_cert(tmp_path, "d", "default-cert", "DNS:default.test")
    a = make_cert(tmp_path, "a", "exact-cert", "DNS:a.test,DNS:b.test")
    w = make_cert(tmp_path, "w", "wild-cert", "DNS:*.wild.test")
    srv = start(servers, tmp_path, "--cert", d[0], "--key", d[1], "--cert", a[0], "--key", a[1],
                "--cert", w[0], "--key", w[1])
    assert served_cn(srv.port, "-servername", "a.test") == "exact-cert"
    assert served_cn(srv.port, "-servername", "b.test") == "exact-cert"
    assert served_cn(srv.port, "-servername", "x.wild.test") == "wild-cert"
    assert served_cn(srv.port, "-servername", "deep.x.wild.test") == "default-cert"
    assert served_cn(srv.port, "-servername", "unknown.test") == "default-cert"
    assert served_cn(srv.port, "-noservername") == "default-cert"
    # The application sees the SNI name the client sent.
    s = tls_connect(srv.port, "x.wild.test")
    try:
        status, body = http_get(s, "/sni")
        assert status == "HTTP/1.1 200 OK"
        assert body.startswith("sni=x.wild.test ")
    finally:
        s.close()


def test_ecdsa_and_rsa_side_by_side(tmp_path, servers):
    e = make_cert(tmp_path, "e", "ecdsa-cert", "DNS:both.test", kind="ec")
    r = make_cert(tmp_path, "r", "rsa-cert", "DNS:both.test", kind="rsa")
    srv = start(servers, tmp_path, "--cert", e[0], "--key", e[1], "--cert", r[0], "--key", r[1])
    sn = ("-servername", "both.test")
    assert served_cn(srv.port, *sn, "-tls1_3", "-sigalgs", "ECDSA+SHA256") == "ecdsa-cert"
    assert served_cn(srv.port, *sn, "-tls1_3", "-sigalgs", "RSA-PSS+SHA256") == "rsa-cert"
    assert served_cn(srv.port, *sn, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256") == \
        "rsa-cert"
    assert served_cn(srv.port, *sn, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256") == \
        "ecdsa-cert"


def test_alpn_and_acme_tls_hook(tmp_path, servers):
    n = make_cert(tmp_path, "n", "normal-cert", "DNS:acme.test")
    c = make_cert(tmp_path, "c", "challenge-cert", "DNS:acme.test")
    srv = start(servers, tmp_path, "--cert", n[0], "--key", n[1],
                "--challenge", "acme.test:%s:%s" % c)
    rc, out = s_client(srv.port, "-servername", "acme.test", "-alpn", "h2,http/1.1")
    assert rc == 0, out
    assert "ALPN protocol: http/1.1" in out, out
    assert subject_cn(out) == "normal-cert"

    rc, out = s_client(srv.port, "-servername", "acme.test", "-alpn", "acme-tls/1")
    assert rc == 0, out
    assert "ALPN protocol: acme-tls/1" in out, out
    assert subject_cn(out) == "challenge-cert"

    # No challenge pending for the name: the handshake fails.
    rc, out = s_client(srv.port, "-servername", "other.test", "-alpn", "acme-tls/1")
    assert rc != 0 and "unrecognized name" in out, out

    # curl negotiates http/1.1 through ALPN.
    p = subprocess.run(["curl", "-sS", "-v", "-k", "--resolve", "acme.test:%d:127.0.0.1" % srv.port,
                        "https://acme.test:%d/alpn" % srv.port], capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert b"ALPN: server accepted http/1.1" in p.stderr, p.stderr
    assert b"alpn=http/1.1 " in p.stdout


def test_local_ca_with_curl(tmp_path, servers):
    certs = tmp_path / "state" / "certs"
    srv = start(servers, tmp_path, "--local-ca", "--certs-dir", certs, "--local-name", "dev.test")
    ca = certs / "local-ca" / "ca.crt"
    assert ("local CA certificate: %s" % ca) in srv.stderr()
    assert stat.S_IMODE(os.stat(certs / "local-ca").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(certs / "local-ca" / "ca.key").st_mode) == 0o600
    empty = tmp_path / "empty-capath"
    empty.mkdir()
    for url, extra in (("https://localhost:%d/l" % srv.port, []),
                       ("https://127.0.0.1:%d/ip" % srv.port, []),
                       ("https://dev.test:%d/dev" % srv.port,
                        ["--resolve", "dev.test:%d:127.0.0.1" % srv.port])):
        p = subprocess.run(["curl", "-sS", "--cacert", str(ca), "--capath", str(empty)] + extra +
                           [url], capture_output=True, timeout=10)
        assert p.returncode == 0, (url, p.stderr)
        assert p.stdout.startswith(b"sni="), p.stdout
    # Without the CA named explicitly, nothing vouches for it (system store untouched).
    p = subprocess.run(["curl", "-sS", "--capath", str(empty), "https://localhost:%d/" % srv.port],
                       capture_output=True, timeout=10)
    assert p.returncode == 60, p.stderr
    # A restart reuses the same CA.
    before = ca.read_bytes()
    srv2 = start(servers, tmp_path, "--local-ca", "--certs-dir", certs)
    assert ca.read_bytes() == before
    p = subprocess.run(["curl", "-sS", "--cacert", str(ca), "--capath", str(empty),
                        "https://localhost:%d/again" % srv2.port], capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr


def test_files_replaced_on_disk_keepalive_survives(tmp_path, servers):
    cert, key = make_cert(tmp_path, "site", "first-cert", "DNS:site.test")
    srv = start(servers, tmp_path, "--cert", cert, "--key", key, "--poll", "0.2")
    old = tls_connect(srv.port, "site.test")
    try:
        assert peer_cn(old) == "first-cert"
        assert http_get(old, "/one")[0] == "HTTP/1.1 200 OK"

        make_cert(tmp_path, "site", "second-cert", "DNS:site.test")  # atomic renames
        wait_until(lambda: served_cn(srv.port, "-servername", "site.test") == "second-cert",
                   what="the new certificate to be served")
        assert re.search(r"info tls: reloaded .*site\.crt", srv.stderr())

        # The connection made before the swap still works, on its old certificate.
        status, body = http_get(old, "/two")
        assert status == "HTTP/1.1 200 OK"
        assert "path=/two" in body
        assert peer_cn(old) == "first-cert"
    finally:
        old.close()

    # A broken replacement (key of another certificate) is refused; the old one stays.
    make_cert(tmp_path, "other", "third-cert", "DNS:site.test")
    os.replace(str(tmp_path / "other.key"), key)
    wait_until(lambda: "does not match" in srv.stderr(), what="the mismatch error")
    assert "still serving the certificate loaded before" in srv.stderr()
    assert served_cn(srv.port, "-servername", "site.test") == "second-cert"


def test_kubernetes_secret_symlink_swap(tmp_path, servers):
    vol = tmp_path / "secret"
    for v, cn in (("v1", "k8s-one"), ("v2", "k8s-two")):
        (vol / v).mkdir(parents=True)
        c, k = make_cert(tmp_path, v, cn, "DNS:k.test")
        os.replace(c, str(vol / v / "tls.crt"))
        os.replace(k, str(vol / v / "tls.key"))
    os.symlink("v1", str(vol / "..data"))
    os.symlink("..data/tls.crt", str(vol / "tls.crt"))
    os.symlink("..data/tls.key", str(vol / "tls.key"))
    srv = start(servers, tmp_path, "--cert", vol / "tls.crt", "--key", vol / "tls.key",
                "--poll", "0.2")
    assert served_cn(srv.port, "-servername", "k.test") == "k8s-one"
    # What the kubelet does: a new ..data symlink renamed over the old one.
    os.symlink("v2", str(vol / "..data_tmp"))
    os.replace(str(vol / "..data_tmp"), str(vol / "..data"))
    wait_until(lambda: served_cn(srv.port, "-servername", "k.test") == "k8s-two",
               what="the swapped secret to be served")


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_session_resumption_across_workers(tmp_path, servers, version):
    cert, key = make_cert(tmp_path, "r", "resume-cert", "DNS:r.test")
    srv = start(servers, tmp_path, "--cert", cert, "--key", key, "--workers", "4")
    sess = str(tmp_path / "session.pem")
    # A whole request, and wait for the server's close: TLS 1.3 tickets come
    # after the handshake, so s_client must not leave before reading them.
    req = b"GET /resume HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n"
    rc, out = s_client(srv.port, version, "-servername", "r.test", "-sess_out", sess,
                       "-ign_eof", data=req)
    assert "path=/resume" in out, out
    assert rc == 0 and re.search(r"^New, TLSv1\.[23]", out, re.M), out
    # Connections land on any of the 4 workers: the ticket keys are shared.
    for _ in range(8):
        rc, out = s_client(srv.port, version, "-servername", "r.test", "-sess_in", sess)
        assert rc == 0, out
        assert re.search(r"^Reused, TLSv1\.[23]", out, re.M), out
    # Another process has its own keys: no resumption there.
    srv2 = start(servers, tmp_path, "--cert", cert, "--key", key)
    rc, out = s_client(srv2.port, version, "-servername", "r.test", "-sess_in", sess)
    assert rc == 0 and re.search(r"^New, TLSv1\.[23]", out, re.M), out


def test_plain_http_to_tls_port(tmp_path, servers):
    cert, key = make_cert(tmp_path, "p", "plain-cert", "DNS:p.test")
    srv = start(servers, tmp_path, "--cert", cert, "--key", key)
    p = subprocess.run(["curl", "-sS", "-i", "http://127.0.0.1:%d/x" % srv.port],
                       capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b"HTTP/1.1 400 Bad Request\r\n"), p.stdout
    assert b"this port speaks HTTPS" in p.stdout
    # Other methods, not only the ones OpenSSL recognises by name.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"OPTIONS * HTTP/1.1\r\nHost: p.test\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    # Handshake failures do not disturb anyone else.
    rc, out = s_client(srv.port, "-servername", "p.test")
    assert rc == 0 and subject_cn(out) == "plain-cert", out

"""Upstreams over TLS ("upstreams.<name>.tls") against a real TLS server:
Debian's nginx with certificates from a CA made here by the openssl CLI.
Verification against a configured bundle and the system store, the name
checked (server_name, else the server's address), wrong names and untrusted
CAs giving a 502 that says why (and a log line naming the upstream), the
explicit opt-out (logged at load), mTLS, keep-alive reuse (one TLS connection
for several requests, read from nginx's log) and session resumption
($ssl_session_reused on new connections)."""

import os
import subprocess
import time

import pytest

from configs import config
from harness import closed_port, make_bytes, need, request, run_binary, wait_until
from test_access_tcp import _can_connect

HOST = "site.test"
BIG = 3 * 1024 * 1024 + 17


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, stem):
    openssl("req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-days", "2", "-subj", "/CN=%s test CA" % stem, "-keyout", stem + ".key",
            "-out", stem + ".pem", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d, stem, ca, cn, san, usage):
    openssl("req", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-subj", "/CN=" + cn, "-keyout", stem + ".key", "-out", stem + ".csr", cwd=d)
    with open(os.path.join(d, stem + ".ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n" % usage)
        if san:
            f.write("subjectAltName=%s\n" % san)
    openssl("x509", "-req", "-in", stem + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-extfile", stem + ".ext", "-out", stem + ".pem",
            cwd=d)


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log %(d)s/error.log info;
pid %(d)s/nginx.pid;
events { worker_connections 64; }
http {
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    log_format tls '$server_port $connection $connection_requests $ssl_session_reused '
                   '$ssl_server_name $request_uri';
    access_log %(d)s/access.log tls;
    client_max_body_size 10m;
    ssl_certificate %(d)s/server.pem;
    ssl_certificate_key %(d)s/server.key;
    ssl_session_cache shared:tls:1m;
    server {
        listen 127.0.0.1:%(plain)d ssl;
        keepalive_requests 1000;
        location / { return 200 "tls ok sni=$ssl_server_name\\n"; }
        location /big { alias %(d)s/big.bin; }
    }
    server {
        listen 127.0.0.1:%(mtls)d ssl;
        ssl_verify_client on;
        ssl_client_certificate %(d)s/clientca.pem;
        location / { return 200 "client $ssl_client_s_dn\\n"; }
    }
    server {
        listen 127.0.0.1:%(once)d ssl;
        keepalive_timeout 0;
        location / { return 200 "once reused=$ssl_session_reused\\n"; }
    }
}
"""


@pytest.fixture
def tls_upstream(tmp_path):
    need("nginx")
    need("openssl")
    d = str(tmp_path / "nginx")
    os.makedirs(d)
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_ca(d, "clientca")
    make_leaf(d, "server", "ca", "upstream.test", "DNS:upstream.test,IP:127.0.0.1", "serverAuth")
    make_leaf(d, "client", "clientca", "portcullis-client", None, "clientAuth")
    with open(os.path.join(d, "big.bin"), "wb") as f:
        f.write(make_bytes(BIG))
    ports = {"plain": closed_port(), "mtls": closed_port(), "once": closed_port()}
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % dict(ports, d=d))
    proc = subprocess.Popen(["nginx", "-p", d, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_until(lambda: all(_can_connect(p) for p in ports.values()) or proc.poll() is not None,
                   what="nginx listening")
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
        yield d, ports
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def read_to_eof(sock, pause=0.0):
    """Everything <sock> receives until the peer closes (sleeping <pause>
    seconds between reads: a slow reader)."""
    data = b""
    while True:
        chunk = sock.recv(8192)
        if not chunk:
            return data
        data += chunk
        if pause:
            time.sleep(pause)


def nginx_log(d, port):
    with open(os.path.join(d, "access.log")) as f:
        return [line.split() for line in f if line.startswith("%d " % port)]


def tls_config(d, ports):
    ca = os.path.join(d, "ca.pem")
    a = "127.0.0.1:%d" % ports["plain"]
    ups = {
        "good": {"servers": [a], "tls": {"server_name": "upstream.test", "ca_bundle": ca}},
        "byip": {"servers": [a], "tls": {"ca_bundle": ca}},
        "wrongname": {"servers": [a], "tls": {"server_name": "wrong.test", "ca_bundle": ca}},
        "untrusted": {"servers": [a], "tls": {"server_name": "upstream.test",
                                              "ca_bundle": os.path.join(d, "otherca.pem")}},
        "system": {"servers": [a], "tls": {"server_name": "upstream.test"}},
        "skip": {"servers": [a], "tls": {"server_name": "wrong.test",
                                         "insecure_skip_verify": True}},
        "nocert": {"servers": ["127.0.0.1:%d" % ports["mtls"]],
                   "tls": {"server_name": "upstream.test", "ca_bundle": ca}},
        "mtls": {"servers": ["127.0.0.1:%d" % ports["mtls"]],
                 "tls": {"server_name": "upstream.test", "ca_bundle": ca,
                         "client_cert": os.path.join(d, "client.pem"),
                         "client_key": os.path.join(d, "client.key")}},
        "once": {"servers": ["127.0.0.1:%d" % ports["once"]],
                 "tls": {"server_name": "upstream.test", "ca_bundle": ca}},
    }
    routes = [{"name": n, "match": {"path": ["/" + n]}, "strip_prefix": "/" + n, "upstream": n}
              for n in ups]
    cfg = config({}, [{"name": "main", "hosts": [HOST], "default": True, "routes": routes}],
                 workers=1)
    cfg["upstreams"] = ups
    return cfg


def get(port, path):
    return request(port, "GET", path, host=HOST)


def test_verified_tls_upstreams(lab, tls_upstream):
    d, ports = tls_upstream
    p = lab.proxy(tls_config(d, ports))
    r = get(p.port, "/good/x")
    assert r.status == 200 and r.body == b"tls ok sni=upstream.test\n"
    # No server_name: the address is checked against the certificate's IP SAN
    # and no SNI is sent (RFC 6066 has no IP literals).
    r = get(p.port, "/byip/x")
    assert r.status == 200 and r.body == b"tls ok sni=\n"

    cases = {"wrongname": "hostname mismatch",
             "untrusted": "unable to get local issuer certificate",
             "system": "unable to get local issuer certificate"}
    for name, why in cases.items():
        r = get(p.port, "/%s/x" % name)
        assert r.status == 502, (name, r.status, r.body)
        body = r.body.decode().lower()
        assert "tls handshake with the upstream failed: certificate verify failed: " + why \
            in body, (name, body)
        line = "upstream %s (127.0.0.1:%d): the tls handshake with the upstream failed: " \
               "certificate verify failed: %s" % (name, ports["plain"], why)
        wait_until(lambda: line in p.stderr().lower(), what="log line for " + name)

    # The explicit opt-out works, and said so at load.
    r = get(p.port, "/skip/x")
    assert r.status == 200 and r.body == b"tls ok sni=wrong.test\n"
    assert ("upstreams.skip.tls.insecure_skip_verify: the certificates of upstream skip are "
            "NOT verified") in p.stderr()


def test_large_bodies_both_ways(lab, tls_upstream):
    d, ports = tls_upstream
    p = lab.proxy(tls_config(d, ports))
    r = get(p.port, "/good/big")
    assert r.status == 200 and len(r.body) == BIG and r.body == make_bytes(BIG)
    # A client that reads late: the proxy stops reading the TLS upstream
    # (back-pressure), then resumes; every byte arrives in order.
    import socket
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(b"GET /good/big HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % HOST.encode())
        time.sleep(1.0)
        data = read_to_eof(s, pause=0.001)
    head, _, got = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and got == make_bytes(BIG)
    body = make_bytes(2 * 1024 * 1024)
    r = request(p.port, "POST", "/good/upload", host=HOST, body=body)
    assert r.status == 200 and r.body == b"tls ok sni=upstream.test\n"


def test_mtls_upstream(lab, tls_upstream):
    d, ports = tls_upstream
    p = lab.proxy(tls_config(d, ports))
    r = get(p.port, "/mtls/x")
    assert r.status == 200 and r.body == b"client CN=portcullis-client\n"
    r = get(p.port, "/nocert/x")  # nginx answers it in HTTP: 400, no certificate sent
    assert r.status == 400 and b"No required SSL certificate was sent" in r.body


def test_keepalive_and_resumption(lab, tls_upstream):
    d, ports = tls_upstream
    p = lab.proxy(tls_config(d, ports))
    for i in range(5):
        assert get(p.port, "/good/k%d" % i).status == 200
    # nginx logs a request after its answer went out: wait for the fifth line
    wait_until(lambda: len([l for l in nginx_log(d, ports["plain"])
                            if l[-1].startswith("/k")]) == 5, what="nginx's log lines")
    lines = [l for l in nginx_log(d, ports["plain"]) if l[-1].startswith("/k")]
    assert len(lines) == 5
    assert len({l[1] for l in lines}) == 1, lines     # one connection, one handshake
    assert [l[2] for l in lines] == ["1", "2", "3", "4", "5"]

    # A server that closes after every response: new connections resume.
    for i in range(4):
        r = get(p.port, "/once/r%d" % i)
        assert r.status == 200, r.body
    wait_until(lambda: len(nginx_log(d, ports["once"])) == 4, what="nginx's log lines")
    lines = nginx_log(d, ports["once"])
    assert len({l[1] for l in lines}) == 4, lines     # four connections
    assert [l[3] for l in lines] == [".", "r", "r", "r"], lines


def test_check_refuses_bad_tls_settings(tmp_path):
    import json
    cfg = config({"web": "127.0.0.1:1"}, [{"routes": [{"upstream": "web"}]}])
    cfg["upstreams"]["web"]["tls"] = {"ca_bundle": str(tmp_path / "missing.pem"),
                                      "client_key": str(tmp_path / "k.pem")}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    res = run_binary(["-t", "-c", str(path)])
    assert res.returncode == 1
    assert 'upstreams.web.tls.client_key: needs "client_cert"' in res.stderr, res.stderr
    cfg["upstreams"]["web"]["tls"] = {"ca_bundle": str(tmp_path / "missing.pem")}
    path.write_text(json.dumps(cfg))
    res = run_binary(["-t", "-c", str(path)])
    assert res.returncode == 1
    assert "upstreams.web.tls: %s: cannot load the CA bundle" % (tmp_path / "missing.pem") \
        in res.stderr, res.stderr
    cfg["listeners"].append({"name": "relay", "address": "127.0.0.1:0", "type": "tcp",
                             "upstream": "web"})
    cfg["upstreams"]["web"]["tls"] = True
    path.write_text(json.dumps(cfg))
    res = run_binary(["-t", "-c", str(path)])
    assert res.returncode == 1
    assert 'listeners[1].upstream: upstream "web" speaks TLS' in res.stderr, res.stderr

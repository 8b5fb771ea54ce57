"""TLS termination on a raw TCP relay listener ("type": "tcp", "tls": true):
the client speaks TLS with the same certificates as the HTTPS listeners
(here the local CA), the upstream gets the plain bytes, both ways, and a
half-close still reaches the upstream."""

import os
import socket
import ssl
import threading

from harness import wait_until


class EchoUpper:
    """A TCP server that answers every chunk upper-cased and reports EOF."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.saw_eof = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                while True:
                    d = c.recv(65536)
                    if not d:
                        self.saw_eof.set()
                        c.sendall(b"BYE\n")
                        break
                    self.received += d
                    c.sendall(d.upper())

    def close(self):
        self.sock.close()


def test_tls_terminated_on_tcp_relay(lab, tmp_path):
    up = EchoUpper()
    try:
        cfg = {
            "listeners": [{"name": "relay", "address": "127.0.0.1:0", "type": "tcp",
                           "upstream": "127.0.0.1:%d" % up.port, "tls": True}],
            "admin": {"address": "127.0.0.1:0"},
            "workers": 2,
            "tls": {"certs_dir": os.path.join(str(tmp_path), "certs"),
                    "local_ca": {"names": ["relay.test"]}},
            "upstreams": {"none": {"servers": ["127.0.0.1:9"]}},
            "sites": [{"routes": [{"respond": {"status": 404}}]}],
        }
        p = lab.proxy(cfg)
        port = p.ports["relay"]
        ca = os.path.join(str(tmp_path), "certs", "local-ca", "ca.crt")
        ctx = ssl.create_default_context(cafile=ca)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="relay.test") as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")
                payload = os.urandom(200000).hex().encode()  # 400 KB of text
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    d = s.recv(65536)
                    assert d, "relay closed early after %d bytes" % len(got)
                    got += d
                assert got == payload.upper()
                assert up.received == payload  # plain bytes upstream, no TLS
                # A half-close from the client reaches the upstream.
                s.shutdown(socket.SHUT_WR)
                wait_until(up.saw_eof.is_set, what="upstream saw the client's EOF")
        # Plain bytes on the TLS relay get no answer from the upstream.
        before = up.received
        with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
            plain.sendall(b"HELLO plain\n")
            try:
                plain.recv(100)
            except (ConnectionResetError, socket.timeout):
                pass
        assert up.received == before
    finally:
        up.close()

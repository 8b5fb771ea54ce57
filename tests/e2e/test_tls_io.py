"""The TLS read/write path of src/http/conn.c with records framed by the test.

conn.c reads with OpenSSL's read-ahead (a whole TCP read into OpenSSL's
buffer, records decrypted from there) and keeps a connection's buffers while
it is busy, freeing them after 2 s idle.  Bytes read ahead are invisible to
epoll, so every case where more than one record arrives at once matters:
several requests in separate records of one TCP segment, a record cut in
two TCP writes, a pipelined batch large enough to pause reading, and a
connection used again after its buffers were freed.

The client is Python's ssl.SSLObject over memory BIOs: each write() is one
TLS record, flush() sends everything written so far in one sendall.
"""

import hashlib
import json
import os
import socket
import ssl
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from configs import config, route  # noqa: E402
from harness import Slow  # noqa: E402

APP = "app.test"
CLIENT_TIMEOUT = 4  # seconds; well above conn.c's 200 ms buffer-release delay


class RecordClient:
    """One TLS connection whose record boundaries the test chooses."""

    def __init__(self, port, server_name=APP):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=server_name)
        self.buf = b""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._feed()
        self.flush()

    def close(self):
        self.sock.close()

    def _feed(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.inc.write(data)

    def write(self, data):
        """One TLS record per call (at most 16 KiB), not sent yet."""
        assert len(data) <= 16384
        self.tls.write(data)

    def pending(self):
        """The encrypted bytes written and not yet sent."""
        return self.out.read()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def read_some(self):
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._feed()
                continue
            except ssl.SSLZeroReturnError:
                return b""
            if data:
                return data
            return b""

    def response(self):
        """The next response: (status line, headers dict, body bytes)."""
        while b"\r\n\r\n" not in self.buf:
            data = self.read_some()
            assert data, "connection closed before the response head"
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            data = self.read_some()
            assert data, "connection closed inside the body"
            self.buf += data
        body, self.buf = self.buf[:length], self.buf[length:]
        return lines[0], headers, body

    def wait_closed(self, limit):
        """Seconds until the server closes the connection (EOF), at most <limit>."""
        start = time.monotonic()
        self.sock.settimeout(limit)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return time.monotonic() - start
                self.inc.write(data)
                try:
                    self.tls.read(65536)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
        except (ConnectionResetError, ssl.SSLError):
            return time.monotonic() - start


def get(target, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (target, APP, extra)).encode()


def echoed(body):
    return json.loads(body.decode())


@pytest.fixture(scope="module")
def env(module_lab, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tlsio"))
    e = type("Env", (), {})()
    e.up = module_lab.upstream("web")
    cfg = config({"web": e.up},
                 [{"name": "app", "hosts": [APP], "default": True,
                   "routes": [route("web", "web")]}],
                 listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True}],
                 tls={"certs_dir": os.path.join(d, "certs"), "local_ca": {"names": [APP]},
                      "default_name": APP},
                 timeouts={"client": CLIENT_TIMEOUT})
    e.proxy = module_lab.proxy(cfg, name="tlsio")
    e.port = e.proxy.ports["https"]
    return e


@pytest.fixture(autouse=True)
def _alive(env, module_lab):
    env.up.reset()
    yield
    module_lab.assert_alive()


def test_requests_in_separate_records_of_one_segment(env):
    c = RecordClient(env.port)
    try:
        for t in ("/r1", "/r2", "/r3"):
            c.write(get(t))
        c.flush()  # three records, one sendall
        for t in ("/r1", "/r2", "/r3"):
            status, _, body = c.response()
            assert status == "HTTP/1.1 200 OK"
            assert echoed(body)["target"] == t
        # The connection is still good for one more.
        c.write(get("/r4"))
        c.flush()
        assert echoed(c.response()[2])["target"] == "/r4"
    finally:
        c.close()


def test_record_cut_between_two_tcp_writes(env):
    c = RecordClient(env.port)
    try:
        c.write(get("/first"))
        c.write(get("/second"))
        wire = c.pending()
        # First record whole plus part of the second, then the rest.
        cut = len(wire) - 7
        c.sock.sendall(wire[:cut])
        assert echoed(c.response()[2])["target"] == "/first"
        time.sleep(0.2)
        c.sock.sendall(wire[cut:])
        assert echoed(c.response()[2])["target"] == "/second"
    finally:
        c.close()


def test_body_in_many_records_arrives_whole(env):
    body = bytes((i * 7 + 3) % 251 for i in range(300000))
    c = RecordClient(env.port)
    try:
        c.write(("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                 % (APP, len(body))).encode())
        sizes = [1, 5000, 16384, 333, 16384, 9000]
        i = k = 0
        while i < len(body):
            n = sizes[k % len(sizes)]
            c.write(body[i:i + n])
            i += n
            k += 1
        c.write(get("/after"))
        c.flush()
        status, _, resp = c.response()
        assert status == "HTTP/1.1 200 OK"
        doc = echoed(resp)
        assert doc["body_len"] == len(body)
        assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert echoed(c.response()[2])["target"] == "/after"
    finally:
        c.close()


def padded_get(target, size):
    """A GET of exactly <size> bytes (an X-Pad header fills it up)."""
    bare = len(get(target, "X-Pad: \r\n"))
    return get(target, "X-Pad: " + "p" * (size - bare) + "\r\n")


def test_pipelined_batch_past_the_read_pause(env):
    # The first request is slow; the batch behind it is read ahead until
    # conn.c's 256 KiB limit, where reading pauses.  The big requests are
    # records of 2387 bytes on the wire (TLS 1.3, AES-GCM: 22 bytes over the
    # 2365 of plaintext), seven to one 16709-byte fill of OpenSSL's read
    # buffer, so the fill holding the request that crosses the limit also
    # holds the ten small records behind it: when reading resumes they are in
    # OpenSSL's buffer, not in the socket, and no epoll event will come.
    env.up.reset(Slow(1.0))
    big = [padded_get("/big%d" % i, 2365) for i in range(111)]
    assert sum(map(len, big[:110])) < 256 * 1024 <= sum(map(len, big))
    small = [get("/small%d" % i) for i in range(10)]
    c = RecordClient(env.port)
    try:
        c.write(get("/slow"))
        c.flush()
        env.up.wait_for_count(1)  # dispatched: what follows is read ahead
        for r in big + small:
            c.write(r)
        c.flush()
        assert echoed(c.response()[2])["target"] == "/slow"
        env.up.reset()
        for t in ["/big%d" % i for i in range(111)] + ["/small%d" % i for i in range(10)]:
            status, _, body = c.response()
            assert status == "HTTP/1.1 200 OK"
            assert echoed(body)["target"] == t
    finally:
        c.close()


def test_connection_reused_after_idle_buffer_release(env):
    c = RecordClient(env.port)
    try:
        c.write(get("/before"))
        c.flush()
        assert echoed(c.response()[2])["target"] == "/before"
        time.sleep(1.0)  # past the 200 ms after which the idle buffers are freed
        c.write(get("/after-idle"))
        c.flush()
        assert echoed(c.response()[2])["target"] == "/after-idle"
        # The idle keep-alive limit is still the whole client timeout.
        waited = c.wait_closed(CLIENT_TIMEOUT + 6)
        assert waited >= CLIENT_TIMEOUT - 0.5, waited
        assert waited < CLIENT_TIMEOUT + 5, waited
    finally:
        c.close()

"""WebSocket over HTTP/2 (RFC 8441): an extended CONNECT with :protocol websocket,
sent with Debian's python3-h2 (neither python3-websockets nor Node's ws speaks
HTTP/2), becomes an HTTP/1.1 upgrade to the upstream (python3-websockets' echo
server).  Portcullis makes up the Sec-WebSocket-Key, checks the upstream's
Accept, answers the stream 200 without Key or Accept and carries the frames in
DATA.  The same gate as over HTTP/1.1: no session, 401 and no upstream
handshake; identity headers from the session, never from the client."""

import json
import os
import socket
import ssl
import struct

import pytest

from harness import Fixed, closed_port, need, request
import configs
from saml_common import seal, now
from test_websocket import COOKIE, EchoServer, saml_block, ws_config

need("h2", "python")
need("websockets", "python")
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402


@pytest.fixture
def echo():
    e = EchoServer()
    yield e
    e.close()


def frame(text):
    """A masked WebSocket text frame, as a client sends it (RFC 6455 5.2)."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def unframe(buf):
    """(text, rest) for the first whole unmasked frame in <buf>, or (None, buf)."""
    if len(buf) < 2:
        return None, buf
    n, off = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None, buf
        n, off = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None, buf
        n, off = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < off + n:
        return None, buf
    return buf[off:off + n].decode(), buf[off + n:]


class Stream:
    """One HTTP/2 connection (h2c prior knowledge, or TLS with ALPN h2) and an
    extended CONNECT on stream 1."""

    def __init__(self, port, path="/ws", headers=(), tls_ctx=None, authority="localhost"):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_ctx is not None:
            sock = tls_ctx.wrap_socket(sock, server_hostname=authority)
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.status = None
        self.headers = {}
        self.data = b""
        self.ended = False
        self.reset = None
        while self.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) != 1:
            self._read()
        self.conn.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"),
                                   (":scheme", "https" if tls_ctx else "http"),
                                   (":path", path), (":authority", authority),
                                   ("sec-websocket-version", "13")] + list(headers))
        self.sock.sendall(self.conn.data_to_send())
        while self.status is None and not self.ended and self.reset is None:
            self._read()

    def _read(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        for e in self.conn.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived):
                self.headers = dict(e.headers)
                self.status = int(self.headers[":status"])
            elif isinstance(e, h2.events.DataReceived):
                self.data += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                self.ended = True
            elif isinstance(e, h2.events.StreamReset):
                self.reset = e.error_code
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def send(self, text):
        data = frame(text)
        while data:
            room = min(self.conn.local_flow_control_window(1), self.conn.max_outbound_frame_size)
            if room == 0:
                self._read()
                continue
            self.conn.send_data(1, data[:room])
            data = data[room:]
            self.sock.sendall(self.conn.data_to_send())

    def recv(self):
        while True:
            text, rest = unframe(self.data)
            if text is not None:
                self.data = rest
                return text
            self._read()

    def close(self):
        self.sock.close()


def h2c_config(echo_or_up, **kw):
    cfg = ws_config(echo_or_up, **kw)
    cfg["listeners"][0]["h2c"] = True
    return cfg


def test_echo_through_the_gate_over_http2(lab, echo):
    port = closed_port()
    key_file = os.path.join(lab.workdir, "session.key")
    key = configs.write_session_key(key_file)
    p = lab.proxy(h2c_config(echo, port=port, saml=saml_block(port, key_file)))
    t = now()
    cookie = "%s=%s" % (COOKIE, seal(key, "session", t, t + 3600, t, "alice",
                                     [("Email", "alice@example.com")]))
    s = Stream(port, headers=[("cookie", cookie), ("x-auth-email", "mallory@example.com")])
    while s.status != 200 and not s.ended:
        s._read()
    assert s.status == 200, (s.headers, s.data)
    assert "sec-websocket-accept" not in s.headers and "upgrade" not in s.headers
    for msg in ["hello", "x" * 200000, "after the big one"]:
        s.send(msg)
        assert s.recv() == msg
    s.send("headers?")
    seen = json.loads(s.recv())
    s.close()
    # the upstream got an HTTP/1.1 upgrade with a key we made up, and the
    # identity of the session, not the client's copy
    assert seen["Upgrade"] == "websocket" and seen["Sec-WebSocket-Version"] == "13"
    assert len(seen["Sec-WebSocket-Key"]) == 24
    assert seen["X-Auth-Email"] == "alice@example.com"
    assert COOKIE not in seen.get("Cookie", "")
    e = p.wait_access_log(lambda e: e.get("path") == "/ws")
    assert e["protocol"] == "HTTP/2.0" and e["status"] == 101
    p.wait_stderr(r"websocket \S+: .* ended \(closed\)")


def test_no_session_is_401_and_no_handshake(lab, echo):
    port = closed_port()
    key_file = os.path.join(lab.workdir, "session.key")
    configs.write_session_key(key_file)
    lab.proxy(h2c_config(echo, port=port, saml=saml_block(port, key_file)))
    s = Stream(port)
    assert s.status == 401
    while not s.ended and s.reset is None:
        s._read()
    s.close()
    assert echo.handshakes == []


@pytest.mark.parametrize("status", [426, 200])
def test_upstream_refusal_is_a_normal_response(lab, status):
    up = lab.upstream("app")
    p = lab.proxy(h2c_config(up))
    up.reset(handler=lambda req, conn: Fixed(status, (), b"plain")(req, conn))
    s = Stream(p.port)
    assert s.status == status
    while not s.ended:
        s._read()
    assert s.data == b"plain"
    s.close()
    got = up.snapshot()
    assert got[0].header("Upgrade") == "websocket" and got[0].header("Sec-WebSocket-Key")


def test_tunnel_over_tls_http2(lab, echo, tmp_path):
    cfg = ws_config(echo, listener={"tls": True})
    cfg["tls"] = {"certs_dir": os.path.join(str(tmp_path), "certs"),
                  "local_ca": {"names": ["ws.test"]}}
    p = lab.proxy(cfg)
    ctx = ssl.create_default_context(
        cafile=os.path.join(str(tmp_path), "certs", "local-ca", "ca.crt"))
    ctx.set_alpn_protocols(["h2"])
    s = Stream(p.port, tls_ctx=ctx, authority="ws.test")
    assert s.status == 200
    for msg in ["over tls", "y" * 100000]:
        s.send(msg)
        assert s.recv() == msg
    s.close()
    m = request(p.admin_port, "GET", "/metrics").text()
    assert "portcullis_websocket_tunnels_total 1" in m

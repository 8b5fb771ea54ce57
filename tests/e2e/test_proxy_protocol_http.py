"""PROXY protocol (v1 and v2) on an HTTP listener: the address in the header
becomes the client (X-Forwarded-For, X-Real-IP, access log, rules); a header
from an untrusted peer, a malformed one, or none at all gets nothing
forwarded."""

import socket
import struct

from configs import config, route
from harness import RawClient, build_request


def _proxy(lab, up):
    cfg = config({"up": up}, [{"name": "main", "routes": [route("all", "up")]}],
                 trusted_proxies=["127.0.0.1/32"])
    cfg["listeners"][0]["proxy_protocol"] = True
    return lab.proxy(cfg)


def _v2(src, dst, sport, dport):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) +
            body)


def _send(port, prefix, source=None, path="/pp"):
    with RawClient(port, source=source) as c:
        c.send_tolerant(prefix + build_request("GET", path, "main.test"))
        try:
            return c.read_response()
        except (EOFError, ConnectionResetError, OSError):
            return None


def test_v1_header_sets_the_client(lab):
    up = lab.upstream("up")
    p = _proxy(lab, up)
    resp = _send(p.port, b"PROXY TCP4 203.0.113.7 10.1.1.1 40000 80\r\n")
    assert resp is not None and resp.status == 200, resp
    req = up.snapshot()[-1]
    assert req.header("X-Forwarded-For") == "203.0.113.7"
    assert req.header("X-Real-IP") == "203.0.113.7"
    p.wait_access_log(lambda e: e.get("client") == "203.0.113.7")


def test_v2_header_sets_the_client(lab):
    up = lab.upstream("up")
    p = _proxy(lab, up)
    resp = _send(p.port, _v2("198.51.100.9", "10.1.1.1", 40001, 80))
    assert resp is not None and resp.status == 200, resp
    assert up.snapshot()[-1].header("X-Forwarded-For") == "198.51.100.9"


def test_untrusted_peer_malformed_or_missing_header_forwards_nothing(lab):
    up = lab.upstream("up")
    p = _proxy(lab, up)
    # From a peer that is not a trusted proxy, even a valid header is refused.
    assert _send(p.port, b"PROXY TCP4 203.0.113.7 10.1.1.1 40000 80\r\n",
                 source="127.0.0.2") is None
    # Malformed headers and plain requests without a header.
    for prefix in (b"PROXY TCP4 203.0.113.7 10.1.1.1 40000\r\n",
                   b"PROXY TCP9 a b c d\r\n", b""):
        assert _send(p.port, prefix) is None, prefix
    assert up.snapshot() == []

"""HTTP/2 abuse against the real binary (docs/http2.md, "What is refused"):
each attack ends in GOAWAY ENHANCE_YOUR_CALM or a closed connection, and the
upstream sees far less work than the client asked for.

  Rapid Reset (CVE-2023-44487)    HEADERS + RST_STREAM, over and over
  MadeYouReset (CVE-2025-8671)    frames that make the server reset streams
  HPACK bomb                      a small header block that decodes to 400 KB
  too many header fields          thousands of one-byte fields
  CONTINUATION flood              endless CONTINUATION frames
  PING / SETTINGS floods          control frames whose ACKs are never read
  too many concurrent streams     the 101st open stream is refused
"""

import os
import re
import socket
import struct
import time

import pytest

from configs import config, route
from harness import Slow, need, request

need("hyperframe", "python")
need("hpack", "python")

from h2client import (CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM,  # noqa: E402
                      HEADERS, PING, PROTOCOL_ERROR, REFUSED_STREAM, SETTINGS,
                      STREAM_CLOSED, H2Client, ConnectionClosed,
                      error_name, raw_frame)

HOST = "h2.test"
MAX_HEADER = 65536
CONCURRENT = 100        # SETTINGS_MAX_CONCURRENT_STREAMS
RESET_CAP = 200         # streams dispatched-then-cancelled before ENHANCE_YOUR_CALM ("about")


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.web = module_lab.upstream("web")
    e.dir = module_lab.workdir
    cfg = config({"web": e.web},
                 [{"name": "main", "hosts": [HOST], "default": True,
                   "routes": [route("web", "web")]}],
                 listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True}],
                 tls={"certs_dir": os.path.join(e.dir, "certs"), "local_ca": {"names": [HOST]},
                      "default_name": HOST},
                 limits={"max_request_header_bytes": MAX_HEADER})
    e.proxy = module_lab.proxy(cfg, name="h2abuse")
    e.port = e.proxy.ports["https"]
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    env.web.reset()
    yield
    # Whatever the attack did, a fresh connection is served.
    env.web.reset()
    with connect(env) as c:
        s = c.request("GET", "/still-serving", HOST)
        assert s.status == 200, "after the attack: %r; frames %s" % (s, c.frame_log())


def connect(env, **kw):
    return H2Client(env.port, tls=True, server_name=HOST, **kw)


def calmed(c, what):
    """Assert that <c> got GOAWAY ENHANCE_YOUR_CALM (reading until it closes)."""
    c.wait_closed(10)
    assert c.goaway is not None and c.goaway[0] == ENHANCE_YOUR_CALM, (
        "%s: expected GOAWAY ENHANCE_YOUR_CALM, got %s (closed: %s); frames %s" % (
            what, c.goaway and error_name(c.goaway[0]), c.closed, c.frame_log()))


def abuse_closes(env):
    """portcullis_http2_abuse_closes_total now (0 when absent)."""
    text = request(env.proxy.admin_port, "GET", "/metrics", host="127.0.0.1").text()
    m = re.search(r"^portcullis_http2_abuse_closes_total(?:\{\})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def settle_count(up, wait=1.0):
    """Requests the upstream received, once they stopped arriving."""
    n = -1
    while True:
        time.sleep(wait)
        m = len(up.snapshot())
        if m == n:
            return m
        n = m


@pytest.mark.parametrize("pace", ["back-to-back", "dispatched-first"])
def test_rapid_reset(env, pace):
    """Thousands of HEADERS + RST_STREAM: GOAWAY ENHANCE_YOUR_CALM, and at most
    about RESET_CAP streams dispatched and cancelled.  back-to-back: each
    RST_STREAM right behind its HEADERS (the CVE's pattern); dispatched-first:
    50 HEADERS, a pause that lets the proxy send them upstream, then their 50
    RST_STREAMs."""
    env.web.handler = Slow(0.5)
    closes = abuse_closes(env)
    sent = 0
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        for batch in range(60):
            heads, rsts = b"", b""
            for _ in range(50):
                sid = c.new_stream_id()
                hs = c.request_headers("GET", "/rapid/%d" % sid, HOST)
                head = raw_frame(HEADERS, END_STREAM | END_HEADERS, sid, c.encode(hs))
                rst = raw_frame(3, 0, sid, struct.pack(">I", 8))  # RST_STREAM CANCEL
                if pace == "back-to-back":
                    heads += head + rst
                else:
                    heads, rsts = heads + head, rsts + rst
            if not c.send(heads):
                break
            try:
                if rsts:
                    c.pump(0.05)
                    if not c.send(rsts):
                        break
                sent += 50
                c.pump(0.01)
            except ConnectionClosed:
                break
            if c.goaway:
                break
        calmed(c, "Rapid Reset (%s) after %d HEADERS+RST_STREAM" % (pace, sent))
    assert abuse_closes(env) == closes + 1, "portcullis_http2_abuse_closes_total did not count it"
    seen = settle_count(env.web)
    print("rapid reset (%s): %d HEADERS+RST_STREAM sent, %d reached the upstream" % (
        pace, sent, seen))
    assert seen <= RESET_CAP * 1.5, "the upstream got %d of %d cancelled requests" % (seen, sent)


def _made_you_reset(env, provoke, what):
    env.web.handler = Slow(5)
    closes = abuse_closes(env)
    sent = 0
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        # In batches of 40, reading the resets in between, so that the streams
        # the server reset are closed and the concurrency limit is not what ends it.
        for batch in range(75):
            out = b""
            for _ in range(40):
                sid = c.new_stream_id()
                out += provoke(c, sid)
            if not c.send(out):
                break
            sent += 40
            try:
                c.pump(0.05)
            except ConnectionClosed:
                break
            if c.goaway:
                break
        resets = sum(1 for f in c.frames if f[0] == "RSTSTREAM")
        calmed(c, "%s after %d provoked resets (%d RST_STREAM seen)" % (what, sent, resets))
    assert abuse_closes(env) == closes + 1, "portcullis_http2_abuse_closes_total did not count it"
    seen = settle_count(env.web)
    print("%s: %d provoked, %d RST_STREAM seen, %d reached the upstream" % (what, sent, resets,
                                                                            seen))
    assert seen <= RESET_CAP * 1.5, "%s: the upstream got %d of %d requests" % (what, seen, sent)


def _wu(sid, inc):
    return raw_frame(8, 0, sid, struct.pack(">I", inc))


# Frames after which the server must reset the stream (stream errors), while
# the request may already be on its way upstream.
PROVOKE = {
    "WINDOW_UPDATE overflow": lambda c, sid: (
        raw_frame(HEADERS, END_HEADERS, sid,
                  c.encode(c.request_headers("POST", "/myr/%d" % sid, HOST))) +
        _wu(sid, 0x7fffffff) + _wu(sid, 0x7fffffff)),
    "DATA beyond content-length": lambda c, sid: (
        raw_frame(HEADERS, END_HEADERS, sid,
                  c.encode(c.request_headers("POST", "/myr/%d" % sid, HOST,
                                             [("content-length", "1")]))) +
        raw_frame(DATA, 0, sid, b"xx")),
}


@pytest.mark.parametrize("vector", sorted(PROVOKE))
def test_made_you_reset(env, vector):
    _made_you_reset(env, PROVOKE[vector], vector)


def test_malformed_headers_flood(env):
    """Thousands of requests libnghttp2 resets itself (a forbidden header):
    nothing reaches the upstream, and the connection is calmed or closed
    before ten thousand resets."""
    sent = 0
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        for batch in range(100):
            out = b"".join(
                raw_frame(HEADERS, END_STREAM | END_HEADERS, sid,
                          c.encode(c.request_headers("GET", "/bad/%d" % sid, HOST,
                                                     [("connection", "x")])))
                for sid in [c.new_stream_id() for _ in range(100)])
            if not c.send(out):
                break
            sent += 100
            try:
                c.pump(0.01)
            except ConnectionClosed:
                break
            if c.goaway:
                break
        c.wait_closed(3)
        resets = sum(1 for f in c.frames if f[0] == "RSTSTREAM")
        print("malformed flood: %d sent, %d RST_STREAM, GOAWAY %s, closed %s" % (
            sent, resets, c.goaway and error_name(c.goaway[0]), c.closed))
        assert c.goaway is not None or c.closed, (
            "%d malformed requests answered with %d RST_STREAM, connection still open" % (
                sent, resets))
    assert settle_count(env.web, 0.3) == 0


def test_empty_data_frame_flood(env):
    """CVE-2019-9518: zero-length DATA frames without END_STREAM cost the
    server work and no flow control; the connection is calmed or closed."""
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        sid = c.new_stream_id()
        c.send_headers(sid, c.request_headers("POST", "/empty-data", HOST), end_stream=False)
        empty = raw_frame(DATA, 0, sid) * 1000
        sent = 0
        c.sock.settimeout(2)
        t0 = time.monotonic()
        while sent < 200000 and time.monotonic() - t0 < 15:
            if not c.send(empty):
                break
            sent += 1000
        closed = c.wait_closed(5)
        print("empty DATA flood: %d frames, GOAWAY %s, closed %s" % (
            sent, c.goaway and error_name(c.goaway[0]), closed))
        assert closed or c.goaway, "%d empty DATA frames: the connection is still open; " \
            "frames %s" % (sent, c.frame_log())


# Frames libnghttp2 answers with a connection error: the first one ends the
# connection, so they cannot be repeated into a reset flood.
ONE_SHOT = {
    "DATA on a half-closed stream": lambda c, sid: (
        raw_frame(HEADERS, END_STREAM | END_HEADERS, sid,
                  c.encode(c.request_headers("GET", "/myr-data/%d" % sid, HOST))) +
        raw_frame(DATA, 0, sid, b"x")),
    "zero WINDOW_UPDATE on a stream": lambda c, sid: (
        raw_frame(HEADERS, END_HEADERS, sid,
                  c.encode(c.request_headers("POST", "/myr/%d" % sid, HOST))) + _wu(sid, 0)),
}


@pytest.mark.parametrize("vector", sorted(ONE_SHOT))
def test_connection_error_ends_provocation_at_once(env, vector):
    env.web.handler = Slow(2)
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        c.send(b"".join(ONE_SHOT[vector](c, c.new_stream_id()) for _ in range(50)))
        assert c.wait_closed(10), "%s: still open; frames %s" % (vector, c.frame_log())
        assert c.goaway is not None and c.goaway[0] in (STREAM_CLOSED, PROTOCOL_ERROR,
                                                        ENHANCE_YOUR_CALM), c.frame_log()
        resets = sum(1 for f in c.frames if f[0] == "RSTSTREAM")
        assert resets <= 1, "%s: %d streams reset before the connection closed" % (vector,
                                                                                  resets)
    assert settle_count(env.web) <= 2


def test_hpack_bomb(env):
    """One 4 KiB field put in the dynamic table, then referenced 100 times
    per request: 2.6 KB on the wire, 400 KB of headers."""
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        value = b"b" * 4000
        # Literal with incremental indexing, new name: 0x40, name, value.
        insert = b"\x40" + hpack_str(b"x-bomb") + hpack_str(value)
        sid = c.new_stream_id()
        pseudo = c.encode(c.request_headers("GET", "/bomb", HOST))
        block = pseudo + insert + b"\xbe" * 100   # index 62: the newest dynamic entry
        # (the pseudo-headers' own entries are older: the bomb's is index 62)
        c.send(raw_frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
        c.wait_closed(10)
        assert c.goaway is not None and c.goaway[0] == ENHANCE_YOUR_CALM, (
            "HPACK bomb (%d bytes → %d KB): %s; frames %s" % (
                len(block), 101 * 4000 // 1000, c.goaway and error_name(c.goaway[0]),
                c.frame_log()))
    time.sleep(0.3)
    assert env.web.snapshot() == []


def hpack_str(b):
    """An HPACK string literal without Huffman coding."""
    n = len(b)
    if n < 127:
        return bytes([n]) + b
    out = bytearray([127])
    n -= 127
    while n >= 128:
        out.append((n & 0x7f) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + b


def test_too_many_header_fields(env):
    """10 000 fields of one byte each (an indexed 'accept: */*' is one byte)."""
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        sid = c.new_stream_id()
        pseudo = c.encode(c.request_headers("GET", "/fields", HOST))
        block = pseudo + b"\x93" * 10000      # static index 19: accept: (empty)
        c.send_headers(sid, None, block=block)
        c.wait_closed(10)
        assert c.goaway is not None and c.goaway[0] == ENHANCE_YOUR_CALM, (
            "10000 fields: %s; frames %s" % (c.goaway and error_name(c.goaway[0]),
                                             c.frame_log()))
    time.sleep(0.3)
    assert env.web.snapshot() == []


def test_continuation_flood(env):
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        sid = c.new_stream_id()
        c.send(raw_frame(HEADERS, END_STREAM, sid,
                         c.encode(c.request_headers("GET", "/cont", HOST))))
        piece = raw_frame(CONTINUATION, 0, sid, b"\x93" * 16)
        sent = 0
        for _ in range(100):
            if not c.send(piece * 100):
                break
            sent += 100
        assert c.wait_closed(10), "CONTINUATION flood (%d frames): still open; frames %s" % (
            sent, c.frame_log())
    time.sleep(0.3)
    assert env.web.snapshot() == []


@pytest.mark.parametrize("kind", ["PING", "SETTINGS"])
def test_control_frame_flood_closed(env, kind):
    """Control frames whose ACKs the client never reads: the connection is
    closed (bounded ACK queue) rather than buffering without end."""
    with connect(env) as c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        frame = (raw_frame(PING, 0, 0, b"flood123") if kind == "PING" else
                 raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)))
        c.sock.settimeout(2)
        sent = 0
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                c.sock.sendall(frame * 1000)
                sent += 1000
        except (socket.timeout, OSError):
            pass
        # Now read: the proxy must have closed (GOAWAY first, or not).
        c.auto_ack = False
        c.sock.settimeout(10)
        assert c.wait_closed(15), "%s flood of %d frames: the connection is still open; " \
            "frames %s" % (kind, sent, c.frame_log())


def test_concurrent_streams_over_limit_refused(env):
    env.web.handler = Slow(3)
    with connect(env) as c:
        c.wait(lambda: c.settings_acked and c.server_settings, what="SETTINGS exchange")
        assert c.server_settings.get(3) == CONCURRENT, c.server_settings  # MAX_CONCURRENT
        sids = [c.start("GET", "/conc/%d" % i, HOST) for i in range(CONCURRENT + 1)]
        extra = c.stream(sids[-1])
        c.wait(lambda: extra.done or c.goaway, what="the stream over the limit refused")
        # RFC 9113 5.1.2 allows either: libnghttp2 refuses the stream while
        # our SETTINGS are unacknowledged, and ends the connection
        # (PROTOCOL_ERROR) once a client that has acknowledged them goes past.
        assert extra.reset == REFUSED_STREAM or (c.goaway and c.goaway[0] == PROTOCOL_ERROR), (
            "stream %d (the %dth open): expected RST_STREAM REFUSED_STREAM or GOAWAY "
            "PROTOCOL_ERROR, got %r, GOAWAY %s; frames %s" % (
                extra.id, CONCURRENT + 1, extra, c.goaway and error_name(c.goaway[0]),
                c.frame_log()))
        if extra.reset == REFUSED_STREAM:
            for sid in sids[:CONCURRENT]:
                s = c.response(sid, timeout=30)
                assert s.status == 200, s
    time.sleep(4)  # the Slow(3) upstream answers what reached it
    # never more upstream work than the limit allows
    assert len(env.web.snapshot()) <= CONCURRENT

"""Adversarial edge cases of the client-side HTTP/1.1 server (src/http/conn.c, h1.c, request.c),
the upstream side (src/upstream.c) and the transaction glue (src/proxy.c):
pipelining, HTTP/1.0, Expect, slow and vanishing clients, header limits and
malformed heads, request smuggling, odd upstream responses, stale pooled
connections, back-pressure and draining.

Every test asserts the behaviour the contract (http/request.h, docs/config.md,
helpers' BEHAVIOUR) promises; a test that fails here names a proxy bug."""

import os
import select
import signal
import socket
import threading
import time
import uuid

import pytest

from configs import config, route
from harness import BigBody, RawClient, SSE, Slow, build_request, make_bytes, rss_kib, send_raw

HEADER_LIMIT = 4096
CLIENT_TIMEOUT = 1
SMALL_LIMIT = 1000


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    """One proxy with a 1 s client timeout and a 4 KiB head limit."""
    e = Env()
    e.web = module_lab.upstream("web")
    cfg = config(
        {"web": e.web},
        [
            {
                "name": "main",
                "hosts": ["main.test"],
                "default": True,
                "routes": [
                    route("small", "web", path=["/small"], max_body_bytes=SMALL_LIMIT),
                    route("web", "web"),
                ],
            },
            {
                "name": "strict",
                "hosts": ["strict.test"],
                "routes": [route("only", "web", path=["/only"])],
            },
        ],
        limits={"max_request_header_bytes": HEADER_LIMIT},
        timeouts={"client": CLIENT_TIMEOUT},
    )
    e.proxy = module_lab.proxy(cfg, name="srvedge")
    return e


@pytest.fixture(scope="module")
def big(module_lab):
    """A proxy with the default limits (64 KiB heads, 30 s client timeout)."""
    e = Env()
    e.web = module_lab.upstream("bigweb")
    cfg = config({"web": e.web},
                 [{"name": "main", "hosts": ["main.test"], "default": True,
                   "routes": [route("web", "web")]}])
    e.proxy = module_lab.proxy(cfg, name="srvbig")
    return e


@pytest.fixture(autouse=True)
def fresh(request, module_lab):
    for name in ("env", "big"):
        if name in request.fixturenames:
            request.getfixturevalue(name).web.reset()
    yield
    module_lab.assert_alive()


def new_id():
    return "srv-" + uuid.uuid4().hex[:16]


def seen(e, rid):
    return e.web.with_request_id(rid)


def get_req(rid, target="/echo", host="main.test", version="1.1", headers=(), extra=b""):
    lines = ["GET %s HTTP/%s" % (target, version)]
    if host is not None:
        lines.append("Host: " + host)
    lines.append("X-Request-ID: " + rid)
    for n, v in headers:
        lines.append("%s: %s" % (n, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + extra


def post_req(rid, body, target="/echo", host="main.test", headers=()):
    return build_request("POST", target, host, [("X-Request-ID", rid)] + list(headers), body)


def assert_closed(c, timeout=3.0, what="connection"):
    """The proxy closes the connection (after what was already read)."""
    c.sock.settimeout(timeout)
    try:
        data = c.sock.recv(65536)
    except socket.timeout:
        raise AssertionError("%s still open after %.1f s" % (what, timeout))
    except ConnectionResetError:
        return
    assert data == b"", "%s: unexpected bytes %r" % (what, data[:300])


def read_strict_response(c):
    """Read one complete, well-formed response (Content-Length framed)."""
    resp = c.read_head()
    cl = resp.header_all("Content-Length")
    if resp.status not in (204, 304):
        assert len(cl) == 1 or resp.header("Transfer-Encoding") == "chunked", \
            "response not framed: %r" % resp.head_bytes
    c.read_body(resp)
    return resp


def wait_closed_by_upstream_peer(conn, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.peer_closed():
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------ responders

class Raw:
    """Answer with exact bytes; <keep>: keep the connection afterwards."""

    def __init__(self, data, keep=True):
        self.data = data
        self.keep = keep

    def __call__(self, req, conn):
        conn.send(self.data)
        return self.keep


class WatchHangup:
    """Think for up to <limit> s; record whether the proxy closed on us."""

    def __init__(self, limit=6.0):
        self.limit = limit
        self.saw_close = threading.Event()
        self.started = threading.Event()

    def __call__(self, req, conn):
        self.started.set()
        if wait_closed_by_upstream_peer(conn, self.limit):
            self.saw_close.set()
            return False
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
        return True


class CloseAfterResponse:
    """Answer (keep-alive framing, no Connection: close), then close at once:
    the FIN leaves in the same segment as the response (TCP_CORK, then
    shutdown), so how fast this Python thread runs on a loaded machine cannot
    decide whether the proxy sees the close before it reuses the connection."""

    def __call__(self, req, conn):
        body = b"ok " + req.target.encode()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.sock.shutdown(socket.SHUT_WR)
        return False


class CloseWhenIdle:
    """Answer, then close the connection when no request follows within <idle> s."""

    def __init__(self, idle):
        self.idle = idle

    def __call__(self, req, conn):
        body = b"ok " + req.target.encode()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        if conn.buf:
            return True
        readable, _, _ = select.select([conn.sock], [], [], self.idle)
        return bool(readable)


# ------------------------------------------------------------ pipelining

def test_pipelined_three_gets_in_order(env):
    ids = [new_id() for _ in range(3)]
    with RawClient(env.proxy.port) as c:
        c.send(b"".join(get_req(rid, "/pipe/%d" % i) for i, rid in enumerate(ids)))
        for i, rid in enumerate(ids):
            resp = c.read_response()
            assert resp.status == 200, resp
            assert resp.header("X-Request-ID") == rid, "response %d out of order" % i
            assert resp.json()["target"] == "/pipe/%d" % i
            assert resp.header("Connection") is None
    for rid in ids:
        assert len(seen(env, rid)) == 1, "request %s reached the upstream %d times" % (
            rid, len(seen(env, rid)))


def test_pipelined_request_after_post_with_body(env):
    a, b = new_id(), new_id()
    body = b"x" * 300 + b"GET /not-a-request HTTP/1.1\r\n\r\n"
    with RawClient(env.proxy.port) as c:
        c.send(post_req(a, body) + get_req(b, "/after-post"))
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200 and r1.header("X-Request-ID") == a
    assert r2.status == 200 and r2.header("X-Request-ID") == b
    assert r2.json()["target"] == "/after-post"
    assert [r.body for r in seen(env, a)] == [body]
    assert len(seen(env, b)) == 1
    assert all(r.target != "/not-a-request" for r in env.web.snapshot())


def test_pipelined_after_refused_404_keeps_connection(env):
    a, b, d = new_id(), new_id(), new_id()
    with RawClient(env.proxy.port) as c:
        c.send(get_req(a, "/nope", host="strict.test") + get_req(b, "/only/x", host="strict.test")
               + get_req(d, "/nope2", host="strict.test"))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        assert (r1.status, r2.status, r3.status) == (404, 200, 404)
        assert r1.header("Connection") is None, "a 404 must not close the connection"
        # Still usable afterwards.
        r4 = c.request("GET", "/only/again", host="strict.test")
        assert r4.status == 200
    assert len(seen(env, b)) == 1 and seen(env, a) == [] and seen(env, d) == []


# ------------------------------------------------------------ HTTP/1.0

def test_http10_keepalive(env):
    a, b = new_id(), new_id()
    with RawClient(env.proxy.port) as c:
        c.send(get_req(a, "/ten/1", version="1.0", headers=[("Connection", "keep-alive")]))
        r1 = c.read_response()
        assert r1.status == 200
        assert (r1.header("Connection") or "").lower() == "keep-alive", r1.head_bytes
        c.send(get_req(b, "/ten/2", version="1.0", headers=[("Connection", "keep-alive")]))
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["target"] == "/ten/2"
        # Without keep-alive, HTTP/1.0 closes.
        c.send(get_req(new_id(), "/ten/3", version="1.0"))
        r3 = c.read_response()
        assert r3.status == 200 and (r3.header("Connection") or "").lower() == "close"
        assert_closed(c)


def test_http10_streamed_response_close_delimited(env):
    size = 300000
    env.web.reset(BigBody(size, chunked=True))
    with RawClient(env.proxy.port) as c:
        c.send(get_req(new_id(), "/stream10", version="1.0", headers=[("Connection", "keep-alive")]))
        resp = c.read_head()
        assert resp.header("Transfer-Encoding") is None, "chunked sent to an HTTP/1.0 client"
        assert resp.header("Content-Length") is None
        assert (resp.header("Connection") or "").lower() == "close"
        c.read_body(resp)
    assert resp.body == make_bytes(size)


def test_http10_without_host_default_site(env):
    rid = new_id()
    with RawClient(env.proxy.port) as c:
        c.send(get_req(rid, "/nohost", host=None, version="1.0"))
        resp = c.read_response()
    assert resp.status == 200, resp
    assert resp.json()["target"] == "/nohost"
    assert len(seen(env, rid)) == 1


# ------------------------------------------------------------ Expect

def test_expect_100_continue_accepted(env):
    rid = new_id()
    body = b"b" * 500
    head = build_request("POST", "/expect", "main.test",
                         [("X-Request-ID", rid), ("Expect", "100-continue"),
                          ("Content-Length", str(len(body)))], None)
    with RawClient(env.proxy.port) as c:
        c.send(head)
        interim = c._until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        c.send(body)
        resp = c.read_response()
    assert resp.status == 200
    assert [r.body for r in seen(env, rid)] == [body]
    assert not seen(env, rid)[0].has_header("Expect")


def test_expect_100_over_route_limit_413_without_continue(env):
    rid = new_id()
    head = build_request("POST", "/small/x", "main.test",
                         [("X-Request-ID", rid), ("Expect", "100-continue"),
                          ("Content-Length", str(SMALL_LIMIT + 1))], None)
    with RawClient(env.proxy.port) as c:
        c.send(head)
        first = c._until(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 413 "), "expected 413 first, got %r" % first[:100]
        c.buf = first + b"\r\n\r\n" + c.buf
        resp = read_strict_response(c)
        assert resp.status == 413
        assert (resp.header("Connection") or "").lower() == "close"
        assert_closed(c)
    assert seen(env, rid) == []


def test_expect_unknown_417(env):
    rid = new_id()
    resp = send_raw(env.proxy.port, build_request(
        "POST", "/expect", "main.test", [("X-Request-ID", rid), ("Expect", "something-else")],
        b"hello"))
    assert resp is not None and resp.status == 417, resp
    assert seen(env, rid) == []


# ------------------------------------------------------------ slow clients

def test_dribbled_head_408(env):
    data = get_req(new_id(), "/dribble", headers=[("X-Slow", "s" * 200)])
    with RawClient(env.proxy.port) as c:
        start = time.monotonic()
        got = b""
        c.sock.settimeout(0.2)
        for i in range(len(data)):
            try:
                c.sock.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                got += c.sock.recv(65536)
                if got.endswith(b"\n") and b"\r\n\r\n" in got:
                    break
            except socket.timeout:
                pass
            if time.monotonic() - start > 8:
                break
        elapsed = time.monotonic() - start
    assert got.startswith(b"HTTP/1.1 408 "), "dribbled head: got %r after %.1f s" % (got[:200],
                                                                                   elapsed)
    assert b"Connection: close" in got
    assert elapsed < 4, "408 after %.1f s with a 1 s client timeout" % elapsed


def test_idle_keepalive_closed_after_client_timeout(env):
    with RawClient(env.proxy.port) as c:
        assert c.request("GET", "/idle", host="main.test").status == 200
        assert not c.closed_by_peer(0.3), "closed long before the client timeout"
        start = time.monotonic()
        assert c.closed_by_peer(4), "idle keep-alive connection still open after 4.3 s"
        assert time.monotonic() - start < 3


def test_stalled_body_408(env):
    rid = new_id()
    with RawClient(env.proxy.port) as c:
        c.send(build_request("POST", "/stall", "main.test",
                             [("X-Request-ID", rid), ("Content-Length", "100")], None) + b"0123456789")
        start = time.monotonic()
        resp = read_strict_response(c)
        assert resp.status == 408, resp
        assert time.monotonic() - start < 4
        assert (resp.header("Connection") or "").lower() == "close"
        assert_closed(c)
    assert seen(env, rid) == []
    env.proxy.wait_access_log(lambda e: e.get("request_id") == rid and e["status"] == 408)


def test_slowloris_does_not_block_others(env):
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", env.proxy.port))
            s.sendall(b"GET /loris HTTP/1.1\r\nHost: main.test\r\n")
            socks.append(s)
        for i in range(10):
            for s in socks[:50]:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            start = time.monotonic()
            with RawClient(env.proxy.port, timeout=3) as c:
                resp = c.request("GET", "/normal/%d" % i, host="main.test")
            assert resp.status == 200
            assert time.monotonic() - start < 1, "a normal request took %.2f s" % (
                time.monotonic() - start)
        # Every slow connection is answered 408 (or closed) by the head deadline.
        deadline = time.monotonic() + 5
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = s.recv(4096)
            except socket.timeout:
                raise AssertionError("a slowloris connection is still open after the deadline")
            except ConnectionResetError:
                continue
            assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:100]
    finally:
        for s in socks:
            s.close()
    assert not any(r.target == "/loris" for r in env.web.snapshot())


# ------------------------------------------------------------ hang-ups

def test_client_hangup_cancels_upstream_499(env):
    watch = WatchHangup()
    env.web.reset(watch)
    rid = new_id()
    c = RawClient(env.proxy.port)
    c.send(get_req(rid, "/thinking"))
    assert watch.started.wait(5)
    c.close()
    assert watch.saw_close.wait(3), "the upstream connection was not closed after the client left"
    env.proxy.wait_access_log(lambda e: e.get("request_id") == rid and e["status"] == 499)


class LargeWatched:
    """Send <size> bytes (Content-Length) in pieces; note when the proxy
    closes the connection under us."""

    def __init__(self, size):
        self.size = size
        self.cut = threading.Event()

    def __call__(self, req, conn):
        piece = b"L" * 65536
        try:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size)
            for _ in range(self.size // len(piece)):
                conn.send(piece)
        except OSError:
            self.cut.set()
            return False
        return True


@pytest.mark.parametrize("round_", range(5))
def test_client_closes_midway_through_large_response(env, round_):
    """The client stops reading (the proxy waits to write), then closes with
    unread data (RST): the proxy notices on its write path."""
    large = LargeWatched(64 << 20)
    env.web.reset(large)
    rid = new_id()
    with RawClient(env.proxy.port) as c:
        c.send(get_req(rid, "/large"))
        resp = c.read_head()
        assert resp.status == 200
        c._exact(200000)
        time.sleep(0.3)
    # The proxy drops the upstream connection too and stays healthy.
    assert large.cut.wait(5), "the upstream kept sending after the client left"
    env.proxy.assert_alive()
    env.proxy.wait_access_log(lambda e: e.get("request_id") == rid)
    env.web.reset()
    assert send_raw(env.proxy.port, get_req(new_id(), "/after-large")).status == 200


def test_half_close_cancels_like_a_hangup(env):
    """Decided behaviour: a FIN from the client cannot be told apart from a
    full close, and DESIGN.md says a client that hangs up cancels its upstream
    request; so a client that shuts down its sending side while its request
    is in flight (nc -N) is treated as gone, like nginx's default: the
    upstream request is cancelled, the access log says 499, and nothing is
    written back.  (A reply already being written is finished.)"""
    watch = WatchHangup()
    env.web.reset(watch)
    rid = new_id()
    with RawClient(env.proxy.port) as c:
        c.send(get_req(rid, "/half"))
        assert watch.started.wait(5)
        c.sock.shutdown(socket.SHUT_WR)
        assert watch.saw_close.wait(3), "half-closed client: upstream request not cancelled"
        assert_closed(c, what="half-closed client's connection")
    env.proxy.wait_access_log(lambda e: e.get("request_id") == rid and e["status"] == 499)


def test_half_close_after_pipelined_requests_forwards_no_more(env):
    watch = WatchHangup()
    env.web.reset(watch)
    ids = [new_id() for _ in range(3)]
    with RawClient(env.proxy.port) as c:
        c.send(b"".join(get_req(rid, "/half-pipe") for rid in ids))
        assert watch.started.wait(5)
        c.sock.shutdown(socket.SHUT_WR)
        assert watch.saw_close.wait(3)
        assert_closed(c)
    time.sleep(0.3)
    assert [r.header("X-Request-ID") for r in env.web.snapshot()] == ids[:1]


# ------------------------------------------------------------ head limits

def head_of_size(size, method="GET", target="/limit", extra=""):
    """A request head whose request line + header lines (CRLFs included, the
    final blank line not) is exactly <size> bytes."""
    base = "%s %s HTTP/1.1\r\nHost: main.test\r\n%s" % (method, target, extra)
    pad_line_overhead = len("X-Pad: \r\n")
    n = size - len(base) - pad_line_overhead
    assert n >= 0
    head = base + "X-Pad: " + "p" * n + "\r\n"
    assert len(head) == size
    return head.encode() + b"\r\n"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_head_exactly_at_limit_passes(env, method):
    data = head_of_size(HEADER_LIMIT, method,
                        extra="Content-Length: 0\r\n" if method == "POST" else "")
    resp = send_raw(env.proxy.port, data)
    assert resp is not None and resp.status == 200, "%s head of exactly %d bytes: %r" % (
        method, HEADER_LIMIT, resp)


def test_head_one_over_limit_431(env):
    resp = send_raw(env.proxy.port, head_of_size(HEADER_LIMIT + 1))
    assert resp is not None and resp.status == 431, resp
    assert (resp.header("Connection") or "").lower() == "close"


def test_head_within_limit_sent_in_small_pieces_passes(env):
    """The count must not depend on how TCP splits the head."""
    name = "X-" + "n" * 120
    head = ("GET /pieces HTTP/1.1\r\nHost: main.test\r\n%s: v\r\n" % name).encode()
    pad = HEADER_LIMIT - 400 - len(head) - len("X-Pad: \r\n")
    head += b"X-Pad: " + b"p" * pad + b"\r\n\r\n"
    with RawClient(env.proxy.port) as c:
        cut = head.index(name.encode())
        c.send(head[:cut])
        # the name in 5-byte pieces (the whole head must arrive within the
        # 1 s client timeout, also on a loaded machine)
        for i in range(cut, cut + len(name), 5):
            c.send(head[i:min(i + 5, cut + len(name))])
            time.sleep(0.003)
        c.send(head[cut + len(name):])
        resp = read_strict_response(c)
    assert resp.status == 200, "a %d-byte head (limit %d) sent in pieces: %r" % (
        len(head), HEADER_LIMIT, resp)


def test_64k_request_line(big):
    target = "/" + "a" * (64 * 1024)
    resp = send_raw(big.proxy.port, b"GET %s HTTP/1.1\r\nHost: main.test\r\n\r\n" % target.encode())
    assert resp is not None and resp.status in (414, 431), resp
    assert (resp.header("Connection") or "").lower() == "close"
    assert big.web.snapshot() == []


def test_2000_small_headers(big):
    rid = new_id()
    headers = [("X-H%d" % i, "v%d" % i) for i in range(2000)]
    resp = send_raw(big.proxy.port, get_req(rid, "/many", headers=headers))
    assert resp is not None and resp.status == 200, resp
    (req,) = big.web.with_request_id(rid)
    assert [(n, v) for (n, v) in req.headers if n.startswith("X-H")] == headers


MALFORMED = {
    "space_in_name": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX Bad: 1\r\n\r\n",
    "at_in_name": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX@Bad: 1\r\n\r\n",
    "paren_in_name": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX(Bad): 1\r\n\r\n",
    "high_byte_in_name": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX\xffBad: 1\r\n\r\n",
    "empty_name": b"GET /m HTTP/1.1\r\nHost: main.test\r\n: 1\r\n\r\n",
    "nul_in_value": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX-Nul: a\x00b\r\n\r\n",
    "ctl_in_value": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX-Ctl: a\x01b\r\n\r\n",
    "obs_fold": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX-Fold: a\r\n b\r\n\r\n",
    "obs_fold_tab": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX-Fold: a\r\n\tb\r\n\r\n",
    "bare_cr_in_header": b"GET /m HTTP/1.1\r\nHost: main.test\r\nX-A: 1\rX-B: 2\r\n\r\n",
    "garbage_line": b"GET /m HTTP/1.1\r\nHost: main.test\r\nthis is not a header\r\n\r\n",
    "bad_version": b"GET /m HTTP/1.x\r\nHost: main.test\r\n\r\n",
    "http2_version": b"GET /m HTTP/2.0\r\nHost: main.test\r\n\r\n",
    "no_version": b"GET /m\r\nHost: main.test\r\n\r\n",
    "space_in_target": b"GET /m x HTTP/1.1\r\nHost: main.test\r\n\r\n",
    "te_and_cl": b"POST /m HTTP/1.1\r\nHost: main.test\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad_chunk_size": b"POST /m HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nhello\r\n0\r\n\r\n",
    "bad_content_length": b"POST /m HTTP/1.1\r\nHost: main.test\r\nContent-Length: 5x\r\n\r\nhello",
    "no_host_11": b"GET /m HTTP/1.1\r\nX-A: 1\r\n\r\n",
    "bad_host": b"GET /m HTTP/1.1\r\nHost: a b\r\n\r\n",
    "binary_garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request_400_with_close(env, case):
    """Every malformed request gets a well-formed 4xx/505 with Connection:
    close, then the connection closes, and nothing reaches the upstream."""
    with RawClient(env.proxy.port) as c:
        c.send_tolerant(MALFORMED[case] + get_req(new_id(), "/after-malformed"))
        try:
            resp = read_strict_response(c)
        except (EOFError, ConnectionResetError):
            raise AssertionError("%s: closed without an answer" % case)
        assert resp.status in (400, 505), "%s: got %r" % (case, resp)
        assert (resp.header("Connection") or "").lower() == "close", "%s: %r" % (
            case, resp.head_bytes)
        assert int(resp.header("Content-Length")) == len(resp.body)
        assert_closed(c, what=case)
    assert env.web.snapshot() == [], "%s reached the upstream: %r" % (case, env.web.snapshot())


def test_bare_lf_line_endings_parsed_consistently(env):
    """RFC 9112 2.2 lets a recipient accept a bare LF as a line end; then the
    upstream must get one clean, CRLF-framed request with the same headers."""
    rid = new_id()
    raw = ("GET /lf HTTP/1.1\nHost: main.test\nX-Request-ID: %s\nX-Lf: yes\n\n" % rid).encode()
    resp = send_raw(env.proxy.port, raw)
    assert resp is not None and resp.status in (200, 400), resp
    if resp.status == 200:
        (req,) = seen(env, rid)
        assert req.header("X-Lf") == "yes" and req.path == "/lf"
    else:
        assert seen(env, rid) == []


# ------------------------------------------------------------ bodies

def test_te_and_cl_400_upstream_sees_nothing(env):
    rid = new_id()
    raw = (b"POST /tecl HTTP/1.1\r\nHost: main.test\r\nX-Request-ID: " + rid.encode() +
           b"\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX")
    resp = send_raw(env.proxy.port, raw)
    assert resp is not None and resp.status == 400, resp
    assert env.web.snapshot() == []


def test_chunked_with_extensions_and_trailers(env):
    """Chunk extensions are ignored; trailers are dropped, never merged into
    the forwarded headers (RFC 9110 6.5.1), and the body goes up de-chunked."""
    rid = new_id()
    raw = (b"POST /trailers HTTP/1.1\r\nHost: main.test\r\nX-Request-ID: " + rid.encode() +
           b"\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value;other\r\nhello\r\n6;x=\"q\"\r\n world\r\n0;last=1\r\n"
           b"X-Trailer-One: injected\r\nX-Forwarded-User: admin\r\nX-Trailer-Last: z\r\n\r\n")
    resp = send_raw(env.proxy.port, raw)
    assert resp is not None and resp.status == 200, resp
    (req,) = seen(env, rid)
    assert req.body == b"hello world"
    assert req.framing == "content-length" and req.header("Content-Length") == "11"
    leaked = [n for n in req.header_names() if n.startswith("x-trailer") or n == "x-forwarded-user"]
    assert leaked == [], "trailer fields forwarded as request headers: %r" % leaked


def test_chunked_body_over_route_limit_413(env):
    rid = new_id()
    chunks = b"".join(b"%x\r\n%s\r\n" % (300, b"c" * 300) for _ in range(4)) + b"0\r\n\r\n"
    raw = (b"POST /small/chunked HTTP/1.1\r\nHost: main.test\r\nX-Request-ID: " + rid.encode() +
           b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    resp = send_raw(env.proxy.port, raw)
    assert resp is not None and resp.status == 413, resp
    assert (resp.header("Connection") or "").lower() == "close"
    assert env.web.snapshot() == []


def test_body_with_extra_bytes_is_next_request(env):
    a, b = new_id(), new_id()
    with RawClient(env.proxy.port) as c:
        c.send(post_req(a, b"hello") + get_req(b, "/next"))
        r1, r2 = c.read_response(), c.read_response()
    assert r1.status == 200 and r2.status == 200
    assert [r.body for r in seen(env, a)] == [b"hello"]
    assert [r.target for r in seen(env, b)] == ["/next"]


def test_body_with_extra_garbage_400_after_first(env):
    a = new_id()
    with RawClient(env.proxy.port) as c:
        c.send(post_req(a, b"hello") + b"garbage\x00\r\n\r\n")
        r1 = c.read_response()
        assert r1.status == 200
        r2 = read_strict_response(c)
        assert r2.status == 400 and (r2.header("Connection") or "").lower() == "close"
        assert_closed(c)
    assert [r.body for r in seen(env, a)] == [b"hello"]
    assert len(env.web.snapshot()) == 1


# ------------------------------------------------------------ smuggling

def test_pipelined_post_then_get_admin(env):
    a = new_id()
    raw = (b"POST /form HTTP/1.1\r\nHost: main.test\r\nX-Request-ID: " + a.encode() +
           b"\r\nContent-Length: 5\r\n\r\nhelloGET /admin HTTP/1.1\r\nHost: main.test\r\n"
           b"X-Request-ID: smuggled-admin\r\n\r\n")
    with RawClient(env.proxy.port) as c:
        c.send(raw)
        r1, r2 = c.read_response(), c.read_response()
    assert r1.status == 200 and r2.status == 200
    (post,) = seen(env, a)
    assert post.method == "POST" and post.body == b"hello" and post.target == "/form"
    (adm,) = env.web.with_request_id("smuggled-admin")
    assert adm.method == "GET" and adm.target == "/admin" and adm.body == b""
    assert len(env.web.snapshot()) == 2


CLASSICS = {
    "cl_te": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nContent-Length: 13\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED",
    "te_cl": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "te_te_second_bogus": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n"
                          b"Transfer-Encoding: x\r\n\r\n0\r\n\r\n",
    "te_te_first_bogus": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_list": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
               b"0\r\n\r\n",
    "te_uppercase_trailing_junk": b"POST /smug HTTP/1.1\r\nHost: main.test\r\n"
                                  b"Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n",
    "te_vertical_tab": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding:\x0bchunked\r\n\r\n"
                       b"0\r\n\r\n",
    "te_folded": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "te_on_host_fold": b"POST /smug HTTP/1.1\r\nHost: main.test\r\n Transfer-Encoding: chunked\r\n"
                       b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "cl_cl_same": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nContent-Length: 5\r\n"
                  b"Content-Length: 5\r\n\r\nhello",
    "cl_comma_list": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nContent-Length: 5, 5\r\n\r\nhello",
    "cl_space_inside": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nContent-Length: 1 0\r\n\r\nhello",
    "chunk_size_overflow": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"ffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
    "chunk_size_bare_cr": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\rXhello\r\n0\r\n\r\n",
    "chunk_missing_crlf": b"POST /smug HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhelloXX0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(CLASSICS))
def test_smuggling_classics_400(env, case):
    with RawClient(env.proxy.port) as c:
        c.send_tolerant(CLASSICS[case] + get_req(new_id(), "/smuggled-follow-up"))
        try:
            resp = read_strict_response(c)
        except (EOFError, ConnectionResetError):
            raise AssertionError("%s: closed without an answer" % case)
        assert resp.status == 400, "%s: %r" % (case, resp)
        assert (resp.header("Connection") or "").lower() == "close"
        assert_closed(c, what=case)
    assert env.web.snapshot() == [], "%s reached the upstream: %r" % (case, env.web.snapshot())


# ------------------------------------------------------------ upstream side

def test_upstream_cl_and_te_502(env):
    env.web.reset(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\n\r\n"))
    resp = send_raw(env.proxy.port, get_req(new_id(), "/both"))
    assert resp is not None and resp.status == 502, resp


def test_upstream_invalid_chunk_size_cut(env):
    env.web.reset(Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n", keep=False))
    with RawClient(env.proxy.port) as c:
        c.send(get_req(new_id(), "/badchunk"))
        resp = c.read_head()
        assert resp.status == 200
        with pytest.raises((EOFError, ConnectionResetError, AssertionError, ValueError)):
            c.read_body(resp)  # no clean end of the chunked body
        assert resp.chunks in ([], [b"hello"])


def test_upstream_103_early_hints_skipped(env):
    env.web.reset(Raw(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                      b"HTTP/1.1 100 Continue\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: 1\r\n\r\nfinal"))
    with RawClient(env.proxy.port) as c:
        c.send(get_req(new_id(), "/hints"))
        head = c._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        c.buf = head + b"\r\n\r\n" + c.buf
        resp = c.read_response()
        assert resp.body == b"final" and resp.header("X-Final") == "1"
        assert not resp.has_header("Link")
        assert c.request("GET", "/after-hints", host="main.test").status == 200


@pytest.mark.parametrize("status,extra", [
    (204, b""),
    (304, b""),
    (304, b"Content-Length: 1234\r\n"),     # RFC 9110 8.6: allowed, describes the GET
    (304, b"Transfer-Encoding: chunked\r\n"),
], ids=["204", "304", "304-content-length", "304-chunked"])
def test_upstream_bodyless_status(env, status, extra):
    env.web.reset(Raw(b"HTTP/1.1 %d X\r\nETag: \"e\"\r\n%s\r\n" % (status, extra)))
    with RawClient(env.proxy.port, timeout=5) as c:
        start = time.monotonic()
        r1 = c.request("GET", "/nobody", host="main.test")
        assert r1.status == status and r1.body == b""
        env.web.reset()
        r2 = c.request("GET", "/after-nobody", host="main.test")
        assert r2.status == 200, r2
        assert time.monotonic() - start < 2, "the next request on the connection waited %.1f s" % (
            time.monotonic() - start)
        assert c.buf == b""


def test_upstream_head_response_with_length(env):
    env.web.reset(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n"))
    with RawClient(env.proxy.port) as c:
        r1 = c.request("HEAD", "/head", host="main.test")
        assert r1.status == 200 and r1.header("Content-Length") == "12345"
        first_conn = env.web.snapshot()[-1].conn_id
        env.web.reset()
        r2 = c.request("GET", "/after-head", host="main.test")
        assert r2.status == 200 and r2.json()["target"] == "/after-head"
    # The pooled upstream connection was reused for the GET (it is in step).
    assert env.web.snapshot()[-1].conn_id == first_conn


def test_upstream_close_delimited_http10(env):
    body = make_bytes(200000)
    env.web.reset(Raw(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body,
                      keep=False))
    with RawClient(env.proxy.port) as c:
        r1 = c.request("GET", "/closedelim", host="main.test")
        assert r1.status == 200 and r1.body == body
        env.web.reset()
        assert c.request("GET", "/after-closedelim", host="main.test").status == 200


def test_upstream_extra_bytes_do_not_poison_next(env):
    env.web.reset(Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"))
    with RawClient(env.proxy.port) as c:
        r1 = c.request("GET", "/extra", host="main.test")
        assert r1.body == b"first"
        env.web.reset()
        for i in range(5):
            r = c.request("GET", "/clean/%d" % i, host="main.test")
            assert r.status == 200 and r.body != b"POISON", r
            assert r.json()["target"] == "/clean/%d" % i


def sequential(port, method, n, sleeps):
    statuses = []
    with RawClient(port) as c:
        for i in range(n):
            body = b"p%d" % i if method == "POST" else None
            c.send(build_request(method, "/seq/%d" % i, "main.test", [], body))
            resp = c.read_response()
            statuses.append(resp.status)
            assert resp.status != 200 or resp.body == b"ok /seq/%d" % i, resp
            time.sleep(sleeps[i % len(sleeps)])
    return statuses


SLEEPS = [0, 0.001, 0.005, 0.02, 0.05, 0.09, 0.1, 0.11, 0.15]


@pytest.mark.parametrize("closer", ["after-each", "idle-100ms"])
def test_upstream_closing_keepalive_gets_never_502(env, closer):
    env.web.reset(CloseAfterResponse() if closer == "after-each" else CloseWhenIdle(0.1))
    statuses = sequential(env.proxy.port, "GET", 200, SLEEPS)
    bad = [s for s in statuses if s != 200]
    assert bad == [], "%d of 200 GETs failed: %r" % (len(bad), sorted(set(bad)))


@pytest.mark.parametrize("closer", ["after-each", "idle-100ms"])
def test_upstream_closing_keepalive_posts_never_502(env, closer):
    """A POST sent on a pooled connection the upstream closes at the same
    moment is not retried (it may have been processed).  Strict: no client
    should see a 502 caused by the proxy's own pooling; and no POST may be
    delivered twice."""
    env.web.reset(CloseAfterResponse() if closer == "after-each" else CloseWhenIdle(0.1))
    statuses = sequential(env.proxy.port, "POST", 200, SLEEPS)
    targets = [r.target for r in env.web.snapshot()]
    assert len(targets) == len(set(targets)), "a POST reached the upstream twice"
    bad = [s for s in statuses if s != 200]
    assert set(bad) <= {502}
    if closer == "after-each":
        assert bad == [], "%d of 200 POSTs failed: %r" % (len(bad), sorted(set(bad)))
    else:
        # An upstream closing an idle connection in the very instant a POST is
        # written to it cannot be told from one that crashed while processing
        # it: such a POST is not retried (HTTP/1.1 gives no way to know; nginx
        # and Go behave the same).  The proxy checks an idle connection before
        # reusing it, so this stays rare even with sleeps aimed at the 100 ms
        # boundary; docs/config.md says to keep upstream_idle below the
        # upstream's own keep-alive timeout, which removes it.  Measured with
        # both CPUs busy: 0 to 5 of 200 (the same before and after the CPU
        # work of session 7); without the check, every POST after a sleep of
        # 0.1 s or more would fail (a third of them, ~67).
        assert len(bad) <= 10, "%d of 200 POSTs failed: %r" % (len(bad), sorted(set(bad)))


# ------------------------------------------------------------ timeouts on the upstream side

def test_paused_response_not_cut_by_upstream_response_timeout(lab):
    """upstream_response runs until the response headers (docs/config.md);
    a client that stops reading for a while (back-pressure pauses the
    upstream) must still get the whole body."""
    web = lab.upstream("web")
    size = 12 << 20
    web.reset(BigBody(size))
    proxy = lab.proxy(config({"web": (web, {"response_timeout": 1})},
                             [{"name": "m", "default": True, "routes": [route("web", "web")]}],
                             timeouts={"client": 30}))
    with RawClient(proxy.port, timeout=15) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(get_req(new_id(), "/paused"))
        resp = c.read_head()
        first = c._exact(100000)
        time.sleep(3)  # stop reading: the proxy's backlog fills, it pauses the upstream
        rest = c._exact(size - 100000)
        assert first + rest == make_bytes(size)


def test_idle_sse_not_cut_by_upstream_response_timeout(lab):
    web = lab.upstream("web")
    sse = SSE([b"data: one\n\n", 2.5, b"data: two\n\n"])
    web.reset(sse)
    proxy = lab.proxy(config({"web": (web, {"response_timeout": 1})},
                             [{"name": "m", "default": True, "routes": [route("web", "web")]}],
                             timeouts={"client": 30}))
    with RawClient(proxy.port) as c:
        c.send(get_req(new_id(), "/events"))
        resp = c.read_head()
        assert resp.status == 200
        assert c.read_chunk(resp) == b"data: one\n\n"
        try:
            second = c.read_chunk(resp)
        except (EOFError, ConnectionResetError):
            second = None
        assert second == b"data: two\n\n", "idle SSE stream cut after response_timeout"


# ------------------------------------------------------------ back-pressure

def test_slow_reader_memory_bounded(lab):
    web = lab.upstream("web")
    size = 50 << 20
    web.reset(BigBody(size))
    # ASan keeps freed memory in quarantine; keep it small so RSS means something.
    asan = os.environ.get("ASAN_OPTIONS", "")
    proxy = lab.proxy(config({"web": web},
                             [{"name": "m", "default": True, "routes": [route("web", "web")]}],
                             workers=1),
                      env={"ASAN_OPTIONS": (asan + ":" if asan else "") +
                           "quarantine_size_mb=4:detect_leaks=1"})
    assert send_raw(proxy.port, get_req(new_id(), "/warm")).status == 200
    web.reset(BigBody(size))
    base = rss_kib(proxy.pid)
    peak = base
    with RawClient(proxy.port, timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(get_req(new_id(), "/big"))
        resp = c.read_head()
        got = len(c.buf)
        c.buf = b""
        h_expected = make_bytes(size)
        received = []
        while got < size:
            data = c.sock.recv(min(262144, size - got))
            if not data:
                break
            received.append(data)
            got += len(data)
            if len(received) % 8 == 0:
                time.sleep(0.01)
                peak = max(peak, rss_kib(proxy.pid))
        assert got == size
    assert resp.status == 200
    assert b"".join(received)[-1000:] == h_expected[-1000:]
    grow = (peak - base) / 1024.0
    assert grow < 20, "proxy RSS grew by %.1f MiB while a slow client read 50 MiB" % grow


# ------------------------------------------------------------ drain

def drain_proxy(lab, web, **top):
    cfg = config({"web": web}, [{"name": "m", "default": True, "routes": [route("web", "web")]}],
                 timeouts={"drain": 10}, **top)
    return lab.proxy(cfg)


def test_sigterm_closes_idle_keepalive_promptly(lab):
    web = lab.upstream("web")
    proxy = drain_proxy(lab, web)
    clients = [RawClient(proxy.port) for _ in range(5)]
    try:
        for c in clients:
            assert c.request("GET", "/idle-before-term").status == 200
        start = time.monotonic()
        proxy.signal(signal.SIGTERM)
        for c in clients:
            assert c.closed_by_peer(2), "idle keep-alive connection not closed on SIGTERM"
        code = proxy.wait_exit(5)
        assert code == 0, "exit code %r %.1f s after SIGTERM" % (code, time.monotonic() - start)
        assert time.monotonic() - start < 3
    finally:
        for c in clients:
            c.close()


def test_sigterm_during_pipelined_batch(lab):
    web = lab.upstream("web")
    web.reset(Slow(0.5))
    proxy = drain_proxy(lab, web)
    ids = [new_id() for _ in range(3)]
    with RawClient(proxy.port) as c:
        c.send(b"".join(get_req(rid, "/batch") for rid in ids))
        web.wait_for_count(1)
        start = time.monotonic()
        proxy.signal(signal.SIGTERM)
        got = []
        while True:
            try:
                resp = c.read_response()
            except (EOFError, ConnectionResetError):
                break
            assert resp.status == 200, resp
            got.append(resp.header("X-Request-ID"))
            if (resp.header("Connection") or "").lower() == "close":
                assert_closed(c)
                break
        assert got == ids[:len(got)] and len(got) >= 1, got
        code = proxy.wait_exit(5)
        assert code == 0 and time.monotonic() - start < 4
    # Requests that got no answer never reached the upstream.
    answered = set(got)
    for rid in ids:
        if rid not in answered:
            assert web.with_request_id(rid) == [], "unanswered %s was forwarded" % rid


def test_server_still_healthy(env, big):
    for e in (env, big):
        assert send_raw(e.proxy.port, get_req(new_id(), "/final")).status == 200

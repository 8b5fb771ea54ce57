"""Streaming responses: Server-Sent Events through /livestream, idle streams
past the client timeout, large bodies, clients that hang up mid-stream."""

import re
import threading

import pytest

from configs import config, route
from harness import SSE, BigBody, RawClient, build_request, make_bytes, request, wait_until

HOST = "posthog.test"


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.live = module_lab.upstream("livestream")
    e.web = module_lab.upstream("web")
    e.ups = {"livestream": e.live, "web": e.web}
    cfg = config(
        {"livestream": (e.live, {"response_timeout": 3600}), "web": e.web},
        [{"name": "posthog", "hosts": [HOST], "default": True, "routes": [
            route("livestream", "livestream", path=["/livestream"], strip_prefix="/livestream"),
            route("web", "web"),
        ]}],
        timeouts={"client": 1},
    )
    e.proxy = module_lab.proxy(cfg, name="streaming")
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    for up in env.ups.values():
        up.reset()
    yield


class StreamReader:
    """Reads a streamed response body piece by piece, whatever its framing."""

    def __init__(self, client, resp):
        self.client = client
        self.resp = resp
        self.data = b""
        self.ended = False
        te = (resp.header("Transfer-Encoding") or "").lower()
        self.chunked = te == "chunked"
        assert self.chunked or resp.header("Content-Length") is None, \
            "a stream must not have a Content-Length: %r" % resp.headers

    def more(self):
        if self.chunked:
            piece = self.client.read_chunk(self.resp)
            if piece is None:
                self.ended = True
                return False
            self.data += piece
            return True
        if self.client.buf:
            self.data += self.client.buf
            self.client.buf = b""
            return True
        piece = self.client.sock.recv(65536)
        if not piece:
            self.ended = True
            return False
        self.data += piece
        return True

    def until(self, needle):
        while needle not in self.data:
            if not self.more():
                raise AssertionError("stream ended before %r; got %r" % (needle, self.data))

    def to_end(self):
        while self.more():
            pass


def open_stream(env, target="/livestream/events"):
    c = RawClient(env.proxy.port, timeout=15)
    c.send(build_request("GET", target, host=HOST,
                         headers=[("Accept", "text/event-stream"),
                                  ("Authorization", "Bearer jwt.jwt.jwt")]))
    resp = c.read_head()
    assert resp.status == 200, resp
    assert (resp.header("Content-Type") or "").startswith("text/event-stream")
    return c, resp


def test_sse_event_arrives_while_upstream_holds_stream(env):
    release = threading.Event()
    sse = SSE([b"event: x\ndata: 1\n\n", release, b"event: x\ndata: 2\n\n"])
    env.live.handler = sse
    c, resp = open_stream(env)
    with c:
        reader = StreamReader(c, resp)
        reader.until(b"data: 1\n\n")
        # The upstream is still waiting for us: it has sent event 1 only.
        assert sse.sent == [b"event: x\ndata: 1\n\n"]
        assert not sse.finished.is_set()
        release.set()
        reader.until(b"data: 2\n\n")
        reader.to_end()
        assert reader.data == b"event: x\ndata: 1\n\nevent: x\ndata: 2\n\n"
    req = env.live.wait_for_count(1)[0]
    assert req.target == "/events"
    assert req.header_all("Authorization") == ["Bearer jwt.jwt.jwt"]


def test_idle_stream_longer_than_client_timeout_not_cut(env):
    sse = SSE([b"data: first\n\n", 3.0, b"data: second\n\n"])
    env.live.handler = sse
    c, resp = open_stream(env)
    with c:
        reader = StreamReader(c, resp)
        reader.until(b"data: first\n\n")
        reader.to_end()
        assert reader.data == b"data: first\n\ndata: second\n\n", \
            "a stream idle for 3 s (client timeout 1 s) was cut: got %r" % reader.data
    assert sse.finished.wait(5) and not sse.peer_closed.is_set()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_one_mib_response_intact(env, chunked):
    env.web.handler = BigBody(1 << 20, chunked=chunked, seed=b"mib")
    resp = request(env.proxy.port, "GET", "/big", host=HOST)
    assert resp.status == 200
    assert len(resp.body) == 1 << 20
    assert resp.body == make_bytes(1 << 20, seed=b"mib")
    if not chunked:
        assert resp.header_all("Content-Length") == [str(1 << 20)]


def in_flight(env):
    text = request(env.proxy.admin_port, "GET", "/metrics", host="127.0.0.1").text()
    m = re.search(r"^portcullis_requests_in_flight(?:\{\})? (\S+)$", text, re.M)
    assert m, "portcullis_requests_in_flight missing from /metrics"
    return float(m.group(1))


def test_client_disconnect_mid_stream_closes_upstream(env):
    sse = SSE([b"data: 1\n\n", "until_closed"])
    env.live.handler = sse
    c, resp = open_stream(env)
    reader = StreamReader(c, resp)
    reader.until(b"data: 1\n\n")
    c.close()
    assert sse.peer_closed.wait(15), \
        "the client hung up but the proxy kept the upstream stream open"
    wait_until(lambda: in_flight(env) == 0, what="requests_in_flight back to 0")
    # The proxy keeps serving.
    for i in range(3):
        resp = request(env.proxy.port, "GET", "/api/after-%d" % i, host=HOST)
        assert resp.status == 200 and resp.json()["target"] == "/api/after-%d" % i
    env.live.handler = SSE([b"data: again\n\n"])
    c3, resp3 = open_stream(env)
    with c3:
        reader = StreamReader(c3, resp3)
        reader.to_end()
        assert reader.data == b"data: again\n\n"


def test_many_streams_in_parallel(env):
    release = threading.Event()
    env.live.handler = SSE([b"data: 1\n\n", release, b"data: 2\n\n"])
    streams = [open_stream(env) for _ in range(20)]
    try:
        readers = [StreamReader(c, r) for (c, r) in streams]
        for r in readers:
            r.until(b"data: 1\n\n")
        release.set()
        for r in readers:
            r.to_end()
            assert r.data == b"data: 1\n\ndata: 2\n\n"
    finally:
        for c, _ in streams:
            c.close()

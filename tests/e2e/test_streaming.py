"""Streaming responses: Server-Sent Events through /livestream, idle streams
past the client timeout, large bodies, clients that hang up mid-stream.

Every case runs over HTTP/1.1 and HTTP/2 (the `client` fixture; h2c on the
same listener): over HTTP/2 a stream, not the connection, carries the events."""

import re
import threading

import pytest

from configs import config, route
from harness import SSE, BigBody, make_bytes, request, wait_until

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
    cfg["listeners"][0]["h2c"] = True      # the `client` fixture's HTTP/2
    e.proxy = module_lab.proxy(cfg, name="streaming")
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    for up in env.ups.values():
        up.reset()
    yield


def open_stream(env, client, target="/livestream/events"):
    """A streamed response (clients.Http1Stream / Http2Stream): until(),
    to_end(), data, close()."""
    st = client.stream(env.proxy.port, "GET", target, host=HOST,
                       headers=[("Accept", "text/event-stream"),
                                ("Authorization", "Bearer jwt.jwt.jwt")])
    assert st.status == 200, (st.status, st.data)
    assert (st.header("Content-Type") or "").startswith("text/event-stream")
    assert st.header("Content-Length") is None, "a stream must not have a Content-Length"
    return st


def test_sse_event_arrives_while_upstream_holds_stream(env, client):
    release = threading.Event()
    sse = SSE([b"event: x\ndata: 1\n\n", release, b"event: x\ndata: 2\n\n"])
    env.live.handler = sse
    with open_stream(env, client) as reader:
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


def test_idle_stream_longer_than_client_timeout_not_cut(env, client):
    sse = SSE([b"data: first\n\n", 3.0, b"data: second\n\n"])
    env.live.handler = sse
    with open_stream(env, client) as reader:
        reader.until(b"data: first\n\n")
        reader.to_end()
        assert reader.data == b"data: first\n\ndata: second\n\n", \
            "a stream idle for 3 s (client timeout 1 s) was cut: got %r" % reader.data
    assert sse.finished.wait(5) and not sse.peer_closed.is_set()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_one_mib_response_intact(env, chunked, client):
    env.web.handler = BigBody(1 << 20, chunked=chunked, seed=b"mib")
    resp = client.request(env.proxy.port, "GET", "/big", host=HOST)
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


def test_client_disconnect_mid_stream_closes_upstream(env, client):
    sse = SSE([b"data: 1\n\n", "until_closed"])
    env.live.handler = sse
    reader = open_stream(env, client)
    reader.until(b"data: 1\n\n")
    reader.close()
    assert sse.peer_closed.wait(15), \
        "the client hung up but the proxy kept the upstream stream open"
    wait_until(lambda: in_flight(env) == 0, what="requests_in_flight back to 0")
    # The proxy keeps serving.
    for i in range(3):
        resp = client.request(env.proxy.port, "GET", "/api/after-%d" % i, host=HOST)
        assert resp.status == 200 and resp.json()["target"] == "/api/after-%d" % i
    env.live.handler = SSE([b"data: again\n\n"])
    with open_stream(env, client) as reader:
        reader.to_end()
        assert reader.data == b"data: again\n\n"


def test_many_streams_in_parallel(env, client):
    release = threading.Event()
    env.live.handler = SSE([b"data: 1\n\n", release, b"data: 2\n\n"])
    readers = [open_stream(env, client) for _ in range(20)]
    try:
        for r in readers:
            r.until(b"data: 1\n\n")
        release.set()
        for r in readers:
            r.to_end()
            assert r.data == b"data: 1\n\ndata: 2\n\n"
    finally:
        for r in readers:
            r.close()

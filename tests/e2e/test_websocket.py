"""WebSocket through the gate (RFC 6455 over HTTP/1.1): python3-websockets as the
client and as the upstream echo server; the harness's recording upstream for
the answers that must not open a tunnel (426, 200, a 101 with a wrong Accept)."""

import asyncio
import json
import os
import threading
import time

import pytest

from harness import Fixed, RawClient, build_request, closed_port, need, request, wait_until
import configs
from saml_common import seal, now

need("websockets", "python")
import websockets  # noqa: E402

COOKIE = "__Host-portcullis-session"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class EchoServer:
    """A python3-websockets echo server in a thread.  "headers?" is answered
    with the handshake's request headers (JSON)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.handshakes = []
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                websockets.serve(self._handler, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)
        self.address = "127.0.0.1:%d" % self.port

    async def _handler(self, ws, path=None):
        headers = dict(ws.request_headers.raw_items())
        self.handshakes.append(headers)
        try:
            async for msg in ws:
                await ws.send(json.dumps(headers) if msg == "headers?" else msg)
        except websockets.ConnectionClosed:
            pass

    async def _stop(self):
        self.server.close()
        await self.server.wait_closed()

    def close(self):
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def echo():
    e = EchoServer()
    yield e
    e.close()


def ws_config(up, port=0, route_keys=None, listener=None, saml=None, access=None):
    r = {"name": "app", "upstream": "app"}
    r.update(route_keys or {})
    if access is not None:
        r["access"] = access
    routes = [r]
    if saml is not None:
        r["auth"] = "saml"
    lst = {"name": "http", "address": "127.0.0.1:%d" % port}
    lst.update(listener or {})
    top = {"listeners": [lst]}
    if saml is not None:
        top["saml"] = saml
    return configs.config({"app": getattr(up, "address", up)},
                          [{"name": "main", "default": True, "routes": routes}], **top)


def saml_block(port, key_file, **more):
    s = {"idp_metadata": configs.throwaway_idp_metadata(),
         "base_url": "http://localhost:%d" % port, "acs_path": "/complete/saml/",
         "session_key_file": key_file,
         "headers": {"X-Auth-Email": "Email", "X-Auth-User": "@nameid"}}
    s.update(more)
    return s


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _echo(url, msgs, headers=()):
    out = []
    async with websockets.connect(url, extra_headers=list(headers), open_timeout=5) as ws:
        for m in msgs:
            await ws.send(m)
            out.append(await ws.recv())
    return out


async def _status(url, headers=()):
    try:
        async with websockets.connect(url, extra_headers=list(headers), open_timeout=5):
            return 101
    except websockets.InvalidStatusCode as e:
        return e.status_code


def upgrade_head(target="/ws", extra=()):
    return build_request("GET", target, "localhost", [
        ("Connection", "Upgrade"), ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13")] + list(extra))


def test_echo_identity_headers_and_log(lab, echo):
    port = closed_port()
    key_file = os.path.join(lab.workdir, "session.key")
    key = configs.write_session_key(key_file)
    p = lab.proxy(ws_config(echo, port, saml=saml_block(port, key_file)))
    t = now()
    cookie = "%s=%s" % (COOKIE, seal(key, "session", t, t + 3600, t, "alice",
                                     [("Email", "alice@example.com")]))
    url = "ws://127.0.0.1:%d/ws" % port
    out = run(_echo(url, ["hello", "x" * 100000, "headers?"],
                    [("Cookie", cookie), ("X-Auth-Email", "mallory@example.com")]))
    assert out[0] == "hello" and out[1] == "x" * 100000
    seen = json.loads(out[2])
    assert seen["X-Auth-Email"] == "alice@example.com"
    assert seen["X-Auth-User"] == "alice"
    assert COOKIE not in seen.get("Cookie", "")
    assert seen["Upgrade"] == "websocket"
    # the 101 is logged as a request, the tunnel's end as one line
    p.wait_access_log(lambda e: e.get("status") == 101)
    p.wait_stderr(r"websocket \S+: 127\.0\.0\.1 127\.0\.0\.1/ws \(route app, upstream %s\) "
                  r"ended \(closed\): \d+ bytes in, \d+ bytes out, [0-9.]+ s" % echo.address)
    m = request(p.admin_port, "GET", "/metrics").text()
    assert "portcullis_websocket_tunnels_total 1" in m
    assert 'portcullis_websocket_tunnels_ended_total{reason="closed"} 1' in m


def test_no_session_is_401_never_101(lab, echo):
    port = closed_port()
    key_file = os.path.join(lab.workdir, "session.key")
    configs.write_session_key(key_file)
    p = lab.proxy(ws_config(echo, port, saml=saml_block(port, key_file)))
    assert run(_status("ws://127.0.0.1:%d/ws" % port)) == 401
    with RawClient(port) as c:
        c.send(upgrade_head())
        r = c.read_response()
        assert r.status == 401 and r.header("Upgrade") is None
        assert r.header("Connection") == "close"
        assert c.closed_by_peer()  # a normal close: nothing after it is read as HTTP
    assert echo.handshakes == []
    m = request(p.admin_port, "GET", "/metrics").text()
    assert 'portcullis_websocket_refusals_total{reason="auth"} 2' in m


@pytest.mark.parametrize("status", [426, 200])
def test_upstream_refuses_connection_stays_http(lab, status):
    up = lab.upstream("app")
    hdrs = [("Upgrade", "websocket")] if status == 426 else []
    p = lab.proxy(ws_config(up))
    up.reset(handler=lambda req, conn: Fixed(status if req.path == "/ws" else 200, hdrs,
                                             b"plain")(req, conn))
    with RawClient(p.port) as c:
        c.send(upgrade_head())
        r = c.read_response()
        assert r.status == status and r.body == b"plain"
        # the next request on the same connection is parsed and routed as HTTP
        r = c.request("GET", "/next")
        assert r.status == 200
    got = up.snapshot()
    assert [g.path for g in got] == ["/ws", "/next"]
    assert got[0].header("Upgrade") == "websocket"
    assert got[0].header("Sec-WebSocket-Key") == KEY
    assert got[1].header("Upgrade") is None


def test_wrong_accept_is_502(lab):
    up = lab.upstream("app")
    p = lab.proxy(ws_config(up))

    def handler(req, conn):
        if req.path != "/ws":
            return Fixed(200, (), b"after")(req, conn)
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
                  b"\r\nframes")
        return False
    up.reset(handler=handler)
    with RawClient(p.port) as c:
        c.send(upgrade_head())
        r = c.read_response()
        assert r.status == 502
        r = c.request("GET", "/after")  # still HTTP, not a tunnel
        assert r.status == 200 and r.body == b"after"
    m = request(p.admin_port, "GET", "/metrics").text()
    assert 'portcullis_websocket_refusals_total{reason="bad_accept"}' in m


def test_h2c_and_route_off_are_stripped(lab, echo):
    up = lab.upstream("app")
    p = lab.proxy(ws_config(up))
    with RawClient(p.port) as c:
        r = c.request("GET", "/h2", headers=[("Connection", "Upgrade, HTTP2-Settings"),
                                              ("Upgrade", "h2c"),
                                              ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        assert r.status == 200
        assert c.request("GET", "/again").status == 200
    got = up.snapshot()
    assert got[0].header("Upgrade") is None and got[0].header("HTTP2-Settings") is None
    assert got[0].header("Connection") is None
    # "websocket": false: the upgrade goes upstream as a plain GET
    p2 = lab.proxy(ws_config(echo, route_keys={"websocket": False}), name="off")
    assert run(_status("ws://127.0.0.1:%d/ws" % p2.port)) in (400, 426)


def test_config_validation(lab):
    up = lab.upstream("app")
    bad = ws_config(up)
    bad["sites"][0]["routes"].insert(0, {"name": "r", "respond": {"status": 200},
                                         "websocket": False, "match": {"path": ["/r"]}})
    path = os.path.join(lab.workdir, "bad.json")
    with open(path, "w") as f:
        json.dump(bad, f)
    from harness import run_binary
    r = run_binary(["-t", "-c", path])
    assert r.returncode != 0
    assert "only a route with \"upstream\" passes WebSocket upgrades" in r.stderr


def test_reload_keeps_tunnels_and_rechecks(lab, echo):
    p = lab.proxy(ws_config(echo))
    url = "ws://127.0.0.1:%d/ws" % p.port

    async def scenario():
        async with websockets.connect(url, open_timeout=5) as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            mark = len(p.stderr())
            cfg = ws_config(echo, port=p.port, route_keys={"websocket_idle_timeout": 30})
            p.write_config(cfg)
            p.signal(1)
            await asyncio.to_thread(p.wait_stderr, r"configuration reloaded", start=mark)
            await ws.send("two")  # still open after the reload
            assert await ws.recv() == "two"
            mark = len(p.stderr())
            p.write_config(ws_config(echo, port=p.port, access={"deny": ["127.0.0.1/32"]}))
            p.signal(1)
            await asyncio.to_thread(p.wait_stderr, r"the new configuration refuses it "
                                    r"\(the access rules refuse it\); closing", start=mark)
            with pytest.raises(websockets.ConnectionClosed):
                await ws.send("three")
                await ws.recv()
    run(scenario())
    p.wait_stderr(r"ended \(reload_refused\)")


def test_session_end_closes_tunnel(lab, echo):
    port = closed_port()
    key_file = os.path.join(lab.workdir, "session.key")
    key = configs.write_session_key(key_file)
    p = lab.proxy(ws_config(echo, port, saml=saml_block(port, key_file)))
    t = now()
    cookie = "%s=%s" % (COOKIE, seal(key, "session", t, t + 2, t, "alice",
                                     [("Email", "alice@example.com")]))

    async def scenario():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % port, open_timeout=5,
                                      extra_headers=[("Cookie", cookie)]) as ws:
            await ws.send("a")
            assert await ws.recv() == "a"
            start = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
            return time.monotonic() - start
    took = run(scenario())
    assert took < 6
    p.wait_stderr(r"ended \(session_end\)")


def test_idle_timeout(lab, echo):
    p = lab.proxy(ws_config(echo, route_keys={"websocket_idle_timeout": 1}))

    async def scenario():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % p.port, open_timeout=5,
                                      ping_interval=None) as ws:
            await ws.send("a")
            assert await ws.recv() == "a"
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
    run(scenario())
    p.wait_stderr(r"ended \(idle\)")


def test_limits_count_tunnels(lab, echo):
    p = lab.proxy(ws_config(echo, listener={"max_connections_per_client": 2}))
    url = "ws://127.0.0.1:%d/ws" % p.port

    async def scenario():
        a = await websockets.connect(url, open_timeout=5)
        b = await websockets.connect(url, open_timeout=5)
        await a.send("a")
        assert await a.recv() == "a"
        # two tunnels held: a third connection (HTTP or WebSocket) is refused
        with pytest.raises(Exception):
            c = await websockets.connect(url, open_timeout=3)
            await c.close()
        await a.close()
        await b.close()
    run(scenario())
    wait_until(lambda: request(p.port, "GET", "/x").status in (101, 400, 426, 200, 502),
               what="a slot again after the tunnels closed")
    m = request(p.admin_port, "GET", "/metrics").text()
    assert 'reason="max_connections_per_client"} 1' in m


def test_wss_over_tls_listener(lab, echo, tmp_path):
    import ssl
    cfg = ws_config(echo, listener={"tls": True})
    cfg["tls"] = {"certs_dir": os.path.join(str(tmp_path), "certs"),
                  "local_ca": {"names": ["ws.test"]}}
    p = lab.proxy(cfg)
    ctx = ssl.create_default_context(cafile=os.path.join(str(tmp_path), "certs", "local-ca",
                                                         "ca.crt"))

    async def scenario():
        async with websockets.connect("wss://ws.test:%d/ws" % p.port, ssl=ctx, open_timeout=5,
                                      host="127.0.0.1", port=p.port) as ws:
            for m in ["tls", "y" * 300000, "end"]:
                await ws.send(m)
                assert await ws.recv() == m
    run(scenario())
    p.wait_stderr(r"ended \(closed\)")


def test_drain_closes_tunnels_at_deadline(lab, echo):
    cfg = ws_config(echo)
    cfg["timeouts"] = {"drain": 2}
    p = lab.proxy(cfg)

    async def scenario():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % p.port, open_timeout=5) as ws:
            await ws.send("a")
            assert await ws.recv() == "a"
            p.signal(15)  # SIGTERM: drain
            await asyncio.sleep(0.5)
            await ws.send("b")  # still served while the drain waits
            assert await ws.recv() == "b"
            start = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return time.monotonic() - start
    took = run(scenario())
    assert took < 5
    assert p.wait_exit(10) == 0
    assert "ended (drain)" in p.stderr()

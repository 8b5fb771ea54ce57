"""Revocation (saml.revocation): signing a user or one session out everywhere
through a real redis-server, with the real binary (2 workers):

  - POST /revoke?user=... on the admin listener: every cookie of that user
    issued before is refused on the next request (401 for an API call, 302 to
    the login for a page), on every worker, within the poll interval; a
    login after the revocation, and other users, pass;
  - `portcullis --revoke session=ID -c FILE`: that one session is refused,
    the user's other session passes;
  - logout puts the session on the list: a copy of the cookie replayed
    after the logout is refused;
  - an open WebSocket tunnel of a revoked session is closed;
  - Redis down: on_redis_down "open" keeps the last list (revoked stays
    revoked, others pass); "closed" refuses every session (503) once the list
    is older than max_staleness, and recovers when Redis is back.
"""

import asyncio
import base64
import hashlib
import os
import struct
import subprocess
import time

import pytest

from harness import BINARY, closed_port, need, request, wait_until
import configs
from saml_common import seal, now
from test_saml_redis import DB, PASSWORD, PREFIX, RedisServer

need("redis-server")
need("websockets", "python")
import websockets  # noqa: E402

COOKIE = "__Host-portcullis-session"
POLL = 0.2      # saml.revocation.poll_interval in these tests
DELAY = 3.0     # what a test waits at most for a revocation to apply


def session_id(issued, expires, name_id):
    """The session id of src/auth/session_id.c."""
    d = hashlib.sha256(b"portcullis session id v1\0" + struct.pack(">qq", issued, expires) +
                       name_id.encode()).digest()
    return base64.urlsafe_b64encode(d[:12]).decode().rstrip("=")


def make_config(up, ws, port, key_file, redis, mode="open", staleness=1):
    saml = {"idp_metadata": configs.throwaway_idp_metadata(),
            "base_url": "http://localhost:%d" % port, "acs_path": "/complete/saml/",
            "session_key_file": key_file,
            "headers": {"X-Auth-User": "@nameid"},
            "revocation": {"poll_interval": POLL, "max_staleness": staleness,
                           "on_redis_down": mode}}
    return configs.config(
        {"app": up, "ws": ws.address},
        [{"name": "main", "default": True, "routes": [
            {"name": "ws", "match": {"path": ["/ws"]}, "upstream": "ws", "auth": "saml"},
            {"name": "app", "upstream": "app", "auth": "saml"}]}],
        listeners=[{"name": "http", "address": "127.0.0.1:%d" % port}], saml=saml,
        redis={"address": "127.0.0.1:%d" % redis.port, "password": PASSWORD, "db": DB,
               "key_prefix": PREFIX, "command_timeout": "300ms", "connect_timeout": 1})


class EchoServer:
    """A python3-websockets echo server on its own loop in a thread."""

    def __init__(self):
        import threading
        self.loop = asyncio.new_event_loop()
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
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def env(module_lab):
    work = module_lab.workdir
    redis = RedisServer(work, closed_port())
    redis.start()
    echo = EchoServer()
    try:
        key_file = os.path.join(work, "session.key")
        key = configs.write_session_key(key_file)
        port = closed_port()
        up = module_lab.upstream("web")
        p = module_lab.proxy(make_config(up, echo, port, key_file, redis), name="revoke")
        yield {"work": work, "key": key, "key_file": key_file, "port": port, "proxy": p,
               "redis": redis, "echo": echo, "up": up, "lab": module_lab}
    finally:
        echo.close()
        redis.stop()


def cookie(env, user, issued=None, life=3600):
    t = issued if issued is not None else now() - 5
    value = seal(env["key"], "session", t, t + life, t, user)
    return "%s=%s" % (COOKIE, value), session_id(t, t + life, user)


def get(env, c, page=False, port=None):
    """One request on a fresh connection (so both workers are reached)."""
    hs = [("Cookie", c), ("Accept", "text/html" if page else "application/json")]
    return request(port or env["port"], "GET", "/app", host="localhost", headers=hs)


def statuses(env, c, n=8, **kw):
    return {get(env, c, **kw).status for _ in range(n)}


def revoke_admin(env, **what):
    q = "&".join("%s=%s" % kv for kv in what.items())
    return request(env["proxy"].admin_port, "POST", "/revoke?" + q)


def test_revoke_user_at_admin_endpoint(env, alive):
    old, _ = cookie(env, "alice", now() - 60)
    bob, _ = cookie(env, "bob")
    assert statuses(env, old) == {200}
    r = revoke_admin(env, user="alice")
    assert r.status == 200, r
    assert "revoked: user=alice" in r.text()
    assert int(env["redis"].cli("HGET", PREFIX + "revoked", "user:alice")) >= now() - 5
    start = time.monotonic()
    wait_until(lambda: statuses(env, old, n=1) == {401}, timeout=DELAY, interval=0.05,
               what="the revoked cookie refused")
    assert time.monotonic() - start < DELAY
    # Every worker, API and page: 401, and 302 to the IdP.
    assert statuses(env, old) == {401}
    assert statuses(env, old, page=True) == {302}
    assert statuses(env, bob) == {200}
    env["proxy"].wait_stderr(r"saml: session \S+ of alice refused \[ref \S+\] .*: revoked")
    # Signing in again after the revocation is a new session: it passes.
    time.sleep(1.1)
    fresh, _ = cookie(env, "alice", now())
    assert statuses(env, fresh) == {200}
    # Bad requests.
    assert revoke_admin(env, nobody="x").status == 400
    assert request(env["proxy"].admin_port, "POST", "/revoke").status == 400
    m = request(env["proxy"].admin_port, "GET", "/metrics").text()
    assert 'portcullis_revocation_refused_total{reason="revoked"}' in m
    assert "portcullis_revocation_entries" in m


def test_revoke_session_with_cli(env, alive):
    one, sid_one = cookie(env, "carol", now() - 30)
    two, _ = cookie(env, "carol", now() - 20)
    assert statuses(env, one) == {200} and statuses(env, two) == {200}
    r = subprocess.run([BINARY, "--revoke", "session=" + sid_one, "-c", env["proxy"].config_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "revoked: session=" + sid_one in r.stdout
    assert env["redis"].cli("HEXISTS", PREFIX + "revoked", "session:" + sid_one) == "1"
    wait_until(lambda: statuses(env, one, n=1) == {401}, timeout=DELAY, interval=0.05,
               what="the revoked session refused")
    assert statuses(env, one) == {401}
    assert statuses(env, two) == {200}
    # A malformed target, and a config without revocation.
    r = subprocess.run([BINARY, "--revoke", "nobody=x", "-c", env["proxy"].config_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "name a user" in r.stderr


def test_logout_puts_session_on_list(env, alive):
    c, sid = cookie(env, "dave")
    assert statuses(env, c) == {200}
    r = request(env["port"], "GET", "/saml/logout", headers=[("Cookie", c)])
    assert r.status in (200, 302, 303), r
    env["proxy"].wait_stderr(r"saml: dave signed out \[ref \S+\] \(session %s\)" % sid)
    wait_until(lambda: env["redis"].cli("HEXISTS", PREFIX + "revoked", "session:" + sid) == "1",
               timeout=DELAY, what="the logout written to Redis")
    wait_until(lambda: statuses(env, c, n=1) == {401}, timeout=DELAY, interval=0.05,
               what="the cookie replayed after logout refused")
    assert statuses(env, c) == {401}


def test_websocket_tunnel_of_revoked_session_is_closed(env, alive):
    c, sid = cookie(env, "erin")
    other, _ = cookie(env, "frank")
    url = "ws://127.0.0.1:%d/ws" % env["port"]

    async def scenario():
        async with websockets.connect(url, extra_headers=[("Cookie", c)], open_timeout=5) as ws, \
                websockets.connect(url, extra_headers=[("Cookie", other)], open_timeout=5) as keep:
            await ws.send("a")
            assert await ws.recv() == "a"
            r = await asyncio.get_running_loop().run_in_executor(
                None, lambda: revoke_admin(env, session=sid))
            assert r.status == 200, r
            start = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
            took = time.monotonic() - start
            await keep.send("b")
            assert await keep.recv() == "b"
            return took
    took = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert took < DELAY
    env["proxy"].wait_stderr(r"session %s of erin is revoked; closing" % sid)
    env["proxy"].wait_stderr(r"ended \(revoked\)")
    # A new upgrade with that cookie is refused (401, never 101).
    assert get(env, c).status == 401


def test_redis_down_open_and_closed(env, alive):
    lab, redis = env["lab"], env["redis"]
    port = closed_port()
    closed = lab.proxy(make_config(env["up"], env["echo"], port, env["key_file"], redis,
                                   mode="closed", staleness=1), name="revoke-closed")
    gone, _ = cookie(env, "grace", now() - 60)
    fine, _ = cookie(env, "heidi")
    assert revoke_admin(env, user="grace").status == 200
    wait_until(lambda: statuses(env, gone, n=1) == {401}, timeout=DELAY, what="revoked")
    wait_until(lambda: statuses(env, gone, n=1, port=port) == {401}, timeout=DELAY,
               what="revoked at the closed replica")
    redis.stop()
    try:
        env["proxy"].wait_stderr(r'revocation: cannot read the list from Redis: .*on_redis_down '
                                 r'"open"')
        # "closed": every session is refused once the list is older than 1 s.
        wait_until(lambda: statuses(env, fine, n=1, port=port) == {503}, timeout=DELAY + 2,
                   what="fail closed")
        assert statuses(env, fine, port=port) == {503}
        closed.wait_stderr(r'the revocation list cannot be read \(on_redis_down "closed"\)')
        # "open": the last list stays in force.
        time.sleep(1.5)
        assert statuses(env, fine) == {200}
        assert statuses(env, gone) == {401}
    finally:
        redis.start()
    wait_until(lambda: statuses(env, fine, n=1, port=port) == {200}, timeout=10,
               what="the closed replica serving again once Redis is back")
    closed.wait_stderr(r"revocation: Redis is back")

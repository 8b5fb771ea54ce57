"""examples/posthog/portcullis.json against one recording server per upstream:
every PostHog route, its /ingest twin on the app domain, bodies and limits.

The example protects the UI, its /api and livestream with SAML: requests to
those routes carry a session cookie sealed with the proxy's session key (the
login itself is tested in test_posthog_saml.py), and the upstream must see
the signed-in user's X-Auth-Email; everywhere else a client's X-Auth-Email
is removed.

The key cases run over HTTP/1.1 and HTTP/2 (the `client` fixture, h2c on the
same listener), with the same expectations."""

import gzip
import json
import os
import re
import uuid

import pytest

from clients import Http1
from configs import (APP_DOMAIN, POSTHOG_DOMAIN, POSTHOG_UPSTREAM_ENV, posthog_env,
                     posthog_example, posthog_session_cookie, write_session_key)
from harness import make_bytes, request

UPSTREAM_NAMES = list(POSTHOG_UPSTREAM_ENV)
MIB = 1024 * 1024
SIGNED_IN = "alice@example.com"
FORGED = "forged@evil.test"


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.ups = {name: module_lab.upstream(name) for name in UPSTREAM_NAMES}
    key_file = os.path.join(module_lab.workdir, "posthog-session.key")
    e.key = write_session_key(key_file)
    e.proxy = module_lab.proxy(posthog_example(module_lab.workdir),
                               env=posthog_env(e.ups, session_key_file=key_file),
                               name="posthog")
    e.cookie = posthog_session_cookie(e.key, email=SIGNED_IN)
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    for up in env.ups.values():
        up.reset()
    yield


def new_id():
    return "e2e-" + uuid.uuid4().hex


def send(env, method, target, host=POSTHOG_DOMAIN, headers=(), body=None, rid=None,
         client=Http1()):
    """Send one request with a fresh X-Request-ID; returns (response, rid)."""
    rid = rid or new_id()
    resp = client.request(env.proxy.port, method, target, host=host,
                          headers=[("X-Request-ID", rid)] + list(headers), body=body)
    return resp, rid


def landed(env, rid):
    """[(upstream name, recorded request)] for every request carrying <rid>."""
    return [(name, r) for name, up in env.ups.items() for r in up.with_request_id(rid)]


def landed_once(env, rid, what):
    hits = landed(env, rid)
    assert len(hits) == 1, "%s: expected exactly one upstream request, got %r" % (what, hits)
    return hits[0]


def one(req, name):
    values = req.header_all(name)
    assert len(values) == 1, "%s: expected one %s header upstream, got %r (all headers %r)" % (
        req, name, values, req.headers)
    return values[0]


ROUTES = [
    # (client path, upstream, path + query the upstream must receive)
    ("/e", "capture", "/e"),
    ("/e/", "capture", "/e/"),
    ("/e/?ip=1", "capture", "/e/?ip=1"),
    ("/i/v0/e/", "capture", "/i/v0/e/"),
    ("/batch/", "capture", "/batch/"),
    ("/capture/", "capture", "/capture/"),
    ("/s/", "replay", "/s/"),
    ("/flags/?v=2", "flags", "/flags/?v=2"),
    ("/livestream/events", "livestream", "/events"),
    ("/public/webhooks/x", "plugins", "/public/webhooks/x"),
    ("/public/m/x", "plugins", "/public/m/x"),
    ("/decide/", "web", "/decide/"),
    ("/api/projects/", "web", "/api/projects/"),
    ("/static/x.js", "web", "/static/x.js"),
    ("/array/phc_x/config.js", "web", "/array/phc_x/config.js"),
    ("/_health", "web", "/_health"),
    ("/", "web", "/"),
    ("/events", "web", "/events"),
]
# Client paths behind SAML in the example (every method).
PROTECTED = {"/livestream/events", "/api/projects/", "/", "/events"}
METHODS = ["GET", "POST", "PATCH", "OPTIONS", "DELETE"]
BODY_METHODS = {"POST", "PATCH", "DELETE"}


def body_for(method, path):
    if method not in BODY_METHODS:
        return None
    return json.dumps({"method": method, "path": path}).encode() + b"\x00\xff\r\n"


def check_forwarded(env, resp, rid, method, body, up_name, want_target, what, *, host,
                    client_host):
    assert resp.status == 200, "%s: status %d, body %r" % (what, resp.status, resp.body[:300])
    name, req = landed_once(env, rid, what)
    assert name == up_name, "%s went to %s, expected %s" % (what, name, up_name)
    assert req.method == method
    assert req.target == want_target, "%s: upstream got target %r, expected %r" % (
        what, req.target, want_target)
    assert req.version == "HTTP/1.1"
    if body is None:
        assert req.body == b""
        assert not req.has_header("Transfer-Encoding")
    else:
        assert req.body == body, "%s: body changed on the way" % what
        assert req.framing == "content-length", "%s: body framed by %s" % (what, req.framing)
        assert one(req, "Content-Length") == str(len(body))
    assert one(req, "Host") == host
    assert one(req, "X-Forwarded-For") == "127.0.0.1"
    assert one(req, "X-Real-IP") == "127.0.0.1"
    assert one(req, "X-Forwarded-Proto") == "http"
    assert one(req, "X-Forwarded-Host") == client_host
    assert one(req, "X-Forwarded-Port") == str(env.proxy.port)
    assert one(req, "X-Request-ID") == rid
    assert resp.header_all("X-Request-ID") == [rid]
    # The upstream's answer arrives unchanged.
    echoed = resp.json()
    assert echoed["upstream"] == up_name and echoed["target"] == want_target
    return req


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path,up_name,want_target", ROUTES)
def test_posthog_route(env, path, up_name, want_target, method, client):
    body = body_for(method, path)
    resp, rid = send(env, method, path, body=body, headers=identity_headers(env, path),
                     client=client)
    req = check_forwarded(env, resp, rid, method, body, up_name, want_target,
                          "%s %s on %s" % (method, path, POSTHOG_DOMAIN),
                          host=POSTHOG_DOMAIN, client_host=POSTHOG_DOMAIN)
    check_identity(req, path)


def identity_headers(env, path, cookies=()):
    """A forged X-Auth-Email always; the session cookie on protected paths."""
    cookie = list(cookies) + ([env.cookie] if path in PROTECTED else [])
    return [("X-Auth-Email", FORGED)] + ([("Cookie", "; ".join(cookie))] if cookie else [])


def check_identity(req, path):
    """Upstream sees the session's email on protected paths, no X-Auth-Email
    elsewhere (the client's copy is removed everywhere)."""
    want = [SIGNED_IN] if path in PROTECTED else []
    assert req.header_all("X-Auth-Email") == want, "%s: X-Auth-Email %r, expected %r" % (
        path, req.header_all("X-Auth-Email"), want)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", sorted(PROTECTED))
def test_protected_route_without_session(env, path, method, client):
    """The same requests without the session never reach an upstream."""
    resp, rid = send(env, method, path, body=body_for(method, path),
                     headers=[("X-Auth-Email", SIGNED_IN)], client=client)
    assert resp.status in (302, 401), "%s %s without a session: %r" % (method, path, resp)
    assert landed(env, rid) == []


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path,up_name,want_target", ROUTES)
def test_ingest_twin(env, path, up_name, want_target, method, client):
    """/ingest<path> on the app domain: same upstream, same path, Host is the
    PostHog domain, the app's cookies are not forwarded."""
    body = body_for(method, path)
    target = "/ingest" + path
    resp, rid = send(env, method, target, host=APP_DOMAIN, body=body,
                     headers=identity_headers(env, path, ["session=app-secret",
                                                          "ph_phc_x_posthog=abc"]),
                     client=client)
    req = check_forwarded(env, resp, rid, method, body, up_name, want_target,
                          "%s %s on %s" % (method, target, APP_DOMAIN),
                          host=POSTHOG_DOMAIN, client_host=APP_DOMAIN)
    assert not req.has_header("Cookie"), "Cookie reached %s via /ingest: %r" % (
        up_name, req.header_all("Cookie"))
    check_identity(req, path)


@pytest.mark.parametrize("path", ["/", "/dashboard?x=1", "/e/", "/ingestion", "/api/projects/",
                                  "/static/x.js"])
def test_app_domain_other_paths_go_to_app(env, path, client):
    cookie = "session=app-secret; ph_phc_x_posthog=abc"
    resp, rid = send(env, "GET", path, host=APP_DOMAIN, headers=[("Cookie", cookie)],
                     client=client)
    assert resp.status == 200
    name, req = landed_once(env, rid, "GET %s on %s" % (path, APP_DOMAIN))
    assert name == "app"
    assert req.target == path
    assert one(req, "Host") == APP_DOMAIN
    assert req.header_all("Cookie") == [cookie]


def test_gzip_body_forwarded_byte_for_byte(env, client):
    events = [{"event": "$pageview", "properties": {"distinct_id": "u%d" % i, "$current_url":
                                                    "https://app.test/p/%d" % i}}
              for i in range(50)]
    body = gzip.compress(json.dumps(events).encode(), mtime=0)
    target = "/e/?compression=gzip-js&ver=1.155.0&_=1700000000000"
    resp, rid = send(env, "POST", target, body=body,
                     headers=[("Content-Type", "text/plain")], client=client)
    assert resp.status == 200
    name, req = landed_once(env, rid, "gzip POST")
    assert name == "capture"
    assert req.target == target
    assert req.body == body
    assert one(req, "Content-Type") == "text/plain"
    assert json.loads(gzip.decompress(req.body)) == events


@pytest.mark.parametrize("host,target,up_name,want_target", [
    (POSTHOG_DOMAIN, "/s/?compression=gzip-js&ver=1", "replay", "/s/?compression=gzip-js&ver=1"),
    (APP_DOMAIN, "/ingest/s/?compression=gzip-js&ver=1", "replay",
     "/s/?compression=gzip-js&ver=1"),
    (POSTHOG_DOMAIN, "/batch/", "capture", "/batch/"),
])
def test_binary_body_every_byte_value(env, host, target, up_name, want_target, client):
    body = bytes(range(256)) * 257 + b"\r\n\r\n0\r\n\r\n" + bytes(reversed(range(256)))
    resp, rid = send(env, "POST", target, host=host, body=body,
                     headers=[("Content-Type", "application/octet-stream")], client=client)
    assert resp.status == 200
    name, req = landed_once(env, rid, "binary POST %s" % target)
    assert (name, req.target) == (up_name, want_target)
    assert req.body == body
    assert one(req, "Content-Length") == str(len(body))


def test_request_id_generated_when_absent(env):
    probe = uuid.uuid4().hex
    resp = request(env.proxy.port, "GET", "/decide/?probe=" + probe, host=POSTHOG_DOMAIN)
    assert resp.status == 200
    reqs = [r for r in env.ups["web"].snapshot() if r.query == "probe=" + probe]
    assert len(reqs) == 1
    rid = one(reqs[0], "X-Request-ID")
    assert re.fullmatch(r"[0-9a-f]{32}", rid), "generated X-Request-ID %r is not 32 hex" % rid
    assert resp.header_all("X-Request-ID") == [rid]


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "semi;colon", "quote\"d", "x/y"])
def test_request_id_replaced_when_not_sane(env, bad):
    probe = uuid.uuid4().hex
    resp = request(env.proxy.port, "GET", "/decide/?probe=" + probe, host=POSTHOG_DOMAIN,
                   headers=[("X-Request-ID", bad)])
    assert resp.status == 200
    reqs = [r for r in env.ups["web"].snapshot() if r.query == "probe=" + probe]
    assert len(reqs) == 1
    rid = one(reqs[0], "X-Request-ID")
    assert re.fullmatch(r"[0-9a-f]{32}", rid), "X-Request-ID %r forwarded as %r" % (bad, rid)
    assert resp.header_all("X-Request-ID") == [rid]


def test_request_id_longest_sane_kept(env, client):
    rid = "A.b-c_" + "9" * 122
    assert len(rid) == 128
    resp, _ = send(env, "GET", "/decide/", rid=rid, client=client)
    assert resp.status == 200
    assert landed_once(env, rid, "128-char id")[0] == "web"
    assert resp.header_all("X-Request-ID") == [rid]


# ---------------------------------------------------------------- limits

def assert_413_unseen(env, resp, rid, what):
    assert resp.status == 413, "%s: expected 413, got %r" % (what, resp)
    assert landed(env, rid) == [], "%s: an upstream saw the oversized body" % what
    assert resp.header_all("X-Request-ID") == [rid]


def test_3mib_event_rejected(env, client):
    resp, rid = send(env, "POST", "/e/", body=make_bytes(3 * MIB), client=client)
    assert_413_unseen(env, resp, rid, "3 MiB POST /e/")


def test_3mib_event_rejected_via_ingest(env, client):
    resp, rid = send(env, "POST", "/ingest/e/", host=APP_DOMAIN, body=make_bytes(3 * MIB),
                     client=client)
    assert_413_unseen(env, resp, rid, "3 MiB POST /ingest/e/ on app.test")


def test_event_limit_boundary(env, client):
    body = make_bytes(2 * MIB, seed=b"boundary")
    resp, rid = send(env, "POST", "/i/v0/e/", body=body, client=client)
    assert resp.status == 200, "exactly 2 MiB (the limit) must pass: %r" % resp
    name, req = landed_once(env, rid, "2 MiB POST /i/v0/e/")
    assert name == "capture" and req.body == body
    resp, rid = send(env, "POST", "/i/v0/e/", body=body + b"x", client=client)
    assert_413_unseen(env, resp, rid, "2 MiB + 1 POST /i/v0/e/")


def test_3mib_batch_passes(env, client):
    body = make_bytes(3 * MIB, seed=b"batch")
    resp, rid = send(env, "POST", "/batch/", body=body, client=client)
    assert resp.status == 200, resp
    name, req = landed_once(env, rid, "3 MiB POST /batch/")
    assert name == "capture"
    assert len(req.body) == len(body) and req.body == body
    assert resp.json()["body_len"] == len(body)


def test_21mib_batch_rejected(env, client):
    resp, rid = send(env, "POST", "/batch/", body=make_bytes(21 * MIB, seed=b"big"),
                     client=client)
    assert_413_unseen(env, resp, rid, "21 MiB POST /batch/")


def test_proxy_serves_after_limits(env, client):
    resp, rid = send(env, "POST", "/e/", body=b"{}", client=client)
    assert resp.status == 200
    assert landed_once(env, rid, "POST /e/ after the limit tests")[0] == "capture"

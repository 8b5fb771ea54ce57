"""HTTP/2 to clients (docs/http2.md): negotiation, the mapping of streams onto
HTTP/1.1 requests upstream, the downgrade rules, limits and streaming.

One proxy for the module: a TLS listener (ALPN h2 + http/1.1, local CA for
h2.test), a TLS listener with "http2": false, a plain listener with "h2c":
true and one without.  Raw frames come from h2client.py (python3-hyperframe,
python3-hpack); the real clients are curl --http2, nghttp and h2load.

The rule of the downgrade cases: whatever HTTP/2 lets a client say that
HTTP/1.1 could not carry, or that RFC 9113 calls malformed, is refused on the
stream, and the recording upstream receives NOTHING.  Abuse (floods, resets)
is in test_http2_abuse.py, drain/reload/idle in test_http2_lifecycle.py,
h2spec in test_h2spec.py.
"""

import os
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from configs import config, route
from harness import (SSE, BigBody, Echo, Fixed, RawClient, build_request, make_bytes, need, request,
                     wait_until)

need("hyperframe", "python")
need("hpack", "python")

from h2client import ENABLE_PUSH, END_STREAM, PROTOCOL_ERROR, H2Client, raw_frame  # noqa: E402

HOST = "h2.test"            # on the certificate and a site
OTHER = "other.test"        # a site, not on the certificate
MAX_HEADER = 16384          # limits.max_request_header_bytes
LIMITED_BODY = 1000         # the /limited route's max_body_bytes


class Env:
    pass


class TrailerResponder:
    """A chunked answer with a trailer field (which HTTP/2 clients must not get)."""

    def __call__(self, req, conn):
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Trailer\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t1\r\n\r\n")
        return True


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.web = module_lab.upstream("web")
    e.live = module_lab.upstream("live")
    e.ups = [e.web, e.live]
    e.dir = module_lab.workdir
    cfg = config(
        {"web": e.web, "live": (e.live, {"response_timeout": 3600})},
        [{"name": "main", "hosts": [HOST, "localhost", "127.0.0.1"], "default": True, "routes": [
            route("limited", "web", path=["/limited"], max_body_bytes=LIMITED_BODY),
            route("live", "live", path=["/live"]),
            route("nocookie", "web", path=["/nocookie"], drop_cookies=True),
            route("web", "web"),
        ]}, {"name": "other", "hosts": [OTHER], "routes": [route("other-web", "web")]}],
        listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True},
                   {"name": "h1tls", "address": "127.0.0.1:0", "tls": True, "http2": False},
                   {"name": "h2c", "address": "127.0.0.1:0", "h2c": True},
                   {"name": "plain", "address": "127.0.0.1:0"}],
        tls={"certs_dir": os.path.join(e.dir, "certs"), "local_ca": {"names": [HOST]},
             "default_name": HOST},
        limits={"max_request_header_bytes": MAX_HEADER},
        timeouts={"client": 3},
    )
    e.proxy = module_lab.proxy(cfg, name="h2")
    e.https = e.proxy.ports["https"]
    e.h1tls = e.proxy.ports["h1tls"]
    e.h2c = e.proxy.ports["h2c"]
    e.plain = e.proxy.ports["plain"]
    e.ca = os.path.join(e.dir, "certs", "local-ca", "ca.crt")
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    for up in env.ups:
        up.reset()
    yield


def connect(env, **kw):
    kw.setdefault("server_name", HOST)
    return H2Client(env.https, tls=True, **kw)


def rid():
    return "h2-" + uuid.uuid4().hex


def nothing_upstream(env, what, settle=0.3):
    time.sleep(settle)
    got = [r for up in env.ups for r in up.snapshot()]
    assert got == [], "%s: the upstream received %r" % (what, got)


# ------------------------------------------------------------------ negotiation

def test_alpn_prefers_h2(env):
    with connect(env, alpn=("http/1.1", "h2")) as c:
        assert c.alpn == "h2"
        s = c.request("GET", "/hello?x=1", HOST, [("x-request-id", rid())])
        assert s.status == 200, s
        req = env.web.wait_for_count(1)[0]
    assert req.version == "HTTP/1.1"       # upstreams stay HTTP/1.1
    assert req.target == "/hello?x=1"
    assert req.header_all("Host") == [HOST]
    assert req.header("X-Forwarded-Proto") == "https"
    assert req.header("X-Forwarded-Port") == str(env.https)
    assert req.header("X-Forwarded-For") == "127.0.0.1"


def test_alpn_http11_still_offered(env):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", env.https), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as s:
            assert s.selected_alpn_protocol() == "http/1.1"
            s.sendall(build_request("GET", "/h1", host=HOST, headers=[("Connection", "close")]))
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


def test_http2_false_listener_negotiates_http11(env):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", env.h1tls), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as s:
            assert s.selected_alpn_protocol() == "http/1.1"
    # A client that offers only h2 gets no ALPN (or a refused handshake), never h2.
    ctx2 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx2.check_hostname, ctx2.verify_mode = False, ssl.CERT_NONE
    ctx2.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection(("127.0.0.1", env.h1tls), timeout=10) as raw:
            with ctx2.wrap_socket(raw, server_hostname=HOST) as s:
                assert s.selected_alpn_protocol() != "h2"
    except ssl.SSLError:
        pass


def test_h2c_prior_knowledge_on_plain_listener(env):
    with H2Client(env.h2c) as c:
        s = c.request("POST", "/h2c", HOST, [("content-type", "text/plain")], body=b"over h2c")
        assert s.status == 200, s
    req = env.web.wait_for_count(1)[0]
    assert req.version == "HTTP/1.1" and req.body == b"over h2c"
    assert req.header("X-Forwarded-Proto") == "http"
    # HTTP/1.1 still works on the h2c listener.
    assert request(env.h2c, "GET", "/h1-on-h2c", host=HOST).status == 200


def test_preface_on_plain_listener_without_h2c_refused(env):
    with H2Client(env.plain, preface=False) as c:
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + c.settings_frame({}))
        data = b""
        try:
            c.sock.settimeout(5)
            while True:
                d = c.sock.recv(65536)
                if not d:
                    break
                data += d
        except (socket.timeout, ConnectionResetError):
            pass
    assert not data or data.startswith(b"HTTP/1.1 4"), data[:200]
    nothing_upstream(env, "HTTP/2 preface on a listener without h2c")


@pytest.mark.parametrize("port_name", ["plain", "h2c"])
def test_upgrade_h2c_ignored_over_http11(env, port_name):
    port = getattr(env, port_name)
    with RawClient(port) as c:
        resp = c.request("GET", "/upgrade", host=HOST, headers=[
            ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        assert resp.status == 200, resp
        assert resp.version == "HTTP/1.1"
    req = env.web.wait_for_count(1)[0]
    names = req.header_names()
    assert "upgrade" not in names and "http2-settings" not in names, req.headers
    assert "upgrade" not in (req.header("Connection") or "").lower()


def test_tls_relay_alpn_list(lab, tmp_path):
    """TCP relays with TLS choose from their own "alpn" list, in its order;
    without one, no protocol is selected (the HTTP listener's h2 never leaks)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    try:
        cfg = {
            "listeners": [
                {"name": "grpc", "address": "127.0.0.1:0", "type": "tcp",
                 "upstream": "127.0.0.1:%d" % srv.getsockname()[1], "tls": True,
                 "alpn": ["h2", "http/1.1"]},
                {"name": "legacy", "address": "127.0.0.1:0", "type": "tcp",
                 "upstream": "127.0.0.1:%d" % srv.getsockname()[1], "tls": True},
                {"name": "h1", "address": "127.0.0.1:0", "type": "tcp",
                 "upstream": "127.0.0.1:%d" % srv.getsockname()[1], "tls": True,
                 "alpn": ["http/1.1"]}],
            "admin": {"address": "127.0.0.1:0"},
            "workers": 1,
            "tls": {"certs_dir": os.path.join(str(tmp_path), "certs"),
                    "local_ca": {"names": ["relay.test"]}},
            "upstreams": {"none": {"servers": ["127.0.0.1:9"]}},
            "sites": [{"routes": [{"respond": {"status": 404}}]}],
        }
        p = lab.proxy(cfg)

        def selected(listener, offer):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            ctx.set_alpn_protocols(offer)
            try:
                with socket.create_connection(("127.0.0.1", p.ports[listener]), timeout=10) as r:
                    with ctx.wrap_socket(r, server_hostname="relay.test") as s:
                        return s.selected_alpn_protocol()
            except ssl.SSLError as exc:
                return "refused: %s" % exc.reason
        assert selected("grpc", ["h2"]) == "h2"
        assert selected("grpc", ["http/1.1", "h2"]) == "h2"      # the relay's order wins
        assert selected("grpc", ["http/1.1"]) == "http/1.1"
        assert selected("legacy", ["h2", "http/1.1"]) is None   # no list: nothing selected
        assert selected("h1", ["h2", "http/1.1"]) == "http/1.1"
        got = selected("h1", ["h2"])
        assert got is None or got.startswith("refused"), got
    finally:
        srv.close()


# ------------------------------------------------------------------ mapping

def test_authority_becomes_host_and_identity_headers_cleaned(env):
    r = rid()
    with connect(env) as c:
        s = c.request("GET", "/map", HOST, [("x-request-id", r), ("x-forwarded-for", "6.6.6.6"),
                                            ("x-real-ip", "6.6.6.6"),
                                            ("x-forwarded-host", "evil.test")])
        assert s.status == 200, s
        assert s.header_all("x-request-id") == [r]
    req = env.web.wait_for_count(1)[0]
    assert req.header_all("Host") == [HOST]
    assert req.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert req.header_all("X-Real-IP") == ["127.0.0.1"]
    assert req.header_all("X-Forwarded-Host") == [HOST]
    assert req.header_all("X-Request-ID") == [r]


def test_same_host_header_accepted(env):
    with connect(env) as c:
        s = c.request("GET", "/samehost", HOST, [("host", HOST)])
        assert s.status == 200, s
    assert env.web.wait_for_count(1)[0].header_all("Host") == [HOST]


def test_other_site_on_the_certificate_name_routes_by_authority(env):
    with connect(env) as c:
        s = c.request("GET", "/by-authority", "localhost")
        assert s.status == 200, s
    assert env.web.wait_for_count(1)[0].header_all("Host") == ["localhost"]


@pytest.mark.parametrize("name,extra,authority,want", [
    ("host differs from :authority", [("host", OTHER)], HOST, 400),
    ("userinfo in :authority", [], "user:pw@" + HOST, 400),
    ("userinfo, no password", [], "user@" + HOST, 400),
    ("authority not on the certificate", [], OTHER, 421),
])
def test_authority_refusals(env, name, extra, authority, want):
    with connect(env) as c:
        s = c.request("GET", "/authority", authority, extra)
        assert s.status == want, "%s: sent :authority %r + %r, got %r; frames %s" % (
            name, authority, extra, s, c.frame_log())
        # The connection stays usable.
        assert c.request("GET", "/after", HOST).status == 200
    reqs = env.web.wait_for_count(1)
    assert [q.target for q in reqs] == ["/after"], "%s reached the upstream: %r" % (name, reqs)


def test_scheme_http_on_tls_refused(env):
    with connect(env) as c:
        s = c.request("GET", "/scheme", HOST, scheme="http")
        assert s.status == 400, "%r; frames %s" % (s, c.frame_log())
    nothing_upstream(env, ":scheme http on TLS")


def test_cookie_crumbs_joined(env):
    with connect(env) as c:
        s = c.request("GET", "/cookies", HOST, [("cookie", "a=1"), ("x-between", "y"),
                                                ("cookie", "b=2"), ("cookie", "c=3; d=4")])
        assert s.status == 200, s
    req = env.web.wait_for_count(1)[0]
    assert req.header_all("Cookie") == ["a=1; b=2; c=3; d=4"], req.headers


def test_cookie_crumbs_all_dropped_on_drop_cookies_route(env):
    with connect(env) as c:
        s = c.request("GET", "/nocookie/x", HOST, [("cookie", "a=1"), ("cookie", "b=2")])
        assert s.status == 200, s
    req = env.web.wait_for_count(1)[0]
    assert not req.has_header("Cookie"), req.headers


def test_request_trailers_dropped(env):
    body = b"with trailers"
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, c.request_headers("POST", "/trailers", HOST), end_stream=False)
        c.send_data(sid, body, end_stream=False)
        c.send_headers(sid, [("x-trailer", "t1"), ("x-forwarded-for", "6.6.6.6")],
                       end_stream=True)
        s = c.response(sid)
        assert s.status == 200, s
    req = env.web.wait_for_count(1)[0]
    assert req.body == body
    assert "x-trailer" not in req.header_names()
    assert req.header_all("X-Forwarded-For") == ["127.0.0.1"]


def test_response_trailers_dropped_and_no_push(env):
    env.web.handler = TrailerResponder()
    with connect(env, settings={ENABLE_PUSH: 1}) as c:
        s = c.request("GET", "/resp-trailers", HOST)
        assert s.status == 200 and s.body == b"hello", s
        assert s.trailers is None, "trailers reached the client: %r" % s.trailers
        assert "trailer" not in s.header_names()
        assert not any(f[0] == "PUSHPROMISE" for f in c.frames), c.frame_log()
    for f in ("connection", "transfer-encoding", "keep-alive"):
        assert f not in s.header_names(), s.headers


def test_connection_specific_response_headers_removed(env):
    env.web.handler = Fixed(200, [("Connection", "keep-alive, X-Hop"), ("Keep-Alive", "timeout=5"),
                                  ("X-Hop", "1"), ("Upgrade", "foo"), ("X-Kept", "yes")],
                            b"body")
    with connect(env) as c:
        s = c.request("GET", "/hop", HOST)
        assert s.status == 200 and s.body == b"body", s
    names = s.header_names()
    for n in ("connection", "keep-alive", "upgrade", "transfer-encoding", "x-hop"):
        assert n not in names, s.headers
    assert s.header("x-kept") == "yes"


def test_head_and_204_have_no_body(env):
    with connect(env) as c:
        s = c.request("HEAD", "/head", HOST)
        assert s.status == 200 and s.body == b"", s
        env.web.handler = Fixed(204)
        s = c.request("DELETE", "/nothing", HOST)
        assert s.status == 204 and s.body == b"", s


def test_many_streams_on_one_connection(env):
    with connect(env) as c:
        sids = [c.start("GET", "/multi/%d" % i, HOST) for i in range(50)]
        for i, sid in enumerate(sids):
            s = c.response(sid)
            assert s.status == 200, (i, s)
            assert s.json()["target"] == "/multi/%d" % i
    assert len(env.web.wait_for_count(50)) == 50


def test_large_bodies_both_ways(env):
    body = make_bytes(3 << 20, b"up")
    with connect(env) as c:
        s = c.request("POST", "/big-up", HOST, [("content-type", "application/octet-stream")],
                      body=body)
        assert s.status == 200, s
        assert s.json()["body_len"] == len(body)
        env.web.handler = BigBody(5 << 20, chunked=True)
        s = c.request("GET", "/big-down", HOST)
        assert s.status == 200 and s.body == make_bytes(5 << 20), s
    assert env.web.snapshot()[0].body == body


def test_access_log_and_metrics_by_protocol(env):
    r = rid()
    with connect(env) as c:
        assert c.request("POST", "/logged?q=1", HOST, [("x-request-id", r)],
                         body=b"12345").status == 200
    e = env.proxy.wait_access_log(lambda x: x.get("request_id") == r)
    assert e["protocol"] == "HTTP/2.0", e
    assert e["method"] == "POST" and e["path"] == "/logged" and e["query"] == "q=1"
    assert e["host"] == HOST and e["status"] == 200 and e["bytes_in"] == 5
    r1 = rid()
    assert request(env.plain, "GET", "/h1log", host=HOST,
                   headers=[("X-Request-ID", r1)]).status == 200
    assert env.proxy.wait_access_log(lambda x: x.get("request_id") == r1)["protocol"] == \
        "HTTP/1.1"
    m = request(env.proxy.admin_port, "GET", "/metrics", host="127.0.0.1")
    assert re.search(r'^portcullis_requests_by_protocol_total\{protocol="HTTP/2\.0"\} [1-9]',
                     m.text(), re.M), m.text()[:3000]
    assert re.search(r'^portcullis_requests_by_protocol_total\{protocol="HTTP/1\.1"\} [1-9]',
                     m.text(), re.M)


# ------------------------------------------------------------------ downgrade hygiene

# (case, extra regular headers, or a full header list with "RAW")
MALFORMED = [
    ("CR in a value", [("x-a", "1\r2")]),
    ("LF in a value", [("x-a", "1\n2")]),
    ("CRLF + header in a value", [("x-a", "1\r\nx-injected: 1")]),
    ("NUL in a value", [("x-a", "1\x002")]),
    ("CR in a name", [("x-a\r", "1")]),
    ("LF in a name", [("x-a\nx-b", "1")]),
    ("NUL in a name", [("x-a\x00", "1")]),
    ("colon in a name", [("x:a", "1")]),
    ("space in a name", [("x a", "1")]),
    ("upper-case name", [("X-Upper", "1")]),
    ("te: gzip", [("te", "gzip")]),
    ("te: trailers, gzip", [("te", "trailers, gzip")]),
    ("transfer-encoding", [("transfer-encoding", "chunked")]),
    ("connection", [("connection", "keep-alive")]),
    ("keep-alive", [("keep-alive", "timeout=5")]),
    ("proxy-connection", [("proxy-connection", "keep-alive")]),
    ("upgrade", [("upgrade", "websocket")]),
    ("content-length twice", [("content-length", "0"), ("content-length", "0")]),
    ("pseudo-header after a regular one", "RAW", [(":method", "GET"), (":scheme", "https"),
                                                  ("x-a", "1"), (":path", "/x"),
                                                  (":authority", HOST)]),
    (":path without a slash", "RAW", [(":method", "GET"), (":scheme", "https"),
                                      (":path", "x/y"), (":authority", HOST)]),
    (":path absolute URI", "RAW", [(":method", "GET"), (":scheme", "https"),
                                   (":path", "https://evil.test/x"), (":authority", HOST)]),
    ("empty :path", "RAW", [(":method", "GET"), (":scheme", "https"), (":path", ""),
                            (":authority", HOST)]),
    ("no :path", "RAW", [(":method", "GET"), (":scheme", "https"), (":authority", HOST)]),
    ("no :method", "RAW", [(":scheme", "https"), (":path", "/x"), (":authority", HOST)]),
    ("two :path", "RAW", [(":method", "GET"), (":scheme", "https"), (":path", "/x"),
                          (":path", "/y"), (":authority", HOST)]),
    ("unknown pseudo-header", "RAW", [(":method", "GET"), (":scheme", "https"),
                                      (":path", "/x"), (":authority", HOST), (":evil", "1")]),
    ("response pseudo-header", "RAW", [(":method", "GET"), (":scheme", "https"),
                                       (":path", "/x"), (":authority", HOST),
                                       (":status", "200")]),
]


def malformed_headers(case):
    if len(case) == 3:
        return list(case[2])
    return [(":method", "GET"), (":scheme", "https"), (":path", "/malformed"),
            (":authority", HOST)] + list(case[1])


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_request_reset_and_never_forwarded(env, case):
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, malformed_headers(case), end_stream=True)
        s = c.stream(sid)
        c.wait(lambda: s.done or c.goaway or c.closed, what="a refusal")
        refused = (s.reset == PROTOCOL_ERROR or s.status == 400 or
                   (c.goaway is not None and c.goaway[0] == PROTOCOL_ERROR))
        assert refused and s.status != 200, (
            "%s: sent %r; expected RST_STREAM PROTOCOL_ERROR (or 400), got %r; frames %s" % (
                case[0], malformed_headers(case), s, c.frame_log()))
    nothing_upstream(env, case[0])


def test_te_trailers_allowed(env):
    with connect(env) as c:
        s = c.request("GET", "/te", HOST, [("te", "trailers")])
        assert s.status == 200, s
    req = env.web.wait_for_count(1)[0]
    assert "te" not in req.header_names() or req.header("TE") == "trailers"


def test_options_star_allowed(env):
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, [(":method", "OPTIONS"), (":scheme", "https"), (":path", "*"),
                             (":authority", HOST)])
        s = c.response(sid)
        assert s.reset is None and s.status is not None, "OPTIONS * refused: %r" % s


@pytest.mark.parametrize("declared,sent", [(10, 5), (5, 10), (0, 1)])
def test_content_length_disagreeing_with_data(env, declared, sent):
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, c.request_headers("POST", "/cl", HOST,
                                              [("content-length", str(declared))]),
                       end_stream=False)
        c.send(raw_frame(0, END_STREAM, sid, b"x" * sent))
        s = c.stream(sid)
        c.wait(lambda: s.done or c.goaway, what="a refusal")
        assert s.reset == PROTOCOL_ERROR or (s.status or 0) >= 400, (
            "content-length %d with %d bytes of DATA: %r; frames %s" % (declared, sent, s,
                                                                        c.frame_log()))
    nothing_upstream(env, "content-length %d, DATA %d" % (declared, sent))


@pytest.mark.parametrize("target", ["/x/../../etc/passwd", "/%2e%2e/x", "/a%00b", "/a\\b",
                                    "/a%2fb/../c"])
def test_ambiguous_paths_as_in_http11(env, target):
    """A path HTTP/1.1 refuses (or normalizes) gets the same answer over HTTP/2."""
    h1 = request(env.plain, "GET", target, host=HOST)
    env.web.reset()
    with connect(env) as c:
        s = c.request("GET", target, HOST)
    h1_upstream = h1.status == 200
    if s.reset is not None:
        assert not h1_upstream, "%s: HTTP/1.1 forwards it, HTTP/2 resets: %r" % (target, s)
        nothing_upstream(env, target)
        return
    assert s.status == h1.status, "%s: HTTP/1.1 %d, HTTP/2 %r" % (target, h1.status, s)
    if h1_upstream:
        assert s.json()["target"] == h1.json()["target"]


# ------------------------------------------------------------------ limits

def test_header_list_over_limit_431_on_the_stream(env):
    with connect(env) as c:
        s = c.request("GET", "/big-header", HOST, [("x-big", "b" * (MAX_HEADER + 1000))])
        assert s.status == 431, "%r; frames %s" % (s, c.frame_log())
        assert c.goaway is None, c.frame_log()
        assert c.request("GET", "/after-431", HOST).status == 200
    assert [q.target for q in env.web.wait_for_count(1)] == ["/after-431"]


def test_header_list_within_limit_passes(env):
    with connect(env) as c:
        s = c.request("GET", "/fits", HOST, [("cookie", "c%d=%s" % (i, "v" * 200))
                                             for i in range(40)])
        assert s.status == 200, s
    assert len(env.web.wait_for_count(1)[0].header("Cookie")) > 8000


def test_body_over_route_limit_413(env):
    with connect(env) as c:
        s = c.request("POST", "/limited", HOST, body=b"z" * (LIMITED_BODY * 3))
        assert s.status == 413, "%r; frames %s" % (s, c.frame_log())
        s = c.request("POST", "/limited", HOST, body=b"z" * LIMITED_BODY)
        assert s.status == 200, s
    reqs = env.web.wait_for_count(1)
    assert [len(q.body) for q in reqs] == [LIMITED_BODY]


def test_content_length_over_limit_413_before_data(env):
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, c.request_headers("POST", "/limited", HOST,
                                              [("content-length", str(LIMITED_BODY + 1))]),
                       end_stream=False)
        s = c.stream(sid)
        c.wait(lambda: s.status is not None or s.done, timeout=5,
               what="413 before any DATA was sent")
        assert s.status == 413, "%r; frames %s" % (s, c.frame_log())
    nothing_upstream(env, "content-length over the route's limit")


# ------------------------------------------------------------------ streaming

def test_sse_events_arrive_as_written(env):
    release = threading.Event()
    sse = SSE([b"event: x\ndata: 1\n\n", release, b"event: x\ndata: 2\n\n"])
    env.live.handler = sse
    with connect(env) as c:
        sid = c.start("GET", "/live/events", HOST, [("accept", "text/event-stream")])
        s = c.stream(sid)
        c.wait(lambda: b"data: 1\n\n" in s.data, what="the first event")
        assert s.status == 200 and s.header("content-type").startswith("text/event-stream")
        assert sse.sent == [b"event: x\ndata: 1\n\n"] and not sse.finished.is_set()
        release.set()
        c.response(sid)
        assert s.body == b"event: x\ndata: 1\n\nevent: x\ndata: 2\n\n", s
    assert env.live.wait_for_count(1)[0].target == "/live/events"


def test_slow_stream_never_stalls_others(env):
    """An SSE stream the upstream holds open, and a stream whose client
    opened no window at all: 20 other requests on the same connection and a
    5 MiB download still complete."""
    release = threading.Event()
    env.live.handler = SSE([b"data: held\n\n", release, b"data: end\n\n"])
    env.web.handler = BigBody(5 << 20)
    with connect(env, window=0) as c:     # every stream starts with a zero window
        held = c.stream(c.start("GET", "/live/held", HOST))
        stuck = c.stream(c.start("GET", "/stuck", HOST))      # never gets a window
        c.wait(lambda: stuck.status is not None, what="the stuck stream's head")
        big = c.stream(c.start("GET", "/big", HOST))
        c.window_update(big.id, 5 << 20)
        c.window_update(held.id, 1 << 20)
        c.wait(lambda: big.done, timeout=20, what="the 5 MiB download beside a stuck stream")
        assert big.status == 200 and len(big.data) == 5 << 20, big
        env.web.handler = Echo()
        others = [c.start("GET", "/other/%d" % i, HOST) for i in range(20)]
        for sid in others:
            c.window_update(sid, 1 << 20)
        for sid in others:
            s = c.response(sid)
            assert s.status == 200, s
        assert not held.done and b"data: held" in held.data
        assert not stuck.done and stuck.data == b""
        release.set()
        c.response(held.id)
        assert held.body == b"data: held\n\ndata: end\n\n"


def test_zero_window_stream_reset_after_client_timeout(env):
    """A client that never opens its window: the stream is reset once the
    client timeout (3 s) passes without progress; the proxy's memory stays
    bounded meanwhile, and the connection's other streams still work."""
    env.web.handler = BigBody(64 << 20)
    pid = env.proxy.pid

    def rss():
        with open("/proc/%d/status" % pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024
    before = rss()
    with connect(env, window=0) as c:
        stuck = c.stream(c.start("GET", "/zero-window", HOST))
        c.wait(lambda: stuck.done, timeout=15, what="the zero-window stream to be reset")
        assert stuck.reset is not None and len(stuck.data) == 0, stuck
        grown = rss() - before
        assert grown < 24 << 20, "RSS grew by %d MiB behind a zero window" % (grown >> 20)
        env.web.handler = Echo()
        sid = c.start("GET", "/after-zero", HOST)
        c.window_update(sid, 1 << 20)
        s = c.response(sid)
        assert s.status == 200, s


# ------------------------------------------------------------------ real clients

def _curl(env, *args):
    need("curl")
    p = subprocess.run(["curl", "-sS", "--cacert", env.ca, "--resolve",
                        "%s:%d:127.0.0.1" % (HOST, env.https)] + list(args),
                       capture_output=True, text=True, timeout=30)
    return p


def test_curl_http2(env):
    p = _curl(env, "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
              "https://%s:%d/curl" % (HOST, env.https))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "2 200", p.stdout
    p = _curl(env, "--http2", "-d", "posted=1", "-w", "\n%{http_version}",
              "https://%s:%d/curl-post" % (HOST, env.https))
    assert p.returncode == 0 and p.stdout.endswith("\n2"), (p.stdout, p.stderr)
    reqs = env.web.wait_for_count(2)
    assert reqs[1].body == b"posted=1" and reqs[1].method == "POST"


def test_curl_http2_prior_knowledge_h2c(env):
    need("curl")
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                        "%{http_version} %{http_code}", "-H", "Host: %s" % HOST,
                        "http://127.0.0.1:%d/curl-h2c" % env.h2c],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout == "2 200", (p.stdout, p.stderr)


def test_nghttp(env):
    nghttp = need("nghttp")
    p = subprocess.run([nghttp, "-nv", "https://127.0.0.1:%d/nghttp" % env.https],
                       capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "negotiated protocol: h2" in out, out[-3000:]
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out[-3000:]
    assert "recv RST_STREAM" not in out and "recv GOAWAY" not in out, out[-3000:]
    assert env.web.wait_for_count(1)[0].target == "/nghttp"


def test_h2load_all_succeed(env):
    h2load = need("h2load")
    p = subprocess.run(["nice", "-n", "10", h2load, "-n", "2000", "-c", "4", "-m", "10",
                        "https://127.0.0.1:%d/load" % env.https],
                       capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "Application protocol: h2" in out, out[-3000:]
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out)
    assert m, out[-3000:]
    assert m.group(4) == "2000" and m.group(5) == "0" and m.group(6) == "0", out[-3000:]
    assert re.search(r"status codes: 2000 2xx", out), out[-3000:]


# ------------------------------------------------------------------ cancellations

def in_flight(env):
    text = request(env.proxy.admin_port, "GET", "/metrics", host="127.0.0.1").text()
    m = re.search(r"^portcullis_requests_in_flight(?:\{\})? (\S+)$", text, re.M)
    assert m, "portcullis_requests_in_flight missing from /metrics"
    return float(m.group(1))


def test_client_cancels_download_mid_stream(env):
    """RST_STREAM CANCEL in the middle of a 64 MiB response: the stream ends,
    the proxy lets go of the upstream, the connection's next stream works."""
    env.web.handler = BigBody(64 << 20)
    with connect(env) as c:
        s = c.stream(c.start("GET", "/cancel-me", HOST))
        c.wait(lambda: len(s.data) >= 1 << 20, timeout=20, what="the first MiB")
        c.rst(s.id)
        env.web.handler = Echo()
        after = c.request("GET", "/after-cancel", HOST)
        assert after.status == 200, "%r; frames %s" % (after, c.frame_log())
    wait_until(lambda: in_flight(env) == 0, what="requests_in_flight back to 0")


def test_client_cancels_upload_midway(env):
    """A request body cut by RST_STREAM never arrives upstream as a request."""
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, c.request_headers("POST", "/upload-cut", HOST,
                                              [("content-length", str(1 << 20))]),
                       end_stream=False)
        c.send_data(sid, b"u" * (200 << 10), end_stream=False)
        c.rst(sid)
        assert c.request("GET", "/after-upload-cut", HOST).status == 200
    reqs = env.web.wait_for_count(1)
    time.sleep(0.3)
    assert [r.target for r in env.web.snapshot()] == ["/after-upload-cut"], reqs


def test_client_goaway_then_close_mid_stream(env):
    """A client that says GOAWAY and hangs up with streams open: the proxy
    cleans up and keeps serving."""
    env.live.handler = SSE([b"data: 1\n\n", "until_closed"])
    c = connect(env)
    s = c.stream(c.start("GET", "/live/goaway", HOST))
    c.wait(lambda: b"data: 1" in s.data, what="the first event")
    c.goaway_frame()
    c.close()
    wait_until(lambda: in_flight(env) == 0, what="requests_in_flight back to 0")
    with connect(env) as c2:
        assert c2.request("GET", "/after-goaway", HOST).status == 200


def test_expect_100_continue(env):
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, c.request_headers("POST", "/expect", HOST,
                                              [("expect", "100-continue"),
                                               ("content-length", "5")]), end_stream=False)
        s = c.stream(sid)
        c.wait(lambda: s.informational or s.status is not None, timeout=5,
               what="100 Continue (or a final answer) before the body")
        c.send_data(sid, b"hello")
        c.response(sid)
        assert s.status == 200, "%r; frames %s" % (s, c.frame_log())
    req = env.web.wait_for_count(1)[0]
    assert req.body == b"hello"
    assert "expect" not in req.header_names() or req.header("Expect") == "100-continue"


# ------------------------------------------------------------------ upload back-pressure

class StuckUpstream:
    """Accepts connections and never reads (small receive buffer): an upload
    to it can only go as far as the proxy buffers it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_uploads_bounded_by_the_body_budget(lab, tmp_path, declared):
    """Bodies are held by the proxy (as over HTTP/1.1) within
    limits.body_memory_budget (12 MiB here, max_body_bytes 8 MiB), whatever
    the upstream does: an 8 MiB upload to an upstream that reads nothing is
    held; a second one on the same connection is refused (503, or the stream
    reset) after at most about the budget's rest; memory stays bounded and
    the connection's other streams still work."""
    stuck = StuckUpstream()
    web = lab.upstream("web")
    try:
        cfg = config({"stuck": stuck.address, "web": web},
                     [{"name": "main", "hosts": [HOST], "default": True, "routes": [
                         route("stuck", "stuck", path=["/stuck"]), route("web", "web")]}],
                     listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True}],
                     tls={"certs_dir": os.path.join(str(tmp_path), "certs"),
                          "local_ca": {"names": [HOST]}, "default_name": HOST},
                     limits={"max_body_bytes": "8MiB", "body_memory_budget": "12MiB"},
                     timeouts={"client": 30, "upstream_response": 30})
        p = lab.proxy(cfg, name="stuck")

        def rss():
            with open("/proc/%d/status" % p.pid) as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024
        before = rss()
        size = (8 << 20) - 64
        with H2Client(p.ports["https"], tls=True, server_name=HOST, timeout=5) as c:
            def upload(name):
                sid = c.new_stream_id()
                extra = [("content-length", str(size))] if declared else []
                c.send_headers(sid, c.request_headers("POST", "/stuck/" + name, HOST, extra),
                               end_stream=False)
                try:
                    c.send_data(sid, make_bytes(size), end_stream=True, timeout=5)
                except AssertionError as exc:
                    if "no flow-control credit" not in str(exc):
                        raise
                s = c.stream(sid)
                return s, c.peer_initial_window - s.send_window + sum(
                    int(f[3][1:]) for f in c.frames if f[0] == "WINDOWUPDATE" and f[2] == sid)
            first, _ = upload("first")
            assert not first.done, "the first upload (within the budget): %r" % first
            second, taken = upload("second")
            c.wait(lambda: second.done or second.status is not None, timeout=10,
                   what="a refusal of the second upload")
            assert second.status == 503 or second.reset is not None, (
                "a second 8 MiB upload with 4 MiB of budget left: %r after %d KiB taken; "
                "frames %s" % (second, taken >> 10, c.frame_log()))
            assert taken <= (5 << 20), (
                "the proxy gave credit for %d KiB of the second upload (4 MiB of budget left): "
                "%r; frames %s" % (taken >> 10, second, c.frame_log(60)))
            grown = rss() - before
            assert grown < 32 << 20, "RSS grew by %d MiB" % (grown >> 20)
            s3 = c.request("GET", "/beside-stuck", HOST, timeout=10)
            assert s3.status == 200, "%r; frames %s" % (s3, c.frame_log())
    finally:
        stuck.close()


def test_rst_of_sse_stream_closes_the_upstream(env):
    """RST_STREAM on an SSE stream (the connection stays): the proxy hangs up
    on the upstream's stream, and the connection keeps serving."""
    sse = SSE([b"data: 1\n\n", "until_closed"])
    env.live.handler = sse
    with connect(env) as c:
        s = c.stream(c.start("GET", "/live/rst", HOST))
        c.wait(lambda: b"data: 1" in s.data, what="the first event")
        c.rst(s.id)
        assert sse.peer_closed.wait(15), "the client reset the stream but the proxy kept the " \
            "upstream stream open"
        assert c.request("GET", "/after-rst", HOST).status == 200
    wait_until(lambda: in_flight(env) == 0, what="requests_in_flight back to 0")


@pytest.mark.parametrize("authority", [HOST, HOST.upper(), "%s:{port}" % HOST, "localhost",
                                       "127.0.0.1:{port}", "127.0.0.1"])
def test_authorities_on_the_certificate_accepted(env, authority):
    authority = authority.format(port=env.https)
    with connect(env) as c:
        s = c.request("GET", "/authority-ok", authority)
        assert s.status == 200, "%s: %r; frames %s" % (authority, s, c.frame_log())
    assert env.web.wait_for_count(1)[0].header_all("Host") == [authority]


def test_host_header_without_authority(env):
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":path", "/host-only"),
                             ("host", HOST)])
        s = c.response(sid)
        assert s.status == 200, "%r; frames %s" % (s, c.frame_log())
    assert env.web.wait_for_count(1)[0].header_all("Host") == [HOST]


def test_neither_authority_nor_host_refused(env):
    with connect(env) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":path", "/no-host")])
        s = c.response(sid)
        assert s.status == 400 or s.reset == PROTOCOL_ERROR, "%r; frames %s" % (s, c.frame_log())
    nothing_upstream(env, "no :authority and no host")

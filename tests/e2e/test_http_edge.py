"""HTTP edge cases: path tricks, header spoofing, request smuggling, size
limits, upstream failures, hop-by-hop headers, keep-alive, hosts, the respond
and redirect actions, methods, header rewriting.

Cases that hold for any protocol take the `client` fixture and run over
HTTP/1.1 and HTTP/2 (h2c on the same listener); the rest are about HTTP/1.1
framing itself."""

import re
import socket
import uuid

import pytest

from clients import Http1, refused
from configs import config, route
from harness import (CloseWithoutAnswer, Echo, Fixed, HugeHeader, RawClient, Slow, build_request,
                     closed_port, send_raw)

MAIN = "main.test"
OTHER = "other.test"


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.web = module_lab.upstream("web")
    e.cap = module_lab.upstream("cap")
    e.ups = {"web": e.web, "cap": e.cap}
    cfg = config(
        {
            "web": e.web,
            "cap": e.cap,
            "slowweb": (e.web, {"response_timeout": 1}),
            "refused": "127.0.0.1:%d" % closed_port(),
        },
        [
            {
                "name": "main",
                "hosts": [MAIN],
                "default": True,
                "routes": [
                    route("capture", "cap", path=["/capture", "/e"]),
                    route("slow", "slowweb", path=["/slow"]),
                    route("refused", "refused", path=["/refused"]),
                    {"name": "hello", "match": {"path_exact": ["/hello"]},
                     "respond": {"status": 200, "body": "hi\n",
                                 "content_type": "text/plain; charset=utf-8"}},
                    {"name": "teapot", "match": {"path_exact": ["/teapot"]},
                     "respond": {"status": 418, "body": "short and stout\n"}},
                    {"name": "old", "match": {"path": ["/old"]},
                     "redirect": {"to": "https://new.test/base", "status": 301,
                                  "keep_path": True}},
                    {"name": "moved", "match": {"path_exact": ["/moved"]},
                     "redirect": {"to": "/hello", "status": 302}},
                    route("hdrs", "web", path=["/hdrs"],
                          request_headers={"set": {"X-Set": "proxy-set"},
                                           "add": {"X-Add": "proxy-add"},
                                           "remove": ["X-Remove"]},
                          response_headers={"set": {"X-Resp-Set": "proxy-set"},
                                            "add": {"X-Resp-Add": "proxy-add"},
                                            "remove": ["X-Resp-Remove"]}),
                    route("web", "web"),
                ],
            },
            {
                "name": "other",
                "hosts": [OTHER],
                "routes": [{"name": "other", "respond": {"status": 200, "body": "other site\n"}}],
            },
        ],
        trusted_proxies=["127.0.0.2/32"],
    )
    cfg["listeners"][0]["h2c"] = True      # the `client` fixture's HTTP/2
    e.proxy = module_lab.proxy(cfg, name="edge")
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    for up in env.ups.values():
        up.reset()
    yield


def new_id():
    return "e2e-" + uuid.uuid4().hex


def seen(env, rid):
    return [r for up in env.ups.values() for r in up.with_request_id(rid)]


def seen_marker(env, marker):
    return [r for up in env.ups.values() for r in up.snapshot()
            if marker in r.target or marker.encode() in r.body]


def get(env, target, host=MAIN, method="GET", headers=(), body=None, source=None,
        client=Http1()):
    rid = new_id()
    resp = client.request(env.proxy.port, method, target, host=host, body=body, source=source,
                          headers=[("X-Request-ID", rid)] + list(headers))
    return resp, rid


def only(env, rid, what):
    reqs = seen(env, rid)
    assert len(reqs) == 1, "%s: expected one upstream request, got %r" % (what, reqs)
    return reqs[0]


# ------------------------------------------------------------ path tricks

BAD_PATHS = [
    "/e/%2e%2e/api",
    "/e/%2E%2E/api",
    "/%2e/",
    "/e%2Fx",
    "/e%2fx",
    "/e%5Cx",
    "/e\\x",
    "/e%00",
    "/e%0a",
    "/%C0%AF",
    "/e/%ED%A0%80",
    "/e/../../x",
    "/..",
    "/e%",
    "/e%zz",
    "/e#frag",
    "/e\xff",
]


@pytest.mark.parametrize("target", BAD_PATHS)
def test_ambiguous_path_rejected(env, target):
    rid = new_id()
    resp = send_raw(env.proxy.port, b"GET " + target.encode("latin-1") + b" HTTP/1.1\r\n"
                    b"Host: main.test\r\nX-Request-ID: " + rid.encode() + b"\r\n\r\n")
    assert resp is not None, "GET %r: connection closed without a response" % target
    assert resp.status == 400, "GET %r: expected 400, got %r" % (target, resp)
    assert resp.body.strip(), "GET %r: 400 without a reason in the body" % target
    assert (resp.header("Content-Type") or "").startswith("text/plain")
    assert seen(env, rid) == [], "GET %r reached an upstream" % target


@pytest.mark.parametrize("target", BAD_PATHS)
def test_ambiguous_path_refused_over_http2(env, target):
    """The same paths as :path over HTTP/2: refused (400, or the stream reset
    by libnghttp2), never forwarded."""
    from clients import Http2
    rid = new_id()
    resp = Http2().request(env.proxy.port, "GET", target, host=MAIN,
                           headers=[("X-Request-ID", rid)], allow_reset=True)
    assert refused(resp), "HTTP/2 :path %r: expected 400 or RST_STREAM, got %r" % (target, resp)
    assert seen(env, rid) == [], ":path %r reached an upstream" % target


NORMALIZED = [
    # (client target, upstream, target the upstream must receive)
    ("/e/./x", "cap", "/e/x"),
    ("/x//y", "web", "/x/y"),
    ("//x///y/", "web", "/x/y/"),
    ("/E/", "cap", "/E/"),
    ("/CAPTURE/x", "cap", "/CAPTURE/x"),
    ("/capture/../api/x", "web", "/api/x"),
    ("/e/x/../../api/y", "web", "/api/y"),
    ("/x//y?a=%2F&b=../c&d=%2e", "web", "/x/y?a=%2F&b=../c&d=%2e"),
    ("/e/%41%7e", "cap", "/e/A~"),
    ("/api/%3a%c3%a9", "web", "/api/%3A%C3%A9"),
]


@pytest.mark.parametrize("target,up_name,want", NORMALIZED)
def test_path_normalized_before_routing(env, target, up_name, want, client):
    resp, rid = get(env, target, client=client)
    assert resp.status == 200, "GET %s: %r" % (target, resp)
    req = only(env, rid, "GET %s" % target)
    assert (req.upstream.name, req.target) == (up_name, want), \
        "GET %s: expected %s %s, got %s %s" % (target, up_name, want, req.upstream.name,
                                               req.target)


def test_dot_dot_out_of_capture_never_reaches_capture(env, client):
    for target in ("/capture/../api/x", "/capture/./../api/x", "/e/..//api/x"):
        resp, rid = get(env, target, client=client)
        assert resp.status == 200
        assert env.cap.snapshot() == [], "%s reached capture" % target
        assert only(env, rid, target).target == "/api/x"


# ------------------------------------------------------- header spoofing

SPOOF = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "7.7.7.7"),
         ("X-Real-IP", "6.6.6.6"), ("X-Forwarded-Host", "evil.test"),
         ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "1")]


def test_client_forwarding_headers_replaced(env, client):
    resp, rid = get(env, "/api/x", headers=SPOOF, client=client)
    assert resp.status == 200
    req = only(env, rid, "spoofed request")
    assert req.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert req.header_all("X-Real-IP") == ["127.0.0.1"]
    assert req.header_all("X-Forwarded-Host") == [MAIN]
    assert req.header_all("X-Forwarded-Proto") == ["http"]
    assert req.header_all("X-Forwarded-Port") == [str(env.proxy.port)]


def test_underscore_header_names_dropped(env, client):
    # CGI/WSGI/Rack/PHP read X_Forwarded_For as X-Forwarded-For: a client must
    # not get its own copy past us under that spelling (nginx drops them too).
    resp, rid = get(env, "/api/x", headers=[("X_Forwarded_For", "6.6.6.6"),
                                            ("X_Real_IP", "6.6.6.6"), ("x_auth_email", "a@b"),
                                            ("X-Plain-Dash", "kept")], client=client)
    assert resp.status == 200
    req = only(env, rid, "underscore request")
    assert not any("_" in name for name in req.header_names()), req.header_names()
    assert req.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert req.header("X-Plain-Dash") == "kept"


def test_trusted_proxy_forwarded_for_kept_and_appended(env, client):
    resp, rid = get(env, "/api/x", source="127.0.0.2",
                    headers=[("X-Forwarded-For", "203.0.113.7")], client=client)
    assert resp.status == 200
    req = only(env, rid, "request from trusted 127.0.0.2")
    assert req.header_all("X-Forwarded-For") == ["203.0.113.7, 127.0.0.2"]
    assert req.header_all("X-Real-IP") == ["203.0.113.7"]


def test_trusted_proxy_several_forwarded_for_headers_joined(env, client):
    resp, rid = get(env, "/api/x", source="127.0.0.2",
                    headers=[("X-Forwarded-For", "203.0.113.7, 198.51.100.1"),
                             ("X-Forwarded-For", "198.51.100.2")], client=client)
    assert resp.status == 200
    req = only(env, rid, "request from trusted 127.0.0.2")
    assert req.header_all("X-Forwarded-For") == ["203.0.113.7, 198.51.100.1, 198.51.100.2, "
                                                 "127.0.0.2"]


def test_trusted_proxy_without_forwarded_for(env, client):
    resp, rid = get(env, "/api/x", source="127.0.0.2", client=client)
    assert resp.status == 200
    req = only(env, rid, "request from trusted 127.0.0.2")
    assert req.header_all("X-Forwarded-For") == ["127.0.0.2"]
    assert req.header_all("X-Real-IP") == ["127.0.0.2"]


def test_untrusted_peer_on_other_loopback_address_replaced(env, client):
    resp, rid = get(env, "/api/x", source="127.0.0.3",
                    headers=[("X-Forwarded-For", "203.0.113.7")], client=client)
    assert resp.status == 200
    req = only(env, rid, "request from untrusted 127.0.0.3")
    assert req.header_all("X-Forwarded-For") == ["127.0.0.3"]


# ------------------------------------------------------------- smuggling

SMUGGLING = {
    "te_and_cl": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\nContent-Length: 42\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\nGET /capture/smuggle-inner HTTP/1.1\r\n\r\n",
    "te_xchunked": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                   b"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_identity": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                   b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello",
    "te_space_before_colon": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                             b"Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two_content_lengths": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                           b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "content_length_plus": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                           b"Content-Length: +5\r\n\r\nhello",
    "content_length_negative": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                               b"Content-Length: -1\r\n\r\nhello",
    "content_length_hex": b"POST /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                          b"Content-Length: 0x5\r\n\r\nhello",
    "two_hosts": b"GET /capture/smuggle HTTP/1.1\r\nHost: main.test\r\nHost: other.test\r\n\r\n",
    "space_in_header_name": b"GET /capture/smuggle HTTP/1.1\r\nHost: main.test\r\n"
                            b"X Smuggle: 1\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_smuggling_rejected(env, case):
    resp = send_raw(env.proxy.port, SMUGGLING[case])
    assert resp is not None, "%s: connection closed without a 400" % case
    assert resp.status == 400, "%s: expected 400, got %r" % (case, resp)
    assert seen_marker(env, "smuggle") == [], "%s reached an upstream: %r" % (
        case, seen_marker(env, "smuggle"))


@pytest.mark.parametrize("chunks", [
    b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
    # RFC 9112 7.1.1: a recipient must ignore chunk extensions it does not know.
    b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
], ids=["plain", "chunk-extension"])
def test_chunked_request_forwarded_with_content_length(env, chunks):
    rid = new_id()
    resp = send_raw(env.proxy.port,
                    b"POST /capture/chunked HTTP/1.1\r\nHost: main.test\r\nX-Request-ID: " +
                    rid.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert resp is not None and resp.status == 200, "chunked body %r: got %r" % (chunks, resp)
    req = only(env, rid, "chunked POST")
    assert req.body == b"hello, world"
    assert req.framing == "content-length"
    assert req.header_all("Content-Length") == ["12"]
    assert not req.has_header("Transfer-Encoding")


# ------------------------------------------------------------ size limits

def test_request_headers_over_limit_431(env, client):
    pads = [("X-Pad-%d" % i, "p" * 10240) for i in range(7)]
    resp, rid = get(env, "/api/x", headers=pads, client=client)
    assert resp.status == 431, "70 KiB of request headers: expected 431, got %r" % resp
    assert seen(env, rid) == []


def test_60k_of_cookies_pass(env, client):
    cookie = "; ".join("ph_cookie_%04d=%s" % (i, "v" * 40) for i in range(1200))[:61440]
    assert len(cookie) == 61440
    resp, rid = get(env, "/api/x", headers=[("Cookie", cookie)], client=client)
    assert resp.status == 200, "60 KiB Cookie: %r" % resp
    req = only(env, rid, "60 KiB Cookie")
    assert req.header_all("Cookie") == [cookie]


def test_upstream_response_header_over_limit_502(env, client):
    env.web.handler = HugeHeader(70 * 1024)
    resp, rid = get(env, "/api/huge", client=client)
    assert resp.status == 502, "70 KiB response header: expected 502, got %r" % resp
    assert len(seen(env, rid)) == 1


def test_large_upstream_response_header_within_limit_passes(env, client):
    env.web.handler = HugeHeader(48 * 1024)
    resp, _ = get(env, "/api/huge", client=client)
    assert resp.status == 200
    assert resp.header("X-Huge") == "h" * (48 * 1024)
    assert resp.body == b"ok"


# -------------------------------------------------------- upstream failure

def test_upstream_refused_502(env, client):
    for method, body in (("GET", None), ("POST", b"{}")):
        resp, rid = get(env, "/refused/x", method=method, body=body, client=client)
        assert resp.status == 502, "%s to a closed port: expected 502, got %r" % (method, resp)
        assert resp.body.startswith(b"502 Bad Gateway"), resp
        assert (resp.header("Content-Type") or "").startswith("text/plain")
        assert resp.header_all("X-Request-ID") == [rid]


@pytest.mark.parametrize("method,body", [("GET", None), ("POST", b'{"a":1}')])
def test_upstream_closes_without_answer_502(env, method, body, client):
    env.web.handler = CloseWithoutAnswer()
    resp, rid = get(env, "/api/close", method=method, body=body, client=client)
    assert resp.status == 502, "%s, upstream closed without answering: got %r" % (method, resp)
    assert resp.body.startswith(b"502 Bad Gateway"), resp
    assert len(seen(env, rid)) >= 1


def test_upstream_timeout_504(env, client):
    env.web.handler = Slow(2.5)
    resp, rid = get(env, "/slow/x", client=client)
    assert resp.status == 504, "upstream slower than response_timeout 1 s: got %r" % resp
    assert resp.body.startswith(b"504 Gateway Timeout"), resp
    assert (resp.header("Content-Type") or "").startswith("text/plain")
    env.web.handler = Echo()
    resp, rid = get(env, "/slow/y", client=client)
    assert resp.status == 200
    assert only(env, rid, "after a 504").target == "/slow/y"


# -------------------------------------------------------------- HEAD

def test_head_request(env):
    with RawClient(env.proxy.port) as c:
        rid = new_id()
        resp = c.request("HEAD", "/api/head", host=MAIN, headers=[("X-Request-ID", rid)])
        assert resp.status == 200
        req = only(env, rid, "HEAD")
        assert req.method == "HEAD" and req.body == b""
        assert resp.header("Content-Length") is not None
        assert int(resp.header("Content-Length")) > 0
        # No body bytes followed the head: the next response parses cleanly.
        resp = c.request("GET", "/api/after-head", host=MAIN)
        assert resp.status == 200 and resp.json()["target"] == "/api/after-head"


# ------------------------------------------------------- hop-by-hop headers

def test_hop_by_hop_request_headers_removed(env):
    resp, rid = get(env, "/api/hop", headers=[
        ("Connection", "keep-alive, X-Foo"), ("X-Foo", "secret"), ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz"), ("Proxy-Connection", "keep-alive"),
        ("X-Keep", "yes")])
    assert resp.status == 200
    req = only(env, rid, "hop-by-hop request")
    names = req.header_names()
    for gone in ("x-foo", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
                 "proxy-connection"):
        assert gone not in names, "%s forwarded upstream: %r" % (gone, req.headers)
    for value in req.header_all("Connection"):
        assert "x-foo" not in value.lower()
    assert req.header_all("X-Keep") == ["yes"]


def test_hop_by_hop_response_headers_removed(env):
    env.web.handler = Fixed(200, [("Connection", "X-Bar"), ("X-Bar", "1"),
                                  ("Keep-Alive", "timeout=5"), ("X-Keep", "yes")], b"body")
    resp, _ = get(env, "/api/hop")
    assert resp.status == 200 and resp.body == b"body"
    names = resp.header_names()
    assert "x-bar" not in names, resp.headers
    assert "keep-alive" not in names, resp.headers
    assert resp.header_all("X-Keep") == ["yes"]


# ------------------------------------------------------------- keep-alive

def test_fifty_requests_on_one_connection(env):
    with RawClient(env.proxy.port) as c:
        for i in range(50):
            rid = new_id()
            if i % 2:
                body = b"body-%d" % i
                resp = c.request("POST", "/e/?n=%d" % i, host=MAIN,
                                 headers=[("X-Request-ID", rid)], body=body)
            else:
                body = b""
                resp = c.request("GET", "/api/n/%d" % i, host=MAIN,
                                 headers=[("X-Request-ID", rid)])
            assert resp.status == 200, "request %d on the kept-alive connection: %r" % (i, resp)
            doc = resp.json()
            assert doc["target"] == ("/e/?n=%d" % i if i % 2 else "/api/n/%d" % i)
            assert doc["body_len"] == len(body)
            assert resp.header("X-Request-ID") == rid


# ------------------------------------------------------------------ hosts

@pytest.mark.parametrize("host", ["unknown.test", "127.0.0.1", "main.test.example"])
def test_unknown_host_goes_to_default_site(env, host, client):
    resp, rid = get(env, "/api/x", host=host, client=client)
    assert resp.status == 200
    req = only(env, rid, "Host %s" % host)
    assert req.upstream.name == "web"
    assert req.header_all("Host") == [host]


@pytest.mark.parametrize("host", ["other.test", "OTHER.test", "other.test.", "other.test:8080"])
def test_named_host_chooses_site(env, host, client):
    resp, rid = get(env, "/api/x", host=host, client=client)
    assert resp.status == 200
    assert resp.body == b"other site\n"
    assert seen(env, rid) == []


# ---------------------------------------------------- respond and redirect

def test_respond_action(env, client):
    resp, rid = get(env, "/hello", client=client)
    assert resp.status == 200
    assert resp.body == b"hi\n"
    assert resp.header("Content-Type") == "text/plain; charset=utf-8"
    assert resp.header_all("X-Request-ID") == [rid]
    assert seen(env, rid) == []
    resp, rid = get(env, "/teapot", client=client)
    assert resp.status == 418
    assert resp.body == b"short and stout\n"
    assert resp.header("Content-Type") == "text/plain; charset=utf-8"


def test_redirect_action_keep_path(env, client):
    resp, rid = get(env, "/old/x/y?q=1&r=%2F", client=client)
    assert resp.status == 301
    assert resp.header_all("Location") == ["https://new.test/base/old/x/y?q=1&r=%2F"]
    assert seen(env, rid) == []


def test_redirect_action(env, client):
    resp, _ = get(env, "/moved?ignored=1", client=client)
    assert resp.status == 302
    assert resp.header_all("Location") == ["/hello"]


# ---------------------------------------------------------------- methods

@pytest.mark.parametrize("raw", [
    b"TRACE /api/x HTTP/1.1\r\nHost: main.test\r\nX-Method-Probe: trace\r\n\r\n",
    b"CONNECT main.test:443 HTTP/1.1\r\nHost: main.test:443\r\nX-Method-Probe: connect\r\n\r\n",
], ids=["TRACE", "CONNECT"])
def test_trace_connect_405(env, raw):
    line = raw.split(b"\r\n")[0]
    with RawClient(env.proxy.port, timeout=5) as c:
        c.send(raw)
        try:
            resp = c.read_head()
        except EOFError:
            raise AssertionError("%r: closed without an answer" % line)
        assert resp.status == 405, "%r: expected 405, got %r" % (line, resp)
        try:
            c.read_body(resp)
        except socket.timeout:
            raise AssertionError(
                "%r: 405 body is not framed (no Content-Length, not chunked) and the connection "
                "stays open, so the client cannot tell where it ends; head:\n%s" % (
                    line, resp.head_bytes.decode("latin-1")))
    assert all(not r.has_header("X-Method-Probe") for up in env.ups.values()
               for r in up.snapshot())


def test_put_forwarded(env, client):
    resp, rid = get(env, "/api/thing/1", method="PUT", body=b'{"name":"x"}', client=client)
    assert resp.status == 200
    req = only(env, rid, "PUT")
    assert req.method == "PUT" and req.body == b'{"name":"x"}'
    assert req.header_all("Content-Length") == ["12"]


# ------------------------------------------------------- header rewriting

def test_request_and_response_header_rules(env, client):
    env.web.handler = Echo(headers=[("X-Resp-Set", "upstream"), ("X-Resp-Set", "upstream2"),
                                    ("X-Resp-Add", "upstream"), ("X-Resp-Remove", "upstream"),
                                    ("X-Resp-Other", "upstream")])
    resp, rid = get(env, "/hdrs/x", headers=[("X-Set", "client"), ("X-Set", "client2"),
                                             ("X-Add", "client"), ("X-Remove", "client"),
                                             ("x-remove", "client2"), ("X-Other", "client")],
                    client=client)
    assert resp.status == 200
    req = only(env, rid, "/hdrs")
    assert req.header_all("X-Set") == ["proxy-set"]
    assert req.header_all("X-Add") == ["client", "proxy-add"]
    assert req.header_all("X-Remove") == []
    assert req.header_all("X-Other") == ["client"]
    assert resp.header_all("X-Resp-Set") == ["proxy-set"]
    assert resp.header_all("X-Resp-Add") == ["upstream", "proxy-add"]
    assert resp.header_all("X-Resp-Remove") == []
    assert resp.header_all("X-Resp-Other") == ["upstream"]


def test_server_still_healthy(env):
    resp, rid = get(env, "/api/final")
    assert resp.status == 200
    assert re.fullmatch(r"e2e-[0-9a-f]{32}", resp.header("X-Request-ID"))

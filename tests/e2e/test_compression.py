"""Response compression ("compress" on a site or route, docs/config.md#compression).

One proxy for the module: a TLS listener (ALPN h2 + http/1.1, local CA) and a
plain listener with h2c, one site with "compress": true and routes that turn
it off or tune it.  Real clients decode what comes back: curl (--compressed,
and each coding asked for by name, decoded here with Python's zlib, brotli
and zstandard modules), Python's http.client, headless Chromium (fetch() of a
script over HTTP/2 and HTTP/1.1), and the HTTP/1.1 / HTTP/2 test clients for
the negotiation and every case where nothing may be compressed."""

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import zlib

import pytest

from configs import config, route
from harness import SSE, WAIT, need, rss_kib, run_binary

HOST = "compress.test"
SCRIPT = b"".join(b"function handler%d(event) { return event.detail + %d; }\n" % (i, i * 7)
                  for i in range(2000))                        # about 110 KiB of JavaScript
HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "browser")


class Env:
    pass


class Asset:
    """Answer with <body> (Content-Length) and the given headers; HEAD gets the head only."""

    def __init__(self, body=SCRIPT, content_type="application/javascript", headers=(),
                 status=200):
        self.body = body
        self.headers = [("Content-Type", content_type)] + list(headers)
        self.status = status

    def __call__(self, req, conn):
        reasons = {200: "OK", 204: "No Content", 206: "Partial Content", 304: "Not Modified"}
        head = "HTTP/1.1 %d %s\r\n" % (self.status, reasons.get(self.status, "X"))
        for name, value in self.headers:
            head += "%s: %s\r\n" % (name, value)
        if self.status not in (204, 304):
            head += "Content-Length: %d\r\n" % len(self.body)
        head = (head + "\r\n").encode()
        if req.method == "HEAD" or self.status in (204, 304):
            conn.send(head)
        else:
            conn.send(head + self.body)
        return True


class ChunkedText:
    """A chunked text/plain body of <total> bytes in 64 KiB pieces, made as it goes."""

    def __init__(self, total):
        self.total = total

    def __call__(self, req, conn):
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        line = b"%08d the quick brown fox jumps over the lazy dog, again and again\n"
        sent = 0
        n = 0
        while sent < self.total:
            piece = b"".join(line % (n + i) for i in range(1024))
            n += 1024
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        conn.send(b"0\r\n\r\n")
        return True


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.web = module_lab.upstream("web")
    e.live = module_lab.upstream("live")
    e.dir = module_lab.workdir
    cfg = config(
        {"web": e.web, "live": (e.live, {"response_timeout": 3600})},
        [{"name": "main", "hosts": [HOST, "localhost", "127.0.0.1"], "default": True,
          "compress": True, "routes": [
              route("off", "web", path=["/off"], compress=False),
              route("tuned", "web", path=["/tuned"],
                    compress={"types": ["text/html", "text/*"], "min_length": 10,
                              "encodings": ["gzip"], "level": {"gzip": 9}}),
              route("live", "live", path=["/live"],
                    compress={"types": ["text/*", "application/javascript"]}),
              route("web", "web"),
          ]}],
        listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True},
                   {"name": "plain", "address": "127.0.0.1:0", "h2c": True}],
        tls={"certs_dir": os.path.join(e.dir, "certs"), "local_ca": {"names": [HOST]},
             "default_name": HOST},
    )
    e.proxy = module_lab.proxy(cfg, name="compress")
    e.https = e.proxy.ports["https"]
    e.plain = e.proxy.ports["plain"]
    e.ca = os.path.join(e.dir, "certs", "local-ca", "ca.crt")
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    env.web.reset(Asset())
    env.live.reset()
    yield


def decode(body, coding):
    """<body> decoded from Content-Encoding <coding> with Python's own modules."""
    if coding in (None, ""):
        return body
    if coding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if coding == "br":
        need("brotli", "python")
        import brotli
        return brotli.decompress(body)
    if coding == "zstd":
        need("zstandard", "python")
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    raise AssertionError("unknown coding %r" % coding)


def curl(env, url_path, *args, proto="http2"):
    """curl over TLS (<proto>: http2 or http1.1); returns (status, headers, body)."""
    need("curl")
    hdr = os.path.join(env.dir, "curl-head-%d" % threading.get_ident())
    body = os.path.join(env.dir, "curl-body-%d" % threading.get_ident())
    p = subprocess.run(["curl", "-sS", "--" + proto, "--cacert", env.ca, "--resolve",
                        "%s:%d:127.0.0.1" % (HOST, env.https), "-D", hdr, "-o", body] +
                       list(args) + ["https://%s:%d%s" % (HOST, env.https, url_path)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    with open(hdr, "rb") as f:
        lines = f.read().decode("latin-1").split("\r\n")
    with open(body, "rb") as f:
        data = f.read()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name.strip().lower(), value.strip())
    return status, headers, data


def vary_has_accept_encoding(value):
    return "accept-encoding" in [v.strip().lower() for v in (value or "").split(",")]


# ------------------------------------------------------------------ curl

@pytest.mark.parametrize("proto", ["http2", "http1.1"])
def test_curl_compressed_decodes(env, proto):
    status, headers, body = curl(env, "/app.js", "--compressed", "-w", "%{http_version}",
                                 proto=proto)
    assert status == 200
    assert headers.get("content-encoding") in ("br", "zstd", "gzip"), headers
    assert body == SCRIPT
    assert "content-length" not in headers
    assert vary_has_accept_encoding(headers.get("vary")), headers
    if proto == "http1.1":
        assert headers.get("transfer-encoding") == "chunked", headers


@pytest.mark.parametrize("proto", ["http2", "http1.1"])
@pytest.mark.parametrize("coding", ["gzip", "zstd", "br"])
def test_curl_each_coding(env, coding, proto):
    env.web.reset(Asset(headers=[("ETag", '"v1-abc"'), ("Accept-Ranges", "bytes"),
                                 ("Vary", "Origin")]))
    status, headers, body = curl(env, "/app.js", "-H", "Accept-Encoding: " + coding,
                                 proto=proto)
    assert status == 200
    assert headers.get("content-encoding") == coding, headers
    assert len(body) < len(SCRIPT) / 4, "hardly compressed: %d bytes" % len(body)
    assert decode(body, coding) == SCRIPT
    assert headers.get("etag") == 'W/"v1-abc"', headers
    assert "accept-ranges" not in headers and "content-length" not in headers, headers
    assert [v.strip() for v in headers["vary"].split(",")] == ["Origin", "Accept-Encoding"]


def test_zstd_window_at_most_8_mib(env):
    need("zstandard", "python")
    import zstandard
    status, headers, body = curl(env, "/app.js", "-H", "Accept-Encoding: zstd")
    assert headers.get("content-encoding") == "zstd"
    params = zstandard.get_frame_parameters(body)
    assert params.window_size <= 8 * 1024 * 1024, params.window_size


# ------------------------------------------------------------------ negotiation

@pytest.mark.parametrize("accept, want", [
    ("gzip, deflate, br, zstd", "br"),
    ("gzip, zstd", "zstd"),
    ("br;q=0.5, gzip;q=0.8", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("*", "br"),
    ("*;q=0.5, gzip", "gzip"),
    ("gzip;q=0", None),
    ("identity", None),
    ("gzip;q=0.5, identity", None),
    ("deflate", None),
    (None, None),
])
def test_accept_encoding_negotiation(env, client, accept, want):
    headers = [("Accept-Encoding", accept)] if accept is not None else []
    resp = client.request(env.plain, "GET", "/app.js", host=HOST, headers=headers)
    assert resp.status == 200
    assert resp.header("Content-Encoding") == want, resp.header("Content-Encoding")
    assert decode(resp.body, want) == SCRIPT
    # The answer depends on Accept-Encoding either way: caches must know.
    assert vary_has_accept_encoding(resp.header("Vary"))
    if want is None:
        assert resp.header("Content-Length") == str(len(SCRIPT))


def test_route_settings_types_min_length_encodings(env, client):
    page = b"<html><body>" + b"<p>hello</p>" * 200 + b"</body></html>"
    env.web.reset(Asset(body=page, content_type="text/html; charset=utf-8"))
    # The site's defaults leave HTML alone (BREACH) ...
    resp = client.request(env.plain, "GET", "/index.html", host=HOST,
                          headers=[("Accept-Encoding", "br, gzip")])
    assert resp.header("Content-Encoding") is None and resp.body == page
    # ... the tuned route lists it, and offers gzip only.
    resp = client.request(env.plain, "GET", "/tuned/index.html", host=HOST,
                          headers=[("Accept-Encoding", "br, zstd, gzip")])
    assert resp.header("Content-Encoding") == "gzip"
    assert decode(resp.body, "gzip") == page
    # min_length 10 there: 20 bytes are compressed; the site's 1024 leaves them.
    env.web.reset(Asset(body=b"x" * 20, content_type="text/plain"))
    resp = client.request(env.plain, "GET", "/tuned/small", host=HOST,
                          headers=[("Accept-Encoding", "gzip")])
    assert resp.header("Content-Encoding") == "gzip" and decode(resp.body, "gzip") == b"x" * 20
    resp = client.request(env.plain, "GET", "/small", host=HOST,
                          headers=[("Accept-Encoding", "gzip")])
    assert resp.header("Content-Encoding") is None and resp.body == b"x" * 20


# ------------------------------------------------------------------ never

def never(env, client, target="/app.js", method="GET", headers=(), body=SCRIPT):
    resp = client.request(env.plain, method, target, host=HOST,
                          headers=[("Accept-Encoding", "gzip, br, zstd")] + list(headers))
    assert resp.header("Content-Encoding") in (None, "identity-kept"), resp.header(
        "Content-Encoding")
    if method != "HEAD" and body is not None:
        assert resp.body == body
    return resp


def test_never_when_route_turns_it_off(env, client):
    resp = never(env, client, "/off/app.js")
    assert resp.header("Content-Length") == str(len(SCRIPT))


def test_never_for_event_stream(env, client):
    # "live" lists text/*: text/event-stream is still never compressed.
    env.live.handler = SSE([b"data: 1\n\n" * 200])
    never(env, client, "/live/events", body=b"data: 1\n\n" * 200)


def test_never_when_upstream_encoded(env, client):
    packed = zlib.compress(SCRIPT)
    env.web.reset(Asset(body=packed, headers=[("Content-Encoding", "deflate")]))
    resp = client.request(env.plain, "GET", "/app.js", host=HOST,
                          headers=[("Accept-Encoding", "gzip, deflate, br")])
    assert resp.header("Content-Encoding") == "deflate" and resp.body == packed


def test_never_with_no_transform(env, client):
    env.web.reset(Asset(headers=[("Cache-Control", "public, no-transform")]))
    never(env, client)


def test_never_for_range_requests_or_206(env, client):
    resp = never(env, client, headers=[("Range", "bytes=0-99")])
    assert resp.header("Content-Length") == str(len(SCRIPT))
    env.web.reset(Asset(body=SCRIPT[:100], status=206,
                        headers=[("Content-Range", "bytes 0-99/%d" % len(SCRIPT))]))
    never(env, client, body=SCRIPT[:100])


def test_never_for_head(env, client):
    resp = never(env, client, method="HEAD")
    assert resp.header("Content-Length") == str(len(SCRIPT))


@pytest.mark.parametrize("status", [204, 304])
def test_never_for_204_304(env, client, status):
    env.web.reset(Asset(status=status, headers=[("ETag", '"e1"')]))
    resp = never(env, client, body=None)
    assert resp.status == status and resp.body == b""


def test_never_for_small_or_unlisted(env, client):
    env.web.reset(Asset(body=b"{}" * 100, content_type="application/json"))
    never(env, client, body=b"{}" * 100)            # 200 bytes < min_length 1024
    env.web.reset(Asset(content_type="image/png"))
    resp = never(env, client)
    assert resp.header("Vary") is None               # nothing depends on Accept-Encoding


# ------------------------------------------------------------------ streaming

def _decoded_until(st, dec, needle, out):
    """Read the stream <st> until its decoded bytes (<dec>: a zlib decompressobj)
    hold <needle>; out[0] collects them, out[1] counts the bytes decoded."""
    def take():
        data = st.data
        out[0] += dec.decompress(data[out[1]:])
        out[1] = len(data)
        return needle in out[0]
    if hasattr(st, "more"):                          # HTTP/1.1: read more chunks
        while not take():
            if not st.more():
                raise AssertionError("stream ended before %r" % needle)
        return
    st.client.wait(lambda: take() or st.ended, what="%r decoded" % needle)
    assert needle in out[0], out[0]


def test_streamed_chunks_are_flushed_at_once(env, client):
    """A stream of a compressible type: each upstream piece can be decoded by
    the client before the upstream sends the next one."""
    release = threading.Event()

    def ticks(req, conn):
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        conn.send(b"b\r\ndata: one\n\n\r\n")
        if not release.wait(30):
            raise AssertionError("never released")
        conn.send(b"b\r\ndata: two\n\n\r\n0\r\n\r\n")
        return True
    env.live.handler = ticks
    st = client.stream(env.plain, "GET", "/live/ticks", host=HOST,
                       headers=[("Accept-Encoding", "gzip")])
    with st:
        assert st.status == 200 and st.header("Content-Encoding") == "gzip"
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = [b"", 0]
        _decoded_until(st, dec, b"data: one\n\n", out)
        assert b"two" not in out[0]
        release.set()
        _decoded_until(st, dec, b"data: two\n\n", out)
        st.to_end()


def test_event_stream_flushes_with_compress_configured(env, client):
    release = threading.Event()
    env.live.handler = SSE([b"data: first\n\n", release, b"data: second\n\n"])
    st = client.stream(env.plain, "GET", "/live/events", host=HOST,
                       headers=[("Accept-Encoding", "gzip, br"), ("Accept", "text/event-stream")])
    with st:
        assert st.status == 200 and st.header("Content-Encoding") is None
        st.until(b"data: first\n\n")
        release.set()
        st.until(b"data: second\n\n")
        st.to_end()


def test_large_stream_bounded_memory(env):
    """64 MiB of chunked text through br and gzip: the proxy's RSS stays
    within a fixed bound (no buffering of the body, state per stream)."""
    need("curl")
    total = 64 * 1024 * 1024
    env.web.reset(ChunkedText(total))
    rss0 = rss_kib(env.proxy.pid)
    peak = [rss0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(env.proxy.pid))
            time.sleep(0.05)
    t = threading.Thread(target=sample)
    t.start()
    try:
        for coding in ("br", "gzip"):
            p = subprocess.run(["curl", "-sS", "--http1.1", "-H", "Accept-Encoding: " + coding,
                                "-H", "Host: " + HOST, "-o", "-",
                                "http://127.0.0.1:%d/big.txt" % env.plain],
                               capture_output=True, timeout=300)
            assert p.returncode == 0, p.stderr
            assert len(decode(p.stdout, coding)) >= total
    finally:
        done.set()
        t.join()
    grown_mib = (peak[0] - rss0) / 1024
    print("proxy RSS grew by %.1f MiB" % grown_mib)
    # One stream at a time: its encoder (a few MiB at most), 1 MiB queued to the client,
    # libevent's chunks.  Buffering the body would show 64 MiB and more.
    # AddressSanitizer keeps freed memory in quarantine: RSS says nothing there.
    if os.environ.get("PORTCULLIS_SANITIZE") != "1":
        assert grown_mib < 24, "proxy RSS grew by %.1f MiB for a 64 MiB body" % grown_mib


def test_client_gone_mid_stream_frees_the_encoder(env):
    """A client that hangs up mid-body: the transaction ends (and, under ASan,
    nothing leaks); the proxy serves the next request."""
    env.web.reset(ChunkedText(32 * 1024 * 1024))
    conn = http.client.HTTPConnection("127.0.0.1", env.plain, timeout=WAIT)
    conn.request("GET", "/gone.txt", headers={"Host": HOST, "Accept-Encoding": "zstd"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Encoding") == "zstd"
    resp.read(1000)
    conn.close()
    entry = env.proxy.wait_access_log(lambda e: e.get("path") == "/gone.txt")
    assert entry["status"] == 200 and entry["bytes_out"] < 32 * 1024 * 1024, entry
    env.web.reset(Asset())
    import clients
    never(env, clients.make("http1"), "/off/x.js")


# ------------------------------------------------------------------ other clients

def test_python_http_client(env):
    conn = http.client.HTTPConnection("127.0.0.1", env.plain, timeout=WAIT)
    try:
        conn.request("GET", "/app.js", headers={"Host": HOST, "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert resp.getheader("Content-Encoding") == "gzip"
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert decode(body, "gzip") == SCRIPT
        # The same connection goes on: the chunked body ended cleanly.
        conn.request("GET", "/app.js", headers={"Host": HOST, "Accept-Encoding": "br"})
        resp = conn.getresponse()
        assert resp.getheader("Content-Encoding") == "br"
        assert decode(resp.read(), "br") == SCRIPT
    finally:
        conn.close()


def test_http10_client_body_ends_with_the_connection(env):
    with socket.create_connection(("127.0.0.1", env.plain), timeout=WAIT) as sock:
        sock.sendall(b"GET /app.js HTTP/1.0\r\nHost: %s\r\nAccept-Encoding: gzip\r\n\r\n"
                     % HOST.encode())
        data = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert lines[0].split()[1] == "200", lines
    assert "content-encoding: gzip" in lines, lines
    assert not [x for x in lines if x.startswith(("content-length:", "transfer-encoding:"))]
    assert decode(body, "gzip") == SCRIPT


def _browser_missing():
    tools = {"node": shutil.which("node"), "chromium": shutil.which("chromium")}
    missing = [name for name, path in tools.items() if path is None]
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        missing.append("playwright-core (npm ci in tests/e2e/browser)")
    return missing


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_chromium_fetches_compressed_script(env, scheme):
    missing = _browser_missing()
    if missing:
        need("node")
        need("chromium")
        pytest.fail("missing: %s" % ", ".join(missing))
    page = b"<!doctype html><title>compress</title><p>compress test</p>"
    port = env.https if scheme == "https" else env.plain

    def handler(req, conn):
        if req.path.endswith(".js"):
            return Asset()(req, conn)
        return Asset(body=page, content_type="text/html")(req, conn)
    env.web.reset(handler)
    origin = "%s://%s:%d" % (scheme, HOST, port)
    p = subprocess.run([shutil.which("node"), os.path.join(BROWSER_DIR, "fetch_asset.mjs"),
                        json.dumps({"page": origin + "/", "asset": origin + "/app.js",
                                    "args": ["--host-resolver-rules=MAP %s 127.0.0.1" % HOST]})],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = json.loads(p.stdout)
    assert out["status"] == 200, out
    assert out["sha256"] == hashlib.sha256(SCRIPT).hexdigest(), out
    accepted = [r.header("Accept-Encoding") for r in env.web.snapshot() if r.path == "/app.js"]
    assert accepted, env.web.snapshot()
    if scheme == "https":
        assert out["protocol"] == "h2", out
        # Chromium asks for br (and zstd) over TLS: the best one is used.
        assert out["encoding"] == "br", out
    else:
        assert out["protocol"] == "http/1.1", out
        assert out["encoding"] in ("gzip", "br"), out


# ------------------------------------------------------------------ configuration

@pytest.mark.parametrize("value, message", [
    ("yes", 'sites[0].compress: expected true, false or an object'),
    ({"level": 6}, "sites[0].compress.level: the codings count levels differently"),
    ({"level": {"gzip": 12}}, "sites[0].compress.level.gzip"),
    ({"level": {"deflate": 1}}, "sites[0].compress.level.deflate"),
    ({"types": ["text/event-stream"]}, "sites[0].compress.types[0]: text/event-stream is never"),
    ({"types": ["html"]}, 'sites[0].compress.types[0]: "html" is not a media type'),
    ({"encodings": ["deflate"]}, "sites[0].compress.encodings[0]"),
    ({"min": 1}, "sites[0].compress.min: unknown key"),
])
def test_config_errors_name_the_path(tmp_path, value, message):
    cfg = config({"web": {"servers": ["127.0.0.1:9"]}},
                 [{"name": "s", "compress": value, "routes": [route("web", "web")]}])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    p = run_binary(["-t", "-c", str(path)])
    assert p.returncode != 0
    assert message in p.stderr, p.stderr


def test_config_refuses_compress_on_respond_route(tmp_path):
    cfg = config({"web": {"servers": ["127.0.0.1:9"]}},
                 [{"name": "s", "routes": [
                     {"name": "r", "respond": {"status": 200, "body": "x"}, "compress": True},
                     route("web", "web")]}])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    p = run_binary(["-t", "-c", str(path)])
    assert p.returncode != 0
    assert 'sites[0].routes[0].compress: only routes with "upstream"' in p.stderr, p.stderr

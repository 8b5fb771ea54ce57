"""One request API over HTTP/1.1 or HTTP/2, for tests that must hold for both.

conftest.py's `client` fixture (params "http1", "http2") hands a test one of
these; the test then sends through it exactly what it would send through
harness.request() and reads the same attributes back (status, headers with
header()/header_all(), body, json(), text()):

    def test_x(env, client):
        resp = client.request(env.proxy.port, "GET", "/e/", host="posthog.test")

HTTP/2 goes to the same plain listener with prior knowledge (h2c), so that
the same proxy, config and upstreams serve both; the listener needs
"h2c": true (client.listener(cfg) / configs.posthog_example(h2c=True)).
Over HTTP/2 `host` becomes :authority and the header names are sent
lower-case; connection-specific headers (Connection, Keep-Alive, ...) are
left out, as an HTTP/2 client does.
"""

import threading

from harness import WAIT, RawClient, build_request, request as http1_request
from h2client import H2Client, h2_headers

PROTOCOLS = ["http1", "http2"]


class Http1:
    protocol = "http1"
    version = "HTTP/1.1"        # as the access log names it

    def request(self, port, method, target, host="localhost", headers=(), body=None,
                timeout=WAIT, source=None, allow_reset=False):
        return http1_request(port, method, target, host=host, headers=headers, body=body,
                             timeout=timeout, source=source)

    def stream(self, port, method, target, host="localhost", headers=(), timeout=15):
        c = RawClient(port, timeout=timeout)
        c.send(build_request(method, target, host=host, headers=headers))
        return Http1Stream(c, c.read_head())

    def listener(self, cfg):
        return cfg

    def __repr__(self):
        return "http1"


class Http2:
    protocol = "http2"
    version = "HTTP/2.0"

    def request(self, port, method, target, host="localhost", headers=(), body=None,
                timeout=WAIT, source=None, allow_reset=False):
        """<allow_reset>: a stream reset comes back (status None, .reset set)
        instead of failing the test; see refused()."""
        hs = h2_headers(headers)
        if body is not None and not any(n == b"content-length" for n, _ in hs):
            hs.append((b"content-length", b"%d" % len(body)))  # as browsers and curl send it
        with H2Client(port, timeout=timeout, source=source) as c:
            s = c.request(method, target, host, hs, body)
            if s.status is None and not (allow_reset and s.reset is not None):
                raise AssertionError("HTTP/2 %s %s: no response (stream reset %s, GOAWAY %r); "
                                     "frames %s" % (method, target, s.reset, c.goaway,
                                                    c.frame_log()))
            return s

    def stream(self, port, method, target, host="localhost", headers=(), timeout=15):
        c = H2Client(port, timeout=timeout)
        sid = c.start(method, target, host, h2_headers(headers))
        s = c.stream(sid)
        c.wait(lambda: s.status is not None or s.done, what="response head")
        return Http2Stream(c, s)

    def listener(self, cfg):
        """<cfg> with h2c on its plain listeners (returned for chaining)."""
        for lst in cfg.get("listeners", []):
            if not lst.get("tls") and lst.get("type", "http") == "http":
                lst["h2c"] = True
        return cfg

    def __repr__(self):
        return "http2"


def refused(resp):
    """True when a request was refused as malformed: 400, or over HTTP/2 a
    stream reset with PROTOCOL_ERROR (libnghttp2 resets before we see it)."""
    return resp.status == 400 or getattr(resp, "reset", None) == 1


def make(protocol):
    return {"http1": Http1, "http2": Http2}[protocol]()


class Http1Stream:
    """A streamed response on HTTP/1.1: status, headers, data so far."""

    def __init__(self, client, resp):
        self.client = client
        self.resp = resp
        self.status = resp.status
        self.data = b""
        self.ended = False
        self.chunked = (resp.header("Transfer-Encoding") or "").lower() == "chunked"

    def header(self, name):
        return self.resp.header(name)

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

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Http2Stream:
    """A streamed response on one HTTP/2 stream."""

    def __init__(self, client, stream):
        self.client = client
        self.s = stream
        self.status = stream.status
        self.lock = threading.Lock()

    @property
    def data(self):
        return self.s.body

    @property
    def ended(self):
        return self.s.done

    def header(self, name):
        return self.s.header(name)

    def until(self, needle):
        self.client.wait(lambda: needle in self.s.data or self.s.done,
                         what="%r on stream %d" % (needle, self.s.id))
        if needle not in self.s.data:
            raise AssertionError("stream ended before %r; got %r" % (needle, self.s.body))

    def to_end(self):
        self.client.wait(lambda: self.s.done, what="end of stream %d" % self.s.id)
        assert self.s.reset is None, "stream %d reset: %r" % (self.s.id, self.s)

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

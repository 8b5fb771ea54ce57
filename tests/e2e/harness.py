"""Harness for the Portcullis end-to-end tests.

Three pieces, each the one place that does its job:

  Upstream     a recording HTTP/1.1 server on 127.0.0.1 (port 0, threaded,
               keep-alive) that stores every request it receives and answers
               with a configurable responder (echo, fixed, slow, SSE, huge
               header, close without answering, big body).
  Proxy        the real portcullis binary started with -c on a config file;
               learns its ports from the "listening on ADDR:PORT (name)" lines,
               keeps stdout (access log) and stderr in files, and on stop sends
               SIGTERM and checks that it exited 0 without sanitizer reports.
  RawClient    a socket client that sends exact bytes and parses the raw
               response, so tests see precisely what the proxy sent.

Lab owns every Upstream and Proxy a test (or a module) creates and stops them
all, by PID, also when the test fails.  Standard library only.
"""

import base64
import gzip
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SOURCE_DIR = os.environ.get("PORTCULLIS_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("PORTCULLIS_BIN") or os.path.join(SOURCE_DIR, "build", "portcullis")

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "deps"))
import depslist  # noqa: E402
from ports import free_port  # noqa: E402


def missing_peer(what):
    """Stop the calling test for a missing peer: fail when PORTCULLIS_REQUIRE_ALL is
    set (scripts/test.sh, after scripts/install-deps.sh installed every peer), skip
    otherwise.  <what> says what is missing and where it comes from."""
    import pytest
    if os.environ.get("PORTCULLIS_REQUIRE_ALL"):
        pytest.fail("%s, and PORTCULLIS_REQUIRE_ALL is set" % what, pytrace=False)
    pytest.skip(what, allow_module_level=True)


def need(name, kind="program"):
    """The path of the program <name> (kind "program"), or True when the Python or
    Perl module <name> can be imported; otherwise stops the test with
    missing_peer(), naming where scripts/deps.list says <name> comes from."""
    if kind == "program":
        path = shutil.which(name)
        if path:
            return path
    elif kind == "python":
        import importlib.util
        if importlib.util.find_spec(name) is not None:
            return True
    elif kind == "perl":
        perl = shutil.which("perl")
        if perl and subprocess.run([perl, "-M" + name, "-e", "1"], capture_output=True).returncode == 0:
            return True
    else:
        raise ValueError("need: unknown kind %r" % kind)
    missing_peer("%s %s is missing: %s" % (kind, name, depslist.where(name, kind)))
    return None


# How long to wait for things that should happen "at once".
WAIT = 10.0
# How long a proxy may take to start: under ASan on two busy cores, making
# an RSA key at start took longer than WAIT.
START_WAIT = 30.0

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:")


def wait_until(predicate, timeout=WAIT, interval=0.02, what="condition"):
    """Poll <predicate> until it returns a true value; return that value or raise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def closed_port():
    """A loopback port nobody listens on, reserved for this process (ports.py)."""
    return free_port()


# --------------------------------------------------------------------------
# Header lists (name, value) preserving order and duplicates
# --------------------------------------------------------------------------

class HeaderList:
    """Mixin: self.headers is a list of (name, value) str pairs."""

    headers = ()

    def header_all(self, name):
        name = name.lower()
        return [v for (n, v) in self.headers if n.lower() == name]

    def header(self, name):
        values = self.header_all(name)
        return values[0] if values else None

    def has_header(self, name):
        return bool(self.header_all(name))

    def header_names(self):
        return [n.lower() for (n, _) in self.headers]


def _parse_header_block(block):
    """Header lines (bytes, CRLF separated, no final blank line) → list of pairs."""
    headers = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("header line without colon: %r" % line[:200])
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return headers


# --------------------------------------------------------------------------
# Recording upstream
# --------------------------------------------------------------------------

class RecordedRequest(HeaderList):
    """One request as the upstream received it."""

    def __init__(self, upstream, conn_id, method, target, version, headers, body, framing):
        self.upstream = upstream
        self.conn_id = conn_id
        self.method = method
        self.target = target          # raw request-target, path + "?" + query
        self.version = version
        self.headers = headers
        self.body = body
        self.framing = framing        # "content-length", "chunked" or "none"
        self.time = time.monotonic()

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else None

    def __repr__(self):
        return "<%s got %s %s (%d body bytes, %s)>" % (self.upstream.name, self.method, self.target,
                                                       len(self.body), self.framing)


class UpstreamConnection:
    """The server side of one connection to an Upstream, handed to responders."""

    def __init__(self, upstream, sock, conn_id):
        self.upstream = upstream
        self.sock = sock
        self.conn_id = conn_id
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def peer_closed(self):
        """True when the peer has closed (or reset) the connection."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return False
            data = self.sock.recv(65536, socket.MSG_PEEK)
            return data == b""
        except OSError:
            return True

    def _recv(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError
        self.buf += data

    def read_until(self, marker, limit):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("request head larger than %d bytes" % limit)
            self._recv()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def read_exact(self, n):
        while len(self.buf) < n:
            self._recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_request(self):
        """Read one request; returns a RecordedRequest or raises EOFError."""
        head = self.read_until(b"\r\n\r\n", 4 << 20)
        line, _, rest = head.partition(b"\r\n")
        parts = line.decode("latin-1").split(" ")
        if len(parts) != 3:
            raise ValueError("bad request line %r" % line[:200])
        method, target, version = parts
        headers = _parse_header_block(rest)
        te = [v for (n, v) in headers if n.lower() == "transfer-encoding"]
        cl = [v for (n, v) in headers if n.lower() == "content-length"]
        if te:
            framing = "chunked"
            body = b""
            while True:
                size_line = self.read_until(b"\r\n", 1024)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self.read_until(b"\r\n", 65536):  # trailers, then a blank line
                        pass
                    break
                body += self.read_exact(size)
                self.read_exact(2)
        elif cl:
            framing = "content-length"
            body = self.read_exact(int(cl[0]))
        else:
            framing = "none"
            body = b""
        return RecordedRequest(self.upstream, self.conn_id, method, target, version, headers,
                               body, framing)


def _response_head(status, headers, reason=None):
    reasons = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
               302: "Found", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
               503: "Service Unavailable"}
    reason = reason or reasons.get(status, "Status")
    out = ["HTTP/1.1 %d %s\r\n" % (status, reason)]
    for name, value in headers:
        out.append("%s: %s\r\n" % (name, value))
    out.append("\r\n")
    return "".join(out).encode("latin-1")


def echo_document(req):
    """What the echo responder answers: JSON describing the request it saw."""
    doc = {
        "upstream": req.upstream.name,
        "method": req.method,
        "target": req.target,
        "headers": [[n, v] for (n, v) in req.headers],
        "body_len": len(req.body),
        "body_sha256": hashlib.sha256(req.body).hexdigest(),
        "framing": req.framing,
    }
    if len(req.body) <= 65536:
        doc["body_b64"] = base64.b64encode(req.body).decode("ascii")
    return doc


class Echo:
    """Answer with a JSON description of the request (status 200 by default)."""

    def __init__(self, status=200, headers=()):
        self.status = status
        self.headers = list(headers)

    def __call__(self, req, conn):
        body = json.dumps(echo_document(req)).encode()
        head = _response_head(self.status, [("Content-Type", "application/json"),
                                            ("Content-Length", str(len(body)))] + self.headers)
        conn.send(head if req.method == "HEAD" else head + body)
        return True


class Fixed:
    """Answer with a fixed status, header list and body (Content-Length added
    unless <headers> already frame the body)."""

    def __init__(self, status=200, headers=(), body=b""):
        self.status = status
        self.headers = list(headers)
        self.body = body

    def __call__(self, req, conn):
        headers = list(self.headers)
        names = [n.lower() for (n, _) in headers]
        if "content-length" not in names and "transfer-encoding" not in names:
            headers.append(("Content-Length", str(len(self.body))))
        head = _response_head(self.status, headers)
        conn.send(head if req.method == "HEAD" else head + self.body)
        return True


class Slow:
    """Sleep <delay> seconds before answering with <then> (Echo by default)."""

    def __init__(self, delay, then=None):
        self.delay = delay
        self.then = then or Echo()

    def __call__(self, req, conn):
        time.sleep(self.delay)
        return self.then(req, conn)


class HugeHeader:
    """Answer 200 with one response header of <size> bytes."""

    def __init__(self, size):
        self.size = size

    def __call__(self, req, conn):
        conn.send(_response_head(200, [("X-Huge", "h" * self.size), ("Content-Length", "2")]) +
                  b"ok")
        return True


class CloseWithoutAnswer:
    """Read the request, then close the connection without a byte of answer."""

    def __call__(self, req, conn):
        return False


class BigBody:
    """Answer with <size> pseudo-random bytes (deterministic), Content-Length
    or chunked in pieces of 16 KiB."""

    def __init__(self, size, chunked=False, seed=b"portcullis"):
        self.chunked = chunked
        self.body = make_bytes(size, seed)

    def __call__(self, req, conn):
        if not self.chunked:
            conn.send(_response_head(200, [("Content-Type", "application/octet-stream"),
                                           ("Content-Length", str(len(self.body)))]) + self.body)
            return True
        conn.send(_response_head(200, [("Content-Type", "application/octet-stream"),
                                       ("Transfer-Encoding", "chunked")]))
        for i in range(0, len(self.body), 16384):
            piece = self.body[i:i + 16384]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        return True


class SSE:
    """A Server-Sent Events stream (chunked).  <steps> run in order:

      bytes              sent as one chunk
      threading.Event    wait until the test sets it (at most 60 s)
      float / int        sleep that many seconds
      "until_closed"     send a comment chunk every 0.1 s until the peer has
                         closed the connection (then self.peer_closed is set)

    After the last step the stream is ended with the zero chunk (unless the
    peer closed it).  self.sent lists the chunks sent so far.
    """

    def __init__(self, steps):
        self.steps = list(steps)
        self.sent = []
        self.started = threading.Event()
        self.peer_closed = threading.Event()
        self.finished = threading.Event()

    def _chunk(self, conn, data):
        # Recorded before it is sent: the proxy may deliver it to the test
        # before this thread runs again.
        self.sent.append(data)
        conn.send(b"%x\r\n%s\r\n" % (len(data), data))

    def __call__(self, req, conn):
        conn.send(_response_head(200, [("Content-Type", "text/event-stream"),
                                       ("Cache-Control", "no-cache"),
                                       ("Transfer-Encoding", "chunked")]))
        self.started.set()
        try:
            for step in self.steps:
                if isinstance(step, bytes):
                    self._chunk(conn, step)
                elif isinstance(step, threading.Event):
                    if not step.wait(60):
                        raise AssertionError("SSE step never released")
                elif isinstance(step, (int, float)):
                    time.sleep(step)
                elif step == "until_closed":
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        if conn.peer_closed():
                            break
                        self._chunk(conn, b": keep-alive\n\n")
                        time.sleep(0.1)
                    self.peer_closed.set()
                    return False
            conn.send(b"0\r\n\r\n")
        except OSError:
            self.peer_closed.set()
            return False
        finally:
            self.finished.set()
        return True


def make_bytes(size, seed=b"portcullis"):
    """<size> deterministic pseudo-random bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest() * 64
        counter += 1
    return bytes(out[:size])


class Upstream:
    """A recording HTTP/1.1 server on 127.0.0.1:0.

    self.requests   every request received, in order (RecordedRequest)
    self.handler    responder called for each request; Echo() by default;
                    returns True to keep the connection open
    """

    def __init__(self, name):
        self.name = name
        self.requests = []
        self.handler = Echo()
        self.cond = threading.Condition()
        self.connections = 0
        self.open_connections = 0
        self.errors = []
        self._sockets = set()
        self._stopping = False
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listen.bind(("127.0.0.1", 0))
        self.listen.listen(512)
        self.port = self.listen.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self._accept_loop, name="upstream-" + name,
                                        daemon=True)
        self._thread.start()

    def __repr__(self):
        return "<Upstream %s %s>" % (self.name, self.address)

    # -- test side ---------------------------------------------------------

    def reset(self, handler=None):
        """Forget recorded requests and go back to the echo responder."""
        with self.cond:
            self.requests = []
            self.handler = handler or Echo()

    def snapshot(self):
        with self.cond:
            return list(self.requests)

    def with_request_id(self, request_id):
        return [r for r in self.snapshot() if r.header("X-Request-ID") == request_id]

    def wait_for_count(self, n, timeout=WAIT):
        """Wait until at least <n> requests were recorded; return them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: expected %d requests, got %d: %r" % (
                        self.name, n, len(self.requests), self.requests))
                self.cond.wait(left)
            return list(self.requests)

    def close(self):
        self._stopping = True
        try:
            self.listen.close()
        except OSError:
            pass
        with self.cond:
            socks = list(self._sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    # -- server side -------------------------------------------------------

    def _accept_loop(self):
        while not self._stopping:
            try:
                sock, _ = self.listen.accept()
            except OSError:
                return
            with self.cond:
                self.connections += 1
                self.open_connections += 1
                self._sockets.add(sock)
                conn_id = self.connections
            threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True,
                             name="upstream-%s-%d" % (self.name, conn_id)).start()

    def _serve(self, sock, conn_id):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = UpstreamConnection(self, sock, conn_id)
        try:
            while True:
                try:
                    req = conn.read_request()
                except (EOFError, ConnectionError):
                    return
                with self.cond:
                    self.requests.append(req)
                    handler = self.handler
                    self.cond.notify_all()
                keep = handler(req, conn)
                if not keep or (req.header("Connection") or "").lower() == "close":
                    return
        except Exception as exc:  # recorded; tests can look at self.errors
            if not self._stopping and not isinstance(exc, OSError):
                self.errors.append(repr(exc))
        finally:
            with self.cond:
                self.open_connections -= 1
                self._sockets.discard(sock)
            try:
                sock.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# Raw client
# --------------------------------------------------------------------------

class Response(HeaderList):
    """A response as received: status, reason, headers (pairs), body (decoded
    from chunked when it was chunked; raw chunks in self.chunks)."""

    def __init__(self, version, status, reason, headers, head_bytes):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.head_bytes = head_bytes
        self.body = b""
        self.chunks = []

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %s, %d body bytes: %r>" % (self.status, self.reason, len(self.body),
                                                        self.body[:300])


class RawClient:
    """One TCP connection to the proxy: send exact bytes, read raw responses."""

    def __init__(self, port, host="127.0.0.1", timeout=WAIT, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_tolerant(self, data):
        """Send, but a peer that stops reading (answered early and closed) is no error."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed by the proxy")
        data = self.sock.recv(262144)
        if not data:
            self.eof = True
            raise EOFError("connection closed by the proxy")
        self.buf += data

    def _until(self, marker, limit=1 << 24):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (marker, limit))
            self._fill()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self):
        """Read a status line and headers (skips 1xx interim responses)."""
        while True:
            head = self._until(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")
            parts = line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise AssertionError("bad status line %r" % line[:200])
            status = int(parts[1])
            resp = Response(parts[0], status, parts[2] if len(parts) > 2 else "",
                            _parse_header_block(rest), head + b"\r\n\r\n")
            if 100 <= status < 200 and status != 101:
                continue
            return resp

    def read_chunk(self, resp):
        """Read the next chunk of a chunked body: bytes, or None at the end."""
        size_line = self._until(b"\r\n", 4096)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the blank line
                line = self._until(b"\r\n", 65536)
                if not line:
                    return None
        data = self._exact(size)
        if self._exact(2) != b"\r\n":
            raise AssertionError("chunk of %d bytes not followed by CRLF" % size)
        resp.chunks.append(data)
        return data

    def read_body(self, resp, head_request=False):
        if head_request or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header_all("Content-Length")
        if te is not None:
            if te.lower() != "chunked":
                raise AssertionError("unexpected Transfer-Encoding %r" % te)
            parts = []
            while True:
                data = self.read_chunk(resp)
                if data is None:
                    break
                parts.append(data)
            resp.body = b"".join(parts)
        elif cl:
            if len(set(cl)) != 1:
                raise AssertionError("several Content-Length values in response: %r" % cl)
            resp.body = self._exact(int(cl[0]))
        else:
            parts = [self.buf]
            self.buf = b""
            while True:
                try:
                    data = self.sock.recv(262144)
                except ConnectionResetError:
                    break
                if not data:
                    self.eof = True
                    break
                parts.append(data)
            resp.body = b"".join(parts)
        return resp

    def read_response(self, head_request=False):
        resp = self.read_head()
        return self.read_body(resp, head_request)

    def request(self, method, target, host="localhost", headers=(), body=None):
        """Send one request built by build_request and read its response."""
        self.send(build_request(method, target, host, headers, body))
        return self.read_response(head_request=(method == "HEAD"))

    def closed_by_peer(self, timeout=2.0):
        """True when the proxy closes this connection within <timeout> s
        (without sending anything more)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        return data == b""


def build_request(method, target, host="localhost", headers=(), body=None):
    """Bytes of an HTTP/1.1 request.  Host first (None: no Host header), then
    <headers> (pairs, str or bytes), then Content-Length when <body> is not None
    and <headers> do not frame it themselves."""
    lines = [b"%s %s HTTP/1.1" % (_b(method), _b(target))]
    if host is not None:
        lines.append(b"Host: " + _b(host))
    names = []
    for name, value in headers:
        lines.append(_b(name) + b": " + _b(value))
        names.append(_b(name).lower().strip())
    if body is not None and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def _b(value):
    return value if isinstance(value, bytes) else value.encode("latin-1")


def request(port, method, target, host="localhost", headers=(), body=None, timeout=WAIT,
            source=None):
    """One request on a fresh connection; returns the Response.  Large bodies
    are sent from a thread so that an early answer (413) is still read."""
    with RawClient(port, timeout=timeout, source=source) as c:
        return exchange(c, build_request(method, target, host, headers, body),
                        head_request=(method == "HEAD"))


def exchange(client, data, head_request=False):
    """Send raw <data> on <client> and read one response, tolerating a proxy
    that answers before it read all of <data> and then closes."""
    if len(data) <= 65536:
        client.send_tolerant(data)
        return client.read_response(head_request)
    sender = threading.Thread(target=client.send_tolerant, args=(data,), daemon=True)
    sender.start()
    try:
        return client.read_response(head_request)
    finally:
        sender.join(WAIT * 6)


def rss_kib(pid):
    """Resident memory (VmRSS, KiB) of process <pid>."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def send_raw(port, data, timeout=WAIT):
    """Send raw bytes on a fresh connection and return (Response or None, rest):
    None when the proxy closed without a complete response."""
    with RawClient(port, timeout=timeout) as c:
        c.send_tolerant(data)
        try:
            resp = c.read_response()
        except (EOFError, ConnectionResetError):
            return None
        return resp


def gunzip_if(data, encoding):
    return gzip.decompress(data) if (encoding or "").lower() == "gzip" else data


# --------------------------------------------------------------------------
# The proxy process
# --------------------------------------------------------------------------

LISTEN_RE = re.compile(r" info listening on (\[[^\]]+\]|[^\s\[\]]+):(\d+) \(([^)]*)\)")
READY_RE = re.compile(r" info ready: (\d+) workers?")


class Proxy:
    """One running portcullis process (see Lab.proxy)."""

    def __init__(self, workdir, config, env=None, name="proxy", args=()):
        if not os.path.exists(BINARY):
            raise AssertionError("portcullis binary not found at %s (set PORTCULLIS_BIN)" % BINARY)
        self.name = name
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        if isinstance(config, dict):
            self.config_path = os.path.join(workdir, name + ".json")
            self.write_config(config)
        else:
            self.config_path = config
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.args = list(args)
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.runs = 0
        self._launch()

    def _launch(self):
        self.runs += 1
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([BINARY, "-c", self.config_path] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=self._stderr, env=self.env, cwd=self.workdir)
        self.pid = self.proc.pid
        self.ports = {}
        self.returncode = None
        self.stop_checked = False
        try:
            self._wait_started()
        except BaseException:
            self.kill()
            raise

    def restart_after_crash(self):
        """Start a fresh process after this one died (its logs are kept as
        NAME.stderr.N / NAME.stdout.N), so one crash does not fail every later
        test of a module.  Ports change."""
        self._close_files()
        os.replace(self.stderr_path, "%s.%d" % (self.stderr_path, self.runs))
        os.replace(self.stdout_path, "%s.%d" % (self.stdout_path, self.runs))
        self._launch()

    def write_config(self, config):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(config, f, indent=2)
        os.replace(tmp, self.config_path)

    def _wait_started(self):
        deadline = time.monotonic() + START_WAIT
        while True:
            err = self.stderr()
            for m in LISTEN_RE.finditer(err):
                self.ports[m.group(3)] = int(m.group(2))
            if READY_RE.search(err) and self.ports:
                return
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %s before it was ready; stderr:\n%s" % (
                    self.name, self.proc.returncode, err[-4000:]))
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s not ready within %.0f s (wanted 'listening on ADDR:PORT (name)' and "
                    "'ready: N workers' on stderr); stderr:\n%s" % (self.name, START_WAIT, err[-4000:]))
            time.sleep(0.02)

    @property
    def port(self):
        """Port of the first non-admin listener."""
        for name, port in self.ports.items():
            if name != "admin":
                return port
        raise AssertionError("no HTTP listener in %r" % self.ports)

    @property
    def admin_port(self):
        return self.ports["admin"]

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log(self):
        """Every complete access-log line on stdout, parsed as JSON."""
        out = []
        text = self.stdout()
        for line in text.split("\n")[:-1]:
            if line.strip():
                out.append(json.loads(line))
        return out

    def wait_access_log(self, predicate, timeout=WAIT):
        """Wait for an access-log entry matching <predicate>; return it."""
        def find():
            for entry in self.access_log():
                if predicate(entry):
                    return entry
            return None
        return wait_until(find, timeout, what="access log line on %s stdout; got:\n%s" % (
            self.name, self.stdout()[-3000:]))

    def wait_stderr(self, pattern, timeout=WAIT, start=0):
        """Wait until stderr (from offset <start>) matches the regex <pattern>."""
        rx = re.compile(pattern)
        def find():
            return rx.search(self.stderr()[start:])
        try:
            return wait_until(find, timeout, what=pattern)
        except AssertionError:
            raise AssertionError("%s: no stderr line matching %r within %.0f s; stderr:\n%s" % (
                self.name, pattern, timeout, self.stderr()[-4000:]))

    def alive(self):
        return self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            raise AssertionError("%s died with exit code %s; stderr:\n%s" % (
                self.name, self.proc.returncode, self.stderr()[-4000:]))

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()
        self._close_files()

    def _close_files(self):
        for f in (self._stdout, self._stderr):
            try:
                f.close()
            except OSError:
                pass

    def stop(self, timeout=40):
        """SIGTERM, wait, SIGKILL when needed.  Returns a list of problems
        (empty when the process exited 0 without sanitizer reports)."""
        problems = []
        if self.proc.poll() is None and "stopping:" in self.stderr():
            self.wait_exit(timeout)  # already draining after a test's own signal
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                problems.append("%s did not exit within %d s of SIGTERM (killed)" % (
                    self.name, timeout))
                self.kill()
        self.returncode = self.proc.returncode
        self._close_files()
        if not problems and self.returncode != 0:
            problems.append("%s exited with code %s" % (self.name, self.returncode))
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in err:
                problems.append("%s stderr contains %r" % (self.name, marker))
        if problems:
            problems.append("stderr of %s (last 6000 bytes):\n%s" % (self.name, err[-6000:]))
        return problems


def run_binary(args, env=None, timeout=30):
    """Run portcullis with <args> to completion; returns CompletedProcess (text).
    <env> is added to the environment; a None value removes the variable."""
    if not os.path.exists(BINARY):
        raise AssertionError("portcullis binary not found at %s (set PORTCULLIS_BIN)" % BINARY)
    full_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)  # None: make sure it is unset
        else:
            full_env[name] = value
    return subprocess.run([BINARY] + list(args), env=full_env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class Lab:
    """Owns the upstreams and proxies of a test or module; close() stops them
    all and raises when a proxy crashed or did not exit cleanly."""

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.upstreams = []
        self.proxies = []

    def upstream(self, name):
        up = Upstream(name)
        self.upstreams.append(up)
        return up

    def proxy(self, config, env=None, name=None, args=()):
        name = name or "proxy%d" % (len(self.proxies) + 1)
        p = Proxy(self.workdir, config, env=env, name=name, args=args)
        self.proxies.append(p)
        return p

    def assert_alive(self):
        """Raise when a proxy died (a crash is blamed on the test that just
        ran); the dead proxy is restarted for the tests that follow."""
        problems = []
        for p in self.proxies:
            if not p.stop_checked and not p.alive():
                try:
                    p.assert_alive()
                except AssertionError as exc:
                    problems.append(str(exc))
                p.restart_after_crash()
        if problems:
            raise AssertionError("\n".join(problems))

    def stop_proxy(self, p):
        """Stop one proxy now; returns its problems (also remembered)."""
        problems = p.stop()
        p.stop_checked = True
        return problems

    def close(self):
        problems = []
        for p in self.proxies:
            if not p.stop_checked:
                problems += p.stop()
                p.stop_checked = True
            else:
                p.kill()
                err = p.stderr()
                for marker in SANITIZER_MARKERS:
                    if marker in err:
                        problems.append("%s stderr contains %r:\n%s" % (p.name, marker,
                                                                        err[-6000:]))
        for up in self.upstreams:
            up.close()
        if problems:
            raise AssertionError("\n".join(problems))

"""An HTTP/2 client for the end-to-end tests, frame by frame.

Built on Debian's python3-hyperframe (frames) and python3-hpack (header
blocks) rather than on h2's state machine, so that a test can send exactly
what it wants, including what a well-behaved client never would: upper-case
names, CR/LF/NUL in values, pseudo-headers after regular ones, DATA beyond
content-length, WINDOW_UPDATE overflows, floods.  It still behaves as a client
should unless told otherwise: it answers SETTINGS and PING, returns flow
control credit for every DATA frame it reads, and keeps to the server's
windows when it sends a body.

    c = H2Client(port, tls=True)                 # preface + SETTINGS sent
    s = c.request("GET", "/x", "site.test")      # a Stream, read to its end
    s.status, s.headers, s.body, s.reset         # reset: RST_STREAM code or None
    c.goaway                                     # (error code, last stream id, debug) or None

H2Response-like streams carry the HeaderList helpers of harness.py, so tests
written for harness.Response read them the same way.
"""

import json
import select
import socket
import ssl
import struct
import time

import hpack
from hyperframe.frame import (DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from harness import WAIT, HeaderList

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Error codes (RFC 9113 section 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xa
ENHANCE_YOUR_CALM = 0xb
INADEQUATE_SECURITY = 0xc
HTTP_1_1_REQUIRED = 0xd
ERROR_NAMES = {0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR",
               0x3: "FLOW_CONTROL_ERROR", 0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED",
               0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM", 0x8: "CANCEL",
               0x9: "COMPRESSION_ERROR", 0xa: "CONNECT_ERROR", 0xb: "ENHANCE_YOUR_CALM",
               0xc: "INADEQUATE_SECURITY", 0xd: "HTTP_1_1_REQUIRED"}

# Frame types and the flags used here.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# SETTINGS identifiers.
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)


def error_name(code):
    return ERROR_NAMES.get(code, "0x%x" % code) if code is not None else None


def raw_frame(ftype, flags, stream_id, payload=b""):
    """The bytes of one frame, unchecked (any type, flags, length, stream)."""
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags,
                                                              stream_id & 0xffffffff) + payload


def _b(value):
    return value if isinstance(value, bytes) else value.encode("latin-1")


class Stream(HeaderList):
    """One stream as the client saw it.  headers: the response's header list
    (str pairs, pseudo-headers excluded); informational heads and trailers
    are kept apart."""

    def __init__(self, stream_id):
        self.id = stream_id
        self.status = None
        self.headers = []
        self.raw_headers = []         # every header block: list of (name, value) str pairs
        self.informational = []
        self.trailers = None
        self.data = bytearray()
        self.data_frames = []         # (monotonic time, bytes) per DATA frame
        self.ended = False            # END_STREAM received
        self.reset = None             # RST_STREAM error code received
        self.send_window = 0
        self.local_closed = False
        self.pushed = False

    @property
    def body(self):
        return bytes(self.data)

    @property
    def done(self):
        return self.ended or self.reset is not None

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        if self.reset is not None:
            return "<h2 stream %d reset %s>" % (self.id, error_name(self.reset))
        return "<h2 stream %d %s%s, %d body bytes: %r>" % (
            self.id, self.status, "" if self.ended else " (open)", len(self.data),
            bytes(self.data[:300]))


class ConnectionClosed(Exception):
    pass


class H2Client:
    """One HTTP/2 connection to the proxy (see the module's docstring).

    tls: TLS with ALPN <alpn> (SNI <server_name>, no certificate checks);
    otherwise h2c with prior knowledge.  <settings>: the client's SETTINGS
    (dict id → value); preface=False sends nothing at all yet."""

    def __init__(self, port, tls=False, host="127.0.0.1", server_name=None, alpn=("h2",),
                 timeout=WAIT, source=None, settings=None, preface=True, window=None,
                 client_cert=None):
        self.timeout = timeout
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alpn = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            if client_cert:  # (cert, key) paths, for client-certificate authentication
                ctx.load_cert_chain(*client_cert)
            sock = ctx.wrap_socket(sock, server_hostname=server_name)
            self.alpn = sock.selected_alpn_protocol()
            self.peer_cert = sock.getpeercert(binary_form=True)
        self.sock = sock
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.buf = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder(max_header_list_size=1 << 26)
        self.decoder.max_allowed_table_size = 1 << 20
        self.streams = {}
        self.next_id = 1
        self.frames = []               # (type, flags, stream id, summary) of every frame read
        self.goaways = []              # every GOAWAY: (error code, last stream id, debug)
        self.server_settings = {}
        self.settings_acked = 0
        self.pings = []                # opaque data of PING ACKs received
        self.closed = False
        self.conn_send_window = 65535
        self.peer_initial_window = 65535
        self.peer_max_frame = 16384
        self.auto_window = True        # return credit for DATA read
        self.window = window           # None: grow our windows to 16 MiB at the start
        self._header_block = None      # (stream id, frame type, fragments) while CONTINUATION
        self.auto_ack = True
        if preface:
            self.send_preface(settings)

    # -- plumbing --------------------------------------------------------------

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
        """Send raw bytes; False when the proxy already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.closed = True
            return False

    def send_preface(self, settings=None):
        s = {ENABLE_PUSH: 0}
        if self.window is None:
            s[INITIAL_WINDOW_SIZE] = 16 << 20
        elif self.window is not False:
            s[INITIAL_WINDOW_SIZE] = self.window
        s.update(settings or {})
        out = PREFACE + self.settings_frame(s)
        if self.window is None:
            out += WindowUpdateFrame(0, window_increment=(16 << 20) - 65535).serialize()
        self.send(out)

    @staticmethod
    def settings_frame(settings):
        payload = b"".join(struct.pack(">HI", k, v) for k, v in settings.items())
        return raw_frame(SETTINGS, 0, 0, payload)

    @property
    def goaway(self):
        return self.goaways[-1] if self.goaways else None

    def new_stream_id(self):
        sid = self.next_id
        self.next_id += 2
        return sid

    def stream(self, sid):
        s = self.streams.get(sid)
        if s is None:
            s = self.streams[sid] = Stream(sid)
            s.send_window = self.peer_initial_window
        return s

    # -- reading ---------------------------------------------------------------

    def _recv(self, timeout):
        if self.closed:
            raise ConnectionClosed("connection closed")
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
            if not r:
                return False
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            raise ConnectionClosed("connection closed by the proxy")
        self.buf += data
        return True

    def pump(self, timeout=0.05):
        """Read and handle the frames that arrive within <timeout> s (at least
        one read attempt).  Returns the number of frames handled; raises
        ConnectionClosed at EOF."""
        n = 0
        deadline = time.monotonic() + timeout
        while True:
            while len(self.buf) >= 9:
                length = struct.unpack(">I", b"\0" + self.buf[:3])[0]
                if len(self.buf) < 9 + length:
                    break
                head, body = self.buf[:9], self.buf[9:9 + length]
                self.buf = self.buf[9 + length:]
                self._handle(head, body)
                n += 1
            if n and not self.buf:
                return n
            if not self._recv(deadline - time.monotonic()):
                return n

    def wait(self, predicate, timeout=None, what="condition"):
        """Pump frames until <predicate>() is true; return its value.  Raises
        AssertionError on timeout or when the connection closes first."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("h2: timed out after %.1f s waiting for %s; frames: %s" % (
                    timeout, what, self.frame_log()))
            try:
                self.pump(min(left, 0.2))
            except ConnectionClosed:
                value = predicate()
                if value:
                    return value
                raise AssertionError("h2: connection closed while waiting for %s; frames: %s" % (
                    what, self.frame_log()))

    def wait_closed(self, timeout=None):
        """True when the proxy closes the connection within <timeout> s
        (frames read meanwhile are handled)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.pump(min(0.2, deadline - time.monotonic()))
            except ConnectionClosed:
                return True
        return False

    def frame_log(self, last=25):
        out = ["%s%s s%d %s" % (t, ("/%x" % f) if f else "", s, summary)
               for (t, f, s, summary) in self.frames[-last:]]
        return "[%s]%s" % (", ".join(out), " (closed)" if self.closed else "")

    def _handle(self, head, body):
        frame, length = Frame.parse_frame_header(memoryview(head))
        ftype = head[3]
        flags = head[4]
        sid = frame.stream_id
        if self._header_block is not None and ftype != CONTINUATION:
            raise AssertionError("h2: %s frame inside a header block" % type(frame).__name__)
        if ftype == CONTINUATION:
            if self._header_block is None:
                raise AssertionError("h2: CONTINUATION outside a header block")
            self._header_block[2].append(bytes(body))
            self.frames.append(("CONTINUATION", flags, sid, "%d bytes" % len(body)))
            if flags & END_HEADERS:
                bsid, btype, frags, bflags = self._header_block
                self._header_block = None
                self._header_block_done(bsid, btype, b"".join(frags), bflags)
            return
        frame.parse_body(memoryview(body))
        name = type(frame).__name__.replace("Frame", "").upper()
        if isinstance(frame, DataFrame):
            s = self.stream(sid)
            s.data += frame.data
            s.data_frames.append((time.monotonic(), bytes(frame.data)))
            self.frames.append((name, flags, sid, "%d bytes" % len(frame.data)))
            if flags & END_STREAM:
                s.ended = True
            if self.auto_window and length:
                out = WindowUpdateFrame(0, window_increment=length).serialize()
                if not s.done:
                    out += WindowUpdateFrame(sid, window_increment=length).serialize()
                self.send(out)
        elif isinstance(frame, HeadersFrame):
            self.frames.append((name, flags, sid, "%d bytes" % len(frame.data)))
            if flags & END_HEADERS:
                self._header_block_done(sid, ftype, bytes(frame.data), flags)
            else:
                self._header_block = (sid, ftype, [bytes(frame.data)], flags)
        elif ftype == PUSH_PROMISE:
            self.frames.append((name, flags, sid, "promised %d" % frame.promised_stream_id))
            self.stream(frame.promised_stream_id).pushed = True
            if flags & END_HEADERS:
                self.decoder.decode(bytes(frame.data), raw=True)
            else:
                self._header_block = (frame.promised_stream_id, ftype, [bytes(frame.data)], flags)
        elif isinstance(frame, RstStreamFrame):
            self.frames.append((name, flags, sid, error_name(frame.error_code)))
            self.stream(sid).reset = frame.error_code
        elif isinstance(frame, SettingsFrame):
            self.frames.append((name, flags, sid, "ack" if flags & ACK else
                                dict(frame.settings)))
            if flags & ACK:
                self.settings_acked += 1
                return
            for k, v in frame.settings.items():
                self.server_settings[k] = v
                if k == INITIAL_WINDOW_SIZE:
                    delta = v - self.peer_initial_window
                    self.peer_initial_window = v
                    for s in self.streams.values():
                        s.send_window += delta
                elif k == MAX_FRAME_SIZE:
                    self.peer_max_frame = v
                elif k == HEADER_TABLE_SIZE:
                    self.encoder.header_table_size = v
            if self.auto_ack:
                self.send(raw_frame(SETTINGS, ACK, 0))
        elif isinstance(frame, PingFrame):
            self.frames.append((name, flags, sid, "ack" if flags & ACK else "ping"))
            if flags & ACK:
                self.pings.append(bytes(frame.opaque_data))
            elif self.auto_ack:
                self.send(raw_frame(PING, ACK, 0, bytes(frame.opaque_data)))
        elif isinstance(frame, GoAwayFrame):
            self.frames.append((name, flags, sid, "%s last=%d %r" % (
                error_name(frame.error_code), frame.last_stream_id, frame.additional_data[:80])))
            self.goaways.append((frame.error_code, frame.last_stream_id,
                                 bytes(frame.additional_data)))
        elif isinstance(frame, WindowUpdateFrame):
            self.frames.append((name, flags, sid, "+%d" % frame.window_increment))
            if sid == 0:
                self.conn_send_window += frame.window_increment
            else:
                self.stream(sid).send_window += frame.window_increment
        else:
            self.frames.append((name, flags, sid, "%d bytes" % length))

    def _header_block_done(self, sid, ftype, block, flags):
        if ftype == PUSH_PROMISE:
            self.decoder.decode(block, raw=True)
            return
        pairs = [(n.decode("latin-1"), v.decode("latin-1"))
                 for n, v in self.decoder.decode(block, raw=True)]
        s = self.stream(sid)
        s.raw_headers.append(pairs)
        status = [v for n, v in pairs if n == ":status"]
        regular = [(n, v) for n, v in pairs if not n.startswith(":")]
        if status and 100 <= int(status[0]) < 200:
            s.informational.append((int(status[0]), regular))
        elif status:
            s.status = int(status[0])
            s.headers = regular
        else:
            s.trailers = regular
        if flags & END_STREAM:
            s.ended = True

    # -- writing ---------------------------------------------------------------

    def encode(self, headers, huffman=True):
        return self.encoder.encode([(_b(n), _b(v)) for n, v in headers], huffman=huffman)

    def request_headers(self, method, path, authority, headers=(), scheme=None):
        """The usual pseudo-headers then <headers> (names as given)."""
        hs = [(":method", method), (":scheme", scheme or self.scheme), (":path", path)]
        if authority is not None:
            hs.append((":authority", authority))
        return hs + list(headers)

    def send_headers(self, sid, headers, end_stream=True, block=None, split=None):
        """HEADERS (+ CONTINUATION when the block exceeds <split> or the frame size)."""
        block = self.encode(headers) if block is None else block
        size = split or self.peer_max_frame
        first, rest = block[:size], block[size:]
        out = raw_frame(HEADERS, (END_STREAM if end_stream else 0) | (0 if rest else END_HEADERS),
                        sid, first)
        while rest:
            piece, rest = rest[:size], rest[size:]
            out += raw_frame(CONTINUATION, 0 if rest else END_HEADERS, sid, piece)
        s = self.stream(sid)
        if end_stream:
            s.local_closed = True
        return self.send(out)

    def send_data(self, sid, data, end_stream=True, flow=True, timeout=None):
        """DATA frames for <data>, within the server's windows when <flow>
        (waits for WINDOW_UPDATEs); stops early, returning False, when the
        stream is reset or the connection closes."""
        s = self.stream(sid)
        view = memoryview(_b(data))
        if not view:
            ok = self.send(raw_frame(DATA, END_STREAM if end_stream else 0, sid))
            s.local_closed = s.local_closed or end_stream
            return ok
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while view:
            if s.done or self.closed:  # reset, or answered (an early 413) already
                return False
            n = min(len(view), self.peer_max_frame)
            if flow:
                n = min(n, self.conn_send_window, s.send_window)
                if n <= 0:
                    if time.monotonic() > deadline:
                        raise AssertionError("h2: no flow-control credit for stream %d within "
                                             "the timeout; frames: %s" % (sid, self.frame_log()))
                    try:
                        self.pump(0.1)
                    except ConnectionClosed:
                        return False
                    continue
            piece, view = view[:n], view[n:]
            last = end_stream and not view
            if not self.send(raw_frame(DATA, END_STREAM if last else 0, sid, bytes(piece))):
                return False
            self.conn_send_window -= n
            s.send_window -= n
            # Read what came meanwhile (an early 413, WINDOW_UPDATEs).
            try:
                if self.buf or select.select([self.sock], [], [], 0)[0]:
                    self.pump(0)
            except ConnectionClosed:
                return False
        s.local_closed = s.local_closed or end_stream
        return True

    def rst(self, sid, code=CANCEL):
        return self.send(raw_frame(RST_STREAM, 0, sid, struct.pack(">I", code)))

    def window_update(self, sid, increment):
        return self.send(raw_frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", increment)))

    def ping(self, data=b"12345678", ack=False):
        return self.send(raw_frame(PING, ACK if ack else 0, 0, data))

    def goaway_frame(self, code=NO_ERROR, last=0):
        return self.send(raw_frame(GOAWAY, 0, 0, struct.pack(">II", last, code)))

    def start(self, method, path, authority, headers=(), body=None, scheme=None,
              end_stream=True):
        """Open a stream; returns its id.  With <body> (bytes) DATA follows
        (END_STREAM on the last frame unless end_stream is False)."""
        sid = self.new_stream_id()
        hs = self.request_headers(method, path, authority, headers, scheme)
        if body is None:
            self.send_headers(sid, hs, end_stream=end_stream)
        else:
            self.send_headers(sid, hs, end_stream=False)
            self.send_data(sid, body, end_stream=end_stream)
        return sid

    def response(self, sid, timeout=None):
        """Wait for the end (or reset) of stream <sid>; returns the Stream.
        A stream the connection's GOAWAY left unanswered comes back unfinished."""
        s = self.stream(sid)
        try:
            self.wait(lambda: s.done, timeout, what="the end of stream %d" % sid)
        except AssertionError:
            if not (self.closed or self.goaway):
                raise
        return s

    def request(self, method, path, authority, headers=(), body=None, scheme=None,
                timeout=None):
        """One request on a new stream, read to its end; returns the Stream."""
        return self.response(self.start(method, path, authority, headers, body, scheme),
                             timeout)


def h2_headers(headers):
    """Header pairs as an HTTP/2 client sends them: names lower-cased; Host
    and the connection-specific ones left out."""
    out = []
    for n, v in headers:
        n = _b(n).lower()
        if n in (b"host", b"connection", b"keep-alive", b"proxy-connection",
                 b"transfer-encoding", b"upgrade"):
            continue
        out.append((n, _b(v)))
    return out

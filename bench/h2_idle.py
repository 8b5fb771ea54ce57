#!/usr/bin/env python3
"""Hold N idle HTTP/2 connections to 127.0.0.1:PORT over TLS (bench/h2.sh).

Each connection negotiates ALPN h2, exchanges SETTINGS, makes one GET /small
(so the proxy has set up everything a real session has) and then stays open
and silent.  Prints "ready N" once all are idle, holds them HOLD seconds,
then closes them and exits.  With PROTO "http/1.1" the connections negotiate
HTTP/1.1 instead and make the same keep-alive GET.  Standard library only.

usage: h2_idle.py PORT N HOLD [h2|http/1.1]
"""

import socket
import ssl
import struct
import sys
import time


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid) + payload


def hpack_get(authority, path):
    # :method GET (2), :scheme https (7), then :path and :authority as literals
    # without indexing, names from the static table (4 = :path, 1 = :authority).
    def lit(idx, value):
        v = value.encode()
        return bytes([idx]) + bytes([len(v)]) + v
    return b"\x82\x87" + lit(0x04, path) + lit(0x01, authority)


def read_frames(sock, buf):
    data = sock.recv(65536)
    if not data:
        raise EOFError("closed by the proxy")
    buf += data
    frames = []
    while len(buf) >= 9:
        length = struct.unpack(">I", b"\0" + buf[:3])[0]
        if len(buf) < 9 + length:
            break
        frames.append((buf[3], buf[4], struct.unpack(">I", buf[5:9])[0] & 0x7fffffff,
                       buf[9:9 + length]))
        buf = buf[9 + length:]
    return frames, buf


def open_http1(s, port):
    s.sendall(b"GET /small HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % port)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise EOFError("closed by the proxy")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit("HTTP/1.1: %r" % head.split(b"\r\n")[0])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        data = s.recv(65536)
        if not data:
            raise EOFError("closed by the proxy")
        body += data
    return s


def open_one(ctx, port, proto):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    if s.selected_alpn_protocol() != proto:
        raise SystemExit("ALPN: got %r, not %s" % (s.selected_alpn_protocol(), proto))
    if proto == "http/1.1":
        return open_http1(s, port)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) +
              frame(1, 0x5, 1, hpack_get("localhost:%d" % port, "/small")))
    buf, done = b"", False
    while not done:
        frames, buf = read_frames(s, buf)
        for ftype, flags, sid, payload in frames:
            if ftype == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0))          # SETTINGS ACK
            elif ftype == 6 and not flags & 1:
                s.sendall(frame(6, 1, 0, payload))  # PING ACK
            elif ftype == 7:
                raise SystemExit("GOAWAY while opening connections")
            elif sid == 1 and ftype in (0, 1) and flags & 1:
                done = True
    return s


def main():
    port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    proto = sys.argv[4] if len(sys.argv) > 4 else "h2"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([proto])
    conns = [open_one(ctx, port, proto) for _ in range(n)]
    print("ready %d" % len(conns), flush=True)
    time.sleep(hold)
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()

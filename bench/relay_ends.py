#!/usr/bin/env python3
"""Both ends of the bench/relay.sh transfer: a TCP source/sink server and a client.

  relay_ends.py serve PORTFILE
      Listen on 127.0.0.1, an OS-chosen port (written to PORTFILE). Each connection
      sends one request line "GET <bytes>\\n" (the server streams that many bytes of a
      fixed pattern, then closes) or "PUT <bytes>\\n" (the server reads until EOF and
      answers "<count>\\n"). A connection that closes without a request is ignored (port
      checks). One thread per connection.

  relay_ends.py get PORT BYTES     download BYTES through 127.0.0.1:PORT
  relay_ends.py put PORT BYTES     upload BYTES through 127.0.0.1:PORT
      Print "<bytes moved> <seconds>" (from just before connect to the last byte or the
      server's count); exit 1 when the byte count or the pattern is wrong.

Buffers are 1 MiB and reused, so Python's per-call cost stays far below the kernel's
copy cost (about a thousand calls per GiB on the sending side).
"""

import socket
import sys
import threading
import time

CHUNK = 1 << 20
PATTERN = bytes((i * 131 + 7) & 0xFF for i in range(CHUNK))


def serve_one(conn):
    try:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            line = b""
            while b"\n" not in line:
                b = conn.recv(64)
                if not b or len(line) > 64:
                    return
                line += b
            line, _, rest = line.partition(b"\n")
            verb, n = line.split()
            n = int(n)
            if verb == b"GET":
                view = memoryview(PATTERN)
                left = n
                while left > 0:
                    k = min(left, CHUNK)
                    conn.sendall(view[:k])
                    left -= k
            elif verb == b"PUT":
                buf = bytearray(CHUNK)
                got = len(rest)
                while True:
                    k = conn.recv_into(buf)
                    if not k:
                        break
                    got += k
                conn.sendall(b"%d\n" % got)
    except (OSError, ValueError):
        pass


def serve(portfile):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    import os
    os.replace(portfile + ".tmp", portfile)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve_one, args=(conn,), daemon=True).start()


def get(port, n):
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET %d\n" % n)
    got = 0
    first_ok = None
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        if first_ok is None and got == 0:
            first_ok = bytes(view[:k]) == PATTERN[:k]
        got += k
    t1 = time.perf_counter()
    s.close()
    print("%d %.6f" % (got, t1 - t0))
    return 0 if got == n and first_ok else 1


def put(port, n):
    view = memoryview(PATTERN)
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"PUT %d\n" % n)
    left = n
    while left > 0:
        k = min(left, CHUNK)
        s.sendall(view[:k])
        left -= k
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        b = s.recv(64)
        if not b:
            break
        reply += b
    t1 = time.perf_counter()
    s.close()
    try:
        got = int(reply)
    except ValueError:
        got = -1
    print("%d %.6f" % (got, t1 - t0))
    return 0 if got == n else 1


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "serve":
        serve(a[1])
        return 0
    if len(a) == 3 and a[0] in ("get", "put"):
        return (get if a[0] == "get" else put)(int(a[1]), int(a[2]))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())

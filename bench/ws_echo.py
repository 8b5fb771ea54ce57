#!/usr/bin/env python3
"""WebSocket echo round trips (issue 13): both ends in a few lines of asyncio, so that the
load generator and the echo server cost little next to the proxy in between (the
functional tests use python3-websockets at both ends; it costs ten times more per
message).  RFC 6455 as far as this needs: the handshake with a checked Accept, masked
client frames, unmasked server frames, payloads under 126 bytes, close.

  ws_echo.py serve PORTFILE             an echo server on 127.0.0.1:0 (port written to PORTFILE)
  ws_echo.py load URL CONNS SECONDS     CONNS connections, each sending a 32-byte text
                                        message and waiting for its echo, for SECONDS;
                                        prints "<round trips> <seconds> <errors>"
"""
import asyncio
import base64
import hashlib
import os
import socket
import sys
import time
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def nodelay(writer):
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def echo_conn(reader, writer):
    nodelay(writer)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        key = None
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if key is None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_of(key) + b"\r\n\r\n")
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7f
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
            data = bytearray(await reader.readexactly(n))
            for i in range(n):
                data[i] ^= mask[i & 3]
            op = b0 & 0x0f
            if op == 8:
                writer.write(b"\x88\x00")
                break
            if n < 126:
                writer.write(bytes((0x80 | op, n)) + data)
            else:
                writer.write(bytes((0x80 | op, 126)) + n.to_bytes(2, "big") + data)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(portfile):
    server = await asyncio.start_server(echo_conn, "127.0.0.1", 0, backlog=1024)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.replace(portfile + ".tmp", portfile)
    await asyncio.Future()


async def load(url, conns, seconds):
    u = urllib.parse.urlsplit(url)
    payload = b"x" * 32
    mask = os.urandom(4)
    frame = b"\x81" + bytes((0x80 | len(payload),)) + mask + bytes(
        c ^ mask[i & 3] for i, c in enumerate(payload))
    echo = b"\x81" + bytes((len(payload),)) + payload
    counts = [0] * conns
    errors = 0

    async def one(i, start, stop):
        nonlocal errors
        try:
            reader, writer = await asyncio.open_connection(u.hostname, u.port)
            nodelay(writer)
            key = base64.b64encode(os.urandom(16))
            writer.write(b"GET " + (u.path or "/").encode() + b" HTTP/1.1\r\nHost: " +
                         u.netloc.encode() + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101") or accept_of(key) not in head:
                errors += 1
                return
            await start.wait()
            while not stop.is_set():
                writer.write(frame)
                if await reader.readexactly(len(echo)) != echo:
                    errors += 1
                    return
                counts[i] += 1
            writer.write(b"\x88\x80" + mask)
            writer.close()
        except Exception:
            errors += 1

    start, stop = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(one(i, start, stop)) for i in range(conns)]
    await asyncio.sleep(0.5)  # connect all first
    t0 = time.monotonic()
    start.set()
    await asyncio.sleep(seconds)
    stop.set()
    t1 = time.monotonic()
    total = sum(counts)
    await asyncio.gather(*tasks)
    print("%d %.3f %d" % (total, t1 - t0, errors))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2]))
    else:
        asyncio.run(load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))

#!/usr/bin/env python3
"""WebSocket echo round trips (issue 13), with Debian's python3-websockets at both ends.

  ws_echo.py serve PORTFILE             an echo server on 127.0.0.1:0 (port written to PORTFILE)
  ws_echo.py load URL CONNS SECONDS     CONNS connections, each sending a 32-byte message and
                                        waiting for its echo, for SECONDS; prints
                                        "<round trips> <seconds> <errors>"

Compression is off at both ends, so the bytes through the proxy are what is sent.
"""
import asyncio
import socket
import sys
import time

import websockets


def nodelay(ws):
    """No Nagle: a small frame leaves at once (else 40 ms delayed-ACK stalls)."""
    ws.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def serve(portfile):
    async def echo(ws, path=None):
        nodelay(ws)
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
    server = await websockets.serve(echo, "127.0.0.1", 0, compression=None,
                                    max_queue=None, ping_interval=None)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    import os
    os.replace(portfile + ".tmp", portfile)
    await asyncio.Future()


async def load(url, conns, seconds):
    counts = [0] * conns
    errors = 0
    msg = "x" * 32

    async def one(i, start, stop):
        nonlocal errors
        try:
            async with websockets.connect(url, compression=None, ping_interval=None,
                                          open_timeout=10) as ws:
                nodelay(ws)
                await start.wait()
                while not stop.is_set():
                    await ws.send(msg)
                    if await ws.recv() != msg:
                        errors += 1
                        return
                    counts[i] += 1
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

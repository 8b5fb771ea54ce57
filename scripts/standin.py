#!/usr/bin/env python3
"""Stand-in PostHog services for the Portcullis demo (Python standard library only).

One process listens on several loopback ports, one per service named on the
command line (web=18001 capture=18002 ...).  Every service answers any request
with a JSON object naming the service and echoing what it received: method,
path (with query), headers and body size, so you can see what Portcullis
forwarded.  The "livestream" service answers GET /events (the path after
Portcullis strips /livestream) with a Server-Sent Events stream: a few events,
one per second, sent in HTTP/1.1 chunks, then the end of the stream.

    scripts/standin.py --host 127.0.0.1 web=18001 capture=18002 livestream=18005

Exit status 1 with a message naming the address when a port cannot be bound.
SIGINT or SIGTERM stops every server.
"""

import argparse
import errno
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time

SERVER_NAME = "portcullis-standin"
MAX_ECHO_BODY = 4096


class BodyError(Exception):
    """The request body could not be read as framed."""


class StandinHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the proxy's pool is exercised

    def version_string(self):
        return SERVER_NAME

    # Set per server class in make_server().
    service = "standin"
    events = 5
    interval = 1.0
    verbose = False

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        if self.verbose:
            sys.stderr.write("standin %s: %s %s\n" % (self.service, self.address_string(), fmt % args))

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            body = bytearray()
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError("bad chunk size line %r" % line[:40])
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BodyError("bad Content-Length %r" % length)
        if n < 0:
            raise BodyError("negative Content-Length")
        return self.rfile.read(n)

    def _send(self, status, payload, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Standin-Service", self.service)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _echo(self):
        try:
            body = self._read_body()
        except BodyError as e:
            self.close_connection = True
            self._send(400, "standin %s: %s\n" % (self.service, e), "text/plain; charset=utf-8")
            return
        headers = {}
        for name, value in self.headers.items():
            headers[name] = headers[name] + ", " + value if name in headers else value
        reply = {
            "service": self.service,
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body_bytes": len(body),
        }
        if body:
            try:
                text = body[:MAX_ECHO_BODY].decode("utf-8")
                reply["body"] = text + ("..." if len(body) > MAX_ECHO_BODY else "")
            except UnicodeDecodeError:
                reply["body"] = "(binary)"
        self._send(200, json.dumps(reply, indent=2) + "\n")

    def _stream_events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Standin-Service", self.service)
        self.end_headers()
        for n in range(1, self.events + 1):
            data = json.dumps({"service": self.service, "n": n, "of": self.events,
                               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            chunk = ("id: %d\nevent: message\ndata: %s\n\n" % (n, data)).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            if n < self.events:
                time.sleep(self.interval)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _handle(self):
        path = self.path.split("?", 1)[0]
        if self.service == "livestream" and self.command == "GET" and path.rstrip("/") == "/events":
            try:
                self._read_body()
            except BodyError:
                pass
            self._stream_events()
            return
        self._echo()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client (Portcullis) went away


class StandinServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(host, name, port, opts):
    handler = type("StandinHandler_" + name, (StandinHandler,), {
        "service": name, "events": opts.events, "interval": opts.interval, "verbose": opts.verbose,
    })
    return StandinServer((host, port), handler)


def parse_service(arg):
    name, sep, port = arg.partition("=")
    if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("expected NAME=PORT (e.g. web=18001), got %r" % arg)
    return name, int(port)


def main():
    ap = argparse.ArgumentParser(description="Stand-in PostHog services for the Portcullis demo.")
    ap.add_argument("services", nargs="+", type=parse_service, metavar="NAME=PORT",
                    help="a service name and the port it listens on")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--events", type=int, default=5, help="events per livestream stream (default 5)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between events (default 1)")
    ap.add_argument("--ready-file", help="write this file once every port is bound")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    opts = ap.parse_args()

    servers = []
    for name, port in opts.services:
        try:
            servers.append((name, port, make_server(opts.host, name, port, opts)))
        except OSError as e:
            reason = "port already in use" if e.errno == errno.EADDRINUSE else e.strerror
            sys.stderr.write("standin: cannot listen on %s:%d for %s: %s\n" % (opts.host, port, name, reason))
            for _, _, s in servers:
                s.server_close()
            return 1

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    threads = []
    for name, port, srv in servers:
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             name="standin-" + name, daemon=True)
        t.start()
        threads.append(t)
    sys.stderr.write("standin: %s\n" % ", ".join(
        "%s on %s:%d" % (name, opts.host, port) for name, port, _ in servers))
    if opts.ready_file:
        tmp = opts.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(tmp, opts.ready_file)

    while not stop.wait(1.0):
        pass
    for _, _, srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

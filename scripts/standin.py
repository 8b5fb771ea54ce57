#!/usr/bin/env python3
"""Stand-in PostHog services for the Portcullis demo (Python standard library only).

One process listens on several loopback ports, one per service named on the
command line (web=18001 capture=18002 ...).  Every service answers any request
with a JSON object naming the service and echoing what it received: method,
path (with query), headers and body size, so you can see what Portcullis
forwarded.  The "livestream" service answers GET /events (the path after
Portcullis strips /livestream) with a Server-Sent Events stream: a few events,
one per second, sent in HTTP/1.1 chunks, then the end of the stream.

The demo's UI: the "capture" service remembers the last events posted to it
(PostHog's capture bodies: one event, {"batch": [...]}, a list; plain JSON,
gzip, or posthog-js' form-encoded base64 "data="), and the "web" service
answers GET / with an HTML page (refreshed every 5 seconds) that shows who
Portcullis says is signed in (the X-Auth-* identity headers it adds from the
SAML session) and those events.  Services share this state in the process.

    scripts/standin.py --host 127.0.0.1 web=18001 capture=18002 livestream=18005

Exit status 1 with a message naming the address when a port cannot be bound.
SIGINT or SIGTERM stops every server.
"""

import argparse
import base64
import collections
import errno
import gzip
import html
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time
import urllib.parse

SERVER_NAME = "portcullis-standin"
MAX_ECHO_BODY = 4096
KEEP_EVENTS = 20         # events the UI page lists (the newest first)
MAX_EVENTS_PER_POST = 50  # events of one request that are recorded
IDENTITY_HEADERS = ("X-Auth-Email", "X-Auth-User", "X-Auth-Name", "X-Auth-Roles")


class EventLog:
    """The last events the capture service received; shared by every
    service of the process (the web service's page reads it)."""

    def __init__(self, keep=KEEP_EVENTS):
        self._lock = threading.Lock()
        self._events = collections.deque(maxlen=keep)
        self._total = 0

    def add(self, records):
        with self._lock:
            for r in records:
                self._total += 1
                self._events.appendleft(dict(r, n=self._total))

    def snapshot(self):
        """(events newest first, how many were received in all)"""
        with self._lock:
            return list(self._events), self._total


EVENTS = EventLog()


def decode_capture_body(body, headers, query):
    """The events in a PostHog capture request body, as a list of dicts
    (possibly empty); raises ValueError when the body cannot be read."""
    data = body
    params = urllib.parse.parse_qs(query)
    if (headers.get("Content-Encoding", "").lower() == "gzip"
            or params.get("compression", [""])[0] == "gzip-js" or data[:2] == b"\x1f\x8b"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError("gzip: %s" % e)
    # posthog-js' form encoding (data=<base64 JSON>); a JSON body sent as a
    # form by curl -d stays JSON.
    form = {}
    if (headers.get("Content-Type", "").lower().startswith("application/x-www-form-urlencoded")
            and data.lstrip()[:1] not in (b"{", b"[")):
        form = urllib.parse.parse_qs(data.decode("latin-1"))
    if "data" in form:
        raw = form["data"][0]
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=False)
        except ValueError as e:
            raise ValueError("data field is not base64: %s" % e)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("not JSON: %s" % e)
    if isinstance(doc, dict) and isinstance(doc.get("batch"), list):
        items = doc["batch"]
    elif isinstance(doc, list):
        items = doc
    else:
        items = [doc]
    return [i for i in items if isinstance(i, dict)]


def event_records(items, handler, path, note=None):
    """Rows for the UI page from decoded events and the request that carried them."""
    h = handler.headers
    base = {"time": time.strftime("%H:%M:%S", time.localtime()), "path": path,
            "method": handler.command, "host": h.get("Host", ""),
            "forwarded_host": h.get("X-Forwarded-Host", ""),
            "client": h.get("X-Forwarded-For", handler.client_address[0]),
            "cookie": "Cookie" in h}
    if note is not None:
        return [dict(base, event=note, distinct_id="")]
    out = []
    for item in items[:MAX_EVENTS_PER_POST]:
        props = item.get("properties") if isinstance(item.get("properties"), dict) else {}
        distinct = item.get("distinct_id", props.get("distinct_id", ""))
        out.append(dict(base, event=str(item.get("event", "(no event name)")),
                        distinct_id="" if distinct is None else str(distinct)))
    return out


def render_ui(handler, hint):
    """The web service's page: who is signed in, and the captured events."""
    esc = html.escape
    h = handler.headers
    ident = [(name, h.get(name)) for name in IDENTITY_HEADERS if h.get(name) is not None]
    email = h.get("X-Auth-Email")
    if email:
        who = '<p id="user">Signed in as <b id="email">%s</b></p>' % esc(email)
    elif ident:
        who = '<p id="user">Signed in as <b>%s</b></p>' % esc(ident[0][1])
    else:
        who = ('<p id="user">Not signed in: Portcullis sent no X-Auth-* header '
               '(this route is not behind the SAML login).</p>')
    rows = "".join("<tr><th>%s</th><td>%s</td></tr>" % (esc(n), esc(v)) for n, v in ident)
    ident_html = ('<p>Identity headers Portcullis added from your session:</p>'
                  '<table class="kv">%s</table>' % rows) if rows else ""
    events, total = EVENTS.snapshot()
    if events:
        ev_rows = "".join(
            '<tr class="event"><td>%d</td><td>%s</td><td class="name">%s</td><td>%s</td>'
            "<td>%s %s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                e["n"], esc(e["time"]), esc(e["event"]), esc(e["distinct_id"]), esc(e["method"]),
                esc(e["path"]), esc(e["host"]), esc(e["forwarded_host"]), esc(e["client"]),
                "yes" if e["cookie"] else "no")
            for e in events)
        ev_html = ('<p>%d received in all; the last %d, newest first:</p>'
                   '<table id="events"><tr><th>#</th><th>time</th><th>event</th>'
                   "<th>distinct_id</th><th>request</th><th>Host</th><th>X-Forwarded-Host</th>"
                   "<th>client</th><th>Cookie</th></tr>%s</table>" % (total, len(events), ev_rows))
    else:
        ev_html = '<p id="no-events">No event yet.</p>'
    hint_html = ("<p>Send one through <code>/ingest</code> on the app's domain:</p><pre>%s</pre>"
                 % esc(hint)) if hint else ""
    page = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>PostHog UI stand-in (Portcullis demo)</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 62em; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }}
table.kv th {{ font-weight: normal; font-family: monospace; }}
pre {{ background: #f4f4f4; padding: .6em; overflow-x: auto; }}
</style></head>
<body>
<h1>PostHog UI stand-in</h1>
<p>This page is the "web" stand-in behind Portcullis.  It is on a route with
<code>"auth": "saml"</code>: Portcullis let you in after the login at the IdP.</p>
{who}
{ident}
<h2>Events received by the capture stand-in</h2>
{events}
{hint}
<p><a href="/saml/logout">Sign out</a> &middot; this page reloads every 5 seconds.</p>
</body></html>
""".format(who=who, ident=ident_html, events=ev_html, hint=hint_html)
    return page


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
    ui_hint = ""

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
        if self.service == "capture" and self.command == "POST":
            path, _, query = self.path.partition("?")
            try:
                records = event_records(decode_capture_body(body, self.headers, query), self, path)
            except ValueError as e:
                records = event_records([], self, path, note="(unreadable body: %s)" % e)
            EVENTS.add(records)
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

    def _ui(self):
        try:
            self._read_body()
        except BodyError:
            self.close_connection = True
        self._send(200, render_ui(self, self.ui_hint), "text/html; charset=utf-8")

    def _handle(self):
        path = self.path.split("?", 1)[0]
        if self.service == "web" and self.command in ("GET", "HEAD") and path == "/":
            self._ui()
            return
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
        "ui_hint": opts.ui_hint,
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
    ap.add_argument("--ui-hint", default="",
                    help="text shown on the web service's page (GET /) under the events")
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

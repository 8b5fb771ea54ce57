"""The local demo, scripts/demo.sh, run for real: the README's first command.

The script is started as a newcomer would start it (with free ports, a
temporary certs folder, the binary under test as DEMO_BIN and the package
check skipped).  The test waits for its banner and uses only what the banner
prints: the URL, the user and password, and the local CA file, which is the
only trust anchor of every HTTPS request.  Then, with http.client and ssl:

  - the UI URL answers 302 to the IdP's login form; the credentials are
    posted to the form; its auto-submitted POST goes to Portcullis' ACS,
    which sets the session and sends the browser back to /; the UI
    stand-in's page says who is signed in (the identity headers);
  - events posted to /ingest on the app's domain (JSON to /ingest/e/, a
    gzipped batch to /ingest/i/v0/e/) reach the capture stand-in (200) and
    are listed on the UI page; plain HTTP redirects to HTTPS;
  - SIGINT stops the demo (exit 130), and in a second run SIGTERM (exit
    143): every process the demo started is gone and every port is free.
    The second run reuses the certs folder and serves the same CA.

Needs /usr/bin/python3 with python3-pysaml2 (the IdP), xmlsec1 and curl;
skipped without them unless PORTCULLIS_REQUIRE_ALL is set."""

import gzip
import html
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest

from harness import BINARY, SANITIZER_MARKERS, SOURCE_DIR, depslist, wait_until
from ports import free_ports

SCRIPT = os.path.join(SOURCE_DIR, "scripts", "demo.sh")
STARTUP_LIMIT = 60  # the "within a minute" (here the binary is already built)
SESSION_COOKIE = "__Host-portcullis-session"
TRACK_PREFIX = "__Host-portcullis-saml-"


def missing_tools():
    gone = []
    if subprocess.run(["/usr/bin/python3", "-c", "import saml2"],
                      capture_output=True).returncode != 0:
        gone.append("python module saml2 for /usr/bin/python3 (%s)" % depslist.where("saml2", "python"))
    for tool in ("xmlsec1", "curl", "setsid"):
        if not shutil.which(tool):
            gone.append("%s (%s)" % (tool, depslist.where(tool)))
    return gone


@pytest.fixture(scope="module", autouse=True)
def tools():
    gone = missing_tools()
    if gone:
        why = "not installed: " + ", ".join(gone)
        if os.environ.get("PORTCULLIS_REQUIRE_ALL"):
            pytest.fail("%s, and PORTCULLIS_REQUIRE_ALL is set" % why, pytrace=False)
        pytest.skip(why)
    if not os.path.exists(BINARY):
        pytest.fail("portcullis binary not found at %s; set PORTCULLIS_BIN" % BINARY,
                    pytrace=False)


# ---- ports and processes ---------------------------------------------------------

def port_is_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_ports():
    """Free loopback ports: https, http, admin, idp, and seven consecutive stand-ins."""
    https, http_, admin, idp = free_ports(4)
    base = free_ports(7, consecutive=True)[0]
    return {"https": https, "http": http_, "admin": admin, "idp": idp, "standin": base}


def proc_start_time(pid):
    """The kernel's start time of <pid> (with the pid, it names one process), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[19]  # field 22 of stat: starttime


def descendants(root):
    """{pid: (start time, command line)} of every live descendant of <root>."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append((int(entry), cmd))
    out, todo = {}, [root]
    while todo:
        for pid, cmd in children.get(todo.pop(), []):
            start = proc_start_time(pid)
            if start is not None:
                out[pid] = (start, cmd)
                todo.append(pid)
    return out


class Demo:
    """scripts/demo.sh in its own session; stdout and stderr collected."""

    def __init__(self, workdir, certs, name):
        self.ports = pick_ports()
        self.certs = certs
        p = self.ports
        env = dict(os.environ, DEMO_BIN=BINARY, PORTCULLIS_SKIP_DEPS="1", PORTCULLIS_DEPS_FOR="demo",
                   DEMO_HTTPS_PORT=str(p["https"]), DEMO_HTTP_PORT=str(p["http"]),
                   DEMO_ADMIN_PORT=str(p["admin"]), DEMO_IDP_PORT=str(p["idp"]),
                   DEMO_STANDIN_PORT=str(p["standin"]), DEMO_CERTS_DIR=certs)
        for var in ("DEMO_USER", "DEMO_PASSWORD", "LOG_LEVEL", "ACCESS_LOG"):
            env.pop(var, None)
        self.out_path = os.path.join(workdir, name + ".stdout")
        self.err_path = os.path.join(workdir, name + ".stderr")
        self._out, self._err = [], []
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(["bash", SCRIPT], cwd=workdir, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self._out,
                                                                   self.out_path), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self._err,
                                                                   self.err_path), daemon=True)]
        for t in self._readers:
            t.start()
        self.children = {}

    def _read(self, stream, sink, path):
        with open(path, "wb") as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                with self._lock:
                    sink.append(line.decode(errors="replace"))

    def stdout(self):
        with self._lock:
            return "".join(self._out)

    def stderr(self):
        with self._lock:
            return "".join(self._err)

    def wait_up(self):
        """Wait for the banner's last line; returns the seconds it took."""
        def up():
            if "Press Ctrl-C to stop." in self.stdout():
                return True
            assert self.proc.poll() is None, "demo.sh exited with %s before it was up:\n%s\n%s" % (
                self.proc.returncode, self.stdout()[-4000:], self.stderr()[-4000:])
            return False
        wait_until(up, timeout=STARTUP_LIMIT, interval=0.1, what="the demo's banner")
        took = time.monotonic() - self.started
        self.children = descendants(self.proc.pid)
        return took

    def banner(self):
        out = self.stdout()
        url = re.search(r"^ Open: +(\S+)$", out, re.M)
        cred = re.search(r'^ Sign in: +user "([^"]+)", password "([^"]+)"$', out, re.M)
        ca = re.search(r"^ e\.g\. curl --cacert (\S+) (\S+)$", out, re.M)
        ingest = re.search(r"^  curl --cacert (\S+) (https://\S+/ingest/e/) \\$", out, re.M)
        assert url and cred and ca and ingest, "the banner lacks the URL, credentials, CA " \
            "file or the /ingest command:\n" + out
        assert ca.group(2) == url.group(1) and ingest.group(1) == ca.group(1), out
        return {"url": url.group(1), "user": cred.group(1), "password": cred.group(2),
                "ca": ca.group(1), "ingest": ingest.group(2)}

    def stop(self, sig):
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(40)
        except subprocess.TimeoutExpired:
            raise AssertionError("demo.sh did not exit within 40 s of signal %d" % sig)
        for t in self._readers:
            t.join(10)
        return rc

    def leftovers(self):
        """The processes the demo started that still exist."""
        return {pid: cmd for pid, (start, cmd) in self.children.items()
                if proc_start_time(pid) == start}

    def kill_everything(self):
        """After a failure: no process of the demo may outlive the test."""
        for pid in list(self.leftovers()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._readers:
            t.join(10)


@pytest.fixture
def run_demo(tmp_path):
    """Starts demo.sh runs; any still running at the end are killed (by PID)."""
    started = []

    def start(name, certs=None):
        d = Demo(str(tmp_path), certs or str(tmp_path / "certs"), name)
        started.append(d)
        return d
    yield start
    for d in started:
        d.kill_everything()


# ---- HTTP -----------------------------------------------------------------------

class Reply:
    def __init__(self, resp):
        self.status = resp.status
        self.headers = resp.getheaders()
        self.body = resp.read()

    def header(self, name):
        got = [v for k, v in self.headers if k.lower() == name.lower()]
        return got[0] if got else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:600])


class LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 for a host name under .localhost (the names a
    browser and curl send to loopback): SNI and certificate check for that name."""

    def __init__(self, name, port, tls, timeout=15):
        super().__init__(name, port, context=tls, timeout=timeout)
        self.tls = tls

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def https(tls, url, method="GET", headers=(), body=None):
    u = urllib.parse.urlsplit(url)
    assert u.scheme == "https", url
    conn = LoopbackHTTPS(u.hostname, u.port or 443, tls)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body,
                     headers=dict(headers))
        return Reply(conn.getresponse())
    finally:
        conn.close()


def plain(url, method="GET", headers=(), body=None):
    u = urllib.parse.urlsplit(url)
    assert u.scheme == "http", url
    conn = http.client.HTTPConnection("127.0.0.1", u.port, timeout=15)
    try:
        hs = dict(headers)
        hs.setdefault("Host", u.netloc)
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=hs)
        return Reply(conn.getresponse())
    finally:
        conn.close()


def cookie_pairs(reply):
    """{name: value} of the Set-Cookie lines (a cleared cookie maps to None)."""
    out = {}
    for line in reply.header_all("Set-Cookie"):
        first, _, attrs = line.partition(";")
        name, _, value = first.strip().partition("=")
        out[name] = None if "max-age=0" in attrs.lower().replace(" ", "") else value
    return out


def form_fields(page):
    return {html.unescape(k): html.unescape(v)
            for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page)}


def sign_in(tls, info, password):
    """A browser's login by hand.  Returns (session cookie or None, the
    last reply, the steps as (what, status))."""
    steps = []
    first = https(tls, info["url"], headers=[("Accept", "text/html")])
    steps.append(("GET " + info["url"], first.status))
    assert first.status == 302, first
    track = {k: v for k, v in cookie_pairs(first).items() if k.startswith(TRACK_PREFIX)}
    assert len(track) == 1, first
    location = first.header("Location")
    idp = urllib.parse.urlsplit(location)
    assert idp.scheme == "http" and idp.hostname == "127.0.0.1" and \
        idp.path == "/sso/redirect" and "SAMLRequest=" in idp.query, location

    form = plain(location)
    steps.append(("GET IdP form", form.status))
    assert form.status == 200 and 'id="login"' in form.text(), form
    pending = form_fields(form.text()).get("request")
    assert pending == idp.query, form.text()[:2000]

    login = plain("http://%s/sso/login" % idp.netloc, "POST",
                  headers=[("Content-Type", "application/x-www-form-urlencoded")],
                  body=urllib.parse.urlencode({"username": info["user"], "password": password,
                                               "request": pending}))
    steps.append(("POST IdP credentials", login.status))
    assert login.status == 200, login
    if "SAMLResponse" not in login.text():
        return None, login, steps
    action = re.search(r'<form[^>]* action="([^"]+)"', login.text())
    assert action, login.text()[:2000]
    acs_url = html.unescape(action.group(1))
    assert acs_url.startswith(info["url"].rstrip("/") + "/"), acs_url
    assert "document.forms[0].submit()" in login.text()
    fields = form_fields(login.text())
    assert set(fields) >= {"SAMLResponse", "RelayState"}, fields.keys()

    (name, value), = track.items()
    acs = https(tls, acs_url, "POST", headers=[
        ("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", "%s=%s" % (name, value)),
        ("Origin", "null")],
        body=urllib.parse.urlencode({"SAMLResponse": fields["SAMLResponse"],
                                     "RelayState": fields["RelayState"]}))
    steps.append(("POST ACS", acs.status))
    assert acs.status == 303 and acs.header("Location") == "/", acs
    set_ = cookie_pairs(acs)
    assert set_.get(name, "x") is None, "the ACS must clear the tracking cookie: %r" % acs
    assert set_.get(SESSION_COOKIE), acs
    return set_[SESSION_COOKIE], acs, steps


def ui_page(tls, info, session):
    r = https(tls, info["url"], headers=[("Accept", "text/html"),
                                         ("Cookie", "%s=%s" % (SESSION_COOKIE, session))])
    assert r.status == 200 and r.header("Content-Type").startswith("text/html"), r
    return r.text()


def event_rows(page):
    """The UI page's event table: a list of cell lists, newest first."""
    rows = re.findall(r'<tr class="event">(.*?)</tr>', page, re.S)
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in rows]


# ---- the tests ------------------------------------------------------------------

def test_demo_login_ingest_and_stop(run_demo, tmp_path):
    demo = run_demo("first")
    took = demo.wait_up()
    info = demo.banner()
    p = demo.ports
    assert info["url"] == "https://localhost:%d/" % p["https"]
    assert (info["user"], info["password"]) == ("demo", "demo-password")
    assert info["ca"] == os.path.join(str(tmp_path / "certs"), "local-ca", "ca.crt")
    assert info["ingest"] == "https://app.localhost:%d/ingest/e/" % p["https"]
    # Exactly three processes run beside the script: the stand-ins, the IdP, Portcullis.
    kinds = sorted(("standin.py" in cmd, "pysaml2_idp.py" in cmd, cmd.startswith(BINARY))
                   for _, cmd in demo.children.values())
    assert kinds == [(False, False, True), (False, True, False), (True, False, False)], \
        demo.children
    print("demo up in %.1f s (binary prebuilt)" % took)

    # Only the local CA vouches for the certificates.
    tls = ssl.create_default_context(cafile=info["ca"])
    assert tls.cert_store_stats()["x509_ca"] == 1

    # Plain HTTP redirects to HTTPS, keeping host, path and query.
    r = plain("http://localhost:%d/insights?x=1" % p["http"])
    assert r.status == 308 and r.header("Location") == \
        "https://localhost:%d/insights?x=1" % p["https"], r

    # Without a session: an API client gets 401, a browser the IdP (in sign_in).
    r = https(tls, info["url"], headers=[("Accept", "application/json")])
    assert r.status == 401 and json.loads(r.body)["error"] == "authentication required", r

    # A wrong password: the IdP's form again, no SAML response.
    session, reply, steps = sign_in(tls, info, info["password"] + "x")
    assert session is None and "Wrong user name or password." in reply.text(), steps

    # The right one: signed in; the UI stand-in names the user.
    session, _, steps = sign_in(tls, info, info["password"])
    assert [s for _, s in steps] == [302, 200, 200, 303], steps
    page = ui_page(tls, info, session)
    assert '<p id="user">Signed in as <b id="email">demo@example.com</b></p>' in page, page
    for name, value in (("X-Auth-User", "demo"), ("X-Auth-Name", "Demo User"),
                        ("X-Auth-Roles", "posthog-admin")):
        assert "<tr><th>%s</th><td>%s</td></tr>" % (name, value) in page, page
    assert 'id="no-events"' in page and event_rows(page) == []

    # Events through /ingest on the app's domain reach the capture stand-in ...
    name1 = "demo test " + uuid.uuid4().hex[:8]
    r = https(tls, info["ingest"], "POST",
              headers=[("Content-Type", "application/json"), ("Cookie", "app_session=secret")],
              body=json.dumps({"event": name1, "distinct_id": "newcomer",
                               "api_key": "phc_demo"}))
    assert r.status == 200, r
    echo = json.loads(r.body)
    assert echo["service"] == "capture" and echo["path"] == "/e/", echo
    assert echo["headers"]["Host"] == "posthog.localhost" and "Cookie" not in echo["headers"], echo

    name2, name3 = "batch a " + uuid.uuid4().hex[:6], "batch b " + uuid.uuid4().hex[:6]
    batch = gzip.compress(json.dumps([{"event": name2, "distinct_id": "u2"},
                                      {"event": name3, "properties": {"distinct_id": "u3"}}
                                      ]).encode())
    url = info["ingest"].replace("/ingest/e/", "/ingest/i/v0/e/") + "?compression=gzip-js"
    r = https(tls, url, "POST", headers=[("Content-Type", "text/plain")], body=batch)
    assert r.status == 200 and json.loads(r.body)["path"] == "/i/v0/e/?compression=gzip-js", r

    # ... and the signed-in UI page lists them, newest first.
    rows = event_rows(ui_page(tls, info, session))
    app_host = "app.localhost:%d" % p["https"]
    assert [(r[2], r[3], r[4], r[5], r[6], r[8]) for r in rows] == [
        (name3, "u3", "POST /i/v0/e/", "posthog.localhost", app_host, "no"),
        (name2, "u2", "POST /i/v0/e/", "posthog.localhost", app_host, "no"),
        (name1, "newcomer", "POST /e/", "posthog.localhost", app_host, "no"),
    ], rows

    # Without the session cookie the page is not served.
    r = https(tls, info["url"], headers=[("Accept", "text/html")])
    assert r.status == 302 and name1 not in r.text(), r

    # Ctrl-C: everything stops, every port is free again.
    assert demo.stop(signal.SIGINT) == 130, demo.stderr()[-3000:]
    wait_until(lambda: not demo.leftovers(), timeout=5, what="the demo's processes to end")
    busy = [port for port in ports_of(p) if not port_is_free(port)]
    assert not busy, "ports still taken after the demo stopped: %s" % busy
    err = demo.stderr()
    assert "demo: stopping portcullis" in err and "Traceback" not in err, err[-3000:]
    assert not any(m in err for m in SANITIZER_MARKERS), err[-6000:]


def ports_of(p):
    return [p["https"], p["http"], p["admin"], p["idp"]] + list(range(p["standin"],
                                                                        p["standin"] + 7))


def test_demo_sigterm_keeps_the_ca(run_demo, tmp_path):
    """A second run on the same certs folder serves certificates from the
    same CA (the one a newcomer trusted), and SIGTERM stops it cleanly."""
    first = run_demo("one")
    first.wait_up()
    info = first.banner()
    with open(info["ca"], "rb") as f:
        ca_before = f.read()
    assert first.stop(signal.SIGTERM) == 143, first.stderr()[-3000:]
    wait_until(lambda: not first.leftovers(), timeout=5, what="the first run's processes to end")

    second = run_demo("two")
    second.wait_up()
    info2 = second.banner()
    assert info2["ca"] == info["ca"]
    with open(info2["ca"], "rb") as f:
        assert f.read() == ca_before
    tls = ssl.create_default_context(cafile=info2["ca"])
    r = https(tls, info2["url"], headers=[("Accept", "text/html")])
    assert r.status == 302, r
    assert "created a local CA" not in second.stderr(), second.stderr()[-3000:]

    children = dict(second.children)
    assert len(children) == 3, children
    assert second.stop(signal.SIGTERM) == 143, second.stderr()[-3000:]
    wait_until(lambda: not second.leftovers(), timeout=5, what="the demo's processes to end")
    busy = [port for port in ports_of(second.ports) if not port_is_free(port)]
    assert not busy, "ports still taken after the demo stopped: %s" % busy
    assert not any(m in second.stderr() for m in SANITIZER_MARKERS), second.stderr()[-6000:]

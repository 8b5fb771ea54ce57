"""Restarts that refuse nothing (issue #19): SIGUSR2 starts the binary again
with the listening sockets (systemd's LISTEN_FDS protocol, core/handoff.c);
the new process tells the old one to drain once it serves.  Under a load of
new connections and keep-alive ones, two handoffs in a row lose no request.
Also: a new process that cannot start leaves the old one serving, and
systemd-socket-activate hands a socket over the same way."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from configs import config, route
from harness import BINARY, WAIT, Echo, Slow, closed_port, need, request, wait_until

HOST = "main.test"


def cfg_for(up, slow=None, **top):
    ups, routes = {"web": up}, [route("all", "web")]
    if slow is not None:
        ups["slow"] = slow
        routes.insert(0, route("slow", "slow", path=["/slow"]))
    return config(ups, [{"name": "main", "hosts": [HOST], "default": True, "routes": routes}],
                  **top)


class Load:
    """Client threads: some open a connection per request, some keep one
    open.  A keep-alive connection the server closed while idle is retried
    once on a new connection, as HTTP clients do for idempotent requests
    (RFC 9112, 9.3.1); every other error, and any status but 200, is a failure."""

    def __init__(self, port, fresh=2, keep=2, slow=1):
        self.port = port
        self.ok = 0
        self.retried = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._fresh, args=(i,), daemon=True)
                        for i in range(fresh)]
        self.threads += [threading.Thread(target=self._keep, args=(i,), daemon=True)
                         for i in range(keep)]
        # Requests that are in flight when the old process starts draining.
        self.threads += [threading.Thread(target=self._fresh, args=(100 + i, "/slow"),
                                          daemon=True) for i in range(slow)]
        for t in self.threads:
            t.start()

    def _count(self, resp, what):
        with self.lock:
            if resp.status == 200:
                self.ok += 1
            else:
                self.failures.append("%s: status %d" % (what, resp.status))

    def _fresh(self, i, prefix="/f"):
        n = 0
        while not self.stop.is_set():
            n += 1
            what = "fresh %d/%d" % (i, n)
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
                c.request("GET", "%s/%d/%d" % (prefix, i, n),
                          headers={"Host": HOST, "Connection": "close"})
                resp = c.getresponse()
                resp.read()
                c.close()
                self._count(resp, what)
            except Exception as exc:  # noqa: BLE001 - every error is a failure
                with self.lock:
                    self.failures.append("%s: %r" % (what, exc))

    def _keep(self, i):
        c, used, n = None, 0, 0
        while not self.stop.is_set():
            n += 1
            what = "keep-alive %d/%d" % (i, n)
            for attempt in (0, 1):
                if c is None:
                    c, used = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT), 0
                try:
                    c.request("GET", "/k/%d/%d" % (i, n), headers={"Host": HOST})
                    resp = c.getresponse()
                    resp.read()
                    used += 1
                    self._count(resp, what)
                    if resp.will_close:
                        c.close()
                        c = None
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                    reused = used > 0
                    c.close()
                    c = None
                    if attempt == 0 and reused:
                        with self.lock:
                            self.retried += 1
                        continue
                    with self.lock:
                        self.failures.append("%s: %r" % (what, exc))
                    break
                except Exception as exc:  # noqa: BLE001
                    c.close()
                    c = None
                    with self.lock:
                        self.failures.append("%s: %r" % (what, exc))
                    break
        if c is not None:
            c.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(WAIT)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, timeout=WAIT * 3):
    """SIGTERM a process that is not our child; True when it went away in time."""
    if not pid_alive(pid):
        return True
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        return False
    return True


def handoff(stderr, pid, mark):
    """SIGUSR2 to <pid>; returns the new process's pid once it serves."""
    os.kill(pid, signal.SIGUSR2)
    m = wait_until(lambda: re.search(r"handoff: started \S+ \(pid (\d+)\)", stderr()[mark:]),
                   what="the new process")
    new = int(m.group(1))
    wait_until(lambda: "handoff: serving; telling process %d to drain" % pid in stderr()[mark:],
               what="the new process serving")
    return new


def test_two_handoffs_under_load_lose_nothing(lab):
    up = lab.upstream("web")
    up.reset(Echo())
    slow = lab.upstream("slow")
    slow.reset(Slow(0.3, Echo()))
    proxy = lab.proxy(cfg_for(up, slow, timeouts={"drain": 10}), name="handoff")
    port, admin = proxy.port, proxy.admin_port
    started = []
    load = Load(port)
    try:
        wait_until(lambda: load.ok >= 500, what="requests before the handoff", timeout=30)
        first = handoff(proxy.stderr, proxy.pid, 0)
        started.append(first)
        assert proxy.wait_exit(WAIT * 3) == 0, proxy.stderr()[-3000:]
        n = load.ok
        wait_until(lambda: load.ok >= n + 500, what="requests after the first handoff", timeout=30)
        mark = len(proxy.stderr())
        second = handoff(proxy.stderr, first, mark)
        started.append(second)
        wait_until(lambda: not pid_alive(first), what="the first new process to drain")
        n = load.ok
        wait_until(lambda: load.ok >= n + 500, what="requests after the second handoff", timeout=30)
        # slow requests too, not only the fast ones (their count depends on the pace)
        wait_until(lambda: len(slow.snapshot()) >= 5, what="five slow requests", timeout=30)
    finally:
        load.finish()
        stopped = [stop_pid(p) for p in started]
    assert load.failures == [], "%d failed of %d (first: %s)" % (
        len(load.failures), load.ok + len(load.failures), load.failures[:5])
    assert stopped == [True, True]
    err = proxy.stderr()
    assert err.count("handed over)") >= 4, err[-3000:]  # listener and admin, twice
    assert "listening on 127.0.0.1:%d (http, handed over)" % port in err
    assert "listening on 127.0.0.1:%d (admin, handed over)" % admin in err \
        or "127.0.0.1:%d" % admin in err
    assert len(slow.snapshot()) >= 5
    print("handoff under load: %d requests, %d keep-alive retries, 0 failed" % (
        load.ok, load.retried))


def test_handoff_that_fails_keeps_the_old_process(lab, tmp_path):
    up = lab.upstream("web")
    up.reset(Echo())
    proxy = lab.proxy(cfg_for(up), name="failing")
    with open(proxy.config_path, "w") as f:
        f.write("{ broken")
    proxy.signal(signal.SIGUSR2)
    proxy.wait_stderr(r"handoff: process \d+ exited \(status 1\); still serving here")
    resp = request(proxy.port, "GET", "/still", host=HOST)
    assert resp.status == 200
    proxy.assert_alive()


def test_socket_activation(lab, tmp_path):
    """systemd's protocol from systemd-socket-activate: the socket named "http"."""
    up = lab.upstream("web")
    up.reset(Echo())
    port = closed_port()
    cfg = cfg_for(up)
    cfg["listeners"][0]["address"] = "127.0.0.1:%d" % port
    path = tmp_path / "activated.json"
    path.write_text(json.dumps(cfg))
    err = open(tmp_path / "activated.stderr", "wb")
    # It passes on only the variables named with -E.
    keep = [a for v in ("PORTCULLIS_ALLOW_ROOT", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
            if v in os.environ for a in ("-E", v)]
    proc = subprocess.Popen([need("systemd-socket-activate"), "-l", "127.0.0.1:%d" % port,
                             "--fdname=http"] + keep + [BINARY, "-c", str(path)],
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        # systemd-socket-activate starts the program at the first connection.
        wait_until(lambda: _connects(port), what="the activation socket")
        resp = request(port, "GET", "/activated", host=HOST)
        assert resp.status == 200
        text = (tmp_path / "activated.stderr").read_text()
        assert "listening on 127.0.0.1:%d (http, handed over)" % port in text, text
    finally:
        proc.terminate()
        rc = proc.wait(WAIT * 3)
        err.close()
    assert rc == 0, (tmp_path / "activated.stderr").read_text()[-3000:]


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False

"""conf/portcullis.service under a real systemd (issue #19).

A Debian 12 tree (tests/packaging/debbase.py: minbase, systemd, dbus and the
image's runtime libraries, cached in PORTCULLIS_IMAGE_CACHE) boots under
`systemd-nspawn --boot --register=no --keep-unit --private-network` on a
pseudo-terminal; the host has neither systemd nor a system D-Bus, so
`systemctl` runs inside the container through nsenter.  The test installs
the binary and the unit as the unit's comment says, starts it, reloads it
(a good and a broken configuration), checks the sandbox from inside the
service's own namespaces, and stops it.

Runs as root; CTest label "heavy".
"""

import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debbase  # noqa: E402

SRC = debbase.SRC
BIN = os.path.abspath(os.environ.get("PORTCULLIS_BIN") or os.path.join(SRC, "build", "portcullis"))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from harness import need  # noqa: E402

UNIT = os.path.join(SRC, "conf", "portcullis.service")
CONFIG = """{
  "listeners": [ { "name": "http", "address": "127.0.0.1:8080" } ],
  "admin": { "address": "127.0.0.1:9901" },
  "log": { "level": "info", "access_log": "%s" },
  "timeouts": { "drain": 5 },
  "upstreams": { "web": { "servers": ["127.0.0.1:18001"] } },
  "sites": [ { "name": "web", "hosts": ["localhost"], "default": true,
               "routes": [ { "name": "all", "upstream": "web" } ] } ]
}
"""


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def runtime_packages():
    """The runtime stage's apt-get install list in docker/Dockerfile."""
    with open(os.path.join(SRC, "docker", "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    last = text[text.rindex("\nFROM "):]
    m = re.search(r"apt-get install -y --no-install-recommends ([^&]*)&&", last)
    assert m, "no apt-get install in the Dockerfile's runtime stage"
    return m.group(1).split()


class Machine:
    """A booted container; run() executes a command inside all its namespaces."""

    def __init__(self, tree, log_path):
        self.tree = tree
        master, slave = pty.openpty()
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [need("systemd-nspawn"), "--boot", "--register=no", "--keep-unit",
             "--private-network", "--quiet", "-D", tree, "--machine", "pcl-test-%d" % os.getpid()],
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.master = master
        threading.Thread(target=self._drain, daemon=True).start()
        self.pid = self._find_init()

    def _drain(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.log.write(data)
            self.log.flush()

    def _find_init(self):
        end = time.monotonic() + 30
        while time.monotonic() < end:
            assert self.proc.poll() is None, "systemd-nspawn exited %s" % self.proc.returncode
            try:
                with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            for k in kids:
                try:
                    with open("/proc/%s/comm" % k) as f:
                        if f.read().strip() == "systemd":
                            return int(k)
                except OSError:
                    pass
            time.sleep(0.2)
        raise AssertionError("no systemd in the container")

    def run(self, *cmd, timeout=60):
        return run([need("nsenter"), "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p", "--",
                    "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
                   + list(cmd), timeout=timeout)

    def ok(self, *cmd, timeout=60):
        r = self.run(*cmd, timeout=timeout)
        if r.returncode != 0:
            journal = self.run("journalctl", "--no-pager", "-n", "40", "-u", "portcullis").stdout
            raise AssertionError("%s: %d\n%s%s\njournal:\n%s" % (
                " ".join(cmd), r.returncode, r.stdout, r.stderr, journal))
        return r.stdout

    def show(self, prop):
        return self.ok("systemctl", "show", "-P", prop, "portcullis").strip()

    def stop(self):
        if self.proc.poll() is None:
            # systemd-nspawn turns SIGTERM into an orderly shutdown of the container.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)
        self.log.close()


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("systemd-nspawn needs root")
    need("systemd-nspawn")
    assert os.path.exists(BIN), BIN
    tar = debbase.systemd_tarball(need("debootstrap"), runtime_packages())
    work = tmp_path_factory.mktemp("nspawn")
    tree = str(work / "root")
    os.mkdir(tree)
    run(["tar", "-C", tree, "-xf", tar], timeout=300).check_returncode()
    os.chmod(tree, 0o755)
    # Install as the unit's own comment says.
    shutil.copy(BIN, os.path.join(tree, "usr/local/bin/portcullis"))
    os.chmod(os.path.join(tree, "usr/local/bin/portcullis"), 0o755)
    shutil.copy(os.path.join(SRC, "docker", "portcullis-healthcheck"),
                os.path.join(tree, "usr/local/bin/portcullis-healthcheck"))
    shutil.copy(UNIT, os.path.join(tree, "etc/systemd/system/portcullis.service"))
    os.makedirs(os.path.join(tree, "etc/portcullis"))
    with open(os.path.join(tree, "etc/portcullis/portcullis.json"), "w") as f:
        f.write(CONFIG % "stdout")
    r = run(["chroot", tree, "useradd", "--system", "--home-dir", "/var/lib/portcullis",
             "--shell", "/usr/sbin/nologin", "portcullis"])
    assert r.returncode == 0, r.stderr
    os.chmod(os.path.join(tree, "etc/portcullis/portcullis.json"), 0o644)
    m = Machine(tree, str(work / "console.log"))
    try:
        def booted():
            # basic.target: enough for the unit (dbus and logind may still be
            # starting on a busy machine; the unit needs neither).
            return m.run("systemctl", "is-active", "basic.target").stdout.strip() == "active"
        end = time.monotonic() + 60
        while not booted():
            assert time.monotonic() < end, open(str(work / "console.log"), errors="replace").read()
            time.sleep(0.5)
        yield m
    finally:
        m.stop()
        shutil.rmtree(str(work), ignore_errors=True)


def healthy(m):
    return m.run("env", "PORTCULLIS_ADMIN=127.0.0.1:9901",
                 "/usr/local/bin/portcullis-healthcheck").returncode == 0


def wait(what, check, timeout=20):
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out: " + what
        time.sleep(0.3)


def test_unit_starts_reloads_and_stops(machine):
    m = machine
    m.ok("systemctl", "start", "portcullis")
    wait("health", lambda: healthy(m))
    assert m.show("ActiveState") == "active"
    pid = m.show("MainPID")
    assert m.ok("ps", "-o", "user=", "-p", pid).strip() == "portcullis"

    # The process: only CAP_NET_BIND_SERVICE, no new privileges, a seccomp filter.
    status = dict(line.split(":", 1) for line in m.ok("cat", "/proc/%s/status" % pid).splitlines())
    assert int(status["CapEff"], 16) == 1 << 10, status["CapEff"]
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"
    # Keys kept close (core/keyguard.c): no core file, not dumpable (/proc/PID is root's).
    limits = m.ok("grep", "Max core file size", "/proc/%s/limits" % pid).split()
    assert limits[4:6] == ["0", "0"], limits
    assert m.ok("stat", "-c", "%u", "/proc/%s/status" % pid).strip() == "0"

    # Reload: the file is checked, then SIGHUP; the same process serves on, now
    # with an access log in its LogsDirectory.
    conf = os.path.join(m.tree, "etc/portcullis/portcullis.json")
    with open(conf, "w") as f:
        f.write(CONFIG % "/var/log/portcullis/access.log")
    m.ok("systemctl", "reload", "portcullis")
    assert m.show("MainPID") == pid
    wait("the reload", lambda: "configuration reloaded" in m.ok(
        "journalctl", "-q", "-o", "cat", "-u", "portcullis"))
    m.ok("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080; "
         "printf 'GET /probe HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3; cat <&3")
    wait("an access log line", lambda: "/probe" in m.run(
        "cat", "/var/log/portcullis/access.log").stdout)
    # A broken file: reload fails visibly, the process keeps running.
    with open(conf, "w") as f:
        f.write("{ broken")
    r = m.run("systemctl", "reload", "portcullis")
    assert r.returncode != 0
    assert m.show("ActiveState") == "active" and m.show("MainPID") == pid and healthy(m)
    with open(conf, "w") as f:
        f.write(CONFIG % "stdout")

    # Stop: SIGTERM, drain, exit 0 (not killed).
    m.ok("systemctl", "stop", "portcullis", timeout=60)
    assert m.show("ActiveState") == "inactive"
    assert m.show("Result") == "success"
    assert m.show("ExecMainStatus") == "0"
    journal = m.ok("journalctl", "-q", "-o", "cat", "-u", "portcullis")
    assert "shutdown complete" in journal, journal
    assert "SIGKILL" not in journal and "timed out" not in journal, journal


def test_sandbox_allows_writes_only_where_the_unit_says(machine):
    m = machine
    m.ok("systemctl", "start", "portcullis")
    wait("health", lambda: healthy(m))
    pid = m.show("MainPID")
    uid = m.ok("id", "-u", "portcullis").strip()
    gid = m.ok("id", "-g", "portcullis").strip()

    def can_write(path):
        # In the service's own mount namespace, as its user.
        r = m.run("nsenter", "-t", pid, "-m", "-S", uid, "-G", gid, "--",
                  "/bin/sh", "-c", "echo x > '%s' && rm -f '%s'" % (path, path))
        return r.returncode == 0

    try:
        for ok in ("/var/lib/portcullis/probe", "/var/log/portcullis/probe", "/tmp/probe",
                   "/var/tmp/probe"):
            assert can_write(ok), ok
        for no in ("/etc/portcullis/probe", "/etc/probe", "/usr/local/bin/probe", "/var/probe",
                   "/var/lib/probe", "/root/probe", "/home/probe", "/run/probe", "/opt/probe"):
            assert not can_write(no), no
        # /tmp is private: what the service writes there is not the machine's /tmp.
        m.ok("nsenter", "-t", pid, "-m", "-S", uid, "-G", gid, "--", "touch", "/tmp/private-probe")
        assert not os.path.exists(os.path.join(m.tree, "tmp/private-probe"))
        assert m.run("test", "-e", "/tmp/private-probe").returncode != 0
        # The state and log directories as the unit declares them.
        assert m.ok("stat", "-c", "%U %a", "/var/lib/portcullis").split() == ["portcullis", "700"]
        assert m.ok("stat", "-c", "%U %a", "/var/log/portcullis").split() == ["portcullis", "750"]
    finally:
        m.ok("systemctl", "stop", "portcullis", timeout=60)
    assert m.show("Result") == "success"


LOAD = r"""
ok=0 bad=0 i=0
while [[ ! -e /var/tmp/load-stop ]]; do
	i=$((i + 1))
	if ! exec 3<>/dev/tcp/127.0.0.1/8080; then bad=$((bad + 1)); echo "connect $i"; continue; fi
	printf 'GET /load/%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$i" >&3
	if IFS= read -r -t 20 line <&3 && [[ $line == "HTTP/1.1 "* ]]; then ok=$((ok + 1))
	else bad=$((bad + 1)); echo "answer $i: ${line:-none}"; fi
	exec 3<&-
done
echo "ok=$ok bad=$bad"
"""


def test_restart_with_socket_unit_refuses_nothing(machine):
    """conf/portcullis-http.socket (on port 8080 here): systemd holds the socket
    across `systemctl restart`, so requests sent meanwhile wait instead of failing."""
    m = machine
    with open(os.path.join(SRC, "conf", "portcullis-http.socket")) as f:
        unit = f.read().replace("ListenStream=80\n", "ListenStream=127.0.0.1:8080\n")
    assert "ListenStream=127.0.0.1:8080" in unit and "FileDescriptorName=http" in unit
    with open(os.path.join(m.tree, "etc/systemd/system/portcullis-http.socket"), "w") as f:
        f.write(unit)
    m.ok("systemctl", "daemon-reload")
    m.ok("systemctl", "start", "portcullis-http.socket")
    try:
        m.ok("systemctl", "start", "portcullis")
        wait("health", lambda: healthy(m))
        journal = m.ok("journalctl", "-q", "-o", "cat", "-u", "portcullis")
        assert "listening on 127.0.0.1:8080 (http, handed over)" in journal, journal
        # the load runs (one connection after another) until the restarts are done
        stop = os.path.join(m.tree, "var/tmp/load-stop")
        if os.path.exists(stop):
            os.unlink(stop)
        load = subprocess.Popen(
            [need("nsenter"), "-t", str(m.pid), "-m", "-u", "-i", "-n", "-p", "--",
             "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "bash", "-c", LOAD, "load"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pids = [m.show("MainPID")]
        for _ in range(2):
            time.sleep(1)
            m.ok("systemctl", "restart", "portcullis", timeout=60)
            pids.append(m.show("MainPID"))
        time.sleep(1)
        assert load.poll() is None, "the load ended before the restarts did"
        with open(stop, "w"):
            pass
        out, _ = load.communicate(timeout=120)
        assert len(set(pids)) == 3, pids
        last = out.strip().splitlines()[-1]
        ok, bad = (int(x.split("=")[1]) for x in last.split())
        assert bad == 0 and ok > 50, out[-3000:]
    finally:
        m.run("systemctl", "stop", "portcullis", "portcullis-http.socket", timeout=60)

"""Keys kept close (issue #19, core/keyguard.c): the serving process cannot
dump core (RLIMIT_CORE 0), is not dumpable (PR_SET_DUMPABLE 0: the kernel
then owns its /proc entries by root and refuses ptrace by its own user), and
OpenSSL's secure heap keeps private keys in locked memory (VmLck).

Runs the binary as "nobody" through setpriv, so that /proc shows the flag:
an unprivileged, dumpable process owns its /proc/PID files itself."""

import json
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from configs import config, route
from harness import BINARY, WAIT, need, request, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv to nobody)")


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    raise AssertionError("no core limit in /proc/%d/limits" % pid)


@pytest.fixture
def unprivileged():
    """The binary as nobody, in a folder nobody can read; yields (proc, port, stderr path)."""
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="portcullis-keyguard-", dir="/tmp")
    os.chmod(d, 0o755)
    cfg = config({"web": "127.0.0.1:9"}, [{"name": "main", "default": True,
                                           "routes": [route("all", "web")]}])
    path = os.path.join(d, "keyguard.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    os.chmod(path, 0o644)
    err_path = os.path.join(d, "stderr")
    err = open(err_path, "wb")
    env = {k: v for k, v in os.environ.items() if k != "PORTCULLIS_ALLOW_ROOT"}

    def memlock():  # room for the 1 MiB secure heap whatever the caller's limit
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 << 20, 8 << 20))

    proc = subprocess.Popen([need("setpriv"), "--reuid=%d" % nobody.pw_uid,
                             "--regid=%d" % nobody.pw_gid, "--clear-groups", BINARY, "-c", path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                            env=env, cwd=d, preexec_fn=memlock)
    try:
        def listening():
            text = open(err_path, errors="replace").read()
            assert proc.poll() is None, text
            m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(http\)", text)
            return m and "ready:" in text and int(m.group(1))
        port = wait_until(listening, what="the proxy to start")
        yield proc, port, err_path, nobody
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(WAIT * 3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.close()
        shutil.rmtree(d, ignore_errors=True)


def test_not_dumpable_no_core_keys_locked(unprivileged):
    proc, port, err_path, nobody = unprivileged
    st = status(proc.pid)
    assert st["Uid"].split()[0] == str(nobody.pw_uid)
    # Not dumpable: the kernel gives the process's /proc files to root.
    assert os.stat("/proc/%d/status" % proc.pid).st_uid == 0
    assert core_limit(proc.pid) == ["0", "0"]
    # OpenSSL's secure heap (1 MiB) is locked.
    assert int(st["VmLck"].split()[0]) >= 1024, st["VmLck"]
    # It still serves (502: nothing listens on the upstream's port).
    assert request(port, "GET", "/", host="main.test").status in (502, 503, 504)
    assert "secure heap" not in open(err_path).read()


def test_a_dumpable_process_would_show(tmp_path):
    """The check above can fail: an ordinary process of nobody owns its /proc files."""
    nobody = pwd.getpwnam("nobody")
    p = subprocess.Popen([need("setpriv"), "--reuid=%d" % nobody.pw_uid,
                          "--regid=%d" % nobody.pw_gid, "--clear-groups", need("sleep"), "30"])
    try:
        wait_until(lambda: status(p.pid)["Uid"].split()[0] == str(nobody.pw_uid),
                   what="setpriv to switch")
        time.sleep(0.1)
        assert os.stat("/proc/%d/status" % p.pid).st_uid == nobody.pw_uid
    finally:
        p.kill()
        p.wait()

"""Privileges: started as root, Portcullis reads its configuration without
side effects, binds (a port below 1024 too), makes its missing state folders
for the configured "user", becomes that user for good and only then loads
for real (keys, local CA, access log) as the user; it refuses to stay root
unless told to.  Root never follows a symlink the user could have planted in
a state folder (the red-team's three attacks are here), and -t creates and
fetches nothing.

Runs as root (skipped otherwise): it creates the system user
"portcullis-test" with useradd and removes it at the end.  The proxy's
working folder is a 0755 folder under /tmp, because pytest's own tmp folders
are closed to other users, and the dropped process must reach its certs/.
"""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from configs import config, route, throwaway_idp_metadata  # noqa: E402
from harness import (BINARY, SANITIZER_MARKERS, Lab, request, run_binary,  # noqa: E402
                     wait_until)

USER = "portcullis-test"
HOST = "privdrop.test"
REFUSAL = ('refusing to run as root: set "user" (e.g. "portcullis") to drop privileges after '
           'binding, or "allow_root": true')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (useradd, binding < 1024)")


def _userdel():
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["groupdel", USER], capture_output=True)


@pytest.fixture(scope="module")
def account():
    """The system user portcullis-test (created here, removed at the end)."""
    if shutil.which("useradd") is None:
        pytest.fail("useradd not found (package passwd)")
    _userdel()  # a leftover of an interrupted run
    r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        yield pwd.getpwnam(USER)
    finally:
        _userdel()


@pytest.fixture
def workdir():
    """A folder every user can traverse (mkdtemp makes it 0700)."""
    d = tempfile.mkdtemp(prefix="portcullis-privdrop-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def plab(workdir):
    lab = Lab(workdir)
    try:
        yield lab
    finally:
        lab.close()


def low_port():
    """A free loopback port below 1024 (only root may bind it)."""
    for port in range(181, 1024):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.skip("no free port below 1024")


def proc_status(pid, task=None):
    path = "/proc/%d/task/%d/status" % (pid, task) if task else "/proc/%d/status" % pid
    fields = {}
    with open(path) as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return fields


def assert_dropped(pid, uid, gid):
    """Every thread: all four uids and gids the user's, only its group, no
    capability at all, no_new_privs."""
    tasks = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    assert len(tasks) >= 3, tasks  # main thread + 2 workers
    for task in tasks:
        st = proc_status(pid, task)
        assert st["Uid"] == [str(uid)] * 4, (task, st["Uid"])
        assert st["Gid"] == [str(gid)] * 4, (task, st["Gid"])
        assert st["Groups"] == [str(gid)], (task, st["Groups"])
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            assert int(st[cap][0], 16) == 0, (task, cap, st[cap])
        assert st["NoNewPrivs"] == ["1"], (task, st["NoNewPrivs"])


def curl_tls(ca, empty, port, path="/"):
    p = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--cacert", ca, "--capath", empty,
                        "--resolve", "%s:%d:127.0.0.1" % (HOST, port),
                        "https://%s:%d%s" % (HOST, port, path)],
                       capture_output=True, timeout=20)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def write_json(path, cfg):
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def base_config(up, **top):
    cfg = config({"web": up}, [{"name": "app", "hosts": [HOST], "default": True,
                                "routes": [route("web", "web")]}], **top)
    return cfg


def test_drop_after_binding_low_port_tls_reload(account, workdir, plab):
    uid, gid = account.pw_uid, account.pw_gid
    port = low_port()
    empty = os.path.join(workdir, "empty-capath")
    os.mkdir(empty)
    # Things that are not Portcullis's, reachable from its certs folder by a
    # symlink and a hard link: they must stay root's.
    os.makedirs(os.path.join(workdir, "certs"), mode=0o700)
    outside = os.path.join(workdir, "outside.txt")
    hard = os.path.join(workdir, "hard.txt")
    for p in (outside, hard):
        with open(p, "w") as f:
            f.write("not Portcullis's\n")
    os.symlink(outside, os.path.join(workdir, "certs", "link-out"))
    os.link(hard, os.path.join(workdir, "certs", "hard-in"))

    up = plab.upstream("web")
    cfg = base_config(up, user=USER,
                      listeners=[{"name": "low", "address": "127.0.0.1:%d" % port},
                                 {"name": "https", "address": "127.0.0.1:0", "tls": True}],
                      tls={"mode": "local", "local_ca": {"names": [HOST]}})
    proxy = plab.proxy(cfg, name="dropped")
    assert proxy.ports["low"] == port
    err = proxy.stderr()
    assert re.search(r" info dropped privileges to user %s \(uid %d, gid %d\)" % (USER, uid, gid),
                     err), err
    # Dropped before any worker thread started.
    assert err.index("dropped privileges") < err.index("ready: 2 workers"), err
    assert_dropped(proxy.pid, uid, gid)

    # Still proxies, on the low port and over TLS with the local CA.
    r = request(port, "GET", "/plain", host=HOST)
    assert r.status == 200, r
    assert up.wait_for_count(1)[-1].path == "/plain"
    ca = os.path.join(workdir, "certs", "local-ca", "ca.crt")
    rc, out, cerr = curl_tls(ca, empty, proxy.ports["https"], "/over-tls")
    assert rc == 0, cerr
    assert out.startswith("HTTP/2 200"), out
    assert up.wait_for_count(2)[-1].path == "/over-tls"

    # The state folder is the user's now; nothing else changed hands.
    certs = os.path.join(workdir, "certs")
    owned = []
    for root, dirs, files in os.walk(certs):
        for name in [""] + dirs + files:
            path = os.path.join(root, name) if name else root
            if name in ("link-out", "hard-in"):
                continue
            st = os.lstat(path)
            assert (st.st_uid, st.st_gid) == (uid, gid), (path, st.st_uid, st.st_gid)
            owned.append(os.path.relpath(path, certs))
    assert {"local-ca", "local-ca/ca.key", "local-ca/ca.crt"} <= set(owned), owned
    assert os.stat(os.path.join(certs, "local-ca", "ca.key")).st_mode & 0o777 == 0o600
    assert os.lstat(os.path.join(certs, "link-out")).st_uid == 0
    for p in (outside, hard, proxy.config_path, workdir):
        assert os.stat(p).st_uid == 0, p
    assert "hard-in has 2 hard links: left as it is" in err, err

    # SIGHUP: the user re-reads the config and keeps serving.
    cfg["sites"][0]["routes"].insert(0, route("hello", path=["/hello"],
                                              respond={"status": 203, "body": "reloaded"}))
    proxy.write_config(cfg)
    mark = len(proxy.stderr())
    os.kill(proxy.pid, signal.SIGHUP)
    proxy.wait_stderr(r" info configuration reloaded from ", start=mark)
    r = request(port, "GET", "/hello", host=HOST)
    assert r.status == 203 and r.body == b"reloaded", r
    rc, out, cerr = curl_tls(ca, empty, proxy.ports["https"], "/hello")
    assert rc == 0 and out.startswith("HTTP/2 203"), (cerr, out)

    # A changed "user" takes effect at the next restart only.
    cfg["user"] = "nobody"
    proxy.write_config(cfg)
    mark = len(proxy.stderr())
    os.kill(proxy.pid, signal.SIGHUP)
    proxy.wait_stderr(r" info configuration reloaded from ", start=mark)
    assert re.search(r' warn "user", "group" or "allow_root" changed: it takes effect at the '
                     r'next restart', proxy.stderr()[mark:]), proxy.stderr()[mark:]
    assert_dropped(proxy.pid, uid, gid)
    assert request(port, "GET", "/again", host=HOST).status == 200

    # Restart on the same folder: the user's files are loaded, the same CA kept.
    with open(ca) as f:
        ca_pem = f.read()
    assert plab.stop_proxy(proxy) == []
    cfg["user"] = USER
    again = plab.proxy(cfg, name="again")
    assert_dropped(again.pid, uid, gid)
    with open(ca) as f:
        assert f.read() == ca_pem
    rc, out, cerr = curl_tls(ca, empty, again.ports["https"], "/second-run")
    assert rc == 0 and out.startswith("HTTP/2 200"), (cerr, out)


def test_refuses_root_without_user(workdir, plab):
    up = plab.upstream("web")
    path = os.path.join(workdir, "root.json")
    write_json(path, base_config(up))
    r = run_binary(["-c", path], env={"PORTCULLIS_ALLOW_ROOT": None})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert REFUSAL in r.stderr, r.stderr
    assert "listening on" not in r.stderr, r.stderr
    # -t only checks the file: running it as root is fine.
    r = run_binary(["-t", "-c", path], env={"PORTCULLIS_ALLOW_ROOT": None})
    assert r.returncode == 0, r.stderr

    # "user" naming root is no drop either.
    write_json(path, base_config(up, user="root"))
    r = run_binary(["-c", path], env={"PORTCULLIS_ALLOW_ROOT": None})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert 'refusing to run as root: "user" is "root" (uid 0)' in r.stderr, r.stderr


@pytest.mark.parametrize("how", ["config", "environment"])
def test_allow_root_runs_as_root_with_a_warning(workdir, plab, how):
    up = plab.upstream("web")
    cfg = base_config(up, allow_root=True) if how == "config" else base_config(up)
    env = {"PORTCULLIS_ALLOW_ROOT": "1"} if how == "environment" else {}
    proxy = plab.proxy(cfg, env=env, name="asroot")
    assert re.search(r' warn running as root \("allow_root"\)', proxy.stderr()), proxy.stderr()
    assert "dropped privileges" not in proxy.stderr()
    st = proc_status(proxy.pid)
    assert st["Uid"] == ["0"] * 4, st["Uid"]
    assert st["NoNewPrivs"] == ["1"], st["NoNewPrivs"]
    assert request(proxy.port, "GET", "/root", host=HOST).status == 200


def test_check_names_the_missing_user(account, workdir, plab):
    up = plab.upstream("web")
    path = os.path.join(workdir, "t.json")
    write_json(path, base_config(up, user="no-such-portcullis-user"))
    r = run_binary(["-t", "-c", path])
    assert r.returncode == 1, r.stdout + r.stderr
    assert ('user: no user named "no-such-portcullis-user" on this system; create it with: '
            'useradd --system') in r.stderr, r.stderr
    write_json(path, base_config(up, user=USER, group="no-such-portcullis-group"))
    r = run_binary(["-t", "-c", path])
    assert r.returncode == 1 and 'group: no group named "no-such-portcullis-group"' in r.stderr, \
        r.stderr
    write_json(path, base_config(up, user=USER))
    r = run_binary(["-t", "-c", path])
    assert r.returncode == 0, r.stderr


def test_state_folder_holding_the_config_is_refused(account, workdir, plab):
    """certs_dir "." would hand the configuration file to the user: refused."""
    up = plab.upstream("web")
    path = os.path.join(workdir, "dot.json")
    write_json(path, base_config(up, user=USER,
                                   listeners=[{"address": "127.0.0.1:0", "tls": True}],
                                   tls={"mode": "local", "local_ca": True, "certs_dir": workdir}))
    p = subprocess.run([BINARY, "-c", path], capture_output=True, text=True, timeout=30,
                       cwd=workdir, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert "tls.certs_dir: \"%s\" holds the configuration file %s" % (workdir, path) in p.stderr, \
        p.stderr
    assert os.stat(path).st_uid == 0 and os.stat(workdir).st_uid == 0


def test_started_as_the_user(account, workdir, plab):
    """Not root: "user" must be the user it runs as (only root can switch)."""
    up = plab.upstream("web")
    path = os.path.join(workdir, "u.json")
    write_json(path, base_config(up, user="nobody"))
    p = subprocess.run([BINARY, "-c", path], capture_output=True, text=True, timeout=30,
                       cwd=workdir, stdin=subprocess.DEVNULL, user=USER, group=USER,
                       extra_groups=[])
    assert p.returncode == 1, p.stderr
    assert ('"user" is "nobody" (uid %d) but Portcullis was started as uid %d, and only root '
            'can switch users' % (pwd.getpwnam("nobody").pw_uid, account.pw_uid)) in p.stderr, \
        p.stderr

    write_json(path, base_config(up, user=USER))
    out = open(os.path.join(workdir, "u.stderr"), "w+")
    proc = subprocess.Popen([BINARY, "-c", path], stdout=subprocess.DEVNULL, stderr=out,
                            cwd=workdir, stdin=subprocess.DEVNULL, user=USER, group=USER,
                            extra_groups=[])
    try:
        def started():
            out.seek(0)
            text = out.read()
            assert proc.poll() is None, text
            return re.search(r"listening on 127\.0\.0\.1:(\d+) \(http\)", text) and \
                "ready: 2 workers" in text and text
        text = wait_until(started, what="the proxy started as %s" % USER)
        assert "dropped privileges" not in text and "refusing" not in text, text
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+) \(http\)", text).group(1))
        assert request(port, "GET", "/as-user", host=HOST).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        out.close()


# --------------------------------------------------------------------------
# Root and the user's state folders (red-team report, finding 2)
# --------------------------------------------------------------------------

def as_user(cmd):
    """Run the shell command <cmd> as the service user (the attacker)."""
    p = subprocess.run(["sh", "-ec", cmd], capture_output=True, text=True, timeout=30,
                       user=USER, group=USER, extra_groups=[], stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (cmd, p.stderr)


def start_fails(path):
    """Start the binary as root on <path>: it must exit 1 by itself, before
    it is ready.  Returns its stderr."""
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen([BINARY, "-c", path], stdout=subprocess.DEVNULL, stderr=out,
                            stdin=subprocess.DEVNULL, cwd=os.path.dirname(path))

    def ended():
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        if proc.poll() is None and re.search(r" info ready: \d+ worker", text):
            proc.kill()
            proc.wait()
            raise AssertionError("started although it should not have:\n" + text)
        return proc.poll() is not None and text

    try:
        text = wait_until(ended, what="the proxy to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    assert proc.returncode == 1, (proc.returncode, text)
    assert not any(m in text for m in SANITIZER_MARKERS), text
    return text


def check(path):
    """portcullis -t -c <path>, with no sanitizer report."""
    r = run_binary(["-t", "-c", path])
    assert not any(m in r.stderr for m in SANITIZER_MARKERS), r.stderr
    return r


def root_thing(path, mode, content=None):
    """A folder (content None) or file of root's, outside every state folder."""
    if content is None:
        os.mkdir(path)
    else:
        with open(path, "w") as f:
            f.write(content)
    os.chmod(path, mode)
    return path


def saml_block(workdir, certs, metadata=None):
    md = metadata
    if md is None:
        md = os.path.join(workdir, "idp-metadata.xml")
        shutil.copyfile(throwaway_idp_metadata(), md)
        os.chmod(md, 0o644)
    return {"idp_metadata": md, "base_url": "http://localhost:8080", "certs_dir": certs}


def saml_tls_config(up, workdir, certs, **top):
    cfg = base_config(up, listeners=[{"name": "http", "address": "127.0.0.1:0"},
                                     {"name": "https", "address": "127.0.0.1:0", "tls": True}],
                      tls={"mode": "local", "local_ca": {"names": [HOST]}, "certs_dir": certs},
                      saml=saml_block(workdir, certs), **top)
    cfg["sites"][0]["routes"].insert(0, route("private", "web", path=["/private"], auth="saml"))
    return cfg


def test_user_owned_state_folder_attacks_fail(account, workdir, plab):
    """The Docker layout: the state folder's parent is the user's, so after a
    first run the user can put anything where root used to work."""
    uid, gid = account.pw_uid, account.pw_gid
    state = os.path.join(workdir, "state")
    os.mkdir(state, 0o755)
    os.chown(state, uid, gid)
    certs = os.path.join(state, "certs")
    up = plab.upstream("web")
    cfg = saml_tls_config(up, workdir, certs, user=USER)

    # First run: root makes certs (only that folder) for the user; the user
    # makes every key in it.
    first = plab.proxy(cfg, name="first")
    err = first.stderr()
    assert "privileges: created %s (tls.certs_dir) for user %s" % (certs, USER) in err, err
    assert_dropped(first.pid, uid, gid)
    assert request(first.port, "GET", "/private", host=HOST).status in (302, 401)
    names = set()
    for root, dirs, files in os.walk(certs):
        for name in [""] + dirs + files:
            path = os.path.join(root, name) if name else root
            st = os.lstat(path)
            assert (st.st_uid, st.st_gid) == (uid, gid), (path, st.st_uid, st.st_gid)
            names.add(os.path.relpath(path, certs))
    assert {"saml-sp.key", "saml-sp.crt", "session.key", "local-ca/ca.key", "local-ca/lock"} \
        <= names, names
    with open(os.path.join(certs, "local-ca", "ca.crt")) as f:
        ca_pem = f.read()
    assert plab.stop_proxy(first) == []
    path = first.config_path

    # a) certs -> a folder of root's: nothing in it changes hands, no key is
    # written there, the start fails and says why.
    victim = root_thing(os.path.join(workdir, "victim.d"), 0o755)
    job = root_thing(os.path.join(victim, "job"), 0o600, "* * * * * root true\n")
    as_user("cd %s && mv certs certs.old && ln -s %s certs" % (state, victim))
    err = start_fails(path)
    assert ("tls.certs_dir: %s is a symbolic link that root does not own; root does not follow "
            "it before dropping privileges" % certs) in err, err
    for p, mode in ((victim, 0o755), (job, 0o600)):
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, mode), (p, st)
    assert os.listdir(victim) == ["job"]
    as_user("cd %s && rm certs && mv certs.old certs" % state)

    # b) certs/local-ca/lock -> a path that does not exist: never created.
    created = os.path.join(workdir, "created-by-root")
    lock = os.path.join(certs, "local-ca", "lock")
    as_user("rm %s && ln -s %s %s" % (lock, created, lock))
    err = start_fails(path)
    assert "cannot open %s: it is a symbolic link, which is never followed here" % lock in err, err
    assert not os.path.lexists(created)
    as_user("rm %s" % lock)

    # c) certs/local-ca -> a 0755 folder of root's: its mode stays, nothing
    # is written in it.
    modedir = root_thing(os.path.join(workdir, "modedir"), 0o755)
    localca = os.path.join(certs, "local-ca")
    as_user("mv %s %s.old && ln -s %s %s" % (localca, localca, modedir, localca))
    err = start_fails(path)
    assert ("cannot open folder %s: it is a symbolic link, which is never followed here"
            % localca) in err, err
    st = os.stat(modedir)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755) and os.listdir(modedir) == [], st

    # d) a key of the user's replaced by a FIFO: root's first reading opens
    # no FIFO (it would hang), it refuses it.
    as_user("rm %s && mv %s.old %s" % (localca, localca, localca))
    session_key = os.path.join(certs, "session.key")
    as_user("mv %s %s.old && mkfifo %s" % (session_key, session_key, session_key))
    err = start_fails(path)
    assert "saml.session_key_file: %s: not a regular file" % session_key in err, err
    as_user("rm %s && mv %s.old %s" % (session_key, session_key, session_key))

    # Put back, the folder starts again with the same CA, all the user's.
    again = plab.proxy(cfg, name="again")
    assert "privileges: created" not in again.stderr(), again.stderr()
    assert_dropped(again.pid, uid, gid)
    with open(os.path.join(certs, "local-ca", "ca.crt")) as f:
        assert f.read() == ca_pem
    assert os.stat(certs).st_uid == uid


def test_root_symlink_to_the_state_folder_is_followed(account, workdir, plab):
    """A symlink only root could have made (root's, in a folder only root
    writes) is walked: the folder it names is made for the user."""
    uid = account.pw_uid
    real = os.path.join(workdir, "real-certs")
    link = os.path.join(workdir, "certs-link")
    os.symlink("real-certs", link)
    up = plab.upstream("web")
    cfg = base_config(up, user=USER,
                      listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True}],
                      tls={"mode": "local", "local_ca": {"names": [HOST]}, "certs_dir": link})
    proxy = plab.proxy(cfg, name="linked")
    assert_dropped(proxy.pid, uid, account.pw_gid)
    assert os.stat(real).st_uid == uid and os.stat(real).st_mode & 0o777 == 0o700
    assert os.lstat(link).st_uid == 0
    assert os.path.isfile(os.path.join(real, "local-ca", "ca.crt"))


def test_config_unreadable_by_the_user_stops_the_start(account, workdir, plab):
    """The real load runs as the user: a file only root reads is an error at
    start (it would be one at every reload), not after."""
    up = plab.upstream("web")
    path = os.path.join(workdir, "secret.json")
    write_json(path, base_config(up, user=USER))
    os.chmod(path, 0o600)
    err = start_fails(path)
    assert "dropped privileges to user %s" % USER in err, err
    assert "%s: cannot open: Permission denied" % path in err, err
    assert "portcullis: %s: configuration has errors; not starting" % path in err, err


def test_check_has_no_side_effects(workdir, plab):
    """-t creates no folder or key and fetches no metadata; it still checks
    the files that exist."""
    up = plab.upstream("web")
    idp = plab.upstream("idp")
    fresh = os.path.join(workdir, "fresh")
    path = os.path.join(workdir, "check.json")
    for metadata in ("http://127.0.0.1:%d/metadata" % idp.port, None):
        cfg = base_config(up, saml=saml_block(workdir, fresh, metadata),
                          tls={"mode": "local", "local_ca": True, "certs_dir": fresh},
                          listeners=[{"address": "127.0.0.1:0", "tls": True}])
        cfg["sites"][0]["routes"][0]["auth"] = "saml"
        write_json(path, cfg)
        r = check(path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "%s: configuration OK\n" % path, r.stdout
        assert not os.path.lexists(fresh)
    assert idp.connections == 0 and idp.requests == []

    # What exists is checked.
    os.mkdir(fresh, 0o700)
    key = os.path.join(fresh, "session.key")
    with open(key, "w") as f:
        f.write("not a key\n")
    os.chmod(key, 0o600)
    r = check(path)
    assert r.returncode == 1 and "saml.session_key_file: %s, line 1: not a session key" % key \
        in r.stderr, r.stderr
    os.unlink(key)
    os.mkfifo(key)
    r = check(path)
    assert r.returncode == 1 and "saml.session_key_file: %s: not a regular file" % key \
        in r.stderr, r.stderr
    os.unlink(key)
    with open(os.path.join(fresh, "saml-sp.crt"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    r = check(path)
    assert r.returncode == 1 and "the SAML SP key is missing but its certificate" in r.stderr, \
        r.stderr
    assert sorted(os.listdir(fresh)) == ["saml-sp.crt"]
    bad_md = os.path.join(workdir, "not-metadata.xml")
    with open(bad_md, "w") as f:
        f.write("<html/>")
    os.unlink(os.path.join(fresh, "saml-sp.crt"))
    cfg["saml"]["idp_metadata"] = bad_md
    write_json(path, cfg)
    r = check(path)
    assert r.returncode == 1 and ("saml.idp_metadata: %s: not IdP metadata" % bad_md) \
        in r.stderr, r.stderr
    assert os.listdir(fresh) == []

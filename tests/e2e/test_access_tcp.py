"""Raw TCP relay listeners: client address rules (127.0.0.x aliases and real
network namespaces), connection limits, PROXY protocol v1/v2 (and malformed
headers: refused, nothing forwarded), half-close, idle timeout, HTTP/2 (h2c)
through a relay with Debian's nghttpd/nghttp, and a 100 MiB upload with the
proxy's memory staying flat."""

import hashlib
import os
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest

from harness import WAIT, closed_port, need, wait_until


# ---- small peers (this file's own; the harness serves HTTP only) -----------------

class TcpPeer:
    """A threaded TCP server on 127.0.0.1:0.  mode "echo": send back what
    arrives, shut down writing at EOF.  mode "sink": count and hash what
    arrives (reading <chunk> bytes then sleeping <pause> s, to be slower
    than the client), answer the byte count and hash at EOF."""

    def __init__(self, mode, chunk=65536, pause=0.0):
        self.mode, self.chunk, self.pause = mode, chunk, pause
        self.connections = 0
        self.received = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        h = hashlib.sha256()
        n = 0
        data = b""
        try:
            while True:
                d = c.recv(self.chunk)
                if not d:
                    break
                n += len(d)
                if self.mode == "echo":
                    c.sendall(d)
                else:
                    h.update(d)
                    if len(data) < 4096:
                        data += d[:4096]
                    if self.pause:
                        time.sleep(self.pause)
            with self.lock:
                self.received.append(data if self.mode == "sink" else n)
            if self.mode == "sink":
                c.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture
def peers():
    made = []

    def make(mode, **kw):
        p = TcpPeer(mode, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def relay_config(upstream, **listener):
    l = {"name": "relay", "address": "127.0.0.1:0", "type": "tcp", "upstream": upstream}
    l.update(listener)
    return {
        "listeners": [{"name": "http", "address": "127.0.0.1:0"}, l],
        "admin": {"address": "127.0.0.1:0"},
        "workers": 2,
        "log": {"level": "info", "access_log": "stdout"},
        "upstreams": {"web": {"servers": [upstream]}},
        "sites": [{"routes": [{"upstream": "web"}]}],
    }


def connect(port, source=None, host="127.0.0.1"):
    return socket.create_connection((host, port), timeout=WAIT,
                                    source_address=(source, 0) if source else None)


def roundtrip(port, payload, source=None):
    """Send <payload>, half-close, read until the relay closes; returns the bytes."""
    s = connect(port, source)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d
    finally:
        s.close()


def refused(port, source=None, send=b""):
    """True when the relay closes the connection without sending a byte."""
    s = connect(port, source)
    try:
        if send:
            try:
                s.sendall(send)
            except OSError:
                return True
        try:
            return s.recv(100) == b""
        except ConnectionResetError:
            return True
    finally:
        s.close()


def test_relay_echo_half_close_and_allow_deny(lab, peers):
    echo = peers("echo")
    p = lab.proxy(relay_config(echo.address, allow=["127.0.0.1/32", "127.0.0.3/32"],
                               deny=["127.0.0.3/32"]))
    port = p.ports["relay"]
    payload = os.urandom(3 * 1024 * 1024)
    assert roundtrip(port, payload) == payload  # bytes both ways, half-close passed on
    before = echo.connections
    assert refused(port, source="127.0.0.2")  # not in the allow list
    assert refused(port, source="127.0.0.3")  # deny /32 beats allow /32
    time.sleep(0.2)
    assert echo.connections == before  # nothing reached the upstream
    err = p.stderr()
    assert "access refused for 127.0.0.2: address (listeners[1].allow: no entry matched)" in err
    assert "access refused for 127.0.0.3: address (listeners[1].deny[0] 127.0.0.3/32)" in err


def test_relay_connection_limits(lab, peers):
    echo = peers("echo")
    p = lab.proxy(relay_config(echo.address, max_connections_per_client=2, max_connections=3))
    port = p.ports["relay"]
    a, b = connect(port), connect(port)
    for s in (a, b):
        s.sendall(b"x")
        assert s.recv(1) == b"x"
    assert refused(port)  # a third from 127.0.0.1
    c = connect(port, source="127.0.0.2")  # another client still may
    c.sendall(b"y")
    assert c.recv(1) == b"y"
    assert refused(port, source="127.0.0.4")  # listener total of 3 reached
    for s in (a, b, c):
        s.close()
    # slots come back when connections end
    def freed():
        try:
            return roundtrip(port, b"again") == b"again"
        except OSError:
            return False
    wait_until(freed, what="a slot freed")
    assert "max_connections_per_client" in p.stderr()


def test_relay_idle_timeout(lab, peers):
    echo = peers("echo")
    p = lab.proxy(relay_config(echo.address, idle_timeout=1))
    s = connect(p.ports["relay"])
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"
    s.settimeout(WAIT)
    t0 = time.monotonic()
    assert s.recv(10) == b""  # closed by the proxy, not by us
    assert time.monotonic() - t0 >= 0.5
    s.close()
    assert "idle for 1 s; closed" in p.stderr()


def proxy_v2(src, dst, sport, dport):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_relay_proxy_protocol(lab, peers):
    sink = peers("sink")
    cfg = relay_config(sink.address, proxy_protocol=True, allow=["198.51.100.0/24"])
    cfg["trusted_proxies"] = ["127.0.0.1/32"]
    p = lab.proxy(cfg)
    port = p.ports["relay"]

    # v1 from a trusted proxy, allowed client: the header is removed, the rest relayed
    out = roundtrip(port, b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 7233\r\nhello v1")
    assert out.startswith(b"8 ")
    assert sink.received[-1] == b"hello v1"
    # v2, allowed client
    out = roundtrip(port, proxy_v2("198.51.100.8", "10.0.0.1", 40001, 7233) + b"hello v2")
    assert out.startswith(b"8 ") and sink.received[-1] == b"hello v2"
    n = sink.connections
    # the client named in the header is checked: refused
    assert refused(port, send=b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 7233\r\nsecret")
    assert refused(port, send=proxy_v2("203.0.113.9", "10.0.0.1", 1, 2) + b"secret")
    # malformed headers: refused, nothing forwarded
    for bad in (b"PROXY TCP4 198.51.100.7 10.0.0.1 40000\r\nsecret",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"PROXY TCP9 198.51.100.7 10.0.0.1 1 2\r\nsecret",
                b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12 + b"secret"):
        assert refused(port, send=bad), bad
    # a PROXY header from a peer that is not a trusted proxy
    assert refused(port, source="127.0.0.2",
                   send=b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 7233\r\nsecret")
    time.sleep(0.3)
    assert sink.connections == n
    assert all(b"secret" not in r for r in sink.received)
    err = p.stderr()
    assert "access refused for 203.0.113.9" in err
    assert "v1 header needs 6 fields" in err
    assert "a PROXY header is accepted only from trusted_proxies" in err


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_relay_100mib_upload_memory_flat(lab, peers):
    # The upstream reads slower than the client writes: only back-pressure
    # keeps the proxy from buffering the whole upload.
    sink = peers("sink", chunk=256 * 1024, pause=0.002)
    p = lab.proxy(relay_config(sink.address))
    port = p.ports["relay"]
    rss0 = _rss_kib(p.pid)
    peak = [rss0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kib(p.pid))
            time.sleep(0.02)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    size = 100 * 1024 * 1024
    h = hashlib.sha256()
    chunk = os.urandom(1024 * 1024)
    s = connect(port)
    try:
        for _ in range(size // len(chunk)):
            s.sendall(chunk)
            h.update(chunk)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(120)
        answer = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            answer += d
    finally:
        s.close()
        done.set()
        t.join()
    assert answer == b"%d %s\n" % (size, h.hexdigest().encode())
    growth_mib = (peak[0] - rss0) / 1024.0
    # Two workers, each at most 2 x 512 KiB queued per connection plus libevent's
    # chunks: a few MiB.  Buffering the upload would show ~100 MiB.
    # AddressSanitizer keeps freed memory in quarantine: RSS says nothing there.
    if os.environ.get("PORTCULLIS_SANITIZE") != "1":
        assert growth_mib < 24, "proxy RSS grew by %.1f MiB during a 100 MiB upload" % growth_mib


def test_h2c_through_relay(lab, tmp_path):
    nghttpd, nghttp = need("nghttpd"), need("nghttp")
    if not nghttpd or not nghttp:
        pytest.fail("unreachable",
                    pytrace=False)
    docroot = tmp_path / "htdocs"
    work = tmp_path / "client"
    work.mkdir()
    docroot.mkdir()
    body = os.urandom(300000)
    (docroot / "blob").write_bytes(body)
    # a free port for nghttpd (it cannot report an OS-chosen one)
    h2port = closed_port()
    srv = subprocess.Popen([nghttpd, "--no-tls", "-d", str(docroot), "-a", "127.0.0.1",
                            str(h2port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _can_connect(h2port), what="nghttpd listening")
        p = lab.proxy(relay_config("127.0.0.1:%d" % h2port, allow=["127.0.0.1/32"]))
        port = p.ports["relay"]
        url = "http://127.0.0.1:%d/blob" % port
        r = subprocess.run([nghttp, "-nv", url], capture_output=True, timeout=60, cwd=work)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        log = r.stdout.decode(errors="replace")
        assert "recv HEADERS frame" in log and ":status: 200" in log  # spoken as HTTP/2
        r = subprocess.run([nghttp, url], capture_output=True, timeout=60, cwd=work)
        assert r.returncode == 0 and r.stdout == body
        # the same request from a refused address gets nothing
        s = connect(port, source="127.0.0.2")
        try:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            got = s.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            got = b""  # closed before our bytes arrived: the kernel answers RST
        assert got == b""
        s.close()
    finally:
        srv.terminate()
        srv.wait(timeout=10)


def _can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# ---- network namespaces: a vSwitch network and an outside one -------------------------

class Netns:
    """Two namespaces, each joined to this one by a veth pair:
    "vs"  10.1.1.2 (host side 10.1.1.1)        - the private vSwitch
    "out" 203.0.113.2 (host side 203.0.113.1)  - the outside world
    Removed in close(), also after failures."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.names = {"vs": "pcvs" + tag, "out": "pcout" + tag}
        self.links = []
        nets = {"vs": ("10.1.1.1", "10.1.1.2"), "out": ("203.0.113.1", "203.0.113.2")}
        try:
            for key, (host_ip, ns_ip) in nets.items():
                ns = self.names[key]
                a, b = "v%s%s0" % (key, tag), "v%s%s1" % (key, tag)
                self._ip("netns", "add", ns)
                self._ip("link", "add", a, "type", "veth", "peer", "name", b)
                self.links.append(a)
                self._ip("link", "set", b, "netns", ns)
                self._ip("addr", "add", host_ip + "/24", "dev", a)
                self._ip("link", "set", a, "up")
                self._ip("-n", ns, "addr", "add", ns_ip + "/24", "dev", b)
                self._ip("-n", ns, "link", "set", b, "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ip(*args):
        r = subprocess.run(["ip"] + list(args), capture_output=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.decode().strip()))

    def run(self, key, code, timeout=30):
        """Run Python <code> inside namespace <key>; returns its stdout."""
        r = subprocess.run(["ip", "netns", "exec", self.names[key], "/usr/bin/python3", "-c", code],
                           capture_output=True, timeout=timeout)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        return r.stdout.decode()

    def close(self):
        for a in self.links:
            subprocess.run(["ip", "link", "del", a], capture_output=True)
        for ns in self.names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.fail("network namespace tests need root", pytrace=False)
    need("ip")
    n = Netns()
    try:
        yield n
    finally:
        n.close()


CLIENT = """
import socket
s = socket.create_connection(("%s", %d), timeout=10)
try:
    s.sendall(b"from-ns")
    s.shutdown(socket.SHUT_WR)
except OSError:
    pass
out = b""
while True:
    try:
        d = s.recv(100)
    except OSError:
        break
    if not d:
        break
    out += d
print(repr(out))
"""


def test_relay_vswitch_only_from_namespaces(lab, peers, netns):
    echo = peers("echo")
    cfg = relay_config(echo.address, allow=["10.1.1.0/24"])
    cfg["listeners"][1]["address"] = "0.0.0.0:0"
    p = lab.proxy(cfg)
    port = p.ports["relay"]
    assert netns.run("vs", CLIENT % ("10.1.1.1", port)).strip() == "b'from-ns'"
    n = echo.connections
    assert netns.run("out", CLIENT % ("203.0.113.1", port)).strip() == "b''"
    time.sleep(0.2)
    assert echo.connections == n
    assert "access refused for 203.0.113.2" in p.stderr()


# ---- the examples ---------------------------------------------------------------------

def test_vm_posthog_example_relays_only_private(lab, peers):
    from harness import SOURCE_DIR
    echo = peers("echo")
    web = lab.upstream("web")
    from configs import throwaway_idp_metadata
    env = {"PORTCULLIS_HTTP": "127.0.0.1:0", "PORTCULLIS_ADMIN": "127.0.0.1:0",
           "PRIVATE_CIDR": "127.0.0.1/32", "TLS_MODE": "off",
           "SAML_IDP_METADATA": throwaway_idp_metadata(), "TEMPORAL_UI": web.address,
           "TEMPORAL_UI_LISTEN": "127.0.0.1:0"}
    for var in ("POSTHOG_WEB", "POSTHOG_CAPTURE", "POSTHOG_REPLAY", "POSTHOG_FLAGS",
                "POSTHOG_LIVESTREAM", "POSTHOG_PLUGINS", "APP_UPSTREAM"):
        env[var] = web.address
    for name in ("TEMPORAL_GRPC", "MINIO_API", "MINIO_CONSOLE"):
        env[name] = echo.address
        env[name + "_LISTEN"] = "127.0.0.1:0"
    p = lab.proxy(os.path.join(SOURCE_DIR, "examples", "vm-posthog", "portcullis.json"), env=env)
    for name in ("temporal-grpc", "minio-api", "minio-console"):
        port = p.ports[name]
        assert roundtrip(port, b"hello " + name.encode()) == b"hello " + name.encode()
        assert refused(port, source="127.0.0.2")


def test_vswitch_gateway_example(lab, netns):
    from harness import SOURCE_DIR
    web = lab.upstream("web")
    env = {"GATEWAY_LISTEN": "10.1.1.1:0", "PORTCULLIS_ADMIN": "127.0.0.1:0",
           "GATEWAY_UPSTREAM": web.address}
    p = lab.proxy(os.path.join(SOURCE_DIR, "examples", "vswitch-gateway", "portcullis.json"),
                  env=env)
    port = p.ports["gateway"]
    get = ("import urllib.request, urllib.error\n"
           "try:\n"
           "    print(urllib.request.urlopen('http://10.1.1.1:%d/x', timeout=10).status)\n"
           "except urllib.error.HTTPError as e:\n"
           "    print(e.code)\n" % port)
    assert netns.run("vs", get).strip() == "200"
    # bound to the private address: the outside namespace cannot even reach it
    out = netns.run("out", "import socket\n"
                    "try:\n"
                    "    socket.create_connection(('10.1.1.1', %d), timeout=3); print('open')\n"
                    "except OSError as e:\n"
                    "    print('unreachable')\n" % port)
    assert out.strip() == "unreachable"

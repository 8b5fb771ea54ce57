"""ACME client end to end against Debian's pebble with real validation.

pebble-challtestsrv is the DNS server that maps every name to 127.0.0.1, and
pebble validates for real (PEBBLE_VA_NOSLEEP=1, never PEBBLE_VA_ALWAYS_VALID)
against tests/acme/acme_driver, which runs the ACME manager with tiny HTTP-01
and TLS-ALPN-01 responders on pebble's httpPort and tlsPort.  Pebble's own
TLS certificate comes from a throw-away CA made with openssl; the driver
trusts only that CA (--ca-bundle).  Issued chains are verified against the
root pebble generates at start (management port /roots/0).

The driver is found at $PORTCULLIS_ACME_DRIVER, else next to the portcullis
binary in <build>/tests/acme/acme_driver.
"""

import json
import os
import re
import signal
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import BINARY, closed_port, need, wait_until  # noqa: E402

DRIVER = os.environ.get("PORTCULLIS_ACME_DRIVER") or os.path.join(
    os.path.dirname(BINARY), "tests", "acme", "acme_driver")
VALIDITY = 600  # seconds: renewal at half of it, minus jitter


def _require(path, what):
    if not (path and os.path.exists(path)):
        pytest.fail("%s not found (%s)" % (what, path), pytrace=False)


def _stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


class Pebble:
    """pebble + pebble-challtestsrv on free loopback ports, in <tmp>."""

    def __init__(self, tmp, nonce_reject=0):
        self.tmp = str(tmp)
        self.procs = []
        need("pebble")
        need("pebble-challtestsrv")
        d = self.tmp
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-days", "2",
                 "-subj", "/CN=pebble API test CA")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", d + "/api.key", "-out", d + "/api.csr", "-subj", "/CN=localhost")
        with open(d + "/ext.cnf", "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", d + "/api.csr", "-CA", d + "/ca.pem", "-CAkey",
                 d + "/ca.key", "-CAcreateserial", "-out", d + "/api.pem", "-days", "2",
                 "-extfile", d + "/ext.cnf")
        self.ca = d + "/ca.pem"
        self.port = closed_port()
        self.mgmt = closed_port()
        self.http_port = closed_port()
        self.tls_port = closed_port()
        self.dns = closed_port()
        dns_mgmt = closed_port()
        with open(d + "/pebble.json", "w") as f:
            json.dump({"pebble": {
                "listenAddress": "127.0.0.1:%d" % self.port,
                "managementListenAddress": "127.0.0.1:%d" % self.mgmt,
                "certificate": d + "/api.pem", "privateKey": d + "/api.key",
                "httpPort": self.http_port, "tlsPort": self.tls_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": False,
                "certificateValidityPeriod": VALIDITY}}, f)
        self.dns_log = open(d + "/challtestsrv.log", "w")
        self.procs.append(subprocess.Popen(
            ["pebble-challtestsrv", "-dns01", "127.0.0.1:%d" % self.dns, "-http01", "",
             "-https01", "", "-tlsalpn01", "", "-management", "127.0.0.1:%d" % dns_mgmt,
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            stdout=self.dns_log, stderr=subprocess.STDOUT))
        self.env = dict(os.environ, PEBBLE_VA_NOSLEEP="1",
                        PEBBLE_WFE_NONCEREJECT=str(nonce_reject))
        self.env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self.log_path = d + "/pebble.log"
        self.start()

    @property
    def directory(self):
        return "https://127.0.0.1:%d/dir" % self.port

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["pebble", "-config", self.tmp + "/pebble.json", "-dnsserver",
             "127.0.0.1:%d" % self.dns, "-strict=false"],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(self.proc)
        wait_until(lambda: "Listening on" in self.text(), what="pebble to listen")
        ctx = ssl.create_default_context(cafile=self.ca)
        root = []

        def fetch_root():
            # the management listener may come up just after the API's log line
            try:
                with urllib.request.urlopen("https://127.0.0.1:%d/roots/0" % self.mgmt,
                                            context=ctx, timeout=10) as r:
                    root.append(r.read())
                return True
            except urllib.error.URLError:
                return False
        wait_until(fetch_root, what="pebble's management listener")
        self.root = self.tmp + "/root.pem"
        with open(self.root, "wb") as f:
            f.write(root[0])

    def stop(self):
        _stop(self.proc)
        self.log.close()

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def orders(self):
        return len(re.findall(r'Added order "', self.text()))

    def close(self):
        for p in reversed(self.procs):
            _stop(p)
        self.dns_log.close()


class Driver:
    """One acme_driver process; its stdout CERT lines and stderr log."""

    def __init__(self, pebble, tmp, names, storage, challenge="http-01", serve=True,
                 extra=(), tag="driver"):
        _require(DRIVER, "acme_driver (build tests/acme)")
        self.out = os.path.join(str(tmp), tag + "-out")
        os.makedirs(self.out, exist_ok=True)
        self.storage = storage
        args = [DRIVER, "--directory", pebble.directory, "--ca-bundle", pebble.ca,
                "--storage", storage, "--out", self.out, "--challenge", challenge,
                "--email", "ops@example.org"]
        for n in names:
            args += ["--names", ",".join(n)]
        if serve and challenge in ("http-01", "both"):
            args += ["--http-port", str(pebble.http_port)]
        if serve and challenge in ("tls-alpn-01", "both"):
            args += ["--tls-port", str(pebble.tls_port)]
        args += list(extra)
        self.stdout_path = os.path.join(str(tmp), tag + ".stdout")
        self.stderr_path = os.path.join(str(tmp), tag + ".stderr")
        self._o = open(self.stdout_path, "w")
        self._e = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(args, stdout=self._o, stderr=self._e)

    def certs(self):
        with open(self.stdout_path) as f:
            return [line.split() for line in f if line.startswith("CERT ")]

    def log(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def wait_exit(self, timeout=60):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("driver still running after %d s:\n%s" % (timeout, self.log()))
        assert rc == 0, "driver exited %d:\n%s" % (rc, self.log())
        return rc

    def metric(self, name, labels=""):
        with open(os.path.join(self.out, "metrics.txt")) as f:
            for line in f:
                if line.startswith(name + labels + " "):
                    return float(line.split()[-1])
        raise AssertionError("metric %s%s missing" % (name, labels))

    def stop(self):
        _stop(self.proc)
        assert self.proc.returncode == 0, self.log()
        self._o.close()
        self._e.close()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    p = Pebble(tmp_path_factory.mktemp("pebble"))
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def drivers():
    started = []
    try:
        yield started
    finally:
        for d in started:
            _stop(d.proc)


def split_chain(path, tmp):
    with open(path) as f:
        pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", f.read(),
                          re.S)
    assert len(pems) >= 2, "chain has %d certificates" % len(pems)
    leaf, inter = os.path.join(str(tmp), "leaf.pem"), os.path.join(str(tmp), "inter.pem")
    with open(leaf, "w") as f:
        f.write(pems[0] + "\n")
    with open(inter, "w") as f:
        f.write("\n".join(pems[1:]) + "\n")
    return leaf, inter


def verify_chain(pebble, chain, names, tmp):
    leaf, inter = split_chain(chain, tmp)
    r = subprocess.run(["openssl", "verify", "-CAfile", pebble.root, "-untrusted", inter, leaf],
                       capture_output=True, text=True)
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr
    san = subprocess.run(["openssl", "x509", "-in", leaf, "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=True).stdout
    assert sorted(re.findall(r"DNS:([^,\s]+)", san)) == sorted(names)
    # and not against the CA that signed pebble's API certificate
    r = subprocess.run(["openssl", "verify", "-CAfile", pebble.ca, "-untrusted", inter, leaf],
                       capture_output=True, text=True)
    assert r.returncode != 0


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def cert_dir(storage, pebble, first):
    return os.path.join(storage, "acme", "127.0.0.1_%d" % pebble.port, first)


def test_http01_several_names(pebble, drivers, tmp_path):
    storage = str(tmp_path / "certs")
    before = pebble.orders()
    d = Driver(pebble, tmp_path, [["h1.example.test", "www.h1.example.test"],
                                  ["h2.example.test"]], storage,
               extra=["--exit-when-ready"])
    drivers.append(d)
    d.wait_exit()
    got = {c[1] for c in d.certs()}
    assert got == {"h1.example.test", "h2.example.test"}
    verify_chain(pebble, os.path.join(d.out, "h1.example.test.chain.pem"),
                 ["h1.example.test", "www.h1.example.test"], tmp_path)
    verify_chain(pebble, os.path.join(d.out, "h2.example.test.chain.pem"),
                 ["h2.example.test"], tmp_path)
    assert pebble.orders() == before + 2
    # pebble really fetched the tokens (three names, fresh account: no reuse)
    assert d.metric("portcullis_acme_challenges_served_total", '{type="http-01"}') >= 3
    assert d.metric("portcullis_acme_renewals_succeeded_total") == 2
    assert d.metric("portcullis_acme_renewals_failed_total") == 0

    # storage: folders 0700, keys 0600
    for p in (storage, os.path.join(storage, "acme"),
              os.path.dirname(cert_dir(storage, pebble, "h1.example.test")),
              cert_dir(storage, pebble, "h1.example.test")):
        assert mode(p) == 0o700, p
    ca_dir = os.path.dirname(cert_dir(storage, pebble, "h1.example.test"))
    assert mode(os.path.join(ca_dir, "account.key")) == 0o600
    for first in ("h1.example.test", "h2.example.test"):
        cd = cert_dir(storage, pebble, first)
        assert mode(os.path.join(cd, "key.pem")) == 0o600
        assert mode(os.path.join(cd, "state.json")) == 0o600
        assert not [n for n in os.listdir(cd) if ".tmp." in n or n == "lock"], os.listdir(cd)
        with open(os.path.join(cd, "state.json")) as f:
            assert json.load(f)["failures"] == 0


def test_tlsalpn01(pebble, drivers, tmp_path):
    storage = str(tmp_path / "certs")
    d = Driver(pebble, tmp_path, [["t1.example.test", "t2.example.test"]], storage,
               challenge="tls-alpn-01", extra=["--exit-when-ready"])
    drivers.append(d)
    d.wait_exit()
    verify_chain(pebble, os.path.join(d.out, "t1.example.test.chain.pem"),
                 ["t1.example.test", "t2.example.test"], tmp_path)
    assert d.metric("portcullis_acme_challenges_served_total", '{type="tls-alpn-01"}') >= 2
    assert d.metric("portcullis_acme_challenges_served_total", '{type="http-01"}') == 0
    assert "answering tls-alpn-01 for t1.example.test" in d.log()


def test_restart_reuses_storage(pebble, drivers, tmp_path):
    storage = str(tmp_path / "certs")
    names = [["r.example.test"]]
    d = Driver(pebble, tmp_path, names, storage, extra=["--exit-when-ready"], tag="first")
    drivers.append(d)
    d.wait_exit()
    first = d.certs()
    orders = pebble.orders()

    d2 = Driver(pebble, tmp_path, names, storage, extra=["--exit-when-ready"], tag="second")
    drivers.append(d2)
    d2.wait_exit()
    assert d2.certs() == first  # same certificate, delivered from storage
    assert "loaded certificate for r.example.test from storage" in d2.log()
    assert "ordering certificate" not in d2.log()
    assert "new order" not in d2.log()
    assert pebble.orders() == orders


def test_two_instances_order_once(pebble, drivers, tmp_path):
    storage = str(tmp_path / "certs")
    names = [["shared.example.test", "www.shared.example.test"]]
    orders = pebble.orders()
    # Only one of them can listen on pebble's httpPort; the other answers through the
    # challenge files both share, whichever of them takes the lock and orders.
    a = Driver(pebble, tmp_path, names, storage, extra=["--exit-when-ready"], tag="a")
    b = Driver(pebble, tmp_path, names, storage, serve=False, extra=["--exit-when-ready"],
               tag="b")
    drivers += [a, b]
    a.wait_exit(90)
    b.wait_exit(90)
    assert pebble.orders() == orders + 1
    assert a.certs() == b.certs()
    ordered = [x for x in (a, b) if "new order" in x.log()]
    assert len(ordered) == 1, "%s\n----\n%s" % (a.log(), b.log())


def test_nonce_reject_still_issues(tmp_path_factory, drivers, tmp_path):
    p = Pebble(tmp_path_factory.mktemp("pebble-nonce"), nonce_reject=50)
    try:
        d = Driver(p, tmp_path, [["n1.example.test", "n2.example.test"]],
                   str(tmp_path / "certs"), extra=["--exit-when-ready", "--debug"])
        drivers.append(d)
        d.wait_exit(120)
        verify_chain(p, os.path.join(d.out, "n1.example.test.chain.pem"),
                     ["n1.example.test", "n2.example.test"], tmp_path)
        assert "badNonce, retrying" in d.log()
        assert "Configured to reject 50% of good nonces" in p.text()
    finally:
        p.close()


def read_state(storage, pebble, first):
    with open(os.path.join(cert_dir(storage, pebble, first), "state.json")) as f:
        return json.load(f)


def test_ca_down_keeps_certificate_and_backs_off(tmp_path_factory, drivers, tmp_path):
    p = Pebble(tmp_path_factory.mktemp("pebble-down"))
    try:
        storage = str(tmp_path / "certs")
        d = Driver(p, tmp_path, [["down.example.test"]], storage, extra=["--exit-when-ready"],
                   tag="issue")
        drivers.append(d)
        d.wait_exit()
        cd = cert_dir(storage, p, "down.example.test")
        with open(os.path.join(cd, "cert.pem"), "rb") as f:
            old = f.read()
        p.stop()

        # forced renewal with the CA down: fails loudly, keeps the certificate
        d2 = Driver(p, tmp_path, [["down.example.test"]], storage,
                    extra=["--renew-now", "down.example.test", "--retry-base", "2",
                           "--request-timeout", "3"], tag="down")
        drivers.append(d2)
        wait_until(lambda: "attempt 1 failed" in d2.log(), timeout=30, what="a failed attempt")
        d2.stop()
        log = d2.log()
        assert d2.certs() and d2.certs()[0] == d.certs()[0]  # the old one is still served
        assert "keeping the current certificate" in log
        with open(os.path.join(cd, "cert.pem"), "rb") as f:
            assert f.read() == old
        st = read_state(storage, p, "down.example.test")
        assert st["failures"] == 1 and "127.0.0.1" in st["last_error"], st
        assert d2.metric("portcullis_acme_renewals_failed_total") == 1
        assert d2.metric("portcullis_acme_consecutive_failures", '{name="down.example.test"}') == 1

        # nothing stored and the CA down: retries back off 2 s, 4 s, 8 s
        grow = str(tmp_path / "grow")
        d5 = Driver(p, tmp_path, [["grow.example.test"]], grow,
                    extra=["--retry-base", "2", "--request-timeout", "3"], tag="grow")
        drivers.append(d5)
        wait_until(lambda: "attempt 4 failed" in d5.log(), timeout=60, what="four failures")
        d5.stop()
        log = d5.log()
        fails = re.findall(r"attempt (\d) failed: .*; next attempt at \S+", log)
        assert fails[:4] == ["1", "2", "3", "4"], log
        times = [int(t) for t in
                 re.findall(r"next attempt for grow.example.test at \S+ \((\d+)\)", log)]
        # the first schedule is "now"; then one per failure
        deltas = [b - a for a, b in zip(times[1:], times[2:])]
        assert len(deltas) >= 3 and deltas[1] > deltas[0] and deltas[2] > deltas[1], times
        st = read_state(grow, p, "grow.example.test")
        assert st["failures"] >= 4 and st["next_attempt"] >= times[4]

        # restart with nothing stored and the CA down: the persisted next attempt holds
        fresh = str(tmp_path / "fresh")
        d3 = Driver(p, tmp_path, [["fresh.example.test"]], fresh,
                    extra=["--retry-base", "600", "--request-timeout", "3"], tag="fresh1")
        drivers.append(d3)
        wait_until(lambda: "attempt 1 failed" in d3.log(), timeout=30, what="first failure")
        d3.stop()
        st = read_state(fresh, p, "fresh.example.test")
        assert st["failures"] == 1 and st["next_attempt"] >= time.time() + 500
        d4 = Driver(p, tmp_path, [["fresh.example.test"]], fresh,
                    extra=["--retry-base", "600", "--request-timeout", "3"], tag="fresh2")
        drivers.append(d4)
        wait_until(lambda: "next attempt for fresh.example.test" in d4.log(), what="schedule")
        d4.stop()
        log = d4.log()
        assert "1 failed attempts so far" in log
        assert "(%d)" % st["next_attempt"] in log
        assert "ordering certificate" not in log
    finally:
        p.close()


def test_renewal_without_restart(pebble, drivers, tmp_path):
    """10-minute certificates renew at about 5 minutes, in the running process."""
    storage = str(tmp_path / "certs")
    d = Driver(pebble, tmp_path, [["renew.example.test"]], storage)
    drivers.append(d)
    wait_until(lambda: len(d.certs()) >= 1, timeout=60, what="first certificate")
    first = d.certs()[0]
    wait_until(lambda: len(d.certs()) >= 2, timeout=VALIDITY * 0.5 + 90, interval=1,
               what="renewed certificate")
    second = d.certs()[1]
    assert second[1] == "renew.example.test"
    assert second[3] != first[3]
    assert int(second[2]) > int(first[2])
    # renewed before the old one expired, at about half its lifetime
    assert int(first[2]) - time.time() > 60
    d.stop()
    verify_chain(pebble, os.path.join(d.out, "renew.example.test.chain.pem"),
                 ["renew.example.test"], tmp_path)
    assert "renewal due" in d.log()
    assert d.metric("portcullis_acme_renewals_succeeded_total") == 2

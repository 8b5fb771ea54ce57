"""Client-certificate authentication (mTLS, docs/tls.md#client-certificates),
against curl, openssl s_client and Python's ssl module, with certificates
from a throwaway CA (testca.py).

One proxy, one TLS listener, sites with different policies:
  strict.test, strict2.test  CA "ca", required (one policy: the same file, the
                             same mode)
  opt.test                   CA "ca", optional
  open.test (default)        no client certificate
Covers: required/optional with a valid, absent, wrong-CA and expired
certificate; the identity headers upstream and a client's forged copies
dropped on every route; 421 when an HTTP/2 connection is reused for a host of
another policy (coalescing) and when an HTTP/1.1 Host names one; the config
errors.
"""

import datetime
import hashlib
import json
import os
import re
import subprocess

import pytest

from configs import config, route
from harness import need, run_binary
from testca import TestCA

need("curl")
need("openssl")
need("hyperframe", "python")
need("hpack", "python")

from h2client import H2Client  # noqa: E402

HOSTS = ["strict.test", "strict2.test", "opt.test", "open.test"]
IDENTITY = ("X-Client-Cert-Subject", "X-Client-Cert-SHA256", "X-Client-Cert-SAN")


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.dir = module_lab.workdir
    e.web = module_lab.upstream("web")
    e.ca = TestCA(e.dir, "ca")
    e.other_ca = TestCA(e.dir, "other-ca", cn="Someone Else's CA")
    e.alice = e.ca.issue("alice", "alice", emails=["alice@example.test"], sans=["alice.example"])
    e.mallory = e.other_ca.issue("mallory", "mallory")
    now = datetime.datetime.now(datetime.timezone.utc)
    e.expired = e.ca.issue("expired", "old", not_before=now - datetime.timedelta(days=10),
                           not_after=now - datetime.timedelta(days=1))
    required = {"ca": e.ca.cert_path}
    cfg = config(
        {"web": e.web},
        [{"name": "strict", "hosts": ["strict.test"], "client_certificates": required,
          "routes": [route("strict", "web")]},
         {"name": "strict2", "hosts": ["strict2.test"], "client_certificates": required,
          "routes": [route("strict2", "web")]},
         {"name": "opt", "hosts": ["opt.test"],
          "client_certificates": {"ca": e.ca.cert_path, "required": False},
          "routes": [route("opt", "web")]},
         {"name": "open", "hosts": ["open.test", "localhost"], "default": True,
          "routes": [route("open", "web")]}],
        listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True}],
        tls={"certs_dir": os.path.join(e.dir, "certs"), "local_ca": {"names": HOSTS},
             "default_name": "open.test"},
    )
    e.proxy = module_lab.proxy(cfg, name="mtls")
    e.port = e.proxy.ports["https"]
    e.server_ca = os.path.join(e.dir, "certs", "local-ca", "ca.crt")
    return e


@pytest.fixture(autouse=True)
def fresh(env, alive):
    env.web.reset()
    yield


def curl(env, host, cert=None, headers=(), http2=False, path="/"):
    args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10",
            "--cacert", env.server_ca, "--resolve", "%s:%d:127.0.0.1" % (host, env.port),
            "--http2" if http2 else "--http1.1"]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    for h in headers:
        args += ["-H", h]
    args.append("https://%s:%d%s" % (host, env.port, path))
    return subprocess.run(args, capture_output=True, text=True, timeout=20)


def status_of(run):
    assert run.returncode == 0, "curl failed (%d): %s" % (run.returncode, run.stderr)
    return int(run.stdout.rsplit("\n", 1)[1])


def fingerprint(cert):
    from cryptography.hazmat.primitives.serialization import Encoding
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def identity_seen(env):
    req = env.web.wait_for_count(1)[0]
    return {name: req.header_all(name) for name in IDENTITY}


# ------------------------------------------------------------------ required

def test_required_with_valid_certificate_passes_identity(env):
    assert status_of(curl(env, "strict.test", env.alice[:2])) == 200
    seen = identity_seen(env)
    assert seen["X-Client-Cert-Subject"] == ["CN=alice,O=Portcullis Tests"]
    assert seen["X-Client-Cert-SHA256"] == [fingerprint(env.alice[2])]
    assert seen["X-Client-Cert-SAN"] == ["DNS:alice.example, email:alice@example.test"]


@pytest.mark.parametrize("which", ["absent", "wrong CA", "expired"])
def test_required_refuses_the_handshake(env, which):
    cert = {"absent": None, "wrong CA": env.mallory[:2], "expired": env.expired[:2]}[which]
    run = curl(env, "strict.test", cert)
    assert run.returncode != 0, "curl got an answer: %s" % run.stdout
    assert env.web.snapshot() == []


def test_required_tls12_without_certificate_alert(env):
    """openssl s_client over TLS 1.2: the server asks for a certificate and
    ends the handshake with an alert when none comes."""
    run = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % env.port,
                          "-servername", "strict.test", "-tls1_2", "-brief"],
                         input="", capture_output=True, text=True, timeout=20)
    assert run.returncode != 0
    assert "alert" in run.stderr.lower(), run.stderr


def test_s_client_sees_the_ca_names_and_gets_through(env):
    run = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % env.port,
                          "-servername", "strict.test", "-cert", env.alice[0], "-key",
                          env.alice[1], "-ign_eof"],
                         input="GET / HTTP/1.1\r\nHost: strict.test\r\nConnection: close\r\n\r\n",
                         capture_output=True, text=True, timeout=20)
    assert "Acceptable client certificate CA names" in run.stdout, run.stdout
    assert "CN = Portcullis Test CA" in run.stdout
    assert "HTTP/1.1 200" in run.stdout, run.stdout + run.stderr


# ------------------------------------------------------------------ optional

def test_optional_without_certificate_passes_without_identity(env):
    assert status_of(curl(env, "opt.test")) == 200
    assert identity_seen(env) == {name: [] for name in IDENTITY}


def test_optional_with_valid_certificate_passes_identity(env):
    assert status_of(curl(env, "opt.test", env.alice[:2])) == 200
    assert identity_seen(env)["X-Client-Cert-SHA256"] == [fingerprint(env.alice[2])]


@pytest.mark.parametrize("which", ["wrong CA", "expired"])
def test_optional_refuses_a_certificate_that_does_not_verify(env, which):
    cert = {"wrong CA": env.mallory[:2], "expired": env.expired[:2]}[which]
    assert curl(env, "opt.test", cert).returncode != 0
    assert env.web.snapshot() == []


# ------------------------------------------------------------------ spoofing

FORGED = ["X-Client-Cert-Subject: CN=admin", "X-Client-Cert-SHA256: 00",
          "X-Client-Cert-SAN: email:admin@example.test", "X-Client-Cert-Subject: CN=root"]


@pytest.mark.parametrize("host,cert", [("open.test", None), ("opt.test", None),
                                       ("strict.test", "alice")])
def test_forged_identity_headers_are_dropped(env, host, cert):
    assert status_of(curl(env, host, env.alice[:2] if cert else None, FORGED)) == 200
    seen = identity_seen(env)
    if cert:
        assert seen["X-Client-Cert-Subject"] == ["CN=alice,O=Portcullis Tests"]
        assert seen["X-Client-Cert-SHA256"] == [fingerprint(env.alice[2])]
    else:
        assert seen == {name: [] for name in IDENTITY}


def test_forged_identity_headers_dropped_over_http2(env):
    with H2Client(env.port, tls=True, server_name="open.test") as c:
        s = c.request("GET", "/", "open.test", [("x-client-cert-subject", "CN=admin")])
        assert s.status == 200, s
    assert identity_seen(env)["X-Client-Cert-Subject"] == []


# ------------------------------------------------------------------ 421

def test_h2_coalesced_into_a_stricter_site_is_misdirected(env):
    """A connection opened for open.test (no certificate asked) must not carry
    requests for strict.test, although the certificate covers both."""
    with H2Client(env.port, tls=True, server_name="open.test") as c:
        assert c.request("GET", "/", "open.test").status == 200
        assert c.request("GET", "/", "strict.test").status == 421
        assert c.request("GET", "/", "opt.test").status == 421
    assert len(env.web.wait_for_count(1)) == 1


def test_h2_verified_connection_not_reused_for_another_policy(env):
    with H2Client(env.port, tls=True, server_name="strict.test",
                  client_cert=env.alice[:2]) as c:
        assert c.request("GET", "/", "strict.test").status == 200
        # strict2.test has the same policy (same CA file, required): fine
        assert c.request("GET", "/", "strict2.test").status == 200
        assert c.request("GET", "/", "open.test").status == 421
        assert c.request("GET", "/", "opt.test").status == 421
    reqs = env.web.wait_for_count(2)
    assert [r.header_all("X-Client-Cert-Subject") for r in reqs] == \
        [["CN=alice,O=Portcullis Tests"]] * 2


def test_h1_host_of_another_policy_is_misdirected(env):
    assert status_of(curl(env, "open.test", headers=["Host: strict.test"])) == 421
    assert status_of(curl(env, "strict.test", env.alice[:2], ["Host: open.test"])) == 421
    assert env.web.snapshot() == []


def test_curl_http2_reuses_only_within_a_policy(env):
    assert status_of(curl(env, "strict.test", env.alice[:2], http2=True)) == 200
    assert status_of(curl(env, "open.test", http2=True)) == 200


# ------------------------------------------------------------------ resumption

@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_session_from_another_policy_does_not_resume(env, tmp_path, version):
    """A session made under open.test (no certificate asked) resumes there, but
    offered for strict.test it is not taken: a full handshake, which demands a
    certificate."""
    sess = str(tmp_path / "sess.pem")

    def s_client(name, *extra, data=""):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % env.port,
                            "-servername", name, version] + list(extra),
                           input=data, capture_output=True, text=True, timeout=20)
        return r.returncode, r.stdout + r.stderr

    rc, out = s_client("open.test", "-sess_out", sess, "-ign_eof",
                       data="GET / HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n")
    assert rc == 0 and "HTTP/1.1 200" in out, out
    rc, out = s_client("open.test", "-sess_in", sess)
    assert re.search(r"^Reused, TLSv1\.[23]", out, re.M), out
    rc, out = s_client("strict.test", "-sess_in", sess, "-ign_eof",
                       data="GET / HTTP/1.1\r\nHost: strict.test\r\nConnection: close\r\n\r\n")
    assert not re.search(r"^Reused", out, re.M), out
    assert "HTTP/1.1 200" not in out, out


# ------------------------------------------------------------------ config

def check(env, tmp_path, mutate):
    cfg = json.load(open(env.proxy.config_path))
    mutate(cfg)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    return run_binary(["-t", "-c", str(path)])


def test_config_errors_name_the_json_path(env, tmp_path):
    def plain_listener(cfg):
        cfg["listeners"].append({"name": "plain", "address": "127.0.0.1:0",
                                 "client_certificates": {"ca": env.ca.cert_path}})
    r = check(env, tmp_path, plain_listener)
    assert r.returncode != 0
    assert "listeners[1].client_certificates: only on a listener with \"tls\": true" in r.stderr
    # the sites without "listeners" are served by the new plain listener too
    assert "sites[0].client_certificates: the site is also served in plain HTTP" in r.stderr

    def missing_file(cfg):
        cfg["sites"][2]["client_certificates"]["ca"] = str(tmp_path / "nope.pem")
    r = check(env, tmp_path, missing_file)
    assert r.returncode != 0
    assert "sites[2].client_certificates.ca: cannot read" in r.stderr, r.stderr

    def not_pem(cfg):
        (tmp_path / "empty.pem").write_text("nothing\n")
        cfg["sites"][0]["client_certificates"] = {"ca": str(tmp_path / "empty.pem"),
                                                  "required": "maybe"}
    r = check(env, tmp_path, not_pem)
    assert "sites[0].client_certificates.ca: " in r.stderr and "holds no PEM certificate" in r.stderr
    assert "sites[0].client_certificates.required" in r.stderr

    def no_ca(cfg):
        cfg["listeners"][0]["client_certificates"] = {"required": True}
    r = check(env, tmp_path, no_ca)
    assert "listeners[0].client_certificates: missing \"ca\"" in r.stderr

    def redirecting(cfg):
        cfg["listeners"].append({"name": "plain", "address": "127.0.0.1:0",
                                 "redirect_https": True})
    r = check(env, tmp_path, redirecting)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ reload

def test_sighup_applies_new_policies_to_new_connections(env):
    import signal

    original = json.load(open(env.proxy.config_path))
    relaxed = json.loads(json.dumps(original))
    relaxed["sites"][0]["client_certificates"]["required"] = False
    try:
        mark = len(env.proxy.stderr())
        env.proxy.write_config(relaxed)
        env.proxy.signal(signal.SIGHUP)
        env.proxy.wait_stderr(r"configuration reloaded", start=mark)
        assert status_of(curl(env, "strict.test")) == 200
        assert identity_seen(env) == {name: [] for name in IDENTITY}
    finally:
        mark = len(env.proxy.stderr())
        env.proxy.write_config(original)
        env.proxy.signal(signal.SIGHUP)
        env.proxy.wait_stderr(r"configuration reloaded", start=mark)
    assert curl(env, "strict.test").returncode != 0

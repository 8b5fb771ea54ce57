"""HTTPS in the real portcullis binary: listeners with "tls": true, the "tls"
block (local CA, certificate files), "redirect_https", "hsts", -t checks.

Clients are curl (--cacert <local CA> --capath <empty folder>, so that only
the CA under test can vouch), openssl s_client and Python's ssl module.
Upstreams are the recording servers of harness.py.  Every process is
stopped by PID (Lab), also when a test fails.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from configs import config, route  # noqa: E402
from harness import BINARY, RawClient, run_binary, wait_until  # noqa: E402

APP = "app.test"
FILES = "files.test"


def make_cert(d, stem, cn, san, days=30, kind="ec"):
    """A self-signed certificate and key in <d>: (cert path, key path)."""
    cert, key = os.path.join(str(d), stem + ".crt"), os.path.join(str(d), stem + ".key")
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
              else ["-newkey", "rsa:2048"])
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", str(days), "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san, "-keyout", key, "-out", cert] + newkey,
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def make_expired_cert(d, stem, cn, san):
    """A certificate that expired yesterday (python3-cryptography)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
            .sign(key, hashes.SHA256()))
    cp, kp = os.path.join(str(d), stem + ".crt"), os.path.join(str(d), stem + ".key")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(kp, 0o600)
    return cp, kp


def s_client(port, *args, data=b"", timeout=10):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input=data, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def subject_cn(text):
    m = re.search(r"^subject=.*?CN ?= ?([^,\n/]+)", text, re.M)
    return m.group(1).strip() if m else None


def curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args), capture_output=True,
                       timeout=20)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def tls_socket(port, server_name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=server_name)


def http_get(sock, path, host):
    """One keep-alive request on <sock>: (status line, headers text, body)."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the response head"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    lines = head.decode().split("\r\n")
    return lines[0], "\n".join(lines[1:]), body.decode("utf-8", "replace")


def peer_der(port, server_name):
    s = tls_socket(port, server_name)
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def pem_der(path):
    with open(path) as f:
        text = f.read()
    first = text.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return ssl.PEM_cert_to_DER_cert(first[first.index("-----BEGIN CERTIFICATE-----"):])


@pytest.fixture(scope="module")
def env(module_lab, tmp_path_factory):
    """One proxy: plain listener with redirect_https, a plain listener
    without it, a TLS listener; local CA for app.test plus a files
    certificate for files.test (watched every 0.2 s)."""
    d = tmp_path_factory.mktemp("tlsproxy")
    e = type("Env", (), {})()
    e.dir = str(d)
    e.empty = os.path.join(e.dir, "empty-capath")
    os.mkdir(e.empty)
    e.files_cert, e.files_key = make_cert(d, "files", "files-cert-1", "DNS:" + FILES)
    e.up = module_lab.upstream("web")
    cfg = config({"web": e.up},
                 [{"name": "app", "hosts": [APP, FILES], "default": True,
                   "hsts": {"max_age": 600, "include_subdomains": True},
                   "routes": [route("web", "web")]}],
                 listeners=[{"name": "http", "address": "127.0.0.1:0", "redirect_https": True},
                            {"name": "plain", "address": "127.0.0.1:0"},
                            {"name": "https", "address": "127.0.0.1:0", "tls": True}],
                 tls={"certs_dir": os.path.join(e.dir, "certs"),
                      "local_ca": {"names": [APP]},
                      "certificates": [{"cert": e.files_cert, "key": e.files_key,
                                        "names": [FILES]}],
                      "default_name": APP,
                      "watch_interval": 0.2})
    e.proxy = module_lab.proxy(cfg, name="tlsproxy")
    e.https = e.proxy.ports["https"]
    e.http = e.proxy.ports["http"]
    e.plain = e.proxy.ports["plain"]
    e.ca = os.path.join(e.dir, "certs", "local-ca", "ca.crt")
    return e


@pytest.fixture(autouse=True)
def _alive(module_lab):
    yield
    module_lab.assert_alive()


def test_local_ca_https_with_curl(env):
    assert os.path.exists(env.ca)
    assert "local CA certificate: %s" % env.ca in env.proxy.stderr()
    for host in (APP, "localhost"):
        rc, out, err = curl("-i", "--cacert", env.ca, "--capath", env.empty, "--resolve",
                            "%s:%d:127.0.0.1" % (host, env.https),
                            "https://%s:%d/hello?x=1" % (host, env.https))
        assert rc == 0, err
        assert out.startswith("HTTP/2 200"), out
    rc, out, err = curl("--cacert", env.ca, "--capath", env.empty,
                        "https://127.0.0.1:%d/ip" % env.https)
    assert rc == 0, err
    # Without the local CA curl cannot verify: exit code 60.
    rc, out, err = curl("--capath", env.empty, "--cacert", env.files_cert, "--resolve",
                        "%s:%d:127.0.0.1" % (APP, env.https), "https://%s:%d/" % (APP, env.https))
    assert rc == 60, (rc, err)


def test_forwarded_proto_https_upstream(env):
    env.up.reset()
    rc, out, err = curl("--cacert", env.ca, "--capath", env.empty, "--resolve",
                        "%s:%d:127.0.0.1" % (APP, env.https),
                        "https://%s:%d/proto" % (APP, env.https))
    assert rc == 0, err
    env.up.wait_for_count(1)
    req = env.up.snapshot()[-1]
    assert req.header("X-Forwarded-Proto") == "https"
    assert req.header("X-Forwarded-Port") == str(env.https)
    with RawClient(env.plain) as c:
        resp = c.request("GET", "/proto-plain", host=APP)
        assert resp.status == 200
    env.up.wait_for_count(2)
    assert env.up.snapshot()[-1].header("X-Forwarded-Proto") == "http"


def test_protocol_versions(env):
    for flag in ("-tls1", "-tls1_1"):
        rc, out = s_client(env.https, flag, "-cipher", "DEFAULT@SECLEVEL=0", "-servername", APP)
        assert rc != 0, out
        assert "alert protocol version" in out, out
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        rc, out = s_client(env.https, flag, "-servername", APP, "-CAfile", env.ca,
                           "-verify_return_error", "-verify_hostname", APP)
        assert rc == 0, out
        assert re.search(r"^New, %s, Cipher is " % re.escape(name), out, re.M), out
        assert "Verify return code: 0 (ok)" in out, out


def test_sni_and_alpn(env):
    rc, out = s_client(env.https, "-servername", FILES)
    assert rc == 0, out
    assert subject_cn(out) == "files-cert-1", out
    rc, out = s_client(env.https, "-servername", APP, "-alpn", "h2,http/1.1")
    assert rc == 0, out
    # The local CA's leaf (its first name is localhost; it covers app.test).
    assert subject_cn(out) == "localhost", out
    assert re.search(r"^issuer=.*Portcullis local CA", out, re.M), out
    assert "ALPN protocol: h2" in out, out  # ours first: HTTP/2 when offered
    rc, out = s_client(env.https, "-servername", APP, "-alpn", "http/1.1")
    assert rc == 0 and "ALPN protocol: http/1.1" in out, out
    # No SNI, or a name nobody has: default_name's certificate.
    rc, out = s_client(env.https, "-noservername")
    assert rc == 0 and subject_cn(out) == "localhost", out
    rc, out = s_client(env.https, "-servername", "nobody.test")
    assert rc == 0 and subject_cn(out) == "localhost", out
    # A protocol we do not speak alone: no ALPN agreed, the client decides.
    rc, out = s_client(env.https, "-servername", APP, "-alpn", "spdy/3")
    assert rc == 0 and "No ALPN negotiated" in out, out
    rc, out, err = curl("-i", "--cacert", env.ca, "--capath", env.empty, "--resolve",
                        "%s:%d:127.0.0.1" % (APP, env.https), "-v",
                        "https://%s:%d/alpn" % (APP, env.https))
    assert rc == 0, err
    assert "ALPN: server accepted h2" in err or "ALPN, server accepted to use h2" in err, err
    assert out.startswith("HTTP/2 200"), out


def plain_http_count(env):
    with RawClient(env.proxy.admin_port) as c:
        text = c.request("GET", "/metrics").text()
    m = re.search(r"^portcullis_tls_plain_http_total (\d+)$", text, re.M)
    assert m, text
    return int(m.group(1))


def test_plain_http_to_tls_port(env):
    before = plain_http_count(env)
    rc, out, err = curl("-i", "http://127.0.0.1:%d/" % env.https)
    assert out.startswith("HTTP/1.1 400"), (rc, out, err)
    assert "text/plain" in out
    assert "this port speaks HTTPS" in out
    assert plain_http_count(env) == before + 1
    # The port still serves TLS afterwards.
    rc, out, err = curl("--cacert", env.ca, "--capath", env.empty,
                        "https://127.0.0.1:%d/after" % env.https)
    assert rc == 0, err


def test_hsts_only_over_tls(env):
    s = tls_socket(env.https, APP)
    try:
        status, headers, _ = http_get(s, "/hsts", APP)
    finally:
        s.close()
    assert status.startswith("HTTP/1.1 200"), status
    assert re.search(r"(?im)^strict-transport-security: max-age=600; includeSubDomains$",
                     headers), headers
    with RawClient(env.plain) as c:
        resp = c.request("GET", "/hsts", host=APP)
        assert resp.status == 200
        assert not resp.has_header("Strict-Transport-Security")
    with RawClient(env.http) as c:
        resp = c.request("GET", "/hsts", host=APP)
        assert resp.status == 308
        assert not resp.has_header("Strict-Transport-Security")


def test_redirect_https(env):
    with RawClient(env.http) as c:
        resp = c.request("GET", "/some/path?q=1&r=%20", host=APP + ":8080")
        assert resp.status == 308
        assert resp.header("Location") == "https://%s:%d/some/path?q=1&r=%%20" % (APP, env.https)
        # The ACME path is not redirected (no "acme" here: routed as usual).
        env.up.reset()
        resp = c.request("GET", "/.well-known/acme-challenge/tok", host=APP)
        assert resp.status == 200
    env.up.wait_for_count(1)
    assert env.up.snapshot()[-1].path == "/.well-known/acme-challenge/tok"
    # A request with a body gets the redirect too (the connection then
    # closes: its body is never read).
    with RawClient(env.http) as c:
        resp = c.request("POST", "/form", host=APP, body=b"a=1")
        assert resp.status == 308
        assert resp.header("Location") == "https://%s:%d/form" % (APP, env.https)
        assert resp.header("Connection") == "close"
    # Following the redirect works.
    rc, out, err = curl("-L", "--cacert", env.ca, "--capath", env.empty, "--resolve",
                        "%s:%d:127.0.0.1" % (APP, env.http), "--resolve",
                        "%s:%d:127.0.0.1" % (APP, env.https),
                        "-o", "/dev/null", "-w", "%{http_code} %{url_effective}",
                        "http://%s:%d/follow" % (APP, env.http))
    assert rc == 0, err
    assert out == "200 https://%s:%d/follow" % (APP, env.https), out


def test_files_replaced_on_disk(env):
    old_der = pem_der(env.files_cert)
    assert peer_der(env.https, FILES) == old_der
    keep = tls_socket(env.https, FILES)
    try:
        status, _, _ = http_get(keep, "/before", FILES)
        assert status.startswith("HTTP/1.1 200")
        # Replace the pair the way a secret update does: new files renamed in.
        stage = os.path.join(env.dir, "stage")
        os.makedirs(stage, exist_ok=True)
        new_cert, new_key = make_cert(stage, "files", "files-cert-2", "DNS:" + FILES)
        os.replace(new_key, env.files_key)
        os.replace(new_cert, env.files_cert)
        new_der = pem_der(env.files_cert)
        assert new_der != old_der
        wait_until(lambda: peer_der(env.https, FILES) == new_der, timeout=15,
                   what="new handshakes to get the replaced certificate")
        env.proxy.wait_stderr(r"tls: reloaded %s" % re.escape(env.files_cert))
        # The connection made on the old certificate still works.
        status, _, _ = http_get(keep, "/after", FILES)
        assert status.startswith("HTTP/1.1 200")
        assert keep.getpeercert(binary_form=True) == old_der
    finally:
        keep.close()
    # A broken replacement (key of another certificate) is refused; the
    # last good certificate stays.
    _, other_key = make_cert(os.path.join(env.dir, "stage"), "other", "other", "DNS:other.test")
    mark = len(env.proxy.stderr())
    shutil.copyfile(other_key, env.files_key + ".tmp")
    os.replace(env.files_key + ".tmp", env.files_key)
    env.proxy.wait_stderr(r"does not match|still serving", start=mark)
    assert peer_der(env.https, FILES) == new_der


def test_sighup_with_changed_tls_block_warns(env):
    import json
    import signal

    with open(env.proxy.config_path) as f:
        cfg = json.load(f)
    cfg["tls"]["default_name"] = FILES
    mark = len(env.proxy.stderr())
    env.proxy.write_config(cfg)
    env.proxy.signal(signal.SIGHUP)
    env.proxy.wait_stderr(r'warn the "tls" block or a listener\'s "tls", "http2", "h2c" or "alpn" changed: it takes '
                          r"effect at the next restart", start=mark)
    env.proxy.wait_stderr(r"configuration reloaded", start=mark)
    # Still the certificate chosen at start for clients without SNI.
    rc, out = s_client(env.https, "-noservername")
    assert rc == 0 and subject_cn(out) == "localhost", out


def test_metrics(env):
    with RawClient(env.proxy.admin_port) as c:
        resp = c.request("GET", "/metrics")
        text = resp.text()
    assert re.search(r'portcullis_certificate_expiry_seconds\{name="localhost",key="ecdsa",'
                     r'source="local_ca"\} \d+', text), text
    assert re.search(r'portcullis_certificate_expiry_seconds\{name="%s",key="ecdsa",'
                     r'source="file"\} \d+' % re.escape(FILES), text), text


# ---- configuration checks (-t) -----------------------------------------------


def check_config(tmp_path, cfg):
    import json

    path = os.path.join(str(tmp_path), "c.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return run_binary(["-t", "-c", path])


def tls_config(tmp_path, **tls):
    return config({"web": "127.0.0.1:1"},
                  [{"name": "s", "hosts": [FILES], "routes": [route("web", "web")]}],
                  listeners=[{"address": "127.0.0.1:0"},
                             {"address": "127.0.0.1:0", "tls": True}],
                  tls=tls)


def test_check_missing_key(tmp_path):
    cert, key = make_cert(tmp_path, "a", "a", "DNS:" + FILES)
    missing = os.path.join(str(tmp_path), "nope.key")
    res = check_config(tmp_path, tls_config(tmp_path, certificates=[{"cert": cert, "key": missing}]))
    assert res.returncode == 1, res
    assert re.search(r"^tls\.certificates\[0\]: .*%s: No such file or directory$" % (
        re.escape(missing)), res.stderr, re.M), res.stderr


def test_check_unreadable_key(tmp_path):
    cert, key = make_cert(tmp_path, "a", "a", "DNS:" + FILES)
    with open(key, "w") as f:
        f.write("not a key\n")
    res = check_config(tmp_path, tls_config(tmp_path, certificates=[{"cert": cert, "key": key}]))
    assert res.returncode == 1
    assert re.search(r"^tls\.certificates\[0\]: %s: no PEM private key" % re.escape(key),
                     res.stderr, re.M), res.stderr


def test_check_key_mismatch(tmp_path):
    cert, _ = make_cert(tmp_path, "a", "a", "DNS:" + FILES)
    _, key2 = make_cert(tmp_path, "b", "b", "DNS:" + FILES)
    res = check_config(tmp_path, tls_config(tmp_path, certificates=[{"cert": cert, "key": key2}]))
    assert res.returncode == 1
    assert re.search(r"^tls\.certificates\[0\]: %s: the private key does not match the "
                     r"certificate in %s" % (re.escape(key2), re.escape(cert)),
                     res.stderr, re.M), res.stderr


def test_check_expired(tmp_path):
    cert, key = make_expired_cert(tmp_path, "old", "old", FILES)
    res = check_config(tmp_path, tls_config(tmp_path, certificates=[{"cert": cert, "key": key}]))
    assert res.returncode == 1
    assert re.search(r"^tls\.certificates\[0\]: %s: the certificate expired on " % re.escape(cert),
                     res.stderr, re.M), res.stderr
    # Start-up refuses it the same way.
    import json
    path = os.path.join(str(tmp_path), "run.json")
    with open(path, "w") as f:
        json.dump(tls_config(tmp_path, certificates=[{"cert": cert, "key": key}]), f)
    p = subprocess.run([BINARY, "-c", path], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert "tls.certificates[0]: %s: the certificate expired on " % cert in p.stderr, p.stderr
    assert "not starting" in p.stderr


def test_check_good_files_and_names(tmp_path):
    cert, key = make_cert(tmp_path, "a", "a", "DNS:" + FILES)
    res = check_config(tmp_path, tls_config(tmp_path, certificates=[
        {"cert": cert, "key": key, "names": [FILES]}]))
    assert res.returncode == 0, res.stderr
    res = check_config(tmp_path, tls_config(tmp_path, certificates=[
        {"cert": cert, "key": key, "names": ["other.test"]}]))
    assert res.returncode == 1
    assert "does not cover other.test" in res.stderr, res.stderr


def test_config_errors(tmp_path):
    base = config({"web": "127.0.0.1:1"}, [{"name": "s", "hosts": [FILES],
                                             "routes": [route("web", "web")]}])
    base["listeners"] = [{"address": "127.0.0.1:0", "redirect_https": True},
                         {"address": "127.0.0.1:0", "tls": True}]
    res = check_config(tmp_path, base)
    assert res.returncode == 1
    assert re.search(r'^listeners\[1\]\.tls: no "tls" block', res.stderr, re.M), res.stderr
    base["tls"] = {"local_ca": True, "mode": "files", "acme": {"directory": "http://x/dir"}}
    base["listeners"][1]["redirect_https"] = True
    base["sites"][0]["hsts"] = {"max_age": 10, "preload": True}
    res = check_config(tmp_path, base)
    assert res.returncode == 1
    err = res.stderr
    assert re.search(r'^tls\.certificates: "mode": "files" needs at least one', err, re.M), err
    assert re.search(r"^listeners\[1\]\.redirect_https: only for plain-HTTP listeners", err,
                     re.M), err
    assert re.search(r"^sites\[0\]\.hsts\.preload: ", err, re.M), err
    base["tls"] = {"acme": {"directory": "http://x/dir", "orders": [{"names": ["*.x.test"]}],
                            "challenges": ["dns-01"]}}
    del base["sites"][0]["hsts"]
    del base["listeners"][1]["redirect_https"]
    res = check_config(tmp_path, base)
    err = res.stderr
    assert re.search(r"^tls\.acme\.directory: \"http://x/dir\" is not an https:// URL", err,
                     re.M), err
    assert re.search(r"^tls\.acme\.orders\[0\]\.names\[0\]: \"\*\.x\.test\": wildcard", err,
                     re.M), err
    assert re.search(r'^tls\.acme\.challenges\[0\]: "dns-01" is not one of', err, re.M), err


def test_mode_off_leaves_tls_listeners_out(lab):
    up = lab.upstream("web")
    cfg = config({"web": up}, [{"name": "s", "hosts": [APP], "default": True,
                                "routes": [route("web", "web")]}],
                 listeners=[{"name": "http", "address": "127.0.0.1:0", "redirect_https": True},
                            {"name": "https", "address": "127.0.0.1:0", "tls": True}],
                 tls={"mode": "off", "certificates": [{"cert": "${NOT_SET}"}]})
    p = lab.proxy(cfg)
    assert "https" not in p.ports
    assert '"mode" is "off": 1 listener with "tls": true not opened' in p.stderr()
    with RawClient(p.ports["http"]) as c:
        resp = c.request("GET", "/x", host=APP)
        assert resp.status == 200


# ---- the PostHog example over HTTPS -------------------------------------------


def example_env(lab, tmp_path, **extra):
    from configs import POSTHOG_UPSTREAM_ENV, posthog_env

    ups = {name: lab.upstream(name) for name in POSTHOG_UPSTREAM_ENV}
    env = posthog_env(ups)
    env.update({"PORTCULLIS_HTTPS": "127.0.0.1:0", "CERTS_DIR": os.path.join(str(tmp_path),
                                                                             "certs")})
    env.update(extra)
    return ups, env


def test_example_local_mode(lab, tmp_path):
    from configs import EXAMPLE_POSTHOG, POSTHOG_DOMAIN

    ups, env = example_env(lab, tmp_path, TLS_MODE="local")
    p = lab.proxy(EXAMPLE_POSTHOG, env=env, name="example-local")
    ca = os.path.join(str(tmp_path), "certs", "local-ca", "ca.crt")
    empty = os.path.join(str(tmp_path), "empty")
    os.mkdir(empty)
    https = p.ports["https"]
    rc, out, err = curl("-i", "--cacert", ca, "--capath", empty, "--resolve",
                        "%s:%d:127.0.0.1" % (POSTHOG_DOMAIN, https), "-d", "{}",
                        "https://%s:%d/e/?v=1" % (POSTHOG_DOMAIN, https))
    assert rc == 0 and out.startswith("HTTP/2 200"), (out, err)
    ups["capture"].wait_for_count(1)
    assert ups["capture"].snapshot()[-1].header("X-Forwarded-Proto") == "https"
    with RawClient(p.ports["http"]) as c:
        resp = c.request("GET", "/e/?v=1", host=POSTHOG_DOMAIN)
        assert resp.status == 308
        assert resp.header("Location") == "https://%s:%d/e/?v=1" % (POSTHOG_DOMAIN, https)


def test_example_files_mode(lab, tmp_path):
    from configs import APP_DOMAIN, EXAMPLE_POSTHOG

    cert, key = make_cert(tmp_path, "ex", "example-files", "DNS:" + APP_DOMAIN)
    ups, env = example_env(lab, tmp_path, TLS_MODE="files", TLS_CERT=cert, TLS_KEY=key)
    p = lab.proxy(EXAMPLE_POSTHOG, env=env, name="example-files")
    rc, out = s_client(p.ports["https"], "-servername", APP_DOMAIN)
    assert rc == 0 and subject_cn(out) == "example-files", out
    # files mode without TLS_CERT: -t names the variable.
    env.pop("TLS_CERT")
    res = run_binary(["-t", "-c", EXAMPLE_POSTHOG], env=dict(env, TLS_CERT=None))
    assert res.returncode == 1
    assert re.search(r"^tls\.certificates\[0\]\.cert: .*TLS_CERT", res.stderr, re.M), res.stderr

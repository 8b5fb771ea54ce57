"""libcurl is loaded (dlopen) only by a configuration that makes outbound HTTPS
requests (ACME, OCSP stapling, an IdP metadata URL): the binary does not link
it, and Debian's libcurl4 brings some 25 libraries (GnuTLS, Kerberos, LDAP...)
a plain proxy would carry for nothing.  What is mapped is read from
/proc/PID/maps of the real binary.

- A plain proxy: no libcurl (nor GnuTLS) mapped while it serves.
- ACME against pebble: libcurl is mapped and the certificate is obtained.
- A reload to a configuration with an IdP metadata URL: mapped then, on the
  main thread, and the metadata is fetched.
- `-t` with libcurl unloadable (a private mount namespace hides the real
  file behind /dev/null; root only): an error naming the setting's JSON path
  and the Debian package libcurl4.
"""

import copy
import json
import os
import re
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from configs import config, route  # noqa: E402
from harness import BINARY, request  # noqa: E402
from ports import free_port  # noqa: E402
from saml_common import saml_config, samltools  # noqa: E402
from test_acme_proxy import acme_config, pebble, site  # noqa: E402,F401
from test_outbound_proxy import MetadataServer  # noqa: E402


def mapped_libraries(pid):
    """File names of the shared objects mapped into process <pid>."""
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(line.split()[-1]) for line in f
                if len(line.split()) >= 6 and ".so" in line.split()[-1]}


def has_libcurl(pid):
    return any(name.startswith("libcurl") for name in mapped_libraries(pid))


def test_plain_config_never_maps_libcurl(lab):
    up = lab.upstream("web")
    p = lab.proxy(config({"web": up}, [{"name": "s", "routes": [route("all", "web")]}]),
                  name="plain")
    assert request(p.ports["http"], "GET", "/").status == 200
    libs = mapped_libraries(p.pid)
    assert not any(n.startswith(("libcurl", "libgnutls", "libldap", "libssh2")) for n in libs), \
        sorted(libs)


def test_acme_maps_libcurl(lab, pebble, tmp_path):  # noqa: F811
    cfg = acme_config(pebble, tmp_path, [site("one", ["a.test"])],
                      http_port=pebble.http_port, challenges=["http-01"])
    p = lab.proxy(cfg, name="acme-libcurl")
    p.wait_stderr(r"acme: certificate for a\.test obtained", timeout=60)
    assert has_libcurl(p.pid), sorted(mapped_libraries(p.pid))


def test_reload_to_metadata_url_maps_libcurl(lab, tmp_path):
    key, cert = samltools.make_key(str(tmp_path), "idp")
    md = MetadataServer(tmp_path, samltools.idp_metadata("https://idp.test",
                                                         "https://idp.test/sso", cert),
                        tls=False)
    try:
        up = lab.upstream("web")
        port = free_port()
        with_saml = saml_config(up, port, md.url)
        plain = copy.deepcopy(with_saml)
        del plain["saml"]
        plain["sites"] = [{"name": "posthog", "routes": [route("web", "web")]}]
        p = lab.proxy(plain, name="reload-libcurl")
        assert not has_libcurl(p.pid)
        start = len(p.stderr())
        p.write_config(with_saml)
        p.signal(signal.SIGHUP)
        p.wait_stderr(r"configuration reloaded from", start=start)
        assert has_libcurl(p.pid)
        assert md.hits == 1
        r = request(port, "GET", "/saml/metadata", host="localhost:%d" % port)
        assert r.status == 200
    finally:
        md.close()


def test_check_reports_missing_libcurl(lab, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("hiding libcurl needs a mount namespace (root)")
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    m = re.search(r"^\s*libcurl\.so\.4 \(.*x86-64.*\) => (\S+)$", cache, re.M)
    assert m, "libcurl.so.4 is not in ld.so's cache:\n" + cache
    lib = os.path.realpath(m.group(1))
    up = lab.upstream("web")
    cfg = config({"web": up}, [{"name": "s", "hosts": ["a.test"],
                                "routes": [route("all", "web")]}],
                 tls={"certs_dir": str(tmp_path / "certs"),
                      "acme": {"directory": "https://127.0.0.1:1/dir",
                               "email": "ops@example.test"}})
    path = str(tmp_path / "acme.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount --bind /dev/null "$1" && exec "$2" -t -c "$3"', "sh", lib,
                        BINARY, path], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "tls.acme: needs libcurl for its outbound HTTPS requests: cannot load libcurl.so.4 " \
           "(Debian package libcurl4)" in out, out

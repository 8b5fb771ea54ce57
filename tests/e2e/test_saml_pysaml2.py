"""SAML SP against an independent IdP: pysaml2 (tests/saml/pysaml2_idp.py, run
with Debian's /usr/bin/python3) on loopback.  The IdP checks our
AuthnRequest's redirect signature against our SP metadata and answers with
its own signed Response (Response and Assertion signed, exclusive C14N,
SHA-256).  The IdP metadata is fetched from its URL at start and cached."""

import os
import re
import subprocess
import urllib.parse

import pytest

from harness import request
from saml_common import ACS_PATH, Browser, closed_port, saml_config


@pytest.fixture(scope="module")
def idp(module_lab):
    work = module_lab.workdir
    sp_md = os.path.join(work, "sp-metadata.xml")
    proc = subprocess.Popen(["/usr/bin/python3",
                             os.path.join(os.path.dirname(__file__), "..", "saml",
                                          "pysaml2_idp.py"), work, sp_md],
                            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "idp.log"),
                                                                "wb"))
    try:
        line = proc.stdout.readline().decode()
        m = re.match(r"listening on (\d+)", line)
        assert m, "the pysaml2 IdP did not start: %r" % line
        yield {"port": int(m.group(1)), "sp_md": sp_md, "proc": proc, "work": work}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def sp(module_lab, idp):
    up = module_lab.upstream("web")
    port = closed_port()
    md_url = "http://127.0.0.1:%d/metadata" % idp["port"]
    p = module_lab.proxy(saml_config(up, port, md_url, headers={
        "X-Auth-Email": "mail", "X-Auth-User": "@nameid", "X-Auth-Groups": "eduPersonAffiliation"},
        idp_metadata_refresh=3600))
    r = request(port, "GET", "/saml/metadata", host="localhost:%d" % port)
    assert r.status == 200
    with open(idp["sp_md"], "wb") as f:
        f.write(r.body)
    return {"port": port, "proxy": p, "up": up}


def idp_round_trip(b, login):
    """Follow the redirect to the IdP and return (ACS URL, form fields)."""
    u = urllib.parse.urlparse(login["location"])
    r = request(u.port, "GET", u.path + "?" + u.query, host=u.netloc)
    assert r.status == 200, r
    html = r.text()
    action = re.search(r'action="([^"]+)"', html).group(1)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html))
    return action, fields


def test_metadata_cached(sp, idp):
    cache = os.path.join(sp["proxy"].workdir, "certs", "saml-idp-metadata.xml")
    with open(cache) as f:
        assert "IDPSSODescriptor" in f.read()


def test_full_login_with_pysaml2(sp, idp, alive):
    b = Browser(sp["port"])
    login = b.start_login("/insights/abc?tab=1")
    action, fields = idp_round_trip(b, login)
    assert action == "http://localhost:%d%s" % (sp["port"], ACS_PATH)
    assert fields["RelayState"] == login["relay"]
    import base64
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    body = urllib.parse.urlencode(fields).encode()
    r = b.get(ACS_PATH, method="POST", body=body,
              headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 303, (r, sp["proxy"].stderr()[-2000:])
    assert r.header("Location") == "/insights/abc?tab=1"
    sp["up"].reset()
    r = b.get("/insights/abc?tab=1", headers=[("X-Auth-Email", "forged@evil")])
    assert r.status == 200
    got = sp["up"].snapshot()[-1]
    assert got.header_all("X-Auth-Email") == ["alice@example.com"]
    assert got.header("X-Auth-User") == "alice"
    assert got.header("X-Auth-Groups") == "member, staff"
    # replaying the IdP's form fails (the assertion ID was used)
    b2 = Browser(sp["port"])
    b2.cookies = {k: v for k, v in login["response"].header_all("Set-Cookie") and
                  [tuple(c.split(";")[0].split("=", 1))
                   for c in login["response"].header_all("Set-Cookie")]}
    r = b2.get(ACS_PATH, method="POST", body=body,
               headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 403
    sp["proxy"].wait_stderr(r"was used before")
    assert "Signature" in xml


def test_tampered_pysaml2_response_refused(sp, idp, alive):
    import base64
    b = Browser(sp["port"])
    login = b.start_login("/")
    _, fields = idp_round_trip(b, login)
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    fields["SAMLResponse"] = base64.b64encode(
        xml.replace("alice@example.com", "admin@example.com").encode()).decode()
    r = b.get(ACS_PATH, method="POST", body=urllib.parse.urlencode(fields).encode(),
              headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 403
    sp["proxy"].wait_stderr(r"login failed \[ref %s\].*does not verify" %
                            re.escape(r.header("X-Request-ID")))

"""SAML SP against a second independent IdP: SimpleSAMLphp 1.19 (Debian 12's
`simplesamlphp`, run by tests/e2e/simplesamlphp.py with `php -S` on
loopback).  A whole browser login is driven by hand, cookies included, on
both sides: the protected page sends the browser to SimpleSAMLphp with our
signed AuthnRequest, SimpleSAMLphp verifies its redirect signature against
the certificate in our SP metadata, shows its real username/password form,
and answers the POSTed credentials with an auto-submitting form carrying a
Response whose Assertion it signed (RSA-SHA256, exclusive C14N; the Response
itself is not signed); that form goes to our ACS.  Also: a wrong password, an
AuthnRequest with a tampered or missing signature (refused by SimpleSAMLphp),
the replay of a captured SAMLResponse, a Response-only signature (Casdoor's
shape), an unsigned Response, and single logout both ways (our signed
LogoutRequest, verified by SimpleSAMLphp, and its LogoutResponse back).

Skipped only when php or SimpleSAMLphp is missing and PORTCULLIS_REQUIRE_ALL
is unset (with it set, a missing IdP fails the tests)."""

import base64
import html.parser
import os
import re
import urllib.parse

import pytest

from harness import request
from saml_common import ACS_PATH, Browser, closed_port, saml_config
import simplesamlphp


class Forms(html.parser.HTMLParser):
    """The forms of an HTML page: [{"action", "method", "fields": {name: value},
    "inputs": [(type, name)]}]."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or
                                                                           "get").lower(),
                               "fields": {}, "inputs": []})
        elif tag == "input" and self.forms and a.get("name"):
            f = self.forms[-1]
            f["inputs"].append(((a.get("type") or "text").lower(), a["name"]))
            if (a.get("type") or "").lower() == "hidden":
                f["fields"][a["name"]] = a.get("value") or ""


class IdPBrowser(Browser):
    """The browser's side of SimpleSAMLphp: its own cookies, absolute URLs."""

    def __init__(self, idp):
        super().__init__(idp.port, host="127.0.0.1:%d" % idp.port)
        self.idp = idp

    def target(self, url):
        u = urllib.parse.urlsplit(url)
        assert u.scheme == "http" and u.netloc == self.host, "not on the IdP: %s" % url
        return u.path + ("?" + u.query if u.query else "")

    def open(self, url, method="GET", fields=None, max_redirects=5):
        """GET/POST <url> on the IdP, following redirects that stay on the IdP;
        returns (final URL, Response)."""
        body = urllib.parse.urlencode(fields).encode() if fields is not None else None
        headers = [("Content-Type", "application/x-www-form-urlencoded")] if body else []
        for _ in range(max_redirects + 1):
            r = self.get(self.target(url), method=method, body=body, headers=headers)
            if r.status not in (301, 302, 303, 307) or not r.header("Location"):
                return url, r
            nxt = urllib.parse.urljoin(url, r.header("Location"))
            if urllib.parse.urlsplit(nxt).netloc != self.host:
                return url, r
            url, method, body, headers = nxt, "GET", None, []
        raise AssertionError("more than %d redirects on the IdP" % max_redirects)


@pytest.fixture(scope="module")
def idp(module_lab):
    why = simplesamlphp.missing()
    if why:
        if os.environ.get("PORTCULLIS_REQUIRE_ALL"):
            pytest.fail("%s, and PORTCULLIS_REQUIRE_ALL is set" % why, pytrace=False)
        pytest.skip(why)
    ssp = simplesamlphp.SimpleSAMLphp(os.path.join(module_lab.workdir, "simplesamlphp"))
    ssp.start()
    try:
        yield ssp
    finally:
        ssp.stop()


@pytest.fixture(scope="module")
def sp(module_lab, idp):
    up = module_lab.upstream("web")
    port = closed_port()
    p = module_lab.proxy(saml_config(up, port, idp.metadata_url, headers={
        "X-Auth-Email": "Email", "X-Auth-User": "@nameid", "X-Auth-Name": "DisplayName",
        "X-Auth-Roles": "Roles"}, idp_metadata_refresh=3600))
    r = request(port, "GET", "/saml/metadata", host="localhost:%d" % port)
    assert r.status == 200 and b"SPSSODescriptor" in r.body, r
    idp.set_sp_metadata(r.body)
    return {"port": port, "proxy": p, "up": up, "base": "http://localhost:%d" % port}


def login_form(idp, login):
    """Follow our redirect to SimpleSAMLphp up to its login form; returns
    (IdPBrowser, form URL, form)."""
    assert login["location"].startswith(idp.sso_url + "?"), login["location"]
    ib = IdPBrowser(idp)
    url, r = ib.open(login["location"])
    assert r.status == 200, (r, idp.log()[-3000:])
    forms = [f for f in Forms(r.text()).forms if ("password", "password") in f["inputs"]]
    assert len(forms) == 1, r.text()[:3000]
    assert "/module.php/core/loginuserpass.php" in url
    return ib, url, forms[0]


def submit_login(ib, url, form, user, password):
    fields = dict(form["fields"])
    fields.update({"username": user, "password": password})
    assert "AuthState" in fields
    return ib.open(urllib.parse.urljoin(url, form["action"]), method="POST", fields=fields)


def saml_post_form(r):
    """The auto-submitting form that carries the SAMLResponse, or None."""
    for f in Forms(r.text()).forms:
        if "SAMLResponse" in f["fields"]:
            return f
    return None


def idp_answer(sp, idp, path):
    """A browser's login through SimpleSAMLphp's form up to (not including)
    the ACS; returns (our Browser, the IdP's Browser, the login, the IdP's
    auto-POST form)."""
    b = Browser(sp["port"])
    login = b.start_login(path)
    ib, url, form = login_form(idp, login)
    _, r = submit_login(ib, url, form, simplesamlphp.USER, simplesamlphp.PASSWORD)
    assert r.status == 200, (r, idp.log()[-3000:])
    post = saml_post_form(r)
    assert post is not None, r.text()[:3000]
    return b, ib, login, post


def post_to_acs(b, form):
    return b.get(ACS_PATH, method="POST", body=urllib.parse.urlencode(form["fields"]).encode(),
                 headers=[("Content-Type", "application/x-www-form-urlencoded")])


def tamper_query(query, name, change):
    """The redirect query string with parameter <name> replaced by change(value);
    the other parameters keep their exact encoding (the signature covers it)."""
    out = []
    for part in query.split("&"):
        k, _, v = part.partition("=")
        if k == name:
            new = change(urllib.parse.unquote(v))
            if new is None:
                continue
            v = urllib.parse.quote(new, safe="")
        out.append(k + "=" + v)
    return "&".join(out)


def flip_signature(value):
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_idp_metadata_fetched_and_cached(sp, idp, alive):
    cache = os.path.join(sp["proxy"].workdir, "certs", "saml-idp-metadata.xml")
    with open(cache) as f:
        cached = f.read()
    assert 'entityID="%s"' % idp.entity_id in cached
    assert idp.sso_url in cached


def test_full_login_and_replay(sp, idp, alive):
    b = Browser(sp["port"])
    login = b.start_login("/insights/abc?tab=1")
    assert login["params"]["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    ib, url, form = login_form(idp, login)

    # the real form: POST the credentials; SimpleSAMLphp answers with its
    # auto-submitting form to our ACS
    _, r = submit_login(ib, url, form, simplesamlphp.USER, simplesamlphp.PASSWORD)
    assert r.status == 200, (r, idp.log()[-3000:])
    post = saml_post_form(r)
    assert post is not None, r.text()[:3000]
    assert post["method"] == "post"
    assert post["action"] == sp["base"] + ACS_PATH
    assert post["fields"]["RelayState"] == login["relay"]
    xml = base64.b64decode(post["fields"]["SAMLResponse"]).decode()
    assert 'InResponseTo="%s"' % login["request_id"] in xml
    # SimpleSAMLphp's shape: the Assertion is signed, the Response is not
    assert re.search(r"<saml:Assertion\b[^>]*>\s*<saml:Issuer>[^<]*</saml:Issuer>\s*"
                     r"<ds:Signature\b", xml), xml[:2000]
    assert len(re.findall(r"<ds:Signature[\s>]", xml)) == 1
    assert ('<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
            in xml)
    assert ('<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
            in xml)

    # to our ACS: session, and back to the original path
    r = post_to_acs(b, post)
    assert r.status == 303, (r, sp["proxy"].stderr()[-3000:])
    assert r.header("Location") == "/insights/abc?tab=1"
    assert "__Host-portcullis-session" in b.cookies, b.cookies

    # the upstream sees who signed in; the client's forged copies are gone
    sp["up"].reset()
    r = b.get("/insights/abc?tab=1", headers=[
        ("X-Auth-Email", "forged@evil.test"), ("X-Auth-User", "mallory"),
        ("X-Auth-Roles", "posthog-admin"), ("X-Auth-Name", "Mallory")])
    assert r.status == 200, r
    got = sp["up"].snapshot()[-1]
    assert got.target == "/insights/abc?tab=1"
    assert got.header_all("X-Auth-Email") == ["alice@example.com"]
    assert got.header_all("X-Auth-User") == ["alice"]
    assert got.header_all("X-Auth-Name") == ["Alice Example"]
    assert got.header_all("X-Auth-Roles") == ["posthog-admin, staff"]
    assert "portcullis" not in (got.header("Cookie") or "")
    # an open route: the forged headers are removed there too
    sp["up"].reset()
    r = request(sp["port"], "POST", "/e/", host="localhost:%d" % sp["port"], body=b"{}",
                headers=[("X-Auth-Email", "forged@evil.test"),
                         ("Content-Type", "application/json")])
    assert r.status == 200, r
    assert sp["up"].snapshot()[-1].header_all("X-Auth-Email") == []

    # replay of the captured SAMLResponse, with the request-tracking cookie
    # of that login: refused and logged
    b2 = Browser(sp["port"])
    for line in login["response"].header_all("Set-Cookie"):
        name, _, value = line.split(";", 1)[0].partition("=")
        b2.cookies[name.strip()] = value.strip()
    r = post_to_acs(b2, post)
    assert r.status == 403, r
    assert "__Host-portcullis-session" not in b2.cookies
    sp["proxy"].wait_stderr(r"saml: login failed \[ref %s\].*was used before" %
                            re.escape(r.header("X-Request-ID")))


def test_logout_round_trip(sp, idp, alive):
    b, ib, _, post = idp_answer(sp, idp, "/insights")
    assert post_to_acs(b, post).status == 303
    assert "__Host-portcullis-session" in b.cookies
    # logout: our session cookie is cleared and the browser goes to
    # SimpleSAMLphp with our signed LogoutRequest
    start = len(sp["proxy"].stderr())
    r = b.get("/saml/logout")
    assert "__Host-portcullis-session" not in b.cookies
    sp["proxy"].wait_stderr(r"saml: alice signed out", start=start)
    assert r.status == 302, (r, sp["proxy"].stderr()[start:][-2000:])
    slo = r.header("Location")
    assert slo.startswith(idp.slo_url + "?"), slo
    assert "Signature=" in slo and "SAMLRequest=" in slo
    # SimpleSAMLphp checks that signature too: a tampered copy is refused
    u = urllib.parse.urlsplit(slo)
    _, bad = IdPBrowser(idp).open(urllib.parse.urlunsplit(
        u._replace(query=tamper_query(u.query, "Signature", flip_signature))))
    assert "Unable to validate signature on query string" in bad.text(), bad
    # the real one: SimpleSAMLphp ends its session and comes back to us with
    # its LogoutResponse
    _, r = ib.open(slo)
    assert r.status in (302, 303), (r, idp.log()[-3000:])
    back = urllib.parse.urlsplit(r.header("Location"))
    assert back.netloc == "localhost:%d" % sp["port"] and back.path == "/saml/logout", back
    assert "SAMLResponse=" in back.query
    r = b.get(back.path + "?" + back.query)
    assert r.status == 200 and "signed out" in r.text(), r
    # no session any more: the protected page starts a new login, and
    # SimpleSAMLphp asks for the password again (its session ended too)
    sp["up"].reset()
    r = b.get("/insights", headers=[("Accept", "text/html")])
    assert r.status == 302 and r.header("Location").startswith(idp.sso_url + "?"), r
    assert sp["up"].snapshot() == []
    login = b.start_login("/")
    _, r = ib.open(login["location"])
    assert r.status == 200 and saml_post_form(r) is None, r
    assert any(("password", "password") in f["inputs"] for f in Forms(r.text()).forms)


def test_wrong_password_gives_no_session(sp, idp, alive):
    b = Browser(sp["port"])
    login = b.start_login("/dashboard")
    ib, url, form = login_form(idp, login)
    _, r = submit_login(ib, url, form, simplesamlphp.USER, "not-the-password")
    assert r.status == 200, r
    assert saml_post_form(r) is None
    # the form again, with SimpleSAMLphp's error
    assert any(("password", "password") in f["inputs"] for f in Forms(r.text()).forms)
    assert re.search(r"(?i)incorrect username or password", r.text()), r.text()[:3000]
    assert "__Host-portcullis-session" not in b.cookies
    sp["up"].reset()
    r = b.get("/dashboard", headers=[("Accept", "text/html")])
    assert r.status == 302 and r.header("Location").startswith(idp.sso_url + "?"), r
    assert sp["up"].snapshot() == []


@pytest.mark.parametrize("change,logged", [
    (flip_signature, r"Unable to validate signature on query string"),
    (lambda v: None, r"Validation of received messages enabled, but no signature found"),
], ids=["flipped-signature", "no-signature"])
def test_tampered_authn_request_signature_refused_by_idp(sp, idp, alive, change, logged):
    b = Browser(sp["port"])
    login = b.start_login("/")
    u = urllib.parse.urlsplit(login["location"])
    bad = urllib.parse.urlunsplit(u._replace(query=tamper_query(u.query, "Signature", change)))
    assert bad != login["location"]
    start = len(idp.log())
    ib = IdPBrowser(idp)
    _, r = ib.open(bad)
    # SimpleSAMLphp 1.19 (old template engine) sends its error page with
    # status 200; the page and its log name the cause
    page = re.sub(r"<[^>]+>|\s+", " ", r.text())
    assert "Unhandled exception" in page and re.search(logged, page), page[:3000]
    forms = Forms(r.text()).forms
    assert not any(("password", "password") in f["inputs"] for f in forms), r.text()[:2000]
    assert saml_post_form(r) is None
    assert re.search(logged, idp.log()[start:]), idp.log()[start:][-3000:]
    # the untouched request is accepted (so the refusal was the signature's)
    login_form(idp, login)


@pytest.fixture
def sp_options(idp):
    """Set SimpleSAMLphp options for our SP for one test (reset afterwards)."""
    def apply(options):
        idp.set_sp_metadata(None, options)
    try:
        yield apply
    finally:
        idp.set_sp_metadata(None, None)


def test_response_signed_instead_of_assertion(sp, idp, sp_options, alive):
    # Casdoor's default shape from a real IdP: only the Response is signed
    sp_options({"saml20.sign.assertion": False, "saml20.sign.response": True})
    b, _, login, post = idp_answer(sp, idp, "/persons")
    xml = base64.b64decode(post["fields"]["SAMLResponse"]).decode()
    assert re.search(r"<samlp:Response\b[^>]*>\s*<saml:Issuer>[^<]*</saml:Issuer>\s*"
                     r"<ds:Signature\b", xml), xml[:2000]
    assert len(re.findall(r"<ds:Signature[\s>]", xml)) == 1
    r = post_to_acs(b, post)
    assert r.status == 303, (r, sp["proxy"].stderr()[-3000:])
    assert r.header("Location") == "/persons"
    sp["up"].reset()
    assert b.get("/persons").status == 200
    assert sp["up"].snapshot()[-1].header_all("X-Auth-Email") == ["alice@example.com"]


def test_unsigned_response_refused(sp, idp, sp_options, alive):
    # SimpleSAMLphp told to sign nothing: the SP must refuse, and say why
    sp_options({"saml20.sign.assertion": False, "saml20.sign.response": False})
    b, _, login, post = idp_answer(sp, idp, "/persons")
    xml = base64.b64decode(post["fields"]["SAMLResponse"]).decode()
    assert "<ds:Signature" not in xml
    r = post_to_acs(b, post)
    assert r.status == 403, r
    assert "__Host-portcullis-session" not in b.cookies
    sp["proxy"].wait_stderr(r"saml: login failed \[ref %s\].*Signature: .*signed" %
                            re.escape(r.header("X-Request-ID")))

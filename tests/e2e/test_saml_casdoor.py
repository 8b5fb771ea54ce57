"""SAML SP against Casdoor-shaped responses signed with the xmlsec1 command:
Casdoor's defaults (Response-only signature, RSA-SHA1, C14N 1.1, several
Audience elements, 24 h validity) and every rejection the SP must make,
each checked to be refused AND logged with the failed check."""

import os
import re

import pytest

from harness import request, wait_until
from saml_common import ACS_PATH, Browser, closed_port, now, saml_config, samltools, seal

IDP = "https://casdoor.test"
SSO = "https://casdoor.test/login/saml/authorize/admin/app"


@pytest.fixture(scope="module")
def env(module_lab):
    work = module_lab.workdir
    key, cert = samltools.make_key(work, "idp")
    okey, ocert = samltools.make_key(work, "attacker")
    md = os.path.join(work, "idp-metadata.xml")
    with open(md, "w") as f:
        f.write(samltools.idp_metadata(IDP, SSO, cert))
    up = module_lab.upstream("web")
    port = closed_port()
    p = module_lab.proxy(saml_config(up, port, md, allow_sha1=True, certs_dir="certs-a",
                                     require=[{"attribute": "Roles",
                                               "contains": "posthog-admin"}]),
                         name="sha1")
    sport = closed_port()
    strict = module_lab.proxy(saml_config(up, sport, md, certs_dir="certs-b"), name="strict")
    return {"work": work, "key": key, "cert": cert, "okey": okey, "ocert": ocert, "up": up,
            "port": port, "proxy": p, "sport": sport, "strict": strict}


def ours(port):
    base = "http://localhost:%d" % port
    return {"destination": base + ACS_PATH, "recipient": base + ACS_PATH,
            "audiences": [base + "/saml/metadata", "https://posthog.example/callback"]}


def response_for(env, login, port=None, key=None, cert=None, **kw):
    params = ours(port or env["port"])
    params["in_response_to"] = login["request_id"]
    params.update(kw)
    xml, _ = samltools.signed_response(key or env["key"], cert or env["cert"], env["work"],
                                       **params)
    return xml


def assert_refused(proxy, resp, text, status=403):
    assert resp.status == status, resp
    ref = resp.header("X-Request-ID")
    assert ref and ref in resp.text(), resp
    assert "Sign-in failed" in resp.text()
    proxy.wait_stderr(r"saml: login failed \[ref %s\].*%s" % (re.escape(ref), text))
    assert "__Host-portcullis-session" not in resp.header_all("Set-Cookie").__str__() or \
        "Max-Age=0" in str(resp.header_all("Set-Cookie"))


def test_authn_request_and_tracking_cookie(env, alive):
    b = Browser(env["port"])
    login = b.start_login("/insights?x=1")
    xml = login["xml"]
    base = "http://localhost:%d" % env["port"]
    assert 'AssertionConsumerServiceURL="%s%s"' % (base, ACS_PATH) in xml
    assert 'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"' in xml
    assert login["location"].startswith(SSO + "?")
    assert login["params"]["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    md = request(env["port"], "GET", "/saml/metadata", host="localhost:%d" % env["port"])
    assert md.status == 200 and b"SPSSODescriptor" in md.body
    cert = re.search(rb"<ds:X509Certificate>([^<]+)<", md.body).group(1).decode()
    pem = "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(
        cert[i:i + 64] for i in range(0, len(cert), 64))
    assert samltools.verify_redirect_signature(login["query"], pem, env["work"])
    # the RelayState is opaque: the original URL is not in it
    assert "insights" not in login["relay"]
    track = [c for c in login["response"].header_all("Set-Cookie")
             if c.startswith("__Host-portcullis-saml-")]
    assert len(track) == 1
    for attr in ("Secure", "HttpOnly", "SameSite=None", "Path=/"):
        assert attr in track[0]


@pytest.mark.parametrize("variant", [
    dict(),                                                       # Casdoor defaults
    dict(sigalg=samltools.RSA_SHA256, digest=samltools.SHA256),   # SHA256, C14N 1.1
    dict(sigalg=samltools.RSA_SHA256, digest=samltools.SHA256, c14n=samltools.EXC_C14N),
    dict(c14n=samltools.EXC_C14N),                                # SHA1, exclusive C14N
    dict(sign_assertion=True, sigalg=samltools.RSA_SHA256, digest=samltools.SHA256),
    dict(sign_assertion=True, sign_response=False, sigalg=samltools.RSA_SHA256,
         digest=samltools.SHA256),
], ids=["casdoor-defaults", "sha256-c14n11", "sha256-exc", "sha1-exc", "both-signed",
        "assertion-only"])
def test_login_succeeds(env, alive, variant):
    b = Browser(env["port"])
    login = b.start_login("/insights?x=1")
    r = b.post_acs(response_for(env, login, **variant), login["relay"])
    assert r.status == 303, r
    assert r.header("Location") == "/insights?x=1"
    session = [c for c in r.header_all("Set-Cookie") if c.startswith("__Host-portcullis-session=")]
    assert len(session) == 1
    for attr in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attr in session[0]
    assert "Domain" not in session[0]
    env["up"].reset()
    r = b.get("/insights?x=1", headers=[("X-Auth-Email", "mallory@evil"),
                                        ("X-Auth-User", "root")])
    assert r.status == 200, r
    got = env["up"].snapshot()[-1]
    assert got.header_all("X-Auth-Email") == ["alice@example.com"]
    assert got.header_all("X-Auth-User") == ["alice"]
    assert got.header("X-Auth-Roles") == "posthog-admin"
    assert "portcullis" not in (got.header("Cookie") or "")


def test_sha1_refused_by_default_names_casdoor_option(env, alive):
    b = Browser(env["sport"])
    login = b.start_login("/")
    r = b.post_acs(response_for(env, login, port=env["sport"]), login["relay"])
    assert_refused(env["strict"], r, r"SHA-1 refused.*SAML hash algorithm")


def test_sha256_works_on_strict_proxy(env, alive):
    b = Browser(env["sport"])
    login = b.start_login("/")
    r = b.post_acs(response_for(env, login, port=env["sport"], sigalg=samltools.RSA_SHA256,
                                digest=samltools.SHA256), login["relay"])
    assert r.status == 303, r


def _other_assertion(env, login, name="mallory"):
    a = samltools.make_response(in_response_to=login["request_id"], name_id=name,
                                **{k: v for k, v in ours(env["port"]).items()})
    a["sign_assertion"] = False
    return samltools.assertion_xml(a)


def test_rejections(env, alive):
    """Each mutation is refused with its own log line."""
    port = env["port"]
    p = env["proxy"]
    cases = []

    def case(name, text, make, status=403):
        cases.append((name, text, make, status))

    case("unsigned", "neither the Response nor the Assertion is signed",
         lambda lg: response_for(env, lg, sign_response=False))
    case("other key", "does not verify",
         lambda lg: response_for(env, lg, key=env["okey"], cert=env["ocert"]))
    case("tampered", "does not verify",
         lambda lg: response_for(env, lg).replace("alice@example.com", "mallory@example.com"))
    case("extra unsigned assertion", "expected exactly one, got 2",
         lambda lg: response_for(env, lg, extra_after_assertion=_other_assertion(env, lg)))

    def moved(lg):
        # Only the assertion is signed; it is moved into Extensions and an
        # unsigned one takes its place.
        xml = response_for(env, lg, sign_response=False, sign_assertion=True,
                           sigalg=samltools.RSA_SHA256, digest=samltools.SHA256)
        start = xml.index("<saml:Assertion")
        end = xml.index("</saml:Assertion>") + len("</saml:Assertion>")
        signed = xml[start:end]
        return (xml[:start] + "<samlp:Extensions>" + signed + "</samlp:Extensions>" +
                _other_assertion(env, lg) + xml[end:])
    case("signed assertion moved", "expected exactly one, got 2", moved)

    def moved_alone(lg):
        xml = response_for(env, lg, sign_response=False, sign_assertion=True,
                           sigalg=samltools.RSA_SHA256, digest=samltools.SHA256)
        start = xml.index("<saml:Assertion")
        end = xml.index("</saml:Assertion>") + len("</saml:Assertion>")
        return (xml[:start] + "<samlp:Extensions>" + xml[start:end] + "</samlp:Extensions>" +
                xml[end:])
    case("signed assertion moved alone", "not a direct child", moved_alone)

    def other_reference(lg):
        # The Response "signature" references the assertion's ID (signed
        # correctly by the IdP key) instead of its parent.
        a = samltools.make_response(in_response_to=lg["request_id"], **ours(port))
        xml = samltools.render(a, env["cert"])
        xml = xml.replace('URI="#%s"' % a["response_id"], 'URI="#%s"' % a["assertion_id"], 1)
        return samltools.xmlsec_sign(xml, env["key"], env["cert"], env["work"])
    case("reference to another element", "Reference must point at its own parent",
         other_reference)

    def two_signed(lg):
        a = samltools.make_response(in_response_to=lg["request_id"], **ours(port))
        a2 = dict(a, assertion_id="_second", name_id="mallory")
        a["extra_after_assertion"] = samltools.assertion_xml(a2)
        return samltools.xmlsec_sign(samltools.render(a, env["cert"]), env["key"], env["cert"],
                                     env["work"])
    case("two assertions", "expected exactly one, got 2", two_signed)
    case("expired", "NotOnOrAfter: expired",
         lambda lg: response_for(env, lg, not_after=samltools.instant(-600)))
    case("not yet valid", "NotBefore: not yet valid",
         lambda lg: response_for(env, lg, not_before=samltools.instant(3600)))
    case("old IssueInstant", "IssueInstant: .* is older than",
         lambda lg: response_for(env, lg, issue=samltools.instant(-3600),
                                 assertion_issue=samltools.instant(-3600)))
    case("wrong audience", "Audience: expected",
         lambda lg: response_for(env, lg, audiences=["https://other.example/saml/metadata"]))
    case("wrong destination", "Destination: expected",
         lambda lg: response_for(env, lg, destination="https://evil.example/acs"))
    case("wrong recipient", "Recipient: expected",
         lambda lg: response_for(env, lg, recipient="https://evil.example/acs"))
    case("unsolicited", "InResponseTo: missing",
         lambda lg: response_for(env, lg, in_response_to=None))
    case("mismatched InResponseTo", "InResponseTo: expected",
         lambda lg: response_for(env, lg, in_response_to="_someone_else"))
    case("wrong issuer", "Issuer: expected",
         lambda lg: response_for(env, lg, issuer="https://evil.example"))
    case("IdP error status", "Status: the IdP answered",
         lambda lg: response_for(env, lg,
                                 status="urn:oasis:names:tc:SAML:2.0:status:Requester"))
    case("comment in NameID", "NameID: empty, or not plain text",
         lambda lg: response_for(env, lg, name_id="admin<!---->.evil"))

    # SAML Web SSO profile rules (profiles 4.1.4.2)

    def edited(edit, **kw):
        return lambda lg: response_for(env, lg, edit=edit, **kw)

    def assertion_version(x):
        i = x.index("<saml:Assertion")
        return x[:i] + x[i:].replace('Version="2.0"', 'Version="1.1"', 1)
    case("assertion version", r"Assertion Version: expected \"2.0\", got \"1.1\"",
         edited(assertion_version))
    case("response version", r"Version: expected \"2.0\", got \"2.1\"",
         edited(lambda x: x.replace('Version="2.0"', 'Version="2.1"', 1)))
    case("no AuthnStatement", "AuthnStatement: missing",
         edited(lambda x: re.sub(r"<saml:AuthnStatement .*?</saml:AuthnStatement>", "", x)))
    case("no InResponseTo on the bearer data",
         r"SubjectConfirmationData InResponseTo: expected \"[^\"]+\", got \"\(none\)\"",
         edited(lambda x: re.sub(r'(<saml:SubjectConfirmationData) InResponseTo="[^"]*"', r"\1",
                                 x)))
    case("issuer format", r"Response Issuer Format: expected .*nameid-format:entity.*got "
         r".*nameid-format:unspecified",
         edited(lambda x: x.replace("<saml:Issuer>", '<saml:Issuer Format="urn:oasis:names:tc:'
                                    'SAML:1.1:nameid-format:unspecified">', 1)))
    case("assertion issuer format", r"Assertion Issuer Format: expected",
         edited(lambda x: x[:x.index("<saml:Assertion")] +
                x[x.index("<saml:Assertion"):].replace(
                    "<saml:Issuer>", '<saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:'
                    'nameid-format:persistent">', 1)))
    case("signed response without issuer", "Response Issuer: missing",
         edited(lambda x: re.sub(r"(<samlp:Response[^>]*>)<saml:Issuer>[^<]*</saml:Issuer>",
                                 r"\1", x)))

    for name, text, make, status in cases:
        b = Browser(port)
        login = b.start_login("/")
        r = b.post_acs(make(login), login["relay"])
        try:
            assert_refused(p, r, text, status)
        except AssertionError as exc:
            raise AssertionError("case %r: %s" % (name, exc))
        assert "__Host-portcullis-session" not in b.cookies, name


@pytest.mark.parametrize("edit", [
    lambda x: x.replace("<saml:Issuer>", '<saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:'
                        'nameid-format:entity">'),
    None,
], ids=["issuer-format-entity", "unsigned-response-without-issuer"])
def test_profile_rules_accept(env, alive, edit):
    """An entity-format Issuer is fine; an unsigned Response (signed Assertion)
    may leave its own Issuer out."""
    b = Browser(env["port"])
    login = b.start_login("/")
    if edit is None:
        def edit(x):
            return re.sub(r"(<samlp:Response[^>]*>)<saml:Issuer>[^<]*</saml:Issuer>", r"\1", x)
        xml = response_for(env, login, edit=edit, sign_response=False, sign_assertion=True,
                           sigalg=samltools.RSA_SHA256, digest=samltools.SHA256)
    else:
        xml = response_for(env, login, edit=edit)
    r = b.post_acs(xml, login["relay"])
    assert r.status == 303, r


def test_replayed_assertion(env, alive):
    b = Browser(env["port"])
    login = b.start_login("/")
    xml = response_for(env, login)
    track = dict(b.cookies)
    assert b.post_acs(xml, login["relay"]).status == 303
    # the attacker kept the tracking cookie and the response
    b2 = Browser(env["port"])
    b2.cookies = track
    r = b2.post_acs(xml, login["relay"])
    assert_refused(env["proxy"], r, "was used before")


def test_relay_state_and_tracking_cookie(env, alive):
    b = Browser(env["port"])
    login = b.start_login("/")
    xml = response_for(env, login)
    r = b.post_acs(xml, "//evil.example/")
    assert_refused(env["proxy"], r, "RelayState: expected the opaque token", 400)
    # no tracking cookie: a response started in another browser
    b2 = Browser(env["port"])
    r = b2.post_acs(xml, login["relay"])
    assert_refused(env["proxy"], r, "request-tracking cookie .*: missing", 400)
    # a tracking cookie of another login
    b3 = Browser(env["port"])
    other = b3.start_login("/")
    b3.cookies = {k.replace(other["relay"], login["relay"]): v for k, v in b3.cookies.items()}
    r = b3.post_acs(xml, login["relay"])
    assert_refused(env["proxy"], r, "does not open", 400)


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example/", "https:evil.example",
                                    "https://evil.example/", "%2F%2Fevil.example",
                                    "/%2F%2Fevil.example", "/%5Cevil.example",
                                    "/%252F%252Fevil.example", "%2f%2fevil", "/%09/evil",
                                    "javascript:alert(1)"])
def test_return_url_elsewhere_refused(env, alive, target):
    import urllib.parse
    q = urllib.parse.quote(target, safe="")
    if target.startswith("/%") or target.startswith("%"):
        q = urllib.parse.quote(target, safe="%")   # keep the encoding under test
    r = request(env["port"], "GET", "/saml/login?return=" + q, host="localhost:%d" % env["port"])
    assert r.status == 400, (target, r)
    env["proxy"].wait_stderr(r"login refused \[ref %s\]" % re.escape(r.header("X-Request-ID")))
    assert r.header("Location") is None


def test_return_url_cannot_forge_log_lines(env, alive):
    # A refused return URL is logged; a newline or an escape sequence in it
    # must not start a line of its own nor reach a terminal raw.
    forged = "\n2026-01-01T00:00:00.000Z info saml: mallory signed in\x1b[2J"
    q = "%2F%2Fevil" + "".join("%%%02X" % ord(c) for c in forged)
    r = request(env["port"], "GET", "/saml/login?return=" + q, host="localhost:%d" % env["port"])
    assert r.status == 400, r
    env["proxy"].wait_stderr(r"login refused \[ref %s\]" % re.escape(r.header("X-Request-ID")))
    err = env["proxy"].stderr()
    assert "\n2026-01-01T00:00:00.000Z info saml: mallory" not in err
    assert "\x1b" not in err
    assert "\\x0a2026-01-01T00:00:00.000Z info saml: mallory signed in\\x1b[2J" in err, err[-2000:]


def test_return_url_path_accepted(env, alive):
    r = request(env["port"], "GET", "/saml/login?return=%2Fdashboard%3Fa%3D1",
                host="localhost:%d" % env["port"])
    assert r.status == 302 and r.header("Location").startswith(SSO)


def test_no_session_xhr_gets_401_and_bearer_passes(env, alive):
    host = "localhost:%d" % env["port"]
    r = request(env["port"], "GET", "/api/projects", host=host,
                headers=[("Accept", "application/json")])
    assert r.status == 401
    assert r.json()["login_url"].startswith("http://%s/saml/login?return=" % host)
    r = request(env["port"], "POST", "/api/projects", host=host, body=b"{}",
                headers=[("Content-Type", "application/json")])
    assert r.status == 401
    r = request(env["port"], "GET", "/", host=host, headers=[("Sec-Fetch-Mode", "cors")])
    assert r.status == 401
    env["up"].reset()
    r = request(env["port"], "GET", "/api/projects", host=host,
                headers=[("Authorization", "Bearer phx_abc123"), ("X-Auth-Email", "x@evil")])
    assert r.status == 200
    got = env["up"].snapshot()[-1]
    assert got.header("Authorization") == "Bearer phx_abc123"
    assert got.header("X-Auth-Email") is None
    r = request(env["port"], "GET", "/api/projects", host=host,
                headers=[("Authorization", "Bearer other_abc"), ("Accept", "application/json")])
    assert r.status == 401
    # the bearer exception is per route: not on the UI route
    r = request(env["port"], "GET", "/insights", host=host,
                headers=[("Authorization", "Bearer phx_abc123"), ("Accept", "application/json")])
    assert r.status == 401


def test_open_route_strips_client_identity_headers(env, alive):
    env["up"].reset()
    r = request(env["port"], "POST", "/e/", host="localhost:%d" % env["port"], body=b"{}",
                headers=[("X-Auth-Email", "ceo@example.com"), ("x-auth-user", "ceo")])
    assert r.status == 200
    got = env["up"].snapshot()[-1]
    assert got.header("X-Auth-Email") is None and got.header("X-Auth-User") is None


def _session_key(env):
    with open(os.path.join(env["proxy"].workdir, "certs-a", "session.key")) as f:
        return bytes.fromhex(f.read().split()[0])


def test_cookies_tampered_expired_foreign(env, alive):
    key = _session_key(env)
    t = now()
    good = seal(key, "session", t, t + 3600, t, "alice", [("Email", "alice@example.com"),
                                                          ("Roles", "posthog-admin")])
    b = Browser(env["port"])
    b.cookies["__Host-portcullis-session"] = good
    env["up"].reset()
    assert b.get("/x", headers=[("Accept", "application/json")]).status == 200
    assert env["up"].snapshot()[-1].header("X-Auth-Email") == "alice@example.com"
    bad = {
        "tampered": good[:20] + ("A" if good[20] != "A" else "B") + good[21:],
        "expired": seal(key, "session", t - 7200, t - 10, t - 100, "alice",
                        [("Roles", "posthog-admin")]),
        "idle": seal(key, "session", t - 7000, t + 3600, t - 4000, "alice",
                     [("Roles", "posthog-admin")]),
        # sealed when session_lifetime was longer than the 8 h configured now
        "older than session_lifetime": seal(key, "session", t - 30000, t + 3600, t, "alice",
                                            [("Roles", "posthog-admin")]),
        "foreign key": seal(os.urandom(32), "session", t, t + 3600, t, "alice",
                            [("Roles", "posthog-admin")]),
        "other purpose": seal(key, "saml-request/0123", t, t + 3600, t, "alice",
                              [("Roles", "posthog-admin")]),
    }
    for name, value in bad.items():
        b = Browser(env["port"])
        b.cookies["__Host-portcullis-session"] = value
        r = b.get("/x", headers=[("Accept", "application/json")])
        assert r.status == 401, (name, r)
        r = b.get("/x", headers=[("Accept", "text/html")])
        assert r.status == 302, (name, r)


def test_rule_refusal_page_names_user(env, alive):
    b = Browser(env["port"])
    login = b.start_login("/")
    attrs = {"Email": ["bob@example.com"], "Roles": ["viewer"]}
    r = b.post_acs(response_for(env, login, name_id="bob", attributes=attrs), login["relay"])
    assert r.status == 303
    r = b.get("/")
    assert r.status == 403
    # the page names the user, the attribute and the rule's JSON path, never the
    # rule's values; it offers a login that asks the IdP for fresh credentials
    assert b"bob" in r.body and b"posthog-admin" not in r.body
    assert b"<code>Roles</code>" in r.body and b"<code>saml.require[0]</code>" in r.body
    assert b"force=1" in r.body and b"Sign in as someone else" in r.body
    env["proxy"].wait_stderr(r"access refused to bob .*saml.require\[0\]: Roles does not satisfy")
    href = re.search(rb'href="([^"]*force=1)"', r.body).group(1).decode().replace("&amp;", "&")
    r = b.get(href[href.index("/saml/"):], headers=[("Accept", "text/html")])
    assert r.status == 302
    xml, _, _ = samltools.decode_redirect(r.header("Location"))
    assert 'ForceAuthn="true"' in xml


@pytest.mark.parametrize("roles,allowed", [
    (["viewer, posthog-admin"], True), (["posthog-admin,viewer"], True),
    (["viewer", "posthog-admin"], True), ([" posthog-admin "], True),
    (["not posthog-admin"], False), (["posthog-admin-lite"], False),
    (["viewer,xposthog-admin"], False)])
def test_rule_matches_whole_list_items(env, alive, roles, allowed):
    b = Browser(env["port"])
    login = b.start_login("/")
    attrs = {"Email": ["carol@example.com"], "Roles": roles}
    assert b.post_acs(response_for(env, login, name_id="carol", attributes=attrs),
                      login["relay"]).status == 303
    assert b.get("/").status == (200 if allowed else 403), roles


def test_logout_clears_session(env, alive):
    b = Browser(env["port"])
    login = b.start_login("/")
    assert b.post_acs(response_for(env, login), login["relay"]).status == 303
    assert b.get("/").status == 200
    r = b.get("/saml/logout")
    assert r.status == 200 and b"signed out" in r.body
    assert "__Host-portcullis-session" not in b.cookies
    assert b.get("/", headers=[("Accept", "application/json")]).status == 401
    wait_until(lambda: "signed out" in env["proxy"].stderr())


def test_cross_site_logout_asks_first(env, alive):
    # Another site linking to /saml/logout (logout CSRF) gets a confirmation
    # page; the session stays until the user posts the form.
    b = Browser(env["port"])
    login = b.start_login("/")
    assert b.post_acs(response_for(env, login), login["relay"]).status == 303
    for site in ("cross-site", "same-site"):
        r = b.get("/saml/logout", headers=[("Sec-Fetch-Site", site)])
        assert r.status == 200 and b'method="post"' in r.body, r
        assert r.header("Set-Cookie") is None
        assert b.get("/").status == 200
    r = b.get("/saml/logout", method="POST", body=b"",
              headers=[("Sec-Fetch-Site", "same-origin"),
                       ("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 200 and b"signed out" in r.body
    assert "__Host-portcullis-session" not in b.cookies


def test_bearer_pass_is_exact_and_drops_cookies(env, alive):
    host = "localhost:%d" % env["port"]
    env["up"].reset()
    r = request(env["port"], "GET", "/api/projects", host=host,
                headers=[("Authorization", "Bearer phx_abc123"),
                         ("Cookie", "sessionid=django; __Host-portcullis-session=x")])
    assert r.status == 200
    got = env["up"].snapshot()[-1]
    assert got.header("Cookie") is None, "cookies rode along with an API key"
    # PostHog matches "Bearer" case-sensitively: anything else is not a key to us either
    for auth in (["bearer phx_abc123"], ["BEARER phx_abc123"],
                 ["Bearer phx_abc123", "Bearer phx_other"]):
        r = request(env["port"], "GET", "/api/projects", host=host,
                    headers=[("Authorization", a) for a in auth] +
                    [("Cookie", "sessionid=django"), ("Accept", "application/json")])
        assert r.status == 401, (auth, r)


def test_piled_up_tracking_cookies_are_expired(env, alive):
    # Each login started sets a tracking cookie; a browser carrying 8 already
    # gets them all expired with the next one, so they cannot grow until every
    # request passes the header limit.
    b = Browser(env["port"])
    for i in range(8):
        b.start_login("/p%d" % i)
    names = [k for k in b.cookies if k.startswith("__Host-portcullis-saml-")]
    assert len(names) == 8
    r = b.get("/q", headers=[("Sec-Fetch-Mode", "navigate")])
    assert r.status == 302
    expired = [c for c in r.header_all("Set-Cookie") if "Max-Age=0" in c]
    assert len(expired) == 8, r.header_all("Set-Cookie")
    left = [k for k in b.cookies if k.startswith("__Host-portcullis-saml-")]
    assert len(left) == 1, left
    # a long return target does not make a long cookie
    r = request(env["port"], "GET", "/saml/login?return=/x%3F" + "a" * 3000,
                host="localhost:%d" % env["port"])
    assert r.status == 302
    assert all(len(c) < 1500 for c in r.header_all("Set-Cookie")), r.header_all("Set-Cookie")


def saml_logins(proxy):
    from harness import RawClient
    with RawClient(proxy.admin_port) as c:
        text = c.request("GET", "/metrics").text()
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'^portcullis_saml_logins_total\{result="(\w+)"\} (\d+)$', text, re.M)}


def test_login_metrics(env, alive):
    before = saml_logins(env["strict"])
    assert set(before) == {"started", "ok", "failed", "unavailable"}, before
    b = Browser(env["sport"])
    login = b.start_login("/")
    assert b.post_acs(response_for(env, login, port=env["sport"], sigalg=samltools.RSA_SHA256,
                                   digest=samltools.SHA256), login["relay"]).status == 303
    b2 = Browser(env["sport"])
    login = b2.start_login("/")
    assert b2.post_acs(response_for(env, login, port=env["sport"]), login["relay"]).status == 403
    after = saml_logins(env["strict"])
    assert after["started"] == before["started"] + 2
    assert after["ok"] == before["ok"] + 1
    assert after["failed"] == before["failed"] + 1
    assert after["unavailable"] == before["unavailable"]

"""Step-up per route (docs/saml.md#step-up) against SimpleSAMLphp 1.19
(tests/e2e/simplesamlphp.py): a route that needs the MultiFactor
AuthnContextClassRef and one that needs a login at most a few seconds old.
A session that does not meet the route's rule goes back to the IdP with
RequestedAuthnContext / ForceAuthn="true" (SimpleSAMLphp shows its password
form again although its own session is alive), and the answer's class and
AuthnInstant are checked at the ACS.  An IdP that does not meet the rule
(a fixed class, like Casdoor; an old AuthnInstant, as when ForceAuthn is
ignored) gets one 403 page, never a second round.  Sessions sealed before
the login was recorded still pass routes without step-up.

Skipped only when php or SimpleSAMLphp is missing and PORTCULLIS_REQUIRE_ALL
is unset."""

import json
import re
import time

import pytest

import configs
from harness import run_binary
from saml_common import ACS_PATH, Browser, closed_port, now, samltools, seal
from test_saml_simplesamlphp import (IdPBrowser, Forms, idp, post_to_acs,  # noqa: F401
                                     saml_post_form, submit_login)
import simplesamlphp
from simplesamlphp import AC_MFA, AC_PASSWORD

SESSION = "__Host-portcullis-session"
MAX_AGE = 4


@pytest.fixture(scope="module")
def sp(module_lab, idp):  # noqa: F811
    up = module_lab.upstream("web")
    port = closed_port()
    base = "http://localhost:%d" % port
    sites = [{"name": "app", "routes": [
        {"name": "admin", "match": {"path": ["/admin"]}, "upstream": "web", "auth": "saml",
         "step_up": {"authn_context": [AC_MFA], "comparison": "exact"}},
        {"name": "fresh", "match": {"path": ["/fresh"]}, "upstream": "web", "auth": "saml",
         "step_up": {"max_age": MAX_AGE}},
        {"name": "web", "upstream": "web", "auth": "saml"},
    ]}]
    key, cert = samltools.make_key(module_lab.workdir, "sp")  # faster than the proxy's own
    cfg = configs.config({"web": up}, sites,
                         listeners=[{"name": "http", "address": "127.0.0.1:%d" % port}],
                         saml={"idp_metadata": idp.metadata_url, "base_url": base,
                               "acs_path": ACS_PATH, "clock_skew": 5,
                               "sp_key": key, "sp_cert": cert,
                               "headers": {"X-Auth-User": "@nameid"}})
    p = module_lab.proxy(cfg)
    r = Browser(port).get("/saml/metadata")
    assert r.status == 200, r
    idp.set_sp_metadata(r.body, simplesamlphp.login_options())
    with open("%s/certs/session.key" % p.workdir) as f:
        skey = bytes.fromhex(f.read().split()[0])
    return {"port": port, "proxy": p, "up": up, "skey": skey, "metadata": r.body}


@pytest.fixture
def idp_options(idp, sp):  # noqa: F811
    def apply(options):
        idp.set_sp_metadata(None, options)
    try:
        yield apply
    finally:
        idp.set_sp_metadata(None, simplesamlphp.login_options())


def to_idp(b, path):
    """GET <path> as a navigation: must be sent to the IdP; returns the
    AuthnRequest XML and the redirect URL."""
    r = b.get(path, headers=[("Accept", "text/html")])
    assert r.status == 302, r
    loc = r.header("Location")
    xml, _, _ = samltools.decode_redirect(loc)
    return xml, loc


def through_idp(sp, ib, loc, expect_form=True):
    """Follow <loc> at the IdP (with the IdP browser <ib>), log in when its
    password form shows (it must when <expect_form>), return the auto-POST."""
    url, r = ib.open(loc)
    assert r.status == 200, r
    forms = [f for f in Forms(r.text()).forms if ("password", "password") in f["inputs"]]
    assert bool(forms) == expect_form, r.text()[:2000]
    if forms:
        _, r = submit_login(ib, url, forms[0], simplesamlphp.USER, simplesamlphp.PASSWORD)
    post = saml_post_form(r)
    assert post is not None, r.text()[:2000]
    return post


def signed_in(sp, idp, path="/insights"):  # noqa: F811
    """A browser signed in through SimpleSAMLphp on a route without step-up;
    returns (our Browser, the IdP's Browser)."""
    b, ib = Browser(sp["port"]), IdPBrowser(idp)
    xml, loc = to_idp(b, path)
    assert "RequestedAuthnContext" not in xml and 'ForceAuthn="true"' not in xml, xml
    r = post_to_acs(b, through_idp(sp, ib, loc))
    assert r.status == 303, (r, sp["proxy"].stderr()[-2000:])
    return b, ib


def test_old_session_passes_routes_without_step_up(sp, alive):
    # a cookie sealed before the login's class and instant were recorded
    t = now()
    b = Browser(sp["port"])
    b.cookies[SESSION] = seal(sp["skey"], "session", t, t + 3600, t, "bob")
    sp["up"].reset()
    assert b.get("/insights").status == 200
    assert sp["up"].snapshot()[-1].header_all("X-Auth-User") == ["bob"]
    # a step-up route sends it to the IdP, asking for the class, fresh
    xml, _ = to_idp(b, "/admin")
    assert 'ForceAuthn="true"' in xml
    assert re.search(r'<samlp:RequestedAuthnContext Comparison="exact">\s*'
                     r'<saml:AuthnContextClassRef>%s</saml:AuthnContextClassRef>' % AC_MFA, xml), xml
    # an API call is not redirected: 401 with the login URL
    r = b.get("/admin", headers=[("Accept", "application/json")])
    assert r.status == 401, r


def test_step_up_to_the_required_class(sp, idp, alive):  # noqa: F811
    b, ib = signed_in(sp, idp)
    sp["up"].reset()
    xml, loc = to_idp(b, "/admin")
    assert sp["up"].snapshot() == []
    assert 'ForceAuthn="true"' in xml and "RequestedAuthnContext" in xml
    # SimpleSAMLphp's session is alive, but ForceAuthn shows the form again;
    # its answer carries the class asked for
    post = through_idp(sp, ib, loc, expect_form=True)
    r = post_to_acs(b, post)
    assert r.status == 303, (r, sp["proxy"].stderr()[-2000:])
    assert r.header("Location") == "/admin"
    sp["up"].reset()
    assert b.get("/admin").status == 200
    assert b.get("/insights").status == 200
    assert len(sp["up"].snapshot()) == 2


def test_idp_ignoring_the_class_gets_one_403(sp, idp, idp_options, alive):  # noqa: F811
    # like Casdoor: one fixed class whatever is asked
    idp_options(simplesamlphp.login_options(answer=AC_PASSWORD))
    b, ib = signed_in(sp, idp)
    old = b.cookies[SESSION]
    xml, loc = to_idp(b, "/admin")
    r = post_to_acs(b, through_idp(sp, ib, loc))
    assert r.status == 403, r
    assert r.header("Location") is None
    assert "Stronger sign-in required" in r.text() and AC_MFA in r.text(), r.text()
    sp["proxy"].wait_stderr(r"saml: step-up not met by the IdP for alice \[ref %s\].*"
                            r"sites\[0\]\.routes\[0\]\.step_up: AuthnContextClassRef \"%s\" "
                            r"is not one of" % (re.escape(r.header("X-Request-ID")),
                                                re.escape(AC_PASSWORD)))
    # the session from before is kept and still good where no step-up is needed
    assert b.cookies[SESSION] == old
    assert b.get("/insights").status == 200


def test_max_age_forces_a_fresh_login(sp, idp, alive):  # noqa: F811
    b, ib = Browser(sp["port"]), IdPBrowser(idp)
    # no session: the first login already asks for fresh credentials
    xml, loc = to_idp(b, "/fresh")
    assert 'ForceAuthn="true"' in xml and "RequestedAuthnContext" not in xml
    assert post_to_acs(b, through_idp(sp, ib, loc)).status == 303
    assert b.get("/fresh").status == 200
    time.sleep(MAX_AGE + 1)
    # the session is fine elsewhere, too old for /fresh: back to the IdP,
    # whose session is alive but must ask for the password again
    assert b.get("/insights").status == 200
    xml, loc = to_idp(b, "/fresh")
    assert 'ForceAuthn="true"' in xml
    r = post_to_acs(b, through_idp(sp, ib, loc, expect_form=True))
    assert r.status == 303, (r, sp["proxy"].stderr()[-2000:])
    assert b.get("/fresh").status == 200


def test_old_authn_instant_gets_one_403(sp, idp, idp_options, alive):  # noqa: F811
    # an IdP that ignores ForceAuthn answers with its old login's instant
    idp_options(simplesamlphp.login_options(authn_instant_offset=-60))
    b, ib = Browser(sp["port"]), IdPBrowser(idp)
    _, loc = to_idp(b, "/fresh")
    r = post_to_acs(b, through_idp(sp, ib, loc))
    assert r.status == 403, r
    assert "Stronger sign-in required" in r.text()
    sp["proxy"].wait_stderr(r"saml: step-up not met .*\[ref %s\].*step_up: signed in 6\d s "
                            r"ago, more than max_age %d s" % (
                                re.escape(r.header("X-Request-ID")), MAX_AGE))
    assert SESSION not in b.cookies


def test_authn_instant_in_the_future_refused(sp, idp, idp_options, alive):  # noqa: F811
    idp_options(simplesamlphp.login_options(authn_instant_offset=3600))
    b, ib = Browser(sp["port"]), IdPBrowser(idp)
    _, loc = to_idp(b, "/insights")
    r = post_to_acs(b, through_idp(sp, ib, loc))
    assert r.status == 403, r
    sp["proxy"].wait_stderr(r"saml: login failed \[ref %s\].*AuthnStatement AuthnInstant: .* is "
                            r"in the future" % re.escape(r.header("X-Request-ID")))
    assert SESSION not in b.cookies


@pytest.mark.parametrize("route,message", [
    ({"auth": "saml", "step_up": {}},
     r"sites\[0\]\.routes\[0\]\.step_up: needs \"authn_context\" and/or \"max_age\""),
    ({"auth": "saml", "step_up": {"comparison": "minimum"}},
     r"sites\[0\]\.routes\[0\]\.step_up\.comparison: needs \"authn_context\""),
    ({"auth": "saml", "step_up": {"authn_context": [AC_MFA], "comparison": "better"}},
     r"sites\[0\]\.routes\[0\]\.step_up\.comparison"),
    ({"auth": "saml", "step_up": {"authn_context": ""}},
     r"sites\[0\]\.routes\[0\]\.step_up\.authn_context: .*not an AuthnContextClassRef"),
    ({"auth": "saml", "step_up": {"max_age": "soon"}},
     r"sites\[0\]\.routes\[0\]\.step_up\.max_age"),
    ({"step_up": {"max_age": 60}}, r"sites\[0\]\.routes\[0\]\.step_up: needs \"auth\": \"saml\""),
], ids=["empty", "comparison-alone", "comparison-value", "empty-class", "max-age-type",
        "not-saml"])
def test_config_check_names_the_json_path(idp, tmp_path, route, message):  # noqa: F811
    r = {"name": "web", "upstream": "web"}
    r.update(route)
    cfg = configs.config({"web": "127.0.0.1:9"}, [{"name": "app", "routes": [r]}],
                         listeners=[{"name": "http", "address": "127.0.0.1:%d" % closed_port()}],
                         saml={"idp_metadata": idp.metadata_file, "base_url": "http://localhost",
                               "certs_dir": str(tmp_path / "certs")})
    path = tmp_path / "check.json"
    path.write_text(json.dumps(cfg))
    res = run_binary(["-t", "-c", str(path)])
    assert res.returncode != 0, res
    assert re.search(message, res.stderr + res.stdout), res.stderr + res.stdout

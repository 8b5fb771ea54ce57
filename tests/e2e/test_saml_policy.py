"""Per-route identity policy ("require" on routes, sites and saml) against an
independent IdP: pysaml2 (tests/saml/pysaml2_idp.py) with a login form and
users of different groups.  A route's rules win over its site's, a site's over
saml.require; a refused user gets 403 naming the attribute and the rule's JSON
path, never the rule's values, with a way to sign in as someone else."""

import html
import os
import re
import subprocess
import urllib.parse

import pytest

import configs
from harness import request
from saml_common import ACS_PATH, Browser, closed_port

IDP_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "saml", "pysaml2_idp.py")
USERS = {
    # name: (email, roles)
    "alice": ("alice@example.com", "admin,member"),
    "bob": ("bob@example.com", "member"),
    "carol": ("carol@contractor.test", "member"),
    "root": ("root@contractor.test", ""),
}


@pytest.fixture(scope="module")
def idp(module_lab):
    work = module_lab.workdir
    sp_md = os.path.join(work, "sp-metadata.xml")
    args = ["/usr/bin/python3", IDP_SCRIPT]
    for name, (email, roles) in USERS.items():
        args += ["--form", "%s:pw-%s:%s:%s" % (name, name, email, roles)]
    proc = subprocess.Popen(args + [work, sp_md], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(work, "idp.log"), "wb"))
    try:
        line = proc.stdout.readline().decode()
        m = re.match(r"listening on (\d+)", line)
        assert m, "the pysaml2 IdP did not start: %r" % line
        yield {"port": int(m.group(1)), "sp_md": sp_md}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def sp(module_lab, idp):
    up = module_lab.upstream("web")
    port = closed_port()
    base = "http://localhost:%d" % port
    sites = [
        {"name": "posthog", "hosts": ["localhost"],
         # the site: company addresses only
         "require": {"attribute": "Email", "domain": "example.com"},
         "routes": [
             configs.route("capture", "web", path=["/e"]),
             # the route: admins, or the break-glass account
             {"name": "admin", "match": {"path": ["/admin"]}, "upstream": "web",
              "auth": "saml",
              "require": {"any_of": [{"attribute": "Roles", "contains": "admin"},
                                     {"nameid": "root"}]}},
             {"name": "web", "upstream": "web", "auth": "saml"},
         ]},
        # no rules of its own: saml.require applies
        {"name": "docs", "hosts": ["docs.localhost"], "routes": [
            {"name": "docs", "upstream": "web", "auth": "saml"}]},
    ]
    cfg = configs.config({"web": up}, sites,
                         listeners=[{"name": "http", "address": "127.0.0.1:%d" % port}],
                         saml={"idp_metadata": "http://127.0.0.1:%d/metadata" % idp["port"],
                               "base_url": base, "acs_path": ACS_PATH,
                               "headers": {"X-Auth-Email": "Email", "X-Auth-User": "@nameid"},
                               "require": [{"attribute": "Roles", "contains": "member"}]})
    p = module_lab.proxy(cfg)
    r = request(port, "GET", "/saml/metadata", host="localhost:%d" % port)
    assert r.status == 200
    with open(idp["sp_md"], "wb") as f:
        f.write(r.body)
    return {"port": port, "proxy": p, "up": up}


def sign_in(sp, idp, user, host=None, target="/"):
    """A whole login of <user> through the IdP's form; returns the browser."""
    b = Browser(sp["port"], host=host)
    login = b.start_login(target)
    u = urllib.parse.urlparse(login["location"])
    r = request(u.port, "GET", u.path + "?" + u.query, host=u.netloc)
    assert r.status == 200, r
    pending = html.unescape(re.search(r'name="request" value="([^"]*)"', r.text()).group(1))
    body = urllib.parse.urlencode({"username": user, "password": "pw-" + user,
                                   "request": pending}).encode()
    r = request(u.port, "POST", "/sso/login", host=u.netloc, body=body,
                headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 200, r
    fields = {k: html.unescape(v) for k, v in
              re.findall(r'name="([^"]+)" value="([^"]*)"', r.text())}
    r = b.get(ACS_PATH, method="POST", body=urllib.parse.urlencode(fields).encode(),
              headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 303, (r, sp["proxy"].stderr()[-2000:])
    return b


@pytest.mark.parametrize("user,admin,web,docs", [
    ("alice", 200, 200, 200),   # admin role, company mail, member
    ("bob", 403, 200, 200),     # member with company mail
    ("carol", 403, 403, 200),   # contractor mail: the site refuses, docs (saml.require) not
    ("root", 200, 403, 403),    # the break-glass NameID: /admin only
])
def test_route_over_site_over_global(sp, idp, alive, user, admin, web, docs):
    b = sign_in(sp, idp, user)
    assert b.get("/admin/settings").status == admin
    assert b.get("/insights").status == web
    d = Browser(sp["port"], host="docs.localhost:%d" % sp["port"])
    d.cookies = dict(b.cookies)
    assert d.get("/guide").status == docs


def test_refusal_names_attribute_and_path_not_values(sp, idp, alive):
    b = sign_in(sp, idp, "bob")
    r = b.get("/admin/settings")
    assert r.status == 403
    text = r.text()
    assert "bob" in text
    assert "<code>Roles or @nameid</code>" in text
    assert "<code>sites[0].routes[1].require.any_of</code>" in text
    assert "admin<" not in text.replace("/admin", "") and "root" not in text
    assert "Sign in as someone else" in text
    sp["proxy"].wait_stderr(r"access refused to bob for GET /admin/settings .*"
                            r"sites\[0\]\.routes\[1\]\.require\.any_of")
    # carol on the site: the site's rule, by its path
    c = sign_in(sp, idp, "carol")
    r = c.get("/insights")
    assert r.status == 403
    assert "<code>sites[0].require</code>" in r.text() and "example.com" not in r.text()
    # "sign in as someone else" asks the IdP for fresh credentials, back to the page
    href = re.search(r'href="([^"]*force=1)"', r.text()).group(1).replace("&amp;", "&")
    r = c.get(href[href.index("/saml/"):], headers=[("Accept", "text/html")])
    assert r.status == 302
    assert "SAMLRequest=" in r.header("Location")

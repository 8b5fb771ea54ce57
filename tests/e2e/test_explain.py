"""portcullis -t -c FILE --explain 'METHOD URL' against every shipped example
configuration (examples/*/portcullis.json and the Kubernetes ConfigMap's), for
each of its routes: the route, upstream, auth verdict and exit status it
reports are the configuration's; then a sample cross-checked against the
running binary with recording upstreams (same route, upstream, forwarded
path, status, and the headers it says are sent or dropped), and the usage
errors.  docs/explain.md."""

import json
import os
import re
import subprocess

import pytest

from configs import APP_DOMAIN, POSTHOG_DOMAIN, posthog_env, throwaway_idp_metadata
from harness import SOURCE_DIR, need, request, run_binary

EXAMPLES_DIR = os.path.join(SOURCE_DIR, "examples")
K8S_CONFIGMAP = os.path.join(EXAMPLES_DIR, "k8s-sidecar", "configmap.yaml")
SUBST = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
EXPLAIN_FORWARDED, EXPLAIN_REFUSED, EXPLAIN_ANSWERED = 0, 3, 4
WS_HEADERS = ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]


def subst(value, env):
    """A string of the config with its ${VAR:-default} as the binary reads it."""
    return SUBST.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", value)


def posthog_like_env(tmp_path, web="127.0.0.1:1"):
    env = {"PORTCULLIS_HTTP": "127.0.0.1:0", "PORTCULLIS_HTTPS": "127.0.0.1:0",
           "PORTCULLIS_ADMIN": "127.0.0.1:0", "TLS_MODE": "off",
           "POSTHOG_DOMAIN": POSTHOG_DOMAIN, "APP_DOMAIN": APP_DOMAIN,
           "SAML_IDP_METADATA": throwaway_idp_metadata(), "CERTS_DIR": str(tmp_path / "certs")}
    for var in ("POSTHOG_WEB", "POSTHOG_CAPTURE", "POSTHOG_REPLAY", "POSTHOG_FLAGS",
                "POSTHOG_LIVESTREAM", "POSTHOG_PLUGINS", "APP_UPSTREAM"):
        env[var] = web
    return env


def vm_posthog_env(tmp_path):
    env = posthog_like_env(tmp_path)
    env.update({"PRIVATE_CIDR": "127.0.0.0/8", "TEMPORAL_UI": "127.0.0.1:1",
                "TEMPORAL_UI_LISTEN": "127.0.0.1:0"})
    for name in ("TEMPORAL_GRPC", "MINIO_API", "MINIO_CONSOLE"):
        env[name] = "127.0.0.1:1"
        env[name + "_LISTEN"] = "127.0.0.1:0"
    return env


def forward_auth_env(tmp_path):
    return {"PORTCULLIS_LISTEN": "127.0.0.1:0", "APP_DOMAIN": APP_DOMAIN,
            "SAML_IDP_METADATA": throwaway_idp_metadata(), "CERTS_DIR": str(tmp_path / "certs"),
            "APP_UPSTREAM": "127.0.0.1:1"}


def vswitch_env(tmp_path):
    return {"GATEWAY_LISTEN": "127.0.0.1:0", "PRIVATE_CIDR": "127.0.0.0/8",
            "PORTCULLIS_ADMIN": "127.0.0.1:0", "GATEWAY_UPSTREAM": "127.0.0.1:1"}


def k8s_files(tmp_path):
    """The ConfigMap's configuration as a file, with the certificates, SAML
    keys and session key the Deployment hands it; returns (path, env)."""
    need("yaml", "python")
    need("openssl")
    import yaml
    sys_path = os.path.join(SOURCE_DIR, "tests", "saml")
    import sys
    sys.path.insert(0, sys_path)
    import samltools
    with open(K8S_CONFIGMAP) as f:
        cm = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "ConfigMap"][0]
    path = tmp_path / "k8s-portcullis.json"
    path.write_text(cm["data"]["portcullis.json"])
    tls_key, tls_cert = str(tmp_path / "tls.key"), str(tmp_path / "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", tls_key, "-out", tls_cert,
                    "-days", "30", "-subj", "/CN=" + POSTHOG_DOMAIN,
                    "-addext", "subjectAltName=DNS:" + POSTHOG_DOMAIN],
                   check=True, capture_output=True)
    sp_key, sp_cert = samltools.make_key(str(tmp_path), "saml-sp")
    env = {"PORTCULLIS_HTTPS": "127.0.0.1:0", "PORTCULLIS_ADMIN": "127.0.0.1:0",
           "STATE_DIR": str(tmp_path / "state"), "TLS_CERT": tls_cert, "TLS_KEY": tls_key,
           "SAML_IDP_METADATA": throwaway_idp_metadata(), "SAML_SP_KEY": sp_key,
           "SAML_SP_CERT": sp_cert, "PORTCULLIS_SESSION_KEYS": os.urandom(32).hex(),
           "POSTHOG_DOMAIN": POSTHOG_DOMAIN}
    return str(path), env


# Every shipped example: how to make its environment, and the listener (and
# its scheme) that serves sites bound to no listener.
EXAMPLES = {
    "posthog": (lambda tmp: (os.path.join(EXAMPLES_DIR, "posthog", "portcullis.json"),
                             posthog_like_env(tmp)), "http", "http"),
    "vm-posthog": (lambda tmp: (os.path.join(EXAMPLES_DIR, "vm-posthog", "portcullis.json"),
                                vm_posthog_env(tmp)), "http", "http"),
    "vswitch-gateway": (lambda tmp: (os.path.join(EXAMPLES_DIR, "vswitch-gateway",
                                                  "portcullis.json"), vswitch_env(tmp)),
                        "gateway", "http"),
    "k8s-sidecar": (k8s_files, "https", "https"),
    "forward-auth": (lambda tmp: (os.path.join(EXAMPLES_DIR, "forward-auth", "portcullis.json"),
                                  forward_auth_env(tmp)), "verify", "http"),
}


def explain(config, env, request_line, *args, cwd=None):
    """Run --explain --json; returns (exit status, document or None, stderr)."""
    r = run_binary(["-t", "-c", config, "--explain", request_line, "--json"] + list(args),
                   env=env)
    doc = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, doc, r.stderr


def step(doc, name):
    found = [s for s in doc["steps"] if s["step"] == name]
    assert found, "no %s step in %s" % (name, json.dumps(doc, indent=1))
    return found[0]


def sample(route):
    """(method, path) that the route's own matchers accept."""
    m = route.get("match", {})
    methods = m.get("methods") or ["GET"]
    if m.get("path"):
        path = m["path"][0].rstrip("/") + "/explain"
    elif m.get("path_exact"):
        path = m["path_exact"][0]
    elif m.get("path_prefix"):
        path = m["path_prefix"][0] + "explain"
    else:
        path = "/explain-catch-all"
    return methods[0], path


def cases(config_path, env, default_listener):
    """(site, route, listener name, host) for every route of the config."""
    with open(config_path) as f:
        cfg = json.load(f)
    for site in cfg["sites"]:
        hosts = [subst(h, env) for h in site.get("hosts", [])]
        listener = site["listeners"][0] if site.get("listeners") else default_listener
        for route in site["routes"]:
            yield site, route, listener, hosts[0] if hosts else "any-host.test"


def site_named(config_path, name):
    with open(config_path) as f:
        return [s for s in json.load(f)["sites"] if s["name"] == name][0]


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_explain_every_route_of_every_example(example, tmp_path):
    make, default_listener, scheme = EXAMPLES[example]
    config, env = make(tmp_path)
    r = run_binary(["-t", "-c", config], env=env)
    assert r.returncode == 0, r.stderr
    seen = 0
    for site, route, listener, host in cases(config, env, default_listener):
        method, path = sample(route)
        url = "%s://%s%s" % (scheme, host, path)
        status, doc, err = explain(config, env, "%s %s" % (method, url), "--listener", listener)
        assert doc is not None, err
        where = "%s: %s %s (%s)" % (example, method, url, route["name"])
        assert step(doc, "listener")["name"] == listener, where
        assert step(doc, "site")["name"] == site["name"], where
        got = step(doc, "route")
        if "site" in route:  # a hop: the other site's route acts
            assert got["via"] == route["name"], where
            target = site_named(config, route["site"])
            assert got["name"] in [r["name"] for r in target["routes"]], where
            continue_route = [r for r in target["routes"] if r["name"] == got["name"]][0]
        else:
            assert got["name"] == route["name"], where
            continue_route = route
        auth = subst(continue_route.get("auth", "none"), env)
        if auth == "saml":
            assert status == EXPLAIN_REFUSED, where
            assert step(doc, "auth")["verdict"] == "session_needed", where
            assert step(doc, "auth")["status"] == 302, where
            status, doc, err = explain(config, env, "%s %s" % (method, url), "--listener",
                                       listener, "--identity", "Email=alice@example.com",
                                       "--identity", "Roles=admin",  # forward-auth's /admin
                                       "--header", "X-Auth-Email: mallory@example.com")
            assert step(doc, "auth")["verdict"] == "allowed", where
            dropped = {h["name"]: h["why"] for h in step(doc, "headers")["dropped"]}
            assert "SAML gate" in dropped["X-Auth-Email"], where
            sent = {h["name"]: h for h in step(doc, "headers")["sent"]}
            assert sent["X-Auth-Email"]["value"] == "alice@example.com", where
        else:
            assert step(doc, "auth")["verdict"] == "open", where
        assert status == EXPLAIN_FORWARDED, (where, doc["outcome"])
        up = step(doc, "upstream")
        assert up["name"] == subst(continue_route["upstream"], env), where
        assert up["servers"], where
        sent = [h["name"] for h in step(doc, "headers")["sent"]]
        assert "X-Forwarded-For" in sent and "Host" in sent, where
        assert step(doc, "access")["verdict"] == "allowed", where
        seen += 1
    assert seen >= 1


def test_explain_covers_every_shipped_example():
    shipped = {d for d in os.listdir(EXAMPLES_DIR)
               if os.path.exists(os.path.join(EXAMPLES_DIR, d, "portcullis.json"))}
    shipped.add("k8s-sidecar")  # its configuration is in configmap.yaml
    assert shipped == set(EXAMPLES)


def test_explain_access_rules_and_listener_choice(tmp_path):
    config, env = EXAMPLES["vswitch-gateway"][0](tmp_path)
    status, doc, _ = explain(config, env, "GET http://10.1.1.1/x", "--listener", "gateway",
                             "--from", "203.0.113.9")
    assert status == EXPLAIN_REFUSED
    acc = step(doc, "access")
    assert acc["verdict"] == "denied" and acc["rule"].startswith("listeners[0].allow")
    assert acc["geoip"].startswith("not evaluated")
    assert doc["outcome"]["status"] == 403
    # by scheme and port: the example's defaults (GATEWAY_LISTEN unset: 10.1.1.1:80)
    env.pop("GATEWAY_LISTEN")
    env.pop("PRIVATE_CIDR")  # 10.1.1.0/24
    status, doc, _ = explain(config, env, "GET http://10.1.1.1/x", "--from", "10.1.1.7")
    assert status == EXPLAIN_FORWARDED and step(doc, "listener")["name"] == "gateway"
    status, doc, _ = explain(config, env, "GET https://10.1.1.1/x")
    assert status == EXPLAIN_REFUSED and step(doc, "listener")["verdict"] == "none"
    status, doc, _ = explain(config, env, "GET https://10.1.1.1/x", "--listener", "gateway")
    assert status == EXPLAIN_REFUSED and step(doc, "scheme")["verdict"] == "mismatch"


def test_explain_refusals_say_why(tmp_path):
    config, env = EXAMPLES["posthog"][0](tmp_path)
    base = ["--listener", "http"]
    status, doc, _ = explain(config, env, "GET http://%s/a/%%2F/b" % POSTHOG_DOMAIN, *base)
    assert status == EXPLAIN_REFUSED and doc["outcome"]["status"] == 400
    assert "encoded slash" in step(doc, "path")["detail"]
    status, doc, _ = explain(config, env, "GET http://%s/x/../../etc" % POSTHOG_DOMAIN, *base)
    assert status == EXPLAIN_REFUSED and doc["outcome"]["status"] == 400
    status, doc, _ = explain(config, env, "TRACE http://%s/" % POSTHOG_DOMAIN, *base)
    assert status == EXPLAIN_REFUSED and doc["outcome"]["status"] == 405
    # not a navigation: 401, not the login redirect
    status, doc, _ = explain(config, env, "POST http://%s/api/x" % POSTHOG_DOMAIN, *base)
    assert step(doc, "auth")["status"] == 401
    # a bearer token the route lets through, its cookie removed
    status, doc, _ = explain(config, env, "GET http://%s/api/x" % POSTHOG_DOMAIN, *base,
                             "--header", "Authorization: Bearer phx_abc", "--header",
                             "Cookie: sessionid=1")
    assert status == EXPLAIN_FORWARDED and step(doc, "auth")["verdict"] == "bearer"
    assert "Cookie" not in [h["name"] for h in step(doc, "headers")["sent"]]
    # the SP endpoints are answered by portcullis
    status, doc, _ = explain(config, env, "GET http://%s/saml/metadata" % POSTHOG_DOMAIN, *base)
    assert status == EXPLAIN_ANSWERED and step(doc, "auth")["verdict"] == "sp_endpoint"
    status, doc, _ = explain(config, env, "GET http://%s/complete/saml/" % POSTHOG_DOMAIN, *base)
    assert status == EXPLAIN_REFUSED and doc["outcome"]["status"] == 405
    # WebSocket: asked and allowed
    status, doc, _ = explain(config, env, "GET http://%s/livestream/events" % POSTHOG_DOMAIN,
                             *base, "--identity", "Email=a@example.com",
                             *[a for h in WS_HEADERS for a in ("--header", h)])
    assert status == EXPLAIN_FORWARDED and step(doc, "websocket")["verdict"] == "allowed"
    assert "Upgrade" in [h["name"] for h in step(doc, "headers")["sent"]]


def test_explain_text_and_usage_errors(tmp_path):
    config, env = EXAMPLES["posthog"][0](tmp_path)
    r = run_binary(["-t", "-c", config, "--explain", "GET http://%s/e/" % POSTHOG_DOMAIN,
                    "--listener", "http"], env=env)
    assert r.returncode == 0, r.stderr
    for word in ("listener", "path", "site", "route", "access", "rate_limit", "auth",
                 "upstream", "headers", "outcome"):
        assert re.search(r"^%s\s" % word, r.stdout, re.M), (word, r.stdout)
    assert "capture-event" in r.stdout and "forwarded (exit 0)" in r.stdout
    bad = [
        (["--explain", "GET /relative"], "must be absolute"),
        (["--explain", "GET"], "METHOD URL"),
        (["--explain", "get http://x/"], "upper-case"),
        (["--explain", "GET http://x/", "--from", "nowhere"], "--from nowhere"),
        (["--explain", "GET http://x/", "--listener", "nope"], "no listener has that name"),
        (["--explain", "GET http://x/", "--header", "no colon"], "--header"),
        (["--explain", "GET http://x/", "--identity", "novalue"], "--identity"),
        (["--json"], "go with --explain"),
        (["--explain", "GET http://x/", "--revoke", "user=a"], "do not go together"),
    ]
    for args, message in bad:
        r = run_binary(["-t", "-c", config] + args, env=env)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert r.stdout == "", args


def test_explain_matches_the_live_proxy(lab):
    """A sample of routes of the PostHog example, explained and then sent
    through the running binary to recording upstreams: same upstream, same
    forwarded path, same status; the headers explain says are sent arrive,
    those it says are dropped do not."""
    ups = {name: lab.upstream(name) for name in
           ("web", "capture", "replay", "flags", "livestream", "plugins", "app")}
    env = posthog_env(ups)
    env["CERTS_DIR"] = os.path.join(lab.workdir, "certs")
    config = os.path.join(EXAMPLES_DIR, "posthog", "portcullis.json")
    p = lab.proxy(config, env=env)
    port = p.ports["http"]
    by_server = {u.address: u for u in ups.values()}
    extra = ["X-Custom: 1", "X_Custom: 2", "Cookie: a=b", "X-Forwarded-For: 198.51.100.7",
             "X-Auth-Email: mallory@example.com", "Connection: X-Hop", "X-Hop: 1",
             "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
             "tracestate: vendor=1"]
    samples = [
        ("GET", APP_DOMAIN, "/ingest/e/?ip=1"),       # the site hop, strip_prefix
        ("POST", POSTHOG_DOMAIN, "/batch/"),
        ("GET", POSTHOG_DOMAIN, "/decide/?v=3"),
        ("GET", POSTHOG_DOMAIN, "/api/surveys"),      # path_exact with methods
        ("GET", APP_DOMAIN, "/dashboard"),
        ("GET", POSTHOG_DOMAIN, "/project/1"),        # saml: the login redirect
        ("POST", POSTHOG_DOMAIN, "/api/projects/"),   # saml, not a navigation: 401
        ("GET", POSTHOG_DOMAIN, "/a/%2F/b"),          # refused by the normalizer
        ("GET", POSTHOG_DOMAIN, "/static/../../x"),   # above the root
    ]
    for method, host, target in samples:
        args = ["--listener", "http"] + [a for h in extra for a in ("--header", h)]
        status, doc, err = explain(config, env, "%s http://%s%s" % (method, host, target), *args)
        assert doc is not None, err
        for u in ups.values():
            u.reset()
        resp = request(port, method, target, host=host,
                       headers=[tuple(h.split(": ", 1)) for h in extra],
                       body=b"{}" if method == "POST" else None)
        where = "%s %s%s" % (method, host, target)
        got = [r for u in ups.values() for r in u.snapshot()]
        if status == EXPLAIN_FORWARDED:
            assert resp.status == 200, (where, resp)
            assert len(got) == 1, where
            up = step(doc, "upstream")
            assert by_server[up["servers"][0]].snapshot() == got, where
            assert got[0].path == step(doc, "route")["forwarded_path"], where
            names = {n.lower() for n in got[0].header_names()}
            for h in step(doc, "headers")["sent"]:
                assert h["name"].lower() in names, (where, h)
            for h in step(doc, "headers")["dropped"]:
                if h["name"].lower() not in ("host", "x-forwarded-for", "x-auth-email",
                                             "connection", "traceparent"):
                    assert h["name"].lower() not in names, (where, h)
            assert got[0].header("X-Auth-Email") is None, where
            assert got[0].header("tracestate") == "vendor=1", where  # the trace continued
            assert "0af7651916cd43dd8448eb211c80319c" in got[0].header("traceparent"), where
        else:
            assert got == [], where
            assert resp.status == doc["outcome"]["status"], (where, resp, doc["outcome"])


def test_explain_builtin_answers(lab, tmp_path):
    """redirect_https and ACME HTTP-01 come before routing; the 308 is the
    running binary's too."""
    ups = {name: lab.upstream(name) for name in
           ("web", "capture", "replay", "flags", "livestream", "plugins", "app")}
    env = posthog_env(ups)
    env.update({"TLS_MODE": "local", "PORTCULLIS_HTTPS": "127.0.0.1:0",
                "CERTS_DIR": str(tmp_path / "certs")})
    config = os.path.join(EXAMPLES_DIR, "posthog", "portcullis.json")
    url = "http://%s/project/1" % POSTHOG_DOMAIN
    status, doc, err = explain(config, env, "GET " + url, "--listener", "http")
    assert status == EXPLAIN_ANSWERED, err
    assert step(doc, "builtin")["verdict"] == "redirect_https"
    assert doc["outcome"]["status"] == 308
    p = lab.proxy(config, env=env)
    resp = request(p.ports["http"], "GET", "/project/1", host=POSTHOG_DOMAIN)
    assert resp.status == 308
    assert [r for u in ups.values() for r in u.snapshot()] == []
    acme = dict(env, TLS_MODE="acme", ACME_DIRECTORY="https://127.0.0.1:1/dir")
    status, doc, err = explain(config, acme, "GET http://%s/.well-known/acme-challenge/t"
                               % POSTHOG_DOMAIN, "--listener", "http")
    assert status == EXPLAIN_ANSWERED, err
    assert step(doc, "builtin")["verdict"] == "acme"


def test_explain_geoip_and_rate_limit(lab, tmp_path):
    """With a GeoIP database the country is evaluated (and its header set by
    the proxy, the client's copy dropped); the rate block that applies is
    named; the refusal is the running binary's."""
    from configs import config
    from test_access_http import write_mmdb
    db = tmp_path / "country.mmdb"
    write_mmdb(db, [("127.0.0.5/32", "DE", 64500), ("127.0.0.6/32", "FR", 64501)])
    web = lab.upstream("web")
    cfg = config({"web": web}, [{"name": "main", "default": True, "routes": [
        {"name": "eu", "upstream": "web",
         "access": {"countries_allow": ["DE"], "rate": {"per_second": 5, "burst": 10}}}]}],
        geoip={"database": str(db), "country_header": "X-Client-Country"})
    path = tmp_path / "geo.json"
    path.write_text(json.dumps(cfg))
    base = ["--listener", "http", "--header", "X-Client-Country: US"]
    status, doc, err = explain(str(path), {}, "GET http://any.test/x", *base, "--from", "127.0.0.5")
    assert status == EXPLAIN_FORWARDED, err
    assert step(doc, "access")["country"] == "DE"
    assert step(doc, "rate_limit")["limits"][0]["rule"] == "sites[0].routes[0].access.rate"
    assert step(doc, "rate_limit")["limits"][0]["burst"] == 10
    sent = [(h["name"], h["value"], h["from"]) for h in step(doc, "headers")["sent"]]
    assert ("X-Client-Country", "DE", "proxy") in sent
    assert "X-Client-Country" in [h["name"] for h in step(doc, "headers")["dropped"]]
    status, doc, err = explain(str(path), {}, "GET http://any.test/x", *base, "--from", "127.0.0.6")
    assert status == EXPLAIN_REFUSED and doc["outcome"]["status"] == 403
    assert step(doc, "access")["rule"] == "sites[0].routes[0].access"
    p = lab.proxy(cfg)
    assert request(p.port, "GET", "/x", source="127.0.0.6").status == 403
    assert request(p.port, "GET", "/x", source="127.0.0.5").status == 200
    assert web.snapshot()[-1].header_all("X-Client-Country") == ["DE"]


def policy_config(tmp_path, upstream):
    """docs/saml.md's per-route rules example, with a session key file."""
    key_file = str(tmp_path / "session.key")
    cfg = {
        "listeners": [{"name": "http", "address": "127.0.0.1:0"}],
        "admin": {"address": "127.0.0.1:0"},
        "upstreams": {"web": {"servers": [upstream]}, "capture": {"servers": [upstream]}},
        "saml": {"idp_metadata": throwaway_idp_metadata(), "base_url": "https://" + POSTHOG_DOMAIN,
                 "acs_path": "/complete/saml/", "certs_dir": str(tmp_path / "certs"),
                 "session_key_file": key_file, "headers": {"X-Auth-Email": "Email"},
                 "identity_assertion": {"lifetime": 60}},
        "sites": [{
            "name": "posthog", "hosts": [POSTHOG_DOMAIN],
            "require": {"attribute": "Email", "domain": "example.com"},
            "identity_assertion": {"audience": "posthog-web"},
            "routes": [
                {"name": "capture", "drop_cookies": True, "match": {"path": ["/e", "/batch"]},
                 "upstream": "capture"},
                {"name": "admin", "match": {"path": ["/admin", "/instance"]}, "upstream": "web",
                 "auth": "saml",
                 "step_up": {"authn_context": [
                     "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"], "max_age": "15m"},
                 "require": {"any_of": [{"attribute": "Roles", "contains": "posthog-admin"},
                                        {"nameid": "breakglass"}]}},
                {"name": "api", "match": {"path": ["/api"]}, "upstream": "web", "auth": "saml",
                 "allow_bearer": ["phx_", "phs_"], "identity_assertion": False},
                {"name": "web", "upstream": "web", "auth": "saml"}]}]}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(cfg))
    return str(path), cfg, key_file


def test_explain_saml_rules_match_the_live_403(lab, tmp_path):
    from configs import posthog_session_cookie, write_session_key
    web = lab.upstream("web")
    path, cfg, key_file = policy_config(tmp_path, web.address)
    key = write_session_key(key_file)
    url = "http://%s" % POSTHOG_DOMAIN
    base = ["--listener", "http"]
    status, doc, err = explain(path, {}, "GET %s/admin/x" % url, *base,
                               "--identity", "Email=alice@example.com")
    assert status == EXPLAIN_REFUSED, err
    auth = step(doc, "auth")
    assert auth["verdict"] == "denied" and auth["status"] == 403
    assert auth["rule"].startswith("sites[0].routes[1].require")
    assert "Roles" in auth["attribute"]
    status, doc, _ = explain(path, {}, "GET %s/admin/x" % url, *base, "--identity",
                             "Email=alice@example.com", "--identity", "Roles=posthog-admin")
    assert status == EXPLAIN_FORWARDED
    assert step(doc, "step_up")["rule"].startswith("sites[0].routes[1].step_up")
    sent = {h["name"]: h for h in step(doc, "headers")["sent"]}
    assert "posthog-web" in sent["X-Portcullis-Assertion"]["value"]
    assert sent["X-Portcullis-Assertion"]["from"] == "saml identity"
    status, doc, _ = explain(path, {}, "GET %s/api/x" % url, *base, "--identity",
                             "Email=alice@example.com")
    assert status == EXPLAIN_FORWARDED
    assert "X-Portcullis-Assertion" not in [h["name"] for h in step(doc, "headers")["sent"]]
    status, doc, _ = explain(path, {}, "GET %s/home" % url, *base, "--identity",
                             "Email=bob@other.org")
    denied = step(doc, "auth")
    assert status == EXPLAIN_REFUSED and denied["rule"].startswith("sites[0].require")

    # the running binary: the same verdicts, its 403 page names the same rule
    p = lab.proxy(path)
    bob = posthog_session_cookie(key, email="bob@other.org", name_id="bob")
    r = request(p.port, "GET", "/home", host=POSTHOG_DOMAIN, headers=[("Cookie", bob)])
    assert r.status == 403 and denied["rule"] in r.body.decode()
    alice = posthog_session_cookie(key, email="alice@example.com", name_id="alice")
    r = request(p.port, "GET", "/home", host=POSTHOG_DOMAIN,
                headers=[("Cookie", alice + "; theme=dark")])
    assert r.status == 200
    assert web.snapshot()[-1].header("X-Portcullis-Assertion")
    assert web.snapshot()[-1].header("X-Auth-Email") == "alice@example.com"
    # our session cookie never reaches the upstream; the others do
    status, doc, _ = explain(path, {}, "GET %s/home" % url, *base, "--identity",
                             "Email=alice@example.com", "--header",
                             "Cookie: " + alice + "; theme=dark")
    sent = {h["name"]: h["value"] for h in step(doc, "headers")["sent"]}
    assert sent["Cookie"] == "theme=dark" == web.snapshot()[-1].header("Cookie")


def test_explain_trusted_proxy_client(lab, tmp_path):
    """--from a trusted proxy: the client is read from X-Forwarded-For as the
    running binary reads it; the access rules apply to that client and the
    X-Forwarded-For sent upstream is the same."""
    from configs import config
    web = lab.upstream("web")
    cfg = config({"web": web}, [{"name": "main", "default": True,
                                 "access": {"allow": ["203.0.113.0/24"]},
                                 "routes": [{"name": "all", "upstream": "web"}]}],
                 trusted_proxies=["127.0.0.0/8"])
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps(cfg))
    p = lab.proxy(cfg)
    for xff, want in (("203.0.113.9", EXPLAIN_FORWARDED), ("198.51.100.1", EXPLAIN_REFUSED),
                      ("203.0.113.9, 127.0.0.3", EXPLAIN_FORWARDED)):
        status, doc, err = explain(str(path), {}, "GET http://any.test/x", "--listener", "http",
                                   "--from", "127.0.0.1", "--header", "X-Forwarded-For: " + xff)
        assert status == want, (xff, err, doc)
        assert step(doc, "client")["verdict"] == "trusted_peer"
        assert step(doc, "client")["address"] == xff.split(",")[0]
        web.reset()
        r = request(p.port, "GET", "/x", host="any.test", headers=[("X-Forwarded-For", xff)])
        if want == EXPLAIN_FORWARDED:
            assert r.status == 200
            sent = {h["name"]: h["value"] for h in step(doc, "headers")["sent"]}
            assert web.snapshot()[0].header("X-Forwarded-For") == sent["X-Forwarded-For"]
            assert sent["X-Forwarded-For"] == xff + ", 127.0.0.1"
        else:
            assert r.status == 403 and web.snapshot() == []
    status, doc, _ = explain(str(path), {}, "GET http://any.test/x", "--listener", "http",
                             "--from", "198.51.100.1", "--header", "X-Forwarded-For: 203.0.113.9")
    assert status == EXPLAIN_REFUSED and step(doc, "client")["verdict"] == "direct"

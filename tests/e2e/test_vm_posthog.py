"""examples/vm-posthog, the seed VM as one config: Temporal UI as an HTTP
site bound to its own listener (:8081), allowed only from PRIVATE_CIDR,
tried from network namespaces inside ("vs", 10.1.1.0/24: 200) and outside
("out", 203.0.113.0/24: the 403 page); that listener over HTTPS with its
SAML login when TEMPORAL_UI_TLS / TEMPORAL_UI_AUTH say so; and /ingest on
the app domain through an HTTPS upstream (nginx with a CA made here); and
the SAML sign-in for Temporal UI in Chromium, run inside the private network
namespace: signed in on the PostHog name at :443, the same session opens
https://POSTHOG_DOMAIN:8081/."""

import http.client
import json
import os
import ssl
import socket
import urllib.request

from configs import APP_DOMAIN, POSTHOG_DOMAIN, throwaway_idp_metadata
from harness import SOURCE_DIR, request, wait_until
from test_access_tcp import Netns, netns  # noqa: F401  (the fixture)
from test_saml_browser import (EMAIL, PASSWORD, USER, echo_of, home_trusting,  # noqa: F401
                               node, pysaml2_idp, run_browser, step)
from test_upstream_tls import nginx_log, read_to_eof, tls_upstream  # noqa: F401  (the fixture)

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "vm-posthog", "portcullis.json")


def vm_env(lab, tmp_path, **extra):
    web = lab.upstream("web")
    temporal = lab.upstream("temporal-ui")
    env = {"PORTCULLIS_HTTP": "127.0.0.1:0", "PORTCULLIS_HTTPS": "127.0.0.1:0",
           "PORTCULLIS_ADMIN": "127.0.0.1:0", "TLS_MODE": "off",
           "POSTHOG_DOMAIN": POSTHOG_DOMAIN, "APP_DOMAIN": APP_DOMAIN,
           "SAML_IDP_METADATA": throwaway_idp_metadata(), "CERTS_DIR": str(tmp_path / "certs"),
           "PRIVATE_CIDR": "10.1.1.0/24", "TEMPORAL_UI": temporal.address,
           "TEMPORAL_UI_LISTEN": "0.0.0.0:0"}
    for var in ("POSTHOG_WEB", "POSTHOG_CAPTURE", "POSTHOG_REPLAY", "POSTHOG_FLAGS",
                "POSTHOG_LIVESTREAM", "POSTHOG_PLUGINS", "APP_UPSTREAM"):
        env[var] = web.address
    for name in ("TEMPORAL_GRPC", "MINIO_API", "MINIO_CONSOLE"):
        env[name] = "127.0.0.1:1"
        env[name + "_LISTEN"] = "127.0.0.1:0"
    env.update(extra)
    return env, web, temporal


GET = """
import urllib.request, urllib.error
try:
    r = urllib.request.urlopen(urllib.request.Request('http://%s:%d%s',
                               headers={'Host': '%s'}), timeout=10)
    print(r.status, r.read()[:200])
except urllib.error.HTTPError as e:
    print(e.code, e.read()[:200])
"""


def test_temporal_ui_private_only_from_namespaces(lab, tmp_path, netns):  # noqa: F811
    env, web, temporal = vm_env(lab, tmp_path)
    p = lab.proxy(EXAMPLE, env=env)
    port = p.ports["temporal-ui"]
    out = netns.run("vs", GET % ("10.1.1.1", port, "/namespaces/default", POSTHOG_DOMAIN))
    assert out.startswith("200 "), out
    # Any host on :8081 is Temporal UI, never the PostHog routes (/e is capture there).
    out = netns.run("vs", GET % ("10.1.1.1", port, "/e", "10.1.1.1:%d" % port))
    assert out.startswith("200 "), out
    assert [r.path for r in temporal.snapshot()] == ["/namespaces/default", "/e"]
    assert web.snapshot() == []

    out = netns.run("out", GET % ("203.0.113.1", port, "/namespaces/default", POSTHOG_DOMAIN))
    assert out.startswith("403 "), out
    assert "Forbidden" in out or "forbidden" in out or "refused" in out, out
    assert len(temporal.snapshot()) == 2
    wait_until(lambda: "access refused for 203.0.113.2" in p.stderr(), what="refusal logged")


def test_temporal_ui_https_with_saml(lab, tmp_path):
    env, web, temporal = vm_env(lab, tmp_path, TLS_MODE="local", PRIVATE_CIDR="127.0.0.1/32",
                                TEMPORAL_UI_LISTEN="127.0.0.1:0", TEMPORAL_UI_TLS="true",
                                TEMPORAL_UI_AUTH="saml")
    p = lab.proxy(EXAMPLE, env=env)
    port = p.ports["temporal-ui"]
    ctx = ssl.create_default_context(cafile=os.path.join(env["CERTS_DIR"], "local-ca", "ca.crt"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=POSTHOG_DOMAIN) as s:
            s.sendall(("GET /namespaces HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/html\r\n"
                       "Sec-Fetch-Mode: navigate\r\nConnection: close\r\n\r\n"
                       % (POSTHOG_DOMAIN, port)).encode())
            data = read_to_eof(s)
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    # Not signed in: off to the IdP, nothing reached Temporal UI.
    assert head.startswith("HTTP/1.1 302"), head
    assert "Location: https://idp.invalid/sso" in head, head
    assert temporal.snapshot() == []


def test_ingest_through_https_upstream(lab, tmp_path, tls_upstream):  # noqa: F811
    d, ports = tls_upstream
    env, web, temporal = vm_env(lab, tmp_path, POSTHOG_INGEST_HOST="127.0.0.1",
                                POSTHOG_INGEST_PORT=str(ports["plain"]),
                                POSTHOG_INGEST_NAME="upstream.test",
                                POSTHOG_INGEST_CA=os.path.join(d, "ca.pem"),
                                TEMPORAL_UI_LISTEN="127.0.0.1:0")
    p = lab.proxy(EXAMPLE, env=env)
    for path in ("/ingest/e/?ip=1", "/ingest/flags"):
        r = request(p.ports["http"], "POST" if "/e/" in path else "GET", path, host=APP_DOMAIN,
                    body=b"{}" if "/e/" in path else None,
                    headers=[("Cookie", "session=app")])
        assert r.status == 200 and r.body == b"tls ok sni=upstream.test\n", (path, r.body)
    lines = nginx_log(d, ports["plain"])
    assert [l[-1] for l in lines] == ["/e/?ip=1", "/flags"], lines
    assert web.snapshot() == []


TEMPORAL_TARGET = "/namespaces/default/workflows?q=1"


def test_temporal_ui_saml_in_chromium(lab, tmp_path, netns, node):  # noqa: F811
    """The README's flow in Chromium from inside the private network ("vs"):
    the example listens on its real ports (:443, :8081) at the host side of
    that network, 10.1.1.1, which Chromium reaches as POSTHOG_DOMAIN
    (--host-resolver-rules; the pysaml2 IdP listens there too).  Signed in
    on the PostHog UI, the same context opens :8081 over HTTPS and gets
    Temporal UI with the session's identity; a fresh context opening :8081
    is sent to the IdP and nothing reaches Temporal UI; signing in from there
    ends on the PostHog name at :443 (the ACS is on base_url), and :8081 then
    opens with that session."""
    host_ip = "10.1.1.1"
    with pysaml2_idp(str(tmp_path / "idp"), host=host_ip) as idp:
        # Metadata over plain http is fetched by the proxy from loopback only.
        idp_md = str(tmp_path / "idp-metadata.xml")
        with urllib.request.urlopen(idp["base"] + "/metadata", timeout=10) as r, \
                open(idp_md, "wb") as f:
            f.write(r.read())
        env, web, temporal = vm_env(lab, tmp_path, TLS_MODE="local",
                                    PORTCULLIS_HTTPS=host_ip + ":443",
                                    TEMPORAL_UI_LISTEN=host_ip + ":8081",
                                    TEMPORAL_UI_TLS="true", TEMPORAL_UI_AUTH="saml",
                                    SAML_IDP_METADATA=idp_md)
        p = lab.proxy(EXAMPLE, env=env)
        assert p.ports["https"] == 443 and p.ports["temporal-ui"] == 8081, p.ports
        ca = os.path.join(env["CERTS_DIR"], "local-ca", "ca.crt")
        ctx = ssl.create_default_context(cafile=ca)
        conn = http.client.HTTPSConnection(host_ip, 443, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection((host_ip, 443), timeout=10),
                                    server_hostname=POSTHOG_DOMAIN)
        conn.request("GET", "/saml/metadata", headers={"Host": POSTHOG_DOMAIN})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        assert r.status == 200 and b"SPSSODescriptor" in body, (r.status, body[:500])
        assert b"https://%s/complete/saml/" % POSTHOG_DOMAIN.encode() in body, body[:2000]
        with open(idp["sp_md"], "wb") as f:
            f.write(body)

        home = home_trusting(str(tmp_path / "browser-home"), ca)
        posthog = "https://%s/insights/1?x=1" % POSTHOG_DOMAIN
        temporal_url = "https://%s:8081%s" % (POSTHOG_DOMAIN, TEMPORAL_TARGET)
        out = run_browser(node, home, {
            "args": ["--host-resolver-rules=MAP %s %s" % (POSTHOG_DOMAIN, host_ip)],
            "runs": [{"url": posthog, "username": USER, "password": PASSWORD,
                      "then": [temporal_url]},
                     {"url": temporal_url, "signin": False},
                     {"url": temporal_url, "username": USER, "password": PASSWORD,
                      "ends": "https://%s%s" % (POSTHOG_DOMAIN, TEMPORAL_TARGET),
                      "then": [temporal_url]}]},
            prefix=["ip", "netns", "exec", netns.names["vs"]])

    signed, fresh, from_ui = out["runs"]
    dump = json.dumps(out, indent=1)[:8000] + "\nproxy stderr:\n" + p.stderr()[-3000:]
    assert signed["ok"] and signed["outcome"] == "signed-in", dump
    assert step(signed, "landing")["url"].startswith(idp["base"] + "/sso/redirect?"), dump
    assert echo_of(step(signed, "signed-in")["text"])["upstream"] == "web", dump
    # Temporal UI on :8081 over HTTPS, with the session of the sign-in on :443.
    [then] = signed["then"]
    assert then["url"] == temporal_url and then["status"] == 200, dump
    doc = echo_of(then["text"])
    assert doc["upstream"] == "temporal-ui", doc
    assert doc["target"] == TEMPORAL_TARGET, doc
    page_headers = {k.lower(): v for k, v in doc["headers"]}
    assert page_headers.get("x-auth-email") == EMAIL, doc
    assert then["protocol"] == "h2", dump
    # No session: sent to the IdP, not served.
    assert fresh["ok"] and fresh["outcome"] == "at-idp", dump
    first = fresh["documents"][0]
    assert (first["url"], first["status"]) == (temporal_url, 302), dump
    assert step(fresh, "landing")["url"].startswith(idp["base"] + "/sso/redirect?"), dump
    # Signing in from :8081: the IdP, then back to the same path on :443 (the
    # PostHog UI), and :8081 opens with that session.
    dump = json.dumps(from_ui, indent=1)[:8000] + "\nproxy stderr:\n" + p.stderr()[-3000:]
    assert from_ui["ok"] and from_ui["outcome"] == "signed-in", dump
    assert (from_ui["documents"][0]["url"], from_ui["documents"][0]["status"]) == (
        temporal_url, 302), dump
    back = step(from_ui, "signed-in")
    assert back["url"] == "https://%s%s" % (POSTHOG_DOMAIN, TEMPORAL_TARGET), dump
    assert echo_of(back["text"])["upstream"] == "web", dump
    [then] = from_ui["then"]
    assert then["status"] == 200 and echo_of(then["text"])["upstream"] == "temporal-ui", dump
    # Temporal UI got the two signed-in pages only (the runs go one after the
    # other), each with the identity and without the session cookie.
    seen = [r for r in temporal.snapshot() if r.path != "/favicon.ico"]
    assert [r.target for r in seen] == [TEMPORAL_TARGET] * 2, seen
    for r in seen:
        assert r.header_all("X-Auth-Email") == [EMAIL], r.headers
        assert "portcullis" not in (r.header("Cookie") or ""), r.headers
    log = [(e["route"], e["status"]) for e in p.access_log()
           if e.get("path") == "/namespaces/default/workflows"]
    ui, ph = "temporal-ui", "web"
    assert log == [(ui, 200), (ui, 302), (ui, 302), (ph, 200), (ui, 200)], log
    assert {(e["client"], e["protocol"]) for e in p.access_log()
            if e.get("path") == "/namespaces/default/workflows"} == {("10.1.1.2", "HTTP/2.0")}

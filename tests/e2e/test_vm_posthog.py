"""examples/vm-posthog, the seed VM as one config: Temporal UI as an HTTP
site bound to its own listener (:8081), allowed only from PRIVATE_CIDR,
tried from network namespaces inside ("vs", 10.1.1.0/24: 200) and outside
("out", 203.0.113.0/24: the 403 page); that listener over HTTPS with its
SAML login when TEMPORAL_UI_TLS / TEMPORAL_UI_AUTH say so; and /ingest on
the app domain through an HTTPS upstream (nginx with a CA made here)."""

import os
import ssl
import socket

from configs import APP_DOMAIN, POSTHOG_DOMAIN, throwaway_idp_metadata
from harness import SOURCE_DIR, request, wait_until
from test_access_tcp import Netns, netns  # noqa: F401  (the fixture)
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

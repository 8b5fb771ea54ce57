"""The status page of the admin listener (docs/operations.md#status-page),
with the real binary: one certificate from files on a TLS listener, an
upstream that answers (one request held in flight while the page is read)
and one whose server is down, and refusals by an access rule.

Read twice: over plain HTTP (urllib: headers, HTML-escaping, every section's
content), and in headless Chromium (Debian's /usr/bin/chromium driven by
playwright-core, tests/e2e/browser/page.mjs): the same content as the
browser renders it, the inline style applied under the page's
Content-Security-Policy, no script, and no request to any other origin.
The browser's full-page screenshot is kept as a test artifact:
<build dir>/test-output/status_page/status-page.png (next to the binary
under test, e.g. build/test-output/...).

Where it is served: on a loopback admin address by default; "admin.status_page":
false turns it off (404 saying why); -t says whether it is served, and that
a non-loopback admin address needs "admin.status_page": true.
"""

import json
import os
import re
import subprocess
import threading
import urllib.error
import urllib.request
import uuid

import pytest

from configs import config, route
from chromium import BROWSER_DIR, browser_node, chromium_path
from harness import BINARY, Slow, closed_port, request, run_binary, send_raw

HOST = "status.test"
FILES = "files.test"
SITE_NAME = "main <b>&"          # shows that names are escaped
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(BINARY)), "test-output", "status_page")
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")


class Env:
    pass


def make_cert(d, stem, cn, days=30):
    cert, key = os.path.join(str(d), stem + ".crt"), os.path.join(str(d), stem + ".key")
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", str(days), "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:" + cn, "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.dir = module_lab.workdir
    e.web = module_lab.upstream("web")
    e.slow = module_lab.upstream("slow")
    e.slow.reset(Slow(4))
    e.gone_addr = "127.0.0.1:%d" % closed_port()
    cert, key = make_cert(e.dir, "files", FILES)
    cfg = config(
        {"web": e.web, "slow": e.slow,
         "gone": (e.gone_addr, {"max_fails": 1, "fail_timeout": 600})},
        [{"name": SITE_NAME, "hosts": [HOST, FILES], "default": True, "routes": [
            route("private", "web", path=["/private"], access={"deny": ["127.0.0.0/8"]}),
            route("gone", "gone", path=["/gone"]),
            route("slow", "slow", path=["/slow"]),
            route("web", "web"),
        ]}],
        listeners=[{"name": "http", "address": "127.0.0.1:0"},
                   {"name": "https", "address": "127.0.0.1:0", "tls": True}],
        tls={"certs_dir": os.path.join(e.dir, "certs"),
             "certificates": [{"cert": cert, "key": key, "names": [FILES]}]},
    )
    e.proxy = module_lab.proxy(cfg, name="status")
    http = e.proxy.ports["http"]
    # The server of "gone" fails once: down for fail_timeout.
    assert request(http, "GET", "/gone/x", host=HOST).status == 502
    # Refusals by the access rule; the second one's path needs escaping.
    e.refused = "/private/r-" + uuid.uuid4().hex
    assert request(http, "GET", e.refused, host=HOST).status == 403
    answer = send_raw(http, b'GET /private/<img>"x HTTP/1.1\r\nHost: ' + HOST.encode() +
                      b"\r\nConnection: close\r\n\r\n")
    assert answer.status == 403, answer
    assert request(http, "GET", "/ok", host=HOST).status == 200
    # One exchange in flight on "slow" while the page is read.
    e.held = threading.Thread(target=request, args=(http, "GET", "/slow/held"),
                              kwargs={"host": HOST, "timeout": 30}, daemon=True)
    e.held.start()
    e.slow.wait_for_count(1)
    e.url = "http://127.0.0.1:%d/" % e.proxy.admin_port
    yield e
    e.held.join(30)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def check_content(env, text):
    """What the page must say, as HTML text or as the browser's rendering."""
    for want in ("Configuration", "generation", "serving",
                 "Listeners", "http", "https", "bound to port %d" % env.proxy.ports["http"],
                 "Sites and routes", "private", "gone", "slow", "upstream web",
                 "Upstreams", env.web.address, env.slow.address, env.gone_addr,
                 "Certificates", FILES, "file",
                 "Recent refusals", env.refused, "sites[0].routes[0].access.deny[0]"):
        assert want in text, "%r not on the page" % want


def test_page_over_http(env, alive):
    status, headers, html = get(env.url)
    assert status == 200, html
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    check_content(env, html)
    # Escaped: the site's name and the refused path never appear raw.
    assert "main &lt;b&gt;&amp;" in html and SITE_NAME not in html
    assert "/private/&lt;img&gt;&quot;x" in html and "<img" not in html
    assert "<script" not in html.lower() and "http://" not in html.split("</style>")[0]
    # Health and in-flight counts, by row.
    upstreams = html.split('id="upstreams"')[1].split("</section>")[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", upstreams):
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", row)
        if cells:
            rows[cells[1][1]] = cells
    assert rows[env.gone_addr][2][0] == ' class="down"', rows[env.gone_addr]
    assert rows[env.gone_addr][3][1] == "1", "one failure"
    assert rows[env.web.address][2] == (' class="up"', "up")
    slow = [c[1] for c in rows[env.slow.address]]
    assert slow[3:5] == ["0", "1"], "failures 0, one in flight: %r" % slow
    # Newest refusal first, with its status and client.
    refusals = html.split('id="refusals"')[1]
    assert refusals.index("&lt;img&gt;") < refusals.index(env.refused)
    assert "<td>403</td><td>127.0.0.1</td>" in refusals


def test_head_and_other_paths(env, alive):
    req = urllib.request.Request(env.url, method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and resp.read() == b""
    status, _, body = get(env.url + "nothing-here")
    assert status == 404 and "/ (status)" in body


@pytest.fixture(scope="module")
def node():
    return browser_node()


def test_page_in_chromium(env, node, alive):
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "status-page.png")
    if os.path.exists(shot):
        os.unlink(shot)
    home = os.path.join(env.dir, "browser-home")
    os.makedirs(home, exist_ok=True)
    opts = {"url": env.url, "screenshot": shot,
            "styles": {"td.down": "color", "td.up": "color", "h1": "font-size"}}
    res = subprocess.run([node, os.path.join(BROWSER_DIR, "page.mjs"), json.dumps(opts)],
                         capture_output=True, text=True, timeout=120, cwd=BROWSER_DIR,
                         env=dict(os.environ, HOME=home, CHROMIUM=chromium_path(),
                                  XDG_CONFIG_HOME=os.path.join(home, ".config"),
                                  XDG_CACHE_HOME=os.path.join(home, ".cache")))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == 200
    assert out["headers"]["content-security-policy"] == CSP
    assert out["title"] == "Portcullis status"
    check_content(env, out["text"])
    assert SITE_NAME in out["text"], "the escaped name renders as written"
    assert '/private/<img>"x' in out["text"]
    assert out["sections"] == ["generation", "listeners", "sites", "upstreams", "certificates",
                               "refusals"]
    assert out["scripts"] == 0
    # The inline style sheet applied (the CSP allows it, and nothing else).
    assert out["styles"]["td.down"] == "rgb(179, 45, 46)"
    assert out["styles"]["td.up"] == "rgb(17, 115, 59)"
    assert out["styles"]["h1"] == "21px"
    assert not [m for m in out["console"] if "Content Security Policy" in m], out["console"]
    # No request left for another origin (a favicon from the same one is fine).
    origin = env.url.rstrip("/")
    others = [r for r in out["requests"] if not r["url"].startswith(origin + "/")]
    assert others == [], others
    assert out["requests"][0]["url"] == env.url
    assert not out["failed"], out["failed"]
    assert os.path.getsize(shot) > 10000, "screenshot %s" % shot


def test_status_page_off(lab, tmp_path):
    up = lab.upstream("web")
    cfg = config({"web": up}, [{"name": "main", "default": True, "routes": [route("web", "web")]}],
                 admin={"address": "127.0.0.1:0", "status_page": False})
    p = lab.proxy(cfg, name="off")
    status, _, body = get("http://127.0.0.1:%d/" % p.admin_port)
    assert status == 404
    assert "admin.status_page is false" in body
    # The other admin endpoints are unchanged.
    assert get("http://127.0.0.1:%d/_health" % p.admin_port)[0] == 200


@pytest.mark.parametrize("admin,served,why", [
    ({"address": "127.0.0.1:9901"}, True, "a loopback address"),
    ({"address": "[::1]:9901"}, True, "a loopback address"),
    ({"address": "0.0.0.0:9901"}, False, "is not a loopback address; set admin.status_page"),
    ({"address": ":9901"}, False, "is not a loopback address"),
    ({"address": "0.0.0.0:9901", "status_page": True}, True, "admin.status_page is true"),
    ({"address": "127.0.0.1:9901", "status_page": False}, False, "admin.status_page is false"),
])
def test_check_explains(tmp_path, admin, served, why):
    cfg = config({"web": "127.0.0.1:9"},
                 [{"name": "main", "default": True, "routes": [route("web", "web")]}],
                 admin=admin)
    path = os.path.join(str(tmp_path), "c.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    res = run_binary(["-t", "-c", path])
    assert res.returncode == 0, res.stderr
    assert res.stdout == "%s: configuration OK\n" % path
    line = [ln for ln in res.stderr.splitlines() if "status page" in ln]
    assert len(line) == 1, res.stderr
    assert ("status page: served" in line[0]) == served, line
    assert why in line[0], line


def test_status_page_key_is_checked(tmp_path):
    cfg = config({"web": "127.0.0.1:9"},
                 [{"name": "main", "default": True, "routes": [route("web", "web")]}],
                 admin={"address": "127.0.0.1:9901", "status_page": "yes"})
    path = os.path.join(str(tmp_path), "c.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    res = run_binary(["-t", "-c", path])
    assert res.returncode == 1
    assert "admin.status_page" in res.stderr


def test_saml_refusal_and_metadata(lab):
    """A 401 of the SAML gate is a refusal whose rule is the route's "auth";
    the SAML section shows the IdP metadata file, when it was loaded and that
    a file is never fetched."""
    import configs
    from saml_common import saml_config
    from ports import free_port
    up = lab.upstream("web")
    port = free_port()
    metadata = configs.throwaway_idp_metadata()
    p = lab.proxy(saml_config(up, port, metadata), name="saml")
    path = "/api/r-" + uuid.uuid4().hex
    resp = request(port, "GET", path, host="localhost:%d" % port,
                   headers=[("Accept", "application/json")])
    assert resp.status == 401, resp
    status, _, html = get("http://127.0.0.1:%d/" % p.admin_port)
    assert status == 200
    saml = html.split('id="saml"')[1].split("</section>")[0]
    assert metadata in saml and "never (a file)" in saml and "s ago" in saml
    refusals = html.split('id="refusals"')[1]
    assert "<td>401</td><td>127.0.0.1</td><td><code>sites[0].routes[1].auth</code></td>" \
           "<td>%s</td>" % path in refusals
    assert "<td>SAML</td>" in html.split('id="sites"')[1]

"""Shared pieces of the SAML end-to-end tests: a proxy configured as a SAML SP
in front of a recording upstream, and the browser side of a login done by
hand (cookies, the IdP redirect, the ACS POST)."""

import base64
import hashlib
import http.server
import os
import re
import struct
import sys
import threading
import time
import urllib.parse

from harness import closed_port, request
import configs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "saml"))
import samltools  # noqa: E402,F401

ACS_PATH = "/complete/saml/"


def saml_config(up, port, metadata, **saml):
    base = "http://localhost:%d" % port
    s = {"idp_metadata": metadata, "base_url": base, "acs_path": ACS_PATH,
         "headers": {"X-Auth-Email": "Email", "X-Auth-User": "@nameid", "X-Auth-Roles": "Roles"}}
    s.update(saml)
    sites = [{"name": "posthog", "routes": [
        configs.route("capture", "web", path=["/e"]),
        {"name": "api", "match": {"path": ["/api"]}, "upstream": "web", "auth": "saml",
         "allow_bearer": ["phx_"]},
        {"name": "web", "upstream": "web", "auth": "saml"},
    ]}]
    return configs.config({"web": up}, sites,
                          listeners=[{"name": "http", "address": "127.0.0.1:%d" % port}],
                          saml=s)


def set_cookies(resp):
    """Set-Cookie headers → {name: (value, attribute string)}."""
    out = {}
    for line in resp.header_all("Set-Cookie"):
        first, _, attrs = line.partition(";")
        name, _, value = first.partition("=")
        out[name.strip()] = (value.strip(), attrs)
    return out


def cookie_header(cookies):
    return "; ".join("%s=%s" % (k, v) for k, v in cookies.items())


class Browser:
    """Cookies and requests against one proxy, by hand."""

    def __init__(self, port, host=None, client=None):
        self.port = port
        self.host = host or "localhost:%d" % port
        self.cookies = {}
        self.client = client      # clients.Http1/Http2, or None: harness.request

    def get(self, target, headers=(), method="GET", body=None):
        hs = list(headers)
        if self.cookies:
            hs.append(("Cookie", cookie_header(self.cookies)))
        send = self.client.request if self.client is not None else request
        r = send(self.port, method, target, host=self.host, headers=hs, body=body)
        for name, (value, attrs) in set_cookies(r).items():
            if "Max-Age=0" in attrs or value == "":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def start_login(self, target="/insights?x=1"):
        r = self.get(target, headers=[("Accept", "text/html")])
        assert r.status == 302, r
        loc = r.header("Location")
        xml, params, query = samltools.decode_redirect(loc)
        m = re.search(r' ID="([^"]+)"', xml)
        return {"location": loc, "xml": xml, "params": params, "query": query,
                "request_id": m.group(1), "relay": params["RelayState"], "response": r}

    def post_acs(self, xml, relay):
        body = urllib.parse.urlencode({"SAMLResponse": samltools.b64(xml),
                                       "RelayState": relay}).encode()
        return self.get(ACS_PATH, method="POST", body=body,
                        headers=[("Content-Type", "application/x-www-form-urlencoded")])


# ---- sealing cookies in Python (the format of src/session.c) -----------------

def seal(key, purpose, issued, expires, last_seen, name_id, attrs=()):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    def s(x):
        b = x.encode()
        return struct.pack(">H", len(b)) + b
    plain = b"PS1" + struct.pack(">QQQH", issued, expires, last_seen, len(attrs)) + s(name_id)
    for n, v in attrs:
        plain += s(n) + s(v)
    key_id = hashlib.sha256(b"portcullis session key id" + key).digest()[:4]
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, plain, b"portcullis/" + b"\x01" + purpose.encode())
    raw = b"\x01" + key_id + nonce + ct
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def now():
    return int(time.time())


__all__ = ["saml_config", "Browser", "set_cookies", "seal", "now", "closed_port", "ACS_PATH",
           "samltools"]


# ---- the IdP metadata over http:// on loopback ---------------------------------

class MetadataServer:
    """Serves <document> (replaceable) at .url, counting fetches; a fetch that
    starts while <delay> is set is answered that many seconds later."""

    def __init__(self, document):
        outer = self
        self.document = document
        self.delay = 0
        self.fetches = 0
        self.slow_fetches = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                delay = outer.delay
                if delay:
                    outer.slow_fetches += 1
                    time.sleep(delay)
                body = outer.document.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/idp-metadata.xml" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def metadata_url_config(lab, url, refresh):
    """(config, port): a SAML SP in front of a new upstream of <lab>, the IdP
    metadata fetched from <url> and refreshed every <refresh> seconds."""
    port = closed_port()
    cfg = saml_config(lab.upstream("web"), port, url, idp_metadata_refresh=refresh,
                      certs_dir=os.path.join(lab.workdir, "certs"))
    return cfg, port

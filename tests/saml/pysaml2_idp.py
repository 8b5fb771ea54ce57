#!/usr/bin/python3
"""A small SAML IdP on 127.0.0.1 built on pysaml2 (Debian python3-pysaml2; run
with /usr/bin/python3).  Serves its metadata at /metadata and the
HTTP-Redirect SSO endpoint at /sso/redirect, which verifies the
AuthnRequest's redirect signature with the SP metadata, signs in the
configured user at once (no form) and answers with pysaml2's auto-submitting
HTTP-POST form carrying a signed Response with a signed Assertion.

Usage: pysaml2_idp.py WORKDIR SP_METADATA_FILE [USER]
Prints "listening on PORT" once it serves.  The SP metadata file is read on
the first SSO request (the SP is started after the IdP).
"""

import http.server
import os
import subprocess
import sys
import threading
import urllib.parse

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.sigver import verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

WORKDIR, SP_METADATA = sys.argv[1], sys.argv[2]
USER = sys.argv[3] if len(sys.argv) > 3 else "alice"
KEY = os.path.join(WORKDIR, "pysaml2-idp.key")
CERT = os.path.join(WORKDIR, "pysaml2-idp.crt")
if not os.path.exists(KEY):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", KEY,
                    "-out", CERT, "-days", "30", "-subj", "/CN=pysaml2-idp"], check=True,
                   capture_output=True)


def config(base, with_sp):
    c = {
        "entityid": base + "/metadata",
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "key_file": KEY,
        "cert_file": CERT,
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(base + "/sso/redirect",
                                                      BINDING_HTTP_REDIRECT)]},
            "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
            "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
            "sign_response": True,
            "sign_assertion": True,
            "want_authn_requests_signed": False,  # checked below, redirect binding
        }},
    }
    if with_sp:
        c["metadata"] = {"local": [SP_METADATA]}
    conf = IdPConfig()
    conf.load(c)
    return conf


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "pysaml2-idp"
    idp = None

    def log_message(self, fmt, *args):
        sys.stderr.write("idp: " + fmt % args + "\n")

    def send(self, status, body, ctype="text/html; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/metadata":
            self.send(200, METADATA, "application/samlmetadata+xml")
            return
        if url.path != "/sso/redirect":
            self.send(404, "not found")
            return
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if Handler.idp is None:
            Handler.idp = Server(config=config(BASE, True))
        idp = Handler.idp
        try:
            req = idp.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
            # the redirect signature, checked against the SP metadata
            certs = idp.metadata.certs(req.message.issuer.text, "any", "signing")
            ok = any(verify_redirect_signature(q, idp.sec.sec_backend,
                                               c[1] if isinstance(c, (tuple, list)) else c)
                     for c in certs)
            if not ok:
                raise ValueError("the AuthnRequest redirect signature does not verify")
            args = idp.response_args(req.message, [BINDING_HTTP_POST])
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write("idp: refused request: %r\n" % exc)
            self.send(400, "bad AuthnRequest: %s" % exc)
            return
        identity = {"mail": ["%s@example.com" % USER], "uid": [USER],
                    "eduPersonAffiliation": ["member", "staff"]}
        resp = idp.create_authn_response(
            identity, userid=USER,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=USER),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
                   "authn_auth": BASE},
            sign_response=True, sign_assertion=True, sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256, **args)
        http_args = idp.apply_binding(BINDING_HTTP_POST, str(resp), args["destination"],
                                      q.get("RelayState"), response=True)
        body = http_args["data"]
        self.send(200, body)


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
BASE = "http://127.0.0.1:%d" % httpd.server_address[1]
METADATA = str(entity_descriptor(config(BASE, False)))
print("listening on %d" % httpd.server_address[1], flush=True)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
try:
    threading.Event().wait()
except KeyboardInterrupt:
    pass

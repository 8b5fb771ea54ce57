#!/usr/bin/python3
"""A small SAML IdP built on pysaml2 (Debian python3-pysaml2; run it with
/usr/bin/python3), for the end-to-end tests and the local demo.

Endpoints:
  GET  /metadata       the IdP metadata (entityID = BASE/metadata, one
                       HTTP-Redirect SingleSignOnService, no single logout,
                       like Casdoor)
  GET  /sso/redirect   the HTTP-Redirect SSO endpoint.  The AuthnRequest's
                       redirect signature is verified with the SP metadata;
                       a request without a valid signature gets 400.
  POST /sso/login      the login form's target (form mode only)

Two modes:
  default          signs in USER (default "alice") at once, without a form,
                   with the attributes mail, uid and eduPersonAffiliation.
  --form SPEC      GET /sso/redirect shows an HTML login form (user name,
                   password, and the pending AuthnRequest in a hidden field).
                   POST /sso/login verifies the pending request again, then
                   checks the credentials: wrong ones get the form again with
                   an error (200, no SAML response); right ones get the
                   auto-submitting HTTP-POST form.  The attributes are the
                   ones Casdoor sends: Email, Name, DisplayName, Roles.
                   The IdP keeps no session: every login shows the form.

Either way the answer is a Response signed by the IdP, with a signed
Assertion (RSA-SHA256, exclusive C14N), NameID = the user name (format
unspecified), valid for 5 minutes.

SPEC is USER:PASSWORD[:EMAIL[:ROLES[:DISPLAY NAME]]]; ROLES is a
comma-separated list (may be empty); EMAIL defaults to USER@example.com and
DISPLAY NAME to USER.  --form may be given several times (several users).
The password cannot contain ":".

Usage: pysaml2_idp.py [--form SPEC]... [--listen HOST:PORT] [--base-url URL]
                      WORKDIR SP_METADATA_FILE [USER]

WORKDIR holds the IdP key and certificate (pysaml2-idp.key/.crt, created on
first use and reused later).  SP_METADATA_FILE is read on the first SSO
request and again whenever it changes (the SP usually starts after the IdP).
--listen defaults to 127.0.0.1:0 (a free port); --base-url (how browsers
reach this IdP) defaults to http://HOST:PORT.  Prints "listening on PORT" on
stdout once it serves; logs go to stderr.  SIGTERM or SIGINT stop it (exit 0).
"""

import argparse
import hmac
import html
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
from saml2.attribute_converter import AttributeConverter
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.s_utils import do_ava, factory
from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.sigver import verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

MAX_FORM_BYTES = 64 * 1024


class CasdoorAttributes(AttributeConverter):
    """Attributes written the way Casdoor writes them: Name="Email" (the
    local name itself, no OID, no FriendlyName), NameFormat basic, xs:string
    values; an attribute without values (Roles of a user without roles) is
    sent empty."""

    def __init__(self):
        super().__init__(NAME_FORMAT_BASIC)

    def to_(self, attrvals):
        return [factory(saml.Attribute, name=name, name_format=self.name_format,
                        attribute_value=do_ava(values))
                for name, values in attrvals.items()]


class FormUser:
    """One user of the login form."""

    def __init__(self, spec):
        parts = spec.split(":", 4)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError("--form %r: expected USER:PASSWORD[:EMAIL[:ROLES[:DISPLAY NAME]]] "
                             "with a non-empty user and password" % spec)
        self.name = parts[0]
        self.password = parts[1]
        self.email = parts[2] if len(parts) > 2 and parts[2] else "%s@example.com" % self.name
        self.roles = [r for r in parts[3].split(",") if r] if len(parts) > 3 else []
        self.display_name = parts[4] if len(parts) > 4 and parts[4] else self.name

    def identity(self):
        """The attributes, named and ordered as Casdoor sends them."""
        return {"Email": [self.email], "Name": [self.name], "DisplayName": [self.display_name],
                "Roles": list(self.roles)}


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="pysaml2_idp.py",
        description="A SAML IdP on pysaml2 for tests and the local demo.",
        epilog="SPEC: USER:PASSWORD[:EMAIL[:ROLES[:DISPLAY NAME]]], ROLES comma-separated.")
    p.add_argument("workdir", help="folder for the IdP key and certificate")
    p.add_argument("sp_metadata", help="SP metadata file (read at the first SSO request)")
    p.add_argument("user", nargs="?", default="alice",
                   help="user signed in at once when no --form is given (default: alice)")
    p.add_argument("--form", action="append", default=[], metavar="SPEC",
                   help="show a login form and accept this user (repeatable)")
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:0, a free port)")
    p.add_argument("--base-url", metavar="URL",
                   help="URL browsers use to reach this IdP (default http://HOST:PORT)")
    a = p.parse_args(argv)
    users = {}
    for spec in a.form:
        try:
            u = FormUser(spec)
        except ValueError as exc:
            p.error(str(exc))
        if u.name in users:
            p.error("--form: user %r given twice" % u.name)
        users[u.name] = u
    a.users = users
    host, sep, port = a.listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        p.error("--listen %r: expected HOST:PORT" % a.listen)
    a.host, a.port = host.strip("[]") or "127.0.0.1", int(port)
    if a.base_url is not None:
        u = urllib.parse.urlparse(a.base_url)
        if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/") \
                or u.query:
            p.error("--base-url %r: expected http(s)://HOST[:PORT] without a path" % a.base_url)
        a.base_url = a.base_url.rstrip("/")
    return a


def ensure_key(workdir):
    """The IdP key and certificate in <workdir>, created once (atomically)."""
    key = os.path.join(workdir, "pysaml2-idp.key")
    cert = os.path.join(workdir, "pysaml2-idp.crt")
    if os.path.exists(key) and os.path.exists(cert):
        return key, cert
    os.makedirs(workdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pysaml2-idp-", dir=workdir)
    try:
        tkey, tcert = os.path.join(tmp, "k"), os.path.join(tmp, "c")
        res = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                              "-keyout", tkey, "-out", tcert, "-days", "3650",
                              "-subj", "/CN=pysaml2-idp"], capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit("pysaml2_idp: openssl could not create the IdP key: %s" %
                             res.stderr.strip())
        os.chmod(tkey, 0o600)
        os.replace(tcert, cert)  # the certificate first: the key's presence means both exist
        os.replace(tkey, key)
    finally:
        for name in ("k", "c"):
            try:
                os.unlink(os.path.join(tmp, name))
            except FileNotFoundError:
                pass
        os.rmdir(tmp)
    return key, cert


class IdP:
    """The pysaml2 Server, rebuilt when the SP metadata file changes.  pysaml2
    is not documented as thread-safe: every SAML operation holds self.lock."""

    def __init__(self, args):
        self.args = args
        self.key, self.cert = ensure_key(args.workdir)
        self.base = None
        self.metadata = None
        self.lock = threading.Lock()
        self._server = None
        self._sp_stamp = None

    def start(self, base):
        self.base = base
        self.metadata = str(entity_descriptor(self._config(False))).encode()

    def _config(self, with_sp):
        policy = {"lifetime": {"minutes": 5}, "attribute_restrictions": None}
        if self.args.users:
            policy["name_form"] = NAME_FORMAT_BASIC
        c = {
            "entityid": self.base + "/metadata",
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "key_file": self.key,
            "cert_file": self.cert,
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(self.base + "/sso/redirect",
                                                          BINDING_HTTP_REDIRECT)]},
                "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                "policy": {"default": policy},
                "sign_response": True,
                "sign_assertion": True,
                "want_authn_requests_signed": False,  # checked in verify(), redirect binding
            }},
        }
        if with_sp:
            c["metadata"] = {"local": [self.args.sp_metadata]}
        conf = IdPConfig()
        conf.load(c)
        if self.args.users:
            # pysaml2 would turn Email into urn:oid:1.2.840.113549.1.9.1.1
            conf.attribute_converters = [CasdoorAttributes()] + list(conf.attribute_converters)
        return conf

    def _server_locked(self):
        try:
            st = os.stat(self.args.sp_metadata)
        except OSError as exc:
            raise LookupError("the SP metadata file %s cannot be read (%s); give the SP's "
                              "metadata first" % (self.args.sp_metadata, exc.strerror))
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._server is None or stamp != self._sp_stamp:
            try:
                self._server = Server(config=self._config(True))
            except Exception as exc:  # noqa: BLE001 (pysaml2 raises many kinds)
                raise LookupError("the SP metadata file %s does not load: %r" %
                                  (self.args.sp_metadata, exc))
            self._sp_stamp = stamp
            log("loaded the SP metadata from %s" % self.args.sp_metadata)
        return self._server

    def verify(self, query):
        """Parse and verify a redirect-binding AuthnRequest given as its raw
        query string.  Returns (query parameters, parsed request, response
        args for create_authn_response); raises ValueError
        with the reason, or LookupError when the SP metadata is missing."""
        q = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        for name in ("SAMLRequest", "SigAlg", "Signature"):
            if not q.get(name):
                raise ValueError("the AuthnRequest has no %s parameter (an unsigned request?)"
                                 % name)
        with self.lock:
            idp = self._server_locked()
            try:
                req = idp.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
            except Exception as exc:  # noqa: BLE001 (pysaml2 raises many kinds)
                raise ValueError("the SAMLRequest does not parse: %r" % exc)
            issuer = req.message.issuer.text if req.message.issuer is not None else None
            if not issuer:
                raise ValueError("the AuthnRequest has no Issuer")
            try:
                certs = idp.metadata.certs(issuer, "any", "signing")
            except Exception as exc:  # noqa: BLE001
                raise ValueError("no signing certificate for the SP %r in %s: %r" %
                                 (issuer, self.args.sp_metadata, exc))
            if not certs:
                raise ValueError("the SP %r has no signing certificate in %s" %
                                 (issuer, self.args.sp_metadata))
            try:
                ok = any(verify_redirect_signature(q, idp.sec.sec_backend,
                                                   c[1] if isinstance(c, (tuple, list)) else c)
                         for c in certs)
            except Exception as exc:  # noqa: BLE001
                raise ValueError("the redirect signature cannot be checked: %r" % exc)
            if not ok:
                raise ValueError("the AuthnRequest redirect signature does not verify with the "
                                 "SP's certificate")
            try:
                args = idp.response_args(req.message, [BINDING_HTTP_POST])
            except Exception as exc:  # noqa: BLE001
                raise ValueError("no HTTP-POST AssertionConsumerService for this request: %r"
                                 % exc)
        return q, req, args

    def respond(self, q, req, args, user, identity):
        """The auto-submitting HTTP-POST form with the signed Response."""
        with self.lock:
            idp = self._server_locked()
            resp = idp.create_authn_response(
                identity, userid=user,
                name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=user),
                authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
                       "authn_auth": self.base},
                sign_response=True, sign_assertion=True, sign_alg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256, **args)
            http_args = idp.apply_binding(BINDING_HTTP_POST, str(resp), args["destination"],
                                          q.get("RelayState"), response=True)
        return http_args["data"]


def log(msg):
    sys.stderr.write("idp: %s\n" % msg)
    sys.stderr.flush()


FORM_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in - test IdP</title>
<style>body{{font-family:sans-serif;max-width:22em;margin:4em auto}}
label,input{{display:block;width:100%;margin:.3em 0}}.error{{color:#b00020}}</style></head>
<body>
<h1>Sign in</h1>
<p>to <code>{sp}</code></p>
{error}<form id="login" method="post" action="/sso/login">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" value="{username}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="request" value="{request}">
<input id="submit" type="submit" value="Sign in">
</form>
</body>
</html>
"""


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "pysaml2-idp"
    protocol_version = "HTTP/1.1"
    idp = None        # IdP
    args = None       # parsed command line

    def log_message(self, fmt, *args):
        log(fmt % args)

    def log_request(self, code="-", size="-"):
        # the path only: a query holds a whole SAMLRequest
        log("%s %s %s" % (self.command, self.path.split("?", 1)[0], code))

    def send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def refuse(self, status, reason):
        log("refused %s %s: %s" % (self.command, self.path.split("?", 1)[0], reason))
        self.send(status, "%d: %s\n" % (status, reason), "text/plain; charset=utf-8")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/metadata":
            self.send(200, self.idp.metadata, "application/samlmetadata+xml")
        elif url.path == "/sso/redirect":
            self.sso(url.query)
        elif url.path == "/sso/login":
            self.send(405, "405: the login form is posted here\n", "text/plain; charset=utf-8",
                      [("Allow", "POST")])
        else:
            self.send(404, "404: not found (this IdP serves /metadata and /sso/redirect)\n",
                      "text/plain; charset=utf-8")

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/sso/login":
            if self.read_body() is None:  # drained: the connection stays usable
                return
            if url.path in ("/metadata", "/sso/redirect"):
                self.send(405, "405: %s takes GET\n" % url.path, "text/plain; charset=utf-8",
                          [("Allow", "GET, HEAD")])
            else:
                self.send(404, "404: not found\n", "text/plain; charset=utf-8")
            return
        if not self.args.users:
            if self.read_body() is None:
                return
            self.refuse(404, "no login form: this IdP signs in %r without one (start it with "
                             "--form USER:PASSWORD to get the form)" % self.args.user)
            return
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        body = self.read_body()
        if body is None:
            return
        if ctype != "application/x-www-form-urlencoded":
            self.refuse(415, "the login form must be posted as "
                             "application/x-www-form-urlencoded, got %r" % ctype)
            return
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True,
                                         strict_parsing=False)
        except UnicodeDecodeError:
            self.refuse(400, "the login form is not UTF-8")
            return
        field = {k: v[0] for k, v in form.items()}
        pending = field.get("request", "")
        try:
            q, req, args = self.idp.verify(pending)
        except LookupError as exc:
            self.refuse(503, str(exc))
            return
        except ValueError as exc:
            self.refuse(400, "the pending AuthnRequest in the form: %s" % exc)
            return
        name, password = field.get("username", ""), field.get("password", "")
        user = self.check_password(name, password)
        if user is None:
            log("wrong user name or password for %r" % name)
            self.form(pending, req, name, "Wrong user name or password.")
            return
        log("%s signed in for %s" % (user.name, req.message.issuer.text))
        self.respond(q, req, args, user.name, user.identity())

    def read_body(self):
        """The request body (bytes), or None after answering 400/411/413."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self.refuse(411, "send the form with a Content-Length")
            return None
        if length is None:
            return b""
        if not length.isdigit():
            self.close_connection = True
            self.refuse(400, "bad Content-Length %r" % length)
            return None
        n = int(length)
        if n > MAX_FORM_BYTES:
            self.close_connection = True
            self.refuse(413, "the form is larger than %d bytes" % MAX_FORM_BYTES)
            return None
        return self.rfile.read(n)

    def check_password(self, name, password):
        """The FormUser when <name>/<password> match, else None (constant-time
        comparison of the password; unknown users cost the same)."""
        user = self.args.users.get(name)
        want = user.password if user is not None else "\0unknown user"
        ok = hmac.compare_digest(password.encode(), want.encode())
        return user if ok and user is not None else None

    def form(self, pending, req, username="", error=None):
        err = ('<p class="error" id="error" role="alert">%s</p>\n' % html.escape(error)
               if error else "")
        self.send(200, FORM_PAGE.format(sp=html.escape(req.message.issuer.text),
                                        error=err, username=html.escape(username),
                                        request=html.escape(pending)),
                  headers=[("X-Frame-Options", "DENY")])

    def sso(self, query):
        try:
            q, req, args = self.idp.verify(query)
        except LookupError as exc:
            self.refuse(503, str(exc))
            return
        except ValueError as exc:
            self.refuse(400, "bad AuthnRequest: %s" % exc)
            return
        if self.args.users:
            self.form(query, req)
            return
        user = self.args.user
        identity = {"mail": ["%s@example.com" % user], "uid": [user],
                    "eduPersonAffiliation": ["member", "staff"]}
        log("%s signed in (no form) for %s" % (user, req.message.issuer.text))
        self.respond(q, req, args, user, identity)

    def respond(self, q, req, args, user, identity):
        try:
            page = self.idp.respond(q, req, args, user, identity)
        except Exception as exc:  # noqa: BLE001 (pysaml2 and xmlsec1 raise many kinds)
            self.refuse(500, "could not build the signed Response: %r" % exc)
            return
        self.send(200, page)


def main(argv):
    args = parse_args(argv)
    Handler.args = args
    Handler.idp = IdP(args)
    httpd = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    port = httpd.server_address[1]
    host = args.host if ":" not in args.host else "[%s]" % args.host
    Handler.idp.start(args.base_url or "http://%s:%d" % (host, port))
    log("entity %s/metadata, %s" % (Handler.idp.base, "login form for %s" %
                                    ", ".join(sorted(args.users)) if args.users else
                                    "signs in %r without a form" % args.user))

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening on %d" % port, flush=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        threading.Event().wait()
    finally:
        httpd.shutdown()
        httpd.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])

"""SAML test tools: an IdP key and metadata, Casdoor-shaped responses signed
with the xmlsec1 command, AuthnRequest decoding and its signature check.

Casdoor's defaults (casdoor/casdoor object/saml_idp.go): only the Response is
signed, RSA-SHA1, C14N 1.1, one AudienceRestriction holding the SP entity ID
plus every redirect URI of the app, every expiry 24 h after now, NotBefore =
now, attributes Email, Name, DisplayName, Roles.  make_response() builds that
shape (and the variants the tests need); sign() signs it with xmlsec1.
Standard library + the openssl and xmlsec1 commands only.
"""

import base64
import datetime
import os
import subprocess
import urllib.parse
import uuid
import zlib

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def make_key(directory, name="idp"):
    """RSA key + self-signed certificate (PEM files); returns (key, cert) paths."""
    key = os.path.join(directory, name + ".key")
    cert = os.path.join(directory, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "30", "-subj", "/CN=" + name],
                   check=True, capture_output=True)
    return key, cert


def cert_body(cert_path):
    with open(cert_path) as f:
        pem = f.read()
    return "".join(pem.split("-----")[2].split())


def idp_metadata(entity_id, sso_url, cert_path, slo_url=None):
    slo = ""
    if slo_url:
        slo = ('<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:'
               'HTTP-Redirect" Location="%s"/>' % slo_url)
    return ("""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="%(md)s" xmlns:ds="%(ds)s" entityID="%(entity)s">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="%(samlp)s">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%(cert)s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    %(slo)s
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="%(sso)s"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
""" % {"md": NS["md"], "ds": NS["ds"], "samlp": NS["samlp"], "entity": entity_id,
       "cert": cert_body(cert_path), "slo": slo, "sso": sso_url})


def instant(delta=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sig_template(ref_id, c14n, sigalg, digest, cert):
    return ("""<ds:Signature xmlns:ds="%(ds)s"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="%(c14n)s"/><ds:SignatureMethod Algorithm="%(sigalg)s"/><ds:Reference URI="#%(ref)s"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="%(c14n)s"/></ds:Transforms><ds:DigestMethod Algorithm="%(digest)s"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%(cert)s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"""
            % {"ds": NS["ds"], "c14n": c14n, "sigalg": sigalg, "ref": ref_id, "digest": digest,
               "cert": cert})


def assertion_xml(a):
    """The <saml:Assertion> of response parameters <a> (a dict, see make_response)."""
    audiences = "".join("<saml:Audience>%s</saml:Audience>" % x for x in a["audiences"])
    attrs = ""
    for name, values in a["attributes"].items():
        vals = "".join('<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                       'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                       'xsi:type="xs:string">%s</saml:AttributeValue>' % v for v in values)
        attrs += ('<saml:Attribute Name="%s" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-'
                  'format:basic">%s</saml:Attribute>' % (name, vals))
    irt = ' InResponseTo="%s"' % a["in_response_to"] if a["in_response_to"] else ""
    sig = "{ASSERTION_SIGNATURE}" if a["sign_assertion"] else ""
    return ("""<saml:Assertion xmlns:saml="%(saml)s" ID="%(aid)s" Version="2.0" IssueInstant="%(issue)s"><saml:Issuer>%(issuer)s</saml:Issuer>%(sig)s<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">%(nameid)s</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData%(irt)s NotOnOrAfter="%(scd_end)s" Recipient="%(recipient)s"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="%(not_before)s" NotOnOrAfter="%(not_after)s"><saml:AudienceRestriction>%(aud)s</saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="%(issue)s" SessionIndex="%(aid)s"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>%(attrs)s</saml:AttributeStatement></saml:Assertion>"""
            % {"saml": NS["saml"], "aid": a["assertion_id"], "issue": a["assertion_issue"],
               "issuer": a["issuer"], "sig": sig, "nameid": a["name_id"], "irt": irt,
               "scd_end": a["not_after"], "recipient": a["recipient"],
               "not_before": a["not_before"], "not_after": a["not_after"], "aud": audiences,
               "attrs": attrs})


def make_response(**kw):
    """Parameters of a Casdoor-shaped response; override any key.  Returns a dict
    that render() turns into unsigned XML with signature templates."""
    a = {
        "response_id": "_" + uuid.uuid4().hex,
        "assertion_id": "_" + uuid.uuid4().hex,
        "issue": instant(), "assertion_issue": instant(),
        "issuer": "https://casdoor.test",
        "destination": None, "recipient": None, "in_response_to": None,
        "audiences": [], "name_id": "alice",
        "not_before": instant(), "not_after": instant(24 * 3600),
        "attributes": {"Email": ["alice@example.com"], "Name": ["alice"],
                       "DisplayName": ["Alice"], "Roles": ["posthog-admin"]},
        "sign_response": True, "sign_assertion": False,
        "c14n": C14N11, "sigalg": RSA_SHA1, "digest": SHA1,
        "status": "urn:oasis:names:tc:SAML:2.0:status:Success",
        "extra_after_assertion": "",
    }
    a.update(kw)
    return a


def render(a, cert_path):
    cert = cert_body(cert_path)
    rsig = _sig_template(a["response_id"], a["c14n"], a["sigalg"], a["digest"], cert) \
        if a["sign_response"] else ""
    assertion = assertion_xml(a)
    if a["sign_assertion"]:
        assertion = assertion.replace("{ASSERTION_SIGNATURE}", _sig_template(
            a["assertion_id"], a["c14n"], a["sigalg"], a["digest"], cert))
    dest = ' Destination="%s"' % a["destination"] if a["destination"] else ""
    irt = ' InResponseTo="%s"' % a["in_response_to"] if a["in_response_to"] else ""
    return ("""<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="%(samlp)s" xmlns:saml="%(saml)s" ID="%(rid)s" Version="2.0" IssueInstant="%(issue)s"%(dest)s%(irt)s><saml:Issuer>%(issuer)s</saml:Issuer>%(rsig)s<samlp:Status><samlp:StatusCode Value="%(status)s"/></samlp:Status>%(assertion)s%(extra)s</samlp:Response>
""" % {"samlp": NS["samlp"], "saml": NS["saml"], "rid": a["response_id"], "issue": a["issue"],
       "dest": dest, "irt": irt, "issuer": a["issuer"], "rsig": rsig, "status": a["status"],
       "assertion": assertion, "extra": a["extra_after_assertion"]})


def xmlsec_sign(xml, key, cert, workdir, assertion=False, response=True):
    """Sign the signature templates of <xml> (the Assertion's first, then the
    Response's) with the xmlsec1 command, ID attributes of Response and
    Assertion registered; returns the signed XML."""
    cur = os.path.join(workdir, "unsigned-%s.xml" % uuid.uuid4().hex)
    with open(cur, "w") as f:
        f.write(xml)
    xpaths = []
    if assertion:
        xpaths.append("//*[local-name()='Assertion']/*[local-name()='Signature']")
    if response:
        xpaths.append("/*[local-name()='Response']/*[local-name()='Signature']")
    for xpath in xpaths:
        nxt = cur + ".s"
        subprocess.run(["xmlsec1", "--sign", "--privkey-pem", "%s,%s" % (key, cert),
                        "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
                        "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
                        "--node-xpath", xpath, "--output", nxt, cur],
                       check=True, capture_output=True)
        cur = nxt
    with open(cur) as f:
        return f.read()


def signed_response(key, cert, workdir, edit=None, **kw):
    """A signed response; <edit>, when given, changes the unsigned XML text
    (with its signature templates) before signing."""
    a = make_response(**kw)
    xml = render(a, cert)
    if edit is not None:
        xml = edit(xml)
    return xmlsec_sign(xml, key, cert, workdir, assertion=a["sign_assertion"],
                       response=a["sign_response"]), a


def b64(xml):
    return base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()


def decode_redirect(location):
    """(AuthnRequest XML, query dict) of an HTTP-Redirect binding URL."""
    query = urllib.parse.urlparse(location).query
    params = urllib.parse.parse_qs(query)
    raw = base64.b64decode(params["SAMLRequest"][0])
    xml = zlib.decompress(raw, -15).decode()
    return xml, {k: v[0] for k, v in params.items()}, query


def verify_redirect_signature(query, cert_pem_text, workdir):
    """True when the HTTP-Redirect signature (SigAlg RSA-SHA256) verifies with
    the certificate <cert_pem_text>."""
    parts = {}
    for item in query.split("&"):
        k, _, v = item.partition("=")
        parts[k] = v
    signed = "&".join("%s=%s" % (k, parts[k]) for k in ("SAMLRequest", "RelayState", "SigAlg")
                      if k in parts)
    sig = base64.b64decode(urllib.parse.unquote(parts["Signature"]))
    cert = os.path.join(workdir, "sp-%s.crt" % uuid.uuid4().hex)
    pub = cert + ".pub"
    with open(cert, "w") as f:
        f.write(cert_pem_text)
    subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout", "-out", pub], check=True,
                   capture_output=True)
    sigf = cert + ".sig"
    data = cert + ".data"
    with open(sigf, "wb") as f:
        f.write(sig)
    with open(data, "wb") as f:
        f.write(signed.encode())
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sigf, data],
                       capture_output=True)
    return r.returncode == 0

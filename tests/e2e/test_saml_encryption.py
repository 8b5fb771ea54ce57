"""Encrypted assertions (docs/saml.md#encrypted-assertions).

Against SimpleSAMLphp 1.19 (tests/e2e/simplesamlphp.py) with
"assertion.encryption" on for our SP: its real login form, then an
EncryptedAssertion (AES-CBC, the key wrapped with RSA-OAEP to the certificate
of our SP metadata's KeyDescriptor use="encryption") that the SP decrypts and
checks like a plain one: signed Assertion inside, or Response signature only;
nothing signed, an assertion encrypted to another key, and a plain assertion
while encryption is required are refused.

With hand-made responses (tests/saml/samltools.py signs with xmlsec1,
tests/saml/samlenc.py encrypts with python3-cryptography): AES-GCM and the
EncryptedKey beside the EncryptedData (Shibboleth IdP's shape), and the
wrapping attacks around an EncryptedAssertion: a forged plain Assertion
beside it, two of them, one hidden below another element, a signed Response
whose EncryptedAssertion is swapped, a forged assertion encrypted to our
public certificate, content that decrypts to two assertions, damaged
ciphertext and RSA PKCS#1 v1.5 key transport.

SimpleSAMLphp tests skip only when php or SimpleSAMLphp is missing and
PORTCULLIS_REQUIRE_ALL is unset."""

import base64
import json
import os
import re
import sys

import pytest

from harness import request, run_binary
from saml_common import ACS_PATH, Browser, closed_port, saml_config, samltools
from test_saml_simplesamlphp import idp, idp_answer, post_to_acs  # noqa: F401 (fixture)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "saml"))
import samlenc  # noqa: E402

SESSION = "__Host-portcullis-session"
IDP = "https://idp.test"
SSO = "https://idp.test/sso"


def sp_metadata(port):
    r = request(port, "GET", "/saml/metadata", host="localhost:%d" % port)
    assert r.status == 200 and b"SPSSODescriptor" in r.body, r
    return r.body


def made_keys(workdir, name, encryption=None):
    """saml options with SP keys made beforehand (RSA 2048 by openssl: a
    loaded machine makes the proxy's own RSA 3072 keys slowly), with an
    encryption key pair unless <encryption> says otherwise."""
    d = os.path.join(workdir, "keys-" + name)
    os.makedirs(d, exist_ok=True)
    key, cert = samltools.make_key(d, "sp")
    opts = {"sp_key": key, "sp_cert": cert}
    if encryption is None:
        ekey, ecert = samltools.make_key(d, "sp-enc")
        encryption = {"key_file": ekey, "cert_file": ecert}
    opts["encryption"] = encryption
    return opts


def failed(proxy, r, pattern):
    """The proxy logged the refusal of response <r> with <pattern>."""
    proxy.wait_stderr(r"saml: login failed \[ref %s\].*%s" % (
        re.escape(r.header("X-Request-ID")), pattern))


# ---- against SimpleSAMLphp ------------------------------------------------------

@pytest.fixture(scope="module")
def sp(module_lab, idp):  # noqa: F811
    up = module_lab.upstream("web")
    port = closed_port()
    keys = made_keys(module_lab.workdir, "ssp")
    p = module_lab.proxy(saml_config(up, port, idp.metadata_url, **keys))
    md = sp_metadata(port)
    idp.set_sp_metadata(md, {"assertion.encryption": True})
    return {"port": port, "proxy": p, "up": up, "metadata": md,
            "enc_cert": keys["encryption"]["cert_file"], "sp_cert": keys["sp_cert"]}


@pytest.fixture
def idp_options(idp, sp):  # noqa: F811
    """SimpleSAMLphp options (and SP metadata) for one test; reset afterwards."""
    def apply(options, metadata=None):
        idp.set_sp_metadata(metadata, options)
    try:
        yield apply
    finally:
        idp.set_sp_metadata(sp["metadata"], {"assertion.encryption": True})


def test_metadata_publishes_the_encryption_key(sp, alive):
    md = sp["metadata"].decode()
    assert md.count('<md:KeyDescriptor use="encryption">') == 1, md
    assert md.count('<md:KeyDescriptor use="signing">') == 1, md
    enc = samlenc.metadata_encryption_cert(md)
    with open(sp["enc_cert"], "rb") as f:
        assert b"".join(enc.split()) == b"".join(f.read().split())
    with open(sp["sp_cert"], "rb") as f:
        assert b"".join(enc.split()) != b"".join(f.read().split()), "a key of its own"


def test_encryption_key_pair_created_when_absent(module_lab, idp, alive):  # noqa: F811
    # the default files under certs_dir, made at start like the SP key
    up = module_lab.upstream("web-created")
    port = closed_port()
    keys = made_keys(module_lab.workdir, "created", encryption={})
    p = module_lab.proxy(saml_config(up, port, idp.metadata_url, **keys))
    enc = samlenc.metadata_encryption_cert(sp_metadata(port))
    key = os.path.join(p.workdir, "certs", "saml-sp-encryption.key")
    assert os.stat(key).st_mode & 0o077 == 0
    with open(os.path.join(p.workdir, "certs", "saml-sp-encryption.crt"), "rb") as f:
        assert b"".join(enc.split()) == b"".join(f.read().split())


def test_encrypted_signed_assertion_login(sp, idp, alive):  # noqa: F811
    b, _, _, post = idp_answer(sp, idp, "/insights/enc")
    xml = base64.b64decode(post["fields"]["SAMLResponse"]).decode()
    assert "<saml:EncryptedAssertion" in xml and "<saml:Assertion" not in xml, xml[:2000]
    assert "alice@example.com" not in xml
    r = post_to_acs(b, post)
    assert r.status == 303, (r, sp["proxy"].stderr()[-3000:])
    assert r.header("Location") == "/insights/enc"
    sp["up"].reset()
    assert b.get("/insights/enc").status == 200
    got = sp["up"].snapshot()[-1]
    assert got.header_all("X-Auth-Email") == ["alice@example.com"]
    assert got.header_all("X-Auth-User") == ["alice"]


def test_encrypted_response_signature_only(sp, idp, idp_options, alive):  # noqa: F811
    # the Response signature covers the EncryptedAssertion: checked before
    # decryption, the assertion inside is not signed
    idp_options({"assertion.encryption": True, "saml20.sign.assertion": False,
                 "saml20.sign.response": True})
    b, _, _, post = idp_answer(sp, idp, "/persons")
    xml = base64.b64decode(post["fields"]["SAMLResponse"]).decode()
    assert "<saml:EncryptedAssertion" in xml and len(re.findall(r"<ds:Signature[\s>]", xml)) == 1
    r = post_to_acs(b, post)
    assert r.status == 303, (r, sp["proxy"].stderr()[-3000:])
    sp["up"].reset()
    assert b.get("/persons").status == 200
    assert sp["up"].snapshot()[-1].header_all("X-Auth-Email") == ["alice@example.com"]


def test_encrypted_but_unsigned_refused(sp, idp, idp_options, alive):  # noqa: F811
    idp_options({"assertion.encryption": True, "saml20.sign.assertion": False,
                 "saml20.sign.response": False})
    b, _, _, post = idp_answer(sp, idp, "/persons")
    xml = base64.b64decode(post["fields"]["SAMLResponse"]).decode()
    assert "<saml:EncryptedAssertion" in xml and "<ds:Signature" not in xml
    r = post_to_acs(b, post)
    assert r.status == 403, r
    assert SESSION not in b.cookies
    failed(sp["proxy"], r, r"Signature: neither the Response nor the Assertion is signed")


def test_encrypted_to_another_key_refused(sp, idp, idp_options, module_lab, alive):  # noqa: F811
    # SimpleSAMLphp is given our metadata with another encryption certificate
    _, other = samltools.make_key(module_lab.workdir, "other-enc")
    with open(other) as f:
        other_body = "".join(l for l in f.read().splitlines() if "-----" not in l)
    md = sp["metadata"].decode()
    mine = "".join(samlenc.metadata_encryption_cert(md).decode().splitlines()[1:-1])
    assert mine in md
    idp_options({"assertion.encryption": True}, md.replace(mine, other_body).encode())
    b, _, _, post = idp_answer(sp, idp, "/persons")
    r = post_to_acs(b, post)
    assert r.status == 403, r
    assert SESSION not in b.cookies
    failed(sp["proxy"], r, r"EncryptedAssertion: cannot be decrypted with our encryption key")


def test_plain_assertion_refused_when_required(module_lab, idp, idp_options, alive):  # noqa: F811
    up = module_lab.upstream("web-required")
    port = closed_port()
    keys = made_keys(module_lab.workdir, "required")
    keys["encryption"]["require"] = True
    p = module_lab.proxy(saml_config(up, port, idp.metadata_url, **keys))
    # SimpleSAMLphp knows this SP but does not encrypt for it
    idp_options({"assertion.encryption": False}, sp_metadata(port))
    b, _, _, post = idp_answer({"port": port}, idp, "/persons")
    xml = base64.b64decode(post["fields"]["SAMLResponse"]).decode()
    assert "<saml:Assertion" in xml and "EncryptedAssertion" not in xml
    r = post_to_acs(b, post)
    assert r.status == 403, r
    assert SESSION not in b.cookies
    failed(p, r, r"Assertion: not encrypted, and saml.encryption.require is on")
    # encrypted for it: accepted
    idp_options({"assertion.encryption": True}, sp_metadata(port))
    b, _, _, post = idp_answer({"port": port}, idp, "/persons")
    r = post_to_acs(b, post)
    assert r.status == 303, (r, p.stderr()[-3000:])


# ---- hand-made responses: shapes and wrapping attacks ------------------------------

@pytest.fixture(scope="module")
def env(module_lab):
    work = os.path.join(module_lab.workdir, "handmade")
    os.makedirs(work, exist_ok=True)
    key, cert = samltools.make_key(work, "idp")
    md = os.path.join(work, "idp-metadata.xml")
    with open(md, "w") as f:
        f.write(samltools.idp_metadata(IDP, SSO, cert))
    up = module_lab.upstream("web-handmade")
    port = closed_port()
    p = module_lab.proxy(saml_config(up, port, md, **made_keys(module_lab.workdir, "handmade")))
    enc_cert = samlenc.metadata_encryption_cert(sp_metadata(port))
    _, other = samltools.make_key(work, "other")
    with open(other, "rb") as f:
        other_cert = f.read()
    return {"work": work, "key": key, "cert": cert, "port": port, "proxy": p, "up": up,
            "enc_cert": enc_cert, "other_cert": other_cert}


def response(env, login, sign_response, sign_assertion, **kw):
    """A rendered response for <login> with signature templates (unsigned)."""
    base = "http://localhost:%d" % env["port"]
    a = samltools.make_response(
        issuer=IDP, in_response_to=login["request_id"], destination=base + ACS_PATH,
        recipient=base + ACS_PATH, audiences=[base + "/saml/metadata"],
        sign_response=sign_response, sign_assertion=sign_assertion, c14n=samltools.EXC_C14N,
        sigalg=samltools.RSA_SHA256, digest=samltools.SHA256, **kw)
    return samltools.render(a, env["cert"]), a


def sign(env, xml, assertion=False, response=False):
    return samltools.xmlsec_sign(xml, env["key"], env["cert"], env["work"],
                                 assertion=assertion, response=response)


def signed_assertion_encrypted(env, login, **enc):
    """A response (not signed) whose signed Assertion is encrypted to our key."""
    xml, _ = response(env, login, False, True)
    xml = sign(env, xml, assertion=True)
    assertion = samlenc.assertion_of(xml)
    return xml.replace(assertion, samlenc.encrypted_assertion(assertion, env["enc_cert"], **enc))


def post(env, xml, login):
    b = login["browser"]
    return b.post_acs(xml, login["relay"])


def start(env):
    b = Browser(env["port"])
    login = b.start_login("/insights")
    login["browser"] = b
    return login


@pytest.mark.parametrize("data_alg,key_place", [
    ("aes128-cbc", "keyinfo"), ("aes256-cbc", "sibling"), ("aes128-gcm", "keyinfo"),
    ("aes256-gcm", "sibling")])
def test_handmade_encrypted_accepted(env, alive, data_alg, key_place):
    login = start(env)
    xml = signed_assertion_encrypted(env, login, data_alg=data_alg, key_place=key_place)
    r = post(env, xml, login)
    assert r.status == 303, (r, env["proxy"].stderr()[-2000:])
    assert SESSION in login["browser"].cookies


def test_handmade_response_signed_over_ciphertext(env, alive):
    login = start(env)
    xml, _ = response(env, login, True, False)
    assertion = samlenc.assertion_of(xml)
    xml = xml.replace(assertion, samlenc.encrypted_assertion(assertion, env["enc_cert"]))
    r = post(env, sign(env, xml, response=True), login)
    assert r.status == 303, (r, env["proxy"].stderr()[-2000:])


def refused(env, login, xml, pattern):
    r = post(env, xml, login)
    assert r.status == 403, r
    assert SESSION not in login["browser"].cookies
    failed(env["proxy"], r, pattern)


def test_forged_plain_assertion_beside_encrypted(env, alive):
    login = start(env)
    xml = signed_assertion_encrypted(env, login)
    forged, _ = response(env, login, False, False, name_id="mallory")
    xml = xml.replace("</samlp:Response>", samlenc.assertion_of(forged) + "</samlp:Response>")
    refused(env, login, xml, r"Assertion: expected exactly one, got 1 plain and 1 encrypted")


def test_two_encrypted_assertions(env, alive):
    login = start(env)
    xml = signed_assertion_encrypted(env, login)
    enc = re.search(r"<saml:EncryptedAssertion\b.*</saml:EncryptedAssertion>", xml, re.S).group(0)
    xml = xml.replace(enc, enc + enc)
    refused(env, login, xml, r"Assertion: expected exactly one, got 0 plain and 2 encrypted")


def test_encrypted_assertion_hidden_below_another_element(env, alive):
    login = start(env)
    xml = signed_assertion_encrypted(env, login)
    enc = re.search(r"<saml:EncryptedAssertion\b.*</saml:EncryptedAssertion>", xml, re.S).group(0)
    xml = xml.replace(enc, "<samlp:Extensions>%s</samlp:Extensions>" % enc)
    refused(env, login, xml, r"EncryptedAssertion: not a direct child of the Response")


def test_signed_response_with_swapped_encrypted_assertion(env, alive):
    # the IdP signed the Response over its EncryptedAssertion; the attacker
    # swaps in its own (encrypted to our public certificate)
    login = start(env)
    xml, _ = response(env, login, True, False)
    assertion = samlenc.assertion_of(xml)
    xml = xml.replace(assertion, samlenc.encrypted_assertion(assertion, env["enc_cert"]))
    xml = sign(env, xml, response=True)
    forged = assertion.replace(">alice<", ">mallory<")
    enc = re.search(r"<saml:EncryptedAssertion\b.*</saml:EncryptedAssertion>", xml, re.S).group(0)
    xml = xml.replace(enc, samlenc.encrypted_assertion(forged, env["enc_cert"]))
    refused(env, login, xml, r"Response signature: does not verify")


def test_forged_unsigned_assertion_encrypted_to_our_key(env, alive):
    login = start(env)
    xml, _ = response(env, login, False, False, name_id="mallory")
    assertion = samlenc.assertion_of(xml)
    xml = xml.replace(assertion, samlenc.encrypted_assertion(assertion, env["enc_cert"]))
    refused(env, login, xml, r"Signature: neither the Response nor the Assertion is signed")


def encrypting(env, login, content):
    """A response whose EncryptedAssertion holds content(signed, forged): the
    text made of a signed assertion for <login> and a forged unsigned one."""
    xml, _ = response(env, login, False, True)
    xml = sign(env, xml, assertion=True)
    assertion = samlenc.assertion_of(xml)
    forged = samlenc.assertion_of(response(env, login, False, False, name_id="mallory")[0])
    return xml.replace(assertion, samlenc.encrypted_assertion(
        assertion, env["enc_cert"], plain=content(assertion, forged).encode()))


def test_decrypts_to_two_assertions(env, alive):
    login = start(env)
    xml = encrypting(env, login, lambda signed, forged: forged + signed)
    refused(env, login, xml, r"EncryptedAssertion: decrypts to 2 element\(s\)")


def test_wrapped_assertion_inside_decrypted_one(env, alive):
    # the signed assertion hidden in the Advice of a forged one
    login = start(env)
    xml = encrypting(env, login, lambda signed, forged: forged.replace(
        "<saml:Subject>", "<saml:Advice>%s</saml:Advice><saml:Subject>" % signed, 1))
    refused(env, login, xml, r"EncryptedAssertion: the decrypted Assertion holds another one")


@pytest.mark.parametrize("how", ["other-key", "damaged"])
def test_undecryptable_same_reason(env, alive, how):
    login = start(env)
    xml, _ = response(env, login, False, True)
    xml = sign(env, xml, assertion=True)
    assertion = samlenc.assertion_of(xml)
    cert = env["other_cert"] if how == "other-key" else env["enc_cert"]
    enc = samlenc.encrypted_assertion(assertion, cert)
    if how == "damaged":
        # flip a bit of the data's CipherValue that lands in the padding
        # length byte of the last block (CBC: the byte 16 before it)
        values = re.findall(r"<xenc:CipherValue>([^<]+)</xenc:CipherValue>", enc)
        raw = bytearray(base64.b64decode(values[-1]))
        raw[-17] ^= 0x40
        enc = enc.replace(values[-1], base64.b64encode(bytes(raw)).decode())
    refused(env, login, xml.replace(assertion, enc),
            r"EncryptedAssertion: cannot be decrypted with our encryption key \(encrypted to "
            r"another key, or damaged\)")


def test_rsa_pkcs1_v15_key_transport_refused(env, alive):
    login = start(env)
    xml = signed_assertion_encrypted(env, login, key_alg="rsa-1_5")
    refused(env, login, xml, r"EncryptedKey EncryptionMethod: .*rsa-1_5\" refused \(RSA-OAEP only\)")


# ---- configuration ---------------------------------------------------------------

def test_key_from_variable(module_lab, env, alive):
    # key and certificate in one variable (a Secret), no files
    key, cert = samltools.make_key(env["work"], "from-env")
    with open(key) as k, open(cert) as c:
        pem = k.read() + c.read()
    up = module_lab.upstream("web-env")
    port = closed_port()
    keys = made_keys(module_lab.workdir, "env", encryption={"key_env": "PORTCULLIS_TEST_SAML_ENC"})
    module_lab.proxy(saml_config(up, port, os.path.join(env["work"], "idp-metadata.xml"), **keys),
                     env={"PORTCULLIS_TEST_SAML_ENC": pem})
    with open(cert, "rb") as f:
        want = b"".join(f.read().split())
    assert b"".join(samlenc.metadata_encryption_cert(sp_metadata(port)).split()) == want


@pytest.mark.parametrize("encryption,variable,message", [
    ({"key_env": "PORTCULLIS_TEST_SAML_ENC"}, None,
     r"saml\.encryption\.key_env: the variable PORTCULLIS_TEST_SAML_ENC is not set"),
    ({"key_env": "PORTCULLIS_TEST_SAML_ENC"}, "not a key",
     r"saml\.encryption\.key_env: .*must hold an RSA private key and its certificate"),
    ({"key_env": "PORTCULLIS_TEST_SAML_ENC", "key_file": "k.pem"}, "x",
     r"saml\.encryption\.key_env: .*leave out key_file and cert_file"),
    ({"key_file": "{work}/garbage.key", "cert_file": "{cert}"}, None,
     r"saml\.encryption\.key_file: .*not an RSA private key and its certificate"),
    ({"key_file": "{work}/absent.key", "cert_file": "{cert}"}, None,
     r"saml\.encryption\.key_file: .*key is missing but its certificate .* exists"),
    ({"require": "yes"}, None, r"saml\.encryption\.require"),
    ({"keyfile": "x"}, None, r"saml\.encryption.*keyfile"),
], ids=["env-unset", "env-garbage", "env-and-file", "garbage-key", "cert-without-key",
        "require-type", "unknown-key"])
def test_config_check_names_the_json_path(module_lab, env, tmp_path, encryption, variable,
                                          message):
    with open(os.path.join(env["work"], "garbage.key"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    enc = {k: v.format(work=env["work"], cert=env["cert"]) if isinstance(v, str) else v
           for k, v in encryption.items()}
    cfg = saml_config(module_lab.upstream("web-check"), closed_port(),
                      os.path.join(env["work"], "idp-metadata.xml"), encryption=enc,
                      certs_dir=str(tmp_path / "certs"))
    path = tmp_path / "check.json"
    path.write_text(json.dumps(cfg))
    res = run_binary(["-t", "-c", str(path)], env={"PORTCULLIS_TEST_SAML_ENC": variable})
    assert res.returncode != 0, res
    assert re.search(message, res.stderr + res.stdout), res.stderr + res.stdout

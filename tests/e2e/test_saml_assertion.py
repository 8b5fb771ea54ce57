"""The signed identity assertion (saml.identity_assertion, "identity_assertion"
on sites and routes), checked with an independent verifier: Debian's
python3-jwt (PyJWT) against the JWKS the proxy publishes on the SAML site and
on the admin listener.  Sessions come from a real login (a response signed with
xmlsec1) or are sealed here with the proxy's session key."""

import base64
import json
import os
import time

import pytest

import configs
from harness import need, request
from saml_common import ACS_PATH, Browser, closed_port, now, samltools, seal

need("jwt", "python")
import jwt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

IDP = "https://casdoor.test"
SSO = "https://casdoor.test/login/saml/authorize/admin/app"
HEADER = "X-Portcullis-Assertion"


def pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def env(module_lab):
    work = module_lab.workdir
    key, cert = samltools.make_key(work, "idp")
    md = os.path.join(work, "idp-metadata.xml")
    with open(md, "w") as f:
        f.write(samltools.idp_metadata(IDP, SSO, cert))
    # the operator's key file: the current key first, the previous one after it
    current, previous = ec.generate_private_key(ec.SECP256R1()), \
        ec.generate_private_key(ec.SECP256R1())
    key_file = os.path.join(work, "identity-jwt.key")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, pem(current) + pem(previous))
    os.close(fd)
    up = module_lab.upstream("web")
    port = closed_port()
    sites = [{"name": "posthog", "identity_assertion": True, "routes": [
        configs.route("capture", "web", path=["/e"]),
        {"name": "api", "match": {"path": ["/api"]}, "upstream": "web", "auth": "saml",
         "allow_bearer": ["phx_"], "identity_assertion": False},
        {"name": "admin", "match": {"path": ["/admin"]}, "upstream": "web", "auth": "saml",
         "identity_assertion": {"audience": "posthog-admin"}},
        {"name": "web", "upstream": "web", "auth": "saml"},
    ]}]
    cfg = configs.config({"web": up}, sites,
                         listeners=[{"name": "http", "address": "127.0.0.1:%d" % port}],
                         workers=1,  # one token cache: reuse is observable
                         saml={"idp_metadata": md, "base_url": "http://localhost:%d" % port,
                               "acs_path": ACS_PATH, "allow_sha1": True,
                               "headers": {"X-Auth-Email": "Email"},
                               "identity_assertion": {"key_file": key_file,
                                                      "lifetime": 30}})
    p = module_lab.proxy(cfg)
    with open(os.path.join(p.workdir, "certs", "session.key")) as f:
        skey = bytes.fromhex(f.read().split()[0])
    return {"work": work, "key": key, "cert": cert, "up": up, "port": port, "proxy": p,
            "current": current, "previous": previous, "skey": skey}


def jwks(env, admin=False):
    port = env["proxy"].admin_port if admin else env["port"]
    r = request(port, "GET", "/.well-known/jwks.json", host="localhost:%d" % env["port"])
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/jwk-set+json"
    return json.loads(r.body)


def verify(env, token, audience="web", **kw):
    """PyJWT's verdict with the published keys: the key named by the token's kid."""
    keys = jwt.PyJWKSet.from_dict(jwks(env))
    kid = jwt.get_unverified_header(token)["kid"]
    key = [k for k in keys.keys if k.key_id == kid]
    assert key, "kid %r is not published" % kid
    return jwt.decode(token, key[0].key, algorithms=["ES256"], audience=audience,
                      issuer="posthog", options={"require": ["exp", "iat", "sub"]}, **kw)


def session_browser(env, name="alice", lifetime=3600, attrs=None):
    t = now()
    attrs = attrs if attrs is not None else [("Email", "%s@example.com" % name),
                                             ("Roles", "staff"), ("Roles", "posthog-admin")]
    b = Browser(env["port"])
    b.cookies["__Host-portcullis-session"] = seal(env["skey"], "session", t, t + lifetime, t,
                                                  name, attrs)
    return b


def upstream_token(env, b, target="/insights", headers=()):
    env["up"].reset()
    r = b.get(target, headers=list(headers))
    assert r.status == 200, r
    got = env["up"].snapshot()[-1]
    values = got.header_all(HEADER)
    assert len(values) <= 1, values
    return values[0] if values else None


def test_valid_token_after_a_real_login(env, alive):
    b = Browser(env["port"])
    login = b.start_login("/insights")
    xml, _ = samltools.signed_response(
        env["key"], env["cert"], env["work"], in_response_to=login["request_id"],
        destination="http://localhost:%d%s" % (env["port"], ACS_PATH),
        recipient="http://localhost:%d%s" % (env["port"], ACS_PATH),
        audiences=["http://localhost:%d/saml/metadata" % env["port"]])
    assert b.post_acs(xml, login["relay"]).status == 303
    token = upstream_token(env, b)
    claims = verify(env, token)
    assert claims["sub"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["groups"] == ["posthog-admin"]
    assert claims["iss"] == "posthog" and claims["aud"] == "web"
    assert 0 < claims["exp"] - claims["iat"] <= 30
    assert abs(claims["iat"] - now()) <= 5
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    # signed by the first key of the file; both keys are published
    keys = jwks(env)["keys"]
    assert len(keys) == 2 and keys[0]["kid"] == header["kid"]
    assert jwks(env, admin=True) == jwks(env)
    # the same session and audience: the token is reused, not signed again
    assert upstream_token(env, b) == token


def test_audience_per_route_and_routes_without(env, alive):
    b = session_browser(env)
    token = upstream_token(env, b, "/admin/users")
    assert verify(env, token, audience="posthog-admin")["sub"] == "alice"
    with pytest.raises(jwt.InvalidAudienceError):
        verify(env, token, audience="web")
    with pytest.raises(jwt.InvalidAudienceError):
        verify(env, upstream_token(env, b), audience="posthog-admin")
    # "identity_assertion": false on the API route; none on the open route
    assert upstream_token(env, b, "/api/projects") is None
    assert upstream_token(env, Browser(env["port"]), "/e/") is None


def test_exp_never_past_the_session(env, alive):
    b = session_browser(env, "bob", lifetime=3)
    token = upstream_token(env, b)
    claims = verify(env, token)
    assert claims["exp"] <= now() + 3
    time.sleep(claims["exp"] - time.time() + 1.1)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(env, token)


def test_foreign_key_and_tampering_refused(env, alive):
    b = session_browser(env, "carol")
    token = upstream_token(env, b)
    header, payload, sig = token.split(".")
    kid = jwt.get_unverified_header(token)["kid"]
    # a token made with another key under our kid
    foreign = jwt.encode(verify(env, token), ec.generate_private_key(ec.SECP256R1()),
                         algorithm="ES256", headers={"kid": kid})
    with pytest.raises(jwt.InvalidSignatureError):
        verify(env, foreign)
    # our token with a changed payload
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(jwt.InvalidSignatureError):
        verify(env, ".".join([header, forged, sig]))
    # and one bit of the signature
    bad = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    with pytest.raises(jwt.InvalidSignatureError):
        verify(env, ".".join([header, payload, bad]))
    # the previous key still verifies what it signed (rotation)
    old = jwt.encode({"sub": "x", "aud": "web", "iss": "posthog", "iat": now(),
                      "exp": now() + 30}, env["previous"], algorithm="ES256",
                     headers={"kid": jwks(env)["keys"][1]["kid"]})
    assert verify(env, old)["sub"] == "x"


def test_client_sent_assertion_is_stripped_everywhere(env, alive):
    forged = jwt.encode({"sub": "admin", "aud": "web", "iss": "posthog", "iat": now(),
                         "exp": now() + 30}, env["current"], algorithm="ES256")
    sent = [(HEADER, forged), (HEADER.lower(), forged)]
    # open route, bearer pass on a SAML route: nothing reaches the upstream
    assert upstream_token(env, Browser(env["port"]), "/e/", headers=sent) is None
    assert upstream_token(env, Browser(env["port"]), "/api/x",
                          headers=sent + [("Authorization", "Bearer phx_abc")]) is None
    # with a session: only ours
    b = session_browser(env, "dave")
    token = upstream_token(env, b, headers=sent)
    assert token != forged and verify(env, token)["sub"] == "dave"
    # without a session the request is not let through at all
    r = Browser(env["port"]).get("/insights", headers=sent + [("Accept", "application/json")])
    assert r.status == 401

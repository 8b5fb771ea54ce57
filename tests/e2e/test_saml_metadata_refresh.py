"""The IdP metadata refresh (saml.idp_metadata_refresh) from an http:// URL:

  - a document that did not change is not parsed again (building the IdP's
    objects is the costly part of a refresh, and holds the SAML lock every
    login needs): no "refreshed" line while the same document comes back;
  - a changed document (the IdP rotated its signing key) is taken within a
    refresh: a response signed with the new key is accepted, and one signed
    with the old key no longer is.
"""


from harness import wait_until
from saml_common import Browser, MetadataServer, metadata_url_config, samltools

IDP = "https://idp.test"
SSO = "https://idp.test/sso"


def login(work, port, key, cert):
    b = Browser(port)
    lg = b.start_login("/insights")
    base = "http://localhost:%d" % port
    xml, _ = samltools.signed_response(
        key, cert, work, destination=base + "/complete/saml/",
        recipient=base + "/complete/saml/", audiences=[base + "/saml/metadata"],
        in_response_to=lg["request_id"], sigalg=samltools.RSA_SHA256,
        digest=samltools.SHA256, issuer=IDP)
    return b.post_acs(xml, lg["relay"])


def test_unchanged_metadata_is_not_rebuilt_and_a_rotated_key_is_taken(lab):
    work = lab.workdir
    key_a, cert_a = samltools.make_key(work, "idp-a")
    key_b, cert_b = samltools.make_key(work, "idp-b")
    md = MetadataServer(samltools.idp_metadata(IDP, SSO, cert_a))
    try:
        cfg, port = metadata_url_config(lab, md.url, 1)
        cfg["log"]["level"] = "debug"
        proxy = lab.proxy(cfg)
        assert login(work, port, key_a, cert_a).status == 303
        fetched = md.fetches
        wait_until(lambda: md.fetches >= fetched + 3, timeout=20, what="three refreshes")
        assert "IdP metadata refreshed" not in proxy.stderr()
        md.document = samltools.idp_metadata(IDP, SSO, cert_b)
        proxy.wait_stderr(r"saml: IdP metadata refreshed from", timeout=20)
        assert login(work, port, key_b, cert_b).status == 303
        assert login(work, port, key_a, cert_a).status == 403
    finally:
        md.close()

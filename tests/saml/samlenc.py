"""XML Encryption of a SAML assertion, as an IdP does it (for the tests of
encrypted assertions): a fresh AES key encrypts the <saml:Assertion>
(xenc:EncryptedData, Type Element), the SP's RSA certificate wraps that key
(xenc:EncryptedKey, RSA-OAEP by default).  Python `cryptography` only.

    encrypted_assertion(assertion_xml, cert_pem, data_alg="aes128-cbc",
                        key_alg="rsa-oaep-mgf1p", key_place="keyinfo")

key_place "keyinfo" puts the EncryptedKey inside the EncryptedData's KeyInfo
(SimpleSAMLphp's shape), "sibling" beside it with a RetrievalMethod
(Shibboleth IdP's shape)."""

import base64
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding as sympad
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
DS = "http://www.w3.org/2000/09/xmldsig#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"

DATA_ALGS = {"aes128-cbc": (XENC, 16), "aes256-cbc": (XENC, 32),
             "aes128-gcm": (XENC11, 16), "aes256-gcm": (XENC11, 32)}


def metadata_encryption_cert(sp_metadata):
    """The PEM certificate of the KeyDescriptor use="encryption" of SP metadata
    (bytes or str), or None."""
    text = sp_metadata.decode() if isinstance(sp_metadata, bytes) else sp_metadata
    m = re.search(r'<md:KeyDescriptor use="encryption">.*?<ds:X509Certificate>([^<]+)<', text,
                  re.S)
    if not m:
        return None
    body = m.group(1).strip()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" %
            "\n".join(lines)).encode()


def _encrypt_data(alg, key, plain):
    if alg.endswith("-gcm"):
        iv = os.urandom(12)
        return iv + AESGCM(key).encrypt(iv, plain, None)
    iv = os.urandom(16)
    p = sympad.PKCS7(128).padder()
    padded = p.update(plain) + p.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(padded) + enc.finalize()


def _wrap_key(cert_pem, key, key_alg):
    pub = x509.load_pem_x509_certificate(cert_pem).public_key()
    if key_alg == "rsa-1_5":
        return pub.encrypt(key, padding.PKCS1v15())
    return pub.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                         algorithm=hashes.SHA1(), label=None))


def encrypted_assertion(assertion_xml, cert_pem, data_alg="aes128-cbc", key_alg="rsa-oaep-mgf1p",
                        key_place="keyinfo", plain=None):
    """The <saml:EncryptedAssertion> holding <assertion_xml> (str) encrypted to
    <cert_pem> (bytes).  <plain>, when given, is encrypted instead of the
    assertion (bytes: anything an attacker likes)."""
    ns, size = DATA_ALGS[data_alg]
    key = os.urandom(size)
    data = plain if plain is not None else assertion_xml.encode()
    cipher = base64.b64encode(_encrypt_data(data_alg, key, data)).decode()
    wrapped = base64.b64encode(_wrap_key(cert_pem, key, key_alg)).decode()
    ek = ('<xenc:EncryptedKey xmlns:xenc="%s" Id="_ek1"><xenc:EncryptionMethod Algorithm="%s%s">'
          '<ds:DigestMethod xmlns:ds="%s" Algorithm="%ssha1"/></xenc:EncryptionMethod>'
          '<xenc:CipherData><xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData>'
          '</xenc:EncryptedKey>' % (XENC, XENC, key_alg, DS, DS, wrapped))
    if key_place == "keyinfo":
        keyinfo, beside = '<ds:KeyInfo xmlns:ds="%s">%s</ds:KeyInfo>' % (DS, ek), ""
    else:
        keyinfo = ('<ds:KeyInfo xmlns:ds="%s"><ds:RetrievalMethod URI="#_ek1" '
                   'Type="%sEncryptedKey"/></ds:KeyInfo>' % (DS, XENC))
        beside = ek
    return ('<saml:EncryptedAssertion xmlns:saml="%s"><xenc:EncryptedData xmlns:xenc="%s" '
            'Type="%sElement"><xenc:EncryptionMethod Algorithm="%s%s"/>%s<xenc:CipherData>'
            '<xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>%s'
            '</saml:EncryptedAssertion>' % (SAML, XENC, XENC, ns, data_alg, keyinfo, cipher,
                                            beside))


def assertion_of(response_xml):
    """The <saml:Assertion>...</saml:Assertion> text of a rendered response."""
    m = re.search(r"<saml:Assertion\b.*</saml:Assertion>", response_xml, re.S)
    return m.group(0)

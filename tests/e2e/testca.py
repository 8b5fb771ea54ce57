"""A throwaway certificate authority for the TLS tests (python3-cryptography):
client and server certificates with any validity window, an OCSP URL in the
AIA when asked, and the index.txt that `openssl ocsp` serves revocation
status from."""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


class TestCA:
    """A root CA in <workdir>/<name>.crt and .key; issue() signs leaves."""

    __test__ = False  # not a pytest class

    def __init__(self, workdir, name="ca", cn="Portcullis Test CA", ocsp_url=None):
        self.dir = str(workdir)
        self.name = name
        self.ocsp_url = ocsp_url
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        self.cert = (x509.CertificateBuilder()
                     .subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(_now() - DAY).not_valid_after(_now() + 30 * DAY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                  False, False), True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), False)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = os.path.join(self.dir, name + ".crt")
        self.key_path = os.path.join(self.dir, name + ".key")
        with open(self.cert_path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.key_path, self.key)
        self.index_path = os.path.join(self.dir, name + "-index.txt")
        self.issued = []  # [status, not_after, revoked_at, serial, subject]
        self._write_index()

    def issue(self, leaf, cn, sans=(), emails=(), server=False, not_before=None,
              not_after=None, ocsp=None):
        """Sign a leaf: <leaf>.crt (the leaf then this CA), <leaf>.key.  Client
        certificate unless <server>; <ocsp> (default: the CA's ocsp_url) goes
        into the AIA.  Returns (cert_path, key_path, certificate)."""
        key = ec.generate_private_key(ec.SECP256R1())
        not_before = not_before or _now() - DAY
        not_after = not_after or _now() + 7 * DAY
        ocsp = self.ocsp_url if ocsp is None else ocsp
        names = [x509.DNSName(n) for n in sans] + [x509.RFC822Name(e) for e in emails]
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                         "Portcullis Tests"),
                                      x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(self.cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before).not_valid_after(not_after)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
             .add_extension(x509.ExtendedKeyUsage(
                 [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                 False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), False))
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), False)
        if ocsp:
            b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(ocsp))]), False)
        cert = b.sign(self.key, hashes.SHA256())
        cert_path = os.path.join(self.dir, leaf + ".crt")
        key_path = os.path.join(self.dir, leaf + ".key")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        self.issued.append(["V", not_after, None, cert.serial_number,
                            cert.subject.rfc4514_string()])
        self._write_index()
        return cert_path, key_path, cert

    def revoke(self, cert):
        """Mark <cert> revoked in the index `openssl ocsp` reads."""
        for row in self.issued:
            if row[3] == cert.serial_number:
                row[0] = "R"
                row[2] = _now() - datetime.timedelta(minutes=5)
        self._write_index()

    def _write_index(self):
        def stamp(t):
            return t.strftime("%y%m%d%H%M%SZ")

        with open(self.index_path, "w") as f:
            for status, after, revoked, serial, subject in self.issued:
                hexserial = "%X" % serial
                f.write("%s\t%s\t%s\t%s\tunknown\t/%s\n" % (
                    status, stamp(after), stamp(revoked) if revoked else "",
                    hexserial.rjust(len(hexserial) + len(hexserial) % 2, "0"),
                    subject.replace(",", "/")))
        with open(self.index_path + ".attr", "w") as f:
            f.write("unique_subject = no\n")

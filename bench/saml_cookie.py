#!/usr/bin/env python3
"""SAML inputs for bench/auth.sh, built with the end-to-end tests' own code
(tests/saml/samltools.py for the IdP key and metadata, tests/e2e/saml_common.py
for sealing a session cookie in the format of src/session.c).

  saml_cookie.py setup DIR     write DIR/idp.key, DIR/idp.crt, DIR/idp-metadata.xml and
                               DIR/session.key (one random key, 64 hex digits, mode 0600)
  saml_cookie.py cookie DIR    print a valid session cookie value sealed with that key:
                               issued and last seen now, expiring in an hour, NameID
                               alice@example.com, Email and Roles (posthog-admin)
  saml_cookie.py cookies DIR N print N such cookies, one a line, each sealed on its own
                               (fresh nonce: N different texts of the same session)
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from saml_common import now, samltools, seal  # noqa: E402

IDP = "https://idp.bench.test"
SSO = "https://idp.bench.test/login/saml/authorize/admin/app"


def setup(d):
    _, cert = samltools.make_key(d, "idp")
    with open(os.path.join(d, "idp-metadata.xml"), "w") as f:
        f.write(samltools.idp_metadata(IDP, SSO, cert))
    path = os.path.join(d, "session.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")


def cookie(d, n=1):
    with open(os.path.join(d, "session.key")) as f:
        key = bytes.fromhex(f.read().split()[0])
    t = now()
    for _ in range(n):
        print(seal(key, "session", t, t + 3600, t, "alice@example.com",
                   [("Email", "alice@example.com"), ("Roles", "posthog-admin")]))


def main():
    if len(sys.argv) == 3 and sys.argv[1] in ("setup", "cookie"):
        (setup if sys.argv[1] == "setup" else cookie)(sys.argv[2])
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "cookies" and sys.argv[3].isdigit():
        cookie(sys.argv[2], int(sys.argv[3]))
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())

"""SimpleSAMLphp (Debian 12's `simplesamlphp` 1.19) as a SAML 2.0 IdP on
127.0.0.1, for the end-to-end tests.

The configuration lives in tests/saml/simplesamlphp/ (config/, metadata/) and
reads everything that varies from the environment; this module makes a run
directory, generates the IdP key and certificate with openssl, picks a free
port and serves /usr/share/simplesamlphp/www with `php -S`, with
SIMPLESAMLPHP_CONFIG_DIR pointing at that config.  Nothing is written to /etc,
/usr/share or /var.

    idp = SimpleSAMLphp(workdir)
    idp.start()                 # returns once the metadata answers
    idp.metadata_url            # http://127.0.0.1:PORT/saml2/idp/metadata.php
    idp.metadata_file           # the same metadata, saved in the run directory
    idp.set_sp_metadata(xml)    # the SP metadata (bytes) fetched from the SP
    idp.set_sp_metadata(None, {"saml20.sign.assertion": False})  # options
    idp.log()                   # SimpleSAMLphp's own log (DEBUG level)
    idp.stop()                  # SIGTERM, then SIGKILL; by PID

The IdP has one user, alice / alice-password, with the attributes Casdoor
sends (Email, Name, DisplayName, Roles); the NameID is the Name attribute
(format unspecified).  It verifies the HTTP-Redirect signature of every
AuthnRequest and logout message against the certificate in the SP metadata.

Run by hand (Ctrl-C or SIGTERM stops it):

    /usr/bin/python3 tests/e2e/simplesamlphp.py /tmp/ssp [SP_METADATA_FILE]
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from ports import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_ROOT = os.path.normpath(os.path.join(HERE, "..", "saml", "simplesamlphp"))
SSP_ROOT = "/usr/share/simplesamlphp"
SSP_WWW = os.path.join(SSP_ROOT, "www")
PHP = shutil.which("php") or "/usr/bin/php"

# Debian packages this IdP needs (for scripts/install-deps.sh).
PACKAGES = ("simplesamlphp", "php-cli", "php-xml", "php-mbstring", "openssl")
# PHP extensions SimpleSAMLphp 1.19 uses for a SAML IdP.
PHP_EXTENSIONS = ("dom", "openssl", "mbstring", "SimpleXML", "xml", "session", "zlib", "hash")

USER = "alice"
PASSWORD = "alice-password"
ATTRIBUTES = {"Email": ["alice@example.com"], "Name": ["alice"],
              "DisplayName": ["Alice Example"], "Roles": ["posthog-admin", "staff"]}


# AuthnContextClassRef values for the step-up tests.
AC_PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
AC_MFA = "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"


def login_options(answer=None, authn_instant_offset=None):
    """saml20-sp-remote options (for set_sp_metadata) that shape the answer's
    AuthnStatement through an authproc filter run on every answer:
    AuthnContextClassRef <answer>, or (None) the first class the
    AuthnRequest's RequestedAuthnContext asks for (else SimpleSAMLphp's own:
    Password over plain http); with <authn_instant_offset>, an AuthnInstant
    that many seconds from now (an IdP that ignores ForceAuthn, or a wrong
    clock).  ForceAuthn itself SimpleSAMLphp honours: it shows its password
    form again."""
    if answer is None:
        code = ("$rac = $state['saml:RequestedAuthnContext'] ?? null; "
                "if (is_array($rac) && !empty($rac['AuthnContextClassRef'])) "
                "{ $state['saml:AuthnContextClassRef'] = $rac['AuthnContextClassRef'][0]; }")
    else:
        code = "$state['saml:AuthnContextClassRef'] = %s;" % json.dumps(answer)
    if authn_instant_offset is not None:
        code += " $state['AuthnInstant'] = time() + (%d);" % authn_instant_offset
    return {"authproc": {"90": {"class": "core:PHP", "code": code}}}


def missing():
    """Why SimpleSAMLphp cannot run here (a sentence), or None when it can."""
    if not os.path.exists(PHP):
        return "php is not installed (Debian packages: %s)" % " ".join(PACKAGES)
    if not os.path.isfile(os.path.join(SSP_WWW, "saml2", "idp", "SSOService.php")):
        return "SimpleSAMLphp is not installed at %s (Debian packages: %s)" % (
            SSP_ROOT, " ".join(PACKAGES))
    if not shutil.which("openssl"):
        return "the openssl command is not installed"
    try:
        out = subprocess.run([PHP, "-m"], capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return "php -m failed: %s" % exc
    have = {line.strip().lower() for line in out.decode("utf-8", "replace").splitlines()}
    lacking = [e for e in PHP_EXTENSIONS if e.lower() not in have]
    if lacking:
        return "php lacks the extensions %s (Debian packages php-xml, php-mbstring)" % (
            ", ".join(lacking))
    return None


def _free_port():
    return free_port()


# Loopback only: never through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url, timeout=5):
    with _OPENER.open(url, timeout=timeout) as r:
        return r.status, r.read()


class SimpleSAMLphp:
    """One SimpleSAMLphp IdP process served by `php -S` (see the module doc)."""

    def __init__(self, workdir):
        self.workdir = os.path.abspath(workdir)
        self.proc = None
        self.port = None
        self.base_url = None

    # -- addresses ---------------------------------------------------------

    @property
    def metadata_url(self):
        return self.base_url + "saml2/idp/metadata.php"

    @property
    def entity_id(self):
        return self.metadata_url

    @property
    def sso_url(self):
        return self.base_url + "saml2/idp/SSOService.php"

    @property
    def slo_url(self):
        return self.base_url + "saml2/idp/SingleLogoutService.php"

    @property
    def metadata_file(self):
        return os.path.join(self.workdir, "idp-metadata.xml")

    @property
    def sp_metadata_file(self):
        return os.path.join(self.workdir, "sp-metadata.xml")

    @property
    def log_path(self):
        return os.path.join(self.workdir, "log", "simplesamlphp.log")

    @property
    def server_log_path(self):
        return os.path.join(self.workdir, "php-server.log")

    # -- life cycle --------------------------------------------------------

    def _prepare(self):
        for sub in ("log", "data", "tmp", "sessions"):
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        key = os.path.join(self.workdir, "idp.key")
        cert = os.path.join(self.workdir, "idp.crt")
        if not (os.path.exists(key) and os.path.exists(cert)):
            r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                "-keyout", key, "-out", cert, "-days", "30",
                                "-subj", "/CN=simplesamlphp-test-idp"],
                               capture_output=True)
            if r.returncode != 0:
                raise RuntimeError("openssl could not make the IdP key: %s" %
                                   r.stderr.decode("utf-8", "replace"))
            os.chmod(key, 0o600)

    def _launch(self, port):
        self.port = port
        self.base_url = "http://127.0.0.1:%d/" % port
        env = dict(os.environ)
        env.update({
            "SIMPLESAMLPHP_CONFIG_DIR": os.path.join(CONFIG_ROOT, "config"),
            "SSP_TEST_WORK": self.workdir,
            "SSP_TEST_BASEURL": self.base_url,
            "SSP_TEST_SALT": secrets.token_hex(24),
            "PHP_CLI_SERVER_WORKERS": "4",
        })
        log = open(self.server_log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [PHP, "-d", "display_errors=stderr", "-d", "log_errors=0",
                 "-d", "error_reporting=E_ALL & ~E_DEPRECATED & ~E_STRICT",
                 "-d", "session.save_path=" + os.path.join(self.workdir, "sessions"),
                 "-S", "127.0.0.1:%d" % port, "-t", SSP_WWW],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=self.workdir, start_new_session=True)
        finally:
            log.close()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, body = _get(self.metadata_url, timeout=2)
                if status == 200 and b"IDPSSODescriptor" in body:
                    with open(self.metadata_file, "wb") as f:
                        f.write(body)
                    return True
                last = "status %d: %r" % (status, body[:300])
            except (OSError, urllib.error.URLError) as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise RuntimeError("SimpleSAMLphp did not serve %s within %.0f s (last: %s); its output:"
                           "\n%s" % (self.metadata_url, timeout, last, self.server_log()[-3000:]))

    def start(self, timeout=20):
        """Start the IdP on a free port; return self once its metadata answers."""
        why = missing()
        if why:
            raise RuntimeError(why)
        self._prepare()
        try:
            for _ in range(5):
                self._launch(_free_port())
                if self._wait_ready(timeout):
                    return self
                # php exited: the port was taken meanwhile, or a real failure.
                out = self.server_log()
                self.proc = None
                if "Address already in use" not in out:
                    raise RuntimeError("php -S exited at start; its output:\n%s" % out[-3000:])
            raise RuntimeError("php -S found no free port in 5 attempts")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stop the php -S process (and its workers) by PID; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # php -S with workers: the workers are in the session started for it.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- data --------------------------------------------------------------

    def set_sp_metadata(self, xml, options=None):
        """Install the SP metadata (bytes or str; None keeps the current one)
        that the IdP trusts, and saml20-sp-remote options that override what
        it says (a dict, e.g. {"saml20.sign.assertion": False}; None: none).
        Without options the IdP verifies AuthnRequest and logout signatures
        and signs the Assertion (tests/saml/simplesamlphp/metadata/)."""
        if xml is not None:
            data = xml.encode() if isinstance(xml, str) else xml
            self._write(self.sp_metadata_file, data)
        self._write(os.path.join(self.workdir, "sp-options.json"),
                    json.dumps(options or {}).encode())

    @staticmethod
    def _write(path, data):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def log(self):
        """SimpleSAMLphp's log so far ('' before the first line)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def server_log(self):
        """Output of php -S (request lines, PHP errors)."""
        try:
            with open(self.server_log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: %s WORKDIR [SP_METADATA_FILE]\n" % argv[0])
        return 2
    idp = SimpleSAMLphp(argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop php in the finally
    if len(argv) == 3:
        with open(argv[2], "rb") as f:
            idp.set_sp_metadata(f.read())
    try:
        idp.start()
        print("SimpleSAMLphp IdP: metadata %s (saved in %s), user %s / %s, log %s" % (
            idp.metadata_url, idp.metadata_file, USER, PASSWORD, idp.log_path), flush=True)
        while idp.proc is not None and idp.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        idp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Configurations for the end-to-end tests: the one place that writes them.

config()        a small config dict: one "http" listener and the admin
                listener on 127.0.0.1 port 0, the given upstreams and sites.
posthog_env()   environment that makes examples/posthog/portcullis.json
                point every upstream at a recording server.  The example
                protects the UI with SAML: SAML_IDP_METADATA is a generated
                IdP metadata file unless the caller passes its own IdP.
posthog_session_cookie()  a session cookie sealed with a key file, so tests
                reach the protected routes without a login round trip.
"""

import atexit
import copy
import os
import shutil
import sys
import tempfile
import threading
import time

from harness import SOURCE_DIR, Upstream

EXAMPLE_POSTHOG = os.path.join(SOURCE_DIR, "examples", "posthog", "portcullis.json")

# Upstream name in the example → environment variable naming its server.
POSTHOG_UPSTREAM_ENV = {
    "web": "POSTHOG_WEB",
    "capture": "POSTHOG_CAPTURE",
    "replay": "POSTHOG_REPLAY",
    "flags": "POSTHOG_FLAGS",
    "livestream": "POSTHOG_LIVESTREAM",
    "plugins": "POSTHOG_PLUGINS",
    "app": "APP_UPSTREAM",
}

POSTHOG_DOMAIN = "posthog.test"
APP_DOMAIN = "app.test"

# What the example's SAML settings come to with POSTHOG_DOMAIN (defaults).
POSTHOG_SP_ENTITY_ID = "https://%s/saml/metadata" % POSTHOG_DOMAIN
POSTHOG_ACS_PATH = "/complete/saml/"
POSTHOG_SESSION_COOKIE = "__Host-portcullis-session"
# The attribute the example maps to X-Auth-Email.
POSTHOG_EMAIL_ATTRIBUTE = "Email"

_idp_lock = threading.Lock()
_idp_metadata = None


def throwaway_idp_metadata():
    """Path of an IdP metadata file (made once per test process, from a fresh
    key nobody signs with): enough for the example to start; no login can
    succeed against it."""
    global _idp_metadata
    with _idp_lock:
        if _idp_metadata is None:
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                            "saml"))
            import samltools
            work = tempfile.mkdtemp(prefix="portcullis-e2e-idp-")
            atexit.register(shutil.rmtree, work, True)
            _, cert = samltools.make_key(work, "throwaway-idp")
            path = os.path.join(work, "idp-metadata.xml")
            with open(path, "w") as f:
                f.write(samltools.idp_metadata("https://idp.invalid/metadata",
                                               "https://idp.invalid/sso", cert))
            _idp_metadata = path
        return _idp_metadata


def write_session_key(path):
    """Write a fresh session key file (0600) at <path>; returns the 32 key bytes."""
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def posthog_session_cookie(key, email="alice@example.com", name_id="alice", lifetime=3600):
    """'__Host-portcullis-session=<sealed>' for the example, sealed with <key>
    (the bytes in its SESSION_KEY_FILE): a signed-in user with Email <email>."""
    from saml_common import seal
    t = int(time.time())
    return "%s=%s" % (POSTHOG_SESSION_COOKIE,
                      seal(key, "session", t, t + lifetime, t, name_id,
                           [(POSTHOG_EMAIL_ATTRIBUTE, email)]))


def posthog_env(upstreams, access_log="stdout", idp_metadata=None, session_key_file=None):
    """Environment for the PostHog example; <upstreams> maps the example's
    upstream names to Upstream objects (every name must be present).
    <idp_metadata>: SAML_IDP_METADATA (default: a throw-away IdP's metadata
    file); <session_key_file>: SESSION_KEY_FILE (default: the example's own,
    created under CERTS_DIR)."""
    env = {
        "PORTCULLIS_HTTP": "127.0.0.1:0",
        "PORTCULLIS_ADMIN": "127.0.0.1:0",
        "POSTHOG_DOMAIN": POSTHOG_DOMAIN,
        "APP_DOMAIN": APP_DOMAIN,
        "ACCESS_LOG": access_log,
        "LOG_LEVEL": "info",
        "TLS_MODE": "off",  # plain HTTP only: no :443 listener, no redirect
        "SAML_IDP_METADATA": idp_metadata or throwaway_idp_metadata(),
    }
    if session_key_file is not None:
        env["SESSION_KEY_FILE"] = session_key_file
    for name, var in POSTHOG_UPSTREAM_ENV.items():
        env[var] = upstreams[name].address
    return env


def posthog_example(workdir, h2c=True):
    """Path of examples/posthog/portcullis.json as the tests run it: a copy in
    <workdir> whose plain listener also takes HTTP/2 with prior knowledge
    ("h2c": true), so that the `client` fixture's HTTP/2 requests reach the
    same proxy as its HTTP/1.1 ones.  <h2c> False: the example itself."""
    if not h2c:
        return EXAMPLE_POSTHOG
    import json
    with open(EXAMPLE_POSTHOG) as f:
        cfg = json.load(f)
    for lst in cfg["listeners"]:
        if lst.get("name") == "http":
            lst["h2c"] = True
    path = os.path.join(str(workdir), "posthog-h2c.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return path


def upstream_entry(spec):
    """An upstream object for the config: an Upstream, an address string, a
    list of those, or (one of those, {extra keys})."""
    extra = {}
    if isinstance(spec, tuple):
        spec, extra = spec
    servers = spec if isinstance(spec, list) else [spec]
    entry = {"servers": [s.address if isinstance(s, Upstream) else s for s in servers]}
    entry.update(extra)
    return entry


def route(name, upstream=None, path=None, **keys):
    """A route object: "match": {"path": path} when <path> is given."""
    r = {"name": name}
    if path is not None:
        r["match"] = {"path": list(path)}
    if upstream is not None:
        r["upstream"] = upstream
    r.update(keys)
    return r


def config(upstreams, sites, **top):
    """A whole config.  <upstreams>: name → spec (see upstream_entry); <sites>:
    list of site objects; <top>: other top-level keys (merged one level deep
    for dicts such as "timeouts" or "limits")."""
    cfg = {
        "listeners": [{"name": "http", "address": "127.0.0.1:0"}],
        "admin": {"address": "127.0.0.1:0"},
        "workers": 2,
        "log": {"level": "info", "access_log": "stdout"},
        "upstreams": {name: upstream_entry(spec) for name, spec in upstreams.items()},
        "sites": copy.deepcopy(sites),
    }
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg

"""Configurations for the end-to-end tests: the one place that writes them.

config()        a small config dict: one "http" listener and the admin
                listener on 127.0.0.1 port 0, the given upstreams and sites.
posthog_env()   environment that makes examples/posthog/portcullis.json
                point every upstream at a recording server.
"""

import copy
import os

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


def posthog_env(upstreams, access_log="stdout"):
    """Environment for the PostHog example; <upstreams> maps the example's
    upstream names to Upstream objects (every name must be present)."""
    env = {
        "PORTCULLIS_HTTP": "127.0.0.1:0",
        "PORTCULLIS_ADMIN": "127.0.0.1:0",
        "POSTHOG_DOMAIN": POSTHOG_DOMAIN,
        "APP_DOMAIN": APP_DOMAIN,
        "ACCESS_LOG": access_log,
        "LOG_LEVEL": "info",
        "TLS_MODE": "off",  # plain HTTP only: no :443 listener, no redirect
    }
    for name, var in POSTHOG_UPSTREAM_ENV.items():
        env[var] = upstreams[name].address
    return env


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

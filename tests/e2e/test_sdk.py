"""The real posthog-node SDK (from npm) sends events through the proxy, to the
PostHog domain directly and through /ingest on the app domain, with the
example's SAML gate in place: SDK traffic needs no session, and a personal
API key (Bearer phx_...) reaches PostHog's /api without one."""

import gzip
import json
import os
import subprocess
import uuid

import pytest

from configs import APP_DOMAIN, EXAMPLE_POSTHOG, POSTHOG_DOMAIN, POSTHOG_UPSTREAM_ENV, posthog_env
from harness import Fixed, need

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk")
API_KEY = "phc_e2eTestProjectToken"
PERSONAL_KEY = "phx_e2eTestPersonalApiKey"


@pytest.fixture(scope="module")
def sdk():
    node, npm = need("node"), need("npm")
    if not os.path.isdir(os.path.join(SDK_DIR, "node_modules", "posthog-node")):
        res = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, "npm ci in %s failed:\n%s\n%s" % (SDK_DIR, res.stdout,
                                                                     res.stderr)
    return node


@pytest.fixture(scope="module")
def env(module_lab):
    class Env:
        pass
    e = Env()
    e.ups = {name: module_lab.upstream(name) for name in POSTHOG_UPSTREAM_ENV}
    e.proxy = module_lab.proxy(EXAMPLE_POSTHOG, env=posthog_env(e.ups), name="sdk")
    return e


def run_sdk(node, opts, script="send.mjs"):
    res = subprocess.run([node, os.path.join(SDK_DIR, script), json.dumps(opts)],
                         cwd=SDK_DIR, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, "posthog-node run failed (exit %d):\nstdout: %s\nstderr: %s" % (
        res.returncode, res.stdout, res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def sent_events(env, distinct_id):
    """[(recorded request, event)] for every event of <distinct_id> that the
    capture upstream received (gzip bodies decoded)."""
    out = []
    for req in env.ups["capture"].snapshot():
        body = req.body
        if (req.header("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        doc = json.loads(body)
        events = doc.get("batch", [doc]) if isinstance(doc, dict) else doc
        for ev in events:
            if ev.get("distinct_id") == distinct_id:
                out.append((req, doc, ev))
    return out


def events_for(distinct_id):
    return [{"event": "e2e sdk event %d" % i,
             "properties": {"n": i, "plan": "pro", "nested": {"list": [1, 2, i]},
                            "unicode": "caf\u00e9 \u2603", "url": "https://app.test/p?x=%d" % i}}
            for i in range(3)]


def check_events(env, distinct_id, events):
    got = sent_events(env, distinct_id)
    assert [ev["event"] for _, _, ev in got] == [e["event"] for e in events], \
        "capture received %r" % [ev for _, _, ev in got]
    for (req, doc, ev), want in zip(got, events):
        assert req.path == "/batch/"
        assert doc.get("api_key") == API_KEY
        for key, value in want["properties"].items():
            assert ev["properties"].get(key) == value, (key, ev["properties"])
        assert ev["properties"].get("$lib") == "posthog-node"
    # Every other upstream saw nothing of these events.
    for name, up in env.ups.items():
        if name != "capture":
            for r in up.snapshot():
                assert distinct_id.encode() not in r.body
    return got


def test_posthog_node_direct(sdk, env, alive):
    distinct_id = "user-" + uuid.uuid4().hex
    events = events_for(distinct_id)
    result = run_sdk(sdk, {"host": "http://127.0.0.1:%d" % env.proxy.port, "apiKey": API_KEY,
                           "distinctId": distinct_id, "events": events})
    assert result["ok"], result
    got = check_events(env, distinct_id, events)
    for req, _, _ in got:
        assert req.header_all("Content-Encoding") == ["gzip"], "posthog-node sends gzip"
        assert req.header_all("X-Forwarded-For") == ["127.0.0.1"]


def test_posthog_node_through_ingest(sdk, env, alive):
    distinct_id = "user-" + uuid.uuid4().hex
    events = events_for(distinct_id)
    result = run_sdk(sdk, {"host": "http://127.0.0.1:%d/ingest" % env.proxy.port,
                           "hostHeader": APP_DOMAIN, "cookie": "session=app-secret",
                           "apiKey": API_KEY, "distinctId": distinct_id, "events": events})
    assert result["ok"], result
    got = check_events(env, distinct_id, events)
    for req, _, _ in got:
        assert req.header_all("Host") == [POSTHOG_DOMAIN]
        assert not req.has_header("Cookie")
        assert req.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert env.ups["app"].snapshot() == [], "the app upstream saw SDK traffic"


def test_posthog_node_personal_key_passes_saml(sdk, env, alive):
    """getRemoteConfigPayload: GET /api/projects/@current/... with the personal
    API key, no session: the gate lets it through to web, which sees the key."""
    payload = {"colour": "blue", "n": 7}
    env.ups["web"].reset(Fixed(200, [("Content-Type", "application/json")],
                               json.dumps(payload).encode()))
    try:
        result = run_sdk(sdk, {"host": "http://127.0.0.1:%d" % env.proxy.port,
                               "apiKey": API_KEY, "personalApiKey": PERSONAL_KEY,
                               "flag": "e2e-flag"}, script="remote_config.mjs")
    finally:
        reqs = env.ups["web"].snapshot()
        env.ups["web"].reset()
    assert result["ok"], result
    assert result["payload"] == payload
    assert len(reqs) == 1, reqs
    req = reqs[0]
    assert req.path == "/api/projects/@current/feature_flags/e2e-flag/remote_config"
    assert req.header_all("Authorization") == ["Bearer " + PERSONAL_KEY]
    assert not req.has_header("X-Auth-Email")


def test_posthog_node_without_personal_key_format_refused(sdk, env, alive):
    """The same call with a key that is not a personal API key (no phx_ prefix)
    is stopped by the gate (401): web sees nothing."""
    env.ups["web"].reset()
    result = run_sdk_raw(sdk, {"host": "http://127.0.0.1:%d" % env.proxy.port,
                               "apiKey": API_KEY, "personalApiKey": "not-a-personal-key",
                               "flag": "e2e-flag"}, script="remote_config.mjs")
    assert env.ups["web"].snapshot() == []
    # posthog-node reads the gate's JSON 401 body as the payload.
    assert result["payload"] == {"error": "authentication required",
                                 "login_url": result["payload"].get("login_url")}, result
    assert result["payload"]["login_url"].startswith("https://%s/saml/login" % POSTHOG_DOMAIN)


def run_sdk_raw(node, opts, script):
    res = subprocess.run([node, os.path.join(SDK_DIR, script), json.dumps(opts)],
                         cwd=SDK_DIR, capture_output=True, text=True, timeout=120)
    return json.loads(res.stdout.strip().splitlines()[-1])

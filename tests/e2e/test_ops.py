"""Operations: config check (-t) on every shipped config and on broken ones,
--version/--help, the admin listener (/_health, /_ready, /metrics), the
access log, SIGHUP reloads under load, SIGTERM draining."""

import glob
import json
import os
import re
import socket
import threading
import time
import uuid

import pytest

import configs
from configs import config, route
from harness import (SOURCE_DIR, WAIT, Echo, Fixed, Slow, request, run_binary, wait_until)

HOST = "main.test"


# ------------------------------------------------------------ config check

def shipped_configs():
    files = []
    for top in ("conf", "examples"):
        files += glob.glob(os.path.join(SOURCE_DIR, top, "**", "*.json"), recursive=True)
    out = []
    for path in sorted(files):
        with open(path) as f:
            try:
                doc = json.load(f)
            except ValueError:
                doc = None  # still checked: a broken shipped file must fail the test
        if isinstance(doc, dict) and "json-schema.org" in str(doc.get("$schema", "")):
            continue  # a JSON Schema, not a configuration
        if path.endswith(("package.json", "package-lock.json")):
            continue
        out.append(path)
    return out


def env_for(path, tmpdir):
    """Values for the ${NAME} references without a default in <path>; state (keys,
    certificates) goes to <tmpdir>, never into the source tree."""
    env = {"PORTCULLIS_HTTP": "127.0.0.1:0", "PORTCULLIS_ADMIN": "127.0.0.1:0",
           "CERTS_DIR": str(tmpdir)}
    with open(path) as f:
        text = f.read()
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text):
        if name in env:
            continue
        upper = name.upper()
        if "METADATA" in upper:
            env[name] = configs.throwaway_idp_metadata()
        elif "DOMAIN" in upper or upper.endswith("_HOST"):
            env[name] = name.lower().replace("_", "-") + ".test"
        elif "EMAIL" in upper:
            env[name] = "ops@example.test"
        elif any(k in upper for k in ("DIR", "PATH", "FILE")):
            env[name] = str(tmpdir)
        else:
            env[name] = "127.0.0.1:1"
    return env


def test_shipped_configs_found():
    paths = [os.path.relpath(p, SOURCE_DIR) for p in shipped_configs()]
    assert os.path.join("examples", "posthog", "portcullis.json") in paths
    assert os.path.join("conf", "portcullis.json") in paths


@pytest.mark.parametrize("path", shipped_configs(),
                         ids=lambda p: os.path.relpath(p, SOURCE_DIR))
def test_shipped_config_checks_ok(path, tmp_path):
    res = run_binary(["-t", "-c", path], env=env_for(path, tmp_path))
    assert res.returncode == 0, "-t %s: exit %d\nstderr:\n%s" % (path, res.returncode, res.stderr)
    assert "%s: configuration OK" % path in res.stdout.splitlines(), res.stdout


def base_config():
    return config({"web": "127.0.0.1:1", "capture": "127.0.0.1:2"},
                  [{"name": "main", "hosts": [HOST], "default": True,
                    "routes": [route("events", "capture", path=["/e"]), route("web", "web")]}])


def check(tmp_path, cfg, env=None, raw=None):
    path = str(tmp_path / "broken.json")
    with open(path, "w") as f:
        f.write(raw if raw is not None else json.dumps(cfg, indent=2))
    full_env = {"E2E_UNSET_VARIABLE": None}
    full_env.update(env or {})
    res = run_binary(["-t", "-c", path], env=full_env)
    return path, res


def assert_error_line(res, pattern):
    lines = res.stderr.splitlines()
    assert any(re.match(pattern, line) for line in lines), \
        "no stderr line matches %r; stderr:\n%s" % (pattern, res.stderr)


def assert_failed(res):
    assert res.returncode == 1, "expected exit 1, got %d; stdout %r stderr %r" % (
        res.returncode, res.stdout, res.stderr)
    assert "configuration OK" not in res.stdout


def test_base_config_is_valid(tmp_path):
    path, res = check(tmp_path, base_config())
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["%s: configuration OK" % path]


def test_unknown_route_key_with_suggestion(tmp_path):
    cfg = base_config()
    r = cfg["sites"][0]["routes"][1]
    r["upstrem"] = r.pop("upstream")
    _, res = check(tmp_path, cfg)
    assert_failed(res)
    assert_error_line(res, r'sites\[0\]\.routes\[1\]\.upstrem: .*"upstream"')


def test_unknown_top_level_key_with_suggestion(tmp_path):
    cfg = base_config()
    cfg["timeout"] = {"client": 5}
    _, res = check(tmp_path, cfg)
    assert_failed(res)
    assert_error_line(res, r'timeout: .*"timeouts"')


def test_unknown_upstream_lists_known_ones(tmp_path):
    cfg = base_config()
    cfg["sites"][0]["routes"][0]["upstream"] = "capure"
    _, res = check(tmp_path, cfg)
    assert_failed(res)
    assert_error_line(res, r'sites\[0\]\.routes\[0\]\.upstream: no upstream named "capure"; '
                           r'known: .*capture')
    assert_error_line(res, r'sites\[0\]\.routes\[0\]\.upstream: .*known: .*web')


def test_missing_environment_variable(tmp_path):
    cfg = base_config()
    cfg["listeners"][0]["address"] = "${E2E_UNSET_VARIABLE}"
    _, res = check(tmp_path, cfg)
    assert_failed(res)
    assert_error_line(res, r'listeners\[0\]\.address: .*E2E_UNSET_VARIABLE')


def test_every_error_reported(tmp_path):
    cfg = base_config()
    cfg["listeners"][0]["address"] = "${E2E_UNSET_VARIABLE}"
    cfg["sites"][0]["routes"][0]["upstream"] = "capure"
    cfg["timeout"] = {}
    _, res = check(tmp_path, cfg)
    assert_failed(res)
    assert_error_line(res, r'listeners\[0\]\.address: ')
    assert_error_line(res, r'sites\[0\]\.routes\[0\]\.upstream: ')
    assert_error_line(res, r'timeout: ')


def test_syntax_error_names_the_file(tmp_path):
    path, res = check(tmp_path, None, raw='{\n  "listeners": [,]\n}\n')
    assert_failed(res)
    assert path in res.stderr, res.stderr


def test_missing_file(tmp_path):
    path = str(tmp_path / "does-not-exist.json")
    res = run_binary(["-t", "-c", path])
    assert res.returncode == 1
    assert path in res.stderr


def test_version():
    res = run_binary(["--version"])
    assert res.returncode == 0
    assert res.stdout.strip() == "portcullis 0.1.0"


def test_help():
    res = run_binary(["--help"])
    assert res.returncode == 0, res.stderr
    assert "-c" in res.stdout and "-t" in res.stdout, res.stdout


def test_unknown_option_exit_2():
    res = run_binary(["--no-such-option"])
    assert res.returncode == 2
    assert res.stderr.strip()


# ------------------------------------------------------ admin and access log

class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.web = module_lab.upstream("web")
    e.nf = module_lab.upstream("notfound")
    e.nf.handler = Fixed(404, [("Content-Type", "text/plain")], b"nope\n")
    cfg = config({"web": e.web, "notfound": e.nf},
                 [{"name": "main", "hosts": [HOST], "default": True, "routes": [
                     route("nf", "notfound", path=["/nf"]),
                     {"name": "hello", "match": {"path_exact": ["/hello"]},
                      "respond": {"status": 200, "body": "hi\n"}},
                     route("web", "web"),
                 ]}])
    e.proxy = module_lab.proxy(cfg, name="ops")
    return e


@pytest.fixture
def fresh(env, alive):
    env.web.reset()
    yield


def admin(env, path):
    return request(env.proxy.admin_port, "GET", path, host="127.0.0.1")


def test_health_and_ready(env, fresh):
    resp = admin(env, "/_health")
    assert (resp.status, resp.body) == (200, b"ok\n")
    resp = admin(env, "/_ready")
    assert (resp.status, resp.body) == (200, b"ready\n")


def test_admin_paths_not_on_public_listener(env, fresh):
    resp = request(env.proxy.port, "GET", "/metrics", host=HOST)
    assert resp.status == 200
    assert resp.json()["target"] == "/metrics", "public /metrics must go to the upstream"


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(env):
    resp = admin(env, "/metrics")
    assert resp.status == 200
    assert (resp.header("Content-Type") or "").startswith("text/plain")
    out = []
    for line in resp.text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_RE.match(line)
        assert m, "unparsable metrics line %r" % line
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def metric(samples, name, **labels):
    for n, l, v in samples:
        if n == name and all(l.get(k) == str(val) for k, val in labels.items()):
            return v
    return None


def test_metrics(env, fresh):
    before = metrics(env)
    for i in range(3):
        assert request(env.proxy.port, "GET", "/api/m%d" % i, host=HOST).status == 200
    for i in range(2):
        assert request(env.proxy.port, "GET", "/nf/%d" % i, host=HOST).status == 404

    def delta(samples, **labels):
        return (metric(samples, "portcullis_requests_total", **labels) or 0) - \
            (metric(before, "portcullis_requests_total", **labels) or 0)

    def counted():
        s = metrics(env)
        return s if (delta(s, route="web", code=200) >= 3 and
                     delta(s, route="nf", code=404) >= 2) else None
    try:
        after = wait_until(counted, what="requests_total to count the requests")
    except AssertionError:
        s = metrics(env)
        raise AssertionError("portcullis_requests_total after 3×200 on web and 2×404 on nf: "
                             "%r" % [x for x in s if x[0] == "portcullis_requests_total"])
    assert delta(after, route="web", code=200) == 3
    assert delta(after, route="nf", code=404) == 2
    names = {n for n, _, _ in after}
    for family in ("portcullis_request_duration_seconds_bucket",
                   "portcullis_request_duration_seconds_sum",
                   "portcullis_request_duration_seconds_count",
                   "portcullis_requests_in_flight",
                   "portcullis_upstream_server_up",
                   "portcullis_upstream_connections_open",
                   "portcullis_config_reloads_total",
                   "portcullis_body_memory_bytes"):
        assert family in names, "%s missing from /metrics" % family
    counts = sum(v for n, _, v in after if n == "portcullis_request_duration_seconds_count")
    counts_before = sum(v for n, _, v in before if n == "portcullis_request_duration_seconds_count")
    assert counts - counts_before >= 5
    assert any(n == "portcullis_request_duration_seconds_bucket" and l.get("le") == "+Inf"
               for n, l, _ in after)
    assert metric(after, "portcullis_upstream_server_up", upstream="web",
                  server=env.web.address) == 1
    assert metric(after, "portcullis_upstream_connections_open", upstream="web") is not None
    assert metric(after, "portcullis_config_reloads_total", result="ok") == 0
    assert metric(after, "portcullis_config_reloads_total", result="error") == 0
    assert metric(after, "portcullis_body_memory_bytes") == 0


ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = {"time", "client", "method", "protocol", "host", "path", "query", "status", "bytes_in", "bytes_out",
          "route", "upstream", "upstream_ms", "total_ms", "request_id", "trace_id"}


def log_entry(env, rid):
    return env.proxy.wait_access_log(lambda e: e.get("request_id") == rid)


def test_access_log_proxied_request(env, fresh):
    rid = "log-" + uuid.uuid4().hex
    resp = request(env.proxy.port, "POST", "/api/logme?y=1&z=%2F", host=HOST,
                   headers=[("X-Request-ID", rid)], body=b"hello")
    assert resp.status == 200
    e = log_entry(env, rid)
    assert set(e) == FIELDS, "access log fields: %r" % sorted(e)
    assert ISO_MS.match(e["time"]), e["time"]
    assert e["client"] == "127.0.0.1"
    assert e["method"] == "POST"
    assert e["host"] == HOST
    assert e["path"] == "/api/logme"
    assert e["query"] == "y=1&z=%2F"
    assert e["status"] == 200 and isinstance(e["status"], int)
    assert e["bytes_in"] == 5
    assert e["bytes_out"] == len(resp.body)
    assert e["route"] == "web"
    assert e["upstream"] == env.web.address
    assert isinstance(e["upstream_ms"], (int, float)) and e["upstream_ms"] >= 0
    assert isinstance(e["total_ms"], (int, float)) and e["total_ms"] >= 0


def test_access_log_respond_route(env, fresh):
    rid = "log-" + uuid.uuid4().hex
    resp = request(env.proxy.port, "GET", "/hello", host=HOST, headers=[("X-Request-ID", rid)])
    assert resp.status == 200
    e = log_entry(env, rid)
    assert set(e) == FIELDS - {"query"}, "fields without a query: %r" % sorted(e)
    assert e["route"] == "hello"
    assert e["upstream"] is None and e["upstream_ms"] is None
    assert e["bytes_in"] == 0 and e["bytes_out"] == 3
    assert e["path"] == "/hello"


def test_access_log_rejected_request(env, fresh):
    rid = "log-" + uuid.uuid4().hex
    resp = request(env.proxy.port, "GET", "/a%2Fb", host=HOST, headers=[("X-Request-ID", rid)])
    assert resp.status == 400
    e = log_entry(env, rid)
    assert e["status"] == 400
    assert e["route"] is None and e["upstream"] is None


def test_access_log_every_line_is_json(env, fresh):
    request(env.proxy.port, "GET", "/api/last", host=HOST)
    text = env.proxy.stdout()
    lines = [line for line in text.split("\n") if line]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert FIELDS - {"query"} <= set(entry) <= FIELDS, line


# --------------------------------------------------------------- reloads

class Hammer:
    """Sends requests continuously from a thread (new connections and
    keep-alive ones) and records every failure."""

    def __init__(self, port, target="/api/hammer"):
        self.port = port
        self.target = target
        self.sent = 0
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        from harness import RawClient
        keep = None
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                if n % 2:
                    resp = request(self.port, "GET", "%s/%d" % (self.target, n), host=HOST)
                else:
                    if keep is None:
                        keep = RawClient(self.port)
                    resp = keep.request("GET", "%s/%d" % (self.target, n), host=HOST)
                if resp.status != 200:
                    self.failures.append("request %d: %r" % (n, resp))
            except Exception as exc:
                self.failures.append("request %d: %r" % (n, exc))
                if keep is not None:
                    keep.close()
                    keep = None
            self.sent += 1
        if keep is not None:
            keep.close()

    def finish(self):
        self.stop.set()
        self.thread.join(WAIT)


def test_sighup_reload(lab):
    a = lab.upstream("a")
    b = lab.upstream("b")

    def cfg(target):
        return config({"a": a, "b": b},
                      [{"name": "main", "hosts": [HOST], "default": True,
                        "routes": [route("api", target, path=["/api"]), route("rest", "a")]}])

    proxy = lab.proxy(cfg("a"), name="reload")
    hammer = Hammer(proxy.port)
    try:
        wait_until(lambda: hammer.sent >= 20, what="background requests")
        assert b.snapshot() == []

        mark = len(proxy.stderr())
        proxy.write_config(cfg("b"))
        proxy.signal(1)  # SIGHUP
        proxy.wait_stderr(r"info configuration reloaded from %s" % re.escape(proxy.config_path),
                          start=mark)

        def on_b():
            probe = "/api/probe-" + uuid.uuid4().hex
            request(proxy.port, "GET", probe, host=HOST)
            return any(r.target == probe for r in b.snapshot())
        wait_until(on_b, what="requests to reach the new upstream after the reload")
        sent = hammer.sent
        wait_until(lambda: hammer.sent >= sent + 20, what="background requests")

        broken = cfg("b")
        broken["sites"][0]["routes"][0]["upstream"] = "nonexistent"
        mark = len(proxy.stderr())
        proxy.write_config(broken)
        proxy.signal(1)
        m = proxy.wait_stderr(r"error configuration reload failed; keeping the old one\n"
                              r"(.*\n)*.*sites\[0\]\.routes\[0\]\.upstream: ", start=mark)
        assert m
        sent = hammer.sent
        wait_until(lambda: hammer.sent >= sent + 20, what="background requests")
        probe = "/api/after-broken-" + uuid.uuid4().hex
        assert request(proxy.port, "GET", probe, host=HOST).status == 200
        assert any(r.target == probe for r in b.snapshot()), \
            "after a failed reload the old (second) config must still be in force"
    finally:
        hammer.finish()
    assert hammer.failures == [], "%d of %d requests failed during reloads:\n%s" % (
        len(hammer.failures), hammer.sent, "\n".join(hammer.failures[:20]))
    text = request(proxy.admin_port, "GET", "/metrics", host="127.0.0.1").text()
    assert re.search(r'^portcullis_config_reloads_total\{result="ok"\} 1$', text, re.M), text
    assert re.search(r'^portcullis_config_reloads_total\{result="error"\} 1$', text, re.M), text


def test_sighup_listener_change_needs_restart(lab):
    up = lab.upstream("web")
    cfg = config({"web": up}, [{"name": "main", "default": True, "routes": [route("web", "web")]}])
    proxy = lab.proxy(cfg, name="relisten")
    old_port = proxy.port
    cfg["listeners"][0]["address"] = "127.0.0.1:%d" % (old_port + 1 if old_port < 65535 else 1024)
    mark = len(proxy.stderr())
    proxy.write_config(cfg)
    proxy.signal(1)
    proxy.wait_stderr(r" warn .*restart", start=mark)
    resp = request(old_port, "GET", "/still-here", host=HOST)
    assert resp.status == 200 and resp.json()["target"] == "/still-here"


# --------------------------------------------------------------- SIGTERM

def test_sigterm_drains_in_flight_requests(lab):
    up = lab.upstream("slow")
    up.handler = Slow(2.0)
    proxy = lab.proxy(config({"slow": up}, [{"name": "main", "default": True,
                                             "routes": [route("slow", "slow")]}]),
                      name="drain")
    results = [None] * 20

    def one(i):
        try:
            results[i] = request(proxy.port, "GET", "/slow/%d" % i, host=HOST, timeout=30)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    up.wait_for_count(20)
    proxy.signal(15)  # SIGTERM

    def draining():
        try:
            resp = request(proxy.admin_port, "GET", "/_ready", host="127.0.0.1", timeout=5)
        except OSError as exc:
            raise AssertionError("admin listener gone while draining: %r" % exc)
        return resp if resp.status == 503 else None
    resp = wait_until(draining, what="/_ready to answer 503 after SIGTERM")
    assert resp.body == b"draining\n"
    def refused():
        try:
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        except (ConnectionRefusedError, ConnectionResetError):  # reset: it was in the backlog as the listener closed
            return True
        s.close()
        return False
    try:
        wait_until(refused, what="connections to the HTTP listener to be refused")
    except AssertionError:
        raise AssertionError("new connections were still accepted %.0f s after SIGTERM "
                             "(while /_ready said draining)" % WAIT)

    for t in threads:
        t.join(30)
    rc = proxy.wait_exit(30)
    problems = lab.stop_proxy(proxy)
    bad = [(i, r) for i, r in enumerate(results)
           if not (hasattr(r, "status") and r.status == 200 and
                   r.json()["target"] == "/slow/%d" % i)]
    logged = [e["status"] for e in proxy.access_log()]
    assert bad == [], "in-flight requests not completed during the drain: %r (the access log " \
        "says %r)" % (bad, logged)
    assert rc == 0, "exit code after SIGTERM: %r\n%s" % (rc, proxy.stderr()[-3000:])
    assert re.search(r" info shutdown complete", proxy.stderr())
    assert problems == [], "\n".join(problems)
    assert up.snapshot() and len(up.snapshot()) == 20

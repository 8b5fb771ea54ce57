"""W3C trace context (docs/operations.md#trace-context): the upstream gets a
traceparent whose trace-id is the client's (when it sent one valid header)
or a new one, whose parent-id is the proxy's own span, never the client's
bytes; tracestate goes on only with a valid traceparent; the access log
line carries the trace-id beside the request id.  Over HTTP/1.1 and over
HTTP/2 (h2c, frames from h2client.py)."""

import re
import uuid

import pytest

from configs import config, route
from harness import need, request

HOST = "trace.test"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = "00-%s-%s-01" % (TRACE, PARENT)
OUR = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_lab):
    e = Env()
    e.web = module_lab.upstream("web")
    cfg = config({"web": e.web},
                 [{"name": "main", "hosts": [HOST], "default": True,
                   "routes": [route("web", "web")]}],
                 listeners=[{"name": "http", "address": "127.0.0.1:0"},
                            {"name": "h2c", "address": "127.0.0.1:0", "h2c": True}])
    e.proxy = module_lab.proxy(cfg, name="trace")
    return e


def send_h1(env, headers):
    rid = "tr-" + uuid.uuid4().hex
    resp = request(env.proxy.ports["http"], "GET", "/t", host=HOST,
                   headers=[("X-Request-ID", rid)] + list(headers))
    assert resp.status == 200, resp
    return rid


def send_h2(env, headers):
    need("hyperframe", "python")
    need("hpack", "python")
    from h2client import H2Client
    rid = "tr-" + uuid.uuid4().hex
    with H2Client(env.proxy.ports["h2c"]) as c:
        s = c.request("GET", "/t", HOST, [("x-request-id", rid)] +
                      [(k.lower(), v) for k, v in headers])
        assert s.status == 200, s
    return rid


SENDERS = {"http1": send_h1, "http2": send_h2}


def seen(env, rid):
    """What the upstream got for <rid>, and the access log line."""
    reqs = env.web.with_request_id(rid)
    assert len(reqs) == 1, "the upstream saw %s %d times" % (rid, len(reqs))
    req = reqs[0]
    entry = env.proxy.wait_access_log(lambda e: e.get("request_id") == rid)
    return req, entry


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_valid_traceparent_is_continued(env, alive, proto):
    rid = SENDERS[proto](env, [("traceparent", VALID), ("tracestate", "vendor=abc,other=1")])
    req, entry = seen(env, rid)
    got = req.header_all("traceparent")
    assert len(got) == 1, got
    m = OUR.match(got[0])
    assert m, got
    assert m.group(1) == TRACE, "the trace id is kept"
    assert m.group(2) != PARENT and m.group(2) != "0" * 16, "the parent is the proxy's span"
    assert m.group(3) == "01", "the sampled flag is kept"
    assert req.header_all("tracestate") == ["vendor=abc,other=1"]
    assert entry["trace_id"] == TRACE
    assert entry["request_id"] == rid


@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_missing_traceparent_is_created(env, alive, proto):
    rid = SENDERS[proto](env, [])
    req, entry = seen(env, rid)
    m = OUR.match(req.header("traceparent") or "")
    assert m, req.header("traceparent")
    assert m.group(1) != "0" * 32 and m.group(2) != "0" * 16
    assert entry["trace_id"] == m.group(1)
    # A new trace per request.
    rid2 = SENDERS[proto](env, [])
    req2, entry2 = seen(env, rid2)
    assert entry2["trace_id"] != entry["trace_id"]
    assert OUR.match(req2.header("traceparent")).group(2) != m.group(2)


@pytest.mark.parametrize("bad", [
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    "00-%s-0000000000000000-01" % TRACE,                        # zero parent id
    "01-%s-%s-01" % (TRACE, PARENT),                            # another version
    "00-%s-%s-01" % (TRACE.upper(), PARENT),                    # uppercase
    "00-%s-%s-01-extra" % (TRACE, PARENT),                      # trailing bytes
    "garbage; not a trace",
])
@pytest.mark.parametrize("proto", ["http1", "http2"])
def test_invalid_traceparent_is_replaced(env, alive, proto, bad):
    rid = SENDERS[proto](env, [("traceparent", bad), ("tracestate", "vendor=abc")])
    req, entry = seen(env, rid)
    got = req.header_all("traceparent")
    assert len(got) == 1 and OUR.match(got[0]), got
    assert OUR.match(got[0]).group(1) != TRACE, "a new trace, not a repaired one"
    assert not req.has_header("tracestate"), "tracestate without a valid parent is dropped"
    assert entry["trace_id"] == OUR.match(got[0]).group(1)


def test_two_traceparents_are_replaced(env, alive):
    rid = send_h1(env, [("traceparent", VALID), ("traceparent", VALID)])
    req, entry = seen(env, rid)
    got = req.header_all("traceparent")
    assert len(got) == 1 and OUR.match(got[0]).group(1) != TRACE, got
    assert entry["trace_id"] != TRACE


def test_refused_request_logs_a_trace_id(env, alive):
    rid = "tr-" + uuid.uuid4().hex
    resp = request(env.proxy.ports["http"], "GET", "/a%2Fb", host=HOST,
                   headers=[("X-Request-ID", rid), ("traceparent", VALID)])
    assert resp.status == 400
    entry = env.proxy.wait_access_log(lambda e: e.get("request_id") == rid)
    assert entry["trace_id"] == TRACE

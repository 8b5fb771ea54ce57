"""HTTP/2 connections across the proxy's life: graceful drain on SIGTERM
(GOAWAY shutdown notice, then the last stream id; open streams finish), a
SIGHUP that keeps HTTP/2 connections (also when "http2" changed: fixed at
start, like "tls"), and the idle timeout closing with GOAWAY."""

import os
import time

import pytest

from configs import config, route
from harness import Slow, need

need("hyperframe", "python")
need("hpack", "python")

from h2client import NO_ERROR, H2Client, error_name  # noqa: E402

HOST = "h2.test"
MAX_STREAM_ID = 0x7fffffff


def h2_config(lab, up, tmp_path, listeners=None, **top):
    return config({"web": up},
                  [{"name": "main", "hosts": [HOST], "default": True,
                    "routes": [route("web", "web")]}],
                  listeners=listeners or [{"name": "https", "address": "127.0.0.1:0",
                                           "tls": True}],
                  tls={"certs_dir": os.path.join(str(tmp_path), "certs"),
                       "local_ca": {"names": [HOST]}, "default_name": HOST},
                  **top)


def connect(port):
    return H2Client(port, tls=True, server_name=HOST, timeout=20)


@pytest.mark.parametrize("attempt", range(4))
def test_sigterm_drain_goaway_and_open_streams_finish(lab, tmp_path, attempt):
    """10 streams waiting for a slow upstream when SIGTERM comes: GOAWAY with
    the last possible id, then with the last stream id, and every stream
    answered.  The client returns flow-control credit for what it reads, as
    every real client does, so the proxy has unread bytes when it closes:
    unless it lingers, the kernel answers with RST and the client loses the
    last response (run 4 times: the loss is a race)."""
    up = lab.upstream("web")
    up.handler = Slow(1.0)
    p = lab.proxy(h2_config(lab, up, tmp_path), name="drain")
    c = connect(p.ports["https"])
    with c:
        c.wait(lambda: c.settings_acked, what="SETTINGS ACK")
        sids = [c.start("GET", "/slow/%d" % i, HOST) for i in range(10)]
        up.wait_for_count(10)
        p.signal(15)
        c.wait(lambda: len(c.goaways) >= 2 or (c.goaway and c.goaway[1] != MAX_STREAM_ID),
               what="GOAWAY with the last stream id")
        first = c.goaways[0]
        assert first[0] == NO_ERROR, c.frame_log()
        assert first[1] == MAX_STREAM_ID, (
            "the first GOAWAY should be the shutdown notice (last id 2^31-1), got %r; frames %s"
            % (first, c.frame_log()))
        final = c.goaways[-1]
        assert final[0] == NO_ERROR and final[1] == max(sids), (
            "final GOAWAY %s last=%d, expected NO_ERROR last=%d; frames %s" % (
                error_name(final[0]), final[1], max(sids), c.frame_log()))
        assert c.wait_closed(20), "the connection stays open after its streams finished"
        lost = [sid for sid in sids if c.stream(sid).status != 200 or not c.stream(sid).ended]
        assert not lost, (
            "streams %s unanswered after the drain (the access log has %d answers with status "
            "200); frames %s" % (lost, sum(1 for e in p.access_log() if e["status"] == 200),
                                 c.frame_log(40)))
    rc = p.wait_exit(30)
    problems = lab.stop_proxy(p)
    assert rc == 0 and problems == [], problems


def test_sighup_unchanged_keeps_h2_connection(lab, tmp_path):
    up = lab.upstream("web")
    cfg = h2_config(lab, up, tmp_path)
    p = lab.proxy(cfg, name="reload")
    port = p.ports["https"]
    with connect(port) as c:
        assert c.request("GET", "/before", HOST).status == 200
        cfg["sites"][0]["routes"][0]["request_headers"] = {"set": {"X-Reloaded": "1"}}
        mark = len(p.stderr())
        p.write_config(cfg)
        p.signal(1)
        p.wait_stderr(r"info configuration reloaded from", start=mark)
        time.sleep(0.3)
        s = c.request("GET", "/after", HOST)
        assert s.status == 200, "after SIGHUP: %r; frames %s" % (s, c.frame_log())
        assert c.goaway is None, "SIGHUP sent GOAWAY: %s" % c.frame_log()
    reqs = up.wait_for_count(2)
    assert [r.target for r in reqs] == ["/before", "/after"]
    assert reqs[1].header("X-Reloaded") == "1", "the new config does not serve the old connection"


def test_sighup_http2_setting_changed_waits_for_restart(lab, tmp_path):
    """"http2" is fixed at start, like "tls" (docs/operations.md): a SIGHUP that
    turns it off warns that it needs a restart, and keeps serving HTTP/2 on
    the open connection and to new ones."""
    up = lab.upstream("web")
    cfg = h2_config(lab, up, tmp_path)
    p = lab.proxy(cfg, name="reload-h2")
    port = p.ports["https"]
    with connect(port) as c:
        assert c.request("GET", "/before", HOST).status == 200
        cfg["listeners"][0]["http2"] = False
        mark = len(p.stderr())
        p.write_config(cfg)
        p.signal(1)
        p.wait_stderr(r"warn .*\"http2\".* changed: it takes effect at the next restart",
                      start=mark)
        p.wait_stderr(r"info configuration reloaded from", start=mark)
        s = c.request("GET", "/after", HOST)
        assert s.status == 200 and c.goaway is None, c.frame_log()
        with H2Client(port, tls=True, server_name=HOST, alpn=("h2", "http/1.1")) as fresh:
            assert fresh.alpn == "h2", fresh.alpn


def test_idle_connection_closed_with_goaway(lab, tmp_path):
    up = lab.upstream("web")
    p = lab.proxy(h2_config(lab, up, tmp_path, timeouts={"client": 1}), name="idle")
    with connect(p.ports["https"]) as c:
        assert c.request("GET", "/once", HOST).status == 200
        t0 = time.monotonic()
        assert c.wait_closed(15), "an idle HTTP/2 connection stayed open; frames %s" % (
            c.frame_log())
        waited = time.monotonic() - t0
        assert c.goaway is not None and c.goaway[0] == NO_ERROR, (
            "idle close without GOAWAY NO_ERROR: frames %s" % c.frame_log())
        assert waited < 10, "closed after %.1f s idle with a 1 s client timeout" % waited

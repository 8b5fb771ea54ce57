"""HTTP/2 connections across the proxy's life: graceful drain on SIGTERM
(GOAWAY shutdown notice, then the last stream id; open streams finish), a
SIGHUP that keeps HTTP/2 connections, a listener removed on SIGHUP draining
its connections, and the idle timeout closing with GOAWAY."""

import os
import time

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


def test_sigterm_drain_goaway_and_open_streams_finish(lab, tmp_path):
    up = lab.upstream("web")
    up.handler = Slow(2.0)
    p = lab.proxy(h2_config(lab, up, tmp_path), name="drain")
    c = connect(p.ports["https"])
    with c:
        sids = [c.start("GET", "/slow/%d" % i, HOST) for i in range(3)]
        up.wait_for_count(3)
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
        for sid in sids:
            s = c.response(sid, timeout=20)
            assert s.status == 200 and s.ended, "stream %d during the drain: %r; frames %s" % (
                sid, s, c.frame_log())
        assert c.wait_closed(20), "the connection stays open after its streams finished"
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


def test_sighup_http2_setting_changed_drains_connection(lab, tmp_path):
    """Turning "http2" off on a listener: its HTTP/2 connections get GOAWAY and
    new ones negotiate http/1.1."""
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
        p.wait_stderr(r"info configuration reloaded from", start=mark)
        with H2Client(port, tls=True, server_name=HOST, alpn=("h2", "http/1.1")) as fresh:
            assert fresh.alpn == "http/1.1", "after \"http2\": false and SIGHUP a new " \
                "connection still negotiates %r" % fresh.alpn
        c.wait(lambda: c.goaway, timeout=15, what="GOAWAY after the listener's HTTP/2 changed")
        assert c.goaway[0] == NO_ERROR, c.frame_log()


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

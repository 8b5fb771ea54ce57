"""Upstreams with several servers: round-robin and least-connections,
passive health (a failed server is skipped for fail_timeout), retries on
another server when the request never reached the first, no retry of a
non-idempotent request that may have been processed, and the
upstream_server_up metric."""

import threading
import time

from configs import config, route
from harness import CloseWithoutAnswer, Slow, closed_port, request


def _proxy(lab, servers, **upstream_keys):
    cfg = config({"app": (servers, upstream_keys)},
                 [{"name": "main", "routes": [route("all", "app")]}])
    return lab.proxy(cfg)


def _metrics(proxy):
    return request(proxy.admin_port, "GET", "/metrics").text()


def test_round_robin_spreads_requests_evenly(lab):
    a, b, c = lab.upstream("a"), lab.upstream("b"), lab.upstream("c")
    p = _proxy(lab, [a, b, c], balance="round_robin")
    for i in range(60):
        resp = request(p.port, "GET", "/rr/%d" % i)
        assert resp.status == 200, resp
    counts = [len(u.snapshot()) for u in (a, b, c)]
    assert sum(counts) == 60
    # Two workers each keep their own cursor: every server still gets a fair share.
    assert min(counts) >= 10, counts


def test_least_conn_avoids_the_busy_server(lab):
    slow, fast = lab.upstream("slow"), lab.upstream("fast")
    slow.reset(Slow(2.0))
    p = _proxy(lab, [slow, fast], balance="least_conn")
    results = []

    def hold():
        results.append(request(p.port, "GET", "/hold").status)

    # Occupy one server with long requests, then send short ones: they must
    # go to the idle server (least connections), not alternate.
    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    deadline = time.monotonic() + 5
    while len(slow.snapshot()) + len(fast.snapshot()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    busy_before = len(slow.snapshot())
    for i in range(10):
        assert request(p.port, "GET", "/short/%d" % i).status == 200
    for t in holders:
        t.join(10)
    assert results == [200, 200]
    short_on_slow = [r for r in slow.snapshot()[busy_before:] if r.path.startswith("/short/")]
    assert len(short_on_slow) <= 1, "least_conn sent %d short requests to the busy server" % (
        len(short_on_slow))


def test_refused_server_is_skipped_and_requests_still_succeed(lab):
    good = lab.upstream("good")
    dead = "127.0.0.1:%d" % closed_port()
    p = _proxy(lab, [dead, good], balance="round_robin", fail_timeout=30)
    # Every request succeeds: a refused connection never carried the request,
    # so it is retried on the other server, whatever the method.
    for i in range(20):
        method = "POST" if i % 2 else "GET"
        resp = request(p.port, method, "/x/%d" % i, body=b"event" if method == "POST" else None)
        assert resp.status == 200, (i, resp)
    assert len(good.snapshot()) == 20
    metrics = _metrics(p)
    assert 'portcullis_upstream_server_up{upstream="app",server="%s"} 0' % dead in metrics
    assert 'portcullis_upstream_server_up{upstream="app",server="%s"} 1' % good.address in metrics
    assert "portcullis_upstream_retries_total" in metrics


def test_all_servers_down_is_a_fast_502(lab):
    p = _proxy(lab, ["127.0.0.1:%d" % closed_port(), "127.0.0.1:%d" % closed_port()])
    started = time.monotonic()
    resp = request(p.port, "GET", "/down")
    assert resp.status == 502, resp
    assert b"refused" in resp.body
    assert time.monotonic() - started < 2.0


def test_post_is_not_retried_after_it_was_sent(lab):
    broken, good = lab.upstream("broken"), lab.upstream("good")
    broken.reset(CloseWithoutAnswer())
    p = _proxy(lab, [broken, good], balance="round_robin")
    statuses = []
    for i in range(6):
        statuses.append(request(p.port, "POST", "/once/%d" % i, body=b"x").status)
    # A POST that reached the broken server may have been processed there:
    # it answers 502 rather than running twice.
    posts_seen = {r.path for r in broken.snapshot()} | {r.path for r in good.snapshot()}
    for i in range(6):
        path = "/once/%d" % i
        on_broken = [r for r in broken.snapshot() if r.path == path]
        on_good = [r for r in good.snapshot() if r.path == path]
        assert len(on_broken) + len(on_good) == 1, (path, on_broken, on_good)
    assert 502 in statuses and 200 in statuses, statuses
    assert len(posts_seen) == 6


def test_get_is_retried_on_another_server_after_a_reset(lab):
    broken, good = lab.upstream("broken"), lab.upstream("good")
    broken.reset(CloseWithoutAnswer())
    p = _proxy(lab, [broken, good], balance="round_robin", max_fails=100)
    for i in range(6):
        resp = request(p.port, "GET", "/idem/%d" % i)
        assert resp.status == 200, (i, resp)
    assert len(good.snapshot()) == 6

"""The global in-flight body budget: request bodies held by the proxy, summed
over all workers, never exceed limits.body_memory_budget; a request that
would exceed it gets 503 before its body is read, and the budget is given
back when requests end.  Over HTTP/1.1 and HTTP/2 (the `client` fixture; h2c
on the same listener)."""

import threading
import time

from configs import config, route
from harness import Slow, request, wait_until


def test_budget_spent_gives_503_and_recovers(lab, client):
    up = lab.upstream("up")
    up.reset(Slow(1.5))
    cfg = config({"up": up}, [{"name": "main", "routes": [route("all", "up")]}],
                 limits={"max_body_bytes": "2MiB", "body_memory_budget": "3MiB"})
    p = lab.proxy(client.listener(cfg))
    body = b"b" * (2 * 1024 * 1024 - 16)
    first = []
    t = threading.Thread(target=lambda: first.append(client.request(p.port, "POST", "/one", body=body)))
    t.start()
    wait_until(lambda: len(up.snapshot()) == 1, what="first upload at the upstream")
    # While the first 2 MiB body is held, a second one would need 4 MiB.
    resp = client.request(p.port, "POST", "/two", body=body)
    assert resp.status == 503, resp
    assert b"retry" in resp.body
    # Small bodies still fit.
    assert client.request(p.port, "POST", "/small", body=b"x" * 1000).status == 200
    t.join(10)
    assert first and first[0].status == 200, first
    # The budget is given back as the request ends, just after its last
    # bytes were written: the client may have read them a moment before.
    wait_until(lambda: "portcullis_body_memory_bytes 0" in
               request(p.admin_port, "GET", "/metrics").text(),
               what="the body budget given back")
    # And the budget is free again.
    up.reset()
    assert client.request(p.port, "POST", "/three", body=body).status == 200
    assert [r.path for r in up.snapshot()] == ["/three"]
    assert len(up.snapshot()[0].body) == len(body)

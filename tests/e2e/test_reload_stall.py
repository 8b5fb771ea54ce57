"""A reload never holds up a worker's event loop.

The retired configuration goes away when its last request ends, which is on a
worker thread.  Freeing it stops the IdP metadata refresh thread of its SAML
SP and waits for it, and that thread may be in the middle of a fetch from a
slow metadata server (up to its 10 s timeout).  That wait must not happen on
the worker's loop: requests served meanwhile (here through a route without
authentication, on a proxy with one worker) are answered at once.

The first configuration stays referenced by the process for its life, so the
test retires the second one: a first reload makes it, then the metadata server
answers slowly for a moment (the refresh threads, every second, are caught in
a slow fetch), then fast again, and a second reload (its own fetch fast)
retires the second configuration while its refresh thread is still waiting.
"""

import signal
import time

from harness import request, wait_until
from saml_common import MetadataServer, metadata_url_config, samltools

IDP = "https://idp.test"
SSO = "https://idp.test/sso"
DELAY = 6.0      # a slow metadata server's answer
ALLOWED = 2.0    # the slowest request tolerated (a busy test machine), well under DELAY


def test_retired_configuration_is_not_freed_on_a_worker_loop(lab):
    work = lab.workdir
    _, cert = samltools.make_key(work, "idp")
    md = MetadataServer(samltools.idp_metadata(IDP, SSO, cert))
    try:
        cfg, port = metadata_url_config(lab, md.url, 1)
        cfg["workers"] = 1
        proxy = lab.proxy(cfg)
        mark = len(proxy.stderr())
        proxy.signal(signal.SIGHUP)
        proxy.wait_stderr(r"configuration reloaded from", start=mark)
        md.delay = DELAY
        wait_until(lambda: md.slow_fetches >= 2, timeout=10,
                   what="both refresh threads in a slow fetch")
        md.delay = 0
        mark = len(proxy.stderr())
        proxy.signal(signal.SIGHUP)
        # The worker takes the new configuration and the second one is retired;
        # requests all along.
        slowest, started = 0.0, time.monotonic()
        while time.monotonic() - started < DELAY + 2:
            t0 = time.monotonic()
            r = request(port, "POST", "/e/", body=b"{}", timeout=30)
            took = time.monotonic() - t0
            assert r.status == 200, r
            slowest = max(slowest, took)
            time.sleep(0.05)
        proxy.wait_stderr(r"configuration reloaded from", start=mark)
        assert slowest < ALLOWED, \
            "a request waited %.1f s while the reload retired the old configuration" % slowest
    finally:
        md.close()

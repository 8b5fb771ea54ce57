"""pytest fixtures for the Portcullis end-to-end tests (see harness.py)."""

import os
import sys

import pytest

# The suite runs as root (CI, network namespaces): the proxies it starts may stay root.
# test_privileges.py clears this where it tests the refusal.
os.environ.setdefault("PORTCULLIS_ALLOW_ROOT", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import BINARY, Lab  # noqa: E402


def _require_binary():
    if not os.path.exists(BINARY):
        pytest.fail("portcullis binary not found at %s; build it or set PORTCULLIS_BIN" % BINARY,
                    pytrace=False)


@pytest.fixture
def lab(tmp_path):
    """Upstreams and proxies for one test; all stopped (and checked) at the end."""
    _require_binary()
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory, request):
    """Upstreams and proxies shared by the tests of one module."""
    _require_binary()
    lab = Lab(tmp_path_factory.mktemp(request.module.__name__))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def alive(module_lab):
    """Use in tests of a module-scoped proxy: after the test, the proxy must
    still be running (a crash is blamed on the test that caused it)."""
    yield
    module_lab.assert_alive()


@pytest.fixture(params=["http1", "http2"])
def client(request):
    """The same request over HTTP/1.1 or HTTP/2 (clients.py): a test that takes
    `client` runs once per protocol against the same proxy.  HTTP/2 goes to the
    plain listener with prior knowledge, so that listener needs "h2c": true."""
    if request.param == "http2":
        from harness import need
        need("hyperframe", "python")
        need("hpack", "python")
    import clients
    return clients.make(request.param)

"""Headless Chromium for the end-to-end tests: Debian's /usr/bin/chromium (or
$CHROMIUM) driven by playwright-core from the scripts of tests/e2e/browser/.

browser_node() gives the node that runs those scripts, after `npm ci` in
tests/e2e/browser when its node_modules lacks playwright-core; the tests that
need a browser make it a module fixture."""

import os
import shutil
import subprocess

import pytest

from harness import depslist

BROWSER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser")


def chromium_path():
    path = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    return path if os.access(path, os.X_OK) else shutil.which("chromium")


def browser_node(*more_programs):
    """The path of node, with npm, Chromium and <more_programs> (names found on
    PATH) present.  Skips the test when one is missing, or fails it when
    PORTCULLIS_REQUIRE_ALL is set."""
    tools = {"node": shutil.which("node"), "npm": shutil.which("npm"), "chromium": chromium_path()}
    tools.update((name, shutil.which(name)) for name in more_programs)
    gone = ["%s (%s)" % (name, depslist.where(name)) for name, path in tools.items() if not path]
    if gone:
        why = "not installed: %s" % ", ".join(gone)
        if os.environ.get("PORTCULLIS_REQUIRE_ALL"):
            pytest.fail("%s, and PORTCULLIS_REQUIRE_ALL is set" % why, pytrace=False)
        pytest.skip(why)
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        res = subprocess.run([shutil.which("npm"), "ci", "--no-audit", "--no-fund"],
                             cwd=BROWSER_DIR, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, "npm ci in %s failed:\n%s\n%s" % (BROWSER_DIR, res.stdout,
                                                                     res.stderr)
    return shutil.which("node")

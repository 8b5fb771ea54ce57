"""h2spec (the HTTP/2 conformance suite, ../shared/tools/h2spec) against the
binary over TLS: the failures must be exactly the allow-list in
docs/http2.md ("h2spec"), each with its reason there."""

import os
import re
import subprocess
import xml.etree.ElementTree as ET

from configs import config, route
from harness import SOURCE_DIR, Fixed, depslist, missing_peer

H2SPEC = os.path.normpath(os.path.join(SOURCE_DIR, "..", "shared", "tools", "h2spec"))
DOC = os.path.join(SOURCE_DIR, "docs", "http2.md")


def allowed_failures():
    """The test ids listed in the "h2spec" section of docs/http2.md (table rows
    starting with a `section/N` id)."""
    with open(DOC) as f:
        text = f.read()
    section = re.search(r"^## h2spec\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/http2.md has no '## h2spec' section"
    return set(re.findall(r"^\| `((?:generic|http2|hpack)/[\d.]+/\d+)` \|", section.group(1),
                          re.M))


def failures(report):
    """{test id: failure text} from h2spec's JUnit report."""
    out = {}
    for suite in ET.parse(report).getroot().iter("testsuite"):
        for i, case in enumerate(suite.iter("testcase"), 1):
            fail = case.find("failure")
            if fail is not None or case.find("error") is not None:
                node = fail if fail is not None else case.find("error")
                out["%s/%d" % (suite.get("package"), i)] = "%s: %s" % (
                    case.get("classname"), (node.text or node.get("message") or "").strip())
    return out


def test_h2spec_only_documented_failures(lab, tmp_path):
    if not os.access(H2SPEC, os.X_OK):
        missing_peer("h2spec is missing at %s: %s" % (H2SPEC, depslist.where("h2spec")))
    web = lab.upstream("web")
    # A body of at least 5 bytes at the path (6.9.2/2 needs it), GET and POST.
    web.handler = Fixed(200, [("Content-Type", "text/plain")], b"h2spec ok\n" * 10)
    cfg = config({"web": web},
                 [{"name": "main", "default": True, "routes": [route("web", "web")]}],
                 listeners=[{"name": "https", "address": "127.0.0.1:0", "tls": True}],
                 tls={"certs_dir": os.path.join(str(tmp_path), "certs"), "local_ca": True})
    p = lab.proxy(cfg, name="h2spec")
    report = os.path.join(str(tmp_path), "h2spec.xml")
    wait = "5" if os.environ.get("PORTCULLIS_SANITIZE", "").lower() in ("1", "on", "true") else "2"
    run = subprocess.run(["nice", "-n", "10", H2SPEC, "-h", "127.0.0.1", "-p",
                          str(p.ports["https"]), "-t", "-k", "-o", wait, "-P", "/h2spec",
                          "-j", report], capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    with open(os.path.join(str(tmp_path), "h2spec.out"), "w") as f:
        f.write(out)
    score = re.search(r"(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed", out)
    assert score and os.path.exists(report), "h2spec did not finish:\n%s" % out[-4000:]
    got = failures(report)
    allowed = allowed_failures()
    unexpected = {k: v for k, v in got.items() if k not in allowed}
    fixed = allowed - set(got)
    assert not unexpected, "h2spec (%s): failures not in docs/http2.md:\n%s" % (
        score.group(0), "\n".join("  %s %s" % kv for kv in sorted(unexpected.items())))
    assert not fixed, "h2spec now passes %s: remove it from docs/http2.md's allow-list" % (
        sorted(fixed))
    assert score.group(3) == "0", "h2spec skipped tests: %s" % score.group(0)

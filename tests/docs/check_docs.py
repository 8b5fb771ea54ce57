#!/usr/bin/env python3
"""Check the documentation against the code.

1. Every ```json block in docs/*.md that follows a marker comment (an HTML
   comment alone on its line, right before the block) is loaded by
   `portcullis -t`:
     <!-- check: full-config [NAME=value ...] -->   the block is a whole configuration
     <!-- check: fragment=KIND [NAME=value ...] --> the block is put into a small base
                                                    configuration first; KIND is
       top        an object whose keys replace the base's top-level keys
       routes     a route or a list of routes, inserted before the base's catch-all route
       upstreams  an object of upstreams, added to the base's
       listeners  a listener or a list of listeners, added to the base's
       sites      a site or a list of sites, added after the base's site
   NAME=value pairs are set in the environment of that one check.  Every check
   also gets POSTHOG_DOMAIN, APP_DOMAIN, SAML_IDP_METADATA (IdP metadata made
   here), CERTS_DIR and PRIVATE_ADDR, and runs in one temporary directory
   (files that loading creates, such as the SAML keys, are shared by the checks).
2. Every metric name (portcullis_...) mentioned in docs/operations.md and
   examples/prometheus/*.yml is one the source registers (a string literal in
   src/*.c; histogram suffixes _bucket, _sum, _count of a registered histogram
   count too).
3. Every relative link in docs/*.md and README.md points to an existing file or
   folder, and a #anchor in a link to a Markdown file names one of its headings.
4. When promtool is installed (Debian package prometheus): `promtool check config`
   on examples/prometheus/scrape.yml and `promtool check rules` on the alert rules.

Usage: check_docs.py [--bin PATH] [--source DIR]
  --bin     the portcullis binary (default: $PORTCULLIS_BIN, else <source>/build/portcullis)
  --source  the repository (default: $PORTCULLIS_SOURCE_DIR, else two levels up)
Prints one line per problem and a summary; exits 1 when anything failed.
"""

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

MARKER = re.compile(r"<!--\s*check:\s*(full-config|fragment=(\w+))((?:\s+[A-Za-z_][A-Za-z0-9_]*=\S*)*)\s*-->")
FENCE_JSON = re.compile(r"^```json\s*$")
FENCE_END = re.compile(r"^```\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
METRIC = re.compile(r"\bportcullis_[a-z0-9_]+\b")
FRAGMENT_KINDS = ("top", "routes", "upstreams", "listeners", "sites")

IDP_METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://casdoor.example.com">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://casdoor.example.com/login/saml/authorize/admin/posthog"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""


def base_config():
    """A small valid configuration the fragments are put into."""
    names = ["web", "capture", "replay", "flags", "livestream", "plugins", "app",
             "objectstorage", "internal", "grafana"]
    return {
        "listeners": [{"name": "http", "address": "127.0.0.1:0"}],
        "upstreams": {n: {"servers": ["127.0.0.1:%d" % (18000 + i)]} for i, n in enumerate(names)},
        "sites": [{"name": "base", "hosts": ["base.test"],
                   "routes": [{"name": "base-catch-all", "upstream": "web"}]}],
    }


def as_list(v):
    return v if isinstance(v, list) else [v]


def merge(kind, fragment):
    cfg = base_config()
    if kind == "top":
        if not isinstance(fragment, dict):
            raise ValueError("a top fragment must be a JSON object")
        cfg.update(fragment)
    elif kind == "routes":
        routes = cfg["sites"][0]["routes"]
        cfg["sites"][0]["routes"] = as_list(fragment) + routes
    elif kind == "upstreams":
        if not isinstance(fragment, dict):
            raise ValueError("an upstreams fragment must be a JSON object")
        cfg["upstreams"].update(fragment)
    elif kind == "listeners":
        cfg["listeners"] += as_list(fragment)
    elif kind == "sites":
        cfg["sites"] += as_list(fragment)
    return cfg


# Keys whose files `portcullis -t` may create: an absolute path would make the
# check write outside its temporary folder.
WRITTEN_PATH_KEYS = ("certs_dir", "sp_key", "sp_cert", "session_key_file", "idp_metadata_cache")


def absolute_written_paths(value, where=""):
    """JSON paths of WRITTEN_PATH_KEYS values that are absolute paths."""
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            sub = "%s.%s" % (where, k) if where else k
            if k in WRITTEN_PATH_KEYS and isinstance(v, str) and v.startswith("/"):
                found.append(sub)
            found += absolute_written_paths(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += absolute_written_paths(v, "%s[%d]" % (where, i))
    return found


def json_blocks(path):
    """(line, kind, env, text) for every marked ```json block of a Markdown file."""
    out = []
    pending = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = MARKER.fullmatch(lines[i].strip())
        if m:
            kind = "full" if m.group(1) == "full-config" else m.group(2)
            env = dict(kv.split("=", 1) for kv in m.group(3).split())
            pending = (i + 1, kind, env)
            i += 1
            continue
        if FENCE_JSON.match(lines[i]):
            start = i + 1
            j = start
            while j < len(lines) and not FENCE_END.match(lines[j]):
                j += 1
            if pending is not None:
                out.append((pending[0], pending[1], pending[2], "\n".join(lines[start:j])))
            pending = None
            i = j + 1
            continue
        if lines[i].strip() and pending is not None and not lines[i].lstrip().startswith("<!--"):
            # A marker applies to the next block only when nothing else comes between.
            out.append((pending[0], "orphan", pending[2], ""))
            pending = None
        i += 1
    if pending is not None:
        out.append((pending[0], "orphan", pending[2], ""))
    return out


def make_idp_metadata(directory):
    key = os.path.join(directory, "idp.key")
    cert = os.path.join(directory, "idp.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "30", "-subj", "/CN=docs-check-idp"],
                   check=True, capture_output=True)
    with open(cert) as f:
        body = "".join(f.read().split("-----")[2].split())
    path = os.path.join(directory, "idp-metadata.xml")
    with open(path, "w") as f:
        f.write(IDP_METADATA % body)
    return path


def check_configs(source, binary, problems):
    count = 0
    with tempfile.TemporaryDirectory(prefix="check-docs-") as tmp:
        metadata = make_idp_metadata(tmp)
        for md in sorted(glob.glob(os.path.join(source, "docs", "*.md"))):
            rel = os.path.relpath(md, source)
            for line, kind, extra_env, text in json_blocks(md):
                where = "%s:%d" % (rel, line)
                if kind == "orphan":
                    problems.append("%s: check marker not followed by a ```json block" % where)
                    continue
                if kind != "full" and kind not in FRAGMENT_KINDS:
                    problems.append("%s: unknown fragment kind %r (known: %s)"
                                    % (where, kind, ", ".join(FRAGMENT_KINDS)))
                    continue
                count += 1
                try:
                    value = json.loads(text)
                    cfg = value if kind == "full" else merge(kind, value)
                except ValueError as e:
                    problems.append("%s: not valid JSON for a %s block: %s"
                                    % (where, "full-config" if kind == "full" else kind, e))
                    continue
                written = absolute_written_paths(cfg)
                if written:
                    problems.append("%s: %s: an absolute path, which `portcullis -t` would create "
                                    "files in; write a relative one (it resolves in the working "
                                    "directory, /var/lib/portcullis under the systemd unit)"
                                    % (where, ", ".join(written)))
                    continue
                # One working folder for all checks: the SAML SP key and the session
                # key that loading creates are made once (RSA 3072 takes a while).
                work = os.path.join(tmp, "run")
                os.makedirs(work, exist_ok=True)
                path = os.path.join(work, "check-%d.json" % count)
                with open(path, "w") as f:
                    json.dump(cfg, f, indent=1)
                env = dict(os.environ)
                env.update({"POSTHOG_DOMAIN": "posthog.example.com",
                            "APP_DOMAIN": "app.example.com",
                            "SAML_IDP_METADATA": metadata,
                            "CERTS_DIR": os.path.join(work, "certs"),
                            "PRIVATE_ADDR": "127.0.0.1"})
                env.update(extra_env)
                r = subprocess.run([binary, "-t", "-c", path], cwd=work, env=env,
                                   capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    detail = (r.stderr or r.stdout).strip().replace(path, "<block>")
                    problems.append("%s: portcullis -t failed (exit %d):\n    %s"
                                    % (where, r.returncode, detail.replace("\n", "\n    ")))
    return count


C_TOKENS = re.compile(r'//[^\n]*|/\*.*?\*/|\'(?:[^\'\\\n]|\\.)*\'|"((?:[^"\\\n]|\\.)*)"', re.S)


def c_string_literals(text):
    """The string literals of C source (comments and character constants skipped)."""
    return [m.group(1) for m in C_TOKENS.finditer(text) if m.group(1) is not None]


def registered_metrics(source):
    """Metric names in string literals of src/*.c: what /metrics can show."""
    names = set()
    for c in glob.glob(os.path.join(source, "src", "**", "*.c"), recursive=True):
        with open(c, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for lit in c_string_literals(text):
            names.update(METRIC.findall(lit))
    histograms = set()
    for c in glob.glob(os.path.join(source, "src", "**", "*.c"), recursive=True):
        with open(c, encoding="utf-8", errors="replace") as f:
            histograms.update(re.findall(r"# TYPE (portcullis_[a-z0-9_]+) histogram", f.read()))
    for h in histograms:
        names.update({h + "_bucket", h + "_sum", h + "_count"})
    return names


def check_metrics(source, problems):
    known = registered_metrics(source)
    files = [os.path.join(source, "docs", "operations.md")]
    files += sorted(glob.glob(os.path.join(source, "examples", "prometheus", "*.yml")))
    seen = 0
    for path in files:
        rel = os.path.relpath(path, source)
        if not os.path.exists(path):
            problems.append("%s: missing" % rel)
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                for name in METRIC.findall(line):
                    seen += 1
                    if name not in known:
                        problems.append("%s:%d: metric %s is not registered in src/" % (rel, n, name))
    return seen


def check_prometheus_files(source, problems):
    """promtool check on examples/prometheus, when promtool is installed (Debian
    package prometheus).  Returns a word for the summary."""
    folder = os.path.join(source, "examples", "prometheus")
    promtool = shutil.which("promtool")
    if promtool is None:
        return "promtool not installed: not run"
    runs = [[promtool, "check", "config", "scrape.yml"]]
    runs += [[promtool, "check", "rules", os.path.basename(f)]
             for f in sorted(glob.glob(os.path.join(folder, "*alerts*.yml")))]
    for cmd in runs:
        r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            problems.append("examples/prometheus: %s failed:\n    %s"
                            % (" ".join(cmd[1:]), (r.stdout + r.stderr).strip().replace("\n", "\n    ")))
    return "promtool checked %d file%s" % (len(runs), "" if len(runs) == 1 else "s")


def github_anchors(path, cache={}):
    """The anchors GitHub makes for the headings of a Markdown file."""
    if path not in cache:
        anchors = set()
        fenced = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.lstrip().startswith("```"):
                    fenced = not fenced
                    continue
                m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
                    base, n = slug, 1
                    while slug in anchors:
                        slug = "%s-%d" % (base, n)
                        n += 1
                    anchors.add(slug)
        cache[path] = anchors
    return cache[path]


def check_links(source, problems):
    files = sorted(glob.glob(os.path.join(source, "docs", "*.md")))
    files.append(os.path.join(source, "README.md"))
    count = 0
    for path in files:
        rel = os.path.relpath(path, source)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        fenced = False
        for n, line in enumerate(text.split("\n"), 1):
            # Links inside fenced code blocks are examples, not links.
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                continue
            line = re.sub(r"`[^`]*`", "", line)  # nor are those in inline code
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue
                if target.startswith("#"):
                    target = os.path.basename(path) + target
                count += 1
                file_part = target.split("#", 1)[0]
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                if not os.path.exists(dest):
                    problems.append("%s:%d: link %s: %s does not exist"
                                    % (rel, n, target, os.path.relpath(dest, source)))
                elif "#" in target and dest.endswith(".md") and os.path.isfile(dest):
                    anchor = target.split("#", 1)[1]
                    if anchor not in github_anchors(dest):
                        problems.append("%s:%d: link %s: no heading with anchor #%s in %s"
                                        % (rel, n, target, anchor, os.path.relpath(dest, source)))
    return count


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("PORTCULLIS_BIN"))
    ap.add_argument("--source", default=os.environ.get("PORTCULLIS_SOURCE_DIR",
                                                       os.path.normpath(os.path.join(here, "..", ".."))))
    args = ap.parse_args()
    source = os.path.abspath(args.source)
    binary = os.path.abspath(args.bin or os.path.join(source, "build", "portcullis"))
    if not os.access(binary, os.X_OK):
        print("check_docs: %s is not an executable; build it or give --bin" % binary)
        return 1

    problems = []
    nconfigs = check_configs(source, binary, problems)
    nmetrics = check_metrics(source, problems)
    nlinks = check_links(source, problems)
    prom = check_prometheus_files(source, problems)
    for p in problems:
        print(p)
    print("check_docs: %d JSON blocks checked with %s -t, %d metric mentions, %d relative links, "
          "%s; %d problem%s" % (nconfigs, shlex.quote(os.path.basename(binary)), nmetrics, nlinks,
                                prom, len(problems), "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The dependency audit checked against itself: peers run for real from Python,
from a shell script, from Perl and from Node are recorded, and check_deps.py
fails on each one that a list does not name, with the line to add; with the
line, it passes.  The programs used here are ones scripts/deps.list names, so
they exist wherever scripts/install-deps.sh ran."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
sys.path.insert(0, HERE)
import depslist  # noqa: E402

FULL_LIST = depslist.LIST_PATH


def audited_env(audit_dir, repo):
    env = dict(os.environ)
    for var in ("PERL5OPT", "NODE_OPTIONS", "PORTCULLIS_DEPS_FOR"):
        env.pop(var, None)
    env.update({
        "PORTCULLIS_DEPS_LOG": os.path.join(audit_dir, "log.jsonl"),
        "PORTCULLIS_SOURCE_DIR": repo,
        "PATH": os.path.join(audit_dir, "bin") + os.pathsep + os.environ["PATH"],
        "PYTHONPATH": os.path.join(HERE, "audit"),
        "PERL5LIB": os.path.join(HERE, "audit"),
        "PERL5OPT": "-MPortcullisDepsAudit",
        "NODE_OPTIONS": "--import=file://%s/audit/node_audit.mjs" % HERE,
    })
    return env


@pytest.fixture
def audit(tmp_path):
    """A fresh audit folder (shims + empty log) and a stand-in repository."""
    audit_dir, repo = str(tmp_path / "audit"), tmp_path / "repo"
    repo.mkdir()
    r = subprocess.run([PY, os.path.join(HERE, "setup.py"), audit_dir], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return audit_dir, repo


def records(audit_dir):
    with open(os.path.join(audit_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def check(audit_dir, list_path):
    return subprocess.run([PY, os.path.join(HERE, "check_deps.py"), audit_dir, list_path],
                          capture_output=True, text=True)


def list_without(tmp_path, *names):
    out = tmp_path / "deps.list"
    with open(FULL_LIST) as f:
        lines = [ln for ln in f if not (ln.split() and ln.split()[1:2] and ln.split()[1] in names)]
    out.write_text("".join(lines))
    return str(out)


def test_python_shell_perl_and_node_peers_are_recorded_and_checked(audit, tmp_path):
    audit_dir, repo = audit
    env = audited_env(audit_dir, str(repo))
    # Python: a program by absolute path (no shim sees it) and a module import
    (repo / "peer.py").write_text(
        "import subprocess, yaml\n"
        "subprocess.run(['/usr/bin/openssl', 'version'], check=True, capture_output=True)\n")
    # a shell script: a program found on PATH
    (repo / "peer.sh").write_text("#!/bin/sh\nxmlsec1 --version >/dev/null\n")
    # Perl: a module loaded by -e code
    # Node: a program started by path
    (repo / "peer.mjs").write_text(
        "import { execFileSync } from 'node:child_process';\n"
        "execFileSync('/usr/bin/curl', ['--version']);\n")
    for cmd in ([PY, str(repo / "peer.py")], ["sh", str(repo / "peer.sh")],
                ["perl", "-e", "use MaxMind::DB::Writer::Tree; 1"],
                ["node", str(repo / "peer.mjs")]):
        r = subprocess.run(cmd, env=env, cwd=str(repo), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stderr)

    seen = {(r["kind"], r["name"]) for r in records(audit_dir)}
    for want in (("program", "openssl"), ("python", "yaml"), ("program", "xmlsec1"),
                 ("perl", "MaxMind::DB::Writer::Tree"), ("program", "curl"),
                 ("program", "perl"), ("program", "node")):
        assert want in seen, "not recorded: %s %s (got %s)" % (want + (sorted(seen),))

    r = check(audit_dir, FULL_LIST)
    assert r.returncode == 0, r.stdout

    r = check(audit_dir, list_without(tmp_path, "openssl", "yaml", "xmlsec1",
                                      "MaxMind::DB::Writer::Tree", "curl"))
    assert r.returncode == 1, r.stdout
    for line in ("program  openssl", "deb:openssl", "python   yaml", "deb:python3-yaml",
                 "program  xmlsec1", "deb:xmlsec1", "perl     MaxMind::DB::Writer::Tree",
                 "deb:libmaxmind-db-writer-perl", "program  curl", "deb:curl"):
        assert line in r.stdout, r.stdout


def test_program_from_no_package_fails(audit, tmp_path):
    audit_dir, _ = audit
    stray = tmp_path / "bin" / "stray-tool"
    stray.parent.mkdir()
    stray.write_text("#!/bin/sh\nexit 0\n")
    stray.chmod(0o755)
    with open(os.path.join(audit_dir, "log.jsonl"), "a") as f:
        f.write(json.dumps({"kind": "program", "name": "stray-tool", "path": str(stray),
                            "for": "test", "by": "here"}) + "\n")
    r = check(audit_dir, FULL_LIST)
    assert r.returncode == 1 and "belongs to no Debian package" in r.stdout, r.stdout


def test_a_demo_use_needs_a_demo_line(audit, tmp_path):
    audit_dir, _ = audit
    with open(os.path.join(audit_dir, "log.jsonl"), "a") as f:
        f.write(json.dumps({"kind": "program", "name": "pebble", "path": "/usr/bin/pebble",
                            "for": "demo", "by": "scripts/demo.sh"}) + "\n")
    r = check(audit_dir, FULL_LIST)
    assert r.returncode == 1 and "pebble" in r.stdout, r.stdout


def test_npm_package_outside_the_listed_lock_files_fails(audit, tmp_path):
    audit_dir, _ = audit
    mod = tmp_path / "node_modules" / "left-pad" / "index.js"
    mod.parent.mkdir(parents=True)
    mod.write_text("")
    with open(os.path.join(audit_dir, "log.jsonl"), "a") as f:
        f.write(json.dumps({"kind": "npm", "name": "left-pad", "path": str(mod),
                            "for": "test", "by": "here"}) + "\n")
    r = check(audit_dir, FULL_LIST)
    assert r.returncode == 1 and "left-pad" in r.stdout, r.stdout


def test_malformed_list_is_named():
    with pytest.raises(ValueError, match="want 4 columns"):
        bad = os.path.join(os.environ.get("TMPDIR", "/tmp"), "portcullis-bad-deps.list")
        with open(bad, "w") as f:
            f.write("program curl deb:curl\n")
        depslist.parse(bad)

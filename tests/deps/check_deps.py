#!/usr/bin/env python3
"""Fixture cleanup of the dependency audit (tests/deps/README.md): every program
the suite ran and every module the repository's own code imported, as recorded
in DIR/log.jsonl, must come from something scripts/deps.list names.

A record passes when what ran lies in this repository, or its file belongs to
  - a Debian package of the essential set (Essential: yes or Priority: required), or
  - the package of the list's line for that name and kind, or one that package
    pulls in (Depends, Pre-Depends, Recommends), for a set the record was made in, or
  - for a module: a package that the line of its interpreter pulls in (the stdlib);
  - for an npm package: the node_modules of the lock file its line names;
  - for a program of ../shared: the line naming that path.
Anything else fails the check with the line to add.

usage: check_deps.py DIR [LIST]    (LIST defaults to scripts/deps.list)"""

import collections
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import depslist  # noqa: E402

SOURCE = os.path.realpath(depslist.SOURCE_DIR) + os.sep
SHARED = os.path.realpath(os.path.join(depslist.SOURCE_DIR, "..", "shared")) + os.sep
SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audit", "shim.sh")
INTERPRETER = {"python": "python3", "perl": "perl", "npm": "node"}
# a record made while running scripts/demo.sh also needs what the demo builds with
ACCEPTS = {"demo": ("demo", "build"), "test": ("test", "build", "demo"), "bench": ("bench", "build"),
           "fuzz": ("fuzz", "build")}


class Dpkg:
    """Installed packages: essential set, dependency closure, owners of files."""

    def __init__(self):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f",
             "${Package}\t${db:Status-Status}\t${Essential}\t${Priority}\t${Provides}\t"
             "${Depends}, ${Pre-Depends}, ${Recommends}\n"],
            capture_output=True, text=True, check=True).stdout
        self.installed, self.base, self.deps = set(), set(), {}
        self.providers = collections.defaultdict(set)
        for line in out.splitlines():
            pkg, status, essential, prio, provides, deps = (line.split("\t") + [""] * 6)[:6]
            if status != "installed":
                continue
            pkg = pkg.split(":")[0]
            self.installed.add(pkg)
            if essential == "yes" or prio == "required":
                self.base.add(pkg)
            for p in provides.split(","):
                if p.strip():
                    self.providers[p.split("(")[0].strip().split(":")[0]].add(pkg)
            alts = []
            for group in deps.split(","):
                names = [a.split("(")[0].strip().split(":")[0] for a in group.split("|")]
                alts.append([n for n in names if n])
            self.deps[pkg] = [a for a in alts if a]
        self._closures = {}

    def _expand(self, name):
        return ({name} if name in self.installed else set()) | self.providers.get(name, set())

    def closure(self, pkg):
        """pkg and every installed package it pulls in."""
        if pkg not in self._closures:
            seen, todo = set(), list(self._expand(pkg))
            while todo:
                p = todo.pop()
                if p in seen:
                    continue
                seen.add(p)
                for group in self.deps.get(p, ()):
                    for alt in group:
                        todo.extend(self._expand(alt) - seen)
            self._closures[pkg] = seen
        return self._closures[pkg]

    @staticmethod
    def owners(paths):
        """{path: set of owning packages} for the paths dpkg knows."""
        cands = {}
        for p in paths:
            forms = {p, os.path.realpath(p)}
            for f in list(forms):  # merged /usr: dpkg may know either spelling
                for a, b in (("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"), ("/usr/lib/", "/lib/")):
                    if f.startswith(a):
                        forms.add(b + f[len(a):])
                    elif f.startswith(b):
                        forms.add(a + f[len(b):])
            cands[p] = forms
        allforms = sorted({f for fs in cands.values() for f in fs})
        found = collections.defaultdict(set)
        for i in range(0, len(allforms), 200):
            r = subprocess.run(["dpkg-query", "-S"] + allforms[i:i + 200], capture_output=True, text=True)
            for line in r.stdout.splitlines():
                if line.startswith("diversion by"):
                    continue
                pkgs, _, path = line.rpartition(": ")
                for pk in pkgs.split(","):
                    found[path].add(pk.strip().split(":")[0])
        return {p: set().union(*(found.get(f, set()) for f in fs)) for p, fs in cands.items()}


def load_records(log):
    recs = {}
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            key = (r.get("kind"), r.get("name"), r.get("path"), r.get("for", "test"))
            recs.setdefault(key, r)
    return list(recs.values())


def suggest(kind, name, pkgs, sets):
    pkg = sorted(pkgs)[0] if pkgs else "PACKAGE"
    return "%-8s %-26s deb:%-40s %s" % (kind, name, pkg, sets)


def check(records, entries, dpkg):
    problems = []
    by_name = collections.defaultdict(list)
    for e in entries:
        by_name[(e.kind, e.name)].append(e)
    owners = dpkg.owners({r["path"] for r in records if r.get("path") and r["kind"] != "npm"})
    counts = collections.Counter()
    for r in records:
        kind, name, path, rset = r["kind"], r["name"], r.get("path"), r.get("for", "test")
        counts[kind] += 1
        where = "(%s, run by %s)" % (rset, r.get("by") or "?")
        if not path:
            problems.append("%s %s: not found anywhere %s; %s" % (kind, name, where, depslist.where(name, kind)))
            continue
        real = os.path.realpath(path)
        if real == SHIM:
            continue  # a shim found on PATH: the shim itself recorded what it ran
        if real.startswith(SOURCE) and "/node_modules/" not in real:
            continue  # our own scripts, binaries and test helpers
        lines = [e for e in by_name.get((kind, name), []) if set(e.sets) & set(ACCEPTS.get(rset, (rset,)))]
        if kind == "npm":
            if not any(e.npm_dir and real.startswith(os.path.realpath(
                    os.path.join(depslist.SOURCE_DIR, e.npm_dir, "node_modules")) + os.sep) for e in lines):
                problems.append("npm package %s at %s %s is not from a lock file the list names; add:\n    "
                                "npm      %-26s npm:DIR-WITH-ITS-LOCK-FILE %s" % (name, real, where, name, rset))
            continue
        if real.startswith(SHARED):
            rel = real[len(SHARED):]
            if not any(e.shared_path and rel.startswith(e.shared_path) for e in lines):
                problems.append("%s %s at %s %s comes from ../shared; add:\n    %-8s %-26s shared:%s %s"
                                % (kind, name, real, where, kind, name, rel, rset))
            continue
        pkgs = owners.get(path, set())
        if not pkgs:
            problems.append("%s %s at %s %s belongs to no Debian package: it was installed by hand or "
                            "by another tool, and a fresh machine will not have it (Debian's own is "
                            "what the list can install)" % (kind, name, real, where))
            continue
        if pkgs & dpkg.base:
            continue
        ok = any(pkgs & dpkg.closure(p) for e in lines for p, _ in e.debs)
        if not ok and kind in INTERPRETER:
            interp = [e for e in by_name.get(("program", INTERPRETER[kind]), [])]
            ok = any(pkgs & dpkg.closure(p) for e in interp for p, _ in e.debs)
        if not ok:
            if lines:
                problems.append("%s %s at %s %s belongs to %s, which its line (%s) does not pull in"
                                % (kind, name, real, where, ", ".join(sorted(pkgs)), lines[0].source))
            else:
                problems.append("%s %s at %s %s is not in scripts/deps.list; add:\n    %s"
                                % (kind, name, real, where, suggest(kind, name, pkgs, rset)))
    return problems, counts


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    log = os.path.join(argv[1], "log.jsonl")
    list_path = argv[2] if len(argv) == 3 else depslist.LIST_PATH
    if not os.path.exists(log):
        print("deps check: %s missing: the fixture setup (deps/setup) did not run" % log)
        return 1
    try:
        entries = depslist.parse(list_path)
    except ValueError as e:
        print("deps check: %s" % e)
        return 1
    records = load_records(log)
    problems, counts = check(records, entries, Dpkg())
    summary = ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())) or "nothing"
    if problems:
        print("deps check: %d of what the suite used is not covered by scripts/deps.list "
              "(so scripts/install-deps.sh would not install it on a fresh machine):" % len(problems))
        for p in problems:
            print("  - " + p)
        print("deps check: FAILED (checked %s)" % summary)
        return 1
    print("deps check: everything the suite used comes from scripts/deps.list (checked %s)" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

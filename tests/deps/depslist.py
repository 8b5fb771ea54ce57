"""scripts/deps.list, read: what each external program and module the suite uses
comes from.  Used by the tests' "missing peer" messages (harness.need) and by
tests/deps/check_deps.py."""

import os
from collections import namedtuple

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIST_PATH = os.path.join(SOURCE_DIR, "scripts", "deps.list")
KINDS = ("build", "program", "python", "perl", "npm", "package")
SETS = ("build", "demo", "test", "bench", "fuzz")

# kind, name, source as written, for-sets (tuple); debs: ((package, min_version|None), ...)
# for deb: sources, npm_dir / shared_path for the others.
Entry = namedtuple("Entry", "kind name source sets debs npm_dir shared_path line")


def parse(path=LIST_PATH):
    """Entries of the list; raises ValueError naming the line of a malformed one."""
    entries = []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
            if not line:
                continue
            cols = line.split()
            if len(cols) != 4:
                raise ValueError("%s:%d: want 4 columns (kind name source for), got %d"
                                 % (path, n, len(cols)))
            kind, name, source, sets = cols
            sets = tuple(sets.split(","))
            if kind not in KINDS:
                raise ValueError("%s:%d: unknown kind %r (one of %s)" % (path, n, kind, ", ".join(KINDS)))
            bad = [s for s in sets if s not in SETS]
            if bad:
                raise ValueError("%s:%d: unknown set %r (one of %s)" % (path, n, bad[0], ", ".join(SETS)))
            debs, npm_dir, shared = (), None, None
            if source.startswith("deb:"):
                alts = []
                for alt in source[4:].split("|"):
                    pkg, _, minv = alt.partition(">=")
                    alts.append((pkg, minv or None))
                debs = tuple(alts)
            elif source.startswith("npm:"):
                npm_dir = source[4:]
            elif source.startswith("shared:"):
                shared = source[7:]
            else:
                raise ValueError("%s:%d: unknown source %r (deb:, npm: or shared:)" % (path, n, source))
            entries.append(Entry(kind, name, source, sets, debs, npm_dir, shared, n))
    return entries


def find(name, kind=None, entries=None):
    """The first entry named <name> (of <kind>, if given), or None."""
    for e in entries if entries is not None else parse():
        if e.name == name and (kind is None or e.kind == kind):
            return e
    return None


def where(name, kind="program"):
    """A phrase saying where <name> comes from, for a "missing peer" message:
    'Debian package nghttp2-server (scripts/install-deps.sh installs it)'."""
    e = find(name, kind)
    if e is None:
        return "not in scripts/deps.list: add a line for it there"
    if e.debs:
        return "Debian package %s (scripts/install-deps.sh installs it)" % " or ".join(p for p, _ in e.debs)
    if e.npm_dir:
        return "npm lock file %s/package-lock.json (scripts/install-deps.sh runs npm ci)" % e.npm_dir
    return "../shared/%s" % e.shared_path

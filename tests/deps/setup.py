#!/usr/bin/env python3
"""Fixture setup of the dependency audit (tests/deps/README.md): empties the
record log and links every command name on PATH to audit/shim.sh in <dir>/bin,
the folder that CTest puts first on PATH for every test.

usage: setup.py DIR"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = os.path.abspath(argv[1])
    bin_dir = os.path.join(out, "bin")
    shutil.rmtree(bin_dir, ignore_errors=True)
    os.makedirs(bin_dir)
    shim = os.path.join(HERE, "audit", "shim.sh")
    names = set()
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not d or os.path.realpath(d) == os.path.realpath(bin_dir) or not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if name in names or not os.path.isfile(p) or not os.access(p, os.X_OK):
                continue
            names.add(name)
            os.symlink(shim, os.path.join(bin_dir, name))
    log = os.path.join(out, "log.jsonl")
    with open(log, "w"):
        pass
    # processes that dropped privileges (test_privileges.py) record too
    os.chmod(log, 0o666)
    for d in (out, bin_dir):
        os.chmod(d, 0o755)
    print("deps audit: %d commands shimmed in %s; records go to %s" % (len(names), bin_dir, log))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

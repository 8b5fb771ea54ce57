#!/usr/bin/env python3
"""Check that src/ keeps its layers and has no include cycle.

Reads every #include "x/y.h" in src/**/*.c and src/**/*.h (includes that name
no file under src/ are left alone) and fails, naming file and line, when

  (a) a file includes a header of a higher layer than its own (LAYERS below), or
  (b) the includes form a cycle between modules: foo.c and foo.h are one node,
      so foo.c -> bar.h -> foo.h is a cycle too.  Each cycle is printed with the
      include line behind every step.  Also: a private header of a folder
      (<folder>/<name>_internal.h) is included only from its own folder.

Usage: check_layers.py [--source DIR]
  --source  the repository (default: $PORTCULLIS_SOURCE_DIR, else two levels up)
Exit status 0 when both checks pass, 1 otherwise.  Python standard library only.
"""
import argparse
import os
import re
import sys

# Lowest first.  A file may include its own layer and the layers below it,
# never one above.  A file belongs to the layer of the longest entry that is a
# prefix of its path under src/ (a folder ends in "/"; "auth/auth" names
# auth/auth.c and auth/auth.h).  The order follows what each layer needs:
LAYERS = [
    # log, metrics, time, base64url: nothing of ours.
    ("base", ["base/"]),
    # certificate store, handshake callbacks, local CA: OpenSSL and base.
    ("tls", ["tls/"]),
    # addresses and CIDR sets, compiled allow/deny/country blocks, GeoIP,
    # rate buckets: plain data the config model holds.
    ("access", ["access/"]),
    # transport and codec: trusted peers are an ipacl, TLS from tls/.
    ("http", ["http/"]),
    # the RFC 8555 client: its HTTPS goes through http/outbound (libcurl),
    # challenges and certificates through tls/.
    ("acme", ["acme/"]),
    # the SAML SP, sessions, the replay cache: objects the config model owns.
    ("auth", ["auth/"]),
    # the immutable configuration every request reads (config_model.h: types,
    # ref/unref, free, lookups); holds access blocks and auth objects, so it
    # sits above them and below everything that reads it.
    ("model", ["config/config_model"]),
    # decisions per request over the model: access rules for one client, the
    # SAML gate, the claims store (its redis settings come from the model).
    ("policy", ["access/access_check", "auth/auth", "auth/claims", "auth/revoke.", "auth/revoke_store"]),
    # upstream pools, balancing and health: what a generation builds.
    ("upstream", ["proxy/upstream"]),
    # one configuration as it is served: the runtime every worker shares, a
    # worker's generation (its pools, its claims store) and the txn_env a
    # worker lends its transactions, so that proxy/ needs no worker.
    ("generation", ["core/runtime", "core/generation"]),
    # one transaction, the router, TCP relays.
    ("proxy", ["proxy/"]),
    # workers, listeners, privileges, admin.
    ("core", ["core/"]),
    # the JSON loader (config.h and the config_*.c sections): builds objects
    # of every layer below (routers to check SAML paths, privdrop to resolve
    # the run-as user so -t reports it).  Only main.c and tests call it.
    ("loader", ["config/"]),
    ("main", ["main.c"]),
]

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(rel):
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if rel.startswith(prefix) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def node_of(rel):
    return os.path.splitext(rel)[0]


def is_private(target):
    return os.path.splitext(target)[0].endswith("_internal")


def check_private(includes):
    """Errors for private headers included from another folder."""
    errors = []
    for rel, edges in sorted(includes.items()):
        for number, target in edges:
            if is_private(target) and os.path.dirname(target) != os.path.dirname(rel):
                errors.append(f"src/{rel}:{number}: includes the private header \"{target}\" "
                              f"of another folder")
    return errors


def scan(src):
    """{file: [(line number, included file)]} for every .c/.h under src."""
    files = {}
    for root, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            if name.endswith((".c", ".h")):
                path = os.path.join(root, name)
                files[os.path.relpath(path, src).replace(os.sep, "/")] = path
    includes = {}
    for rel, path in files.items():
        edges = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if m is None:
                    continue
                target = m.group(1)
                if target not in files:  # same-folder or external header
                    local = os.path.normpath(os.path.join(os.path.dirname(rel), target))
                    target = local.replace(os.sep, "/")
                    if target not in files:
                        continue
                edges.append((number, target))
        includes[rel] = edges
    return includes


def check_layers(includes):
    errors = []
    for rel in sorted(includes):
        own = layer_of(rel)
        if own is None:
            errors.append(f"src/{rel}: in no layer; add its folder to LAYERS in {__file__}")
            continue
        for number, target in includes[rel]:
            other = layer_of(target)
            if other is not None and other > own:
                errors.append(f"src/{rel}:{number}: layer {LAYERS[own][0]} includes "
                              f"\"{target}\" of the higher layer {LAYERS[other][0]}")
    return errors


def find_cycles(includes):
    """(modules, one cycle as (file, line, target) steps) per strongly
    connected component of the module graph with more than one node."""
    graph, why = {}, {}
    for rel, edges in includes.items():
        a = node_of(rel)
        graph.setdefault(a, set())
        for number, target in edges:
            b = node_of(target)
            if a != b:
                graph[a].add(b)
                graph.setdefault(b, set())
                why.setdefault((a, b), (rel, number, target))
    # Tarjan, iterative.
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    sccs.append(sorted(scc))
    cycles = []
    for scc in sccs:
        members = set(scc)
        # Shortest path back to the first node, by breadth-first search.
        first = scc[0]
        prev = {first: None}
        queue = [first]
        found = None
        while queue and found is None:
            nxt = []
            for v in queue:
                for w in sorted(graph[v]):
                    if w not in members:
                        continue
                    if w == first:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            queue = nxt
        path = [found]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        path.append(first)
        cycles.append((scc, [why[(path[i], path[i + 1])] for i in range(len(path) - 1)]))
    return cycles


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=os.environ.get("PORTCULLIS_SOURCE_DIR")
                    or os.path.normpath(os.path.join(here, "..", "..")))
    args = ap.parse_args()
    src = os.path.join(args.source, "src")
    if not os.path.isdir(src):
        print(f"check_layers: no folder {src}", file=sys.stderr)
        return 1
    includes = scan(src)
    errors = check_private(includes) + check_layers(includes)
    cycles = find_cycles(includes)
    for e in errors:
        print(e)
    for scc, steps in cycles:
        names = " -> ".join([node_of(steps[0][0])] + [node_of(t) for _, _, t in steps])
        print(f"include cycle: {names}")
        for rel, number, target in steps:
            print(f"  src/{rel}:{number}: #include \"{target}\"")
        if len(scc) > len(steps):
            print(f"  (one of the cycles among {len(scc)} modules: {' '.join(scc)})")
    nedges = sum(len(e) for e in includes.values())
    if errors or cycles:
        print(f"check_layers: FAIL: {len(errors)} include problem(s), {len(cycles)} cycle(s) "
              f"in {len(includes)} files")
        return 1
    print(f"check_layers: ok: {len(includes)} files, {nedges} project includes, "
          f"{len(LAYERS)} layers, no upward include, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Turn bench/run.sh's raw runs into the Markdown report (stdout).

usage: report.py RAW.tsv META.tsv DURATION_S

RAW.tsv has one line per measured run (scenario, conns, proxy, round, rps, p50_ms, p99_ms,
non2xx, sockerr, proxy_cpu_s, upstream_cpu_s); META.tsv carries the machine description,
proxy status and RSS lines written by run.sh. Each cell is the median over rounds.
"""
import csv
import statistics
import sys
from collections import OrderedDict

LABEL = {"direct": "upstream alone", "nginx": "nginx", "haproxy": "HAProxy",
         "caddy": "Caddy", "portcullis": "**Portcullis**", "baseline": "Portcullis (baseline)"}


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def load(row, col, duration):
    """CPU seconds in column col as cores over the measured window of that run."""
    secs, win = num(row.get(col)), num(row.get("window_s")) or duration
    return None if secs is None else secs / win


def fmt(v, nd=0):
    return "n/a" if v is None else f"{v:,.{nd}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def write_ab(w, cells, meta, duration):
    """Before/after: "baseline" (BASELINE_BIN) against "portcullis", measured in the same
    rounds: per cell, median req/s and p99 with min-max over rounds, and the change."""
    w("## Portcullis against its baseline, same rounds")
    w("")
    w(f"- baseline: {meta.get('baseline')}")
    w(f"- this build: {meta.get('portcullis')}")
    w("- req/s and p99: median over rounds [min-max]; proxy CPU per request in µs (median).")
    w("")
    w("| scenario | conns | baseline req/s | this req/s | change | baseline p99 ms | this p99 ms "
      "| baseline µs CPU/req | this µs CPU/req |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (scen, conns), by_proxy in cells.items():
        if "baseline" not in by_proxy or "portcullis" not in by_proxy:
            continue
        cols = []
        for p in ("baseline", "portcullis"):
            rows = by_proxy[p]
            rps = [num(r["rps"]) for r in rows if num(r["rps"])]
            p99 = [num(r["p99_ms"]) for r in rows if num(r["p99_ms"]) is not None]
            cpu = [num(r["proxy_cpu_s"]) * 1e6 / (num(r["rps"]) * duration)
                   for r in rows if num(r["rps"]) and num(r["proxy_cpu_s"]) is not None]
            cols.append((rps, p99, cpu))
        (b_rps, b_p99, b_cpu), (a_rps, a_p99, a_cpu) = cols
        span = lambda v, nd=0: (f"{fmt(median(v), nd)} [{fmt(min(v), nd)}-{fmt(max(v), nd)}]"
                                if v else "n/a")
        change = ratio(median(a_rps), median(b_rps)) if a_rps and b_rps else None
        w(f"| {scen} | {conns} | {span(b_rps)} | {span(a_rps)} | "
          f"{'n/a' if change is None else format((change - 1) * 100, '+.1f') + ' %'} | "
          f"{span(b_p99, 2)} | {span(a_p99, 2)} | {span(b_cpu, 1)} | {span(a_cpu, 1)} |")
    w("")


def write_memory(w, mem_path, proxies):
    """Peak RSS during each run and RSS 10 s after it, medians over rounds."""
    cells = OrderedDict()  # (scenario, conns) -> proxy -> [(peak, after)]
    with open(mem_path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            key = (row["scenario"], int(row["conns"]))
            cells.setdefault(key, OrderedDict()).setdefault(row["proxy"], []).append(
                (num(row["peak_kib"]), num(row["after10_kib"])))
    if not cells:
        return
    shown = [p for p in proxies if any(p in c for c in cells.values())]
    mib = lambda v: "n/a" if v is None else f"{v / 1024:.1f}"
    w("### Memory per scenario: peak during the run / 10 s after it (MiB, medians over rounds)")
    w("")
    w("| scenario | conns | " + " | ".join(LABEL.get(p, p) for p in shown) + " |")
    w("|---|---:|" + "---:|" * len(shown))
    for (scen, conns), by_proxy in cells.items():
        row = []
        for p in shown:
            vals = by_proxy.get(p, [])
            peaks = [a for a, _ in vals if a is not None]
            afters = [b for _, b in vals if b is not None]
            row.append(f"{mib(median(peaks) if peaks else None)} / "
                       f"{mib(median(afters) if afters else None)}")
        w(f"| {scen} | {conns} | " + " | ".join(row) + " |")
    w("")
    w("Peak: the highest RSS sampled every 0.1 s while wrk ran; after: 10 s after wrk ended "
      "(the proxy idle meanwhile: the next runs load another proxy).")
    w("")


def main():
    raw_path, meta_path, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
    mem_path = sys.argv[4] if len(sys.argv) > 4 else None
    meta, status, rss, scen_desc = {}, OrderedDict(), OrderedDict(), OrderedDict()
    with open(meta_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "status":
                status[parts[1]] = parts[2]
            elif parts[0] == "rss":
                rss[parts[1]] = (num(parts[2]), num(parts[3]))
            elif parts[0] == "scenario":
                scen_desc[parts[1]] = parts[2]
            else:
                meta[parts[0]] = parts[1]

    cells = OrderedDict()  # (scenario, conns) -> proxy -> list of rows
    with open(raw_path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            key = (row["scenario"], int(row["conns"]))
            cells.setdefault(key, OrderedDict()).setdefault(row["proxy"], []).append(row)

    proxies = list(status.keys())
    out = []
    w = out.append
    w(f"# Reverse-proxy benchmark — {meta.get('date', '')}")
    w("")
    w(f"- Machine: {meta.get('cpu')}, {meta.get('mem')}, {meta.get('os')}, {meta.get('kernel')}")
    w(f"- Versions: nginx {meta.get('nginx')}, HAProxy {meta.get('haproxy')}, "
      f"Caddy {meta.get('caddy')}, wrk {meta.get('wrk')}; Portcullis: {meta.get('portcullis')}")
    w(f"- Parameters: {meta.get('params')}")
    w("- Upstream: one nginx (1 worker) on loopback, shared by all proxies; "
      "\"upstream alone\" is wrk straight against it.")
    w("- Every proxy: 2 workers/threads, keep-alive to the upstream, access logs off. "
      "Nothing is pinned: wrk, the upstream and the proxy share the 2 cores.")
    w("- req/s and latencies are medians over rounds; \"vs nginx\" is proxy / nginx "
      "(req/s: higher is better; p99: lower is better). CPU is the proxy's own CPU time "
      "during the run divided by the run's wall time (1.00 = one core busy).")
    w("- \"other\" is the CPU that processes other than wrk, the upstream and the proxy used "
      "during the run (cores, from /proc/stat): this machine is shared, and a cell marked "
      "⚠ busy ran while something else took more than 0.15 core.")
    w("")
    summary = []
    for (scen, conns), by_proxy in cells.items():
        w(f"## {scen} — {scen_desc.get(scen, '')}, {conns} connections")
        w("")
        w("| proxy | req/s | vs nginx | p50 ms | p99 ms | p99 vs nginx | CPU | other | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        med = {}
        for p, rows in by_proxy.items():
            med[p] = {
                "rps": median(num(r["rps"]) for r in rows),
                "p50": median(num(r["p50_ms"]) for r in rows),
                "p99": median(num(r["p99_ms"]) for r in rows),
                "cpu": median(load(r, "proxy_cpu_s", duration) for r in rows),
                "other": median(load(r, "other_cpu_s", duration) for r in rows),
                "non2xx": sum(int(num(r["non2xx"]) or 0) for r in rows),
                "sockerr": sum(int(num(r["sockerr"]) or 0) for r in rows),
                "n": len(rows),
            }
        ng = med.get("nginx", {})
        for p in proxies:
            if p not in med:
                continue
            m = med[p]
            errs = []
            if m["non2xx"]:
                errs.append(f"{m['non2xx']} non-2xx")
            if m["sockerr"]:
                errs.append(f"{m['sockerr']} socket")
            if m["rps"] is None:
                errs.append("no result")
            err = ("⚠ " + ", ".join(errs)) if errs else "0"
            r_rps = ratio(m["rps"], ng.get("rps"))
            r_p99 = ratio(m["p99"], ng.get("p99"))
            cpu, other = m["cpu"], m["other"]
            busy = " ⚠ busy" if other is not None and other > 0.15 else ""
            w(f"| {LABEL.get(p, p)} | {fmt(m['rps'])} | {fmt(r_rps, 2)}× | {fmt(m['p50'], 2)} | "
              f"{fmt(m['p99'], 2)} | {fmt(r_p99, 2)}× | {fmt(cpu, 2)} | {fmt(other, 2)}{busy} | {err} |")
            if p == "portcullis":
                summary.append(f"{scen}/{conns}c {fmt(r_rps, 2)}× req/s, p99 {fmt(r_p99, 2)}×"
                               + (" (errors)" if errs else ""))
        w("")

    if "baseline" in proxies and "portcullis" in proxies:
        write_ab(w, cells, meta, duration)

    w("## Memory (RSS of the process tree)")
    w("")
    w("| proxy | after start | after the run | status |")
    w("|---|---:|---:|---|")
    for p in proxies:
        a, b = rss.get(p, (None, None))
        mib = lambda v: "n/a" if v is None else f"{v / 1024:.1f} MiB"
        w(f"| {LABEL.get(p, p)} | {mib(a)} | {mib(b)} | {status[p]} |")
    w("")
    w("RSS sums VmRSS over the proxy's process and its children (nginx: master + workers, "
      "so shared pages count more than once). \"upstream alone\" is the upstream nginx.")
    w("")
    if mem_path:
        write_memory(w, mem_path, proxies)
    if "portcullis" in status:
        if summary:
            w("**Portcullis / nginx:** " + "; ".join(summary) + ".")
        else:
            w(f"**Portcullis / nginx:** not measured (Portcullis: {status['portcullis']}).")
    print("\n".join(out))


if __name__ == "__main__":
    main()

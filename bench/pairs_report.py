#!/usr/bin/env python3
"""Markdown tables for the A/B benchmarks (bench/access.sh, bench/auth.sh, bench/relay.sh).

usage: pairs_report.py RAW.tsv BASELINE [NAME=LABEL ...]

RAW.tsv has a header line and one line per measured run. Two kinds:
  HTTP (wrk):  cell config round rps p50_ms p99_ms non2xx sockerr proxy_cores other_cores
  transfer:    cell config round seconds mib_s proxy_cores other_cores ok
Per cell, every configuration gets the median over its rounds and its ratio to BASELINE
(and, for HTTP, the proxy's CPU time per request, median over the rounds):
the ratio of the medians, and the median of the per-round ratios (each round runs every
configuration once, back to back, so a round's ratio shares that round's machine load).
"""

import csv
import statistics
import sys


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=2, thousands=False):
    if v is None:
        return "n/a"
    if thousands:
        return "{:,.0f}".format(v)
    return "{:.{}f}".format(v, digits)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    raw, base = sys.argv[1], sys.argv[2]
    labels = dict(a.split("=", 1) for a in sys.argv[3:])
    with open(raw, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        sys.exit("no runs in " + raw)
    http = "rps" in rows[0]
    main_key = "rps" if http else "mib_s"
    cells, configs = [], []
    for r in rows:
        if r["cell"] not in cells:
            cells.append(r["cell"])
        if r["config"] not in configs:
            configs.append(r["config"])
    summary = []
    for cell in cells:
        runs = [r for r in rows if r["cell"] == cell]
        by = {c: [r for r in runs if r["config"] == c] for c in configs}
        base_round = {r["round"]: num(r[main_key]) for r in by.get(base, [])}
        base_med = med(base_round.values())
        print("#### %s\n" % cell)
        if http:
            print("| configuration | req/s (median) | vs %s | paired ratio | p50 ms | p99 ms "
                  "| proxy CPU | proxy µs CPU/req | other CPU | errors | req/s per round |"
                  % labels.get(base, base))
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        else:
            print("| configuration | MiB/s (median) | vs %s | paired ratio | seconds (median) "
                  "| proxy CPU | other CPU | failed | MiB/s per round |" % labels.get(base, base))
            print("|---|---:|---:|---:|---:|---:|---:|---|---|")
        for c in configs:
            rs = by[c]
            if not rs:
                continue
            m = med(num(r[main_key]) for r in rs)
            ratio = m / base_med if m is not None and base_med else None
            paired = med(num(r[main_key]) / base_round[r["round"]] for r in rs
                         if base_round.get(r["round"]) and num(r[main_key]) is not None)
            per_round = ", ".join(fmt(num(r[main_key]), thousands=http) if http
                                  else fmt(num(r[main_key]), 0) for r in rs)
            name = labels.get(c, c)
            if c != base:
                name = "**%s**" % name
                summary.append("%s: %s %s× (paired %s×)" % (cell, labels.get(c, c), fmt(ratio),
                                                             fmt(paired)))
            if http:
                errs = sum(int(num(r["non2xx"]) or 0) + int(num(r["sockerr"]) or 0) for r in rs)
                us = med(num(r["proxy_cores"]) * 1e6 / num(r["rps"]) for r in rs
                         if num(r["proxy_cores"]) is not None and num(r["rps"]))
                print("| %s | %s | %s× | %s× | %s | %s | %s | %s | %s | %d | %s |" % (
                    name, fmt(m, thousands=True), fmt(ratio), fmt(paired),
                    fmt(med(num(r["p50_ms"]) for r in rs)), fmt(med(num(r["p99_ms"]) for r in rs)),
                    fmt(med(num(r["proxy_cores"]) for r in rs)), fmt(us, 1),
                    fmt(med(num(r["other_cores"]) for r in rs)), errs, per_round))
            else:
                bad = sum(1 for r in rs if r["ok"] != "1")
                print("| %s | %s | %s× | %s× | %s | %s | %s | %d | %s |" % (
                    name, fmt(m, 0), fmt(ratio), fmt(paired),
                    fmt(med(num(r["seconds"]) for r in rs), 3),
                    fmt(med(num(r["proxy_cores"]) for r in rs)),
                    fmt(med(num(r["other_cores"]) for r in rs)), bad, per_round))
        print()
    print("**Ratios:** " + "; ".join(summary) + ".")


if __name__ == "__main__":
    main()

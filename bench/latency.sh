#!/usr/bin/env bash
# Tail latency, open loop: Portcullis, nginx and HAProxy at fixed request rates.
#
# wrk (closed loop) at saturation hides coordinated omission and its p99 is noisy on two
# shared cores. Here bench/openloop.c sends at a fixed rate and times every request from
# when it was due. First nginx's saturation rate is measured with wrk; then, at 50 % and
# 80 % of it, each proxy in turn (order rotated every round) gets BENCH_ROUNDS runs; the
# report gives p50/p99/p99.9 per proxy as the median over rounds with the spread
# (min-max), and the ratio of the medians to nginx's.
#
#   BENCH_PROXIES    proxies                 (default: "nginx haproxy portcullis")
#   BENCH_PATH       what is requested       (default: /small, 100 bytes)
#   BENCH_LOADS      percent of nginx's saturation rate (default: "50 80")
#   BENCH_ROUNDS     runs per proxy and load (default: 5)
#   BENCH_DURATION   seconds per measured run (default: 10; plus 2 s warm-up)
#   BENCH_CONNS      open-loop connections   (default: 64)
#   BENCH_SAT_CONNS  wrk connections for the saturation run (default: 64)
#   BENCH_WORKERS    workers/threads per proxy (default: 2)
#   BENCH_QUIET_WAIT seconds to wait for other load to settle before each run (default: 20)
#   BENCH_OUT        report path             (default: bench/results/latency-<timestamp>.md)
#   PORTCULLIS_BIN   Portcullis binary       (default: <repo>/build/portcullis)
set -euo pipefail

LOG_TAG=latency
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROXIES=${BENCH_PROXIES:-nginx haproxy portcullis}
REQ_PATH=${BENCH_PATH:-/small}
LOADS=${BENCH_LOADS:-50 80}
ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-64}
SAT_CONNS=${BENCH_SAT_CONNS:-64}
WORKERS=${BENCH_WORKERS:-2}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}
THREADS=2
MIB=1048576
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/latency-$STAMP.md}

need_int ROUNDS DURATION CONNS SAT_CONNS WORKERS QUIET_WAIT
need_tools nginx haproxy wrk curl cc python3
for l in $LOADS; do [[ $l =~ ^[0-9]+$ ]] && ((l > 0 && l < 100)) || die "BENCH_LOADS entry '$l' must be a percentage"; done

bench_init latency
# shellcheck source=bench/proxies.sh
source "$BENCH_DIR/proxies.sh"

cc -O2 -std=c11 -Wall -Wextra -o "$TMP/openloop" "$BENCH_DIR/openloop.c" || die "cannot build openloop"
start_upstream
ACTIVE=()
for p in $PROXIES; do
	"start_$p" || die "$p did not start"
	ACTIVE+=("$p")
done

port_of() { local u=${BASE_URL[$1:http]}; echo "${u##*:}"; }

# nginx's saturation rate: wrk, closed loop, SAT_CONNS connections (median of 3)
wait_quiet
rates=()
for r in 1 2 3; do
	run_wrk "${BASE_URL[nginx:http]}$REQ_PATH" "$SAT_CONNS" 5 >"$TMP/sat-$r.txt" 2>&1 || true
	read -r rps _ < <(parse_wrk "$TMP/sat-$r.txt")
	rates+=("$rps")
done
SAT=$(printf '%s\n' "${rates[@]}" | sort -g | sed -n 2p)
log "nginx saturates at $SAT req/s on $REQ_PATH (wrk c$SAT_CONNS; runs: ${rates[*]})"

RAW=$TMP/latency.tsv
printf 'load\trate\tproxy\tround\tdue\tdone\terrors\tp50_us\tp99_us\tp999_us\tmax_us\tother_cores\n' >"$RAW"
n=${#ACTIVE[@]}
for load in $LOADS; do
	rate=$(awk -v s="$SAT" -v l="$load" 'BEGIN{printf "%d", s * l / 100}')
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < n; i++)); do
			p=${ACTIVE[$(((i + r - 1) % n))]}
			wait_quiet
			b0=$(busy_ticks)
			line=$("$TMP/openloop" -p "$(port_of "$p")" -r "$rate" -d "$DURATION" -w 2 -c "$CONNS" -P "$REQ_PATH")
			b1=$(busy_ticks)
			# the whole machine's CPU during the run, in cores: a quiet run uses about
			# what the proxy, the upstream and openloop need; much more means others ran
			other=$(awk -v a="$b0" -v b="$b1" -v h="$CLK_TCK" -v s="$((DURATION + 2))" \
				'BEGIN{printf "%.2f", (b - a) / h / s}')
			read -r _ due _ done _ errs _ _ _ p50 _ _ _ p99 _ p999 _ max <<<"$line"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$load" "$rate" "$p" "$r" \
				"$due" "$done" "$errs" "$p50" "$p99" "$p999" "$max" "$other" >>"$RAW"
			log "$load% ($rate req/s) r$r $p: p50 ${p50} us p99 ${p99} us p99.9 ${p999} us errors $errs"
		done
	done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$RAW" "$SAT" "$REQ_PATH" "$CONNS" "$DURATION" "$ROUNDS" "$WORKERS" >"$OUT" <<'EOF'
import csv, statistics, sys
from collections import OrderedDict
raw, sat, path, conns, dur, rounds, workers = sys.argv[1:]
cells = OrderedDict()
for row in csv.DictReader(open(raw), delimiter="\t"):
    cells.setdefault((row["load"], row["rate"]), OrderedDict()).setdefault(row["proxy"], []).append(row)
out = ["# Tail latency, open loop", "",
       f"- Request: GET {path} through each proxy to one upstream nginx; {conns} keep-alive "
       f"connections; each run {dur} s after 2 s of warm-up; {rounds} rounds per proxy and "
       f"load, proxies in rotated order; {workers} workers per proxy.",
       f"- nginx's saturation rate (wrk, closed loop): {float(sat):,.0f} req/s. Loads are "
       "percentages of it.",
       "- Latency runs from when a request was due (open loop: no coordinated omission). "
       "Cells: median over rounds [min-max], microseconds; ratio = median / nginx's median.",
       "- \"machine\" is the CPU all processes used during the run (cores), median.", ""]
for (load, rate), by_proxy in cells.items():
    out.append(f"## {load} % of saturation: {int(rate):,} req/s")
    out.append("")
    out.append("| proxy | p50 µs | p99 µs | p99 vs nginx | p99.9 µs | p99.9 vs nginx | errors | machine |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    ref = {}
    for key in ("p50_us", "p99_us", "p999_us"):
        rows = by_proxy.get("nginx", [])
        ref[key] = statistics.median(float(r[key]) for r in rows) if rows else None
    for proxy, rows in by_proxy.items():
        def cell(key):
            v = [float(r[key]) for r in rows]
            return statistics.median(v), f"{statistics.median(v):,.0f} [{min(v):,.0f}-{max(v):,.0f}]"
        def vs(key, m):
            return f"{m / ref[key]:.2f}×" if ref.get(key) else "n/a"
        m50, c50 = cell("p50_us")
        m99, c99 = cell("p99_us")
        m999, c999 = cell("p999_us")
        errs = sum(int(r["errors"]) for r in rows)
        mach = statistics.median(float(r["other_cores"]) for r in rows)
        out.append(f"| {proxy} | {c50} | {c99} | {vs('p99_us', m99)} | {c999} | "
                   f"{vs('p999_us', m999)} | {errs} | {mach:.2f} |")
    out.append("")
print("\n".join(out))
EOF
cp "$RAW" "${OUT%.md}.tsv"
cat "$OUT"
log "report written to $OUT"

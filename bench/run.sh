#!/usr/bin/env bash
# Side-by-side reverse-proxy benchmark: Portcullis against nginx, HAProxy and Caddy.
#
# Every proxy forwards to the same fast upstream (a separate nginx instance, 1 worker)
# on loopback; wrk drives each proxy in turn, round-robin within a scenario, and the
# median of BENCH_ROUNDS runs per cell is reported as req/s, p50/p99 latency and the
# ratio to nginx. See bench/README.md for what is measured and the knobs below.
#
#   BENCH_PROXIES     proxies to measure        (default: "direct nginx haproxy caddy portcullis")
#   BENCH_SCENARIOS   scenarios to run          (default: "small post2k get1m")
#   BENCH_CONNS       wrk connection counts     (default: "64 256")
#   BENCH_THREADS     wrk threads               (default: 2)
#   BENCH_DURATION    seconds per measured run  (default: 10)
#   BENCH_WARMUP      seconds of warm-up before each measured run (default: 2; 0 = none)
#   BENCH_ROUNDS      runs per cell, median taken (default: 2)
#   BENCH_WORKERS     workers/threads per proxy (default: 2)
#   BENCH_OUT         report path               (default: bench/results/<timestamp>.md)
#   BENCH_QUIET_WAIT  seconds to wait before each run for other load on the machine to drop
#                     below 0.15 core (default: 20; 0 = do not wait)
#   BENCH_NO_INSTALL  1 = never call apt-get; fail if a tool is missing
#   BENCH_KEEP_TMP    1 = keep the temp dir (configs, logs, raw wrk output)
#   PORTCULLIS_BIN    Portcullis binary         (default: <repo>/build/portcullis)
#   BASELINE_BIN      a second Portcullis binary, measured as proxy "baseline" in the same
#                     rounds (add baseline to BENCH_PROXIES): the report then compares the
#                     two, medians with their spread (min-max over rounds)
#   PORTCULLIS_WAIT   seconds to wait for PORTCULLIS_BIN to appear (default: 0)
#
# Adding a proxy: put its config template in bench/conf/ (@KEY@ placeholders), write
# start_<name> (render + launch + register_proxy) and add <name> to BENCH_PROXIES.
# Adding a scenario: add a line to SCENARIOS below; a scenario whose scheme a proxy did
# not register (e.g. "https") is skipped for that proxy.
set -euo pipefail

READY_TIMEOUT=15          # seconds a server gets to start answering
LOG_TAG=bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROXIES=${BENCH_PROXIES:-direct nginx haproxy caddy portcullis}
SCENARIO_NAMES=${BENCH_SCENARIOS:-small post2k get1m}
CONNS=${BENCH_CONNS:-64 256}
THREADS=${BENCH_THREADS:-2}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-2}
WORKERS=${BENCH_WORKERS:-2}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
PORTCULLIS_WAIT=${PORTCULLIS_WAIT:-0}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/$STAMP.md}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}

# Scenarios: name|scheme|path|wrk lua script ("" = plain GET)|description
SCENARIOS=(
	"small|http|/small||GET /small (100-byte body)"
	"post2k|http|/e/|post2k.lua|POST /e/ with a 2 KiB JSON body"
	"get1m|http|/1m||GET /1m (1 MiB static file)"
)

MIB=1048576

need_int THREADS DURATION WARMUP ROUNDS WORKERS PORTCULLIS_WAIT QUIET_WAIT
((DURATION > 0 && ROUNDS > 0 && THREADS > 0 && WORKERS > 0)) || die "duration, rounds, threads and workers must be > 0"
for c in $CONNS; do [[ $c =~ ^[0-9]+$ ]] && ((c >= THREADS)) || die "BENCH_CONNS entry '$c' must be an integer >= BENCH_THREADS"; done

# ---------------------------------------------------------------------------- processes

# rss_kib PID: summed VmRSS of the process tree (KiB)
rss_kib() {
	local total=0 p v
	for p in $(tree_pids "$1"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# rss_peak_start PID FILE: sample the tree's RSS every 0.1 s into FILE's maximum until
# rss_peak_stop; RSS_SAMPLER is the sampler's PID
rss_peak_start() {
	local pid=$1 file=$2
	(
		peak=0
		while :; do
			v=$(rss_kib "$pid")
			((v > peak)) && peak=$v && echo "$peak" >"$file"
			sleep 0.1
		done
	) &
	RSS_SAMPLER=$!
}

rss_peak_stop() {
	kill "$RSS_SAMPLER" 2>/dev/null || true
	wait "$RSS_SAMPLER" 2>/dev/null || true
}

# rss_after PID FILE: in the background, FILE gets the tree's RSS 10 s from now (the
# proxy is idle by then: the next runs load another proxy)
rss_after() {
	(sleep 10 && rss_kib "$1" >"$2") &
	AFTER_PIDS+=($!)
}
AFTER_PIDS=()

# ---------------------------------------------------------------------------- tools
ensure_tools() {
	local missing=() pkgs=() t
	declare -A pkg_for=([nginx]=nginx-light [haproxy]=haproxy [caddy]=caddy [wrk]=wrk [curl]=curl [python3]=python3 [pgrep]=procps)
	for t in nginx haproxy caddy wrk curl python3 pgrep; do
		command -v "$t" >/dev/null 2>&1 || { missing+=("$t"); pkgs+=("${pkg_for[$t]}"); }
	done
	((${#missing[@]} == 0)) && return 0
	[[ ${BENCH_NO_INSTALL:-0} == 1 ]] && die "missing tools: ${missing[*]} (BENCH_NO_INSTALL=1)"
	[[ $(id -u) == 0 ]] || die "missing tools: ${missing[*]}; run as root or: apt-get install ${pkgs[*]}"
	log "installing ${pkgs[*]}"
	# keep the packages' maintainer scripts from starting system services on :80
	local made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
	fi
	local rc=0
	{ timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${pkgs[@]}"; } >&2 || rc=$?
	((made_policy)) && rm -f /usr/sbin/policy-rc.d
	((rc == 0)) || die "apt-get install ${pkgs[*]} failed (exit $rc)"
	for t in "${missing[@]}"; do command -v "$t" >/dev/null 2>&1 || die "$t still missing after install"; done
}

# shellcheck source=bench/proxies.sh
source "$BENCH_DIR/proxies.sh"

# ---------------------------------------------------------------------------- load
make_lua() {
	# a PostHog-like capture event padded to exactly 2048 bytes
	python3 - "$TMP/post2k.json" <<'EOF'
import json, sys
ev = {"api_key": "phc_benchmark", "event": "$pageview", "distinct_id": "bench-user-1",
      "properties": {"$current_url": "http://localhost/bench", "$lib": "web", "pad": ""}}
base = len(json.dumps(ev, separators=(",", ":")))
ev["properties"]["pad"] = "x" * (2048 - base)
s = json.dumps(ev, separators=(",", ":"))
assert len(s) == 2048, len(s)
open(sys.argv[1], "w").write(s)
EOF
	{
		echo 'wrk.method = "POST"'
		echo "wrk.body = [==[$(cat "$TMP/post2k.json")]==]"
		echo 'wrk.headers["Content-Type"] = "application/json"'
	} >"$TMP/post2k.lua"
}

# scenario_wrk SCENARIO-LUA URL CONNS SECONDS: run_wrk with the scenario's Lua script
scenario_wrk() {
	local lua=$1
	shift
	run_wrk "$@" ${lua:+-s "$TMP/$lua"}
}

# ---------------------------------------------------------------------------- main
ensure_tools
if ((PORTCULLIS_WAIT > 0)) && [[ " $PROXIES " == *" portcullis "* ]]; then
	deadline=$((SECONDS + PORTCULLIS_WAIT))
	until [[ -x $PORTCULLIS_BIN ]] || ((SECONDS >= deadline)); do sleep 5; done
fi
for p in $PROXIES; do
	declare -F "start_$p" >/dev/null || die "unknown proxy '$p' (no start_$p in $0)"
done
declare -A SCEN=()
for s in "${SCENARIOS[@]}"; do SCEN[${s%%|*}]=$s; done
for s in $SCENARIO_NAMES; do [[ -n ${SCEN[$s]:-} ]] || die "unknown scenario '$s'"; done

bench_init bench
mkdir -p "$(dirname "$OUT")"
RAW=$TMP/raw.tsv
MEMLIST=$TMP/memlist.tsv
: >"$MEMLIST"
printf 'scenario\tconns\tproxy\tround\trps\tp50_ms\tp99_ms\tnon2xx\tsockerr\tproxy_cpu_s\tupstream_cpu_s\twrk_cpu_s\tother_cpu_s\twindow_s\tidle_load_before\n' >"$RAW"

make_lua
log "upstream: nginx, 1 worker"
start_upstream
log "upstream on 127.0.0.1:$UP_PORT"

declare -A RSS_START=() RSS_END=() STATUS=()
ACTIVE=()
for p in $PROXIES; do
	if "start_$p" && check_proxy "$p"; then
		ACTIVE+=("$p")
		STATUS[$p]=ok
		sleep 0.5
		RSS_START[$p]=$(rss_kib "${PROXY_PID[$p]}")
		log "$p ready at ${BASE_URL[$p:http]} (pid ${PROXY_PID[$p]}, RSS ${RSS_START[$p]} KiB)"
	else
		STATUS[$p]="failed to start or answer correctly"
		log "$p: ${STATUS[$p]}; it is left out"
	fi
done
((${#ACTIVE[@]} > 0)) || die "no proxy started"

n_runs=0
for s in $SCENARIO_NAMES; do for c in $CONNS; do n_runs=$((n_runs + ROUNDS * ${#ACTIVE[@]})); done; done
log "$n_runs measured runs of ${DURATION}s (+${WARMUP}s warm-up each): about $((n_runs * (DURATION + WARMUP + 1) / 60 + 1)) min"

for s in $SCENARIO_NAMES; do
	IFS='|' read -r name scheme path lua _desc <<<"${SCEN[$s]}"
	for c in $CONNS; do
		for ((r = 1; r <= ROUNDS; r++)); do
			# rotate the order every round so no proxy always runs first or last
			n=${#ACTIVE[@]}
			for ((i = 0; i < n; i++)); do
				p=${ACTIVE[$(((i + r - 1) % n))]}
				[[ ${STATUS[$p]} == ok ]] || continue
				base=${BASE_URL[$p:$scheme]:-}
				[[ -n $base ]] || continue
				pid=${PROXY_PID[$p]}
				wait_quiet
				if ((WARMUP > 0)); then scenario_wrk "$lua" "$base$path" "$c" "$WARMUP" >/dev/null 2>&1 || true; fi
				t0=$(cpu_ticks "$pid"); u0=$(cpu_ticks "$UP_PID"); child_ticks; w0=$CHILD_TICKS; b0=$(busy_ticks); e0=$EPOCHREALTIME
				wout=$TMP/wrk-$name-c$c-$p-r$r.txt
				mem=$TMP/mem-$name-c$c-$p-r$r
				[[ $p != direct ]] && rss_peak_start "$pid" "$mem.peak"
				scenario_wrk "$lua" "$base$path" "$c" "$DURATION" >"$wout" 2>&1 || log "$p: wrk exited non-zero (see $wout)"
				e1=$EPOCHREALTIME; b1=$(busy_ticks); child_ticks; w1=$CHILD_TICKS; t1=$(cpu_ticks "$pid"); u1=$(cpu_ticks "$UP_PID")
				if [[ $p != direct ]]; then
					rss_peak_stop
					rss_after "$pid" "$mem.after"
					printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$p" "$r" "$mem" >>"$MEMLIST"
				fi
				if [[ $p != direct ]] && ! kill -0 "$pid" 2>/dev/null; then
					STATUS[$p]="died during $name c=$c round $r"
					log "$p: ${STATUS[$p]}; its log:"; tail -n 20 "$TMP/$p/$p.log" >&2 || true
					continue
				fi
				read -r rps p50 p99 non2xx sockerr < <(parse_wrk "$wout")
				pcpu=$(ticks_s "$t0" "$t1")
				ucpu=$(ticks_s "$u0" "$u1")
				[[ $p == direct ]] && ucpu=$pcpu && u0=0 && u1=0
				wcpu=$(ticks_s "$w0" "$w1")
				# everything else the machine did meanwhile (other users' builds and tests)
				ocpu=$(awk -v b="$((b1 - b0))" -v x="$((t1 - t0 + u1 - u0 + w1 - w0))" -v h="$CLK_TCK" \
					'BEGIN{o = (b - x) / h; printf "%.2f", o < 0 ? 0 : o}')
				win=$(awk -v a="$e0" -v b="$e1" 'BEGIN{printf "%.2f", b - a}')
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$p" "$r" \
					"$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$pcpu" "$ucpu" "$wcpu" "$ocpu" "$win" "$QUIET_LOAD" >>"$RAW"
				log "$name c=$c r=$r $p: $rps req/s p99 ${p99} ms non2xx $non2xx sockerr $sockerr (CPU s: proxy $pcpu wrk $wcpu other $ocpu)"
			done
		done
	done
done

# the last runs' 10-second samples
for a in "${AFTER_PIDS[@]}"; do wait "$a" 2>/dev/null || true; done
MEM=$TMP/mem.tsv
printf 'scenario\tconns\tproxy\tround\tpeak_kib\tafter10_kib\n' >"$MEM"
while IFS=$'\t' read -r name c p r f; do
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$p" "$r" "$(cat "$f.peak" 2>/dev/null)" \
		"$(cat "$f.after" 2>/dev/null)" >>"$MEM"
done <"$MEMLIST"

for p in "${ACTIVE[@]}"; do
	if kill -0 "${PROXY_PID[$p]}" 2>/dev/null; then
		sleep 0.2
		RSS_END[$p]=$(rss_kib "${PROXY_PID[$p]}")
	fi
done

# ---------------------------------------------------------------------------- report
META=$TMP/meta.tsv
{
	printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'cpu\t%s\n' "$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo), $(nproc) cores"
	printf 'mem\t%s\n' "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
	printf 'kernel\t%s\n' "$(uname -sr)"
	printf 'os\t%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
	printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/.*version: //')"
	printf 'haproxy\t%s\n' "$(haproxy -v 2>&1 | head -n1 | awk '{print $3}')"
	printf 'caddy\t%s\n' "$(caddy version 2>&1 | awk '{print $1}')"
	printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -n1 | awk '{print $2}')"
	printf 'portcullis\t%s\n' "${PORTCULLIS_MAIN_DESC:-not run}"
	printf 'baseline\t%s\n' "${BASELINE_DESC:-not run}"
	printf 'params\tduration %ss, warm-up %ss, rounds %s (median), wrk threads %s, connections %s, proxy workers %s\n' \
		"$DURATION" "$WARMUP" "$ROUNDS" "$THREADS" "$CONNS" "$WORKERS"
	for p in $PROXIES; do
		printf 'status\t%s\t%s\n' "$p" "${STATUS[$p]}"
		printf 'rss\t%s\t%s\t%s\n' "$p" "${RSS_START[$p]:-}" "${RSS_END[$p]:-}"
	done
	for s in $SCENARIO_NAMES; do
		IFS='|' read -r name _ _ _ desc <<<"${SCEN[$s]}"
		printf 'scenario\t%s\t%s\n' "$name" "$desc"
	done
} >"$META"

python3 "$BENCH_DIR/report.py" "$RAW" "$META" "$DURATION" "$MEM" >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cp "$MEM" "${OUT%.md}.mem.tsv"
cat "$OUT"
log "report written to $OUT (raw runs: ${OUT%.md}.raw.tsv)"

#!/usr/bin/env bash
# HTTP/2 benchmark: h2load through Portcullis and nginx, side by side in one run.
#
# Both terminate TLS (the same ECDSA P-256 certificate) and speak HTTP/2 to the client,
# HTTP/1.1 keep-alive to the same upstream nginx (bench/conf/upstream-nginx.conf), with
# BENCH_WORKERS workers each: Portcullis with bench/conf/tls-portcullis.json (HTTP/2 is on
# by default on TLS listeners), nginx with bench/conf/h2-nginx.conf (`listen ... ssl http2`).
#
#   load          h2load GET /small for BENCH_DURATION s after BENCH_WARMUP s, for each shape
#                 in BENCH_SHAPES ("CONNSxSTREAMS": 32x10 = 32 connections with 10 concurrent
#                 streams each); BENCH_ROUNDS rounds, the proxies' order rotating every round.
#                 Reported: requests per proxy CPU-second (requests done / utime+stime of the
#                 proxy's process tree from /proc/PID/stat, before and after), and req/s;
#                 median [min-max] over the rounds.
#   idle memory   BENCH_IDLE idle HTTP/2 connections (bench/h2_idle.py: TLS, SETTINGS, one
#                 GET, then silence): RSS of the proxy's process tree with them open minus
#                 before, divided by their number; then the same with HTTP/1.1 over TLS
#                 (one keep-alive GET). Each measurement on freshly started processes.
#
# The report (Markdown) goes to stdout and bench/results/h2-<ts>.md.
#
#   BENCH_PROXIES     default "nginx portcullis"
#   BENCH_SHAPES      default "32x10 1x100"; empty ("") measures idle memory only
#   BENCH_DURATION    seconds per measured run    (default 10)
#   BENCH_WARMUP      seconds of warm-up          (default 2)
#   BENCH_ROUNDS      rounds                      (default 5)
#   BENCH_WORKERS     workers per proxy           (default 2)
#   BENCH_THREADS     h2load threads              (default 2; never more than connections)
#   BENCH_IDLE        idle connections            (default 1000)
#   BENCH_OUT         report path
#   PORTCULLIS_BIN    default <repo>/build/portcullis
set -euo pipefail

READY_TIMEOUT=15
LOG_TAG=h2-bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROXIES=${BENCH_PROXIES:-nginx portcullis}
SHAPES=${BENCH_SHAPES-32x10 1x100}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-5}
WORKERS=${BENCH_WORKERS:-2}
THREADS=${BENCH_THREADS:-2}
IDLE=${BENCH_IDLE:-1000}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/h2-$STAMP.md}

need_int DURATION WARMUP ROUNDS WORKERS THREADS IDLE
((DURATION > 0 && ROUNDS > 0 && WORKERS > 0 && THREADS > 0)) || die "duration, rounds, workers and threads must be > 0"
for s in $SHAPES; do [[ $s =~ ^[0-9]+x[0-9]+$ ]] || die "BENCH_SHAPES entry '$s' is not CONNSxSTREAMS"; done
need_tools nginx h2load curl openssl python3 pgrep

declare -A PORT=() PID=() STATUS=()

# ------------------------------------------------------------------ servers
start_nginx() {
	local d=$TMP/nginx
	mkdir -p "$d/tmp"
	render h2-nginx.conf "$d/nginx.conf" DIR="$d" PORT="$1" UP_PORT="$UP_PORT" WORKERS="$WORKERS" CERT="$CERT" KEY="$KEY"
	launch "$d" nginx nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
}

start_portcullis() {
	local d=$TMP/portcullis
	mkdir -p "$d"
	private_portcullis "$d"
	render tls-portcullis.json "$d/portcullis.json" DIR="$d" PORT="$1" UP_PORT="$UP_PORT" WORKERS="$WORKERS" CERT="$CERT" KEY="$KEY"
	launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
}

# wait_h2 PORT PID LOG: until an HTTP/2 GET /small returns the small body
wait_h2() {
	local port=$1 pid=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || { log "process $pid exited; log:"; tail -n 20 "$logf" >&2 || true; return 1; }
		[[ $(curl -sk --http2 -m 2 "https://127.0.0.1:$port/small" 2>/dev/null || true) == "$SMALL_BODY" ]] && return 0
		sleep 0.1
	done
	log "127.0.0.1:$port did not answer over HTTP/2 within ${READY_TIMEOUT}s"
	return 1
}

# rss_kib PID: summed VmRSS of the process tree (KiB)
rss_kib() {
	local total=0 p v
	for p in $(tree_pids "$1"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# ------------------------------------------------------------------ measures
# stats: "median min max" of the numbers on stdin (NA when none)
stats() {
	sort -g | awk '{a[NR] = $1} END {
		if (NR == 0) { print "NA NA NA"; exit }
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%.0f %.0f %.0f\n", m, a[1], a[NR] }'
}

# h2load_run PORT CONNS STREAMS SECS OUT
h2load_run() {
	local port=$1 c=$2 m=$3 secs=$4 out=$5 t=$THREADS
	((t > c)) && t=$c
	timeout $((secs + 60)) h2load -t "$t" -c "$c" -m "$m" -D "$secs" "https://127.0.0.1:$port/small" >"$out" 2>&1 || true
}

# parse_h2load FILE -> "succeeded failed errored rps"
parse_h2load() {
	awk '/^requests:/ { gsub(",", ""); s = $8; f = $10; e = $12 }
	     /^finished in/ { gsub(",", ""); r = $4 }
	     END { printf "%s %s %s %s\n", (s == "" ? 0 : s), (f == "" ? 0 : f), (e == "" ? 0 : e), (r == "" ? "NA" : r) }' "$1"
}

# ------------------------------------------------------------------ main
bench_init h2bench
mkdir -p "$(dirname "$OUT")"
CERT=$TMP/cert.pem KEY=$TMP/key.pem
openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$KEY" -out "$CERT" >/dev/null 2>&1 ||
	die "cannot make the test certificate"
chmod 644 "$KEY" # nginx workers may run as nobody
start_upstream_nginx upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT"

ACTIVE=()
for p in $PROXIES; do
	declare -F "start_$p" >/dev/null || die "unknown proxy $p"
	PORT[$p]=$(free_port)
	if "start_$p" "${PORT[$p]}" && PID[$p]=$LAUNCHED && wait_h2 "${PORT[$p]}" "$LAUNCHED" "$TMP/$p/$p.log"; then
		ACTIVE+=("$p")
		STATUS[$p]=ok
		log "$p ready on ${PORT[$p]}"
	else
		STATUS[$p]="failed to start"
		log "$p failed to start; left out"
	fi
done
((${#ACTIVE[@]} > 0)) || die "no proxy started"

RAW=$TMP/raw.tsv
: >"$RAW"
# Idle memory first, on fresh processes: after the load both allocators hold freed
# memory that idle connections would reuse, which hides their cost.
declare -A IDLE_RSS=()
for key in "${ACTIVE[@]/%/:h2}" "${ACTIVE[@]/%/:http/1.1}"; do
	p=${key%%:*} proto=${key#*:}
	if [[ $proto != h2 ]]; then
		stop_pid "${PID[$p]}"
		"start_$p" "${PORT[$p]}" && PID[$p]=$LAUNCHED && wait_h2 "${PORT[$p]}" "$LAUNCHED" "$TMP/$p/$p.log" ||
			die "$p did not restart"
	fi
	sleep 2
	before=$(rss_kib "${PID[$p]}")
	f=$TMP/idle-$p-${proto//\//}.txt
	python3 "$BENCH_DIR/h2_idle.py" "${PORT[$p]}" "$IDLE" 20 "$proto" >"$f" 2>&1 &
	holder=$!
	PIDS+=("$holder")
	deadline=$((SECONDS + 120))
	until grep -q '^ready' "$f" 2>/dev/null; do
		kill -0 "$holder" 2>/dev/null || die "h2_idle.py for $p failed: $(cat "$f")"
		((SECONDS < deadline)) || die "h2_idle.py for $p: not ready within 120 s"
		sleep 0.2
	done
	sleep 3
	after=$(rss_kib "${PID[$p]}")
	IDLE_RSS[$key]=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.1f", (a - b) / n}')
	log "$p: RSS $before KiB -> $after KiB with $IDLE idle $proto connections: ${IDLE_RSS[$key]} KiB each"
	kill "$holder" 2>/dev/null || true
	wait "$holder" || true
done

for shape in $SHAPES; do
	c=${shape%x*} m=${shape#*x}
	for ((r = 1; r <= ROUNDS; r++)); do
		n=${#ACTIVE[@]}
		for ((i = 0; i < n; i++)); do
			p=${ACTIVE[$(((i + r - 1) % n))]}
			((WARMUP > 0)) && h2load_run "${PORT[$p]}" "$c" "$m" "$WARMUP" "$TMP/warm-$p.txt"
			t0=$(cpu_ticks "${PID[$p]}")
			out=$TMP/h2load-$shape-$p-r$r.txt
			h2load_run "${PORT[$p]}" "$c" "$m" "$DURATION" "$out"
			t1=$(cpu_ticks "${PID[$p]}")
			kill -0 "${PID[$p]}" 2>/dev/null || { STATUS[$p]="died during $shape round $r"; die "$p died"; }
			read -r ok failed errored rps < <(parse_h2load "$out")
			cpu=$(ticks_s "$t0" "$t1")
			per_cpu=$(awk -v n="$ok" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", n / c; else print "NA"}')
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$shape" "$p" "$r" "$ok" "$failed" "$errored" "$rps" "$per_cpu" >>"$RAW"
			log "$shape r=$r $p: $ok done ($failed failed, $errored errored), $rps req/s, $cpu s CPU: $per_cpu req/CPU-s"
		done
	done
done

{
	echo "# HTTP/2 benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo), $(nproc) cores; $(nginx -v 2>&1 | sed 's/^nginx version: //'); $(h2load --version 2>&1 | head -1)."
	echo "TLS (ECDSA P-256) + HTTP/2 to h2load, HTTP/1.1 keep-alive to one upstream nginx; ${WORKERS} workers per proxy;"
	echo "GET /small (100 bytes), h2load -D ${DURATION} after ${WARMUP} s of warm-up, ${ROUNDS} interleaved rounds: median [min-max]."
	echo "Portcullis: ${PORTCULLIS_DESC:-not run}"
	echo
	[[ -n $SHAPES ]] && echo "| shape | proxy | req per proxy CPU-s | vs nginx | req/s | failed+errored |"
	[[ -n $SHAPES ]] && echo "|---|---|---:|---:|---:|---:|"
	for shape in $SHAPES; do
		read -r nmed _ _ < <(awk -F'\t' -v s="$shape" '$1 == s && $2 == "nginx" && $8 != "NA" {print $8}' "$RAW" | stats)
		for p in $PROXIES; do
			read -r med lo hi < <(awk -F'\t' -v s="$shape" -v p="$p" '$1 == s && $2 == p && $8 != "NA" {print $8}' "$RAW" | stats)
			read -r rmed rlo rhi < <(awk -F'\t' -v s="$shape" -v p="$p" '$1 == s && $2 == p && $7 != "NA" {print $7}' "$RAW" | stats)
			bad=$(awk -F'\t' -v s="$shape" -v p="$p" '$1 == s && $2 == p {n += $5 + $6} END {print n + 0}' "$RAW")
			ratio=$(awk -v a="$med" -v b="$nmed" 'BEGIN {if (a == "NA" || b == "NA" || b == 0) print "-"; else printf "%.2f", a / b}')
			printf '| %s | %s | %s [%s-%s] | %s | %s [%s-%s] | %s |\n' "${shape/x/ conns x } streams" "$p" "$med" "$lo" "$hi" "$ratio" "$rmed" "$rlo" "$rhi" "$bad"
		done
	done
	echo
	echo "Idle connections (${IDLE}; HTTP/2: TLS, SETTINGS and one GET; HTTP/1.1: TLS and one keep-alive GET): RSS per connection"
	echo
	echo "| proxy | KiB per idle HTTP/2 connection | KiB per idle HTTP/1.1 TLS connection | status |"
	echo "|---|---:|---:|---|"
	for p in $PROXIES; do
		printf '| %s | %s | %s | %s |\n' "$p" "${IDLE_RSS[$p:h2]:-NA}" "${IDLE_RSS[$p:http/1.1]:-NA}" "${STATUS[$p]}"
	done
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"
log "report written to $OUT"

#!/usr/bin/env bash
# TCP relay throughput (issue 5): a 1 GiB transfer through a Portcullis "type": "tcp"
# listener against HAProxy in `mode tcp`, both in front of the same TCP source/sink
# (bench/relay_ends.py) on loopback; "direct" (the client straight to the source) is the
# ceiling. Target: Portcullis >= 0.9x HAProxy.
#
# Directions: "get" (the server streams BENCH_BYTES to the client, i.e. a download) and
# "put" (the client uploads BENCH_BYTES, the server answers with the count). Each round
# runs every configuration once, in an order rotated every round; medians are reported.
#
#   BENCH_BYTES       bytes per transfer       (default 1073741824 = 1 GiB)
#   BENCH_DIRECTIONS  "get put"                (default "get put")
#   BENCH_ROUNDS      transfers per cell       (default 5)
#   BENCH_WORKERS     Portcullis workers / HAProxy threads (default 2)
#   BENCH_CONFIGS     default "direct haproxy portcullis"
#   BENCH_QUIET_WAIT  seconds to wait for other load to drop before each run (default 10)
#   BENCH_OUT         report path              (default bench/results/relay-<ts>.md)
#   BENCH_KEEP_TMP    1 = keep the temp dir
#   PORTCULLIS_BIN    default <repo>/build/portcullis
set -euo pipefail
LOG_TAG=relay-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BYTES=${BENCH_BYTES:-1073741824}
DIRECTIONS=${BENCH_DIRECTIONS:-get put}
ROUNDS=${BENCH_ROUNDS:-5}
WORKERS=${BENCH_WORKERS:-2}
CONFIGS=${BENCH_CONFIGS:-direct haproxy portcullis}
QUIET_WAIT=${BENCH_QUIET_WAIT:-10}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/relay-$STAMP.md}
need_int BYTES ROUNDS WORKERS QUIET_WAIT
((BYTES > 0 && ROUNDS > 0 && WORKERS > 0)) || die "bytes, rounds and workers must be > 0"
for d in $DIRECTIONS; do [[ $d == get || $d == put ]] || die "BENCH_DIRECTIONS: unknown direction '$d'"; done
need_tools haproxy curl python3 pgrep

bench_init relay-bench

# ------------------------------------------------------------------ servers
d=$TMP/source
mkdir -p "$d"
launch "$d" source python3 "$BENCH_DIR/relay_ends.py" serve "$d/port"
UP_PID=$LAUNCHED
for ((i = 0; i < 100; i++)); do [[ -s $d/port ]] && break; sleep 0.1; done
[[ -s $d/port ]] || die "the source did not start: $(cat "$d/source.log")"
SRC_PORT=$(<"$d/port")
log "source/sink on 127.0.0.1:$SRC_PORT (pid $UP_PID)"

declare -A PORT=() PID=()
PORT[direct]=$SRC_PORT
PID[direct]=$UP_PID

start_haproxy() {
	local d=$TMP/haproxy port
	mkdir -p "$d"
	port=$(free_port)
	render relay-haproxy.cfg "$d/haproxy.cfg" PORT="$port" SRC_PORT="$SRC_PORT" WORKERS="$WORKERS"
	haproxy -c -q -f "$d/haproxy.cfg" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "haproxy: config refused"; }
	launch "$d" haproxy haproxy -db -f "$d/haproxy.cfg"
	wait_tcp "$port" "$LAUNCHED" "$d/haproxy.log" || die "haproxy did not start"
	PORT[haproxy]=$port
	PID[haproxy]=$LAUNCHED
}

start_portcullis() {
	local d=$TMP/portcullis port hport
	mkdir -p "$d"
	port=$(free_port)
	hport=$(free_port)
	render relay-portcullis.json "$d/portcullis.json" PORT="$port" HTTP_PORT="$hport" \
		SRC_PORT="$SRC_PORT" WORKERS="$WORKERS"
	private_portcullis "$d"
	(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "portcullis: config refused"; }
	launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
	wait_http "http://127.0.0.1:$hport/" "$LAUNCHED" "$d/portcullis.log" || die "portcullis did not start"
	wait_tcp "$port" "$LAUNCHED" "$d/portcullis.log" || die "portcullis relay listener did not start"
	PORT[portcullis]=$port
	PID[portcullis]=$LAUNCHED
}

ACTIVE=()
for c in $CONFIGS; do
	case $c in
	direct) ;;
	haproxy) start_haproxy ;;
	portcullis) start_portcullis ;;
	*) die "unknown configuration '$c'" ;;
	esac
	ACTIVE+=("$c")
	log "$c: 127.0.0.1:${PORT[$c]} (pid ${PID[$c]})"
done

# each end-to-end path moves 1 MiB both ways correctly before the measured runs
for c in "${ACTIVE[@]}"; do
	for dir in get put; do
		python3 "$BENCH_DIR/relay_ends.py" "$dir" "${PORT[$c]}" 1048576 >/dev/null || die "$c: a 1 MiB $dir failed"
	done
done
log "checks passed: 1 MiB each way through ${ACTIVE[*]}"

# ------------------------------------------------------------------ runs
RAW=$TMP/raw.tsv
printf 'cell\tconfig\tround\tseconds\tmib_s\tproxy_cores\tother_cores\tok\n' >"$RAW"
n=${#ACTIVE[@]}
MIB_TOTAL=$(awk -v b="$BYTES" 'BEGIN{printf "%g", b / 1048576}')
for dir in $DIRECTIONS; do
	cell="$dir $MIB_TOTAL MiB"
	[[ $dir == get ]] && cell="download (server to client) $MIB_TOTAL MiB" || cell="upload (client to server) $MIB_TOTAL MiB"
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < n; i++)); do
			c=${ACTIVE[$(((i + r - 1) % n))]}
			pid=${PID[$c]}
			wait_quiet
			t0=$(cpu_ticks "$pid"); u0=$(cpu_ticks "$UP_PID"); k0=$(softirq_ticks); child_ticks; w0=$CHILD_TICKS; b0=$(busy_ticks); e0=$EPOCHREALTIME
			ok=1
			res=$(timeout 300 python3 "$BENCH_DIR/relay_ends.py" "$dir" "${PORT[$c]}" "$BYTES") || ok=0
			e1=$EPOCHREALTIME; b1=$(busy_ticks); child_ticks; w1=$CHILD_TICKS; t1=$(cpu_ticks "$pid"); u1=$(cpu_ticks "$UP_PID"); k1=$(softirq_ticks)
			kill -0 "$pid" 2>/dev/null || die "$c (pid $pid) died during $dir round $r"
			read -r moved secs <<<"${res:-0 0}"
			win=$(awk -v a="$e0" -v b="$e1" 'BEGIN{printf "%.3f", b - a}')
			if [[ $c == direct ]]; then pcpu=0; x=$((u1 - u0 + w1 - w0 + k1 - k0)); else pcpu=$((t1 - t0)); x=$((t1 - t0 + u1 - u0 + w1 - w0 + k1 - k0)); fi
			pcores=$(awk -v t="$pcpu" -v h="$CLK_TCK" -v w="$win" 'BEGIN{printf "%.2f", t / h / w}')
			ocores=$(awk -v b="$((b1 - b0))" -v x="$x" -v h="$CLK_TCK" -v w="$win" 'BEGIN{o = (b - x) / h / w; printf "%.2f", o < 0 ? 0 : o}')
			mibs=$(awk -v m="$moved" -v s="$secs" 'BEGIN{printf "%.1f", (s > 0) ? m / 1048576 / s : 0}')
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cell" "$c" "$r" "$secs" "$mibs" "$pcores" "$ocores" "$ok" >>"$RAW"
			log "$dir r=$r $c: $moved bytes in $secs s = $mibs MiB/s (proxy $pcores cores, other $ocores)$( ((ok)) || echo ' FAILED')"
		done
	done
done

mkdir -p "$(dirname "$OUT")"
{
	echo "### TCP relay: $MIB_TOTAL MiB through Portcullis vs HAProxy mode tcp ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Portcullis: ${PORTCULLIS_DESC:-not run}; HAProxy $(haproxy -v 2>&1 | head -n1 | awk '{print $3}'); $ROUNDS rounds, $WORKERS workers/threads."
	echo
	python3 "$BENCH_DIR/pairs_report.py" "$RAW" haproxy direct="direct (no proxy)" haproxy=HAProxy portcullis=Portcullis
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"
log "report written to $OUT"

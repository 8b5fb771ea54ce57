#!/usr/bin/env bash
# WebSocket echo round trips (issue 13): BENCH_CONNS connections through Portcullis and
# through nginx (proxy_http_version 1.1 with the Upgrade headers), both in front of the
# same echo server on loopback ("direct": no proxy, the ceiling). Each connection sends a
# 32-byte message and waits for its echo, again and again. Rounds rotate the order;
# medians reported. Client and echo server are bench/ws_echo.py (asyncio, one process
# each): on a small machine they, not the proxy, may set the pace; the proxy CPU columns
# (seconds per run, microseconds per round trip) say what each proxy spent.
#
#   BENCH_CONNS    connections             (default 64)
#   BENCH_SECONDS  seconds per run         (default 5)
#   BENCH_ROUNDS   runs per proxy          (default 3)
#   BENCH_WORKERS  Portcullis workers / nginx worker processes (default 2)
#   BENCH_OUT      report path             (default bench/results/websocket-<ts>.md)
#   BENCH_KEEP_TMP 1 = keep the temp dir
#   PORTCULLIS_BIN default <repo>/build/portcullis
set -euo pipefail
LOG_TAG=ws-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS=${BENCH_CONNS:-64}
SECONDS_RUN=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WORKERS=${BENCH_WORKERS:-2}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/websocket-$STAMP.md}
need_int CONNS SECONDS_RUN ROUNDS WORKERS
need_tools nginx curl python3

bench_init ws-bench

d=$TMP/echo
mkdir -p "$d"
launch "$d" echo python3 "$BENCH_DIR/ws_echo.py" serve "$d/port"
UP_PID=$LAUNCHED
for ((i = 0; i < 100; i++)); do [[ -s $d/port ]] && break; sleep 0.1; done
[[ -s $d/port ]] || die "the echo server did not start: $(cat "$d/echo.log")"
UP_PORT=$(<"$d/port")
log "echo server on 127.0.0.1:$UP_PORT (pid $UP_PID)"

declare -A PORT=() PID=()
PORT[direct]=$UP_PORT   # the ceiling: the client straight to the echo server
PID[direct]=$UP_PID
d=$TMP/nginx
mkdir -p "$d/tmp"
PORT[nginx]=$(free_port)
render ws-nginx.conf "$d/nginx.conf" DIR="$d" PORT="${PORT[nginx]}" UP_PORT="$UP_PORT" WORKERS="$WORKERS"
launch "$d" nginx nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
PID[nginx]=$LAUNCHED
wait_http "http://127.0.0.1:${PORT[nginx]}/health" "$LAUNCHED" "$d/nginx.log" || die "nginx did not start"

d=$TMP/portcullis
mkdir -p "$d"
PORT[portcullis]=$(free_port)
render ws-portcullis.json "$d/portcullis.json" PORT="${PORT[portcullis]}" UP_PORT="$UP_PORT" WORKERS="$WORKERS"
private_portcullis "$d"
(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "portcullis: config refused"; }
launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
PID[portcullis]=$LAUNCHED
wait_http "http://127.0.0.1:${PORT[portcullis]}/health" "$LAUNCHED" "$d/portcullis.log" || die "portcullis did not start"

RAW=$TMP/raw.tsv
printf 'proxy\tround\troundtrips\tseconds\trt_per_s\tproxy_cpu_s\terrors\n' >"$RAW"
ORDER=(portcullis nginx direct)
for ((r = 1; r <= ROUNDS; r++)); do
	for ((i = 0; i < 3; i++)); do
		p=${ORDER[$(((i + r) % 3))]}
		t0=$(cpu_ticks "${PID[$p]}")
		read -r rts secs errs < <(python3 "$BENCH_DIR/ws_echo.py" load "ws://127.0.0.1:${PORT[$p]}/ws" "$CONNS" "$SECONDS_RUN")
		t1=$(cpu_ticks "${PID[$p]}")
		rate=$(awk -v n="$rts" -v s="$secs" 'BEGIN{printf "%.0f", (s > 0) ? n / s : 0}')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$r" "$rts" "$secs" "$rate" "$(ticks_s "$t0" "$t1")" "$errs" >>"$RAW"
		log "round $r $p: $rate round trips/s ($rts in $secs s, proxy CPU $(ticks_s "$t0" "$t1") s, $errs errors)"
	done
done

mkdir -p "$(dirname "$OUT")"
{
	echo "### WebSocket echo: $CONNS connections, 32-byte messages ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Portcullis: $PORTCULLIS_DESC; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'); $ROUNDS rounds of ${SECONDS_RUN} s, $WORKERS workers each."
	echo
	echo "\"direct\": the client straight to the echo server (its CPU column: the echo server's)."
	echo
	echo "| proxy | round trips/s (median) | per round | proxy CPU s per round (median) | proxy CPU µs per round trip (median) |"
	echo "|---|---|---|---|---|"
	python3 - "$RAW" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for p in ("portcullis", "nginx", "direct"):
    mine = [r for r in rows if r["proxy"] == p]
    rates = [int(r["rt_per_s"]) for r in mine]
    cpu = [float(r["proxy_cpu_s"]) for r in mine]
    per = [float(r["proxy_cpu_s"]) * 1e6 / max(int(r["roundtrips"]), 1) for r in mine]
    print("| %s | %d | %s | %.2f | %.1f |" % (p, statistics.median(rates),
                                              ", ".join(map(str, rates)),
                                              statistics.median(cpu), statistics.median(per)))
PY
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"

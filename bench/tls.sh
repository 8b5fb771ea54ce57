#!/usr/bin/env bash
# TLS benchmark: Portcullis terminating HTTPS side by side with nginx, HAProxy and Caddy.
#
# Every proxy terminates TLS with the same ECDSA P-256 certificate (TLS 1.2 and 1.3
# allowed; clients negotiate TLS 1.3, X25519) and forwards to the same upstream nginx
# (bench/conf/upstream-nginx.conf, as in bench/run.sh). Two measures per proxy:
#
#   keep-alive   wrk -t THREADS -c CONNS over https, GET /small: requests/s on
#                long-lived TLS connections (record encryption + proxying)
#   handshakes   HS_CLIENTS parallel `openssl s_time -new` (a full handshake for every
#                connection, never a resumed session, one GET /small each):
#                new connections/s summed over the clients
#
# The report (Markdown, ratios to nginx) goes to stdout and bench/results/tls-<ts>.md.
#
#   BENCH_PROXIES     default "nginx haproxy caddy portcullis"
#   BENCH_CONNS       wrk connections             (default 64)
#   BENCH_THREADS     wrk threads                 (default 2)
#   BENCH_DURATION    seconds per measured run    (default 10)
#   BENCH_WARMUP      seconds of warm-up          (default 2)
#   BENCH_ROUNDS      runs per cell, median       (default 2)
#   BENCH_WORKERS     workers/threads per proxy   (default 2)
#   BENCH_HS_CLIENTS  parallel s_time processes   (default 4)
#   BENCH_OUT         report path
#   PORTCULLIS_BIN    default <repo>/build/portcullis
set -euo pipefail

READY_TIMEOUT=15
LOG_TAG=tls-bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROXIES=${BENCH_PROXIES:-nginx haproxy caddy portcullis}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-2}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-2}
WORKERS=${BENCH_WORKERS:-2}
HS_CLIENTS=${BENCH_HS_CLIENTS:-4}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/tls-$STAMP.md}

need_int CONNS THREADS DURATION WARMUP ROUNDS WORKERS HS_CLIENTS
((DURATION > 0 && ROUNDS > 0 && THREADS > 0 && WORKERS > 0 && HS_CLIENTS > 0 && CONNS >= THREADS)) ||
	die "duration, rounds, threads, workers and clients must be > 0, connections >= threads"
for t in nginx haproxy caddy wrk curl openssl python3; do
	command -v "$t" >/dev/null 2>&1 || die "missing $t (apt-get install nginx-light haproxy caddy wrk curl openssl python3)"
done

# ------------------------------------------------------------------ processes
declare -A PORT=() PID=() STATUS=()

# wait_body URL PID LOG: until URL returns the small body (curl -k), the process dies or time is up
wait_body() {
	local url=$1 pid=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || { log "process $pid exited; log:"; tail -n 20 "$logf" >&2 || true; return 1; }
		[[ $(curl -sk -m 2 "$url" 2>/dev/null || true) == "$SMALL_BODY" ]] && return 0
		sleep 0.1
	done
	log "$url did not answer within ${READY_TIMEOUT}s; log:"; tail -n 20 "$logf" >&2 || true
	return 1
}

# ------------------------------------------------------------------ servers
start_nginx() {
	local d=$TMP/nginx
	mkdir -p "$d/tmp"
	render tls-nginx.conf "$d/nginx.conf" DIR="$d" PORT="$1" UP_PORT="$UP_PORT" WORKERS="$WORKERS" CERT="$CERT" KEY="$KEY"
	launch "$d" nginx nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
}

start_haproxy() {
	local d=$TMP/haproxy
	mkdir -p "$d"
	render tls-haproxy.cfg "$d/haproxy.cfg" PORT="$1" UP_PORT="$UP_PORT" WORKERS="$WORKERS" PEM="$PEM"
	haproxy -c -q -f "$d/haproxy.cfg" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; return 1; }
	launch "$d" haproxy haproxy -db -f "$d/haproxy.cfg"
}

start_caddy() {
	local d=$TMP/caddy
	mkdir -p "$d/home"
	render tls-Caddyfile "$d/Caddyfile" PORT="$1" UP_PORT="$UP_PORT" CERT="$CERT" KEY="$KEY"
	launch "$d" caddy env GOMAXPROCS="$WORKERS" HOME="$d/home" XDG_DATA_HOME="$d/home/data" \
		XDG_CONFIG_HOME="$d/home/config" caddy run --config "$d/Caddyfile" --adapter caddyfile
}

start_portcullis() {
	local d=$TMP/portcullis
	mkdir -p "$d"
	[[ -x $PORTCULLIS_BIN ]] || { log "no Portcullis binary at $PORTCULLIS_BIN"; return 1; }
	private_portcullis "$d"
	render tls-portcullis.json "$d/portcullis.json" DIR="$d" PORT="$1" UP_PORT="$UP_PORT" WORKERS="$WORKERS" CERT="$CERT" KEY="$KEY"
	launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
}

# ------------------------------------------------------------------ measures
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "NA"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

keepalive_rps() {
	local url=$1 out=$2
	((WARMUP > 0)) && { timeout $((WARMUP + 30)) wrk -t "$THREADS" -c "$CONNS" -d "${WARMUP}s" "$url" >/dev/null 2>&1 || true; }
	timeout $((DURATION + 30)) wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --timeout 5s "$url" >"$out" 2>&1 || true
	awk '/^Requests\/sec:/ {r = $2} /Socket errors:/ {e = 1} /Non-2xx/ {e = 1} END {print (r == "" ? "NA" : r) (e ? "*" : "")}' "$out"
}

# full handshakes/s: HS_CLIENTS parallel `openssl s_time -new`, connections summed
handshakes_per_s() {
	local port=$1 dir=$2 i total=0 n clients=()
	for ((i = 0; i < HS_CLIENTS; i++)); do
		timeout $((DURATION + 30)) openssl s_time -connect "127.0.0.1:$port" -new -time "$DURATION" \
			-www /small >"$dir/stime-$i.txt" 2>&1 &
		clients+=("$!")
	done
	for i in "${clients[@]}"; do wait "$i" || true; done
	for ((i = 0; i < HS_CLIENTS; i++)); do
		# "N connections in T real seconds, ..." (-new: every one a full handshake)
		n=$(awk '/connections in [0-9]+ real seconds/ {print $1; exit}' "$dir/stime-$i.txt")
		total=$((total + ${n:-0}))
	done
	awk -v n="$total" -v d="$DURATION" 'BEGIN {printf "%.0f\n", n / d}'
}

# ------------------------------------------------------------------ main
bench_init tlsbench
mkdir -p "$(dirname "$OUT")"
CERT=$TMP/cert.pem KEY=$TMP/key.pem PEM=$TMP/haproxy.pem
openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$KEY" -out "$CERT" >/dev/null 2>&1 ||
	die "cannot make the test certificate"
chmod 644 "$KEY" # nginx workers may run as nobody
cat "$CERT" "$KEY" >"$PEM"
start_upstream_nginx upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT; certificate ECDSA P-256"

ACTIVE=()
for p in $PROXIES; do
	declare -F "start_$p" >/dev/null || die "unknown proxy $p"
	PORT[$p]=$(free_port)
	if "start_$p" "${PORT[$p]}" && PID[$p]=$LAUNCHED && wait_body "https://127.0.0.1:${PORT[$p]}/small" "$LAUNCHED" "$TMP/$p/$p.log"; then
		proto=$(openssl s_client -connect "127.0.0.1:${PORT[$p]}" -servername localhost </dev/null 2>/dev/null |
			awk '/^New, / {print $2, $5} /Peer signature type/ {print $4}' | tr '\n' ' ')
		log "$p ready on ${PORT[$p]} ($proto)"
		ACTIVE+=("$p")
		STATUS[$p]="ok ($proto)"
	else
		STATUS[$p]="failed to start"
		log "$p failed to start; left out"
	fi
done
((${#ACTIVE[@]} > 0)) || die "no proxy started"

declare -A KA=() HS=()
for ((r = 1; r <= ROUNDS; r++)); do
	n=${#ACTIVE[@]}
	for ((i = 0; i < n; i++)); do
		p=${ACTIVE[$(((i + r - 1) % n))]}
		ka=$(keepalive_rps "https://127.0.0.1:${PORT[$p]}/small" "$TMP/wrk-$p-$r.txt")
		hs=$(handshakes_per_s "${PORT[$p]}" "$TMP/$p")
		kill -0 "${PID[$p]}" 2>/dev/null || STATUS[$p]="died during round $r"
		log "round $r $p: keep-alive ${ka} req/s, new handshakes ${hs}/s"
		KA[$p]+="${ka%\*} "
		HS[$p]+="$hs "
	done
done

{
	echo "# TLS benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo), $(nproc) cores; $(openssl version)."
	echo "ECDSA P-256 certificate; ${WORKERS} workers per proxy; keep-alive: wrk -t${THREADS} -c${CONNS} ${DURATION}s GET /small;"
	echo "handshakes: ${HS_CLIENTS} x openssl s_time -new ${DURATION}s (full handshake + one GET each). Median of ${ROUNDS} rounds."
	echo "Portcullis: ${PORTCULLIS_DESC:-not run}"
	echo
	echo "| proxy | keep-alive req/s | vs nginx | new handshakes/s | vs nginx | status |"
	echo "|---|---:|---:|---:|---:|---|"
	nka=$(tr ' ' '\n' <<<"${KA[nginx]:-}" | grep -v '^$' | grep -v NA | median)
	nhs=$(tr ' ' '\n' <<<"${HS[nginx]:-}" | grep -v '^$' | median)
	for p in $PROXIES; do
		ka=$(tr ' ' '\n' <<<"${KA[$p]:-}" | grep -v '^$' | grep -v NA | median)
		hs=$(tr ' ' '\n' <<<"${HS[$p]:-}" | grep -v '^$' | median)
		rka=$(awk -v a="$ka" -v b="$nka" 'BEGIN {if (a == "NA" || b == "NA" || b == 0) print "-"; else printf "%.2f", a / b}')
		rhs=$(awk -v a="$hs" -v b="$nhs" 'BEGIN {if (a == "NA" || b == "NA" || b == 0) print "-"; else printf "%.2f", a / b}')
		printf '| %s | %s | %s | %s | %s | %s |\n' "$p" "$ka" "$rka" "$hs" "$rhs" "${STATUS[$p]}"
	done
} >"$OUT"
cat "$OUT"
log "report written to $OUT"

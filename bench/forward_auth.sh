#!/usr/bin/env bash
# The verify endpoint (issue 17, docs/forward-auth.md) called by nginx auth_request, beside
# Portcullis' own gate on the same route, in the same run: GET /small with a valid sealed
# session cookie
#   gate    wrk -> Portcullis (route "auth": "saml") -> upstream nginx
#   verify  wrk -> front nginx --auth_request--> Portcullis /_portcullis/verify (same route,
#           same cookie), then front nginx -> upstream nginx with the identity headers
#   front   wrk -> front nginx -> upstream nginx, no auth_request (what the front costs alone)
# One Portcullis process serves both the gate and the verify endpoint. The proxy_cores
# column is Portcullis' CPU only; the front nginx counts in other_cores.
#
#   BENCH_CONNS       wrk connection counts   (default "64")
#   BENCH_THREADS     wrk threads             (default 2)
#   BENCH_DURATION    seconds per run         (default 10; DURATION + WARMUP + QUIET_WAIT < 55)
#   BENCH_WARMUP      warm-up seconds per run (default 2)
#   BENCH_ROUNDS      rounds, median taken    (default 3)
#   BENCH_WORKERS     Portcullis workers and front nginx workers (default 2)
#   BENCH_QUIET_WAIT  seconds to wait for other load to drop before each run (default 10)
#   BENCH_OUT         report path             (default bench/results/forward_auth-<ts>.md)
#   BENCH_KEEP_TMP    1 = keep the temp dir
#   PORTCULLIS_BIN    default <repo>/build/portcullis
set -euo pipefail
LOG_TAG=forward-auth-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-2}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
WORKERS=${BENCH_WORKERS:-2}
QUIET_WAIT=${BENCH_QUIET_WAIT:-10}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/forward_auth-$STAMP.md}
need_int THREADS DURATION WARMUP ROUNDS WORKERS QUIET_WAIT
((DURATION > 0 && ROUNDS > 0 && THREADS > 0 && WORKERS > 0)) || die "duration, rounds, threads and workers must be > 0"
((DURATION + WARMUP + QUIET_WAIT + 5 < 60)) || die "duration + warm-up + quiet wait must stay under 55 s (the session cookie is re-issued after a minute)"
for c in $CONNS; do [[ $c =~ ^[0-9]+$ ]] && ((c >= THREADS)) || die "BENCH_CONNS entry '$c' must be an integer >= BENCH_THREADS"; done
need_tools nginx wrk curl python3 openssl pgrep
python3 -c 'import cryptography' 2>/dev/null || die "python3 cryptography missing (apt-get install python3-cryptography)"
nginx -V 2>&1 | grep -q -- --with-http_auth_request_module || die "this nginx has no auth_request module"

bench_init forward-auth-bench

# ------------------------------------------------------------------ servers
start_upstream_nginx echo-upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT"

d=$TMP/portcullis
mkdir -p "$d"
python3 "$BENCH_DIR/saml_cookie.py" setup "$d" || die "could not write the SAML inputs"
PORT=$(free_port)
render forward-auth-portcullis.json "$d/portcullis.json" PORT="$PORT" UP_PORT="$UP_PORT" WORKERS="$WORKERS" DIR="$d"
private_portcullis "$d"
(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "config refused"; }
launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
PC_PID=$LAUNCHED
wait_tcp "$PORT" "$PC_PID" "$d/portcullis.log" || die "portcullis did not start"
log "portcullis on 127.0.0.1:$PORT (pid $PC_PID)"

f=$TMP/front
mkdir -p "$f/tmp"
FRONT_PORT=$(free_port)
render forward-auth-nginx.conf "$f/nginx.conf" DIR="$f" PORT="$FRONT_PORT" PORTCULLIS_PORT="$PORT" UP_PORT="$UP_PORT" WORKERS="$WORKERS"
launch "$f" front nginx -p "$f" -e "$f/error.log" -c "$f/nginx.conf" -g 'daemon off;'
FRONT_PID=$LAUNCHED
wait_http "http://127.0.0.1:$FRONT_PORT/small" "$FRONT_PID" "$f/front.log" -H 'Host: open.test' || die "front nginx did not start"
log "front nginx on 127.0.0.1:$FRONT_PORT (pid $FRONT_PID)"

URL_gate=http://127.0.0.1:$PORT/small
URL_verify=http://127.0.0.1:$FRONT_PORT/small
URL_front=$URL_verify
PID_gate=$PC_PID
PID_verify=$PC_PID
PID_front=$PC_PID
WRKARGS_gate=()
WRKARGS_verify=()
WRKARGS_front=(-H 'Host: open.test')
HOOK_gate() { session_cookie "$d" auth.test; WRKARGS_gate=("${COOKIE_ARGS[@]}"); }
HOOK_verify() { session_cookie "$d" auth.test; WRKARGS_verify=("${COOKIE_ARGS[@]}"); }

# ------------------------------------------------------------------ checks
HOOK_verify
for url in "$URL_gate" "$URL_verify"; do
	body=$(curl -s -m 5 "${COOKIE_ARGS[@]}" "$url") || die "$url: request failed"
	[[ $body == "$SMALL_BODY" ]] || die "$url with the cookie returned '${body:0:80}'"
	[[ $(curl -s -m 5 "${COOKIE_ARGS[@]}" "${url%/small}/whoami") == email=alice@example.com ]] ||
		die "$url: X-Auth-Email not sent upstream"
	code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'Host: auth.test' -H 'Accept: application/json' "$url" || true)
	[[ $code == 401 ]] || die "$url: no cookie gave $code, not 401"
done
log "checks passed: the cookie passes the gate and the verify endpoint (X-Auth-Email sent), no cookie gets 401"

# ------------------------------------------------------------------ runs
RAW=$TMP/raw.tsv
printf 'cell\tconfig\tround\trps\tp50_ms\tp99_ms\tnon2xx\tsockerr\tproxy_cores\tother_cores\n' >"$RAW"
for c in $CONNS; do
	wrk_pairs "GET /small with a session, $c connections" "$c" "$DURATION" "$WARMUP" "$ROUNDS" "$RAW" gate verify front
done

mkdir -p "$(dirname "$OUT")"
{
	echo "### Forward auth: nginx auth_request + verify endpoint vs Portcullis' own gate ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Portcullis: $PORTCULLIS_DESC; $(nginx -v 2>&1); wrk -t$THREADS, ${DURATION}s runs after ${WARMUP}s warm-up, $ROUNDS rounds, $WORKERS Portcullis workers, $WORKERS front nginx workers."
	echo "proxy_cores / CPU per request: Portcullis only (the front nginx is in other_cores)."
	echo
	python3 "$BENCH_DIR/pairs_report.py" "$RAW" gate gate="Portcullis' gate (proxies itself)" \
		verify="nginx auth_request -> verify endpoint, nginx proxies" front="nginx alone, no auth (reference)"
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"
log "report written to $OUT"

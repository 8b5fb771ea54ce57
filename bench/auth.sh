#!/usr/bin/env bash
# Cost of a SAML session (issue 4): GET /small on a route with "auth": "saml", sent with
# a valid sealed session cookie, against GET /small on an open route of the same
# Portcullis process (no cookie). Target: authenticated / open >= 0.95x req/s.
#
# One Portcullis (a "saml" block built with the end-to-end tests' code, see
# bench/saml_cookie.py; identity headers X-Auth-Email and X-Auth-User, one "require"
# rule) serves two sites: open.test (open route) and auth.test (SAML route); wrk picks
# the site with its Host header. The cookie is sealed afresh before every run, so no run
# reaches the once-a-minute re-issue of the cookie. Both go to one upstream nginx.
#
#   BENCH_CONNS       wrk connection counts   (default "64 256")
#   BENCH_THREADS     wrk threads             (default 2)
#   BENCH_DURATION    seconds per run         (default 10; keep DURATION + WARMUP +
#                     BENCH_QUIET_WAIT under 60, the cookie re-issue interval)
#   BENCH_WARMUP      warm-up seconds per run (default 2)
#   BENCH_ROUNDS      rounds, median taken    (default 5)
#   BENCH_WORKERS     Portcullis workers      (default 2)
#   BENCH_QUIET_WAIT  seconds to wait for other load to drop before each run (default 10)
#   BENCH_OUT         report path             (default bench/results/auth-<ts>.md)
#   BENCH_KEEP_TMP    1 = keep the temp dir
#   PORTCULLIS_BIN    default <repo>/build/portcullis
set -euo pipefail
LOG_TAG=auth-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS=${BENCH_CONNS:-64 256}
THREADS=${BENCH_THREADS:-2}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-5}
WORKERS=${BENCH_WORKERS:-2}
QUIET_WAIT=${BENCH_QUIET_WAIT:-10}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/auth-$STAMP.md}
need_int THREADS DURATION WARMUP ROUNDS WORKERS QUIET_WAIT
((DURATION > 0 && ROUNDS > 0 && THREADS > 0 && WORKERS > 0)) || die "duration, rounds, threads and workers must be > 0"
((DURATION + WARMUP + QUIET_WAIT + 5 < 60)) || die "duration + warm-up + quiet wait must stay under 55 s (the session cookie is re-issued after a minute)"
for c in $CONNS; do [[ $c =~ ^[0-9]+$ ]] && ((c >= THREADS)) || die "BENCH_CONNS entry '$c' must be an integer >= BENCH_THREADS"; done
need_tools nginx wrk curl python3 openssl pgrep
python3 -c 'import cryptography' 2>/dev/null || die "python3 cryptography missing (apt-get install python3-cryptography)"

bench_init auth-bench

# ------------------------------------------------------------------ servers
start_upstream_nginx echo-upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT"

d=$TMP/portcullis
mkdir -p "$d"
python3 "$BENCH_DIR/saml_cookie.py" setup "$d" || die "could not write the SAML inputs"
PORT=$(free_port)
render auth-portcullis.json "$d/portcullis.json" PORT="$PORT" UP_PORT="$UP_PORT" WORKERS="$WORKERS" DIR="$d"
private_portcullis "$d"
# the SP key is created (RSA 3072) on first start; the check creates it too
(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "config refused"; }
launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
wait_http "http://127.0.0.1:$PORT/small" "$LAUNCHED" "$d/portcullis.log" -H 'Host: open.test' || die "portcullis did not start"
log "portcullis on 127.0.0.1:$PORT (pid $LAUNCHED)"

URL_open=http://127.0.0.1:$PORT/small
URL_saml=http://127.0.0.1:$PORT/small
PID_open=$LAUNCHED
PID_saml=$LAUNCHED
WRKARGS_open=(-H 'Host: open.test')
WRKARGS_saml=()
COOKIE_NAME=__Host-portcullis-session
HOOK_saml() {
	local v
	v=$(python3 "$BENCH_DIR/saml_cookie.py" cookie "$d") || die "could not seal a cookie"
	WRKARGS_saml=(-H 'Host: auth.test' -H "Cookie: $COOKIE_NAME=$v")
}

# ------------------------------------------------------------------ checks
HOOK_saml
hdr=$TMP/check-headers
body=$(curl -s -m 5 -D "$hdr" "${WRKARGS_saml[@]}" "$URL_saml") || die "saml: request failed"
[[ $body == "$SMALL_BODY" ]] || die "saml: GET /small with the cookie returned '${body:0:80}'"
! grep -qi '^set-cookie:' "$hdr" || die "saml: a fresh cookie was answered with Set-Cookie: $(grep -i '^set-cookie:' "$hdr")"
[[ $(curl -s -m 5 "${WRKARGS_saml[@]}" "${URL_saml%/small}/whoami") == email=alice@example.com ]] ||
	die "saml: X-Auth-Email not sent upstream"
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'Host: auth.test' -H 'Accept: application/json' "$URL_saml" || true)
[[ $code == 401 ]] || die "saml: no cookie gave $code, not 401"
[[ $(curl -s -m 5 "${WRKARGS_open[@]}" "$URL_open") == "$SMALL_BODY" ]] || die "open: wrong /small body"
log "checks passed: the cookie opens the SAML route (X-Auth-Email sent, no re-issue), no cookie gets 401"

# ------------------------------------------------------------------ runs
RAW=$TMP/raw.tsv
printf 'cell\tconfig\tround\trps\tp50_ms\tp99_ms\tnon2xx\tsockerr\tproxy_cores\tother_cores\n' >"$RAW"
for c in $CONNS; do
	wrk_pairs "GET /small, $c connections" "$c" "$DURATION" "$WARMUP" "$ROUNDS" "$RAW" open saml
done

mkdir -p "$(dirname "$OUT")"
{
	echo "### SAML session: authenticated GET vs open route ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Portcullis: $PORTCULLIS_DESC; wrk -t$THREADS, ${DURATION}s runs after ${WARMUP}s warm-up, $ROUNDS rounds, $WORKERS workers."
	echo
	python3 "$BENCH_DIR/pairs_report.py" "$RAW" open open="open route, no cookie" saml="SAML route + session cookie"
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"
log "report written to $OUT"

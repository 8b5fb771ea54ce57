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
#   BENCH_CALLGRIND   N > 0: afterwards, count the instructions Portcullis runs per request
#                     under valgrind --tool=callgrind (1 worker, one keep-alive connection,
#                     N requests each): open route; SAML route sending one cookie again and
#                     again (as a browser does: the thread's cache of opened cookies
#                     answers); SAML route with a different cookie on every request (each
#                     one decrypted). Noise-free, unlike req/s. Default 0 (off); ~1 min for 2000
#   BENCH_REVOCATION  1 = with saml.revocation (a redis-server holding 2000 other entries)
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
CALLGRIND=${BENCH_CALLGRIND:-0}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/auth-$STAMP.md}
need_int THREADS DURATION WARMUP ROUNDS WORKERS QUIET_WAIT CALLGRIND
((DURATION > 0 && ROUNDS > 0 && THREADS > 0 && WORKERS > 0)) || die "duration, rounds, threads and workers must be > 0"
((DURATION + WARMUP + QUIET_WAIT + 5 < 60)) || die "duration + warm-up + quiet wait must stay under 55 s (the session cookie is re-issued after a minute)"
for c in $CONNS; do [[ $c =~ ^[0-9]+$ ]] && ((c >= THREADS)) || die "BENCH_CONNS entry '$c' must be an integer >= BENCH_THREADS"; done
need_tools nginx wrk curl python3 openssl pgrep
python3 -c 'import cryptography' 2>/dev/null || die "python3 cryptography missing (apt-get install python3-cryptography)"
((CALLGRIND == 0)) || need_tools valgrind callgrind_control

bench_init auth-bench

# ------------------------------------------------------------------ servers
start_upstream_nginx echo-upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT"

d=$TMP/portcullis
mkdir -p "$d"
python3 "$BENCH_DIR/saml_cookie.py" setup "$d" || die "could not write the SAML inputs"
PORT=$(free_port)
render auth-portcullis.json "$d/portcullis.json" PORT="$PORT" UP_PORT="$UP_PORT" WORKERS="$WORKERS" DIR="$d"
revocation_setup "$d/portcullis.json"
private_portcullis "$d"
# the SP key is created (RSA 3072) on first start; the check creates it too
(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "config refused"; }
launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
wait_http "http://127.0.0.1:$PORT/small" "$LAUNCHED" "$d/portcullis.log" -H 'Host: open.test' || die "portcullis did not start"
log "portcullis on 127.0.0.1:$PORT (pid $LAUNCHED)"

URL_open=http://127.0.0.1:$PORT/small
URL_saml=http://127.0.0.1:$PORT/small
URL_samljwt=$URL_saml
PID_open=$LAUNCHED
PID_saml=$LAUNCHED
PID_samljwt=$LAUNCHED
WRKARGS_open=(-H 'Host: open.test')
WRKARGS_saml=()
WRKARGS_samljwt=()
HOOK_saml() {
	session_cookie "$d" auth.test
	WRKARGS_saml=("${COOKIE_ARGS[@]}")
}
# the same session on a site that also sends the signed identity assertion
HOOK_samljwt() {
	HOOK_saml
	WRKARGS_samljwt=(-H 'Host: jwt.test' "${WRKARGS_saml[@]:2}")
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
	wrk_pairs "GET /small, $c connections" "$c" "$DURATION" "$WARMUP" "$ROUNDS" "$RAW" open saml samljwt
done

# ------------------------------------------------------------------ instructions
# cg_client PORT HOST N [COOKIE-FILE]: N sequential keep-alive GET /small, each answered 200
# without Set-Cookie; request i sends line i (cycling) of COOKIE-FILE as the session cookie
cg_client() {
	python3 - "$@" <<'PY'
import socket, sys
port, host, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cookies = open(sys.argv[4]).read().split() if len(sys.argv) > 4 else [None]
def head(c):
    r = "GET /small HTTP/1.1\r\nHost: %s\r\n" % host
    if c:
        r += "Cookie: __Host-portcullis-session=%s\r\n" % c
    return (r + "\r\n").encode()
reqs = [head(c) for c in cookies]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
for i in range(n):
    s.sendall(reqs[i % len(reqs)])
    status = f.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        sys.exit("request %d: %r" % (i, status))
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"set-cookie":
            sys.exit("request %d: unexpected %r" % (i, line))
    f.read(length)
PY
}

CG_TABLE=""
if ((CALLGRIND > 0)); then
	cgd=$TMP/callgrind
	mkdir -p "$cgd"
	CG_PORT=$(free_port)
	render auth-portcullis.json "$cgd/portcullis.json" PORT="$CG_PORT" UP_PORT="$UP_PORT" WORKERS=1 DIR="$d"
	revocation_setup "$cgd/portcullis.json"
	launch "$cgd" portcullis valgrind --tool=callgrind --callgrind-out-file="$cgd/cg.out" \
		"$d/portcullis" -c "$cgd/portcullis.json"
	CG_PID=$LAUNCHED
	READY_TIMEOUT=180 wait_http "http://127.0.0.1:$CG_PORT/small" "$CG_PID" "$cgd/portcullis.log" -H 'Host: open.test' ||
		die "portcullis under callgrind did not start"
	# every cookie is sealed just before its phase: none may reach the re-issue minute
	python3 "$BENCH_DIR/saml_cookie.py" cookies "$d" 200 >"$cgd/warm"
	cg_client "$CG_PORT" open.test 200 || die "callgrind warm-up (open) failed"
	cg_client "$CG_PORT" auth.test 200 "$cgd/warm" || die "callgrind warm-up (cookies) failed"
	log "callgrind: $CALLGRIND requests of each kind"
	callgrind_control -z "$CG_PID" >/dev/null
	cg_client "$CG_PORT" open.test "$CALLGRIND" || die "callgrind run (open) failed"
	callgrind_control -d open "$CG_PID" >/dev/null
	python3 "$BENCH_DIR/saml_cookie.py" cookie "$d" >"$cgd/one"   # (the proxy idles meanwhile)
	cg_client "$CG_PORT" auth.test "$CALLGRIND" "$cgd/one" || die "callgrind run (cookie) failed"
	callgrind_control -d same "$CG_PID" >/dev/null
	python3 "$BENCH_DIR/saml_cookie.py" cookies "$d" "$CALLGRIND" >"$cgd/fresh"
	cg_client "$CG_PORT" auth.test "$CALLGRIND" "$cgd/fresh" || die "callgrind run (cookies) failed"
	callgrind_control -d fresh "$CG_PID" >/dev/null
	ir() { awk '/^summary:/ {print $2; exit}' "$cgd/cg.out.$1"; }
	ir_open=$(ir 1) ir_same=$(ir 2) ir_fresh=$(ir 3)
	[[ -n $ir_open && -n $ir_same && -n $ir_fresh ]] || die "no callgrind summary in $cgd"
	CG_TABLE=$(awk -v n="$CALLGRIND" -v o="$ir_open" -v s="$ir_same" -v f="$ir_fresh" 'BEGIN {
		printf "| request | instructions / request | vs open |\n|---|---:|---:|\n"
		printf "| open route, no cookie | %.0f | 1.00× |\n", o / n
		printf "| SAML route, the same cookie every time | %.0f | %.2f× |\n", s / n, s / o
		printf "| SAML route, a new cookie every time | %.0f | %.2f× |\n", f / n, f / o
	}')
	log "callgrind per request: open $((ir_open / CALLGRIND)), same cookie $((ir_same / CALLGRIND)), new cookie $((ir_fresh / CALLGRIND))"
fi

mkdir -p "$(dirname "$OUT")"
{
	echo "### SAML session: authenticated GET vs open route ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Portcullis: $PORTCULLIS_DESC; wrk -t$THREADS, ${DURATION}s runs after ${WARMUP}s warm-up, $ROUNDS rounds, $WORKERS workers."
	echo
	[[ -z $REVOCATION_DESC ]] || { echo "$REVOCATION_DESC."; echo; }
	python3 "$BENCH_DIR/pairs_report.py" "$RAW" open open="open route, no cookie" saml="SAML route + session cookie" \
		samljwt="SAML route + session cookie + signed identity assertion"
	if [[ -n $CG_TABLE ]]; then
		echo
		echo "Instructions per request (valgrind --tool=callgrind, 1 worker, $CALLGRIND sequential keep-alive requests each, user space only):"
		echo
		echo "$CG_TABLE"
	fi
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"
log "report written to $OUT"

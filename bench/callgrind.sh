#!/usr/bin/env bash
# Instructions per request, noise-free: user-space instructions that Portcullis runs per
# proxied request under valgrind --tool=callgrind, for one or more binaries side by side
# (e.g. before and after a refactor). Unlike req/s, the count is the same from run to
# run for the same binary and inputs, whatever else the machine is doing.
#
# Each binary runs alone (1 worker) in front of one upstream nginx; a client sends N
# sequential keep-alive requests of each kind on one connection, counted between
# `callgrind_control -z` and `-d` after a warm-up of 200:
#   get       GET /small (100-byte body), plain HTTP
#   post2k    POST /e/ with a 2 KiB JSON body, plain HTTP
#   https     GET /small over TLS 1.3 (ECDSA P-256), one kept-alive TLS connection
#   h2        GET /small over HTTP/2 (TLS 1.3), one connection, one stream at a time
#             (h2load -n N -c 1 -m 1: a fixed count, not a load run; its one handshake
#             is counted too, a few thousand instructions per request at N=2000)
#   saml      GET /small on a SAML route with a valid session cookie (the same one
#             each time, as a browser sends it)
#   samljwt   the same on a route that also sends the signed identity assertion
#             (ES256 JWT; signed once, then reused from the worker's cache)
#
#   bench/callgrind.sh [NAME=]BINARY...     e.g. before=/tmp/old/portcullis after=build/portcullis
#   BENCH_CALLGRIND_N   requests of each kind (default 2000)
#   BENCH_REVOCATION    1 = with saml.revocation (a redis-server holding 2000 other entries)
#   BENCH_OUT           report path (default bench/results/callgrind-<ts>.md)
#   BENCH_KEEP_TMP      1 = keep the temp dir
#   BENCH_CALLGRIND_START  seconds Portcullis under valgrind gets to answer (default 180;
#                       more on a busy machine)
set -euo pipefail
LOG_TAG=callgrind-bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${BENCH_CALLGRIND_N:-2000}
need_int N
((N > 0)) || die "BENCH_CALLGRIND_N must be > 0"
(($# > 0)) || die "usage: bench/callgrind.sh [NAME=]BINARY..."
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/callgrind-$STAMP.md}
need_tools nginx python3 openssl valgrind callgrind_control h2load
bench_init callgrind-bench

start_upstream_nginx echo-upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT"
inputs=$TMP/inputs
mkdir -p "$inputs"
python3 "$BENCH_DIR/saml_cookie.py" setup "$inputs" || die "could not write the SAML inputs"
openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost,DNS:open.test -keyout "$inputs/key.pem" -out "$inputs/cert.pem" \
	2>/dev/null || die "cannot make the test certificate"

# client PORT TLS(0|1) KIND N [COOKIE]: N sequential keep-alive requests, each answered 200
client() {
	python3 - "$@" <<'PY'
import socket, ssl, sys
port, tls, kind, n = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
cookie = sys.argv[5] if len(sys.argv) > 5 else None
if kind == "post2k":
    body = b'{"event":"bench","properties":{"pad":"' + b"x" * (2048 - 42) + b'"}}'
    req = (b"POST /e/ HTTP/1.1\r\nHost: open.test\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
elif kind in ("saml", "samljwt"):
    req = ("GET /small HTTP/1.1\r\nHost: %s\r\nCookie: __Host-portcullis-session=%s\r\n\r\n"
           % ("auth.test" if kind == "saml" else "jwt.test", cookie)).encode()
else:
    req = b"GET /small HTTP/1.1\r\nHost: open.test\r\n\r\n"
s = socket.create_connection(("127.0.0.1", port))
if tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    s = ctx.wrap_socket(s, server_hostname="open.test")
f = s.makefile("rb")
for i in range(n):
    s.sendall(req)
    status = f.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        sys.exit("%s request %d: %r" % (kind, i, status))
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
        elif cookie and k.strip().lower() == b"set-cookie":
            sys.exit("%s request %d: the session cookie was re-issued (not the cost measured)"
                     % (kind, i))
    f.read(length)
PY
}

# h2run PORT TLS KIND N [COOKIE]: as client, for the h2 kind: N GET /small over one
# HTTP/2 connection, one at a time, each answered 200
h2run() {
	local out
	out=$(h2load -n "$4" -c 1 -m 1 -H ':authority: open.test' "https://127.0.0.1:$1/small" 2>&1) || true
	grep -q "^status codes: $4 2xx" <<<"$out" || { printf '%s\n' "$out" >&2; return 1; }
}

KINDS=(get post2k https h2 saml samljwt)
declare -A IR=()
NAMES=()
for arg in "$@"; do
	name=${arg%%=*} bin=${arg#*=}
	[[ $arg == *=* ]] || name=$(basename "$(dirname "$(readlink -f "$bin")")")
	NAMES+=("$name")
	d=$TMP/$name
	mkdir -p "$d"
	cp -r "$inputs"/. "$d"/
	PORTCULLIS_BIN=$bin private_portcullis "$d"
	port=$(free_port) tls_port=$(free_port)
	render callgrind-portcullis.json "$d/portcullis.json" PORT="$port" TLS_PORT="$tls_port" \
		UP_PORT="$UP_PORT" DIR="$d" CERT="$d/cert.pem" KEY="$d/key.pem"
	revocation_setup "$d/portcullis.json"
	(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "$name: config refused"; }
	launch "$d" portcullis valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
		"$d/portcullis" -c "$d/portcullis.json"
	pid=$LAUNCHED
	READY_TIMEOUT=${BENCH_CALLGRIND_START:-180} wait_http "http://127.0.0.1:$port/small" "$pid" "$d/portcullis.log" -H 'Host: open.test' ||
		die "$name: portcullis under callgrind did not start"
	i=0
	for kind in "${KINDS[@]}"; do
		p=$port tls=0 send=client cookie=
		[[ $kind == https || $kind == h2 ]] && p=$tls_port tls=1
		[[ $kind == h2 ]] && send=h2run
		# sealed afresh for each SAML kind: under valgrind the kinds before can take
		# over a minute, and a cookie last seen a minute ago is re-issued (sealed
		# again) on every request, which is not the cost being measured
		if [[ $kind == saml* ]]; then
			cookie=$(python3 "$BENCH_DIR/saml_cookie.py" cookie "$d") || die "could not seal a cookie"
		fi
		$send "$p" "$tls" "$kind" 200 "$cookie" || die "$name: $kind warm-up failed"
		callgrind_control -z "$pid" >/dev/null 2>&1
		$send "$p" "$tls" "$kind" "$N" "$cookie" || die "$name: $kind run failed"
		callgrind_control -d "$kind" "$pid" >/dev/null 2>&1
		i=$((i + 1))
		IR[$name:$kind]=$(awk '/^summary:/ {print $2; exit}' "$d/cg.out.$i")
		[[ -n ${IR[$name:$kind]} ]] || die "$name: no callgrind summary for $kind"
		v=${IR[$name:$kind]}
		log "$name $kind: $((v / N)) instructions per request"
	done
	stop_pid "$pid"
done

mkdir -p "$(dirname "$OUT")"
{
	echo "### Instructions per request ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "valgrind --tool=callgrind, 1 worker, $N sequential keep-alive requests of each kind after 200 of warm-up, user space only.${REVOCATION_DESC:+ $REVOCATION_DESC.}"
	echo
	printf '| request |'
	for n in "${NAMES[@]}"; do printf ' %s |' "$n"; done
	((${#NAMES[@]} > 1)) && printf ' %s / %s |' "${NAMES[-1]}" "${NAMES[0]}"
	printf '\n|---|'
	for _ in "${NAMES[@]}"; do printf -- '---:|'; done
	((${#NAMES[@]} > 1)) && printf -- '---:|'
	printf '\n'
	for kind in "${KINDS[@]}"; do
		printf '| %s |' "$kind"
		for n in "${NAMES[@]}"; do
			v=${IR[$n:$kind]}
			printf ' %d |' "$((v / N))"
		done
		if ((${#NAMES[@]} > 1)); then
			awk -v a="${IR[${NAMES[0]}:$kind]}" -v b="${IR[${NAMES[-1]}:$kind]}" 'BEGIN { printf " %+.1f %% |", (b / a - 1) * 100 }'
		fi
		printf '\n'
	done
} >"$OUT"
cat "$OUT"
log "report written to $OUT"

#!/usr/bin/env bash
# Response compression (issue 18): GET /app.js (a 128 KiB text payload: the first 128 KiB
# of this repository's src/http/*.c, served by the upstream nginx as
# application/javascript with its Content-Length) through Portcullis and through nginx
# (`gzip on`, gzip_comp_level = Portcullis' "level.gzip"), side by side in one run:
#
#   nginx_gzip   nginx, Accept-Encoding: gzip          pc_gzip   Portcullis, gzip
#   nginx_plain  nginx, no Accept-Encoding             pc_plain  Portcullis, no Accept-Encoding
#   pc_zstd      Portcullis, Accept-Encoding: zstd     pc_br     Portcullis, br
#
# Bodies are checked with Debian's python3-brotli and python3-zstandard (/usr/bin/python3).
# (nginx-light has no zstd or br module: those rows have no nginx peer.) Reported: req/s,
# the proxy's CPU per request, the compressed size, and the proxy's CPU per MiB it sent
# and per MiB of payload it read; ratios to nginx_gzip. Every configuration is checked
# first: the client decodes the body and gets the payload back.
#
#   BENCH_CONNS       wrk connection counts   (default "32")
#   BENCH_THREADS     wrk threads             (default 2)
#   BENCH_DURATION    seconds per run         (default 10)
#   BENCH_WARMUP      warm-up seconds per run (default 2)
#   BENCH_ROUNDS      rounds, median taken    (default 3)
#   BENCH_WORKERS     workers of both proxies (default 2)
#   BENCH_LEVEL       gzip level of both      (default 6)
#   BENCH_QUIET_WAIT  seconds to wait for other load to drop before each run (default 10)
#   BENCH_OUT         report path             (default bench/results/compress-<ts>.md)
#   BENCH_KEEP_TMP    1 = keep the temp dir
#   PORTCULLIS_BIN    default <repo>/build/portcullis
set -euo pipefail
LOG_TAG=compress-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-2}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
WORKERS=${BENCH_WORKERS:-2}
LEVEL=${BENCH_LEVEL:-6}
QUIET_WAIT=${BENCH_QUIET_WAIT:-10}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$REPO_DIR/build/portcullis}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_DIR/results/compress-$STAMP.md}
PAYLOAD_BYTES=131072
need_int THREADS DURATION WARMUP ROUNDS WORKERS QUIET_WAIT LEVEL
((DURATION > 0 && ROUNDS > 0 && THREADS > 0 && WORKERS > 0)) || die "duration, rounds, threads and workers must be > 0"
((LEVEL >= 1 && LEVEL <= 9)) || die "BENCH_LEVEL must be 1-9 (gzip)"
for c in $CONNS; do [[ $c =~ ^[0-9]+$ ]] && ((c >= THREADS)) || die "BENCH_CONNS entry '$c' must be an integer >= BENCH_THREADS"; done
need_tools nginx wrk curl python3 pgrep
/usr/bin/python3 -c 'import brotli, zstandard' 2>/dev/null || die "python3-brotli and python3-zstandard are needed to check the bodies"

bench_init compress-bench

# ------------------------------------------------------------------ servers
mkdir -p "$TMP/upstream/www"
{ cat "$REPO_DIR"/src/http/*.c || true; } | head -c "$PAYLOAD_BYTES" >"$TMP/upstream/www/app.js"
(($(stat -c %s "$TMP/upstream/www/app.js") == PAYLOAD_BYTES)) || die "payload is not $PAYLOAD_BYTES bytes"
start_upstream_nginx compress-upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT"

d=$TMP/nginx
mkdir -p "$d/tmp"
port=$(free_port)
render compress-nginx.conf "$d/nginx.conf" DIR="$d" PORT="$port" UP_PORT="$UP_PORT" \
	WORKERS="$WORKERS" GZIP=on LEVEL="$LEVEL"
launch "$d" nginx nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
wait_http "http://127.0.0.1:$port/small" "$LAUNCHED" "$d/nginx.log" || die "nginx did not start"
NGINX_URL=http://127.0.0.1:$port/app.js
NGINX_PID=$LAUNCHED
log "nginx on 127.0.0.1:$port (pid $LAUNCHED)"

d=$TMP/portcullis
mkdir -p "$d"
port=$(free_port)
render compress-portcullis.json "$d/portcullis.json" PORT="$port" UP_PORT="$UP_PORT" \
	WORKERS="$WORKERS" LEVEL="$LEVEL" ZSTD_LEVEL=3 BR_LEVEL=4
private_portcullis "$d"
(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "portcullis: config refused"; }
launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
wait_http "http://127.0.0.1:$port/small" "$LAUNCHED" "$d/portcullis.log" || die "portcullis did not start"
PC_URL=http://127.0.0.1:$port/app.js
PC_PID=$LAUNCHED
log "portcullis on 127.0.0.1:$port (pid $LAUNCHED)"

# configuration NAME URL PID CODING: URL_/PID_/WRKARGS_<NAME> for wrk_pairs
NAMES=()
configuration() {
	NAMES+=("$1")
	printf -v "URL_$1" '%s' "$2"
	printf -v "PID_$1" '%s' "$3"
	printf -v "CODING_$1" '%s' "$4"
	if [[ -n $4 ]]; then
		eval "WRKARGS_$1=(-H 'Accept-Encoding: $4')"
	else
		eval "WRKARGS_$1=()"
	fi
}
configuration nginx_gzip "$NGINX_URL" "$NGINX_PID" gzip
configuration pc_gzip "$PC_URL" "$PC_PID" gzip
configuration nginx_plain "$NGINX_URL" "$NGINX_PID" ""
configuration pc_plain "$PC_URL" "$PC_PID" ""
configuration pc_zstd "$PC_URL" "$PC_PID" zstd
configuration pc_br "$PC_URL" "$PC_PID" br

# ------------------------------------------------------------------ checks
# every configuration answers with the coding asked for, and the body decodes to the payload
SIZES=$TMP/sizes.tsv
printf 'config\tcoding\tbytes\n' >"$SIZES"
for name in "${NAMES[@]}"; do
	url=URL_$name; url=${!url}
	coding=CODING_$name; coding=${!coding}
	hdr=(); [[ -z $coding ]] || hdr=(-H "Accept-Encoding: $coding")
	curl -s -m 10 "${hdr[@]}" -D "$TMP/$name.head" -o "$TMP/$name.body" "$url" || die "$name: request failed"
	/usr/bin/python3 - "$TMP/$name.head" "$TMP/$name.body" "$TMP/upstream/www/app.js" "$coding" <<'PY' || die "$name: wrong answer"
import sys, zlib, brotli, zstandard
head, body, payload, coding = open(sys.argv[1]).read().lower(), open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read(), sys.argv[4]
got = [l.split(":", 1)[1].strip() for l in head.splitlines() if l.startswith("content-encoding:")]
if got != ([coding] if coding else []):
    sys.exit("Content-Encoding %r, wanted %r" % (got, coding))
decode = {"gzip": lambda b: zlib.decompress(b, 16 + zlib.MAX_WBITS), "br": brotli.decompress,
          "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b), "": lambda b: b}
if decode[coding](body) != payload:
    sys.exit("the body does not decode to the payload")
PY
	printf '%s\t%s\t%s\n' "$name" "${coding:-identity}" "$(stat -c %s "$TMP/$name.body")" >>"$SIZES"
done
log "checks passed: every configuration decodes to the $PAYLOAD_BYTES-byte payload"

# ------------------------------------------------------------------ runs
RAW=$TMP/raw.tsv
printf 'cell\tconfig\tround\trps\tp50_ms\tp99_ms\tnon2xx\tsockerr\tproxy_cores\tother_cores\n' >"$RAW"
for c in $CONNS; do
	wrk_pairs "GET /app.js (128 KiB), $c connections" "$c" "$DURATION" "$WARMUP" "$ROUNDS" "$RAW" "${NAMES[@]}"
done

mkdir -p "$(dirname "$OUT")"
{
	echo "### Response compression: Portcullis vs nginx \`gzip on\` ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Portcullis: $PORTCULLIS_DESC; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), gzip_comp_level $LEVEL = Portcullis level.gzip $LEVEL (zstd 3, br 4: Portcullis' defaults); payload $PAYLOAD_BYTES bytes of C source as application/javascript; wrk -t$THREADS, ${DURATION}s runs after ${WARMUP}s warm-up, $ROUNDS rounds, $WORKERS workers each."
	echo
	python3 "$BENCH_DIR/pairs_report.py" "$RAW" nginx_gzip
	echo
	python3 - "$RAW" "$SIZES" "$PAYLOAD_BYTES" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
sizes = {r["config"]: r for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
payload = int(sys.argv[3])
print("| configuration | coding | bytes sent per response | size ratio | proxy CPU ms per MiB sent | proxy CPU ms per MiB of payload | vs nginx_gzip (per MiB of payload) |")
print("|---|---|---:|---:|---:|---:|---:|")
per = {}
for name, s in sizes.items():
    runs = [r for r in rows if r["config"] == name and float(r["rps"] or 0) > 0]
    if not runs:
        continue
    sec_per_req = statistics.median(float(r["proxy_cores"]) / float(r["rps"]) for r in runs)
    per[name] = sec_per_req
for name, s in sizes.items():
    if name not in per:
        continue
    sent = int(s["bytes"])
    ms_sent = per[name] * 1000 / (sent / 1048576)
    ms_payload = per[name] * 1000 / (payload / 1048576)
    ratio = per[name] / per["nginx_gzip"] if "nginx_gzip" in per else float("nan")
    print("| %s | %s | %d | %.3f | %.1f | %.1f | %.2f× |" % (name, s["coding"], sent, sent / payload,
                                                         ms_sent, ms_payload, ratio))
PY
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"
log "report written to $OUT"

#!/usr/bin/env bash
# Cost of access rules (issue 5): GET /small through Portcullis with a 50-entry CIDR
# allow list on the route (127.0.0.1/32 is the 50th entry, so every request walks past
# 49 non-matching entries) AND GeoIP lookups on (top-level "geoip" with a small mmdb
# built by bench/mmdb_writer.pl, "country_header": "X-Client-Country"), against the same
# config without them. Target: rules / plain >= 0.97x req/s.
#
# Both Portcullis instances run side by side in front of one upstream nginx; wrk drives
# them in turn, the order rotated every round; the report gives medians and ratios.
#
#   BENCH_CONNS       wrk connection counts   (default "64 256")
#   BENCH_THREADS     wrk threads             (default 2)
#   BENCH_DURATION    seconds per run         (default 10)
#   BENCH_WARMUP      warm-up seconds per run (default 2)
#   BENCH_ROUNDS      rounds, median taken    (default 5)
#   BENCH_WORKERS     Portcullis workers      (default 2)
#   BENCH_QUIET_WAIT  seconds to wait for other load to drop before each run (default 10)
#   BENCH_OUT         report path             (default bench/results/access-<ts>.md)
#   BENCH_KEEP_TMP    1 = keep the temp dir
#   PORTCULLIS_BIN    default <repo>/build/portcullis
set -euo pipefail
LOG_TAG=access-bench
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
OUT=${BENCH_OUT:-$BENCH_DIR/results/access-$STAMP.md}
need_int THREADS DURATION WARMUP ROUNDS WORKERS QUIET_WAIT
((DURATION > 0 && ROUNDS > 0 && THREADS > 0 && WORKERS > 0)) || die "duration, rounds, threads and workers must be > 0"
for c in $CONNS; do [[ $c =~ ^[0-9]+$ ]] && ((c >= THREADS)) || die "BENCH_CONNS entry '$c' must be an integer >= BENCH_THREADS"; done
need_tools nginx wrk curl python3 perl pgrep
perl -MMaxMind::DB::Writer::Tree -e 1 2>/dev/null || die "perl MaxMind::DB::Writer missing (apt-get install libmaxmind-db-writer-perl)"

bench_init access-bench

# ------------------------------------------------------------------ inputs
# 49 allow entries that never match 127.0.0.1, then 127.0.0.1/32
allow=()
for ((i = 0; i < 24; i++)); do allow+=("\"10.$i.0.0/16\""); done
for ((i = 0; i < 12; i++)); do allow+=("\"192.0.2.$((i * 16))/28\""); done
for ((i = 0; i < 13; i++)); do allow+=("\"2001:db8:$i::/48\""); done
allow+=('"127.0.0.1/32"')
((${#allow[@]} == 50)) || die "allow list has ${#allow[@]} entries"
ALLOW_JSON=$(IFS=,; echo "${allow[*]}")

# the GeoIP database: 127.0.0.1 is NL, plus 49 other networks
MMDB=$TMP/country.mmdb
mmdb_args=(127.0.0.1/32 NL 64512)
ccs=(DE FR US GB JP BR IN CA AU SE)
for ((i = 0; i < 24; i++)); do mmdb_args+=("10.$i.0.0/16" "${ccs[i % 10]}" $((64600 + i))); done
for ((i = 0; i < 25; i++)); do mmdb_args+=("203.0.$((100 + i)).0/24" "${ccs[(i + 3) % 10]}" $((64700 + i))); done
perl "$BENCH_DIR/mmdb_writer.pl" "$MMDB" "${mmdb_args[@]}" || die "could not write $MMDB"

# ------------------------------------------------------------------ servers
start_upstream_nginx echo-upstream-nginx.conf
log "upstream nginx on 127.0.0.1:$UP_PORT"

# start_pc NAME GEOIP ROUTE_ACCESS: a Portcullis instance; sets URL_<NAME> and PID_<NAME>
start_pc() {
	local name=$1 d=$TMP/$1 port
	mkdir -p "$d"
	port=$(free_port)
	render access-portcullis.json "$d/portcullis.json" PORT="$port" UP_PORT="$UP_PORT" \
		WORKERS="$WORKERS" GEOIP="$2" ROUTE_ACCESS="$3"
	private_portcullis "$d"
	(cd "$d" && ./portcullis -t -c portcullis.json) >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; die "$name: config refused"; }
	launch "$d" portcullis "$d/portcullis" -c "$d/portcullis.json"
	wait_http "http://127.0.0.1:$port/small" "$LAUNCHED" "$d/portcullis.log" || die "$name did not start"
	printf -v "URL_$name" '%s' "http://127.0.0.1:$port/small"
	printf -v "PID_$name" '%s' "$LAUNCHED"
	log "$name on 127.0.0.1:$port (pid $LAUNCHED)"
}
start_pc plain "" ""
start_pc rules "
  \"geoip\": { \"database\": \"$MMDB\", \"country_header\": \"X-Client-Country\" }," \
	", \"access\": { \"allow\": [$ALLOW_JSON] }"
WRKARGS_plain=()
WRKARGS_rules=()

# ------------------------------------------------------------------ checks
# both answer /small; only "rules" refuses 127.0.0.2 and sends the country upstream
for name in plain rules; do
	url=URL_$name; url=${!url}
	[[ $(curl -s -m 5 "$url") == "$SMALL_BODY" ]] || die "$name: wrong /small body"
done
code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" || true; }
[[ $(code --interface 127.0.0.2 "$URL_rules") == 403 ]] || die "rules: 127.0.0.2 was not refused"
[[ $(code --interface 127.0.0.2 "$URL_plain") == 200 ]] || die "plain: 127.0.0.2 was refused"
[[ $(curl -s -m 5 "${URL_rules%/small}/country") == country=NL ]] || die "rules: X-Client-Country NL not sent upstream"
[[ $(curl -s -m 5 "${URL_plain%/small}/country") == country= ]] || die "plain: sent a country"
log "checks passed: the allow list refuses 127.0.0.2, GeoIP sends X-Client-Country: NL"

# ------------------------------------------------------------------ runs
RAW=$TMP/raw.tsv
printf 'cell\tconfig\tround\trps\tp50_ms\tp99_ms\tnon2xx\tsockerr\tproxy_cores\tother_cores\n' >"$RAW"
for c in $CONNS; do
	wrk_pairs "GET /small, $c connections" "$c" "$DURATION" "$WARMUP" "$ROUNDS" "$RAW" plain rules
done

mkdir -p "$(dirname "$OUT")"
{
	echo "### Access rules: 50-entry allow list + GeoIP vs none ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Portcullis: $PORTCULLIS_DESC; wrk -t$THREADS, ${DURATION}s runs after ${WARMUP}s warm-up, $ROUNDS rounds, $WORKERS workers."
	echo
	python3 "$BENCH_DIR/pairs_report.py" "$RAW" plain plain="no rules" rules="allow list + GeoIP"
} >"$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cat "$OUT"
log "report written to $OUT"

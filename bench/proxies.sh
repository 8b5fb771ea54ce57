# shellcheck shell=bash
# The proxies of the side-by-side benchmarks (sourced by bench/run.sh and
# bench/latency.sh after lib.sh and bench_init): the shared upstream nginx and
# start_<name> for each proxy, rendering its config from bench/conf/ into
# $TMP/<name>. Each registers its PID and base URL (PROXY_PID, BASE_URL), and
# uses WORKERS workers/threads. PORTCULLIS_BIN (and BASELINE_BIN) name the
# Portcullis binaries.

declare -A PROXY_PID=()      # proxy -> main PID
declare -A BASE_URL=()       # "proxy:scheme" -> base URL

# ---------------------------------------------------------------------------- upstream
UP_PORT=""
UP_PID=""
start_upstream() {
	local d=$TMP/upstream
	mkdir -p "$d/www" "$d/tmp"
	head -c "$MIB" /dev/urandom >"$d/www/1m"
	UP_PORT=$(free_port)
	render upstream-nginx.conf "$d/nginx.conf" DIR="$d" PORT="$UP_PORT" SMALL_BODY="$SMALL_BODY"
	launch "$d" upstream nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
	UP_PID=$LAUNCHED
	wait_http "http://127.0.0.1:$UP_PORT/small" "$UP_PID" "$d/upstream.log" || die "upstream nginx did not start"
}

# register_proxy NAME PID SCHEME URL: make a started proxy known to the runner
register_proxy() {
	PROXY_PID[$1]=$2
	BASE_URL[$1:$3]=$4
}

# ---------------------------------------------------------------------------- proxies
# Each start_<name> renders its config from bench/conf/ into $TMP/<name>, launches the
# proxy, waits until it answers and registers it. Common ground: $WORKERS workers or
# threads, keep-alive to the upstream, access logs off, X-Forwarded-For added, a loopback
# port chosen by the OS. Return non-zero if it cannot start (it is then left out).

start_direct() {        # the upstream alone, as a ceiling
	register_proxy direct "$UP_PID" http "http://127.0.0.1:$UP_PORT"
}

start_nginx() {
	local d=$TMP/nginx port
	mkdir -p "$d/tmp"
	port=$(free_port)
	render nginx.conf "$d/nginx.conf" DIR="$d" PORT="$port" UP_PORT="$UP_PORT" WORKERS="$WORKERS"
	launch "$d" nginx nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
	wait_http "http://127.0.0.1:$port/small" "$LAUNCHED" "$d/nginx.log" || return 1
	register_proxy nginx "$LAUNCHED" http "http://127.0.0.1:$port"
}

start_haproxy() {
	local d=$TMP/haproxy port
	mkdir -p "$d"
	port=$(free_port)
	render haproxy.cfg "$d/haproxy.cfg" PORT="$port" UP_PORT="$UP_PORT" WORKERS="$WORKERS"
	haproxy -c -q -f "$d/haproxy.cfg" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; return 1; }
	launch "$d" haproxy haproxy -db -f "$d/haproxy.cfg"
	wait_http "http://127.0.0.1:$port/small" "$LAUNCHED" "$d/haproxy.log" || return 1
	register_proxy haproxy "$LAUNCHED" http "http://127.0.0.1:$port"
}

start_caddy() {
	local d=$TMP/caddy port
	mkdir -p "$d/home"
	port=$(free_port)
	render Caddyfile "$d/Caddyfile" PORT="$port" UP_PORT="$UP_PORT"
	launch "$d" caddy env GOMAXPROCS="$WORKERS" HOME="$d/home" XDG_DATA_HOME="$d/home/data" \
		XDG_CONFIG_HOME="$d/home/config" caddy run --config "$d/Caddyfile" --adapter caddyfile
	wait_http "http://127.0.0.1:$port/small" "$LAUNCHED" "$d/caddy.log" || return 1
	register_proxy caddy "$LAUNCHED" http "http://127.0.0.1:$port"
}

# start_portcullis_as NAME BINARY: one Portcullis proxy, registered as NAME
start_portcullis_as() {
	local name=$1 bin=$2 d=$TMP/$1 port
	mkdir -p "$d"
	[[ -x $bin ]] || { log "Portcullis binary $bin not found or not executable"; return 1; }
	port=$(free_port)
	render portcullis.json "$d/portcullis.json" PORT="$port" UP_PORT="$UP_PORT" WORKERS="$WORKERS"
	# "listening on" is logged at info level and this config logs warn and above, so
	# readiness is judged by the first 200 answer, as for the other proxies
	PORTCULLIS_BIN=$bin private_portcullis "$d"
	launch "$d" "$name" "$d/portcullis" -c "$d/portcullis.json"
	wait_http "http://127.0.0.1:$port/small" "$LAUNCHED" "$d/$name.log" || return 1
	register_proxy "$name" "$LAUNCHED" http "http://127.0.0.1:$port"
}

start_portcullis() {
	start_portcullis_as portcullis "$PORTCULLIS_BIN"
	PORTCULLIS_MAIN_DESC=$PORTCULLIS_DESC
}

# another Portcullis binary (BASELINE_BIN) in the same rounds, for before/after comparisons
start_baseline() {
	[[ -n ${BASELINE_BIN:-} ]] || { log "baseline: set BASELINE_BIN to a Portcullis binary"; return 1; }
	start_portcullis_as baseline "$BASELINE_BIN"
	BASELINE_DESC=$PORTCULLIS_DESC
}

# check_proxy NAME: every scenario's request answers correctly through it
check_proxy() {
	local p=$1 base=${BASE_URL[$1:http]} out
	out=$(curl -s -m 5 "$base/small") || return 1
	[[ $out == "$SMALL_BODY" ]] || { log "$p: GET /small returned '${out:0:80}'"; return 1; }
	out=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$TMP/post2k.json" "$base/e/") || return 1
	[[ $out == 200 ]] || { log "$p: POST /e/ returned status $out"; return 1; }
	out=$(curl -s -m 10 -o "$TMP/check-1m" -w '%{http_code} %{size_download}' "$base/1m") || return 1
	[[ $out == "200 $MIB" ]] && cmp -s "$TMP/check-1m" "$TMP/upstream/www/1m" || { log "$p: GET /1m returned '$out' or wrong bytes"; return 1; }
}

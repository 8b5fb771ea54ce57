# shellcheck shell=bash disable=SC2034
# Shared helpers of the benchmark scripts in bench/ (sourced, not run): every process a
# script starts is recorded in PIDS and stopped by PID on exit; configs are rendered from
# bench/conf/ templates with @KEY@ placeholders; ports are chosen by the OS.
#
# The sourcing script sets LOG_TAG before sourcing and calls bench_init once.

export LC_ALL=C   # '.' decimals from wrk, awk and $EPOCHREALTIME
export PORTCULLIS_ALLOW_ROOT=1   # benchmarks run as root; Portcullis refuses that otherwise
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
READY_TIMEOUT=${READY_TIMEOUT:-20}   # seconds a server gets to start answering
QUIET_CORES=0.15
CLK_TCK=$(getconf CLK_TCK)
SMALL_BODY="portcullis-bench-0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdefghijklmnopqrstuvwxyz-0123"

log() { printf '[%s %s] %s\n' "${LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# need_int NAME...: each named variable holds a non-negative integer
need_int() {
	local v
	for v in "$@"; do [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"; done
}

# need_tools TOOL...: every tool is on PATH (these scripts never install anything)
need_tools() {
	local t missing=()
	for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
	((${#missing[@]} == 0)) || die "missing tools: ${missing[*]}"
}

# ---------------------------------------------------------------- processes
declare -a PIDS=()
TMP=""

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
	if [[ -n $TMP && -d $TMP ]]; then
		if [[ ${BENCH_KEEP_TMP:-0} == 1 || $rc -ne 0 ]]; then
			log "temp dir kept: $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}

# bench_init NAME: traps, raised fd limit, a temp dir in TMP
bench_init() {
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	TMP=$(mktemp -d "/tmp/portcullis-$1.XXXXXX")
	chmod 755 "$TMP"   # nginx workers may run as nobody and must read files under it
}

# launch DIR NAME CMD...: start CMD in the background, output to DIR/NAME.log; sets LAUNCHED
launch() {
	local dir=$1 name=$2
	shift 2
	"$@" >"$dir/$name.log" 2>&1 </dev/null &
	LAUNCHED=$!
	PIDS+=("$LAUNCHED")
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL PID LOG [CURL-ARGS...]: until URL answers 200, the process dies, or READY_TIMEOUT
wait_http() {
	local url=$1 pid=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT))
	shift 3
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid exited during start-up; its log:"; tail -n 20 "$logf" >&2 || true
			return 1
		fi
		if [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" "$url" 2>/dev/null || true) == 200 ]]; then return 0; fi
		sleep 0.1
	done
	log "$url did not answer 200 within ${READY_TIMEOUT}s; log:"; tail -n 20 "$logf" >&2 || true
	return 1
}

# wait_tcp PORT PID LOG: until 127.0.0.1:PORT accepts, the process dies, or READY_TIMEOUT
wait_tcp() {
	local port=$1 pid=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid exited during start-up; its log:"; tail -n 20 "$logf" >&2 || true
			return 1
		fi
		if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	log "127.0.0.1:$port did not accept within ${READY_TIMEOUT}s; log:"; tail -n 20 "$logf" >&2 || true
	return 1
}

# ---------------------------------------------------------------- configs
shopt -u patsub_replacement 2>/dev/null || true   # keep '&' literal in ${x//pat/rep}

# render TEMPLATE OUT KEY=VALUE...: copy bench/conf/TEMPLATE to OUT, replacing @KEY@
render() {
	local tmpl=$BENCH_DIR/conf/$1 out=$2 text kv
	shift 2
	[[ -r $tmpl ]] || die "missing config template $tmpl"
	text=$(<"$tmpl")
	for kv in "$@"; do text=${text//@${kv%%=*}@/${kv#*=}}; done
	if grep -q '@[A-Z_][A-Z_]*@' <<<"$text"; then
		die "unreplaced placeholder in $tmpl: $(grep -o '@[A-Z_][A-Z_]*@' <<<"$text" | sort -u | tr '\n' ' ')"
	fi
	printf '%s\n' "$text" >"$out"
}

# private_portcullis DIR: copy PORTCULLIS_BIN to DIR/portcullis (a rebuild mid-run cannot
# disturb it) and set PORTCULLIS_DESC
private_portcullis() {
	[[ -x $PORTCULLIS_BIN ]] || die "Portcullis binary $PORTCULLIS_BIN not found or not executable"
	cp "$PORTCULLIS_BIN" "$1/portcullis"
	PORTCULLIS_DESC="$PORTCULLIS_BIN (built $(date -u -r "$PORTCULLIS_BIN" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$1/portcullis" | cut -c1-12))"
}

# start_upstream_nginx TEMPLATE: the upstream nginx (1 worker) in $TMP/upstream; sets UP_PORT, UP_PID
start_upstream_nginx() {
	local d=$TMP/upstream
	mkdir -p "$d/www" "$d/tmp"
	: >"$d/www/1m"   # the template names /1m; these benchmarks do not use it
	UP_PORT=$(free_port)
	render "$1" "$d/nginx.conf" DIR="$d" PORT="$UP_PORT" SMALL_BODY="$SMALL_BODY"
	launch "$d" upstream nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
	UP_PID=$LAUNCHED
	wait_http "http://127.0.0.1:$UP_PORT/small" "$UP_PID" "$d/upstream.log" || die "upstream nginx did not start"
}

# session_cookie DIR HOST: COOKIE_ARGS, the wrk/curl arguments of a request to HOST that
# carries a session cookie sealed now (bench/saml_cookie.py, for the inputs it wrote in DIR)
session_cookie() {
	local v
	v=$(python3 "$BENCH_DIR/saml_cookie.py" cookie "$1") || die "could not seal a cookie"
	COOKIE_ARGS=(-H "Host: $2" -H "Cookie: __Host-portcullis-session=$v")
}

# revocation_setup CONFIG: with BENCH_REVOCATION=1, add "saml.revocation" and "redis" to the
# rendered CONFIG, on a redis-server (no persistence, started once in $TMP/redis) whose list
# holds 1000 users and 1000 sessions that are not the benchmark's: every SAML request then
# checks its session against a non-empty list. Sets REVOCATION_DESC ("" when off).
revocation_setup() {
	REVOCATION_DESC=""
	[[ ${BENCH_REVOCATION:-0} == 1 ]] || return 0
	need_tools redis-server redis-cli
	if [[ -z ${REDIS_PORT:-} ]]; then
		local d=$TMP/redis i
		mkdir -p "$d"
		REDIS_PORT=$(free_port)
		launch "$d" redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$d"
		for i in $(seq 50); do
			[[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]] && break
			sleep 0.1
		done
		[[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]] || die "redis-server did not start"
		python3 -c 'import sys, time
t = int(time.time())
for i in range(1000):
    print("HSET portcullis:revoked user:user%d@example.com %d" % (i, t))
    print("HSET portcullis:revoked session:bench%012d %d" % (i, t))
print("INCR portcullis:revoked:epoch")' | redis-cli -p "$REDIS_PORT" >/dev/null || die "cannot fill the revocation list"
	fi
	python3 - "$1" "$REDIS_PORT" <<'PY' || die "cannot add revocation to $1"
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["saml"]["revocation"] = {"poll_interval": 1}
cfg["redis"] = {"address": "127.0.0.1:%s" % sys.argv[2]}
json.dump(cfg, open(sys.argv[1], "w"), indent=1)
PY
	REVOCATION_DESC="saml.revocation on (redis-server, 1000 users and 1000 sessions on the list, polled every 1 s)"
}

# ---------------------------------------------------------------- CPU accounting
# tree_pids PID: PID and all its descendants
tree_pids() {
	local p c
	for p in "$@"; do
		echo "$p"
		for c in $(pgrep -P "$p" 2>/dev/null || true); do tree_pids "$c"; done
	done
}

# cpu_ticks PID...: summed utime+stime of the process trees (clock ticks)
cpu_ticks() {
	local total=0 p v
	for p in $(tree_pids "$@"); do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# softirq_ticks: CPU ticks of the ksoftirqd kernel threads, which do loopback packet
# processing on behalf of the measured processes (not "other" work)
# shellcheck disable=SC2046 # one argument per PID
softirq_ticks() { cpu_ticks $(pgrep -x 'ksoftirqd/[0-9]+' || true); }

# busy_ticks: user+nice+system ticks of the whole machine (all cores)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4; exit}' /proc/stat; }

# child_ticks: CHILD_TICKS = CPU ticks of this shell's reaped children (wrk, clients).
# Call it directly, never in $(...): a subshell has no children.
child_ticks() {
	times >"$TMP/times"
	CHILD_TICKS=$(awk -v h="$CLK_TCK" 'NR == 2 {
		n = 0
		for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += (a[1] * 60 + a[2]) * h }
		printf "%d\n", n
	}' "$TMP/times")
}

# ticks_s A B: (B - A) clock ticks as seconds, 2 decimals
ticks_s() { awk -v a="$1" -v b="$2" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", (b - a) / h}'; }

# wait_quiet: wait up to QUIET_WAIT s until the machine (our servers idle) uses less than
# QUIET_CORES; sets QUIET_LOAD to the last 1 s sample (cores)
wait_quiet() {
	local deadline=$((SECONDS + ${QUIET_WAIT:-0})) b0 b1 said=0
	while :; do
		b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
		QUIET_LOAD=$(ticks_s "$b0" "$b1")
		((${QUIET_WAIT:-0} > 0)) || return 0
		awk -v l="$QUIET_LOAD" -v m="$QUIET_CORES" 'BEGIN{exit !(l < m)}' && return 0
		((SECONDS >= deadline)) && { log "machine still busy (${QUIET_LOAD} cores); measuring anyway"; return 0; }
		((said)) || { log "waiting up to ${QUIET_WAIT}s for other load (${QUIET_LOAD} cores) to settle"; said=1; }
	done
}

# ---------------------------------------------------------------- wrk
# run_wrk URL CONNS SECONDS [WRK-ARGS...]: wrk output on stdout
run_wrk() {
	local url=$1 conns=$2 secs=$3
	shift 3
	timeout $((secs + 30)) wrk -t "${THREADS:-2}" -c "$conns" -d "${secs}s" --latency --timeout 5s "$@" "$url"
}

# parse_wrk FILE -> "rps p50_ms p99_ms non2xx sockerr" (NA where missing)
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
		if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /h$/)  return substr(v, 1, length(v) - 1) * 3600000
		return "NA"
	}
	BEGIN { rps = "NA"; p50 = "NA"; p99 = "NA"; non2xx = 0; sockerr = 0 }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { gsub(",", ""); sockerr = $4 + $6 + $8 + $10 }
	END { printf "%s %s %s %s %s\n", rps, p50, p99, non2xx, sockerr }' "$1"
}

# wrk_pairs CELL CONNS SECONDS WARMUP ROUNDS RAW NAME... : the HTTP A/B loop shared by
# access.sh and auth.sh. For each round the configurations NAME take turns (order rotated
# every round); configuration NAME is described by URL_<NAME>, PID_<NAME> and the array
# WRKARGS_<NAME> (extra wrk args; a function HOOK_<NAME> runs before each run if defined).
# UP_PID is the upstream. Appends to RAW, tab-separated: cell config round rps p50_ms
# p99_ms non2xx sockerr proxy_cores other_cores (cores = CPU seconds / run seconds).
wrk_pairs() {
	local cell=$1 conns=$2 secs=$3 warm=$4 rounds=$5 raw=$6
	shift 6
	local names=("$@") n=$# r i name url pid t0 t1 u0 u1 k0 k1 w0 w1 b0 b1 out pcpu ocpu rps p50 p99 non2xx sockerr ref
	local -a wargs
	for ((r = 1; r <= rounds; r++)); do
		for ((i = 0; i < n; i++)); do
			name=${names[$(((i + r - 1) % n))]}
			url=URL_$name; url=${!url}
			pid=PID_$name; pid=${!pid}
			if declare -F "HOOK_$name" >/dev/null; then "HOOK_$name"; fi
			ref="WRKARGS_${name}[@]"; wargs=("${!ref}")
			wait_quiet
			if ((warm > 0)); then run_wrk "$url" "$conns" "$warm" "${wargs[@]}" >/dev/null 2>&1 || true; fi
			t0=$(cpu_ticks "$pid"); u0=$(cpu_ticks "$UP_PID"); k0=$(softirq_ticks); child_ticks; w0=$CHILD_TICKS; b0=$(busy_ticks)
			out=$TMP/wrk-${cell//[^A-Za-z0-9]/_}-$name-r$r.txt
			run_wrk "$url" "$conns" "$secs" "${wargs[@]}" >"$out" 2>&1 || log "$name: wrk exited non-zero (see $out)"
			b1=$(busy_ticks); child_ticks; w1=$CHILD_TICKS; t1=$(cpu_ticks "$pid"); u1=$(cpu_ticks "$UP_PID"); k1=$(softirq_ticks)
			kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during round $r"
			read -r rps p50 p99 non2xx sockerr < <(parse_wrk "$out")
			pcpu=$(ticks_s "$t0" "$t1")
			# other = everything but the proxy, the upstream, wrk and ksoftirqd, in cores
			ocpu=$(awk -v b="$((b1 - b0))" -v x="$((t1 - t0 + u1 - u0 + w1 - w0 + k1 - k0))" -v h="$CLK_TCK" -v s="$secs" \
				'BEGIN{o = (b - x) / h / s; printf "%.2f", o < 0 ? 0 : o}')
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cell" "$name" "$r" "$rps" "$p50" "$p99" \
				"$non2xx" "$sockerr" "$(awk -v c="$pcpu" -v s="$secs" 'BEGIN{printf "%.2f", c / s}')" "$ocpu" >>"$raw"
			log "$cell r=$r $name: $rps req/s p99 $p99 ms non2xx $non2xx sockerr $sockerr (proxy $pcpu s CPU)"
		done
	done
}

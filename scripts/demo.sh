#!/usr/bin/env bash
# Build Portcullis and run it in front of stand-in PostHog services on loopback.
#
#   scripts/demo.sh
#
# Installs missing Debian packages (scripts/install-deps.sh --system-only),
# builds into build/ (scripts/build.sh), starts scripts/standin.py (web, capture,
# replay, flags, livestream, plugins and app on 127.0.0.1:18001..18007), then
# runs build/portcullis -c conf/portcullis.json in the foreground and prints
# curl commands to try.  Ctrl-C stops Portcullis and the stand-ins.
#
# Ports (environment): DEMO_HTTP_PORT (8080), DEMO_ADMIN_PORT (9901),
# DEMO_STANDIN_PORT (18001: the first of seven consecutive ports).
# POSTHOG_DOMAIN, APP_DOMAIN, LOG_LEVEL and ACCESS_LOG are passed to the config.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

if (($# > 0)); then
	case "$1" in
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
		exit 0
		;;
	*)
		echo "demo: unknown argument: $1 (see scripts/demo.sh --help)" >&2
		exit 2
		;;
	esac
fi

http_port=${DEMO_HTTP_PORT:-8080}
admin_port=${DEMO_ADMIN_PORT:-9901}
standin_port=${DEMO_STANDIN_PORT:-18001}
for var in http_port admin_port standin_port; do
	value=${!var}
	if ! [[ "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65529)); then
		echo "demo: ${var/_port/} port must be a number from 1 to 65529, got \"$value\"" >&2
		exit 2
	fi
done

services=(web capture replay flags livestream plugins app)
# The environment variable that points conf/portcullis.json at each service.
declare -A service_env=(
	[web]=POSTHOG_WEB [capture]=POSTHOG_CAPTURE [replay]=POSTHOG_REPLAY [flags]=POSTHOG_FLAGS
	[livestream]=POSTHOG_LIVESTREAM [plugins]=POSTHOG_PLUGINS [app]=APP_UPSTREAM
)

scripts/install-deps.sh --system-only
scripts/build.sh --dir build

python=/usr/bin/python3
[[ -x "$python" ]] || python=python3

# Fail early, naming the port and the variable that moves it.
port_args=("http:$http_port:DEMO_HTTP_PORT" "admin:$admin_port:DEMO_ADMIN_PORT")
for i in "${!services[@]}"; do
	port_args+=("stand-in ${services[$i]}:$((standin_port + i)):DEMO_STANDIN_PORT")
done
"$python" - "${port_args[@]}" <<'EOF'
import socket, sys
bad = []
for arg in sys.argv[1:]:
    what, port, var = arg.rsplit(":", 2)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(port)))
    except OSError as e:
        bad.append("demo: port 127.0.0.1:%s (%s) is taken: %s; choose another with %s=PORT"
                   % (port, what, e.strerror, var))
    finally:
        s.close()
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
EOF

tmp=$(mktemp -d)
standin_pid=
portcullis_pid=

# Stop Portcullis first (it drains in-flight requests), then the stand-ins.
# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
	trap - EXIT INT TERM
	if [[ -n "$portcullis_pid" ]] && kill -0 "$portcullis_pid" 2>/dev/null; then
		echo "demo: stopping portcullis (pid $portcullis_pid)" >&2
		kill -TERM "$portcullis_pid" 2>/dev/null || true
		wait "$portcullis_pid" 2>/dev/null || true
	fi
	if [[ -n "$standin_pid" ]] && kill -0 "$standin_pid" 2>/dev/null; then
		kill -TERM "$standin_pid" 2>/dev/null || true
		wait "$standin_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The children get their own session, so Ctrl-C reaches only this script,
# which then stops them in order.
detach=()
command -v setsid >/dev/null 2>&1 && detach=(setsid)

standin_args=()
for i in "${!services[@]}"; do
	name=${services[$i]}
	port=$((standin_port + i))
	standin_args+=("$name=$port")
	export "${service_env[$name]}=127.0.0.1:$port"
done
"${detach[@]}" "$python" scripts/standin.py --host 127.0.0.1 --ready-file "$tmp/standin.ready" \
	"${standin_args[@]}" &
standin_pid=$!
for _ in $(seq 100); do
	[[ -f "$tmp/standin.ready" ]] && break
	if ! kill -0 "$standin_pid" 2>/dev/null; then
		wait "$standin_pid" || true
		echo "demo: the stand-in services did not start (see the message above)" >&2
		exit 1
	fi
	sleep 0.1
done
if [[ ! -f "$tmp/standin.ready" ]]; then
	echo "demo: the stand-in services did not get ready within 10 s" >&2
	exit 1
fi

export PORTCULLIS_HTTP="127.0.0.1:$http_port"
export PORTCULLIS_ADMIN="127.0.0.1:$admin_port"
posthog_domain=${POSTHOG_DOMAIN:-posthog.localhost}
app_domain=${APP_DOMAIN:-app.localhost}

"${detach[@]}" build/portcullis -c conf/portcullis.json &
portcullis_pid=$!
ready=false
for _ in $(seq 100); do
	if ! kill -0 "$portcullis_pid" 2>/dev/null; then
		rc=0
		wait "$portcullis_pid" || rc=$?
		portcullis_pid=
		echo "demo: portcullis exited with status $rc before it was ready (see its log above)" >&2
		exit 1
	fi
	if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$admin_port/_health" 2>/dev/null; then
		ready=true
		break
	fi
	sleep 0.1
done
if [[ "$ready" != true ]]; then
	echo "demo: portcullis did not answer http://127.0.0.1:$admin_port/_health within 10 s" >&2
	exit 1
fi

p=$http_port
cat <<EOF

Portcullis is running on http://127.0.0.1:$p (admin on 127.0.0.1:$admin_port), in front of
stand-in PostHog services on 127.0.0.1:$standin_port-$((standin_port + 6)) that answer with JSON echoing
what they received.  Try, in another terminal:

  # event capture (route capture-event -> capture); the Host header picks the site
  curl -H 'Host: $posthog_domain' http://127.0.0.1:$p/e/ -d '{"event":"x"}'
  # feature flags, and everything else goes to web (the default site answers unknown hosts)
  curl http://$posthog_domain:$p/flags/?v=2 -d '{"token":"phc_demo"}'
  curl http://127.0.0.1:$p/api/projects/
  # the app domain: /ingest is PostHog with the prefix stripped, Host rewritten, cookies dropped
  curl -b 'session=secret' http://$app_domain:$p/ingest/e/ -d '{"event":"x"}'
  curl http://$app_domain:$p/dashboard
  # Server-Sent Events, streamed one event per second
  curl -N http://127.0.0.1:$p/livestream/events
  # admin listener: health, readiness, Prometheus metrics
  curl http://127.0.0.1:$admin_port/_health
  curl http://127.0.0.1:$admin_port/metrics
  # reload the configuration without dropping requests
  kill -HUP $portcullis_pid

Access log lines (JSON) follow.  Press Ctrl-C to stop.

EOF

rc=0
wait "$portcullis_pid" || rc=$?
portcullis_pid=
echo "demo: portcullis exited with status $rc" >&2
exit "$rc"

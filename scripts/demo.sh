#!/usr/bin/env bash
# The local demo: Portcullis on https://localhost:8443 with its own local CA,
# a SAML login at a local IdP with a test user, and stand-in PostHog services.
#
#   scripts/demo.sh
#
# Installs missing Debian packages (scripts/install-deps.sh --demo),
# builds build/portcullis, then starts, all on loopback:
#   - scripts/standin.py: web, capture, replay, flags, livestream, plugins and
#     app on 127.0.0.1:18001..18007.  The web stand-in's page (GET /) shows
#     who Portcullis says is signed in and the events the capture stand-in got;
#   - tests/saml/pysaml2_idp.py: a SAML IdP on http://127.0.0.1:18008 with a
#     login form for user "demo", password "demo-password";
#   - build/portcullis -c conf/demo.json: https://localhost:8443 (certificate
#     from its local CA, certs/local-ca/ca.crt), http://localhost:8080 that
#     redirects there, the admin listener on 127.0.0.1:9901;
# gives the IdP Portcullis' SAML metadata and prints the URL, the credentials,
# the CA file and commands to try.  It stays in the foreground (the access log
# follows); Ctrl-C or SIGTERM stops Portcullis, the IdP and the stand-ins.
#
# Environment (default in parentheses):
#   DEMO_HTTPS_PORT (8443)  DEMO_HTTP_PORT (8080)  DEMO_ADMIN_PORT (9901)
#   DEMO_STANDIN_PORT (18001, the first of seven)  DEMO_IDP_PORT (18008)
#   DEMO_USER (demo)  DEMO_PASSWORD (demo-password)
#   DEMO_CERTS_DIR (certs: the local CA, the SAML keys, the IdP's key; kept,
#                   so the CA you trusted stays the same from run to run)
#   DEMO_BIN        a portcullis binary to run instead of building build/portcullis
#   LOG_LEVEL (info), ACCESS_LOG (stdout); PORTCULLIS_SKIP_DEPS=1 skips the
#   package check.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
root=$PWD

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

https_port=${DEMO_HTTPS_PORT:-8443}
http_port=${DEMO_HTTP_PORT:-8080}
admin_port=${DEMO_ADMIN_PORT:-9901}
standin_port=${DEMO_STANDIN_PORT:-18001}
idp_port=${DEMO_IDP_PORT:-18008}
for var in https_port http_port admin_port standin_port idp_port; do
	value=${!var}
	if ! [[ "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65529)); then
		echo "demo: ${var/_port/} port must be a number from 1 to 65529, got \"$value\"" >&2
		exit 2
	fi
done
user=${DEMO_USER:-demo}
password=${DEMO_PASSWORD:-demo-password}
if ! [[ "$user" =~ ^[A-Za-z0-9._@-]+$ ]]; then
	echo "demo: DEMO_USER may hold letters, digits and . _ @ - only, got \"$user\"" >&2
	exit 2
fi
if [[ -z "$password" || "$password" == *:* ]]; then
	echo "demo: DEMO_PASSWORD must be non-empty and without \":\"" >&2
	exit 2
fi
certs_dir=${DEMO_CERTS_DIR:-certs}
mkdir -p "$certs_dir"
certs_dir=$(cd "$certs_dir" && pwd)
ca_file=$certs_dir/local-ca/ca.crt

services=(web capture replay flags livestream plugins app)
# The environment variable that points conf/demo.json at each service.
declare -A service_env=(
	[web]=POSTHOG_WEB [capture]=POSTHOG_CAPTURE [replay]=POSTHOG_REPLAY [flags]=POSTHOG_FLAGS
	[livestream]=POSTHOG_LIVESTREAM [plugins]=POSTHOG_PLUGINS [app]=APP_UPSTREAM
)

# Debian's Python: python3-pysaml2 is installed for it, not for another python3 on PATH.
python=/usr/bin/python3

scripts/install-deps.sh --demo
if ! "$python" -c 'import saml2' 2>/dev/null; then
	echo "demo: $python cannot import saml2; install python3-pysaml2 (scripts/install-deps.sh)" >&2
	exit 1
fi
for cmd in xmlsec1 curl; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "demo: $cmd not found; install it (scripts/install-deps.sh)" >&2
		exit 1
	fi
done
if [[ -n "${DEMO_BIN:-}" ]]; then
	bin=$(readlink -f "$DEMO_BIN")
	if [[ ! -x "$bin" ]]; then
		echo "demo: DEMO_BIN=$DEMO_BIN is not an executable file" >&2
		exit 1
	fi
else
	# Only the portcullis target: the tests are not needed to run the demo, and
	# leaving them out halves the first build on two cores.
	for cmd in cmake cc pkg-config; do
		if ! command -v "$cmd" >/dev/null 2>&1; then
			echo "demo: $cmd not found; run scripts/install-deps.sh first" >&2
			exit 1
		fi
	done
	echo "demo: building build/portcullis"
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target portcullis
	bin=$root/build/portcullis
fi
# Fail early, naming the port and the variable that moves it.
port_args=("https:$https_port:DEMO_HTTPS_PORT" "http:$http_port:DEMO_HTTP_PORT"
	"admin:$admin_port:DEMO_ADMIN_PORT" "IdP:$idp_port:DEMO_IDP_PORT")
for i in "${!services[@]}"; do
	port_args+=("stand-in ${services[$i]}:$((standin_port + i)):DEMO_STANDIN_PORT")
done
"$python" - "${port_args[@]}" <<'EOF'
import socket, sys
bad, seen = [], {}
for arg in sys.argv[1:]:
    what, port, var = arg.rsplit(":", 2)
    if port in seen:
        bad.append("demo: port %s is given both to %s and to %s" % (port, seen[port], what))
        continue
    seen[port] = what
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
idp_pid=
portcullis_pid=

# Stop one child by PID: SIGTERM, then SIGKILL after 15 s.
# shellcheck disable=SC2317 # called from cleanup, through the EXIT trap
stop_child() {
	local pid=$1 what=$2
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "demo: $what (pid $pid) did not stop within 15 s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# Portcullis first (it drains in-flight requests), then the IdP and the stand-ins.
# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
	trap - EXIT INT TERM HUP
	if [[ -n "$portcullis_pid" ]]; then
		echo "demo: stopping portcullis (pid $portcullis_pid), the IdP and the stand-ins" >&2
	fi
	stop_child "$portcullis_pid" portcullis
	stop_child "$idp_pid" "the IdP"
	stop_child "$standin_pid" "the stand-ins"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The children get their own session, so Ctrl-C reaches only this script,
# which then stops them in order.
detach=()
command -v setsid >/dev/null 2>&1 && detach=(setsid)

ingest_curl="curl --cacert $ca_file https://app.localhost:$https_port/ingest/e/ \\
  -H 'Content-Type: application/json' \\
  -d '{\"event\": \"hello from curl\", \"distinct_id\": \"newcomer\", \"api_key\": \"phc_demo\"}'"

# 1. The stand-ins.
standin_args=()
for i in "${!services[@]}"; do
	name=${services[$i]}
	port=$((standin_port + i))
	standin_args+=("$name=$port")
	export "${service_env[$name]}=127.0.0.1:$port"
done
"${detach[@]}" "$python" scripts/standin.py --host 127.0.0.1 --ready-file "$tmp/standin.ready" \
	--ui-hint "$ingest_curl" "${standin_args[@]}" </dev/null &
standin_pid=$!
for _ in $(seq 100); do
	[[ -f "$tmp/standin.ready" ]] && break
	if ! kill -0 "$standin_pid" 2>/dev/null; then
		wait "$standin_pid" || true
		standin_pid=
		echo "demo: the stand-in services did not start (see the message above)" >&2
		exit 1
	fi
	sleep 0.1
done
if [[ ! -f "$tmp/standin.ready" ]]; then
	echo "demo: the stand-in services did not get ready within 10 s" >&2
	exit 1
fi

# 2. The IdP.  Its key stays in the certs folder; the SP metadata file is
# written below, once Portcullis serves it (the IdP reads it when it changes).
sp_metadata=$tmp/sp-metadata.xml
idp_dir=$certs_dir/demo-idp
mkdir -p "$idp_dir"
"${detach[@]}" "$python" tests/saml/pysaml2_idp.py \
	--form "$user:$password:$user@example.com:posthog-admin:Demo User" \
	--listen "127.0.0.1:$idp_port" --base-url "http://127.0.0.1:$idp_port" \
	"$idp_dir" "$sp_metadata" </dev/null >"$tmp/idp.out" 2>"$tmp/idp.log" &
idp_pid=$!
for _ in $(seq 300); do
	grep -q '^listening on' "$tmp/idp.out" 2>/dev/null && break
	if ! kill -0 "$idp_pid" 2>/dev/null; then
		wait "$idp_pid" || true
		idp_pid=
		echo "demo: the SAML IdP did not start:" >&2
		cat "$tmp/idp.log" >&2
		exit 1
	fi
	sleep 0.1
done
if ! grep -q '^listening on' "$tmp/idp.out"; then
	echo "demo: the SAML IdP did not get ready within 30 s:" >&2
	cat "$tmp/idp.log" >&2
	exit 1
fi

# 3. Portcullis.
export PORTCULLIS_HTTPS="127.0.0.1:$https_port"
export PORTCULLIS_HTTP="127.0.0.1:$http_port"
export PORTCULLIS_ADMIN="127.0.0.1:$admin_port"
export CERTS_DIR=$certs_dir
export SAML_IDP_METADATA="http://127.0.0.1:$idp_port/metadata"
export SAML_BASE_URL="https://localhost:$https_port"
# Everything listens on loopback only; as root, stay root rather than refuse.
if [[ $(id -u) -eq 0 ]]; then
	export PORTCULLIS_ALLOW_ROOT=1
fi
"${detach[@]}" "$bin" -c conf/demo.json </dev/null &
portcullis_pid=$!
ready=false
for _ in $(seq 300); do
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
	echo "demo: portcullis did not answer http://127.0.0.1:$admin_port/_health within 30 s" >&2
	exit 1
fi

# 4. The IdP learns the SP (its ACS URL and signing key) from Portcullis' metadata,
# fetched over HTTPS with the local CA as the only trust anchor.
mkdir -p "$tmp/no-capath"
if ! curl -fsS --max-time 10 --cacert "$ca_file" --capath "$tmp/no-capath" \
	--resolve "localhost:$https_port:127.0.0.1" -o "$sp_metadata.tmp" \
	"https://localhost:$https_port/saml/metadata"; then
	echo "demo: cannot fetch https://localhost:$https_port/saml/metadata (see above)" >&2
	exit 1
fi
mv "$sp_metadata.tmp" "$sp_metadata"

url="https://localhost:$https_port/"
cat <<EOF

==========================================================================
 Portcullis demo is up.

 Open:      $url
 Sign in:   user "$user", password "$password"
            (at the local SAML IdP, http://127.0.0.1:$idp_port)

 Your browser does not know the local CA: accept the certificate warning,
 or trust this file (it stays the same from run to run):
            $ca_file
 e.g. curl --cacert $ca_file $url
==========================================================================

After the login you are on the PostHog UI stand-in: it says who you are
signed in as (identity headers Portcullis adds from your session) and lists
the events the capture stand-in received.  Send one through /ingest on the
app's domain (prefix stripped, Host rewritten, cookies dropped):

  $ingest_curl

and see it on $url (the page reloads every 5 s).  More to try:

  # plain HTTP redirects to HTTPS
  curl -i http://localhost:$http_port/
  # the UI without a session: 302 to the IdP (a browser) or 401 (an API client)
  curl --cacert $ca_file -i $url
  # open routes: capture and flags need no login
  curl --cacert $ca_file https://localhost:$https_port/flags/?v=2 -d '{"token":"phc_demo"}'
  # the SP metadata to give an IdP; the admin listener's metrics
  curl --cacert $ca_file https://localhost:$https_port/saml/metadata
  curl http://127.0.0.1:$admin_port/metrics

Access log lines (JSON) follow.  Press Ctrl-C to stop.

EOF

rc=0
wait "$portcullis_pid" || rc=$?
portcullis_pid=
echo "demo: portcullis exited with status $rc" >&2
exit "$rc"

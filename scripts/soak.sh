#!/usr/bin/env bash
# The soak test for MINUTES (default 30): mixed traffic through the PostHog example
# (GET, POST events, SSE, TLS, HTTP/2, SAML sessions and logins, TCP relay,
# WebSocket) while upstream servers are killed and restarted, SIGHUP reloads
# alternate two configurations, Redis and the IdP metadata server go away and come
# back, and the certificate files are swapped.  The driver is tests/e2e/soak.py
# (CI runs it for 60 seconds as the CTest test e2e/test_soak); it prints the counts
# per traffic kind and fails on a request a correct proxy could have served, a
# sanitizer report, or growth of descriptors or RSS.
#
#   scripts/soak.sh [MINUTES]
#
# Builds build/portcullis first when it is missing (scripts/build.sh); PORTCULLIS_BIN
# runs another binary (e.g. build-asan/portcullis, then also PORTCULLIS_SANITIZE=1).
# SOAK_WORKDIR keeps the logs there (default: a temporary folder, printed at the end).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

minutes=${1:-30}
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || ((minutes < 1)); then
	echo "usage: scripts/soak.sh [MINUTES]   (a whole number of minutes, at least 1)" >&2
	exit 2
fi
if [[ -z "${PORTCULLIS_BIN:-}" ]]; then
	if [[ ! -x build/portcullis ]]; then
		scripts/build.sh --dir build
	fi
	export PORTCULLIS_BIN=$PWD/build/portcullis
fi
export PORTCULLIS_SOURCE_DIR=$PWD
# The soak runs the proxy as whoever starts it, root included (as CTest does).
export PORTCULLIS_ALLOW_ROOT=1
args=(--seconds $((minutes * 60)))
if [[ -n "${SOAK_WORKDIR:-}" ]]; then
	args+=(--workdir "$SOAK_WORKDIR")
fi
exec /usr/bin/python3 tests/e2e/soak.py "${args[@]}"

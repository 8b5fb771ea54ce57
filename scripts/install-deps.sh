#!/usr/bin/env bash
# Install what Portcullis needs to build, run and test, from Debian 12's packages.
#
# Only missing packages are installed (checked with dpkg-query); `apt-get update`
# runs once, and only when something has to be installed.  libevent comes at
# the Debian security release LIBEVENT_MIN or later, runtime libraries included.
# Then, unless --system-only is given, the npm packages of the end-to-end tests
# (tests/e2e/sdk, tests/e2e/browser) are installed when they are missing or out of date.
#
# Safe to run again: a second run changes nothing and prints one line.
# PORTCULLIS_SKIP_DEPS=1 skips everything (for machines that are not Debian).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

usage() {
	cat <<'EOF'
usage: scripts/install-deps.sh [--system-only | --demo]

  --system-only   install Debian packages only, not the npm packages of the e2e tests
  --demo          only what building Portcullis and running scripts/demo.sh need
                  (no test peers, no Node.js)
  -h, --help      show this help

Set PORTCULLIS_SKIP_DEPS=1 to skip this step entirely.
EOF
}

system_only=false
demo_only=false
for arg in "$@"; do
	case "$arg" in
	--system-only) system_only=true ;;
	--demo)
		system_only=true
		demo_only=true
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "install-deps: unknown option: $arg" >&2
		usage >&2
		exit 2
		;;
	esac
done

if [[ "${PORTCULLIS_SKIP_DEPS:-0}" == 1 ]]; then
	echo "install-deps: PORTCULLIS_SKIP_DEPS=1, skipping"
	exit 0
fi

# Debian security release with the fixes we require (bookworm-security).
LIBEVENT_MIN=2.1.12-stable-8+deb12u1
LIBEVENT_PACKAGES=(libevent-dev libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7
	libevent-pthreads-2.1-7 libevent-openssl-2.1-7)
# Building Portcullis and running the demo (scripts/demo.sh).
PACKAGES=(
	build-essential cmake pkg-config
	"${LIBEVENT_PACKAGES[@]}"
	libssl-dev libjansson-dev libhttp-parser-dev libcmocka-dev libmaxminddb-dev liblasso3-dev
	libhiredis-dev libcurl4-openssl-dev
	python3 curl ca-certificates openssl
	python3-pysaml2 xmlsec1 # the local SAML IdP of the demo and the tests
)
# The tests' peers.
if [[ $demo_only == false ]]; then
	PACKAGES+=(
		python3-pytest
		simplesamlphp php-cli php-xml php-mbstring # the SimpleSAMLphp IdP of the SAML tests
		chromium libnss3-tools # the headless-browser login test (certutil trusts the local CA)
		redis-server           # the shared SAML replay cache of several instances
		python3-yaml systemd shellcheck # packaging checks: manifests, systemd-analyze verify, scripts
		prometheus             # promtool checks the alert rules in examples/prometheus
		pebble                 # Let's Encrypt's test ACME server, for the ACME end-to-end tests
		tinyproxy              # a forward proxy: outbound HTTPS through HTTPS_PROXY
		iproute2               # ip netns, for tests that need distinct client addresses
	)
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: this is not a Debian system (no dpkg-query/apt-get)." >&2
	echo "install-deps: install the equivalents of: ${PACKAGES[*]} nodejs npm" >&2
	echo "install-deps: then run again with PORTCULLIS_SKIP_DEPS=1" >&2
	exit 1
fi

# Versions of installed packages, read with one dpkg-query call (refreshed
# after installing): installed_version PKG prints it, or nothing.
declare -A versions=()
read_versions() {
	local pkg state version
	versions=()
	while read -r pkg state version; do
		if [[ "$state" == installed ]]; then
			versions[$pkg]=$version
		fi
	done < <(dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\n' "${PACKAGES[@]}" 2>/dev/null || true)
}
installed_version() {
	printf '%s\n' "${versions[$1]:-}"
}

# True when package $1 is installed at version $2 or later.
has_at_least() {
	local v
	v=$(installed_version "$1")
	[[ -n "$v" ]] && dpkg --compare-versions "$v" ge "$2"
}

read_versions
missing=()
for pkg in "${PACKAGES[@]}"; do
	if [[ -z "$(installed_version "$pkg")" ]]; then
		missing+=("$pkg")
	fi
done
for pkg in "${LIBEVENT_PACKAGES[@]}"; do
	if [[ -n "$(installed_version "$pkg")" ]] && ! has_at_least "$pkg" "$LIBEVENT_MIN"; then
		missing+=("$pkg") # installed but older than the security release: upgrade
	fi
done
# Node.js may come from elsewhere (e.g. NodeSource, which bundles npm): only
# install Debian's when the command is missing.  The demo does not need it.
if [[ $demo_only == false ]] && ! command -v node >/dev/null 2>&1; then
	missing+=(nodejs)
fi
if [[ $demo_only == false ]] && ! command -v npm >/dev/null 2>&1; then
	missing+=(npm)
fi

if ((${#missing[@]} > 0)); then
	sudo_cmd=()
	if [[ $(id -u) -ne 0 ]]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo_cmd=(sudo)
		else
			echo "install-deps: missing packages: ${missing[*]}" >&2
			echo "install-deps: run this script as root (or install sudo) to install them" >&2
			exit 1
		fi
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Keep the packages' maintainer scripts from starting system services (apache2,
	# redis-server, prometheus): the tests start their own, on ports of their own.
	made_policy=false
	if [[ ! -e /usr/sbin/policy-rc.d && $(id -u) -eq 0 ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=true
	fi
	rc=0
	{ "${sudo_cmd[@]}" apt-get update && "${sudo_cmd[@]}" apt-get install -y "${missing[@]}"; } || rc=$?
	if [[ $made_policy == true ]]; then
		rm -f /usr/sbin/policy-rc.d
	fi
	if ((rc != 0)); then
		echo "install-deps: apt-get failed (exit $rc)" >&2
		exit "$rc"
	fi
else
	echo "install-deps: all Debian packages present"
fi

# Check the result rather than trusting apt's exit status alone.
read_versions
for pkg in "${PACKAGES[@]}"; do
	if [[ -z "$(installed_version "$pkg")" ]]; then
		echo "install-deps: package $pkg is still not installed" >&2
		exit 1
	fi
done
for pkg in "${LIBEVENT_PACKAGES[@]}"; do
	if ! has_at_least "$pkg" "$LIBEVENT_MIN"; then
		echo "install-deps: $pkg is at $(installed_version "$pkg"); $LIBEVENT_MIN or later is required." >&2
		echo "install-deps: enable bookworm-security in /etc/apt/sources.list(.d) and run again" >&2
		exit 1
	fi
done
if [[ $demo_only == true ]]; then
	exit 0
fi
for cmd in node npm; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "install-deps: command $cmd is still missing after installing nodejs/npm" >&2
		exit 1
	fi
done

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
	echo "install-deps: warning: Node.js $(node --version) is older than 20; posthog-node" \
		"(tests/e2e/sdk) declares Node >= 20.20 and may not work with it" >&2
fi

if [[ "$system_only" == true ]]; then
	exit 0
fi

# npm packages of the end-to-end tests (posthog-node in tests/e2e/sdk, playwright-core
# in tests/e2e/browser).  The stamp records which package.json and lock file
# node_modules was installed from, so a second run is a no-op.
for dir in tests/e2e/sdk tests/e2e/browser; do
	[[ -f "$dir/package.json" ]] || continue
	stamp="$dir/node_modules/.portcullis-installed"
	want=$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)
	have=$(cat "$stamp" 2>/dev/null || true)
	if [[ "$want" == "$have" ]]; then
		echo "install-deps: npm packages of $dir present"
		continue
	fi
	npm_flags=(--no-audit --no-fund --no-update-notifier --loglevel=error)
	if [[ -f "$dir/package-lock.json" ]]; then
		echo "install-deps: npm ci in $dir"
		(cd "$dir" && npm ci "${npm_flags[@]}")
	else
		echo "install-deps: npm install in $dir"
		(cd "$dir" && npm install --no-package-lock "${npm_flags[@]}")
	fi
	printf '%s\n' "$want" >"$stamp"
done

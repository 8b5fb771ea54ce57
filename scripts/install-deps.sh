#!/usr/bin/env bash
# Install what Portcullis needs to build, run and test, from Debian 12's packages.
#
# What to install is scripts/deps.list: every Debian package, npm lock file and
# shared tool that the build, the demo, the tests and the benchmarks use.  Only
# missing packages are installed (checked with dpkg-query); `apt-get update`
# runs once, and only when something has to be installed.  Packages with a
# lowest version in the list (libevent's security release) are upgraded when older.
# Then, unless --system-only is given, the npm packages of the lock files the
# list names are installed when they are missing or out of date.
#
# Safe to run again: a second run changes nothing and prints one line.
# PORTCULLIS_SKIP_DEPS=1 skips everything (for machines that are not Debian).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

usage() {
	cat <<'EOF'
usage: scripts/install-deps.sh [--system-only | --demo | --fuzz]

  --system-only   install Debian packages only, not the npm packages of the e2e tests
  --demo          only what building Portcullis and running scripts/demo.sh need
                  (the list's "build" and "demo" lines: no test peers, no Node.js)
  --fuzz          only what scripts/fuzz.sh needs (the "build" and "fuzz" lines: clang)
  -h, --help      show this help

Set PORTCULLIS_SKIP_DEPS=1 to skip this step entirely.
EOF
}

system_only=false
demo_only=false
fuzz_only=false
for arg in "$@"; do
	case "$arg" in
	--system-only) system_only=true ;;
	--demo)
		system_only=true
		demo_only=true
		;;
	--fuzz)
		system_only=true
		fuzz_only=true
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

# The packages come from scripts/deps.list: every line whose "for" column names one
# of the wanted sets.  A source deb:A|B is satisfied by whichever is installed and
# installs A otherwise; deb:A>=V also upgrades an older A.
wanted_sets=(build demo test bench)
if [[ $demo_only == true ]]; then
	wanted_sets=(build demo)
fi
if [[ $fuzz_only == true ]]; then
	wanted_sets=(build fuzz)
fi
LIST=scripts/deps.list
PACKAGES=()          # Debian packages to have (first alternative of each source)
declare -A ALTERNATIVES=() # first alternative -> "A B ..." (all alternatives)
declare -A MIN_VERSION=()  # package -> lowest acceptable version
NPM_DIRS=()          # directories whose package-lock.json npm ci installs
while read -r kind name source for_sets rest; do
	[[ -z "$kind" || "$kind" == \#* ]] && continue
	if [[ -z "$for_sets" || -n "$rest" ]]; then
		echo "install-deps: $LIST: malformed line for $kind $name (want: kind name source for)" >&2
		exit 1
	fi
	want=false
	for set in ${for_sets//,/ }; do
		for w in "${wanted_sets[@]}"; do
			[[ "$set" == "$w" ]] && want=true
		done
	done
	[[ $want == true ]] || continue
	case "$source" in
	deb:*)
		names=()
		IFS='|' read -r -a alts <<<"${source#deb:}"
		for alt in "${alts[@]}"; do
			names+=("${alt%%>=*}")
			if [[ "$alt" == *">="* ]]; then
				MIN_VERSION[${alt%%>=*}]=${alt#*>=}
			fi
		done
		if [[ -z "${ALTERNATIVES[${names[0]}]+x}" ]]; then
			PACKAGES+=("${names[0]}")
			ALTERNATIVES[${names[0]}]=${names[*]}
		fi
		;;
	npm:*)
		dir=${source#npm:}
		if [[ ! " ${NPM_DIRS[*]-} " == *" $dir "* ]]; then
			NPM_DIRS+=("$dir")
		fi
		;;
	shared:*)
		if [[ ! -e "../shared/${source#shared:}" ]]; then
			echo "install-deps: warning: ../shared/${source#shared:} ($name) is not there;" \
				"the tests that need it will fail" >&2
		fi
		;;
	*)
		echo "install-deps: $LIST: unknown source '$source' for $kind $name" >&2
		exit 1
		;;
	esac
done <"$LIST"

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: this is not a Debian system (no dpkg-query/apt-get)." >&2
	echo "install-deps: install the equivalents of: ${PACKAGES[*]}" >&2
	echo "install-deps: then run again with PORTCULLIS_SKIP_DEPS=1" >&2
	exit 1
fi

# Versions of installed packages, read with one dpkg-query call (refreshed
# after installing): installed_version PKG prints it, or nothing.
declare -A versions=()
read_versions() {
	local pkg state version all=()
	for pkg in "${PACKAGES[@]}"; do
		read -r -a alts <<<"${ALTERNATIVES[$pkg]}"
		all+=("${alts[@]}")
	done
	versions=()
	while read -r pkg state version; do
		if [[ "$state" == installed ]]; then
			versions[$pkg]=$version
		fi
	done < <(dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\n' "${all[@]}" 2>/dev/null || true)
}
installed_version() {
	printf '%s\n' "${versions[$1]:-}"
}

# True when package $1, or one of its alternatives, is installed (at the
# lowest version the list asks for, if any).
satisfied() {
	local alt v
	for alt in ${ALTERNATIVES[$1]}; do
		v=$(installed_version "$alt")
		[[ -n "$v" ]] || continue
		if [[ -n "${MIN_VERSION[$alt]:-}" ]] && ! dpkg --compare-versions "$v" ge "${MIN_VERSION[$alt]}"; then
			continue
		fi
		return 0
	done
	return 1
}

read_versions
missing=()
for pkg in "${PACKAGES[@]}"; do
	if ! satisfied "$pkg"; then
		missing+=("$pkg") # absent, or older than the version the list asks for: (up)grade
	fi
done

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
	# redis-server, prometheus, nginx, haproxy, caddy): the tests and benchmarks
	# start their own, on ports of their own.
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
	if ! satisfied "$pkg"; then
		v=$(installed_version "$pkg")
		if [[ -n "$v" && -n "${MIN_VERSION[$pkg]:-}" ]]; then
			echo "install-deps: $pkg is at $v; ${MIN_VERSION[$pkg]} or later is required." >&2
			echo "install-deps: enable bookworm-security in /etc/apt/sources.list(.d) and run again" >&2
		else
			echo "install-deps: package $pkg is still not installed" >&2
		fi
		exit 1
	fi
done
if [[ $demo_only == true || $fuzz_only == true ]]; then
	exit 0
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
	echo "install-deps: warning: Node.js $(node --version) is older than 20; posthog-node" \
		"(tests/e2e/sdk) declares Node >= 20.20 and may not work with it" >&2
fi

if [[ "$system_only" == true ]]; then
	exit 0
fi

# npm packages of the end-to-end tests (the npm: sources of the list).  The stamp
# records which package.json and lock file node_modules was installed from, so a
# second run is a no-op.
for dir in "${NPM_DIRS[@]}"; do
	if [[ ! -f "$dir/package.json" || ! -f "$dir/package-lock.json" ]]; then
		echo "install-deps: $LIST names $dir, which has no package.json and package-lock.json" >&2
		exit 1
	fi
	stamp="$dir/node_modules/.portcullis-installed"
	want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
	have=$(cat "$stamp" 2>/dev/null || true)
	if [[ "$want" == "$have" ]]; then
		echo "install-deps: npm packages of $dir present"
		continue
	fi
	echo "install-deps: npm ci in $dir"
	(cd "$dir" && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error)
	printf '%s\n' "$want" >"$stamp"
done
